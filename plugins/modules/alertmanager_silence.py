#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: alertmanager_silence

short_description: Create, update and expire Alertmanager silences

version_added: 0.1.0

description:
  - Manages silences through the Alertmanager API v2 (C(/api/v2/silences)).
  - A silence is identified by its matchers and its comment (or by O(silence_id)). With O(state=present) the module
    creates it, or updates the live (active or pending) silence with the same matchers and comment when its end time
    or author differ; Alertmanager updates it in place and keeps its id. Nothing is sent when it already matches, so
    a second run reports C(changed=false).
  - With O(state=absent) it expires the live silences with these matchers and this comment, or the one silence
    O(silence_id); an expired or unknown silence is left alone (C(changed=false)).
  - Scenario playbooks use it through the role C(runbook.remediation.alert_silence) to silence their own alert while
    they act, and expire the silence at the end, failure included.

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - runbook.remediation.prometheus

attributes:
  check_mode:
    support: full
    details:
      - Reads the silences and reports what would change (C(changed), C(diff)) without creating, updating or expiring
        anything.
  diff_mode:
    support: full
  platform:
    platforms: posix

options:
  state:
    description:
      - V(present) makes sure a live silence with these matchers and this comment exists and ends as asked.
      - V(absent) expires it (or the silence O(silence_id)).
    type: str
    choices: [present, absent]
    default: present
  matchers:
    description:
      - The silence's matchers; an alert is silenced when it matches all of them.
      - Combined with O(labels) when both are given. One of O(matchers), O(labels) or O(silence_id) is required.
    type: list
    elements: dict
    suboptions:
      name:
        description: The label name, for example V(alertname).
        type: str
        required: true
      value:
        description: The value, or a regular expression (RE2 syntax, anchored at both ends) with O(matchers[].is_regex).
        type: str
        required: true
      is_regex:
        description: Whether O(matchers[].value) is a regular expression.
        type: bool
        default: false
        aliases: [isRegex]
      is_equal:
        description: V(false) negates the matcher (C(!=) or C(!~)).
        type: bool
        default: true
        aliases: [isEqual]
  labels:
    description:
      - "Shorthand for equality matchers, C({label: value})."
      - A value that starts with V(~) is a regular expression for the rest of the value, as in
        M(runbook.remediation.prometheus_alerts); a list of values becomes one regular expression matching any of
        them (for example C(alertname) V([ServiceDown, HighErrorRate])).
    type: dict
  comment:
    description:
      - The silence's comment. Together with the matchers it identifies the silence, so keep it stable for one
        purpose, for example V(runbook.remediation service-down on web-1).
      - Required unless O(silence_id) is given.
    type: str
  created_by:
    description: The author recorded in the silence.
    type: str
    default: runbook.remediation
  duration:
    description:
      - How long the silence lasts from now, a Prometheus duration such as V(15m) or V(1h30m), or seconds.
      - A live silence whose end lies within a tenth of the duration (at most one minute) of now + O(duration) is
        left as it is, so that repeated runs do not rewrite it.
      - V(1h) when neither O(duration) nor O(ends_at) is given. Mutually exclusive with O(ends_at).
    type: str
  ends_at:
    description:
      - When the silence ends, RFC 3339 (V(2026-12-01T18:00:00Z)), unix seconds or a relative time such as V(+2h).
      - Mutually exclusive with O(duration).
    type: str
  silence_id:
    description:
      - The id of one silence. With O(state=absent) that silence is expired. With O(state=present) it is updated
        (matchers and comment default to its own); it must be live.
    type: str
  headers:
    description:
      - Extra HTTP headers for every request, for example a tenant header of a multi-tenant Alertmanager proxy.
    type: dict

notes:
  - Alertmanager updates a silence in place only when its matchers stay the same; changing the matchers of O(silence_id)
    expires it and creates a new one (RV(silence_id) is then the new id).
  - Expiring by matchers and comment expires every live silence that has them, also one made by another run of the
    same scenario on the same host.

seealso:
  - name: Alertmanager API v2
    description: The OpenAPI specification of the API this module uses.
    link: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml
  - module: runbook.remediation.prometheus_alerts

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Silence the service's own alerts while the scenario acts
  runbook.remediation.alertmanager_silence:
    url: http://127.0.0.1:9093
    labels:
      alertname: [ServiceDown, HighErrorRate]
      host: web-1
      service: gateway
    comment: runbook.remediation service-down on web-1
    duration: 15m
  register: silence

- name: Expire it again
  runbook.remediation.alertmanager_silence:
    url: http://127.0.0.1:9093
    state: absent
    silence_id: "{{ silence.silence_id }}"

- name: Silence every warning of the staging environment until the maintenance ends
  runbook.remediation.alertmanager_silence:
    url: https://alertmanager.example.com
    bearer_token: "{{ alertmanager_token }}"
    matchers:
      - name: env
        value: staging
      - name: severity
        value: critical
        is_equal: false
    comment: staging maintenance CHG-1234
    created_by: alice
    ends_at: "2026-12-01T18:00:00Z"
