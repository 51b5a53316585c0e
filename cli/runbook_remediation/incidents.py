"""Incidents around the scenarios: records, reminders, notifications, post-mortem metrics.

The records live in the timeline store (:mod:`runbook_remediation.timeline`); this module
adds what the seeds' incident procedures ask for around them:

- escalation and acknowledgement reminders from the escalation matrix (meta/severity.yml),
  by time since the incident was opened;
- the communication templates (initial notification, status update, resolution) rendered
  from the record (``templates/*.j2``), masked like everything the store keeps;
- the post-mortem's timeline and metrics (TTD, TTA, TTM, TTR);
- the store operations the commands share (open and announce, update, the incidents of
  triaged alerts) and the notification model (:class:`Notice`, :func:`announce`).

Everything above the last section is pure (a store, a record, a clock in; data out), so
it is tested with fixed timestamps; the last section works on an open store and sends
notifications.
"""

from __future__ import annotations

import getpass
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runbook_remediation import catalogue, notify, triage
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import BadInput, RunbookError, Unavailable
from runbook_remediation.outcomes import REMEDIATED
from runbook_remediation.paths import state_dir
from runbook_remediation.terminal import clean
from runbook_remediation.timeline import open_store
from runbook_remediation.triage import Matrix, human_age

STATUSES = ("investigating", "identified", "monitoring", "resolved")
NOTIFICATION_KINDS = ("initial", "update", "resolution")
TEMPLATES = {"initial": "initial.txt.j2", "update": "update.txt.j2", "resolution": "resolution.txt.j2",
             "postmortem": "postmortem.md.j2"}
# Task events worth a line in a timeline: the ones that changed or failed something.
NOTABLE_TASK_STATUSES = ("changed", "failed", "unreachable")


# --- time ---------------------------------------------------------------------------------------

def parse_ts(text: str | None) -> datetime | None:
    """A store timestamp (``2026-12-01T10:11:12.345Z``) or any ISO 8601 time, as aware UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def format_ts(moment: datetime | None) -> str | None:
    """The store's format: UTC with milliseconds and a Z."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def show_ts(text: str | None) -> str:
    """A timestamp for people: ``2026-12-01 10:11:12 UTC``."""
    moment = parse_ts(text)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (None when either is missing)."""
    first, last = parse_ts(start), parse_ts(end)
    if first is None or last is None:
        return None
    return (last - first).total_seconds()


def duration(seconds: float | None) -> str:
    """``1h02m03s`` / ``4m05s`` / ``12.3s``; ``n/a`` for None."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# --- record helpers -------------------------------------------------------------------------------

def check_status(status: str) -> str:
    if status not in STATUSES:
        raise BadInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return status


def first_remediation(events: Iterable[Mapping], runs: Iterable[Mapping] = ()) -> str | None:
    """When the incident was first mitigated by a run: the earliest ``result`` event whose
    outcome is ``remediated`` (else the end of the earliest run that ended remediated)."""
    times = [e["ts"] for e in events
             if e.get("kind") == "result" and (e.get("data") or {}).get("outcome") == REMEDIATED]
    if not times:
        times = [r["ended_at"] for r in runs if r.get("outcome") == REMEDIATED and r.get("ended_at")]
    return min(times) if times else None


def resolve_fields(incident: Mapping, events: Iterable[Mapping], runs: Iterable[Mapping], now: str) -> dict:
    """The fields ``resolve`` sets: status, resolved_at, and mitigated_at when it was not
    set (the first remediated run result; else the resolution itself: a resolved incident
    is mitigated at the latest then)."""
    fields = {"status": "resolved", "resolved_at": now}
    if not incident.get("mitigated_at"):
        fields["mitigated_at"] = first_remediation(events, runs) or now
    if not incident.get("acknowledged_at"):
        fields["acknowledged_at"] = now
    return fields


