#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: prometheus_query

short_description: Run a PromQL query and check the result against a threshold

version_added: 0.1.0

description:
  - Runs an instant or a range query through the Prometheus HTTP API v1 (C(/api/v1/query), C(/api/v1/query_range)).
  - Returns the samples with plain float values, for range results a trend per series (first, last, delta, per second),
    and, with O(threshold), whether any sample breaches it.
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
  query:
    description:
      - The PromQL expression, for example V(up{job="api"} == 0) or
        V(container_memory_working_set_bytes{name="api"}).
    type: str
    required: true
  type:
    description:
      - V(instant) evaluates the query at one point in time (O(time)).
      - V(range) evaluates it at every O(step) between O(start) and O(end) and returns a series of values per metric.
    type: str
    choices: [instant, range]
    default: instant
  time:
    description:
      - Evaluation time of an instant query. Defaults to now on the Prometheus server.
      - RFC 3339 (V(2026-11-24T19:00:00Z)), unix seconds (V(1795892400)), V(now), or a time relative to now on the
        host that runs the module (V(-5m), V(now-1h); units V(ms), V(s), V(m), V(h), V(d), V(w), V(y)).
      - Mutually exclusive with O(start), O(end) and O(step).
    type: str
  start:
    description:
      - Start of a range query, in any format O(time) accepts, for example V(-1h).
      - Required when O(type=range).
    type: str
  end:
    description:
      - End of a range query, in any format O(time) accepts. Defaults to now.
    type: str
  step:
    description:
      - Resolution of a range query, as a Prometheus duration (V(15s), V(1m)) or a number of seconds.
      - Defaults to V(15s), or a coarser step when the range would exceed Prometheus' limit of 11,000 points per
        series.
    type: str
  threshold:
    description:
      - A condition to test every sample against. RV(breached) is V(true) when at least one sample satisfies
        C(value op threshold), and RV(breaching) lists those samples.
      - For range results, a series breaches when any of its points does.
    type: dict
    suboptions:
      op:
        description:
          - The comparison.
        type: str
        required: true
        choices: ['>', '>=', '<', '<=', '==', '!=']
      value:
        description:
          - The number to compare with.
        type: float
        required: true
  fail_on_empty:
    description:
      - Fail when the query returns no samples, for example because a metric name is misspelt or the target is not
        scraped.
    type: bool
    default: false

notes:
  - Warnings that Prometheus returns with a result are shown as task warnings.
  - Sample values that are NaN or infinite are returned as V(null), because JSON has no such numbers; O(threshold) still
    compares the real values (V(+Inf) is greater than any number, NaN breaches nothing).

seealso:
  - name: Prometheus HTTP API
    description: The API this module uses.
    link: https://prometheus.io/docs/prometheus/latest/querying/api/
  - module: runbook.remediation.prometheus_alerts
  - module: runbook.remediation.health_check

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Which API targets are down?
  runbook.remediation.prometheus_query:
    url: http://127.0.0.1:9090
    query: up{job="api"} == 0
  register: down

- name: Name them
  ansible.builtin.debug:
    msg: "{{ down.samples | map(attribute='metric.instance') | list }}"

- name: Is the 5xx ratio above 5 %?
  runbook.remediation.prometheus_query:
    url: http://127.0.0.1:9090
    query: sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
    threshold:
      op: '>'
      value: 0.05
  register: errors

- name: Memory of the api container over the last hour, one point a minute
  runbook.remediation.prometheus_query:
    url: http://127.0.0.1:9090
    query: container_memory_working_set_bytes{name="api"}
    type: range
    start: -1h
    step: 1m
    fail_on_empty: true
  register: memory

- name: Restart only when memory keeps growing (a leak), not after a one-off spike
  ansible.builtin.debug:
    msg: "growing by {{ (memory.trend[0].per_second * 3600 / 1048576) | round(1) }} MiB/h"
  when: memory.trend[0].per_second > 0
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
result_type:
  description:
    - The type of the result as Prometheus reports it, V(vector) or V(scalar) or V(string) for instant queries and
      V(matrix) for range queries (and instant queries of a range selector such as V(up[5m])).
  type: str
  returned: success
  sample: vector
samples:
  description:
    - The result, one entry per series.
    - For V(vector), V(scalar) and V(string) results each entry has C(metric), C(value) and C(timestamp).
    - For V(matrix) results each entry has C(metric) and C(values), a list of C([timestamp, value]) pairs.
    - Values are floats (V(null) for NaN and infinities), except for V(string) results.
  type: list
  elements: dict
  returned: success
  sample:
    - {"metric": {"__name__": "up", "instance": "127.0.0.1:9090", "job": "prometheus"}, "value": 1.0,
       "timestamp": 1795892400.123}
count:
  description:
    - The number of entries in RV(samples).
  type: int
  returned: success
  sample: 1
trend:
  description:
    - For V(matrix) results, per series in the order of RV(samples), its first and last value, C(delta) (last minus
      first), C(per_second) (delta divided by the seconds between them; V(null) with fewer than two points), C(min),
      C(max) and the number of C(points).
  type: list
  elements: dict
  returned: when RV(result_type=matrix)
  sample:
    - {"metric": {"name": "api"}, "first": 104857600.0, "last": 209715200.0, "delta": 104857600.0,
       "per_second": 29127.1, "min": 104857600.0, "max": 209715200.0, "points": 61}
