"""The safety envelope's state, read and reset from the CLI.

The store is the collection's ``plugins/module_utils/_envelope.py`` (stdlib only), loaded
by path so the CLI and the ``remediation_guard`` module share one implementation and
one file. The default path follows the CLI's state directory; with ``$RUNBOOK_STATE_DSN``
the envelope is that PostgreSQL database instead (:mod:`runbook_remediation.shared_state`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from runbook_remediation import shared_state
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import Unavailable
from runbook_remediation.paths import state_dir


def _module() -> ModuleType:
    path = find_collection().root / "plugins" / "module_utils" / "_envelope.py"
    spec = importlib.util.spec_from_file_location("runbook_remediation._envelope_store", path)
    if spec is None or spec.loader is None:
        raise Unavailable(f"the collection's envelope store {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def db_path() -> Path:
    """``$RUNBOOK_ENVELOPE_DB``, else ``envelope.db`` in the state directory."""
    given = os.environ.get("RUNBOOK_ENVELOPE_DB")
    return Path(given).expanduser() if given else state_dir() / "envelope.db"


def open_envelope():
    store = _module()
    try:
        dsn = shared_state.dsn()
        if dsn:
            return store.Envelope(dsn=dsn)
        shared_state.warn_if_private(os.environ)
        return store.Envelope(str(db_path()))
    except store.EnvelopeError as exc:
        raise Unavailable(str(exc)) from exc
