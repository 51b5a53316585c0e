"""prometheus-retention against a real Prometheus (this machine's binary, run in a lab-image
container, host network, a free port) whose TSDB holds blocks backfilled with promtool at 40,
20 and 1 days ago under a 60d retention. Lowered to 15d -> the container (Docker) or the
Compose service is recreated with the new flag, everything else kept; Prometheus drops the two
old blocks as it opens its TSDB, the storage shrinks; a second run has nothing to do; check
mode, a time below the floor and a bad duration change nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_json, runbook, wait_for
from tests.postgres import free_port

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not PROMETHEUS or not PROMTOOL, reason="needs prometheus and promtool on this host"),
]


def backfill(data: Path, days_ago: tuple[int, ...] = (40, 20, 1)) -> None:
    """One 2-hour block per entry of DAYS_AGO (promtool tsdb create-blocks-from openmetrics)."""
    now = time.time()
    lines = ["# HELP runbook_backfill A backfilled series.", "# TYPE runbook_backfill gauge"]
    for days in days_ago:
        start = now - days * 86400
        start -= start % 7200
        lines += [f'runbook_backfill{{job="backfill"}} {step} {start + step:.3f}' for step in range(0, 7200, 15)]
    source = data.parent / "backfill.om"
    source.write_text("\n".join([*lines, "# EOF"]) + "\n", encoding="utf-8")
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                   capture_output=True, check=True)


def status(url: str) -> tuple[dict, int]:
    """The retention flags and the storage's size in bytes."""
    with urllib.request.urlopen(f"{url}/api/v1/status/flags", timeout=5) as response:
        flags = json.loads(response.read())["data"]
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    size = next(int(float(line.split()[1])) for line in metrics.splitlines()
                if line.startswith("prometheus_tsdb_storage_blocks_bytes "))
    return {k: v for k, v in flags.items() if k.startswith("storage.tsdb.retention.")}, size


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def lab_image():
    import docker

    from runbook_remediation.lab.image import build_image

    client = docker.from_env()
    return client, build_image(client)


