"""The scenario frame, for every scenario of the catalogue, on the real lab: bad input is
refused before anything is admitted (the breakers untouched), and when the safety envelope
cannot decide the remediation does not run at all (fail closed)."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from runbook_remediation import catalogue
from runbook_remediation.collection import find_collection
from tests.conftest import http_status, restore_host, run_json, wait_for

pytestmark = pytest.mark.lab

SCENARIOS = [s.name for s in catalogue.catalogue(find_collection())]


def envelope_rows(path) -> dict:
    if not path.exists():
        return {"attempts": 0, "decisions": 0, "breakers": 0}
    with sqlite3.connect(path) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("attempts", "decisions", "breakers")}


@pytest.fixture(scope="module")
def pg_inventory(lab, tmp_path_factory):
    """The lab's inventory plus one host describing a PostgreSQL database (db-connection-pool
    validates its description; nothing here connects before the envelope admits)."""
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["all"]["children"]["pg"] = {"hosts": {"pg-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [{"name": "billing", "manager": "systemd", "unit": "billing.service",
                              "health_url": "http://127.0.0.1:9/health",
                              "database": {"type": "postgresql", "name": "billing", "host": "127.0.0.1",
                                           "port": 9, "user": "runbook", "password": "Pw-frame-SEED"}}]}}}
    # key-rotation validates its description (env file, verify URL, consumers) before admission.
    data["all"]["children"]["keys"] = {"hosts": {"keys-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [
            {"name": "api", "manager": "systemd", "unit": "api.service", "health_url": "http://127.0.0.1:9/health",
             "key_rotation": {"env_file": "/nonexistent/api.env", "variable": "API_KEY",
                              "verify_url": "http://127.0.0.1:9/api/work", "consumers": ["app"]}},
            {"name": "app", "manager": "systemd", "unit": "app.service", "health_url": "http://127.0.0.1:9/health"},
        ]}}}
    # redis-memory / redis-flush validate the Redis description (nothing listens on port 9).
    data["all"]["children"]["redis"] = {"hosts": {"redis-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [{"name": "cache", "manager": "systemd", "unit": "redis-server.service",
                              "health_url": "redis://127.0.0.1:9", "redis_password": "Pw-frame-REDIS"}]}}}
    # prometheus-retention validates the description (nothing answers on port 9, no such container).
    data["all"]["children"]["prom"] = {"hosts": {"prom-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [{"name": "prometheus", "manager": "docker", "container": "runbook-frame-no-such-container",
                              "health_url": "http://127.0.0.1:9/-/ready"}]}}}
    # The Kubernetes scenarios take a Deployment (nothing contacts a cluster before admission).
    data["all"]["children"]["k8s"] = {"hosts": {"k8s-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [{"name": "web", "manager": "kubernetes", "deployment": "runbook-frame-no-such-deployment",
                              "namespace": "default", "kubeconfig": "/nonexistent/kubeconfig",
                              "maintenance": {"configmap": "app-config"}, "traffic": {"service": "mpc-lb"},
                              "health_url": "http://127.0.0.1:9/health"}]}}}
    path = tmp_path_factory.mktemp("frame") / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def target(scenario: str, pg_inventory) -> list[str]:
    if scenario in ("db-connection-pool", "db-index-corruption", "db-analyze", "db-max-connections"):
        return ["-i", str(pg_inventory), "-l", "pg-host"]
    if scenario == "key-rotation":
        return ["-i", str(pg_inventory), "-l", "keys-host"]
    if scenario in ("redis-memory", "redis-flush"):
        return ["-i", str(pg_inventory), "-l", "redis-host"]
    if scenario == "prometheus-retention":
        return ["-i", str(pg_inventory), "-l", "prom-host"]
    if scenario in ("scale-out", "isolate-pods", "maintenance-mode", "traffic-drain"):
        return ["-i", str(pg_inventory), "-l", "k8s-host"]
    return ["-l", "lab-1"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_bad_input_is_refused_before_admission(lab, own_envelope, pg_inventory, scenario):
    code, payload = run_json("run", scenario, *target(scenario, pg_inventory), "--service", "no-such-service",
                             "--yes")
    assert code == 2, payload
    [result] = payload["hosts"].values()
    assert result["outcome"] == "failed" and result["error_kind"] == "input", result
    assert result["message"].startswith("invalid input:") and "no-such-service" in result["message"], result
    # Nothing admitted, nothing counted, no breaker touched.
    assert envelope_rows(own_envelope) == {"attempts": 0, "decisions": 0, "breakers": 0}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_an_envelope_that_cannot_decide_lets_nothing_run(lab, tmp_path, monkeypatch, pg_inventory, scenario):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the envelope's directory is a file: it cannot be opened")
    monkeypatch.setenv("RUNBOOK_ENVELOPE_DB", str(blocker / "envelope.db"))
    host = lab.host("lab-1")
    if scenario == "service-down":
        lab.break_service("crash", "lab-1")
        wait_for(lambda: http_status(host.health_url) != 200, timeout=10, what="lab-1 down")
    before = lab.client.containers.get(host.container).exec_run(
        ["systemctl", "show", "-p", "ExecMainStartTimestampMonotonic", "--value", "runbook-demo.service"]).output
    try:
        destructive = {s.name for s in catalogue.catalogue(find_collection()) if s.destructive}
        args = [*target(scenario, pg_inventory), *(["--yes"] if scenario in destructive else []),
                *(["--service", "api"] if scenario == "key-rotation" else [])]
        # A scenario that acts only on a request gets a valid one, so the envelope is reached.
        request = {"env-toggle": {"env_toggle_set": {"DEMO_WORK_ITERATIONS": "3"}},
                   "admin-action": {"app_admin_action": "cache_clear"},
                   "prometheus-retention": {"prometheus_retention_time": "15d"}}.get(scenario)
        code, payload = run_json("run", scenario, *args, extra=request)
        assert code == 5, payload
        [result] = payload["hosts"].values()
        assert result["outcome"] == "failed" and result["error_kind"] == "unavailable", result
        assert "the safety envelope could not decide" in result["message"], result
        assert result["actions"] == [] and result["decision"] == "refused", result
        after = lab.client.containers.get(host.container).exec_run(
            ["systemctl", "show", "-p", "ExecMainStartTimestampMonotonic", "--value", "runbook-demo.service"]).output
        assert after == before  # the unit was neither stopped nor started
        if scenario == "service-down":
            assert http_status(host.health_url) != 200  # still down: nothing restarted it
        # No task of the run changed anything (the timeline has every task of it).
        from runbook_remediation.timeline import open_store

        with open_store() as store:
            events = store.events(run_id=payload["run_id"])
        assert events and not [e for e in events if e["kind"] == "task" and e["changed"]], json.dumps(events)[:2000]
    finally:
        if scenario == "service-down":
            restore_host(lab, "lab-1")


def test_a_run_with_a_safety_override_records_it(lab, own_envelope):
    code, payload = run_json("run", "service-down", "-l", "lab-1", extra={
        "safety_envelope_max_attempts": 10, "runbook_override_safety": "drill with a bigger budget"})
    assert code == 4, payload
    findings = payload["hosts"]["lab-1"]["findings"]
    assert "safety overridden (safety_envelope_max_attempts): drill with a bigger budget" in findings


def test_a_safety_setting_from_the_command_line_alone_is_refused(lab, own_envelope):
    code, payload = run_json("run", "service-down", "-l", "lab-1", extra={"safety_envelope_enabled": False})
    assert code == 2, payload
    assert "runbook_override_safety" in payload["hosts"]["lab-1"]["message"]
    assert envelope_rows(own_envelope)["decisions"] == 0
