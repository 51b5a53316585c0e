"""Triage: firing alerts in, ranked suggestions out (``runbook triage``).

1. Alerts come from Alertmanager's API v2 (``/api/v2/alerts``), or, when Alertmanager
   does not answer, from Prometheus (``/api/v1/alerts``, firing ones only; no inhibition
   there, so of an alert firing as both warning and critical only the critical one is kept).
2. Each alert maps to a scenario: its ``runbook_scenario`` label, else its name through the
   catalogue (``alerts:`` of meta/scenarios.yml) and the user's overlay (``--catalogue``).
3. A severity matrix (meta/severity.yml, or ``--matrix``) classifies it P0-P3: rules match
   the alert name, labels and how many instances of the service fire it.
4. Rows are ranked: severity, then the scenario's ``typical_seconds`` (the quickest
   mitigation first; an alert without a scenario comes after those with one), then the
   alert's age (oldest first).

Pure logic, testable without a server: :class:`Matrix`, :func:`rank`,
:func:`command_for`, :func:`fingerprint`; the HTTP calls are in :func:`fetch_alerts` and
:func:`instance_totals`.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from runbook_remediation import catalogue, notify
from runbook_remediation.errors import BadInput, Unavailable

SEVERITIES = catalogue.SEVERITIES
ALERTMANAGER_PATH = "/api/v2/alerts"
PROMETHEUS_ALERTS_PATH = "/api/v1/alerts"
PROMETHEUS_QUERY_PATH = "/api/v1/query"
# The number of scrape targets of each service: "all instances down" needs the whole.
TOTALS_QUERY = "count by (service) (up)"
NO_SCENARIO = "no scenario: escalate to a human"
TIMEOUT = 5.0


# --- alerts ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    fingerprint: str = ""
    state: str = "active"  # active | suppressed (silenced or inhibited) | unprocessed
    source: str = "alertmanager"  # alertmanager | prometheus

    @property
    def host(self) -> str | None:
        """The ``host`` label, else the host part of ``instance`` (``web-2:9100`` -> ``web-2``)."""
        if self.labels.get("host"):
            return self.labels["host"]
        instance = self.labels.get("instance")
        if not instance:
            return None
        parsed = urllib.parse.urlsplit(f"//{instance}")
        return parsed.hostname or instance

    @property
    def service(self) -> str | None:
        return self.labels.get("service") or None

    @property
    def region(self) -> str | None:
        """The ``region`` label (seed 002 runs one cluster per region), when the alert has one."""
        return self.labels.get("region") or None

    @property
    def instance(self) -> str:
        return self.labels.get("instance") or self.host or "?"

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or ""

    @property
    def suppressed(self) -> bool:
        return self.state == "suppressed"

    def age_seconds(self, now: datetime) -> float | None:
        if self.starts_at is None:
            return None
        return max(0.0, (now - self.starts_at).total_seconds())


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (FNV-1a 64 over the sorted names and
    values, each followed by 0xff): a Prometheus-sourced alert gets the same one."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, str(labels[name])):
            for byte in part.encode() + b"\xff":
                value ^= byte
                value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time from Alertmanager/Prometheus (nanoseconds cut to microseconds)."""
    if not text or text.startswith("0001-01-01"):
        return None
    value = text.strip().replace("Z", "+00:00")
    date, sep, rest = value.partition(".")
    if sep:  # fraction: keep 6 digits, then the offset
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        value = f"{date}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def from_alertmanager(items: Iterable[Mapping]) -> list[Alert]:
    alerts = []
    for item in items:
        labels = {str(k): str(v) for k, v in (item.get("labels") or {}).items()}
        if "alertname" not in labels:
            continue
        alerts.append(Alert(
            name=labels["alertname"],
            labels=labels,
            annotations={str(k): str(v) for k, v in (item.get("annotations") or {}).items()},
            starts_at=parse_time(item.get("startsAt")),
            fingerprint=str(item.get("fingerprint") or fingerprint(labels)),
            state=str((item.get("status") or {}).get("state") or "active"),
            source="alertmanager",
        ))
    return alerts


