# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: notification
short_description: Record every task result of a run in the runbook incident timeline
version_added: 0.1.0
description:
  - Writes each run, each task result (time, host, task, action, ok/changed/failed/skipped/unreachable, a short
    message) and each scenario result (the C(runbook_result) fact set by the role
    C(runbook.remediation.scenario_report)) into the incident timeline, a SQLite file shared by every entrance (plain
    C(ansible-playbook), the C(runbook) CLI, AWX and rulebooks).
  - Secrets are never stored. A task or result with C(no_log) is recorded as C((output hidden by no_log)) and nothing
    else. Of other results, only a small excerpt is kept (C(msg), C(rc), the first lines of C(stdout) and C(stderr),
    C(error_kind), C(skip_reason)); it, task names and scenario results go through masking first (values under
    secret-like keys, C(password=...), C(Bearer ...), URL userinfo, the O(secret_patterns), and the values of extra
    vars and play vars with secret-like names (password, token, api_key, secret...) wherever they appear).
  - The callback never fails a run. When the timeline cannot be written it warns once and the play goes on.
requirements:
  - Enabled explicitly, for example C(ANSIBLE_CALLBACKS_ENABLED=runbook.remediation.timeline), or
    C(callbacks_enabled = runbook.remediation.timeline) in the C([defaults]) section of C(ansible.cfg).
