"""lab.squid (SquidLab): a throw-away Squid 5.7 + ext_authbypass_acl + loopback origin, for tests and demos.

Standard library only; run with /usr/bin/python3 (the pyenv python under /root is not
readable by user `proxy`). Facts it relies on: docs/architecture.md "Squid and c-icap facts".

    from lab.squid import SquidLab
    with SquidLab(helper="build/test/helpers/ext_authbypass_acl",
                  policy="config/policy.yaml") as lab:
        lab.get("http://crl.verisign.com/pca3.crl", ua="Microsoft-CryptoAPI/6.1")  # -> 200
        lab.get("http://www.example.com/")                                         # -> 407
        lab.get("http://www.example.com/", user=lab.USER)                          # -> 200
        lab.connect("login.microsoftonline.com:443", ua="... MSOIDCRL ...")        # -> 200

What it sets up, in a fresh temporary directory that user `proxy` owns (Squid drops
privileges to `cache_effective_user proxy`, so everything it or its helpers read or write
lives there; /work may not be traversable by proxy, so the helper binary and the policy
are copied in):
  * an htpasswd file (openssl passwd -apr1) for /usr/lib/squid/basic_ncsa_auth;
  * an origin HTTP server on 127.0.0.1:<free port> (a thread of this process) that
    answers 200 to any GET/HEAD/POST and records every request that reaches it (method,
    host, path, User-Agent, body, and every header as a list of (name, value)); paths
    registered with lab.origin.serve(path, ...) get a given body (bytes or a file,
    streamed), Content-Type and headers instead (the ICAP tests serve CRLs that way);
  * squid.conf: its own http_port 127.0.0.1:<free port>, every request forwarded to the
    origin through `cache_peer ... originserver` (real host names in URLs, no DNS), the
    authbypass external ACL before proxy_auth, access log with %un %ea %et; like a
    deployment: Squid's memory cache as Debian ships it and the helper's answers cached
    for 60 s (a test about something else says why it turns either off:
    no_cache_because=, no_helper_cache_because=); or, with dropin=, the configuration
    exactly as `authbypass squid-config` or the shipped drop-in write it (only installed
    paths and the ICAP port replaced);
  * `squid -N -f squid.conf` as a child process, ready when an authenticated request
    through it returns 200. With supervised=True, `squid --foreground -sYC -f squid.conf`
    instead, as Debian's squid.service runs it: a master process (lab.squid, whose PID
    the pid file holds) that starts a worker ("kid", lab.kid_pids()) and starts a new one
    when it dies; the helpers are the kid's children.
Everything is stopped by PID (squid -k shutdown, wait, then SIGTERM/SIGKILL of the PID;
leftover helper processes started from the lab's own copy of the binary; in supervised
mode also every process left in Squid's process group: kids, helpers) in stop(), which
also runs at interpreter exit and on SIGTERM/SIGINT. Nothing but 127.0.0.1 is contacted.
Set SQUIDLAB_KEEP=1 to keep the directory after stop() (its path is printed).
"""

from __future__ import annotations

import atexit
import base64
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
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable

from lab.origin import OriginServer
from lab.ports import free_port
from lab.procs import pids_of_exe

SQUID = shutil.which("squid") or "/usr/sbin/squid"
NCSA_AUTH = "/usr/lib/squid/basic_ncsa_auth"
CURL = shutil.which("curl") or "/usr/bin/curl"
# How Debian's squid.service starts Squid (ExecStart=/usr/sbin/squid --foreground -sYC):
# no -N, so a master process supervises a worker kid and restarts it when it dies.
DEBIAN_SERVICE_ARGS = ("--foreground", "-sYC")

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED_DROPIN = os.path.join(os.path.dirname(os.path.dirname(HERE)), "config", "squid",
                              "authbypass.conf")

# The refresh_pattern lines of Debian bookworm's /etc/squid/squid.conf (Squid 5.7).
DEBIAN_REFRESH_PATTERNS = """refresh_pattern ^ftp:\t\t1440\t20%\t10080
refresh_pattern ^gopher:\t1440\t0%\t1440
refresh_pattern -i (/cgi-bin/|\\?) 0\t0%\t0
refresh_pattern .\t\t0\t20%\t4320"""

