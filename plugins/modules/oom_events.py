#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: oom_events

short_description: Find the kernel OOM killer's kills of one service (kernel log and memory cgroup counter)

version_added: 0.1.0

description:
  - Reads the kernel log on the target (C(dmesg), or the kernel messages in the systemd journal) and returns the OOM
    kills whose victim task was in the service's memory cgroup or beneath it, so that another unit's or container's kill
    never counts.
  - With O(unit), finds the systemd unit's memory cgroup as the kernel names it, also when the unit is dead (its slice's
    cgroup plus the unit's name), which is when it matters after an OOM kill.
  - Reads the memory cgroup's C(oom_kill) counter (cgroup v1 C(memory.oom_control), cgroup v2 C(memory.events)) while
    the cgroup exists, that is while the service runs.
  - Returns the host's total memory too, the base of a limit expressed as a share of the host.
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
    platforms: posix

options:
  unit:
    description:
      - A systemd unit, for example V(gateway.service). Its memory cgroup is added to O(cgroups).
      - At least one of O(unit) and O(cgroups) is required.
    type: str
  cgroups:
    description:
      - Memory cgroup paths as the kernel log names them, for example V(/docker/3f2a...) for a Docker container
        (cgroupfs driver) or V(/system.slice/docker-3f2a....scope) (systemd driver).
      - A kill counts when its victim's cgroup (C(task_memcg)) is one of these or lies beneath one.
    type: list
    elements: str
  since:
    description:
      - Only kills at or after this time, in unix seconds. Kills from earlier are counted in RV(older) only.
    type: float
  kernel_log:
    description:
      - Where to read the kernel log, tried in this order; the first that can be read is used.
      - V(dmesg) needs root or C(CAP_SYSLOG) (or C(kernel.dmesg_restrict=0)); V(journal) reads C(journalctl -k) of
        the current boot, which also keeps what the kernel's ring buffer has already overwritten.
    type: list
    elements: str
    choices: [dmesg, journal]
    default: [dmesg, journal]
  cgroup_root:
    description:
      - Where the cgroup file systems are mounted.
    type: path
    default: /sys/fs/cgroup

notes:
  - Kernel log times are seconds since boot; the module turns them into unix seconds with the target's clocks.
  - In a container with its own cgroup namespace the kernel still logs full cgroup paths while systemd inside sees
    shortened ones; pass O(cgroups) as the kernel logs them there.

seealso:
  - module: community.docker.docker_container_info
    description: C(State.OOMKilled) tells whether the kernel killed a container's main process.
  - module: ansible.builtin.systemd_service
    description: C(Result=oom-kill) on cgroup v2 hosts.

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Was gateway.service OOM-killed in the last hour?
  runbook.remediation.oom_events:
    unit: gateway.service
    since: "{{ now(utc=true).timestamp() - 3600 }}"
  register: oom

- name: Say so
  ansible.builtin.debug:
    msg: "{{ oom.count }} OOM kill(s), last of {{ oom.kills[-1].task }} (pid {{ oom.kills[-1].pid }})"
  when: oom.count > 0

- name: The same for a Docker container (cgroupfs driver or systemd driver)
  runbook.remediation.oom_events:
    cgroups:
      - /docker/{{ info.container.Id }}
      - /system.slice/docker-{{ info.container.Id }}.scope
"""

RETURN = r"""
kills:
  description:
    - The matching OOM kills at or after O(since), oldest first.
    - C(time) is in unix seconds, C(uptime) in seconds since boot as the kernel log has it; C(oom_memcg) is the
      cgroup whose limit was hit (the service's own, or a parent's); C(constraint) is V(CONSTRAINT_MEMCG) for a cgroup
      limit and V(CONSTRAINT_NONE) when the whole host ran out of memory.
    - C(total_vm_kb) and C(anon_rss_kb) come from the C(Killed process) line when there is one.
  type: list
  elements: dict
  returned: success
  sample:
    - {"time": 1795551266.8, "uptime": 3540.33, "pid": 14110, "task": "python3", "uid": 997,
       "task_memcg": "/system.slice/runbook-demo.service", "oom_memcg": "/system.slice/runbook-demo.service",
       "constraint": "CONSTRAINT_MEMCG", "total_vm_kb": 517944, "anon_rss_kb": 130156,
       "message": "Memory cgroup out of memory: Killed process 14110 (python3) total-vm:517944kB, ..."}
