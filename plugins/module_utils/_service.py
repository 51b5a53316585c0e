# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A service on its target: state, logs, restart budget and graceful restart.

The hot path of the service_restart role in two module calls (service_state reads,
service_recover acts), because each task costs a round trip to the target. Commands run
as argv lists through the module's run_command: ``systemctl``/``journalctl`` for systemd
units, the ``docker`` CLI for containers and ``docker compose`` for Compose services.

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time

MANAGERS = ('systemd', 'docker', 'compose')
SYSTEMD_PROPERTIES = ('ActiveState', 'SubState', 'Result', 'ExecMainStatus', 'ExecMainStartTimestamp', 'MainPID',
                      'NRestarts', 'LoadState')
# Units and containers that are dead need a start, not a stop first.
DEAD_UNIT_STATES = ('failed', 'inactive')
DEAD_CONTAINER_STATES = ('exited', 'created', 'dead')
EADDRINUSE = re.compile(r'EADDRINUSE|Address already in use')


class ServiceError(Exception):
    """A command about the service failed; ``kind`` is the result's error_kind."""

    def __init__(self, message, kind='remediation'):
        super().__init__(message)
        self.kind = kind


def compose_project(svc):
    return svc.get('project') or os.path.basename(str(svc.get('project_src', '')).rstrip('/'))


def compose_service(svc):
    return svc.get('compose_service') or svc.get('name')


def budget_target(svc):
    """What the restart budget counts: the unit, the container, or project.service."""
    manager = svc.get('manager')
    if manager == 'systemd':
        return svc.get('unit')
    if manager == 'docker':
        return svc.get('container')
    return '%s.%s' % (compose_project(svc), compose_service(svc))


def budget_path(state_dir, svc):
    """The restart history file of one managed thing on the target (the name
    service_restart has always used, so earlier histories still count)."""
    name = re.sub(r'[^A-Za-z0-9_.@-]', '_', '%s@%s' % (svc.get('name'), budget_target(svc)))
    return os.path.join(state_dir, 'restarts-%s.json' % name)


def read_budget(path, window, now=None):
    """Restarts (epoch seconds) inside the window; a missing or unreadable file is none."""
    now = time.time() if now is None else now
    try:
        with open(path, 'rb') as handle:
            history = json.loads(handle.read().decode('utf-8') or '[]')
    except (OSError, ValueError):
        return []
    if not isinstance(history, list):
        return []
    recent = []
    for item in history:
        try:
            stamp = float(item)
        except (TypeError, ValueError):
            continue
        if stamp >= now - float(window):
            recent.append(stamp)
    return recent


