from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.runbook.remediation.plugins.filter.networks import allow_list, block_request, isolation_allow


def test_allow_list_always_has_loopback_and_normalizes():
    assert allow_list(["192.0.2.7", "198.51.100.0/24"]) == [
        "127.0.0.1/32", "::1/128", "192.0.2.7/32", "198.51.100.0/24"]
    assert allow_list([]) == ["127.0.0.1/32", "::1/128"]


def test_block_request_normalizes_and_dedupes():
    assert block_request(["127.0.0.2", "127.0.0.2/32", "2001:db8::1"]) == ["127.0.0.2/32", "2001:db8::1/128"]
    assert block_request([]) == []


@pytest.mark.parametrize(("items", "allow", "words"), [
    (["127.0.0.0/8"], [], "covers the allow-listed 127.0.0.1/32"),
    (["127.0.0.1"], [], "covers the allow-listed 127.0.0.1/32"),
    (["::1"], [], "covers the allow-listed ::1/128"),
    (["192.0.2.9"], ["192.0.2.0/24"], "covers the allow-listed 192.0.2.0/24"),
    (["192.0.0.0/16"], ["192.0.2.0/24"], "covers the allow-listed 192.0.2.0/24"),
    (["198.51.100.0/23"], [], "wider than the configured limit /24"),
    (["2001:db8::/48"], [], "wider than the configured limit /64"),
    (["not-an-ip"], [], "is not an address or network"),
    (["{{ lookup('pipe', 'id') }}"], [], "is not an address or network"),
    ([["127.0.0.2"]], [], "is not an address or network"),
    ("127.0.0.2", [], "must be a list"),
    (["127.0.0.2"], ["bogus"], "allow: 'bogus' is not an address"),
])
def test_block_request_refuses(items, allow, words):
    with pytest.raises(AnsibleFilterError, match=words.replace("(", r"\(").replace("{", r"\{")):
        block_request(items, allow=allow)


def test_block_request_limits_are_configurable():
    assert block_request(["198.51.100.0/23"], max_prefix_v4=16) == ["198.51.100.0/23"]


# --- isolation_allow: the allow-list an isolated host keeps ---------------------------------------

def test_isolation_allow_normalizes_and_keeps_order():
    got = isolation_allow(["127.0.0.1", "::1", "192.0.2.0/24", "127.0.0.1/32"], controller="192.0.2.10")
    assert got == ["127.0.0.1/32", "::1/128", "192.0.2.0/24"]


@pytest.mark.parametrize(("items", "controller", "words"), [
    (["::1", "192.0.2.0/24"], "", "would cut loopback (127.0.0.1)"),
    (["127.0.0.1", "192.0.2.0/24"], "", "would cut loopback (::1)"),
    (["127.0.0.1", "::1"], "198.51.100.4", "would cut the controller (198.51.100.4)"),
    (["127.0.0.1", "::1", "0.0.0.0/0"], "", "allows everything"),
    (["127.0.0.1", "::1", "127.0.0.300"], "", "is not an address or network"),
    (["127.0.0.1", "::1"], "not-an-address", "host_isolate_controller"),
    ("127.0.0.1", "", "must be a list"),
])
def test_isolation_allow_refuses(items, controller, words):
    with pytest.raises(AnsibleFilterError, match=re.escape(words)):
        isolation_allow(items, controller=controller)
