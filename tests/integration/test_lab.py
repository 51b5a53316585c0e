"""The lab, end to end: real containers, systemd, Prometheus and Alertmanager."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import http_status, restore_host, runbook, wait_for

pytestmark = pytest.mark.lab


def test_up_is_healthy_and_status_reports_everything(lab):
    result = runbook("-o", "json", "lab", "status")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    names = {h["name"]: h for h in status["hosts"]}
    assert set(names) == {"lab-1", "lab-2", "lab-docker", "lab-compose"}
    assert all(h["healthy"] for h in names.values()), names
    assert [names[n]["manager"] for n in ("lab-1", "lab-docker", "lab-compose")] == ["systemd", "docker", "compose"]
    for host in names.values():
        assert host["health_url"].startswith("http://127.0.0.1:")
        assert http_status(host["metrics_url"]) == 200
    assert status["prometheus"]["running"] and status["alertmanager"]["running"]
    assert http_status(status["prometheus"]["url"] + "/-/ready") == 200
    assert http_status(status["alertmanager"]["url"] + "/-/ready") == 200

    inventory = yaml.safe_load(Path(status["inventory"]).read_text())
    systemd_hosts = inventory["all"]["children"]["lab"]["children"]["lab_systemd"]["hosts"]
    assert systemd_hosts["lab-1"]["ansible_connection"] == "community.docker.docker"
    service = systemd_hosts["lab-1"]["runbook_services"][0]
    assert service["unit"] == "runbook-demo.service" and service["health_url"] == names["lab-1"]["health_url"]


def test_demo_service_runs_under_systemd_with_logs_under_var_log(lab):
    container = lab.client.containers.get(lab.host("lab-1").container)
    active = container.exec_run(["systemctl", "is-active", "runbook-demo.service"]).output.decode().strip()
    assert active == "active"
    user = container.exec_run(["systemctl", "show", "-p", "User", "--value", "runbook-demo.service"])
    assert user.output.decode().strip() == "runbook-demo"
    log = container.exec_run(["cat", "/var/log/runbook-demo/app.log"]).output.decode()
    assert "starting" in log


def test_second_up_changes_nothing(lab):
    assert lab.up(hosts=2) == []


def test_crash_fails_health_and_fires_service_down(lab):
    host = lab.host("lab-2")
    result = runbook("lab", "break", "crash", "--host", "lab-2")
    assert result.returncode == 0, result.stderr
    try:
        wait_for(lambda: http_status(host.health_url) is None, timeout=10, what="lab-2 health to fail")
        state = lab.state()
        alerts_url = f"http://127.0.0.1:{state.alertmanager_port}/api/v2/alerts?filter=alertname%3D%22ServiceDown%22"

        def service_down_firing():
            import urllib.request

            with urllib.request.urlopen(alerts_url, timeout=2) as response:
                alerts = json.load(response)
            return [a for a in alerts if a["labels"].get("host") == "lab-2" and a["status"]["state"] == "active"]

        firing = wait_for(service_down_firing, timeout=15, what="ServiceDown for lab-2 in Alertmanager")
        assert firing[0]["labels"]["severity"] == "critical"
        assert firing[0]["labels"]["service"] == "demo"
    finally:
        restore_host(lab, "lab-2")


def test_nothing_listens_outside_loopback(lab):
    """Every listener of the lab (Prometheus, Alertmanager, demo services) is on 127.0.0.1."""
    out = subprocess.run(["ss", "-H", "-l", "-t", "-n", "-p"], capture_output=True, text=True, check=True).stdout
    state = lab.state()
    lab_ports = {h.port for h in state.hosts} | {state.prometheus_port, state.alertmanager_port}
    ours = ("prometheus", "alertmanager", "demo_service")
    offenders = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3]
        port = int(local.rsplit(":", 1)[1])
        if port in lab_ports or any(name in line for name in ours):
            if not local.startswith("127.0.0.1:"):
                offenders.append(line)
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lab", "break", "explode", "--host", "lab-1"], "unknown fault 'explode'"),
        (["lab", "break", "crash", "--host", "nope"], "unknown lab host 'nope'"),
        (["lab", "up", "--hosts", "0"], "--hosts must be between 1 and 20"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(lab, args, message):
    result = runbook(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert lab.up(hosts=2) == []  # nothing changed


def test_unreachable_dockerd_is_one_line_and_leaves_nothing(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "RUNBOOK_STATE_DIR": str(tmp_path / "state"),
           "RUNBOOK_LAB_NAME": "test-nodocker"}
    result = runbook("lab", "up", env=env)
    assert result.returncode == 5, result.stderr
    assert result.stderr.splitlines()[0] == f"runbook: error: cannot reach the Docker engine at {env['DOCKER_HOST']}"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "lab" / "lab.json").exists()


def test_failed_up_leaves_nothing_half_made(tmp_path, monkeypatch):
    """Prometheus missing after the containers were made: every container goes again."""
    from runbook_remediation.errors import Unavailable
    from runbook_remediation.lab import monitoring
    from runbook_remediation.lab.lab import LABEL, Lab, docker_client

    monkeypatch.setenv("RUNBOOK_LAB_NAME", "test-halfmade")
    monkeypatch.setattr(monitoring, "PROMETHEUS_BIN", "prometheus-that-does-not-exist")
    the_lab = Lab(tmp_path)
    with pytest.raises(Unavailable, match="is not installed"):
        the_lab.up(hosts=1)
    left = docker_client().containers.list(all=True, filters={"label": f"{LABEL}=test-halfmade"})
    assert left == []
    assert not the_lab.state_path.exists()
    # Alertmanager had started: it was stopped with the rest.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", leftover.stdout


def test_down_removes_containers_processes_and_files(tmp_path, monkeypatch):
    from runbook_remediation.lab.lab import LABEL, Lab, docker_client
    from runbook_remediation.lab.monitoring import _pid_alive

    monkeypatch.setenv("RUNBOOK_LAB_NAME", "test-down")
    the_lab = Lab(tmp_path)
    the_lab.up(hosts=1)
    state = the_lab.state()
    pids = [(state.prometheus_pid, "prometheus"), (state.alertmanager_pid, "alertmanager")]
    assert all(_pid_alive(pid, marker) for pid, marker in pids)
    the_lab.down()
    assert docker_client().containers.list(all=True, filters={"label": f"{LABEL}=test-down"}) == []
    assert not any(_pid_alive(pid, marker) for pid, marker in pids)
    assert not the_lab.dir.exists()
    assert the_lab.status() == {"up": False, "hosts": [], "state_dir": str(the_lab.dir)}


def test_heal_undoes_faults_and_remediation_drop_ins(lab):
    container = lab.client.containers.get(lab.host("lab-1").container)
    dropin = "/etc/systemd/system/runbook-demo.service.d/runbook-memory.conf"
    script = f"mkdir -p {dropin.rsplit('/', 1)[0]} && printf '[Service]\\nMemoryMax=1G\\n' > {dropin}"
    container.exec_run(["sh", "-c", script])
    assert runbook("lab", "break", "crash-loop", "--host", "lab-1").returncode == 0
    wait_for(lambda: http_status(lab.host("lab-1").health_url) is None, timeout=10, what="lab-1 down")
    result = runbook("lab", "heal", "--host", "lab-1")
    assert result.returncode == 0, result.stderr
    assert http_status(lab.host("lab-1").health_url) == 200
    assert container.exec_run(["test", "-e", dropin]).exit_code != 0
    memory = container.exec_run(["systemctl", "show", "-p", "MemoryMax", "--value", "runbook-demo.service"])
    assert memory.output.decode().strip() == str(128 * 1024 * 1024)
