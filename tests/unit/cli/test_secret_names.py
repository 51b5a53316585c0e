"""The CLI's three users of the secret-name rule ask the collection's one rule
(plugins/module_utils/_secrets.py): the extra vars kept off disk (with the store and
without it), the ``RUNBOOK_*`` variables kept from children, and the store's masking."""

from __future__ import annotations

import pytest

from runbook_remediation import runner, scenarios, secret_names, timeline
from runbook_remediation.errors import Unavailable
from runbook_remediation.terminal import Terminal

NAMES = [
    ("db_password", True), ("passwd", True), ("db_pass", True), ("pwd", True), ("client_secret", True),
    ("api_token", True), ("api_key", True), ("apikey", True), ("authorization", True), ("bearer", True),
    ("credential", True), ("private_key", True), ("ssh_key", True), ("webhook_url", True),
    ("service", False), ("limit", False), ("passed", False), ("bypass", False), ("incident", False),
]


@pytest.mark.parametrize(("name", "secret"), NAMES)
def test_every_user_asks_the_one_rule(name, secret, monkeypatch):
    assert secret_names.is_secret_name(name) is secret
    assert secret_names.load_module().SECRET_NAME_RE.pattern == timeline.load_module().SECRET_KEY_RE.pattern
    # an extra var: off disk when its name says so (the store's checker, and the fallback without a store)
    assert timeline.is_secret_var(name, "value-1234") is secret
    assert (timeline.mask({name: "value-1234"}) == {name: "********"}) is secret

    def no_store(root=None):
        raise Unavailable("no store")

    monkeypatch.setattr(timeline, "load_module", no_store)
    assert scenarios._secret_checker(Terminal())(name, "value-1234") is secret
    # an environment variable of ours: never passed to a child when it names a secret
    assert runner.is_allowed(f"RUNBOOK_{name.upper()}") is not secret
