"""The lab's demo service, run for real as a subprocess and broken on purpose.

Every test starts its own process on a free port with its own log dir, database and faults
file, polls with deadlines instead of sleeping, and kills the process in teardown.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVICE = Path(__file__).resolve().parents[3] / "cli" / "runbook_remediation" / "lab" / "demo_service.py"

METRIC_NAMES = (
    "http_requests_total",
    "demo_errors_total",
    "http_request_duration_seconds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_cpu_seconds_total",
    "demo_filesystem_size_bytes",
    "demo_filesystem_avail_bytes",
    "demo_fault_active",
    "demo_queue_items",
    "demo_info",
    "demo_libreoffice_processes",
)
FAULT_NAMES = (
    "crash", "crash-loop", "hang", "error-rate", "latency", "cpu-burn", "memory-leak", "fd-leak", "log-flood",
)

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A strict-enough parser of the text exposition format: every line must be valid."""
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _hash, _kind_word, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"bad exposition line: {line!r}"
        name, label_text, value = match.groups()
        labels: list[tuple[str, str]] = []
        if label_text:
            consumed = 0
            for label in LABEL.finditer(label_text):
                assert label.start() == consumed, f"bad labels in {line!r}"
                consumed = label.end()
                labels.append((label.group(1), label.group(2)))
            assert consumed == len(label_text), f"bad labels in {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample {name} has no TYPE line"
        samples[(name, frozenset(labels))] = float(value)
    return samples


def metric(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    found = [value for (n, ls), value in samples.items() if n == name and wanted <= ls]
    assert found, f"no sample {name}{labels}"
    return sum(found)


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    port: int
    log_dir: Path
    db: Path
    faults_file: Path

    @property
    def app_log(self) -> Path:
        return self.log_dir / "app.log"

    def log_text(self) -> str:
        return self.app_log.read_text(encoding="utf-8", errors="replace") if self.app_log.exists() else ""

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any, Any]:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw, headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, raw, headers = exc.code, exc.read(), exc.headers
        text = raw.decode()
        content_type = headers.get("Content-Type", "")
        return status, (json.loads(text) if content_type.startswith("application/json") else text), headers

    def health(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        status, body, _headers = self.request("GET", "/health", timeout=timeout)
        return status, body

    def component(self, name: str, timeout: float = 5.0) -> dict[str, str]:
        _status, body = self.health(timeout)
        return next(c for c in body["components"] if c["name"] == name)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, text, _headers = self.request("GET", "/metrics")
        assert status == 200
        return parse_metrics(text)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"service exited {self.proc.returncode}: {self.log_text()}"
            try:
                return self.health(timeout=1.0)[0] in (200, 503)
            except (OSError, urllib.error.URLError):
                return False

        wait_for(ready, timeout, "the service to answer /health")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    procs: list[subprocess.Popen[bytes]] = []

    def _launch(
        *extra: str,
        port: int | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
        fd_limit: int | None = None,
        plain: bool = False,
    ) -> Demo:
        port = port or free_port()
        log_dir, db, faults_file = tmp_path / "log", tmp_path / "queue.db", tmp_path / "faults"
        argv = [sys.executable, str(SERVICE)]
        if not plain:
            argv += ["--port", str(port), "--log-dir", str(log_dir), "--db", str(db), "--faults-file", str(faults_file)]
        preexec = None
        if fd_limit is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

            def preexec() -> None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, hard))

        with open(tmp_path / f"stderr-{len(procs)}.txt", "wb") as stderr:
            proc = subprocess.Popen(
                [*argv, *extra],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **(env or {})},
                preexec_fn=preexec,  # only sets an rlimit, safe enough before exec
            )
        procs.append(proc)
        demo = Demo(proc, port, log_dir, db, faults_file)
        if wait:
            demo.wait_ready()
        return demo

    yield _launch
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_healthy_service(launch: Callable[..., Demo]) -> None:
    demo = launch()
    status, body = demo.health()
    assert status == 200
    assert body["status"] in ("healthy", "degraded")  # "degraded" only if this machine's disk is > 80 % full
    assert body["service"] == "demo"
    assert body["pid"] == demo.proc.pid
    assert isinstance(body["version"], str)
    assert body["uptime_seconds"] >= 0
    components = {c["name"]: c for c in body["components"]}
    assert list(components) == ["api", "database", "disk", "files"]
    for name in ("api", "database", "files"):
        assert components[name]["status"] == "healthy", components[name]
    assert all(c["detail"] for c in components.values())

    status, body, _headers = demo.request("GET", "/api/work")
    assert (status, body) == (200, {"ok": True})
    assert f"INFO starting demo on 127.0.0.1:{demo.port} pid {demo.proc.pid}" in demo.log_text()
    assert demo.request("GET", "/nope")[0] == 404
    assert demo.request("POST", "/health", body={})[0] == 405


