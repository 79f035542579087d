"""The pass/fail tally a test script prints as it goes and exits on."""

from __future__ import annotations


class Checks:
    """expect() prints `ok` or `FAIL` per check and keeps the failures (with their detail);
    limitation() records a known limitation of a third-party program (not a failure)."""

    def __init__(self):
        self.failures: list[str] = []
        self.limitations: list[str] = []
        self.passed = 0

    def expect(self, cond: bool, what: str, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"  ok    {what}", flush=True)
        else:
            self.failures.append(what + (f" ({detail})" if detail else ""))
            print(f"  FAIL  {what}" + (f"\n        {detail}" if detail else ""), flush=True)
        return bool(cond)

    def limitation(self, what: str):
        print("  KNOWN C-ICAP LIMITATION  " + what, flush=True)
        self.limitations.append(what)

    def summary(self) -> int:
        """Prints the tally and the failures; the exit status: 1 if any check failed."""
        print(f"\n{self.passed} passed, {len(self.failures)} failed")
        if self.failures:
            print("FAILED:\n  " + "\n  ".join(self.failures))
            return 1
        return 0


def stopped(pid: int) -> bool:
    """True when process `pid` is gone or a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2:].split()[0] == "Z"
