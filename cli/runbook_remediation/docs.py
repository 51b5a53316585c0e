"""Render the scenario catalogue as Markdown (docs/scenarios.md).

    python -m runbook_remediation.docs > docs/scenarios.md

A unit test keeps the committed page equal to what this renders.
"""

from __future__ import annotations

import sys

from runbook_remediation.catalogue import Scenario, catalogue
from runbook_remediation.collection import find_collection

HEADER = """# Scenarios

<!-- Generated from meta/scenarios.yml by `python -m runbook_remediation.docs`: edit the catalogue, not this page. -->

Every scenario runs the same way from the CLI, by FQCN with `ansible-playbook`, and from
AWX or a rulebook; each ends with one `runbook_result` per host (see README.md).
"""


def render(scenarios: list[Scenario]) -> str:
    lines = [HEADER, "| scenario | severity | alerts | destructive | playbook |", "| --- | --- | --- | --- | --- |"]
    for s in scenarios:
        alerts = ", ".join(f"`{a}`" for a in s.alerts) or "-"
        lines.append(f"| [`{s.name}`](#{s.name}) | {s.severity} | {alerts} | {'yes' if s.destructive else 'no'} "
                     f"| `{s.fqcn}` |")
    for s in scenarios:
        lines += [
            "",
            f"## {s.name}",
            "",
            s.description,
            "",
            f"- run: `runbook run {s.name} -l HOST` or `ansible-playbook {s.fqcn} -i INVENTORY -l HOST`",
            f"- managers: {', '.join(s.managers) or '-'}",
        ]
        if s.revert:
            undo = " ".join(f"-e {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in s.revert)
            lines.append(f"- revert: `runbook run {s.name} -l HOST --revert` (`{undo}`)")
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render(catalogue(find_collection())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
