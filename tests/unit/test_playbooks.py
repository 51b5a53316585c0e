"""Every scenario playbook is the frame and one role: nothing of the catalogue restated."""

from __future__ import annotations

import pytest
import yaml

from runbook_remediation import catalogue
from runbook_remediation.collection import find_collection

ROOT = find_collection().root
SCENARIOS = catalogue.catalogue(find_collection())
# What only the catalogue (meta/scenarios.yml) may say about a scenario.
CATALOGUE_KEYS = ("runbook_alerts", "runbook_scenario", "destructive", "severity", "alerts")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_playbook_is_the_frame_and_one_role(scenario):
    path = scenario.playbook_path(find_collection())
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 25, f"{path.name}: {len(text.splitlines())} lines"
    [play] = yaml.safe_load(text)
    assert not {"tasks", "pre_tasks", "post_tasks", "handlers"} & set(play), f"{path.name} has tasks of its own"
    [role] = play["roles"]
    assert role["role"] == "runbook.remediation.scenario"
    assert role["scenario_name"] == scenario.name
    assert role["scenario_role"].startswith("runbook.remediation.")
    assert (ROOT / "roles" / role["scenario_role"].split(".")[-1]).is_dir()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_playbook_restates_nothing_of_the_catalogue(scenario):
    text = scenario.playbook_path(find_collection()).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for key in CATALOGUE_KEYS:
        assert key not in body, f"{scenario.name}: the playbook restates {key}"
    for alert in scenario.alerts:
        assert alert not in body, f"{scenario.name}: the playbook restates its alert {alert}"
    # The play targets what --limit selects, never a pattern from a variable.
    assert yaml.safe_load(text)[0]["hosts"] == "all"


def test_the_frame_exists_once():
    frames = [p for p in (ROOT / "roles").glob("*/tasks/*.yml")
              if "runbook.remediation.scenario_begin" in p.read_text(encoding="utf-8")]
    assert [p.relative_to(ROOT).as_posix() for p in frames] == ["roles/scenario/tasks/main.yml"]
