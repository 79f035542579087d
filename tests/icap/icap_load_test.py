#!/usr/bin/python3
"""Integration test: a burst of concurrent bypassed requests from clients without
credentials, on real Squid 5.7 + ext_authbypass_acl + c-icap 0.5.10 with srv_authbypass.so
(authbypass.Verify full), configured as deployed: Squid's prefilter, http_access and ICAP
lines exactly as `authbypass squid-config --icap URL` writes them, and c-icap with the
shipped include config/c-icap/authbypass.conf (its sizing as shipped).

usage: icap_load_test.py CLI HELPER MODULE POLICY DATA_DIR

The impostor: a program named .crl that fails the check late (a genuine CRL's first
200 KB, then a Windows program; no Content-Length), so the service can only refuse it
after the preview, while the body streams: it cuts the transfer by closing the ICAP
connection, which Squid counts as a failure of the service.

Phase 1, one at a time (a fresh lab): SEQUENTIAL impostors, then genuine CRLs. With
Squid's default icap_service_failure_limit (10 per OPTIONS period) the service was
suspended after 11 to 54 of them (not every cut counts: Squid counts it when its read or
write on the ICAP connection fails, which depends on timing), and every bypassed request
got 500 for 30 s. No load is needed for that; 120 make it certain.

Phase 2, the burst (a fresh lab): BURST parallel fetches by clients without credentials
(CryptoAPI User-Agent), half impostors, half genuine ~70 KB CRLs; then, right after,
AFTER more genuine fetches.

Phase 3, the same burst in decision mode (a fresh lab): c-icap with authbypass.Mode both
and a shared secret, Squid with what `authbypass squid-config --mode icap` writes (the
REQMOD service decides and marks, RESPMOD verifies the marked responses).

Asserted:
  * every request is answered (an HTTP status within CLIENT_TIMEOUT);
  * every genuine CRL: 200 and byte-identical; in the burst, p99 latency under P99_BOUND;
  * every impostor: 403, or a transfer cut before the end (never the whole program);
  * no 500 (Squid's answer when the essential ICAP service fails or is suspended);
  * cache.log has no "suspending ICAP service" / "essential ICAP service is suspended";
  * one audit event per bypassed request (verified or blocked);
  * sizing: the connections Squid opened to c-icap (sampled during the burst) stay within
    the budget of the generated icap_service lines (sum of max-conn, plus one OPTIONS
    connection per line), and the shipped include starts more c-icap threads than that
    budget (StartServers = MaxServers, x ThreadsPerChild). The burst starts cold (no
    request before it), so Squid fetches the services' OPTIONS while it holds
    connections. A connection c-icap has no thread for waits in c-icap's accept queue
    until an idle keep-alive connection times out (KeepAliveTimeout, 60 s here): with
    1 x 10 threads, measured when this test was written, Squid's 11th connection (the
    RESPMOD service's OPTIONS fetch) waited behind 10 REQMOD keep-alive connections, and
    the whole burst with it: p50 59.8 s, 5-13 of 80 unanswered after 90 s.

The bound. P99_BOUND = 2 s for the genuine CRLs of the burst. Measured on the 2-core test
machine (Squid, c-icap, the origin and 80 curl processes all on it) with the shipped
sizing: p99 0.45 s when quiet, 0.5-1.0 s with the machine's load average at 6-8 (other
builds and tests); every run prints its figures. The bound leaves 2x margin over the
busy figure and is 30x below what the old configuration produced (500 for every
bypassed request for 30 s after the burst; ~60 s stalls with too few c-icap threads).

Squid's memory cache is on, as deployed (every URL here is unique anyway, and candidates
are never cache hits: caching is icap_cache_hole's subject).
Exit status: 0 passed, 1 failed, 77 Squid or c-icap not installed.
"""

from __future__ import annotations

import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

from lab.checks import Checks  # noqa: E402
from lab.cicap import CIcap, IcapLabError, c_icap_available  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

