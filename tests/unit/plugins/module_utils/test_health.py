from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _health as health


@pytest.mark.parametrize(
    ("status", "expected", "matches"),
    [
        (200, [200], True),
        (204, [200, 204], True),
        (503, [200], False),
        (503, [503], True),
        ("200", [200], True),
        (None, [200], False),
        ("oops", [200], False),
    ],
)
def test_status_matches(status, expected, matches):
    assert health.status_matches(status, expected) is matches


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (True, True),
        (False, False),
        (None, False),
        (0, False),
        (0.0, False),
        (3, True),
        ("", False),
        ("ok", True),
        ([], False),
        ([0], True),
        ({}, False),
        ({"a": 1}, True),
    ],
)
def test_is_truthy(value, truthy):
    assert health.is_truthy(value) is truthy


BODY = {
    "status": "degraded",
    "components": [
        {"name": "db", "status": "down"},
        {"name": "cache", "status": "healthy"},
    ],
    "details": {"checks": {"disk": {"status": "UP"}, "queue": {"status": "DOWN"}, "dns": "up"}},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("components.0.name", "db"),
        ("components.1.status", "healthy"),
        ("components.7", None),
        ("components.x", None),
        ("details.checks.dns", "up"),
        ("status.deeper", None),
        ("missing", None),
        ("", BODY),
    ],
)
def test_resolve_path(path, expected):
    assert health.resolve_path(BODY, path) == expected


@pytest.mark.parametrize(
    ("body", "path", "healthy_statuses", "expected"),
    [
        (BODY, "components", ["healthy"], [{"name": "db", "status": "down"}]),
        (
            BODY,
            "details.checks",
            ["up"],
            [{"name": "queue", "status": "DOWN"}],
        ),
        (BODY, "details.checks", ["healthy"], [
            {"name": "disk", "status": "UP"},
            {"name": "queue", "status": "DOWN"},
            {"name": "dns", "status": "up"},
        ]),
        ({"components": [{"status": "down"}, {"id": "x", "status": "bad"}]}, "components", ["healthy"], [
            {"name": "components[0]", "status": "down"},
            {"name": "x", "status": "bad"},
        ]),
        ({"components": {"db": {}}}, "components", ["healthy"], [{"name": "db", "status": None}]),
        ({"components": "all good"}, "components", ["healthy"], []),
        ({"status": "ok"}, "components", ["healthy"], []),
        ([], "components", ["healthy"], []),
        ({"components": [{"name": "db", "status": "Healthy"}]}, "components", ["healthy"], []),
    ],
)
def test_failing_components(body, path, healthy_statuses, expected):
    assert health.failing_components(body, path, healthy_statuses) == expected


def test_evaluate_response_healthy_status_only_reports_components():
    verdict = health.evaluate_response(200, BODY, [200])
    assert verdict == {"healthy": True, "error": None, "failing_components": [{"name": "db", "status": "down"}]}


def test_evaluate_response_wrong_status_names_components():
    verdict = health.evaluate_response(503, BODY, [200])
    assert verdict["healthy"] is False
    assert verdict["error"] == "HTTP status 503, expected 200; failing components: db (down)"


@pytest.mark.parametrize(
    ("expression", "healthy"),
    [
        ("components[?status!='healthy'] | length(@) == `0`", False),
        ("components[?name=='cache'] | [0].status == 'healthy'", True),
        ("status", True),
        ("nothing_here", False),
        ("length(components[?status!='healthy'])", True),
    ],
)
def test_evaluate_response_with_expression(expression, healthy):
    verdict = health.evaluate_response(200, BODY, [200], health.compile_expression(expression))
    assert verdict["healthy"] is healthy
    if not healthy:
        assert expression in verdict["error"]


def test_evaluate_response_expression_needs_json():
    verdict = health.evaluate_response(200, None, [200], health.compile_expression("status"))
    assert verdict["healthy"] is False
    assert "not JSON" in verdict["error"]


def test_evaluate_response_expression_runtime_error():
    verdict = health.evaluate_response(200, BODY, [200], health.compile_expression("length(`1`)"))
    assert verdict["healthy"] is False
    assert verdict["error"].startswith("jmespath expression failed:")


@pytest.mark.parametrize("expression", ["components[?", "", "a..b"])
def test_compile_expression_rejects_garbage(expression):
    with pytest.raises(ValueError):
        health.compile_expression(expression)


def test_compile_expression_without_library(monkeypatch):
    monkeypatch.setattr(health, "HAS_JMESPATH", False)
    with pytest.raises(RuntimeError, match="jmespath"):
        health.compile_expression("a")


@pytest.mark.parametrize(
    ("healthy", "expect", "ok"),
    [
        (True, "healthy", True),
        (False, "healthy", False),
        (True, "unhealthy", False),
        (False, "unhealthy", True),
        (True, "any", True),
        (False, "any", True),
    ],
)
def test_matches_expectation(healthy, expect, ok):
    assert health.matches_expectation(healthy, expect) is ok


@pytest.mark.parametrize(
    ("required", "max_failures", "rounds", "states"),
    [
        # wait until healthy: first good round ends it
        (1, 3, [False, False, True], ["continue", "continue", "done"]),
        # retries exhausted
        (1, 2, [False, False, False], ["continue", "continue", "exhausted"]),
        (1, 0, [False], ["exhausted"]),
        (1, 0, [True], ["done"]),
        # stabilization: N consecutive good rounds
        (3, 0, [True, True, True], ["continue", "continue", "done"]),
        # a bad round resets the streak and uses a retry
        (3, 1, [True, False, True, True, True], ["continue", "continue", "continue", "continue", "done"]),
        (3, 1, [True, False, True, False], ["continue", "continue", "continue", "exhausted"]),
        (2, 0, [True, False], ["continue", "exhausted"]),
    ],
)
def test_stability_window(required, max_failures, rounds, states):
    window = health.StabilityWindow(required, max_failures)
    assert [window.record(ok) for ok in rounds] == states
    assert window.rounds == len(rounds)


def test_stability_window_counts():
    window = health.StabilityWindow(2, 5)
    for ok in (True, False, True):
        window.record(ok)
    assert (window.streak, window.failures) == (1, 1)


@pytest.mark.parametrize(("required", "max_failures"), [(0, 0), (1, -1)])
def test_stability_window_rejects_bad_bounds(required, max_failures):
    with pytest.raises(ValueError):
        health.StabilityWindow(required, max_failures)


def test_format_components():
    assert health.format_components([{"name": "db", "status": "down"}, {"name": "x", "status": None}]) == (
        "db (down), x (no status)"
    )


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize(("answers", "stable", "elapsed"), [
    ([True, True, True], True, 1.0),  # the window: three good probes, 0.5 s apart
    ([False, False, True, True, True], True, 1.2),  # starting: retried quickly, then the window
    ([True, False, True, True, True], True, 1.6),  # a failure resets the streak
    ([False] * 200, False, 5.0),  # never healthy: gives up at the timeout
])
def test_wait_stable(answers, stable, elapsed):
    clock = _Clock()
    results = iter(answers)
    ok, _rounds, took = health.wait_stable(lambda: next(results), 3, 0.5, 5, clock=clock, sleep=clock.sleep)
    assert ok is stable and took == pytest.approx(elapsed, abs=0.01)
