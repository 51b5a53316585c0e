"""The scenario catalogue (meta/scenarios.yml): the one list of what `runbook` can run."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from runbook_remediation.collection import Collection
from runbook_remediation.errors import BadInput, RunbookError

SEVERITIES = ("P0", "P1", "P2", "P3")
CATEGORIES = ("", "security")
_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_VAR = re.compile(r"^[a-z][a-z0-9_]{0,127}$")


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
    # A destructive scenario that may act from an alert (default: it only diagnoses).
    automatic: bool = False
    # ``security``: the security incident class; its incident notifications also go to the
    # security channel (notify.security_webhook_url).
    category: str = ""
    # The extra vars that undo what a run set (`runbook run NAME --revert`), as (name, value)
    # pairs; empty when the scenario has nothing to revert.
    revert: tuple[tuple[str, object], ...] = ()

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
            automatic=bool(entry.get("automatic", False)),
            category=str(entry.get("category") or ""),
            revert=_revert(entry),
        )
        if not _KEBAB.match(scenario.name) or scenario.playbook != scenario.name.replace("-", "_"):
            raise RunbookError(f"catalogue entry {scenario.name!r}: name must be kebab-case of its playbook")
        if scenario.severity not in SEVERITIES:
            raise RunbookError(f"catalogue entry {scenario.name!r}: severity must be one of {', '.join(SEVERITIES)}")
        if scenario.category not in CATEGORIES:
            raise RunbookError(f"catalogue entry {scenario.name!r}: category must be one of security or nothing")
        scenarios.append(scenario)
    return scenarios


def _revert(entry: dict) -> tuple[tuple[str, object], ...]:
    """An entry's ``revert``: {role variable: plain value}."""
    raw = entry.get("revert") or {}
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and _VAR.match(k) and isinstance(v, (str, bool, int)) for k, v in raw.items()):
        raise RunbookError(f"catalogue entry {entry.get('name')!r}: revert must map role variables to plain values")
    return tuple(sorted(raw.items()))


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


# --- mapping alerts to scenarios beyond the catalogue ------------------------------------------
#
# A user maps their own alert names without editing the collection, two ways:
# - the alert carries the label ``runbook_scenario: <scenario>`` (it wins over the name);
# - an overlay file (``--catalogue FILE`` or RUNBOOK_CATALOGUE_OVERLAY) maps names:
#
#       alerts:
#         CheckoutErrors: error-rate
#         SlowSearch: latency
#
# Triage and the rulebook generator (hence `runbook watch`) honour both.

SCENARIO_LABEL = "runbook_scenario"
OVERLAY_ENV = "RUNBOOK_CATALOGUE_OVERLAY"
# An alert name as Prometheus allows it (the rulebook filter keeps only such names).
_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.-]*$")


def load_overlay(path: str | Path | None, scenarios: list[Scenario]) -> dict[str, str]:
    """``{alert name: scenario name}`` from a user's overlay file (empty when none is given).
    A bad file is bad input: one line, nothing run."""
    if not path:
        return {}
    file = Path(path).expanduser()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"catalogue overlay {file} not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInput(f"catalogue overlay {file} is not readable YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or set(raw) - {"alerts"} or not isinstance(raw.get("alerts") or {}, dict):
        raise BadInput(f"catalogue overlay {file}: expected `alerts: {{ALERT: SCENARIO, ...}}` and nothing else")
    known = {s.name for s in scenarios}
    mapping = {}
    for alert, scenario in (raw.get("alerts") or {}).items():
        if not isinstance(alert, str) or not _ALERT_NAME.match(alert):
            raise BadInput(f"catalogue overlay {file}: {alert!r} is not an alert name")
        if scenario not in known:
            raise BadInput(f"catalogue overlay {file}: {alert} maps to unknown scenario {scenario!r} "
                           f"(known: {', '.join(sorted(known))})")
        mapping[alert] = scenario
    return mapping


def overlay_path(given: str | None = None) -> str | None:
    """The overlay to use: the option, else RUNBOOK_CATALOGUE_OVERLAY, else none."""
    return given or os.environ.get(OVERLAY_ENV) or None


def alert_map(scenarios: list[Scenario], overlay: dict[str, str] | None = None) -> dict[str, Scenario]:
    """Alert name -> scenario: the catalogue's ``alerts`` (first entry wins), then the overlay
    (which may remap a catalogue name)."""
    by_name = {s.name: s for s in scenarios}
    mapping: dict[str, Scenario] = {}
    for scenario in scenarios:
        for alert in scenario.alerts:
            mapping.setdefault(alert, scenario)
    for alert, name in (overlay or {}).items():
        mapping[alert] = by_name[name]
    return mapping


def scenario_for(labels: dict, scenarios: list[Scenario], mapping: dict[str, Scenario]) -> Scenario | None:
    """The scenario an alert runs: its ``runbook_scenario`` label when that names a scenario
    of the catalogue, else its name's mapping. A label naming no scenario maps to none
    (announced, never guessed)."""
    named = labels.get(SCENARIO_LABEL)
    if named:
        return next((s for s in scenarios if s.name == named), None)
    return mapping.get(labels.get("alertname", ""))
