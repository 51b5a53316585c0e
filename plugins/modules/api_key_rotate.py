#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: api_key_rotate
short_description: Rotate a service's API key, restart its consumers, verify, or put the old key back
version_added: 0.1.0
description:
  - Generates a new key (Python C(secrets), O(key_bytes) random bytes, URL-safe), writes it into the env file the
    service reads (systemd C(EnvironmentFile=), Compose C(env_file)) atomically with mode 0600 and the file's owner,
    restarts the service and every consumer in O(consumers), then verifies within O(verify_timeout) that the new key
    is accepted on O(verify_url), the old one refused (HTTP 401 or 403), and the service and every consumer healthy.
  - When verification fails, puts the previous file back, restarts them all again and checks the old key works;
    the result says C(rotated=false) and whether the restore held (the role escalates).
  - No key is ever returned, logged or written anywhere but the env file. The action plugin writes the new key to
    O(key_file) on the controller when asked (mode 0600, vault-encrypted with O(vault_password_file)).
  - One module call on the target (the Docker host for container services).
author:
  - runbook.remediation maintainers (@runbook-remediation)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: The action plugin runs the module and writes O(key_file) on the controller.
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: In check mode the env file is read and checked, nothing is written or restarted.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  service:
    description: The service that checks the key (an item of C(runbook_services), secrets left out).
    type: dict
    required: true
  consumers:
    description: Descriptions of the services that use the key (restarted after the service, each must be healthy).
    type: list
    elements: dict
    default: []
  env_file:
    description: The env file holding the key (C(NAME=value) lines), shared by the service and its consumers.
    type: path
    required: true
  variable:
    description: The variable holding the key in O(env_file).
    type: str
    default: API_KEY
  verify_url:
    description: A URL of the service that needs the key; sent with C(X-API-Key) (and C(Authorization) C(Bearer)).
    type: str
    required: true
  min_interval:
    description:
      - Seconds after a rotation during which another is not made (the module's idempotence - a repeated request
        finds the key just rotated and changes nothing). The rotation time is the comment line the module leaves
        in O(env_file). V(0) rotates whenever asked.
    type: float
    default: 300
  key_bytes:
    description: Random bytes in the new key.
    type: int
    default: 32
  verify_timeout:
    description: Seconds to wait for the new key to work and every consumer to be healthy.
    type: float
    default: 20
  stop_timeout:
    description: Seconds for a graceful stop of each service.
    type: int
    default: 10
  health_timeout:
    description: Seconds per health probe or key check.
    type: float
    default: 3
  key_file:
    description:
      - A file on the controller that receives the new key (mode 0600); the action plugin writes it. Never inside
        the runbook state directory. Empty - the key exists only in O(env_file).
    type: path
  vault_password_file:
    description: Encrypt O(key_file) with Ansible Vault using the password in this controller file.
    type: path
notes:
  - "Run the task with C(no_log=true) - nothing secret is returned, but the task's arguments are shown otherwise."
seealso:
  - module: runbook.remediation.service_state
"""

EXAMPLES = r"""
- name: Rotate the API key of api and restart app and worker
  runbook.remediation.api_key_rotate:
    service: "{{ runbook_services | runbook.remediation.select_service('api') }}"
    consumers:
      - "{{ runbook_services | runbook.remediation.select_service('app') }}"
      - "{{ runbook_services | runbook.remediation.select_service('worker') }}"
    env_file: /etc/api/api.env
    variable: API_KEY
    verify_url: http://127.0.0.1:8080/api/work
    key_file: /srv/secrets/api.key
  no_log: true
"""

RETURN = r"""
recent:
  description: The key was rotated less than O(min_interval) seconds ago; nothing was done.
  returned: success
  type: bool
  sample: false
last_rotation_age:
  description: Seconds since the last rotation recorded in O(env_file) (null when none is).
  returned: success
  type: float
  sample: 12.5
rotated:
  description: Whether the new key is in place and verified.
  returned: success
  type: bool
  sample: true
