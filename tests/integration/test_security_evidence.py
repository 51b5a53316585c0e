"""security-evidence on the real lab: an archive on the controller whose manifest verifies,
the archive's hash in the incident timeline, and a host left exactly as it was."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from runbook_remediation.lab.lab import demo_service_source
from tests.conftest import run_json

pytestmark = pytest.mark.lab

MARKER = "/run/.runbook-evidence-test"  # on a tmpfs: creating it changes nothing the test looks at
# What the demo service itself writes while it runs (its workload, its logs).
SERVICE_WRITES = ("/var/lib/runbook-demo", "/var/log/runbook-demo")


def sh(lab, name: str, script: str) -> str:
    container = lab.client.containers.get(lab.host(name).container)
    result = container.exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output
    return result.output.decode()


def processes(lab, name: str) -> set[str]:
    """The host's long-lived processes (pid and command), without the probes' own."""
    out = sh(lab, name, "ps -e -o pid=,args=")
    return {" ".join(line.split()) for line in out.splitlines() if not any(
        word in line for word in ("ps -e", "sh -c"))}


def check_archive(result: dict) -> dict[str, bytes]:
    """The archive's hash, its sidecar and every member's manifest line agree; returns the members."""
    evidence = result["evidence"]
    archive = Path(evidence["archive"])
    data = archive.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest == evidence["sha256"] == result["verification"]["sha256"]
    assert Path(f"{archive}.sha256").read_text().split() == [digest, archive.name]
    assert (archive.stat().st_mode & 0o777) == 0o600
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest = dict(reversed(line.split("  ", 1)) for line in members.pop("MANIFEST.sha256").decode().splitlines())
    assert manifest == {name: hashlib.sha256(body).hexdigest() for name, body in members.items()}
    assert manifest == evidence["manifest"]
    return members


def test_evidence_bundle_systemd_and_container_host_unchanged(lab, lab_env):
    sh(lab, "lab-1", f"touch {MARKER}")
    before = processes(lab, "lab-1")
    tmp_before = sh(lab, "lab-1", "ls -A /tmp")
    unit = "/etc/systemd/system/runbook-demo.service"
    unit_mtime = sh(lab, "lab-1", f"stat -c %Y {unit}")

    code, payload = run_json("run", "security-evidence", "-l", "lab-1,lab-docker")
    assert code == 0, payload

    # systemd host: every collector ran, the checksums name the unit and the service's script.
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "remediated", result
    members = check_archive(result)
    for item in ("processes", "sockets", "open_files", "users", "auth_log", "security_log", "unit_show",
                 "unit_status", "service_journal", "checksums", "collection"):
        assert any(name.startswith(f"lab-1/{item}.") for name in members), (item, sorted(members))
    assert b"demo_service.py" in members["lab-1/processes.txt"]
    assert b"LISTEN" in members["lab-1/sockets.txt"]
    sums = {c["path"]: c for c in result["evidence"]["checksums"]}
    script = "/opt/runbook-demo/demo_service.py"
    assert sums[script]["sha256"] == hashlib.sha256(demo_service_source().read_bytes()).hexdigest()
    assert unit in sums
    meta = json.loads(members["lab-1/collection.json"])
    assert meta["host"] == "lab-1" and meta["service"] == "demo"

    # Docker service: collected inside its container, its environment reduced to names.
    docker = payload["hosts"]["lab-docker"]
    assert docker["outcome"] == "remediated", docker
    dmembers = check_archive(docker)
    inspect = json.loads(dmembers["lab-docker/container_inspect.txt"])
    assert all(env.endswith("=(not kept)") for env in inspect["Config"]["Env"])
    assert "docker exec" in next(i["source"] for i in docker["evidence"]["items"] if i["name"] == "processes")

    # The timeline has the archive's hash, on the task row of the run (chain of custody).
    with sqlite3.connect(Path(lab_env["RUNBOOK_STATE_DIR"]) / "timeline.db") as db:
        rows = [r[0] for r in db.execute("SELECT message FROM events WHERE run_id = ?", (payload["run_id"],))]
    assert any(result["evidence"]["sha256"] in (row or "") for row in rows), rows

    # The host is as it was: no file changed outside what the service itself writes, no
    # process left behind, the unit file untouched. (/tmp's own mtime moves: Ansible's module
    # wrapper unpacks its payload to a temporary directory it removes; nothing is left in /tmp.)
    prune = " ".join(f"-path {p} -prune -o" for p in ("/proc", "/sys", *SERVICE_WRITES))
    changed = sh(lab, "lab-1", f"find / -xdev {prune} -newer {MARKER} ! -path /tmp -print").split()
    assert changed == [], changed
    assert sh(lab, "lab-1", "ls -A /tmp") == tmp_before
    assert sh(lab, "lab-1", f"stat -c %Y {unit}") == unit_mtime
    assert processes(lab, "lab-1") == before


def test_evidence_in_check_mode_and_bad_input(lab):
    code, payload = run_json("run", "security-evidence", "-l", "lab-1", "--check")
    assert code == 0, payload
    check_archive(payload["hosts"]["lab-1"])

    # A path is data: a template in it is never rendered, it is refused like a relative
    # path or one with '..' (one run for all three: each run costs seconds in CI).
    for paths in (["/etc/../etc/shadow", "etc/passwd", "{{ lookup('pipe', 'touch /tmp/runbook-pwned') }}"],):
        code, payload = run_json("run", "security-evidence", "-l", "lab-1", extra={"security_evidence_paths": paths})
        assert code == 2, payload
        assert "absolute paths" in payload["hosts"]["lab-1"]["message"]
    assert not Path("/tmp/runbook-pwned").exists()
