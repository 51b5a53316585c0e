"""error-rate's provider branch end to end on the real lab (systemd host lab-1, and the Docker
and Compose services): the upstream provider goes down (`runbook lab break provider-down`) ->
HighErrorRate fires -> `runbook run error-rate` switches the service's DEMO_UPSTREAM_PROVIDER
to the configured fallback and restarts it -> the error ratio recovers (PromQL); a second run
has nothing to do. Check mode changes nothing; the fallback already in use escalates; a bad
fallback is refused."""

from __future__ import annotations

import json
import urllib.error

import pytest
import yaml

from runbook_remediation.lab.lab import PROVIDER_STATUS_FILE
from runbook_remediation.lab.monitoring import http_json
from tests.conftest import restore_host, run_json, runbook, wait_for
from tests.integration.test_error_rate import firing, ratio

pytestmark = pytest.mark.lab

NAME = "lab-1"
DROPIN_DIR = "/etc/systemd/system/runbook-demo.service.d"
DROPIN = f"{DROPIN_DIR}/runbook-provider.conf"


def health(lab) -> dict:
    try:
        return http_json(lab.host(NAME).health_url, timeout=10)
    except urllib.error.HTTPError as exc:  # 503 while every request fails: the body still says
        return json.loads(exc.read())


def sh(lab, script: str) -> str:
    container = lab.client.containers.get(lab.host(NAME).container)
    result = container.exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output
    return result.output.decode()


def dropins(lab) -> str:
    return sh(lab, f"cat {DROPIN_DIR}/*.conf 2>/dev/null || true")


@pytest.fixture
def provider_down(lab):
    """lab-1 with its upstream provider (``primary``) down; put back afterwards."""
    restore_host(lab, NAME)

    def down(provider: str = "primary") -> None:
        result = runbook("lab", "break", "provider-down", "--host", NAME, "-p", f"provider={provider}")
        assert result.returncode == 0, result.stderr

    yield down
    restore_host(lab, NAME)


def test_check_mode_plans_the_switch_and_changes_nothing(lab, provider_down):
    provider_down()
    wait_for(lambda: (ratio(lab, NAME) or 0) > 0.5, timeout=60, what="errors on lab-1")
    before = health(lab)
    assert before["upstream_provider"] == "primary"
    assert {"name": "provider", "status": "degraded", "detail": "provider primary is down"} in before["components"]
    code, payload = run_json("run", "error-rate", "-l", NAME, "--check")
    assert code == 0, payload
    result = payload["hosts"][NAME]
    assert result["outcome"] == "planned", result
    assert result["provider"]["to"] == "secondary"
    after = health(lab)
    assert (after["pid"], after["upstream_provider"]) == (before["pid"], "primary")
    assert dropins(lab) == ""


def test_a_failing_provider_is_switched_to_the_fallback(lab, provider_down):
    provider_down()
    wait_for(lambda: firing(lab, "HighErrorRate", NAME), timeout=60, what="HighErrorRate on lab-1")
    assert health(lab)["upstream_provider"] == "primary"

    code, payload = run_json("run", "error-rate", "-l", NAME, "--yes")
    assert code == 0, payload
    result = payload["hosts"][NAME]
    assert result["outcome"] == "remediated", result
    assert result["provider"] == {"variable": "DEMO_UPSTREAM_PROVIDER", "from": "primary", "to": "secondary",
                                  "failing": True}
    assert result["release"]["to"] is None  # nothing was rolled back
    assert result["verification"]["ratio_below"] is True
    assert "from primary to secondary" in result["message"]
    assert health(lab)["upstream_provider"] == "secondary"
    assert "Environment=DEMO_UPSTREAM_PROVIDER=secondary" in dropins(lab)
    # The outage is not over (the status file still has primary down): the fallback fixed it.
    assert '"primary": "down"' in sh(lab, f"cat {PROVIDER_STATUS_FILE}")
    wait_for(lambda: (r := ratio(lab, NAME)) is not None and r < 0.05, timeout=30, what="lab-1's error ratio below 5%")

    code, payload = run_json("run", "error-rate", "-l", NAME, "--yes")
    assert code == 4, payload
    assert payload["hosts"][NAME]["outcome"] == "healthy"


