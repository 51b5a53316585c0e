# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Prometheus HTTP API v1 and Alertmanager API v2 clients, and the pure helpers
the prometheus_* modules share (time parsing, result normalisation, thresholds,
label filters).

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import math
import operator
import re
import time

from ansible_collections.runbook.remediation.plugins.module_utils._http import (
    HttpError,
    HttpInvalidResponse,
    HttpStatusError,
    excerpt_text,
)

# Prometheus refuses range queries with more than 11,000 points per series.
MAX_POINTS = 11000
DEFAULT_STEP = 15.0

_UNITS = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800, 'y': 31536000}
_DURATION_PART_RE = re.compile(r'(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)')
_NUMBER_RE = re.compile(r'^[+-]?\d+(?:\.\d+)?$')
_RELATIVE_RE = re.compile(r'^(?:now)?\s*([+-])\s*(\S+)$')
LABEL_NAME_RE = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')

THRESHOLD_OPERATORS = {
    '>': operator.gt,
    '>=': operator.ge,
    '<': operator.lt,
    '<=': operator.le,
    '==': operator.eq,
    '!=': operator.ne,
}

TIME_HELP = "use RFC 3339 (2024-05-01T12:00:00Z), unix seconds, 'now' or a relative time such as -1h or -5m"


# --------------------------------------------------------------------------- errors

class PrometheusError(Exception):
    """Base class. ``str(exc)`` is one actionable line.

    ``kind`` tells a playbook what to do about it: V(unavailable) (the server is
    down or unreachable), V(input) (the query or a parameter is wrong), V(server)
    (the server failed on a valid request).
    """

    kind = 'server'


class ApiUnreachable(PrometheusError):
    """Nothing usable answered at the URL (refused, timeout, TLS, DNS)."""

    kind = 'unavailable'

    def __init__(self, service, url, reason):
        self.service = service
        self.url = url
        self.reason = reason
        super().__init__('%s at %s is unreachable: %s' % (service, url, reason))


class QueryError(PrometheusError):
    """Prometheus answered with ``status: error`` for a query."""

    def __init__(self, error_type, error, status=None):
        self.error_type = error_type
        self.error = error
        self.status = status
        self.kind = 'input' if error_type in ('bad_data', None) else 'server'
        if error_type in ('bad_data', None):
            text = 'Prometheus rejected the query: %s' % error
        elif error_type in ('timeout', 'canceled'):
            text = 'Prometheus gave up on the query (%s): %s' % (error_type, error)
        else:
            text = 'Prometheus could not execute the query (%s): %s' % (error_type, error)
        super().__init__(text)


class ApiError(PrometheusError):
    """The API answered, but with an error that is not about the query itself."""

    def __init__(self, service, url, reason):
        self.service = service
        self.url = url
        self.reason = reason
        super().__init__('%s at %s returned an error: %s' % (service, url, reason))


# --------------------------------------------------------------------------- time

def parse_duration(value):
    """Seconds in a Prometheus duration (``15s``, ``1m30s``, ``500ms``) or a plain number."""
    if isinstance(value, bool):
        raise ValueError('%r is not a duration' % (value,))
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        if _NUMBER_RE.match(text):
            seconds = float(text)
        else:
            parts = _DURATION_PART_RE.findall(text)
            if not parts or ''.join(n + u for n, u in parts) != text:
                raise ValueError("%r is not a duration: use for example 15s, 1m, 1h30m or a number of seconds"
                                 % (value,))
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0 or math.isinf(seconds) or math.isnan(seconds):
        raise ValueError('%r is not a positive duration' % (value,))
    return seconds


