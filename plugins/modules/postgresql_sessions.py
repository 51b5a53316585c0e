#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: postgresql_sessions

short_description: Free a PostgreSQL connection pool - terminate stale idle sessions, cancel long queries, report

version_added: 0.1.0

description:
  - Takes a snapshot of C(pg_stat_activity) (client connections by state, user and database, C(max_connections)),
    then, in one database and for the users in scope, terminates sessions idle longer than O(idle_after) or idle in a
    transaction longer than O(idle_in_transaction_after), cancels queries running longer than O(cancel_after) and
    terminates the sessions of those running longer than O(terminate_after); then takes the snapshot again.
  - What the seed runbook does by hand (C(pg_terminate_backend) on every C(idle) row of C(pg_stat_activity) whose
    C(query_start) is over an hour old), made safe. Only client backends are considered (never autovacuum,
    replication or other background processes), never the module's own session, never a session of
    O(protected_users), and never a session the login role is not allowed to signal (it is reported instead of
    failing the whole run).
  - Each session is signalled by its own statement that checks again, at that moment, that it still is the same
    backend (process id and start time), still in the same state and still past the threshold. A session that became
    active since the snapshot is left alone and reported in RV(skipped).
  - C(pg_terminate_backend) is not transactional, so the module does not rely on a rolled-back transaction for check
    mode (as M(community.postgresql.postgresql_query) does); in check mode it signals nothing and reports what it
    would do.
  - Idle time is measured from C(state_change) (when the session last became idle), not from C(query_start), so a
    session that just finished a long query is not taken for a long-idle one. A query's run time is measured from
    C(query_start).

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - runbook.remediation.postgresql

attributes:
  check_mode:
    support: full
    details:
      - Nothing is signalled; RV(terminated) and RV(cancelled) list what would be, and RV(after) is projected.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details:
      - Runs wherever the database is reachable from; PostgreSQL 10 or later (C(pg_stat_activity.backend_type)).

options:
  database:
    description:
      - The database whose sessions may be signalled. Sessions connected to other databases are counted, never
        touched.
    type: str
    required: true
  users:
    description:
      - The users whose sessions may be signalled. Empty means every user but O(protected_users).
      - Every name must be an existing role (a typo fails the module, error_kind V(input)).
    type: list
    elements: str
    default: []
  protected_users:
    description:
      - Users whose sessions are never signalled, whatever O(users) says; for example the application's own user whose
        pool must stay up, or the on-call engineer's.
      - Every name must be an existing role (a typo fails the module, error_kind V(input)), since a misspelt protected
        user would protect nobody.
    type: list
    elements: str
    default: []
  idle_after:
    description:
      - Terminate sessions in state C(idle) for longer than this many seconds.
      - V(0) terminates no idle session.
    type: int
    default: 0
  idle_in_transaction_after:
    description:
      - Terminate sessions in state C(idle in transaction) (or C(idle in transaction (aborted))) for longer than this
        many seconds. They hold their locks and snapshot until they end; terminating one rolls its transaction back.
      - V(0) terminates none.
    type: int
    default: 0
  cancel_after:
    description:
      - Cancel (C(pg_cancel_backend)) queries in state C(active) running for longer than this many seconds. The
        session stays connected; its client gets an error for that query.
      - V(0) cancels none.
    type: int
    default: 0
  terminate_after:
    description:
      - Terminate (C(pg_terminate_backend)) the sessions of queries in state C(active) running for longer than this
        many seconds - a second, higher threshold than O(cancel_after) for a query a cancel did not stop (or that is
        known to ignore it). The session ends; its client must reconnect. A query past both thresholds is
        terminated, not cancelled.
      - V(0) terminates none. When both are set it must be above O(cancel_after).
    type: int
    default: 0
  wait_timeout:
    description:
      - Seconds to wait for terminated backends to exit before the snapshot after. Backends still there are reported in
        RV(still_present).
    type: int
    default: 5
  act_above:
    description:
      - Signal nothing unless the pool's usage (connections / C(max_connections)) is above this share first. A pool
        with room to spare is not exhausted; its idle sessions are the application's business. V(0) acts on every
        session past a threshold, whatever the usage.
    type: float
    default: 0
  login_user:
    description:
      - The role the module logs in as.
      - When the pool is exhausted, PostgreSQL 15 and earlier only let superusers in (the last
        C(superuser_reserved_connections) slots); a non-superuser login then fails with error_kind V(unavailable).
      - A non-superuser needs C(pg_signal_backend) (or membership of the target roles) to signal sessions, and
        C(pg_read_all_stats) to see other users' session state. It can never signal a superuser's session.
    type: str
    default: postgres
    aliases: [login]
  login_db:
    description:
      - The database to connect to. Defaults to O(database).
    type: str
    aliases: [db]