# --- reminders ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reminder:
    kind: str  # acknowledge | escalate | update | next
    due_at: datetime
    text: str
    overdue: bool

    def as_dict(self) -> dict:
        return {"kind": self.kind, "due_at": format_ts(self.due_at), "overdue": self.overdue, "text": self.text}


def reminders(incident: Mapping, matrix: Matrix, now: datetime, last_update: str | None = None) -> list[Reminder]:
    """What the escalation matrix asks for now: acknowledge, escalation steps that are due,
    a status update that is due, and the next escalation step. None for a resolved incident."""
    if incident.get("status") == "resolved" or incident.get("resolved_at"):
        return []
    opened = parse_ts(incident.get("opened_at"))
    if opened is None:
        return []
    severity = incident.get("severity") or "P2"
    elapsed = now - opened
    out: list[Reminder] = []
    ack = matrix.acknowledge_minutes(severity)
    if ack is not None and not incident.get("acknowledged_at"):
        due = opened + timedelta(minutes=ack)
        late = now >= due
        text = (f"acknowledge now: {severity} must be acknowledged within {_minutes(ack)} "
                f"(overdue by {human_age((now - due).total_seconds())})" if late
                else f"acknowledge within {_minutes(ack)} (by {due:%H:%M:%S} UTC)")
        out.append(Reminder("acknowledge", due, text, late))
    upcoming = None
    for after, action in matrix.escalation.get(severity, []):
        due = opened + timedelta(minutes=after)
        if due <= now:
            out.append(Reminder("escalate", due, f"escalate: {action} (due at {_minutes(after)}, "
                                                 f"open for {human_age(elapsed.total_seconds())})", True))
        elif upcoming is None:
            upcoming = Reminder("next", due, f"next escalation at {_minutes(after)} "
                                             f"(in {human_age((due - now).total_seconds())}): {action}", False)
    cadence = matrix.update_minutes(severity)
    if cadence is not None:
        base = parse_ts(last_update) or opened
        due = base + timedelta(minutes=cadence)
        if due <= now:
            out.append(Reminder("update", due, f"status update due (every {_minutes(cadence)} for {severity}; "
                                               f"last {human_age((now - base).total_seconds())} ago)", True))
    if upcoming is not None:
        out.append(upcoming)
    return out