def test_metrics_exposition(launch: Callable[..., Demo]) -> None:
    demo = launch()
    status, text, headers = demo.request("GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
        assert f"# HELP {name} " in text, name
    samples = parse_metrics(text)

    # The workload runs without outside load.
    wait_for(lambda: metric(demo.metrics(), "http_requests_total", status="200") >= 5, 5, "synthetic requests")
    buckets = [(labels, v) for (n, labels), v in samples.items() if n == "http_request_duration_seconds_bucket"]
    bounds = sorted(dict(labels)["le"] for labels, _value in buckets)
    assert len(bounds) == 12 and "+Inf" in bounds
    assert metric(samples, "http_request_duration_seconds_bucket", le="+Inf") == metric(
        samples, "http_request_duration_seconds_count", handler="/api/work"
    )
    for error_type in ("upstream_error", "too_many_open_files", "disk_full", "database_error"):
        assert metric(samples, "demo_errors_total", error_type=error_type) == 0
    for fault in FAULT_NAMES:
        assert metric(samples, "demo_fault_active", fault=fault) == 0
    assert metric(samples, "demo_queue_items") == 100
    assert metric(samples, "demo_info", service="demo") == 1
    assert metric(samples, "demo_filesystem_size_bytes", path=str(demo.log_dir)) > 0
    assert metric(samples, "process_resident_memory_bytes") > 0
    assert metric(samples, "process_max_fds") == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert abs(metric(samples, "process_start_time_seconds") - time.time()) < 60
    assert metric(samples, "demo_libreoffice_processes") == 0  # no soffice.bin beside a test


def test_the_libreoffice_count_reads_each_process_comm_and_skips_one_that_ended(tmp_path: Path) -> None:
    from runbook_remediation.lab.demo_service import process_count

    for pid, comm in (("1", "python3"), ("20", "soffice.bin"), ("21", "oosplash"), ("22", "soffice.bin")):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "comm").write_text(comm + "\n")
    (tmp_path / "23").mkdir()  # ended between the listing and the read: no comm
    (tmp_path / "self").mkdir()
    assert process_count("soffice.bin", str(tmp_path)) == 2
    assert process_count("soffice", str(tmp_path)) == 0  # the comm, not a prefix


def test_environment_configures_and_command_line_wins(launch: Callable[..., Demo], tmp_path: Path) -> None:
    port = free_port()
    env = {
        "DEMO_PORT": str(port),
        "DEMO_LOG_DIR": str(tmp_path / "log"),
        "DEMO_NAME": "from-env",
        "DEMO_WORKLOAD_RPS": "0",
        "DEMO_FAULT": "error-rate:rate=1",
    }
    demo = launch("--name", "from-cli", env=env, port=port, plain=True)
    _status, body = demo.health()
    assert body["service"] == "from-cli"
    assert [c["name"] for c in body["components"]] == ["api", "disk", "files"]  # no --db, no database
    assert demo.request("GET", "/faults")[1]["active"] == {"error-rate": {"rate": 1.0}}
    samples = demo.metrics()
    assert metric(samples, "http_requests_total") == 0  # workload disabled
    assert demo.request("GET", "/api/work")[0] == 500
    assert metric(demo.metrics(), "http_requests_total", status="500") == 1


