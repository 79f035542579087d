#!/usr/bin/python3
"""ICAP service test: a real c-icap 0.5.10 with srv_authbypass.so, driven directly by
c-icap-client and by a raw ICAP client (lab.cicap.icap_request) for the malformed input
c-icap-client cannot send.

usage: icap_service_test.py MODULE DATA_DIR

Checks OPTIONS; REQMOD and RESPMOD with c-icap-client (genuine CRL streamed through in
full mode, HTML blocked, OCSP POST); and with the raw client: authenticated and
unmatched requests (204, no event), verify none, genuine objects of every kind (204 in
the preview or after the whole body), impostors (403 with the audit reason), a late
failure (no final chunk: the transfer is cut), bad input (no request headers, malformed
request line, no X-Client-IP, lying Content-Length, zero-byte body, preview of 0 bytes,
gzip), REQMOD uploads, parallel transactions, hot policy reload; one audit event per
bypassed request; c-icap still serving at the end; nothing left running.
Exit status: 0 passed, 1 failed, 77 c-icap not installed (ctest SKIP_RETURN_CODE).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))

from lab.cicap import (CIcap, IcapLabError, c_icap_available, decode_icap_body,  # noqa: E402
                     icap_request)
from lab.checks import Checks, stopped  # noqa: E402

POLICY = """\
version: 1
rules:
  - id: lab-crl
    owner: crl-owner@example.test
    ticket: LAB-1
    match: {hosts: [crl.lab.test]}
    verify: crl
  - id: lab-any
    owner: pki-owner@example.test
    match: {hosts: [pki.lab.test]}
    verify: revocation
  - id: lab-ocsp
    owner: ocsp-owner@example.test
    match: {hosts: [ocsp.lab.test], methods: [GET, POST]}
    verify: ocsp
  - id: lab-none
    owner: none-owner@example.test
    match: {hosts: [none.lab.test], methods: [GET, POST]}
    verify: none
  - id: lab-src
    match: {hosts: [src.lab.test], src: [10.9.0.0/16]}
    verify: crl
  - id: lab-connect
    match: {hosts: [login.lab.test], methods: [CONNECT], ports: [443]}
    verify: none
"""

NEW_RULE = """\
  - id: lab-new
    owner: new-owner@example.test
    match: {hosts: [new.lab.test]}
    verify: cert
