#!/usr/bin/python3
"""Integration test: nothing reaches an unauthenticated client from Squid's cache that the
ICAP check did not pass for that delivery. Real Squid 5.7 running like a deployment
(Debian's memory cache, helper ttl=60 negative_ttl=60) with the configuration exactly as
written by `authbypass squid-config` (helper mode, and decision mode `--mode icap` with
and without its prefilter) and by the shipped drop-in config/squid/authbypass.conf (uncommented), in front of a real
c-icap 0.5.10 with srv_authbypass.so (authbypass.Verify full).

usage: cache_hole_test.py CLI HELPER MODULE POLICY DATA_DIR

The policy is the shipped one with crl-files narrowed to CryptoAPI's User-Agent (as a
site tightens it). A Windows program (MZ) named .crl is served by an attacker's origin,
cacheable (Cache-Control: max-age, Last-Modified, ETag). For each configuration:
  (a) a user with credentials fetches it with a browser (not bypassed, so not checked);
      then a client without credentials fetches it as CryptoAPI (bypassed), also with
      `Cache-Control: no-store` (Squid skips its `cache` rules for a request it deems
      uncacheable, yet looks it up and serves a hit);
  (b) the same staged by a user with credentials whose request the helper answers ERR
      (a User-Agent with invalid UTF-8; one over 4 KB), so it is authenticated and never
      checked; a client without credentials sending those User-Agents gets 407 (it
      cannot stage anything);
  (c) a must-revalidate program (max-age=0): the origin answers Squid's revalidation
      with 304;
  (d) a Range: request (bytes=0-99 and a slice in the middle), and If-Range; and a slice
      of a checked object: a CRL whose (non-critical, unknown) extension carries the
      program passes the check as a whole; with `range_offset_limit -1` (set by the
      usual Windows Update caching recipes, and in this lab) Squid fetches the whole
      object and cuts the requested slice, the program, out of it itself;
  (e) decision mode: an authenticated fetch (no REQMOD, no RESPMOD) stages it, then a
      marked request gets it (also with `Cache-Control: no-store`).
The bypassed client must get none of the program's bytes (403 page, 407, or a cut
transfer that carries none of it), and the access log must show no cache hit for it.
Then: every bypassed request of the run left exactly one ICAP audit event (helper mode:
Squid's %ea names a rule; decision mode: an unauthenticated request that was not
challenged), and a genuine CRL still goes through (200, byte-identical, verified).
Exit status: 0 passed, 1 failed, 77 Squid or c-icap not installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

from lab.checks import Checks, stopped  # noqa: E402
from lab.cicap import CIcap, IcapLabError, c_icap_available  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) squidlab"
BAD_UTF8_UA = CRYPTOAPI + " \udcff\udcfe"  # bytes 0xff 0xfe on the wire
LONG_UA = CRYPTOAPI + " " + "A" * 4200
SECRET = "3c" * 32
CACHEABLE = [("Cache-Control", "max-age=3600"),
             ("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT"), ("ETag", '"prog-1"')]
MUST_REVALIDATE = [("Cache-Control", "max-age=0, must-revalidate"),
                   ("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT"), ("ETag", '"prog-2"')]
HIT = re.compile(r"HIT|REFRESH_UNMODIFIED|REFRESH_IGNORED|REFRESH_FAIL_OLD")


def ua_narrowed_policy(shipped: str) -> str:
    """The shipped policy with crl-files limited to CryptoAPI's User-Agent."""
    old = "    match:\n      path_suffix: [.crl]\n    verify: crl\n"
    if shipped.count(old) != 1:
        raise LabError("the shipped policy's crl-files rule changed: update this test")
    return shipped.replace(old, "    match:\n      path_suffix: [.crl]\n"
                                "      user_agent_regex: ['^Microsoft-CryptoAPI/']\n"
                                "    verify: crl\n")


