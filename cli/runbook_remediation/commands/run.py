"""``runbook run`` and ``runbook diagnose``: run a scenario playbook, report per host.

Both run the same playbook (``runbook.remediation.<scenario>``); ``diagnose`` adds
``runbook_diagnose_only=true`` and check mode, so it only gathers evidence.

Every run is recorded in the incident timeline: the CLI records the run (id, scenario,
incident, who, where) and enables the collection's ``timeline`` callback, which records
each task result and the scenario results on the same run. ``--incident ID`` attaches
the run to an incident; without it, a real run that found something to do (not
``--check``, not ``diagnose``, not every host healthy) opens one afterwards, titled
``<scenario> on <limit or all hosts>``, opened at the run's start, with the
catalogue's severity. A remediated run marks its incident mitigated (status
``monitoring``). When the timeline cannot be written the run still happens (a warning
says so): during an outage the remediation matters more than its record.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import click
import yaml
from rich.markup import escape

from runbook_remediation import catalogue, incidents, notify, results, runner, timeline
from runbook_remediation.collection import find_collection
from runbook_remediation.commands.incident import open_incident
from runbook_remediation.errors import BadInput, ExitCode, RunbookError, Unavailable
from runbook_remediation.paths import state_dir
from runbook_remediation.shell import Context, handle_errors, output_option

CONFIRM_VAR = "runbook_confirm"  # destructive playbooks refuse to act without it

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
    incident: str | None = None


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
        click.option("--incident", metavar="ID", envvar="RUNBOOK_INCIDENT",
                     help="The incident this run belongs to (see `runbook incident list`). Env: RUNBOOK_INCIDENT. "
                          "Default: a real run that finds something to do opens one."),
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
    if CONFIRM_VAR in extravars:
        raise BadInput(f"-e {CONFIRM_VAR} is set by runbook itself after confirmation: use --yes instead")
    if diagnose:
        extravars["runbook_diagnose_only"] = True
    return extravars


def _confirm_destructive(ctx: Context, scenario: catalogue.Scenario, request: runner.Request, yes: bool) -> bool:
    """Whether the user confirmed a destructive scenario (prompt or --yes). Check mode
    needs no confirmation (it changes nothing) and gets none."""
    if not scenario.destructive:
        return False
    if yes:
        return True
    if request.check:
        return False
    target = request.limit or "every host"
    if not ctx.terminal.can_prompt():
        raise BadInput(
            f"{scenario.name} is destructive (it can lose data or kill work) and needs confirmation",
            hint="pass --yes to run it without a prompt, or --check to see what it would do",
        )
    question = f"{scenario.name} is destructive: {scenario.description}\nRun it on {target} ({request.inventory})?"
    if not click.confirm(question, default=False, err=True):
        raise RunbookError("not confirmed: nothing was run", ExitCode.CANCELLED)
    return True


@dataclass
class Recorded:
    """The run's place in the timeline (filled in as far as the store allowed)."""

    run_id: str
    incident: str | None = None
    store_ok: bool = True


