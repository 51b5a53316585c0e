from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import urllib.error

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _http


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8080/health", True),
        ("HTTPS://example.com", True),
        ("ftp://example.com/x", False),
        ("127.0.0.1:8080/health", False),
        ("http://", False),
        ("xyz", False),
        ("", False),
        ("http://[::1", False),
    ],
)
def test_is_http_url(url, ok):
    assert _http.is_http_url(url) is ok


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("http://h:9090", "/api/v1/query", "http://h:9090/api/v1/query"),
        ("http://h:9090/", "/api/v1/query", "http://h:9090/api/v1/query"),
        ("http://h/prometheus/", "api/v1/query", "http://h/prometheus/api/v1/query"),
        ("http://h/x", "", "http://h/x"),
    ],
)
def test_join_url(base, path, expected):
    assert _http.join_url(base, path) == expected


def test_url_for_encodes_repeated_params():
    client = _http.HttpClient(base_url="http://h:9093")
    url = client.url_for("/api/v2/alerts", {"filter": ['a="1"', "b=~x"], "active": "true"})
    assert url == "http://h:9093/api/v2/alerts?filter=a%3D%221%22&filter=b%3D~x&active=true"
    assert client.url_for("http://other/x") == "http://other/x"


def test_excerpt_text_is_one_short_line():
    assert _http.excerpt_text("a\n  b\tc") == "a b c"
    long = _http.excerpt_text("x" * 500, limit=20)
    assert len(long) == 20
    assert long.endswith("...")


@pytest.mark.parametrize(
    ("err", "kind", "reason"),
    [
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), _http.HttpConnectionError,
         "connection refused"),
        (urllib.error.URLError(TimeoutError("timed out")), _http.HttpTimeout, "no response within 2.5s"),
        (TimeoutError("timed out"), _http.HttpTimeout, "no response within 2.5s"),
        (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), _http.HttpConnectionError,
         "cannot resolve host name (Name or service not known)"),
        (urllib.error.URLError(ssl.SSLError(1, "wrong version number")), _http.HttpTLSError, "TLS error"),
        (urllib.error.URLError("no host given"), _http.HttpConnectionError, "no host given"),
        (ConnectionResetError(104, "reset"), _http.HttpConnectionError, "connection reset by peer"),
        (OSError(113, "No route to host"), _http.HttpConnectionError, "no route to host"),
        (http.client.RemoteDisconnected("Remote end closed connection"), _http.HttpConnectionError,
         "invalid HTTP response (RemoteDisconnected"),
        (_http.SSLValidationError("bad cert"), _http.HttpTLSError, "validate_certs=false"),
        (ValueError("weird"), _http.HttpError, "ValueError: weird"),
    ],
)
def test_classify_error(err, kind, reason):
    exc = _http.classify_error("GET", "http://h/x", err, timeout=2.5)
    assert exc.__class__ is kind
    assert reason in exc.reason
    assert str(exc).startswith("GET http://h/x: ")


def test_get_json_and_headers(http_server):
    http_server.routes[("GET", "/data")] = http_server.Reply(200, {"a": [1, 2]})
    client = _http.HttpClient(base_url=http_server.url, headers={"X-Test": "1"})
    assert client.get_json("/data", params={"q": "up == 0"}) == {"a": [1, 2]}
    request = http_server.requests[-1]
    assert request.query == {"q": ["up == 0"]}
    assert request.headers["Accept"] == "application/json"
    assert request.headers["X-Test"] == "1"
    assert request.headers["User-Agent"] == _http.USER_AGENT
    assert "Authorization" not in request.headers


def test_post_json_sends_json(http_server):
    http_server.routes[("POST", "/in")] = http_server.Reply(200, "")
    client = _http.HttpClient(base_url=http_server.url)
    assert client.post_json("/in", [{"labels": {"a": "b"}}]) is None
    request = http_server.requests[-1]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == [{"labels": {"a": "b"}}]


def test_bearer_token(http_server):
    http_server.routes[("GET", "/")] = http_server.Reply(200, {})
    _http.HttpClient(base_url=http_server.url, bearer_token="s3cret").get_json("/")
    assert http_server.requests[-1].headers["Authorization"] == "Bearer s3cret"


