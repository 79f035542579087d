#!/usr/bin/env bash
# usage: run_fuzz.sh TARGET_BINARY SEED_CORPUS_DIR SECONDS
# Runs one libFuzzer target from the checked-in seeds for SECONDS; new inputs go to a
# temporary corpus (the repo's seeds are never written). Crash files land in the build dir.
set -u
bin=$1 seeds=$2 secs=$3
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$(dirname "$bin")" || exit 2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 "$work" "$seeds" 2>&1 | tail -25
exit "${PIPESTATUS[0]}"
