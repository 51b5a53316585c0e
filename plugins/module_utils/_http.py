# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small JSON-over-HTTP helper built on ansible.module_utils.urls.

Private to this collection (the leading underscore): no compatibility promise.

Every transport problem is raised as one of a few typed exceptions whose
``reason`` is short enough to end a one-line error message, for example
``Prometheus at http://127.0.0.1:9090 is unreachable: connection refused``.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
from urllib.parse import urlencode, urlsplit

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request, SSLValidationError, make_context

USER_AGENT = 'runbook.remediation'

# How much of an error body is quoted in a message.
BODY_EXCERPT = 300


def http_argument_spec():
    """Argument spec entries shared by every module that talks HTTP (not ``url``)."""
    return dict(
        validate_certs=dict(type='bool', default=True),
        timeout=dict(type='float', default=10),
        url_username=dict(type='str'),
        url_password=dict(type='str', no_log=True),
        bearer_token=dict(type='str', no_log=True),
    )


# Argument relations to pass to AnsibleModule together with http_argument_spec().
HTTP_MUTUALLY_EXCLUSIVE = [('bearer_token', 'url_username'), ('bearer_token', 'url_password')]
HTTP_REQUIRED_TOGETHER = [('url_username', 'url_password')]


class HttpError(Exception):
    """Base class: the request did not produce a usable response.

    ``reason`` is a short, human readable cause; ``str(exc)`` adds method and URL.
    """

    def __init__(self, method, url, reason):
        self.method = method
        self.url = url
        self.reason = reason
        super().__init__('%s %s: %s' % (method, url, reason))


class HttpConnectionError(HttpError):
    """Nothing answered: connection refused, DNS failure, reset, proxy error."""


class HttpTimeout(HttpError):
    """The server did not answer within the timeout."""


class HttpTLSError(HttpError):
    """TLS handshake or certificate validation failed."""


class HttpStatusError(HttpError):
    """The server answered with an unexpected HTTP status."""

    def __init__(self, method, url, status, status_reason='', body=b''):
        self.status = status
        self.body = body or b''
        self.text = to_text(self.body, errors='surrogate_or_replace')
        try:
            self.json = json.loads(self.text) if self.text.strip() else None
        except ValueError:
            self.json = None
        reason = 'HTTP %s' % status
        if status_reason:
            reason += ' %s' % status_reason
        excerpt = excerpt_text(self.text)
        if excerpt:
            reason += ': %s' % excerpt
        super().__init__(method, url, reason)


class HttpInvalidResponse(HttpError):
    """The server answered, but not with the JSON that was expected."""


def excerpt_text(text, limit=BODY_EXCERPT):
    """One line, at most ``limit`` characters, of a response body."""
    text = ' '.join(to_text(text or '').split())
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


def _format_timeout(timeout):
    return ('%g' % timeout) if timeout is not None else '?'


def _describe_oserror(err):
    """Short text for an OSError-ish ``reason`` from urllib."""
    if isinstance(err, ConnectionRefusedError):
        return 'connection refused'
    if isinstance(err, ConnectionResetError):
        return 'connection reset by peer'
    if isinstance(err, socket.gaierror):
        return 'cannot resolve host name (%s)' % (err.strerror or to_native(err))
    if isinstance(err, OSError) and err.strerror:
        return err.strerror[:1].lower() + err.strerror[1:]
    return to_native(err) or err.__class__.__name__


def classify_error(method, url, err, timeout=None):
    """Turn an exception raised by open_url()/read() into a typed HttpError.

    Returns the HttpError (the caller raises it ``from err``); HTTPError responses
    are handled by the caller because their body must be read.
    """
    tls_hint = ' (for a self-signed certificate set validate_certs=false)'
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        inner = err.reason
        if isinstance(inner, (socket.timeout, TimeoutError)):
            return HttpTimeout(method, url, 'no response within %ss' % _format_timeout(timeout))
        if isinstance(inner, ssl.SSLCertVerificationError):
            return HttpTLSError(method, url, 'TLS certificate verification failed: %s%s'
                                % (inner.verify_message or to_native(inner), tls_hint))
        if isinstance(inner, ssl.SSLError):
            return HttpTLSError(method, url, 'TLS error: %s' % to_native(inner))
        if isinstance(inner, BaseException):
            return HttpConnectionError(method, url, _describe_oserror(inner))
        return HttpConnectionError(method, url, to_native(inner))
    if isinstance(err, (socket.timeout, TimeoutError)):
        return HttpTimeout(method, url, 'no response within %ss' % _format_timeout(timeout))
    if isinstance(err, SSLValidationError):
        return HttpTLSError(method, url, '%s%s' % (to_native(err), tls_hint))
    if isinstance(err, ssl.SSLError):
        return HttpTLSError(method, url, 'TLS error: %s' % to_native(err))
    if isinstance(err, UrlsConnectionError):
        return HttpConnectionError(method, url, to_native(err))
    if isinstance(err, http.client.HTTPException):
        # RemoteDisconnected, BadStatusLine, IncompleteRead, ...
        return HttpConnectionError(method, url, 'invalid HTTP response (%s: %s)'
                                   % (err.__class__.__name__, to_native(err) or 'no details'))
    if isinstance(err, OSError):
        return HttpConnectionError(method, url, _describe_oserror(err))
    return HttpError(method, url, '%s: %s' % (err.__class__.__name__, to_native(err)))


