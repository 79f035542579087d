#!/usr/bin/env bash
# usage: tests/fuzz/run_long.sh [--seconds N] [--jobs J] [--rss-limit-mb M] [--timeout S]
#                               [--fresh] [--summary-only] [TARGET...]
#
# The long libFuzzer runs of docs/reliability.md ("Fuzzing"), repeatable by anyone:
#  1. builds the fuzz targets from the current tree in build-fuzz-long/ (clang, the CI fuzz
#     build's flags: ASan + UBSan + libFuzzer) and a coverage build of the same tree in
#     build-fuzz-cov/ (the same, plus -fprofile-instr-generate -fcoverage-mapping);
#  2. runs each TARGET (default: all 7) for N seconds (default 1800) under `nice -n 19`, at
#     most J (default 2) at a time, from the checked-in seeds tests/fuzz/corpus/TARGET (read
#     only) into the kept working corpus build-fuzz-long/corpus/TARGET (a re-run resumes
#     from it; --fresh empties it first and moves earlier artifacts to
#     build-fuzz-long/artifacts-old/); logs in build-fuzz-long/logs/; crash, leak, timeout,
#     oom and slow-unit files in build-fuzz-long/artifacts/TARGET/ (every file there is
#     reported as a finding until it is moved away);
#  3. replays each target's final corpus (working corpus + seeds, `-runs=0`) with the
#     coverage build and reports line and region coverage (llvm-profdata-14, llvm-cov-14) of
#     the engine files the target exercises; HTML in build-fuzz-cov/html/TARGET/;
#  4. prints and writes the Markdown table build-fuzz-long/summary.md (every target with
#     results in build-fuzz-long/results/, each with the time and tree it was run on);
#     --summary-only does only this.
# Exit status: 0 when no run produced a finding; 1 when any target of this run has a
# finding (an artifact file, a fuzzer exit status other than 0, a failed replay); 2 on a
# usage or build error.
set -uo pipefail

all_targets=(fuzz_helper_line fuzz_url fuzz_policy_loader fuzz_policy_structured
             fuzz_revocation_check fuzz_report fuzz_icap_request fuzz_stats)

# The engine files each target is meant to exercise (coverage is reported for these).
main_files() {
  case $1 in
    fuzz_helper_line) echo "lib/core/src/squid_helper.cc lib/core/src/request.cc" ;;
    fuzz_url) echo "lib/core/src/request.cc lib/core/src/idna.cc lib/core/src/ip.cc" ;;
    fuzz_policy_loader) echo "lib/core/src/policy_loader.cc lib/core/src/yaml_tree.cc" ;;
    fuzz_policy_structured) echo "lib/core/src/policy_loader.cc lib/tools/src/policy_check.cc lib/core/src/policy.cc" ;;
    fuzz_revocation_check) echo "lib/revocation/src/revocation_check.cc" ;;
    fuzz_report) echo "lib/tools/src/report.cc" ;;
    fuzz_icap_request) echo "lib/core/src/icap_request.cc lib/icap/src/icap_transaction.cc" ;;
    fuzz_stats) echo "lib/core/src/stats.cc" ;;
  esac
}

usage() { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

secs=1800 jobs=2 rss_mb=2048 timeout=10 fresh=0 summary_only=0 targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) secs=${2:-}; shift 2 || usage ;;
    --jobs) jobs=${2:-}; shift 2 || usage ;;
    --rss-limit-mb) rss_mb=${2:-}; shift 2 || usage ;;
    --timeout) timeout=${2:-}; shift 2 || usage ;;
    --fresh) fresh=1; shift ;;
    --summary-only) summary_only=1; shift ;;
    -h|--help) usage ;;
    -*) echo "run_long: unknown option $1" >&2; usage ;;
    *) targets+=("$1"); shift ;;
  esac
done
for n in "$secs" "$jobs" "$rss_mb" "$timeout"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "run_long: not a positive number: '$n'" >&2; exit 2; }
done
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "run_long: unknown target $t" >&2; exit 2; }
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
long=$root/build-fuzz-long
cov=$root/build-fuzz-cov
for tool in clang clang++ llvm-profdata-14 llvm-cov-14 python3; do
  command -v "$tool" >/dev/null || { echo "run_long: $tool missing (scripts/setup installs it)" >&2; exit 2; }
done
mkdir -p "$long/logs" "$long/results" "$long/corpus" "$long/artifacts" "$cov"

