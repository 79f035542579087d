#!/usr/bin/python3
"""Demo: the seed scenario through a real Squid with ext_authbypass_acl.

usage: demo.py HELPER POLICY [ICAP_MODULE]

Starts Squid + helper + a loopback origin (tests/lab/squid.py; every request goes to 127.0.0.1,
the host names in the URLs are never resolved), plays the seed scenario (CryptoAPI CRL
fetches, the Sign-In Assistant's CONNECT, a browser without and with credentials, the
evasions), prints a table of expected and actual answers, the helper's audit log and
Squid's access log (%ea / %et name the rule), then stops everything. With ICAP_MODULE
(srv_authbypass.so) it then adds c-icap behind the same Squid and shows what may pass
through the hole: a genuine CRL is verified and delivered, an executable named .crl is
blocked (403), each with its audit event.
Exit status 1 if any row (or log check) fails, 77 if Squid is not installed.
"""

from __future__ import annotations

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from lab import scenarios  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

BOLD, RESET = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


def heading(text: str):
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def icap_part(helper: str, policy: str, module: str) -> list[str]:
    """Squid + helper + c-icap with srv_authbypass: a verified CRL, a blocked impostor."""
    import subprocess
    import tempfile
    from lab.cicap import CIcap, IcapLabError, c_icap_available  # noqa: E402
    from lab.squid import dropin_icap_conf  # noqa: E402
    if not c_icap_available():
        return ["c-icap is not installed: run scripts/setup"]
    failures = []
    data = tempfile.mkdtemp(prefix="authbypass-demo-")
    try:
        sh = f"""set -e; cd {data}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -subj /CN=Demo-CA -days 30 2>/dev/null
printf 'R\t351231000000Z\t260101000000Z\t10\tunknown\t/CN=revoked\n' > index.txt; echo 01 > crlnumber
printf '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\ndefault_crl_days=7\ncertificate=ca.pem\nprivate_key=ca.key\n' > ca.cnf
openssl ca -config ca.cnf -gencrl -out crl.pem 2>/dev/null; openssl crl -in crl.pem -outform DER -out crl.der
chmod -R a+rX {data}"""
        subprocess.run(["sh", "-c", sh], check=True)
        with open(os.path.join(data, "update.exe"), "wb") as f:  # a Windows program
            f.write(b"MZ\x90\x00\x03\x00\x00\x00This program cannot be run in DOS mode"
                    + os.urandom(50000))
        with CIcap(module, policy) as ic:
            with SquidLab(helper, policy, bypass_access=dropin_icap_conf(ic.port, (2, 3)),
                          extra_conf=dropin_icap_conf(ic.port, (5,))) as lab:
                heading(f"Adding c-icap {ic.url} with srv_authbypass.so: what passes through "
                        "the hole must be revocation data")
                lab.origin.serve("/pki/DemoCA.crl", file=f"{data}/crl.der",
                                 content_type="application/pkix-crl")
                lab.origin.serve("/update.crl", file=f"{data}/update.exe",
                                 content_type="application/octet-stream")
                rows = [("request (no credentials, CryptoAPI UA)", "expected", "got", "result")]
                for label, url, want, same in [
                    ("GET http://crl.verisign.com/pki/DemoCA.crl (a genuine CRL)",
                     "http://crl.verisign.com/pki/DemoCA.crl", 200, f"{data}/crl.der"),
                    ("GET http://evil.example.test/update.crl (a program named .crl)",
                     "http://evil.example.test/update.crl", 403, None)]:
                    out = os.path.join(data, "dl")
                    r = lab.download(url, out, ua="Microsoft-CryptoAPI/10.0")
                    ok = r["status"] == want
                    if same:
                        ok = ok and open(out, "rb").read() == open(same, "rb").read()
                    rows.append((label, f"{want}" + (" byte-identical" if same else " blocked"),
                                 str(r["status"]), "OK" if ok else "FAIL"))
                    if not ok:
                        failures.append(f"{label}: got {r}")
                w = [max(len(r[i]) for r in rows) for i in range(4)]
                for r in rows:
                    print("  ".join(f"{v:<{w[i]}}" for i, v in enumerate(r)))
                heading(f"ICAP audit log ({ic.audit_log}): one event per bypassed request")
                for e in ic.audit_events():
                    keep = {k: e[k] for k in ("ts", "event", "rule", "url", "status", "content_type",
                                              "bytes", "verdict", "reason") if k in e}
                    print(json.dumps(keep, ensure_ascii=False))
    except (IcapLabError, LabError, subprocess.CalledProcessError, OSError) as e:
        failures.append(f"ICAP demo: {e}")
    finally:
        subprocess.run(["rm", "-rf", data])
    return failures


def main(argv) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    if not squid_available():
        print("demo: squid, basic_ncsa_auth, curl or openssl missing: run scripts/setup",
              file=sys.stderr)
        return 77
    cases = [scenarios.Case(**{k: getattr(c, k) for k in
                               ("label", "method", "url", "ua", "expect", "rule", "user")})
             for c in scenarios.SEED]
    try:
        with SquidLab(argv[1], argv[2]) as lab:
            heading(f"Squid 5.7 on {lab.proxy_url}: ext_authbypass_acl before proxy_auth "
                    f"(user {lab.USER}), origin on 127.0.0.1:{lab.origin.port}")
            for c in cases:
                scenarios.run_case(lab, c)
            print(scenarios.table(cases))
            log_failures = scenarios.check_logs(lab, cases)

            heading(f"Audit log ({lab.audit_log}): one JSON line per bypass / shadow match")
            for e in lab.audit_events():
                keep = {k: e[k] for k in ("ts", "event", "rule", "method", "url", "src",
                                          "user_agent", "file", "reason") if k in e}
                print(json.dumps(keep, ensure_ascii=False))

            heading("Squid's access log: %ea (the helper's log=) and %et (its tag=) "
                    "name the rule; %un the user")
            rows = [("status", "method", "url", "user (%un)", "%ea", "%et")]
            rows += [(e["status"], e["method"], e["url"], e["user"], e["ea"], e["et"])
                     for e in lab.access_entries() if e["ua"] != "squidlab-readiness"]
            w = [max(len(r[i]) for r in rows) for i in range(5)]
            for r in rows:
                print("  ".join(f"{v:<{w[i]}}" for i, v in enumerate(r[:5])) + "  " + r[5])
    except LabError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1

    if len(argv) == 4:
        log_failures += icap_part(argv[1], argv[2], argv[3])

    failed = [c for c in cases if not c.ok]
    heading("Result")
    for f in log_failures:
        print(f"FAIL  {f}")
    print(f"{len(cases) - len(failed)} of {len(cases)} requests answered as expected"
          + ("" if not log_failures else f"; {len(log_failures)} log check(s) failed"))
    return 1 if failed or log_failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
