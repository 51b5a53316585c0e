# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Alertmanager silences (API v2): matchers, the silence client, present and absent.

Shared by the alertmanager_silence module and the scenario frame's action plugins (which
silence a scenario's alerts in process, without a module round trip).

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import re
import time

from ansible_collections.runbook.remediation.plugins.module_utils import _prometheus as prom
from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpError, excerpt_text

LIVE = ('active', 'pending')
DEFAULT_DURATION = 3600.0
# A live silence ending this close to the wanted end is left alone (seconds).
MAX_TOLERANCE = 60.0
UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
# RE2 treats a backslash before punctuation as the literal character.
_RE2_SPECIAL = re.compile(r'([\\.+*?()|\[\]{}^$])')


class SilenceError(prom.PrometheusError):
    """A problem with one silence request, with its error_kind."""

    def __init__(self, message, kind='server'):
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- matchers and times

def re2_escape(value):
    return _RE2_SPECIAL.sub(r'\\\1', value)


def build_matchers(matchers, labels):
    """Alertmanager matchers from the ``matchers`` list and the ``labels`` shorthand."""
    out = []
    for item in matchers or []:
        out.append({'name': item['name'], 'value': item['value'], 'isRegex': bool(item['is_regex']),
                    'isEqual': bool(item['is_equal'])})
    for name, value in (labels or {}).items():
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError('labels.%s: an empty list matches nothing' % name)
            out.append({'name': str(name), 'value': '|'.join(re2_escape(str(v)) for v in value), 'isRegex': True,
                        'isEqual': True})
        else:
            text = '' if value is None else str(value)
            regex = text.startswith('~')
            out.append({'name': str(name), 'value': text[1:] if regex else text, 'isRegex': regex, 'isEqual': True})
    for item in out:
        if not prom.LABEL_NAME_RE.match(item['name']):
            raise ValueError('%r is not a valid label name' % item['name'])
        if item['isRegex']:
            try:
                re.compile(item['value'])
            except re.error as exc:
                raise ValueError('matcher %s: %r is not a valid regular expression: %s'
                                 % (item['name'], item['value'], exc)) from exc
    return out


def matcher_key(matchers):
    """Order-insensitive identity of a matcher list (Alertmanager may reorder them)."""
    return sorted((m.get('name'), m.get('value'), bool(m.get('isRegex')), bool(m.get('isEqual', True)))
                  for m in matchers or [])


def format_time(seconds):
    whole, millis = divmod(round(seconds * 1000), 1000)
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole)) + '.%03dZ' % millis


def parse_am_time(text):
    return prom.parse_time(text) if text else None


def normalize(silence):
    """Alertmanager's silence with snake_case keys and sorted matchers."""
    if not silence:
        return None
    return {
        'id': silence.get('id'),
        'state': (silence.get('status') or {}).get('state'),
        'matchers': [{'name': n, 'value': v, 'is_regex': r, 'is_equal': e} for n, v, r, e in
                     matcher_key(silence.get('matchers'))],
        'starts_at': silence.get('startsAt'),
        'ends_at': silence.get('endsAt'),
        'updated_at': silence.get('updatedAt'),
        'created_by': silence.get('createdBy'),
        'comment': silence.get('comment'),
    }


def diff_view(silence):
    if not silence:
        return {}
    view = normalize(silence)
    return {key: view[key] for key in ('matchers', 'ends_at', 'created_by', 'comment', 'state')}


# --------------------------------------------------------------------------- API

class SilenceClient(prom.AlertmanagerClient):
    """The silence endpoints of the Alertmanager API v2."""

    def _call(self, method, path, body=None, params=None):
        try:
            response = self.http.request(method, path, params=params, json_body=body, expected_status=all)
        except HttpError as exc:
            raise self._unreachable(exc) from exc
        if 200 <= response.status < 300:
            return response
        text = excerpt_text(response.text.strip().strip('"'))
        if response.status in (400, 422):
            raise SilenceError('Alertmanager at %s refused the request: %s'
                               % (self.url, text or 'HTTP %s' % response.status), kind='input')
        if response.status in (401, 403):
            raise SilenceError('Alertmanager at %s refused the credentials (HTTP %s): check url_username/url_password, '
                               'bearer_token or headers' % (self.url, response.status), kind='input')
        error = SilenceError('Alertmanager at %s returned an error: HTTP %s%s%s' % (
            self.url, response.status, ': ' + text if text else '',
            ' (is %s the Alertmanager base URL?)' % self.url if response.status == 404 else ''))
        error.status = response.status
        error.text = text
        raise error

    def silences(self, filters=None):
        """The silences, expired ones too (Alertmanager keeps them for days); ``filters``
        (label matchers as text) make Alertmanager return only those whose matchers match."""
        params = {'filter': list(filters)} if filters else None
        data = self._call('GET', '/api/v2/silences', params=params).json_or_none()
        if not isinstance(data, list):
            raise SilenceError('Alertmanager at %s: expected a list of silences (is this an Alertmanager?)' % self.url)
        return data

    def silence(self, silence_id):
        """The silence, or None when Alertmanager does not know it."""
        try:
            return self._call('GET', '/api/v2/silence/%s' % silence_id).json_or_none()
        except SilenceError as exc:
            if getattr(exc, 'status', None) == 404:
                return None
            raise

    def post(self, body):
        data = self._call('POST', '/api/v2/silences', body).json_or_none()
        if not isinstance(data, dict) or not data.get('silenceID'):
            raise SilenceError('Alertmanager at %s accepted the silence but returned no silenceID' % self.url)
        return data['silenceID']

    def expire(self, silence_id):
        """True when this call expired it; False when it was gone or expired already."""
        try:
            self._call('DELETE', '/api/v2/silence/%s' % silence_id)
        except SilenceError as exc:
            # Expired meanwhile (another run): 404, or 500 "already expired" from Alertmanager 0.25.
            if getattr(exc, 'status', None) == 404 or 'already expired' in getattr(exc, 'text', ''):
                return False
            raise
        return True


