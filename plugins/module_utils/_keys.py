# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""API key rotation on the target, in one module call: new key -> env file -> restart the
service and every consumer -> verify (new key accepted, old refused, consumers healthy) ->
keep, or put the old file back, restart again and report.

The keys live in this process's memory only: never in a result, a log line or a file
other than the env file the service reads (and the key file the controller names, which
the action plugin writes).

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time

from ansible_collections.runbook.remediation.plugins.module_utils import _service

VARIABLE_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,63}$')
# The line a rotation leaves in the env file: when, for the next run's idempotence check.
MARKER = '# runbook.remediation: %s rotated at %s'
MARKER_RE = re.compile(r'^# runbook\.remediation: (\S+) rotated at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$')


def last_rotation(text, variable):
    """Epoch seconds of the last rotation of ``variable`` recorded in the file, or None."""
    import calendar

    found = None
    for line in text.splitlines():
        match = MARKER_RE.match(line.strip())
        if match and match.group(1) == variable:
            found = calendar.timegm(time.strptime(match.group(2), '%Y-%m-%dT%H:%M:%SZ'))
    return found


class RotationError(Exception):
    """Rotation refused or failed; ``kind`` is the result's error_kind."""

    def __init__(self, message, kind='remediation'):
        super().__init__(message)
        self.kind = kind


def read_env(path, variable):
    """(file text, the variable's value or None)."""
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    value = None
    for line in text.splitlines():
        name, sep, rest = line.strip().partition('=')
        if sep and name.strip() == variable:
            value = rest.strip().strip('\'"')
    return text, value


def replace_value(text, variable, value, now=None):
    """The env file's text with ``variable`` set to ``value`` (added when missing) and the
    rotation marker updated."""
    lines, done = [], False
    for line in text.splitlines():
        match = MARKER_RE.match(line.strip())
        if match and match.group(1) == variable:
            continue
        name, sep, _rest = line.strip().partition('=')
        if sep and name.strip() == variable:
            if not done:
                lines.append('%s=%s' % (variable, value))
                done = True
            continue
        lines.append(line)
    if not done:
        lines.append('%s=%s' % (variable, value))
    stamp = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() if now is None else now))
    lines.append(MARKER % (variable, stamp))
    return '\n'.join(lines) + '\n'


def write_env(path, text, mode=0o600):
    """Atomically replace the env file: same owner, mode 0600, a temporary file in the same
    directory renamed over it."""
    try:
        st = os.stat(path)
        owner = (st.st_uid, st.st_gid)
    except OSError:
        owner = None
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.runbook-key-', dir=directory)
    try:
        os.fchmod(fd, mode)
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, *owner)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def new_key(nbytes=32):
    return secrets.token_urlsafe(int(nbytes))


class Rotation(object):
    """The rotation of one service's key; ``run`` for commands, ``status(url, key)`` for
    the HTTP status of one request with a key, ``prober`` for health."""

    def __init__(self, run, status, prober, svc, consumers, env_file, variable, verify_url,
                 verify_timeout=20.0, stop_timeout=10, sleep=time.sleep, monotonic=time.monotonic):
        self.run = run
        self.status = status
        self.prober = prober
        self.svc = svc
        self.consumers = list(consumers)
        self.env_file = env_file
        self.variable = variable
        self.verify_url = verify_url
        self.verify_timeout = float(verify_timeout)
        self.stop_timeout = int(stop_timeout)
        self.sleep = sleep
        self.monotonic = monotonic
        self.actions = []
        self.findings = []

    def _restart_all(self):
        for svc in [self.svc, *self.consumers]:
            _service.Commands(self.run, svc).restart(dead=False, stop_timeout=self.stop_timeout, stop_wait=0,
                                                     sleep=self.sleep)
            self.actions.append('restarted %s (%s)' % (svc['name'], svc['manager']))

    def verify(self, good, bad):
        """Until the deadline: ``good`` accepted (2xx), ``bad`` refused (401/403), every
        consumer healthy. Returns (ok, details) without any key in it."""
        deadline = self.monotonic() + self.verify_timeout
        details = {}
        while True:
            accepted = self.status(self.verify_url, good)
            refused = self.status(self.verify_url, bad) if bad else None
            consumers = {c['name']: self.prober.healthy(c) for c in self.consumers}
            details = {'new_key_status': accepted, 'old_key_status': refused, 'consumers_healthy': consumers,
                       'service_healthy': self.prober.healthy(self.svc)}
            ok = (accepted is not None and 200 <= accepted < 300 and (bad is None or refused in (401, 403))
                  and all(consumers.values()) and details['service_healthy'])
            if ok or self.monotonic() >= deadline:
                return ok, details
            self.sleep(0.5)

    def rotate(self, key_bytes=32):
        """{'rotated', 'restored', 'verification', ...} and, for the action plugin only, ``_new_key``."""
        try:
            text, old = read_env(self.env_file, self.variable)
        except OSError as exc:
            raise RotationError('cannot read the key file %s: %s' % (self.env_file, exc.strerror or exc),
                                'input') from None
        if not old:
            raise RotationError('%s does not set %s: nothing to rotate' % (self.env_file, self.variable), 'input')
        key = new_key(key_bytes)
        write_env(self.env_file, replace_value(text, self.variable, key))
        self.actions.append('wrote a new %s to %s (mode 0600)' % (self.variable, self.env_file))
        try:
            self._restart_all()
            ok, details = self.verify(key, old)
        except _service.ServiceError as exc:
            ok, details = False, {'error': str(exc)}
        if ok:
            self.actions.append('verified: the new key is accepted, the old one refused, %d consumers healthy; '
                                'the old key is retired' % len(self.consumers))
            return {'rotated': True, 'restored': False, 'verification': details, '_new_key': key}
        self.findings.append('after the rotation: %s' % describe(details))
        # Put the old key back (the file as it was), restart, check the old key works again.
        write_env(self.env_file, text)
        self.actions.append('restored the previous %s in %s' % (self.variable, self.env_file))
        try:
            self._restart_all()
            restored_ok, restored = self.verify(old, None)
        except _service.ServiceError as exc:
            restored_ok, restored = False, {'error': str(exc)}
        self.findings.append('after the restore: %s' % describe(restored))
        return {'rotated': False, 'restored': restored_ok, 'verification': details, 'restore_verification': restored}


def describe(details):
    if details.get('error'):
        return details['error']
    bad = [name for name, healthy in (details.get('consumers_healthy') or {}).items() if not healthy]
    parts = ['key accepted with HTTP %s' % details.get('new_key_status')]
    if details.get('old_key_status') is not None:
        parts.append('old key answered HTTP %s' % details.get('old_key_status'))
    parts.append('service %s' % ('healthy' if details.get('service_healthy') else 'unhealthy'))
    parts.append('unhealthy consumers: %s' % ', '.join(bad) if bad else 'consumers healthy')
    return ', '.join(parts)
