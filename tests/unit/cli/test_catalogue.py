"""The scenario catalogue: the real one is consistent, the loader refuses bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook_remediation import catalogue, scenarios
from runbook_remediation.collection import Collection
from runbook_remediation.errors import BadInput, ExitCode, RunbookError

REPO = Path(__file__).resolve().parents[3]
REAL = Collection(REPO, REPO)
SCENARIOS = catalogue.catalogue(REAL)


def test_the_catalogue_is_not_empty():
    assert SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_entry_names_an_existing_playbook(scenario):
    path = scenario.playbook_path(REAL)
    assert path.is_file(), f"{scenario.name}: {path} does not exist"
    plays = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(plays, list) and plays, f"{path} holds no play"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_entry_is_complete(scenario):
    assert scenario.description
    assert scenario.fqcn == f"runbook.remediation.{scenario.name.replace('-', '_')}"
    assert set(scenario.managers) <= {"systemd", "docker", "compose", "kubernetes"}
    assert scenario.managers


def test_names_and_alerts_are_unique():
    names = [s.name for s in SCENARIOS]
    alerts = [a for s in SCENARIOS for a in s.alerts]
    assert len(names) == len(set(names))
    assert len(alerts) == len(set(alerts)), "an alert maps to one scenario"


def write(tmp_path: Path, entries) -> Path:
    path = tmp_path / "scenarios.yml"
    path.write_text(yaml.safe_dump({"scenarios": entries}), encoding="utf-8")
    return path


def entry(**overrides) -> dict:
    return {"name": "disk-full", "playbook": "disk_full", "description": "  The disk\n is full. ",
            "severity": "P1", "alerts": ["DiskFull"], "managers": ["systemd"], **overrides}


def test_load(tmp_path):
    [scenario] = catalogue.load(write(tmp_path, [entry()]))
    assert scenario == catalogue.Scenario(
        name="disk-full", playbook="disk_full", description="The disk is full.", severity="P1",
        alerts=("DiskFull",), destructive=False, managers=("systemd",),
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Disk_Full"}, "kebab-case"),
        ({"playbook": "diskfull"}, "kebab-case"),
        ({"severity": "P9"}, "severity must be one of P0, P1, P2, P3"),
        ({"category": "securty"}, "category must be one of security or nothing"),
    ],
)
def test_load_refuses_bad_entries(tmp_path, overrides, message):
    with pytest.raises(RunbookError, match=message):
        catalogue.load(write(tmp_path, [entry(**overrides)]))


def test_security_category(tmp_path):
    [scenario] = catalogue.load(write(tmp_path, [entry(category="security")]))
    assert scenario.category == "security"
    assert {s.name for s in SCENARIOS if s.category == "security"} == {
        "key-rotation", "security-evidence", "auth-abuse", "isolate-host", "isolate-pods"}


def test_load_refuses_unreadable_yaml(tmp_path):
    path = tmp_path / "scenarios.yml"
    path.write_text("scenarios: [\n", encoding="utf-8")
    with pytest.raises(RunbookError, match="cannot read the scenario catalogue"):
        catalogue.load(path)


def test_get_and_for_alert(tmp_path):
    (tmp_path / "meta").mkdir()
    write(tmp_path / "meta", [entry(), entry(name="service-down", playbook="service_down", alerts=["ServiceDown"])])
    collection = Collection(tmp_path, tmp_path)
    assert catalogue.get(collection, "disk-full").playbook == "disk_full"
    assert catalogue.for_alert(collection, "ServiceDown").name == "service-down"
    assert catalogue.for_alert(collection, "Nope") is None
    with pytest.raises(RunbookError) as info:
        catalogue.get(collection, "disk_full")
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert info.value.message == "unknown scenario 'disk_full' (known: disk-full, service-down)"
    assert info.value.hint == "scenario names are kebab-case: disk-full"


def test_docs_page_is_rendered_from_the_catalogue():
    from runbook_remediation.docs import render

    page = (REPO / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert page == render(SCENARIOS), (
        "docs/scenarios.md is stale: python -m runbook_remediation.docs > docs/scenarios.md"
    )


def test_revert_vars_are_plain_role_variables(tmp_path):
    [scenario] = catalogue.load(write(tmp_path, [entry(revert={"thing_action": "revert", "thing_revert": True})]))
    assert scenario.revert == (("thing_action", "revert"), ("thing_revert", True))
    for bad in ({"Bad-Name": "x"}, {"thing_action": ["a"]}, ["thing_action"]):
        with pytest.raises(RunbookError, match="revert must map role variables to plain values"):
            catalogue.load(write(tmp_path, [entry(revert=bad)]))


def test_the_real_reverts_name_the_variables_their_roles_read():
    reverts = {s.name: dict(s.revert) for s in SCENARIOS if s.revert}
    assert reverts == {"env-toggle": {"env_toggle_revert": True}, "isolate-pods": {"pod_isolate_action": "revert"},
                       "isolate-host": {"host_isolate_action": "revert"},
                       "maintenance-mode": {"maintenance_mode_action": "disable"},
                       "traffic-drain": {"traffic_weight_action": "revert"}}


def test_with_revert_adds_the_vars_and_refuses_a_contradiction():
    [drain] = [s for s in SCENARIOS if s.name == "traffic-drain"]
    assert scenarios.with_revert(drain, {"service": "api"}) == {"service": "api", "traffic_weight_action": "revert"}
    assert scenarios.with_revert(drain, {"traffic_weight_action": "revert"}) == {"traffic_weight_action": "revert"}
    with pytest.raises(BadInput, match="disagrees"):
        scenarios.with_revert(drain, {"traffic_weight_action": "set"})
    [down] = [s for s in SCENARIOS if s.name == "service-down"]
    with pytest.raises(BadInput, match="nothing to revert"):
        scenarios.with_revert(down, {})
