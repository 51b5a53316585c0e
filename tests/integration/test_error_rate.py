"""error-rate end to end on the real lab: a bad release deployed -> HighErrorRate fires ->
`runbook run error-rate` rolls back -> the alert resolves; the dead ends and bad input."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse

import pytest
import yaml

from runbook_remediation.lab.lab import free_port
from runbook_remediation.lab.monitoring import http_json
from tests.conftest import http_status, restore_host, run_json, runbook, wait_for

pytestmark = pytest.mark.lab


def firing(lab, alert: str, host: str) -> bool:
    """Whether Prometheus has ``alert`` firing for ``host``."""
    port = lab.state().prometheus_port
    body = http_json(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5)
    return any(a["labels"].get("alertname") == alert and a["labels"].get("host") == host and a["state"] == "firing"
               for a in body["data"]["alerts"])


def ratio(lab, host: str) -> float | None:
    port = lab.state().prometheus_port
    query = (f'sum(rate(http_requests_total{{host="{host}",status=~"5.."}}[15s]))'
             f' / sum(rate(http_requests_total{{host="{host}"}}[15s]))')
    body = http_json(f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(query)}", timeout=5)
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def health_body(lab, name: str) -> dict:
    try:
        return http_json(lab.host(name).health_url, timeout=5)
    except urllib.error.HTTPError as exc:  # 503 while every request fails: the body still says
        return json.loads(exc.read())


def what_runs(lab, name: str) -> dict:
    """The release the service reports, and the container (docker, compose) or process it runs in."""
    host = lab.host(name)
    health = health_body(lab, name)
    container = lab.client.containers.get(host.container)
    return {"release": health["release"], "container": container.id, "pid": health["pid"]}


@pytest.fixture
def bad_release(lab):
    """Deploy the bad release v2 on the host the test names; put the host back afterwards."""
    deployed = []

    def deploy(name: str) -> None:
        restore_host(lab, name)  # heal clears the deploy history: this test's starts empty
        assert runbook("lab", "deploy", "v2", "--host", name).returncode == 0
        deployed.append(name)
        wait_for(lambda: firing(lab, "HighErrorRate", name), timeout=60, what=f"HighErrorRate on {name}")

    yield deploy
    for name in deployed:
        restore_host(lab, name)


@pytest.mark.parametrize("name", ["lab-docker", "lab-compose", "lab-1"])
def test_a_bad_release_is_rolled_back(lab, bad_release, name):
    bad_release(name)
    history_before = lab.release_history(lab.host(name))
    assert [e["release"] for e in history_before] == ["v1", "v2"]

    # Check mode and diagnose look, decide and change nothing: release, container, process.
    before = what_runs(lab, name)
    code, payload = run_json("run", "error-rate", "-l", name, "--check")
    assert code == 0, payload
    assert payload["hosts"][name]["outcome"] == "planned"
    code, payload = run_json("diagnose", "error-rate", "-l", name)
    assert code == 0, payload
    assert what_runs(lab, name) == before
    assert lab.release_history(lab.host(name)) == history_before

    code, payload = run_json("run", "error-rate", "-l", name, "--yes")
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["release"] == {"from": "v2", "to": "v1"}
    errors = result["evidence"]["error_lines"]
    assert any("TypeError in release v2" in line for line in errors["lines"]), errors
    assert "errors began" in result["message"] and "after release v2 replaced v1" in result["message"]
    assert result["verification"]["ratio_below"] is True
    assert what_runs(lab, name)["release"] == "v1"
    history = lab.release_history(lab.host(name))
    assert [e["release"] for e in history] == ["v1", "v2", "v1"]
    assert "from v2" in history[-1]["by"]
    wait_for(lambda: not firing(lab, "HighErrorRate", name), timeout=60, what=f"HighErrorRate on {name} resolved")

    if name == "lab-docker":  # once is enough: the second run finds nothing to do
        code, payload = run_json("run", "error-rate", "-l", name, "--yes")
        assert code == 4, payload
        assert payload["hosts"][name]["outcome"] == "healthy"


def test_errors_without_a_recorded_release_escalate_and_change_nothing(lab):
    name = "lab-2"
    assert runbook("lab", "break", "error-rate", "--host", name, "-p", "rate=0.5").returncode == 0
    try:
        wait_for(lambda: (ratio(lab, name) or 0) > 0.2, timeout=60, what=f"errors on {name}")
        before = what_runs(lab, name)
        code, payload = run_json("run", "error-rate", "-l", name, "--yes")
        assert code == 3, payload
        result = payload["hosts"][name]
        assert result["outcome"] == "escalate"
        assert "no previous release" in result["message"]
        assert result["evidence"]["breakdown"]["error_type"], result["evidence"]
        # The process's own ERROR lines are evidence: the journal of its PID.
        errors = result["evidence"]["error_lines"]
        assert errors["count"] > 0 and "upstream returned HTTP 502" in errors["lines"][-1], errors
        assert errors["since"] == f"pid {before['pid']}"
        assert any("ERROR lines in the log since the process started" in f for f in result["findings"])
        assert what_runs(lab, name) == before
        assert lab.release_history(lab.host(name)) == []
    finally:
        restore_host(lab, name)


def test_bad_input_and_a_missing_prometheus_change_nothing(lab, tmp_path):
    name = "lab-2"
    before = what_runs(lab, name)
    marker = tmp_path / "ran"
    cases = [
        ({"release_rollback_threshold": "lots"}, 2, "threshold"),
        ({"release_rollback_query": "sum(rate(http_requests_total[15s]"}, 2, "query"),
        ({"release_rollback_query": "{{ lookup('pipe', 'touch " + str(marker) + "') }}"}, 2, "template"),
        ({"release_rollback_to": "v9"}, 2, "release"),
        ({"runbook_prometheus_url": f"http://127.0.0.1:{free_port()}"}, 5, "Prometheus"),
    ]
    for extra, expected, word in cases:
        code, payload = run_json("run", "error-rate", "-l", name, "--yes", extra=extra)
        result = payload["hosts"][name]
        assert code == expected, (extra, json.dumps(result))
        assert word.lower() in result["message"].lower(), (extra, result["message"])
    assert not marker.exists()
    assert what_runs(lab, name) == before


CACHE_UNIT = """[Unit]
Description=a dependency of the demo service (test)
[Service]
ExecStart=/usr/bin/python3 /opt/runbook-demo/demo_service.py --port {port} --name cache \\
  --log-dir /var/log/runbook-demo/cache --workload-rps 0
