"""The write-like system calls of a process tree, as strace records them: which file or
socket each went to, what it carried, and in which order. For tests of the form "A was
written before B was sent" (an audit event before the answer that acts on it), where
timing would prove nothing.

    cmd = strace_command(trace_file) + [program, ...]   # or CIcap(..., wrapper=...)
    ... run it, stop it ...
    writes = read_writes(trace_file)

Needs strace (scripts/setup installs it); strace_available() says whether it is there.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

STRACE = shutil.which("strace") or "/usr/bin/strace"

# Write calls whose first argument is the file descriptor (sendmsg too: its iov_base
# strings are read like writev's).
CALLS = ("write", "writev", "sendto", "sendmsg", "pwrite64", "pwritev", "pwritev2")


def strace_available() -> bool:
    return shutil.which("strace") is not None


def strace_command(out: str, *, max_string: int = 1 << 20) -> list[str]:
    """strace options for read_writes(): every thread and child (-f), the path or the
    socket's endpoints of each descriptor (-yy), whole strings (-s), printable ASCII
    kept (-x: the rest as \\xNN), times (-tt)."""
    return [STRACE, "-f", "-qq", "-tt", "-yy", "-x", "-s", str(max_string),
            "-e", "trace=" + ",".join(CALLS), "-o", out]


@dataclass
class Write:
    index: int    # line in the trace where the call started
    done: int     # line where it returned (index, unless another thread interrupted it)
    pid: int      # the thread
    call: str
    fd: int
    target: str   # the file's path, or "TCP:[local->peer]", "pipe:[...]"
    data: bytes   # what it carried (the strings of its arguments, concatenated)
    truncated: bool


_ENTRY = re.compile(r"^(?:(\d+)\s+)?(?:[\d:.]+\s+)?(" + "|".join(CALLS) + r")\((\d+)<(.*?)>, (.*)$")
_RESUMED = re.compile(r"^(?:(\d+)\s+)?(?:[\d:.]+\s+)?<\.\.\. (\w+) resumed>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\.\.\.)?')
_ESC = {"n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v", "f": b"\f", '"': b'"', "\\": b"\\"}


def _unescape(s: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
            continue
        n = s[i + 1]
        if n == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif n.isdigit():
            j = i + 1
            while j < len(s) and j < i + 4 and s[j] in "01234567":
                j += 1
            out.append(int(s[i + 1:j], 8))
            i = j
        else:
            out += _ESC.get(n, n.encode("latin-1"))
            i += 2
    return bytes(out)


def read_writes(path: str) -> list[Write]:
    """The write calls of a trace made with strace_command(), in the order they started.
    A call another thread interrupted ("<unfinished ...>") is listed where it started,
    with the arguments strace printed then; `done` is the line of its "resumed" part."""
    writes: list[Write] = []
    unfinished: dict[int, Write] = {}
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f):
            m = _ENTRY.match(line)
            if not m:
                r = _RESUMED.match(line)
                if r and int(r.group(1) or 0) in unfinished:
                    unfinished.pop(int(r.group(1) or 0)).done = n
                continue
            args = m.group(5)
            data = bytearray()
            truncated = False
            for s in _STRING.finditer(args):
                data += _unescape(s.group(1))
                truncated = truncated or bool(s.group(2))
            w = Write(n, n, int(m.group(1) or 0), m.group(2), int(m.group(3)), m.group(4),
                      bytes(data), truncated)
            writes.append(w)
            if line.rstrip().endswith("<unfinished ...>"):
                unfinished[w.pid] = w
    return writes
