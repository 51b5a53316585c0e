"""env-toggle end to end on the real lab: a declared setting set on lab-1 (systemd), the
Docker and the Compose service -> visible in the process's environment or the container's
configuration and in /health -> revert restores it; check mode and bad input change
nothing."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import yaml

from runbook_remediation.lab.lab import REMEDIATION_STATE
from runbook_remediation.lab.monitoring import http_json
from tests.conftest import restore_host, run_json

pytestmark = pytest.mark.lab

DROPIN = "/etc/systemd/system/runbook-demo.service.d/runbook-env.conf"


def health(lab, name: str) -> dict:
    try:
        return http_json(lab.host(name).health_url, timeout=10)
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def sh(lab, name: str, script: str) -> str:
    result = lab.client.containers.get(lab.host(name).container).exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output
    return result.output.decode()


def process_env(lab, name: str) -> dict:
    """The demo's environment as the kernel has it (/proc/PID/environ of the unit's main process)."""
    text = sh(lab, name, "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value runbook-demo.service)/environ")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def container_env(lab, name: str) -> dict:
    host = lab.host(name)
    if host.manager == "compose":
        [container] = lab.client.containers.list(all=True, filters={
            "label": [f"com.docker.compose.project={lab.compose_project}", "com.docker.compose.service=demo"]})
    else:
        container = lab.client.containers.get(host.container)
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])


@pytest.fixture
def fresh(lab):
    """The host as the lab made it, before and after the test."""
    names = []

    def use(name: str) -> str:
        restore_host(lab, name)
        names.append(name)
        return name

    yield use
    for name in names:
        restore_host(lab, name)


def test_set_then_revert_on_systemd(lab, fresh):
    name = fresh("lab-1")
    before = health(lab, name)
    assert before["work_iterations"] == 10 and "DEMO_WORK_ITERATIONS" not in process_env(lab, name)
    request = {"env_toggle_set": {"DEMO_WORK_ITERATIONS": "3"}}

    code, payload = run_json("run", "env-toggle", "-l", name, "--check", extra=request)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "planned", result
    assert "would set DEMO_WORK_ITERATIONS=3 (was (unset))" in result["message"]
    assert health(lab, name)["pid"] == before["pid"]
    assert sh(lab, name, f"test -e {DROPIN} && echo yes || echo no").strip() == "no"

    code, payload = run_json("run", "env-toggle", "-l", name, extra=request)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["changes"] == [{"name": "DEMO_WORK_ITERATIONS", "from": None, "to": "3"}]
    assert result["verification"]["in_force"] is True
    after = health(lab, name)
    assert after["work_iterations"] == 3 and after["pid"] != before["pid"]
    assert process_env(lab, name)["DEMO_WORK_ITERATIONS"] == "3"
    assert "Environment=DEMO_WORK_ITERATIONS=3" in sh(lab, name, f"cat {DROPIN}")
    record = json.loads(sh(lab, name, f"cat {REMEDIATION_STATE}/env-demo@runbook-demo.service.json"))
    assert record == {"DEMO_WORK_ITERATIONS": None}

    code, payload = run_json("run", "env-toggle", "-l", name, extra=request)
    assert code == 4, payload
    assert health(lab, name)["pid"] == after["pid"]

    code, payload = run_json("run", "env-toggle", "-l", name, extra={"env_toggle_revert": True})
    assert code == 0, payload["hosts"][name]["message"]
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["changes"] == [{"name": "DEMO_WORK_ITERATIONS", "from": "3", "to": None}]
    assert health(lab, name)["work_iterations"] == 10
    assert "DEMO_WORK_ITERATIONS" not in process_env(lab, name)
    assert sh(lab, name, f"ls {DROPIN} {REMEDIATION_STATE}/env-demo@runbook-demo.service.json 2>&1 || true").count(
        "No such file") == 2

    code, payload = run_json("run", "env-toggle", "-l", name, extra={"env_toggle_revert": True})
    assert code == 4, payload


@pytest.mark.parametrize("name", ["lab-docker", "lab-compose"])
def test_set_then_revert_on_docker_and_compose(lab, fresh, name):
    fresh(name)
    assert health(lab, name)["upstream_provider"] == "primary"
    request = {"env_toggle_set": {"DEMO_UPSTREAM_PROVIDER": "secondary"}}

    code, payload = run_json("run", "env-toggle", "-l", name, "--check", extra=request)
    assert code == 0 and payload["hosts"][name]["outcome"] == "planned", payload
    assert "DEMO_UPSTREAM_PROVIDER" not in container_env(lab, name)

    code, payload = run_json("run", "env-toggle", "-l", name, extra=request)
    assert code == 0, payload
    assert payload["hosts"][name]["outcome"] == "remediated", payload
    assert container_env(lab, name)["DEMO_UPSTREAM_PROVIDER"] == "secondary"
    assert health(lab, name)["upstream_provider"] == "secondary"
    if name == "lab-compose":
        override = yaml.safe_load((lab.compose_dir / "compose.override.yaml").read_text(encoding="utf-8"))
        assert override["services"]["demo"]["environment"]["DEMO_UPSTREAM_PROVIDER"] == "secondary"

    code, payload = run_json("run", "env-toggle", "-l", name, extra=request)
    assert code == 4, payload

    code, payload = run_json("run", "env-toggle", "-l", name, extra={"env_toggle_revert": "true"})
    assert code == 0, payload
    assert payload["hosts"][name]["outcome"] == "remediated", payload
    assert "DEMO_UPSTREAM_PROVIDER" not in container_env(lab, name)
    assert health(lab, name)["upstream_provider"] == "primary"
    if name == "lab-compose":
        override = yaml.safe_load((lab.compose_dir / "compose.override.yaml").read_text(encoding="utf-8"))
        assert "DEMO_UPSTREAM_PROVIDER" not in override["services"]["demo"].get("environment", {})


@pytest.mark.parametrize(("extra", "message"), [
    ({"env_toggle_set": {"PATH": "/tmp"}}, "PATH is not a setting of demo"),
    ({"env_toggle_set": {"DEMO_API_KEY": "x"}}, "names a secret"),
    ({"env_toggle_set": {"DEMO_UPSTREAM_PROVIDER": "evil"}}, "not an allowed value"),
    ({"env_toggle_set": {"DEMO_WORK_ITERATIONS": "{{ lookup('pipe', 'touch /tmp/owned-env') }}"}},
     "templates are not accepted"),
    ({"env_toggle_set": {"DEMO_WORK_ITERATIONS": "3\nExecStartPre=/bin/false"}}, "must be plain"),
    ({"env_toggle_set": {"DEMO_WORK_ITERATIONS": "3"}, "env_toggle_revert": True}, "exclude each other"),
    ({}, "nothing to set"),
])
def test_bad_requests_change_nothing(lab, extra, message):
    name = "lab-2"
    before = health(lab, name)
    code, payload = run_json("run", "env-toggle", "-l", name, extra=extra)
    assert code == 2, payload
    assert message in payload["hosts"][name]["message"], payload["hosts"][name]["message"]
    assert health(lab, name)["pid"] == before["pid"]
    assert sh(lab, name, f"ls {REMEDIATION_STATE}/env-*.json {DROPIN} 2>/dev/null | wc -l").strip() == "0"
    # The payload never ran, neither on the controller nor on the host.
    assert not Path("/tmp/owned-env").exists()
    assert sh(lab, name, "test -e /tmp/owned-env && echo yes || echo no").strip() == "no"