def _minutes(value: float) -> str:
    value = float(value)
    if value >= 60 and value % 60 == 0:
        hours = int(value // 60)
        return f"{hours} h" if hours < 48 else f"{hours // 24} d"
    return f"{value:g} min"


def last_notification(events: Iterable[Mapping]) -> str | None:
    """When the last status update went out (pages to on-call people are not updates)."""
    times = [e["ts"] for e in events if e.get("kind") == "notification" and not e.get("failed")
             and not (e.get("data") or {}).get("paging")]
    return max(times) if times else None


# --- timeline and actions -------------------------------------------------------------------------

def timeline(incident: Mapping, events: Iterable[Mapping], runs: Iterable[Mapping] = (),
             all_tasks: bool = False) -> list[dict]:
    """The incident's story in time order: detection, the store's events (tasks only when
    they changed or failed something, unless ``all_tasks``) and each run's start and end."""
    rows = []
    if incident.get("detected_at"):
        rows.append({"ts": incident["detected_at"], "kind": "detected", "host": None,
                     "text": "alert started firing (detected)"})
    for event in events:
        kind = event.get("kind")
        if kind == "task" and not all_tasks and event.get("status") not in NOTABLE_TASK_STATUSES:
            continue
        rows.append({"ts": event["ts"], "kind": kind, "host": event.get("host"), "text": _event_text(event)})
    for run in runs:
        if run.get("ended_at"):
            rows.append({"ts": run["ended_at"], "kind": "run", "host": None,
                         "text": f"run {run.get('scenario') or '?'} ended: {run.get('outcome') or '?'} "
                                 f"(run {str(run['id'])[:8]}, via {run.get('entrance') or '?'})"})
    for name, label in (("acknowledged_at", "acknowledged"), ("mitigated_at", "mitigated"),
                        ("resolved_at", "resolved")):
        if incident.get(name):
            rows.append({"ts": incident[name], "kind": "milestone", "host": None, "text": label})
    order = {"detected": 0, "status": 1, "note": 2, "task": 3, "result": 4, "run": 5, "milestone": 6,
             "notification": 7}
    return sorted(rows, key=lambda r: (r["ts"], order.get(r["kind"], 9)))


def _event_text(event: Mapping) -> str:
    kind = event.get("kind")
    message = event.get("message") or ""
    if kind == "task":
        status = event.get("status") or "?"
        text = f"task {event.get('task') or '?'}: {status}"
        return f"{text} ({message})" if message and status != "ok" else text
    if kind == "result":
        return message
    field = (event.get("data") or {}).get("field") if kind == "note" else None
    if field:
        return f"{field.replace('_', ' ')}: {message}"
    return message


def actions_taken(events: Iterable[Mapping]) -> list[dict]:
    """What was done: each scenario result's actions, and each task that changed something."""
    out = []
    for event in events:
        data = event.get("data") or {}
        if event.get("kind") == "result":
            for action in data.get("actions") or []:
                out.append({"ts": event["ts"], "host": event.get("host"), "text": str(action),
                            "source": "result", "outcome": data.get("outcome")})
        elif event.get("kind") == "task" and event.get("status") == "changed":
            out.append({"ts": event["ts"], "host": event.get("host"), "text": f"task {event.get('task')}",
                        "source": "task", "outcome": None})
    return out


def notes(events: Iterable[Mapping], field: str | None = None) -> list[str]:
    """Note texts, or the ones recorded for ``field`` (root_cause, resolution, impact...)."""
    out = []
    for event in events:
        if event.get("kind") != "note" or event.get("run_id"):
            continue
        data = event.get("data") or {}
        if field is None and not data.get("field"):
            out.append(event.get("message") or "")
        elif field is not None and data.get("field") == field:
            out.append(event.get("message") or "")
    return [n for n in out if n]


# --- metrics -----------------------------------------------------------------------------------------

METRIC_DEFINITIONS = (
    ("TTD", "time to detect", "detected_at", "opened_at",
     "from the first alert's start (detected_at, the alert's startsAt) to the incident being opened"),
    ("TTA", "time to acknowledge", "opened_at", "acknowledged_at",
     "from the incident being opened to its acknowledgement (ack, a commander, a status change or a runbook run)"),
    ("TTM", "time to mitigate", "opened_at", "mitigated_at",
     "from the incident being opened to the first remediated scenario result (or status monitoring)"),
    ("TTR", "time to resolve", "opened_at", "resolved_at", "from the incident being opened to its resolution"),
)


def metrics(incident: Mapping) -> list[dict]:
    """TTD, TTA, TTM and TTR from the record's timestamps, with their definitions."""
    out = []
    for code, name, start, end, definition in METRIC_DEFINITIONS:
        seconds = between(incident.get(start), incident.get(end))
        out.append({"code": code, "name": name, "from": start, "to": end, "from_ts": incident.get(start),
                    "to_ts": incident.get(end), "seconds": None if seconds is None else round(seconds, 3),
                    "human": duration(seconds), "definition": definition})
    impact = between(incident.get("detected_at") or incident.get("opened_at"),
                     incident.get("mitigated_at") or incident.get("resolved_at"))
    out.append({"code": "impact", "name": "customer impact duration", "from": "detected_at|opened_at",
                "to": "mitigated_at|resolved_at", "from_ts": incident.get("detected_at") or incident.get("opened_at"),
                "to_ts": incident.get("mitigated_at") or incident.get("resolved_at"),
                "seconds": None if impact is None else round(impact, 3), "human": duration(impact),
                "definition": "from detection (or opening) to mitigation (or resolution)"})
    return out


def escalations_passed(incident: Mapping, matrix: Matrix) -> list[str]:
    """Escalation steps whose time came before the incident was resolved (or now)."""
    opened = parse_ts(incident.get("opened_at"))
    end = parse_ts(incident.get("resolved_at")) or datetime.now(UTC)
    if opened is None:
        return []
    return [action for after, action in matrix.escalation.get(incident.get("severity") or "P2", [])
            if opened + timedelta(minutes=after) <= end]


# --- rendering -------------------------------------------------------------------------------------

def environment():
    """The templates shipped in runbook_remediation/templates (plain text and Markdown:
    no autoescape; a missing variable is an error, not an empty string)."""
    import jinja2  # only where a template is rendered: `runbook run` rarely needs it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("runbook_remediation", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - text and Markdown, never HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def context(incident: Mapping, events: list[Mapping], runs: list[Mapping], matrix: Matrix, now: datetime,
            next_update: str | None = None) -> dict:
    """Everything the templates may use, from the record."""
    severity = incident.get("severity") or "P2"
    cadence = matrix.update_minutes(severity)
    if next_update is None:
        next_update = (f"{(now + timedelta(minutes=cadence)):%Y-%m-%d %H:%M} UTC (every {_minutes(cadence)})"
                       if cadence else "when there is news")
    start = incident.get("detected_at") or incident.get("opened_at")
    end = incident.get("resolved_at") or format_ts(now)
    results = [e for e in events if e.get("kind") == "result"]
    latest = results[-1] if results else None
    return {
        "incident": dict(incident),
        "severity_name": matrix.severity_name(severity),
        "severity_description": matrix.severities.get(severity, {}).get("description", ""),
        "hosts": ", ".join(incident.get("hosts") or []) or "-",
        "commander": incident.get("commander") or "unassigned",
        "impact": incident.get("impact") or "being assessed",
        "status": incident.get("status") or "investigating",
        "started": show_ts(start),
        "ended": show_ts(end),
        "duration": duration(between(start, end)),
        "opened": show_ts(incident.get("opened_at")),
        "now": show_ts(format_ts(now)),
        "next_update": next_update,
        "actions": actions_taken(events),
        "result_actions": [a for a in actions_taken(events) if a["source"] == "result"],
        "latest_result": (latest or {}).get("message"),
        "notes": notes(events),
        "root_cause": (notes(events, "root_cause") or [None])[-1],
        "resolution": (notes(events, "resolution") or [None])[-1],
        "runs": runs,
        "timeline": timeline(incident, events, runs),
        "metrics": metrics(incident),
        "escalations": escalations_passed(incident, matrix),
        "show_ts": show_ts,
        "duration_of": lambda a, b: duration(between(a, b)),
    }


