#!/usr/bin/python3
"""Where the time goes in ICAP decision mode (issue 11 probe): Squid CPU µs per bypassed
request, ICAP-server CPU µs per request and req/s, for Squid 5.7 with built-in ACLs (a),
with c-icap + srv_authbypass (d) and with the floor REQMOD server (d0), plus variants that
change one thing at a time, all measured in the same run in interleaved rounds.

    e2e_icap_probe.py --cli BIN --module srv_authbypass.so --floor-icap BIN --floor-helper BIN
                      --origin BIN --json OUT [--variants LIST] [--rounds N] [--seconds S]
                      [--perf-dir DIR]

Every Squid is tests/bench/e2e_squid.py's BenchLab (the fast origin, keep-alive), the
ICAP ones with the drop-in `authbypass squid-config --mode icap` writes (prefilter,
RESPMOD left out), as (d) and (d0) of e2e_squid.py. Traffic: the bypassed mix only (wrk
-t1 -c8, CRL URLs, CryptoAPI User-Agent, no credentials, every answer must be 200).
Rounds: the variants in shuffled order, back to back.

Variants (--variants, comma-separated; a, d and d0 always run):
  a              built-in ACLs (e2e_squid.py's recipe)
  d              c-icap (StartServers 2, ThreadsPerChild 20, DebugLevel 0, no access log,
                 MaxKeepAliveRequests -1: e2e_squid.py's BenchCIcap) + srv_authbypass
  d0             the floor server (tests/bench/e2e_floor_icap.cpp)
  d0-twin        a second, identical (d0): its own floor process and Squid (the spread
                 between two identical setups, the control for every other variant)
  d0-via         the floor adding c-icap's Via line to the adapted request
  d0-opts        the floor advertising c-icap's OPTIONS for srv_authbypass
  d0-preview     the floor advertising only c-icap's Preview: 1024 and Transfer-Preview: *
  d0-xinclude    the floor advertising only c-icap's X-Include
  d0-maxconn20   the floor advertising only c-icap's Max-Connections: 20
  d0-burn        the floor spinning --burn-us µs of CPU per REQMOD (c-icap's extra CPU,
                 without anything else of c-icap)
  d-4x10         c-icap sized as config/c-icap/authbypass.conf ships (4 x 10 threads)
  d-1x20         c-icap with one child of 20 threads
  d-1x8          c-icap with one child of 8 threads (= wrk's connections)
  d-accesslog    (d) with c-icap's access log on
  d-prod         c-icap as Debian's c-icap.conf + config/c-icap/authbypass.conf run it:
                 4 x 10 threads, DebugLevel 1, access log on, MaxKeepAliveRequests 100
  d-prod-ka      d-prod with MaxKeepAliveRequests -1 (no limit)
  d-noaudit      (d) without the service's authbypass.AuditLog (attribution only: the
                 product keeps its audit trail)
  d-noclientip   (d) with Squid's icap_send_client_ip off (X-Client-IP not sent)
  d-nopreview    (d) with Squid's icap_preview_enable off
  d-viastrip     (d) without `request_header_access Via deny authbypass_marked`
--perf-dir: after the rounds, `perf record -e cpu-clock -g` of c-icap (all its processes)
and of the Squids of (d) and (d0) for 4 s each under load; reports to DIR.
Loopback only; every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from e2e_squid import (BYPASS_URLS, CPU_UA, BenchCIcap, BenchLab, FloorIcap,  # noqa: E402
                       icap_dropins, prefilter_lines, proc_cpu_ticks, run_wrk, wrk_script,
                       write_results)
from lab.squid import SquidLab  # noqa: E402

CICAP_VIA = ("ICAP/1.0 {host} (C-ICAP/0.5.10 authbypass: checks what passes through the "
             "proxy-authentication bypass )")
ALL = ("a", "d", "d0", "d0-twin", "d0-via", "d0-opts", "d0-preview", "d0-xinclude", "d0-maxconn20", "d0-burn", "d-4x10", "d-1x20", "d-1x8",
       "d-accesslog", "d-prod", "d-prod-ka", "d-noaudit", "d-noclientip", "d-nopreview", "d-viastrip")


def log(msg: str):
    print(f"e2e_icap_probe: {msg}", file=sys.stderr, flush=True)


def proc_counters(pid: int) -> tuple[int, int, int]:
    """(minor page faults, voluntary, involuntary context switches) of a process so far
    (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            minflt = int(f.read().rsplit(")", 1)[1].split()[7])
        vol = invol = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        return minflt, vol, invol
    except (OSError, IndexError, ValueError):
        return 0, 0, 0


class ProdCIcap(BenchCIcap):
    """BenchCIcap at c-icap's Debian defaults for what BenchCIcap trims: DebugLevel 1 and
    (access_log=True, keepalive_requests=100 given by the caller) the access log and
    MaxKeepAliveRequests 100."""

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf) as f:
            text = f.read()
        if text.count("DebugLevel 0\n") != 1:
            raise RuntimeError("c-icap.conf has no DebugLevel 0 line")
        with open(self.conf, "w") as f:
            f.write(text.replace("DebugLevel 0\n", "DebugLevel 1\n"))


