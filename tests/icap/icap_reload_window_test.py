#!/usr/bin/python3
"""Integration test: the reload window, at the ICAP level. Squid sends srv_authbypass only
requests it let through the hole (the helper's cached OK, or the REQMOD service's mark);
the service's own policy snapshot may have changed since. A message without
X-Authenticated-User whose request this service's policy would now authenticate is never
answered 204 unchecked. Real c-icap 0.5.10 + srv_authbypass.so, raw ICAP requests as Squid
sends them (preview 1024, X-Client-IP).

usage: icap_reload_window_test.py MODULE DATA_DIR

Verify mode (authbypass.Mode verify), the service's policy without the rule that bypassed:
  * RESPMOD of a Windows program named .crl: 403 page (before: 204), event `blocked` whose
    reason says the service's policy did not bypass it; a genuine CRL, OCSP response and
    certificate at the same kind of URL: 204 (checked as `revocation`), event `verified`;
  * the same with X-Authenticated-User: 204, no event (authenticated traffic is not checked);
  * REQMOD of a POST with a non-OCSP body: 403 (before: 204); a real OCSP request: passes;
  * REQMOD of a CONNECT: 403 (before: 204);
  * REQMOD of a GET without body: 204 (its response is checked in RESPMOD);
  * a rule the policy still has keeps its own verify (a program 403, a CRL 204; verify:
    none 204 unchecked).
Decision mode (authbypass.Mode both), RESPMOD with the adapted request's mark:
  * the mark names a rule this policy has (verify ctl) but the URL no longer matches it: a
    CRL is refused (checked as ctl, the marked rule's verify), a program too;
  * the mark names a rule this policy does not have: a program 403, a CRL 204 (revocation);
  * a mark with a wrong secret is no mark: checked as revocation all the same.
Exit status: 0 passed, 1 failed, 77 c-icap not installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))

from lab.checks import Checks  # noqa: E402
from lab.cicap import (CIcap, IcapLabError, c_icap_available,  # noqa: E402
                     decode_icap_body, icap_request)

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
CLIENT = "10.1.2.3"
SECRET = "3c" * 32

POLICY = """version: 1
rules:
  - id: lab-crl
    match: {hosts: [crl.lab-ca.test], path_suffix: [.crl]}
    verify: crl
  - id: lab-ctl
    match: {hosts: [ctl.lab-ca.test], path_suffix: [.cab]}
    verify: ctl
  - id: lab-open
    match: {hosts: [open.lab-ca.test]}
    verify: none
  - id: lab-ocsp
    match: {hosts: [ocsp.lab-ca.test], methods: [GET, POST]}
    verify: ocsp
