# -*- coding: utf-8 -*-
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: scenario_begin
short_description: Admit a scenario run through the safety envelope and silence its alerts
version_added: 0.1.0
author:
  - runbook.remediation maintainers (@runbook-remediation)
description:
  - The second step of the scenario frame (role P(runbook.remediation.scenario#role)), after
    M(runbook.remediation.scenario_request) and the remediation role's own input checks.
  - Checks O(verify_promql) against Prometheus (invalid PromQL is bad input, a Prometheus that does not answer
    is unavailable - either way nothing is admitted).
  - Asks the safety envelope (dedupe, attempt budget, cooldown, per-target and fleet circuit breakers, blast
    radius; see M(runbook.remediation.remediation_guard)) whether this run may act on this host's service. Its
    settings come from the C(safety_envelope_*) variables and C(runbook_blast_radius); the lease lives as long
    as the catalogue's C(max_seconds) allows.
  - B(Fails closed.) When the envelope cannot answer, the decision is V(refused) and the remediation role does
    not run. When it answers anything but V(act), the role runs diagnose-only (it looks, a stale alert finds
    the service healthy). Only V(act) lets the role change anything.
  - When admitted, silences the scenario's alerts (the catalogue's C(alerts)) for this host and service in
    Alertmanager while one of them fires. A silence that cannot be made is a warning, never a reason not to act.
    Alertmanager credentials are read from C(runbook_alertmanager_username), C(runbook_alertmanager_password)
    or C(runbook_alertmanager_token), never from task arguments.
  - In check mode the envelope decides without writing and no silence is made.
  - Runs on the controller, in process (an action plugin) - no connection to the target.
options:
  invalid:
    description:
      - The remediation role's input check failed - V({msg, error_kind}). The run is rejected; nothing is asked
        or silenced.
    type: dict
  silence:
    description: Where and how to silence.
    type: dict
    suboptions:
      url:
        description: Alertmanager's base URL. Empty disables the silence.
        type: str
      duration:
        description: How long the silence lasts unless expired first (Alertmanager duration, V(15m)).
        type: str
        default: 15m
      enabled:
        description: Whether to silence at all.
        type: bool
        default: true
      validate_certs:
        description: Verify Alertmanager's TLS certificate.
        type: bool
        default: true
      timeout:
        description: Seconds per request.
        type: float
        default: 10
  verify_promql:
    description: A PromQL condition the frame checks after a remediation (see M(runbook.remediation.scenario_end)).
    type: str
  prometheus_url:
    description: Prometheus' base URL, needed with O(verify_promql).
    type: str
  promql_timeout:
    description: Seconds per Prometheus request.
    type: float
    default: 10
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
- name: Admit the run and silence its alerts
  runbook.remediation.scenario_begin:
    silence:
      url: "{{ runbook_alertmanager_url | default('') }}"
    verify_promql: "{{ runbook_verify_promql | default('') }}"
    prometheus_url: "{{ runbook_prometheus_url | default('') }}"
"""

RETURN = r"""
decision:
  description:
    - V(act) (admitted), the envelope's refusal (V(duplicate), V(cooldown), V(escalate), V(breaker), V(busy)),
      V(diagnose) (only looking was asked), V(rejected) (bad input) or V(refused) (the envelope could not decide).
  returned: always
  type: str
  sample: act
reason:
  description: Why.
  returned: always
  type: str
  sample: "attempt 1 of 3 on lab-1/demo within 3600s"
ansible_facts:
  description: The frame's state, and the remediation role's mode (C(<role>_diagnose_only), C(<role>_fail)).
  returned: always
  type: dict
"""
