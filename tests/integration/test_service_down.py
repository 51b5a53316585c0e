"""service-down end to end on the real lab: the CLI, ansible-playbook by FQCN, bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from runbook_remediation.lab.lab import free_port
from tests.conftest import http_status, restore_host, run_json, runbook, wait_for

pytestmark = pytest.mark.lab

# A short stabilization window keeps the crash-loop test quick; the logic is the same.
FAST = '{"service_restart_verify_timeout": 4, "service_restart_verify_interval": 1}'


def crash(lab, name: str) -> None:
    host = lab.host(name)
    assert runbook("lab", "break", "crash", "--host", name).returncode == 0
    wait_for(lambda: http_status(host.health_url) is None, timeout=10, what=f"{name} down")


def unit_show(lab, name: str) -> dict:
    container = lab.client.containers.get(lab.host(name).container)
    out = container.exec_run(
        ["systemctl", "show", "-p", "ActiveState,ExecMainStartTimestamp,NRestarts", "runbook-demo.service"]
    ).output.decode()
    return dict(line.split("=", 1) for line in out.strip().splitlines())


STATE_DIR = "/var/lib/runbook-remediation"


def budget_file(lab, name: str) -> str:
    """Where service_restart keeps the host's restart history (see its validate.yml)."""
    host = lab.host(name)
    target = {
        "systemd": "runbook-demo.service",
        "docker": host.container,
        "compose": f"{lab.compose_project}.demo",
    }[host.manager]
    return f"{STATE_DIR}/restarts-demo@{target}.json"


def restart_history(lab, name: str) -> list:
    host, path = lab.host(name), budget_file(lab, name)
    if host.manager == "systemd":
        container = lab.client.containers.get(host.container)
        result = container.exec_run(["cat", path])
        return json.loads(result.output) if result.exit_code == 0 else []
    # docker / compose: the history is on the Docker host, which is this machine in the lab.
    return json.loads(Path(path).read_text()) if Path(path).exists() else []


@pytest.fixture
def clean_budget(lab):
    """Each test starts with an empty restart history (it lives on the target)."""

    def clear():
        for host in lab.state().hosts:
            path = budget_file(lab, host.name)
            if host.manager == "systemd":
                lab.client.containers.get(host.container).exec_run(["rm", "-f", path])
            else:
                Path(path).unlink(missing_ok=True)

    clear()
    yield
    clear()


def test_systemd_crash_is_remediated_then_nothing_to_do(lab, clean_budget):
    crash(lab, "lab-1")
    code, payload = run_json("run", "service-down", "-l", "lab-1")
    assert code == 0, payload
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "remediated"
    assert any("restarted demo" in action for action in result["actions"])
    assert result["evidence"]["unit"] == "runbook-demo.service"
    assert any("FATAL crash" in line for line in result["evidence"]["log_tail"])
    assert result["verification"]["healthy"] is True
    assert http_status(lab.host("lab-1").health_url) == 200
    started = unit_show(lab, "lab-1")["ExecMainStartTimestamp"]

    code, payload = run_json("run", "service-down", "-l", "lab-1")
    assert code == 4, payload
    assert payload["hosts"]["lab-1"]["outcome"] == "healthy"
    assert unit_show(lab, "lab-1")["ExecMainStartTimestamp"] == started  # no restart happened
    assert len(restart_history(lab, "lab-1")) == 1


@pytest.mark.parametrize("name", ["lab-docker", "lab-compose"])
def test_container_crash_is_remediated_in_place(lab, clean_budget, name):
    container_id = lab.client.containers.get(lab.host(name).container).id
    crash(lab, name)
    code, payload = run_json("run", "service-down", "-l", name)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["evidence"]["status"] == "exited"
    assert http_status(lab.host(name).health_url) == 200
    assert lab.client.containers.get(lab.host(name).container).id == container_id  # same container

    code, payload = run_json("run", "service-down", "-l", name)
    assert code == 4, payload


