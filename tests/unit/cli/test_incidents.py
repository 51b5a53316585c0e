"""Incidents: reminders from the escalation matrix, resolution fields, templates, masking,
and `runbook incident` end to end with a real webhook receiver (http.server on 127.0.0.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_remediation import incidents, notify, shell, triage
from runbook_remediation.errors import BadInput, ExitCode
from runbook_remediation.timeline import load_module, open_store
from tests.webhook import Receiver

REPO = Path(__file__).resolve().parents[3]
MATRIX = triage.Matrix.load(REPO / "meta" / "severity.yml")
OPENED = "2026-12-01T10:00:00.000Z"
T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def record(**fields) -> dict:
    base = {"id": "INC-20261201-0001", "title": "demo down on lab-1", "severity": "P0", "status": "investigating",
            "commander": None, "impact": None, "scenario": "service-down", "service": "demo", "hosts": ["lab-1"],
            "alert_fingerprints": [], "detected_at": None, "opened_at": OPENED, "acknowledged_at": None,
            "mitigated_at": None, "resolved_at": None, "created_by": "alice"}
    return {**base, **fields}


# --- time helpers ------------------------------------------------------------------------------

def test_timestamps_round_trip_in_the_stores_format():
    assert incidents.format_ts(incidents.parse_ts(OPENED)) == OPENED
    assert incidents.format_ts(incidents.parse_ts("2026-12-01T11:00:00+01:00")) == OPENED
    assert incidents.parse_ts("not a time") is None and incidents.parse_ts(None) is None
    assert incidents.between(OPENED, "2026-12-01T10:01:30.500Z") == 90.5
    assert incidents.between(None, OPENED) is None


@pytest.mark.parametrize(("seconds", "text"), [(None, "n/a"), (12.34, "12.3s"), (90.5, "1m30s"), (3725, "1h02m05s")])
def test_duration(seconds, text):
    assert incidents.duration(seconds) == text


# --- reminders (seeds' escalation matrix) ----------------------------------------------------------

def kinds(reminders):
    return [(r.kind, r.overdue) for r in reminders]


def test_p0_reminders_over_time():
    early = incidents.reminders(record(), MATRIX, at(3))
    assert kinds(early) == [("acknowledge", False), ("next", False)]
    assert "acknowledge within 5 min" in early[0].text
    assert "next escalation at 15 min" in early[1].text and "backup on-call and the engineering lead" in early[1].text

    late = incidents.reminders(record(), MATRIX, at(20))
    assert kinds(late) == [("acknowledge", True), ("escalate", True), ("update", True), ("next", False)]
    assert "overdue by 15m00s" in late[0].text
    assert late[1].due_at == at(15)
    assert "every 15 min" in late[2].text  # P0 updates every 15 minutes (seed 002)
    assert "30 min" in late[3].text and "VP of engineering" in late[3].text


def test_acknowledged_and_recently_updated_incident_only_escalates():
    reminders = incidents.reminders(record(acknowledged_at="2026-12-01T10:02:00.000Z"), MATRIX, at(35),
                                    last_update="2026-12-01T10:30:00.000Z")
    assert kinds(reminders) == [("escalate", True), ("escalate", True), ("next", False)]


def test_resolved_incident_has_no_reminders():
    assert incidents.reminders(record(status="resolved", resolved_at=OPENED), MATRIX, at(600)) == []


def test_p3_reminders_are_calm():
    reminders = incidents.reminders(record(severity="P3"), MATRIX, at(120))
    assert kinds(reminders) == [("acknowledge", False), ("next", False)]
    assert "next escalation at 24 h" in reminders[1].text


def test_last_notification_ignores_failed_deliveries():
    events = [{"kind": "notification", "ts": "2026-12-01T10:05:00.000Z", "failed": False},
              {"kind": "notification", "ts": "2026-12-01T10:09:00.000Z", "failed": True},
              {"kind": "note", "ts": "2026-12-01T10:10:00.000Z"}]
    assert incidents.last_notification(events) == "2026-12-01T10:05:00.000Z"


# --- resolution ------------------------------------------------------------------------------------

REMEDIATED = {"kind": "result", "ts": "2026-12-01T10:07:00.000Z", "data": {"outcome": "remediated"}}


def test_resolve_takes_mitigation_from_the_first_remediated_result():
    events = [{"kind": "result", "ts": "2026-12-01T10:04:00.000Z", "data": {"outcome": "escalate"}}, REMEDIATED,
              {**REMEDIATED, "ts": "2026-12-01T10:09:00.000Z"}]
    fields = incidents.resolve_fields(record(), events, [], "2026-12-01T10:30:00.000Z")
    assert fields == {"status": "resolved", "resolved_at": "2026-12-01T10:30:00.000Z",
                      "mitigated_at": "2026-12-01T10:07:00.000Z", "acknowledged_at": "2026-12-01T10:30:00.000Z"}


def test_resolve_keeps_an_earlier_mitigation_and_falls_back_to_runs_then_now():
    kept = incidents.resolve_fields(record(mitigated_at="2026-12-01T10:01:00.000Z", acknowledged_at=OPENED),
                                    [REMEDIATED], [], "2026-12-01T10:30:00.000Z")
    assert "mitigated_at" not in kept and "acknowledged_at" not in kept
    runs = [{"outcome": "remediated", "ended_at": "2026-12-01T10:08:00.000Z"}]
    assert incidents.resolve_fields(record(), [], runs, "X")["mitigated_at"] == "2026-12-01T10:08:00.000Z"
    assert incidents.resolve_fields(record(), [], [], "2026-12-01T10:30:00.000Z")["mitigated_at"] == \
        "2026-12-01T10:30:00.000Z"


def test_check_status():
    assert incidents.check_status("monitoring") == "monitoring"
    with pytest.raises(BadInput):
        incidents.check_status("done")


# --- templates -------------------------------------------------------------------------------------

def render(kind, incident, events=(), runs=(), now=None):
    ctx = incidents.context(incident, list(events), list(runs), MATRIX, now or at(10))
    return incidents.render(kind, ctx, mask=load_module().mask)


def test_initial_notification_follows_the_seed_template():
    text = render("initial", record(severity="P1", impact="checkout fails for every user", commander="alice"))
    assert text.startswith("Subject: [P1] INC-20261201-0001 - demo down on lab-1\n")
    for line in ("Status: Investigating", "Severity: P1 (High)", "What's happening:",
                 "demo down on lab-1 (service demo on lab-1)", "Impact:\ncheckout fails for every user",
                 "Current actions:\n- runbook scenario service-down",
                 "Next update: 2026-12-01 10:40 UTC (every 30 min)", "Incident Commander: alice"):
        assert line in text, line


def test_update_lists_actions_and_remaining_work():
    events = [{"kind": "result", "ts": "2026-12-01T10:07:00.000Z", "host": "lab-1", "message": "remediated: ok",
               "data": {"outcome": "remediated", "actions": ["restarted demo (runbook-demo.service)"]}},
              {"kind": "note", "ts": "2026-12-01T10:08:00.000Z", "message": "watching error rates", "data": {}}]
    text = render("update", record(status="monitoring"), events)
    assert text.startswith("Subject: UPDATE - INC-20261201-0001 [P0]")
    assert "Status: Monitoring" in text and "Duration: 10m00s" in text
    assert "Current situation:\nwatching error rates" in text
    assert "- 2026-12-01 10:07:00 UTC lab-1: restarted demo (runbook-demo.service)" in text
    assert "- watch that the fix holds, then resolve" in text


def test_resolution_has_duration_root_cause_and_postmortem():
    events = [{"kind": "note", "ts": OPENED, "message": "pool too small", "data": {"field": "root_cause"}},
              {"kind": "note", "ts": OPENED, "message": "raised the pool", "data": {"field": "resolution"}}]
    text = render("resolution", record(status="resolved", detected_at="2026-12-01T09:58:00.000Z",
                                       resolved_at="2026-12-01T10:30:00.000Z"), events)
    assert "Duration: 2026-12-01 09:58:00 UTC to 2026-12-01 10:30:00 UTC (32m00s)" in text
    assert "Root cause:\npool too small" in text and "Resolution:\nraised the pool" in text
    assert "Post-mortem: runbook postmortem INC-20261201-0001" in text


def test_rendered_text_is_masked():
    text = render("initial", record(impact="login with password=hunter2-s3cret fails; Bearer abc.def.ghi"))
    assert "hunter2-s3cret" not in text and "abc.def.ghi" not in text
    assert "password=********" in text


def test_webhook_location_hides_the_token():
    assert notify.where("https://hooks.slack.example/services/T0/B0/XXXXSECRET") == "https://hooks.slack.example"
    assert notify.where("http://127.0.0.1:8080/hook?token=x") == "http://127.0.0.1:8080"
    with pytest.raises(BadInput):
        notify.webhook_url("hooks.example/path")


# --- `runbook incident` with a real webhook receiver ---------------------------------------------

@pytest.fixture
def receiver():
    the_receiver = Receiver()
    yield the_receiver
    the_receiver.close()


@pytest.fixture
def env(runbook_env, monkeypatch):
    """The CLI on this checkout's collection (real store, templates and matrix), state in tmp."""
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    return runbook_env


