"""What the benchmarks share: probing the lab's services and waiting for them.

Benchmarks print figures and ratios; they never assert a time (that is a test's job,
and timings on a shared two-core machine are not pass/fail material).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

# Every trial restarts the service more often than the budgets allow: counted in a
# state directory of the bench's own over a 1-second window, so each run does the work
# of a real first restart and the host's real budget is left alone. Loosening a budget
# from the command line needs a reason (the scenario frame refuses it otherwise).
BENCH_VARS = {
    "safety_envelope_max_attempts": 1000, "safety_envelope_window": 1,
    "service_restart_budget_window": 1, "service_restart_state_dir": "/var/lib/runbook-remediation-bench",
    "runbook_override_safety": "benchmark: every trial is a first restart",
}


class BenchError(Exception):
    """A one-line reason the bench cannot go on, with the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def health(url: str, timeout: float = 0.5) -> int | None:
    """The HTTP status of the lab service's URL, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the lab's http URL
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def wait(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll until predicate() is truthy and return its value; BenchError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
