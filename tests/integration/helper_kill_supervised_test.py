#!/usr/bin/python3
"""Fault test: ext_authbypass_acl SIGKILLed mid-stream behind a Squid that runs
as Debian's squid.service runs it (`squid --foreground -sYC`: no -N, a master process that
supervises a worker "kid" and starts a new kid when one dies).

usage: helper_kill_supervised_test.py HELPER [--kills N] [--gap SECONDS]
           [--loop-kills N] [--loop-gap SECONDS] [--bound SECONDS]
           [--systemd-restart SECONDS] [--json OUT]

Why: under load Squid 5.7 often aborts when a helper dies (`assertion failed:
Write.cc:40: "EX"`, see helper_kill_test.py and docs/reliability.md). With -N that takes
the proxy down. Here the abort kills the kid; the question is whether the master brings
the proxy back, how fast, and whether anything is let through on the way.

Client threads send requests through Squid all the time: two that the policy bypasses (a
CRL with the CryptoAPI UA, unique URLs so that each reaches a helper), two that must
authenticate (407) and one with credentials. Phase "every": a running helper is
SIGKILLed every --gap seconds (2), --kills times (10); when the kid aborts, the next kill
waits until the proxy has recovered (--bound at most). Phase "loop", a helper crash loop:
a kill every --loop-gap seconds (0.5), until the master gives up (at most --loop-kills,
40). Checks:
  * security: no request that must authenticate gets 200 without credentials, at any
    time (kid dying, no kid, master gone, restarts), and none of them reaches the origin;
    a bypass request may fail while things restart (fail closed), never the reverse;
  * recovery: after every kill, within --bound seconds, a bypass request sent after the
    last disruption (the kill, a new kid, a new master) gets 200 and a request that must
    authenticate gets 407, and both stay so until the next kill (from 1 s after
    recovery);
  * kid aborts are the known Squid 5.7 assertion only (no other FATAL or assertion),
    each one followed by a new kid PID (the master restarted it) unless the master gave
    up; the pid file holds the master's PID;
  * nothing is left running afterwards (master, kids, helpers).
The master stops restarting a kid that died within 10 s of its start 5 times in a row
("will not be restarted for 3600 seconds due to repeated, frequent failures", then
"Exiting due to repeated, frequent failures", exit status 1; Squid 5.7 src/ipc/Kid.cc:
fastFailureTimeLimit 10 s, badFailureLimit 4). That is reported (SQUID MASTER GAVE UP)
and, with --systemd-restart S (default 2), the test does what systemd does with the
drop-in config/systemd/squid.service.d/authbypass-restart.conf (Restart=on-failure,
RestartSec=2s): it starts Squid again S seconds after the master exited non-zero, and
the recovery bound includes that. --systemd-restart -1: no restart, the master giving up
is a failure (the proxy stays down).
Exit status: 0 passed, 1 failed, 77 Squid not installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True

from lab.checks import Checks  # noqa: E402
from lab.squid import LabError, proxy_get, squid_available, SquidLab  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
KNOWN_ABORT = 'assertion failed: Write.cc:40: "EX"'
POLICY = """version: 1
rules:
  - id: probe
    match:
      hosts: [probe.kill.test]
      path_suffix: [.crl]
      user_agent_regex: ['^Microsoft-CryptoAPI/(6\\.[0-3]|10\\.0)$']
