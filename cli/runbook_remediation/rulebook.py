"""The Event-Driven Ansible rulebook, generated from the scenario catalogue.

    python -m runbook_remediation.rulebook > extensions/eda/rulebooks/alertmanager.yml

Alertmanager's webhook posts a group of alerts. ansible-rulebook's built-in webhook source
takes them only with the bearer token (``webhook_token``); the collection's
``runbook.remediation.alerts`` filter makes one checked event per alert (labels of plain
names only, no annotations, ``meta.hosts`` = the one inventory host its ``host`` label
names, else the alert is refused). One rule per (alert, scenario) of the catalogue (and of
a user's overlay, ``--overlay FILE``) runs the scenario's playbook by FQCN with the alert's
``service`` label; an alert labelled ``runbook_scenario: NAME`` runs that scenario whatever
its name; destructive scenarios only diagnose from an alert (``runbook_diagnose_only``): a
human runs the remediation. An alert the filter refused, and a firing alert that maps to no
scenario, run none: ``runbook.remediation.alert_unhandled`` records and announces them
(``rejected`` / ``no-scenario``), once per alert occurrence.

The rules run in parallel: the safety envelope in every playbook, not the rulebook,
decides what may act (dedupe, budget, breaker, blast radius), so its decisions are the
same for rulebook, CLI and AWX runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from runbook_remediation import catalogue
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import BadInput

# Where the generated rulebook lives in the collection.
RULEBOOK = Path("extensions") / "eda" / "rulebooks" / "alertmanager.yml"
UNHANDLED = "runbook.remediation.alert_unhandled"
FILTER = "runbook.remediation.alerts"

HEADER = """\
---
# Generated from meta/scenarios.yml by `python -m runbook_remediation.rulebook`: do not edit.
# Alertmanager webhook (bearer token) -> checked alert events -> the catalogue's scenario.
#
#   ansible-rulebook -r extensions/eda/rulebooks/alertmanager.yml -i INVENTORY \\
#     --vars VARS.yml          # webhook_host, webhook_port, webhook_token (runbook watch writes it, 0600)
#
# Alertmanager receiver: webhook_configs: [{url: http://HOST:PORT/alerts, send_resolved: true,
#   http_config: {authorization: {type: Bearer, credentials_file: TOKEN_FILE}}}]
"""

ACCEPTED = "event.runbook_rejected is not defined"


def _scenario_vars(scenario: catalogue.Scenario) -> dict:
    extra_vars = {
        "service": "{{ event.labels.service }}",
        "runbook_alert_key": "{{ event.fingerprint }}@{{ event.startsAt }}",
    }
    if scenario.destructive and not scenario.automatic:
        extra_vars["runbook_diagnose_only"] = True
    return extra_vars


def _quoted(names) -> str:
    return "[" + ", ".join(f'"{name}"' for name in names) + "]"


def rules(scenarios: list[catalogue.Scenario], overlay: dict[str, str] | None = None) -> list[dict]:
    """The refused-alert rule, one rule per mapped alert name (the catalogue's, then the
    overlay's), one per scenario for the ``runbook_scenario`` label (it wins over the name),
    and the catch-all for a firing alert that maps to nothing. The conditions exclude each
    other, so exactly one rule takes each event."""
    mapping = catalogue.alert_map(scenarios, overlay)
    label = f"event.labels.{catalogue.SCENARIO_LABEL}"
    firing = f'{ACCEPTED} and event.status == "firing"'
    out = [{
        "name": "Refused alert -> record and announce, run nothing",
        "condition": "event.runbook_rejected is defined",
        "action": {"run_playbook": {"name": UNHANDLED, "extra_vars": {"runbook_unhandled": "rejected"}}},
    }]
    for scenario in scenarios:
        suffix = " (diagnose only)" if scenario.destructive and not scenario.automatic else ""
        for alert in [name for name, mapped in mapping.items() if mapped is scenario]:
            out.append({
                "name": f"{alert} -> {scenario.name}{suffix}",
                "condition": f'{firing} and event.labels.alertname == "{alert}" and {label} is not defined',
                "action": {"run_playbook": {"name": scenario.fqcn, "extra_vars": _scenario_vars(scenario)}},
            })
    for scenario in scenarios:
        suffix = " (diagnose only)" if scenario.destructive and not scenario.automatic else ""
        out.append({
            "name": f"{catalogue.SCENARIO_LABEL}={scenario.name} -> {scenario.name}{suffix}",
            "condition": f'{firing} and {label} == "{scenario.name}"',
            "action": {"run_playbook": {"name": scenario.fqcn, "extra_vars": _scenario_vars(scenario)}},
        })
    out.append({
        "name": "No scenario for the alert -> record and announce, run nothing",
        "condition": (f"{firing} and (({label} is defined and {label} not in {_quoted(s.name for s in scenarios)})"
                      f" or ({label} is not defined and event.labels.alertname not in {_quoted(mapping)}))"),
        "action": {"run_playbook": {"name": UNHANDLED, "extra_vars": {"runbook_unhandled": "no-scenario"}}},
    })
    return out


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as yamllint (and ansible-lint) want."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def rulebook(scenarios: list[catalogue.Scenario], overlay: dict[str, str] | None = None) -> str:
    ruleset = {
        "name": "runbook.remediation: remediate Alertmanager alerts",
        "hosts": "all",
        "execution_strategy": "parallel",
        "sources": [{
            "name": "alertmanager",
            "eda.builtin.webhook": {"host": "{{ webhook_host }}", "port": "{{ webhook_port }}",
                                    "token": "{{ webhook_token }}"},
            "filters": [{FILTER: None}],
        }],
        "rules": rules(scenarios, overlay),
    }
    body = yaml.dump([ruleset], Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=False)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    """``python -m runbook_remediation.rulebook [--overlay FILE]``: the rulebook on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    overlay_file = None
    if args[:1] == ["--overlay"] and len(args) == 2:
        overlay_file = args[1]
    elif args:
        sys.stderr.write("usage: python -m runbook_remediation.rulebook [--overlay FILE]\n")
        return 2
    scenarios = catalogue.catalogue(find_collection())
    try:
        overlay = catalogue.load_overlay(overlay_file, scenarios)
    except BadInput as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(rulebook(scenarios, overlay))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
