#!/usr/bin/python3
"""Squid throughput vs the helper's children-max and concurrency, real Squid 5.7.

    e2e_helper_scaling.py --helper BIN --cli BIN --policy FILE --origin BIN --wrk BIN
                          --json OUT [--rounds N] [--seconds S] [--warmup S]
                          [--conns 8,32] [--time-limit S] [--seed N]

Squids side by side (tests/lab/squid.py through e2e_squid.py's BenchLab: the
fast origin tests/bench/e2e_origin.cc, server keep-alive, external ACL cache off), one
process each, measured in interleaved order:

  recipe        the built-in recipe (the policy as plain Squid ACLs, no helper): baseline
  cm<M>-c<C>    ext_authbypass_acl with no prefilter (`http_access allow authbypass`, so
                every request reaches the helper) at ttl=0 negative_ttl=0 cache=0,
                children-max=M concurrency=C (children-startup=0, queue-size=1000 and
                --audit-log as squidlab runs it)

Grid: children-max 1, 2, 4, 8 at concurrency 0; concurrency 0, 1, 10, 50 at children-max 1;
and children-max 4 concurrency 100 (the setting squid-config and docs/scaling.md suggest).
Traffic: e2e_squid.py's "bypass" mix (CRL URLs on 4 CA hosts, Microsoft-CryptoAPI/10.0, no
credentials: every answer must be 200), wrk one thread, absolute-URI GETs, keep-alive
client connections, each connection count of --conns. A round: the connection counts in
shuffled order, and for each, every Squid back to back in shuffled order; requests/s, p50
and p99 are medians over rounds; ratios to the recipe are the median of same-round
ratios. The helper's audit log shows it was asked once per answer (cache=0).
Raw numbers to --json, progress on stderr. Loopback only; every process stopped by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree from the imports below
import e2e_squid as e2e  # noqa: E402  (BenchLab, wrk script and runner, /proc helpers)

MIX = "bypass"
SQUIDLAB_HELPER_OPTS = "children-max=4 children-startup=0 concurrency=100 "


def grid() -> list[tuple[int, int]]:
    g = [(m, 0) for m in (1, 2, 4, 8)] + [(1, c) for c in (1, 10, 50)] + [(4, 100)]
    return list(dict.fromkeys(g))


def name_of(cm: int, conc: int) -> str:
    return f"cm{cm}-c{conc}"


class ScalingLab(e2e.BenchLab):
    """BenchLab with the helper's children-max and concurrency set (checked edit)."""

    def __init__(self, *a, children_max: int = 4, concurrency: int = 100, **kw):
        super().__init__(*a, **kw)
        self.children_max, self.concurrency = children_max, concurrency

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf) as f:
            text = f.read()
        if text.count(SQUIDLAB_HELPER_OPTS) != 1:
            raise RuntimeError(f"squidlab's squid.conf no longer has {SQUIDLAB_HELPER_OPTS!r} once")
        text = text.replace(SQUIDLAB_HELPER_OPTS, f"children-max={self.children_max} children-startup=0"
                                                  f" concurrency={self.concurrency} ")
        with open(self.conf, "w") as f:
            f.write(text)


