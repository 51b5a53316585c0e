"""redis-memory and redis-flush against real Redis servers (Debian's redis-server on
127.0.0.1, a free port each): a Redis at maxmemory under noeviction refuses writes ->
maxmemory raised within the ceiling, kept in its config file (a new server started from
that file has it), writes accepted again, a second run has nothing to do; an evicting
Redis is reported, not raised; bad sizes and an unreachable Redis change nothing; a flush
needs confirmation, empties only the database asked for, and the password stays out of
every record. The host running the tasks is this machine (local connection)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import redis
import yaml

from tests.conftest import run_json, runbook, wait_for
from tests.postgres import free_port
from tests.redis import running_redis

pytestmark = pytest.mark.lab

MIB = 1024 * 1024
FULL = ("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
SECRET = "redis-pass-not-for-records-9c2d"  # the test's own seeded secret


def inventory(tmp_path: Path, port: int, **redis_extra) -> Path:
    service = {"name": "cache", "manager": "systemd", "unit": "redis-server.service",
               "health_url": f"redis://127.0.0.1:{port}", "redis": {"ceiling": "16M", **redis_extra}}
    if "password" in redis_extra:
        service["redis_password"] = service["redis"].pop("password")
    path = tmp_path / f"inventory-{port}.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"cache-host": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "runbook_services": [service]}}}}), encoding="utf-8")
    return path


def fill(client: redis.Redis) -> int:
    """Write 1 KiB values until Redis refuses (noeviction) or 4000 were written; how many it took."""
    for index in range(4000):
        try:
            client.set(f"item:{index}", "x" * 1024)
        except redis.exceptions.ResponseError as exc:
            assert "command not allowed when used memory" in str(exc)  # the OOM error
            return index
    return 4000


def run(scenario: str, inv: Path, *args: str, extra: dict | None = None) -> tuple[int, dict]:
    code, payload = run_json("run", scenario, "-i", str(inv), "-l", "cache-host", "--service", "cache", *args,
                             extra=extra)
    return code, payload["hosts"].get("cache-host", payload)


def test_a_full_redis_gets_more_maxmemory_kept_in_its_config_file(tmp_path):
    config = tmp_path / "redis.conf"
    config.write_text("# the service's own file\nmaxmemory 2mb\nmaxmemory-policy noeviction\n", encoding="utf-8")
    with running_redis(*FULL) as server:
        client = redis.Redis(port=server.port)
        fill(client)
        with pytest.raises(redis.exceptions.ResponseError, match="command not allowed when used memory"):
            client.set("one-more", "x" * 1024)
        inv = inventory(tmp_path, server.port, config_file=str(config))

        code, result = run("redis-memory", inv, "--check")
        assert code == 0, result
        assert result["outcome"] == "planned", result
        assert result["message"] == "planned: would raise maxmemory of cache from 2 MiB to 4 MiB"
        assert result["evidence"]["refusing_writes"] is True and result["evidence"]["oom_errors"] >= 1
        assert client.config_get("maxmemory")["maxmemory"] == str(2 * MIB)

        code, result = run("redis-memory", inv)
        assert code == 0, result
        assert result["outcome"] == "remediated", result
        assert result["message"].startswith(
            f"remediated: maxmemory of cache raised from 2 MiB to 4 MiB and kept in {config}"
        )
        assert client.config_get("maxmemory")["maxmemory"] == str(4 * MIB)
        client.set("one-more", "x" * 1024)  # writes are accepted again
        text = config.read_text(encoding="utf-8")
        assert f"maxmemory {4 * MIB}\n" in text and "maxmemory 2mb" not in text
        assert text.startswith("# the service's own file\n")  # the rest of the file is kept

        code, result = run("redis-memory", inv)
        assert code == 4, result  # below the threshold now: nothing to do
        assert client.config_get("maxmemory")["maxmemory"] == str(4 * MIB)

    # The file is Redis's own: a server started from it has the new maxmemory.
    port = free_port()
    started = subprocess.Popen(["redis-server", str(config), "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        again = redis.Redis(port=port, socket_connect_timeout=1)

        def maxmemory() -> str | None:
            assert started.poll() is None, "redis-server refused the written config file"
            try:
                return again.config_get("maxmemory")["maxmemory"]
            except redis.exceptions.ConnectionError:
                return None

        assert wait_for(maxmemory, timeout=10, what="redis-server from the written config") == str(4 * MIB)
    finally:
        started.terminate()
        started.wait(timeout=10)


def test_an_evicting_redis_is_reported_not_raised(tmp_path):
    with running_redis("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru") as server:
        client = redis.Redis(port=server.port)
        assert fill(client) == 4000  # it evicts: every write was accepted
        code, result = run("redis-memory", inventory(tmp_path, server.port))
        assert code == 4, result
        assert "full but evicting under allkeys-lru: writes are accepted" in result["message"], result
        assert client.config_get("maxmemory")["maxmemory"] == str(2 * MIB)


@pytest.mark.parametrize(
    ("extra", "redis_extra", "words"),
    [
        ({"redis_memory_to": "1G"}, {}, "the maxmemory asked for, 1024 MiB, is above the ceiling of 16 MiB"),
        ({"redis_memory_to": "lots"}, {}, "redis_memory_to must be a size such as 512M"),
        ({}, {"config_file": "redis.conf"}, "redis.config_file must be an absolute path"),
        ({"redis_memory_to": "1M"}, {}, "is not above the current 2.0 MiB"),
    ],
    ids=["above-ceiling", "not-a-size", "relative-config", "not-a-raise"],
)
def test_bad_requests_change_nothing(tmp_path, extra, redis_extra, words):
    with running_redis(*FULL) as server:
        client = redis.Redis(port=server.port)
        fill(client)
        code, result = run("redis-memory", inventory(tmp_path, server.port, **redis_extra), extra=extra)
        assert code == 2, result
        assert words in result["message"], result["message"]
        assert client.config_get("maxmemory")["maxmemory"] == str(2 * MIB)


def test_an_unreachable_redis_is_unavailable(tmp_path):
    code, result = run("redis-memory", inventory(tmp_path, free_port()))
    assert code == 5, result
    assert result["message"].startswith("unavailable: cannot read INFO from Redis at 127.0.0.1:"), result


def test_a_flush_needs_confirmation_and_empties_only_the_database_asked_for(tmp_path):
    with running_redis("--requirepass", SECRET) as server:
        cache = redis.Redis(port=server.port, password=SECRET, db=0)
        kept = redis.Redis(port=server.port, password=SECRET, db=1)
        for index in range(50):
            cache.set(f"c:{index}", "x")
        kept.set("session:1", "keep me")
        inv = inventory(tmp_path, server.port, password=SECRET)

        refused = runbook("run", "redis-flush", "-i", str(inv), "-l", "cache-host", "--service", "cache")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "redis-flush is destructive" in refused.stderr
        assert cache.dbsize() == 50

        code, result = run("redis-flush", inv, "--check")
        assert code == 0 and result["outcome"] == "planned", result
        assert result["message"] == "planned: would flush database 0 of cache (50 keys)"
        assert cache.dbsize() == 50

        code, result = run("redis-flush", inv, "--yes")
        assert code == 0, result
        assert result["outcome"] == "remediated", result
        assert result["actions"] == ["flushed database 0 of cache (50 keys)"]
        assert cache.dbsize() == 0
        assert kept.get("session:1") == b"keep me"  # another database is not touched

        code, result = run("redis-flush", inv, "--yes")
        assert code == 4, result  # nothing left to flush

    state = Path(os.environ["RUNBOOK_STATE_DIR"])
    leaked = [str(p) for p in state.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == [], leaked
