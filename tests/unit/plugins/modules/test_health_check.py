from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _health
from ansible_collections.runbook.remediation.plugins.modules import health_check

HEALTHY = {"status": "healthy", "components": [{"name": "db", "status": "healthy"}]}
DEGRADED = {"status": "degraded", "components": [{"name": "db", "status": "down"}, {"name": "cache", "status": "ok"}]}
ALL_HEALTHY = "components[?status!='healthy'] | length(@) == `0`"


@pytest.fixture
def run(run_module):
    def _run(**args):
        args.setdefault("delay", 0.01)
        args.setdefault("stable_interval", 0.01)
        return run_module(health_check.main, args)

    return _run


def route(server, *replies, path="/health"):
    server.routes[("GET", path)] = [server.Reply(status, body) for status, body in replies]
    return server.url + path


def test_healthy_endpoint(run, http_server):
    url = route(http_server, (200, HEALTHY))
    result = run(url=url)
    assert not result.failed, result.msg
    assert result["changed"] is False
    assert result["healthy"] is True
    assert result["attempts"] == 1
    endpoint = result["endpoints"][0]
    assert endpoint["url"] == url
    assert endpoint["status"] == 200
    assert endpoint["healthy"] is True
    assert endpoint["error"] is None
    assert endpoint["failing_components"] == []
    assert endpoint["body"] == HEALTHY
    assert endpoint["latency_ms"] >= 0
    probe = result["probes"][0]
    assert set(probe) == {"time", "url", "status", "latency_ms", "healthy", "error"}
    assert probe["time"].endswith("+00:00")
    assert result["elapsed"] >= 0
    assert result.msg == "1 of 1 endpoints healthy after 1 attempt"


def test_unhealthy_fails_with_actionable_message(run, http_server):
    url = route(http_server, (503, DEGRADED))
    result = run(url=url)
    assert result.failed
    assert result.msg == (
        f"health_check: endpoint did not become healthy (0 of 1 endpoints healthy after 1 attempt): "
        f"{url}: HTTP status 503, expected 200; failing components: db (down), cache (ok)"
    )
    assert result["healthy"] is False
    assert result["endpoints"][0]["failing_components"] == [
        {"name": "db", "status": "down"}, {"name": "cache", "status": "ok"}]


def test_fail_on_unhealthy_false_only_reports(run, http_server):
    result = run(url=route(http_server, (503, DEGRADED)), fail_on_unhealthy=False)
    assert not result.failed
    assert result["healthy"] is False
    assert result["changed"] is False


def test_components_are_reported_but_not_decisive(run, http_server):
    result = run(url=route(http_server, (200, DEGRADED)))
    assert not result.failed
    assert result["endpoints"][0]["failing_components"][0] == {"name": "db", "status": "down"}


def test_jmespath_makes_components_decisive(run, http_server):
    result = run(url=route(http_server, (200, DEGRADED)), jmespath=ALL_HEALTHY)
    assert result.failed
    assert "jmespath expression" in result.msg
    assert "db (down)" in result.msg


def test_jmespath_true_is_healthy(run, http_server):
    result = run(url=route(http_server, (200, HEALTHY)), jmespath=ALL_HEALTHY)
    assert not result.failed, result.msg
    assert result["healthy"] is True


def test_spring_style_components(run, http_server):
    body = {"status": "DOWN", "components": {"db": {"status": "DOWN"}, "diskSpace": {"status": "UP"}}}
    result = run(url=route(http_server, (200, body)), healthy_statuses=["UP"], jmespath="status == 'UP'",
                 fail_on_unhealthy=False)
    assert result["endpoints"][0]["failing_components"] == [{"name": "db", "status": "DOWN"}]
    assert result["healthy"] is False


def test_invalid_jmespath(run, http_server):
    result = run(url=route(http_server, (200, HEALTHY)), jmespath="components[?")
    assert result.failed
    assert result.msg.startswith("health_check: invalid jmespath expression 'components[?': ")
    assert http_server.requests == []  # failed before probing


def test_missing_jmespath_library(run, http_server, monkeypatch):
    monkeypatch.setattr(_health, "HAS_JMESPATH", False)
    result = run(url=route(http_server, (200, HEALTHY)), jmespath="status")
    assert result.failed
    assert "jmespath" in result.msg
    assert "Failed to import" in result.msg


def test_without_jmespath_option_the_library_is_not_needed(run, http_server, monkeypatch):
    monkeypatch.setattr(_health, "HAS_JMESPATH", False)
    assert not run(url=route(http_server, (200, HEALTHY))).failed