"""


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def req_lines(url: str, method: str = "GET", extra: list[str] | None = None) -> list[str]:
    host = url.split("/")[2] if "://" in url else url
    target = url if method != "CONNECT" else url
    return [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {CRYPTOAPI}"] + (extra or [])


def respmod(ic: CIcap, url: str, body: bytes, ctype: str, *, user: bool = False,
            extra_req: list[str] | None = None) -> tuple[int, int]:
    """(ICAP status, HTTP status the client would get: 0 for a 204 = the origin's 200)."""
    icap = [f"X-Client-IP: {CLIENT}"] + (["X-Authenticated-User: YWxpY2U="] if user else [])
    st, lines, rest = icap_request(
        ic.port, "RESPMOD", icap_headers=icap, req_hdr=req_lines(url, extra=extra_req),
        res_hdr=["HTTP/1.1 200 OK", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"],
        body=body, preview=1024)
    if st != 200:
        return st, 0
    http, _body, _complete = decode_icap_body(rest, lines)
    code = int(http[0].split()[1]) if http and http[0].startswith("HTTP/") else -1
    return st, code


def delivered(r: tuple[int, int]) -> bool:
    return r[0] == 204 or (r[0] == 200 and r[1] == 200)


def refused(r: tuple[int, int]) -> bool:
    return r[0] == 200 and r[1] == 403


def reqmod(ic: CIcap, lines: list[str], body: bytes | None = None) -> tuple[int, int]:
    st, ilines, rest = icap_request(ic.port, "REQMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
                                    req_hdr=lines, body=body,
                                    preview=1024 if body is not None else None)
    if st != 200:
        return st, 0
    http, _b, _c = decode_icap_body(rest, ilines)
    code = int(http[0].split()[1]) if http and http[0].startswith("HTTP/") else 0
    return st, code


def last_event(ic: CIcap, url: str, count: int = 1) -> dict | None:
    """The latest event for `url`, once there are `count` (written before the answer; the
    wait covers an event written at release, e.g. `incomplete`): waits up to 3 s."""
    deadline = time.monotonic() + 3
    while True:
        evs = [e for e in ic.audit_events() if e.get("url") == url]
        if len(evs) >= count or time.monotonic() > deadline:
            return evs[-1] if evs else None
        time.sleep(0.05)


def verify_mode(module: str, data: str, pol: str, checks: Checks):
    print("== verify mode: the service's policy no longer bypasses")
    crl, exe = read(os.path.join(data, "crl.der")), read(os.path.join(data, "app.exe"))
    ocsp_resp, cert = read(os.path.join(data, "ocsp-resp.der")), read(os.path.join(data, "ca.der"))
    with CIcap(module, pol) as ic:
        url = "http://evil.example.test/app.crl"
        r = respmod(ic, url, exe, "application/pkix-crl")
        checks.expect(refused(r), "RESPMOD, program named .crl, policy says authenticate: 403", str(r))
        e = last_event(ic, url)
        checks.expect(e is not None and e.get("event") == "blocked"
                      and "does not bypass" in e.get("reason", ""),
                      "  ... audited `blocked`, reason: the service's policy does not bypass it",
                      str(e))
        for name, body, ctype in (("CRL", crl, "application/pkix-crl"),
                                  ("OCSP response", ocsp_resp, "application/ocsp-response"),
                                  ("certificate", cert, "application/pkix-cert")):
            u = f"http://other-ca.example.test/x-{name.replace(' ', '-')}.crl"
            r = respmod(ic, u, body, ctype)
            e = last_event(ic, u)
            checks.expect(delivered(r) and e is not None and e.get("event") == "verified"
                          and "revocation" in e.get("reason", ""),
                          f"RESPMOD, genuine {name}, policy says authenticate: delivered "
                          "(checked as revocation, audited)", f"{r} {e}")
        r = respmod(ic, url, exe, "application/pkix-crl", user=True)
        time.sleep(0.3)
        checks.expect(r[0] == 204 and (last_event(ic, url) or {}).get("event") == "blocked"
                      and len([x for x in ic.audit_events() if x.get("url") == url]) == 1,
                      "RESPMOD with X-Authenticated-User: 204, no event", str(r))
        r = reqmod(ic, req_lines("http://evil.example.test/upload", "POST",
                                 ["Content-Type: application/octet-stream", "Content-Length: 2000"]),
                   b"x" * 2000)
        checks.expect(r == (200, 403), "REQMOD, POST with a junk body, policy says authenticate: 403",
                      str(r))
        ocsp_req = read(os.path.join(data, "ocsp-req.der"))
        r = reqmod(ic, req_lines("http://other-ocsp.example.test/", "POST",
                                 ["Content-Type: application/ocsp-request",
                                  f"Content-Length: {len(ocsp_req)}"]), ocsp_req)
        checks.expect(r[0] in (204, 200) and r[1] != 403,
                      "REQMOD, POST of a real OCSP request, policy says authenticate: passes", str(r))
        r = reqmod(ic, ["CONNECT evil.example.test:443 HTTP/1.1", "Host: evil.example.test:443",
                        f"User-Agent: {CRYPTOAPI}"])
        checks.expect(r == (200, 403), "REQMOD, CONNECT, policy says authenticate: 403", str(r))
        r = reqmod(ic, req_lines("http://evil.example.test/app.crl"))
        checks.expect(r[0] == 204, "REQMOD, GET without body: 204 (the response is checked)", str(r))

        print("== verify mode: rules the policy still has keep their own verify")
        r = respmod(ic, "http://crl.lab-ca.test/app.crl", exe, "application/pkix-crl")
        checks.expect(refused(r), "program at a lab-crl URL: 403", str(r))
        r = respmod(ic, "http://crl.lab-ca.test/lab.crl", crl, "application/pkix-crl")
        checks.expect(delivered(r), "CRL at a lab-crl URL: delivered", str(r))
        r = respmod(ic, "http://ctl.lab-ca.test/x.cab", crl, "application/vnd.ms-cab-compressed")
        checks.expect(refused(r), "CRL at a lab-ctl URL (verify ctl): 403", str(r))
        r = respmod(ic, "http://open.lab-ca.test/app.exe", exe, "application/octet-stream")
        checks.expect(r[0] == 204, "program at a verify-none URL: 204 (the policy says unchecked)",
                      str(r))


def decision_mode(module: str, data: str, pol: str, checks: Checks):
    print("== decision mode (both): RESPMOD of a marked request the policy no longer bypasses")
    crl, exe = read(os.path.join(data, "crl.der")), read(os.path.join(data, "app.exe"))
    with CIcap(module, pol, mode="both", secret=SECRET) as ic:
        url = "http://moved.example.test/x.crl"
        mark = [f"X-Authbypass: {SECRET} lab-ctl"]
        r = respmod(ic, url, crl, "application/pkix-crl", extra_req=mark)
        e = last_event(ic, url, 1)
        checks.expect(refused(r) and (e or {}).get("rule") == "lab-ctl"
                      and "verify ctl" in (e or {}).get("reason", ""),
                      "mark names lab-ctl (verify ctl), URL no longer matches: a CRL is refused "
                      "(checked as ctl), the event names the rule", f"{r} {e}")
        r = respmod(ic, url, exe, "application/pkix-crl", extra_req=mark)
        checks.expect(refused(r), "  ... a program: 403", str(r))
        mark = [f"X-Authbypass: {SECRET} crl-files"]
        r = respmod(ic, url, exe, "application/pkix-crl", extra_req=mark)
        checks.expect(refused(r), "mark names a rule the policy does not have: program 403", str(r))
        r = respmod(ic, url, crl, "application/pkix-crl", extra_req=mark)
        e = last_event(ic, url, 4)
        checks.expect(delivered(r) and (e or {}).get("rule") == "crl-files"
                      and "verify revocation" in (e or {}).get("reason", ""),
                      "  ... a CRL: delivered (checked as revocation), rule named", f"{r} {e}")
        mark = [f"X-Authbypass: {'00' * 32} lab-open"]
        r = respmod(ic, url, exe, "application/pkix-crl", extra_req=mark)
        checks.expect(refused(r), "a mark with a wrong secret is no mark: program 403", str(r))
        e = last_event(ic, url, 5)
        checks.expect(SECRET not in str(ic.audit_events()) and SECRET not in
                      CIcap.read(ic.server_log) + CIcap.read(ic.path("access.log")),
                      "the secret is in neither the audit log nor c-icap's logs", str(e))


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    module, data = argv[1], argv[2]
    if not c_icap_available():
        print("c-icap not installed: skipped")
        return 77
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="reload-window-") as tmp:
        pol = os.path.join(tmp, "policy.yaml")
        with open(pol, "w") as f:
            f.write(POLICY)
        os.chmod(tmp, 0o755)
        os.chmod(pol, 0o644)
        try:
            verify_mode(module, data, pol, checks)
            decision_mode(module, data, pol, checks)
        except IcapLabError as e:
            checks.expect(False, "lab", str(e))
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
