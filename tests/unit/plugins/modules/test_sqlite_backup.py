"""sqlite_backup on real SQLite files: consistent, checksummed, verified, retained, idempotent, refusing."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _sqlite
from ansible_collections.runbook.remediation.plugins.modules import sqlite_backup

STAMPED = r"^queue-\d{8}T\d{6}Z(-\d+)?\.db$"


def make_db(path: Path, rows: int = 200, wal: bool = False) -> Path:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE queue_items (id INTEGER PRIMARY KEY, status TEXT, payload TEXT)")
    conn.executemany("INSERT INTO queue_items (status, payload) VALUES (?, ?)",
                     [("pending", "x" * 200) for _row in range(rows)])
    conn.commit()
    conn.close()
    return path


def rows(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM queue_items").fetchone()[0]
    finally:
        conn.close()


def corrupt(path: Path, page: int = 2) -> None:
    """Overwrite one page in place, as `dd conv=notrunc` does in the lab."""
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * 4096)
        handle.write(b"\xa5" * 4096)


def listing(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "queue.db")


@pytest.fixture
def run(run_module, tmp_path):
    def _run(check: bool = False, **args):
        args.setdefault("path", str(tmp_path / "queue.db"))
        args.setdefault("backups_dir", str(tmp_path / "backups"))
        if check:
            args["_ansible_check_mode"] = True
        return run_module(sqlite_backup.main, args)

    return _run


def test_backup_is_checksummed_verified_and_private(run, db, tmp_path):
    result = run()
    assert not result.failed, result.msg
    assert result["changed"] is True
    backup = Path(result["backup"]["path"])
    assert backup.parent == tmp_path / "backups"
    assert backup.name == result["backup"]["name"]
    assert __import__("re").match(STAMPED, backup.name)
    digest = hashlib.sha256(backup.read_bytes()).hexdigest()
    assert result["backup"]["sha256"] == digest
    assert Path(str(backup) + ".sha256").read_text() == f"{digest}  {backup.name}\n"
    assert rows(backup) == 200
    assert result["verification"] == {"integrity": {"ok": True, "messages": ["ok"]}, "tables": 1,
                                      "rows": {"queue_items": 200}}
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    # Nothing else: no temporary or scratch file left behind.
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [backup.name, backup.name + ".sha256"]


def test_unchanged_database_makes_no_new_backup(run, db, tmp_path):
    first = run()
    before = listing(tmp_path / "backups")
    second = run()
    assert second["changed"] is False
    assert second["reason"] == f"the database is unchanged since {first['backup']['name']}"
    assert second["backup"]["name"] == first["backup"]["name"]
    assert listing(tmp_path / "backups") == before


def test_max_age_keeps_a_recent_backup_and_zero_makes_a_new_one(run, db, tmp_path):
    first = run()
    make_more = sqlite3.connect(db)
    make_more.execute("INSERT INTO queue_items (status) VALUES ('new')")
    make_more.commit()
    make_more.close()
    fresh = run(max_age="1h")
    assert fresh["changed"] is False and fresh["reason"] == "a usable backup is younger than 1h"
    time.sleep(1.05)  # a new stamp (one per second)
    new = run(max_age="0")
    assert new["changed"] is True and new["backup"]["name"] != first["backup"]["name"]
    assert rows(Path(new["backup"]["path"])) == 201


def plant(backups: Path, name: str, good: bool = True, sidecar: bool = True, age: int = 0) -> Path:
    backups.mkdir(exist_ok=True)
    path = make_db(backups / name, rows=3)
    if sidecar:
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if good else "0" * 64
        (backups / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_retention_keeps_the_newest_usable_and_never_touches_others(run, db, tmp_path):
    backups = tmp_path / "backups"
    plant(backups, "queue-20260101T000000Z.db", age=300)
    plant(backups, "queue-20260102T000000Z.db", age=200)
    plant(backups, "queue-20260103T000000Z.db", good=False, age=100)  # damaged: reported, never pruned
    plant(backups, "queue-20251231.db", age=400)  # made by hand (the seed's name): never pruned
    plant(backups, "queue-20260104T000000Z.db", sidecar=False, age=50)  # no sidecar: unusable
    result = run(keep=2)
    assert result["changed"] is True
    assert result["pruned"] == [str(backups / "queue-20260101T000000Z.db")]
    assert result["backups"] == [result["backup"]["name"], "queue-20260102T000000Z.db"]
    assert {item["name"] for item in result["unusable"]} == {"queue-20260103T000000Z.db", "queue-20260104T000000Z.db"}
    names = {p.name for p in backups.iterdir()}
    assert "queue-20260101T000000Z.db" not in names and "queue-20260101T000000Z.db.sha256" not in names
    assert {"queue-20260102T000000Z.db", "queue-20260103T000000Z.db", "queue-20251231.db",
            "queue-20260104T000000Z.db"} <= names


def test_corrupt_database_is_not_backed_up(run, db, tmp_path):
    plant(tmp_path / "backups", "queue-20260101T000000Z.db")
    before = listing(tmp_path / "backups")
    corrupt(db)
    result = run()
    assert result.failed and result["error_kind"] == "corrupt", result.result
    assert "fails integrity_check" in result.msg and "the newest good backup is queue-20260101T000000Z.db" in result.msg
    assert listing(tmp_path / "backups") == before


def test_check_mode_plans_and_writes_nothing(run, db, tmp_path):
    plant(tmp_path / "backups", "queue-20260101T000000Z.db")
    before = listing(tmp_path / "backups")
    result = run(check=True, keep=1)
    assert result["changed"] is True
    assert result["msg"].startswith("would back up")
    assert result["pruned"] == [str(tmp_path / "backups" / "queue-20260101T000000Z.db")]
    assert any("online backup API" in step for step in result["plan"])
    assert listing(tmp_path / "backups") == before

    missing = run(check=True, backups_dir=str(tmp_path / "new-backups"))
    assert missing["changed"] is True and not (tmp_path / "new-backups").exists()


def test_live_wal_database_backup_is_consistent_and_self_contained(run, tmp_path):
    path = make_db(tmp_path / "queue.db", wal=True)
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.executemany("INSERT INTO queue_items (status) VALUES (?)", [("wal",)] * 50)
    writer.commit()  # committed, still only in the -wal: a cp of queue.db would miss it
    try:
        assert os.path.getsize(str(path) + "-wal") > 0
        result = run()
    finally:
        writer.close()
    backup = Path(result["backup"]["path"])
    assert rows(backup) == 250
    assert not _sqlite.wal_header(str(backup))  # rollback-journal mode: one file is the whole backup
    assert not Path(str(backup) + "-wal").exists()


def test_stale_temporary_files_are_removed(run, db, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    stale = backups / ".runbook-queue-backup-abc123"
    stale.write_bytes(b"half a backup")
    other = backups / ".runbook-other-backup-abc123"  # another database's: not ours to remove
    other.write_bytes(b"x")
    result = run()
    assert result["stale_removed"] == [str(stale)]
    assert not stale.exists() and other.exists()


def test_another_run_holding_the_lock_is_unavailable(run, db, tmp_path):
    (tmp_path / "backups").mkdir()
    with _sqlite.DirLock(str(tmp_path / "backups")):
        result = run()
    assert result.failed and result["error_kind"] == "unavailable" and "another backup or restore" in result.msg


@pytest.mark.parametrize(
    ("args", "kind", "words"),
    [
        ({"path": "queue.db"}, "input", "not an absolute path"),
        ({"path": "/var/lib/../etc/queue.db"}, "input", "contains '..'"),
        ({"keep": 0}, "input", "keep must be 1 or more"),
        ({"max_age": "soon"}, "input", "max_age"),
        ({"path": "/nonexistent/queue.db"}, "unavailable", "there is no database file"),
    ],
)
def test_refusals(run, db, args, kind, words):
    result = run(**args)
    assert result.failed and result["error_kind"] == kind and words in result.msg, result.result


@pytest.mark.parametrize(
    ("name", "own", "candidate"),
    [
        ("queue-20261124T030000Z.db", True, True),
        ("queue-20261124T030000Z-2.db", True, True),
        ("queue-20261124.db", False, True),
        ("queue-archive-20261124T030000Z.db", False, False),
        (".runbook-queue-backup-x", False, False),
        ("queue-20261124T030000Z.db.sha256", False, False),
    ],
)
def test_backup_names(name, own, candidate):
    assert bool(_sqlite.own_backup_re("queue").match(name)) is own
    assert _sqlite.is_candidate(name, "queue") is candidate


def test_stamped_name_is_unique(tmp_path):
    now = 1764000000.0
    first = _sqlite.stamped_name(str(tmp_path), "queue", now)
    (tmp_path / first).write_bytes(b"")
    second = _sqlite.stamped_name(str(tmp_path), "queue", now)
    assert first == "queue-20251124T160000Z.db" and second == "queue-20251124T160000Z-2.db"


def test_age_comes_from_the_stamp_in_the_name_not_the_mtime(run, db, tmp_path):
    """A backup copied in today (fresh mtime) but made long ago does not make a new one unnecessary."""
    plant(tmp_path / "backups", "queue-20250101T000000Z.db")
    result = run(max_age="1h")
    assert result["changed"] is True and result["reason"] == "a backup was due"
