"""`runbook triage` against the lab's real Prometheus and Alertmanager: two hosts broken
differently are listed with the right scenario and severity, the quickest action first,
and the command printed for the top one runs as printed."""

from __future__ import annotations

import json
import shlex
import urllib.request

import pytest

from runbook_remediation import triage
from runbook_remediation.lab.lab import free_port
from tests.conftest import http_status, restore_host, runbook, wait_for

pytestmark = pytest.mark.lab

SEVERITY_ORDER = ("P0", "P1", "P2", "P3")


def triage_json(*args: str) -> dict:
    result = runbook("-o", "json", "triage", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def row(data: dict, alert: str, host: str) -> dict | None:
    return next((r for r in data["alerts"] if r["alert"] == alert and r["host"] == host), None)


def both_firing(*args: str):
    """The triage data once ServiceDown on lab-1 and FileDescriptorExhaustion on lab-2 fire."""
    data = triage_json("--no-open", *args)
    if row(data, "ServiceDown", "lab-1") and row(data, "FileDescriptorExhaustion", "lab-2"):
        return data
    return None


@pytest.fixture
def two_broken_hosts(lab):
    """lab-1 crashed (ServiceDown), lab-2 leaking descriptors (FileDescriptorExhaustion)."""
    try:
        assert runbook("lab", "break", "crash", "--host", "lab-1").returncode == 0
        wait_for(lambda: http_status(lab.host("lab-1").health_url) is None, timeout=10, what="lab-1 down")
        result = runbook("lab", "break", "fd-leak", "--host", "lab-2",
                         "-p", "per_second=200", "-p", "max_fraction=0.9")
        assert result.returncode == 0, result.stderr
        yield lab
    finally:
        restore_host(lab, "lab-1")
        restore_host(lab, "lab-2")


def test_triage_lists_both_with_scenario_and_severity_quickest_first(two_broken_hosts):
    lab = two_broken_hosts
    wait_for(both_firing, timeout=90, interval=1, what="ServiceDown on lab-1 and FileDescriptorExhaustion on lab-2")

    data = triage_json()  # opens an incident per alert
    assert data["source"] == "alertmanager"
    # lab-1, lab-2, lab-docker and lab-compose all run the demo service.
    assert data["instance_totals"] == {"demo": 4}
    down = row(data, "ServiceDown", "lab-1")
    fds = row(data, "FileDescriptorExhaustion", "lab-2")
    # One of four instances down: P1 (all four would be P0). The descriptor alert is labelled
    # warning, but the catalogue's severity comes first: resources running out is P2.
    assert (down["scenario"], down["severity"], down["reason"]) == (
        "service-down", "P1", "health check down on some instances of the service")
    assert (fds["scenario"], fds["severity"]) == ("fd-exhaustion", "P2")
    assert down["rank"] < fds["rank"]
    # The whole list is ranked: severity, then the quickest mitigation, then the oldest alert.
    keys = [(SEVERITY_ORDER.index(r["severity"]), r["typical_seconds"] if r["typical_seconds"] is not None
             else float("inf"), r["starts_at"]) for r in data["alerts"]]
    assert keys == sorted(keys)
    assert [r["rank"] for r in data["alerts"]] == list(range(1, len(data["alerts"]) + 1))
    for r in data["alerts"]:
        if r["scenario"] is None:
            assert r["action"] == triage.NO_SCENARIO and r["command"] is None
    assert down["command"] == f"runbook run service-down -l lab-1 --service demo --incident {down['incident']}"

    # Our fingerprints are Alertmanager's own (incidents dedupe across both sources).
    url = f"http://127.0.0.1:{lab.state().alertmanager_port}/api/v2/alerts"
    with urllib.request.urlopen(url, timeout=5) as response:
        for alert in json.loads(response.read()):
            assert triage.fingerprint(alert["labels"]) == alert["fingerprint"]

    # The incident: detected at the alert's start, classified, linked to the alert.
    shown = json.loads(runbook("-o", "json", "incident", "show", down["incident"]).stdout)
    assert shown["severity"] == "P1" and shown["scenario"] == "service-down" and shown["hosts"] == ["lab-1"]
    assert shown["alert_fingerprints"] == [down["fingerprint"]]
    assert shown["detected_at"][:19] == down["starts_at"][:19]

    # The printed command runs as printed (without the leading `runbook`: same CLI).
    argv = shlex.split(down["command"])[1:]
    result = runbook("-o", "json", *argv)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["hosts"]["lab-1"]["outcome"] == "remediated"
    assert payload["incident"] == down["incident"]
    assert http_status(lab.host("lab-1").health_url) == 200


def test_triage_falls_back_to_prometheus_and_fails_when_both_are_down(lab):
    try:
        assert runbook("lab", "break", "crash", "--host", "lab-1").returncode == 0
        prometheus = f"http://127.0.0.1:{lab.state().prometheus_port}"
        nobody = f"http://127.0.0.1:{free_port()}"

        def fallback():
            data = triage_json("--no-open", "--alertmanager", nobody, "--prometheus", prometheus)
            return data if row(data, "ServiceDown", "lab-1") else None

        data = wait_for(fallback, timeout=60, interval=1, what="ServiceDown from Prometheus")
        assert data["source"] == "prometheus"
        assert row(data, "ServiceDown", "lab-1")["scenario"] == "service-down"

        result = runbook("triage", "--alertmanager", nobody, "--prometheus", f"http://127.0.0.1:{free_port()}")
        assert result.returncode == 5, result.stderr
        assert "Traceback" not in result.stderr
        assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    finally:
        restore_host(lab, "lab-1")
