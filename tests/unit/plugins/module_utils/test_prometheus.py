from __future__ import annotations

import math
import re

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _prometheus as prom
from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpClient

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("15s", 15),
        ("1m", 60),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("2d", 172800),
        ("1w", 604800),
        ("30", 30),
        ("2.5", 2.5),
        (10, 10),
        (0.25, 0.25),
    ],
)
def test_parse_duration(value, seconds):
    assert prom.parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "abc", "1x", "m5", "5m 3s", "0s", "-5m", 0, True, "1h-5m"])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        prom.parse_duration(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, NOW),
        ("", NOW),
        ("now", NOW),
        ("-5m", NOW - 300),
        ("now-1h", NOW - 3600),
        ("now - 1h", NOW - 3600),
        ("+30s", NOW + 30),
        ("-1h30m", NOW - 5400),
        ("1700000000", 1_700_000_000.0),
        ("1700000000.5", 1_700_000_000.5),
        (1700000000, 1_700_000_000.0),
        ("2024-01-01T00:00:00Z", 1_704_067_200.0),
        ("2024-01-01T00:00:00.123456789Z", 1_704_067_200.123456),
        ("2024-01-01T01:00:00+01:00", 1_704_067_200.0),
        ("2024-01-01T00:00:00", 1_704_067_200.0),
    ],
)
def test_parse_time(value, expected):
    assert prom.parse_time(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", "-5x", "2024-13-01T00:00:00Z", "now-", True])
def test_parse_time_rejects_with_hint(value):
    with pytest.raises(ValueError, match="RFC 3339"):
        prom.parse_time(value, now=NOW)


@pytest.mark.parametrize(
    ("span", "step"),
    [(0, 15), (3600, 15), (86400, 15), (15 * 11000, 15), (7 * 86400, 55), (30 * 86400, 236)],
)
def test_default_step(span, step):
    assert prom.default_step(NOW - span, NOW) == step


@pytest.mark.parametrize(("seconds", "text"), [(1.0, "1"), (1.5, "1.5"), (1700000000.1234, "1700000000.123")])
def test_format_timestamp(seconds, text):
    assert prom.format_timestamp(seconds) == text


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1", 1.0), ("1e+00", 1.0), ("-2.5", -2.5), ("NaN", None), ("+Inf", None), ("-Inf", None), (None, None)],
)
def test_sample_value(raw, value):
    assert prom.sample_value(raw) == value


VECTOR = {
    "resultType": "vector",
    "result": [
        {"metric": {"__name__": "up", "job": "a"}, "value": [1700000000.1, "1"]},
        {"metric": {"__name__": "up", "job": "b"}, "value": [1700000000.1, "0"]},
        {"metric": {"job": "c"}, "value": [1700000000.1, "+Inf"]},
    ],
}
MATRIX = {
    "resultType": "matrix",
    "result": [
        {"metric": {"name": "api"}, "values": [[100, "10"], [110, "15"], [120, "30"]]},
        {"metric": {"name": "one"}, "values": [[100, "5"]]},
        {"metric": {"name": "nan"}, "values": [[100, "NaN"]]},
    ],
}


def test_normalize_vector():
    result_type, samples = prom.normalize_result(VECTOR)
    assert result_type == "vector"
    assert samples[0] == {"metric": {"__name__": "up", "job": "a"}, "value": 1.0, "timestamp": 1700000000.1}
    assert samples[2]["value"] is None


def test_normalize_matrix():
    result_type, samples = prom.normalize_result(MATRIX)
    assert result_type == "matrix"
    assert samples[0] == {"metric": {"name": "api"}, "values": [[100, 10.0], [110, 15.0], [120, 30.0]]}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"resultType": "scalar", "result": [1700000000, "42"]},
         [{"metric": {}, "value": 42.0, "timestamp": 1700000000}]),
        ({"resultType": "string", "result": [1700000000, "hello"]},
         [{"metric": {}, "value": "hello", "timestamp": 1700000000}]),
        ({"resultType": "vector", "result": []}, []),
        ({"resultType": "matrix", "result": None}, []),
    ],
)
def test_normalize_other_types(data, expected):
    assert prom.normalize_result(data)[1] == expected


@pytest.mark.parametrize("data", [{}, None, {"resultType": "histogram", "result": []}])
def test_normalize_rejects(data):
    with pytest.raises(ValueError):
        prom.normalize_result(data)


def test_series_trend():
    samples = prom.normalize_result(MATRIX)[1]
    trends = [prom.series_trend(s) for s in samples]
    assert trends[0] == {"metric": {"name": "api"}, "points": 3, "first": 10.0, "last": 30.0, "delta": 20.0,
                         "per_second": 1.0, "min": 10.0, "max": 30.0}
    assert trends[1]["per_second"] is None
    assert trends[1]["delta"] == 0.0
    assert trends[2]["first"] is None
    assert trends[2]["points"] == 0