Restart=no
"""
DEMO_DROPIN = "/etc/systemd/system/runbook-demo.service.d/load-dependency.conf"
CACHE_PATH = "/etc/systemd/system/runbook-cache.service"


def sh(lab, name: str, script: str) -> None:
    result = lab.client.containers.get(lab.host(name).container).exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output


@pytest.fixture
def hard_dependency(lab):
    """lab-2's demo fails its requests while its dependency `cache` (a unit on the same host,
    in its description's depends_on) does not answer."""
    name = "lab-2"
    host = lab.host(name)
    port = free_port({h.port for h in lab.state().hosts})
    cache_url = f"http://127.0.0.1:{port}/health"
    env = f"DEMO_UPSTREAM={cache_url} DEMO_FAIL_WITHOUT_UPSTREAM=1 DEMO_UPSTREAM_RPS=5"
    sh(lab, name, f"cat > {CACHE_PATH} <<'EOF'\n{CACHE_UNIT.format(port=port)}EOF\n"
                  f"mkdir -p {DEMO_DROPIN.rsplit('/', 1)[0]}"
                  f" && printf '[Service]\\nEnvironment={env}\\n' > {DEMO_DROPIN}"
                  " && systemctl daemon-reload && systemctl start runbook-cache.service"
                  " && systemctl restart runbook-demo.service")
    wait_for(lambda: http_status(cache_url) == 200 and http_status(host.health_url) == 200, timeout=30,
             what="cache and demo up")
    services = [
        {**lab_service(lab, name), "depends_on": ["cache"]},
        {"name": "cache", "manager": "systemd", "unit": "runbook-cache.service", "health_url": cache_url},
    ]
    try:
        yield name, services, cache_url
    finally:
        sh(lab, name, f"systemctl stop runbook-cache.service; rm -f {CACHE_PATH} {DEMO_DROPIN}"
                      " && systemctl daemon-reload")
        restore_host(lab, name)


