"""Triage: alert parsing, the severity matrix (the real meta/severity.yml), ranking, commands,
and `runbook triage` against HTTP servers on 127.0.0.1.

The CLI tests serve Alertmanager's and Prometheus' JSON from a small http.server stand-in
(canned answers in the documented API shapes, so every case is reproducible);
tests/integration/test_triage.py runs the same command against the lab's real servers.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_remediation import catalogue, shell, triage
from runbook_remediation.collection import Collection
from runbook_remediation.errors import BadInput, ExitCode, Unavailable

REPO = Path(__file__).resolve().parents[3]
MATRIX = triage.Matrix.load(REPO / "meta" / "severity.yml")
SCENARIOS = catalogue.catalogue(Collection(REPO, REPO))
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alert(name, host="lab-1", service="demo", severity=None, minutes_ago=1.0, state="active", **labels):
    labels = {"alertname": name, "host": host, "service": service, "instance": f"{host}:9100", **labels}
    if severity:
        labels["severity"] = severity
    labels = {k: v for k, v in labels.items() if v is not None}
    return triage.Alert(name=name, labels=labels, starts_at=NOW - timedelta(minutes=minutes_ago),
                        fingerprint=triage.fingerprint(labels), state=state)


def classify(alerts, totals=None):
    return triage.classify(alerts, SCENARIOS, MATRIX, totals)


# --- parsing ----------------------------------------------------------------------------------

def test_parse_time_keeps_utc_and_cuts_nanoseconds():
    expected = datetime(2026, 12, 1, 10, 11, 12, 123456, tzinfo=UTC)
    assert triage.parse_time("2026-12-01T10:11:12.123456789Z") == expected
    assert triage.parse_time("2026-12-01T11:11:12+01:00") == datetime(2026, 12, 1, 10, 11, 12, tzinfo=UTC)
    assert triage.parse_time("0001-01-01T00:00:00Z") is None
    assert triage.parse_time("yesterday") is None


def test_from_alertmanager_keeps_state_and_fingerprint():
    items = [
        {"labels": {"alertname": "ServiceDown", "host": "lab-1", "service": "demo", "severity": "critical"},
         "annotations": {"summary": "demo on lab-1 is not answering"}, "startsAt": "2026-12-01T11:58:00.5Z",
         "fingerprint": "abc123", "status": {"state": "active"}},
        {"labels": {"alertname": "HighErrorRate", "severity": "warning"}, "status": {"state": "suppressed"}},
        {"labels": {"no": "alertname"}},
    ]
    alerts = triage.from_alertmanager(items)
    assert [a.name for a in alerts] == ["ServiceDown", "HighErrorRate"]
    assert alerts[0].fingerprint == "abc123" and alerts[0].summary == "demo on lab-1 is not answering"
    assert alerts[0].host == "lab-1" and alerts[0].service == "demo"
    assert alerts[1].suppressed and alerts[1].fingerprint == triage.fingerprint(items[1]["labels"])


def test_from_prometheus_keeps_only_firing():
    items = [{"labels": {"alertname": "A", "instance": "web-2:9100"}, "state": "firing",
              "activeAt": "2026-12-01T11:00:00Z"},
             {"labels": {"alertname": "B"}, "state": "pending"}]
    alerts = triage.from_prometheus(items)
    assert [a.name for a in alerts] == ["A"]
    assert alerts[0].host == "web-2"  # no host label: the instance's host part
    assert alerts[0].source == "prometheus"


def test_fingerprint_is_stable_and_label_order_free():
    one = triage.fingerprint({"alertname": "ServiceDown", "host": "lab-1"})
    assert one == triage.fingerprint({"host": "lab-1", "alertname": "ServiceDown"})
    assert one != triage.fingerprint({"alertname": "ServiceDown", "host": "lab-2"})
    assert len(one) == 16 and int(one, 16) >= 0
    # Alertmanager's own value for the empty label set (FNV-1a 64 offset basis).
    assert triage.fingerprint({}) == "cbf29ce484222325"


# --- the severity matrix (the rules, from the seeds) ------------------------------------

@pytest.mark.parametrize(
    ("alerts", "totals", "expected"),
    [
        # health down on every instance -> P0; on some -> P1
        ([alert("ServiceDown", "lab-1", severity="critical"), alert("ServiceDown", "lab-2", severity="critical")],
         {"demo": 2}, "P0"),
        ([alert("ServiceDown", "lab-1", severity="critical")], {"demo": 4}, "P1"),
        ([alert("ServiceDown", "lab-1", severity="critical")], None, "P1"),  # unknown count: never "all"
        # error rate > 5% (critical) -> P1; > 1% (warning) -> P2
        ([alert("HighErrorRate", severity="critical")], None, "P1"),
        ([alert("HighErrorRate", severity="warning")], None, "P2"),
        # auth failures > 50% -> P1; P95 latency -> P2
        ([alert("HighAuthFailureRate", severity="warning")], None, "P1"),
        ([alert("HighLatencyP95", severity="warning")], None, "P2"),
        # a warning of a mapped scenario -> its catalogue severity (P2 here); other criticals -> P1;
        # corruption -> P0; unmapped warnings -> P3
        ([alert("FileDescriptorExhaustion", severity="warning")], None, "P2"),
        ([alert("HighDiskUsage", severity="warning")], None, "P2"),
        ([alert("SomethingNew", severity="warning")], None, "P3"),
        ([alert("SomethingNew", severity="critical")], None, "P1"),
        ([alert("DatabaseCorrupt", severity="critical")], None, "P0"),
        # no severity label: the mapped scenario's catalogue severity, else the default
        ([alert("database_connection_pool_exhausted")], None, "P1"),
        ([alert("Unmapped")], None, "P3"),
    ],
)
def test_matrix(alerts, totals, expected):
    rows = classify(alerts, totals)
    assert {row.severity for row in rows} == {expected}, [(r.alert.name, r.classification) for r in rows]


def test_all_instances_counts_suppressed_alerts_too():
    """A silenced ServiceDown (a scenario acting on it) still counts as a down instance."""
    alerts = [alert("ServiceDown", "lab-1", severity="critical"),
              alert("ServiceDown", "lab-2", severity="critical", state="suppressed")]
    rows = classify(alerts, {"demo": 2})
    assert [(r.alert.host, r.severity) for r in rows] == [("lab-1", "P0")]
    assert rows[0].classification.note == "2/2 instances"


def test_user_matrix_and_its_checks(tmp_path):
    path = tmp_path / "matrix.yml"
    path.write_text("rules:\n  - {name: all warnings are P2, labels: {severity: warning}, severity: P2}\n",
                    encoding="utf-8")
    matrix = triage.load_matrix(str(path), REPO)
    rows = triage.classify([alert("FileDescriptorExhaustion", severity="warning")], SCENARIOS, matrix, None)
    assert rows[0].severity == "P2" and rows[0].classification.rule == "all warnings are P2"
    assert matrix.escalation["P0"] == MATRIX.escalation["P0"]  # not given: the collection's


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: []\n", "has no rules"),
        ("rules:\n  - {severity: P9}\n", "severity must be one of"),
        ("rules:\n  - {severity: P1, instances: most}\n", "instances must be all or some"),
        ("rules:\n  - {severity: P1, colour: red}\n", "unknown key(s) colour"),
        ("rules:\n  - {severity: P1}\ndefault: P7\n", "default must be one of"),
        ("rules: [\n", "not valid YAML"),
    ],
)
def test_bad_matrix_is_bad_input(tmp_path, text, message):
    path = tmp_path / "matrix.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        triage.load_matrix(str(path), REPO)


def test_missing_matrix_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        triage.load_matrix(str(tmp_path / "nope.yml"), REPO)


def test_the_real_matrix_is_complete():
    assert set(MATRIX.severities) == set(triage.SEVERITIES)
    assert set(MATRIX.escalation) == set(triage.SEVERITIES)
    assert MATRIX.acknowledge_minutes("P0") == 5 and MATRIX.update_minutes("P0") == 15
    # Escalation steps are in time order: reminders rely on it.
    for steps in MATRIX.escalation.values():
        minutes = [step[0] for step in steps]
        assert minutes == sorted(minutes)


# --- ranking and commands -----------------------------------------------------------------------

def test_rank_severity_then_quickest_mitigation_then_oldest():
    alerts = [
        alert("HighDiskUsage", "lab-3", severity="warning", minutes_ago=30),  # P2, disk-full 8 s
        alert("FileDescriptorExhaustion", "lab-2", severity="warning", minutes_ago=1),  # P2, fd-exhaustion 12 s
        alert("SomethingUnmapped", "lab-2", severity="critical", minutes_ago=50),  # P1, no scenario
        alert("ServiceDown", "lab-1", severity="critical", minutes_ago=2),  # P1, service-down 6 s
        alert("HighDiskUsage", "lab-4", severity="warning", minutes_ago=60),  # P2, disk-full 8 s, older
    ]
    rows = classify(alerts, {"demo": 4})
    assert [(r.rank, r.severity, r.alert.name, r.alert.host) for r in rows] == [
        (1, "P1", "ServiceDown", "lab-1"),
        (2, "P1", "SomethingUnmapped", "lab-2"),  # no scenario: after those with one
        (3, "P2", "HighDiskUsage", "lab-4"),
        (4, "P2", "HighDiskUsage", "lab-3"),
        (5, "P2", "FileDescriptorExhaustion", "lab-2"),
    ]


def test_prometheus_twins_keep_the_most_severe():
    rows = classify([alert("HighErrorRate", severity="warning"), alert("HighErrorRate", severity="critical")])
    assert [(r.alert.labels["severity"], r.severity) for r in rows] == [("critical", "P1")]


def test_command_is_exactly_runnable():
    row = classify([alert("ServiceDown", "lab-1", severity="critical")])[0]
    assert triage.command_for(row) == ["runbook", "run", "service-down", "-l", "lab-1", "--service", "demo"]
    row.argv = triage.command_for(row, "/inv/my hosts.yml", "INC-20261201-0001")
    assert row.command == ("runbook run service-down -i '/inv/my hosts.yml' -l lab-1 --service demo "
                           "--incident INC-20261201-0001")
    unmapped = classify([alert("SomethingUnmapped", severity="critical")])[0]
    assert triage.command_for(unmapped) is None
    assert unmapped.as_dict(NOW)["action"] == triage.NO_SCENARIO
    assert triage.top([unmapped, row]) is row


def test_row_as_dict():
    row = classify([alert("ServiceDown", "lab-1", severity="critical", minutes_ago=2.5)], {"demo": 4})[0]
    data = row.as_dict(NOW)
    assert data["scenario"] == "service-down" and data["typical_seconds"] == 6
    assert data["since"] == "2m30s" and data["age_seconds"] == 150.0
    assert data["reason"] == "health check down on some instances of the service"
    assert data["note"] == "1/4 instances"


def test_regions_from_the_label_else_the_inventory_worst_region_first():
    inventory = {"all": {"children": {"k8s_regions": {"hosts": {
        "mpc-us-east": {"runbook_region": "us-east"}, "mpc-eu-west": {"runbook_region": "eu-west"},
        "mpc-ap": None}}}}}
    assert triage.inventory_regions(inventory) == {"mpc-us-east": "us-east", "mpc-eu-west": "eu-west"}
    rows = triage.with_regions(classify([
        alert("HighErrorRate", "mpc-eu-west", severity="warning"),
        alert("ServiceDown", "mpc-us-east", severity="critical"),
        alert("HighLatencyP95", "mpc-us-east", severity="warning"),
        alert("ServiceDown", "gw-1", severity="critical", region="ap-northeast"),  # the label wins
        alert("DiskFull", "mpc-ap", severity="warning"),  # no region anywhere
    ]), triage.inventory_regions(inventory))
    assert {r.alert.host: r.region for r in rows} == {"mpc-eu-west": "eu-west", "mpc-us-east": "us-east",
                                                      "gw-1": "ap-northeast", "mpc-ap": None}
    groups = triage.by_region(rows)
    assert [(g["region"], g["alerts"]) for g in groups] == [("us-east", 2), ("ap-northeast", 1), ("eu-west", 1)]
    assert groups[0]["hosts"] == ["mpc-us-east"] and groups[0]["names"] == ["HighLatencyP95", "ServiceDown"]
    assert groups[0]["severity"] == rows[0].severity
    assert rows[0].as_dict(NOW)["region"] in ("us-east", "ap-northeast")
    assert triage.by_region(classify([alert("ServiceDown", "lab-1")])) == []


@pytest.mark.parametrize(("seconds", "text"), [(None, "?"), (5, "5s"), (61, "1m01s"), (3700, "1h01m"),
                                               (200000, "2d07h")])
def test_human_age(seconds, text):
    assert triage.human_age(seconds) == text


# --- where the servers are -------------------------------------------------------------------------

def test_urls_option_then_environment_then_inventory(monkeypatch):
    inventory = {"all": {"vars": {"runbook_alertmanager_url": "http://127.0.0.1:9093/",
                                  "runbook_prometheus_url": "http://127.0.0.1:9090"}}}
    monkeypatch.delenv("RUNBOOK_ALERTMANAGER_URL", raising=False)
    monkeypatch.delenv("RUNBOOK_PROMETHEUS_URL", raising=False)
    assert triage.resolve_urls(None, None, inventory) == ("http://127.0.0.1:9093", "http://127.0.0.1:9090")
    monkeypatch.setenv("RUNBOOK_ALERTMANAGER_URL", "http://127.0.0.1:1")
    assert triage.resolve_urls(None, None, inventory)[0] == "http://127.0.0.1:1"
    assert triage.resolve_urls("https://am.example:8443", None, inventory)[0] == "https://am.example:8443"


@pytest.mark.parametrize("url", ["localhost:9093", "ftp://127.0.0.1", "http://", "http://127.0.0.1:notaport"])
def test_bad_url_is_bad_input(url):
    with pytest.raises(BadInput):
        triage.resolve_urls(url, None, None)


def test_inventory_totals_count_hosts_per_service():
    inventory = {"all": {"children": {"a": {"hosts": {"h1": {"runbook_services": [{"name": "demo"}]},
                                                      "h2": {"runbook_services": [{"name": "demo"}, {"name": "db"}]}}},
                                      "b": {"children": {"c": {"hosts": {"h3": None}}}}}}}
    assert triage.inventory_totals(inventory) == {"demo": 2, "db": 1}
    assert triage.inventory_totals({}) is None


def test_redact_url_keeps_only_scheme_host_and_port():
    assert triage.redact_url("https://user:pw@am.example:9093/x?token=abc") == "https://am.example:9093"


# --- `runbook triage` against HTTP servers on 127.0.0.1 ------------------------------------------

class StandIn:
    """An http.server that answers GET paths with canned JSON (a stand-in for
    Alertmanager/Prometheus: see the module docstring) and records the paths asked."""

    def __init__(self, routes: dict[str, object]):
        self.routes = routes
        self.asked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.asked.append(self.path)
                path = self.path.split("?", 1)[0]
                if path not in outer.routes:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(outer.routes[path]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def am_alert(name, host, severity, minutes_ago=1.0, state="active"):
    labels = {"alertname": name, "host": host, "service": "demo", "severity": severity,
              "instance": f"{host}:9100", "job": "runbook-demo"}
    starts = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    return {"labels": labels, "annotations": {"summary": f"{name} on {host}"}, "startsAt": starts,
            "fingerprint": triage.fingerprint(labels), "status": {"state": state}}


ALERTS = [am_alert("FileDescriptorExhaustion", "lab-2", "warning", 3),
          am_alert("ServiceDown", "lab-1", "critical", 1),
          am_alert("HighErrorRate", "lab-2", "warning", 2, state="suppressed")]
TOTALS = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"service": "demo"}, "value": [0, "4"]}]}}


@pytest.fixture
def real_catalogue(runbook_env, monkeypatch):
    """The CLI on this checkout's collection (the real catalogue, matrix and timeline store)."""
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    return runbook_env


