"""db-backup and db-restore end to end on the real lab, with real SQLite and PostgreSQL 15.

SQLite: the lab's systemd hosts run the demo service on /var/lib/runbook-demo/queue.db
(its /health has a `database` component running quick_check). A page is overwritten with
dd (TESTBED.md), the service reports the database unhealthy, db-restore brings the newest
good backup back atomically and keeps the corrupt bytes as the pre-restore copy.

PostgreSQL: a throwaway cluster (tests/postgres.py) stands in for the service's database;
the lab's `lab-docker` host (ansible_connection local, a Docker container with a health
URL) is the service that is stopped and started around the swap.

The scenarios are not in meta/scenarios.yml yet, so the playbooks run by FQCN through
ansible-playbook (the json callback gives the result fact and the recap).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import http_status, run_json, runbook, wait_for

pytestmark = pytest.mark.lab

STATE = "/var/lib/runbook-demo"
DB = f"{STATE}/queue.db"
BACKUPS = f"{STATE}/backups"
CONFIRM = {"runbook_confirm": True}


def play(lab, playbook: str, host: str, extra: dict | None = None, check: bool = False,
         extra_file: Path | None = None) -> tuple[int, dict, dict, str]:
    """ansible-playbook runbook.remediation.PLAYBOOK on one lab host: exit code, runbook_result,
    the host's recap, and the whole output (to look for secrets)."""
    argv = ["ansible-playbook", f"runbook.remediation.{playbook}", "-i", str(lab.inventory_path), "-l", host]
    if extra:
        argv += ["-e", json.dumps(extra)]
    if extra_file:
        argv += ["-e", f"@{extra_file}"]
    if check:
        argv.append("--check")
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=600,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"},
    )
    try:
        output = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON from ansible-playbook (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    facts = [h.get("ansible_facts", {}).get("runbook_result")
             for p in output["plays"] for task in p["tasks"] for h in task["hosts"].values()]
    facts = [fact for fact in facts if fact]
    assert facts, result.stdout[-3000:]
    return result.returncode, facts[-1], output["stats"][host], result.stdout + result.stderr


def sh(lab, name: str, script: str) -> str:
    container = lab.client.containers.get(lab.host(name).container)
    result = container.exec_run(["sh", "-c", script])
    out = result.output.decode(errors="replace").strip()
    assert result.exit_code == 0, f"{script}: {out}"
    return out


def snapshot(lab, name: str) -> str:
    """Every file of the service's state (bytes, size, mtime, inode) and the unit's main PID:
    equal means nothing was touched and the service was not restarted."""
    return sh(lab, name, f"find {STATE} -type f -printf '%p %s %T@ %i ' -exec sha256sum {{}} \\; | sort; "
                         "systemctl show -p MainPID --value runbook-demo.service")


def corrupt(lab, name: str) -> str:
    """Overwrite page 2 (the queue table's root) in place; the corrupt file's sha256."""
    sh(lab, name, f"dd if=/dev/urandom of={DB} bs=4096 seek=1 count=1 conv=notrunc status=none")
    host = lab.host(name)
    wait_for(lambda: http_status(host.health_url) == 503, timeout=15, what=f"{name} to report its database")
    return sh(lab, name, f"sha256sum {DB} | cut -d' ' -f1")


def database_component(lab, name: str) -> dict:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(lab.host(name).health_url, timeout=3) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    return next(c for c in body["components"] if c["name"] == "database")


@pytest.fixture
def fresh_db(lab):
    """Hosts a test used get a fresh, seeded queue database and no backups afterwards."""
    used: list[str] = []
    yield used.append
    for name in used:
        sh(lab, name, f"systemctl stop runbook-demo.service; rm -rf {BACKUPS} {DB} {DB}-wal {DB}-shm {DB}-journal "
                      f"{STATE}/.runbook-*; systemctl start runbook-demo.service")
        wait_for(lambda n=name: http_status(lab.host(n).health_url) == 200, what=f"{name} healthy again")


def backup_now(lab, name: str) -> dict:
    code, result, _recap, _out = play(lab, "db_backup", name, {"db_backup_max_age": "0"})
    assert code == 0 and result["outcome"] == "remediated", result
    return result["evidence"]["backup"]


def test_corrupt_sqlite_is_restored_keeping_the_corrupt_copy_then_nothing_to_do(lab, fresh_db):
    fresh_db("lab-1")
    backup = backup_now(lab, "lab-1")
    assert re.fullmatch(r"queue-\d{8}T\d{6}Z\.db", backup["name"]), backup
    sidecar = sh(lab, "lab-1", f"cat {backup['path']}.sha256")
    assert sidecar == f"{backup['sha256']}  {backup['name']}"
    assert sh(lab, "lab-1", f"sha256sum {backup['path']} | cut -d' ' -f1") == backup["sha256"]

    corrupt_sha = corrupt(lab, "lab-1")
    assert database_component(lab, "lab-1")["status"] == "unhealthy"

    code, result, recap, _out = play(lab, "db_restore", "lab-1", CONFIRM)
    assert code == 0, result
    assert result["outcome"] == "remediated", result
    assert result["message"].startswith(f"remediated: restored {DB} from {backup['name']}"), result["message"]
    assert any(f.startswith(f"integrity_check of {DB} failed") for f in result["findings"]), result["findings"]
    evidence = result["evidence"]
    assert evidence["backup"]["name"] == backup["name"] and evidence["checksum"] == backup["sha256"]
    assert evidence["integrity_before"]["ok"] is False and evidence["integrity_after"]["ok"] is True
    assert result["verification"]["healthy"] is True and result["verification"]["integrity"] == "integrity_check ok"
    assert result["actions"][0].startswith("stopped demo") and result["actions"][-1].startswith("started demo")

    # The pre-restore copy is the corrupt file, byte for byte, with its checksum.
    copy = evidence["pre_restore_copy"]
    assert copy.startswith(f"{BACKUPS}/pre-restore/queue-") and copy in result["message"]
    assert sh(lab, "lab-1", f"sha256sum {copy} | cut -d' ' -f1") == corrupt_sha
    assert sh(lab, "lab-1", f"cat {copy}.sha256") == f"{corrupt_sha}  {Path(copy).name}"
    # The live database: intact, the service's own file again, the service healthy on it.
    assert sh(lab, "lab-1", f"sqlite3 {DB} 'PRAGMA integrity_check'") == "ok"
    assert sh(lab, "lab-1", f"stat -c '%U %a' {DB}") == "runbook-demo 644"
    assert sh(lab, "lab-1", f"ls -A {STATE} | grep -c '^[.]runbook-' || true") == "0"
    wait_for(lambda: http_status(lab.host("lab-1").health_url) == 200, what="lab-1 healthy")
    assert database_component(lab, "lab-1")["detail"].startswith("quick_check ok")

    code, second, recap, _out = play(lab, "db_restore", "lab-1", CONFIRM)
    assert code == 0 and second["outcome"] == "healthy", second
    assert second["actions"] == [] and recap["changed"] == 0, recap


def test_check_mode_missing_confirmation_and_traversal_change_nothing(lab, fresh_db):
    fresh_db("lab-2")
    backup = backup_now(lab, "lab-2")
    corrupt(lab, "lab-2")
    before = snapshot(lab, "lab-2")

    code, refused, _recap, _out = play(lab, "db_restore", "lab-2")
    assert code != 0 and refused["outcome"] == "failed" and refused["error_kind"] == "input", refused
    assert refused["message"] == "invalid input: db-restore is destructive: pass runbook_confirm=true (CLI: --yes)"
    assert snapshot(lab, "lab-2") == before

    # From an alert (the rulebook's runbook_diagnose_only, no confirmation): it diagnoses.
    code, looked, _recap, _out = play(lab, "db_restore", "lab-2", {
        "runbook_diagnose_only": True, "runbook_alert_key": "0f1e2d3c4b5a6978@2026-01-01T00:00:00Z"})
    assert code == 0 and looked.get("error_kind") != "input", looked
    assert looked["outcome"] in ("planned", "escalate"), looked
    assert snapshot(lab, "lab-2") == before

    code, planned, _recap, _out = play(lab, "db_restore", "lab-2", check=True)
    assert code == 0 and planned["outcome"] == "planned" and planned["check_mode"] is True, planned
    actions = " | ".join(planned["actions"])
    assert "would stop demo (runbook-demo.service)" in actions
    assert "would copy queue.db (" in actions and f"to {BACKUPS}/pre-restore/queue-" in actions
    assert f"would copy {backup['path']} (sha256 {backup['sha256']})" in actions
    assert f"would rename the temporary file over {DB}" in actions
    assert planned["evidence"]["checksum"] == backup["sha256"]
    assert snapshot(lab, "lab-2") == before

    for name in ("../../../etc/passwd", "/etc/passwd", "pre-restore/../queue.db"):
        code, traversal, _recap, _out = play(lab, "db_restore", "lab-2", {**CONFIRM, "db_restore_backup": name})
        assert code != 0 and traversal["error_kind"] == "input", traversal
        assert traversal["message"].startswith(f"invalid input: db_restore_backup must be a file name in {BACKUPS}")
    assert snapshot(lab, "lab-2") == before


def test_a_service_that_stays_unhealthy_gets_the_pre_restore_copy_back(lab, fresh_db):
    """The verification fails (health URL answered by nobody): the corrupt original goes back, and
    the result says so."""
    fresh_db("lab-2")
    backup_now(lab, "lab-2")
    corrupt_sha = corrupt(lab, "lab-2")
    host_vars = yaml.safe_load(Path(lab.inventory_path).read_text())
    service = host_vars["all"]["children"]["lab"]["children"]["lab_systemd"]["hosts"]["lab-2"]["runbook_services"][0]
    from runbook_remediation.lab.lab import free_port

    broken = {**service, "health_url": f"http://127.0.0.1:{free_port()}/health"}
    extra = {**CONFIRM, "runbook_services": [broken], "db_restore_verify_timeout": 3, "db_restore_verify_probes": 1}
    code, result, _recap, _out = play(lab, "db_restore", "lab-2", extra)
    assert code != 0 and result["outcome"] == "failed", result
    copy = result["evidence"]["pre_restore_copy"]
    assert "did not become healthy on the restored database" in result["message"], result["message"]
    assert f"put the pre-restore copy {copy} back" in result["message"]
    assert result["evidence"]["rolled_back"] is True
    assert sh(lab, "lab-2", f"sha256sum {DB} | cut -d' ' -f1") == corrupt_sha  # the original, as it was
    assert sh(lab, "lab-2", "systemctl is-active runbook-demo.service") == "active"


def test_sqlite_of_a_container_service_is_refused_as_bad_input(lab):
    code, result, recap, _out = play(lab, "db_restore", "lab-docker", CONFIRM)
    assert code != 0 and result["error_kind"] == "input", result
    assert "supported for systemd services only" in result["message"]
    assert recap["changed"] == 0


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def shop(postgres, lab, tmp_path):
    """A `shop` database with two tables, described as lab-docker's database (extra vars file,
    so the password is not on a command line)."""
    postgres.execute("DROP DATABASE IF EXISTS shop WITH (FORCE)")
    postgres.execute("CREATE DATABASE shop")
    postgres.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)", dbname="shop")
    postgres.execute("INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 500) g", dbname="shop")
    postgres.execute("CREATE TABLE orders (id serial PRIMARY KEY, item int REFERENCES items, qty int)", dbname="shop")
    postgres.execute("INSERT INTO orders (item, qty) SELECT g, g % 7 FROM generate_series(1, 50) g", dbname="shop")
    inventory = yaml.safe_load(Path(lab.inventory_path).read_text())
    service = inventory["all"]["children"]["lab"]["children"]["lab_docker"]["hosts"]["lab-docker"]
    service = service["runbook_services"][0]
    backups = tmp_path / "pg-backups"
    service = {**service, "database": {"type": "postgresql", "name": "shop", "host": postgres.host,
                                       "port": postgres.port, "user": postgres.user, "password": postgres.password,
                                       "backups": str(backups)}}
    extra = tmp_path / "shop.yml"
    extra.write_text(yaml.safe_dump({"runbook_services": [service]}))
    extra.chmod(0o600)
    yield extra, backups
    for (name,) in postgres.execute("SELECT datname FROM pg_database WHERE datname LIKE 'shop%'"):
        postgres.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def databases(postgres) -> list[str]:
    return sorted(name for (name,) in postgres.execute("SELECT datname FROM pg_database WHERE datname LIKE 'shop%'"))