restored:
  description: After a failed verification, whether the previous key was put back and works again.
  returned: success
  type: bool
  sample: false
verification:
  description: What the check after the rotation saw (HTTP statuses, health), never a key.
  returned: success
  type: dict
  sample: {"new_key_status": 200, "old_key_status": 401, "service_healthy": true,
           "consumers_healthy": {"app": true, "worker": true}}
actions:
  description: What was done, one line each.
  returned: always
  type: list
  elements: str
findings:
  description: What went wrong, one line each.
  returned: always
  type: list
  elements: str
key_file:
  description: Where the action plugin wrote the new key.
  returned: when O(key_file) is set and the key rotated
  type: str
"""

import re
import time
import traceback
import urllib.error

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.runbook.remediation.plugins.module_utils import _keys, _service


def key_status(timeout):
    def status(url, key):
        headers = {'X-API-Key': key, 'Authorization': 'Bearer ' + key}
        try:
            response = open_url(url, headers=headers, timeout=timeout, follow_redirects='none')
            try:
                return response.status
            finally:
                response.close()
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None
    return status


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type='dict', required=True),
            consumers=dict(type='list', elements='dict', default=[]),
            env_file=dict(type='path', required=True),
            variable=dict(type='str', default='API_KEY'),
            verify_url=dict(type='str', required=True),
            key_bytes=dict(type='int', default=32, no_log=False),
            min_interval=dict(type='float', default=300),
            verify_timeout=dict(type='float', default=20),
            stop_timeout=dict(type='int', default=10),
            health_timeout=dict(type='float', default=3),
            key_file=dict(type='path'),
            vault_password_file=dict(type='path', no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        svc = _service.check_service(p['service'])
        consumers = [_service.check_service(c) for c in p['consumers']]
        if not _keys.VARIABLE_RE.match(p['variable']):
            raise _keys.RotationError('variable must be a shell variable name, not %r' % p['variable'], 'input')
        if not re.match(r'^https?://[^/\s]+', p['verify_url']):
            raise _keys.RotationError('verify_url must be an http(s) URL', 'input')
        if not 16 <= p['key_bytes'] <= 256:
            raise _keys.RotationError('key_bytes must be between 16 and 256', 'input')
        try:
            text, old = _keys.read_env(p['env_file'], p['variable'])
        except OSError as exc:
            raise _keys.RotationError('cannot read the key file %s: %s' % (p['env_file'], exc.strerror or exc),
                                      'input') from None
        last = _keys.last_rotation(text, p['variable'])
        age = None if last is None else max(0.0, time.time() - last)
        if age is not None and age < p['min_interval']:
            module.exit_json(changed=False, rotated=False, restored=False, recent=True, last_rotation_age=age,
                             verification={}, findings=[], actions=[])
        if module.check_mode:
            if not old:
                raise _keys.RotationError('%s does not set %s: nothing to rotate' % (p['env_file'], p['variable']),
                                          'input')
            module.exit_json(changed=False, rotated=False, restored=False, recent=False, last_rotation_age=age,
                             verification={}, findings=[],
                             actions=['would write a new %s to %s and restart %s' % (
                                 p['variable'], p['env_file'], ', '.join(s['name'] for s in [svc, *consumers]))])
        rotation = _keys.Rotation(module.run_command, key_status(p['health_timeout']),
                                  _service.Prober(p['health_timeout']), svc, consumers, p['env_file'], p['variable'],
                                  p['verify_url'], p['verify_timeout'], p['stop_timeout'])
        result = rotation.rotate(p['key_bytes'])
    except (_keys.RotationError, _service.ServiceError) as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind)
    except OSError as exc:
        module.fail_json(msg='api_key_rotate: %s' % (exc.strerror or exc), exception=traceback.format_exc())
    module.exit_json(changed=True, actions=rotation.actions, findings=rotation.findings, recent=False,
                     last_rotation_age=age, **result)


if __name__ == '__main__':
    main()