def invoke(*args, input=None):
    return CliRunner(catch_exceptions=False).invoke(shell.cli, list(args), input=input)


def test_triage_lists_ranked_alerts_as_json_and_opens_incidents(real_catalogue):
    with StandIn({"/api/v2/alerts": ALERTS}) as am, StandIn({"/api/v1/query": TOTALS}) as prom:
        result = invoke("-o", "json", "triage", "--alertmanager", am.url, "--prometheus", prom.url)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert any("silenced=true" in path for path in am.asked)
        assert data["source"] == "alertmanager" and data["instance_totals"] == {"demo": 4}
        rows = data["alerts"]
        assert [(r["rank"], r["alert"], r["severity"], r["scenario"]) for r in rows] == [
            (1, "ServiceDown", "P1", "service-down"), (2, "FileDescriptorExhaustion", "P2", "fd-exhaustion")]
        first = rows[0]
        assert first["incident"].startswith("INC-")
        assert first["command"] == f"runbook run service-down -l lab-1 --service demo --incident {first['incident']}"

        # A second triage reuses the open incidents (one per alert fingerprint).
        again = json.loads(invoke("-o", "json", "triage", "--alertmanager", am.url,
                                  "--prometheus", prom.url).stdout)
        assert [r["incident"] for r in again["alerts"]] == [r["incident"] for r in rows]

    shown = json.loads(invoke("-o", "json", "incident", "show", first["incident"]).stdout)
    assert shown["severity"] == "P1" and shown["scenario"] == "service-down"
    assert shown["alert_fingerprints"] == [first["fingerprint"]]
    assert shown["detected_at"][:19] == first["starts_at"][:19]  # the alert's startsAt


