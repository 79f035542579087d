#!/usr/bin/env bash
# Before/after of the helper's hot path (issues 4 and 8): ext_authbypass_acl built from an
# older revision against the current tree, on the same generated lines, in one run.
#
#   tests/bench/helper_before_after.sh [--base REV] [--rounds N] [--lines N]
#
# Steps: (a) `git worktree add` of REV (default d3f1b58, the last revision before the
# hot-path work) in build-bench/before_after/base and a Release build of its helper there;
# the current helper is built in build-bench/; (b) the input lines of
# tests/bench/helper_throughput.sh (build-bench/helper_bench/authbypass.txt, made by
# tests/bench/helper_gen_lines.py if missing); (c) instructions per line with valgrind's
# callgrind on the first 100,000 lines, with and without --audit-log (deterministic:
# independent of machine load); (d) N interleaved rounds (default 7) of wall time on all
# lines for: the echo loop, base, current, base --audit-log, current --audit-log; the
# minimum and median per program. Answers of both helpers are compared first (they must be
# byte-identical on these lines). Prints a Markdown table. Loopback-free: pipes only.
set -euo pipefail

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$src_dir"
base_rev=d3f1b58
rounds=7
lines=1000000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --base) base_rev="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --lines) lines="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "helper_before_after.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
work="$src_dir/build-bench/before_after"
mkdir -p "$work"
command -v valgrind >/dev/null || { echo "helper_before_after.sh: needs valgrind (scripts/setup)" >&2; exit 2; }

# (a) the two helpers
base_tree="$work/base"
if [[ ! -d "$base_tree" ]] || [[ "$(git -C "$base_tree" rev-parse HEAD 2>/dev/null)" != "$(git rev-parse "$base_rev")" ]]; then
  git worktree remove --force "$base_tree" 2>/dev/null || rm -rf "$base_tree"
  git worktree add --detach "$base_tree" "$base_rev" >&2
fi
echo "== building the base helper ($base_rev)" >&2
cmake -S "$base_tree" -B "$base_tree/build" -DCMAKE_BUILD_TYPE=Release -DAUTHBYPASS_TESTS=OFF \
  -DAUTHBYPASS_BENCH=OFF >/dev/null
cmake --build "$base_tree/build" -j2 --target ext_authbypass_acl >&2
echo "== building the current helper" >&2
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DAUTHBYPASS_PGO= >/dev/null  # both without PGO
cmake --build build-bench -j2 --target ext_authbypass_acl >&2
base_bin="$base_tree/build/helpers/ext_authbypass_acl"
cur_bin="$src_dir/build-bench/helpers/ext_authbypass_acl"
echo_bin="$work/helper_echo_baseline"
g++ -O2 -std=c++17 -o "$echo_bin" tests/bench/helper_echo_baseline.cpp

# (b) input
input="$src_dir/build-bench/helper_bench/authbypass.txt"
if [[ ! -s "$input" ]] || [[ $(wc -l <"$input") -ne $lines ]]; then
  mkdir -p "$(dirname "$input")"
  OUT="$(dirname "$input")" python3 tests/bench/helper_gen_lines.py "$lines"
fi
head -n 100000 "$input" >"$work/in100k.txt"
policy="$src_dir/config/policy.yaml"

a=$("$base_bin" --policy "$policy" <"$input" 2>/dev/null | sha256sum | cut -c1-16)
b=$("$cur_bin" --policy "$policy" <"$input" 2>/dev/null | sha256sum | cut -c1-16)
if [[ "$a" != "$b" ]]; then
  echo "helper_before_after.sh: the answers differ (base $a, current $b)" >&2
  exit 1
fi

# (c) instructions per line
ir() {  # BIN [ARGS...] -> instructions per line on the 100k lines
  local bin=$1; shift
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --policy "$policy" "$@" \
    <"$work/in100k.txt" 2>&1 >/dev/null | awk '/Collected/ {printf "%.0f", $4 / 100000}'
}
ir_base=$(ir "$base_bin"); ir_cur=$(ir "$cur_bin")
ir_base_a=$(ir "$base_bin" --audit-log "$work/audit.log"); rm -f "$work/audit.log"
ir_cur_a=$(ir "$cur_bin" --audit-log "$work/audit.log"); rm -f "$work/audit.log"

# (d) interleaved wall times
python3 - "$rounds" "$input" "$echo_bin" "$base_bin" "$cur_bin" "$policy" "$work" \
  "$ir_base" "$ir_cur" "$ir_base_a" "$ir_cur_a" "$base_rev" <<'EOF'
import os, random, statistics, subprocess, sys, time
rounds, inp, echo, base, cur, policy, work = int(sys.argv[1]), *sys.argv[2:8]
irs = [int(x) for x in sys.argv[8:12]]
rev = sys.argv[12]
audit = os.path.join(work, "audit.log")
progs = {
    "echo": [echo],
    "base": [base, "--policy", policy],
    "current": [cur, "--policy", policy],
    "base --audit-log": [base, "--policy", policy, "--audit-log", audit],
    "current --audit-log": [cur, "--policy", policy, "--audit-log", audit],
}
times = {k: [] for k in progs}
for _ in range(rounds):
    order = list(progs)
    random.shuffle(order)
    for k in order:
        with open(inp, "rb") as f, open(os.devnull, "wb") as out:
            t = time.perf_counter()
            subprocess.run(progs[k], stdin=f, stdout=out, stderr=subprocess.DEVNULL, check=True)
            times[k].append(time.perf_counter() - t)
        if os.path.exists(audit):
            os.remove(audit)
med = {k: statistics.median(v) for k, v in times.items()}
mn = {k: min(v) for k, v in times.items()}
load = open("/proc/loadavg").read().split()[:3]
print(f"Base {rev}, current {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}; "
      f"{rounds} interleaved rounds, load average {' '.join(load)} at the end; answers byte-identical.\n")
print("| | instructions per line (callgrind, 100k lines) | median wall, 1M lines | min wall | lines/s (median) | vs echo |")
print("|---|---:|---:|---:|---:|---:|")
rows = [("echo loop (baseline)", None, "echo"), ("helper, base", irs[0], "base"),
        ("helper, current", irs[1], "current"), ("helper --audit-log, base", irs[2], "base --audit-log"),
        ("helper --audit-log, current", irs[3], "current --audit-log")]
for label, ir, k in rows:
    n = 1e6 / med[k]
    print(f"| {label} | {'' if ir is None else f'{ir:,}'} | {med[k]:.3f} s | {mn[k]:.3f} s | {n/1e6:.2f} M | {med['echo']/med[k]:.2f} |")
print(f"\nSpeed-up, current over base (median wall): {med['base']/med['current']:.2f}x without audit, "
      f"{med['base --audit-log']/med['current --audit-log']:.2f}x with; instructions per line "
      f"{irs[0]/irs[1]:.2f}x and {irs[2]/irs[3]:.2f}x fewer.")
EOF
