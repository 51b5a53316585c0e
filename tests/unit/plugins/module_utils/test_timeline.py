"""The timeline store: schema, incidents, runs, events, masking, and concurrent writers
(real SQLite files under tmp_path, real processes)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _timeline as tl
from ansible_collections.runbook.remediation.plugins.module_utils._timeline import (
    MASK,
    TimelineError,
    TimelineStore,
    mask,
    split_patterns,
)

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECRET = "Sup3r-S3cret-Value"
MODULE_FILE = Path(tl.__file__)


@pytest.fixture
def store(state_backend):
    with TimelineStore(**state_backend.timeline_args("state/timeline.db")) as the_store:
        yield the_store


def all_bytes(directory: Path) -> bytes:
    """The database and its WAL/SHM files, as written to disk."""
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter22 rest", f"password={MASK} rest"),
        ("DB_PASSWORD: s3cr3t;", f"DB_PASSWORD: {MASK};"),
        ('{"api_key": "a b c", "x": 1}', f'{{"api_key": "{MASK}", "x": 1}}'),
        ("token='abc'", f"token='{MASK}'"),
        ("apikey=XYZ&user=bob", f"apikey={MASK}&user=bob"),
        ("curl https://bob:pw1234@example.com/x", f"curl https://bob:{MASK}@example.com/x"),
        ("git clone https://ghp_abcdef@github.com/x", f"git clone https://{MASK}@github.com/x"),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: {MASK}"),
        ("header bearer eyJhbGciOi.x", f"header bearer {MASK}"),
        ("Basic dXNlcjpwYXNzd29yZA==", f"Basic {MASK}"),
        ("run --password hunter22 now", f"run --password {MASK} now"),
        # what a review found stored in clear
        ("Authorization: Token abc123def", f"Authorization: {MASK}"),
        ("authorization=Digest username=x", f"authorization={MASK}"),
        ("postgres://app:p@ss/w0rd@db.example.com:5432/x", f"postgres://app:{MASK}@db.example.com:5432/x"),
        ("redis://:pass word@cache:6379", f"redis://:{MASK}@cache:6379"),
        ("db_pass=Sup3rSecret", f"db_pass={MASK}"),
        ("pwd: Sup3rSecret", f"pwd: {MASK}"),
        ("posted to https://hooks.slack.com/services/T0000/B0000/XXXXsecret ok",
         f"posted to https://hooks.slack.com/services/{MASK} ok"),
        ("https://discord.com/api/webhooks/123/abcSECRET", f"https://discord.com/api/webhooks/{MASK}"),
        # prose stays readable
        ("the token expired", "the token expired"),
        ("Password reset for bob", "Password reset for bob"),
        ("restarted gateway.service", "restarted gateway.service"),
        ("", ""),
    ],
)
def test_mask_inline(text, expected):
    assert mask(text) == expected


@pytest.mark.parametrize(("setting", "patterns"), [
    ("", []),
    ("x{2,5}", ["x{2,5}"]),
    ("a{1,3}\nghp_[A-Za-z0-9]+", ["a{1,3}", "ghp_[A-Za-z0-9]+"]),
    ('["a,b", "c{1,2}"]', ["a,b", "c{1,2}"]),
])
def test_secret_patterns_are_never_split_on_commas(setting, patterns):
    assert split_patterns(setting) == patterns


def test_a_secret_straddling_the_message_cut_is_masked(tmp_path):
    from ansible_collections.runbook.remediation.plugins.callback import timeline as callback

    store = TimelineStore(str(tmp_path / "t.db"), secrets=["Straddling-Secret-4711"])
    text = "x" * (callback.MESSAGE_LIMIT - 10) + " Straddling-Secret-4711 tail"
    short = callback._short(text, store)
    assert "Stradd" not in short and len(short) <= callback.MESSAGE_LIMIT
    store.close()


def test_mask_keys_recursively():
    value = {
        "url_password": "x1234",
        "headers": {"Authorization": "Bearer abc", "Accept": "json"},
        "nested": [{"Token": 12345, "ok": True}, ("t", b"bytes")],
        "api_key": None,
        "client_secret": "",
        "validate_token": False,
    }
    assert mask(value) == {
        "url_password": MASK,
        "headers": {"Authorization": MASK, "Accept": "json"},
        "nested": [{"Token": MASK, "ok": True}, ["t", "bytes"]],
        "api_key": None,  # None, booleans and empty strings are no secret
        "client_secret": "",
        "validate_token": False,
    }


def test_mask_literal_secrets_and_their_encodings():
    secret = 'pa/ss w"rd'
    text = f'x {secret} y https://h/?p=pa%2Fss%20w%22rd {json.dumps(secret)}'
    masked = mask(text, secrets=[secret, "abc"])  # "abc": too short to search for
    assert secret not in masked and "pa%2Fss%20w%22rd" not in masked and 'w\\"rd' not in masked
    assert masked.count(MASK) == 3
    assert mask("abc", secrets=["abc"]) == "abc"


def test_mask_user_patterns():
    text = "token ghp_AbC123 and dsn=postgres://app:pw@db/x and key=zzz"
    masked = mask(text, patterns=[r"ghp_[A-Za-z0-9]+", r"key=(\w+)"])
    assert masked == f"token {MASK} and dsn=postgres://app:{MASK}@db/x and key={MASK}"


def test_bad_user_pattern_is_input_error():
    with pytest.raises(TimelineError) as excinfo:
        TimelineStore(":memory:", secret_patterns=["("])
    assert excinfo.value.kind == "input"
    assert "not a valid regular expression" in str(excinfo.value)


def test_secret_values_from_vars():
    found = tl.secret_values({
        "db_password": "S3cr3t!",
        "api": {"x_token": ["abcd1234", "{{ lookup('env', 'T') }}"]},
        "pin_secret": 123456,
        "short_password": "abc",
        "service": "gateway",
    })
    assert found == {"S3cr3t!", "abcd1234", "123456"}


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"XDG_STATE_HOME": "/xdg"},
        {"RUNBOOK_STATE_DIR": "/srv/runbook", "XDG_STATE_HOME": "/xdg"},
        {"RUNBOOK_STATE_DIR": "~/rb"},
    ],
)
def test_state_dir_is_the_clis(monkeypatch, env):
    from runbook_remediation.paths import state_dir

    for name in ("RUNBOOK_STATE_DIR", "XDG_STATE_HOME", "RUNBOOK_TIMELINE_DB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tl.state_dir() == str(state_dir())
    assert tl.default_path() == str(state_dir() / "timeline.db")
    monkeypatch.setenv("RUNBOOK_TIMELINE_DB", "/elsewhere/t.db")
    assert tl.default_path() == "/elsewhere/t.db"


def test_loads_by_path_without_ansible():
    """The CLI loads the file by path: it must import with the standard library only."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('timeline', {str(MODULE_FILE)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert not [m for m in sys.modules if m == 'ansible' or m.startswith('ansible.')], 'ansible imported'\n"
        "print(module.SCHEMA_VERSION)\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tl.SCHEMA_VERSION)


