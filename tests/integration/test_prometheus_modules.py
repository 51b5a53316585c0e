"""The prometheus_query and prometheus_alerts modules against a real Prometheus and Alertmanager.

The fixture starts Debian's /usr/bin/prometheus and /usr/bin/prometheus-alertmanager on
127.0.0.1 (free ports, configs in a temp dir): a 1 s scrape and evaluation interval,
Prometheus scraping itself, and a rule that always fires. The modules' main() runs
in-process, exactly as in the unit tests, but over real HTTP.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


from tests.collection_loader import install_collection_loader  # noqa: E402

install_collection_loader()

from ansible_collections.runbook.remediation.plugins.modules import (  # noqa: E402
    prometheus_alerts,
    prometheus_query,
)

# --------------------------------------------------------------------------- module runner


class ModuleExit(Exception):
    def __init__(self, failed: bool, result: dict):
        super().__init__(result.get("msg", ""))
        self.failed = failed
        self.result = result


@pytest.fixture
def run(monkeypatch):
    """run(module, **args) -> (failed, result) from the module's main()."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def exit_json(self, **kwargs):
        raise ModuleExit(False, kwargs)

    def fail_json(self, msg, **kwargs):
        raise ModuleExit(True, dict(kwargs, msg=msg))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning: None)

    def _run(module, **args):
        with patch_module_args(args), pytest.raises(ModuleExit) as excinfo:
            module.main()
        return excinfo.value.failed, excinfo.value.result

    return _run


# --------------------------------------------------------------------------- real servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, body=None, method: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip() else None


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError as exc:  # not up yet
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