count:
  description: The number of entries in RV(kills).
  type: int
  returned: success
  sample: 1
older:
  description: Matching kills before O(since), not in RV(kills).
  type: int
  returned: success
  sample: 0
cgroups:
  description: The memory cgroups matched against, O(cgroups) plus the unit's.
  type: list
  elements: str
  returned: success
  sample: ["/system.slice/runbook-demo.service"]
unit_cgroup:
  description: The unit's memory cgroup as the kernel names it.
  type: str
  returned: when O(unit) is set
  sample: /system.slice/runbook-demo.service
kernel_log:
  description: The kernel log source that was read, V(dmesg) or V(journal); V(null) when none could be read.
  type: str
  returned: success
  sample: dmesg
kernel_log_errors:
  description: Why a source could not be read, per source tried and failed.
  type: dict
  returned: success
  sample: {"dmesg": "dmesg: read kernel buffer failed: Operation not permitted"}
oom_kill_counter:
  description:
    - The C(oom_kill) counter of the first of RV(cgroups) whose memory cgroup exists; V(null) when none exists (a dead
      unit or container has no cgroup).
  type: int
  returned: success
  sample: 0
counter_file:
  description: The file RV(oom_kill_counter) was read from.
  type: str
  returned: when RV(oom_kill_counter) is not null
  sample: /sys/fs/cgroup/memory/system.slice/runbook-demo.service/memory.oom_control
mem_total:
  description: The host's total memory in bytes (C(MemTotal) of C(/proc/meminfo)).
  type: int
  returned: success
  sample: 25276063744
boot_time:
  description: The unix time of the monotonic clock's zero, to turn systemd's C(*TimestampMonotonic) values into time.
  type: float
  returned: success
  sample: 1795547726.5
"""

import json
import os
import re
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils._proc import PROC, parse_mem_total, read_text

_DMESG_LINE_RE = re.compile(r'^\[\s*(\d+\.\d+)\]\s?(.*)$')
_OOM_KILL_RE = re.compile(r'oom-kill:(.*)$')
_KILLED_RE = re.compile(r'Killed process (\d+) \(([^)]*)\)(.*)$')
_TASK_IN_RE = re.compile(r'Task in (\S+) killed as a result of limit of (\S+)')
_FIELD_RES = {name: re.compile(r'(?:^|,)%s=([^,]*)' % name)
              for name in ('constraint', 'oom_memcg', 'task_memcg', 'task', 'pid', 'uid')}
_SIZE_RE = re.compile(r'(total-vm|anon-rss):(\d+)kB')
_COUNTER_RE = re.compile(r'^oom_kill\s+(\d+)\s*$', re.M)


def parse_dmesg(text):
    """[(uptime, message)] from dmesg's default output; lines without a time are skipped."""
    records = []
    for line in text.splitlines():
        match = _DMESG_LINE_RE.match(line)
        if match:
            records.append((float(match.group(1)), match.group(2)))
    return records


def _journal_message(value):
    if isinstance(value, list):  # journald sends non-UTF-8 messages as a list of bytes
        return bytes(b for b in value if isinstance(b, int) and 0 <= b < 256).decode('utf-8', 'replace')
    return value if isinstance(value, str) else ''


