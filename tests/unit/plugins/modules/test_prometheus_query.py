from __future__ import annotations

import time

import pytest
from ansible_collections.runbook.remediation.plugins.modules import prometheus_query

VECTOR = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [
            {"metric": {"__name__": "up", "job": "api"}, "value": [1700000000.5, "0"]},
            {"metric": {"__name__": "up", "job": "web"}, "value": [1700000000.5, "1"]},
        ],
    },
}
MATRIX = {
    "status": "success",
    "data": {
        "resultType": "matrix",
        "result": [{"metric": {"name": "api"}, "values": [[100, "100"], [160, "160"], [220, "400"]]}],
    },
}
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}
BAD_DATA = {"status": "error", "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:3: parse error: unexpected'}


@pytest.fixture
def prometheus(http_server):
    http_server.routes[("GET", "/api/v1/query")] = http_server.Reply(200, VECTOR)
    http_server.routes[("GET", "/api/v1/query_range")] = http_server.Reply(200, MATRIX)
    return http_server


@pytest.fixture
def run(run_module, prometheus):
    def _run(**args):
        args.setdefault("url", prometheus.url)
        return run_module(prometheus_query.main, args)

    return _run


def test_instant_query(run, prometheus):
    result = run(query="up")
    assert not result.failed, result.msg
    assert result["changed"] is False
    assert result["result_type"] == "vector"
    assert result["count"] == 2
    assert result["samples"][0] == {"metric": {"__name__": "up", "job": "api"}, "value": 0.0,
                                    "timestamp": 1700000000.5}
    assert result["time"] is None
    assert "breached" not in result.result
    assert "trend" not in result.result
    assert prometheus.requests[-1].query == {"query": ["up"]}


def test_instant_query_relative_time(run, prometheus):
    before = time.time()
    result = run(query="up", time="-5m")
    sent = float(prometheus.requests[-1].query["time"][0])
    assert before - 301 <= sent <= time.time() - 299
    assert result["time"] == pytest.approx(sent, abs=0.001)


def test_range_query_with_trend(run, prometheus):
    before = time.time()
    result = run(query="mem", type="range", start="-1h")
    assert not result.failed, result.msg
    assert result["result_type"] == "matrix"
    assert result["samples"] == [{"metric": {"name": "api"}, "values": [[100, 100.0], [160, 160.0], [220, 400.0]]}]
    assert result["trend"] == [{"metric": {"name": "api"}, "points": 3, "first": 100.0, "last": 400.0,
                                "delta": 300.0, "per_second": 2.5, "min": 100.0, "max": 400.0}]
    query = prometheus.requests[-1].query
    assert query["step"] == ["15"]
    assert float(query["end"][0]) - float(query["start"][0]) == pytest.approx(3600, abs=0.01)
    assert float(query["end"][0]) >= before
    assert result["step"] == 15


def test_range_query_explicit_window(run, prometheus):
    result = run(query="mem", type="range", start="2024-01-01T00:00:00Z", end="1704070800", step="1m")
    assert not result.failed, result.msg
    assert prometheus.requests[-1].query == {"query": ["mem"], "start": ["1704067200"], "end": ["1704070800"],
                                             "step": ["60"]}
    assert (result["start"], result["end"], result["step"]) == (1704067200, 1704070800, 60)


def test_range_query_derives_step_for_long_ranges(run, prometheus):
    result = run(query="mem", type="range", start="-30d")
    assert result["step"] == 236


@pytest.mark.parametrize(
    ("threshold", "breached", "jobs"),
    [
        ({"op": "<", "value": 1}, True, ["api"]),
        ({"op": "==", "value": 1}, True, ["web"]),
        ({"op": ">", "value": 1}, False, []),
        ({"op": ">=", "value": "0"}, True, ["api", "web"]),
    ],
)
def test_threshold(run, threshold, breached, jobs):
    result = run(query="up", threshold=threshold)
    assert not result.failed, result.msg
    assert result["breached"] is breached
    assert [s["metric"]["job"] for s in result["breaching"]] == jobs


def test_threshold_on_range(run):
    result = run(query="mem", type="range", start="-1h", threshold={"op": ">", "value": 150})
    assert result["breached"] is True
    assert result["breaching"] == [{"metric": {"name": "api"}, "values": [[160, 160.0], [220, 400.0]]}]


def test_threshold_bad_operator(run):
    result = run(query="up", threshold={"op": "=>", "value": 1})
    assert result.failed
    assert "value of op must be one of" in result.msg


def test_empty_result(run, prometheus):
    prometheus.routes[("GET", "/api/v1/query")] = prometheus.Reply(200, EMPTY)
    assert run(query="nope")["count"] == 0
    result = run(query="nope", fail_on_empty=True)
    assert result.failed
    assert result.msg == "prometheus_query: the query returned no samples (fail_on_empty=true): nope"


def test_bad_promql(run, prometheus):
    prometheus.routes[("GET", "/api/v1/query")] = prometheus.Reply(400, BAD_DATA)
    result = run(query="up{")
    assert result.failed
    assert result.msg == 'Prometheus rejected the query: invalid parameter "query": 1:3: parse error: unexpected'
    assert "exception" in result.result


def test_unreachable(run_module, closed_port_url):
    result = run_module(prometheus_query.main, {"url": closed_port_url, "query": "up"})
    assert result.failed
    assert result.msg == f"Prometheus at {closed_port_url} is unreachable: connection refused"


def test_timeout(run, prometheus):
    prometheus.routes[("GET", "/api/v1/query")] = prometheus.Reply(200, VECTOR, delay=1)
    result = run(query="up", timeout=0.2)
    assert result.failed
    assert result.msg == f"Prometheus at {prometheus.url} is unreachable: no response within 0.2s"


def test_prometheus_warnings_become_task_warnings(run, prometheus):
    prometheus.routes[("GET", "/api/v1/query")] = prometheus.Reply(200, dict(VECTOR, warnings=["partial data"]))
    result = run(query="up")
    assert result.warnings == ["Prometheus: partial data"]


def test_nan_and_inf_values(run, prometheus):
    prometheus.routes[("GET", "/api/v1/query")] = prometheus.Reply(200, {"status": "success", "data": {
        "resultType": "vector",
        "result": [{"metric": {"q": "a"}, "value": [1, "NaN"]}, {"metric": {"q": "b"}, "value": [1, "+Inf"]}],
    }})
    result = run(query="histogram_quantile(0.99, x)", threshold={"op": ">", "value": 10})
    assert [s["value"] for s in result["samples"]] == [None, None]
    assert [s["metric"]["q"] for s in result["breaching"]] == ["b"]


def test_scalar_result(run, prometheus):
    prometheus.routes[("GET", "/api/v1/query")] = prometheus.Reply(
        200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}})
    result = run(query="scalar(3)")
    assert result["result_type"] == "scalar"
    assert result["samples"] == [{"metric": {}, "value": 3.0, "timestamp": 1}]


