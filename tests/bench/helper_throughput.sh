#!/usr/bin/env bash
# Squid helper throughput: ext_authbypass_acl against the minimal echo loop and
# squidGuard, on the same 1,000,000 generated request lines, in one run.
#
#   tests/bench/helper_throughput.sh [--rounds N] [--lines N] [--seed N] [--write-docs]
#
# Steps: (a) Release build of the helper in build-bench/; (b) g++ -O2 of the echo loop
# (tests/bench/helper_echo_baseline.cpp); (c) input lines from tests/bench/helper_gen_lines.py
# (cached in build-bench/helper_bench/ while the generator and N are unchanged);
# (d) squidGuard (apt-get install squidguard if missing and running as root) with the
# generator's revocation hosts and \.crl$; (e) tests/bench/helper_throughput_run.py checks
# the answers, then times N interleaved rounds of echo / helper / helper+audit / squidGuard,
# writes build-bench/helper_throughput.json and prints the Markdown section. With
# --write-docs the section "## Squid helper throughput" of docs/perf/benchmarks.md is
# rewritten in place (appended if missing). Whole run: about a minute on 2 cores.
set -euo pipefail

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$src_dir"
build_dir=build-bench
work="$build_dir/helper_bench"
lines=1000000
args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --lines) lines="$2"; shift 2 ;;
    --lines=*) lines="${1#--lines=}"; shift ;;
    --rounds|--seed) shift 2 ;;
    --rounds=*|--seed=*|--write-docs) shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "helper_throughput.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"

# (a) profile-guided, as packaging/build-deb builds the .deb (scripts/build-pgo; only an
# incremental build when $build_dir was trained on this very tree)
echo "== building ext_authbypass_acl (Release, profile-guided, $build_dir/)" >&2
scripts/build-pgo "$build_dir" -DCMAKE_BUILD_TYPE=Release >&2

# (b) the echo loop
echo "== building the echo loop" >&2
g++ -O2 -std=c++17 -o "$work/helper_echo_baseline" tests/bench/helper_echo_baseline.cpp

# (c) the input, regenerated only when the generator or the line count changed
gen=tests/bench/helper_gen_lines.py
stamp="$lines $(sha256sum "$gen" | cut -d' ' -f1)"
if [[ ! -s "$work/authbypass.txt" || ! -s "$work/urlrewrite.txt" \
      || "$(cat "$work/input.stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "== generating $lines lines" >&2
  rm -f "$work/input.stamp"
  OUT="$work" python3 "$gen" "$lines"
  echo "$stamp" >"$work/input.stamp"
else
  echo "== reusing $work/authbypass.txt ($lines lines)" >&2
fi

# GNU time, for the children's peak RSS
if [[ ! -x /usr/bin/time ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y time >&2
  else
    echo "helper_throughput.sh: needs /usr/bin/time (apt-get install -y time)" >&2; exit 1
  fi
fi

# (d) squidGuard with the same rule set: revocation hosts + \.crl$
if ! command -v squidGuard >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "== installing squidguard" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y squidguard >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y squidguard >&2; } \
      || echo "helper_throughput.sh: could not install squidguard; its rows are skipped" >&2
  else
    echo "helper_throughput.sh: squidGuard missing and not root (apt-get install -y squidguard);" \
         "its rows are skipped" >&2
  fi
fi
sg_conf=""
if command -v squidGuard >/dev/null 2>&1; then
  sg_dir="$(cd "$work" && pwd)/sg"
  rm -rf "$sg_dir"
  mkdir -p "$sg_dir/sgdb/bypass" "$sg_dir/sglog"
  cp "$work/revocation_hosts.txt" "$sg_dir/sgdb/bypass/domains"
  printf '%s\n' '\.crl$' >"$sg_dir/sgdb/bypass/expressions"
  # Same rule set as bench-reference/squidGuard-bench.conf.in, SGDIR filled in.
  cat >"$sg_dir/squidGuard.conf" <<EOF
# squidGuard config equivalent to the bypass policy (hosts + \.crl\$); no UA matching possible.
dbhome $sg_dir/sgdb
logdir $sg_dir/sglog

dest bypass {
	domainlist	bypass/domains
	expressionlist	bypass/expressions
}

acl {
	default {
		pass	!bypass any
		redirect http://bypass.invalid/allowed?url=%u
	}
}
EOF
  squidGuard -C all -c "$sg_dir/squidGuard.conf"  # builds sgdb/bypass/domains.db
  sg_conf="$sg_dir/squidGuard.conf"
fi

# (e) check, time, report
exec python3 tests/bench/helper_throughput_run.py \
  --helper "$build_dir/helpers/ext_authbypass_acl" --policy config/policy.yaml \
  --echo "$work/helper_echo_baseline" --squidguard-conf "$sg_conf" \
  --work "$work" --json "$build_dir/helper_throughput.json" --docs docs/perf/benchmarks.md \
  "${args[@]}"
