"""The Kubernetes lab cluster, end to end: etcd, control plane and a kubelet on 127.0.0.1.

Needs the binaries and the pause image from scripts/kubernetes-build (skipped otherwise),
root and dockerd. One cluster for the module, in a tmp run dir; the last test stops it and
checks that nothing is left behind. Server version: v1.20.2 (Debian bookworm's source package
kubernetes 1.20.5+really1.20.2-1.1+deb12u1, patched by scripts/kubernetes-build).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from runbook_remediation.lab import kubernetes as k8s
from tests.kubernetes import started_cluster

pytestmark = pytest.mark.k8s

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def curl_status(url: str) -> int:
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "--noproxy", "*", url],
        capture_output=True, text=True, check=False,
    )
    return int(result.stdout or 0)


def kubernetes_container_ids() -> set[str]:
    """Every container in dockerd with dockershim's labels, whichever cluster made it."""
    result = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", "label=io.kubernetes.pod.uid"],
        capture_output=True, text=True, check=True,
    )
    return set(result.stdout.split())


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def demo_pod(cluster, name: str = "demo") -> dict:
    pods = cluster.kubectl_json("get", "pods", "-l", f"app={name}")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 1, [p["metadata"]["name"] for p in pods]
    return live[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    def before():  # what the host looked like, for the last test
        return {"sysctls": k8s.read_sysctls(), "containers": kubernetes_container_ids(),
                "var_log": {d: Path(d).exists() for d in k8s.VAR_LOG_DIRS}}

    with started_cluster(tmp_path_factory, before) as the_cluster:
        yield the_cluster


@pytest.fixture(scope="module")
def demo(cluster):
    return k8s.apply_demo(cluster, name="demo")


def test_node_is_ready_and_sysctls_are_restored(cluster):
    node = cluster.kubectl_json("get", "node", k8s.NODE_NAME)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True", node["status"]["conditions"]
    version = cluster.kubectl_json("version")["serverVersion"]["gitVersion"]
    assert version == f"v{k8s.VERSION}"
    # The kubelet set its sysctls at start; start() put them back already.
    assert k8s.read_sysctls() == cluster.before["sysctls"]
    print(f"\ncluster start timings (s): {cluster.timings}")


def test_demo_deployment_is_available_and_answers(cluster, demo):
    deployment = cluster.kubectl_json("get", "deployment", demo.name)
    assert deployment["status"].get("availableReplicas") == 1, deployment["status"]
    assert curl_status(demo.health_url) == 200
    pod = demo_pod(cluster)
    # hostNetwork on a node named 127.0.0.1: the pod's IP is loopback, so are its probes.
    assert pod["status"]["podIP"] == "127.0.0.1" and pod["status"]["hostIP"] == "127.0.0.1"
    # logs and exec go apiserver -> kubelet on 127.0.0.1 with the kubelet client cert.
    logs = cluster.kubectl("logs", pod["metadata"]["name"]).stdout
    assert logs.strip(), "no logs from the demo pod"
    exec_out = cluster.kubectl("exec", pod["metadata"]["name"], "--", "python3", "-c", "print('in-pod')").stdout
    assert exec_out.strip() == "in-pod"


def test_kubelet_restarts_a_killed_container(cluster, demo):
    pod = demo_pod(cluster)
    status = pod["status"]["containerStatuses"][0]
    restarts = status["restartCount"]
    container_id = status["containerID"].removeprefix("docker://")
    subprocess.run(["docker", "kill", container_id], capture_output=True, check=True)
    killed = time.monotonic()

    def restarted():
        current = demo_pod(cluster)["status"]["containerStatuses"][0]
        return current["restartCount"] > restarts and current.get("ready")

    wait_for(restarted, timeout=60, what="the kubelet to restart the killed container")
    wait_for(lambda: curl_status(demo.health_url) == 200, timeout=30, what="/health after the restart")
    print(f"\nkilled container back healthy in {time.monotonic() - killed:.1f} s")


def test_rollout_and_rollout_undo(cluster, demo):
    def pod_env() -> dict:
        container = demo_pod(cluster)["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container.get("env", [])}

    started = time.monotonic()
    cluster.kubectl("set", "env", f"deployment/{demo.name}", "DEMO_WORKLOAD_RPS=5")
    cluster.kubectl("rollout", "status", f"deployment/{demo.name}", "--timeout=120s", timeout=130)
    wait_for(lambda: pod_env().get("DEMO_WORKLOAD_RPS") == "5", timeout=30, what="the new revision's pod")
    rolled = time.monotonic()
    history = cluster.kubectl("rollout", "history", f"deployment/{demo.name}").stdout
    assert "2" in history.split(), history

    cluster.kubectl("rollout", "undo", f"deployment/{demo.name}")
    cluster.kubectl("rollout", "status", f"deployment/{demo.name}", "--timeout=120s", timeout=130)
    wait_for(lambda: "DEMO_WORKLOAD_RPS" not in pod_env(), timeout=30, what="the undone revision's pod")
    wait_for(lambda: curl_status(demo.health_url) == 200, timeout=30, what="/health after the undo")
    revision = cluster.kubectl_json("get", "deployment", demo.name)["metadata"]["annotations"]
    assert revision["deployment.kubernetes.io/revision"] == "3"
    print(f"\nrollout {rolled - started:.1f} s, undo {time.monotonic() - rolled:.1f} s")


def test_status_reports_pids_and_rss(cluster, demo):
    status = cluster.status()
    assert status["running"]
    names = {p["name"]: p for p in status["processes"]}
    assert set(names) == set(CONTROL_PLANE)
    for process in names.values():
        assert process["alive"] and process["pid"] and process["rss_bytes"] > 0, process
    app = [c for c in status["containers"] if c["pod"].startswith(demo.name) and c["container"] == "demo"
           and c["state"] == "running"]
    assert len(app) == 1 and app[0]["rss_bytes"] > 0, status["containers"]
    mib = 1024 * 1024
    print("\nRSS (MiB): " + ", ".join(f"{p['name']} {p['rss_bytes'] / mib:.0f}" for p in status["processes"])
          + "; containers: " + ", ".join(f"{c['pod']}/{c['container']} {c['rss_bytes'] / mib:.1f}"
                                         for c in status["containers"] if c["state"] == "running")
          + f"; total {status['total_rss_bytes'] / mib:.0f}")


def test_another_process_can_stop_it_and_nothing_is_left(cluster, demo):
    own = {c["id"] for c in cluster.containers()}
    assert own, "the cluster should have pod containers before stop"
    # Another process (e.g. `runbook lab down`) knows the cluster from its run dir only.
    elsewhere = k8s.Cluster.load(cluster.run_dir)
    stopped = time.monotonic()
    done = elsewhere.stop()
    took = time.monotonic() - stopped
    cluster.stop()  # the fixture's own object: reaps its children, finds nothing more to do
    assert any("kubelet" in item for item in done), done

    assert processes_mentioning(str(cluster.run_dir)) == []
    remaining = kubernetes_container_ids()
    assert not remaining & own, "this cluster's containers are still there"
    assert remaining <= cluster.before["containers"], "a new io.kubernetes container was left behind"
    assert k8s.mounts_under(cluster.run_dir) == []
    assert k8s.read_sysctls() == cluster.before["sysctls"]
    for directory, existed in cluster.before["var_log"].items():
        assert Path(directory).exists() == existed or any(Path(directory).iterdir()), directory
    assert not cluster.running() and not cluster.status()["running"]
    print(f"\nstop took {took:.1f} s: {done}")
