"""config-restore for a Docker container and a Compose service: the demo service runs from
the lab image with its configuration directory bind-mounted from this host (a git work tree
whose HEAD is the known-good). A bad edit reloaded (SIGHUP) -> refused, unhealthy -> `runbook
run config-restore --yes` restores HEAD on the host (checked with the demo's own
--check-config first), sends SIGHUP to the container's main process (the same process
reloads), verifies; a second run has nothing to do; check mode changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_json, wait_for
from tests.postgres import free_port

pytestmark = pytest.mark.lab

GOOD = '# demo: production configuration\n[server]\nlog_level = "INFO"\n\n[limits]\nmax_body_kb = 64\n'


def health(url: str) -> tuple[int | None, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, OSError):
        return None, {}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@runbook.invalid",
                           *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def lab_image():
    import docker

    from runbook_remediation.lab.image import build_image

    client = docker.from_env()
    return client, build_image(client)


@pytest.fixture(params=["docker", "compose"])
def web(request, lab_image, tmp_path):
    """The demo in a container of MANAGER, its config directory mounted from a git work tree here."""
    from runbook_remediation.lab.lab import demo_service_source

    client, image = lab_image
    config = tmp_path / "config"
    config.mkdir()
    (config / "production.toml").write_text(GOOD, encoding="utf-8")
    git(config, "init", "-q")
    git(config, "add", "production.toml")
    git(config, "commit", "-q", "-m", "known-good")
    port, tag = free_port(), uuid.uuid4().hex[:8]
    command = ["python3", "/opt/runbook-demo/demo_service.py", "--port", str(port), "--log-dir", "/tmp/demo",
               "--workload-rps", "0", "--config", "/etc/demo/production.toml"]
    mounts = [f"{demo_service_source()}:/opt/runbook-demo/demo_service.py:ro", f"{config}:/etc/demo"]
    service = {"name": "web", "manager": request.param, "health_url": f"http://127.0.0.1:{port}/health",
               "config": {"path": str(config / "production.toml"), "repo": str(config),
                          "validate": [sys.executable, str(demo_service_source()), "--check-config"],
                          "apply": "reload"}}
    project = tmp_path / "project"
    if request.param == "docker":
        container = client.containers.run(image, command, name=f"runbook-cfg-{tag}", detach=True,
                                          network_mode="host", volumes=mounts)
        service["container"] = container.name
    else:
        project.mkdir()
        (project / "compose.yaml").write_text(yaml.safe_dump({"services": {"web": {
            "image": image, "network_mode": "host", "command": command, "volumes": mounts}}}), encoding="utf-8")
        subprocess.run(["docker", "compose", "--project-directory", str(project), "-p", f"runbook-cfg-{tag}",
                        "up", "-d", "--quiet-pull"], capture_output=True, text=True, check=True)
        container = client.containers.get(f"runbook-cfg-{tag}-web-1")
        service.update({"container": container.name, "project_src": str(project), "project": f"runbook-cfg-{tag}",
                        "compose_service": "web"})
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"web-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [service]}}}}), encoding="utf-8")
    try:
        wait_for(lambda: health(service["health_url"])[0] == 200, timeout=30, what="the demo in its container")
        yield {"container": container, "config": config, "inventory": inventory, "url": service["health_url"]}
    finally:
        if request.param == "docker":
            container.remove(force=True)
        else:
            subprocess.run(["docker", "compose", "--project-directory", str(project), "-p", f"runbook-cfg-{tag}",
                            "down", "--timeout", "1"], capture_output=True, check=False)


def run(web: dict, *args: str) -> tuple[int, dict]:
    code, payload = run_json("run", "config-restore", "-i", str(web["inventory"]), "-l", "web-host", *args)
    return code, payload["hosts"].get("web-host", payload)


def test_a_broken_config_is_restored_and_the_container_reloads(web):
    path = web["config"] / "production.toml"
    pid = health(web["url"])[1]["pid"]
    path.write_text(GOOD + "max_connections = [\n", encoding="utf-8")  # a bad edit ...
    web["container"].kill(signal="SIGHUP")  # ... reloaded: refused, the old configuration keeps running
    wait_for(lambda: health(web["url"])[0] == 503, timeout=10, what="the refused reload")

    code, result = run(web, "--check", "--yes")
    assert (code, result["outcome"]) == (0, "planned"), result
    assert "max_connections = [" in path.read_text()

    code, result = run(web, "--yes")
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert path.read_text() == GOOD and git(web["config"], "status", "--porcelain") == ""
    status, body = health(web["url"])
    assert status == 200 and body["pid"] == pid  # reloaded in place, not restarted
    assert any(action.startswith("reloaded ") for action in result["actions"]), result

    code, result = run(web, "--yes")
    assert (code, result["outcome"]) == (4, "healthy"), result