# --------------------------------------------------------------------------- present / absent

# Values Alertmanager's filter syntax takes between double quotes without escaping.
_PLAIN_VALUE = re.compile(r'^[A-Za-z0-9_.:/@-]+$')


def server_filters(matchers):
    """Filters under which Alertmanager returns only silences that can have ``matchers``:
    the filter ``name="value"`` passes a silence whose equality matcher ``name`` has that
    value (Alertmanager 0.25 passes no regex matcher this way). Plain equality matchers
    only; :func:`live_matches` compares everything afterwards."""
    return ['%s="%s"' % (m['name'], m['value']) for m in matchers or []
            if m.get('isEqual', True) and not m.get('isRegex') and _PLAIN_VALUE.match(str(m.get('value') or ''))]


def live_matches(silences, matchers, comment):
    key = matcher_key(matchers)
    found = [s for s in silences if (s.get('status') or {}).get('state') in LIVE
             and matcher_key(s.get('matchers')) == key and s.get('comment') == comment]
    # the one ending last first: that is the one to keep and update
    return sorted(found, key=lambda s: parse_am_time(s.get('endsAt')) or 0, reverse=True)


def wanted_end(params, now):
    """(end in unix seconds, tolerance in seconds)."""
    if params['ends_at']:
        end = prom.parse_time(params['ends_at'], now=now)
        if end <= now:
            raise ValueError('ends_at %s is not in the future' % params['ends_at'])
        return end, 1.0
    duration = prom.parse_duration(params['duration']) if params['duration'] else DEFAULT_DURATION
    return now + duration, min(MAX_TOLERANCE, duration / 10.0)


def ensure_present(params, client, matchers, now, check_mode=False, refetch=True):
    """Create, extend or leave the silence ``params`` describes; the module's result dict.
    ``refetch=False`` trusts the posted body instead of reading the silence back (one
    request less, for the scenario frame's hot path)."""
    current = None
    if params['silence_id']:
        current = client.silence(params['silence_id'])
        if not current or (current.get('status') or {}).get('state') not in LIVE:
            raise SilenceError('silence %s %s: give matchers and a comment to create a new one' % (
                params['silence_id'], 'has expired' if current else 'does not exist'), kind='input')
        matchers = matchers or current.get('matchers')
    comment = params['comment'] if params['comment'] is not None else (current or {}).get('comment')
    if not matchers:
        raise SilenceError('a silence needs at least one matcher (matchers or labels)', kind='input')
    if not comment:
        raise SilenceError('a silence needs a comment', kind='input')
    if current is None:
        found = live_matches(client.silences(server_filters(matchers)), matchers, comment)
        current = found[0] if found else None

    try:
        end, tolerance = wanted_end(params, now)
    except ValueError as exc:
        raise SilenceError(str(exc), kind='input') from exc
    body = {
        'matchers': [{'name': m['name'], 'value': m['value'], 'isRegex': bool(m.get('isRegex')),
                      'isEqual': bool(m.get('isEqual', True))} for m in matchers],
        'startsAt': current['startsAt'] if current else format_time(now),
        'endsAt': format_time(end),
        'createdBy': params['created_by'],
        'comment': comment,
    }
    if current is not None:
        same = (matcher_key(current.get('matchers')) == matcher_key(body['matchers'])
                and current.get('comment') == comment and current.get('createdBy') == params['created_by']
                and abs((parse_am_time(current.get('endsAt')) or 0) - end) <= tolerance)
        if same:
            return dict(changed=False, action='unchanged', silence_id=current['id'], silence=normalize(current),
                        expired=[], diff=dict(before=diff_view(current), after=diff_view(current)))
        body['id'] = current['id']
    after = dict(body, status={'state': (current.get('status') or {}).get('state') if current else 'active'})
    action = 'updated' if current else 'created'
    if check_mode:
        after.setdefault('id', None)
        silence_id = after['id']
        silence = after
    else:
        silence_id = client.post(body)
        silence = (client.silence(silence_id) if refetch else None) or dict(after, id=silence_id)
    return dict(changed=True, action=action, silence_id=silence_id, silence=normalize(silence), expired=[],
                diff=dict(before=diff_view(current), after=diff_view(after)))


def ensure_absent(params, client, matchers, check_mode=False):
    """Expire the live silence(s) ``params`` name; the module's result dict."""
    if params['silence_id']:
        current = client.silence(params['silence_id'])
        targets = [current] if current and (current.get('status') or {}).get('state') in LIVE else []
    else:
        if not matchers:
            raise SilenceError('give silence_id, or the matchers (matchers or labels) and the comment of the silence',
                               kind='input')
        targets = live_matches(client.silences(server_filters(matchers)), matchers, params['comment'])
    expired = []
    for silence in targets:
        if check_mode or client.expire(silence['id']):
            expired.append(silence['id'])
    last = None
    if targets:
        last = targets[0] if check_mode else (client.silence(targets[0]['id']) or targets[0])
        if check_mode:
            last = dict(last, status={'state': 'expired'})
    return dict(changed=bool(expired), action='expired' if expired else 'absent',
                silence_id=targets[0]['id'] if targets else None, silence=normalize(last), expired=expired,
                diff=dict(before=diff_view(targets[0]) if targets else {}, after=diff_view(last) if targets else {}))
