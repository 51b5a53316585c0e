# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The incident timeline store: incidents, runs and their events in one SQLite file.

Private to this collection (the leading underscore): no compatibility promise.

Used on the controller by the ``runbook.remediation.timeline`` callback plugin and by
the ``runbook`` CLI, which loads this file by path from the collection. Hence the
standard library only and no Ansible import.

Where
    ``$RUNBOOK_TIMELINE_DB``, else ``<state dir>/timeline.db`` where the state dir is
    ``$RUNBOOK_STATE_DIR``, ``$XDG_STATE_HOME/runbook`` or ``~/.local/state/runbook``
    (the same rule as the CLI's ``paths.state_dir()``). The directory is created 0700
    and the file 0600: incident data is for the on-call team only.

Shared (PostgreSQL)
    With ``dsn`` (``$RUNBOOK_STATE_DSN``, a libpq DSN or URL) the same tables live in
    PostgreSQL: every controller, the CLI, the callback and ``runbook watch`` write one
    timeline. Each write transaction holds the timeline's advisory lock (``_statedb.py``)
    instead of SQLite's ``BEGIN IMMEDIATE``.

Concurrency
    Several writers at once (parallel ``ansible-playbook`` runs, the CLI) are safe:
    WAL journal, a busy timeout, and every write in its own short ``BEGIN IMMEDIATE``
    transaction. Incident ids are allocated inside such a transaction.

Secrets
    Everything that enters the store goes through :func:`mask` first: values under
    secret-like keys (the collection's one rule, ``_secrets.py``: password, passwd,
    pass, pwd, secret, token, api_key, apikey, authorization, bearer, credential,
    private_key, ssh_key, webhook), inline ``password=...``/``token: ...``, ``Bearer
    xyz``, URL userinfo (``https://user:pass@host``), the store's extra regular
    expressions and known literal secret values are replaced by ``********``.

Schema (version 1; the ``schema_version`` table lists the versions applied)
    incidents
        id TEXT PRIMARY KEY (``INC-YYYYMMDD-NNNN``, by UTC opening date), title,
        severity (P0-P3), status (investigating | identified | monitoring | resolved),
        commander, impact, scenario, service, hosts (JSON list),
        alert_fingerprints (JSON list), detected_at (the alert's startsAt, may be NULL),
        opened_at, acknowledged_at, mitigated_at, resolved_at, created_by.
    runs
        id TEXT PRIMARY KEY (a UUID), incident_id (NULL when none), scenario, playbook,
        started_at, ended_at, outcome, check_mode (0/1),
        entrance (cli | ansible-playbook | awx | rulebook), user, extra (JSON object).
    events
        id INTEGER PRIMARY KEY, incident_id, run_id, ts, kind
        (task | result | note | status | notification), host, task, action, status
        (ok | changed | failed | skipped | unreachable, or NULL), changed (0/1),
        failed (0/1), message, data (JSON).

Timestamps are UTC ISO 8601 with milliseconds (``2026-12-01T10:11:12.345Z``), so they
sort as text.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from urllib.parse import quote

try:  # imported as a collection module (the timeline callback)
    from ansible_collections.runbook.remediation.plugins.module_utils._secrets import SECRET_NAME_RE, SECRET_WORDS
except ImportError:  # loaded by path (the runbook CLI): the file beside this one
    import importlib.util

    _SPEC = importlib.util.spec_from_file_location(
        __name__ + '_secrets', os.path.join(os.path.dirname(os.path.abspath(__file__)), '_secrets.py'))
    _SECRETS = importlib.util.module_from_spec(_SPEC)
    _SPEC.loader.exec_module(_SECRETS)
    SECRET_NAME_RE, SECRET_WORDS = _SECRETS.SECRET_NAME_RE, _SECRETS.SECRET_WORDS

try:
    from ansible_collections.runbook.remediation.plugins.module_utils import _statedb
except ImportError:  # loaded by path (the runbook CLI): the file beside this one
    import importlib.util

    _STATEDB_SPEC = importlib.util.spec_from_file_location(
        __name__ + '_statedb', os.path.join(os.path.dirname(os.path.abspath(__file__)), '_statedb.py'))
    _statedb = importlib.util.module_from_spec(_STATEDB_SPEC)
    _STATEDB_SPEC.loader.exec_module(_statedb)

SCHEMA_VERSION = 1

SEVERITIES = ('P0', 'P1', 'P2', 'P3')
INCIDENT_STATUSES = ('investigating', 'identified', 'monitoring', 'resolved')
ENTRANCES = ('cli', 'ansible-playbook', 'awx', 'rulebook')
EVENT_KINDS = ('task', 'result', 'note', 'status', 'notification')
EVENT_STATUSES = ('ok', 'changed', 'failed', 'skipped', 'unreachable')

MASK = '********'
# Keep single rows small: a task's output excerpt, not its whole output.
MAX_MESSAGE = 2000
MAX_DATA = 256 * 1024

INCIDENT_FIELDS = (
    'title', 'severity', 'status', 'commander', 'impact', 'scenario', 'service', 'hosts',
    'alert_fingerprints', 'detected_at', 'opened_at', 'acknowledged_at', 'mitigated_at',
    'resolved_at', 'created_by',
)
RUN_FIELDS = ('incident_id', 'scenario', 'playbook', 'started_at', 'ended_at', 'outcome',
              'check_mode', 'entrance', 'user', 'extra')
_JSON_FIELDS = ('hosts', 'alert_fingerprints', 'extra', 'data')

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        applied_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS incidents (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('P0', 'P1', 'P2', 'P3')),
        status TEXT NOT NULL DEFAULT 'investigating'
            CHECK (status IN ('investigating', 'identified', 'monitoring', 'resolved')),
        commander TEXT,
        impact TEXT,
        scenario TEXT,
        service TEXT,
        hosts TEXT NOT NULL DEFAULT '[]',
        alert_fingerprints TEXT NOT NULL DEFAULT '[]',
        detected_at TEXT,
        opened_at TEXT NOT NULL,
        acknowledged_at TEXT,
        mitigated_at TEXT,
        resolved_at TEXT,
        created_by TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        incident_id TEXT REFERENCES incidents (id),
        scenario TEXT,
        playbook TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        outcome TEXT,
        check_mode INTEGER NOT NULL DEFAULT 0,
        entrance TEXT NOT NULL DEFAULT 'ansible-playbook',
        "user" TEXT,
        extra TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        incident_id TEXT REFERENCES incidents (id),
        run_id TEXT REFERENCES runs (id),
        ts TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('task', 'result', 'note', 'status', 'notification')),
        host TEXT,
        task TEXT,
        action TEXT,
        status TEXT CHECK (status IS NULL OR status IN ('ok', 'changed', 'failed', 'skipped', 'unreachable')),
        changed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        message TEXT,
        data TEXT
    )""",
    'CREATE INDEX IF NOT EXISTS events_incident ON events (incident_id, ts)',
    'CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id)',
    'CREATE INDEX IF NOT EXISTS runs_incident ON runs (incident_id)',
    'CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status)',
)


class TimelineError(Exception):
    """One line an operator can act on. ``kind``: V(input) (bad argument) or V(unavailable)
    (the database cannot be opened or written)."""

    def __init__(self, message, kind='unavailable'):
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- paths and time

def state_dir(environ=None):
    """The user's state directory, exactly as the CLI's ``paths.state_dir()`` computes it."""
    env = os.environ if environ is None else environ
    if env.get('RUNBOOK_STATE_DIR'):
        return os.path.expanduser(env['RUNBOOK_STATE_DIR'])
    base = env.get('XDG_STATE_HOME') or os.path.join(os.path.expanduser('~'), '.local', 'state')
    return os.path.join(base, 'runbook')


def default_path(environ=None):
    """``$RUNBOOK_TIMELINE_DB``, else ``<state dir>/timeline.db``."""
    env = os.environ if environ is None else environ
    if env.get('RUNBOOK_TIMELINE_DB'):
        return os.path.expanduser(env['RUNBOOK_TIMELINE_DB'])
    return os.path.join(state_dir(env), 'timeline.db')


def utc_now():
    """Now as UTC ISO 8601 with milliseconds: ``2026-12-01T10:11:12.345Z``."""
    return format_ts(time.time())


def format_ts(seconds):
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (moment.microsecond // 1000)


# --------------------------------------------------------------------------- masking

# A dict key naming a secret (the one rule, _secrets.py): its whole value is masked.
SECRET_KEY_RE = SECRET_NAME_RE
# scheme://user:password@host - the password may hold '@', '/' or spaces: it ends at the
# last '@' that a host name follows, within one line and 256 characters (see _mask_userinfo:
# a scan per scheme, linear in the text, where one regular expression would backtrack).
_URL_SCHEME_RE = re.compile(r'\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://')
_USERINFO_WINDOW = 256
_HOST_AFTER_RE = re.compile(r'[A-Za-z0-9._-]+(?::[0-9]+)?(?:[/?#\s"\'),;]|$)')
# Authorization: <scheme> <credentials> (any scheme: Bearer, Basic, Token, Digest, ...).
_AUTH_HEADER_RE = re.compile(r'\b(authorization)(["\']?\s*[:=]\s*["\']?)(?:[A-Za-z-]+\s+)?[^\s"\',;]+',
                             re.IGNORECASE)
# Webhook URLs carry their token in the path (Slack, Discord, Mattermost, Teams).
_WEBHOOK_PATH_RE = re.compile(
    r'\b(https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)|discord(?:app)?\.com/api/webhooks'
    r'|[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?/hooks|[A-Za-z0-9.-]{1,253}\.webhook\.office\.com/webhookb2)/)'
    r'[^\s"\'<>]+')
_BEARER_RE = re.compile(r'\b(bearer)(\s+)[A-Za-z0-9._~+/=-]+', re.IGNORECASE)
_BASIC_RE = re.compile(r'\b(Basic)(\s+)[A-Za-z0-9+/]{8,}={0,2}')
# password=..., "token": "...", api_key: ..., --password ... A key starts at a word
# boundary and is at most 64 characters around the secret word: linear time on long output.
_INLINE_RE = re.compile(
    r'''(?<![\w.-])(["']?)([\w.-]{0,64}?(?:%s)[\w.-]{0,64})\1'''  # the key, maybe quoted
    r'''(\s*[:=]\s*|\s+(?=\S))'''  # = or : (or a space, for --flag value)
    r'''("(?:[^"\\]|\\.)*"|'[^']*'|[^\s"',;&)}\]]+)''' % SECRET_WORDS,  # the value
    re.IGNORECASE,
)
# Literal secrets shorter than this are not searched for: they would mask ordinary words.
MIN_SECRET_LENGTH = 4


def split_patterns(text):
    """User secret patterns from one setting (``$RUNBOOK_SECRET_PATTERNS``): a JSON list of
    regular expressions, or one per line. Never split on commas: ``a{2,5}`` is one pattern."""
    if isinstance(text, (list, tuple)):
        return [str(item) for item in text if str(item)]
    text = (text or '').strip()
    if not text:
        return []
    if text.startswith('['):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise TimelineError('secret patterns: not a JSON list of regular expressions: %s' % exc,
                                kind='input') from exc
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise TimelineError('secret patterns: the JSON must be a list of strings', kind='input')
        return [item for item in items if item]
    return [line.strip() for line in text.splitlines() if line.strip()]


def compile_patterns(patterns):
    """Compile user secret patterns (regular expressions); TimelineError(input) for a bad one."""
    compiled = []
    for pattern in patterns or ():
        if hasattr(pattern, 'sub'):
            compiled.append(pattern)
            continue
        try:
            compiled.append(re.compile(str(pattern)))
        except re.error as exc:
            raise TimelineError('secret pattern %r is not a valid regular expression: %s' % (pattern, exc),
                                kind='input') from exc
    return compiled


def _inline(match):
    quote_char, key, sep, value = match.group(1), match.group(2), match.group(3), match.group(4)
    # "password hunter2" only as a command-line flag (--password hunter2), not in prose.
    if not sep.strip() and not key.startswith('-'):
        return match.group(0)
    if value[:1] in ('"', "'"):
        value = value[0] + MASK + value[0]
    else:
        value = MASK
    return '%s%s%s%s%s' % (quote_char, key, quote_char, sep, value)


def _user_pattern(match):
    if match.re.groups:
        text, pos = match.group(0), match.start()
        out, last = [], 0
        for index in range(1, match.re.groups + 1):
            if match.start(index) < 0:
                continue
            begin, end = match.start(index) - pos, match.end(index) - pos
            if begin < last:
                continue
            out.append(text[last:begin] + MASK)
            last = end
        out.append(text[last:])
        return ''.join(out)
    return MASK


def _secret_variants(secrets):
    variants = set()
    for secret in secrets or ():
        text = secret if isinstance(secret, str) else str(secret)
        if len(text) < MIN_SECRET_LENGTH:
            continue
        variants.add(text)
        variants.add(quote(text, safe=''))  # as it appears in a URL
        variants.add(json.dumps(text)[1:-1])  # as it appears inside JSON text
    return sorted(variants, key=len, reverse=True)


def mask_text(text, patterns=None, secrets=None):
    """``text`` with inline secrets replaced by ``********`` (see :func:`mask`)."""
    return _mask_text(text, compile_patterns(patterns), _as_variants(secrets))


class _Variants(list):
    """Literal secrets already expanded by _secret_variants(), longest first."""


def _as_variants(secrets):
    return secrets if isinstance(secrets, _Variants) else _Variants(_secret_variants(secrets))


def _mask_text(text, patterns, variants):
    if not text:
        return text
    for secret in variants:
        text = text.replace(secret, MASK)
    text = _mask_userinfo(text)
    text = _WEBHOOK_PATH_RE.sub(lambda m: m.group(1) + MASK, text)
    text = _AUTH_HEADER_RE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _BEARER_RE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _BASIC_RE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _INLINE_RE.sub(_inline, text)
    for pattern in patterns:
        text = pattern.sub(_user_pattern, text)
    return text


def _mask_userinfo(text):
    """URL userinfo masked: ``user:password@`` keeps the user; a lone ``user@`` is often a
    token (``https://TOKEN@host``) and is masked whole."""
    out, last = [], 0
    for match in _URL_SCHEME_RE.finditer(text):
        start = match.end()
        if start < last:
            continue
        window = text[start:start + _USERINFO_WINDOW].split('\n', 1)[0]
        at = window.rfind('@')
        while at >= 0 and not _HOST_AFTER_RE.match(window, at + 1):
            at = window.rfind('@', 0, at)
        if at < 0:
            continue
        userinfo = window[:at]
        user, colon, _password = userinfo.partition(':')
        if not colon and ('/' in userinfo or any(c.isspace() for c in userinfo)):
            continue  # not userinfo: an '@' further on in the path or the prose
        if colon and ('/' in user or any(c.isspace() for c in user)):
            continue
        out.append(text[last:start])
        out.append('%s:%s' % (user, MASK) if colon else MASK)
        last = start + at
    out.append(text[last:])
    return ''.join(out)


def mask(value, patterns=None, secrets=None):
    """A copy of ``value`` with secrets replaced by ``********``, recursively.

    - dict keys naming a secret (``_secrets.py``: password, passwd, pass, pwd, secret,
      token, api_key, apikey, authorization, bearer, credential, private_key, ssh_key,
      webhook; case-insensitive): the whole value is masked (booleans, None and empty
      strings are kept: they are no secret);
    - in every string: URL userinfo (``https://user:********@``, the password may hold
      ``@``, ``/`` or spaces), ``Authorization: ********`` (any scheme), ``Bearer ********``,
      ``Basic ********``, webhook paths (``hooks.slack.com/services/********``),
      ``password=********``, ``db_pass=********``, ``pwd: ********``,
      ``"token": "********"``, ``--password ********``;
    - ``patterns``: extra regular expressions; a match is masked (only its groups when
      it has any);
    - ``secrets``: literal values (also URL- and JSON-escaped) masked wherever they
      appear; values shorter than 4 characters are ignored.

    Tuples and sets become lists, bytes and other objects their text.
    """
    return _mask(value, compile_patterns(patterns), _as_variants(secrets))


def _mask(value, patterns, variants):
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    if isinstance(value, str):
        return _mask_text(value, patterns, variants)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _mask_text(str(key), patterns, variants)
            if SECRET_KEY_RE.search(str(key)) and not (item is None or isinstance(item, bool) or item == ''):
                out[name] = MASK
            else:
                out[name] = _mask(item, patterns, variants)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask(item, patterns, variants) for item in value]
    return _mask_text(str(value), patterns, variants)


def secret_values(data, min_length=MIN_SECRET_LENGTH):
    """Literal values under secret-like keys in ``data`` (for example extra vars), to mask
    wherever else they appear. Jinja2 templates are skipped: they are not the secret."""
    found = set()

    def walk(value, secret):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, secret or bool(SECRET_KEY_RE.search(str(key))))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, secret)
        elif secret and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value)
            if len(text) >= min_length and '{{' not in text and '{%' not in text:
                found.add(text)

    walk(data, False)
    return found


