# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A service on its target: state, logs, restart budget and graceful restart.

The hot path of the service_restart role in two module calls (service_state reads,
service_recover acts), because each task costs a round trip to the target. Commands run
as argv lists through the module's run_command: ``systemctl``/``journalctl`` for systemd
units, the ``docker`` CLI for containers, ``docker compose`` for Compose services and
``kubectl`` for Kubernetes Deployments (the target is then the machine holding the
kubeconfig, usually the controller).

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time

MANAGERS = ('systemd', 'docker', 'compose', 'kubernetes')
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
    """The Compose project's name: ``project``, else what Compose makes of the directory's
    name (``project_src``): lowercased, only ``a-z0-9_-`` kept, no leading ``_`` or ``-``.
    ``/srv/Runbook.Office`` is the project ``runbookoffice``, whose containers carry that label."""
    if svc.get('project'):
        return svc['project']
    name = os.path.basename(str(svc.get('project_src') or '').rstrip('/')).lower()
    return re.sub(r'[^a-z0-9_-]', '', name).lstrip('_-')


def compose_service(svc):
    return svc.get('compose_service') or svc.get('name')


def budget_target(svc):
    """What the restart budget counts: the unit, the container, or project.service."""
    manager = svc.get('manager')
    if manager == 'systemd':
        return svc.get('unit')
    if manager == 'docker':
        return svc.get('container')
    if manager == 'kubernetes':
        return '%s.%s.%s' % (svc.get('context') or 'default', svc.get('namespace') or 'default', svc.get('deployment'))
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
        self._pods_before = None  # Kubernetes: the pods there were when the first restart began

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

    def kubectl(self, *args):
        """kubectl for the service's cluster, context and namespace."""
        argv = [self.svc.get('kubectl') or 'kubectl']
        if self.svc.get('kubeconfig'):
            argv += ['--kubeconfig', str(self.svc['kubeconfig'])]
        if self.svc.get('context'):
            argv += ['--context', str(self.svc['context'])]
        return [*argv, '--namespace', str(self.svc.get('namespace') or 'default'), '--request-timeout', '10s',
                *args]

    def _kubectl_json(self, what, *args):
        rc, out, err = self.run(self.kubectl(*args, '--output', 'json'))
        if rc != 0:
            text = ' '.join((err or out or '').split())[:400]
            # An unknown Deployment, namespace or context is the description's fault: bad input.
            if re.search(r'NotFound|not found|context "[^"]*" does not exist', text):
                raise ServiceError('%s: %s' % (what, text), 'input')
            kind = 'unavailable' if re.search(r'connection refused|was refused|Unable to connect|i/o timeout|'
                                              r'no such host|certificate', text) else 'remediation'
            raise ServiceError('%s failed (rc=%s): %s' % (what, rc, text or 'no output'), kind)
        return json.loads(out or '{}')

    def _pods(self, deployment):
        labels = ((deployment.get('spec') or {}).get('selector') or {}).get('matchLabels') or {}
        if not labels:
            raise ServiceError('deployment %s has no matchLabels selector' % self.svc['deployment'], 'input')
        selector = ','.join('%s=%s' % item for item in sorted(labels.items()))
        return selector, self._kubectl_json('listing the pods', 'get', 'pods', '--selector', selector).get('items', [])

    def _kubernetes_state(self):
        deployment = self._kubectl_json('deployment %s' % self.svc['deployment'], 'get', 'deployment',
                                        self.svc['deployment'])
        selector, items = self._pods(deployment)
        pods, oom = [], False
        for pod in items:
            statuses = (pod.get('status') or {}).get('containerStatuses') or []
            waiting = [((c.get('state') or {}).get('waiting') or {}).get('reason') for c in statuses]
            last = [(((c.get('lastState') or {}).get('terminated')) or {}).get('reason') for c in statuses]
            oom = oom or 'OOMKilled' in last
            pods.append({
                'name': (pod.get('metadata') or {}).get('name'),
                'phase': (pod.get('status') or {}).get('phase'),
                'ready': bool(statuses) and all(c.get('ready') for c in statuses),
                'restarts': sum(int(c.get('restartCount') or 0) for c in statuses),
                'waiting': [reason for reason in waiting if reason],
                'last_terminated': [reason for reason in last if reason],
                'deleting': bool((pod.get('metadata') or {}).get('deletionTimestamp')),
            })
        status, spec = deployment.get('status') or {}, deployment.get('spec') or {}
        ready = int(status.get('readyReplicas') or 0)
        return {
            'deployment': self.svc['deployment'],
            'namespace': self.svc.get('namespace') or 'default',
            'context': self.svc.get('context') or '',
            'selector': selector,
            'replicas': int(spec.get('replicas') if spec.get('replicas') is not None else 1),
            'ready_replicas': ready,
            'available_replicas': int(status.get('availableReplicas') or 0),
            'updated_replicas': int(status.get('updatedReplicas') or 0),
            'generation': (deployment.get('metadata') or {}).get('generation'),
            'conditions': [{'type': c.get('type'), 'status': c.get('status'), 'reason': c.get('reason')}
                           for c in status.get('conditions') or []],
            'pods': pods,
            'oom_killed': oom,
            'dead': ready == 0,
        }

    def state(self):
        """The manager's view, as the evidence shows it."""
        if self.manager == 'kubernetes':
            return self._kubernetes_state()
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
        if self.manager == 'kubernetes':
            # Every pod of the Deployment, each line prefixed with its pod; a crash-looping
            # container's previous run says why it stopped.
            selector = self._pods(self._kubectl_json('deployment %s' % self.svc['deployment'], 'get', 'deployment',
                                                     self.svc['deployment']))[0]
            lines = []
            for previous in ([], ['--previous']):
                rc, out, _err = self.run(self.kubectl('logs', '--selector', selector, '--tail', str(self.log_lines),
                                                      '--prefix', '--all-containers', *previous))
                lines += out.splitlines() if rc == 0 else []
            return lines[-self.log_lines:]
        rc, out, err = self.run(['docker', 'logs', '--tail', str(self.log_lines), self.container()])
        return (out.splitlines() + err.splitlines())[-self.log_lines:] if rc == 0 else []

    def port_holder(self, port):
        rc, out, _err = self.run(['ss', '-H', '-l', '-t', '-n', '-p', 'sport = :%d' % int(port)])
        return out.splitlines() if rc == 0 else []

    # --- acting ----------------------------------------------------------------------------

    def restart(self, dead, stop_timeout, stop_wait, sleep=time.sleep):
        """Graceful restart: stop (bounded), wait, start. A dead unit or container is only
        started: there is nothing to stop, and the stop would cost time to recover."""
        if self.manager == 'kubernetes':
            self._restart_pods(stop_timeout)
            return
        if not dead:
            self._checked(self._stop_argv(stop_timeout), 'stopping %s' % self.svc.get('name'))
            if stop_wait > 0:
                sleep(stop_wait)
        self._checked(self._start_argv(), 'starting %s' % self.svc.get('name'))

    def _restart_pods(self, stop_timeout):
        """The Deployment's pods that are not Ready are deleted (graceful, within
        stop_timeout): its ReplicaSet starts new ones at once, without the kubelet's growing
        back-off. With every pod Ready (a forced restart), a rolling restart instead, so the
        Deployment's own strategy keeps it serving.

        A later attempt spares the pods that replaced deleted ones while they are only
        starting (no restart, no failure reason): deleting a pod that is still being created
        would only restart the wait for it."""
        state = self._kubernetes_state()
        first = self._pods_before is None
        if first:
            self._pods_before = {pod['name'] for pod in state['pods']}

        def failing(pod):
            if pod['ready'] or pod['deleting']:
                return False
            return (pod['name'] in self._pods_before or pod['restarts'] > 0
                    or any(reason in FAILED_WAITING for reason in pod['waiting']))

        doomed = [pod['name'] for pod in state['pods'] if failing(pod)]
        if doomed:
            self._checked(self.kubectl('delete', 'pod', '--wait=false', '--grace-period', str(int(stop_timeout)),
                                       *doomed), 'deleting the pods that are not ready')
        elif first:
            self._checked(self.kubectl('rollout', 'restart', 'deployment/%s' % self.svc['deployment']),
                          'restarting deployment %s' % self.svc['deployment'])

    def settled(self):
        """Kubernetes: the Deployment has its replicas updated and Ready, and each of its
        pods that is not terminating is Ready (a health URL may still be answered by a
        terminating pod, or by one of several)."""
        state = self._kubernetes_state()
        live = [pod for pod in state['pods'] if not pod['deleting']]
        return (state['ready_replicas'] >= state['replicas'] and state['updated_replicas'] >= state['replicas']
                and all(pod['ready'] for pod in live))

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


