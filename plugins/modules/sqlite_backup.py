#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: sqlite_backup

short_description: Back up a live SQLite database consistently, checksummed, verified, with retention

version_added: 0.1.0

description:
  - Copies the database at O(path) with SQLite's online backup API (what the C(sqlite3) shell's C(.backup) uses),
    in one step under one read transaction, so the copy is one consistent state even while the service writes. A
    plain C(cp) of a live database can copy half of a transaction.
  - The copy is written to a temporary file in O(backups_dir), set to rollback-journal mode, fsynced and checked
    with C(PRAGMA integrity_check). A database that fails the check is not backed up (the module fails), so a
    corrupt copy never pushes good backups out of retention.
  - "The backup gets its final name C(<stem>-<UTC stamp>.db) (for example C(queue-20261124T030000Z.db)) by an atomic
    rename, after its SHA-256 is written to the sidecar C(<file>.sha256) (C(sha256sum) format): a backup without a
    matching sidecar is incomplete or damaged, and M(runbook.remediation.sqlite_restore) does not use it."
  - Verifies the new backup by restoring it into scratch (a copy in O(backups_dir) that is opened, checked and
    counted table by table, then removed).
  - Keeps the O(keep) newest backups whose checksum matches among the ones this module made; older ones go with their
    sidecars. Backups with another name (made by hand) and the C(pre-restore) directory are never removed. A backup
    whose checksum does not match is reported in RV(unusable) and left for a human to look at.
  - Idempotent - no new backup when a usable one is younger than O(max_age), or when the database has not changed
    since the newest usable backup (same SHA-256).

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes

attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written; RV(plan) says which file would be made and which would be pruned.
  diff_mode:
    support: none
  platform:
    platforms: posix

options:
  path:
    description:
      - The SQLite database file, an absolute path. It must exist.
    type: str
    required: true
  backups_dir:
    description:
      - Where the backups go, an absolute path. Created (mode V(0700)) when missing. Backups are mode V(0600).
    type: str
    required: true
  keep:
    description:
      - How many usable backups made by this module to keep, the new one included. At least V(1).
    type: int
    default: 7
  max_age:
    description:
      - When a usable backup is younger than this, make none (seconds, or with a unit C(s), C(m), C(h), C(d), C(w)).
        A backup's age comes from the UTC stamp in its name.
      - V(0) always makes one, unless the database is unchanged since the newest usable backup.
    type: str
    default: "0"
  verify:
    description:
      - Restore the new backup into scratch and check it (integrity, every table counted).
    type: bool
    default: true

notes:
  - A kill of the process at any point leaves no file under a backup's final name that is incomplete; a later run
    removes the temporary files it left behind.

seealso:
  - module: runbook.remediation.sqlite_restore

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Back up the queue database, keep a week of daily backups
  runbook.remediation.sqlite_backup:
    path: /var/lib/gateway/queue.db
    backups_dir: /var/lib/gateway/backups
    keep: 7
    max_age: 20h
  register: backup

- name: Say where it went
  ansible.builtin.debug:
    msg: "{{ backup.msg }}: {{ backup.backup.path | default('-') }} sha256 {{ backup.backup.sha256 | default('-') }}"

- name: A fresh backup before a risky change, whatever the age of the last one
  runbook.remediation.sqlite_backup:
    path: /var/lib/gateway/queue.db
    backups_dir: /var/lib/gateway/backups
"""

RETURN = r"""
backup:
  description:
    - The new backup, or when none was made the newest usable one that made a new one unnecessary. In check mode,
      the name it would get.
  type: dict
  returned: success
  sample: {"name": "queue-20261124T030000Z.db", "path": "/var/lib/gateway/backups/queue-20261124T030000Z.db",
           "sha256": "5f1d9c...", "size": 8192, "created": "2026-11-24T03:00:00Z",
           "sidecar": "/var/lib/gateway/backups/queue-20261124T030000Z.db.sha256"}
reason:
  description: Why a backup was or was not made.
  type: str
  returned: success
  sample: a usable backup is younger than 1h
verification:
  description:
    - The restore into scratch of the new backup - C(integrity) (C(ok), C(messages)), C(tables) and C(rows) per
      table.
  type: dict
  returned: when a backup was made and O(verify=true)
  sample: {"integrity": {"ok": true, "messages": ["ok"]}, "tables": 1, "rows": {"queue_items": 100}}
pruned:
  description: Backups removed by retention (or that would be in check mode), with their sidecars.
  type: list
  elements: str
  returned: success
  sample: ["/var/lib/gateway/backups/queue-20261117T030000Z.db"]
backups:
  description: The usable backups made by this module, newest first, after the run.
  type: list
  elements: str
  returned: success
  sample: ["queue-20261124T030000Z.db", "queue-20261123T030000Z.db"]
