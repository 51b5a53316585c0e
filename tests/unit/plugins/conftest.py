"""Fixtures for the collection's plugin tests.

Makes ``ansible_collections.runbook.remediation`` importable from this checkout
(wherever it lives) next to the collections bundled with the ``ansible`` package,
and offers a module runner and a throwaway HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.collection_loader import install_collection_loader

install_collection_loader()


# --------------------------------------------------------------------------- module runner


class ModuleExit(Exception):
    def __init__(self, failed: bool, result: dict):
        super().__init__(result.get("msg", ""))
        self.failed = failed
        self.result = result


@dataclass
class ModuleResult:
    failed: bool
    result: dict
    warnings: list = field(default_factory=list)

    def __getitem__(self, key):
        return self.result[key]

    @property
    def msg(self) -> str:
        return self.result.get("msg", "")


@pytest.fixture
def run_module(monkeypatch):
    """Run a module's main() with ``args``; returns a ModuleResult instead of exiting."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    warnings: list = []

    def exit_json(self, **kwargs):
        raise ModuleExit(False, kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["msg"] = msg
        raise ModuleExit(True, kwargs)

    def warn(self, warning):
        warnings.append(warning)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", warn)

    def run(main, args: dict) -> ModuleResult:
        warnings.clear()
        with patch_module_args(args), pytest.raises(ModuleExit) as excinfo:
            main()
        return ModuleResult(excinfo.value.failed, excinfo.value.result, list(warnings))

    return run


# --------------------------------------------------------------------------- HTTP server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    status: int = 200
    body: object = None  # dict/list -> JSON, str/bytes -> as is
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes


class FakeServer:
    """An HTTP server on 127.0.0.1 answering from ``routes``.

    ``routes[(method, path)]`` is a Reply, a list of Replies (served in turn, the
    last one repeating) or a callable taking the Recorded request.
    """

    Reply = Reply  # so that tests need not import from conftest

    def __init__(self):
        self.routes: dict = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Recorded(self.command, parts.path, parse_qs(parts.query),
                                   dict(self.headers.items()), self.rfile.read(length) if length else b"")
                reply = server.reply_for(request)
                if reply.delay:
                    threading.Event().wait(reply.delay)
                body = reply.body
                headers = dict(reply.headers)
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(body, str):
                    body = body.encode()
                body = body or b""
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def reply_for(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            route = self.routes.get((request.method, request.path))
            if route is None:
                return Reply(404, {"error": f"no route for {request.method} {request.path}"})
            if callable(route):
                return route(request)
            if isinstance(route, list):
                return route.pop(0) if len(route) > 1 else route[0]
            return route

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where (most likely) nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
