#!/usr/bin/python3
"""Integration test: paths that servers read differently, and CA web sites, through a real
Squid 5.7 with the helper, the shipped policy and the prefilter `authbypass squid-config`
derives from it (helper only, no ICAP service: the answer must already be 407 there).

Requests go over a raw socket, byte for byte as written: curl would resolve "/../" and
drop the fragment before sending. For each attack the test also checks, with
credentials, what the origin receives: Squid forwards ';', '#', '//' and escapes as sent,
so the origin, not the engine, decides which file they name.

The lab keeps squidlab's `cache deny all`: this test is about the helper's decision, not
about Squid's cache.

usage: squid_paths_test.py HELPER AUTHBYPASS_CLI POLICY
Exit status: 0 passed, 1 failed, 77 Squid not installed.
"""
from __future__ import annotations

import base64
import socket
import sys
import urllib.parse

sys.dont_write_bytecode = True
from lab.checks import Checks  # noqa: E402
from lab.squid import LabError, SquidLab, prefilter_access, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
TRUSTEDR = "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr"

# (url, expected status without credentials)
GENUINE = [
    ("http://www.microsoft.com/pki/certs/MicRooCerAut2011_2011_03_22.crt", 200),
    (f"{TRUSTEDR}/en/authrootstl.cab", 200),
    ("http://crl.entrust.net/level1k.crl", 200),
    ("http://EVSecure-crl.verisign.com/EVSecure2006.crl", 200),
]
ATTACKS = [
    "http://www.microsoft.com/pki/x;/../../a.exe",
    "http://www.microsoft.com/pki/..;/a.exe",
    "http://www.microsoft.com/pki//../a.exe",
    "http://www.microsoft.com/pki/x#/../../a.exe",
    f"{TRUSTEDR}/x.cab;/../../../x.exe",
    f"{TRUSTEDR}//../../x.cab",
    "http://www.microsoft.com/x%2f..%2fpki/a.crt",
    "http://www.microsoft.com/pki/..%5ca.exe",
    "http://www.microsoft.com/x/%2e%2e/pki/a.crt",
    "http://www.microsoft.com/pki/%252e%252e/a.exe",
    "http://www.microsoft.com/pki/%c0%ae%c0%ae/a.exe",
    "http://downloads.evil.test/x.crl;/../evil.exe",
    "http://downloads.evil.test/x.crl#/../evil.exe",
    # CA web sites that the shipped policy's wildcards used to cover.
    "http://www.entrust.net/downloads/setup.exe",
    "http://www.geotrust.com/resources/installer.exe",
    "http://www.verisign.com/downloads/setup.exe",
    "http://www.lencr.org/setup.exe",
]


def raw_get(port: int, url: str, *, ua: str, auth: str | None = None) -> int:
    """GET `url` (absolute form, sent as is) through the proxy; the status, 0 if none."""
    host = urllib.parse.urlsplit(url.split("#", 1)[0]).netloc
    lines = [f"GET {url} HTTP/1.1", f"Host: {host}", f"User-Agent: {ua}", "Connection: close"]
    if auth:
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(auth.encode()).decode())
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


def main(argv) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    helper, cli, policy = argv[1:]
    if not squid_available():
        print("squid, basic_ncsa_auth, curl or openssl missing: skipped")
        return 77
    access = prefilter_access(cli, policy)
    hosts = {urllib.parse.urlsplit(u.split("#", 1)[0]).hostname
             for u, _ in GENUINE} | {urllib.parse.urlsplit(u.split("#", 1)[0]).hostname
                                     for u in ATTACKS}
    checks = Checks()
    expect = checks.expect

    try:
        with SquidLab(helper, policy, bypass_access="\n".join(access), hosts=hosts) as lab:
            for url, want in GENUINE:
                got = raw_get(lab.port, url, ua=CRYPTOAPI)
                expect(got == want, f"GET {url}, no credentials: {got}, expected {want}")
            for url in ATTACKS:
                got = raw_get(lab.port, url, ua=CRYPTOAPI)
                expect(got == 407, f"GET {url}, no credentials: {got}, expected 407")
            # The premise: with credentials, the origin receives the path as sent.
            for url in ATTACKS[:6]:
                before = len(lab.origin.requests)
                got = raw_get(lab.port, url, ua=CRYPTOAPI, auth=f"{lab.USER}:{lab.PASSWORD}")
                seen = [r.get("path") for r in lab.origin.requests[before:]]
                path = url[url.index("/", len("http://")):]
                expect(got == 200 and any(p is not None and p.endswith(path) for p in seen),
                       f"with credentials, the origin receives {path!r} as sent: {got}, {seen}")
    except LabError as e:
        expect(False, f"lab error: {e}")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
