"""The collection's one secret-name rule (_secrets.py) and the masking that uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _secrets
from ansible_collections.runbook.remediation.plugins.module_utils import _timeline as tl

SECRET_NAMES = [
    "password", "PASSWORD", "db_password", "url_password", "passwd", "mysql_passwd", "pass", "db_pass", "DB_PASS",
    "pass2", "passphrase", "pwd", "db_pwd", "secret", "client_secret", "token", "access_token", "GITHUB_TOKEN",
    "api_key", "api-key", "apikey", "ApiKey", "X-Api-Key", "authorization", "Authorization", "bearer",
    "bearer_token", "credential", "credentials", "aws_credentials", "private_key", "private-key", "privatekey",
    "ssh_key", "ssh-key", "sshkey", "webhook", "webhook_url", "slack_webhook", "RUNBOOK_WEBHOOK_URL",
]
PLAIN_NAMES = [
    "service", "host", "hosts", "limit", "scenario", "timeout", "user", "username", "url", "key", "public_key",
    "ssh_user", "keyboard", "monkey", "passed", "passes", "passing", "bypass", "compass", "escalations_passed",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name):
    assert _secrets.is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_plain_names(name):
    assert not _secrets.is_secret_name(name)


def test_the_timeline_masks_by_the_same_rule():
    assert tl.SECRET_KEY_RE is _secrets.SECRET_NAME_RE


@pytest.mark.parametrize(("name", "secret"), [(n, True) for n in SECRET_NAMES] + [(n, False) for n in PLAIN_NAMES])
def test_masking_follows_the_rule(name, secret):
    assert (tl.mask({name: "value-1234"}) == {name: tl.MASK}) is secret
    assert (tl.mask(f"{name}=value-1234") == f"{name}={tl.MASK}") is secret
    assert tl.secret_values({name: "value-1234"}) == ({"value-1234"} if secret else set())


def test_loads_by_path_without_ansible():
    """The CLI loads the file by path: it must import with the standard library only."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('secrets_rule', {str(Path(_secrets.__file__))!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert not [m for m in sys.modules if m == 'ansible' or m.startswith('ansible.')], 'ansible imported'\n"
        "print(module.is_secret_name('db_pass'), module.is_secret_name('bypass'))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]