def test_error_rate_fault(launch: Callable[..., Demo]) -> None:
    demo = launch()
    before = metric(demo.metrics(), "http_requests_total", status="500")
    status, body, _headers = demo.request("POST", "/faults/error-rate", {"rate": 0.2})
    assert (status, body["params"]) == (201, {"rate": 0.2})
    assert demo.request("POST", "/faults/error-rate", {"rate": 0.2})[0] == 200  # already active

    wait_for(lambda: metric(demo.metrics(), "http_requests_total", status="500") > before + 2, 10, "500s")
    wait_for(lambda: demo.component("api")["status"] == "degraded", 10, "api degraded")
    samples = demo.metrics()
    assert metric(samples, "demo_errors_total", error_type="upstream_error") > 0
    assert metric(samples, "demo_fault_active", fault="error-rate") == 1
    assert "ERROR /api/work failed: upstream_error" in demo.log_text()

    assert demo.request("DELETE", "/faults/error-rate")[1] == {"cleared": "error-rate", "was_active": True}
    assert metric(demo.metrics(), "demo_fault_active", fault="error-rate") == 0


def test_latency_fault(launch: Callable[..., Demo]) -> None:
    demo = launch()
    before = metric(demo.metrics(), "http_request_duration_seconds_sum")
    assert demo.request("POST", "/faults/latency", {"seconds": 0.3})[0] == 201
    wait_for(lambda: metric(demo.metrics(), "http_request_duration_seconds_sum") > before + 2, 10, "latency sum")
    slow = metric(demo.metrics(), "http_request_duration_seconds_bucket", le="0.25")
    total = metric(demo.metrics(), "http_request_duration_seconds_count")
    assert slow < total
    started = time.monotonic()
    assert demo.request("GET", "/api/work")[0] == 200
    assert time.monotonic() - started >= 0.3


def test_requests_in_flight_are_counted_while_they_are_handled(launch: Callable[..., Demo]) -> None:
    demo = launch("--workload-rps", "0")
    assert metric(demo.metrics(), "http_requests_in_flight", handler="/api/work") == 0
    assert demo.request("POST", "/faults/latency", {"seconds": 2})[0] == 201
    callers = [threading.Thread(target=demo.request, args=("GET", "/api/work")) for _caller in range(3)]
    for caller in callers:
        caller.start()
    wait_for(lambda: metric(demo.metrics(), "http_requests_in_flight", handler="/api/work") == 3, 5, "3 in flight")
    for caller in callers:
        caller.join()
    assert metric(demo.metrics(), "http_requests_in_flight", handler="/api/work") == 0


def test_cpu_burn_fault_spends_cpu_per_request(launch: Callable[..., Demo]) -> None:
    # No workload: 20 synthetic requests a second burning 200 ms each would saturate it.
    demo = launch("--workload-rps", "0")
    assert demo.request("POST", "/faults/cpu-burn", {"ms": 200})[0] == 201
    before = metric(demo.metrics(), "process_cpu_seconds_total")
    started = time.monotonic()
    assert demo.request("GET", "/api/work", timeout=30)[0] == 200
    assert time.monotonic() - started >= 0.2
    # The request's own CPU (the counter moves in 10 ms clock ticks).
    assert metric(demo.metrics(), "process_cpu_seconds_total") - before >= 0.15


def test_crash_fault(launch: Callable[..., Demo]) -> None:
    demo = launch()
    status, body, _headers = demo.request("POST", "/faults/crash")
    assert (status, body["activated"]) == (201, "crash")
    assert demo.wait_exit(5) == 1
    assert "FATAL crash fault injected" in demo.log_text()


def test_crash_loop_from_faults_file(launch: Callable[..., Demo], tmp_path: Path) -> None:
    (tmp_path / "faults").write_text("# injected by the lab\n\ncrash-loop  # stays until cleaned\n", encoding="utf-8")
    for _restart in range(2):
        demo = launch(wait=False)
        assert demo.wait_exit(5) == 1  # exits at start, never serves (bounded, not timed: load varies)
    assert demo.log_text().count("FATAL crash-loop") == 2


