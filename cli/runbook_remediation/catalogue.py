"""The scenario catalogue (meta/scenarios.yml): the one list of what `runbook` can run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from runbook_remediation.collection import Collection
from runbook_remediation.errors import BadInput, RunbookError

SEVERITIES = ("P0", "P1", "P2", "P3")
_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Scenario:
    name: str
    playbook: str
    description: str
    severity: str
    alerts: tuple[str, ...]
    destructive: bool
    managers: tuple[str, ...]
    # Usual remediation time on the lab: triage ranks the quickest mitigation first.
    typical_seconds: int = 30

    @property
    def fqcn(self) -> str:
        return f"runbook.remediation.{self.playbook}"

    def playbook_path(self, collection: Collection) -> Path:
        return collection.playbooks / f"{self.playbook}.yml"


def load(path: Path) -> list[Scenario]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read the scenario catalogue {path}: {exc}") from exc
    scenarios = []
    for entry in (raw or {}).get("scenarios", []):
        scenario = Scenario(
            name=entry["name"],
            playbook=entry["playbook"],
            description=" ".join(str(entry.get("description", "")).split()),
            severity=entry.get("severity", "P2"),
            alerts=tuple(entry.get("alerts", [])),
            destructive=bool(entry.get("destructive", False)),
            managers=tuple(entry.get("managers", [])),
            typical_seconds=int(entry.get("typical_seconds", 30)),
        )
        if not _KEBAB.match(scenario.name) or scenario.playbook != scenario.name.replace("-", "_"):
            raise RunbookError(f"catalogue entry {scenario.name!r}: name must be kebab-case of its playbook")
        if scenario.severity not in SEVERITIES:
            raise RunbookError(f"catalogue entry {scenario.name!r}: severity must be one of {', '.join(SEVERITIES)}")
        scenarios.append(scenario)
    return scenarios


def catalogue(collection: Collection) -> list[Scenario]:
    return load(collection.root / "meta" / "scenarios.yml")


def get(collection: Collection, name: str) -> Scenario:
    scenarios = catalogue(collection)
    for scenario in scenarios:
        if scenario.name == name:
            return scenario
    known = ", ".join(s.name for s in scenarios)
    hint = None
    if name.replace("_", "-") in {s.name for s in scenarios}:
        hint = f"scenario names are kebab-case: {name.replace('_', '-')}"
    raise BadInput(f"unknown scenario {name!r} (known: {known})", hint=hint)


def for_alert(collection: Collection, alertname: str) -> Scenario | None:
    for scenario in catalogue(collection):
        if alertname in scenario.alerts:
            return scenario
    return None
