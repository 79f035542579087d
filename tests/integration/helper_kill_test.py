#!/usr/bin/python3
"""Fault test (issue 9): ext_authbypass_acl killed (SIGKILL) mid-stream, behind a real Squid.

usage: helper_kill_test.py HELPER [--kills N] [--gap SECONDS]

Client threads send requests through Squid all the time: one that the policy bypasses
(probe, CryptoAPI UA, unique URL each time so that every one reaches a helper), one it
must not (never), the same never-URL with credentials. Every --gap seconds a running
ext_authbypass_acl child of Squid is killed with SIGKILL (by PID: the processes running
the lab's copy of the binary), N times. Checks:
  * no request that should authenticate gets 200 without credentials (never: 407 only);
  * the probe is never answered by an impostor: 200 or, around a kill, a fail-closed
    answer (407/403/5xx); it recovers (200 again) within RECOVERY seconds of every kill,
    and most probe answers overall are 200;
  * Squid restarts helpers (new helper PIDs after each kill) and Squid itself stays up
    (with children-startup=0, as squidlab and the shipped drop-in use, Squid starts
    helpers on demand and never gives up on them: no "crashing too rapidly", no FATAL);
  * authenticated requests keep getting 200 (failures counted and reported).
Exit status: 0 passed, 1 failed, 77 Squid not installed.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from squidlab import LabError, SquidLab, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
RECOVERY = 5.0
POLICY = """version: 1
rules:
  - id: probe
    match:
      hosts: [probe.kill.test]
      path_suffix: [.crl]
      user_agent_regex: ['^Microsoft-CryptoAPI/(6\\.[0-3]|10\\.0)$']
