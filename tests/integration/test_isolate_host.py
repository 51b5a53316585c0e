"""isolate-host on a real firewall that is not this machine's: the namespaced lab host of
tests/netns.py (``--network none --cap-add NET_ADMIN``, loopback only) running the demo
service. Inside that namespace 127.0.0.1 is the host itself, 127.0.0.2 plays the management
network (allow-listed), 127.0.0.3 an outside client, and a second listener on 127.0.0.5 an
outside server the host must no longer reach. Driven by ``runbook run`` (and the playbook
with the rulebook's extra vars for the alert path)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import run, run_json, runbook, wait_for
from tests.netns import NetnsHost, host_ruleset
from tests.webhook import Receiver

pytestmark = pytest.mark.lab

HOST = "iso-netns"
ALLOW = ["127.0.0.1/32", "::1/128", "127.0.0.2/32"]
OUTSIDE = "127.0.0.5"


class IsoHost(NetnsHost):
    def __init__(self, name: str):
        super().__init__(name, unit="runbook-iso-demo.service", log_dir="/var/log/runbook-iso",
                         key_file="/etc/runbook-iso/api.env", label="isolate-host-test")

    def up(self) -> None:
        super().up()
        # An unrelated rule of the host's own: isolation and revert must leave it alone.
        self.exec("iptables -A INPUT -s 198.51.100.7/32 -j DROP -m comment --comment host-own")
        self.exec(f"systemd-run --unit runbook-iso-outside python3 -m http.server --bind {OUTSIDE} {self.port}")
        wait_for(lambda: self.reach("127.0.0.1", OUTSIDE, "/") == 200, timeout=30, what="outside listener")

    def reach(self, source: str, target: str, path: str = "/api/work") -> int:
        return self.status(source, self.key, path, target=target)

    def traffic(self) -> dict:
        """Who gets an answer: the host itself, management, an outside client; the host to outside."""
        return {"self": self.reach("127.0.0.1", "127.0.0.1"), "management": self.reach("127.0.0.2", "127.0.0.1"),
                "outside-in": self.reach("127.0.0.3", "127.0.0.1"),
                "outside-out": self.reach("127.0.0.1", OUTSIDE, "/")}

    def host_vars(self, evidence: str) -> dict:
        return {**self.connection_vars(), "host_isolate_allow": ALLOW, "host_isolate_ttl": 600,
                "host_isolate_evidence_dest": evidence,
                "runbook_services": [self.service(logs=["/var/log/runbook-iso/*.log"])]}


OPEN = {"self": 200, "management": 200, "outside-in": 200, "outside-out": 200}
ISOLATED = {"self": 200, "management": 200, "outside-in": 0, "outside-out": 0}


@pytest.fixture(scope="module")
def netns(tmp_path_factory):
    state = tmp_path_factory.mktemp("iso-state")
    saved = os.environ.get("RUNBOOK_STATE_DIR")
    os.environ["RUNBOOK_STATE_DIR"] = str(state)
    host = IsoHost(f"runbook-{os.environ.get('RUNBOOK_LAB_NAME', 'test')}-isolate-netns")
    try:
        host.up()
        host.evidence = state / "evidence"
        inventory = state / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_pipelining": True},
                                                     "hosts": {HOST: host.host_vars(str(host.evidence))}}}))
        host.inventory = str(inventory)
        yield host
    finally:
        host.down()
        if saved is None:
            os.environ.pop("RUNBOOK_STATE_DIR", None)
        else:
            os.environ["RUNBOOK_STATE_DIR"] = saved


def iso(host: IsoHost, *args: str, extra: dict | None = None) -> tuple[int, dict]:
    return run_json("run", "isolate-host", "-i", host.inventory, "--service", "demo", *args, extra=extra)


def test_isolate_allows_only_the_allow_list_and_revert_restores_exactly(netns, monkeypatch):
    security = Receiver()
    security.url = f"{security.base}/services/T9/B9/s3cur1ty-t0ken"
    monkeypatch.setenv("RUNBOOK_SECURITY_WEBHOOK_URL", security.url)
    try:
        isolate_and_revert(netns, security)
    finally:
        security.close()


def isolate_and_revert(netns, security):
    mine = host_ruleset()
    before = netns.ruleset()
    assert netns.traffic() == OPEN

    # Check mode: plans, changes nothing, needs no confirmation.
    code, payload = iso(netns, "--check")
    assert code == 0, payload
    assert payload["hosts"][HOST]["outcome"] == "planned", payload
    assert netns.ruleset() == before
    assert not netns.evidence.exists() or not any(netns.evidence.iterdir())

    # Without confirmation: refused, nothing changed.
    result = runbook("run", "isolate-host", "-i", netns.inventory, "--service", "demo")
    assert result.returncode == 2 and "needs confirmation" in result.stderr, result.stderr
    assert netns.ruleset() == before

    assert security.bodies == []  # nothing happened yet: nobody told
    code, payload = iso(netns, "--yes")
    assert code == 0, payload
    result = payload["hosts"][HOST]
    assert result["outcome"] == "remediated", result
    # The incident it opened went to the security channel; its URL is nowhere.
    assert len(security.bodies) == 1 and "isolate-host" in security.bodies[0]["text"], security.bodies
    assert "s3cur1ty-t0ken" not in json.dumps(payload)
    assert not [p for p in Path(os.environ["RUNBOOK_STATE_DIR"]).rglob("*")
                if p.is_file() and b"s3cur1ty-t0ken" in p.read_bytes()]
    # Evidence first: the archive is on the controller, its hash in the result.
    archive = Path(result["evidence"]["archive"])
    assert archive.is_file() and archive.parent == netns.evidence, result["evidence"]
    assert len(result["evidence"]["sha256"]) == 64

    assert netns.traffic() == ISOLATED
    rules = netns.ruleset()
    assert "-A INPUT -s 198.51.100.7/32" in rules  # the host's own rule untouched
    # The jumps are first in INPUT/OUTPUT; in each chain the allow rules come before the DROP.
    for version in ("iptables", "ip6tables"):
        assert netns.exec(f"{version} -S INPUT").splitlines()[1].endswith("-j RUNBOOK-ISOLATE-IN")
        assert netns.exec(f"{version} -S OUTPUT").splitlines()[1].endswith("-j RUNBOOK-ISOLATE-OUT")
        for chain in ("RUNBOOK-ISOLATE-IN", "RUNBOOK-ISOLATE-OUT"):
            lines = [line for line in netns.exec(f"{version} -S {chain}").splitlines() if line.startswith("-A")]
            assert lines[-1].endswith("-j DROP") and "expires=" in lines[-1], lines
            assert all(line.endswith("-j RETURN") for line in lines[:-1]), lines
            assert len(lines) == (3 if version == "iptables" else 2), lines

    # A second run: already isolated, nothing changed (exit 4).
    code, payload = iso(netns, "--yes")
    assert code == 4, payload
    assert payload["hosts"][HOST]["outcome"] == "healthy"
    assert netns.ruleset() == rules

    # A sweep before the expiry keeps it.
    code, payload = iso(netns, "--yes", extra={"host_isolate_action": "sweep"})
    assert code == 4, payload
    assert netns.ruleset() == rules

    code, payload = iso(netns, "--yes", extra={"host_isolate_action": "revert"})
    assert code == 0, payload
    assert payload["hosts"][HOST]["outcome"] == "remediated", payload
    assert netns.ruleset() == before
    assert netns.traffic() == OPEN

    assert host_ruleset() == mine


def test_from_an_alert_it_only_diagnoses(netns):
    """The rulebook runs a destructive scenario with runbook_diagnose_only (approval in AWX):
    the same extra vars here, without runbook_confirm."""
    before = netns.ruleset()
    extra = {"service": "demo", "runbook_alert_key": "0f1e2d3c4b5a6978@2026-01-01T00:00:00Z",
             "runbook_diagnose_only": True}
    result = run(["ansible-playbook", "-i", netns.inventory, "runbook.remediation.isolate_host",
                  "-e", json.dumps(extra)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "planned: would take evidence" in result.stdout, result.stdout
    assert netns.ruleset() == before
    assert netns.traffic() == OPEN

    # Without runbook_diagnose_only and without runbook_confirm (an approval that never
    # came): the role refuses, nothing changed.
    extra.pop("runbook_diagnose_only")
    result = run(["ansible-playbook", "-i", netns.inventory, "runbook.remediation.isolate_host",
                  "-e", json.dumps(extra)])
    assert result.returncode != 0 and "pass runbook_confirm=true" in result.stdout, result.stdout
    assert netns.ruleset() == before


@pytest.mark.parametrize(("extra", "words"), [
    ({"host_isolate_allow": ["127.0.0.2/32", "::1/128"]}, "would cut loopback (127.0.0.1)"),
    ({"host_isolate_allow": ALLOW, "host_isolate_controller": "192.0.2.10"}, "would cut the controller (192.0.2.10)"),
    ({"host_isolate_allow": [*ALLOW, "127.0.0.300"]}, "'127.0.0.300' is not an address or network"),
    ({"host_isolate_allow": [*ALLOW, "0.0.0.0/0"]}, "allows everything"),
    ({"host_isolate_allow": [*ALLOW, "{{ lookup('pipe', 'touch /tmp/runbook-iso-pwned') }}"]}, ""),
])
def test_bad_allow_lists_change_nothing(netns, extra, words):
    before = netns.ruleset()
    code, payload = iso(netns, "--yes", extra=extra)
    assert code == 2, payload
    assert words in payload["hosts"][HOST]["message"], payload
    assert netns.ruleset() == before
    assert not Path("/tmp/runbook-iso-pwned").exists()
    assert "runbook-iso-pwned" not in netns.exec("ls /tmp")


def test_no_evidence_no_isolation_and_the_security_channel_hears_the_escalation(netns):
    """The evidence cannot be written (its directory cannot exist): nothing is isolated and
    the run escalates. Under ansible-playbook (AWX, a rulebook) the frame tells the
    escalation to the normal and the security webhook (`runbook run` passes neither URL to
    the playbook: the CLI sends the incident notifications itself, tested above)."""
    normal, security = Receiver(), Receiver()
    security.url = f"{security.base}/services/T9/B9/s3cur1ty-t0ken"
    before = netns.ruleset()
    extra = {"service": "demo", "runbook_confirm": True, "host_isolate_evidence_dest": "/proc/runbook-no/evidence"}
    try:
        result = run(["ansible-playbook", "-i", netns.inventory, "runbook.remediation.isolate_host",
                      "-e", json.dumps(extra)],
                     env={**os.environ, "RUNBOOK_WEBHOOK_URL": normal.url,
                          "RUNBOOK_SECURITY_WEBHOOK_URL": security.url})
    finally:
        normal.close()
        security.close()
    assert result.returncode != 0, result.stdout
    assert "the evidence could not be taken, so the host was NOT isolated" in result.stdout, result.stdout
    assert netns.ruleset() == before and netns.traffic() == OPEN
    assert len(security.bodies) == 1 and security.paths == ["/services/T9/B9/s3cur1ty-t0ken"], security.bodies
    assert "isolate-host on iso-netns needs a human (escalate)" in security.bodies[0]["text"]
    assert normal.bodies == security.bodies
    assert "s3cur1ty-t0ken" not in result.stdout + result.stderr


def backdate(host: IsoHost, expires: int | str) -> str:
    """Move the isolation's expiry (the comments of its rules) to a second ago: the rules the
    role reads back are the host's real ones, and the test need not wait out a real TTL."""
    past = str(int(time.time()) - 1)
    for tool in ("iptables", "ip6tables"):
        host.exec(f"{tool}-save | sed 's/expires={int(expires)}/expires={past}/g' | {tool}-restore")
    rules = host.ruleset()
    assert f"expires={expires}" not in rules and rules.count(f"expires={past}") == 8, rules
    return past


