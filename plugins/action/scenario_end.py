# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of runbook.remediation.scenario_end: one result, in process.

Turns the remediation role's result (or its failure, or the frame's rejection) into the
scenario contract's ``runbook_result``; expires the silence scenario_begin made; when the
role remediated and ``verify_promql`` is set, waits until the PromQL condition holds;
releases the envelope's lease with the outcome; publishes the result with set_stats; and
tells a human through a Slack-compatible webhook when the run escalates (or opens a
breaker). Failures of the silence expiry or the webhook are warnings, never the result.
"""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleActionFail

from ansible_collections.runbook.remediation.plugins.module_utils import (
    _envelope,
    _prometheus,
    _scenario,
    _silence,
    _statedb,
)
from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpClient, HttpError, is_http_url
from ansible_collections.runbook.remediation.plugins.plugin_utils import _frame


class ActionModule(_frame.FrameAction):

    _VALID_ARGS = frozenset(('result', 'failure', 'silence', 'verify_promql', 'verify_promql_retries',
                             'verify_promql_delay', 'prometheus_url', 'webhook_url', 'promql_timeout', 'frame'))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        # A playbook that composes safety_envelope and alert_silence itself passes the frame.
        frame = dict(args['frame']) if isinstance(args.get('frame'), dict) else self.frame(task_vars)
        if not frame.get('scenario'):
            raise AnsibleActionFail('scenario_end: run scenario_request first, or pass frame (no runbook_frame fact)')
        host = task_vars.get('inventory_hostname')
        check_mode = bool(self._task.check_mode)
        warnings = list(frame.get('warnings') or [])
        decision = frame.get('decision')

        if decision == 'rejected':
            outcome = _scenario.rejected_result(frame.get('reason'), frame.get('error_kind') or 'input')
        elif decision == 'refused':
            outcome = _scenario.rejected_result(frame.get('reason'), 'unavailable')
        elif isinstance(args.get('failure'), dict) and args['failure']:
            failure = args['failure']
            outcome = _scenario.failure_result(args.get('result') or {}, failure.get('msg') or 'a task failed',
                                               failure.get('task'), failure.get('error_kind') or 'remediation')
        else:
            outcome = _scenario.apply_decision(dict(args.get('result') or {}), decision, frame.get('reason'))

        silence = frame.get('silence') or {}
        if silence.get('silenced') and not check_mode:
            silence = dict(silence, **self._expire(silence, args.get('silence') or {}, task_vars, warnings))
        if outcome.get('outcome') == 'remediated' and args.get('verify_promql') and not check_mode:
            outcome = self._verify_promql(outcome, args)
        if frame.get('override'):
            override = frame['override']
            outcome['findings'] = [*(outcome.get('findings') or []), 'safety overridden (%s): %s' % (
                ', '.join(override['vars']) or 'envelope off', override['reason'])]

        breaker = {}
        if frame.get('admitted'):
            breaker = self._release(frame, _scenario.release_outcome(outcome), warnings)
        final = _scenario.complete_result(outcome, frame['scenario'], host, check_mode)
        final['decision'] = decision
        if silence.get('message'):
            final['silence'] = silence['message']
        if breaker.get('breaker_open'):
            final['breaker_open'] = True

        notified = self._notify(final, frame, breaker, args.get('webhook_url'), check_mode, warnings)
        for warning in warnings[len(frame.get('warnings') or []):]:
            self._display.warning(warning)
        result.update(
            changed=False, outcome=final['outcome'], msg=final['message'], notified=notified,
            # scenario_validated ends with the frame: a later include of the role validates again.
            ansible_facts={_frame.RESULT_FACT: final, 'scenario_validated': ''},
            # set_stats for AWX / Tower: the results of every host, aggregated.
            ansible_stats={'data': {'runbook_results': {host: final}}, 'per_host': False, 'aggregate': True})
        return result

    # --- silence ------------------------------------------------------------------------------

    def _expire(self, silence, settings, task_vars, warnings):
        url = settings.get('url') or ''
        client = _silence.SilenceClient(self.alertmanager_client(url, settings, task_vars))
        try:
            # The silence this run made, by its id: one DELETE (expired already is fine).
            gone = client.expire(silence['silence_id']) if silence.get('silence_id') else False
        except (_prometheus.PrometheusError, ValueError) as exc:
            warnings.append('could not expire the silence (it ends by itself at %s): %s'
                            % (silence.get('ends_at'), exc))
            return {'message': silence.get('message', '') + '; warning: not expired: %s' % exc}
        done = '; expired %s' % silence['silence_id'] if gone else '; no live silence to expire'
        return {'message': silence.get('message', '') + done}

    # --- PromQL verification ---------------------------------------------------------------------

    def _verify_promql(self, outcome, args):
        query = str(args['verify_promql'])
        retries = max(0, int(args.get('verify_promql_retries') or 15))
        delay = max(0.0, float(args.get('verify_promql_delay') or 1))
        client = _prometheus.PrometheusClient(HttpClient(base_url=args.get('prometheus_url'),
                                                         timeout=float(args.get('promql_timeout') or 10)))
        samples, error = 0, None
        for attempt in range(retries + 1):
            try:
                payload = client.query(query)
                samples = len(_prometheus.normalize_result(payload.get('data') or {})[1])
                error = None
            except (_prometheus.PrometheusError, ValueError) as exc:
                samples, error = 0, str(exc)
            if samples:
                break
            if attempt < retries:
                time.sleep(delay)
        verification = dict(outcome.get('verification') or {}, promql=query, promql_samples=samples)
        outcome = dict(outcome, verification=verification)
        if not samples:
            message = 'failed: %s answers its health check but the PromQL condition never held: %s%s' % (
                outcome.get('service', 'the service'), query, ' (%s)' % error if error else '')
            outcome.update(outcome='failed', message=message)
        return outcome

    # --- the envelope ----------------------------------------------------------------------------

    def _release(self, frame, outcome, warnings):
        try:
            dsn = _statedb.env_dsn()
            envelope = _envelope.Envelope(None if dsn else (frame.get('envelope_path') or _envelope.default_path()),
                                          dsn=dsn)
            try:
                kwargs = {key: frame[key] for key in ('breaker_threshold', 'fleet_breaker_threshold') if frame.get(key)}
                return envelope.release(frame['target'], frame['scenario'], frame['run_id'], outcome, **kwargs)
            finally:
                envelope.close()
        except (_envelope.EnvelopeError, OSError) as exc:
            warnings.append('could not release the safety envelope lease (it expires by itself): %s' % exc)
            return {}

    # --- telling a human ----------------------------------------------------------------------------

    def _notify(self, final, frame, breaker, url, check_mode, warnings):
        """Only the run that escalates says so (the budget just ran out, the breaker just
        opened), not every repeat of the alert while the target is on hold."""
        url = url or os.environ.get('RUNBOOK_WEBHOOK_URL', '')
        escalates = final['outcome'] == 'escalate' and frame.get('decision') in ('act', 'escalate')
        opened = final['outcome'] == 'failed' and breaker.get('breaker_open')
        # Security scenarios (catalogue category: security) tell the security channel too.
        security = os.environ.get('RUNBOOK_SECURITY_WEBHOOK_URL', '') if self._security(frame) else ''
        if check_mode or not (url or security) or not (escalates or opened):
            return False
        text = 'runbook.remediation: %s on %s needs a human (%s%s): %s' % (
            final['scenario'], final['host'], final['outcome'], ', circuit breaker open' if opened else '',
            final['message'])
        told = False
        for what, target in (('escalation webhook', url), ('security webhook', security)):
            if target:
                told = self._post(what, target, text, warnings) or told
        return told

    @staticmethod
    def _security(frame):
        try:
            return _frame.catalogue_entry(frame['scenario']).get('category') == 'security'
        except (ValueError, OSError, KeyError):
            return False

    @staticmethod
    def _post(what, url, text, warnings):
        if not is_http_url(url):
            warnings.append('the %s URL is not an http(s) URL: nobody was told there' % what)
            return False
        try:
            HttpClient(timeout=10).request('POST', url, json_body={'text': text}, expected_status=(200, 201, 202, 204))
        except HttpError as exc:
            # The URL carries the webhook's token: say what failed, never where.
            warnings.append('the %s failed (%s): nobody was told there' % (what, type(exc).__name__))
            return False
        return True
