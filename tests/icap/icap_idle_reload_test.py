#!/usr/bin/python3
"""Regression test: an idle c-icap child must keep the LAST GOOD policy in force.

usage: icap_idle_reload_test.py MODULE DATA_DIR

The same bug class as tests/reliability/idle_helper_stale_policy_test.py (fixed in the
Squid helper): srv_authbypass.so looked at its policy file only from housekeeping(), which
ran on transactions only. A c-icap child that was idle while the security team wrote a
valid policy B and then a broken edit C saw only C at its next transaction: C was
rejected, and the OLD policy A stayed in force (B was never loaded). The rule
(docs/architecture.md, "Fail-closed rules"): a policy that fails to load is logged and the
last good one (B) stays in force.

Decision mode (authbypass.Mode decide): a REQMOD for a host the policy bypasses is
answered ICAP 200 with "X-Authbypass: <secret> <rule>" added; anything else is a 204.

  A: rule `probe` bypasses probe.lab.test          -> the probe is marked
  B: `probe` revoked (only other.lab.test)          -> the probe must be a 204
  C: B with a typo (does not load)                  -> B must stay in force

Twice: with one c-icap child (StartServers/MaxServers 1: every transaction goes to it),
and with the shipped sizing (StartServers of config/c-icap/authbypass.conf, 5 children;
the audit log shows each child's reloads, so
every child is checked, whichever of them gets the transactions):
  1. c-icap started with A; one probe (warm-up): marked;
  2. idle: B written; 2.5 s (the check interval is 1 s); C written; 2.5 s;
  3. probes: every one must be a 204 (B); marked = A in force = the bug;
  4. audit: one policy_loaded with B's sha256 per child, and each child's
     policy_rejected (for C) names B's sha256 as the policy that stays in force;
  5. c-icap stopped: every child exits cleanly (no crash, none left to kill).
Exit status: 0 passed, 1 failed (the bug: the revoked bypass is back in force),
77 c-icap not installed (ctest SKIP_RETURN_CODE).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))

from lab.checks import Checks  # noqa: E402
from lab.cicap import (CIcap, IcapLabError, lab_pids, c_icap_available,  # noqa: E402
                     decode_icap_body, icap_request)
from lab.cicap import SHIPPED_INCLUDE  # noqa: E402

SECRET = "3c" * 32
CLIENT = "10.1.2.3"
UA = "Microsoft-CryptoAPI/10.0"
PROBE = "http://probe.lab.test/pki/lab.crl"

POLICY_A = """\
version: 1
rules:
  - id: probe
    owner: pki-owner@example.test
    match: {hosts: [probe.lab.test]}
"""
POLICY_B = """\
version: 1
rules:
  - id: other
    owner: pki-owner@example.test
    match: {hosts: [other.lab.test]}
