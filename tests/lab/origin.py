"""lab.origin (OriginServer): the loopback HTTP origin of a SquidLab, in a thread of the
test process.

It answers 200 with ORIGIN_BODY to any GET/HEAD/POST and records every request that reaches
it (method, host, path, User-Agent, body, and every header as a list of (name, value));
paths registered with serve(path, ...) get a given body (bytes or a file, streamed),
status, Content-Type and headers instead, optionally raw bytes, a delay, or 304 to a
conditional request (revalidate=True). A second instance plays the parent proxy for
CONNECT (see OriginServer). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
import urllib.parse

ORIGIN_BODY = b"squidlab origin: hello\n"


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection (server_persistent_connections off)
    server_version = "squidlab-origin"

    def handle_one_request(self):
        # A CONNECT tunnel that Squid let through arrives here as a raw TLS ClientHello.
        try:
            first = self.rfile.peek(1)[:1]
        except Exception:  # noqa: BLE001 - connection reset etc.
            first = b""
        if first == b"\x16":
            self.server.record({"method": "TLS", "host": None, "path": None, "body": b""})
            self.close_connection = True
            return
        super().handle_one_request()

    def _answer(self, send_body: bool):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.server.record({"method": self.command, "host": self.headers.get("Host"),
                            "path": self.path, "user_agent": self.headers.get("User-Agent"),
                            "body": body if len(body) <= 65536 else body[:65536],
                            "body_len": len(body),
                            "headers": [(k, v) for k, v in self.headers.items()]})
        route = self.server.route(self.path)
        if route is not None:
            self._answer_route(route, send_body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(ORIGIN_BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            try:
                self.wfile.write(ORIGIN_BODY)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the proxy went away mid-answer (e.g. a Squid kid aborted): fine

    def _answer_route(self, route: "Route", send_body: bool):
        if route.delay:
            time.sleep(route.delay)  # e.g. past Squid's read_timeout
        if route.raw is not None:  # not HTTP: these bytes (maybe none), then close
            try:
                if route.raw:
                    self.wfile.write(route.raw)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        if route.revalidate and (self.headers.get("If-None-Match")
                                 or self.headers.get("If-Modified-Since")):
            self.send_response(304)  # "your copy is still good", whatever it holds
            for k, v in route.headers:
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        self.send_response(route.status)
        if route.content_type is not None:
            self.send_header("Content-Type", route.content_type)
        length = route.length() if route.content_length == "auto" else route.content_length
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in route.headers:
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        try:
            for chunk in route.chunks():
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy gave up on this body (e.g. Squid aborted it): fine
        self.close_connection = True

    def do_GET(self):  # noqa: N802
        self._answer(True)

    def do_POST(self):  # noqa: N802
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def do_CONNECT(self):  # noqa: N802 - only the "tunnel" peer gets these
        self.server.record({"method": "CONNECT", "host": self.path, "path": None,
                            "user_agent": self.headers.get("User-Agent"), "body": b"",
                            "headers": [(k, v) for k, v in self.headers.items()]})
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        # The client now starts TLS inside the tunnel; note it and hang up (no TLS here).
        self.connection.settimeout(5)
        try:
            first = self.rfile.read(1)
        except OSError:
            first = b""
        if first == b"\x16":
            self.server.record({"method": "TLS", "host": self.path, "path": None, "body": b""})
        self.close_connection = True

    def log_message(self, fmt, *args):  # keep the test output clean
        pass


class Route:
    """What the origin answers for one registered path."""

    def __init__(self, data: bytes | None = None, file: str | None = None,
                 content_type: str | None = "application/octet-stream", status: int = 200,
                 headers: list[tuple[str, str]] | None = None,
                 content_length: int | str | None = "auto", revalidate: bool = False,
                 raw: bytes | None = None, delay: float = 0.0):
        if raw is not None:
            data = b""
        if (data is None) == (file is None):
            raise ValueError("give data or file")
        # raw: the origin sends these bytes instead of an HTTP response and closes (b"":
        # it closes at once, answering nothing). delay: seconds it waits before answering.
        self.raw = raw
        self.delay = delay
        self.data, self.file = data, file
        self.content_type = content_type
        self.status = status
        self.headers = list(headers or [])
        # "auto": the body's real size; None: no Content-Length (the body ends when the
        # connection closes, HTTP/1.0); an int: that value, true or not.
        self.content_length = content_length
        # True: a conditional request (If-None-Match / If-Modified-Since) gets 304
        self.revalidate = revalidate

    def length(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.file)

    def chunks(self, size: int = 64 * 1024):
        if self.data is not None:
            for i in range(0, len(self.data), size):
                yield self.data[i:i + size]
            return
        with open(self.file, "rb") as f:
            while True:
                b = f.read(size)
                if not b:
                    return
                yield b


class OriginServer(http.server.ThreadingHTTPServer):
    """HTTP server on 127.0.0.1 (free port) in a daemon thread; records requests.

    Squid never tunnels CONNECT to an `originserver` peer ("found 0 destinations", 500
    ERR_CANNOT_FORWARD), so a second instance plays a parent proxy for CONNECT only: it
    answers "200 Connection established", records the TLS ClientHello that follows, and
    hangs up. The client thus sees 200 for an allowed CONNECT, then a TLS failure."""

    daemon_threads = True
    # listen() backlog: socketserver's default of 5 drops connection attempts of a burst
    # (each dropped SYN costs the client a 1 s retransmission).
    request_queue_size = 256

    def __init__(self, name: str = "origin"):
        self.name = name
        super().__init__(("127.0.0.1", 0), _OriginHandler)
        self.port = self.server_address[1]
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        self._routes: dict[str, Route] = {}
        self._thread = threading.Thread(target=self.serve_forever, name=f"squidlab-{name}",
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    def record(self, req: dict):
        req["time"] = time.time()
        with self._lock:
            self._requests.append(req)

    def serve(self, path: str, data: bytes | None = None, *, file: str | None = None,
              content_type: str | None = "application/octet-stream", status: int = 200,
              headers: list[tuple[str, str]] | None = None,
              content_length: int | str | None = "auto", revalidate: bool = False,
              raw: bytes | None = None, delay: float = 0.0) -> Route:
        """Answers requests for `path` (the request-target's path, query ignored) with
        this body (bytes, or a file streamed from disk), Content-Type (None: no header),
        status and extra headers. content_length: "auto" (the real size), None (no
        Content-Length: the body ends when the connection closes) or a given number.
        revalidate: answer 304 Not Modified (with `headers`, no body) to any conditional
        request (If-None-Match or If-Modified-Since), as an origin does to a cache's
        revalidation.
        raw: send these bytes instead of an HTTP response, then close (b"": close without
        answering); delay: wait that many seconds first (an origin that times out)."""
        r = Route(data, file, content_type, status, headers, content_length, revalidate, raw,
                  delay)
        with self._lock:
            self._routes[path] = r
        return r

    def route(self, target: str) -> Route | None:
        path = urllib.parse.urlsplit(target).path if "://" in target else target.split("?", 1)[0]
        with self._lock:
            return self._routes.get(path)

    @property
    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    def start(self):
        self._thread.start()

    def stop(self):
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(5)
        self.server_close()
