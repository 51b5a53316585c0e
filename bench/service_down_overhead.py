"""What `runbook run service-down` costs over a bare play that does the same probe/restart/wait.

For each trial, on the running lab: crash the demo service on one lab host and time, in
an order that rotates every trial so drift hits all three,

    runbook            `runbook run service-down -l HOST` (CLI, timeline, ansible-runner)
    ansible-playbook   `ansible-playbook runbook.remediation.service_down -l HOST`
    bare               a 3-task play: probe the health URL, restart the unit, wait for 200

The scenario keeps everything the bare play lacks: the request checks, the safety
envelope, evidence (unit state, last logs), the restart budget on the target, a
stabilization window (3 healthy probes) and the record. Prints every trial, the medians
and the ratios runbook / bare (target <= 1.5) and runbook / ansible-playbook. Asserts
nothing about time; exits 0 once the trials ran, 2 when the lab is not up.

    .venv/bin/python bench/service_down_overhead.py [--trials 5] [--host lab-1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BENCH_VARS, BenchError, health, last_line, wait

from runbook_remediation.collection import find_collection

BIN = Path(sys.executable).parent
RUNBOOK = str(BIN / "runbook")
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook")
PLAYBOOK = "runbook.remediation.service_down"
TARGET_RATIO = 1.5

# The bare play: what a human would automate first, nothing else.
BARE_PLAY = """\
- name: Bare restart
  hosts: all
  gather_facts: false
  tasks:
    - name: Probe
      ansible.builtin.uri:
        url: "{{ runbook_services[0].health_url }}"
        status_code: [200, 503, -1]
      failed_when: false
    - name: Restart
      ansible.builtin.systemd_service:
        name: "{{ runbook_services[0].unit }}"
        state: restarted
    - name: Wait until healthy
      ansible.builtin.uri:
        url: "{{ runbook_services[0].health_url }}"
      register: bare_health
      until: bare_health.status == 200
      retries: 40
      delay: 0.25
"""


def lab_status() -> dict:
    proc = subprocess.run([RUNBOOK, "-o", "json", "lab", "status"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"`runbook lab status` failed: {last_line(proc.stderr)}", 2)
    status = json.loads(proc.stdout)
    if not status.get("up"):
        raise BenchError("the lab is not up (runbook lab up)", 2)
    return status


def runbook_cmd(*args: str) -> None:
    proc = subprocess.run([RUNBOOK, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"`runbook {' '.join(args)}` failed: {last_line(proc.stderr)}")


def crash(host: str, url: str) -> None:
    """Make sure the service is healthy, then crash it and wait until its health fails."""
    if health(url) != 200:
        runbook_cmd("lab", "heal", "--host", host)
        wait(lambda: health(url) == 200, 30, f"{host} to be healthy again")
    runbook_cmd("lab", "break", "crash", "--host", host)
    wait(lambda: health(url) != 200, 30, f"{host}'s health check to fail")


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - started
    return elapsed, proc.returncode, last_line(proc.stderr) or last_line(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--trials", type=int, default=5, help="number of trials (default 5)")
    parser.add_argument("--host", default="lab-1", help="systemd lab host to crash and remediate (default lab-1)")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")

    try:
        status = lab_status()
        host = next((h for h in status["hosts"] if h["name"] == args.host), None)
        if host is None or host["manager"] != "systemd":
            known = ", ".join(h["name"] for h in status["hosts"] if h["manager"] == "systemd")
            raise BenchError(f"{args.host!r} is not a systemd lab host (those are: {known})", 2)
        inventory = status["inventory"]
        bare = Path(tempfile.mkdtemp(prefix="runbook-bench-")) / "bare.yml"
        bare.write_text(BARE_PLAY, encoding="utf-8")
        ansible_env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": find_collection().env_collections_path()}
        extra = ("-e", json.dumps(BENCH_VARS))
        commands = {
            "runbook": ([RUNBOOK, "run", "service-down", "-i", inventory, "-l", args.host, *extra], None),
            "ansible-playbook": ([ANSIBLE_PLAYBOOK, PLAYBOOK, "-i", inventory, "-l", args.host, *extra], ansible_env),
            "bare": ([ANSIBLE_PLAYBOOK, str(bare), "-i", inventory, "-l", args.host], ansible_env),
        }
        print(f"bench: service-down on {args.host}, {args.trials} trial(s), inventory {inventory}")
        times: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for trial in range(1, args.trials + 1):
            shift = (trial - 1) % len(names)
            order = names[shift:] + names[:shift]
            figures = []
            for name in order:
                crash(args.host, host["health_url"])
                argv_, env = commands[name]
                elapsed, code, last = timed(argv_, env)
                if health(host["health_url"]) != 200:
                    raise BenchError(f"{name} left {args.host} unhealthy (exit {code}: {last})")
                times[name].append(elapsed)
                note = "" if code == 0 else f" [exit {code}: {last}]"
                figures.append(f"{name} {elapsed:5.2f} s{note}")
            print(f"trial {trial}: " + "   ".join(figures), flush=True)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("bench: cancelled", file=sys.stderr)
        return 130

    medians = {name: statistics.median(values) for name, values in times.items()}
    print("median: " + "   ".join(f"{name} {value:.2f} s" for name, value in medians.items()))
    ratio = medians["runbook"] / medians["bare"]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio runbook/bare: {ratio:.2f} (target <= {TARGET_RATIO:.1f}: {verdict})")
    print(f"ratio runbook/ansible-playbook: {medians['runbook'] / medians['ansible-playbook']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
