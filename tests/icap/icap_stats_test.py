#!/usr/bin/python3
"""authbypass.StatsFile: each c-icap child keeps a snapshot of its counters, and
`authbypass report` shows them beside the helper's.

usage: icap_stats_test.py CLI MODULE DATA_DIR

A real c-icap (2 children) with authbypass.StatsFile DIR/icap-%p.json:
  1. N genuine CRLs (204) and M impostors (403 pages) for a `verify: crl` rule, one
     CONNECT refused (403);
  2. within a few seconds (each child writes at most once a second), the snapshots of the
     children, summed, count N verified_crl and M + 1 blocked; each is one JSON object
     {"stats":"srv_authbypass",...} naming a c-icap child's PID and the policy's sha256,
     and no temporary file is left;
  3. one more genuine CRL, then c-icap is stopped at once: the snapshots count N + 1;
  4. `authbypass report` over those files and a helper stats file (the helper's format of
     earlier releases): text "ICAP counters" with the sums beside "Helper counters";
     --format json: icap_totals, icap_stats (one entry per child file), helper_totals.
Exit status: 0 passed, 1 failed, 77 c-icap not installed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))

from lab.checks import Checks  # noqa: E402
from lab.cicap import (CIcap, IcapLabError, c_icap_available, decode_icap_body,  # noqa: E402
                       icap_request)

POLICY = """\
version: 1
rules:
  - id: lab-crl
    owner: crl-owner@example.test
    match: {hosts: [crl.lab.test]}
    verify: crl
