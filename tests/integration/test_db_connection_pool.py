"""db-connection-pool end to end against a real PostgreSQL 15 (tests/postgres.py, no lab):
a client leaks idle connections and a long query, the scenario terminates and cancels
them in its database only, never a protected user's sessions, the login user's other
sessions or its own; a second run has nothing to do; check mode and diagnose signal
nothing; a server that is down or full, and bad input, say so in one line."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pytest
import yaml

from tests.postgres import free_port, running_cluster

PLAYBOOK = "runbook.remediation.db_connection_pool"
# Small thresholds so the test need not wait an hour; numbers as JSON (-e k=v is a string).
FAST = {"db_connections_idle_after": 2, "db_connections_cancel_after": 2, "db_connections_idle_in_transaction_after": 2,
        # ~38 of the cluster's 100 connections are in use in the tests below: exhausted at 30%.
        "db_connections_max_usage": 0.3}
SERVICE = "billing"


@dataclass
class Pool:
    """One test's database, its users, and the connections the test opened."""

    pg: object
    database: str
    client: str
    app: str
    password: str
    conns: list = field(default_factory=list)
    cursors: list = field(default_factory=list)

    def open(self, user: str, application_name: str = "leaky-client", dbname: str | None = None):
        password = self.pg.password if user == self.pg.user else self.password
        conn = self.pg.connect(dbname or self.database, user=user, password=password,
                               application_name=application_name)
        self.conns.append(conn)
        return conn

    def open_running(self, user: str, seconds: int = 120, application_name: str = "long-report"):
        """A connection running `pg_sleep` (asynchronous: the test goes on meanwhile)."""
        conn = psycopg2.connect(host=self.pg.host, port=self.pg.port, dbname=self.database, user=user,
                                password=self.password, application_name=application_name, async_=True)
        psycopg2.extras.wait_select(conn)
        cursor = conn.cursor()
        cursor.execute("SELECT pg_sleep(%s)", (seconds,))
        self.cursors.append(cursor)  # psycopg2 forgets an asynchronous query whose cursor is gone
        self.conns.append(conn)
        return conn

    def states(self) -> dict[int, str]:
        rows = self.pg.execute("SELECT pid, state FROM pg_stat_activity WHERE datname = %s", params=(self.database,))
        return dict(rows)


def connected(pg, conns) -> bool:
    """Every connection's backend is still there, seen from the server: unlike a query on
    the connection itself, this does not reset its idle time."""
    pids = [conn.get_backend_pid() for conn in conns]
    rows = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", params=(pids,))
    return rows[0][0] == len(pids)


def alive(conn) -> bool:
    """A synchronous connection still answers; a terminated one raises. (It also makes the
    session active for a moment, so its idle time starts again.)"""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        return False


def outcome_of_query(conn) -> str:
    """How an asynchronous pg_sleep ended: running, cancelled, or terminated."""
    try:
        if conn.poll() != psycopg2.extensions.POLL_OK:
            return "running"
        return "finished"
    except psycopg2.errors.QueryCanceled:
        return "cancelled"
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        return "terminated"