def write_budget(path, history):
    """Replace the history atomically (a crash leaves the old or the new one, never half)."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o750)
    fd, tmp = tempfile.mkstemp(prefix='.restarts-', dir=directory)
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(json.dumps([round(stamp, 3) for stamp in history]) + '\n')
        os.chmod(tmp, 0o640)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Commands(object):
    """The service's manager, driven through ``run(argv) -> (rc, stdout, stderr)``."""

    def __init__(self, run, svc, log_lines=50):
        self.run = run
        self.svc = svc
        self.manager = svc.get('manager')
        self.log_lines = int(log_lines)
        self._container = None

    def _checked(self, argv, what):
        rc, out, err = self.run(argv)
        if rc != 0:
            text = ' '.join((err or out or '').split())[:400]
            kind = 'unavailable' if 'Cannot connect to the Docker daemon' in text else 'remediation'
            raise ServiceError('%s failed (%s, rc=%s): %s' % (what, ' '.join(argv), rc, text or 'no output'), kind)
        return out

    # --- reading -------------------------------------------------------------------------

    def container(self):
        """The container's name (Compose: found by its project and service labels)."""
        if self.manager == 'docker':
            return self.svc['container']
        if self._container is None:
            out = self._checked(['docker', 'ps', '-a', '--format', '{{.Names}}',
                                 '--filter', 'label=com.docker.compose.project=%s' % compose_project(self.svc),
                                 '--filter', 'label=com.docker.compose.service=%s' % compose_service(self.svc)],
                                'finding the Compose container')
            names = [line.strip() for line in out.splitlines() if line.strip()]
            if not names:
                raise ServiceError('compose service %s has no container in project %s' % (
                    compose_service(self.svc), compose_project(self.svc)), 'input')
            self._container = sorted(names)[0]
        return self._container

    def state(self):
        """The manager's view, as the evidence shows it."""
        if self.manager == 'systemd':
            out = self._checked(['systemctl', 'show', self.svc['unit'],
                                 '--property=%s' % ','.join(SYSTEMD_PROPERTIES)], 'reading the unit')
            props = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
            if props.get('LoadState') == 'not-found':
                raise ServiceError('unit %s does not exist on this host' % self.svc['unit'], 'input')
            return {
                'unit': self.svc['unit'],
                'active_state': props.get('ActiveState', 'unknown'),
                'sub_state': props.get('SubState', 'unknown'),
                'result': props.get('Result', 'unknown'),
                'exit_status': props.get('ExecMainStatus', ''),
                'started_at': props.get('ExecMainStartTimestamp', ''),
                'main_pid': props.get('MainPID', '0'),
                'restarts': props.get('NRestarts', ''),
                'oom_killed': props.get('Result') == 'oom-kill',
                'dead': props.get('ActiveState') in DEAD_UNIT_STATES,
            }
        name = self.container()
        rc, out, err = self.run(['docker', 'inspect', '--type', 'container', name])
        if rc != 0:
            if 'No such' in (err or '') or 'no such' in (err or ''):
                raise ServiceError('container %s does not exist: a restart cannot bring it back (recreate it from '
                                   'its definition)' % name, 'input')
            self._checked(['docker', 'inspect', '--type', 'container', name], 'inspecting the container')
        info = (json.loads(out) or [{}])[0]
        state = info.get('State') or {}
        return {
            'container': name,
            'container_id': (info.get('Id') or '')[:12],
            'status': state.get('Status', 'unknown'),
            'exit_code': state.get('ExitCode'),
            'oom_killed': bool(state.get('OOMKilled')),
            'started_at': state.get('StartedAt', ''),
            'finished_at': state.get('FinishedAt', ''),
            'restart_count': info.get('RestartCount', 0),
            'dead': state.get('Status') in DEAD_CONTAINER_STATES,
        }

    def logs(self):
        """The last log lines (journal or container output, stderr included)."""
        if self.manager == 'systemd':
            rc, out, _err = self.run(['journalctl', '--unit=%s' % self.svc['unit'], '--lines=%d' % self.log_lines,
                                      '--no-pager', '--output=short-iso'])
            return out.splitlines()[-self.log_lines:] if rc == 0 else []
        rc, out, err = self.run(['docker', 'logs', '--tail', str(self.log_lines), self.container()])
        return (out.splitlines() + err.splitlines())[-self.log_lines:] if rc == 0 else []

    def port_holder(self, port):
        rc, out, _err = self.run(['ss', '-H', '-l', '-t', '-n', '-p', 'sport = :%d' % int(port)])
        return out.splitlines() if rc == 0 else []

    # --- acting ----------------------------------------------------------------------------

    def restart(self, dead, stop_timeout, stop_wait, sleep=time.sleep):
        """Graceful restart: stop (bounded), wait, start. A dead unit or container is only
        started: there is nothing to stop, and the stop would cost time to recover."""
        if not dead:
            self._checked(self._stop_argv(stop_timeout), 'stopping %s' % self.svc.get('name'))
            if stop_wait > 0:
                sleep(stop_wait)
        self._checked(self._start_argv(), 'starting %s' % self.svc.get('name'))

    def _compose(self, *args):
        return ['docker', 'compose', '--project-directory', str(self.svc['project_src']),
                '--project-name', compose_project(self.svc), *args]

    def _stop_argv(self, stop_timeout):
        if self.manager == 'systemd':
            return ['systemctl', 'stop', self.svc['unit']]
        if self.manager == 'docker':
            return ['docker', 'stop', '--time', str(int(stop_timeout)), self.svc['container']]
        return self._compose('stop', '--timeout', str(int(stop_timeout)), compose_service(self.svc))

    def _start_argv(self):
        if self.manager == 'systemd':
            return ['systemctl', 'start', self.svc['unit']]
        if self.manager == 'docker':
            return ['docker', 'start', self.svc['container']]
        # `up` starts the existing container (or recreates it when its definition changed,
        # e.g. a limit raised in the override file), as docker_compose_v2 state=present does.
        return self._compose('up', '--detach', '--no-deps', '--no-build', '--pull', 'never', compose_service(self.svc))


# --- what both modules share -------------------------------------------------------------

def argument_spec():
    """The options of the runbook.remediation.service doc fragment."""
    return dict(
        service=dict(type='dict', required=True),
        dependencies=dict(type='list', elements='dict', default=[]),
        state_dir=dict(type='path', default='/var/lib/runbook-remediation'),
        budget_window=dict(type='float', default=3600),
        health_timeout=dict(type='float', default=3),
        log_lines=dict(type='int', default=50),
    )


_REQUIRED = {'systemd': ('unit',), 'docker': ('container',), 'compose': ('project_src',)}


