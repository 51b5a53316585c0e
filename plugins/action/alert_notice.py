# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of runbook.remediation.alert_notice: an alert no scenario will handle.

The rulebook's catch-all rules run it for an alert whose name maps to no scenario, and
for an alert the runbook.remediation.alerts filter refused (no host, a host pattern, a
template in a label). It records one notification in the incident timeline and posts it
to the webhook, once per alert occurrence (fingerprint@startsAt): Alertmanager repeats
firing alerts, people should hear of each one once.
"""

from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleActionFail

from ansible_collections.runbook.remediation.plugins.module_utils import _scenario, _statedb, _timeline
from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpClient, HttpError, is_http_url
from ansible_collections.runbook.remediation.plugins.plugin_utils import _frame

KINDS = ('no-scenario', 'rejected')


class ActionModule(_frame.FrameAction):

    _VALID_ARGS = frozenset(('kind', 'webhook_url'))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        kind = self._task.args.get('kind')
        if kind not in KINDS:
            raise AnsibleActionFail('alert_notice: kind must be one of %s' % ', '.join(KINDS))
        event = ((task_vars.get('ansible_eda') or {}).get('event') or {}) if isinstance(
            task_vars.get('ansible_eda'), dict) else {}
        try:
            alert = _scenario.check_eda_event({'event': {k: event.get(k) for k in
                                                         ('labels', 'status', 'fingerprint', 'startsAt')}})
            # The filter wrote the reason (our words, bad values shown only as their length).
            rejected = event.get('runbook_rejected')
            reason = ' '.join(str(rejected).split())[:300] if rejected and not _scenario.has_template(rejected) \
                else ('(a reason with a template in it, not shown)' if rejected else '')
        except _scenario.RequestError as exc:
            # The filter let something through that the frame's rules refuse: say so, show nothing of it.
            alert, reason = {'labels': {}}, str(exc)
        labels = alert.get('labels') or {}
        name, host = labels.get('alertname') or '(unnamed alert)', labels.get('host') or '(no host)'
        if kind == 'rejected':
            message = 'alert %s on %s refused, no scenario run: %s' % (name, host, reason or 'bad alert')
        else:
            message = 'no scenario for alert %s on %s (%s): a human must look' % (
                name, host, labels.get('severity') or 'no severity')
        key = alert.get('key') or hashlib.sha256(message.encode('utf-8')).hexdigest()[:16]
        if self._task.check_mode:
            result.update(changed=False, msg='would record: ' + message)
            return result

        recorded, notified, warnings = self._record(kind, key, message, labels)
        if recorded:
            notified = self._post(message, self._task.args.get('webhook_url'), warnings)
        for warning in warnings:
            self._display.warning(warning)
        result.update(changed=recorded, msg=message if recorded else 'already recorded: ' + message,
                      notified=notified, key=key)
        return result

    def _record(self, kind, key, message, labels):
        """One notification per alert occurrence; False when it was recorded already."""
        warnings = []
        try:
            store = _timeline.TimelineStore(dsn=_statedb.env_dsn())
            try:
                for past in store.events(kind='notification'):
                    if (past.get('data') or {}).get('alert_key') == key:
                        return False, False, warnings
                store.add_event('notification', host=labels.get('host'), message=message,
                                data={'alert_key': key, 'notice': kind, 'alert': labels.get('alertname'),
                                      'labels': labels})
            finally:
                store.close()
        except (_timeline.TimelineError, OSError) as exc:
            warnings.append('the timeline could not record the alert (%s); it is announced all the same' % exc)
        return True, False, warnings

    @staticmethod
    def _post(message, url, warnings):
        url = url or os.environ.get('RUNBOOK_WEBHOOK_URL', '')
        if not url:
            return False
        if not is_http_url(url):
            warnings.append('the webhook URL is not an http(s) URL: nobody was told')
            return False
        try:
            HttpClient(timeout=10).request('POST', url, json_body={'text': 'runbook.remediation: ' + message},
                                           expected_status=(200, 201, 202, 204))
        except HttpError as exc:
            warnings.append('the webhook failed (%s): nobody was told' % type(exc).__name__)
            return False
        return True
