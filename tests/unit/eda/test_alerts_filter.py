"""The rulebook's alert filter: one checked event per alert, never a template, never a pattern."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PAYLOAD = "{{ lookup('pipe', 'id > /tmp/owned') }}"


@pytest.fixture(scope="module")
def alerts():
    path = REPO / "extensions" / "eda" / "plugins" / "event_filter" / "alerts.py"
    spec = importlib.util.spec_from_file_location("alerts_filter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alert(**labels):
    return {"status": "firing", "fingerprint": "a1b2c3", "startsAt": "2026-12-03T08:00:00Z",
            "labels": {"alertname": "ServiceDown", "host": "lab-1", "service": "demo", **labels},
            "annotations": {"summary": PAYLOAD}, "generatorURL": PAYLOAD}


def webhook(*alerts):
    return {"payload": {"alerts": list(alerts), "commonAnnotations": {"x": PAYLOAD}},
            "meta": {"endpoint": "alerts", "headers": {"X-Evil": PAYLOAD}}}


def test_a_good_alert_is_one_event_limited_to_its_host(alerts):
    [event] = alerts.main(webhook(alert()), hosts="lab-1,lab-2")
    assert event["meta"] == {"hosts": ["lab-1"]}
    assert event["labels"]["service"] == "demo" and "runbook_rejected" not in event
    assert PAYLOAD not in repr(event)  # annotations, URL and headers are gone


def test_one_event_per_alert(alerts):
    events = alerts.main(webhook(alert(), alert(host="lab-2")), hosts=["lab-1", "lab-2"])
    assert [e["meta"]["hosts"] for e in events] == [["lab-1"], ["lab-2"]]


@pytest.mark.parametrize(("labels", "words"), [
    ({"service": PAYLOAD}, "templates are not accepted"),
    ({"host": "all"}, "not one inventory host name"),
    ({"host": "web-*"}, "alert label host must be a plain label value"),
    ({"host": "lab-1,lab-2"}, "alert label host must be a plain label value"),
    ({"host": ""}, "no host label"),
    ({"host": "lab-9"}, "not a host of the inventory"),
    ({"alertname": ""}, "no alertname"),
    ({"host": "localhost"}, "not one inventory host name"),
])
def test_a_bad_alert_is_refused_and_routed_nowhere(alerts, labels, words):
    [event] = alerts.main(webhook(alert(**labels)), hosts="lab-1,lab-2")
    assert words in event["runbook_rejected"]
    assert event["meta"] == {"hosts": ["lab-1"]}  # the notice runs once, on the controller
    assert "{{" not in repr(event) and "lookup" not in repr(event)


def test_without_a_host_list_the_shape_still_decides(alerts, monkeypatch):
    monkeypatch.delenv("RUNBOOK_ALERT_HOSTS", raising=False)
    [good, bad] = alerts.main(webhook(alert(host="anything-1"), alert(host="a,b")))
    assert good["meta"] == {"hosts": ["anything-1"]} and "runbook_rejected" in bad


def test_the_host_list_comes_from_the_environment(alerts, monkeypatch):
    monkeypatch.setenv("RUNBOOK_ALERT_HOSTS", "lab-2")
    [event] = alerts.main(webhook(alert()))
    assert "not a host of the inventory" in event["runbook_rejected"]


@pytest.mark.parametrize("body", [{}, {"payload": "x"}, {"payload": {"alerts": "x"}}, "junk"])
def test_not_an_alertmanager_payload(alerts, body):
    [event] = alerts.main(body, hosts="")
    assert "not an Alertmanager webhook payload" in event["runbook_rejected"]
    assert event["meta"] == {"hosts": ["localhost"]}
