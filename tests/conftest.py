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
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook_remediation.collection import find_collection

REPO = Path(__file__).resolve().parents[1]


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
