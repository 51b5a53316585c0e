# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Load a play's plugins once, in ansible-playbook's main process, before it forks.

ansible-playbook forks a worker for every task and host. A plugin the main process has
not loaded is loaded in each of those workers again: its Python module imported, and for
a connection or shell plugin its DOCUMENTATION parsed into configuration definitions.
Loaded here, before the first fork, every worker inherits it. On ten lab hosts that was
about 0.1 s of the controller's CPU per host and run (``bench/fanout.py``), on a controller
whose two cores the ten hosts' workers share.

Called by the ``runbook.remediation.timeline`` callback at each play's start (the CLI, AWX
and rulebooks enable it). Best effort: whatever cannot be loaded is left to the workers,
which report it as they always would.

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

from ansible import constants as C
from ansible.plugins.loader import action_loader, connection_loader, shell_loader

from ansible_collections.runbook.remediation.plugins.plugin_utils import _frame

# The frame's controller steps, and the ansible.builtin actions its tasks and the roles'
# hot paths use (``normal`` runs every module).
FRAME_ACTIONS = (
    'runbook.remediation.scenario_request',
    'runbook.remediation.scenario_begin',
    'runbook.remediation.scenario_end',
    'ansible.builtin.normal',
    'ansible.builtin.set_fact',
    'ansible.builtin.debug',
    'ansible.builtin.fail',
    'ansible.builtin.assert',
    'ansible.builtin.validate_argument_spec',
)


def _plain_name(value):
    """A plugin name that is not a template (a templated one is resolved per host, in the worker)."""
    return value if isinstance(value, str) and value and '{{' not in value and '{%' not in value else None


def connection_names(play):
    """The connection plugins the play's hosts use: each host's ``ansible_connection`` (its own
    or a group's), else the play's ``connection`` (``-c``, by default ssh)."""
    default = _plain_name(getattr(play, 'connection', None)) or C.DEFAULT_TRANSPORT
    inventory = getattr(play.get_variable_manager(), '_inventory', None)  # no public accessor
    if inventory is None:
        return {default}
    names = set()
    for host in inventory.get_hosts(play.hosts):
        found = [_plain_name(source.get('ansible_connection'))
                 for source in [host.get_vars()] + [group.get_vars() for group in host.get_groups()]]
        names.add(next((name for name in found if name), default))
    return names


def preload(play, scenario=None):
    """Load the connection and shell plugins of ``play``'s hosts and, for the play of
    ``scenario`` (a scenario frame's), the frame's actions and its catalogue. Returns the
    names loaded."""
    loaded = []
    for name in sorted(connection_names(play)):
        if connection_loader.get(name, class_only=True) is not None:
            loaded.append(name)
    for name in ('ansible.builtin.sh',):  # the shell every connection above uses by default
        if shell_loader.get(name) is not None:
            loaded.append(name)
    if scenario:
        for name in FRAME_ACTIONS:
            if action_loader.get(name, class_only=True) is not None:
                loaded.append(name)
        _frame.catalogue_entry(scenario)  # parsed once here, not in each action's worker
        loaded.append('meta/scenarios.yml')
    return loaded
