"""disk-full end to end on the real lab: a log flood fills the log filesystem, the scenario
frees it without touching anything outside the service's log directory, a second run has
nothing to do, check mode changes nothing, bad paths are bad input."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
import uuid

import pytest
from docker.errors import NotFound

from tests.conftest import http_status, restore_host, run_json, runbook, wait_for

pytestmark = pytest.mark.lab

LOG_DIR = "/var/log/runbook-demo"
DAY = 86400
TMP = '{"log_rotate_tmp_patterns": ["/tmp/ggen-mcp-*"]}'


def sh(lab, name: str, script: str) -> tuple[int, str]:
    """Run a shell script inside the host's container (the test's own setup and checks)."""
    container = lab.client.containers.get(lab.host(name).container)
    result = container.exec_run(["sh", "-c", script])
    return result.exit_code, result.output.decode(errors="replace").strip()


def exists(lab, name: str, path: str) -> bool:
    return sh(lab, name, f"test -e '{path}' || test -L '{path}'")[0] == 0


def usage(lab, name: str) -> int:
    code, out = sh(lab, name, f"df --output=pcent {LOG_DIR} | tail -n 1")
    assert code == 0, out
    return int(out.strip().rstrip("%"))


def snapshot(lab, name: str) -> str:
    """Every file the scenario could touch, with size, mtime and inode: equal means nothing changed.
    (Not /tmp's own mtime: Ansible's module transport creates and removes files there.)"""
    listing = "-xdev -printf '%p %s %T@ %i\\n' 2>/dev/null"
    return sh(lab, name, f"df -B1 --output=used {LOG_DIR}; "
                         f"find {LOG_DIR} /etc/logrotate.d /var/lib/runbook-remediation {listing}; "
                         f"find /tmp -mindepth 1 {listing}")[1]


def flood_until_full(lab, name: str) -> None:
    """log-flood until the log filesystem is full, then stop the flood (the disk stays full)."""
    host = lab.host(name)
    assert runbook("lab", "break", "log-flood", "--host", name, "-p", "mb_per_second=40").returncode == 0
    try:
        wait_for(lambda: usage(lab, name) >= 99, timeout=30, what=f"{LOG_DIR} on {name} full")
    finally:
        request = urllib.request.Request(f"http://127.0.0.1:{host.port}/faults/log-flood", method="DELETE")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200


def plant(lab, name: str, files: dict[str, int]) -> None:
    """Create files aged ``days`` (0: now), as the service's runbook would find them."""
    for path, days in files.items():
        code, out = sh(lab, name, f"mkdir -p \"$(dirname '{path}')\" && echo data > '{path}' && "
                                  f"touch -d '@{int(time.time()) - days * DAY}' '{path}'")
        assert code == 0, out


@pytest.fixture
def restore(lab):
    """Hosts a test used get their log directory emptied, what the role installed removed,
    and the demo service restarted (containers recreated)."""
    used: list[str] = []
    yield used.append
    for name in used:
        if lab.host(name).manager == "systemd":
            sh(lab, name, f"rm -rf /etc/logrotate.d/demo /var/lib/runbook-remediation/log-overflow "
                          f"/var/lib/runbook-remediation/logrotate-demo* /var/log/other /root/outside.log.1 "
                          f"/tmp/ggen-mcp-*; find {LOG_DIR} -mindepth 1 ! -name app.log -exec rm -rf {{}} +; "
                          f": > {LOG_DIR}/app.log")
        restore_host(lab, name)