# --------------------------------------------------------------------------- the file


def test_new_file_is_private_wal_with_schema(tmp_path):
    path = tmp_path / "new" / "timeline.db"
    with TimelineStore(path) as the_store:
        assert the_store.schema_version() == tl.SCHEMA_VERSION
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"schema_version", "incidents", "runs", "events"} <= tables
    finally:
        conn.close()
    # opening again changes nothing
    with TimelineStore(path) as again:
        assert again.schema_version() == tl.SCHEMA_VERSION
        assert len(again._query("SELECT * FROM schema_version")) == 1


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "timeline.db"
    TimelineStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(TimelineError, match="schema version 99 is newer"):
        TimelineStore(path)


def test_unusable_path_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TimelineError) as excinfo:
        TimelineStore(blocker / "timeline.db")
    assert excinfo.value.kind == "unavailable"
    assert str(excinfo.value).startswith(f"timeline {blocker / 'timeline.db'}: cannot create it")
    assert "\n" not in str(excinfo.value)


def test_corrupt_file_is_one_line_error(tmp_path):
    path = tmp_path / "timeline.db"
    path.write_bytes(b"this is not a database" * 300)
    with pytest.raises(TimelineError, match="file is not a database"):
        TimelineStore(path)


# --------------------------------------------------------------------------- incidents


