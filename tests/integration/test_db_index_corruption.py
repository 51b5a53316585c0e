"""db-index-corruption end to end against a real PostgreSQL 15 cluster of its own: an
index file scribbled over on disk (while the server was stopped) is found by amcheck,
rebuilt with REINDEX CONCURRENTLY from its table (every row still there, the index used
again), and a second run finds nothing; check mode and diagnose rebuild nothing; bad
scope and an unreachable server change nothing; the password stays out of every record.
The host running the tasks is this machine (local connection)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_json, runbook
from tests.postgres import free_port, restart, running_cluster

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as pg:
        yield pg


@pytest.fixture
def shop(cluster):
    cluster.execute("DROP DATABASE IF EXISTS shop WITH (FORCE)")
    cluster.execute("CREATE DATABASE shop")
    cluster.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL)", dbname="shop")
    cluster.execute("INSERT INTO orders SELECT g, 'customer ' || g FROM generate_series(1, 5000) g", dbname="shop")
    cluster.execute("CREATE INDEX orders_customer ON orders (customer)", dbname="shop")
    return "shop"


def inventory(tmp_path: Path, cluster, port: int | None = None) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"pg-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [{"name": "shop", "manager": "systemd", "unit": "shop.service",
                              "health_url": "http://127.0.0.1:9/health",
                              "database": {"type": "postgresql", "name": "shop", "host": cluster.host,
                                           "port": port or cluster.port, "user": cluster.user,
                                           "password": cluster.password}}]}}}}), encoding="utf-8")
    return path


def corrupt(cluster, index: str) -> None:
    path = cluster.data_dir / cluster.execute(f"SELECT pg_relation_filepath('{index}')", dbname="shop")[0][0]

    def scribble():
        with open(path, "r+b") as handle:
            handle.seek(8192 * 2 + 1000)
            handle.write(b"\xff" * 300)

    restart(cluster, scribble)


def run(inv: Path, *args: str, extra: dict | None = None) -> tuple[int, dict]:
    code, payload = run_json("run", "db-index-corruption", "-i", str(inv), "-l", "pg-host", "--service", "shop",
                             *args, extra=extra)
    return code, payload["hosts"].get("pg-host", payload)


def test_a_corrupt_index_is_rebuilt_and_every_row_is_still_there(tmp_path, cluster, shop):
    inv = inventory(tmp_path, cluster)
    code, result = run(inv)
    assert code == 4, result  # healthy (and amcheck created on the way)
    assert "amcheck was not installed in shop: created it" in result["findings"]

    corrupt(cluster, "orders_customer")
    code, result = run(inv, "--check")
    assert code == 0 and result["outcome"] == "planned", result
    assert result["actions"] == ["would rebuild public.orders_customer (REINDEX INDEX CONCURRENTLY)"]
    diagnosed = runbook("-o", "json", "diagnose", "db-index-corruption", "-i", str(inv), "-l", "pg-host",
                        "--service", "shop")
    assert diagnosed.returncode == 0, diagnosed.stderr

    code, result = run(inv)
    assert code == 0, result
    assert result["outcome"] == "remediated", result
    assert result["findings"][0].startswith("orders_customer corrupt: ")
    assert result["actions"] == ["rebuilt public.orders_customer (REINDEX INDEX CONCURRENTLY)",
                                 "analyzed public.orders"]
    assert result["verification"]["consistent"] is True
    assert cluster.execute("SELECT count(*) FROM orders", dbname="shop") == [(5000,)]
    plan = cluster.execute("SET enable_seqscan = off; EXPLAIN SELECT id FROM orders WHERE customer = 'customer 42'",
                           dbname="shop")
    assert "orders_customer" in " ".join(row[0] for row in plan)  # the rebuilt index is used again
    assert cluster.execute("SELECT id FROM orders WHERE customer = 'customer 42'", dbname="shop") == [(42,)]

    code, result = run(inv)
    assert code == 4, result

    state = Path(os.environ["RUNBOOK_STATE_DIR"])
    leaked = [str(p) for p in state.rglob("*") if p.is_file() and cluster.password.encode() in p.read_bytes()]
    assert leaked == [], leaked


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"db_reindex_schemas": ["public; DROP TABLE orders"]}, "db_reindex_indexes lists of plain names"),
        ({"db_reindex_schemas": ["nope"]}, "schemas names schema(s) that do not exist in shop: nope"),
        ({"db_reindex_amcheck": "maybe"}, "db_reindex_amcheck must be one of: install, require"),
    ],
    ids=["not-a-name", "unknown-schema", "bad-amcheck"],
)
def test_bad_scope_is_bad_input_and_rebuilds_nothing(tmp_path, cluster, shop, extra, words):
    code, result = run(inventory(tmp_path, cluster), extra=extra)
    assert code == 2, result
    assert words in result["message"], result["message"]
    assert cluster.execute("SELECT count(*) FROM orders", dbname="shop") == [(5000,)]


def test_a_server_that_is_down_is_unavailable(tmp_path, cluster):
    code, result = run(inventory(tmp_path, cluster, port=free_port()))
    assert code == 5, result
    assert result["message"].startswith("failed: cannot connect to PostgreSQL at 127.0.0.1:"), result["message"]
