"""cpu_limit_raise on real containers (the lab image running the demo service on the
machine's dockerd, host network, a free port): a busy container throttled under its
limit is raised in place (same container, no restart) and a second run, once the load is
gone, has nothing to do; a Compose service gets the limit in its override and in place;
check mode and bad input change nothing. The systemd path is the molecule scenario
`cpu_limit_raise` (drop-in, cgroup quota, check mode, refusal, idempotence)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest
import yaml

from tests.conftest import http_status, wait_for

pytestmark = pytest.mark.lab

ROLE = "runbook.remediation.cpu_limit_raise"
NANO = 1_000_000_000


@pytest.fixture(scope="module")
def engine():
    from runbook_remediation.lab.image import build_image

    client = docker.from_env()
    image = build_image(client, lambda _message: None)
    return client, image


def demo_command(port: int) -> list[str]:
    return ["python3", "/opt/runbook-demo/demo_service.py", "--port", str(port), "--log-dir", "/tmp/demo",
            "--workload-rps", "0"]


def demo_mount() -> dict:
    from runbook_remediation.lab.lab import demo_service_source

    return {str(demo_service_source()): {"bind": "/opt/runbook-demo/demo_service.py", "mode": "ro"}}


@pytest.fixture
def container(engine):
    """A demo-service container limited to 0.1 core, removed after the test."""
    from runbook_remediation.lab.lab import free_port

    client, image = engine
    port = free_port()
    made = client.containers.run(image, demo_command(port), name=f"runbook-cpu-test-{uuid.uuid4().hex[:8]}",
                                 detach=True, network_mode="host", nano_cpus=NANO // 10, volumes=demo_mount())
    try:
        url = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: http_status(url) == 200, timeout=30, what="demo container healthy")
        yield made, {"name": "demo", "manager": "docker", "container": made.name, "health_url": url}
    finally:
        made.remove(force=True)


def play(tmp_path: Path, service: dict, *args: str, **extra) -> tuple[int, dict | None, str]:
    """The role on this machine (local connection): exit code, its result, the output."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"target": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [service]}}}}), encoding="utf-8")
    playbook = tmp_path / "raise.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Raise the CPU limit", "hosts": "all", "gather_facts": False,
        "tasks": [
            {"name": "Raise", "ansible.builtin.include_role": {"name": ROLE}},
            {"name": "Report", "ansible.builtin.set_stats": {"data": {"result": "{{ cpu_limit_raise_result }}"}}},
        ]}]), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_SHOW_CUSTOM_STATS": "1",
           "ANSIBLE_NOCOLOR": "1"}
    argv = ["ansible-playbook", str(playbook), "-i", str(inventory), *args,
            "-e", json.dumps({"cpu_limit_raise_name": "demo", "cpu_limit_raise_fail": False,
                              "cpu_limit_raise_verify_probes": 2, **extra})]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=300)
    output = done.stdout + done.stderr
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"no JSON from ansible-playbook (exit {done.returncode}):\n{output[-4000:]}")
    result = report.get("global_custom_stats", {}).get("result")
    return done.returncode, result, output


def host_config(made) -> dict:
    made.reload()
    return made.attrs["HostConfig"]


def test_a_throttled_container_is_raised_in_place_then_nothing_to_do(container, tmp_path):
    made, service = container
    made.reload()
    started = made.attrs["State"]["StartedAt"]
    # A busy loop under 0.1 core: nearly every scheduling period is throttled.
    made.exec_run(["sh", "-c", "timeout 60 sh -c 'while :; do :; done'"], detach=True)
    code, result, output = play(tmp_path, service, cpu_limit_raise_sample=2)
    assert code == 0, output[-4000:]
    assert result["outcome"] == "remediated", result
    assert result["cpu"] == {"from": 0.1, "to": 0.2, "ceiling": 2.0}
    assert result["evidence"]["throttling"]["ratio"] >= 0.2, result["evidence"]
    assert result["verification"]["limit_applied"] is True
    config = host_config(made)
    assert config["NanoCpus"] == NANO // 5
    assert made.attrs["State"]["StartedAt"] == started  # in place: not restarted, not recreated
    assert http_status(service["health_url"]) == 200

    made.exec_run(["pkill", "-f", "while :"])
    code, result, output = play(tmp_path, service, cpu_limit_raise_sample=2)
    assert code == 0, output[-4000:]
    assert result["outcome"] == "healthy", result
    assert "is not throttled" in result["message"]
    assert host_config(made)["NanoCpus"] == NANO // 5


def test_check_mode_and_diagnose_only_change_nothing(container, tmp_path):
    made, service = container
    made.exec_run(["sh", "-c", "timeout 60 sh -c 'while :; do :; done'"], detach=True)
    code, result, output = play(tmp_path, service, "--check", cpu_limit_raise_sample=2)
    assert code == 0, output[-4000:]
    assert result["outcome"] == "planned", result
    assert result["cpu"]["to"] == 0.2
    code, result, output = play(tmp_path, service, cpu_limit_raise_sample=1, cpu_limit_raise_diagnose_only=True,
                                cpu_limit_raise_to="0.5")
    assert code == 0, output[-4000:]
    assert result["outcome"] == "planned", result
    assert host_config(made)["NanoCpus"] == NANO // 10


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"cpu_limit_raise_to": "3"}, "is above the ceiling of 2.0 cores (cpu_limit_raise_ceiling)"),
        ({"cpu_limit_raise_to": "0.05"}, "is below the current 0.1 cores of demo: this role only raises"),
        ({"cpu_limit_raise_to": "1; reboot"}, "cpu_limit_raise_to must be a number of cores such as 1.5"),
        ({"cpu_limit_raise_ceiling": "-1"}, "must be a number"),
        ({"cpu_limit_raise_factor": 1}, "cpu_limit_raise_factor must be a number above 1"),
    ],
    ids=["above-ceiling", "below-current", "not-a-number", "bad-ceiling", "factor"],
)
def test_bad_requests_change_nothing(container, tmp_path, extra, words):
    made, service = container
    code, result, output = play(tmp_path, service, **extra)
    assert code != 0 or (result and result.get("error_kind") == "input"), output[-4000:]
    assert words in output, output[-4000:]
    assert host_config(made)["NanoCpus"] == NANO // 10