@pytest.mark.parametrize(
    ("op", "limit", "jobs"),
    [
        (">", 0.5, ["a", "c"]),
        (">=", 0, ["a", "b", "c"]),
        ("<", 1, ["b"]),
        ("<=", 1, ["a", "b"]),
        ("==", 0, ["b"]),
        ("!=", 1, ["b", "c"]),
        (">", 1e308, ["c"]),
        ("<", -1, []),
    ],
)
def test_threshold_instant(op, limit, jobs):
    result_type, samples = prom.normalize_result(VECTOR)
    breached, breaching = prom.apply_threshold(result_type, samples, prom.raw_points(VECTOR), op, limit)
    assert breached is bool(jobs)
    assert [s["metric"]["job"] for s in breaching] == jobs


def test_threshold_range_keeps_breaching_points():
    result_type, samples = prom.normalize_result(MATRIX)
    breached, breaching = prom.apply_threshold(result_type, samples, prom.raw_points(MATRIX), ">", 12)
    assert breached is True
    assert breaching == [{"metric": {"name": "api"}, "values": [[110, 15.0], [120, 30.0]]}]


def test_threshold_nan_never_breaches():
    assert prom.breaches(None, ">", 0) is False
    assert prom.breaches(math.nan, ">", 0) is False
    assert prom.breaches(math.nan, "!=", 1) is False
    assert prom.breaches(math.inf, ">", 1e308) is True


def test_threshold_rejects_unknown_operator():
    with pytest.raises(ValueError):
        prom.apply_threshold("vector", [], [], "~", 1)


def test_split_label_filters():
    exact, regexes = prom.split_label_filters({"service": "demo", "severity": "~warn.*|critical", "n": 5})
    assert exact == {"service": "demo", "n": "5"}
    assert regexes["severity"].pattern == "warn.*|critical"


def test_split_label_filters_bad_regex():
    with pytest.raises(ValueError, match="label x: '\\(' is not a valid regular expression"):
        prom.split_label_filters({"x": "~("})


@pytest.mark.parametrize(
    ("name", "value", "matcher"),
    [
        ("service", "demo", 'service="demo"'),
        ("msg", 'say "hi"', 'msg="say \\"hi\\""'),
        ("path", "C:\\x", 'path="C:\\\\x"'),
        ("empty", "", 'empty=""'),
    ],
)
def test_alertmanager_matcher(name, value, matcher):
    assert prom.alertmanager_matcher(name, value) == matcher


LABELS = {"alertname": "Down", "service": "api", "severity": "critical"}


@pytest.mark.parametrize(
    ("exact", "regexes", "alertnames", "ok"),
    [
        ({}, {}, None, True),
        ({"service": "api"}, {}, None, True),
        ({"service": "web"}, {}, None, False),
        ({"team": ""}, {}, None, True),
        ({}, {"severity": "crit"}, None, False),  # anchored
        ({}, {"severity": "crit.*"}, None, True),
        ({}, {"service": "api|web"}, None, True),
        ({}, {}, ["Down", "Up"], True),
        ({}, {}, ["Up"], False),
    ],
)
def test_labels_match(exact, regexes, alertnames, ok):
    compiled = {k: re.compile(v) for k, v in regexes.items()}
    assert prom.labels_match(LABELS, exact, compiled, alertnames) is ok


def test_labels_fingerprint_is_stable_and_order_free():
    a = prom.labels_fingerprint({"a": "1", "b": "2"})
    assert a == prom.labels_fingerprint({"b": "2", "a": "1"})
    assert a != prom.labels_fingerprint({"a": "1", "b": "3"})
    assert re.fullmatch(r"[0-9a-f]{16}", a)


def test_normalize_alertmanager_alert():
    alert = prom.normalize_alertmanager_alert({
        "labels": LABELS,
        "annotations": {"summary": "api down"},
        "startsAt": "2026-11-24T19:20:01.123Z",
        "endsAt": "2026-11-24T19:25:01.123Z",
        "fingerprint": "abcdef0123456789",
        "generatorURL": "http://p/graph",
        "status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []},
        "receivers": [{"name": "web"}],
    })
    assert alert == {
        "name": "Down", "labels": LABELS, "annotations": {"summary": "api down"}, "state": "suppressed",
        "starts_at": "2026-11-24T19:20:01.123Z", "ends_at": "2026-11-24T19:25:01.123Z",
        "fingerprint": "abcdef0123456789", "severity": "critical", "generator_url": "http://p/graph",
        "silenced_by": ["s1"], "inhibited_by": [], "value": None,
    }


def test_normalize_prometheus_alert():
    alert = prom.normalize_prometheus_alert({
        "labels": {"alertname": "Always", "severity": "warning"},
        "annotations": {},
        "state": "firing",
        "activeAt": "2026-11-24T19:20:01Z",
        "value": "1e+00",
    })
    assert alert["name"] == "Always"
    assert alert["state"] == "firing"
    assert alert["starts_at"] == "2026-11-24T19:20:01Z"
    assert alert["fingerprint"] == prom.labels_fingerprint({"alertname": "Always", "severity": "warning"})
    assert alert["generator_url"] is None
    assert alert["value"] == "1e+00"