def test_crash_loop_escalates_after_the_budget(lab, clean_budget):
    assert runbook("lab", "break", "crash-loop", "--host", "lab-2").returncode == 0
    try:
        wait_for(lambda: http_status(lab.host("lab-2").health_url) is None, timeout=10, what="lab-2 down")
        before = int(unit_show(lab, "lab-2")["NRestarts"] or 0)
        code, payload = run_json("run", "service-down", "-l", "lab-2", "-e", FAST)
        assert code == 3, payload
        result = payload["hosts"]["lab-2"]
        assert result["outcome"] == "escalate"
        assert len(restart_history(lab, "lab-2")) == 3  # the budget, not one more

        # A second run does not restart again: the budget is spent.
        show = unit_show(lab, "lab-2")
        code, payload = run_json("run", "service-down", "-l", "lab-2", "-e", FAST)
        assert code == 3, payload
        assert unit_show(lab, "lab-2")["ExecMainStartTimestamp"] == show["ExecMainStartTimestamp"]
        assert len(restart_history(lab, "lab-2")) == 3
        assert int(unit_show(lab, "lab-2")["NRestarts"] or 0) == before  # systemd itself restarted nothing
    finally:
        restore_host(lab, "lab-2")


def test_check_mode_plans_and_changes_nothing(lab, clean_budget):
    crash(lab, "lab-1")
    try:
        before = unit_show(lab, "lab-1")
        code, payload = run_json("run", "service-down", "-l", "lab-1", "--check")
        assert code == 0, payload
        result = payload["hosts"]["lab-1"]
        assert result["outcome"] == "planned" and result["check_mode"] is True
        assert result["actions"] and "would restart" in result["actions"][0]
        after = unit_show(lab, "lab-1")
        assert after["ExecMainStartTimestamp"] == before["ExecMainStartTimestamp"]
        assert after["ActiveState"] != "active"
        assert restart_history(lab, "lab-1") == []
    finally:
        restore_host(lab, "lab-1")


def test_diagnose_reports_evidence_and_changes_nothing(lab, clean_budget):
    crash(lab, "lab-1")
    try:
        before = unit_show(lab, "lab-1")
        result = runbook("-o", "json", "diagnose", "service-down", "-l", "lab-1")
        assert result.returncode == 0, result.stderr
        host = json.loads(result.stdout)["hosts"]["lab-1"]
        assert host["evidence"]["active_state"] in ("failed", "inactive")
        assert any("health check failed" in finding for finding in host["findings"])
        assert unit_show(lab, "lab-1") == before
    finally:
        restore_host(lab, "lab-1")


def test_ansible_playbook_by_fqcn_against_the_lab_inventory(lab, clean_budget):
    crash(lab, "lab-2")
    result = subprocess.run(
        ["ansible-playbook", "runbook.remediation.service_down", "-i", str(lab.inventory_path), "-l", "lab-2"],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "remediated: demo restarted and healthy" in result.stdout
    assert http_status(lab.host("lab-2").health_url) == 200


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("hint:")]
    assert "Traceback" not in result.stderr
    assert len(lines) >= 1
    return lines[-1]


def test_unknown_scenario_is_bad_input(lab):
    result = runbook("run", "service-dwn")
    assert result.returncode == 2, result.stderr
    assert "unknown scenario 'service-dwn'" in one_line_error(result)


def test_missing_inventory_is_bad_input(lab, tmp_path):
    result = runbook("run", "service-down", "-i", str(tmp_path / "nope.yml"))
    assert result.returncode == 2, result.stderr
    assert "nope.yml" in one_line_error(result)


def test_unreachable_host_is_unavailable(lab, tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    ghost:\n      ansible_connection: community.docker.docker\n"
        "      ansible_host: runbook-no-such-container\n"
        "      runbook_services:\n        - {name: demo, manager: systemd, unit: demo.service,"
        " health_url: 'http://127.0.0.1:8080/health'}\n"
    )
    result = runbook("run", "service-down", "-i", str(inventory))
    assert result.returncode == 5, result.stdout + result.stderr
    assert "ghost" in result.stdout + result.stderr


