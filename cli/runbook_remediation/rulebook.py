"""The Event-Driven Ansible rulebook, generated from the scenario catalogue.

    python -m runbook_remediation.rulebook > extensions/eda/rulebooks/alertmanager.yml

Alertmanager's webhook posts a group of alerts. ansible-rulebook's built-in webhook source
takes them only with the bearer token (``webhook_token``); the collection's
``runbook.remediation.alerts`` filter makes one checked event per alert (labels of plain
names only, no annotations, ``meta.hosts`` = the one inventory host its ``host`` label
names, else the alert is refused). One rule per (alert, scenario) of the catalogue runs the
scenario's playbook by FQCN with the alert's ``service`` label; destructive scenarios only
diagnose from an alert (``runbook_diagnose_only``): a human runs the remediation. An alert
the filter refused runs no scenario: the first rule hands it to
``runbook.remediation.alert_unhandled``, which records and announces it.

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


def rules(scenarios: list[catalogue.Scenario]) -> list[dict]:
    out = [{
        "name": "Refused alert -> record and announce, run nothing",
        "condition": "event.runbook_rejected is defined",
        "action": {"run_playbook": {"name": UNHANDLED, "extra_vars": {"runbook_unhandled": "rejected"}}},
    }]
    for scenario in scenarios:
        for alert in scenario.alerts:
            extra_vars = {
                "service": "{{ event.labels.service }}",
                "runbook_alert_key": "{{ event.fingerprint }}@{{ event.startsAt }}",
            }
            if scenario.destructive:
                extra_vars["runbook_diagnose_only"] = True
            out.append({
                "name": f"{alert} -> {scenario.name}" + (" (diagnose only)" if scenario.destructive else ""),
                "condition": f'{ACCEPTED} and event.status == "firing" and event.labels.alertname == "{alert}"',
                "action": {"run_playbook": {"name": scenario.fqcn, "extra_vars": extra_vars}},
            })
    return out


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as yamllint (and ansible-lint) want."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def rulebook(scenarios: list[catalogue.Scenario]) -> str:
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
        "rules": rules(scenarios),
    }
    body = yaml.dump([ruleset], Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=False)
    return HEADER + body


def main() -> int:
    sys.stdout.write(rulebook(catalogue.catalogue(find_collection())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
