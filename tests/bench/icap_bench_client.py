"""ICAP load generator for tests/bench/icap_bench.sh (imported by icap_bench.py; standard
library only).

Speaks RESPMOD the way Squid 5.7 does towards a respmod_precache service: persistent
connections, `Preview: 1024`, `Allow: 204` only for bodies under 64 KB, `X-Client-IP`,
the rest of the body sent only after `100 Continue`, and every answer read to its end
(ICAP headers, encapsulated HTTP headers, the whole chunked body) and checked:

    expect "pass"   -> 204 (inside the preview or after the body), or 200 whose body is
                       byte-identical to what was sent (and HTTP status 200)
    expect "block"  -> 200 carrying an HTTP 403 page (the service's answer)

Anything else (another status, a different body, a closed connection, a timeout) is an
error: counted, the first few kept as samples, and the connection is opened again.

`run_cell` is one worker's share of a timed measurement (one persistent connection,
requests back to back until the deadline); `big_transfer` streams one large body from a
file while reading the answer, hashing the body that comes back (never holding it).
"""

from __future__ import annotations

import hashlib
import re
import resource
import socket
import threading
import time

UA = "Microsoft-CryptoAPI/10.0"
CLIENT_IP = "127.0.0.1"
PREVIEW = 1024
SQUID_ALLOW204_MAX = 64 * 1024  # Squid 5.7 offers Allow: 204 (outside the preview) below this


class ProtocolError(Exception):
    pass


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n" if data else b""


