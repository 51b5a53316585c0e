"""db-max-connections against a real PostgreSQL 15 server running as a Docker service (the
lab's postgres image, host network, a free port): max_connections raised with ALTER SYSTEM,
the container restarted through service_restart, the new value read back; a second run has
nothing to do; check mode and a request above the ceiling change nothing; a value set on
the server's command line (a Compose `command: -c max_connections=...`) escalates untouched;
without confirmation nothing happens; the password stays out of every record."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_json, runbook
from tests.postgres import running_container

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def pg_image():
    import docker

    from runbook_remediation.lab.image import build_postgres_image

    client = docker.from_env()
    return client, build_postgres_image(client)


@pytest.fixture
def server(pg_image, request):
    client, image = pg_image
    args = request.param if hasattr(request, "param") else ()
    with running_container(client, image, f"runbook-pgmax-{uuid.uuid4().hex[:8]}", args) as (container, pg):
        yield container, pg


def inventory(tmp_path: Path, container, pg, **database) -> Path:
    """The server is its own service (`postgres`, Docker); the app `shop` names it as its server."""
    services = [
        {"name": "postgres", "manager": "docker", "container": container.name,
         "health_url": f"postgresql://127.0.0.1:{pg.port}"},
        {"name": "shop", "manager": "docker", "container": container.name, "health_url": f"tcp://127.0.0.1:{pg.port}",
         "database": {"type": "postgresql", "name": "postgres", "host": "127.0.0.1", "port": pg.port,
                      "user": pg.user, "password": pg.password, "service": "postgres", **database}},
    ]
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"db-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": services}}}}), encoding="utf-8")
    return path


def run(inv: Path, *args: str, extra: dict | None = None) -> tuple[int, dict]:
    code, payload = run_json("run", "db-max-connections", "-i", str(inv), "-l", "db-host", "--service", "shop", *args,
                             extra=extra)
    return code, payload["hosts"].get("db-host", payload)


def started_at(container) -> str:
    container.reload()
    return container.attrs["State"]["StartedAt"]


def altered(pg) -> list[str]:
    """What ALTER SYSTEM wrote for max_connections (postgresql.auto.conf)."""
    return [row[0] for row in pg.execute("SELECT setting FROM pg_file_settings WHERE name = 'max_connections' "
                                         "AND sourcefile LIKE '%/postgresql.auto.conf'")]


def max_connections(pg) -> int:
    return int(pg.execute("SHOW max_connections")[0][0])


def test_max_connections_is_raised_and_the_server_restarted_once(server, tmp_path):
    container, pg = server
    inv = inventory(tmp_path, container, pg)
    before = started_at(container)
    assert max_connections(pg) == 100

    code, result = run(inv, "--check", "--yes", extra={"db_max_connections_to": 150})
    assert (code, result["outcome"]) == (0, "planned"), result
    assert "would raise max_connections of the server of shop from 100 to 150" in result["message"]
    assert started_at(container) == before and max_connections(pg) == 100
    assert altered(pg) == []

    code, result = run(inv, "--yes", extra={"db_max_connections_to": 150})
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert max_connections(pg) == 150 and altered(pg) == ["150"]
    assert started_at(container) != before  # restarted through service_restart
    assert result["verification"]["applied"] is True
    assert any("ALTER SYSTEM" in action for action in result["actions"])
    assert result["evidence"]["source"] == "configuration file" and result["evidence"]["server_service"] == "postgres"

    after = started_at(container)
    code, result = run(inv, "--yes", extra={"db_max_connections_to": 150})
    assert (code, result["outcome"]) == (4, "healthy"), result
    assert started_at(container) == after  # nothing to do: no second restart


def test_without_a_value_it_raises_by_the_factor_only_when_the_slots_run_out(server, tmp_path):
    container, pg = server
    inv = inventory(tmp_path, container, pg, max_connections_ceiling=120)
    before = started_at(container)
    code, result = run(inv, "--yes")
    assert (code, result["outcome"]) == (4, "healthy"), result
    assert "under 80%" in result["message"] and started_at(container) == before

    # Forced: 100 x 1.5 = 150, capped at the description's ceiling of 120.
    code, result = run(inv, "--yes", extra={"db_max_connections_force": True})
    assert (code, result["outcome"]) == (0, "remediated"), result
    assert max_connections(pg) == 120

    code, result = run(inv, "--yes", extra={"db_max_connections_force": True})
    assert (code, result["outcome"]) == (3, "escalate"), result
    assert "at its ceiling of 120" in result["message"] and max_connections(pg) == 120


@pytest.mark.parametrize("server", [("-c", "max_connections=40")], indirect=True)
def test_a_value_on_the_servers_command_line_escalates_untouched(server, tmp_path):
    container, pg = server
    inv = inventory(tmp_path, container, pg)
    before = started_at(container)
    code, result = run(inv, "--yes", extra={"db_max_connections_to": 60})
    assert (code, result["outcome"]) == (3, "escalate"), result
    assert "set by its command line" in result["message"]
    assert max_connections(pg) == 40 and started_at(container) == before
    assert altered(pg) == []


@pytest.mark.parametrize(("extra", "words"), [
    ({"db_max_connections_to": 900}, "above the ceiling of 500"),
    ({"db_max_connections_to": "lots"}, "db_max_connections_to must be a whole number of connections"),
    ({"db_max_connections_to": 200, "db_max_connections_factor": 0.5}, "db_max_connections_factor must be more than 1"),
])
def test_bad_requests_change_nothing(server, tmp_path, extra, words):
    container, pg = server
    inv = inventory(tmp_path, container, pg)
    before = started_at(container)
    code, payload = run_json("run", "db-max-connections", "-i", str(inv), "-l", "db-host", "--service", "shop",
                             "--yes", extra=extra)
    assert code == 2, payload
    assert words in str(payload)
    assert max_connections(pg) == 100 and started_at(container) == before


def test_without_confirmation_nothing_is_touched(server, tmp_path):
    container, pg = server
    inv = inventory(tmp_path, container, pg)
    before = started_at(container)
    refused = runbook("run", "db-max-connections", "-i", str(inv), "-l", "db-host", "--service", "shop",
                      "-e", "db_max_connections_to=150")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "db-max-connections is destructive" in refused.stderr
    assert max_connections(pg) == 100 and started_at(container) == before


def test_the_password_stays_out_of_every_record(server, tmp_path):
    container, pg = server
    inv = inventory(tmp_path, container, pg)
    done = runbook("-o", "json", "-v", "run", "db-max-connections", "-i", str(inv), "-l", "db-host",
                   "--service", "shop", "--yes", "-e", "db_max_connections_to=110")
    assert done.returncode == 0, done.stdout + done.stderr
    assert max_connections(pg) == 110
    assert pg.password not in done.stdout + done.stderr
    state = Path(os.environ["RUNBOOK_STATE_DIR"])
    leaked = [str(path) for path in state.rglob("*") if path.is_file() and pg.password.encode() in path.read_bytes()]
    assert leaked == []
