#!/usr/bin/python3
"""Packaging tests: the Debian package that packaging/build-deb makes, checked, installed
on this machine, run with a real Squid and c-icap, and purged.

usage: deb_test.py build   SOURCE_DIR BUILD_DIR VERSION
       deb_test.py install SOURCE_DIR BUILD_DIR VERSION MARKER
       deb_test.py cleanup SOURCE_DIR BUILD_DIR VERSION MARKER

build    packaging/build-deb BUILD_DIR (Release, profile-guided, /usr, Debian's hardening flags, cpack -G
         DEB), then: lintian without errors; the control fields (Depends from
         dpkg-shlibdeps, squid and c-icap only recommended), the conffiles, the maintainer
         scripts (valid sh, never starting, stopping or reloading a service), and the
         layout, extracted with dpkg-deb -x into a temporary root: exactly the expected
         files, modes, gzipped man pages, configuration identical to config/, a Squid
         drop-in that is all comments; the extracted CLI and helper run.
install  dpkg -i (CI runs as root on a throw-away machine; MARKER records that this test
         installed it, and what it started, for `cleanup`), then on the INSTALLED files:
         ownership of /var/log/authbypass and /var/lib/authbypass, `authbypass check`, the
         system squid.conf still parses with the drop-in in it, the drop-in enabled parses;
         the seed scenario through a real Squid running /usr/lib/squid/ext_authbypass_acl
         on /etc/authbypass/policy.yaml with the drop-in's prefilter, auditing to
         /var/log/authbypass/helper.log as user proxy; a real c-icap loading the module
         from its own ServicesDir through `Include /etc/c-icap/authbypass.conf`, behind that
         Squid with the drop-in's ICAP section: a genuine CRL verified, a program named
         .crl blocked, events in /var/log/authbypass/icap.log as user c-icap; a rotation
         with /etc/logrotate.d/authbypass (new events land in the new files); c-icap
         stopped -> fail closed; postinst again (idempotent; a missing c-icap user is
         handled); an upgrade over a local edit of the policy keeps the edit; removal
         warns about an enabled drop-in; purge leaves nothing; no system Squid or c-icap
         was restarted; nothing is left running.
cleanup  if MARKER exists (the install test was killed): stops what it recorded, purges.
Exit status: 0 passed, 1 failed, 77 skipped (tools missing, not root, or authbypass
already installed by someone else).
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import pwd
import grp
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

from lab import scenarios  # noqa: E402
from lab import testdata  # noqa: E402
from lab.checks import Checks  # noqa: E402
from lab.testdata import sha  # noqa: E402
from lab.cicap import CIcap, IcapLabError, c_icap_available, lab_pids  # noqa: E402
from lab.squid import LabError, SquidLab, squid_available  # noqa: E402

PACKAGE = "authbypass"
HELPER = "/usr/lib/squid/ext_authbypass_acl"
CLI = "/usr/bin/authbypass"
POLICY = "/etc/authbypass/policy.yaml"
DROPIN = "/etc/squid/conf.d/authbypass.conf"
CICAP_INCLUDE = "/etc/c-icap/authbypass.conf"
LOGROTATE_CONF = "/etc/logrotate.d/authbypass"
LOGDIR = "/var/log/authbypass"
HELPER_LOG = f"{LOGDIR}/helper.log"
ICAP_LOG = f"{LOGDIR}/icap.log"
STATEDIR = "/var/lib/authbypass"
# The test's helpers write their counters here; the name also tells them apart (cleanup).
STATS = f"{STATEDIR}/pkgtest-%p.json"
SYSTEM_CICAP_CONF = "/etc/c-icap/c-icap.conf"
CONFFILES = {
    "/etc/authbypass/policy.yaml": "config/policy.yaml",
    "/etc/squid/conf.d/authbypass.conf": "config/squid/authbypass.conf",
    "/etc/c-icap/authbypass.conf": "config/c-icap/authbypass.conf",
    "/etc/logrotate.d/authbypass": "config/logrotate/authbypass",
}
MAN_PAGES = {"man1/authbypass.1", "man5/authbypass-policy.5", "man8/ext_authbypass_acl.8",
             "man8/srv_authbypass.8"}
DOCS = ("install", "icap-service", "audit-and-siem", "policy-reference")  # docs/*.md
CRYPTOAPI = "Microsoft-CryptoAPI/10.0"


def run(cmd: list[str], *, timeout: float = 120, check: bool = False, env=None,
        **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def arch() -> str:
    return run(["dpkg", "--print-architecture"], check=True).stdout.strip()


def deb_path(build_dir: str, version: str) -> str:
    return os.path.join(build_dir, f"{PACKAGE}_{version}_{arch()}.deb")


def c_icap_modules_dir() -> str:
    return run(["c-icap-config", "--modulesdir"], check=True).stdout.strip().rstrip("/")


def skip(msg: str) -> int:
    print(f"SKIP: {msg}")
    return 77


def summary(checks: Checks) -> int:
    return checks.summary()


# ==========================================================================================
# build: the .deb, lintian, control, layout
# ==========================================================================================

def test_build(src: str, build_dir: str, version: str) -> int:
    tools = ["cmake", "cpack", "dpkg-deb", "dpkg-shlibdeps", "dpkg-buildflags", "fakeroot",
             "lintian", "c-icap-config"]
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return skip(f"{', '.join(missing)} missing: run scripts/setup")
    checks = Checks()
    t0 = time.monotonic()
    print(f"== packaging/build-deb {build_dir}", flush=True)
    r = run([os.path.join(src, "packaging", "build-deb"), build_dir], timeout=840, cwd=src)
    with open(os.path.join(build_dir + ".log"), "w") as f:
        f.write(r.stdout + r.stderr)
    deb = deb_path(build_dir, version)
    checks.expect(r.returncode == 0 and os.path.isfile(deb), f"built {os.path.basename(deb)} "
                  f"in {time.monotonic() - t0:.0f} s",
                  "\n".join((r.stdout + r.stderr).splitlines()[-30:]))
    if not os.path.isfile(deb):
        return summary(checks)
    # The package is the profile-guided build the benchmarks measure (scripts/build-pgo):
    # trained (profiles and the tree stamp written) and configured to use the profiles.
    pgo = os.path.join(build_dir, "pgo")
    profiles = [n for n in os.listdir(pgo) if n.endswith(".gcda")] if os.path.isdir(pgo) else []
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        cache = f.read()
    checks.expect(bool(profiles) and os.path.isfile(os.path.join(pgo, "trained")) and
                  re.search(r"^AUTHBYPASS_PGO:[A-Z]+=use$", cache, re.M) is not None and
                  re.search(r"^CMAKE_INTERPROCEDURAL_OPTIMIZATION:[A-Z]+=ON$", cache, re.M)
                  is not None,
                  f"profile-guided, link-time optimized build ({len(profiles)} profiles)",
                  f"{pgo}: {sorted(profiles)[:5]}; cache PGO/IPO lines: " +
                  "; ".join(l for l in cache.splitlines() if "PGO" in l or "INTERPROCEDURAL" in l))

    print("== lintian", flush=True)
    r = run(["lintian", "--fail-on", "error", "--display-info", deb], timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", l)]
    for line in tags:
        print(f"        {line}")
    errors = [l for l in tags if l.startswith("E: ")]
    checks.expect(r.returncode == 0 and not errors, "lintian: no errors "
                  f"({sum(l.startswith('W: ') for l in tags)} warnings, "
                  f"{sum(l.startswith('I: ') for l in tags)} info)", r.stdout + r.stderr)

    check_control(checks, deb, version)
    with tempfile.TemporaryDirectory(prefix="authbypass-deb-") as tmp:
        check_control_scripts(checks, deb, os.path.join(tmp, "DEBIAN"))
        root = os.path.join(tmp, "root")
        run(["dpkg-deb", "-x", deb, root], check=True)
        check_layout(checks, src, deb, root, version)
    return summary(checks)


def check_control(checks: Checks, deb: str, version: str):
    print("== control fields", flush=True)
    fields = {}
    for name in ("Package", "Version", "Architecture", "Depends", "Recommends", "Maintainer",
                 "Section", "Priority", "Description"):
        fields[name] = run(["dpkg-deb", "-f", deb, name], check=True).stdout.strip()
    checks.expect(fields["Package"] == PACKAGE and fields["Version"] == version
                  and fields["Architecture"] == arch(),
                  f"Package {fields['Package']}, Version {fields['Version']}, "
                  f"Architecture {fields['Architecture']}")
    depends = [d.strip() for d in fields["Depends"].split(",")]
    names = [d.split()[0] for d in depends]
    for lib in ("libyaml-0-2", "libboost-regex1.", "libicapapi5", "libidn2-0", "libssl3",
                "zlib1g", "libstdc++6", "libc6"):
        checks.expect(any(n.startswith(lib) for n in names), f"Depends has {lib}*",
                      fields["Depends"])
    checks.expect(not any(n in ("squid", "c-icap") for n in names),
                  "Depends does not pull in squid or c-icap (a node may run only one)",
                  fields["Depends"])
    checks.expect(fields["Recommends"] == "squid, c-icap", "Recommends: squid, c-icap",
                  fields["Recommends"])
    checks.expect(bool(re.fullmatch(r".+ <[^@\s]+@[^@\s]+>", fields["Maintainer"])),
                  f"Maintainer {fields['Maintainer']}")
    checks.expect(bool(fields["Section"]) and bool(fields["Priority"]),
                  f"Section {fields['Section']}, Priority {fields['Priority']}")
    synopsis = fields["Description"].splitlines()[0]
    checks.expect(synopsis.startswith("audited proxy-authentication bypass")
                  and len(fields["Description"].splitlines()) > 5,
                  f"Description: {synopsis}")


def check_control_scripts(checks: Checks, deb: str, ctrl: str):
    print("== control archive: conffiles, maintainer scripts, triggers", flush=True)
    run(["dpkg-deb", "-e", deb, ctrl], check=True)
    with open(os.path.join(ctrl, "conffiles")) as f:
        conffiles = f.read().split()
    checks.expect(sorted(conffiles) == sorted(CONFFILES), "conffiles: every file in /etc",
                  f"{conffiles}")
    for name in ("postinst", "prerm", "postrm"):
        path = os.path.join(ctrl, name)
        ok = os.path.isfile(path) and os.stat(path).st_mode & 0o777 == 0o755
        checks.expect(ok, f"{name}: present, mode 0755")
        if not ok:
            continue
        r = run(["sh", "-n", path])
        checks.expect(r.returncode == 0, f"{name}: sh -n", r.stderr)
        # never starts, stops, reloads or restarts a service (echo lines only talk about it)
        bad = []
        with open(path) as f:
            for n, line in enumerate(f, 1):
                code = line.strip()
                if not code or code.startswith("#") or code.startswith("echo "):
                    continue
                if re.search(r"invoke-rc\.d|systemctl|deb-systemd-invoke|/etc/init\.d/|"
                             r"\bservice\s|\bsquid3?\s+-k|c-icap\.ctl|pkill|killall|\bkill\s",
                             code):
                    bad.append(f"{name}:{n}: {code}")
        checks.expect(not bad, f"{name}: never touches a running Squid or c-icap",
                      "; ".join(bad))
    with open(os.path.join(ctrl, "triggers")) as f:
        triggers = [l.split() for l in f if l.strip() and not l.startswith("#")]
    checks.expect(triggers == [["interest-noawait", "/usr/bin/c-icap"]],
                  "triggers: interest-noawait /usr/bin/c-icap (c-icap installed later)",
                  f"{triggers}")


def check_layout(checks: Checks, src: str, deb: str, root: str, version: str):
    print(f"== layout (dpkg-deb -x into {root})", flush=True)
    modules = c_icap_modules_dir()
    expected = {
        CLI: 0o755, HELPER: 0o755, f"{modules}/srv_authbypass.so": 0o644,
        "/usr/share/doc/authbypass/copyright": 0o644,
        "/usr/share/doc/authbypass/changelog.gz": 0o644,
    }
    expected.update({f"/usr/share/doc/authbypass/{d}.md.gz": 0o644 for d in DOCS})
    expected.update({path: 0o644 for path in CONFFILES})
    expected.update({f"/usr/share/man/{m}.gz": 0o644 for m in MAN_PAGES})
    found = {}
    for d, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            found["/" + os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    checks.expect(set(found) == set(expected), f"exactly the {len(expected)} expected files",
                  f"unexpected {sorted(set(found) - set(expected))}, "
                  f"missing {sorted(set(expected) - set(found))}")
    wrong = {p: oct(m) for p, m in found.items() if p in expected and m != expected[p]}
    checks.expect(not wrong, "file modes (binaries 0755, module and data 0644)", f"{wrong}")
    listing = run(["dpkg-deb", "-c", deb], check=True).stdout.splitlines()
    not_root = [l for l in listing if l.split()[1] != "root/root"]
    checks.expect(not not_root, "every entry owned by root/root", "\n".join(not_root[:5]))
    checks.expect(modules.startswith("/usr/lib/") and f"{modules}/srv_authbypass.so" in found,
                  f"the module in c-icap's module directory ({modules}, c-icap-config)")

    for path, rel in CONFFILES.items():
        checks.expect(sha(root + path) == sha(os.path.join(src, rel)),
                      f"{path} is {rel}")
    for m in sorted(MAN_PAGES):
        gz = f"{root}/usr/share/man/{m}.gz"
        with gzip.open(gz, "rb") as f:
            text = f.read()
        with open(os.path.join(src, "docs", "man", os.path.basename(m)), "rb") as f:
            checks.expect(text == f.read(), f"{m}.gz: gzip of docs/man/{os.path.basename(m)}")
        r = run(["man", "--warnings", "-l", gz], env={**os.environ, "MANWIDTH": "80"})
        checks.expect(r.returncode == 0 and not r.stderr.strip(),
                      f"{m}.gz renders without warnings", r.stderr[:500])
    for d in DOCS:
        with gzip.open(f"{root}/usr/share/doc/authbypass/{d}.md.gz", "rb") as f, \
                open(os.path.join(src, "docs", f"{d}.md"), "rb") as g:
            checks.expect(f.read() == g.read(), f"/usr/share/doc/authbypass/{d}.md.gz: docs/{d}.md")
    with gzip.open(f"{root}/usr/share/doc/authbypass/changelog.gz", "rt") as f:
        first = f.readline()
    checks.expect(first.startswith(f"{PACKAGE} ({version}) "), f"changelog: {first.strip()}")

    # Installing the package never changes a running proxy: the drop-in is all comments,
    # and uncommenting it (its own rule) gives the helper line.
    with open(root + DROPIN) as f:
        lines = f.read().splitlines()
    active = [l for l in lines if l.strip() and not l.lstrip().startswith("#")]
    checks.expect(not active, "the Squid drop-in is all comments", "; ".join(active[:3]))
    checks.expect(any(re.match(rf"^#external_acl_type authbypass .*{re.escape(HELPER)} "
                               rf"--policy {re.escape(POLICY)}", l) for l in lines),
                  "the drop-in names the installed helper and policy")

    # The extracted binaries run (on the extracted policy).
    r = run([root + CLI, "--version"])
    checks.expect(r.stdout.strip() == f"authbypass {version}", f"authbypass --version: "
                  f"{r.stdout.strip()}")
    r = run([root + CLI, "check", root + POLICY])
    checks.expect(r.returncode == 0, "authbypass check on the shipped policy",
                  r.stdout[-1000:] + r.stderr[-1000:])
    r = subprocess.run([root + HELPER, "--policy", root + POLICY], capture_output=True,
                       text=True, timeout=30,
                       input="1 127.0.0.1 GET http%3A%2F%2Fcrl.verisign.com%2Fpca3.crl "
                             "Microsoft-CryptoAPI%2F6.1\n"
                             "2 127.0.0.1 GET http%3A%2F%2Fwww.example.com%2F Mozilla%2F5.0\n")
    checks.expect(r.stdout.splitlines()[:1] == ["1 OK log=ca-revocation-hosts "
                                                "tag=authbypass/ca-revocation-hosts"]
                  and r.stdout.splitlines()[1:2] == ["2 ERR"],
                  "the extracted helper answers OK for a CRL, ERR for a web page",
                  r.stdout + r.stderr)


# ==========================================================================================
# install: the installed package, for real
# ==========================================================================================

class Marker:
    """MARKER: exists while the package may be installed by this test; lists what the test
    started (pid and the config file in its command line) so that `cleanup` can stop it."""

    def __init__(self, path: str):
        self.path = path

    def create(self):
        with open(self.path, "w") as f:
            f.write(f"installed-by {os.getpid()}\n")

    def started(self, pid: int, conf: str):
        with open(self.path, "a") as f:
            f.write(f"started {pid} {conf}\n")

    def made(self, directory: str):
        with open(self.path, "a") as f:
            f.write(f"made {directory}\n")

    def dirs(self) -> list[str]:
        with open(self.path) as f:
            return [l.split(None, 1)[1].strip() for l in f if l.startswith("made ")]

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def entries(self) -> list[tuple[int, str]]:
        out = []
        with open(self.path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "started":
                    out.append((int(parts[1]), parts[2]))
        return out

    def remove(self):
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def installed_status() -> str:
    """dpkg's status of the package ("" when dpkg does not know it)."""
    r = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE])
    return r.stdout.strip() if r.returncode == 0 else ""


