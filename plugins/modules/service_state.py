#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: service_state
short_description: Read a service's health, manager state, last logs and restart budget in one call
version_added: 0.1.0
description:
  - Probes the service's C(health_url) (with C(health_jmespath) when given) and, when it is unhealthy (or
    O(evidence=always)), gathers the evidence an on-call engineer looks at first - the systemd unit's state and
    result (C(systemctl show)) or the container's state, exit code and OOMKilled flag (C(docker inspect)), the last
    log lines (C(journalctl), C(docker logs)), the holder of the service's C(port) when the logs say
    C(EADDRINUSE), and the health of its dependencies.
  - Reads the restart history the M(runbook.remediation.service_recover) module keeps on the target.
  - One module call, one round trip - the read half of the P(runbook.remediation.service_restart#role) role.
  - Never changes anything.
author:
  - runbook.remediation maintainers (@runbook-remediation)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - runbook.remediation.service
attributes:
  check_mode:
    support: full
    details: The module only reads; it reads in check mode as well.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  evidence:
    description:
      - When to gather the manager's state, the logs and the dependencies' health. V(auto) when the health check
        fails.
    type: str
    choices: [auto, always, never]
    default: auto
requirements:
  - systemd (C(systemctl), C(journalctl)) for V(systemd) services; the C(docker) CLI (with C(docker compose) v2)
    for V(docker) and V(compose) services.
"""

EXAMPLES = r"""
- name: Read the service's state
  runbook.remediation.service_state:
    service: "{{ runbook_services | runbook.remediation.select_service('demo') }}"
  register: demo_state

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ demo_state.findings }}"
  when: not demo_state.healthy
"""

RETURN = r"""
healthy:
  description: Whether the service answered its health check.
  returned: always
  type: bool
  sample: false
health:
  description: The probe (url, healthy, status, latency_ms, failing_components, error), without the body.
  returned: always
  type: dict
  sample: {"url": "http://127.0.0.1:8080/health", "healthy": false, "status": null, "error": "connection refused"}
state:
  description:
    - The manager's view. systemd - unit, active_state, sub_state, result, exit_status, started_at, main_pid, restarts,
      oom_killed, dead. docker and compose - container, container_id, status, exit_code, oom_killed, started_at,
      finished_at, restart_count, dead.
  returned: when the evidence was gathered
  type: dict
  sample: {"unit": "demo.service", "active_state": "failed", "result": "exit-code", "dead": true}
log_tail:
  description: The last O(log_lines) log lines.
  returned: when the evidence was gathered
  type: list
  elements: str
port_holder:
  description: What listens on the service's port (C(ss) lines), when the logs say EADDRINUSE.
  returned: when found
  type: list
  elements: str
dependencies:
  description: The health of each dependency (name, healthy, error).
  returned: when the evidence was gathered
  type: list
  elements: dict
restarts_in_window:
  description: Restarts recorded within O(budget_window).
  returned: always
  type: int
  sample: 1
budget_file:
  description: The restart history's path on the target.
  returned: always
  type: str
  sample: /var/lib/runbook-remediation/restarts-demo@demo.service.json
findings:
  description: What was found, one line each.
  returned: always
  type: list
  elements: str
  sample: ["health check failed: connection refused", "unit demo.service is failed (failed, result exit-code)"]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _service


def main():
    module = AnsibleModule(argument_spec=dict(_service.argument_spec(),
                                              evidence=dict(type='str', choices=['auto', 'always', 'never'],
                                                            default='auto')),
                           supports_check_mode=True)
    params = module.params
    try:
        svc = _service.check_service(params['service'])
        deps = [_service.check_service(dep) for dep in params['dependencies']]
        result = _service.read_state(module.run_command, svc, deps, _service.Prober(params['health_timeout']),
                                     params['state_dir'], params['budget_window'], params['log_lines'],
                                     params['evidence'])
    except _service.ServiceError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind)
    except (OSError, ValueError) as exc:
        module.fail_json(msg='service_state: %s' % exc, exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
