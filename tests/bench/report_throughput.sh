#!/usr/bin/env bash
# Measures `authbypass report` on ~1 GB of real audit lines (made by the helper itself from
# the generated helper input), plain and gzip: MB/s and peak RSS, median of 3 runs.
#   tests/bench/report_throughput.sh [SIZE_MB]
# SIZE_MB defaults to 1000 (input cached as build-bench/report_bench/big.log); another size
# gets its own cached input, big-SIZE_MB.log (tests/bench/run-all uses 200).
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${1:-1000}
dir=build-bench/report_bench
mkdir -p "$dir"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target authbypass_cli ext_authbypass_acl >/dev/null
if [ ! -s "$dir/seed.log" ]; then
  OUT="$dir" /usr/bin/python3 tests/bench/helper_gen_lines.py 200000 >/dev/null
  build-bench/helpers/ext_authbypass_acl --policy config/policy.yaml --audit-log "$dir/seed.log" \
    <"$dir/authbypass.txt" >/dev/null 2>&1
fi
seed_bytes=$(stat -c %s "$dir/seed.log")
copies=$(( size_mb * 1000000 / seed_bytes + 1 ))
big="$dir/big.log"
[ "$size_mb" -eq 1000 ] || big="$dir/big-$size_mb.log"
if [ ! -s "$big" ] || [ ! -s "$big.gz" ] || [ "$(stat -c %s "$big")" -lt $(( size_mb * 1000000 )) ]; then
  : >"$big"
  for _ in $(seq "$copies"); do cat "$dir/seed.log" >>"$big"; done
  gzip -1 -c "$big" >"$big.gz"
fi
bytes=$(stat -c %s "$big")
run() {  # prints "seconds rss_kb"
  /usr/bin/time -f "%e %M" build-bench/helpers/authbypass report "$@" --policy config/policy.yaml \
    --format json 2>&1 >/dev/null | tail -1
}
median() { sort -n | sed -n 2p; }
plain=$(for _ in 1 2 3; do run "$big"; done)
gz=$(for _ in 1 2 3; do run "$big.gz"; done)
t_plain=$(awk '{print $1}' <<<"$plain" | median); rss_plain=$(awk '{print $2}' <<<"$plain" | sort -n | tail -1)
t_gz=$(awk '{print $1}' <<<"$gz" | median); rss_gz=$(awk '{print $2}' <<<"$gz" | sort -n | tail -1)
lines=$(wc -l <"$big")
awk -v b="$bytes" -v l="$lines" -v tp="$t_plain" -v tg="$t_gz" -v rp="$rss_plain" -v rg="$rss_gz" 'BEGIN {
  printf "| input | size | lines | median time | MB/s (uncompressed bytes) | peak RSS |\n|---|---:|---:|---:|---:|---:|\n";
  printf "| JSON audit lines, plain | %.0f MB | %d | %.2f s | %.0f | %.1f MB |\n", b/1e6, l, tp, b/1e6/tp, rp/1024;
  printf "| same, gzip -1 | | | %.2f s | %.0f | %.1f MB |\n", tg, b/1e6/tg, rg/1024 }'
