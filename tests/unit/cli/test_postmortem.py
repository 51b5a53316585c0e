"""Post-mortems: TTx arithmetic and the timeline with fixed timestamps, then `runbook
postmortem` on a real timeline store filled with those timestamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_remediation import incidents, shell, triage
from runbook_remediation.errors import ExitCode
from runbook_remediation.timeline import open_store

REPO = Path(__file__).resolve().parents[3]
MATRIX = triage.Matrix.load(REPO / "meta" / "severity.yml")

DETECTED = "2026-12-01T10:00:00.000Z"
OPENED = "2026-12-01T10:02:30.000Z"
ACKED = "2026-12-01T10:05:00.000Z"
RUN_START = "2026-12-01T10:06:00.000Z"
OK_TASK = "2026-12-01T10:06:10.000Z"
CHANGED_TASK = "2026-12-01T10:06:20.000Z"
RESULT = "2026-12-01T10:07:00.000Z"
RUN_END = "2026-12-01T10:07:05.000Z"
RESOLVED = "2026-12-01T10:30:00.000Z"

INCIDENT = {"id": "INC-20261201-0001", "title": "demo down on lab-1", "severity": "P1", "status": "resolved",
            "detected_at": DETECTED, "opened_at": OPENED, "acknowledged_at": ACKED, "mitigated_at": RESULT,
            "resolved_at": RESOLVED}


def test_metrics_from_fixed_timestamps():
    by_code = {m["code"]: m for m in incidents.metrics(INCIDENT)}
    assert {code: m["seconds"] for code, m in by_code.items()} == {
        "TTD": 150.0, "TTA": 150.0, "TTM": 270.0, "TTR": 1650.0, "impact": 420.0}
    assert [by_code[c]["human"] for c in ("TTD", "TTA", "TTM", "TTR")] == ["2m30s", "2m30s", "4m30s", "27m30s"]
    assert (by_code["TTD"]["from"], by_code["TTD"]["to"]) == ("detected_at", "opened_at")
    assert all(m["definition"] for m in by_code.values())


def test_metrics_without_timestamps_are_not_available():
    by_code = {m["code"]: m for m in incidents.metrics({"opened_at": OPENED})}
    assert {m["seconds"] for m in by_code.values()} == {None}
    assert by_code["TTR"]["human"] == "n/a"


def test_timeline_order_and_filtering():
    events = [
        {"ts": OPENED, "kind": "status", "message": "opened (P1, investigating): demo down"},
        {"ts": OK_TASK, "kind": "task", "status": "ok", "task": "Probe", "host": "lab-1"},
        {"ts": CHANGED_TASK, "kind": "task", "status": "changed", "task": "Restart demo", "host": "lab-1"},
        {"ts": RESULT, "kind": "result", "message": "remediated: demo restarted", "host": "lab-1",
         "data": {"outcome": "remediated", "actions": ["restarted demo"]}},
        {"ts": RESULT, "kind": "note", "message": "pool too small", "data": {"field": "root_cause"}},
    ]
    runs = [{"id": "0123456789", "scenario": "service-down", "ended_at": RUN_END, "outcome": "remediated",
             "entrance": "cli"}]
    rows = incidents.timeline(INCIDENT, events, runs)
    assert [(r["ts"], r["kind"]) for r in rows] == [
        (DETECTED, "detected"), (OPENED, "status"), (ACKED, "milestone"), (CHANGED_TASK, "task"),
        (RESULT, "note"), (RESULT, "result"), (RESULT, "milestone"), (RUN_END, "run"), (RESOLVED, "milestone")]
    assert rows[3]["text"] == "task Restart demo: changed"
    assert rows[4]["text"] == "root cause: pool too small"
    assert "run service-down ended: remediated (run 01234567, via cli)" == rows[7]["text"]
    assert len(incidents.timeline(INCIDENT, events, runs, all_tasks=True)) == len(rows) + 1
    actions = incidents.actions_taken(events)
    assert [(a["ts"], a["text"]) for a in actions] == [(CHANGED_TASK, "task Restart demo"), (RESULT, "restarted demo")]


def test_escalations_passed_before_resolution():
    # P1 open 27.5 minutes: only the 15-minute step (backup on-call) came due.
    assert incidents.escalations_passed(INCIDENT, MATRIX) == ["page the backup on-call"]


# --- `runbook postmortem` on a real store -------------------------------------------------------

@pytest.fixture
def recorded(runbook_env, monkeypatch):
    """An incident with a run, recorded with fixed timestamps; returns (incident id, run id)."""
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    with open_store() as store:
        incident_id = store.new_incident("demo down on lab-1", severity="P1", opened_at=OPENED, detected_at=DETECTED,
                                         scenario="service-down", service="demo", hosts=["lab-1"],
                                         commander="alice", impact="checkout unavailable", created_by="alice")
        run_id = store.start_run(incident_id=incident_id, scenario="service-down",
                                 playbook="runbook.remediation.service_down", started_at=RUN_START, entrance="cli",
                                 user="alice")
        store.add_event("task", run_id=run_id, host="lab-1", task="Probe", status="ok", ts=OK_TASK)
        store.add_event("task", run_id=run_id, host="lab-1", task="Restart demo", action="systemd_service",
                        status="changed", changed=True, ts=CHANGED_TASK)
        store.add_event("result", run_id=run_id, host="lab-1", task="Record", status="ok", ts=RESULT,
                        message="remediated: demo restarted and healthy",
                        data={"outcome": "remediated", "actions": ["restarted demo (runbook-demo.service)"]})
        store.end_run(run_id, outcome="remediated", ended_at=RUN_END)
        store.update_incident(incident_id, acknowledged_at=ACKED)
        store.add_event("note", incident_id=incident_id, message="the unit crashed on a bad config reload",
                        data={"field": "root_cause"}, ts=RESULT)
        store.update_incident(incident_id, status="resolved", mitigated_at=RESULT, resolved_at=RESOLVED)
    return incident_id, run_id


def invoke(*args):
    return CliRunner(catch_exceptions=False).invoke(shell.cli, list(args))


def test_postmortem_markdown_matches_the_recorded_timestamps(recorded):
    incident_id, run_id = recorded
    result = invoke("postmortem", incident_id)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"# Post-Mortem: {incident_id} - demo down on lab-1\n")
    for line in (
        "- **Duration**: 30m00s (2026-12-01 10:00:00 UTC to 2026-12-01 10:30:00 UTC)",
        "- **Severity**: P1 (High)",
        "- **Incident Commander**: alice",
        "| TTD (time to detect) | 2m30s | 2026-12-01 10:00:00 UTC | 2026-12-01 10:02:30 UTC |",
        "| TTA (time to acknowledge) | 2m30s | 2026-12-01 10:02:30 UTC | 2026-12-01 10:05:00 UTC |",
        "| TTM (time to mitigate) | 4m30s | 2026-12-01 10:02:30 UTC | 2026-12-01 10:07:00 UTC |",
        "| TTR (time to resolve) | 27m30s | 2026-12-01 10:02:30 UTC | 2026-12-01 10:30:00 UTC |",
        "| Escalations | 1 | page the backup on-call | |",
        "| 2026-12-01 10:00:00 UTC | detected |  | alert started firing (detected) |",
        "| 2026-12-01 10:06:20 UTC | task | lab-1 | task Restart demo: changed |",
        "| 2026-12-01 10:07:00 UTC | result | lab-1 | remediated: demo restarted and healthy |",
        "| 2026-12-01 10:30:00 UTC | milestone |  | resolved |",
        f"- Run `{run_id[:8]}`: scenario service-down via cli by alice, 2026-12-01 10:06:00 UTC to "
        "2026-12-01 10:07:05 UTC: **remediated**",
        "| 2026-12-01 10:07:00 UTC | lab-1 | restarted demo (runbook-demo.service) |",
        "## Root Cause\nthe unit crashed on a bad config reload",
        "- **TTD**: from the first alert's start",
    ):
        assert line in text, line
    assert "Probe" not in text  # a task that changed nothing is not part of the story
    timeline = text[text.index("## Timeline"):text.index("## Actions Taken")]
    times = [row.split("|")[1].strip() for row in timeline.splitlines() if row.startswith("| 2026")]
    assert times == sorted(times)


def test_postmortem_to_a_file_and_as_json(recorded, tmp_path):
    incident_id, _run_id = recorded
    target = tmp_path / "pm.md"
    result = invoke("postmortem", incident_id, "--file", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and target.read_text(encoding="utf-8").startswith("# Post-Mortem:")
    again = invoke("postmortem", incident_id, "-f", str(target))
    assert again.exit_code == ExitCode.BAD_INPUT and "--force" in again.stderr
    assert invoke("postmortem", incident_id, "--file", str(target), "--force").exit_code == 0

    data = json.loads(invoke("postmortem", incident_id, "-o", "json").stdout)
    assert {m["code"]: m["seconds"] for m in data["metrics"]}["TTR"] == 1650.0
    assert data["markdown"] == target.read_text(encoding="utf-8")
    assert json.loads(invoke("-o", "json", "postmortem", incident_id).stdout)["markdown"] == data["markdown"]


def test_postmortem_output_is_the_format_never_a_file(recorded, tmp_path, monkeypatch):
    """-o is the output format, as on every command: `-o yaml` is a usage error, not a
    file named yaml."""
    incident_id, _run_id = recorded
    monkeypatch.chdir(tmp_path)
    result = invoke("postmortem", incident_id, "-o", "yaml")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "'yaml' is not one of 'text', 'json'" in result.stderr
    assert not (tmp_path / "yaml").exists()


def test_postmortem_of_an_open_incident_warns(runbook_env, monkeypatch):
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    incident_id = invoke("incident", "open", "still burning", "--no-notify").stdout.strip()
    result = invoke("postmortem", incident_id)
    assert result.exit_code == 0, result.output
    assert "not resolved yet" in result.stderr
    assert "| TTR (time to resolve) | n/a |" in result.stdout


def test_postmortem_masks_secrets(runbook_env, monkeypatch):
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    incident_id = invoke("incident", "open", "x", "--no-notify", "--impact",
                         "leaked https://admin:pa55w0rd-x@db.example/ in logs").stdout.strip()
    text = invoke("postmortem", incident_id).stdout
    assert "pa55w0rd-x" not in text and "https://admin:********@db.example/" in text
