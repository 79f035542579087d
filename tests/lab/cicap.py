"""lab.cicap (CIcap): a throw-away c-icap 0.5.10 serving srv_authbypass.so on loopback, and a raw
ICAP client for requests c-icap-client cannot make (lying Content-Length, malformed
encapsulated headers, preview of 0 bytes...). Standard library only; run with
/usr/bin/python3. Facts it relies on: docs/architecture.md "Squid and c-icap facts".

    from lab.cicap import CIcap
    with CIcap(module="build/test/icap/srv_authbypass.so", policy="config/policy.yaml",
               verify="full") as ic:
        ic.port                     # c-icap on 127.0.0.1:<port>, service "authbypass"
        ic.audit_events()           # the service's audit log, parsed

What it sets up, in a fresh temporary directory that user c-icap owns (c-icap drops to
`User c-icap`, then creates its pid file, commands FIFO and logs there, and the module
opens its audit log there): a copy of the module (ServicesDir) and of the policy, a
c-icap.conf with its own PidFile, CommandsSocket, Port, TmpDir, ServerLog, AccessLog and
ModulesDir, which includes the shipped config/c-icap/authbypass.conf (paths replaced:
the policy copy, the audit log in the lab directory). `c-icap -N -f c-icap.conf` runs as
a child; it is ready when it answers an OPTIONS request. stop() sends "stop" to the
commands FIFO, waits for the PID, then kills by PID (the main process and any child
still running from the lab's configuration); it also runs at interpreter exit.
Set ICAPLAB_KEEP=1 to keep the directory.

Decision mode: CIcap(..., mode="both", secret="<64 hex digits>") adds authbypass.Mode and
authbypass.SharedSecretFile (the secret written to the lab directory, mode 0600, owned by
c-icap); write_secret() replaces it (rotation). start(ready_status=500) waits for a
service that refuses to start (c-icap answers its OPTIONS with 500).
CIcap(..., timeout=3, keepalive_timeout=3) sets c-icap's Timeout and KeepAliveTimeout
(default 60 s each); servers= and threads= set StartServers/MaxServers and ThreadsPerChild.
extra_conf is text appended to c-icap.conf, or a callable(lab) -> text, called each time
the configuration is written (when the port is known: lab.port).
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from lab.ports import free_port

C_ICAP = shutil.which("c-icap") or "/usr/bin/c-icap"
C_ICAP_CLIENT = shutil.which("c-icap-client") or "/usr/bin/c-icap-client"
MODULES_DIR = "/usr/lib/x86_64-linux-gnu/c_icap"
RUN_USER = "c-icap"

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
SHIPPED_INCLUDE = os.path.join(SOURCE_DIR, "config", "c-icap", "authbypass.conf")


def c_icap_available() -> bool:
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        return False
    return os.access(C_ICAP, os.X_OK) and os.access(C_ICAP_CLIENT, os.X_OK)


class IcapLabError(RuntimeError):
    pass


def stop_c_icap(proc: subprocess.Popen, ctl: str):
    """Stops a c-icap main process started with `-N`: "stop" on its commands FIFO `ctl`,
    up to 10 s for it to exit, then SIGTERM (5 s), then SIGKILL. Its children are the
    caller's to reap (they exit with it, or are killed by PID)."""
    if proc.poll() is not None:
        return
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"stop")
        finally:
            os.close(fd)
    except OSError:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def lab_pids(marker: str) -> list[int]:
    """PIDs of processes whose command line mentions `marker` (the lab's config path):
    a c-icap lab's main process and its children, found by CIcap.conf."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(d) != os.getpid():
            pids.append(int(d))
    return pids


_lab_pids = lab_pids  # the former private name, for callers not yet renamed


class CIcap:
    SERVICE = "authbypass"

    def __init__(self, module: str, policy: str, *, verify: str = "full",
                 extra_conf: str = "", include: str = SHIPPED_INCLUDE,
                 servers: int | None = None, threads: int | None = None,
                 debug_level: int = 1, verbose: bool = False,
                 mode: str | None = None, secret: str | None = None,
                 secret_mode: int = 0o600, timeout: int = 60,
                 keepalive_timeout: int = 60, wrapper: list[str] | None = None):
        self.module_src = os.path.abspath(module)
        self.policy_src = os.path.abspath(policy)
        self.verify = verify
        self.extra_conf = extra_conf
        self.include_src = include
        self.servers, self.threads = servers, threads
        self.debug_level = debug_level
        self.verbose = verbose
        self.mode = mode      # authbypass.Mode (None: the include's, i.e. verify)
        self.secret = secret  # written to secret_file (None: no SharedSecretFile line)
        self.secret_mode = secret_mode
        self.timeout = timeout                      # c-icap Timeout (seconds)
        self.keepalive_timeout = keepalive_timeout  # c-icap KeepAliveTimeout (seconds)
        # A command c-icap runs under (e.g. lab.syscalls.strace_command()): self.proc is
        # then the wrapper, which must exit when c-icap does.
        self.wrapper = list(wrapper or [])
        self.dir: str | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._stopped = True
        self.leftover_pids: list[int] = []

    # ---- paths ---------------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def conf(self):
        return self.path("c-icap.conf")

    @property
    def policy(self):
        return self.path("policy.yaml")

    @property
    def audit_log(self):
        return self.path("audit.log")

    @property
    def secret_file(self):
        return self.path("icap-secret")

    def write_secret(self, text: str, mode: int = 0o600):
        """Replaces the shared secret file atomically (owned by c-icap when root)."""
        tmp = self.secret_file + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_USER)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.replace(tmp, self.secret_file)

    @property
    def server_log(self):
        return self.path("server.log")

    @property
    def url(self):
        return f"icap://127.0.0.1:{self.port}/{self.SERVICE}"

    def log(self, msg: str):
        if self.verbose:
            print(f"icaplab: {msg}", file=sys.stderr, flush=True)

    # ---- life cycle ----------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self, ready_timeout: float = 15.0, ready_status: int = 200):
        if not c_icap_available():
            raise IcapLabError(f"{C_ICAP} / {C_ICAP_CLIENT} or user {RUN_USER} missing: "
                               "run scripts/setup")
        for f in (self.module_src, self.policy_src, self.include_src):
            if not os.path.isfile(f):
                raise IcapLabError(f"not found: {f}")
        self._stopped = False
        atexit.register(self.stop)
        try:
            if self.dir is None:
                self._make_dir()
            last = None
            for _attempt in range(5):
                self.port = free_port()
                self._write_conf()
                try:
                    self._start(ready_timeout, ready_status)
                    return self
                except IcapLabError as e:
                    last = e
                    self._stop_proc()
                    if "bind" not in str(e).lower() and "address" not in str(e).lower():
                        raise
            raise last
        except BaseException:
            self.stop()
            raise

    def restart(self):
        """Stops c-icap and starts it again in the same directory and port."""
        self._stop_proc()
        self._write_conf()
        self._start(15.0)

    def _make_dir(self):
        base = os.environ.get("ICAPLAB_TMPDIR", "/tmp")
        self.dir = tempfile.mkdtemp(prefix="icaplab-", dir=base)
        os.chmod(self.dir, 0o755)
        shutil.copy(self.module_src, self.path("srv_authbypass.so"))
        os.chmod(self.path("srv_authbypass.so"), 0o755)
        shutil.copy(self.policy_src, self.policy)
        os.chmod(self.policy, 0o644)
        if self.secret is not None:
            self.write_secret(self.secret + "\n", self.secret_mode)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            d = os.path.dirname(self.dir)
            while d and d != "/":
                if not os.stat(d).st_mode & 0o001:
                    raise IcapLabError(f"{d} is not traversable by {RUN_USER}: set ICAPLAB_TMPDIR")
                d = os.path.dirname(d)

    def _include_text(self) -> str:
        """The shipped include, with the lab's paths and verify mode."""
        with open(self.include_src) as f:
            text = f.read()
        text = text.replace("/etc/authbypass/policy.yaml", self.policy)
        text = text.replace("/var/log/authbypass/icap.log", self.audit_log)
        text = re.sub(r"^authbypass\.Verify .*$", f"authbypass.Verify {self.verify}", text,
                      flags=re.M)
        if self.servers is not None:
            text = re.sub(r"^(StartServers|MaxServers) .*$", rf"\1 {self.servers}", text, flags=re.M)
        if self.threads is not None:
            text = re.sub(r"^ThreadsPerChild .*$", f"ThreadsPerChild {self.threads}", text,
                          flags=re.M)
        return text

    def _write_conf(self):
        include = self.path("authbypass.conf")
        with open(include, "w") as f:
            f.write(self._include_text())
        os.chmod(include, 0o644)
        conf = f"""# icaplab: generated, isolated c-icap for authbypass tests
PidFile {self.path('c-icap.pid')}
CommandsSocket {self.path('c-icap.ctl')}
Port 127.0.0.1:{self.port}
{f"User {RUN_USER}" if os.geteuid() == 0 else "# not root: c-icap runs as the caller"}
Timeout {self.timeout}
KeepAliveTimeout {self.keepalive_timeout}
MaxKeepAliveRequests 100
TmpDir {self.dir}
ServerLog {self.server_log}
AccessLog {self.path('access.log')}
DebugLevel {self.debug_level}
ModulesDir {MODULES_DIR}
ServicesDir {self.dir}
Include {include}
{f"authbypass.Mode {self.mode}" if self.mode else ""}
{f"authbypass.SharedSecretFile {self.secret_file}" if self.secret is not None else ""}
{self.extra_conf(self) if callable(self.extra_conf) else self.extra_conf}
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o644)

    def _start(self, ready_timeout: float, ready_status: int = 200):
        self.log(f"starting c-icap on 127.0.0.1:{self.port}")
        out = open(self.path("c-icap.stdout"), "ab")
        self.proc = subprocess.Popen(self.wrapper + [C_ICAP, "-N", "-f", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise IcapLabError(f"c-icap exited with {self.proc.returncode} at start:\n"
                                   + self.tail(self.path("c-icap.stdout"))
                                   + self.tail(self.server_log))
            try:
                status, _h, _b = icap_request(self.port, "OPTIONS", timeout=2)
                if status == ready_status:
                    self.log("c-icap ready")
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise IcapLabError(f"c-icap not ready after {ready_timeout}s:\n" + self.tail(self.server_log))

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        try:
            self._stop_proc()
        finally:
            try:
                atexit.unregister(self.stop)
            except Exception:  # noqa: BLE001
                pass
            if self.dir and os.path.isdir(self.dir):
                if os.environ.get("ICAPLAB_KEEP"):
                    print(f"icaplab: kept {self.dir}", file=sys.stderr)
                else:
                    shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_proc(self):
        p = self.proc
        if p is None:
            return
        stop_c_icap(p, self.path("c-icap.ctl"))
        self.proc = None
        # children of the lab's c-icap (they carry the same command line)
        deadline = time.monotonic() + 5
        while True:
            pids = lab_pids(self.conf)
            if not pids:
                return
            if time.monotonic() > deadline:
                self.leftover_pids += pids
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            time.sleep(0.1)

    def children_memory(self) -> dict[int, tuple[int, int]]:
        """{pid: (VmRSS, VmHWM) in bytes} for the lab's c-icap children (not the main
        process, which serves no requests)."""
        out = {}
        main = self.proc.pid if self.proc else None
        for pid in lab_pids(self.conf):
            if pid == main:
                continue
            try:
                with open(f"/proc/{pid}/status") as f:
                    st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
                out[pid] = (int(st["VmRSS"].split()[0]) * 1024, int(st["VmHWM"].split()[0]) * 1024)
            except (OSError, KeyError, ValueError):
                pass
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---- policy and logs -----------------------------------------------------------------
    def write_policy(self, text: str):
        tmp = self.policy + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.policy)

    @staticmethod
    def read(path: str) -> str:
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def tail(self, path: str, n: int = 30) -> str:
        lines = self.read(path).splitlines()[-n:]
        return f"--- last {len(lines)} lines of {path}:\n" + "\n".join(lines) + "\n"

    def audit_events(self) -> list[dict]:
        out = []
        for line in self.read(self.audit_log).splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    # ---- c-icap-client -------------------------------------------------------------------
    def client(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        cmd = [C_ICAP_CLIENT, "-i", "127.0.0.1", "-p", str(self.port), "-s", self.SERVICE,
               *args]
        return subprocess.run(cmd, capture_output=True, timeout=timeout)


# ------------------------------------------------------------------------------------------
# A raw ICAP client: enough of RFC 3507 to send any (also malformed) request.

def _http_block(lines: list[str] | None) -> bytes:
    if lines is None:
        return b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""


def icap_request(port: int, method: str = "RESPMOD", *, service: str = "authbypass",
                 icap_headers: list[str] | None = None, req_hdr: list[str] | None = None,
                 res_hdr: list[str] | None = None, body: bytes | None = None,
                 preview: int | None = None, allow204: bool = True,
                 encapsulated: str | None = None, raw_tail: bytes | None = None,
                 timeout: float = 20, conn: dict | None = None) -> tuple[int, list[str], bytes]:
    """Sends one ICAP request and reads the answer until the server closes or the
    response is complete. Returns (ICAP status, ICAP header lines, rest of the answer:
    encapsulated HTTP headers and chunked body, undecoded). `encapsulated` overrides the
    computed Encapsulated header; `raw_tail` replaces everything after the ICAP headers.
    `conn`, if given, gets the connection's "local" (host, port) once connected."""
    url = f"icap://127.0.0.1:{port}/{service}"
    rq = _http_block(req_hdr)
    rs = _http_block(res_hdr)
    if encapsulated is None:
        parts = []
        off = 0
        if req_hdr is not None:
            parts.append(f"req-hdr={off}")
            off += len(rq)
        if res_hdr is not None:
            parts.append(f"res-hdr={off}")
            off += len(rs)
        if method == "OPTIONS":
            parts = ["null-body=0"]
        elif body is None:
            parts.append(f"null-body={off}")
        else:
            parts.append(("res-body" if method == "RESPMOD" else "req-body") + f"={off}")
        encapsulated = ", ".join(parts)
    head = [f"{method} {url} ICAP/1.0", f"Host: 127.0.0.1:{port}", "Connection: close",
            f"Encapsulated: {encapsulated}"]
    if allow204 and method != "OPTIONS":
        head.append("Allow: 204")
    if preview is not None and body is not None:
        head.append(f"Preview: {preview}")
    head += icap_headers or []
    msg = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
    sent_all_in_preview = False
    if raw_tail is not None:
        msg += raw_tail
    elif method != "OPTIONS":
        msg += rq + rs
        if body is not None:
            if preview is not None:
                pv = body[:preview]
                msg += _chunk(pv)
                if len(body) <= preview:
                    msg += b"0; ieof\r\n\r\n"
                    sent_all_in_preview = True
                else:
                    msg += b"0\r\n\r\n"
            else:
                msg += _chunk(body) + b"0\r\n\r\n"
    sender = None
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if conn is not None:
            conn["local"] = s.getsockname()
        if raw_tail is None and preview is None and body is not None and len(body) > 65536:
            head_part, body_part = msg[:len(msg) - len(_chunk(body)) - 5], msg[len(msg) - len(_chunk(body)) - 5:]
            s.sendall(head_part)

            def send_body():
                try:
                    s.sendall(body_part)
                except OSError:
                    pass
            sender = threading.Thread(target=send_body, daemon=True)
            sender.start()
        else:
            s.sendall(msg)
        data = b""
        if preview is not None and body is not None and not sent_all_in_preview and raw_tail is None:
            # wait for 100 Continue (or a final answer)
            while b"\r\n\r\n" not in data:
                b = s.recv(65536)
                if not b:
                    break
                data += b
            if data.startswith(b"ICAP/1.0 100"):
                data = data[data.index(b"\r\n\r\n") + 4:]
                rest = body[preview:]

                def send_rest():
                    # a thread, so that the answer is read while the body still goes out
                    # (as Squid does; the service streams its answer early)
                    try:
                        for i in range(0, len(rest), 65536):
                            s.sendall(_chunk(rest[i:i + 65536]))
                        s.sendall(b"0\r\n\r\n")
                    except OSError:
                        pass  # the server answered and closed early
                sender = threading.Thread(target=send_rest, daemon=True)
                sender.start()
        s.settimeout(timeout)
        buf = bytearray(data)
        while not _icap_answer_complete(buf):
            try:
                b = s.recv(1 << 20)
            except (socket.timeout, OSError):
                break
            if not b:
                break
            buf += b
        data = bytes(buf)
        if sender is not None:
            sender.join(timeout)
    if b"\r\n\r\n" not in data:
        return 0, [], data
    hdr, rest = data.split(b"\r\n\r\n", 1)
    lines = hdr.decode("latin-1").split("\r\n")
    m = re.match(r"ICAP/1\.0 (\d{3})", lines[0])
    return (int(m.group(1)) if m else 0), lines, rest