def test_a_service_at_its_ceiling_escalates(container, tmp_path):
    made, service = container
    code, result, output = play(tmp_path, {**service, "cpu": {"ceiling": 0.1}}, cpu_limit_raise_force=True,
                                cpu_limit_raise_sample=1)
    assert code == 0, output[-4000:]
    assert result["outcome"] == "escalate", result
    assert "at its ceiling of 0.1 cores" in result["message"]
    assert host_config(made)["NanoCpus"] == NANO // 10


def test_compose_limit_goes_into_the_override_and_in_place(engine, tmp_path):
    from runbook_remediation.lab.lab import demo_service_source, free_port

    _client, image = engine
    port = free_port()
    project = f"runbook-cpu-{uuid.uuid4().hex[:8]}"
    directory = tmp_path / project
    directory.mkdir()
    (directory / "compose.yaml").write_text(yaml.safe_dump({"services": {"demo": {
        "image": image, "network_mode": "host", "cpus": 0.25, "command": demo_command(port),
        "volumes": [f"{demo_service_source()}:/opt/runbook-demo/demo_service.py:ro"]}}}), encoding="utf-8")
    (directory / "compose.override.yaml").write_text("services:\n  demo:\n    environment:\n      KEPT: 'yes'\n",
                                                     encoding="utf-8")
    compose = ["docker", "compose", "--project-directory", str(directory), "-p", project]
    up = subprocess.run([*compose, "up", "-d"], capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    try:
        url = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: http_status(url) == 200, timeout=30, what="compose demo healthy")
        service = {"name": "demo", "manager": "compose", "project_src": str(directory), "project": project,
                   "health_url": url}
        before = subprocess.run([*compose, "ps", "-q", "demo"], capture_output=True, text=True, check=True).stdout
        code, result, output = play(tmp_path, service, cpu_limit_raise_to="0.75", cpu_limit_raise_sample=1)
        assert code == 0, output[-4000:]
        assert result["outcome"] == "remediated", result
        merged = yaml.safe_load((directory / "compose.override.yaml").read_text(encoding="utf-8"))
        assert merged["services"]["demo"]["environment"] == {"KEPT": "yes"}  # the existing override is kept
        assert merged["services"]["demo"]["cpus"] == 0.75
        after = subprocess.run([*compose, "ps", "-q", "demo"], capture_output=True, text=True, check=True).stdout
        assert after == before  # the same container, updated in place
        inspect = json.loads(subprocess.run(["docker", "inspect", after.strip()], capture_output=True, text=True,
                                            check=True).stdout)[0]
        assert inspect["HostConfig"]["NanoCpus"] == 3 * NANO // 4
        # The project as Compose sees it now keeps the raised limit at its next `up`.
        config = json.loads(subprocess.run([*compose, "config", "--format", "json"], capture_output=True, text=True,
                                           check=True).stdout)
        assert float(config["services"]["demo"]["cpus"]) == 0.75

        code, result, output = play(tmp_path, service, cpu_limit_raise_to="0.75", cpu_limit_raise_sample=1)
        assert result["outcome"] == "healthy", result
    finally:
        subprocess.run([*compose, "down", "-t", "1"], capture_output=True, check=False)


def test_a_container_without_a_cpu_limit_gets_a_first_one_on_request(engine, tmp_path):
    """No limit: nothing to raise, and the finding says how to set one; asked for, it is set in place."""
    from runbook_remediation.lab.lab import free_port

    client, image = engine
    port = free_port()
    made = client.containers.run(image, demo_command(port), name=f"runbook-cpu-test-{uuid.uuid4().hex[:8]}",
                                 detach=True, network_mode="host", volumes=demo_mount())
    try:
        url = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: http_status(url) == 200, timeout=30, what="demo container healthy")
        service = {"name": "demo", "manager": "docker", "container": made.name, "health_url": url}
        code, result, output = play(tmp_path, service, cpu_limit_raise_sample=1)
        assert code == 0, output[-4000:]
        assert result["outcome"] == "healthy" and "cpu_limit_raise_to=CORES sets a first one" in result["message"]

        code, result, output = play(tmp_path, service, "--check", cpu_limit_raise_sample=1, cpu_limit_raise_to="0.5")
        assert code == 0, output[-4000:]
        assert result["message"] == "planned: would set the CPU limit of demo to 0.5 cores (it had none)", result
        assert host_config(made)["NanoCpus"] == 0

        made.reload()
        started = made.attrs["State"]["StartedAt"]
        code, result, output = play(tmp_path, service, cpu_limit_raise_sample=1, cpu_limit_raise_to="0.5")
        assert code == 0, output[-4000:]
        assert result["outcome"] == "remediated", result
        assert result["actions"][0].startswith(f"set the CPU limit of container {made.name} in place to 0.5 cores")
        assert host_config(made)["NanoCpus"] == NANO // 2
        assert made.attrs["State"]["StartedAt"] == started

        code, result, output = play(tmp_path, service, cpu_limit_raise_sample=1, cpu_limit_raise_to="0.5")
        assert code == 0, output[-4000:]
        assert result["outcome"] == "healthy", result
    finally:
        made.remove(force=True)
