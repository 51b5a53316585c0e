#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: postgresql_index_check

short_description: Check a PostgreSQL database's B-tree indexes with amcheck and rebuild the corrupt ones

version_added: 0.1.0

description:
  - Checks every B-tree index of one database (or of the schemas and indexes named) with the C(amcheck) extension's
    C(bt_index_check), each index in its own statement so one corrupt index does not hide the next, and lists the
    invalid ones (C(pg_index.indisvalid) false, a failed concurrent build). Other access methods (GIN, GiST, BRIN,
    hash) are listed as not checked - C(amcheck) of PostgreSQL 15 reads B-trees only.
  - With O(reindex), rebuilds each corrupt or invalid index with C(REINDEX INDEX CONCURRENTLY) (from the table, so
    writes go on and nothing is lost), checks it again, and runs C(ANALYZE) on its table (O(analyze)). What the seed
    runbook does with C(REINDEX DATABASE), limited to what is broken and done without locking the tables.
  - An index that is still corrupt after its rebuild, or whose rebuild fails, points at the table itself -
    RV(still_corrupt) names it; restoring from a backup is the next step (the C(db-restore) scenario).
  - C(amcheck) ships with PostgreSQL (contrib). When the database does not have it, O(amcheck=install) creates it
    (C(CREATE EXTENSION amcheck), a superuser action) and says so; O(amcheck=require) fails instead.

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - runbook.remediation.postgresql

attributes:
  check_mode:
    support: full
    details:
      - The indexes are checked (read-only) when C(amcheck) is there; nothing is created, rebuilt or analysed.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details:
      - Runs wherever the database is reachable from; PostgreSQL 12 or later (C(REINDEX CONCURRENTLY)).

options:
  database:
    description:
      - The database whose indexes are checked.
    type: str
    required: true
  schemas:
    description:
      - Check only the indexes of these schemas. Empty checks every schema but the system ones.
    type: list
    elements: str
    default: []
  indexes:
    description:
      - Check only these indexes (names, in the schemas in scope). Empty checks all of them.
    type: list
    elements: str
    default: []
  reindex:
    description:
      - Rebuild the corrupt and invalid indexes found (C(REINDEX INDEX CONCURRENTLY)) and check them again.
    type: bool
    default: false
  analyze:
    description:
      - After a rebuild, refresh the planner statistics of the tables whose indexes were rebuilt (C(ANALYZE)).
    type: bool
    default: true
  heapallindexed:
    description:
      - Also verify that every table row has its index entry (C(bt_index_check(index, true))); slower, reads the table.
    type: bool
    default: false
  amcheck:
    description:
      - What to do when the database has no C(amcheck) extension - V(install) creates it, V(require) fails.
    type: str
    choices: [install, require]
    default: install
  statement_timeout:
    description:
      - Seconds one check or rebuild may take before PostgreSQL cancels it (V(0) no limit).
    type: int
    default: 600
  login_user:
    description:
      - The role the module logs in as. C(bt_index_check) needs execute rights on it (superuser by default);
        C(REINDEX) needs ownership of the index's table; C(CREATE EXTENSION amcheck) needs a superuser.
    type: str
    default: postgres
    aliases: [login]

notes:
  - A B-tree that C(bt_index_check) finds consistent can still miss rows of its table unless O(heapallindexed) is on.
  - The role C(runbook.remediation.db_reindex) (scenario C(db-index-corruption)) runs this module and turns its return
    values into a scenario result.

seealso:
  - name: amcheck
    description: The PostgreSQL extension that verifies index structure.
    link: https://www.postgresql.org/docs/15/amcheck.html
  - module: community.postgresql.postgresql_query

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
- name: Check every B-tree index of appdb
  runbook.remediation.postgresql_index_check:
    database: appdb
    login_host: db.internal
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
  register: index_check

- name: Rebuild what is corrupt, without locking the tables
  runbook.remediation.postgresql_index_check:
    database: appdb
    schemas: [public]
    reindex: true
    login_host: db.internal
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
"""

RETURN = r"""
checked:
  description: How many B-tree indexes were checked.
  returned: always
  type: int
  sample: 42
corrupt:
  description: The indexes C(bt_index_check) found corrupt (before any rebuild), with PostgreSQL's words.
  returned: always
  type: list
  elements: dict
  sample: [{schema: public, index: items_name, table: items, error: line pointer points past end of tuple space}]
invalid:
  description: The indexes marked invalid (a failed concurrent build), which the planner does not use.
  returned: always
  type: list
  elements: dict
  sample: []
not_checked:
  description: Indexes of other access methods, which C(amcheck) cannot read (C(schema.index (method))).
  returned: always
  type: list
  elements: str
  sample: [public.items_search (gin)]
reindexed:
  description: The indexes rebuilt (or that would be, in check mode), as C(schema.index).
  returned: always
  type: list
  elements: str
  sample: [public.items_name]
still_corrupt:
  description: Indexes still corrupt after their rebuild, or whose rebuild failed, with why.
  returned: always
  type: list
  elements: dict
  sample: []
