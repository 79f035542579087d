#!/usr/bin/python3
"""The audit event of a transaction is written BEFORE c-icap delivers its verdict: a c-icap
child killed (or crashing) just after it let content through must not lose the record of
it. Proved from the system calls, not from timing: the real c-icap 0.5.10 with
srv_authbypass.so runs under `strace -f` (lab.syscalls), raw ICAP transactions go to it
one at a time, and for each one the trace must show the audit file's write of its event
before the socket write that completes the ICAP answer (the 204, the last chunk "0\\r\\n\\r\\n"
of a released body or of the 403 page, the end of the HTTP headers of a request passed
on without body).

usage: icap_audit_order_test.py MODULE DATA_DIR

Transactions (Verify full unless said): a genuine CRL in the preview (204 from the
preview), a genuine CRL without preview (204 after the whole body), genuine CRLs of 40 and
70 KB (over the hold limit: streamed, the tail released after the check), an impostor
(403 page), verify none and a bypassed CONNECT (204 at once); Verify preview: a CRL
identified by its preview (204); decision mode (Mode both): an OCSP POST marked after its
check (the edited request and its body), a GET marked without body (with a shadow event),
a request only a shadow rule matches (204, the shadow event), a forged mark stripped, a
junk OCSP POST (403 page). Each: its ICAP answer as expected, one event with
the expected verdict, written before the answer's last write, by the thread that wrote it.
Exit status: 0 passed, 1 failed, 77 c-icap or strace not installed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from lab.checks import Checks, stopped  # noqa: E402
from lab.cicap import CIcap, c_icap_available, decode_icap_body, icap_request  # noqa: E402
from lab.syscalls import read_writes, strace_available, strace_command  # noqa: E402

POLICY = """\
version: 1
rules:
  - id: ord-crl
    match: {hosts: [crl.lab.test]}
    verify: crl
  - id: ord-ocsp
    match: {hosts: [ocsp.lab.test], methods: [GET, POST]}
    verify: ocsp
  - id: ord-none
    match: {hosts: [none.lab.test]}
    verify: none
  - id: ord-connect
    match: {hosts: [login.lab.test], methods: [CONNECT], ports: [443]}
    verify: none
  - id: ord-observe
    mode: shadow
    match: {user_agent_regex: ['^ordertest$']}
    verify: none