def is_installed() -> bool:
    s = installed_status()
    return bool(s) and not s.endswith("not-installed")


def dpkg(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """dpkg, waiting (up to 2 minutes) while another dpkg/apt holds the lock."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", **(env_extra or {})}
    deadline = time.monotonic() + 120
    while True:
        r = run(["dpkg", *args], env=env, timeout=300)
        if r.returncode != 0 and re.search(r"lock", r.stderr) and time.monotonic() < deadline:
            time.sleep(2)
            continue
        return r


def processes() -> dict[int, tuple[str, str]]:
    """{pid: (exe, command line)} of every process we can see."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{d}/exe")
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out[int(d)] = (exe, cmd)
    return out


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def system_daemons() -> dict[int, str | None]:
    """Squid and c-icap processes that are not test labs (their -f is not under /tmp):
    the machine's own, which installing and removing the package must leave alone."""
    out = {}
    for pid, (exe, cmd) in processes().items():
        if exe.split(" ")[0] in ("/usr/sbin/squid", "/usr/bin/c-icap") and not re.search(
                r"-f\s+/tmp/", cmd):
            out[pid] = start_time(pid)
    return out


def test_helpers() -> list[int]:
    """Running copies of the installed helper that this test started (--stats-file STATS)."""
    return [pid for pid, (exe, cmd) in processes().items()
            if exe.split(" (deleted)")[0] == HELPER and STATS in cmd]


