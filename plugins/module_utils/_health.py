# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Health probes: the evaluation logic of the health_check module (pure, easy to unit
test) and the probe itself, which does its I/O through the HTTP client it is given.
Shared by health_check, service_state and service_recover.

Besides http(s), a probe URL may name a data store that has no HTTP health endpoint:
``tcp://HOST:PORT`` (the port accepts a connection), ``redis://HOST[:PORT]`` (PING is
answered, as ``redis-cli ping``) and ``postgresql://HOST[:PORT]`` (the server accepts
connections, as ``pg_isready``). These URLs never carry credentials: they are echoed in
results.

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import socket
import struct
import time
import traceback
from urllib.parse import urlsplit

from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpError


# Probes of data stores over a plain socket, and their default ports (tcp has none).
SOCKET_SCHEMES = {'tcp': None, 'redis': 6379, 'postgresql': 5432}
PROBE_SCHEMES = ('http', 'https', *SOCKET_SCHEMES)
# SQLSTATE 57P03, cannot_connect_now: starting up, shutting down or in recovery.
_PG_CANNOT_CONNECT_NOW = '57P03'

JMESPATH_IMPORT_ERROR = None
try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

    class JMESPathError(Exception):
        """Placeholder so that ``except JMESPathError`` stays valid without jmespath."""
else:
    HAS_JMESPATH = True

DEFAULT_HEALTHY_STATUSES = ('healthy',)

# Results of StabilityWindow.record()
CONTINUE = 'continue'
DONE = 'done'
EXHAUSTED = 'exhausted'


def status_matches(status, expected):
    """True when the HTTP ``status`` is one of the ``expected`` codes."""
    if status is None:
        return False
    try:
        return int(status) in {int(code) for code in expected}
    except (TypeError, ValueError):
        return False


def compile_expression(expression):
    """Compile a JMESPath expression; ValueError with the parser's text when it is invalid."""
    if not HAS_JMESPATH:
        raise RuntimeError('the jmespath Python library is required')
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(' '.join(str(exc).split())) from exc


def is_truthy(value):
    """Truthiness of an expression result: false, null, 0 and empty string/list/object are false."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (str, list, dict, tuple)):
        return len(value) > 0
    return True


def evaluate_expression(compiled, data):
    """Evaluate a compiled JMESPath expression over ``data``: (truthy, value).

    A runtime error in the expression (a type error in a function call, say) is
    reported as a ValueError with JMESPath's message.
    """
    try:
        value = compiled.search(data)
    except JMESPathError as exc:
        raise ValueError(' '.join(str(exc).split())) from exc
    return is_truthy(value), value


def resolve_path(data, path):
    """Follow a dot-separated ``path`` (``components``, ``details.checks``, ``checks.0``).

    Integer parts index lists. Returns None when any part is missing. An empty
    path returns ``data`` itself.
    """
    current = data
    for part in [p for p in (path or '').split('.') if p]:
        if isinstance(current, dict):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return None
        else:
            return None
    return current


def _component_status(value):
    """The status of one component entry: a dict with ``status``, or a bare string."""
    if isinstance(value, dict):
        status = value.get('status')
    else:
        status = value
    if status is None or isinstance(status, (dict, list)):
        return None
    return str(status)


def failing_components(data, path='components', healthy_statuses=DEFAULT_HEALTHY_STATUSES):
    """Components under ``path`` whose status is not one of ``healthy_statuses``.

    Understands a list of objects (``[{"name": "db", "status": "down"}]``) and a
    mapping of name to object or to a status string (``{"db": {"status": "down"}}``).
    Status comparison ignores case. A component without a status counts as failing.
    Returns a list of ``{"name": ..., "status": ...}`` in document order.
    """
    healthy = {str(s).lower() for s in healthy_statuses}
    components = resolve_path(data, path)
    entries = []
    if isinstance(components, dict):
        entries = list(components.items())
    elif isinstance(components, list):
        for index, item in enumerate(components):
            name = None
            if isinstance(item, dict):
                name = item.get('name', item.get('id'))
            entries.append((name if name is not None else '%s[%d]' % (path or 'components', index), item))
    failing = []
    for name, value in entries:
        status = _component_status(value)
        if status is None or status.lower() not in healthy:
            failing.append({'name': str(name), 'status': status})
    return failing


def evaluate_response(status, body, expected_status, expression=None,
                      components_path='components', healthy_statuses=DEFAULT_HEALTHY_STATUSES):
    """Judge one HTTP response.

    ``body`` is the parsed JSON body or None. ``expression`` is a compiled JMESPath
    expression or None. Returns a dict with ``healthy`` (bool), ``error`` (why it is
    unhealthy, or None) and ``failing_components`` (always reported, never decisive
    on its own: use an expression to make components count).
    """
    failing = failing_components(body, components_path, healthy_statuses) if body is not None else []
    result = {'healthy': True, 'error': None, 'failing_components': failing}
    if not status_matches(status, expected_status):
        result['healthy'] = False
        result['error'] = 'HTTP status %s, expected %s' % (
            status, ' or '.join(str(code) for code in expected_status))
    elif expression is not None:
        if body is None:
            result['healthy'] = False
            result['error'] = 'response body is not JSON, so the jmespath expression cannot be evaluated'
        else:
            try:
                truthy, value = evaluate_expression(expression, body)
            except ValueError as exc:
                result['healthy'] = False
                result['error'] = 'jmespath expression failed: %s' % exc
            else:
                if not truthy:
                    result['healthy'] = False
                    result['error'] = 'jmespath expression %r is %s' % (
                        getattr(expression, 'expression', ''), _short_json(value))
    if not result['healthy'] and failing:
        result['error'] += '; failing components: %s' % format_components(failing)
    return result


def _short_json(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def format_components(components):
    """``db (down), cache (degraded)``"""
    return ', '.join('%s (%s)' % (c['name'], c['status'] if c['status'] is not None else 'no status')
                     for c in components)


def matches_expectation(healthy, expect):
    """Whether one endpoint's health satisfies ``expect`` (healthy, unhealthy or any)."""
    if expect == 'any':
        return True
    return healthy if expect == 'healthy' else not healthy


