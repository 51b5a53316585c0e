"""env_toggle's checks and plan (filter env_toggle_plan)."""

from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.filter.settings import env_toggle_plan

SERVICE = {"name": "demo", "settings": ["DEMO_LOG_LEVEL", "DEMO_WORK_ITERATIONS",
                                        {"name": "DEMO_UPSTREAM_PROVIDER", "values": ["primary", "secondary"]}]}


def test_a_declared_setting_is_planned_and_recorded_for_revert():
    plan = env_toggle_plan(SERVICE, {"DEMO_LOG_LEVEL": "debug"}, current={"DEMO_LOG_LEVEL": "info"}, record={})
    assert plan["error"] == "" and plan["nothing"] == ""
    assert plan["changes"] == [{"name": "DEMO_LOG_LEVEL", "from": "info", "to": "debug"}]
    assert plan["record"] == {"DEMO_LOG_LEVEL": "info"}
    assert plan["env"] == {"DEMO_LOG_LEVEL": "debug"} and plan["unset"] == []
    assert plan["lines"] == ["DEMO_LOG_LEVEL=debug (was info)"]


def test_an_unset_variable_is_recorded_as_unset_and_a_revert_removes_it():
    plan = env_toggle_plan(SERVICE, {"DEMO_LOG_LEVEL": "debug"}, current={"DEMO_LOG_LEVEL": None}, record={})
    assert plan["record"] == {"DEMO_LOG_LEVEL": None}
    back = env_toggle_plan(SERVICE, revert=True, current={"DEMO_LOG_LEVEL": "debug"}, record=plan["record"])
    assert back["changes"] == [{"name": "DEMO_LOG_LEVEL", "from": "debug", "to": None}]
    assert back["unset"] == ["DEMO_LOG_LEVEL"] and back["env"] == {} and back["remove_dropin"]
    assert back["lines"] == ["DEMO_LOG_LEVEL=(unset) (was debug)"]


def test_a_second_toggle_keeps_the_first_value_and_the_earlier_change():
    record = {"DEMO_LOG_LEVEL": "info"}
    plan = env_toggle_plan(SERVICE, {"DEMO_LOG_LEVEL": "warning", "DEMO_WORK_ITERATIONS": 5},
                           current={"DEMO_LOG_LEVEL": "debug", "DEMO_WORK_ITERATIONS": "10"}, record=record)
    assert plan["record"] == {"DEMO_LOG_LEVEL": "info", "DEMO_WORK_ITERATIONS": "10"}
    assert plan["env"] == {"DEMO_LOG_LEVEL": "warning", "DEMO_WORK_ITERATIONS": "5"}
    # A later toggle of another variable keeps the first one in the drop-in.
    later = env_toggle_plan(SERVICE, {"DEMO_UPSTREAM_PROVIDER": "secondary"},
                            current={"DEMO_LOG_LEVEL": "warning", "DEMO_WORK_ITERATIONS": "5",
                                     "DEMO_UPSTREAM_PROVIDER": "primary"}, record=plan["record"])
    assert later["env"] == {"DEMO_LOG_LEVEL": "warning", "DEMO_WORK_ITERATIONS": "5",
                            "DEMO_UPSTREAM_PROVIDER": "secondary"}
    assert later["record"]["DEMO_UPSTREAM_PROVIDER"] == "primary"


def test_nothing_to_do_when_already_set_or_nothing_recorded():
    plan = env_toggle_plan(SERVICE, {"DEMO_LOG_LEVEL": "debug"}, current={"DEMO_LOG_LEVEL": "debug"}, record={})
    assert plan["changes"] == [] and "already" in plan["nothing"] and plan["record"] == {}
    plan = env_toggle_plan(SERVICE, revert=True, current={}, record={})
    assert "no recorded change" in plan["nothing"]


def test_a_json_text_request_is_accepted():
    plan = env_toggle_plan(SERVICE, '{"DEMO_LOG_LEVEL": "debug"}')
    assert plan["error"] == "" and plan["set"] == {"DEMO_LOG_LEVEL": "debug"}


@pytest.mark.parametrize(("request_", "revert", "message"), [
    ({"PATH": "/tmp"}, False, "PATH is not a setting of demo"),
    ({"LD_PRELOAD": "/tmp/x.so"}, False, "not a setting"),
    ({"DEMO_API_KEY": "x"}, False, "names a secret"),
    ({"DEMO_UPSTREAM_PROVIDER": "evil"}, False, "not an allowed value"),
    ({"DEMO_LOG_LEVEL": "{{ lookup('pipe', 'id') }}"}, False, "must be plain"),
    ({"DEMO_LOG_LEVEL": "debug; rm -rf /"}, False, "must be plain"),
    ({"DEMO_LOG_LEVEL": "a\nExecStart=/bin/sh"}, False, "must be plain"),
    ({"DEMO_LOG_LEVEL": "$HOME"}, False, "must be plain"),
    ({"DEMO_LOG_LEVEL": "debug\n"}, False, "must be plain"),
    ({"BAD NAME": "x"}, False, "not an environment variable name"),
    ({"DEMO_LOG_LEVEL": ["x"]}, False, "must be text"),
    ("not json", False, "must be a mapping"),
    ({}, False, "nothing to set"),
    ({"DEMO_LOG_LEVEL": "debug"}, True, "exclude each other"),
])
def test_bad_requests_are_refused(request_, revert, message):
    plan = env_toggle_plan(SERVICE, request_, revert=revert)
    assert message in plan["error"], plan["error"]


def test_a_malformed_settings_description_is_refused():
    assert "not an environment variable name" in env_toggle_plan({"settings": ["A B"]}, {"A": "1"})["error"]
    assert "must be a list" in env_toggle_plan({"settings": "LOG_LEVEL"}, {"A": "1"})["error"]
    assert "none" in env_toggle_plan({"name": "x"}, {"A": "1"})["error"]
