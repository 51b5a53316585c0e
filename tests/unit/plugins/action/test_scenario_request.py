"""scenario_request's manager check: a scenario acts only on the kinds of service its
catalogue entry names (a role written for units and containers never gets a Deployment)."""

from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.action.scenario_request import ActionModule
from ansible_collections.runbook.remediation.plugins.module_utils import _scenario

ENTRY = {"managers": ["systemd", "docker", "compose"]}
SERVICES = [{"name": "api", "manager": "kubernetes", "deployment": "api"},
            {"name": "web", "manager": "systemd", "unit": "web.service"}]


def test_a_manager_the_scenario_does_not_support_is_refused():
    with pytest.raises(_scenario.RequestError) as caught:
        ActionModule._check_manager("disk-full", ENTRY, "api", SERVICES)
    assert str(caught.value) == "disk-full does not act on 'kubernetes' services (it supports systemd, docker, compose)"


@pytest.mark.parametrize(("entry", "service", "services"), [
    (ENTRY, "web", SERVICES),  # supported
    ({"managers": ["systemd", "kubernetes"]}, "api", SERVICES),
    (ENTRY, "", SERVICES),  # ambiguous: the role's validation names the services
    (ENTRY, "nope", SERVICES),  # unknown: the role's validation says so
    ({}, "api", SERVICES),  # no managers in the entry: nothing to check
    (ENTRY, "api", [{"name": "api", "manager": "{{ which }}"}]),  # a template: the role checks the rendered one
    (ENTRY, "api", "not a list"),
])
def test_what_the_manager_check_leaves_to_the_role(entry, service, services):
    ActionModule._check_manager("service-down", entry, service, services)
