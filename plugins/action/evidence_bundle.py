# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of runbook.remediation.evidence_bundle: collect on the target, archive here.

The module reads the evidence on the target (one round trip, nothing written there); this
plugin packs it into one tar.gz on the controller with a MANIFEST.sha256 of its members
and writes the archive's sha256 beside it. The result carries the archive's path, hash and
manifest, never the evidence itself (it would fill the output and the timeline).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.runbook.remediation.plugins.module_utils import _timeline

_SAFE = re.compile(r'[^A-Za-z0-9_.-]+')


def safe_name(text):
    return _SAFE.sub('_', str(text)).strip('._') or 'unnamed'


def _member(tar, name, data, mtime):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def build_archive(prefix, items, checksums, meta, mtime):
    """(tar.gz bytes, {member: sha256}) of the collected items."""
    members = {}
    for item in items:
        name = '%s/%s.txt' % (prefix, safe_name(item['name']))
        suffix = 2
        while name in members:
            name = '%s/%s_%d.txt' % (prefix, safe_name(item['name']), suffix)
            suffix += 1
        members[name] = (item.get('content') or '').encode('utf-8', 'replace')
    lines = ['%s  %s' % (c.get('sha256') or '-' * 64, c['path']) for c in checksums]
    members['%s/checksums.sha256' % prefix] = ('\n'.join(lines) + '\n').encode()
    members['%s/checksums.json' % prefix] = (json.dumps(checksums, indent=2, sort_keys=True) + '\n').encode()
    members['%s/collection.json' % prefix] = (json.dumps(meta, indent=2, sort_keys=True) + '\n').encode()
    manifest = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    text = ''.join('%s  %s\n' % (digest, name) for name, digest in sorted(manifest.items()))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        for name in sorted(members):
            _member(tar, name, members[name], mtime)
        _member(tar, 'MANIFEST.sha256', text.encode(), mtime)
    return buffer.getvalue(), manifest


def write_private(path, data):
    """Write ``data`` to a new file, mode 0600 (never over an existing one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)


class ActionModule(ActionBase):

    _VALID_ARGS = frozenset(('service', 'dest', 'log_lines', 'max_bytes', 'paths', 'security_logs'))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        dest = args.pop('dest', None) or os.path.join(_timeline.state_dir(), 'evidence')
        service = args.get('service') or {}
        if not isinstance(service, dict):
            raise AnsibleActionFail('evidence_bundle: service must be a dict (a service description)')
        # The target only reads; in check mode too (the module supports it).
        collected = self._execute_module(module_name='runbook.remediation.evidence_bundle', module_args=args,
                                         task_vars=task_vars)
        if collected.get('failed'):
            return dict(result, failed=True, msg=collected.get('msg', 'evidence collection failed'),
                        error_kind=collected.get('error_kind', 'remediation'))
        host = task_vars.get('inventory_hostname') or 'host'
        now = time.time()
        stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))
        prefix = safe_name(host)
        items = collected.get('items') or []
        checksums = collected.get('checksums') or []
        meta = {
            'host': host,
            'service': service.get('name'),
            'manager': service.get('manager'),
            'collected_at': stamp,
            'incident': task_vars.get('runbook_incident') or os.environ.get('RUNBOOK_INCIDENT') or None,
            'run_id': os.environ.get('RUNBOOK_RUN_ID') or task_vars.get('runbook_run_id') or None,
            'items': [{k: i.get(k) for k in ('name', 'source', 'rc', 'truncated')} for i in items],
            'check_mode': bool(self._task.check_mode),
        }
        data, manifest = build_archive(prefix, items, checksums, meta, int(now))
        digest = hashlib.sha256(data).hexdigest()
        try:
            os.makedirs(dest, mode=0o700, exist_ok=True)
            base = os.path.join(dest, '%s-%s-%s' % (prefix, safe_name(service.get('name')), stamp))
            path, n = base + '.tar.gz', 1
            while os.path.exists(path):
                n += 1
                path = '%s-%d.tar.gz' % (base, n)
            write_private(path, data)
            write_private(path + '.sha256', ('%s  %s\n' % (digest, os.path.basename(path))).encode())
        except OSError as exc:
            return dict(result, failed=True, error_kind='unavailable',
                        msg='evidence_bundle: cannot write the archive under %s: %s' % (dest, exc.strerror or exc))
        summary = [{'name': i['name'], 'source': i.get('source'), 'rc': i.get('rc'),
                    'bytes': len((i.get('content') or '').encode('utf-8', 'replace')),
                    'truncated': bool(i.get('truncated'))} for i in items]
        result.update(
            changed=False,
            archive=path,
            sha256=digest,
            size=len(data),
            manifest=manifest,
            items=summary,
            checksums=checksums,
            msg='evidence of %s on %s: %s sha256 %s (%d items, %d checksums)' % (
                service.get('name'), host, path, digest, len(items), len(checksums)),
        )
        return result
