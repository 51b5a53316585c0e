"""``runbook drill PROFILE``: a seed system's runbook rehearsed on the lab."""

from __future__ import annotations

import json
import os

import click

from runbook_remediation import catalogue, drill
from runbook_remediation.collection import find_collection
from runbook_remediation.commands.base import Context, exit_with, handle_errors
from runbook_remediation.errors import ExitCode
from runbook_remediation.lab.lab import FAULTS, LAB_FAULTS, RELEASES, Lab
from runbook_remediation.paths import state_dir

TIMINGS = ("detect", "dispatch", "remediate", "verify", "revert")


@click.command(name="drill")
@click.argument("profile", metavar="PROFILE", type=click.Choice(drill.names()))
@click.option("--only", "only", multiple=True, metavar="MODE", help="Only this failure mode (repeatable).")
@click.option("--output", "-o", "output", type=click.Choice(["text", "json", "markdown"]), default=None,
              help="The report: text (default), json, or markdown (for the team's drill log).")
@click.option("--loop", is_flag=True,
              help="Let the closed loop remediate: `runbook watch` runs beside the drill and the alerts dispatch "
                   "the scenarios (destructive ones, which need approval, are run by hand).")
@click.pass_obj
@handle_errors
def drill_(ctx: Context, profile: str, only: tuple[str, ...], output: str | None, loop: bool) -> None:
    """Rehearse PROFILE's runbook on the lab: for each failure mode, inject it, wait for its
    alert, remediate with `runbook run`, verify health and the alert resolved, then heal.
    An emergency action of the runbook (maintenance mode, a region drained) is taken,
    verified and reverted. With --loop the alerts dispatch the remediations through
    `runbook watch`, and the report adds the dispatch time.

    Touches only the lab (`runbook lab up` first). The report (Markdown and JSON) is saved
    under the state directory's drills/. Exit codes: 0 every automated mode ended as
    expected, 1 one did not, 2 bad input (an unknown mode, the lab not up).
    """
    scenarios = {s.name for s in catalogue.catalogue(find_collection())}
    the_profile = drill.load(profile, FAULTS + LAB_FAULTS, scenarios, tuple(RELEASES))
    lab = Lab(state_dir(), progress=ctx.terminal.status)
    if ctx.terminal.err.is_terminal and not os.environ.get("CI"):
        report = _run_live(ctx, lab, the_profile, only, loop)
    else:
        report = drill.run(lab, the_profile, only, progress=ctx.terminal.status, loop=loop)
    path = drill.save(report, state_dir())
    output = output or ("json" if ctx.terminal.json else "text")
    if output == "json":
        click.echo(json.dumps({**report, "report": str(path)}, indent=2))
    elif output == "markdown":
        click.echo(drill.markdown(report), nl=False)
    else:
        for row in report["modes"]:
            if row["ok"] is None:
                ctx.terminal.out.print(f"  {row['mode']:<20} not automated: {row['reason']}", soft_wrap=True)
                continue
            timing = "  ".join(f"{k} {row[f'{k}_seconds']}s" for k in TIMINGS if row.get(f"{k}_seconds") is not None)
            verdict = "ok" if row["ok"] else f"expected {row['expected']}"
            ctx.terminal.out.print(f"  {row['mode']:<20} {row['outcome']} ({verdict})  {timing}", soft_wrap=True)
        ctx.terminal.status(f"drill {profile}: {'passed' if report['ok'] else 'FAILED'}; report {path}")
    exit_with(ExitCode.REMEDIATED if report["ok"] else ExitCode.FAILED)


def _run_live(ctx: Context, lab, profile: drill.Profile, only: tuple[str, ...], loop: bool) -> dict:
    """The drill with its live view on stderr (a terminal): one row per mode, redrawn."""
    from rich.live import Live

    from runbook_remediation.drill_view import DrillView

    view = DrillView(profile, only)
    with Live(console=ctx.terminal.err, get_renderable=view.render, refresh_per_second=4, transient=False):
        report = drill.run(lab, profile, only, progress=view.progress, loop=loop)
        view.finish(report)
    return report
