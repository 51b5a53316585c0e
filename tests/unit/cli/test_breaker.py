"""`runbook breaker status|reset` on the envelope file every entrance shares, and
`runbook watch`'s refusals (nothing is started on bad input)."""

from __future__ import annotations

import json

import pytest

from runbook_remediation import envelope
from runbook_remediation.shell import main


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture
def tripped(own_envelope):
    """service-down's breaker open after three failed verifications, and a target on hold."""
    store = envelope.open_envelope()
    for run in ("a", "b", "c"):
        store.admit(f"web-{run}/api", "service-down", run)
        store.release(f"web-{run}/api", "service-down", run, "failed", breaker_threshold=3)
    store.admit("web-9/api", "disk-full", "x", max_attempts=1)
    store.release("web-9/api", "disk-full", "x", "failed", breaker_threshold=10)
    assert store.admit("web-9/api", "disk-full", "y", max_attempts=1)["decision"] == "escalate"
    store.close()
    return own_envelope


def test_status_shows_open_breakers_and_holds(capsys, tripped):
    code, out, _err = run_main(capsys, "breaker", "status", "-o", "json")
    assert code == 0
    state = json.loads(out)
    assert state["path"] == str(tripped)
    [breaker] = [b for b in state["breakers"] if b["open"]]
    assert breaker["scenario"] == "service-down" and breaker["failures"] == 3
    assert [h["target"] for h in state["holds"]] == ["web-9/api"]

    code, out, _err = run_main(capsys, "breaker", "status")
    assert code == 0 and "breaker OPEN service-down" in out and "runbook breaker reset service-down" in out


def test_reset_one_scenario_then_all(capsys, tripped):
    code, out, _err = run_main(capsys, "breaker", "reset", "service-down", "-o", "json")
    assert code == 0 and json.loads(out) == {"breakers_closed": 1, "holds_lifted": 0}
    store = envelope.open_envelope()
    assert store.admit("web-1/api", "service-down", "after-reset")["decision"] == "act"
    store.close()
    code, out, _err = run_main(capsys, "breaker", "reset")
    assert code == 0 and "1 hold(s) lifted" in out


def test_reset_of_an_unknown_scenario_is_bad_input(capsys, tripped):
    code, _out, err = run_main(capsys, "breaker", "reset", "service-dwn")
    assert code == 2 and "unknown scenario 'service-dwn'" in err


def test_watch_refuses_bad_input_before_starting_anything(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))  # no lab here
    code, _out, err = run_main(capsys, "watch")
    assert code == 2 and "no inventory" in err
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {}\n")
    code, _out, err = run_main(capsys, "watch", "-i", str(inventory))
    assert code == 2 and "no Alertmanager" in err
    code, _out, err = run_main(capsys, "watch", "-i", str(inventory), "--alertmanager", "ftp://x")
    assert code == 2 and "is not an http(s) URL" in err
    code, _out, err = run_main(capsys, "watch", "-i", str(inventory), "--alertmanager", "http://127.0.0.1:1")
    assert code == 5 and "does not answer" in err
    assert not (tmp_path / "watch").exists()
