"""db-analyze against a real PostgreSQL 15 cluster of its own: tables whose rows changed
past autovacuum's threshold since their last ANALYZE (autovacuum off for them, so only the
scenario analyses) are analysed, and only those; a second run finds nothing; check mode
analyses nothing; a table named like SQL is quoted, not run; the schema scope holds. The
host running the tasks is this machine (local connection)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_json
from tests.postgres import running_cluster

pytestmark = pytest.mark.lab

# A table name that would be SQL if it were pasted into a statement unquoted.
NASTY = 'audit"; DROP TABLE orders; --'


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as pg:
        yield pg


@pytest.fixture
def shop(cluster):
    cluster.execute("DROP DATABASE IF EXISTS shop WITH (FORCE)")
    cluster.execute("CREATE DATABASE shop")
    for sql in (
        "CREATE SCHEMA archive",
        # autovacuum off: nothing but the scenario analyses these tables during the test.
        "CREATE TABLE orders (id int PRIMARY KEY, customer text) WITH (autovacuum_enabled = false)",
        "CREATE TABLE quiet (id int PRIMARY KEY) WITH (autovacuum_enabled = false)",
        f'CREATE TABLE "{NASTY.replace(chr(34), chr(34) * 2)}" (id int) WITH (autovacuum_enabled = false)',
        "CREATE TABLE archive.old (id int) WITH (autovacuum_enabled = false)",
        "INSERT INTO quiet SELECT generate_series(1, 100)",
        "ANALYZE quiet",
        "INSERT INTO quiet SELECT generate_series(101, 105)",  # 5 changed rows: under 50 + 10%
        "INSERT INTO orders SELECT g, 'customer ' || g FROM generate_series(1, 3000) g",
        f'INSERT INTO "{NASTY.replace(chr(34), chr(34) * 2)}" SELECT generate_series(1, 500)',
        "INSERT INTO archive.old SELECT generate_series(1, 500)",
    ):
        cluster.execute(sql, dbname="shop")
    return "shop"


def inventory(tmp_path: Path, cluster) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"pg-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [{"name": "shop", "manager": "systemd", "unit": "shop.service",
                              "health_url": "http://127.0.0.1:9/health",
                              "database": {"type": "postgresql", "name": "shop", "host": cluster.host,
                                           "port": cluster.port, "user": cluster.user,
                                           "password": cluster.password}}]}}}}), encoding="utf-8")
    return path


def run(inv: Path, *args: str, extra: dict | None = None) -> tuple[int, dict]:
    code, payload = run_json("run", "db-analyze", "-i", str(inv), "-l", "pg-host", "--service", "shop", *args,
                             extra=extra)
    return code, payload["hosts"].get("pg-host", payload)


def analysed(cluster) -> dict[str, bool]:
    rows = cluster.execute("SELECT schemaname || '.' || relname, last_analyze IS NOT NULL FROM pg_stat_user_tables",
                           dbname="shop")
    return dict(rows)


def test_only_the_stale_tables_are_analysed(tmp_path, cluster, shop):
    inv = inventory(tmp_path, cluster)
    stale = ["public.orders", f"public.{NASTY}", "archive.old"]

    code, result = run(inv, "--check")
    assert (code, result["outcome"]) == (0, "planned"), result
    assert sorted(result["message"].split(" of shop: ", 1)[1].split(", ")) == sorted(stale)
    assert analysed(cluster)["public.orders"] is False

    code, result = run(inv)
    assert (code, result["outcome"]) == (0, "remediated"), result
    state = analysed(cluster)
    assert all(state[name] for name in stale), state
    assert cluster.execute("SELECT count(*) FROM orders", dbname="shop") == [(3000,)]  # the name was quoted, not run
    assert any("3000 rows changed of" in finding and "(never)" in finding for finding in result["findings"]), result

    code, result = run(inv)
    assert (code, result["outcome"]) == (4, "healthy"), result


def test_the_schema_scope_holds(tmp_path, cluster, shop):
    inv = inventory(tmp_path, cluster)
    code, result = run(inv, extra={"db_reindex_schemas": ["archive"]})
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert result["actions"] == ["analysed archive.old"]
    assert analysed(cluster)["public.orders"] is False


@pytest.mark.parametrize(("extra", "words"), [
    ({"db_reindex_analyze_share": "lots"}, "argument 'db_reindex_analyze_share' is of type str"),
    ({"db_reindex_analyze_base": -5}, "db_reindex_analyze_base must be a whole number of rows"),
    ({"db_reindex_schemas": ["public; DROP TABLE orders"]}, "lists of plain names"),
])
def test_bad_requests_change_nothing(tmp_path, cluster, shop, extra, words):
    inv = inventory(tmp_path, cluster)
    code, payload = run_json("run", "db-analyze", "-i", str(inv), "-l", "pg-host", "--service", "shop", extra=extra)
    assert code == 2, payload
    assert words in payload["hosts"]["pg-host"]["message"], payload
    assert analysed(cluster)["public.orders"] is False
