# -*- coding: utf-8 -*-
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: scenario_end
short_description: Verify, release and record one scenario result
version_added: 0.1.0
author:
  - runbook.remediation maintainers (@runbook-remediation)
description:
  - The last step of the scenario frame (role P(runbook.remediation.scenario#role)).
  - Makes the scenario contract's C(runbook_result) (outcome V(healthy), V(remediated), V(planned), V(skipped),
    V(escalate) or V(failed); message, findings, actions, verification, evidence) from the remediation role's
    O(result), its O(failure), or the frame's rejection; a run the envelope did not admit gets the envelope's
    answer as its outcome unless it found the service healthy.
  - Expires the silence M(runbook.remediation.scenario_begin) made, failure included.
  - When the role remediated and O(verify_promql) is set, waits until the condition returns at least one sample;
    when it never does, the outcome is V(failed) (no roll forward).
  - Releases the safety envelope's lease with the outcome (a V(failed) one counts against the breakers).
  - Publishes the result with set_stats (C(runbook_results), for AWX / Tower).
  - Posts to a Slack-compatible webhook (O(webhook_url), else C(RUNBOOK_WEBHOOK_URL)) when this run escalates or
    opens a circuit breaker. The URL is never shown; a failed post is a warning.
  - Runs on the controller, in process (an action plugin) - no connection to the target.
options:
  result:
    description: The remediation role's result (its C(<role>_result) fact).
    type: dict
  failure:
    description: A task of the role failed (V({msg, task, error_kind})).
    type: dict
  silence:
    description: Where to expire the silence (as for M(runbook.remediation.scenario_begin)).
    type: dict
  verify_promql:
    description: A PromQL expression that must return at least one sample once the service is back.
    type: str
  verify_promql_retries:
    description: Extra queries before giving up.
    type: int
    default: 15
  verify_promql_delay:
    description: Seconds between queries.
    type: float
    default: 1
  prometheus_url:
    description: Prometheus' base URL.
    type: str
  promql_timeout:
    description: Seconds per Prometheus request.
    type: float
    default: 10
  webhook_url:
    description: A Slack-compatible incoming webhook for escalations (a secret - it carries its token).
    type: str
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
    details: Nothing is released, expired, queried or posted in check mode.
  diff_mode:
    support: none
  platform:
    platforms: all
"""

EXAMPLES = r"""
- name: Record the result
  runbook.remediation.scenario_end:
    result: "{{ service_restart_result | default({}) }}"
"""

RETURN = r"""
outcome:
  description: The scenario's outcome.
  returned: always
  type: str
  sample: remediated
notified:
  description: Whether a human was told through the webhook.
  returned: always
  type: bool
  sample: false
ansible_facts:
  description: The result.
  returned: always
  type: dict
  contains:
    runbook_result:
      description: The scenario contract's result (C(scenario), C(host), C(outcome), C(message), C(findings),
        C(actions), C(verification), C(evidence), C(check_mode), C(decision)).
      type: dict
      sample: {"scenario": "service-down", "host": "lab-1", "outcome": "remediated", "message": "remediated: ..."}
"""
