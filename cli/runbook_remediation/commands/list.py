"""``runbook list``: the scenario catalogue (meta/scenarios.yml)."""

from __future__ import annotations

import click
from rich.table import Table

from runbook_remediation import catalogue
from runbook_remediation.collection import find_collection
from runbook_remediation.commands.base import Context, handle_errors, output_option


def as_dict(scenario: catalogue.Scenario) -> dict:
    return {
        "name": scenario.name,
        "playbook": scenario.fqcn,
        "description": scenario.description,
        "severity": scenario.severity,
        "alerts": list(scenario.alerts),
        "destructive": scenario.destructive,
        "managers": list(scenario.managers),
    }


@click.command(name="list")
@output_option
@click.pass_obj
@handle_errors
def list_(ctx: Context) -> None:
    """List the scenarios `runbook run` knows, with their severity and alerts."""
    scenarios = catalogue.catalogue(find_collection())
    if ctx.terminal.json:
        ctx.terminal.data([as_dict(s) for s in scenarios])
        return
    table = Table(title="runbook scenarios", title_justify="left")
    for column in ("scenario", "severity", "alerts", "destructive", "description"):
        table.add_column(column, overflow="fold")
    for scenario in scenarios:
        table.add_row(
            scenario.name,
            scenario.severity,
            ", ".join(scenario.alerts) or "-",
            "[red]yes[/red]" if scenario.destructive else "no",
            scenario.description,
        )
    ctx.terminal.out.print(table)
