"""Fixtures for the CLI tests: a copy of the fixture collection, an inventory, state dirs.

Runs are real: ansible-playbook through ansible-runner on localhost (``local-1``,
``local-2``) and one host nobody answers for (``down``).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[3]
# Every collection has the one secret-name rule: the CLI loads it from the collection it drives.
SECRET_RULE = "plugins/module_utils/_secrets.py"
# ...and the state backend under the envelope and the timeline (SQLite or $RUNBOOK_STATE_DSN).
STATE_DB = "plugins/module_utils/_statedb.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def collection(tmp_path) -> Path:
    """A writable copy of the fixture collection (tests may add or break playbooks)."""
    root = tmp_path / "collection"
    shutil.copytree(FIXTURES / "collection", root)
    (root / SECRET_RULE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / SECRET_RULE, root / SECRET_RULE)
    shutil.copy(REPO / STATE_DB, root / STATE_DB)
    return root


@pytest.fixture
def inventory(tmp_path) -> Path:
    path = tmp_path / "inventory.ini"
    python = sys.executable
    path.write_text(
        "[local]\n"
        f"local-1 ansible_connection=local ansible_python_interpreter={python}\n"
        f"local-2 ansible_connection=local ansible_python_interpreter={python}\n"
        "[remote]\n"
        f"down ansible_connection=ssh ansible_host=127.0.0.1 ansible_port={free_port()} ansible_user=nobody\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def runbook_env(monkeypatch, tmp_path, collection) -> Path:
    """A clean environment: our collection, state and cache in tmp_path. Returns the state dir."""
    for name in list(os.environ):
        if name.startswith("RUNBOOK_"):
            monkeypatch.delenv(name)
    state = tmp_path / "state"
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(state))
    monkeypatch.setenv("RUNBOOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(collection))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "ansible-local"))
    monkeypatch.setenv("ANSIBLE_REMOTE_TEMP", str(tmp_path / "ansible-remote"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("CI", raising=False)
    return state
