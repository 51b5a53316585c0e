"""The incident lab's demo service: a small, real HTTP service that the lab breaks on purpose.

It runs as a systemd unit inside the lab's Debian containers and as a plain Docker container,
so it is one file that needs nothing but the Python 3.11 standard library.

Usage::

    python3 demo_service.py --port 8080 [--host 127.0.0.1] [--name demo]
        [--log-dir /var/log/runbook-demo] [--db /var/lib/runbook-demo/queue.db]
        [--faults-file /etc/runbook-demo/faults] [--fault NAME[:k=v,k=v]]... [--workload-rps 20]
        [--release v1] [--release-error-rate 0] [--upstream-provider primary]
        [--upstream-status-file FILE] [--work-iterations 10] [--work-unit-ms 2]
        [--port-candidates 8081,8082,...]

Every option can also come from an environment variable ``DEMO_<OPTION>`` (``DEMO_PORT``,
``DEMO_LOG_DIR``, ``DEMO_WORKLOAD_RPS``...); the command line wins. ``DEMO_FAULT`` holds
fault specs separated by whitespace or ``;``.

Endpoints:

* ``GET /health``: JSON health computed from observation (api, database, disk, files);
  200 when healthy or degraded, 503 when a component is unhealthy.
* ``GET /metrics``: Prometheus text exposition format 0.0.4.
* ``GET /api/work``: one simulated request (200 ``{"ok": true}`` or 500 with an ``error_type``).
* ``GET /faults``, ``POST /faults/<name>`` (optional JSON object of params),
  ``DELETE /faults/<name>``, ``DELETE /faults``: lab-only fault control.
* ``POST /admin/cache/clear``: an admin action (app_admin): drops the service's cached
  checks (database, upstream, replicas) so the next ones are fresh; with an API key
  configured it needs the key like ``/api/work``. ``SIGUSR1`` runs a garbage collection.
  ``demo_admin_actions_total{action}`` counts both.

API keys (optional): with ``DEMO_API_KEY`` in the environment (systemd ``EnvironmentFile=``,
Compose ``env_file``) or ``--api-key-file FILE`` (``DEMO_API_KEY=...`` or the bare key),
``/api/work`` needs the key in ``X-API-Key`` (or ``Authorization: Bearer``); a missing or wrong
key answers 401 and writes ``AUTH_ERROR`` to ``<log-dir>/security.log`` with the client's
address, and ``demo_auth_failures_total{client,reason}`` counts it. The key is read at start
(a rotation restarts the service) and never logged. ``--upstream URL`` makes the service a
consumer of another one: it calls URL with its own key ``--upstream-rps`` times a second and
its ``upstream`` health component is unhealthy until a call succeeds (and after one is refused);
with ``--fail-without-upstream`` its requests fail while the last call failed (a hard dependency).

Releases, an upstream provider and the work per request (what the error-rate and latency
scenarios act on) come from the environment as a deployment sets them:

* ``DEMO_RELEASE`` names the running release (``demo_info{release}``, ``/health``);
  ``DEMO_RELEASE_ERROR_RATE`` is that release's bug: the share of requests that fail with
  ``error_type="release_bug"`` (the lab's bad release sets it).
* ``DEMO_UPSTREAM_PROVIDER`` is the provider each request calls (seed 000's
  ``LLM_PROVIDER``); ``DEMO_UPSTREAM_STATUS_FILE`` is a JSON object ``{provider: "down"}``
  kept outside the service (an outage does not end when the service restarts): while the
  current provider is down every request fails with ``error_type="upstream_error"``
  (health component ``provider``: degraded).
* ``DEMO_WORK_ITERATIONS`` x ``DEMO_WORK_UNIT_MS`` is the work (time) each request takes
  (seed 000's ``MCTS_DEFAULT_ITERATIONS``).
* ``DEMO_PORT_CANDIDATES`` (a comma list): listen on the first free one of these ports
  instead of ``--port``, so replicas with the same configuration get a port each. The live
  replicas are the candidates that accept a connection (the ``load`` fault shares its load
  among them); ``/health`` says the port taken.

Faults: crash, crash-loop, hang, error-rate (rate), latency (seconds), cpu-burn (ms),
load (seconds), memory-leak (mb_per_second, max_mb, fail_above_mb: requests fail with
``error_type="out_of_memory"`` once the leak holds that much), fd-leak (per_second, max_fraction:
hold at that share of the descriptor limit instead of running into EMFILE), log-flood (mb_per_second,
max_mb: stop after writing that much, the disk left full).
``load`` models an offered load that a balancer spreads over the live replicas: each request
waits ``seconds`` divided by the number of live replicas (its replica's share of the load), so
scaling out brings the latency down. It is the service's load, not one process's: a replica
that starts while a live peer has it takes it over (the other faults stay per process).
A faults file holds start-up faults, one ``NAME`` or ``NAME:k=v,...`` per line, ``#`` comments;
it is how crash-loop survives restarts.

A configuration file (``--config FILE``, seed 001's ``config/production.toml``): TOML with
``[server] log_level`` (DEBUG, INFO, WARNING, ERROR) and ``[limits] max_body_kb`` (1-10240),
nothing else. An invalid file stops the service at start (exit 2); SIGHUP reloads it, and a
reload that finds it invalid keeps the previous configuration running while the ``config``
health component is unhealthy (503). ``--check-config FILE`` is the service's own check
command: exit 0 when the file is valid, 1 with one line on stderr when not.

Logs go to ``<log-dir>/app.log`` (append mode, so logrotate's copytruncate works; SIGHUP
reopens it) and to stderr (journald). SIGTERM/SIGINT shut down cleanly with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import gc
import hmac
import json
import math
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "0.1.0"
DEFAULT_LOG_DIR = "/var/log/runbook-demo"
MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
WINDOW_SECONDS = 30
DB_CHECK_CACHE_SECONDS = 2.0
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WORK_HANDLER = "/api/work"
ADMIN_CACHE_CLEAR = "/admin/cache/clear"
# Declared up front so every series exists at 0 and rate() works from the first scrape.
ERROR_TYPES = ("upstream_error", "too_many_open_files", "disk_full", "database_error", "io_error", "release_bug",
               "out_of_memory")
# How often the upstream status file is read again (an outage starts and ends outside the service).
UPSTREAM_STATUS_CACHE_SECONDS = 1.0
# How often the live replicas are counted again (the load fault's share).
REPLICAS_CACHE_SECONDS = 1.0
STATUS_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}
NEXT_QUEUE_STATUS = {"pending": "processing", "processing": "done", "done": "pending"}
MAX_BODY = 64 * 1024
# Synthetic requests run concurrently (a slow fault must not lower the offered load), but bounded.
MAX_INFLIGHT_SYNTHETIC = 64
# fd-leak: after EMFILE, stay exhausted for a while (so requests fail), then free a few fds so
# the process can still answer /health and /metrics, like a pool that sheds a little and leaks again.
FD_LEAK_HOLD_SECONDS = 0.5
FD_LEAK_HEADROOM = 8
TICK = 0.1

# name -> {param: (default, kind)}; kind "fraction" is 0..1, "positive" is > 0; default None = optional.
FAULTS: dict[str, dict[str, tuple[float | None, str]]] = {
    "crash": {},
    "crash-loop": {},
    "hang": {},
    "error-rate": {"rate": (0.2, "fraction")},
    "latency": {"seconds": (3.0, "positive")},
    # Each request spins this many milliseconds of CPU: under a tight CPU limit the service
    # is throttled and slow (what cpu_limit_raise answers).
    "cpu-burn": {"ms": (50.0, "positive")},
    # Each request waits `seconds` / live replicas (see the module docstring): what replica_scale answers.
    "load": {"seconds": (3.0, "positive")},
    # fail_above_mb: a service starved by its own leak fails requests (error-rate's memory hand-off).
    "memory-leak": {
        "mb_per_second": (5.0, "positive"), "max_mb": (None, "positive"), "fail_above_mb": (None, "positive"),
    },
    # max_fraction: leak up to that share of the descriptor limit and hold there (the alert fires,
    # requests and scrapes still get a descriptor); without it the leak runs into EMFILE.
    "fd-leak": {"per_second": (50.0, "positive"), "max_fraction": (None, "fraction")},
    # max_mb: write that much in all, then stop (a burst that filled the disk and ended).
    "log-flood": {"mb_per_second": (20.0, "positive"), "max_mb": (None, "positive")},
}
BACKGROUND_FAULTS = ("memory-leak", "fd-leak", "log-flood")


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts a TCP connection on host:port (a live replica)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def spin_cpu(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU time (wall time is longer when throttled)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


# The configuration file's schema: section -> key -> allowed values (a tuple) or (min, max) ints.
CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "server": {"log_level": ("DEBUG", "INFO", "WARNING", "ERROR")},
    "limits": {"max_body_kb": range(1, 10241)},
}


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid (one line)."""