def test_crash_loop_at_runtime_persists(launch: Callable[..., Demo]) -> None:
    demo = launch()
    assert demo.request("POST", "/faults/crash-loop")[0] == 201
    assert demo.wait_exit(5) == 1
    assert "crash-loop" in demo.faults_file.read_text(encoding="utf-8")
    again = launch(wait=False)
    assert again.wait_exit(5) == 1
    demo.faults_file.write_text("", encoding="utf-8")  # the remediation cleans the file
    launch().wait_ready()


def test_fd_leak_exhausts_descriptors(launch: Callable[..., Demo]) -> None:
    demo = launch(fd_limit=128)
    assert metric(demo.metrics(), "process_max_fds") == 128
    assert demo.request("POST", "/faults/fd-leak", {"per_second": 1000})[0] == 201

    def unhealthy() -> tuple[int, dict[str, Any]] | None:
        try:
            status, body = demo.health(timeout=3)
        except (OSError, urllib.error.URLError):
            return None  # a connection that arrived exactly at exhaustion
        files = next(c for c in body["components"] if c["name"] == "files")
        return (status, body) if status == 503 and files["status"] == "unhealthy" else None

    _status, body = wait_for(unhealthy, 15, "files unhealthy and 503")
    assert body["status"] == "unhealthy"
    wait_for(lambda: "Too many open files" in demo.log_text(), 5, "EMFILE in app.log")
    assert "ERROR OSError: [Errno 24] Too many open files" in demo.log_text()
    assert metric(demo.metrics(), "demo_errors_total", error_type="too_many_open_files") > 0

    assert demo.request("DELETE", "/faults")[1] == {"cleared": ["fd-leak"]}
    wait_for(lambda: metric(demo.metrics(), "process_open_fds") < 64, 5, "leaked fds closed")


def test_fd_leak_holds_at_max_fraction(launch: Callable[..., Demo]) -> None:
    demo = launch(fd_limit=128)
    assert demo.request("POST", "/faults/fd-leak", {"per_second": 1000, "max_fraction": 0.5})[0] == 201
    wait_for(lambda: metric(demo.metrics(), "process_open_fds") >= 63, 5, "the leak up to half the limit")
    time.sleep(0.5)  # 500 more descriptors at the leak's rate, had it not stopped
    assert 63 <= metric(demo.metrics(), "process_open_fds") <= 66
    status, body = demo.health(timeout=3)
    assert status == 200 and body["status"] == "healthy"
    assert "Too many open files" not in demo.log_text()


def test_memory_leak_grows_rss(launch: Callable[..., Demo]) -> None:
    demo = launch()
    before = metric(demo.metrics(), "process_resident_memory_bytes")
    assert demo.request("POST", "/faults/memory-leak", {"mb_per_second": 100, "max_mb": 80})[0] == 201
    grown = 60 * 1024 * 1024
    wait_for(lambda: metric(demo.metrics(), "process_resident_memory_bytes") > before + grown, 10, "RSS growth")
    assert demo.request("DELETE", "/faults/memory-leak")[0] == 200


def test_log_flood_grows_app_log(launch: Callable[..., Demo]) -> None:
    demo = launch()
    before = demo.app_log.stat().st_size
    assert demo.request("POST", "/faults/log-flood", {"mb_per_second": 10})[0] == 201
    wait_for(lambda: demo.app_log.stat().st_size > before + 2 * 1024 * 1024, 10, "app.log growth")
    assert demo.request("DELETE", "/faults/log-flood")[0] == 200
    assert demo.health()[0] == 200