# Every process this script starts in the background is stopped (by PID) when it exits.
running=()
cleanup() {
  for p in "${running[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${running[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'echo "run_long: interrupted" >&2; exit 130' INT TERM HUP

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
command -v llvm-symbolizer-14 >/dev/null && ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer-14) &&
  export ASAN_SYMBOLIZER_PATH

loadlog=$long/logs/loadavg.log
if [ "$summary_only" = 0 ]; then
# The tree the targets are built from: HEAD and the engine/fuzz files changed on top of it,
# at the start and at the end of the builds (the tree is shared; it may change meanwhile).
tree_state() {
  local t dirty
  t=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git status --porcelain -- lib tests/fuzz config 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
  [ -n "$dirty" ] && t="$t + uncommitted: ${dirty% }"
  echo "$t"
}
tree=$(tree_state)

# 1. Builds (niced as well: they share the machine).
build() {  # build DIR LOG [cmake options...]
  local dir=$1 log=$2; shift 2
  echo "run_long: building $dir (log: ${log#"$root"/})"
  if ! CC=clang CXX=clang++ nice -n 19 scripts/build "$dir" -DAUTHBYPASS_FUZZ=ON \
         -DAUTHBYPASS_BENCH=OFF "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2; echo "run_long: build of $dir failed" >&2; exit 2
  fi
}
build build-fuzz-long "$long/logs/build.log"
build build-fuzz-cov "$long/logs/build-cov.log" \
  -DCMAKE_CXX_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
  -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate"
tree_after=$(tree_state)
[ "$tree_after" != "$tree" ] && tree="$tree at the start of the builds, $tree_after at their end"