def read_config(path: str) -> dict[str, Any]:
    """Parse and check the TOML configuration file; ConfigError when it is not valid."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for section, values in data.items():
        if section not in CONFIG_SCHEMA or not isinstance(values, dict):
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(CONFIG_SCHEMA)})")
        for key, value in values.items():
            allowed = CONFIG_SCHEMA[section].get(key)
            if allowed is None:
                raise ConfigError(f"{path}: unknown key {section}.{key}")
            if isinstance(value, bool) or value not in allowed:
                raise ConfigError(f"{path}: {section}.{key} has an invalid value")
    return data


class FaultError(ValueError):
    """A fault spec with bad parameters (HTTP 400, exit status 2 at start-up)."""


class UnknownFaultError(FaultError):
    """A fault name this service does not know (HTTP 404)."""


def validate_params(name: str, raw: dict[str, Any]) -> dict[str, float]:
    """Check a fault's parameters and fill in defaults; values may be numbers or numeric strings."""
    if name not in FAULTS:
        raise UnknownFaultError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")
    spec = FAULTS[name]
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        allowed = ", ".join(spec) or "none"
        raise FaultError(f"unknown parameter(s) for {name}: {', '.join(unknown)} (allowed: {allowed})")
    params: dict[str, float] = {}
    for key, (default, kind) in spec.items():
        value = raw.get(key, default)
        if value is None:
            continue
        # bool is an int subclass; "true" as a rate is a mistake, not 1.0.
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise FaultError(f"{name}: {key} must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise FaultError(f"{name}: {key} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise FaultError(f"{name}: {key} must be finite, got {value!r}")
        if kind == "fraction" and not 0.0 <= number <= 1.0:
            raise FaultError(f"{name}: {key} must be between 0 and 1, got {value!r}")
        if kind == "positive" and number <= 0:
            raise FaultError(f"{name}: {key} must be positive, got {value!r}")
        params[key] = number
    return params


def parse_fault_spec(text: str) -> tuple[str, dict[str, float]]:
    """Parse ``NAME`` or ``NAME:k=v,k=v`` into a validated (name, params) pair."""
    name, _sep, rest = text.strip().partition(":")
    raw: dict[str, Any] = {}
    for item in (part.strip() for part in rest.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FaultError(f"bad fault parameter {item!r} in {text!r} (expected k=v)")
        raw[key.strip()] = value.strip()
    name = name.strip()
    return name, validate_params(name, raw)


def read_faults_file(path: str) -> list[tuple[str, dict[str, float]]]:
    """Start-up faults from a file; a missing file simply means none."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    faults = []
    for number, line in enumerate(lines, start=1):
        spec = line.partition("#")[0].strip()
        if not spec:
            continue
        try:
            faults.append(parse_fault_spec(spec))
        except FaultError as exc:
            raise FaultError(f"{path}:{number}: {exc}") from None
    return faults


def utc_stamp() -> str:
    """``2026-11-24T19:00:00.123Z``: UTC with milliseconds, the format the lab's log parsers expect."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Log:
    """Lines to ``app.log`` and to stderr, written with raw ``os.write`` calls.

    Raw O_APPEND writes keep nothing buffered in the process: a full disk fails the one line
    (it still reaches stderr), copytruncate needs no cooperation, and os._exit loses nothing.
    """

    def __init__(self, path: str, on_disk_full: Callable[[], None]) -> None:
        self.path = path
        self._on_disk_full = on_disk_full
        self._lock = threading.Lock()
        self._limit_lock = threading.Lock()
        self._fd: int | None = None
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.reopen()

    def reopen(self) -> bool:
        """(Re)open app.log, e.g. after logrotate moved it away and sent SIGHUP."""
        try:
            new_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._stderr(f"{utc_stamp()} ERROR cannot open {self.path}: {exc}\n".encode())
            return False
        with self._lock:
            old_fd, self._fd = self._fd, new_fd
            if old_fd is not None:
                os.close(old_fd)
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    @staticmethod
    def _stderr(data: bytes) -> None:
        # A closed or broken stderr must never take the service down.
        with contextlib.suppress(OSError):
            os.write(2, data)

    def _write_file(self, data: bytes) -> OSError | None:
        with self._lock:
            if self._fd is None:
                return None
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                return exc
        return None

    def _allow(self, key: str, interval: float) -> tuple[bool, int]:
        """Rate limiting per key: (may log now, how many were dropped since the last line)."""
        now = time.monotonic()
        with self._limit_lock:
            if now - self._last.get(key, -math.inf) < interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)

    def log(self, level: str, message: str, *, limit_key: str | None = None) -> None:
        """Log one line; with ``limit_key`` at most once a second per key."""
        if limit_key is not None:
            allowed, dropped = self._allow(limit_key, 1.0)
            if not allowed:
                return
            if dropped:
                message = f"{message} ({dropped} similar messages suppressed)"
        data = f"{utc_stamp()} {level} {message}\n".encode("utf-8", "replace")
        self._stderr(data)
        self.file_only(data)

    def file_only(self, data: bytes) -> bool:
        """Write to app.log only (log-flood lines); False when the write failed."""
        exc = self._write_file(data)
        if exc is None:
            return True
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self._on_disk_full()
        # The file is what failed, so this one goes to stderr alone.
        allowed, dropped = self._allow(f"logfile-{exc.errno}", 1.0)
        if allowed:
            suffix = f" ({dropped} similar messages suppressed)" if dropped else ""
            self._stderr(f"{utc_stamp()} ERROR OSError: {exc} writing {self.path}{suffix}\n".encode())
        return False


class Metrics:
    """Counters for work requests plus a per-second window for the api health component."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = dict.fromkeys(ERROR_TYPES, 0)
        self.bucket_counts = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.in_flight = 0  # work requests being handled now (a latency diagnosis reads it)
        # int(monotonic second) -> [requests, errors, duration sum]; at most WINDOW_SECONDS + 1 entries.
        self._window: dict[int, list[float]] = {}
        self.last_emfile = -math.inf

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1

    def record(self, status: int, duration: float) -> None:
        now = int(time.monotonic())
        with self._lock:
            self.in_flight -= 1
            self.requests[str(status)] = self.requests.get(str(status), 0) + 1
            for index, bound in enumerate(BUCKETS):
                if duration <= bound:
                    self.bucket_counts[index] += 1
                    break
            self.duration_sum += duration
            self.duration_count += 1
            slot = self._window.setdefault(now, [0, 0, 0.0])
            slot[0] += 1
            slot[1] += 1 if status >= 500 else 0
            slot[2] += duration
            for second in [s for s in self._window if s <= now - WINDOW_SECONDS]:
                del self._window[second]

    def count_error(self, error_type: str) -> None:
        with self._lock:
            self.errors[error_type] = self.errors.get(error_type, 0) + 1
            if error_type == "too_many_open_files":
                self.last_emfile = time.monotonic()

    def window(self) -> tuple[int, int, float]:
        """(requests, errors, summed duration) over the last WINDOW_SECONDS."""
        oldest = int(time.monotonic()) - WINDOW_SECONDS
        with self._lock:
            slots = [slot for second, slot in self._window.items() if second > oldest]
        return int(sum(s[0] for s in slots)), int(sum(s[1] for s in slots)), sum(s[2] for s in slots)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "errors": dict(self.errors),
                "buckets": list(self.bucket_counts),
                "sum": self.duration_sum,
                "count": self.duration_count,
                "in_flight": self.in_flight,
            }


class Faults:
    """Active faults. Each activation of a background fault gets its own token (an Event set on
    clear), so a re-activation never races with the thread of the previous one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active: dict[str, dict[str, float]] = {}
        self.tokens: dict[str, threading.Event] = {}
        self.not_hung = threading.Event()
        self.not_hung.set()

    def activate(self, name: str, params: dict[str, float]) -> tuple[bool, threading.Event]:
        with self._lock:
            created = name not in self.active
            self.active[name] = params
            if created:
                self.tokens[name] = threading.Event()
            if name == "hang":
                self.not_hung.clear()
            return created, self.tokens[name]

    def clear(self, name: str) -> bool:
        with self._lock:
            was_active = self.active.pop(name, None) is not None
            token = self.tokens.pop(name, None)
            if name == "hang":
                self.not_hung.set()
        if token is not None:
            token.set()
        return was_active

    def clear_all(self) -> list[str]:
        with self._lock:
            names = sorted(self.active)
        for name in names:
            self.clear(name)
        return names

    def get(self, name: str) -> dict[str, float] | None:
        with self._lock:
            params = self.active.get(name)
            return dict(params) if params is not None else None

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {name: dict(params) for name, params in self.active.items()}


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def process_count(name: str, proc: str = "/proc") -> int:
    """How many processes named ``name`` (their comm) this service sees: in a container, the
    container's. A process that ends while counted is skipped."""
    count = 0
    for entry in os.listdir(proc):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"{proc}/{entry}/comm", encoding="utf-8", errors="replace") as fh:
                count += fh.read().strip() == name
    return count


