"""The Kubernetes filters: quantities as Kubernetes reads them, OOM kills, revisions, selectors."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.runbook.remediation.plugins.filter.kubernetes import (
    kubernetes_bytes,
    kubernetes_oom_kills,
    kubernetes_revisions,
    kubernetes_selector,
)


@pytest.mark.parametrize(("quantity", "expected"), [
    ("128Mi", 128 * 1024**2), ("1Gi", 1024**3), ("16318164Ki", 16318164 * 1024), ("500M", 500 * 10**6),
    ("1G", 10**9), ("1e9", 10**9), ("1E3", 1000), ("1.5Gi", 1536 * 1024**2), ("500m", 1), ("0", 0),
    (134217728, 134217728), ("  64Mi ", 64 * 1024**2),
])
def test_quantities(quantity, expected):
    assert kubernetes_bytes(quantity) == expected


@pytest.mark.parametrize("quantity", ["", "Mi", "128MB", "12 Mi", "-1Gi", "1.2.3", "{{ x }}", "1e", "0x10"])
def test_what_is_not_a_quantity_is_refused(quantity):
    with pytest.raises(AnsibleFilterError, match="kubernetes_bytes"):
        kubernetes_bytes(quantity)


def status(name, state=None, last=None, restarts=0):
    return {"name": name, "restartCount": restarts, "state": state or {"running": {}},
            "lastState": last or {}}


def test_oom_kills_of_the_container_since_a_time():
    oom = {"terminated": {"reason": "OOMKilled", "finishedAt": "2026-12-05T10:00:00Z"}}
    old = {"terminated": {"reason": "OOMKilled", "finishedAt": "2026-12-05T08:00:00Z"}}
    pods = [
        {"metadata": {"name": "api-1"}, "status": {"containerStatuses": [status("api", last=oom, restarts=2),
                                                                         status("sidecar", last=oom)]}},
        {"metadata": {"name": "api-2"}, "status": {"containerStatuses": [status("api", last=old)]}},
        {"metadata": {"name": "api-3"}, "status": {"containerStatuses": [
            status("api", state=oom, last={"terminated": {"reason": "Error", "finishedAt": "2026-12-05T10:00:00Z"}})]}},
        {"metadata": {"name": "api-4"}, "status": {}},  # Pending: no statuses yet
    ]
    since = 1796464800.0 - 3600  # 2026-12-05T09:00:00Z
    kills = kubernetes_oom_kills(pods, "api", since)
    assert [(k["pod"], k["restarts"]) for k in kills] == [("api-1", 2), ("api-3", 0)]
    assert len(kubernetes_oom_kills(pods, "api")) == 3
    assert kubernetes_oom_kills(pods, "worker") == []


def test_oom_kills_wants_a_list():
    with pytest.raises(AnsibleFilterError):
        kubernetes_oom_kills({"items": []}, "api")


def replicaset(name, revision, image, created, owner="api"):
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                         "ownerReferences": [{"kind": "Deployment", "name": owner}]},
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}}


def test_revisions_of_the_deployment_oldest_first():
    history = kubernetes_revisions([
        replicaset("api-b", 3, "api:v2", "2026-12-05T10:00:00Z"),
        replicaset("api-a", 1, "api:v1", "2026-12-05T09:00:00Z"),
        replicaset("other-x", 2, "other:v1", "2026-12-05T09:30:00Z", owner="other"),
    ], "api")
    expected = [("revision-1", "api-a", "api:v1"), ("revision-3", "api-b", "api:v2")]
    assert [(e["release"], e["id"], e["image"]) for e in history] == expected
    assert history[1]["at"] == 1796464800.0


def test_a_selector_becomes_exactly_the_label_selectors_of_its_workload():
    assert kubernetes_selector({"matchLabels": {"app": "web", "app.kubernetes.io/part-of": "shop"}}) == [
        "app=web", "app.kubernetes.io/part-of=shop"]
    assert kubernetes_selector({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["api", "worker"]},
        {"key": "track", "operator": "NotIn", "values": ["canary"]},
        {"key": "gpu", "operator": "Exists"},
        {"key": "example.com/legacy", "operator": "DoesNotExist"}]}) == [
        "app=web", "tier in (api,worker)", "track notin (canary)", "gpu", "!example.com/legacy"]


@pytest.mark.parametrize("selector", [
    {}, {"matchLabels": {}}, "app=web", None,  # empty or not a selector: it would select everything
    {"matchLabels": {"app": "web,evil=1"}},  # a value that would add a selector of its own
    {"matchLabels": {"app web": "x"}},
    {"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]},
    {"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]},
    {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["a"]}]},
    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a) or (b"]}]},
])
def test_a_selector_that_is_empty_or_not_plain_is_refused(selector):
    with pytest.raises(AnsibleFilterError):
        kubernetes_selector(selector)
