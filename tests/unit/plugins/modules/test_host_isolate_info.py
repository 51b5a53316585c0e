from __future__ import annotations

import time

from ansible.module_utils import basic
from ansible_collections.runbook.remediation.plugins.modules import host_isolate_info

ALLOW = ["127.0.0.1/32", "::1/128", "192.0.2.0/24"]


def fake_iptables(monkeypatch, rules: dict[str, str]):
    """iptables -S / ip6tables -S answer from ``rules`` (by binary; empty tables when absent)."""
    calls = []

    def run_command(self, argv, **_kwargs):
        calls.append(argv)
        binary = argv[0].rsplit("/", 1)[-1]
        return 0, rules.get(binary, "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"), ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False: f"/usr/sbin/{name}")
    return calls


def isolated(expires: int, extra: str = "") -> str:
    comment = f'"runbook isolate-host expires={expires}"'
    return (
        "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
        "-N RUNBOOK-ISOLATE-IN\n-N RUNBOOK-ISOLATE-OUT\n"
        f"-A INPUT -m comment --comment {comment} -j RUNBOOK-ISOLATE-IN\n"
        "-A INPUT -s 198.51.100.7/32 -m comment --comment host-own -j DROP\n"
        f"-A OUTPUT -m comment --comment {comment} -j RUNBOOK-ISOLATE-OUT\n"
        '-A RUNBOOK-ISOLATE-IN -s 192.0.2.0/24 -m comment --comment "runbook isolate-host" -j RETURN\n'
        '-A RUNBOOK-ISOLATE-IN -s 127.0.0.1/32 -m comment --comment "runbook isolate-host" -j RETURN\n'
        f"-A RUNBOOK-ISOLATE-IN -m comment --comment {comment} -j DROP\n"
        '-A RUNBOOK-ISOLATE-OUT -d 127.0.0.1/32 -m comment --comment "runbook isolate-host" -j RETURN\n'
        f"-A RUNBOOK-ISOLATE-OUT -m comment --comment {comment} -j DROP\n" + extra)


def test_not_isolated(monkeypatch, run_module):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    calls = fake_iptables(monkeypatch, {})
    result = run_module(host_isolate_info.main, {"allow": ALLOW})
    assert not result.failed, result.msg
    assert result["isolated"] is False and result["present"] is False and result["expired"] is False
    assert result["chains"] == [] and result["allowed"] == [] and result["expires"] == 0
    assert [c[0].rsplit("/", 1)[-1] for c in calls] == ["iptables", "ip6tables"]


def test_reads_the_isolation_and_only_its_own_rules(monkeypatch, run_module):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    soon = int(time.time()) + 600
    fake_iptables(monkeypatch, {"iptables": isolated(soon)})
    result = run_module(host_isolate_info.main, {"allow": ALLOW})
    assert result["isolated"] is True and result["expired"] is False and result["expires"] == soon
    assert result["chains"] == ["ipv4 RUNBOOK-ISOLATE-IN", "ipv4 RUNBOOK-ISOLATE-OUT"]
    assert [j["key"] for j in result["jumps"]] == ["ipv4 INPUT", "ipv4 OUTPUT"]
    assert [a["key"] for a in result["allowed"]] == [
        "192.0.2.0/24 RUNBOOK-ISOLATE-IN", "127.0.0.1/32 RUNBOOK-ISOLATE-IN", "127.0.0.1/32 RUNBOOK-ISOLATE-OUT"]
    assert [d["key"] for d in result["drops"]] == ["ipv4 RUNBOOK-ISOLATE-IN", "ipv4 RUNBOOK-ISOLATE-OUT"]


def test_expired(monkeypatch, run_module):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    fake_iptables(monkeypatch, {"iptables": isolated(int(time.time()) - 5)})
    assert run_module(host_isolate_info.main, {"allow": ALLOW})["expired"] is True


def test_an_allow_list_that_cuts_loopback_or_the_controller_is_bad_input(monkeypatch, run_module):
    calls = fake_iptables(monkeypatch, {})
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    bad = run_module(host_isolate_info.main, {"allow": ["::1/128", "192.0.2.0/24"]})
    assert bad.failed and bad.result["error_kind"] == "input" and "cut loopback (127.0.0.1)" in bad.msg
    monkeypatch.setenv("SSH_CONNECTION", "198.51.100.7 50000 198.51.100.8 22")
    bad = run_module(host_isolate_info.main, {"allow": ALLOW})
    assert bad.failed and "cut the controller (198.51.100.7)" in bad.msg
    good = run_module(host_isolate_info.main, {"allow": [*ALLOW, "198.51.100.0/24"]})
    assert not good.failed and good["controller"] == "198.51.100.7"
    bad = run_module(host_isolate_info.main, {"allow": [*ALLOW, "300.1.1.1"]})
    assert bad.failed and "not an address or network" in bad.msg
    assert len(calls) == 2  # only the good run read the tables
