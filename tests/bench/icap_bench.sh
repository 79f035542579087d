#!/usr/bin/env bash
# ICAP service throughput: srv_authbypass.so (Verify full and preview) against
# c-icap's bundled srv_echo, on real c-icap 0.5.10, loopback only, in one run.
#
#   tests/bench/icap_bench.sh [--rounds N] [--seconds S] [--conns N] [--seed N] [--big-reps N]
#                             [--skip-big] [--no-arena-check] [--write-docs]
#
# Steps: (a) Release build of srv_authbypass in build-bench/; (b) tests/bench/icap_bench.py:
# test data with openssl (a few-KB genuine CRL and an HTML impostor at every run, a ~100 MB
# CRL cached in build-bench/icap_bench/data/), two c-icap processes on 127.0.0.1 (full and
# preview; both also load srv_echo), interleaved timed rounds of RESPMOD from N concurrent
# persistent connections (tests/bench/icap_bench_client.py, every answer checked), the
# 100 MB CRL streamed through full mode (time, MB/s, body hash, extra RSS of the serving
# c-icap child; the same through a third c-icap with MALLOC_ARENA_MAX=1 unless
# --no-arena-check), audit-log checks; raw numbers in build-bench/icap_bench.json, the
# Markdown section on stdout. --write-docs rewrites "## ICAP service throughput" in
# docs/perf/benchmarks.md (only if the run had no errors). Exit 1 on any wrong answer.
# Every c-icap and load worker started is stopped by PID, also on failure. As root (c-icap
# drops to user c-icap). About 4 minutes (the first run also makes the big CRL: ~15 s).
set -euo pipefail

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$src_dir"
# The Python parts import the shared lab package (tests/lab).
export PYTHONPATH="$src_dir/tests${PYTHONPATH:+:$PYTHONPATH}"
build_dir=build-bench
for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done

echo "== building srv_authbypass (Release, $build_dir/)" >&2
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target srv_authbypass >&2
module="$build_dir/icap/srv_authbypass.so"
[[ -f "$module" ]] || { echo "icap_bench.sh: $module not built (libicapapi-dev missing?)" >&2; exit 1; }

exec python3 tests/bench/icap_bench.py --module "$module" --work "$build_dir/icap_bench" \
  --json "$build_dir/icap_bench.json" --docs docs/perf/benchmarks.md "$@"
