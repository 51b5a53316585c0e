# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The scenario frame's rules, as plain functions (no Ansible objects, easy to unit test).

The frame (role ``runbook.remediation.scenario``, action plugins ``scenario_request``,
``scenario_begin`` and ``scenario_end``) wraps every scenario in the same contract:
check the request -> validate the remediation role's input -> admission by the safety
envelope -> silence the scenario's alerts -> the role -> expire the silence -> verify with
PromQL -> release the lease -> one ``runbook_result``.

What an alert, a webhook or a command line gives is *request data*: it is checked here
for its shape before anything templates it, so ``{{ lookup('pipe', ...) }}`` in a label
is refused, never run. Decisions fail closed: when the envelope cannot answer, the
decision is ``refused`` and the remediation does not run.

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import json
import os
import re

# Outcomes of a scenario run (``runbook_result.outcome``), best to worst is not implied.
OUTCOMES = ('healthy', 'remediated', 'planned', 'skipped', 'escalate', 'failed')
# What ends a host badly: ansible-playbook and AWX show these hosts as failed.
BAD_OUTCOMES = ('failed', 'escalate')
# Admission decisions: the envelope's, plus the frame's own.
ENVELOPE_DECISIONS = ('act', 'duplicate', 'cooldown', 'escalate', 'breaker', 'busy')
# diagnose: only looking was asked; rejected: the request was invalid; refused: the
# envelope could not decide (unavailable, broken) so nothing may act.
FRAME_DECISIONS = ('diagnose', 'rejected', 'refused')

# Names that may come from an alert or a command line: a service, a host, a label value.
NAME_RE = re.compile(r'^[A-Za-z0-9_.-]{1,128}$')
# Prometheus label names.
LABEL_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,127}$')
# Label values we pass on (alertname, severity, region...): names plus ':' (instance).
LABEL_VALUE_RE = re.compile(r'^[A-Za-z0-9_.:-]{1,256}$')
# Alertmanager fingerprints are 16 hex digits; allow any short hex id.
FINGERPRINT_RE = re.compile(r'^[0-9a-fA-F]{1,64}$')
# RFC 3339 / ISO 8601 times as Alertmanager writes them (startsAt).
TIME_RE = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$')
# fingerprint@startsAt: one alert occurrence, the envelope's dedupe key.
ALERT_KEY_RE = re.compile(r'^[0-9a-fA-F]{1,64}@\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$')
# Run ids the entrances make: uuids, AWX job ids, timestamps with a suffix.
RUN_ID_RE = re.compile(r'^[A-Za-z0-9_.:@-]{1,128}$')
# Incident ids (INC-20261203-0001) and the like.
INCIDENT_RE = re.compile(r'^[A-Za-z0-9_.-]{1,64}$')
# Why safety was overridden: words, digits and light punctuation, recorded as given.
OVERRIDE_RE = re.compile(r'^[A-Za-z0-9 _.,:;()/#@+-]{3,200}$')
# A PromQL expression a request may give (printable, one line; never a template).
PROMQL_RE = re.compile(r'^[^\x00-\x1f\x7f]{1,2000}$')
# Jinja's delimiters: a request value holding one is refused outright.
_TEMPLATE_MARKS = ('{{', '{%', '{#')
# env-toggle (env_toggle_set): an environment variable name, and a plain value (the role then
# checks the name against the service's declared settings).
ENV_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,127}$')
ENV_VALUE_RE = re.compile(r'^[A-Za-z0-9_.:/@+,=*-]{0,256}$')