def render(kind: str, ctx: Mapping, mask=lambda value: value) -> str:
    """Render one template with ``ctx``; the text goes through ``mask`` (the store's) and
    loses its control characters (a title's ``ESC]0;...`` would retitle the terminal that
    shows the notification, the post-mortem or the chat message)."""
    text = environment().get_template(TEMPLATES[kind]).render(**ctx)
    return clean(mask(text))


def notification_kind_for(status: str | None) -> str:
    return "resolution" if status == "resolved" else "update"


# --- the store and notifications ---------------------------------------------------------------

def load_matrix() -> Matrix:
    """The severity/escalation matrix ($RUNBOOK_SEVERITY_MATRIX, else meta/severity.yml)."""
    return triage.load_matrix(None, find_collection().root)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Notice:
    """A notification: its text and what happened to it."""

    kind: str
    text: str
    sent_to: str | None = None  # scheme://host:port of the webhook
    status: int | None = None
    error: str | None = None
    # The security channel (security scenarios only): where it went and what failed.
    security_to: str | None = None
    security_error: str | None = None

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "text": self.text, "sent": self.sent_to is not None and self.error is None,
               "to": self.sent_to, "http_status": self.status, "error": self.error}
        if self.security_to or self.security_error:
            out["security"] = {"to": self.security_to, "error": self.security_error}
        return out


