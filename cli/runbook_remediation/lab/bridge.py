"""A TCP <-> Unix socket relay: how the lab reaches a host that has a network of its own.

The lab's security host runs with ``--network none``: its own network namespace, loopback
only, so the firewall scenarios can change its iptables rules without ever touching this
machine's. Prometheus and the lab's probes still need its demo service, so two relays
carry the traffic through a Unix socket in a directory both sides mount (a Unix socket is
a file: it crosses network namespaces, TCP does not)::

    this machine: python3 bridge.py --listen tcp:127.0.0.1:PORT --to unix:/bridge/demo.sock
    the host:     python3 bridge.py --listen unix:/bridge/demo.sock --to tcp:127.0.0.1:PORT

Inside the host the service sees these connections coming from 127.0.0.1: the lab's
management traffic, which the host's allow-list keeps. The standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading

CHUNK = 65536


def address(text: str) -> tuple[int, str | tuple[str, int]]:
    """``tcp:HOST:PORT`` or ``unix:PATH`` -> (family, address)."""
    kind, _sep, rest = text.partition(":")
    if kind == "unix" and rest.startswith("/"):
        return socket.AF_UNIX, rest
    if kind == "tcp":
        host, _sep, port = rest.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return socket.AF_INET, (host, int(port))
    raise argparse.ArgumentTypeError(f"expected tcp:HOST:PORT or unix:/PATH, not {text!r}")


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until EOF, then half-close the other side."""
    with contextlib.suppress(OSError):
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def serve(client: socket.socket, target: tuple[int, str | tuple[str, int]]) -> None:
    family, where = target
    upstream = socket.socket(family, socket.SOCK_STREAM)
    try:
        upstream.settimeout(5)
        upstream.connect(where)
        upstream.settimeout(None)
    except OSError:
        upstream.close()
        client.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def listen(spec: tuple[int, str | tuple[str, int]]) -> socket.socket:
    family, where = spec
    server = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(where))
    else:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(where)
    server.listen(64)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, required=True)
    parser.add_argument("--to", type=address, required=True)
    args = parser.parse_args(argv)
    server = listen(args.listen)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            client, _peer = server.accept()
            threading.Thread(target=serve, args=(client, args.to), daemon=True).start()
    finally:
        server.close()
        if args.listen[0] == socket.AF_UNIX:
            with contextlib.suppress(OSError):
                os.unlink(str(args.listen[1]))


if __name__ == "__main__":
    sys.exit(main())
