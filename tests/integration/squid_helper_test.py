#!/usr/bin/python3
"""Integration test: a real Squid 5.7 with ext_authbypass_acl in front of proxy_auth.

usage: squid_helper_test.py HELPER POLICY

Starts Squid + helper + loopback origin (tests/lab/squid.py), then checks:
  * the seed scenario (scenarios.SEED): CryptoAPI CRL fetches bypass, the Sign-In
    Assistant's CONNECT to login.microsoftonline.com:443 bypasses, a browser gets 407
    and 200 with credentials, the evasions get 407;
  * 48 requests 8 at a time (concurrency=100 channel ids, answers out of order);
  * hot reload: an edited policy (new rule) takes effect without `squid -k reconfigure`;
    a broken edit (invalid YAML) keeps the previous policy in force, Squid keeps
    serving, the audit log gets `policy_rejected` and cache.log the error; restoring
    the original removes the rule again;
  * Squid's access log names the rule (%ea / %et) for every bypassed request, and the
    audit log has exactly one `bypass` event per bypassed request (ttl=0);
  * nothing is left running afterwards.
Exit status: 0 all passed, 1 a check failed, 77 Squid (or curl / openssl) is not
installed (ctest SKIP_RETURN_CODE).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from lab import scenarios  # noqa: E402
from lab.checks import Checks, stopped  # noqa: E402
from lab.scenarios import CRYPTOAPI_10, Case, run_case  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

RELOAD_WAIT = 1.6  # > the helper's default --check-interval of 1000 ms

NEW_RULE = """\
  # added by squid_helper_test.py while Squid runs
  - id: lab-newca
    description: Integration test - a CA added to the policy while Squid runs
    owner: lab@example.test
    ticket: LAB-0001
    match:
      hosts: [newca.example.test]
      path_suffix: [.crt]
    verify: cert
