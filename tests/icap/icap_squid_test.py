#!/usr/bin/python3
"""Integration test: Squid 5.7 + ext_authbypass_acl + c-icap 0.5.10 with srv_authbypass.so,
all on loopback, with the shipped policy and the shipped configuration: the Squid drop-in's
prefilter and ICAP sections (config/squid/authbypass.conf, uncommented, ICAP port
replaced) and the c-icap include (config/c-icap/authbypass.conf).

usage: icap_squid_test.py HELPER MODULE POLICY DATA_DIR

For each of authbypass.Verify full and preview (a fresh c-icap and Squid each):
  * genuine objects served to an unauthenticated client (CryptoAPI User-Agent): a small
    CRL, a 20 MB CRL, a PEM CRL, an OCSP response, a DER certificate, a .p7c, a CAB
    trust list -> 200 and byte-identical, one `verified` event each;
  * impostors: HTML, an executable (MZ) and 20 MB of junk named .crl, a CRL with bytes
    appended, a truncated 20 MB CRL without Content-Length (fails only at its end), a
    CAB holding a program as authroot.stl, CAdES signatures (content embedded, detached)
    as .p7c, a PEM certificate followed by a ZIP
    -> 403 or a cut transfer, never the whole impostor; one `blocked` event each, with
    the reason;
  * OCSP POST with a real request -> 200 (the responder's answer); with 1 MB of junk ->
    403, and the junk never reaches the origin;
  * an authenticated client's 20 MB download -> untouched (byte-identical) and no ICAP
    event; 20 parallel CRL fetches -> all 200;
  * c-icap stopped -> Squid fails closed (no 200 for a bypassed request, nothing
    unverified reaches the client);
  * nothing left running.
Exit status: 0 passed, 1 failed, 77 Squid or c-icap not installed.
"""

from __future__ import annotations

import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

from lab.cicap import CIcap, IcapLabError, c_icap_available  # noqa: E402
from lab.checks import Checks, stopped  # noqa: E402
from lab.squid import LabError, SquidLab, dropin_icap_conf, squid_available  # noqa: E402
from lab.testdata import sha  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) squidlab"
# (label, url, file, content type, content_length, rule, kind)
GENUINE = [
    ("small CRL (crl-files)", "http://crl.lab-ca.test/pki/lab.crl", "crl.der",
     "application/pkix-crl", "auto", "crl-files", "crl"),
    ("40 KB CRL (past the 32 KiB hold window)", "http://crl.lab-ca.test/pki/40k.crl",
     "crl-40k.crl", "application/pkix-crl", "auto", "crl-files", "crl"),
    ("70 KB CRL (past Squid's 64 KB Allow-204 limit)", "http://crl.lab-ca.test/pki/70k.crl",
     "crl-70k.crl", "application/pkix-crl", "auto", "crl-files", "crl"),
    ("20 MB CRL (crl-files)", "http://crl.lab-ca.test/pki/big.crl", "big.crl",
     "application/pkix-crl", "auto", "crl-files", "crl"),
    ("PEM CRL from a CA host", "http://crl.verisign.com/lab/pem.crl", "crl.pem",
     "application/x-pkcs7-crl", "auto", "ca-revocation-hosts", "crl"),
    ("OCSP response (GET)", "http://ocsp.digicert.com/MFEwTzBNMEswSTAJBgUrDgMCGgUA", "ocsp-resp.der",
     "application/ocsp-response", "auto", "ocsp-responders", "ocsp"),
    ("DER certificate (AIA .crt)", "http://cacerts.digicert.com/LabCA.crt", "ca.der",
     "application/pkix-cert", "auto", "ca-revocation-hosts", "cert"),
    ("root certificate (windows-root-certs)",
     "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/lab.crt", "ca.der",
     "application/x-x509-ca-cert", "auto", "windows-root-certs", "cert"),
    (".p7c bundle", "http://cacerts.digicert.com/LabCA.p7c", "ca.p7c",
     "application/pkcs7-mime", "auto", "ca-revocation-hosts", "pkcs7"),
    ("CAB trust list (MSZIP, signed CTL inside)",
     "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/authrootstl.cab",
     "ctl.cab", "application/vnd.ms-cab-compressed", "auto", "windows-ctl", "ctl"),
]