notes:
  - A session that changes between the module's check and the signal, within the same statement (microseconds), can
    still be signalled; for a cancel that means the query it started in between.
  - Counts exclude the module's own session; RV(backend_pid) names it.
  - The role C(runbook.remediation.db_connections) (scenario C(db-connection-pool)) runs this module and turns its
    return values into a scenario result.

seealso:
  - module: community.postgresql.postgresql_info
  - module: community.postgresql.postgresql_query
  - name: pg_stat_activity
    description: The PostgreSQL view this module reads.
    link: https://www.postgresql.org/docs/15/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
  - name: Server signaling functions
    description: pg_cancel_backend and pg_terminate_backend.
    link: https://www.postgresql.org/docs/15/functions-admin.html#FUNCTIONS-ADMIN-SIGNAL

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Terminate the app database's sessions idle for more than an hour (the seed's runbook), never the app's pool
  runbook.remediation.postgresql_sessions:
    login_host: db.internal
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    database: causal_eval_bench
    protected_users: [causal_eval]
    idle_after: 3600
  register: pool

- name: Say what it did
  ansible.builtin.debug:
    msg: >-
      terminated {{ pool.terminated | length }};
      {{ pool.before.total }} -> {{ pool.after.total }} of {{ pool.after.max_connections }} connections

- name: Also end forgotten transactions (10 min) and cancel queries of the report user running over 5 min
  runbook.remediation.postgresql_sessions:
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    database: analytics
    users: [report]
    idle_in_transaction_after: 600
    cancel_after: 300

- name: Only look (no threshold set) - counts by state, user and database, oldest idle session
  runbook.remediation.postgresql_sessions:
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    database: analytics
  register: snapshot
