"""sqlite_restore on real SQLite files: checks before touching, keeps a copy, swaps atomically, refuses."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _sqlite
from ansible_collections.runbook.remediation.plugins.modules import sqlite_restore


def make_db(path: Path, rows: int = 200, status: str = "pending", wal: bool = False) -> Path:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE queue_items (id INTEGER PRIMARY KEY, status TEXT, payload TEXT)")
    conn.executemany("INSERT INTO queue_items (status, payload) VALUES (?, ?)", [(status, "x" * 200)] * rows)
    conn.commit()
    conn.close()
    return path


def content(path: Path) -> str:
    """Digest of the logical content, read from a scratch copy (with its -wal) so nothing is changed."""
    scratch = path.parent / f".content-{os.getpid()}"
    scratch.mkdir()
    try:
        shutil.copyfile(path, scratch / "db")
        if Path(f"{path}-wal").exists():
            shutil.copyfile(f"{path}-wal", scratch / "db-wal")
        conn = sqlite3.connect(scratch / "db")
        try:
            return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
        finally:
            conn.close()
    finally:
        shutil.rmtree(scratch)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def corrupt(path: Path, page: int = 2) -> None:
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * 4096)
        handle.write(b"\xa5" * 4096)


def backup(backups: Path, name: str, status: str = "restored", rows: int = 120, sidecar: str | None = "good",
           age: int = 0) -> Path:
    backups.mkdir(exist_ok=True)
    path = make_db(backups / name, rows=rows, status=status)
    if sidecar:
        digest = sha(path) if sidecar == "good" else "0" * 64
        (backups / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    if age:
        stamp = path.stat().st_mtime - age
        os.utime(path, (stamp, stamp))
    return path


def tree(*dirs: Path) -> dict[str, tuple]:
    """Every file under ``dirs`` with its bytes' digest, mode and owner: equal means nothing changed."""
    out = {}
    for root in dirs:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                st = path.stat()
                out[str(path)] = (sha(path), st.st_mode, st.st_uid, st.st_mtime_ns)
    return out


