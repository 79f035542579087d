#!/usr/bin/python3
"""Markdown table of a `tests/bench/e2e_squid.py --with-icap` run (the ICAP decision-mode
rows of docs/performance.md):

    e2e_icap_table.py E2E_JSON

One row per mix and configuration: requests/s (median over rounds), p99 (median over
rounds), CPU µs per request (medians: Squid, helper, c-icap, and their per-round sum),
the ratio to (a) (median over rounds of the same-round ratio, and of the medians) and the
end-to-end targets. Prints to stdout; measures nothing.
"""

from __future__ import annotations

import json
import sys

MIXES = {"bypass": "bypassed only", "mixed": "mixed 20/70/10", "auth": "authenticated only",
         "407": "407 only"}
CFG = {"recipe": "(a) built-in ACLs", "prefilter": "(b) helper + prefilter",
       "helper": "(c) helper, no prefilter", "icap-prefilter": "(d) ICAP decision + prefilter",
       "icap": "(e) ICAP decision, no prefilter"}


def rate(x: float) -> str:
    return f"{x:,.0f}"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        d = json.load(f)
    c = d["cells"]
    ratios = {(t["mix"], t["config"]): t for t in d["ratios"]}
    print("| traffic | configuration | req/s | p99 | CPU µs/request: Squid + helper + c-icap = total"
          " | ratio to (a) (of medians) | target |")
    print("|---|---|---:|---:|---|---:|---|")
    for mix, ml in MIXES.items():
        for cfg, cl in CFG.items():
            x = c.get(f"{cfg}/{mix}")
            if x is None:
                continue
            sq, he, ic = (x["median_squid_cpu_us"], x["median_helper_cpu_us"],
                          x.get("median_icap_cpu_us", 0.0))
            total = x.get("median_total_cpu_us", sq + he + ic)
            parts = f"{sq:.0f}" + (f" + {he:.0f}" if he >= 0.5 else "") + (
                f" + {ic:.0f} c-icap" if ic >= 0.5 else "")
            cpu = parts + (f" = {total:.0f}" if he >= 0.5 or ic >= 0.5 else "")
            t = ratios.get((mix, cfg))
            rt = f"{t['value']:.2f} ({t['ratio_of_medians']:.2f})" if t else ""
            tg = ""
            if t and t.get("target"):
                ok = t["value"] >= t["target"] and t["ratio_of_medians"] >= t["target"]
                tg = f"≥ {t['target']:g}: {'met' if ok else 'missed'}"
            p99 = x["median_p99_us"]
            print(f"| {ml} | {cl} | {rate(x['median_rps'])} | "
                  f"{p99 / 1000:.1f} ms | {cpu} | {rt} | {tg} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