"""

RETURN = r"""
before:
  description:
    - The connections before any action, without the module's own session.
  type: dict
  returned: success
  contains:
    max_connections:
      description: The server's C(max_connections).
      type: int
      sample: 100
    superuser_reserved_connections:
      description: Slots only superusers may use; non-superusers are refused at C(max_connections) minus this.
      type: int
      sample: 3
    total:
      description: Client connections on the whole server.
      type: int
      sample: 72
    usage:
      description: RV(before.total) / RV(before.max_connections), between 0 and 1.
      type: float
      sample: 0.72
    by_state:
      description: Client connections by state on the whole server (V(unknown) when the login role cannot see it).
      type: dict
      sample: {"idle": 65, "active": 5, "idle in transaction": 2}
    by_database:
      description: Client connections by database.
      type: dict
      sample: {"causal_eval_bench": 70, "postgres": 2}
    by_user:
      description: Client connections by user on the whole server.
      type: dict
      sample: {"causal_eval": 40, "report": 30, "postgres": 2}
    invisible:
      description:
        - Connections whose state the login role cannot see (other users' sessions without C(pg_read_all_stats)).
          They are counted, with state V(unknown), and never selected.
      type: int
      sample: 0
    database:
      description: The connections to O(database).
      type: dict
      contains:
        name:
          description: O(database).
          type: str
          sample: causal_eval_bench
        total:
          description: Client connections to it.
          type: int
          sample: 70
        by_state:
          description: By state.
          type: dict
          sample: {"idle": 64, "active": 4, "idle in transaction": 2}
        by_user:
          description: By user.
          type: dict
          sample: {"causal_eval": 40, "report": 30}
        oldest_idle_seconds:
          description: How long the longest-idle session has been idle, or V(null).
          type: float
          sample: 5400.2
        oldest_idle_in_transaction_seconds:
          description: How long the oldest idle-in-transaction session has been idle, or V(null).
          type: float
          sample: 610.0
        longest_query_seconds:
          description: How long the longest running query has been running, or V(null).
          type: float
          sample: 912.5
after:
  description:
    - The same figures after the actions (after terminated backends exited, up to O(wait_timeout)); in check mode
      projected from RV(before) (terminated sessions gone, cancelled ones idle) with C(projected=true).
  type: dict
  returned: success
  sample: {"max_connections": 100, "total": 42, "usage": 0.42, "projected": false}
terminated:
  description:
    - Sessions terminated (or that would be, in check mode).
  type: list
  elements: dict
  returned: success
  sample:
    - {"pid": 4242, "user": "report", "database": "analytics", "state": "idle", "idle_seconds": 5400.2,
       "application_name": "psql", "client_addr": "127.0.0.1", "connected_seconds": 7200.0,
       "reason": "idle for more than 3600 s"}
cancelled:
  description:
    - Sessions whose running query was cancelled (or would be, in check mode). The sessions stay connected.
  type: list
  elements: dict
  returned: success
  sample:
    - {"pid": 4250, "user": "report", "database": "analytics", "state": "active", "query_seconds": 912.5,
       "application_name": "report-job", "client_addr": "127.0.0.1", "connected_seconds": 950.1,
       "reason": "query running for more than 300 s"}
spared:
  description:
    - Sessions of O(database) past a threshold that were left alone, with the reason - V(protected user),
      V(user not in scope) or V(not permitted to signal) (a superuser's session, or a role the login role has no
      rights over).
  type: list
  elements: dict
  returned: success
  sample: [{"pid": 4300, "user": "causal_eval", "state": "idle", "seconds": 4000.0, "reason": "protected user"}]
skipped:
  description:
    - Candidates that no longer matched when their turn came (they became active, or ended) and were not signalled.
  type: list
  elements: dict
  returned: success
  sample: [{"pid": 4301, "user": "report", "reason": "no longer matches (state, age or backend changed)"}]
below_threshold:
  description: The usage was not above O(act_above), so nothing was selected.
  returned: success
  type: bool
  sample: false
still_present:
  description: Terminated backends still listed after O(wait_timeout) seconds.
  type: list
  elements: int
  returned: success
  sample: []
errors:
  description: Sessions PostgreSQL refused to signal, with its message.
  type: list
  elements: dict
  returned: success
  sample: [{"pid": 4302, "action": "terminate", "error": "permission denied to terminate process"}]
backend_pid:
  description: The process id of the module's own session, which is never signalled.
  type: int
  returned: success
  sample: 4400
server_version:
  description: The server's version number (C(server_version_num)).
  type: int
  returned: success
  sample: 150010
error_kind:
  description:
    - Why the module failed. V(input) for bad options, an unknown database or role, or a rejected login;
      V(unavailable) when PostgreSQL cannot be reached, refuses the connection (an exhausted pool), is too old, or
      psycopg2 is missing; V(remediation) for another database error.
  type: str
  returned: failure
  sample: unavailable
"""

import time
import traceback
from collections import Counter

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.runbook.remediation.plugins.module_utils._postgresql import (
    ModuleError,
    connect,
    login_argument_spec,
    one_line,
)

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2
    import psycopg2.extras
except ImportError:
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PSYCOPG2 = True


APPLICATION_NAME = 'runbook.remediation.postgresql_sessions'
MIN_SERVER_VERSION = 100000  # pg_stat_activity.backend_type

# The four actions, in the order they run (a session one of them took is not taken again).
# `since` is the column the age is measured from; `func` is the server function that
# signals the backend.
ACTIONS = (
    dict(name='terminate', option='terminate_after', states=('active',), since='query_start',
         func='pg_terminate_backend', result='terminated', age_key='query_seconds'),
    dict(name='cancel', option='cancel_after', states=('active',), since='query_start',
         func='pg_cancel_backend', result='cancelled', age_key='query_seconds'),
    dict(name='terminate', option='idle_in_transaction_after',
         states=('idle in transaction', 'idle in transaction (aborted)'), since='state_change',
         func='pg_terminate_backend', result='terminated', age_key='idle_seconds'),
    dict(name='terminate', option='idle_after', states=('idle',), since='state_change',
         func='pg_terminate_backend', result='terminated', age_key='idle_seconds'),
)

COLUMNS = """
    a.pid, a.datname, a.usename, a.state, a.application_name, host(a.client_addr) AS client_addr, a.backend_start,
    EXTRACT(EPOCH FROM now() - a.backend_start)::float8 AS backend_seconds,
    EXTRACT(EPOCH FROM now() - a.state_change)::float8 AS state_seconds,
    EXTRACT(EPOCH FROM now() - a.query_start)::float8 AS query_seconds"""

# Whether the login role may signal the backend, as PostgreSQL decides it (superusers
# may signal anyone; others never a superuser, and only a role they have the privileges
# of, or any with pg_signal_backend). CASE keeps pg_has_role off a dropped role.
CAN_SIGNAL = """
    CASE WHEN current_setting('is_superuser')::bool THEN true
         WHEN r.oid IS NULL OR r.rolsuper THEN false
         ELSE pg_has_role(r.oid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE') END"""

IN_SCOPE = "(cardinality(%(users)s::text[]) = 0 OR a.usename = ANY(%(users)s::text[]))"
PROTECTED = "a.usename = ANY(%(protected)s::text[])"


def base_conditions(action):
    """WHERE conditions shared by the candidate scan and the signal: a client backend of the
    database, not this session, in the action's states, past its threshold."""
    return ("a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() AND a.datname = %(database)s "
            "AND a.state = ANY(%(states)s::text[]) "
            "AND a.{since} < now() - make_interval(secs => %(after)s)".format(since=action['since']))


def candidates_sql(action):
    """Every session past the action's threshold, with why it may or may not be signalled."""
    # Only this module's constant fragments are formatted in; values go as parameters.
    return ("SELECT {columns}, {scope} AS in_scope, {protected} AS protected, {can} AS can_signal "  # noqa: S608
            "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid "
            "WHERE {base} ORDER BY a.pid").format(columns=COLUMNS, scope=IN_SCOPE, protected=PROTECTED,
                                                  can=CAN_SIGNAL, base=base_conditions(action))


def signal_sql(action):
    """One backend, signalled only if it still is the same backend and every condition still
    holds in this statement (a fresh pg_stat_activity snapshot): the check and the signal
    happen together."""
    return ("SELECT {columns}, {func}(a.pid) AS signalled "  # noqa: S608 (constant fragments only)
            "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid "
            "WHERE a.pid = %(pid)s AND a.backend_start = %(backend_start)s AND {base} "
            "AND {scope} AND NOT {protected} AND {can}").format(
                columns=COLUMNS, func=action['func'], base=base_conditions(action), scope=IN_SCOPE,
                protected=PROTECTED, can=CAN_SIGNAL)


# Without pg_read_all_stats, other users' rows show no backend_type or state either; those
# connected to a database are counted as clients of unknown state (never selected).
SNAPSHOT_SQL = ("SELECT {columns}, a.pid = pg_backend_pid() AS self FROM pg_stat_activity a "  # noqa: S608
                "WHERE a.backend_type = 'client backend' OR (a.backend_type IS NULL AND a.datname IS NOT NULL) "
                "ORDER BY a.pid").format(columns=COLUMNS)

SETTINGS_SQL = """
    SELECT current_setting('server_version_num')::int, current_setting('max_connections')::int,
           current_setting('superuser_reserved_connections')::int, pg_backend_pid(),
           current_setting('is_superuser')::bool, pg_has_role('pg_read_all_stats', 'USAGE')"""


def _round(value):
    return None if value is None else round(value, 1)


def _sorted_counts(values):
    return dict(sorted(Counter(values).items()))


def _oldest(rows, states, key):
    ages = [row[key] for row in rows if row['state'] in states and row[key] is not None]
    return _round(max(ages)) if ages else None


def summarize(rows, max_connections, reserved, database):
    """The pool's figures from snapshot rows (the module's own session left out)."""
    rows = [row for row in rows if not row.get('self')]
    in_db = [row for row in rows if row['datname'] == database]
    total = len(rows)
    return {
        'max_connections': max_connections,
        'superuser_reserved_connections': reserved,
        'total': total,
        'usage': round(float(total) / max_connections, 4) if max_connections else 0.0,
        'by_state': _sorted_counts(row['state'] or 'unknown' for row in rows),
        'by_database': _sorted_counts(row['datname'] or '' for row in rows),
        'by_user': _sorted_counts(row['usename'] or '' for row in rows),
        'invisible': sum(1 for row in rows if row['state'] is None),
        'database': {
            'name': database,
            'total': len(in_db),
            'by_state': _sorted_counts(row['state'] or 'unknown' for row in in_db),
            'by_user': _sorted_counts(row['usename'] or '' for row in in_db),
            'oldest_idle_seconds': _oldest(in_db, ('idle',), 'state_seconds'),
            'oldest_idle_in_transaction_seconds': _oldest(
                in_db, ('idle in transaction', 'idle in transaction (aborted)'), 'state_seconds'),
            'longest_query_seconds': _oldest(in_db, ('active',), 'query_seconds'),
        },
    }


def project(rows, terminated, cancelled):
    """Snapshot rows as they would be after the actions: terminated sessions gone,
    cancelled ones idle since now."""
    out = []
    for row in rows:
        if row['pid'] in terminated:
            continue
        if row['pid'] in cancelled:
            row = dict(row, state='idle', state_seconds=0.0)
        out.append(row)
    return out


def spare_reason(row):
    if row['protected']:
        return 'protected user'
    if not row['in_scope']:
        return 'user not in scope'
    if not row['can_signal']:
        return 'not permitted to signal'
    return None


def report(row, action=None, threshold=None, reason=None):
    """A session as the module returns it: signalled by ``action`` past ``threshold``
    seconds, or spared for ``reason``."""
    out = {
        'pid': row['pid'], 'user': row['usename'], 'database': row['datname'], 'state': row['state'],
        'application_name': row['application_name'], 'client_addr': row['client_addr'],
        'connected_seconds': _round(row['backend_seconds']),
    }
    if action is not None:
        query = action['since'] == 'query_start'
        out[action['age_key']] = _round(row['query_seconds' if query else 'state_seconds'])
        out['reason'] = '%s for more than %d s' % ('query running' if query else row['state'], threshold)
    else:
        out['seconds'] = _round(row['query_seconds'] if row['state'] == 'active' else row['state_seconds'])
        out['reason'] = reason
    return out


class Sessions:
    """The module's one connection and what it does with it."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.conn = None
        self.result = {}

    def connect(self):
        # Autocommit: each statement sees a fresh pg_stat_activity, and a signal is never
        # held back by (or rolled back with) a transaction.
        params = self.params
        self.conn = connect(psycopg2, params, params['login_db'] or params['database'], APPLICATION_NAME)

    def query(self, sql, args=None):
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, args)
            return [dict(row) for row in cur.fetchall()] if cur.description else []

    def settings(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT set_config('statement_timeout', '30s', false)")
            cur.execute(SETTINGS_SQL)
            return cur.fetchone()

    def check_names(self):
        params = self.params
        if not self.query('SELECT 1 FROM pg_database WHERE datname = %s', (params['database'],)):
            raise ModuleError('database %s does not exist on this server' % params['database'], 'input')
        wanted = sorted(set(params['users']) | set(params['protected_users']))
        known = set(row['rolname'] for row in self.query(
            'SELECT rolname FROM pg_roles WHERE rolname = ANY(%s::text[])', (wanted,)))
        for option in ('protected_users', 'users'):
            unknown = [name for name in params[option] if name not in known]
            if unknown:
                raise ModuleError('%s names role(s) that do not exist: %s' % (option, ', '.join(unknown)), 'input')

    def args(self, action, **extra):
        params = self.params
        return dict(database=params['database'], states=list(action['states']), after=params[action['option']],
                    users=params['users'], protected=params['protected_users'], **extra)

    def run(self):
        module, params = self.module, self.params
        self.connect()
        version, max_conn, reserved, own_pid, superuser, read_all = self.settings()
        if version < MIN_SERVER_VERSION:
            raise ModuleError('PostgreSQL %d is too old: version 10 or later is needed' % version, 'unavailable')
        self.check_names()
        if not (superuser or read_all):
            module.warn('%s can see the state of its own sessions only (grant it pg_read_all_stats): other '
                        "users' sessions are counted but never selected" % params['login_user'])

        before_rows = self.query(SNAPSHOT_SQL)
        result = self.result = dict(terminated=[], cancelled=[], spared=[], skipped=[], errors=[],
                                    still_present=[], backend_pid=own_pid, server_version=version)
        plans = []
        usage = summarize(before_rows, max_conn, reserved, params['database'])['usage']
        result['below_threshold'] = usage <= params['act_above']
        seen = set()
        for action in ACTIONS:
            if params[action['option']] <= 0 or result['below_threshold']:
                continue
            for row in self.query(candidates_sql(action), self.args(action)):
                if row['pid'] in seen:  # past terminate_after: terminated (or spared) once, not also cancelled
                    continue
                seen.add(row['pid'])
                reason = spare_reason(row)
                if reason:
                    result['spared'].append(report(row, reason=reason))
                else:
                    plans.append((action, row))

        if module.check_mode:
            for action, row in plans:
                result[action['result']].append(report(row, action, params[action['option']]))
        else:
            self.act(plans, result)
        done = dict((key, set(item['pid'] for item in result[key])) for key in ('terminated', 'cancelled'))

        if module.check_mode:
            after = summarize(project(before_rows, done['terminated'], done['cancelled']), max_conn, reserved,
                              params['database'])
        else:
            result['still_present'] = self.wait_gone(done['terminated'])
            after = summarize(self.query(SNAPSHOT_SQL), max_conn, reserved, params['database'])
        after['projected'] = module.check_mode
        result.update(before=summarize(before_rows, max_conn, reserved, params['database']), after=after,
                      changed=bool(done['terminated'] or done['cancelled']))
        return result

    def act(self, plans, result):
        for action, row in plans:
            args = self.args(action, pid=row['pid'], backend_start=row['backend_start'])
            try:
                signalled = self.query(signal_sql(action), args)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                raise  # the connection is gone: main() reports what was done so far
            except psycopg2.Error as exc:
                result['errors'].append({'pid': row['pid'], 'action': action['name'], 'error': one_line(exc)})
                continue
            if signalled and signalled[0]['signalled']:
                result[action['result']].append(report(signalled[0], action, self.params[action['option']]))
            else:
                why = 'ended before its turn' if signalled else 'no longer matches (state, age or backend changed)'
                result['skipped'].append({'pid': row['pid'], 'user': row['usename'], 'reason': why})

    def wait_gone(self, pids):
        """Terminated backends take a moment to exit; the pids still listed after the wait."""
        deadline = time.monotonic() + self.params['wait_timeout']
        remaining = sorted(pids)
        while remaining:
            rows = self.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s::int[])', (remaining,))
            remaining = sorted(row['pid'] for row in rows)
            if not remaining or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return remaining

    def close(self):
        if self.conn is not None:
            self.conn.close()


def validate(module):
    params = module.params
    for option in ('idle_after', 'idle_in_transaction_after', 'cancel_after', 'terminate_after', 'wait_timeout'):
        if params[option] < 0:
            module.fail_json(msg='postgresql_sessions: %s must be 0 or more seconds, got %d' % (option, params[option]),
                             error_kind='input')
    if 0 < params['terminate_after'] <= params['cancel_after']:
        module.fail_json(msg='postgresql_sessions: terminate_after (%d s) must be above cancel_after (%d s): a query '
                             'is cancelled first and terminated only past the second threshold'
                             % (params['terminate_after'], params['cancel_after']), error_kind='input')
    if not params['database']:
        module.fail_json(msg='postgresql_sessions: database must not be empty', error_kind='input')
    if not 0 <= params['act_above'] < 1:
        module.fail_json(msg='postgresql_sessions: act_above must be a share from 0 to 1 (exclusive), got %s'
                             % params['act_above'], error_kind='input')
    for option in ('users', 'protected_users'):
        if any(not name for name in params[option]):
            module.fail_json(msg='postgresql_sessions: %s must not hold an empty name' % option, error_kind='input')


def summary(result, database, check):
    parts = []
    if result['terminated']:
        parts.append('%s %d session(s)' % ('would terminate' if check else 'terminated', len(result['terminated'])))
    if result['cancelled']:
        parts.append('%s %d query(ies)' % ('would cancel' if check else 'cancelled', len(result['cancelled'])))
    done = ' and '.join(parts) or 'nothing to do'
    return '%s in %s; %d of %d connections %s (was %d)' % (
        done, database, result['after']['total'], result['after']['max_connections'],
        'projected' if check else 'now', result['before']['total'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            database=dict(type='str', required=True),
            users=dict(type='list', elements='str', default=[]),
            protected_users=dict(type='list', elements='str', default=[]),
            idle_after=dict(type='int', default=0),
            idle_in_transaction_after=dict(type='int', default=0),
            cancel_after=dict(type='int', default=0),
            terminate_after=dict(type='int', default=0),
            wait_timeout=dict(type='int', default=5),
            act_above=dict(type='float', default=0),
            login_db=dict(type='str', aliases=['db']),
            **login_argument_spec()
        ),
        supports_check_mode=True,
    )
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib('psycopg2'), exception=PSYCOPG2_IMPORT_ERROR,
                         error_kind='unavailable')
    validate(module)

    sessions = Sessions(module)
    try:
        result = sessions.run()
    except ModuleError as exc:
        module.fail_json(msg='postgresql_sessions: %s' % exc, error_kind=exc.kind)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        done = dict((key, sessions.result.get(key, [])) for key in ('terminated', 'cancelled'))
        module.fail_json(msg='postgresql_sessions: lost the connection to PostgreSQL: %s' % one_line(exc),
                         error_kind='unavailable', changed=bool(done['terminated'] or done['cancelled']),
                         exception=traceback.format_exc(), **done)
    except psycopg2.Error as exc:
        module.fail_json(msg='postgresql_sessions: %s' % one_line(exc), error_kind='remediation',
                         exception=traceback.format_exc())
    finally:
        sessions.close()
    result['msg'] = summary(result, module.params['database'], module.check_mode)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
