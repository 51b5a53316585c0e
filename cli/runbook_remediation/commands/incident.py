"""``runbook incident``: open, update, acknowledge, resolve, list and show incidents.

Records live in the timeline store (SQLite, ``$RUNBOOK_TIMELINE_DB`` or
``<state dir>/timeline.db``) that the collection's ``timeline`` callback also writes, so
runs from ``ansible-playbook`` and AWX land in the same incidents. Opening, updating and
resolving render the seeds' communication templates and send them to a Slack-compatible
webhook (``--notify URL`` or ``$RUNBOOK_WEBHOOK_URL``), or print them when none is set.
"""

from __future__ import annotations

from datetime import datetime

import click
from rich.table import Table

from runbook_remediation import catalogue, incidents, notify, paging, triage
from runbook_remediation import completion as complete
from runbook_remediation.collection import find_collection
from runbook_remediation.commands.base import Context, handle_errors, non_empty, output_option
from runbook_remediation.errors import BadInput, ExitCode, RunbookError, Unavailable
from runbook_remediation.incidents import (
    Notice,
    announce,
    apply_update,
    fail_if_undelivered,
    get_incident,
    load_matrix,
    now,
    open_incident,
)
from runbook_remediation.terminal import safe
from runbook_remediation.timeline import open_store

_STATUS_COLOURS = {"investigating": "red", "identified": "yellow", "monitoring": "cyan", "resolved": "green"}
_SEVERITY_COLOURS = {"P0": "bold red", "P1": "red", "P2": "yellow", "P3": "dim"}


def show_notice(ctx: Context, notice: Notice, printed_to_stdout: bool = False) -> None:
    """Tell the user what happened to a notification (on stderr; the text itself when it
    was not sent)."""
    if notice.error:
        ctx.terminal.warn(f"{notice.kind} notification not delivered: {notice.error}")
    elif notice.sent_to:
        ctx.terminal.status(f"{notice.kind} notification sent to {notice.sent_to} (HTTP {notice.status})")
    elif not printed_to_stdout:
        ctx.terminal.status(f"{notice.kind} notification (no webhook set: --notify URL or RUNBOOK_WEBHOOK_URL):")
        ctx.terminal.err.print(safe(notice.text.rstrip()), markup=True)


def show_pages(ctx: Context, report: paging.Report) -> None:
    """One line per page on stderr (never the routing key or the password: Page holds neither)."""
    for page in report.pages:
        if page.error:
            ctx.terminal.warn(f"page {page.describe()}")
        else:
            ctx.terminal.status(f"page {page.describe()}")


# --- the commands -------------------------------------------------------------------------

