"""The Event-Driven Ansible rulebook, generated from the scenario catalogue.

    python -m runbook_remediation.rulebook > extensions/eda/rulebooks/alertmanager.yml

Alertmanager's webhook posts a group of alerts; ``eda.builtin.event_splitter`` makes one
event per alert and ``eda.builtin.insert_hosts_to_meta`` limits the run to the alert's
``host`` label. One rule per (alert, scenario) of the catalogue runs the scenario's
playbook by FQCN with the alert's ``service`` label. Destructive scenarios only diagnose
from an alert (``runbook_diagnose_only``): a human runs the remediation. Only
ansible-rulebook's built-in source and filters are used (ansible.eda is not needed).

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

HEADER = """\
---
# Generated from meta/scenarios.yml by `python -m runbook_remediation.rulebook`: do not edit.
# Alertmanager webhook -> the catalogue's scenario -> run_playbook by FQCN.
#
#   ansible-rulebook -r extensions/eda/rulebooks/alertmanager.yml -i INVENTORY \\
#     --vars VARS.yml          # webhook_host, webhook_port (runbook watch writes it)
#
# Alertmanager receiver: webhook_configs: [{url: http://HOST:PORT/alerts, send_resolved: true}]
"""


def rules(scenarios: list[catalogue.Scenario]) -> list[dict]:
    out = []
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
                "condition": f'event.status == "firing" and event.labels.alertname == "{alert}"',
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
            "eda.builtin.webhook": {"host": "{{ webhook_host }}", "port": "{{ webhook_port }}"},
            "filters": [
                {"eda.builtin.event_splitter": {"splitter_key": "payload.alerts"}},
                {"eda.builtin.insert_hosts_to_meta": {"host_path": "labels.host"}},
            ],
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
