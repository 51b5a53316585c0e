#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: sqlite_restore

short_description: Restore an SQLite database from a checked backup, atomically, keeping a copy of the old one

version_added: 0.1.0

description:
  - Checks the database at O(path) with C(PRAGMA integrity_check) and, when it fails (or is missing, or O(force) or
    O(backup) is given), puts a backup from O(backups_dir) in its place.
  - Checks the backup before touching anything. Without O(backup), takes the newest backup of this database
    (C(<stem>-*.db), newest modification time first) whose SHA-256 matches its C(.sha256) sidecar and that passes
    C(integrity_check). Backups made by M(runbook.remediation.sqlite_backup) have that form.
  - "Before anything else is changed, keeps a raw copy of the current database (with its C(-wal), C(-shm) and
    C(-journal) files when present), even a corrupt one: C(<backups_dir>/pre-restore/<stem>-<UTC stamp>.db), fsynced,
    with a C(.sha256) sidecar naming every file. These copies are never removed by this collection."
  - "Replaces the database atomically: the backup is copied to a temporary file beside the database, fsynced, its
    checksum and integrity checked there, given the owner and mode of the old file, then renamed over the database.
    Before that rename, the old database's write-ahead log is checkpointed into it and the C(-wal), C(-shm) and
    C(-journal) files are removed: SQLite replays any C(-wal) it finds beside a database file, even one left by
    another file, which would silently mix the old data into the restored database."
  - A process killed at any point leaves either the old database (same content) or the restored one, never a mix;
    once the database differs from the old one, the pre-restore copy is complete. A later run removes the temporary
    files a killed run left behind.
  - With O(state=rolled_back), puts a pre-restore copy back the same way (its log applied), for example when the
    service does not become healthy on the restored database.
  - Refuses to replace a database that a process holds open (stop the service first), a backup outside
    O(backups_dir), and a backup whose checksum or integrity check fails.

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes

attributes:
  check_mode:
    support: full
    details:
      - In check mode the database and the backups are checked and the plan is returned (RV(plan)); nothing is
        written, except scratch copies in Ansible's own temporary directory to check a database in WAL mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details:
      - Linux, for the open-file check through C(/proc).

options:
  path:
    description:
      - The SQLite database file, an absolute path.
    type: str
    required: true
  backups_dir:
    description:
      - The directory holding the database's backups (and the C(pre-restore) directory). An absolute path.
    type: str
    required: true
  state:
    description:
      - V(restored) restores from a backup when needed.
      - V(rolled_back) puts a pre-restore copy back (O(pre_restore_copy)), whatever the database's state.
    type: str
    choices: [restored, rolled_back]
    default: restored
  backup:
    description:
      - The backup to restore, a file name in O(backups_dir) (or its full path there). Anything outside
        O(backups_dir), a symbolic link or a name with C(..) is refused.
      - Giving one restores even when the database passes its integrity check.
      - Empty for the newest usable backup.
    type: str
    default: ""
  force:
    description:
      - Restore even when the database passes C(integrity_check).
    type: bool
    default: false
  pre_restore_copy:
    description:
      - With O(state=rolled_back), the pre-restore copy to put back, a file name in C(<backups_dir>/pre-restore)
        (or its full path there). Empty for the newest copy of this database.
    type: str
    default: ""
  require_checksum:
    description:
      - Only use a backup whose C(.sha256) sidecar exists and matches. With V(false), a backup without a sidecar is
        used when it passes C(integrity_check); a sidecar that exists must still match.
    type: bool
    default: true
  allow_open:
    description:
      - Replace the database even when a process holds it open (read from C(/proc)). Such a process keeps using the
        old, unlinked file and may write over the restored one later; leave V(false) and stop the service first.
    type: bool
    default: false

notes:
  - A kill of the process at any point is safe as described above. Power loss is covered as far as the filesystem
    honours C(fsync) on files and directories.
  - The role C(runbook.remediation.db_restore) (scenario C(db-restore)) stops the service, runs this module, starts the
    service, checks its health and rolls back with O(state=rolled_back) when it stays unhealthy.

seealso:
  - module: runbook.remediation.sqlite_backup

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Restore the queue database from its newest good backup when it fails integrity_check
  runbook.remediation.sqlite_restore:
    path: /var/lib/gateway/queue.db
    backups_dir: /var/lib/gateway/backups
  register: restore

- name: Show what happened
  ansible.builtin.debug:
    msg: "{{ restore.msg }} (pre-restore copy: {{ restore.pre_restore_copy.path | default('none') }})"

