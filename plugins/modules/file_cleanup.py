#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: file_cleanup

short_description: Remove old files by name pattern, only inside the given directories, never an open file

version_added: 0.1.0

description:
  - Finds the files under O(paths) whose names match O(patterns) and that were last modified longer ago than O(age),
    and removes them one by one, by exact name. Nothing is expanded by a shell.
  - Made for disk-full incidents, where C(find ... -delete) is what on-call engineers type by hand, and where a wrong
    path or a live log file removed by mistake makes the incident worse. The module therefore refuses or keeps,
    and says why, rather than guess.
  - Never leaves O(paths). A root must be an absolute directory without C(..), without glob characters, must not
    pass through a symbolic link and must not be a system directory such as V(/), V(/etc) or V(/var). Symbolic links
    found under a root are neither followed nor removed, and mount points under a root are not entered. Each removal
    goes through a file descriptor of the directory that was checked, so a directory swapped for a link meanwhile
    cannot redirect it. The root itself is opened from C(/) one directory at a time without following any link,
    and must still be the directory that was validated; otherwise the module fails (RV(error_kind=input)) and
    removes nothing under that root.
  - Never removes a file that a process holds open or has mapped (read from C(/proc/*/fd) and C(/proc/*/maps)),
    because removing it would free no space and would hide the data from everyone but that process; nor a file with
    other hard links; nor a path matching O(protect), such as the live log files themselves.
  - Reports every file removed, the bytes freed, every matching file kept and why, and the usage of the filesystems
    that hold O(paths) before and after. With no O(patterns) it removes nothing and only measures.

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes

attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is removed; RV(removed) lists what would go and the usage after is projected.
  diff_mode:
    support: full
    details:
      - The diff lists the paths removed (or that would be removed).
  platform:
    platforms: posix
    details:
      - Linux, for the open-file checks through C(/proc).