def test_the_fallback_already_in_use_escalates_and_changes_nothing(lab, provider_down):
    # The service runs on its fallback already, and that one is down too.
    sh(lab, f"mkdir -p {DROPIN_DIR} && printf '[Service]\\nEnvironment=DEMO_UPSTREAM_PROVIDER=secondary\\n' "
            f"> {DROPIN_DIR}/load.conf && systemctl daemon-reload && systemctl restart runbook-demo.service")
    try:
        provider_down("secondary")
        wait_for(lambda: (ratio(lab, NAME) or 0) > 0.5, timeout=60, what="errors on lab-1")
        before = health(lab)
        assert before["upstream_provider"] == "secondary"
        code, payload = run_json("run", "error-rate", "-l", NAME, "--yes")
        assert code == 3, payload
        result = payload["hosts"][NAME]
        assert result["outcome"] == "escalate", result
        assert "fallback already" in result["message"]
        assert result["provider"]["to"] is None and result["actions"] == []
        assert health(lab)["pid"] == before["pid"]
        assert "runbook-provider.conf" not in sh(lab, f"ls {DROPIN_DIR}")
    finally:
        sh(lab, f"rm -f {DROPIN_DIR}/load.conf && systemctl daemon-reload")


def test_a_bad_fallback_is_refused_and_runs_nothing(lab, tmp_path):
    marker = tmp_path / "ran"
    before = health(lab)
    for fallback in ["{{ lookup('pipe', 'touch " + str(marker) + "') }}", "secondary; rm -rf /", "$HOME"]:
        code, payload = run_json("run", "error-rate", "-l", NAME, "--yes",
                                 extra={"release_rollback_fallback": fallback})
        result = payload["hosts"][NAME]
        assert code == 2, (fallback, result)
        assert "release_rollback_fallback must be a provider name" in result["message"], (fallback, result["message"])
    assert not marker.exists()
    assert health(lab)["pid"] == before["pid"]
    assert "runbook-provider.conf" not in dropins(lab) and "DEMO_UPSTREAM_PROVIDER" not in dropins(lab)


def container_env(lab, name: str) -> dict:
    container = lab.client.containers.get(lab.host(name).container)
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])


@pytest.mark.parametrize("name", ["lab-docker", "lab-compose"])
def test_a_failing_provider_is_switched_on_docker_and_compose(lab, name):
    """The switch recreates the container (Docker) or writes the Compose override; the outage
    itself lives outside the container, so only the fallback can end the errors."""
    restore_host(lab, name)
    try:
        result = runbook("lab", "break", "provider-down", "--host", name)
        assert result.returncode == 0, result.stderr
        wait_for(lambda: firing(lab, "HighErrorRate", name), timeout=60, what=f"HighErrorRate on {name}")
        before = container_env(lab, name)
        assert before.get("DEMO_UPSTREAM_PROVIDER", "primary") == "primary"

        code, payload = run_json("run", "error-rate", "-l", name, "--check")
        assert code == 0, payload
        assert payload["hosts"][name]["outcome"] == "planned", payload
        assert container_env(lab, name) == before

        code, payload = run_json("run", "error-rate", "-l", name, "--yes")
        assert code == 0, payload
        outcome = payload["hosts"][name]
        assert outcome["outcome"] == "remediated", outcome
        assert outcome["provider"] == {"variable": "DEMO_UPSTREAM_PROVIDER", "from": "primary", "to": "secondary",
                                       "failing": True}
        assert outcome["release"]["to"] is None
        assert outcome["verification"]["ratio_below"] is True
        assert container_env(lab, name)["DEMO_UPSTREAM_PROVIDER"] == "secondary"
        assert http_json(lab.host(name).health_url, timeout=10)["upstream_provider"] == "secondary"
        if name == "lab-compose":
            # Persisted where Compose reads it: a later `docker compose up` keeps the fallback.
            override = yaml.safe_load((lab.compose_dir / "compose.override.yaml").read_text(encoding="utf-8"))
            service = next(iter(override["services"].values()))
            assert service["environment"]["DEMO_UPSTREAM_PROVIDER"] == "secondary"
        wait_for(lambda: (r := ratio(lab, name)) is not None and r < 0.05, timeout=30,
                 what=f"{name}'s error ratio below 5%")

        code, payload = run_json("run", "error-rate", "-l", name, "--yes")
        assert code == 4, payload
    finally:
        restore_host(lab, name)
