"""Shared state (``RUNBOOK_STATE_DSN``): two controllers, two state directories, one real
PostgreSQL database (tests/postgres.py). The database's password is seeded and must be
found nowhere on disk under either state directory, nor in any output."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from runbook_remediation import envelope, shared_state, watcher
from runbook_remediation.collection import find_collection
from tests.postgres import free_port

REPO = Path(__file__).resolve().parents[3]
STATE_FILES = ("plugins/module_utils/_timeline.py", "plugins/callback/timeline.py", "meta/severity.yml",
               "plugins/module_utils/_envelope.py")
PASSWORD = "Seeded-Shared-Pw-7c41e9"


@pytest.fixture
def shared_dsn(postgres) -> str:
    """A database of its own, owned by a role of its own whose password is PASSWORD."""
    suffix = uuid.uuid4().hex[:12]
    role, database = f"team_{suffix}", f"shared_{suffix}"
    postgres.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", params=(PASSWORD,))
    postgres.execute(f"CREATE DATABASE {database} OWNER {role}")
    return f"postgresql://{role}:{PASSWORD}@{postgres.host}:{postgres.port}/{database}"


@pytest.fixture
def controllers(runbook_env, tmp_path, collection, shared_dsn) -> dict[str, dict[str, str]]:
    """Two controllers' environments: the same DSN, a state directory each."""
    for name in STATE_FILES:
        (collection / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, collection / name)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    base.update(RUNBOOK_COLLECTION_ROOT=str(collection), RUNBOOK_CACHE_DIR=str(tmp_path / "cache"),
                RUNBOOK_STATE_DSN=shared_dsn, NO_COLOR="1")
    return {name: {**base, "RUNBOOK_STATE_DIR": str(tmp_path / name)} for name in ("ctl-a", "ctl-b")}


def assert_password_nowhere(*places: Path | str) -> None:
    for place in places:
        if isinstance(place, str):
            assert PASSWORD not in place
            continue
        for path in place.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert PASSWORD.encode() not in path.read_bytes(), path


def _admit(env: dict[str, str], run_id: str, barrier, results) -> None:
    os.environ.clear()
    os.environ.update(env)
    try:
        store = envelope.open_envelope()
    except BaseException:
        # The others stop waiting: the test fails at once with this worker's error, where a
        # plain wait hung for ten joins of 60 s (seen once on a loaded machine).
        barrier.abort()
        raise
    barrier.wait(timeout=60)
    results.put(store.admit("web-1/api", "service-down", run_id, alert_key="fp@t0")["decision"])
    store.close()


