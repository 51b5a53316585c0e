"""Scenarios on a Kubernetes Deployment, on the real lab cluster (etcd, control plane and a
dockershim kubelet on 127.0.0.1; v1.20.2, built by scripts/kubernetes-build): the demo's pod
is put into CrashLoopBackOff by a crash-loop persisted in its own emptyDir, so the kubelet's
restarts never heal it -> `runbook run service-down` finds the pod not ready, deletes it
within the restart budget (its ReplicaSet starts a fresh pod at once), verifies /health; a
second run exits 4. Check mode and diagnose change nothing (same pod, same resourceVersion);
an unknown Deployment is bad input, an unreachable API server unavailable; a scenario that
does not support Kubernetes refuses the service. env-toggle patches the pod template's
environment (a rollout), reads it back from a Ready pod, and reverts it. scale-out scales a
Deployment whose pods each take a free host port within its ceiling (above it: exit 2,
nothing changed), and refuses one that an HPA scales. oom-killed raises an OOMKilled
container's memory limit by a rollout. isolate-pods writes the evidence archive (no
environment value in it), then a default-deny NetworkPolicy, and reverts it (the lab has no
network plugin: the object is checked, not the traffic)."""

from __future__ import annotations

import datetime
import tarfile
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from runbook_remediation.lab import kubernetes as k8s
from runbook_remediation.lab import monitoring
from tests.conftest import http_status, run_json, runbook, wait_for
from tests.kubernetes import started_cluster

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with started_cluster(tmp_path_factory) as the_cluster:
        yield the_cluster


@pytest.fixture
def app(cluster):
    # A name of its own per test: the restart budget on this machine counts per Deployment.
    name = f"sd-{uuid.uuid4().hex[:8]}"
    demo = k8s.apply_demo(cluster, name=name, env={"DEMO_FAULTS_FILE": "/var/lib/runbook-demo/faults"})
    yield demo
    cluster.kubectl("delete", "deployment", name, "--wait=false", check=False)


def k8s_host(cluster, demo, **service) -> dict:
    """An inventory host (the controller, local) whose service ``demo`` is ``demo``'s Deployment."""
    return {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "runbook_services": [{"name": "demo", "manager": "kubernetes", "deployment": demo.name,
                                  "namespace": demo.namespace, "kubeconfig": str(cluster.kubeconfig),
                                  "kubectl": str(k8s.bin_dir() / "kubectl"), "health_url": demo.health_url,
                                  **service}]}


def inventory(tmp_path: Path, cluster, demo, **service) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"k8s-host": k8s_host(cluster, demo, **service)}}}),
                    encoding="utf-8")
    return path