def test_log_flood_is_freed_safely_then_nothing_to_do(lab, restore):
    restore("lab-1")
    plant(lab, "lab-1", {
        f"{LOG_DIR}/app.log.5.gz": 30,          # a rotated log past its age: goes
        "/var/log/other/app.log.3.gz": 30,       # same name, outside the configured paths: stays
        "/root/outside.log.1": 30,               # the target of a symlink in the log directory: stays
        "/tmp/ggen-mcp-old": 3,                  # a temp file past its age: goes
        "/tmp/ggen-mcp-new": 0,                  # a young temp file: stays
    })
    assert sh(lab, "lab-1", f"ln -s /root/outside.log.1 {LOG_DIR}/app.log.9 && "
                            f"touch -h -d '30 days ago' {LOG_DIR}/app.log.9")[0] == 0
    inode = sh(lab, "lab-1", f"stat -c %i {LOG_DIR}/app.log")[1]
    flood_until_full(lab, "lab-1")
    assert http_status(lab.host("lab-1").health_url) == 503  # the disk component says so

    code, payload = run_json("run", "disk-full", "-l", "lab-1", "-e", TMP)
    assert code == 0, payload
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "remediated", result
    assert any("100.0% full" in finding for finding in result["findings"])
    evidence = result["evidence"]
    (fs,) = evidence["usage"]
    assert fs["mount"] == LOG_DIR and fs["used_percent_before"] >= 99 and fs["used_percent_after"] < 80
    assert evidence["bytes_freed"] > 50 * 2**20
    removed = {item["path"] for item in evidence["removed"]}
    assert removed == {f"{LOG_DIR}/app.log.5.gz", "/tmp/ggen-mcp-old"}
    kept = {item["path"]: item["reason"] for item in evidence["kept"]}
    assert kept[f"{LOG_DIR}/app.log.9"].startswith("symbolic link to /root/outside.log.1")
    # No room for copytruncate's copy on a full filesystem: rotated into the overflow directory.
    assert evidence["rotation"]["mode"] == "overflow" and evidence["rotation"]["ran"] is True
    assert result["verification"]["under_threshold"] is True

    assert usage(lab, "lab-1") < 80
    for path in ("/var/log/other/app.log.3.gz", "/root/outside.log.1", f"{LOG_DIR}/app.log.9", "/tmp/ggen-mcp-new",
                 f"{LOG_DIR}/app.log", "/var/lib/runbook-remediation/log-overflow/demo/app.log.1.gz"):
        assert exists(lab, "lab-1", path), path
    assert not exists(lab, "lab-1", f"{LOG_DIR}/app.log.5.gz")
    assert sh(lab, "lab-1", "cat /root/outside.log.1")[1] == "data"
    # The live log is the same file (truncated in place), and the service still writes to it.
    assert sh(lab, "lab-1", f"stat -c %i {LOG_DIR}/app.log")[1] == inode
    wait_for(lambda: http_status(lab.host("lab-1").health_url) == 200, what="lab-1 healthy again")
    code, policy = sh(lab, "lab-1", "stat -c '%a %U' /etc/logrotate.d/demo && cat /etc/logrotate.d/demo")
    assert code == 0 and policy.startswith("644 root") and "su runbook-demo runbook-demo" in policy

    code, payload = run_json("run", "disk-full", "-l", "lab-1", "-e", TMP)
    assert code == 4, payload
    second = payload["hosts"]["lab-1"]
    assert second["outcome"] == "healthy" and second["actions"] == []


def test_check_mode_and_diagnose_change_nothing(lab, restore):
    restore("lab-2")
    plant(lab, "lab-2", {f"{LOG_DIR}/app.log.5.gz": 30})
    flood_until_full(lab, "lab-2")
    before = snapshot(lab, "lab-2")

    code, payload = run_json("run", "disk-full", "-l", "lab-2", "--check")
    assert code == 0, payload
    result = payload["hosts"]["lab-2"]
    assert result["outcome"] == "planned" and result["check_mode"] is True
    actions = " | ".join(result["actions"])
    assert "would install the logrotate policy" in actions
    assert f"would remove 1 file(s) past their age (4.00 KB): {LOG_DIR}/app.log.5.gz" in actions
    assert "would force a rotation" in actions
    assert snapshot(lab, "lab-2") == before

    result = runbook("-o", "json", "diagnose", "disk-full", "-l", "lab-2")
    assert result.returncode == 0, result.stderr
    assert any("100.0% full" in f for f in json.loads(result.stdout)["hosts"]["lab-2"]["findings"])
    assert snapshot(lab, "lab-2") == before
    assert usage(lab, "lab-2") >= 99


