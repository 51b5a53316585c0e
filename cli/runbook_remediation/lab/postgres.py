"""The causal-eval profile's PostgreSQL (seed 004's database) and the faults its runbook names.

The server is a service of the lab's Compose project (the lab's postgres image, host network,
a free port, ``max_connections`` small so a leak fills it fast); its data directory is the
lab's ``postgres/data``, so a drill can scribble on an index file while the server is
stopped, as a failing disk would. The API's database holds one table and its index. Faults:

- ``pg-pool-exhausted``: a client that opens connections as the API's user until the server
  refuses ("remaining connection slots are reserved"), then holds them idle;
- ``pg-index-corrupt``: 300 bytes of an index page overwritten, the server restarted;
- ``pg-down``: the server's container killed, as a crash would (ggen-mcp's dependency down).

The passwords live in files of the lab's directory (mode 0600); the inventory reads the
admin's with a lookup, so it is in no file the lab writes besides those.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from runbook_remediation.errors import Unavailable

SERVICE = "postgres"
DATABASE = "causal_eval"
ADMIN = "runbook_admin"
APP_USER = "causal_eval_api"
# PostgreSQL's 3 reserved for superusers (the scenario's session, the lab's checks) and 17 for
# everyone else: the exporter's session and the API's, which pg-pool-exhausted fills.
MAX_CONNECTIONS = 20
TABLE = "evaluations"
INDEX = "evaluations_model"
ROWS = 5000
DATA_MOUNT = "/var/lib/runbook-pg"  # where the image's runbook-postgres keeps its cluster
FAULTS = ("pg-pool-exhausted", "pg-index-corrupt", "pg-down", "pg-long-queries")
LONG_QUERIES = 3  # pg-long-queries' sessions, each running one query for an hour
LONG_QUERY_AGE = 3.0  # seconds the fault waits, so its queries are long when it returns
HOLDER_MARKER = "runbook-lab-pg-holder"

# The leaking client: connects as the API's user until refused (or `limit` times), says how many
# it holds, then sleeps holding them: idle, as a pool that never gives connections back, or
# each running one hour-long query (argv[6] "query", seed 004's long-running queries; a
# cancelled one leaves its session idle). Its password comes in the environment, never on its
# command line.
HOLDER = """
import os, signal, sys, threading
import psycopg2
port, limit, what = int(sys.argv[1]), int(sys.argv[3]), sys.argv[6]
held = []
for _ in range(limit):
    try:
        held.append(psycopg2.connect(host="127.0.0.1", port=port, dbname=sys.argv[4], user=sys.argv[5],
                                     password=os.environ["PGPASSWORD"], connect_timeout=5,
                                     application_name="causal-eval-leaky-pool"))
    except psycopg2.OperationalError:
        break

def query(conn):
    try:
        conn.cursor().execute("SELECT pg_sleep(3600)")
    except psycopg2.Error:
        pass

if what == "query":
    for conn in held:
        threading.Thread(target=query, args=(conn,), daemon=True).start()
print(len(held), flush=True)
while True:
    signal.pause()
