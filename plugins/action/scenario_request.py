# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of runbook.remediation.scenario_request: check the request first.

Runs before anything templates a request value: the values an alert, a webhook or a
command line gave (service, alert key, run id, incident, the rulebook's event) are read
untemplated and checked for their shape. A bad request is not a failure of this task: it
sets ``runbook_frame.decision=rejected`` so the frame records the rejection as the
scenario's result (nothing admitted, nothing touched).
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.runbook.remediation.plugins.module_utils import _scenario
from ansible_collections.runbook.remediation.plugins.plugin_utils import _frame


class ActionModule(_frame.FrameAction):

    _VALID_ARGS = frozenset(('name', 'role', 'validate_from', 'diagnose_only'))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        name, role = args.get('name'), args.get('role')
        if not isinstance(name, str) or not isinstance(role, str) or not name or not role:
            raise AnsibleActionFail('scenario_request: name and role are required strings')
        try:
            entry = _frame.catalogue_entry(name)
        except (OSError, ValueError) as exc:
            raise AnsibleActionFail('scenario_request: %s' % exc) from exc

        frame = {
            'scenario': name,
            'role': role,
            'validate_from': args.get('validate_from') or '',
            'destructive': bool(entry.get('destructive', False)),
            'decision': None,
            'reason': '',
            'error_kind': None,
            'diagnose_only': False,
            'override': None,
            'check_mode': bool(self._task.check_mode),
        }
        try:
            clean = _scenario.check_request(task_vars)
            self._check_alert_host(clean.get('alert') or {}, task_vars.get('inventory_hostname'))
            self._check_manager(name, entry, clean.get('service'), task_vars.get('runbook_services'))
            frame['diagnose_only'] = _frame.as_bool(args.get('diagnose_only'))
            frame['override'] = self._override(task_vars)
        except _scenario.RequestError as exc:
            frame.update(decision='rejected', reason=str(exc), error_kind='input')
            clean = {}
        frame['request'] = clean
        frame['run_id'] = _frame.run_id(clean, task_vars)
        facts = {_frame.FRAME_FACT: frame, '__scenario_invalid': None,
                 '__scenario_failure': None, 'scenario_validated': ''}
        if frame['diagnose_only']:
            # Set before the role's validate step: a destructive role's confirmation check
            # must know already that this run (e.g. from an alert) only looks.
            facts['%s_diagnose_only' % _frame.role_prefix(role)] = True
        result.update(changed=False, msg=frame['reason'] or 'request accepted', ansible_facts=facts)
        return result

    @staticmethod
    def _check_alert_host(alert, hostname):
        """A rulebook run acts only on the host its alert names: a label that was a group
        or a pattern reaches every host of it, and each refuses."""
        if not alert:
            return
        named = (alert.get('labels') or {}).get('host')
        if named != hostname:
            raise _scenario.RequestError('the alert names host %s, not %s: this host does not act on it'
                                         % (_scenario.echo(named or '(none)'), hostname))

    @staticmethod
    def _check_manager(name, entry, service, services):
        """A scenario acts only on the kinds of service the catalogue says it supports: a
        role written for units and containers must never be handed a Kubernetes Deployment.
        The role's own validation still checks the whole description."""
        supported = entry.get('managers') or []
        if not supported or not isinstance(services, list):
            return
        named = [item for item in services if isinstance(item, dict) and (not service or item.get('name') == service)]
        if len(named) != 1:
            return  # unknown or ambiguous: the role's validation says which
        manager = named[0].get('manager')
        if isinstance(manager, str) and '{' not in manager and manager not in supported:
            raise _scenario.RequestError('%s does not act on %s services (it supports %s)' % (
                name, _scenario.echo(manager), ', '.join(supported)))

    def _override(self, task_vars):
        """Safety settings given as extra vars need runbook_override_safety=REASON."""
        loosened = _scenario.safety_overrides(_frame.extra_var_names(self._loader))
        reason = task_vars.get(_scenario.OVERRIDE_VAR)
        if reason in (None, ''):
            if loosened:
                raise _scenario.RequestError(
                    '%s from the command line loosens the safety envelope: give %s=REASON to do it on purpose '
                    '(the reason is recorded)' % (', '.join(loosened), _scenario.OVERRIDE_VAR))
            return None
        reason = _scenario.check_value(_scenario.OVERRIDE_VAR, reason, _scenario.OVERRIDE_RE, 'a short reason')
        return {'reason': reason, 'vars': loosened}
