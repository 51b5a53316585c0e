from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils._prometheus import labels_fingerprint
from ansible_collections.runbook.remediation.plugins.modules import prometheus_alerts


def am_alert(name, state="active", fingerprint=None, **labels):
    labels = {"alertname": name, **labels}
    return {
        "labels": labels,
        "annotations": {"summary": f"{name} fired"},
        "startsAt": "2026-11-24T19:20:01.000Z",
        "endsAt": "2026-11-24T19:25:01.000Z",
        "updatedAt": "2026-11-24T19:20:01.000Z",
        "fingerprint": fingerprint or labels_fingerprint(labels),
        "generatorURL": "http://prometheus/graph?g0.expr=vector%281%29",
        "receivers": [{"name": "default"}],
        "status": {"state": state, "silencedBy": [], "inhibitedBy": []},
    }


AM_ALERTS = [
    am_alert("ServiceDown", service="api", severity="critical"),
    am_alert("ServiceDown", service="web", severity="warning"),
    am_alert("HighMemory", service="api", severity="warning"),
    am_alert("Silenced", state="suppressed", service="api"),
]

PROM_ALERTS = {
    "status": "success",
    "data": {"alerts": [
        {"labels": {"alertname": "Always", "severity": "warning", "service": "demo"}, "annotations": {},
         "state": "firing", "activeAt": "2026-11-24T19:20:01Z", "value": "1e+00"},
        {"labels": {"alertname": "Soon", "severity": "critical"}, "annotations": {"summary": "s"},
         "state": "pending", "activeAt": "2026-11-24T19:21:01Z", "value": "2e+00"},
    ]},
}


@pytest.fixture
def server(http_server):
    http_server.routes[("GET", "/api/v2/alerts")] = http_server.Reply(200, AM_ALERTS)
    http_server.routes[("GET", "/api/v1/alerts")] = http_server.Reply(200, PROM_ALERTS)
    return http_server


@pytest.fixture
def run(run_module, server):
    def _run(**args):
        args.setdefault("url", server.url)
        return run_module(prometheus_alerts.main, args)

    return _run


def test_alertmanager_all_active(run, server):
    result = run()
    assert not result.failed, result.msg
    assert result["changed"] is False
    assert result["count"] == 3
    assert [a["name"] for a in result["alerts"]] == ["HighMemory", "ServiceDown", "ServiceDown"]
    query = server.requests[-1].query
    assert query == {"active": ["true"], "silenced": ["false"], "inhibited": ["false"], "unprocessed": ["false"]}


def test_alertmanager_normalized_shape(run):
    alert = run(alertname="HighMemory")["alerts"][0]
    assert alert == {
        "name": "HighMemory",
        "labels": {"alertname": "HighMemory", "service": "api", "severity": "warning"},
        "annotations": {"summary": "HighMemory fired"},
        "state": "active",
        "starts_at": "2026-11-24T19:20:01.000Z",
        "ends_at": "2026-11-24T19:25:01.000Z",
        "fingerprint": labels_fingerprint({"alertname": "HighMemory", "service": "api", "severity": "warning"}),
        "severity": "warning",
        "generator_url": "http://prometheus/graph?g0.expr=vector%281%29",
        "silenced_by": [],
        "inhibited_by": [],
        "value": None,
    }


def test_exact_labels_and_one_alertname_go_to_alertmanager(run, server):
    result = run(labels={"service": "api", "severity": "critical"}, alertname="ServiceDown")
    assert server.requests[-1].query["filter"] == ['service="api"', 'severity="critical"', 'alertname="ServiceDown"']
    # the fake server ignores filters: the module filters again on its side
    assert [(a["name"], a["labels"]["service"]) for a in result["alerts"]] == [("ServiceDown", "api")]


def test_regex_labels_and_several_alertnames_are_filtered_client_side(run, server):
    result = run(labels={"severity": "~warn.*"}, alertname=["ServiceDown", "HighMemory"])
    assert "filter" not in server.requests[-1].query
    found = [(a["name"], a["labels"]["service"]) for a in result["alerts"]]
    assert found == [("HighMemory", "api"), ("ServiceDown", "web")]


def test_regex_is_anchored(run):
    assert run(labels={"severity": "~warn"})["count"] == 0


@pytest.mark.parametrize(
    ("state", "flags", "names"),
    [
        ("suppressed", ["false", "true", "true", "false"], ["Silenced"]),
        ("unprocessed", ["false", "false", "false", "true"], []),
        ("all", ["true", "true", "true", "true"], ["HighMemory", "ServiceDown", "ServiceDown", "Silenced"]),
    ],
)
def test_alertmanager_states(run, server, state, flags, names):
    result = run(state=state)
    query = server.requests[-1].query
    assert [query[k][0] for k in ("active", "silenced", "inhibited", "unprocessed")] == flags
    assert [a["name"] for a in result["alerts"]] == names


def test_active_only_narrows_all(run):
    assert run(state="all", active_only=True)["count"] == 3


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"state": "firing"}, "state=firing applies to source=prometheus"),
        ({"source": "prometheus", "state": "suppressed"}, "state=suppressed applies to source=alertmanager"),
        ({"state": "suppressed", "active_only": True},
         "active_only=true keeps only active alerts, which state=suppressed"),
        ({"source": "prometheus", "state": "pending", "active_only": True}, "which state=pending excludes"),
        ({"labels": {"x": "~("}}, "prometheus_alerts: label x: '(' is not a valid regular expression"),
        ({"state": "resolved"}, "value of state must be one of"),
        ({"url": "alertmanager:9093"}, "url 'alertmanager:9093' is not an http(s) URL"),
    ],
)
def test_argument_validation(run, server, args, fragment):
    result = run(**args)
    assert result.failed
    assert fragment in result.msg
    assert server.requests == []


def test_prometheus_source(run, server):
    result = run(source="prometheus")
    assert server.requests[-1].path == "/api/v1/alerts"
    assert [a["name"] for a in result["alerts"]] == ["Always"]
    alert = result["alerts"][0]
    assert alert["state"] == "firing"
    assert alert["severity"] == "warning"
    assert alert["starts_at"] == "2026-11-24T19:20:01Z"
    assert alert["fingerprint"] == labels_fingerprint(alert["labels"])
    assert alert["value"] == "1e+00"


@pytest.mark.parametrize(
    ("state", "names"), [("firing", ["Always"]), ("pending", ["Soon"]), ("all", ["Always", "Soon"])]
)
def test_prometheus_states(run, state, names):
    assert [a["name"] for a in run(source="prometheus", state=state)["alerts"]] == names


def test_prometheus_labels(run):
    result = run(source="prometheus", state="all", labels={"service": "demo"})
    assert [a["name"] for a in result["alerts"]] == ["Always"]
    assert run(source="prometheus", state="all", labels={"service": ""})["alerts"][0]["name"] == "Soon"


def test_unreachable(run_module, closed_port_url):
    result = run_module(prometheus_alerts.main, {"url": closed_port_url})
    assert result.failed
    assert result.msg == f"Alertmanager at {closed_port_url} is unreachable: connection refused"


def test_wrong_base_url(run, server):
    result = run(url=server.url + "/nothing")
    assert result.failed
    assert "HTTP 404 Not Found" in result.msg
    assert "base URL" in result.msg


def test_check_mode(run, server):
    result = run(_ansible_check_mode=True)
    assert not result.failed
    assert len(server.requests) == 1