def log(msg: str):
    print(f"e2e_helper_scaling: {msg}", file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--helper", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--origin", required=True, help="the e2e_origin binary")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--json", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--conns", default="8,32")
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--time-limit", type=float, default=180,
                   help="seconds: start no round that would end past this (0: no limit)")
    args = p.parse_args()
    conns_list = [int(x) for x in args.conns.split(",") if x]
    t0 = time.monotonic()

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    _prefilter, recipe, pf_info = e2e.prefilter_lines(args.cli, args.policy)
    configs = ["recipe"] + [name_of(m, c) for m, c in grid()]
    settings = {name_of(m, c): {"children_max": m, "concurrency": c} for m, c in grid()}
    tmp = tempfile.mkdtemp(prefix="e2e-helper-scaling-")
    res: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "config": vars(args), "configs": configs, "settings": settings,
                 "prefilter": pf_info, "errors": [], "notes": [], "load_start": os.getloadavg(),
                 "helper_sha256": subprocess.run(["sha256sum", args.helper], capture_output=True,
                                                 text=True).stdout.split(" ")[0][:12],
                 "helper_mtime": datetime.datetime.fromtimestamp(
                     os.path.getmtime(args.helper), datetime.timezone.utc).isoformat(timespec="seconds"),
                 "git_head": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                            text=True, cwd=HERE).stdout.strip()}
    origin = None
    labs: dict = {}
    with contextlib.ExitStack() as stack:
        try:
            origin = subprocess.Popen([args.origin], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            origin_port = int(origin.stdout.readline())
            log(f"origin (e2e_origin) on 127.0.0.1:{origin_port}, PID {origin.pid}")
            t_start = time.monotonic()
            for name in configs:
                if name == "recipe":
                    lab = e2e.BenchLab(args.helper, args.policy, origin_port=origin_port,
                                       bypass_access=recipe)
                else:
                    lab = ScalingLab(args.helper, args.policy, origin_port=origin_port,
                                     bypass_access=None, **settings[name])
                stack.enter_context(lab)
                labs[name] = lab
                log(f"{name}: squid on 127.0.0.1:{lab.port}, PID {lab.squid.pid}, dir {lab.dir}")
            res["startup_s"] = time.monotonic() - t_start
            audits = {name: e2e.AuditCounter(lab.audit_log) for name, lab in labs.items()}
            script = os.path.join(tmp, f"{MIX}.lua")
            with open(script, "w") as f:
                f.write(e2e.wrk_script(MIX, e2e.SquidLab.USER, e2e.SquidLab.PASSWORD))

            def measure(cfg: str, conns: int, seconds: float) -> dict:
                lab = labs[cfg]
                spid = lab.squid.pid
                helpers = [k for k in e2e.children_of(spid) if e2e.exe_of(k).startswith(lab.dir + "/")]
                a0 = audits[cfg]()
                c_squid0 = e2e.proc_cpu_ticks(spid)
                c_help0 = {k: e2e.proc_cpu_ticks(k) for k in helpers}
                r = e2e.run_wrk(args.wrk, script, lab.port, conns, seconds)
                c_squid1 = e2e.proc_cpu_ticks(spid)
                helpers1 = [k for k in e2e.children_of(spid) if e2e.exe_of(k).startswith(lab.dir + "/")]
                help_ticks = sum(e2e.proc_cpu_ticks(k) - c_help0.get(k, 0) for k in helpers1)
                busy = sum(1 for k in helpers1 if e2e.proc_cpu_ticks(k) - c_help0.get(k, 0) > 0)
                time.sleep(0.05)  # the helper writes its audit line before its answer
                a1 = audits[cfg]()
                tck = os.sysconf("SC_CLK_TCK")
                n = max(1, r["requests"])
                r["squid_cpu_us_per_req"] = (c_squid1 - c_squid0) / tck * 1e6 / n
                r["helper_cpu_us_per_req"] = help_ticks / tck * 1e6 / n
                r["helper_processes"] = len(helpers1)
                r["helpers_with_cpu"] = busy
                r["audit_bypass_events"] = a1 - a0
                r["conns"] = conns
                bad = {k: v for k, v in r["status"].items() if k != 200}
                if bad:
                    res["errors"].append(f"{cfg}/c{conns}: statuses other than 200: {bad}")
                sock_err = {k: v for k, v in r["errors"].items() if k != "status" and v}
                if sock_err:
                    res["errors"].append(f"{cfg}/c{conns}: wrk socket errors {sock_err}")
                if cfg != "recipe":
                    r["helper_asks_per_bypass"] = r["audit_bypass_events"] / n
                    if r["audit_bypass_events"] < r["requests"] - conns:
                        res["errors"].append(f"{cfg}/c{conns}: helper decided {r['audit_bypass_events']}"
                                             f" bypasses for {r['requests']} answers")
                return r

            log(f"warm-up ({args.warmup:g} s per Squid)")
            for cfg in configs:
                measure(cfg, max(conns_list), args.warmup)
            res["errors"].clear()  # the first requests may meet helpers still starting
            cells = {f"{c}/c{n}": [] for c in configs for n in conns_list}
            rng = random.Random(args.seed)
            done_rounds, t_prev = 0, 0.0
            try:
                for rnd in range(args.rounds):
                    if (args.time_limit and rnd >= 1
                            and time.monotonic() - t0 + t_prev + 10 > args.time_limit):
                        res["notes"].append(f"stopped after {rnd} of {args.rounds} rounds: the next"
                                            f" would end past --time-limit {args.time_limit:g} s")
                        log(res["notes"][-1])
                        break
                    t_round = time.monotonic()
                    line = []
                    for conns in rng.sample(conns_list, len(conns_list)):
                        for cfg in rng.sample(configs, len(configs)):
                            r = measure(cfg, conns, args.seconds)
                            r["round"] = rnd
                            cells[f"{cfg}/c{conns}"].append(r)
                            line.append(f"{cfg}/c{conns} {r['rps']:.0f}")
                    done_rounds += 1
                    t_prev = time.monotonic() - t_round
                    log(f"round {rnd + 1}/{args.rounds} ({t_prev:.0f} s): " + ", ".join(line))
            except (SystemExit, KeyboardInterrupt) as ex:  # a time bound: keep whole rounds
                res["errors"].append(f"interrupted ({ex}) after {done_rounds} whole round(s)")
                if not done_rounds:
                    raise
                for k in cells:
                    cells[k] = [r for r in cells[k] if r["round"] < done_rounds]
            res["rounds_done"] = done_rounds
            out = {}
            for k, v in cells.items():
                if not v:
                    continue
                s = e2e.cell_stats(v)
                s["median_helper_processes"] = statistics.median(r["helper_processes"] for r in v)
                s["max_helpers_with_cpu"] = max(r["helpers_with_cpu"] for r in v)
                asks = [r["helper_asks_per_bypass"] for r in v if "helper_asks_per_bypass" in r]
                if asks:
                    s["helper_asks_per_bypass"] = [min(asks), max(asks)]
                out[k] = {"rounds": v, **s}
            for k, s in out.items():
                cfg, conns = k.rsplit("/", 1)
                base = cells[f"recipe/{conns}"]
                per_round = [x["rps"] / y["rps"] for x, y in zip(cells[k], base) if y["rps"]]
                s["ratio_to_recipe"] = statistics.median(per_round) if per_round else None
                s["ratio_to_recipe_per_round"] = per_round
                s["ratio_of_medians"] = s["median_rps"] / out[f"recipe/{conns}"]["median_rps"]
            res["cells"] = out
            res["squid_version"] = subprocess.run(
                ["squid", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
            res["conf_sample"] = open(labs[name_of(1, 0)].conf).read()
        finally:
            # Stop the Squids in parallel (each takes 2-3 s to shut down); ExitStack's own
            # stop() afterwards is a no-op for those, and still stops any left running.
            stoppers = [threading.Thread(target=lab.stop) for lab in labs.values()] if labs else []
            for t in stoppers:
                t.start()
            for t in stoppers:
                t.join(60)
            if origin is not None and origin.poll() is None:
                origin.terminate()
                try:
                    _out, err = origin.communicate(timeout=5)
                    res["origin_log"] = err.strip()
                except subprocess.TimeoutExpired:
                    origin.kill()
                    origin.wait(5)
            shutil.rmtree(tmp, ignore_errors=True)
    return e2e.write_results(res, args.json, t0)


if __name__ == "__main__":
    sys.exit(main())
