# -*- coding: utf-8 -*-
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: scenario_request
short_description: Check a scenario request before anything templates it
version_added: 0.1.0
author:
  - runbook.remediation maintainers (@runbook-remediation)
description:
  - The first step of the scenario frame (role P(runbook.remediation.scenario#role)).
  - Reads the request variables that may come from an alert, a webhook or a command line
    (C(service), C(runbook_alert_key), C(runbook_run_id), C(runbook_incident), and the rulebook's
    C(ansible_eda.event)) B(untemplated) and checks their shape - names match C(^[A-Za-z0-9_.-]+$),
    times are RFC 3339, fingerprints hex. A value holding a Jinja delimiter is refused, never rendered.
  - Extra vars that loosen the safety envelope, a budget, a ceiling or the blast radius
    (C(safety_envelope_*), C(runbook_blast_radius), C(*_budget_max), C(*_ceiling), ...) are refused unless
    C(runbook_override_safety) gives a reason; the reason is recorded in the result.
  - A bad request does not fail this task - it sets C(runbook_frame.decision=rejected), so the frame records
    the rejection as the scenario's result (outcome C(failed), C(error_kind=input)) and nothing is admitted.
  - Runs on the controller, in process (an action plugin) - no connection to the target.
options:
  name:
    description: The scenario's name in the catalogue (C(meta/scenarios.yml)), for example V(service-down).
    type: str
    required: true
  role:
    description: The remediation role the frame runs, for example V(runbook.remediation.service_restart).
    type: str
    required: true
  validate_from:
    description: The role's input-check entry point (empty - none); the role's main entry point skips its own check.
    type: str
    default: validate
  diagnose_only:
    description: Only look - the role diagnoses and decides, changes nothing; no admission, no silence.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
"""

EXAMPLES = r"""
- name: Check the service-down request
  runbook.remediation.scenario_request:
    name: service-down
    role: runbook.remediation.service_restart
"""

RETURN = r"""
ansible_facts:
  description: The frame's state for the following steps.
  returned: always
  type: dict
  contains:
    runbook_frame:
      description:
        - The scenario, the role, the checked request values, the run id, whether only diagnosis was asked, and
          the decision so far (V(null), or V(rejected) with its reason).
      type: dict
      sample: {"scenario": "service-down", "decision": null, "request": {"service": "demo"}, "run_id": "42"}
msg:
  description: V(request accepted), or why it was rejected.
  returned: always
  type: str
  sample: "service must be a service name: templates are not accepted from a request"
"""
