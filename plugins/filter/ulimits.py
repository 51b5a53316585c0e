# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The decision of the ulimit_raise role, as a pure function: which limits to set, whether
the service's configuration must change, whether a restart must apply it, what to refuse."""

from __future__ import annotations

import math

from ansible.errors import AnsibleFilterError

UNLIMITED = -1
ITEMS = ("nofile", "nproc")


def _at_least(current, wanted):
    """A limit of ``current`` gives at least ``wanted`` (-1 is unlimited)."""
    return current == UNLIMITED or current >= wanted


def _pair(value, what):
    try:
        return {"soft": int(value["soft"]), "hard": int(value["hard"])}
    except (KeyError, TypeError, ValueError):
        raise AnsibleFilterError(
            "ulimit_plan: %s must have integer soft and hard limits, got %r" % (what, value)) from None


def ulimit_plan(probe, nofile=0, nproc=0, factor=2.0, nofile_max=65536, pressure=False):
    """The plan for one process (see ulimit_plan.yml for the input and the result)."""
    if not isinstance(probe, dict):
        raise AnsibleFilterError("ulimit_plan expects the probe of a process (a dict)")
    nofile, nproc, nofile_max, factor = int(nofile), int(nproc), int(nofile_max), float(factor)
    live = {item: _pair(probe.get(item), item) for item in ITEMS}
    configured = {item: _pair((probe.get("configured") or {}).get(item), "configured " + item) for item in ITEMS}
    ceilings = probe.get("ceilings") or {}

    plan = {"want": {}, "changes": {}, "was": {}, "configure": False, "restart": False, "refused": [], "escalate": "",
            "notes": []}

    if nofile > 0:
        plan["want"]["nofile"] = nofile
    elif pressure:
        soft = live["nofile"]["soft"]
        bounds = [(math.ceil(soft * factor), "%d x %g" % (soft, factor)),
                  (nofile_max, "ulimit_raise_nofile_max")]
        ceiling = (ceilings.get("nofile") or {}).get("value", UNLIMITED)
        if ceiling != UNLIMITED:
            bounds.append((int(ceiling), "the platform ceiling: %s" % ceilings["nofile"].get("reason", "?")))
        target, why = min(bounds, key=lambda pair: pair[0])
        if soft == UNLIMITED or target <= soft:
            plan["escalate"] = (
                "nofile is already %s, the most allowed (%s): raising it cannot help, look for a descriptor leak"
                % ("unlimited" if soft == UNLIMITED else soft, why))
        else:
            plan["want"]["nofile"] = target
            plan["notes"].append("new nofile %d (%s)" % (target, why))
    if nproc > 0:
        plan["want"]["nproc"] = nproc

    for item, wanted in sorted(plan["want"].items()):
        ceiling = (ceilings.get(item) or {}).get("value", UNLIMITED)
        if ceiling != UNLIMITED and wanted > int(ceiling):
            plan["refused"].append("requested %s %d is above the platform ceiling %d (%s)"
                                   % (item, wanted, int(ceiling), ceilings[item].get("reason", "?")))
    if plan["refused"]:
        return plan

    for item, wanted in sorted(plan["want"].items()):
        now, conf = live[item], configured[item]
        live_ok, conf_ok = _at_least(now["soft"], wanted), _at_least(conf["soft"], wanted)
        if live_ok and conf_ok:
            plan["notes"].append("%s is already %s (wanted %d): left alone, never lowered"
                                 % (item, "unlimited" if now["soft"] == UNLIMITED else now["soft"], wanted))
            continue
        hard = now["hard"] if _at_least(now["hard"], wanted) else wanted
        plan["changes"][item] = {"soft": wanted, "hard": hard}
        plan["was"][item] = now
        plan["configure"] = plan["configure"] or not conf_ok
        plan["restart"] = plan["restart"] or not live_ok
    return plan


class FilterModule:
    def filters(self):
        return {"ulimit_plan": ulimit_plan}
