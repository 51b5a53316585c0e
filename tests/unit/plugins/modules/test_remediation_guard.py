"""remediation_guard: the module's contract around the envelope store."""

from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.modules import remediation_guard


@pytest.fixture
def guard(run_module, tmp_path):
    path = str(tmp_path / "envelope.db")

    def _run(check: bool = False, **args):
        args = {"path": path, "scenario": "service-down", "target": "web-1/api", "run_id": "run-1", **args}
        if check:
            args["_ansible_check_mode"] = True
        return run_module(remediation_guard.main, args)

    return _run


def test_admit_then_release(guard):
    admitted = guard()
    assert not admitted.failed and admitted["decision"] == "act" and admitted["changed"] is True
    assert guard(run_id="run-2")["decision"] == "duplicate"
    released = guard(action="release", outcome="remediated")
    assert released["changed"] is True and released["breaker_open"] is False
    assert guard(run_id="run-3")["decision"] == "act"


def test_check_mode_takes_no_lease(guard):
    assert guard(check=True)["decision"] == "act"
    status = guard(action="status")["status"]
    assert status["active"] == [] and status["decisions"] == []


def test_reset_reports_what_it_closed(guard):
    for run in ("a", "b"):
        guard(run_id=run, target=f"{run}/api")
        guard(action="release", run_id=run, target=f"{run}/api", outcome="failed", breaker_threshold=2,
              fleet_breaker_threshold=2)
    assert guard(run_id="c", target="c/api")["decision"] == "breaker"
    reset = guard(action="reset", scenario="service-down", target=None)
    assert reset["changed"] is True and reset["breakers_closed"] == 1


@pytest.mark.parametrize(("args", "message"), [
    ({"max_share": 0}, "max_share must be in (0, 1]"),
    ({"max_attempts": 0}, "max_attempts must be at least 1"),
    ({"cooldown": -1}, "cooldown must not be negative"),
])
def test_bad_input(guard, args, message):
    result = guard(**args)
    assert result.failed and result["error_kind"] == "input" and message in result.msg


def test_unusable_state_file_is_unavailable(guard, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = guard(path=str(blocker / "envelope.db"))
    assert result.failed and result["error_kind"] == "unavailable"
    assert "cannot use the safety envelope state" in result.msg
