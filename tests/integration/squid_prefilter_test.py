#!/usr/bin/python3
"""Integration test: the prefilter `authbypass squid-config` derives from the shipped policy,
in a real Squid 5.7. Non-candidate requests never reach the helper (it counts every line
it answers in its --stats-file); every candidate still does and gets its answer.

usage: squid_prefilter_test.py HELPER AUTHBYPASS_CLI POLICY
Exit status: 0 passed, 1 failed, 77 Squid not installed.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True
from lab.squid import LabError, SquidLab, prefilter_access, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
MSOSIA = "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 6.1; MSOIDCRL 7.250.4303.0; App msoidsvc.exe)"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) squidlab"

# (method, url, ua, with credentials, expected status, a candidate?)
CASES = [
    ("GET", "http://crl.verisign.com/pca3.crl", CRYPTOAPI, False, 200, True),
    ("GET", "http://crl.sectigo.com/Sectigo.crl", CRYPTOAPI, False, 200, True),
    ("GET", "http://www.microsoft.com/pki/certs/MicRooCerAut.crt", CRYPTOAPI, False, 200, True),
    ("GET", "http://ocsp.digicert.com/MFEwTzBNMEswSTAJ", CRYPTOAPI, False, 200, True),
    ("CONNECT", "login.microsoftonline.com:443", MSOSIA, False, 200, True),
    ("GET", "http://evil.test/x.exe", CRYPTOAPI, False, 407, True),   # the shadow rule's UA
    ("GET", "http://www.microsoft.com/en-us/", BROWSER, False, 407, False),  # host listed, path not
    ("GET", "http://www.example.com/", BROWSER, False, 407, False),
    ("GET", "http://news.example.org/a/b.html?q=1", BROWSER, False, 407, False),
    ("GET", "http://cdn.example.net/app.js", "curl/7.88.1", False, 407, False),
    ("CONNECT", "www.example.com:443", BROWSER, False, 407, False),
    ("CONNECT", "login.microsoftonline.com:443", BROWSER, False, 407, False),  # no MSOIDCRL
    ("GET", "http://www.example.com/", BROWSER, True, 200, False),
    ("POST", "http://upload.example.com/form", BROWSER, True, 200, False),
]


def main(argv) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    helper, cli, policy = argv[1:]
    if not squid_available():
        print("squid, basic_ncsa_auth, curl or openssl missing: skipped")
        return 77
    access = prefilter_access(cli, policy)
    stats_dir = tempfile.mkdtemp(prefix="authbypass-prefilter-")
    os.chmod(stats_dir, 0o777)  # the helper runs as Squid's user
    failures = []
    try:
        with SquidLab(helper, policy, bypass_access="\n".join(access),
                      no_helper_cache_because="counts the requests that reach the helper",
                      helper_args=["--stats-file", os.path.join(stats_dir, "stats-%p.json")]) as lab:
            for method, url, ua, creds, want, _cand in CASES:
                user = lab.USER if creds else None
                got = (lab.connect(url, ua=ua, user=user) if method == "CONNECT"
                       else lab.get(url, ua=ua, method=method, user=user))
                ok = got == want
                print(f"  {'ok  ' if ok else 'FAIL'}  {method} {url} ({'creds' if creds else ua[:24]}): "
                      f"{got}, expected {want}")
                if not ok:
                    failures.append(f"{method} {url}: {got}, expected {want}")
            candidates = sum(1 for c in CASES if c[5])
            # The helpers write their counters within a second of going idle.
            deadline = time.time() + 10
            answered = -1
            while time.time() < deadline:
                answered = 0
                for f in glob.glob(os.path.join(stats_dir, "stats-*.json")):
                    try:
                        answered += json.load(open(f))["lines"]
                    except (OSError, ValueError, KeyError):
                        pass
                if answered >= candidates:
                    break
                time.sleep(0.3)
            time.sleep(1.5)
            answered = sum(json.load(open(f))["lines"]
                           for f in glob.glob(os.path.join(stats_dir, "stats-*.json")))
            ok = answered == candidates
            print(f"  {'ok  ' if ok else 'FAIL'}  the helper answered {answered} lines for "
                  f"{candidates} candidate requests (of {len(CASES)} in all)")
            if not ok:
                failures.append(f"helper answered {answered} lines, expected {candidates}")
    except LabError as e:
        failures.append(f"lab error: {e}")
    finally:
        shutil.rmtree(stats_dir, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
