#!/usr/bin/python3
"""Integration test: the reload window under traffic. The `crl-files` rule of the shipped
policy is removed and restored every second (the policy file rewritten atomically; the
helper and c-icap each watch their copy) while four clients without credentials fetch a
Windows program named .crl and genuine CRLs through a real Squid 5.7 (memory cache on, as
Debian runs it) + c-icap 0.5.10 + srv_authbypass.so (+ ext_authbypass_acl in helper mode).
The Squid side is `authbypass squid-config`'s output (helper mode: everything but the
external_acl_type line, whose paths are the lab's; its ttl= is the one given here).

usage: icap_toggle_test.py CONFIG CLI HELPER MODULE POLICY DATA_DIR [SECONDS]
  CONFIG: helper-ttl0   helper mode, the helper's answers not cached (ttl=0)
          helper-ttl60  helper mode, ttl=60 as shipped (Squid keeps the helper's OK for
                        the whole run while c-icap's policy changes under it)
          decide        decision mode (authbypass.Mode both, squid-config --mode icap):
                        REQMOD and RESPMOD of one request may run in c-icap children
                        holding different policy snapshots
  SECONDS: how long the rule toggles (default 20)

Checks: the program is delivered 0 times (no 200 at all for it); a genuine CRL on a host
rule that is never toggled is delivered every time; a genuine CRL that only `crl-files`
bypasses is never refused by the check (200 when a policy in force bypassed it, 407 when
none did) and is delivered at least once; the counts are printed.
Exit status: 0 passed, 1 failed, 2 usage, 77 Squid or c-icap not installed.
"""

from __future__ import annotations

import collections
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

from lab.checks import Checks  # noqa: E402
from lab.cicap import CIcap, IcapLabError, c_icap_available  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
SECRET = "9e" * 32
PROGRAM_URL = "http://evil.example.test/tools/app.crl"        # crl-files only
TOGGLED_CRL = "http://crl.lab-ca.test/pki/lab.crl"           # crl-files only
STEADY_CRL = "http://crl.microsoft.com/pki/crl/products/lab.crl"  # ca-revocation-hosts
HOSTS = ["evil.example.test", "crl.lab-ca.test", "crl.microsoft.com", "www.example.com"]
CLIENTS = 4
# What each client fetches, in turn: mostly the program.
ROUND = [PROGRAM_URL, PROGRAM_URL, PROGRAM_URL, TOGGLED_CRL, PROGRAM_URL, STEADY_CRL]


def without_rule(policy: str, rule_id: str) -> str:
    """The policy text with one rule's list entry cut out (up to the next rule or
    section comment), and without its `tests:` section (some of its tests name the rule:
    a policy whose tests name an unknown rule does not load)."""
    lines = policy.splitlines(keepends=True)
    start = next(i for i, l in enumerate(lines) if re.match(rf"^  - id: {re.escape(rule_id)}\s*$", l))
    end = start + 1
    while end < len(lines) and not re.match(r"^  (- id:|# -)", lines[end]):
        end += 1
    lines = lines[:start] + lines[end:]
    tests = next((i for i, l in enumerate(lines) if l.startswith("tests:")), len(lines))
    return "".join(lines[:tests])


def loads(cli: str, text: str, tmp: str) -> bool:
    path = os.path.join(tmp, "check.yaml")
    with open(path, "w") as f:
        f.write(text)
    return subprocess.run([cli, "check", path], capture_output=True, timeout=30).returncode == 0