def parse_journal(text, boot_time):
    """[(uptime, message)] from ``journalctl -o json`` lines (one JSON object per line)."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = _journal_message(entry.get('MESSAGE'))
        if entry.get('_SOURCE_MONOTONIC_TIMESTAMP'):
            uptime = int(entry['_SOURCE_MONOTONIC_TIMESTAMP']) / 1e6
        elif entry.get('__REALTIME_TIMESTAMP'):
            uptime = int(entry['__REALTIME_TIMESTAMP']) / 1e6 - boot_time
        else:
            continue
        records.append((uptime, message))
    return records


def _field(text, name):
    match = _FIELD_RES[name].search(text)
    return match.group(1) if match else None


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def extract_kills(records):
    """OOM kills from kernel log records, oldest first.

    Modern kernels (4.19+) log ``oom-kill:constraint=...,oom_memcg=...,task_memcg=...,task=...,pid=...,uid=...``
    followed by ``... Killed process PID (TASK) total-vm:...kB, anon-rss:...kB, ...``. Older kernels log ``Task in
    CGROUP killed as a result of limit of CGROUP`` before the ``Killed process`` line.
    """
    kills = []
    pending = {}  # pid -> kill from an oom-kill: line, waiting for its Killed process line
    task_in = None  # (task_memcg, oom_memcg) of an old-style "Task in ..." line
    for uptime, message in records:
        match = _OOM_KILL_RE.search(message)
        if match:
            fields = match.group(1)
            kill = {
                'uptime': uptime,
                'pid': _int_or_none(_field(fields, 'pid')),
                'task': _field(fields, 'task'),
                'uid': _int_or_none(_field(fields, 'uid')),
                'task_memcg': _field(fields, 'task_memcg'),
                'oom_memcg': _field(fields, 'oom_memcg'),
                'constraint': _field(fields, 'constraint'),
                'total_vm_kb': None,
                'anon_rss_kb': None,
                'message': message.strip(),
            }
            kills.append(kill)
            pending[kill['pid']] = kill
            continue
        match = _TASK_IN_RE.search(message)
        if match:
            task_in = (match.group(1), match.group(2))
            continue
        match = _KILLED_RE.search(message)
        if not match:
            continue
        pid = int(match.group(1))
        sizes = {key: int(value) for key, value in _SIZE_RE.findall(match.group(3))}
        kill = pending.pop(pid, None)
        if kill is None:
            task_memcg, oom_memcg = task_in or (None, None)
            kill = {
                'uptime': uptime, 'pid': pid, 'task': match.group(2), 'uid': None, 'task_memcg': task_memcg,
                'oom_memcg': oom_memcg,
                'constraint': 'CONSTRAINT_MEMCG' if 'Memory cgroup' in message or task_in else None,
                'total_vm_kb': None, 'anon_rss_kb': None,
            }
            kills.append(kill)
        kill['total_vm_kb'] = sizes.get('total-vm')
        kill['anon_rss_kb'] = sizes.get('anon-rss')
        kill['message'] = message.strip()
        task_in = None
    return kills


def normalize_cgroup(path):
    path = '/' + (path or '').strip().strip('/')
    return path


def cgroup_matches(memcg, cgroups):
    """True when ``memcg`` is one of ``cgroups`` or lies beneath one."""
    if not memcg:
        return False
    memcg = normalize_cgroup(memcg)
    for cgroup in cgroups:
        cgroup = normalize_cgroup(cgroup)
        if cgroup == '/' or memcg == cgroup or memcg.startswith(cgroup + '/'):
            return True
    return False


def slice_path(slice_name):
    """The cgroup path of a systemd slice: ``a-b.slice`` -> ``/a.slice/a-b.slice``; ``-.slice`` -> ``/``."""
    if not slice_name or slice_name == '-.slice':
        return '/'
    stem = slice_name[:-len('.slice')] if slice_name.endswith('.slice') else slice_name
    parts = stem.split('-')
    return '/' + '/'.join('-'.join(parts[:i + 1]) + '.slice' for i in range(len(parts)))


def join_cgroup(*parts):
    return normalize_cgroup('/'.join(part.strip('/') for part in parts if part and part.strip('/')))


def parse_counter(text):
    match = _COUNTER_RE.search(text or '')
    return int(match.group(1)) if match else None


def parse_show(text):
    """``systemctl show`` output of several units: one dict per unit, in order."""
    units, current = [], {}
    for line in (text or '').splitlines():
        if not line.strip():
            if current:
                units.append(current)
                current = {}
            continue
        key, sep, value = line.partition('=')
        if sep:
            current[key] = value
    if current:
        units.append(current)
    return units


class OomEvents:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.boot_time = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)

    def run_command(self, argv):
        return self.module.run_command(argv, environ_update={'LC_ALL': 'C', 'SYSTEMD_PAGER': ''})

    def unit_cgroup(self, unit):
        systemctl = self.module.get_bin_path('systemctl')
        if systemctl is None:
            self.module.fail_json(msg='oom_events: unit %s: systemctl is not installed on the target' % unit,
                                  error_kind='input')
        rc, out, err = self.run_command([systemctl, 'show', '--property=Id,ControlGroup,Slice,LoadState', '--', unit])
        if rc != 0:
            self.module.fail_json(msg='oom_events: systemctl show %s failed: %s' % (unit, (err or out).strip()),
                                  error_kind='unavailable')
        shown = (parse_show(out) or [{}])[0]
        if shown.get('LoadState') == 'not-found':
            self.module.fail_json(msg='oom_events: unit %s is not known to systemd on this host' % unit,
                                  error_kind='input')
        if shown.get('ControlGroup'):
            return normalize_cgroup(shown['ControlGroup'])
        # A dead unit has no cgroup: its slice's cgroup (or the root's, plus the slice path) names where it was.
        slice_name = shown.get('Slice') or 'system.slice'
        rc, out, err = self.run_command([systemctl, 'show', '--property=Id,ControlGroup', '--', slice_name, '-.slice'])
        groups = {item.get('Id'): item.get('ControlGroup') for item in parse_show(out)} if rc == 0 else {}
        if groups.get(slice_name):
            return join_cgroup(groups[slice_name], unit)
        return join_cgroup(groups.get('-.slice') or '/', slice_path(slice_name), unit)

    def read_kernel_log(self):
        errors = {}
        for source in self.params['kernel_log']:
            if source == 'dmesg':
                binary = self.module.get_bin_path('dmesg')
                if binary is None:
                    errors[source] = 'dmesg is not installed'
                    continue
                rc, out, err = self.run_command([binary])
                if rc == 0:
                    return source, parse_dmesg(out), errors
            else:
                binary = self.module.get_bin_path('journalctl')
                if binary is None:
                    errors[source] = 'journalctl is not installed'
                    continue
                argv = [binary, '--dmesg', '--boot', '--output=json', '--no-pager', '--quiet']
                if self.params['since'] is not None:
                    argv.append('--since=@%d' % int(self.params['since']))
                rc, out, err = self.run_command(argv)
                if rc == 0:
                    return source, parse_journal(out, self.boot_time), errors
            errors[source] = ' '.join((err or out or 'exit status %d' % rc).split())
        return None, [], errors

    def counter(self, cgroups):
        root = self.params['cgroup_root']
        for cgroup in cgroups:
            relative = normalize_cgroup(cgroup).lstrip('/')
            candidates = [
                os.path.join(root, 'memory', relative, 'memory.oom_control'),  # cgroup v1
                os.path.join(root, relative, 'memory.events'),  # cgroup v2
                os.path.join(root, 'unified', relative, 'memory.events'),  # hybrid: v2 mounted at unified
            ]
            for path in candidates:
                try:
                    with open(path) as handle:
                        value = parse_counter(handle.read())
                except OSError:
                    continue
                if value is not None:
                    return value, path
        return None, None

    def mem_total(self):
        try:
            return parse_mem_total(read_text(os.path.join(PROC, 'meminfo')))
        except OSError:
            return None

    def run(self):
        cgroups = [normalize_cgroup(c) for c in self.params['cgroups'] or [] if c and c.strip()]
        result = {'changed': False}
        if self.params['unit']:
            unit_cgroup = self.unit_cgroup(self.params['unit'])
            result['unit_cgroup'] = unit_cgroup
            if unit_cgroup not in cgroups:
                cgroups.insert(0, unit_cgroup)
        if not cgroups:
            self.module.fail_json(msg='oom_events: no cgroup to look for: give unit or cgroups', error_kind='input')

        source, records, errors = self.read_kernel_log()
        if source is None:
            self.module.warn('oom_events: could not read the kernel log (%s); only the cgroup counter was checked'
                             % '; '.join('%s: %s' % item for item in errors.items()))
        since = self.params['since']
        kills, older = [], 0
        for kill in extract_kills(records):
            if not cgroup_matches(kill['task_memcg'], cgroups):
                continue
            kill['time'] = round(self.boot_time + kill['uptime'], 3)
            if since is not None and kill['time'] < since:
                older += 1
                continue
            kills.append(kill)

        counter, counter_file = self.counter(cgroups)
        result.update(kills=kills, count=len(kills), older=older, cgroups=cgroups, kernel_log=source,
                      kernel_log_errors=errors, oom_kill_counter=counter, mem_total=self.mem_total(),
                      boot_time=round(self.boot_time, 3))
        if counter_file:
            result['counter_file'] = counter_file
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type='str'),
            cgroups=dict(type='list', elements='str'),
            since=dict(type='float'),
            kernel_log=dict(type='list', elements='str', choices=['dmesg', 'journal'], default=['dmesg', 'journal']),
            cgroup_root=dict(type='path', default='/sys/fs/cgroup'),
        ),
        required_one_of=[('unit', 'cgroups')],
        supports_check_mode=True,
    )
    try:
        result = OomEvents(module).run()
    except (OSError, ValueError) as exc:
        module.fail_json(msg='oom_events: %s' % exc, error_kind='unavailable', exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