- name: Plan only - which backup, which checksums, what would be copied where
  runbook.remediation.sqlite_restore:
    path: /var/lib/gateway/queue.db
    backups_dir: /var/lib/gateway/backups
  check_mode: true
  register: plan

- name: Restore a chosen backup, even though the database looks fine
  runbook.remediation.sqlite_restore:
    path: /var/lib/gateway/queue.db
    backups_dir: /var/lib/gateway/backups
    backup: queue-20261124T030000Z.db

- name: Put the database back as it was before the restore
  runbook.remediation.sqlite_restore:
    path: /var/lib/gateway/queue.db
    backups_dir: /var/lib/gateway/backups
    state: rolled_back
    pre_restore_copy: "{{ restore.pre_restore_copy.path }}"
"""

RETURN = r"""
action:
  description: What was done (or would be in check mode) - V(none), V(restore) or V(rollback).
  type: str
  returned: success
  sample: restore
reason:
  description: Why the database is (or is not) restored.
  type: str
  returned: success
  sample: "integrity_check failed: *** in database main *** Page 2: btreeInitPage() returns error code 11"
database:
  description: The database before the run.
  type: dict
  returned: always
  contains:
    path:
      description: The database file.
      type: str
      sample: /var/lib/gateway/queue.db
    exists:
      description: Whether it existed.
      type: bool
      sample: true
    size:
      description: Its size in bytes.
      type: int
      sample: 8192
    companions:
      description: Its C(-wal), C(-shm) and C(-journal) files.
      type: list
      elements: str
      sample: []
    integrity:
      description: C(integrity_check) result, C(ok) and the first C(messages).
      type: dict
      sample: {"ok": false, "messages": ["*** in database main ***", "Page 2: btreeInitPage() returns error code 11"]}
backup:
  description: The backup chosen (with O(state=restored) when a restore is needed).
  type: dict
  returned: when a backup was chosen
  sample: {"name": "queue-20261124T030000Z.db", "path": "/var/lib/gateway/backups/queue-20261124T030000Z.db",
           "sha256": "5f1d...", "size": 8192, "mtime": "2026-11-24T03:00:00Z", "checksum": "checksum ok",
           "integrity": {"ok": true, "messages": ["ok"]}}
candidates:
  description: The backups looked at, newest first, and why each was or was not usable.
  type: list
  elements: dict
  returned: with O(state=restored) when a restore is needed
  sample:
    - {"name": "queue-20261124T040000Z.db", "usable": false,
       "reason": "checksum mismatch (sidecar 5f1d..., file 9ab0...)"}
pre_restore_copy:
  description:
    - The raw copy of the database as it was, its files and the SHA-256 of its main file. In check mode, where it
      would go.
    - With O(state=rolled_back), the copy that was put back.
  type: dict
  returned: when the database existed and something was (or would be) replaced
  sample: {"path": "/var/lib/gateway/backups/pre-restore/queue-20261124T101530Z.db", "sha256": "0c9e...",
           "files": ["/var/lib/gateway/backups/pre-restore/queue-20261124T101530Z.db"]}
integrity_after:
  description: C(integrity_check) of the database after the replacement.
  type: dict
  returned: when the database was replaced
  sample: {"ok": true, "messages": ["ok"]}
swap:
  description:
    - How the old database was replaced. C(folded) when its WAL or journal was applied to it first, C(removed) the
      companion files removed, C(wal_discarded) when the old database could not be opened to apply its log (its
      files are in the pre-restore copy).
  type: dict
  returned: when the database was replaced
  sample: {"folded": false, "removed": [], "wal_discarded": false, "fold_error": null}
plan:
  description: The steps, in order, that were taken (or would be in check mode).
  type: list
  elements: str
  returned: success
  sample:
    - copy queue.db (8192 bytes) to /var/lib/gateway/backups/pre-restore/queue-20261124T101530Z.db
stale_removed:
  description: Temporary files of an earlier, interrupted run that were removed.
  type: list
  elements: str
  returned: success
  sample: []
error_kind:
  description:
    - Why the module failed. V(input) for a refused path or backup name, or a chosen backup that fails its checks;
      V(unavailable) when no usable backup exists or another run holds the lock; V(in_use) when a process holds
      the database open; V(remediation) when the replacement failed (the old database is then in place).
  type: str
  returned: failure
  sample: input