def test_health_url_that_is_not_a_url_is_bad_input(lab):
    services = json.dumps({"runbook_services": [
        {"name": "demo", "manager": "systemd", "unit": "runbook-demo.service", "health_url": "localhost:8080/health"}
    ]})
    code, payload = run_json("run", "service-down", "-l", "lab-1", "-e", services)
    assert code == 2, payload
    assert "cannot probe its health_url localhost:8080/health" in payload["hosts"]["lab-1"]["message"]


def test_unknown_service_is_bad_input(lab):
    code, payload = run_json("run", "service-down", "-l", "lab-1", "--service", "nope")
    assert code == 2, payload
    assert "unknown service 'nope'" in payload["hosts"]["lab-1"]["message"]


def test_invalid_promql_is_bad_input_and_touches_nothing(lab):
    code, payload = run_json("run", "service-down", "-l", "lab-1", "-e", "runbook_verify_promql=up{host=")
    assert code == 2, payload
    message = payload["hosts"]["lab-1"]["message"]
    assert message.startswith("invalid input: runbook_verify_promql is not valid PromQL: Prometheus rejected"), message


def test_prometheus_down_is_unavailable(lab):
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    code, payload = run_json(
        "run", "service-down", "-l", "lab-1", "-e", "runbook_verify_promql=up", "-e", f"runbook_prometheus_url={url}"
    )
    assert code == 5, payload
    assert f"Prometheus at {url} is unreachable" in payload["hosts"]["lab-1"]["message"]


def test_promql_verification_after_a_restart(lab, clean_budget):
    crash(lab, "lab-1")
    code, payload = run_json(
        "run", "service-down", "-l", "lab-1", "-e", json.dumps({"runbook_verify_promql": 'up{host="lab-1"} == 1'})
    )
    assert code == 0, payload
    verification = payload["hosts"]["lab-1"]["verification"]
    assert verification["healthy"] is True and verification["promql_samples"] >= 1


CACHE_UNIT = """[Unit]
Description=a dependency of the demo service (test)
StartLimitIntervalSec=0
[Service]
User=runbook-demo
ExecStart=/usr/bin/python3 /opt/runbook-demo/demo_service.py --port {port} --name cache \\
  --log-dir /var/log/runbook-demo/cache --workload-rps 0
Restart=no
"""


def test_failed_dependency_is_restarted_first(lab, clean_budget):
    """Seed 003: when a dependency is down too, restart it first, then the service."""
    host = lab.host("lab-1")
    container = lab.client.containers.get(host.container)
    port = free_port({h.port for h in lab.state().hosts})
    container.exec_run(["sh", "-c", f"cat > /etc/systemd/system/runbook-cache.service <<'EOF'\n"
                        f"{CACHE_UNIT.format(port=port)}EOF\n"])
    container.exec_run(["systemctl", "daemon-reload"])
    try:
        assert container.exec_run(["systemctl", "start", "runbook-cache.service"]).exit_code == 0
        wait_for(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, what="cache up")
        services = [
            {"name": "demo", "manager": "systemd", "unit": "runbook-demo.service", "health_url": host.health_url,
             "depends_on": ["cache"]},
            {"name": "cache", "manager": "systemd", "unit": "runbook-cache.service",
             "health_url": f"http://127.0.0.1:{port}/health"},
        ]
        container.exec_run(["systemctl", "kill", "-s", "KILL", "runbook-cache.service"])
        crash(lab, "lab-1")
        code, payload = run_json(
            "run", "service-down", "-l", "lab-1", "--service", "demo", "-e", json.dumps({"runbook_services": services})
        )
        assert code == 0, payload
        actions = payload["hosts"]["lab-1"]["actions"]
        assert actions[0].startswith("restarted dependency cache"), actions
        assert actions[1].startswith("restarted demo"), actions
        assert http_status(f"http://127.0.0.1:{port}/health") == 200
        assert http_status(host.health_url) == 200
    finally:
        container.exec_run(["systemctl", "stop", "runbook-cache.service"])
        container.exec_run(["rm", "-f", "/etc/systemd/system/runbook-cache.service"])
        container.exec_run(["systemctl", "daemon-reload"])