def test_triage_text_table_and_no_open(real_catalogue):
    with StandIn({"/api/v2/alerts": ALERTS}) as am:
        result = invoke("triage", "--alertmanager", am.url, "--no-open")
    assert result.exit_code == 0, result.output
    assert "ServiceDown" in result.stdout and "service-down" in result.stdout
    assert "--incident" not in result.stdout
    assert "instance counts unknown" in result.stderr  # no Prometheus, no inventory
    listed = json.loads(invoke("-o", "json", "incident", "list").stdout)
    assert listed == []  # --no-open opened nothing


def test_triage_groups_the_alerts_by_region(real_catalogue):
    regional = [am_alert("ServiceDown", "mpc-us-east", "critical", 1),
                am_alert("HighErrorRate", "mpc-eu-west", "warning", 2)]
    regional[1]["labels"]["region"] = "eu-west"
    with StandIn({"/api/v2/alerts": regional}) as am:
        data = json.loads(invoke("-o", "json", "triage", "--alertmanager", am.url, "--no-open").stdout)
        text = invoke("triage", "--alertmanager", am.url, "--no-open").stdout
    assert [r["region"] for r in data["alerts"]] == [None, "eu-west"]
    assert data["regions"] == [{"region": "eu-west", "severity": data["alerts"][1]["severity"], "alerts": 1,
                                "hosts": ["mpc-eu-west"], "names": ["HighErrorRate"], "top": 2}]
    assert "by region: eu-west" in text and "region" in text


