"""postgresql_index_check: the message, then the module in-process against a real
PostgreSQL 15 cluster of its own (tests/postgres.py), where an index file is corrupted on
disk while the server is stopped: amcheck finds it, REINDEX CONCURRENTLY rebuilds it from
its table (no row lost), the check passes again; check mode rebuilds nothing."""

from __future__ import annotations

import uuid

import pytest
from ansible_collections.runbook.remediation.plugins.modules import postgresql_index_check as pic

from tests.postgres import restart, running_cluster


def test_summary_says_what_was_found_and_done():
    clean = dict(checked=3, corrupt=[], invalid=[], reindexed=[], still_corrupt=[], amcheck_missing=False)
    assert pic.summary(clean, "shop", False) == "all 3 B-tree index(es) of shop consistent"
    broken = {**clean, "corrupt": [{"index": "a"}], "reindexed": ["public.a"]}
    assert pic.summary(broken, "shop", True) == (
        "1 of 3 B-tree index(es) of shop corrupt; would rebuild 1 (REINDEX CONCURRENTLY)")
    assert pic.summary(broken, "shop", False).endswith("rebuilt 1 (REINDEX CONCURRENTLY), all consistent now")
    missing = {**clean, "amcheck_missing": True}
    assert pic.summary(missing, "shop", True).startswith("amcheck is not installed in shop")


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as pg:
        yield pg


@pytest.fixture
def shop(cluster):
    """A database with a table of 5000 rows, its primary key and an index on name."""
    database = f"shop_{uuid.uuid4().hex[:8]}"
    cluster.execute(f"CREATE DATABASE {database}")
    cluster.execute("CREATE TABLE items (id int PRIMARY KEY, name text)", dbname=database)
    cluster.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g", dbname=database)
    cluster.execute("CREATE INDEX items_name ON items (name)", dbname=database)
    cluster.execute("CREATE INDEX items_search ON items USING hash (name)", dbname=database)
    try:
        yield database
    finally:
        cluster.execute(f"DROP DATABASE {database} WITH (FORCE)")


def corrupt_index(cluster, database: str, index: str) -> None:
    path = cluster.data_dir / cluster.execute(f"SELECT pg_relation_filepath('{index}')", dbname=database)[0][0]

    def scribble():
        with open(path, "r+b") as handle:  # the middle of a leaf page: its line pointers point nowhere
            handle.seek(8192 * 2 + 1000)
            handle.write(b"\xff" * 300)

    restart(cluster, scribble)


@pytest.fixture
def run(run_module, cluster):
    def _run(check: bool = False, **args):
        if check:
            args["_ansible_check_mode"] = True
        login = {"login_host": cluster.host, "login_port": cluster.port, "login_user": cluster.user,
                 "login_password": cluster.password}
        return run_module(pic.main, {**login, **args})

    return _run


def test_a_corrupt_index_is_found_rebuilt_from_its_table_and_consistent_again(run, cluster, shop):
    result = run(database=shop)  # installs amcheck: the database had none
    assert not result.failed, result.msg
    assert result["amcheck_installed"] is True and result["checked"] == 2 and result["corrupt"] == []
    assert result["not_checked"] == ["public.items_search (hash)"]

    corrupt_index(cluster, shop, "items_name")
    found = run(database=shop)
    assert not found.failed, found.msg
    assert [(item["index"], item["table"]) for item in found["corrupt"]] == [("items_name", "items")]
    assert "line pointer" in found["corrupt"][0]["error"] or "corrupt" in found["corrupt"][0]["error"]
    assert found["reindexed"] == [] and not found["changed"]

    planned = run(check=True, database=shop, reindex=True)
    assert planned["reindexed"] == ["public.items_name"] and not planned["changed"]
    assert run(database=shop)["corrupt"] != []  # check mode rebuilt nothing

    fixed = run(database=shop, reindex=True)
    assert not fixed.failed, fixed.msg
    assert fixed["reindexed"] == ["public.items_name"] and fixed["still_corrupt"] == []
    assert fixed["analyzed"] == ["public.items"] and fixed["changed"]
    assert fixed["msg"].endswith("rebuilt 1 (REINDEX CONCURRENTLY), all consistent now")
    assert run(database=shop)["corrupt"] == []
    assert cluster.execute("SELECT count(*) FROM items WHERE name = 'item 4242'", dbname=shop) == [(1,)]
    assert cluster.execute("SELECT count(*) FROM items", dbname=shop) == [(5000,)]


def test_require_without_amcheck_and_unknown_names_are_refused(run, shop):
    result = run(database=shop, amcheck="require")
    assert result.failed and result["error_kind"] == "unavailable" and "amcheck=require" in result.msg
    result = run(database=shop, schemas=["nope"])
    assert result.failed and result["error_kind"] == "input" and "nope" in result.msg
    result = run(database="no_such_db")
    assert result.failed and result["error_kind"] == "input" and "no_such_db" in result.msg
    result = run(check=True, database=shop)
    assert not result.failed and result["amcheck_missing"] is True and result["checked"] == 0
    assert not result["changed"]