def announce(store, incident_id: str, kind: str, url: str | None, matrix: Matrix,
             record_printed: bool = True) -> Notice:
    """Render ``kind`` for the incident, send it when ``url`` is set, and record it.

    A failed delivery is recorded (failed) and returned with its error; the caller decides
    how loudly to fail. Without a URL the notice is only recorded when ``record_printed``.
    """
    incident = store.get_incident(incident_id)
    events = store.events(incident_id=incident_id)
    runs = store.list_runs(incident_id)
    text = render(kind, context(incident, events, runs, matrix, now()), mask=store.mask)
    notice = Notice(kind, text)
    if url:
        notice.sent_to = notify.where(url)
        try:
            notice.status = notify.send(url, text)
        except Unavailable as exc:
            notice.error = exc.message
    _tell_security(store, incident_id, incident, kind, text, notice)
    if url or record_printed:
        channel = notice.sent_to or "printed"
        message = (f"{kind} notification {'failed: ' + notice.error if notice.error else 'sent to ' + channel}"
                   if url else f"{kind} notification printed (no webhook set)")
        store.add_event("notification", incident_id=incident_id, status="failed" if notice.error else "ok",
                        failed=bool(notice.error), message=message,
                        data={"kind": kind, "channel": channel, "http_status": notice.status, "text": text})
    return notice


def is_security(scenario: str | None) -> bool:
    """Whether the catalogue puts ``scenario`` in the security class (``category: security``)."""
    if not scenario:
        return False
    try:
        return catalogue.get(find_collection(), scenario).category == "security"
    except RunbookError:
        return False


def security_channel(scenario: str | None) -> str | None:
    """The security webhook for an incident of ``scenario``: set and a security scenario."""
    return notify.security_webhook_url() if is_security(scenario) else None


def _tell_security(store, incident_id: str, incident: dict, kind: str, text: str, notice: Notice) -> None:
    """Send the notification to the security channel too when the incident's scenario is a
    security one; record it (only the channel's scheme://host:port, never the URL)."""
    try:
        url = security_channel(incident.get("scenario"))
    except BadInput as exc:
        notice.security_error = exc.message
        url = None
    if url:
        notice.security_to = notify.where(url)
        try:
            notify.send(url, text)
        except Unavailable as exc:
            notice.security_error = exc.message
    if notice.security_to or notice.security_error:
        channel = f"security channel {notice.security_to or '(not sent)'}"
        store.add_event("notification", incident_id=incident_id, status="failed" if notice.security_error else "ok",
                        failed=bool(notice.security_error),
                        message=(f"{kind} notification to the {channel} "
                                 + (f"failed: {notice.security_error}" if notice.security_error else "sent")),
                        data={"kind": kind, "channel": channel, "security": True})


def fail_if_undelivered(notice: Notice | None, what: str) -> None:
    if notice is not None and notice.error:
        raise Unavailable(f"{what}, but the {notice.kind} notification failed: {notice.error}")


def open_incident(store, matrix: Matrix | None, url: str | None, *, record_printed: bool = True,
                  **fields) -> tuple[str, Notice | None]:
    """Open an incident and announce it (initial notification); returns (id, notice).
    ``matrix`` is only needed when there is something to announce."""
    fields = {k: v for k, v in fields.items() if v not in (None, "", [], ())}
    fields.setdefault("created_by", current_user())
    incident_id = store.new_incident(**fields)
    notice = None
    try:
        security = bool(security_channel(fields.get("scenario")))
    except BadInput:
        security = True  # announce() records that the security channel was not told
    if url or record_printed or security:
        notice = announce(store, incident_id, "initial", url, matrix or load_matrix(), record_printed=record_printed)
    return incident_id, notice


def get_incident(store, incident_id: str) -> dict:
    incident = store.get_incident(incident_id)
    if incident is None:
        raise BadInput(f"no incident {incident_id} in {store.path}", hint="runbook incident list --all")
    return incident


