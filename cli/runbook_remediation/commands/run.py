"""``runbook run`` and ``runbook diagnose``: run a scenario playbook, report per host.

Both run the same playbook (``runbook.remediation.<scenario>``); ``diagnose`` adds
``runbook_diagnose_only=true`` and check mode, so it only gathers evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import yaml
from rich.markup import escape

from runbook_remediation import catalogue, results, runner
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import BadInput, ExitCode, RunbookError, Unavailable
from runbook_remediation.paths import state_dir
from runbook_remediation.shell import Context, handle_errors, output_option

_OUTCOME_COLOURS = {
    "healthy": "green",
    "remediated": "green",
    "planned": "cyan",
    "escalate": "yellow",
    "failed": "red",
    results.UNREACHABLE: "red",
}


@dataclass(frozen=True)
class Selection:
    """Where and how to run, as the user gave it."""

    inventory: str | None
    limit: str | None
    extra_vars: tuple[str, ...]
    service: str | None
    timeout: int | None


def _selection_options(func):
    """The options ``run`` and ``diagnose`` share."""
    options = [
        click.option("-i", "--inventory", metavar="PATH", envvar="RUNBOOK_INVENTORY",
                     help="Inventory file or directory. Env: RUNBOOK_INVENTORY. "
                          "Default: the lab's inventory when the lab is up."),
        click.option("-l", "--limit", metavar="PATTERN", help="Only these hosts (an Ansible host pattern)."),
        click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="VARS",
                     help="Extra vars: KEY=VALUE, a JSON/YAML object, or @FILE. Repeatable. Never secrets: "
                          "they are kept on disk with the run."),
        click.option("--service", metavar="NAME", help="The service to act on (one of the host's runbook_services)."),
        click.option("--timeout", type=click.IntRange(min=1), metavar="SECONDS",
                     help="Stop the playbook after this many seconds (exit 1)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _inventory(given: str | None) -> Path:
    """-i / $RUNBOOK_INVENTORY, else the lab's inventory when the lab is up."""
    if given:
        return Path(given).expanduser()
    lab_inventory = state_dir() / "lab" / "inventory.yml"
    if lab_inventory.is_file():
        return lab_inventory
    raise BadInput("no inventory: pass -i or start the lab (runbook lab up)")


def _extravars(selection: Selection, diagnose: bool) -> dict:
    extravars = runner.parse_extra_vars(selection.extra_vars)
    if selection.service is not None:
        service = selection.service.strip()
        if not service:
            raise BadInput("--service is empty: name one of the host's runbook_services")
        if "service" in extravars and extravars["service"] != service:
            raise BadInput(f"--service {service} and -e service={extravars['service']} disagree: give one")
        extravars["service"] = service
    if diagnose:
        extravars["runbook_diagnose_only"] = True
    return extravars


def _confirm_destructive(ctx: Context, scenario: catalogue.Scenario, request: runner.Request, yes: bool) -> None:
    if not scenario.destructive or request.check or yes:
        return
    target = request.limit or "every host"
    if not ctx.terminal.can_prompt():
        raise BadInput(
            f"{scenario.name} is destructive (it can lose data or kill work) and needs confirmation",
            hint="pass --yes to run it without a prompt, or --check to see what it would do",
        )
    question = f"{scenario.name} is destructive: {scenario.description}\nRun it on {target} ({request.inventory})?"
    if not click.confirm(question, default=False, err=True):
        raise RunbookError("not confirmed: nothing was run", ExitCode.CANCELLED)


def _execute(ctx: Context, name: str, selection: Selection, *, check: bool, diagnose: bool, yes: bool = False):
    collection = find_collection()
    scenario = catalogue.get(collection, name)
    playbook_path = scenario.playbook_path(collection)
    if not playbook_path.is_file():
        raise Unavailable(f"scenario {scenario.name}: its playbook {playbook_path} is missing from the collection")
    request = runner.Request(
        scenario=scenario.name,
        playbook=scenario.fqcn,
        inventory=_inventory(selection.inventory),
        limit=selection.limit,
        extravars=_extravars(selection, diagnose),
        check=check or diagnose,
        timeout=selection.timeout,
    )
    runner.validate(request)
    _confirm_destructive(ctx, scenario, request, yes)

    mode = " (diagnose only)" if diagnose else " (check mode)" if request.check else ""
    ctx.terminal.status(
        f"{scenario.name}: running {scenario.fqcn} on {request.limit or 'all hosts'} of {request.inventory}{mode}"
    )
    collector = results.Collector()
    progress = runner.Progress(ctx.terminal.err, verbose=ctx.verbose)
    info = runner.run(
        request,
        collections_path=collection.env_collections_path(),
        runs_dir=state_dir() / "runs",
        handlers=(collector, progress),
        on_cancel=lambda: ctx.terminal.warn("cancelling: stopping ansible-playbook"),
    )
    hint = f"artifacts: {info.artifacts}"
    if info.cancelled:
        raise RunbookError("cancelled: the playbook was stopped; some changes may have been made",
                           ExitCode.CANCELLED, hint=hint)
    if info.timed_out:
        raise RunbookError(f"timed out after {request.timeout}s: the playbook was stopped", hint=hint)
    try:
        summary = results.summarize(collector, scenario.name, service=request.extravars.get("service"),
                                    check=request.check, rc=info.rc)
    except results.NoHostsMatched as exc:
        where = f"--limit {request.limit!r}" if request.limit else "the playbook's hosts"
        raise BadInput(f"no host in {request.inventory} matches {where}: nothing was run",
                       hint=exc.message) from exc
    except results.RunBroken as exc:
        raise RunbookError(exc.message, hint=f"{hint} (see stdout there)") from exc
    return summary, info


