#!/usr/bin/python3
"""Squid end to end: requests/s and p99 latency through real Squid 5.7 on loopback.

    e2e_squid.py --helper BIN --cli BIN --policy FILE --origin BIN --wrk BIN --json OUT
                 [--rounds N] [--seconds S] [--warmup S] [--conns N] [--seed N]
                 [--with-icap --module srv_authbypass.so [--icap-seconds S] ...]
                 [--floor-helper BIN] [--floor-icap BIN] [--floor-mixes LIST]

Three Squids (tests/lab/squid.py, one process each, started side by side and
measured in interleaved order, so machine noise hits them alike):

  recipe     the built-in recipe: the policy's rules as plain Squid ACLs (dstdomain,
             method, port, urlpath_regex -i, browser -i: the prefilter that `authbypass
             squid-config` prints, shadow rules left out) and `http_access allow` on them
             before proxy_auth; no helper.
  prefilter  ext_authbypass_acl at ttl=0 negative_ttl=0 cache=0 behind that prefilter
             (`http_access allow authbypass_candidates authbypass authbypass_noted`), as
             squid-config wires it.
  helper     the same helper without the prefilter (`http_access allow authbypass`): every
             request reaches the helper, also those with credentials.

With --with-icap, two more Squids, both in ICAP decision mode, and one c-icap
(tests/lab/cicap.py: srv_authbypass.so with authbypass.Mode decide and a secret made by
`authbypass secret`) that both use, started once before them:
  icap-prefilter  the drop-in `authbypass squid-config --mode icap` writes (the secret, the
                  prefilter: `adaptation_access authbypass_req allow authbypass_candidates`,
                  proxy_auth in adapted_http_access, the X-Authbypass guard);
  icap            the same with --no-prefilter (`adaptation_access authbypass_req allow all`:
                  every request without credentials is a REQMOD transaction).
Section 4 of the drop-in (RESPMOD verification, Mode both) is left out unless
--icap-mode both: verifying a response costs the same whoever decided, and (a)-(c) verify
nothing. c-icap's own logging is minimal (no access log, DebugLevel 0; the service's audit
log stays, as the helper's does: its `bypass` events show REQMOD decided every bypassed
request); --icap-servers/--icap-threads/--icap-keepalive size it. Without --with-icap the
run is exactly the three-Squid run above. c-icap's CPU (all its processes) is added to the
CPU per request of those two configurations.

Floors (what any helper / any ICAP service could at best reach on this Squid), measured only
in --floor-mixes (default: bypass), shuffled in with the others in every round:
  floor-prefilter       (b0), with --floor-helper: the Squid config of (b) (the same
                        prefilter, external_acl_type ttl=0 negative_ttl=0 cache=0, children,
                        concurrency and %-format tokens), but the helper is
                        tests/bench/e2e_floor_helper.cpp, which answers every line
                        "<channel-id> OK log=floor tag=authbypass/floor" at once.
  floor-icap-prefilter  (d0), with --with-icap and --floor-icap: the Squid config of (d) (the
                        same drop-in, RESPMOD left out, the same secret), pointed at
                        tests/bench/e2e_floor_icap.cpp, one epoll thread that answers REQMOD
                        with the request headers plus "X-Authbypass: <secret> floor" and
                        nothing else (no policy, no audit). Its CPU is counted as c-icap's.
Squid's own count shows the floor helper was asked for every bypassed answer
(squid-internal-mgr/external_acl "requests sent"), the floor ICAP server's its REQMOD count
(an X-Floor-Reqmods header in its OPTIONS answer). The JSON's floor_ratios are (b)/(b0) and
(d)/(d0), medians of same-round ratios.

Traffic (wrk from Debian, one thread, N keep-alive client connections to Squid, requests
in absolute form as a browser sends them to a proxy), four mixes:
  bypass    CRL URLs with a CryptoAPI User-Agent, no credentials (bypassed: 200)
  auth      browsing URLs with Basic credentials (authenticated: 200)
  407       browsing URLs without credentials (407)
  mixed     20 % bypass, 70 % auth, 10 % 407 (the generated helper input's proportions)
Every answer's status is counted and checked. Rounds: the mixes in shuffled order, and
within a mix the three Squids back to back in shuffled order; a ratio is the median over
rounds of (config / recipe) in the same round, i.e. of measurements seconds apart
(ratio_of_medians is in the JSON too). With the helper, the audit log's `bypass`
events per bypassed answer show the helper was asked every time (ttl=0 alone still lets
Squid reuse an answer within the same second; cache=0 turns the cache off).

Origin: tests/bench/e2e_origin.cc (epoll, keep-alive; Squid with
server_persistent_connections on), whose own capacity is measured in the same run (wrk
straight at it). squidlab's Python origin closes every connection and serves from Python
threads: it tops out near Squid's own rate, so it is not used for timing (its threads sit
idle; squidlab still starts them).

Squid's and the helpers' CPU (utime+stime from /proc) per cell give CPU µs per request.
Raw numbers to --json; progress on stderr. Loopback only; every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from lab.squid import SquidLab  # noqa: E402
from lab.procs import children_of, exe_of, proc_cpu_ticks  # noqa: E402
from lab.cicap import CIcap, lab_pids  # noqa: E402

CONFIGS = ("recipe", "prefilter", "helper")
ICAP_CONFIGS = ("icap-prefilter", "icap")
# the floors: (b0) the config of (b) with a helper that answers OK at once
# (e2e_floor_helper.cpp), (d0) the config of (d) pointed at a minimal REQMOD server
# (e2e_floor_icap.cpp); measured only in --floor-mixes
FLOOR_HELPER, FLOOR_ICAP = "floor-prefilter", "floor-icap-prefilter"
FLOOR_OF = {FLOOR_HELPER: "prefilter", FLOOR_ICAP: "icap-prefilter"}  # floor -> product config
REQMOD_CONFIGS = ICAP_CONFIGS + (FLOOR_ICAP,)  # Squids in ICAP decision mode
MIXES = ("bypass", "auth", "407", "mixed")
CPU_UA = "Microsoft-CryptoAPI/10.0"
BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0 Safari/537.36")
BYPASS_URLS = [
    "http://crl.microsoft.com/pki/crl/products/MicRooCerAut_2010-06-23.crl",
    "http://www.microsoft.com/pki/mscorp/crl/Microsoft%20RSA%20TLS%20CA%2001.crl",
    "http://crl3.digicert.com/DigiCertGlobalRootG2.crl",
    "http://pki.example-ca.test/issuing/ca2.crl",
]
BROWSE_URLS = [
    "http://www.example.com/index.html",
    "http://news.example.org/world/2026/12/01/story.html?ref=home",
    "http://cdn.example.net/static/app.js",
    "http://shop.example.com/cart",
]
MIX_PATTERN = {  # cycled by each connection's thread, in this order
    "bypass": ["B"],
    "auth": ["A"],
    "407": ["N"],
    "mixed": ["B", "A", "A", "A", "N", "A", "B", "A", "A", "A"],
}
EXPECT = {"B": 200, "A": 200, "N": 407}


def log(msg: str):
    print(f"e2e_squid: {msg}", file=sys.stderr, flush=True)


def write_results(res: dict, path: str, t0: float) -> int:
    """Ends a run: load and duration into `res`, `res` to the JSON file `path`, its errors
    said; the exit status (1 if any error)."""
    res["load_end"] = os.getloadavg()
    res["total_s"] = time.monotonic() - t0
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    for e in res["errors"]:
        log("ERROR " + e)
    log(f"wrote {path} ({res['total_s']:.0f} s)")
    return 1 if res["errors"] else 0


def host_of(url: str) -> str:
    """The host of an absolute http:// URL."""
    return url.split("/")[2]


