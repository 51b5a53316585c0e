"""runner.py: argument building, input checks, the environment allow-list, real runs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from runbook_remediation import runner
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import BadInput, ExitCode
from runbook_remediation.results import Collector, summarize

# --- -e parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["service=gateway"], {"service": "gateway"}),
        (["count=5"], {"count": "5"}),  # k=v stays a string, as in ansible-playbook
        (["a=1 b='two words'"], {"a": "1", "b": "two words"}),
        (["url=http://x/?a=b"], {"url": "http://x/?a=b"}),
        (['{"count": 5, "on": true}'], {"count": 5, "on": True}),
        (["{count: 5, name: x}"], {"count": 5, "name": "x"}),
        (["a=1", '{"a": 2}', "a=3"], {"a": "3"}),  # left to right, the last wins
        ([], {}),
    ],
)
def test_parse_extra_vars(values, expected):
    assert runner.parse_extra_vars(values) == expected


def test_parse_extra_vars_from_file(tmp_path):
    (tmp_path / "vars.yml").write_text("service: gateway\nthreshold: 0.5\n", encoding="utf-8")
    assert runner.parse_extra_vars([f"@{tmp_path / 'vars.yml'}"]) == {"service": "gateway", "threshold": 0.5}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty string"),
        ("service", "KEY=VALUE"),
        ("service=a b", r"'b' is not KEY=VALUE \(quote a value with spaces"),
        ("service={{ lookup('pipe','id') }}", "quote a value with spaces"),
        ("=x", "not a valid variable name"),
        ("1a=x", "not a valid variable name"),
        ("{bad", "not valid JSON/YAML"),
        ("{a: [1, 2}", "not valid JSON/YAML"),
        ("a='unterminated", "-e"),
        ("@/nonexistent/vars.yml", "cannot read it"),
    ],
)
def test_parse_extra_vars_refuses(value, message):
    with pytest.raises(BadInput, match=message) as info:
        runner.parse_extra_vars([value])
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_parse_extra_vars_file_must_hold_a_mapping(tmp_path):
    (tmp_path / "list.yml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(BadInput, match="mapping"):
        runner.parse_extra_vars([f"@{tmp_path / 'list.yml'}"])


# --- validation and arguments ---------------------------------------------------------------

def request(inventory: Path, **kwargs) -> runner.Request:
    defaults = {"scenario": "outcome", "playbook": "runbook.remediation.outcome", "inventory": inventory}
    return runner.Request(**{**defaults, **kwargs})


def test_validate_refuses_a_missing_inventory(tmp_path):
    with pytest.raises(BadInput, match=f"inventory {tmp_path / 'nope.yml'} not found"):
        runner.validate(request(tmp_path / "nope.yml"))


def test_validate_refuses_a_binary_inventory_file_but_not_a_binary_script(tmp_path):
    # ansible-core would only warn, and run on the hosts its INI parser took from the bytes.
    binary = tmp_path / "hosts.yml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    with pytest.raises(BadInput, match=r"hosts.yml is not UTF-8 text \(a binary file\?\): nothing was run"):
        runner.validate(request(binary))
    binary.chmod(0o755)  # an executable inventory is a dynamic inventory program: ansible runs it
    runner.validate(request(binary))
    directory = tmp_path / "inventory"
    directory.mkdir()
    runner.validate(request(directory))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": "  "}, "--limit is empty"),
        ({"timeout": 0}, "--timeout"),
        ({"extravars": {"when": datetime(2024, 1, 1)}}, "plain data"),
    ],
)
def test_validate_refuses(tmp_path, kwargs, message):
    inventory = tmp_path / "hosts"
    inventory.write_text("localhost\n", encoding="utf-8")
    with pytest.raises(BadInput, match=message):
        runner.validate(request(inventory, **kwargs))


def test_runner_kwargs(tmp_path):
    inventory = tmp_path / "hosts"
    ours = {"ANSIBLE_COLLECTIONS_PATH": "/c"}
    kwargs = runner.runner_kwargs(
        request(inventory, limit=" web-1 ", extravars={"service": "demo"}, check=True, timeout=30),
        tmp_path / "run", ours,
    )
    assert kwargs["playbook"] == "runbook.remediation.outcome"
    assert kwargs["inventory"] == str(inventory.resolve())
    assert kwargs["limit"] == "web-1"
    assert "extravars" not in kwargs  # written to env/extravars as data (write_extravars), never inline
    assert kwargs["cmdline"] == "--check"
    assert kwargs["quiet"] is True
    # ansible-runner's jsonfile fact cache costs a decode per task and host: facts stay in memory.
    assert kwargs["fact_cache_type"] == "memory"
    assert kwargs["envvars"] == ours
    assert kwargs["ident"] == "run"
    assert "timeout" not in kwargs  # enforced by runner._Stop, which also kills ansible's workers


def test_runner_kwargs_secret_file_goes_on_the_command_line(tmp_path):
    kwargs = runner.runner_kwargs(request(tmp_path / "hosts", check=True, secret_vars={"db_password": "x"}),
                                  tmp_path / "run", {}, tmp_path / "my secrets" / "vars.json")
    assert kwargs["cmdline"] == f"--check -e '@{tmp_path / 'my secrets' / 'vars.json'}'"
    assert "extravars" not in kwargs  # the secret is not among them


def test_split_secrets():
    plain, secret = runner.split_secrets({"service": "demo", "db_password": "x", "n": 3},
                                         lambda name, value: "password" in name)
    assert plain == {"service": "demo", "n": 3} and secret == {"db_password": "x"}


def test_secrets_file_is_private_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = runner.secrets_file({"token": "abc"})
    assert path.parent.parent == tmp_path
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert path.read_text(encoding="utf-8") == "token: abc\n"
    runner.remove_secrets_file(path)
    assert not path.parent.exists()
    runner.remove_secrets_file(None)


PAYLOAD = "{{ lookup('pipe', 'id') }}"


def test_extra_vars_are_written_as_data(tmp_path):
    runner.write_extravars(tmp_path, {"service": PAYLOAD, "n": 3, "nested": {"k": [PAYLOAD, 1]}, "b": True})
    path = tmp_path / "env" / "extravars"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text(encoding="utf-8")
    assert "service: !unsafe" in text and "n: 3" in text and "b: true" in text
    assert text.count("!unsafe") == 2  # every string that could be a template, no key, no number
    (tmp_path / "plain").mkdir()
    runner.write_extravars(tmp_path / "plain", {"n": "5"})  # stays the string "5"
    assert (tmp_path / "plain" / "env" / "extravars").read_text(encoding="utf-8") == "n: '5'\n"


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("ANSIBLE_BECOME_PASS", "x", False), ("ANSIBLE_VAULT_PASSWORD", "x", False), ("ANSIBLE_GALAXY_TOKEN", "x", False),
    ("ANSIBLE_VAULT_PASSWORD_FILE", "/etc/vault-pass", True), ("ANSIBLE_FORKS", "10", True),
    ("DOCKER_HOST", "tcp://127.0.0.1:2375", True), ("DOCKER_HOST", "tcp://admin:s3cret@127.0.0.1:2375", False),
    ("RUNBOOK_WEBHOOK_URL", "http://x", False), ("RUNBOOK_SECRET_PATTERNS", "a", True), ("HOME", "/root", True),
    ("AWS_SECRET_ACCESS_KEY", "x", False),
])
def test_what_reaches_a_child(name, value, allowed):
    assert runner.is_allowed(name, value) is allowed


def test_run_directories_are_pruned(tmp_path):
    now = 1_800_000_000.0
    names = [f"2026120{d}T000000-service-down" for d in range(1, 8)]
    for index, name in enumerate(names):
        path = tmp_path / name
        path.mkdir()
        os.utime(path, (now - (7 - index) * 86400, now - (7 - index) * 86400))
    (tmp_path / "not-a-run").mkdir()
    removed = runner.prune_runs(tmp_path, keep=4, max_age_days=5.5, now=now)
    assert sorted(p.name for p in removed) == names[:3]  # beyond the newest four (older than 5.5 days too)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[3:], "not-a-run"])
    assert sorted(p.name for p in runner.prune_runs(tmp_path, keep=10, max_age_days=2.5, now=now)) == names[3:5]


@pytest.mark.parametrize("env", [{"RUNBOOK_RUNS_KEEP": "x"}, {"RUNBOOK_RUNS_KEEP": "0"},
                                 {"RUNBOOK_RUNS_MAX_AGE_DAYS": "-1"}])
def test_bad_retention_settings_are_bad_input(env):
    with pytest.raises(BadInput):
        runner.retention(env)


def test_timeline_env_appends_the_callback_once():
    env = runner.timeline_env("run-1", "/s/timeline.db", "INC-1", {"ANSIBLE_CALLBACKS_ENABLED": "a.b.c, d.e.f"})
    assert env == {"ANSIBLE_CALLBACKS_ENABLED": "a.b.c,d.e.f,runbook.remediation.timeline", "RUNBOOK_RUN_ID": "run-1",
                   "RUNBOOK_ENTRANCE": "cli", "RUNBOOK_TIMELINE_DB": "/s/timeline.db", "RUNBOOK_INCIDENT": "INC-1"}
    again = runner.timeline_env("r", "db", None, {"ANSIBLE_CALLBACKS_ENABLED": "runbook.remediation.timeline"})
    assert again["ANSIBLE_CALLBACKS_ENABLED"] == "runbook.remediation.timeline"
    assert "RUNBOOK_INCIDENT" not in again


def test_child_env_drops_our_secret_variables():
    inherited = {"RUNBOOK_WEBHOOK_URL": "https://hooks/T/B/secret", "RUNBOOK_STATE_DIR": "/s"}
    env = runner.child_env(inherited, {"RUNBOOK_RUN_ID": "r"}, prepared=inherited)
    assert env == {"RUNBOOK_STATE_DIR": "/s", "RUNBOOK_RUN_ID": "r"}


def test_child_env_without_a_launcher_is_the_allow_list_plus_ours():
    """ansible-rulebook's (runbook watch): nothing prepared, the same policy."""
    inherited = {"PATH": "/usr/bin", "HOME": "/root", "JAVA_HOME": "/jvm", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
                 "ANSIBLE_FORKS": "9", "ANSIBLE_COLLECTIONS_PATH": "/theirs", "RUNBOOK_STATE_DIR": "/s",
                 "RUNBOOK_API_TOKEN": "t0ken", "PYTHONPATH": "/x", "DROOLS_JPY_JVM_MAXMEM": "1G"}
    env = runner.child_env(inherited, {"PATH": "/venv/bin:/usr/bin", "ANSIBLE_COLLECTIONS_PATH": "/ours"})
    assert env == {"PATH": "/venv/bin:/usr/bin", "HOME": "/root", "JAVA_HOME": "/jvm", "ANSIBLE_FORKS": "9",
                   "ANSIBLE_COLLECTIONS_PATH": "/ours", "RUNBOOK_STATE_DIR": "/s", "DROOLS_JPY_JVM_MAXMEM": "1G"}


