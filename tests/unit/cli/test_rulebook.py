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
    by_alert = {rule["condition"].split('alertname == "')[1].split('"')[0]: rule for rule in ruleset["rules"]
                if 'alertname == "' in rule["condition"]}
    for scenario in catalogue.catalogue(collection):
        for alert in scenario.alerts:
            action = by_alert[alert]["action"]["run_playbook"]
            assert action["name"] == scenario.fqcn
            assert scenario.playbook_path(collection).is_file() or scenario.name in {"db-restore"}
            # Destructive remediations never start from an alert alone.
            assert action["extra_vars"].get("runbook_diagnose_only", False) is (
                scenario.destructive and not scenario.automatic)
            # The runbook_scenario label wins over the name.
            assert by_alert[alert]["condition"].endswith("event.labels.runbook_scenario is not defined")
            # Only alerts the filter accepted, and only firing ones.
            assert by_alert[alert]["condition"].startswith(
                'event.runbook_rejected is not defined and event.status == "firing"')


def test_a_refused_alert_runs_no_scenario(collection):
    [ruleset] = yaml.safe_load((collection.root / RULEBOOK).read_text(encoding="utf-8"))
    first = ruleset["rules"][0]
    assert first["condition"] == "event.runbook_rejected is defined"
    assert first["action"]["run_playbook"]["name"] == "runbook.remediation.alert_unhandled"
    assert (collection.root / "playbooks" / "alert_unhandled.yml").is_file()


def test_the_webhook_needs_its_token_and_alerts_pass_the_collections_filter(collection):
    [ruleset] = yaml.safe_load((collection.root / RULEBOOK).read_text(encoding="utf-8"))
    [source] = ruleset["sources"]
    assert source["eda.builtin.webhook"]["token"] == "{{ webhook_token }}"
    # The collection's filter replaces event_splitter + insert_hosts_to_meta: checked fields, one host.
    assert [next(iter(f)) for f in source["filters"]] == ["runbook.remediation.alerts"]
    assert (collection.root / "extensions" / "eda" / "plugins" / "event_filter" / "alerts.py").is_file()


def test_rulebook_uses_only_builtin_and_own_plugins(collection):
    text = (collection.root / RULEBOOK).read_text(encoding="utf-8")
    assert "ansible.eda." not in text
    [ruleset] = yaml.safe_load(text)
    assert ruleset["execution_strategy"] == "parallel"  # the safety envelope, not the rulebook, serialises


def test_ansible_rulebook_accepts_it(collection):
    rules_parser = pytest.importorskip("ansible_rulebook.rules_parser")
    from ansible_rulebook.validators import Validate

    data = yaml.safe_load((collection.root / RULEBOOK).read_text(encoding="utf-8"))
    Validate.rulebook(data)
    [ruleset] = rules_parser.parse_rule_sets(data, {"webhook_host": "127.0.0.1", "webhook_port": 5000,
                                                    "webhook_token": "t"})
    scenarios = catalogue.catalogue(collection)
    # refused + one per alert name + one per scenario (runbook_scenario label) + the catch-all
    assert len(ruleset.rules) == 1 + sum(len(s.alerts) for s in scenarios) + len(scenarios) + 1