def lua_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(mix: str, user: str, password: str) -> str:
    cred = base64.b64encode(f"{user}:{password}".encode()).decode()
    specs = []
    nb = na = 0
    for kind in MIX_PATTERN[mix]:
        if kind == "B":
            url, ua, auth = BYPASS_URLS[nb % len(BYPASS_URLS)], CPU_UA, None
            nb += 1
        else:
            url, ua = BROWSE_URLS[na % len(BROWSE_URLS)], BROWSER_UA
            auth = f"Basic {cred}" if kind == "A" else None
            na += 1
        host = host_of(url)
        h = [f"[\"Host\"] = {lua_str(host)}", f"[\"User-Agent\"] = {lua_str(ua)}",
             "[\"Accept\"] = \"*/*\""]
        if auth:
            h.append(f"[\"Proxy-Authorization\"] = {lua_str(auth)}")
        specs.append(f"  {{ {lua_str(url)}, {{ {', '.join(h)} }} }},")
    return """-- generated by tests/bench/e2e_squid.py
local specs = {
%s
}
local reqs = {}
local idx = 0
counts = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  for i, s in ipairs(specs) do reqs[i] = wrk.format("GET", s[1], s[2]) end
end
function request()
  idx = idx %% #reqs + 1
  return reqs[idx]
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local c = {}
  for _, t in ipairs(threads) do
    local tc = t:get("counts")
    for k, v in pairs(tc) do c[k] = (c[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(c) do table.insert(parts, string.format('"%%d": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format('E2E_JSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"latency_us": {"mean": %%.1f, "max": %%d, "p50": %%d, "p90": %%d, "p99": %%d}, ' ..
    '"status": {%%s}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), table.concat(parts, ", ")))
end
""" % "\n".join(specs)