def test_waits_until_healthy(run, http_server):
    url = route(http_server, (503, DEGRADED), (502, "bad gateway"), (200, HEALTHY))
    result = run(url=url, retries=5)
    assert not result.failed, result.msg
    assert result["attempts"] == 3
    assert [p["status"] for p in result["probes"]] == [503, 502, 200]
    assert [p["healthy"] for p in result["probes"]] == [False, False, True]


def test_gives_up_when_retries_run_out(run, http_server):
    result = run(url=route(http_server, (503, DEGRADED)), retries=2)
    assert result.failed
    assert result["attempts"] == 3
    assert "after 3 attempts" in result.msg


def test_stabilization_needs_consecutive_good_probes(run, http_server):
    url = route(http_server, (200, HEALTHY), (503, DEGRADED), (200, HEALTHY), (200, HEALTHY), (200, HEALTHY))
    result = run(url=url, stable_probes=3, retries=1)
    assert not result.failed, result.msg
    assert result["attempts"] == 5


def test_stabilization_failure_resets_and_gives_up(run, http_server):
    url = route(http_server, (200, HEALTHY), (503, DEGRADED), (200, HEALTHY))
    result = run(url=url, stable_probes=3, retries=0)
    assert result.failed
    assert result["attempts"] == 2
    assert "did not stay healthy for 3 consecutive probes" in result.msg


def test_connection_refused_is_unhealthy_not_a_crash(run, closed_port_url):
    result = run(url=closed_port_url + "/health", fail_on_unhealthy=False)
    assert not result.failed
    endpoint = result["endpoints"][0]
    assert endpoint["status"] is None
    assert endpoint["error"] == "connection refused"
    assert endpoint["healthy"] is False


def test_timeout_is_reported(run, http_server):
    http_server.routes[("GET", "/slow")] = http_server.Reply(200, HEALTHY, delay=1)
    result = run(url=http_server.url + "/slow", timeout=0.2)
    assert result.failed
    assert result["endpoints"][0]["error"] == "no response within 0.2s"


def test_expect_any_never_fails(run, closed_port_url, http_server):
    result = run(urls=[closed_port_url, route(http_server, (503, DEGRADED))], expect="any", retries=5)
    assert not result.failed
    assert result["healthy"] is False
    assert result["attempts"] == 1


def test_expect_unhealthy(run, closed_port_url):
    result = run(url=closed_port_url, expect="unhealthy")
    assert not result.failed
    assert result["healthy"] is False


def test_expect_unhealthy_fails_when_healthy(run, http_server):
    url = route(http_server, (200, HEALTHY))
    result = run(url=url, expect="unhealthy")
    assert result.failed
    assert result.msg == (
        f"health_check: expected unhealthy, but still healthy (1 of 1 endpoints healthy after 1 attempt): {url}")


def test_expect_unhealthy_waits_for_the_outage(run, http_server):
    result = run(url=route(http_server, (200, HEALTHY), (503, DEGRADED)), expect="unhealthy", retries=3)
    assert not result.failed
    assert result["attempts"] == 2


def test_several_urls_must_all_be_healthy(run, http_server):
    good = route(http_server, (200, HEALTHY), path="/a")
    bad = route(http_server, (500, "boom"), path="/b")
    result = run(urls=[good, bad])
    assert result.failed
    assert [e["healthy"] for e in result["endpoints"]] == [True, False]
    assert result["endpoints"][1]["body"] is None
    assert f"{bad}: HTTP status 500, expected 200" in result.msg
    assert good not in result.msg
    assert len(result["probes"]) == 2


def test_status_code_list(run, http_server):
    result = run(url=route(http_server, (503, "maintenance")), status_code=[200, 503])
    assert not result.failed


def test_bearer_token_is_sent(run, http_server):
    run(url=route(http_server, (200, HEALTHY)), bearer_token="t0ken")
    assert http_server.requests[0].headers["Authorization"] == "Bearer t0ken"


def test_check_mode_still_probes(run, http_server):
    result = run(url=route(http_server, (200, HEALTHY)), _ansible_check_mode=True)
    assert not result.failed
    assert len(http_server.requests) == 1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("xyz", "it is not an http(s), tcp, redis or postgresql URL with a host"),
        ("ftp://host/health", "it is not an http(s), tcp, redis or postgresql URL with a host"),
        ("127.0.0.1:8080/health", "it is not an http(s), tcp, redis or postgresql URL with a host"),
        ("tcp://127.0.0.1", "a tcp probe URL needs a port (tcp://HOST:PORT)"),
        ("redis://:s3cret@127.0.0.1:6379", "a redis probe URL must not carry credentials (it is echoed in results)"),
        ("postgresql://app:pw@127.0.0.1/db", "a postgresql probe URL must not carry credentials"),
        ("tcp://127.0.0.1:99999", "it is not a URL (Port out of range 0-65535)"),
    ],
)
def test_rejects_urls_it_cannot_probe(run, url, reason):
    result = run(url=url)
    assert result.failed
    shown = url.replace(":s3cret", "***").replace("app:pw", "***")  # credentials never echoed
    assert result.msg.startswith(f"health_check: cannot probe '{shown}': {reason}"), result.msg
    assert "s3cret" not in result.msg and ":pw@" not in result.msg


