"""Shared fixtures: the collection on ANSIBLE_COLLECTIONS_PATH and the test lab.

The lab used by tests is the product's own lab code (`runbook lab`), under its own
name and state directory, so a developer's lab is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook_remediation.collection import find_collection

REPO = Path(__file__).resolve().parents[1]


# --- parallel runs (pytest-xdist: RUNBOOK_TEST_WORKERS=2 scripts/test, `-n 2 --dist loadfile`) ---
#
# Each worker has a lab and a state directory of its own, and a test file runs whole on one
# worker (its module fixtures are made once). Files that share something of this machine's
# run on the same worker, one after the other: pytest_xdist_make_scheduler below makes each
# group one unit of work. (loadgroup cannot do it here: pytest 9.2 ignores the node id that
# xdist 3.8 rewrites to carry the group.)
SHARED_BY_FILES = {
    # One Kubernetes lab cluster per Docker engine (its kubelet owns every pod container).
    "kubernetes": ("test_kubernetes_lab.py", "test_kubernetes_lab_up.py", "test_kubernetes_scenarios.py"),
    # The host's ps lists every soffice process, the containers' too.
    "soffice": ("test_soffice_leak.py", "test_soffice_leak_container.py"),
    # pip builds the wheel in the checkout (build/), which the collection build reads.
    "packaging": ("test_wheel.py", "test_packaging.py"),
}
GROUP_OF_FILE = {name: group for group, names in SHARED_BY_FILES.items() for name in names}

# Seconds each slow file (or group) takes, from a --durations=0 run: the longest start
# first, so that no long file starts last on one worker while the other idles. Only the
# order depends on these figures; a file not listed counts as DEFAULT_SECONDS.
SECONDS = {
    "kubernetes": 580, "test_error_rate.py": 390, "test_oom_memory.py": 295, "test_drills.py": 295,
    "test_error_rate_provider.py": 200, "test_isolate_host.py": 175, "test_latency.py": 145,
    "test_fd_exhaustion.py": 125, "test_security.py": 115, "test_disk_full.py": 110, "test_closed_loop.py": 105,
    "test_db_restore.py": 100, "test_frame.py": 100, "soffice": 85, "test_admin_action.py": 85,
    "test_cpu_limit_raise.py": 85, "test_env_toggle.py": 75, "test_service_down.py": 70,
    "test_db_connection_pool.py": 65, "test_prometheus_retention.py": 65, "test_db_max_connections.py": 65,
    "test_config_restore.py": 65, "test_auth_abuse.py": 60, "test_cli_run.py": 60, "test_latency_scale.py": 55,
}
DEFAULT_SECONDS = {"integration": 30, "unit": 3}


def unit_of_work(nodeid: str) -> str:
    """The file a test is in, or the group of files it shares the machine with."""
    path = nodeid.split("::", 1)[0]
    return GROUP_OF_FILE.get(Path(path).name, path)


def expected_seconds(item) -> int:
    default = DEFAULT_SECONDS["integration" if "integration" in item.path.parts else "unit"]
    return SECONDS.get(GROUP_OF_FILE.get(item.path.name, item.path.name), default)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("k8s") and GROUP_OF_FILE.get(item.path.name) != "kubernetes":
            raise pytest.UsageError(f"{item.path.name} has k8s tests: list it in SHARED_BY_FILES['kubernetes']")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Longest first (stable: a file's tests keep their order); with --no-loadscope-reorder
        # xdist hands the units out in this order. A run on one process keeps pytest's order.
        items.sort(key=expected_seconds, reverse=True)
    elif os.environ.get("RUNBOOK_KUBERNETES_BUILD_STATUS"):
        # scripts/test builds the cluster's binaries meanwhile: the k8s tests last (stable).
        items.sort(key=lambda item: item.get_closest_marker("k8s") is not None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with each SHARED_BY_FILES group as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    return SharedFileScheduling(config, log)


def pytest_configure(config):
    """A worker's own lab name, state directory and Ansible temp directory (the CLI and the
    lab read them from the environment), so that two workers never share a lab."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    os.environ["RUNBOOK_LAB_NAME"] = f"{os.environ.get('RUNBOOK_LAB_NAME', 'test')}-{worker}"
    base = os.environ.get("RUNBOOK_STATE_DIR")
    state = Path(base) / worker if base else Path(tempfile.mkdtemp(prefix=f"runbook-test-state-{worker}-"))
    state.mkdir(parents=True, exist_ok=True)
    os.environ["RUNBOOK_STATE_DIR"] = str(state)
    os.environ["ANSIBLE_LOCAL_TEMP"] = str(state / "ansible-tmp")


@pytest.fixture(scope="session", autouse=True)
def collections_path():
    """FQCN playbooks and roles resolve to this checkout in every ansible subprocess."""
    path = find_collection().env_collections_path()
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = path
    return path


