# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Security evidence of one service on its target, read-only, in one module call.

What an investigator asks for first (seed 002 "preserve evidence"): processes, sockets,
the service's open files, logged-in users, the auth and security logs, the unit or
container state, and checksums of the service's executables and configuration. Every
collector only reads: commands are argv lists that list or show, files are opened for
reading. For Docker and Compose services the same collectors run inside the container
(``docker exec``), the container's metadata comes from ``docker inspect``.

The archive is made on the controller (action plugin ``evidence_bundle``): nothing is
written on the target, not even a temporary file.

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex

from ansible_collections.runbook.remediation.plugins.module_utils import _service

# Whole items are bounded: a log flood must not become a 1 GB module result.
DEFAULT_MAX_BYTES = 1024 * 1024
AUTH_LOGS = ('/var/log/auth.log', '/var/log/secure')
_ABS_PATH = re.compile(r'^/[^\s;]+$')


def _clip(text, max_bytes, keep='head'):
    data = text.encode('utf-8', 'replace')
    if len(data) <= max_bytes:
        return text, False
    part = data[:max_bytes] if keep == 'head' else data[-max_bytes:]
    return part.decode('utf-8', 'ignore'), True


def tail_file(path, lines, max_bytes):
    """The last ``lines`` lines of a file (reading at most ``max_bytes`` from its end)."""
    with open(path, 'rb') as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        data = handle.read()
    text = data.decode('utf-8', 'replace')
    if size > max_bytes:
        text = text.split('\n', 1)[-1]
    return '\n'.join(text.splitlines()[-lines:]) + '\n'


def sha256_file(path, chunk=1024 * 1024):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def exec_paths(exec_start):
    """Absolute file paths in a ``systemctl show -p ExecStart`` value: the executable and
    the arguments that look like paths (a script, a config file)."""
    paths = []
    for part in re.findall(r'argv\[\]=([^;]*)', exec_start or ''):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        for word in words:
            value = word.split('=', 1)[1] if word.startswith('--') and '=' in word else word
            if _ABS_PATH.match(value) and value not in paths:
                paths.append(value)
    return paths


def service_log_dirs(svc):
    """Directories of the service's log globs (where its security.log lives)."""
    dirs = []
    for pattern in svc.get('logs') or []:
        directory = os.path.dirname(str(pattern))
        if directory and directory not in dirs:
            dirs.append(directory)
    return dirs


def redact_kubernetes(text):
    """kubectl's JSON with every container's environment values replaced (names kept):
    a pod template may carry literal secrets."""
    try:
        data = json.loads(text or '{}')
    except ValueError:
        return '(not JSON: not kept)\n'

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ('containers', 'initContainers') and isinstance(value, list):
                    for container in value:
                        if isinstance(container, dict):
                            for entry in container.get('env') or []:
                                if isinstance(entry, dict) and 'value' in entry:
                                    entry['value'] = '(not kept)'
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        return node

    # kubectl.kubernetes.io/last-applied-configuration repeats the template, values and all.
    def drop_last_applied(node):
        if isinstance(node, dict):
            metadata = node.get('metadata')
            annotations = metadata.get('annotations') if isinstance(metadata, dict) else None
            if isinstance(annotations, dict) and 'kubectl.kubernetes.io/last-applied-configuration' in annotations:
                annotations['kubectl.kubernetes.io/last-applied-configuration'] = '(not kept)'
            for value in node.values():
                drop_last_applied(value)
        elif isinstance(node, list):
            for item in node:
                drop_last_applied(item)

    walk(data)
    drop_last_applied(data)
    return json.dumps(data, indent=2, sort_keys=True) + '\n'


