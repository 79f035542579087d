#!/usr/bin/python3
"""Regression test for a reload bug found by reload_under_load_test.py:
an ext_authbypass_acl that gets no request while a valid policy is on disk never loads
it; if a broken edit follows, the helper keeps an *older* policy, not the last good one.

usage: idle_helper_stale_policy_test.py HELPER

  1. policy A (rule `probe` bypasses probe.test) is in force: the probe gets OK;
  2. the helper is idle; policy B (the bypass revoked) is written, valid;
  3. still idle; a broken edit of B is written (a typo);
  4. the probe: the rule is "a new policy that fails to load is logged and the last
     good one stays in force" -- the last good policy is B, so ERR is expected; the
     helper answers OK by `probe`: the revoked bypass is back in force until the file
     is fixed. Behind Squid this hits helper children that were idle (children-max > 1:
     Squid sends most lookups to the first child) or a lull in traffic.
The helper looks at the file only when a request arrives (housekeeping() per read
batch); a check while idle (poll with the check interval as timeout) would avoid it.
Registered DISABLED in ctest until the helper is fixed; exit 0 = fixed, 1 = bug present.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

A = "version: 1\nrules:\n  - id: probe\n    match: {hosts: [probe.test]}\n"
B = "version: 1\nrules:\n  - id: other\n    match: {hosts: [other.test]}\n"
BROKEN_B = B + "  - id: typo\n    match: {hosts: [oops.test\n"
PROBE = "10.0.0.1 GET http%3A%2F%2Fprobe.test%2Fx.crl Microsoft-CryptoAPI%2F10.0 -"


def main() -> int:
    helper = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="ab-idle-")
    policy = os.path.join(tmp, "policy.yaml")

    def write(text):
        with open(policy + ".new", "w") as f:
            f.write(text)
        os.replace(policy + ".new", policy)

    write(A)
    p = subprocess.Popen([helper, "--policy", policy, "--check-interval", "100"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        def ask(i):
            p.stdin.write(f"{i} {PROBE}\n".encode())
            p.stdin.flush()
            return p.stdout.readline().decode().strip()

        first = ask(1)
        if not first.startswith("1 OK"):
            print(f"setup: expected OK under policy A, got {first!r}")
            return 2
        write(B)         # valid: the bypass is revoked
        time.sleep(0.5)  # 5 check intervals, no request
        write(BROKEN_B)  # then a typo
        time.sleep(0.5)
        got = ask(2)
    finally:
        p.stdin.close()
        err = p.stderr.read().decode()
        p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"after A -> B (valid) -> B with a typo, helper idle throughout: {got!r}")
    print(err)
    if got == "2 ERR":
        print("ok: the last good policy (B) is in force")
        return 0
    print("BUG: the helper kept policy A (it never looked at B); expected '2 ERR'")
    return 1


if __name__ == "__main__":
    sys.exit(main())
