#!/usr/bin/python3
"""Integration test: the ACLs authbypass gives Squid never make it resolve a name or an
address on the request path. Real Squid 5.7 in a lab without DNS (its only nameserver,
127.0.0.1, does not answer; the lab's hosts_file names www.example.com for readiness),
with the configuration exactly as written by `authbypass squid-config` (helper mode, and
decision mode `--mode icap`) and by the shipped drop-in (uncommented). Without `-n`, a
`dstdomain` ACL makes Squid look up the name of an IP-literal URL (a reverse lookup that
here never answers: the request waits for the DNS timeout).

usage: no_lookup_test.py CLI HELPER POLICY

For each configuration:
  * no `acl` line of type dstdomain, dstdom_regex or dst without -n, and no srcdomain or
    srcdom_regex;
  * IP-literal URLs (IPv4 and IPv6), without credentials (not a candidate: 407; a
    candidate .crl as CryptoAPI) and with credentials (200): each answered in under 1 s;
  * Squid's cache manager (idns): no query sent to the nameserver, none queued.
The ICAP services point at a port where nothing listens: the requests here never need
them (a non-candidate never reaches them; a bypassed candidate fails closed quickly).
Exit status: 0 passed, 1 failed, 77 Squid not installed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time

sys.dont_write_bytecode = True

from lab.checks import Checks  # noqa: E402
from lab.squid import LabError, SquidLab, free_port, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
SECRET = "6d" * 32
BOUND = 1.0  # seconds; a lookup in this lab waits for Squid's DNS timeout (tens of seconds)
LOOKUP_TYPES = {"srcdomain", "srcdom_regex"}
NEEDS_N = {"dstdomain", "dstdom_regex", "dst"}


def lookup_acls(text: str) -> list[str]:
    bad = []
    for line in text.splitlines():
        w = line.split()
        if len(w) < 3 or w[0] != "acl":
            continue
        if w[2] in LOOKUP_TYPES or (w[2] in NEEDS_N and (len(w) < 4 or w[3] != "-n")):
            bad.append(line)
    return bad


def idns(lab: SquidLab) -> tuple[int, int]:
    """(queries sent to all nameservers, queries in the queue) from mgr:idns."""
    page = lab.mgr("idns", user=lab.USER)
    lines = page.split("The Queue:", 1)[1].splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("------"))
    queued = 0
    for line in lines[start + 1:]:
        if not line.strip():
            break
        queued += 1
    sent = sum(int(m.group(1)) for m in
               re.finditer(r"^\S+\s+(\d+)\s+\d+\s+\S+\s*$", page.split("Nameservers:")[1]
                           .split("Rcode")[0], re.M))
    return sent, queued


def main(argv) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    cli, helper, policy = argv[1:]
    if not squid_available():
        print("SKIP: squid / curl / openssl not installed (scripts/setup installs them)")
        return 77
    checks = Checks()
    expect = checks.expect

    with tempfile.TemporaryDirectory(prefix="no-lookup-") as tmp:
        secret_file = os.path.join(tmp, "secret")
        with open(secret_file, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(secret_file, 0o600)
        configs = [
            ("squid-config", SquidLab.generated_dropin(cli, policy)),
            ("squid-config --mode icap", SquidLab.generated_dropin(
                cli, policy, "--mode", "icap", "--secret-file", secret_file,
                "--clients", "localhost")),
            ("shipped drop-in", SquidLab.shipped_dropin()),
        ]
        for name, dropin in configs:
            print(f"\n######## {name}", flush=True)
            bad = lookup_acls(dropin)
            expect(not bad, f"[{name}] no ACL that resolves names or addresses", "\n".join(bad))
            try:
                with SquidLab(helper, policy, dropin=dropin, icap_port=free_port(),
                              hosts=["www.example.com"]) as lab:
                    sent0, _ = idns(lab)
                    for url, ua, user, want in (
                            ("http://192.0.2.7/download/tool.exe", "curl/8", None, {407}),
                            ("http://[2001:db8::7]/download/tool.exe", "curl/8", None, {407}),
                            ("http://192.0.2.7/pki/x.crl", CRYPTOAPI, None, None),
                            ("http://192.0.2.7/download/tool.exe", "curl/8", lab.USER, {200})):
                        t0 = time.monotonic()
                        code = lab.get(url, ua=ua, user=user, timeout=8)
                        dt = time.monotonic() - t0
                        ok = dt < BOUND and code != 0 and (want is None or code in want)
                        expect(ok, f"[{name}] {url} ({'credentials' if user else ua}): "
                               f"HTTP {code} in {dt * 1000:.0f} ms (bound {BOUND * 1000:.0f} ms)")
                    sent, queued = idns(lab)
                    expect(sent == sent0 == 0 and queued == 0,
                           f"[{name}] cache manager: {sent} DNS queries sent, {queued} queued",
                           lab.mgr("idns", user=lab.USER)[:600])
            except LabError as e:
                expect(False, f"[{name}] lab error: {e}")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