def from_prometheus(items: Iterable[Mapping]) -> list[Alert]:
    alerts = []
    for item in items:
        labels = {str(k): str(v) for k, v in (item.get("labels") or {}).items()}
        if "alertname" not in labels or item.get("state") != "firing":
            continue
        alerts.append(Alert(
            name=labels["alertname"],
            labels=labels,
            annotations={str(k): str(v) for k, v in (item.get("annotations") or {}).items()},
            starts_at=parse_time(item.get("activeAt")),
            fingerprint=fingerprint(labels),
            source="prometheus",
        ))
    return alerts


# --- HTTP -----------------------------------------------------------------------------------

def check_url(url: str, what: str) -> str:
    """An http(s) URL with a host, without a trailing slash; BadInput otherwise."""
    try:
        parsed = urllib.parse.urlsplit(url.strip())
        parsed.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise BadInput(f"{what} URL {redact_url(url)} is not a valid URL (a bad host or port)") from exc
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadInput(f"{what} URL {redact_url(url)} is not an http(s) URL with a host")
    return url.strip().rstrip("/")


def redact_url(url: str) -> str:
    """A URL fit for a message: scheme, host and port only (a path or userinfo may hold a token)."""
    return notify.where(url)


class Unreachable(Exception):
    """One server did not answer usefully (the caller decides whether that is fatal)."""


def get_json(url: str, timeout: float = TIMEOUT):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - checked http(s)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Unreachable(str(reason)) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Unreachable("the answer is not JSON") from exc


@dataclass
class Fetched:
    alerts: list[Alert]
    source: str  # alertmanager | prometheus
    url: str
    problems: list[str] = field(default_factory=list)  # what did not answer on the way


def fetch_alerts(alertmanager: str | None, prometheus: str | None, timeout: float = TIMEOUT) -> Fetched:
    """Active alerts from Alertmanager, else firing ones from Prometheus.

    Silenced and inhibited alerts are fetched too (state ``suppressed``): they are not
    listed but still count as firing instances for the matrix.
    """
    if not alertmanager and not prometheus:
        raise BadInput("no Alertmanager or Prometheus URL: pass --alertmanager/--prometheus, set "
                       "RUNBOOK_ALERTMANAGER_URL/RUNBOOK_PROMETHEUS_URL, or start the lab")
    problems = []
    if alertmanager:
        query = "active=true&silenced=true&inhibited=true&unprocessed=true"
        try:
            data = get_json(f"{alertmanager}{ALERTMANAGER_PATH}?{query}", timeout)
            if not isinstance(data, list):
                raise Unreachable("the answer is not a list of alerts")
            return Fetched(from_alertmanager(data), "alertmanager", alertmanager)
        except Unreachable as exc:
            problems.append(f"Alertmanager at {redact_url(alertmanager)} is unreachable ({exc})")
    if prometheus:
        try:
            data = get_json(f"{prometheus}{PROMETHEUS_ALERTS_PATH}", timeout)
            items = (data.get("data") or {}).get("alerts") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise Unreachable("the answer holds no alerts")
            return Fetched(from_prometheus(items), "prometheus", prometheus, problems)
        except Unreachable as exc:
            problems.append(f"Prometheus at {redact_url(prometheus)} is unreachable ({exc})")
    raise Unavailable("; ".join(problems) + ": no alerts could be read")


def instance_totals(prometheus: str | None, timeout: float = TIMEOUT) -> dict[str, int] | None:
    """{service: number of scrape targets} from Prometheus, or None when unknown."""
    if not prometheus:
        return None
    url = f"{prometheus}{PROMETHEUS_QUERY_PATH}?{urllib.parse.urlencode({'query': TOTALS_QUERY})}"
    try:
        data = get_json(url, timeout)
    except Unreachable:
        return None
    totals = {}
    for sample in ((data or {}).get("data") or {}).get("result") or []:
        service = (sample.get("metric") or {}).get("service")
        try:
            totals[service] = int(float(sample["value"][1]))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return {k: v for k, v in totals.items() if k}


