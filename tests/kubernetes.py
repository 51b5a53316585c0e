"""The Kubernetes lab cluster for tests (cli/runbook_remediation/lab/kubernetes.py): one per
test module, in a tmp run dir, skipped when scripts/kubernetes-build has not run here (a
failure instead under scripts/test, which builds it: RUNBOOK_REQUIRE_KUBERNETES). Under
scripts/test the build runs alongside the other tests; the k8s tests wait for its exit status
(RUNBOOK_KUBERNETES_BUILD_STATUS, a file it writes when done)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from runbook_remediation.errors import Unavailable
from runbook_remediation.lab import kubernetes as k8s

# Under the per-test timeout (pyproject.toml): the k8s tests run last, after some 40 minutes
# of others, so a build still running this long after is stuck.
BUILD_WAIT_SECONDS = 600


def wait_for_kubernetes_build() -> None:
    """Wait for scripts/test's background build of the cluster's binaries, when there is one;
    fail with the end of its log when it failed."""
    status_file = os.environ.get("RUNBOOK_KUBERNETES_BUILD_STATUS")
    if not status_file:
        return
    status = Path(status_file)
    log = status.with_suffix("")  # the build's log: the status file's name without ".status"
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    while not status.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"scripts/kubernetes-build still running after {BUILD_WAIT_SECONDS} s more (log {log})")
        time.sleep(2)
    code = status.read_text().strip()
    if code != "0":
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:]) if log.exists() else ""
        pytest.fail(f"scripts/kubernetes-build failed (exit {code}; log {log}):\n{tail}")


def require_kubernetes() -> None:
    """Wait for the background build, then check the cluster's binaries and host: skip the
    test when they are missing, or fail under scripts/test (RUNBOOK_REQUIRE_KUBERNETES)."""
    wait_for_kubernetes_build()
    try:
        k8s.ensure_prerequisites()
    except Unavailable as exc:
        why = f"Kubernetes lab cluster unavailable: {exc.message} ({exc.hint or 'see TESTBED.md'})"
        if os.environ.get("RUNBOOK_REQUIRE_KUBERNETES"):
            pytest.fail(why)  # scripts/test built the binaries: a skip here would hide a broken cluster
        pytest.skip(why)


@contextlib.contextmanager
def started_cluster(tmp_path_factory, before=None):
    """Start a cluster (``before()`` is called first, its value kept on the cluster as
    ``before``); stop it on exit."""
    require_kubernetes()
    cluster = k8s.Cluster(tmp_path_factory.mktemp("k8s"))
    cluster.before = before() if before else None
    started = time.monotonic()
    cluster.timings = cluster.start()
    cluster.timings["measured"] = round(time.monotonic() - started, 1)
    try:
        yield cluster
    finally:
        cluster.stop()