analyzed:
  description: Tables whose statistics were refreshed after a rebuild (C(schema.table)).
  returned: always
  type: list
  elements: str
  sample: [public.items]
amcheck_installed:
  description: Whether the module created the C(amcheck) extension (or would, in check mode).
  returned: always
  type: bool
  sample: false
amcheck_missing:
  description: True when C(amcheck) is not there and check mode kept the module from creating it (nothing checked).
  returned: always
  type: bool
  sample: false
server_version:
  description: C(server_version_num) of the server.
  returned: always
  type: int
  sample: 150007
msg:
  description: One line saying what was found and done.
  returned: always
  type: str
  sample: 1 of 12 B-tree index(es) of appdb corrupt; rebuilt 1 (REINDEX CONCURRENTLY), all consistent now
error_kind:
  description: On failure, V(input) (bad options, unknown database or schema), V(unavailable) (no connection, no
    amcheck with O(amcheck=require)) or V(remediation).
  returned: failure
  type: str
  sample: unavailable
"""

import traceback

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
    import psycopg2.extensions
    import psycopg2.extras
    from psycopg2 import sql
except ImportError:
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PSYCOPG2 = True


APPLICATION_NAME = 'runbook.remediation.postgresql_index_check'
MIN_SERVER_VERSION = 120000  # REINDEX CONCURRENTLY

# The indexes in scope, user schemas only (never the catalogs or TOAST); values go as parameters.
INDEXES_SQL = """
    SELECT c.oid, n.nspname AS schema, c.relname AS index, t.relname AS table, am.amname AS method,
           i.indisvalid AS valid
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_am am ON am.oid = c.relam
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      AND c.relpersistence <> 't'
      AND (cardinality(%(schemas)s::text[]) = 0 OR n.nspname = ANY(%(schemas)s::text[]))
      AND (cardinality(%(indexes)s::text[]) = 0 OR c.relname = ANY(%(indexes)s::text[]))
    ORDER BY n.nspname, c.relname"""


def name(row):
    return '%s.%s' % (row['schema'], row['index'])


def summary(result, database, check):
    """One line: what was checked, what was found, what was (or would be) done."""
    broken = len(result['corrupt']) + len(result['invalid'])
    if result['amcheck_missing']:
        return 'amcheck is not installed in %s: would create it and check its B-tree indexes' % database
    text = '%d of %d B-tree index(es) of %s corrupt' % (len(result['corrupt']), result['checked'], database)
    if result['invalid']:
        text += ', %d invalid' % len(result['invalid'])
    if not broken:
        return 'all %d B-tree index(es) of %s consistent' % (result['checked'], database)
    if result['reindexed']:
        text += '; %s %d (REINDEX CONCURRENTLY)' % ('would rebuild' if check else 'rebuilt', len(result['reindexed']))
        if not check:
            text += (', all consistent now' if not result['still_corrupt']
                     else ', %d still corrupt' % len(result['still_corrupt']))
    return text


class IndexCheck:
    """The module's one connection and what it does with it."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.conn = None
        self.result = dict(checked=0, corrupt=[], invalid=[], not_checked=[], reindexed=[], still_corrupt=[],
                           analyzed=[], amcheck_installed=False, amcheck_missing=False, server_version=0,
                           changed=False)

    def query(self, statement, args=None):
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(statement, args)
            return [dict(row) for row in cur.fetchall()] if cur.description else []

    def check(self, row):
        """None when the index is consistent, else PostgreSQL's words (on one line)."""
        try:
            self.query('SELECT bt_index_check(%s::regclass, %s)', (row['oid'], self.params['heapallindexed']))
        except psycopg2.extensions.QueryCanceledError:
            raise ModuleError('checking %s took longer than statement_timeout (%d s)'
                              % (name(row), self.params['statement_timeout']), 'unavailable') from None
        except psycopg2.OperationalError:
            raise  # the connection itself: not a verdict on this index
        except psycopg2.Error as exc:
            return one_line(exc)
        return None

    def ensure_amcheck(self):
        if self.query("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'"):
            return True
        if self.params['amcheck'] == 'require':
            raise ModuleError('the amcheck extension is not installed in %s (amcheck=require)'
                              % self.params['database'], 'unavailable')
        if self.module.check_mode:
            self.result.update(amcheck_installed=True, amcheck_missing=True)
            return False
        try:
            self.query('CREATE EXTENSION IF NOT EXISTS amcheck')
        except psycopg2.Error as exc:
            raise ModuleError('cannot create the amcheck extension in %s: %s'
                              % (self.params['database'], one_line(exc)), 'unavailable') from None
        self.result.update(amcheck_installed=True, changed=True)
        return True

    def run(self):
        params, result = self.params, self.result
        self.conn = connect(psycopg2, params, params['database'], APPLICATION_NAME)
        version = self.query("SELECT current_setting('server_version_num')::int AS v")[0]['v']
        result['server_version'] = version
        if version < MIN_SERVER_VERSION:
            raise ModuleError('PostgreSQL %d is too old: REINDEX CONCURRENTLY needs 12 or later' % version, 'input')
        timeout = '%ds' % params['statement_timeout'] if params['statement_timeout'] else '0'
        self.query("SELECT set_config('statement_timeout', %s, false)", (timeout,))
        self.check_names()
        if not self.ensure_amcheck():
            return result

        rows = self.query(INDEXES_SQL, dict(schemas=params['schemas'], indexes=params['indexes']))
        broken = []
        for row in rows:
            if row['method'] != 'btree':
                result['not_checked'].append('%s (%s)' % (name(row), row['method']))
                if not row['valid']:
                    result['invalid'].append(dict(schema=row['schema'], index=row['index'], table=row['table']))
                    broken.append(row)
                continue
            if not row['valid']:
                result['invalid'].append(dict(schema=row['schema'], index=row['index'], table=row['table']))
                broken.append(row)
                continue
            result['checked'] += 1
            error = self.check(row)
            if error:
                result['corrupt'].append(dict(schema=row['schema'], index=row['index'], table=row['table'],
                                              error=error))
                broken.append(row)

        if params['reindex'] and broken:
            result['reindexed'] = [name(row) for row in broken]
            if not self.module.check_mode:
                self.rebuild(broken)
        return result

    def check_names(self):
        params = self.params
        known = set(row['nspname'] for row in self.query(
            'SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s::text[])', (params['schemas'],)))
        unknown = [schema for schema in params['schemas'] if schema not in known]
        if unknown:
            raise ModuleError('schemas names schema(s) that do not exist in %s: %s'
                              % (params['database'], ', '.join(unknown)), 'input')

    def rebuild(self, broken):
        result = self.result
        tables = []
        for row in broken:
            statement = sql.SQL('REINDEX INDEX CONCURRENTLY {}.{}').format(sql.Identifier(row['schema']),
                                                                           sql.Identifier(row['index']))
            try:
                self.query(statement)
            except psycopg2.OperationalError:
                raise
            except psycopg2.Error as exc:
                result['still_corrupt'].append(dict(schema=row['schema'], index=row['index'], table=row['table'],
                                                    error='REINDEX failed: %s' % one_line(exc)))
                continue
            result['changed'] = True
            # The rebuilt index has a new oid: look it up by name to check it again.
            fresh = self.query(INDEXES_SQL, dict(schemas=[row['schema']], indexes=[row['index']]))
            error = None
            if not fresh or not fresh[0]['valid']:
                error = 'still invalid after REINDEX'
            elif fresh[0]['method'] == 'btree':
                error = self.check(fresh[0])
            if error:
                result['still_corrupt'].append(dict(schema=row['schema'], index=row['index'], table=row['table'],
                                                    error=error))
            table = '%s.%s' % (row['schema'], row['table'])
            if table not in tables:
                tables.append(table)
        if self.params['analyze']:
            for table in tables:
                schema, _dot, relname = table.partition('.')
                self.query(sql.SQL('ANALYZE {}.{}').format(sql.Identifier(schema), sql.Identifier(relname)))
                result['analyzed'].append(table)

    def close(self):
        if self.conn is not None:
            self.conn.close()


