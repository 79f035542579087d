#!/usr/bin/env bash
# Records the engine benchmarks: Release build in build-bench/, 10 repetitions in random
# interleaved order (so machine noise hits every benchmark alike), medians.
# Writes build-bench/engine_bench.json and prints a Markdown table for docs/perf/benchmarks.md ("Engine").
#
#   tests/bench/record_engine_bench.sh [extra benchmark flags, e.g. --benchmark_filter=Host]
set -euo pipefail

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$src_dir"
build_dir=build-bench
json="$build_dir/engine_bench.json"

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DAUTHBYPASS_TESTS=ON -DAUTHBYPASS_BENCH=ON >/dev/null
cmake --build "$build_dir" --target authbypass_engine_bench -j "$(nproc)" >&2

status=0
"$build_dir/tests/bench/authbypass_engine_bench" \
  --benchmark_repetitions=10 --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true \
  --benchmark_format=json "$@" >"$json" || status=$?
echo "wrote $json" >&2
if [[ $status -ne 0 ]]; then
  echo "authbypass_engine_bench exited $status: some benchmarks did not run (see above)" >&2
fi

/usr/bin/python3 - "$json" <<'PY'
import json
import sys

with open(sys.argv[1]) as f:
    data = json.load(f)

medians = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") == "median":
        medians[b["run_name"]] = b
    if b.get("error_occurred"):
        print(f"**{b['name']} skipped: {b.get('error_message', '')}**\n")

NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# CPU time is the headline figure: on a shared machine the wall clock also counts time
# other processes held the core. Wall time is shown beside it.
def cpu_ns(b):
    return b["cpu_time"] * NS[b.get("time_unit", "ns")]

def wall_ns(b):
    return b["real_time"] * NS[b.get("time_unit", "ns")]

def fmt_rate(x):
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"

ctx = data.get("context", {})
print(f"Run {ctx.get('date', '?')} on {ctx.get('host_name', '?')}: "
      f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, "
      f"load average {', '.join(f'{x:.2f}' for x in ctx.get('load_avg', []))} at start.\n")
print("| Benchmark | median CPU ns/op | median wall ns/op | ops/s (CPU) | allocs/op |")
print("|---|---:|---:|---:|---:|")
rows = [
    ("BM_Decide_Default", "decide(), shipped policy, realistic mix", "allocs_per_decision_all"),
    ("BM_Decide_HostRules/10", "decide(), 10 host rules", "allocs_per_decision"),
    ("BM_Decide_HostRules/1000", "decide(), 1,000 host rules", "allocs_per_decision"),
    ("BM_Decide_HostRules/10000", "decide(), 10,000 host rules", "allocs_per_decision"),
    ("BM_ParseRequest", "Request::parse, warm Request, same mix", "allocs_per_parse"),
]
for name, label, key in rows:
    b = medians.get(name)
    if b is None:
        print(f"| {label} | not run | | | |")
        continue
    allocs = f"{b[key]:.2f}" if key in b else "–"
    print(f"| {label} | {cpu_ns(b):.1f} | {wall_ns(b):.1f} | {fmt_rate(1e9 / cpu_ns(b))} | {allocs} |")
load = medians.get("BM_Load_10000Rules")
if load is not None:
    print(f"| load_policy_text, 10,000 host rules | {cpu_ns(load) / 1e6:.1f} ms | "
          f"{wall_ns(load) / 1e6:.1f} ms | | |")
yaml_only = medians.get("BM_YamlCppOnly_10000Rules")
if yaml_only is not None:
    print(f"| (reference) yaml-cpp alone parsing the same 10,000-rule text | "
          f"{cpu_ns(yaml_only) / 1e6:.1f} ms | {wall_ns(yaml_only) / 1e6:.1f} ms | | |")

print()
d = medians.get("BM_Decide_Default")
if d is not None:
    print(f"- Shipped policy: {d.get('rules', 0):.0f} rules; "
          f"{d.get('bypass_pct', 0):.0f}% of the mix bypasses; "
          f"{d.get('regex_requests', 0):.0f} of 64 requests reach a regex; "
          f"allocations per decision on the others (non-regex): "
          f"{d.get('allocs_per_decision', float('nan')):.2f}; "
          f"over the whole mix: {d.get('allocs_per_decision_all', float('nan')):.2f}.")
r10 = medians.get("BM_Decide_HostRules/10")
r10k = medians.get("BM_Decide_HostRules/10000")
if r10 is not None and r10k is not None:
    print(f"- Ratio 10,000 rules / 10 rules per decision: {cpu_ns(r10k) / cpu_ns(r10):.2f}x (CPU), "
          f"{wall_ns(r10k) / wall_ns(r10):.2f}x (wall).")
if load is not None:
    print(f"- Loading 10,000 host rules ({load.get('policy_bytes', 0) / 1e6:.2f} MB of YAML): "
          f"{cpu_ns(load) / 1e6:.1f} ms CPU, {wall_ns(load) / 1e6:.1f} ms wall (median)"
          + (f"; yaml-cpp's parse alone: {cpu_ns(yaml_only) / 1e6:.1f} ms CPU."
             if yaml_only is not None else "."))
PY
exit "$status"