"""

import os
import sqlite3
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _files
from ansible_collections.runbook.remediation.plugins.module_utils import _sqlite


class Restore:
    """One run: inspect, choose, keep a copy, replace."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.check = module.check_mode
        self.db = _sqlite.check_path(params['path'], 'path')
        self.backups = _sqlite.check_path(params['backups_dir'], 'backups_dir')
        if self.backups == self.db:
            raise _sqlite.InputError('backups_dir must not be the database file itself')
        self.db_dir = os.path.dirname(self.db)
        self.stem = _sqlite.stem_of(self.db)
        self.pre_dir = os.path.join(self.backups, _sqlite.PRE_RESTORE)
        self.label = '%s-%s' % (self.stem, 'restore')
        self.result = {'changed': False, 'action': 'none', 'plan': [], 'stale_removed': []}
        self.temps = []

    # -- inspection
    def inspect_db(self):
        exists = os.path.isfile(self.db)
        info = {'path': self.db, 'exists': exists, 'companions': _sqlite.companions(self.db),
                'size': os.path.getsize(self.db) if exists else 0}
        if exists:
            info['integrity'] = _sqlite.live_integrity(self.db, self.module.tmpdir)
        else:
            info['integrity'] = {'ok': False, 'messages': ['the database file does not exist']}
        self.result['database'] = info
        return info

    def judge(self, path, require):
        """(usable, reason, details) of one backup file."""
        ok, reason, digest = _sqlite.check_checksum(path, require)
        st = os.stat(path)
        details = {'name': os.path.basename(path), 'path': path, 'sha256': digest, 'size': st.st_size,
                   'mtime': _sqlite.iso(st.st_mtime), 'checksum': reason}
        if not ok:
            return False, reason, details
        details['integrity'] = _sqlite.integrity(path, immutable=True)
        if not details['integrity']['ok']:
            return False, 'integrity_check failed: %s' % '; '.join(details['integrity']['messages'][:3]), details
        return True, 'usable', details

    def choose_backup(self):
        params = self.module.params
        require = params['require_checksum']
        if params['backup']:
            path = _sqlite.resolve_in(self.backups, params['backup'], 'backup')
            usable, reason, details = self.judge(path, require)
            self.result['candidates'] = [{'name': details['name'], 'usable': usable, 'reason': reason}]
            if not usable:
                raise _sqlite.InputError('backup %s cannot be used: %s' % (details['name'], reason))
            return details
        candidates = []
        chosen = None
        for item in _sqlite.list_files(self.backups, lambda name: _sqlite.is_candidate(name, self.stem)):
            usable, reason, details = self.judge(item['path'], require)
            candidates.append({'name': item['name'], 'usable': usable, 'reason': reason})
            if usable:
                chosen = details
                break
        self.result['candidates'] = candidates
        if chosen is None:
            why = '; '.join('%s: %s' % (c['name'], c['reason']) for c in candidates) or 'none found'
            raise _sqlite.SqliteError('no usable backup of %s in %s (%s-*.db with a matching .sha256): %s'
                                      % (self.db, self.backups, self.stem, why), kind='unavailable')
        return chosen

    def holders(self):
        """Processes holding the database or its companions open."""
        found = _files.scan_open_files()
        names = set()
        for path in [self.db, *_sqlite.companions(self.db)]:
            try:
                st = os.stat(path)
            except OSError:
                continue
            names.update(found.holder(st.st_dev, st.st_ino) or [])
        return sorted(names)

    def refuse_if_open(self):
        if self.module.params['allow_open']:
            return
        try:
            holders = self.holders()
        except _files.InspectionError as exc:
            raise _sqlite.SqliteError('cannot check whether a process holds %s open: %s' % (self.db, exc),
                                      kind='unavailable') from None
        if holders:
            raise _sqlite.SqliteError('%s is open by process %s: stop the service first'
                                      % (self.db, ', '.join(holders)), kind='in_use')

    def target_owner(self):
        """(uid, gid), mode for the new file: the old database's, else the directory owner's with 0640."""
        if os.path.isfile(self.db):
            return _sqlite.owner_of(self.db)
        owner, _mode = _sqlite.owner_of(self.db_dir)
        return owner, 0o640

    # -- actions
    def keep_copy(self, plan_only):
        """The raw pre-restore copy of the database and its companions (main file published last)."""
        files = [self.db, *_sqlite.companions(self.db)] if os.path.exists(self.db) else _sqlite.companions(self.db)
        if not files:
            self.result['plan'].append('keep no pre-restore copy: there is no database file at %s' % self.db)
            return None
        name = _sqlite.stamped_name(self.pre_dir, self.stem) if os.path.isdir(self.pre_dir) else '%s-%s.db' % (
            self.stem, _sqlite.utc_stamp())
        final = os.path.join(self.pre_dir, name)
        sizes = ', '.join('%s (%d bytes)' % (os.path.basename(f), os.path.getsize(f)) for f in files)
        self.result['plan'].append('copy %s to %s (raw bytes, fsynced, with a .sha256 sidecar)' % (sizes, final))
        if plan_only:
            return {'path': final, 'files': [final + f[len(self.db):] for f in files], 'planned': True}
        _sqlite.make_dir(self.pre_dir, 0o700)
        copies = []
        for path in files:
            temp, digest, _size = _sqlite.copy_to_temp(path, self.pre_dir, self.label)
            self.temps.append(temp)
            copies.append((temp, final + path[len(self.db):], digest))
        _sqlite.write_sidecar(final, [(os.path.basename(dest), digest) for _t, dest, digest in copies], self.label)
        # Companions first, the main file last: its name appearing means the copy is complete.
        for temp, dest, _digest in sorted(copies, key=lambda c: c[1] == final):
            os.rename(temp, dest)
            self.temps.remove(temp)
        _sqlite.fsync_dir(self.pre_dir)
        main = [digest for _t, dest, digest in copies if dest == final]
        return {'path': final, 'files': [dest for _t, dest, _d in copies], 'sha256': main[0] if main else None}

    def stage_backup(self, backup):
        """The backup copied beside the database, checked there: its path."""
        owner, mode = self.target_owner()
        temp, digest, _size = _sqlite.copy_to_temp(backup['path'], self.db_dir, self.label, mode=mode, owner=owner)
        self.temps.append(temp)
        if backup['sha256'] and digest != backup['sha256']:
            raise _sqlite.SqliteError('the copy of %s changed while it was copied (sha256 %s..., expected %s...)'
                                      % (backup['name'], digest[:12], backup['sha256'][:12]))
        check = _sqlite.integrity(temp, immutable=True)
        if not check['ok']:
            raise _sqlite.SqliteError('the copy of %s fails integrity_check: %s'
                                      % (backup['name'], '; '.join(check['messages'][:3])))
        return temp

    def swap(self, temp):
        done = _sqlite.replace_db(self.db, temp)
        self.temps.remove(temp)
        self.result['swap'] = done
        self.result['changed'] = True
        self.result['integrity_after'] = _sqlite.integrity(self.db, immutable=False)
        return done

    def cleanup(self):
        for temp in list(self.temps):
            _sqlite.unlink_quietly(temp)
            self.temps.remove(temp)

    # -- the two states
    def restore(self):
        params = self.module.params
        info = self.inspect_db()
        forced = params['force'] or bool(params['backup'])
        if info['integrity']['ok'] and not forced:
            self.result['reason'] = 'integrity_check ok: nothing to restore'
            self.result['msg'] = '%s passes integrity_check: nothing to restore' % self.db
            return
        self.result['reason'] = (
            'restore of backup %s requested' % params['backup'] if params['backup']
            else 'forced' if params['force'] and info['integrity']['ok']
            else info['integrity']['messages'][0] if not info['exists']
            else 'integrity_check failed: %s' % '; '.join(info['integrity']['messages'][:3]))
        backup = self.choose_backup()
        self.result['backup'] = backup
        self.result['action'] = 'restore'
        if self.check:
            self.result['changed'] = True
            self.execute(backup, plan_only=True)
            self.result['msg'] = 'would restore %s from %s (%s)' % (self.db, backup['name'], self.result['reason'])
            return
        self.refuse_if_open()
        self.result['stale_removed'] = (_sqlite.remove_stale_temps(self.db_dir, self.stem)
                                        + _sqlite.remove_stale_temps(self.pre_dir, self.stem))
        self.execute(backup, plan_only=False)

    def execute(self, backup, plan_only):
        copy = self.keep_copy(plan_only)
        if copy is not None:
            self.result['pre_restore_copy'] = copy
        owner, mode = self.target_owner()
        self.result['plan'].append('copy %s (sha256 %s) to a temporary file in %s, fsync, check its checksum and '
                                   'integrity there, owner %d:%d mode %04o'
                                   % (backup['path'], backup['sha256'], self.db_dir, owner[0], owner[1], mode))
        self.add_swap_plan()
        if plan_only:
            return
        temp = self.stage_backup(backup)
        self.swap(temp)
        if not self.result['integrity_after']['ok']:
            self.undo(copy, 'the restored database fails integrity_check: %s'
                      % '; '.join(self.result['integrity_after']['messages'][:3]))
        self.result['msg'] = 'restored %s from %s (%s)' % (self.db, backup['name'], self.result['reason'])

    def add_swap_plan(self):
        logs = [p for p in _sqlite.companions(self.db) if not p.endswith('-shm')]
        if logs:
            self.result['plan'].append('apply %s to the old database (checkpoint), then remove %s'
                                       % (', '.join(logs), ', '.join(_sqlite.companions(self.db))))
        elif _sqlite.companions(self.db):
            self.result['plan'].append('remove %s' % ', '.join(_sqlite.companions(self.db)))
        self.result['plan'].append('rename the temporary file over %s and fsync %s' % (self.db, self.db_dir))

    def undo(self, copy, why):
        """Put the pre-restore copy back after a bad replacement, then fail saying so."""
        if copy is None:
            raise _sqlite.SqliteError('%s; there was no database before, so there is nothing to put back' % why)
        owner, mode = self.target_owner()
        temp, note = _sqlite.materialize(copy['path'], self.db_dir, self.label, owner, mode)
        self.temps.append(temp)
        _sqlite.replace_db(self.db, temp)
        self.temps.remove(temp)
        raise _sqlite.SqliteError('%s; put the pre-restore copy %s back%s'
                                  % (why, copy['path'], ' (%s)' % note if note else ''))

    def rollback(self):
        params = self.module.params
        self.inspect_db()
        if params['pre_restore_copy']:
            path = _sqlite.resolve_in(self.pre_dir, params['pre_restore_copy'], 'pre_restore_copy')
        else:
            copies = _sqlite.list_files(self.pre_dir, lambda name: _sqlite.is_candidate(name, self.stem))
            if not copies:
                raise _sqlite.SqliteError('no pre-restore copy of %s in %s' % (self.db, self.pre_dir),
                                          kind='unavailable')
            path = copies[0]['path']
        expected = _sqlite.read_sidecar(path)
        if not expected:
            raise _sqlite.InputError('pre-restore copy %s has no readable .sha256 sidecar' % path)
        for name, digest in sorted(expected.items()):
            actual = _sqlite.sha256_file(os.path.join(self.pre_dir, name))
            if actual != digest:
                raise _sqlite.InputError('pre-restore copy file %s does not match its checksum' % name)
        self.result['pre_restore_copy'] = {'path': path, 'sha256': expected.get(os.path.basename(path)),
                                           'files': [os.path.join(self.pre_dir, n) for n in sorted(expected)]}
        self.result['action'] = 'rollback'
        self.result['reason'] = 'put the pre-restore copy back'
        owner, mode = self.target_owner()
        self.result['plan'].append('copy %s to a temporary file in %s (applying its log), owner %d:%d mode %04o'
                                   % (path, self.db_dir, owner[0], owner[1], mode))
        self.add_swap_plan()
        if self.check:
            self.result['changed'] = True
            self.result['msg'] = 'would put %s back in place of %s' % (path, self.db)
            return
        self.refuse_if_open()
        self.result['stale_removed'] = _sqlite.remove_stale_temps(self.db_dir, self.stem)
        temp, note = _sqlite.materialize(path, self.db_dir, self.label, owner, mode)
        self.temps.append(temp)
        self.swap(temp)
        self.result['msg'] = 'put the pre-restore copy %s back in place of %s%s' % (
            path, self.db, ' (%s)' % note if note else '')
        if note:
            self.result['note'] = note

    def run(self):
        if not os.path.isdir(self.db_dir):
            raise _sqlite.SqliteError('the database directory %s does not exist' % self.db_dir, kind='unavailable')
        if not os.path.isdir(self.backups):
            raise _sqlite.SqliteError('the backups directory %s does not exist: there is nothing to restore from'
                                      % self.backups, kind='unavailable')
        with _sqlite.DirLock(self.backups):
            try:
                if self.module.params['state'] == 'rolled_back':
                    self.rollback()
                else:
                    self.restore()
            finally:
                self.cleanup()
        return self.result


def partial_result(run):
    """What a failed run found and did, for the failure's result."""
    if run is None:
        return {}
    return dict((key, value) for key, value in run.result.items() if key != 'msg')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='str', required=True),
            backups_dir=dict(type='str', required=True),
            state=dict(type='str', default='restored', choices=['restored', 'rolled_back']),
            backup=dict(type='str', default=''),
            force=dict(type='bool', default=False),
            pre_restore_copy=dict(type='str', default=''),
            require_checksum=dict(type='bool', default=True),
            allow_open=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run = None
    try:
        run = Restore(module)
        result = run.run()
    except _sqlite.SqliteError as exc:
        module.fail_json(msg='sqlite_restore: %s' % exc, error_kind=exc.kind, **partial_result(run))
    except (OSError, ValueError, sqlite3.Error) as exc:
        module.fail_json(msg='sqlite_restore: %s' % exc, error_kind='remediation', exception=traceback.format_exc(),
                         **partial_result(run))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