def _icap_answer_complete(data: bytes | bytearray) -> bool:
    end = data.find(b"\r\n\r\n", 0, 65536)
    if end < 0:
        return False
    text = bytes(data[:end]).decode("latin-1")
    if not text.startswith("ICAP/"):
        return True
    m = re.search(r"^Encapsulated: (.*)$", text, re.M | re.I)
    if m and "null-body" not in m.group(1):
        return data.endswith(b"0\r\n\r\n")
    rest = data[end + 4:]
    if not m:
        return True
    # no body: complete once the encapsulated headers are in
    offs = [int(x.split("=")[1]) for x in m.group(1).split(",") if "=" in x]
    return len(rest) >= max(offs or [0])


def decode_icap_body(rest: bytes, lines: list[str]) -> tuple[list[str], bytes, bool]:
    """Splits an ICAP answer's encapsulated part into the HTTP header lines and the
    de-chunked body. The bool says whether the final 0-chunk was there (complete)."""
    enc = next((l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("encapsulated:")), "")
    parts = dict(p.strip().split("=") for p in enc.split(",") if "=" in p)
    body_key = next((k for k in parts if k.endswith("-body")), None)
    body_off = int(parts[body_key]) if body_key else len(rest)
    http = rest[:body_off].decode("latin-1").split("\r\n")
    http = [l for l in http if l]
    if body_key in (None, "null-body"):
        return http, b"", True
    out = bytearray()
    complete = False
    pos = body_off
    while pos < len(rest):
        nl = rest.find(b"\r\n", pos)
        if nl < 0:
            break
        try:
            size = int(rest[pos:nl].split(b";")[0].strip(), 16)
        except ValueError:
            break
        if size == 0:
            complete = True
            break
        chunk = rest[nl + 2:nl + 2 + size]
        out += chunk
        if len(chunk) < size:
            break
        pos = nl + 2 + size + 2
    return http, bytes(out), complete
