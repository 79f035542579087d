"""Facts about processes from /proc (Linux), for labs and benchmarks."""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [0] state, [1] ppid, [11] utime, [12] stime.
    Raises OSError when the process is gone."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_cpu_ticks(pid: int) -> int:
    """User + system CPU time of `pid` (all its threads) in clock ticks; 0 if it is gone."""
    try:
        fields = _stat_fields(pid)
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def children_of(pid: int) -> list[int]:
    """PIDs of the processes whose parent is `pid`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(d))[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def pids_of_exe(path: str) -> list[int]:
    """PIDs (sorted) of the running processes whose executable is `path`."""
    return sorted(int(d) for d in os.listdir("/proc") if d.isdigit() and exe_of(int(d)) == path)


def exe_of(pid: int) -> str:
    """The executable of `pid`, "" if it is gone or not readable."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""