def test_incident_ids_count_per_day(store):
    first = store.new_incident("gateway down", severity="P0", opened_at="2026-12-01T10:00:00.000Z")
    second = store.new_incident("disk full", opened_at="2026-12-01T11:00:00.000Z")
    other_day = store.new_incident("fd", opened_at="2026-12-02T00:00:01.000Z")
    assert (first, second, other_day) == ("INC-20261201-0001", "INC-20261201-0002", "INC-20261202-0001")
    incident = store.get_incident(first)
    assert incident["severity"] == "P0" and incident["status"] == "investigating"
    assert incident["hosts"] == [] and incident["alert_fingerprints"] == []
    assert incident["opened_at"] == "2026-12-01T10:00:00.000Z"
    now = store.new_incident("opened now")
    opened_at = store.get_incident(now)["opened_at"]
    assert TS_RE.match(opened_at) and now.startswith(f"INC-{opened_at[:10].replace('-', '')}-")


def test_incident_ids_past_9999(store):
    conn = store._conn
    conn.execute("INSERT INTO incidents (id, title, severity, opened_at) VALUES "
                 "('INC-20261201-9999', 't', 'P2', '2026-12-01T00:00:00.000Z'), "
                 "('INC-20261201-10000', 't', 'P2', '2026-12-01T00:00:00.000Z')")
    assert store.new_incident("next", opened_at="2026-12-01T12:00:00.000Z") == "INC-20261201-10001"