"""


class Postgres:
    """The profile's server, seen from the lab: its files, passwords and connections."""

    def __init__(self, directory: Path, port: int):
        self.directory = directory
        self.port = port

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def admin_password_file(self) -> Path:
        return self.directory / "admin-password"

    @property
    def env_file(self) -> Path:
        """PGUSER and PGPW for the image's runbook-postgres (initdb's superuser)."""
        return self.directory / "server.env"

    def _secret(self, name: str) -> str:
        path = self.directory / name
        if not path.is_file():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(18))
        return path.read_text(encoding="utf-8").strip()

    @property
    def admin_password(self) -> str:
        return self._secret("admin-password")

    @property
    def app_password(self) -> str:
        return self._secret("app-password")

    def write_files(self) -> None:
        """The passwords (once) and the server's environment file; the data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        text = f"PGUSER={ADMIN}\nPGPW={self.admin_password}\n"
        if not self.env_file.is_file() or self.env_file.read_text(encoding="utf-8") != text:
            fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)

    def connect(self, dbname: str = DATABASE, app: bool = False, timeout: int = 3):
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, dbname=dbname,
                                user=APP_USER if app else ADMIN,
                                password=self.app_password if app else self.admin_password,
                                connect_timeout=timeout, application_name="runbook-lab")
        conn.autocommit = True
        return conn

    def execute(self, sql: str, params=None, dbname: str = DATABASE) -> list[tuple]:
        with contextlib.closing(self.connect(dbname)) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("SELECT 1", dbname="postgres")
                return
            except Exception as exc:  # noqa: BLE001 - starting: any connection error means "not yet"
                if time.monotonic() > deadline:
                    raise Unavailable(f"the lab's PostgreSQL on 127.0.0.1:{self.port} is not answering: "
                                      f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
                time.sleep(0.25)

    def set_up(self, reset: bool = False) -> bool:
        """The API's role, database, table and index (and amcheck), as the drill expects them;
        with ``reset``, the table made again (a corrupt index gone, the rows as new). Returns
        True when the database was made."""
        from psycopg2 import sql

        made = False
        with contextlib.closing(self.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(APP_USER)),
                        (self.app_password,))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if not cur.fetchone():
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE),
                                                                          sql.Identifier(APP_USER)))
                made = True
        table, index, owner = sql.Identifier(TABLE), sql.Identifier(INDEX), sql.Identifier(APP_USER)
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            if reset:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id int PRIMARY KEY, model text NOT NULL, score float)")
                        .format(table))
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            if cur.fetchone()[0] == 0:
                cur.execute(sql.SQL("INSERT INTO {} SELECT g, 'model-' || (g %% 97) || '-' || g, random() "
                                    "FROM generate_series(1, %s) g").format(table), (ROWS,))
            cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (model)").format(index, table))
            cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, owner))
        return made

    def terminate_app_sessions(self) -> None:
        self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (APP_USER,),
                     dbname="postgres")

    def healthy(self) -> bool:
        """The API can connect (a slot is free) and the index passes amcheck."""
        try:
            with contextlib.closing(self.connect(app=True, timeout=2)) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
            self.execute("SELECT bt_index_check(%s::regclass, true)", (INDEX,))
            return True
        except Exception:  # noqa: BLE001 - refused, corrupt, unreachable: not healthy
            return False

    def index_path(self) -> Path:
        """The index's file on the lab's side of the data directory's mount."""
        relative = self.execute("SELECT pg_relation_filepath(%s)", (INDEX,))[0][0]
        return self.data_dir / relative

    # --- the leaking client ----------------------------------------------------------------
    def hold_connections(self, lab_name: str, timeout: float = 30.0, limit: int = MAX_CONNECTIONS,
                         queries: bool = False) -> tuple[int, int]:
        """Start the leaking client (with ``queries``, each of its sessions runs a long query);
        (its pid, the connections it holds) once it holds them."""
        env = {**os.environ, "PGPASSWORD": self.app_password}
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(self.port), f"{HOLDER_MARKER}={lab_name}", str(limit),
             DATABASE, APP_USER, "query" if queries else "idle"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True, text=True,
        )
        deadline = time.monotonic() + timeout
        line = ""
        while not line and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline().strip()
        if not line.isdigit():
            process.kill()
            process.wait()
            raise Unavailable("the leaking client did not connect to the lab's PostgreSQL")
        return process.pid, int(line)

    def long_queries(self, older_than: float) -> int:
        """Queries of the API's user running for longer than ``older_than`` seconds."""
        return self.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state = 'active' "
                            "AND now() - query_start > make_interval(secs => %s)", (APP_USER, older_than),
                            dbname="postgres")[0][0]


def stop_holder(pid: int | None, lab_name: str) -> bool:
    """Stop the leaking client (its pid checked against its command line: PID reuse)."""
    from runbook_remediation.lab.monitoring import stop_process

    if not pid:
        return False
    return stop_process(pid, f"{HOLDER_MARKER}={lab_name}", timeout=5.0)


def scribble(path: Path) -> None:
    """300 bytes of page 2 of the file overwritten (the server must be stopped)."""
    with open(path, "r+b") as handle:
        handle.seek(8192 * 2 + 1000)
        handle.write(b"\xff" * 300)


def description(port: int, compose_dir: Path, compose_project: str) -> dict:
    """The profile's PostgreSQL as a service of the Compose host: restarted like any Compose
    service; its database is what db-connection-pool and db-index-corruption act on, logged
    into as the lab's admin (the password read from its file, never written here)."""
    password_file = compose_dir.parent / "postgres" / "admin-password"
    return {
        "name": SERVICE,
        "manager": "compose",
        "container": f"{compose_project}-{SERVICE}-1",
        "project_src": str(compose_dir),
        "project": compose_project,
        "compose_service": SERVICE,
        "health_url": f"tcp://127.0.0.1:{port}",
        "database": {
            "type": "postgresql", "name": DATABASE, "host": "127.0.0.1", "port": port, "user": ADMIN,
            # The path as a JSON string, which is also a Jinja string literal: a quote or a
            # brace in the state directory's path stays part of the path, never code.
            "password": "{{ lookup('ansible.builtin.file', " + json.dumps(str(password_file)) + ") }}",
        },
    }


def compose_service(image: str, port: int, directory: Path, labels: dict) -> dict:
    return {
        "image": image,
        "command": ["runbook-postgres", str(port), "-c", f"max_connections={MAX_CONNECTIONS}"],
        "network_mode": "host",
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
        "stop_signal": "SIGINT",
        "stop_grace_period": "10s",
        "env_file": [str(directory / "server.env")],
        "volumes": [f"{directory / 'data'}:{DATA_MOUNT}"],
        "labels": labels,
    }
