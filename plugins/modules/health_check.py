#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: health_check

short_description: Probe HTTP health endpoints and wait until they are (or stay) healthy

version_added: 0.1.0

description:
  - Sends C(GET) requests to one or more HTTP(S) health endpoints and judges each response by its status code and,
    optionally, a JMESPath expression evaluated over the JSON body.
  - Reports the components the body lists as not healthy, so that a diagnosis can name what is broken.
  - Can wait until the endpoints are healthy (O(retries), O(delay)) and, after a remediation, require them to stay
    healthy for several consecutive probes (O(stable_probes), O(stable_interval)).
  - A data store without an HTTP health endpoint is probed over a socket instead - V(tcp://HOST:PORT) (the port
    accepts a connection), V(redis://HOST[:PORT]) (C(PING) is answered with C(+PONG), or C(-NOAUTH) - it answers
    and wants a password; as C(redis-cli ping) judges it) and V(postgresql://HOST[:PORT]) (the server accepts
    connections, as C(pg_isready) judges it - only SQLSTATE C(57P03), starting up, shutting down or in recovery,
    counts as not ready). These URLs take no credentials (they are echoed in results); their
    RV(endpoints[].status) is V(null). A service's C(depends_on) in C(runbook_services) can so name a real Redis or
    PostgreSQL server.
  - Never changes anything; C(changed) is always V(false).

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - runbook.remediation.prometheus.HTTP

attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it probes in check mode as well.
  diff_mode:
    support: none
  platform:
    platforms: posix

