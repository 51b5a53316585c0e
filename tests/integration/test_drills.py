"""`runbook drill PROFILE` on the real lab, one test per seed system whose lab host the
session's lab has (seed 002's mpc-transformer needs `lab up --kubernetes`; its crash-loop
heal through the closed loop is tests/integration/test_kubernetes_lab_up.py): every
automated failure mode is injected, its alert fires, the scenario ends as the profile
expects, the service is healthy again, and the host is healed at the end, so the next drill
(causal-eval and mcts share lab-compose) starts from a healed lab. Each report is saved as
Markdown and JSON under the state directory. With --loop, `runbook watch` dispatches the
remediations from the alerts; on `runbook lab up --profile causal-eval` the Redis and database
modes run against the profile's Redis and PostgreSQL, and an `up` without the profile removes
them again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runbook_remediation import drill, envelope
from runbook_remediation.lab.lab import probe_health
from tests.conftest import runbook

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("profile", ["edge-gateway", "ggen-mcp", "causal-eval", "mcts"])
def test_the_drill_runs_every_automated_failure_mode_to_its_expected_outcome(lab, profile):
    result = runbook("-o", "json", "drill", profile)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    report = json.loads(result.stdout)
    automated = [row for row in report["modes"] if row["ok"] is not None]
    manual = [row for row in report["modes"] if row["ok"] is None]
    assert automated and all(row["ok"] for row in automated), automated
    for row in automated:
        assert row["outcome"] == row["expected"] and row["remediate_seconds"] > 0, row
        assert row["run_id"], row  # a real run, recorded in the timeline
        if row["alert"]:
            assert row["detect_seconds"] is not None, row
            # An escalation leaves the alert firing for the human it hands over to.
            assert row["alert_resolved"] is (row["expected"] == "remediated"), row
        if row["mode"] == "port-in-use":  # named, not killed: the holder is this machine's lab process
            assert re.search(r"is held by another process \(python[0-9.]* \(pid [0-9]+\)\)", row["message"]), row
    assert {row["mode"] for row in report["modes"]} == {m.name for m in drill.load(
        profile, drill_faults(), drill_scenarios(), ("v1", "v2")).modes}
    assert all(row["reason"] for row in manual)
    # Healed: the host answers and no fault is left for the next drill.
    host = lab.host(report["host"])
    assert probe_health(host)[0], report["host"]
    saved = Path(report["report"])
    assert saved.is_file() and saved.with_suffix(".json").is_file()
    assert saved.read_text().startswith(f"# Drill {profile} (seed {report['seed']}): passed")


def test_with_loop_the_alerts_dispatch_the_remediations_through_runbook_watch(lab, tmp_path, monkeypatch):
    # Its own safety envelope: the drills above already spent lab-1's budget for the hour.
    env = {"RUNBOOK_ENVELOPE_DB": str(tmp_path / "envelope.db")}
    result = runbook("-o", "json", "drill", "edge-gateway", "--loop", "--only", "crash", "--only", "fd-exhaustion",
                     "--only", "config-broken", env=env)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    report = json.loads(result.stdout)
    assert report["dispatch"] == "runbook watch" and report["ok"], report
    rows = {row["mode"]: row for row in report["modes"]}
    assert set(rows) == {"crash", "fd-exhaustion", "config-broken"}
    for name in ("crash", "fd-exhaustion"):
        row = rows[name]
        assert row["dispatched_by"] == "runbook watch" and row["outcome"] == "remediated", row
        assert row["dispatch_seconds"] is not None and row["remediate_seconds"] > 0 and row["run_id"], row
    # A destructive scenario needs approval: the drill runs it by hand, as on-call would.
    assert rows["config-broken"]["dispatched_by"] == "runbook run", rows["config-broken"]
    assert "dispatch_seconds" not in rows["config-broken"]
    # The loop's runs are the envelope's attempts, started by the alerts (an alert key).
    monkeypatch.setenv("RUNBOOK_ENVELOPE_DB", env["RUNBOOK_ENVELOPE_DB"])
    store = envelope.open_envelope()
    try:
        attempts = {a["run_id"]: a for a in store.attempts(target="lab-1/demo")}
    finally:
        store.close()
    for name in ("crash", "fd-exhaustion"):
        assert "@" in attempts[rows[name]["run_id"]]["alert_key"], attempts
    markdown = Path(report["report"]).read_text()
    assert "| detect | dispatch | remediate | verify |" in markdown, markdown
    assert "config-restore | remediated, run by hand |" in markdown, markdown
    assert probe_health(lab.host("lab-1"))[0]


def test_on_its_profile_causal_eval_rehearses_the_redis_and_database_modes_and_up_without_it_removes_them(lab):
    import redis

    try:
        up = runbook("-o", "json", "lab", "up", "--profile", "causal-eval")  # --hosts 2, as the session's lab
        assert up.returncode == 0, up.stderr
        status = json.loads(up.stdout)
        assert status["profiles"] == ["causal-eval"] and status["redis"]["healthy"], status
        assert status["postgres"]["healthy"], status["postgres"]
        assert status["worker"]["healthy"], status["worker"]  # its calls to the API succeed
        again = json.loads(runbook("-o", "json", "lab", "up", "--profile", "causal-eval").stdout)
        assert again["changes"] == [], again["changes"]

        # The faults are real: the API's user cannot connect, the index fails amcheck.
        server = lab.postgres()
        for fault in ("pg-pool-exhausted", "pg-index-corrupt"):
            broken = runbook("lab", "break", fault, "--host", "lab-compose")
            assert broken.returncode == 0, broken.stderr
            assert not server.healthy(), fault
            assert runbook("lab", "heal", "--host", "lab-compose").returncode == 0
            assert server.healthy(), fault

        result = runbook("-o", "json", "drill", "causal-eval", "--only", "redis-full", "--only", "redis-down",
                         "--only", "pool-exhausted", "--only", "index-corruption", "--only", "worker-down",
                         "--only", "long-queries", "--only", "key-rotation")
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
        rows = {row["mode"]: row for row in json.loads(result.stdout)["modes"]}
        assert (rows["redis-full"]["scenario"], rows["redis-full"]["outcome"]) == ("redis-memory", "remediated")
        assert (rows["redis-down"]["scenario"], rows["redis-down"]["outcome"]) == ("service-down", "remediated")
        # The worker's own ServiceDown (its service label), not the API's; restarted by Compose.
        assert (rows["worker-down"]["scenario"], rows["worker-down"]["outcome"]) == ("service-down", "remediated")
        assert "worker" in rows["worker-down"]["message"], rows["worker-down"]
        for mode in ("redis-full", "redis-down", "worker-down"):
            row = rows[mode]
            assert row["detect_seconds"] is not None and row["alert_resolved"] and row["healthy"], row
        assert rows["pool-exhausted"]["scenario"] == "db-connection-pool"
        assert rows["pool-exhausted"]["outcome"] == "remediated", rows["pool-exhausted"]
        # Seed 004's own alert name, from the PostgreSQL exporter's connection counts.
        assert rows["pool-exhausted"]["alert"] == "database_connection_pool_exhausted"
        assert rows["pool-exhausted"]["detect_seconds"] is not None and rows["pool-exhausted"]["alert_resolved"]
        # Every session the leaking client held (the exporter's one slot aside) was terminated.
        terminated = re.search(r"terminated (\d+) session\(s\) in causal_eval", rows["pool-exhausted"]["message"])
        assert terminated and int(terminated.group(1)) >= 15, rows["pool-exhausted"]["message"]
        assert rows["index-corruption"]["scenario"] == "db-index-corruption"
        assert rows["index-corruption"]["outcome"] == "remediated", rows["index-corruption"]
        assert "rebuilt 1" in rows["index-corruption"]["message"]
        # Seed 004's API key issues: a new key, the API and its consumer the worker restarted.
        assert rows["key-rotation"]["outcome"] == "remediated", rows["key-rotation"]
        assert "demo, worker restarted and healthy" in rows["key-rotation"]["message"], rows["key-rotation"]
        assert rows["key-rotation"]["healthy"], rows["key-rotation"]  # the worker's calls pass with it
        # Seed 004's long-running queries: each of the client's three cancelled, its sessions kept.
        assert rows["long-queries"]["outcome"] == "remediated", rows["long-queries"]
        assert "cancelled 3 query(ies) in causal_eval" in rows["long-queries"]["message"], rows["long-queries"]
        for mode in ("pool-exhausted", "index-corruption", "long-queries"):
            assert rows[mode]["healthy"] and rows[mode]["ok"], rows[mode]  # the drill's own check, beside the alert
        # Healed at the end: empty, the lab's maxmemory, writes accepted; the database answers.
        client = redis.Redis(port=int(status["redis"]["url"].rsplit(":", 1)[1]))
        assert client.config_get("maxmemory")["maxmemory"] == str(4 * 1024 * 1024)
        assert client.dbsize() == 0 and client.set("after-the-drill", "x")
        client.close()
        assert server.healthy()
        # The admin's password is read from its file at run time: in no inventory, no run record.
        password = server.admin_password
        assert password not in lab.inventory_path.read_text()
        state_files = [path for path in lab.dir.parent.rglob("*")
                       if path.is_file() and lab.postgres_dir not in path.parents and path.stat().st_size < 5_000_000]
        assert state_files and not [path for path in state_files if password.encode() in path.read_bytes()]
    finally:
        plain = runbook("-o", "json", "lab", "up")
    assert plain.returncode == 0, plain.stderr
    changes = json.loads(plain.stdout)["changes"]
    assert "stopped the Redis exporter" in changes and "removed redis in " + lab.compose_project in changes, changes
    assert "stopped the PostgreSQL exporter" in changes, changes
    assert "removed postgres in " + lab.compose_project in changes, changes
    assert "removed worker in " + lab.compose_project in changes, changes
    assert lab.state().worker is None and lab._container(lab.worker_container) is None
    assert lab.state().redis is None and "redis://" not in lab.inventory_path.read_text()
    assert lab.state().postgres is None and "postgresql" not in lab.inventory_path.read_text()
    assert lab._container(lab.redis_container) is None and lab._container(lab.postgres_container) is None
    assert not lab.postgres_dir.exists()


def test_on_its_profile_ggen_mcp_rehearses_libreoffice_and_its_dependencies_and_up_without_it_takes_them_out(lab):
    from runbook_remediation.lab import image

    try:
        up = runbook("-o", "json", "lab", "up", "--profile", "ggen-mcp")
        assert up.returncode == 0, up.stderr
        container = lab.host("lab-docker").container
        assert f"recreated {container} with LibreOffice" in json.loads(up.stdout)["changes"]
        assert lab._container(container).attrs["Config"]["Image"] == image.OFFICE_IMAGE

        # The fault is real: two soffice.bin in the container, the service still answering.
        broken = runbook("lab", "break", "soffice-leak", "--host", "lab-docker")
        assert broken.returncode == 0, broken.stderr
        assert lab.soffice_processes("lab-docker") == 2
        assert runbook("lab", "heal", "--host", "lab-docker").returncode == 0
        assert lab.soffice_processes("lab-docker") == 0
        assert lab._container(container).attrs["Config"]["Image"] == image.OFFICE_IMAGE  # healed on it

        result = runbook("-o", "json", "drill", "ggen-mcp", "--only", "libreoffice-leak", "--only", "redis-down",
                         "--only", "database-down")
        rows = {row["mode"]: row for row in json.loads(result.stdout)["modes"]}
        assert result.returncode == 0, ([row for row in rows.values() if not row["ok"]], result.stderr[-2000:])
        row = rows["libreoffice-leak"]
        expected = ("soffice-leak", "remediated", True, True)
        assert (row["scenario"], row["outcome"], row["ok"], row["healthy"]) == expected, row
        assert "stopped 2 stale instance(s)" in row["message"] and f"container {container}" in row["message"], row
        # Its dependencies, the lab's Redis and PostgreSQL (services of the Compose host), died
        # and came back through service-down, from their exporters' alerts.
        dependencies = (("redis-down", "RedisDown", "redis"), ("database-down", "PostgresDown", "postgres"))
        for mode, alert, service in dependencies:
            row = rows[mode]
            assert (row["host"], row["alert"], row["scenario"], row["outcome"]) == (
                "lab-compose", alert, "service-down", "remediated"), row
            assert f"{service} restarted and healthy" in row["message"], row
            assert row["detect_seconds"] is not None and row["alert_resolved"] and row["healthy"], row
    finally:
        plain = runbook("-o", "json", "lab", "up")
    assert plain.returncode == 0, plain.stderr
    changes = json.loads(plain.stdout)["changes"]
    assert f"recreated {container} without LibreOffice" in changes, changes
    assert "removed redis in " + lab.compose_project in changes and "stopped the PostgreSQL exporter" in changes
    assert lab._container(container).attrs["Config"]["Image"] == image.IMAGE
    assert probe_health(lab.host("lab-docker"))[0]


def test_sqlite_corrupt_takes_the_nightly_backup_then_corrupts_the_queue_and_heal_starts_a_new_one(lab):
    from tests.conftest import http_status, wait_for

    host = lab.host("lab-1")
    container = lab.client.containers.get(host.container)

    def sh(script: str) -> str:
        return container.exec_run(["sh", "-c", script]).output.decode().strip()

    try:
        broken = runbook("-o", "json", "lab", "break", "sqlite-corrupt", "--host", "lab-1")
        assert broken.returncode == 0, broken.stderr
        backup = json.loads(broken.stdout)["params"]["backup"]
        wait_for(lambda: http_status(host.health_url) == 503, timeout=15, what="lab-1 to report its database")
        # The backup is good and its sidecar names it with its checksum, as db-backup writes them.
        folder = "/var/lib/runbook-demo/backups"
        assert sh(f"cd {folder} && sha256sum -c {backup}.sha256") == f"{backup}: OK"
        assert sh(f"python3 -c \"import sqlite3; print(sqlite3.connect('{folder}/{backup}')"
                  f".execute('PRAGMA integrity_check').fetchone()[0])\"") == "ok"
    finally:
        assert runbook("lab", "heal", "--host", "lab-1").returncode == 0
    wait_for(lambda: http_status(host.health_url) == 200, timeout=30, what="lab-1 healthy after the heal")
    left = sh("ls -A /var/lib/runbook-demo").split()
    assert "queue.db" in left and "backups" not in left and ".lab-sqlite-corrupt" not in left, left


def drill_faults() -> tuple[str, ...]:
    from runbook_remediation.lab.lab import FAULTS, LAB_FAULTS

    return FAULTS + LAB_FAULTS


def drill_scenarios() -> set[str]:
    from runbook_remediation import catalogue
    from runbook_remediation.collection import find_collection

    return {s.name for s in catalogue.catalogue(find_collection())}
