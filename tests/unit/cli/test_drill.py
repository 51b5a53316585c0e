"""Drill profiles (cli/runbook_remediation/drills/*.yml) against the real catalogue and the
lab's faults, the report's Markdown, and bad input; the drills themselves run on the lab in
tests/integration/test_drills.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_remediation import catalogue, drill, shell
from runbook_remediation.collection import Collection
from runbook_remediation.errors import BadInput, RunbookError
from runbook_remediation.lab.lab import FAULTS, LAB_FAULTS, RELEASES, LabHost, LabState
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = {s.name for s in catalogue.catalogue(Collection(REPO, REPO))}


def load(name: str) -> drill.Profile:
    return drill.load(name, FAULTS + LAB_FAULTS, SCENARIOS, tuple(RELEASES))


@pytest.mark.parametrize("name", drill.names())
def test_every_profile_names_real_faults_scenarios_and_a_lab_host(name):
    profile = load(name)
    assert profile.name == name and profile.seed in {"000", "001", "002", "003", "004"}
    assert profile.host in {"lab-1", "lab-docker", "lab-compose", "lab-k8s"}
    automated = [m for m in profile.modes if not m.not_automated]
    assert automated, "a drill with nothing to rehearse"
    assert len({m.name for m in profile.modes}) == len(profile.modes)
    for mode in automated:
        assert mode.scenario in SCENARIOS and mode.expect in drill.OUTCOMES
        # A fault or release to inject, or an emergency action (no alert), reverted or not.
        assert mode.fault or mode.deploy or (mode.action and not mode.alert)
        assert not mode.revert or mode.action


def test_the_five_seed_systems_have_a_profile():
    assert drill.names() == ["causal-eval", "edge-gateway", "ggen-mcp", "mcts", "mpc-transformer"]


def test_a_profile_that_names_an_unknown_fault_or_key_is_refused(monkeypatch, tmp_path):
    (tmp_path / "bad.yml").write_text("profile: bad\nseed: '001'\nsystem: x\nhost: lab-1\nmodes:\n"
                                      "  - {name: m, title: t, fault: melt, scenario: service-down}\n")
    (tmp_path / "typo.yml").write_text("profile: typo\nseed: '001'\nsystem: x\nhost: lab-1\nmodes:\n"
                                       "  - {name: m, title: t, fault: crash, scenario: service-down, yes: true}\n")
    monkeypatch.setattr(drill, "_files", lambda: tmp_path)
    with pytest.raises(RunbookError, match="unknown fault 'melt'"):
        load("bad")
    with pytest.raises(RunbookError, match="unknown keys True"):
        load("typo")
    with pytest.raises(BadInput, match="unknown drill profile"):
        load("nope")


def test_an_action_waits_for_no_alert_and_only_an_action_is_reverted(monkeypatch, tmp_path):
    head = "seed: '002'\nsystem: x\nhost: lab-k8s\nmodes:\n"
    (tmp_path / "alerting.yml").write_text("profile: alerting\n" + head + "  - {name: m, title: t, "
                                           "scenario: maintenance-mode, alert: ServiceDown}\n")
    (tmp_path / "undo.yml").write_text("profile: undo\n" + head + "  - {name: m, title: t, fault: crash, "
                                       "scenario: service-down, revert: true}\n")
    (tmp_path / "fine.yml").write_text("profile: fine\n" + head + "  - {name: m, title: t, "
                                       "scenario: traffic-drain, confirm: true, revert: true}\n")
    monkeypatch.setattr(drill, "_files", lambda: tmp_path)
    with pytest.raises(RunbookError, match="waits for ServiceDown but injects no fault"):
        load("alerting")
    with pytest.raises(RunbookError, match="only actions are reverted"):
        load("undo")
    (mode,) = load("fine").modes
    assert mode.action and mode.revert and mode.confirm


class NoLab:
    def __init__(self, hosts):
        self._state = LabState(hosts=hosts)

    def state(self):
        return self._state

    def host(self, name):
        raise BadInput(f"unknown lab host {name!r}")


def test_a_drill_needs_the_lab_and_its_own_modes():
    profile = load("edge-gateway")
    with pytest.raises(BadInput, match="has no failure mode nope"):
        drill.run(NoLab([]), profile, ("nope",))
    with pytest.raises(BadInput, match="the lab is not up"):
        drill.run(NoLab([]), profile)
    with pytest.raises(BadInput, match="unknown lab host"):  # never a host outside the lab
        drill.run(NoLab([LabHost("web-1", "c", "systemd", 1)]), profile)


def test_the_markdown_report_lists_each_mode_with_its_timings_and_what_is_not_automated():
    report = {"profile": "edge-gateway", "seed": "001", "system": "MCP edge gateway", "host": "lab-1",
              "started_at": "2026-12-06T03:00:00+00:00", "finished_at": "2026-12-06T03:01:00+00:00", "ok": False,
              "modes": [
                  {"mode": "crash", "title": "Service down", "alert": "ServiceDown", "scenario": "service-down",
                   "outcome": "remediated", "expected": "remediated", "ok": True, "detect_seconds": 1.0,
                   "remediate_seconds": 4.2, "verify_seconds": 0.0},
                  {"mode": "fd", "title": "Too many open files", "alert": None, "scenario": "fd-exhaustion",
                   "outcome": "escalate", "expected": "remediated", "ok": False, "detect_seconds": None,
                   "remediate_seconds": 9.0, "verify_seconds": 1.5},
                  {"mode": "drain", "title": "Region drained", "alert": None, "scenario": "traffic-drain",
                   "outcome": "remediated", "expected": "remediated", "ok": True, "detect_seconds": None,
                   "remediate_seconds": 3.1, "verify_seconds": 0.0, "revert_outcome": "remediated",
                   "revert_seconds": 2.9},
                  {"mode": "sqlite", "title": "SQLite corrupted", "outcome": "not automated", "ok": None,
                   "reason": "no lab fault yet"}]}
    text = drill.markdown(report)
    assert text.startswith("# Drill edge-gateway (seed 001): FAILED")
    assert "| crash: Service down | ServiceDown | service-down | remediated | 1.0 s | 4.2 s | 0.0 s |" in text
    assert ("| fd: Too many open files | - | fd-exhaustion | escalate (expected remediated) | - | 9.0 s | 1.5 s |"
            in text)
    assert ("| drain: Region drained | - | traffic-drain | remediated, reverted in 2.9 s (remediated) | - | 3.1 s "
            "| 0.0 s |") in text
    assert "- sqlite (SQLite corrupted): no lab fault yet" in text


def test_with_the_loop_the_report_adds_the_dispatch_and_marks_steps_taken_by_hand():
    report = {"profile": "edge-gateway", "seed": "001", "system": "gw", "host": "lab-1", "dispatch": "runbook watch",
              "started_at": "2026-12-06T03:00:00+00:00", "finished_at": "2026-12-06T03:01:00+00:00", "ok": True,
              "modes": [
                  {"mode": "crash", "title": "Down", "alert": "ServiceDown", "scenario": "service-down",
                   "outcome": "remediated", "expected": "remediated", "ok": True, "detect_seconds": 0.5,
                   "dispatched_by": "runbook watch", "dispatch_seconds": 1.1, "remediate_seconds": 2.6,
                   "verify_seconds": 0.0},
                  {"mode": "config", "title": "Broken", "alert": None, "scenario": "config-restore",
                   "outcome": "remediated", "expected": "remediated", "ok": True, "detect_seconds": None,
                   "dispatched_by": "runbook run", "remediate_seconds": 17.3, "verify_seconds": 0.0}]}
    text = drill.markdown(report)
    assert "dispatched by the closed loop (`runbook watch`)." in text
    assert "| failure mode | alert | scenario | outcome | detect | dispatch | remediate | verify |" in text
    assert "| crash: Down | ServiceDown | service-down | remediated | 0.5 s | 1.1 s | 2.6 s | 0.0 s |" in text
    assert "| config: Broken | - | config-restore | remediated, run by hand | - | - | 17.3 s | 0.0 s |" in text


@pytest.mark.parametrize(("mode", "takes"), [
    (drill.Mode("m", "t", fault="crash", alert="ServiceDown", scenario="service-down"), True),
    (drill.Mode("m", "t", fault="crash", alert="HighErrorRate", scenario="error-rate", confirm=True), False),
    (drill.Mode("m", "t", fault="memory-leak", alert="MemoryGrowth", scenario="memory-leak", extra={"x": 1}), False),
    (drill.Mode("m", "t", fault="config-broken", scenario="config-restore"), False),
    (drill.Mode("m", "t", scenario="traffic-drain", confirm=True, revert=True), False),
    # The alert maps to another scenario (ServiceDown: service-down): on-call runs this one.
    (drill.Mode("m", "t", fault="memory-leak", alert="ServiceDown", scenario="oom-killed"), False),
])
def test_the_loop_takes_only_a_mode_its_alert_dispatches_as_is(mode, takes):
    assert drill._loop_takes(mode) is takes


def test_the_cli_refuses_an_unknown_profile(runbook_env):
    result = CliRunner().invoke(shell.cli, ["drill", "nope"])
    assert result.exit_code == 2 and "nope" in result.output


def test_the_loops_watcher_stops_when_its_drill_is_killed(tmp_path):
    """A drill killed with SIGKILL (a timeout, an OOM kill) has no finally: its watcher gets
    SIGTERM from the kernel instead of remediating the lab's alerts on its own."""
    child_pid = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", f"""