def test_ten_runs_on_two_controllers_admit_exactly_one(controllers, tmp_path, shared_dsn):
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(10), context.Queue()
    envs = list(controllers.values())
    workers = [context.Process(target=_admit, args=(envs[i % 2], f"run-{i}", barrier, results)) for i in range(10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * 10
    assert sorted(results.get(timeout=5) for worker in workers) == ["act"] + ["duplicate"] * 9
    module = envelope._module()
    shared = module.Envelope(dsn=shared_dsn)
    assert len(shared.attempts(target="web-1/api")) == 1
    assert len(shared.status(recent=50)["decisions"]) == 10
    shared.close()
    for env in envs:  # nothing private was written instead
        assert not (Path(env["RUNBOOK_STATE_DIR"]) / "envelope.db").exists()


def test_a_cli_run_and_a_rulebook_run_on_two_controllers_land_in_one_incident(controllers, inventory, tmp_path,
                                                                              shared_dsn, monkeypatch):
    # Controller A: `runbook run` (ansible-runner, the timeline callback) opens the incident.
    cli = subprocess.run(
        [sys.executable, "-m", "runbook_remediation", "-o", "json", "run", "outcome", "-i", str(inventory),
         "-l", "local-1", "-e", "fixture_outcome=remediated"],
        capture_output=True, text=True, check=False, env=controllers["ctl-a"], timeout=300)
    assert cli.returncode == 0, cli.stderr
    incident = json.loads(cli.stdout)["incident"]
    assert incident

    # Controller B: a playbook as `runbook watch` starts it (ansible-rulebook's environment).
    env_b = controllers["ctl-b"]
    for name, value in env_b.items():
        monkeypatch.setenv(name, value)
    playbook = tmp_path / "rulebook-play.yml"
    playbook.write_text("- hosts: local-1\n  gather_facts: false\n  tasks:\n"
                        "    - name: rulebook follow-up\n      ansible.builtin.debug: {msg: follow-up}\n")
    with shared_state.child_env(env_b) as shared:
        assert PASSWORD not in json.dumps(shared) and Path(shared["PGPASSFILE"]).stat().st_mode & 0o777 == 0o600
        child = watcher.rulebook_env(find_collection(), env_b, ["local-1"], shared)
        child.update(RUNBOOK_INCIDENT=incident, ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"))
        assert PASSWORD not in json.dumps(child)
        play = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook)], capture_output=True,
                              text=True, check=False, env=child, timeout=300)
    assert play.returncode == 0, play.stdout + play.stderr
    assert not Path(shared["PGPASSFILE"]).exists()  # removed with its run

    from runbook_remediation.timeline import load_module

    with load_module().TimelineStore(dsn=shared_dsn) as store:
        runs = store.list_runs(incident_id=incident)
        assert sorted(run["entrance"] for run in runs) == ["cli", "rulebook"]
        tasks = {event["task"] for event in store.events(incident_id=incident) if event["kind"] == "task"}
        assert "rulebook follow-up" in tasks and len(tasks) > 1
        assert len(store.list_incidents()) == 1
    a, b = (Path(env["RUNBOOK_STATE_DIR"]) for env in controllers.values())
    assert (a / "runs").is_dir()  # the CLI run's artifacts (env, command) are there, without the password
    assert not (a / "timeline.db").exists() and not (b / "timeline.db").exists()
    assert_password_nowhere(a, b, cli.stdout, cli.stderr, play.stdout, play.stderr)


def test_an_unreachable_database_exits_5_and_does_nothing(controllers, inventory):
    env = dict(controllers["ctl-a"],
               RUNBOOK_STATE_DSN=f"postgresql://team:{PASSWORD}@127.0.0.1:{free_port()}/runbook")
    for argv in (["run", "outcome", "-i", str(inventory), "-l", "local-1"], ["breaker", "status"],
                 ["incident", "list"]):
        result = subprocess.run([sys.executable, "-m", "runbook_remediation", *argv], capture_output=True,
                                text=True, check=False, env=env, timeout=120)
        assert result.returncode == 5, (argv, result.stderr)
        error = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(error) == 1 and "shared state database postgresql://127.0.0.1:" in error[0], result.stderr
        assert "Traceback" not in result.stderr
        assert_password_nowhere(result.stdout, result.stderr)
    state = Path(env["RUNBOOK_STATE_DIR"])
    assert not (state / "runs").exists() and not (state / "timeline.db").exists()


@pytest.mark.parametrize("hint", [{"SUDO_USER": "alice"}, {"AWX_HOST": "https://awx.example"},
                                  {"RUNBOOK_SHARED_EXPECTED": "1"}])
def test_private_sqlite_where_shared_state_is_expected_warns_once(controllers, hint):
    env = {k: v for k, v in controllers["ctl-a"].items() if k != "RUNBOOK_STATE_DSN"}
    result = subprocess.run([sys.executable, "-m", "runbook_remediation", "breaker", "status"], capture_output=True,
                            text=True, check=False, env={**env, **hint}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "RUNBOOK_STATE_DSN" in line] != []
    assert len([line for line in result.stderr.splitlines() if "warning" in line]) == 1


def test_no_warning_for_a_private_user_run(controllers):
    env = {k: v for k, v in controllers["ctl-a"].items() if k not in ("RUNBOOK_STATE_DSN", "SUDO_USER")}
    result = subprocess.run([sys.executable, "-m", "runbook_remediation", "breaker", "status"], capture_output=True,
                            text=True, check=False, env=env, timeout=120)
    assert result.returncode == 0 and "warning" not in result.stderr
