"""Fault injection: SIGKILL sqlite_restore at seeded random points of its run, many times.

The module runs as a real child process on real SQLite files of a few MB (so kills land
mid-copy, mid-fsync, mid-check and around the rename). After every kill:

* the database opens, passes integrity_check, and is the original or the backup (byte for
  byte in rollback-journal mode; by content digest in WAL mode, where folding the log into
  the old file changes its bytes but not its content), never a mix;
* whenever it is not the original, the pre-restore copy exists and is the original's bytes;
* a pre-restore copy under its final name is always complete;
* a run after the kill finishes the job and leaves no temporary file behind.

A SIGKILL stops the process, not the machine: written data stays in the page cache, so this
proves the order of operations (what a killed run leaves), not durability on power loss.
No lab is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SEED = 20261124
ROWS = 36000  # about 9 MB with the payload below

CHILD = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from tests.collection_loader import install_collection_loader
install_collection_loader()
from ansible.module_utils.testing import patch_module_args
from ansible_collections.runbook.remediation.plugins.modules import sqlite_restore
args = json.loads(sys.argv[1])
print('ready', flush=True)
sys.stdin.readline()
with patch_module_args(args):
    sqlite_restore.main()
"""


def make_db(path: Path, status: str, rows: int = ROWS, wal: bool = False) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE queue_items (id INTEGER PRIMARY KEY, status TEXT, payload TEXT)")
    conn.executemany("INSERT INTO queue_items (status, payload) VALUES (?, ?)",
                     [(status, os.urandom(100).hex()) for _row in range(rows)])
    conn.commit()
    conn.close()