def test_a_log_flood_with_max_mb_stops_after_writing_that_much(launch: Callable[..., Demo]) -> None:
    demo = launch()
    before = demo.app_log.stat().st_size
    assert demo.request("POST", "/faults/log-flood", {"mb_per_second": 20, "max_mb": 3})[0] == 201
    wait_for(lambda: demo.app_log.stat().st_size >= before + 3 * 1024 * 1024, 10, "3 MiB written")
    time.sleep(1.0)  # ten ticks of the flood: it wrote nothing more
    grown = demo.app_log.stat().st_size - before
    assert 3 * 1024 * 1024 <= grown < 3 * 1024 * 1024 + 512 * 1024, grown  # the service's own lines aside


def test_corrupt_database(launch: Callable[..., Demo]) -> None:
    demo = launch()
    # Enough rows that the table spans many pages and page 2 is an interior b-tree page.
    with sqlite3.connect(demo.db, timeout=10) as conn:
        conn.executemany(
            "INSERT INTO queue_items (status, payload, created_at) VALUES ('pending', ?, 'now')",
            [("x" * 200,) for _row in range(500)],
        )
    conn.close()
    with open(demo.db, "r+b") as fh:
        header = fh.read(100)
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        fh.seek(page_size)  # page 2, like dd bs=$page_size seek=1 conv=notrunc
        fh.write(b"\xde\xad\xbe\xef" * (page_size // 4))

    def corrupt() -> dict[str, str] | None:
        status, body = demo.health()
        database = next(c for c in body["components"] if c["name"] == "database")
        return database if status == 503 and database["status"] == "unhealthy" else None

    database = wait_for(corrupt, 10, "database unhealthy")
    assert database["detail"]
    wait_for(lambda: metric(demo.metrics(), "demo_errors_total", error_type="database_error") > 0, 5, "db errors")


def test_hang_fault(launch: Callable[..., Demo]) -> None:
    demo = launch()
    assert demo.request("POST", "/faults/hang")[0] == 201
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        demo.health(timeout=0.5)
    status, body, _headers = demo.request("GET", "/faults", timeout=2)
    assert (status, body["active"]) == (200, {"hang": {}})
    assert demo.request("DELETE", "/faults/hang", timeout=2)[0] == 200
    assert demo.health(timeout=2)[0] == 200


def test_sigterm_exits_cleanly(launch: Callable[..., Demo]) -> None:
    demo = launch()
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.wait_exit(5) == 0
    assert "INFO stopped" in demo.log_text()


def test_sighup_reopens_log(launch: Callable[..., Demo]) -> None:
    demo = launch()
    rotated = demo.app_log.with_name("app.log.1")
    demo.app_log.rename(rotated)
    demo.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: demo.app_log.exists() and "reopened" in demo.log_text(), 5, "a new app.log")
    assert demo.proc.poll() is None


GOOD_CONFIG = '[server]\nlog_level = "INFO"\n\n[limits]\nmax_body_kb = 64\n'


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SERVICE), "--check-config", str(path)],
                          capture_output=True, text=True, check=False, timeout=30)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('[server]\nlog_level = "LOUD"\n', "server.log_level has an invalid value"),
        ("[limits]\nmax_body_kb = 0\n", "limits.max_body_kb has an invalid value"),
        ("[limits]\nmax_body_kb = true\n", "limits.max_body_kb has an invalid value"),
        ("[cache]\nsize = 1\n", "unknown section [cache]"),
        ("[server]\ncolour = 1\n", "unknown key server.colour"),
        ("[server\n", "is not valid TOML"),
    ],
)
def test_check_config_is_the_services_own_check(tmp_path: Path, text: str, why: str) -> None:
    config = tmp_path / "production.toml"
    config.write_text(GOOD_CONFIG)
    assert check_config(config).returncode == 0
    config.write_text(text)
    result = check_config(config)
    assert result.returncode == 1 and why in result.stderr, result.stderr


def test_an_invalid_config_stops_the_start(launch: Callable[..., Demo], tmp_path: Path) -> None:
    config = tmp_path / "production.toml"
    config.write_text('[server]\nlog_level = "LOUD"\n')
    demo = launch("--config", str(config), wait=False)
    assert demo.wait_exit(10) == 2
    assert "invalid config, not starting" in demo.log_text()