def run_wrk(wrk: str, script: str, port: int, conns: int, seconds: float) -> dict:
    cmd = [wrk, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
           "-s", script, f"http://127.0.0.1:{port}/"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    for line in r.stdout.splitlines():
        if line.startswith("E2E_JSON "):
            d = json.loads(line[len("E2E_JSON "):])
            d["status"] = {int(k): v for k, v in d["status"].items()}
            d["rps"] = d["requests"] / (d["duration_us"] / 1e6) if d["duration_us"] else 0.0
            return d
    raise RuntimeError(f"wrk gave no result (rc {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}")


SQUID_HWM_LIMIT_KB = 256 * 1024


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set of a process in kB (VmHWM), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class BenchLab(SquidLab):
    """squidlab's Squid, pointed at the fast origin, with server-side keep-alive and the
    external ACL cache off (cache=0). The generated squid.conf is edited after squidlab
    writes it; every edit is checked, so a change in squidlab fails loudly here.
    origin_port=None keeps squidlab's own Python origin and its
    server_persistent_connections off (tests/bench/e2e_ab_no_keepalive.py)."""

    def __init__(self, *a, origin_port: int | None, cache0: bool = True, **kw):
        # the hosts of every URL the benchmarks send, from the lab's hosts_file (no DNS):
        # without it each forwarded request left a lookup pending for 30 s, Squid grew
        # ~28 KB per request (1.9 GB after 69,000) and stalled seconds when they timed out
        kw.setdefault("hosts", [host_of(u) for u in BYPASS_URLS + BROWSE_URLS])
        # the figures measure the helper and Squid's request path, as before the lab ran
        # like a deployment: every request asks the helper, nothing served from cache
        kw.setdefault("no_helper_cache_because", "benchmarks measure every helper lookup")
        kw.setdefault("no_cache_because", "benchmarks measure the request path, not hits")
        super().__init__(*a, **kw)
        self.bench_origin_port = origin_port
        self.cache0 = cache0

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf) as f:
            text = f.read()
        edits = []
        if self.bench_origin_port is not None:
            edits += [
                (f"cache_peer 127.0.0.1 parent {self.origin.port} 0 ",
                 f"cache_peer 127.0.0.1 parent {self.bench_origin_port} 0 "),
                ("server_persistent_connections off", "server_persistent_connections on"),
            ]
        if self.cache0:
            edits.append(("external_acl_type authbypass ttl=0 negative_ttl=0 ",
                          "external_acl_type authbypass ttl=0 negative_ttl=0 cache=0 "))
        for old, new in edits:
            if text.count(old) != 1:
                raise RuntimeError(f"e2e_squid: squidlab's squid.conf no longer has {old!r} once")
            text = text.replace(old, new)
        with open(self.conf, "w") as f:
            f.write(text)


def prefilter_lines(cli: str, policy: str) -> tuple[str, str, dict]:
    """(prefilter + helper access lines, recipe lines, info) from `authbypass squid-config`."""
    r = subprocess.run([cli, "squid-config", policy, "--no-icap", "--no-audit", "--ttl", "0"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"authbypass squid-config failed: {r.stderr}")
    shadow = set(re.findall(r"^# rule (\S+) \(shadow\)$", r.stdout, re.M))
    acl, access = [], []
    for line in r.stdout.splitlines():
        if line.startswith(("acl ab_", "acl authbypass_candidates ", "acl authbypass_hdr_",
                            "acl authbypass_range ", "acl authbypass_noted ",
                            "acl authbypass_bypassed ")):
            acl.append(line)
        elif line.startswith("http_access "):
            access.append(line)
    if access != ["http_access allow authbypass_candidates !authbypass_range authbypass "
                  "authbypass_noted"]:
        raise RuntimeError(f"unexpected http_access lines from squid-config: {access}")
    prefilter = "\n".join(acl + access)
    recipe = []
    for line in acl:
        if line.startswith("acl authbypass_candidates any-of "):
            names = [n for n in line.split()[3:] if n[len("ab_"):] not in shadow]
            if names:
                recipe.append("acl authbypass_candidates any-of " + " ".join(names))
            continue
        if any(line.startswith((f"acl ab_{s}_", f"acl ab_{s} ")) for s in shadow):
            continue
        recipe.append(line)
    recipe.append("http_access allow authbypass_candidates")
    return prefilter, "\n".join(recipe), {"acl_lines": len(acl), "shadow_rules_left_out": sorted(shadow)}


class BenchCIcap(CIcap):
    """icaplab's c-icap with its own logging cut down for timing: no access log (without an
    AccessLog line c-icap 0.5.10 writes none, neither in the lab directory nor in
    /var/log/c-icap; an ACL on the AccessLog line did not stop it logging every
    transaction), DebugLevel 0, and MaxKeepAliveRequests as asked (icaplab: 100; -1 is
    c-icap's "no limit"). Every edit of icaplab's c-icap.conf is checked, so a change there
    fails loudly here."""

    def __init__(self, *a, keepalive_requests: int = -1, access_log: bool = False, **kw):
        super().__init__(*a, **kw)
        self.keepalive_requests = keepalive_requests
        self.keep_access_log = access_log

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf) as f:
            text = f.read()
        edits = [("MaxKeepAliveRequests 100\n", f"MaxKeepAliveRequests {self.keepalive_requests}\n"),
                 (f"DebugLevel {self.debug_level}\n", "DebugLevel 0\n")]
        if not self.keep_access_log:
            edits.append((f"AccessLog {self.path('access.log')}\n", ""))
        for old, new in edits:
            if text.count(old) != 1:
                raise RuntimeError(f"e2e_squid: icaplab's c-icap.conf no longer has {old!r} once")
            text = text.replace(old, new)
        with open(self.conf, "w") as f:
            f.write(text)

    def pids(self) -> list[int]:
        return lab_pids(self.conf)