unusable:
  description: Backups made by this module whose checksum sidecar is missing or does not match; never pruned.
  type: list
  elements: dict
  returned: success
  sample: [{"name": "queue-20261120T030000Z.db", "reason": "checksum mismatch (sidecar 5f1d..., file 9ab0...)"}]
plan:
  description: The steps taken, or that would be in check mode.
  type: list
  elements: str
  returned: success
  sample:
    - copy /var/lib/gateway/queue.db with the online backup API to /var/lib/gateway/backups/queue-20261124T030000Z.db
stale_removed:
  description: Temporary files of an earlier, interrupted run that were removed.
  type: list
  elements: str
  returned: success
  sample: []
error_kind:
  description:
    - Why the module failed. V(input) for a refused path or option; V(unavailable) when the database does not exist
      or another run holds the lock; V(corrupt) when the database fails C(integrity_check) (nothing is written);
      V(remediation) when writing or verifying the backup failed.
  type: str
  returned: failure
  sample: corrupt
"""

import os
import sqlite3
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils import _files
from ansible_collections.runbook.remediation.plugins.module_utils import _sqlite


class Backup:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.db = _sqlite.check_path(params['path'], 'path')
        self.backups = _sqlite.check_path(params['backups_dir'], 'backups_dir')
        if self.backups == self.db:
            raise _sqlite.InputError('backups_dir must not be the database file itself')
        if params['keep'] < 1:
            raise _sqlite.InputError('keep must be 1 or more, got %d' % params['keep'])
        try:
            self.max_age = _files.parse_age(params['max_age'])
        except _files.InputError as exc:
            raise _sqlite.InputError('max_age: %s' % exc) from None
        self.stem = _sqlite.stem_of(self.db)
        self.own = _sqlite.own_backup_re(self.stem)
        self.label = '%s-backup' % self.stem
        self.result = {'changed': False, 'plan': [], 'pruned': [], 'stale_removed': [], 'unusable': []}

    def survey(self):
        """Our backups, newest first (by the stamp in the name), split into usable and unusable."""
        usable, unusable = [], []
        for item in _sqlite.list_files(self.backups, self.own.match):
            ok, reason, digest = _sqlite.check_checksum(item['path'], require=True)
            # When it was made: the stamp in its name (a copied file gets a new mtime).
            created = _sqlite.stamp_epoch(self.own.match(item['name']).group(1))
            item.update(sha256=digest, reason=reason, created=created)
            (usable if ok else unusable).append(item)
        usable.sort(key=lambda i: i['name'], reverse=True)
        return usable, unusable

    @staticmethod
    def describe(item):
        return {'name': item['name'], 'path': item['path'], 'sha256': item['sha256'], 'size': item['size'],
                'created': _sqlite.iso(item['created']), 'sidecar': _sqlite.sidecar_path(item['path'])}

    def prune(self, usable, plan_only):
        keep = self.module.params['keep']
        doomed = usable[keep:]
        for item in doomed:
            self.result['plan'].append('remove %s and its sidecar (retention: keep %d)' % (item['path'], keep))
            if not plan_only:
                os.unlink(item['path'])
                _sqlite.unlink_quietly(_sqlite.sidecar_path(item['path']))
            self.result['pruned'].append(item['path'])
        if doomed and not plan_only:
            _sqlite.fsync_dir(self.backups)
        return usable[:keep]

    def verify(self, path):
        """Restore into scratch: copy, open, integrity_check, count every table."""
        temp, _digest, _size = _sqlite.copy_to_temp(path, self.backups, self.label + '-verify')
        try:
            check = _sqlite.integrity(temp, immutable=True)
            rows = _sqlite.table_rows(temp) if check['ok'] else {}
        except sqlite3.Error as exc:
            check, rows = {'ok': False, 'messages': ['%s: %s' % (type(exc).__name__, exc)]}, {}
        finally:
            _sqlite.unlink_quietly(temp)
        return {'integrity': check, 'tables': len(rows), 'rows': rows}

    def run(self):
        check = self.module.check_mode
        if not os.path.isfile(self.db):
            raise _sqlite.SqliteError('there is no database file at %s' % self.db, kind='unavailable')
        if not os.path.isdir(self.backups):
            self.result['plan'].append('%s %s (mode 0700)' % ('create' if check else 'created', self.backups))
            if check:
                name = '%s-%s.db' % (self.stem, _sqlite.utc_stamp())
                return self.planned(name, [])
            _sqlite.make_dir(self.backups, 0o700)
            self.result['changed'] = True
        with _sqlite.DirLock(self.backups):
            return self.locked(check)

    def planned(self, name, usable):
        path = os.path.join(self.backups, name)
        self.result['plan'].append('copy %s with the online backup API to %s, check its integrity, write %s'
                                   % (self.db, path, os.path.basename(_sqlite.sidecar_path(path))))
        if self.module.params['verify']:
            self.result['plan'].append('verify %s by restoring it into scratch' % name)
        self.prune([{'name': name, 'path': path}, *usable], plan_only=True)
        self.result.update(changed=True, backup={'name': name, 'path': path}, reason='a backup is due',
                           msg='would back up %s to %s' % (self.db, path), backups=[i['name'] for i in usable])
        return self.result

    def locked(self, check):
        usable, unusable = self.survey()
        self.result['unusable'] = [{'name': i['name'], 'reason': i['reason']} for i in unusable]
        newest = usable[0] if usable else None
        if newest and self.max_age and time.time() - newest['created'] < self.max_age:
            self.result.update(backup=self.describe(newest), backups=[i['name'] for i in usable],
                               reason='a usable backup is younger than %s' % self.module.params['max_age'],
                               msg='%s is recent enough: no new backup' % newest['name'])
            return self.result
        name = _sqlite.stamped_name(self.backups, self.stem)
        if check:
            return self.planned(name, usable)
        self.result['stale_removed'] = _sqlite.remove_stale_temps(self.backups, self.stem)
        try:
            temp = _sqlite.snapshot(self.db, self.backups, self.label)
        except sqlite3.OperationalError as exc:
            raise _sqlite.SqliteError('cannot read %s: %s' % (self.db, exc), kind='unavailable') from None
        except sqlite3.DatabaseError as exc:
            raise _sqlite.SqliteError('%s cannot be read as a database (%s): not backing up a corrupt database'
                                      % (self.db, exc), kind='corrupt') from None
        try:
            health = _sqlite.integrity(temp, immutable=True)
            if not health['ok']:
                raise _sqlite.SqliteError(
                    '%s fails integrity_check (%s): not backing up a corrupt database%s'
                    % (self.db, '; '.join(health['messages'][:3]),
                       ', the newest good backup is %s' % newest['name'] if newest else ''), kind='corrupt')
            digest = _sqlite.sha256_file(temp)
            if newest and digest == newest['sha256']:
                self.result.update(backup=self.describe(newest), backups=[i['name'] for i in usable],
                                   reason='the database is unchanged since %s' % newest['name'],
                                   msg='%s is unchanged since %s: no new backup' % (self.db, newest['name']))
                return self.result
            path = os.path.join(self.backups, name)
            self.result['plan'].append('copied %s with the online backup API, integrity ok, sha256 %s'
                                       % (self.db, digest))
            _sqlite.write_sidecar(path, [(name, digest)], self.label)
            _sqlite.publish(temp, path)
            temp = None
        finally:
            if temp is not None:
                _sqlite.unlink_quietly(temp)
        self.result['changed'] = True
        self.result['plan'].append('published %s with %s' % (path, os.path.basename(_sqlite.sidecar_path(path))))
        st = os.stat(path)
        made = {'name': name, 'path': path, 'sha256': digest, 'size': st.st_size, 'mtime': st.st_mtime,
                'created': _sqlite.stamp_epoch(self.own.match(name).group(1))}
        if self.module.params['verify']:
            verification = self.verify(path)
            self.result['verification'] = verification
            if not verification['integrity']['ok']:
                os.unlink(path)
                _sqlite.unlink_quietly(_sqlite.sidecar_path(path))
                raise _sqlite.SqliteError('the new backup %s failed its verification (%s) and was removed'
                                          % (name, '; '.join(verification['integrity']['messages'][:3])))
            self.result['plan'].append('verified %s in scratch: integrity ok, %d table(s) read'
                                       % (name, verification['tables']))
        kept = self.prune([made, *usable], plan_only=False)
        self.result.update(backup=self.describe(made), backups=[i['name'] for i in kept], reason='a backup was due',
                           msg='backed up %s to %s' % (self.db, path))
        return self.result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='str', required=True),
            backups_dir=dict(type='str', required=True),
            keep=dict(type='int', default=7),
            max_age=dict(type='str', default='0'),
            verify=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    run = None
    try:
        run = Backup(module)
        result = run.run()
    except _sqlite.SqliteError as exc:
        module.fail_json(msg='sqlite_backup: %s' % exc, error_kind=exc.kind, **partial_result(run))
    except (OSError, sqlite3.Error) as exc:
        module.fail_json(msg='sqlite_backup: %s' % exc, error_kind='remediation', exception=traceback.format_exc(),
                         **partial_result(run))
    module.exit_json(**result)


def partial_result(run):
    """What a failed run found and did, for the failure's result."""
    if run is None:
        return {}
    return dict((key, value) for key, value in run.result.items() if key != 'msg')


if __name__ == '__main__':
    main()
