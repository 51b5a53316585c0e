"""Run a scenario playbook, record it in the incident timeline, settle its incident.

What ``runbook run``, ``runbook diagnose`` and ``runbook triage --run`` do, without the
command line: :func:`execute` checks the selection, runs the playbook
(``runbook.remediation.<scenario>``) through :mod:`runbook_remediation.runner` and
returns the per-host summary. ``diagnose`` adds ``runbook_diagnose_only=true`` and check
mode, so it only gathers evidence.

Every run is recorded in the incident timeline: the CLI records the run (id, scenario,
incident, who, where) and enables the collection's ``timeline`` callback, which records
each task result and the scenario results on the same run. A selection's ``incident``
attaches the run to an incident; without one, a real run that found something to do
(not check mode, not diagnose, not every host healthy) opens one afterwards, titled
``<scenario> on <limit or all hosts>``, opened at the run's start, with the
catalogue's severity. A remediated run marks its incident mitigated (status
``monitoring``). When the timeline cannot be written the run still happens (a warning
says so): during an outage the remediation matters more than its record.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from runbook_remediation import (
    catalogue,
    incidents,
    notify,
    outcomes,
    results,
    runner,
    secret_names,
    shared_state,
    timeline,
)
from runbook_remediation import inventory as inventories
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import BadInput, ExitCode, RunbookError, Unavailable
from runbook_remediation.paths import state_dir
from runbook_remediation.terminal import Terminal

CONFIRM_VAR = "runbook_confirm"  # destructive playbooks refuse to act without it
OVERRIDE_VAR = "runbook_override_safety"  # the scenario frame refuses safety extra vars without it


@dataclass(frozen=True)
class Selection:
    """Where and how to run, as the user gave it."""

    inventory: str | None
    limit: str | None
    extra_vars: tuple[str, ...]
    service: str | None
    timeout: int | None
    incident: str | None = None
    # Why safety settings given as extra vars may loosen the envelope (recorded in the result).
    override_safety: str | None = None
    # Undo what an earlier run set: the catalogue entry's `revert` vars.
    revert: bool = False


@dataclass
class Recorded:
    """The run's place in the timeline (filled in as far as the store allowed)."""

    run_id: str
    incident: str | None = None
    store_ok: bool = True


def inventory(given: str | None) -> Path:
    """-i / $RUNBOOK_INVENTORY, else the lab's inventory when the lab is up."""
    if given:
        return Path(given).expanduser()
    lab_inventory = state_dir() / "lab" / "inventory.yml"
    if lab_inventory.is_file():
        return lab_inventory
    raise BadInput("no inventory: pass -i or start the lab (runbook lab up)")


def check_alert_host(host: str | None, inventory_path: Path) -> str:
    """The host an alert names, as the limit of a run: it must be one host of the
    inventory (an alert without one would run on every host; a label is never a pattern)."""
    if not host:
        raise BadInput("the alert names no host: refusing to run on every host",
                       hint="run the scenario yourself with -l HOST")
    names = inventories.host_names(inventory_path, runner.child_env(os.environ, {}))
    if host not in names:
        raise BadInput(f"the alert's host {escape_label(host)} is not a host of {inventory_path}",
                       hint="an alert may only name one inventory host")
    return host


def escape_label(value: str) -> str:
    """A label value as a message shows it: printable, short, quoted."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return repr(text if len(text) <= 80 else text[:77] + "...")


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
    if selection.override_safety is not None:
        reason = " ".join(selection.override_safety.split())
        if len(reason) < 3:
            raise BadInput("--override-safety needs a reason (it is recorded with the run's result)")
        extravars[OVERRIDE_VAR] = reason
    if diagnose:
        extravars["runbook_diagnose_only"] = True
    return extravars


def with_revert(scenario: catalogue.Scenario, extravars: dict) -> dict:
    """The extra vars plus the scenario's revert vars; an -e that says otherwise is bad input."""
    if not scenario.revert:
        raise BadInput(f"scenario {scenario.name} has nothing to revert",
                       hint="--revert works with the scenarios whose catalogue entry has `revert` (runbook list)")
    merged = dict(extravars)
    for name, value in scenario.revert:
        if name in merged and str(merged[name]).lower() != str(value).lower():
            raise BadInput(f"--revert sets {name}={value}, and -e {name}={merged[name]} disagrees: give one")
        merged[name] = value
    return merged


