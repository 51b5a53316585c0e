"""Prometheus and Alertmanager for the lab: real servers, plain processes, 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from runbook_remediation.errors import Unavailable

PROMETHEUS_BIN = "prometheus"
ALERTMANAGER_BIN = "prometheus-alertmanager"
REDIS_EXPORTER_BIN = "prometheus-redis-exporter"
POSTGRES_EXPORTER_BIN = "prometheus-postgres-exporter"


@dataclass
class ScrapeTarget:
    host: str  # inventory host name, also the ``host`` label alerts carry
    service: str
    manager: str
    port: int


def http_json(url: str, method: str = "GET", body: dict | None = None, timeout: float = 2.0):
    """Small JSON helper for the lab's own loopback calls."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback URLs we built
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        payload = response.read()
    return json.loads(payload) if payload else None


def file_sd_targets(ports: list[int], labels: dict[str, str]) -> list[dict]:
    """A file_sd_configs targets file's content: every replica on 127.0.0.1, one label set."""
    return [{"targets": [f"127.0.0.1:{port}" for port in ports], "labels": dict(labels)}]


def write_file_sd(path: Path, ports: list[int], labels: dict[str, str]) -> bool:
    """Write a targets file whole (beside it, then renamed: Prometheus never reads half a
    file). Returns True when it changed."""
    text = json.dumps(file_sd_targets(ports, labels), indent=2) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def prometheus_config(targets: list[ScrapeTarget], alertmanager_port: int, rules_file: Path,
                      sd_files: list[str] | None = None, redis_targets: list[ScrapeTarget] = (),
                      postgres_targets: list[ScrapeTarget] = ()) -> dict:
    """``targets`` are scraped from a static list; services with replicas come from the
    targets files ``sd_files`` (file-based discovery, rewritten when they scale), in the
    same job so every rule sees the same labels. ``redis_targets`` and ``postgres_targets``
    are exporters, each kind a job of its own (the demo's rules do not apply to them)."""
    job: dict = {
        "job_name": "runbook-demo",
        "static_configs": [
            {
                "targets": [f"127.0.0.1:{t.port}"],
                "labels": {"host": t.host, "service": t.service, "manager": t.manager},
            }
            for t in targets
        ],
    }
    if sd_files:
        # Prometheus watches the files; the refresh is a fallback for a missed change.
        job["file_sd_configs"] = [{"files": list(sd_files), "refresh_interval": "5s"}]
    return {
        # 1 s scrape and evaluation: the lab should show an outage within seconds.
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "rule_files": [str(rules_file)],
        # The exporters' jobs stay, without targets, when their profile goes: a target removed
        # from a job gets staleness markers, while a removed job's series (and the alerts on
        # them, RedisDown for a Redis that is gone) lingered for the 5-minute lookback.
        "scrape_configs": [job] + [
            {
                "job_name": name,
                "static_configs": [{"targets": [f"127.0.0.1:{t.port}"],
                                    "labels": {"host": t.host, "service": t.service, "manager": t.manager}}
                                   for t in exporters],
            }
            for name, exporters in (("runbook-redis", redis_targets), ("runbook-postgres", postgres_targets))
        ],
    }


def alertmanager_config(webhook_url: str | None = None, token_file: str | None = None) -> dict:
    """The lab Alertmanager's configuration; with a watcher attached it posts to its
    webhook with the bearer token read from ``token_file`` (never written into this file)."""
    receiver: dict = {"name": "runbook"}
    if webhook_url:
        webhook: dict = {"url": webhook_url, "send_resolved": True}
        if token_file:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": token_file}}
        receiver["webhook_configs"] = [webhook]
    return {
        "route": {
            "receiver": "runbook",
            "group_by": ["alertname", "host", "service"],
            "group_wait": "0s",
            "group_interval": "1s",
            # With a watcher attached, a still-firing alert comes back soon, so a failed
            # remediation is retried (within the safety envelope's budget).
            "repeat_interval": "10s" if webhook_url else "1h",
        },
        # A critical alert makes its warning twin redundant for the same target, and a seed's
        # own name the generic alert it stands for.
        "inhibit_rules": [
            {
                "source_matchers": ["severity=critical"],
                "target_matchers": ["severity=warning"],
                "equal": ["alertname", "host", "service"],
            },
            *({"source_matchers": [f"alertname={seed}"], "target_matchers": [f"alertname={generic}"],
               "equal": ["host", "service"]}
              for names in PROFILE_ALERTS.values() for generic, seed in sorted(names.items())),
        ],
        "receivers": [receiver],
    }


# A seed system's own alert names, fired while its profile is up (`lab up --profile`): the
# rules file, and for each generic alert the seed's name for it on the profile's host (the
# seed's name inhibits the generic one in Alertmanager; drills wait for the seed's).
PROFILE_RULES = {"ggen-mcp": "prometheus-rules-ggen-mcp.yml"}
PROFILE_ALERTS = {"ggen-mcp": {"ServiceDown": "GgenMcpServiceDown", "HighErrorRate": "GgenMcpHighErrorRate",
                               "HighLatencyP95": "GgenMcpHighLatency", "HighDiskUsage": "GgenMcpHighDiskUsage"}}


def _rules_file(name: str) -> str:
    return resources.files("runbook_remediation.lab").joinpath(f"files/{name}").read_text("utf-8")