def test_a_reload_of_a_broken_config_keeps_the_old_one_running_and_unhealthy(
        launch: Callable[..., Demo], tmp_path: Path) -> None:
    config = tmp_path / "production.toml"
    config.write_text(GOOD_CONFIG)
    demo = launch("--config", str(config))
    status, body = demo.health()
    assert status == 200 and {"name": "config", "status": "healthy", "detail": f"{config} loaded"} in body["components"]
    pid = body["pid"]
    config.write_text(GOOD_CONFIG + "broken = [\n")
    demo.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: demo.health()[0] == 503, 5, "unhealthy after the refused reload")
    [component] = [c for c in demo.health()[1]["components"] if c["name"] == "config"]
    assert component["status"] == "unhealthy" and component["detail"].startswith("reload refused: ")
    assert demo.request("GET", "/api/work")[0] == 200  # still serving, on the previous configuration
    config.write_text(GOOD_CONFIG)
    demo.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: demo.health()[0] == 200, 5, "healthy after a good reload")
    assert demo.health()[1]["pid"] == pid


def test_port_in_use(launch: Callable[..., Demo]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        demo = launch(port=port, wait=False)
        assert demo.wait_exit(5) == 1
    assert f"ERROR EADDRINUSE: 127.0.0.1:{port} already in use" in demo.log_text()


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/faults/no-such-fault", {}, 404),
        ("/faults/error-rate", {"rate": 2}, 400),
        ("/faults/error-rate", {"rate": "lots"}, 400),
        ("/faults/latency", {"seconds": -1}, 400),
        ("/faults/latency", {"bogus": 1}, 400),
        ("/faults/fd-leak", [1, 2], 400),
        ("/faults/hang", b"{not json", 400),
    ],
)
def test_fault_api_rejects(launch: Callable[..., Demo], path: str, body: Any, expected: int) -> None:
    demo = launch("--workload-rps", "0")
    status, payload, _headers = demo.request("POST", path, body)
    assert status == expected
    assert payload["error"]
    assert demo.request("GET", "/faults")[1]["active"] == {}


def test_bad_startup_fault_is_a_usage_error(launch: Callable[..., Demo]) -> None:
    demo = launch("--fault", "latency:seconds=soon", wait=False)
    assert demo.wait_exit(5) == 2
    assert "bad start-up fault" in demo.log_text()