def test_runner_kwargs_minimal(tmp_path):
    kwargs = runner.runner_kwargs(request(tmp_path / "hosts"), tmp_path / "run", {})
    assert not {"limit", "extravars", "cmdline", "timeout"} & set(kwargs)


def test_new_run_dir_is_private_and_unique(tmp_path):
    now = datetime(2024, 5, 1, 12, 0, 0)
    first = runner.new_run_dir(tmp_path / "runs", "service-down", now)
    second = runner.new_run_dir(tmp_path / "runs", "service-down", now)
    assert first.name == "20240501T120000-service-down"
    assert second.name == "20240501T120000-service-down-2"
    assert first.stat().st_mode & 0o777 == 0o700


# --- environment ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("PATH", True), ("HOME", True), ("USER", True), ("LANG", True), ("LC_ALL", True), ("LC_CTYPE", True),
        ("TERM", True), ("TZ", True), ("SSH_AUTH_SOCK", True), ("DOCKER_HOST", True), ("DOCKER_CONFIG", True),
        ("KUBECONFIG", True), ("ANSIBLE_CONFIG", True), ("ANSIBLE_VAULT_PASSWORD_FILE", True),
        ("RUNBOOK_STATE_DIR", True),
        ("ANSIBLE_COLLECTIONS_PATH", False), ("ANSIBLE_COLLECTIONS_PATHS", False),
        ("AWS_SECRET_ACCESS_KEY", False), ("GITHUB_TOKEN", False), ("PYTHONPATH", False),
        ("LD_PRELOAD", False), ("VAULT_TOKEN", False), ("XLC_ALL", False),
        # ours, but secret: ansible-runner writes the child's environment to disk
        ("RUNBOOK_WEBHOOK_URL", False), ("RUNBOOK_API_TOKEN", False), ("RUNBOOK_DB_PASSWORD", False),
        ("RUNBOOK_DB_PASS", False), ("RUNBOOK_SSH_KEY", False), ("RUNBOOK_PWD", False),
        ("RUNBOOK_INCIDENT", True), ("RUNBOOK_TIMELINE_DB", True), ("RUNBOOK_SECRET_PATTERNS", True),
        ("JAVA_HOME", True), ("DROOLS_JPY_JVM_MAXMEM", True),
    ],
)
def test_allow_list(name, allowed):
    assert runner.is_allowed(name) is allowed