def test_time_boxed_the_sweep_lifts_an_expired_isolation_and_isolate_renews_it(netns, monkeypatch, tmp_path):
    # A fresh safety envelope: this test's runs do not count against the attempt budget
    # the other tests of the module used.
    monkeypatch.setenv("RUNBOOK_ENVELOPE_DB", str(tmp_path / "envelope.db"))
    before = netns.ruleset()
    code, payload = iso(netns, "--yes", extra={"host_isolate_ttl": 60, "host_isolate_evidence": False})
    assert code == 0, payload
    expires = payload["hosts"][HOST]["evidence"]["expires"]
    assert netns.traffic() == ISOLATED
    expires = backdate(netns, expires)

    # Expired: isolate again renews it (new expiry, the old rules gone), it stays isolated.
    code, payload = iso(netns, "--yes", extra={"host_isolate_ttl": 60, "host_isolate_evidence": False})
    assert code == 0, payload
    renewed = payload["hosts"][HOST]["evidence"]["expires"]
    assert int(renewed) > int(expires)
    rules = netns.ruleset()
    assert f"expires={expires}" not in rules and rules.count(f"expires={renewed}") == 8
    assert netns.traffic() == ISOLATED
    backdate(netns, renewed)

    # The sweep lifts it once expired: the tables as before.
    code, payload = iso(netns, "--yes", extra={"host_isolate_action": "sweep"})
    assert code == 0, payload
    assert netns.ruleset() == before and netns.traffic() == OPEN