class StabilityWindow:
    """Counts consecutive good probe rounds.

    ``required``: consecutive good rounds needed (``stable_probes``).
    ``max_failures``: bad rounds tolerated before giving up (``retries``).
    A bad round resets the streak. record() returns DONE, CONTINUE or EXHAUSTED.
    """

    def __init__(self, required=1, max_failures=0):
        if required < 1:
            raise ValueError('required must be at least 1')
        if max_failures < 0:
            raise ValueError('max_failures must not be negative')
        self.required = required
        self.max_failures = max_failures
        self.streak = 0
        self.failures = 0
        self.rounds = 0

    def record(self, ok):
        self.rounds += 1
        if ok:
            self.streak += 1
            return DONE if self.streak >= self.required else CONTINUE
        self.streak = 0
        self.failures += 1
        return EXHAUSTED if self.failures > self.max_failures else CONTINUE


def probe_url_problem(url):
    """Why ``url`` cannot be probed (a short reason), or None when it can."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError as exc:
        return 'it is not a URL (%s)' % exc
    scheme = parts.scheme.lower()
    if scheme not in PROBE_SCHEMES or not parts.hostname:
        return 'it is not an http(s), tcp, redis or postgresql URL with a host'
    if scheme in SOCKET_SCHEMES:
        if parts.username is not None or parts.password is not None:
            return 'a %s probe URL must not carry credentials (it is echoed in results)' % scheme
        if port is None and SOCKET_SCHEMES[scheme] is None:
            return 'a tcp probe URL needs a port (tcp://HOST:PORT)'
    return None


def redact_url(url):
    """``url`` without the credentials it may carry (``redis://***@host:6379``), for messages."""
    text = str(url)
    scheme, sep, rest = text.partition('://')
    if not sep or '@' not in rest.split('/', 1)[0]:
        return text
    return '%s://***@%s' % (scheme, rest.split('@', 1)[1])


def probe(client, url, expected_status=(200,), expression=None, components_path='components',
          healthy_statuses=DEFAULT_HEALTHY_STATUSES):
    """One GET of ``url`` through ``client`` (an ``_http.HttpClient``); returns the endpoint
    dict health_check documents (url, healthy, status, latency_ms, failing_components,
    error, body). A tcp, redis or postgresql URL is probed over a socket instead, with the
    client's timeout."""
    if urlsplit(str(url)).scheme.lower() in SOCKET_SCHEMES:
        return probe_socket(url, client.timeout)
    started = time.monotonic()
    endpoint = {'url': url, 'healthy': False, 'status': None, 'latency_ms': None,
                'failing_components': [], 'error': None, 'body': None}
    try:
        response = client.request('GET', url, expected_status=all)
    except HttpError as exc:
        endpoint['error'] = exc.reason
    else:
        body = response.json_or_none()
        verdict = evaluate_response(response.status, body, expected_status, expression,
                                    components_path, healthy_statuses)
        endpoint.update(status=response.status, body=body, **verdict)
    endpoint['latency_ms'] = round((time.monotonic() - started) * 1000, 1)
    return endpoint


def wait_stable(check, probes, interval, timeout, retry=0.1, clock=time.monotonic, sleep=time.sleep):
    """Call ``check()`` (True when healthy) until it holds ``probes`` times in a row,
    ``interval`` seconds apart, or ``timeout`` seconds have passed.

    Returns (stable, rounds, elapsed). A failing round resets the streak, as the
    stabilization window of the seeds' "graceful restart with health check" wants; after a
    failing round the next probe comes ``retry`` seconds later (a service that is still
    starting answers soon), so the window starts at its first good answer, not an
    interval after it.
    """
    started = clock()
    streak = rounds = 0
    while True:
        rounds += 1
        streak = streak + 1 if check() else 0
        elapsed = clock() - started
        if streak >= probes:
            return True, rounds, round(elapsed, 3)
        pause = interval if streak else min(retry, interval)
        if elapsed + pause > timeout:
            return False, rounds, round(elapsed, 3)
        sleep(pause)


def probe_socket(url, timeout):
    """Probe a data store over a socket: the endpoint dict of probe(), ``status`` None."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    started = time.monotonic()
    endpoint = {'url': url, 'healthy': False, 'status': None, 'latency_ms': None,
                'failing_components': [], 'error': None, 'body': None}
    try:
        with socket.create_connection((parts.hostname, parts.port or SOCKET_SCHEMES[scheme]), timeout=timeout) as sock:
            sock.settimeout(timeout)
            endpoint['error'] = {'tcp': lambda s: None, 'redis': _redis_ping, 'postgresql': _pg_ready}[scheme](sock)
    except socket.timeout:
        endpoint['error'] = 'no answer within %s s' % timeout
    except (OSError, ValueError) as exc:
        endpoint['error'] = 'connection failed: %s' % (getattr(exc, 'strerror', None) or exc)
    endpoint['healthy'] = endpoint['error'] is None
    endpoint['latency_ms'] = round((time.monotonic() - started) * 1000, 1)
    return endpoint


def _read_exactly(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError('the server closed the connection')
        data += chunk
    return data


def _redis_ping(sock):
    """None when the server answers PING (+PONG, or -NOAUTH: it answers, it wants a
    password), else why not (-LOADING, -BUSY...)."""
    sock.sendall(b'PING\r\n')
    line = b''
    while not line.endswith(b'\r\n') and len(line) < 512:
        chunk = sock.recv(512)
        if not chunk:
            break
        line += chunk
    reply = line.split(b'\r\n', 1)[0].decode('utf-8', 'replace')
    if reply == '+PONG' or reply.startswith('-NOAUTH'):
        return None
    return 'redis answered PING with %r' % (reply[:80] or '(nothing)')


def _pg_ready(sock):
    """None when PostgreSQL accepts connections, as pg_isready judges it: a startup
    message for a user that need not exist gets an authentication request or an error;
    only SQLSTATE 57P03 (starting up, shutting down, in recovery) means not ready."""
    payload = b''.join(b'%s\x00%s\x00' % (key, value) for key, value in
                       ((b'user', b'runbook_probe'), (b'database', b'runbook_probe'))) + b'\x00'
    sock.sendall(struct.pack('!ii', 8 + len(payload), 196608) + payload)  # protocol 3.0
    kind = _read_exactly(sock, 1)
    if kind == b'R':
        return None
    if kind != b'E':
        return 'postgresql answered the startup message with %r' % kind
    length = struct.unpack('!i', _read_exactly(sock, 4))[0]
    fields = {}
    for item in _read_exactly(sock, max(0, length - 4)).split(b'\x00'):
        if item:
            fields[item[:1].decode('ascii', 'replace')] = item[1:].decode('utf-8', 'replace')
    if fields.get('C') == _PG_CANNOT_CONNECT_NOW:
        return 'postgresql does not accept connections: %s' % fields.get('M', 'starting up or shutting down')
    return None