# Waiting reasons of a container that failed (as opposed to one still being created).
FAILED_WAITING = ('CrashLoopBackOff', 'Error', 'ErrImagePull', 'ImagePullBackOff', 'InvalidImageName',
                  'CreateContainerError', 'CreateContainerConfigError', 'RunContainerError')

_REQUIRED = {'systemd': ('unit',), 'docker': ('container',), 'compose': ('project_src',), 'kubernetes': ('deployment',)}


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
    if svc.get('manager') == 'kubernetes':
        found = ['deployment %s: %d of %d replicas ready' % (state['deployment'], state['ready_replicas'],
                                                             state['replicas'])]
        for pod in state['pods']:
            if not pod['ready']:
                reasons = ''.join(', ' + reason for reason in pod['waiting'] + pod['last_terminated'])
                found.append('pod %s not ready (%s%s, %d restarts)' % (pod['name'], pod['phase'], reasons,
                                                                       pod['restarts']))
        if state['oom_killed']:
            found.append('the kernel OOM killer stopped a container (lastState OOMKilled)')
        return found
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


def port_finding(port, holder):
    return 'port %s is already in use (EADDRINUSE): %s' % (port, '; '.join(holder) or 'holder not visible from here')


def holder_names(holder):
    """'python3 (pid 42)' for each process ss names in its users:(...) (none: not visible)."""
    found = []
    for line in holder:
        for name, pid in re.findall(r'\("([^"]*)",pid=(\d+)', line):
            found.append('%s (pid %s)' % (name, pid))
    return ', '.join(found)


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
        result['port_holder'] = commands.port_holder(svc['port'])
        result['findings'].append(port_finding(svc['port'], result['port_holder']))
    result['dependencies'] = []
    for dep in deps:
        dep_health = probe.endpoint(dep)
        result['dependencies'].append({'name': dep['name'], 'healthy': dep_health['healthy'],
                                       'error': dep_health['error']})
        if not dep_health['healthy']:
            result['findings'].append('dependency %s is unhealthy: %s' % (dep['name'], why(dep_health)))
    return result
