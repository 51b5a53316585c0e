"""`runbook list`, `runbook run` and `runbook diagnose` end to end (real ansible-playbook runs)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_remediation import shell
from runbook_remediation.errors import ExitCode
from runbook_remediation.terminal import Terminal


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
        "destructive": True, "managers": ["systemd"],
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
        (["run", "outcome", "-i", "{inventory}", "-e", "oops"], "-e takes KEY=VALUE"),
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