def invoke(*args):
    return CliRunner(catch_exceptions=False).invoke(shell.cli, list(args))


def db_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.glob("timeline.db*"))


def test_lifecycle_with_notifications(env, receiver):
    opened = invoke("-o", "json", "incident", "open", "checkout errors", "--severity", "P1", "--impact",
                    "checkout fails", "--service", "demo", "--host", "lab-1", "--notify", receiver.url)
    assert opened.exit_code == 0, opened.output
    incident_id = json.loads(opened.stdout)["incident"]["id"]
    assert json.loads(opened.stdout)["notification"]["sent"] is True

    updated = invoke("incident", "update", incident_id, "--status", "identified", "--commander", "bob",
                     "--note", "the DB pool is exhausted; rotated token=s3cr3t-t0k3n", "--notify", receiver.url)
    assert updated.exit_code == 0, updated.output
    resolved = invoke("incident", "resolve", incident_id, "--root-cause", "pool of 10 too small",
                      "--resolution", "raised the pool to 50", "--notify", receiver.url)
    assert resolved.exit_code == 0, resolved.output

    texts = [body["text"] for body in receiver.bodies]
    assert [t.splitlines()[0].split(" - ")[0] for t in texts] == ["Subject: [P1] " + incident_id, "Subject: UPDATE",
                                                                  "Subject: RESOLVED"]
    assert "Impact:\ncheckout fails" in texts[0] and "Incident Commander: bob" in texts[1]
    assert "Root cause:\npool of 10 too small" in texts[2]
    assert all(set(body) == {"text"} for body in receiver.bodies)  # Slack-compatible
    assert receiver.paths == ["/services/T0/B0/w3bh00k-t0ken"] * 3
    assert "s3cr3t-t0k3n" not in "".join(texts) and "token=********" in texts[1]

    with open_store() as store:
        record_ = store.get_incident(incident_id)
        notes = store.events(incident_id=incident_id, kind="notification")
    assert record_["status"] == "resolved" and record_["commander"] == "bob"
    assert record_["opened_at"] <= record_["acknowledged_at"] <= record_["mitigated_at"] <= record_["resolved_at"]
    assert [n["data"]["kind"] for n in notes] == ["initial", "update", "resolution"]
    assert {n["data"]["channel"] for n in notes} == {receiver.base}
    stored = db_bytes(env)
    assert b"w3bh00k-t0ken" not in stored and b"s3cr3t-t0k3n" not in stored