def test_child_env_of_ansible_runner():
    inherited = {"PATH": "/usr/bin", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "ANSIBLE_FORKS": "9",
                 "ANSIBLE_COLLECTIONS_PATH": "/theirs", "AWX_ISOLATED_DATA_DIR": "/old"}
    prepared = {**inherited, "ANSIBLE_STDOUT_CALLBACK": "awx_display", "ANSIBLE_CALLBACK_PLUGINS": "/cb",
                "AWX_ISOLATED_DATA_DIR": "/run/artifacts/1", "RUNNER_OMIT_EVENTS": "False",
                "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_COLLECTIONS_PATH": "/ours:/theirs"}
    ours = {"PATH": "/venv/bin:/usr/bin", "ANSIBLE_COLLECTIONS_PATH": "/ours:/theirs",
            "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_NOCOLOR": "1"}
    env = runner.child_env(inherited, ours, prepared=prepared)
    assert env == {
        "PATH": "/venv/bin:/usr/bin", "HOME": "/root", "ANSIBLE_FORKS": "9",
        "ANSIBLE_STDOUT_CALLBACK": "awx_display", "ANSIBLE_CALLBACK_PLUGINS": "/cb",
        "AWX_ISOLATED_DATA_DIR": "/run/artifacts/1", "RUNNER_OMIT_EVENTS": "False",
        "ANSIBLE_COLLECTIONS_PATH": "/ours:/theirs", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_NOCOLOR": "1",
    }


