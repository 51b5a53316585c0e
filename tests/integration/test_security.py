"""The entrances as an attacker and a careless operator would use them, on the real lab:
alert and command-line text is data (a Jinja payload runs nothing), the webhook wants its
token, an alert acts only on the one inventory host it names, and no seeded secret (a
database password, an API token, a vault-encrypted password, a webhook URL) lands anywhere
under the state directory or in `-v` output after every scenario ran."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from runbook_remediation import catalogue, timeline
from runbook_remediation.collection import find_collection
from tests.conftest import (
    alert_payload,
    http_status,
    post_alerts,
    restore_host,
    run_json,
    runbook,
    wait_for,
    watcher,
)

pytestmark = pytest.mark.lab


@pytest.fixture
def marker(tmp_path):
    """A file that exists only if a payload ran; and the payload that would make it."""
    path = tmp_path / f"owned-{uuid.uuid4().hex[:8]}"
    return path, "{{ lookup('pipe', 'touch " + str(path) + "') }}"


def alert(**labels) -> dict:
    now = datetime.now(UTC)
    base = {"alertname": "ServiceDown", "host": "lab-1", "service": "demo", "severity": "critical"}
    base.update(labels)
    return {"status": "firing", "labels": {k: v for k, v in base.items() if v is not None},
            "annotations": {}, "startsAt": now.isoformat(), "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": uuid.uuid4().hex[:16], "generatorURL": ""}


def timeline_runs() -> list[dict]:
    with timeline.open_store() as store:
        return store.list_runs()


def notifications(kind: str) -> list[dict]:
    with timeline.open_store() as store:
        return [e for e in store.events(kind="notification") if (e.get("data") or {}).get("notice") == kind]


# --- the rulebook -------------------------------------------------------------------------

def test_the_webhook_wants_its_token_and_refuses_bad_alerts(lab, tmp_path, marker):
    path, payload = marker
    with watcher(tmp_path, "--no-attach") as port:
        body = alert_payload(alert())
        assert post_alerts(port, body, token=None) == 401
        assert post_alerts(port, body, token="not-the-token-" + "x" * 20) == 401
        before = len(notifications("rejected"))
        # The lab's timeline is shared with earlier tests: count only the runs this test makes.
        earlier = {r["id"] for r in timeline_runs()}
        hostile = [
            alert(service=payload),  # the payload in a label
            alert(host="all"),  # a pattern: every host
            alert(host="lab-1,lab-2"),
            alert(host="web-*"),
            alert(host=None),  # no host: would have run on every host
            alert(host="not-in-the-inventory"),
        ]
        good = alert()
        good["annotations"] = {"summary": payload, "description": payload}
        good["generatorURL"] = payload
        assert post_alerts(port, alert_payload(*hostile, good)) == 200
        wait_for(lambda: len(notifications("rejected")) >= before + len(hostile), timeout=240, interval=1,
                 what="every hostile alert recorded as refused")
        # The good one ran service-down on lab-1 (healthy: nothing to do); its free text never mattered.
        wait_for(lambda: any(r["scenario"] == "service-down" and r["entrance"] == "rulebook" and r["ended_at"]
                             for r in timeline_runs() if r["id"] not in earlier),
                 timeout=240, interval=1, what="the good alert's run")
    refused = notifications("rejected")[before:]
    texts = " ".join(e["message"] for e in refused)
    assert "templates are not accepted" in texts
    assert "no host label" in texts and "not a host of the inventory" in texts
    assert "lookup" not in texts and "{{" not in texts
    assert not path.exists(), "an alert ran code on the controller"
    with timeline.open_store() as store:
        runs = [r for r in store.list_runs() if r["id"] not in earlier and r["scenario"] == "service-down"]
    assert [r["entrance"] for r in runs] == ["rulebook"], runs  # only the good alert ran a scenario, and on lab-1 alone


# --- triage --run ----------------------------------------------------------------------------

def _inject(lab, *alerts: dict) -> None:
    url = f"http://127.0.0.1:{lab.state().alertmanager_port}/api/v2/alerts"
    body = [{"labels": a["labels"], "annotations": a["annotations"], "startsAt": a["startsAt"]} for a in alerts]
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):
        pass


def _resolve(lab, *alerts: dict) -> None:
    ended = datetime.now(UTC).isoformat()  # not before startsAt: Alertmanager refuses that
    url = f"http://127.0.0.1:{lab.state().alertmanager_port}/api/v2/alerts"
    body = [{"labels": a["labels"], "annotations": {}, "startsAt": a["startsAt"], "endsAt": ended} for a in alerts]
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):
        pass


@pytest.mark.parametrize("labels, words", [
    ({"service": "PAYLOAD"}, "templates are not accepted"),
    ({"host": "all"}, "is not a host of"),
    ({"host": None}, "names no host"),
])
def test_triage_run_acts_only_on_plain_alert_data(lab, marker, labels, words):
    path, payload = marker
    labels = {k: (payload if v == "PAYLOAD" else v) for k, v in labels.items()}
    injected = alert(**labels)
    _inject(lab, injected)
    try:
        result = runbook("-o", "json", "triage", "--run", "--yes", "--no-open")
        assert result.returncode == 2, result.stdout + result.stderr
        assert words in (result.stdout + result.stderr), result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert not path.exists(), "triage --run ran an alert's payload"
    finally:
        _resolve(lab, injected)


# --- the command line and ansible-playbook ----------------------------------------------------------

def test_cli_values_are_data(lab, marker, tmp_path):
    path, payload = marker
    code, out = run_json("run", "service-down", "-l", "lab-1", "--service", payload)
    assert code == 2 and "templates are not accepted" in out["hosts"]["lab-1"]["message"], out
    code, out = run_json("run", "service-down", "-l", "lab-1", "-e", json.dumps({"runbook_verify_promql": payload}))
    # Rendered as data: Prometheus gets the text and calls it bad PromQL.
    assert code == 2 and "not valid PromQL" in out["hosts"]["lab-1"]["message"], out
    code, out = run_json("run", "service-down", "-l", "lab-1", "-e", json.dumps({"some_note": payload}))
    assert code == 4, out
    assert not path.exists()
    # ansible-playbook with a trusted -e @file (as AWX or a script passes it): the frame
    # reads the request untemplated and refuses it.
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump({"service": payload}))
    done = subprocess.run(["ansible-playbook", "runbook.remediation.service_down", "-i", str(lab.inventory_path),
                           "-l", "lab-1", "-e", f"@{extra}"], capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode != 0 and "templates are not accepted" in done.stdout, done.stdout[-3000:]
    assert not path.exists(), "a trusted extra var was rendered before the frame refused it"


def test_breaker_reset_is_scoped(lab, own_envelope):
    result = runbook("breaker", "reset", "service-down", "--target", "no-such-host/demo")
    assert result.returncode == 2 and "unknown target" in result.stderr, result.stderr


# --- secrets --------------------------------------------------------------------------------------

SEEDS = {
    "db": "SEED-db-pass-7f3b9c1e",
    "api": "SEED-api-token-5d2a8e4f",
    "vault": "SEED-vault-secret-9a1c6b3d",
    "hook": "SEED-hook-token-2e7f4c8a",
}


@pytest.fixture
def seeded_inventory(lab, tmp_path):
    """The lab's inventory, its services carrying a database password and an API token,
    the Alertmanager password vault-encrypted, a webhook URL with its token in the env."""
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("throwaway-vault-password\n")
    vault_pass.chmod(0o600)
    encrypted = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-vault"), "encrypt_string", "--vault-password-file",
         str(vault_pass), SEEDS["vault"]], capture_output=True, text=True, check=True).stdout
    ciphertext = encrypted.split("!vault |", 1)[1]
    data = yaml.safe_load(lab.inventory_path.read_text())
    for group in data["all"]["children"]["lab"]["children"].values():
        for host in group["hosts"].values():
            for service in host["runbook_services"]:
                service["database"]["password"] = SEEDS["db"]
                service["api_token"] = SEEDS["api"]
    data["all"]["vars"]["runbook_alertmanager_username"] = "am"
    text = yaml.safe_dump(data, sort_keys=False)
    lines = "\n".join("      " + line.strip() for line in ciphertext.strip().splitlines())
    text = text.replace("  vars:\n", f"  vars:\n    runbook_alertmanager_password: !vault |\n{lines}\n", 1)
    path = tmp_path / "seeded.yml"
    path.write_text(text)
    return path, vault_pass


def test_no_seeded_secret_reaches_the_state_directory(lab, seeded_inventory, own_envelope):
    inventory, vault_pass = seeded_inventory
    env = {"ANSIBLE_VAULT_PASSWORD_FILE": str(vault_pass),
           "RUNBOOK_WEBHOOK_URL": f"http://127.0.0.1:9/hooks/{SEEDS['hook']}"}
    outputs = []
    # A real remediation with a firing alert, so the frame silences it with the vault password.
    lab.break_service("crash", "lab-1")
    wait_for(lambda: http_status(lab.host("lab-1").health_url) != 200, timeout=10, what="lab-1 down")
    url = f"http://127.0.0.1:{lab.state().alertmanager_port}/api/v2/alerts?active=true"

    def firing():
        with urllib.request.urlopen(url, timeout=5) as response:
            return any(a["labels"].get("alertname") == "ServiceDown" and a["labels"].get("host") == "lab-1"
                       for a in json.load(response))

    try:
        wait_for(firing, timeout=30, what="ServiceDown firing for lab-1")
        result = runbook("-v", "-o", "json", "run", "service-down", "-i", str(inventory), "-l", "lab-1", env=env)
        outputs.append(result.stdout + result.stderr)
        assert json.loads(result.stdout)["hosts"]["lab-1"]["outcome"] == "remediated", result.stdout[-2000:]
        assert "silenced ServiceDown" in result.stdout, result.stdout[-2000:]
    finally:
        restore_host(lab, "lab-1")

    def every_scenario(*command: str) -> list[str]:
        texts = []
        for scenario in catalogue.catalogue(find_collection()):
            result = runbook("-v", "-o", "json", command[0], scenario.name, *command[1:], "-i", str(inventory),
                             "-l", "lab-1", env=env)
            assert "Traceback" not in result.stderr, result.stderr[-2000:]
            texts.append(result.stdout + result.stderr)
        return texts

    # Diagnoses change nothing (check mode): they run beside the confirmed runs, which go
    # one after another as they would on call.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        diagnoses = pool.submit(every_scenario, "diagnose")
        outputs += every_scenario("run", "--yes")
        outputs += diagnoses.result()

    state = Path(os.environ["RUNBOOK_STATE_DIR"])
    files = [p for p in state.rglob("*") if p.is_file()] + list(own_envelope.parent.glob("envelope.db*"))
    assert any("runs" in p.parts for p in files), "no run artifacts were written"
    for name, secret in SEEDS.items():
        for text in outputs:
            assert secret not in text, f"the {name} secret is in the command's output"
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"the {name} secret is in {path}"