def test_without_a_webhook_the_notification_is_printed_and_recorded(env):
    result = invoke("incident", "open", "disk filling", "--severity", "P3")
    assert result.exit_code == 0, result.output
    incident_id = result.stdout.strip()
    assert incident_id.startswith("INC-")
    assert "no webhook set" in result.stderr and f"Subject: [P3] {incident_id} - disk filling" in result.stderr
    printed = invoke("incident", "notify", incident_id)
    assert printed.exit_code == 0 and printed.stdout.startswith(f"Subject: UPDATE - {incident_id}")
    with open_store() as store:
        assert [e["data"]["channel"] for e in store.events(incident_id=incident_id, kind="notification")] == \
            ["printed", "printed"]


def test_webhook_from_the_environment(env, receiver, monkeypatch):
    monkeypatch.setenv("RUNBOOK_WEBHOOK_URL", receiver.url)
    assert invoke("incident", "open", "x").exit_code == 0
    assert len(receiver.bodies) == 1
    assert invoke("incident", "open", "y", "--no-notify").exit_code == 0
    assert len(receiver.bodies) == 1


@pytest.mark.parametrize("down", ["refused", "500"])
def test_undelivered_notification_is_unavailable_but_the_record_stays(env, down):
    failing = Receiver(status=500) if down == "500" else None
    url = failing.url if failing else "http://127.0.0.1:1/hook"
    try:
        result = invoke("-o", "json", "incident", "open", "x", "--notify", url)
    finally:
        if failing:
            failing.close()
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "notification failed" in result.stderr
    incident_id = json.loads(result.stdout)["incident"]["id"]
    with open_store() as store:
        (event,) = store.events(incident_id=incident_id, kind="notification")
    assert event["failed"] is True and event["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["incident", "open", " "], "needs a title"),
        (["incident", "open", "x", "--notify", "hooks.example/x"], "not an http(s) URL"),
        (["incident", "open", "x", "--scenario", "nope"], "unknown scenario 'nope'"),
        (["incident", "open", "x", "--detected-at", "yesterday"], "not an ISO 8601 time"),
        (["incident", "update", "INC-20990101-0001", "--note", "x"], "no incident INC-20990101-0001"),
        (["incident", "update", "INC-20990101-0001"], "nothing to update"),
        (["incident", "show", "INC-20990101-0001"], "no incident"),
        (["postmortem", "INC-20990101-0001"], "no incident"),
    ],
)
def test_bad_input_changes_nothing(env, args, message):
    result = invoke(*args)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert message in result.stderr
    with open_store() as store:
        assert store.list_incidents() == []


