# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller-side helpers of the scenario frame's action plugins.

The frame's bookkeeping (admission, silences, PromQL checks, the result) runs inside
ansible-playbook's worker, not as modules: no AnsiballZ build, no fork of a Python, no
round trip. What needs Ansible objects lives here; the rules live in
``module_utils/_scenario.py``.

Private to this collection (the leading underscore): no compatibility promise.
"""

from __future__ import annotations

import os
import time
import uuid

import yaml

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars

from ansible_collections.runbook.remediation.plugins.module_utils import _scenario
from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpClient

COLLECTION_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FRAME_FACT = 'runbook_frame'
RESULT_FACT = 'runbook_result'


# libyaml parses the catalogue ~10x faster than pure Python; each action of each host
# reads it, so it is parsed once per worker process and again only when the file changes.
_YAML_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
_CATALOGUE_CACHE = {}


def _load_yaml(text):
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader (C or Python)


def catalogue_entry(name):
    """The catalogue's entry for scenario ``name`` (meta/scenarios.yml of this collection)."""
    path = _scenario.catalogue_path(COLLECTION_ROOT)
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    entries = _CATALOGUE_CACHE.get(key)
    if entries is None:
        entries = _scenario.load_catalogue(path, _load_yaml)
        _CATALOGUE_CACHE.clear()
        _CATALOGUE_CACHE[key] = entries
    if name not in entries:
        raise ValueError('scenario %r is not in the catalogue (known: %s)' % (name, ', '.join(sorted(entries))))
    return entries[name]


def role_prefix(role):
    """``runbook.remediation.service_restart`` -> ``service_restart`` (the role's variable prefix)."""
    return str(role).rsplit('.', 1)[-1]


def extra_var_names(loader):
    """Names of the extra vars of this run (-e, AWX's extra vars, a rulebook's)."""
    try:
        return list(load_extra_vars(loader).keys())
    except Exception:  # pylint: disable=broad-except  # noqa: BLE001 - unreadable -e was reported by ansible already
        return []


def run_id(clean, task_vars):
    """One id per playbook run: the entrance's (CLI, AWX, rulebook), else ansible-playbook's
    process and its start time, which every worker of the run shares."""
    if clean.get('runbook_run_id'):
        return clean['runbook_run_id']
    from_env = os.environ.get('RUNBOOK_RUN_ID', '')
    if from_env and _scenario.RUN_ID_RE.match(from_env):
        return from_env
    job = task_vars.get('awx_job_id') or task_vars.get('tower_job_id')
    if isinstance(job, int) or (isinstance(job, str) and job.isdigit()):
        return 'awx-%s' % job
    parent = os.getppid()
    try:
        with open('/proc/%d/stat' % parent, 'rb') as handle:
            started = handle.read().rsplit(b')', 1)[1].split()[19].decode()
        return 'ansible-playbook-%d-%s' % (parent, started)
    except (OSError, IndexError):
        return 'ansible-playbook-%s' % uuid.uuid4().hex[:12]


def as_bool(value, default=False):
    if value is None or value == '':
        return default
    try:
        return boolean(value, strict=True)
    except TypeError:
        return default


class FrameAction(ActionBase):
    """What the three frame actions share: no connection, no file transfer, the templar
    used only for the owner's configuration, never for request data."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def template_var(self, task_vars, name, default=None):
        """A configuration variable (inventory, play, role defaults), templated."""
        if name not in task_vars:
            return default
        value = self._templar.template(task_vars[name])
        return default if value is None else value

    def frame(self, task_vars):
        """The frame fact scenario_request/scenario_begin left (plain data)."""
        value = task_vars.get(FRAME_FACT)
        return dict(value) if isinstance(value, dict) else {}

    def alertmanager_client(self, url, settings, task_vars):
        """An HTTP client for Alertmanager. Its credentials are read from variables
        (runbook_alertmanager_username/password/token), never passed as task args, so
        they appear in no task result or log."""
        return HttpClient(base_url=url, timeout=float(settings.get('timeout') or 10),
                          validate_certs=as_bool(settings.get('validate_certs', True), True),
                          url_username=self.template_var(task_vars, 'runbook_alertmanager_username') or None,
                          url_password=self.template_var(task_vars, 'runbook_alertmanager_password') or None,
                          bearer_token=self.template_var(task_vars, 'runbook_alertmanager_token') or None)

    @staticmethod
    def now():
        return time.time()
