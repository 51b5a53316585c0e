"""`runbook drill PROFILE` on the real lab, one test per seed system whose lab host the
session's lab has (seed 002's mpc-transformer needs `lab up --kubernetes`; its crash-loop
heal through the closed loop is tests/integration/test_kubernetes_lab_up.py): every
automated failure mode is injected, its alert fires, the scenario ends as the profile
expects, the service is healthy again, and the host is healed at the end, so the next drill
(causal-eval and mcts share lab-compose) starts from a healed lab. Each report is saved as
Markdown and JSON under the state directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_remediation import drill
from runbook_remediation.lab.lab import probe_health
from tests.conftest import runbook

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("profile", ["edge-gateway", "ggen-mcp", "causal-eval", "mcts"])
def test_the_drill_runs_every_automated_failure_mode_to_its_expected_outcome(lab, profile):
    result = runbook("-o", "json", "drill", profile)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    report = json.loads(result.stdout)
    automated = [row for row in report["modes"] if row["ok"] is not None]
    manual = [row for row in report["modes"] if row["ok"] is None]
    assert automated and all(row["ok"] for row in automated), automated
    for row in automated:
        assert row["outcome"] == row["expected"] and row["remediate_seconds"] > 0, row
        assert row["run_id"], row  # a real run, recorded in the timeline
        if row["alert"]:
            assert row["detect_seconds"] is not None and row["alert_resolved"], row
    assert {row["mode"] for row in report["modes"]} == {m.name for m in drill.load(
        profile, drill_faults(), drill_scenarios(), ("v1", "v2")).modes}
    assert all(row["reason"] for row in manual)
    # Healed: the host answers and no fault is left for the next drill.
    host = lab.host(report["host"])
    assert probe_health(host)[0], report["host"]
    saved = Path(report["report"])
    assert saved.is_file() and saved.with_suffix(".json").is_file()
    assert saved.read_text().startswith(f"# Drill {profile} (seed {report['seed']}): passed")


def drill_faults() -> tuple[str, ...]:
    from runbook_remediation.lab.lab import FAULTS, LAB_FAULTS

    return FAULTS + LAB_FAULTS


def drill_scenarios() -> set[str]:
    from runbook_remediation import catalogue
    from runbook_remediation.collection import find_collection

    return {s.name for s in catalogue.catalogue(find_collection())}
