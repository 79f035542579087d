#!/usr/bin/python3
"""Integration test: ICAP decision mode (authbypass.Mode decide|both; docs/architecture.md,
"ICAP service"). The REQMOD service decides which requests skip proxy authentication and
marks them
"X-Authbypass: <secret> <rule-id>"; Squid 5.7 authenticates in adapted_http_access and
allows marked requests first. Real c-icap 0.5.10 + srv_authbypass.so, real Squid, the
shipped policy, and the Squid side exactly as `authbypass squid-config --mode icap` writes
it (client list and ICAP URL set for the lab; variants edited in text where a check
needs another configuration).

usage: icap_decide_test.py CLI HELPER MODULE POLICY DATA_DIR

  * the CLI: `authbypass secret` (stdout; --out FILE mode 0640, no overwrite without
    --force, --group), `squid-config --mode icap` (the secret embedded; a world-readable
    or missing secret file refused; usage errors);
  * the service alone (raw ICAP): a bypass is marked once, with the secret and the rule;
    anything else is a 204; client-sent X-Authbypass headers (any value, any case, blanks
    before the colon, several copies; the right secret too) are stripped, never marked,
    and audited (`blocked`, verdict `forged mark removed`), also on an authenticated
    request and on a 1 MB upload (passed on byte-identical); OCSP POST bodies checked as
    in verify mode; RESPMOD verified in `both`, 204 in `decide`; the secret file re-read
    when replaced (a bad replacement keeps the secret in force);
  * the service refuses to start (OPTIONS 500, "NOT STARTED" in the server log) without
    SharedSecretFile, or with a missing, empty, world-readable or too short secret;
  * Squid, prefiltered drop-in (the default): the seed scenario (CryptoAPI CRL and the
    Sign-In Assistant CONNECT without credentials -> 200; anything else -> 407;
    credentials -> 200 with the user name in Squid's access log), OCSP POST, an impostor
    CRL blocked by RESPMOD; a forged X-Authbypass (junk, and the right secret) -> denied;
    neither the mark nor c-icap's Via ever reaches the origin; non-candidates never reach
    the REQMOD service; one `bypass` event per bypassed request; secret rotation with
    Squid accepting both secrets: no request refused while c-icap switches; c-icap down
    (bypass=1) -> no bypass, forged still denied, authenticated traffic flows;
  * Squid, no prefilter, REQMOD bypass=0: same answers; c-icap down -> no bypass (an ICAP
    error), forged still denied;
  * Squid without the `http_access deny` guard (what the other two layers do alone): the
    service strips forged marks; with c-icap down only the secret stands (a wrong value is
    authenticated; the right one would pass: why the guard is required); the header never
    reaches the origin;
  * nothing left running.
Exit status: 0 passed, 1 failed, 77 Squid or c-icap not installed.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

from lab.cicap import (CIcap, IcapLabError, c_icap_available, decode_icap_body,  # noqa: E402
                     icap_request)
from lab.checks import Checks, stopped  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402
from lab.testdata import sha  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) squidlab"
MSOIDCRL = ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 6.1; MSOIDCRL 7.250.4303.0; "
            "App msoidsvc.exe, 6.1.7601.17514)")
CLIENT = "10.1.2.3"
SECRET = "5f" * 32
NEW_SECRET = "a7" * 32
CRL_URL = "http://crl.lab-ca.test/pki/lab.crl"


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def marks(http_lines: list[str]) -> list[str]:
    return [l for l in http_lines if re.match(r"(?i)^x-authbypass\s*:", l)]


def reqmod(ic: CIcap, req: list[str], body: bytes | None = None, *,
           icap_headers: list[str] | None = None, preview: int | None = 1024):
    """A REQMOD through the raw client: (ICAP status, HTTP lines of the answer, body)."""
    st, lines, rest = icap_request(
        ic.port, "REQMOD", icap_headers=[f"X-Client-IP: {CLIENT}"] if icap_headers is None
        else icap_headers, req_hdr=req, body=body, preview=preview if body is not None else None)
    if st != 200:
        return st, [], b""
    http, out, _complete = decode_icap_body(rest, lines)
    return st, http, out


def get_req(url: str, ua: str = CRYPTOAPI, extra: list[str] | None = None) -> list[str]:
    host = url.split("/")[2]
    return [f"GET {url} HTTP/1.1", f"Host: {host}", f"User-Agent: {ua}"] + (extra or [])


def reqmod_count(ic: CIcap) -> int:
    return sum(1 for l in CIcap.read(ic.path("access.log")).splitlines() if " REQMOD " in l)


def squid_conf(cli: str, policy: str, secret_file: str, icap_url: str, *extra: str) -> str:
    r = subprocess.run([cli, "squid-config", "--mode", "icap", "--secret-file", secret_file,
                        "--clients", "localhost", "--icap", icap_url, *extra, policy],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise LabError(f"authbypass squid-config --mode icap failed ({r.returncode}): {r.stderr}")
    return r.stdout


def write_secret_file(d: str, name: str, secret: str) -> str:
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(secret + "\n")
    os.chmod(p, 0o600)
    return p


# ------------------------------------------------------------------------------------------

def cli_checks(cli: str, policy: str, tmp: str, checks: Checks):
    print("\n######## authbypass secret, squid-config --mode icap", flush=True)

    def run(*args):
        return subprocess.run([cli, *args], capture_output=True, text=True, timeout=30)
    r = run("secret")
    checks.expect(r.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", r.stdout),
                  "secret: 64 hex digits (32 random bytes) on stdout", r.stdout + r.stderr)
    out = os.path.join(tmp, "gen-secret")
    r = run("secret", "--out", out)
    st = os.stat(out)
    text = open(out).read()
    checks.expect(r.returncode == 0 and (st.st_mode & 0o777) == 0o640
                  and re.fullmatch(r"[0-9a-f]{64}\n", text),
                  f"secret --out: mode {st.st_mode & 0o777:04o}, one line of 64 hex digits",
                  r.stderr)
    r = run("secret", "--out", out)
    checks.expect(r.returncode == 1 and open(out).read() == text and "exists" in r.stderr,
                  "secret --out an existing file: refused, file unchanged", r.stderr)
    r = run("secret", "--out", out, "--force", "--group", "proxy")
    st = os.stat(out)
    checks.expect(r.returncode == 0 and open(out).read() != text and (st.st_mode & 0o777) == 0o640
                  and st.st_gid == grp.getgrnam("proxy").gr_gid,
                  "secret --out --force --group proxy: replaced, 0640, group proxy", r.stderr)
    r = run("secret", "--group", "proxy")
    checks.expect(r.returncode == 2, "secret --group without --out: usage error")
    r = run("squid-config", "--mode", "icap", "--secret-file", out, policy)
    checks.expect(r.returncode == 0 and f"^{open(out).read().strip()}\\s" in r.stdout,
                  "squid-config --mode icap embeds the secret file's secret", r.stderr)
    for variant in ([], ["--no-prefilter", "--previous-secret-file", out]):
        dropin = os.path.join(tmp, "dropin.conf")
        with open(dropin, "w") as f:
            f.write(run("squid-config", "--mode", "icap", "--secret-file", out, *variant,
                        policy).stdout)
        with open(os.path.join(tmp, "htpasswd"), "w"):
            pass
        with open(os.path.join(tmp, "squid.conf"), "w") as f:
            f.write(f"http_port 127.0.0.1:3\npid_filename {tmp}/squid.pid\n"
                    f"cache_log {tmp}/cache.log\ncache_store_log none\nnetdb_filename none\n"
                    "acl localnet src 10.0.0.0/8\n"
                    f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {tmp}/htpasswd\n"
                    f"include {dropin}\nhttp_access deny all\n")
        p = subprocess.run(["squid", "-k", "parse", "-f", os.path.join(tmp, "squid.conf")],
                           capture_output=True, text=True, timeout=60)
        # "Processing: <line>" echoes the configuration (X-Squid-Error is a header name)
        bad = [l for l in (p.stdout + p.stderr).splitlines()
               if re.search(r"FATAL|ERROR|WARNING", l, re.I) and "| Processing: " not in l]
        checks.expect(p.returncode == 0 and not bad, "squid -k parse of the drop-in "
                      f"{' '.join(variant[:1]) or '(default)'}: no errors or warnings", str(bad[:3]))
    os.chmod(out, 0o644)
    r = run("squid-config", "--mode", "icap", "--secret-file", out, policy)
    checks.expect(r.returncode == 1 and "every user" in r.stderr and not r.stdout,
                  "... a world-readable secret file: refused (exit 1)", r.stderr)
    r = run("squid-config", "--mode", "icap", "--secret-file", os.path.join(tmp, "nope"), policy)
    checks.expect(r.returncode == 1 and "cannot be opened" in r.stderr, "... a missing one: exit 1")
    for args, what in ((["--mode", "sideways"], "--mode must be"),
                       (["--secret-file", out], "needs --mode icap"),
                       (["--mode", "icap", "--no-icap"], "needs the ICAP service"),
                       (["--mode", "icap", "--clients", "a b"], "--clients needs")):
        r = run("squid-config", *args, policy)
        checks.expect(r.returncode == 2 and what in r.stderr,
                      f"squid-config {' '.join(args)}: usage error", r.stderr)


def service_checks(module: str, policy: str, data: dict, checks: Checks, started: list[int]):
    print("\n######## the service alone (raw ICAP), authbypass.Mode both", flush=True)
    ic = CIcap(module, policy, mode="both", secret=SECRET, verbose=True)
    try:
        ic.start()
        started.append(ic.proc.pid)

        def events(url, event=None):
            return [e for e in ic.audit_events() if e.get("url") == url
                    and (event is None or e.get("event") == event)]

        st, http, _ = reqmod(ic, get_req(CRL_URL))
        checks.expect(st == 200 and marks(http) == [f"X-Authbypass: {SECRET} crl-files"],
                      "a bypassed request is marked once: the secret, a blank, the rule",
                      str((st, http)))
        checks.expect(http and http[0] == f"GET {CRL_URL} HTTP/1.1",
                      "... the request line unchanged")
        time.sleep(0.2)
        ev = events(CRL_URL, "bypass")
        checks.expect(len(ev) == 1 and ev[0].get("component") == "icap"
                      and ev[0].get("rule") == "crl-files" and ev[0].get("src") == CLIENT
                      and ev[0].get("verdict") == "marked" and SECRET not in str(ev),
                      "audit: one bypass event (component icap), never the secret", str(ev))
        checks.expect(any(e.get("event") == "shadow" and e.get("rule") == "cryptoapi-ua-observe"
                          for e in events(CRL_URL)), "audit: the shadow match, as the helper "
                      "writes it")

        st, http, _ = reqmod(ic, get_req("http://www.example.com/", BROWSER))
        checks.expect(st == 204, f"anything the policy does not bypass: 204 ({st})")
        st, _h, _b = reqmod(ic, get_req(CRL_URL), icap_headers=[f"X-Client-IP: {CLIENT}",
                                                                 "X-Authenticated-User: Ym9i"])
        checks.expect(st == 204, f"an authenticated request: 204, no mark needed ({st})")

        print("== client-sent marks")
        forged = [
            ("the right secret on a bypass candidate", CRL_URL, CRYPTOAPI,
             [f"X-Authbypass: {SECRET} crl-files"]),
            ("junk, lower case", "http://www.example.com/a", BROWSER, ["x-authbypass: junk"]),
            ("blanks before the colon", "http://www.example.com/b", BROWSER,
             ["X-AUTHBYPASS : junk"]),
            ("two copies", CRL_URL + "?two", CRYPTOAPI,
             [f"X-Authbypass: {SECRET} crl-files", "X-Authbypass: x"]),
        ]
        for label, url, ua, extra in forged:
            st, http, _ = reqmod(ic, get_req(url, ua, extra + ["Accept: */*"]))
            checks.expect(st == 200 and not marks(http) and "Accept: */*" in http
                          and http[0].startswith("GET "),
                          f"forged ({label}): 200, every copy stripped, never marked, the rest "
                          "kept", str((st, http)))
        st, http, _ = reqmod(ic, get_req(CRL_URL + "?auth", extra=["X-Authbypass: junk"]),
                             icap_headers=[f"X-Client-IP: {CLIENT}", "X-Authenticated-User: Ym9i"])
        checks.expect(st == 200 and not marks(http), "forged on an authenticated request: "
                      "stripped", str((st, http)))
        big = read(data["junk1m.bin"])
        st, http, out = reqmod(ic, ["POST http://www.example.com/upload HTTP/1.1",
                                    "Host: www.example.com", f"User-Agent: {BROWSER}",
                                    "Content-Type: application/octet-stream",
                                    f"Content-Length: {len(big)}", "X-Authbypass: junk"], big)
        checks.expect(st == 200 and not marks(http) and out == big,
                      f"forged on a 1 MB upload: stripped, the body passed on byte-identical "
                      f"({len(out)} bytes)", str((st, http)))
        time.sleep(0.2)
        fe = [e for e in ic.audit_events() if e.get("verdict") == "forged mark removed"]
        checks.expect(len(fe) == len(forged) + 2 and all(e.get("event") == "blocked" and
                                                         e.get("reason") for e in fe),
                      f"audit: one `blocked` event per forged mark ({len(fe)})", str(fe[:2]))
        checks.expect(not [e for e in ic.audit_events()
                           if e.get("event") == "bypass" and "?two" in e.get("url", "")],
                      "a forged request is never a bypass, even when the policy would bypass it")

        print("== OCSP POST, CONNECT, RESPMOD")
        ocsp = read(data["ocsp-req.der"])
        post = ["POST http://ocsp.digicert.com/ HTTP/1.1", "Host: ocsp.digicert.com",
                f"User-Agent: {CRYPTOAPI}", "Content-Type: application/ocsp-request"]
        st, http, out = reqmod(ic, post + [f"Content-Length: {len(ocsp)}"], ocsp)
        checks.expect(st == 200 and marks(http) == [f"X-Authbypass: {SECRET} ocsp-responders"]
                      and out == ocsp, "OCSP POST with a real request: marked, body unchanged",
                      str((st, http)))
        st, http, out = reqmod(ic, post + [f"Content-Length: {len(ocsp)}"], ocsp, preview=10)
        checks.expect(st == 200 and len(marks(http)) == 1 and out == ocsp,
                      "... also when the body goes past the preview")
        junk = b"\x30" + os.urandom(2000)
        st, http, out = reqmod(ic, post[:1] + ["Host: ocsp.digicert.com",
                                               f"User-Agent: {CRYPTOAPI}",
                                               "Content-Type: application/ocsp-request",
                                               f"Content-Length: {len(junk)}"], junk)
        checks.expect(st == 200 and http and http[0].startswith("HTTP/1.1 403")
                      and SECRET not in str(http), "OCSP POST with junk: a 403 page, no mark",
                      str((st, http)))
        st, http, _ = reqmod(ic, ["CONNECT login.microsoftonline.com:443 HTTP/1.1",
                                  "Host: login.microsoftonline.com:443", f"User-Agent: {MSOIDCRL}"])
        checks.expect(st == 200 and marks(http) == [f"X-Authbypass: {SECRET} msoidcrl-signin"],
                      "Sign-In Assistant CONNECT: marked", str(http))
        page = read(data["page.html"])
        st, lines, rest = icap_request(
            ic.port, "RESPMOD", icap_headers=[f"X-Client-IP: {CLIENT}"], req_hdr=get_req(CRL_URL),
            res_hdr=["HTTP/1.1 200 OK", "Content-Type: application/pkix-crl",
                     f"Content-Length: {len(page)}"], body=page, preview=1024)
        http, _b, _c = decode_icap_body(rest, lines)
        checks.expect(st == 200 and http and "403" in http[0],
                      "Mode both: RESPMOD still verifies (HTML named .crl -> 403)", str(http[:1]))

        print("== secret file replaced (rotation)")
        ic.write_secret(NEW_SECRET + "\n")
        got = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _st, http, _ = reqmod(ic, get_req(CRL_URL + "?rot"))
            got = marks(http)
            if got == [f"X-Authbypass: {NEW_SECRET} crl-files"]:
                break
            time.sleep(0.2)
        checks.expect(got == [f"X-Authbypass: {NEW_SECRET} crl-files"],
                      "a replaced secret file is in force within seconds, no restart", str(got))
        ic.write_secret("c3" * 32 + "\n", mode=0o644)
        time.sleep(1.5)
        _st, http, _ = reqmod(ic, get_req(CRL_URL + "?bad"))
        log = ic.read(ic.server_log)
        checks.expect(marks(http) == [f"X-Authbypass: {NEW_SECRET} crl-files"]
                      and "readable or writable by every user" in log and "stays" in log,
                      "a world-readable replacement is refused, logged; the secret in force stays",
                      str(marks(http)))
        checks.expect(SECRET not in log and NEW_SECRET not in log and "c3c3c3c3" not in log,
                      "the server log never shows a secret")
    except (IcapLabError, OSError) as e:
        checks.failures.append(f"lab error (service): {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures and ic.dir:
            print(ic.tail(ic.server_log, 20))
        ic.stop()

    print("\n######## authbypass.Mode decide: REQMOD decides, RESPMOD is not verified")
    ic = CIcap(module, policy, mode="decide", secret=SECRET, verbose=True)
    try:
        ic.start()
        started.append(ic.proc.pid)
        st, http, _ = reqmod(ic, get_req(CRL_URL))
        checks.expect(st == 200 and len(marks(http)) == 1, "decide: REQMOD marks")
        page = read(data["page.html"])
        st, _l, _r = icap_request(
            ic.port, "RESPMOD", icap_headers=[f"X-Client-IP: {CLIENT}"], req_hdr=get_req(CRL_URL),
            res_hdr=["HTTP/1.1 200 OK", "Content-Type: application/pkix-crl",
                     f"Content-Length: {len(page)}"], body=page, preview=1024)
        checks.expect(st == 204 and "use authbypass.Mode both" in ic.read(ic.server_log),
                      f"decide: RESPMOD answered 204 and a warning logged ({st})")
    except (IcapLabError, OSError) as e:
        checks.failures.append(f"lab error (decide): {e}")
    finally:
        ic.stop()

    print("\n######## the service refuses to start without a good secret")
    cases = [
        ("no SharedSecretFile", dict(secret=None), "needs authbypass.SharedSecretFile"),
        ("a missing file", dict(secret=None,
                                extra_conf="authbypass.SharedSecretFile /nonexistent/secret\n"),
         "cannot be opened"),
        ("an empty file", dict(secret=""), "is empty"),
        ("a world-readable file", dict(secret=SECRET, secret_mode=0o644),
         "readable or writable by every user"),
        ("a short secret", dict(secret="abc123"), "at least 32"),
    ]
    for label, kw, why in cases:
        ic = CIcap(module, policy, mode="decide", **kw)
        try:
            ic.start(ready_timeout=8, ready_status=500)
            started.append(ic.proc.pid)
            log = ic.read(ic.server_log)
            st, _l, _b = reqmod(ic, get_req(CRL_URL))
            checks.expect("NOT STARTED" in log and why in log and st == 500,
                          f"{label}: not started, logged ('{why}'); REQMOD gets 500 ({st})",
                          log[-300:])
        except (IcapLabError, OSError) as e:
            checks.failures.append(f"{label}: the service started or c-icap failed: {e}")
            print(f"  FAIL  {label}: {e}", flush=True)
        finally:
            ic.stop()


# ------------------------------------------------------------------------------------------

def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def seed_scenario(lab: SquidLab, ic: CIcap, tag: str, checks: Checks, data: dict):
    out = os.path.join(lab.dir, "dl")
    r = lab.download(CRL_URL, out, ua=CRYPTOAPI)
    checks.expect(r["status"] == 200 and sha(out) == sha(data["crl.der"]),
                  f"[{tag}] CryptoAPI CRL without credentials: 200, the CRL", str(r))
    code = lab.connect("login.microsoftonline.com:443", ua=MSOIDCRL)
    checks.expect(code == 200, f"[{tag}] Sign-In Assistant CONNECT without credentials: {code}")
    for label, url, ua in (("a browser page", "http://www.example.com/page", BROWSER),
                           ("CryptoAPI UA on another host", "http://www.example.com/setup.exe",
                            CRYPTOAPI),
                           ("the classic .crl query evasion", "http://evil.test/x.exe?.crl",
                            CRYPTOAPI)):
        code = lab.get(url, ua=ua)
        checks.expect(code == 407, f"[{tag}] {label} without credentials: 407 ({code})")
    code = lab.connect("www.example.com:443", ua=MSOIDCRL)
    checks.expect(code == 407, f"[{tag}] another CONNECT: 407 ({code})")
    url = f"http://www.example.com/{slug(tag)}/with-credentials"
    code = lab.get(url, ua=BROWSER, user=lab.USER)
    entry = lab.wait_for(lambda: [e for e in lab.access_entries() if e["url"] == url])
    checks.expect(code == 200 and entry and entry[-1]["user"] == lab.USER,
                  f"[{tag}] credentials: 200, user {lab.USER} in Squid's access log ({code})",
                  str(entry))
    code = lab.get(url, ua=BROWSER, user=lab.USER, password="wrong")
    checks.expect(code == 407, f"[{tag}] wrong credentials: 407 ({code})")
    url = CRL_URL + f"?{slug(tag)}-auth"
    code = lab.get(url, ua=CRYPTOAPI, user=lab.USER)
    entry = lab.wait_for(lambda: [e for e in lab.access_entries() if e["url"].startswith(
        CRL_URL) and e["user"] == lab.USER])
    checks.expect(code == 200 and entry, f"[{tag}] a CRL with credentials: 200, logged as "
                  f"{lab.USER} ({code})")


def forged_denied(lab: SquidLab, tag: str, checks: Checks, state: str):
    for label, value in (("junk", "1"), ("the right secret", f"{SECRET} crl-files")):
        code = lab.get(CRL_URL + f"?forged-{slug(state)}", ua=CRYPTOAPI,
                       headers=[f"X-Authbypass: {value}"])
        checks.expect(code == 403, f"[{tag}] forged X-Authbypass ({label}), service {state}: "
                      f"denied ({code})")
    code = lab.get("http://www.example.com/forged", ua=BROWSER, user=lab.USER,
                   headers=[f"X-Authbypass: {SECRET} crl-files"])
    checks.expect(code == 403, f"[{tag}] ... also with credentials ({code})")
    code = lab.connect("login.microsoftonline.com:443", ua=MSOIDCRL,
                       headers=[f"X-Authbypass: {SECRET} msoidcrl-signin"])
    checks.expect(code == 403, f"[{tag}] ... and on a CONNECT ({code})")


def origin_clean(lab: SquidLab, tag: str, checks: Checks):
    bad = []
    for r in lab.origin.requests + lab.tunnel.requests:
        for k, v in r.get("headers") or []:
            if k.lower() == "x-authbypass" or (k.lower() == "via" and "ICAP" in v):
                bad.append((r.get("path") or r.get("host"), k, v[:40]))
    n = len(lab.origin.requests) + len(lab.tunnel.requests)
    checks.expect(not bad and n > 0, f"[{tag}] neither X-Authbypass nor c-icap's Via reached the "
                  f"origin ({n} requests)", str(bad[:3]))


def squid_prefiltered(cli, helper, module, policy, data, tmp, checks, started):
    tag = "prefilter"
    print(f"\n######## Squid + c-icap (Mode both), the generated drop-in ({tag}, REQMOD bypass=1)")
    ic = CIcap(module, policy, mode="both", secret=SECRET, verbose=True)
    lab = None
    try:
        ic.start()
        started.append(ic.proc.pid)
        old_file = write_secret_file(tmp, "old-secret", SECRET)
        conf = squid_conf(cli, policy, old_file, ic.url)
        checks.expect("bypass=1" in conf and "allow authbypass_candidates" in conf
                      and re.search(r"(?m)^http_access deny authbypass_client_mark$", conf),
                      f"[{tag}] the generated drop-in: guard, prefilter, REQMOD bypass=1")
        lab = SquidLab(helper, policy, bypass_access=conf, verbose=True)
        lab.start()
        started.append(lab.squid.pid)
        out = os.path.join(lab.dir, "dl")
        lab.origin.serve("/pki/lab.crl", file=data["crl.der"], content_type="application/pkix-crl")
        lab.origin.serve("/pki/fake.crl", file=data["page.html"], content_type="text/html")
        lab.origin.serve("/ocsp", file=data["ocsp-resp.der"],
                         content_type="application/ocsp-response")
        seed_scenario(lab, ic, tag, checks, data)

        print("== OCSP POST, impostor")
        r = lab.download("http://ocsp.digicert.com/ocsp", out, ua=CRYPTOAPI,
                         data_file=data["ocsp-req.der"], content_type="application/ocsp-request")
        checks.expect(r["status"] == 200 and sha(out) == sha(data["ocsp-resp.der"]),
                      f"[{tag}] OCSP POST with a real request: 200, the responder's answer", str(r))
        r = lab.download("http://ocsp.digicert.com/ocsp?junk", out, ua=CRYPTOAPI,
                         data_file=data["junk1m.bin"], content_type="application/ocsp-request")
        posts = [q for q in lab.origin.requests if q["method"] == "POST"]
        checks.expect(r["status"] == 403 and len(posts) == 1,
                      f"[{tag}] OCSP POST with 1 MB of junk: 403, never reaches the origin", str(r))
        r = lab.download("http://crl.lab-ca.test/pki/fake.crl", out, ua=CRYPTOAPI)
        checks.expect(r["status"] == 403, f"[{tag}] HTML named .crl: 403 (RESPMOD, Mode both)",
                      str(r))

        print("== forged marks, the origin, the prefilter, the audit trail")
        forged_denied(lab, tag, checks, "up")
        origin_clean(lab, tag, checks)
        before = reqmod_count(ic)
        for i in range(10):
            lab.get(f"http://www.example.com/not-a-candidate/{i}", ua=BROWSER)
        time.sleep(0.3)
        checks.expect(reqmod_count(ic) == before, f"[{tag}] non-candidates never reach the REQMOD "
                      f"service ({reqmod_count(ic) - before} REQMODs for 10 requests)")
        time.sleep(0.3)
        bypass = [e for e in ic.audit_events() if e.get("event") == "bypass"]
        urls = sorted(e["url"] for e in bypass)
        want = sorted([CRL_URL, "login.microsoftonline.com:443", "http://ocsp.digicert.com/ocsp",
                       "http://crl.lab-ca.test/pki/fake.crl"])
        checks.expect(urls == want, f"[{tag}] one bypass event per bypassed request ({len(urls)})",
                      str(urls))
        checks.expect(all(e.get("component") == "icap" and e.get("rule") for e in bypass),
                      f"[{tag}] ... component icap, with the rule")

        print("== rotation: Squid accepts both secrets while c-icap switches")
        new_file = write_secret_file(tmp, "new-secret", NEW_SECRET)
        conf2 = squid_conf(cli, policy, new_file, ic.url, "--previous-secret-file", old_file)
        checks.expect(f"^{NEW_SECRET}\\s ^{SECRET}\\s" in conf2,
                      f"[{tag}] --previous-secret-file: two acl values")
        reconfigure(lab, conf2)
        codes: list[int] = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                codes.append(lab.get(CRL_URL + f"?rot{i}", ua=CRYPTOAPI))
                i += 1
        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.5)
        ic.write_secret(NEW_SECRET + "\n")
        time.sleep(2.5)
        stop.set()
        t.join(30)
        checks.expect(codes and all(c == 200 for c in codes),
                      f"[{tag}] {len(codes)} CRL requests while c-icap switched secrets: all 200",
                      str([c for c in codes if c != 200][:5]))
        reconfigure(lab, squid_conf(cli, policy, new_file, ic.url))
        code = lab.get(CRL_URL + "?after-rotation", ua=CRYPTOAPI)
        checks.expect(code == 200, f"[{tag}] after the old secret is dropped: 200 ({code})")

        print("== c-icap down (REQMOD bypass=1)")
        ic.stop()
        code = lab.get(CRL_URL + "?down", ua=CRYPTOAPI)
        checks.expect(code == 407, f"[{tag}] c-icap down: no bypass, the CRL request is "
                      f"authenticated ({code})")
        code = lab.connect("login.microsoftonline.com:443", ua=MSOIDCRL)
        checks.expect(code == 407, f"[{tag}] c-icap down: the CONNECT is authenticated ({code})")
        code = lab.get("http://www.example.com/down", ua=BROWSER, user=lab.USER)
        checks.expect(code == 200, f"[{tag}] c-icap down: authenticated traffic flows ({code})")
        forged_denied(lab, tag, checks, "down (bypass=1)")
        origin_clean(lab, tag, checks)
        crashes = re.findall(r".*(?:FATAL|assertion failed).*", lab.read(lab.cache_log))
        checks.expect(not crashes, f"[{tag}] cache.log: no FATAL errors", " | ".join(crashes[:3]))
    except (LabError, IcapLabError, OSError) as e:
        checks.failures.append(f"[{tag}] lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures:
            if lab and lab.dir:
                print(lab.tail(lab.cache_log, 20))
                print(lab.tail(lab.access_log, 20))
            if ic.dir:
                print(ic.tail(ic.server_log, 20))
        if lab:
            lab.stop()
        ic.stop()
    checks.expect(not ic.leftover_pids and not (lab and lab.leftover_pids),
                  f"[{tag}] c-icap children and Squid helpers exited with their parents")


def reconfigure(lab: SquidLab, conf: str):
    """Replaces the drop-in part of the lab's squid.conf and runs squid -k reconfigure."""
    lab.bypass_access = conf
    lab._write_conf()
    r = subprocess.run(["squid", "-k", "reconfigure", "-f", lab.conf], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise LabError(f"squid -k reconfigure failed: {r.stderr}")
    time.sleep(1.0)
    ok = lab.wait_for(lambda: lab.get("http://www.example.com/ready", user=lab.USER, timeout=3)
                      == 200, timeout=15, interval=0.3)
    if not ok:
        raise LabError("squid not answering after reconfigure")


def squid_unfiltered(cli, helper, module, policy, data, tmp, checks, started):
    tag = "no-prefilter, bypass=0"
    print(f"\n######## Squid + c-icap: --no-prefilter, REQMOD bypass=0")
    ic = CIcap(module, policy, mode="both", secret=SECRET, verbose=True)
    lab = None
    try:
        ic.start()
        started.append(ic.proc.pid)
        conf = squid_conf(cli, policy, write_secret_file(tmp, "s-unf", SECRET), ic.url,
                          "--no-prefilter")
        conf = conf.replace("reqmod_precache bypass=1", "reqmod_precache bypass=0")
        checks.expect("adaptation_access authbypass_req allow all" in conf
                      and "reqmod_precache bypass=0" in conf, f"[{tag}] the drop-in variant")
        lab = SquidLab(helper, policy, bypass_access=conf, verbose=True)
        lab.start()
        started.append(lab.squid.pid)
        lab.origin.serve("/pki/lab.crl", file=data["crl.der"], content_type="application/pkix-crl")
        seed_scenario(lab, ic, tag, checks, data)
        before = reqmod_count(ic)
        for i in range(5):
            lab.get(f"http://www.example.com/every/{i}", ua=BROWSER)
        time.sleep(0.3)
        checks.expect(reqmod_count(ic) - before == 5, f"[{tag}] every request without credentials "
                      f"goes to REQMOD ({reqmod_count(ic) - before} of 5), and gets 407")
        forged_denied(lab, tag, checks, "up")
        origin_clean(lab, tag, checks)

        print("== c-icap down (REQMOD bypass=0)")
        ic.stop()
        code = lab.get(CRL_URL + "?down", ua=CRYPTOAPI)
        checks.expect(code not in (0, 200), f"[{tag}] c-icap down: no bypass (HTTP {code})")
        code = lab.connect("login.microsoftonline.com:443", ua=MSOIDCRL)
        checks.expect(code != 200, f"[{tag}] c-icap down: no tunnel ({code})")
        code = lab.get("http://www.example.com/down", ua=BROWSER, user=lab.USER)
        checks.expect(code == 200, f"[{tag}] c-icap down: authenticated traffic (not sent to "
                      f"REQMOD) flows ({code})")
        forged_denied(lab, tag, checks, "down (bypass=0)")
        origin_clean(lab, tag, checks)
    except (LabError, IcapLabError, OSError) as e:
        checks.failures.append(f"[{tag}] lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures and lab and lab.dir:
            print(lab.tail(lab.cache_log, 20))
        if lab:
            lab.stop()
        ic.stop()


def squid_unguarded(cli, helper, module, policy, data, tmp, checks, started):
    tag = "no guard"
    print(f"\n######## Squid + c-icap without `http_access deny authbypass_client_mark`")
    ic = CIcap(module, policy, mode="both", secret=SECRET, verbose=True)
    lab = None
    try:
        ic.start()
        started.append(ic.proc.pid)
        conf = squid_conf(cli, policy, write_secret_file(tmp, "s-ung", SECRET), ic.url,
                          "--no-prefilter")
        conf = conf.replace("http_access deny authbypass_client_mark\n", "")
        lab = SquidLab(helper, policy, bypass_access=conf, verbose=True)
        lab.start()
        started.append(lab.squid.pid)
        code = lab.get("http://www.example.com/x", ua=BROWSER,
                       headers=[f"X-Authbypass: {SECRET} crl-files"])
        checks.expect(code == 407, f"[{tag}] service up: the right secret sent by a client is "
                      f"stripped by the service: 407 ({code})")
        code = lab.get(CRL_URL + "?ung", ua=CRYPTOAPI, headers=["X-Authbypass: junk"])
        checks.expect(code == 407, f"[{tag}] ... and a forged bypass candidate is never marked: "
                      f"407 ({code})")
        time.sleep(0.3)
        fe = [e for e in ic.audit_events() if e.get("verdict") == "forged mark removed"]
        checks.expect(len(fe) == 2, f"[{tag}] ... each audited as a forged mark ({len(fe)})")
        code = lab.get("http://www.example.com/ung-auth", ua=BROWSER, user=lab.USER,
                       headers=[f"X-Authbypass: {SECRET} crl-files"])
        # Authenticated in http_access, so REQMOD (which strips marks) is skipped and the
        # client's own mark reaches RESPMOD; Squid 5.7 sends no X-Authenticated-User there.
        # A marked response the service's policy does not bypass is checked with the named
        # rule's verify (crl): the origin's text is refused.
        checks.expect(code == 403, f"[{tag}] with credentials and its own mark: RESPMOD checks "
                      f"it as the named rule's verify, not revocation data: 403 ({code})")
        ic.stop()
        code = lab.get("http://www.example.com/y", ua=BROWSER, headers=["X-Authbypass: junk"])
        checks.expect(code == 407, f"[{tag}] service down (bypass=1): a wrong value is "
                      f"authenticated, the secret stands ({code})")
        code = lab.get("http://www.example.com/ung-auth2", ua=BROWSER, user=lab.USER,
                       headers=["X-Authbypass: junk"])
        checks.expect(code == 200, f"[{tag}] service down, with credentials and a forged header: "
                      f"200 ({code})")
        code = lab.get("http://www.example.com/z", ua=BROWSER,
                       headers=[f"X-Authbypass: {SECRET} crl-files"])
        checks.expect(code not in (0, 407), f"[{tag}] service down: the right secret from a client "
                      f"gets past adapted_http_access (only the secret stood: why the guard is "
                      f"required; RESPMOD, bypass=0, then fails it closed: {code})")
        origin_clean(lab, tag, checks)
    except (LabError, IcapLabError, OSError) as e:
        checks.failures.append(f"[{tag}] lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures and lab and lab.dir:
            print(lab.tail(lab.cache_log, 20))
        if lab:
            lab.stop()
        ic.stop()


def main(argv) -> int:
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    cli, helper, module, policy, data_dir = argv[1:]
    if not squid_available() or not c_icap_available():
        print("SKIP: squid / curl / openssl / c-icap not installed (scripts/setup installs them)")
        return 77
    data = {n: os.path.join(data_dir, n) for n in os.listdir(data_dir)}
    checks = Checks()
    started: list[int] = []
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="icap-decide-")
    try:
        cli_checks(cli, policy, tmp, checks)
        service_checks(module, policy, data, checks, started)
        squid_prefiltered(cli, helper, module, policy, data, tmp, checks, started)
        squid_unfiltered(cli, helper, module, policy, data, tmp, checks, started)
        squid_unguarded(cli, helper, module, policy, data, tmp, checks, started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n== cleanup")
    for pid in started:
        checks.expect(stopped(pid), f"pid {pid} stopped")
    print(f"({time.monotonic() - t0:.1f} s)")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
