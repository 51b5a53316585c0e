"""Incidents around the scenarios: records, reminders, notifications, post-mortem metrics.

The records live in the timeline store (:mod:`runbook_remediation.timeline`); this module
adds what the seeds' incident procedures ask for around them:

- escalation and acknowledgement reminders from the escalation matrix (meta/severity.yml),
  by time since the incident was opened;
- the communication templates (initial notification, status update, resolution) rendered
  from the record (``templates/*.j2``), masked like everything the store keeps;
- the post-mortem's timeline and metrics (TTD, TTA, TTM, TTR).

Everything here is pure (a store, a record, a clock in; data out), so it is tested with
fixed timestamps.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jinja2

from runbook_remediation.errors import BadInput
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
             if e.get("kind") == "result" and (e.get("data") or {}).get("outcome") == "remediated"]
    if not times:
        times = [r["ended_at"] for r in runs if r.get("outcome") == "remediated" and r.get("ended_at")]
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
    times = [e["ts"] for e in events if e.get("kind") == "notification" and not e.get("failed")]
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

def environment() -> jinja2.Environment:
    """The templates shipped in runbook_remediation/templates (plain text and Markdown:
    no autoescape; a missing variable is an error, not an empty string)."""
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
    """Render one template with ``ctx``; the text goes through ``mask`` (the store's)."""
    text = environment().get_template(TEMPLATES[kind]).render(**ctx)
    return mask(text)


def notification_kind_for(status: str | None) -> str:
    return "resolution" if status == "resolved" else "update"
