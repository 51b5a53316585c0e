# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which names hold a secret: the one rule of the collection and the ``runbook`` CLI.

Private to this collection (the leading underscore): no compatibility promise.

A name (a dict key, an extra var, an environment variable) holds a secret when it
contains, in any case: ``passw`` (password, passwd), ``passphrase``, ``pass`` as a word
of its own (``db_pass``, ``PASS2``; not ``passed`` or ``bypass``), ``pwd``, ``secret``,
``token``, ``api_key``/``api-key``/``apikey``, ``authorization``, ``bearer``,
``credential``, ``private_key``, ``ssh_key``, ``routing_key`` (PagerDuty's) or
``webhook`` (a webhook URL carries its token).

Used by ``_timeline`` (what its masking hides) and by the CLI, which loads this file BY
PATH (secret extra vars kept off disk, secret ``RUNBOOK_*`` variables never passed to a
child process). Hence the standard library only and no Ansible import.
"""

from __future__ import annotations

import re

# The words, as a regular expression: _timeline also embeds them in its inline pattern
# (password=..., "token": "...").
SECRET_WORDS = (r'passw|passphrase|(?<![a-z])pass(?![a-z])|pwd|secret|token|api[_-]?key|apikey'  # noqa: S105
                r'|authorization|bearer|credential|private[_-]?key|ssh[_-]?key|routing[_-]?key|webhook')
SECRET_NAME_RE = re.compile(r'(?:%s)' % SECRET_WORDS, re.IGNORECASE)


def is_secret_name(name):
    """Whether ``name`` names a secret (see the module's documentation)."""
    return SECRET_NAME_RE.search(str(name)) is not None
