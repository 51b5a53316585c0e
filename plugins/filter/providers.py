# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The provider branch of the release_rollback role's decision, as a pure function: is the
service's upstream provider failing, and may its environment be switched to the fallback."""

from __future__ import annotations

import re

# An environment variable name, and a provider value that is safe as plain data in a systemd
# Environment= line, a Compose file and a container's environment: no whitespace, quotes,
# `$` (Compose interpolation), `%` (systemd specifiers), braces (templates) or newlines.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PROVIDER_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$")


def provider_switch(provider, health=None, fallback=""):
    """The plan for one service (see provider_switch.yml for the input and the result)."""
    conf = provider if isinstance(provider, dict) else {}
    body = health if isinstance(health, dict) else {}
    env = conf.get("env") or ""
    component = conf.get("component") or "provider"
    key = conf.get("health_key") or "upstream_provider"
    wanted = str(fallback or conf.get("fallback") or "")
    current = body.get(key)
    current = current if isinstance(current, str) and current else None
    states = [c for c in body.get("components") or [] if isinstance(c, dict) and c.get("name") == component]
    failing = [c for c in states if c.get("status") != "healthy"]

    plan = {"configured": bool(conf), "env": env, "failing": bool(failing), "current": current,
            "fallback": wanted or None, "switch": False, "escalate": "",
            "evidence": "; ".join("%s: %s" % (c.get("status"), c.get("detail", "")) for c in failing)}
    if not failing:
        return plan
    who = "provider %s" % current if current else "the upstream provider"
    if not conf or not ENV_NAME.match(env):
        plan["escalate"] = "%s is failing and the service describes no provider variable to switch" % who
    elif not wanted:
        plan["escalate"] = "%s is failing and no fallback is configured (provider.fallback)" % who
    elif not PROVIDER_VALUE.match(wanted):
        plan["escalate"] = "%s is failing and the fallback %r is not a provider name" % (who, wanted)
    elif current is not None and not PROVIDER_VALUE.match(current):
        plan["escalate"] = "the upstream provider is failing and the health endpoint names an unexpected one"
        plan["current"] = None
    elif current is None:
        plan["escalate"] = ("the upstream provider is failing and the health endpoint does not say which one "
                            "runs (%s): cannot tell whether the fallback is in use" % key)
    elif current == wanted:
        plan["escalate"] = "%s is failing and it is the fallback already: nothing left to switch to" % who
    else:
        plan["switch"] = True
    return plan


class FilterModule:
    def filters(self):
        return {"provider_switch": provider_switch}