class Run:
    """One configuration: c-icap + Squid with the given drop-in."""

    def __init__(self, name: str, checks: Checks, data: dict, decide: bool):
        self.name, self.checks, self.data, self.decide = name, checks, data, decide
        self.program = open(data["app.exe"], "rb").read()
        self.lab: SquidLab | None = None
        self.ic: CIcap | None = None
        self.n = 0

    def expect(self, cond, what, detail=""):
        self.checks.expect(cond, f"[{self.name}] {what}", detail)

    def out(self) -> str:
        self.n += 1
        return os.path.join(self.lab.dir, f"dl{self.n}")

    def fetch(self, url, *, ua, user=None, headers=None) -> tuple[dict, bytes]:
        path = self.out()
        r = self.lab.download(url, path, ua=ua, user=user, headers=headers, timeout=30)
        body = open(path, "rb").read() if os.path.exists(path) else b""
        return r, body

    def leaks(self, body: bytes) -> bool:
        """True if the body carries any 64-byte run of the program (or its start)."""
        if self.program[:64] in body or body[:2] == b"MZ":
            return True
        return any(self.program[i:i + 64] in body for i in range(0, len(self.program) - 64, 512))

    def access(self, url: str) -> list[dict]:
        time.sleep(0.1)
        return [e for e in self.lab.access_entries() if e["url"].startswith(url.split("?")[0])]

    def stage(self, path: str, headers, *, ua=BROWSER) -> str:
        url = f"http://evil.test{path}"
        self.lab.origin.serve(path, file=self.data["app.exe"],
                              content_type="application/octet-stream", headers=headers,
                              revalidate=True)
        r, body = self.fetch(url, ua=ua, user=self.lab.USER)
        self.expect(r["status"] == 200 and body == self.program,
                    f"staging {path} with credentials ({ua[:30]}...): the program, 200", str(r))
        return url

    def no_program(self, url: str, what: str, *, headers=None, ua=CRYPTOAPI):
        before = len(self.lab.origin.requests)
        r, body = self.fetch(url, ua=ua, headers=headers)
        hits = [e["status"] for e in self.access(url) if e["user"] == "-" and HIT.search(e["status"])]
        self.expect(not self.leaks(body) and not hits,
                    f"{what}: no program bytes to the client without credentials "
                    f"(HTTP {r['status']}, {len(body)} bytes, curl rc {r['curl_rc']})",
                    f"{r} cache hits in access.log: {hits}")
        return r, before

    # ---- the cases -------------------------------------------------------------------------
    def case_a(self):
        print("== (a) staged by a user with credentials (browser UA: not bypassed)")
        url = self.stage("/a/x.crl", CACHEABLE)
        self.no_program(url, "(a) cached program, then CryptoAPI without credentials")
        # A request that Squid deems uncacheable (request no-store) skips the `cache`
        # rules altogether; Squid still looks it up in its cache and serves a hit.
        self.no_program(url, "(a) the same with Cache-Control: no-store",
                        headers=["Cache-Control: no-store"])

    def case_b(self):
        print("== (b) staged through requests the helper answers ERR")
        for tag, ua in (("invalid UTF-8 UA", BAD_UTF8_UA), ("4 KB UA", LONG_UA)):
            path = f"/b/{'utf8' if ua is BAD_UTF8_UA else 'long'}.crl"
            url = f"http://evil.test{path}"
            self.lab.origin.serve(path, file=self.data["app.exe"],
                                  content_type="application/octet-stream", headers=CACHEABLE)
            r, body = self.fetch(url, ua=ua)
            # 407 (the helper's ERR); decision mode: the service decides (403 when it
            # bypassed and the check refused the program)
            self.expect(r["status"] in (403, 407) and not self.leaks(body),
                        f"(b) {tag} without credentials: HTTP {r['status']}, no program",
                        str(r))
            url = self.stage(path, CACHEABLE, ua=ua)
            self.no_program(url, f"(b) staged with the {tag} and credentials, then CryptoAPI")

    def case_c(self):
        print("== (c) must-revalidate: the origin answers the revalidation with 304")
        url = self.stage("/c/x.crl", MUST_REVALIDATE)
        self.no_program(url, "(c) must-revalidate object, origin answers 304")

    def case_d(self):
        print("== (d) Range and If-Range on a cached program")
        url = self.stage("/d/x.crl", CACHEABLE)
        for hdrs in (["Range: bytes=0-99"], ["Range: bytes=1000-1999"],
                     ["Range: bytes=0-99", 'If-Range: "prog-1"']):
            self.no_program(url, f"(d) {' + '.join(h.split(':')[0] for h in hdrs)} "
                            f"{hdrs[0].split('=')[1]}", headers=hdrs)

    def case_d_slice(self, crl_path: str, offset: int, length: int):
        print("== (d) a slice of a checked CRL that carries the program in an extension")
        path = "/d2/embedded.crl"
        url = f"http://evil.test{path}"
        self.lab.origin.serve(path, file=crl_path, content_type="application/pkix-crl")
        r, body = self.fetch(url, ua=CRYPTOAPI)
        print(f"  (whole object without credentials: HTTP {r['status']}, {len(body)} bytes: "
              "a structurally valid CRL; data inside one is outside the check's promise)")
        self.no_program(url, "(d) Range over the extension of a checked CRL",
                        headers=[f"Range: bytes={offset}-{offset + length - 1}"])

    def case_f(self):
        print("== (f) a negatively cached answer (negative_ttl set): a 404 carrying the program")
        # x%2ecrl: the policy decodes the path once (.crl), Squid's ACLs see it raw
        for path in ("/f/x.crl", "/f/x%2ecrl"):
            url = f"http://evil.test{path}"
            self.lab.origin.serve(path, file=self.data["app.exe"], status=404,
                                  content_type="application/octet-stream")
            r, body = self.fetch(url, ua=CRYPTOAPI if self.decide else BROWSER,
                                 user=self.lab.USER)
            self.expect(r["status"] == 404 and body == self.program,
                        f"staging the 404 of {path} with credentials: the program, 404", str(r))
            for hdrs in ([], ["Cache-Control: no-store"]):
                self.no_program(url, f"(f) negatively cached 404 {path} {' '.join(hdrs)}".rstrip(),
                                headers=hdrs)

    def case_e(self):
        print("== (e) decision mode: an authenticated CryptoAPI fetch stages it")
        url = self.stage("/e/x.crl", CACHEABLE, ua=CRYPTOAPI)
        self.no_program(url, "(e) marked request after an authenticated fetch")
        self.no_program(url, "(e) the same with Cache-Control: no-store",
                        headers=["Cache-Control: no-store"])

    def genuine(self):
        print("== a genuine CRL still goes through the hole, checked")
        path = "/pki/genuine.crl"
        url = f"http://crl.lab-ca.test{path}"
        crl = open(self.data["crl.der"], "rb").read()
        self.lab.origin.serve(path, file=self.data["crl.der"], content_type="application/pkix-crl",
                              headers=CACHEABLE)
        for i in range(2):
            r, body = self.fetch(url, ua=CRYPTOAPI)
            self.expect(r["status"] == 200 and body == crl,
                        f"genuine CRL without credentials, fetch {i + 1}: 200, byte-identical",
                        str(r))
        evs = [e for e in self.ic.audit_events() if e.get("url") == url
               and e.get("event") == "verified"]
        self.expect(len(evs) == 2, f"two fetches, two `verified` events ({len(evs)})", str(evs))

    def audit_count(self):
        print("== every bypassed request left one ICAP audit event")
        time.sleep(0.3)
        entries = [e for e in self.lab.access_entries() if e["ua"] != "squidlab-readiness"]
        if self.decide:
            bypassed = [e for e in entries if e["user"] == "-" and e["code"] != 407
                        and e["method"] != "CONNECT"]
            evs = [e for e in self.ic.audit_events() if e.get("event") == "bypass"]
        else:
            bypassed = [e for e in entries if e["ea"] not in ("", "-")]
            evs = [e for e in self.ic.audit_events() if e.get("event") in ("verified", "blocked")]
        self.expect(len(bypassed) > 0 and len(bypassed) == len(evs),
                    f"{len(bypassed)} bypassed requests in Squid's access log, "
                    f"{len(evs)} ICAP audit events",
                    "\n".join(e["line"] for e in bypassed))
        served = [e["line"] for e in bypassed if HIT.search(e["status"])]
        self.expect(not served, "no bypassed request was answered from Squid's cache",
                    "\n".join(served))