def kill_pids(pids: list[int], timeout: float = 5.0):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def owner(path: str) -> tuple[str, str, int]:
    st = os.lstat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            stat.S_IMODE(st.st_mode))


def can(user: str, *test_args: str) -> bool:
    """`test ARGS` as USER (runuser runs the command directly: no login shell needed)."""
    return run(["runuser", "-u", user, "--", "test", *test_args]).returncode == 0


def dropin_sections(path: str, *sections: int) -> str:
    """The given numbered sections (`# N. ...`) of the drop-in, uncommented by the drop-in's
    own rule (a '#' followed by a letter)."""
    keep, section = [], 0
    with open(path) as f:
        for line in f.read().splitlines():
            m = re.match(r"^# (\d)\. ", line)
            if m:
                section = int(m.group(1))
            if section in sections and re.match(r"^#[a-z]", line):
                keep.append(line[1:])
    return "\n".join(keep) + "\n"


class InstalledSquidLab(SquidLab):
    """SquidLab on the installed files: Squid (as proxy) runs /usr/lib/squid/
    ext_authbypass_acl on /etc/authbypass/policy.yaml and the helper audits to
    /var/log/authbypass/helper.log and counts in /var/lib/authbypass; Squid's own files
    and the origin stay in the lab's temporary directory."""

    def __init__(self, marker: Marker, **kw):
        super().__init__(HELPER, POLICY, helper_args=["--stats-file", STATS], **kw)
        self.marker = marker
        self._installed_paths = False

    @property
    def helper(self):
        return HELPER if self._installed_paths else super().helper

    @property
    def policy(self):
        return POLICY if self._installed_paths else super().policy

    @property
    def audit_log(self):
        return HELPER_LOG

    def _make_dir(self):
        super()._make_dir()  # the lab directory, owned by proxy (its copies stay unused)
        self._installed_paths = True
        if not can("proxy", "-x", HELPER, "-a", "-r", POLICY, "-a", "-w", HELPER_LOG):
            raise LabError(f"user proxy cannot run {HELPER}, read {POLICY} or write {HELPER_LOG}")

    def _start_squid(self, *args, **kwargs):
        try:
            super()._start_squid(*args, **kwargs)
        finally:
            if self.squid is not None:
                self.marker.started(self.squid.pid, self.conf)

    def _reap_helpers(self):
        super()._reap_helpers()
        deadline = time.monotonic() + 5
        while test_helpers() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = test_helpers()
        if left:
            self.leftover_pids += left
            kill_pids(left, 0)


