# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The env_toggle role's checks and decision, as a pure function: which of a service's declared
settings (environment variables) a request may change, what changes, what to record for a
revert and what to write."""

from __future__ import annotations

import json
import re

from ansible_collections.runbook.remediation.plugins.module_utils._secrets import is_secret_name

# A variable name, and a value that is plain data in a systemd Environment= line, a Compose
# file and a container's environment: no whitespace, quotes, `$` (Compose interpolation),
# `%` (systemd specifiers), braces (templates), backslashes or newlines. Empty is allowed.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ENV_VALUE = re.compile(r"^[A-Za-z0-9_.:/@+,=*-]{0,256}$")


def declared_settings(service):
    """``{NAME: allowed values or None}`` from the service's ``settings`` (a list of names, or
    of ``{name, values}``). Raises ValueError on a malformed description."""
    raw = (service or {}).get("settings") or []
    if not isinstance(raw, list):
        raise ValueError("settings must be a list of variable names (or {name, values})")
    declared = {}
    for item in raw:
        name, values = (item, None) if isinstance(item, str) else (
            (item.get("name"), item.get("values")) if isinstance(item, dict) else (None, None))
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ValueError("settings: %r is not an environment variable name" % (name,))
        if values is not None and (not isinstance(values, list)
                                   or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)):
            raise ValueError("settings: the values of %s must be a list of plain values" % name)
        declared[name] = None if values is None else [str(v) for v in values]
    return declared


def env_request(request):
    """The request as ``{NAME: value}``: a mapping, or a JSON object's text (a survey field)."""
    if request in (None, "", {}):
        return {}
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError:
            raise ValueError("env_toggle_set must be a mapping {NAME: value} (or its JSON text)") from None
    if not isinstance(request, dict):
        raise ValueError("env_toggle_set must be a mapping {NAME: value}")
    clean = {}
    for name, value in request.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ValueError("env_toggle_set: %s is not an environment variable name" % _show(name))
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError("env_toggle_set: the value of %s must be text or a whole number" % name)
        value = str(value)
        if not ENV_VALUE.fullmatch(value):
            raise ValueError("env_toggle_set: the value of %s must be plain (letters, digits, _.:/@+,=*-, at most 256),"
                             " not %s" % (name, _show(value)))
        clean[name] = value
    return clean


def _show(value):
    text = str(value)
    return repr(text) if re.match(r"^[A-Za-z0-9 _.:/@+,=*-]{0,64}$", text) else "(%d characters)" % len(text)


def _with_lines(plan):
    """Each change as one line of a message: ``NAME=new (was old)``."""
    plan["lines"] = ["%s=%s (was %s)" % (c["name"], _text(c["to"]), _text(c["from"])) for c in plan["changes"]]
    return plan


def _text(value):
    return "(unset)" if value is None else value


def env_toggle_plan(service, request=None, revert=False, current=None, record=None):
    """Check the request against the service's declared settings and, given what the service
    runs with (``current``, {NAME: value or None}) and the revert record kept on the target
    (``record``, {NAME: previous value or None}), the plan. See settings.yml."""
    plan = {"error": "", "set": {}, "changes": [], "lines": [], "env": {}, "unset": [], "record": {},
            "remove_dropin": False, "nothing": ""}
    try:
        declared = declared_settings(service)
        wanted = env_request(request)
    except ValueError as exc:
        plan["error"] = str(exc)
        return plan
    name = (service or {}).get("name", "the service")
    if revert and wanted:
        plan["error"] = "env_toggle_set and env_toggle_revert exclude each other: revert restores what was recorded"
        return plan
    if not revert and not wanted:
        plan["error"] = "nothing to set: give env_toggle_set {NAME: value} (or env_toggle_revert=true)"
        return plan
    for var, value in sorted(wanted.items()):
        if is_secret_name(var):
            plan["error"] = "%s names a secret: rotate it with key-rotation, never through a setting" % var
            return plan
        if var not in declared:
            plan["error"] = ("%s is not a setting of %s (declared: %s): only the service description's settings"
                             " may be changed" % (var, name, ", ".join(sorted(declared)) or "none"))
            return plan
        if declared[var] is not None and value not in declared[var]:
            plan["error"] = "%s=%s is not an allowed value (allowed: %s)" % (var, value, ", ".join(declared[var]))
            return plan
    plan["set"] = wanted
    if current is None:  # the checks only (validate)
        return plan

    current = current if isinstance(current, dict) else {}
    record = {k: (None if v is None else str(v)) for k, v in (record or {}).items()
              if isinstance(k, str) and ENV_NAME.fullmatch(k)} if isinstance(record, dict) else {}
    if revert:
        if not record:
            plan["nothing"] = "no recorded change of %s to revert" % name
            return plan
        plan["changes"] = [{"name": k, "from": current.get(k), "to": v} for k, v in sorted(record.items())
                           if current.get(k) != v]
        plan["env"] = {k: v for k, v in record.items() if v is not None}
        plan["unset"] = sorted(k for k, v in record.items() if v is None)
        plan["remove_dropin"] = True
        if not plan["changes"]:
            plan["nothing"] = "%s runs with the recorded values already" % name
        return _with_lines(plan)

    plan["changes"] = [{"name": k, "from": current.get(k), "to": v} for k, v in sorted(wanted.items())
                       if current.get(k) != v]
    if not plan["changes"]:
        plan["nothing"] = "%s runs with %s already" % (name, ", ".join("%s=%s" % kv for kv in sorted(wanted.items())))
        return plan
    # The first value seen is what a revert restores: a second toggle keeps it.
    plan["record"] = dict(record)
    for change in plan["changes"]:
        plan["record"].setdefault(change["name"], change["from"])
    # Everything this role changed so far, as it should be now (the drop-in holds them all).
    plan["env"] = {k: wanted.get(k, current.get(k)) for k in plan["record"]}
    plan["env"] = {k: v for k, v in plan["env"].items() if v is not None}
    return _with_lines(plan)


class FilterModule:
    def filters(self):
        return {"env_toggle_plan": env_toggle_plan}
