"""Send a rendered notification to a Slack-compatible webhook.

The body is Slack's incoming-webhook JSON, ``{"text": ...}``, which Slack, Mattermost,
Rocket.Chat and most chat bridges accept. The webhook URL itself is a secret (Slack puts
its token in the path): messages and the timeline show only its scheme, host and port.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

from runbook_remediation.errors import BadInput, Unavailable

TIMEOUT = 10.0
ENV = "RUNBOOK_WEBHOOK_URL"


def webhook_url(given: str | None) -> str | None:
    """--notify URL, else $RUNBOOK_WEBHOOK_URL; checked (BadInput when it is no http(s) URL)."""
    url = given or os.environ.get(ENV) or None
    if url is None:
        return None
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadInput(f"webhook URL {where(url)!r} is not an http(s) URL with a host")
    return url.strip()


def where(url: str) -> str:
    """Only scheme://host[:port] of a webhook URL: the rest may hold its token."""
    try:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname or "?"
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:
        return "(unparsable URL)"
    return f"{parsed.scheme}://{host}{port}"


def send(url: str, text: str, timeout: float = TIMEOUT) -> int:
    """POST ``{"text": text}``; returns the HTTP status. Unavailable when it is not 2xx."""
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - checked http(s)
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"the webhook at {where(url)} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Unavailable(f"the webhook at {where(url)} is unreachable ({reason})") from exc