def read_process_start_time() -> float:
    """Start time as the Prometheus process collector computes it: starttime + boot time."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="ascii") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc)  # 13 = SQLITE_FULL


# --------------------------------------------------------------------- API keys

API_KEY_ENV = "DEMO_API_KEY"
# Distinct client addresses counted by label; the rest are counted as client="other"
# (an attacker with many addresses must not blow up the metric's cardinality).
MAX_AUTH_CLIENTS = 256
AUTH_REASONS = ("missing_key", "invalid_key")


def read_api_key(path: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The API key: ``--api-key-file`` (``DEMO_API_KEY=value`` lines as in an env file, or
    the bare key), else ``DEMO_API_KEY``; None when neither sets one (no auth)."""
    if path:
        with open(path, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh.read().splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        for line in lines:
            name, sep, value = line.partition("=")
            if sep and name.strip() == API_KEY_ENV:
                return value.strip().strip("'\"") or None
        if len(lines) == 1 and "=" not in lines[0]:
            return lines[0]
        return None
    value = (environ if environ is not None else os.environ).get(API_KEY_ENV, "").strip()
    return value or None


class Auth:
    """API key checks for ``/api/work``, the security log and the auth metrics.

    The key itself is never logged, exported or echoed; failures are logged with the
    client's address so the lab's auth-abuse scenario can find the offenders."""

    def __init__(self, key: str | None, log_dir: str) -> None:
        self.key = key
        self.path = os.path.join(log_dir, "security.log")
        self._lock = threading.Lock()
        self.failures: dict[tuple[str, str], int] = {}
        self.attempts = {"success": 0, "failure": 0}

    @property
    def enabled(self) -> bool:
        return self.key is not None

    @staticmethod
    def presented(headers: Any) -> str | None:
        key = headers.get("X-API-Key")
        if key is None:
            scheme, _sep, token = (headers.get("Authorization") or "").partition(" ")
            key = token if scheme.lower() == "bearer" else None
        return key.strip() if key is not None else None

    def check(self, headers: Any, client: str, method: str, path: str) -> tuple[bool, str]:
        """(allowed, reason); a refusal is logged and counted."""
        if self.key is None:
            return True, "no key configured"
        given = self.presented(headers)
        if given and hmac.compare_digest(given.encode(), self.key.encode()):
            with self._lock:
                self.attempts["success"] += 1
            return True, "ok"
        reason = "missing_key" if not given else "invalid_key"
        with self._lock:
            self.attempts["failure"] += 1
            known = {c for c, _r in self.failures}
            label = client if client in known or len(known) < MAX_AUTH_CLIENTS else "other"
            self.failures[(label, reason)] = self.failures.get((label, reason), 0) + 1
        words = "Missing API key" if reason == "missing_key" else "Invalid API key"
        self.security_log("WARNING", f"AUTH_ERROR {words} client={client} method={method} path={path}")
        return False, reason

    def security_log(self, level: str, message: str) -> None:
        line = f"{utc_stamp()} {level} {message}\n".encode("utf-8", "replace")
        with self._lock, contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def metric_lines(self) -> list[str]:
        """Prometheus samples (only when a key is configured: without one there is no auth)."""
        if self.key is None:
            return []
        with self._lock:
            failures = dict(self.failures)
            attempts = dict(self.attempts)
        out = ["# HELP demo_auth_failures_total Requests refused for a missing or invalid API key, by client address.",
               "# TYPE demo_auth_failures_total counter"]
        for (client, reason), count in sorted(failures.items()):
            out.append(f'demo_auth_failures_total{{client="{escape_label(client)}",reason="{reason}"}} {count}')
        out += ["# HELP demo_auth_attempts_total Requests that needed an API key, by result.",
                "# TYPE demo_auth_attempts_total counter"]
        out += [f'demo_auth_attempts_total{{result="{result}"}} {count}' for result, count in sorted(attempts.items())]
        return out


class Upstream:
    """A consumer's calls to the service it depends on, with its own API key."""

    def __init__(self, url: str, key: str | None, rps: float) -> None:
        self.url = url
        self.key = key
        self.rps = rps
        self._lock = threading.Lock()
        self.last: tuple[float, int | None, str] | None = None  # (monotonic, status, error)

    def call(self) -> None:
        headers = {"X-API-Key": self.key} if self.key else {}
        request = urllib.request.Request(self.url, headers=headers)  # noqa: S310 - the lab's loopback URL
        status: int | None = None
        error = ""
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - the lab's loopback URL
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = f"unreachable: {getattr(exc, 'reason', exc)}"
        with self._lock:
            self.last = (time.monotonic(), status, error)

    def run(self, stop: threading.Event) -> None:
        interval = 1.0 / self.rps if self.rps > 0 else 1.0
        while not stop.is_set():
            self.call()
            stop.wait(interval)

    def failing(self) -> bool:
        """Whether the last call failed (no call yet is not a failure)."""
        with self._lock:
            last = self.last
        return last is not None and not (last[1] is not None and 200 <= last[1] < 300)

    def component(self) -> dict[str, str]:
        with self._lock:
            last = self.last
        if last is None:
            return {"name": "upstream", "status": "unhealthy", "detail": f"no call to {self.url} yet"}
        age = time.monotonic() - last[0]
        if last[1] is not None and 200 <= last[1] < 300:
            return {"name": "upstream", "status": "healthy", "detail": f"last call {age:.1f} s ago: HTTP {last[1]}"}
        return {"name": "upstream", "status": "unhealthy", "detail": f"last call {age:.1f} s ago failed: {last[2]}"}


class DemoService:
    """The service state shared by the HTTP handlers and the background threads."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.name
        self.host: str = args.host
        self.port: int = args.port
        self.release: str = args.release
        self.release_error_rate: float = args.release_error_rate
        self.upstream_provider: str = args.upstream_provider
        self.upstream_status_file: str | None = args.upstream_status_file
        self.work_seconds: float = args.work_iterations * args.work_unit_ms / 1000.0
        self.work_iterations: int = args.work_iterations
        self._upstream_cache: tuple[float, str] = (-math.inf, "up")
        self.log_dir: str = os.path.abspath(args.log_dir)
        self.db_path: str | None = args.db
        self.faults_file: str | None = args.faults_file
        self.workload_rps: float = args.workload_rps
        self.metrics = Metrics()
        self.faults = Faults()
        self.log = Log(os.path.join(self.log_dir, "app.log"), lambda: self.metrics.count_error("disk_full"))
        self.stop = threading.Event()
        self.hup = threading.Event()
        self.usr1 = threading.Event()
        self.admin_actions: dict[str, int] = {"cache_clear": 0, "gc": 0}
        self.started_monotonic = time.monotonic()
        self.start_time = read_process_start_time()
        self._db_lock = threading.Lock()
        self._db_cache: tuple[float, dict[str, str], int | None] | None = None
        key = read_api_key(getattr(args, "api_key_file", None))
        self.auth = Auth(key, self.log_dir)
        upstream = getattr(args, "upstream", None)
        self.upstream = Upstream(upstream, key, getattr(args, "upstream_rps", 2.0)) if upstream else None
        self.fail_without_upstream: bool = bool(getattr(args, "fail_without_upstream", False))
        self.leaked_bytes = 0  # what the memory-leak fault holds now
        self.port_candidates: list[int] = list(getattr(args, "port_candidates", None) or [])
        self._replicas_cache: tuple[float, int] = (-math.inf, 1)
        # The configuration file: what runs (read at start; main() refuses an invalid one) and
        # why the last reload was refused (None when the running one is the file's).
        self.config_path: str | None = getattr(args, "config", None)
        self.config: dict[str, Any] = {}
        self.config_error: str | None = None

    def clear_caches(self) -> int:
        """Admin action cache_clear: forget every cached check; how many were cached."""
        cached = int(self._db_cache is not None) + int(self._upstream_cache[0] > -math.inf)
        cached += int(self._replicas_cache[0] > -math.inf)
        self._db_cache = None
        self._upstream_cache = (-math.inf, "up")
        self._replicas_cache = (-math.inf, 1)
        self.admin_actions["cache_clear"] += 1
        return cached

    def load_config(self) -> bool:
        """(Re)read the configuration file; a bad one leaves the running configuration as it
        is and is reported (log, health). True when the file's configuration now runs."""
        if not self.config_path:
            return True
        try:
            self.config = read_config(self.config_path)
        except ConfigError as exc:
            self.config_error = str(exc)
            self.log.log("ERROR", f"config reload refused, the previous configuration keeps running: {exc}")
            return False
        self.config_error = None
        return True

    def _config_component(self) -> dict[str, Any]:
        if self.config_error:
            return {"name": "config", "status": "unhealthy", "detail": f"reload refused: {self.config_error}"}
        return {"name": "config", "status": "healthy", "detail": f"{self.config_path} loaded"}

    # ----------------------------------------------------------------- faults

    def activate_fault(self, name: str, params: dict[str, float], *, at_start: bool = False) -> bool:
        """Activate a validated fault; returns True when it was not active before."""
        if name in ("crash", "crash-loop"):
            self._crash(name, at_start=at_start)
            return True
        created, token = self.faults.activate(name, params)
        rendered = ",".join(f"{k}={v:g}" for k, v in params.items())
        self.log.log("WARNING", f"fault {name} activated" + (f" ({rendered})" if rendered else ""))
        if created and name in BACKGROUND_FAULTS:
            target = {"memory-leak": self._memory_leak, "fd-leak": self._fd_leak, "log-flood": self._log_flood}[name]
            threading.Thread(target=target, args=(token,), name=name, daemon=True).start()
        return created

    def clear_fault(self, name: str) -> bool:
        was_active = self.faults.clear(name)
        if was_active:
            self.log.log("INFO", f"fault {name} cleared")
        return was_active

    def _crash(self, name: str, *, at_start: bool) -> None:
        if name == "crash-loop" and not at_start:
            self._persist_crash_loop()
        message = "crash fault injected" if name == "crash" else "crash-loop fault injected"
        if at_start:
            self.log.log("FATAL", message if name == "crash" else "crash-loop fault active (start-up), exiting")
            # crash-loop lives a moment first, like a service that dies during initialisation.
            if name == "crash-loop":
                time.sleep(0.2)
            os._exit(1)

        def die() -> None:
            # Let the handler finish sending its response before the process disappears.
            time.sleep(0.1)
            self.log.log("FATAL", message)
            os._exit(1)

        threading.Thread(target=die, name="crash", daemon=True).start()

    def _persist_crash_loop(self) -> None:
        if not self.faults_file:
            self.log.log("WARNING", "crash-loop without --faults-file: only this run crashes")
            return
        try:
            with open(self.faults_file, "a", encoding="utf-8") as fh:
                fh.write("crash-loop\n")
        except OSError as exc:
            self.log.log("ERROR", f"cannot persist crash-loop to {self.faults_file}: {exc}")
        else:
            self.log.log("WARNING", f"crash-loop persisted to {self.faults_file}: every start will crash")

    def _running(self, token: threading.Event) -> bool:
        return not token.is_set() and not self.stop.is_set()

    def _memory_leak(self, token: threading.Event) -> None:
        chunks: list[bytearray] = []
        total = 0
        try:
            while self._running(token):
                params = self.faults.get("memory-leak") or {}
                size = int(params.get("mb_per_second", 5.0) * MIB * TICK)
                if "max_mb" in params:
                    size = min(size, int(params["max_mb"] * MIB) - total)
                if size > 0:
                    try:
                        chunk = bytearray(size)
                        # bytearray() memory is lazily mapped zero pages; touch each page so RSS really grows.
                        chunk[::PAGE_SIZE] = b"\x01" * len(range(0, size, PAGE_SIZE))
                    except MemoryError:
                        self.log.log("ERROR", "MemoryError: memory-leak cannot allocate more", limit_key="oom")
                    else:
                        chunks.append(chunk)
                        total += size
                        self.leaked_bytes = total
                token.wait(TICK)
        finally:
            chunks.clear()
            self.leaked_bytes = 0

    def _fd_leak(self, token: threading.Event) -> None:
        fds: list[int] = []
        credit = 0.0
        try:
            while self._running(token):
                params = self.faults.get("fd-leak") or {}
                credit += params.get("per_second", 50.0) * TICK
                ceiling = None
                if params.get("max_fraction") is not None:
                    ceiling = int(params["max_fraction"] * resource.getrlimit(resource.RLIMIT_NOFILE)[0])
                while credit >= 1 and self._running(token):
                    if ceiling is not None and len(os.listdir("/proc/self/fd")) >= ceiling:
                        credit = 0.0
                        break
                    credit -= 1
                    try:
                        fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
                    except OSError as exc:
                        if exc.errno not in (errno.EMFILE, errno.ENFILE):
                            raise
                        self.note_emfile(exc)
                        credit = 0.0
                        token.wait(FD_LEAK_HOLD_SECONDS)
                        for _freed in range(min(FD_LEAK_HEADROOM, len(fds))):
                            os.close(fds.pop())
                        token.wait(FD_LEAK_HOLD_SECONDS)
                token.wait(TICK)
        finally:
            for fd in fds:
                os.close(fd)

    def _log_flood(self, token: threading.Event) -> None:
        filler = "x" * (64 * 1024)
        sequence = 0
        written = 0
        while self._running(token):
            params = self.faults.get("log-flood") or {}
            budget = params.get("mb_per_second", 20.0) * MIB * TICK
            if params.get("max_mb") is not None:
                budget = min(budget, params["max_mb"] * MIB - written)
            while budget > 0 and self._running(token):
                sequence += 1
                line = f"{utc_stamp()} DEBUG log-flood filler #{sequence} {filler}\n".encode()
                if not self.log.file_only(line):
                    break  # disk full: counted and reported by Log; try again next tick
                budget -= len(line)
                written += len(line)
            token.wait(TICK)

    def note_emfile(self, exc: OSError) -> None:
        self.metrics.count_error("too_many_open_files")
        self.log.log("ERROR", f"OSError: {exc}", limit_key="emfile")

    # ------------------------------------------------------------------- work

    def _db_connect(self) -> sqlite3.Connection:
        # mode=rw: a deleted database must be an error, not silently recreated empty.
        uri = f"file:{urllib.parse.quote(self.db_path or '')}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=2.0, check_same_thread=False)
        # The queue is disposable lab data; skipping fsync keeps disk latency out of request latency.
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    def init_db(self) -> None:
        if not self.db_path:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.db_path)), exist_ok=True)
            # closing() closes the connection; the inner `with conn` commits the transaction.
            with contextlib.closing(sqlite3.connect(self.db_path, timeout=5.0)) as conn:
                with conn:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS queue_items ("
                        "id INTEGER PRIMARY KEY, status TEXT NOT NULL, payload TEXT, created_at TEXT)"
                    )
                    (count,) = conn.execute("SELECT count(*) FROM queue_items").fetchone()
                    if count == 0:
                        now = utc_stamp()
                        rows = [("pending", json.dumps({"job": i, "attempts": 0}), now) for i in range(1, 101)]
                        conn.executemany("INSERT INTO queue_items (status, payload, created_at) VALUES (?, ?, ?)", rows)
                        self.log.log("INFO", f"seeded {len(rows)} queue items in {self.db_path}")
        except (OSError, sqlite3.Error) as exc:
            # Keep running: a broken database is an incident to observe, not a reason not to start.
            self.log.log("ERROR", f"database init failed for {self.db_path}: {type(exc).__name__}: {exc}")

    def _touch_db(self) -> None:
        # closing() closes the connection; the inner `with conn` commits the transaction.
        with contextlib.closing(self._db_connect()) as conn:
            with conn:
                (top,) = conn.execute("SELECT max(id) FROM queue_items").fetchone()
                if top:
                    item = random.randint(1, top)  # noqa: S311 - workload simulation, not cryptography
                    row = conn.execute("SELECT status FROM queue_items WHERE id = ?", (item,)).fetchone()
                    if row is not None:
                        status = NEXT_QUEUE_STATUS.get(row[0], "pending")
                        conn.execute("UPDATE queue_items SET status = ? WHERE id = ?", (status, item))

    def upstream_status(self) -> str:
        """``up`` or ``down``: the current provider's status in the status file (read at most
        once a second; no file, or a provider it does not name, is up)."""
        now = time.monotonic()
        if now - self._upstream_cache[0] < UPSTREAM_STATUS_CACHE_SECONDS:
            return self._upstream_cache[1]
        status = "up"
        if self.upstream_status_file:
            try:
                with open(self.upstream_status_file, encoding="utf-8") as fh:
                    data = json.load(fh)
                if isinstance(data, dict) and data.get(self.upstream_provider) == "down":
                    status = "down"
            except (OSError, ValueError):
                status = "up"
        self._upstream_cache = (now, status)
        return status

    def do_work(self) -> tuple[int, dict[str, Any]]:
        """One simulated request, shared by /api/work and the synthetic workload."""
        started = time.monotonic()
        error_type: str | None = None
        message = ""
        self.metrics.begin()
        try:
            latency = self.faults.get("latency")
            if latency:
                time.sleep(latency["seconds"])
            load = self.faults.get("load")
            if load:
                time.sleep(load["seconds"] / self.live_replicas())
            if self.work_seconds > 0:
                time.sleep(self.work_seconds)  # the work each request does (DEMO_WORK_ITERATIONS)
            burn = self.faults.get("cpu-burn")
            if burn:
                spin_cpu(burn["ms"] / 1000.0)
            # A real fd per request, so fd exhaustion shows up as EMFILE failures.
            with open("/dev/urandom", "rb", buffering=0) as fh:
                fh.read(16)
            if self.db_path:
                self._touch_db()
            error_rate = self.faults.get("error-rate")
            leak = self.faults.get("memory-leak") or {}
            if "fail_above_mb" in leak and self.leaked_bytes >= leak["fail_above_mb"] * MIB:
                error_type, message = "out_of_memory", "MemoryError: cannot allocate the response buffer"
            elif error_rate and random.random() < error_rate["rate"]:  # noqa: S311 - fault injection, not crypto
                error_type, message = "upstream_error", "upstream returned HTTP 502"
            elif self.fail_without_upstream and self.upstream is not None and self.upstream.failing():
                error_type, message = "upstream_error", f"dependency {self.upstream.url} is unavailable"
            elif self.upstream_status() == "down":
                error_type = "upstream_error"
                message = f"upstream provider {self.upstream_provider} returned HTTP 503"
            elif self.release_error_rate and random.random() < self.release_error_rate:  # noqa: S311
                error_type = "release_bug"
                message = f"TypeError in release {self.release}: 'NoneType' object is not subscriptable"
        except OSError as exc:
            error_type = {
                errno.EMFILE: "too_many_open_files",
                errno.ENFILE: "too_many_open_files",
                errno.ENOSPC: "disk_full",
            }.get(exc.errno or 0, "io_error")
            message = f"OSError: {exc}"
        except sqlite3.Error as exc:
            error_type = "disk_full" if is_disk_full(exc) else "database_error"
            message = f"{type(exc).__name__}: {exc}"
        self.metrics.record(500 if error_type else 200, time.monotonic() - started)
        if error_type is None:
            return 200, {"ok": True}
        if error_type == "too_many_open_files":
            self.metrics.count_error(error_type)
            self.log.log("ERROR", message, limit_key="emfile")
        else:
            self.metrics.count_error(error_type)
            # Every upstream failure is logged (that is the signal); repeated local errors are rate-limited.
            limit = None if error_type == "upstream_error" else error_type
            self.log.log("ERROR", f"{WORK_HANDLER} failed: {error_type}: {message}", limit_key=limit)
        return 500, {"ok": False, "error_type": error_type, "error": message}

    def live_replicas(self) -> int:
        """How many of the port candidates accept a connection (this one included; 1 without
        candidates). Counted again at most once a second."""
        now = time.monotonic()
        checked_at, count = self._replicas_cache
        if now - checked_at < REPLICAS_CACHE_SECONDS:
            return count
        count = max(1, sum(1 for port in self.port_candidates if port == self.port or port_open(self.host, port)))
        self._replicas_cache = (now, count)
        return count

    def adopt_load(self) -> None:
        """A new replica takes over the ``load`` fault of a live peer (the load is the service's)."""
        for port in self.port_candidates:
            if port == self.port:
                continue
            try:
                url = f"http://{self.host}:{port}/faults"
                with urllib.request.urlopen(url, timeout=1) as response:  # a peer on loopback
                    active = json.loads(response.read()).get("active") or {}
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(active, dict) and isinstance(active.get("load"), dict):
                try:
                    params = validate_params("load", active["load"])
                except FaultError:
                    continue
                self.activate_fault("load", params)
                self.log.log("INFO", f"took over the load fault of the replica on port {port}")
                return

    def workload(self) -> None:
        """Offer ``workload_rps`` synthetic requests a second, each in its own short-lived thread."""
        if self.workload_rps <= 0:
            return
        interval = 1.0 / self.workload_rps
        inflight = threading.BoundedSemaphore(MAX_INFLIGHT_SYNTHETIC)

        def one() -> None:
            try:
                self.do_work()
            finally:
                inflight.release()

        next_at = time.monotonic()
        while not self.stop.is_set():
            if not self.faults.not_hung.is_set():
                self.faults.not_hung.wait(0.5)
                next_at = time.monotonic()
                continue
            if inflight.acquire(blocking=False):
                try:
                    threading.Thread(target=one, name="synthetic", daemon=True).start()
                except RuntimeError as exc:
                    inflight.release()
                    self.log.log("ERROR", f"workload cannot start a thread: {exc}", limit_key="thread")
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < -1.0:
                next_at = time.monotonic()  # fell far behind (host suspended?): resume, don't burst
            self.stop.wait(max(0.0, delay))

    # ----------------------------------------------------------------- health

    def _api_component(self) -> dict[str, str]:
        count, errors, duration = self.metrics.window()
        if count == 0:
            return {"name": "api", "status": "healthy", "detail": f"no work requests in the last {WINDOW_SECONDS} s"}
        ratio, mean = errors / count, duration / count
        status = "unhealthy" if ratio > 0.5 else "degraded" if ratio > 0.01 or mean > 1.0 else "healthy"
        detail = (
            f"{count} requests in the last {WINDOW_SECONDS} s, {ratio:.1%} errors, mean latency {mean * 1000:.0f} ms"
        )
        return {"name": "api", "status": status, "detail": detail}

    def _database_check(self) -> tuple[dict[str, str], int | None]:
        """quick_check on a fresh connection (a cached page would hide on-disk corruption), cached 2 s."""
        with self._db_lock:
            now = time.monotonic()
            if self._db_cache is not None and now - self._db_cache[0] < DB_CHECK_CACHE_SECONDS:
                return self._db_cache[1], self._db_cache[2]
            count: int | None = None
            try:
                with contextlib.closing(self._db_connect()) as conn:
                    result = "; ".join(str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall())
                    if result == "ok":
                        (count,) = conn.execute("SELECT count(*) FROM queue_items").fetchone()
                        component = {"status": "healthy", "detail": f"quick_check ok, {count} queue items"}
                    else:
                        component = {"status": "unhealthy", "detail": result[:500]}
            except sqlite3.Error as exc:
                component = {"status": "unhealthy", "detail": str(exc)}
            component = {"name": "database", **component}
            self._db_cache = (now, component, count)
            return component, count

    def _disk_component(self) -> dict[str, str]:
        try:
            st = os.statvfs(self.log_dir)
        except OSError as exc:
            return {"name": "disk", "status": "unhealthy", "detail": f"statvfs {self.log_dir}: {exc}"}
        # Same arithmetic as df: blocks reserved for root count as neither used nor available.
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        avail = st.f_bavail * st.f_frsize
        percent = 100.0 * used / (used + avail) if used + avail else 0.0
        status = "unhealthy" if percent > 95 else "degraded" if percent > 80 else "healthy"
        detail = f"{self.log_dir}: {percent:.1f}% used, {avail / MIB:.0f} MiB available"
        return {"name": "disk", "status": status, "detail": detail}

    def _files_component(self) -> dict[str, str]:
        limit = fd_limit()
        since_emfile = time.monotonic() - self.metrics.last_emfile
        emfile = f"; EMFILE {since_emfile:.1f} s ago" if since_emfile < WINDOW_SECONDS else ""
        try:
            count = open_fd_count()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self.metrics.count_error("too_many_open_files")
            return {"name": "files", "status": "unhealthy", "detail": f"cannot list /proc/self/fd: {exc}"}
        ratio = count / limit if limit not in (resource.RLIM_INFINITY, 0) else 0.0
        status = "unhealthy" if ratio >= 0.95 or emfile else "degraded" if ratio > 0.8 else "healthy"
        return {
            "name": "files",
            "status": status,
            "detail": f"{count}/{limit} file descriptors open ({ratio:.0%}){emfile}",
        }

    def health(self) -> tuple[int, dict[str, Any]]:
        components = [self._api_component()]
        if self.db_path:
            components.append(self._database_check()[0])
        components += [self._disk_component(), self._files_component()]
        if self.config_path:
            components.append(self._config_component())
        if self.upstream is not None:
            components.append(self.upstream.component())
        if self.upstream_status_file:
            down = self.upstream_status() == "down"
            components.append({"name": "provider", "status": "degraded" if down else "healthy",
                               "detail": f"provider {self.upstream_provider} is {'down' if down else 'up'}"})
        overall = max((c["status"] for c in components), key=STATUS_RANK.__getitem__)
        body = {
            "status": overall,
            "service": self.name,
            "version": VERSION,
            "release": self.release,
            "upstream_provider": self.upstream_provider,
            "work_iterations": self.work_iterations,
            "port": self.port,
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - self.started_monotonic, 3),
            "components": components,
        }
        return (503 if overall == "unhealthy" else 200), body

    # ---------------------------------------------------------------- metrics

    def render_metrics(self) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        def sample(name: str, value: float, **labels: str) -> None:
            rendered = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels.items())
            out.append(f"{name}{{{rendered}}} {format_value(value)}" if rendered else f"{name} {format_value(value)}")

        snap = self.metrics.snapshot()
        family("http_requests_total", "counter", "Work requests handled (real and synthetic), by status code.")
        for status in sorted(set(snap["requests"]) | {"200", "500"}):
            sample("http_requests_total", snap["requests"].get(status, 0), handler=WORK_HANDLER, status=status)
        family("demo_errors_total", "counter", "Errors seen by the service, by type.")
        for error_type, count in sorted(snap["errors"].items()):
            sample("demo_errors_total", count, error_type=error_type)
        family("http_request_duration_seconds", "histogram", "Work request latency in seconds.")
        cumulative = 0
        for bound, count in zip(BUCKETS, snap["buckets"], strict=True):
            cumulative += count
            sample("http_request_duration_seconds_bucket", cumulative, handler=WORK_HANDLER, le=format_value(bound))
        sample("http_request_duration_seconds_bucket", snap["count"], handler=WORK_HANDLER, le="+Inf")
        sample("http_request_duration_seconds_sum", snap["sum"], handler=WORK_HANDLER)
        sample("http_request_duration_seconds_count", snap["count"], handler=WORK_HANDLER)
        family("http_requests_in_flight", "gauge", "Work requests being handled now.")
        sample("http_requests_in_flight", snap["in_flight"], handler=WORK_HANDLER)

        # /proc reads need an fd; under EMFILE those samples are skipped rather than failing the scrape.
        with contextlib.suppress(OSError, ValueError):
            with open("/proc/self/statm", encoding="ascii") as fh:
                size, resident = (int(v) for v in fh.read().split()[:2])
            family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
            sample("process_resident_memory_bytes", resident * PAGE_SIZE)
            family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
            sample("process_virtual_memory_bytes", size * PAGE_SIZE)
        with contextlib.suppress(OSError):
            fds = open_fd_count()
            family("process_open_fds", "gauge", "Number of open file descriptors.")
            sample("process_open_fds", fds)
        # Seed 003's GgenMcpHighLibreOfficeProcessCount: the headless LibreOffice instances
        # beside the service (ggen-mcp's container runs them; elsewhere the count is 0).
        with contextlib.suppress(OSError):
            soffice = process_count("soffice.bin")
            family("demo_libreoffice_processes", "gauge", "LibreOffice (soffice.bin) processes running beside it.")
            sample("demo_libreoffice_processes", soffice)
        family("process_max_fds", "gauge", "Maximum number of open file descriptors (soft limit).")
        sample("process_max_fds", fd_limit())
        family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        sample("process_start_time_seconds", self.start_time)
        times = os.times()
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        sample("process_cpu_seconds_total", times.user + times.system)

        with contextlib.suppress(OSError):
            st = os.statvfs(self.log_dir)
            family("demo_filesystem_size_bytes", "gauge", "Size of the filesystem holding the log directory.")
            sample("demo_filesystem_size_bytes", st.f_blocks * st.f_frsize, path=self.log_dir)
            family("demo_filesystem_avail_bytes", "gauge", "Bytes available to the service on that filesystem.")
            sample("demo_filesystem_avail_bytes", st.f_bavail * st.f_frsize, path=self.log_dir)

        active = self.faults.snapshot()
        family("demo_fault_active", "gauge", "1 when the fault is injected.")
        for name in FAULTS:
            sample("demo_fault_active", 1 if name in active else 0, fault=name)
        if self.db_path:
            family("demo_queue_items", "gauge", "Rows in the queue_items table (absent when the database fails).")
            count = self._database_check()[1]
            if count is not None:
                sample("demo_queue_items", count)
        family("demo_admin_actions_total", "counter", "Admin actions done (POST /admin/cache/clear, SIGUSR1).")
        for action, count in sorted(self.admin_actions.items()):
            sample("demo_admin_actions_total", count, action=action)
        family("demo_info", "gauge", "Service name and version.")
        sample("demo_info", 1, service=self.name, version=VERSION, release=self.release,
               upstream_provider=self.upstream_provider, work_iterations=str(self.work_iterations))
        out.extend(self.auth.metric_lines())
        return "\n".join(out) + "\n"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class DemoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: DemoService) -> None:
        self.service = service
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self.service.note_emfile(exc)
                # The listening socket stays readable; back off instead of spinning (as Go's net/http does).
                time.sleep(0.05)
            raise


