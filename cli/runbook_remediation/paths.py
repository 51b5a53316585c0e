"""Where the CLI keeps state and caches. Environment first, then XDG defaults."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """The user's state directory: lab state, incidents, run artifacts.

    ``RUNBOOK_STATE_DIR`` wins, then ``$XDG_STATE_HOME/runbook``, then ``~/.local/state/runbook``.
    """
    if os.environ.get("RUNBOOK_STATE_DIR"):
        return Path(os.environ["RUNBOOK_STATE_DIR"]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "runbook"


def cache_dir() -> Path:
    """Build outputs that can be made again: the lab image rootfs, collection links."""
    if os.environ.get("RUNBOOK_CACHE_DIR"):
        return Path(os.environ["RUNBOOK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "runbook-remediation"