# Request variables: (name, pattern, what it is). Each may come from an alert or a CLI.
REQUEST_VARS = (
    ('service', NAME_RE, 'a service name'),
    ('runbook_alert_key', ALERT_KEY_RE, 'an alert key (fingerprint@startsAt)'),
    ('runbook_run_id', RUN_ID_RE, 'a run id'),
    ('runbook_incident', INCIDENT_RE, 'an incident id'),
    # error-rate (release_rollback): a release name and a PromQL expression a user may give.
    ('release_rollback_to', NAME_RE, 'a release name'),
    ('release_rollback_query', PROMQL_RE, 'a PromQL expression'),
    # latency (latency_relief): the same, and a work per request.
    ('latency_relief_query', PROMQL_RE, 'a PromQL expression'),
    ('latency_relief_work_to', re.compile(r'^[0-9]{1,9}$'), 'a whole number'),
    # latency's CPU step (cpu_limit_raise): a number of cores.
    ('cpu_limit_raise_to', re.compile(r'^[0-9]{1,3}(\.[0-9]{1,2})?$'), 'a number of cores'),
    # latency's scale-out step (replica_scale): a replica count.
    ('replica_scale_to', re.compile(r'^[0-9]{1,3}$'), 'a whole number of replicas'),
    # config-restore (config_restore): a git revision, never a range or an option.
    ('config_restore_revision', re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_./^~-]{0,127}$'), 'a git revision'),
    # admin-action (app_admin): the name of an action the service declares.
    ('app_admin_action', re.compile(r'^[a-z][a-z0-9_]{0,63}$'), 'an admin action name such as cache_clear'),
    # redis-memory / redis-flush (redis_memory): a size, what to flush, a database number.
    ('redis_memory_to', re.compile(r'^[0-9]{1,6}(\.[0-9]{1,3})?[KMGkmg]?[Bb]?$'), 'a size such as 512M'),
    ('redis_memory_flush', re.compile(r'^(db|all)$'), 'db or all'),
    ('redis_memory_flush_db', re.compile(r'^[0-9]{1,4}$'), 'a database number'),
    # db-max-connections (db_max_connections): a connection count.
    ('db_max_connections_to', re.compile(r'^[0-9]{1,5}$'), 'a whole number of connections'),
    # prometheus-retention (prometheus_retention): a Prometheus duration and size.
    ('prometheus_retention_time', re.compile(r'^([0-9]{1,6}(y|w|d|h|m|s|ms)){1,4}$'), 'a duration such as 15d'),
    ('prometheus_retention_size', re.compile(r'^[0-9]{1,6}(B|KB|MB|GB|TB|PB|EB)$'), 'a size such as 10GB'),
    # The switches `runbook run --revert` turns back: isolate-pods, isolate-host, auth-abuse,
    # maintenance-mode, traffic-drain.
    ('pod_isolate_action', re.compile(r'^(isolate|revert)$'), 'isolate or revert'),
    ('host_isolate_action', re.compile(r'^(isolate|revert|sweep)$'), 'isolate, revert or sweep'),
    ('client_block_action', re.compile(r'^(block|sweep|unblock)$'), 'block, sweep or unblock'),
    ('maintenance_mode_action', re.compile(r'^(enable|disable)$'), 'enable or disable'),
    ('traffic_weight_action', re.compile(r'^(set|revert)$'), 'set or revert'),
    ('traffic_weight_to', re.compile(r'^[0-9]{1,4}$'), 'a whole-number weight'),
)

# Variables that loosen the safety envelope, the budgets or the blast radius: from extra
# vars (a command line, an alert, a survey) they need runbook_override_safety=REASON.
# Inventory (the owner's configuration) may set them freely.
SAFETY_VAR_PATTERNS = (
    re.compile(r'^safety_envelope_'),
    re.compile(r'^runbook_(blast_radius|max_fail_percentage)$'),
    re.compile(r'_budget_(max|window)$'),
    re.compile(r'_max_attempts$'),
    re.compile(r'_state_dir$'),
    re.compile(r'_ceiling$'),
    re.compile(r'^scenario_(envelope|lease_ttl)'),
)
OVERRIDE_VAR = 'runbook_override_safety'


class RequestError(ValueError):
    """The request is invalid: nothing may be admitted or touched."""


def has_template(value):
    """Whether a string holds a Jinja delimiter."""
    return isinstance(value, str) and any(mark in value for mark in _TEMPLATE_MARKS)


def check_value(name, value, pattern, what):
    """A request value is plain text of the given shape (or empty). Returns it as str."""
    if value is None or value == '':
        return ''
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError('%s must be %s, not %s' % (name, what, type(value).__name__))
        value = str(value)
    if has_template(value):
        raise RequestError('%s must be %s: templates are not accepted from a request' % (name, what))
    # fullmatch: `$` alone would let a trailing newline through.
    if not pattern.fullmatch(value):
        raise RequestError('%s must be %s matching %s, got %s' % (name, what, pattern.pattern, echo(value)))
    return value


