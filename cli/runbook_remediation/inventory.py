"""What an inventory holds, as ansible itself reads it (``ansible-inventory --list``).

``runbook watch`` gives the rulebook's alert filter the inventory's host names (an alert
may only name one of them); ``runbook triage --run`` checks the host an alert names the
same way. A broken inventory is bad input with ansible's own words.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from runbook_remediation.errors import BadInput, Unavailable

TIMEOUT = 120


def host_names(path: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """Every host name of the inventory at ``path``, sorted."""
    binary = Path(sys.executable).parent / "ansible-inventory"
    argv = [str(binary) if binary.is_file() else "ansible-inventory", "-i", str(path), "--list"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=TIMEOUT,
                              env=dict(env) if env is not None else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"cannot read the inventory {path} with ansible-inventory: {exc}") from exc
    if proc.returncode != 0:
        raise BadInput(f"inventory {path} cannot be parsed: {_reason(proc.stderr)}")
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise BadInput(f"inventory {path}: ansible-inventory printed no inventory") from exc
    names = set((data.get("_meta") or {}).get("hostvars") or {})
    for group in data.values():
        if isinstance(group, dict):
            names.update(group.get("hosts") or [])
    if not names:
        raise BadInput(f"inventory {path} has no hosts", hint=_reason(proc.stderr) or None)
    return sorted(names)


def _reason(stderr: str) -> str:
    """ansible's first error or warning line about the source, without its markup."""
    for line in (stderr or "").splitlines():
        text = line.strip()
        if text.startswith(("[WARNING]", "[ERROR]", "ERROR!")):
            return " ".join(text.split(":", 1)[-1].split())
    return " ".join((stderr or "").split())[:300]