@click.command()
@click.argument("scenario")
@_selection_options
@click.option("--check", is_flag=True, help="Check mode: report what would be done (outcome planned), change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Run a destructive scenario without asking for confirmation.")
@output_option
@click.pass_obj
@handle_errors
def run(ctx: Context, scenario: str, inventory, limit, extra_vars, service, timeout, check: bool, yes: bool) -> None:
    """Run SCENARIO (see `runbook list`): diagnose, decide, remediate, verify.

    Exit codes: 0 remediated (or planned with --check), 1 failed, 2 bad input,
    3 escalate (a budget or breaker said no), 4 nothing to do (healthy),
    5 a host unreachable, 130 cancelled.
    """
    selection = Selection(inventory, limit, extra_vars, service, timeout)
    summary, info = _execute(ctx, scenario, selection, check=check, diagnose=False, yes=yes)
    _report(ctx, summary, info, summary.exit_code, diagnose=False)


@click.command()
@click.argument("scenario")
@_selection_options
@output_option
@click.pass_obj
@handle_errors
def diagnose(ctx: Context, scenario: str, inventory, limit, extra_vars, service, timeout) -> None:
    """Gather SCENARIO's evidence and findings without changing anything.

    Runs the playbook in check mode with runbook_diagnose_only=true. Exit codes: 0 when
    every host was diagnosed (whatever was found), 1 when the run failed on a host,
    2 bad input, 5 a host unreachable, 130 cancelled.
    """
    selection = Selection(inventory, limit, extra_vars, service, timeout)
    summary, info = _execute(ctx, scenario, selection, check=True, diagnose=True)
    _report(ctx, summary, info, summary.diagnose_exit_code(), diagnose=True)


# --- output -------------------------------------------------------------------------------

def _report(ctx: Context, summary: results.Summary, info: runner.RunInfo, code: ExitCode, diagnose: bool) -> None:
    terminal = ctx.terminal
    if terminal.json:
        payload = summary.as_dict(info.artifacts)
        payload["exit_code"] = int(code)
        if diagnose:
            payload["diagnose"] = True
        terminal.data(payload)
    else:
        for host, entry in summary.hosts.items():
            _print_host(terminal.out, host, entry, diagnose)
    counts: dict[str, int] = {}
    for entry in summary.hosts.values():
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    detail = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    verb = "diagnosed" if diagnose else summary.outcome
    terminal.status(f"{summary.scenario}: {verb} ({detail}) in {info.elapsed:.1f}s, exit {int(code)}")
    terminal.status(f"artifacts: {info.artifacts}")
    if not diagnose and summary.outcome == "escalate":
        terminal.warn("a budget, cooldown or breaker said no: a human must decide (see the findings above)")
    click.get_current_context().exit(int(code))


def _print_host(out, host: str, entry: dict, diagnose: bool) -> None:
    outcome = entry["outcome"]
    colour = _OUTCOME_COLOURS.get(outcome, "red")
    out.print(f"[bold]{escape(host)}[/bold]  [{colour}]{outcome}[/{colour}]  {escape(entry.get('message') or '')}",
              markup=True)
    if entry.get("task") and outcome in ("failed", results.UNREACHABLE):
        out.print(f"  task: {escape(str(entry['task']))}", markup=True)
    for title, items in (("findings", entry["findings"]),
                         ("would do" if outcome == "planned" else "actions", entry["actions"])):
        if items:
            out.print(f"  {title}:")
            for item in items:
                out.print(f"    - {escape(item)}", markup=True)
    if entry["verification"]:
        out.print(f"  verification: {escape(_inline(entry['verification']))}", markup=True)
    if diagnose and entry["evidence"]:
        out.print("  evidence:")
        text = yaml.safe_dump(entry["evidence"], sort_keys=False, default_flow_style=False, allow_unicode=True,
                              width=4096)
        for line in text.rstrip().splitlines():
            out.print(f"    {escape(line)}", markup=True)
    out.print("")


def _inline(mapping: dict) -> str:
    parts = []
    for key, value in mapping.items():
        text = value if isinstance(value, str) else runner.first_line(value, limit=120)
        parts.append(f"{key}={text}")
    return ", ".join(parts)
