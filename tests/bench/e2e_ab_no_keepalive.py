#!/usr/bin/python3
"""Squid end to end without keep-alive: `ab` (a new TCP connection per request), squidlab's
Python origin, bypassed URL only.

    e2e_ab_no_keepalive.py --helper BIN --cli BIN --policy FILE --module srv_authbypass.so
                         [--floor-icap BIN] [--floor-helper BIN] --json OUT
                         [--rounds N] [--seconds S] [--concurrency C] [--ab /usr/bin/ab]

The ICAP decision mode's target is "decision mode with prefilter ≥ 0.85× the built-in ACLs
on the bypassed URL"; its first rough estimate (2-core machine, ab, no keep-alive, Python
origin: built-in urlpath_regex bypass ~1,610 req/s, header-mark decision mode ~1,300, ~0.8×)
was made in this setup, where connection set-up dominates. This measures that setup with the project's real pieces, reusing the labs of
tests/bench/e2e_squid.py (BenchLab with origin_port=None: squidlab's own Python origin,
`server_persistent_connections off`, so every request is a new TCP connection on both
sides; BenchCIcap; FloorIcap), tests/lab/squid.py and tests/lab/cicap.py:

  recipe                (a) the built-in recipe: the policy's rules as plain Squid ACLs
                        (the prefilter of `authbypass squid-config`, shadow rules left out)
                        and `http_access allow` on them, no helper
  prefilter             (b) ext_authbypass_acl behind that prefilter, ttl=0 negative_ttl=0
                        cache=0 (every request asks the helper; its audit log proves it)
  floor-prefilter       (b0) with --floor-helper: (b)'s config, the helper answers OK at once
  icap-prefilter        (d) ICAP decision mode behind the prefilter: the drop-in of
                        `authbypass squid-config --mode icap` (RESPMOD left out), c-icap
                        0.5.10 with srv_authbypass.so (authbypass.Mode decide), sized as
                        e2e_squid.py sizes it (2 × 20 threads, keep-alive unlimited, no access
                        log, DebugLevel 0)
  floor-icap-prefilter  (d0) with --floor-icap: (d)'s config pointed at the minimal REQMOD
                        server tests/bench/e2e_floor_icap.cpp

Traffic: ApacheBench (Debian's apache2-utils) through the proxy (-X), no -k, so HTTP/1.0
and a new connection per request, -c C for S seconds per cell, one bypassed URL (a CRL
with a CryptoAPI User-Agent, no credentials: 200 expected; every non-2xx or failed
request is an error). Rounds: the configs in shuffled order, back to back; a ratio is the
median over rounds of (config / recipe) in the same round. CPU per request (utime+stime
from /proc) of Squid, its helpers, c-icap (all processes) or the floor server; of this
process (the Python origin's threads: squidlab runs them here) and of ab (os.times()). On
a machine that all of them share, the rate goes as 1 / (all CPU per request): the JSON's
cpu_bound_estimate is the same-round median of all(a) / all(config), a model, not a rate.
After each round, ab straight at the Python origin (same settings, no proxy) gives its own
capacity. JSON to --json, a Markdown table on stdout, progress on stderr. Loopback only;
every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from e2e_squid import (  # noqa: E402
    BYPASS_URLS, CPU_UA, FLOOR_HELPER, FLOOR_ICAP, AuditCounter, BenchCIcap, BenchLab,
    FloorIcap, children_of, exe_of, external_acl_requests_sent, icap_dropins, prefilter_lines,
    proc_cpu_ticks)

LABELS = {"recipe": "(a) built-in ACLs (urlpath_regex etc.)",
          "prefilter": "(b) helper behind prefilter",
          FLOOR_HELPER: "(b0) minimal OK helper behind prefilter (floor)",
          "icap-prefilter": "(d) ICAP decision mode behind prefilter",
          FLOOR_ICAP: "(d0) minimal REQMOD server behind prefilter (floor)"}
TARGETS = {"icap-prefilter": 0.85}  # decision mode's target; (b)'s 0.9 is set with wrk (e2e_squid.py)
URL = BYPASS_URLS[0]


def log(msg: str):
    print(f"e2e_ab_no_keepalive: {msg}", file=sys.stderr, flush=True)


def run_ab(ab: str, port: int, conc: int, seconds: float, direct: bool = False) -> dict:
    """ab through the proxy on `port` (direct: straight at an origin on `port`)."""
    # -t before -n: -t sets the request cap to 50,000, -n after it lifts that
    target = ["-X", f"127.0.0.1:{port}", URL] if not direct else [f"http://127.0.0.1:{port}/origin-only"]
    cmd = [ab, "-q", "-r", "-s", "10", "-t", f"{max(1, round(seconds))}", "-n", "10000000",
           "-c", str(conc), "-H", f"User-Agent: {CPU_UA}", "-H", "Accept: */*", *target]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    out = r.stdout

    def num(label: str, default=None):
        m = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", out, re.M)
        return float(m.group(1)) if m else default
    complete = num("Complete requests")
    taken = num("Time taken for tests")
    if complete is None or not taken:
        raise RuntimeError(f"ab gave no result (rc {r.returncode}): {out[-1500:]} {r.stderr[-1500:]}")
    pct = {int(p): int(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\d+)", out, re.M)}
    return {"requests": int(complete), "seconds": taken, "rps": complete / taken,
            "failed": int(num("Failed requests", 0)), "non_2xx": int(num("Non-2xx responses", 0)),
            "ab_rps": num("Requests per second"), "p50_ms": pct.get(50), "p99_ms": pct.get(99),
            "ab_rc": r.returncode}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--helper", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--module", required=True, help="srv_authbypass.so")
    p.add_argument("--floor-icap", help="e2e_floor_icap binary: adds (d0)")
    p.add_argument("--floor-helper", help="e2e_floor_helper binary: adds (b0)")
    p.add_argument("--ab", default=shutil.which("ab") or "/usr/bin/ab")
    p.add_argument("--json", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--icap-servers", type=int, default=2)
    p.add_argument("--icap-threads", type=int, default=20)
    args = p.parse_args()
    if not os.access(args.ab, os.X_OK):
        p.error(f"{args.ab} not found: apt-get install apache2-utils (scripts/setup)")
    configs = ["recipe", "prefilter"] + ([FLOOR_HELPER] if args.floor_helper else []) \
        + ["icap-prefilter"] + ([FLOOR_ICAP] if args.floor_icap else [])
    t0 = time.monotonic()

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    prefilter, recipe, pf_info = prefilter_lines(args.cli, args.policy)
    tmp = tempfile.mkdtemp(prefix="e2e-ab-no-keepalive-")
    res: dict = {"config": vars(args), "url": URL, "user_agent": CPU_UA, "prefilter": pf_info,
                 "errors": [], "load_start": os.getloadavg()}
    tck = os.sysconf("SC_CLK_TCK")
    floor_icap = None
    try:
        with contextlib.ExitStack() as stack:
            secret_file = os.path.join(tmp, "icap-secret")
            r = subprocess.run([args.cli, "secret", "--out", secret_file],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError(f"authbypass secret failed: {r.stderr}")
            with open(secret_file) as f:
                secret = f.read().strip()
            icap = BenchCIcap(args.module, args.policy, mode="decide", secret=secret,
                              servers=args.icap_servers, threads=args.icap_threads)
            stack.enter_context(icap)
            log(f"c-icap (srv_authbypass, Mode decide) on 127.0.0.1:{icap.port}, PID {icap.proc.pid}")
            access = {"recipe": recipe, "prefilter": prefilter, FLOOR_HELPER: prefilter}
            dropins, _info = icap_dropins(args.cli, args.policy, secret_file, icap.url, "decide")
            access["icap-prefilter"] = dropins["icap-prefilter"]
            if args.floor_icap:
                floor_icap = FloorIcap(args.floor_icap, secret_file)
                stack.enter_context(floor_icap)
                log(f"floor ICAP server on 127.0.0.1:{floor_icap.port}, PID {floor_icap.proc.pid}")
                fd, _finfo = icap_dropins(args.cli, args.policy, secret_file, floor_icap.url, "decide")
                access[FLOOR_ICAP] = fd["icap-prefilter"]
            labs = {}
            for name in configs:
                lab = BenchLab(args.floor_helper if name == FLOOR_HELPER else args.helper,
                               args.policy, origin_port=None, bypass_access=access[name])
                stack.enter_context(lab)
                labs[name] = lab
                log(f"{name}: squid on 127.0.0.1:{lab.port}, PID {lab.squid.pid}, Python origin on"
                    f" 127.0.0.1:{lab.origin.port}")
                deadline = time.monotonic() + 20
                while lab.get(URL, ua=CPU_UA, timeout=3) != 200:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name}: the bypassed URL got no 200 without"
                                           f" credentials after 20 s:\n{lab.tail(lab.cache_log)}")
                    time.sleep(0.2)
                # the origin's handler threads report a client that hung up: not news here
                lab.origin.handle_error = lambda *_a: None
            asks = {"prefilter": AuditCounter(labs["prefilter"].audit_log),
                    "icap-prefilter": AuditCounter(icap.audit_log)}
            if FLOOR_HELPER in labs:
                asks[FLOOR_HELPER] = lambda: external_acl_requests_sent(labs[FLOOR_HELPER])
            if floor_icap is not None:
                asks[FLOOR_ICAP] = floor_icap.reqmods

            def measure(cfg: str, seconds: float) -> dict:
                lab = labs[cfg]
                spid = lab.squid.pid
                helpers = [k for k in children_of(spid) if exe_of(k).startswith(lab.dir + "/")]
                server = (icap if cfg == "icap-prefilter" else
                          floor_icap if cfg == FLOOR_ICAP else None)
                ipids = server.pids() if server else []
                a0 = asks[cfg]() if cfg in asks else 0
                c0 = {"squid": proc_cpu_ticks(spid), "self": os.times()}
                h0 = {k: proc_cpu_ticks(k) for k in helpers}
                i0 = {k: proc_cpu_ticks(k) for k in ipids}
                r = run_ab(args.ab, lab.port, args.concurrency, seconds)
                squid1, self1 = proc_cpu_ticks(spid), os.times()
                helpers1 = [k for k in children_of(spid) if exe_of(k).startswith(lab.dir + "/")]
                h_ticks = sum(proc_cpu_ticks(k) - h0.get(k, 0) for k in helpers1)
                i_ticks = sum(proc_cpu_ticks(k) - i0.get(k, 0) for k in (server.pids() if server else []))
                time.sleep(0.05)
                n = max(1, r["requests"])
                r["squid_cpu_us_per_req"] = (squid1 - c0["squid"]) / tck * 1e6 / n
                r["helper_cpu_us_per_req"] = h_ticks / tck * 1e6 / n
                r["icap_cpu_us_per_req"] = i_ticks / tck * 1e6 / n
                # this process: the Python origin's threads (and this driver, idle meanwhile)
                r["origin_cpu_us_per_req"] = ((self1.user - c0["self"].user)
                                              + (self1.system - c0["self"].system)) * 1e6 / n
                # ab, the only child waited for meanwhile
                r["ab_cpu_us_per_req"] = ((self1.children_user - c0["self"].children_user)
                                          + (self1.children_system - c0["self"].children_system)) * 1e6 / n
                r["total_cpu_us_per_req"] = (r["squid_cpu_us_per_req"] + r["helper_cpu_us_per_req"]
                                             + r["icap_cpu_us_per_req"] + r["origin_cpu_us_per_req"]
                                             + r["ab_cpu_us_per_req"])
                if r["failed"] or r["non_2xx"] or r["ab_rc"]:
                    res["errors"].append(f"{cfg}: ab: {r['failed']} failed, {r['non_2xx']} non-2xx,"
                                         f" rc {r['ab_rc']} of {r['requests']}")
                if cfg in asks:
                    r["asks"] = asks[cfg]() - a0
                    r["asks_per_answer"] = r["asks"] / n
                    # ab's in-flight requests at its end were decided but not counted
                    if r["asks"] < n - args.concurrency:
                        res["errors"].append(f"{cfg}: {r['asks']} decisions for {n} bypassed answers")
                return r

            log(f"warm-up ({args.warmup:g} s per config)")
            for cfg in configs:
                measure(cfg, args.warmup)
            res["errors"].clear()
            cells = {c: [] for c in configs}
            rng = random.Random(args.seed)
            for rnd in range(args.rounds):
                order = rng.sample(configs, len(configs))
                line = []
                for cfg in order:
                    r = measure(cfg, args.seconds)
                    r["round"] = rnd
                    cells[cfg].append(r)
                    line.append(f"{cfg} {r['rps']:.0f}")
                # the Python origin's own capacity, the same ab settings, straight at the
                # recipe lab's origin (a thread of this process, as all the labs' origins)
                s0 = os.times()
                o = run_ab(args.ab, labs["recipe"].origin.port, args.concurrency, args.seconds,
                           direct=True)
                s1 = os.times()
                o["origin_cpu_us_per_req"] = ((s1.user - s0.user) + (s1.system - s0.system)) \
                    * 1e6 / max(1, o["requests"])
                o["round"] = rnd
                res.setdefault("origin_alone", []).append(o)
                log(f"round {rnd + 1}/{args.rounds}: " + ", ".join(line)
                    + f"; Python origin alone {o['rps']:.0f}")
            med = statistics.median
            res["cells"] = {c: {"rounds": v,
                                "median_rps": med(x["rps"] for x in v),
                                "min_rps": min(x["rps"] for x in v),
                                "max_rps": max(x["rps"] for x in v),
                                "median_p50_ms": med(x["p50_ms"] for x in v),
                                "median_p99_ms": med(x["p99_ms"] for x in v),
                                "median_squid_cpu_us": med(x["squid_cpu_us_per_req"] for x in v),
                                "median_helper_cpu_us": med(x["helper_cpu_us_per_req"] for x in v),
                                "median_icap_cpu_us": med(x["icap_cpu_us_per_req"] for x in v),
                                "median_origin_cpu_us": med(x["origin_cpu_us_per_req"] for x in v),
                                "median_ab_cpu_us": med(x["ab_cpu_us_per_req"] for x in v),
                                "median_total_cpu_us": med(x["total_cpu_us_per_req"] for x in v),
                                "requests": sum(x["requests"] for x in v),
                                "asks_per_answer": [x.get("asks_per_answer") for x in v]}
                            for c, v in cells.items()}
            res["origin_alone_median_rps"] = med(o["rps"] for o in res["origin_alone"])
            res["origin_alone_median_cpu_us"] = med(o["origin_cpu_us_per_req"]
                                                    for o in res["origin_alone"])
            res["ratios"] = []
            for cfg in configs[1:]:
                per_round = [x["rps"] / y["rps"] for x, y in zip(cells[cfg], cells["recipe"])]
                val = med(per_round)
                om = res["cells"][cfg]["median_rps"] / res["cells"]["recipe"]["median_rps"]
                t = TARGETS.get(cfg)
                # on a machine that every process shares, the rate goes as 1 / (all CPU per
                # request): the CPU-bound estimate of the ratio, less noisy than req/s
                cpu_est = med(y["total_cpu_us_per_req"] / x["total_cpu_us_per_req"]
                              for x, y in zip(cells[cfg], cells["recipe"]))
                res["ratios"].append({"config": cfg, "value": val, "ratio_of_medians": om,
                                      "cpu_bound_estimate": cpu_est,
                                      "per_round": per_round, "target": t,
                                      "met": (val >= t and om >= t) if t else None})
            for prod, fl in (("prefilter", FLOOR_HELPER), ("icap-prefilter", FLOOR_ICAP)):
                if fl in cells:
                    pr = [x["rps"] / y["rps"] for x, y in zip(cells[prod], cells[fl])]
                    res.setdefault("floor_ratios", []).append(
                        {"config": prod, "floor": fl, "value": med(pr), "per_round": pr})
            res["squid_version"] = subprocess.run(["squid", "-v"], capture_output=True,
                                                  text=True).stdout.splitlines()[0]
            res["ab_version"] = subprocess.run([args.ab, "-V"], capture_output=True,
                                               text=True).stdout.splitlines()[0]
            res["c_icap_version"] = subprocess.run(["c-icap", "-V"], capture_output=True,
                                                   text=True).stdout.strip()
            res["conf_sample"] = open(labs["icap-prefilter"].conf).read().replace(secret, "<secret>")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if floor_icap is not None and floor_icap.log:
        res["floor_icap_log"] = floor_icap.log
    res["load_end"] = os.getloadavg()
    res["total_s"] = time.monotonic() - t0
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
    print(markdown(res))
    for e in res["errors"]:
        log("ERROR " + e)
    log(f"wrote {args.json} ({res['total_s']:.0f} s)")
    return 1 if res["errors"] else 0


def markdown(res: dict) -> str:
    c = res["cells"]
    ratios = {t["config"]: t for t in res["ratios"]}
    L = ["| configuration | req/s (median, range) | p99 | CPU µs/request: Squid + helper/ICAP"
         " server (+ Python origin, + ab) = all | ratio to (a): median of same-round (of medians)"
         " | CPU-bound estimate: all (a) / all | target |",
         "|---|---:|---:|---|---:|---:|---|"]
    for cfg, cell in c.items():
        side = cell["median_helper_cpu_us"] + cell["median_icap_cpu_us"]
        cpu = f"{cell['median_squid_cpu_us']:.0f}" + (f" + {side:.0f}" if side >= 0.5 else "") \
            + f" (+ {cell['median_origin_cpu_us']:.0f}, + {cell['median_ab_cpu_us']:.0f})" \
            + f" = {cell['median_total_cpu_us']:.0f}"
        t = ratios.get(cfg)
        ratio = (f"{t['value']:.2f} ({t['ratio_of_medians']:.2f}), per round"
                 f" {min(t['per_round']):.2f}–{max(t['per_round']):.2f}") if t else ""
        target = ""
        if t and t["target"]:
            target = f"≥ {t['target']:g}: " + ("met" if t["met"] else "**missed**")
        L.append(f"| {LABELS[cfg]} | {cell['median_rps']:,.0f} ({cell['min_rps']:,.0f}–"
                 f"{cell['max_rps']:,.0f}) | {cell['median_p99_ms']:.0f} ms | {cpu} | {ratio} |"
                 + (f" {t['cpu_bound_estimate']:.2f} |" if t else " |") + f" {target} |")
    if res.get("origin_alone"):
        rs = [o["rps"] for o in res["origin_alone"]]
        L.append(f"| squidlab's Python origin alone (ab straight at it, same settings) |"
                 f" {res['origin_alone_median_rps']:,.0f} ({min(rs):,.0f}–{max(rs):,.0f}) | |"
                 f" (+ {res['origin_alone_median_cpu_us']:.0f}) | | | |")
    for t in res.get("floor_ratios", []):
        L.append(f"\n{LABELS[t['config']].split(' ')[0]}/{LABELS[t['floor']].split(' ')[0]} same round:"
                 f" {t['value']:.2f} (per round {min(t['per_round']):.2f}–{max(t['per_round']):.2f})")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
