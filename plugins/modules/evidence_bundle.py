#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: evidence_bundle
short_description: Preserve a service's security evidence as one archive on the controller, with a sha256 manifest
version_added: 0.1.0
description:
  - Reads, in one call on the target, what an investigator asks for first - the process list, listening and
    established sockets, the open files of the service's main process, logged-in users, the recent auth log (the
    file, else the journal's auth facilities), the service's security log, the unit's state and journal (or the
    container's C(docker inspect) and logs), and checksums (sha256, size, mode, owner, mtime) of the service's
    executables and configuration.
  - For V(docker) and V(compose) services the process, socket, file and checksum collectors run inside the
    container (C(docker exec)); the container's environment is kept as variable names only.
  - Writes one C(tar.gz) archive on the controller, under O(dest), holding every item, a C(collection.json) (what
    ran, with its exit status) and a C(MANIFEST.sha256) of every member; the archive's own sha256 is written next to
    it (C(.sha256)) and returned, so the incident timeline records it (chain of custody).
  - Never changes the target, not even a temporary file. Runs in check mode too (the archive is the controller's).
author:
  - runbook.remediation maintainers (@runbook-remediation)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: The action plugin runs the collection on the target and writes the archive on the controller.
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Nothing on the target is ever changed, so the evidence is collected in check mode as well.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  service:
    description:
      - The service description, an item of the inventory's C(runbook_services) (secrets left out).
      - Needs C(name), C(manager) (V(systemd), V(docker), V(compose) or V(kubernetes)), C(health_url) and, by
        manager, C(unit), C(container), C(project_src) or C(deployment) (with C(namespace), C(context), C(kubeconfig)).
      - A Kubernetes Deployment's evidence is its JSON, its ReplicaSets' and pods' (every container environment value
        and the last-applied annotation replaced - they may hold secrets), the namespace's events, the pods' logs of
        the last hour and of the previous containers, and C(kubectl top) where a metrics server answers.
      - C(logs) (globs) name the directories where its C(security.log) is looked for.
    type: dict
    required: true
  dest:
    description:
      - Directory on the controller for the archive (created mode 0700). The archive is
        C(<inventory_hostname>-<service>-<UTC stamp>.tar.gz), mode 0600.
      - Default C(evidence/) in the runbook state directory (C($RUNBOOK_STATE_DIR), else
        C(~/.local/state/runbook)).
    type: path
  log_lines:
    description: Lines kept of each log (journal, auth log, security log).
    type: int
    default: 200
  max_bytes:
    description: Largest single item kept, in bytes (logs keep their end, listings their start).
    type: int
    default: 1048576
  paths:
    description: More files on the target (inside the container for container services) to checksum.
    type: list
    elements: path
    default: []
  security_logs:
    description:
      - The service's security logs. Default C(security.log) in the directory of each of the service's C(logs) globs.
    type: list
    elements: path
    default: []
requirements:
  - On the target - C(ps), C(ss), C(who), C(lsof) (else C(/proc/PID/fd) is listed), C(systemctl) and C(journalctl)
    for V(systemd) services; the C(docker) CLI for V(docker) and V(compose) services, with C(sha256sum) and C(tail)
    in the container.
notes:
  - The archive holds the service's logs and process command lines; keep it where incident data may be kept.
seealso:
  - module: runbook.remediation.service_state
"""

EXAMPLES = r"""
- name: Preserve the evidence before containment
  runbook.remediation.evidence_bundle:
    service: "{{ runbook_services | runbook.remediation.select_service('demo') }}"
    dest: /srv/incidents/INC-20261203-0001
  register: evidence

- name: Show where it is and its hash
  ansible.builtin.debug:
    msg: "{{ evidence.archive }} sha256 {{ evidence.sha256 }}"
"""

RETURN = r"""
archive:
  description: The archive on the controller.
  returned: success
  type: str
  sample: /root/.local/state/runbook/evidence/lab-1-demo-20261203T131500Z.tar.gz
sha256:
  description: The archive's sha256 (also in C(<archive>.sha256)).
  returned: success
  type: str
  sample: 3b1f0c2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e9f
size:
  description: The archive's size in bytes.
  returned: success
  type: int
  sample: 48213
manifest:
  description: The sha256 of each member, as in its C(MANIFEST.sha256).
  returned: success
  type: dict
  sample: {"lab-1/processes.txt": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
items:
  description: Each item collected - name, source (the command or file), rc, bytes, truncated.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "processes", "source": "ps -eww -o pid,ppid,user,lstart,etimes,stat,rss,args", "rc": 0,
            "bytes": 2314, "truncated": false}]
checksums:
  description: The checksummed executables and configuration files (path, sha256, size, mode, uid, gid, mtime).
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/usr/bin/python3", "where": "host", "sha256": "4a5b...", "size": 6831736, "mode": "0755"}]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _evidence, _service


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type='dict', required=True),
            dest=dict(type='path'),
            log_lines=dict(type='int', default=200),
            max_bytes=dict(type='int', default=_evidence.DEFAULT_MAX_BYTES),
            paths=dict(type='list', elements='path', default=[]),
            security_logs=dict(type='list', elements='path', default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        svc = _service.check_service(params['service'])
        collector = _evidence.Collector(module.run_command, svc, params['log_lines'], params['max_bytes'],
                                        params['paths'], params['security_logs'])
        result = collector.collect()
    except _service.ServiceError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind)
    except (OSError, ValueError) as exc:
        module.fail_json(msg='evidence_bundle: %s' % exc, exception=traceback.format_exc())
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