def sha(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content(path: Path) -> tuple[bool, str]:
    """(integrity ok, digest of the rows) of the database as SQLite would see it (with its -wal),
    read from a scratch copy so the files under test are never changed by the check."""
    scratch = path.parent.parent / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        shutil.copyfile(path, scratch / "db")
        if Path(f"{path}-wal").exists():
            shutil.copyfile(f"{path}-wal", scratch / "db-wal")
        conn = sqlite3.connect(scratch / "db")
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            digest = hashlib.sha256()
            for row in conn.execute("SELECT id, status, payload FROM queue_items ORDER BY id"):
                digest.update(repr(row).encode())
            return ok, digest.hexdigest()
        finally:
            conn.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Case:
    """A pristine original and backup, copied into place before each trial."""

    def __init__(self, root: Path, wal: bool):
        self.root = root
        self.wal = wal
        self.pristine = root / "pristine"
        self.pristine.mkdir(parents=True)
        self.data = root / "data"
        self.backups = root / "backups"
        self.db = self.data / "queue.db"
        make_db(self.pristine / "backup.db", "restored", rows=ROWS - 500)
        original = self.pristine / "queue.db"
        make_db(original, "original", wal=wal)
        if wal:
            # Committed rows that live only in the -wal (autocheckpoint is off): a stale log that
            # must neither be lost from the copy nor leak into the restored database.
            writer = sqlite3.connect(original)
            writer.execute("PRAGMA wal_autocheckpoint=0")
            writer.executemany("UPDATE queue_items SET status = ? WHERE id = ?",
                               [("in-wal", i) for i in range(1, ROWS, 7)])
            writer.commit()
            frozen = root / "frozen"
            frozen.mkdir()
            for suffix in ("", "-wal"):
                shutil.copyfile(f"{original}{suffix}", frozen / f"queue.db{suffix}")
            writer.close()
            for suffix in ("", "-wal"):
                shutil.copyfile(frozen / f"queue.db{suffix}", f"{original}{suffix}")
            Path(f"{original}-shm").unlink(missing_ok=True)
            shutil.rmtree(frozen)
            assert Path(f"{original}-wal").stat().st_size > 1 << 20
        self.original_ok, self.original = content(original)
        self.original_bytes = {s: sha(f"{original}{s}") for s in ("", "-wal") if Path(f"{original}{s}").exists()}
        self.backup_ok, self.restored = content(self.pristine / "backup.db")
        assert self.original_ok and self.backup_ok and self.original != self.restored

    def reset(self) -> None:
        for directory in (self.data, self.backups):
            shutil.rmtree(directory, ignore_errors=True)
        self.data.mkdir()
        self.backups.mkdir()
        for suffix in self.original_bytes:
            shutil.copyfile(self.pristine / f"queue.db{suffix}", f"{self.db}{suffix}")
        name = "queue-20261124T030000Z.db"
        shutil.copyfile(self.pristine / "backup.db", self.backups / name)
        (self.backups / f"{name}.sha256").write_text(f"{sha(self.backups / name)}  {name}\n")

    def args(self, **extra) -> dict:
        return {"path": str(self.db), "backups_dir": str(self.backups), "force": True, **extra}

    def copies(self) -> list[Path]:
        """Pre-restore copies under their final name."""
        pre = self.backups / "pre-restore"
        return sorted(p for p in pre.glob("queue-*.db")) if pre.is_dir() else []

    def temps(self) -> list[Path]:
        found = []
        for directory in (self.data, self.backups, self.backups / "pre-restore"):
            if directory.is_dir():
                found += [p for p in directory.iterdir() if p.name.startswith(".runbook-")]
        return found


def start(args: dict) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    return child


def run_to_end(args: dict) -> tuple[dict, float]:
    """One complete run; its result and how long the module itself took."""
    child = start(args)
    began = time.monotonic()
    out, err = child.communicate("go\n", timeout=120)
    elapsed = time.monotonic() - began
    assert child.returncode == 0, out + err
    return json.loads(out), elapsed


def kill_at(args: dict, delay: float) -> bool:
    """Start the module, SIGKILL it ``delay`` seconds in. True when it was still running."""
    child = start(args)
    child.stdin.write("go\n")
    child.stdin.flush()
    time.sleep(delay)
    alive = child.poll() is None
    if alive:
        child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    return alive


def typical_duration(case: Case, args: dict) -> float:
    """The median of three complete runs (the first one also warms the page cache)."""
    durations = []
    for _run in range(3):
        case.reset()
        result, elapsed = run_to_end(args)
        assert result["changed"] is True and content(case.db)[1] == case.restored
        durations.append(elapsed)
    return sorted(durations)[1]


def check_invariants(case: Case, label: str) -> str:
    """The state a kill left: 'original' or 'restored' (fails the test on anything else)."""
    assert case.db.exists(), f"{label}: the database is gone"
    ok, digest = content(case.db)
    assert ok, f"{label}: the database fails integrity_check"
    assert digest in (case.original, case.restored), f"{label}: the database is neither the original nor the backup"
    if not case.wal:
        assert sha(case.db) in (case.original_bytes[""], sha(case.pristine / "backup.db")), f"{label}: bytes mixed"
    for copy in case.copies():
        # A copy under its final name is complete: the original's raw bytes, every file.
        for suffix, expected in case.original_bytes.items():
            assert sha(f"{copy}{suffix}") == expected, f"{label}: pre-restore copy {copy.name}{suffix} incomplete"
        assert Path(f"{copy}.sha256").exists(), f"{label}: pre-restore copy without its sidecar"
    state = "original" if digest == case.original else "restored"
    if state == "restored":
        assert case.copies(), f"{label}: the database was replaced but no pre-restore copy exists"
    return state


def strata(rng: random.Random, count: int, span: float) -> list[float]:
    """``count`` delays spread over [0, span]: one uniform draw in each equal slice."""
    width = span / count
    delays = [(i + rng.random()) * width for i in range(count)]
    rng.shuffle(delays)
    return delays


@pytest.mark.parametrize(("wal", "trials"), [(False, 20), (True, 12)], ids=["rollback-journal", "wal"])
def test_killed_restore_leaves_original_or_backup_never_a_mix(tmp_path, wal, trials):
    case = Case(tmp_path, wal)
    duration = typical_duration(case, case.args())
    span = duration * 1.25  # past the end too: a slower trial still gets kills after its swap

    rng = random.Random(SEED + wal)
    seen = {"original": 0, "restored": 0, "killed mid-copy": 0, "killed": 0}

    def trial(number: int, delay: float) -> None:
        case.reset()
        label = f"trial {number} (kill at {delay * 1000:.0f} of {duration * 1000:.0f} ms)"
        seen["killed"] += kill_at(case.args(), delay)
        seen["killed mid-copy"] += bool(case.temps())
        seen[check_invariants(case, label)] += 1

        # The next run cleans up after the killed one and finishes the restore.
        after, _elapsed = run_to_end(case.args())
        assert after["changed"] is True, label
        assert content(case.db)[1] == case.restored, label
        assert not case.temps(), f"{label}: temporary files left: {case.temps()}"
        # One copy holds the original (the killed run's, or the rerun's when the kill came before the swap).
        assert any(content(copy)[1] == case.original for copy in case.copies()), label

    for number, delay in enumerate(strata(rng, trials, span)):
        trial(number, delay)
    # A loaded machine runs slower than the measured duration: when a region of the run got
    # no kill, aim a few more trials at it (every trial checks the same invariants).
    for extra in range(1, 9):
        if seen["restored"] == 0:
            delay = span * (1 + extra / 2)
        elif seen["original"] == 0:
            delay = duration * 0.05 / extra
        elif seen["killed mid-copy"] == 0:
            delay = duration * rng.uniform(0.2, 0.8)
        else:
            break
        trial(trials + extra, delay)

    print(f"\n{'wal' if wal else 'rollback-journal'}: run {duration * 1000:.0f} ms, {trials} trials: {seen}")
    # The kills covered the run: some before the swap, some after, some in the middle of a copy.
    assert seen["killed"] >= trials // 2, seen
    assert seen["original"] >= 1 and seen["restored"] >= 1 and seen["killed mid-copy"] >= 1, seen


def test_killed_rollback_leaves_restored_or_original(tmp_path):
    case = Case(tmp_path, wal=False)
    case.reset()
    restored, _elapsed = run_to_end(case.args())
    copy = restored["pre_restore_copy"]["path"]
    snapshot = tmp_path / "after-restore"
    shutil.copytree(case.root / "data", snapshot / "data")
    shutil.copytree(case.root / "backups", snapshot / "backups")
    rollback = case.args(state="rolled_back", pre_restore_copy=copy, force=False)
    _result, duration = run_to_end(rollback)
    assert content(case.db)[1] == case.original

    rng = random.Random(SEED + 7)
    seen = {"original": 0, "restored": 0}

    def trial(number: int, delay: float) -> None:
        for name in ("data", "backups"):
            shutil.rmtree(case.root / name)
            shutil.copytree(snapshot / name, case.root / name)
        kill_at(rollback, delay)
        seen[check_invariants(case, f"rollback trial {number}")] += 1
        run_to_end(rollback)
        assert content(case.db)[1] == case.original and not case.temps()

    for number, delay in enumerate(strata(rng, 8, duration * 1.15)):
        trial(number, delay)
    for extra in range(1, 9):  # a loaded machine: aim more trials at the region that got none
        if seen["original"] == 0:
            trial(8 + extra, duration * 1.15 * (1 + extra / 2))
        elif seen["restored"] == 0:
            trial(8 + extra, duration * 0.05 / extra)
        else:
            break
    assert seen["original"] >= 1 and seen["restored"] >= 1, seen