def test_child_env_keeps_a_users_host_key_checking():
    inherited = {"ANSIBLE_HOST_KEY_CHECKING": "False"}
    assert runner.child_env(inherited, {}, prepared=inherited)["ANSIBLE_HOST_KEY_CHECKING"] == "False"
    assert runner.child_env(inherited, {})["ANSIBLE_HOST_KEY_CHECKING"] == "False"
    assert "ANSIBLE_HOST_KEY_CHECKING" not in runner.child_env({}, {})


def test_our_env_puts_this_pythons_ansible_first(monkeypatch):
    env = runner.our_env("/c", {"PATH": "/usr/bin:/bin:/usr/bin"})
    first = env["PATH"].split(os.pathsep)[0]
    assert (Path(first) / "ansible-playbook").is_file()
    assert env["PATH"].split(os.pathsep).count("/usr/bin") == 1
    assert env["ANSIBLE_COLLECTIONS_PATH"] == "/c"
    assert env["ANSIBLE_NOCOLOR"] == "1" and env["ANSIBLE_RETRY_FILES_ENABLED"] == "0"
    assert env["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] == "True"  # never run on a half-parsed inventory
    assert "ANSIBLE_STDOUT_CALLBACK" not in env


# --- progress ---------------------------------------------------------------------------------

def feed_progress(progress):
    progress({"event": "playbook_on_task_start", "event_data": {"task": "Restart [demo]"}})
    progress({"event": "runner_on_ok", "event_data": {"host": "lab-1", "task": "Restart [demo]",
                                                      "duration": 1.234, "res": {"changed": True}}})
    progress({"event": "runner_on_failed", "event_data": {"host": "lab-2", "task": "Restart [demo]", "duration": 0.5,
                                                          "res": {"msg": "unit\nnot found"}}})
    progress({"event": "runner_on_skipped", "event_data": {"host": "lab-3", "task": "Restart [demo]"}})
    progress({"event": "runner_item_on_ok", "event_data": {"host": "lab-1", "task": "Restart [demo]"}})


def test_progress_lines_verbose():
    buffer = io.StringIO()
    feed_progress(runner.Progress(Console(file=buffer, no_color=True, width=200), verbose=True))
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "Restart [demo]"
    assert lines[1].split() == ["lab-1", "Restart", "[demo]", "changed", "1.2s"]
    assert lines[2].split() == ["lab-2", "Restart", "[demo]", "failed", "0.5s"]
    assert lines[3].strip() == "unit not found"
    assert lines[4].split() == ["lab-3", "Restart", "[demo]", "skipped"]
    assert len(lines) == 5


def test_progress_lines_default_show_what_ran_only():
    buffer = io.StringIO()
    feed_progress(runner.Progress(Console(file=buffer, no_color=True, width=200)))
    lines = buffer.getvalue().splitlines()
    assert [line.split()[0] for line in lines if not line.startswith("      ")] == ["lab-1", "lab-2"]
    assert lines[2].strip() == "unit not found"
    assert len(lines) == 3


# --- real runs (ansible-playbook on localhost) -----------------------------------------------

def run_fixture(runbook_env: Path, inventory: Path, scenario: str = "outcome", **kwargs):
    collector = Collector()
    info = runner.run(
        request(inventory, scenario=scenario, playbook=f"runbook.remediation.{scenario.replace('-', '_')}", **kwargs),
        collections_path=find_collection().env_collections_path(),
        runs_dir=runbook_env / "runs",
        handlers=[collector],
    )
    return info, collector


def test_real_run_passes_only_allowed_environment(runbook_env, inventory, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("RUNBOOK_FIXTURE_MARK", "passed")
    monkeypatch.setenv("ANSIBLE_FORKS", "3")
    before = dict(os.environ)
    info, collector = run_fixture(runbook_env, inventory, limit="local-1",
                                  extravars={"fixture_outcome": "remediated", "service": "demo"})
    assert dict(os.environ) == before  # our own environment is untouched
    assert (info.status, info.rc) == ("successful", 0)
    assert info.artifacts.is_relative_to(runbook_env / "runs")
    assert collector.results["local-1"]["outcome"] == "remediated"

    command = json.loads((info.artifacts / "command").read_text(encoding="utf-8"))
    env = command["env"]
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "s3cr3t-value" not in (info.artifacts / "command").read_text(encoding="utf-8")
    assert env["RUNBOOK_FIXTURE_MARK"] == "passed"
    assert env["ANSIBLE_FORKS"] == "3"
    assert env["ANSIBLE_COLLECTIONS_PATH"] == find_collection().env_collections_path()
    assert env["ANSIBLE_NOCOLOR"] == "1"
    assert env["ANSIBLE_STDOUT_CALLBACK"] == "awx_display"  # ansible-runner's, so events flow
    assert "ANSIBLE_HOST_KEY_CHECKING" not in env
    assert all(runner.is_allowed(k) or k.startswith(("ANSIBLE_", "AWX_", "RUNNER_")) for k in env)
    assert "--check" not in command["command"]
    assert "fixture_outcome=remediated" not in " ".join(command["command"])  # in env/extravars, 0600
    extravars = info.private_data_dir / "env" / "extravars"
    assert yaml.safe_load(extravars.read_text(encoding="utf-8"))["fixture_outcome"] == "remediated"
    assert extravars.stat().st_mode & 0o077 == 0


def test_real_run_check_mode(runbook_env, inventory):
    info, collector = run_fixture(runbook_env, inventory, limit="local-1", check=True)
    assert "--check" in json.loads((info.artifacts / "command").read_text(encoding="utf-8"))["command"]
    assert collector.results["local-1"]["check_mode"] is True


def test_real_run_unreachable_and_failures(runbook_env, inventory):
    info, collector = run_fixture(runbook_env, inventory, extravars={"fixture_outcomes": {"local-2": "escalate"}})
    assert info.status == "failed"
    summary = summarize(collector, "outcome", rc=info.rc)
    assert {h: e["outcome"] for h, e in summary.hosts.items()} == {
        "down": "unreachable", "local-1": "healthy", "local-2": "escalate"}
    assert "Failed to connect to the host" in summary.hosts["down"]["message"]
    assert summary.exit_code == ExitCode.ESCALATE


def descendants_running(pid_file: Path) -> bool:
    """Whether the process whose pid the slow fixture wrote is still alive."""
    if not pid_file.exists():
        return False
    return descendants_running_pid(int(pid_file.read_text(encoding="utf-8")))


def descendants_running_pid(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return bool(state.stdout.strip()) and not state.stdout.strip().startswith("Z")


def test_real_run_timeout_stops_the_whole_tree(runbook_env, inventory, tmp_path):
    pid_file = tmp_path / "sleep.pid"
    started = time.monotonic()
    # The timeout leaves ansible time to start on a loaded machine; the task sleeps far longer.
    # (8 s was not enough under CI load: the task had not started when the timeout hit.)
    info, collector = run_fixture(runbook_env, inventory, scenario="slow", limit="local-1", timeout=25,
                                  extravars={"fixture_sleep": 120, "fixture_pid_file": str(pid_file)})
    assert info.status == "timeout" and info.timed_out
    assert time.monotonic() - started < 100, "the run waited for the task instead of stopping it"
    assert "local-1" not in collector.results
    assert pid_file.exists(), "the task never started"
    time.sleep(0.3)
    assert not descendants_running(pid_file), "the task's process outlived the run"


def test_real_run_ctrl_c_cancels_and_restores_the_handler(runbook_env, inventory, tmp_path):
    previous = signal.getsignal(signal.SIGINT)
    pid_file = tmp_path / "sleep.pid"
    stop = threading.Event()

    def interrupt_once_the_task_runs():
        # Ctrl-C when the task is running, however long ansible takes to start here.
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline:
            if pid_file.exists():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    interrupter = threading.Thread(target=interrupt_once_the_task_runs, daemon=True)
    interrupter.start()
    started = time.monotonic()
    try:
        info, _collector = run_fixture(
            runbook_env, inventory, scenario="slow", limit="local-1",
            extravars={"fixture_sleep": 120, "fixture_pid_file": str(pid_file)},
        )
    finally:
        stop.set()
        interrupter.join()
    assert info.status == "canceled" and info.cancelled
    assert time.monotonic() - started < 100, "the run waited for the task instead of stopping it"
    assert signal.getsignal(signal.SIGINT) is previous
    assert pid_file.exists(), "the task never started"
    time.sleep(0.3)
    assert not descendants_running(pid_file)


TREE = """
import subprocess, sys, time
# like ansible: a worker in a session of its own, with a module process under it
worker = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"], start_new_session=True)
print(worker.pid, flush=True)
time.sleep(30)
"""


def test_kill_descendants_kills_workers_in_their_own_sessions():
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.3)
        killed = runner.kill_descendants(parent.pid)
        assert worker in killed  # a session leader: its group is its pid
        assert os.getpgrp() not in killed
        time.sleep(0.2)
        assert not descendants_running_pid(worker)
    finally:
        parent.kill()
        parent.wait()


def test_kill_descendants_never_kills_our_group():
    # a parent and child both in our process group: nothing may be killed
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; c = subprocess.Popen(['sleep', '30']); print(c.pid, flush=True); "
                               "c.wait()"],
        stdout=subprocess.PIPE, text=True,
    )
    child = int(parent.stdout.readline())
    try:
        assert runner.kill_descendants(parent.pid) == []
        assert parent.poll() is None
        assert descendants_running_pid(child)
    finally:
        os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()
    assert runner.kill_descendants(None) == []
