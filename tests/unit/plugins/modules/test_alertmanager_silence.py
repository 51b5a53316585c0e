"""alertmanager_silence: the pure helpers and the input checks that fail before any request.
Behaviour against Alertmanager itself is in tests/integration/test_alert_silence.py
(a real prometheus-alertmanager, no stand-in)."""

from __future__ import annotations

import re

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _silence
from ansible_collections.runbook.remediation.plugins.modules import alertmanager_silence as am

NOW = 1_800_000_000.0


def test_build_matchers_from_list_and_labels():
    matchers = _silence.build_matchers(
        [{"name": "severity", "value": "critical", "is_regex": False, "is_equal": False}],
        {"alertname": ["ServiceDown", "High.Error(Rate)"], "host": "web-1", "service": "~api|web", "team": None},
    )
    assert matchers == [
        {"name": "severity", "value": "critical", "isRegex": False, "isEqual": False},
        {"name": "alertname", "value": r"ServiceDown|High\.Error\(Rate\)", "isRegex": True, "isEqual": True},
        {"name": "host", "value": "web-1", "isRegex": False, "isEqual": True},
        {"name": "service", "value": "api|web", "isRegex": True, "isEqual": True},
        {"name": "team", "value": "", "isRegex": False, "isEqual": True},
    ]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"bad-name": "x"}, "'bad-name' is not a valid label name"),
        ({"service": "~(unclosed"}, "matcher service: '(unclosed' is not a valid regular expression"),
        ({"alertname": []}, "labels.alertname: an empty list matches nothing"),
    ],
)
def test_build_matchers_rejects(labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _silence.build_matchers(None, labels)


def test_re2_escape_keeps_plain_text():
    assert _silence.re2_escape("a-b_c:d e") == "a-b_c:d e"
    assert _silence.re2_escape(r"x.y*z\w") == r"x\.y\*z\\w"
    assert re.fullmatch(_silence.re2_escape("a+b(c)"), "a+b(c)")


def test_matcher_key_ignores_order_and_defaults_is_equal():
    one = [{"name": "b", "value": "2", "isRegex": False}, {"name": "a", "value": "1", "isRegex": True, "isEqual": True}]
    two = [{"name": "a", "value": "1", "isRegex": True}, {"name": "b", "value": "2", "isRegex": False, "isEqual": True}]
    assert _silence.matcher_key(one) == _silence.matcher_key(two)
    assert _silence.matcher_key(one) != _silence.matcher_key([dict(one[0], isEqual=False), one[1]])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(NOW, "2027-01-15T08:00:00.000Z"), (NOW + 0.25, "2027-01-15T08:00:00.250Z"),
     (NOW + 0.9996, "2027-01-15T08:00:01.000Z")],
)
def test_format_time(seconds, text):
    assert _silence.format_time(seconds) == text
    assert _silence.parse_am_time(text) == pytest.approx(seconds, abs=0.001)


@pytest.mark.parametrize(
    ("params", "end", "tolerance"),
    [
        ({"ends_at": None, "duration": None}, NOW + 3600, 60),
        ({"ends_at": None, "duration": "15m"}, NOW + 900, 60),
        ({"ends_at": None, "duration": "5m"}, NOW + 300, 30),
        ({"ends_at": "+2h", "duration": None}, NOW + 7200, 1),
        ({"ends_at": "2027-01-15T09:00:00Z", "duration": None}, NOW + 3600, 1),
    ],
)
def test_wanted_end(params, end, tolerance):
    assert _silence.wanted_end(params, NOW) == (pytest.approx(end), pytest.approx(tolerance))


def test_wanted_end_in_the_past():
    with pytest.raises(ValueError, match="is not in the future"):
        _silence.wanted_end({"ends_at": "-5m", "duration": None}, NOW)


def test_server_filters_name_only_plain_values():
    matchers = _silence.build_matchers(None, {"alertname": ["A"], "host": "web-1.example", "service": "a b",
                                              "job": '~x"y', "env": "~prod"})
    # alertname is a regex matcher (a list), service has a space, job a quote, env is a regex:
    # compared locally only.
    assert _silence.server_filters(matchers) == ['host="web-1.example"']
    assert _silence.server_filters([{"name": "host", "value": "web-1", "isRegex": False, "isEqual": False}]) == []
    assert _silence.server_filters([]) == []


def test_live_matches_picks_same_matchers_and_comment_latest_first():
    matchers = [{"name": "alertname", "value": "X", "isRegex": False, "isEqual": True}]

    def silence(sid, state="active", comment="c", ends="2027-01-15T08:10:00Z", extra=()):
        return {"id": sid, "status": {"state": state}, "comment": comment, "endsAt": ends,
                "matchers": matchers + list(extra)}

    silences = [
        silence("early", ends="2027-01-15T08:05:00Z"),
        silence("late", ends="2027-01-15T08:20:00Z"),
        silence("expired", state="expired"),
        silence("pending", state="pending", ends="2027-01-15T08:06:00Z"),
        silence("other-comment", comment="someone else"),
        silence("more-matchers", extra=[{"name": "host", "value": "a", "isRegex": False, "isEqual": True}]),
    ]
    assert [s["id"] for s in _silence.live_matches(silences, matchers, "c")] == ["late", "pending", "early"]


# --------------------------------------------------------------------------- input errors, nothing sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"url": "127.0.0.1:9093", "labels": {"a": "b"}, "comment": "c"}, "is not an http(s) URL"),
        ({"labels": {"a": "b"}, "comment": "c", "timeout": 0}, "timeout must be more than 0 seconds"),
        ({"silence_id": "nope", "state": "absent"}, "silence_id 'nope' is not a silence id (a UUID)"),
        ({"labels": {"a-b": "c"}, "comment": "c"}, "'a-b' is not a valid label name"),
        ({"labels": {"a": "b"}, "comment": "c", "duration": "soon"}, "'soon' is not a duration"),
        ({"labels": {"a": "b"}, "comment": "c", "created_by": ""}, "created_by must not be empty"),
    ],
)
def test_bad_input_fails_before_any_request(run_module, http_server, args, message):
    args.setdefault("url", http_server.url)
    result = run_module(am.main, args)
    assert result.failed
    assert result["error_kind"] == "input"
    assert message in result.msg
    assert http_server.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"comment": "c"}, "one of the following is required: matchers, labels, silence_id"),
        ({"labels": {"a": "b"}}, "one of the following is required: comment, silence_id"),
        ({"labels": {"a": "b"}, "comment": "c", "duration": "1h", "ends_at": "+1h"},
         "parameters are mutually exclusive: duration|ends_at"),
        ({"matchers": [{"name": "a"}], "comment": "c"}, "missing required arguments: value"),
    ],
)
def test_argument_relations(run_module, http_server, args, message):
    result = run_module(am.main, dict(args, url=http_server.url))
    assert result.failed
    assert message in result.msg
    assert http_server.requests == []


def test_unreachable_is_unavailable(run_module, closed_port_url):
    result = run_module(am.main, {"url": closed_port_url, "labels": {"alertname": "X"}, "comment": "c"})
    assert result.failed
    assert result["error_kind"] == "unavailable"
    assert result.msg == f"Alertmanager at {closed_port_url} is unreachable: connection refused"
