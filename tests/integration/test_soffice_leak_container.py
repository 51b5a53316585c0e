"""soffice-leak for a Docker service (seed 003's ggen-mcp-server runs LibreOffice in its
container): real headless LibreOffice in the lab's office image (built once, cached),
host network, free ports. The service's container runs the demo service and two stale
soffice listeners as nobody; decoys around it: soffice in another container and on this
host, and a process inside the service's container that only calls itself soffice.bin.
The cleanup runs inside the service's container: exactly its two instances die, the
decoys live, a second run has nothing to do, check mode stops nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from runbook_remediation.lab.lab import soffice_greets as greets
from tests.conftest import http_status, run_json, wait_for
from tests.postgres import free_port

SOFFICE = "/usr/bin/soffice"
MAX_AGE = 5

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SOFFICE),
                       reason="needs root and LibreOffice on this host for the host decoy"),
]


def accept(port: int) -> str:
    return f"--accept=socket,host=127.0.0.1,port={port};urp;"


def soffice_argv(port: int, profile: str) -> list[str]:
    return [SOFFICE, "--headless", "--norestore", "--nologo", "--nodefault", f"-env:UserInstallation=file://{profile}",
            accept(port)]


@pytest.fixture(scope="module")
def office():
    import docker

    from runbook_remediation.lab.image import build_office_image

    client = docker.from_env()
    return client, build_office_image(client)


@pytest.fixture(params=["docker", "compose"])
def lab_office(request, office, tmp_path):
    """The service's container (demo service + LibreOffice) as a Docker container or as a
    Compose service, another container, a host decoy."""
    from runbook_remediation.lab.lab import demo_service_source

    client, image = office
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    demo = str(demo_service_source())
    command = ["python3", "/opt/runbook-demo/demo_service.py", "--port", str(port), "--log-dir", "/tmp/demo",
               "--workload-rps", "0"]
    description = {"name": "office", "manager": request.param, "health_url": f"http://127.0.0.1:{port}/health",
                   "user": "65534"}
    project_dir = None
    if request.param == "docker":
        service = client.containers.run(image, command, name=f"runbook-office-svc-{tag}", detach=True,
                                        network_mode="host",
                                        volumes={demo: {"bind": "/opt/runbook-demo/demo_service.py", "mode": "ro"}})
        description["container"] = service.name
    else:
        # No `name:` and no `project`: Compose names the project after the directory, lowercased
        # and without the dot ("runbookoffice-<tag>"), and the cleanup must find it by that name.
        project_dir = tmp_path / f"Runbook.Office-{tag}"
        project_dir.mkdir()
        (project_dir / "compose.yaml").write_text(yaml.safe_dump({"services": {"office": {
            "image": image, "command": command, "network_mode": "host",
            "volumes": [f"{demo}:/opt/runbook-demo/demo_service.py:ro"]}}}), encoding="utf-8")
        subprocess.run(["docker", "compose", "up", "--detach", "--no-build"], cwd=project_dir, check=True,
                       capture_output=True)
        service = client.containers.get(f"runbookoffice-{tag}-office-1")
        description["project_src"] = str(project_dir)
    other = client.containers.run(image, ["sleep", "900"], name=f"runbook-office-other-{tag}", detach=True,
                                  network_mode="host")
    host_procs: list[subprocess.Popen] = []
    cleanup: list[Path] = []
    try:
        wait_for(lambda: http_status(description["health_url"]) == 200, timeout=30, what="office service")
        yield {"client": client, "service": service, "other": other, "health": description["health_url"],
               "description": description, "host_procs": host_procs, "tmp": tmp_path, "cleanup": cleanup}
    finally:
        for proc in host_procs:  # each in a session (process group) of its own
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for made in (service, other):
            made.remove(force=True)
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


def start_in(container, port: int, name: str) -> None:
    container.exec_run(soffice_argv(port, f"/tmp/lo-{name}"), user="nobody", environment={"HOME": "/tmp"},
                       detach=True)


def inventory(env: dict) -> Path:
    path = env["tmp"] / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"office-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [env["description"]]}}}}), encoding="utf-8")
    return path


def test_only_the_service_containers_stale_instances_are_stopped(lab_office):
    env = lab_office
    stale = [free_port(), free_port()]
    other_port, host_port = free_port(), free_port()
    for index, port in enumerate(stale):
        start_in(env["service"], port, f"stale{index}")
    start_in(env["other"], other_port, "other")
    # pytest's tmp_path is root's alone: nobody's profile goes where nobody can reach it.
    host_profile = Path(tempfile.mkdtemp(prefix="runbook-office-host-"))
    env["cleanup"].append(host_profile)
    host_profile.chmod(0o755)
    os.chown(host_profile, 65534, 65534)
    env["host_procs"].append(subprocess.Popen(
        soffice_argv(host_port, str(host_profile)), user=65534, group=65534, start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(host_profile)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    # Calls itself soffice.bin, but its executable is sleep: never matched.
    env["service"].exec_run(["bash", "-c", "exec -a soffice.bin sleep 900"], user="nobody", detach=True)
    for port in [*stale, other_port, host_port]:
        wait_for(lambda port=port: greets(port), timeout=60, what=f"LibreOffice listening on {port}")
    time.sleep(MAX_AGE + 1)  # every instance is now past max_age
    extra = {"soffice_cleanup_max_age": MAX_AGE, "soffice_cleanup_max_count": -1, "soffice_cleanup_grace": 3}
    inv = inventory(env)
    argv = ["run", "soffice-leak", "-i", str(inv), "-l", "office-host", "--service", "office"]

    code, payload = run_json(*argv, "--check", extra=extra)
    assert code == 0, payload
    assert payload["hosts"]["office-host"]["outcome"] == "planned", payload["hosts"]["office-host"]
    assert all(greets(port) for port in [*stale, other_port, host_port])

    code, payload = run_json(*argv, extra=extra)
    assert code == 0, payload
    result = payload["hosts"]["office-host"]
    assert result["outcome"] == "remediated", result
    assert f"container {env['service'].name}" in result["message"], result["message"]
    wait_for(lambda: not any(greets(port) for port in stale), timeout=15, what="the stale instances gone")
    assert greets(other_port), "LibreOffice in another container was touched"
    assert greets(host_port), "LibreOffice on the Docker host was touched"
    decoy = env["service"].exec_run(["pgrep", "-f", "^soffice.bin 900$"])
    assert decoy.exit_code == 0, "the process that only calls itself soffice.bin was touched"
    assert http_status(env["health"]) == 200

    code, payload = run_json(*argv, extra=extra)
    assert code == 4, json.dumps(payload)[:2000]  # nothing stale left in the container


@pytest.mark.parametrize(("description", "words"), [
    ({"manager": "docker"}, "(manager docker) needs 'container'"),
    ({"manager": "compose", "project_src": "srv/office"}, "(with project_src, an absolute path)"),
])
def test_a_container_service_it_cannot_scope_is_bad_input(tmp_path, description, words):
    """Checked before anything is reached: no container, no lab needed."""
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"office-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [{"name": "office", "health_url": "http://127.0.0.1:9/health", **description}]}}}}),
        encoding="utf-8")
    code, payload = run_json("run", "soffice-leak", "-i", str(path), "-l", "office-host", "--service", "office")
    assert code == 2, payload
    message = payload["hosts"]["office-host"]["message"]
    assert words in message and "\n" not in message, message
