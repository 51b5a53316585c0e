"""`runbook list`, `runbook run` and `runbook diagnose` end to end (real ansible-playbook runs),
with the incident timeline: the fixture collection gets this checkout's timeline store,
callback plugin and severity matrix, so runs are recorded exactly as in production."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runbook_remediation import shell
from runbook_remediation.errors import ExitCode
from runbook_remediation.terminal import Terminal
from runbook_remediation.timeline import open_store

REPO = Path(__file__).resolve().parents[3]
TIMELINE_FILES = ("plugins/module_utils/_timeline.py", "plugins/callback/timeline.py", "meta/severity.yml")


@pytest.fixture(autouse=True)
def timeline_in_collection(collection):
    """The fixture collection with the real timeline store, callback and matrix."""
    for name in TIMELINE_FILES:
        (collection / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, collection / name)
    return collection


def invoke(*args: str, input: str | None = None):
    return CliRunner(catch_exceptions=False).invoke(shell.cli, list(args), input=input)


def as_json(result) -> dict:
    return json.loads(result.stdout)


def runs(state: Path) -> list[Path]:
    return sorted((state / "runs").iterdir()) if (state / "runs").exists() else []


# --- list -------------------------------------------------------------------------------------

def test_list_text(runbook_env):
    result = invoke("list")
    assert result.exit_code == 0, result.output
    for text in ("outcome", "slow", "wipe-cache", "FixtureOutcome", "P1"):
        assert text in result.stdout


def test_list_json(runbook_env):
    result = invoke("-o", "json", "list")
    assert result.exit_code == 0, result.output
    scenarios = json.loads(result.stdout)
    assert [s["name"] for s in scenarios] == ["outcome", "slow", "wipe-cache"]
    assert scenarios[2] == {
        "name": "wipe-cache", "playbook": "runbook.remediation.wipe_cache",
        "description": "Pretends to wipe a cache (destructive).", "severity": "P1", "alerts": ["CacheFull"],
        "destructive": True, "managers": ["systemd"], "revert": {},
    }


# --- run: outcomes and exit codes ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ("healthy", ExitCode.NOTHING_TO_DO),
        ("remediated", ExitCode.REMEDIATED),
        ("failed", ExitCode.FAILED),
        ("escalate", ExitCode.ESCALATE),
    ],
)
def test_run_exit_code_follows_the_outcome(runbook_env, inventory, outcome, code):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1",
                    "-e", f"fixture_outcome={outcome}")
    assert result.exit_code == code, result.output
    data = as_json(result)
    assert data["scenario"] == "outcome"
    assert data["outcome"] == outcome
    assert data["exit_code"] == code
    assert data["hosts"]["local-1"]["outcome"] == outcome
    assert data["hosts"]["local-1"]["check_mode"] is False
    artifacts = Path(data["artifacts"])
    assert artifacts.is_relative_to(runbook_env / "runs") and (artifacts / "stdout").is_file()


def test_run_check_mode_is_planned_and_exits_0(runbook_env, inventory):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1", "--check",
                    "-e", "fixture_outcome=planned")
    assert result.exit_code == 0, result.output
    host = as_json(result)["hosts"]["local-1"]
    assert host["check_mode"] is True
    assert host["actions"] == ["would restart demo"]


def test_run_text_summary(runbook_env, inventory):
    result = invoke("run", "outcome", "-i", str(inventory), "-l", "local-1", "-e", "fixture_outcome=remediated")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "local-1  remediated  fixture says remediated" in out
    assert "findings:" in out and "- the fixture was asked for an outcome" in out
    assert "actions:" in out and "- restarted demo" in out
    assert "verification: passed=true, checks=1" in out
    # progress and the artifacts path go to stderr, never into the data
    assert "Record the scenario result" in result.stderr
    assert f"artifacts: {runbook_env / 'runs'}" in result.stderr
    assert "artifacts" not in out


def test_run_several_hosts_escalate_wins(runbook_env, inventory):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local",
                    "-e", '{"fixture_outcomes": {"local-1": "escalate", "local-2": "remediated"}}')
    assert result.exit_code == ExitCode.ESCALATE, result.output
    data = as_json(result)
    assert {h: e["outcome"] for h, e in data["hosts"].items()} == {"local-1": "escalate", "local-2": "remediated"}
    assert "a human must decide" in result.stderr


def test_run_unreachable_host(runbook_env, inventory):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1,down")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    hosts = as_json(result)["hosts"]
    assert hosts["local-1"]["outcome"] == "healthy"
    assert hosts["down"]["outcome"] == "unreachable"
    assert "Failed to connect to the host" in hosts["down"]["message"]


def test_run_host_fails_before_the_result(runbook_env, inventory):
    result = invoke("run", "outcome", "-i", str(inventory), "-l", "local-1", "--service", "nope")
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "local-1  failed  service nope is not in runbook_services on local-1" in result.stdout
    assert "task: Check the service" in result.stdout


def test_run_service_reaches_the_playbook(runbook_env, inventory):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1", "--service", "demo")
    assert result.exit_code == ExitCode.NOTHING_TO_DO, result.output
    assert as_json(result)["hosts"]["local-1"]["service"] == "demo"


@pytest.mark.parametrize(("value", "expected"), [("fixture_extra=5", "5"), ('{"fixture_extra": 5}', 5)])
def test_run_extra_vars_keep_ansibles_types(runbook_env, inventory, value, expected):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1", "-e", value)
    assert result.exit_code == ExitCode.NOTHING_TO_DO, result.output
    assert as_json(result)["hosts"]["local-1"]["evidence"]["extra"] == expected


def test_run_extra_vars_file(runbook_env, inventory, tmp_path):
    (tmp_path / "vars.yml").write_text("fixture_outcome: remediated\n", encoding="utf-8")
    result = invoke("run", "outcome", "-i", str(inventory), "-l", "local-1", "-e", f"@{tmp_path / 'vars.yml'}")
    assert result.exit_code == ExitCode.REMEDIATED, result.output


def test_run_timeout(runbook_env, inventory):
    result = invoke("run", "slow", "-i", str(inventory), "-l", "local-1", "--timeout", "1")
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "timed out after 1s" in result.stderr
    assert "artifacts:" in result.stderr
    assert result.stdout == ""


def test_run_ctrl_c(runbook_env, inventory):
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        result = invoke("run", "slow", "-i", str(inventory), "-l", "local-1")
    finally:
        timer.cancel()
    assert result.exit_code == ExitCode.CANCELLED, result.output
    assert "cancelled" in result.stderr


# --- run: bad input changes nothing ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "unknown scenario 'nope' (known: outcome, slow, wipe-cache)"),
        (["run", "wipe_cache"], "scenario names are kebab-case: wipe-cache"),
        (["run", "outcome", "-i", "/nonexistent/inventory.yml"], "inventory /nonexistent/inventory.yml not found"),
        (["run", "outcome", "-i", "{inventory}", "-e", "oops"], "is not KEY=VALUE, a JSON/YAML object or @FILE"),
        (["run", "outcome", "-i", "{inventory}", "-e", "{bad"], "not valid JSON/YAML"),
        (["run", "outcome", "-i", "{inventory}", "-l", " "], "--limit is empty"),
        (["run", "outcome", "-i", "{inventory}", "--service", ""], "--service is empty"),
        (["run", "outcome", "-i", "{inventory}", "--service", "a", "-e", "service=b"], "disagree"),
        (["diagnose", "nope"], "unknown scenario 'nope'"),
    ],
)
def test_run_bad_input(runbook_env, inventory, args, message):
    result = invoke(*[a.replace("{inventory}", str(inventory)) for a in args])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # one line (and maybe a hint)
    assert runs(runbook_env) == []  # nothing ran


def test_run_no_host_matches(runbook_env, inventory):
    result = invoke("run", "outcome", "-i", str(inventory), "-l", "nomatch")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert f"no host in {inventory} matches --limit 'nomatch'" in result.stderr


def test_run_without_inventory(runbook_env):
    result = invoke("run", "outcome")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "no inventory: pass -i or start the lab (runbook lab up)" in result.stderr


def test_run_inventory_from_the_environment(runbook_env, inventory, monkeypatch):
    monkeypatch.setenv("RUNBOOK_INVENTORY", str(inventory))
    result = invoke("run", "outcome", "-l", "local-1")
    assert result.exit_code == ExitCode.NOTHING_TO_DO, result.output


def test_run_defaults_to_the_labs_inventory(runbook_env, inventory):
    lab = runbook_env / "lab"
    lab.mkdir(parents=True)
    (lab / "inventory.yml").write_text(inventory.read_text(encoding="utf-8"), encoding="utf-8")
    result = invoke("run", "outcome", "-l", "local-1")
    assert result.exit_code == ExitCode.NOTHING_TO_DO, result.output
    assert str(lab / "inventory.yml") in result.stderr


def test_run_broken_playbook(runbook_env, inventory, collection):
    (collection / "playbooks" / "outcome.yml").write_text("- name: broken\n  hosts: all\n  tasks: [\n",
                                                          encoding="utf-8")
    result = invoke("run", "outcome", "-i", str(inventory))
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "ansible-playbook stopped before any host ran" in result.stderr
    assert "artifacts:" in result.stderr


def test_run_missing_playbook(runbook_env, inventory, collection):
    (collection / "playbooks" / "slow.yml").unlink()
    result = invoke("run", "slow", "-i", str(inventory))
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "slow.yml is missing" in result.stderr


# --- destructive scenarios ----------------------------------------------------------------------

def test_destructive_needs_yes_when_it_cannot_ask(runbook_env, inventory):
    result = invoke("run", "wipe-cache", "-i", str(inventory), "-l", "local-1")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "wipe-cache is destructive" in result.stderr and "--yes" in result.stderr
    assert runs(runbook_env) == []


def test_destructive_with_yes(runbook_env, inventory):
    result = invoke("run", "wipe-cache", "-i", str(inventory), "-l", "local-1", "--yes")
    assert result.exit_code == ExitCode.REMEDIATED, result.output


def test_destructive_check_mode_needs_no_confirmation(runbook_env, inventory):
    result = invoke("-o", "json", "run", "wipe-cache", "-i", str(inventory), "-l", "local-1", "--check")
    assert result.exit_code == ExitCode.REMEDIATED, result.output
    assert as_json(result)["outcome"] == "planned"


@pytest.mark.parametrize(("answer", "code"), [("y\n", ExitCode.REMEDIATED), ("n\n", ExitCode.CANCELLED)])
def test_destructive_asks_when_it_can(runbook_env, inventory, monkeypatch, answer, code):
    monkeypatch.setattr(Terminal, "can_prompt", lambda self: True)
    result = invoke("run", "wipe-cache", "-i", str(inventory), "-l", "local-1", input=answer)
    assert result.exit_code == code, result.output
    assert "Run it on local-1" in result.stderr
    assert bool(runs(runbook_env)) is (code == ExitCode.REMEDIATED)


# --- diagnose -----------------------------------------------------------------------------------

@pytest.mark.parametrize("outcome", ["healthy", "planned", "escalate"])
def test_diagnose_exits_0_whatever_it_found(runbook_env, inventory, outcome):
    result = invoke("-o", "json", "diagnose", "outcome", "-i", str(inventory), "-l", "local-1",
                    "-e", f"fixture_outcome={outcome}", "-e", "runbook_diagnose_only=false")
    assert result.exit_code == 0, result.output
    data = as_json(result)
    host = data["hosts"]["local-1"]
    assert data["diagnose"] is True and data["exit_code"] == 0
    assert host["outcome"] == outcome
    assert host["evidence"]["diagnose_only"] is True  # the CLI's value wins over -e
    assert host["check_mode"] is True


def test_diagnose_text_shows_evidence(runbook_env, inventory):
    result = invoke("diagnose", "outcome", "-i", str(inventory), "-l", "local-1")
    assert result.exit_code == 0, result.output
    assert "evidence:" in result.stdout and "diagnose_only: true" in result.stdout
    assert "- the fixture was asked for an outcome" in result.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["-l", "down"], ExitCode.UNAVAILABLE),
        (["-l", "local-1", "--service", "nope"], ExitCode.FAILED),
    ],
)
def test_diagnose_fails_when_the_run_broke(runbook_env, inventory, args, code):
    result = invoke("diagnose", "outcome", "-i", str(inventory), *args)
    assert result.exit_code == code, result.output


# --- usage errors go through shell.main ----------------------------------------------------------

@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "outcome", "--timeout", "0"],
        ["run", "outcome", "--timeout", "soon"],
        ["diagnose", "outcome", "--check"],
        ["list", "extra"],
    ],
)
def test_usage_errors_exit_2(runbook_env, argv, capsys):
    with pytest.raises(SystemExit) as info:
        shell.main(argv)
    assert info.value.code == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.startswith("runbook: error:")


# --- the incident timeline ------------------------------------------------------------------------

def store_rows(run_id: str):
    with open_store() as store:
        run = store.get_run(run_id)
        incident = store.get_incident(run["incident_id"]) if run["incident_id"] else None
        return run, incident, store.events(run_id=run_id)


def test_a_remediating_run_is_recorded_and_opens_a_mitigated_incident(runbook_env, inventory):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1",
                    "-e", "fixture_outcome=remediated")
    assert result.exit_code == ExitCode.REMEDIATED, result.output
    data = as_json(result)
    run, incident, events = store_rows(data["run_id"])
    assert data["incident"] == incident["id"] == run["incident_id"]
    assert (run["scenario"], run["entrance"], run["outcome"], run["check_mode"]) == ("outcome", "cli", "remediated",
                                                                                     False)
    assert run["ended_at"] >= run["started_at"]
    assert run["extra"]["artifacts"] == data["artifacts"]
    # The callback recorded every task on the CLI's run.
    assert {e["task"] for e in events if e["kind"] == "task"} >= {"Check the service", "Probe",
                                                                  "Record the scenario result"}
    result_event = next(e for e in events if e["kind"] == "result")
    assert result_event["host"] == "local-1" and result_event["data"]["outcome"] == "remediated"
    # The incident: opened at the run's start by the person who ran it, mitigated by its result.
    assert incident["title"] == "outcome on local-1" and incident["severity"] == "P2"
    assert incident["opened_at"] == incident["acknowledged_at"] == run["started_at"]
    assert incident["mitigated_at"] == result_event["ts"]
    assert incident["status"] == "monitoring" and incident["hosts"] == ["local-1"]
    assert f"incident: {incident['id']}" in result.stderr


@pytest.mark.parametrize("args", [["-e", "fixture_outcome=healthy"], ["--check"]], ids=["healthy", "check"])
def test_no_incident_when_nothing_to_do_or_check_mode(runbook_env, inventory, args):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1", *args)
    assert result.exit_code in (ExitCode.NOTHING_TO_DO, ExitCode.REMEDIATED), result.output
    data = as_json(result)
    assert data["incident"] is None
    run, incident, events = store_rows(data["run_id"])
    assert incident is None and run["ended_at"] and events  # still recorded
    with open_store() as store:
        assert store.list_incidents() == []


@pytest.mark.parametrize(("kind", "code", "opened"), [
    ("input", ExitCode.BAD_INPUT, False), ("remediation", ExitCode.FAILED, True)])
def test_a_refused_request_opens_no_incident_a_failed_remediation_does(runbook_env, inventory, kind, code, opened):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1",
                    "-e", "fixture_outcome=failed", "-e", f"fixture_error_kind={kind}")
    assert result.exit_code == code, result.output
    data = as_json(result)
    assert (data["incident"] is not None) is opened
    with open_store() as store:
        assert len(store.list_incidents()) == int(opened)
    if not opened:
        assert "invalid input: no incident opened" in result.stderr


def test_escalation_opens_an_unmitigated_incident(runbook_env, inventory):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1",
                    "-e", "fixture_outcome=escalate")
    assert result.exit_code == ExitCode.ESCALATE, result.output
    _run, incident, _events = store_rows(as_json(result)["run_id"])
    assert incident["status"] == "investigating" and incident["mitigated_at"] is None


def test_incident_option_attaches_and_acknowledges(runbook_env, inventory):
    opened = invoke("incident", "open", "demo is flapping", "--severity", "P1", "--no-notify")
    assert opened.exit_code == 0, opened.output
    incident_id = opened.stdout.strip()
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1",
                    "--incident", incident_id, "-e", "fixture_outcome=remediated")
    assert result.exit_code == 0, result.output
    data = as_json(result)
    run, incident, _events = store_rows(data["run_id"])
    assert data["incident"] == incident_id == run["incident_id"]
    assert incident["severity"] == "P1"  # kept: the run does not reclassify
    assert incident["acknowledged_at"] <= run["started_at"] <= incident["mitigated_at"]
    with open_store() as store:
        assert [i["id"] for i in store.list_incidents()] == [incident_id]  # no second incident


def test_incident_from_the_environment(runbook_env, inventory, monkeypatch):
    incident_id = invoke("incident", "open", "x", "--no-notify").stdout.strip()
    monkeypatch.setenv("RUNBOOK_INCIDENT", incident_id)
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1")
    assert as_json(result)["incident"] == incident_id


def test_unknown_incident_is_bad_input(runbook_env, inventory):
    result = invoke("run", "outcome", "-i", str(inventory), "-l", "local-1", "--incident", "INC-20990101-0001")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "no incident INC-20990101-0001" in result.stderr
    assert runs(runbook_env) == []


def test_the_callback_is_enabled_after_the_users_own(runbook_env, inventory, monkeypatch):
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "ansible.posix.profile_tasks")
    monkeypatch.setenv("RUNBOOK_WEBHOOK_URL", "https://hooks.example/services/T000/B000/s3cr3tw3bh00k")
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1")
    assert result.exit_code == ExitCode.NOTHING_TO_DO, result.output
    data = as_json(result)
    command = (Path(data["artifacts"]) / "command").read_text(encoding="utf-8")
    env = json.loads(command)["env"]
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "ansible.posix.profile_tasks,runbook.remediation.timeline"
    assert env["RUNBOOK_RUN_ID"] == data["run_id"] and env["RUNBOOK_ENTRANCE"] == "cli"
    assert env["RUNBOOK_TIMELINE_DB"] == str(runbook_env / "timeline.db")
    assert "s3cr3tw3bh00k" not in command and "RUNBOOK_WEBHOOK_URL" not in env


def test_timeline_unavailable_does_not_stop_the_remediation(runbook_env, inventory, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("RUNBOOK_TIMELINE_DB", str(blocker / "timeline.db"))
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1",
                    "-e", "fixture_outcome=remediated")
    assert result.exit_code == ExitCode.REMEDIATED, result.output
    assert "incident timeline unavailable" in result.stderr
    assert as_json(result)["incident"] is None


# --- destructive scenarios: runbook_confirm ---------------------------------------------------------

def extravars_of(data: dict) -> dict:
    """What ansible-runner handed to the playbook (env/extravars of the run's directory)."""
    private = Path(data["artifacts"]).parent.parent
    path = private / "env" / "extravars"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}