def apply_update(store, incident_id: str, *, status=None, severity=None, commander=None, impact=None, note=None,
                 root_cause=None, ack=False, extra_fields=None) -> dict:
    """Change the incident's fields, acknowledge it, add the root cause and a note; returns
    the record as it is now."""
    record = get_incident(store, incident_id)
    fields = {k: v for k, v in {"status": status, "severity": severity, "commander": commander,
                                "impact": impact}.items() if v is not None}
    fields.update(extra_fields or {})
    acknowledging = ack and not record.get("acknowledged_at")
    if acknowledging:
        fields["acknowledged_at"] = format_ts(now())
    if fields:
        store.update_incident(incident_id, **fields)
    if acknowledging:
        store.add_event("status", incident_id=incident_id,
                        message=f"acknowledged by {current_user()}", data={"acknowledged": True})
    if root_cause:
        store.add_event("note", incident_id=incident_id, message=root_cause, data={"field": "root_cause"})
    if note:
        store.add_event("note", incident_id=incident_id, message=note, data={"by": current_user()})
    return store.get_incident(incident_id)


def alertmanager_url(given: str | None) -> str | None:
    """--alertmanager / $RUNBOOK_ALERTMANAGER_URL, else the inventory's runbook_alertmanager_url
    ($RUNBOOK_INVENTORY, else the lab's), as triage finds it."""
    return triage.resolve_urls(given, None, triage.read_inventory(_inventory_path()))[0]


def _inventory_path() -> Path:
    inventory = os.environ.get("RUNBOOK_INVENTORY")
    return Path(inventory).expanduser() if inventory else state_dir() / "lab" / "inventory.yml"


def firing_alerts(incident: Mapping, alertmanager: str | None) -> list[str]:
    """The incident's alerts (by fingerprint) that Alertmanager still has active (silenced
    ones too: silencing is not fixing). Unavailable when it cannot be asked."""
    prints = set(incident.get("alert_fingerprints") or [])
    if not prints:
        return []
    if not alertmanager:
        raise Unavailable("no Alertmanager to ask whether its alerts still fire (--alertmanager, "
                          "RUNBOOK_ALERTMANAGER_URL or the inventory's runbook_alertmanager_url)")
    fetched = triage.fetch_alerts(alertmanager, None)
    return sorted({f"{a.name} on {a.instance}" for a in fetched.alerts if a.fingerprint in prints})


def pir_due(incident: Mapping, matrix: Matrix) -> str:
    """When the post-incident review is due: pir_due_hours (seed 004: 48 h) after the resolution."""
    hours = float((matrix.sla or {}).get("pir_due_hours", 48))
    resolved = parse_ts(incident.get("resolved_at"))
    if resolved is None:
        return f"{hours:g} h after the resolution (not resolved yet)"
    return f"{show_ts(format_ts(resolved + timedelta(hours=hours)))} ({hours:g} h after the resolution)"


def sla_line(incident: Mapping, matrix: Matrix, prometheus: str | None) -> str:
    """The SLA and error budget at the resolution (or now), from the matrix's ``sla`` query."""
    sla = matrix.sla
    if not sla:
        return "not configured (an `sla:` block in the severity matrix)"
    objective = float(sla["objective"])
    target = f"objective {objective * 100:g}%"
    if not prometheus:
        return f"n/a ({target}; no Prometheus URL to evaluate the query)"
    moment = parse_ts(incident.get("resolved_at")) or now()
    query = urllib.parse.urlencode({"query": str(sla["query"]), "time": f"{moment.timestamp():.3f}"})
    try:
        data = triage.get_json(f"{prometheus}{triage.PROMETHEUS_QUERY_PATH}?{query}")
        result = ((data or {}).get("data") or {}).get("result") or []
        value = float(result[0]["value"][1])
    except triage.Unreachable as exc:
        return f"n/a ({target}; Prometheus at {triage.redact_url(prometheus)} is unreachable: {exc})"
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return f"n/a ({target}; the query returned no number)"
    budget = (value - objective) / (1 - objective)
    state = "within objective" if value >= objective else "objective missed"
    return (f"{value * 100:.3f}% ({target}, {state}); error budget remaining {budget * 100:.1f}% "
            f"at {show_ts(format_ts(moment))}")


