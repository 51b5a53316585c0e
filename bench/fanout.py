"""Fan-out: `runbook run service-down` on 1 broken host vs 10 broken at once.

On a lab of its own with 10 systemd hosts: crash the demo service on lab-1 and time
`runbook run service-down -l lab-1`; crash it on all ten and time the run on
`lab_systemd`. The fleet run is timed twice: with the default blast radius (0.5: two
batches of five, the safety envelope's share) and with the whole fleet at once
(`runbook_blast_radius=1.0`). ANSIBLE_FORKS is 10 so a batch runs in parallel. Prints
every trial, the medians and the ratios fleet / single (1.0 would be perfect scaling).
Asserts nothing about time.

    .venv/bin/python bench/fanout.py [--trials 3] [--hosts 10] [--keep] [--strategy linear|free|mitogen]
        [--fact-cache memory|jsonfile|both]

--strategy compares ansible's execution strategies on the same fleet: `free` lets each host
run ahead of the others; `mitogen` (pip install mitogen) runs mitogen_linear, which needs
the docker connection's short name (`docker`), so the bench writes such an inventory.

--fact-cache jsonfile runs with ansible-runner's default fact cache, which `runbook run` no
longer uses (ansible-core decodes every host's cached facts for each task and host, in its one
controller thread): the before figure. `both` alternates the two caches within each trial.
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

from _common import BENCH_VARS, BenchError, health, wait


def timed_run(limit: str, extra: dict, inventory: str | None = None) -> float:
    argv = [sys.executable, "-m", "runbook_remediation", "-o", "json", "run", "service-down", "-l", limit,
            "-e", json.dumps({**BENCH_VARS, **extra}), *(["-i", inventory] if inventory else [])]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise BenchError(f"`runbook run service-down -l {limit}` exited {proc.returncode}: "
                         f"{proc.stderr.strip().splitlines()[-1:]}")
    outcomes = {r["outcome"] for r in json.loads(proc.stdout)["hosts"].values()}
    if outcomes != {"remediated"}:
        raise BenchError(f"expected every host remediated, got {outcomes}")
    return elapsed


def use_fact_cache(name: str, state: Path) -> None:
    """Make the runs use fact cache ``name`` (ANSIBLE_* variables pass to `runbook run`'s child)."""
    for var in ("ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION"):
        os.environ.pop(var, None)
    if name == "jsonfile":
        os.environ.update({"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(state / "facts")})


def strategy(name: str, inventory: Path, state: Path) -> str | None:
    """Set the execution strategy for the runs; returns the inventory they use (None: the lab's)."""
    if name == "linear":
        return None
    if name == "free":
        os.environ["ANSIBLE_STRATEGY"] = "free"
        return None
    try:
        import ansible_mitogen
    except ImportError as exc:
        raise BenchError("--strategy mitogen needs mitogen in this venv (pip install mitogen)", 2) from exc
    os.environ["ANSIBLE_STRATEGY_PLUGINS"] = str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")
    os.environ["ANSIBLE_STRATEGY"] = "mitogen_linear"
    mitogen_inventory = state / "inventory-mitogen.yml"
    text = inventory.read_text(encoding="utf-8")
    text = text.replace("ansible_connection: community.docker.docker", "ansible_connection: docker")
    mitogen_inventory.write_text(text, encoding="utf-8")
    return str(mitogen_inventory)


def main() -> int:
    try:
        return bench()
    except BenchError as exc:
        print(f"fanout: error: {exc}", file=sys.stderr)
        return exc.code


def bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    parser.add_argument("--strategy", choices=["linear", "free", "mitogen"], default="linear")
    parser.add_argument("--fact-cache", choices=["memory", "jsonfile", "both"], default="memory")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="runbook-bench-fanout-"))
    os.environ.update({"RUNBOOK_LAB_NAME": "fanout", "RUNBOOK_STATE_DIR": str(state),
                       "RUNBOOK_ENVELOPE_DB": str(state / "envelope.db"), "ANSIBLE_FORKS": str(args.hosts)})
    from runbook_remediation.lab.lab import Lab

    lab = Lab(state, progress=lambda msg: print(f"lab: {msg}", file=sys.stderr))
    names = [f"lab-{i}" for i in range(1, args.hosts + 1)]

    def crash(hosts: list[str]) -> None:
        for name in hosts:
            lab.break_service("crash", name)
        for name in hosts:
            wait(lambda name=name: health(lab.host(name).health_url) != 200, 15, f"{name} down")

    caches = ["jsonfile", "memory"] if args.fact_cache == "both" else [args.fact_cache]
    times: dict[str, dict[str, list[float]]] = {
        cache: {"single": [], "fleet 0.5": [], "fleet 1.0": []} for cache in caches}
    inventory = None
    try:
        lab.up(hosts=args.hosts)
        inventory = strategy(args.strategy, lab.inventory_path, state)
        for trial in range(1, args.trials + 1):
            for cache in caches:
                use_fact_cache(cache, state)
                runs = times[cache]
                crash(["lab-1"])
                runs["single"].append(timed_run("lab-1", {}, inventory))
                crash(names)
                runs["fleet 0.5"].append(timed_run("lab_systemd", {"runbook_blast_radius": 0.5}, inventory))
                crash(names)
                runs["fleet 1.0"].append(timed_run("lab_systemd", {"runbook_blast_radius": 1.0}, inventory))
                print(f"trial {trial} ({cache} facts): " + "  ".join(f"{k} {v[-1]:6.2f}s" for k, v in runs.items()),
                      flush=True)
    finally:
        if not args.keep:
            lab.down()

    for cache, runs in times.items():
        single = statistics.median(runs["single"])
        print(f"\n{cache} fact cache:")
        for key, values in runs.items():
            median = statistics.median(values)
            print(f"  {key:<10} median {median:6.2f}s  max {max(values):6.2f}s  ratio to single {median / single:5.2f}")
        fleet, half = statistics.median(runs["fleet 1.0"]), statistics.median(runs["fleet 0.5"])
        print(f"strategy {args.strategy}, {cache} fact cache: {args.hosts} hosts at once cost {fleet / single:.2f}x "
              f"one host ({half / single:.2f}x with the default blast radius of 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
