# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a function as another user: fork, drop to that uid/gid, send the result back.

Private to this collection (the leading underscore): no compatibility promise.

Root without CAP_SYS_PTRACE or CAP_LEASE (the default in a container) may list another
user's /proc/PID/fd but not follow it, may not follow another user's /proc/PID/exe nor
read its environ, and may not take a lease on another user's file; that user may. The
modules do those few reads from a forked child that took the user's identity.
"""

from __future__ import annotations

import json
import os


class RunAsError(Exception):
    """The function could not be run as the other user, or it raised there.

    ``error`` is the name of the exception raised in the child (None when the child could
    not even report one), ``errno`` its errno when it was an OSError.
    """

    def __init__(self, message, error=None, errno=None):
        super().__init__(message)
        self.error = error
        self.errno = errno


def _child(write_end, uid, gid, groups, func, args, kwargs):  # pragma: no cover - runs in the child
    """Drop privileges, run ``func`` and write {'result': ...} or {'error': ...} as JSON; never returns."""
    code = 0
    try:
        try:
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            payload = {'result': func(*args, **kwargs)}
            data = json.dumps(payload)
        except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
            data = json.dumps({'error': type(exc).__name__, 'message': str(exc),
                               'errno': getattr(exc, 'errno', None)})
        data = data.encode()
        while data:
            data = data[os.write(write_end, data):]
    except BaseException:  # noqa: BLE001 - the child must always reach os._exit
        code = 1
    finally:
        os._exit(code)


def run_as(uid, gid, func, *args, groups=(), **kwargs):
    """``func(*args, **kwargs)`` computed in a forked child running as ``uid``/``gid`` (supplementary groups:
    ``groups``, none by default); returns its result, which must be JSON-able (it comes back through a pipe, so
    tuples come back as lists and dict keys as strings).

    Raises RunAsError when the child cannot be started, cannot take the identity, or ``func`` raises there.
    Only the calling thread exists in the child: ``func`` must not need locks other threads may hold.
    """
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise RunAsError('cannot fork to run as uid %d: %s' % (uid, exc.strerror or exc), 'OSError',
                         exc.errno) from None
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        _child(write_end, uid, gid, groups, func, args, kwargs)
    os.close(write_end)
    chunks = []
    try:
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _pid, status = os.waitpid(child, 0)
    who = 'as uid %d gid %d' % (uid, gid)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        how = ('exit status %d' % os.WEXITSTATUS(status) if os.WIFEXITED(status)
               else 'signal %d' % os.WTERMSIG(status))
        raise RunAsError('the child running %s failed (%s) before it could report' % (who, how))
    try:
        payload = json.loads(b''.join(chunks).decode())
    except ValueError:
        raise RunAsError('the child running %s sent no readable result' % who) from None
    if 'error' in payload:
        raise RunAsError('%s failed %s: %s: %s' % (getattr(func, '__name__', 'the function'), who, payload['error'],
                                                   payload['message']), payload['error'], payload.get('errno'))
    return payload['result']
