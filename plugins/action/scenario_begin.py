# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of runbook.remediation.scenario_begin: admission and silence, in process.

After scenario_request accepted the request and the remediation role validated its
input: check the PromQL verification (so bad PromQL or a dead Prometheus stop the run
before anything is admitted), ask the safety envelope, and silence the scenario's own
alerts on this host while it acts. Decides the role's mode: it acts only when the
envelope said ``act``; otherwise it only looks (diagnose-only), or does not run at all
when the request was rejected or the envelope could not decide (fail closed).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail

from ansible_collections.runbook.remediation.plugins.module_utils import (
    _envelope,
    _prometheus,
    _scenario,
    _silence,
    _statedb,
)
from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpClient, is_http_url
from ansible_collections.runbook.remediation.plugins.plugin_utils import _frame

# The envelope's settings, read from these variables when set (inventory, play, -e with
# runbook_override_safety), else the envelope's defaults.
ENVELOPE_SETTINGS = {
    'max_attempts': ('safety_envelope_max_attempts', int),
    'window': ('safety_envelope_window', float),
    'cooldown': ('safety_envelope_cooldown', float),
    'min_interval': ('safety_envelope_min_interval', float),
    'breaker_threshold': ('safety_envelope_breaker_threshold', int),
    'fleet_breaker_threshold': ('safety_envelope_fleet_breaker_threshold', int),
    'wait': ('safety_envelope_wait', float),
    'max_share': ('runbook_blast_radius', float),
    'group_size': ('safety_envelope_group_size', int),
}