def wait_query(conn, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while (state := outcome_of_query(conn)) == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return state


@pytest.fixture
def pool(postgres):
    tag = uuid.uuid4().hex[:8]
    made = Pool(postgres, f"pool_{tag}", f"client_{tag}", f"app_{tag}", f"pw-{uuid.uuid4().hex}")
    postgres.execute(f"CREATE DATABASE {made.database}")
    for user in (made.client, made.app):
        postgres.execute(f"CREATE ROLE {user} LOGIN PASSWORD %s", params=(made.password,))
    try:
        yield made
    finally:
        for conn in made.conns:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
        postgres.execute(f"DROP DATABASE {made.database} WITH (FORCE)")
        for user in (made.client, made.app):
            postgres.execute(f"DROP ROLE {user}")


def inventory(tmp_path, pool: Pool, **database) -> str:
    description = {"type": "postgresql", "name": pool.database, "host": pool.pg.host, "port": pool.pg.port,
                   "user": pool.pg.user, "password": pool.pg.password, "protected_users": [pool.app], **database}
    data = {"all": {"hosts": {"pg-host": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "runbook_services": [{"name": SERVICE, "manager": "systemd", "unit": "billing.service",
                              "database": {k: v for k, v in description.items() if v is not None}}],
    }}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


@dataclass
class Run:
    returncode: int
    output: str
    result: dict | None
    changed: int | None = None  # the host's changed count in the play recap


def play(inventory_path: str, *args: str, extra: dict | None = None, text: bool = False) -> Run:
    """ansible-playbook by FQCN; the result from set_stats (json callback) unless ``text``."""
    argv = ["ansible-playbook", PLAYBOOK, "-i", inventory_path, *args]
    if extra:
        argv += ["-e", json.dumps(extra)]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    if not text:
        env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_SHOW_CUSTOM_STATS="1")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=300)
    if text:
        return Run(done.returncode, done.stdout + done.stderr, None)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"no JSON from ansible-playbook (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return Run(done.returncode, done.stdout + done.stderr, report["global_custom_stats"]["runbook_results"]["pg-host"],
               report["stats"]["pg-host"]["changed"])


def test_a_pool_with_room_is_left_alone_unless_forced(pool, tmp_path):
    leaked = [pool.open(pool.client) for _index in range(5)]
    time.sleep(2.5)  # past the idle threshold, but 5 of 100 is not an exhausted pool
    run = play(inventory(tmp_path, pool), extra=FAST)
    assert run.returncode == 0, run.output[-4000:]
    assert run.result["outcome"] == "healthy", run.result["message"]
    assert "nothing signalled" in run.result["message"] and run.result["evidence"]["terminated"] == []
    assert all(alive(conn) for conn in leaked)
    time.sleep(2.5)  # alive() ran a query on each: idle past the threshold again
    forced = play(inventory(tmp_path, pool), extra={**FAST, "db_connections_force": True})
    assert forced.result["outcome"] == "remediated", forced.result["message"]
    assert not any(alive(conn) for conn in leaked)


def test_idle_sessions_are_terminated_protected_ones_untouched_then_nothing_to_do(pool, tmp_path):
    leaked = [pool.open(pool.client) for _index in range(30)]
    protected = [pool.open(pool.app, application_name="app-pool") for _index in range(3)]
    # The login user's own long-lived session (a DBA's psql, another remediation).
    remediation = pool.open(pool.pg.user, application_name="runbook-remediation")
    elsewhere = pool.open(pool.client, dbname="postgres")  # same user, another database
    long_client = pool.open_running(pool.client)
    long_app = pool.open_running(pool.app)
    time.sleep(2.5)  # past the thresholds
    own_pids = {conn.get_backend_pid() for conn in leaked}

    run = play(inventory(tmp_path, pool), extra=FAST)
    assert run.returncode == 0, run.output[-4000:]
    assert pool.pg.password not in run.output
    result = run.result
    assert pool.pg.password not in json.dumps(result)
    assert result["outcome"] == "remediated", result["message"]
    assert result["scenario"] == "db-connection-pool" and result["check_mode"] is False
    evidence = result["evidence"]

    # The 30 leaked connections are dead, the protected ones and the login user's alive.
    assert {item["pid"] for item in evidence["terminated"]} == own_pids
    assert all(item["user"] == pool.client and item["state"] == "idle" for item in evidence["terminated"])
    assert not any(alive(conn) for conn in leaked)
    assert all(alive(conn) for conn in [*protected, remediation, elsewhere])
    # The client's long query was cancelled (its session stays), the protected one runs on.
    assert [item["pid"] for item in evidence["cancelled"]] == [long_client.get_backend_pid()]
    assert wait_query(long_client) == "cancelled"
    assert outcome_of_query(long_app) == "running"
    # The module's own session was never a candidate.
    signalled = {item["pid"] for item in evidence["terminated"] + evidence["cancelled"]}
    assert evidence["backend_pid"] > 0 and evidence["backend_pid"] not in signalled
    spared = {(item["user"], item["reason"]) for item in evidence["spared"]}
    assert spared == {(pool.app, "protected user"), (pool.pg.user, "protected user")}

    before, after = evidence["before"]["database"], evidence["after"]["database"]
    assert before["total"] == 36 and before["by_user"] == {pool.client: 31, pool.app: 4, pool.pg.user: 1}
    assert before["by_state"] == {"active": 2, "idle": 34}
    assert after["total"] == 6 and after["by_user"] == {pool.client: 1, pool.app: 4, pool.pg.user: 1}
    assert evidence["before"]["total"] - evidence["after"]["total"] == 30
    assert result["verification"]["under_max_usage"] is True and result["verification"]["terminated_gone"] is True
    assert any(f.startswith("30 session(s) idle for more than 2 s") for f in result["findings"]), result["findings"]
    assert any(a.startswith(f"terminated 30 session(s) of {pool.client} in {pool.database}") for a in result["actions"])
    assert any(a.startswith(f"cancelled 1 query(ies) of {pool.client}") for a in result["actions"])

    # The cancelled client goes away as a client would after an error; the rest stays.
    long_client.close()
    second = play(inventory(tmp_path, pool), extra=FAST)
    assert second.returncode == 0, second.output[-4000:]
    assert second.result["outcome"] == "healthy", second.result["message"]
    assert second.changed == 0 and run.changed == 1  # the first run's one change: the module's
    assert second.result["actions"] == [] and second.result["evidence"]["terminated"] == []
    assert all(alive(conn) for conn in [*protected, remediation, elsewhere])
    assert outcome_of_query(long_app) == "running"


