"""The EDA rulebook is generated from the catalogue and stays in step with it."""

from __future__ import annotations

import pytest
import yaml

from runbook_remediation import catalogue, rulebook
from runbook_remediation.collection import find_collection
from runbook_remediation.rulebook import RULEBOOK


@pytest.fixture(scope="module")
def collection():
    return find_collection()


def test_committed_rulebook_is_current(collection):
    committed = (collection.root / RULEBOOK).read_text(encoding="utf-8")
    assert committed == rulebook.rulebook(catalogue.catalogue(collection)), (
        "regenerate: python -m runbook_remediation.rulebook > extensions/eda/rulebooks/alertmanager.yml")


def test_every_alert_of_the_catalogue_has_a_rule_running_its_playbook(collection):
    [ruleset] = yaml.safe_load((collection.root / RULEBOOK).read_text(encoding="utf-8"))
    by_alert = {rule["condition"].split('alertname == "')[1].rstrip('"'): rule for rule in ruleset["rules"]}
    for scenario in catalogue.catalogue(collection):
        for alert in scenario.alerts:
            action = by_alert[alert]["action"]["run_playbook"]
            assert action["name"] == scenario.fqcn
            assert scenario.playbook_path(collection).is_file() or scenario.name in {"db-restore"}
            # Destructive remediations never start from an alert alone.
            assert action["extra_vars"].get("runbook_diagnose_only", False) is scenario.destructive
            assert by_alert[alert]["condition"].startswith('event.status == "firing"')


def test_rulebook_uses_only_builtin_plugins(collection):
    text = (collection.root / RULEBOOK).read_text(encoding="utf-8")
    assert "ansible.eda." not in text
    [ruleset] = yaml.safe_load(text)
    assert ruleset["execution_strategy"] == "parallel"  # the safety envelope, not the rulebook, serialises


def test_ansible_rulebook_accepts_it(collection):
    rules_parser = pytest.importorskip("ansible_rulebook.rules_parser")
    from ansible_rulebook.validators import Validate

    data = yaml.safe_load((collection.root / RULEBOOK).read_text(encoding="utf-8"))
    Validate.rulebook(data)
    [ruleset] = rules_parser.parse_rule_sets(data, {"webhook_host": "127.0.0.1", "webhook_port": 5000})
    assert len(ruleset.rules) == sum(len(s.alerts) for s in catalogue.catalogue(collection))
