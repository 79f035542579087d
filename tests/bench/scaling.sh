#!/usr/bin/env bash
# Scaling benchmarks, one command:
#   1. engine: Release build of authbypass_scaling_bench in build-bench/, the BM_Scale_ cases
#      (decide() and load time vs 10 ... 100,000 host rules and 0 ... 1,000 regex rules),
#      repetitions in random interleaved order, JSON to build-bench/scaling_bench.json;
#      medians and data files in build-bench/scaling/; plot docs/perf/scaling.png (gnuplot)
#   2. with --e2e (as root): Squid 5.7 throughput vs children-max and concurrency
#      (tests/bench/e2e_helper_scaling.py, wrk on loopback), JSON to
#      build-bench/e2e_helper_scaling.json
# Prints the Markdown sections; --write-docs also rewrites them in docs/perf/benchmarks.md.
#
#   tests/bench/scaling.sh [--repetitions N] [--min-time S] [--png FILE] [--e2e | --e2e-only]
#                          [--e2e-rounds N] [--e2e-seconds S] [--e2e-conns 8,32]
#                          [--e2e-time-limit S] [--write-docs]
#
# Only this script's own target is built (another build may share build-bench/); the e2e
# part uses build-bench/helpers/ext_authbypass_acl and authbypass as they are, building them
# only when missing. On a shared machine, run it under nice (e.g. `nice -n 5`).
set -euo pipefail

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$src_dir"
# The Python parts import the shared lab package (tests/lab).
export PYTHONPATH="$src_dir/tests${PYTHONPATH:+:$PYTHONPATH}"
build_dir=build-bench
work="$build_dir/scaling"
json="$build_dir/scaling_bench.json"
e2e_json="$build_dir/e2e_helper_scaling.json"

repetitions=5
min_time=0.1
png=docs/perf/scaling.png
engine=1
e2e=0
e2e_rounds=3
e2e_seconds=2
e2e_conns=8,32
e2e_time_limit=180
write_docs=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repetitions) repetitions="$2"; shift 2 ;;
    --min-time) min_time="$2"; shift 2 ;;
    --png) png="$2"; shift 2 ;;
    --e2e) e2e=1; shift ;;
    --e2e-only) e2e=1; engine=0; shift ;;
    --e2e-rounds) e2e_rounds="$2"; shift 2 ;;
    --e2e-seconds) e2e_seconds="$2"; shift 2 ;;
    --e2e-conns) e2e_conns="$2"; shift 2 ;;
    --e2e-time-limit) e2e_time_limit="$2"; shift 2 ;;
    --write-docs) write_docs=(--write-docs); shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "scaling.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"

apt_install() {  # bench-only tools, like helper_throughput.sh does for squidguard
  if [[ $(id -u) -ne 0 ]]; then
    echo "scaling.sh: $1 missing: apt-get install -y $1 (as root), or run scripts/setup" >&2
    return 1
  fi
  echo "scaling.sh: installing $1 (Debian)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null; }
}

status=0
if [[ $engine -eq 1 ]]; then
  command -v gnuplot >/dev/null || apt_install gnuplot-nox
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DAUTHBYPASS_TESTS=ON -DAUTHBYPASS_BENCH=ON >/dev/null
  cmake --build "$build_dir" --target authbypass_scaling_bench -j "$(nproc)" >&2
  # what the binary was built from (the tree may hold others' uncommitted changes)
  { git rev-parse --short HEAD; git status --porcelain -- lib helpers icap tests/bench; } >"$work/build-state.txt"
  echo "scaling.sh: engine scaling, $repetitions repetitions, min time $min_time s" >&2
  t0=$SECONDS
  "$build_dir/tests/bench/authbypass_scaling_bench" \
    --benchmark_filter='^BM_Scale_' \
    --benchmark_repetitions="$repetitions" --benchmark_enable_random_interleaving=true \
    --benchmark_min_time="$min_time" \
    --benchmark_format=json >"$json" || status=$?
  echo "scaling.sh: wrote $json ($((SECONDS - t0)) s)" >&2
  if [[ $status -ne 0 ]]; then
    echo "scaling.sh: authbypass_scaling_bench exited $status: some cases did not run" >&2
  fi
  /usr/bin/python3 tests/bench/scaling_report.py engine "$json" "$work" "${write_docs[@]}"
  mkdir -p "$(dirname "$png")"
  gnuplot -e "datadir='$work'; out='$png'" tests/bench/scaling.gp
  echo "scaling.sh: wrote $png" >&2
fi

if [[ $e2e -eq 1 ]]; then
  command -v wrk >/dev/null || apt_install wrk
  for t in ext_authbypass_acl authbypass; do
    [[ -x "$build_dir/helpers/$t" ]] && continue
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DAUTHBYPASS_TESTS=ON -DAUTHBYPASS_BENCH=ON >/dev/null
    cmake --build "$build_dir" --target "$([[ $t == authbypass ]] && echo authbypass_cli || echo "$t")" -j "$(nproc)" >&2
  done
  g++ -O2 -std=c++17 -o "$work/e2e_origin" tests/bench/e2e_origin.cc
  rm -f "$e2e_json"
  e2e_status=0
  /usr/bin/python3 tests/bench/e2e_helper_scaling.py \
    --helper "$build_dir/helpers/ext_authbypass_acl" --cli "$build_dir/helpers/authbypass" \
    --policy config/policy.yaml --origin "$work/e2e_origin" --wrk "$(command -v wrk)" \
    --json "$e2e_json" --rounds "$e2e_rounds" --seconds "$e2e_seconds" --conns "$e2e_conns" \
    --time-limit "$e2e_time_limit" || e2e_status=$?
  if [[ -s "$e2e_json" ]]; then
    if [[ $e2e_status -ne 0 ]]; then
      echo "scaling.sh: the Squid part reported errors (exit $e2e_status): docs not rewritten" >&2
      /usr/bin/python3 tests/bench/scaling_report.py e2e "$e2e_json"
    else
      /usr/bin/python3 tests/bench/scaling_report.py e2e "$e2e_json" "${write_docs[@]}"
    fi
  fi
  [[ $e2e_status -eq 0 ]] || status=$e2e_status
fi
exit "$status"