def postmortem(incident_id: str) -> tuple[dict, str]:
    """(record, Markdown) of the incident's post-mortem, masked like the store."""
    matrix = load_matrix()
    with open_store() as store:
        record = get_incident(store, incident_id)
        events = store.events(incident_id=incident_id)
        runs = store.list_runs(incident_id)
        ctx = context(record, events, runs, matrix, now())
        prometheus = triage.resolve_urls(None, None, triage.read_inventory(_inventory_path()))[1]
        ctx.update(sla=sla_line(record, matrix, prometheus), pir_due=pir_due(record, matrix))
        text = render("postmortem", ctx, mask=store.mask)
    return record, text


def for_alerts(rows: list[triage.Row], matrix: Matrix, url: str | None, terminal) -> None:
    """Give each triaged row an incident: the open one that holds its alert's fingerprint,
    else a new one (detected at the alert's start). A row now more severe raises its
    incident. What was opened or raised is told on ``terminal``; a new incident is paged
    (:mod:`runbook_remediation.paging`: PagerDuty and the roster's primary, when configured)."""
    from runbook_remediation import paging  # paging builds on this module

    pager = paging.Pager.from_env(matrix)
    with open_store() as store:
        by_fingerprint = {}
        for record in reversed(store.list_incidents("open")):  # newest last: it wins
            for print_ in record.get("alert_fingerprints") or []:
                by_fingerprint[print_] = record
        for row in rows:
            alert = row.alert
            record = by_fingerprint.get(alert.fingerprint)
            if record is None:
                where = " ".join(p for p in (alert.host, f"({alert.service})" if alert.service else "") if p)
                incident_id, notice = open_incident(
                    store, matrix, url, record_printed=False,
                    title=f"{alert.name} on {where or alert.instance}", severity=row.severity,
                    impact=alert.summary or None, scenario=row.scenario.name if row.scenario else None,
                    service=alert.service, hosts=[alert.host] if alert.host else [],
                    alert_fingerprints=[alert.fingerprint],
                    detected_at=format_ts(alert.starts_at) if alert.starts_at else None,
                    created_by=f"{current_user()} (runbook triage)",
                )
                since = show_ts(format_ts(alert.starts_at))
                store.add_event("note", incident_id=incident_id,
                                message=f"alert {alert.name} firing since {since} ({alert.source}); "
                                        f"severity {row.severity}: {row.classification.rule}",
                                data={"alert": alert.name, "labels": dict(alert.labels),
                                      "fingerprint": alert.fingerprint, "rule": row.classification.rule})
                terminal.status(f"opened {incident_id} ({row.severity}) for {alert.name} on {where}")
                if notice is not None and notice.error:
                    terminal.warn(f"initial notification not delivered: {notice.error}")
                for page in paging.on_open(store, pager, incident_id, now()).pages:
                    (terminal.warn if page.error else terminal.status)(f"page {page.describe()}")
                record = store.get_incident(incident_id)
                by_fingerprint[alert.fingerprint] = record
            elif triage.SEVERITIES.index(row.severity) < triage.SEVERITIES.index(record["severity"]):
                store.update_incident(record["id"], severity=row.severity)
                store.add_event("note", incident_id=record["id"],
                                message=f"severity raised to {row.severity}: {row.classification.rule}")
                terminal.warn(f"{record['id']} raised from {record['severity']} to {row.severity}")
                record = store.get_incident(record["id"])
                by_fingerprint[alert.fingerprint] = record
            row.incident = record["id"]