"""


def http_get(port: int, url: str, ua: str, auth: str | None = None) -> int:
    host = url.split("/")[2]
    req = (f"GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
           + (f"Proxy-Authorization: Basic {auth}\r\n" if auth else "")
           + "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else 0


def helper_pids(lab: SquidLab) -> set[int]:
    pids = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink(f"/proc/{d}/exe") == lab.helper:
                    pids.add(int(d))
            except OSError:
                pass
    return pids


def main(argv) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("helper")
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--gap", type=float, default=2.0)
    a = ap.parse_args(argv[1:])
    if not squid_available():
        print("SKIP: squid, basic_ncsa_auth, curl or openssl not installed")
        return 77
    failures: list[str] = []

    def expect(cond, what):
        print(f"  {'ok  ' if cond else 'FAIL'}  {what}", flush=True)
        if not cond:
            failures.append(what)

    tmp = tempfile.mkdtemp(prefix="ab-kill-")
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    lab = SquidLab(a.helper, policy, verbose=True)
    stop = threading.Event()
    results: list[tuple[str, float, float, int]] = []
    threads: list[threading.Thread] = []
    kills: list[tuple[float, int]] = []
    try:
        lab.start()
        print(f"squid on {lab.proxy_url}, lab dir {lab.dir}", flush=True)
        auth = base64.b64encode(f"{lab.USER}:{lab.PASSWORD}".encode()).decode()

        def client(name, url, ua, au):
            n = 0
            while not stop.is_set():
                n += 1
                u = url + (f"?{name}-{n}" if name.startswith("probe") else "")
                t0 = time.monotonic()
                try:
                    code = http_get(lab.port, u, ua, au)
                except OSError:
                    code = -1
                results.append((name, t0, time.monotonic(), code))

        for name, url, ua, au in [
                ("probe1", "http://probe.kill.test/x.crl", CRYPTOAPI, None),
                ("probe2", "http://probe.kill.test/y.crl", CRYPTOAPI, None),
                ("never1", "http://never.kill.test/x.crl", CRYPTOAPI, None),
                ("never2", "http://probe.kill.test/x.exe", CRYPTOAPI, None),
                ("authenticated", "http://never.kill.test/a", "Mozilla/5.0", auth)]:
            t = threading.Thread(target=client, args=(name, url, ua, au), daemon=True)
            threads.append(t)
            t.start()
        t_start = time.monotonic()
        time.sleep(1.0)
        print(f"== {a.kills} x SIGKILL of a running helper, one every {a.gap:.1f} s, under load",
              flush=True)
        all_pids: set[int] = set(helper_pids(lab))
        for i in range(a.kills):
            pids = sorted(helper_pids(lab))
            all_pids |= set(pids)
            if not pids:
                failures.append(f"kill {i + 1}: no helper running")
                time.sleep(a.gap)
                continue
            victim = pids[i % len(pids)]
            os.kill(victim, signal.SIGKILL)
            kills.append((time.monotonic(), victim))
            print(f"  kill {i + 1}: SIGKILL helper pid {victim} (running: {pids})", flush=True)
            time.sleep(a.gap)
            all_pids |= helper_pids(lab)
        time.sleep(RECOVERY)
        stop.set()
        for t in threads:
            t.join(20)
        run = time.monotonic() - t_start

        by: dict[str, dict[int, int]] = {}
        for name, _t0, _t1, code in results:
            by.setdefault(name, {}).setdefault(code, 0)
            by[name][code] += 1
        print(f"== {len(results)} answers in {run:.1f} s")
        for name, codes in sorted(by.items()):
            print(f"  {name:14s} " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())))
        never_200 = sum(by.get(n, {}).get(200, 0) for n in ("never1", "never2"))
        expect(never_200 == 0, f"requests that must authenticate: zero 200 without "
               f"credentials ({never_200})")
        never_other = {k for n in ("never1", "never2") for k in by.get(n, {}) if k != 407}
        print(f"  (never-URLs answered other than 407: {sorted(never_other) or 'none'})")
        probe = [r for r in results if r[0].startswith("probe")]
        probe_ok = sum(1 for r in probe if r[3] == 200)
        probe_other = {}
        for r in probe:
            if r[3] != 200:
                probe_other[r[3]] = probe_other.get(r[3], 0) + 1
        expect(probe_ok > 0.9 * len(probe), f"probe: {probe_ok} of {len(probe)} answered 200; "
               f"the others fail closed: {probe_other}")
        expect(all(c in (407, 403, 500, 502, 503) for c in probe_other),
               f"probe answers other than 200 are fail-closed statuses ({sorted(probe_other)})")
        # recovery after each kill: a probe sent RECOVERY s after the kill gets 200
        slow = []
        for t_kill, pid in kills:
            later = [r for r in probe if r[1] >= t_kill + RECOVERY * 0.5 and r[1] < t_kill + RECOVERY]
            after = [r for r in probe if r[1] >= t_kill]
            first_ok = next((r[1] - t_kill for r in after if r[3] == 200), None)
            if not later or any(r[3] != 200 for r in later) or first_ok is None:
                slow.append((pid, first_ok))
        expect(not slow, f"the probe answers 200 again within {RECOVERY / 2:.1f} s of every kill"
               + (f" (slow: {slow})" if slow else ""))
        auth_codes = by.get("authenticated", {})
        auth_bad = sum(v for k, v in auth_codes.items() if k != 200)
        expect(auth_codes.get(200, 0) > 0 and auth_bad <= a.kills * 2,
               f"authenticated requests: {auth_codes.get(200, 0)} x 200, {auth_bad} otherwise")
        alive = helper_pids(lab)
        new = alive - {p for _t, p in kills}
        expect(bool(alive) and all(p not in alive for _t, p in kills),
               f"killed helpers are gone and Squid runs new ones ({sorted(alive)}); "
               f"{len(all_pids)} helper processes seen in all")
        expect(lab.squid is not None and lab.squid.poll() is None, "Squid is still running")
        log = lab.read(lab.cache_log)
        exited = len(re.findall(r"#Hlpr\d+ exited", log))
        fatal = re.findall(r".*(?:FATAL|crashing too rapidly|assertion failed).*", log)
        print(f"  cache.log: {exited} 'helper exited' lines for {len(kills)} kills")
        expect(not fatal, "cache.log: no FATAL / crashing too rapidly"
               + (": " + " | ".join(fatal[:3]) if fatal else ""))
        del new
    except (LabError, OSError) as e:
        failures.append(f"lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        if failures and lab.dir:
            print(lab.tail(lab.cache_log, 40))
        lab.stop()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    expect(not lab.leftover_pids, "helpers exited with Squid")
    print(f"\n{'FAILED: ' + '; '.join(failures) if failures else 'all checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