def system_cicap_settings() -> dict[str, str]:
    """User, Group, ModulesDir, ServicesDir of the machine's c-icap.conf: where Debian's
    c-icap looks for the module, and whom it runs as."""
    out = {}
    try:
        with open(SYSTEM_CICAP_CONF) as f:
            for line in f:
                m = re.match(r"^\s*(User|Group|ModulesDir|ServicesDir)\s+(\S+)", line)
                if m:
                    out[m.group(1)] = m.group(2)
    except FileNotFoundError:
        pass
    return out


class InstalledCIcap(CIcap):
    """CIcap on the installed files: c-icap runs as the system c-icap.conf's User/Group,
    finds srv_authbypass.so in the system's ServicesDir, and reads the installed include
    (/etc/c-icap/authbypass.conf) verbatim: policy /etc/authbypass/policy.yaml, audit log
    /var/log/authbypass/icap.log. Pid file, commands FIFO and c-icap's logs stay in the
    lab's directory."""

    def __init__(self, marker: Marker, module: str, **kw):
        super().__init__(module, POLICY, include=CICAP_INCLUDE, **kw)
        self.marker = marker
        self.settings = system_cicap_settings()

    @property
    def audit_log(self):
        return ICAP_LOG

    def _write_conf(self):
        s = self.settings
        dirs = "\n".join(f"{k} {s[k]}" for k in ("ModulesDir", "ServicesDir") if k in s)
        conf = f"""# deb_test: c-icap on the installed authbypass files
PidFile {self.path('c-icap.pid')}
CommandsSocket {self.path('c-icap.ctl')}
Port 127.0.0.1:{self.port}
User {s.get('User', 'c-icap')}
Group {s.get('Group', 'c-icap')}
Timeout 60
KeepAliveTimeout 60
MaxKeepAliveRequests 100
TmpDir {self.dir}
ServerLog {self.server_log}
AccessLog {self.path('access.log')}
DebugLevel 1
{dirs}
Include {CICAP_INCLUDE}
{self.extra_conf}
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o644)

    def _start(self, *args, **kwargs):
        try:
            super()._start(*args, **kwargs)
        finally:
            if self.proc is not None:
                self.marker.started(self.proc.pid, self.conf)

    def loaded_module_paths(self) -> set[str]:
        """The srv_authbypass.so files mapped by the lab's c-icap processes."""
        paths = set()
        for pid in lab_pids(self.conf):
            try:
                with open(f"/proc/{pid}/maps") as f:
                    for line in f:
                        if line.rstrip().endswith("srv_authbypass.so"):
                            paths.add(line.split()[-1])
            except OSError:
                pass
        return paths


