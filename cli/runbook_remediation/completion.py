"""Shell completion: scenario names, lab faults and releases, inventory hosts, incident ids.

Click calls these while the user presses TAB (``_RUNBOOK_COMPLETE=bash_complete``);
``runbook completion bash|zsh|fish`` (commands/completion.py) prints the script to source. A completion never
fails and never prints: whatever goes wrong (no collection, no lab, no store yet) offers
nothing. They read files only: no playbook, no ansible-inventory, no network.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem


def _matching(names, incomplete: str, help_of=None) -> list[CompletionItem]:
    return [CompletionItem(name, help=help_of(name) if help_of else None)
            for name in names if name.startswith(incomplete)]


def scenario_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        from runbook_remediation import catalogue
        from runbook_remediation.collection import find_collection

        scenarios = {s.name: s for s in catalogue.catalogue(find_collection())}
    except Exception:  # noqa: BLE001 -- completion offers nothing rather than an error
        return []
    return _matching(scenarios, incomplete, lambda name: scenarios[name].severity)


def lab_faults(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from runbook_remediation.lab.lab import FAULTS

    return _matching(FAULTS, incomplete)


def lab_releases(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from runbook_remediation.lab.lab import RELEASES

    return _matching(RELEASES, incomplete)


def _inventory_hosts(data, found: dict) -> None:
    if not isinstance(data, dict):
        return
    hosts = data.get("hosts")
    if isinstance(hosts, dict):
        found.update(dict.fromkeys(str(name) for name in hosts))
    for key, value in data.items():
        if key == "children" and isinstance(value, dict):
            for child in value.values():
                _inventory_hosts(child, found)
        elif key not in ("hosts", "vars", "children") and isinstance(value, dict):
            _inventory_hosts(value, found)  # a top-level group (all:, gateways:)


def inventory_hosts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Hosts of the YAML inventory in -i, $RUNBOOK_INVENTORY or the lab's."""
    try:
        import yaml

        from runbook_remediation.paths import state_dir

        given = ctx.params.get("inventory") or os.environ.get("RUNBOOK_INVENTORY")
        path = Path(given).expanduser() if given else state_dir() / "lab" / "inventory.yml"
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        found: dict = {}
        for file in files:
            _inventory_hosts(yaml.safe_load(file.read_text(encoding="utf-8")), found)
    except Exception:  # noqa: BLE001
        return []
    return _matching(found, incomplete)


def incident_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Incident ids from the timeline store (newest first), their title as help."""
    try:
        from runbook_remediation.timeline import db_path, open_store

        if not Path(db_path()).is_file():
            return []
        with open_store() as store:
            incidents = store.list_incidents()
    except Exception:  # noqa: BLE001
        return []
    titles = {str(i.get("id")): f"{i.get('status', '')}: {i.get('title', '')}" for i in incidents if i.get("id")}
    return _matching(titles, incomplete, titles.get)