def _notify_options(func):
    options = [
        click.option("--notify", "notify_url", metavar="URL", envvar=notify.ENV,
                     help="Slack-compatible webhook to send the notification to. Env: RUNBOOK_WEBHOOK_URL. "
                          "Without one the notification is printed."),
        click.option("--no-notify", is_flag=True,
                     help="Neither send nor print the webhook notification (pages still go out: docs/paging.md)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def incident() -> None:
    """Incidents: open, update, ack, resolve, remind, list, show, notify.

    Every `runbook run` belongs to one (opened automatically unless --incident is given);
    runs under plain ansible-playbook join one through the timeline callback
    (RUNBOOK_INCIDENT). The store: $RUNBOOK_TIMELINE_DB, else <state dir>/timeline.db.
    """


@incident.command(name="open")
@click.argument("title")
@click.option("--severity", type=click.Choice(triage.SEVERITIES), default="P2", show_default=True)
@click.option("--commander", metavar="NAME", callback=non_empty,
              help="The incident commander (names one: acknowledged).")
@click.option("--impact", metavar="TEXT", help="Who or what is affected.")
@click.option("--scenario", metavar="NAME", callback=non_empty,
              help="The scenario that applies (see `runbook list`).")
@click.option("--service", metavar="NAME", callback=non_empty, help="The affected service.")
@click.option("--host", "hosts", multiple=True, metavar="HOST", callback=non_empty,
              shell_complete=complete.inventory_hosts,
              help="An affected host. Repeatable.")
@click.option("--detected-at", metavar="TIME", help="When the problem started (ISO 8601, e.g. the alert's startsAt).")
@_notify_options
@output_option
@click.pass_obj
@handle_errors
def open_(ctx: Context, title, severity, commander, impact, scenario, service, hosts, detected_at, notify_url,
          no_notify) -> None:
    """Open an incident titled TITLE; prints its id (INC-YYYYMMDD-NNNN)."""
    if not title.strip():
        raise BadInput("an incident needs a title")
    detected = None
    if detected_at:
        parsed = incidents.parse_ts(detected_at)
        if parsed is None:
            raise BadInput(f"--detected-at {detected_at!r} is not an ISO 8601 time")
        detected = incidents.format_ts(parsed)
    if scenario:
        catalogue.get(find_collection(), scenario)
    url = None if no_notify else notify.webhook_url(notify_url)
    matrix = load_matrix()
    pager = paging.Pager.from_env(matrix)
    with open_store() as store:
        incident_id, notice = open_incident(
            store, matrix, url, record_printed=not no_notify, title=title.strip(), severity=severity,
            commander=commander, impact=impact, scenario=scenario, service=service, hosts=list(hosts),
            detected_at=detected)
        pages = paging.on_open(store, pager, incident_id, now())
        record = store.get_incident(incident_id)
    _emit_change(ctx, record, notice, f"opened {incident_id} ({severity}): {title.strip()}", pages)


@incident.command()
@click.argument("incident_id", metavar="INCIDENT", callback=non_empty, shell_complete=complete.incident_ids)
@click.option("--status", type=click.Choice(incidents.STATUSES),
              help="investigating, identified, monitoring (resolve with `incident resolve`).")
@click.option("--severity", type=click.Choice(triage.SEVERITIES))
@click.option("--commander", metavar="NAME", callback=non_empty)
@click.option("--impact", metavar="TEXT")
@click.option("--note", metavar="TEXT", help="What you learned or did (goes into the update and the timeline).")
@click.option("--root-cause", metavar="TEXT", help="The root cause, once known.")
@click.option("--ack", is_flag=True, help="Acknowledge the incident (sets acknowledged_at).")
@_notify_options
@output_option
@click.pass_obj
@handle_errors
def update(ctx: Context, incident_id, status, severity, commander, impact, note, root_cause, ack, notify_url,
           no_notify) -> None:
    """Change INCIDENT's status, severity, commander or impact; add a note; send an update."""
    if not any((status, severity, commander, impact, note, root_cause, ack)):
        raise BadInput("nothing to update: give --status, --severity, --commander, --impact, --note, "
                       "--root-cause or --ack")
    if status == "resolved":
        raise BadInput("use `runbook incident resolve` to resolve (it sets mitigated_at and sends the resolution)")
    url = None if no_notify else notify.webhook_url(notify_url)
    matrix = load_matrix()
    pager = paging.Pager.from_env(matrix)
    with open_store() as store:
        record = apply_update(store, incident_id, status=status, severity=severity, commander=commander,
                              impact=impact, note=note, root_cause=root_cause, ack=ack)
        pages = paging.on_ack(store, pager, incident_id, now()) if ack else None
        notice = None if no_notify else announce(store, incident_id, "update", url, matrix)
        record = store.get_incident(incident_id)
    _emit_change(ctx, record, notice, f"updated {incident_id}: {record['status']} ({record['severity']})", pages)


@incident.command()
@click.argument("incident_id", metavar="INCIDENT", callback=non_empty, shell_complete=complete.incident_ids)
@click.option("--commander", metavar="NAME", callback=non_empty, help="Take command as NAME.")
@output_option
@click.pass_obj
@handle_errors
def ack(ctx: Context, incident_id, commander) -> None:
    """Acknowledge INCIDENT (sets acknowledged_at; the clock of TTA stops; escalation pages
    stop; PagerDuty's alert is acknowledged)."""
    pager = paging.Pager.from_env(load_matrix())
    with open_store() as store:
        record = apply_update(store, incident_id, commander=commander, ack=True)
        pages = paging.on_ack(store, pager, incident_id, now())
    _emit_change(ctx, record, None, f"acknowledged {incident_id} at {incidents.show_ts(record['acknowledged_at'])}",
                 pages)


@incident.command()
@click.argument("incident_id", metavar="INCIDENT", callback=non_empty, shell_complete=complete.incident_ids)
@click.option("--root-cause", metavar="TEXT", help="The root cause (into the resolution and the post-mortem).")
@click.option("--resolution", metavar="TEXT", help="What fixed it (the remediated runs are listed anyway).")
@click.option("--note", metavar="TEXT")
@click.option("--alertmanager", metavar="URL", envvar="RUNBOOK_ALERTMANAGER_URL",
              help="Where to check that the incident's alerts stopped firing. Env: RUNBOOK_ALERTMANAGER_URL. "
                   "Default: the inventory's runbook_alertmanager_url.")
@click.option("--force", is_flag=True, help="Resolve although its alerts still fire or cannot be checked.")
@_notify_options
@output_option
@click.pass_obj
@handle_errors
def resolve(ctx: Context, incident_id, root_cause, resolution, note, alertmanager, force, notify_url,
            no_notify) -> None:
    """Resolve INCIDENT: resolved_at now; mitigated_at = the first remediated run result when
    not set; sends the resolution notification and resolves PagerDuty's alert.

    An incident opened from alerts is resolved only when Alertmanager no longer has them
    (exit 3 while they fire; exit 5 when it cannot be asked), unless --force.
    """
    url = None if no_notify else notify.webhook_url(notify_url)
    matrix = load_matrix()
    pager = paging.Pager.from_env(matrix)
    with open_store() as store:
        record = get_incident(store, incident_id)
        if record["status"] == "resolved":
            raise BadInput(f"{incident_id} is already resolved (at {incidents.show_ts(record['resolved_at'])})")
        _check_alerts_cleared(ctx, record, alertmanager, force)
        fields = incidents.resolve_fields(record, store.events(incident_id=incident_id),
                                          store.list_runs(incident_id), incidents.format_ts(now()))
        if resolution:
            store.add_event("note", incident_id=incident_id, message=resolution, data={"field": "resolution"})
        record = apply_update(store, incident_id, note=note, root_cause=root_cause, extra_fields=fields)
        pages = paging.on_resolve(store, pager, incident_id, now())
        notice = None if no_notify else announce(store, incident_id, "resolution", url, matrix)
        record = store.get_incident(incident_id)
    took = incidents.duration(incidents.between(record["opened_at"], record["resolved_at"]))
    _emit_change(ctx, record, notice, f"resolved {incident_id} after {took}", pages)


def _check_alerts_cleared(ctx: Context, record: dict, alertmanager: str | None, force: bool) -> None:
    """Refuse (exit 3) while the incident's alerts fire; fail closed (exit 5) when Alertmanager
    cannot tell; --force turns both into warnings."""
    try:
        firing = incidents.firing_alerts(record, incidents.alertmanager_url(alertmanager))
    except Unavailable as exc:
        if not force:
            raise Unavailable(f"cannot check that {record['id']}'s alerts stopped: {exc.message}",
                              hint="pass --force to resolve it anyway") from exc
        ctx.terminal.warn(f"cannot check that {record['id']}'s alerts stopped: {exc.message} (--force: resolving)")
        return
    if firing and not force:
        raise RunbookError(f"{record['id']}'s alerts still fire: {', '.join(firing)}", ExitCode.ESCALATE,
                           hint="wait until they stop, or pass --force")
    if firing:
        ctx.terminal.warn(f"{record['id']}'s alerts still fire: {', '.join(firing)} (--force: resolving)")


@incident.command()
@output_option
@click.pass_obj
@handle_errors
def remind(ctx: Context) -> None:
    """Page the escalation steps that are due (for cron; `runbook watch` does it every minute).

    For each open, unacknowledged incident, each step of the escalation matrix whose time
    has come is emailed once to the roster roles it names ($RUNBOOK_ROSTER, RUNBOOK_SMTP_*).
    What was sent is recorded in the incident's timeline: running it again sends nothing
    twice. Exit 5 when a page failed (it is retried on the next run).
    """
    matrix = load_matrix()
    pager = paging.Pager.from_env(matrix)
    if pager.smtp is None or pager.roster is None:
        ctx.terminal.warn("escalation pages need RUNBOOK_SMTP_HOST and RUNBOOK_ROSTER: nothing sent")
    with open_store() as store:
        report = paging.remind(store, pager, matrix, now())
    if ctx.terminal.json:
        ctx.terminal.data({"pages": [p.as_dict() for p in report.pages]})
    else:
        show_pages(ctx, report)
        if not report.pages:
            ctx.terminal.status("no escalation step due")
    report.fail_if_undelivered("escalation pages were sent")


@incident.command(name="notify")
@click.argument("incident_id", metavar="INCIDENT", callback=non_empty, shell_complete=complete.incident_ids)
@click.option("--kind", type=click.Choice(incidents.NOTIFICATION_KINDS),
              help="Which template. Default: resolution when resolved, else update.")
@click.option("--notify", "notify_url", metavar="URL", envvar=notify.ENV,
              help="Slack-compatible webhook. Env: RUNBOOK_WEBHOOK_URL. Without one the text is printed.")
@output_option
@click.pass_obj
@handle_errors
def notify_(ctx: Context, incident_id, kind, notify_url) -> None:
    """Render INCIDENT's notification and send it (or print it when no webhook is set)."""
    url = notify.webhook_url(notify_url)
    matrix = load_matrix()
    with open_store() as store:
        record = get_incident(store, incident_id)
        notice = announce(store, incident_id, kind or incidents.notification_kind_for(record["status"]), url, matrix)
    if ctx.terminal.json:
        ctx.terminal.data({"incident": incident_id, "notification": notice.as_dict()})
    elif not url:
        ctx.terminal.out.print(safe(notice.text.rstrip()), markup=True)
    show_notice(ctx, notice, printed_to_stdout=True)
    fail_if_undelivered(notice, f"{incident_id} is unchanged")


@incident.command(name="list")
@click.option("--all", "all_", is_flag=True, help="Resolved incidents too.")
@output_option
@click.pass_obj
@handle_errors
def list_(ctx: Context, all_: bool) -> None:
    """Open incidents (or --all), newest first, with the escalation reminders due now."""
    matrix = load_matrix()
    moment = now()
    with open_store() as store:
        records = store.list_incidents(None if all_ else "open")
        rows = []
        for record in records:
            events = store.events(incident_id=record["id"])
            due = incidents.reminders(record, matrix, moment, incidents.last_notification(events))
            rows.append((record, due))
    if ctx.terminal.json:
        ctx.terminal.data([_record_dict(record, due, moment) for record, due in rows])
        return
    if not rows:
        ctx.terminal.status("no open incidents" if not all_ else "no incidents")
        return
    table = Table(title_justify="left", title="incidents" if all_ else "open incidents")
    for column in ("id", "sev", "status", "age"):
        table.add_column(column, no_wrap=True)
    for column in ("title", "commander"):
        table.add_column(column, overflow="fold")
    for record, _due in rows:
        colour = _SEVERITY_COLOURS.get(record["severity"], "")
        severity = safe(record["severity"])
        age_end = incidents.parse_ts(record.get("resolved_at")) or moment
        age = triage.human_age((age_end - incidents.parse_ts(record["opened_at"])).total_seconds())
        table.add_row(
            safe(record["id"]), f"[{colour}]{severity}[/{colour}]" if colour else severity,
            _status(record["status"]), age, safe(record["title"]), safe(record.get("commander") or "-"),
        )
    out = ctx.terminal.out
    out.print(table)
    # Reminders under the table, one per line: they are sentences, not cells.
    for record, due in rows:
        for reminder in due:
            colour = "red" if reminder.overdue else "dim"
            out.print(f"{safe(record['id'])}: [{colour}]{safe(reminder.text)}[/{colour}]", markup=True, soft_wrap=True)


@incident.command()
@click.argument("incident_id", metavar="INCIDENT", callback=non_empty, shell_complete=complete.incident_ids)
@click.option("--tasks", is_flag=True, help="Every task event, not only those that changed or failed something.")
@output_option
@click.pass_obj
@handle_errors
def show(ctx: Context, incident_id, tasks: bool) -> None:
    """INCIDENT's record, its timeline (with the runs from every entrance) and its reminders."""
    matrix = load_matrix()
    moment = now()
    with open_store() as store:
        record = get_incident(store, incident_id)
        events = store.events(incident_id=incident_id)
        runs = store.list_runs(incident_id)
    due = incidents.reminders(record, matrix, moment, incidents.last_notification(events))
    story = incidents.timeline(record, events, runs, all_tasks=tasks)
    if ctx.terminal.json:
        payload = _record_dict(record, due, moment)
        payload.update(runs=runs, events=events, timeline=story, metrics=incidents.metrics(record))
        ctx.terminal.data(payload)
        return
    out = ctx.terminal.out
    out.print(f"[bold]{safe(record['id'])}[/bold]  {_status(record['status'])}  {safe(record['severity'])}  "
              f"{safe(record['title'])}", markup=True)
    for label, key in (("commander", "commander"), ("impact", "impact"), ("scenario", "scenario"),
                       ("service", "service"), ("created by", "created_by")):
        out.print(f"  {label + ':':<15}{safe(str(record.get(key) or '-'))}", markup=True)
    out.print(f"  {'hosts:':<15}{safe(', '.join(record.get('hosts') or []) or '-')}", markup=True)
    for label, key in (("detected", "detected_at"), ("opened", "opened_at"), ("acknowledged", "acknowledged_at"),
                       ("mitigated", "mitigated_at"), ("resolved", "resolved_at")):
        out.print(f"  {label + ':':<15}{incidents.show_ts(record.get(key))}")
    out.print(f"  {'metrics:':<15}" + ", ".join(f"{m['code']} {m['human']}" for m in incidents.metrics(record)[:4]))
    if due:
        out.print("[bold]reminders[/bold]", markup=True)
        for reminder in due:
            colour = "red" if reminder.overdue else "dim"
            out.print(f"  [{colour}]{safe(reminder.text)}[/{colour}]", markup=True)
    out.print(f"[bold]timeline[/bold] ({len(runs)} run(s))", markup=True)
    for row in story:
        host = f" {row['host']}" if row.get("host") else ""
        out.print(f"  {incidents.show_ts(row['ts'])}  {safe(row['kind']):<12}{safe(host)}  {safe(row['text'])}",
                  markup=True)


# --- output -------------------------------------------------------------------------------

def _status(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "")
    return f"[{colour}]{safe(status)}[/{colour}]" if colour else safe(status)


def _record_dict(record: dict, due: list, moment: datetime) -> dict:
    return {**record, "reminders": [r.as_dict() for r in due],
            "age_seconds": round(((incidents.parse_ts(record.get("resolved_at")) or moment)
                                  - incidents.parse_ts(record["opened_at"])).total_seconds(), 1)}


def _emit_change(ctx: Context, record: dict, notice: Notice | None, summary: str,
                 pages: paging.Report | None = None) -> None:
    pages = pages or paging.Report()
    if ctx.terminal.json:
        payload = {"incident": record, "notification": notice.as_dict() if notice else None,
                   "pages": [p.as_dict() for p in pages.pages]}
        ctx.terminal.data(payload)
    else:
        ctx.terminal.out.print(safe(record["id"]))
        ctx.terminal.status(summary)
        show_pages(ctx, pages)
    if notice is not None and not ctx.terminal.json:
        show_notice(ctx, notice)
    elif notice is not None and notice.error:
        ctx.terminal.warn(f"{notice.kind} notification not delivered: {notice.error}")
    fail_if_undelivered(notice, f"{record['id']} was recorded")
    pages.fail_if_undelivered(f"{record['id']} was recorded")