# 2. The runs, at most $jobs at a time. Every 2 s each running fuzzer's CPU time
# (/proc/PID/stat; a finished one's stays readable until reaped), every 10 s the 1-minute
# load average.
declare -A pid_of=() start_of=() cpu_of=()
start_target() {
  local t=$1 work=$long/corpus/$1 art=$long/artifacts/$1
  if [ "$fresh" = 1 ]; then
    rm -rf "$work"
    if [ -n "$(ls -A "$art" 2>/dev/null)" ]; then  # earlier findings are kept, not deleted
      local old
      old=$long/artifacts-old/$t.$(date -u +%Y%m%dT%H%M%SZ)
      mkdir -p "$long/artifacts-old" && mv "$art" "$old"
      echo "run_long: $t: earlier artifacts moved to ${old#"$root"/}: $(find "$old" -type f -printf "%f ")"
    fi
  fi
  mkdir -p "$work" "$art"
  echo "run_long: $t: $secs s, $(find "$work" -type f | wc -l) units in the working corpus," \
       "$(find "tests/fuzz/corpus/$t" -type f | wc -l) seeds"
  (cd "$art" && exec nice -n 19 "$long/tests/fuzz/$t" -max_total_time="$secs" \
     -timeout="$timeout" -rss_limit_mb="$rss_mb" -max_len=65536 -print_final_stats=1 \
     -artifact_prefix="$art/" "$work" "$root/tests/fuzz/corpus/$t") >"$long/logs/$t.log" 2>&1 &
  pid_of[$t]=$!; start_of[$t]=$(date +%s); cpu_of[$t]=0
  running+=("$!")
}
finish_target() {
  local t=$1 rc=0 p=${pid_of[$1]}
  wait "$p"; rc=$?
  local keep=(); for q in "${running[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  running=("${keep[@]}")
  cat >"$long/results/$t.env" <<EOF
target=$t
seconds=$secs
start=${start_of[$t]}
end=$(date +%s)
rc=$rc
cpu_ticks=${cpu_of[$t]}
ticks_per_s=$(getconf CLK_TCK)
tree=$tree
EOF
  echo "run_long: $t finished (exit $rc), log: ${long#"$root"/}/logs/$t.log"
  unset "pid_of[$t]"
}
queue=("${targets[@]}") tick=0
while [ ${#queue[@]} -gt 0 ] || [ ${#pid_of[@]} -gt 0 ]; do
  while [ ${#queue[@]} -gt 0 ] && [ ${#pid_of[@]} -lt "$jobs" ]; do
    start_target "${queue[0]}"; queue=("${queue[@]:1}")
  done
  sleep 2
  tick=$((tick + 1))
  [ $((tick % 5)) = 0 ] && echo "$(date +%s) $(cut -d' ' -f1 /proc/loadavg)" >>"$loadlog"
  for t in "${!pid_of[@]}"; do
    stat=$(cat "/proc/${pid_of[$t]}/stat" 2>/dev/null) || stat=""
    if [ -n "$stat" ]; then
      read -r -a f <<<"${stat##*) }"
      cpu_of[$t]=$((f[11] + f[12]))
      [ "${f[0]}" = Z ] && finish_target "$t"
    else
      finish_target "$t"
    fi
  done
done

# 3. Coverage: replay each final corpus (working corpus + seeds) with the coverage build.
for t in "${targets[@]}"; do
  prof=$cov/profiles/$t
  rm -rf "$prof" "$cov/html/$t"; mkdir -p "$prof"
  echo "run_long: $t: replaying $(find "$long/corpus/$t" "tests/fuzz/corpus/$t" -type f | wc -l) inputs for coverage"
  (cd "$prof" && LLVM_PROFILE_FILE="$prof/%p.profraw" exec nice -n 19 "$cov/tests/fuzz/$t" \
     -runs=0 -timeout="$timeout" -rss_limit_mb="$rss_mb" -max_len=65536 \
     -artifact_prefix="$prof/" "$long/corpus/$t" "$root/tests/fuzz/corpus/$t") \
     >"$long/logs/$t.cov.log" 2>&1 &
  running+=("$!"); wait "$!"; rrc=$?; running=("${running[@]:0:${#running[@]}-1}")
  echo "replay_rc=$rrc" >>"$long/results/$t.env"
  # shellcheck disable=SC2046  # main_files is a word list
  if llvm-profdata-14 merge -sparse "$prof"/*.profraw -o "$cov/$t.profdata" 2>>"$long/logs/$t.cov.log" &&
     llvm-cov-14 export -summary-only -instr-profile="$cov/$t.profdata" "$cov/tests/fuzz/$t" \
       >"$cov/$t.json" 2>>"$long/logs/$t.cov.log"; then
    llvm-cov-14 show -format=html -output-dir="$cov/html/$t" -instr-profile="$cov/$t.profdata" \
      "$cov/tests/fuzz/$t" $(main_files "$t") >/dev/null 2>>"$long/logs/$t.cov.log"
  else
    echo "run_long: $t: coverage failed, see ${long#"$root"/}/logs/$t.cov.log" >&2
    rm -f "$cov/$t.json"
  fi
  echo "main_files=$(main_files "$t")" >>"$long/results/$t.env"
done

fi  # summary_only

# 4. The table, from every target's results (this run's and earlier ones').
python3 - "$root" "$loadlog" "${targets[@]}" <<'PY'
import datetime, glob, json, os, re, sys

root, loadlog, this_run = sys.argv[1], sys.argv[2], sys.argv[3:]
long = os.path.join(root, "build-fuzz-long")
cov = os.path.join(root, "build-fuzz-cov")
rel = lambda p: os.path.relpath(p, root)

def num(n):
    return f"{n:,}" if isinstance(n, int) else "?"

loads = []
if os.path.exists(loadlog):
    for line in open(loadlog):
        try:
            ts, la = line.split()
            loads.append((int(ts), float(la)))
        except ValueError:
            pass

rows, files_rows, notes, bad = [], [], [], []
for envf in sorted(glob.glob(os.path.join(long, "results", "*.env"))):
    env = dict(l.rstrip("\n").split("=", 1) for l in open(envf) if "=" in l)
    t = env["target"]
    log = open(os.path.join(long, "logs", t + ".log"), errors="replace").read()
    stat = lambda k: (lambda m: int(m.group(1)) if m else None)(re.search(rf"stat::{k}:\s+(\d+)", log))
    execs, eps, rss = stat("number_of_executed_units"), stat("average_exec_per_sec"), stat("peak_rss_mb")
    status = re.findall(r"^#\d+\s+\S+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", log, re.M)
    covft = f"{int(status[-1][0]):,} / {int(status[-1][1]):,}" if status else "?"
    work = os.path.join(long, "corpus", t)
    units = [os.path.join(work, f) for f in os.listdir(work)] if os.path.isdir(work) else []
    size = sum(os.path.getsize(u) for u in units)
    corpus = f"{len(units):,} units, {size / 1024:,.0f} KiB" if size >= 1024 else f"{len(units):,} units, {size} B"
    start, end = int(env["start"]), int(env["end"])
    wall = max(end - start, 1)
    cpu = int(env.get("cpu_ticks", 0)) / int(env.get("ticks_per_s", 100))
    window = [la for ts, la in loads if start <= ts <= end]
    load = f"{sum(window) / len(window):.1f} (max {max(window):.1f})" if window else "?"

    findings = []
    art = os.path.join(long, "artifacts", t)
    for f in sorted(glob.glob(os.path.join(art, "*"))):
        old = " (from an earlier run)" if os.path.getmtime(f) < start else ""
        findings.append(f"`{rel(f)}`{old}")
    if env.get("rc", "0") != "0":
        findings.append(f"fuzzer exit status {env['rc']} (`{rel(os.path.join(long, 'logs', t + '.log'))}`)")
    if env.get("replay_rc", "0") != "0":
        findings.append(f"coverage replay exit status {env['replay_rc']} "
                        f"(`{rel(os.path.join(long, 'logs', t + '.cov.log'))}`)")
    for f in sorted(glob.glob(os.path.join(cov, "profiles", t, "*-*"))):  # replay artifacts
        findings.append(f"`{rel(f)}` (coverage replay)")
    m = re.search(r"^SUMMARY: .*$", log, re.M)
    if m:
        findings.append(m.group(0))
    if findings and t in this_run:
        bad.append(t)

    main = env.get("main_files", "").split()
    cells, lib_l, lib_r = [], [0, 0], [0, 0]
    covj = os.path.join(cov, t + ".json")
    if env.get("replay_rc", "0") != "0":
        cells.append("not measured: the coverage replay stopped at a finding")
    elif os.path.exists(covj) and os.path.getmtime(covj) >= start:
        data = json.load(open(covj))["data"][0]["files"]
        by = {rel(f["filename"]): f["summary"] for f in data}
        for f, s in sorted(by.items()):
            if f.startswith("lib/") and "/src/" in f:
                lib_l[0] += s["lines"]["covered"]; lib_l[1] += s["lines"]["count"]
                lib_r[0] += s["regions"]["covered"]; lib_r[1] += s["regions"]["count"]
        for f in main:
            s = by.get(f)
            if not s:
                cells.append(f"{os.path.basename(f)} ?"); continue
            L, R = s["lines"], s["regions"]
            cells.append(f"{os.path.basename(f)} {L['percent']:.1f}% L, {R['percent']:.1f}% R")
            files_rows.append(f"| `{t}` | `{f}` | {L['covered']:,} / {L['count']:,} ({L['percent']:.1f}%) "
                              f"| {R['covered']:,} / {R['count']:,} ({R['percent']:.1f}%) |")
        pct = lambda c: f"{100 * c[0] / c[1]:.1f}%" if c[1] else "?"
        files_rows.append(f"| `{t}` | all of `lib/*/src/` (as linked) | {lib_l[0]:,} / {lib_l[1]:,} ({pct(lib_l)}) "
                          f"| {lib_r[0]:,} / {lib_r[1]:,} ({pct(lib_r)}) |")
    else:
        cells.append("coverage not measured")
    utc = lambda s: datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    secs = env["seconds"] if env.get("rc", "0") == "0" else f"{wall:,} of {env['seconds']} (stopped by the finding)"
    rows.append(f"| `{t}` | {secs} | {num(execs)} | {num(eps)} | {covft} | {corpus} "
                f"| {num(rss)} MB | {'; '.join(cells)} | {'; '.join(findings) or 'none'} |")
    notes.append(f"- `{t}`: {utc(start)}–{utc(end)[11:]} UTC, wall {wall:,} s, CPU {cpu:,.0f} s "
                 f"({100 * cpu / wall:.0f}% of one core, niced), load average {load}; tree {env.get('tree', '?')}")

out = ["| target | seconds | executions | exec/s | libFuzzer cov / ft | working corpus | peak RSS "
       "| coverage of the main files (lines L, regions R) | findings |",
       "|---|---|---|---|---|---|---|---|---|"] + rows
out += ["", "| target | file | lines covered | regions covered |", "|---|---|---|---|"] + files_rows
out += ["", "Runs (`nice -n 19`, ASan + UBSan; the load average is the machine's 1-minute one "
        "sampled every 10 s during the run):", ""] + notes
text = "\n".join(out) + "\n"
open(os.path.join(long, "summary.md"), "w").write(text)
print(text, end="")
print(f"run_long: wrote {rel(os.path.join(long, 'summary.md'))}")
if bad:
    print("run_long: FINDINGS in " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