def _parse_rfc3339(text):
    normalised = text.strip()
    if normalised.endswith(('Z', 'z')):
        normalised = normalised[:-1] + '+00:00'
    # fromisoformat() before Python 3.11 accepts at most 6 fractional digits
    match = re.match(r'^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$', normalised)
    if match:
        normalised = '%s.%s%s' % (match.group(1), match.group(2)[:6].ljust(6, '0'), match.group(3))
    parsed = datetime.datetime.fromisoformat(normalised)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def parse_time(value, now=None):
    """Unix seconds (float) for RFC 3339, unix seconds, ``now`` or ``-5m``/``now-1h``.

    ``None`` and the empty string mean now. Raises ValueError with a hint.
    """
    if now is None:
        now = time.time()
    if value is None:
        return float(now)
    if isinstance(value, bool):
        raise ValueError('%r is not a time: %s' % (value, TIME_HELP))
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text in ('', 'now'):
        return float(now)
    if _NUMBER_RE.match(text):
        return float(text)
    relative = _RELATIVE_RE.match(text)
    if relative:
        try:
            offset = parse_duration(relative.group(2))
        except ValueError:
            raise ValueError('%r is not a time: %s' % (value, TIME_HELP)) from None
        return float(now) + (offset if relative.group(1) == '+' else -offset)
    try:
        return _parse_rfc3339(text)
    except ValueError:
        raise ValueError('%r is not a time: %s' % (value, TIME_HELP)) from None


def default_step(start, end):
    """15 s, or coarser when the range would exceed Prometheus' 11,000 points per series."""
    span = max(end - start, 0)
    return max(DEFAULT_STEP, float(math.ceil(span / MAX_POINTS)))


def format_timestamp(seconds):
    """Unix seconds as Prometheus accepts them (millisecond precision)."""
    return ('%.3f' % seconds).rstrip('0').rstrip('.')


# --------------------------------------------------------------------------- results

def sample_value(raw):
    """Prometheus sends sample values as strings; NaN and +-Inf become None (not JSON)."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def _raw_float(raw):
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def normalize_result(data):
    """Turn the ``data`` of a query response into (result_type, samples).

    vector/scalar/string: ``[{metric, value, timestamp}]``;
    matrix: ``[{metric, values: [[timestamp, value], ...]}]``.
    """
    if not isinstance(data, dict) or 'resultType' not in data:
        raise ValueError('the response has no data.resultType')
    result_type = data['resultType']
    result = data.get('result')
    samples = []
    if result_type == 'vector':
        for series in result or []:
            point = series.get('value') or [None, None]
            samples.append({
                'metric': dict(series.get('metric') or {}),
                'value': sample_value(point[1]),
                'timestamp': point[0],
            })
    elif result_type == 'matrix':
        for series in result or []:
            samples.append({
                'metric': dict(series.get('metric') or {}),
                'values': [[point[0], sample_value(point[1])] for point in series.get('values') or []],
            })
    elif result_type == 'scalar':
        samples.append({'metric': {}, 'value': sample_value(result[1]), 'timestamp': result[0]})
    elif result_type == 'string':
        samples.append({'metric': {}, 'value': result[1], 'timestamp': result[0]})
    else:
        raise ValueError('unknown resultType %r' % (result_type,))
    return result_type, samples


def raw_points(data):
    """Per series, the unrounded float values (NaN/Inf kept) for threshold checks.

    Returns a list parallel to normalize_result()'s samples: a float for instant
    results, a list of ``(timestamp, float)`` for matrices.
    """
    result_type = data.get('resultType')
    result = data.get('result')
    if result_type == 'vector':
        return [_raw_float((s.get('value') or [None, None])[1]) for s in result or []]
    if result_type == 'matrix':
        return [[(p[0], _raw_float(p[1])) for p in s.get('values') or []] for s in result or []]
    if result_type == 'scalar':
        return [_raw_float(result[1])]
    return [None]


def series_trend(sample):
    """first/last/delta/per_second/min/max of one matrix series (None when no numbers)."""
    points = [(ts, v) for ts, v in sample.get('values') or [] if v is not None]
    trend = {'metric': sample.get('metric', {}), 'points': len(points), 'first': None, 'last': None,
             'delta': None, 'per_second': None, 'min': None, 'max': None}
    if not points:
        return trend
    (t_first, first), (t_last, last) = points[0], points[-1]
    values = [value for dummy, value in points]
    trend.update(first=first, last=last, delta=last - first, min=min(values), max=max(values))
    if t_last != t_first:
        trend['per_second'] = (last - first) / (t_last - t_first)
    return trend


def breaches(value, op, limit):
    """Whether ``value op limit`` holds; None and NaN never breach."""
    if value is None or math.isnan(value):
        return False
    return THRESHOLD_OPERATORS[op](value, limit)


def apply_threshold(result_type, samples, raw, op, limit):
    """(breached, breaching) for samples from normalize_result() and raw_points().

    Instant results: the samples whose value satisfies ``op limit``. Matrices: each
    series with any point that does, carrying only those points.
    """
    if op not in THRESHOLD_OPERATORS:
        raise ValueError('threshold op must be one of %s' % ', '.join(THRESHOLD_OPERATORS))
    breaching = []
    for index, sample in enumerate(samples):
        values = raw[index]
        if result_type == 'matrix':
            hits = [[ts, sample_value(v)] for ts, v in values if breaches(v, op, limit)]
            if hits:
                breaching.append({'metric': sample['metric'], 'values': hits})
        elif breaches(values, op, limit):
            breaching.append(sample)
    return bool(breaching), breaching


# --------------------------------------------------------------------------- alerts

def split_label_filters(labels):
    """Split ``{name: value}`` into exact matches and compiled regexes (values starting with ``~``).

    Regexes are fully anchored, as in Prometheus. ValueError for a bad regex.
    """
    exact, regexes = {}, {}
    for name, value in (labels or {}).items():
        text = '' if value is None else str(value)
        if text.startswith('~'):
            try:
                regexes[str(name)] = re.compile(text[1:])
            except re.error as exc:
                raise ValueError('label %s: %r is not a valid regular expression: %s' % (name, text[1:], exc)) from exc
        else:
            exact[str(name)] = text
    return exact, regexes


def alertmanager_matcher(name, value):
    """An Alertmanager ``filter`` matcher for an exact label value: ``name="value"``."""
    escaped = value.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')
    return '%s="%s"' % (name, escaped)


def labels_match(labels, exact=None, regexes=None, alertnames=None):
    """Whether an alert's labels satisfy exact values, anchored regexes and alert names."""
    labels = labels or {}
    for name, value in (exact or {}).items():
        if labels.get(name, '') != value:
            return False
    for name, pattern in (regexes or {}).items():
        if not pattern.fullmatch(labels.get(name, '')):
            return False
    if alertnames and labels.get('alertname') not in alertnames:
        return False
    return True


