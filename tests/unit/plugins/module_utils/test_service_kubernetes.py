"""The Kubernetes branch of _service.Commands: what it reads from kubectl's JSON, what it
deletes or restarts, and how kubectl's failures become error kinds. kubectl is a fake
here (a recorded argv, canned answers); tests/integration/test_kubernetes_scenarios.py
drives a real cluster."""

from __future__ import annotations

import json

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _service

SVC = {"name": "api", "manager": "kubernetes", "deployment": "api", "namespace": "shop", "context": "eu",
       "kubeconfig": "/etc/kube/config", "kubectl": "/opt/bin/kubectl", "health_url": "http://127.0.0.1:9/health"}


def deployment(ready=0, replicas=2):
    return {"metadata": {"generation": 3}, "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "api"}}},
            "status": {"readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": replicas,
                       "conditions": [{"type": "Available", "status": "False",
                                       "reason": "MinimumReplicasUnavailable"}]}}


def pod(name, ready, waiting=None, last=None, restarts=0):
    status = {"ready": ready, "restartCount": restarts, "state": {"waiting": {"reason": waiting}} if waiting else {},
              "lastState": {"terminated": {"reason": last}} if last else {}}
    return {"metadata": {"name": name}, "status": {"phase": "Running", "containerStatuses": [status]}}


class Kubectl:
    def __init__(self, pods, ready=0, fail=None):
        self.calls, self.pods, self.ready, self.fail = [], pods, ready, fail

    def __call__(self, argv):
        self.calls.append(argv)
        if self.fail:
            return 1, "", self.fail
        if "deployment" in argv and "get" in argv:
            return 0, json.dumps(deployment(self.ready)), ""
        if "pods" in argv and "get" in argv:
            return 0, json.dumps({"items": self.pods}), ""
        return 0, "", ""


def test_state_reads_the_deployment_and_its_pods():
    run = Kubectl([pod("api-1", False, "CrashLoopBackOff", "OOMKilled", 4), pod("api-2", True)], ready=1)
    state = _service.Commands(run, SVC).state()
    assert run.calls[0][:8] == ["/opt/bin/kubectl", "--kubeconfig", "/etc/kube/config", "--context", "eu",
                                "--namespace", "shop", "--request-timeout"]
    assert state["ready_replicas"] == 1 and state["replicas"] == 2 and not state["dead"]
    assert state["selector"] == "app=api" and state["oom_killed"] is True
    assert state["pods"][0] == {"name": "api-1", "phase": "Running", "ready": False, "restarts": 4,
                                "waiting": ["CrashLoopBackOff"], "last_terminated": ["OOMKilled"], "deleting": False}
    found = _service.state_findings(SVC, state)
    assert found[0] == "deployment api: 1 of 2 replicas ready"
    assert "pod api-1 not ready (Running, CrashLoopBackOff, OOMKilled, 4 restarts)" in found


def test_restart_deletes_only_the_pods_that_are_not_ready():
    run = Kubectl([pod("api-1", False, "CrashLoopBackOff"), pod("api-2", True)], ready=1)
    _service.Commands(run, SVC).restart(dead=False, stop_timeout=20, stop_wait=0)
    deletes = [argv for argv in run.calls if "delete" in argv]
    assert len(deletes) == 1 and deletes[0][-4:] == ["--wait=false", "--grace-period", "20", "api-1"]
    assert not [argv for argv in run.calls if "rollout" in argv]


def test_a_forced_restart_of_a_ready_deployment_is_a_rolling_restart():
    run = Kubectl([pod("api-1", True), pod("api-2", True)], ready=2)
    _service.Commands(run, SVC).restart(dead=False, stop_timeout=20, stop_wait=0)
    assert run.calls[-1][-3:] == ["rollout", "restart", "deployment/api"]
    assert not [argv for argv in run.calls if "delete" in argv]


def test_a_later_attempt_spares_the_replacement_pod_while_it_starts():
    run = Kubectl([pod("api-1", False, "CrashLoopBackOff", restarts=5)])
    commands = _service.Commands(run, SVC)
    commands.restart(dead=True, stop_timeout=20, stop_wait=0)
    # The ReplicaSet's replacement is still being created when the next attempt comes.
    run.pods = [pod("api-2", False, "ContainerCreating")]
    commands.restart(dead=True, stop_timeout=20, stop_wait=0)
    deletes = [argv[-1] for argv in run.calls if "delete" in argv]
    assert deletes == ["api-1"]
    assert not [argv for argv in run.calls if "rollout" in argv]
    # ... but not once it fails in turn.
    run.pods = [pod("api-2", False, "CrashLoopBackOff", restarts=1)]
    commands.restart(dead=True, stop_timeout=20, stop_wait=0)
    assert [argv[-1] for argv in run.calls if "delete" in argv] == ["api-1", "api-2"]


@pytest.mark.parametrize(("pods", "ready", "settled"), [
    ([pod("api-1", True), pod("api-2", True)], 2, True),
    ([pod("api-1", True), pod("api-2", False, "ContainerCreating")], 1, False),
    # The Deployment's status lags its pods: both must agree.
    ([pod("api-1", True), pod("api-2", True)], 1, False),
])
def test_settled_wants_every_replica_ready(pods, ready, settled):
    assert _service.Commands(Kubectl(pods, ready=ready), SVC).settled() is settled


def test_a_terminating_pod_does_not_count_against_settled():
    terminating = pod("api-0", False)
    terminating["metadata"]["deletionTimestamp"] = "2026-12-05T10:00:00Z"
    assert _service.Commands(Kubectl([terminating, pod("api-1", True), pod("api-2", True)], ready=2), SVC).settled()


@pytest.mark.parametrize(("stderr", "kind"), [
    ('Error from server (NotFound): deployments.apps "api" not found', "input"),
    ("The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?",
     "unavailable"),
    ("Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused", "unavailable"),
    ('error: context "mars" does not exist', "input"),
    ("error: context was not found for specified context: mars", "input"),
    ("error: You must be logged in to the server (Unauthorized)", "remediation"),
])
def test_kubectl_failures_become_error_kinds(stderr, kind):
    with pytest.raises(_service.ServiceError) as caught:
        _service.Commands(Kubectl([], fail=stderr), SVC).state()
    assert caught.value.kind == kind


def test_the_budget_counts_the_deployment_of_its_context_and_namespace(tmp_path):
    assert _service.budget_path(str(tmp_path), SVC).endswith("restarts-api@eu.shop.api.json")
