from __future__ import annotations

import datetime
import time

from ansible.module_utils import basic
from ansible_collections.runbook.remediation.plugins.modules import client_block_info


def stamp(seconds_ago: float) -> str:
    when = datetime.datetime.fromtimestamp(time.time() - seconds_ago, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def log_lines(client: str, count: int, seconds_ago: float = 1.0) -> str:
    line = f"{stamp(seconds_ago)} WARNING AUTH_ERROR Invalid API key client={client} method=GET path=/api/work\n"
    return line * count


def fake_iptables(monkeypatch, rules: dict[str, str]):
    """iptables -S CHAIN answers from ``rules`` (by binary), rc 1 when absent."""
    def run_command(self, argv, **_kwargs):
        binary = argv[0].rsplit("/", 1)[-1]
        text = rules.get(binary)
        return (0, text, "") if text is not None else (1, "", "iptables: No chain/target/match by that name.")

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False: f"/usr/sbin/{name}")


def test_counts_by_client_within_the_window(tmp_path, monkeypatch, run_module):
    fake_iptables(monkeypatch, {})
    log = tmp_path / "security.log"
    log.write_text(log_lines("127.0.0.2", 25) + log_lines("127.0.0.3", 30, seconds_ago=900)
                   + log_lines("::ffff:127.0.0.4", 21) + log_lines("127.0.0.1", 40) + log_lines("not-an-ip", 50)
                   + "2026-12-03T17:00:00.000Z INFO something else\n")
    result = run_module(client_block_info.main, {"log_path": str(log), "window": 300, "threshold": 20})
    assert not result.failed, result.msg
    assert [(c["address"], c["failures"]) for c in result["clients"]] == [
        ("127.0.0.1", 40), ("127.0.0.2", 25), ("127.0.0.4", 21)]
    # 127.0.0.3 is outside the window, loopback is always allow-listed.
    assert result["offenders"] == ["127.0.0.2", "127.0.0.4"]
    assert result["allowed_over_threshold"] == ["127.0.0.1"]
    assert result["failures"] == 86 and result["rules"] == [] and result["chain_present"] is False


def test_blocked_clients_and_expiry(tmp_path, monkeypatch, run_module):
    now = int(time.time())
    fake_iptables(monkeypatch, {"iptables": (
        "-N RUNBOOK-AUTH-ABUSE\n"
        f'-A RUNBOOK-AUTH-ABUSE -s 127.0.0.2/32 -m comment --comment "runbook auth-abuse expires={now + 600}" -j DROP\n'
        f'-A RUNBOOK-AUTH-ABUSE -s 127.0.0.5/32 -m comment --comment "runbook auth-abuse expires={now - 5}" -j DROP\n'
        '-A RUNBOOK-AUTH-ABUSE -s 127.0.0.6/32 -m comment --comment "someone else" -j DROP\n')})
    log = tmp_path / "security.log"
    log.write_text(log_lines("127.0.0.2", 25) + log_lines("192.0.2.9", 25))
    result = run_module(client_block_info.main, {"log_path": str(log), "threshold": 20, "allow": ["192.0.2.0/24"],
                                                 "since": time.time() - 60})
    assert result["offenders"] == []
    assert result["allowed_over_threshold"] == ["192.0.2.9"]
    assert [r["source"] for r in result["rules"]] == ["127.0.0.2/32", "127.0.0.5/32"]
    assert [r["source"] for r in result["expired"]] == ["127.0.0.5/32"]
    assert result["failures_since"] == {"127.0.0.2": 25, "192.0.2.9": 25}


def test_missing_log_is_no_failures_and_bad_input_fails(tmp_path, monkeypatch, run_module):
    fake_iptables(monkeypatch, {})
    result = run_module(client_block_info.main, {"log_path": str(tmp_path / "none.log")})
    assert not result.failed and result["failures"] == 0
    bad = run_module(client_block_info.main, {"log_path": str(tmp_path / "x"), "chain": "A B"})
    assert bad.failed and bad.result["error_kind"] == "input"
    bad = run_module(client_block_info.main, {"log_path": str(tmp_path / "x"), "allow": ["nope"]})
    assert bad.failed and "not an address" in bad.msg


def test_controller_from_ssh_connection(monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "198.51.100.7 50000 198.51.100.8 22")
    assert client_block_info.controller_address() == "198.51.100.7"
    monkeypatch.delenv("SSH_CONNECTION")
    assert client_block_info.controller_address() == ""