def labels_fingerprint(labels):
    """A stable 16-hex-digit id for a label set (Alertmanager fingerprints look alike)."""
    canonical = json.dumps(sorted((labels or {}).items()), separators=(',', ':'))
    return hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:16]


def normalize_alertmanager_alert(alert):
    labels = dict(alert.get('labels') or {})
    status = alert.get('status') or {}
    return {
        'name': labels.get('alertname'),
        'labels': labels,
        'annotations': dict(alert.get('annotations') or {}),
        'state': status.get('state'),
        'starts_at': alert.get('startsAt'),
        'ends_at': alert.get('endsAt'),
        'fingerprint': alert.get('fingerprint') or labels_fingerprint(labels),
        'severity': labels.get('severity'),
        'generator_url': alert.get('generatorURL') or None,
        'silenced_by': list(status.get('silencedBy') or []),
        'inhibited_by': list(status.get('inhibitedBy') or []),
        'value': None,
    }


def normalize_prometheus_alert(alert):
    labels = dict(alert.get('labels') or {})
    return {
        'name': labels.get('alertname'),
        'labels': labels,
        'annotations': dict(alert.get('annotations') or {}),
        'state': alert.get('state'),
        'starts_at': alert.get('activeAt'),
        'ends_at': None,
        'fingerprint': labels_fingerprint(labels),
        'severity': labels.get('severity'),
        'generator_url': None,
        'silenced_by': [],
        'inhibited_by': [],
        'value': alert.get('value'),
    }


def sort_alerts(alerts):
    return sorted(alerts, key=lambda a: (a.get('name') or '', a.get('starts_at') or '', a['fingerprint']))


