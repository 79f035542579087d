#!/usr/bin/python3
"""Integration test: the decision-mode secret never leaves the proxy. A marked request
carries "X-Authbypass: <secret> <rule-id>" inside Squid after REQMOD; whatever goes wrong
upstream, neither the secret nor the mark line may reach the (unauthenticated) client, the
origin, or a log. Real Squid 5.7 + c-icap 0.5.10 (authbypass.Mode both) with the Squid side
exactly as `authbypass squid-config --mode icap` writes it, a loopback origin, and a
raw HTTP client that keeps every byte Squid answers.

usage: icap_secret_leak_test.py CLI HELPER MODULE DATA_DIR

Cases (a bypassed URL of the test policy, no credentials):
  a. the origin answers garbage           -> Squid's ERR_INVALID_RESP (echoes the request
                                              with %R, and %W's mailto dump); noise without
                                              a status line is HTTP/0.9 to Squid (RESPMOD's
                                              403)
  b. the origin never answers in time     -> ERR_READ_TIMEOUT (read_timeout 2 s; %W)
  c. the origin closes without answering  -> ERR_ZERO_SIZE_OBJECT (%W)
  d. TRACE with Max-Forwards: 0           -> Squid answers itself with the request it holds
  e. a genuine CRL                        -> delivered (the fix changes nothing there)
For each: the secret and a mark line appear nowhere in the bytes the client receives, in
what the origin receives, in Squid's access.log and cache.log, in c-icap's logs or in the
audit log; the error cases get an error status (never 200).
Exit status: 0 passed, 1 failed, 77 Squid or c-icap not installed.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

from lab.checks import Checks  # noqa: E402
from lab.cicap import CIcap, IcapLabError, c_icap_available  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
SECRET = "d4" * 32
HOST = "crl.lab-ca.test"
POLICY = f"""version: 1
rules:
  - id: lab-leak-rule
    match: {{hosts: [{HOST}], methods: [GET, HEAD, TRACE], path_prefix: [/pki/]}}
    verify: revocation