def test_sort_alerts():
    alerts = [{"name": "B", "starts_at": "1", "fingerprint": "1"}, {"name": "A", "starts_at": "2", "fingerprint": "2"},
              {"name": None, "starts_at": None, "fingerprint": "3"}]
    assert [a["fingerprint"] for a in prom.sort_alerts(alerts)] == ["3", "2", "1"]


@pytest.mark.parametrize(
    ("error_type", "start"),
    [
        ("bad_data", "Prometheus rejected the query: "),
        (None, "Prometheus rejected the query: "),
        ("timeout", "Prometheus gave up on the query (timeout): "),
        ("execution", "Prometheus could not execute the query (execution): "),
    ],
)
def test_query_error_messages(error_type, start):
    assert str(prom.QueryError(error_type, "boom")) == start + "boom"


# --------------------------------------------------------------------------- clients over real HTTP


def test_prometheus_client_query(http_server):
    http_server.routes[("GET", "/prefix/api/v1/query")] = http_server.Reply(200, {"status": "success", "data": VECTOR})
    client = prom.PrometheusClient(HttpClient(base_url=http_server.url + "/prefix/"))
    assert client.query("up", at=1700000000.5)["data"] == VECTOR
    assert http_server.requests[-1].query == {"query": ["up"], "time": ["1700000000.5"]}


def test_prometheus_client_range_params(http_server):
    http_server.routes[("GET", "/api/v1/query_range")] = http_server.Reply(200, {"status": "success", "data": MATRIX})
    prom.PrometheusClient(HttpClient(base_url=http_server.url)).query_range("up", 100, 200, 15)
    assert http_server.requests[-1].query == {"query": ["up"], "start": ["100"], "end": ["200"], "step": ["15"]}


def test_prometheus_client_bad_query(http_server):
    http_server.routes[("GET", "/api/v1/query")] = http_server.Reply(
        400, {"status": "error", "errorType": "bad_data", "error": '1:4: parse error: unexpected "}"'})
    with pytest.raises(prom.QueryError) as excinfo:
        prom.PrometheusClient(HttpClient(base_url=http_server.url)).query("up}")
    assert str(excinfo.value) == 'Prometheus rejected the query: 1:4: parse error: unexpected "}"'
    assert excinfo.value.status == 400


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        ((401, "Unauthorized"), "returned an error: HTTP 401 Unauthorized: Unauthorized .*bearer_token"),
        ((404, "404 page not found"), "HTTP 404 Not Found.*base URL"),
        ((200, "<html>Grafana</html>"), "unexpected response to /api/v1/query.*is this a Prometheus server"),
        ((502, ""), "HTTP 502 Bad Gateway"),
    ],
)
def test_prometheus_client_api_errors(http_server, reply, match):
    http_server.routes[("GET", "/api/v1/query")] = http_server.Reply(*reply)
    with pytest.raises(prom.ApiError, match=match) as excinfo:
        prom.PrometheusClient(HttpClient(base_url=http_server.url)).query("up")
    assert str(excinfo.value).startswith(f"Prometheus at {http_server.url} returned an error: ")


def test_prometheus_client_unreachable(closed_port_url):
    with pytest.raises(prom.ApiUnreachable) as excinfo:
        prom.PrometheusClient(HttpClient(base_url=closed_port_url)).alerts()
    assert str(excinfo.value) == f"Prometheus at {closed_port_url} is unreachable: connection refused"


def test_alertmanager_client(http_server):
    http_server.routes[("GET", "/api/v2/alerts")] = http_server.Reply(200, [])
    http_server.routes[("POST", "/api/v2/alerts")] = http_server.Reply(200, "")
    client = prom.AlertmanagerClient(HttpClient(base_url=http_server.url))
    assert client.alerts(filters=['a="1"'], silenced=False, receiver="web") == []
    assert http_server.requests[-1].query == {
        "active": ["true"], "silenced": ["false"], "inhibited": ["true"], "unprocessed": ["true"],
        "filter": ['a="1"'], "receiver": ["web"],
    }
    client.post_alerts([{"labels": {"alertname": "X"}}])
    assert http_server.requests[-1].method == "POST"


@pytest.mark.parametrize(
    ("reply", "kind", "match"),
    [
        ((400, "bad matcher"), prom.ApiError, "returned an error: bad request: bad matcher"),
        ((200, {"not": "a list"}), prom.ApiError, "expected a list of alerts, got dict"),
        ((200, "<html>"), prom.ApiError, "is this an Alertmanager"),
        ((403, "no"), prom.ApiError, "HTTP 403 Forbidden.*bearer_token"),
    ],
)
def test_alertmanager_client_errors(http_server, reply, kind, match):
    http_server.routes[("GET", "/api/v2/alerts")] = http_server.Reply(*reply)
    with pytest.raises(kind, match=match):
        prom.AlertmanagerClient(HttpClient(base_url=http_server.url)).alerts()


def test_alertmanager_client_unreachable(closed_port_url):
    with pytest.raises(prom.ApiUnreachable, match=r"^Alertmanager at .* is unreachable: connection refused$"):
        prom.AlertmanagerClient(HttpClient(base_url=closed_port_url)).alerts()