# Alertmanager's GET /api/v2/alerts flags and the status.state values they keep.
ALERTMANAGER_STATES = {
    'active': ({'active': True, 'silenced': False, 'inhibited': False, 'unprocessed': False}, ('active',)),
    'suppressed': ({'active': False, 'silenced': True, 'inhibited': True, 'unprocessed': False}, ('suppressed',)),
    'unprocessed': ({'active': False, 'silenced': False, 'inhibited': False, 'unprocessed': True},
                    ('unprocessed',)),
    'all': ({'active': True, 'silenced': True, 'inhibited': True, 'unprocessed': True},
            ('active', 'suppressed', 'unprocessed')),
}

# Prometheus' GET /api/v1/alerts lists pending and firing alerts; active means firing.
PROMETHEUS_STATES = {
    'active': ('firing',),
    'firing': ('firing',),
    'pending': ('pending',),
    'all': ('firing', 'pending'),
}


# --------------------------------------------------------------------------- clients

class _ApiClient:
    service = 'API'

    def __init__(self, http):
        self.http = http

    @property
    def url(self):
        return self.http.base_url

    def _unreachable(self, exc):
        return ApiUnreachable(self.service, self.url, exc.reason)

    def _status_error(self, exc):
        reason = exc.reason
        if exc.status in (401, 403):
            reason += ' (check url_username/url_password or bearer_token)'
        elif exc.status == 404:
            reason += ' (is %s the %s base URL?)' % (self.url, self.service)
        return ApiError(self.service, self.url, reason)


class PrometheusClient(_ApiClient):
    """Prometheus HTTP API v1."""

    service = 'Prometheus'

    def _call(self, path, params=None):
        try:
            response = self.http.request('GET', path, params=params, expected_status=all)
        except HttpError as exc:
            raise self._unreachable(exc) from exc
        payload = response.json_or_none()
        if isinstance(payload, dict) and payload.get('status') == 'error':
            raise QueryError(payload.get('errorType'), payload.get('error') or 'no error text', response.status)
        if not 200 <= response.status < 300:
            raise self._status_error(HttpStatusError(response.method, response.url, response.status,
                                                     http.client.responses.get(response.status, ''), response.body))
        if not isinstance(payload, dict) or payload.get('status') != 'success':
            raise ApiError(self.service, self.url, 'unexpected response to %s: %r (is this a Prometheus server?)'
                           % (path, excerpt_text(response.text, 120)))
        return payload

    def query(self, query, at=None):
        """Instant query; returns the response payload (``data``, ``warnings``)."""
        params = {'query': query}
        if at is not None:
            params['time'] = format_timestamp(at)
        return self._call('/api/v1/query', params)

    def query_range(self, query, start, end, step):
        return self._call('/api/v1/query_range', {
            'query': query,
            'start': format_timestamp(start),
            'end': format_timestamp(end),
            'step': format_timestamp(step),
        })

    def alerts(self):
        payload = self._call('/api/v1/alerts')
        return list((payload.get('data') or {}).get('alerts') or [])


class AlertmanagerClient(_ApiClient):
    """Alertmanager API v2."""

    service = 'Alertmanager'

    def _wrap(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except HttpStatusError as exc:
            if exc.status == 400 and exc.text:
                raise ApiError(self.service, self.url, 'bad request: %s' % excerpt_text(exc.text)) from exc
            raise self._status_error(exc) from exc
        except HttpInvalidResponse as exc:
            raise ApiError(self.service, self.url, '%s (is this an Alertmanager?)' % exc.reason) from exc
        except HttpError as exc:
            raise self._unreachable(exc) from exc

    def alerts(self, filters=None, active=True, silenced=True, inhibited=True, unprocessed=True, receiver=None):
        params = {
            'active': 'true' if active else 'false',
            'silenced': 'true' if silenced else 'false',
            'inhibited': 'true' if inhibited else 'false',
            'unprocessed': 'true' if unprocessed else 'false',
        }
        if filters:
            params['filter'] = list(filters)
        if receiver:
            params['receiver'] = receiver
        result = self._wrap(self.http.get_json, '/api/v2/alerts', params=params)
        if not isinstance(result, list):
            raise ApiError(self.service, self.url, 'expected a list of alerts, got %s' % type(result).__name__)
        return result

    def post_alerts(self, alerts):
        """Inject alerts (a list of postable alerts: labels, annotations, startsAt, ...)."""
        return self._wrap(self.http.post_json, '/api/v2/alerts', list(alerts))