class NoAuditCIcap(BenchCIcap):
    """BenchCIcap without the service's AuditLog line (to attribute the audit's cost)."""

    def _include_text(self) -> str:
        text = super()._include_text()
        line = f"authbypass.AuditLog {self.audit_log}\n"
        if text.count(line) != 1:
            raise RuntimeError(f"include has no {line!r}")
        return text.replace(line, "")


def edit(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"drop-in has {text.count(old)} x {old!r}, expected 1")
    return text.replace(old, new)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cli", required=True)
    p.add_argument("--module", required=True)
    p.add_argument("--floor-icap", required=True)
    p.add_argument("--floor-helper", required=True,
                   help="the helper binary every Squid is given (none of them asks it)")
    p.add_argument("--origin", required=True)
    p.add_argument("--policy", default="config/policy.yaml")
    p.add_argument("--wrk", default="/usr/bin/wrk")
    p.add_argument("--json", required=True)
    p.add_argument("--variants", default="")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--burn-us", type=int, default=40)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--perf-dir", default="")
    args = p.parse_args()
    variants = ["a", "d", "d0"] + [v for v in args.variants.split(",") if v and v not in ("a", "d", "d0")]
    for v in variants:
        if v not in ALL:
            p.error(f"unknown variant {v}; known: {','.join(ALL)}")

    res: dict = {"config": vars(args), "variants": variants, "errors": [],
                 "load_start": os.getloadavg()}
    tmp = tempfile.mkdtemp(prefix="e2e-icap-probe-")
    os.chmod(tmp, 0o755)
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            origin = subprocess.Popen([args.origin], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            stack.callback(lambda: (origin.poll() is None and origin.terminate(), origin.wait(5)))
            origin_port = int(origin.stdout.readline())
            secret_file = os.path.join(tmp, "icap-secret")
            r = subprocess.run([args.cli, "secret", "--out", secret_file],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError(f"authbypass secret failed: {r.stderr}")
            secret = open(secret_file).read().strip()
            _prefilter, recipe, _info = prefilter_lines(args.cli, args.policy)

            servers: dict[str, object] = {}

            def cicap(key: str, servers_n: int, threads: int, access_log: bool = False,
                      audit: bool = True, cls=None, keepalive: int = -1):
                if key not in servers:
                    c = (cls or (BenchCIcap if audit else NoAuditCIcap))(
                        args.module, args.policy, mode="decide", secret=secret,
                        servers=servers_n, threads=threads, keepalive_requests=keepalive,
                        access_log=access_log)
                    stack.enter_context(c)
                    log(f"c-icap {key} on {c.port}, PID {c.proc.pid} ({servers_n} x {threads})")
                    servers[key] = c
                return servers[key]

            def floor(key: str, extra: list[str]):
                if key not in servers:
                    f = FloorIcap(args.floor_icap, secret_file)
                    # FloorIcap.__enter__ with the probe's extra arguments
                    f.proc = subprocess.Popen([f.binary, "--secret-file", f.secret_file, *extra],
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True)
                    stack.callback(f.__exit__)
                    f.port = int(f.proc.stdout.readline())
                    log(f"floor {key} on {f.port}, PID {f.proc.pid} {' '.join(extra)}")
                    servers[key] = f
                return servers[key]

            host = socket.gethostname()
            spec: dict[str, tuple[object | None, str]] = {}
            for v in variants:
                if v == "a":
                    spec[v] = (None, recipe)
                    continue
                if v.startswith("d0"):
                    extra = {"d0": [], "d0-twin": [], "d0-via": ["--via", CICAP_VIA.format(host=host)],
                             "d0-opts": ["--cicap-options"],
                             "d0-preview": ["--options-header", "Preview: 1024",
                                            "--options-header", "Transfer-Preview: *"],
                             "d0-xinclude": ["--options-header",
                                             "X-Include: X-Client-IP, X-Authenticated-User"],
                             "d0-maxconn20": ["--max-conn", "20"],
                             "d0-burn": ["--burn-us", str(args.burn_us)]}[v]
                    srv = floor(v, extra)
                else:
                    srv = {"d-4x10": lambda: cicap("4x10", 4, 10),
                           "d-1x20": lambda: cicap("1x20", 1, 20),
                           "d-1x8": lambda: cicap("1x8", 1, 8),
                           "d-accesslog": lambda: cicap("2x20-log", 2, 20, True),
                           "d-prod": lambda: cicap("prod", 4, 10, True, cls=ProdCIcap,
                                                   keepalive=100),
                           "d-prod-ka": lambda: cicap("prod-ka", 4, 10, True, cls=ProdCIcap),
                           "d-noaudit": lambda: cicap("2x20-noaudit", 2, 20, audit=False)}.get(
                        v, lambda: cicap("2x20", 2, 20))()
                d, _ = icap_dropins(args.cli, args.policy, secret_file, srv.url, "decide")
                text = d["icap-prefilter"]
                if v == "d-noclientip":
                    text = edit(text, "icap_send_client_ip on\n", "icap_send_client_ip off\n")
                elif v == "d-nopreview":
                    text = edit(text, "icap_preview_enable on\n", "icap_preview_enable off\n")
                elif v == "d-viastrip":
                    text = edit(text, "request_header_access Via deny authbypass_marked\n", "")
                spec[v] = (srv, text)

            labs = {}
            for v in variants:
                lab = BenchLab(args.floor_helper, args.policy, origin_port=origin_port,
                               bypass_access=spec[v][1])
                stack.enter_context(lab)
                labs[v] = lab
                log(f"{v}: squid on {lab.port}, PID {lab.squid.pid}")
                if v != "a":
                    deadline = time.monotonic() + 20
                    while lab.get(BYPASS_URLS[0], ua=CPU_UA, timeout=3) != 200:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{v}: no bypass after 20 s:\n{lab.tail(lab.cache_log)}")
                        time.sleep(0.2)
            script = os.path.join(tmp, "bypass.lua")
            with open(script, "w") as f:
                f.write(wrk_script("bypass", SquidLab.USER, SquidLab.PASSWORD))
            tck = os.sysconf("SC_CLK_TCK")

            def measure(v: str, seconds: float) -> dict:
                lab, srv = labs[v], spec[v][0]
                ipids = srv.pids() if srv is not None else []
                i0 = {k: proc_cpu_ticks(k) for k in ipids}
                k0 = {k: proc_counters(k) for k in ipids}
                q0 = proc_counters(lab.squid.pid)
                s0 = proc_cpu_ticks(lab.squid.pid)
                r = run_wrk(args.wrk, script, lab.port, args.conns, seconds)
                s1 = proc_cpu_ticks(lab.squid.pid)
                q1 = proc_counters(lab.squid.pid)
                k1 = {k: proc_counters(k) for k in ipids}
                ipids1 = srv.pids() if srv is not None else []
                it = sum(proc_cpu_ticks(k) - i0.get(k, 0) for k in ipids1)
                n = max(1, r["requests"])
                bad = {k: c for k, c in r["status"].items() if k != 200}
                if bad or any(c for k, c in r["errors"].items() if k != "status"):
                    res["errors"].append(f"{v}: statuses {r['status']}, errors {r['errors']}")
                return {"rps": r["rps"], "requests": r["requests"],
                        "p99_us": r["latency_us"]["p99"],
                        "squid_us": (s1 - s0) / tck * 1e6 / n, "icap_us": it / tck * 1e6 / n,
                        "squid_minflt": (q1[0] - q0[0]) / n, "squid_vcsw": (q1[1] - q0[1]) / n,
                        "squid_ivcsw": (q1[2] - q0[2]) / n,
                        "icap_vcsw": sum(k1[k][1] - k0[k][1] for k in k1 if k in k0) / n,
                        "icap_ivcsw": sum(k1[k][2] - k0[k][2] for k in k1 if k in k0) / n}

            log("warm-up")
            for v in variants:
                measure(v, 1)
            res["errors"].clear()
            rng = random.Random(args.seed)
            rounds = {v: [] for v in variants}
            for rnd in range(args.rounds):
                order = rng.sample(variants, len(variants))
                line = []
                for v in order:
                    m = measure(v, args.seconds)
                    m["round"] = rnd
                    rounds[v].append(m)
                    line.append(f"{v} {m['rps']:.0f}/{m['squid_us']:.0f}+{m['icap_us']:.0f}")
                log(f"round {rnd + 1}/{args.rounds}: " + ", ".join(line))
            med = statistics.median
            summary = {}
            for v in variants:
                rs = rounds[v]
                row = {"median_rps": med(x["rps"] for x in rs),
                       "median_squid_us": med(x["squid_us"] for x in rs),
                       "median_icap_us": med(x["icap_us"] for x in rs),
                       "median_p99_us": med(x["p99_us"] for x in rs),
                       **{f"median_{c}": med(x[c] for x in rs) for c in (
                           "squid_minflt", "squid_vcsw", "squid_ivcsw", "icap_vcsw",
                           "icap_ivcsw")},
                       "rounds": len(rs)}
                for base in ("a", "d0", "d"):
                    if v != base:
                        row[f"ratio_vs_{base}"] = med(x["rps"] / y["rps"]
                                                      for x, y in zip(rs, rounds[base]))
                summary[v] = row
            res["summary"], res["rounds"] = summary, rounds
            print(f"{'variant':14} {'req/s':>7} {'squid us':>9} {'icap us':>8} {'p99 us':>7}"
                  f" {'/(a)':>5} {'/(d0)':>6} {'/(d)':>5}  per request: squid minflt vcsw ivcsw,"
                  f" icap vcsw ivcsw")
            for v, row in summary.items():
                print(f"{v:14} {row['median_rps']:7.0f} {row['median_squid_us']:9.0f}"
                      f" {row['median_icap_us']:8.1f} {row['median_p99_us']:7.0f}"
                      f" {row.get('ratio_vs_a', 1):5.2f} {row.get('ratio_vs_d0', 1):6.2f}"
                      f" {row.get('ratio_vs_d', 1):5.2f}  {row['median_squid_minflt']:.3f}"
                      f" {row['median_squid_vcsw']:.2f} {row['median_squid_ivcsw']:.2f}"
                      f" {row['median_icap_vcsw']:.2f} {row['median_icap_ivcsw']:.2f}")

            if args.perf_dir:
                os.makedirs(args.perf_dir, exist_ok=True)
                targets = [("cicap", "d", lambda: spec["d"][0].pids()),
                           ("squid-d", "d", lambda: [labs["d"].squid.pid]),
                           ("squid-d0", "d0", lambda: [labs["d0"].squid.pid])]
                for name, v, pids in targets:
                    data = os.path.join(args.perf_dir, f"{name}.data")
                    rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g",
                                            "-o", data, "-p", ",".join(map(str, pids())),
                                            "--", "sleep", "4"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    try:
                        m = measure(v, 4)
                    finally:
                        rec.wait(30)
                    res.setdefault("perf", {})[name] = m
                    for sort, suffix in (("dso", "dso"), ("dso,sym", "sym")):
                        with open(os.path.join(args.perf_dir, f"{name}.{suffix}.txt"), "w") as out:
                            subprocess.run(["perf", "report", "-i", data, "--no-children",
                                            "--stdio", "-g", "none", "--sort", sort,
                                            "--percent-limit", "0.5"],
                                           stdout=out, stderr=subprocess.DEVNULL, timeout=120)
                    log(f"perf {name}: {args.perf_dir}/{name}.*.txt")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return write_results(res, args.json, t0)


if __name__ == "__main__":
    sys.exit(main())