breached:
  description:
    - Whether at least one sample satisfies O(threshold).
  type: bool
  returned: when O(threshold) is set
  sample: true
breaching:
  description:
    - The samples that satisfy O(threshold), shaped like RV(samples). For range results, only the breaching points of
      each series are kept.
  type: list
  elements: dict
  returned: when O(threshold) is set
  sample:
    - {"metric": {"job": "api"}, "value": 0.12, "timestamp": 1795892400.123}
time:
  description:
    - The evaluation time sent to Prometheus, in unix seconds; V(null) when Prometheus picked it (no O(time)).
  type: float
  returned: when O(type=instant)
  sample: 1795892400.0
start:
  description:
    - The start of the range in unix seconds.
  type: float
  returned: when O(type=range)
  sample: 1795888800.0
end:
  description:
    - The end of the range in unix seconds.
  type: float
  returned: when O(type=range)
  sample: 1795892400.0
step:
  description:
    - The step in seconds.
  type: float
  returned: when O(type=range)
  sample: 15.0
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


def resolve_times(module, params, now):
    """Turn time/start/end/step into unix seconds, failing with a hint on bad input."""
    def parse(name, parser, *args):
        try:
            return parser(params[name], *args)
        except ValueError as exc:
            module.fail_json(msg='prometheus_query: %s: %s' % (name, exc), error_kind='input',
                             exception=traceback.format_exc())

    if params['type'] == 'instant':
        at = parse('time', prom.parse_time, now) if params['time'] is not None else None
        return {'time': at}

    start = parse('start', prom.parse_time, now)
    end = parse('end', prom.parse_time, now) if params['end'] is not None else float(now)
    if end < start:
        module.fail_json(msg='prometheus_query: start (%s) lies after end (%s)'
                             % (params['start'], params['end'] or 'now'), error_kind='input')
    step = parse('step', prom.parse_duration) if params['step'] is not None else prom.default_step(start, end)
    points = (end - start) / step
    if points > prom.MAX_POINTS:
        module.fail_json(msg='prometheus_query: %d points per series exceed the limit of %d: raise step (at least %ss)'
                         % (points, prom.MAX_POINTS, prom.default_step(start, end)), error_kind='input')
    return {'start': start, 'end': end, 'step': step}


def main():
    argument_spec = dict(
        url=dict(type='str', required=True),
        query=dict(type='str', required=True),
        type=dict(type='str', choices=['instant', 'range'], default='instant'),
        time=dict(type='str'),
        start=dict(type='str'),
        end=dict(type='str'),
        step=dict(type='str'),
        threshold=dict(type='dict', options=dict(
            op=dict(type='str', required=True, choices=list(prom.THRESHOLD_OPERATORS)),
            value=dict(type='float', required=True),
        )),
        fail_on_empty=dict(type='bool', default=False),
    )
    argument_spec.update(http_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('time', 'start'), ('time', 'end'), ('time', 'step'), *HTTP_MUTUALLY_EXCLUSIVE],
        required_if=[('type', 'range', ['start'])],
        required_together=HTTP_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    params = module.params
    if not is_http_url(params['url']):
        module.fail_json(msg="prometheus_query: url '%s' is not an http(s) URL" % params['url'], error_kind='input')
    if params['timeout'] <= 0:
        module.fail_json(msg='prometheus_query: timeout must be more than 0 seconds, got %s' % params['timeout'],
                         error_kind='input')
    if not params['query'].strip():
        module.fail_json(msg='prometheus_query: query is empty', error_kind='input')

    times = resolve_times(module, params, time.time())
    client = prom.PrometheusClient(HttpClient.from_module_params(params, base_url=params['url']))
    try:
        if params['type'] == 'instant':
            payload = client.query(params['query'], times['time'])
        else:
            payload = client.query_range(params['query'], times['start'], times['end'], times['step'])
        data = payload.get('data') or {}
        result_type, samples = prom.normalize_result(data)
    except prom.PrometheusError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind, exception=traceback.format_exc())
    except ValueError as exc:
        module.fail_json(msg='prometheus_query: unexpected answer from Prometheus at %s: %s' % (params['url'], exc),
                         error_kind='server',
                         exception=traceback.format_exc())

    for warning in payload.get('warnings') or []:
        module.warn('Prometheus: %s' % warning)

    result = dict(changed=False, result_type=result_type, samples=samples, count=len(samples))
    result.update(times)
    if result_type == 'matrix':
        result['trend'] = [prom.series_trend(sample) for sample in samples]
    if params['threshold']:
        result['breached'], result['breaching'] = prom.apply_threshold(
            result_type, samples, prom.raw_points(data), params['threshold']['op'], params['threshold']['value'])

    if params['fail_on_empty'] and not samples:
        result['msg'] = 'prometheus_query: the query returned no samples (fail_on_empty=true): %s' % params['query']
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