class Daemon:
    def __init__(self, name: str, argv: list[str], log: Path, url: str):
        self.name = name
        self.url = url
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return response.status == 200

        try:
            wait_for(ready, timeout, f"{self.name} at {self.url}/-/ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log_file.close()


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{prom_port}"]
"""

RULES = """\
groups:
  - name: demo
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        for: 0s
        labels:
          severity: warning
          service: demo
        annotations:
          summary: This alert always fires.
"""

ALERTMANAGER_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running Alertmanager and Prometheus; yields their base URLs."""
    for binary in (PROMETHEUS, ALERTMANAGER):
        if not shutil.which(binary):
            pytest.skip(f"{binary} is not installed (apt-get install prometheus prometheus-alertmanager)")
    work = tmp_path_factory.mktemp("prometheus-lab")
    am_port, prom_port = free_port(), free_port()
    (work / "alertmanager.yml").write_text(ALERTMANAGER_CONFIG)
    (work / "rules.yml").write_text(RULES)
    (work / "prometheus.yml").write_text(
        PROMETHEUS_CONFIG.format(rules=work / "rules.yml", am_port=am_port, prom_port=prom_port))

    daemons = []
    try:
        alertmanager = Daemon("alertmanager", [
            ALERTMANAGER,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ], work / "alertmanager.log", f"http://127.0.0.1:{am_port}")
        daemons.append(alertmanager)
        prometheus = Daemon("prometheus", [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--web.enable-lifecycle",
            f"--web.external-url=http://127.0.0.1:{prom_port}",  # generatorURL otherwise names the host
            # the first notification can go out before the Alertmanager is discovered
            # and is then dropped; resend every second instead of every minute
            "--rules.alert.resend-delay=1s",
        ], work / "prometheus.log", f"http://127.0.0.1:{prom_port}")
        daemons.append(prometheus)
        alertmanager.wait_ready()
        prometheus.wait_ready()
        yield {"prometheus": prometheus.url, "alertmanager": alertmanager.url}
    finally:
        for daemon in reversed(daemons):
            daemon.stop()


@pytest.fixture(scope="module")
def scraped(lab):
    """Prometheus has scraped itself a few times (so range queries have points)."""
    url = lab["prometheus"] + "/api/v1/query?query=count_over_time(up[1m])"
    wait_for(lambda: any(float(r["value"][1]) >= 3 for r in http_json(url)["data"]["result"]), 30,
             "three scrapes of Prometheus by itself")
    return lab


@pytest.fixture(scope="module")
def fired(lab):
    """AlwaysFiring has reached Alertmanager."""
    url = lab["alertmanager"] + "/api/v2/alerts?filter=alertname%3D%22AlwaysFiring%22"
    wait_for(lambda: http_json(url), 30, "AlwaysFiring to reach Alertmanager")
    return lab


@pytest.fixture(scope="module")
def injected(fired):
    """An extra alert POSTed straight to Alertmanager."""
    http_json(fired["alertmanager"] + "/api/v2/alerts", [{
        "labels": {"alertname": "CheckoutDown", "service": "checkout", "severity": "critical"},
        "annotations": {"summary": "checkout is down"},
        "generatorURL": "http://example.invalid/graph",
    }], method="POST")
    wait_for(lambda: http_json(fired["alertmanager"] + "/api/v2/alerts?filter=alertname%3D%22CheckoutDown%22"),
             10, "the injected alert")
    return fired


# --------------------------------------------------------------------------- prometheus_query


def test_instant_query(run, scraped):
    failed, result = run(prometheus_query, url=scraped["prometheus"], query='up{job="prometheus"}')
    assert not failed, result["msg"]
    assert result["changed"] is False
    assert result["result_type"] == "vector"
    assert result["count"] == 1
    sample = result["samples"][0]
    assert sample["metric"]["job"] == "prometheus"
    assert sample["metric"]["instance"] == scraped["prometheus"].removeprefix("http://")
    assert sample["value"] == 1.0
    assert sample["timestamp"] == pytest.approx(time.time(), abs=30)


def test_instant_query_at_a_relative_time(run, scraped):
    failed, result = run(prometheus_query, url=scraped["prometheus"], query="time()", time="-1m")
    assert not failed, result["msg"]
    assert result["result_type"] == "scalar"
    assert result["samples"][0]["value"] == pytest.approx(time.time() - 60, abs=5)


def test_range_query_with_trend(run, scraped):
    failed, result = run(prometheus_query, url=scraped["prometheus"], type="range", start="-1m", step="1s",
                         query='sum(prometheus_tsdb_head_samples_appended_total{job="prometheus"})')
    assert not failed, result["msg"]
    assert result["result_type"] == "matrix"
    assert result["count"] >= 1
    series = result["samples"][0]
    assert len(series["values"]) >= 2
    assert all(isinstance(point[1], float) for point in series["values"])
    trend = result["trend"][0]
    assert trend["metric"] == series["metric"]
    assert trend["first"] == series["values"][0][1]
    assert trend["last"] == series["values"][-1][1]
    assert trend["delta"] == pytest.approx(trend["last"] - trend["first"])
    assert trend["delta"] > 0  # Prometheus keeps appending its own samples
    assert trend["per_second"] > 0
    assert result["step"] == 1
    assert result["end"] - result["start"] == pytest.approx(60, abs=0.01)


@pytest.mark.parametrize(("op", "value", "breached"), [(">", 0.5, True), (">", 1, False), ("==", 1, True)])
def test_threshold(run, scraped, op, value, breached):
    failed, result = run(prometheus_query, url=scraped["prometheus"], query='up{job="prometheus"}',
                         threshold={"op": op, "value": value})
    assert not failed, result["msg"]
    assert result["breached"] is breached
    assert len(result["breaching"]) == (1 if breached else 0)


def test_empty_result_can_fail(run, scraped):
    failed, result = run(prometheus_query, url=scraped["prometheus"], query="no_such_metric_anywhere")
    assert (failed, result["count"]) == (False, 0)
    failed, result = run(prometheus_query, url=scraped["prometheus"], query="no_such_metric_anywhere",
                         fail_on_empty=True)
    assert failed
    assert "returned no samples" in result["msg"]


@pytest.mark.parametrize("query", ["up{", "sum(rate(up[5m])", "rate(up)"])
def test_invalid_promql_shows_prometheus_error(run, lab, query):
    failed, result = run(prometheus_query, url=lab["prometheus"], query=query)
    assert failed
    assert result["msg"].startswith("Prometheus rejected the query: ")
    assert result["error_kind"] == "input"
    # the text after the prefix is Prometheus' own (it mentions the parse problem)
    assert re.search(r"parse error|expected type range vector", result["msg"]), result["msg"]


def test_unreachable_prometheus(run):
    url = f"http://127.0.0.1:{free_port()}"
    failed, result = run(prometheus_query, url=url, query="up")
    assert failed
    assert result["msg"] == f"Prometheus at {url} is unreachable: connection refused"
    assert result["error_kind"] == "unavailable"


def test_alertmanager_url_given_as_prometheus(run, lab):
    failed, result = run(prometheus_query, url=lab["alertmanager"], query="up")
    assert failed
    assert result["msg"].startswith(f"Prometheus at {lab['alertmanager']} returned an error: HTTP 404")


# --------------------------------------------------------------------------- prometheus_alerts


def test_alertmanager_alerts_by_labels(run, fired):
    failed, result = run(prometheus_alerts, url=fired["alertmanager"], labels={"service": "demo"},
                         alertname="AlwaysFiring")
    assert not failed, result["msg"]
    assert result["changed"] is False
    assert result["count"] == 1
    alert = result["alerts"][0]
    assert alert["name"] == "AlwaysFiring"
    assert alert["state"] == "active"
    assert alert["severity"] == "warning"
    assert alert["labels"]["service"] == "demo"
    assert alert["annotations"]["summary"] == "This alert always fires."
    assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
    assert alert["generator_url"].startswith(fired["prometheus"] + "/graph?g0.expr=vector")
    assert alert["starts_at"]


def test_alertmanager_filters(run, injected):
    url = injected["alertmanager"]

    def names(**args):
        failed, result = run(prometheus_alerts, url=url, **args)
        assert not failed, result["msg"]
        assert result["count"] == len(result["alerts"])
        return [a["name"] for a in result["alerts"]]

    assert names(labels={"severity": "critical"}) == ["CheckoutDown"]
    assert names(labels={"service": "~check.*"}) == ["CheckoutDown"]
    assert names(labels={"service": "~check"}) == []  # anchored like PromQL
    assert names(alertname=["AlwaysFiring", "CheckoutDown"]) == ["AlwaysFiring", "CheckoutDown"]
    assert names(alertname="CheckoutDown", labels={"severity": "warning"}) == []
    assert names(labels={"service": "nope"}) == []
    assert names(labels={"team": ""}, alertname="AlwaysFiring") == ["AlwaysFiring"]
    injected_alert = run(prometheus_alerts, url=url, alertname="CheckoutDown")[1]["alerts"][0]
    assert injected_alert["generator_url"] == "http://example.invalid/graph"
    assert injected_alert["severity"] == "critical"


def test_alertmanager_suppressed_state(run, injected):
    url = injected["alertmanager"]
    now = time.time()
    silence = http_json(url + "/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": "CheckoutDown", "isRegex": False, "isEqual": True}],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600)),
        "createdBy": "pytest",
        "comment": "test suppressed state",
    }, method="POST")
    try:
        failed, result = run(prometheus_alerts, url=url, state="suppressed")
        assert not failed, result["msg"]
        assert [a["name"] for a in result["alerts"]] == ["CheckoutDown"]
        assert result["alerts"][0]["silenced_by"] == [silence["silenceID"]]
        active = run(prometheus_alerts, url=url)[1]
        assert "CheckoutDown" not in [a["name"] for a in active["alerts"]]
        every = run(prometheus_alerts, url=url, state="all")[1]
        assert {"AlwaysFiring", "CheckoutDown"} <= {a["name"] for a in every["alerts"]}
    finally:
        req = urllib.request.Request(f"{url}/api/v2/silence/{silence['silenceID']}", method="DELETE")
        urllib.request.urlopen(req, timeout=5).close()


def test_prometheus_source(run, fired):
    failed, result = run(prometheus_alerts, source="prometheus", url=fired["prometheus"], state="firing",
                         labels={"service": "demo"})
    assert not failed, result["msg"]
    assert [a["name"] for a in result["alerts"]] == ["AlwaysFiring"]
    alert = result["alerts"][0]
    assert alert["state"] == "firing"
    assert alert["severity"] == "warning"
    assert alert["value"]
    again = run(prometheus_alerts, source="prometheus", url=fired["prometheus"])[1]["alerts"][0]
    assert again["fingerprint"] == alert["fingerprint"]  # stable across calls
    assert run(prometheus_alerts, source="prometheus", url=fired["prometheus"], state="pending")[1]["count"] == 0


def test_unreachable_alertmanager(run):
    url = f"http://127.0.0.1:{free_port()}"
    failed, result = run(prometheus_alerts, url=url)
    assert failed
    assert result["msg"] == f"Alertmanager at {url} is unreachable: connection refused"
    assert result["error_kind"] == "unavailable"