def inventory_totals(inventory: Mapping | None) -> dict[str, int] | None:
    """{service: number of hosts describing it} from a YAML inventory's runbook_services."""
    if not inventory:
        return None
    totals: dict[str, int] = {}
    for _host, hostvars in _inventory_hosts(inventory.get("all") or {}):
        for service in hostvars.get("runbook_services") or []:
            if isinstance(service, dict) and service.get("name"):
                totals[service["name"]] = totals.get(service["name"], 0) + 1
    return totals or None


def _inventory_hosts(group: Mapping):
    for name, hostvars in (group.get("hosts") or {}).items():
        yield name, hostvars or {}
    for child in (group.get("children") or {}).values():
        yield from _inventory_hosts(child or {})


# --- where the servers are ------------------------------------------------------------------

def read_inventory(path: Path | None) -> dict | None:
    """A YAML inventory as data (None when there is none or it is not YAML: an INI
    inventory still works for runs, it only gives triage no URLs)."""
    if path is None or not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def inventory_var(inventory: Mapping | None, name: str) -> str | None:
    value = (((inventory or {}).get("all") or {}).get("vars") or {}).get(name)
    return str(value) if value else None


def resolve_urls(alertmanager: str | None, prometheus: str | None,
                 inventory: Mapping | None) -> tuple[str | None, str | None]:
    """Option, then environment, then the inventory's runbook_alertmanager_url /
    runbook_prometheus_url; each checked (a bad one is BadInput)."""
    am = (alertmanager or os.environ.get("RUNBOOK_ALERTMANAGER_URL")
          or inventory_var(inventory, "runbook_alertmanager_url"))
    prom = (prometheus or os.environ.get("RUNBOOK_PROMETHEUS_URL")
            or inventory_var(inventory, "runbook_prometheus_url"))
    return (check_url(am, "Alertmanager") if am else None, check_url(prom, "Prometheus") if prom else None)


# --- the severity matrix ----------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    name: str
    severity: str  # P0-P3 or "catalogue"
    alertnames: tuple[str, ...] = ()
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    instances: str | None = None  # all | some
    scenario: bool | None = None


@dataclass(frozen=True)
class Classification:
    severity: str
    rule: str  # the matching rule's name (the reason)
    note: str = ""  # e.g. "2/4 instances"


@dataclass(frozen=True)
class Fleet:
    """How many instances each service has and which fire each alert."""

    totals: Mapping[str, int] | None  # service -> number of instances; None: unknown
    firing: Mapping[tuple[str, str], frozenset[str]]  # (alertname, service) -> instances

    @classmethod
    def of(cls, alerts: Iterable[Alert], totals: Mapping[str, int] | None) -> Fleet:
        firing: dict[tuple[str, str], set[str]] = {}
        for alert in alerts:
            if alert.service:
                firing.setdefault((alert.name, alert.service), set()).add(alert.instance)
        return cls(totals, {k: frozenset(v) for k, v in firing.items()})

    def count(self, alert: Alert) -> tuple[int, int | None]:
        """(instances firing this alert, instances of the service or None)."""
        if not alert.service:
            return 1, None
        down = len(self.firing.get((alert.name, alert.service), ())) or 1
        total = (self.totals or {}).get(alert.service)
        return down, total