"""
CLIENT = "10.1.2.3"
UA = "Microsoft-CryptoAPI/10.0"
SECRET = "5f" * 32


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Run:
    """One c-icap under strace and the transactions sent to it."""

    def __init__(self, module: str, policy: str, checks: Checks, name: str, **kw):
        self.checks, self.name = checks, name
        fd, self.trace = tempfile.mkstemp(prefix="icap-order-", suffix=".trace")
        os.close(fd)
        self.ic = CIcap(module, policy, servers=1, verbose=True,
                        wrapper=strace_command(self.trace), **kw)
        self.sent: list[dict] = []  # per transaction: what, url, local port, expectations

    def respmod(self, what: str, url: str, body: bytes, *, ct: str = "application/pkix-crl",
                preview: int | None = 1024, **expect):
        host = url.split("/")[2]
        self._send(what, url, expect, "RESPMOD",
                   req_hdr=[f"GET {url} HTTP/1.1", f"Host: {host}", f"User-Agent: {UA}"],
                   res_hdr=["HTTP/1.1 200 OK", f"Content-Type: {ct}",
                            f"Content-Length: {len(body)}"],
                   body=body, preview=preview)

    def reqmod(self, what: str, url: str, req: list[str], body: bytes | None = None,
               **expect):
        self._send(what, url, expect, "REQMOD", req_hdr=req, body=body,
                   preview=1024 if body is not None else None)

    def _send(self, what, url, expect, method, **kw):
        conn: dict = {}
        st, lines, rest = icap_request(self.ic.port, method, conn=conn,
                                       icap_headers=[f"X-Client-IP: {CLIENT}"], timeout=30, **kw)
        self.sent.append(dict(what=what, url=url, port=conn.get("local", ("", 0))[1],
                              status=st, lines=lines, rest=rest, **expect))

    def verify(self):
        """Stops c-icap (strace exits with it) and checks every transaction's order."""
        pid = self.ic.proc.pid if self.ic.proc else None
        self.ic.stop()
        writes = read_writes(self.trace)
        audit = [w for w in writes if w.target.endswith("/audit.log")]
        events = [json.loads(l) for w in audit for l in w.data.decode().splitlines() if l]
        print(f"== {self.name}: {len(writes)} write calls traced, {len(audit)} to the audit log")
        self.checks.expect(bool(writes) and not any(w.truncated for w in audit),
                           f"{self.name}: the trace has the calls, the audit writes whole")
        for t in self.sent:
            self._check(t, writes, audit, events)
        os.unlink(self.trace)
        return pid

    def _check(self, t, writes, audit, events):
        what, url = t["what"], t["url"]
        st_ok = t["status"] == t["icap"]
        detail = f"ICAP {t['status']}"
        if st_ok and t.get("http"):
            http, body, complete = decode_icap_body(t["rest"], t["lines"])
            st_ok = bool(http) and t["http"] in http[0] and complete
            if st_ok and "want_body" in t:
                st_ok = body == t["want_body"]
            detail += f", {http[:1]}, {len(body)} bytes, complete={complete}"
        self.checks.expect(st_ok, f"{what}: ICAP {t['icap']}"
                           + (f", {t['http']}" if t.get("http") else ""), detail)
        evs = [e for e in events if e.get("url") == url and (e.get("event") == "shadow")
               == (t["event"] == "shadow")]
        self.checks.expect(len(evs) == 1 and evs[0].get("event") == t["event"]
                           and evs[0].get("verdict", "").startswith(t["verdict"]),
                           f"{what}: one `{t['event']}` event, verdict '{t['verdict']}...'",
                           str(evs))
        if "shadows" in t:
            sh = [e for e in events if e.get("url") == url and e.get("event") == "shadow"]
            self.checks.expect(len(sh) == t["shadows"], f"{what}: {t['shadows']} shadow event(s)",
                               str(sh))
        if "bytes" in t and evs:
            self.checks.expect(evs[0].get("bytes") == t["bytes"],
                               f"{what}: the event counts the {t['bytes']} body bytes seen at "
                               "the verdict", str(evs[0].get("bytes")))
        key = json.dumps(url)[1:-1].encode()
        ev_w = [w for w in audit if key in w.data]
        conn = [w for w in writes if w.target.startswith("TCP:[")
                and w.target.endswith(f"->127.0.0.1:{t['port']}]")]
        if not ev_w or not conn:
            self.checks.expect(False, f"{what}: event write and answer found in the trace",
                               f"{len(ev_w)} audit writes, {len(conn)} socket writes "
                               f"(client port {t['port']})")
            return
        last = conn[-1]
        completes = (last.data.endswith(b"0\r\n\r\n") or b"ICAP/1.0 204" in last.data
                     or t.get("null_body", False) and last.data.endswith(b"\r\n\r\n"))
        self.checks.expect(completes, f"{what}: the connection's last write completes the answer",
                           repr(last.data[:60]) + " ... " + repr(last.data[-20:]))
        ev = ev_w[0]
        self.checks.expect(ev.done < last.index and ev.pid == last.pid,
                           f"{what}: the audit event was written BEFORE the answer was completed",
                           f"audit write at trace line {ev.index} (thread {ev.pid}), answer's "
                           f"last write at line {last.index} (thread {last.pid}): "
                           + ("after it" if ev.index > last.index else "other thread"))


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    module, data = argv[1], argv[2]
    if not c_icap_available():
        print("SKIP: c-icap not installed (scripts/setup installs it)")
        return 77
    if not strace_available():
        print("SKIP: strace not installed (scripts/setup installs it)")
        return 77
    d = {n: os.path.join(data, n) for n in os.listdir(data)}
    crl, crl40, crl70 = read(d["crl.der"]), read(d["crl-40k.crl"]), read(d["crl-70k.crl"])
    page, ocsp = read(d["page.html"]), read(d["ocsp-req.der"])
    checks = Checks()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(POLICY)
    pids = []
    runs = []
    try:
        r = Run(module, f.name, checks, "Verify full", verify="full")
        runs.append(r)
        r.ic.start()
        r.respmod("genuine CRL, whole body in the preview", "http://crl.lab.test/p.crl", crl,
                  icap=204, bytes=len(crl), event="verified", verdict="genuine crl")
        r.respmod("genuine CRL without preview (204 after the whole body)",
                  "http://crl.lab.test/np.crl", crl, preview=None,
                  icap=204, event="verified", verdict="genuine crl")
        for name, body in (("40 KB", crl40), ("70 KB", crl70)):
            r.respmod(f"genuine {name} CRL (streamed, the tail released after the check)",
                      f"http://crl.lab.test/{name[:2]}k.crl", body, icap=200, http="200",
                      want_body=body, bytes=len(body), event="verified", verdict="genuine crl")
        r.respmod("impostor (403 page)", "http://crl.lab.test/page.crl", page, ct="text/html",
                  icap=200, http="403", event="blocked", verdict="blocked")
        r.respmod("verify none (204 at once)", "http://none.lab.test/x", page, ct="text/html",
                  icap=204, event="verified", verdict="not checked")
        r.reqmod("bypassed CONNECT (204 at once)", "login.lab.test:443",
                 ["CONNECT login.lab.test:443 HTTP/1.1", "Host: login.lab.test:443",
                  f"User-Agent: {UA}"], icap=204, event="verified", verdict="not checked")

        r = Run(module, f.name, checks, "Verify preview", verify="preview")
        runs.append(r)
        r.ic.start()
        r.respmod("40 KB CRL identified by its preview", "http://crl.lab.test/id.crl", crl40,
                  icap=204, bytes=1024, event="verified", verdict="identified crl")

        r = Run(module, f.name, checks, "Mode both", mode="both", secret=SECRET)
        runs.append(r)
        r.ic.start()
        post = ["POST http://ocsp.lab.test/ HTTP/1.1", "Host: ocsp.lab.test",
                f"User-Agent: {UA}", "Content-Type: application/ocsp-request"]
        r.reqmod("OCSP POST marked after its check", "http://ocsp.lab.test/",
                 post + [f"Content-Length: {len(ocsp)}"], ocsp, icap=200, http="POST",
                 want_body=ocsp, bytes=len(ocsp), event="bypass", verdict="marked, genuine")
        r.reqmod("GET marked (no body), a shadow rule matches too", "http://crl.lab.test/m.crl",
                 ["GET http://crl.lab.test/m.crl HTTP/1.1", "Host: crl.lab.test",
                  "User-Agent: ordertest"], icap=200, null_body=True, event="bypass",
                 verdict="marked", shadows=1)
        r.reqmod("not bypassed, a shadow rule matches (204 at once)", "http://www.example.com/s",
                 ["GET http://www.example.com/s HTTP/1.1", "Host: www.example.com",
                  "User-Agent: ordertest"], icap=204, event="shadow", verdict="")
        r.reqmod("forged mark stripped", "http://www.example.com/f",
                 ["GET http://www.example.com/f HTTP/1.1", "Host: www.example.com",
                  f"User-Agent: {UA}", "X-Authbypass: forged ord-crl"], icap=200,
                 null_body=True, event="blocked", verdict="forged mark")
        junk = b"\x30\x03\x02\x01\x05" + b"junk" * 10
        r.reqmod("junk OCSP POST (403 page)", "http://ocsp.lab.test/j",
                 ["POST http://ocsp.lab.test/j HTTP/1.1", "Host: ocsp.lab.test",
                  f"User-Agent: {UA}", "Content-Type: application/ocsp-request",
                  f"Content-Length: {len(junk)}"], junk, icap=200, http="403",
                 event="blocked", verdict="blocked")
        for r in runs:
            pids.append(r.verify())
    finally:
        for r in runs:
            r.ic.stop()
        os.unlink(f.name)
    for r in runs:
        checks.expect(not r.ic.leftover_pids, f"{r.name}: c-icap children exited with it")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(p is None or stopped(p) for p in pids):
        time.sleep(0.1)
    checks.expect(all(p is None or stopped(p) for p in pids), "strace and c-icap stopped")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