CRYPTOAPI = "Microsoft-CryptoAPI/10.0"
BURST = 80              # parallel fetches: half impostors, half genuine CRLs
AFTER = 20              # genuine fetches right after the burst, 10 at a time
SEQUENTIAL = 120        # impostors one at a time (phase 1)
THREAD_MARGIN = 8       # c-icap threads beyond Squid's connection budget
P99_BOUND = 2.0         # seconds, genuine CRLs of the burst (see the docstring)
AFTER_BOUND = 5.0       # seconds, each fetch after the burst
CLIENT_TIMEOUT = 90     # curl --max-time: longer than the old ~60 s stalls
GENUINE_HOST = "crl.lab-ca.test"
EVIL_HOST = "evil.example.test"
SUSPENDED = re.compile(r"suspending ICAP service|essential ICAP service is suspended", re.I)


def generated_decision_lines(cli: str, policy: str, icap_url: str, secret_file: str) -> str:
    """What `authbypass squid-config --mode icap` writes (Squid's side of decision mode:
    its own http_access lines, then REQMOD and RESPMOD), for clients on localhost."""
    r = subprocess.run([cli, "squid-config", "--mode", "icap", "--secret-file", secret_file,
                        "--clients", "localhost", "--icap", icap_url, policy],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"authbypass squid-config --mode icap failed: {r.stderr}")
    if "icap_service authbypass_resp " not in r.stdout:
        raise LabError("squid-config --mode icap wrote no RESPMOD service")
    return r.stdout