options:
  paths:
    description:
      - The directories to clean (the roots). Nothing outside them is ever touched.
      - A root that does not exist is not an error; it is reported in RV(roots) and its filesystem is measured
        through its nearest existing parent.
    type: list
    elements: str
    required: true
  patterns:
    description:
      - Shell-style patterns (C(*), C(?), C([...])) matched against file B(names), as C(find -name) does, for example
        V(*.log.[0-9]*) or V(ggen-mcp-*).
      - A pattern must not contain C(/); put directories in O(paths) instead.
      - Empty means remove nothing and only measure.
    type: list
    elements: str
    default: []
  age:
    description:
      - Minimum time since a file was last modified, as a number of seconds or with a unit C(s), C(m), C(h), C(d) or
        C(w), for example V(7d) or V(12h). Younger files are kept.
      - V(0) removes matching files of any age.
    type: str
    default: 1d
  protect:
    description:
      - Absolute paths or shell-style globs matched against the full path of each candidate (C(*) also matches C(/)).
        A matching file, or a directory holding one, is never removed.
      - Use it for the live log files, for example V(/var/log/gateway/*.log).
    type: list
    elements: str
    default: []
  exclude_open:
    description:
      - Keep files that any process holds open or maps.
      - Reads C(/proc/PID/fd) and C(/proc/PID/maps) of every process. As root without C(CAP_SYS_PTRACE) (common in
        containers) the module reads another user's processes from a child process that takes that user's identity.
      - When some process still cannot be inspected (RV(uninspectable)), each candidate is also asked of the kernel,
        which refuses a write lease on a file while any process has it open or mapped. A candidate is kept when the
        lease is refused or cannot be tried (a filesystem without leases). Root without C(CAP_LEASE) asks as the
        file's owner.
      - V(false) skips the check; only for files you know no process uses.
    type: bool
    default: true
  max_depth:
    description:
      - How deep to look under each root. V(1) looks only at the entries directly in it.
    type: int
    default: 1
  directories:
    description:
      - Also remove matching directories with everything in them, for example temporary directories made by
        C(mktemp -d). A directory goes only when nothing in it is open, protected, hard-linked, on another filesystem
        or younger than O(age), and it contains only regular files, directories and symbolic links (links are removed
        as links, their targets are never touched).
      - With V(false), matching directories are reported in RV(kept).
    type: bool
    default: false
  report_largest:
    description:
      - How many of the largest regular files seen under O(paths) to report in RV(largest), whether they match or
        not. V(0) reports none.
    type: int
    default: 5

notes:
  - A file opened by a process after the scan of C(/proc) and before its removal is still removed; the scan and the
    removals take milliseconds.
  - Memory maps are matched by device and inode as C(/proc/PID/maps) gives them; on overlay filesystems these can
    differ from what C(stat) reports, so only descriptors are a reliable signal there.
  - Bytes freed count the blocks the files occupied on disk, the figure C(df) shows.
  - The role C(runbook.remediation.log_rotate) (scenario C(disk-full)) installs a logrotate policy, forces a rotation
    above a usage threshold and cleans up with this module.

seealso:
  - module: ansible.builtin.find
  - module: ansible.builtin.file

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Remove rotated gateway logs older than a week, never the live ones
  runbook.remediation.file_cleanup:
    paths: [/var/log/gateway]
    patterns: ['*.log.*', '*.log-*']
    protect: ['/var/log/gateway/*.log']
    age: 7d
  register: cleanup

- name: Say what was freed
  ansible.builtin.debug:
    msg: "{{ cleanup.removed | length }} files, {{ cleanup.bytes_freed | human_readable }}"

- name: Temporary files and directories the seed's runbook deletes with find -delete
  runbook.remediation.file_cleanup:
    paths: [/tmp]
    patterns: ['ggen-mcp-*']
    age: 1d
    directories: true

- name: Only measure (no patterns) - usage, largest files, deleted files still held open
  runbook.remediation.file_cleanup:
    paths: [/var/log/gateway]
    report_largest: 10
  register: disk

- name: Name what fills the disk
  ansible.builtin.debug:
    msg: "{{ disk.filesystems[0].used_percent }} % used; biggest: {{ disk.largest | map(attribute='path') | first }}"
"""

RETURN = r"""
removed:
  description:
    - The files and directories removed, or that would be removed in check mode, in the order they were found.
  type: list
  elements: dict
  returned: success
  contains:
    path:
      description: The full path.
      type: str
      sample: /var/log/gateway/app.log.3.gz
    type:
      description: V(file) or V(directory).
      type: str
      sample: file
    size:
      description: Size in bytes (for a directory, of the regular files in it).
      type: int
      sample: 1048576
    mtime:
      description: Last modification (for a directory, the newest of its entries), UTC, ISO 8601.
      type: str
      sample: "2026-11-10T03:00:00Z"
bytes_freed:
  description:
    - Disk space freed by the removals (blocks on disk), or that would be freed in check mode.
  type: int
  returned: success
  sample: 1052672
kept:
  description:
    - Matching entries that were kept, with the reason. At most 200 entries; RV(kept_count) has the total.
    - (Not called C(skipped), which Ansible reserves for skipped tasks.)
  type: list
  elements: dict
  returned: success
  sample:
    - {"path": "/var/log/gateway/app.log.1.gz", "reason": "newer than the minimum age (modified 2026-11-24T03:00:00Z)"}
    - {"path": "/var/log/gateway/app.log.9",
       "reason": "symbolic link to /etc/passwd (links are never followed nor removed)"}
    - {"path": "/tmp/ggen-mcp-1", "reason": "open by process 812 (node)"}
kept_count:
  description: How many matching entries were kept.
  type: int
  returned: success
  sample: 3
roots:
  description: Each root as checked (normalised) and whether it exists.
  type: list
  elements: dict
  returned: success
  sample: [{"path": "/var/log/gateway", "exists": true}]
filesystems:
  description:
    - The filesystems holding O(paths), once each, measured as C(df) does (space reserved for root counts as neither
      used nor available).
    - C(used_percent_before), C(used_bytes_before) and C(avail_bytes_before) are measured before any removal;
      C(used_percent), C(used_bytes) and C(avail_bytes) after it, or projected in check mode (C(projected=true)).
  type: list
  elements: dict
  returned: success
  contains:
    mount:
      description: The filesystem's mount point.
      type: str
      sample: /var/log
    roots:
      description: The roots on this filesystem.
      type: list
      elements: str
      sample: [/var/log/gateway]
    size_bytes:
      description: Size of the filesystem.
      type: int
      sample: 67108864
    used_bytes_before:
      description: Bytes used before.
      type: int
      sample: 67108864
    used_percent_before:
      description: Percent used before.
      type: float
      sample: 100.0
    avail_bytes_before:
      description: Bytes available before.
      type: int
      sample: 0
    used_bytes:
      description: Bytes used after.
      type: int
      sample: 4096
    avail_bytes:
      description: Bytes available after.
      type: int
      sample: 67104768
    used_percent:
      description: Percent used after.
      type: float
      sample: 0.0
    freed_bytes:
      description: Bytes freed on this filesystem by the removals.
      type: int
      sample: 67104768
    projected:
      description: V(true) when the figures after are projected (check mode).
      type: bool
      sample: false
largest:
  description:
    - The largest regular files seen under O(paths) (within O(max_depth)), matching or not, biggest first, and
      whether a process holds each open.
  type: list
  elements: dict
  returned: success
  sample: [{"path": "/var/log/gateway/app.log", "size": 66060288, "open": true}]
deleted_open:
  description:
    - Files that were removed already but that a process still holds open, on the filesystems of O(paths). They
      still take space until the process closes them (restart it, or truncate through C(/proc/PID/fd/FD)).
  type: list
  elements: dict
  returned: when O(exclude_open=true)
  sample: [{"pid": 812, "command": "node", "fd": 7, "path": "/var/log/gateway/app.log.1", "size": 52428800}]
uninspectable:
  description:
    - Processes whose open files could not be read from C(/proc). Candidates were then checked with a kernel lease.
  type: list
  elements: int
  returned: when O(exclude_open=true)
  sample: [1]
error_kind:
  description:
    - Why the module failed. V(input) when a path, pattern or age is refused; V(permission) when a directory under
      O(paths) cannot be read; V(unavailable) when C(/proc) is not mounted, so open files cannot be checked.
  type: str
  returned: failure
  sample: input
"""

import errno
import os
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _files


def validate(module, params):
    """Checked roots, their identities (st_dev, st_ino; None when missing), patterns, protect globs and age;
    fails with error_kind=input."""
    try:
        roots = []
        for path in params['paths']:
            root = _files.check_root(path)
            if root not in roots:
                roots.append(root)
        if not roots:
            raise _files.InputError('paths is empty: name the directories to clean')
        patterns = [_files.check_pattern(p) for p in params['patterns']]
        protect = [_files.check_protect(g) for g in params['protect']]
        age = _files.parse_age(params['age'])
        if params['max_depth'] < 1:
            raise _files.InputError('max_depth must be 1 or more, got %d' % params['max_depth'])
        if params['report_largest'] < 0:
            raise _files.InputError('report_largest must not be negative, got %d' % params['report_largest'])
        identities = dict((root, _files.resolve_root(root)) for root in roots)
    except _files.InputError as exc:
        module.fail_json(msg='file_cleanup: %s' % exc, error_kind='input')
    return roots, identities, patterns, protect, age


def measure(roots):
    """{dev: entry} for the filesystems holding ``roots`` (before any removal)."""
    filesystems = {}
    for root in roots:
        anchor = _files.existing_ancestor(root)
        dev = os.stat(anchor).st_dev
        entry = filesystems.get(dev)
        if entry is None:
            size, used, avail = _files.usage(anchor)
            entry = filesystems[dev] = {
                'mount': _files.mount_point(anchor), 'roots': [], 'size_bytes': size,
                'used_bytes_before': used, 'used_percent_before': _files.percent(used, avail),
                'avail_bytes_before': avail, '_anchor': anchor,
            }
        entry['roots'].append(root)
    return filesystems


def finish(filesystems, freed_by_dev, check):
    result = []
    for dev, entry in filesystems.items():
        freed = freed_by_dev.get(dev, 0)
        if check:
            used = max(entry['used_bytes_before'] - freed, 0)
            avail = entry['avail_bytes_before'] + freed
        else:
            _size, used, avail = _files.usage(entry['_anchor'])
        out = dict((k, v) for k, v in entry.items() if not k.startswith('_'))
        out.update(used_bytes=used, avail_bytes=avail, used_percent=_files.percent(used, avail),
                   freed_bytes=freed, projected=check)
        result.append(out)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='list', elements='str', required=True),
            patterns=dict(type='list', elements='str', default=[]),
            age=dict(type='str', default='1d'),
            protect=dict(type='list', elements='str', default=[]),
            exclude_open=dict(type='bool', default=True),
            max_depth=dict(type='int', default=1),
            directories=dict(type='bool', default=False),
            report_largest=dict(type='int', default=5),
        ),
        supports_check_mode=True,
    )
    params = module.params
    roots, identities, patterns, protect, age = validate(module, params)

    open_files = None
    if params['exclude_open']:
        try:
            open_files = _files.scan_open_files()
        except _files.InspectionError as exc:
            module.fail_json(msg='file_cleanup: %s' % exc, error_kind=exc.kind)
        if open_files.uninspectable and patterns:
            module.warn('file_cleanup: the open files of process %s cannot be read (permission denied); each '
                        'candidate is checked with a kernel lease instead and kept when that cannot tell'
                        % ', '.join(str(p) for p in open_files.uninspectable[:10]))

    filesystems = measure(roots)
    cleaner = _files.Cleaner(patterns, age, protect=protect, open_files=open_files, max_depth=params['max_depth'],
                             directories=params['directories'], check=module.check_mode,
                             largest=params['report_largest'])
    try:
        if patterns or params['report_largest']:
            for root in roots:
                if identities[root] is not None:
                    # Opened from / without following any link, and only if it still is the directory validated.
                    cleaner.run(root, expected=identities[root])
    except _files.InputError as exc:
        module.fail_json(msg='file_cleanup: %s' % exc, error_kind='input', removed=cleaner.removed,
                         bytes_freed=cleaner.bytes_freed)
    except OSError as exc:
        module.fail_json(msg='file_cleanup: %s: %s' % (exc.filename or 'walk', exc.strerror or exc),
                         error_kind='permission' if exc.errno in (errno.EACCES, errno.EPERM) else 'io',
                         removed=cleaner.removed, bytes_freed=cleaner.bytes_freed, exception=traceback.format_exc())

    result = dict(
        changed=bool(cleaner.removed),
        removed=cleaner.removed,
        bytes_freed=cleaner.bytes_freed,
        kept=cleaner.kept,
        kept_count=cleaner.kept_count,
        roots=[{'path': root, 'exists': identities[root] is not None} for root in roots],
        filesystems=finish(filesystems, cleaner.freed_by_dev, module.check_mode),
        largest=cleaner.largest(),
    )
    if open_files is not None:
        result['uninspectable'] = open_files.uninspectable
        devs = set(filesystems)
        result['deleted_open'] = [dict((k, v) for k, v in item.items() if k != 'dev')
                                  for item in open_files.deleted if item['dev'] in devs]
    if module._diff:
        result['diff'] = {'before': {'files': [item['path'] for item in cleaner.removed]}, 'after': {'files': []}}
    verb = 'would remove' if module.check_mode else 'removed'
    result['msg'] = '%s %d of %d matching entries, %d bytes' % (
        verb, len(cleaner.removed), len(cleaner.removed) + cleaner.kept_count, cleaner.bytes_freed)
    if cleaner.errors:
        result['msg'] += '; %d could not be removed (see kept)' % len(cleaner.errors)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
