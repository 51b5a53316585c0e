"""Send a rendered notification to a Slack-compatible webhook.

The body is Slack's incoming-webhook JSON, ``{"text": ...}``, which Slack, Mattermost,
Rocket.Chat and most chat bridges accept. The webhook URL itself is a secret (Slack puts
its token in the path): messages and the timeline show only its scheme, host and port.
The text sent has no control characters and Slack's ``&``, ``<`` and ``>`` escaped.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

from runbook_remediation.errors import BadInput, Unavailable
from runbook_remediation.terminal import clean, one_line

TIMEOUT = 10.0
ENV = "RUNBOOK_WEBHOOK_URL"
# The security channel: security scenarios' incident notifications go here as well.
SECURITY_ENV = "RUNBOOK_SECURITY_WEBHOOK_URL"
# http.client refuses these anywhere in a URL (and its error would quote the path).
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f-\x9f]|\s")


def webhook_url(given: str | None) -> str | None:
    """--notify URL, else $RUNBOOK_WEBHOOK_URL, checked: BadInput unless it is an http(s)
    URL with a host that urllib can send to. Call it before acting: a bad URL is bad input,
    not a failed delivery afterwards. The message shows only :func:`where`."""
    url = given or os.environ.get(ENV) or None
    if url is None:
        return None
    url = url.strip()
    problem = _problem(url)
    if problem:
        shown = where(url)
        to = f" to {shown}" if shown.startswith("http") else ""
        raise BadInput(f"the webhook URL{to} (--notify or ${ENV}) {problem}")
    return url


def security_webhook_url() -> str | None:
    """$RUNBOOK_SECURITY_WEBHOOK_URL, checked like :func:`webhook_url`: the security
    channel, told about the incidents of the catalogue's ``category: security`` scenarios
    in addition to the normal webhook. None when unset."""
    url = os.environ.get(SECURITY_ENV) or None
    if url is None:
        return None
    url = url.strip()
    problem = _problem(url)
    if problem:
        shown = where(url)
        to = f" to {shown}" if shown.startswith("http") else ""
        raise BadInput(f"the security webhook URL{to} (${SECURITY_ENV}) {problem}")
    return url


def _problem(url: str) -> str | None:
    """What makes ``url`` unusable for :func:`send`, in words that quote none of it."""
    if _UNSENDABLE.search(url):
        return "contains a space or a control character (percent-encode them)"
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:
        return "cannot be parsed (a bracketed IPv6 host that is not one?)"
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "is not an http(s) URL with a host"
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port == 0:
        return "has a port that is not a number from 1 to 65535"
    if parsed.username is not None or parsed.password is not None:
        return "holds a user:password@ part, which webhooks do not take (put the token in the path)"
    return None


def where(url: str) -> str:
    """Only scheme://host[:port] of a webhook URL: the rest may hold its token."""
    try:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:
        return "(unparsable URL)"
    if not host:
        return "(URL without a host)"
    if parsed.scheme not in ("http", "https") or _UNSENDABLE.search(f"{host}{port}"):
        return "(not an http(s) URL)"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{parsed.scheme}://{host}{port}"


def message_text(text: str) -> str:
    """``text`` as a chat message: no control characters (tab and newline stay), and
    ``&``, ``<``, ``>`` escaped as Slack asks, so an incident title cannot mention
    ``<!channel>`` or disguise a link."""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def send(url: str, text: str, timeout: float = TIMEOUT) -> int:
    """POST ``{"text": text}`` (as :func:`message_text`); returns the HTTP status.
    Unavailable when it is not 2xx."""
    problem = _problem(url)
    if problem:  # webhook_url() refused it already: never reaches urllib, which would quote it
        raise Unavailable(f"the webhook URL {where(url)} {problem}")
    body = json.dumps({"text": message_text(text)}).encode()
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - checked http(s)
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"the webhook at {where(url)} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Unavailable(f"the webhook at {where(url)} is unreachable ({one_line(reason)})") from exc
    except ValueError as exc:  # http.client.InvalidURL and kin: their text quotes the URL
        raise Unavailable(f"the webhook URL {where(url)} is not usable ({type(exc).__name__})") from exc
