"""fd-exhaustion end to end on the real lab: a descriptor leak hits the service's nofile
limit (1024 on every lab service), the scenario raises it where the service gets it and
the new process's /proc/PID/limits shows it; the platform ceiling (20000 here: systemd's
and dockerd's own hard limit) refuses more."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import restore_host, run, run_json, runbook, wait_for

pytestmark = pytest.mark.lab

UNIT = "runbook-demo.service"
DROPIN = f"/etc/systemd/system/{UNIT}.d/runbook-limits.conf"
PAM_FILE = "/etc/security/limits.d/runbook-remediation.conf"
BUDGET = f"/var/lib/runbook-remediation/restarts-demo@{UNIT}.json"
LAB_NOFILE = 1024  # what the lab gives every demo service
CEILING = 20000  # dockerd's hard limit on this kind of machine, inherited by systemd in the lab hosts
OVERRIDES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
             "docker-compose.override.yaml")


def health(url: str) -> dict:
    """The /health body, also when it answers 503; {} when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return {}
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def files_status(url: str) -> str:
    components = {c.get("name"): c.get("status") for c in health(url).get("components", [])}
    return components.get("files", "unknown")


def leak(lab, name: str) -> None:
    """The incident: leak descriptors until the service is at its limit."""
    result = runbook("lab", "break", "fd-leak", "--host", name, "-p", "per_second=200")
    assert result.returncode == 0, result.stderr
    url = lab.host(name).health_url
    wait_for(lambda: files_status(url) == "unhealthy", timeout=30, what=f"{name} out of file descriptors")


def limits_text(lab, name: str) -> tuple[int, str]:
    """(main pid, /proc/PID/limits) of the service on a lab host."""
    host = lab.host(name)
    container = lab.client.containers.get(host.container)
    if host.manager == "systemd":
        pid = int(container.exec_run(["systemctl", "show", "-p", "MainPID", "--value", UNIT]).output.decode())
        return pid, container.exec_run(["cat", f"/proc/{pid}/limits"]).output.decode()
    pid = container.attrs["State"]["Pid"]  # the Docker host is this machine
    return pid, Path(f"/proc/{pid}/limits").read_text()


