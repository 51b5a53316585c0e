"""The lab's Kubernetes host (`lab up --kubernetes`): its inventory entry, its status line,
and a state file from before the option still loads."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from runbook_remediation import shell
from runbook_remediation.lab.kubernetes import demo_manifest
from runbook_remediation.lab.lab import K8S_HOST, Lab, LabHost, LabState, inventory, kubernetes_controls

STATE = LabState(hosts=[LabHost("lab-1", "runbook-x-lab-1", "systemd", 40001)], prometheus_port=40010,
                 alertmanager_port=40011,
                 kubernetes={"run_dir": "/x/kubernetes", "kubeconfig": "/x/kubernetes/admin.kubeconfig",
                             "deployment": "demo", "namespace": "default", "port": 40020})


def test_the_deployment_is_an_inventory_host_run_from_the_controller(tmp_path: Path) -> None:
    hosts = inventory(STATE, tmp_path / "compose", "x")["all"]["children"]["lab"]["children"]["lab_kubernetes"]["hosts"]
    host = hosts[K8S_HOST]
    assert host["ansible_connection"] == "local"
    [service] = host["runbook_services"]
    assert service["manager"] == "kubernetes" and service["deployment"] == "demo"
    assert service["kubeconfig"] == "/x/kubernetes/admin.kubeconfig"
    assert service["health_url"] == "http://127.0.0.1:40020/health"
    without = inventory(LabState(hosts=STATE.hosts, prometheus_port=1, alertmanager_port=2), tmp_path, "x")
    assert without["all"]["children"]["lab"]["children"]["lab_kubernetes"]["hosts"] == {}


def test_seed_002s_controls_are_described_where_the_pods_and_the_roles_read_them() -> None:
    configmap, service = kubernetes_controls(40020)
    assert configmap["data"] == {"maintenance_mode": "false", "region": "americas"}
    assert service["metadata"]["annotations"] == {"traffic.mpc-transformer.com/weight": "100"}
    assert service["spec"]["selector"] == {"app": "demo"} and service["spec"]["ports"][0]["targetPort"] == 40020
    hosts = inventory(STATE, Path("/x/compose"), "x")["all"]["children"]["lab"]["children"]["lab_kubernetes"]["hosts"]
    [described] = hosts[K8S_HOST]["runbook_services"]
    assert described["maintenance"] == {"configmap": configmap["metadata"]["name"], "key": "maintenance_mode"}
    assert described["traffic"] == {"service": service["metadata"]["name"],
                                    "annotation": "traffic.mpc-transformer.com/weight"}
    # The pods read the flag when they start, from the ConfigMap's key.
    manifest = demo_manifest("demo", 40020, "img", env_from={"MAINTENANCE_MODE": ("demo-config", "maintenance_mode")})
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MAINTENANCE_MODE",
            "valueFrom": {"configMapKeyRef": {"name": "demo-config", "key": "maintenance_mode"}}} in env


def test_a_state_file_without_kubernetes_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"hosts": [], "prometheus_port": 1}))
    assert LabState.load(path).kubernetes is None


def test_lab_host_finds_the_kubernetes_host_only_when_the_cluster_is_in_the_lab(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    STATE.save(lab.state_path)
    assert lab.host(K8S_HOST).port == 40020 and lab.host(K8S_HOST).manager == "kubernetes"
    LabState(hosts=STATE.hosts).save(lab.state_path)
    assert lab.kubernetes_host() is None


def test_status_prints_the_cluster_and_its_memory(monkeypatch) -> None:
    status = {"up": True, "state_dir": "/x",
              "hosts": [{"name": K8S_HOST, "manager": "kubernetes", "container": "deployment/demo",
                         "container_status": "running", "service": "demo", "health_url": "http://127.0.0.1:1/health",
                         "metrics_url": "", "healthy": True, "health": "healthy"}],
              "kubernetes": {"running": True, "server": "https://127.0.0.1:6443", "kubeconfig": "/x/admin.kubeconfig",
                             "total_rss_bytes": 600 * 2**20},
              "prometheus": {"url": "http://127.0.0.1:2", "running": True},
              "alertmanager": {"url": "http://127.0.0.1:3", "running": True}, "inventory": "/x/inventory.yml"}
    monkeypatch.setattr(Lab, "status", lambda self: status)
    result = CliRunner().invoke(shell.cli, ["lab", "status"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Kubernetes:" in result.output and "600 MiB resident" in result.output, result.output
    assert K8S_HOST in result.output


def test_missing_binaries_are_built_once_by_the_checkouts_script(tmp_path: Path, monkeypatch) -> None:
    from runbook_remediation.errors import Unavailable
    from runbook_remediation.lab import kubernetes as k8s

    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    marker = tmp_path / "built"
    script = tmp_path / "kubernetes-build"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)

    def missing(*_args):
        raise Unavailable("the Kubernetes 1.20.2 binaries are not built")

    monkeypatch.setattr(k8s, "ensure_binaries", missing)
    monkeypatch.setattr(k8s, "build_script", lambda: script)
    assert lab._build_kubernetes() is True and marker.is_file()

    script.write_text("#!/bin/sh\nexit 3\n")
    try:
        lab._build_kubernetes()
    except Unavailable as exc:
        assert "failed (exit 3)" in str(exc)
    else:
        raise AssertionError("a failed build must stop `lab up`")

    monkeypatch.setattr(k8s, "build_script", lambda: None)  # an installed wheel: no script
    assert lab._build_kubernetes() is False

    monkeypatch.setattr(k8s, "ensure_binaries", lambda *_a: {})
    monkeypatch.setattr(k8s, "image_exists", lambda _tag: True)
    monkeypatch.setattr(k8s, "build_script", lambda: script)
    assert lab._build_kubernetes() is False  # built already: nothing to do


def test_a_kubelet_that_exited_but_was_not_reaped_is_no_other_cluster(tmp_path: Path) -> None:
    """A zombie kubelet (its parent, e.g. init in a container, has not reaped it yet) kills no
    pod: `lab up` and the tests must not take it for a running cluster."""
    import shutil
    import subprocess
    import time

    from runbook_remediation.lab import kubernetes as k8s

    fake = tmp_path / "kubelet"
    shutil.copy("/bin/true", fake)
    child = subprocess.Popen([str(fake)])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)
        assert Path(f"/proc/{child.pid}/comm").read_text().strip() == "kubelet"
        assert child.pid not in k8s.other_kubelets()
    finally:
        child.wait()