@pytest.mark.parametrize(
    ("args", "confirmed"),
    [(["--yes"], True), (["--check"], False), (["--check", "--yes"], True)],
    ids=["yes", "check", "check-yes"],
)
def test_destructive_run_passes_runbook_confirm_only_when_confirmed(runbook_env, inventory, args, confirmed):
    result = invoke("-o", "json", "run", "wipe-cache", "-i", str(inventory), "-l", "local-1", *args)
    assert result.exit_code == ExitCode.REMEDIATED, result.output
    assert extravars_of(as_json(result)).get("runbook_confirm") is (True if confirmed else None)


def test_destructive_prompt_confirms(runbook_env, inventory, monkeypatch):
    monkeypatch.setattr(Terminal, "can_prompt", lambda self: True)
    result = invoke("-o", "json", "run", "wipe-cache", "-i", str(inventory), "-l", "local-1", input="y\n")
    assert result.exit_code == ExitCode.REMEDIATED, result.output
    assert extravars_of(json.loads(result.stdout[result.stdout.index("{"):]))["runbook_confirm"] is True


def test_non_destructive_run_gets_no_confirmation_var(runbook_env, inventory):
    result = invoke("-o", "json", "run", "outcome", "-i", str(inventory), "-l", "local-1", "--yes")
    assert "runbook_confirm" not in extravars_of(as_json(result))