# Installed paths in a Squid drop-in (`authbypass squid-config`'s defaults, the shipped
# config/squid/authbypass.conf) and the lab's file that replaces each.
DROPIN_PATHS = (
    ("/usr/lib/squid/ext_authbypass_acl", lambda lab: lab.helper),
    ("/etc/authbypass/policy.yaml", lambda lab: lab.policy),
    ("/var/log/authbypass/helper.log", lambda lab: lab.audit_log),
    ("/var/log/squid/access.log", lambda lab: lab.path("dropin-access.log")),
)

# Access log: one line per request, fields separated by single spaces, every field that
# may hold spaces URL-encoded (%#...), so that split() parses it.
LOGFORMAT = ("%ts.%03tu %>a %Ss/%03>Hs %rm %#ru %#un %#ea %#et %#{User-Agent}>h")
ACCESS_FIELDS = ("time", "client", "status", "method", "url", "user", "ea", "et", "ua")


def squid_available() -> bool:
    """True when Squid, its basic_ncsa_auth, curl and openssl are installed."""
    return (os.access(SQUID, os.X_OK) and os.access(NCSA_AUTH, os.X_OK)
            and os.access(CURL, os.X_OK) and shutil.which("openssl") is not None)


class LabError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def dropin_icap_conf(icap_port: int, sections: tuple[int, ...] = (2, 5)) -> str:
    """Sections of the shipped drop-in (default 2, the prefilter ACLs, and 5, ICAP),
    uncommented, with the lab's c-icap port. (Section 1, the helper, is squidlab's.)"""
    with open(SHIPPED_DROPIN) as f:
        text = f.read()
    keep = []
    section = 0
    for line in text.splitlines():
        m = re.match(r"^# (\d)\. ", line)
        if m:
            section = int(m.group(1))
        if section in sections and re.match(r"^#[a-z]", line):
            keep.append(line[1:])
    conf = "\n".join(keep) + "\n"
    if (5 in sections and "icap_service" not in conf) or (
            2 in sections and "authbypass_candidates" not in conf):
        raise LabError("the drop-in has no ICAP section or no authbypass_candidates ACL")
    return conf.replace("icap://127.0.0.1:1344/", f"icap://127.0.0.1:{icap_port}/")


def prefilter_access(cli: str, policy: str) -> list[str]:
    """The prefilter `authbypass squid-config POLICY --no-icap` derives (its `acl ab_*` and
    `acl authbypass_candidates` lines) and the plain bypass line behind it: the lab's
    bypass_access for tests about the prefilter and the helper, without the ICAP half."""
    gen = subprocess.run([cli, "squid-config", policy, "--no-icap", "--no-audit"],
                         capture_output=True, text=True, check=True).stdout
    access = [line for line in gen.splitlines()
              if line.startswith(("acl ab_", "acl authbypass_candidates"))]
    access.append("http_access allow authbypass_candidates authbypass")
    return access


