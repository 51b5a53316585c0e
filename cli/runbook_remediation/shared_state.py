"""The shared state backend as the CLI sees it: ``$RUNBOOK_STATE_DSN``.

Unset, the safety envelope and the incident timeline are SQLite files in this user's
state directory. Set (a libpq DSN or ``postgresql://`` URL), both live in that
PostgreSQL database, shared by a team and a fleet of controllers. The backend code is
the collection's ``plugins/module_utils/_statedb.py``, loaded by path like the stores.

The password never leaves this process in the clear: a child (ansible-playbook through
ansible-runner, which writes its environment to ``artifacts/<id>/command``; ansible-rulebook)
gets the DSN without its password and ``PGPASSFILE`` naming a 0600 file in a private
temporary directory outside the state directory, removed when the child is done.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

from runbook_remediation.collection import find_collection
from runbook_remediation.errors import Unavailable

ENV = "RUNBOOK_STATE_DSN"
# Set by AWX in its jobs (and by a user who means every run to share one state).
_SHARED_HINTS = ("AWX_HOST", "JOB_ID", "AWX_JOB_ID", "TOWER_HOST", "RUNBOOK_SHARED_EXPECTED")
_loaded: dict[Path, ModuleType] = {}


def load_module(root: Path | None = None) -> ModuleType:
    """The collection's ``_statedb`` module (loaded once per path)."""
    path = ((root or find_collection().root) / "plugins" / "module_utils" / "_statedb.py").resolve()
    if path in _loaded:
        return _loaded[path]
    spec = importlib.util.spec_from_file_location(f"runbook_remediation._collection_statedb_{len(_loaded)}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise Unavailable(f"the collection has no shared state backend ({path})",
                          hint="update runbook.remediation to the version of this runbook CLI")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _loaded[path] = module
    return module


def dsn(environ: Mapping[str, str] | None = None) -> str | None:
    """``$RUNBOOK_STATE_DSN``, or None (SQLite files in the state directory)."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    return value or None


def check(environ: Mapping[str, str] | None = None) -> None:
    """Before anything is done: the shared database answers (Unavailable, exit 5, in one
    line without the password, when it does not); or, with private SQLite files where a
    shared state is expected (AWX, sudo), one warning line on stderr."""
    environ = os.environ if environ is None else environ
    given = dsn(environ)
    if given is None:
        warn_if_private(environ)
        return
    statedb = load_module()
    try:
        statedb.connect_postgres(given, statedb.LOCK_ENVELOPE, timeout=10).close()
    except statedb.StateDBError as exc:
        raise Unavailable(str(exc), hint=f"check {ENV} and that the server accepts this controller") from None


def warn_if_private(environ: Mapping[str, str]) -> None:
    """One stderr line when private state looks wrong here: under AWX every job starts
    with an empty state directory; under sudo the state is root's, not the team's."""
    if dsn(environ):
        return
    why = None
    if any(environ.get(name) for name in _SHARED_HINTS):
        why = "this run looks like an AWX job (or RUNBOOK_SHARED_EXPECTED is set)"
    elif environ.get("SUDO_USER"):
        why = f"this run is under sudo (from {environ['SUDO_USER']})"
    if why:
        print(f"runbook: warning: {why} but the safety envelope and the timeline are private SQLite files; "
              f"set {ENV} to share them (docs/shared-state.md)", file=sys.stderr)


@contextlib.contextmanager
def child_env(environ: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """The variables a child needs to reach the shared state: none without a DSN; else
    the DSN without its password, and ``PGPASSFILE`` when it had one (removed on exit)."""
    given = dsn(environ)
    if given is None:
        yield {}
        return
    statedb = load_module()
    try:
        bare, password = statedb.split_password(given)
    except statedb.StateDBError as exc:
        raise Unavailable(str(exc)) from None
    if not password:
        yield {ENV: bare}
        return
    directory = Path(tempfile.mkdtemp(prefix="runbook-pgpass-", dir=_private_base()))
    try:
        passfile = directory / "pgpass"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(statedb.passfile_line(password))
        yield {ENV: bare, "PGPASSFILE": str(passfile)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _private_base() -> str | None:
    """Memory-backed when the machine offers it (as the secret extra vars file)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):  # noqa: S108 - a private 0700 dir inside
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return None
