# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the collection's PostgreSQL modules share: one connection made the same way and
errors said on one line, with the error_kind the scenario frame maps to an exit code.

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations


class ModuleError(Exception):
    """A failure with its error_kind (``input``, ``unavailable``, ``remediation``)."""

    def __init__(self, msg, kind):
        super().__init__(msg)
        self.kind = kind


def one_line(text):
    """psycopg2's messages span lines (hints, details): one line for a summary."""
    return '; '.join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def connect_error_kind(message):
    """(error_kind, advice) for a failed connection, from libpq's message."""
    text = message.lower()
    if 'remaining connection slots are reserved' in text or 'too many clients' in text:
        return 'unavailable', ('the connection pool is exhausted; PostgreSQL keeps the last '
                               'superuser_reserved_connections slots for superusers, so log in as one')
    if ('password authentication failed' in text or 'no pg_hba.conf entry' in text or 'does not exist' in text
            or 'no password supplied' in text or 'is not permitted to log in' in text):
        return 'input', 'check the database login in the service description'
    return 'unavailable', ''


def login_argument_spec():
    """The login options every PostgreSQL module of the collection takes (what connect() reads)."""
    return dict(
        login_host=dict(type='str', default='', aliases=['host']),
        login_unix_socket=dict(type='str', default='', aliases=['unix_socket']),
        login_port=dict(type='int', default=5432, aliases=['port']),
        login_user=dict(type='str', default='postgres', aliases=['login']),
        login_password=dict(type='str', default='', no_log=True),
        ssl_mode=dict(type='str', default='prefer',
                      choices=['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']),
        ca_cert=dict(type='str', aliases=['ssl_rootcert']),
        connect_timeout=dict(type='int', default=10),
    )


def connect(psycopg2, params, dbname, application_name):
    """An autocommit connection from the modules' common login options (login_host,
    login_unix_socket, login_port, login_user, login_password, ssl_mode, ca_cert,
    connect_timeout). Raises ModuleError saying where and why it failed."""
    kwargs = dict(dbname=dbname, user=params['login_user'], port=params['login_port'], sslmode=params['ssl_mode'],
                  connect_timeout=params['connect_timeout'], application_name=application_name)
    host = params['login_host'] or params['login_unix_socket']
    if host:
        kwargs['host'] = host
    if params['login_password']:
        kwargs['password'] = params['login_password']
    if params['ca_cert']:
        kwargs['sslrootcert'] = params['ca_cert']
    where = '%s:%s' % (host or 'the local socket', params['login_port'])
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        message = one_line(exc)
        kind, advice = connect_error_kind(message)
        raise ModuleError('cannot connect to PostgreSQL at %s as %s (database %s): %s%s' % (
            where, params['login_user'], dbname, message, ' - ' + advice if advice else ''), kind) from None
    # Every statement is its own transaction: one failing check does not abort the next.
    conn.autocommit = True
    return conn