def proxy_get(port: int, url: str, ua: str, auth: str | None = None,
              timeout: float = 15) -> tuple[int, bytes]:
    """One GET through the proxy on 127.0.0.1:port on a fresh connection, without curl:
    (HTTP status, body); status 0 if the connection closed without an answer. `auth` is
    the base64 of user:password. OSError (refused, timeout...) propagates."""
    host = url.split("/")[2]
    req = (f"GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
           + (f"Proxy-Authorization: Basic {auth}\r\n" if auth else "")
           + "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    _, _, body = data.partition(b"\r\n\r\n")
    return (int(m.group(1)) if m else 0), body


def _curl_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["HOME"] = "/nonexistent"  # ignore any ~/.curlrc
    return env


def htpasswd_line(user: str, password: str) -> str:
    hashed = subprocess.run(["openssl", "passwd", "-apr1", password], check=True,
                            capture_output=True, text=True).stdout.strip()
    return f"{user}:{hashed}\n"


def _proxy_ids() -> tuple[int, int] | None:
    try:
        pw = pwd.getpwnam("proxy")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return None


class SquidLab:
    """One Squid + authbypass helper + origin on loopback. Use as a context manager."""

    USER = "alice"
    PASSWORD = "s3cret-lab"

    def __init__(self, helper: str, policy: str, *, helper_args: list[str] | None = None,
                 check_interval_ms: int | None = None, extra_conf: str = "",
                 bypass_access: str | None = None, verbose: bool = False,
                 supervised: bool = False, hosts: Iterable[str] = (),
                 no_cache_because: str | None = None,
                 no_helper_cache_because: str | None = None,
                 dropin: str | None = None, icap_port: int | None = None):
        """bypass_access: lines that replace `http_access allow authbypass` (e.g. prefilter
        ACL definitions and `http_access allow authbypass_candidates authbypass`).
        hosts: names the lab's hosts_file maps to 127.0.0.1 (with localhost). Squid looks
        up the host of every request it forwards (netdb, even with never_direct and pinger
        off); the lab has no DNS server, so a name not listed waits dns_timeout (30 s),
        each waiting request holding ~25 KB, and then all fail at once. Harmless for a few
        requests; under load (benchmarks) list the URLs' hosts.
        supervised: start Squid as Debian's squid.service does (DEBIAN_SERVICE_ARGS, no
        -N): a master and a kid; the default (False) is one process, `squid -N`.

        The lab runs like a deployment unless told otherwise: Squid's memory cache as
        Debian ships it (no cache_mem line, Debian's refresh_pattern lines, no `cache`
        rule) and the helper's answers cached as shipped (ttl=60 negative_ttl=60).
        no_cache_because: a test that is about something else than caching may run with
        `cache deny all`; the reason is required and written next to it in squid.conf.
        no_helper_cache_because: likewise for ttl=0 negative_ttl=0 (every request asks
        the helper), e.g. a test that follows policy reloads request by request.
        dropin: a Squid drop-in exactly as `authbypass squid-config` writes it
        (generated_dropin()) or as the shipped config/squid/authbypass.conf reads once
        uncommented (shipped_dropin()). It is included verbatim where Debian's squid.conf
        includes conf.d/*.conf, in place of the lab's own helper line and bypass_access;
        only the installed paths (helper, policy, logs) and, with icap_port, the ICAP
        port are replaced by the lab's (dropin_text())."""
        self.helper_src = os.path.abspath(helper)
        self.policy_src = os.path.abspath(policy)
        self.helper_args = list(helper_args or [])
        if check_interval_ms is not None:
            self.helper_args += ["--check-interval", str(check_interval_ms)]
        self.extra_conf = extra_conf
        self.bypass_access = bypass_access or "http_access allow authbypass"
        self.verbose = verbose
        self.supervised = supervised
        self.hosts = sorted(set(hosts))
        for name, why in (("no_cache_because", no_cache_because),
                          ("no_helper_cache_because", no_helper_cache_because)):
            if why is not None and not why.strip():
                raise ValueError(f"{name} needs the reason")
        self.no_cache_because = no_cache_because
        self.no_helper_cache_because = no_helper_cache_because
        self.dropin = dropin
        self.icap_port = icap_port
        self.dir: str | None = None
        self.origin: OriginServer | None = None   # GET/HEAD/POST (originserver peer)
        self.tunnel: OriginServer | None = None   # CONNECT (parent-proxy peer)
        self.squid: subprocess.Popen | None = None
        self.port: int | None = None
        self._stopped = True
        self._old_handlers: dict = {}
        self.leftover_pids: list[int] = []  # helpers still running after Squid stopped

    # ---- paths -----------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def conf(self):
        return self.path("squid.conf")

    @property
    def policy(self):
        """The lab's own copy of the policy: the helper watches this file."""
        return self.path("policy.yaml")

    @property
    def helper(self):
        return self.path("ext_authbypass_acl")

    @property
    def audit_log(self):
        return self.path("audit.log")

    @property
    def access_log(self):
        return self.path("access.log")

    @property
    def cache_log(self):
        return self.path("cache.log")

    @property
    def proxy_url(self):
        return f"http://127.0.0.1:{self.port}"

    def log(self, msg: str):
        if self.verbose:
            print(f"squidlab: {msg}", file=sys.stderr, flush=True)

    # ---- life cycle --------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self, ready_timeout: float = 30.0):
        if not squid_available():
            raise LabError(f"squid ({SQUID}), {NCSA_AUTH}, curl or openssl missing: run scripts/setup")
        for f in (self.helper_src, self.policy_src):
            if not os.path.isfile(f):
                raise LabError(f"not found: {f}")
        self._stopped = False
        atexit.register(self.stop)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        try:
            self._make_dir()
            self.origin = OriginServer("origin")
            self.origin.start()
            self.tunnel = OriginServer("tunnel")
            self.tunnel.start()
            self.log(f"origin on 127.0.0.1:{self.origin.port}, CONNECT peer on "
                     f"127.0.0.1:{self.tunnel.port}, dir {self.dir}")
            last = None
            for _attempt in range(5):  # a free port may be taken before Squid binds it
                self.port = free_port()
                self._write_conf()
                self._parse_conf()
                try:
                    self._start_squid(ready_timeout)
                    return self
                except LabError as e:
                    last = e
                    if "bind" not in str(e).lower() and "address already in use" not in str(e).lower():
                        raise
                    self._stop_squid()
            raise last
        except BaseException:
            self.stop()
            raise

    def _on_signal(self, signum, _frame):
        self.stop()
        raise SystemExit(128 + signum)

    def _make_dir(self):
        base = os.environ.get("SQUIDLAB_TMPDIR", "/tmp")
        self.dir = tempfile.mkdtemp(prefix="squidlab-", dir=base)
        os.chmod(self.dir, 0o755)
        shutil.copy(self.helper_src, self.helper)
        os.chmod(self.helper, 0o755)
        shutil.copy(self.policy_src, self.policy)
        os.chmod(self.policy, 0o644)
        with open(self.path("htpasswd"), "w") as f:
            f.write(htpasswd_line(self.USER, self.PASSWORD))
        os.chmod(self.path("htpasswd"), 0o644)
        ids = _proxy_ids()
        if os.geteuid() == 0 and ids:
            os.chown(self.dir, *ids)  # Squid (as proxy) writes its pid file and logs here
            # proxy must reach the directory: every ancestor needs o+x
            d = os.path.dirname(self.dir)
            while d and d != "/":
                if not os.stat(d).st_mode & 0o001:
                    raise LabError(f"{d} is not traversable by user proxy: set SQUIDLAB_TMPDIR")
                d = os.path.dirname(d)
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            if os.access(runuser, os.X_OK):
                r = subprocess.run([runuser, "-u", "proxy", "--", "test", "-x", self.helper,
                                    "-a", "-r", self.policy, "-a", "-r", self.path("htpasswd"),
                                    "-a", "-w", self.dir], capture_output=True)
                if r.returncode != 0:
                    raise LabError(f"user proxy cannot use {self.dir}")

    def _write_conf(self):
        helper_cmd = " ".join([self.helper, "--policy", self.policy, "--audit-log",
                               self.audit_log, *self.helper_args])
        conf = f"""# squidlab: generated, isolated Squid for authbypass integration tests
http_port 127.0.0.1:{self.port}
visible_hostname squidlab
cache_effective_user proxy
pid_filename {self.path('squid.pid')}
cache_log {self.cache_log}
logformat squidlab {LOGFORMAT}
access_log stdio:{self.access_log} squidlab
cache_store_log none
netdb_filename none
coredump_dir {self.dir}
pinger_enable off
shutdown_lifetime 1 seconds
dns_nameservers 127.0.0.1
hosts_file {self.path('hosts')}
{self._cache_conf()}
icp_port 0
htcp_port 0
logfile_rotate 0

acl SSL_ports port 443
acl Safe_ports port 80 21 443 70 210 280 488 591 777 1025-65535
acl CONNECT method CONNECT

# Every request goes to the loopback origin: real host names in URLs, no DNS. Squid never
# tunnels CONNECT to an originserver peer, so CONNECT goes to a loopback parent "proxy"
# that answers 200 Connection established.
cache_peer 127.0.0.1 parent {self.origin.port} 0 no-query no-digest originserver default name=origin
cache_peer 127.0.0.1 parent {self.tunnel.port} 0 no-query no-digest name=tunnel
cache_peer_access origin deny CONNECT
cache_peer_access origin allow all
cache_peer_access tunnel allow CONNECT
cache_peer_access tunnel deny all
never_direct allow all
server_persistent_connections off

auth_param basic program {NCSA_AUTH} {self.path('htpasswd')}
auth_param basic children 5 startup=0 idle=1
auth_param basic realm squidlab

{self._helper_conf(helper_cmd)}
acl authenticated proxy_auth REQUIRED

# Debian's default port rules first (CONNECT only to 443), then the bypass, then auth.
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
{self._bypass_conf()}
http_access allow authenticated
http_access deny all
{self.extra_conf}
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o644)
        with open(self.path("hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n::1 localhost\n")
            f.writelines(f"127.0.0.1 {h}\n" for h in self.hosts)
        os.chmod(self.path("hosts"), 0o644)

    # ---- configuration pieces --------------------------------------------------------
    def _cache_conf(self) -> str:
        if self.no_cache_because is not None:
            why = " ".join(self.no_cache_because.split())
            return f"# cache deny all: {why}\ncache deny all\ncache_mem 8 MB"
        return ("# Squid's memory cache as Debian ships it (default cache_mem; refresh_pattern\n"
                "# lines of Debian's squid.conf)\n" + DEBIAN_REFRESH_PATTERNS)

    def _helper_conf(self, helper_cmd: str) -> str:
        if self.dropin is not None:
            return "# the helper: defined by the drop-in (dropin.conf)"
        ttl = 0 if self.no_helper_cache_because is not None else 60
        why = ("" if self.no_helper_cache_because is None else
               f"# ttl=0: {' '.join(self.no_helper_cache_because.split())}\n")
        return (f"{why}external_acl_type authbypass ttl={ttl} negative_ttl={ttl} children-max=4 "
                "children-startup=0 concurrency=100 queue-size=1000 %SRC %METHOD %#URI "
                f"%#>ha{{User-Agent}} {helper_cmd}\nacl authbypass external authbypass")

    def _bypass_conf(self) -> str:
        if self.dropin is None:
            return self.bypass_access
        with open(self.dropin_path, "w") as f:
            f.write(self.dropin_text())
        os.chmod(self.dropin_path, 0o644)
        return f"include {self.dropin_path}"

    @property
    def dropin_path(self) -> str:
        return self.path("dropin.conf")

    def dropin_text(self) -> str:
        """The drop-in as the lab includes it: the given text with only the installed
        paths (DROPIN_PATHS) and the ICAP port (icap_port) replaced by the lab's."""
        text = self.dropin
        for installed, attr in DROPIN_PATHS:
            text = text.replace(installed, attr(self))
        if self.icap_port is not None:
            text = text.replace("icap://127.0.0.1:1344/", f"icap://127.0.0.1:{self.icap_port}/")
        return text

    @staticmethod
    def shipped_dropin(path: str = SHIPPED_DROPIN) -> str:
        """config/squid/authbypass.conf uncommented as its header says
        (sed 's/^#\\([a-z]\\)/\\1/'): every line that starts with '#' and a letter."""
        with open(path) as f:
            return re.sub(r"(?m)^#([a-z])", r"\1", f.read())

    @staticmethod
    def generated_dropin(cli: str, policy: str, *args: str) -> str:
        """`authbypass squid-config ARGS... POLICY`'s output (its installed paths and
        ICAP URL left as they are: the lab replaces them, see dropin_text())."""
        r = subprocess.run([cli, "squid-config", *args, policy], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise LabError(f"authbypass squid-config {' '.join(args)} failed "
                           f"({r.returncode}): {r.stderr}")
        return r.stdout

    def _parse_conf(self):
        r = subprocess.run([SQUID, "-k", "parse", "-f", self.conf], capture_output=True,
                           text=True, timeout=60)
        out = r.stdout + r.stderr
        if r.returncode != 0 or re.search(r"FATAL|ERROR", out):
            raise LabError(f"squid -k parse -f {self.conf} failed (rc {r.returncode}):\n{out}")

    def _start_squid(self, ready_timeout: float):
        self.log(f"starting squid on 127.0.0.1:{self.port}")
        out = open(self.path("squid.stdout"), "wb")
        mode = list(DEBIAN_SERVICE_ARGS) if self.supervised else ["-N"]
        # A session of its own: Squid, its kids and helpers share one process group whose
        # ID is the PID of lab.squid (the master in supervised mode); stop() uses that.
        self.squid = subprocess.Popen([SQUID, *mode, "-f", self.conf], stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        out.close()
        deadline = time.monotonic() + ready_timeout
        code = None
        while time.monotonic() < deadline:
            if self.squid.poll() is not None:
                raise LabError(f"squid exited with {self.squid.returncode} at start:\n"
                               + self.tail(self.cache_log) + self.tail(self.path("squid.stdout")))
            code = self.get("http://www.example.com/squidlab-ready", user=self.USER,
                            ua="squidlab-readiness", timeout=3)
            if code == 200:
                self.log("squid ready")
                return
            time.sleep(0.2)
        raise LabError(f"squid not ready after {ready_timeout}s (last answer {code}):\n"
                       + self.tail(self.cache_log))

    def stop(self):
        """Stops Squid (and its helpers) and the origin by PID; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._stop_squid()
        finally:
            for srv in (self.origin, self.tunnel):
                if srv:
                    srv.stop()
            self.origin = self.tunnel = None
            for sig, h in self._old_handlers.items():
                try:
                    signal.signal(sig, h)
                except (ValueError, TypeError):
                    pass
            self._old_handlers.clear()
            try:
                atexit.unregister(self.stop)
            except Exception:  # noqa: BLE001
                pass
            if self.dir and os.path.isdir(self.dir):
                if os.environ.get("SQUIDLAB_KEEP"):
                    print(f"squidlab: kept {self.dir}", file=sys.stderr)
                else:
                    shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_squid(self):
        p = self.squid
        if p is None:
            return
        if p.poll() is None:
            if self.supervised:
                self.log(f"stopping squid master {p.pid}, kids {self.kid_pids()}")
            subprocess.run([SQUID, "-k", "shutdown", "-f", self.conf], capture_output=True,
                           timeout=20)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.squid = None
        if self.supervised:
            self._kill_group(p.pid)
        self._reap_helpers()

    # ---- processes (supervised mode: master, kids) ---------------------------------------
    @staticmethod
    def _stat(pid: int) -> tuple[int, int] | None:
        """(ppid, pgrp) of a live process, None if it is gone (or a zombie)."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        if rest[0] in ("Z", "X"):
            return None
        return int(rest[1]), int(rest[2])

    def group_pids(self, pgid: int | None = None) -> list[int]:
        """Live processes in Squid's process group (master, kids, helpers): the group was
        made when lab.squid started (start_new_session), its ID is that PID. A process
        group ID is not reused while any member lives, so these are all ours."""
        if pgid is None:
            if self.squid is None:
                return []
            pgid = self.squid.pid
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = self._stat(int(d))
                if st and st[1] == pgid:
                    pids.append(int(d))
        return sorted(pids)

    def kid_pids(self) -> list[int]:
        """Supervised mode: the running Squid kids (children of the master that run Squid,
        not helpers). Empty while the master has none (e.g. between a kid's death and the
        next one's start) or when there is no master."""
        if self.squid is None or self.squid.poll() is not None:
            return []
        kids = []
        for pid in self.group_pids():
            st = self._stat(pid)
            if not st or st[0] != self.squid.pid:
                continue
            try:
                if os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(SQUID):
                    kids.append(pid)
            except OSError:
                pass
        return kids

    def pid_file_pid(self) -> int | None:
        """The PID in Squid's pid file (the master's, in supervised mode), or None."""
        try:
            with open(self.path("squid.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def relaunch(self, ready_timeout: float = 30.0):
        """Starts Squid again on the same port and configuration after it exited (what
        systemd's Restart= does for the service); ready as after start()."""
        if self.squid is not None and self.squid.poll() is None:
            raise LabError("squid is still running")
        self._stop_squid()  # reap, and kill what is left of the old process group
        self._start_squid(ready_timeout)

    def _kill_group(self, pgid: int):
        """After the master exited: wait (5 s at most) for the rest of its process group
        (kids, helpers: they exit at stdin EOF) to go, then SIGKILL by PID whatever is left
        and note it in leftover_pids."""
        deadline = time.monotonic() + 5
        while self.group_pids(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.group_pids(pgid)
        if not left:
            return
        self.log(f"killing leftovers of squid's process group {pgid}: {left}")
        self.leftover_pids += [p for p in left if p not in self.leftover_pids]
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
            left = self.group_pids(pgid)

    def helper_pids(self) -> list[int]:
        """PIDs (sorted) of the running helpers: processes of the lab's copy of the helper."""
        return pids_of_exe(self.helper)

    def _reap_helpers(self):
        """Helpers exit at stdin EOF; kill by PID any still running from our copy."""
        if not self.dir:
            return
        deadline = time.monotonic() + 5
        while True:
            pids = []
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    exe = os.readlink(f"/proc/{d}/exe")
                except OSError:
                    continue
                if exe.startswith(self.dir + "/"):
                    pids.append(int(d))
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

    # ---- requests --------------------------------------------------------------------
    def _curl(self, args: list[str], timeout: float) -> tuple[str, int]:
        cmd = [CURL, "-s", "-q", "-o", "/dev/null", "-x", self.proxy_url,
               "--connect-timeout", "3", "--max-time", str(timeout), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, env=_curl_env(),
                           timeout=timeout + 5)
        return r.stdout.strip(), r.returncode

    def mgr(self, page: str, timeout: float = 10, user: str | None = None) -> str:
        """A page of Squid's cache manager (squid-internal-mgr/PAGE; the lab allows manager
        from localhost), fetched directly, never through an environment proxy. user: send
        the lab's credentials (Proxy-Authorization), for configurations that demand them
        after http_access (decision mode authenticates in adapted_http_access)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/squid-internal-mgr/{page}")
        if user:
            token = base64.b64encode(f"{user}:{self.PASSWORD}".encode()).decode()
            req.add_header("Proxy-Authorization", f"Basic {token}")
        with opener.open(req, timeout=timeout) as r:
            return r.read().decode(errors="replace")

    def get(self, url: str, *, ua: str | None = None, method: str = "GET",
            user: str | None = None, password: str | None = None, data: str | None = None,
            headers: list[str] | None = None, timeout: float = 10) -> int:
        """An HTTP request through the proxy; returns the HTTP status (0 if none).
        headers: extra request header lines ("Name: value")."""
        args = ["-w", "%{http_code}", "-A", ua if ua is not None else "squidlab-curl"]
        for h in headers or []:
            args += ["-H", h]
        if user:
            args += ["--proxy-user", f"{user}:{password or self.PASSWORD}"]
        if method == "HEAD":
            args += ["-I"]
        elif method == "POST":
            args += ["--data-binary", data if data is not None else "x"]
        elif method != "GET":
            args += ["-X", method]
        out, _rc = self._curl(args + ["--", url], timeout)
        return int(out) if out.isdigit() else 0

    def download(self, url: str, out: str, *, ua: str | None = None, method: str = "GET",
                 user: str | None = None, password: str | None = None,
                 data_file: str | None = None, content_type: str | None = None,
                 timeout: float = 60, headers: list[str] | None = None) -> dict:
        """An HTTP request through the proxy that keeps the body in `out`. Returns
        {"status": HTTP status (0 if none), "curl_rc": curl's exit code (0 = the transfer
        completed; 18 partial file, 56 receive failure...), "size": bytes received}.
        data_file: POST this file's bytes (--data-binary @file) with `content_type`.
        headers: extra request header lines ("Name: value")."""
        args = ["-w", "%{http_code}", "-A", ua if ua is not None else "squidlab-curl"]
        for h in headers or []:
            args += ["-H", h]
        if user:
            args += ["--proxy-user", f"{user}:{password or self.PASSWORD}"]
        if data_file is not None:
            args += ["--data-binary", "@" + data_file]
            if content_type:
                args += ["-H", f"Content-Type: {content_type}"]
        if method not in ("GET", "POST"):
            args += ["-X", method]
        cmd = [CURL, "-s", "-q", "-o", out, "-x", self.proxy_url, "--connect-timeout", "3",
               "--max-time", str(timeout), *args, "--", url]
        r = subprocess.run(cmd, capture_output=True, text=True, env=_curl_env(),
                           timeout=timeout + 5)
        code = r.stdout.strip()
        size = os.path.getsize(out) if os.path.exists(out) else 0
        return {"status": int(code) if code.isdigit() else 0, "curl_rc": r.returncode,
                "size": size}

    def connect(self, hostport: str, *, ua: str | None = None, user: str | None = None,
                password: str | None = None, headers: list[str] | None = None,
                timeout: float = 10) -> int:
        """CONNECT host:port through the proxy; returns the proxy's answer to the CONNECT
        (200 = tunnel set up, 407 = authentication required, 0 = none). headers: extra
        header lines for the CONNECT request."""
        args = ["-p", "-k", "-w", "%{http_connect}",
                "-A", ua if ua is not None else "squidlab-curl"]
        for h in headers or []:
            args += ["--proxy-header", h]
        if user:
            args += ["--proxy-user", f"{user}:{password or self.PASSWORD}"]
        out, _rc = self._curl(args + ["--", f"https://{hostport}/"], timeout)
        return int(out) if out.isdigit() else 0

    # ---- policy --------------------------------------------------------------------------
    def write_policy(self, text: str):
        """Replaces the lab's policy file atomically (write + rename), readable by proxy."""
        tmp = self.policy + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.policy)

    def read_policy(self) -> str:
        with open(self.policy) as f:
            return f.read()

    # ---- logs ----------------------------------------------------------------------------
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
        events = []
        for line in self.read(self.audit_log).splitlines():
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LabError(f"audit log line is not JSON ({e}): {line!r}") from e
        return events

    def access_entries(self) -> list[dict]:
        entries = []
        for line in self.read(self.access_log).splitlines():
            parts = line.split(" ")
            if len(parts) != len(ACCESS_FIELDS):
                continue
            e = dict(zip(ACCESS_FIELDS, parts))
            for k in ("url", "user", "ea", "et", "ua"):
                e[k] = urllib.parse.unquote(e[k])
            e["code"] = int(e["status"].split("/")[1]) if "/" in e["status"] else 0
            e["line"] = line
            entries.append(e)
        return entries

    def wait_for(self, predicate, timeout: float = 5.0, interval: float = 0.1):
        """Polls predicate() until it returns something truthy; returns it (or the last
        falsy value at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v or time.monotonic() > deadline:
                return v
            time.sleep(interval)


if __name__ == "__main__":  # manual use: start a lab and keep it up until Ctrl-C
    import argparse
    ap = argparse.ArgumentParser(description="Start Squid + ext_authbypass_acl + origin on loopback")
    ap.add_argument("--helper", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--supervised", action="store_true",
                    help="master + kid, as Debian's squid.service (default: squid -N)")
    a = ap.parse_args()
    with SquidLab(a.helper, a.policy, verbose=True, supervised=a.supervised) as lab:
        print(f"proxy {lab.proxy_url} (user {lab.USER}:{lab.PASSWORD}), dir {lab.dir}; Ctrl-C stops")
        try:
            while lab.squid and lab.squid.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