options:
  db_path:
    description:
      - The SQLite file of the timeline. Created (with its directory, mode 0700/0600) if missing.
      - Default C($RUNBOOK_STATE_DIR/timeline.db), else C($XDG_STATE_HOME/runbook/timeline.db), else
        C(~/.local/state/runbook/timeline.db) - where the C(runbook) CLI keeps it.
      - Ignored when C($RUNBOOK_STATE_DSN) is set (a libpq DSN or V(postgresql://) URL), the timeline is that
        PostgreSQL database, shared by every controller.
    type: path
    env:
      - name: RUNBOOK_TIMELINE_DB
    ini:
      - section: callback_runbook_timeline
        key: db_path
  incident:
    description:
      - The incident the run belongs to, for example V(INC-20261201-0001).
      - When not set, the extra var C(runbook_incident) is used; without either the run belongs to no incident (the
        CLI can attach it later).
    type: str
    env:
      - name: RUNBOOK_INCIDENT
    ini:
      - section: callback_runbook_timeline
        key: incident
  run_id:
    description:
      - The run's id. The C(runbook) CLI sets it so that its own records and the callback's land on one run.
      - A new UUID when not set.
    type: str
    env:
      - name: RUNBOOK_RUN_ID
  entrance:
    description:
      - How the run was started, one of V(cli), V(ansible-playbook), V(awx), V(rulebook).
      - When not set, V(awx) if the C(JOB_ID) environment variable is set (AWX and Tower set it), V(rulebook) if the
        extra var C(ansible_eda) is there (ansible-rulebook sets it), else V(ansible-playbook).
    type: str
    env:
      - name: RUNBOOK_ENTRANCE
  secret_patterns:
    description:
      - Extra regular expressions (Python syntax) whose matches are masked before anything is stored; only the
        groups are masked when a pattern has groups, for example V(ghp_[A-Za-z0-9]+) or V(dsn=\\S+://\\S+:(\\S+)@).
      - A JSON list (V(["ghp_[A-Za-z0-9]+", "x{2,5}"])) or one pattern per line; never split on commas, which
        regular expressions use.
    type: str
    default: ""
    env:
      - name: RUNBOOK_SECRET_PATTERNS
    ini:
      - section: callback_runbook_timeline
        key: secret_patterns
  output_lines:
    description: How many first lines of C(stdout) and C(stderr) a task event keeps.
    type: int
    default: 5
    env:
      - name: RUNBOOK_TIMELINE_OUTPUT_LINES
    ini:
      - section: callback_runbook_timeline
        key: output_lines
notes:
  - The schema (incidents, runs, events) is documented in the collection's C(plugins/module_utils/_timeline.py).
  - Several runs may write to one timeline at once (WAL journal, busy timeout).
seealso:
  - name: The runbook.remediation README
    description: Incidents and the timeline, and how the C(runbook) CLI shows them.
    link: https://github.com/runbook-remediation/runbook.remediation/blob/main/README.md
author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

import atexit
import getpass
import os
import time

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.runbook.remediation.plugins.module_utils._statedb import env_dsn
from ansible_collections.runbook.remediation.plugins.module_utils._timeline import (
    ENTRANCES,
    TimelineError,
    TimelineStore,
    secret_values,
    split_patterns,
)

NO_LOG_MESSAGE = '(output hidden by no_log)'
CATALOGUE = os.path.join(os.path.dirname(__file__), '..', '..', 'meta', 'scenarios.yml')


def scenario_severity(name, path=CATALOGUE):
    """The catalogue's severity of a scenario (P2 when it cannot be read)."""
    try:
        import yaml  # ansible-core's own dependency

        with open(path, encoding='utf-8') as handle:
            # libyaml when present: this runs once per playbook, on the run's critical path.
            loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
            entries = (yaml.load(handle, Loader=loader) or {}).get('scenarios') or []  # noqa: S506 - safe loader
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return 'P2'
    for entry in entries:
        if isinstance(entry, dict) and entry.get('name') == name and entry.get('severity') in ('P0', 'P1', 'P2', 'P3'):
            return entry['severity']
    return 'P2'


# Worst first: the run's outcome is the worst of its hosts' scenario outcomes.
OUTCOME_RANK = {'failed': 5, 'escalate': 4, 'remediated': 3, 'planned': 2, 'healthy': 1, 'skipped': 0}
# What of a task result is kept, besides the output lines.
RESULT_KEYS = ('msg', 'rc', 'error_kind', 'skip_reason', 'false_condition', 'attempts')
RESULT_FACT = 'runbook_result'
MESSAGE_LIMIT = 300


def _text(value):
    """Plain text of a value that may carry Ansible's tagged types."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return '; '.join(str(item) for item in value)
    return str(value)


def _first_lines(value, count):
    if isinstance(value, (list, tuple)):
        lines = [str(line) for line in value]
    else:
        lines = str(value or '').splitlines()
    return lines[:count]


def _with_outcome(outcome, message):
    """``outcome: message``, once: scenario messages usually start with their outcome."""
    message = str(message or '')
    return message if message.startswith(outcome + ':') else '%s: %s' % (outcome, message)


def _short(text, store):
    """One line of at most MESSAGE_LIMIT characters, masked BEFORE it is cut: a secret
    straddling the cut would otherwise survive as a fragment the masking cannot know."""
    text = ' '.join(str(store.mask(str(text))).split())
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 3] + '...'


def _plain(value):
    """Extra vars and play vars as plain data (str/int/float/bool/None/dict/list)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _frame_scenario(play):
    """The scenario a play runs: the scenario_name of its runbook.remediation.scenario role."""
    for role in play.get_roles() if hasattr(play, 'get_roles') else []:
        if role.get_name() in ('runbook.remediation.scenario', 'scenario'):
            name = (getattr(role, '_role_params', None) or {}).get('scenario_name')
            if isinstance(name, str) and name:
                return name
    return None


def playbook_name(path):
    """``runbook.remediation.disk_full`` for a collection playbook, else the file name."""
    path = os.path.abspath(path or '')
    parts = path.split(os.sep)
    stem = os.path.splitext(parts[-1])[0]
    if 'ansible_collections' in parts:
        index = len(parts) - 1 - parts[::-1].index('ansible_collections')
        rest = parts[index + 1:]
        if len(rest) >= 4 and rest[2] == 'playbooks':
            return '.'.join([rest[0], rest[1], *rest[3:-1], stem])
    return os.path.basename(path)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'runbook.remediation.timeline'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._store = None
        self._disabled = False
        self._warned = False
        self._run_id = None
        self._run_started = False
        self._run_ended = False
        self._playbook = None
        self._outcomes = {}
        self._hosts = set()
        self._task_started = {}
        self._pid = os.getpid()

    # --- plumbing ------------------------------------------------------------------------

    def _warn(self, what, exc):
        if not self._warned:
            self._warned = True
            self._display.warning('runbook.remediation.timeline: %s; the run goes on without (full) timeline '
                                  'records: %s' % (what, exc))

    def _safely(self, what, func, *args, **kwargs):
        """Call func; any error becomes one warning (the callback must never break a run)."""
        if self._disabled:
            return None
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except  # noqa: BLE001 - any error: warn, go on
            self._warn(what, exc)
            return None

    def _open(self):
        try:
            # $RUNBOOK_STATE_DSN: the shared database (docs/shared-state.md) wins over the file.
            self._store = TimelineStore(self.get_option('db_path') or None, dsn=env_dsn(),
                                        secret_patterns=split_patterns(self.get_option('secret_patterns')))
        except (TimelineError, OSError, ValueError) as exc:
            self._disabled = True
            self._warn('cannot open the timeline', exc)

    # --- playbook and plays ------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook):
        self._playbook = playbook_name(getattr(playbook, '_file_name', None))
        self._open()

    def v2_playbook_on_play_start(self, play):
        self._preload(play)
        if self._store is None:
            return
        self._safely('cannot record the run', self._play_start, play)

    def _preload(self, play):
        """Load the play's plugins here, before ansible-playbook forks a worker per task and
        host that would each load them again (plugin_utils/_preload.py). Best effort."""
        try:
            # Imported here: a collection without the frame (or a broken one) still records.
            from ansible_collections.runbook.remediation.plugins.plugin_utils import _preload

            loaded = _preload.preload(play, _frame_scenario(play))
        except Exception as exc:  # pylint: disable=broad-except  # noqa: BLE001 - the workers load what is missing
            self._display.vvv('runbook.remediation.timeline: preloading plugins: %s' % exc)
            return
        self._display.vvv('runbook.remediation.timeline: preloaded %s' % ', '.join(loaded))

    def _play_start(self, play):
        manager = play.get_variable_manager()
        extra_vars = _plain(dict(manager.extra_vars)) if manager is not None else {}
        play_vars = _plain(dict(play.get_vars() or {}))
        # Values of secret-like variables are masked wherever they show up later.
        self._store.add_secrets(secret_values(extra_vars) | secret_values(play_vars))
        scenario = _frame_scenario(play) or play_vars.get('runbook_scenario') or extra_vars.get('runbook_scenario')
        if isinstance(scenario, str) and '{{' in scenario:
            scenario = None
        if self._run_started:
            if scenario:
                self._store.start_run(self._run_id, scenario=scenario)
            return
        incident = self.get_option('incident') or extra_vars.get('runbook_incident') or None
        self._run_id = self._store.start_run(
            self.get_option('run_id') or None,
            incident_id=incident,
            scenario=scenario or self._playbook,
            playbook=self._playbook,
            entrance=self._entrance(extra_vars),
            user=self._user(extra_vars),
            check_mode=bool(context.CLIARGS.get('check', False)),
            extra={'limit': context.CLIARGS.get('subset'), 'pid': os.getpid()},
        )
        self._run_started = True
        atexit.register(self._at_exit)
        run = self._store.get_run(self._run_id)
        self._store.add_event(
            'note', run_id=self._run_id,
            message='run started: %s (%s%s) by %s via %s' % (
                run['scenario'], run['playbook'], ', check mode' if run['check_mode'] else '', run['user'],
                run['entrance']),
            data={'playbook': run['playbook'], 'limit': context.CLIARGS.get('subset'),
                  'incident': run['incident_id']})

    def _entrance(self, extra_vars):
        wanted = self.get_option('entrance')
        if wanted:
            if wanted in ENTRANCES:
                return wanted
            self._display.warning('runbook.remediation.timeline: entrance %r is not one of %s; detecting it'
                                  % (wanted, ', '.join(ENTRANCES)))
        if os.environ.get('JOB_ID'):
            return 'awx'
        if 'ansible_eda' in extra_vars:
            return 'rulebook'
        return 'ansible-playbook'

    @staticmethod
    def _user(extra_vars):
        for name in ('awx_user_name', 'tower_user_name'):
            if extra_vars.get(name):
                return str(extra_vars[name])
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return str(os.getuid())

    # --- task results ------------------------------------------------------------------

    def v2_runner_on_start(self, host, task):
        self._task_started[(host.get_name(), getattr(task, '_uuid', id(task)))] = time.monotonic()

    def v2_runner_on_ok(self, result):
        self._record(result, 'changed' if result.is_changed() else 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed', ignored=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def _record(self, result, status, ignored=False):
        if self._store is None or not self._run_started:
            return
        self._safely('cannot record a task result', self._record_result, result, status, ignored)

    def _record_result(self, result, status, ignored):
        host = result.host.get_name()
        task = result.task
        self._hosts.add(host)
        started = self._task_started.pop((host, getattr(task, '_uuid', id(task))), None)
        body = result.result
        hidden = task.no_log is True or 'censored' in body or bool(body.get('_ansible_no_log'))
        if hidden:
            message, data = NO_LOG_MESSAGE, None
        else:
            message, data = self._excerpt(body, status)
            if ignored:
                data['ignored'] = True
        if started is not None:
            data = dict(data or {}, duration=round(time.monotonic() - started, 3))
        failed = status in ('failed', 'unreachable')
        self._store.add_event(
            'task', run_id=self._run_id, host=host, task=result.task_name, action=task.action, status=status,
            changed=result.is_changed(), failed=failed, message=message, data=data or None)
        if not hidden and status in ('ok', 'changed'):
            facts = body.get('ansible_facts') or {}
            if isinstance(facts.get(RESULT_FACT), dict):
                self._record_scenario_result(host, result.task_name, task.action, facts[RESULT_FACT])

    def _excerpt(self, body, status):
        """(message, data): the whitelisted part of a result, before masking (the store masks)."""
        lines = max(int(self.get_option('output_lines') or 0), 0)
        data = {key: _plain(body[key]) for key in RESULT_KEYS if body.get(key) not in (None, '', [])}
        for key in ('stdout', 'stderr'):
            excerpt = _first_lines(body.get(key + '_lines') or body.get(key), lines)
            if excerpt:
                data[key] = excerpt
        items = body.get('results')
        if isinstance(items, list) and items:
            data['items'] = len(items)
            data['failed_items'] = sum(1 for item in items if isinstance(item, dict) and item.get('failed'))
        if status == 'skipped':
            message = body.get('skip_reason') or 'skipped'
        elif body.get('msg') not in (None, ''):
            message = _text(body['msg'])
        elif 'rc' in body:
            first = (data.get('stderr') if status == 'failed' else None) or data.get('stdout') or ['']
            message = ('rc %s: %s' % (body['rc'], first[0])).rstrip(': ')
        else:
            message = None
        return (_short(message, self._store) if message else None), data

    def _record_scenario_result(self, host, task_name, action, outcome):
        result = _plain(outcome)
        self._outcomes[host] = str(result.get('outcome') or 'failed')
        data = {key: result.get(key) for key in ('scenario', 'service', 'outcome', 'error_kind', 'findings', 'actions',
                                                 'verification', 'check_mode') if key in result}
        data['evidence'] = result.get('evidence')
        self._store.add_event(
            'result', run_id=self._run_id, host=host, task=task_name, action=action,
            status='failed' if self._outcomes[host] in ('failed', 'escalate') else 'ok',
            failed=self._outcomes[host] in ('failed', 'escalate'),
            message=_short(_with_outcome(self._outcomes[host], result.get('message')), self._store),
            data=data)
        self._store.update_run(self._run_id, outcome=self._run_outcome())
        if self._outcomes[host] == 'escalate' and not self._store.get_run(self._run_id).get('incident_id'):
            self._escalate(host, result)

    def _escalate(self, host, result):
        """An escalation is an incident: a human must look. One open incident per scenario
        and host takes every further escalation (a crash loop on hold escalates on every
        repeated alert), so a hold does not open a new incident each time."""
        scenario = str(result.get('scenario') or 'scenario')
        title = 'escalated: %s on %s' % (scenario, host)
        existing = [incident for incident in self._store.list_incidents()
                    if incident.get('title') == title and incident.get('status') != 'resolved']
        if existing:
            incident_id = existing[0]['id']
        else:
            incident_id = self._store.new_incident(title, severity=scenario_severity(scenario), scenario=scenario,
                                                   service=result.get('service'), hosts=[host])
        self._store.update_run(self._run_id, incident_id=incident_id)
        self._store.add_event('status', run_id=self._run_id, incident_id=incident_id, host=host,
                              message=_short('escalated to a human: %s' % (result.get('message') or ''), self._store))

    def _run_outcome(self, stats_failed=False):
        if self._outcomes:
            return max(self._outcomes.values(), key=lambda outcome: OUTCOME_RANK.get(outcome, 0))
        return 'failed' if stats_failed else 'completed'

    # --- end ------------------------------------------------------------------------------

    def v2_playbook_on_stats(self, stats):
        if self._store is None or not self._run_started:
            return
        self._safely('cannot record the end of the run', self._end, stats)

    def _end(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        bad = any(s.get('failures') or s.get('unreachable') for s in summary.values())
        outcome = self._run_outcome(stats_failed=bad)
        self._store.end_run(self._run_id, outcome=outcome,
                            extra={'stats': summary, 'hosts': sorted(self._hosts | set(summary))})
        self._run_ended = True
        self._store.add_event('note', run_id=self._run_id, message='run ended: %s' % outcome,
                              data={'stats': summary, 'outcomes': self._outcomes})

    def _at_exit(self):
        """A run stopped before its stats (Ctrl-C, a fatal error) still gets an end."""
        if os.getpid() != self._pid or self._run_ended or self._store is None or self._disabled:
            return
        try:
            self._store.end_run(self._run_id, outcome='interrupted')
            self._store.add_event('note', run_id=self._run_id, message='run interrupted before its end')
        except Exception:  # pylint: disable=broad-except  # noqa: BLE001, S110 - the process is exiting anyway
            pass