def test_check_mode_and_diagnose_signal_nothing(pool, tmp_path):
    leaked = [pool.open(pool.client) for _index in range(5)]
    long_client = pool.open_running(pool.client)
    time.sleep(2.5)
    inv = inventory(tmp_path, pool)
    before = pool.states()

    # The default callback, verbose: what an operator would paste into a ticket. Forced:
    # 7 of 100 connections is no exhausted pool, and the plan is what this test looks at.
    forced = {**FAST, "db_connections_force": True}
    run = play(inv, "--check", "-vvv", extra=forced, text=True)
    assert run.returncode == 0, run.output[-4000:]
    assert pool.pg.password not in run.output
    assert f"planned: would terminate 5 session(s) and would cancel 1 query(ies) in {pool.database}" in run.output
    assert pool.states() == before
    assert connected(pool.pg, leaked) and outcome_of_query(long_client) == "running"

    run = play(inv, extra={**forced, "runbook_diagnose_only": True})
    assert run.returncode == 0, run.output[-4000:]
    assert run.result["outcome"] == "planned" and run.result["verification"]["projected"] is True
    assert run.result["evidence"]["after"]["database"]["by_state"] == {"idle": 1}
    assert pool.states() == before
    assert connected(pool.pg, leaked) and outcome_of_query(long_client) == "running"


def test_postgres_down_is_unavailable(pool, tmp_path):
    run = play(inventory(tmp_path, pool, port=free_port()), extra=FAST)
    assert run.returncode != 0
    assert run.result["outcome"] == "failed" and run.result["error_kind"] == "unavailable", run.result
    message = run.result["message"]
    assert message.startswith("unavailable: postgresql_sessions: cannot connect to PostgreSQL at 127.0.0.1:")
    assert "Connection refused" in message and "\n" not in message
    assert pool.pg.password not in run.output