def rules_text(profiles: tuple[str, ...] | list[str] = ()) -> str:
    """The lab's rules, and the groups of each profile in ``profiles`` that has rules of its own."""
    text = _rules_file("prometheus-rules.yml")
    for profile in profiles:
        if profile in PROFILE_RULES:
            text += "\n" + _rules_file(PROFILE_RULES[profile]).split("\ngroups:\n", 1)[1]
    return text


def _pid_alive(pid: int | None, marker: str) -> bool:
    """True when ``pid`` runs and its command line contains ``marker`` (guards PID reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    return marker in cmdline and ") Z" not in stat


def stop_process(pid: int | None, marker: str, timeout: float = 10.0) -> bool:
    """SIGTERM, wait, SIGKILL. Returns True when a process was stopped."""
    if not _pid_alive(pid, marker):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid, marker):
        time.sleep(0.1)
    if _pid_alive(pid, marker):
        os.kill(pid, signal.SIGKILL)
    try:  # reap it when it is our own child (tests start the lab in-process)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


class Server:
    """One monitoring server process whose files live under ``directory``."""

    def __init__(self, kind: str, directory: Path, port: int, pid: int | None = None, redis_port: int | None = None,
                 postgres: tuple[int, str, Path] | None = None):
        self.kind = kind  # "prometheus" | "alertmanager" | "redis-exporter" | "postgres-exporter"
        self.directory = directory
        self.port = port
        self.pid = pid
        self.redis_port = redis_port  # redis-exporter: the Redis it reads
        self.postgres = postgres  # postgres-exporter: the server's port, the user, the password's file

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def title(self) -> str:
        return {"prometheus": "Prometheus", "alertmanager": "Alertmanager", "redis-exporter": "the Redis exporter",
                "postgres-exporter": "the PostgreSQL exporter"}[self.kind]

    @property
    def config_path(self) -> Path:
        return self.directory / f"{self.kind}.yml"

    @property
    def marker(self) -> str:
        """What its command line holds that no other process's does (the pid check)."""
        return f"127.0.0.1:{self.port}" if self.kind.endswith("-exporter") else str(self.config_path)

    def running(self) -> bool:
        return _pid_alive(self.pid, self.marker)

    def ready(self) -> bool:
        path = {"redis-exporter": "/health", "postgres-exporter": "/"}.get(self.kind, "/-/ready")
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=1) as response:  # noqa: S310
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def write_config(self, config: dict, extra_files: dict[str, str] | None = None) -> bool:
        """Write the config (and companions). Returns True when anything changed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        changed = False
        files = {self.config_path.name: yaml.safe_dump(config, sort_keys=False)}
        files.update(extra_files or {})
        for name, text in files.items():
            path = self.directory / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                changed = True
        return changed

    def argv(self) -> list[str]:
        data = self.directory / "data"
        if self.kind == "redis-exporter":
            return [shutil.which(REDIS_EXPORTER_BIN) or REDIS_EXPORTER_BIN,
                    "-redis.addr", f"redis://127.0.0.1:{self.redis_port}",
                    "-web.listen-address", f"127.0.0.1:{self.port}"]
        if self.kind == "postgres-exporter":
            return [shutil.which(POSTGRES_EXPORTER_BIN) or POSTGRES_EXPORTER_BIN,
                    f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        if self.kind == "prometheus":
            binary = shutil.which(PROMETHEUS_BIN)
            return [
                binary or PROMETHEUS_BIN,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=6h",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--web.external-url=http://127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                # Resend firing alerts every second: the first notification can go out
                # before Prometheus has found Alertmanager, and the default waits 1 min.
                "--rules.alert.resend-delay=1s",
            ]
        binary = shutil.which(ALERTMANAGER_BIN)
        return [
            binary or ALERTMANAGER_BIN,
            f"--config.file={self.config_path}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url=http://127.0.0.1:{self.port}",
            # Without this Alertmanager also listens on 0.0.0.0:9094 for clustering.
            "--cluster.listen-address=",
        ]

    def environment(self) -> dict[str, str]:
        """The postgres-exporter's server and login: its password is read from the file, so
        it is on no command line and in no environment."""
        if self.kind != "postgres-exporter":
            return {}
        port, user, password_file = self.postgres
        return {"DATA_SOURCE_URI": f"127.0.0.1:{port}/postgres?sslmode=disable", "DATA_SOURCE_USER": user,
                "DATA_SOURCE_PASS_FILE": str(password_file)}

    def start(self, timeout: float = 30.0) -> None:
        binary = {"prometheus": PROMETHEUS_BIN, "alertmanager": ALERTMANAGER_BIN, "redis-exporter": REDIS_EXPORTER_BIN,
                  "postgres-exporter": POSTGRES_EXPORTER_BIN}[self.kind]
        if shutil.which(binary) is None:
            raise Unavailable(f"{binary} is not installed", hint="run scripts/bootstrap")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / f"{self.kind}.log").open("ab")
        process = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, **self.environment()},
        )
        log.close()
        self.pid = process.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (self.directory / f"{self.kind}.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise Unavailable(f"{self.kind} exited at start: {tail[0] if tail else 'no output'}")
            if self.ready():
                return
            time.sleep(0.1)
        raise Unavailable(f"{self.kind} did not become ready on {self.url} within {timeout:.0f} s")

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310
                pass
        except urllib.error.HTTPError as exc:
            raise Unavailable(f"{self.kind} rejected its new configuration: {exc.read().decode().strip()}") from exc

    def stop(self) -> bool:
        return stop_process(self.pid, self.marker)