"""

RETURN = r"""
error_kind:
  description:
    - Why the module failed. V(input) when a parameter is wrong or Alertmanager refused the silence as invalid,
      V(unavailable) when Alertmanager does not answer, V(server) when it failed on a valid request.
  type: str
  returned: failure
  sample: unavailable
action:
  description: What was done (or would be done in check mode).
  type: str
  returned: success
  sample: created
  choices: [created, updated, unchanged, expired, absent]
silence_id:
  description:
    - The id of the silence. V(null) when a silence would be created in check mode, and with O(state=absent) when
      nothing was live.
  type: str
  returned: success
  sample: 8a4c0d0e-63a5-4cd1-8dc8-1b0b6bfb6f37
silence:
  description:
    - The silence as Alertmanager returns it after the change (as it would be, in check mode), with snake_case keys.
      V(null) with O(state=absent) when nothing was live.
  type: dict
  returned: success
  contains:
    id:
      description: The silence's id (V(null) for one that would be created in check mode).
      type: str
      sample: 8a4c0d0e-63a5-4cd1-8dc8-1b0b6bfb6f37
    state:
      description: V(active), V(pending) or V(expired).
      type: str
      sample: active
    matchers:
      description: The matchers, sorted.
      type: list
      elements: dict
      sample: [{"name": "alertname", "value": "ServiceDown", "is_regex": false, "is_equal": true}]
    starts_at:
      description: When the silence started, RFC 3339.
      type: str
      sample: "2026-12-01T10:00:00.000Z"
    ends_at:
      description: When it ends (or ended), RFC 3339.
      type: str
      sample: "2026-12-01T10:15:00.000Z"
    updated_at:
      description: When Alertmanager last changed it.
      type: str
      sample: "2026-12-01T10:00:00.000Z"
    created_by:
      description: The author.
      type: str
      sample: runbook.remediation
    comment:
      description: The comment.
      type: str
      sample: runbook.remediation service-down on web-1
expired:
  description: The ids of the silences expired (or that would be, in check mode).
  type: list
  elements: str
  returned: success
  sample: ["8a4c0d0e-63a5-4cd1-8dc8-1b0b6bfb6f37"]
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _prometheus as prom
from ansible_collections.runbook.remediation.plugins.module_utils._http import (
    HTTP_MUTUALLY_EXCLUSIVE,
    HTTP_REQUIRED_TOGETHER,
    HttpClient,
    http_argument_spec,
    is_http_url,
)
from ansible_collections.runbook.remediation.plugins.module_utils._silence import (
    UUID_RE,
    SilenceClient,
    build_matchers,
    ensure_absent,
    ensure_present,
)


def main():
    argument_spec = dict(
        url=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        matchers=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            value=dict(type='str', required=True),
            is_regex=dict(type='bool', default=False, aliases=['isRegex']),
            is_equal=dict(type='bool', default=True, aliases=['isEqual']),
        )),
        labels=dict(type='dict'),
        comment=dict(type='str'),
        created_by=dict(type='str', default='runbook.remediation'),
        duration=dict(type='str'),
        ends_at=dict(type='str'),
        silence_id=dict(type='str'),
        headers=dict(type='dict', no_log=True),
    )
    argument_spec.update(http_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[*HTTP_MUTUALLY_EXCLUSIVE, ('duration', 'ends_at')],
        required_together=HTTP_REQUIRED_TOGETHER,
        required_one_of=[('matchers', 'labels', 'silence_id'), ('comment', 'silence_id')],
        supports_check_mode=True,
    )
    params = module.params
    if not is_http_url(params['url']):
        module.fail_json(msg="alertmanager_silence: url '%s' is not an http(s) URL" % params['url'], error_kind='input')
    if params['timeout'] <= 0:
        module.fail_json(msg='alertmanager_silence: timeout must be more than 0 seconds, got %s' % params['timeout'],
                         error_kind='input')
    if params['silence_id'] and not UUID_RE.match(params['silence_id']):
        module.fail_json(msg="alertmanager_silence: silence_id '%s' is not a silence id (a UUID)"
                             % params['silence_id'], error_kind='input')
    if not params['created_by']:
        module.fail_json(msg='alertmanager_silence: created_by must not be empty', error_kind='input')
    try:
        matchers = build_matchers(params['matchers'], params['labels'])
        if params['state'] == 'present' and params['duration']:
            prom.parse_duration(params['duration'])
    except ValueError as exc:
        module.fail_json(msg='alertmanager_silence: %s' % exc, error_kind='input')

    headers = {str(k): str(v) for k, v in (params['headers'] or {}).items()}
    client = SilenceClient(HttpClient.from_module_params(params, base_url=params['url'], headers=headers))
    try:
        if params['state'] == 'present':
            result = ensure_present(params, client, matchers, time.time(), module.check_mode)
        else:
            result = ensure_absent(params, client, matchers, module.check_mode)
    except prom.PrometheusError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind, exception=traceback.format_exc())
    if not module._diff:
        result.pop('diff')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