def test_basic_auth_is_sent_up_front(http_server):
    http_server.routes[("GET", "/")] = http_server.Reply(200, {})
    _http.HttpClient(base_url=http_server.url, url_username="u", url_password="p").get_json("/")
    expected = "Basic " + base64.b64encode(b"u:p").decode()
    assert http_server.requests[-1].headers["Authorization"] == expected


def test_token_and_username_conflict():
    with pytest.raises(ValueError):
        _http.HttpClient(bearer_token="t", url_username="u")


def test_status_error_carries_body(http_server):
    http_server.routes[("GET", "/bad")] = http_server.Reply(400, {"status": "error", "error": "parse error"})
    client = _http.HttpClient(base_url=http_server.url)
    with pytest.raises(_http.HttpStatusError) as excinfo:
        client.get_json("/bad")
    exc = excinfo.value
    assert exc.status == 400
    assert exc.json == {"status": "error", "error": "parse error"}
    assert exc.reason.startswith("HTTP 400 Bad Request: ")
    assert "parse error" in exc.reason


def test_expected_status_all_returns_any_response(http_server):
    http_server.routes[("GET", "/h")] = http_server.Reply(503, "down")
    response = _http.HttpClient().request("GET", http_server.url + "/h", expected_status=all)
    assert (response.status, response.text, response.json_or_none()) == (503, "down", None)
    assert response.elapsed >= 0


def test_expected_status_list(http_server):
    http_server.routes[("GET", "/h")] = http_server.Reply(204, "")
    client = _http.HttpClient(base_url=http_server.url)
    assert client.request("GET", "/h", expected_status=[204]).status == 204
    with pytest.raises(_http.HttpStatusError):
        client.request("GET", "/h", expected_status=[200])


def test_invalid_json(http_server):
    http_server.routes[("GET", "/html")] = http_server.Reply(200, "<html>login</html>")
    with pytest.raises(_http.HttpInvalidResponse, match="expected a JSON body"):
        _http.HttpClient(base_url=http_server.url).get_json("/html")


def test_connection_refused(closed_port_url):
    with pytest.raises(_http.HttpConnectionError) as excinfo:
        _http.HttpClient(base_url=closed_port_url).get_json("/")
    assert excinfo.value.reason == "connection refused"


def test_timeout(http_server):
    http_server.routes[("GET", "/slow")] = http_server.Reply(200, {}, delay=1.0)
    with pytest.raises(_http.HttpTimeout) as excinfo:
        _http.HttpClient(base_url=http_server.url, timeout=0.2).get_json("/slow")
    assert excinfo.value.reason == "no response within 0.2s"


def test_tls_to_plain_http_port(http_server):
    with pytest.raises(_http.HttpTLSError):
        _http.HttpClient(timeout=2).get_json(http_server.url.replace("http://", "https://") + "/")


def test_tls_context_is_made_once_per_process_and_never_for_plain_http(monkeypatch, http_server):
    made = []
    monkeypatch.setattr(_http, "_TLS_CONTEXTS", {})
    monkeypatch.setattr(_http, "make_context", lambda **kwargs: made.append(kwargs) or ssl.create_default_context())
    client = _http.HttpClient(base_url=http_server.url, timeout=2)
    http_server.routes[("GET", "/ok")] = http_server.Reply(200, {"ok": True})
    assert client.get_json("/ok") == {"ok": True}
    assert client.get_json("/ok") == {"ok": True}
    assert made == []  # no CA bundle loaded for http://
    plain = _http.tls_context("http://127.0.0.1:9090/")
    assert plain.get_ca_certs() == [] and plain.verify_mode == ssl.CERT_REQUIRED  # a redirect to https fails closed
    verified = _http.tls_context("https://prometheus.example/api")
    assert _http.tls_context("HTTPS://alertmanager.example/") is verified
    assert made == [{"validate_certs": True}]
    assert _http.tls_context("https://x.example/", validate_certs=False) is not verified
    assert made == [{"validate_certs": True}, {"validate_certs": False}]


def test_http_argument_spec_marks_secrets():
    spec = _http.http_argument_spec()
    assert spec["url_password"]["no_log"] is True
    assert spec["bearer_token"]["no_log"] is True
    assert "url" not in spec


def test_from_module_params():
    client = _http.HttpClient.from_module_params(
        {"timeout": 3.0, "validate_certs": False, "url_username": "u", "url_password": "p", "bearer_token": None},
        base_url="http://h",
    )
    assert (client.timeout, client.validate_certs, client.url_username, client.base_url) == (3.0, False, "u", "http://h")
