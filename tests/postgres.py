"""A throwaway PostgreSQL 15 cluster on 127.0.0.1 for tests (real server, free port).

initdb refuses root, so the cluster belongs to the system ``postgres`` user; its
directory lives under a temp dir that user can enter. Tests connect over TCP as the
superuser ``runbook_admin`` (password auth) and make their own roles and databases.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("RUNBOOK_PG_BIN", "/usr/lib/postgresql/15/bin"))
ADMIN = "runbook_admin"
ADMIN_PASSWORD = "admin-s3cret-not-logged"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Postgres:
    """A running cluster: connection facts and a superuser connection factory."""

    port: int
    data_dir: Path
    socket_dir: Path
    host: str = "127.0.0.1"
    user: str = ADMIN
    password: str = ADMIN_PASSWORD

    def connect(self, dbname: str = "postgres", user: str | None = None, password: str | None = None,
                application_name: str = "runbook-tests"):
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, dbname=dbname, user=user or self.user,
                                password=password if password is not None else self.password,
                                application_name=application_name, connect_timeout=5)
        conn.autocommit = True
        return conn

    def execute(self, sql: str, dbname: str = "postgres", params=None) -> list[tuple]:
        """Run one statement as the superuser; rows if it returns any."""
        with contextlib.closing(self.connect(dbname)) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def bin(self, name: str) -> str:
        return str(PG_BIN / name)


def _as_postgres(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                          check=True, **kwargs)


@contextlib.contextmanager
def running_cluster(max_connections: int = 100):
    """Start a fresh cluster; stop it and remove its files on exit."""
    if not (PG_BIN / "initdb").is_file():
        raise RuntimeError(f"PostgreSQL 15 not found in {PG_BIN} (scripts/bootstrap installs it)")
    base = Path(tempfile.mkdtemp(prefix="runbook-pg-"))
    shutil.chown(base, "postgres", "postgres")
    base.chmod(0o700)
    data, sockets = base / "data", base / "sock"
    pwfile = base / "pw"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()
    try:
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", ADMIN, "--pwfile", str(pwfile),
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
        pwfile.unlink()
        sockets.mkdir()
        shutil.chown(sockets, "postgres", "postgres")
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c max_connections={max_connections} "
                   "-c fsync=off -c full_page_writes=off")
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options, "-w", "start"])
        yield Postgres(port=port, data_dir=data, socket_dir=sockets)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data),
                            "-m", "immediate", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def restart(cluster: Postgres, while_stopped=None) -> None:
    """Stop the cluster (fast), call ``while_stopped()`` (a corrupted file is read from disk
    afterwards, not from shared buffers), start it again with the options it ran with."""
    import shlex

    argv = shlex.split((cluster.data_dir / "postmaster.opts").read_text(encoding="utf-8"))[1:]
    options = []
    skip = False
    for word in argv:  # everything but -D DIR, which pg_ctl gives itself
        if skip:
            skip = False
        elif word == "-D":
            skip = True
        else:
            options.append(word)
    _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "fast", "-w", "stop"])
    if while_stopped is not None:
        while_stopped()
    _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "-l", str(cluster.data_dir.parent / "log"),
                  "-o", " ".join(shlex.quote(word) for word in options), "-w", "start"])


# A PostgreSQL 15 server as a Docker service (seed 004's database runs in a container): the
# lab's postgres image and its start command (runbook.lab.image.POSTGRES_START), host network,
# a free port on 127.0.0.1, the data directory in the container (a restart keeps it).
@contextlib.contextmanager
def running_container(client, image: str, name: str, server_args: tuple[str, ...] = ()):
    """A PostgreSQL container (``docker`` SDK client) answering on a free port; removed on exit.
    ``server_args`` go on the server's command line (``-c max_connections=40``)."""
    port = free_port()
    container = client.containers.run(image, ["runbook-postgres", str(port), *server_args], name=name, detach=True,
                                      network_mode="host", environment={"PGUSER": ADMIN, "PGPW": ADMIN_PASSWORD},
                                      stop_signal="SIGINT")
    try:
        server = Postgres(port=port, data_dir=Path("/var/lib/runbook-pg"), socket_dir=Path("/tmp"))
        deadline = time.monotonic() + 60
        while True:
            try:
                server.execute("SELECT 1")
                break
            except Exception:  # noqa: BLE001 - starting up: any connection error means "not yet"
                container.reload()
                if container.status != "running" or time.monotonic() > deadline:
                    logs = container.logs(tail=5).decode(errors="replace").strip()
                    raise RuntimeError(f"PostgreSQL container {name} is not answering ({container.status}): {logs}") \
                        from None
                time.sleep(0.25)
        yield container, server
    finally:
        container.remove(force=True)