def test_update_to_resolved_and_resolving_twice_are_refused(env):
    incident_id = invoke("incident", "open", "x", "--no-notify").stdout.strip()
    result = invoke("incident", "update", incident_id, "--status", "resolved")
    assert result.exit_code == ExitCode.BAD_INPUT and "use `runbook incident resolve`" in result.stderr
    assert invoke("incident", "resolve", incident_id, "--no-notify").exit_code == 0
    again = invoke("incident", "resolve", incident_id, "--no-notify")
    assert again.exit_code == ExitCode.BAD_INPUT and "already resolved" in again.stderr


def test_ack_sets_acknowledged_at_once(env):
    incident_id = invoke("incident", "open", "x", "--no-notify").stdout.strip()
    first = json.loads(invoke("-o", "json", "incident", "ack", incident_id, "--commander", "carol").stdout)
    second = json.loads(invoke("-o", "json", "incident", "ack", incident_id).stdout)
    assert first["incident"]["acknowledged_at"] and first["incident"]["commander"] == "carol"
    assert second["incident"]["acknowledged_at"] == first["incident"]["acknowledged_at"]


def test_list_and_show(env):
    first = invoke("incident", "open", "first", "--severity", "P0", "--no-notify").stdout.strip()
    second = invoke("incident", "open", "second", "--no-notify").stdout.strip()
    assert invoke("incident", "resolve", second, "--no-notify").exit_code == 0

    listed = json.loads(invoke("-o", "json", "incident", "list").stdout)
    assert [i["id"] for i in listed] == [first]
    assert [r["kind"] for r in listed[0]["reminders"]] == ["acknowledge", "next"]
    assert [i["id"] for i in json.loads(invoke("-o", "json", "incident", "list", "--all").stdout)] == [second, first]
    text = invoke("incident", "list")
    assert first in text.stdout and "acknowledge within 5 min" in text.stdout

    shown = json.loads(invoke("-o", "json", "incident", "show", second).stdout)
    assert shown["status"] == "resolved" and shown["reminders"] == []
    assert [row["kind"] for row in shown["timeline"]][:1] == ["status"]
    assert {m["code"] for m in shown["metrics"]} >= {"TTD", "TTA", "TTM", "TTR"}
    text = invoke("incident", "show", first)
    assert text.exit_code == 0 and "reminders" in text.stdout and "opened (P0, investigating): first" in text.stdout


# --- the security channel ($RUNBOOK_SECURITY_WEBHOOK_URL) ----------------------------------------

@pytest.fixture
def security(monkeypatch):
    """A second receiver, the security channel, set through RUNBOOK_SECURITY_WEBHOOK_URL."""
    channel = Receiver()
    channel.url = f"{channel.base}/services/T9/B9/s3cur1ty-t0ken"
    monkeypatch.setenv("RUNBOOK_SECURITY_WEBHOOK_URL", channel.url)
    yield channel
    channel.close()


def test_security_scenario_incidents_also_go_to_the_security_channel(env, receiver, security):
    opened = invoke("-o", "json", "incident", "open", "host compromised", "--severity", "P0", "--scenario",
                    "isolate-host", "--host", "lab-1", "--notify", receiver.url)
    assert opened.exit_code == 0, opened.output
    incident_id = json.loads(opened.stdout)["incident"]["id"]
    updated = invoke("incident", "update", incident_id, "--status", "identified", "--notify", receiver.url)
    assert updated.exit_code == 0, updated.output

    # Both channels got the same two notifications; the security one at its own URL.
    assert [b["text"] for b in security.bodies] == [b["text"] for b in receiver.bodies]
    assert len(security.bodies) == 2 and security.paths == ["/services/T9/B9/s3cur1ty-t0ken"] * 2
    with open_store() as store:
        notes = store.events(incident_id=incident_id, kind="notification")
    channels = sorted(n["data"]["channel"] for n in notes)
    assert channels == sorted([receiver.base] * 2 + [f"security channel {security.base}"] * 2)
    assert all(not n["failed"] for n in notes)
    # The URLs are secrets: never in the output or the timeline.
    for result in (opened, updated):
        assert "s3cur1ty-t0ken" not in result.output and "w3bh00k-t0ken" not in result.output
    stored = db_bytes(env)
    assert b"s3cur1ty-t0ken" not in stored and b"w3bh00k-t0ken" not in stored