class Response:
    """What came back: status, headers, raw body and the request's latency."""

    def __init__(self, method, url, status, headers, body, elapsed):
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    @property
    def text(self):
        return to_text(self.body, errors='surrogate_or_replace')

    def json(self):
        """The body parsed as JSON; raises HttpInvalidResponse if it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError as exc:
            raise HttpInvalidResponse(
                self.method, self.url,
                'expected a JSON body but got %r (%s)' % (excerpt_text(self.text, 80), to_native(exc)),
            ) from exc

    def json_or_none(self):
        """The body parsed as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.text) if self.text.strip() else None
        except ValueError:
            return None


def join_url(base, path):
    """``base`` with ``path`` appended, keeping any prefix (``/prometheus``) in ``base``."""
    if not path:
        return base
    return base.rstrip('/') + '/' + path.lstrip('/')


def is_http_url(url):
    """True when ``url`` is an absolute http:// or https:// URL with a host."""
    try:
        parts = urlsplit(to_text(url))
    except ValueError:
        return False
    return parts.scheme.lower() in ('http', 'https') and bool(parts.netloc)


# make_context() loads the system's CA bundle: ~50 ms of CPU, which open_url() spends on
# every request, http:// ones too. One verifying context per process serves every https
# request; a plain http request gets a context without CAs (a redirect to https through it
# fails verification: closed, never unverified).
_TLS_CONTEXTS = {}


def tls_context(url, validate_certs=True):
    """The SSL context for a request to ``url``, made once per process."""
    https = urlsplit(to_text(url)).scheme.lower() == 'https'
    key = ('https', bool(validate_certs)) if https else 'http'
    if key not in _TLS_CONTEXTS:
        _TLS_CONTEXTS[key] = make_context(validate_certs=validate_certs) if https \
            else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return _TLS_CONTEXTS[key]


class HttpClient:
    """A thin JSON client over ansible.module_utils.urls.Request.

    ``base_url`` is prefixed to relative paths. Authentication is either HTTP basic
    (``url_username``/``url_password``) or a bearer token, never both.
    """

    def __init__(self, base_url=None, timeout=10, validate_certs=True, url_username=None,
                 url_password=None, bearer_token=None, headers=None, user_agent=USER_AGENT):
        if bearer_token and url_username:
            raise ValueError('use either bearer_token or url_username/url_password, not both')
        self.base_url = base_url
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.url_username = url_username
        self.url_password = url_password
        self.bearer_token = bearer_token
        self.headers = dict(headers or {})
        self.user_agent = user_agent

    @classmethod
    def from_module_params(cls, params, base_url=None, **kwargs):
        """Build a client from the options of http_argument_spec()."""
        return cls(
            base_url=base_url,
            timeout=params.get('timeout'),
            validate_certs=params.get('validate_certs', True),
            url_username=params.get('url_username'),
            url_password=params.get('url_password'),
            bearer_token=params.get('bearer_token'),
            **kwargs
        )

    def url_for(self, path, params=None):
        url = path if (self.base_url is None or is_http_url(path)) else join_url(self.base_url, path)
        if params:
            query = urlencode(params, doseq=True)
            url += ('&' if '?' in url else '?') + query
        return url

    def request(self, method, path, params=None, json_body=None, headers=None, expected_status=None):
        """Send one request and return a Response.

        ``expected_status``: a collection of acceptable status codes; any other status
        raises HttpStatusError. ``None`` accepts 2xx only. Pass ``all`` (the builtin)
        to accept every status, as a health probe does.
        """
        method = method.upper()
        url = self.url_for(path, params)
        req_headers = {'Accept': 'application/json'}
        req_headers.update(self.headers)
        req_headers.update(headers or {})
        data = None
        if json_body is not None:
            data = json.dumps(json_body)
            req_headers['Content-Type'] = 'application/json'
        if self.bearer_token:
            req_headers['Authorization'] = 'Bearer %s' % self.bearer_token

        start = time.monotonic()
        try:
            resp = Request().open(
                method,
                url,
                data=data,
                headers=req_headers,
                timeout=self.timeout,
                validate_certs=self.validate_certs,
                url_username=self.url_username,
                url_password=self.url_password,
                force_basic_auth=bool(self.url_username),
                http_agent=self.user_agent,
                # a token must not be replaced by credentials from ~/.netrc
                use_netrc=not self.bearer_token,
                context=tls_context(url, self.validate_certs),
            )
            try:
                status = resp.getcode()
                body = resp.read()
                resp_headers = dict(resp.headers.items()) if resp.headers else {}
            finally:
                resp.close()
        except urllib.error.HTTPError as err:
            status = err.code
            resp_headers = dict(err.headers.items()) if err.headers else {}
            try:
                body = err.read()
            except Exception:  # pylint: disable=broad-except  # noqa: BLE001 - the body is only a hint
                body = b''
            finally:
                err.close()
        # Anything else open_url() raises is classified into a typed HttpError.
        except Exception as err:  # pylint: disable=broad-except
            raise classify_error(method, url, err, self.timeout) from err
        elapsed = time.monotonic() - start

        response = Response(method, url, status, resp_headers, body or b'', elapsed)
        if expected_status is all:
            return response
        ok = (200 <= status < 300) if expected_status is None else (status in expected_status)
        if not ok:
            raise HttpStatusError(method, url, status, http.client.responses.get(status, ''), response.body)
        return response

    def get_json(self, path, params=None, **kwargs):
        """GET ``path`` and return the parsed JSON body (2xx only)."""
        return self.request('GET', path, params=params, **kwargs).json()

    def post_json(self, path, body, params=None, **kwargs):
        """POST ``body`` as JSON and return the parsed JSON body, or None if it is empty."""
        response = self.request('POST', path, params=params, json_body=body, **kwargs)
        return response.json() if response.text.strip() else None
