"""auth-abuse on a real firewall that is not this machine's: a systemd lab container with a
network namespace of its own (``--network none --cap-add NET_ADMIN``, loopback only), the
demo service in it with an API key. "Attackers" send bad keys from 127.0.0.2 and 127.0.0.3,
a client under the threshold from 127.0.0.4 and a legitimate one from 127.0.0.1, all inside
that namespace (``curl --interface``). The scenario is driven by ``runbook run`` directly
(the Prometheus alert path is not part of this test: the host has no network Prometheus
could scrape)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_json
from tests.netns import NetnsHost, host_ruleset

pytestmark = pytest.mark.lab

CHAIN = "RUNBOOK-AUTH-ABUSE"
LOG_DIR = "/var/log/runbook-auth"
KEY_FILE = "/etc/runbook-auth/api.env"
UNIT = "runbook-auth-demo.service"
HOST = "auth-netns"
TTL = 45  # seconds a block lasts in this test (== the window: a block outlives its evidence)


class AuthHost(NetnsHost):
    """The namespaced host (tests/netns.py) with the auth-abuse chain and security log."""

    def __init__(self, name: str):
        super().__init__(name, unit=UNIT, log_dir=LOG_DIR, key_file=KEY_FILE, label="auth-abuse-test",
                         demo_name="auth-demo")

    def rules(self) -> list[str]:
        return [line for line in self.exec(f"iptables -S {CHAIN} 2>/dev/null || true").splitlines()
                if line.startswith("-A ")]

    def failures(self, client: str) -> int:
        return int(self.exec(f"grep -c 'AUTH_ERROR.*client={client} ' {LOG_DIR}/security.log || true").strip() or 0)

    def host_vars(self) -> dict:
        return {
            **self.connection_vars(),
            "client_block_window": TTL,
            "client_block_ttl": TTL,
            "client_block_threshold": 20,
            "client_block_allow": ["192.0.2.0/24"],
            "runbook_services": [self.service(security_log=f"{LOG_DIR}/security.log")],
        }


@pytest.fixture(scope="module")
def netns(tmp_path_factory):
    state = tmp_path_factory.mktemp("auth-state")
    saved = os.environ.get("RUNBOOK_STATE_DIR")
    os.environ["RUNBOOK_STATE_DIR"] = str(state)
    host = AuthHost(f"runbook-{os.environ.get('RUNBOOK_LAB_NAME', 'test')}-auth-netns")
    try:
        host.up()
        inventory = state / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_pipelining": True},
                                                     "hosts": {HOST: host.host_vars()}}}))
        host.inventory = str(inventory)
        yield host
    finally:
        host.down()
        if saved is None:
            os.environ.pop("RUNBOOK_STATE_DIR", None)
        else:
            os.environ["RUNBOOK_STATE_DIR"] = saved


def run(host: AuthHost, *args: str, extra: dict | None = None) -> tuple[int, dict]:
    code, payload = run_json("run", "auth-abuse", "-i", host.inventory, "--service", "demo", *args, extra=extra)
    return code, payload


def test_burst_blocks_exactly_the_offenders_then_unblock_and_sweep(netns):
    mine = host_ruleset()
    # The burst: two offenders over the threshold (a wrong key, no key at all), one client
    # under it, and the legitimate client with the right key.
    assert set(netns.curl("127.0.0.2", "wrong", count=25)) == {401}
    assert set(netns.curl("127.0.0.3", "", count=25)) == {401}
    assert set(netns.curl("127.0.0.4", "wrong", count=5)) == {401}
    assert netns.status("127.0.0.1", netns.key) == 200

    # Check mode: plans both blocks, changes nothing.
    before = netns.ruleset()
    code, payload = run(netns, "--check")
    assert code == 0, payload
    result = payload["hosts"][HOST]
    assert result["outcome"] == "planned", result
    assert "127.0.0.2/32" in result["message"] and "127.0.0.3/32" in result["message"]
    assert netns.ruleset() == before and netns.rules() == []

    started = time.time()
    code, payload = run(netns)
    assert code == 0, payload
    result = payload["hosts"][HOST]
    assert result["outcome"] == "remediated", result
    assert sorted(a.split()[1] for a in result["actions"]) == ["127.0.0.2/32", "127.0.0.3/32"], result["actions"]
    assert result["verification"]["probe"]["status"] == 200
    top = {entry["address"]: entry["failures"] for entry in result["evidence"]["top"]}
    assert top == {"127.0.0.2": 25, "127.0.0.3": 25, "127.0.0.4": 5}

    # Exactly those two, in the dedicated chain, each with its expiry; INPUT jumps to it.
    rules = netns.rules()
    assert len(rules) == 2, rules
    expiries = []
    for rule, source in zip(sorted(rules), ("127.0.0.2/32", "127.0.0.3/32"), strict=True):
        assert f"-s {source} " in rule and rule.endswith("-j DROP"), rule
        expiries.append(int(rule.split("expires=")[1].split('"')[0]))
    assert all(started + TTL - 5 <= e <= time.time() + TTL + 5 for e in expiries), expiries
    assert f"-j {CHAIN}" in netns.exec("iptables -S INPUT")

    # The offenders get no answer and their failures stop; the others still get through.
    logged = netns.failures("127.0.0.2")
    assert netns.curl("127.0.0.2", "wrong", count=2) == [0, 0]
    assert netns.status("127.0.0.3", netns.key) == 0
    assert netns.failures("127.0.0.2") == logged
    assert netns.status("127.0.0.4", "wrong") == 401
    assert netns.status("127.0.0.1", netns.key) == 200

    # A second run finds nothing new: exit 4, nothing changed.
    code, payload = run(netns)
    assert code == 4, payload
    assert payload["hosts"][HOST]["outcome"] == "healthy"
    assert len(netns.rules()) == 2

    # An explicit unblock releases one address now.
    code, payload = run(netns, extra={"client_block_action": "unblock", "client_block_addresses": ["127.0.0.3"]})
    assert code == 0, payload
    assert [r for r in netns.rules() if "127.0.0.3" in r] == [] and len(netns.rules()) == 1
    assert netns.status("127.0.0.3", netns.key) == 200

    # The sweep removes the block once its expiry has passed (the second run above, which
    # sweeps too, left both blocks before their expiry).
    time.sleep(max(0.0, max(expiries) + 1 - time.time()))
    code, payload = run(netns, extra={"client_block_action": "sweep"})
    assert code == 0, payload
    assert payload["hosts"][HOST]["actions"] == ["unblocked 127.0.0.2/32"]
    assert netns.rules() == []
    assert netns.status("127.0.0.2", "wrong") == 401

    # None of it touched this machine's own tables.
    assert host_ruleset() == mine


# Loopback's own case (127.0.0.0/8 covers 127.0.0.1) is in tests/unit/plugins/test_networks.py:
# each run here costs seconds.
@pytest.mark.parametrize(("addresses", "words"), [
    (["192.0.2.9"], "covers the allow-listed 192.0.2.0/24"),
    (["198.51.100.0/23"], "wider than the configured limit /24"),
    (["{{ lookup('pipe', 'touch /tmp/runbook-auth-pwned') }}"], ""),
])
def test_bad_block_requests_change_nothing(netns, addresses, words):
    before = netns.ruleset()
    code, payload = run(netns, extra={"client_block_addresses": addresses})
    assert code == 2, payload
    assert words in payload["hosts"][HOST]["message"], payload
    assert netns.ruleset() == before
    assert not Path("/tmp/runbook-auth-pwned").exists()
    assert "runbook-auth-pwned" not in netns.exec("ls /tmp")
