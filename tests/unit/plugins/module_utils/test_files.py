"""_files: a root is validated once, then reached from / without following any link, and must still be the
directory that was validated (file_cleanup's behaviour as a whole is in tests/unit/plugins/modules)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _files

OLD = time.time() - 30 * 86400


def old_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 100)
    os.utime(path, (OLD, OLD))
    return path


@pytest.fixture
def tree(tmp_path):
    """srv/logs/app.log.1.gz (the root and its old file), and elsewhere/logs/app.log.1.gz (a decoy with the same
    layout, which a swapped parent would lead to)."""
    old_file(tmp_path / "srv" / "logs" / "app.log.1.gz")
    old_file(tmp_path / "elsewhere" / "logs" / "app.log.1.gz")
    (tmp_path / "file").write_text("not a directory")
    return tmp_path


def test_resolve_root_returns_the_identity_of_the_directory(tree):
    root = tree / "srv" / "logs"
    st = os.stat(root)
    assert _files.resolve_root(str(root)) == (st.st_dev, st.st_ino)
    assert _files.resolve_root(str(tree / "nope")) is None
    assert _files.resolve_root(str(tree / "file" / "below")) is None


@pytest.mark.parametrize(("path", "message"), [
    ("file", "is not a directory"),
    ("alias/logs", "through a symbolic link"),
    ("alias", "through a symbolic link"),
])
def test_resolve_root_refuses(tree, path, message):
    (tree / "alias").symlink_to(tree / "srv", target_is_directory=True)
    with pytest.raises(_files.InputError, match=message):
        _files.resolve_root(str(tree / path))


def test_open_root_reaches_the_validated_directory(tree):
    root = str(tree / "srv" / "logs")
    fd = _files.open_root(root, _files.resolve_root(root))
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(root))
    finally:
        os.close(fd)


@pytest.mark.parametrize(("path", "link", "error", "message"), [
    ("srv/logs", "srv", _files.PathChanged, "{tree}/srv is now a symbolic link"),  # a parent
    ("srv/logs", "srv/logs", _files.PathChanged, "{tree}/srv/logs is now a symbolic link"),  # the root itself
    ("file/logs", None, NotADirectoryError, None),
    ("nope/logs", None, FileNotFoundError, None),
])
def test_open_root_follows_no_link(tree, path, link, error, message):
    if link:
        (tree / link).rename(tree / "moved")
        (tree / link).symlink_to(tree / "elsewhere" / ("logs" if link.endswith("logs") else ""),
                                 target_is_directory=True)
    with pytest.raises(error, match=message and message.format(tree=tree)):
        _files.open_root(str(tree / path))


def test_open_root_refuses_another_directory_in_the_place_of_the_validated_one(tree):
    root = str(tree / "srv" / "logs")
    identity = _files.resolve_root(root)
    (tree / "srv").rename(tree / "srv.before")
    (tree / "elsewhere").rename(tree / "srv")  # a real directory, no link anywhere: only the inode tells
    with pytest.raises(_files.PathChanged, match="another directory took its place"):
        _files.open_root(root, identity)


@pytest.mark.parametrize("swap", ["symlink", "directory"])
def test_a_parent_swapped_between_validation_and_removal_redirects_nothing(tree, swap):
    """The module's steps one by one: validate, (the swap), clean. Following the path would now reach the decoy."""
    root = str(tree / "srv" / "logs")
    identity = _files.resolve_root(root)
    (tree / "srv").rename(tree / "srv.validated")
    if swap == "symlink":
        (tree / "srv").symlink_to(tree / "elsewhere", target_is_directory=True)
    else:
        (tree / "elsewhere").rename(tree / "srv")
    decoy = tree / "srv" / "logs" / "app.log.1.gz"
    assert decoy.exists()  # what a removal by path would hit
    cleaner = _files.Cleaner(["*.gz"], 0, open_files=_files.OpenFiles())
    with pytest.raises(_files.PathChanged, match="is not the directory that was checked"):
        cleaner.run(root, expected=identity)
    assert cleaner.removed == [] and decoy.exists()
    assert (tree / "srv.validated" / "logs" / "app.log.1.gz").exists()


def test_without_an_identity_a_linked_parent_is_still_refused(tree):
    """process_cleanup's leftovers call run() without an identity: the walk alone refuses the link."""
    (tree / "srv").rename(tree / "srv.real")
    (tree / "srv").symlink_to(tree / "elsewhere", target_is_directory=True)
    cleaner = _files.Cleaner(["*.gz"], 0, open_files=_files.OpenFiles())
    with pytest.raises(_files.PathChanged):
        cleaner.run(str(tree / "srv" / "logs"))
    assert (tree / "elsewhere" / "logs" / "app.log.1.gz").exists()


def test_a_root_gone_after_validation_is_skipped(tree):
    root = str(tree / "srv" / "logs")
    identity = _files.resolve_root(root)
    (tree / "srv" / "logs" / "app.log.1.gz").unlink()
    (tree / "srv" / "logs").rmdir()
    cleaner = _files.Cleaner(["*.gz"], 0, open_files=_files.OpenFiles())
    cleaner.run(root, expected=identity)
    assert cleaner.removed == [] and cleaner.kept == []
