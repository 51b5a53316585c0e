"""Paging: PagerDuty Events v2 (a stub HTTP server), email (an SMTP sink), the roster,
escalation steps sent once across restarts (fixed clocks), resolve checking Alertmanager,
and the post-mortem's SLA and PIR lines. Secrets are seeded and looked for everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_remediation import paging, shell, triage
from runbook_remediation.errors import BadInput, ExitCode
from runbook_remediation.timeline import open_store
from tests.smtp_sink import SmtpSink
from tests.unit.cli.test_triage import StandIn, am_alert
from tests.webhook import Receiver

REPO = Path(__file__).resolve().parents[3]
MATRIX = triage.Matrix.load(REPO / "meta" / "severity.yml")
OPENED = "2026-12-01T10:00:00.000Z"
T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
ROUTING_KEY = "pd-r0uting-k3y-SEEDED-4711"
SMTP_PASSWORD = "smtp-p4ssw0rd-SEEDED-0815"
ROSTER = """\
primary: {name: Alice Primary, email: alice@example.com}
secondary: {name: Bob Secondary, email: bob@example.com}
lead: {name: Carol Lead, email: carol@example.com}
security: {name: Sec Team, email: security@example.com, pagerduty: false}
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def invoke(*args):
    return CliRunner(catch_exceptions=False).invoke(shell.cli, list(args))


@pytest.fixture
def pagerduty():
    stub = Receiver(status=202)  # PagerDuty answers 202 Accepted
    yield stub
    stub.close()


@pytest.fixture
def sink():
    the_sink = SmtpSink(user="runbook", password=SMTP_PASSWORD)
    yield the_sink
    the_sink.close()


