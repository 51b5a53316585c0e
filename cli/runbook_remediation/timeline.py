"""The incident timeline store, as the CLI sees it.

The store is the collection's ``plugins/module_utils/_timeline.py`` (stdlib only), loaded
here BY PATH from the collection the CLI drives: the CLI and the ``timeline`` callback
plugin (which Ansible imports as a collection module) then share one implementation and
one schema, whichever entrance wrote a record.

Its errors (``TimelineError``: kind ``input`` or ``unavailable``) become RunbookErrors
with the matching exit code through :func:`translate`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from runbook_remediation import secret_names, shared_state
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import BadInput, Unavailable
from runbook_remediation.paths import state_dir

CALLBACK = "runbook.remediation.timeline"
_RELATIVE = Path("plugins") / "module_utils" / "_timeline.py"
_loaded: dict[Path, ModuleType] = {}


def load_module(root: Path | None = None) -> ModuleType:
    """The collection's ``_timeline`` module (loaded once per path)."""
    root = root or find_collection().root
    path = (root / _RELATIVE).resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        raise Unavailable(f"the collection at {root} has no timeline store ({_RELATIVE})",
                          hint="update runbook.remediation: incidents need its timeline store")
    name = f"runbook_remediation._collection_timeline_{len(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise Unavailable(f"cannot load the timeline store {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import failure means the store is unusable
        sys.modules.pop(name, None)
        raise Unavailable(f"cannot load the timeline store {path}: {exc}") from exc
    _loaded[path] = module
    return module


def db_path() -> Path:
    """``$RUNBOOK_TIMELINE_DB``, else ``<state dir>/timeline.db`` (the store's own rule)."""
    if os.environ.get("RUNBOOK_TIMELINE_DB"):
        return Path(os.environ["RUNBOOK_TIMELINE_DB"]).expanduser()
    return state_dir() / "timeline.db"


def translate(exc: Exception) -> Exception:
    """A store error as the RunbookError the CLI exits with."""
    message = str(exc)
    if getattr(exc, "kind", "unavailable") == "input":
        return BadInput(message)
    return Unavailable(message)


@contextlib.contextmanager
def open_store(path: Path | None = None, secrets=()) -> Iterator:
    """An open ``TimelineStore`` (the shared database when ``$RUNBOOK_STATE_DSN`` is set
    and no ``path`` is given); store errors leave as RunbookErrors."""
    module = load_module()
    dsn = None if path else shared_state.dsn()
    try:
        if dsn:
            store = module.TimelineStore(dsn=dsn, secrets=list(secrets))
        else:
            store = module.TimelineStore(str(path or db_path()), secrets=list(secrets))
    except module.TimelineError as exc:
        raise translate(exc) from exc
    try:
        yield store
    except module.TimelineError as exc:
        raise translate(exc) from exc
    finally:
        store.close()


def mask(value):
    """The store's default masking (secret keys, inline secrets, URL userinfo, bearer tokens)."""
    return load_module().mask(value)


def secret_values(data) -> set[str]:
    """Literal values under secret-like keys of ``data`` (e.g. extra vars)."""
    return set(load_module().secret_values(data))


def is_secret_var(name: str, value) -> bool:
    """Whether an extra var holds a secret: its name says so (the collection's one rule,
    the store's too), or masking changes its value (a password inside a URL, a bearer
    token in a header, a nested secret key)."""
    module = load_module()
    if secret_names.is_secret_name(name) and not (value is None or isinstance(value, bool) or value == ""):
        return True
    return module.mask(value) != _plain(value)


def _plain(value):
    """``value`` as mask() returns an untouched one (tuples become lists, and so on)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def now() -> str:
    """UTC now in the store's format (``2026-12-01T10:11:12.345Z``)."""
    return load_module().utc_now()