def test_triage_falls_back_to_prometheus(real_catalogue):
    prom_alerts = {"status": "success", "data": {"alerts": [
        {"labels": {"alertname": "ServiceDown", "host": "lab-1", "service": "demo", "severity": "critical"},
         "state": "firing", "activeAt": "2026-12-01T11:00:00Z"}]}}
    with StandIn({"/api/v1/alerts": prom_alerts, "/api/v1/query": TOTALS}) as prom:
        result = invoke("-o", "json", "triage", "--alertmanager", f"http://127.0.0.1:{free_port()}",
                        "--prometheus", prom.url, "--no-open")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == "prometheus"
    assert [r["alert"] for r in data["alerts"]] == ["ServiceDown"]
    assert "Alertmanager at" in result.stderr and "unreachable" in result.stderr


def test_triage_both_down_is_unavailable(real_catalogue):
    result = invoke("triage", "--alertmanager", f"http://127.0.0.1:{free_port()}",
                    "--prometheus", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Alertmanager at" in lines[0] and "Prometheus at" in lines[0]


@pytest.mark.parametrize("args", [["--alertmanager", "localhost:9093"], ["--prometheus", "ftp://x"]])
def test_triage_bad_url_is_bad_input(real_catalogue, args):
    result = invoke("triage", *args)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "is not an http(s) URL" in result.stderr


def test_triage_without_any_url_is_bad_input(real_catalogue):
    result = invoke("triage")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "no Alertmanager or Prometheus URL" in result.stderr


def test_triage_urls_from_the_labs_inventory(real_catalogue):
    with StandIn({"/api/v2/alerts": []}) as am:
        lab = real_catalogue / "lab"
        lab.mkdir(parents=True)
        (lab / "inventory.yml").write_text(f"all:\n  vars:\n    runbook_alertmanager_url: {am.url}\n",
                                           encoding="utf-8")
        result = invoke("triage")
        assert result.exit_code == 0, result.output
        assert "no firing alerts" in result.stderr and am.asked


def test_triage_run_needs_confirmation(real_catalogue):
    with StandIn({"/api/v2/alerts": ALERTS}) as am:
        result = invoke("triage", "--alertmanager", am.url, "--run")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "--run needs confirmation" in result.stderr
    assert not (real_catalogue / "runs").exists()
    assert json.loads(invoke("-o", "json", "incident", "list").stdout) == []  # nothing opened either


def test_triage_run_with_nothing_to_run(real_catalogue):
    only_unmapped = [am_alert("SomethingUnmapped", "lab-2", "critical")]
    with StandIn({"/api/v2/alerts": only_unmapped}) as am:
        result = invoke("triage", "--alertmanager", am.url, "--run", "--yes", "--no-open")
    assert result.exit_code == ExitCode.NOTHING_TO_DO, result.output
    assert triage.NO_SCENARIO in result.stdout
    assert "nothing to run" in result.stderr


def test_fetch_alerts_errors():
    with pytest.raises(BadInput):
        triage.fetch_alerts(None, None)
    with pytest.raises(Unavailable, match=r"Alertmanager at http://127\.0\.0\.1:"):
        triage.fetch_alerts(f"http://127.0.0.1:{free_port()}", None)