def test_runbook_confirm_cannot_be_given_by_hand(runbook_env, inventory):
    result = invoke("run", "wipe-cache", "-i", str(inventory), "-l", "local-1", "-e", "runbook_confirm=true")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "use --yes" in result.stderr
    assert runs(runbook_env) == []


# --- secrets passed as extra vars -------------------------------------------------------------------

SECRET_PLAYBOOK = """---
- name: Secret fixture
  hosts: all
  gather_facts: false
  tasks:
    - name: Use the secrets
      ansible.builtin.assert:
        that:
          - db_password == 'hunter2-s3cret'
          - api.token == 'tok-9f8e7d6c5b'
        quiet: true

    - name: Record the scenario result
      ansible.builtin.set_fact:
        runbook_result:
          scenario: secret-use
          host: "{{ inventory_hostname }}"
          outcome: remediated
          message: used a password of {{ db_password | length }} characters
          findings: []
          actions: [logged in]
          verification: {}
          evidence: {password_length: "{{ db_password | length }}"}
          check_mode: "{{ ansible_check_mode }}"
"""


@pytest.fixture
def secret_scenario(collection):
    (collection / "playbooks" / "secret_use.yml").write_text(SECRET_PLAYBOOK, encoding="utf-8")
    with (collection / "meta" / "scenarios.yml").open("a", encoding="utf-8") as handle:
        handle.write("  - {name: secret-use, playbook: secret_use, description: Uses secrets., severity: P2, "
                     "alerts: [], destructive: false, managers: [systemd]}\n")


