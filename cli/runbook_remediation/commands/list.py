"""``runbook list``: the scenario catalogue (meta/scenarios.yml)."""

from __future__ import annotations

import re

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
        "revert": dict(scenario.revert),
    }


def summary(description: str) -> str:
    """The description's first sentence: what fits one line of ``runbook list``."""
    first = re.split(r"(?<=[.!?])\s", " ".join(description.split()), maxsplit=1)[0]
    return first


def alerts_cell(alerts: tuple[str, ...] | list[str]) -> str:
    """The first alert and how many more (the full list is in ``-o json`` and --full)."""
    if not alerts:
        return "-"
    return alerts[0] + (f" +{len(alerts) - 1}" if len(alerts) > 1 else "")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "\u2026"


def compact(scenarios: list[catalogue.Scenario], width: int) -> list[str]:
    """One line per scenario, no line wider than ``width`` (at least 60): name, severity
    and the destructive flag whole; alerts and summary cut with an ellipsis."""
    width = max(width, 60)
    rows = [(s.name, s.severity, "yes" if s.destructive else "no", alerts_cell(s.alerts), summary(s.description))
            for s in scenarios]
    header = ("SCENARIO", "SEV", "DESTR", "ALERTS", "SUMMARY")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(3)]
    widths.append(min(16, max(len(r[3]) for r in [*rows, header])))
    widths.append(max(width - sum(widths) - 2 * 4, 10))
    lines = []
    for row in [header, *rows]:
        cells = [_cut(cell, w).ljust(w) for cell, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


@click.command(name="list")
@click.option("--full", is_flag=True, help="Every alert and the whole description (wrapped; long).")
@output_option
@click.pass_obj
@handle_errors
def list_(ctx: Context, full: bool) -> None:
    """List the scenarios `runbook run` knows, with their severity and alerts.

    One line per scenario, to fit an 80-column terminal; --full or -o json for everything.
    """
    scenarios = catalogue.catalogue(find_collection())
    if ctx.terminal.json:
        ctx.terminal.data([as_dict(s) for s in scenarios])
        return
    if not full:
        for line in compact(scenarios, ctx.terminal.out.width):
            ctx.terminal.out.print(line, markup=False, highlight=False, soft_wrap=True)
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