def crl_carrying_program(data: dict, tmp: str, length: int = 4096) -> tuple[str, int]:
    """A CRL signed by the test CA whose extension 1.3.6.1.4.1.55555.1 holds the first
    `length` bytes of the program; (path, offset of those bytes in the file)."""
    d = os.path.join(tmp, "embedded-crl")
    os.makedirs(d, exist_ok=True)
    program = open(data["app.exe"], "rb").read()[:length]
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = lab\n[lab]\ndatabase = index.txt\ncrlnumber = crlnumber\n"
                "default_md = sha256\ndefault_crl_days = 30\ncrl_extensions = crl_ext\n"
                f"[crl_ext]\n1.3.6.1.4.1.55555.1 = DER:{program.hex()}\n")
    for cmd in (["openssl", "ca", "-batch", "-config", "ca.cnf", "-gencrl", "-keyfile",
                 data["ca.key"], "-cert", data["ca.pem"], "-out", "e.pem"],
                ["openssl", "crl", "-in", "e.pem", "-outform", "DER", "-out", "e.crl"]):
        subprocess.run(cmd, cwd=d, check=True, capture_output=True, timeout=60)
    path = os.path.join(d, "e.crl")
    offset = open(path, "rb").read().find(program)
    if offset < 0:
        raise LabError("the program is not in the generated CRL")
    os.chmod(d, 0o755)
    os.chmod(path, 0o644)
    return path, offset


