#!/usr/bin/python3
"""Integration test of the test lab itself: a squidlab Squid resolves the names given in
`hosts` from its own hosts_file, so forwarding a request leaves no DNS lookup pending.

Squid looks up the host of every request it forwards (netdb), even with never_direct and
an originserver peer; the lab has no DNS server on loopback, so without the hosts_file
each such lookup waits for dns_timeout (30 s), ~25 KB each, and under benchmark load Squid
grew to gigabytes and stalled (docs/architecture.md, "Squid and c-icap facts"). Checked here from
Squid's cache manager: the host is in the IP cache from the hosts file (flag H,
127.0.0.1), and the number of DNS queries in memory (pool "cbdata idns_query") does not
grow with the requests. A second lab without the name shows the growth this prevents.

usage: squidlab_hosts_test.py HELPER POLICY
Exit status: 0 passed, 1 failed, 77 Squid not installed.
"""
from __future__ import annotations

import sys

sys.dont_write_bytecode = True
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

HOST = "crl.microsoft.com"
REQUESTS = 40
CRYPTOAPI = "Microsoft-CryptoAPI/10.0"


def dns_queries_in_use(lab: SquidLab) -> int:
    """The "In Use" count of Squid's idns_query pool (cache manager page mem)."""
    for line in lab.mgr("mem").splitlines():
        if line.startswith("cbdata idns_query"):
            fields = [f.strip() for f in line.split("\t")]
            # name, object size, 7 chunk columns, then Allocated (#, KB, high KB, high hrs,
            # %Tot), then In Use (#, ...)
            return int(fields[14])
    return 0  # no DNS query was ever allocated


def run(lab: SquidLab) -> tuple[list[str], int, int]:
    """Sends REQUESTS bypassed requests to HOST; returns (errors, queries before, after)."""
    errors = []
    before = dns_queries_in_use(lab)
    for i in range(REQUESTS):
        st = lab.get(f"http://{HOST}/pki/crl/products/lab{i}.crl", ua=CRYPTOAPI)
        if st != 200:
            errors.append(f"request {i}: HTTP {st}, expected 200 (bypassed)")
    return errors, before, dns_queries_in_use(lab)


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    helper, policy = argv[1:]
    if not squid_available():
        print("squid, basic_ncsa_auth, curl or openssl missing: skipped")
        return 77
    failures = []
    try:
        with SquidLab(helper, policy, hosts=[HOST]) as lab:
            errors, before, after = run(lab)
            failures += errors
            print(f"with {HOST} in the hosts_file: DNS queries in memory {before} -> {after}"
                  f" after {REQUESTS} requests")
            if after - before > 2:
                failures.append(f"hosts_file lab: {after - before} more DNS queries in memory"
                                f" after {REQUESTS} requests (expected none)")
            entry = [line for line in lab.mgr("ipcache").splitlines() if HOST in line]
            print(f"ipcache: {entry}")
            if not entry or " H " not in entry[0] or "127.0.0.1" not in entry[0]:
                failures.append(f"{HOST} is not in Squid's IP cache from the hosts file"
                                f" (flag H, 127.0.0.1): {entry}")
        with SquidLab(helper, policy) as lab:
            errors, before, after = run(lab)
            failures += errors
            print(f"without it: DNS queries in memory {before} -> {after}")
            if after - before < REQUESTS // 2:
                failures.append(
                    f"lab without the name: only {after - before} more DNS queries in memory"
                    f" after {REQUESTS} requests; Squid no longer keeps a lookup per forwarded"
                    " request, so the hosts_file's reason in lab/squid.py and"
                    " docs/architecture.md needs a new look")
    except LabError as e:
        failures.append(f"lab error: {e}")
    for f in failures:
        print("FAIL:", f)
    print("PASS" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
