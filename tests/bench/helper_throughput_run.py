#!/usr/bin/env python3
"""Measurement half of tests/bench/helper_throughput.sh (run that, not this).

Checks that every program answers the generated lines sensibly, then runs several rounds
of: echo loop, ext_authbypass_acl, ext_authbypass_acl --audit-log, squidGuard (order
shuffled within each round), each reading the whole input file on stdin with stdout to
/dev/null. Wall time from time.perf_counter around the child, CPU time and peak RSS from
os.wait4's rusage of that child. Writes raw numbers as JSON, prints the Markdown section
for docs/perf/benchmarks.md and, with --write-docs, rewrites that section in place.
"""
import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time

SECTION = "## Squid helper throughput"
TARGETS = {  # ratio of median lines/s: (numerator, denominator, minimum)
    "helper / echo": ("helper", "echo", 0.4),
    "helper / squidGuard": ("helper", "squidguard", 5.0),
    "helper with audit / helper": ("helper_audit", "helper", 0.8),
}
LABELS = {
    "echo": "echo loop (buffered; the pipe's limit)",
    "echo_flush": "(reference) echo loop, flush per answer",
    "helper": "ext_authbypass_acl",
    "helper_audit": "ext_authbypass_acl --audit-log FILE",
    "squidguard": "squidGuard 1.6 (url_rewrite format)",
}
RUN_TIMEOUT_S = 60  # per run; a 1M-line run takes 0.1-3 s here
TIME = "/usr/bin/time"  # GNU time (Debian package "time"), for the peak RSS


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--helper", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--echo", required=True)
    p.add_argument("--squidguard-conf", default="")
    p.add_argument("--work", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--docs", required=True)
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--write-docs", action="store_true")
    return p.parse_args()


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def run_timed(argv, stdin_path, rss_file):
    """Runs argv with stdin_path on stdin, stdout to /dev/null, under /usr/bin/time.

    Wall time: time.perf_counter around the whole run. CPU time: os.wait4's rusage
    (µs resolution; includes /usr/bin/time's own ~1 ms). Peak RSS: /usr/bin/time's %M,
    not wait4's: a child forked from this Python process inherits Python's RSS high-water
    mark across exec, so wait4 would report ~30+ MB for everything.
    """
    with open(stdin_path, "rb") as fin:
        t0 = time.perf_counter()
        proc = subprocess.Popen([TIME, "-o", rss_file, "-f", "%x %M"] + argv, stdin=fin,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killer = threading.Timer(RUN_TIMEOUT_S, proc.kill)
        killer.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(rss_file) as f:
        last = f.read().split("\n")[-2].split()  # "EXIT MAXRSS_KB" (after any notice line)
    os.remove(rss_file)
    code = proc.returncode if proc.returncode != 0 else int(last[0])
    return {"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_kb": int(last[1]), "exit": code}


def capture(argv, stdin_path):
    with open(stdin_path, "rb") as fin:
        r = subprocess.run(argv, stdin=fin, capture_output=True, timeout=RUN_TIMEOUT_S)
    if r.returncode != 0:
        sys.exit(f"{argv[0]} exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return r.stdout.decode().splitlines()


def check_answers(progs, files, n_lines, work):
    """Untimed pass over the whole input (also warms the page cache); returns counts."""
    v = {}
    inp = open(files["authbypass"], encoding="ascii").read().splitlines()
    if len(inp) != n_lines:
        sys.exit(f"input has {len(inp)} lines, expected {n_lines}")

    out = capture(progs["echo"], files["authbypass"])
    v["echo"] = {"answers": len(out)}
    if len(out) != n_lines:
        sys.exit(f"echo loop answered {len(out)} of {n_lines} lines")

    out = capture(progs["helper"], files["authbypass"])
    if len(out) != n_lines:
        sys.exit(f"helper answered {len(out)} of {n_lines} lines")
    kinds, rules, bad_ids, broken = collections.Counter(), collections.Counter(), 0, 0
    for q, a in zip(inp, out):
        f = a.split(" ")
        if f[0] != q.split(" ", 1)[0]:
            bad_ids += 1
        kinds[f[1]] += 1
        if f[1] == "OK":
            m = re.search(r"\blog=(\S+)", a)
            rules[m.group(1) if m else "?"] += 1
        elif f[1] != "ERR" or "message=" in a:
            broken += 1  # BH, or ERR carrying an error message (parse failure)
    v["helper"] = {"answers": len(out), "ok": kinds["OK"], "err": kinds["ERR"],
                   "other": sum(kinds.values()) - kinds["OK"] - kinds["ERR"],
                   "error_answers": broken, "channel_mismatches": bad_ids,
                   "ok_by_rule": dict(rules.most_common())}
    samples = []
    for want in ("OK", "ERR"):
        picked = [i for i, a in enumerate(out) if a.split(" ")[1] == want][:4]
        samples += [{"in": inp[i], "out": out[i]} for i in picked]
    v["helper"]["samples"] = samples
    ok_frac = kinds["OK"] / n_lines
    if bad_ids or broken or not (0.05 < ok_frac < 0.5):
        sys.exit(f"helper answers look wrong: {v['helper']}")

    audit = os.path.join(work, "audit-check.log")
    if os.path.exists(audit):
        os.remove(audit)
    capture(progs["helper_audit"][:-1] + [audit], files["authbypass"])
    with open(audit, "rb") as f:
        events = collections.Counter(json.loads(l)["event"] for l in f)
    v["helper_audit"] = {"audit_bytes": os.path.getsize(audit), "events": dict(events)}
    os.remove(audit)
    if events["bypass"] != kinds["OK"]:
        sys.exit(f"audit log has {events['bypass']} bypass events for {kinds['OK']} OK answers")

    if "squidguard" in progs:
        out = capture(progs["squidguard"], files["urlrewrite"])
        if len(out) != n_lines:
            sys.exit(f"squidGuard answered {len(out)} of {n_lines} lines")
        redirect = sum(1 for a in out if a.startswith("OK rewrite-url="))
        passed = sum(1 for a in out if a == "ERR")
        v["squidguard"] = {"answers": len(out), "redirect": redirect, "pass": passed,
                           "samples": out[:3]}
        if redirect == 0 or passed == 0 or redirect + passed != n_lines:
            sys.exit(f"squidGuard answers look wrong: {v['squidguard']}")
    return v


def fmt_rate(x):
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def main():
    a = parse_args()
    work = a.work
    files = {"authbypass": os.path.join(work, "authbypass.txt"),
             "urlrewrite": os.path.join(work, "urlrewrite.txt")}
    progs = {
        "echo": [a.echo],
        "echo_flush": [a.echo, "--flush-each"],
        "helper": [a.helper, "--policy", a.policy],
        "helper_audit": [a.helper, "--policy", a.policy, "--audit-log", "AUDIT"],
    }
    stdin_of = {k: files["authbypass"] for k in progs}
    if a.squidguard_conf:
        progs["squidguard"] = ["squidGuard", "-c", a.squidguard_conf]
        stdin_of["squidguard"] = files["urlrewrite"]

    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    load_start = os.getloadavg()
    print(f"== checking the answers on all {a.lines} lines", file=sys.stderr)
    verify = check_answers(progs, files, a.lines, work)
    h = verify["helper"]
    print(f"   helper: {h['ok']} OK, {h['err']} ERR; by rule {h['ok_by_rule']}", file=sys.stderr)
    for s in h["samples"]:
        print(f"   {s['in'][:110]}\n      -> {s['out']}", file=sys.stderr)
    if "squidguard" in verify:
        g = verify["squidguard"]
        print(f"   squidGuard: {g['redirect']} redirect (bypass), {g['pass']} pass", file=sys.stderr)

    runs = {k: [] for k in progs}
    rnd = random.Random(a.seed)
    for r in range(a.rounds):
        order = list(progs)
        rnd.shuffle(order)
        for name in order:
            argv = list(progs[name])
            audit = None
            if name == "helper_audit":
                audit = os.path.join(work, f"audit-round{r}.log")
                if os.path.exists(audit):
                    os.remove(audit)
                argv[-1] = audit
            res = run_timed(argv, stdin_of[name], os.path.join(work, "time.out"))
            if audit:
                res["audit_bytes"] = os.path.getsize(audit)
                os.remove(audit)
            if res["exit"] != 0:
                sys.exit(f"{name} exited {res['exit']} in round {r}")
            res["round"], res["lines_per_s"] = r, a.lines / res["wall_s"]
            runs[name].append(res)
        print(f"== round {r + 1}/{a.rounds}: " + ", ".join(
            f"{n} {runs[n][-1]['wall_s']:.2f}s" for n in order), file=sys.stderr)
    load_end = os.getloadavg()

    med = {}
    for name, rs in runs.items():
        med[name] = {
            "wall_s": statistics.median(x["wall_s"] for x in rs),
            "cpu_s": statistics.median(x["cpu_s"] for x in rs),
            "lines_per_s": statistics.median(x["lines_per_s"] for x in rs),
            "lines_per_s_min": min(x["lines_per_s"] for x in rs),
            "lines_per_s_max": max(x["lines_per_s"] for x in rs),
            "maxrss_kb": max(x["maxrss_kb"] for x in rs),
        }
    ratios = {}
    for label, (num, den, target) in TARGETS.items():
        if num in med and den in med:
            v = med[num]["lines_per_s"] / med[den]["lines_per_s"]
            ratios[label] = {"value": v, "target": target, "met": v >= target}
        else:
            ratios[label] = {"value": None, "target": target, "met": None}

    git_rev = sh(["git", "rev-parse", "--short", "HEAD"])
    dirty = bool(sh(["git", "status", "--porcelain", "--", "lib", "helpers"]))
    with open(a.helper, "rb") as f:
        helper_sha = hashlib.sha256(f.read()).hexdigest()
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    sg_version = ""
    if "squidguard" in progs:
        sg_version = sh(["dpkg-query", "-W", "-f=${Version}", "squidguard"])
    info = {
        "date": start.isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
        "cpu_model": cpu_model, "load_avg_start": load_start, "load_avg_end": load_end,
        "git_rev": git_rev, "lib_or_helpers_uncommitted": dirty, "helper_sha256": helper_sha,
        "squidguard_version": sg_version, "lines": a.lines, "rounds": a.rounds,
        "input_bytes": {k: os.path.getsize(p) for k, p in files.items()},
        "commands": {k: " ".join(v) for k, v in progs.items()},
    }
    with open(a.json, "w") as f:
        json.dump({"info": info, "verify": verify, "runs": runs, "medians": med,
                   "ratios": ratios}, f, indent=1)
    print(f"wrote {a.json}", file=sys.stderr)

    md = render(info, verify, med, ratios)
    print(md)
    md_path = os.path.splitext(a.json)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(md)
    if a.write_docs:
        write_docs(a.docs, md)
        print(f"rewrote section '{SECTION}' of {a.docs}", file=sys.stderr)


def render(info, verify, med, ratios):
    L = []
    w = L.append
    w(SECTION)
    w("")
    w("Reproduce: `tests/bench/helper_throughput.sh` (as root, for `apt-get install squidguard` "
      "if missing; `--write-docs` rewrites this section in place; raw numbers in "
      "`build-bench/helper_throughput.json`). Input: "
      f"{info['lines']:,} lines from `tests/bench/helper_gen_lines.py` (seed 42: 20% revocation "
      "hosts, 10% `*.crl` elsewhere, 70% browsing), "
      f"{info['input_bytes']['authbypass'] / 1e6:.0f} MB in the helper's default format "
      "(channel id, `%SRC %METHOD %#URI %#>ha{User-Agent}`, `%DATA` `-`), "
      f"{info['input_bytes']['urlrewrite'] / 1e6:.0f} MB in squidGuard's url_rewrite format. "
      "Each program reads the whole file on stdin and writes to /dev/null; "
      f"{info['rounds']} rounds, programs in shuffled order within each round; medians. "
      "Wall time: `time.perf_counter` around the child; CPU time (user + sys): its rusage; "
      "peak RSS: `/usr/bin/time` (%M).")
    w("")
    rev = info["git_rev"] + (" with uncommitted changes in lib/ or helpers/"
                             if info["lib_or_helpers_uncommitted"] else "")
    w(f"Run {info['date']} on {info['host']}: {info['cpus']} CPUs ({info['cpu_model']}), "
      f"load average {', '.join(f'{x:.2f}' for x in info['load_avg_start'])} at start, "
      f"{', '.join(f'{x:.2f}' for x in info['load_avg_end'])} at end; helper built from "
      f"{rev} (binary sha256 {info['helper_sha256'][:12]})"
      + (f"; squidGuard {info['squidguard_version']}" if info["squidguard_version"] else "")
      + ".")
    w("")
    w("| Program | median lines/s | range over rounds | median wall s | median CPU s | peak RSS |")
    w("|---|---:|---:|---:|---:|---:|")
    for name in ("echo", "helper", "helper_audit", "squidguard", "echo_flush"):
        if name not in med:
            w(f"| {LABELS[name]} | not run | | | | |")
            continue
        m = med[name]
        w(f"| {LABELS[name]} | {fmt_rate(m['lines_per_s'])} | "
          f"{fmt_rate(m['lines_per_s_min'])}–{fmt_rate(m['lines_per_s_max'])} | "
          f"{m['wall_s']:.3f} | {m['cpu_s']:.3f} | {m['maxrss_kb'] / 1024:.1f} MB |")
    w("")
    w("Targets, ratios of the median lines/s above:")
    w("")
    w("| ratio | measured | target | |")
    w("|---|---:|---:|---|")
    met, missed = [], []
    for label, r in ratios.items():
        if r["value"] is None:
            w(f"| {label} | not measured | ≥ {r['target']:g} | |")
            continue
        verdict = "met" if r["met"] else "**missed**"
        (met if r["met"] else missed).append(f"{label} {r['value']:.2f} (≥ {r['target']:g})")
        w(f"| {label} | {r['value']:.2f} | ≥ {r['target']:g} | {verdict} |")
    w("")
    w("In this run: " + ("met: " + "; ".join(met) if met else "no target met")
      + (". Missed: " + "; ".join(missed) if missed else ". All targets met") + ".")
    w("")
    h = verify["helper"]
    rules = ", ".join(f"{k} {v:,}" for k, v in h["ok_by_rule"].items())
    w(f"- Answers, checked on all lines before timing: the helper said OK to {h['ok']:,} "
      f"({100 * h['ok'] / h['answers']:.1f}%: {rules}) and ERR to {h['err']:,}, "
      "with no parse errors and every channel id echoed"
      + (f"; squidGuard redirected (its \"bypass\") {verify['squidguard']['redirect']:,} "
         f"({100 * verify['squidguard']['redirect'] / verify['squidguard']['answers']:.1f}%) "
         "and passed the rest" if "squidguard" in verify else "") + ".")
    w("- The rule sets differ on purpose: squidGuard's is all 56 generated revocation hosts "
      "wholesale plus `\\.crl$` on the whole URL (squidGuard cannot look at the method, port "
      "or User-Agent, nor match the path alone after normalization); the shipped policy "
      "covers fewer of the generated hosts, and only for GET/HEAD on port 80 (POST for its "
      "listed OCSP responders), so its bypass share is lower. The comparison is of cost per "
      "line, not of verdicts.")
    ha = verify["helper_audit"]
    ev = ", ".join(f"{v:,} {k}" for k, v in ha["events"].items())
    w(f"- With `--audit-log`, one JSON line per bypass and per shadow match: {ev} events, "
      f"{ha['audit_bytes'] / 1e6:.0f} MB per run (file on the same disk, removed after each run).")
    w("- The echo loop answers `ERR` to every line through a buffered std::cout; the helper "
      "also batches (one write per read chunk), so the buffered echo is the fair baseline. "
      "The flush-per-answer echo (one write(2) per line) is shown for reference only, not "
      "used in a ratio.")
    ns = {k: 1e9 * m["wall_s"] / info["lines"] for k, m in med.items()}
    if "helper" in ns and "echo" in ns:
        line = (f"- Per line (median wall): echo {ns['echo']:.0f} ns, helper {ns['helper']:.0f} ns, "
                f"so about {ns['helper'] - ns['echo']:.0f} ns of the helper's own work per line")
        if "helper_audit" in ns:
            n_ev = sum(v for k, v in ha["events"].items() if k in ("bypass", "shadow"))
            extra = ns["helper_audit"] - ns["helper"]
            line += (f"; `--audit-log` adds {extra:.0f} ns per line, i.e. "
                     f"{extra * info['lines'] / max(n_ev, 1):.0f} ns per audit event")
        cpu_bound = all(m["cpu_s"] >= 0.9 * m["wall_s"] for m in med.values())
        w(line + (". CPU ≥ 90% of wall for every program: all are CPU-bound here (input from "
                  "a cached file, output to /dev/null)." if cpu_bound else "."))
    w("- Shared, noisy 2-core machine: compare ratios within one run, not absolute figures "
      "across runs.")
    out = []
    for para in L:  # wrap prose like the rest of docs/perf/benchmarks.md; tables stay one line
        if para.startswith(("|", "#")) or not para:
            out.append(para)
        else:
            out.append(textwrap.fill(para, width=92, subsequent_indent="  " if
                                     para.startswith("- ") else "", break_on_hyphens=False,
                                     break_long_words=False))
    return "\n".join(out) + "\n"


def write_docs(path, md):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip("\n") == SECTION), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + md
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")),
                   len(lines))
        tail = "".join(lines[end:])
        text = "".join(lines[:start]) + md + ("\n" + tail if tail else "")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    shutil.copymode(path, tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