def _confirm_destructive(terminal: Terminal, scenario: catalogue.Scenario, request: runner.Request, yes: bool,
                         confirm: Callable[[str], bool] | None) -> bool:
    """Whether the user confirmed a destructive scenario (prompt or ``yes``). Check mode
    needs no confirmation (it changes nothing) and gets none."""
    if not scenario.destructive:
        return False
    if yes:
        return True
    if request.check:
        return False
    target = request.limit or "every host"
    if confirm is None or not terminal.can_prompt():
        raise BadInput(
            f"{scenario.name} is destructive (it can lose data or kill work) and needs confirmation",
            hint="pass --yes to run it without a prompt, or --check to see what it would do",
        )
    question = f"{scenario.name} is destructive: {scenario.description}\nRun it on {target} ({request.inventory})?"
    if not confirm(question):
        raise RunbookError("not confirmed: nothing was run", ExitCode.CANCELLED)
    return True


def execute(terminal: Terminal, name: str, selection: Selection, *, check: bool, diagnose: bool, yes: bool = False,
            verbose: bool = False, confirm: Callable[[str], bool] | None = None):
    """Run scenario ``name``; returns (summary, run info, the run's place in the timeline).

    Progress and warnings go to ``terminal`` (stderr); ``confirm(question)`` asks the user
    to confirm a destructive scenario (without it, or without a TTY, only ``yes`` does).
    """
    collection = find_collection()
    scenario = catalogue.get(collection, name)
    playbook_path = scenario.playbook_path(collection)
    if not playbook_path.is_file():
        raise Unavailable(f"scenario {scenario.name}: its playbook {playbook_path} is missing from the collection")
    extravars = _extravars(selection, diagnose)
    if selection.revert:
        extravars = with_revert(scenario, extravars)
    # Settings the run needs after it acted are checked before: a bad one must stop it here.
    notify.webhook_url(None)
    if scenario.category == "security":
        notify.security_webhook_url()
    runner.retention(os.environ)
    shared_state.check()  # an unreachable shared database: exit 5 before anything is done
    plain, secret = runner.split_secrets(extravars, _secret_checker(terminal))
    request = runner.Request(
        scenario=scenario.name,
        playbook=scenario.fqcn,
        inventory=inventory(selection.inventory),
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
    if _confirm_destructive(terminal, scenario, request, yes, confirm):
        request = replace(request, extravars={**request.extravars, CONFIRM_VAR: True})
    recorded = _record_start(terminal, scenario, request, incident)
    request = replace(request, env=runner.timeline_env(recorded.run_id, timeline.db_path(), recorded.incident,
                                                       os.environ))

    mode = " (diagnose only)" if diagnose else " (check mode)" if request.check else ""
    terminal.status(
        f"{scenario.name}: running {scenario.fqcn} on {request.limit or 'all hosts'} of {request.inventory}{mode}"
        + (f" for {recorded.incident}" if recorded.incident else "")
    )
    collector = results.Collector()
    progress = runner.Progress(terminal.err, verbose=verbose)
    with shared_state.child_env() as state_env:
        info = runner.run(
            replace(request, env={**request.env, **state_env}),
            collections_path=collection.env_collections_path(),
            runs_dir=state_dir() / "runs",
            handlers=(collector, progress),
            on_cancel=lambda: terminal.warn("cancelling: stopping ansible-playbook"),
        )
    hint = f"artifacts: {info.artifacts}"
    if info.cancelled:
        _record_end(terminal, recorded, outcomes.INTERRUPTED, info)
        raise RunbookError("cancelled: the playbook was stopped; some changes may have been made",
                           ExitCode.CANCELLED, hint=hint)
    if info.timed_out:
        _record_end(terminal, recorded, outcomes.TIMED_OUT, info)
        raise RunbookError(f"timed out after {request.timeout}s: the playbook was stopped", hint=hint)
    try:
        summary = results.summarize(collector, scenario.name, service=request.extravars.get("service"),
                                    check=request.check, rc=info.rc)
    except results.InventoryUnusable:
        _record_end(terminal, recorded, outcomes.NO_HOSTS, info)
        raise
    except results.NoHostsMatched as exc:
        _record_end(terminal, recorded, outcomes.NO_HOSTS, info)
        where = f"--limit {request.limit!r}" if request.limit else "the playbook's hosts"
        raise BadInput(f"no host in {request.inventory} matches {where}: nothing was run",
                       hint=exc.message) from exc
    except results.VaultLocked:
        _record_end(terminal, recorded, outcomes.NO_HOSTS, info)
        raise
    except results.RunBroken as exc:
        _record_end(terminal, recorded, outcomes.FAILED, info)
        raise RunbookError(exc.message, hint=f"{hint} (see stdout there)") from exc
    _record_end(terminal, recorded, summary.outcome, info)
    if not request.check:
        _settle_incident(terminal, scenario, request, summary, recorded)
    return summary, info, recorded


def _secret_checker(terminal: Terminal) -> Callable[[str, object], bool]:
    """The store's idea of a secret; when the store cannot load, the name rule alone."""
    try:
        timeline.load_module()
    except RunbookError as exc:
        terminal.warn(f"timeline unavailable ({exc.message}): secrets are recognised by name only")
        return lambda name, value: secret_names.is_secret_name(name)
    return timeline.is_secret_var


# --- the timeline -------------------------------------------------------------------------

def _timeline_warning(terminal: Terminal, exc: RunbookError) -> None:
    terminal.warn(f"incident timeline unavailable: {exc.message}; the run goes on unrecorded by the CLI")


def _record_start(terminal: Terminal, scenario: catalogue.Scenario, request: runner.Request,
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
                    terminal.warn(f"{incident} is resolved: this run is recorded on it all the same")
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
        _timeline_warning(terminal, exc)
        recorded.store_ok = False
    return recorded


def _record_end(terminal: Terminal, recorded: Recorded, outcome: str, info: runner.RunInfo) -> None:
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
        _timeline_warning(terminal, exc)
        recorded.store_ok = False


def _settle_incident(terminal: Terminal, scenario: catalogue.Scenario, request: runner.Request,
                     summary: results.Summary, recorded: Recorded) -> None:
    """After a real run: open its incident when it had none and found something to do;
    mark the incident mitigated when the run remediated."""
    if not recorded.store_ok:
        return
    found = {entry["outcome"] for entry in summary.hosts.values()}
    ranked = {results.rank(entry) for entry in summary.hosts.values()}
    try:
        with timeline.open_store() as store:
            run = store.get_run(recorded.run_id) or {}
            if recorded.incident is None:
                if found <= outcomes.NOTHING_DONE:
                    terminal.status("nothing to do: no incident opened")
                    return
                # A request the hosts refused (bad service, bad variable) is the caller's
                # mistake, not an incident: it says nothing about the service.
                if ranked <= outcomes.NOTHING_DONE | {results.INVALID}:
                    terminal.status("invalid input: no incident opened")
                    return
                opened = run.get("started_at") or timeline.now()
                hosts = sorted(summary.hosts)
                recorded.incident, notice = incidents.open_incident(
                    store, None, notify.webhook_url(None), record_printed=False,
                    title=f"{scenario.name} on {request.limit or 'all hosts'}", severity=scenario.severity,
                    scenario=scenario.name, service=request.extravars.get("service"), hosts=hosts,
                    opened_at=opened, acknowledged_at=opened, created_by=f"{incidents.current_user()} (runbook run)",
                )
                store.update_run(recorded.run_id, incident_id=recorded.incident)
                terminal.status(f"opened incident {recorded.incident} ({scenario.severity})")
                if notice is not None and notice.error:
                    terminal.warn(f"initial notification not delivered: {notice.error}")
                if notice is not None and notice.security_error:
                    terminal.warn(f"initial notification not delivered to the security channel: "
                                  f"{notice.security_error}")
            record = store.get_incident(recorded.incident)
            if record is None:
                return
            if outcomes.REMEDIATED in found and not record.get("mitigated_at"):
                events = store.events(run_id=recorded.run_id)
                mitigated = incidents.first_remediation(events, [store.get_run(recorded.run_id) or {}])
                fields = {"mitigated_at": mitigated or timeline.now()}
                if record["status"] in ("investigating", "identified"):
                    fields["status"] = "monitoring"
                store.update_incident(recorded.incident, **fields)
    except RunbookError as exc:
        _timeline_warning(terminal, exc)
