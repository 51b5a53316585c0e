"""``runbook run`` and ``runbook diagnose``: run a scenario playbook, report per host.

Both run the same playbook (``runbook.remediation.<scenario>``) through
:func:`runbook_remediation.scenarios.execute`, which also records the run in the
incident timeline and settles its incident; ``diagnose`` adds
``runbook_diagnose_only=true`` and check mode, so it only gathers evidence.
"""

from __future__ import annotations

import click

from runbook_remediation import completion as complete
from runbook_remediation import run_report, scenarios
from runbook_remediation.commands.base import Context, confirm, exit_with, handle_errors, non_empty, output_option


def _selection_options(func):
    """The options ``run`` and ``diagnose`` share."""
    options = [
        click.option("-i", "--inventory", metavar="PATH", envvar="RUNBOOK_INVENTORY", callback=non_empty,
                     help="Inventory file or directory. Env: RUNBOOK_INVENTORY. "
                          "Default: the lab's inventory when the lab is up."),
        click.option("-l", "--limit", metavar="PATTERN",
                     shell_complete=complete.inventory_hosts, help="Only these hosts (an Ansible host pattern)."),
        click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="VARS",
                     help="Extra vars: KEY=VALUE, a JSON/YAML object, or @FILE. Repeatable. Never secrets: "
                          "they are kept on disk with the run."),
        click.option("--service", metavar="NAME", help="The service to act on (one of the host's runbook_services)."),
        click.option("--timeout", type=click.IntRange(min=1), metavar="SECONDS",
                     help="Stop the playbook after this many seconds (exit 1)."),
        click.option("--incident", metavar="ID", envvar="RUNBOOK_INCIDENT", shell_complete=complete.incident_ids,
                     help="The incident this run belongs to (see `runbook incident list`). Env: RUNBOOK_INCIDENT. "
                          "Default: a real run that finds something to do opens one."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@click.argument("scenario", shell_complete=complete.scenario_names)
@_selection_options
@click.option("--check", is_flag=True, help="Check mode: report what would be done (outcome planned), change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Run a destructive scenario without asking for confirmation.")
@click.option("--override-safety", metavar="REASON",
              help="Let -e loosen the safety envelope, a budget, a ceiling or the blast radius "
                   "(safety_envelope_*, *_budget_max, *_ceiling, runbook_blast_radius...); the reason is recorded.")
@click.option("--revert", is_flag=True,
              help="Undo what an earlier run set: env-toggle's settings, isolate-pods' and isolate-host's isolation, "
                   "maintenance mode, a traffic weight (the catalogue's `revert` vars).")
@output_option
@click.pass_obj
@handle_errors
def run(ctx: Context, scenario: str, inventory, limit, extra_vars, service, timeout, incident, check: bool,
        yes: bool, override_safety: str | None, revert: bool) -> None:
    """Run SCENARIO (see `runbook list`): diagnose, decide, remediate, verify.

    Exit codes: 0 remediated (or planned with --check), 1 failed, 2 bad input,
    3 escalate (a budget or breaker said no), 4 nothing to do (healthy),
    5 a host unreachable, 130 cancelled.
    """
    selection = scenarios.Selection(inventory, limit, extra_vars, service, timeout, incident, override_safety,
                                    revert)
    summary, info, recorded = scenarios.execute(ctx.terminal, scenario, selection, check=check, diagnose=False,
                                                yes=yes, verbose=ctx.verbose, confirm=confirm)
    run_report.show(ctx.terminal, summary, info, summary.exit_code, diagnose=False, recorded=recorded)
    exit_with(summary.exit_code)


@click.command()
@click.argument("scenario", shell_complete=complete.scenario_names)
@_selection_options
@output_option
@click.pass_obj
@handle_errors
def diagnose(ctx: Context, scenario: str, inventory, limit, extra_vars, service, timeout, incident) -> None:
    """Gather SCENARIO's evidence and findings without changing anything.

    Runs the playbook in check mode with runbook_diagnose_only=true. Exit codes: 0 when
    every host was diagnosed (whatever was found), 1 when the run failed on a host,
    2 bad input, 5 a host unreachable, 130 cancelled.
    """
    selection = scenarios.Selection(inventory, limit, extra_vars, service, timeout, incident)
    summary, info, recorded = scenarios.execute(ctx.terminal, scenario, selection, check=True, diagnose=True,
                                                verbose=ctx.verbose, confirm=confirm)
    code = summary.diagnose_exit_code()
    run_report.show(ctx.terminal, summary, info, code, diagnose=True, recorded=recorded)
    exit_with(code)
