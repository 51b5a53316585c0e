"""The Kubernetes lab cluster for tests (cli/runbook_remediation/lab/kubernetes.py): one per
test module, in a tmp run dir, skipped when scripts/kubernetes-build has not run here (a
failure instead under scripts/test, which builds it: RUNBOOK_REQUIRE_KUBERNETES)."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from runbook_remediation.errors import Unavailable
from runbook_remediation.lab import kubernetes as k8s


@contextlib.contextmanager
def started_cluster(tmp_path_factory, before=None):
    """Start a cluster (``before()`` is called first, its value kept on the cluster as
    ``before``); stop it on exit."""
    try:
        k8s.ensure_prerequisites()
    except Unavailable as exc:
        why = f"Kubernetes lab cluster unavailable: {exc.message} ({exc.hint or 'see TESTBED.md'})"
        if os.environ.get("RUNBOOK_REQUIRE_KUBERNETES"):
            pytest.fail(why)  # scripts/test built the binaries: a skip here would hide a broken cluster
        pytest.skip(why)
    cluster = k8s.Cluster(tmp_path_factory.mktemp("k8s"))
    cluster.before = before() if before else None
    started = time.monotonic()
    cluster.timings = cluster.start()
    cluster.timings["measured"] = round(time.monotonic() - started, 1)
    try:
        yield cluster
    finally:
        cluster.stop()