@pytest.fixture(autouse=True)
def own_envelope(tmp_path, monkeypatch):
    """Each test starts with an empty safety envelope (budgets, holds, breakers): the
    session's tests restart the same lab hosts far more often than its budget allows."""
    path = tmp_path / "envelope.db"
    monkeypatch.setenv("RUNBOOK_ENVELOPE_DB", str(path))
    return path


@pytest.fixture(scope="session")
def lab_env(tmp_path_factory):
    """Environment for the session's test lab (name + state dir)."""
    state = tmp_path_factory.mktemp("lab-state")
    return {"RUNBOOK_LAB_NAME": os.environ.get("RUNBOOK_LAB_NAME", "test"), "RUNBOOK_STATE_DIR": str(state)}


@pytest.fixture(scope="session")
def lab(lab_env):
    """A running lab with two systemd hosts and the docker-path service."""
    from runbook_remediation.lab.lab import Lab

    saved = {k: os.environ.get(k) for k in lab_env}
    os.environ.update(lab_env)
    the_lab = Lab(Path(lab_env["RUNBOOK_STATE_DIR"]))
    try:
        the_lab.up(hosts=2)
        yield the_lab
    finally:
        the_lab.down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2, what: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail with `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def restore_host(the_lab, name: str) -> None:
    """Bring a lab host's demo service back after a test broke it (`runbook lab heal`)."""
    the_lab.heal(name)
    host = the_lab.host(name)
    wait_for(lambda: http_status(host.health_url) == 200, what=f"{name} healthy again")


def runbook(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The `runbook` CLI as a user runs it, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "runbook_remediation", *args],
        capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}, timeout=600,
    )


def run_json(*args: str, extra: dict | None = None) -> tuple[int, dict]:
    """`runbook -o json ARGS [-e EXTRA]`: the exit code and the JSON it printed."""
    argv = ["-o", "json", *args]
    if extra:
        argv += ["-e", json.dumps(extra)]
    result = runbook(*argv)
    try:
        payload = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON on stdout (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.returncode, payload


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 15 cluster on 127.0.0.1 for the session (tests/postgres.py)."""
    from tests.postgres import running_cluster

    with running_cluster() as cluster:
        yield cluster


@dataclass
class StateBackend:
    """Where a test's envelope/timeline live: ``sqlite`` (files under tmp_path) or
    ``postgres`` (a fresh database of the session's cluster, reached by ``dsn``)."""

    kind: str
    tmp_path: Path
    dsn: str | None = None

    def envelope_args(self, name: str = "envelope.db") -> dict:
        return {"dsn": self.dsn} if self.dsn else {"path": str(self.tmp_path / name)}

    def timeline_args(self, name: str = "timeline.db") -> dict:
        return {"dsn": self.dsn} if self.dsn else {"path": str(self.tmp_path / name)}


def new_database(cluster) -> str:
    """A fresh database of ``cluster``; returns its DSN (a URL with the admin's password)."""
    name = "t_" + uuid.uuid4().hex[:16]
    cluster.execute(f"CREATE DATABASE {name}")
    return f"postgresql://{cluster.user}:{cluster.password}@{cluster.host}:{cluster.port}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request, tmp_path) -> StateBackend:
    """The envelope's and the timeline's suites run on both backends."""
    if request.param == "sqlite":
        return StateBackend("sqlite", tmp_path)
    cluster = request.getfixturevalue("postgres")
    return StateBackend("postgres", tmp_path, new_database(cluster))


# --- runbook watch -----------------------------------------------------------------------

@contextlib.contextmanager
def watcher(tmp_path: Path, *args: str):
    """`runbook watch` in a child process, as a user starts it; yields its webhook port;
    stopped with SIGTERM (it lets the remediations in flight finish)."""
    from runbook_remediation.lab.lab import free_port

    port = free_port()
    log = tmp_path / f"watch-{port}.log"
    with open(log, "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "runbook_remediation", "watch", "--port", str(port), *args],
                                   stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ))
    try:
        wait_for(lambda: "remediating alerts as they fire" in log.read_text() or process.poll() is not None,
                 timeout=120, what="runbook watch ready")
        assert process.poll() is None, log.read_text()
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "watch: stopped" in log.read_text(), log.read_text()


def watch_token() -> str:
    """The bearer token the running watcher made (<state dir>/watch/token)."""
    return (Path(os.environ["RUNBOOK_STATE_DIR"]) / "watch" / "token").read_text().strip()


def post_alerts(port: int, payload: dict, token: str | None = "") -> int:
    """POST an Alertmanager webhook payload to the watcher; ``token`` None sends none,
    "" the watcher's own. Returns the HTTP status (401 too)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token or watch_token()}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/alerts", data=json.dumps(payload).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def alert_payload(*alerts: dict) -> dict:
    """Alertmanager's webhook body around ``alerts``."""
    return {"version": "4", "status": "firing", "receiver": "runbook", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "", "alerts": list(alerts)}
