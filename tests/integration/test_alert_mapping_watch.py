"""Alert mapping through `runbook watch` on the real lab: a seed's alert name runs its
scenario; an alert that maps to nothing is recorded and announced once, never dropped."""

from __future__ import annotations

import pytest

from tests.conftest import alert_payload, post_alerts, wait_for, watcher
from tests.integration.test_security import alert, notifications, timeline_runs

pytestmark = pytest.mark.lab


def test_a_seed_alert_runs_its_scenario_and_an_unmapped_one_is_announced(lab, tmp_path):
    with watcher(tmp_path, "--no-attach") as port:
        before = len(notifications("no-scenario"))
        earlier = {r["id"] for r in timeline_runs()}
        seed = alert(alertname="GgenMcpHighErrorRate", host="lab-2", severity="warning")
        unmapped = alert(alertname="NobodyMappedThisAlert", host="lab-2", severity="warning")
        assert post_alerts(port, alert_payload(seed, unmapped)) == 200
        wait_for(lambda: len(notifications("no-scenario")) > before, timeout=240, interval=1,
                 what="the unmapped alert announced")
        # error-rate is destructive and not automatic: from an alert it only diagnoses.
        wait_for(lambda: any(r["scenario"] == "error-rate" and r["entrance"] == "rulebook" and r["ended_at"]
                             for r in timeline_runs() if r["id"] not in earlier),
                 timeout=300, interval=1, what="error-rate run by the seed's alert name")
    new = notifications("no-scenario")[before:]
    assert len(new) == 1, new
    assert "NobodyMappedThisAlert" in new[0]["message"], new[0]
    # The timeline: one error-rate run for the seed's name; the unmapped alert's row is the
    # run that recorded and announced it (alert_unhandled), and no scenario ran for it.
    runs = [r for r in timeline_runs() if r["id"] not in earlier]
    assert sorted(r["scenario"] for r in runs) == ["error-rate", "runbook.remediation.alert_unhandled"], runs