@pytest.mark.parametrize("scenario", ["key-rotation", "security-evidence", "auth-abuse", "isolate-host"])
def test_every_security_scenario_is_in_the_security_class(env, scenario):
    assert incidents.is_security(scenario)


@pytest.mark.parametrize("scenario", [None, "service-down", "no-such-scenario"])
def test_other_incidents_never_reach_the_security_channel(env, receiver, security, scenario):
    args = ["--scenario", scenario] if scenario == "service-down" else []
    result = invoke("incident", "open", "demo down", *args, "--notify", receiver.url)
    assert result.exit_code == 0, result.output
    assert len(receiver.bodies) == 1 and security.bodies == []
    assert not incidents.is_security(scenario)


def test_the_security_channel_alone_is_told(env, security):
    """No normal webhook: the text is printed and the security channel still gets it."""
    result = invoke("incident", "open", "keys leaked", "--scenario", "key-rotation")
    assert result.exit_code == 0, result.output
    assert len(security.bodies) == 1 and security.bodies[0]["text"].startswith("Subject: [")


def test_an_unreachable_security_channel_is_recorded_as_failed(env, receiver, monkeypatch):
    monkeypatch.setenv("RUNBOOK_SECURITY_WEBHOOK_URL", "http://127.0.0.1:1/services/T9/B9/s3cur1ty-t0ken")
    result = invoke("-o", "json", "incident", "open", "x", "--scenario", "auth-abuse", "--notify", receiver.url)
    assert result.exit_code == 0, result.output
    incident_id = json.loads(result.stdout)["incident"]["id"]
    assert json.loads(result.stdout)["notification"]["security"]["error"].startswith("the webhook at http://127.0.0.1:1")
    with open_store() as store:
        failed = [n for n in store.events(incident_id=incident_id, kind="notification") if n["failed"]]
    assert len(failed) == 1 and failed[0]["data"]["security"] is True
    assert "s3cur1ty-t0ken" not in result.output and b"s3cur1ty-t0ken" not in db_bytes(env)


@pytest.mark.parametrize("url", ["ftp://hooks.example/s3cur1ty-t0ken", "https://u:s3cur1ty-t0ken@hooks.example/x",
                                 "https://hooks.example/s3cur1ty-t0ken x"])
def test_a_bad_security_webhook_url_is_bad_input_and_never_quoted(monkeypatch, url):
    monkeypatch.setenv("RUNBOOK_SECURITY_WEBHOOK_URL", url)
    with pytest.raises(BadInput) as caught:
        notify.security_webhook_url()
    assert "RUNBOOK_SECURITY_WEBHOOK_URL" in caught.value.message
    assert "s3cur1ty-t0ken" not in caught.value.message


def test_a_security_breach_is_p0():
    breach = triage.Alert(name="SecurityBreach", labels={"service": "demo", "host": "lab-1"}, starts_at=T0,
                          fingerprint="f1", state="active")
    tagged = triage.Alert(name="Whatever", labels={"service": "demo", "host": "lab-1", "category": "security",
                                                   "severity": "critical"}, starts_at=T0, fingerprint="f2",
                          state="active")
    rows = triage.classify([breach, tagged], [], MATRIX, None)
    assert {row.alert.name: row.severity for row in rows} == {"SecurityBreach": "P0", "Whatever": "P0"}


@pytest.mark.parametrize("scenario", ["isolate-host", "auth-abuse"])
def test_run_checks_the_security_webhook_before_anything(env, inventory, monkeypatch, scenario):
    monkeypatch.setenv("RUNBOOK_SECURITY_WEBHOOK_URL", "https://hooks.example/s3cur1ty-t0ken x")
    result = invoke("run", scenario, "-i", str(inventory), "-l", "local-1", "--check")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "RUNBOOK_SECURITY_WEBHOOK_URL" in result.stderr and "s3cur1ty-t0ken" not in result.output
    assert not (env / "runs").exists()
