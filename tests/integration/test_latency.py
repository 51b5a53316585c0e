"""latency end to end on the real lab (systemd host): too much work per request ->
HighLatencyP95 fires -> `runbook run latency` reduces the work -> P95 recovers, verified by
PromQL; check mode changes nothing; a request below the floor is refused."""

from __future__ import annotations

import json
import urllib.error

import pytest

from runbook_remediation.lab.monitoring import http_json
from tests.conftest import restore_host, run_json, wait_for
from tests.integration.test_error_rate import firing

pytestmark = pytest.mark.lab

UNIT_DIR = "/etc/systemd/system/runbook-demo.service.d"


def health(lab, name: str) -> dict:
    try:
        return http_json(lab.host(name).health_url, timeout=10)
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def sh(lab, name: str, script: str) -> None:
    container = lab.client.containers.get(lab.host(name).container)
    result = container.exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output


@pytest.fixture
def slow(lab):
    """lab-1 does 1500 iterations (3 s) of work per request, as a bad configuration would."""
    name = "lab-1"
    sh(lab, name, f"mkdir -p {UNIT_DIR} && printf '[Service]\\nEnvironment=DEMO_WORK_ITERATIONS=1500\\n' "
                  f"> {UNIT_DIR}/load.conf && systemctl daemon-reload && systemctl restart runbook-demo.service")
    wait_for(lambda: firing(lab, "HighLatencyP95", name), timeout=90, what="HighLatencyP95 on lab-1")
    yield name
    sh(lab, name, f"rm -f {UNIT_DIR}/load.conf && systemctl daemon-reload")
    restore_host(lab, name)


def test_too_much_work_per_request_is_reduced_and_p95_recovers(lab, slow):
    name = slow
    assert health(lab, name)["work_iterations"] == 1500
    pid = health(lab, name)["pid"]

    code, payload = run_json("run", "latency", "-l", name, "--check")
    assert code == 0, payload
    assert payload["hosts"][name]["outcome"] == "planned"
    # Below the service's floor (5 in the lab): refused, nothing changed.
    code, payload = run_json("run", "latency", "-l", name, extra={"latency_relief_work_to": 2})
    assert code == 2, payload
    assert "floor" in payload["hosts"][name]["message"]
    assert health(lab, name)["work_iterations"] == 1500
    assert health(lab, name)["pid"] == pid

    code, payload = run_json("run", "latency", "-l", name)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["work"] == {"from": 1500, "to": 375}
    assert result["verification"]["below"] is True
    assert result["evidence"]["p95_seconds"] > 2
    assert health(lab, name)["work_iterations"] == 375
    wait_for(lambda: not firing(lab, "HighLatencyP95", name), timeout=90, what="HighLatencyP95 on lab-1 resolved")