"""
# (name, URL, UA, with credentials); probe*: must bypass (200 without credentials),
# never*: must authenticate (407 without credentials).
CLIENTS = [
    ("probe1", "http://probe.kill.test/x.crl", CRYPTOAPI, False),
    ("probe2", "http://probe.kill.test/y.crl", CRYPTOAPI, False),
    ("never1", "http://never.kill.test/x.crl", CRYPTOAPI, False),
    ("never2", "http://probe.kill.test/x.exe", CRYPTOAPI, False),
    ("authenticated", "http://never.kill.test/a", "Mozilla/5.0", True),
]
STEADY_SLACK = 2
NEVER_PATHS = {("never.kill.test", "/x.crl"), ("probe.kill.test", "/x.exe")}


def urlpath(target: str) -> str:
    """The path of a request-target (absolute-form, as Squid sends it to a peer, or
    origin-form), without the query."""
    if "://" in target:
        return urllib.parse.urlsplit(target).path or "/"
    return target.split("?", 1)[0]


def fmt(xs) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "none"
    return (f"min {min(xs):.2f} s, median {statistics.median(xs):.2f} s, max {max(xs):.2f} s"
            f" (n={len(xs)})")


class Run:
    """One supervised Squid under load, the kills, and what was observed."""

    def __init__(self, a, policy: str, expect):
        self.a = a
        self.expect = expect
        self.lab = SquidLab(a.helper, policy, supervised=True, verbose=False,
                            no_helper_cache_because="every request must reach a helper that "
                            "may be killed")
        self.results: list[tuple[str, float, float, int]] = []  # name, t0, t1, code
        self.stop_clients = threading.Event()
        self.threads: list[threading.Thread] = []
        self.events: list[tuple[float, str, dict]] = []  # time, kind, details
        self.masters: list[int] = []  # every master PID (= process group) we started
        self.kid = None  # the kid PID last seen
        self.kids_seen: list[int] = []
        self.kills: list[dict] = []
        self.pidfile_bad: list[tuple[int | None, int]] = []
        self.origin_requests: list[dict] = []
        self.cache_log_text = self.stdout_text = ""
        self.t_start = self.t_end = time.monotonic()

    # ---- observation -----------------------------------------------------------------
    def event(self, kind: str, **kw):
        t = time.monotonic()
        self.events.append((t, kind, kw))
        print(f"    {t - self.t_start:7.2f} s  {kind} {kw if kw else ''}", flush=True)
        return t

    def sample(self):
        """Notes kid deaths, new kids and the master's exit."""
        lab = self.lab
        if lab.squid is not None and lab.squid.poll() is not None and not self.master_gone:
            self.master_gone = True
            if self.kid is not None:
                self.event("kid_died", pid=self.kid)
                self.kid = None
            self.event("master_exited", pid=lab.squid.pid, status=lab.squid.returncode)
            return
        ks = lab.kid_pids()
        if self.kid is not None and self.kid not in ks:
            self.event("kid_died", pid=self.kid)
            self.kid = None
        if ks and self.kid is None:
            self.kid = ks[0]
            if self.kid not in self.kids_seen:
                self.kids_seen.append(self.kid)
                self.event("kid_started", pid=self.kid)
        if lab.squid is not None and not self.master_gone:
            pf = lab.pid_file_pid()
            if pf != lab.squid.pid and pf is not None:
                self.pidfile_bad.append((pf, lab.squid.pid))

    def recovered(self, t_ref: float) -> tuple[float | None, float | None]:
        """Completion times of the first probe 200 and the first never 407 among requests
        sent at or after t_ref."""
        first_ok = first_407 = None
        for name, t0, t1, code in self.results[self.scan_from:]:
            if t0 < t_ref:
                continue
            if name.startswith("probe") and code == 200 and (first_ok is None or t1 < first_ok):
                first_ok = t1
            if name.startswith("never") and code == 407 and (first_407 is None or t1 < first_407):
                first_407 = t1
        return first_ok, first_407

    # ---- the run ---------------------------------------------------------------------
    def client(self, name, url, ua, with_auth):
        auth = (base64.b64encode(f"{self.lab.USER}:{self.lab.PASSWORD}".encode()).decode()
                if with_auth else None)
        n = 0
        while not self.stop_clients.is_set():
            n += 1
            u = url + (f"?{name}-{n}" if name.startswith("probe") else "")
            t0 = time.monotonic()
            try:
                code = proxy_get(self.lab.port, u, ua, auth)[0]
            except OSError:
                code = -1
            self.results.append((name, t0, time.monotonic(), code))
            if code <= 0:
                time.sleep(0.01)  # no proxy listening: do not spin

    def wait_for_helper(self, timeout: float = 5.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample()
            pids = self.lab.helper_pids()
            if pids:
                return pids
            time.sleep(0.05)
        return []

    def restart_master(self):
        """What systemd does with Restart=on-failure: start the service again
        RestartSec after the main process exited with a non-zero status."""
        status = self.lab.squid.returncode
        if status == 0:
            self.event("master_exit_clean_not_restarted", status=status)
            return False
        time.sleep(self.a.systemd_restart)
        self.lab.relaunch()
        self.master_gone = False
        self.masters.append(self.lab.squid.pid)
        self.event("master_restarted", pid=self.lab.squid.pid,
                   after=f"{self.a.systemd_restart:.1f} s (emulated Restart=on-failure)")
        self.sample()
        return True

    def run(self):
        a, lab = self.a, self.lab
        self.master_gone = False
        self.scan_from = 0
        lab.start()
        self.t_start = time.monotonic()
        self.masters.append(lab.squid.pid)
        print(f"  squid master {lab.squid.pid} on {lab.proxy_url}, pid file "
              f"{lab.pid_file_pid()}, kids {lab.kid_pids()}, lab dir {lab.dir}", flush=True)
        self.sample()
        for name, url, ua, au in CLIENTS:
            t = threading.Thread(target=self.client, args=(name, url, ua, au), daemon=True)
            self.threads.append(t)
            t.start()
        time.sleep(1.0)
        ok = self.phase("every", a.kills, a.gap, until_give_up=False)
        if ok and a.loop_kills > 0:
            self.phase("loop", a.loop_kills, a.loop_gap, until_give_up=True)
        time.sleep(2.0)
        self.sample()
        self.stop_clients.set()
        for t in self.threads:
            t.join(20)
        self.t_end = time.monotonic()

    def phase(self, name: str, kills: int, gap: float, until_give_up: bool) -> bool:
        """kills SIGKILLs, at least gap seconds apart and each after the proxy recovered
        from the last; until_give_up: stop after the first kill that made the master
        give up. False when the proxy did not recover (the failure is then established:
        no more bounds are waited out)."""
        a = self.a
        print(f"  -- phase {name!r}: up to {kills} kills, one every {gap:.1f} s at least"
              + (", until the master gives up" if until_give_up else ""), flush=True)
        for i in range(kills):
            pids = self.wait_for_helper()
            if not pids:
                self.expect(False, f"{name} kill {i + 1}: a helper runs to kill (none in 5 s)")
                return False
            victim = pids[i % len(pids)]
            self.scan_from = len(self.results)
            os.kill(victim, signal.SIGKILL)
            t_kill = self.event("kill", phase=name, n=i + 1, helper=victim, running=pids,
                                kid=self.kid)
            k = {"phase": name, "n": i + 1, "t": t_kill, "helper": victim, "kid": self.kid,
                 "kid_died": None, "new_kid": None, "master_exit": None,
                 "master_restart": None, "t_ref": t_kill, "recovered": None}
            self.kills.append(k)
            n_events = len(self.events)
            # until gap has passed and the proxy answers right again (bound at most)
            while True:
                time.sleep(0.05)
                self.sample()
                for t, kind, kw in self.events[n_events:]:
                    if kind == "kid_died" and k["kid_died"] is None:
                        k["kid_died"] = t
                    elif kind == "kid_started":
                        k["new_kid"] = t
                        k["t_ref"] = t
                    elif kind == "master_exited":
                        k["master_exit"] = (t, kw["status"])
                n_events = len(self.events)
                now = time.monotonic()
                if self.master_gone:
                    if a.systemd_restart < 0 or not self.restart_master():
                        break
                    k["master_restart"] = time.monotonic()
                    k["t_ref"] = max(k["t_ref"], k["master_restart"])
                    n_events = len(self.events)
                    continue
                # recomputed every time: answers the old kid gave after the kill do not
                # count once it has died (t_ref moves to the new kid's start)
                ok, ok407 = self.recovered(k["t_ref"])
                k["recovered"] = (max(ok, ok407) if ok is not None and ok407 is not None
                                  and self.kid is not None else None)
                if now >= t_kill + gap and k["recovered"] is not None:
                    break
                if now > t_kill + a.bound:
                    break
            rec = k["recovered"]
            what = ("kid aborted" if k["kid_died"] else "kid survived")
            if k["master_exit"]:
                what += f", master exited (status {k['master_exit'][1]})"
            print(f"  {name} kill {i + 1}: {what}; " + (
                f"recovered {rec - t_kill:.2f} s after the kill" if rec else
                "NOT recovered: no Squid runs and nothing starts one" if self.master_gone else
                f"NOT recovered within {a.bound:.0f} s"), flush=True)
            if rec is None:
                return False
            if until_give_up and k["master_exit"]:
                return True
        if until_give_up:
            print(f"  (the master did not give up in {kills} kills)", flush=True)
        return True

    def cleanup(self):
        self.stop_clients.set()
        for t in self.threads:
            t.join(20)
        lab = self.lab
        # stop() removes the lab directory and the origin: keep what check() reads
        self.origin_requests = lab.origin.requests if lab.origin else []
        self.cache_log_text = lab.read(lab.cache_log) if lab.dir else ""
        self.stdout_text = lab.read(lab.path("squid.stdout")) if lab.dir else ""
        lab.stop()

    # ---- verdict ---------------------------------------------------------------------
    def check(self) -> dict:
        a, expect = self.a, self.expect
        by: dict[str, dict[int, int]] = {}
        for name, _t0, _t1, code in self.results:
            by.setdefault(name, {}).setdefault(code, 0)
            by[name][code] += 1
        print(f"  {len(self.results)} answers in {self.t_end - self.t_start:.1f} s "
              "(-1: connection refused, 0: closed without an answer)")
        for name, codes in sorted(by.items()):
            print(f"    {name:14s} " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())))
        never_200 = sum(by.get(n, {}).get(200, 0) for n in ("never1", "never2"))
        expect(never_200 == 0, "requests that must authenticate: zero 200 without "
               f"credentials, throughout ({never_200})")
        leaked = [r for r in self.origin_requests if r.get("host") and r.get("path") and
                  (r["host"].split(":")[0], urlpath(r["path"])) in NEVER_PATHS]
        expect(not leaked, f"none of them reached the origin ({len(leaked)})")
        probe_codes = {k for n in ("probe1", "probe2") for k in by.get(n, {})}
        print(f"  bypass requests answered: {sorted(probe_codes)} (anything but 200 is a "
              "fail-closed refusal)")

        kills = self.kills
        every = [k for k in kills if k["phase"] == "every"]
        loop = [k for k in kills if k["phase"] == "loop"]
        not_rec = [(k["phase"], k["n"]) for k in kills if k["recovered"] is None]
        expect(len(every) == a.kills and not not_rec,
               f"{len(every)} of {a.kills} kills every {a.gap:.1f} s made"
               + (f" and {len(loop)} every {a.loop_gap:.1f} s" if loop else "")
               + f"; the proxy recovered after each within {a.bound:.0f} s"
               + (f" (not after {not_rec})" if not_rec else ""))
        # steady after recovery: probe 200 and never 407 from 1 s after recovery until
        # the next kill
        bounds = [k["t"] for k in kills[1:]] + [self.t_end - 2.0]
        unsteady = []
        for k, t_next in zip(kills, bounds):
            if not k["recovered"]:
                continue
            bad = [r for r in self.results if r[1] >= k["recovered"] + 1.0 and r[2] < t_next
                   and ((r[0].startswith("probe") and r[3] != 200)
                        or (r[0].startswith("never") and r[3] != 407))]
            if bad:
                unsteady.append((k["phase"], k["n"], len(bad), sorted({r[3] for r in bad})))
                for name, t0, t1, code in bad[:5]:
                    print(f"    after {k['phase']} kill {k['n']} (at {k['t'] - self.t_start:.2f} s, "
                          f"recovered {k['recovered'] - self.t_start:.2f} s; next kill "
                          f"{t_next - self.t_start:.2f} s): {name} sent {t0 - self.t_start:.3f} s, "
                          f"answered {code} at {t1 - self.t_start:.3f} s")
        n_unsteady = sum(u[2] for u in unsteady)
        # Seen once in ~400 kills: one request closed without an answer (0) in a steady
        # window, cause unknown (nothing in Squid's logs). Not a security matter (it failed
        # closed): up to STEADY_SLACK such answers per run are reported, not failed.
        expect(n_unsteady <= STEADY_SLACK, "after recovery the bypass stays 200 and the "
               f"others 407 until the next kill ({n_unsteady} other answers, at most "
               f"{STEADY_SLACK} tolerated)" + (f": {unsteady}" if unsteady else ""))
        auth = by.get("authenticated", {})
        auth_bad = sum(v for c, v in auth.items() if c != 200)
        print(f"  authenticated requests: {auth.get(200, 0)} x 200, {auth_bad} otherwise "
              "(refused while no kid listened, or their lookup was on the killed helper)")
        expect(auth.get(200, 0) > 0, "authenticated requests got 200")

        log = self.cache_log_text
        fatal = re.findall(r".*(?:FATAL|crashing too rapidly|assertion failed).*", log)
        known = [f for f in fatal if KNOWN_ABORT in f]
        other = [f for f in fatal if KNOWN_ABORT not in f]
        expect(not other, "cache.log: no FATAL / assertion other than the known Squid 5.7 "
               "one" + (": " + " | ".join(o.strip() for o in other[:3]) if other else ""))
        kid_deaths = [e for e in self.events if e[1] == "kid_died"]
        # how long each dead kid had lived (from the sample that first saw it)
        born = {kw["pid"]: t for t, kind, kw in self.events if kind == "kid_started"}
        young = [(kw["pid"], round(t - born[kw["pid"]], 3)) for t, kind, kw in self.events
                 if kind == "kid_died" and kw["pid"] in born and t - born[kw["pid"]] < 1.0]
        silent = len(kid_deaths) - len(known)
        # Seen once in ~150 kid deaths: a new kid died within 50 ms of its start without a
        # word in cache.log, and the master started another. Tolerated (and reported) for
        # kids that die within 1 s of their start; any other unexplained death fails.
        expect(0 <= silent <= len(young),
               f"every kid death is the known assertion: {len(kid_deaths)} kid deaths, "
               f"{len(known)} x '{KNOWN_ABORT}' in cache.log"
               + (f"; {silent} without a message, kids that died within 1 s of their start: "
                  f"{young}" if silent else ""))
        err = self.stdout_text.strip()
        if err:
            print("  Squid's stdout/stderr:\n    " + "\n    ".join(err.splitlines()[-10:]))
        no_new = [(k["phase"], k["n"]) for k in kills
                  if k["kid_died"] and not k["master_exit"] and not k["new_kid"]]
        expect(not no_new, "after every kid abort the master started a new kid (unless it "
               "gave up)" + (f" (not after {no_new})" if no_new else ""))
        gave_up = [k for k in kills if k["master_exit"]]
        if gave_up:
            expect(all(k["master_exit"][1] != 0 for k in gave_up),
                   "a master that gives up exits non-zero (so Restart=on-failure applies): "
                   f"status {[k['master_exit'][1] for k in gave_up]}")
        expect(not self.pidfile_bad, "the pid file holds the master's PID"
               + (f" (not: {self.pidfile_bad[:3]})" if self.pidfile_bad else ""))

        figures = {"kid_pids": self.kids_seen, "master_pids": self.masters,
                   "assertions": len(known), "answers": {
                       n: {str(c): v for c, v in codes.items()} for n, codes in by.items()}}
        for label, ks, gap in (("every", every, a.gap), ("loop", loop, a.loop_gap)):
            if ks:
                figures[label] = self.phase_figures(label, ks, gap)
        if gave_up:
            print(f"  SQUID MASTER GAVE UP {len(gave_up)} time(s) (after "
                  f"{[(k['phase'], k['n']) for k in gave_up]}, exit status "
                  f"{[k['master_exit'][1] for k in gave_up]}): the kid had died within 10 s of "
                  "its start 5 times in a row; Squid alone stays down. "
                  + (f"Started again {a.systemd_restart:.0f} s later, as Restart=on-failure "
                     "would." if a.systemd_restart >= 0 else "No restart (--systemd-restart -1)."),
                  flush=True)
        return figures

    @staticmethod
    def phase_figures(label: str, kills: list[dict], gap: float) -> dict:
        aborts = [k for k in kills if k["kid_died"]]
        gave_up = [k for k in kills if k["master_exit"]]
        restarted = [k for k in aborts if k["new_kid"] and not k["master_exit"]]
        rec_kill = [k["recovered"] - k["t"] if k["recovered"] else None for k in kills]
        survived = [r for k, r in zip(kills, rec_kill) if not k["kid_died"]]
        died_after = [k["kid_died"] - k["t"] for k in aborts]
        kid_start = [k["new_kid"] - k["kid_died"] for k in restarted]
        from_death = [k["recovered"] - k["kid_died"] for k in restarted if k["recovered"]]
        after_kill = [k["recovered"] - k["t"] for k in restarted if k["recovered"]]
        by_master = [k["recovered"] - k["t"] for k in gave_up if k["recovered"]]
        print(f"  == phase {label!r}: {len(kills)} kills every {gap:.1f} s (at least): "
              f"{len(aborts)} kid aborts, {len(restarted)} new kids started by the master, "
              f"{len(gave_up)} times the master gave up")
        print(f"     kid survived the kill ({len(survived)}): recovery {fmt(survived)}")
        if aborts:
            print(f"     kid aborted {fmt(died_after)} after the kill (sampled every 50 ms)")
        if restarted:
            print(f"     new kid {fmt(kid_start)} after the death; recovery {fmt(from_death)} "
                  f"after the death, {fmt(after_kill)} after the kill")
        if by_master:
            print(f"     master gave up and was started again: recovery {fmt(by_master)} "
                  "after the kill")
        print(f"     all kills: recovery {fmt(rec_kill)} after the kill", flush=True)

        def r(xs):
            return [None if x is None else round(x, 3) for x in xs]
        return {"kills": len(kills), "gap_s": gap, "kid_aborts": len(aborts),
                "kids_started_by_master": len(restarted), "master_gave_up": len(gave_up),
                "master_exit_status": [k["master_exit"][1] for k in gave_up],
                "gave_up_after_kill": [k["n"] for k in gave_up],
                "kid_died_after_kill_s": r(died_after), "new_kid_after_death_s": r(kid_start),
                "recovery_after_kill_s": r(rec_kill),
                "recovery_after_kid_death_s": r(from_death),
                "recovery_when_kid_survived_s": r(survived),
                "recovery_with_master_restart_s": r(by_master)}


