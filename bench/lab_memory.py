"""Memory of every drill profile up at once: the whole lab with its Kubernetes cluster.

The drill profiles (`runbook drill`) run on the lab's hosts: edge-gateway on the systemd
host lab-1, ggen-mcp on lab-docker (LibreOffice inside), causal-eval and mcts on lab-compose
(causal-eval's Redis and PostgreSQL beside it), mpc-transformer on the cluster's Deployment
lab-k8s. This starts that lab (`lab up --hosts 1` with every `--profile`) in a state
directory of its own, waits a little for it to settle, and prints the resident memory of
each part and the total against the 4 GiB budget of a two-core machine.
Asserts nothing.

    .venv/bin/python bench/lab_memory.py [--settle 20] [--keep]

Containers: the cgroup's total_rss (every process of the container, systemd and its units
included) from Docker's stats; Prometheus, Alertmanager, the Redis and PostgreSQL exporters: their VmRSS;
the cluster: `lab status`'s figure (etcd, control plane, kubelet and the pods' containers).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import BenchError

BUDGET = 4 * 2**30
MIB = 2**20


def main() -> int:
    try:
        return bench()
    except BenchError as exc:
        print(f"lab_memory: error: {exc}", file=sys.stderr)
        return exc.code


def bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait after `up`")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="runbook-bench-memory-"))
    os.environ.update({"RUNBOOK_LAB_NAME": "benchmem", "RUNBOOK_STATE_DIR": str(state)})
    from runbook_remediation.lab.kubernetes import rss_bytes
    from runbook_remediation.lab.lab import LABEL, PROFILES, Lab

    lab = Lab(state, progress=lambda msg: print(f"lab: {msg}", file=sys.stderr))
    try:
        lab.up(hosts=1, profiles=PROFILES)
        time.sleep(args.settle)
        parts: list[tuple[str, int]] = []
        for container in sorted(lab.client.containers.list(filters={"label": f"{LABEL}={lab.name}"}),
                                key=lambda c: c.name):
            memory = container.stats(stream=False).get("memory_stats") or {}
            stats = memory.get("stats") or {}
            parts.append((f"container {container.name}", int(stats.get("total_rss", memory.get("usage", 0)))))
        lab_state = lab.state()
        for name, pid in (("prometheus", lab_state.prometheus_pid), ("alertmanager", lab_state.alertmanager_pid),
                          ("redis exporter", (lab_state.redis or {}).get("exporter_pid")),
                          ("postgres exporter", (lab_state.postgres or {}).get("exporter_pid"))):
            parts.append((name, rss_bytes(pid) if pid else 0))
        cluster = lab.status().get("kubernetes") or {}
        parts.append(("kubernetes cluster (etcd, control plane, kubelet, pods)",
                      int(cluster.get("total_rss_bytes") or 0)))
    finally:
        if not args.keep:
            lab.down()

    width = max(len(name) for name, _value in parts)
    for name, value in parts:
        print(f"{name:<{width}}  {value / MIB:8.0f} MiB")
    total = sum(value for _name, value in parts)
    print(f"{'total':<{width}}  {total / MIB:8.0f} MiB")
    print(f"\nevery drill profile up at once: {total / MIB:.0f} MiB resident; ratio to the 4 GiB budget "
          f"{total / BUDGET:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
