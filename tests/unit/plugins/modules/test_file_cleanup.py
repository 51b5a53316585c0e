"""file_cleanup: what goes, what stays (and why), and what is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _files
from ansible_collections.runbook.remediation.plugins.modules import file_cleanup

DAY = 86400
OLD = time.time() - 30 * DAY


def make(path: Path, size: int = 4096, mtime: float | None = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def run(run_module):
    def _run(check: bool = False, diff: bool = False, **args):
        args.setdefault("age", "7d")
        if check:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        return run_module(file_cleanup.main, args)

    return _run


@pytest.fixture
def logs(tmp_path):
    """A log directory: a live log, rotated logs old and new, and decoys around it."""
    root = tmp_path / "log" / "app"
    make(root / "app.log", 8192)  # live log, old mtime: only `protect` keeps it
    make(root / "app.log.1", 4096, mtime=None)  # rotated today: too young
    make(root / "app.log.2.gz", 4096)
    make(root / "app.log-20260101.gz", 4096)
    make(root / "notes.txt", 4096)  # matches no pattern
    make(tmp_path / "log" / "other" / "app.log.9.gz", 4096)  # outside the root
    return root


def paths(items) -> set[str]:
    return {item["path"] for item in items}


def reasons(result) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in result["kept"]}


ROTATED = ["*.log.*", "*.log-*"]


def test_removes_old_rotated_logs_only(run, logs, tmp_path):
    result = run(paths=[str(logs)], patterns=ROTATED, protect=[f"{logs}/*.log"])
    assert not result.failed, result.msg
    assert result["changed"] is True
    assert paths(result["removed"]) == {f"{logs}/app.log.2.gz", f"{logs}/app.log-20260101.gz"}
    assert not (logs / "app.log.2.gz").exists()
    assert (logs / "app.log").exists() and (logs / "app.log.1").exists() and (logs / "notes.txt").exists()
    assert (tmp_path / "log" / "other" / "app.log.9.gz").exists()
    assert result["bytes_freed"] >= 8192
    assert "newer than the minimum age" in reasons(result)[f"{logs}/app.log.1"]
    assert result["removed"][0]["type"] == "file" and result["removed"][0]["size"] == 4096
    assert result["removed"][0]["mtime"].endswith("Z")
    fs = result["filesystems"][0]
    assert fs["roots"] == [str(logs)] and fs["projected"] is False
    assert fs["freed_bytes"] == result["bytes_freed"]
    assert {"mount", "size_bytes", "used_bytes_before", "used_percent_before", "used_bytes", "avail_bytes",
            "used_percent"} <= set(fs)
    assert result.msg.startswith("removed 2 of 3 matching entries")


def test_second_run_changes_nothing(run, logs):
    run(paths=[str(logs)], patterns=ROTATED, protect=[f"{logs}/*.log"])
    result = run(paths=[str(logs)], patterns=ROTATED, protect=[f"{logs}/*.log"])
    assert result["changed"] is False and result["removed"] == [] and result["bytes_freed"] == 0


def test_live_log_is_protected_even_when_old_and_matching(run, logs):
    result = run(paths=[str(logs)], patterns=["*.log", *ROTATED], protect=[f"{logs}/*.log"])
    assert (logs / "app.log").exists()
    assert reasons(result)[f"{logs}/app.log"].startswith("protected")


def test_check_mode_removes_nothing_and_projects_usage(run, logs):
    result = run(check=True, diff=True, paths=[str(logs)], patterns=ROTATED, protect=[f"{logs}/*.log"])
    assert not result.failed, result.msg
    assert result["changed"] is True
    assert paths(result["removed"]) == {f"{logs}/app.log.2.gz", f"{logs}/app.log-20260101.gz"}
    assert (logs / "app.log.2.gz").exists() and (logs / "app.log-20260101.gz").exists()
    fs = result["filesystems"][0]
    assert fs["projected"] is True
    assert fs["used_bytes"] == fs["used_bytes_before"] - result["bytes_freed"]
    assert result.msg.startswith("would remove 2")
    assert set(result["diff"]["before"]["files"]) == paths(result["removed"])


def test_symlink_pointing_outside_is_neither_followed_nor_removed(run, logs, tmp_path):
    target = make(tmp_path / "precious" / "app.log.7.gz")
    (logs / "app.log.7.gz").symlink_to(target)
    (logs / "escape").symlink_to(tmp_path / "precious", target_is_directory=True)
    result = run(paths=[str(logs)], patterns=ROTATED, max_depth=5)
    assert target.exists() and (logs / "app.log.7.gz").is_symlink()
    assert reasons(result)[f"{logs}/app.log.7.gz"] == (
        f"symbolic link to {target} (links are never followed nor removed)")
    assert not any(p.startswith(str(tmp_path / "precious")) for p in paths(result["removed"]))


@pytest.mark.parametrize("pattern", ["../*", "../../etc/*", "sub/*.gz", "..", "", "."])
def test_patterns_with_a_path_are_refused(run, logs, pattern):
    result = run(paths=[str(logs)], patterns=[pattern])
    assert result.failed and result["error_kind"] == "input", result.msg
    assert (logs / "app.log.2.gz").exists()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("{logs}/../other", "contains '..'"),
        ("{logs}/..", "contains '..'"),
        ("relative/dir", "not absolute"),
        ("{logs}/*", "glob characters"),
        ("/", "too broad"),
        ("/etc", "too broad"),
        ("/var/", "too broad"),
        ("//usr", "too broad"),
    ],
)
def test_bad_roots_are_refused(run, logs, path, why):
    result = run(paths=[path.format(logs=logs)], patterns=["*"], age="0")
    assert result.failed and result["error_kind"] == "input"
    assert why in result.msg
    assert (logs / "app.log.2.gz").exists()


def test_root_through_a_symlink_is_refused(run, logs, tmp_path):
    (tmp_path / "alias").symlink_to(logs, target_is_directory=True)
    result = run(paths=[str(tmp_path / "alias")], patterns=ROTATED)
    assert result.failed and result["error_kind"] == "input"
    assert "through a symbolic link" in result.msg
    assert (logs / "app.log.2.gz").exists()


def test_root_that_is_a_file_is_refused(run, logs):
    result = run(paths=[str(logs / "notes.txt")], patterns=["*"])
    assert result.failed and "is not a directory" in result.msg


def test_missing_root_is_reported_not_an_error(run, tmp_path):
    result = run(paths=[str(tmp_path / "nope")], patterns=["*"])
    assert not result.failed, result.msg
    assert result["roots"] == [{"path": str(tmp_path / "nope"), "exists": False}]
    assert result["filesystems"][0]["roots"] == [str(tmp_path / "nope")]


@pytest.fixture
def holder():
    """A separate process holding files open (as a service keeps its log)."""
    procs = []

    def hold(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'rb'); print('ok', flush=True); "
             "time.sleep(60)", str(path)],
            stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout.readline().strip() == "ok"
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_open_file_is_kept(run, logs, holder):
    proc = holder(logs / "app.log.2.gz")
    result = run(paths=[str(logs)], patterns=ROTATED)
    assert (logs / "app.log.2.gz").exists()
    assert reasons(result)[f"{logs}/app.log.2.gz"].startswith(f"open by process {proc.pid} (")
    assert not (logs / "app.log-20260101.gz").exists()
    held = {item["path"]: item["open"] for item in result["largest"]}
    assert held[f"{logs}/app.log.2.gz"] is True


def test_open_check_can_be_switched_off(run, logs, holder):
    holder(logs / "app.log.2.gz")
    result = run(paths=[str(logs)], patterns=ROTATED, exclude_open=False)
    assert not (logs / "app.log.2.gz").exists()
    assert "deleted_open" not in result.result


def test_deleted_but_open_files_are_reported(run, logs, holder):
    victim = make(logs / "big.log.1", 65536, mtime=None)
    proc = holder(victim)
    victim.unlink()
    result = run(paths=[str(logs)])
    assert not result.failed, result.msg
    assert result["removed"] == []  # no patterns: only measures
    entry = next(item for item in result["deleted_open"] if item["path"] == str(victim))
    assert entry["pid"] == proc.pid and entry["size"] == 65536 and entry["fd"] >= 3


def test_uninspectable_processes_fall_back_to_a_kernel_lease(run, logs, holder, monkeypatch):
    """A process whose fds cannot be read: every candidate is asked of the kernel instead."""
    found = _files.OpenFiles()
    found.uninspectable = [4242]
    monkeypatch.setattr(_files, "scan_open_files", lambda: found)
    holder(logs / "app.log.2.gz")  # open, but the scan (faked) does not know it
    result = run(paths=[str(logs)], patterns=ROTATED)
    assert not result.failed, result.msg
    assert (logs / "app.log.2.gz").exists()
    assert reasons(result)[f"{logs}/app.log.2.gz"] == (
        "open by a process that could not be inspected (the kernel refused a lease)")
    assert not (logs / "app.log-20260101.gz").exists()
    assert result["uninspectable"] == [4242]
    assert "4242" in result.warnings[0]


def test_kept_when_even_the_lease_cannot_tell(run, logs, monkeypatch):
    found = _files.OpenFiles()
    found.uninspectable = [4242]
    monkeypatch.setattr(_files, "scan_open_files", lambda: found)
    monkeypatch.setattr(_files, "lease_free", lambda dir_fd, name, st=None: None)
    result = run(paths=[str(logs)], patterns=ROTATED)
    assert result["removed"] == []
    assert reasons(result)[f"{logs}/app.log.2.gz"].startswith("cannot tell whether a process holds it open")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_other_users_processes_are_read_as_that_user(tmp_path):
    """Root without CAP_SYS_PTRACE (a container) reads another user's fds as that user."""
    shared = Path(tempfile.mkdtemp(prefix="file-cleanup-", dir="/tmp"))  # tmp_path is 0700
    os.chmod(shared, 0o755)
    path = make(shared / "held", mtime=None)
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-c", "import sys, time; f = open(sys.argv[1], 'rb'); print('ok', flush=True); "
         "time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True, user=65534, group=65534,
    )
    try:
        assert proc.stdout.readline().strip() == "ok"
        data = _files._scan_as("/proc", 65534, 65534, [str(proc.pid)])
        st = path.stat()
        holders = {tuple(key): who for key, who in data["holders"]}
        assert any(w.startswith(f"{proc.pid} (") for w in holders[(st.st_dev, st.st_ino)])
        assert data["uninspectable"] == []
    finally:
        proc.kill()
        proc.wait()
        path.unlink()
        shared.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_lease_is_asked_as_the_files_owner(tmp_path, holder):
    """Root without CAP_LEASE (a container) asks for the lease from a child running as the owner."""
    shared = Path(tempfile.mkdtemp(prefix="file-cleanup-", dir="/tmp"))
    os.chmod(shared, 0o755)
    path = make(shared / "owned", mtime=None)
    os.chown(path, 65534, 65534)
    fd = os.open(shared, os.O_RDONLY)
    try:
        assert _files._lease_probe_as(fd, "owned", 65534, 65534) is True
        holder(path)
        assert _files._lease_probe_as(fd, "owned", 65534, 65534) is False
    finally:
        os.close(fd)
        path.unlink()
        shared.rmdir()