def nofile(lab, name: str) -> tuple[int, int, int]:
    """(pid, soft, hard) nofile of the service's main process, from /proc."""
    pid, text = limits_text(lab, name)
    line = next(line for line in text.splitlines() if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return pid, int(soft), int(hard)


def exec_out(lab, name: str, *argv: str) -> tuple[int, str]:
    result = lab.client.containers.get(lab.host(name).container).exec_run(list(argv))
    return result.exit_code, result.output.decode()


def container_ulimits(lab, name: str) -> list:
    return lab.client.containers.get(lab.host(name).container).attrs["HostConfig"]["Ulimits"]


@pytest.fixture
def systemd_host(lab):
    """lab-1, put back as the lab made it afterwards (`lab heal` keeps drop-ins)."""
    name = "lab-1"
    yield name
    exec_out(lab, name, "rm", "-rf", os.path.dirname(DROPIN), PAM_FILE, BUDGET)
    exec_out(lab, name, "systemctl", "daemon-reload")
    restore_host(lab, name)
    assert nofile(lab, name)[1] == LAB_NOFILE


@pytest.fixture
def container_host(lab, request):
    """lab-docker / lab-compose, recreated as the lab made them afterwards."""
    name = request.param
    yield name
    for override in OVERRIDES:
        for path in lab.compose_dir.glob(f"{override}*"):
            path.unlink()
    restore_host(lab, name)
    assert nofile(lab, name)[1] == LAB_NOFILE


def test_systemd_leak_gets_a_drop_in_then_nothing_to_do(lab, systemd_host):
    leak(lab, systemd_host)
    pid_before, soft, _hard = nofile(lab, systemd_host)
    assert soft == LAB_NOFILE

    code, payload = run_json("run", "fd-exhaustion", "-l", systemd_host)
    assert code == 0, payload
    result = payload["hosts"][systemd_host]
    assert result["outcome"] == "remediated", result
    evidence = result["evidence"]
    assert evidence["before"]["nofile"] == {"soft": LAB_NOFILE, "hard": LAB_NOFILE}
    assert evidence["before"]["open_fds"] >= 0.9 * LAB_NOFILE
    assert any("Too many open files" in line for line in evidence["log_lines"])
    assert evidence["ceilings"]["nofile"]["value"] == CEILING
    assert "systemd (pid 1)" in evidence["ceilings"]["nofile"]["reason"]
    assert evidence["metrics"]["process_max_fds"] == LAB_NOFILE
    assert result["actions"][0].startswith(f"wrote {DROPIN} (LimitNOFILE=2048:2048)")
    assert result["verification"]["healthy"] is True
    assert result["verification"]["limits_applied"] is True

    pid, soft, hard = nofile(lab, systemd_host)
    assert (soft, hard) == (2048, 2048)  # the new process has it
    assert pid != pid_before and result["evidence"]["after"]["pid"] == pid
    assert "LimitNOFILE=2048:2048" in exec_out(lab, systemd_host, "cat", DROPIN)[1]
    assert files_status(lab.host(systemd_host).health_url) == "healthy"

    code, payload = run_json("run", "fd-exhaustion", "-l", systemd_host)
    assert code == 4, payload
    assert payload["hosts"][systemd_host]["outcome"] == "healthy"
    assert nofile(lab, systemd_host)[0] == pid  # not restarted again


def test_check_mode_plans_and_changes_nothing(lab, systemd_host):
    leak(lab, systemd_host)
    before = nofile(lab, systemd_host)
    code, payload = run_json("run", "fd-exhaustion", "-l", systemd_host, "--check")
    assert code == 0, payload
    result = payload["hosts"][systemd_host]
    assert result["outcome"] == "planned" and result["check_mode"] is True
    assert result["message"].startswith("planned: would raise demo's nofile 1024:1024 -> 2048:2048")
    assert result["actions"][0].startswith(f"would write {DROPIN}")
    assert nofile(lab, systemd_host) == before  # same process, same limit
    assert exec_out(lab, systemd_host, "test", "-e", os.path.dirname(DROPIN))[0] != 0
    assert exec_out(lab, systemd_host, "test", "-e", BUDGET)[0] != 0

    result = runbook("-o", "json", "diagnose", "fd-exhaustion", "-l", systemd_host)
    assert result.returncode == 0, result.stderr
    diagnosis = json.loads(result.stdout)["hosts"][systemd_host]
    assert any("file descriptors open" in finding for finding in diagnosis["findings"])
    assert nofile(lab, systemd_host) == before


@pytest.mark.parametrize(("name", "who"), [("lab-1", "systemd (pid 1)"), ("lab-docker", "dockerd")])
def test_requested_limit_above_the_ceiling_is_refused(lab, name, who):
    container_id = lab.client.containers.get(lab.host(name).container).id
    before = nofile(lab, name)
    code, payload = run_json("run", "fd-exhaustion", "-l", name, "-e", json.dumps({"ulimit_raise_nofile": 50000}))
    assert code == 2, payload
    result = payload["hosts"][name]
    assert result["error_kind"] == "input"
    assert result["message"].startswith(
        f"invalid input: requested nofile 50000 is above the platform ceiling {CEILING} (hard limit of {who}")
    assert "nothing was changed" in result["message"]
    assert result["actions"] == []
    assert nofile(lab, name) == before
    assert lab.client.containers.get(lab.host(name).container).id == container_id
    if name == "lab-1":
        assert exec_out(lab, name, "test", "-e", DROPIN)[0] != 0


@pytest.mark.parametrize("container_host", ["lab-docker"], indirect=True)
def test_docker_leak_recreates_the_container_with_the_new_ulimit(lab, container_host):
    old = lab.client.containers.get(lab.host(container_host).container)
    leak(lab, container_host)

    code, payload = run_json("run", "fd-exhaustion", "-l", container_host)
    assert code == 0, payload
    result = payload["hosts"][container_host]
    assert result["outcome"] == "remediated", result
    assert "recreated container" in result["actions"][0] and "Docker cannot change ulimits in place" in \
        result["actions"][0]
    assert "dockerd" in result["evidence"]["ceilings"]["nofile"]["reason"]

    new = lab.client.containers.get(lab.host(container_host).container)
    assert new.id != old.id  # recreated, same name
    assert container_ulimits(lab, container_host) == [{"Name": "nofile", "Soft": 2048, "Hard": 2048}]
    assert nofile(lab, container_host)[1:] == (2048, 2048)
    # everything but the ulimits is what it was
    for key in ("Cmd", "Image", "Env", "Labels", "StopSignal"):
        assert new.attrs["Config"][key] == old.attrs["Config"][key], key
    for key in ("Binds", "Tmpfs", "NetworkMode", "Memory", "MemorySwap"):
        assert new.attrs["HostConfig"][key] == old.attrs["HostConfig"][key], key
    assert files_status(lab.host(container_host).health_url) == "healthy"

    code, payload = run_json("run", "fd-exhaustion", "-l", container_host)
    assert code == 4, payload
    assert lab.client.containers.get(lab.host(container_host).container).id == new.id


@pytest.mark.parametrize("container_host", ["lab-compose"], indirect=True)
def test_compose_leak_extends_the_override_and_recreates_the_service(lab, container_host):
    # An override the project already has: its settings must survive the merge.
    existing = lab.compose_dir / "compose.override.yml"
    existing.write_text("services:\n  demo:\n    environment:\n      RUNBOOK_TEST: kept\n")
    up = run(["docker", "compose", "--project-directory", str(lab.compose_dir), "up", "--detach", "--no-build",
              "--pull", "never"])
    assert up.returncode == 0, up.stderr
    url = lab.host(container_host).health_url
    wait_for(lambda: files_status(url) == "healthy", what=f"{container_host} recreated with the override")
    leak(lab, container_host)

    code, payload = run_json("run", "fd-exhaustion", "-l", container_host)
    assert code == 0, payload
    result = payload["hosts"][container_host]
    assert result["outcome"] == "remediated", result
    assert result["actions"][0].startswith(f"merged ulimits nofile 1024:1024 -> 2048:2048 into {existing}")

    text = existing.read_text()
    assert "RUNBOOK_TEST: kept" in text and "soft: 2048" in text
    assert not (lab.compose_dir / "compose.override.yaml").exists()  # compose would load only one
    container = lab.client.containers.get(lab.host(container_host).container)
    assert "RUNBOOK_TEST=kept" in container.attrs["Config"]["Env"]
    assert container_ulimits(lab, container_host) == [{"Name": "nofile", "Soft": 2048, "Hard": 2048}]
    assert nofile(lab, container_host)[1:] == (2048, 2048)

    code, payload = run_json("run", "fd-exhaustion", "-l", container_host)
    assert code == 4, payload


def test_requested_limit_and_login_session_limits(lab, systemd_host):
    """A requested value applies without a leak; limits.d gives su sessions the same."""
    code, payload = run_json("run", "fd-exhaustion", "-l", systemd_host,
                             "-e", json.dumps({"ulimit_raise_nofile": 4096, "ulimit_raise_pam_limits": True}))
    assert code == 0, payload
    assert payload["hosts"][systemd_host]["outcome"] == "remediated"
    assert nofile(lab, systemd_host)[1:] == (4096, 4096)
    _code, out = exec_out(lab, systemd_host, "su", "-s", "/bin/sh", "runbook-demo", "-c", "ulimit -Sn; ulimit -Hn")
    assert out.split() == ["4096", "4096"]

    code, payload = run_json("run", "fd-exhaustion", "-l", systemd_host,
                             "-e", json.dumps({"ulimit_raise_nofile": 4096, "ulimit_raise_pam_limits": True}))
    assert code == 4, payload