def lab_service(lab, name: str) -> dict:
    inventory = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    hosts = inventory["all"]["children"]["lab"]["children"]["lab_systemd"]["hosts"]
    return hosts[name]["runbook_services"][0]


def test_a_dependency_that_is_down_is_restarted_first(lab, hard_dependency):
    name, services, cache_url = hard_dependency
    container = lab.client.containers.get(lab.host(name).container)
    container.exec_run(["systemctl", "kill", "-s", "KILL", "runbook-cache.service"])
    wait_for(lambda: (ratio(lab, name) or 0) > 0.2, timeout=60, what=f"errors on {name}")
    extra = {"runbook_services": services}

    before = what_runs(lab, name)
    code, payload = run_json("run", "error-rate", "-l", name, "--service", "demo", "--check", extra=extra)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "planned", result
    assert "would restart the unhealthy dependency of demo first: cache" in result["message"]
    assert http_status(cache_url) is None and what_runs(lab, name) == before

    code, payload = run_json("run", "error-rate", "-l", name, "--service", "demo", "--yes", extra=extra)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["dependencies"] == {"unhealthy": ["cache"], "restarted": ["cache"]}
    assert any(action.startswith("restarted dependency cache") for action in result["actions"]), result["actions"]
    assert "dependency cache (depends_on) does not answer its health check" in result["findings"]
    assert result["verification"]["ratio_below"] is True
    assert http_status(cache_url) == 200
    assert what_runs(lab, name)["release"] == before["release"]  # no rollback

    code, payload = run_json("run", "error-rate", "-l", name, "--service", "demo", "--yes", extra=extra)
    assert code == 4, payload


# The memory trend over the last 30 s at the lab's 1 s scrape, from 3 s after a start: the
# defaults (15 min at 15 s, from 30 s) would keep the test waiting a minute for three points.
SHORT_TREND = {"memory_limit_raise_trend_window": 30, "memory_limit_raise_trend_step": "1s",
               "memory_limit_raise_trend_warmup": 3}


def test_a_memory_leak_behind_the_errors_is_restarted(lab):
    """No release and no dependency explains the errors, but the service's memory grows: the
    run hands over to memory-leak's mitigation (a restart within the budget) and verifies the
    error ratio; the rollback and the provider switch are not touched."""
    name = "lab-1"
    restore_host(lab, name)  # a fresh process and an empty deploy history
    try:
        result = runbook("lab", "break", "memory-leak", "--host", name,
                         "-p", "mb_per_second=0.5", "-p", "max_mb=40", "-p", "fail_above_mb=4")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: firing(lab, "HighErrorRate", name), timeout=60, what=f"HighErrorRate on {name}")
        # The memory reading skips a process's first seconds (SHORT_TREND: 3) and needs three points.
        wait_for(lambda: health_body(lab, name)["uptime_seconds"] >= 10, timeout=90,
                 what="a process old enough for a memory trend")
        before = what_runs(lab, name)

        code, payload = run_json("run", "error-rate", "-l", name, "--check", extra=SHORT_TREND)
        assert code == 0, payload
        result = payload["hosts"][name]
        assert result["outcome"] == "planned", result
        assert "would restart demo, whose resident memory grows" in result["message"], result["message"]
        assert result["memory"]["leak"] is True and result["memory"]["restarted"] is False
        assert what_runs(lab, name) == before

        code, payload = run_json("run", "error-rate", "-l", name, "--yes", extra=SHORT_TREND)
        assert code == 0, payload
        result = payload["hosts"][name]
        assert result["outcome"] == "remediated", result
        assert result["memory"]["leak"] is True and result["memory"]["restarted"] is True
        assert any("resident memory grew" in finding for finding in result["findings"]), result["findings"]
        assert result["release"]["to"] is None and result["provider"]["to"] is None
        assert result["verification"]["ratio_below"] is True
        after = what_runs(lab, name)
        assert after["pid"] != before["pid"] and after["release"] == before["release"]
        assert "out_of_memory" in json.dumps(result["evidence"]["breakdown"])
        assert "MemoryError" in "\n".join(result["evidence"]["error_lines"]["lines"])

        code, payload = run_json("run", "error-rate", "-l", name, "--yes")
        assert code == 4, payload
    finally:
        restore_host(lab, name)
