#!/usr/bin/python3
"""Fault test: a 1 GiB request line to ext_authbypass_acl over a pipe.

usage: giant_line_test.py HELPER POLICY [--gib 1] [--max-rss-mb 64] [--max-seconds 40]
                          [--json OUT]

The helper answers a line over squid::kMaxLineBytes (64 KiB) with
`[id ]ERR message="line too long"`, keeping only the line's first 64 bytes to find its
channel id. This test streams giant lines to it through a pipe, as Squid would (a writer
and a reader at once), generated on the fly (nothing on disk), and checks:

  lf    one helper, one stream, everything pipelined without waiting for answers:
        normal lines (a CRL fetch that bypasses -> OK, a browser request -> ERR), a
        1 GiB line with channel id 3 ending in LF, more normal lines, a 64 MiB line
        without channel id, a 64 MiB line whose first token is 64 MiB of digits (no
        space in the kept prefix, so no id to echo), the 64 KiB boundary (65,536 bytes:
        parsed; 65,537: too long), more normal lines. Every answer in order, with its id;
        `3 ERR message="line too long"` for the giant line.
  eof   a fresh helper: a CRL line, then a 1 GiB line with id 9 and no LF, then EOF:
        exactly `1 OK ...` and `9 ERR message="line too long"`, exit status 0.

In both the helper's memory is measured: VmRSS sampled every 50 ms while the giant line
streams, VmHWM (peak RSS) read from /proc/PID/status just before EOF, and ru_maxrss from
wait4() after exit (what /usr/bin/time -f %M prints). Each must stay under --max-rss-mb.
The time to stream each GiB (from its first byte written to its answer read, or to the
helper's exit) must stay under --max-seconds per GiB: a generous bound for a loaded
2-core CI machine (measured: about 1 s per GiB; docs/reliability.md).
Exit 0 when all hold, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from lab.checks import Checks

CRL = b"10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2Fpca3.crl Microsoft-CryptoAPI%2F6.1 -"
WWW = b"10.1.2.3 GET http%3A%2F%2Fwww.example.com%2F Mozilla%2F5.0 -"
OK_CRL = "OK log=ca-revocation-hosts tag=authbypass/ca-revocation-hosts"
TOO_LONG = 'ERR message="line too long"'
MAX_LINE = 64 * 1024  # squid::kMaxLineBytes
CHUNK = 1 << 20
MIB = 1 << 20


def giant_line(prefix: bytes, size: int, suffix: bytes = b"", fill: bytes = b"a",
               lf: bool = True):
    """Yields a line of exactly `size` bytes (plus LF): prefix, fill bytes, suffix."""
    assert size >= len(prefix) + len(suffix)
    yield prefix
    block = fill * CHUNK
    left = size - len(prefix) - len(suffix)
    while left > 0:
        n = min(left, CHUNK)
        yield block if n == CHUNK else block[:n]
        left -= n
    yield suffix + (b"\n" if lf else b"")


def status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


class Helper:
    """ext_authbypass_acl on pipes: a writer fed from generators, a reader thread."""

    def __init__(self, helper: str, policy: str, tmp: str):
        self.err_path = os.path.join(tmp, "stderr")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen([helper, "--policy", policy,
                                   "--audit-log", os.path.join(tmp, "audit.log")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err)
        self.answers: list[tuple[float, str]] = []  # (time read, line)
        self.cond = threading.Condition()
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.written = 0
        self.rss_samples: list[int] = []
        self._sampling = False

    def _read(self):
        buf = b""
        fd = self.p.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if lines:
                now = time.monotonic()
                with self.cond:
                    self.answers += [(now, l.decode("utf-8", "replace")) for l in lines]
                    self.cond.notify_all()
        with self.cond:
            if buf:
                self.answers.append((time.monotonic(), "<unterminated> "
                                     + buf.decode("utf-8", "replace")))
            self.closed = True
            self.cond.notify_all()

    def write(self, parts):
        fd = self.p.stdin.fileno()
        for part in parts:
            view = memoryview(part)
            while view:
                n = os.write(fd, view)
                view = view[n:]
                self.written += n

    def wait_answers(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.answers) < n and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return len(self.answers) >= n

    def start_sampling(self):
        self._sampling = True

        def run():
            while self._sampling and self.p.poll() is None:
                r = status(self.p.pid).get("VmRSS")
                if r:
                    self.rss_samples.append(r)
                time.sleep(0.05)
        self.sampler = threading.Thread(target=run, daemon=True)
        self.sampler.start()

    def stop_sampling(self):
        self._sampling = False
        self.sampler.join(2)

    def close(self, timeout: float = 30) -> tuple[int, int]:
        """EOF on stdin; returns (exit status, ru_maxrss kB) from wait4()."""
        self.p.stdin.close()
        if self.p.returncode is not None:  # already reaped (it died): no rusage
            self.reader.join(5)
            return self.p.returncode, 0
        deadline = time.monotonic() + timeout
        while True:
            pid, st, ru = os.wait4(self.p.pid, os.WNOHANG)
            if pid == self.p.pid:
                self.p.returncode = os.waitstatus_to_exitcode(st)
                self.reader.join(5)
                return self.p.returncode, ru.ru_maxrss
            if time.monotonic() > deadline:
                raise TimeoutError("helper did not exit at EOF")
            time.sleep(0.02)

    def kill(self):
        if self.p.returncode is None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.err.close()

    def stderr(self) -> str:
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-2000:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("helper")
    ap.add_argument("policy")
    ap.add_argument("--gib", type=float, default=1.0, help="size of the giant lines")
    ap.add_argument("--max-rss-mb", type=float, default=64)
    ap.add_argument("--max-seconds", type=float, default=40, help="per GiB streamed")
    ap.add_argument("--json")
    a = ap.parse_args()
    giant = int(a.gib * (1 << 30))
    checks = Checks()
    failures = checks.failures
    figures: dict[str, dict] = {}
    tmp = tempfile.mkdtemp(prefix="ab-giant-")

    check = checks.expect

    def check_memory(case: str, h: Helper, hwm: int, maxrss: int, base: dict[str, int]):
        peak = max(h.rss_samples, default=0)
        limit = int(a.max_rss_mb * 1024)
        figures[case].update(rss_before_kb=base.get("VmRSS", 0),
                             vmhwm_before_kb=base.get("VmHWM", 0), rss_sampled_peak_kb=peak,
                             vmhwm_kb=hwm, ru_maxrss_kb=maxrss, rss_samples=len(h.rss_samples))
        check(0 < hwm < limit and peak < limit and 0 < maxrss < limit,
              f"{case}: memory bounded: before the giant line VmRSS {base.get('VmRSS')} kB, "
              f"VmHWM {base.get('VmHWM')} kB (start-up); while it streamed VmRSS peak {peak} kB "
              f"({len(h.rss_samples)} samples); VmHWM {hwm} kB just before EOF, ru_maxrss "
              f"{maxrss} kB after exit (limit {limit} kB)")
        growth = hwm - base.get("VmHWM", 0)
        check(growth < 8 * 1024, f"{case}: the giant line raised the peak RSS by {growth} kB "
              "(limit 8 MiB: the helper keeps 64 bytes of it)")

    try:
        # ---- lf: giant lines ending in LF, pipelined with normal lines ----------------
        print(f"== lf: a {giant:,}-byte line with LF among normal lines", flush=True)
        h = Helper(a.helper, a.policy, tmp)
        try:
            expected: list[tuple[str, str]] = []  # (what, answer)

            def line(what: str, data: bytes, want: str):
                expected.append((what, want))
                return [data + b"\n"]

            h.write(line("CRL", b"1 " + CRL, "1 " + OK_CRL)
                    + line("browser", b"2 " + WWW, "2 ERR"))
            h.wait_answers(2, 30)
            base = status(h.p.pid)
            h.start_sampling()
            t0 = time.monotonic()
            expected.append(("1 GiB line, id 3", "3 " + TOO_LONG))
            h.write(giant_line(b"3 10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2F", giant,
                               b".crl Microsoft-CryptoAPI%2F6.1 -"))
            # no waiting: the next lines follow the giant one in the same stream
            h.write(line("CRL after", b"4 " + CRL, "4 " + OK_CRL)
                    + line("browser after", b"5 " + WWW, "5 ERR")
                    + line("CRL, no id", CRL, OK_CRL))
            got_giant = h.wait_answers(3, a.max_seconds * a.gib + 60)
            t_giant = (h.answers[2][0] - t0) if got_giant else float("inf")
            t1 = time.monotonic()
            expected.append(("64 MiB line, no id", TOO_LONG))
            h.write(giant_line(b"10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2F", 64 * MIB,
                               b".crl ua -"))
            expected.append(("64 MiB of digits, no space", TOO_LONG))
            h.write(giant_line(b"", 64 * MIB, fill=b"7"))
            t_small = time.monotonic() - t1
            # the 64 KiB boundary: 65,536 bytes are parsed (the URL is over Squid's 8 KiB)
            head = b"7 10.1.2.3 GET http%3A%2F%2Fwww.example.com%2F"
            at_limit = head + b"c" * (MAX_LINE - len(head) - len(b" ua -")) + b" ua -"
            assert len(at_limit) == MAX_LINE
            h.write(line("65,536-byte line", at_limit,
                         '7 ERR message="URL longer than 8192 bytes"'))
            over = b"8" + at_limit[1:] + b"c"
            h.write(line("65,537-byte line", over, "8 " + TOO_LONG)
                    + line("CRL at the end", b"10 " + CRL, "10 " + OK_CRL)
                    + line("browser at the end", b"11 " + WWW, "11 ERR"))
            h.wait_answers(len(expected), 60)
            h.stop_sampling()
            hwm = status(h.p.pid).get("VmHWM", 0)
            alive = h.p.poll() is None
            rc, maxrss = h.close()
            got = [ans for _t, ans in h.answers]
            check(alive, "lf: the helper is alive after every line")
            check(len(got) == len(expected),
                  f"lf: {len(got)} answers for {len(expected)} lines")
            for i, (what, want) in enumerate(expected):
                have = got[i] if i < len(got) else "<none>"
                check(have == want, f"lf: {what}: {want!r}" +
                      ("" if have == want else f" (got {have!r})"))
            check(rc == 0, f"lf: exit status {rc} at EOF")
            secs_per_gib = t_giant / a.gib
            figures["lf"] = {"bytes": h.written, "giant_bytes": giant,
                             "giant_seconds": round(t_giant, 2),
                             "two_64mib_lines_seconds": round(t_small, 2)}
            check(secs_per_gib < a.max_seconds,
                  f"lf: the {giant:,}-byte line answered {t_giant:.2f} s after its first "
                  f"byte ({giant / t_giant / MIB if t_giant else 0:,.0f} MiB/s; bound "
                  f"{a.max_seconds:g} s per GiB); two 64 MiB lines written in {t_small:.2f} s")
            check_memory("lf", h, hwm, maxrss, base)
            if failures:
                print("stderr: " + h.stderr())
        finally:
            h.kill()

        # ---- eof: the stream ends inside the giant line -------------------------------
        print(f"== eof: a {giant:,}-byte line, no LF, then EOF", flush=True)
        h = Helper(a.helper, a.policy, tmp)
        try:
            h.write([b"1 " + CRL + b"\n"])
            h.wait_answers(1, 30)
            base = status(h.p.pid)
            h.start_sampling()
            t0 = time.monotonic()
            h.write(giant_line(b"9 10.1.2.3 GET http%3A%2F%2Fcrl.verisign.com%2F", giant,
                               lf=False))
            t_written = time.monotonic() - t0
            time.sleep(0.1)  # the helper reads what is left in the pipe
            h.stop_sampling()
            hwm = status(h.p.pid).get("VmHWM", 0)
            got_before_eof = [ans for _t, ans in h.answers]
            rc, maxrss = h.close()
            t_exit = time.monotonic() - t0
            got = [ans for _t, ans in h.answers]
            check(got_before_eof == ["1 " + OK_CRL],
                  f"eof: no answer for the unterminated line before EOF ({got_before_eof})")
            check(got == ["1 " + OK_CRL, "9 " + TOO_LONG],
                  f"eof: exactly '1 OK ...' and '9 {TOO_LONG}' (got {got})")
            check(rc == 0, f"eof: clean exit 0 at EOF (got {rc})")
            figures["eof"] = {"bytes": h.written, "giant_bytes": giant,
                              "write_seconds": round(t_written, 2),
                              "exit_seconds": round(t_exit, 2)}
            check(t_exit / a.gib < a.max_seconds,
                  f"eof: {giant:,} bytes written in {t_written:.2f} s, helper exited "
                  f"{t_exit:.2f} s after the first byte (bound {a.max_seconds:g} s per GiB)")
            check_memory("eof", h, hwm, maxrss, base)
            if failures:
                print("stderr: " + h.stderr())
        finally:
            h.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("figures: " + json.dumps(figures))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