def test_api_key_required_logged_and_counted_never_echoed(launch: Callable[..., Demo], tmp_path: Path) -> None:
    key_file = tmp_path / "api.env"
    key_file.write_text("# demo\nDEMO_API_KEY=s3cret-demo-key\n")
    demo = launch("--api-key-file", str(key_file))
    assert demo.request("GET", "/api/work")[0] == 401
    req = urllib.request.Request(f"http://127.0.0.1:{demo.port}/api/work", headers={"X-API-Key": "wrong"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 401
    req = urllib.request.Request(f"http://127.0.0.1:{demo.port}/api/work",
                                 headers={"Authorization": "Bearer s3cret-demo-key"})
    with urllib.request.urlopen(req, timeout=5) as ok:
        assert ok.status == 200
    security = (demo.log_dir / "security.log").read_text()
    assert security.count("AUTH_ERROR") == 2 and "client=127.0.0.1" in security
    samples = demo.metrics()
    assert metric(samples, "demo_auth_failures_total", client="127.0.0.1", reason="missing_key") == 1
    assert metric(samples, "demo_auth_failures_total", client="127.0.0.1", reason="invalid_key") == 1
    for text in (security, demo.log_text(), demo.request("GET", "/metrics")[1], json.dumps(demo.health()[1])):
        assert "s3cret-demo-key" not in text


def test_consumer_upstream_health_follows_its_key(launch: Callable[..., Demo], tmp_path: Path) -> None:
    api = launch(env={"DEMO_API_KEY": "right-key"})
    consumer = launch("--upstream", f"http://127.0.0.1:{api.port}/api/work", "--upstream-rps", "10",
                      env={"DEMO_API_KEY": "wrong-key"}, port=free_port())
    wait_for(lambda: consumer.component("upstream")["status"] == "unhealthy"
             and "HTTP 401" in consumer.component("upstream")["detail"], 10, "the consumer refused")
    good = launch("--upstream", f"http://127.0.0.1:{api.port}/api/work", "--upstream-rps", "10",
                  env={"DEMO_API_KEY": "right-key"}, port=free_port())
    wait_for(lambda: good.component("upstream")["status"] == "healthy", 10, "the consumer accepted")


def test_a_hard_dependency_fails_requests_while_it_is_down(launch: Callable[..., Demo]) -> None:
    dead = free_port()  # nobody listens: every upstream call fails
    soft = launch("--upstream", f"http://127.0.0.1:{dead}/health", "--upstream-rps", "10", port=free_port())
    hard = launch("--upstream", f"http://127.0.0.1:{dead}/health", "--upstream-rps", "10", port=free_port(),
                  env={"DEMO_FAIL_WITHOUT_UPSTREAM": "1"})
    wait_for(lambda: hard.component("upstream")["status"] == "unhealthy", 10, "the upstream call failed")
    status, body, _headers = hard.request("GET", "/api/work")
    assert status == 500 and body["error_type"] == "upstream_error", body
    assert "is unavailable" in body["error"]
    assert soft.request("GET", "/api/work")[0] == 200  # without the flag the dependency is soft


# --- releases, upstream provider, work per request, replicas (error-rate and latency) ----------------


def test_release_and_its_bug(launch: Callable[..., Demo]) -> None:
    demo = launch(env={"DEMO_RELEASE": "v2", "DEMO_RELEASE_ERROR_RATE": "0.5"})
    assert demo.health()[1]["release"] == "v2"
    assert metric(demo.metrics(), "demo_info", release="v2") == 1
    wait_for(lambda: metric(demo.metrics(), "demo_errors_total", error_type="release_bug") > 2, 10, "release bugs")
    assert "TypeError in release v2" in demo.log_text()
    good = launch(env={"DEMO_RELEASE": "v1"})
    wait_for(lambda: metric(good.metrics(), "http_requests_total", status="200") > 5, 10, "requests")
    assert metric(good.metrics(), "demo_errors_total", error_type="release_bug") == 0


def test_upstream_provider_outage_and_fallback(launch: Callable[..., Demo], tmp_path: Path) -> None:
    status_file = tmp_path / "upstream.json"
    status_file.write_text(json.dumps({"primary": "down"}), encoding="utf-8")
    env = {"DEMO_UPSTREAM_STATUS_FILE": str(status_file)}
    demo = launch(env=env)
    assert demo.health()[1]["upstream_provider"] == "primary"
    wait_for(lambda: metric(demo.metrics(), "demo_errors_total", error_type="upstream_error") > 2, 10, "upstream")
    assert demo.component("provider")["status"] == "degraded"
    assert "upstream provider primary returned HTTP 503" in demo.log_text()
    # The outage is outside the service: the same provider after a restart still fails ...
    demo.proc.terminate()
    demo.wait_exit(10)
    again = launch(env=env)
    wait_for(lambda: metric(again.metrics(), "demo_errors_total", error_type="upstream_error") > 2, 10, "still down")
    again.proc.terminate()
    again.wait_exit(10)
    # ... the fallback works.
    fallback = launch(env={**env, "DEMO_UPSTREAM_PROVIDER": "fallback"})
    wait_for(lambda: metric(fallback.metrics(), "http_requests_total", status="200") > 5, 10, "requests")
    assert metric(fallback.metrics(), "demo_errors_total", error_type="upstream_error") == 0
    assert fallback.component("provider")["status"] == "healthy"


def test_work_per_request(launch: Callable[..., Demo]) -> None:
    demo = launch(env={"DEMO_WORK_ITERATIONS": "100", "DEMO_WORK_UNIT_MS": "3"})
    started = time.monotonic()
    assert demo.request("GET", "/api/work")[0] == 200
    assert time.monotonic() - started >= 0.3
    assert metric(demo.metrics(), "demo_info", work_iterations="100") == 1
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, str(SERVICE), "--port", "1", "--work-iterations", "-1"], check=True,
                       capture_output=True)