def main(argv) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("helper")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between kills (at least)")
    ap.add_argument("--loop-kills", type=int, default=40,
                    help="then a crash loop: up to this many kills, until the master gives "
                         "up (0: none)")
    ap.add_argument("--loop-gap", type=float, default=0.5)
    ap.add_argument("--bound", type=float, default=30.0,
                    help="the proxy must answer right again within this many seconds")
    ap.add_argument("--systemd-restart", type=float, default=2.0, metavar="SECONDS",
                    help="start Squid again this long after its master exited non-zero "
                         "(Restart=on-failure, RestartSec); -1: never")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv[1:])
    if not squid_available():
        print("SKIP: squid, basic_ncsa_auth, curl or openssl not installed")
        return 77
    checks = Checks()
    failures, expect = checks.failures, checks.expect

    tmp = tempfile.mkdtemp(prefix="ab-killsup-")
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    print(f"== supervised Squid (squid --foreground -sYC, master + kid): SIGKILL of a running "
          f"helper under load, {a.kills} kills every {a.gap:.1f} s, then up to {a.loop_kills} "
          f"every {a.loop_gap:.1f} s until the master gives up", flush=True)
    run = Run(a, policy, expect)
    figures = None
    try:
        try:
            run.run()
        except (LabError, OSError) as e:
            expect(False, f"lab error: {e}")
        finally:
            run.cleanup()
        if run.kills:
            figures = run.check()
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    left = sorted({p for m in run.masters for p in run.lab.group_pids(m)})
    expect(not left and not run.lab.leftover_pids,
           "nothing left running: master, kids and helpers all exited"
           + (f" (left: {left}, killed: {run.lab.leftover_pids})"
              if left or run.lab.leftover_pids else ""))
    if a.json and figures is not None:
        figures["failures"] = failures
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    print(f"\n{'FAILED: ' + '; '.join(failures) if failures else 'all checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