class Collector(object):
    """Reads the evidence through ``run(argv) -> (rc, out, err)``; never writes."""

    def __init__(self, run, svc, log_lines=200, max_bytes=DEFAULT_MAX_BYTES, extra_paths=(), security_logs=()):
        self.run = run
        self.svc = svc
        self.manager = svc.get('manager')
        self.log_lines = int(log_lines)
        self.max_bytes = int(max_bytes)
        self.extra_paths = list(extra_paths)
        self.security_logs = list(security_logs)
        self.items = []
        self.checksums = []
        self.commands = _service.Commands(run, svc, log_lines=log_lines)
        self.container = None

    # --- helpers -------------------------------------------------------------------------

    def _inside(self, argv):
        return ['docker', 'exec', self.container, *list(argv)] if self.container else list(argv)

    def command(self, name, argv, keep='head'):
        argv = self._inside(argv)
        rc, out, err = self.run(argv)
        text = out if rc == 0 or out else (err or '')
        text, truncated = _clip(text or '', self.max_bytes, keep)
        self.items.append({'name': name, 'source': ' '.join(shlex.quote(a) for a in argv), 'rc': rc,
                           'content': text, 'truncated': truncated})
        return rc, out

    def file_tail(self, name, path):
        if self.container:
            return self.command(name, ['tail', '-n', str(self.log_lines), path], keep='tail')
        try:
            text = tail_file(path, self.log_lines, self.max_bytes)
            rc = 0
        except OSError as exc:
            text, rc = '%s: %s\n' % (path, exc.strerror or exc), 1
        self.items.append({'name': name, 'source': path, 'rc': rc, 'content': text, 'truncated': False})
        return rc, text

    def checksum(self, paths):
        """sha256, size, mode, owner and mtime of each path (never its content)."""
        paths = [p for i, p in enumerate(paths) if p and p not in paths[:i]]
        if self.container:
            if not paths:
                return
            rc, out, _err = self.run(self._inside(['sha256sum', '--', *paths]))
            sums = {}
            for line in (out or '').splitlines():
                digest, _sep, path = line.partition('  ')
                sums[path] = digest
            for path in paths:
                entry = {'path': path, 'where': 'container %s' % self.container}
                if path in sums:
                    entry['sha256'] = sums[path]
                else:
                    entry['error'] = 'unreadable (rc=%s)' % rc
                self.checksums.append(entry)
            return
        for path in paths:
            entry = {'path': path, 'where': 'host'}
            try:
                st = os.stat(path)
                entry.update(size=st.st_size, mode='%04o' % (st.st_mode & 0o7777), uid=st.st_uid, gid=st.st_gid,
                             mtime=int(st.st_mtime))
                entry['sha256'] = sha256_file(path) if os.path.isfile(path) else None
            except OSError as exc:
                entry['error'] = exc.strerror or str(exc)
            self.checksums.append(entry)

    # --- the collection -------------------------------------------------------------------------

    def collect(self):
        if self.manager == 'systemd':
            self._systemd()
        elif self.manager == 'kubernetes':
            self._kubernetes()
        else:
            self._container()
        self._common()
        return {'items': self.items, 'checksums': self.checksums}

    def _systemd(self):
        unit = self.svc['unit']
        _rc, out = self.command('unit_show', ['systemctl', 'show', unit, '--no-pager'])
        props = dict(line.split('=', 1) for line in (out or '').splitlines() if '=' in line)
        self.command('unit_status', ['systemctl', 'status', unit, '--no-pager', '--full', '--lines=0'])
        self.command('service_journal', ['journalctl', '--unit=%s' % unit, '--lines=%d' % self.log_lines,
                                         '--no-pager', '--output=short-iso'], keep='tail')
        pid = props.get('MainPID', '0')
        self.main_pid = pid if pid.isdigit() and pid != '0' else None
        files = exec_paths(props.get('ExecStart', ''))
        files += [props.get('FragmentPath', ''), *(props.get('DropInPaths', '') or '').split()]
        env_files = re.findall(r'(\S+) \(ignore_errors=', props.get('EnvironmentFiles', ''))
        files += [re.sub(r'^-', '', p) for p in env_files]
        self.config_files = files
        for path in AUTH_LOGS:
            if os.path.exists(path):
                self.file_tail('auth_log', path)
                break
        else:
            # No syslog daemon: the journal's auth and authpriv facilities.
            self.command('auth_log', ['journalctl', 'SYSLOG_FACILITY=4', '+', 'SYSLOG_FACILITY=10',
                                      '--lines=%d' % self.log_lines, '--no-pager', '--output=short-iso'], keep='tail')

    def _container(self):
        name = self.commands.container()
        rc, out, err = self.run(['docker', 'inspect', '--type', 'container', name])
        if rc != 0:
            raise _service.ServiceError('container %s cannot be inspected: %s' % (
                name, ' '.join((err or out or '').split())[:300]), 'input')
        info = (json.loads(out) or [{}])[0]
        # The environment may hold secrets: the evidence keeps the variable names only.
        config = dict(info.get('Config') or {})
        config['Env'] = [str(e).split('=', 1)[0] + '=(not kept)' for e in config.get('Env') or []]
        info['Config'] = config
        text, truncated = _clip(json.dumps(info, indent=2, sort_keys=True), self.max_bytes)
        self.items.append({'name': 'container_inspect', 'source': 'docker inspect %s' % name, 'rc': 0,
                           'content': text + '\n', 'truncated': truncated})
        rc, out, err = self.run(['docker', 'logs', '--timestamps', '--tail', str(self.log_lines), name])
        text, truncated = _clip((out or '') + (err or ''), self.max_bytes, 'tail')
        self.items.append({'name': 'service_journal', 'source': 'docker logs %s' % name, 'rc': rc,
                           'content': text, 'truncated': truncated})
        running = (info.get('State') or {}).get('Running')
        self.container = name if running else None
        self.main_pid = '1' if running else None
        # The executable as the container's PID 1 runs it (its Path may be a bare name).
        executable = info.get('Path') or ''
        self.config_files = [executable if _ABS_PATH.match(executable) else '/proc/1/exe']
        self.config_files += [a for a in info.get('Args') or [] if _ABS_PATH.match(str(a))]
        if not running:
            self.items.append({'name': 'note', 'source': 'docker inspect', 'rc': 0, 'truncated': False,
                               'content': 'container %s is not running: no process, socket or file evidence\n' % name})
        compose_files = []
        if self.manager == 'compose' and self.svc.get('project_src'):
            compose_files = sorted(glob.glob(os.path.join(str(self.svc['project_src']), '*.y*ml')))
        self.host_files = compose_files

    def _kubectl(self, name, *args, keep='head'):
        argv = self.commands.kubectl(*args)
        rc, out, err = self.run(argv)
        text, truncated = _clip(out if rc == 0 or out else (err or ''), self.max_bytes, keep)
        self.items.append({'name': name, 'source': ' '.join(shlex.quote(a) for a in argv), 'rc': rc,
                           'content': text, 'truncated': truncated})
        return rc, out

    def _kubernetes(self):
        """The Deployment, its ReplicaSets and pods (environment values not kept: they may
        be secrets), the namespace's events, the pods' logs of the last hour (the previous
        container's too), and `kubectl top` where a metrics server answers."""
        state = self.commands.state()  # an unknown Deployment or namespace is bad input here
        selector = state['selector']
        for name, kind in (('deployment', 'deployment/%s' % self.svc['deployment']),
                           ('replicasets', 'replicasets'), ('pods', 'pods')):
            args = ['get', kind, '--output', 'json'] + ([] if kind.startswith('deployment/') else
                                                        ['--selector', selector])
            argv = self.commands.kubectl(*args)
            rc, out, err = self.run(argv)
            content = redact_kubernetes(out) if rc == 0 else (err or '')
            text, truncated = _clip(content, self.max_bytes)
            self.items.append({'name': name, 'source': ' '.join(shlex.quote(a) for a in argv), 'rc': rc,
                               'content': text, 'truncated': truncated})
        self._kubectl('events', 'get', 'events', '--sort-by=.lastTimestamp', keep='tail')
        self._kubectl('service_journal', 'logs', '--selector', selector, '--all-containers', '--prefix',
                      '--timestamps', '--since=1h', '--tail', str(self.log_lines), keep='tail')
        self._kubectl('previous_logs', 'logs', '--selector', selector, '--all-containers', '--prefix',
                      '--timestamps', '--previous', '--tail', str(self.log_lines), keep='tail')
        self._kubectl('top', 'top', 'pods', '--selector', selector, '--containers')
        self.config_files = []
        self.host_files = []

    def _common(self):
        if self.manager != 'systemd' and self.container is None:
            self._host_checksums()
            return
        self.command('processes', ['ps', '-eww', '-o', 'pid,ppid,user,lstart,etimes,stat,rss,args', '--sort', 'pid'])
        self.command('sockets', ['ss', '-t', '-u', '-a', '-n', '-p', '-e'])
        if self.main_pid:
            rc, _out = self.command('open_files', ['lsof', '-n', '-P', '-p', self.main_pid])
            if rc not in (0, 1):
                self.items.pop()
                self.command('open_files', ['ls', '-l', '/proc/%s/fd' % self.main_pid])
        self.command('users', ['who', '-a'])
        logs = list(self.security_logs) or [os.path.join(d, 'security.log') for d in service_log_dirs(self.svc)]
        for index, path in enumerate(logs):
            self.file_tail('security_log' if index == 0 else 'security_log_%d' % index, path)
        self.checksum(self.config_files + self.extra_paths)
        self._host_checksums()

    def _host_checksums(self):
        files = getattr(self, 'host_files', [])
        if files:
            container, self.container = self.container, None
            self.checksum(files)
            self.container = container
