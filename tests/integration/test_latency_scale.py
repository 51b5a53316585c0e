"""latency's scale-out on the real lab (Compose service): the `load` fault (an offered load
shared by the live replicas) -> P95 above the threshold -> `runbook run latency` scales the
service out within its ceiling -> every replica answers, Prometheus scrapes each one through
file-based service discovery, P95 recovers, verified by PromQL. Check mode changes nothing;
a request above the ceiling is refused; a second run has nothing to do."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from runbook_remediation.lab.lab import SERVICE, targets_file
from runbook_remediation.lab.monitoring import http_json
from tests.conftest import http_status, restore_host, run_json, runbook, wait_for
from tests.integration.test_latency import p95

pytestmark = pytest.mark.lab

NAME = "lab-compose"


def replicas(lab) -> list[str]:
    """The running containers of the lab's Compose service."""
    labels = [f"com.docker.compose.project={lab.compose_project}", f"com.docker.compose.service={SERVICE}"]
    return sorted(c.name for c in lab.client.containers.list(filters={"label": labels}))


def registered(lab) -> list[str]:
    """The targets Prometheus discovers the service's replicas from."""
    groups = json.loads(targets_file(lab.dir, lab.host(NAME)).read_text(encoding="utf-8"))
    assert all(group["labels"]["host"] == NAME and group["labels"]["service"] == SERVICE for group in groups)
    return sorted(target for group in groups for target in group["targets"])


def scraped(lab) -> set[str]:
    """The instances of the service Prometheus scrapes successfully."""
    query = f'up{{host="{NAME}",service="{SERVICE}"}} == 1'
    url = f"http://127.0.0.1:{lab.state().prometheus_port}/api/v1/query?query={urllib.parse.quote(query)}"
    return {r["metric"]["instance"] for r in http_json(url, timeout=5)["data"]["result"]}


def override(lab) -> str:
    path = Path(lab.compose_dir) / "compose.override.yaml"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


@pytest.fixture
def loaded(lab):
    """lab-compose under the `load` fault: one replica carries all of it (3 s a request)."""
    assert len(replicas(lab)) == 1
    result = runbook("lab", "break", "load", "--host", NAME)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: (p95(lab, NAME) or 0) > 2, timeout=90, what="P95 of lab-compose above 2 s")
    yield NAME
    restore_host(lab, NAME)  # back to one replica, registered alone
    assert len(replicas(lab)) == 1
    assert registered(lab) == [f"127.0.0.1:{lab.host(NAME).port}"]


def test_under_load_the_service_is_scaled_out_and_p95_recovers(lab, loaded):
    name = loaded
    before = replicas(lab)
    assert registered(lab) == [f"127.0.0.1:{lab.host(name).port}"]

    code, payload = run_json("run", "latency", "-l", name, "--check")
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "planned", result
    assert result["replicas"]["from"] == 1 and result["replicas"]["to"] == 4, result
    assert replicas(lab) == before  # check mode: nothing started, nothing written
    assert "scale" not in override(lab)

    # Above the ceiling (4 in the lab): refused before anything is touched.
    code, payload = run_json("run", "latency", "-l", name, extra={"replica_scale_to": 5})
    assert code == 2, payload
    assert "ceiling" in payload["hosts"][name]["message"], payload
    assert replicas(lab) == before
    assert "scale" not in override(lab)

    code, payload = run_json("run", "latency", "-l", name)
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert "scaled out the replicas of demo from 1 to 4 replicas" in result["message"], result["message"]
    assert result["verification"]["below"] is True
    assert result["evidence"]["p95_seconds"] > 2
    assert len(replicas(lab)) == 4
    ports = result["replicas"]["ports"]
    assert len(set(ports)) == 4 and set(ports) <= set(lab.host(name).replica_ports)
    for port in ports:  # every replica answers, on its own port
        assert http_status(f"http://127.0.0.1:{port}/health") == 200
        assert http_json(f"http://127.0.0.1:{port}/health", timeout=5)["port"] == port
    assert registered(lab) == sorted(f"127.0.0.1:{port}" for port in ports)
    wait_for(lambda: scraped(lab) == set(registered(lab)), timeout=30, what="Prometheus scraping every replica")
    assert "scale: 4" in override(lab)  # persisted: the next `docker compose up` keeps it

    code, payload = run_json("run", "latency", "-l", name)
    assert code == 4, payload  # P95 below the threshold: nothing to do
    assert len(replicas(lab)) == 4
