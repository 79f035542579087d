#!/usr/bin/python3
"""Renders the scaling figures for tests/bench/scaling.sh.

    scaling_report.py engine BENCH_JSON DATA_DIR     # data files for gnuplot + Markdown
    scaling_report.py e2e E2E_JSON                   # Markdown of the Squid part
    ... [--write-docs]                               # also rewrite the section in
                                                     # docs/perf/benchmarks.md

engine: BENCH_JSON is Google Benchmark's JSON (every repetition, no aggregates) of the
BM_Scale_ cases of authbypass_scaling_bench; writes DATA_DIR/host.dat, regex.dat,
vars.gp and DATA_DIR/engine.json (medians), prints the section. e2e: E2E_JSON is
tests/bench/e2e_helper_scaling.py's output.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import textwrap

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCS = os.path.join(SRC, "docs", "perf", "benchmarks.md")
ENGINE_SECTION = "## Engine scaling: host rules and regex rules"
E2E_SECTION = "## Squid throughput vs children-max and concurrency"
NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
HOST_N = (10, 100, 1000, 10000, 100000)
REGEX_N = (0, 1, 10, 100, 1000)
FAMILIES = [  # (benchmark, column label, plot title)
    ("BM_Scale_PathRegexLiteral", "path_regex, literal start", "path_regex, literal start"),
    ("BM_Scale_PathRegex", "path_regex, no literal start", "path_regex, no literal start"),
    ("BM_Scale_UaRegexAnchored", "user_agent_regex, anchored `^…`", "user_agent_regex, anchored ^..."),
    ("BM_Scale_UaRegex", "user_agent_regex, unanchored", "user_agent_regex, unanchored"),
]


def wrap(text: str, width: int = 90) -> list[str]:
    return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)


def para(text: str) -> str:
    return "\n".join(wrap(text)) + "\n"


def fmt_ns(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} ms"
    if x >= 1e4:
        return f"{x / 1e3:.1f} µs"
    if x >= 1e3:
        return f"{x / 1e3:.2f} µs"
    return f"{x:.0f} ns"


def fmt_ms(ns: float) -> str:
    ms = ns / 1e6
    return f"{ms:.3f} ms" if ms < 1 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def write_section(title: str, text: str, after: str | None = None):
    """Replaces the section `title` of docs/perf/benchmarks.md (up to the next '## '), or
    inserts it after the section `after` (or at the end). Re-reads the file right before
    writing and replaces it atomically: other sections are edited by others."""
    with open(DOCS) as f:
        doc = f.read()
    text = text.rstrip("\n") + "\n"
    start = doc.find(title + "\n")
    if start >= 0:
        nxt = doc.find("\n## ", start + len(title))
        doc = doc[:start] + text + ("\n" + doc[nxt + 1:] if nxt >= 0 else "")
    else:
        pos = -1
        if after:
            a = doc.find(after + "\n")
            if a >= 0:
                nxt = doc.find("\n## ", a + len(after))
                pos = nxt + 1 if nxt >= 0 else -1
        if pos < 0:
            doc = doc.rstrip("\n") + "\n\n" + text
        else:
            doc = doc[:pos] + text + "\n" + doc[pos:]
    tmp = DOCS + ".scaling.tmp"
    with open(tmp, "w") as f:
        f.write(doc)
    os.replace(tmp, DOCS)


def git_state(state_file: str | None = None) -> str:
    """HEAD and the uncommitted files of lib/, helpers/, icap/ (tests/bench/ too), from the
    file scaling.sh writes right after the build, else from the tree now."""
    if state_file and os.path.exists(state_file):
        with open(state_file) as f:
            lines = f.read().rstrip("\n").split("\n")
        head, dirty = lines[0].strip(), lines[1:]
        when = " (state recorded at build time)"
    else:
        def sh(*cmd):
            return subprocess.run(cmd, capture_output=True, text=True, cwd=SRC).stdout.rstrip("\n")
        head = sh("git", "rev-parse", "--short", "HEAD").strip()
        dirty = sh("git", "status", "--porcelain", "--", "lib", "helpers", "icap").splitlines()
        when = " (state now, not recorded at build time)"
    files = sorted({l[3:] for l in dirty if l.strip() and not l[3:].startswith("tests/")})
    return head + (" plus uncommitted changes in " + ", ".join(files) if files else "") + when


# --------------------------------------------------------------------------------------
# engine

def engine(bench_json: str, data_dir: str) -> str:
    with open(bench_json) as f:
        data = json.load(f)
    runs: dict[str, list] = {}
    errors = []
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            errors.append(f"{b['name']}: {b.get('error_message', '')}")
            continue
        if b.get("run_type") == "aggregate":
            continue
        runs.setdefault(b["run_name"], []).append(b)

    def stat(name: str) -> dict | None:
        v = runs.get(name)
        if not v:
            return None
        cpu = [b["cpu_time"] * NS[b.get("time_unit", "ns")] for b in v]
        wall = [b["real_time"] * NS[b.get("time_unit", "ns")] for b in v]
        out = {"n": len(v), "cpu_ns": statistics.median(cpu), "min_cpu_ns": min(cpu),
               "max_cpu_ns": max(cpu), "wall_ns": statistics.median(wall)}
        for k in ("allocs_per_decision", "policy_bytes", "policy_files", "requests_reaching_all",
                  "bypass_pct"):
            if k in v[0]:
                out[k] = statistics.median(b[k] for b in v)
        return out

    med = {name: stat(name) for name in runs}
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "host.dat"), "w") as f:
        f.write("# rules median_cpu_ns min max load_ms\n")
        for n in HOST_N:
            s, ld = med.get(f"BM_Scale_HostRules/{n}"), med.get(f"BM_Scale_LoadHostRules/{n}")
            if s:
                f.write(f"{n} {s['cpu_ns']:.2f} {s['min_cpu_ns']:.2f} {s['max_cpu_ns']:.2f}"
                        f" {ld['cpu_ns'] / 1e6 if ld else float('nan'):.3f}\n")
    with open(os.path.join(data_dir, "regex.dat"), "w") as f:
        f.write("# rules " + " ".join(f"{b}_median {b}_min {b}_max" for b, _, _ in FAMILIES) + "\n")
        for n in REGEX_N[1:]:
            cols = []
            for b, _, _ in FAMILIES:
                s = med.get(f"{b}/{n}")
                cols += ([f"{s['cpu_ns']:.2f}", f"{s['min_cpu_ns']:.2f}", f"{s['max_cpu_ns']:.2f}"]
                         if s else ["NaN"] * 3)
            f.write(f"{n} " + " ".join(cols) + "\n")
    base = [med[f"{b}/0"]["cpu_ns"] for b, _, _ in FAMILIES if med.get(f"{b}/0")]
    base0 = statistics.median(base) if base else float("nan")
    with open(os.path.join(data_dir, "vars.gp"), "w") as f:
        f.write(f"base0 = {base0:.2f}\n")
        for i, (_, _, title) in enumerate(FAMILIES, 1):
            f.write(f"title{i} = \"{title}\"\n")
    ctx = data.get("context", {})
    with open(os.path.join(data_dir, "engine.json"), "w") as f:
        json.dump({"context": ctx, "stats": med, "errors": errors, "base0_ns": base0}, f, indent=1)

    # ---- Markdown
    reps = max((s["n"] for s in med.values() if s), default=0)
    L = [ENGINE_SECTION, ""]
    L += wrap("Reproduce: `tests/bench/scaling.sh` (Release build of `authbypass_scaling_bench`"
              " in `build-bench/`; `--repetitions N`, `--min-time S`; `--write-docs` rewrites this section; raw JSON in"
              " `build-bench/scaling_bench.json`, medians in `build-bench/scaling/engine.json`;"
              " plot by `tests/bench/scaling.gp` with gnuplot). Cases:"
              " `tests/bench/scaling_bench.cc`, which includes `engine_bench.cc` and so uses its"
              " generators and mixes unchanged. Figures: median CPU time per decision over"
              f" {reps} repetitions in random interleaved order (min–max in brackets),"
              " one decision per iteration over the 64-request mix.")
    L.append("")
    L += wrap(f"Run {ctx.get('date', '?')} on {ctx.get('host_name', '?')}: {ctx.get('num_cpus', '?')}"
              f" CPUs, load average {', '.join(f'{x:.2f}' for x in ctx.get('load_avg', []))} at start"
              "; built from"
              f" {git_state(os.path.join(data_dir, 'build-state.txt'))}.")
    L.append("")
    L.append("![decision time vs number of host rules and of regex rules](scaling.png)")
    L.append("")
    L += wrap("[`docs/perf/scaling.png`](scaling.png): left, decide() against the number of"
             " host rules; right, against the number of regex rules added to the shipped policy"
             " (log–log; bars: min–max over repetitions; dashed: the shipped policy alone).")
    L.append("")
    L += wrap("**Host rules.** engine_bench's synthetic policy (each rule: three host names and one"
             " `.domain` suffix) and its mix (half hits on random rules, half misses, near misses"
             " included); the answers are checked before timing.")
    L.append("")
    L.append("| host rules | policy YAML | decide(), CPU | vs 10 rules | decisions/s | allocs/decision | load_policy_text |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|")
    h10 = med.get("BM_Scale_HostRules/10")
    for n in HOST_N:
        s, ld = med.get(f"BM_Scale_HostRules/{n}"), med.get(f"BM_Scale_LoadHostRules/{n}")
        if not s:
            L.append(f"| {n:,} | not run | | | | | |")
            continue
        size = s.get("policy_bytes", 0)
        files = int(s.get("policy_files", 1))
        size_s = (f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB") + (
            f" ({files} files)" if files > 1 else "")
        L.append(f"| {n:,} | {size_s} | {s['cpu_ns']:.0f} ns ({s['min_cpu_ns']:.0f}–{s['max_cpu_ns']:.0f})"
                 f" | {s['cpu_ns'] / h10['cpu_ns']:.2f}× | {fmt_rate(1e9 / s['cpu_ns'])}"
                 f" | {s.get('allocs_per_decision', float('nan')):.2f}"
                 f" | {fmt_ms(ld['cpu_ns']) if ld else '–'} |")
    L.append("")
    L += wrap("**Regex rules.** The shipped policy (8 rules) plus N generated hostless rules appended"
             " after its last rule, on engine_bench's realistic mix (N = 0: the shipped policy"
             " alone). The generated regexes never match the mix (checked: every decision equals"
             " the shipped policy's), so every one is evaluated for each request that passes its"
             " cheap criteria (GET/HEAD, port 80) and that no shipped rule bypassed first: "
             + (f"{int(med['BM_Scale_PathRegex/1']['requests_reaching_all'])} of the 64 requests"
                if med.get("BM_Scale_PathRegex/1") else "most requests")
             + " — the most a regex rule can cost. Patterns (K = the rule's number):"
             " `/pki-K/(crl|certs)/[a-z0-9._-]+\\.(crl|crt)` (literal start),"
             " `.*/pki-K/[a-z0-9._-]+\\.(crl|crt)` (none), `^Updater-K/[0-9]+(\\.[0-9]+)*$`"
             " (anchored), `Updater-K/[0-9]+(\\.[0-9]+)*` (unanchored).")
    L.append("")
    L.append("| regex rules | " + " | ".join(lbl for _, lbl, _ in FAMILIES) + " | load (path_regex) |")
    L.append("|---:|" + "---:|" * (len(FAMILIES) + 1))
    for n in REGEX_N:
        cells = []
        for b, _, _ in FAMILIES:
            s = med.get(f"{b}/{n}")
            cells.append(f"{fmt_ns(s['cpu_ns'])} ({s.get('allocs_per_decision', 0):.1f} allocs)" if s else "–")
        ld = med.get(f"BM_Scale_LoadRegexRules/{n}")
        L.append(f"| {n:,} | " + " | ".join(cells) + f" | {fmt_ms(ld['cpu_ns']) if ld else '–'} |")
    L.append("")
    notes = []
    h = [med.get(f"BM_Scale_HostRules/{n}") for n in HOST_N]
    if all(h):
        notes.append(
            f"Host rules: from 10 to 100,000 rules (40 to 400,000 host entries) a decision goes from"
            f" {h[0]['cpu_ns']:.0f} to {h[-1]['cpu_ns']:.0f} ns ({h[-1]['cpu_ns'] / h[0]['cpu_ns']:.2f}×;"
            f" medians over all sizes {min(x['cpu_ns'] for x in h):.0f}–{max(x['cpu_ns'] for x in h):.0f} ns"
            + (", and the min–max ranges of all sizes overlap: no trend above this machine's noise"
               if max(x["min_cpu_ns"] for x in h) <= min(x["max_cpu_ns"] for x in h) else
               ": a slow rise, most likely memory — the index and rule tables outgrow the CPU"
               " caches, while the work per decision stays the same")
            + f"; 10,000 rules: {h[3]['cpu_ns'] / h[0]['cpu_ns']:.2f}× the 10-rule time, the engine's"
            " target is ≤ 1.5×): the host index costs one hash lookup for the"
            " request's host and one per parent domain, whatever the number of rules. No"
            " allocation per decision at any size.")
    lh = [med.get(f"BM_Scale_LoadHostRules/{n}") for n in HOST_N]
    if all(lh):
        notes.append(
            "Load time per host rule (CPU): "
            + ", ".join(f"{lh[i]['cpu_ns'] / HOST_N[i] / 1e3:.1f} µs at {HOST_N[i]:,}" for i in range(len(HOST_N)))
            + f" rules ({fmt_ms(lh[-1]['cpu_ns'])} for 100,000 rules"
            + (", whose per-rule cost is"
               f" {lh[-1]['cpu_ns'] / HOST_N[-1] / (lh[-2]['cpu_ns'] / HOST_N[-2]):.1f}× that at 10,000:"
               " loading is not quite linear at that size; not investigated here" if lh[-1]['cpu_ns'] / lh[-2]['cpu_ns'] > 13 else "")
            + "). A policy file is at most 8 MiB, so"
            " the 100,000-rule policy (~155 bytes of YAML per rule) is one in-memory file of 40,000"
            " rules plus two include files (the loader's `include:`, read from a temporary"
            " directory as part of the timed load); up to 10,000 rules it is engine_bench's"
            " `synthetic_policy(N)` text itself. Each helper process loads the policy at start"
            " and reloads it itself when the file changes, between answers: for that time it"
            " answers nothing (lookups sent to it meanwhile wait), and a"
            " rejected file leaves the last good policy in force.")
    per = []
    for b, lbl, _ in FAMILIES:
        s0, s1k = med.get(f"{b}/0"), med.get(f"{b}/1000")
        reach = (s1k or {}).get("requests_reaching_all")
        if s0 and s1k and reach:
            per.append(f"{lbl} {(s1k['cpu_ns'] - s0['cpu_ns']) * 64 / reach / 1000:.0f} ns and"
                       f" {s1k.get('allocs_per_decision', 0) * 64 / reach / 1000:.2f} allocations")
    if per:
        notes.append("Regex rules cost in proportion to their number, for every request that reaches"
                     " them: unlike hosts they are not indexed, so a hostless regex rule is evaluated"
                     " for every GET/HEAD on port 80 that no earlier rule bypassed. Per regex rule and"
                     " per request that reaches it (from N = 1,000): " + "; ".join(per) + ". A literal"
                     " start lets the engine reject a path or an anchored User-Agent pattern with a"
                     " prefix compare before Boost runs; without one Boost runs, and allocates its"
                     " match state, every time. The caller's EvalContext remembers 4 regex outcomes"
                     " per User-Agent, so 1 unanchored UA regex costs nothing more on a repeated"
                     " User-Agent (the"
                     " benchmark's case), and 10 or more overflow that memo. What to do: give regex"
                     " rules `hosts` (then only requests to those hosts reach them, through the host"
                     " index), start patterns with a literal, and use `path_prefix`, `path_suffix` or"
                     " `user_agent` where they suffice.")
    if errors:
        notes.append("Not run: " + "; ".join(errors))
    for n in notes:
        w = wrap(n, 88)
        L.append("- " + w[0])
        L += ["  " + x for x in w[1:]]
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------------------
# e2e

def e2e(e2e_json: str) -> str:
    with open(e2e_json) as f:
        d = json.load(f)
    c = d["cells"]
    conns = sorted({int(k.rsplit("/c", 1)[1]) for k in c})
    settings = d["settings"]

    def label(cfg: str) -> str:
        if cfg == "recipe":
            return "built-in recipe, no helper (baseline)"
        s = settings[cfg]
        return f"children-max={s['children_max']} concurrency={s['concurrency']}"

    def ms(us_: float) -> str:
        return f"{us_ / 1000:.1f} ms"

    L = [E2E_SECTION, ""]
    L += wrap("Reproduce: `tests/bench/scaling.sh --e2e` (as root; `--e2e-only` for this part"
              " alone, or `tests/bench/e2e_helper_scaling.py`; `tests/bench/run-all --parts"
              " scaling` runs a shorter version of both scaling sections; raw numbers in"
              " `build-bench/e2e_helper_scaling.json`; `--write-docs` rewrites this section).")
    L.append("")
    L += wrap(f"Setup: {d.get('squid_version', 'Squid')}; one Squid per configuration"
              f" ({len(d['configs'])}, started side by side with tests/lab/squid.py and"
              " e2e_squid.py's changes: the epoll origin `tests/bench/e2e_origin.cc`, server"
              " keep-alive). Each helper configuration runs `ext_authbypass_acl` with no prefilter"
              " (`http_access allow authbypass`) at `ttl=0 negative_ttl=0 cache=0`, so every"
              " request is a helper lookup, `children-startup=0 queue-size=1000`, `--audit-log` as"
              " squidlab runs it; the baseline is the built-in recipe (the policy as plain Squid ACLs"
              f" from `authbypass squid-config`, no helper). Traffic: the \"bypassed only\" mix (CRL"
              " URLs on 4 CA hosts, `Microsoft-CryptoAPI/10.0`, no credentials; every answer must be"
              f" 200), `wrk -t1 -c{'/'.join(map(str, conns))}`, keep-alive client connections,"
              f" {d['config']['seconds']:g} s per cell after a {d['config']['warmup']:g} s warm-up of"
              f" each Squid; {d['rounds_done']} rounds, connection counts shuffled and, for each,"
              " every Squid back to back in shuffled order; requests/s and p99 are medians over"
              " rounds, the ratio is the median of same-round ratios to the recipe.")
    L.append("")
    when = d.get("date") or datetime.datetime.fromtimestamp(
        os.path.getmtime(e2e_json) - d.get("total_s", 0), datetime.timezone.utc).isoformat(timespec="seconds")
    L += wrap(f"Run {when}:"
              f" load average {', '.join(f'{x:.2f}' for x in d['load_start'])} at start,"
              f" {', '.join(f'{x:.2f}' for x in d['load_end'])} at end (2 cores shared by wrk,"
              f" the Squids, the helpers and the origin); helper binary sha256 {d.get('helper_sha256', '?')}"
              + (f", built {d['helper_mtime']}" if d.get("helper_mtime") else "")
              + (f", repository HEAD at run time {d['git_head']}" if d.get("git_head") else "") + ";"
              f" whole run {d['total_s']:.0f} s.")
    L.append("")
    head = "| configuration | " + " | ".join(f"{n} conns: req/s | p99 | vs recipe" for n in conns)
    L.append(head + " | helpers started (used) | Squid + helper CPU µs/req |")
    L.append("|---|" + "---:|---:|---:|" * len(conns) + "---:|---:|")
    for cfg in d["configs"]:
        row = [label(cfg)]
        for n in conns:
            x = c.get(f"{cfg}/c{n}")
            if not x:
                row += ["–", "–", "–"]
                continue
            r = x.get("ratio_to_recipe")
            row += [fmt_rate(x["median_rps"]), ms(x["median_p99_us"]),
                    "" if cfg == "recipe" else (f"{r:.2f}" if r is not None else "–")]
        big = c.get(f"{cfg}/c{max(conns)}", {})
        row.append("–" if cfg == "recipe" else
                   f"{big.get('median_helper_processes', 0):.0f} ({big.get('max_helpers_with_cpu', 0)})")
        row.append(f"{big.get('median_squid_cpu_us', 0):.0f} + {big.get('median_helper_cpu_us', 0):.0f}")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    asks = [v["helper_asks_per_bypass"] for k, v in c.items() if "helper_asks_per_bypass" in v]
    statuses = sum(v["status"].get("200", 0) for v in c.values())
    L += wrap(f"Checks: {statuses:,} answers, all 200"
              + ("" if not d["errors"] else f" — errors: {'; '.join(d['errors'])}")
              + (f"; helper decisions per answer (audit log) {min(a[0] for a in asks):.2f}–"
                 f"{max(a[1] for a in asks):.2f}, so every request was a helper lookup" if asks else "")
              + f". Helpers columns: at {max(conns)} connections, the helper processes Squid had"
              " started (median) and the most that used CPU in a cell; CPU per request at"
              f" {max(conns)} connections too.")
    L.append("")
    L += reading(d, conns)
    return "\n".join(L) + "\n", d


def reading(d: dict, conns: list[int]) -> list[str]:
    """What the figures mean for an admin, from this run's numbers."""
    c, st = d["cells"], d["settings"]
    helpers = [k for k in d["configs"] if k != "recipe"]

    def ratio(cfg, n):
        x = c.get(f"{cfg}/c{n}")
        return x.get("ratio_to_recipe") if x else None

    def rng(vals, f="{:.2f}"):
        vals = [v for v in vals if v is not None]
        return f"{f.format(min(vals))}–{f.format(max(vals))}" if vals else "–"

    def cpu(cfg):  # Squid + helper CPU per request, median over connection counts
        v = [c[f"{cfg}/c{n}"]["median_squid_cpu_us"] + c[f"{cfg}/c{n}"]["median_helper_cpu_us"]
             for n in conns if f"{cfg}/c{n}" in c]
        return statistics.median(v) if v else float("nan")

    def hcpu(cfg):
        v = [c[f"{cfg}/c{n}"]["median_helper_cpu_us"] for n in conns if f"{cfg}/c{n}" in c]
        return statistics.median(v) if v else float("nan")

    c0 = [k for k in helpers if st[k]["concurrency"] == 0]
    cc = [k for k in helpers if st[k]["concurrency"] >= 10]
    lines = ["Per-round ratios to the recipe (the noise of this machine), at " + ", ".join(
        f"{n} conns" for n in conns) + ": " + "; ".join(
        f"{k} " + ", ".join(rng(c[f'{k}/c{n}']['ratio_to_recipe_per_round']) for n in conns
                           if f"{k}/c{n}" in c) for k in helpers) + "."]
    med_c0 = statistics.median([r for k in c0 for n in conns if (r := ratio(k, n)) is not None])
    med_cc = statistics.median([r for k in cc for n in conns if (r := ratio(k, n)) is not None])
    base_cpu = cpu("recipe")
    us0 = "{:.0f}"
    c0_med = [statistics.median([r for n in conns if (r := ratio(k, n)) is not None]) for k in c0]
    rising = (len(c0_med) > 1 and all(b >= a for a, b in zip(c0_med, c0_med[1:]))
              and c0_med[-1] - c0_med[0] >= 0.1)
    lines.append(
        f"**Reading.** With `concurrency=0` (one lookup in flight per helper process) the"
        f" helper configurations reached {rng([ratio(k, n) for k in c0 for n in conns])} of the"
        f" recipe's requests/s (median {med_c0:.2f}); children-max "
        + ", ".join(str(st[k]["children_max"]) for k in c0) + " gave "
        + ", ".join(f"{x:.2f}" for x in c0_med)
        + " (median over connection counts)"
        + (", rising with more processes (more lookups in flight) but inside the per-round spread"
           " above, and below what concurrency gives with one process" if rising else
           ", no trend beyond the per-round spread above")
        + f". Most of the gap to the recipe is CPU: Squid and helper together spent {rng([cpu(k) for k in c0], us0)} µs"
        f" of CPU per request at concurrency 0, {rng([cpu(k) for k in cc], us0)} µs with"
        f" concurrency 10 or more, and {base_cpu:.0f} µs for the recipe without a helper (the"
        f" helper's share: {rng([hcpu(k) for k in c0], us0)} µs at concurrency 0,"
        f" {rng([hcpu(k) for k in cc], us0)} µs with concurrency). With several lookups in"
        f" flight the helper reads them together and answers them in one write (it batches per"
        f" read), so it wakes up and writes less often per lookup; those configurations reached"
        f" {rng([ratio(k, n) for k in cc for n in conns])} of the recipe (median {med_cc:.2f})."
        + "".join(f" `concurrency=1` (children-max=1) is the concurrent protocol with one lookup in"
                  f" flight, and behaved like concurrency 0:"
                  f" {rng([ratio(k, n) for n in conns])} of the recipe, {cpu(k):.0f} µs CPU per request."
                  for k in helpers if st[k]["concurrency"] == 1))
    one = [k for k in cc if st[k]["children_max"] > 1]
    if one:
        k = one[0]
        used = max(c[f"{k}/c{n}"].get("median_helper_processes", 0) for n in conns if f"{k}/c{n}" in c)
        lines.append(
            f"With children-max={st[k]['children_max']} concurrency={st[k]['concurrency']}, Squid"
            f" started {used:.0f} helper process(es) (median per cell): with"
            f" `children-startup=0` it starts another only when the running ones are busy, and one"
            f" process with {st[k]['concurrency']} slots never was. One helper process answers"
            " about a million lines per second over a pipe (helper throughput section), far more"
            " than one Squid process asks for here.")
    lines.append(
        "**What to set.** `concurrency=50` to `100` (the helper detects channel ids by itself;"
        " `authbypass squid-config` prints `children-max=4 concurrency=100 queue-size=1000`):"
        " it costs less CPU per lookup than `concurrency=0`, and it does not depend on"
        " children-max to have many lookups in flight. `children-max` above 1 is then spare"
        " capacity rather than speed: keep 2–4, so that a helper restarting, or reloading a large"
        " policy (each process reloads on its own and answers nothing meanwhile: over a second for"
        " 100,000 host rules, see the engine scaling section), does not hold up every lookup."
        " With `concurrency=0` (only if something in front of the helper cannot handle channel"
        " ids), children-max is the number of lookups that can be in flight: size it to the peak of"
        " simultaneous lookups (each process costs memory and its own policy load), and in every"
        " case keep `queue-size`"
        " well above that peak (a full"
        " queue answers 403 to every request reaching the ACL). The larger lever is the"
        " prefilter: behind `authbypass squid-config`'s ACLs only candidate requests reach the"
        " helper at all (the Squid end-to-end rows of the summary), so browsing traffic does not"
        " pay for the lookup.")
    out = []
    for t in lines:
        out += wrap(t)
        out.append("")
    return out


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--write-docs"]
    write = "--write-docs" in sys.argv[1:]
    if len(args) >= 3 and args[0] == "engine":
        text = engine(args[1], args[2])
        if write:
            write_section(ENGINE_SECTION, text, after="## Engine")
    elif len(args) >= 2 and args[0] == "e2e":
        text, _d = e2e(args[1])
        if write:
            write_section(E2E_SECTION, text)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
