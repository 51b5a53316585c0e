#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: prometheus_alerts

short_description: List the alerts of Alertmanager or Prometheus, filtered by labels

version_added: 0.1.0

description:
  - Reads the current alerts from Alertmanager (API v2, C(GET /api/v2/alerts)) or from Prometheus itself
    (C(GET /api/v1/alerts)) and returns them in one normalized shape, whichever the source.
  - Filters by labels (exact values or regular expressions), alert name and state, so that a runbook can check that
    the alert it reacts to is still firing before it acts.
  - Never changes anything; C(changed) is always V(false).

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - runbook.remediation.prometheus

attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it queries in check mode as well.
  diff_mode:
    support: none
  platform:
    platforms: posix

options:
  source:
    description:
      - Where to read the alerts.
      - V(alertmanager) knows about silences and inhibitions and sees alerts of every Prometheus that sends to it.
      - V(prometheus) sees the alerting rules of one Prometheus, including V(pending) alerts that have not fired yet.
    type: str
    choices: [alertmanager, prometheus]
    default: alertmanager
  labels:
    description:
      - Label filters; every one must match.
      - A value matches exactly; a value that starts with V(~) is a regular expression for the rest of the value,
        anchored at both ends as in PromQL, for example V(~api|web).
      - An empty value matches alerts without that label.
      - With O(source=alertmanager) exact matches are sent to Alertmanager as C(filter) matchers; regular expressions
        are applied by the module.
    type: dict
    default: {}
  alertname:
    description:
      - Keep only alerts with this name, or with one of these names.
    type: list
    elements: str
  state:
    description:
      - Which alerts to return.
      - For O(source=alertmanager), V(active) (neither silenced nor inhibited), V(suppressed) (silenced or inhibited),
        V(unprocessed) (received but not yet processed), or V(all).
      - For O(source=prometheus), V(firing), V(pending) (the rule's C(for) duration has not passed yet), or V(all).
        V(active) means V(firing) there.
    type: str
    choices: [active, suppressed, unprocessed, firing, pending, all]
    default: active
  active_only:
    description:
      - Keep only alerts that are active, that is, neither silenced nor inhibited (Alertmanager) or firing
        (Prometheus), whatever O(state) says.
      - Combining it with a O(state) that excludes active alerts (V(suppressed), V(unprocessed), V(pending)) is an
        error.
    type: bool
    default: false

notes:
  - Alertmanager may still deliver an old C(firing) notification after the problem went away (it retries webhooks).
    Read the current alerts with this module, and check the service itself with M(runbook.remediation.health_check),
    before acting on a notification.

seealso:
  - name: Alertmanager API v2
    description: The OpenAPI specification of the API this module reads.
    link: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml
  - module: runbook.remediation.prometheus_query
  - module: runbook.remediation.health_check

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Is the alert that triggered this run still firing?
  runbook.remediation.prometheus_alerts:
    url: http://127.0.0.1:9093
    alertname: ServiceDown
    labels:
      service: "{{ service_name }}"
  register: current

- name: Stop here when it resolved meanwhile
  ansible.builtin.meta: end_host
  when: current.count == 0

- name: Critical alerts of the api or web services, silenced ones included
  runbook.remediation.prometheus_alerts:
    url: http://127.0.0.1:9093
    state: all
    labels:
      severity: critical
      service: "~api|web"
  register: critical

- name: Alerts about to fire, straight from Prometheus
  runbook.remediation.prometheus_alerts:
    source: prometheus
    url: http://127.0.0.1:9090
    state: pending
  register: pending
"""

RETURN = r"""
error_kind:
  description:
    - Why the module failed, for a playbook to decide what to do. V(input) when the query or a parameter is
      wrong (for example invalid PromQL), V(unavailable) when the server does not answer, V(server) when it failed
      on a valid request.
  type: str
  returned: failure
  sample: input
alerts:
  description:
    - The matching alerts, sorted by name, start time and fingerprint.
  type: list
  elements: dict
  returned: success
  contains:
    name:
      description: The C(alertname) label.
      type: str
      sample: ServiceDown
    labels:
      description: All labels of the alert.
      type: dict
      sample: {"alertname": "ServiceDown", "service": "api", "severity": "critical"}
    annotations:
      description: The annotations (summary, description, runbook_url, ...).
      type: dict
      sample: {"summary": "api is down"}
    state:
      description:
        - V(active), V(suppressed) or V(unprocessed) from Alertmanager; V(firing) or V(pending) from Prometheus.
      type: str
      sample: active
    starts_at:
      description: When the alert started (Alertmanager C(startsAt), Prometheus C(activeAt)), RFC 3339.
      type: str
      sample: "2026-11-24T19:20:01.123Z"
    ends_at:
      description: When Alertmanager considers the alert resolved unless it is sent again; V(null) for Prometheus.
      type: str
      sample: "2026-11-24T19:25:01.123Z"
    fingerprint:
      description:
        - Alertmanager's fingerprint of the label set. For Prometheus, the first 16 hex digits of a SHA-256 over the
          sorted labels, stable across runs.
      type: str
      sample: 5a4f2c3f0ab2a1c9
    severity:
      description: The C(severity) label, or V(null).
      type: str
      sample: critical
    generator_url:
      description: Link to the expression that produced the alert, or V(null) (always for Prometheus).
      type: str
      sample: http://127.0.0.1:9090/graph?g0.expr=up+%3D%3D+0
    silenced_by:
      description: IDs of the silences that mute the alert (Alertmanager; empty for Prometheus).
      type: list
      elements: str
      sample: []
    inhibited_by:
      description: Fingerprints of the alerts that inhibit it (Alertmanager; empty for Prometheus).
      type: list
      elements: str
      sample: []
    value:
      description: The value of the alert expression when it last fired (Prometheus; V(null) for Alertmanager).
      type: str
      sample: "1e+00"
count:
  description:
    - The number of entries in RV(alerts).
  type: int
  returned: success
  sample: 1
"""

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

ALERTMANAGER_ONLY = ('suppressed', 'unprocessed')
PROMETHEUS_ONLY = ('firing', 'pending')


def effective_states(module, source, state, active_only):
    """The alert states to keep, after checking that state suits the source."""
    if source == 'alertmanager' and state in PROMETHEUS_ONLY:
        module.fail_json(msg='prometheus_alerts: state=%s applies to source=prometheus; for Alertmanager use '
                             'active, suppressed, unprocessed or all' % state, error_kind='input')
    if source == 'prometheus' and state in ALERTMANAGER_ONLY:
        module.fail_json(msg='prometheus_alerts: state=%s applies to source=alertmanager; for Prometheus use '
                             'firing, pending or all' % state, error_kind='input')
    if active_only and state in (*ALERTMANAGER_ONLY, 'pending'):
        module.fail_json(msg='prometheus_alerts: active_only=true keeps only active alerts, which state=%s excludes; '
                             'drop one of the two' % state, error_kind='input')
    if active_only:
        state = 'active'
    return state


def alertmanager_alerts(client, state, exact, regexes, alertnames):
    flags, keep = prom.ALERTMANAGER_STATES[state]
    filters = [prom.alertmanager_matcher(name, value) for name, value in sorted(exact.items())
               if prom.LABEL_NAME_RE.match(name)]
    if alertnames and len(alertnames) == 1 and 'alertname' not in exact:
        filters.append(prom.alertmanager_matcher('alertname', alertnames[0]))
    raw = client.alerts(filters=filters, **flags)
    alerts = [prom.normalize_alertmanager_alert(a) for a in raw]
    return [a for a in alerts if a['state'] in keep and prom.labels_match(a['labels'], exact, regexes, alertnames)]


def prometheus_alerts(client, state, exact, regexes, alertnames):
    keep = prom.PROMETHEUS_STATES[state]
    alerts = [prom.normalize_prometheus_alert(a) for a in client.alerts()]
    return [a for a in alerts if a['state'] in keep and prom.labels_match(a['labels'], exact, regexes, alertnames)]


def main():
    argument_spec = dict(
        source=dict(type='str', choices=['alertmanager', 'prometheus'], default='alertmanager'),
        url=dict(type='str', required=True),
        labels=dict(type='dict', default={}),
        alertname=dict(type='list', elements='str'),
        state=dict(type='str', choices=['active', 'suppressed', 'unprocessed', 'firing', 'pending', 'all'],
                   default='active'),
        active_only=dict(type='bool', default=False),
    )
    argument_spec.update(http_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=HTTP_MUTUALLY_EXCLUSIVE,
        required_together=HTTP_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    params = module.params
    if not is_http_url(params['url']):
        module.fail_json(msg="prometheus_alerts: url '%s' is not an http(s) URL" % params['url'], error_kind='input')
    if params['timeout'] <= 0:
        module.fail_json(msg='prometheus_alerts: timeout must be more than 0 seconds, got %s' % params['timeout'],
                         error_kind='input')

    state = effective_states(module, params['source'], params['state'], params['active_only'])
    try:
        exact, regexes = prom.split_label_filters(params['labels'])
    except ValueError as exc:
        module.fail_json(msg='prometheus_alerts: %s' % exc, error_kind='input', exception=traceback.format_exc())
    alertnames = [name for name in params['alertname'] or [] if name]

    http = HttpClient.from_module_params(params, base_url=params['url'])
    try:
        if params['source'] == 'alertmanager':
            alerts = alertmanager_alerts(prom.AlertmanagerClient(http), state, exact, regexes, alertnames)
        else:
            alerts = prometheus_alerts(prom.PrometheusClient(http), state, exact, regexes, alertnames)
    except prom.PrometheusError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind, exception=traceback.format_exc())

    alerts = prom.sort_alerts(alerts)
    module.exit_json(changed=False, alerts=alerts, count=len(alerts))


if __name__ == '__main__':
    main()