def generated_squid_lines(cli: str, policy: str, icap_url: str) -> str:
    """What `authbypass squid-config --icap URL` writes, minus the helper line (the lab's
    own, with the lab's binary and policy copy; ttl=0 instead of 60, so every request
    asks the helper, the heavier case), its `acl authbypass external` and the logformat
    (the lab logs with its own format)."""
    r = subprocess.run([cli, "squid-config", policy, "--icap", icap_url, "--no-audit"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"authbypass squid-config failed: {r.stderr}")
    keep = [line for line in r.stdout.splitlines()
            if line and not line.startswith(("#", "external_acl_type ", "logformat "))
            and line != "acl authbypass external authbypass"]
    text = "\n".join(keep) + "\n"
    for need in ("http_access allow authbypass_candidates ", "icap_service "):
        if need not in text:
            raise LabError(f"squid-config wrote no {need!r} line")
    return text


def late_program(data_dir: str) -> bytes:
    """A program named .crl that only fails the check late: the first 200 KB of a
    genuine 20 MB CRL (so the preview and the first 200 KB look right), then a Windows
    program. Served without Content-Length."""
    with open(os.path.join(data_dir, "big.crl"), "rb") as f:
        head = f.read(200_000)
    with open(os.path.join(data_dir, "app.exe"), "rb") as f:
        prog = f.read()
    return head + prog * 40  # ~8 MB


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def fetch(lab: SquidLab, url: str, out: str) -> dict:
    t0 = time.monotonic()
    r = lab.download(url, out, ua=CRYPTOAPI, timeout=CLIENT_TIMEOUT)
    r["elapsed"] = time.monotonic() - t0
    r["url"] = url
    try:
        with open(out, "rb") as f:
            r["body"] = f.read()
    except FileNotFoundError:
        r["body"] = b""
    return r


def figures(label: str, res: list[dict]) -> str:
    t = [r["elapsed"] for r in res]
    answered = sum(1 for r in res if r["status"] != 0)
    s500 = sum(1 for r in res if r["status"] == 500)
    return (f"{label}: {answered}/{len(res)} answered, 500s {s500}, "
            f"p50 {statistics.median(t):.2f} s, p99 {percentile(t, 99):.2f} s, "
            f"max {max(t):.2f} s; statuses "
            + str(sorted({r['status'] for r in res})))


def include_threads(include_text: str) -> int:
    """c-icap threads the include starts up front: StartServers x ThreadsPerChild (and
    MaxServers must equal StartServers: no child forked in the middle of a burst)."""
    v = {k: int(n) for k, n in re.findall(r"^(StartServers|MaxServers|ThreadsPerChild)\s+(\d+)",
                                          include_text, re.M)}
    if v.get("StartServers") != v.get("MaxServers"):
        return 0
    return v.get("StartServers", 0) * v.get("ThreadsPerChild", 0)


def connection_budget(squid_lines: str) -> tuple[int, int]:
    """(sum of max-conn over the icap_service lines, number of lines); max-conn absent
    counts as the service's advertised MaxConnections in the shipped include."""
    lines = [l for l in squid_lines.splitlines() if l.startswith("icap_service ")]
    total = 0
    for line in lines:
        m = re.search(r"\bmax-conn=(\d+)", line)
        total += int(m.group(1)) if m else -10_000  # unbounded: never within any budget
    return total, len(lines)


class ConnSampler:
    """Samples the established TCP connections to c-icap's port (Squid's side, from
    /proc/net/tcp) every 10 ms while running; .peak is the largest count seen."""

    def __init__(self, port: int):
        self.port, self.peak, self._stop = port, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        n = 0
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                remote, state = parts[2], parts[3]
                if state == "01" and int(remote.split(":")[1], 16) == self.port:
                    n += 1
        return n

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        return False


class Lab:
    """c-icap with the shipped include + Squid with squid-config's lines, origin routes.
    decision: authbypass.Mode both and `squid-config --mode icap` instead of the helper's
    lines."""

    def __init__(self, cli, helper, module, policy, data, *, decision: bool = False):
        self.args = (cli, helper, module, policy, data)
        self.genuine = open(os.path.join(data, "crl-70k.crl"), "rb").read()
        self.program = late_program(data)
        self.decision = decision
        self.secret = secrets.token_hex(32)
        self.ic = (CIcap(module, policy, verify="full", mode="both", secret=self.secret,
                         verbose=True) if decision
                   else CIcap(module, policy, verify="full", verbose=True))
        self.sq: SquidLab | None = None
        self.squid_lines = ""

    def __enter__(self):
        cli, helper, _module, policy, _data = self.args
        self.ic.start()
        if self.decision:
            secret_file = self.ic.path("squid-secret")  # a copy for squid-config to read
            with open(secret_file, "w") as f:
                f.write(self.secret + "\n")
            os.chmod(secret_file, 0o600)
            self.squid_lines = generated_decision_lines(cli, policy, self.ic.url, secret_file)
        else:
            self.squid_lines = generated_squid_lines(cli, policy, self.ic.url)
        self.sq = SquidLab(helper, policy, verbose=True, hosts=[GENUINE_HOST, EVIL_HOST],
                           bypass_access=self.squid_lines,
                           no_helper_cache_because="every request asks the helper: the "
                                                   "heavier case under load")
        self.sq.start()
        print(f"squid {self.sq.proxy_url}, c-icap {self.ic.url}", flush=True)
        self.sq.origin.serve("/pki/70k.crl", self.genuine, content_type="application/pkix-crl")
        self.sq.origin.serve("/late.crl", self.program, content_type="application/pkix-crl",
                             content_length=None)
        return self

    def __exit__(self, exc_type, *_):
        failed = exc_type is not None
        return self.close(failed)

    def close(self, show_logs: bool):
        if show_logs:
            if self.sq and self.sq.dir:
                print(self.sq.tail(self.sq.cache_log, 40))
            if self.ic.dir:
                print(self.ic.tail(self.ic.server_log, 30))
        if self.sq:
            self.sq.stop()
        self.ic.stop()
        return False

    def out(self, name):
        return os.path.join(self.sq.dir, name)

    def genuine_url(self, tag):
        return f"http://{GENUINE_HOST}/pki/70k.crl?{tag}"

    def evil_url(self, tag):
        return f"http://{EVIL_HOST}/late.crl?{tag}"

    def blocked(self, r: dict) -> bool:
        page = r["status"] == 403 and self.program[200_000:200_100] not in r["body"]
        cut = r["status"] == 200 and r["curl_rc"] != 0 and r["size"] < len(self.program)
        return page or cut

    def check_logs(self, checks: Checks, phase: str, want_events: int, want_blocked: int):
        log = self.sq.read(self.sq.cache_log)
        susp = [line for line in log.splitlines() if SUSPENDED.search(line)]
        checks.expect(not susp, f"[{phase}] cache.log: the ICAP service was never suspended",
                      " | ".join(susp[:3]))
        fatal = re.findall(r".*(?:FATAL|assertion failed).*", log)
        checks.expect(not fatal, f"[{phase}] cache.log: no FATAL", " | ".join(fatal[:3]))

        def events():
            evs = [e for e in self.ic.audit_events() if e.get("event") in ("verified", "blocked")]
            return evs if len(evs) >= want_events else None
        evs = self.sq.wait_for(events, 10) or [
            e for e in self.ic.audit_events() if e.get("event") in ("verified", "blocked")]
        blocked = sum(1 for e in evs if e["event"] == "blocked")
        checks.expect(len(evs) == want_events and blocked == want_blocked,
                      f"[{phase}] audit: {len(evs)} events for {want_events} bypassed requests, "
                      f"{blocked} blocked (want {want_blocked})")


def phase_sequential(lab: Lab, checks: Checks):
    print(f"== one at a time: {SEQUENTIAL} late-failing impostors, then 3 genuine CRLs",
          flush=True)
    res = [fetch(lab.sq, lab.evil_url(f"s{i}"), lab.out("s")) for i in range(SEQUENTIAL)]
    good = [fetch(lab.sq, lab.genuine_url(f"s{i}"), lab.out("g")) for i in range(3)]
    print("   " + figures("impostors", res))
    print("   " + figures("genuine after them", good), flush=True)
    leaked = [(r["url"], r["status"], r["curl_rc"], r["size"]) for r in res if not lab.blocked(r)]
    checks.expect(not leaked, f"[sequential] {SEQUENTIAL} impostors: 403 or cut, never whole",
                  f"{len(leaked)} not: {leaked[:5]}")
    bad = [(r["url"], r["status"]) for r in good
           if not (r["status"] == 200 and r["body"] == lab.genuine)]
    checks.expect(not bad, "[sequential] genuine CRLs after them: 200, byte-identical",
                  str(bad))
    lab.check_logs(checks, "sequential", SEQUENTIAL + 3, SEQUENTIAL)


def phase_burst(lab: Lab, checks: Checks):
    tag = "burst, decision mode" if lab.decision else "burst"
    # Cold: no request before the burst, so Squid fetches each service's OPTIONS (one more
    # connection per icap_service line) while the burst holds connections.
    urls = []
    for i in range(BURST // 2):
        urls.append((True, lab.genuine_url(i)))
        urls.append((False, lab.evil_url(i)))
    print(f"== {tag}: {BURST} parallel fetches without credentials "
          f"({BURST // 2} late-failing impostors, {BURST // 2} genuine 70 KB CRLs)", flush=True)
    t0 = time.monotonic()
    with ConnSampler(lab.ic.port) as conns:
        with ThreadPoolExecutor(BURST) as pool:
            res = list(pool.map(lambda iu: fetch(lab.sq, iu[1][1], lab.out(f"b{iu[0]}")),
                                enumerate(urls)))
        print(f"   (burst took {time.monotonic() - t0:.1f} s)")
        good_res = [r for (g, _), r in zip(urls, res) if g]
        evil_res = [r for (g, _), r in zip(urls, res) if not g]
        print("   " + figures("all", res))
        print("   " + figures("genuine", good_res))
        print("   " + figures("impostors", evil_res), flush=True)

        unanswered = [r["url"] for r in res if r["status"] == 0]
        checks.expect(not unanswered, f"[{tag}] all {BURST} requests answered",
                      f"{len(unanswered)} unanswered, e.g. {unanswered[:3]}")
        s500 = [r["url"] for r in res if r["status"] == 500]
        checks.expect(not s500, f"[{tag}] no 500", f"{len(s500)} answered 500, e.g. {s500[:3]}")
        bad = [(r["url"], r["status"], r["curl_rc"], r["size"]) for r in good_res
               if not (r["status"] == 200 and r["curl_rc"] == 0 and r["body"] == lab.genuine)]
        checks.expect(not bad, f"[{tag}] {len(good_res)} genuine CRLs: 200, byte-identical",
                      f"{len(bad)} not: {bad[:5]}")
        p99 = percentile([r["elapsed"] for r in good_res], 99)
        checks.expect(p99 < P99_BOUND, f"[{tag}] genuine CRLs: p99 {p99:.2f} s < {P99_BOUND} s")
        leaked = [(r["url"], r["status"], r["curl_rc"], r["size"]) for r in evil_res
                  if not lab.blocked(r)]
        checks.expect(not leaked, f"[{tag}] {len(evil_res)} impostors: 403 or cut, never whole",
                      f"{len(leaked)} not: {leaked[:5]}")

        print(f"== right after the burst: {AFTER} genuine fetches, 10 at a time", flush=True)
        with ThreadPoolExecutor(10) as pool:
            after = list(pool.map(lambda i: fetch(lab.sq, lab.genuine_url(f"after{i}"),
                                                  lab.out(f"a{i}")), range(AFTER)))
    print("   " + figures("after", after), flush=True)
    bad = [(r["url"], r["status"], round(r["elapsed"], 2)) for r in after
           if not (r["status"] == 200 and r["body"] == lab.genuine
                   and r["elapsed"] < AFTER_BOUND)]
    checks.expect(not bad, f"[{tag}] after it: {AFTER} genuine CRLs 200 within {AFTER_BOUND} s",
                  str(bad[:5]))
    lab.check_logs(checks, tag, BURST + AFTER, BURST // 2)

    budget, lines = connection_budget(lab.squid_lines)
    threads = include_threads(open(lab.ic.path("authbypass.conf")).read())
    print(f"   sizing: Squid opened at most {conns.peak} connections to c-icap; budget "
          f"{budget} (max-conn) + {lines} (OPTIONS); c-icap threads {threads}", flush=True)
    checks.expect(budget > 0 and conns.peak <= budget + lines,
                  f"[{tag}] Squid kept within its ICAP connection budget ({conns.peak} <= "
                  f"{budget} + {lines})")
    checks.expect(budget > 0 and threads >= budget + lines + THREAD_MARGIN,
                  f"[{tag}] the shipped include starts {threads} c-icap threads >= budget "
                  f"{budget} + {lines} + {THREAD_MARGIN}")


def run(cli, helper, module, policy, data, checks: Checks):
    for phase, decision in ((phase_sequential, False), (phase_burst, False),
                            (phase_burst, True)):
        lab = Lab(cli, helper, module, policy, data, decision=decision)
        n_fail = len(checks.failures)
        try:
            with lab:
                phase(lab, checks)
                if len(checks.failures) > n_fail:
                    lab.close(True)
        except (LabError, IcapLabError, OSError) as e:
            checks.failures.append(f"lab error: {e}")
            print(f"  FAIL  lab error: {e}", flush=True)
        checks.expect(not lab.ic.leftover_pids and not (lab.sq and lab.sq.leftover_pids),
                      "c-icap children and helpers exited with their parents")


def main(argv) -> int:
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    cli, helper, module, policy, data = argv[1:]
    if not squid_available() or not c_icap_available():
        print("SKIP: squid / curl / openssl / c-icap not installed (scripts/setup installs them)")
        return 77
    checks = Checks()
    t0 = time.monotonic()
    run(cli, helper, module, policy, data, checks)
    print(f"({time.monotonic() - t0:.1f} s)")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