def check_service(svc):
    """The description has what these modules need; ServiceError(kind=input) if not."""
    name = svc.get('name') or '(unnamed)'
    if svc.get('manager') not in MANAGERS:
        raise ServiceError('service %s: manager must be one of %s, not %r' % (
            name, ', '.join(MANAGERS), svc.get('manager')), 'input')
    for key in _REQUIRED[svc['manager']]:
        if not svc.get(key):
            raise ServiceError('service %s (manager %s) needs %s' % (name, svc['manager'], key), 'input')
    url = svc.get('health_url')
    if not isinstance(url, str) or not url:
        raise ServiceError('service %s: health_url is missing' % name, 'input')
    # A data store's health_url may be tcp://, redis:// or postgresql:// (probed over a socket).
    from ansible_collections.runbook.remediation.plugins.module_utils._health import probe_url_problem, redact_url

    problem = probe_url_problem(url)
    if problem:
        raise ServiceError('service %s: cannot probe its health_url %s: %s' % (name, redact_url(url), problem),
                           'input')
    return svc


class Prober(object):
    """Health probes of service descriptions (health_url, health_jmespath)."""

    def __init__(self, timeout):
        from ansible_collections.runbook.remediation.plugins.module_utils import _health
        from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpClient

        self._health = _health
        self.client = HttpClient(timeout=timeout)
        self._compiled = {}

    def endpoint(self, svc):
        """One probe: the endpoint dict of the health_check module."""
        expression = svc.get('health_jmespath')
        if expression and expression not in self._compiled:
            try:
                self._compiled[expression] = self._health.compile_expression(expression)
            except ValueError as exc:
                raise ServiceError('service %s: invalid health_jmespath %r: %s' % (svc.get('name'), expression, exc),
                                   'input') from exc
        return self._health.probe(self.client, svc['health_url'], expression=self._compiled.get(expression))

    def healthy(self, svc):
        return self.endpoint(svc)['healthy']


def why(endpoint):
    """Why a probe failed, in a few words."""
    if endpoint.get('error') and not endpoint.get('failing_components'):
        return endpoint['error']
    if endpoint.get('failing_components'):
        return 'failing components: %s' % ', '.join(str(c.get('name')) for c in endpoint['failing_components'])
    return 'HTTP %s' % endpoint.get('status')


def state_findings(svc, state):
    """The manager's state as findings."""
    if svc.get('manager') == 'systemd':
        found = ['unit %s is %s (%s, result %s)' % (
            state['unit'], state['active_state'], state['sub_state'], state['result'])]
        if state['oom_killed']:
            found.append('the kernel OOM killer stopped it (Result=oom-kill)')
        return found
    found = ['container %s is %s (exit code %s)' % (state['container'], state['status'], state['exit_code'])]
    if state['oom_killed']:
        found.append('the kernel OOM killer stopped it (State.OOMKilled)')
    return found


def read_state(run, svc, deps, probe, state_dir, budget_window, log_lines, evidence='auto'):
    """Health, restart budget and, when unhealthy (``evidence='auto'``) or always, the
    evidence: the manager's state, the last log lines, the port's holder on EADDRINUSE,
    the dependencies' health. Reads only. The dict service_state returns."""
    health = probe.endpoint(svc)
    budget_file = budget_path(state_dir, svc)
    result = dict(changed=False, healthy=health['healthy'], budget_file=budget_file,
                  restarts_in_window=len(read_budget(budget_file, budget_window)), findings=[],
                  health={k: v for k, v in health.items() if k != 'body'})
    if not health['healthy']:
        result['findings'].append('health check failed: %s' % why(health))
    if evidence == 'never' or (evidence == 'auto' and health['healthy']):
        return result
    commands = Commands(run, svc, log_lines)
    state = commands.state()
    logs = commands.logs()
    result.update(state=state, log_tail=logs)
    result['findings'].extend(state_findings(svc, state))
    if svc.get('port') and EADDRINUSE.search('\n'.join(logs)):
        holder = commands.port_holder(svc['port'])
        result['port_holder'] = holder
        result['findings'].append('port %s is already in use (EADDRINUSE): %s' % (
            svc['port'], '; '.join(holder) or 'holder not visible from here'))
    result['dependencies'] = []
    for dep in deps:
        dep_health = probe.endpoint(dep)
        result['dependencies'].append({'name': dep['name'], 'healthy': dep_health['healthy'],
                                       'error': dep_health['error']})
        if not dep_health['healthy']:
            result['findings'].append('dependency %s is unhealthy: %s' % (dep['name'], why(dep_health)))
    return result