# (label, url, file, content type, content_length)
IMPOSTORS = [
    ("HTML named .crl", "http://evil.example.test/page.crl", "page.html", "text/html", "auto"),
    ("HTML named .crl, claiming pkix-crl", "http://evil.example.test/page2.crl", "page.html",
     "application/pkix-crl", "auto"),
    ("executable (MZ) named .crl", "http://evil.example.test/app.crl", "app.exe",
     "application/octet-stream", "auto"),
    ("20 MB junk named .crl", "http://evil.example.test/junk.crl", "junk20m.bin",
     "application/pkix-crl", "auto"),
    ("CRL with bytes appended", "http://evil.example.test/appended.crl", "crl-appended.crl",
     "application/pkix-crl", "auto"),
    ("truncated 20 MB CRL, no Content-Length", "http://evil.example.test/truncated.crl",
     "big-truncated.crl", "application/pkix-crl", None),
    # Not revocation data, though a name check or a preview once passed them (a sixth
    # field: the rule that bypasses them, when it is not crl-files).
    ("CAB holding a program named authroot.stl",
     "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/disallowedcertstl.cab",
     "prog-stl.cab", "application/vnd.ms-cab-compressed", "auto", "windows-ctl"),
    ("CAdES-signed program (SignedData with content) as .p7c",
     "http://cacerts.digicert.com/signed.p7c", "signed-doc.p7m", "application/pkcs7-mime", "auto",
     "ca-revocation-hosts"),
    ("detached CMS signature as .p7c", "http://cacerts.digicert.com/detached.p7c",
     "detached.p7s", "application/pkcs7-mime", "auto", "ca-revocation-hosts"),
    ("PEM certificate followed by 2 MB of ZIP, octet-stream",
     "http://cacerts.digicert.com/LabCA-then-zip.crt", "cert-then-zip.pem",
     "application/octet-stream", "auto", "ca-revocation-hosts"),
]

# Caught by `full` only: its first 1024 bytes are a genuine CRL's of the declared size, so
# `preview` answers 204 and the rest streams past unchecked (docs/icap-service.md).
FULL_ONLY = [
    ("20 MB CRL with junk at 10 MB", "http://evil.example.test/corrupt.crl",
     "big-corrupt.crl", "application/pkix-crl", "auto"),
]