# What a message may echo of a bad value: plain characters only. The message travels on
# (a rulebook event, a result), so it never carries braces, quotes or control characters.
_ECHO_RE = re.compile(r'^[A-Za-z0-9 _.:@/+=,*?!&~^\[\]()-]{0,80}$')


def echo(value):
    """A bad value as a message may show it: quoted when plain, else only its length."""
    text = str(value)
    return repr(text) if _ECHO_RE.match(text) else '(%d characters, not shown)' % len(text)


def check_request(raw_vars):
    """Check every request variable in ``raw_vars`` (untemplated). Returns the clean
    values (str, '' when absent); raises RequestError on the first bad one."""
    clean = {}
    for name, pattern, what in REQUEST_VARS:
        clean[name] = check_value(name, raw_vars.get(name), pattern, what)
    clean['env_toggle_set'] = check_env_set(raw_vars.get('env_toggle_set'))
    clean['env_toggle_revert'] = check_flag('env_toggle_revert', raw_vars.get('env_toggle_revert'))
    clean['config_restore_force'] = check_flag('config_restore_force', raw_vars.get('config_restore_force'))
    clean['app_admin_force'] = check_flag('app_admin_force', raw_vars.get('app_admin_force'))
    clean['alert'] = check_eda_event(raw_vars.get('ansible_eda'))
    return clean


def check_env_set(value):
    """env_toggle_set: a mapping {NAME: value} (or its JSON text, an AWX survey field) of
    plain names and values. Returns the mapping ({} when absent)."""
    if value is None or value == '' or value == {}:
        return {}
    if isinstance(value, str):
        if has_template(value):
            raise RequestError('env_toggle_set must be a mapping {NAME: value}: '
                               'templates are not accepted from a request')
        try:
            value = json.loads(value)
        except ValueError:
            raise RequestError('env_toggle_set must be a mapping {NAME: value} (or its JSON text)') from None
    if not isinstance(value, dict):
        raise RequestError('env_toggle_set must be a mapping {NAME: value}')
    clean = {}
    for name, item in value.items():
        if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
            raise RequestError('env_toggle_set: %s is not an environment variable name' % echo(name))
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise RequestError('env_toggle_set: the value of %s must be text or a whole number' % name)
        item = str(item)
        if has_template(item):
            raise RequestError('env_toggle_set: the value of %s: templates are not accepted from a request' % name)
        if not ENV_VALUE_RE.fullmatch(item):
            raise RequestError('env_toggle_set: the value of %s must be plain (letters, digits, _.:/@+,=*-), got %s'
                               % (name, echo(item)))
        clean[name] = item
    return clean


def check_flag(name, value):
    """A yes/no request value: a boolean, or its text. Returns a bool (False when absent)."""
    if value is None or value == '':
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in ('true', 'yes', 'on', '1'):
        return True
    if text in ('false', 'no', 'off', '0'):
        return False
    raise RequestError('%s must be true or false, not %s' % (name, echo(value)))


def check_eda_event(eda):
    """The alert behind a rulebook run (``ansible_eda.event``), reduced to what the frame
    uses: fingerprint, startsAt, status and the labels. Every value is checked; anything
    else (annotations, generatorURL) is not read. Returns {} without an event."""
    if not eda:
        return {}
    if not isinstance(eda, dict) or not isinstance(eda.get('event', {}), dict):
        raise RequestError('ansible_eda must be the mapping ansible-rulebook passes')
    event = eda.get('event') or {}
    labels = event.get('labels') or {}
    if not isinstance(labels, dict):
        raise RequestError('the alert labels must be a mapping')
    clean_labels = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_NAME_RE.match(key):
            raise RequestError('alert label name %s is not a Prometheus label name' % echo(key))
        clean_labels[key] = check_value('alert label %s' % key, value, LABEL_VALUE_RE, 'a plain label value')
    alert = {
        'fingerprint': check_value('alert fingerprint', event.get('fingerprint'), FINGERPRINT_RE, 'hex digits'),
        'starts_at': check_value('alert startsAt', event.get('startsAt'), TIME_RE, 'an RFC 3339 time'),
        'status': check_value('alert status', event.get('status'), NAME_RE, 'firing or resolved'),
        'labels': clean_labels,
    }
    if alert['fingerprint'] and alert['starts_at']:
        alert['key'] = '%s@%s' % (alert['fingerprint'], alert['starts_at'])
    return alert