def test_bearer_token(run, prometheus):
    run(query="up", bearer_token="tok")
    assert prometheus.requests[-1].headers["Authorization"] == "Bearer tok"


def test_check_mode(run, prometheus):
    result = run(query="up", _ansible_check_mode=True)
    assert not result.failed
    assert len(prometheus.requests) == 1


def test_url_prefix(run_module, prometheus):
    prometheus.routes[("GET", "/prom/api/v1/query")] = prometheus.Reply(200, VECTOR)
    result = run_module(prometheus_query.main, {"url": prometheus.url + "/prom/", "query": "up"})
    assert not result.failed, result.msg


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"type": "range"}, "type is range but all of the following are missing: start"),
        ({"time": "now", "start": "-1h", "type": "range"}, "mutually exclusive: time|start"),
        ({"time": "yesterday"}, "prometheus_query: time: 'yesterday' is not a time: use RFC 3339"),
        ({"type": "range", "start": "-1h", "step": "fast"}, "prometheus_query: step: 'fast' is not a duration"),
        ({"type": "range", "start": "-1h", "end": "-2h"}, "start (-1h) lies after end (-2h)"),
        ({"type": "range", "start": "-1h", "step": "0.1"}, "points per series exceed the limit of 11000"),
        ({"query": "  "}, "prometheus_query: query is empty"),
        ({"url": "localhost:9090"}, "prometheus_query: url 'localhost:9090' is not an http(s) URL"),
        ({"timeout": -1}, "timeout must be more than 0"),
    ],
)
def test_argument_validation(run, prometheus, args, fragment):
    args.setdefault("query", "up")
    result = run(**args)
    assert result.failed
    assert fragment in result.msg
    assert prometheus.requests == []