@pytest.fixture
def env(runbook_env, monkeypatch, tmp_path, pagerduty, sink):
    """This checkout's collection; PagerDuty, SMTP and a roster configured; state in tmp."""
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    roster = tmp_path / "roster.yml"
    roster.write_text(ROSTER, encoding="utf-8")
    monkeypatch.setenv("RUNBOOK_ROSTER", str(roster))
    monkeypatch.setenv("RUNBOOK_PAGERDUTY_URL", pagerduty.base)
    monkeypatch.setenv("RUNBOOK_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("RUNBOOK_SMTP_HOST", sink.host)
    monkeypatch.setenv("RUNBOOK_SMTP_PORT", str(sink.port))
    monkeypatch.setenv("RUNBOOK_SMTP_USER", "runbook")
    monkeypatch.setenv("RUNBOOK_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("RUNBOOK_SMTP_FROM", "runbook@example.com")
    return runbook_env


def state_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())


def assert_no_secret(*texts: str | bytes) -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        assert ROUTING_KEY.encode() not in data and SMTP_PASSWORD.encode() not in data


def new_incident(severity="P1", **fields) -> str:
    with open_store() as store:
        return store.new_incident("demo down on lab-1", severity=severity, opened_at=OPENED, service="demo",
                                  hosts=["lab-1"], **fields)


def remind(minutes: float) -> list[tuple[str, str]]:
    """One pass with a new store and a new Pager (as a new process would): (step, recipients)."""
    with open_store() as store:
        report = paging.remind(store, paging.Pager.from_env(MATRIX), MATRIX, at(minutes))
    assert not report.failed, [p.error for p in report.failed]
    return [(p.step, p.to) for p in report.pages]


# --- the roster -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[a, b]", "must be a mapping of roles"),
        ("primary: {name: A, email: a@example.com}\noncall: {name: B, email: b@example.com}\n",
         "unknown role(s) oncall"),
        ("secondary: {name: B, email: b@example.com}\nlead: {name: C, email: c@example.com}\n",
         "needs a primary contact"),
        ("primary: {name: A, email: not-an-address}\n", "primary needs an email address"),
        ("primary: {email: a@example.com}\n", "primary needs a name"),
        ("primary: {name: A, email: a@example.com, pagerduty: yes please}\n", "pagerduty must be true or false"),
        ("primary: {name: A, email: a@example.com, phone: 123}\n", "unknown key(s) phone"),
        ("primary: {name: A, email: a@example.com}\n",
         "has no secondary, lead, which the P0 escalation step at 15 min"),
        ("primary: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_roster_is_one_line_of_bad_input(tmp_path, text, message):
    path = tmp_path / "roster.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        paging.load_roster(path, MATRIX)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_the_example_roster_is_valid():
    roster = paging.load_roster(REPO / "docs" / "roster.example.yml", MATRIX)
    assert set(roster.contacts) == set(paging.ROLES)


def test_a_bad_roster_stops_the_cli_with_exit_2(env, tmp_path, monkeypatch, sink):
    bad = tmp_path / "bad.yml"
    bad.write_text("primary: {name: A}\n", encoding="utf-8")
    monkeypatch.setenv("RUNBOOK_ROSTER", str(bad))
    for args in (["incident", "remind"], ["incident", "open", "x", "--no-notify"]):
        result = invoke(*args)
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        assert "primary needs an email address" in result.stderr and "Traceback" not in result.output
    with open_store() as store:
        assert store.list_incidents() == []  # refused before anything was opened
    assert sink.messages == []


# --- the lifecycle through the CLI -------------------------------------------------------------------

def test_open_ack_resolve_page_pagerduty_once_each_and_email_the_primary(env, pagerduty, sink):
    opened = invoke("-o", "json", "incident", "open", "checkout errors", "--severity", "P1", "--no-notify")
    assert opened.exit_code == 0, opened.output
    incident_id = json.loads(opened.stdout)["incident"]["id"]
    assert [p["channel"] for p in json.loads(opened.stdout)["pages"]] == ["pagerduty", "email"]

    acked = invoke("incident", "ack", incident_id)
    again = invoke("incident", "ack", incident_id)  # a second ack sends nothing more
    resolved = invoke("incident", "resolve", incident_id, "--no-notify")
    assert acked.exit_code == again.exit_code == resolved.exit_code == 0, resolved.output
    assert "page acknowledge (pagerduty) to PagerDuty at " in acked.stderr

    assert pagerduty.paths == ["/v2/enqueue"] * 3
    assert [b["event_action"] for b in pagerduty.bodies] == ["trigger", "acknowledge", "resolve"]
    assert {b["dedup_key"] for b in pagerduty.bodies} == {incident_id}
    assert {b["routing_key"] for b in pagerduty.bodies} == {ROUTING_KEY}
    trigger = pagerduty.bodies[0]["payload"]
    assert trigger["severity"] == "error" and trigger["summary"] == f"[P1] {incident_id}: checkout errors"

    (mail,) = sink.messages  # the primary, once; acknowledged before any escalation step
    assert mail.recipients == ["alice@example.com"] and mail.sender == "runbook@example.com"
    assert mail.user == "runbook" and mail.message["Subject"] == f"OPEN [P1] {incident_id}: checkout errors"

    with open_store() as store:
        events = store.events(incident_id=incident_id, kind="notification")
    assert sorted((e["data"]["channel"], e["data"]["step"]) for e in events) == [
        ("email", "open"), ("pagerduty", "ack"), ("pagerduty", "open"), ("pagerduty", "resolve")]
    shown = invoke("-o", "json", "incident", "show", incident_id)
    assert_no_secret(opened.output, acked.output, again.output, resolved.output, shown.output, state_bytes(env))


def test_without_pagerduty_or_smtp_nothing_is_paged(runbook_env, monkeypatch, pagerduty, sink):
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    result = invoke("-o", "json", "incident", "open", "x", "--no-notify")
    assert result.exit_code == 0 and json.loads(result.stdout)["pages"] == []
    assert pagerduty.bodies == [] and sink.messages == []


def test_an_unreachable_pagerduty_is_recorded_and_exit_5(env, monkeypatch, pagerduty):
    monkeypatch.setenv("RUNBOOK_PAGERDUTY_URL", "http://127.0.0.1:1")
    result = invoke("incident", "open", "x", "--no-notify")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "PagerDuty at http://127.0.0.1:1 is unreachable" in result.stderr
    incident_id = result.stdout.strip()
    with open_store() as store:
        failed = [e for e in store.events(incident_id=incident_id, kind="notification") if e["failed"]]
    assert [e["data"]["channel"] for e in failed] == ["pagerduty"]
    monkeypatch.setenv("RUNBOOK_PAGERDUTY_URL", pagerduty.base)
    retried = invoke("incident", "remind")  # the next pass triggers it; the email went out already
    assert retried.exit_code == 0, retried.output
    assert [b["event_action"] for b in pagerduty.bodies] == ["trigger"]
    assert invoke("incident", "remind").exit_code == 0 and len(pagerduty.bodies) == 1
    assert_no_secret(result.output, retried.output, state_bytes(env))


# --- the escalation clock --------------------------------------------------------------------------

def test_each_escalation_step_is_sent_once_across_restarts(env, sink):
    incident_id = new_incident("P1")
    assert remind(14) == []
    assert remind(16) == [("15", "secondary bob@example.com")]
    assert remind(16) == [] and remind(20) == []  # a new store and pager: the timeline remembers
    assert remind(35) == [("30", "lead carol@example.com")]
    with open_store() as store:
        store.update_incident(incident_id, acknowledged_at="2026-12-01T10:40:00.000Z")
    assert remind(200) == []  # acknowledged: the 60 and 120 min steps are never sent
    assert [m.recipients for m in sink.messages] == [["bob@example.com"], ["carol@example.com"]]
    assert sink.messages[0].message["Subject"] == f"ESCALATION 15 min [P1] {incident_id}: demo down on lab-1"
    assert "page the backup on-call" in sink.messages[0].message.get_payload()
    assert_no_secret(state_bytes(env))


def test_nothing_is_sent_after_resolve(env, sink):
    incident_id = new_incident("P0")
    with open_store() as store:
        store.update_incident(incident_id, status="resolved", resolved_at="2026-12-01T10:05:00.000Z")
    assert remind(500) == [] and sink.messages == []


def test_a_failed_step_is_retried_on_the_next_pass(env, monkeypatch, sink):
    new_incident("P2")
    monkeypatch.setenv("RUNBOOK_SMTP_PORT", "1")
    with open_store() as store:
        report = paging.remind(store, paging.Pager.from_env(MATRIX), MATRIX, at(31))
    assert [p.step for p in report.failed] == ["30"] and "SMTP server 127.0.0.1:1 is unreachable" in \
        report.failed[0].error
    monkeypatch.setenv("RUNBOOK_SMTP_PORT", str(sink.port))
    assert remind(32) == [("30", "lead carol@example.com")]
    assert remind(33) == []


def test_remind_in_new_processes_sends_each_due_step_once(env, sink):
    """Real restarts: `runbook incident remind` as two processes on the same state dir."""
    incident_id = new_incident("P1")  # opened days ago by the wall clock: every P1 step is due
    env_vars = {**os.environ, "PYTHONPATH": str(REPO / "cli")}
    runs = [subprocess.run([sys.executable, "-m", "runbook_remediation", "incident", "remind"], env=env_vars,
                           capture_output=True, text=True, timeout=120, check=False) for _run in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert [m.recipients for m in sink.messages] == [["bob@example.com"]] + [["carol@example.com"]] * 3
    assert "no escalation step due" in runs[1].stderr
    with open_store() as store:
        steps = [e["data"]["step"] for e in store.events(incident_id=incident_id, kind="notification")]
    assert steps == ["15", "30", "60", "120"]
    assert_no_secret(runs[0].stdout + runs[0].stderr, runs[1].stdout + runs[1].stderr, state_bytes(env))


def test_security_incidents_page_the_security_contact_too(env, sink):
    new_incident("P2", scenario="security-evidence")
    assert remind(31) == [("30", "lead carol@example.com, security security@example.com")]


# --- resolve asks Alertmanager -------------------------------------------------------------------------

def alert_incident(alert) -> str:
    return new_incident("P1", alert_fingerprints=[alert["fingerprint"]])


def test_resolve_is_refused_while_the_alerts_fire(env, pagerduty):
    alert = am_alert("ServiceDown", "lab-1", "critical")
    incident_id = alert_incident(alert)
    with StandIn({"/api/v2/alerts": [alert]}) as am:
        refused = invoke("incident", "resolve", incident_id, "--alertmanager", am.url, "--no-notify")
        assert refused.exit_code == ExitCode.ESCALATE, refused.output
        assert f"{incident_id}'s alerts still fire: ServiceDown on lab-1:9100" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) <= 2  # the error and its hint
        with open_store() as store:
            assert store.get_incident(incident_id)["status"] != "resolved"
        forced = invoke("incident", "resolve", incident_id, "--alertmanager", am.url, "--force", "--no-notify")
    assert forced.exit_code == 0, forced.output
    assert "still fire" in forced.stderr and "(--force: resolving)" in forced.stderr


def test_resolve_proceeds_when_the_alerts_stopped(env, monkeypatch):
    alert = am_alert("ServiceDown", "lab-1", "critical")
    incident_id = alert_incident(alert)
    with StandIn({"/api/v2/alerts": [am_alert("ServiceDown", "lab-2", "critical")]}) as am:
        monkeypatch.setenv("RUNBOOK_ALERTMANAGER_URL", am.url)
        result = invoke("incident", "resolve", incident_id, "--no-notify")
    assert result.exit_code == 0, result.output


def test_resolve_fails_closed_when_alertmanager_is_unreachable(env):
    incident_id = alert_incident(am_alert("ServiceDown", "lab-1", "critical"))
    refused = invoke("incident", "resolve", incident_id, "--alertmanager", "http://127.0.0.1:1", "--no-notify")
    assert refused.exit_code == ExitCode.UNAVAILABLE, refused.output
    assert "cannot check that" in refused.stderr and "--force" in refused.stderr
    forced = invoke("incident", "resolve", incident_id, "--alertmanager", "http://127.0.0.1:1", "--force",
                    "--no-notify")
    assert forced.exit_code == 0, forced.output
    assert "(--force: resolving)" in forced.stderr


def test_an_incident_without_alerts_resolves_without_alertmanager(env):
    incident_id = new_incident("P3")
    assert invoke("incident", "resolve", incident_id, "--no-notify").exit_code == 0


# --- the post-mortem's SLA and PIR lines -------------------------------------------------------------

def test_postmortem_has_the_sla_line_and_the_pir_due_date(env, monkeypatch):
    incident_id = new_incident("P1")
    with open_store() as store:
        store.update_incident(incident_id, status="resolved", acknowledged_at="2026-12-01T10:05:00.000Z",
                              mitigated_at="2026-12-01T10:20:00.000Z", resolved_at="2026-12-01T10:30:00.000Z")
    answer = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "0.9995"]}]}}
    with StandIn({"/api/v1/query": answer}) as prom:
        monkeypatch.setenv("RUNBOOK_PROMETHEUS_URL", prom.url)
        result = invoke("postmortem", incident_id)
    assert result.exit_code == 0, result.output
    assert ("- **SLA / error budget**: 99.950% (objective 99.9%, within objective); error budget remaining "
            "50.0% at 2026-12-01 10:30:00 UTC") in result.stdout
    assert "- **Post-incident review due**: 2026-12-03 10:30:00 UTC (48 h after the resolution)" in result.stdout
    asked = prom.asked[0]
    assert "time=1796121000.000" in asked and "http_requests_total" in asked