def pods(cluster, demo) -> list[str]:
    items = cluster.kubectl_json("get", "pods", "-l", f"app={demo.name}")["items"]
    return sorted(p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp"))


def crash_looping(cluster, demo) -> bool:
    items = cluster.kubectl_json("get", "pods", "-l", f"app={demo.name}")["items"]
    waiting = [((c.get("state") or {}).get("waiting") or {}).get("reason")
               for p in items for c in p["status"].get("containerStatuses") or []]
    return "CrashLoopBackOff" in waiting


def break_it(cluster, demo) -> None:
    """A crash-loop the pod keeps across the kubelet's restarts (its emptyDir)."""
    request = urllib.request.Request(f"http://127.0.0.1:{demo.port}/faults/crash-loop", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()
    wait_for(lambda: crash_looping(cluster, demo), timeout=90, what="CrashLoopBackOff")


def run(inv: Path, scenario: str = "service-down", *args: str, extra: dict | None = None) -> tuple[int, dict]:
    code, payload = run_json("run", scenario, "-i", str(inv), "-l", "k8s-host", "--service", "demo", *args,
                             extra=extra)
    return code, payload["hosts"].get("k8s-host", payload)


def test_a_crash_looping_pod_is_replaced_and_the_service_answers(cluster, app, tmp_path):
    inv = inventory(tmp_path, cluster, app)
    break_it(cluster, app)
    before = pods(cluster, app)
    version = cluster.kubectl_json("get", "deployment", app.name)["metadata"]["resourceVersion"]

    code, result = run(inv, "service-down", "--check")
    assert (code, result["outcome"]) == (0, "planned"), result
    assert pods(cluster, app) == before
    assert cluster.kubectl_json("get", "deployment", app.name)["metadata"]["resourceVersion"] == version

    code, payload = run_json("diagnose", "service-down", "-i", str(inv), "-l", "k8s-host", "--service", "demo")
    assert code == 0, payload
    assert pods(cluster, app) == before
    assert cluster.kubectl_json("get", "deployment", app.name)["metadata"]["resourceVersion"] == version

    code, result = run(inv)
    assert (code, result["outcome"]) == (0, "remediated"), result
    # In back-off the pod's container waits (CrashLoopBackOff); caught between two back-offs it
    # runs for a moment and is only not ready: either is the failing pod the run must find.
    assert any("CrashLoopBackOff" in finding or f"pod {before[0]} not ready (" in finding
               for finding in result["findings"]), result["findings"]
    assert result["evidence"]["deployment"] == app.name and result["evidence"]["log_tail"], result["evidence"]
    assert http_status(app.health_url) == 200
    assert pods(cluster, app) != before  # a new pod, not the old one restarted

    code, result = run(inv)
    assert (code, result["outcome"]) == (4, "healthy"), (result.get("findings"), result.get("actions"))


def test_a_limit_to_one_region_acts_on_that_region_only(cluster, app, tmp_path):
    """Seed 002's regions as inventory hosts, one Deployment each, both crash-looping:
    `-l region-eu` heals the EU one and leaves the US one as it was."""
    us = k8s.apply_demo(cluster, name=f"us-{uuid.uuid4().hex[:8]}",
                        env={"DEMO_FAULTS_FILE": "/var/lib/runbook-demo/faults"})
    try:
        inv = tmp_path / "regions.yml"
        inv.write_text(yaml.safe_dump({"all": {"hosts": {"region-eu": k8s_host(cluster, app),
                                                         "region-us": k8s_host(cluster, us)}}}), encoding="utf-8")
        break_it(cluster, app)
        break_it(cluster, us)
        us_pods = pods(cluster, us)

        code, payload = run_json("run", "service-down", "-i", str(inv), "-l", "region-eu", "--service", "demo")
        assert code == 0, payload
        assert set(payload["hosts"]) == {"region-eu"}, payload
        assert payload["hosts"]["region-eu"]["outcome"] == "remediated", payload
        assert http_status(app.health_url) == 200
        assert pods(cluster, us) == us_pods  # not touched: the same pod, still failing
        assert http_status(us.health_url) != 200
    finally:
        cluster.kubectl("delete", "deployment", us.name, "--wait=false", check=False)


def test_the_evidence_bundle_of_a_deployment_changes_nothing(cluster, app, tmp_path):
    """security-evidence on a Deployment: its pods, events and logs archived on the controller;
    the Deployment and its pods as they were."""
    inv = inventory(tmp_path, cluster, app)
    before = pods(cluster, app)
    version = cluster.kubectl_json("get", "deployment", app.name)["metadata"]["resourceVersion"]
    code, result = run(inv, "security-evidence")
    assert (code, result["outcome"]) == (0, "remediated"), result
    archive = Path(result["evidence"]["archive"])
    assert archive.is_file() and result["verification"]["members"] > 0, result["verification"]
    answered = {item["name"] for item in result["evidence"]["items"] if item["rc"] == 0}
    failed = {item["name"] for item in result["evidence"]["items"] if item["rc"] != 0}
    # A pod that never restarted has no previous logs, and the lab runs no metrics server (top).
    assert failed <= {"previous_logs", "top"}, result["findings"]
    assert len(answered) >= 3, answered
    assert pods(cluster, app) == before
    assert cluster.kubectl_json("get", "deployment", app.name)["metadata"]["resourceVersion"] == version


@pytest.mark.parametrize(("service", "code", "words"), [
    ({"deployment": "no-such-deployment"}, 2, "not found"),
    ({"namespace": "no-such-namespace"}, 2, "not found"),
    ({"context": "mars"}, 2, "mars"),
])
def test_bad_descriptions_are_bad_input(cluster, app, tmp_path, service, code, words):
    inv = inventory(tmp_path, cluster, app, health_url="http://127.0.0.1:9/health", **service)
    got, result = run(inv)
    assert got == code, result
    assert words in result["message"] and "\n" not in result["message"], result


def test_an_unreachable_api_server_is_unavailable_and_nothing_is_touched(cluster, app, tmp_path):
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens there
    dead = tmp_path / "kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    before = pods(cluster, app)
    inv = inventory(tmp_path, cluster, app, kubeconfig=str(dead), health_url="http://127.0.0.1:9/health")
    code, result = run(inv)
    assert code == 5, result
    assert pods(cluster, app) == before


def test_a_scenario_without_kubernetes_refuses_the_deployment(cluster, app, tmp_path):
    inv = inventory(tmp_path, cluster, app)
    code, result = run(inv, "disk-full")
    assert code == 2, result
    assert "disk-full does not act on 'kubernetes' services" in result["message"], result


def test_env_toggle_patches_the_deployment_and_reverts_it(cluster, app, tmp_path):
    """Seed 002's `kubectl patch deployment ... env GPU_MEMORY_FRACTION`: the environment of the
    Deployment's pod template, rolled out, read back from a Ready pod; the previous value (none)
    kept for the revert."""
    inv = inventory(tmp_path, cluster, app, settings=["DEMO_WORK_ITERATIONS"])

    def pod_env() -> dict:
        items = cluster.kubectl_json("get", "pods", "-l", f"app={app.name}")["items"]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return {e["name"]: e.get("value") for p in live for e in p["spec"]["containers"][0].get("env", [])}

    assert "DEMO_WORK_ITERATIONS" not in pod_env()
    request = ["-e", '{"env_toggle_set": {"DEMO_WORK_ITERATIONS": "7"}}']
    code, result = run(inv, "env-toggle", "--check", *request)
    assert (code, result["outcome"]) == (0, "planned"), result
    assert "DEMO_WORK_ITERATIONS" not in pod_env()

    code, result = run(inv, "env-toggle", *request)
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert pod_env().get("DEMO_WORK_ITERATIONS") == "7"
    assert result["verification"]["in_force"] is True and result["verification"]["where"].startswith("pod "), result

    code, result = run(inv, "env-toggle", *request)
    assert (code, result["outcome"]) == (4, "healthy"), result

    code, result = run(inv, "env-toggle", "-e", "env_toggle_revert=true")
    assert (code, result["outcome"]) == (0, "remediated"), result
    wait_for(lambda: "DEMO_WORK_ITERATIONS" not in pod_env(), timeout=60, what="the reverted pod")
    assert http_status(app.health_url) == 200


@pytest.fixture
def replicas(cluster):
    """The demo as replicas: each pod takes the first free of four host ports."""
    name = f"sc-{uuid.uuid4().hex[:8]}"
    ports = k8s.free_ports(4)
    # DEMO_NAME "demo": each replica's /health names the service the inventory describes.
    demo = k8s.apply_demo(cluster, name=name, port_candidates=ports, env={"DEMO_NAME": "demo"})
    yield demo, ports
    cluster.kubectl("delete", "deployment", name, "--wait=false", check=False)
    cluster.kubectl("delete", "hpa", name, "--wait=false", check=False)


def scale_of(cluster, demo) -> tuple[int, int, str]:
    deployment = cluster.kubectl_json("get", "deployment", demo.name)
    return (deployment["spec"]["replicas"], deployment["status"].get("readyReplicas", 0),
            deployment["metadata"]["resourceVersion"])


def test_scale_out_within_the_ceiling_and_never_against_an_autoscaler(cluster, replicas, tmp_path):
    demo, ports = replicas
    inv = inventory(tmp_path, cluster, demo, replicas={"ceiling": 3, "ports": ports})
    before = scale_of(cluster, demo)
    assert before[:2] == (1, 1)

    code, result = run(inv, "scale-out", "--check", extra={"replica_scale_to": 3})
    assert (code, result["outcome"]) == (0, "planned"), result
    code, result = run(inv, "scale-out", extra={"replica_scale_to": 4})
    assert code == 2 and "above the ceiling of 3" in result["message"], result
    assert scale_of(cluster, demo) == before  # neither run touched the Deployment

    code, result = run(inv, "scale-out", extra={"replica_scale_to": 3})
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert result["replicas"]["from"] == 1 and result["replicas"]["to"] == 3, result["replicas"]
    assert len(set(result["replicas"]["ports"])) == 3 and set(result["replicas"]["ports"]) <= set(ports), result
    assert scale_of(cluster, demo)[:2] == (3, 3)
    assert [http_status(f"http://127.0.0.1:{port}/health") for port in result["replicas"]["ports"]] == [200] * 3

    code, result = run(inv, "scale-out", extra={"replica_scale_to": 3})
    assert (code, result["outcome"]) == (4, "healthy"), result

    # An autoscaler owns the count: a hand-made scale would fight it.
    cluster.kubectl("autoscale", "deployment", demo.name, "--min=1", "--max=5", "--cpu-percent=80")
    version = scale_of(cluster, demo)
    code, result = run(inv, "scale-out")
    assert code == 2 and "HorizontalPodAutoscaler" in result["message"] and demo.name in result["message"], result
    assert scale_of(cluster, demo)[0] == version[0]


def oom_killed(cluster, demo) -> bool:
    items = cluster.kubectl_json("get", "pods", "-l", f"app={demo.name}")["items"]
    return any(((c.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled"
               for p in items for c in p["status"].get("containerStatuses") or [])


def memory_limit(cluster, demo) -> str:
    deployment = cluster.kubectl_json("get", "deployment", demo.name)
    return deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]


def test_an_oom_killed_container_gets_a_higher_limit_by_a_rollout(cluster, app, tmp_path):
    inv = inventory(tmp_path, cluster, app, memory={"ceiling": "512M"})
    request = urllib.request.Request(f"http://127.0.0.1:{app.port}/faults/memory-leak", method="POST",
                                     data=b'{"mb_per_second": 200}', headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()
    wait_for(lambda: oom_killed(cluster, app), timeout=90, what="a container OOMKilled by its 128Mi limit")
    wait_for(lambda: http_status(app.health_url) == 200, timeout=60, what="the kubelet's restart")
    # The kubelet's restarts update the Deployment's status (its resourceVersion): the spec's
    # generation says whether anything changed it.
    generation = cluster.kubectl_json("get", "deployment", app.name)["metadata"]["generation"]

    code, result = run(inv, "oom-killed", "--check")
    assert (code, result["outcome"]) == (0, "planned"), result
    assert cluster.kubectl_json("get", "deployment", app.name)["metadata"]["generation"] == generation
    assert memory_limit(cluster, app) == "128Mi"

    code, result = run(inv, "oom-killed")
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert any("OOMKilled" in finding for finding in result["findings"]), result["findings"]
    assert "from 128 MiB to 256 MiB" in result["message"], result["message"]
    assert memory_limit(cluster, app) == "256Mi"
    assert result["verification"]["limit_applied"] and result["verification"]["rolled_out"], result["verification"]
    assert http_status(app.health_url) == 200

    code, result = run(inv, "oom-killed")
    assert (code, result["outcome"]) == (4, "healthy"), result
    assert memory_limit(cluster, app) == "256Mi"


def policy(cluster, demo):
    found = cluster.kubectl_json("get", "networkpolicies")["items"]
    return [p for p in found if p["metadata"]["name"] == f"runbook-isolate-{demo.name}"]


def test_isolate_pods_takes_the_evidence_then_applies_a_default_deny_policy(cluster, app, tmp_path, monkeypatch):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    cluster.kubectl("set", "env", f"deployment/{app.name}", f"DEMO_API_TOKEN={secret}")
    cluster.kubectl("rollout", "status", f"deployment/{app.name}", "--timeout=90s", timeout=100)
    evidence = tmp_path / "evidence"
    inv = inventory(tmp_path, cluster, app)

    refused = runbook("run", "isolate-pods", "-i", str(inv), "-l", "k8s-host", "--service", "demo")
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr
    code, result = run(inv, "isolate-pods", "--check")
    assert (code, result["outcome"]) == (0, "planned"), result
    assert policy(cluster, app) == []

    code, result = run(inv, "isolate-pods", "--yes", extra={"pod_isolate_evidence_dest": str(evidence)})
    assert (code, result["outcome"]) == (0, "remediated"), result
    archive = Path(result["evidence"]["archive"])
    assert archive.parent == evidence and archive.is_file() and result["evidence"]["sha256"]
    with tarfile.open(archive) as tar:
        names = {Path(m.name).name for m in tar.getmembers()}
        content = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert {"deployment.txt", "replicasets.txt", "pods.txt", "events.txt", "service_journal.txt"} <= names, names
    assert secret.encode() not in content and b"DEMO_API_TOKEN" in content
    [made] = policy(cluster, app)
    assert made["spec"]["podSelector"]["matchLabels"] == {"app": app.name}
    assert sorted(made["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert not made["spec"].get("ingress") and not made["spec"].get("egress")
    # The archive was written before the policy existed.
    created = made["metadata"]["creationTimestamp"]
    assert archive.stat().st_mtime <= datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() + 1

    code, result = run(inv, "isolate-pods", "--yes", extra={"pod_isolate_evidence_dest": str(evidence)})
    assert (code, result["outcome"]) == (4, "healthy"), result

    code, result = run(inv, "isolate-pods", "--yes", "--revert")
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert policy(cluster, app) == []
    code, result = run(inv, "isolate-pods", "--yes", extra={"pod_isolate_action": "revert"})
    assert (code, result["outcome"]) == (4, "healthy"), result


@pytest.fixture
def prometheus(app, tmp_path):
    """A real Prometheus scraping the demo pod (host network: 127.0.0.1:PORT) under the
    labels the error-rate queries select (host, service)."""
    port, unused_alertmanager = k8s.free_ports(2)
    rules = tmp_path / "prometheus" / "rules.yml"
    rules.parent.mkdir()
    rules.write_text("groups: []\n", encoding="utf-8")
    server = monitoring.Server("prometheus", tmp_path / "prometheus", port)
    server.write_config(monitoring.prometheus_config(
        [monitoring.ScrapeTarget(host="k8s-host", service="demo", manager="kubernetes", port=app.port)],
        unused_alertmanager, rules))
    server.start()
    yield server
    monitoring.stop_process(server.pid, str(server.config_path))


def error_ratio(server) -> float | None:
    query = ('sum(rate(http_requests_total{host="k8s-host",service="demo",status=~"5.."}[15s]))'
             ' / sum(rate(http_requests_total{host="k8s-host",service="demo"}[15s]))')
    answer = monitoring.http_json(f"{server.url}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    samples = answer["data"]["result"]
    return float(samples[0]["value"][1]) if samples else None


def revision(cluster, demo) -> str:
    deployment = cluster.kubectl_json("get", "deployment", demo.name)
    return deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"]


def test_a_bad_rollout_is_rolled_back_to_the_previous_revision(cluster, app, prometheus, tmp_path):
    inv = inventory(tmp_path, cluster, app)
    path = Path(inv)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["all"]["hosts"]["k8s-host"]["runbook_prometheus_url"] = prometheus.url
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    wait_for(lambda: error_ratio(prometheus) is not None, timeout=60, what="the demo's requests in Prometheus")

    # The bad release: an environment change that is a new revision, and errors after it. It
    # passes its readiness probe (the demo reports 503 only above half its requests failing),
    # as the releases a rollback is for do: one that never got Ready the rollout itself stops.
    cluster.kubectl("set", "env", f"deployment/{app.name}", "DEMO_RELEASE=v2", "DEMO_RELEASE_ERROR_RATE=0.3")
    cluster.kubectl("rollout", "status", f"deployment/{app.name}", "--timeout=90s", timeout=100)
    assert revision(cluster, app) == "2"
    wait_for(lambda: (error_ratio(prometheus) or 0) > 0.15, timeout=60, what="the error ratio above 0.15")
    generation = cluster.kubectl_json("get", "deployment", app.name)["metadata"]["generation"]

    code, result = run(inv, "error-rate", "--check")
    assert (code, result["outcome"]) == (0, "planned"), (result["message"], result.get("findings"))
    assert "from revision-2 to revision-1" in result["message"], result["message"]
    assert cluster.kubectl_json("get", "deployment", app.name)["metadata"]["generation"] == generation

    code, result = run(inv, "error-rate", "--yes")
    assert (code, result["outcome"]) == (0, "remediated"), (result["message"], result.get("findings"), result)
    assert result["verification"]["ratio_below"] and result["verification"]["healthy"], result["verification"]
    # The pod template of revision 1 again, as the newest revision (3).
    deployment = cluster.kubectl_json("get", "deployment", app.name)
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "DEMO_RELEASE_ERROR_RATE" not in env and revision(cluster, app) == "3"
    assert (error_ratio(prometheus) or 0) <= 0.05

    code, result = run(inv, "error-rate", "--yes")
    assert (code, result["outcome"]) == (4, "healthy"), result


def pod_env(cluster, demo, name: str) -> list[str]:
    """``name`` in the environment of each running pod of ``demo`` (what it started with)."""
    values = []
    for pod in pods(cluster, demo):
        found = cluster.kubectl("exec", pod, "--", "printenv", name, check=False)
        values.append(found.stdout.strip() if found.returncode == 0 else "(unset)")
    return values


def test_maintenance_mode_sets_the_flag_and_restarts_every_pod_then_turns_it_off(cluster, app, tmp_path):
    configmap = f"app-config-{app.name}"
    cluster.kubectl("create", "configmap", configmap, "--from-literal=maintenance_mode=false",
                    "--from-literal=region=americas")
    # The pods read the flag from the ConfigMap when they start (seed 002's app-config).
    cluster.kubectl("set", "env", f"deployment/{app.name}", f"--from=configmap/{configmap}", "--keys=maintenance_mode")
    cluster.kubectl("rollout", "status", f"deployment/{app.name}", "--timeout=90s", timeout=100)
    inv = inventory(tmp_path, cluster, app, maintenance={"configmap": configmap})
    assert pod_env(cluster, app, "MAINTENANCE_MODE") == ["false"]
    before = pods(cluster, app)

    def flag() -> dict:
        return cluster.kubectl_json("get", "configmap", configmap)["data"]

    refused = runbook("run", "maintenance-mode", "-i", str(inv), "-l", "k8s-host", "--service", "demo")
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr
    code, result = run(inv, "maintenance-mode", "--check")
    assert (code, result["outcome"]) == (0, "planned"), result
    assert flag()["maintenance_mode"] == "false" and pods(cluster, app) == before

    code, result = run(inv, "maintenance-mode", "--yes")
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert flag() == {"maintenance_mode": "true", "region": "americas"}  # only the flag changed
    assert result["verification"] == {"rolled_out": True, "healthy": True}, result
    assert pods(cluster, app) != before
    assert pod_env(cluster, app, "MAINTENANCE_MODE") == ["true"]  # every pod started with it
    assert http_status(app.health_url) == 200

    during = pods(cluster, app)
    code, result = run(inv, "maintenance-mode", "--yes")
    assert (code, result["outcome"]) == (4, "healthy"), result
    assert pods(cluster, app) == during  # nothing to do: no restart

    code, result = run(inv, "maintenance-mode", "--yes", "--revert")  # maintenance_mode_action=disable
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert flag()["maintenance_mode"] == "false"
    assert pod_env(cluster, app, "MAINTENANCE_MODE") == ["false"]

    # A ConfigMap that is not there: bad input, nothing touched.
    missing = inventory(tmp_path, cluster, app, maintenance={"configmap": "no-such-config"})
    version = cluster.kubectl_json("get", "deployment", app.name)["metadata"]["resourceVersion"]
    code, result = run(missing, "maintenance-mode", "--yes")
    assert code == 2 and "ConfigMap no-such-config not found" in result["message"], result
    assert cluster.kubectl_json("get", "deployment", app.name)["metadata"]["resourceVersion"] == version


def test_traffic_drain_records_the_weight_and_revert_restores_it(cluster, app, tmp_path, monkeypatch):
    service = f"lb-{app.name}"
    annotation = "traffic.mpc-transformer.com/weight"
    cluster.kubectl("create", "service", "clusterip", service, "--tcp=80:8080")
    cluster.kubectl("annotate", "service", service, f"{annotation}=100", "team=mpc")
    inv = inventory(tmp_path, cluster, app, traffic={"service": service})

    def annotations() -> dict:
        return cluster.kubectl_json("get", "service", service)["metadata"]["annotations"]

    refused = runbook("run", "traffic-drain", "-i", str(inv), "-l", "k8s-host", "--service", "demo")
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr
    code, result = run(inv, "traffic-drain", "--check")
    assert (code, result["outcome"]) == (0, "planned"), result
    assert annotations() == {annotation: "100", "team": "mpc"}

    code, result = run(inv, "traffic-drain", "--yes")
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert annotations() == {annotation: "0", "runbook.remediation/weight-before": "100", "team": "mpc"}
    code, result = run(inv, "traffic-drain", "--yes")
    assert (code, result["outcome"]) == (4, "healthy"), result
    # A second change keeps the weight from before the first.
    code, result = run(inv, "traffic-drain", "--yes", extra={"traffic_weight_to": "50"})
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert annotations()["runbook.remediation/weight-before"] == "100"

    code, result = run(inv, "traffic-drain", "--yes", "--revert")
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert annotations() == {annotation: "100", "team": "mpc"}
    code, result = run(inv, "traffic-drain", "--yes", extra={"traffic_weight_action": "revert"})
    assert (code, result["outcome"]) == (4, "healthy"), result

    # A Service that had no weight: drained, then the annotation removed again. A fresh safety
    # envelope: after three changes within the hour the envelope holds (remediations that do not hold).
    monkeypatch.setenv("RUNBOOK_ENVELOPE_DB", str(tmp_path / "second-envelope.db"))
    cluster.kubectl("annotate", "service", service, f"{annotation}-")
    code, result = run(inv, "traffic-drain", "--yes")
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert annotations()["runbook.remediation/weight-before"] == ""
    code, result = run(inv, "traffic-drain", "--yes", extra={"traffic_weight_action": "revert"})
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert annotations() == {"team": "mpc"}

    # A weight that is a template, or out of range: bad input, nothing changed.
    for bad in ("{{ 7 * 7 }}", "5000"):
        code, result = run(inv, "traffic-drain", "--yes", extra={"traffic_weight_to": bad})
        assert code == 2, result
    assert annotations() == {"team": "mpc"}
    cluster.kubectl("delete", "service", service, check=False)