class Handler(BaseHTTPRequestHandler):
    server: DemoHTTPServer
    server_version = f"runbook-demo/{VERSION}"
    # A client that stops talking must not pin a thread forever.
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        """Silenced: one stderr line per request (and per scrape) would drown the journal."""

    def do_GET(self) -> None:  # pylint: disable=invalid-name  # name fixed by BaseHTTPRequestHandler
        self._dispatch("GET")

    def do_POST(self) -> None:  # pylint: disable=invalid-name
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # pylint: disable=invalid-name
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # pylint: disable=invalid-name
        self._dispatch("PUT")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        # The client may have given up (a hang, a timeout); that is not the service's error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, (json.dumps(payload) + "\n").encode(), "application/json", headers)

    def _dispatch(self, method: str) -> None:
        path = urllib.parse.urlsplit(self.path).path
        service = self.server.service
        if path == "/faults" or path.startswith("/faults/"):
            self._faults(method, path)
            return
        # hang: every other endpoint blocks until the fault is cleared.
        service.faults.not_hung.wait()
        routes: dict[str, Callable[[], None]] = {
            "/health": self._health,
            "/metrics": self._metrics,
            WORK_HANDLER: self._work,
            ADMIN_CACHE_CLEAR: self._cache_clear,
        }
        allowed = "POST" if path == ADMIN_CACHE_CLEAR else "GET"
        if path not in routes:
            self._json(404, {"error": f"no such endpoint {path}"})
        elif path in (WORK_HANDLER, ADMIN_CACHE_CLEAR) and not service.auth.check(
            self.headers, self.client_address[0], method, path
        )[0]:
            self._json(401, {"error": "a valid API key is required"}, {"WWW-Authenticate": "Bearer"})
        elif method != allowed:
            self._json(405, {"error": f"{method} not allowed on {path}"}, {"Allow": allowed})
        else:
            routes[path]()

    def _cache_clear(self) -> None:
        cleared = self.server.service.clear_caches()
        self.server.service.log.log("INFO", f"admin: cache cleared ({cleared} cached checks dropped)")
        self._json(200, {"cleared": cleared})

    def _health(self) -> None:
        status, body = self.server.service.health()
        self._json(status, body)

    def _metrics(self) -> None:
        text = self.server.service.render_metrics()
        self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _work(self) -> None:
        status, body = self.server.service.do_work()
        self._json(status, body)

    def _read_params(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise FaultError(f"request body must be 0..{MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            params = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FaultError(f"body is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise FaultError("body must be a JSON object of fault parameters")
        return params

    def _faults(self, method: str, path: str) -> None:
        service = self.server.service
        name = path[len("/faults/") :] if path.startswith("/faults/") else ""
        if not name:
            if method == "GET":
                known = {fault: {k: d for k, (d, _check) in spec.items()} for fault, spec in FAULTS.items()}
                self._json(200, {"active": service.faults.snapshot(), "known": known})
            elif method == "DELETE":
                cleared = service.faults.clear_all()
                for fault in cleared:
                    service.log.log("INFO", f"fault {fault} cleared")
                self._json(200, {"cleared": cleared})
            else:
                self._json(405, {"error": f"{method} not allowed on /faults"}, {"Allow": "GET, DELETE"})
            return
        if name not in FAULTS:
            self._json(404, {"error": f"unknown fault {name!r}", "known": list(FAULTS)})
            return
        if method == "POST":
            try:
                params = validate_params(name, self._read_params())
            except FaultError as exc:
                self._json(400, {"error": str(exc)})
                return
            if name in ("crash", "crash-loop"):
                # Answer first; the exit happens on a timer once the response is out.
                self._json(201, {"activated": name, "params": params})
                service.activate_fault(name, params)
                return
            created = service.activate_fault(name, params)
            self._json(201 if created else 200, {"activated": name, "params": params})
        elif method == "DELETE":
            self._json(200, {"cleared": name, "was_active": service.clear_fault(name)})
        else:
            self._json(405, {"error": f"{method} not allowed on {path}"}, {"Allow": "POST, DELETE"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line over ``DEMO_*`` environment variables over defaults."""

    def env(option: str, default: str | None = None) -> str | None:
        return os.environ.get(f"DEMO_{option.upper().replace('-', '_')}", default)

    def rps(text: str) -> float:
        value = float(text)
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return value

    def port(text: str) -> int:
        value = int(text)
        if not 0 <= value <= 65535:
            raise argparse.ArgumentTypeError(f"must be 0..65535, got {text!r}")
        return value

    def fraction(text: str) -> float:
        value = float(text)
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
        return value

    def count(text: str) -> int:
        value = int(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return value

    def ports(text: str) -> list[int]:
        values = [port(part) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError("needs at least one port")
        return values

    parser = argparse.ArgumentParser(description="The runbook lab's demo service (see the module docstring).")
    parser.add_argument("--port", type=port, default=env("port"), help="port to listen on (or --port-candidates)")
    parser.add_argument("--config", default=env("config"), help="TOML configuration file (SIGHUP reloads it)")
    parser.add_argument("--check-config", metavar="FILE", help="check a configuration file and exit (0: valid)")
    parser.add_argument("--host", default=env("host", "127.0.0.1"), help="address to bind (default 127.0.0.1)")
    parser.add_argument("--name", default=env("name", "demo"), help="service name in /health and metrics")
    parser.add_argument("--log-dir", default=env("log-dir", DEFAULT_LOG_DIR), help="where app.log is written")
    parser.add_argument("--db", default=env("db"), help="SQLite queue database (default: no database)")
    parser.add_argument("--faults-file", default=env("faults-file"), help="start-up faults, one per line")
    parser.add_argument("--fault", action="append", default=None, help="start-up fault NAME[:k=v,...] (repeatable)")
    parser.add_argument("--workload-rps", type=rps, default=env("workload-rps", "20"), help="synthetic requests/s")
    parser.add_argument("--api-key-file", default=env("api-key-file"),
                        help="file holding the API key (DEMO_API_KEY=... or the bare key); default $DEMO_API_KEY")
    parser.add_argument("--upstream", default=env("upstream"), help="URL of a service to call with the API key")
    parser.add_argument("--upstream-rps", type=rps, default=env("upstream-rps", "2"), help="upstream calls/s")
    parser.add_argument("--fail-without-upstream", action="store_true",
                        default=(env("fail-without-upstream") or "") not in ("", "0", "false"),
                        help="fail requests while the upstream's last call failed (a hard dependency)")
    parser.add_argument("--release", default=env("release", "v1"), help="the running release's name")
    parser.add_argument("--release-error-rate", type=fraction, default=env("release-error-rate", "0"),
                        help="share of requests this release fails (its bug)")
    parser.add_argument("--upstream-provider", default=env("upstream-provider", "primary"),
                        help="the upstream provider requests call")
    parser.add_argument("--upstream-status-file", default=env("upstream-status-file"),
                        help="JSON {provider: down|up}, kept outside the service")
    parser.add_argument("--work-iterations", type=count, default=env("work-iterations", "10"),
                        help="work per request (iterations)")
    parser.add_argument("--work-unit-ms", type=rps, default=env("work-unit-ms", "2"), help="ms per iteration")
    parser.add_argument("--port-candidates", type=ports, default=env("port-candidates"),
                        help="listen on the first free of these ports (replicas), instead of --port")
    args = parser.parse_args(argv)
    if args.check_config:
        return args
    if args.port is None and not args.port_candidates:
        parser.error("one of --port and --port-candidates is required")
    if args.fault is None:
        args.fault = [spec for spec in re.split(r"[\s;]+", env("fault", "") or "") if spec]
    return args


def bind(args: argparse.Namespace, service: DemoService) -> DemoHTTPServer:
    """Listen on --port, or on the first free of --port-candidates (replicas sharing one
    configuration each get their own port)."""
    if not args.port_candidates:
        return DemoHTTPServer((args.host, args.port), service)
    error: OSError | None = None
    for candidate in args.port_candidates:
        try:
            server = DemoHTTPServer((args.host, candidate), service)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            error = exc
            continue
        args.port = service.port = candidate
        return server
    raise error or OSError(errno.EADDRINUSE, "no candidate port")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check_config:
        try:
            read_config(args.check_config)
        except ConfigError as exc:
            print(f"invalid config: {exc}", file=sys.stderr)
            return 1
        print(f"config OK: {args.check_config}")
        return 0
    try:
        os.makedirs(args.log_dir, exist_ok=True)
    except OSError as exc:
        print(f"{utc_stamp()} ERROR cannot create log dir {args.log_dir}: {exc}", file=sys.stderr)
        return 1
    try:
        service = DemoService(args)
    except OSError as exc:
        print(f"{utc_stamp()} ERROR cannot read the API key file: {exc.strerror or exc}", file=sys.stderr)
        return 2
    log = service.log
    where = args.port if args.port_candidates is None else ",".join(map(str, args.port_candidates))
    log.log("INFO", f"starting {args.name} on {args.host}:{where} pid {os.getpid()} (release {args.release}, "
                    f"upstream {args.upstream_provider}, work {args.work_iterations} iterations)")
    if args.config:
        try:
            service.config = read_config(args.config)
        except ConfigError as exc:
            log.log("ERROR", f"invalid config, not starting: {exc}")
            return 2

    try:
        startup = read_faults_file(args.faults_file) if args.faults_file else []
        startup += [parse_fault_spec(spec) for spec in args.fault]
    except (FaultError, OSError) as exc:
        log.log("ERROR", f"bad start-up fault: {exc}")
        return 2
    # Crashes first: nothing else matters if the process is about to die.
    startup.sort(key=lambda fault: fault[0] not in ("crash", "crash-loop"))
    for name, params in startup:
        service.activate_fault(name, params, at_start=True)

    service.init_db()
    try:
        server = bind(args, service)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            log.log("ERROR", f"EADDRINUSE: {args.host}:{args.port} already in use")
        else:
            log.log("ERROR", f"cannot listen on {args.host}:{args.port}: {exc}")
        return 1

    # Signal handlers only set events: taking the log lock or starting a thread inside a handler
    # could deadlock against the main thread, so helper threads do the actual work.
    def on_signal(signum: int, _frame: Any) -> None:
        {signal.SIGHUP: service.hup, signal.SIGUSR1: service.usr1}.get(signum, service.stop).set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, on_signal)

    def stopper() -> None:
        service.stop.wait()
        log.log("INFO", "shutdown requested, stopping")
        server.shutdown()

    def reopener() -> None:
        while not service.stop.is_set():
            if service.hup.wait(0.5):
                service.hup.clear()
                if log.reopen():
                    log.log("INFO", f"SIGHUP: reopened {log.path}")
                if service.config_path and service.load_config():
                    log.log("INFO", f"SIGHUP: reloaded {service.config_path}")
            if service.usr1.is_set():
                service.usr1.clear()
                found = gc.collect()
                log.log("INFO", f"SIGUSR1: garbage collection found {found} unreachable objects")
                service.admin_actions["gc"] += 1  # counted once done and logged: what a caller waits for

    for target, thread_name in ((stopper, "stopper"), (reopener, "sighup"), (service.workload, "workload")):
        threading.Thread(target=target, name=thread_name, daemon=True).start()
    if service.upstream is not None:
        threading.Thread(target=service.upstream.run, args=(service.stop,), name="upstream", daemon=True).start()
    if service.auth.enabled:
        log.log("INFO", "API key required on " + WORK_HANDLER)
    if service.port_candidates:
        threading.Thread(target=service.adopt_load, name="adopt-load", daemon=True).start()
    host, bound_port = server.server_address[:2]
    log.log("INFO", f"listening on {host}:{bound_port} (workload {args.workload_rps:g} rps)")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    log.log("INFO", "stopped")
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