@pytest.fixture
def paths(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    return data / "queue.db", tmp_path / "backups"


@pytest.fixture
def run(run_module, paths):
    db, backups = paths

    def _run(check: bool = False, **args):
        args.setdefault("path", str(db))
        args.setdefault("backups_dir", str(backups))
        if check:
            args["_ansible_check_mode"] = True
        return run_module(sqlite_restore.main, args)

    return _run


def test_healthy_database_is_left_alone(run, paths):
    db, backups = paths
    make_db(db)
    backup(backups, "queue-20260101T000000Z.db")
    before = tree(db.parent, backups)
    result = run()
    assert not result.failed, result.msg
    assert result["changed"] is False and result["action"] == "none"
    assert result["database"]["integrity"] == {"ok": True, "messages": ["ok"]}
    assert tree(db.parent, backups) == before


def test_corrupt_database_is_restored_and_the_corrupt_one_kept(run, paths):
    db, backups = paths
    make_db(db)
    os.chmod(db, 0o640)
    good = backup(backups, "queue-20260102T000000Z.db", status="newest")
    backup(backups, "queue-20260101T000000Z.db", status="older", age=100)
    corrupt(db)
    corrupt_bytes = sha(db)

    result = run()
    assert not result.failed, result.msg
    assert result["changed"] is True and result["action"] == "restore"
    assert result["reason"].startswith("integrity_check failed:")
    assert result["database"]["integrity"]["ok"] is False
    assert result["backup"]["name"] == good.name and result["backup"]["sha256"] == sha(good)
    assert result["integrity_after"] == {"ok": True, "messages": ["ok"]}
    assert sha(db) == sha(good)  # byte for byte the backup
    assert stat.S_IMODE(db.stat().st_mode) == 0o640  # the old file's mode
    copy = Path(result["pre_restore_copy"]["path"])
    assert copy.parent == backups / "pre-restore"
    assert sha(copy) == corrupt_bytes == result["pre_restore_copy"]["sha256"]  # the corrupt bytes, kept
    assert Path(f"{copy}.sha256").read_text() == f"{corrupt_bytes}  {copy.name}\n"
    assert stat.S_IMODE((backups / "pre-restore").stat().st_mode) == 0o700
    assert not [p for p in db.parent.iterdir() if p.name.startswith(".")]  # no temporary file left

    again = run()
    assert again["changed"] is False and again["action"] == "none"


def test_check_mode_shows_the_plan_and_changes_nothing(run, paths):
    db, backups = paths
    make_db(db)
    good = backup(backups, "queue-20260102T000000Z.db")
    corrupt(db)
    before = tree(db.parent, backups)
    result = run(check=True)
    assert result["changed"] is True and result["msg"].startswith("would restore")
    assert result["backup"]["sha256"] == sha(good)
    assert result["pre_restore_copy"]["planned"] is True
    plan = " | ".join(result["plan"])
    assert f"copy queue.db ({db.stat().st_size} bytes) to {backups}/pre-restore/queue-" in plan
    assert f"copy {good} (sha256 {sha(good)})" in plan
    assert f"rename the temporary file over {db}" in plan
    assert tree(db.parent, backups) == before
    assert not (backups / "pre-restore").exists()


def test_damaged_or_unchecked_backups_are_skipped(run, paths):
    db, backups = paths
    make_db(db)
    backup(backups, "queue-20260104T000000Z.db", sidecar="bad")
    backup(backups, "queue-20260103T000000Z.db", sidecar=None, age=10)
    broken = backup(backups, "queue-20260102T000000Z.db", age=20)
    corrupt(broken)
    (backups / f"{broken.name}.sha256").write_text(f"{sha(broken)}  {broken.name}\n")  # checksum ok, content not
    good = backup(backups, "queue-20260101T000000Z.db", age=30)
    corrupt(db)
    result = run()
    assert result["backup"]["name"] == good.name, result.result
    reasons = {c["name"]: c["reason"] for c in result["candidates"]}
    assert reasons["queue-20260104T000000Z.db"].startswith("checksum mismatch")
    assert reasons["queue-20260103T000000Z.db"].startswith("no checksum sidecar")
    assert reasons["queue-20260102T000000Z.db"].startswith("integrity_check failed")
    assert reasons[good.name] == "usable"


def test_without_required_checksum_a_backup_without_sidecar_is_used(run, paths):
    db, backups = paths
    make_db(db)
    plain = backup(backups, "queue-20261124.db", sidecar=None)  # the seed's hand-made name
    corrupt(db)
    assert run()["error_kind"] == "unavailable"
    result = run(require_checksum=False)
    assert result["backup"]["name"] == plain.name and sha(db) == sha(plain)


@pytest.mark.parametrize(
    "name",
    ["../queue-20260101T000000Z.db", "/etc/passwd", "sub/queue-20260101T000000Z.db", "..", ".hidden.db",
     "/tmp/../etc/shadow", "queue-link.db"],
)
def test_backup_outside_the_backups_directory_is_refused(run, paths, name):
    db, backups = paths
    make_db(db)
    backup(backups, "queue-20260101T000000Z.db")
    (backups / "queue-link.db").symlink_to(backups / "queue-20260101T000000Z.db")
    before = tree(db.parent, backups)
    result = run(backup=name)
    assert result.failed and result["error_kind"] == "input", result.result
    assert tree(db.parent, backups) == before


def test_a_chosen_backup_is_restored_even_over_a_healthy_database_but_must_pass_its_checks(run, paths):
    db, backups = paths
    make_db(db)
    chosen = backup(backups, "queue-20260101T000000Z.db", status="chosen")
    bad = backup(backups, "queue-20260102T000000Z.db", sidecar="bad")
    before = tree(db.parent, backups)
    refused = run(backup=bad.name)
    assert refused["error_kind"] == "input" and "checksum mismatch" in refused.msg
    assert tree(db.parent, backups) == before
    result = run(backup=str(chosen))
    assert result["changed"] is True and result["reason"] == f"restore of backup {chosen} requested"
    assert sha(db) == sha(chosen)


def test_no_usable_backup_changes_nothing(run, paths):
    db, backups = paths
    make_db(db)
    backup(backups, "queue-20260101T000000Z.db", sidecar="bad")
    corrupt(db)
    before = tree(db.parent, backups)
    result = run()
    assert result.failed and result["error_kind"] == "unavailable"
    assert "no usable backup" in result.msg and "checksum mismatch" in result.msg
    assert tree(db.parent, backups) == before


def test_an_open_database_is_not_replaced(run, paths):
    db, backups = paths
    make_db(db)
    backup(backups, "queue-20260101T000000Z.db")
    corrupt(db)
    before = tree(db.parent, backups)
    with open(db, "rb"):
        result = run()
        assert result.failed and result["error_kind"] == "in_use"
        assert f"is open by process {os.getpid()}" in result.msg and "stop the service first" in result.msg
        assert tree(db.parent, backups) == before
        assert run(allow_open=True)["changed"] is True


def test_stale_wal_is_folded_away_not_replayed_and_rollback_brings_it_back(run, paths):
    """The old database's committed-but-uncheckpointed WAL must neither leak into the restored file
    nor be lost from the pre-restore copy."""
    db, backups = paths
    make_db(db, wal=True)
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.executemany("INSERT INTO queue_items (status) VALUES (?)", [("only-in-wal",)] * 300)
    writer.commit()
    # Leave the -wal behind as a crashed service would: copy the files while the writer is open.
    crashed = db.parent / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal", "-shm"):
        shutil.copyfile(f"{db}{suffix}", crashed / f"queue.db{suffix}")
    writer.close()
    for suffix in ("", "-wal", "-shm"):
        shutil.copyfile(crashed / f"queue.db{suffix}", f"{db}{suffix}")
    shutil.rmtree(crashed)
    assert Path(f"{db}-wal").stat().st_size > 0
    original = content(db)
    good = backup(backups, "queue-20260101T000000Z.db")

    result = run(force=True)
    assert result["changed"] is True and result["swap"]["folded"] is True
    assert sha(db) == sha(good) and content(db) == content(good)
    assert not any(Path(f"{db}{s}").exists() for s in ("-wal", "-shm", "-journal"))
    copy = result["pre_restore_copy"]["path"]
    assert set(result["pre_restore_copy"]["files"]) == {copy, f"{copy}-wal", f"{copy}-shm"}

    back = run(state="rolled_back", pre_restore_copy=result["pre_restore_copy"]["path"])
    assert back["changed"] is True and back["action"] == "rollback"
    assert content(db) == original
    assert back["integrity_after"]["ok"] is True


def test_missing_database_is_restored_without_a_copy(run, paths):
    db, backups = paths
    good = backup(backups, "queue-20260101T000000Z.db")
    result = run()
    assert result["changed"] is True and "pre_restore_copy" not in result.result
    assert any("keep no pre-restore copy" in step for step in result["plan"])
    assert sha(db) == sha(good)


def test_rollback_needs_an_intact_copy(run, paths):
    db, backups = paths
    make_db(db)
    backup(backups, "queue-20260101T000000Z.db")
    result = run(force=True)
    copy = Path(result["pre_restore_copy"]["path"])
    copy.write_bytes(copy.read_bytes() + b"tampered")
    refused = run(state="rolled_back")
    assert refused["error_kind"] == "input" and "does not match its checksum" in refused.msg
    assert run(state="rolled_back", pre_restore_copy="../queue.db")["error_kind"] == "input"


@pytest.mark.parametrize(
    ("args", "kind", "words"),
    [
        ({"path": "data/queue.db"}, "input", "not an absolute path"),
        ({"backups_dir": "/srv/../etc"}, "input", "contains '..'"),
        ({"backups_dir": "/nonexistent/backups"}, "unavailable", "does not exist"),
    ],
)
def test_refusals(run, paths, args, kind, words):
    make_db(paths[0])
    paths[1].mkdir()
    result = run(**args)
    assert result.failed and result["error_kind"] == kind and words in result.msg, result.result


def test_lock_held_by_another_run(run, paths):
    make_db(paths[0])
    paths[1].mkdir()
    with _sqlite.DirLock(str(paths[1])):
        result = run()
    assert result["error_kind"] == "unavailable" and "another backup or restore" in result.msg


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("queue-1.db", None),
        ("/b/queue-1.db", None),
        ("/other/queue-1.db", "is outside /b"),
        ("x/queue-1.db", "must be a file name in /b"),
        ("/b/../etc/passwd", "contains '..'"),
        (".queue-1.db", "is not a backup file name"),
        ("", "is empty"),
    ],
)
def test_resolve_in(tmp_path, name, error, monkeypatch):
    monkeypatch.setattr(os, "lstat", lambda _path: os.stat_result((stat.S_IFREG | 0o600,) + (0,) * 9))
    if error is None:
        assert _sqlite.resolve_in("/b", name, "backup") == "/b/queue-1.db"
    else:
        with pytest.raises(_sqlite.InputError, match=error.replace(".", r"\.")):
            _sqlite.resolve_in("/b", name, "backup")


def test_a_locked_database_is_not_taken_for_a_corrupt_one(run, paths, monkeypatch):
    db, backups = paths
    make_db(db)
    backup(backups, "queue-20260101T000000Z.db")
    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT", 0.2)
    writer = sqlite3.connect(db)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        before = tree(db.parent, backups)
        result = run()
        assert result.failed and result["error_kind"] == "unavailable", result.result
        assert "a writer holds its lock" in result.msg
        assert tree(db.parent, backups) == before
    finally:
        writer.rollback()
        writer.close()