def test_incident_lifecycle_fills_times_and_records_status_events(store):
    incident_id = store.new_incident(
        "gateway 5xx", severity="P1", scenario="service-down", service="gateway", hosts=["web-2", "web-1", "web-1"],
        alert_fingerprints="5a4f2c3f0ab2a1c9", detected_at="2026-12-01T09:59:00.000Z", created_by="alice",
        impact="checkout fails for 30% of users")
    incident = store.get_incident(incident_id)
    assert incident["hosts"] == ["web-1", "web-2"]
    assert incident["alert_fingerprints"] == ["5a4f2c3f0ab2a1c9"]
    assert incident["acknowledged_at"] is None

    incident = store.update_incident(incident_id, commander="bob")
    assert incident["commander"] == "bob" and TS_RE.match(incident["acknowledged_at"])
    incident = store.update_incident(incident_id, status="monitoring")
    assert TS_RE.match(incident["mitigated_at"]) and incident["resolved_at"] is None
    incident = store.update_incident(incident_id, status="resolved")
    assert TS_RE.match(incident["resolved_at"])
    assert store.update_incident(incident_id, status="resolved") == incident  # no change, no event
    reopened = store.update_incident(incident_id, status="investigating")
    assert reopened["resolved_at"] is None and reopened["mitigated_at"] == incident["mitigated_at"]

    messages = [e["message"] for e in store.events(incident_id=incident_id, kind="status")]
    assert messages == [
        "opened (P1, investigating): gateway 5xx",
        "commander: bob",
        "status investigating -> monitoring",
        "status monitoring -> resolved",
        "status resolved -> investigating",
    ]
    assert [i["id"] for i in store.list_incidents(status="open")] == [incident_id]
    assert store.list_incidents(status="resolved") == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.new_incident("t", severity="P5"), "severity must be one of P0, P1, P2, P3, not 'P5'"),
        (lambda s: s.new_incident(""), "an incident needs a title"),
        (lambda s: s.new_incident("t", owner="x"), "unknown incident field(s): owner"),
        (lambda s: s.update_incident("INC-20260101-0001", status="done"), "status must be one of"),
        (lambda s: s.update_incident("INC-20260101-0001", status="resolved"), "no incident INC-20260101-0001"),
        (lambda s: s.list_incidents(status="closed"), "status must be one of"),
        (lambda s: s.start_run(entrance="cron"), "entrance must be one of"),
        (lambda s: s.add_event("log"), "event kind must be one of"),
        (lambda s: s.add_event("task", status="weird"), "event status must be one of"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(store, call, message):
    # (PostgreSQL: the empty lists below say it; SQLite: not a byte of the file changed either)
    written = () if store.dsn else (Path(store.path), Path(store.path + "-wal"))  # not -shm: reads update its index
    before = [path.read_bytes() for path in written]
    with pytest.raises(TimelineError) as excinfo:
        call(store)
    assert excinfo.value.kind == "input"
    assert message in str(excinfo.value)
    assert store.list_incidents() == [] and store.list_runs() == [] and store.events() == []
    assert [path.read_bytes() for path in written] == before


# --------------------------------------------------------------------------- runs and events


def test_run_started_by_the_cli_then_filled_by_the_callback(store):
    incident_id = store.new_incident("disk full", severity="P2")
    run_id = store.start_run(incident_id=incident_id, scenario="disk-full", entrance="cli", user="alice",
                             extra={"limit": "lab-1"})
    # the callback reports on the same run: fills what is missing, keeps what was there
    assert store.start_run(run_id, scenario="other", playbook="runbook.remediation.disk_full",
                           entrance="ansible-playbook", check_mode=True, extra={"pid": 42}) == run_id
    run = store.get_run(run_id)
    assert run["scenario"] == "disk-full" and run["entrance"] == "cli" and run["user"] == "alice"
    assert run["playbook"] == "runbook.remediation.disk_full"
    assert run["extra"] == {"limit": "lab-1", "pid": 42}
    assert run["check_mode"] is False and run["ended_at"] is None
    ended = store.end_run(run_id, outcome="remediated", extra={"stats": {"lab-1": {"ok": 3}}})
    assert ended["outcome"] == "remediated" and TS_RE.match(ended["ended_at"])
    assert ended["extra"]["stats"] == {"lab-1": {"ok": 3}} and ended["extra"]["limit"] == "lab-1"
    assert [r["id"] for r in store.list_runs(incident_id)] == [run_id]


def test_events_follow_the_run_to_its_incident(store):
    run_id = store.start_run(scenario="service-down")
    early = store.add_event("task", run_id=run_id, host="lab-1", task="Probe", action="uri", status="ok")
    incident_id = store.new_incident("down")
    store.update_run(run_id, incident_id=incident_id)  # attached after its first event
    late = store.add_event("task", run_id=run_id, host="lab-1", task="Restart", action="systemd_service",
                           status="changed", changed=True, message="restarted", data={"rc": 0})
    note = store.add_event("note", incident_id=incident_id, message="paged the DBA")
    events = store.events(incident_id=incident_id)
    assert [e["id"] for e in events if e["kind"] != "status"] == [early, late, note]
    restart = store.events(run_id=run_id)[-1]
    assert restart["incident_id"] == incident_id
    assert restart["changed"] is True and restart["failed"] is False and restart["data"] == {"rc": 0}
    assert TS_RE.match(restart["ts"])
    assert store.events(run_id=run_id, kind="note") == []


def test_everything_stored_is_masked(tmp_path):
    directory = tmp_path / "state"
    with TimelineStore(directory / "timeline.db", secret_patterns=[r"ghp_\w+"], secrets=[SECRET]) as the_store:
        incident_id = the_store.new_incident(f"login fails with {SECRET}", impact="token=abcdef123")
        run_id = the_store.start_run(incident_id=incident_id, user="bob",
                                     extra={"password": "hunter22", "note": f"uses {SECRET}"})
        the_store.add_event(
            "task", run_id=run_id, host="lab-1", task=f"Log in as admin:{SECRET}", action="uri", status="failed",
            failed=True, message=f"GET https://admin:{SECRET}@api.example.com failed; ghp_tok3n",
            data={"msg": f"bad {SECRET}", "headers": {"X-Api-Key": "k3y-value"}, "list": [SECRET]})
        the_store.update_incident(incident_id, commander=f"alice {SECRET}")
        events = the_store.events(incident_id=incident_id)
    text = all_bytes(directory)
    for secret in (SECRET, "hunter22", "abcdef123", "k3y-value", "ghp_tok3n"):
        assert secret.encode() not in text, secret
    task = next(e for e in events if e["kind"] == "task")
    assert task["message"] == f"GET https://admin:{MASK}@api.example.com failed; {MASK}"
    assert task["data"] == {"msg": f"bad {MASK}", "headers": {"X-Api-Key": MASK}, "list": [MASK]}


def test_large_data_is_cut(store):
    event_id = store.add_event("note", message="x" * 5000, data={"blob": "y" * (tl.MAX_DATA + 10)})
    event = next(e for e in store.events() if e["id"] == event_id)
    assert len(event["message"]) == tl.MAX_MESSAGE and event["message"].endswith("...")
    assert event["data"]["truncated"] is True and event["data"]["size"] > tl.MAX_DATA


# --------------------------------------------------------------------------- concurrency

EVENTS_PER_WRITER = 150
INCIDENTS_PER_WRITER = 15


def _writer(where: dict, name: str, barrier) -> None:
    store = TimelineStore(timeout=60, **where)
    barrier.wait()
    run_id = store.start_run(scenario=name)
    for index in range(EVENTS_PER_WRITER):
        store.add_event("task", run_id=run_id, host=name, task=f"task {index}", status="ok")
        if index % (EVENTS_PER_WRITER // INCIDENTS_PER_WRITER) == 0:
            store.new_incident(f"{name} {index}", opened_at="2026-12-01T10:00:00.000Z")
    store.end_run(run_id, outcome="completed")
    store.close()


def test_two_processes_write_at_once(state_backend):
    """Two writer processes on a fresh file (or database): schema setup, event inserts and
    incident ids all race; nothing is lost, no id is handed out twice."""
    where = state_backend.timeline_args()
    path = where.get("path", "")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_writer, args=(where, name, barrier)) for name in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]
    with TimelineStore(**where) as the_store:
        runs = the_store.list_runs()
        assert sorted(r["scenario"] for r in runs) == ["a", "b"]
        assert all(r["outcome"] == "completed" for r in runs)
        for run in runs:
            tasks = [e["task"] for e in the_store.events(run_id=run["id"])]
            assert tasks == [f"task {i}" for i in range(EVENTS_PER_WRITER)]
        ids = sorted(i["id"] for i in the_store.list_incidents())
        assert ids == [f"INC-20261201-{n:04d}" for n in range(1, 2 * INCIDENTS_PER_WRITER + 1)]
    assert not os.path.exists(path + "-journal")


@pytest.mark.parametrize("text", ["a." * 150000, "y" * 300000, "token" * 60000, "https://x:" * 30000, '"' * 300000])
def test_masking_long_output_takes_linear_time(text):
    import time

    # Not a speed target: a backtracking (quadratic) pattern takes hours on these inputs and a
    # linear one milliseconds, so a bound this loose only catches the former, even under load.
    start = time.monotonic()
    mask(text)
    assert time.monotonic() - start < 30.0