def test_no_room_to_rotate_fails_and_says_why(lab, restore):
    """Without an overflow directory a full log filesystem cannot be rotated: failed, with the figures."""
    restore("lab-2")
    flood_until_full(lab, "lab-2")
    code, payload = run_json("run", "disk-full", "-l", "lab-2", "-e", '{"log_rotate_overflow_dir": ""}')
    assert code == 1, payload
    result = payload["hosts"]["lab-2"]
    assert result["outcome"] == "failed"
    assert result["message"].startswith("failed: no room to rotate: copytruncate needs about"), result["message"]
    assert "no overflow directory is set" in result["message"]
    biggest = result["evidence"]["largest"][0]
    assert biggest["path"] == f"{LOG_DIR}/app.log" and biggest["open"] is True
    assert biggest["size"] > 60 * 2**20
    assert usage(lab, "lab-2") >= 99  # nothing was lost: the log is all still there


@pytest.mark.parametrize("name", ["lab-docker", "lab-compose"])
def test_container_logs_are_freed_inside_the_container(lab, restore, name):
    restore(name)
    flood_until_full(lab, name)
    code, payload = run_json("run", "disk-full", "-l", name)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["evidence"]["target"] == f"{name}.{lab.host(name).container}"
    assert usage(lab, name) < 80
    assert exists(lab, name, "/etc/logrotate.d/demo")  # inside the container
    assert not os.path.exists(f"{LOG_DIR}/app.log.1.gz")  # nothing on the Docker host

    code, payload = run_json("run", "disk-full", "-l", name)
    assert code == 4, payload


@pytest.mark.parametrize(
    ("logs", "why"),
    [
        ("/var/log/runbook-demo/../../etc/*.conf", "without '..'"),
        ("var/log/runbook-demo/*.log", "must be absolute"),
        ("/var/log/*/app.log", "in a literal directory"),
        ("/etc/*.conf", "too broad to clean"),  # refused by file_cleanup on the target
    ],
)
def test_bad_log_paths_are_bad_input(lab, logs, why):
    host = lab.host("lab-2")
    services = {"runbook_services": [{"name": "demo", "manager": "systemd", "unit": "runbook-demo.service",
                                      "health_url": host.health_url, "logs": [logs]}]}
    code, payload = run_json("run", "disk-full", "-l", "lab-2", "-e", json.dumps(services))
    assert code == 2, payload
    result = payload["hosts"]["lab-2"]
    assert result["message"].startswith("invalid input:") and why in result["message"], result["message"]
    assert not exists(lab, "lab-2", "/etc/logrotate.d/demo")


def test_docker_prune_only_when_enabled_and_scoped(lab, restore):
    restore("lab-docker")
    label = f"org.runbook.test=disk-full-{uuid.uuid4().hex[:8]}"
    image = lab.client.containers.get(lab.host("lab-docker").container).image
    stopped = lab.client.containers.create(image.id, command=["true"], labels=dict([label.split("=", 1)]))
    try:
        code, payload = run_json("run", "disk-full", "-l", "lab-docker")
        assert code in (0, 4), payload  # 0 when the (recreated) container lacked the policy
        assert payload["hosts"]["lab-docker"]["evidence"]["docker_prune"] == {}
        lab.client.containers.get(stopped.id)  # not pruned: off by default

        prune = {"log_rotate_docker_prune": True, "log_rotate_docker_prune_until": "0s",
                 "log_rotate_docker_prune_filters": {"label": [label]}}
        code, payload = run_json("run", "disk-full", "-l", "lab-docker", "-e", json.dumps(prune))
        assert code == 0, payload
        result = payload["hosts"]["lab-docker"]
        assert result["evidence"]["docker_prune"]["containers"] == [stopped.id]
        assert any(action.startswith("pruned unused Docker objects") for action in result["actions"])
        with pytest.raises(NotFound):
            lab.client.containers.get(stopped.id)
    finally:
        with contextlib.suppress(NotFound):
            stopped.remove(force=True)
