#!/usr/bin/python3
"""SIGHUP while ext_authbypass_acl starts: the helper survives it and still answers.

usage: sighup_test.py CASE HELPER POLICY LOGROTATE_CONF [HUP_AT_LOAD_LIB]

startup: 200 helper starts while the shipped logrotate rule's postrotate script (the
  helper.log stanza of LOGROTATE_CONF, pointed at this test's log) runs over and over, as
  when logrotate rotates while Squid starts helpers; in addition, from the moment the
  helper's own code runs (SIGHUP blocked or caught in /proc/PID/status), SIGHUP every
  0.5 ms for 20 ms. Every helper must still be running and answer correctly, then exit 0
  at EOF.
before_main: HUP_AT_LOAD_LIB, preloaded, sends SIGHUP from a library constructor (before
  main(), while the loader initialises libraries). The helper must survive, answer, and
  act on that SIGHUP once it serves (the policy is loaded a second time).
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CASE, HELPER, POLICY, LOGROTATE_CONF = sys.argv[1:5]
HUP_AT_LOAD = sys.argv[5] if len(sys.argv) > 5 else None
CRL = b"10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2Fpca3.crl Microsoft-CryptoAPI%2F6.1 -\n"
OK_CRL = b"OK log=ca-revocation-hosts tag=authbypass/ca-revocation-hosts"
STARTS = 200
SIGHUP_BIT = 1 << (signal.SIGHUP - 1)


def fail(msg):
    print(f"FAIL [{CASE}]: {msg}", flush=True)
    sys.exit(1)


def sig_mask(pid, field):
    """The mask `field` (SigBlk, SigCgt...) of /proc/PID/status, or None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1], 16)
    except OSError:
        return None
    return None


def read_answer(p, timeout=10.0):
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([p.stdout], [], [], left)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                return None
            buf += chunk
    return buf.split(b"\n", 1)[0]


def postrotate_script(log):
    """The postrotate script of the helper.log stanza, matching this test's log instead."""
    text = open(LOGROTATE_CONF).read()
    stanza = text[text.index("/var/log/authbypass/helper.log {"):]
    stanza = stanza[:stanza.index("\n}")]
    m = re.search(r"\n\s*postrotate\n(.*?)\n\s*endscript", stanza, re.S)
    if not m:
        fail("no postrotate script in the helper.log stanza")
    script = m.group(1)
    shipped = r"/var/log/authbypass/helper\.log"
    if shipped not in script:
        fail(f"the postrotate script does not name {shipped}: {script}")
    return script.replace(shipped, log.replace(".", r"\."))