def execute(ctx: Context, name: str, selection: Selection, *, check: bool, diagnose: bool, yes: bool = False):
    """Run scenario ``name``; returns (summary, run info, the run's place in the timeline)."""
    collection = find_collection()
    scenario = catalogue.get(collection, name)
    playbook_path = scenario.playbook_path(collection)
    if not playbook_path.is_file():
        raise Unavailable(f"scenario {scenario.name}: its playbook {playbook_path} is missing from the collection")
    extravars = _extravars(selection, diagnose)
    plain, secret = runner.split_secrets(extravars, _secret_checker(ctx))
    request = runner.Request(
        scenario=scenario.name,
        playbook=scenario.fqcn,
        inventory=_inventory(selection.inventory),
        limit=selection.limit,
        extravars=plain,
        secret_vars=secret,
        check=check or diagnose,
        timeout=selection.timeout,
    )
    runner.validate(request)
    incident = selection.incident.strip() if selection.incident else None
    if selection.incident is not None and not incident:
        raise BadInput("--incident is empty: name one (runbook incident list)")
    if _confirm_destructive(ctx, scenario, request, yes):
        request = replace(request, extravars={**request.extravars, CONFIRM_VAR: True})
    recorded = _record_start(ctx, scenario, request, incident)
    request = replace(request, env=runner.timeline_env(recorded.run_id, timeline.db_path(), recorded.incident,
                                                       os.environ))

    mode = " (diagnose only)" if diagnose else " (check mode)" if request.check else ""
    ctx.terminal.status(
        f"{scenario.name}: running {scenario.fqcn} on {request.limit or 'all hosts'} of {request.inventory}{mode}"
        + (f" for {recorded.incident}" if recorded.incident else "")
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
        _record_end(ctx, recorded, "interrupted", info)
        raise RunbookError("cancelled: the playbook was stopped; some changes may have been made",
                           ExitCode.CANCELLED, hint=hint)
    if info.timed_out:
        _record_end(ctx, recorded, "timeout", info)
        raise RunbookError(f"timed out after {request.timeout}s: the playbook was stopped", hint=hint)
    try:
        summary = results.summarize(collector, scenario.name, service=request.extravars.get("service"),
                                    check=request.check, rc=info.rc)
    except results.NoHostsMatched as exc:
        _record_end(ctx, recorded, "no hosts", info)
        where = f"--limit {request.limit!r}" if request.limit else "the playbook's hosts"
        raise BadInput(f"no host in {request.inventory} matches {where}: nothing was run",
                       hint=exc.message) from exc
    except results.RunBroken as exc:
        _record_end(ctx, recorded, "failed", info)
        raise RunbookError(exc.message, hint=f"{hint} (see stdout there)") from exc
    _record_end(ctx, recorded, summary.outcome, info)
    if not request.check:
        _settle_incident(ctx, scenario, request, summary, recorded)
    return summary, info, recorded


def _secret_checker(ctx: Context):
    """The store's idea of a secret; when the store cannot load, a name-based fallback."""
    try:
        timeline.load_module()
    except RunbookError as exc:
        ctx.terminal.warn(f"timeline unavailable ({exc.message}): secrets are recognised by name only")
        pattern = re.compile(r"passw|secret|token|api[_-]?key|apikey|authorization|bearer|credential|private[_-]?key",
                             re.IGNORECASE)
        return lambda name, value: bool(pattern.search(name))
    return timeline.is_secret_var


# --- the timeline -------------------------------------------------------------------------

def _timeline_warning(ctx: Context, exc: RunbookError) -> None:
    ctx.terminal.warn(f"incident timeline unavailable: {exc.message}; the run goes on unrecorded by the CLI")


def _record_start(ctx: Context, scenario: catalogue.Scenario, request: runner.Request,
                  incident: str | None) -> Recorded:
    """Record the run (and check its incident) before it starts."""
    recorded = Recorded(run_id=str(uuid.uuid4()), incident=incident)
    record = None
    try:
        with timeline.open_store(secrets=timeline.secret_values(request.secret_vars)) as store:
            if incident:
                record = store.get_incident(incident)
                if record is None:
                    raise BadInput(f"no incident {incident} in {store.path}",
                                   hint="runbook incident list --all, or leave out --incident")
                if record["status"] == "resolved":
                    ctx.terminal.warn(f"{incident} is resolved: this run is recorded on it all the same")
            started = timeline.now()
            store.start_run(
                recorded.run_id, started_at=started, incident_id=incident, scenario=scenario.name,
                playbook=scenario.fqcn,
                entrance="cli", user=incidents.current_user(), check_mode=request.check,
                extra={"inventory": str(request.inventory), "limit": request.limit,
                       "service": request.extravars.get("service"),
                       "vars_off_disk": sorted(request.secret_vars) or None},
            )
            if record is not None and not request.check and not record.get("acknowledged_at"):
                store.update_incident(incident, acknowledged_at=started)
                store.add_event("status", incident_id=incident,
                                message=f"acknowledged by {incidents.current_user()} (runbook run {scenario.name})")
    except BadInput:
        raise
    except RunbookError as exc:
        _timeline_warning(ctx, exc)
        recorded.store_ok = False
    return recorded


def _record_end(ctx: Context, recorded: Recorded, outcome: str, info: runner.RunInfo) -> None:
    """End the run in the store when the callback could not (a run that broke early)."""
    if not recorded.store_ok:
        return
    try:
        with timeline.open_store() as store:
            run = store.get_run(recorded.run_id) or {}
            if not run.get("ended_at"):
                store.end_run(recorded.run_id, outcome=outcome)
            store.update_run(recorded.run_id, extra={"artifacts": str(info.artifacts), "rc": info.rc,
                                                     "status": info.status})
    except RunbookError as exc:
        _timeline_warning(ctx, exc)
        recorded.store_ok = False


def _settle_incident(ctx: Context, scenario: catalogue.Scenario, request: runner.Request,
                     summary: results.Summary, recorded: Recorded) -> None:
    """After a real run: open its incident when it had none and found something to do;
    mark the incident mitigated when the run remediated."""
    if not recorded.store_ok:
        return
    outcomes = {entry["outcome"] for entry in summary.hosts.values()}
    try:
        with timeline.open_store() as store:
            run = store.get_run(recorded.run_id) or {}
            if recorded.incident is None:
                if outcomes <= {"healthy", "skipped"}:
                    ctx.terminal.status("nothing to do: no incident opened")
                    return
                opened = run.get("started_at") or timeline.now()
                hosts = sorted(summary.hosts)
                recorded.incident, notice = open_incident(
                    store, None, notify.webhook_url(None), record_printed=False,
                    title=f"{scenario.name} on {request.limit or 'all hosts'}", severity=scenario.severity,
                    scenario=scenario.name, service=request.extravars.get("service"), hosts=hosts,
                    opened_at=opened, acknowledged_at=opened, created_by=f"{incidents.current_user()} (runbook run)",
                )
                store.update_run(recorded.run_id, incident_id=recorded.incident)
                ctx.terminal.status(f"opened incident {recorded.incident} ({scenario.severity})")
                if notice is not None and notice.error:
                    ctx.terminal.warn(f"initial notification not delivered: {notice.error}")
            record = store.get_incident(recorded.incident)
            if record is None:
                return
            if "remediated" in outcomes and not record.get("mitigated_at"):
                events = store.events(run_id=recorded.run_id)
                mitigated = incidents.first_remediation(events, [store.get_run(recorded.run_id) or {}])
                fields = {"mitigated_at": mitigated or timeline.now()}
                if record["status"] in ("investigating", "identified"):
                    fields["status"] = "monitoring"
                store.update_incident(recorded.incident, **fields)
    except RunbookError as exc:
        _timeline_warning(ctx, exc)


@click.command()
@click.argument("scenario")
@_selection_options
@click.option("--check", is_flag=True, help="Check mode: report what would be done (outcome planned), change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Run a destructive scenario without asking for confirmation.")
@output_option
@click.pass_obj
@handle_errors
def run(ctx: Context, scenario: str, inventory, limit, extra_vars, service, timeout, incident, check: bool,
        yes: bool) -> None:
    """Run SCENARIO (see `runbook list`): diagnose, decide, remediate, verify.

    Exit codes: 0 remediated (or planned with --check), 1 failed, 2 bad input,
    3 escalate (a budget or breaker said no), 4 nothing to do (healthy),
    5 a host unreachable, 130 cancelled.
    """
    selection = Selection(inventory, limit, extra_vars, service, timeout, incident)
    summary, info, recorded = execute(ctx, scenario, selection, check=check, diagnose=False, yes=yes)
    report(ctx, summary, info, summary.exit_code, diagnose=False, recorded=recorded)


@click.command()
@click.argument("scenario")
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
    selection = Selection(inventory, limit, extra_vars, service, timeout, incident)
    summary, info, recorded = execute(ctx, scenario, selection, check=True, diagnose=True)
    report(ctx, summary, info, summary.diagnose_exit_code(), diagnose=True, recorded=recorded)


# --- output -------------------------------------------------------------------------------

def report(ctx: Context, summary: results.Summary, info: runner.RunInfo, code: ExitCode, diagnose: bool,
           recorded: Recorded | None = None, extra: dict | None = None) -> None:
    """Print the run's result (JSON or per host), then exit with ``code``."""
    terminal = ctx.terminal
    if terminal.json:
        payload = {**(extra or {}), **summary.as_dict(info.artifacts)}
        payload["exit_code"] = int(code)
        payload["incident"] = recorded.incident if recorded else None
        payload["run_id"] = recorded.run_id if recorded else None
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
    if recorded is not None and recorded.incident:
        terminal.status(f"incident: {recorded.incident} (runbook incident show {recorded.incident})")
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
