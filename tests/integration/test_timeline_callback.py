"""The runbook.remediation.timeline callback under real ansible-playbook runs.

Plain `ansible-playbook` with the callback enabled, secrets seeded as extra vars, in a
vars file, in a no_log task and in the scenario's result: every run and task result
lands in the SQLite timeline with times, hosts and changed/failed, and no secret is in
the database files' bytes. Runs from other entrances (the CLI through ansible-runner,
AWX, a rulebook) land in the same timeline. The CLI is not wired to the timeline yet:
its part is played here by the store API plus ansible-runner, the way the CLI runs
playbooks (a stand-in, said so where used).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.collection_loader import install_collection_loader

install_collection_loader()

from ansible_collections.runbook.remediation.plugins.module_utils._timeline import TimelineStore  # noqa: E402

DB_PASSWORD = "Pw-7f3b9c1e-SEED"
API_TOKEN = "tok_5d2a8e4f6b-SEED"
GITHUB_TOKEN = "ghp_Q9x8W7v6U5t4SEED"
OTHER_PASSWORD = "other-pass-SEED-42"
SECRETS = (DB_PASSWORD, API_TOKEN, GITHUB_TOKEN, OTHER_PASSWORD)
VISIBLE = "MARKER-VISIBLE-4711"
HOSTS = ("lab-a", "lab-b")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NO_LOG = "(output hidden by no_log)"
TASKS = ("Probe the service", "Call the API", "Change something", "Use the password quietly", "Try the database",
         "Skipped on purpose", "Record the result")
EVERY_TASK = {(host, task) for host in HOSTS for task in TASKS}

SCENARIO = """\
- name: Demo scenario
  hosts: all
  gather_facts: false
  vars:
    runbook_scenario: demo-timeline
  tasks:
    - name: Probe the service
      ansible.builtin.command: echo "{{ visible }} connecting as app with {{ db_password }}"
      changed_when: false

    - name: Call the API
      ansible.builtin.debug:
        msg: "GET /v1/jobs Authorization: Bearer {{ api_token }}"

    - name: Change something
      ansible.builtin.copy:
        content: "{{ inventory_hostname }}\\n"
        dest: "{{ workdir }}/changed-{{ inventory_hostname }}"
        mode: "0600"

    - name: Use the password quietly
      ansible.builtin.command: echo "{{ db_password }} {{ api_token }}"
      changed_when: false
      no_log: true

    - name: Try the database
      ansible.builtin.fail:
        msg: "postgresql://app:{{ other_password }}@db.example.com/app refused"
      ignore_errors: true

    - name: Skipped on purpose
      ansible.builtin.debug:
        msg: never
      when: false

    # What the role scenario_report records at the end of every scenario (the contract:
    # the fact runbook_result), set directly so this test does not follow that role's tasks.
    - name: Record the result
      ansible.builtin.set_fact:
        runbook_result:
          scenario: "{{ runbook_scenario }}"
          host: "{{ inventory_hostname }}"
          outcome: remediated
          message: "{{ visible }} restarted demo after a login with {{ db_password }}"
          findings:
            - "token {{ api_token }} was stale"
            - "{{ github_token }} found in the environment"
          actions: [restarted demo]
          evidence:
            api_key: "{{ api_token }}"
            log: "password={{ other_password }}"