def case_startup():
    tmp = tempfile.mkdtemp(prefix="abhup")
    procs = []
    sender = None
    try:
        policy = os.path.join(tmp, "policy.yaml")
        shutil.copy(POLICY, policy)
        log = os.path.join(tmp, "helper.log")
        script = postrotate_script(log)

        # One shell runs the script over and over for the whole test (its own session, so
        # that it and the command it is running stop together).
        runs_file = os.path.join(tmp, "runs")
        loop = f"while :; do\n{script}\necho >>'{runs_file}'\ndone"
        sender = subprocess.Popen(["/bin/sh", "-c", loop], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(sender)

        def runs():
            try:
                return os.path.getsize(runs_file)
            except OSError:
                return 0

        raw = 0
        for i in range(STARTS):
            err = open(os.path.join(tmp, "stderr"), "wb")
            p = subprocess.Popen([HELPER, "--policy", policy, "--audit-log", log],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
            err.close()
            procs.append(p)
            # From the helper's first own instruction on: SIGHUP blocked or caught.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and p.poll() is None:
                blk, cgt = sig_mask(p.pid, "SigBlk"), sig_mask(p.pid, "SigCgt")
                if blk is None or cgt is None or (blk | cgt) & SIGHUP_BIT:
                    break
            end = time.monotonic() + 0.02
            while time.monotonic() < end and p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGHUP)
                    raw += 1
                except ProcessLookupError:
                    break
                time.sleep(0.0005)
            if p.poll() is not None:
                fail(f"start {i}: the helper died ({p.returncode}) after SIGHUP at start-up "
                     f"({runs()} postrotate runs so far); stderr: "
                     f"{open(os.path.join(tmp, 'stderr'), 'rb').read()[-400:]!r}")
            p.stdin.write(b"7 " + CRL)
            p.stdin.flush()
            got = read_answer(p)
            if got != b"7 " + OK_CRL:
                fail(f"start {i}: answer {got!r} (exit {p.poll()})")
            p.stdin.close()
            try:
                rc = p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fail(f"start {i}: no exit at EOF")
            if rc != 0:
                fail(f"start {i}: exit {rc} at EOF")
            procs.remove(p)
        if runs() < 50:
            fail(f"only {runs()} postrotate runs during {STARTS} starts: not a test")
        os.killpg(sender.pid, signal.SIGKILL)
        sender.wait()
        check_script_signals_a_serving_helper(policy, log, script)
        print(f"{STARTS} starts survived {runs()} postrotate runs and {raw} direct SIGHUPs; "
              "each answered and exited 0")
    finally:
        for p in procs:
            if p.poll() is None:
                if p is sender:
                    os.killpg(p.pid, signal.SIGKILL)  # the loop's shell and its command
                else:
                    p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def check_script_signals_a_serving_helper(policy, log, script):
    """The script is not idle: a helper that serves gets its SIGHUP and reopens its log."""
    p = subprocess.Popen([HELPER, "--policy", policy, "--audit-log", log],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        p.stdin.write(b"1 " + CRL)
        p.stdin.flush()
        if read_answer(p) != b"1 " + OK_CRL:
            fail("no answer before the rotation")
        os.rename(log, log + ".1")
        subprocess.run(["/bin/sh", "-c", script], check=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(log):
            if time.monotonic() > deadline:
                fail("the postrotate script did not make a serving helper reopen its log")
            p.stdin.write(b"2 " + CRL)
            p.stdin.flush()
            read_answer(p)
            time.sleep(0.05)
        p.stdin.close()
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def case_before_main():
    if not HUP_AT_LOAD or not os.path.exists(HUP_AT_LOAD):
        fail(f"no preload library: {HUP_AT_LOAD}")
    tmp = tempfile.mkdtemp(prefix="abhup")
    p = None
    try:
        policy = os.path.join(tmp, "policy.yaml")
        shutil.copy(POLICY, policy)
        err_path = os.path.join(tmp, "stderr")
        for i in range(20):
            with open(err_path, "wb") as err:
                p = subprocess.Popen([HELPER, "--policy", policy], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=err,
                                     env={**os.environ, "LD_PRELOAD": HUP_AT_LOAD})
            p.stdin.write(b"1 " + CRL)
            p.stdin.flush()
            got = read_answer(p)
            if got != b"1 " + OK_CRL:
                fail(f"run {i}: answer {got!r}, exit {p.poll()} "
                     f"({'killed by SIGHUP' if p.poll() == -signal.SIGHUP else 'running'}); "
                     f"stderr: {open(err_path, 'rb').read()[-400:]!r}")
            # The SIGHUP was kept, not dropped: it reloads the policy once the helper serves.
            deadline = time.monotonic() + 10
            while open(err_path, "rb").read().count(b" loaded (") < 2:
                if time.monotonic() > deadline:
                    fail(f"run {i}: the SIGHUP sent before main() was never acted on; stderr: "
                         f"{open(err_path, 'rb').read()!r}")
                p.stdin.write(b"2 " + CRL)  # wakes the helper up (it also looks at flags)
                p.stdin.flush()
                if read_answer(p) != b"2 " + OK_CRL:
                    fail(f"run {i}: no answer after the reload")
                time.sleep(0.05)
            p.stdin.close()
            if p.wait(timeout=10) != 0:
                fail(f"run {i}: exit {p.returncode} at EOF")
        print("20 starts with SIGHUP sent from a library constructor: each survived, answered "
              "and reloaded once it served")
    finally:
        if p and p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


CASES = {"startup": case_startup, "before_main": case_before_main}
if CASE not in CASES:
    print(f"unknown case {CASE}")
    sys.exit(2)
CASES[CASE]()
print(f"ok [{CASE}]")
