"""Which names hold a secret: the collection's one rule, as the CLI sees it.

The rule is the collection's ``plugins/module_utils/_secrets.py`` (stdlib only), loaded
here BY PATH from the collection the CLI drives, like the timeline store: the store's
masking, the secret extra vars kept off disk and the ``RUNBOOK_*`` variables never
passed to a child process all ask the same regular expression.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from runbook_remediation.collection import find_collection
from runbook_remediation.errors import Unavailable

_RELATIVE = Path("plugins") / "module_utils" / "_secrets.py"
_loaded: dict[Path, ModuleType] = {}


def load_module(root: Path | None = None) -> ModuleType:
    """The collection's ``_secrets`` module (loaded once per path)."""
    root = root or find_collection().root
    path = (root / _RELATIVE).resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        raise Unavailable(f"the collection at {root} has no secret-name rule ({_RELATIVE})",
                          hint="update runbook.remediation to the version of this runbook CLI")
    spec = importlib.util.spec_from_file_location(f"runbook_remediation._collection_secrets_{len(_loaded)}", path)
    if spec is None or spec.loader is None:
        raise Unavailable(f"cannot load the secret-name rule {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import failure means the rule is unusable
        raise Unavailable(f"cannot load the secret-name rule {path}: {exc}") from exc
    _loaded[path] = module
    return module


def is_secret_name(name: str) -> bool:
    """Whether ``name`` (a variable, a key) names a secret."""
    return bool(load_module().is_secret_name(name))
