"""The lab's replicas: a port per replica, file-based service discovery for Prometheus."""

from __future__ import annotations

import json
from pathlib import Path

from runbook_remediation.lab.lab import REPLICA_CEILING, Lab, LabHost, LabState, inventory, scrape_labels, targets_file
from runbook_remediation.lab.monitoring import ScrapeTarget, file_sd_targets, prometheus_config, write_file_sd

COMPOSE = LabHost("lab-compose", "runbook-x-demo-1", "compose", 40003, replica_ports=[40003, 40004, 40005, 40006])


def test_a_targets_file_lists_every_replica_on_loopback_with_one_label_set(tmp_path: Path) -> None:
    path = tmp_path / "targets" / "lab-compose.json"
    labels = {"host": "lab-compose", "service": "demo"}
    assert write_file_sd(path, [40003, 40004], labels) is True
    assert json.loads(path.read_text()) == [{"targets": ["127.0.0.1:40003", "127.0.0.1:40004"], "labels": labels}]
    assert write_file_sd(path, [40003, 40004], labels) is False  # unchanged: not rewritten
    assert [p.name for p in path.parent.iterdir()] == ["lab-compose.json"]  # no temporary file left
    assert file_sd_targets([], labels) == [{"targets": [], "labels": labels}]


def test_prometheus_keeps_static_targets_and_adds_the_targets_files_in_the_same_job() -> None:
    static = [ScrapeTarget("lab-1", "demo", "systemd", 40001)]
    config = prometheus_config(static, 40011, Path("/x/rules.yml"), ["/x/targets/*.json"])
    job = config["scrape_configs"][0]
    assert job["job_name"] == "runbook-demo"
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:40001"], "labels": {"host": "lab-1", "service": "demo", "manager": "systemd"}}
    ]
    assert job["file_sd_configs"][0]["files"] == ["/x/targets/*.json"]
    assert "file_sd_configs" not in prometheus_config(static, 40011, Path("/x/rules.yml"))["scrape_configs"][0]


def test_the_compose_service_takes_a_port_per_replica_and_describes_its_replicas(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    service = lab.compose_file(COMPOSE)["services"]["demo"]
    assert "container_name" not in service  # Compose refuses to scale a fixed name
    command = service["command"]
    assert command[command.index("--port-candidates") + 1] == "40003,40004,40005,40006"
    assert "--port" not in command

    state = LabState(hosts=[COMPOSE], prometheus_port=40010, alertmanager_port=40011)
    described = inventory(state, lab.compose_dir, lab.compose_project)
    (variables,) = described["all"]["children"]["lab"]["children"]["lab_compose"]["hosts"].values()
    replicas = variables["runbook_services"][0]["replicas"]
    assert replicas == {
        "ceiling": REPLICA_CEILING,
        "ports": [40003, 40004, 40005, 40006],
        "targets_file": str(targets_file(lab.dir, COMPOSE)),
        "labels": scrape_labels(COMPOSE),
    }
    assert len(replicas["ports"]) >= replicas["ceiling"]  # replica_scale checks it too


def test_a_lab_state_without_replica_ports_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text(json.dumps({"hosts": [{"name": "lab-1", "container": "c", "manager": "systemd", "port": 1}]}))
    assert LabState.load(path).hosts[0].replica_ports == []