"""
POLICY_C = POLICY_B + "  - id: typo\n    match: {hosts: [oops.lab.test\n"

IDLE_WAIT = 2.5  # seconds between two writes: 2.5 check intervals, no transaction


def probe(ic: CIcap, n: int) -> tuple[int, list[str]]:
    """A REQMOD for the probe URL: (ICAP status, X-Authbypass lines of the answer)."""
    url = f"{PROBE}?{n}"
    st, lines, rest = icap_request(
        ic.port, "REQMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
        req_hdr=[f"GET {url} HTTP/1.1", "Host: probe.lab.test", f"User-Agent: {UA}"])
    if st != 200:
        return st, []
    http, _body, _complete = decode_icap_body(rest, lines)
    return st, [l.replace(SECRET, "<secret>") for l in http
                if re.match(r"(?i)^x-authbypass\s*:", l)]


def shipped_children() -> int:
    """StartServers of the shipped include (c-icap starts that many children)."""
    with open(SHIPPED_INCLUDE) as f:
        m = re.search(r"^StartServers\s+(\d+)", f.read(), re.M)
    if not m:
        raise IcapLabError(f"no StartServers line in {SHIPPED_INCLUDE}")
    return int(m.group(1))


def children(ic: CIcap) -> list[int]:
    main = ic.proc.pid if ic.proc else None
    return sorted(p for p in lab_pids(ic.conf) if p != main)


def scenario(module: str, checks: Checks, label: str, servers: int | None,
             expect_children: int, probes: int) -> None:
    print(f"\n######## {label}", flush=True)
    f = tempfile.NamedTemporaryFile("w", prefix="idle-policy-a-", suffix=".yaml", delete=False)
    f.write(POLICY_A)
    f.close()
    ic = CIcap(module, f.name, mode="decide", secret=SECRET, servers=servers, verbose=True)
    try:
        try:
            ic.start()
        finally:
            os.unlink(f.name)
        # every child up (c-icap answers OPTIONS as soon as the first one is)
        deadline = time.monotonic() + 10
        while len(children(ic)) < expect_children and time.monotonic() < deadline:
            time.sleep(0.1)
        kids = children(ic)
        checks.expect(len(kids) == expect_children,
                      f"{expect_children} c-icap child(ren) running", str(kids))

        st, mark = probe(ic, 0)
        checks.expect(st == 200 and mark == ["X-Authbypass: <secret> probe"],
                      "warm-up under policy A: the probe is marked (rule probe)",
                      str((st, mark)))
        a_sha = next((e.get("policy_sha256") for e in ic.audit_events()
                      if e.get("event") == "policy_loaded"), None)

        print(f"== idle: B (bypass revoked) written; {IDLE_WAIT} s; C (a typo) written; "
              f"{IDLE_WAIT} s", flush=True)
        ic.write_policy(POLICY_B)
        time.sleep(IDLE_WAIT)
        ic.write_policy(POLICY_C)
        time.sleep(IDLE_WAIT)

        res = [probe(ic, i) for i in range(1, probes + 1)]
        marked = [r for r in res if r[0] == 200]
        checks.expect(all(r == (204, []) for r in res),
                      f"after A -> B -> broken C, c-icap idle: {probes} probes all 204 "
                      "(B, the last good policy, is in force)",
                      f"{len(marked)} marked (policy A still in force): {res}")

        evs = ic.audit_events()
        loaded = [e for e in evs if e.get("event") == "policy_loaded"]
        b_loads = [e for e in loaded if e.get("policy_sha256") != a_sha]
        rejected = [e for e in evs if e.get("event") == "policy_rejected"]
        b_sha = b_loads[0].get("policy_sha256") if b_loads else None
        checks.expect(len(b_loads) == expect_children and
                      len({e.get("policy_sha256") for e in b_loads}) == 1,
                      f"audit: policy B loaded while idle, once per child "
                      f"({len(b_loads)} of {expect_children})", str(loaded))
        checks.expect(len(rejected) == expect_children and b_sha is not None and
                      all(e.get("policy_sha256") == b_sha and e.get("reason")
                          for e in rejected),
                      f"audit: C rejected once per child ({len(rejected)} of "
                      f"{expect_children}), B named as the policy that stays",
                      str(rejected))
        checks.expect(children(ic) == kids, "no child died or was replaced meanwhile",
                      f"{kids} -> {children(ic)}")

        t0 = time.monotonic()
        ic._stop_proc()
        took = time.monotonic() - t0
        log = CIcap.read(ic.server_log)
        bad = [l for l in log.splitlines()
               if re.search(r"did not exit normally|signaled with signal|segmentation|"
                            r"terminate called|abort|internal error", l, re.I)]
        checks.expect(not ic.leftover_pids and not bad and took < 8,
                      f"c-icap stopped in {took:.1f} s: every child exited cleanly",
                      f"leftover {ic.leftover_pids}; " + " | ".join(bad[:5]))
        if checks.failures:
            print(ic.tail(ic.server_log, 40))
    except IcapLabError as e:
        checks.expect(False, f"{label}: c-icap lab", str(e))
    finally:
        ic.stop()


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    module = argv[1]
    if not c_icap_available():
        print("SKIP: c-icap / c-icap-client not installed (scripts/setup installs them)")
        return 77
    if not os.path.isfile(module):
        print(f"SKIP: {module} not built (libicapapi-dev missing at configure time?)")
        return 77
    checks = Checks()
    scenario(module, checks, "one c-icap child (StartServers/MaxServers 1)", 1, 1, 5)
    shipped = shipped_children()
    scenario(module, checks, f"the shipped sizing: {shipped} children", None, shipped,
             2 * shipped)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
