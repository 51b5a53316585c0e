"""``runbook triage``: what is firing, how bad, and the exact command to run first.

Reads the firing alerts (Alertmanager API v2; Prometheus when Alertmanager does not
answer), maps each to a scenario through the catalogue, classifies its severity with the
matrix (meta/severity.yml, or ``--matrix``), ranks them (severity, then the quickest
mitigation, then the oldest alert) and prints a table with the exact ``runbook run``
command for each. Each alert gets an incident (one per alert fingerprint, reused while
it is open; ``--no-open`` only looks), so the command carries ``--incident``.
``--run`` runs the top suggestion after a confirmation.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from runbook_remediation import catalogue, incidents, notify, run_report, scenarios, triage
from runbook_remediation.collection import find_collection
from runbook_remediation.commands.base import Context, confirm, exit_with, handle_errors, non_empty, output_option
from runbook_remediation.errors import BadInput, ExitCode, RunbookError
from runbook_remediation.paths import state_dir

_SEVERITY_COLOURS = {"P0": "bold red", "P1": "red", "P2": "yellow", "P3": "dim"}


@click.command(name="triage")
@click.option("--alertmanager", metavar="URL", envvar="RUNBOOK_ALERTMANAGER_URL",
              help="Alertmanager's base URL. Env: RUNBOOK_ALERTMANAGER_URL. Default: the inventory's "
                   "runbook_alertmanager_url (the lab's when it is up).")
@click.option("--prometheus", metavar="URL", envvar="RUNBOOK_PROMETHEUS_URL",
              help="Prometheus' base URL (fallback for alerts; instance counts). Env: RUNBOOK_PROMETHEUS_URL. "
                   "Default: the inventory's runbook_prometheus_url.")
@click.option("-i", "--inventory", metavar="PATH", envvar="RUNBOOK_INVENTORY", callback=non_empty,
              help="Inventory (YAML) for the URLs and the commands. Env: RUNBOOK_INVENTORY. Default: the lab's.")
@click.option("--matrix", metavar="FILE", envvar="RUNBOOK_SEVERITY_MATRIX",
              help="Severity matrix to use. Env: RUNBOOK_SEVERITY_MATRIX. Default: the collection's "
                   "meta/severity.yml.")
@click.option("--catalogue", "overlay", metavar="FILE", envvar=catalogue.OVERLAY_ENV,
              help="Your own alert names -> scenarios (`alerts: {ALERT: SCENARIO}`), on top of the collection's "
                   "catalogue. Env: RUNBOOK_CATALOGUE_OVERLAY.")
@click.option("--no-open", is_flag=True, help="Only look: open no incidents (the commands then carry no --incident).")
@click.option("--run", "run_top", is_flag=True, help="Run the top suggestion after a confirmation.")
@click.option("--yes", "-y", is_flag=True, help="With --run: no confirmation prompt.")
@click.option("--notify", "notify_url", metavar="URL", envvar=notify.ENV,
              help="Webhook for the initial notification of each incident opened. Env: RUNBOOK_WEBHOOK_URL.")
@output_option
@click.pass_obj
@handle_errors
def triage_(ctx: Context, alertmanager, prometheus, inventory, matrix, overlay, no_open, run_top, yes,
            notify_url) -> None:
    """Rank the firing alerts: severity, scenario and the exact command to run.

    Exit codes: 0 listed (also when nothing fires), 2 bad input (a bad URL or matrix),
    4 --run with nothing to run, 5 neither Alertmanager nor Prometheus answered; with
    --run, those of `runbook run`.
    """
    if run_top and not yes and not ctx.terminal.can_prompt():  # refuse before anything is opened
        raise BadInput("--run needs confirmation", hint="pass --yes to run the top suggestion without a prompt")
    collection = find_collection()
    given_inventory = inventory
    inventory_path = Path(inventory).expanduser() if inventory else state_dir() / "lab" / "inventory.yml"
    if inventory and not inventory_path.exists():
        raise BadInput(f"inventory {inventory_path} not found")
    inventory_data = triage.read_inventory(inventory_path)
    am_url, prom_url = triage.resolve_urls(alertmanager, prometheus, inventory_data)
    the_matrix = triage.load_matrix(matrix, collection.root)
    url = notify.webhook_url(notify_url)
    notify.security_webhook_url()
    the_scenarios = catalogue.catalogue(collection)
    the_overlay = catalogue.load_overlay(overlay, the_scenarios)

    fetched = triage.fetch_alerts(am_url, prom_url)
    for problem in fetched.problems:
        ctx.terminal.warn(f"{problem}: alerts from {fetched.source} instead")
    totals = triage.instance_totals(prom_url) or triage.inventory_totals(inventory_data)
    rows = triage.classify(fetched.alerts, the_scenarios, the_matrix, totals, the_overlay)
    triage.with_regions(rows, triage.inventory_regions(inventory_data))
    if totals is None and any(r.alert.service for r in rows):
        ctx.terminal.warn("instance counts unknown (no Prometheus answer, no inventory): "
                          "'every instance' rules cannot match")

    _with_commands(rows, given_inventory)
    if not no_open:
        incidents.for_alerts(rows, the_matrix, url, ctx.terminal)
    elif run_top and triage.top(rows) is not None:
        incidents.for_alerts([triage.top(rows)], the_matrix, url, ctx.terminal)  # the run needs one
    _with_commands(rows, given_inventory)

    moment = triage.now_utc()
    data = {
        "source": fetched.source,
        "url": triage.redact_url(fetched.url),
        "instance_totals": totals,
        "alerts": [row.as_dict(moment) for row in rows],
        "regions": triage.by_region(rows),
    }
    if not run_top:
        if ctx.terminal.json:
            ctx.terminal.data(data)
        else:
            _print_table(ctx, rows, fetched, moment)
        return

    chosen_row = triage.top(rows)
    if not ctx.terminal.json:
        _print_table(ctx, rows, fetched, moment)
    if chosen_row is None:
        raise RunbookError("nothing to run: no firing alert maps to a scenario"
                           + (" (escalate the rest to a human)" if rows else ""), ExitCode.NOTHING_TO_DO)
    alert = chosen_row.alert
    # The alert names where to act: one host of the inventory, never a pattern, never "all".
    scenarios.check_alert_host(alert.host, scenarios.inventory(given_inventory))
    _confirm(ctx, chosen_row, yes)
    selection = scenarios.Selection(given_inventory, alert.host, (), alert.service, None, chosen_row.incident)
    # The same path as `runbook run`; the confirmation above covers a destructive scenario.
    summary, info, recorded = scenarios.execute(ctx.terminal, chosen_row.scenario.name, selection, check=False,
                                                diagnose=False, yes=True, verbose=ctx.verbose)
    run_report.show(ctx.terminal, summary, info, summary.exit_code, diagnose=False, recorded=recorded,
                    extra={"triage": data, "ran": chosen_row.as_dict(moment)})
    exit_with(summary.exit_code)


def _with_commands(rows: list[triage.Row], inventory: str | None) -> list[triage.Row]:
    for row in rows:
        row.argv = triage.command_for(row, inventory, row.incident)
    return rows


def _confirm(ctx: Context, row: triage.Row, yes: bool) -> None:
    if yes:
        return
    if not ctx.terminal.can_prompt():
        raise BadInput("--run needs confirmation", hint="pass --yes to run the top suggestion without a prompt")
    danger = " (destructive: it can lose data or kill work)" if row.scenario and row.scenario.destructive else ""
    question = f"Run the top suggestion{danger}?\n  {row.command}\n"
    if not confirm(question):
        raise RunbookError("not confirmed: nothing was run", ExitCode.CANCELLED)


def _print_table(ctx: Context, rows: list[triage.Row], fetched: triage.Fetched, moment) -> None:
    """The ranked table, then each row's reason and its command on a line of its own
    (never folded: it is meant to be copied)."""
    if not rows:
        ctx.terminal.status(f"no firing alerts ({fetched.source} at {triage.redact_url(fetched.url)})")
        return
    out = ctx.terminal.out
    regional = any(row.region for row in rows)
    table = Table(title=f"firing alerts ({fetched.source}), most urgent first", title_justify="left")
    columns = ("rank", "severity", "alert", "host", *(("region",) if regional else ()), "service", "scenario",
               "since", "incident")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        colour = _SEVERITY_COLOURS.get(row.severity, "")
        severity = f"[{colour}]{row.severity}[/{colour}]" if colour else row.severity
        scenario = row.scenario.name if row.scenario else "[yellow]none[/yellow]"
        table.add_row(
            str(row.rank), severity, escape(row.alert.name), escape(row.alert.host or "-"),
            *((escape(row.region or "-"),) if regional else ()),
            escape(row.alert.service or "-"), scenario, row.as_dict(moment)["since"], row.incident or "-",
        )
    out.print(table)
    if regional:
        # Seed 002 acts per region (drain it, fail over): the worst region first.
        groups = triage.by_region(rows)
        out.print("by region: " + "; ".join(
            f"{escape(g['region'])} {g['severity']} ({g['alerts']} alert{'s' if g['alerts'] != 1 else ''}: "
            f"{escape(', '.join(g['names']))})" for g in groups), soft_wrap=True)
    for row in rows:
        note = f" ({row.classification.note})" if row.classification.note else ""
        out.print(f"#{row.rank} {row.severity} {escape(row.alert.name)} on {escape(row.alert.host or '?')}: "
                  f"{escape(row.classification.rule)}{escape(note)}", markup=True)
        action = escape(row.command) if row.command else f"[yellow]{triage.NO_SCENARIO}[/yellow]"
        out.print(f"   {action}", markup=True, soft_wrap=True)
