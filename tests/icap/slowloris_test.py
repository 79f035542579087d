#!/usr/bin/python3
"""Fault test: slow and stalled ICAP clients, endless bodies and an endless
ICAP header against a real c-icap 0.5.10 with srv_authbypass.so (verify mode, full).

usage: slowloris_test.py MODULE DATA_DIR [--servers 2] [--threads 4] [--timeout 3]
                         [--slack 5] [--header-mib 32] [--only PHASE,...] [--strict]
                         [--json OUT]

c-icap runs StartServers = MaxServers = --servers children of --threads worker threads
(T = servers x threads; 2 x 4 = 8 here), Timeout and KeepAliveTimeout --timeout seconds.
Every open connection that c-icap has accepted holds one worker thread until its request
is over. A "probe" is a normal client: a genuine CRL (must get 204) and an HTML page
named .crl (must get the 403 page), each bypassed by the test policy, each a fresh
connection. Phases:

  stalled   3T connections, one third idle (connected, nothing sent), one third stopped
            in the middle of the ICAP header, one third stopped in the middle of the
            chunked body (after the preview and c-icap's 100 Continue). Checks: c-icap
            drops every one within (ceil(3T/T) + 1) x Timeout + slack, none gets anything
            but nothing or 100 Continue (no 204, no 200), each stalled body ends in a
            `blocked`/`incomplete` audit event; probes sent meanwhile get their correct
            answers within that bound, and at once once the stalled ones are gone.
  drip      slow-loris proper: clients that send the ICAP header one byte per
            Timeout/3 s, never finishing it. c-icap's Timeout is per read, so they are
            never dropped. T-1 of them: probes still answered at once. T and 2T of them:
            every thread is held; the test records whether probes are answered within
            3 x Timeout (c-icap 0.5.10: not at all, "Not enough available servers" in its
            log: a KNOWN C-ICAP LIMITATION, a failure only with --strict) and checks that
            the queued probe gets its correct answer as soon as the drippers go, and that
            nothing wrong is ever answered.
  spawn     StartServers 1, MaxServers 2: ThreadsPerChild drippers hold the first child;
            c-icap starts the second and probes are answered at once (the number of
            drippers that starves c-icap is MaxServers x ThreadsPerChild).
  client_access
            the bound c-icap offers: a second listening port for "other clients" and
            `client_access` allowing only the Squid port. 2T drippers on the other port
            are refused at once (403, closed: they never hold a thread) while probes on
            the Squid port are answered at once. (c-icap 0.5.10 compares an `acl ... port`
            value in network byte order: the test lists both byte orders. In production
            use `acl squid src <Squid's address>/255.255.255.255` instead.)
  bodies    Content-Length 1000 with a 20 MB body; a genuine 20 MB CRL followed by an
            endless body (with and without Content-Length); an endless junk body. Checks:
            fail closed (a 403 page, or the transfer cut without its final chunk and
            without the CRL's last bytes; never 204, never a complete 200), the audit
            event says why, and the peak RSS (VmHWM) of c-icap's children grows by less
            than 32 MiB while hundreds of MB stream through.
  header    an endless ICAP request header (32 MiB, no CRLFCRLF): c-icap 0.5.10 has no
            header size limit and keeps all of it (a KNOWN C-ICAP LIMITATION, reported
            with the figures; a failure only with --strict); c-icap keeps serving.

Exit status: 0 passed, 1 failed, 77 c-icap not installed (ctest SKIP_RETURN_CODE).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))

from lab.checks import Checks  # noqa: E402
from lab.cicap import (CIcap, IcapLabError, c_icap_available, decode_icap_body,  # noqa: E402
                     free_port, icap_request)

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
MIB = 1 << 20


# ---- ICAP messages ---------------------------------------------------------------------

def respmod_head(port: int, url: str, ct: str, cl: int | None, preview: int | None = 1024,
                 connection_close: bool = True) -> bytes:
    host = url.split("/")[2]
    rq = (f"GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {UA}\r\n\r\n").encode()
    rs = ("HTTP/1.1 200 OK\r\n" + f"Content-Type: {ct}\r\n"
          + (f"Content-Length: {cl}\r\n" if cl is not None else "") + "\r\n").encode()
    head = [f"RESPMOD icap://127.0.0.1:{port}/authbypass ICAP/1.0", f"Host: 127.0.0.1:{port}",
            f"Encapsulated: req-hdr=0, res-hdr={len(rq)}, res-body={len(rq) + len(rs)}",
            "Allow: 204", f"X-Client-IP: {CLIENT}"]
    if connection_close:
        head.append("Connection: close")
    if preview is not None:
        head.append(f"Preview: {preview}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + rq + rs


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Prober:
    """Normal clients: a genuine CRL (204) and an HTML page named .crl (403 page)."""

    def __init__(self, crl: bytes, page: bytes):
        self.crl, self.page = crl, page
        self.n = 0
        self.lock = threading.Lock()

    def probe(self, port: int, timeout: float) -> tuple[bool, float, str]:
        """Both requests; (both answered correctly, seconds for both, detail)."""
        with self.lock:
            self.n += 1
            n = self.n
        t0 = time.monotonic()
        details = []
        ok = True
        for what, body, ct, want in (("genuine", self.crl, "application/pkix-crl", 204),
                                     ("impostor", self.page, "text/html", 403)):
            url = f"http://crl.lab.test/probe-{n}-{what}.crl"
            left = max(0.5, timeout - (time.monotonic() - t0))
            try:
                st, lines, rest = icap_request(
                    port, "RESPMOD", icap_headers=[f"X-Client-IP: {CLIENT}"],
                    req_hdr=[f"GET {url} HTTP/1.1", "Host: crl.lab.test", f"User-Agent: {UA}"],
                    res_hdr=["HTTP/1.1 200 OK", f"Content-Type: {ct}",
                             f"Content-Length: {len(body)}"],
                    body=body, preview=1024, timeout=left)
            except OSError as e:
                ok = False
                details.append(f"{what}: {e!r}")
                continue
            if want == 204:
                good = st == 204
            else:
                http, page, complete = decode_icap_body(rest, lines) if st == 200 else ([], b"", False)
                good = st == 200 and bool(http) and " 403 " in http[0] and complete \
                    and b"Forbidden" in page
            ok = ok and good
            details.append(f"{what}: ICAP {st}" + ("" if good else " (wrong)"))
        return ok, time.monotonic() - t0, "; ".join(details)


def wait_closed(s: socket.socket, timeout: float) -> tuple[float | None, bytes]:
    """Reads until the server closes; (seconds until closed or None, bytes received)."""
    t0 = time.monotonic()
    got = b""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return time.monotonic() - t0, got
            got += b
    except ConnectionResetError:
        return time.monotonic() - t0, got
    except (socket.timeout, OSError):
        return None, got


class Dripper(threading.Thread):
    """Sends an ICAP request header one byte every `interval` seconds, never its end;
    notes whether and when the server closed the connection and what it sent."""

    def __init__(self, port: int, interval: float, idx: int):
        super().__init__(daemon=True)
        self.port, self.interval, self.idx = port, interval, idx
        self.stop = threading.Event()
        self.closed_after: float | None = None
        self.received = b""
        self.sent = 0
        self.error = ""

    def run(self):
        head = (f"RESPMOD icap://127.0.0.1:{self.port}/authbypass ICAP/1.0\r\n"
                f"Host: 127.0.0.1:{self.port}\r\nX-Client-IP: {CLIENT}\r\nX-Slow: "
                ).encode() + b"s" * 100000
        t0 = time.monotonic()
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        except OSError as e:
            self.error = repr(e)
            return
        try:
            for b in head:
                if self.stop.is_set():
                    return
                try:
                    s.sendall(bytes([b]))
                    self.sent += 1
                except OSError:
                    self.closed_after = time.monotonic() - t0
                    return
                r, _, _ = select.select([s], [], [], self.interval)
                if r:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    self.received += data
                    if not data:
                        self.closed_after = time.monotonic() - t0
                        return
        finally:
            s.close()


def stream_body(port: int, url: str, cl: int | None, parts, limit: int,
                ct: str = "application/pkix-crl") -> dict:
    """One RESPMOD: the first 1024 bytes of `parts` as the preview, then (after 100
    Continue) the rest as chunks from a sender thread, without a final chunk, until the
    server closes or `limit` bytes are sent, while the answer is read. Returns what
    happened."""
    it = iter(parts)
    first = b""
    for p in it:
        first += p
        if len(first) >= 1024:
            break
    pv, rest0 = first[:1024], first[1024:]
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(respmod_head(port, url, ct, cl) + chunk(pv) + b"0\r\n\r\n")
    out = {"sent": len(pv), "sender_end": "", "first_answer_s": None, "final_chunk_s": None,
           "closed_s": None}
    data = b""
    s.settimeout(30)
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    out["continue"] = data.startswith(b"ICAP/1.0 100")
    t0 = time.monotonic()
    sender = None
    if out["continue"]:
        data = data[data.index(b"\r\n\r\n") + 4:]

        def send():
            try:
                if rest0:
                    s.sendall(chunk(rest0))
                    out["sent"] += len(rest0)
                for p in it:
                    s.sendall(chunk(p))
                    out["sent"] += len(p)
                    if out["sent"] >= limit:
                        out["sender_end"] = "limit reached"
                        return
                out["sender_end"] = "body ended"
            except OSError as e:
                out["sender_end"] = f"server closed ({e.__class__.__name__}) after " \
                                    f"{time.monotonic() - t0:.2f} s"
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
    buf = bytearray(data)
    while True:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            out["recv_end"] = "timeout"
            break
        except OSError as e:
            out["recv_end"] = e.__class__.__name__
            break
        if not b:
            out["recv_end"] = "EOF"
            break
        if out["first_answer_s"] is None:
            out["first_answer_s"] = time.monotonic() - t0
        buf += b
        if out["final_chunk_s"] is None and buf.endswith(b"\r\n0\r\n\r\n"):
            out["final_chunk_s"] = time.monotonic() - t0
    out["closed_s"] = time.monotonic() - t0
    if sender:
        sender.join(30)
    s.close()
    raw = bytes(buf)
    if b"\r\n\r\n" in raw:
        hdr, rest = raw.split(b"\r\n\r\n", 1)
        lines = hdr.decode("latin-1").split("\r\n")
        out["icap"] = lines[0]
        http, body, complete = decode_icap_body(rest, lines)
        out["http"] = http[0] if http else ""
        out["body"] = body
        out["complete"] = complete
    else:
        out.update(icap="", http="", body=b"", complete=False)
    return out


def max_hwm_growth(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> int:
    """Largest VmHWM growth of a c-icap child (bytes); a child new since `before` counts
    from 0."""
    return max((hwm - before.get(pid, (0, 0))[1] for pid, (_r, hwm) in after.items()), default=0)


# ---- phases ----------------------------------------------------------------------------

def phase_stalled(ic: CIcap, a, prober: Prober, checks: Checks, big: bytes, fig: dict):
    T = a.servers * a.threads
    K = 3 * T
    waves = math.ceil(K / T)
    bound = (waves + 1) * a.timeout + a.slack
    print(f"== stalled: {K} connections (idle / mid-header / mid-body) against {T} threads, "
          f"Timeout {a.timeout} s; bound {bound:g} s", flush=True)
    results: list[dict] = [{} for _ in range(K)]

    def stalled(i: int):
        kind = ("idle", "mid-header", "mid-body")[i % 3]
        r = results[i]
        r["kind"] = kind
        url = f"http://crl.lab.test/stalled-{i}.crl"
        t0 = time.monotonic()
        try:
            s = socket.create_connection(("127.0.0.1", ic.port), timeout=10)
        except OSError as e:
            r["error"] = repr(e)
            return
        try:
            if kind == "mid-header":
                s.sendall(respmod_head(ic.port, url, "application/pkix-crl", len(big))[:60])
            elif kind == "mid-body":
                s.sendall(respmod_head(ic.port, url, "application/pkix-crl", len(big))
                          + chunk(big[:1024]) + b"0\r\n\r\n")
                s.settimeout(bound + 10)
                data = b""
                while b"\r\n\r\n" not in data:
                    b = s.recv(4096)
                    if not b:
                        break
                    data += b
                r["continue_s"] = time.monotonic() - t0
                r["pre"] = data
                if data.startswith(b"ICAP/1.0 100"):
                    s.sendall(b"4000\r\n" + big[1024:1124])  # a 16 KiB chunk, 100 bytes of it
                else:
                    r["closed_s"] = r["continue_s"]
                    r["data"] = data
                    return
            closed, data = wait_closed(s, bound + 10)
            r["closed_s"] = None if closed is None else time.monotonic() - t0
            r["data"] = data
        finally:
            s.close()

    threads = [threading.Thread(target=stalled, args=(i,), daemon=True) for i in range(K)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
        time.sleep(0.005)
    time.sleep(0.5)
    during = []
    # probes while the stalled connections hold every thread
    for _ in range(2):
        ok, secs, detail = prober.probe(ic.port, bound + 5)
        during.append((ok, secs, detail))
        if time.monotonic() - t_start > bound:
            break
    for t in threads:
        t.join(bound + 15)
    all_gone = time.monotonic() - t_start
    after = prober.probe(ic.port, 5)
    lifetimes = [r.get("closed_s") for r in results]
    dropped = [x for x in lifetimes if x is not None]
    answered = [r for r in results if b"ICAP/1.0 2" in r.get("data", b"")]
    fig["stalled"] = {"connections": K, "threads": T, "timeout_s": a.timeout,
                      "bound_s": bound, "dropped": len(dropped),
                      "max_lifetime_s": round(max(dropped, default=0), 2),
                      "min_lifetime_s": round(min(dropped, default=0), 2),
                      "probe_latencies_s": [round(s, 2) for _o, s, _d in during],
                      "probe_after_s": round(after[1], 3), "all_gone_s": round(all_gone, 2)}
    checks.expect(len(dropped) == K and max(dropped, default=0) <= bound,
                  f"c-icap dropped all {K} stalled connections, each within "
                  f"{max(dropped, default=0):.1f} s (first {min(dropped, default=0):.1f} s; "
                  f"bound {bound:g} s)",
                  f"{K - len(dropped)} still open: {[r.get('kind') for r in results if r.get('closed_s') is None]}")
    checks.expect(not answered, "no stalled connection got a 2xx (no 204, no 200)",
                  str([r.get("data")[:80] for r in answered]))
    mid = [r for r in results if r.get("kind") == "mid-body"]
    checks.expect(all(r.get("pre", b"").startswith(b"ICAP/1.0 100") for r in mid),
                  f"the {len(mid)} mid-body clients got 100 Continue after their preview "
                  f"(within {max((r.get('continue_s', 0) for r in mid), default=0):.1f} s)")
    for ok, secs, detail in during:
        checks.expect(ok and secs <= bound,
                      f"probe while {K} stalled connections were open: correct answers in "
                      f"{secs:.2f} s (bound {bound:g} s)", detail)
    checks.expect(after[0] and after[1] < 2.0,
                  f"probe after they were dropped: correct answers in {after[1]:.3f} s", after[2])
    # the stalled bypassed bodies: one `blocked`/`incomplete` event each, never verified
    deadline = time.monotonic() + 5
    while True:
        evs = [e for e in ic.audit_events() if "/stalled-" in str(e.get("url", ""))]
        if len(evs) >= len(mid) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    want_urls = {f"http://crl.lab.test/stalled-{i}.crl" for i in range(K) if i % 3 == 2}
    incomplete = [e for e in evs if e.get("event") == "blocked" and e.get("verdict") == "incomplete"]
    checks.expect({e.get("url") for e in incomplete} == want_urls and len(evs) == len(mid),
                  f"{len(incomplete)} audit events 'blocked'/'incomplete' for the "
                  f"{len(mid)} stalled bodies, no other event for them",
                  str([(e.get("url"), e.get("event"), e.get("verdict")) for e in evs]))


def phase_drip(ic: CIcap, a, prober: Prober, checks: Checks, fig: dict):
    T = a.servers * a.threads
    interval = a.timeout / 3
    fig["drip"] = {"interval_s": interval, "threads": T}
    for n in (T - 1, T, 2 * T):
        window = 3 * a.timeout
        print(f"== drip: {n} clients sending the ICAP header one byte per {interval:g} s "
              f"({T} threads)", flush=True)
        drippers = [Dripper(ic.port, interval, i) for i in range(n)]
        for d in drippers:
            d.start()
        time.sleep(1.5 * interval)
        t0 = time.monotonic()
        if n < T:
            ok, secs, detail = prober.probe(ic.port, 10)
            checks.expect(ok and secs < 2.0,
                          f"{n} drippers (threads - 1): probe answered correctly in {secs:.2f} s",
                          detail)
            fig["drip"][str(n)] = {"probe_s": round(secs, 3), "ok": ok}
        else:
            # the probe waits in c-icap's queue; the drippers stop after `window`
            res: dict = {}

            def run_probe():
                res["r"] = prober.probe(ic.port, window + 20)
            pt = threading.Thread(target=run_probe, daemon=True)
            pt.start()
            pt.join(window)
            starved = pt.is_alive()
            still_open = sum(1 for d in drippers if d.is_alive() and d.closed_after is None)
            stopped_at = time.monotonic()
            for d in drippers:
                d.stop.set()
            pt.join(window + 25)
            ok, secs, detail = res.get("r", (False, float("inf"), "no result"))
            wait_after_stop = (t0 + secs) - stopped_at
            not_enough = "Not enough available servers" in ic.read(ic.server_log)
            fig["drip"][str(n)] = {"starved_s": round(window, 1) if starved else 0,
                                   "probe_s": round(secs, 2),
                                   "probe_after_drippers_left_s": round(max(0, wait_after_stop), 2),
                                   "drippers_open_at_end": still_open,
                                   "bytes_per_dripper": max(d.sent for d in drippers),
                                   "not_enough_servers_logged": not_enough}
            checks.expect(still_open == n,
                          f"{n} drippers: c-icap's Timeout ({a.timeout} s, per read) did not "
                          f"drop them: {still_open} of {n} still open after {window:g} s")
            if starved:
                checks.limitation(
                    f"{n} drippers >= {T} threads (MaxServers x ThreadsPerChild): no answer "
                    f"for {window:g} s to any other client"
                    + (" ('Not enough available servers' in the server log)" if not_enough else ""))
            else:
                print(f"  note  {n} drippers: the probe was answered within {window:g} s", flush=True)
            checks.expect(ok and max(0, wait_after_stop) < interval + a.slack,
                          f"{n} drippers: the queued probe got correct answers "
                          f"{max(0, wait_after_stop):.2f} s after the drippers left "
                          f"({secs:.2f} s in all)", detail)
        for d in drippers:
            d.stop.set()
        for d in drippers:
            d.join(5)
        time.sleep(0.3)


def phase_spawn(a, module: str, policy: str, prober: Prober, checks: Checks, fig: dict):
    """StartServers 1, MaxServers 2: drippers holding the first child's threads make c-icap
    start the second; the bound is MaxServers x ThreadsPerChild, not StartServers."""
    n = a.threads
    print(f"== spawn: StartServers 1, MaxServers 2, {a.threads} threads each; {n} drippers",
          flush=True)
    ic = CIcap(module, policy, verify="full", servers=1, threads=a.threads,
               timeout=a.timeout, keepalive_timeout=a.timeout,
               extra_conf="MaxServers 2\nMinSpareThreads 1\nMaxSpareThreads 100\n")
    drippers: list[Dripper] = []
    try:
        ic.start()
        before = len(ic.children_memory())
        drippers += [Dripper(ic.port, a.timeout / 3, i) for i in range(n)]
        for d in drippers:
            d.start()
        deadline = time.monotonic() + 5 + a.slack
        while len(ic.children_memory()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        after = len(ic.children_memory())
        ok, secs, detail = prober.probe(ic.port, 10)
        fig["spawn"] = {"drippers": n, "children_before": before, "children_after": after,
                        "probe_s": round(secs, 3)}
        checks.expect(before == 1 and after == 2 and ok and secs < 2.0,
                      f"{n} drippers hold the only child's {a.threads} threads: c-icap started a "
                      f"second child ({before} -> {after}) and the probe got correct answers "
                      f"in {secs:.2f} s", detail)
    finally:
        for d in drippers:
            d.stop.set()
        ic.stop()


def phase_client_access(a, module: str, policy: str, prober: Prober, checks: Checks,
                        fig: dict):
    T = a.servers * a.threads
    other = {}

    def swapped(p: int) -> int:
        return int.from_bytes(p.to_bytes(2, "big"), "little")

    def conf(lab: CIcap) -> str:
        # c-icap 0.5.10 compares `acl NAME port N` against the port in network byte order:
        # list both orders, so that this works whichever way c-icap compares.
        while True:
            q = free_port()
            if {q, swapped(q)}.isdisjoint({lab.port, swapped(lab.port)}):
                break
        other["port"] = q
        return (f"Port 127.0.0.1:{q}\n"
                f"acl squid_port port {lab.port} {swapped(lab.port)}\n"
                "acl all src 0.0.0.0/0.0.0.0\n"
                "client_access allow squid_port\n"
                "client_access deny all\n")

    print(f"== client_access: only the Squid port is served; {2 * T} drippers on the other",
          flush=True)
    ic = CIcap(module, policy, verify="full", servers=a.servers, threads=a.threads,
               timeout=a.timeout, keepalive_timeout=a.timeout, extra_conf=conf)
    drippers: list[Dripper] = []
    try:
        ic.start()
        q = other["port"]
        drippers += [Dripper(q, a.timeout / 3, i) for i in range(2 * T)]
        for d in drippers:
            d.start()
        time.sleep(1.0)
        lat = []
        for _ in range(3):
            ok, secs, detail = prober.probe(ic.port, 10)
            lat.append(secs)
            checks.expect(ok and secs < 2.0,
                          f"probe on the Squid port while {2 * T} drippers try the other: "
                          f"correct answers in {secs:.2f} s", detail)
            time.sleep(0.5)
        for d in drippers:
            d.join(10)
        # refused: the 403 and the close, or a reset that overtook them (even in connect)
        refused = [d for d in drippers
                   if (d.closed_after is not None and d.closed_after < 3
                       and (d.received.startswith(b"ICAP/1.0 403") or not d.received))
                   or "ConnectionReset" in d.error]
        with403 = sum(1 for d in drippers if d.received.startswith(b"ICAP/1.0 403"))
        worst = max(((d.closed_after or 0) for d in drippers), default=0)
        fig["client_access"] = {"drippers": 2 * T, "refused": len(refused),
                                "refused_with_403": with403,
                                "max_refused_after_s": round(worst, 2),
                                "bytes_per_dripper": max((d.sent for d in drippers), default=0),
                                "probe_s": [round(x, 3) for x in lat]}
        checks.expect(len(refused) == len(drippers),
                      f"all {len(drippers)} drippers on the other port refused at once "
                      f"({with403} saw 'ICAP/1.0 403 Forbidden', the others a reset; closed "
                      f"within {worst:.2f} s of connecting, after at most "
                      f"{fig['client_access']['bytes_per_dripper']} bytes): none held a thread",
                      str([(d.closed_after, d.received[:30], d.error) for d in drippers
                           if d not in refused][:4]))
    finally:
        for d in drippers:
            d.stop.set()
        ic.stop()


def phase_bodies(ic: CIcap, a, prober: Prober, checks: Checks, big: bytes, fig: dict):
    print("== bodies: larger than announced, endless, junk; memory", flush=True)

    def big_then(fill: bytes):
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]
        blk = fill * 65536
        while True:
            yield blk

    def endless(fill: bytes):
        blk = fill * 65536
        while True:
            yield blk

    mem0 = ic.children_memory()
    peak_samples: list[int] = []
    sampling = threading.Event()

    def sampler():
        while not sampling.is_set():
            mem = ic.children_memory()
            if mem:
                peak_samples.append(max(r for r, _h in mem.values()))
            time.sleep(0.1)
    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    cases = [
        ("cl1000", "Content-Length 1000, a 20 MB CRL as body", 1000, big_then(b"\0"),
         len(big), "403"),
        ("endless-cl", "genuine 20 MB CRL + endless bytes, Content-Length = the CRL's",
         len(big), big_then(b"\0"), 256 * MIB, "cut"),
        ("endless-nocl", "genuine 20 MB CRL + endless bytes, no Content-Length", None,
         big_then(b"\0"), 256 * MIB, "cut"),
        ("junk", "endless junk body, no Content-Length (128 MB sent)", None, endless(b"A"),
         128 * MIB, "403"),
    ]
    total = 0
    fig["bodies"] = {}
    for key, label, cl, parts, limit, want in cases:
        url = f"http://crl.lab.test/body-{key}.crl"
        t0 = time.monotonic()
        r = stream_body(ic.port, url, cl, parts, limit)
        secs = time.monotonic() - t0
        total += r["sent"]
        body = r["body"]
        f = {"sent": r["sent"], "sender_end": r["sender_end"], "icap": r["icap"],
             "http": r["http"], "body_bytes": len(body), "complete": r["complete"],
             "first_answer_s": r["first_answer_s"] and round(r["first_answer_s"], 3),
             "seconds": round(secs, 2)}
        fig["bodies"][key] = f
        no204 = not r["icap"].startswith("ICAP/1.0 204")
        if want == "403":
            checks.expect(no204 and r["icap"].startswith("ICAP/1.0 200") and " 403 " in r["http"]
                          and r["complete"] and b"Forbidden" in body
                          and (r["first_answer_s"] or 99) < 2.0,
                          f"{label}: the 403 page, complete, {r['first_answer_s'] or 0:.2f} s after "
                          f"100 Continue; {r['sent'] / MIB:.0f} MiB sent ({r['sender_end']})",
                          str({k: v for k, v in f.items()}))
        else:
            checks.expect(no204 and not r["complete"] and len(body) < len(big)
                          and r["sent"] < len(big) + 16 * MIB,
                          f"{label}: transfer cut without the final chunk; the client got "
                          f"{len(body):,} of the CRL's {len(big):,} bytes; "
                          f"{r['sent'] / MIB:.1f} MiB sent ({r['sender_end']})",
                          str({k: v for k, v in f.items()}))
        deadline = time.monotonic() + 5
        evs = []
        while time.monotonic() < deadline:
            evs = [e for e in ic.audit_events() if e.get("url") == url]
            if evs:
                break
            time.sleep(0.05)
        ev = evs[0] if len(evs) == 1 else {}
        f["audit"] = {k: ev.get(k) for k in ("event", "verdict", "reason", "bytes")}
        checks.expect(ev.get("event") == "blocked"
                      and (ev.get("verdict") == "blocked (403)" if want == "403"
                           else str(ev.get("verdict", "")).startswith("aborted after")),
                      f"{label}: one audit event: {ev.get('event')} / {ev.get('verdict')} / "
                      f"{ev.get('reason')}", str(evs))
    sampling.set()
    st.join(2)
    mem1 = ic.children_memory()
    growth = max_hwm_growth(mem0, mem1)
    fig["bodies"]["sent_total"] = total
    fig["bodies"]["hwm_before"] = max((h for _r, h in mem0.values()), default=0)
    fig["bodies"]["hwm_after"] = max((h for _r, h in mem1.values()), default=0)
    fig["bodies"]["hwm_growth"] = growth
    fig["bodies"]["rss_peak_sampled"] = max(peak_samples, default=0)
    checks.expect(growth < 32 * MIB,
                  f"c-icap children's peak RSS grew by {growth / MIB:.1f} MiB while "
                  f"{total / MIB:,.0f} MiB of bodies streamed (limit 32 MiB; VmHWM "
                  f"{fig['bodies']['hwm_before'] / MIB:.1f} -> {fig['bodies']['hwm_after'] / MIB:.1f} MiB)")
    ok, secs, detail = prober.probe(ic.port, 10)
    checks.expect(ok, f"probe after the bodies: correct answers in {secs:.3f} s", detail)


def phase_header(ic: CIcap, a, prober: Prober, checks: Checks, fig: dict):
    size = a.header_mib * MIB
    print(f"== header: an endless ICAP request header ({a.header_mib} MiB, no CRLFCRLF)",
          flush=True)
    mem0 = ic.children_memory()
    s = socket.create_connection(("127.0.0.1", ic.port), timeout=30)
    t0 = time.monotonic()
    sent = 0
    end = ""
    try:
        s.sendall(f"RESPMOD icap://127.0.0.1:{ic.port}/authbypass ICAP/1.0\r\nX-Endless: "
                  .encode())
        blk = b"h" * MIB
        while sent < size:
            s.sendall(blk)
            sent += len(blk)
        end = "all sent"
        time.sleep(0.3)
    except OSError as e:
        end = f"server closed after {sent / MIB:.0f} MiB ({e.__class__.__name__})"
    mem1 = ic.children_memory()
    s.close()
    secs = time.monotonic() - t0
    time.sleep(0.5)
    mem2 = ic.children_memory()  # after the close: is the memory given back?
    growth = max_hwm_growth(mem0, mem1)
    kept = max((mem2[p][0] - mem0.get(p, (0, 0))[0] for p in mem2), default=0)
    fig["header"] = {"sent": sent, "end": end, "seconds": round(secs, 2),
                     "hwm_growth": growth, "rss_kept_after_close": kept}
    if growth > 16 * MIB:
        checks.limitation(f"an endless ICAP header: {sent / MIB:.0f} MiB sent ({end}), a c-icap "
                          f"child's peak RSS grew by {growth / MIB:.0f} MiB, {kept / MIB:.0f} MiB still held "
                          "0.5 s after the close (c-icap 0.5.10 has no header size limit)")
    else:
        print(f"  note  endless header: c-icap's peak RSS grew by {growth / MIB:.1f} MiB "
              f"({end})", flush=True)
    ok, secs, detail = prober.probe(ic.port, 10)
    checks.expect(ok and ic.alive(), f"c-icap alive and probe answered correctly ({secs:.3f} s)",
                  detail)


def main(argv) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("module")
    ap.add_argument("data")
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--timeout", type=int, default=3)
    ap.add_argument("--slack", type=float, default=5.0,
                    help="seconds added to every time bound (loaded CI machines)")
    ap.add_argument("--header-mib", type=int, default=32)
    ap.add_argument("--strict", action="store_true",
                    help="known c-icap limitations fail the test too")
    ap.add_argument("--only", default="",
                    help="comma-separated phases to run (default: all): stalled, drip, "
                         "bodies, header, spawn, client_access")
    ap.add_argument("--json")
    a = ap.parse_args(argv[1:])
    only = set(filter(None, a.only.split(",")))
    run = lambda name: not only or name in only  # noqa: E731
    if not c_icap_available():
        print("SKIP: c-icap / c-icap-client not installed (scripts/setup installs them)")
        return 77
    if not os.path.isfile(a.module):
        print(f"SKIP: {a.module} not built")
        return 77
    read = lambda n: open(os.path.join(a.data, n), "rb").read()  # noqa: E731
    big = read("big.crl")
    prober = Prober(read("crl.der"), read("page.html"))
    checks = Checks()
    fig: dict = {"servers": a.servers, "threads": a.threads, "timeout": a.timeout}
    pf = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    pf.write(POLICY)
    pf.close()
    t_all = time.monotonic()
    ic = CIcap(a.module, pf.name, verify="full", servers=a.servers, threads=a.threads,
               timeout=a.timeout, keepalive_timeout=a.timeout, verbose=True)
    try:
        ic.start()
        print(f"c-icap on {ic.url}: {a.servers} children x {a.threads} threads, "
              f"Timeout {a.timeout} s", flush=True)
        ok, secs, detail = prober.probe(ic.port, 10)
        checks.expect(ok, f"probe on an idle c-icap: correct answers in {secs:.3f} s", detail)
        if run("stalled"):
            phase_stalled(ic, a, prober, checks, big, fig)
        if run("drip"):
            phase_drip(ic, a, prober, checks, fig)
        if run("bodies"):
            phase_bodies(ic, a, prober, checks, big, fig)
        if run("header"):
            phase_header(ic, a, prober, checks, fig)
        checks.expect(ic.alive(), "c-icap still running at the end")
        ic.stop()
        checks.expect(not ic.leftover_pids, "c-icap stopped cleanly",
                      f"killed leftovers {ic.leftover_pids}")
        if run("spawn"):
            phase_spawn(a, a.module, pf.name, prober, checks, fig)
        if run("client_access"):
            phase_client_access(a, a.module, pf.name, prober, checks, fig)
    except IcapLabError as e:
        checks.expect(False, "c-icap lab", str(e))
    finally:
        ic.stop()
        os.unlink(pf.name)
    fig["seconds"] = round(time.monotonic() - t_all, 1)
    fig["limitations"] = checks.limitations

    def clean(o):
        if isinstance(o, bytes):
            return o[:80].decode("latin-1")
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o
    print("figures: " + json.dumps(clean(fig)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(clean(fig), f, indent=1)
    for f_ in checks.failures:
        print("FAIL: " + f_)
    for l_ in checks.limitations:
        print("KNOWN C-ICAP LIMITATION: " + l_ + (" (--strict: a failure)" if a.strict else ""))
    failed = bool(checks.failures) or (a.strict and bool(checks.limitations))
    print(f"slowloris_test: {'FAILED' if failed else 'passed'} in {fig['seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