def test_hard_linked_file_is_kept(run, logs, tmp_path):
    os.link(logs / "app.log.2.gz", tmp_path / "elsewhere")
    result = run(paths=[str(logs)], patterns=ROTATED)
    assert (logs / "app.log.2.gz").exists()
    assert "2 hard links" in reasons(result)[f"{logs}/app.log.2.gz"]


def test_max_depth(run, logs):
    make(logs / "archive" / "app.log.5.gz")
    shallow = run(check=True, paths=[str(logs)], patterns=ROTATED)
    assert f"{logs}/archive/app.log.5.gz" not in paths(shallow["removed"])
    deep = run(check=True, paths=[str(logs)], patterns=ROTATED, max_depth=2)
    assert f"{logs}/archive/app.log.5.gz" in paths(deep["removed"])


def test_temp_directories(run, tmp_path, holder):
    tmp = tmp_path / "tmp"
    old_dir = tmp / "ggen-mcp-old"
    make(old_dir / "a.bin")
    make(old_dir / "sub" / "b.bin")
    outside = make(tmp_path / "keep-me")
    (old_dir / "sub" / "link").symlink_to(outside)
    os.utime(old_dir / "sub" / "link", (OLD, OLD), follow_symlinks=False)
    for directory in (old_dir / "sub", old_dir):
        os.utime(directory, (OLD, OLD))
    busy_dir = tmp / "ggen-mcp-busy"
    make(busy_dir / "c.bin")
    os.utime(busy_dir, (OLD, OLD))
    young_dir = tmp / "ggen-mcp-young"
    make(young_dir / "d.bin", mtime=None)
    make(tmp / "ggen-mcp-file")
    make(tmp / "other-old-file")
    holder(busy_dir / "c.bin")

    without = run(check=True, paths=[str(tmp)], patterns=["ggen-mcp-*"], age="1d")
    assert paths(without["removed"]) == {f"{tmp}/ggen-mcp-file"}
    assert "directories=true" in reasons(without)[str(old_dir)]

    result = run(paths=[str(tmp)], patterns=["ggen-mcp-*"], age="1d", directories=True)
    assert not result.failed, result.msg
    assert paths(result["removed"]) == {str(old_dir), f"{tmp}/ggen-mcp-file"}
    assert not old_dir.exists() and outside.exists()
    assert busy_dir.exists() and young_dir.exists() and (tmp / "other-old-file").exists()
    why = reasons(result)
    assert "open by process" in why[str(busy_dir)]
    assert "newer than the minimum age" in why[str(young_dir)]
    entry = next(item for item in result["removed"] if item["path"] == str(old_dir))
    assert entry["type"] == "directory" and entry["size"] == 8192


