"""An SMTP sink on 127.0.0.1 for tests of email pages (stdlib socketserver, port 0).

It speaks enough SMTP for smtplib: EHLO/HELO, AUTH PLAIN (the credentials are checked
against ``user``/``password`` when given), MAIL, RCPT, DATA, RSET, NOOP, QUIT. No
STARTTLS. Every accepted message is kept in ``messages`` as an email.message.Message
with its envelope.
"""

from __future__ import annotations

import base64
import email
import socketserver
import threading
from dataclasses import dataclass, field
from email.message import Message


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message
    user: str | None = None  # who logged in, if anyone


@dataclass
class SmtpSink:
    user: str | None = None
    password: str | None = None
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self):
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self):
                self.reply("220 sink ESMTP")
                sender, recipients, user = None, [], None
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    verb = line.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-sink")
                        self.reply("250 AUTH PLAIN")
                    elif verb == "HELO":
                        self.reply("250 sink")
                    elif verb == "AUTH":
                        parts = line.split()
                        if len(parts) < 3 or parts[1].upper() != "PLAIN":
                            self.reply("504 only AUTH PLAIN with an initial response")
                            continue
                        _identity, name, secret = base64.b64decode(parts[2]).decode().split("\0")
                        if sink.user is not None and (name, secret) != (sink.user, sink.password):
                            self.reply("535 authentication failed")
                            continue
                        user = name
                        self.reply("235 ok")
                    elif verb == "MAIL":
                        sender, recipients = line.split(":", 1)[1].strip().strip("<>"), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 ok")
                    elif verb == "DATA":
                        if sink.user is not None and user is None:
                            self.reply("530 authentication required")
                            continue
                        self.reply("354 go on")
                        lines = []
                        while True:
                            body = self.rfile.readline()
                            if body in (b".\r\n", b".\n", b""):
                                break
                            lines.append(body[1:] if body.startswith(b"..") else body)
                        sink.messages.append(Received(sender or "", recipients,
                                                      email.message_from_bytes(b"".join(lines)), user))
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.host, self.port = self.server.server_address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
