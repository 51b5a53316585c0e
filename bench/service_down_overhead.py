"""What `runbook run service-down` costs over bare `ansible-playbook`, on the running lab.

For each trial: crash the demo service on one lab host (`runbook lab break crash`), wait
until its health check fails, time `runbook run service-down -l HOST`; crash it again and
time `ansible-playbook runbook.remediation.service_down -l HOST` with the same inventory
and extra vars. The two commands alternate which goes first, so drift hits both. Prints
every trial, the medians and the ratio runbook / ansible-playbook (target: at most 1.10).
It asserts nothing about time and exits 0 once the trials ran; 2 when the lab is not up.

    .venv/bin/python bench/service_down_overhead.py [--trials 5] [--host lab-1]

The lab is the user's (or the one RUNBOOK_LAB_NAME / RUNBOOK_STATE_DIR select); see
BENCH_VARS for how the restart budget is kept out of the way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from runbook_remediation.collection import find_collection

BIN = Path(sys.executable).parent
RUNBOOK = str(BIN / "runbook")
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook")
PLAYBOOK = "runbook.remediation.service_down"
TARGET_RATIO = 1.10
# Every trial restarts the service twice, more than the restart budget (3 an hour) allows:
# both commands count restarts in a state directory of their own on the target, over a
# 1-second window, so each run does exactly the work of a real first restart and the
# host's real budget is left as it was. JSON, so the window is an integer.
BENCH_VARS = ("-e", json.dumps({
    "service_restart_budget_window": 1,
    "service_restart_state_dir": "/var/lib/runbook-remediation-bench",
}))


class BenchError(Exception):
    """A one-line reason the bench cannot go on."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def lab_status() -> dict:
    proc = subprocess.run([RUNBOOK, "-o", "json", "lab", "status"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"`runbook lab status` failed: {last_line(proc.stderr)}", 2)
    status = json.loads(proc.stdout)
    if not status.get("up"):
        raise BenchError("the lab is not up (runbook lab up)", 2)
    return status


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (a lab URL on 127.0.0.1)
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def runbook_cmd(*args: str) -> None:
    proc = subprocess.run([RUNBOOK, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"`runbook {' '.join(args)}` failed: {last_line(proc.stderr)}")


def crash(host: str, url: str) -> None:
    """Make sure the service is healthy, then crash it and wait until its health fails."""
    if not healthy(url):
        runbook_cmd("lab", "heal", "--host", host)
        wait_for(lambda: healthy(url), f"{host} to be healthy again")
    runbook_cmd("lab", "break", "crash", "--host", host)
    wait_for(lambda: not healthy(url), f"{host}'s health check to fail")


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - started
    return elapsed, proc.returncode, last_line(proc.stderr) or last_line(proc.stdout)


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--trials", type=int, default=5, help="number of trials (default 5)")
    parser.add_argument("--host", default="lab-1", help="lab host to crash and remediate (default lab-1)")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")

    try:
        status = lab_status()
        host = next((h for h in status["hosts"] if h["name"] == args.host), None)
        if host is None:
            known = ", ".join(h["name"] for h in status["hosts"])
            raise BenchError(f"unknown lab host {args.host!r} (lab hosts: {known})", 2)
        inventory = status["inventory"]
        ansible_env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": find_collection().env_collections_path()}
        commands = {
            "runbook": ([RUNBOOK, "run", "service-down", "-i", inventory, "-l", args.host, *BENCH_VARS], None),
            "ansible-playbook": ([ANSIBLE_PLAYBOOK, PLAYBOOK, "-i", inventory, "-l", args.host, *BENCH_VARS],
                                 ansible_env),
        }
        print(f"bench: service-down on {args.host} ({host['manager']}), {args.trials} trial(s), inventory {inventory}")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for trial in range(1, args.trials + 1):
            order = list(commands) if trial % 2 else list(reversed(commands))
            figures = []
            for name in order:
                crash(args.host, host["health_url"])
                argv_, env = commands[name]
                elapsed, code, last = timed(argv_, env)
                times[name].append(elapsed)
                note = "" if code == 0 else f" [exit {code}: {last}]"
                figures.append(f"{name} {elapsed:6.2f} s{note}")
            print(f"trial {trial}: " + "   ".join(figures), flush=True)
        if not healthy(host["health_url"]):
            runbook_cmd("lab", "heal", "--host", args.host)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("bench: cancelled", file=sys.stderr)
        return 130

    median_runbook = statistics.median(times["runbook"])
    median_ansible = statistics.median(times["ansible-playbook"])
    ratio = median_runbook / median_ansible
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"median: runbook {median_runbook:.2f} s   ansible-playbook {median_ansible:.2f} s")
    print(f"ratio runbook/ansible-playbook: {ratio:.3f} (target <= {TARGET_RATIO:.2f}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