def safety_overrides(extra_vars):
    """Names among ``extra_vars`` that loosen safety (see SAFETY_VAR_PATTERNS)."""
    return sorted(name for name in extra_vars
                  if isinstance(name, str) and any(p.search(name) for p in SAFETY_VAR_PATTERNS))


# --- the catalogue ---------------------------------------------------------------------

def catalogue_path(collection_root):
    return os.path.join(collection_root, 'meta', 'scenarios.yml')


def load_catalogue(path, loader):
    """``{name: entry}`` from meta/scenarios.yml; ``loader`` parses YAML text."""
    with open(path, 'rb') as handle:
        data = loader(handle.read().decode('utf-8')) or {}
    entries = data.get('scenarios') if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('%s has no scenarios list' % path)
    return {entry['name']: entry for entry in entries if isinstance(entry, dict) and entry.get('name')}


# --- outcomes ----------------------------------------------------------------------------

def apply_decision(result, decision, reason):
    """A run the envelope did not admit only looked (its role ran diagnose-only): unless it
    found the service healthy, or failed looking, its outcome is the envelope's answer."""
    if decision in ('act', 'diagnose') or result.get('outcome', 'failed') in ('healthy', 'failed'):
        return result
    skipped = decision == 'duplicate'
    return dict(result, outcome='skipped' if skipped else 'escalate',
                message=('skipped: ' if skipped else 'escalate: ') + (reason or 'the safety envelope said no'))


# How a failure's message starts, by its error_kind: bad input and a missing prerequisite
# are not failed remediations (the CLI maps them to exit 2 and 5).
_PREFIXES = {'input': 'invalid input', 'unavailable': 'unavailable'}
# Failures that say nothing about the remediation itself: they never count against the
# envelope's budget or breakers.
NOT_COUNTED = ('input', 'unavailable')


def _one_line(text):
    return ' '.join(str(text).split())


def rejected_result(message, error_kind='input'):
    """The result of a run whose request or input was refused before anything was touched."""
    prefix = 'unavailable' if error_kind == 'unavailable' else 'invalid input'
    return {'outcome': 'failed', 'error_kind': error_kind, 'message': '%s: %s' % (prefix, _one_line(message)),
            'findings': [], 'actions': [], 'verification': {}, 'evidence': {}}


def failure_result(partial, message, task=None, error_kind='remediation'):
    """A task of the role failed: keep what the role had recorded, say what broke."""
    result = dict(partial or {})
    result.update(outcome='failed', error_kind=error_kind,
                  message='%s: %s' % (_PREFIXES.get(error_kind, 'failed'), _one_line(message)))
    findings = list(result.get('findings') or [])
    if task:
        findings.append("task '%s' failed" % task)
    result['findings'] = findings
    return result


def release_outcome(result):
    """The outcome the envelope records: bad input and a missing prerequisite found on the
    target are not failed remediations, so they cost no attempt and open no breaker."""
    outcome = result.get('outcome', 'failed')
    if outcome == 'failed' and result.get('error_kind') in NOT_COUNTED:
        return 'skipped'
    return outcome if outcome in OUTCOMES else 'failed'


def complete_result(result, scenario, host, check_mode):
    """The public ``runbook_result``: every key present, the scenario and host named."""
    final = {'outcome': 'failed', 'message': 'the scenario ended without a result', 'findings': [],
             'actions': [], 'verification': {}, 'evidence': {}}
    final.update(result or {})
    if final['outcome'] not in OUTCOMES:
        final['message'] = 'unknown outcome %r: %s' % (final['outcome'], final.get('message'))
        final['outcome'] = 'failed'
    final.update(scenario=scenario, host=host, check_mode=bool(check_mode))
    return final


def lease_ttl(entry, default=900):
    """How long a lease may live without release: the scenario's longest expected run
    (catalogue ``max_seconds``) with room to spare, never below ``default``."""
    try:
        longest = float(entry.get('max_seconds') or 0)
    except (TypeError, ValueError):
        longest = 0
    return max(float(default), longest * 2)
