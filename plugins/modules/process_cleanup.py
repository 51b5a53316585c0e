#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: process_cleanup

short_description: Stop leaked worker processes (such as LibreOffice) of one service, safely, and free what they left

version_added: 0.1.0

description:
  - Finds the processes whose executable is one of O(executables), within a scope (O(user), O(tree), O(cgroup)),
    selects the stale ones - older than O(max_age), beyond O(max_count) (oldest first), unresponsive on their listener
    port (O(probe)), orphaned (O(include_orphans)) or zombies held by their launcher - and stops them with
    C(SIGTERM), a grace period (O(grace)), then C(SIGKILL).
  - Made for the seeds' "LibreOffice process leak", whose runbook says C(pkill -9 soffice). That kills every process
    whose name merely contains C(soffice), of every user, young and busy ones included, and leaves their profile and
    temporary directories behind. This module matches the executable exactly (the basename of C(/proc/PID/exe), not
    the command line or the name a process gives itself), never leaves the scope, and says why it kept each process.
  - Reads C(/proc) directly (standard library only, no C(psutil) needed on the target).
  - A launcher (O(launchers), LibreOffice's C(oosplash)) is stopped together with its child when the child is
    selected, and only then.
  - Signals go through a pidfd where the kernel and Python offer one (Linux 5.3, Python 3.9), checked against the
    process's start time first, so a PID that was reused meanwhile is never signalled.
  - With O(remove_profiles), once a selected process is gone, removes what it leaves behind, and only what can be
    attributed to it - its C(-env:UserInstallation) profile directory when it lies inside O(profile_roots), is owned
    by the process's user and is reached through no symbolic link; its C(lu<PID>*.tmp) directories in its temporary
    directory; its stale C(OSL_PIPE_<uid>_SingleOfficeIPC_<hash>) socket in C(/tmp). Anything still open or used by a
    live process, or not attributable with certainty, is kept and reported.
  - Reports every process selected and why, every PID stopped and the signal that ended it, the resident memory freed,
    every process kept and why, and every path removed or kept.

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes

attributes:
  check_mode:
    support: full
    details:
      - In check mode no signal is sent and nothing is removed; RV(selected) is the plan and RV(rss_freed_bytes) what
        would be freed. Probes (O(probe)) still connect, as they only read.
  diff_mode:
    support: none
  platform:
    platforms: linux
    details:
      - Reads C(/proc). Run it as root (C(become=true)) to read other users' executables and signal their processes.

options:
  executables:
    description:
      - Basenames of the executables to match, compared exactly with the basename of C(/proc/PID/exe), for example
        V(soffice.bin). A process whose executable is C(soffice.bin.bak), or a script called C(soffice) (its executable
        is the shell), does not match.
      - A zombie has no executable any more; it matches when its name (C(/proc/PID/stat)) equals one of these exactly.
      - Must not be empty.
    type: list
    elements: str
    required: true
  launchers:
    description:
      - Those of O(executables) that only start and wait for the worker, for example V(oosplash) for LibreOffice's
        C(soffice.bin).
      - A launcher goes when every matching child it has is selected; a launcher without a matching child is judged
        like any worker. A worker whose parent is PID 1 has lost its launcher (RV(selected[].reasons) C(orphaned)).
    type: list
    elements: str
    default: []
  user:
    description:
      - Only processes whose real user is this user (a name or a numeric uid).
      - At least one of O(user), O(tree), O(cgroup) and O(container) is required. When several are given, a process
        must satisfy all.
    type: str
  tree:
    description:
      - Only descendants of this process (its children, their children...), never the process itself. For example the
        service's main PID.
      - Orphans have been reparented to PID 1 and are therefore no longer in the tree; prefer O(cgroup) to catch them.
      - V(1) is refused (that would be every process).
    type: int
  cgroup:
    description:
      - Only processes in this systemd unit's cgroup, for example V(converter.service) (a path component of
        C(/proc/PID/cgroup)). systemd keeps a unit's orphans in its cgroup, so they stay in scope.
    type: str
  container:
    description:
      - The full ID of the service's container, when the module runs inside it (the C(community.docker.docker)
        connection). Its PID namespace holds the container's processes only, all of them the service's, so no other
        scope is needed; O(user) and O(tree) still narrow it when given.
      - Refused unless the module runs in that very container (the ID names the directory the engine bind-mounts the
        container's C(/etc/hostname) from, in C(/proc/self/mountinfo)), so it can never take in every process of a
        host, nor of another container.
    type: str
  max_age:
    description:
      - Select instances older than this many seconds. Omit to leave age out of the selection.
    type: int
  max_count:
    description:
      - Keep at most this many live instances (a worker with its launcher counts once). Among those not selected for
        another reason, the youngest O(max_count) stay and the older ones are selected. V(0) selects all of them.
      - Omit to leave the count out of the selection.
    type: int
  probe:
    description:
      - Probe each instance not selected otherwise on its listener port - from C(--accept=socket,host=H,port=P) in its
        command line, or else the TCP port it listens on according to C(/proc/PID/net/tcp) - and select it when the
        connection is refused or times out.
      - Instances younger than O(probe_min_age) are not probed (they may still be starting).
    type: bool
    default: false
  probe_timeout:
    description: Seconds to wait for the connection (and the greeting, see O(probe_greeting)).
    type: float
    default: 5
  probe_greeting:
    description:
      - Also require the listener to send its first bytes within O(probe_timeout). LibreOffice's URP bridge sends its
        protocol properties as soon as a client connects; the kernel still accepts connections for a hung process,
        so a bare connect cannot tell a hung listener from a live one.
    type: bool
    default: true
  probe_min_age:
    description: Do not probe instances younger than this many seconds.
    type: int
    default: 60
  include_orphans:
    description:
      - Select workers whose launcher is gone (their parent is PID 1 while O(launchers) is not empty).
      - Leave it off when the service manager starts the worker itself, without a launcher.
    type: bool
    default: false
  grace:
    description: Seconds between C(SIGTERM) and C(SIGKILL) for the processes that have not ended by then.
    type: float
    default: 10
  remove_profiles:
    description:
      - Once a selected instance has ended, remove its profile directory (only inside O(profile_roots)), its
        C(lu<PID>*.tmp) temporary directories and its stale LibreOffice pipe socket. See the description for the
        conditions.
    type: bool
    default: true
  profile_roots:
    description:
      - Directories under which profile directories (C(-env:UserInstallation=file:///DIR)) may be removed. DIR must be
        strictly inside one of them. A root must be an absolute literal path, not a system directory, and not pass
        through a symbolic link.
      - When empty, profiles are never removed (reported in RV(kept_paths)); temporary directories and pipes still are.
    type: list
    elements: str
    default: []

notes:
  - An instance's age is the age of its worker (C(soffice.bin)), from C(/proc/PID/stat) and C(/proc/uptime).
  - Resident memory freed (RV(rss_freed_bytes)) adds up the resident set of the processes that ended, read before the
    first signal; pages shared with other processes are counted too.
  - A process killed by this module whose parent does not reap it stays a zombie (RV(killed[].reaped) is V(false)).
    It holds no memory, but only its parent can remove it from the process table.
  - The module never signals PID 1, itself or its own ancestors.

seealso:
  - module: community.general.pids
  - module: runbook.remediation.file_cleanup

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Stop the converter's LibreOffice processes older than an hour, keep at most 5
  runbook.remediation.process_cleanup:
    executables: [soffice.bin, oosplash]
    launchers: [oosplash]
    user: converter
    max_age: 3600
    max_count: 5
    include_orphans: true
    profile_roots: [/var/lib/converter/lo-profiles]
  become: true
  register: cleanup

- name: Say what was freed
  ansible.builtin.debug:
    msg: >-
      stopped {{ cleanup.killed | map(attribute='pid') | list }},
      {{ cleanup.rss_freed_bytes | human_readable }} freed

- name: Plan only - which listeners of the unit are hung (probe their URP port)
  runbook.remediation.process_cleanup:
    executables: [soffice.bin, oosplash]
    launchers: [oosplash]
    cgroup: converter.service
    probe: true
  check_mode: true
  register: plan
"""

RETURN = r"""
selected:
  description:
    - The instances selected to be stopped (or, in check mode, that would be), oldest first.
  type: list
  elements: dict
  returned: success
  contains:
    pid:
      description: PID of the worker (or of a launcher judged on its own).
      type: int
      sample: 4242
    exe:
      description: Its executable's basename (its name, for a zombie).
      type: str
      sample: soffice.bin
    user:
      description: Its real user.
      type: str
      sample: converter
    age:
      description: Its age in seconds.
      type: int
      sample: 7260
    rss:
      description: Resident memory of the worker and its launcher, in bytes.
      type: int
      sample: 89128960
    reasons:
      description: Why it was selected.
      type: list
      elements: str
      sample: ["older than max_age (7260 s > 3600 s)"]
    launcher:
      description:
        - Its launcher (C(pid), C(exe), C(rss)), stopped with it.
        - V(null) when it has none or the launcher is kept.
      type: dict
      sample: {"pid": 4230, "exe": "oosplash", "rss": 4001792}
    port:
      description: The TCP port it listens on, when known.
      type: int
      sample: 2002
    profile:
      description: Its C(-env:UserInstallation) URL, when given.
      type: str
      sample: file:///var/lib/converter/lo-profiles/p1
killed:
  description: The processes that ended, with the signal that ended them. Empty in check mode.
  type: list
  elements: dict
  returned: success
  contains:
    pid:
      description: Its PID.
      type: int
    exe:
      description: Its executable's basename.
      type: str
    role:
      description: V(worker) or V(launcher).
      type: str
    signal:
      description: The last signal sent before it ended, V(SIGTERM) or V(SIGKILL).
      type: str
    rss:
      description: Its resident memory before the first signal, in bytes.
      type: int
    reaped:
      description:
        - V(false) when it is still a zombie (dead, holding no memory) that its parent has not reaped yet.
      type: bool
  sample:
    - {"pid": 4242, "exe": "soffice.bin", "role": "worker", "signal": "SIGTERM", "rss": 85082112, "reaped": true}
    - {"pid": 4230, "exe": "oosplash", "role": "launcher", "signal": "SIGKILL", "rss": 4001792, "reaped": false}
survivors:
  description:
    - Processes signalled that had not ended after C(SIGKILL) (for example stuck in uninterruptible I/O). The module
      warns but does not fail, so that the caller still gets every PID it stopped.
  type: list
  elements: dict
  returned: success
  sample: [{"pid": 4242, "exe": "soffice.bin", "state": "D"}]
rss_freed_bytes:
  description: Resident memory of the processes that ended (in check mode, of those that would be stopped).
  type: int
  returned: success
  sample: 89083904
kept:
  description:
    - Matching processes that were not selected, with the reason (outside the scope, young, within the count,
      responsive, a zombie only its parent can reap). At most 200 entries.
  type: list
  elements: dict
  returned: success
  sample:
    - {"pid": 5120, "exe": "soffice.bin", "user": "daemon", "age": 9000,
       "reason": "outside the scope: user daemon, not converter"}
    - {"pid": 5301, "exe": "soffice.bin", "user": "converter", "age": 40,
       "reason": "younger than max_age (40 s <= 3600 s)"}
removed_paths:
  description: Paths removed after their process ended.
  type: list
  elements: dict
  returned: success
  sample:
    - {"path": "/var/lib/converter/lo-profiles/p1", "type": "profile", "pid": 4242, "size": 1207959}
    - {"path": "/tmp/lu4242a8k.tmp", "type": "temp", "pid": 4242, "size": 0}
kept_paths:
  description: Paths of stopped processes that were left in place, with the reason.
  type: list
  elements: dict
  returned: success
  sample: [{"path": "/home/converter/.config/libreoffice/4", "pid": 4242, "reason": "not inside profile_roots"}]
instances_before:
  description: Live instances in the scope before (a worker with its launcher counts once).
  type: int
  returned: success
  sample: 9
instances_after:
  description: Live instances in the scope after the cleanup (in check mode, projected).
  type: int
  returned: success
  sample: 3
error_kind:
  description:
    - Why the module failed. V(input) when an option is refused (no executables, no scope, O(tree=1), an unknown
      user, a bad profile root); V(unavailable) when C(/proc) is not mounted.
  type: str
  returned: failure
  sample: input
"""

import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _files
from ansible_collections.runbook.remediation.plugins.module_utils._processes import (
    KEPT_LIMIT,
    POLL,
    TMP,
    Clock,
    InputError,
    Leftovers,
    Target,
    Terminator,
    ancestors,
    choose,
    describe,
    describe_selected,
    group_instances,
    live_count,
    make_prober,
    match,
    read_environ,
    same_process,
    same_process_or_zombie,
    scan,
    targets_of,
    temp_dir_of,
    user_installation,
    validate,
)
from ansible_collections.runbook.remediation.plugins.module_utils._proc import PROC


def main():
    module = AnsibleModule(
        argument_spec=dict(
            executables=dict(type='list', elements='str', required=True),
            launchers=dict(type='list', elements='str', default=[]),
            user=dict(type='str'),
            tree=dict(type='int'),
            cgroup=dict(type='str'),
            container=dict(type='str'),
            max_age=dict(type='int'),
            max_count=dict(type='int'),
            probe=dict(type='bool', default=False),
            probe_timeout=dict(type='float', default=5.0),
            probe_greeting=dict(type='bool', default=True),
            probe_min_age=dict(type='int', default=60),
            include_orphans=dict(type='bool', default=False),
            grace=dict(type='float', default=10.0),
            remove_profiles=dict(type='bool', default=True),
            profile_roots=dict(type='list', elements='str', default=[]),
        ),
        # The scope (user/tree/cgroup) is checked in validate(), not with required_one_of, so that a missing
        # scope fails with error_kind=input like every other refusal.
        supports_check_mode=True,
    )
    params = module.params
    try:
        executables, launchers, scope, roots = validate(params)
    except InputError as exc:
        module.fail_json(msg='process_cleanup: %s' % exc, error_kind='input')
    if not os.path.isdir(os.path.join(PROC, 'self')):
        module.fail_json(msg='process_cleanup: %s is not mounted: processes cannot be read' % PROC,
                         error_kind='unavailable')

    try:
        procs = scan(wanted=executables)
        clock = Clock()
        me = os.getpid()
        protected = {1, me, *ancestors(me, procs)}
        matched, outside = match(procs, executables, scope, protected)
        instances = group_instances(matched, launchers)
        before = live_count(instances)
        prober = make_prober(params['probe_timeout'], params['probe_greeting']) if params['probe'] else None
        selected, kept_instances = choose(instances, clock, max_age=params['max_age'], max_count=params['max_count'],
                                          orphans=params['include_orphans'] and bool(launchers), probe=prober,
                                          probe_min_age=params['probe_min_age'])
        plan = [Target(p, role) for p, role in targets_of(selected, instances)]
    except (IOError, OSError) as exc:
        module.fail_json(msg='process_cleanup: reading %s failed: %s' % (PROC, exc), error_kind='unavailable',
                         exception=traceback.format_exc())

    kept = [describe(p, clock, reason) for p, reason in outside]
    kept += [describe(inst.main, clock, inst.reasons[-1]) for inst in kept_instances]
    for inst in selected:
        if inst.launcher_kept:
            kept.append(describe(inst.launcher, clock, 'launcher of other workers that are kept'))
    result = dict(changed=bool(plan), killed=[], survivors=[], removed_paths=[], kept_paths=[],
                  instances_before=before, kept=kept[:KEPT_LIMIT])

    if module.check_mode or not plan:
        result['selected'] = [describe_selected(inst, clock, plan) for inst in selected]
        result['rss_freed_bytes'] = sum(t.proc.rss for t in plan)
        result['instances_after'] = before - live_count(selected)
        result['msg'] = ('would stop %d process(es) of %d instance(s)' % (len(plan), len(selected)) if plan
                         else 'nothing to stop: %d instance(s) in the scope' % before)
        module.exit_json(**result)

    # Read what the workers need for their cleanup now: their /proc entries go with them.
    tmpdirs = {}
    for inst in selected:
        tmpdirs[inst.main.pid] = temp_dir_of(read_environ(inst.main))

    Terminator(plan).run(params['grace'])
    time.sleep(POLL)  # let init reap what it inherited

    killed = []
    survivors = []
    for t in plan:
        if t.missing or (t.ended and t.signal is None):
            kept.append(describe(t.proc, clock, 'it ended by itself before it was signalled'))
        elif t.ended:
            reaped = same_process_or_zombie(t.proc.pid, t.proc.start) is None
            killed.append({'pid': t.proc.pid, 'exe': t.proc.name, 'role': t.role, 'signal': t.signal,
                           'rss': t.proc.rss, 'reaped': reaped})
        else:
            survivors.append({'pid': t.proc.pid, 'exe': t.proc.name,
                              'state': same_process(t.proc.pid, t.proc.start) or '?'})
    ended = set(item['pid'] for item in killed) | set(t.proc.pid for t in plan if t.missing or t.ended)

    after = scan(wanted=executables)
    leftovers = Leftovers(roots, False, clock, executables)
    if params['remove_profiles']:
        def users_of(url):
            return sorted(p.pid for p in after.values() if not p.zombie and user_installation(p.argv) == url)

        for inst in selected:
            mine = [t for t in plan if t.proc.pid in inst.pids]
            if mine and all(t.proc.pid in ended for t in mine):
                try:
                    leftovers.clean(inst, tmpdirs.get(inst.main.pid, TMP), users_of)
                except _files.InspectionError as exc:
                    leftovers.keep(str(inst.main.pid), inst.main.pid, 'open files cannot be checked: %s' % exc)

    matched_after, _outside = match(after, executables, scope, protected)
    result.update(
        changed=bool(killed) or bool(leftovers.removed),
        selected=[describe_selected(inst, clock, plan) for inst in selected],
        killed=killed,
        survivors=survivors,
        rss_freed_bytes=sum(item['rss'] for item in killed),
        removed_paths=leftovers.removed,
        kept_paths=leftovers.kept,
        instances_after=live_count(group_instances(matched_after, launchers)),
        kept=kept[:KEPT_LIMIT],
    )
    result['msg'] = 'stopped %d process(es) of %d instance(s), %d bytes resident; removed %d path(s)' % (
        len(killed), len(selected), result['rss_freed_bytes'], len(leftovers.removed))
    if survivors:
        # Not a module failure: the caller gets every PID stopped and decides (the role reports `failed`).
        module.warn('process_cleanup: %d process(es) survived SIGKILL: %s' % (
            len(survivors), ', '.join('%d (state %s)' % (item['pid'], item['state']) for item in survivors)))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
