# -*- coding: utf-8 -*-
# Copyright: runbook.remediation contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One small layer under the safety envelope and the incident timeline: SQLite (a file in
one user's state directory, the default) or PostgreSQL (``$RUNBOOK_STATE_DSN``, a libpq
DSN or URL, shared by a team and a fleet of controllers).

Private to this collection (the leading underscore): no compatibility promise.

What differs, and where it is hidden
  placeholders  the stores write ``?``; PostgreSQL gets ``%s`` (and ``%`` doubled)
  upserts       ``INSERT OR REPLACE INTO t (...)`` becomes ``... ON CONFLICT (key) DO
                UPDATE`` with the table's key from ``upsert_keys``
  ids           :meth:`Connection.insert` returns the new row's id (``lastrowid`` or
                ``RETURNING id``)
  schema        ``INTEGER PRIMARY KEY [AUTOINCREMENT]`` becomes ``BIGSERIAL PRIMARY KEY``,
                ``REAL`` becomes ``DOUBLE PRECISION``
  transactions  :meth:`Connection.transaction` serialises writers like SQLite's
                ``BEGIN IMMEDIATE``: on PostgreSQL a ``pg_advisory_xact_lock`` on a fixed
                key per store, taken first in every transaction (also the schema's)

psycopg2 is imported only when a DSN is given: without one this module, and the stores,
need the standard library only. Error messages never carry the DSN's password: they name
the server as ``host:port/dbname``.
"""

from __future__ import annotations

import re
import sqlite3

ENV_DSN = 'RUNBOOK_STATE_DSN'

# One advisory lock key per store (any fixed 64-bit numbers; "RBKE"/"RBKT" in ASCII).
LOCK_ENVELOPE = 0x52424B45
LOCK_TIMELINE = 0x52424B54

_UPSERT_RE = re.compile(r'^\s*INSERT OR REPLACE INTO (\w+) \(([^)]*)\)', re.IGNORECASE)


class StateDBError(Exception):
    """The shared database cannot be reached or used (one line, no password)."""


def env_dsn(environ=None):
    """``$RUNBOOK_STATE_DSN``, or None when it is unset or empty (SQLite)."""
    import os

    env = os.environ if environ is None else environ
    return (env.get(ENV_DSN) or '').strip() or None


def _psycopg2():
    try:
        import psycopg2
        import psycopg2.extensions
    except ImportError as exc:
        raise StateDBError('%s is set but psycopg2 is not installed in this Python (pip install '
                           'psycopg2-binary)' % ENV_DSN) from exc
    return psycopg2


def dsn_parts(dsn):
    """The DSN's keywords (host, port, dbname, user, password...), URL or key=value."""
    psycopg2 = _psycopg2()
    try:
        return psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error as exc:
        # libpq's message may quote the DSN: say only that it is malformed.
        raise StateDBError('%s is not a valid libpq DSN or postgresql:// URL' % ENV_DSN) from exc


def describe(dsn):
    """``postgresql://host:port/dbname`` for messages: never the password."""
    try:
        parts = dsn_parts(dsn)
    except StateDBError:
        return 'postgresql://(malformed DSN)'
    return 'postgresql://%s:%s/%s' % (parts.get('host') or 'localhost', parts.get('port') or '5432',
                                      parts.get('dbname') or parts.get('user') or '')


def split_password(dsn):
    """(the DSN without its password, as key=value text; the password or None)."""
    psycopg2 = _psycopg2()
    parts = dsn_parts(dsn)
    password = parts.pop('password', None)
    return psycopg2.extensions.make_dsn(**parts), password


def passfile_line(password):
    """One ``~/.pgpass`` line for any server (the file is private to one child run)."""
    escaped = password.replace('\\', '\\\\').replace(':', '\\:')
    return '*:*:*:*:%s\n' % escaped


def _pg_sql(sql, upsert_keys):
    """A statement written for SQLite, as PostgreSQL reads it."""
    match = _UPSERT_RE.match(sql)
    if match:
        table = match.group(1)
        columns = [c.strip() for c in match.group(2).split(',')]
        keys = upsert_keys[table]
        rest = [c for c in columns if c not in keys]
        sql = 'INSERT INTO' + sql[match.start(1) - 1:]
        if rest:
            sql += ' ON CONFLICT (%s) DO UPDATE SET %s' % (
                ', '.join(keys), ', '.join('%s = EXCLUDED.%s' % (c, c) for c in rest))
        else:
            sql += ' ON CONFLICT (%s) DO NOTHING' % ', '.join(keys)
    return sql.replace('%', '%%').replace('?', '%s')


def pg_schema(statement):
    """A SQLite CREATE TABLE statement with PostgreSQL's types."""
    statement = re.sub(r'\bINTEGER PRIMARY KEY AUTOINCREMENT\b', 'BIGSERIAL PRIMARY KEY', statement)
    statement = re.sub(r'\bid INTEGER PRIMARY KEY\b', 'id BIGSERIAL PRIMARY KEY', statement)
    return re.sub(r'\bREAL\b', 'DOUBLE PRECISION', statement)


class Connection(object):
    """One open database: ``backend`` is ``sqlite`` or ``postgres``; ``errors`` the
    driver's exception classes; ``where`` names it for messages (a path, or the
    password-free server)."""

    def __init__(self, raw, backend, where, errors, lock_key=None, upsert_keys=None):
        self.raw = raw
        self.backend = backend
        self.where = where
        self.errors = errors
        self.lock_key = lock_key
        self.upsert_keys = upsert_keys or {}

    def execute(self, sql, params=()):
        """A cursor over the statement's rows (iterable, fetchone, fetchall, rowcount, description)."""
        if self.backend == 'sqlite':
            return self.raw.execute(sql, tuple(params))
        cursor = self.raw.cursor()
        cursor.execute(_pg_sql(sql, self.upsert_keys), tuple(params))
        return cursor

    def insert(self, sql, params=()):
        """Run an INSERT into a table with an ``id`` column; returns the new id."""
        if self.backend == 'sqlite':
            return self.raw.execute(sql, tuple(params)).lastrowid
        return self.execute(sql + ' RETURNING id', params).fetchone()[0]

    def schema(self, statement):
        """Run one CREATE statement written for SQLite."""
        self.execute(statement if self.backend == 'sqlite' else pg_schema(statement))

    def transaction(self):
        return _Transaction(self)

    def close(self):
        self.raw.close()


class _Transaction(object):
    """One writer at a time: SQLite's BEGIN IMMEDIATE, or BEGIN plus the store's advisory
    lock on PostgreSQL (held until COMMIT/ROLLBACK). ROLLBACK on any error."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        if self.conn.backend == 'sqlite':
            self.conn.raw.execute('BEGIN IMMEDIATE')
        else:
            cursor = self.conn.raw.cursor()
            cursor.execute('BEGIN')
            try:
                cursor.execute('SELECT pg_advisory_xact_lock(%s)', (self.conn.lock_key,))
            except BaseException:
                cursor.execute('ROLLBACK')
                raise
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if self.conn.backend == 'sqlite':
            self.conn.raw.execute('ROLLBACK' if exc_type else 'COMMIT')
        else:
            self.conn.raw.cursor().execute('ROLLBACK' if exc_type else 'COMMIT')
        return False


def connect_sqlite(path, timeout=30.0, check_same_thread=True):
    raw = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
    return Connection(raw, 'sqlite', path, (sqlite3.Error,))


def connect_postgres(dsn, lock_key, upsert_keys=None, timeout=30.0, application_name='runbook'):
    """Connect (autocommit: transactions are explicit); StateDBError in one line when the
    server cannot be reached or refuses us."""
    psycopg2 = _psycopg2()
    where = describe(dsn)
    try:
        raw = psycopg2.connect(dsn, connect_timeout=max(1, int(timeout)), application_name=application_name)
        raw.autocommit = True
        # Writers queue on the store's advisory lock; never forever.
        raw.cursor().execute("SET lock_timeout = %s", ('%dms' % int(timeout * 1000),))
    except psycopg2.Error as exc:
        raise StateDBError('cannot use the shared state database %s: %s' % (where, first_line(exc))) from None
    return Connection(raw, 'postgres', where, (psycopg2.Error,), lock_key=lock_key, upsert_keys=upsert_keys)


def first_line(exc):
    """An exception's first non-empty line (libpq's messages span several)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return exc.__class__.__name__
