"""The provider branch of release_rollback's decision (filter provider_switch)."""

from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.filter.providers import provider_switch

PROVIDER = {"env": "LLM_PROVIDER", "fallback": "secondary"}


def health(current="primary", status="degraded", component="provider", key="upstream_provider"):
    body = {"status": "degraded", key: current,
            "components": [{"name": "api", "status": "healthy"},
                           {"name": component, "status": status, "detail": f"provider {current} is down"}]}
    if current is None:
        body.pop(key)
    return body


def test_a_failing_provider_with_a_fallback_is_switched():
    plan = provider_switch(PROVIDER, health())
    assert plan["failing"] and plan["switch"]
    assert (plan["env"], plan["current"], plan["fallback"]) == ("LLM_PROVIDER", "primary", "secondary")
    assert plan["escalate"] == ""
    assert "provider primary is down" in plan["evidence"]


def test_a_healthy_provider_is_left_alone():
    plan = provider_switch(PROVIDER, health(status="healthy"))
    assert not plan["failing"] and not plan["switch"] and plan["escalate"] == ""


def test_no_provider_component_is_not_a_provider_failure():
    # Errors counted as upstream_error without a failing provider component decide nothing.
    body = {"upstream_provider": "primary", "components": [{"name": "api", "status": "healthy"}]}
    plan = provider_switch(PROVIDER, body)
    assert not plan["failing"] and not plan["switch"]


@pytest.mark.parametrize(("provider", "body", "fallback", "why"), [
    ({"env": "LLM_PROVIDER"}, health(), "", "no fallback is configured"),
    ({}, health(), "", "describes no provider variable"),
    (None, health(), "", "describes no provider variable"),
    ({"env": "LLM PROVIDER", "fallback": "secondary"}, health(), "", "describes no provider variable"),
    (PROVIDER, health(current="secondary"), "", "the fallback already"),
    (PROVIDER, health(current=None), "", "does not say which one"),
    (PROVIDER, health(current="primary\n[Service]\nExecStartPre=/bin/false"), "", "unexpected one"),
    (PROVIDER, health(), "{{ lookup('pipe', 'id') }}", "is not a provider name"),
    ({"env": "LLM_PROVIDER", "fallback": "x y"}, health(), "", "is not a provider name"),
    ({"env": "LLM_PROVIDER", "fallback": "$HOME"}, health(), "", "is not a provider name"),
    ({"env": "LLM_PROVIDER", "fallback": "100%"}, health(), "", "is not a provider name"),
])
def test_a_failing_provider_that_cannot_be_switched_escalates(provider, body, fallback, why):
    plan = provider_switch(provider, body, fallback=fallback)
    assert plan["failing"] and not plan["switch"]
    assert why in plan["escalate"], plan["escalate"]


def test_the_requested_fallback_wins_over_the_described_one():
    plan = provider_switch(PROVIDER, health(), fallback="anthropic/claude-3:latest")
    assert plan["switch"] and plan["fallback"] == "anthropic/claude-3:latest"
    plan = provider_switch(PROVIDER, health(current="tertiary"), fallback="tertiary")
    assert not plan["switch"] and "the fallback already" in plan["escalate"]


def test_custom_component_and_health_key():
    provider = {"env": "LLM_PROVIDER", "fallback": "b", "component": "llm", "health_key": "llm"}
    plan = provider_switch(provider, health(current="a", component="llm", key="llm"))
    assert plan["switch"] and plan["current"] == "a"
    # The default component name is not looked at when another one is described.
    assert not provider_switch(provider, health(current="a", key="llm"))["failing"]