def run(name: str, cli, helper, module, policy, data, tmp, checks, started, *, decide=False,
        shipped=False, args: tuple[str, ...] = ()):
    print(f"\n######## {name}", flush=True)
    ic = CIcap(module, policy, verify="full", verbose=True,
               **({"mode": "both", "secret": SECRET} if decide else {}))
    lab = None
    t = Run(name, checks, data, decide)
    try:
        ic.start()
        started.append(ic.proc.pid)
        if shipped:
            dropin = SquidLab.shipped_dropin()
        elif decide:
            secret_file = os.path.join(tmp, "secret")
            with open(secret_file, "w") as f:
                f.write(SECRET + "\n")
            os.chmod(secret_file, 0o600)
            dropin = SquidLab.generated_dropin(cli, policy, "--mode", "icap", "--secret-file",
                                               secret_file, "--clients", "localhost", *args)
        else:
            dropin = SquidLab.generated_dropin(cli, policy)
        # range_offset_limit -1: the admin's own line, as Windows Update caching recipes
        # have it (Squid fetches whole objects for Range requests and cuts the slice);
        # negative_ttl: an admin's too (Squid caches 4xx answers, bodies included)
        lab = SquidLab(helper, policy, dropin=dropin, icap_port=ic.port, verbose=True,
                       extra_conf="range_offset_limit -1\nnegative_ttl 300 seconds\n")
        t.lab, t.ic = lab, ic
        lab.start()
        started.append(lab.squid.pid)
        conf = open(lab.conf).read()
        t.expect("cache deny all" not in conf and "ttl=60 negative_ttl=60" in lab.dropin_text()
                 if not decide else "cache deny all" not in conf,
                 "the lab runs like a deployment (memory cache on, helper ttl as written)")
        t.case_a()
        t.case_b()
        t.case_c()
        t.case_d()
        t.case_d_slice(*crl_carrying_program(data, tmp), 4096)
        t.case_f()
        if decide:
            t.case_e()
        t.genuine()
        t.audit_count()
    except (LabError, IcapLabError, OSError, subprocess.SubprocessError) as e:
        checks.failures.append(f"[{name}] lab error: {e}")
        print(f"  FAIL  lab error: {e}", flush=True)
    finally:
        if checks.failures and lab and lab.dir:
            print(lab.tail(lab.access_log, 40))
            print(lab.tail(lab.cache_log, 20))
        if lab:
            lab.stop()
        ic.stop()
    checks.expect(not ic.leftover_pids and not (lab and lab.leftover_pids),
                  f"[{name}] c-icap children and helpers exited with their parents")


def main(argv) -> int:
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    cli, helper, module, policy_src, data_dir = argv[1:]
    if not squid_available() or not c_icap_available():
        print("SKIP: squid / curl / openssl / c-icap not installed (scripts/setup installs them)")
        return 77
    data = {n: os.path.abspath(os.path.join(data_dir, n)) for n in os.listdir(data_dir)}
    checks = Checks()
    started: list[int] = []
    with tempfile.TemporaryDirectory(prefix="cache-hole-") as tmp:
        policy = os.path.join(tmp, "policy.yaml")
        with open(policy_src) as f, open(policy, "w") as g:
            g.write(ua_narrowed_policy(f.read()))
        os.chmod(tmp, 0o755)
        os.chmod(policy, 0o644)
        only = os.environ.get("CACHE_HOLE_ONLY", "")
        for name, kw in (("squid-config", {}), ("shipped drop-in", {"shipped": True}),
                         ("squid-config --mode icap", {"decide": True}),
                         ("squid-config --mode icap --no-prefilter",
                          {"decide": True, "args": ("--no-prefilter",)})):
            if not only or only == name:
                run(name, cli, helper, module, policy, data, tmp, checks, started, **kw)
    for pid in started:
        checks.expect(stopped(pid), f"pid {pid} stopped")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
