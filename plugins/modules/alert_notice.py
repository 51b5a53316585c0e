# -*- coding: utf-8 -*-
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: alert_notice
short_description: Record and announce an alert that no scenario handles
version_added: 0.1.0
author:
  - runbook.remediation maintainers (@runbook-remediation)
description:
  - Run by the rulebook's catch-all rules (playbook C(runbook.remediation.alert_unhandled)) for an alert
    whose name maps to no scenario (O(kind=no-scenario)), and for an alert the C(runbook.remediation.alerts) event
    filter refused (O(kind=rejected)) - no host label, a host pattern, a template in a label.
  - Reads the alert from C(ansible_eda.event), checking every value again; nothing of a refused value is shown.
  - Records one C(notification) event in the incident timeline and posts the same line to a Slack-compatible
    webhook (O(webhook_url), else C(RUNBOOK_WEBHOOK_URL)), once per alert occurrence (fingerprint and start time),
    however often Alertmanager repeats it.
  - Runs on the controller, in process (an action plugin).
options:
  kind:
    description: Why no scenario runs.
    type: str
    choices: [no-scenario, rejected]
    required: true
  webhook_url:
    description: A Slack-compatible incoming webhook (a secret - it carries its token).
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
    details: Nothing is recorded or posted in check mode.
  diff_mode:
    support: none
  platform:
    platforms: all
"""

EXAMPLES = r"""
- name: Record an alert no scenario handles
  runbook.remediation.alert_notice:
    kind: no-scenario
"""

RETURN = r"""
msg:
  description: The notice, or that it was recorded already.
  returned: always
  type: str
  sample: "no scenario for alert DiskSlow on web-1 (warning): a human must look"
notified:
  description: Whether the webhook got it.
  returned: always
  type: bool
key:
  description: The alert occurrence the notice is deduplicated by.
  returned: unless in check mode
  type: str
  sample: "3b1f0c5e9a0d2c7e@2026-12-03T08:00:00Z"
"""