"""
MARK = re.compile(rb"x-authbypass\s*:\s*(?!blocked\b)\S", re.I)


def raw_fetch(port: int, method: str, url: str, extra: list[str] | None = None,
              timeout: float = 15) -> bytes:
    """Every byte Squid answers to one request (Connection: close)."""
    lines = [f"{method} {url} HTTP/1.1", f"Host: {HOST}", f"User-Agent: {CRYPTOAPI}",
             "Connection: close"] + (extra or [])
    out = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ConnectionResetError):
            pass
    return bytes(out)


def status_of(resp: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else 0


def leaks(data: bytes) -> list[str]:
    found = []
    if SECRET.encode() in data:
        found.append("the secret")
    if MARK.search(data):
        found.append("a mark line")
    return found


def main(argv) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    cli, helper, module, data = argv[1:]
    if not (squid_available() and c_icap_available()):
        print("Squid or c-icap not installed: skipped")
        return 77
    checks = Checks()
    tmp = tempfile.mkdtemp(prefix="secret-leak-")
    os.chmod(tmp, 0o755)
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    os.chmod(policy, 0o644)
    secret_file = os.path.join(tmp, "secret")
    with open(secret_file, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(secret_file, 0o600)
    ic = CIcap(module, policy, mode="both", secret=SECRET, verbose=True)
    lab = None
    try:
        ic.start()
        r = subprocess.run([cli, "squid-config", "--mode", "icap", "--secret-file", secret_file,
                            "--clients", "localhost", "--icap", ic.url, policy],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise LabError(f"squid-config --mode icap failed: {r.stderr}")
        # cache_mgr: an address, as deployments set it (the mailto link of %W).
        # email_err_data on (Squid 6's default; 5.7's is off) even after the drop-in (an
        # admin's squid.conf overriding its `email_err_data off`): the reset of Squid-made
        # answers to marked requests must hold alone.
        lab = SquidLab(helper, policy, bypass_access=r.stdout, hosts=[HOST],
                       extra_conf="read_timeout 2 seconds\ncache_mgr proxy-admin@example.test\n"
                                  "email_err_data on\n",
                       verbose=True)
        lab.start()
        with open(os.path.join(data, "crl.der"), "rb") as f:
            crl = f.read()
        lab.origin.serve("/pki/garbage.crl", raw=b"HTTP/1.1 2000 OK\r\n\r\nnot HTTP")
        lab.origin.serve("/pki/garbage2.crl", raw=b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nx")
        lab.origin.serve("/pki/noise.crl", raw=b"\x00\x01 not HTTP at all \xff\r\n\r\n" * 4)
        lab.origin.serve("/pki/slow.crl", crl, content_type="application/pkix-crl", delay=4)
        lab.origin.serve("/pki/closed.crl", raw=b"")
        lab.origin.serve("/pki/lab.crl", crl, content_type="application/pkix-crl")

        cases = [("a. origin answers a bad status line", "GET", f"http://{HOST}/pki/garbage.crl",
                  [], False),
                 ("a. origin answers a bad Content-Length", "GET",
                  f"http://{HOST}/pki/garbage2.crl", [], False),
                 ("a. origin answers noise (HTTP/0.9 to Squid: RESPMOD refuses it)", "GET",
                  f"http://{HOST}/pki/noise.crl", [], False),
                 ("b. origin times out", "GET", f"http://{HOST}/pki/slow.crl", [], False),
                 ("c. origin closes early", "GET", f"http://{HOST}/pki/closed.crl", [], False),
                 ("d. TRACE, Max-Forwards: 0", "TRACE", f"http://{HOST}/pki/trace.crl",
                  ["Max-Forwards: 0"], False),
                 ("e. genuine CRL", "GET", f"http://{HOST}/pki/lab.crl", [], True)]
        checks.expect("email_err_data off" in r.stdout and "deny_info TCP_RESET" in r.stdout,
                      "the generated drop-in: email_err_data off, Squid-made answers reset")
        for name, method, url, extra, genuine in cases:
            resp = raw_fetch(lab.port, method, url, extra)
            st = status_of(resp)
            head = resp.split(b"\r\n", 1)[0].decode(errors="replace")
            if genuine:
                checks.expect(st == 200 and resp.endswith(crl), f"{name}: delivered", head)
            else:
                checks.expect(st not in (0, 200) or (method == "TRACE" and st != 200),
                              f"{name}: an error status ({head})", head)
            where = leaks(resp)
            checks.expect(not where, f"{name}: nothing of the mark in the {len(resp)} bytes the "
                          "client received", f"{where}: {resp[:1500]!r}")
        got = b"".join(f"{k}: {v}\n".encode() for q in lab.origin.requests
                       for k, v in q.get("headers") or [])
        reached = sum(1 for q in lab.origin.requests if (q.get("path") or "").startswith("/pki/"))
        checks.expect(reached >= 6 and not leaks(got),
                      f"the origin received {reached} marked requests, none with the mark",
                      str(leaks(got)))
        for label, path in (("Squid's access.log", lab.access_log),
                            ("Squid's cache.log", lab.cache_log),
                            ("c-icap's server log", ic.server_log),
                            ("c-icap's access log", ic.path("access.log")),
                            ("the audit log", ic.audit_log)):
            text = CIcap.read(path).encode()
            checks.expect(not leaks(text.replace(b"lab-leak-rule", b"")),
                          f"{label}: neither the secret nor a mark line", str(leaks(text)))
        bypass = [e for e in ic.audit_events() if e.get("event") == "bypass"]
        checks.expect(len(bypass) >= 4, f"the requests were marked ({len(bypass)} bypass events)")
    except (LabError, IcapLabError, OSError) as e:
        checks.expect(False, "lab", str(e))
    finally:
        if checks.failures and lab is not None and lab.dir:
            print(lab.tail(lab.cache_log, 15))
        if lab is not None:
            lab.stop()
        ic.stop()
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