def test_file_swapped_for_a_symlink_during_the_check_is_not_removed(run, logs, tmp_path, monkeypatch):
    """The removal re-checks the inode: a swap between check and unlink cannot redirect it."""
    precious = make(tmp_path / "precious.gz")
    original = _files.Cleaner.why_keep_file

    def swap(self, path, st):
        if path.endswith("app.log.2.gz"):
            os.unlink(path)
            os.symlink(precious, path)
        return original(self, path, st)

    monkeypatch.setattr(_files.Cleaner, "why_keep_file", swap)
    monkeypatch.setattr(_files, "scan_open_files", _files.OpenFiles)  # every process inspected, none holds it
    result = run(paths=[str(logs)], patterns=ROTATED)
    assert precious.exists() and (logs / "app.log.2.gz").is_symlink()
    assert reasons(result)[f"{logs}/app.log.2.gz"] == "changed while being checked"


def test_no_patterns_only_measures(run, logs):
    result = run(paths=[str(logs)], report_largest=2)
    assert result["changed"] is False and result["removed"] == [] and result["kept"] == []
    assert result["largest"][0]["path"] == f"{logs}/app.log"
    assert len(result["largest"]) == 2


@pytest.mark.parametrize(
    ("age", "seconds"),
    [("0", 0), ("30", 30), ("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
     ("1.5h", 5400), (" 7D ", 604800)],
)
def test_parse_age(age, seconds):
    assert _files.parse_age(age) == seconds


@pytest.mark.parametrize("age", ["", "-1d", "7x", "d", "nan", "inf"])
def test_bad_age_is_refused(run, logs, age):
    result = run(paths=[str(logs)], patterns=ROTATED, age=age)
    assert result.failed and result["error_kind"] == "input", result.msg


@pytest.mark.parametrize("protect", ["relative/*.log", "/var/log/../etc/*"])
def test_bad_protect_is_refused(run, logs, protect):
    result = run(paths=[str(logs)], patterns=ROTATED, protect=[protect])
    assert result.failed and result["error_kind"] == "input"


@pytest.mark.parametrize("swap", ["symlink", "directory"])
def test_parent_swapped_after_validation_fails_and_removes_nothing(run, tmp_path, monkeypatch, swap):
    """The root is validated, then a parent is replaced (by a link to a decoy, or by another directory) before the
    walk. The module must not follow the path into the decoy: it fails, says why, and removes nothing."""
    parent = tmp_path / "srv"
    validated = make(parent / "logs" / "app.log.2.gz")
    decoy_dir = tmp_path / "elsewhere"
    make(decoy_dir / "logs" / "app.log.3.gz")
    make(decoy_dir / "logs" / "db.log-20260101.gz")

    def swap_then_scan():
        # file_cleanup scans the open files after the validation and before the walk: the race window.
        parent.rename(tmp_path / "srv.validated")
        if swap == "symlink":
            parent.symlink_to(decoy_dir, target_is_directory=True)
        else:
            decoy_dir.rename(parent)
        return _files.OpenFiles()

    monkeypatch.setattr(_files, "scan_open_files", swap_then_scan)
    result = run(paths=[str(parent / "logs")], patterns=ROTATED)
    assert result.failed and result["error_kind"] == "input", result.result
    assert result.msg.startswith(f"file_cleanup: path {parent}/logs is not the directory that was checked: ")
    assert ("is now a symbolic link" if swap == "symlink" else "another directory took its place") in result.msg
    assert result["removed"] == [] and result["bytes_freed"] == 0
    decoys = ["app.log.3.gz", "db.log-20260101.gz"]
    where = decoy_dir if swap == "symlink" else parent
    assert all((where / "logs" / name).exists() for name in decoys)
    assert (tmp_path / "srv.validated" / "logs" / validated.name).exists()