def test_postmortem_sla_without_prometheus_says_so(env):
    incident_id = new_incident("P1")
    result = invoke("postmortem", incident_id)
    assert "- **SLA / error budget**: n/a (objective 99.9%; no Prometheus URL to evaluate the query)" in result.stdout
    assert "- **Post-incident review due**: 48 h after the resolution (not resolved yet)" in result.stdout


# --- the pass inside `runbook watch` ---------------------------------------------------------------

class FakeTerminal:
    def __init__(self):
        self.lines: list[str] = []

    def status(self, text):
        self.lines.append(text)

    warn = status


def test_the_watcher_pages_once_a_minute(env, sink):
    from runbook_remediation.watcher import EscalationPass

    new_incident("P1")
    seconds = {"now": 0.0}
    minutes = {"now": 10.0}
    terminal = FakeTerminal()
    escalation = EscalationPass(terminal, clock=lambda: seconds["now"], now=lambda: at(minutes["now"]))
    assert escalation.tick().pages == []  # the first pass at once: nothing due at 10 min
    minutes["now"], seconds["now"] = 16.0, 30.0
    assert escalation.tick() is None  # not a minute yet
    seconds["now"] = 61.0
    assert [p.step for p in escalation.tick().pages] == ["15"]
    seconds["now"], minutes["now"] = 122.0, 17.0
    assert escalation.tick().pages == []  # sent already
    assert [m.recipients for m in sink.messages] == [["bob@example.com"]]
    assert any("watch: page escalate (email) to secondary bob@example.com sent" in line for line in terminal.lines)
    assert_no_secret("\n".join(terminal.lines))


def test_the_paging_secrets_never_reach_a_child_process(env):
    from runbook_remediation import runner

    child = runner.child_env(dict(os.environ), {})
    assert "RUNBOOK_PAGERDUTY_ROUTING_KEY" not in child and "RUNBOOK_SMTP_PASSWORD" not in child
    assert_no_secret("\n".join(child.values()))