def icap_dropins(cli: str, policy: str, secret_file: str, url: str, mode: str,
                 max_conn: int = 0) -> tuple[dict, dict]:
    """{"icap-prefilter": text, "icap": text} from `authbypass squid-config --mode icap`
    (with and without --no-prefilter), RESPMOD section left out unless mode is both."""
    out, info = {}, {}
    for cfg, extra in (("icap-prefilter", []), ("icap", ["--no-prefilter"])):
        r = subprocess.run([cli, "squid-config", "--mode", "icap", "--secret-file", secret_file,
                            "--clients", "localhost", "--icap", url, *extra, policy],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"authbypass squid-config --mode icap {' '.join(extra)} failed: {r.stderr}")
        text = r.stdout
        want = ("adaptation_access authbypass_req allow authbypass_candidates"
                if cfg == "icap-prefilter" else "adaptation_access authbypass_req allow all")
        lines = text.splitlines()
        for need in (want, "adaptation_access authbypass_req deny authbypass_has_creds",
                     "http_access deny authbypass_client_mark",
                     "adapted_http_access allow authbypass_marked"):
            if need not in lines:
                raise RuntimeError(f"squid-config --mode icap {' '.join(extra)}: no line {need!r}")
        svc = [l for l in lines if l.startswith("icap_service authbypass_req ")]
        if len(svc) != 1 or not svc[0].endswith(" " + url):
            raise RuntimeError(f"squid-config --mode icap: unexpected icap_service lines {svc}")
        if max_conn:  # replaces squid-config's own max-conn= (its connection budget)
            text = text.replace(svc[0], re.sub(r" max-conn=\d+", "", svc[0]).replace(
                f" {url}", f" max-conn={max_conn} {url}"))
        resp = [l for l in text.splitlines() if l.startswith(("icap_service authbypass_resp ",
                                                             "adaptation_access authbypass_resp "))]
        if len(resp) != 3:
            raise RuntimeError(f"squid-config --mode icap: unexpected RESPMOD lines {resp}")
        if mode != "both":
            text = "\n".join(l for l in text.splitlines() if l not in resp) + "\n"
        out[cfg] = text
        info[cfg] = {"adaptation_access": [l for l in text.splitlines()
                                           if l.startswith("adaptation_access ")],
                     "icap_service": [l for l in text.splitlines() if l.startswith("icap_service ")],
                     "respmod_left_out": mode != "both"}
    return out, info


def external_acl_requests_sent(lab: SquidLab) -> int:
    """Squid's own count of requests sent to its external ACL helpers (the sum of
    "requests sent" in cachemgr's external_acl page)."""
    text = lab.mgr("external_acl")
    counts = re.findall(r"requests sent:\s*(\d+)", text, re.I)
    if not counts:
        raise RuntimeError(f"no 'requests sent' in Squid's external_acl page: {text[:500]!r}")
    return sum(int(c) for c in counts)