def test_postgresql_dropped_table_is_restored_keeping_the_old_database(lab, postgres, shop):
    extra, backups = shop
    code, made, _recap, output = play(lab, "db_backup", "lab-docker", {"db_backup_max_age": "0"}, extra_file=extra)
    assert code == 0 and made["outcome"] == "remediated", made
    dump = Path(made["evidence"]["backup"]["path"])
    assert dump.parent == backups and re.fullmatch(r"shop-\d{8}T\d{6}Z\.pgc", dump.name)
    assert (backups / f"{dump.name}.sha256").read_text() == f"{made['evidence']['checksum']}  {dump.name}\n"
    assert made["verification"]["rows"] == {"public.items": 500, "public.orders": 50}
    assert databases(postgres) == ["shop"]  # the scratch database is gone
    assert postgres.password not in output

    postgres.execute("DROP TABLE orders", dbname="shop")
    container = lab.client.containers.get(lab.host("lab-docker").container)
    started_before = container.attrs["State"]["StartedAt"]

    code, planned, _recap, output = play(lab, "db_restore", "lab-docker", check=True, extra_file=extra)
    assert code == 0 and planned["outcome"] == "planned", planned
    assert "tables missing from shop (present in " in " ".join(planned["findings"])
    assert any(a.startswith("would create database shop_restore_") and dump.name in a for a in planned["actions"])
    assert databases(postgres) == ["shop"]

    code, result, _recap, output = play(lab, "db_restore", "lab-docker", CONFIRM, extra_file=extra)
    assert code == 0 and result["outcome"] == "remediated", result
    assert postgres.password not in output
    qty = sum(g % 7 for g in range(1, 51))
    assert postgres.execute("SELECT count(*), sum(qty) FROM orders", dbname="shop") == [(50, qty)]
    assert postgres.execute("SELECT count(*) FROM items", dbname="shop") == [(500,)]
    (old,) = [name for name in databases(postgres) if name != "shop"]
    assert re.fullmatch(r"shop_prerestore_\d{8}T\d{6}Z", old) and f"database {old}" in result["message"]
    # The pre-restore copy is the database as it was: items there, orders dropped.
    assert postgres.execute("SELECT count(*) FROM items", dbname=old) == [(500,)]
    assert postgres.execute("SELECT to_regclass('public.orders') IS NULL", dbname=old) == [(True,)]
    assert result["evidence"]["tables_after"] == {"public.items": 500, "public.orders": 50}
    assert result["evidence"]["missing_tables"] == ["public.orders"]
    container.reload()
    assert container.attrs["State"]["StartedAt"] != started_before  # stopped and started around the swap
    assert container.status == "running"

    code, second, recap, _output = play(lab, "db_restore", "lab-docker", CONFIRM, extra_file=extra)
    assert code == 0 and second["outcome"] == "healthy" and recap["changed"] == 0, (second, recap)


def test_the_cli_asks_for_confirmation_then_restores(lab, fresh_db):
    """`runbook run db-restore` as an on-call engineer runs it: refused without a prompt or
    --yes (nothing touched), then restored with --yes, in an incident of its own."""
    fresh_db("lab-1")
    backup_now(lab, "lab-1")
    corrupt_sha = corrupt(lab, "lab-1")
    before = snapshot(lab, "lab-1")

    refused = runbook("run", "db-restore", "-l", "lab-1")  # no terminal here: no prompt
    assert refused.returncode == 2, refused.stderr
    assert "db-restore is destructive" in refused.stderr and "--yes" in refused.stderr, refused.stderr
    assert snapshot(lab, "lab-1") == before

    code, payload = run_json("run", "db-restore", "-l", "lab-1", "--yes")
    assert code == 0, payload
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "remediated" and result["verification"]["healthy"] is True, result
    assert payload["incident"], payload
    copy = result["evidence"]["pre_restore_copy"]
    assert sh(lab, "lab-1", f"sha256sum {copy} | cut -d' ' -f1") == corrupt_sha
    assert database_component(lab, "lab-1")["status"] == "healthy"