import subprocess, sys, time
from runbook_remediation import drill
import os
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         preexec_fn=drill._stop_with_parent(os.getpid()))
open({str(child_pid)!r}, "w").write(str(child.pid))
time.sleep(60)
"""])
    try:
        wait_for(lambda: child_pid.exists() and child_pid.read_text(), interval=0.05,
                 what="the drill stand-in to start its child")
        pid = int(child_pid.read_text())
        assert Path(f"/proc/{pid}").exists()
        parent.kill()
        parent.wait()
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), timeout=10, interval=0.05,
                 what="the watcher to stop after its killed drill")
    finally:
        parent.kill()
        parent.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_a_drill_runs_under_an_envelope_of_its_own_unless_the_user_chose_one(monkeypatch, tmp_path):
    from datetime import UTC, datetime

    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("RUNBOOK_ENVELOPE_DB", raising=False)
    monkeypatch.delenv("RUNBOOK_STATE_DSN", raising=False)
    started = datetime(2026, 12, 7, 20, 30, 5, tzinfo=UTC)
    with drill._drill_envelope("edge-gateway", started):
        expected = tmp_path / "drills" / "20261207T203005-edge-gateway-envelope.db"
        assert os.environ["RUNBOOK_ENVELOPE_DB"] == str(expected)
    assert "RUNBOOK_ENVELOPE_DB" not in os.environ  # the user's envelope again after the drill

    monkeypatch.setenv("RUNBOOK_ENVELOPE_DB", str(tmp_path / "mine.db"))
    with drill._drill_envelope("edge-gateway", started):
        assert os.environ["RUNBOOK_ENVELOPE_DB"] == str(tmp_path / "mine.db")


class BrokenLab:
    """A lab whose faults cannot be injected (the second mode's heal is interrupted)."""

    def __init__(self, interrupt_on_heal: int = 0):
        self.host_ = LabHost("lab-docker", "c", "docker", 1)
        self.heals = []
        self.interrupt_on_heal = interrupt_on_heal

    def state(self):
        return LabState(hosts=[self.host_])

    def host(self, _name):
        return self.host_

    def heal(self, name):
        self.heals.append(name)
        if len(self.heals) == self.interrupt_on_heal:
            raise KeyboardInterrupt

    def break_service(self, fault, _host, _params):
        from runbook_remediation.errors import Unavailable

        raise Unavailable(f"could not take port 1 for {fault}")


def test_a_fault_that_cannot_be_injected_fails_its_mode_and_the_drill_goes_on(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(drill, "firing", lambda *_args: False)  # no Prometheus here
    lab = BrokenLab()
    report = drill.run(lab, load("ggen-mcp"), ("port-in-use", "oom-killed"))
    rows = {row["mode"]: row for row in report["modes"]}
    assert rows["port-in-use"]["ok"] is False and rows["oom-killed"]["ok"] is False and report["ok"] is False
    assert rows["port-in-use"]["message"] == "could not inject port-taken: could not take port 1 for port-taken"
    assert lab.heals == ["lab-docker", "lab-docker", "lab-docker"]  # before each mode, and at the end


def test_an_interrupted_drill_still_heals_what_it_touched(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(drill, "firing", lambda *_args: False)
    lab = BrokenLab(interrupt_on_heal=2)  # Ctrl-C while the second mode heals
    with pytest.raises(KeyboardInterrupt):
        drill.run(lab, load("ggen-mcp"), ("port-in-use", "oom-killed"))
    assert lab.heals == ["lab-docker", "lab-docker", "lab-docker"]  # the end's heal ran anyway


class ProfileLab(BrokenLab):
    """A lab up with the ggen-mcp profile whose faults work: each raises its alert until the run."""

    def __init__(self, profiles):
        super().__init__()
        self.profiles = profiles
        self.fired = set()

    def state(self):
        return LabState(hosts=[self.host_], profiles=self.profiles)

    def break_service(self, fault, _host, _params):
        self.fired = {"ServiceDown", "GgenMcpServiceDown"} if fault == "crash" else set()


@pytest.mark.parametrize(("profiles", "waited"), [(["ggen-mcp"], "GgenMcpServiceDown"), ([], "ServiceDown")])
def test_with_its_profile_up_the_drill_waits_for_the_seeds_own_alert_name(monkeypatch, tmp_path, profiles, waited):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))
    lab = ProfileLab(profiles)
    asked = []

    def firing(_lab, alert, _host, _service):
        asked.append(alert)
        return alert in lab.fired

    def run_scenario(_lab, _host, _mode, revert=False):
        lab.fired = set()
        return {"outcome": "remediated", "message": "remediated: demo restarted and healthy", "run_id": "r1"}

    monkeypatch.setattr(drill, "firing", firing)
    monkeypatch.setattr(drill, "_run_scenario", run_scenario)
    monkeypatch.setattr(drill, "_healthy", lambda *_args: True)
    report = drill.run(lab, load("ggen-mcp"), ("service-down",))
    [row] = report["modes"]
    assert row["alert"] == waited and row["ok"] is True, row
    assert set(asked) == {waited}