def make_crl_data(d: str):
    """A CA and a small DER CRL (testdata's helpers), and a Windows program."""
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(testdata.CA_CNF.format(db="index.txt", crlnumber="crlnumber"))
    testdata.run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                 "-out", "ca.pem", "-subj", "/CN=authbypass packaging test CA", "-days", "30",
                 "-config", "ca.cnf", "-extensions", "v3_ca", cwd=d)
    revoked = [f"R\t301231235959Z\t241201000000Z,keyCompromise\t{0x2000 + i:04X}\tunknown\t/CN=r{i}\n"
               for i in range(3)]
    testdata.gencrl(d, revoked, "index-small.txt", "crl.der")
    with open(os.path.join(d, "app.exe"), "wb") as f:
        f.write(b"MZ\x90\x00\x03\x00\x00\x00This program cannot be run in DOS mode"
                + os.urandom(50000))


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def events(path: str) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def wait_events(path: str, n: int, pred, timeout: float = 10.0) -> list[dict]:
    """The events of `path` that satisfy pred, once there are at least n (or at the timeout:
    those there are). Events are written when a transaction ends, a little after the answer."""
    found = []

    def enough():
        found[:] = [e for e in events(path) if pred(e)]
        return len(found) >= n
    wait_for(enough, timeout)
    return found