"""

CLIENT = "10.1.2.3"
UA = "Microsoft-CryptoAPI/10.0"
GENUINE = 3
IMPOSTORS = [("page.html", "text/html"), ("app.exe", "application/octet-stream")]
HELPER_STATS = ('{"stats":"ext_authbypass_acl","pid":4242,"ts":"2026-12-01T20:03:46.683Z",'
                '"policy_sha256":"","policy_file":"/etc/authbypass/policy.yaml","lines":7,'
                '"bypass":5,"authenticate":2,"rules":{"lab-crl":{"bypass":5,"shadow":0}}}\n')


def respmod(ic: CIcap, url: str, body: bytes, ct: str):
    req = [f"GET {url} HTTP/1.1", "Host: crl.lab.test", f"User-Agent: {UA}"]
    res = ["HTTP/1.1 200 OK", f"Content-Type: {ct}", f"Content-Length: {len(body)}"]
    st, lines, rest = icap_request(ic.port, "RESPMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
                                   req_hdr=req, res_hdr=res, body=body, timeout=30)
    http, _body, _complete = decode_icap_body(rest, lines)
    return st, (http[0] if http else "")


def snapshots(ic: CIcap) -> list[dict]:
    out = []
    for f in sorted(glob.glob(ic.path("icap-*.json"))):
        with open(f) as fh:
            out.append(json.load(fh))
    return out


def totals(snaps: list[dict]) -> dict[str, int]:
    t: dict[str, int] = {}
    for s in snaps:
        for k, v in s.items():
            if isinstance(v, int) and k != "pid":
                t[k] = t.get(k, 0) + v
    return t


def wait_totals(ic: CIcap, want: dict[str, int], timeout: float = 6.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        t = totals(snapshots(ic))
        if all(t.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
            return t
        time.sleep(0.1)


def main(argv) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    cli, module, data = argv[1:]
    if not c_icap_available():
        print("SKIP: c-icap / c-icap-client not installed (scripts/setup installs them)")
        return 77
    checks = Checks()
    with open(os.path.join(data, "crl.der"), "rb") as f:
        crl = f.read()
    policy_file = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    policy_file.write(POLICY)
    policy_file.close()
    sha = hashlib.sha256(POLICY.encode()).hexdigest()
    ic = CIcap(module, policy_file.name, verify="full", servers=2, verbose=True,
               extra_conf=lambda lab: f"authbypass.StatsFile {lab.path('icap-%p.json')}")
    try:
        ic.start()
        print(f"c-icap on {ic.url}, dir {ic.dir}", flush=True)
        for i in range(GENUINE):
            st, sl = respmod(ic, f"http://crl.lab.test/ok.crl?{i}", crl, "application/pkix-crl")
            checks.expect(st == 204, f"genuine CRL {i}: 204", f"ICAP {st} {sl}")
        for i, (name, ct) in enumerate(IMPOSTORS):
            with open(os.path.join(data, name), "rb") as f:
                body = f.read()
            st, sl = respmod(ic, f"http://crl.lab.test/bad.crl?{i}", body, ct)
            checks.expect(st == 200 and "403" in sl, f"impostor {name}: 403 page", f"{st} {sl}")
        st, lines, rest = icap_request(
            ic.port, "REQMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
            req_hdr=["CONNECT crl.lab.test:443 HTTP/1.1", "Host: crl.lab.test:443"])
        http, _b, _c = decode_icap_body(rest, lines)
        checks.expect(http and "403" in http[0], "CONNECT to a crl rule: 403", str(http))
        blocked = len(IMPOSTORS) + 1

        want = {"verified_crl": GENUINE, "blocked": blocked}
        t = wait_totals(ic, want)
        checks.expect(all(t.get(k) == v for k, v in want.items()),
                      f"snapshots sum to {want}", str(t))
        snaps = snapshots(ic)
        children = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        for s in snaps:
            ok = (s.get("stats") == "srv_authbypass" and s.get("pid") in children
                  and s.get("pid") != ic.proc.pid and s.get("policy_sha256") == sha
                  and s.get("policy_file") == ic.policy and s.get("rules") == {}
                  and isinstance(s.get("ts"), str) and s["ts"].endswith("Z"))
            checks.expect(ok, f"snapshot of child {s.get('pid')}: marker, pid, policy", str(s))
        checks.expect(len(snaps) >= 1, "at least one child wrote a snapshot", str(snaps))
        leftovers = [f for f in os.listdir(ic.dir) if f.startswith(".icap-")]
        checks.expect(not leftovers, "no temporary stats file left", str(leftovers))

        # The last transaction, then c-icap stopped at once: its child writes the count
        # within a second (the idle watcher) or on exit (CHILD_STOP), whichever comes
        # first (c-icap takes about a second to stop a child, so this does not tell which).
        st, sl = respmod(ic, "http://crl.lab.test/last.crl", crl, "application/pkix-crl")
        checks.expect(st == 204, "last genuine CRL: 204", f"ICAP {st} {sl}")
        ic._stop_proc()
        t = totals(snapshots(ic))
        checks.expect(t.get("verified_crl") == GENUINE + 1 and t.get("blocked") == blocked,
                      "after c-icap stopped: the last transaction is counted", str(t))

        helper = ic.path("helper-4242.json")
        with open(helper, "w") as f:
            f.write(HELPER_STATS)
        files = sorted(glob.glob(ic.path("icap-*.json"))) + [helper]
        r = subprocess.run([cli, "report", *files], capture_output=True, text=True, timeout=30)
        text = r.stdout
        icap_part = text[text.find("ICAP counters"):]
        checks.expect(r.returncode == 0 and "Helper counters" in text and "ICAP counters" in text,
                      "report text: helper and ICAP counters", text[-2000:] + r.stderr)
        checks.expect(any(l.split() == ["verified_crl", str(GENUINE + 1)]
                          for l in icap_part.splitlines())
                      and any(l.split() == ["blocked", str(blocked)]
                              for l in icap_part.splitlines()),
                      "report text: the ICAP sums", icap_part)
        r = subprocess.run([cli, "report", "--format", "json", *files], capture_output=True,
                           text=True, timeout=30)
        try:
            rep = json.loads(r.stdout)
        except ValueError:
            rep = {}
        it = rep.get("icap_totals", {})
        checks.expect(it.get("verified_crl") == GENUINE + 1 and it.get("blocked") == blocked
                      and it.get("processes") == len(files) - 1
                      and len(rep.get("icap_stats", [])) == len(files) - 1,
                      "report json: icap_totals and icap_stats", r.stdout[-2000:] + r.stderr)
        ht = rep.get("helper_totals", {})
        checks.expect(ht.get("bypass") == 5 and ht.get("rules", {}).get("lab-crl", {}).get(
            "bypass") == 5 and rep.get("malformed") == 0,
                      "report json: the helper file beside them", str(ht))
    except IcapLabError as e:
        checks.expect(False, "c-icap lab", str(e))
    finally:
        ic.stop()
        os.unlink(policy_file.name)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
