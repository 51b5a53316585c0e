"""`runbook lab up --kubernetes` on the real lab: the Kubernetes lab cluster (v1.20.2, built by
scripts/kubernetes-build) joins the lab with the demo as a Deployment (host lab-k8s in the
inventory), its pod scraped by the lab's Prometheus like any host; the closed loop heals it:
a crash-looping pod -> ServiceDown -> Alertmanager -> `runbook watch` -> service-down on the
Deployment -> healthy. `lab up` without the flag stops the cluster and leaves the other
hosts as they were."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from runbook_remediation import envelope as envelope_cli
from runbook_remediation.lab import kubernetes as k8s
from runbook_remediation.lab.monitoring import http_json
from tests.conftest import http_status, runbook, wait_for, watcher
from tests.integration.test_kubernetes_lab import kubernetes_container_ids, processes_mentioning
from tests.kubernetes import require_kubernetes

pytestmark = [pytest.mark.lab, pytest.mark.k8s]


@pytest.fixture(scope="module")
def k8s_lab(lab):
    require_kubernetes()
    result = runbook("-o", "json", "lab", "up", "--kubernetes")
    assert result.returncode == 0, result.stderr
    try:
        yield lab
    finally:
        runbook("lab", "up")  # the cluster stopped again, the other hosts as they were


def prometheus_up(lab, host: str) -> float | None:
    query = urllib.parse.quote(f'up{{host="{host}",service="demo"}}')
    body = http_json(f"http://127.0.0.1:{lab.state().prometheus_port}/api/v1/query?query={query}", timeout=5)
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_the_demo_runs_as_a_deployment_scraped_like_any_host(k8s_lab):
    lab = k8s_lab
    status = json.loads(runbook("-o", "json", "lab", "status").stdout)
    [host] = [h for h in status["hosts"] if h["name"] == "lab-k8s"]
    assert host["manager"] == "kubernetes" and host["healthy"], host
    assert status["kubernetes"]["running"] and status["kubernetes"]["total_rss_bytes"] > 0, status["kubernetes"]
    wait_for(lambda: prometheus_up(lab, "lab-k8s") == 1, timeout=30, what="Prometheus scraping the pod")
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    hosts = inventory["all"]["children"]["lab"]["children"]["lab_kubernetes"]["hosts"]
    [service] = hosts["lab-k8s"]["runbook_services"]
    assert service["manager"] == "kubernetes" and service["deployment"] == "demo", service
    # Idempotent: a second `up` changes nothing.
    again = json.loads(runbook("-o", "json", "lab", "up", "--kubernetes").stdout)
    assert again["changed"] is False, again["changes"]


def test_a_crash_looping_pod_is_healed_by_the_closed_loop(k8s_lab, tmp_path):
    lab = k8s_lab
    url = lab.host("lab-k8s").health_url
    with watcher(tmp_path):
        assert runbook("lab", "break", "crash-loop", "--host", "lab-k8s").returncode == 0
        wait_for(lambda: http_status(url) != 200, timeout=15, what="lab-k8s down")
        wait_for(lambda: http_status(url) == 200, timeout=150, interval=1, what="lab-k8s healed by the loop")
        store = envelope_cli.open_envelope()
        try:
            wait_for(lambda: [a for a in store.attempts(target="lab-k8s/demo") if a["ended_at"]], timeout=60,
                     what="the run's end")
            [attempt] = store.attempts(target="lab-k8s/demo")
        finally:
            store.close()
    assert attempt["outcome"] == "remediated" and attempt["scenario"] == "service-down", attempt
    assert "@" in attempt["alert_key"]  # started by the alert, not by hand
    healed = runbook("lab", "heal", "--host", "lab-k8s")
    assert healed.returncode == 0, healed.stderr


def test_the_mpc_transformer_drill_fixes_the_crash_loop_and_takes_and_reverts_each_emergency_action(k8s_lab):
    lab = k8s_lab
    result = runbook("-o", "json", "drill", "mpc-transformer")
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    report = json.loads(result.stdout)
    rows = {row["mode"]: row for row in report["modes"]}
    assert rows["crash-loop"]["ok"] and rows["crash-loop"]["detect_seconds"] is not None, rows["crash-loop"]
    assert rows["crash-loop"]["alert_resolved"], rows["crash-loop"]
    for action in ("maintenance-mode", "region-drain"):
        row = rows[action]
        assert (row["ok"], row["outcome"], row["revert_outcome"]) == (True, "remediated", "remediated"), row
        assert row["fault"] is None and row["alert"] is None and row["revert_seconds"] > 0, row
    assert rows["oom-killed"]["ok"] is None and rows["oom-killed"]["reason"], rows["oom-killed"]
    saved = Path(report["report"]).read_text()
    assert "| maintenance-mode: " in saved and ", reverted in " in saved, saved

    # Reverted and healed: the flag off, the region's full weight back without a record.
    kubectl = [str(k8s.bin_dir() / "kubectl"), "--kubeconfig", lab.state().kubernetes["kubeconfig"]]
    configmap = json.loads(subprocess.run([*kubectl, "get", "configmap", "demo-config", "-o", "json"],
                                          capture_output=True, text=True, check=True).stdout)
    assert configmap["data"]["maintenance_mode"] == "false", configmap["data"]
    service = json.loads(subprocess.run([*kubectl, "get", "service", "demo-americas", "-o", "json"],
                                        capture_output=True, text=True, check=True).stdout)
    annotations = service["metadata"]["annotations"]
    assert annotations["traffic.mpc-transformer.com/weight"] == "100", annotations
    assert "runbook.remediation/weight-before" not in annotations, annotations
    assert http_status(lab.host("lab-k8s").health_url) == 200


def test_lab_up_without_the_flag_stops_the_cluster(k8s_lab):
    lab = k8s_lab
    run_dir = lab.state().kubernetes["run_dir"]
    own = {container["id"] for container in k8s.Cluster.load(Path(run_dir)).containers()}
    assert own, "the cluster should have pod containers before the up without the flag"
    result = json.loads(runbook("-o", "json", "lab", "up").stdout)
    assert "stopped the Kubernetes cluster" in result["changes"], result
    assert k8s.other_kubelets() == []
    # Nothing of it left: no process started from its run dir, no container its kubelet made.
    assert processes_mentioning(run_dir) == []
    assert not kubernetes_container_ids() & own
    assert "lab-k8s" not in {h["name"] for h in result["hosts"]}
    assert "lab-k8s" not in lab.inventory_path.read_text()
    assert all(h["healthy"] for h in result["hosts"]), result["hosts"]
