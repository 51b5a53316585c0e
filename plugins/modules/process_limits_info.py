#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: process_limits_info

short_description: Read a process's resource limits, its open file descriptors and the platform's ceilings

version_added: 0.1.0

description:
  - Reads C(/proc/PID/limits) and counts the entries of C(/proc/PID/fd) of one process, the way an on-call engineer
    compares C(ulimit -n) with C(ls /proc/PID/fd | wc -l).
  - Reads the platform ceilings that bound how far a limit can be raised for that process - the kernel's
    C(fs.nr_open) and the hard limits of the processes that set the limit (O(supervisors)), for example systemd as
    PID 1 (it silently caps C(LimitNOFILE=) at its own hard limit when it lacks C(CAP_SYS_RESOURCE)) or C(dockerd)
    (it cannot give a container a ulimit above its own hard limit without C(CAP_SYS_RESOURCE)).
  - Never changes anything; C(changed) is always V(false).

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes

attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it reads in check mode as well.
  diff_mode:
    support: none
  platform:
    platforms: linux

options:
  pid:
    description:
      - The process to read, as the target host numbers it (for a container's main process on the Docker host, the
        container's C(State.Pid)).
      - Omit it to read only the kernel's values and the O(supervisors).
    type: int
  supervisors:
    description:
      - Processes whose hard limits bound the limits the O(pid) can be given.
      - V(init) is PID 1 (systemd on a systemd host or in a systemd container); any other value is a process name as in
        C(/proc/PID/comm) (for example V(dockerd)), and every process of that name is read.
      - A supervisor that lacks C(CAP_SYS_RESOURCE) in its effective capabilities cannot set a hard limit above its
        own, so its hard limits become ceilings. One that has it is bounded by the kernel only.
      - A name that matches no process is reported in RV(supervisors) with C(found=false) and a warning; it does not
        fail the module.
    type: list
    elements: str
    default: []
  count_fds:
    description:
      - Count the open file descriptors of O(pid) (an entry per descriptor in C(/proc/PID/fd)).
    type: bool
    default: true

notes:
  - Reading another user's C(/proc/PID/fd) needs root (C(become=true)).
  - Limits are reported under the names C(limits.conf) and C(systemd) use (V(nofile), V(nproc), V(core), V(as), ...);
    V(-1) stands for C(unlimited).

seealso:
  - module: community.general.pam_limits
  - module: community.docker.docker_container_info

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Read the limits of a systemd unit's main process and systemd's ceiling
  runbook.remediation.process_limits_info:
    pid: "{{ unit.status.MainPID | int }}"
    supervisors: [init]
  register: limits

- name: Show how full the descriptor table is
  ansible.builtin.debug:
    msg: >-
      {{ limits.process.open_fds }} of {{ limits.process.limits.nofile.soft }} open,
      ceiling {{ limits.ceilings.nofile.value }} ({{ limits.ceilings.nofile.reason }})

- name: Read a container's main process on the Docker host, with dockerd's ceiling
  runbook.remediation.process_limits_info:
    pid: "{{ container.container.State.Pid }}"
    supervisors: [dockerd]
  become: true
"""

RETURN = r"""
process:
  description:
    - The process O(pid).
  type: dict
  returned: when O(pid) is given
  contains:
    pid:
      description: Its process ID.
      type: int
      sample: 94
    comm:
      description: Its name (C(/proc/PID/comm)).
      type: str
      sample: python3
    uid:
      description: Its real user ID.
      type: int
      sample: 999
    user:
      description: The name of that user, or V(null) when the target does not know it.
      type: str
      sample: runbook-demo
    started_at:
      description: When it started, in seconds since the epoch (from C(/proc/PID/stat) and the boot time).
      type: float
      sample: 1795983921.52
    limits:
      description:
        - Every limit of C(/proc/PID/limits) by its C(limits.conf) name, each with C(soft) and C(hard); V(-1) is
          unlimited.
      type: dict
      sample: {"nofile": {"soft": 1024, "hard": 1024}, "nproc": {"soft": 96364, "hard": 96364}}
    cap_sys_resource:
      description: Whether it has C(CAP_SYS_RESOURCE) in its effective capabilities.
      type: bool
      sample: false
    open_fds:
      description: How many file descriptors it has open, or V(null) when O(count_fds=false).
      type: int
      sample: 1016
    fd_usage:
      description: RV(process.open_fds) divided by the soft C(nofile) limit (V(0.0) to V(1.0)), or V(null).
      type: float
      sample: 0.992
kernel:
  description:
    - System-wide values from C(/proc/sys).
  type: dict
  returned: always
  contains:
    nr_open:
      description: C(fs.nr_open), the most file descriptors any process may have.
      type: int
      sample: 1048576
    file_max:
      description: C(fs.file-max), the most open files of the whole system.
      type: int
      sample: 9223372036854775807
    file_nr:
      description: Open files of the whole system now (first field of C(fs.file-nr)).
      type: int
      sample: 2912
supervisors:
  description:
    - One entry per process found for each O(supervisors) item, or one with C(found=false) when none was.
  type: list
  elements: dict
  returned: always
  sample:
    - {"name": "init", "found": true, "pid": 1, "comm": "systemd", "cap_sys_resource": false,
       "limits": {"nofile": {"soft": 20000, "hard": 20000}, "nproc": {"soft": 96364, "hard": 96364}}}
ceilings:
  description:
    - The highest C(nofile) and C(nproc) the platform lets O(pid) be given, and what sets each.
    - C(value) is V(-1) when nothing but the kernel's unlimited bounds it (C(nproc) without a capped supervisor).
  type: dict
  returned: always
  sample:
    nofile: {"value": 20000, "reason": "hard limit of systemd (pid 1), which lacks CAP_SYS_RESOURCE"}
    nproc: {"value": 96364, "reason": "hard limit of systemd (pid 1), which lacks CAP_SYS_RESOURCE"}
"""

import errno
import os
import pwd
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.runbook.remediation.plugins.module_utils import _proc
from ansible_collections.runbook.remediation.plugins.module_utils._proc import (
    PROC,
    UNLIMITED,
    boot_time,
    parse_limits,
    start_epoch,
)

CAP_SYS_RESOURCE = 24


class ProcessGone(Exception):
    """The process does not exist (any more)."""


def has_capability(cap_eff, capability):
    return bool(cap_eff >> capability & 1)


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def read_process(pid, proc=PROC, count_fds=True):
    """The documented ``process`` dict of ``pid``. Raises ProcessGone when it does not exist."""
    try:
        limits = parse_limits(_proc.read_text(_proc.pid_path(pid, 'limits', proc)))
        status = _proc.read_status(pid, proc)
        comm = _proc.read_comm(pid, proc)
        started = start_epoch(_proc.read_text(_proc.pid_path(pid, 'stat', proc)), boot_time(proc),
                              os.sysconf('SC_CLK_TCK'))
        open_fds = _proc.fd_count(pid, proc) if count_fds else None
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            raise ProcessGone('process %s does not exist (any more)' % pid) from None
        raise
    soft = limits.get('nofile', {}).get('soft', UNLIMITED)
    usage = None
    if open_fds is not None and soft > 0:
        usage = round(open_fds / float(soft), 3)
    uid = status.uid
    return {
        'pid': int(pid),
        'comm': comm,
        'uid': uid,
        'user': _user_name(uid) if uid is not None else None,
        'started_at': started,
        'limits': limits,
        'cap_sys_resource': has_capability(status.cap_eff, CAP_SYS_RESOURCE),
        'open_fds': open_fds,
        'fd_usage': usage,
    }


def find_pids(name, proc=PROC):
    """PIDs whose ``comm`` is ``name``; ``init`` is PID 1."""
    if name == 'init':
        return [1]
    pids = []
    for pid in _proc.pids(proc):
        try:
            if _proc.read_comm(pid, proc) == name:
                pids.append(pid)
        except (IOError, OSError):
            continue  # exited while we looked
    return sorted(pids)


def read_supervisors(names, proc=PROC):
    supervisors = []
    for name in names:
        found = False
        for pid in find_pids(name, proc):
            try:
                info = read_process(pid, proc, count_fds=False)
            except ProcessGone:
                continue
            found = True
            supervisors.append({
                'name': name,
                'found': True,
                'pid': info['pid'],
                'comm': info['comm'],
                'cap_sys_resource': info['cap_sys_resource'],
                'limits': {key: info['limits'][key] for key in ('nofile', 'nproc') if key in info['limits']},
            })
        if not found:
            supervisors.append({'name': name, 'found': False})
    return supervisors


def compute_ceilings(nr_open, supervisors):
    """The highest nofile / nproc the platform allows, and which value sets it.

    nofile is bounded by fs.nr_open; both are bounded by the hard limit of every supervisor
    that lacks CAP_SYS_RESOURCE (it cannot raise a hard limit above its own).
    """
    candidates = {'nofile': [(nr_open, 'fs.nr_open')], 'nproc': []}
    for sup in supervisors:
        if not sup.get('found') or sup.get('cap_sys_resource'):
            continue
        for item in ('nofile', 'nproc'):
            hard = sup.get('limits', {}).get(item, {}).get('hard', UNLIMITED)
            if hard != UNLIMITED:
                reason = 'hard limit of %s (pid %d), which lacks CAP_SYS_RESOURCE' % (sup['comm'], sup['pid'])
                candidates[item].append((hard, reason))
    ceilings = {}
    for item, values in candidates.items():
        if values:
            value, reason = min(values, key=lambda pair: pair[0])
        else:
            value, reason = UNLIMITED, 'no supervisor caps it'
        ceilings[item] = {'value': value, 'reason': reason}
    return ceilings


def read_kernel(proc=PROC):
    return {key: _proc.read_sys_number(name, proc)
            for key, name in (('nr_open', 'fs/nr_open'), ('file_max', 'fs/file-max'), ('file_nr', 'fs/file-nr'))}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pid=dict(type='int'),
            supervisors=dict(type='list', elements='str', default=[]),
            count_fds=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    pid = module.params['pid']
    if pid is not None and pid <= 0:
        module.fail_json(msg='process_limits_info: pid must be a positive process ID, got %d '
                             '(a stopped unit or container has no main process)' % pid)

    result = dict(changed=False)
    try:
        if pid is not None:
            result['process'] = read_process(pid, count_fds=module.params['count_fds'])
        result['kernel'] = read_kernel()
        result['supervisors'] = read_supervisors(module.params['supervisors'])
    except ProcessGone as exc:
        module.fail_json(msg='process_limits_info: %s; did the service stop or restart?' % to_native(exc))
    except (IOError, OSError) as exc:
        hint = ' (reading another user\'s /proc entries needs root: become: true)' if exc.errno == errno.EACCES else ''
        module.fail_json(msg='process_limits_info: cannot read %s: %s%s' % (exc.filename, exc.strerror, hint),
                         exception=traceback.format_exc())
    except ValueError as exc:
        module.fail_json(msg='process_limits_info: unexpected /proc contents: %s' % to_native(exc),
                         exception=traceback.format_exc())

    for sup in result['supervisors']:
        if not sup['found']:
            module.warn('no process named %s runs on this host: its limits are not part of the ceilings' % sup['name'])
    result['ceilings'] = compute_ceilings(result['kernel']['nr_open'], result['supervisors'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