def run_mode(mode: str, helper: str, module: str, policy: str, data: str, checks: Checks,
             started: list[int]):
    print(f"\n######## authbypass.Verify {mode}", flush=True)
    f = {n: os.path.join(data, n) for n in os.listdir(data)}
    ic = CIcap(module, policy, verify=mode, verbose=True)
    lab = None
    try:
        ic.start()
        started.append(ic.proc.pid)
        # The drop-in's prefilter and bypass line (2, 3) in place of squidlab's, its ICAP
        # section (5) at the end.
        lab = SquidLab(helper, policy, bypass_access=dropin_icap_conf(ic.port, (2, 3)),
                       extra_conf=dropin_icap_conf(ic.port, (5,)), verbose=True)
        lab.start()
        started.append(lab.squid.pid)
        print(f"squid {lab.proxy_url}, c-icap {ic.url} ({mode})", flush=True)
        out = lambda name: os.path.join(lab.dir, name)  # noqa: E731

        def event_for(url, timeout=5.0):
            def find():
                return [e for e in ic.audit_events() if e.get("url") == url
                        and e.get("event") in ("verified", "blocked")]
            return lab.wait_for(find, timeout) or []

        for _label, url, name, ct, cl, *_ in GENUINE + IMPOSTORS + FULL_ONLY:
            lab.origin.serve("/" + url.split("/", 3)[3], file=f[name], content_type=ct,
                             content_length=cl)

        print("== genuine revocation data, unauthenticated")
        for label, url, name, _ct, _cl, rule, kind in GENUINE:
            r = lab.download(url, out("dl"), ua=CRYPTOAPI)
            same = r["status"] == 200 and r["curl_rc"] == 0 and sha(out("dl")) == sha(f[name])
            checks.expect(same, f"[{mode}] {label}: 200, byte-identical ({r['size']} bytes)", str(r))
            evs = event_for(url)
            want_verdict = f"identified {kind} (preview)" if mode == "preview" else f"genuine {kind}"
            ok = (len(evs) == 1 and evs[0]["event"] == "verified" and evs[0].get("rule") == rule
                  and evs[0].get("src") == "127.0.0.1" and evs[0].get("user_agent") == CRYPTOAPI
                  and evs[0].get("status") == 200)
            # small bodies fit in the 1024-byte preview: checked whole even in preview mode
            ok = ok and evs[0].get("verdict") in (want_verdict, f"genuine {kind}")
            checks.expect(ok, f"[{mode}] audit: one verified event, rule {rule}", str(evs))

        print("== impostors")
        if mode == "preview":
            for label, url, name, _ct, _cl in FULL_ONLY:
                r = lab.download(url, out("dl"), ua=CRYPTOAPI)
                evs = event_for(url)
                checks.expect(r["status"] == 200 and len(evs) == 1
                              and evs[0].get("verdict") == "identified crl (preview)",
                              f"[{mode}] {label}: passes in preview mode, as documented "
                              "(identified from the preview)", str((r, evs)))
        for label, url, name, _ct, _cl, *rule in IMPOSTORS + (FULL_ONLY if mode == "full" else []):
            size = os.path.getsize(f[name])
            r = lab.download(url, out("dl"), ua=CRYPTOAPI)
            got = open(out("dl"), "rb").read() if os.path.exists(out("dl")) else b""
            impostor = open(f[name], "rb").read()
            blocked_page = r["status"] == 403 and b"authbypass" in got and impostor not in got
            cut = r["status"] == 200 and r["curl_rc"] != 0 and r["size"] < size
            checks.expect(blocked_page or cut,
                          f"[{mode}] {label}: " + ("403 page" if blocked_page else
                                                   f"transfer cut at {r['size']} of {size} bytes"
                                                   if cut else "NOT BLOCKED"), str(r))
            evs = event_for(url)
            ok = len(evs) == 1 and evs[0]["event"] == "blocked" and evs[0].get("reason") \
                and evs[0].get("rule") == (rule[0] if rule else "crl-files")
            checks.expect(ok, f"[{mode}] audit: blocked, reason "
                          f"{evs[0].get('reason')!r}" if evs else f"[{mode}] audit: blocked event",
                          str(evs))
        # the origin did serve them: the check is on the response
        print("== OCSP POST")
        lab.origin.serve("/ocsp", file=f["ocsp-resp.der"], content_type="application/ocsp-response")
        url = "http://ocsp.digicert.com/ocsp"
        r = lab.download(url, out("dl"), ua=CRYPTOAPI, data_file=f["ocsp-req.der"],
                         content_type="application/ocsp-request")
        checks.expect(r["status"] == 200 and sha(out("dl")) == sha(f["ocsp-resp.der"]),
                      f"[{mode}] OCSP POST with a real request: 200, the responder's answer", str(r))
        posted = [q for q in lab.origin.requests if q["method"] == "POST" and q["path"] == "/ocsp"]
        checks.expect(len(posted) == 1 and posted[0]["body"] == open(f["ocsp-req.der"], "rb").read(),
                      f"[{mode}] the origin got the OCSP request unchanged")
        evs = event_for(url)
        checks.expect(len(evs) == 1 and evs[0]["event"] == "verified" and evs[0]["method"] == "POST",
                      f"[{mode}] audit: one verified event for the POST", str(evs))
        url2 = "http://ocsp.digicert.com/ocsp?junk"
        r = lab.download(url2, out("dl"), ua=CRYPTOAPI, data_file=f["junk1m.bin"],
                         content_type="application/ocsp-request")
        checks.expect(r["status"] == 403, f"[{mode}] OCSP POST with 1 MB junk: 403", str(r))
        posted = [q for q in lab.origin.requests if q["method"] == "POST"]
        checks.expect(len(posted) == 1, f"[{mode}] the junk never reached the origin",
                      str([(q["path"], q.get("body_len")) for q in posted]))
        evs = event_for(url2)
        checks.expect(len(evs) == 1 and evs[0]["event"] == "blocked" and evs[0].get("reason"),
                      f"[{mode}] audit: blocked upload with reason", str(evs))

        print("== authenticated download")
        lab.origin.serve("/download/tool.bin", file=f["junk20m.bin"],
                         content_type="application/octet-stream")
        url = "http://www.example.com/download/tool.bin"
        r = lab.download(url, out("dl"), ua=BROWSER, user=lab.USER)
        checks.expect(r["status"] == 200 and sha(out("dl")) == sha(f["junk20m.bin"]),
                      f"[{mode}] authenticated 20 MB download: untouched", str(r))
        r = lab.download(url, out("dl"), ua=BROWSER)
        checks.expect(r["status"] == 407, f"[{mode}] ... and 407 without credentials", str(r))
        time.sleep(0.3)
        checks.expect(not [e for e in ic.audit_events() if e.get("url") == url],
                      f"[{mode}] no ICAP event for the authenticated download")

        print("== CONNECT (Sign-In Assistant) with the ICAP services configured")
        msoidcrl = ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 6.1; MSOIDCRL 7.250.4303.0; "
                    "App msoidsvc.exe, 6.1.7601.17514)")
        code = lab.connect("login.microsoftonline.com:443", ua=msoidcrl)
        checks.expect(code == 200, f"[{mode}] bypassed CONNECT (verify none): tunnel set up ({code})")
        evs = event_for("login.microsoftonline.com:443")
        checks.expect(len(evs) == 1 and evs[0].get("rule") == "msoidcrl-signin"
                      and evs[0].get("method") == "CONNECT",
                      f"[{mode}] audit: one event for the tunnel (REQMOD)", str(evs))
        code = lab.connect("www.example.com:443", ua=msoidcrl)
        checks.expect(code == 407, f"[{mode}] other CONNECT: 407 ({code})")

        print("== parallel")
        lab.origin.serve("/par.crl", file=f["crl.der"], content_type="application/pkix-crl")

        def one(i):
            return lab.download(f"http://crl.lab-ca.test/par.crl?{i}", out(f"par{i}"),
                                ua=CRYPTOAPI)
        with ThreadPoolExecutor(20) as pool:
            res = list(pool.map(one, range(40)))
        good = sum(1 for i, r in enumerate(res)
                   if r["status"] == 200 and sha(out(f"par{i}")) == sha(f["crl.der"]))
        checks.expect(good == 40, f"[{mode}] 40 CRL fetches, 20 at a time: {good} 200 and identical",
                      str([r for r in res if r["status"] != 200][:3]))

        print("== one event per bypassed request")
        evs = [e for e in ic.audit_events() if e.get("event") in ("verified", "blocked")]
        want = len(GENUINE) + len(IMPOSTORS) + len(FULL_ONLY) + 2 + 1 + 40  # + the CONNECT
        checks.expect(len(evs) == want, f"[{mode}] {len(evs)} ICAP events for {want} bypassed requests")

        print("== c-icap stopped: fail closed")
        ic.stop()
        url = "http://crl.lab-ca.test/pki/lab.crl?after-stop"
        if os.path.exists(out("dl")):
            os.remove(out("dl"))
        r = lab.download(url, out("dl"), ua=CRYPTOAPI)
        checks.expect(r["status"] != 200, f"[{mode}] c-icap down: the bypassed CRL request is "
                      f"not served (HTTP {r['status']})", str(r))
        data_crl = open(f["crl.der"], "rb").read()
        got = open(out("dl"), "rb").read() if os.path.exists(out("dl")) else b""
        checks.expect(data_crl not in got, f"[{mode}] ... and the client got none of it")
        r = lab.download("http://www.example.com/after-stop", out("dl"), ua=BROWSER, user=lab.USER)
        checks.expect(r["status"] == 200, f"[{mode}] authenticated traffic still flows", str(r))
        log = lab.read(lab.cache_log)
        crashes = re.findall(r".*(?:FATAL|assertion failed|crashing too rapidly).*", log)
        checks.expect(not crashes, f"[{mode}] cache.log: no FATAL errors", " | ".join(crashes[:3]))
    except (LabError, IcapLabError, OSError) as e:
        checks.failures.append(f"[{mode}] lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures:
            if lab and lab.dir:
                print(lab.tail(lab.cache_log, 30))
                print(lab.tail(lab.access_log, 30))
            if ic.dir:
                print(ic.tail(ic.server_log, 30))
        if lab:
            lab.stop()
        ic.stop()
    checks.expect(not ic.leftover_pids and not (lab and lab.leftover_pids),
                  f"[{mode}] c-icap children and helpers exited with their parents")


def main(argv) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    helper, module, policy, data = argv[1:]
    if not squid_available() or not c_icap_available():
        print("SKIP: squid / curl / openssl / c-icap not installed (scripts/setup installs them)")
        return 77
    checks = Checks()
    started: list[int] = []
    t0 = time.monotonic()
    for mode in ("full", "preview"):
        run_mode(mode, helper, module, policy, data, checks, started)
    print("\n== cleanup")
    for pid in started:
        checks.expect(stopped(pid), f"pid {pid} stopped")
    print(f"({time.monotonic() - t0:.1f} s)")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
