"""The example inventories (``inventories/``): each parses, describes its services the way
the roles accept, keeps its secrets vault-encrypted, and drives a scenario as far as its
(unreachable, documentation-only) hosts.

No lab: ``ansible-inventory`` and one ``runbook run --check`` per case. SSH gets
``ProxyCommand=false``, so no host name is ever resolved or connected to: every host is
unreachable at once, which is exactly what the run must report (exit 5, not 2).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.collection_loader import install_collection_loader

install_collection_loader()

from ansible_collections.runbook.remediation.plugins.filter.services import (  # noqa: E402
    select_service,
    service_dependencies,
)

from runbook_remediation.lab.lab import LabHost, LabState  # noqa: E402
from runbook_remediation.lab.lab import inventory as lab_inventory  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = REPO / "inventories"
PASSWORD_FILE = INVENTORIES / "vault-password.example"
# One per seed system.
EXAMPLES = ("mcts", "edge-gateway", "mpc-transformer", "ggen-mcp", "causal-eval")
SEED_001 = INVENTORIES / "edge-gateway"
TIMEOUT = 180
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def _ansible_inventory(name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(INVENTORIES / name),
         "--vault-password-file", str(PASSWORD_FILE), "--list"],
        capture_output=True, text=True, check=False, timeout=TIMEOUT, cwd=REPO,
    )


@pytest.fixture(scope="module")
def listed() -> dict[str, dict]:
    """``ansible-inventory --list`` of every example (in parallel: each costs an ansible start)."""
    with ThreadPoolExecutor(max_workers=len(EXAMPLES)) as pool:
        done = dict(zip(EXAMPLES, pool.map(_ansible_inventory, EXAMPLES), strict=True))
    for name, result in done.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return {name: json.loads(result.stdout) for name, result in done.items()}


def hostvars(listing: dict) -> dict[str, dict]:
    return listing["_meta"]["hostvars"]


def check_shape(hosts: dict[str, dict]) -> None:
    """What every entrance needs of an inventory: each host describes its services in
    ``runbook_services`` as the roles' filters accept them (manager and its key, known
    dependencies), and knows its Prometheus and Alertmanager."""
    assert hosts
    for host, variables in hosts.items():
        services = variables.get("runbook_services")
        assert isinstance(services, list) and services, f"{host}: no runbook_services"
        names = [service["name"] for service in services]
        assert len(names) == len(set(names)), f"{host}: a service described twice: {names}"
        for name in names:
            service = select_service(services, name)  # raises on a bad description
            service_dependencies(services, service)  # every depends_on is described here
        for url in ("runbook_prometheus_url", "runbook_alertmanager_url"):
            assert re.match(r"^https?://[^/\s]+", variables.get(url, "")), f"{host}: {url}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_parses_and_describes_its_services(listed, name):
    hosts = hostvars(listed[name])
    check_shape(hosts)
    for host, variables in hosts.items():
        # Documentation names (RFC 2606), never an address of a real or private network.
        assert host.endswith(".example.com"), host
        assert "ansible_host" not in variables, host
    text = json.dumps(listed[name])
    for address in IPV4.findall(text):
        assert ipaddress.ip_address(address).is_loopback, f"{name}: {address}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_secrets_are_vault_encrypted_and_only_referenced(listed, name):
    vault = INVENTORIES / name / "group_vars" / "all" / "vault.yml"
    assert vault.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    hosts = hostvars(listed[name])
    decrypted = {k: v for variables in hosts.values() for k, v in variables.items() if k.startswith("vault_")}
    assert decrypted, f"{name}: the vault gave no vault_* variable"
    for path in (INVENTORIES / name).rglob("*.yml"):
        if path != vault:  # the plain files name the vault's variables, never a value
            text = path.read_text(encoding="utf-8")
            for value in decrypted.values():
                assert value not in text, f"{path}: a secret in plain text"
    for variables in hosts.values():
        for key in ("runbook_alertmanager_password", "runbook_alertmanager_token"):
            if key in variables:
                assert re.fullmatch(r"\{\{ vault_\w+ \}\}", variables[key]), f"{name}: {key}"


def test_the_labs_inventory_has_the_same_shape():
    """The lab writes what the examples show: services per host in runbook_services,
    Prometheus and Alertmanager as inventory variables (no lab needed to build it)."""
    state = LabState(hosts=[LabHost("lab-1", "runbook-x-lab-1", "systemd", 40001),
                            LabHost("lab-docker", "runbook-x-lab-docker", "docker", 40002),
                            LabHost("lab-compose", "runbook-x-lab-compose", "compose", 40003)],
                     prometheus_port=40010, alertmanager_port=40011)
    written = lab_inventory(state, Path("/tmp/compose"), "runbook-x")
    common = written["all"]["vars"]
    hosts = {host: {**common, **variables}
             for group in written["all"]["children"]["lab"]["children"].values()
             for host, variables in group["hosts"].items()}
    assert set(hosts) == {"lab-1", "lab-docker", "lab-compose"}
    check_shape(hosts)


def _runbook_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RUNBOOK_") and k not in ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_SSH_COMMON_ARGS")}
    env.update({
        "RUNBOOK_STATE_DIR": str(tmp_path / "state"),
        "RUNBOOK_COLLECTION_ROOT": str(REPO),
        "RUNBOOK_LAB_NAME": "test-inventories",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        # ssh starts no connection and resolves no name: the host is unreachable at once.
        "ANSIBLE_SSH_COMMON_ARGS": "-o ProxyCommand=false",
        "NO_COLOR": "1",
        "TERM": "dumb",
    })
    env.update(extra)
    return env


def _run_check(inventory: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runbook_remediation", "run", "service-down", "--check", "-i", str(inventory)],
        capture_output=True, text=True, check=False, timeout=TIMEOUT, env=env, cwd=inventory.parent,
        stdin=subprocess.DEVNULL,
    )


def test_service_down_check_on_the_seed_001_example(tmp_path):
    """The description validates (exit 5: the gateway is unreachable, not 2); the same
    inventory with the unit left out is refused as bad input (exit 2) before any host is
    contacted; without the vault password nothing runs (exit 5, one line)."""
    broken = tmp_path / "broken"
    shutil.copytree(SEED_001, broken)
    hosts_file = broken / "hosts.yml"
    data = yaml.safe_load(hosts_file.read_text(encoding="utf-8"))
    del data["all"]["children"]["edge_gateways"]["vars"]["runbook_services"][0]["unit"]
    hosts_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    vault = {"ANSIBLE_VAULT_PASSWORD_FILE": str(PASSWORD_FILE)}
    runs = [(SEED_001, _runbook_env(tmp_path / "good", **vault)),
            (broken, _runbook_env(tmp_path / "bad", **vault)),
            (SEED_001, _runbook_env(tmp_path / "locked"))]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        good, bad, locked = pool.map(lambda run: _run_check(*run), runs)

    assert good.returncode == 5, good.stdout + good.stderr
    assert "edge-gw-01.example.com  unreachable" in good.stdout + good.stderr
    assert "Check the service description and variables" in good.stderr  # the frame's check ran, and passed
    assert "Traceback" not in good.stderr

    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "service 'mcp-gateway' (manager systemd) needs 'unit'" in bad.stdout + bad.stderr
    assert "unreachable" not in bad.stdout + bad.stderr

    assert locked.returncode == 5, locked.stdout + locked.stderr
    [error] = [line for line in locked.stderr.splitlines() if line.startswith("runbook: error:")]
    assert "vault-encrypted vars and no vault password was given" in error
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in locked.stderr
    assert "Traceback" not in locked.stderr