"""

BROKEN_TAIL = "\n  - id: broken-edit\n    match: {hosts: [unterminated.example.test\n"


def with_rule(policy_text: str) -> str:
    m = re.search(r"^rules:[ \t]*\n", policy_text, re.M)
    if not m:
        raise LabError("the policy has no top-level 'rules:' line to add a rule under")
    return policy_text[:m.end()] + NEW_RULE + policy_text[m.end():]


def policy_events(lab, event):
    return [e for e in lab.audit_events() if e.get("event") == event]


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    helper, policy = argv[1], argv[2]
    if not squid_available():
        print("SKIP: squid, /usr/lib/squid/basic_ncsa_auth, curl or openssl not installed "
              "(scripts/setup installs them)")
        return 77

    checks = Checks()
    cases: list[Case] = []
    lab = SquidLab(helper, policy, verbose=True,
                   no_helper_cache_because="follows the helper's policy reloads request by request")
    lab_dir = None
    try:
        lab.start()
        lab_dir = lab.dir
        print(f"squid on {lab.proxy_url}, lab dir {lab.dir}", flush=True)
        original = lab.read_policy()

        print("== seed scenario")
        for c in scenarios.SEED:
            run_case(lab, c)
            cases.append(c)
            checks.expect(c.ok, f"{c.label}: {c.request} -> {c.got} (want {c.expect})")

        loaded = policy_events(lab, "policy_loaded")
        checks.expect(bool(loaded) and loaded[0].get("policy_sha256") ==
                      hashlib.sha256(original.encode()).hexdigest(),
                      "audit: policy_loaded at start with the policy's sha256")

        print("== concurrency: parallel requests (answers out of order on one helper)")
        par = []
        for i in range(16):
            par.append(Case("parallel CRL", "GET", f"http://crl.verisign.com/par-{i}.crl",
                            scenarios.CRYPTOAPI_61, 200, "ca-revocation-hosts"))
            par.append(Case("parallel evasion", "GET",
                            f"http://evil.test/par-{i}.exe?x=.crl", CRYPTOAPI_10, 407))
            par.append(Case("parallel browser", "GET", f"http://www.example.com/par-{i}",
                            scenarios.BROWSER_UA, 200, user=True))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: run_case(lab, c), par))
        cases.extend(par)
        wrong = [f"{c.request} -> {c.got}" for c in par if not c.ok]
        checks.expect(not wrong, f"{len(par)} parallel requests (8 at a time) answered as "
                      f"expected" + ("" if not wrong else ": " + ", ".join(wrong[:5])))

        print("== hot reload: add a rule while Squid runs")
        newca = "http://newca.example.test/issuing-ca.crt"

        def newca_case(label, expect, rule):
            c = run_case(lab, Case(label, "GET", newca, CRYPTOAPI_10, expect, rule))
            cases.append(c)
            checks.expect(c.ok, f"{c.label}: {c.request} -> {c.got} (want {c.expect})")

        newca_case("new CA before the edit", 407, None)
        edited = with_rule(original)
        lab.write_policy(edited)
        time.sleep(RELOAD_WAIT)
        newca_case("new CA after the edit (no squid -k reconfigure)", 200, "lab-newca")
        edited_sha = hashlib.sha256(edited.encode()).hexdigest()
        checks.expect(any(e.get("policy_sha256") == edited_sha
                          for e in policy_events(lab, "policy_loaded")),
                      "audit: policy_loaded with the edited policy's sha256")

        print("== hot reload: a broken edit keeps the last good policy")
        rejected_before = len(policy_events(lab, "policy_rejected"))
        lab.write_policy(edited + BROKEN_TAIL)
        time.sleep(RELOAD_WAIT)
        newca_case("new CA after the broken edit (rule still in force)", 200, "lab-newca")
        c = run_case(lab, Case("Browser with credentials after the broken edit", "GET",
                               "http://www.example.com/after-broken-edit",
                               scenarios.BROWSER_UA, 200, user=True))
        cases.append(c)
        checks.expect(c.ok, f"Squid still serving: {c.request} -> {c.got} (want 200)")
        c = run_case(lab, Case("CRL after the broken edit", "GET",
                               "http://crl.verisign.com/pca3.crl", scenarios.CRYPTOAPI_61,
                               200, "ca-revocation-hosts"))
        cases.append(c)
        checks.expect(c.ok, f"shipped rules still in force: {c.request} -> {c.got} (want 200)")
        rejected = lab.wait_for(lambda: policy_events(lab, "policy_rejected")[rejected_before:])
        checks.expect(bool(rejected), "audit: a policy_rejected event for the broken edit")
        if rejected:
            ev = rejected[0]
            checks.expect(ev.get("policy_sha256") == edited_sha,
                          "audit: policy_rejected names the last good policy (sha256 of the edit)")
            reason = (ev.get("reason") or "").split("; ")[0]
            log = lab.read(lab.cache_log)
            checks.expect(bool(reason) and reason in log,
                          f"cache.log has the helper's error: {reason!r}")

        print("== hot reload: restoring the original removes the rule")
        lab.write_policy(original)
        time.sleep(RELOAD_WAIT)
        newca_case("new CA after restoring the original", 407, None)

        print("== access log and audit log")
        for f in scenarios.check_logs(lab, cases):
            checks.expect(False, f)
        bypassed = [c for c in cases if c.bypassed]
        checks.expect(not [f for f in checks.failures if f.startswith(("access log", "audit log"))],
                      f"access log names the rule for all {len(bypassed)} bypassed requests, "
                      f"audit log has one bypass event for each")

        log = lab.read(lab.cache_log)
        crashes = re.findall(r".*(?:#Hlpr\d+ exited|FATAL|crashing too rapidly).*", log)
        checks.expect(not crashes, "cache.log: no helper exits or FATAL errors"
                      + ("" if not crashes else ": " + " | ".join(crashes[:3])))
    except LabError as e:
        checks.failures.append(f"lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures and lab.dir:
            print(lab.tail(lab.cache_log, 40))
            print(lab.tail(lab.access_log, 40))
            print(lab.tail(lab.audit_log, 20))
        squid_pid = lab.squid.pid if lab.squid else None
        lab.stop()

    print("== cleanup")
    checks.expect(not lab.leftover_pids,
                  f"helpers exited with Squid (had to kill {lab.leftover_pids})"
                  if lab.leftover_pids else "helpers exited with Squid")
    if squid_pid:
        checks.expect(stopped(squid_pid), f"squid (pid {squid_pid}) stopped")
    if lab_dir:
        checks.expect(not os.path.exists(lab_dir) or os.environ.get("SQUIDLAB_KEEP"),
                      "lab directory removed")

    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
