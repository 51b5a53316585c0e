"""postgresql_sessions: the pure parts (figures, projection, messages, the SQL's guards,
option checks), then the module in-process against a real PostgreSQL 15 (the session's
`postgres` fixture, tests/postgres.py) for what only a server can show: the re-check at
signal time, permissions, invisible sessions, idle transactions and the user scope."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import psycopg2
import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _postgresql
from ansible_collections.runbook.remediation.plugins.modules import postgresql_sessions as ps

# --------------------------------------------------------------------------- pure parts


def row(pid, state="idle", user="client", database="appdb", state_seconds=100.0, query_seconds=100.0, **extra):
    return {"pid": pid, "datname": database, "usename": user, "state": state, "application_name": "app",
            "client_addr": "127.0.0.1", "backend_start": None, "backend_seconds": 200.0,
            "state_seconds": state_seconds, "query_seconds": query_seconds, **extra}


def test_one_line_joins_libpq_lines():
    message = 'connection to server failed: Connection refused\n\tIs the server running on that host?\n'
    assert ps.one_line(message) == (
        "connection to server failed: Connection refused; Is the server running on that host?")


@pytest.mark.parametrize(
    ("message", "kind", "advice"),
    [
        ("FATAL:  remaining connection slots are reserved for non-replication superuser connections", "unavailable",
         "log in as one"),
        ("FATAL:  sorry, too many clients already", "unavailable", "log in as one"),
        ('FATAL:  password authentication failed for user "x"', "input", "database login"),
        ('FATAL:  database "nope" does not exist', "input", "database login"),
        ('FATAL:  role "nope" does not exist', "input", "database login"),
        ('FATAL:  no pg_hba.conf entry for host "127.0.0.1"', "input", "database login"),
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "unavailable", ""),
        ("timeout expired", "unavailable", ""),
        ("FATAL:  the database system is starting up", "unavailable", ""),
    ],
)
def test_connect_error_kind(message, kind, advice):
    got_kind, got_advice = _postgresql.connect_error_kind(message)
    assert got_kind == kind
    assert advice in got_advice if advice else got_advice == ""


def test_summarize_leaves_out_its_own_session_and_counts_by_state_user_database():
    rows = [
        row(1), row(2, state_seconds=500.0), row(3, state="active", query_seconds=42.0),
        row(4, state="idle in transaction", state_seconds=70.0), row(5, user="app"),
        row(6, database="other", state_seconds=9999.0), row(7, state=None, user="hidden"),
        row(8, state="active", user="admin", query_seconds=0.0, self=True),
    ]
    got = ps.summarize(rows, 100, 3, "appdb")
    assert got["total"] == 7 and got["usage"] == 0.07
    assert got["by_state"] == {"active": 1, "idle": 4, "idle in transaction": 1, "unknown": 1}
    assert got["by_database"] == {"appdb": 6, "other": 1}
    assert got["by_user"] == {"app": 1, "client": 5, "hidden": 1}
    assert got["invisible"] == 1
    db = got["database"]
    assert db["total"] == 6 and db["by_user"] == {"app": 1, "client": 4, "hidden": 1}
    assert db["oldest_idle_seconds"] == 500.0  # the other database's 9999 s do not count
    assert db["oldest_idle_in_transaction_seconds"] == 70.0
    assert db["longest_query_seconds"] == 42.0  # not the module's own query


def test_summarize_of_nothing():
    got = ps.summarize([], 100, 3, "appdb")
    assert got["total"] == 0 and got["usage"] == 0.0 and got["by_state"] == {}
    assert got["database"]["oldest_idle_seconds"] is None and got["database"]["longest_query_seconds"] is None


def test_project_drops_terminated_and_idles_cancelled():
    rows = [row(1), row(2, state="active"), row(3)]
    projected = ps.project(rows, terminated={1}, cancelled={2})
    assert [(r["pid"], r["state"], r["state_seconds"]) for r in projected] == [(2, "idle", 0.0), (3, "idle", 100.0)]
    assert rows[1]["state"] == "active"  # the snapshot itself is left as it was


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"protected": True, "in_scope": False, "can_signal": False}, "protected user"),
        ({"protected": False, "in_scope": False, "can_signal": True}, "user not in scope"),
        ({"protected": False, "in_scope": True, "can_signal": False}, "not permitted to signal"),
        ({"protected": False, "in_scope": True, "can_signal": True}, None),
    ],
)
def test_spare_reason_protected_first(flags, reason):
    assert ps.spare_reason(flags) == reason


def test_report_says_why():
    idle = ps.report(row(7, state_seconds=3601.26), ps.ACTIONS[2], 3600)
    assert idle["idle_seconds"] == 3601.3 and idle["reason"] == "idle for more than 3600 s"
    assert idle["user"] == "client" and idle["connected_seconds"] == 200.0
    query = ps.report(row(8, state="active", query_seconds=301.0), ps.ACTIONS[0], 300)
    assert query["query_seconds"] == 301.0 and query["reason"] == "query running for more than 300 s"
    spared = ps.report(row(9, state="active", query_seconds=5.0), reason="protected user")
    assert spared["seconds"] == 5.0 and spared["reason"] == "protected user"


def test_summary_message():
    result = {"terminated": [{}] * 30, "cancelled": [{}], "before": {"total": 38},
              "after": {"total": 7, "max_connections": 100}}
    assert ps.summary(result, "appdb", False) == (
        "terminated 30 session(s) and cancelled 1 query(ies) in appdb; 7 of 100 connections now (was 38)")
    assert ps.summary(result, "appdb", True).startswith("would terminate 30 session(s) and would cancel 1 query(ies)")
    idle = {"terminated": [], "cancelled": [], "before": {"total": 3}, "after": {"total": 3, "max_connections": 10}}
    assert ps.summary(idle, "appdb", False) == "nothing to do in appdb; 3 of 10 connections now (was 3)"


@pytest.mark.parametrize("action", ps.ACTIONS, ids=lambda a: a["option"])
def test_every_signal_rechecks_everything_in_its_own_statement(action):
    sql = ps.signal_sql(action)
    for guard in ("a.backend_type = 'client backend'", "a.pid <> pg_backend_pid()", "a.datname = %(database)s",
                  "a.pid = %(pid)s", "a.backend_start = %(backend_start)s", "a.state = ANY(%(states)s::text[])",
                  f"a.{action['since']} < now() - make_interval(secs => %(after)s)",
                  "AND NOT a.usename = ANY(%(protected)s::text[])", "pg_has_role('pg_signal_backend', 'USAGE')"):
        assert guard in sql, guard
    assert sql.count(action["func"] + "(") == 1


@pytest.mark.parametrize("action", ps.ACTIONS, ids=lambda a: a["option"])
def test_the_candidate_scan_signals_nothing(action):
    sql = ps.candidates_sql(action)
    assert "pg_terminate_backend" not in sql and "pg_cancel_backend" not in sql
    assert "a.pid <> pg_backend_pid()" in sql
    assert "pg_terminate_backend" not in ps.SNAPSHOT_SQL and "pg_cancel_backend" not in ps.SNAPSHOT_SQL


def test_idle_is_measured_from_the_last_state_change_and_queries_from_their_start():
    by_option = {action["option"]: action for action in ps.ACTIONS}
    assert by_option["idle_after"]["since"] == "state_change"
    assert by_option["idle_in_transaction_after"]["since"] == "state_change"
    assert by_option["cancel_after"]["since"] == "query_start"
    assert by_option["cancel_after"]["func"] == "pg_cancel_backend"
    assert by_option["terminate_after"]["since"] == "query_start"
    assert by_option["terminate_after"]["func"] == "pg_terminate_backend"
    # The higher threshold is looked at first: a query past both is terminated, not cancelled.
    assert [action["option"] for action in ps.ACTIONS].index("terminate_after") == 0


@pytest.fixture
def run(run_module):
    def _run(check: bool = False, **args):
        if check:
            args["_ansible_check_mode"] = True
        return run_module(ps.main, args)

    return _run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"database": "appdb", "idle_after": -1}, "idle_after must be 0 or more seconds, got -1"),
        ({"database": "appdb", "cancel_after": -5}, "cancel_after must be 0 or more seconds, got -5"),
        ({"database": "appdb", "cancel_after": 60, "terminate_after": 60},
         "terminate_after (60 s) must be above cancel_after (60 s)"),
        ({"database": "appdb", "wait_timeout": -1}, "wait_timeout must be 0 or more seconds"),
        ({"database": ""}, "database must not be empty"),
        ({"database": "appdb", "protected_users": ["app", ""]}, "protected_users must not hold an empty name"),
    ],
)
def test_bad_options_fail_before_connecting(run, args, message):
    # login_port 1: were it to connect, the error would be "connection refused" instead.
    result = run(login_host="127.0.0.1", login_port=1, **args)
    assert result.failed and result["error_kind"] == "input"
    assert message in result.msg


def test_without_psycopg2_it_says_what_is_missing(run, monkeypatch):
    monkeypatch.setattr(ps, "HAS_PSYCOPG2", False)
    result = run(database="appdb")
    assert result.failed and result["error_kind"] == "unavailable" and "psycopg2" in result.msg


# --------------------------------------------------------------------------- a real server


@pytest.fixture
def db(postgres):
    """A database, a client role and a signaller role (pg_signal_backend, no superuser)."""
    tag = uuid.uuid4().hex[:8]
    names = {"database": f"units_{tag}", "client": f"uclient_{tag}", "other": f"uother_{tag}",
             "medic": f"umedic_{tag}", "nosee": f"unosee_{tag}", "password": f"pw-{tag}"}
    postgres.execute(f"CREATE DATABASE {names['database']}")
    for role in ("client", "other", "nosee"):
        postgres.execute(f"CREATE ROLE {names[role]} LOGIN PASSWORD %s", params=(names["password"],))
    postgres.execute(f"CREATE ROLE {names['medic']} LOGIN PASSWORD %s IN ROLE pg_signal_backend, pg_read_all_stats",
                     params=(names["password"],))
    postgres.execute(f"GRANT pg_signal_backend TO {names['nosee']}")
    conns = []

    def open_(role, **kwargs):
        user, password = (postgres.user, postgres.password) if role == "admin" else (names[role], names["password"])
        conn = postgres.connect(names["database"], user=user, password=password, **kwargs)
        conns.append(conn)
        return conn

    names["open"] = open_
    names["login"] = {"login_host": postgres.host, "login_port": postgres.port, "login_user": postgres.user,
                      "login_password": postgres.password, "database": names["database"]}
    try:
        yield names
    finally:
        for conn in conns:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
        postgres.execute(f"DROP DATABASE {names['database']} WITH (FORCE)")
        for role in ("client", "other", "medic", "nosee"):
            postgres.execute(f"DROP ROLE {names[role]}")


def test_a_session_that_became_active_before_its_turn_is_left_alone(run, db, monkeypatch):
    """The race the one-statement check closes: between the scan and the signal, the session
    starts a query. It must not be terminated (here: it runs a pg_sleep that is not cut)."""
    idle = db["open"]("client")
    busy_pid = idle.get_backend_pid()
    other = db["open"]("client")
    time.sleep(1.2)
    original = ps.Sessions.act
    started = []

    def act_after_a_query_started(self, plans, result):
        # The client starts a query now: same backend, same pid, no longer idle.
        thread = threading.Thread(target=idle.cursor().execute, args=("SELECT pg_sleep(1.5)",), daemon=True)
        thread.start()
        started.append(thread)
        deadline = time.monotonic() + 5
        with contextlib.closing(psycopg2.connect(**_dsn(db))) as probe, probe.cursor() as cur:
            probe.autocommit = True
            while time.monotonic() < deadline:
                cur.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (busy_pid,))
                if cur.fetchone() == ("active",):
                    break
                time.sleep(0.02)
        return original(self, plans, result)

    monkeypatch.setattr(ps.Sessions, "act", act_after_a_query_started)
    result = run(idle_after=1, **db["login"])
    assert not result.failed, result.msg
    assert [item["pid"] for item in result["terminated"]] == [other.get_backend_pid()]
    assert [item["pid"] for item in result["skipped"]] == [busy_pid]
    assert "no longer matches" in result["skipped"][0]["reason"]
    started[0].join(5)
    with idle.cursor() as cur:  # the query ran to its end and the session is still there
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def _dsn(db):
    login = db["login"]
    return {"host": login["login_host"], "port": login["login_port"], "user": login["login_user"],
            "password": login["login_password"], "dbname": "postgres"}


def test_a_non_superuser_never_signals_a_superuser_and_says_so(run, db):
    admin = db["open"]("admin", application_name="dba-psql")
    client = db["open"]("client")
    time.sleep(1.2)
    result = run(idle_after=1, **{**db["login"], "login_user": db["medic"], "login_password": db["password"]})
    assert not result.failed, result.msg
    assert [item["pid"] for item in result["terminated"]] == [client.get_backend_pid()]
    assert [(item["pid"], item["reason"]) for item in result["spared"]] == [
        (admin.get_backend_pid(), "not permitted to signal")]
    assert result["errors"] == []
    with admin.cursor() as cur:
        cur.execute("SELECT 1")


def test_without_pg_read_all_stats_other_users_are_counted_never_selected(run, db):
    client = db["open"]("client")
    time.sleep(1.2)
    result = run(idle_after=1, **{**db["login"], "login_user": db["nosee"], "login_password": db["password"]})
    assert not result.failed, result.msg
    assert result["terminated"] == [] and not result["changed"]
    assert result["before"]["database"]["by_state"] == {"unknown": 1} and result["before"]["invisible"] >= 1
    assert any("pg_read_all_stats" in warning for warning in result.warnings)
    with client.cursor() as cur:
        cur.execute("SELECT 1")


def test_an_idle_transaction_is_terminated_and_rolled_back(run, db, postgres):
    db["open"]("admin").cursor().execute("CREATE TABLE ledger (n int)")
    stuck = db["open"]("client")
    stuck.autocommit = False
    postgres.execute(f"GRANT ALL ON ledger TO {db['client']}", dbname=db["database"])
    with stuck.cursor() as cur:
        cur.execute("INSERT INTO ledger VALUES (1)")  # holds its transaction open, idle
    time.sleep(1.2)
    result = run(idle_in_transaction_after=1, **db["login"])
    assert not result.failed, result.msg
    [item] = result["terminated"]
    assert item["pid"] == stuck.get_backend_pid() and item["state"] == "idle in transaction"
    assert item["reason"] == "idle in transaction for more than 1 s"
    assert postgres.execute("SELECT count(*) FROM ledger", dbname=db["database"]) == [(0,)]


def test_only_the_users_in_scope_and_check_mode_signals_nothing(run, db):
    mine = [db["open"]("client") for _index in range(2)]
    theirs = db["open"]("other")
    time.sleep(1.2)
    args = {**db["login"], "idle_after": 1, "users": [db["client"]]}
    planned = run(check=True, **args)
    assert not planned.failed and planned["changed"] and planned["after"]["projected"] is True
    assert {item["pid"] for item in planned["terminated"]} == {conn.get_backend_pid() for conn in mine}
    assert planned["after"]["database"]["by_user"] == {db["other"]: 1}
    for conn in [*mine, theirs]:  # nothing was signalled
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    time.sleep(1.2)

    done = run(**args)
    assert {item["pid"] for item in done["terminated"]} == {conn.get_backend_pid() for conn in mine}
    assert [(item["pid"], item["reason"]) for item in done["spared"]] == [(theirs.get_backend_pid(),
                                                                           "user not in scope")]
    assert done["still_present"] == [] and done["after"]["database"]["by_user"] == {db["other"]: 1}


def test_unknown_roles_and_database_are_bad_input_and_nothing_is_signalled(run, db):
    client = db["open"]("client")
    time.sleep(1.2)
    result = run(idle_after=1, **{**db["login"], "protected_users": ["no_such_role"]})
    assert result.failed and result["error_kind"] == "input"
    assert "protected_users names role(s) that do not exist: no_such_role" in result.msg
    result = run(idle_after=1, **{**db["login"], "database": "no_such_db", "login_db": "postgres"})
    assert result.failed and result["error_kind"] == "input" and "database no_such_db does not exist" in result.msg
    with client.cursor() as cur:
        cur.execute("SELECT 1")


def test_a_server_that_is_down_is_unavailable(run):
    from tests.postgres import free_port

    result = run(login_host="127.0.0.1", login_port=free_port(), login_password="secret-not-shown", database="x")
    assert result.failed and result["error_kind"] == "unavailable"
    assert "cannot connect to PostgreSQL at 127.0.0.1:" in result.msg and "\n" not in result.msg
    assert "secret-not-shown" not in result.msg


def test_a_query_past_the_second_threshold_is_terminated_one_between_them_cancelled(run, db):
    """Seed 004: cancel long queries, terminate (pg_terminate_backend) those past a second threshold."""
    longest, long_ = db["open"]("client"), db["open"]("client")
    longest_pid, long_pid = longest.get_backend_pid(), long_.get_backend_pid()
    threads = [threading.Thread(target=_sleep_until_signalled, args=(conn,), daemon=True) for conn in (longest, long_)]
    threads[0].start()
    time.sleep(2.2)  # the longest query now runs for more than 2 s ...
    threads[1].start()
    time.sleep(1.2)  # ... the other for more than 1 s but less than 2
    result = run(cancel_after=1, terminate_after=2, **db["login"])
    assert not result.failed, result.msg
    assert [(item["pid"], item["reason"]) for item in result["terminated"]] == [
        (longest_pid, "query running for more than 2 s")]
    assert [item["pid"] for item in result["cancelled"]] == [long_pid]
    for thread in threads:
        thread.join(5)
    assert longest.closed or _gone(longest)
    with long_.cursor() as cur:  # cancelled: its query failed, the session stays
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def _sleep_until_signalled(conn) -> None:
    with contextlib.suppress(psycopg2.Error):  # the cancel or the termination ends it
        conn.cursor().execute("SELECT pg_sleep(30)")


def _gone(conn) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.Error:
        return True
    return False