# --- data stores probed over a socket: real servers (tests/redis.py, tests/postgres.py) ---------


def closed_port() -> int:
    from tests.postgres import free_port

    return free_port()


def test_tcp_probe_a_listening_port_and_a_closed_one(run, http_server):
    result = run(urls=[f"tcp://127.0.0.1:{http_server.port}", f"tcp://127.0.0.1:{closed_port()}"], expect="any")
    up, down = result["endpoints"]
    assert up["healthy"] is True and up["status"] is None and up["error"] is None
    assert down["healthy"] is False and down["error"].startswith("connection failed: "), down
    assert not result.failed and result.msg == "1 of 2 endpoints healthy after 1 attempt"


def test_redis_probe_a_real_server_with_and_without_a_password():
    from tests.redis import running_redis

    client = type("Client", (), {"timeout": 3})()
    with running_redis() as plain, running_redis("--requirepass", "pw-not-echoed") as guarded:
        assert _health.probe(client, plain.url)["healthy"] is True
        # -NOAUTH: the server answers and wants a password; it is up.
        assert guarded.command("PING").startswith("-NOAUTH")
        assert _health.probe(client, guarded.url)["healthy"] is True
        url = plain.url
    gone = _health.probe(client, url)
    assert gone["healthy"] is False and gone["error"].startswith("connection failed: "), gone


def test_redis_probe_a_server_that_does_not_answer_ping_is_unhealthy():
    # A TCP listener that answers something else (an HTTP server) is not a Redis server.
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = _health.probe(type("Client", (), {"timeout": 3})(), f"redis://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert endpoint["healthy"] is False and endpoint["error"].startswith("redis answered PING with "), endpoint


def test_postgresql_probe_a_real_server(postgres):
    client = type("Client", (), {"timeout": 3})()
    endpoint = _health.probe(client, f"postgresql://127.0.0.1:{postgres.port}")
    assert endpoint["healthy"] is True and endpoint["error"] is None, endpoint
    assert endpoint["url"] == f"postgresql://127.0.0.1:{postgres.port}"
    down = _health.probe(client, f"postgresql://127.0.0.1:{closed_port()}")
    assert down["healthy"] is False and down["error"].startswith("connection failed: "), down


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({}, "one of the following is required: url, urls"),
        ({"url": "http://a", "urls": ["http://b"]}, "parameters are mutually exclusive: url|urls"),
        ({"url": "http://a", "expect": "maybe"}, "value of expect must be one of"),
        ({"url": "http://a", "bearer_token": "t", "url_username": "u", "url_password": "p"},
         "mutually exclusive: bearer_token|url_username"),
        ({"url": "http://a", "url_username": "u"}, "parameters are required together: url_username, url_password"),
        ({"url": "http://a", "retries": -1}, "retries must be 0 or more"),
        ({"url": "http://a", "stable_probes": 0}, "stable_probes must be 1 or more"),
        ({"url": "http://a", "timeout": 0}, "timeout must be more than 0"),
        ({"url": "http://a", "delay": -1}, "delay must not be negative"),
        ({"url": "http://a", "status_code": []}, "status_code must list at least one code"),
        ({"urls": []}, "urls must not be empty"),
    ],
)
def test_argument_validation(run_module, args, fragment):
    result = run_module(health_check.main, args)
    assert result.failed
    assert fragment in result.msg


def test_postgresql_probe_a_server_shutting_down_is_not_ready():
    """A smart shutdown waits for the open session and refuses new ones with SQLSTATE
    57P03: the probe says not ready, as pg_isready does."""
    import subprocess

    from tests.postgres import PG_BIN, running_cluster

    client = type("Client", (), {"timeout": 3})()
    with running_cluster() as cluster:
        session = cluster.connect()
        try:
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir),
                            "-m", "smart", "-W", "stop"], check=True, capture_output=True)
            endpoint = _health.probe(client, f"postgresql://127.0.0.1:{cluster.port}")
        finally:
            session.close()
    assert endpoint["healthy"] is False, endpoint
    assert endpoint["error"].startswith("postgresql does not accept connections: "), endpoint
