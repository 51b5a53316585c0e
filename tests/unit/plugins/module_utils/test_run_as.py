"""_run_as: a function run in a forked child as another user, its result or its error back."""

from __future__ import annotations

import errno
import os
import signal

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils._run_as import RunAsError, run_as

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")


def identity(extra=0):
    return [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups()), extra]


@needs_root
@pytest.mark.parametrize(("groups", "expected_groups"), [((), []), ((NOBODY, 4), [4, NOBODY])])
def test_the_function_runs_as_the_user_and_the_parent_keeps_its_identity(groups, expected_groups):
    before = identity()
    assert run_as(NOBODY, NOBODY, identity, 7, groups=groups) == [NOBODY, NOBODY, NOBODY, NOBODY, expected_groups, 7]
    assert identity() == before


@needs_root
def test_keyword_arguments_and_json_shapes():
    def shapes(a, b=None):
        return {"tuple": (a, b), 1: "key"}

    assert run_as(NOBODY, NOBODY, shapes, "x", b=2) == {"tuple": ["x", 2], "1": "key"}  # as JSON brings them back


@needs_root
def test_a_permission_error_in_the_child_comes_back_with_its_errno(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)

    def read(path):
        with open(path) as handle:
            return handle.read()

    with pytest.raises(RunAsError) as excinfo:
        run_as(NOBODY, NOBODY, read, str(secret))
    assert excinfo.value.error == "PermissionError" and excinfo.value.errno == errno.EACCES
    assert str(excinfo.value).startswith(f"read failed as uid {NOBODY} gid {NOBODY}: PermissionError:")
    assert run_as(0, 0, read, str(secret)) == "root only"


@needs_root
def test_a_result_that_is_not_json_is_an_error():
    with pytest.raises(RunAsError, match="TypeError"):
        run_as(NOBODY, NOBODY, lambda: {1, 2})


@needs_root
def test_a_child_that_dies_is_an_error():
    def die():
        os.kill(os.getpid(), signal.SIGKILL)  # the child's own PID: evaluated in the child

    with pytest.raises(RunAsError, match="signal 9") as excinfo:
        run_as(NOBODY, NOBODY, die)
    assert excinfo.value.error is None


def test_the_identity_cannot_be_taken_without_privileges():
    if os.geteuid() == 0:
        # Drop to nobody first, then ask for root from there.
        def nested():
            try:
                run_as(0, 0, os.getuid)
            except RunAsError as exc:
                return [exc.error, exc.errno]
            return None

        assert run_as(NOBODY, NOBODY, nested) == ["PermissionError", errno.EPERM]
    else:
        with pytest.raises(RunAsError, match="PermissionError"):
            run_as(0, 0, os.getuid)
