#!/usr/bin/python3
"""Feeds ext_authbypass_acl N generated request lines through a pipe (like Squid does:
a writer and a reader at once) and samples its resident memory as it goes.

usage: helper_rss.py HELPER POLICY LINES_FILE [--samples 20] [--max-growth-kb 1024]
                     [--json OUT] [-- EXTRA HELPER ARGS]

Checks: one answer per line, every answer well-formed (OK/ERR with the line's channel id),
the helper exits 0 at EOF, and VmRSS after the first 10% of the lines (warm: caches,
buffers and the allocator's arenas in use) grows by at most --max-growth-kb until the end
(the median of the last quarter of those samples against that of the first quarter).
Prints the samples; exit 0 when all hold, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main() -> int:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    ap = argparse.ArgumentParser()
    ap.add_argument("helper")
    ap.add_argument("policy")
    ap.add_argument("lines")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--max-growth-kb", type=int, default=1024)
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    with open(a.lines, "rb") as f:
        data = f.read()
    lines = data.count(b"\n")
    tmp = tempfile.mkdtemp(prefix="ab-rss-")
    audit = os.path.join(tmp, "audit.log")
    err = open(os.path.join(tmp, "stderr"), "wb")
    p = subprocess.Popen([a.helper, "--policy", a.policy, "--audit-log", audit, *extra],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    samples: list[tuple[int, int]] = []  # (answers read, VmRSS kB)
    step = max(1, lines // a.samples)

    def writer():
        try:
            view = memoryview(data)
            for off in range(0, len(data), 1 << 16):
                p.stdin.write(view[off:off + (1 << 16)])
            p.stdin.close()
        except BrokenPipeError:
            pass

    t0 = time.monotonic()
    w = threading.Thread(target=writer, daemon=True)
    w.start()
    answers = ok = errs = bad = 0
    buf = b""
    next_sample = step
    try:
        while True:
            chunk = os.read(p.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for ans in complete:
                answers += 1
                parts = ans.split(b" ", 2)
                verb = parts[1] if len(parts) > 1 and parts[0].isdigit() else parts[0]
                if verb == b"OK":
                    ok += 1
                elif verb == b"ERR":
                    errs += 1
                else:
                    bad += 1
            while answers >= next_sample:
                samples.append((answers, rss_kb(p.pid)))
                next_sample += step
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        w.join(5)
    secs = time.monotonic() - t0
    err.close()
    stderr = open(os.path.join(tmp, "stderr"), errors="replace").read()
    audit_lines = sum(1 for _ in open(audit, "rb")) if os.path.exists(audit) else 0

    # Warm samples of a live process (VmRSS is gone while it exits). The helper's buffers are
    # bounded (the batch held for the audit writer: 256 KiB of answers and of records) but
    # reach their high-water mark when a read brings the most audit events, and glibc hands
    # freed blocks back and takes them again, so single samples move by some hundred kB
    # either way; a leak moves the level. Growth: the median of the last quarter of the
    # warm samples minus the median of the first quarter.
    warm = [s for s in samples if s[0] >= lines // 10 and s[1] > 0]
    q = max(1, len(warm) // 4)
    growth = int(statistics.median(r for _, r in warm[-q:]) -
                 statistics.median(r for _, r in warm[:q])) if len(warm) >= 4 else None
    peak = max((s[1] for s in samples), default=0)
    print(f"helper_rss: {lines} lines in {secs:.1f} s ({lines / secs:,.0f} lines/s): "
          f"{answers} answers ({ok} OK, {errs} ERR, {bad} other), exit {rc}, "
          f"{audit_lines} audit lines")
    print("  answers  VmRSS(kB)")
    for n, r in samples:
        print(f"  {n:8d}  {r:8d}")
    print(f"  RSS after 10%: {warm[0][1] if warm else '?'} kB, at the end: "
          f"{warm[-1][1] if warm else '?'} kB, growth {growth} kB (median of the last "
          f"{q} warm samples minus that of the first {q}; limit {a.max_growth_kb}), "
          f"peak {peak} kB")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"lines": lines, "seconds": secs, "answers": answers, "ok": ok,
                       "err": errs, "other": bad, "exit": rc, "samples": samples,
                       "growth_kb": growth, "peak_kb": peak, "audit_lines": audit_lines}, f)
    failures = []
    if answers != lines:
        failures.append(f"{answers} answers for {lines} lines")
    if bad:
        failures.append(f"{bad} answers neither OK nor ERR")
    if rc != 0:
        failures.append(f"exit code {rc}; stderr: {stderr[-2000:]}")
    if growth is None:
        failures.append(f"only {len(warm)} warm RSS samples of a live helper (need 4)")
    elif growth > a.max_growth_kb:
        failures.append(f"RSS grew by {growth} kB after warm-up")
    for f_ in failures:
        print("FAIL: " + f_)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
