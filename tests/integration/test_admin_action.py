"""admin-action end to end on the real lab: the demo declares `cache_clear` (POST
/admin/cache/clear) and `gc` (SIGUSR1) in its description. An action is done once, seen
in the service's own counter, recorded on the target and not done again within its
cooldown unless forced; the signal reaches the main process of a systemd unit, a
container and a Compose service; check mode and undeclared actions change nothing; the
admin token reaches the service but no record."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import http_status, restore_host, run_json, runbook, wait_for

pytestmark = pytest.mark.lab

STATE = "/var/lib/runbook-remediation"
UNIT = "runbook-demo.service"
SECRET = "admin-token-not-for-records-5e1f"  # the test's own seeded secret


def admin_count(lab, name: str, action: str) -> int:
    with urllib.request.urlopen(lab.host(name).metrics_url, timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(f'demo_admin_actions_total{{action="{action}"}}'):
            return int(float(line.split()[-1]))
    raise AssertionError(f"no demo_admin_actions_total for {action}")


def sh(lab, name: str, script: str) -> tuple[int, str]:
    result = lab.client.containers.get(lab.host(name).container).exec_run(["sh", "-c", script])
    return result.exit_code, (result.output or b"").decode(errors="replace")


def forget_records(lab, name: str) -> None:
    """The action records, on the systemd host or on the Docker host (this machine)."""
    if lab.host(name).manager == "systemd":
        sh(lab, name, f"rm -f {STATE}/admin-*.json")
    else:
        for path in Path(STATE).glob("admin-demo@*.json"):
            path.unlink()


@pytest.fixture
def clean(lab):
    names: list[str] = []

    def use(name: str) -> str:
        forget_records(lab, name)
        names.append(name)
        return name

    yield use
    for name in names:
        forget_records(lab, name)


def test_cache_clear_is_done_once_per_cooldown_unless_forced(lab, clean):
    name = clean("lab-1")
    before = admin_count(lab, name, "cache_clear")

    code, payload = run_json("run", "admin-action", "-l", name, "--check", extra={"app_admin_action": "cache_clear"})
    assert code == 0, payload
    assert payload["hosts"][name]["outcome"] == "planned"
    assert payload["hosts"][name]["message"] == "planned: would call POST /admin/cache/clear (cache_clear) on demo"
    assert admin_count(lab, name, "cache_clear") == before
    assert sh(lab, name, f"ls {STATE}/admin-*.json")[0] != 0  # check mode recorded nothing

    code, payload = run_json("run", "admin-action", "-l", name, extra={"app_admin_action": "cache_clear"})
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["actions"] == ["called POST /admin/cache/clear (cache_clear): 200"]
    assert result["verification"]["healthy"] is True
    assert admin_count(lab, name, "cache_clear") == before + 1
    assert sh(lab, name, f"cat {STATE}/admin-demo@{UNIT}.cache_clear.json")[1].startswith('{"action": "cache_clear"')

    code, payload = run_json("run", "admin-action", "-l", name, extra={"app_admin_action": "cache_clear"})
    assert code == 4, payload  # within the cooldown: not again
    assert "not done again; app_admin_force=true does it anyway" in payload["hosts"][name]["message"]
    assert admin_count(lab, name, "cache_clear") == before + 1

    code, payload = run_json("run", "admin-action", "-l", name,
                             extra={"app_admin_action": "cache_clear", "app_admin_force": True})
    assert code == 0, payload
    assert admin_count(lab, name, "cache_clear") == before + 2


@pytest.mark.parametrize("name", ["lab-1", "lab-docker", "lab-compose"])
def test_the_gc_signal_reaches_the_main_process(lab, clean, name):
    clean(name)
    before = admin_count(lab, name, "gc")
    code, payload = run_json("run", "admin-action", "-l", name, extra={"app_admin_action": "gc"})
    assert code == 0, payload
    result = payload["hosts"][name]
    assert result["outcome"] == "remediated", result
    assert result["actions"][0].startswith("sent SIGUSR1 to the main process of ")
    wait_for(lambda: admin_count(lab, name, "gc") == before + 1, timeout=10, what="the demo's gc counter")
    assert http_status(lab.host(name).health_url) == 200  # still up: the signal is not a stop
    code, payload = run_json("run", "admin-action", "-l", name, extra={"app_admin_action": "gc"})
    assert code == 4, payload


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("drop_tables", "admin action drop_tables is not declared for service demo (declared: cache_clear, gc)"),
        ("", "app_admin_action must name an admin action of service demo (declared: cache_clear, gc)"),
        ("../../etc", "app_admin_action must be an admin action name"),
    ],
    ids=["undeclared", "missing", "not-a-name"],
)
def test_an_action_not_declared_is_bad_input(lab, clean, action, words):
    name = clean("lab-1")
    before = admin_count(lab, name, "cache_clear"), admin_count(lab, name, "gc")
    code, payload = run_json("run", "admin-action", "-l", name, extra={"app_admin_action": action})
    assert code == 2, payload
    assert words in payload["hosts"][name]["message"], payload["hosts"][name]["message"]
    assert (admin_count(lab, name, "cache_clear"), admin_count(lab, name, "gc")) == before


def test_the_admin_token_reaches_the_service_and_no_record(lab, clean, tmp_path):
    name = clean("lab-2")
    dropin = f"/etc/systemd/system/{UNIT}.d/10-admin-key.conf"
    code, out = sh(lab, name, f"mkdir -p /etc/systemd/system/{UNIT}.d && printf '[Service]\\nEnvironment=DEMO_API_KEY="
                              f"{SECRET}\\n' > {dropin} && systemctl daemon-reload && systemctl restart {UNIT}")
    assert code == 0, out
    try:
        wait_for(lambda: sh(lab, name, f"systemctl is-active {UNIT}")[0] == 0, what="the demo with its API key")
        inventory = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
        systemd_hosts = inventory["all"]["children"]["lab"]["children"]["lab_systemd"]["hosts"]

        def with_token(token: str) -> Path:
            systemd_hosts[name]["runbook_services"][0]["admin_token"] = token
            path = tmp_path / f"inventory-{len(token)}.yml"
            path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
            return path

        code, payload = run_json("run", "admin-action", "-i", str(with_token("wrong")), "-l", name,
                                 extra={"app_admin_action": "cache_clear"})
        assert code != 0, payload
        assert payload["hosts"][name]["outcome"] == "failed"
        assert "answered 401" in payload["hosts"][name]["message"], payload["hosts"][name]["message"]

        before = admin_count(lab, name, "cache_clear")
        argv = ["-o", "json", "-v", "run", "admin-action", "-i", str(with_token(SECRET)), "-l", name,
                "-e", "app_admin_action=cache_clear"]
        done = runbook(*argv)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert admin_count(lab, name, "cache_clear") == before + 1
        assert SECRET not in done.stdout + done.stderr
        state = Path(os.environ["RUNBOOK_STATE_DIR"])
        leaked = [str(p) for p in state.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()
                  and p.name != "inventory.yml"]
        assert leaked == [], leaked
        assert SECRET not in sh(lab, name, f"cat {STATE}/admin-*.json")[1]
    finally:
        sh(lab, name, f"rm -f {dropin} && systemctl daemon-reload")
        restore_host(lab, name)
