# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""runbook.remediation.alerts: Alertmanager's webhook payload as checked alert events.

An alert is hostile input: its labels and annotations reach the playbook as extra vars
(``ansible_eda.event``), and ansible-core templates extra vars. So this filter keeps only
what the scenarios use, each value checked for its shape with the collection's own rules
(plugins/module_utils/_scenario.py): names ``^[A-Za-z0-9_.-]+$``, label values without
spaces or braces, hex fingerprints, RFC 3339 times. Annotations, the generator URL and
the request headers are dropped.

One event per alert (as eda.builtin.event_splitter makes), with ``meta.hosts`` set to the
alert's ``host`` label (as eda.builtin.insert_hosts_to_meta does) only when that label is
one plain inventory host name: never a pattern (``all``, ``web-*``, ``a,b``), never
missing (an alert without a host would otherwise run on every host), and, when ``hosts``
is given, one of them. An alert that fails any check becomes an event with
``runbook_rejected`` (the reason): the rulebook records and announces it and runs no
scenario. Its ``meta.hosts`` is the inventory's first host (the notice runs on the
controller; ansible-rulebook only limits a run to inventory hosts), or ``localhost``
when no host list is known.

Options:
  hosts: the inventory's host names (a list, or one comma-separated string); when given,
         the host label must be one of them. Default: $RUNBOOK_ALERT_HOSTS, which
         ``runbook watch`` sets from the inventory (ansible-rulebook does not template
         filter options).
  host_label: the label that names the host (default ``host``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

_RULES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..",
                                       "plugins", "module_utils", "_scenario.py"))


def _load_rules():
    spec = importlib.util.spec_from_file_location("runbook_remediation_scenario_rules", _RULES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rules = _load_rules()
# Host names: inventory names, never a pattern (no '*', ',', ':', '!', '&', '~', '[').
HOST_RE = rules.NAME_RE
PATTERN_WORDS = ("all", "ungrouped", "localhost")


def _host_list(hosts: Any) -> set[str] | None:
    if hosts is None or hosts == "":
        return None
    if isinstance(hosts, str):
        return {name.strip() for name in hosts.split(",") if name.strip()}
    return {str(name) for name in hosts}


def _plain_labels(labels: Any) -> dict[str, str]:
    """The labels whose name and value pass the rules, each on its own."""
    plain = {}
    for key, value in (labels.items() if isinstance(labels, dict) else ()):
        try:
            if isinstance(key, str) and rules.LABEL_NAME_RE.match(key):
                plain[key] = rules.check_value(key, value, rules.LABEL_VALUE_RE, "a plain label value")
        except rules.RequestError:
            continue
    return plain


def notice_host(allowed: set[str] | None) -> str:
    """Where a refused alert's notice runs (see the module's documentation)."""
    return min(allowed) if allowed else "localhost"


def check_alert(alert: Any, allowed: set[str] | None, host_label: str = "host") -> dict[str, Any]:
    """One checked alert event; ``runbook_rejected`` says why it cannot run a scenario."""
    if not isinstance(alert, dict):
        return {"runbook_rejected": "an alert must be a JSON object", "meta": {"hosts": [notice_host(allowed)]}}
    event: dict[str, Any] = {"labels": {}, "status": "", "fingerprint": "", "startsAt": ""}
    try:
        checked = rules.check_eda_event({"event": {
            "labels": alert.get("labels") or {}, "status": alert.get("status"),
            "fingerprint": alert.get("fingerprint"), "startsAt": alert.get("startsAt")}})
        event.update(labels=checked["labels"], status=checked["status"], fingerprint=checked["fingerprint"],
                     startsAt=checked["starts_at"])
        if event["status"] not in ("firing", "resolved"):
            raise rules.RequestError(f"alert status must be firing or resolved, got {event['status']!r}")
        if not event["labels"].get("alertname"):
            raise rules.RequestError("the alert has no alertname label")
        host = event["labels"].get(host_label, "")
        if not host:
            raise rules.RequestError(f"the alert has no {host_label} label: refusing to run on every host")
        if not HOST_RE.match(host) or host in PATTERN_WORDS:
            raise rules.RequestError(f"the {host_label} label {rules.echo(host)} is not one inventory host name")
        if allowed is not None and host not in allowed:
            raise rules.RequestError(f"the {host_label} label '{host}' is not a host of the inventory")
    except rules.RequestError as exc:
        # Only checked values travel on (the labels that pass on their own, so the notice
        # can name the alert); the reason names the problem, never the raw text.
        event["labels"] = _plain_labels(alert.get("labels"))
        event["runbook_rejected"] = str(exc)
        event["meta"] = {"hosts": [notice_host(allowed)]}
        return event
    event["meta"] = {"hosts": [host]}
    return event


def main(event: dict[str, Any], hosts: Any = None, host_label: str = "host") -> list[dict[str, Any]]:
    """ansible-rulebook's filter entry point: one event in, one event per alert out."""
    allowed = _host_list(hosts if hosts is not None else os.environ.get("RUNBOOK_ALERT_HOSTS"))
    payload = event.get("payload") if isinstance(event, dict) else None
    alerts = payload.get("alerts") if isinstance(payload, dict) else None
    if not isinstance(alerts, list):
        return [{"runbook_rejected": "not an Alertmanager webhook payload (no alerts list)",
                 "labels": {}, "status": "", "meta": {"hosts": [notice_host(allowed)]}}]
    return [check_alert(alert, allowed, host_label) for alert in alerts]