def every_file_under(*roots: Path):
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def test_secret_extra_vars_reach_the_playbook_but_no_file(runbook_env, inventory, secret_scenario, monkeypatch,
                                                          tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # where the secrets file lives during the run
    result = invoke("-o", "json", "run", "secret-use", "-i", str(inventory), "-l", "local-1",
                    "-e", '{"db_password": "hunter2-s3cret", "api": {"token": "tok-9f8e7d6c5b"}}',
                    "-e", "service=demo")
    assert result.exit_code == ExitCode.REMEDIATED, result.output
    data = as_json(result)
    assert data["hosts"]["local-1"]["evidence"]["password_length"] == 14  # it reached the playbook
    assert extravars_of(data) == {"service": "demo"}  # only the plain var is on disk
    files = list(every_file_under(runbook_env))
    assert any(f.name == "timeline.db" for f in files)
    assert any(f.parent.name == "job_events" for f in files)
    for path in files:
        content = path.read_bytes()
        for secret in (b"hunter2-s3cret", b"tok-9f8e7d6c5b"):
            assert secret not in content, f"{secret!r} in {path}"
    assert "hunter2-s3cret" not in result.output
    assert list(runtime.iterdir()) == []  # the secrets file is gone
    run, _incident, _events = store_rows(data["run_id"])
    assert run["extra"]["vars_off_disk"] == ["api", "db_password"]  # names only