"""

CLIENT = "10.1.2.3"
UA = "Microsoft-CryptoAPI/10.0"


def wait_events(lab, pred, timeout: float = 5.0) -> list[dict]:
    """The lab's audit events that match pred, once there is at least one (or after timeout):
    the event is written before the answer (at release for a transaction without verdict)."""
    deadline = time.monotonic() + timeout
    while True:
        evs = [e for e in lab.audit_events() if pred(e)]
        if evs or time.monotonic() >= deadline:
            return evs
        time.sleep(0.05)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def respmod(ic: CIcap, url: str, body: bytes | None, *, ct: str | None = "application/pkix-crl",
            cl: int | str | None = "auto", extra_res: list[str] | None = None,
            icap_headers: list[str] | None = None, preview: int | None = 1024,
            allow204: bool = True, req_hdr: list[str] | None | str = "auto",
            status_line: str = "HTTP/1.1 200 OK", timeout: float = 30):
    host = url.split("/")[2]
    if req_hdr == "auto":
        req_hdr = [f"GET {url} HTTP/1.1", f"Host: {host}", f"User-Agent: {UA}"]
    res = [status_line]
    if ct is not None:
        res.append(f"Content-Type: {ct}")
    if cl == "auto" and body is not None:
        res.append(f"Content-Length: {len(body)}")
    elif isinstance(cl, int):
        res.append(f"Content-Length: {cl}")
    res += extra_res or []
    hdrs = [f"X-Client-IP: {CLIENT}"] if icap_headers is None else icap_headers
    return icap_request(ic.port, "RESPMOD", icap_headers=hdrs, req_hdr=req_hdr, res_hdr=res,
                        body=body, preview=preview, allow204=allow204, timeout=timeout)


def reqmod(ic: CIcap, url: str, body: bytes | None, *, method: str = "POST",
           ct: str | None = "application/ocsp-request", preview: int | None = 1024,
           icap_headers: list[str] | None = None):
    host = url.split("/")[2]
    req = [f"{method} {url} HTTP/1.1", f"Host: {host}", f"User-Agent: {UA}"]
    if ct is not None:
        req.append(f"Content-Type: {ct}")
    if body is not None:
        req.append(f"Content-Length: {len(body)}")
    hdrs = [f"X-Client-IP: {CLIENT}"] if icap_headers is None else icap_headers
    return icap_request(ic.port, "REQMOD", icap_headers=hdrs, req_hdr=req, body=body,
                        preview=preview)


def http_status(rest: bytes, lines: list[str]) -> tuple[str, bytes, bool]:
    http, body, complete = decode_icap_body(rest, lines)
    return (http[0] if http else ""), body, complete


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    module, data = argv[1], argv[2]
    if not c_icap_available():
        print("SKIP: c-icap / c-icap-client not installed (scripts/setup installs them)")
        return 77
    if not os.path.isfile(module):
        print(f"SKIP: {module} not built (libicapapi-dev missing at configure time?)")
        return 77
    d = {n: os.path.join(data, n) for n in os.listdir(data)}
    crl, big = read(d["crl.der"]), read(d["big.crl"])
    checks = Checks()
    policy_file = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    policy_file.write(POLICY)
    policy_file.close()
    ic = CIcap(module, policy_file.name, verify="full", verbose=True)
    pids = []
    expected_events: list[tuple[str, str, str]] = []  # (event, rule, url) in order

    def events_for(url):
        return [e for e in ic.audit_events() if e.get("url") == url]

    def one_event(url, event, rule, what, reason_has: str | None = None, **fields):
        expected_events.append((event, rule, url))
        # written before the answer (icap_audit_before_delivery); the wait is for the rest
        deadline = time.monotonic() + 3
        evs = events_for(url)
        while not evs and time.monotonic() < deadline:
            time.sleep(0.02)
            evs = events_for(url)
        ok = len(evs) == 1 and evs[0].get("event") == event and evs[0].get("rule") == rule
        if ok and reason_has is not None:
            ok = reason_has.lower() in (evs[0].get("reason") or "").lower()
        for k, v in fields.items():
            ok = ok and evs[0].get(k) == v
        checks.expect(ok, f"audit: {what}", str(evs))
        return evs[0] if evs else {}

    try:
        ic.start()
        pids.append(ic.proc.pid)
        print(f"c-icap on {ic.url}, dir {ic.dir}", flush=True)

        print("== OPTIONS")
        st, lines, _ = icap_request(ic.port, "OPTIONS")
        h = "\n".join(lines)
        checks.expect(st == 200 and "Preview: 1024" in h and "Allow: 204" in h
                      and "X-Client-IP" in h and "X-Authenticated-User" in h
                      and "Max-Connections: 20" in h and "RESPMOD, REQMOD" in h,
                      "OPTIONS: 200, Preview 1024, Allow 204, X-Include, Max-Connections 20",
                      h)
        loaded = [e for e in ic.audit_events() if e.get("event") == "policy_loaded"]
        checks.expect(len(loaded) == 1 and loaded[0].get("component") == "icap",
                      "audit: policy_loaded at start")
        mem_start = ic.children_memory()

        print("== c-icap-client")
        out = os.path.join(ic.dir, "out.bin")
        r = ic.client("-resp", "http://crl.lab.test/big.crl", "-f", d["big.crl"], "-o", out,
                      "-x", f"X-Client-IP: {CLIENT}", "-rhx", "Content-Type: application/pkix-crl",
                      "-nopreview", "-no204", "-v", timeout=60)
        got = read(out) if os.path.exists(out) else b""
        checks.expect(r.returncode == 0 and got == big,
                      f"c-icap-client RESPMOD, 20 MB CRL, no preview, no 204: streamed back "
                      f"byte-identical ({len(got)} of {len(big)} bytes)",
                      r.stdout.decode(errors="replace")[-500:] + r.stderr.decode(errors="replace")[-300:])
        one_event("http://crl.lab.test/big.crl", "verified", "lab-crl", "20 MB CRL verified",
                  verdict="genuine crl", bytes=len(big), src=CLIENT)
        if os.path.exists(out):
            os.remove(out)
        r = ic.client("-resp", "http://crl.lab.test/page.crl", "-f", d["page.html"], "-o", out,
                      "-x", f"X-Client-IP: {CLIENT}", "-rhx", "Content-Type: text/html", "-v")
        txt = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        got = read(out) if os.path.exists(out) else b""
        checks.expect("403 Forbidden" in txt and b"authbypass" in got and b"<script>" not in got,
                      "c-icap-client RESPMOD, HTML named .crl: 403 page, not the HTML", txt[-600:])
        one_event("http://crl.lab.test/page.crl", "blocked", "lab-crl", "HTML blocked",
                  reason_has="", status=403, content_type="text/html")
        r = ic.client("-req", "http://ocsp.lab.test/", "-method", "POST", "-f", d["ocsp-req.der"],
                      "-x", f"X-Client-IP: {CLIENT}", "-hx", "Content-Type: application/ocsp-request",
                      "-v")
        txt = r.stdout.decode(errors="replace")
        checks.expect(r.returncode == 0 and "403" not in txt,
                      "c-icap-client REQMOD, OCSP POST with a real request: passes", txt[-400:])
        r = ic.client("-req", "http://ocsp.lab.test/junk", "-method", "POST", "-f", d["junk1m.bin"],
                      "-x", f"X-Client-IP: {CLIENT}", "-hx", "Content-Type: application/ocsp-request",
                      "-v", timeout=60)
        txt = r.stdout.decode(errors="replace")
        checks.expect("403 Forbidden" in txt, "c-icap-client REQMOD, 1 MB junk POST: 403", txt[-400:])
        one_event("http://ocsp.lab.test/junk", "blocked", "lab-ocsp", "junk upload blocked")

        print("== RESPMOD: who gets 204 at once")
        st, _l, _r = respmod(ic, "http://crl.lab.test/auth.crl", read(d["page.html"]), ct="text/html",
                             icap_headers=[f"X-Client-IP: {CLIENT}", "X-Authenticated-User: YWxpY2U="])
        checks.expect(st == 204 and not events_for("http://crl.lab.test/auth.crl"),
                      "X-Authenticated-User: 204 at once, no event (even for HTML)")
        # No user means Squid let it through the hole (its decider's policy bypassed it):
        # this service's policy not bypassing it is a reload window, never a 204.
        st, lines, rest = respmod(ic, "http://www.example.test/page.html", read(d["page.html"]),
                                  ct="text/html")
        checks.expect(st == 200 and "403" in http_status(rest, lines)[0],
                      "no rule matches, no user: checked as revocation, HTML 403")
        evs = wait_events(ic, lambda e: e.get("url") == "http://www.example.test/page.html")
        checks.expect(len(evs) == 1 and evs[0].get("event") == "blocked"
                      and "does not bypass" in evs[0].get("reason", ""),
                      "audit: blocked, the reason says the service's policy does not bypass it",
                      str(evs))
        expected_events.append(("blocked", None, "http://www.example.test/page.html"))
        st, _l, _r = respmod(ic, "http://none.lab.test/x.bin", read(d["app.exe"]),
                             ct="application/octet-stream")
        checks.expect(st == 204, "verify none: 204")
        one_event("http://none.lab.test/x.bin", "verified", "lab-none", "verify none",
                  verdict="not checked (verify: none)")

        print("== RESPMOD: genuine objects pass unchanged")
        genuine = [("crl.lab.test/small.crl", "crl.der", "application/pkix-crl", "lab-crl", "crl"),
                   ("crl.lab.test/pem.crl", "crl.pem", "application/pkix-crl", "lab-crl", "crl"),
                   ("pki.lab.test/ca.crt", "ca.der", "application/pkix-cert", "lab-any", "cert"),
                   ("pki.lab.test/ca.p7c", "ca.p7c", "application/pkcs7-mime", "lab-any", "pkcs7"),
                   ("ocsp.lab.test/resp", "ocsp-resp.der", "application/ocsp-response", "lab-ocsp",
                    "ocsp"),
                   ("pki.lab.test/octet.crl", "crl.der", "application/octet-stream", "lab-any", "crl")]
        for path, f, ct, rule, kind in genuine:
            url = "http://" + path
            st, _l, _r = respmod(ic, url, read(d[f]), ct=ct)
            checks.expect(st == 204, f"{f} as {ct}: 204 (whole body in the preview, genuine)",
                          f"ICAP {st}")
            one_event(url, "verified", rule, f"{f} verified", verdict=f"genuine {kind}")
        # bigger than the preview and than kHoldLimit (32 KiB), without 204: streamed back
        url = "http://crl.lab.test/big-echo.crl"
        st, lines, rest = respmod(ic, url, big, allow204=False, timeout=60)
        sl, body, complete = http_status(rest, lines)
        checks.expect(st == 200 and complete and body == big,
                      "20 MB CRL, preview then full check: 200 and byte-identical",
                      f"ICAP {st}, {sl}, {len(body)} bytes, complete={complete}")
        one_event(url, "verified", "lab-crl", "20 MB CRL (preview path) verified")
        # small body over the preview: held, then 204 at the end
        cert2 = read(d["ca.der"]) + b""
        url = "http://pki.lab.test/ca-nopreview.crt"
        st, _l, _r = respmod(ic, url, cert2, ct="application/pkix-cert", preview=None)
        checks.expect(st == 204, "certificate without preview: 204 after the whole body", f"ICAP {st}")
        one_event(url, "verified", "lab-any", "certificate without preview verified")
        url = "http://pki.lab.test/ca-no204.crt"
        st, lines, rest = respmod(ic, url, read(d["ca.der"]), ct="application/pkix-cert",
                                  preview=None, allow204=False)
        sl, body, complete = http_status(rest, lines)
        checks.expect(st == 200 and complete and body == read(d["ca.der"]) and "200" in sl,
                      "certificate, no preview, no 204: held, checked, sent back whole",
                      f"ICAP {st} {sl} {len(body)}")
        one_event(url, "verified", "lab-any", "certificate (no 204) verified")
        url = "http://crl.lab.test/nocl.crl"
        st, _l, _r = respmod(ic, url, crl, cl=None)
        checks.expect(st == 204, "CRL without Content-Length: 204 (whole body checked)", f"ICAP {st}")
        one_event(url, "verified", "lab-crl", "CRL without Content-Length verified")

        print("== RESPMOD: impostors are blocked")
        impostors = [("crl.lab.test/page.crl", "page.html", "text/html", "HTML"),
                     ("crl.lab.test/page2.crl", "page.html", "application/pkix-crl", "HTML as CRL"),
                     ("crl.lab.test/app.crl", "app.exe", "application/octet-stream", "MZ executable"),
                     ("crl.lab.test/junk.crl", "junk20m.bin", "application/pkix-crl", "20 MB junk"),
                     ("crl.lab.test/appended.crl", "crl-appended.crl", "application/pkix-crl",
                      "CRL + appended bytes"),
                     ("crl.lab.test/cert.crl", "ca.der", "application/pkix-crl",
                      "a certificate where only crl is allowed")]
        for i, (path, f, ct, label) in enumerate(impostors):
            url = "http://" + path + f"?i={i}"
            st, lines, rest = respmod(ic, url, read(d[f]), ct=ct, timeout=60)
            sl, body, complete = http_status(rest, lines)
            checks.expect(st == 200 and "403" in sl and b"Forbidden" in body and complete,
                          f"{label}: 403 page", f"ICAP {st} {sl} {body[:80]!r}")
            one_event(url, "blocked", "lab-crl", f"{label} blocked with a reason", status=403)
        url = "http://crl.lab.test/gz.crl"
        st, lines, rest = respmod(ic, url, read(d["crl.der.gz"]), extra_res=["Content-Encoding: gzip"])
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "gzip-encoded CRL: 403 (only identity encoding)", sl)
        one_event(url, "blocked", "lab-crl", "gzip blocked", reason_has="encoding")
        url = "http://crl.lab.test/zero.crl"
        st, lines, rest = respmod(ic, url, b"", cl=0)
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "zero-byte body: 403", f"ICAP {st} {sl}")
        one_event(url, "blocked", "lab-crl", "zero-byte body blocked")
        for label, cl in (("longer", len(crl) + 10), ("shorter", len(crl) - 10)):
            url = f"http://crl.lab.test/lying-{label}.crl"
            st, lines, rest = respmod(ic, url, crl, cl=cl)
            sl, _b, _c = http_status(rest, lines)
            checks.expect("403" in sl, f"Content-Length {label} than the body: 403", f"ICAP {st} {sl}")
            one_event(url, "blocked", "lab-crl", f"lying Content-Length ({label}) blocked")
        url = "http://crl.lab.test/badcl.crl"
        st, lines, rest = respmod(ic, url, crl, cl=None, extra_res=["Content-Length: 12abc"])
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "malformed Content-Length: 403", sl)
        one_event(url, "blocked", "lab-crl", "malformed Content-Length blocked")
        # late failure: a truncated 20 MB CRL without Content-Length can only fail at its end
        url = "http://crl.lab.test/truncated.crl"
        trunc = read(d["big-truncated.crl"])
        st, lines, rest = respmod(ic, url, trunc, cl=None, allow204=False, timeout=60)
        sl, body, complete = http_status(rest, lines)
        checks.expect(st == 200 and not complete and len(body) < len(trunc),
                      "truncated 20 MB CRL, no Content-Length: transfer cut (no final chunk), "
                      f"client got {len(body)} of {len(trunc)} bytes",
                      f"ICAP {st} {sl} complete={complete}")
        ev = one_event(url, "blocked", "lab-crl", "truncated CRL: blocked (aborted)")
        checks.expect(str(ev.get("verdict", "")).startswith("aborted"),
                      "audit: verdict says the transfer was aborted", str(ev))
        # mid-stream failure: junk at 10 MB inside a 20 MB CRL
        url = "http://crl.lab.test/corrupt.crl"
        corrupt = read(d["big-corrupt.crl"])
        st, lines, rest = respmod(ic, url, corrupt, allow204=False, timeout=60)
        sl, body, complete = http_status(rest, lines)
        checks.expect(st == 200 and not complete and len(body) < 10_000_000 + 65536,
                      f"20 MB CRL with junk at 10 MB: cut mid-stream after {len(body)} bytes",
                      f"ICAP {st} {sl} complete={complete}")
        ev = one_event(url, "blocked", "lab-crl", "corrupt CRL: blocked (aborted)")
        checks.expect(str(ev.get("verdict", "")).startswith("aborted"),
                      "audit: verdict 'aborted after N bytes'", str(ev))

        mem = ic.children_memory()
        grew = max((hwm - mem_start.get(pid, (rss, 0))[0] for pid, (rss, hwm) in mem.items()),
                   default=-1)
        checks.expect(0 <= grew < 16 << 20,
                      f"memory: after 20 MB bodies (streamed, blocked, cut) the c-icap children "
                      f"peaked {grew / 1048576:.1f} MiB above their start (< 16 MiB)",
                      str({p: (mem_start.get(p), m) for p, m in mem.items()}))

        print("== RESPMOD: bad input")
        url = "http://crl.lab.test/noreq.crl"
        st, lines, rest = respmod(ic, url, crl, req_hdr=None)
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "no encapsulated request headers: 403", f"ICAP {st} {sl}")
        evs = wait_events(ic, lambda e: e.get("reason") == "no encapsulated HTTP request headers")
        checks.expect(len(evs) == 1, "audit: blocked, reason 'no encapsulated HTTP request headers'",
                      f"{len(evs)} such events")
        expected_events.append(("blocked", None, None))
        st, lines, rest = respmod(ic, url, crl, req_hdr=["GARBAGE", "Host: crl.lab.test"])
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "malformed request line: 403", f"ICAP {st} {sl}")
        expected_events.append(("blocked", None, None))
        url = "http://crl.lab.test/noip.crl"
        st, _l, _r = respmod(ic, url, crl, icap_headers=[])
        checks.expect(st == 204, "no X-Client-IP, rule without src: checked as usual (204)")
        one_event(url, "verified", "lab-crl", "no X-Client-IP: event without src")
        url = "http://src.lab.test/x.crl"
        st, lines, rest = respmod(ic, url, read(d["page.html"]), ct="text/html", icap_headers=[])
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "no X-Client-IP and a policy with src rules, no match: 403",
                      f"ICAP {st} {sl}")
        one_event(url, "blocked", None, "no X-Client-IP blocked", reason_has="X-Client-IP")
        url = "http://crl.lab.test/preview0.crl"
        st, lines, rest = respmod(ic, url, crl, preview=0)
        sl, body, _c = http_status(rest, lines)
        checks.expect(st == 204 or (st == 200 and body == crl),
                      "preview of 0 bytes: genuine CRL passes", f"ICAP {st} {sl}")
        one_event(url, "verified", "lab-crl", "preview of 0 bytes verified")
        url = "http://crl.lab.test/preview0-html.crl"
        st, lines, rest = respmod(ic, url, read(d["page.html"]), ct="text/html", preview=0)
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "preview of 0 bytes: HTML blocked", f"ICAP {st} {sl}")
        one_event(url, "blocked", "lab-crl", "preview of 0 bytes, HTML blocked")
        url = "http://crl.lab.test/head.crl"
        st, _l, _r = respmod(ic, url, None)
        checks.expect(st == 204, "response without a body (null-body): 204")
        one_event(url, "verified", "lab-crl", "null-body", verdict="no body")
        st, _l, _r = icap_request(ic.port, "RESPMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
                                  encapsulated="req-hdr=0, res-hdr=999999, res-body=5",
                                  raw_tail=b"GET / HTTP/1.1\r\n\r\n", timeout=2)
        checks.expect(st in (0, 400, 500), f"broken Encapsulated offsets: no answer or an error ({st})")
        st, _l, _r = icap_request(ic.port, "OPTIONS")
        checks.expect(st == 200, "... and c-icap keeps serving")

        print("== REQMOD")
        url = "http://ocsp.lab.test/post"
        st, _l, _r = reqmod(ic, url, read(d["ocsp-req.der"]))
        checks.expect(st == 204, "OCSP POST with a real request: 204", f"ICAP {st}")
        time.sleep(0.3)
        checks.expect(not events_for(url), "a passing OCSP request writes no event (RESPMOD does)")
        req = read(d["ocsp-req.der"])
        st, lines, rest = icap_request(
            ic.port, "REQMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
            req_hdr=[f"POST {url}?no204 HTTP/1.1", "Host: ocsp.lab.test", f"User-Agent: {UA}",
                     "Content-Type: application/ocsp-request", f"Content-Length: {len(req)}"],
            body=req, preview=None, allow204=False)
        http, body, complete = decode_icap_body(rest, lines)
        checks.expect(st == 200 and complete and body == req and http and http[0].startswith("POST"),
                      "OCSP POST, no preview, no 204: the request is sent back unchanged",
                      f"ICAP {st} {http[:1]} {len(body)}")
        for label, body, ct in (("junk body", read(d["junk1m.bin"]), "application/ocsp-request"),
                                ("wrong Content-Type", read(d["ocsp-req.der"]), "text/plain"),
                                ("an OCSP response uploaded", read(d["ocsp-resp.der"]),
                                 "application/ocsp-request")):
            u = url + "?" + label.replace(" ", "-")
            st, lines, rest = reqmod(ic, u, body, ct=ct)
            sl, b, _c = http_status(rest, lines)
            checks.expect(st == 200 and "403" in sl, f"POST with {label}: 403", f"ICAP {st} {sl}")
            one_event(u, "blocked", "lab-ocsp", f"POST with {label} blocked")
        u = "http://none.lab.test/upload"
        st, lines, rest = reqmod(ic, u, read(d["junk1m.bin"]), ct="application/octet-stream",
                                 preview=None)
        sl, _b, _c = http_status(rest, lines)
        checks.expect("403" in sl, "upload through a verify-none rule: 403", f"ICAP {st} {sl}")
        one_event(u, "blocked", "lab-none", "upload through verify none blocked")
        st, _l, _r = icap_request(ic.port, "REQMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
                                  req_hdr=["CONNECT login.lab.test:443 HTTP/1.1",
                                           "Host: login.lab.test:443", f"User-Agent: {UA}"])
        checks.expect(st == 204, f"REQMOD CONNECT host:port (verify none rule): 204 ({st})")
        one_event("login.lab.test:443", "verified", "lab-connect", "a bypassed CONNECT has its event",
                  verdict="not checked (CONNECT tunnel)")
        u = "http://ocsp.lab.test/get"
        st, _l, _r = reqmod(ic, u, None, method="GET", ct=None)
        checks.expect(st == 204 and not events_for(u), "bodyless GET: 204, no event")

        print("== parallel transactions")

        def par(i):
            return respmod(ic, f"http://crl.lab.test/par-{i}.crl", crl)[0]

        with ThreadPoolExecutor(20) as pool:
            res = list(pool.map(par, range(60)))
        checks.expect(all(s == 204 for s in res), f"60 RESPMOD, 20 at a time: all 204 ({set(res)})")
        for i in range(60):
            expected_events.append(("verified", "lab-crl", f"http://crl.lab.test/par-{i}.crl"))
        # each event is written before its answer; parallel transactions: wait for all
        deadline = time.monotonic() + 5
        pev = [e for e in ic.audit_events() if "/par-" in (e.get("url") or "")]
        while len(pev) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
            pev = [e for e in ic.audit_events() if "/par-" in (e.get("url") or "")]
        checks.expect(len(pev) == 60 and all(e["event"] == "verified" for e in pev),
                      "audit: 60 verified events, one JSON line each", str(len(pev)))

        print("== hot reload")
        url = "http://new.lab.test/page.crt"
        st, lines, rest = respmod(ic, url, read(d["page.html"]), ct="text/html")
        checks.expect("403" in http_status(rest, lines)[0],
                      "new host before the edit (no rule): checked as revocation, 403")
        expected_events.append(("blocked", None, url))
        ic.write_policy(POLICY.replace("rules:\n", "rules:\n" + NEW_RULE))
        time.sleep(1.6)
        res = [respmod(ic, url + f"?{i}", read(d["page.html"]), ct="text/html") for i in range(8)]
        checks.expect(all("403" in http_status(r[2], r[1])[0] for r in res),
                      "after the edit (no restart): the new rule blocks HTML in every child")
        for i in range(8):
            expected_events.append(("blocked", "lab-new", url + f"?{i}"))
        loaded = [e for e in ic.audit_events() if e.get("event") == "policy_loaded"]
        checks.expect(len(loaded) >= 2, "audit: policy_loaded after the edit")
        ic.write_policy("version: 1\nrules: [\n")
        time.sleep(1.6)
        r = respmod(ic, url + "?after-broken", read(d["page.html"]), ct="text/html")
        checks.expect("403" in http_status(r[2], r[1])[0], "broken edit: the last good policy stays")
        expected_events.append(("blocked", "lab-new", url + "?after-broken"))
        rej = [e for e in ic.audit_events() if e.get("event") == "policy_rejected"]
        checks.expect(len(rej) >= 1 and rej[0].get("reason"), "audit: policy_rejected with the error")

        print("== logrotate: the audit log is reopened")
        os.rename(ic.audit_log, ic.audit_log + ".1")
        time.sleep(1.2)
        url = "http://crl.lab.test/after-rotate.crl"
        respmod(ic, url, crl)  # the first request after a second notices the move
        respmod(ic, url + "?2", crl)
        time.sleep(0.3)
        new = [e.get("url") for e in ic.audit_events()]
        checks.expect(url + "?2" in new, "after the move, events go to a new audit.log", str(new))
        with open(ic.audit_log + ".1") as fa, open(ic.audit_log, "a") as fb:
            old_lines = fa.read()
        with open(ic.audit_log) as fb:
            new_lines = fb.read()
        with open(ic.audit_log, "w") as fb:
            fb.write(old_lines + new_lines)  # one log again, for the checks below
        for u in (url, url + "?2"):
            expected_events.append(("verified", "lab-crl", u))

        print("== audit log as a whole")
        evs = [e for e in ic.audit_events() if e.get("event") in ("verified", "blocked")]
        checks.expect(len(evs) == len(expected_events),
                      f"one event per bypassed request: {len(evs)} events, {len(expected_events)} expected")
        bad = [e for e in evs if e.get("component") != "icap" or not e.get("ts")
               or (e.get("rule") and not e.get("policy_sha256")) or "verdict" not in e]
        checks.expect(not bad, "every event has component icap, ts, verdict; with a rule also "
                      "policy_sha256", str(bad[:2]))
        ok_fields = [e for e in evs if e.get("rule") == "lab-crl" and e.get("owner") == "crl-owner@example.test"
                     and e.get("host") == "crl.lab.test" and e.get("method") == "GET"
                     and e.get("user_agent") == UA]
        checks.expect(len(ok_fields) > 10, "events carry rule, owner, host, method, user_agent")
        checks.expect(all(e.get("reason") for e in evs if e["event"] == "blocked"),
                      "every blocked event has a reason")

        print("== c-icap statistics (the info service)")
        r = subprocess.run(["c-icap-client", "-i", "127.0.0.1", "-p", str(ic.port),
                            "-s", "info?view=text", "-req", "/"],
                           capture_output=True, text=True, timeout=30)
        stats = {}
        for m in re.finditer(r"^authbypass (.+?) : (\d+)$", r.stdout, re.M):
            stats[m.group(1)] = int(m.group(2))
        checks.expect(stats.get("verified crl", 0) > 0 and stats.get("blocked", 0) > 0
                      and "verified ocsp" in stats and "bypassed unchecked (verify none)" in stats,
                      "info service shows verified / blocked counters per kind", str(stats))

        print("== still serving")
        st, _l, _r = icap_request(ic.port, "OPTIONS")
        checks.expect(st == 200 and ic.alive(), "c-icap answers OPTIONS after all of the above")
        log = ic.read(ic.server_log)
        checks.expect("Bug in the service" not in log and "Segmentation" not in log
                      and "signal" not in log.lower(),
                      "server.log: no service bug reports or crashed children")
    except (IcapLabError, OSError) as e:
        checks.failures.append(f"lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures and ic.dir:
            print(ic.tail(ic.server_log, 40))
            print(ic.tail(ic.audit_log, 10))
        lab_dir = ic.dir
        ic.stop()
        os.unlink(policy_file.name)

    print("== no valid policy at start")
    broken = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    broken.write("version: 1\nrules: [\n")
    broken.close()
    ic2 = CIcap(module, broken.name, verify="full", verbose=True)
    try:
        ic2.start()
        pids.append(ic2.proc.pid)
        st, lines, rest = respmod(ic2, "http://crl.lab.test/x.crl", crl)
        checks.expect("403" in http_status(rest, lines)[0],
                      "no valid policy: a request that may be a bypass is blocked")
        st, _l, _r = respmod(ic2, "http://crl.lab.test/x.crl", crl,
                             icap_headers=[f"X-Client-IP: {CLIENT}", "X-Authenticated-User: Ym9i"])
        checks.expect(st == 204, "no valid policy: authenticated requests still get 204")
        # The event is written before the answer; the wait only covers busy machines.
        def seen(evs):
            return (any(e.get("event") == "policy_rejected" for e in evs)
                    and any(e.get("reason") == "no valid policy loaded" for e in evs))
        deadline = time.time() + 5
        evs = ic2.audit_events()
        while not seen(evs) and time.time() < deadline:
            time.sleep(0.1)
            evs = ic2.audit_events()
        checks.expect(seen(evs),
                      "audit: policy_rejected at start, blocked with 'no valid policy loaded'")
        ic2.write_policy(POLICY)
        time.sleep(1.6)
        res = [respmod(ic2, f"http://crl.lab.test/fixed-{i}.crl", crl)[0] for i in range(8)]
        checks.expect(all(r == 204 for r in res),
                      f"the fixed policy is loaded without a restart ({res})")
    except (IcapLabError, OSError) as e:
        checks.failures.append(f"lab error (no policy): {e}")
    finally:
        ic2.stop()
        os.unlink(broken.name)

    print("== directives")
    policy_file2 = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    policy_file2.write(POLICY)
    policy_file2.close()
    ic3 = CIcap(module, policy_file2.name, verify="full",
                extra_conf="authbypass.MaxBodySize crl 1K\nauthbypass.MaxBodySize ocsp 64KiB\n")
    try:
        ic3.start()
        pids.append(ic3.proc.pid)
        st, _l, _r = respmod(ic3, "http://crl.lab.test/small.crl", crl)
        checks.expect(st == 204, f"MaxBodySize crl 1K: a {len(crl)}-byte CRL passes ({st})")
        st, lines, rest = respmod(ic3, "http://crl.lab.test/40k.crl", read(d["crl-40k.crl"]))
        checks.expect("403" in http_status(rest, lines)[0], "MaxBodySize crl 1K: a 40 KB CRL is blocked")
        evs = wait_events(ic3, lambda e: e.get("url") == "http://crl.lab.test/40k.crl")
        checks.expect(len(evs) == 1 and "cap" in (evs[0].get("reason") or ""),
                      "audit: the reason names the cap", str(evs))
    except (IcapLabError, OSError) as e:
        checks.failures.append(f"lab error (directives): {e}")
    finally:
        ic3.stop()
    for bad in ("authbypass.Verify sometimes", "authbypass.Verify", "authbypass.Mode sometimes",
                "authbypass.Mode verify decide", "authbypass.MaxBodySize crl lots",
                "authbypass.MaxBodySize pdf 1M", "authbypass.MaxBodySize crl 1M 2M"):
        ic4 = CIcap(module, policy_file2.name, extra_conf=bad + "\n")
        try:
            ic4.start(ready_timeout=5)
            pids.append(ic4.proc.pid)
            refused = False
        except IcapLabError:
            refused = True
        finally:
            ic4.stop()
        checks.expect(refused, f"c-icap refuses to start with '{bad}'")
    os.unlink(policy_file2.name)

    print("== cleanup")
    checks.expect(not ic.leftover_pids, "c-icap children exited with the main process"
                  + (f" (killed {ic.leftover_pids})" if ic.leftover_pids else ""))
    for pid in pids:
        checks.expect(stopped(pid), f"c-icap (pid {pid}) stopped")
    if lab_dir:
        checks.expect(not os.path.exists(lab_dir) or os.environ.get("ICAPLAB_KEEP"),
                      "lab directory removed")

    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
