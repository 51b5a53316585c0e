"""A throwaway Redis server on 127.0.0.1 for tests (Debian's redis-server, free port, no
persistence): a real dependency to probe and, later, to remediate."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.postgres import free_port


@dataclass
class Redis:
    port: int
    process: subprocess.Popen
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def command(self, *words: str) -> str:
        """One inline command; its first reply line (``+PONG``, ``-ERR ...``)."""
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall(" ".join(words).encode() + b"\r\n")
            return sock.recv(4096).split(b"\r\n", 1)[0].decode()


@contextlib.contextmanager
def running_redis(*options: str):
    """Start redis-server with ``options`` (e.g. ``--requirepass``, ``--maxmemory``); stop it on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (scripts/bootstrap installs Debian's redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="runbook-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--daemonize", "no", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Redis(port=port, process=process)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                server.command("PING")
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
