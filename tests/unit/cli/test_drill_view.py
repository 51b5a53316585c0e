"""The drill's live view (a terminal): rows follow the drill's progress lines, the report
settles every row at the end, and what it draws names each mode's step and time."""

from __future__ import annotations

from rich.console import Console

from runbook_remediation.drill import Mode, Profile
from runbook_remediation.drill_view import DrillView

PROFILE = Profile(name="edge-gateway", seed="001", system="x", host="lab-1", modes=(
    Mode(name="crash", title="t", fault="crash", alert="ServiceDown", scenario="service-down"),
    Mode(name="fd-exhaustion", title="t", fault="fd-leak", alert="FileDescriptorExhaustion", scenario="fd-exhaustion"),
    Mode(name="sqlite-corruption", title="t", not_automated="no fault yet"),
))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drawn(view: DrillView) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(view.render())
    return console.export_text()


def test_rows_follow_the_progress_lines_and_keep_their_time_once_done() -> None:
    clock = Clock()
    view = DrillView(PROFILE, clock=clock)
    assert [row["step"] for row in view.rows.values()] == ["waiting", "waiting", "not automated"]

    view.progress("crash: healing lab-1")
    clock.now = 103.0
    view.progress("crash: ServiceDown fired after 1.0 s")
    view.progress("healing lab-1")  # not a mode's: the footer
    assert view.rows["crash"]["step"] == "ServiceDown fired after 1.0 s" and view.footer == "healing lab-1"
    assert "crash" in drawn(view) and "3 s" in drawn(view) and "healing lab-1" in drawn(view)

    clock.now = 110.0
    view.progress("crash: remediated")
    clock.now = 500.0
    assert view.rows["crash"]["done"] and "10 s" in drawn(view)  # stopped at its end, not now
    view.progress("crash: late line")  # after its end: the footer, the row stays
    assert view.rows["crash"]["step"] == "remediated"

    view.progress("fd-exhaustion: failed (expected remediated)")
    assert view.rows["fd-exhaustion"]["done"]
    assert view.rows["sqlite-corruption"]["started"] is None  # never moves


def test_the_report_settles_a_mode_that_stopped_without_a_last_line() -> None:
    view = DrillView(PROFILE, only=("crash", "fd-exhaustion"), clock=Clock())
    assert list(view.rows) == ["crash", "fd-exhaustion"]
    view.progress("crash: injecting crash")  # its alert never fired: no last line
    view.finish({"modes": [
        {"mode": "crash", "ok": False, "outcome": None, "expected": "remediated",
         "message": "ServiceDown did not fire within 120 s"},
        {"mode": "fd-exhaustion", "ok": True, "outcome": "remediated", "expected": "remediated", "message": ""},
    ]})
    assert view.rows["crash"]["step"] == "failed: ServiceDown did not fire within 120 s"
    assert view.rows["fd-exhaustion"]["step"] == "remediated"
    text = drawn(view)
    assert "drill edge-gateway (seed 001) on lab-1" in text and "ServiceDown did not fire" in text