def test_install(src: str, build_dir: str, version: str, marker: Marker) -> int:
    if os.geteuid() != 0:
        return skip("not root: installing the package needs root (CI runs as root)")
    deb = deb_path(build_dir, version)
    if not os.path.isfile(deb):
        print(f"FAIL: {deb} not built (packaging_deb)")
        return 1
    if not (squid_available() and c_icap_available() and shutil.which("logrotate")
            and shutil.which("runuser")):
        return skip("squid, c-icap, logrotate, runuser, curl or openssl missing: run scripts/setup")
    if is_installed():
        if not marker.exists():
            return skip(f"{PACKAGE} is installed on this machine ({installed_status()}) and "
                        "not by this test: refusing to replace and purge it")
        print("== a previous run left the package installed: cleaning up first")
        cleanup(marker)

    checks = Checks()
    # ctest's timeout or a Ctrl-C: unwind through the finally below (purge, stop).
    signal.signal(signal.SIGTERM, lambda signum, _f: sys.exit(128 + signum))
    daemons_before = system_daemons()
    modules = c_icap_modules_dir()
    module = f"{modules}/srv_authbypass.so"
    marker.create()
    data = tempfile.mkdtemp(prefix="authbypass-pkgtest-", dir="/tmp")
    os.chmod(data, 0o755)
    marker.made(data)
    try:
        print(f"== dpkg -i {deb}", flush=True)
        r = dpkg("-i", deb)
        print("\n".join("        " + l for l in (r.stdout + r.stderr).splitlines()))
        checks.expect(r.returncode == 0 and installed_status() == "install ok installed",
                      "dpkg -i: installed", r.stdout + r.stderr)
        if r.returncode != 0:
            return summary(checks)
        checks.expect("nothing is enabled yet" in r.stdout, "postinst says nothing is enabled")
        check_installed_state(checks, module)
        check_configs(checks)
        seed_scenario(checks, marker)
        icap_scenario(checks, marker, module, data)
        check_postinst_again(checks, data)
        check_upgrade_keeps_edit(checks, deb)
        check_remove_and_purge(checks, deb)
    except (LabError, IcapLabError, RuntimeError, subprocess.TimeoutExpired, OSError,
            ValueError) as e:
        checks.expect(False, "the packaging scenario ran to its end", f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if is_installed():
            r = dpkg("--purge", PACKAGE)
            checks.expect(r.returncode == 0 and not is_installed(),
                          "cleanup: the package is purged", r.stdout + r.stderr)
        left = test_helpers() + [p for _pid, conf in marker.entries() for p in lab_pids(conf)]
        checks.expect(not left, "nothing left running", f"pids {left}")
        kill_pids(left)
        if not is_installed():
            marker.remove()
    after = system_daemons()
    restarted = [pid for pid, t in daemons_before.items() if after.get(pid) != t]
    checks.expect(not restarted, f"the machine's own Squid / c-icap ({len(daemons_before)} "
                  "running) were not restarted", f"pids {restarted}")
    return summary(checks)


def check_installed_state(checks: Checks, module: str):
    print("== the installed state", flush=True)
    listed = set(run(["dpkg", "-L", PACKAGE], check=True).stdout.split())
    for path in [CLI, HELPER, module, *CONFFILES,
                 *(f"/usr/share/man/{m}.gz" for m in MAN_PAGES)]:
        checks.expect(path in listed and os.path.isfile(path), f"installed: {path}")
    checks.expect(owner(LOGDIR) == ("root", "adm", 0o2755),
                  f"{LOGDIR}: root:adm 2755 (no group write: logrotate rotates there)",
                  f"{owner(LOGDIR)}")
    checks.expect(owner(HELPER_LOG) == ("proxy", "adm", 0o640), f"{HELPER_LOG}: proxy:adm 0640",
                  f"{owner(HELPER_LOG)}")
    checks.expect(owner(ICAP_LOG) == ("c-icap", "adm", 0o640), f"{ICAP_LOG}: c-icap:adm 0640",
                  f"{owner(ICAP_LOG)}")
    checks.expect(owner(STATEDIR) == ("proxy", "adm", 0o750), f"{STATEDIR}: proxy:adm 0750",
                  f"{owner(STATEDIR)}")
    checks.expect(can("proxy", "-w", HELPER_LOG) and can("c-icap", "-w", ICAP_LOG)
                  and can("proxy", "-w", STATEDIR),
                  "user proxy writes helper.log and /var/lib/authbypass, user c-icap icap.log")
    checks.expect(not can("proxy", "-w", ICAP_LOG) and not can("c-icap", "-w", HELPER_LOG)
                  and not can("nobody", "-r", HELPER_LOG),
                  "neither writes the other's log; others cannot read them")
    r = run(["man", "-w", "authbypass-policy"])
    checks.expect(r.stdout.strip() == "/usr/share/man/man5/authbypass-policy.5.gz",
                  "man finds authbypass-policy(5)", r.stdout + r.stderr)


def check_configs(checks: Checks):
    print("== the installed configuration", flush=True)
    r = run([CLI, "check", POLICY])
    checks.expect(r.returncode == 0 and "OK: policy valid" in r.stdout,
                  f"authbypass check {POLICY}", r.stdout[-800:] + r.stderr[-800:])
    if os.path.isfile("/etc/squid/squid.conf"):
        r = run(["squid", "-k", "parse", "-f", "/etc/squid/squid.conf"], timeout=60)
        out = r.stdout + r.stderr
        checks.expect(r.returncode == 0 and not re.search(r"FATAL|ERROR", out)
                      and f"Processing Configuration File: {DROPIN}" in out,
                      "the system squid.conf, which includes the installed drop-in, parses",
                      out[-1500:])
    # The drop-in enabled by its own rule, in a minimal squid.conf, with the installed paths.
    with tempfile.TemporaryDirectory(prefix="authbypass-parse-") as tmp:
        enabled = os.path.join(tmp, "authbypass.conf")
        with open(DROPIN) as f, open(enabled, "w") as out_f:
            out_f.write(re.sub(r"(?m)^#([a-z])", r"\1", f.read()))
        open(os.path.join(tmp, "htpasswd"), "w").close()
        with open(os.path.join(tmp, "squid.conf"), "w") as f:
            f.write(f"""http_port 127.0.0.1:3
pid_filename {tmp}/squid.pid
cache_log {tmp}/cache.log
cache_store_log none
netdb_filename none
auth_param basic program /usr/lib/squid/basic_ncsa_auth {tmp}/htpasswd
include {enabled}
acl authenticated proxy_auth REQUIRED
http_access allow authenticated
http_access deny all
""")
        r = run(["squid", "-k", "parse", "-f", os.path.join(tmp, "squid.conf")], timeout=60)
        out = r.stdout + r.stderr
        checks.expect(r.returncode == 0 and not re.search(r"FATAL|ERROR|WARNING", out),
                      "the installed drop-in, uncommented, parses with the installed paths",
                      out[-1500:])
    with tempfile.NamedTemporaryFile(prefix="authbypass-logrotate-") as state:
        r = run(["logrotate", "-d", "-s", state.name, LOGROTATE_CONF])
    checks.expect(r.returncode == 0 and not re.search(r"(?mi)^error", r.stdout + r.stderr),
                  f"logrotate -d {LOGROTATE_CONF}: no errors on the installed log directory",
                  (r.stdout + r.stderr)[-1500:])


def seed_scenario(checks: Checks, marker: Marker):
    print("== the seed scenario: Squid + the installed helper, policy and drop-in prefilter",
          flush=True)
    cases = [scenarios.Case(**{k: getattr(c, k) for k in
                               ("label", "method", "url", "ua", "expect", "rule", "user")})
             for c in scenarios.SEED]
    prefilter = dropin_sections(DROPIN, 2, 3)
    with InstalledSquidLab(marker, bypass_access=prefilter) as lab:
        for c in cases:
            scenarios.run_case(lab, c)
        print(scenarios.table(cases))
        for c in cases:
            checks.expect(c.ok, f"{c.label}: {c.request} -> {c.got}", f"want {c.expect}")
        for f in scenarios.check_logs(lab, cases):
            checks.expect(False, "logs", f)
        helpers = [pid for pid, (exe, _cmd) in processes().items() if exe == HELPER]
        checks.expect(bool(helpers), f"Squid runs the installed {HELPER} (pids {helpers})")
        bypasses = [e for e in lab.audit_events() if e.get("event") == "bypass"]
        checks.expect(len(bypasses) == sum(c.bypassed for c in cases),
                      f"{HELPER_LOG} (written by user proxy): {len(bypasses)} bypass events")
    stats = glob.glob(STATS.replace("%p", "*"))
    total = 0
    for s in stats:
        with open(s) as f:
            total += json.load(f).get("bypass", 0)
    checks.expect(bool(stats) and total == sum(c.bypassed for c in cases),
                  f"{STATEDIR}: the helper's counters ({len(stats)} file(s), {total} bypasses)")
    for s in stats:
        os.remove(s)


def icap_scenario(checks: Checks, marker: Marker, module: str, data: str):
    print("== c-icap with the installed module and include, behind Squid with the drop-in's "
          "ICAP section", flush=True)
    make_crl_data(data)
    with InstalledCIcap(marker, module) as ic:
        loaded = ic.loaded_module_paths()
        checks.expect(loaded == {module}, f"c-icap loaded {module} from its ServicesDir",
                      f"{loaded}")
        icap_conf = dropin_sections(DROPIN, 5).replace("icap://127.0.0.1:1344/",
                                                       f"icap://127.0.0.1:{ic.port}/")
        with InstalledSquidLab(marker, bypass_access=dropin_sections(DROPIN, 2, 3),
                               extra_conf=icap_conf) as lab:
            lab.origin.serve("/pki/PkgTest.crl", file=f"{data}/crl.der",
                             content_type="application/pkix-crl")
            lab.origin.serve("/pki/PkgTest2.crl", file=f"{data}/crl.der",
                             content_type="application/pkix-crl")
            lab.origin.serve("/update.crl", file=f"{data}/app.exe",
                             content_type="application/octet-stream")
            lab.origin.serve("/big.bin", file=f"{data}/app.exe",
                             content_type="application/octet-stream")
            out = os.path.join(data, "dl")
            r = lab.download("http://crl.verisign.com/pki/PkgTest.crl", out, ua=CRYPTOAPI)
            checks.expect(r["status"] == 200 and sha(out) == sha(f"{data}/crl.der"),
                          "a genuine CRL, no credentials -> 200, byte-identical", f"{r}")
            r = lab.download("http://evil.example.test/update.crl", out, ua=CRYPTOAPI)
            checks.expect(r["status"] == 403, "a program named .crl, no credentials -> 403",
                          f"{r}")
            r = lab.download("http://www.example.com/big.bin", out, ua=CRYPTOAPI, user=lab.USER)
            checks.expect(r["status"] == 200 and sha(out) == sha(f"{data}/app.exe"),
                          "an authenticated download (not a candidate) passes untouched", f"{r}")
            ev = wait_events(ICAP_LOG, 2, lambda e: e.get("event") in ("verified", "blocked"))
            verified = [e for e in ev if e.get("event") == "verified"]
            blocked = [e for e in ev if e.get("event") == "blocked"]
            checks.expect(len(verified) == 1 and verified[0].get("verdict") == "genuine crl"
                          and verified[0].get("rule") == "ca-revocation-hosts",
                          f"{ICAP_LOG} (written by user c-icap): the CRL verified", f"{ev}")
            checks.expect(len(blocked) == 1 and "MZ" in blocked[0].get("reason", ""),
                          f"{ICAP_LOG}: the program blocked, with the reason", f"{ev}")

            rotate(checks, lab, out)

            ic.stop()
            r = lab.download("http://crl.verisign.com/pki/PkgTest.crl", out, ua=CRYPTOAPI)
            checks.expect(r["status"] != 200,
                          f"c-icap stopped: the bypassed CRL fails closed ({r['status']})",
                          f"{r}")


def rotate(checks: Checks, lab: InstalledSquidLab, out: str):
    """logrotate -f with the installed config (its own state file): the logs are renamed,
    new ones created for proxy and c-icap, the helper reopens on its SIGHUP (postrotate)
    and the ICAP service on the move; the next events land in the new files."""
    print(f"== logrotate -f {LOGROTATE_CONF}", flush=True)
    with tempfile.NamedTemporaryFile(prefix="authbypass-logrotate-") as state:
        r = run(["logrotate", "-f", "-s", state.name, LOGROTATE_CONF])
    checks.expect(r.returncode == 0 and not re.search(r"(?mi)^error", r.stdout + r.stderr),
                  "logrotate -f: no errors", r.stdout + r.stderr)
    rotated = sorted(os.path.basename(p) for p in glob.glob(f"{LOGDIR}/*.log-*"))
    checks.expect(len(rotated) == 2, f"rotated: {rotated}")
    checks.expect(owner(HELPER_LOG) == ("proxy", "adm", 0o640)
                  and owner(ICAP_LOG) == ("c-icap", "adm", 0o640),
                  "the new logs: proxy:adm and c-icap:adm 0640 (logrotate's create)",
                  f"{owner(HELPER_LOG)} {owner(ICAP_LOG)}")
    time.sleep(1.5)  # the helper handles its SIGHUP, the service looks once a second
    url = "http://crl.verisign.com/pki/PkgTest2.crl"
    r = lab.download(url, out, ua=CRYPTOAPI)
    checks.expect(r["status"] == 200, "after the rotation a genuine CRL still passes", f"{r}")
    helper_new = wait_events(HELPER_LOG, 1, lambda e: e.get("url") == url)
    icap_new = wait_events(ICAP_LOG, 1, lambda e: e.get("url") == url)
    checks.expect(bool(helper_new) and bool(icap_new),
                  "the next events land in the new helper.log and icap.log",
                  f"helper {events(HELPER_LOG)} icap {events(ICAP_LOG)}")


def check_postinst_again(checks: Checks, data: str):
    print("== postinst again: idempotent; a c-icap user that does not exist yet", flush=True)
    postinst = f"/var/lib/dpkg/info/{PACKAGE}.postinst"
    before = {p: owner(p) for p in (LOGDIR, HELPER_LOG, ICAP_LOG, STATEDIR)}
    r = run([postinst, "configure", "0.0"])
    checks.expect(r.returncode == 0 and {p: owner(p) for p in before} == before,
                  "postinst configure again: same state", r.stdout + r.stderr)
    # getent that does not know c-icap: the log stays root's, with a note, and exit 0.
    fake = os.path.join(data, "fakebin")
    os.makedirs(fake, exist_ok=True)
    with open(os.path.join(fake, "getent"), "w") as f:
        f.write('#!/bin/sh\n[ "$2" = c-icap ] && exit 2\nexec /usr/bin/getent "$@"\n')
    os.chmod(os.path.join(fake, "getent"), 0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    r = run([postinst, "configure", "0.0"], env=env)
    checks.expect(r.returncode == 0 and owner(ICAP_LOG) == ("root", "adm", 0o640)
                  and "user c-icap does not exist yet" in r.stderr,
                  "without a c-icap user: exit 0, icap.log root:adm, a note", r.stdout + r.stderr)
    r = run([postinst, "triggered", "/usr/bin/c-icap"])
    checks.expect(r.returncode == 0 and owner(ICAP_LOG) == ("c-icap", "adm", 0o640),
                  "the c-icap trigger gives icap.log to c-icap", r.stdout + r.stderr)


def check_upgrade_keeps_edit(checks: Checks, deb: str):
    print("== upgrade (dpkg -i again) over a local edit of the policy", flush=True)
    with open(POLICY, "a") as f:
        f.write("# local edit by the packaging test\n")
    edited = sha(POLICY)
    r = dpkg("-i", deb)
    checks.expect(r.returncode == 0 and sha(POLICY) == edited
                  and owner(HELPER_LOG) == ("proxy", "adm", 0o640),
                  "dpkg -i again: the edited conffile is kept, no prompt, the logs' owners stay",
                  r.stdout + r.stderr)


def check_remove_and_purge(checks: Checks, deb: str):
    print("== dpkg -r with the drop-in enabled, then dpkg --purge", flush=True)
    files = [p for p in run(["dpkg", "-L", PACKAGE], check=True).stdout.split()
             if os.path.isfile(p)]
    with open(DROPIN) as f:
        text = f.read()
    with open(DROPIN, "w") as f:
        f.write(re.sub(r"(?m)^#([a-z])", r"\1", text))
    r = dpkg("-r", PACKAGE)
    out = r.stdout + r.stderr
    checks.expect(r.returncode == 0 and "WARNING: Squid's configuration still runs "
                  f"ext_authbypass_acl: {DROPIN}" in out,
                  "dpkg -r: removed, with a warning that the drop-in still runs the helper", out)
    gone = [p for p in (CLI, HELPER) if os.path.exists(p)]
    kept = [p for p in (*CONFFILES, HELPER_LOG) if not os.path.exists(p)]
    checks.expect(not gone and not kept, "after dpkg -r: programs gone, conffiles and logs kept",
                  f"still there {gone}, missing {kept}")
    r = dpkg("--purge", PACKAGE)
    left = [p for p in (*files, "/etc/authbypass", LOGDIR, STATEDIR) if os.path.lexists(p)]
    checks.expect(r.returncode == 0 and not left and installed_status() in ("", "unknown ok not-installed"),
                  "dpkg --purge: nothing of the package is left", f"left {left}; {r.stdout}{r.stderr}")


# ==========================================================================================
# cleanup: after a killed install test
# ==========================================================================================

def cleanup(marker: Marker) -> int:
    if not marker.exists():
        print("nothing to clean up: the install test did not leave the package installed")
        return 0
    for pid, conf in marker.entries():
        pids = lab_pids(conf)
        if pids:
            print(f"stopping {pids} (started by the install test: {conf})")
            kill_pids(pids)
        d = os.path.dirname(conf)
        if re.match(r"^/tmp/(squidlab|icaplab)-", d):
            shutil.rmtree(d, ignore_errors=True)
    kill_pids(test_helpers())
    for d in marker.dirs():
        if re.match(r"^/tmp/authbypass-pkgtest-", d):
            shutil.rmtree(d, ignore_errors=True)
    for s in glob.glob(STATS.replace("%p", "*")):
        os.remove(s)
    if is_installed():
        r = dpkg("--purge", PACKAGE)
        print(r.stdout + r.stderr)
        if r.returncode != 0:
            return 1
    marker.remove()
    print(f"purged {PACKAGE}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[1] not in ("build", "install", "cleanup"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, src, build_dir, version = argv[1:5]
    if mode == "build":
        return test_build(src, build_dir, version)
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    marker = Marker(argv[5])
    if mode == "install":
        return test_install(src, build_dir, version, marker)
    return cleanup(marker)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
