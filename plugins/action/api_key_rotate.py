# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of runbook.remediation.api_key_rotate: rotate on the target, keep the key here.

The module returns the new key to this plugin only (``_new_key``); the plugin takes it
out of the result at once, writes it to ``key_file`` on the controller when asked (mode
0600, Vault-encrypted with ``vault_password_file``) and returns nothing of it. The key
never reaches a registered variable, a callback, the timeline or the output.
"""

from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.runbook.remediation.plugins.module_utils import _timeline


def inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def write_key(path, key, vault_password_file=None):
    """Write the key (Vault-encrypted when a password file is given) to ``path``, mode 0600."""
    data = (key + '\n').encode()
    if vault_password_file:
        from ansible.constants import DEFAULT_VAULT_ID_MATCH
        from ansible.parsing.vault import VaultLib, VaultSecret

        with open(vault_password_file, 'rb') as handle:
            password = handle.read().strip()
        if not password:
            raise AnsibleActionFail('api_key_rotate: the vault password file is empty')
        data = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password))]).encrypt(key)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.runbook-key-', dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):

    _VALID_ARGS = frozenset(('service', 'consumers', 'env_file', 'variable', 'verify_url', 'key_bytes', 'min_interval',
                             'verify_timeout', 'stop_timeout', 'health_timeout', 'key_file', 'vault_password_file'))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        key_file = args.pop('key_file', None) or None
        vault_password_file = args.pop('vault_password_file', None) or None
        if key_file:
            key_file = os.path.abspath(os.path.expanduser(str(key_file)))
            if inside(key_file, _timeline.state_dir()):
                raise AnsibleActionFail('api_key_rotate: key_file must not be inside the runbook state directory '
                                        '(%s): it keeps run records, not secrets' % _timeline.state_dir())
            if os.path.isdir(key_file):
                raise AnsibleActionFail('api_key_rotate: key_file %s is a directory' % key_file)
        if vault_password_file and not os.path.isfile(os.path.expanduser(str(vault_password_file))):
            raise AnsibleActionFail('api_key_rotate: vault_password_file %s does not exist' % vault_password_file)
        returned = self._execute_module(module_name='runbook.remediation.api_key_rotate', module_args=args,
                                        task_vars=task_vars or {})
        key = returned.pop('_new_key', None)
        returned.pop('invocation', None)
        result.update(returned)
        if key and key_file:
            try:
                write_key(key_file, key, os.path.expanduser(str(vault_password_file)) if vault_password_file else None)
                result['key_file'] = key_file
                how = ' (vault)' if vault_password_file else ''
                result.setdefault('actions', []).append('wrote the new key to %s on the controller%s' % (key_file, how))
            except (OSError, AnsibleActionFail) as exc:
                result.setdefault('findings', []).append(
                    'the new key is in place but could not be written to %s: %s' % (key_file, exc))
        del key
        return result