options:
  url:
    description:
      - The endpoint to probe, an V(http://) or V(https://) URL, or a V(tcp://), V(redis://) or V(postgresql://)
        URL of a data store (without credentials).
      - Exactly one of O(url) and O(urls) is required.
    type: str
  urls:
    description:
      - Several endpoints to probe in each round. All of them must meet O(expect) for a round to count as good.
      - Exactly one of O(url) and O(urls) is required.
    type: list
    elements: str
  status_code:
    description:
      - HTTP status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  jmespath:
    description:
      - A JMESPath expression evaluated over the JSON response body. The endpoint is healthy only if the status code
        matches O(status_code) and the expression's result is true.
      - V(false), V(null), V(0) and empty strings, lists and objects count as false; anything else as true.
      - "For example V(components[?status!='healthy'] | length(@) == `0`) requires every component to be healthy."
      - Needs the C(jmespath) Python library where the module runs.
    type: str
  components_path:
    description:
      - Dot-separated path (V(components), V(details.checks), V(checks.0)) to the part of the JSON body that lists
        components.
      - Either a list of objects with C(name) and C(status) keys, or an object mapping each component's name to an
        object with a C(status) key (or to a status string).
      - Components whose status is not in O(healthy_statuses) are reported in RV(endpoints[].failing_components).
        They make the endpoint unhealthy only through O(jmespath) or the status code.
    type: str
    default: components
  healthy_statuses:
    description:
      - Component status values that count as healthy, compared without regard to case.
      - For Spring Boot style bodies use V([UP]).
    type: list
    elements: str
    default: [healthy]
  expect:
    description:
      - V(healthy) waits until every endpoint is healthy and fails when that does not happen.
      - V(unhealthy) waits until every endpoint is unhealthy, for example to confirm an outage before remediating it.
      - V(any) probes each endpoint once and only reports; the module never fails. O(retries) and O(stable_probes) are
        not used. Use it for diagnosis.
    type: str
    choices: [healthy, unhealthy, any]
    default: healthy
  retries:
    description:
      - How many bad probe rounds to tolerate before giving up. V(0) gives up after the first bad round.
      - A bad round is followed by a pause of O(delay) seconds.
    type: int
    default: 0
  delay:
    description:
      - Seconds to wait after a bad probe round before the next one.
    type: float
    default: 1
  stable_probes:
    description:
      - How many consecutive good rounds are needed. Raise it after a remediation to check that a service stays
        healthy instead of passing one lucky probe.
      - A bad round resets the count (and uses up one of O(retries)).
    type: int
    default: 1
  stable_interval:
    description:
      - Seconds to wait after a good round when more consecutive good rounds are still needed.
    type: float
    default: 1
  fail_on_unhealthy:
    description:
      - When V(true), the module fails if O(expect) is not met once O(retries) are used up.
      - When V(false), it returns the same results without failing, so that a later task can decide.
    type: bool
    default: true

notes:
  - Only C(GET) is sent. Redirects are followed.
  - Connection errors and timeouts do not fail the module by themselves; they make the endpoint unhealthy and are
    reported in RV(endpoints[].error).

seealso:
  - module: ansible.builtin.uri
  - module: runbook.remediation.prometheus_query
  - module: runbook.remediation.prometheus_alerts

requirements:
  - jmespath (only for O(jmespath))

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Diagnose, without failing, what the health endpoint says
  runbook.remediation.health_check:
    url: http://127.0.0.1:8080/health
    expect: any
  register: diagnosis

- name: Show the failing components
  ansible.builtin.debug:
    msg: "{{ diagnosis.endpoints[0].failing_components | map(attribute='name') | list }}"

- name: Wait up to about 30 seconds for the service to come back after a restart
  runbook.remediation.health_check:
    url: http://127.0.0.1:8080/health
    retries: 30
    delay: 1

- name: Verify the remediation - all components healthy for 5 consecutive probes, 2 s apart
  runbook.remediation.health_check:
    urls:
      - http://127.0.0.1:8080/health
      - http://127.0.0.1:8081/health
    jmespath: "components[?status!='healthy'] | length(@) == `0`"
    stable_probes: 5
    stable_interval: 2
    retries: 10
    delay: 2

- name: Confirm the outage before acting on a (possibly stale) alert
  runbook.remediation.health_check:
    url: https://app.example.com/health
    expect: unhealthy
    status_code: [200, 204]
    bearer_token: "{{ health_token }}"
    fail_on_unhealthy: false
  register: outage

- name: Remediate only when the outage is real
  ansible.builtin.debug:
    msg: restarting
  when: not outage.healthy
"""

RETURN = r"""
healthy:
  description:
    - Whether every endpoint was healthy in the last probe round.
  type: bool
  returned: always
  sample: false
endpoints:
  description:
    - The result of the last probe round, one entry per URL in the order given.
  type: list
  elements: dict
  returned: always
  contains:
    url:
      description: The probed URL.
      type: str
      sample: http://127.0.0.1:8080/health
    healthy:
      description: Whether this endpoint was healthy.
      type: bool
      sample: false
    status:
      description: The HTTP status code, or V(null) when no response came back.
      type: int
      sample: 503
    latency_ms:
      description: Milliseconds until the response was read (or the request failed).
      type: float
      sample: 12.7
    failing_components:
      description:
        - Components under O(components_path) whose status is not in O(healthy_statuses).
        - A component without a status is listed with RV(endpoints[].failing_components[].status=null).
      type: list
      elements: dict
      sample: [{"name": "db", "status": "down"}]
      contains:
        name:
          description: The component's name.
          type: str
        status:
          description: Its status.
          type: str
    error:
      description: Why the endpoint is unhealthy (connection error, status code, expression result), or V(null).
      type: str
      sample: "HTTP status 503, expected 200; failing components: db (down)"
    body:
      description: The parsed JSON body, or V(null) when there was none or it was not JSON.
      type: raw
      sample: {"status": "degraded", "components": [{"name": "db", "status": "down"}]}
probes:
  description:
    - Every single probe, in order.
  type: list
  elements: dict
  returned: always
  sample:
    - {"time": "2026-11-24T19:20:01.123456+00:00", "url": "http://127.0.0.1:8080/health", "status": 503,
       "latency_ms": 3.1, "healthy": false, "error": "HTTP status 503, expected 200"}
    - {"time": "2026-11-24T19:20:02.130112+00:00", "url": "http://127.0.0.1:8080/health", "status": 200,
       "latency_ms": 2.4, "healthy": true, "error": null}
attempts:
  description:
    - How many probe rounds ran.
  type: int
  returned: always
  sample: 2
elapsed:
  description:
    - Seconds from the first probe to the end of the last one, including pauses.
  type: float
  returned: always
  sample: 1.013
msg:
  description:
    - A one-line summary.
  type: str
  returned: always
  sample: "1 of 1 endpoints healthy after 2 attempts"
"""

import datetime
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.runbook.remediation.plugins.module_utils import _health
from ansible_collections.runbook.remediation.plugins.module_utils._http import (
    HTTP_MUTUALLY_EXCLUSIVE,
    HTTP_REQUIRED_TOGETHER,
    HttpClient,
    http_argument_spec,
)


def summarize(endpoints, expect, attempts, stable_probes):
    """One line for msg: what was expected and which endpoints did not comply."""
    healthy = sum(1 for e in endpoints if e['healthy'])
    text = '%d of %d endpoints healthy after %d attempt%s' % (
        healthy, len(endpoints), attempts, '' if attempts == 1 else 's')
    offenders = [e for e in endpoints if not _health.matches_expectation(e['healthy'], expect)]
    if expect == 'healthy' and offenders:
        details = '; '.join('%s: %s' % (e['url'], e['error']) for e in offenders)
        goal = 'stay healthy for %d consecutive probes' % stable_probes if stable_probes > 1 else 'become healthy'
        return 'health_check: %s did not %s (%s): %s' % (
            'endpoint' if len(offenders) == 1 else '%d endpoints' % len(offenders), goal, text, details)
    if expect == 'unhealthy' and offenders:
        return 'health_check: expected unhealthy, but still healthy (%s): %s' % (
            text, ', '.join(e['url'] for e in offenders))
    return text


def main():
    argument_spec = dict(
        url=dict(type='str'),
        urls=dict(type='list', elements='str'),
        status_code=dict(type='list', elements='int', default=[200]),
        jmespath=dict(type='str'),
        components_path=dict(type='str', default='components'),
        healthy_statuses=dict(type='list', elements='str', default=['healthy']),
        expect=dict(type='str', choices=['healthy', 'unhealthy', 'any'], default='healthy'),
        retries=dict(type='int', default=0),
        delay=dict(type='float', default=1),
        stable_probes=dict(type='int', default=1),
        stable_interval=dict(type='float', default=1),
        fail_on_unhealthy=dict(type='bool', default=True),
    )
    argument_spec.update(http_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('url', 'urls'), *HTTP_MUTUALLY_EXCLUSIVE],
        required_one_of=[('url', 'urls')],
        required_together=HTTP_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    params = module.params

    urls = [params['url']] if params['url'] is not None else list(params['urls'])
    if not urls:
        module.fail_json(msg='health_check: urls must not be empty')
    for url in urls:
        problem = _health.probe_url_problem(url)
        if problem:
            module.fail_json(msg="health_check: cannot probe '%s': %s" % (_health.redact_url(url), problem))
    if params['retries'] < 0:
        module.fail_json(msg='health_check: retries must be 0 or more, got %d' % params['retries'])
    if params['stable_probes'] < 1:
        module.fail_json(msg='health_check: stable_probes must be 1 or more, got %d' % params['stable_probes'])
    for name in ('delay', 'stable_interval'):
        if params[name] < 0:
            module.fail_json(msg='health_check: %s must not be negative, got %s' % (name, params[name]))
    if params['timeout'] <= 0:
        module.fail_json(msg='health_check: timeout must be more than 0 seconds, got %s' % params['timeout'])
    if not params['status_code']:
        module.fail_json(msg='health_check: status_code must list at least one code')

    expression = None
    if params['jmespath']:
        if not _health.HAS_JMESPATH:
            module.fail_json(msg=missing_required_lib('jmespath', reason='for the jmespath option'),
                             exception=_health.JMESPATH_IMPORT_ERROR)
        try:
            expression = _health.compile_expression(params['jmespath'])
        except ValueError as exc:
            module.fail_json(msg="health_check: invalid jmespath expression %r: %s" % (params['jmespath'], exc),
                             exception=traceback.format_exc())

    client = HttpClient.from_module_params(params)
    expect = params['expect']
    window = _health.StabilityWindow(
        required=1 if expect == 'any' else params['stable_probes'],
        max_failures=0 if expect == 'any' else params['retries'],
    )

    probes = []
    endpoints = []
    state = _health.CONTINUE
    started = time.monotonic()
    try:
        while state == _health.CONTINUE:
            endpoints = []
            for url in urls:
                probe_time = datetime.datetime.now(datetime.timezone.utc).isoformat()
                endpoint = _health.probe(client, url, params['status_code'], expression,
                                         params['components_path'], params['healthy_statuses'])
                endpoints.append(endpoint)
                probes.append({'time': probe_time, 'url': url, 'status': endpoint['status'],
                               'latency_ms': endpoint['latency_ms'], 'healthy': endpoint['healthy'],
                               'error': endpoint['error']})
            good = all(_health.matches_expectation(e['healthy'], expect) for e in endpoints)
            state = _health.DONE if expect == 'any' else window.record(good)
            if state == _health.CONTINUE:
                time.sleep(params['stable_interval'] if good else params['delay'])
    except Exception as exc:  # pylint: disable=broad-except  # noqa: BLE001 - report, never a bare traceback
        module.fail_json(msg='health_check: unexpected error while probing %s: %s' % (', '.join(urls), to_native(exc)),
                         exception=traceback.format_exc())

    attempts = len(probes) // len(urls)
    result = dict(
        changed=False,
        healthy=all(e['healthy'] for e in endpoints),
        endpoints=endpoints,
        probes=probes,
        attempts=attempts,
        elapsed=round(time.monotonic() - started, 3),
    )
    result['msg'] = summarize(endpoints, expect, attempts, params['stable_probes'])
    if state == _health.EXHAUSTED and params['fail_on_unhealthy']:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