@pytest.fixture(params=["docker", "compose"])
def prometheus(request, lab_image, tmp_path):
    client, image = lab_image
    data = tmp_path / "data"
    data.mkdir()
    backfill(data)
    (tmp_path / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n", encoding="utf-8")
    port, tag = free_port(), uuid.uuid4().hex[:8]
    url = f"http://127.0.0.1:{port}"
    command = ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
               f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=60d"]
    mounts = [f"{PROMETHEUS}:/usr/bin/prometheus:ro",
              f"{tmp_path / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro", f"{data}:/prometheus"]
    service = {"name": "prometheus", "manager": request.param, "health_url": f"{url}/-/ready",
               "prometheus": {"retention_floor": "2d"}}
    project = tmp_path / "project"
    if request.param == "docker":
        container = client.containers.run(image, command, name=f"runbook-prom-{tag}", detach=True, network_mode="host",
                                          volumes=mounts, labels={"runbook.test": "prometheus-retention"})
        service["container"] = container.name
    else:
        project.mkdir()
        (project / "compose.yaml").write_text(yaml.safe_dump({"services": {"prometheus": {
            "image": image, "network_mode": "host", "command": command, "volumes": mounts}}}), encoding="utf-8")
        subprocess.run(["docker", "compose", "--project-directory", str(project), "-p", f"runbook-prom-{tag}",
                        "up", "-d"], capture_output=True, text=True, check=True)
        service.update({"project_src": str(project), "project": f"runbook-prom-{tag}", "compose_service": "prometheus"})
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"prom-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [service]}}}}), encoding="utf-8")
    try:
        wait_for(lambda: ready(url), timeout=30, what="Prometheus in its container")
        yield {"manager": request.param, "url": url, "inventory": inventory, "data": data, "project": project,
               "name": service.get("container") or f"runbook-prom-{tag}-prometheus-1"}
    finally:
        if request.param == "docker":
            for made in client.containers.list(all=True, filters={"name": f"runbook-prom-{tag}"}):
                made.remove(force=True)
        else:
            subprocess.run(["docker", "compose", "--project-directory", str(project), "-p", f"runbook-prom-{tag}",
                            "down", "--timeout", "1"], capture_output=True, check=False)


def run(env: dict, *args: str, extra: dict | None = None) -> tuple[int, dict]:
    code, payload = run_json("run", "prometheus-retention", "-i", str(env["inventory"]), "-l", "prom-host",
                             "--service", "prometheus", *args, extra=extra)
    return code, payload["hosts"].get("prom-host", payload)


def test_lower_retention_drops_the_old_blocks(prometheus):
    env = prometheus
    flags, before = status(env["url"])
    assert flags["storage.tsdb.retention.time"] == "60d" and len(list(env["data"].glob("01*"))) == 3

    code, result = run(env, "--check", "--yes", extra={"prometheus_retention_time": "15d"})
    assert (code, result["outcome"]) == (0, "planned"), result
    assert status(env["url"]) == (flags, before)

    code, result = run(env, "--yes", extra={"prometheus_retention_time": "15d"})
    assert (code, result["outcome"]) == (0, "remediated"), result
    flags, after = status(env["url"])
    assert flags["storage.tsdb.retention.time"] == "15d"
    assert after < before and result["verification"]["freed_bytes"] == before - after
    assert len([block for block in env["data"].glob("01*") if block.is_dir()]) == 1  # the 1-day-old block is kept
    if env["manager"] == "compose":
        override = yaml.safe_load((env["project"] / "compose.override.yaml").read_text())
        assert "--storage.tsdb.retention.time=15d" in override["services"]["prometheus"]["command"]
        assert "--storage.tsdb.retention.time=60d" not in override["services"]["prometheus"]["command"]

    code, result = run(env, "--yes", extra={"prometheus_retention_time": "15d"})
    assert (code, result["outcome"]) == (4, "healthy"), result


@pytest.mark.parametrize(("extra", "words"), [
    ({"prometheus_retention_time": "1d"}, "below the floor of 2d"),
    ({"prometheus_retention_time": "15 days"}, "prometheus_retention_time must be a duration such as 15d"),
    ({}, "say what to lower"),
])
def test_bad_requests_change_nothing(prometheus, extra, words):
    env = prometheus
    before = status(env["url"])
    result = runbook("-o", "json", "run", "prometheus-retention", "-i", str(env["inventory"]), "-l", "prom-host",
                     "--service", "prometheus", "--yes", *(["-e", json.dumps(extra)] if extra else []))
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stdout + result.stderr
    assert status(env["url"]) == before


def test_a_systemd_prometheus_gets_the_flag_in_its_args_file(lab, tmp_path):
    """Debian's way on a lab systemd host: `prometheus $ARGS`, ARGS from an EnvironmentFile."""
    import io
    import tarfile

    host = lab.host("lab-2")
    container = lab.client.containers.get(host.container)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    data.mkdir()
    backfill(data)
    args = (f"--config.file=/etc/runbook-prometheus.yml --storage.tsdb.path=/var/lib/runbook-prometheus "
            f"--web.listen-address=127.0.0.1:{port} --storage.tsdb.retention.time=60d")
    files = {
        "etc/runbook-prometheus.yml": "global:\n  scrape_interval: 15s\n",
        "etc/default/runbook-prometheus": f'# Set the command-line arguments to pass to the server.\nARGS="{args}"\n',
        "etc/systemd/system/runbook-prometheus.service": (
            "[Unit]\nDescription=Prometheus (prometheus-retention test)\n[Service]\n"
            "EnvironmentFile=/etc/default/runbook-prometheus\nExecStart=/usr/bin/prometheus $ARGS\n"),
    }
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text.encode()), 0o644
            tar.addfile(info, io.BytesIO(text.encode()))
        tar.add(PROMETHEUS, arcname="usr/local/lib/runbook-test/prometheus")
        tar.add(data, arcname="var/lib/runbook-prometheus")
    container.put_archive("/", archive.getvalue())
    unit = "runbook-prometheus.service"
    setup = ("ln -sf /usr/local/lib/runbook-test/prometheus /usr/bin/prometheus && systemctl daemon-reload "
             f"&& systemctl start {unit}")
    assert container.exec_run(["sh", "-c", setup]).exit_code == 0
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"lab-2": {
        "ansible_connection": "community.docker.docker", "ansible_host": host.container,
        "ansible_python_interpreter": "/usr/bin/python3",
        "runbook_services": [{"name": "prometheus", "manager": "systemd", "unit": unit, "health_url": f"{url}/-/ready",
                              "prometheus": {"args_file": "/etc/default/runbook-prometheus",
                                             "retention_floor": "2d"}}]}}}}), encoding="utf-8")
    try:
        wait_for(lambda: ready(url), timeout=30, what="Prometheus on lab-2")
        _flags, before = status(url)
        code, payload = run_json("run", "prometheus-retention", "-i", str(inventory), "-l", "lab-2", "--service",
                                 "prometheus", "--yes", extra={"prometheus_retention_time": "15d"})
        result = payload["hosts"]["lab-2"]
        assert (code, result["outcome"]) == (0, "remediated"), result
        flags, after = status(url)
        assert flags["storage.tsdb.retention.time"] == "15d" and after < before
        written = container.exec_run(["cat", "/etc/default/runbook-prometheus"]).output.decode()
        assert "--storage.tsdb.retention.time=15d" in written and "60d" not in written
        assert written.startswith("# Set the command-line")  # the rest of the file is kept

        code, payload = run_json("run", "prometheus-retention", "-i", str(inventory), "-l", "lab-2", "--service",
                                 "prometheus", "--yes", extra={"prometheus_retention_time": "15d"})
        assert code == 4, payload
    finally:
        container.exec_run(["sh", "-c", f"systemctl stop {unit}; rm -rf /etc/systemd/system/{unit} /usr/bin/prometheus "
                            "/usr/local/lib/runbook-test /var/lib/runbook-prometheus /etc/runbook-prometheus.yml "
                            "/etc/default/runbook-prometheus*; systemctl daemon-reload"])