@pytest.mark.parametrize(
    ("database", "extra", "why"),
    [
        ({}, {"service": "nope"}, "nope"),
        ({"type": "sqlite"}, {}, "database type sqlite is not supported (postgresql only)"),
        ({"name": ""}, {}, "the database needs a name"),
        ({}, {"db_connections_idle_after": -1}, "db_connections_idle_after=-1"),
        ({}, {"db_connections_cancel_after": "soon"}, "argument 'db_connections_cancel_after' is of type str"),
        ({}, {"db_connections_max_usage": 1.5}, "db_connections_max_usage=1.5"),
        ({"protected_users": ["no_such_app"]}, {}, "protected_users names role(s) that do not exist: no_such_app"),
        ({"name": "no_such_db"}, {}, "no_such_db"),
        ({}, {"db_connections_terminate_after": 1}, "terminate_after=1, db_connections_cancel_after=1"),
    ],
    ids=["unknown-service", "not-postgresql", "no-name", "negative", "not-a-number", "usage", "unknown-role",
         "unknown-db", "terminate-not-above-cancel"],
)
def test_bad_input_touches_nothing(pool, tmp_path, database, extra, why):
    leaked = [pool.open(pool.client) for _index in range(3)]
    time.sleep(1.2)  # past the threshold below: had the run gone ahead, they would be gone
    quick = {"db_connections_idle_after": 1, "db_connections_cancel_after": 1}
    run = play(inventory(tmp_path, pool, **database), extra={**quick, **extra})
    assert run.returncode != 0
    assert run.result["outcome"] == "failed" and run.result["error_kind"] == "input", run.result
    assert run.result["message"].startswith("invalid input:") and why in run.result["message"], run.result["message"]
    assert "\n" not in run.result["message"]
    assert all(alive(conn) for conn in leaked)
    assert pool.pg.password not in run.output


def test_no_database_described_is_bad_input(pool, tmp_path):
    path = inventory(tmp_path, pool)
    data = yaml.safe_load(open(path, encoding="utf-8"))
    del data["all"]["hosts"]["pg-host"]["runbook_services"][0]["database"]
    with open(path, "w", encoding="utf-8") as out:
        yaml.safe_dump(data, out)
    run = play(path, extra=FAST)
    assert run.result["error_kind"] == "input"
    assert f"service {SERVICE}: no database is described" in run.result["message"]


def test_an_exhausted_pool_admits_only_a_superuser(tmp_path):
    """The seed's "remaining connection slots are reserved": a small server (10 slots, 3 kept
    for superusers) filled by a client. A non-superuser login with pg_signal_backend cannot
    even connect (unavailable, and the message says what to do); a superuser frees it."""
    with running_cluster(max_connections=10) as pg, contextlib.ExitStack() as stack:
        pg.execute("CREATE DATABASE shop")
        pg.execute("CREATE ROLE shopper LOGIN PASSWORD 'shopper-pw'")
        pg.execute("CREATE ROLE medic LOGIN PASSWORD 'medic-pw' IN ROLE pg_signal_backend, pg_read_all_stats")
        leaked = [stack.enter_context(contextlib.closing(pg.connect("shop", user="shopper", password="shopper-pw")))
                  for _index in range(7)]
        with pytest.raises(psycopg2.OperationalError, match="remaining connection slots are reserved"):
            pg.connect("shop", user="shopper", password="shopper-pw")
        time.sleep(2.5)
        holder = Pool(pg, "shop", "shopper", "nobody", "")

        path = inventory(tmp_path, holder, user="medic", password="medic-pw", protected_users=[])
        run = play(path, extra=FAST)
        assert run.result["error_kind"] == "unavailable", run.result
        assert "remaining connection slots are reserved" in run.result["message"]
        assert "log in as one" in run.result["message"]
        assert connected(pg, leaked)

        path = inventory(tmp_path, holder, protected_users=[])
        run = play(path, extra=FAST)
        assert run.returncode == 0, run.output[-4000:]
        result = run.result
        assert result["outcome"] == "remediated", result["message"]
        assert result["evidence"]["before"]["usage"] == 0.7 and result["evidence"]["after"]["usage"] == 0.0
        assert any("7 of 10 connections used (70.0%; non-superusers are refused at 7)" in f
                   for f in result["findings"]), result["findings"]
        assert not any(alive(conn) for conn in leaked)