class Matrix:
    """The severity matrix, escalation matrix and cadences of a meta/severity.yml."""

    def __init__(self, data: Mapping, source: str = "severity matrix"):
        self.source = source
        if not isinstance(data, Mapping):
            raise BadInput(f"{source}: must be a mapping with rules")
        self.rules = tuple(self._rule(i, r) for i, r in enumerate(data.get("rules") or []))
        if not self.rules:
            raise BadInput(f"{source}: has no rules")
        self.default = str(data.get("default", "P3"))
        if self.default not in SEVERITIES:
            raise BadInput(f"{source}: default must be one of {', '.join(SEVERITIES)}")
        self.severities = {str(k): dict(v or {}) for k, v in (data.get("severities") or {}).items()}
        self.escalation = {}
        # Who each step pages (roster roles, docs/paging.md): severity -> after_minutes -> roles.
        self.step_roles: dict[str, dict[float, tuple[str, ...]]] = {}
        for severity, steps in (data.get("escalation") or {}).items():
            parsed = []
            roles = {}
            for step in steps or []:
                try:
                    after = float(step["after_minutes"])
                    parsed.append((after, str(step["action"])))
                except (KeyError, TypeError, ValueError) as exc:
                    raise BadInput(f"{source}: escalation {severity}: each step needs after_minutes and "
                                   "action") from exc
                if step.get("notify") is not None:
                    if not isinstance(step["notify"], list) or not all(isinstance(r, str) for r in step["notify"]):
                        raise BadInput(f"{source}: escalation {severity}: notify must be a list of roster roles")
                    roles[after] = tuple(step["notify"])
            self.escalation[str(severity)] = sorted(parsed)
            self.step_roles[str(severity)] = roles
        # The post-mortem's SLA line: {query: PromQL giving the good ratio (0-1), objective: 0-1}.
        self.sla = data.get("sla") if isinstance(data.get("sla"), Mapping) else None
        if data.get("sla") is not None and (self.sla is None or not self.sla.get("query")
                                            or not isinstance(self.sla.get("objective"), int | float)
                                            or not 0 < self.sla["objective"] < 1):
            raise BadInput(f"{source}: sla needs a query and an objective between 0 and 1 (e.g. 0.999)")

    def _rule(self, index: int, raw) -> Rule:
        where = f"{self.source}: rule {index + 1}"
        if not isinstance(raw, Mapping):
            raise BadInput(f"{where} must be a mapping")
        unknown = set(raw) - {"name", "severity", "alertname", "labels", "instances", "scenario"}
        if unknown:
            raise BadInput(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        severity = str(raw.get("severity", ""))
        if severity not in (*SEVERITIES, "catalogue"):
            raise BadInput(f"{where}: severity must be one of {', '.join(SEVERITIES)} or catalogue, not {severity!r}")
        instances = raw.get("instances")
        if instances not in (None, "all", "some"):
            raise BadInput(f"{where}: instances must be all or some, not {instances!r}")
        labels = raw.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise BadInput(f"{where}: labels must be a mapping")
        return Rule(
            name=str(raw.get("name") or f"rule {index + 1}"),
            severity=severity,
            alertnames=_strings(raw.get("alertname")),
            labels={str(k): _strings(v) for k, v in labels.items()},
            instances=instances,
            scenario=None if raw.get("scenario") is None else bool(raw.get("scenario")),
        )

    @classmethod
    def load(cls, path: Path) -> Matrix:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise BadInput(f"severity matrix {path}: not UTF-8 text (byte {exc.start})") from exc
        except OSError as exc:
            raise BadInput(f"severity matrix {path}: cannot read it ({exc.strerror or exc})") from exc
        except yaml.YAMLError as exc:
            raise BadInput(f"severity matrix {path}: not valid YAML ({exc})") from exc
        return cls(data or {}, source=f"severity matrix {path}")

    def classify(self, alert: Alert, scenario: catalogue.Scenario | None, fleet: Fleet) -> Classification:
        down, total = fleet.count(alert)
        count_note = f"{down}/{total} instances" if total else f"{down}/? instances"
        for rule in self.rules:
            if rule.alertnames and alert.name not in rule.alertnames:
                continue
            if any(alert.labels.get(k) not in values for k, values in rule.labels.items()):
                continue
            if rule.scenario is not None and rule.scenario is not (scenario is not None):
                continue
            if rule.instances == "all" and not (total and down >= total):
                continue
            if rule.instances == "some" and total and down >= total:
                continue
            severity = rule.severity
            if severity == "catalogue":
                if scenario is None:
                    continue
                severity = scenario.severity
            note = count_note if rule.instances or alert.name == "ServiceDown" else ""
            return Classification(severity, rule.name, note)
        return Classification(self.default, "no rule matched: the matrix's default")

    def acknowledge_minutes(self, severity: str) -> float | None:
        value = self.severities.get(severity, {}).get("acknowledge_minutes")
        return float(value) if value is not None else None

    def update_minutes(self, severity: str) -> float | None:
        value = self.severities.get(severity, {}).get("update_minutes")
        return float(value) if value is not None else None

    def severity_name(self, severity: str) -> str:
        return str(self.severities.get(severity, {}).get("name") or severity)


def _strings(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def matrix_path(given: str | None, root: Path) -> Path:
    """--matrix, else $RUNBOOK_SEVERITY_MATRIX, else the collection's meta/severity.yml."""
    chosen = given or os.environ.get("RUNBOOK_SEVERITY_MATRIX")
    return Path(chosen).expanduser() if chosen else root / "meta" / "severity.yml"


def load_matrix(given: str | None, root: Path) -> Matrix:
    """The matrix to use; a user's file without severities/escalation keeps the collection's."""
    path = matrix_path(given, root)
    if not path.is_file():
        raise BadInput(f"severity matrix {path} not found")
    matrix = Matrix.load(path)
    builtin = root / "meta" / "severity.yml"
    if path != builtin and builtin.is_file() and (not matrix.severities or not matrix.escalation):
        base = Matrix.load(builtin)
        matrix.severities = matrix.severities or base.severities
        if not matrix.escalation:
            matrix.escalation, matrix.step_roles = base.escalation, base.step_roles
        matrix.sla = matrix.sla or base.sla
    return matrix


# --- rows and ranking -------------------------------------------------------------------------

@dataclass
class Row:
    alert: Alert
    scenario: catalogue.Scenario | None
    classification: Classification
    rank: int = 0
    incident: str | None = None
    argv: list[str] | None = None  # the runbook command to run, or None (no scenario)
    region: str | None = None  # the alert's region label, else its inventory host's runbook_region

    @property
    def severity(self) -> str:
        return self.classification.severity

    @property
    def command(self) -> str | None:
        return shlex.join(self.argv) if self.argv else None

    def as_dict(self, now: datetime) -> dict:
        alert = self.alert
        age = alert.age_seconds(now)
        return {
            "rank": self.rank,
            "severity": self.severity,
            "reason": self.classification.rule,
            "note": self.classification.note or None,
            "alert": alert.name,
            "alert_severity": alert.labels.get("severity"),
            "host": alert.host,
            "service": alert.service,
            "instance": alert.labels.get("instance"),
            "region": self.region,
            "summary": alert.summary or None,
            "scenario": self.scenario.name if self.scenario else None,
            "typical_seconds": self.scenario.typical_seconds if self.scenario else None,
            "destructive": self.scenario.destructive if self.scenario else None,
            "starts_at": alert.starts_at.isoformat() if alert.starts_at else None,
            "age_seconds": round(age, 1) if age is not None else None,
            "since": human_age(age),
            "fingerprint": alert.fingerprint,
            "incident": self.incident,
            "command": self.command,
            "argv": self.argv,
            "action": self.command or NO_SCENARIO,
        }


def classify(alerts: Iterable[Alert], scenarios: Iterable[catalogue.Scenario], matrix: Matrix,
             totals: Mapping[str, int] | None, overlay: Mapping[str, str] | None = None) -> list[Row]:
    """One row per listed alert (suppressed ones only count instances), ranked. An alert
    maps to a scenario by its ``runbook_scenario`` label, else by its name through the
    catalogue and the user's ``overlay`` ({alert: scenario})."""
    alerts = list(alerts)
    scenarios = list(scenarios)
    fleet = Fleet.of(alerts, totals)
    by_alert = catalogue.alert_map(scenarios, dict(overlay or {}))
    rows = []
    for alert in alerts:
        if alert.suppressed:
            continue
        scenario = catalogue.scenario_for({**alert.labels, "alertname": alert.name}, scenarios, by_alert)
        rows.append(Row(alert, scenario, matrix.classify(alert, scenario, fleet)))
    return rank(_drop_shadowed(rows))


def _drop_shadowed(rows: list[Row]) -> list[Row]:
    """Of one alert firing at several ``severity`` labels (warning and critical twins; only
    from Prometheus, Alertmanager inhibits them), keep the most severe."""
    best: dict[tuple, Row] = {}
    for row in rows:
        key = (row.alert.name, tuple(sorted((k, v) for k, v in row.alert.labels.items() if k != "severity")))
        current = best.get(key)
        if current is None or SEVERITIES.index(row.severity) < SEVERITIES.index(current.severity):
            best[key] = row
    kept = {id(r) for r in best.values()}
    return [r for r in rows if id(r) in kept]


def sort_key(row: Row) -> tuple:
    started = row.alert.starts_at.timestamp() if row.alert.starts_at else math.inf
    typical = row.scenario.typical_seconds if row.scenario else math.inf
    return (SEVERITIES.index(row.severity), typical, started, row.alert.name, row.alert.host or "")


def rank(rows: Iterable[Row]) -> list[Row]:
    """Severity first, then the quickest mitigation, then the oldest alert; ranks from 1."""
    ranked = sorted(rows, key=sort_key)
    for number, row in enumerate(ranked, start=1):
        row.rank = number
    return ranked


def command_for(row: Row, inventory: str | None = None, incident: str | None = None) -> list[str] | None:
    """The exact ``runbook run`` command for a row (None when no scenario maps to it)."""
    if row.scenario is None:
        return None
    argv = ["runbook", "run", row.scenario.name]
    if inventory:
        argv += ["-i", inventory]
    if row.alert.host:
        argv += ["-l", row.alert.host]
    if row.alert.service:
        argv += ["--service", row.alert.service]
    if incident:
        argv += ["--incident", incident]
    return argv


def inventory_regions(inventory: Mapping | None) -> dict[str, str]:
    """{host: region} from a YAML inventory's ``runbook_region`` host variables."""
    regions: dict[str, str] = {}
    for host, hostvars in _inventory_hosts((inventory or {}).get("all") or {}):
        region = hostvars.get("runbook_region") if isinstance(hostvars, Mapping) else None
        if isinstance(region, str) and region:
            regions[host] = region
    return regions


def with_regions(rows: Iterable[Row], host_regions: Mapping[str, str]) -> list[Row]:
    """Each row's region: the alert's ``region`` label, else its host's region in the inventory."""
    rows = list(rows)
    for row in rows:
        row.region = row.alert.region or host_regions.get(row.alert.host or "")
    return rows


def by_region(rows: Iterable[Row]) -> list[dict]:
    """The alerts grouped by region, the worst region first (its most severe alert, then
    how many fire); alerts without a region are left out. Seed 002: drain or fail over the
    region that burns, not the one that merely warns."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        if row.region:
            groups.setdefault(row.region, []).append(row)
    summary = []
    for region, members in groups.items():
        worst = min(members, key=lambda r: SEVERITIES.index(r.severity))
        summary.append({
            "region": region,
            "severity": worst.severity,
            "alerts": len(members),
            "hosts": sorted({r.alert.host for r in members if r.alert.host}),
            "names": sorted({r.alert.name for r in members}),
            "top": worst.rank,
        })
    return sorted(summary, key=lambda g: (SEVERITIES.index(g["severity"]), -g["alerts"], g["region"]))


def top(rows: Iterable[Row]) -> Row | None:
    """The first row that has something to run."""
    return next((row for row in rows if row.argv), None)


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def now_utc() -> datetime:
    return datetime.now(UTC)