def build_request(port: int, service: str, url: str, body_len: int, content_type: str,
                  preview: int = PREVIEW, allow204: bool | None = None) -> bytes:
    """ICAP headers plus encapsulated request and response headers (no body bytes)."""
    host = url.split("/")[2]
    req = (f"GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {UA}\r\n"
           "Accept: */*\r\n\r\n").encode()
    res = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
           f"Content-Length: {body_len}\r\nLast-Modified: Mon, 30 Nov 2026 00:00:00 GMT\r\n"
           "Cache-Control: max-age=3600\r\n\r\n").encode()
    if allow204 is None:
        allow204 = body_len < SQUID_ALLOW204_MAX
    head = [f"RESPMOD icap://127.0.0.1:{port}/{service} ICAP/1.0",
            f"Host: 127.0.0.1:{port}",
            "Date: Tue, 01 Dec 2026 00:00:00 GMT",
            f"Encapsulated: req-hdr=0, res-hdr={len(req)}, res-body={len(req) + len(res)}",
            f"Preview: {preview}"]
    if allow204:
        head.append("Allow: 204")
    head += [f"X-Client-IP: {CLIENT_IP}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + req + res


class Reader:
    """Buffered reads from a socket: header blocks, exact byte counts, chunked bodies."""

    def __init__(self, sock: socket.socket):
        self.s = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self):
        b = self.s.recv(1 << 18)
        if not b:
            raise ProtocolError("connection closed by the server")
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += b

    def block(self) -> bytes:
        """Up to and without the next CRLF CRLF."""
        while True:
            i = self.buf.find(b"\r\n\r\n", self.pos)
            if i >= 0:
                out = bytes(self.buf[self.pos:i])
                self.pos = i + 4
                return out
            if len(self.buf) - self.pos > 65536:
                raise ProtocolError("header block over 64 KB")
            self._fill()

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                out = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return out
            self._fill()

    def exact(self, n: int) -> memoryview:
        while len(self.buf) - self.pos < n:
            self._fill()
        out = memoryview(bytes(self.buf[self.pos:self.pos + n]))
        self.pos += n
        return out

    def chunked(self, sink) -> int:
        """Reads a chunked body to its final chunk; each chunk's data goes to sink."""
        total = 0
        while True:
            ln = self.line()
            try:
                size = int(ln.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {ln[:40]!r}") from None
            if size == 0:
                while self.line():  # trailers, then the empty line
                    pass
                return total
            while len(self.buf) - self.pos < size + 2:
                self._fill()
            sink(memoryview(self.buf)[self.pos:self.pos + size])
            if self.buf[self.pos + size:self.pos + size + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            self.pos += size + 2
            total += size


ENC_RE = re.compile(rb"^encapsulated:\s*(.*)$", re.I | re.M)


def parse_icap_head(block: bytes) -> tuple[int, dict[str, int], bool]:
    """(status, {encapsulated part: offset}, connection-close?)"""
    first, _, rest = block.partition(b"\r\n")
    if not first.startswith(b"ICAP/1.0 "):
        raise ProtocolError(f"not an ICAP status line: {first[:60]!r}")
    status = int(first[9:12])
    enc = {}
    m = ENC_RE.search(rest)
    if m:
        for part in m.group(1).split(b","):
            k, _, v = part.strip().partition(b"=")
            enc[k.decode()] = int(v)
    close = bool(re.search(rb"^connection:\s*close", rest, re.I | re.M))
    return status, enc, close


def read_answer(rd: Reader, block: bytes, sink) -> tuple[int, str, int, bool]:
    """Reads the rest of one ICAP answer whose header block is `block`.
    Returns (ICAP status, HTTP status line or "", body bytes, connection-close?)."""
    status, enc, close = parse_icap_head(block)
    http_line = ""
    nbody = 0
    if status == 204 or status == 100:
        return status, "", 0, close
    if status != 200:
        return status, "", 0, True  # an error answer: do not trust the connection
    body_key = next((k for k in enc if k.endswith("-body")), None)
    if body_key is None:
        raise ProtocolError("200 without a body part in Encapsulated")
    hdr_len = enc[body_key]
    if hdr_len:
        hdrs = bytes(rd.exact(hdr_len))
        http_line = hdrs.split(b"\r\n", 1)[0].decode("latin-1")
    if body_key != "null-body":
        nbody = rd.chunked(sink)
    return status, http_line, nbody, close


class Conn:
    def __init__(self, port: int, timeout: float):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rd = Reader(self.s)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def transaction(conn: Conn, head: bytes, body: bytes, expect: str) -> tuple[str, bool]:
    """One RESPMOD. Returns (outcome label, the server asked to close the connection);
    raises ProtocolError on a wrong answer."""
    pv = body[:PREVIEW]
    if len(body) <= PREVIEW:
        msg = head + chunk(pv) + b"0; ieof\r\n\r\n"
        rest = None
    else:
        msg = head + chunk(pv) + b"0\r\n\r\n"
        rest = chunk(body[PREVIEW:]) + b"0\r\n\r\n"
    conn.s.sendall(msg)
    got = bytearray()
    block = conn.rd.block()
    in_preview = True
    if block.startswith(b"ICAP/1.0 100"):
        if rest is None:
            raise ProtocolError("100 Continue after a preview with ieof")
        conn.s.sendall(rest)
        block = conn.rd.block()
        in_preview = False
    status, http_line, _n, close = read_answer(conn.rd, block, got.extend)
    if status == 204:
        if expect != "pass":
            raise ProtocolError(f"204 {'in the preview' if in_preview else 'after the body'}"
                                f" for an object that must be blocked")
        label = "204 in preview" if in_preview else "204 after body"
    elif status == 200:
        code = http_line.split(" ")[1] if " " in http_line else ""
        if expect == "pass":
            if code != "200" or bytes(got) != body:
                raise ProtocolError(f"200 with HTTP '{http_line}' and a {len(got)}-byte body "
                                    f"(sent {len(body)} bytes, identical: {bytes(got) == body})")
            label = "200 identical body"
        else:
            if code != "403":
                raise ProtocolError(f"200 with HTTP '{http_line}' for an object that must be "
                                    "blocked")
            label = "403 page" + (" (in preview)" if in_preview else " (after body)")
    else:
        raise ProtocolError(f"ICAP status {status}: {block[:200]!r}")
    return label, close


def run_cell(port: int, service: str, url: str, body: bytes, content_type: str, expect: str,
             start_at: float, end_at: float, timeout: float = 10.0) -> dict:
    """Requests back to back on one persistent connection from start_at (time.monotonic)
    until end_at. Counts answers completed before end_at; the one in flight at end_at is
    finished (and checked) but not counted as measured."""
    head = build_request(port, service, url, len(body), content_type)
    out = {"measured": 0, "sent": 0, "errors": 0, "error_samples": [], "outcomes": {},
           "reconnects": 0, "latency_sum": 0.0}
    conn = Conn(port, timeout)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    now = time.monotonic()
    if start_at > now:
        time.sleep(start_at - now)
    try:
        while True:
            t0 = time.monotonic()
            if t0 >= end_at:
                break
            out["sent"] += 1
            try:
                label, close = transaction(conn, head, body, expect)
            except (ProtocolError, OSError) as e:
                out["errors"] += 1
                if len(out["error_samples"]) < 5:
                    out["error_samples"].append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = Conn(port, timeout)
                continue
            t1 = time.monotonic()
            out["outcomes"][label] = out["outcomes"].get(label, 0) + 1
            if t1 <= end_at:
                out["measured"] += 1
                out["latency_sum"] += t1 - t0
            if close:  # e.g. MaxKeepAliveRequests reached: not an error, open a new one
                out["reconnects"] += 1
                conn.close()
                conn = Conn(port, timeout)
    finally:
        conn.close()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out["client_cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return out


def big_transfer(port: int, service: str, url: str, path: str, size: int,
                 content_type: str = "application/pkix-crl", timeout: float = 120.0,
                 send_chunk: int = 65536) -> dict:
    """Sends the file at `path` (size bytes) as one RESPMOD body, as Squid does for a big
    object (Preview 1024, no Allow: 204), reading the answer concurrently and hashing the
    body that comes back. Returns timings, the ICAP/HTTP status and the sha256."""
    head = build_request(port, service, url, size, content_type, allow204=False)
    conn = Conn(port, timeout)
    h = hashlib.sha256()
    res = {"sent_bytes": 0, "send_error": None}
    try:
        with open(path, "rb") as f:
            pv = f.read(PREVIEW)
            t0 = time.perf_counter()
            conn.s.sendall(head + chunk(pv) + b"0\r\n\r\n")
            res["sent_bytes"] = len(pv)
            block = conn.rd.block()
            sender = None
            if block.startswith(b"ICAP/1.0 100"):
                def send_rest():
                    try:
                        while True:
                            data = f.read(send_chunk)
                            if not data:
                                break
                            conn.s.sendall(chunk(data))
                            res["sent_bytes"] += len(data)
                        conn.s.sendall(b"0\r\n\r\n")
                        res["t_sent"] = time.perf_counter() - t0
                    except OSError as e:
                        res["send_error"] = f"{type(e).__name__}: {e}"
                sender = threading.Thread(target=send_rest, daemon=True)
                sender.start()
                block = conn.rd.block()
            t_first = time.perf_counter() - t0
            status, http_line, nbody, _close = read_answer(conn.rd, block, h.update)
            t_end = time.perf_counter() - t0
            if sender is not None:
                sender.join(timeout)
    finally:
        conn.close()
    res.update(icap_status=status, http_status_line=http_line, body_bytes=nbody,
               body_sha256=h.hexdigest(), seconds=t_end, first_answer_s=t_first)
    return res
