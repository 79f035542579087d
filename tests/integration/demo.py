#!/usr/bin/python3
"""Demo: the seed scenario through a real Squid with ext_authbypass_acl.

usage: demo.py HELPER POLICY

Starts Squid + helper + a loopback origin (squidlab.py; every request goes to 127.0.0.1,
the host names in the URLs are never resolved), plays the seed scenario (CryptoAPI CRL
fetches, the Sign-In Assistant's CONNECT, a browser without and with credentials, the
evasions), prints a table of expected and actual answers, the helper's audit log and
Squid's access log (%ea / %et name the rule), then stops everything.
Exit status 1 if any row (or log check) fails, 77 if Squid is not installed.
"""

from __future__ import annotations

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenarios  # noqa: E402
from squidlab import LabError, SquidLab, squid_available  # noqa: E402

BOLD, RESET = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


def heading(text: str):
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def main(argv) -> int:
    if len(argv) != 3:
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

    failed = [c for c in cases if not c.ok]
    heading("Result")
    for f in log_failures:
        print(f"FAIL  {f}")
    print(f"{len(cases) - len(failed)} of {len(cases)} requests answered as expected"
          + ("" if not log_failures else f"; {len(log_failures)} log check(s) failed"))
    return 1 if failed or log_failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
