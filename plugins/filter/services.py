# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over the inventory's service descriptions (``runbook_services``)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

MANAGERS = ("systemd", "docker", "compose")


def select_service(services, name=""):
    if not isinstance(services, list) or not all(isinstance(item, dict) for item in services):
        raise AnsibleFilterError("runbook_services must be a list of service descriptions (dicts)")
    if not services:
        raise AnsibleFilterError("this host describes no services (runbook_services is empty or undefined)")
    if not name:
        if len(services) == 1:
            return _checked(services[0])
        names = ", ".join(str(item.get("name")) for item in services)
        raise AnsibleFilterError("this host has several services (%s): pass -e service=NAME" % names)
    for item in services:
        if item.get("name") == name:
            return _checked(item)
    names = ", ".join(str(item.get("name")) for item in services)
    raise AnsibleFilterError("unknown service %r on this host (known: %s)" % (name, names))


def _checked(service):
    manager = service.get("manager")
    if manager not in MANAGERS:
        raise AnsibleFilterError(
            "service %r: manager must be one of %s, not %r" % (service.get("name"), ", ".join(MANAGERS), manager)
        )
    required = {"systemd": "unit", "docker": "container", "compose": "project_src"}[manager]
    if not service.get(required):
        raise AnsibleFilterError("service %r (manager %s) needs %r" % (service.get("name"), manager, required))
    return service


class FilterModule:
    def filters(self):
        return {"select_service": select_service}