class FloorIcap:
    """tests/bench/e2e_floor_icap (the floor REQMOD server) on 127.0.0.1, as a context
    manager; stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, binary: str, secret_file: str):
        self.binary, self.secret_file = binary, secret_file
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = ""

    def __enter__(self):
        self.proc = subprocess.Popen([self.binary, "--secret-file", self.secret_file],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.__exit__()
            raise RuntimeError(f"{self.binary} gave no port: {line!r}")
        self.port = int(line)
        return self

    def __exit__(self, *exc):
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                _out, err = p.communicate(timeout=5)
                self.log = err.strip()
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return False

    @property
    def url(self) -> str:
        return f"icap://127.0.0.1:{self.port}/authbypass"

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    def reqmods(self) -> int:
        """REQMOD transactions answered so far (X-Floor-Reqmods of an OPTIONS answer)."""
        from lab.cicap import icap_request
        status, lines, _rest = icap_request(self.port, "OPTIONS", timeout=5)
        for l in lines:
            if l.lower().startswith("x-floor-reqmods:"):
                return int(l.split(":", 1)[1])
        raise RuntimeError(f"floor ICAP server: OPTIONS answer {status} without X-Floor-Reqmods")


class AuditCounter:
    """Counts `bypass` events in a growing audit log, reading only what was appended."""

    def __init__(self, path: str):
        self.path, self.offset, self.count, self.rest = path, 0, 0, b""

    def __call__(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.count
        self.offset += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.count += data.count(b'"event":"bypass"', 0, cut)
        self.rest = data[cut:]
        return self.count


def cell_stats(rounds: list[dict]) -> dict:
    med = statistics.median
    return {
        "median_rps": med(r["rps"] for r in rounds),
        "min_rps": min(r["rps"] for r in rounds),
        "max_rps": max(r["rps"] for r in rounds),
        "median_p50_us": med(r["latency_us"]["p50"] for r in rounds),
        "median_p99_us": med(r["latency_us"]["p99"] for r in rounds),
        "median_squid_cpu_us": med(r["squid_cpu_us_per_req"] for r in rounds),
        "median_helper_cpu_us": med(r["helper_cpu_us_per_req"] for r in rounds),
        **({"median_icap_cpu_us": med(r["icap_cpu_us_per_req"] for r in rounds),
            "median_total_cpu_us": med(r["squid_cpu_us_per_req"] + r["helper_cpu_us_per_req"]
                                       + r["icap_cpu_us_per_req"] for r in rounds)}
           if all("icap_cpu_us_per_req" in r for r in rounds) else {}),
        "requests": sum(r["requests"] for r in rounds),
        "status": {str(k): sum(r["status"].get(k, 0) for r in rounds)
                   for k in sorted({k for r in rounds for k in r["status"]})},
        "socket_errors": sum(sum(v for k, v in r["errors"].items() if k != "status")
                             for r in rounds),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--helper", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--origin", required=True, help="the e2e_origin binary")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--json", required=True)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--time-limit", type=float, default=0,
                   help="seconds: start no round that would end past this (0: no limit)")
    g = p.add_argument_group("ICAP decision mode (off unless --with-icap)")
    g.add_argument("--with-icap", action="store_true",
                   help="add (d) icap-prefilter and (e) icap: Squid in ICAP decision mode")
    g.add_argument("--module", help="srv_authbypass.so (needed with --with-icap)")
    g.add_argument("--icap-seconds", type=float, default=0,
                   help="seconds per (d)/(e) cell (default: --seconds)")
    g.add_argument("--icap-mode", choices=("decide", "both"), default="decide",
                   help="authbypass.Mode; both also keeps the drop-in's RESPMOD section")
    g.add_argument("--icap-servers", type=int, default=2, help="c-icap StartServers/MaxServers")
    g.add_argument("--icap-threads", type=int, default=20, help="c-icap ThreadsPerChild")
    g.add_argument("--icap-keepalive", type=int, default=-1,
                   help="c-icap MaxKeepAliveRequests (-1: no limit; icaplab's default is 100)")
    g.add_argument("--icap-max-conn", type=int, default=0,
                   help="max-conn= on Squid's icap_service line (0: what OPTIONS advertises)")
    g.add_argument("--icap-access-log", action="store_true",
                   help="keep c-icap's access log (default: no line per transaction)")
    f = p.add_argument_group("floors: what any helper / any ICAP service could at best reach")
    f.add_argument("--floor-helper", help="e2e_floor_helper binary: adds (b0) floor-prefilter")
    f.add_argument("--floor-icap", help="e2e_floor_icap binary: adds (d0) floor-icap-prefilter"
                   " (with --with-icap)")
    f.add_argument("--floor-mixes", default="bypass",
                   help="comma-separated mixes the floors are measured in (default: bypass)")
    args = p.parse_args()
    if args.with_icap and not args.module:
        p.error("--with-icap needs --module srv_authbypass.so")
    if args.floor_icap and not args.with_icap:
        p.error("--floor-icap needs --with-icap (its ratio is to (d))")
    floor_mixes = [m for m in args.floor_mixes.split(",") if m]
    if any(m not in MIXES for m in floor_mixes):
        p.error(f"--floor-mixes: one of {','.join(MIXES)}")
    icap_seconds = args.icap_seconds or args.seconds
    configs = CONFIGS + (ICAP_CONFIGS if args.with_icap else ())
    floors = ((FLOOR_HELPER,) if args.floor_helper else ()) + ((FLOOR_ICAP,) if args.floor_icap else ())
    all_configs = configs + floors

    def mix_configs(mix: str) -> tuple:
        return configs + (floors if mix in floor_mixes else ())

    def cell_seconds(cfg: str) -> float:
        return icap_seconds if cfg in REQMOD_CONFIGS else args.seconds
    t0 = time.monotonic()

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    prefilter, recipe, pf_info = prefilter_lines(args.cli, args.policy)
    tmp = tempfile.mkdtemp(prefix="e2e-squid-")
    res: dict = {"config": vars(args), "prefilter": pf_info, "errors": [], "notes": [],
                 "load_start": os.getloadavg()}
    origin = floor_icap = None
    with contextlib.ExitStack() as stack:
        try:
            origin = subprocess.Popen([args.origin], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            origin_port = int(origin.stdout.readline())
            log(f"origin (e2e_origin) on 127.0.0.1:{origin_port}, PID {origin.pid}")
            labs = {}
            access = {"recipe": recipe, "prefilter": prefilter, "helper": None,
                      FLOOR_HELPER: prefilter}
            icap = None
            if args.with_icap:
                # one c-icap for both ICAP Squids, before them (Squid asks for OPTIONS at
                # start), stopped after them (the ExitStack unwinds in reverse)
                secret_file = os.path.join(tmp, "icap-secret")
                r = subprocess.run([args.cli, "secret", "--out", secret_file],
                                   capture_output=True, text=True, timeout=30)
                if r.returncode != 0:
                    raise RuntimeError(f"authbypass secret failed: {r.stderr}")
                with open(secret_file) as f:
                    secret = f.read().strip()
                icap = BenchCIcap(args.module, args.policy, mode=args.icap_mode, secret=secret,
                                  servers=args.icap_servers, threads=args.icap_threads,
                                  keepalive_requests=args.icap_keepalive,
                                  access_log=args.icap_access_log)
                stack.enter_context(icap)
                log(f"c-icap (srv_authbypass, Mode {args.icap_mode}) on 127.0.0.1:{icap.port},"
                    f" PID {icap.proc.pid}, {args.icap_servers} × {args.icap_threads} threads,"
                    f" dir {icap.dir}")
                dropins, res["icap"] = icap_dropins(args.cli, args.policy, secret_file, icap.url,
                                                    args.icap_mode, args.icap_max_conn)
                access.update(dropins)
                res["icap"]["c_icap_conf"] = open(icap.conf).read()
                res["icap"]["c_icap_include"] = open(icap.path("authbypass.conf")).read()
                if args.floor_icap:
                    # (d0): the drop-in of (d), RESPMOD left out, pointed at the floor server
                    floor_icap = FloorIcap(args.floor_icap, secret_file)
                    stack.enter_context(floor_icap)
                    log(f"floor ICAP server on 127.0.0.1:{floor_icap.port}, PID {floor_icap.proc.pid}")
                    fd, finfo = icap_dropins(args.cli, args.policy, secret_file, floor_icap.url,
                                             "decide", args.icap_max_conn)
                    access[FLOOR_ICAP] = fd["icap-prefilter"]
                    res.setdefault("floor", {})["icap"] = finfo["icap-prefilter"]
            if floors:
                res.setdefault("floor", {}).update(
                    {"configs": list(floors), "mixes": floor_mixes,
                     "helper_binary": args.floor_helper, "icap_binary": args.floor_icap})
            for name in all_configs:
                lab = BenchLab(args.floor_helper if name == FLOOR_HELPER else args.helper,
                               args.policy, origin_port=origin_port, bypass_access=access[name])
                stack.enter_context(lab)
                labs[name] = lab
                log(f"{name}: squid on 127.0.0.1:{lab.port}, PID {lab.squid.pid}, dir {lab.dir}")
                if name in REQMOD_CONFIGS:
                    # Squid may not have the service's OPTIONS yet (bypass=1 then skips
                    # it: 407): wait until a bypassed request gets through unauthenticated
                    deadline = time.monotonic() + 20
                    while lab.get(BYPASS_URLS[0], ua=CPU_UA, timeout=3) != 200:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{name}: no bypass through ICAP decision mode after"
                                               f" 20 s:\n{lab.tail(lab.cache_log)}"
                                               + (icap.tail(icap.server_log) if name in ICAP_CONFIGS
                                                  else ""))
                        time.sleep(0.2)
            audits = {name: AuditCounter(lab.audit_log) for name, lab in labs.items()
                      if name not in REQMOD_CONFIGS and name != FLOOR_HELPER}
            if icap is not None:  # one log for both: cells run one at a time
                icap_audit = AuditCounter(icap.audit_log)
                audits.update({name: icap_audit for name in ICAP_CONFIGS})
            # the floors keep no audit log: Squid's count of helper requests, the floor
            # server's count of REQMOD transactions
            if FLOOR_HELPER in labs:
                audits[FLOOR_HELPER] = lambda: external_acl_requests_sent(labs[FLOOR_HELPER])
            if floor_icap is not None:
                audits[FLOOR_ICAP] = floor_icap.reqmods
            scripts = {}
            user, password = SquidLab.USER, SquidLab.PASSWORD
            for mix in MIXES:
                scripts[mix] = os.path.join(tmp, f"{mix}.lua")
                with open(scripts[mix], "w") as f:
                    f.write(wrk_script(mix, user, password))
            origin_script = os.path.join(tmp, "origin.lua")
            with open(origin_script, "w") as f:  # the same script shape, straight at the origin
                f.write(wrk_script("auth", user, password).replace(
                    'wrk.format("GET", s[1], s[2])', 'wrk.format("GET", "/origin-only", s[2])'))

            def measure(cfg: str, mix: str, seconds: float) -> dict:
                lab = labs[cfg]
                spid = lab.squid.pid
                kids = children_of(spid)
                helpers = [k for k in kids if exe_of(k).startswith(lab.dir + "/")]
                with_icap = cfg in REQMOD_CONFIGS
                server = floor_icap if cfg == FLOOR_ICAP else icap
                icap_pids = server.pids() if with_icap else []
                a0 = audits[cfg]()
                c_icap0 = {k: proc_cpu_ticks(k) for k in icap_pids}
                c_squid0 = proc_cpu_ticks(spid)
                c_help0 = {k: proc_cpu_ticks(k) for k in helpers}
                r = run_wrk(args.wrk, scripts[mix], lab.port, args.conns, seconds)
                c_squid1 = proc_cpu_ticks(spid)
                helpers1 = [k for k in children_of(spid) if exe_of(k).startswith(lab.dir + "/")]
                help_ticks = sum(proc_cpu_ticks(k) - c_help0.get(k, 0) for k in helpers1)
                if with_icap:  # every c-icap process (main and children; new ones from 0)
                    icap_pids1 = server.pids()
                    icap_ticks = sum(proc_cpu_ticks(k) - c_icap0.get(k, 0) for k in icap_pids1)
                time.sleep(0.05)  # the helper writes its audit line before its answer
                a1 = audits[cfg]()
                tck = os.sysconf("SC_CLK_TCK")
                n = max(1, r["requests"])
                r["squid_cpu_us_per_req"] = (c_squid1 - c_squid0) / tck * 1e6 / n
                r["helper_cpu_us_per_req"] = help_ticks / tck * 1e6 / n
                r["helper_processes"] = len(helpers1)
                if with_icap:
                    r["icap_cpu_us_per_req"] = icap_ticks / tck * 1e6 / n
                    r["icap_processes"] = len(icap_pids1)
                r["audit_bypass_events"] = a1 - a0
                pat = MIX_PATTERN[mix]
                expect = {}
                for kind in pat:
                    expect[EXPECT[kind]] = expect.get(EXPECT[kind], 0) + 1
                # status shares must match the pattern (within the last partial cycles)
                bad = {k: v for k, v in r["status"].items() if k not in expect}
                if bad:
                    res["errors"].append(f"{cfg}/{mix}: unexpected statuses {bad}")
                for code, share in expect.items():
                    got = r["status"].get(code, 0)
                    want = r["requests"] * share / len(pat)
                    if abs(got - want) > len(pat) * args.conns + 0.01 * want:
                        res["errors"].append(f"{cfg}/{mix}: {got} × {code}, expected ~{want:.0f}")
                sock_err = {k: v for k, v in r["errors"].items() if k != "status" and v}
                if sock_err:
                    res["errors"].append(f"{cfg}/{mix}: wrk socket errors {sock_err}")
                n_bypass = r["requests"] * pat.count("B") / len(pat)
                r["bypassed_answers"] = n_bypass
                if cfg != "recipe" and n_bypass:
                    who = "icap" if with_icap else "helper"
                    r[f"{who}_asks_per_bypass"] = r["audit_bypass_events"] / n_bypass
                    # in-flight requests at the end were decided but not counted by wrk
                    if r["audit_bypass_events"] < n_bypass - len(pat) * args.conns:
                        res["errors"].append(
                            f"{cfg}/{mix}: {who} decided {r['audit_bypass_events']} bypasses for"
                            f" ~{n_bypass:.0f} bypassed answers (Squid reused cached answers?)")
                return r

            log(f"warm-up ({args.warmup:g} s per cell)")
            for cfg in all_configs:
                # the ICAP Squids: the mixed mix only (all three kinds of request; its REQMOD
                # path was already exercised by the readiness check), to keep the run short;
                # the floors: their first mix
                for mix in (("mixed",) if cfg in ICAP_CONFIGS else
                            (floor_mixes[:1] if cfg in floors else MIXES)):
                    measure(cfg, mix, args.warmup)
            res["errors"].clear()  # the first requests may meet helpers still starting
            cells = {f"{c}/{m}": [] for m in MIXES for c in mix_configs(m)}
            res["origin_alone"] = []
            rng = random.Random(args.seed)
            done_rounds = 0
            try:
                t_prev = 0.0
                for rnd in range(args.rounds):
                    if (args.time_limit and rnd >= 1
                            and time.monotonic() - t0 + t_prev + 15 > args.time_limit):
                        res["notes"].append(f"stopped after {rnd} of {args.rounds} rounds: the next"
                                            f" would end past --time-limit {args.time_limit:g} s")
                        log(res["notes"][-1])
                        break
                    # mixes in shuffled order; within a mix the Squids back to back
                    # (shuffled), so each ratio compares measurements seconds apart.
                    # Without --with-icap and floors the same random draws as before.
                    order = []
                    for m in rng.sample(MIXES, len(MIXES)):
                        mc = mix_configs(m)
                        order += [(c, m) for c in rng.sample(mc, len(mc))]
                    line = []
                    t_round = time.monotonic()
                    for cfg, mix in order:
                        r = measure(cfg, mix, cell_seconds(cfg))
                        r["round"] = rnd
                        cells[f"{cfg}/{mix}"].append(r)
                        line.append(f"{cfg}/{mix} {r['rps']:.0f}")
                    o = run_wrk(args.wrk, origin_script, origin_port, args.conns, 1)
                    o["round"] = rnd
                    res["origin_alone"].append(o)
                    done_rounds += 1
                    t_prev = time.monotonic() - t_round
                    log(f"round {rnd + 1}/{args.rounds} ({time.monotonic() - t_round:.0f} s): "
                        + ", ".join(line) + f"; origin alone {o['rps']:.0f}")
            except (SystemExit, KeyboardInterrupt) as e:  # a time bound: keep whole rounds
                res["errors"].append(f"interrupted ({e}) after {done_rounds} whole round(s)")
                if not done_rounds:
                    raise
                for k in cells:
                    cells[k] = [r for r in cells[k] if r["round"] < done_rounds]
            res["rounds_done"] = done_rounds
            # Squid's own peak memory: a few tens of MB with cache_mem 8 MB. Far more means
            # it holds something per request (as it did with DNS lookups pending, before
            # the lab's hosts_file), and then its rate is not Squid's usual rate.
            res["squid_vmhwm_kb"] = {name: vm_hwm_kb(lab.squid.pid) for name, lab in labs.items()}
            for name, kb in res["squid_vmhwm_kb"].items():
                if kb > SQUID_HWM_LIMIT_KB:
                    res["errors"].append(f"{name}: Squid peaked at {kb} kB (limit"
                                         f" {SQUID_HWM_LIMIT_KB} kB): it keeps something per"
                                         " request; see BenchLab")
            # for the record: squidlab's own Python origin (idle so far), the same wrk settings
            try:
                if res["errors"]:
                    raise RuntimeError("skipped (the run was cut short or had errors)")
                # wrk hangs up at its end while handler threads still write: not news
                labs["recipe"].origin.handle_error = lambda *_a: None
                py = run_wrk(args.wrk, origin_script, labs["recipe"].origin.port, args.conns, 2)
                res["python_origin_alone"] = py
                log(f"squidlab's Python origin alone: {py['rps']:.0f} req/s")
            except (RuntimeError, subprocess.SubprocessError) as e:
                res["python_origin_alone"] = {"error": str(e)}
            res["cells"] = {k: {"rounds": v, **cell_stats(v)} for k, v in cells.items()}
            res["origin_alone_median_rps"] = statistics.median(o["rps"] for o in res["origin_alone"])
            res["origin_alone_median_p99_us"] = statistics.median(
                o["latency_us"]["p99"] for o in res["origin_alone"])
            ratios = []
            for mix in MIXES:
                for cfg in [c for c in mix_configs(mix) if c != "recipe"]:
                    a = cells[f"recipe/{mix}"]
                    b = cells[f"{cfg}/{mix}"]
                    per_round = [x["rps"] / y["rps"] for x, y in zip(b, a) if y["rps"]]
                    p99_round = [x["latency_us"]["p99"] / y["latency_us"]["p99"]
                                 for x, y in zip(b, a) if y["latency_us"]["p99"]]
                    of_medians = (res["cells"][f"{cfg}/{mix}"]["median_rps"]
                                  / res["cells"][f"recipe/{mix}"]["median_rps"])
                    val = statistics.median(per_round)
                    # targets: (b) >= 0.9x on every mix; (d) >= 0.85x, bypassed URL
                    target = (0.9 if cfg == "prefilter" else
                              0.85 if cfg == "icap-prefilter" and mix == "bypass" else None)
                    ratios.append({"mix": mix, "config": cfg, "value": val,
                                   "ratio_of_medians": of_medians, "per_round": per_round,
                                   "p99_ratio_median": statistics.median(p99_round),
                                   "target": target,
                                   "met": (val >= target) if target else None,
                                   "floor": cfg in floors})
            res["ratios"] = ratios
            # the product config against its floor, same round: how much of the gap to (a)
            # is ours at all
            res["floor_ratios"] = []
            for mix in floor_mixes:
                for fl in floors:
                    prod = FLOOR_OF[fl]
                    x, y = cells[f"{prod}/{mix}"], cells[f"{fl}/{mix}"]
                    per_round = [u["rps"] / v["rps"] for u, v in zip(x, y) if v["rps"]]
                    cpu = {k: res["cells"][f"{k}/{mix}"] for k in ("recipe", prod, fl)}
                    res["floor_ratios"].append({
                        "mix": mix, "config": prod, "floor": fl,
                        "value": statistics.median(per_round) if per_round else None,
                        "per_round": per_round,
                        "ratio_of_medians": (res["cells"][f"{prod}/{mix}"]["median_rps"]
                                             / res["cells"][f"{fl}/{mix}"]["median_rps"]),
                        "squid_cpu_us": {k: v["median_squid_cpu_us"] for k, v in cpu.items()},
                        "helper_cpu_us": {k: v["median_helper_cpu_us"] for k, v in cpu.items()},
                        "icap_cpu_us": {k: v.get("median_icap_cpu_us") for k, v in cpu.items()}})
            res["squid_version"] = subprocess.run(
                ["squid", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
            res["conf_sample"] = open(labs["prefilter"].conf).read()
            if icap is not None:
                try:  # this run's throw-away secret, redacted all the same
                    res["icap"]["conf_sample"] = open(labs["icap-prefilter"].conf).read().replace(
                        secret, "<secret>")
                except OSError as e:  # a lab already stopped by a signal
                    res["icap"]["conf_sample"] = str(e)
                res["icap"]["c_icap_version"] = subprocess.run(
                    ["c-icap", "-V"], capture_output=True, text=True).stdout.strip()
                if FLOOR_ICAP in labs:
                    try:
                        res["floor"]["icap"]["conf_sample"] = open(labs[FLOOR_ICAP].conf).read().replace(
                            secret, "<secret>")
                    except OSError as e:
                        res["floor"]["icap"]["conf_sample"] = str(e)
                res["icap"]["config"] = {k: getattr(args, k) for k in (
                    "icap_mode", "icap_servers", "icap_threads", "icap_keepalive",
                    "icap_max_conn", "icap_access_log")} | {"icap_seconds": icap_seconds}
        finally:
            if origin is not None and origin.poll() is None:
                origin.terminate()
                try:
                    _out, err = origin.communicate(timeout=5)
                    res["origin_log"] = err.strip()
                except subprocess.TimeoutExpired:
                    origin.kill()
                    origin.wait(5)
            shutil.rmtree(tmp, ignore_errors=True)
    if floor_icap is not None and floor_icap.log:  # its counts, written when it stopped
        res["floor_icap_log"] = floor_icap.log
    return write_results(res, args.json, t0)


if __name__ == "__main__":
    sys.exit(main())