def generate(cli: str, *args: str) -> str:
    r = subprocess.run([cli, "squid-config", *args], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise LabError(f"authbypass squid-config {' '.join(args)} failed: {r.stderr}")
    return r.stdout


class Client(threading.Thread):
    """Fetches ROUND in a loop through the proxy, without credentials, until stopped."""

    def __init__(self, port: int, stop: threading.Event, results: dict, lock: threading.Lock,
                 offset: int):
        super().__init__(daemon=True)
        self.port, self.stop, self.results, self.lock = port, stop, results, lock
        self.offset = offset

    def run(self):
        conn = None
        i = self.offset
        while not self.stop.is_set():
            url = ROUND[i % len(ROUND)]
            i += 1
            host = url.split("/")[2]
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                conn.request("GET", url, headers={"Host": host, "User-Agent": CRYPTOAPI})
                r = conn.getresponse()
                body = r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                status, body = f"error {type(e).__name__}", b""
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.results[url].append((status, body))
        if conn is not None:
            conn.close()


def run(config: str, cli: str, helper: str, module: str, policy: str, data: str,
        seconds: float, checks: Checks) -> None:
    with open(policy) as f:
        on = f.read()
    off = without_rule(on, "crl-files")
    checks.expect("id: crl-files" in on and "id: crl-files" not in off
                  and "id: ca-revocation-hosts" in off, "the toggled policy lacks crl-files only")
    with open(os.path.join(data, "app.exe"), "rb") as f:
        program = f.read()[:20000]  # MZ...: held whole by the service (under 32 KiB)
    with open(os.path.join(data, "crl.der"), "rb") as f:
        crl = f.read()

    decide = config == "decide"
    ttl = 60 if config == "helper-ttl60" else 0
    tmp = tempfile.mkdtemp(prefix="toggle-")
    os.chmod(tmp, 0o755)
    checks.expect(loads(cli, on, tmp) and loads(cli, off, tmp),
                  "both policies load (`authbypass check`)")
    ic = CIcap(module, policy, mode="both" if decide else None,
               secret=SECRET if decide else None, verbose=True)
    lab = None
    try:
        ic.start()
        if decide:
            secret_file = os.path.join(tmp, "secret")
            with open(secret_file, "w") as f:
                f.write(SECRET + "\n")
            os.chmod(secret_file, 0o600)
            conf = generate(cli, "--mode", "icap", "--secret-file", secret_file,
                            "--clients", "localhost", "--icap", ic.url, policy)
        else:
            gen = generate(cli, policy, "--icap", ic.url, "--ttl", str(ttl))
            helper_line = next(l for l in gen.splitlines() if l.startswith("external_acl_type"))
            checks.expect(f"ttl={ttl} " in helper_line and f"negative_ttl={ttl} " in helper_line,
                          f"squid-config --ttl {ttl}: the helper line has ttl={ttl}", helper_line)
            conf = "\n".join(l for l in gen.splitlines()
                             if not l.startswith("external_acl_type")
                             and l != "acl authbypass external authbypass")
        lab = SquidLab(helper, policy, bypass_access=conf, hosts=HOSTS, verbose=True,
                       no_helper_cache_because=None if ttl else
                       "every request asks the helper: the toggle reaches it at once")
        lab.start()
        lab.origin.serve("/tools/app.crl", program, content_type="application/pkix-crl",
                         headers=[("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")])
        lab.origin.serve("/pki/lab.crl", crl, content_type="application/pkix-crl")
        lab.origin.serve("/pki/crl/products/lab.crl", crl, content_type="application/pkix-crl")

        # Warm-up with the rule on: both deciders bypass; the check stops the program.
        for url in (TOGGLED_CRL, STEADY_CRL, PROGRAM_URL):
            code = lab.get(url, ua=CRYPTOAPI)
            want = 403 if url == PROGRAM_URL else 200
            checks.expect(code == want, f"warm-up, rule on: {url} -> {want}", str(code))

        results: dict[str, list] = collections.defaultdict(list)
        lock = threading.Lock()
        stop = threading.Event()
        clients = [Client(lab.port, stop, results, lock, i) for i in range(CLIENTS)]
        for c in clients:
            c.start()
        toggles = 0
        state_on = True
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            time.sleep(1.0)
            state_on = not state_on
            text = on if state_on else off
            ic.write_policy(text)
            lab.write_policy(text)
            toggles += 1
        stop.set()
        for c in clients:
            c.join(30)
        ic.write_policy(on)
        lab.write_policy(on)

        def summary(url):
            return dict(collections.Counter(s for s, _b in results[url]))

        prog = results[PROGRAM_URL]
        delivered = sum(1 for s, b in prog if s == 200 and b == program)
        any200 = sum(1 for s, _b in prog if s == 200)
        print(f"\n[{config}] {toggles} toggles in {seconds:.0f} s, {CLIENTS} clients, "
              f"{sum(len(v) for v in results.values())} requests")
        print(f"[{config}] program named .crl: {summary(PROGRAM_URL)}; delivered whole {delivered}")
        steady = results[STEADY_CRL]
        tog = results[TOGGLED_CRL]
        print(f"[{config}] genuine CRL, host rule (never toggled): {summary(STEADY_CRL)}")
        print(f"[{config}] genuine CRL, crl-files only (toggled): {summary(TOGGLED_CRL)}")
        disagree = [e for e in ic.audit_events() if "does not bypass" in e.get("reason", "")]
        dis_kinds = collections.Counter(e.get("event") for e in disagree)
        print(f"[{config}] ICAP events checked because the service's policy did not bypass: "
              f"{dict(dis_kinds)}")

        checks.expect(toggles >= max(3, int(seconds) - 2), f"[{config}] the rule toggled", str(toggles))
        checks.expect(len(prog) >= 50, f"[{config}] the clients fetched the program", str(len(prog)))
        checks.expect(delivered == 0 and any200 == 0,
                      f"[{config}] the program is delivered 0 times",
                      f"{delivered} whole, {any200} answers 200")
        checks.expect(len(steady) > 0 and all(s == 200 and b == crl for s, b in steady),
                      f"[{config}] a genuine CRL on a never-toggled rule: delivered every time",
                      str(summary(STEADY_CRL)))
        checks.expect(all(s in (200, 407) for s, _b in tog)
                      and all(b == crl for s, b in tog if s == 200),
                      f"[{config}] the toggled genuine CRL: 200 (a policy bypassed it) or 407, "
                      "never refused", str(summary(TOGGLED_CRL)))
        checks.expect(sum(1 for s, _b in tog if s == 200) > 0,
                      f"[{config}] the toggled genuine CRL is delivered", str(summary(TOGGLED_CRL)))
        if decide:
            # RESPMOD reads the rule from the mark in the adapted request Squid encapsulates
            named = collections.Counter(e.get("rule") for e in disagree)
            checks.expect(all(e.get("rule") == "crl-files" for e in disagree),
                          f"[{config}] each such event names the marked rule (crl-files)",
                          str(dict(named)))
        if config == "helper-ttl60":
            checks.expect(all(s == 200 for s, _b in tog),
                          f"[{config}] Squid kept the helper's OK all along: the CRL always 200",
                          str(summary(TOGGLED_CRL)))
    finally:
        if lab is not None:
            lab.stop()
        ic.stop()


def main(argv) -> int:
    if len(argv) not in (7, 8) or argv[1] not in ("helper-ttl0", "helper-ttl60", "decide"):
        print(__doc__, file=sys.stderr)
        return 2
    config, cli, helper, module, policy, data = argv[1:7]
    seconds = float(argv[7]) if len(argv) == 8 else 20.0
    if not (squid_available() and c_icap_available()):
        print("Squid or c-icap not installed: skipped")
        return 77
    checks = Checks()
    try:
        run(config, cli, helper, module, policy, data, seconds, checks)
    except (LabError, IcapLabError) as e:
        checks.expect(False, "lab", str(e))
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
