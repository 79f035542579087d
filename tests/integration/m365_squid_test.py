#!/usr/bin/python3
"""Integration test: the policy `authbypass m365 import --service-areas Skype,Common --connect`
makes from the test excerpt of the Worldwide list, with the prefilter `squid-config`
derives from it, in a real Squid 5.7 (no ICAP service: this checks who skips
authentication, not what comes back). OCSP POST to a responder under a wildcard of the
revocation set (sr.symcd.com under *.symcd.com) passes without credentials; CONNECT to
customer-hosting domains the list names (an Azure Storage account, Media Services
streaming hosts, Azure CDN) asks for them (407); the required sets' hosts still tunnel.

usage: m365_squid_test.py HELPER AUTHBYPASS_CLI SOURCE_DIR
Exit status: 0 passed, 1 failed, 77 Squid not installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

sys.dont_write_bytecode = True
from lab.squid import LabError, SquidLab, prefilter_access, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
OCSP_TYPE = "Content-Type: application/ocsp-request"

# (method, url or host:port, expected status without credentials)
CASES = [
    ("POST", "http://sr.symcd.com/", 200),            # wildcard responder: m365-125-ocsp-post
    ("POST", "http://ocsp.entrust.net/", 200),
    ("POST", "http://ocsp.digicert.com/", 200),       # named responder: m365-125-ocsp
    ("GET", "http://s.symcb.com/pca3-g5.crl", 200),   # wildcard, GET: m365-125
    ("POST", "http://crl.globalsign.com/", 407),      # a CRL host takes no POST
    ("POST", "http://sr.symcd.com.evil.test/", 407),
    ("CONNECT", "login.microsoftonline.com:443", 200),  # set 56, required
    ("CONNECT", "teams.microsoft.com:443", 200),        # set 12, required
    ("CONNECT", "mlccdn.blob.core.windows.net:443", 407),  # set 27: optional, Azure Storage
    ("CONNECT", "evil.blob.core.windows.net:443", 407),
    ("CONNECT", "x.streaming.mediaservices.windows.net:443", 407),
    ("CONNECT", "az1.vo.msecnd.net:443", 407),           # *.msecnd.net covers Azure CDN
    ("CONNECT", "aadcdn.msecnd.net:443", 407),
]


def host_of(target: str) -> str:
    return urlsplit(target).hostname if "://" in target else target.rsplit(":", 1)[0]


def main(argv) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    helper, cli, src = argv[1:]
    if not squid_available():
        print("squid, basic_ncsa_auth, curl or openssl missing: skipped")
        return 77
    data = os.path.join(src, "tests", "data", "m365")
    work = tempfile.mkdtemp(prefix="authbypass-m365-")
    policy = os.path.join(work, "m365.yaml")
    failures = []
    try:
        subprocess.run([cli, "m365", "import", os.path.join(data, "endpoints-2024053100.json"),
                        "--version-file", os.path.join(data, "version.json"),
                        "--service-areas", "Skype,Common", "--connect", "--policy-out", policy],
                       capture_output=True, text=True, check=True)
        access = prefilter_access(cli, policy)
        with SquidLab(helper, policy, bypass_access="\n".join(access),
                      hosts=[host_of(c[1]) for c in CASES]) as lab:
            for method, target, want in CASES:
                if method == "CONNECT":
                    got = lab.connect(target, ua=CRYPTOAPI)
                else:
                    got = lab.get(target, ua=CRYPTOAPI, method=method,
                                  data="x" if method == "POST" else None,
                                  headers=[OCSP_TYPE] if method == "POST" else None)
                ok = got == want
                print(f"  {'ok  ' if ok else 'FAIL'}  {method} {target}: {got}, expected {want}")
                if not ok:
                    failures.append(f"{method} {target}: {got}, expected {want}")
    except subprocess.CalledProcessError as e:
        failures.append(f"{e.cmd[1:3]} failed: {e.stderr}")
    except LabError as e:
        failures.append(f"lab error: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