"""


@pytest.fixture
def work(tmp_path):
    (tmp_path / "scenario.yml").write_text(SCENARIO)
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable} for name in HOSTS}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    # a vars file the operator passes with -e @file, as for a vault
    (tmp_path / "secrets.json").write_text(json.dumps({"api_token": API_TOKEN, "other_password": OTHER_PASSWORD,
                                                       "github_token": GITHUB_TOKEN}))
    (tmp_path / "state").mkdir()
    return tmp_path


def timeline_env(work: Path, **extra) -> dict:
    env = {**os.environ, "ANSIBLE_CALLBACKS_ENABLED": "runbook.remediation.timeline", "ANSIBLE_NOCOLOR": "1",
           "RUNBOOK_STATE_DIR": str(work / "state"), "RUNBOOK_SECRET_PATTERNS": r"ghp_[A-Za-z0-9]+"}
    for name in ("RUNBOOK_TIMELINE_DB", "RUNBOOK_INCIDENT", "RUNBOOK_RUN_ID", "RUNBOOK_ENTRANCE", "JOB_ID"):
        env.pop(name, None)
    env.update(extra)
    return env


def ansible_playbook(work: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = ["ansible-playbook", "-i", str(work / "inventory.yml"), str(work / "scenario.yml"),
            "-e", json.dumps({"db_password": DB_PASSWORD, "workdir": str(work), "visible": VISIBLE}),
            "-e", f"@{work / 'secrets.json'}", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env or timeline_env(work), timeout=300,
                          check=False, cwd=work)


def db_bytes(directory: Path) -> bytes:
    """Every file the timeline wrote (the database, its WAL and shared-memory files)."""
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


def test_plain_ansible_playbook_lands_in_the_timeline_without_secrets(work):
    result = ansible_playbook(work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runbook.remediation.timeline" not in result.stderr  # no warning

    state = work / "state"
    # the callback wrote the timeline and nothing else, in the state directory
    assert sorted(p.name for p in state.iterdir()) in (
        ["timeline.db"], ["timeline.db", "timeline.db-shm", "timeline.db-wal"])
    raw = db_bytes(state)
    assert VISIBLE.encode() in raw  # the byte search does find what is stored
    for secret in SECRETS:
        assert secret.encode() not in raw, f"{secret} is in the timeline"

    with TimelineStore(state / "timeline.db") as store:
        (run,) = store.list_runs()
        assert run["entrance"] == "ansible-playbook" and run["scenario"] == "demo-timeline"
        assert run["playbook"] == "scenario.yml" and run["incident_id"] is None
        assert run["check_mode"] is False and run["outcome"] == "remediated"
        assert TS_RE.match(run["started_at"]) and TS_RE.match(run["ended_at"]) and run["started_at"] < run["ended_at"]
        assert sorted(run["extra"]["stats"]) == list(HOSTS) and run["extra"]["hosts"] == list(HOSTS)
        events = store.events(run_id=run["id"])

    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert all(TS_RE.match(e["ts"]) for e in events)
    assert events[0]["kind"] == "note" and events[-1]["message"] == "run ended: remediated"
    for host in HOSTS:
        tasks = {e["task"]: e for e in events if e["kind"] == "task" and e["host"] == host}
        probe = tasks["Probe the service"]
        assert (probe["status"], probe["changed"], probe["failed"], probe["action"]) == (
            "ok", False, False, "ansible.builtin.command")
        assert probe["message"] == f"rc 0: {VISIBLE} connecting as app with ********"
        assert probe["data"]["stdout"] == [f"{VISIBLE} connecting as app with ********"]
        assert probe["data"]["duration"] >= 0
        assert tasks["Call the API"]["message"] == "GET /v1/jobs Authorization: ********"
        changed = tasks["Change something"]
        assert (changed["status"], changed["changed"]) == ("changed", True)
        quiet = tasks["Use the password quietly"]
        assert quiet["message"] == NO_LOG and set(quiet["data"]) == {"duration"}
        failed = tasks["Try the database"]
        assert (failed["status"], failed["failed"], failed["data"]["ignored"]) == ("failed", True, True)
        assert failed["message"] == "postgresql://app:********@db.example.com/app refused"
        assert tasks["Skipped on purpose"]["status"] == "skipped"
        (outcome,) = [e for e in events if e["kind"] == "result" and e["host"] == host]
        assert outcome["message"] == f"remediated: {VISIBLE} restarted demo after a login with ********"
        assert outcome["data"]["outcome"] == "remediated" and outcome["data"]["scenario"] == "demo-timeline"
        assert outcome["data"]["findings"] == ["token ******** was stale", "******** found in the environment"]
        assert outcome["data"]["actions"] == ["restarted demo"]
        assert outcome["data"]["evidence"] == {"api_key": "********", "log": "password=********"}

    # a second run appends to the same file: nothing changed this time
    result = ansible_playbook(work, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    with TimelineStore(state / "timeline.db") as store:
        first, second = store.list_runs()
        assert second["check_mode"] is True and second["id"] != first["id"]
        changed = [e for e in store.events(run_id=second["id"]) if e["task"] == "Change something"]
        assert [e["status"] for e in changed] == ["ok", "ok"]
    for secret in SECRETS:
        assert secret.encode() not in db_bytes(state)


def test_every_entrance_lands_in_one_incident(work):
    """The CLI (stand-in: the store API and ansible-runner, as the CLI runs playbooks),
    plain ansible-playbook, AWX and a rulebook all record into one incident."""
    import ansible_runner

    db = work / "state" / "timeline.db"
    with TimelineStore(db) as store:
        incident = store.new_incident("demo down", severity="P1", scenario="demo-timeline", created_by="oncall")
        cli_run = store.start_run(incident_id=incident, scenario="demo-timeline", entrance="cli", user="oncall")

    (work / "runner").mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(work / "runner"), playbook=str(work / "scenario.yml"),
        inventory=str(work / "inventory.yml"), quiet=True,
        extravars={"db_password": "not-a-secret-here", "workdir": str(work), "visible": VISIBLE,
                   "api_token": "x", "other_password": "y", "github_token": "z"},
        envvars={"ANSIBLE_CALLBACKS_ENABLED": "runbook.remediation.timeline", "RUNBOOK_TIMELINE_DB": str(db),
                 "RUNBOOK_RUN_ID": cli_run, "RUNBOOK_INCIDENT": incident, "RUNBOOK_ENTRANCE": "cli",
                 "ANSIBLE_COLLECTIONS_PATH": os.environ["ANSIBLE_COLLECTIONS_PATH"]},
    )
    assert runner.status == "successful", runner.stdout.read()

    env = timeline_env(work, RUNBOOK_TIMELINE_DB=str(db))
    for args, extra_env in (
        (["-e", f"runbook_incident={incident}"], {}),                       # plain ansible-playbook
        ([], {"RUNBOOK_INCIDENT": incident, "JOB_ID": "42"}),                 # AWX sets JOB_ID
        (["-e", json.dumps({"runbook_incident": incident, "ansible_eda": {"ruleset": "r", "rule": "x"}})], {}),
    ):
        result = ansible_playbook(work, *args, env={**env, **extra_env})
        assert result.returncode == 0, result.stdout + result.stderr

    with TimelineStore(db) as store:
        runs = store.list_runs(incident)
        assert [r["entrance"] for r in runs] == ["cli", "ansible-playbook", "awx", "rulebook"]
        cli = runs[0]
        assert cli["id"] == cli_run and cli["user"] == "oncall"  # the CLI's record, completed by the callback
        assert cli["playbook"] == "scenario.yml" and cli["outcome"] == "remediated" and cli["ended_at"]
        events = store.events(incident_id=incident)
        assert {e["run_id"] for e in events if e["kind"] == "task"} == {r["id"] for r in runs}
        assert events[0]["kind"] == "status" and events[0]["message"] == "opened (P1, investigating): demo down"
        for run in runs:
            done = {(e["host"], e["task"]) for e in events if e["run_id"] == run["id"] and e["kind"] == "task"}
            assert done == EVERY_TASK, run["entrance"]


def test_parallel_runs_share_the_file(work):
    db = work / "state" / "timeline.db"
    env = timeline_env(work, RUNBOOK_TIMELINE_DB=str(db))
    argv = ["ansible-playbook", "-i", str(work / "inventory.yml"), str(work / "scenario.yml"),
            "-e", f"@{work / 'secrets.json'}"]
    for i in range(3):
        (work / f"w{i}").mkdir()
    procs = [subprocess.Popen([*argv, "-e", json.dumps({"db_password": DB_PASSWORD, "visible": VISIBLE,
                                                        "workdir": str(work / f"w{i}")})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work)
             for i in range(3)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
        assert "runbook.remediation.timeline" not in err
    with TimelineStore(db) as store:
        runs = store.list_runs()
        assert len(runs) == 3 and all(r["outcome"] == "remediated" and r["ended_at"] for r in runs)
        for run in runs:
            tasks = [(e["host"], e["task"]) for e in store.events(run_id=run["id"]) if e["kind"] == "task"]
            assert sorted(tasks) == sorted(EVERY_TASK)


def test_a_broken_timeline_never_breaks_the_run(work):
    blocker = work / "not-a-directory"
    blocker.write_text("x")
    result = ansible_playbook(work, env=timeline_env(work, RUNBOOK_TIMELINE_DB=str(blocker / "timeline.db")))
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "runbook.remediation.timeline" in line]
    assert len(warnings) == 1, result.stderr
    assert "cannot open the timeline" in warnings[0] and "cannot create it" in warnings[0]


def test_an_interrupted_run_still_ends(work):
    """Ctrl-C in the middle: the run gets an end and the outcome `interrupted`."""
    (work / "slow.yml").write_text(
        "- name: Slow\n  hosts: lab-a\n  gather_facts: false\n  tasks:\n"
        "    - name: Started\n      ansible.builtin.debug:\n        msg: started\n"
        "    - name: Wait\n      ansible.builtin.command: sleep 29.7\n      changed_when: false\n")
    db = work / "state" / "timeline.db"
    proc = subprocess.Popen(["ansible-playbook", "-i", str(work / "inventory.yml"), str(work / "slow.yml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=timeline_env(work, RUNBOOK_TIMELINE_DB=str(db)), cwd=work)

    def started():
        if not db.exists():
            return False
        with TimelineStore(db) as store:
            return any(e["task"] == "Started" for e in store.events())

    def sleeping():
        # The Wait task's command runs: ansible has forked its worker. A SIGINT that lands while
        # ansible-core forks is lost (its handler raises inside logging's at-fork hook, which
        # swallows the KeyboardInterrupt), at a terminal as here; this test is about our end.
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                if cmdline.read_bytes() == b"sleep\x0029.7\x00":
                    return True
        return False

    deadline = time.monotonic() + 60
    while not (started() and sleeping()):
        assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, out + err
    with TimelineStore(db) as store:
        (run,) = store.list_runs()
        assert run["outcome"] == "interrupted" and TS_RE.match(run["ended_at"])
        assert store.events(run_id=run["id"])[-1]["message"] == "run interrupted before its end"


def test_run_id_from_the_environment(work):
    run_id = str(uuid.uuid4())
    result = ansible_playbook(work, env=timeline_env(work, RUNBOOK_RUN_ID=run_id, RUNBOOK_ENTRANCE="bogus"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "entrance 'bogus' is not one of cli, ansible-playbook, awx, rulebook" in result.stderr
    with TimelineStore(work / "state" / "timeline.db") as store:
        run = store.get_run(run_id)
        assert run["entrance"] == "ansible-playbook" and run["outcome"] == "remediated"
