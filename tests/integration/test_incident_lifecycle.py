"""An incident end to end on the lab: open -> a CLI run and a plain ansible-playbook run
(timeline callback) -> update -> resolve -> post-mortem. The post-mortem's timeline and
TTx match the store's timestamps, the notifications reach a webhook receiver (http.server
on 127.0.0.1) with the rendered text, and a seeded secret appears in none of the timeline,
the run directories, the notifications or the post-mortem."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbook_remediation import incidents
from tests.conftest import http_status, restore_host, run_json, runbook, wait_for

pytestmark = pytest.mark.lab

SECRETS = {"db_password": "hunter2-s3cret", "api_token": "tok-5b1e7c0ffee"}


class Receiver:
    """A Slack-like incoming webhook on 127.0.0.1: keeps each JSON body."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # The token sits in the path, as in Slack's URLs: it must not be stored anywhere.
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T1/B2/hook-t0ken-9a8b"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch):
    the_receiver = Receiver()
    monkeypatch.setenv("RUNBOOK_WEBHOOK_URL", the_receiver.url)
    yield the_receiver
    the_receiver.close()


def crash(lab, name: str) -> None:
    assert runbook("lab", "break", "crash", "--host", name).returncode == 0
    wait_for(lambda: http_status(lab.host(name).health_url) is None, timeout=10, what=f"{name} down")


def every_file(*roots: Path):
    for root in roots:
        if root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def test_open_run_resolve_postmortem(lab, receiver):
    state = Path(os.environ["RUNBOOK_STATE_DIR"])
    try:
        crash(lab, "lab-1")
        crash(lab, "lab-2")
        code, opened = run_json("incident", "open", "demo down on lab-1 and lab-2", "--severity", "P1",
                                "--scenario", "service-down", "--service", "demo", "--host", "lab-1",
                                "--host", "lab-2", "--impact", "checkout unavailable for every user")
        assert code == 0, opened
        incident_id = opened["incident"]["id"]
        assert opened["notification"]["sent"] is True

        # 1. The CLI, with secrets among the extra vars.
        code, payload = run_json("run", "service-down", "-l", "lab-1", "--incident", incident_id, extra=SECRETS)
        assert code == 0, payload
        assert payload["incident"] == incident_id
        assert payload["hosts"]["lab-1"]["outcome"] == "remediated"
        cli_run = payload["run_id"]

        # 2. Plain ansible-playbook with the callback: the same store (the state dir's default), same incident.
        result = subprocess.run(
            ["ansible-playbook", "runbook.remediation.service_down", "-i", str(lab.inventory_path), "-l", "lab-2",
             "-e", json.dumps(SECRETS)],
            capture_output=True, text=True, check=False, timeout=300,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CALLBACKS_ENABLED": "runbook.remediation.timeline",
                 "RUNBOOK_INCIDENT": incident_id},
        )
        assert result.returncode == 0, result.stdout[-3000:]

        assert runbook("incident", "update", incident_id, "--note", "both hosts restarted; watching").returncode == 0
        resolved = runbook("incident", "resolve", incident_id, "--root-cause", "a bad deploy crashed the service")
        assert resolved.returncode == 0, resolved.stderr
        code, pm = run_json("postmortem", incident_id)
        assert code == 0, pm
        shown = json.loads(runbook("-o", "json", "incident", "show", incident_id, "--tasks").stdout)
    finally:
        restore_host(lab, "lab-1")
        restore_host(lab, "lab-2")

    record = {k: shown[k] for k in ("opened_at", "acknowledged_at", "mitigated_at", "resolved_at", "detected_at")}
    runs = {run["id"]: run for run in shown["runs"]}
    assert len(runs) == 2
    assert runs[cli_run]["entrance"] == "cli"
    (other,) = [run for run in runs.values() if run["id"] != cli_run]
    assert other["entrance"] == "ansible-playbook" and other["scenario"] == "service-down"
    assert {run["outcome"] for run in runs.values()} == {"remediated"}
    results = [e for e in shown["events"] if e["kind"] == "result"]
    assert {(e["host"], e["run_id"]) for e in results} == {("lab-1", cli_run), ("lab-2", other["id"])}

    # Timestamps: acknowledged when the CLI run started, mitigated by the first remediated result.
    assert record["acknowledged_at"] == runs[cli_run]["started_at"]
    assert record["mitigated_at"] == min(e["ts"] for e in results if e["data"]["outcome"] == "remediated")
    assert record["opened_at"] < record["acknowledged_at"] < record["mitigated_at"] < record["resolved_at"]

    # The post-mortem's metrics are the store's timestamps.
    markdown = pm["markdown"]
    metrics = {m["code"]: m for m in pm["metrics"]}
    for code_, start, end in (("TTA", "opened_at", "acknowledged_at"), ("TTM", "opened_at", "mitigated_at"),
                              ("TTR", "opened_at", "resolved_at")):
        seconds = incidents.between(record[start], record[end])
        assert metrics[code_]["seconds"] == round(seconds, 3)
        line = (f"| {code_} ({metrics[code_]['name']}) | {incidents.duration(seconds)} | "
                f"{incidents.show_ts(record[start])} | {incidents.show_ts(record[end])} |")
        assert line in markdown, line
    assert metrics["TTD"]["human"] == "n/a"  # opened by hand: no alert start recorded
    # ... and its timeline holds the recorded events at their times.
    for event in results:
        assert f"| {incidents.show_ts(event['ts'])} | result | {event['host']} |" in markdown
    assert f"| {incidents.show_ts(record['resolved_at'])} | milestone |  | resolved |" in markdown
    assert "via ansible-playbook" in markdown and "via cli" in markdown
    assert "## Root Cause\na bad deploy crashed the service" in markdown

    # Notifications: initial, update, resolution, with the rendered text.
    texts = receiver.texts()
    assert [t.splitlines()[0].split(" - ")[0] for t in texts] == [f"Subject: [P1] {incident_id}", "Subject: UPDATE",
                                                                  "Subject: RESOLVED"]
    assert "Impact:\ncheckout unavailable for every user" in texts[0]
    assert "both hosts restarted; watching" in texts[1]
    assert "lab-1: restarted demo" in texts[1] and "lab-2: restarted demo" in texts[2]
    assert "Root cause:\na bad deploy crashed the service" in texts[2]

    # The seeded secrets (and the webhook's token) are nowhere.
    stored = list(every_file(state / "runs")) + sorted(state.glob("timeline.db*"))
    assert any(p.name == "job_events" or p.parent.name == "job_events" for p in stored)
    assert any(p.name == "timeline.db" for p in stored)
    for secret in [*SECRETS.values(), "hook-t0ken-9a8b"]:
        for path in stored:
            assert secret.encode() not in path.read_bytes(), f"{secret} in {path}"
        assert all(secret not in text for text in texts), secret
        assert secret not in markdown
        assert secret not in json.dumps(shown)