# --------------------------------------------------------------------------- the store

def _row(cursor, row):
    item = {}
    for index, column in enumerate(cursor.description):
        name = column[0]
        value = row[index]
        if name in _JSON_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        elif name in ('changed', 'failed', 'check_mode') and value is not None:
            value = bool(value)
        item[name] = value
    return item


def _insert(conn, table, values):
    """INSERT one row. Column names come from INCIDENT_FIELDS/RUN_FIELDS only, never from input."""
    columns = sorted(values)
    marks = ', '.join('?' * len(columns))
    sql = 'INSERT INTO %s (%s) VALUES (%s)' % (table, ', '.join('"%s"' % c for c in columns), marks)  # noqa: S608
    conn.execute(sql, [values[c] for c in columns])


def _update(conn, table, row_id, values):
    """UPDATE one row by id. Column names come from INCIDENT_FIELDS/RUN_FIELDS only, never from input."""
    columns = sorted(values)
    sql = 'UPDATE %s SET %s WHERE id = ?' % (table, ', '.join('"%s" = ?' % c for c in columns))  # noqa: S608
    conn.execute(sql, [*(values[c] for c in columns), row_id])


def _retry_locked(func, deadline):
    """Run func(); retry while the database is locked (schema setup and WAL switch can
    return SQLITE_BUSY without waiting on the busy handler)."""
    while True:
        try:
            return func()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ('locked' not in text and 'busy' not in text) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class TimelineStore:
    """The timeline at ``path`` (default :func:`default_path`).

    ``secret_patterns``: extra regular expressions to mask; ``secrets``: literal secret
    values to mask. Raises TimelineError when the file cannot be opened or is from a
    newer schema.
    """

    def __init__(self, path=None, secret_patterns=None, secrets=None, timeout=30.0, dsn=None):
        self.dsn = dsn or None
        self.path = None if self.dsn else (
            os.path.abspath(os.path.expanduser(str(path))) if path else default_path())
        self.timeout = float(timeout)
        self._patterns = compile_patterns(secret_patterns)
        self._secrets = set()
        self._variants = _Variants()
        self.add_secrets(secrets or ())
        self._lock = threading.RLock()
        self._conn = None
        self._errors = (sqlite3.Error,)
        if self.dsn:
            self._open_postgres()
        else:
            self._open()

    # --- connection ------------------------------------------------------------------

    def _open_postgres(self):
        try:
            conn = _statedb.connect_postgres(self.dsn, _statedb.LOCK_TIMELINE, timeout=self.timeout)
        except _statedb.StateDBError as exc:
            raise TimelineError('timeline: %s' % exc) from None
        self.path = conn.where
        try:
            self._ensure_schema(conn)
        except conn.errors as exc:
            conn.close()
            raise TimelineError('timeline %s: %s' % (self.path, _statedb.first_line(exc))) from None
        except TimelineError:
            conn.close()
            raise
        self._errors = conn.errors
        self._conn = conn

    def _open(self):
        directory = os.path.dirname(self.path)
        try:
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700, exist_ok=True)
            # Create the file 0600 before SQLite does (it would use the umask); its -wal and
            # -shm files take the same mode.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise TimelineError('timeline %s: cannot create it: %s' % (self.path, exc.strerror or exc)) from exc
        try:
            conn = _statedb.connect_sqlite(self.path, timeout=self.timeout, check_same_thread=False)
        except sqlite3.Error as exc:
            raise TimelineError('timeline %s: cannot open it: %s' % (self.path, exc)) from exc
        deadline = time.monotonic() + self.timeout
        try:
            conn.execute('PRAGMA busy_timeout = %d' % int(self.timeout * 1000))
            mode = _retry_locked(lambda: conn.execute('PRAGMA journal_mode = WAL').fetchone()[0], deadline)
            if str(mode).lower() != 'wal':
                raise TimelineError('timeline %s: the WAL journal is not available here (got %s)' % (self.path, mode))
            conn.execute('PRAGMA synchronous = NORMAL')
            _retry_locked(lambda: self._ensure_schema(conn), deadline)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise TimelineError('timeline %s: %s' % (self.path, exc)) from exc
        except TimelineError:
            conn.close()
            raise
        self._conn = conn

    def _ensure_schema(self, conn):
        with conn.transaction():
            for statement in _SCHEMA:
                conn.schema(statement)
            current = conn.execute('SELECT MAX(version) FROM schema_version').fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise TimelineError('timeline %s: schema version %s is newer than this code knows (%s): upgrade '
                                    'runbook.remediation' % (self.path, current, SCHEMA_VERSION))
            if current < SCHEMA_VERSION:
                # Version 1 is the tables above; later versions add their migrations here.
                conn.execute('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)',
                             (SCHEMA_VERSION, utc_now()))

    def close(self):
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def schema_version(self):
        return self._query_one('SELECT MAX(version) AS version FROM schema_version')['version']

    # --- masking ---------------------------------------------------------------------

    def add_secrets(self, values):
        """Remember literal secret values: they are masked wherever they appear."""
        new = {str(v) for v in values if v is not None and len(str(v)) >= MIN_SECRET_LENGTH} - self._secrets
        if new:
            self._secrets |= new
            self._variants = _Variants(_secret_variants(self._secrets))

    def mask(self, value):
        return mask(value, self._patterns, self._variants)

    def _text(self, value, limit=MAX_MESSAGE):
        if value is None:
            return None
        text = self.mask(value if isinstance(value, str) else str(value))
        if len(text) > limit:
            text = text[:limit - 3] + '...'
        return text

    def _json(self, value, limit=MAX_DATA):
        if value is None:
            return None
        text = json.dumps(self.mask(value), sort_keys=True, default=str, ensure_ascii=False)
        if len(text) > limit:
            text = json.dumps({'truncated': True, 'size': len(text), 'excerpt': text[:limit // 2]})
        return text

    # --- low level -------------------------------------------------------------------

    def _conn_or_fail(self):
        if self._conn is None:
            raise TimelineError('timeline %s: the store is closed' % self.path)
        return self._conn

    def _write(self, func):
        """Run func(conn) in one BEGIN IMMEDIATE transaction (writers queue on the busy timeout;
        on PostgreSQL on the timeline's advisory lock)."""
        with self._lock:
            conn = self._conn_or_fail()
            try:
                with conn.transaction():
                    result = func(conn)
            except self._errors as exc:
                raise TimelineError('timeline %s: %s' % (self.path, _statedb.first_line(exc))) from exc
            return result

    def _query(self, sql, params=()):
        with self._lock:
            conn = self._conn_or_fail()
            try:
                cursor = conn.execute(sql, params)
                return [_row(cursor, row) for row in cursor.fetchall()]
            except self._errors as exc:
                raise TimelineError('timeline %s: %s' % (self.path, exc)) from exc

    def _query_one(self, sql, params=()):
        rows = self._query(sql, params)
        return rows[0] if rows else None

    # --- incidents -------------------------------------------------------------------

    def _incident_values(self, fields):
        unknown = sorted(set(fields) - set(INCIDENT_FIELDS))
        if unknown:
            raise TimelineError('unknown incident field(s): %s' % ', '.join(unknown), kind='input')
        if 'severity' in fields and fields['severity'] not in SEVERITIES:
            raise TimelineError('severity must be one of %s, not %r' % (', '.join(SEVERITIES), fields['severity']),
                                kind='input')
        if 'status' in fields and fields['status'] not in INCIDENT_STATUSES:
            raise TimelineError('status must be one of %s, not %r' % (', '.join(INCIDENT_STATUSES), fields['status']),
                                kind='input')
        if 'title' in fields and not fields['title']:
            raise TimelineError('an incident needs a title', kind='input')
        values = {}
        for name, value in fields.items():
            if name in ('hosts', 'alert_fingerprints'):
                if isinstance(value, str):
                    value = [value]
                values[name] = self._json(sorted(set(value or [])))
            else:
                values[name] = self._text(value)
        return values

    def new_incident(self, title, severity='P2', status='investigating', opened_at=None, **fields):
        """Open an incident; returns its id ``INC-YYYYMMDD-NNNN`` (per UTC day, from 0001)."""
        fields.update(title=title, severity=severity, status=status, opened_at=opened_at or utc_now())
        values = self._incident_values(fields)
        values.setdefault('hosts', '[]')
        values.setdefault('alert_fingerprints', '[]')
        day = values['opened_at'][:10].replace('-', '')
        if not re.match(r'^\d{8}$', day):
            raise TimelineError('opened_at must be an ISO 8601 time, not %r' % fields['opened_at'], kind='input')
        prefix = 'INC-%s-' % day

        def insert(conn):
            last = conn.execute('SELECT id FROM incidents WHERE id LIKE ? ORDER BY length(id) DESC, id DESC LIMIT 1',
                                (prefix + '%',)).fetchone()
            number = int(last[0][len(prefix):]) + 1 if last else 1
            incident_id = '%s%04d' % (prefix, number)
            _insert(conn, 'incidents', dict(values, id=incident_id))
            conn.execute('INSERT INTO events (incident_id, ts, kind, status, message, data) VALUES (?, ?, ?, ?, ?, ?)',
                         (incident_id, values['opened_at'], 'status', None,
                          'opened (%s, %s): %s' % (values['severity'], values['status'], values['title']),
                          json.dumps({'status': values['status'], 'severity': values['severity']})))
            return incident_id

        return self._write(insert)

    def get_incident(self, incident_id):
        return self._query_one('SELECT * FROM incidents WHERE id = ?', (incident_id,))

    def list_incidents(self, status=None):
        """Incidents, newest first; ``status`` one status, a list of them, or V(open) for all but resolved."""
        if status is None:
            return self._query('SELECT * FROM incidents ORDER BY opened_at DESC, id DESC')
        if status == 'open':
            statuses = [s for s in INCIDENT_STATUSES if s != 'resolved']
        else:
            statuses = [status] if isinstance(status, str) else list(status)
        bad = [s for s in statuses if s not in INCIDENT_STATUSES]
        if bad:
            raise TimelineError('status must be one of %s or open, not %s' % (', '.join(INCIDENT_STATUSES),
                                                                              ', '.join(bad)), kind='input')
        marks = ', '.join('?' * len(statuses))
        return self._query('SELECT * FROM incidents WHERE status IN (%s) ORDER BY opened_at DESC, id DESC' % marks,  # noqa: S608
                           statuses)

    def update_incident(self, incident_id, **fields):
        """Change an incident's fields; returns it. A status change fills the matching time
        when not given (monitoring: mitigated_at, resolved: resolved_at; leaving
        investigating or naming a commander: acknowledged_at) and a reopen clears
        resolved_at. Every change is recorded as a ``status`` event."""
        values = self._incident_values(fields)
        now = utc_now()

        def update(conn):
            cursor = conn.execute('SELECT * FROM incidents WHERE id = ?', (incident_id,))
            row = cursor.fetchone()
            if row is None:
                raise TimelineError('no incident %s in %s' % (incident_id, self.path), kind='input')
            before = _row(cursor, row)
            new = dict(values)
            status = new.get('status', before['status'])
            if status != 'investigating' or new.get('commander'):
                if not before['acknowledged_at'] and 'acknowledged_at' not in new:
                    new['acknowledged_at'] = now
            if status in ('monitoring', 'resolved') and not before['mitigated_at'] and 'mitigated_at' not in new:
                new['mitigated_at'] = now
            if status == 'resolved' and not before['resolved_at'] and 'resolved_at' not in new:
                new['resolved_at'] = now
            if status != 'resolved' and before['resolved_at'] and 'resolved_at' not in new:
                new['resolved_at'] = None
            changes = {}
            for name, value in new.items():
                old = before[name]
                if name in ('hosts', 'alert_fingerprints'):
                    old = json.dumps(old)
                if old != value:
                    changes[name] = value
            if not changes:
                return
            _update(conn, 'incidents', incident_id, changes)
            parts = []
            if 'status' in changes:
                parts.append('status %s -> %s' % (before['status'], changes['status']))
            parts += ['%s: %s' % (name, changes[name]) for name in sorted(changes)
                      if name not in ('status',) and not name.endswith('_at') and name not in _JSON_FIELDS]
            shown = {name: (json.loads(v) if name in _JSON_FIELDS and v else v) for name, v in changes.items()}
            conn.execute('INSERT INTO events (incident_id, ts, kind, message, data) VALUES (?, ?, ?, ?, ?)',
                         (incident_id, now, 'status', '; '.join(parts) or 'updated', json.dumps(shown, sort_keys=True)))

        self._write(update)
        return self.get_incident(incident_id)

    # --- runs ------------------------------------------------------------------------

    def _run_values(self, fields):
        unknown = sorted(set(fields) - set(RUN_FIELDS))
        if unknown:
            raise TimelineError('unknown run field(s): %s' % ', '.join(unknown), kind='input')
        if fields.get('entrance') is not None and fields['entrance'] not in ENTRANCES:
            raise TimelineError('entrance must be one of %s, not %r' % (', '.join(ENTRANCES), fields['entrance']),
                                kind='input')
        values = {}
        for name, value in fields.items():
            if name == 'extra':
                values[name] = self._json(value or {})
            elif name == 'check_mode':
                values[name] = None if value is None else int(bool(value))
            else:
                values[name] = self._text(value)
        return values

    def start_run(self, run_id=None, **fields):
        """Record a run's start; returns its id (a new UUID unless given).

        Starting a run that exists (the CLI made it and the callback reports on it) fills
        in what it lacked and keeps what it had; ``extra`` is merged.
        """
        run_id = str(run_id or uuid.uuid4())
        fields.setdefault('started_at', utc_now())
        values = self._run_values(fields)

        def upsert(conn):
            cursor = conn.execute('SELECT * FROM runs WHERE id = ?', (run_id,))
            row = cursor.fetchone()
            if row is None:
                values.setdefault('entrance', 'ansible-playbook')
                values.setdefault('check_mode', 0)
                _insert(conn, 'runs', dict({c: v for c, v in values.items() if v is not None}, id=run_id))
                return
            before = _row(cursor, row)
            changes = {}
            for name, value in values.items():
                if name == 'extra':
                    merged = dict(before.get('extra') or {})
                    merged.update(json.loads(value))
                    changes[name] = json.dumps(merged, sort_keys=True)
                elif value is not None and before.get(name) in (None, '') and name != 'started_at':
                    changes[name] = value
            if changes:
                _update(conn, 'runs', run_id, changes)

        self._write(upsert)
        return run_id

    def update_run(self, run_id, **fields):
        """Set a run's fields (``extra`` is merged); returns the run."""
        values = self._run_values(fields)

        def update(conn):
            cursor = conn.execute('SELECT * FROM runs WHERE id = ?', (run_id,))
            row = cursor.fetchone()
            if row is None:
                raise TimelineError('no run %s in %s' % (run_id, self.path), kind='input')
            if 'extra' in values:
                merged = dict(_row(cursor, row).get('extra') or {})
                merged.update(json.loads(values['extra']))
                values['extra'] = json.dumps(merged, sort_keys=True)
            if values:
                _update(conn, 'runs', run_id, values)

        self._write(update)
        return self.get_run(run_id)

    def end_run(self, run_id, outcome=None, ended_at=None, extra=None):
        """Record a run's end (and its outcome, when known)."""
        fields = {'ended_at': ended_at or utc_now()}
        if outcome is not None:
            fields['outcome'] = outcome
        if extra:
            fields['extra'] = extra
        return self.update_run(run_id, **fields)

    def get_run(self, run_id):
        return self._query_one('SELECT * FROM runs WHERE id = ?', (run_id,))

    def list_runs(self, incident_id=None):
        """Runs, oldest first; only the incident's when given."""
        if incident_id is None:
            return self._query('SELECT * FROM runs ORDER BY started_at, id')
        return self._query('SELECT * FROM runs WHERE incident_id = ? ORDER BY started_at, id', (incident_id,))

    # --- events ----------------------------------------------------------------------

    def add_event(self, kind, run_id=None, incident_id=None, host=None, task=None, action=None, status=None,
                  changed=False, failed=False, message=None, data=None, ts=None):
        """Append one event; returns its id. Without ``incident_id``, the run's incident."""
        if kind not in EVENT_KINDS:
            raise TimelineError('event kind must be one of %s, not %r' % (', '.join(EVENT_KINDS), kind), kind='input')
        if status is not None and status not in EVENT_STATUSES:
            raise TimelineError('event status must be one of %s, not %r' % (', '.join(EVENT_STATUSES), status),
                                kind='input')
        row = (self._text(incident_id), self._text(run_id), ts or utc_now(), kind, self._text(host), self._text(task),
               self._text(action), status, int(bool(changed)), int(bool(failed)), self._text(message), self._json(data))

        def insert(conn):
            values = list(row)
            if values[0] is None and values[1] is not None:
                found = conn.execute('SELECT incident_id FROM runs WHERE id = ?', (values[1],)).fetchone()
                values[0] = found[0] if found else None
            return conn.insert(
                'INSERT INTO events (incident_id, run_id, ts, kind, host, task, action, status, changed, failed, '
                'message, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', values)

        return self._write(insert)

    def events(self, incident_id=None, run_id=None, kind=None):
        """Events in time order. An incident's events include those of its runs, also the
        ones recorded before the run was attached to it."""
        clauses, params = [], []
        if incident_id is not None:
            clauses.append('(incident_id = ? OR run_id IN (SELECT id FROM runs WHERE incident_id = ?))')
            params += [incident_id, incident_id]
        if run_id is not None:
            clauses.append('run_id = ?')
            params.append(run_id)
        if kind is not None:
            clauses.append('kind = ?')
            params.append(kind)
        # The clauses are the fixed strings above; values go in as parameters.
        where = (' WHERE ' + ' AND '.join(clauses)) if clauses else ''
        return self._query('SELECT * FROM events%s ORDER BY ts, id' % where, params)  # noqa: S608