class ActionModule(_frame.FrameAction):

    _VALID_ARGS = frozenset(('invalid', 'silence', 'verify_promql', 'prometheus_url', 'promql_timeout'))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        frame = self.frame(task_vars)
        if not frame.get('scenario'):
            raise AnsibleActionFail('scenario_begin: run scenario_request first (no runbook_frame fact)')
        prefix = _frame.role_prefix(frame['role'])
        check_mode = bool(self._task.check_mode)
        warnings = []
        invalid = args.get('invalid')

        if frame.get('decision') == 'rejected':
            pass
        elif isinstance(invalid, dict) and invalid:
            frame.update(decision='rejected', reason=str(invalid.get('msg') or 'invalid input'),
                         error_kind=invalid.get('error_kind') or 'input')
        else:
            try:
                self._check_promql(args)
                frame.update(self._admit(frame, task_vars, check_mode, warnings))
            except _scenario.RequestError as exc:
                frame.update(decision='rejected', reason=str(exc), error_kind=getattr(exc, 'kind', 'input'))
        if frame['decision'] == 'act':
            frame['silence'] = self._silence(frame, args.get('silence') or {}, task_vars, check_mode, warnings)

        act = frame['decision'] == 'act'
        frame['run_role'] = frame['decision'] not in ('rejected', 'refused')
        frame['warnings'] = warnings
        facts = {
            _frame.FRAME_FACT: frame,
            # The remediation role acts only when admitted; otherwise it only looks.
            '%s_diagnose_only' % prefix: not act,
            # The frame records the result first and fails the host afterwards.
            '%s_fail' % prefix: False,
            # The role's entry point need not check its input again (once per run).
            'scenario_validated': '%s:%s' % (frame['role'], frame['validate_from'])
            if frame['run_role'] and frame.get('validate_from') else '',
        }
        for warning in warnings:
            self._display.warning(warning)
        result.update(changed=False, decision=frame['decision'], reason=frame['reason'], ansible_facts=facts,
                      msg='%s: %s' % (frame['decision'], frame['reason']))
        return result

    # --- PromQL ---------------------------------------------------------------------------

    def _check_promql(self, args):
        query = args.get('verify_promql') or ''
        if not query:
            return
        url = args.get('prometheus_url') or ''
        if not is_http_url(url):
            raise _scenario.RequestError('runbook_verify_promql needs runbook_prometheus_url (an http(s) URL), got %r'
                                         % url)
        client = _prometheus.PrometheusClient(HttpClient(base_url=url, timeout=float(args.get('promql_timeout') or 10)))
        try:
            client.query(str(query))
        except _prometheus.QueryError as exc:
            raise _scenario.RequestError('runbook_verify_promql is not valid PromQL: %s' % exc) from exc
        except _prometheus.PrometheusError as exc:
            error = _scenario.RequestError('Prometheus cannot check runbook_verify_promql: %s' % exc)
            error.kind = 'unavailable'
            raise error from exc

    # --- the safety envelope -----------------------------------------------------------------

    def _admit(self, frame, task_vars, check_mode, warnings):
        if frame.get('diagnose_only'):
            return {'decision': 'diagnose', 'reason': 'diagnose only: nothing may act', 'admitted': False}
        if not _frame.as_bool(self.template_var(task_vars, 'safety_envelope_enabled', True), True):
            if not frame.get('override'):
                raise _scenario.RequestError('safety_envelope_enabled=false needs runbook_override_safety=REASON')
            return {'decision': 'act', 'reason': 'the safety envelope is off: %s' % frame['override']['reason'],
                    'admitted': False}
        hostname = task_vars.get('inventory_hostname')
        service = self._service_name(frame, task_vars)
        target = '%s/%s' % (hostname, service)
        path = self.template_var(task_vars, 'safety_envelope_path') or _envelope.default_path()
        dsn = _statedb.env_dsn()
        if task_vars.get('awx_job_id') and not os.environ.get('RUNBOOK_ENVELOPE_DB') and not dsn \
                and not self.template_var(task_vars, 'safety_envelope_path'):
            warnings.append('runbook.remediation: the safety envelope lives in %s, inside this AWX job: budgets, '
                            'dedupe and breakers reset with every job. Set safety_envelope_path (or '
                            'RUNBOOK_ENVELOPE_DB) to storage that outlives the job.' % path)
        settings = {}
        try:
            for key, (var, cast) in ENVELOPE_SETTINGS.items():
                value = self.template_var(task_vars, var)
                if value not in (None, ''):
                    settings[key] = cast(value)
        except (TypeError, ValueError) as exc:
            raise _scenario.RequestError('a safety envelope setting is not a number: %s' % exc) from exc
        # The blast radius' group: the inventory hosts that describe the same service.
        settings['group_size'] = max(1, settings.get('group_size') or self._group_size(task_vars, service))
        entry = _frame.catalogue_entry(frame['scenario'])
        settings['lease_ttl'] = _scenario.lease_ttl(entry)
        try:
            envelope = _envelope.Envelope(path, dsn=dsn)
            path = envelope.path  # the shared database's password-free name when it is one
            try:
                answer = envelope.admit(
                    target, frame['scenario'], frame['run_id'], group=service,
                    alert_key=frame['request'].get('runbook_alert_key') or frame['request'].get('alert', {}).get('key'),
                    dry_run=check_mode, **settings)
            finally:
                envelope.close()
        except (_envelope.EnvelopeError, OSError, ValueError, _statedb.StateDBError) as exc:
            # Fail closed: an envelope that cannot answer lets nothing act.
            return {'decision': 'refused', 'error_kind': 'unavailable', 'target': target, 'service': service,
                    'reason': 'the safety envelope could not decide: %s' % exc, 'admitted': False}
        return {'decision': answer['decision'], 'reason': answer['reason'], 'target': target, 'service': service,
                'envelope_path': path, 'admitted': answer['decision'] == 'act' and not check_mode,
                'breaker_threshold': settings.get('breaker_threshold'),
                'fleet_breaker_threshold': settings.get('fleet_breaker_threshold')}

    def _service_name(self, frame, task_vars):
        """The service acted on: the request's, else the host's only service."""
        named = frame['request'].get('service')
        if named:
            return named
        services = self.template_var(task_vars, 'runbook_services', [])
        if isinstance(services, list) and len(services) == 1 and isinstance(services[0], dict):
            return str(services[0].get('name', ''))
        return ''

    def _group_size(self, task_vars, service):
        """How many inventory hosts describe ``service``: the blast radius' group."""
        hostvars = task_vars.get('hostvars') or {}
        count = 0
        for host in (task_vars.get('groups') or {}).get('all', []):
            # hostvars[host] templates on access, in that host's own context: no second pass here.
            services = hostvars[host].get('runbook_services', []) if host in hostvars else []
            if isinstance(services, list) and any(isinstance(s, dict) and s.get('name') == service for s in services):
                count += 1
        return count

    # --- the silence ---------------------------------------------------------------------------

    def _silence(self, frame, settings, task_vars, check_mode, warnings):
        """Silence the scenario's alerts for this host while it acts, when one of them fires.
        Never blocks the remediation: a failure is a warning."""
        entry = _frame.catalogue_entry(frame['scenario'])
        names = [str(name) for name in entry.get('alerts') or []]
        url = settings.get('url') or ''
        if not names or not url or not _frame.as_bool(settings.get('enabled', True), True):
            return {'silenced': False, 'message': 'not silenced: %s' % (
                'the scenario has no alerts' if not names else 'no Alertmanager URL' if not url else 'disabled')}
        labels = {'alertname': names, 'host': task_vars.get('inventory_hostname')}
        if frame.get('service'):
            labels['service'] = frame['service']
        comment = 'runbook.remediation %s on %s' % (frame['scenario'], task_vars.get('inventory_hostname'))
        client = _silence.SilenceClient(self.alertmanager_client(url, settings, task_vars))
        try:
            firing = [alert for alert in client.alerts(filters=[
                '%s="%s"' % (key, value) for key, value in labels.items() if key != 'alertname'])
                if (alert.get('labels') or {}).get('alertname') in names]
            if not firing:
                return {'silenced': False, 'message': 'not silenced: none of %s fires for %s' % (
                    ', '.join(names), task_vars.get('inventory_hostname'))}
            matchers = _silence.build_matchers(None, labels)
            params = {'silence_id': None, 'comment': comment, 'created_by': 'runbook.remediation',
                      'duration': str(settings.get('duration') or '15m'), 'ends_at': None}
            made = _silence.ensure_present(params, client, matchers, self.now(), check_mode, refetch=False)
        except (_prometheus.PrometheusError, ValueError) as exc:
            warnings.append('could not silence %s: %s' % (', '.join(names), exc))
            return {'silenced': False, 'message': 'warning: could not silence: %s' % exc}
        return {'silenced': True, 'silence_id': made['silence_id'], 'labels': labels, 'comment': comment,
                'ends_at': (made.get('silence') or {}).get('ends_at'),
                'message': '%s %s for %s' % ('would silence' if check_mode else 'silenced', ', '.join(names),
                                             task_vars.get('inventory_hostname'))}
