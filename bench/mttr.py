"""Mean time to recovery of the closed loop, on a lab of its own.

Kill the demo service on a lab host -> Prometheus scrapes it down -> ServiceDown fires ->
Alertmanager's webhook -> `runbook watch` (ansible-rulebook) -> service-down playbook ->
healthy. Each trial is split into

    detect     kill -> the alert's startsAt (scrape + rule evaluation, 1 s each in the lab)
    dispatch   startsAt -> the safety envelope admits the run (webhook, rulebook, playbook start)
    remediate  admission -> the health check answers 200 again (the part the playbook controls)
    verify     healthy -> the run released its lease (stable probes, evidence, report)

and MTTR is kill -> healthy. Prints every trial, the median and max of each, and the
ratio of the median MTTR to the 10 s target (aim: 5 s). Asserts nothing about time.

    .venv/bin/python bench/mttr.py [--trials 5] [--keep] [--kubernetes]

With --kubernetes the lab cluster's Deployment (host lab-k8s, `lab up --kubernetes`) is
measured after lab-1 and printed beside it: the fault is a crash-loop (a crash alone the
kubelet restarts by itself), healed by service-down deleting the pod; it also prints the
cluster's resident memory.

It starts a lab named `bench` in a temporary state directory (its own containers,
Prometheus and Alertmanager) and removes it at the end unless --keep. The restart budget
and the envelope's budget are raised for the bench (every trial is a real first restart).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml
from _common import BENCH_VARS, BenchError, health, wait

TARGET_SECONDS = 10.0
AIM_SECONDS = 5.0
HOST = "lab-1"


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def active_alert(alertmanager: str, host: str) -> bool:
    url = f"{alertmanager}/api/v2/alerts?active=true"
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - the lab's http URL
        return any(a["labels"].get("alertname") == "ServiceDown" and a["labels"].get("host") == host
                   for a in json.load(response))


def main() -> int:
    try:
        return bench()
    except BenchError as exc:
        print(f"mttr: error: {exc}", file=sys.stderr)
        return exc.code


def bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    parser.add_argument("--kubernetes", action="store_true",
                        help="also the lab cluster's Deployment (lab-k8s), measured after lab-1")
    args = parser.parse_args()
    # (host, fault): a crash alone the kubelet restarts by itself; a crash-loop it cannot heal.
    targets = [(HOST, "crash")] + ([("lab-k8s", "crash-loop")] if args.kubernetes else [])

    state = Path(tempfile.mkdtemp(prefix="runbook-bench-mttr-"))
    os.environ.update({"RUNBOOK_LAB_NAME": "bench", "RUNBOOK_STATE_DIR": str(state),
                       "RUNBOOK_ENVELOPE_DB": str(state / "envelope.db")})
    from runbook_remediation.lab.lab import Lab

    lab = Lab(state, progress=lambda msg: print(f"lab: {msg}", file=sys.stderr))
    watcher = None
    results: dict[str, list[dict]] = {}
    cluster = None
    try:
        lab.up(hosts=1, kubernetes=args.kubernetes)
        alertmanager = f"http://127.0.0.1:{lab.state().alertmanager_port}"
        inventory = yaml.safe_load(lab.inventory_path.read_text())
        # In the inventory (the owner's configuration), not as extra vars: the rulebook passes none.
        inventory["all"]["vars"].update({k: v for k, v in BENCH_VARS.items() if k != "runbook_override_safety"})
        bench_inventory = state / "bench-inventory.yml"
        bench_inventory.write_text(yaml.safe_dump(inventory))
        log = open(state / "watch.log", "w")
        watcher = subprocess.Popen([sys.executable, "-m", "runbook_remediation", "watch", "-i", str(bench_inventory),
                                    "--alertmanager", alertmanager, "--attach"], stderr=log, stdout=subprocess.DEVNULL)
        wait(lambda: "remediating alerts" in (state / "watch.log").read_text(), 120, "runbook watch")
        for target, fault in targets:
            results[target] = trials(lab, alertmanager, target, fault, args.trials)
        cluster = lab.status().get("kubernetes")
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=60)
        if not args.keep:
            lab.down()

    print()
    print(f"{'phase':<10} " + " ".join(f"{t + ' median':>20} {'max':>8}" for t in results))
    for key in ("detect", "dispatch", "remediate", "verify", "mttr"):
        cells = []
        for rows in results.values():
            values = [r[key] for r in rows]
            cells.append(f"{statistics.median(values):19.2f}s {max(values):7.2f}s")
        print(f"{key:<10} " + " ".join(cells))
    if cluster:
        print(f"\nKubernetes lab cluster: {cluster['total_rss_bytes'] / 2**20:.0f} MiB resident "
              "(etcd, control plane, kubelet, the demo pod)")
    print()
    for target, rows in results.items():
        median = statistics.median(r["mttr"] for r in rows)
        print(f"median MTTR {median:.2f} s of {target} over {len(rows)} trials; "
              f"ratio to the {TARGET_SECONDS:.0f} s target {median / TARGET_SECONDS:.2f} "
              f"(aim {AIM_SECONDS:.0f} s: {median / AIM_SECONDS:.2f})")
    return 0


def trials(lab, alertmanager: str, target: str, fault: str, count: int) -> list[dict]:
    """``count`` kills of ``target``'s service, each healed by the loop: the phases of each."""
    from runbook_remediation import envelope

    host = lab.host(target)
    rows = []
    for trial in range(1, count + 1):
        wait(lambda: not active_alert(alertmanager, target), 60, "the previous alert to resolve", 0.5)
        store = envelope.open_envelope()
        done = len(store.attempts(target=f"{target}/demo"))
        store.close()
        killed = time.time()
        lab.break_service(fault, target)
        wait(lambda: health(host.health_url) != 200, 10, "the service down")
        wait(lambda: health(host.health_url) == 200, 120, "the loop to heal the service")
        healthy = time.time()

        def finished(done=done):
            store = envelope.open_envelope()
            try:
                new = store.attempts(target=f"{target}/demo")[done:]
            finally:
                store.close()
            return next((a for a in new if a["ended_at"] and a["outcome"] == "remediated"), None)

        attempt = wait(finished, 60, "the run to end")
        alerted = parse_ts(attempt["alert_key"].split("@", 1)[1])
        row = {"mttr": healthy - killed, "detect": alerted - killed, "dispatch": attempt["started_at"] - alerted,
               "remediate": healthy - attempt["started_at"], "verify": attempt["ended_at"] - healthy}
        rows.append(row)
        print(f"{target} trial {trial}: " + "  ".join(f"{k} {v:5.2f}s" for k, v in row.items()), flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