def validate(module):
    params = module.params
    if not params['database']:
        module.fail_json(msg='postgresql_index_check: database must not be empty', error_kind='input')
    if params['statement_timeout'] < 0:
        module.fail_json(msg='postgresql_index_check: statement_timeout must be 0 or more seconds, got %d'
                             % params['statement_timeout'], error_kind='input')
    for option in ('schemas', 'indexes'):
        if any(not item for item in params[option]):
            module.fail_json(msg='postgresql_index_check: %s must not hold an empty name' % option, error_kind='input')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            database=dict(type='str', required=True),
            schemas=dict(type='list', elements='str', default=[]),
            indexes=dict(type='list', elements='str', default=[]),
            reindex=dict(type='bool', default=False),
            analyze=dict(type='bool', default=True),
            heapallindexed=dict(type='bool', default=False),
            amcheck=dict(type='str', default='install', choices=['install', 'require']),
            statement_timeout=dict(type='int', default=600),
            **login_argument_spec()
        ),
        supports_check_mode=True,
    )
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib('psycopg2'), exception=PSYCOPG2_IMPORT_ERROR,
                         error_kind='unavailable')
    validate(module)

    index_check = IndexCheck(module)
    try:
        result = index_check.run()
    except ModuleError as exc:
        module.fail_json(msg='postgresql_index_check: %s' % exc, error_kind=exc.kind, **index_check.result)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        module.fail_json(msg='postgresql_index_check: lost the connection to PostgreSQL: %s' % one_line(exc),
                         error_kind='unavailable', exception=traceback.format_exc(), **index_check.result)
    except psycopg2.Error as exc:
        module.fail_json(msg='postgresql_index_check: %s' % one_line(exc), error_kind='remediation',
                         exception=traceback.format_exc(), **index_check.result)
    finally:
        index_check.close()
    module.exit_json(msg=summary(result, module.params['database'], module.check_mode), **result)


if __name__ == '__main__':
    main()
