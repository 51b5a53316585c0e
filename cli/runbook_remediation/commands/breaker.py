"""``runbook breaker status|reset``: the safety envelope's breakers, holds and leases."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from runbook_remediation import completion as complete
from runbook_remediation import envelope
from runbook_remediation.commands.base import Context, handle_errors, output_option
from runbook_remediation.errors import BadInput


@click.group()
def breaker() -> None:
    """The safety envelope: circuit breakers, holds after a spent budget, running remediations.

    A scenario whose remediation failed verification too often in a row is disabled (its
    breaker is open) until a human resets it; a target whose attempt budget is spent is on
    hold for the cooldown. Every entrance (CLI, ansible-playbook, AWX, rulebooks) shares
    this state ($RUNBOOK_ENVELOPE_DB, else envelope.db in the state directory).
    """


@breaker.command()
@click.option("--recent", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many recent decisions to show.")
@output_option
@click.pass_obj
@handle_errors
def status(ctx: Context, recent: int) -> None:
    """Show open breakers, holds, running remediations and recent decisions."""
    store = envelope.open_envelope()
    try:
        state = store.status(recent=recent)
    finally:
        store.close()
    if ctx.terminal.json:
        ctx.terminal.data(state)
        return
    out = ctx.terminal.out
    out.print(f"state: {escape(state['path'])}")
    opened = [b for b in state["breakers"] if b["open"]]
    if not opened:
        out.print("breakers: all closed")
    for item in state["breakers"]:
        scope = "whole fleet" if item.get("fleet") else escape(item.get("target") or "")
        reset_cmd = escape(item["scenario"]) + ("" if item.get("fleet") else f" --target {scope}")
        if item["open"]:
            out.print(f"[red]breaker OPEN[/red] {escape(item['scenario'])} ({scope}): {escape(item['reason'] or '')} "
                      f"(since {item['opened_at']}; reset: runbook breaker reset {reset_cmd})")
        elif item["failures"]:
            out.print(f"breaker closed {escape(item['scenario'])} ({scope}): {item['failures']} failed "
                      "verification(s) in a row")
    for hold in state["holds"]:
        out.print(f"[yellow]hold[/yellow] {escape(hold['target'])} ({escape(hold['scenario'])}) until {hold['until']}: "
                  f"{escape(hold['reason'])}")
    for lease in state["active"]:
        out.print(f"running {escape(lease['scenario'])} on {escape(lease['target'])} since {lease['started_at']} "
                  f"(run {escape(lease['run_id'])})")
    if state["decisions"]:
        table = Table(title="recent decisions", title_justify="left")
        for column in ("at", "target", "scenario", "decision", "reason"):
            table.add_column(column, overflow="fold")
        for item in state["decisions"]:
            table.add_row(item["at"], item["target"], item["scenario"], item["decision"], item["reason"])
        out.print(table)


@breaker.command()
@click.argument("scenario", required=False, shell_complete=complete.scenario_names)
@click.option("--target", metavar="HOST/SERVICE",
              help="Only this target's breakers and holds (the fleet breaker stays as it is).")
@output_option
@click.pass_obj
@handle_errors
def reset(ctx: Context, scenario: str | None, target: str | None) -> None:
    """Close breakers and lift holds: of SCENARIO, of one --target, or all of them.

    Do it once the cause is understood: the next alert may remediate again.
    """
    if scenario:
        from runbook_remediation import catalogue
        from runbook_remediation.collection import find_collection

        catalogue.get(find_collection(), scenario)  # an unknown name is bad input, not a silent no-op
    if scenario is not None and not scenario.strip():
        raise BadInput("the scenario is empty: name one (runbook list), or leave it out to reset every scenario")
    if target is not None and not target.strip():
        raise BadInput("--target is empty: name a HOST/SERVICE (runbook breaker status lists them)")
    store = envelope.open_envelope()
    try:
        if target is not None and not store.known_target(target):
            raise BadInput(f"unknown target {target!r}: the safety envelope has never seen it",
                           hint="runbook breaker status lists the targets with breakers, holds and leases")
        result = store.reset(scenario=scenario, target=target)
    finally:
        store.close()
    if ctx.terminal.json:
        ctx.terminal.data(result)
        return
    what = (scenario or "every scenario") + (f" on {target}" if target else "")
    ctx.terminal.out.print(f"{what}: {result['breakers_closed']} breaker(s) closed, "
                           f"{result['holds_lifted']} hold(s) lifted")
