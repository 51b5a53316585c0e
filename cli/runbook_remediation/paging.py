"""Paging that fires: PagerDuty Events API v2, email over SMTP, and the escalation clock.

- PagerDuty (``$RUNBOOK_PAGERDUTY_ROUTING_KEY``; ``$RUNBOOK_PAGERDUTY_URL``, default
  https://events.pagerduty.com): one alert per incident, ``dedup_key`` = the incident id:
  ``trigger`` when it opens, ``acknowledge`` on ``runbook incident ack``, ``resolve`` on
  ``runbook incident resolve``.
- Email (``$RUNBOOK_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``, ``_FROM``) to the
  roster's contacts (``$RUNBOOK_ROSTER``, a YAML file: docs/roster.example.yml): the
  primary when the incident opens, then the roles each escalation step names
  (meta/severity.yml ``notify``).
- :func:`remind` (``runbook incident remind``, and a pass a minute inside ``runbook
  watch``): for each open, unacknowledged incident, each escalation step whose time has
  come is sent once. What was sent is a ``notification`` event in the incident's
  timeline (``data.paging``), so a restart sends nothing twice.

The routing key and the SMTP password are secrets: they are read from the environment
when a message is sent and never stored, recorded or printed (messages name only the
server). Every function takes ``now`` (a clock) for the tests.
"""

from __future__ import annotations

import email.message
import ipaddress
import json
import os
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from runbook_remediation import incidents
from runbook_remediation.errors import BadInput, RunbookError, Unavailable
from runbook_remediation.terminal import one_line
from runbook_remediation.triage import Matrix

PAGERDUTY_URL_ENV = "RUNBOOK_PAGERDUTY_URL"
PAGERDUTY_KEY_ENV = "RUNBOOK_PAGERDUTY_ROUTING_KEY"
PAGERDUTY_DEFAULT_URL = "https://events.pagerduty.com"
ROSTER_ENV = "RUNBOOK_ROSTER"
SMTP_ENV = {name: f"RUNBOOK_SMTP_{name.upper()}" for name in ("host", "port", "user", "password", "from")}
ROLES = ("primary", "secondary", "lead", "security")
TIMEOUT = 10.0
# PagerDuty's payload severities for ours.
PD_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
OPEN_STEP = "open"  # the step recorded for the page sent when the incident opens


# --- the roster ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contact:
    role: str
    name: str
    email: str
    pagerduty: bool = False  # on PagerDuty's escalation policy: PagerDuty pages them, not our email


@dataclass(frozen=True)
class Roster:
    contacts: Mapping[str, Contact]
    source: str

    def for_roles(self, roles: Iterable[str]) -> list[Contact]:
        return [self.contacts[r] for r in dict.fromkeys(roles) if r in self.contacts]


def load_roster(path: str | Path | None = None, matrix: Matrix | None = None) -> Roster | None:
    """The roster at ``path`` (else ``$RUNBOOK_ROSTER``; None when neither is set), checked:
    a mapping of roles to {name, email, pagerduty?}; ``primary`` is required, and so is
    every role the matrix's escalation steps name. A bad roster is BadInput (one line)."""
    given = path or os.environ.get(ROSTER_ENV) or None
    if given is None:
        return None
    path = Path(given).expanduser()
    where = f"roster {path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"{where}: cannot read it ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"{where}: not valid YAML ({one_line(str(exc).splitlines()[0])})") from exc
    if not isinstance(data, Mapping):
        raise BadInput(f"{where}: must be a mapping of roles ({', '.join(ROLES)}) to contacts")
    unknown = sorted(str(k) for k in data if k not in ROLES)
    if unknown:
        raise BadInput(f"{where}: unknown role(s) {', '.join(unknown)} (roles: {', '.join(ROLES)})")
    contacts = {}
    for role, raw in data.items():
        if not isinstance(raw, Mapping):
            raise BadInput(f"{where}: {role} must be a mapping with name and email")
        extra = sorted(str(k) for k in raw if k not in ("name", "email", "pagerduty"))
        if extra:
            raise BadInput(f"{where}: {role}: unknown key(s) {', '.join(extra)}")
        name, address = raw.get("name"), raw.get("email")
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{where}: {role} needs a name")
        if not _is_address(address):
            given = "" if address is None else f", not {str(address)[:60]!r}"
            raise BadInput(f"{where}: {role} needs an email address (user@domain){given}")
        if not isinstance(raw.get("pagerduty", False), bool):
            raise BadInput(f"{where}: {role}: pagerduty must be true or false")
        contacts[role] = Contact(role, name.strip(), address.strip(), bool(raw.get("pagerduty", False)))
    if "primary" not in contacts:
        raise BadInput(f"{where}: needs a primary contact")
    for severity, steps in (matrix.step_roles if matrix else {}).items():
        for after, roles in steps.items():
            missing = [r for r in roles if r not in contacts]
            if missing:
                raise BadInput(f"{where}: has no {', '.join(missing)}, which the {severity} escalation step at "
                               f"{after:g} min names")
    return Roster(contacts, where)


