#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: service_recover
short_description: Read a service's state and restart it within its budget until it stays healthy, in one call
version_added: 0.1.0
description:
  - The hot path of the P(runbook.remediation.service_restart#role) role, in one module call (one round trip).
  - First it reads, as M(runbook.remediation.service_state) does - health, and when the service is unhealthy the
    evidence (unit or container state, last log lines, the port's holder, the dependencies' health) and the
    restart budget. Returns everything service_state returns.
  - Then, when O(act) and the service is unhealthy (or O(force)), it
    restarts each unhealthy dependency first, then the service, each attempt recorded in the restart history
    B(before) acting (a crash half-way still counts), and verify it stays healthy for O(verify_probes)
    consecutive probes. A crash-looping service gets another attempt, up to O(max_attempts), never past the
    budget (O(budget_max) restarts within O(budget_window)); past it the result says C(escalate=true).
  - A start that fails because the service's C(port) is taken (EADDRINUSE in its last log lines) is the last
    attempt, since another restart could not bind the port either and whatever holds it is not this service's
    to stop. The result names the holder (C(port_holder)) and says C(port_taken=true) and C(escalate=true).
  - A graceful restart is stop (bounded by O(stop_timeout)), wait O(stop_wait), start. A unit or container
    that is already dead (failed, exited) is only started.
  - systemd units through C(systemctl), containers through the C(docker) CLI, Compose services through
    C(docker compose stop) and C(docker compose up --detach --no-deps --no-build --pull never) (as
    M(community.docker.docker_compose_v2) with C(state=present) does). Those modules are the right tools for
    a single restart; this one exists so that budget, restart and verification cost one round trip.
  - A Kubernetes Deployment's pods that are not Ready are deleted (its ReplicaSet replaces them without the
    kubelet's back-off); a forced restart of a Ready Deployment is C(kubectl rollout restart). A later attempt
    spares a replacement pod that is still starting.
  - The health check is the service's C(health_url) (and C(health_jmespath)).
author:
  - runbook.remediation maintainers (@runbook-remediation)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - runbook.remediation.service
attributes:
  check_mode:
    support: full
    details: Reports the restart it would make (C(changed=true)) and touches nothing, the budget included.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  budget_max:
    description: Restarts allowed within O(budget_window).
    type: int
    default: 3
  max_attempts:
    description: Restarts tried in this call (each verified before the next), within the budget.
    type: int
    default: 3
  act:
    description: Restart when needed. V(false) only reads and decides (diagnose-only), as check mode does.
    type: bool
    default: true
  force:
    description: Restart even when the health check passes.
    type: bool
    default: false
  restart_dependencies:
    description: Restart an unhealthy dependency before the service.
    type: bool
    default: true
  stop_timeout:
    description: Seconds a container gets to stop before it is killed (a unit's own C(TimeoutStopSec) bounds it).
    type: int
    default: 30
  stop_wait:
    description: Seconds between stop and start.
    type: float
    default: 1
  verify_probes:
    description: Consecutive healthy probes that make the restart verified (the stabilization window).
    type: int
    default: 3
  verify_interval:
    description: Seconds between verification probes.
    type: float
    default: 1
  verify_timeout:
    description:
      - Seconds an attempt may take to become and stay healthy.
      - On Kubernetes O(stop_timeout) more (a replacement pod may wait for the deleted one to terminate), and
        healthy also means the Deployment settled - its replicas updated and Ready, every pod that is not
        terminating Ready.
    type: float
    default: 10
requirements:
  - systemd (C(systemctl)) for V(systemd) services; the C(docker) CLI (with C(docker compose) v2) for V(docker)
    and V(compose) services.
"""

EXAMPLES = r"""
- name: Restart demo within its budget and verify it
  runbook.remediation.service_recover:
    service: "{{ runbook_services | runbook.remediation.select_service('demo') }}"
    verify_probes: 3
    verify_interval: 0.5
  register: demo_recovery
"""

RETURN = r"""
healthy:
  description: Whether the service answered its health check before anything was done.
  returned: always
  type: bool
  sample: false
state:
  description: The manager's view (see M(runbook.remediation.service_state)).
  returned: when the evidence was gathered
  type: dict
log_tail:
  description: The last log lines before the restart.
  returned: when the evidence was gathered
  type: list
  elements: str
recovered:
  description: Whether the service is healthy over the stabilization window after the last attempt.
  returned: always
  type: bool
  sample: true
escalate:
  description: The restart budget is spent, or a start failed on a taken port, and the service is not healthy -
    a human must look.
  returned: always
  type: bool
  sample: false
port_taken:
  description: A restart failed because another process holds the service's port (the attempts stopped there).
  returned: when a start failed on a taken port
  type: bool
  sample: true
attempts:
  description: Each attempt (attempt, restarted_at, healthy, rounds, elapsed, last_error).
  returned: always
  type: list
  elements: dict
actions:
  description: What was done (or would be, in check mode), one line each.
  returned: always
  type: list
  elements: str
  sample: ["restarted demo (systemd, attempt 1 of at most 3)"]
findings:
  description: What was found on the way (unhealthy dependencies).
  returned: always
  type: list
  elements: str
verification:
  description: The last attempt's verification (healthy, attempts, elapsed, stable_probes, last_error).
  returned: when a restart was made
  type: dict
restarts_in_window:
  description: Restarts in the history within O(budget_window), this call's included.
  returned: always
  type: int
  sample: 1
summary:
  description:
    - The result of the P(runbook.remediation.service_restart#role) role (its fact C(service_restart_result)) -
      service, manager, outcome (V(healthy), V(escalate), V(planned), V(remediated) or V(failed)), message,
      findings, actions, verification and evidence (the manager's state, log_tail, port_holder, dependencies,
      health, restarts_in_window, attempts).
    - Computed here rather than in the role, so a fleet's workers do not compile its templates.
  returned: always
  type: dict
  sample:
    service: demo
    manager: systemd
    outcome: remediated
    message: "remediated: demo restarted and healthy"
    findings: ["health check failed: HTTP status 503, expected 200"]
    actions: ["restarted demo (systemd, attempt 1 of at most 3)"]
    verification: {healthy: true, attempts: 3, elapsed: 1.02, stable_probes: 3, last_error: ""}
    evidence: {active_state: failed, log_tail: ["line 1"], health: {healthy: false}, restarts_in_window: 1,
               attempts: []}
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _health, _service


# After a failed start, the log lines searched for EADDRINUSE: the start's own, not an old incident's.
PORT_LOG_LINES = 10


def restart_and_verify(commands, svc, probe, dead, params):
    """One attempt's restart and stabilization window; returns (healthy, verification)."""
    commands.restart(dead, params['stop_timeout'], params['stop_wait'])
    last = {}

    timeout = params['verify_timeout']
    if svc['manager'] == 'kubernetes':
        # The replacement pod may wait for the deleted one to terminate (a host port, a
        # ReadWriteOnce volume): up to its grace period.
        timeout += params['stop_timeout']

    def check():
        last.update(probe.endpoint(svc))
        if last['healthy'] and svc['manager'] == 'kubernetes' and not commands.settled():
            last.update(healthy=False, error='the Deployment is not settled yet (pods not all Ready)')
        return last['healthy']

    healthy, rounds, elapsed = _health.wait_stable(check, params['verify_probes'], params['verify_interval'],
                                                   timeout)
    return healthy, {'healthy': healthy, 'attempts': rounds, 'elapsed': elapsed,
                     'stable_probes': params['verify_probes'], 'last_error': last.get('error') or ''}


def recover(module, params):
    svc = _service.check_service(params['service'])
    deps = [_service.check_service(dep) for dep in params['dependencies']]
    probe = _service.Prober(params['health_timeout'])
    run = module.run_command
    result = _service.read_state(run, svc, deps, probe, params['state_dir'], params['budget_window'],
                                 params['log_lines'], 'always' if params['force'] else 'auto')
    result.update(recovered=False, escalate=False, attempts=[], actions=[], restarted=False)
    if result['healthy'] and not params['force']:
        return result
    history = _service.read_budget(result['budget_file'], params['budget_window'])
    if len(history) >= params['budget_max']:
        result['escalate'] = True
        return result
    if not params['act'] or module.check_mode:
        result['actions'].append('would restart %s (%s)' % (svc['name'], svc['manager']))
        result['changed'] = module.check_mode and params['act']
        return result

    if params['restart_dependencies']:
        unhealthy = {d['name'] for d in result.get('dependencies', []) if not d['healthy']}
        for dep in deps:
            if dep['name'] not in unhealthy:
                continue
            dep_commands = _service.Commands(run, dep)
            healthy, _verification = restart_and_verify(dep_commands, dep, probe, dep_commands.state()['dead'],
                                                        params)
            result['actions'].append('restarted dependency %s (%s)' % (
                dep['name'], 'healthy again' if healthy else 'still unhealthy'))
            result['changed'] = True

    commands = _service.Commands(run, svc)
    for attempt in range(1, min(params['budget_max'], params['max_attempts']) + 1):
        if len(history) >= params['budget_max']:
            result['escalate'] = True
            break
        # Recorded before acting: a crash half-way still counts against the budget.
        history.append(time.time())
        _service.write_budget(result['budget_file'], history)
        dead = (result.get('state') or {}).get('dead', False) if attempt == 1 else commands.state()['dead']
        healthy, verification = restart_and_verify(commands, svc, probe, dead, params)
        result.update(changed=True, restarted=True, verification=verification)
        result['attempts'].append(dict(verification, attempt=attempt, restarted_at=round(history[-1], 3)))
        result['actions'].append('restarted %s (%s, attempt %d of at most %d)' % (
            svc['name'], svc['manager'], attempt, params['budget_max']))
        if healthy:
            result['recovered'] = True
            break
        # The start failed on a taken port: another restart cannot bind it either. Whatever
        # holds the port is not this service's to stop (a human decides), so stop here.
        logs = commands.logs()
        if svc.get('port') and _service.EADDRINUSE.search('\n'.join(logs[-PORT_LOG_LINES:])):
            holder = commands.port_holder(svc['port'])
            result.update(log_tail=logs, port_holder=holder, port_taken=True, escalate=True)
            result['findings'].append(_service.port_finding(svc['port'], holder))
            break
    else:
        result['escalate'] = len(history) >= params['budget_max']
    result['restarts_in_window'] = len(history)
    return result


def number(value):
    """A number as the role's message showed it: budget_window arrives as a float (3600.0) but the
    role's default is an int, which Jinja's ``~`` printed as 3600."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def summarize(result, params, check_mode):
    """The role's service_restart_result, computed from recover()'s result with the same
    semantics and messages the role's Jinja had (cheaper than templating it on every host)."""
    svc = params['service']
    name = svc.get('name')
    act = not result['healthy'] or params['force']
    planned = check_mode or not params['act']
    recovered = result.get('recovered', False)
    escalate = act and not recovered and result.get('escalate', False)
    if not act:
        outcome = 'healthy'
        message = 'healthy: %s answers its health check, nothing to do' % name
    elif escalate and result.get('port_taken'):
        outcome = 'escalate'
        holder = _service.holder_names(result.get('port_holder') or [])
        message = ('escalate: %s cannot start: its port %s is held by another process (%s); restarting again would '
                   'not help, a human must free the port' % (name, svc.get('port'),
                                                             holder or 'not visible from the target'))
    elif escalate:
        outcome = 'escalate'
        message = ('escalate: %s was restarted %s times in the last %s s (budget %s); not restarting again, '
                   'a human must look' % (name, result.get('restarts_in_window'),
                                          number(params['budget_window']), number(params['budget_max'])))
    elif planned:
        outcome = 'planned'
        message = 'planned: would restart %s (%s)' % (name, svc.get('manager'))
    elif recovered:
        outcome = 'remediated'
        message = 'remediated: %s restarted and healthy' % name
    else:
        outcome = 'failed'
        message = 'failed: %s restarted but did not become healthy' % name
    evidence = dict(result.get('state') or {})
    for key in ('log_tail', 'port_holder', 'dependencies'):
        if key in result:
            evidence[key] = result[key]
    evidence.update(health=result.get('health'), restarts_in_window=result.get('restarts_in_window'),
                    attempts=result.get('attempts', []))
    return {'service': name, 'manager': svc.get('manager'), 'outcome': outcome, 'message': message,
            'findings': result.get('findings', []), 'actions': result.get('actions', []),
            'verification': result.get('verification', {}), 'evidence': evidence}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            _service.argument_spec(),
            budget_max=dict(type='int', default=3),
            max_attempts=dict(type='int', default=3),
            act=dict(type='bool', default=True),
            force=dict(type='bool', default=False),
            restart_dependencies=dict(type='bool', default=True),
            stop_timeout=dict(type='int', default=30),
            stop_wait=dict(type='float', default=1),
            verify_probes=dict(type='int', default=3),
            verify_interval=dict(type='float', default=1),
            verify_timeout=dict(type='float', default=10),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for name in ('budget_max', 'max_attempts', 'verify_probes'):
        if params[name] < 1:
            module.fail_json(msg='service_recover: %s must be at least 1, got %s' % (name, params[name]),
                             error_kind='input')
    for name in ('stop_timeout', 'stop_wait', 'verify_interval', 'verify_timeout', 'budget_window'):
        if params[name] < 0:
            module.fail_json(msg='service_recover: %s must not be negative, got %s' % (name, params[name]),
                             error_kind='input')
    try:
        result = recover(module, params)
    except _service.ServiceError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind)
    except (OSError, ValueError) as exc:
        module.fail_json(msg='service_recover: %s' % exc, exception=traceback.format_exc())
    result['summary'] = summarize(result, params, module.check_mode)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