def test_replicas_take_the_first_free_candidate_port(launch: Callable[..., Demo]) -> None:
    ports = [free_port(), free_port(), free_port()]
    env = {"DEMO_PORT_CANDIDATES": ",".join(map(str, ports)), "DEMO_WORKLOAD_RPS": "0"}
    first = launch("--log-dir", "/tmp", plain=True, port=ports[0], env=env)
    second = launch("--log-dir", "/tmp", plain=True, port=ports[1], env=env)
    assert first.health()[0] == 200 and second.health()[0] == 200
    assert first.proc.pid != second.proc.pid


def test_the_load_fault_is_the_services_and_new_replicas_take_it_over(launch: Callable[..., Demo]) -> None:
    ports = [free_port(), free_port(), free_port()]
    env = {"DEMO_PORT_CANDIDATES": ",".join(map(str, ports)), "DEMO_WORKLOAD_RPS": "0"}
    first = launch("--log-dir", "/tmp", plain=True, port=ports[0], env=env)
    assert first.health()[1]["port"] == ports[0]
    assert first.request("POST", "/faults/load", {"seconds": 0.05})[0] == 201
    second = launch("--log-dir", "/tmp", plain=True, port=ports[1], env=env)
    assert second.health()[1]["port"] == ports[1]
    wait_for(lambda: "load" in second.request("GET", "/faults")[1]["active"], 10, "the new replica taking the load")
    assert second.request("GET", "/faults")[1]["active"]["load"] == {"seconds": 0.05}
    assert second.request("GET", "/api/work")[0] == 200


def test_live_replicas_are_the_candidates_that_accept_a_connection(tmp_path: Path) -> None:
    from runbook_remediation.lab import demo_service

    mine, idle = free_port(), free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.listen()
        taken = peer.getsockname()[1]
        args = demo_service.parse_args(["--port-candidates", f"{mine},{taken},{idle}", "--log-dir", str(tmp_path)])
        args.port = mine  # as bind() sets it
        assert demo_service.DemoService(args).live_replicas() == 2  # this one and the peer
    alone = demo_service.parse_args(["--port", str(mine), "--log-dir", str(tmp_path)])
    assert demo_service.DemoService(alone).live_replicas() == 1
    with pytest.raises(SystemExit):
        demo_service.parse_args(["--log-dir", str(tmp_path)])  # neither --port nor candidates


def test_admin_actions_cache_clear_and_sigusr1_gc(launch: Callable[..., Demo]) -> None:
    demo = launch(env={"DEMO_API_KEY": "admin-key-for-the-test"})
    demo.health()  # caches the database check
    key = frozenset({("action", "cache_clear")})
    assert demo.metrics()[("demo_admin_actions_total", key)] == 0
    assert demo.request("POST", "/admin/cache/clear")[0] == 401  # with an API key configured, admin needs it too
    req = urllib.request.Request(f"http://127.0.0.1:{demo.port}/admin/cache/clear", data=b"", method="POST",
                                 headers={"Authorization": "Bearer admin-key-for-the-test"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and json.loads(resp.read())["cleared"] >= 1
    assert demo.metrics()[("demo_admin_actions_total", key)] == 1
    assert demo.request("GET", "/admin/cache/clear")[0] == 401  # the key first, whatever the method
    assert "admin: cache cleared" in demo.log_text()

    demo.proc.send_signal(signal.SIGUSR1)
    gc_key = ("demo_admin_actions_total", frozenset({("action", "gc")}))
    wait_for(lambda: demo.metrics()[gc_key] == 1, 5, "the SIGUSR1 garbage collection")
    assert "SIGUSR1: garbage collection found" in demo.log_text()
    assert demo.proc.poll() is None  # USR1 does not stop it