def _is_address(value) -> bool:
    if not isinstance(value, str):
        return False
    local, at, domain = value.strip().rpartition("@")
    return bool(at and local and "." in domain and not any(c.isspace() or c in "<>,;\"" for c in value.strip()))


# --- the channels ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PagerDuty:
    """The Events API v2. The routing key is read when sending, never kept elsewhere."""

    url: str

    @classmethod
    def from_env(cls) -> PagerDuty | None:
        if not os.environ.get(PAGERDUTY_KEY_ENV):
            return None
        url = (os.environ.get(PAGERDUTY_URL_ENV) or PAGERDUTY_DEFAULT_URL).strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
            raise BadInput(f"${PAGERDUTY_URL_ENV} must be an http(s) base URL without user or query")
        return cls(url)

    @property
    def where(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"PagerDuty at {parts.scheme}://{parts.netloc}"

    def send(self, action: str, incident: Mapping, summary: str) -> int:
        """POST one event (trigger, acknowledge, resolve); the HTTP status, else Unavailable."""
        body: dict = {"routing_key": os.environ.get(PAGERDUTY_KEY_ENV, ""), "event_action": action,
                      "dedup_key": incident["id"]}
        if action == "trigger":
            body["payload"] = {"summary": summary[:1024], "source": incident.get("service") or "runbook",
                               "severity": PD_SEVERITY.get(incident.get("severity") or "", "error"),
                               "custom_details": {"incident": incident["id"], "scenario": incident.get("scenario"),
                                                  "hosts": incident.get("hosts") or []}}
        request = urllib.request.Request(f"{self.url}/v2/enqueue", data=json.dumps(body).encode(),  # noqa: S310
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - checked http(s)
                return response.status
        except urllib.error.HTTPError as exc:
            raise Unavailable(f"{self.where} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise Unavailable(f"{self.where} is unreachable ({one_line(getattr(exc, 'reason', None) or exc)})") from exc


@dataclass(frozen=True)
class Smtp:
    """An SMTP server. The password is read when sending, never kept elsewhere."""

    host: str
    port: int
    user: str | None
    sender: str

    @classmethod
    def from_env(cls) -> Smtp | None:
        host = (os.environ.get(SMTP_ENV["host"]) or "").strip()
        if not host:
            return None
        raw_port = os.environ.get(SMTP_ENV["port"]) or "25"
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise BadInput(f"${SMTP_ENV['port']} must be a port number, not {raw_port[:20]!r}")
        sender = (os.environ.get(SMTP_ENV["from"]) or "runbook@localhost").strip()
        if not _is_address(sender):
            raise BadInput(f"${SMTP_ENV['from']} must be an email address")
        return cls(host, int(raw_port), os.environ.get(SMTP_ENV["user"]) or None, sender)

    @property
    def where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def send(self, to: list[str], subject: str, body: str) -> None:
        """Send one message; Unavailable on any failure. Port 465 is implicit TLS; else
        STARTTLS when offered. A password is never sent in clear text to another host."""
        message = email.message.EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, ", ".join(to), one_line(subject)[:200]
        message.set_content(body)
        try:
            if self.port == 465:
                client = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT, context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
            with client:
                client.ehlo()
                secure = self.port == 465
                if not secure and client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                    secure = True
                if self.user:
                    if not secure and not _loopback(self.host):
                        raise Unavailable(f"{self.where} offers no TLS: the SMTP password is not sent in clear text")
                    client.login(self.user, os.environ.get(SMTP_ENV["password"], ""))
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise Unavailable(f"{self.where} refused the login of {self.user} (SMTP {exc.smtp_code})") from exc
        except smtplib.SMTPException as exc:
            raise Unavailable(f"{self.where} refused the message ({type(exc).__name__})") from exc
        except (OSError, ssl.SSLError) as exc:
            raise Unavailable(f"{self.where} is unreachable ({one_line(exc)})") from exc


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class Pager:
    """The configured channels (each may be None) and the roster."""

    pagerduty: PagerDuty | None
    smtp: Smtp | None
    roster: Roster | None

    @classmethod
    def from_env(cls, matrix: Matrix) -> Pager:
        """From the environment, checked: a bad setting is BadInput before anything is sent."""
        return cls(PagerDuty.from_env(), Smtp.from_env(), load_roster(None, matrix))

    @property
    def configured(self) -> bool:
        return self.pagerduty is not None or (self.smtp is not None and self.roster is not None)


# --- what was sent ------------------------------------------------------------------------------

@dataclass
class Page:
    """One message on one channel, and what happened to it."""

    channel: str  # pagerduty | email
    action: str  # trigger | acknowledge | resolve | escalate
    step: str  # "open", "ack", "resolve" or the step's after_minutes ("15")
    to: str  # PagerDuty's host, or the roles and addresses
    error: str | None = None

    def as_dict(self) -> dict:
        return {"channel": self.channel, "action": self.action, "step": self.step, "to": self.to,
                "sent": self.error is None, "error": self.error}

    def describe(self) -> str:
        what = f"{self.action} ({self.channel}) to {self.to}"
        return f"{what} failed: {self.error}" if self.error else f"{what} sent"


@dataclass
class Report:
    pages: list[Page] = field(default_factory=list)

    @property
    def failed(self) -> list[Page]:
        return [p for p in self.pages if p.error]

    def fail_if_undelivered(self, what: str) -> None:
        if self.failed:
            raise Unavailable(f"{what}, but {len(self.failed)} page(s) failed: {self.failed[0].error}")


def _record(store, incident_id: str, page: Page, moment: datetime) -> None:
    store.add_event("notification", incident_id=incident_id, status="failed" if page.error else "ok",
                    failed=bool(page.error), ts=incidents.format_ts(moment),
                    message=f"page: {page.describe()}",
                    data={"paging": True, "channel": page.channel, "action": page.action, "step": page.step,
                          "to": page.to})


def sent_steps(events: Iterable[Mapping]) -> set[tuple[str, str]]:
    """(channel, step) of every page delivered, from the incident's timeline."""
    return {(e["data"]["channel"], str(e["data"]["step"])) for e in events
            if e.get("kind") == "notification" and not e.get("failed") and (e.get("data") or {}).get("paging")}


def _attempt(page: Page, send: Callable[[], object]) -> Page:
    try:
        send()
    except RunbookError as exc:
        page.error = exc.message
    return page


def _email_page(pager: Pager, incident: Mapping, roles: Iterable[str], action: str, step: str,
                subject: str, body: str) -> Page | None:
    """Email the roles' contacts (those PagerDuty pages are left to it when it is configured)."""
    if pager.smtp is None or pager.roster is None:
        return None
    contacts = [c for c in pager.roster.for_roles(roles) if not (c.pagerduty and pager.pagerduty)]
    if not contacts:
        return None
    to = ", ".join(f"{c.role} {c.email}" for c in contacts)
    smtp = pager.smtp
    return _attempt(Page("email", action, step, to), lambda: smtp.send([c.email for c in contacts], subject, body))


def _roles_for_incident(incident: Mapping, roles: Iterable[str]) -> list[str]:
    """The roles, plus security for the incidents of a security scenario."""
    roles = list(roles)
    if incidents.is_security(incident.get("scenario")):
        roles.append("security")
    return roles


def _summary(incident: Mapping) -> str:
    return f"[{incident.get('severity')}] {incident['id']}: {incident.get('title')}"


# --- the lifecycle -----------------------------------------------------------------------------

def on_open(store, pager: Pager, incident_id: str, now: datetime) -> Report:
    """Trigger PagerDuty and email the primary (once: a retried open sends nothing twice)."""
    incident = store.get_incident(incident_id)
    done = sent_steps(store.events(incident_id=incident_id, kind="notification"))
    report = Report()
    summary = _summary(incident)
    pagerduty = pager.pagerduty
    if pagerduty and ("pagerduty", OPEN_STEP) not in done:
        report.pages.append(_attempt(Page("pagerduty", "trigger", OPEN_STEP, pagerduty.where),
                                     lambda: pagerduty.send("trigger", incident, summary)))
    if ("email", OPEN_STEP) not in done:
        body = (f"{summary}\n\nOpened {incidents.show_ts(incident.get('opened_at'))}; impact: "
                f"{incident.get('impact') or 'being assessed'}.\nAcknowledge: runbook incident ack {incident['id']}\n")
        page = _email_page(pager, incident, _roles_for_incident(incident, ["primary"]), "trigger", OPEN_STEP,
                           f"OPEN {summary}", body)
        if page:
            report.pages.append(page)
    for page in report.pages:
        _record(store, incident_id, page, now)
    return report


def on_ack(store, pager: Pager, incident_id: str, now: datetime) -> Report:
    return _close(store, pager, incident_id, "acknowledge", "ack", now)


def on_resolve(store, pager: Pager, incident_id: str, now: datetime) -> Report:
    return _close(store, pager, incident_id, "resolve", "resolve", now)


def _close(store, pager: Pager, incident_id: str, action: str, step: str, now: datetime) -> Report:
    """PagerDuty acknowledge/resolve, once, and only for an incident it was triggered for."""
    report = Report()
    pagerduty = pager.pagerduty
    if pagerduty is None:
        return report
    done = sent_steps(store.events(incident_id=incident_id, kind="notification"))
    if ("pagerduty", OPEN_STEP) not in done or ("pagerduty", step) in done:
        return report
    incident = store.get_incident(incident_id)
    page = _attempt(Page("pagerduty", action, step, pagerduty.where),
                    lambda: pagerduty.send(action, incident, _summary(incident)))
    _record(store, incident_id, page, now)
    report.pages.append(page)
    return report


def due_steps(incident: Mapping, matrix: Matrix, now: datetime) -> list[tuple[float, str, tuple[str, ...]]]:
    """(after_minutes, action, roles) of the escalation steps whose time has come, for an
    open, unacknowledged incident (none otherwise)."""
    if incident.get("status") == "resolved" or incident.get("resolved_at") or incident.get("acknowledged_at"):
        return []
    opened = incidents.parse_ts(incident.get("opened_at"))
    if opened is None:
        return []
    severity = incident.get("severity") or "P2"
    roles = matrix.step_roles.get(severity, {})
    return [(after, action, roles.get(after, ("primary",))) for after, action in matrix.escalation.get(severity, [])
            if opened + timedelta(minutes=after) <= now]


def _open_page_failed(store, incident_id: str) -> bool:
    """Whether a page at the incident's opening failed and none of that channel went out since."""
    events = store.events(incident_id=incident_id, kind="notification")
    done = sent_steps(events)
    return any((e.get("data") or {}).get("paging") and e.get("failed") and e["data"].get("step") == OPEN_STEP
               and (e["data"]["channel"], OPEN_STEP) not in done for e in events)


def remind(store, pager: Pager, matrix: Matrix, now: datetime) -> Report:
    """Send every escalation step that is due and not yet delivered, for each open,
    unacknowledged incident. A failed page is retried on the next pass (the page at the
    opening too)."""
    report = Report()
    for listed in store.list_incidents("open"):
        if _open_page_failed(store, listed["id"]):  # the page at opening did not go out: again
            report.pages.extend(on_open(store, pager, listed["id"], now).pages)
        if pager.smtp is None or pager.roster is None:
            continue
        incident = store.get_incident(listed["id"])  # fresh: an ack may have landed since the list
        steps = due_steps(incident, matrix, now)
        if not steps:
            continue
        done = sent_steps(store.events(incident_id=incident["id"], kind="notification"))
        for after, action, roles in steps:
            step = f"{after:g}"
            if ("email", step) in done:
                continue
            summary = _summary(incident)
            body = (f"{summary}\n\nEscalation at {step} min without acknowledgement: {action}.\n"
                    f"Opened {incidents.show_ts(incident.get('opened_at'))}.\n"
                    f"Acknowledge: runbook incident ack {incident['id']}\n")
            page = _email_page(pager, incident, _roles_for_incident(incident, roles), "escalate", step,
                               f"ESCALATION {step} min {summary}", body)
            if page is None:
                continue
            _record(store, incident["id"], page, now)
            report.pages.append(page)
    return report
