# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over the inventory's service descriptions (``runbook_services``)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.runbook.remediation.plugins.module_utils._secrets import is_secret_name
from ansible_collections.runbook.remediation.plugins.module_utils._service import compose_project as _compose_project

MANAGERS = ("systemd", "docker", "compose", "kubernetes")


def public_service(service):
    """The description without its secrets (database.password, tokens, API keys...), at
    any depth: what may become a fact, a registered result or an event."""
    if isinstance(service, dict):
        return {key: public_service(value) for key, value in service.items() if not is_secret_name(key)}
    if isinstance(service, list):
        return [public_service(item) for item in service]
    return service


def select_service(services, name="", secrets=False):
    """One service of a host (by name, or the only one); its secrets are left out unless
    ``secrets`` (only for a lazily templated variable that hands one to a module)."""
    return _select(services, name) if secrets else public_service(_select(services, name))


def service_dependencies(services, service):
    """The descriptions (secrets left out) of ``service``'s ``depends_on``, from the same
    host's services; a name that is not described there is an error."""
    names = service.get("depends_on") or [] if isinstance(service, dict) else []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise AnsibleFilterError("service %r: depends_on must be a list of service names" % service.get("name"))
    return [select_service(services, name) for name in names]


def compose_project(service):
    """The Compose project of a service description: its ``project``, else the name Compose
    derives from ``project_src`` (the label ``com.docker.compose.project`` of its containers)."""
    if not isinstance(service, dict):
        raise AnsibleFilterError("compose_project expects a service description (a dict)")
    return _compose_project(service)


def _select(services, name=""):
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
    required = {"systemd": "unit", "docker": "container", "compose": "project_src", "kubernetes": "deployment"}[manager]
    if not service.get(required):
        raise AnsibleFilterError("service %r (manager %s) needs %r" % (service.get("name"), manager, required))
    return service


class FilterModule:
    def filters(self):
        return {"select_service": select_service, "public_service": public_service,
                "service_dependencies": service_dependencies, "compose_project": compose_project}
