"""Shell completion as the shell asks for it (``_RUNBOOK_COMPLETE=bash_complete``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runbook_remediation.timeline import open_store

REPO = Path(__file__).resolve().parents[3]


def complete(words: str, env: dict | None = None) -> list[str]:
    """What `runbook` offers for the last word of ``words`` (bash's protocol: type,value)."""
    parts = words.split(" ")
    result = subprocess.run(
        [sys.executable, "-m", "runbook_remediation"], capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {}), "_RUNBOOK_COMPLETE": "bash_complete", "COMP_WORDS": words,
             "COMP_CWORD": str(len(parts) - 1)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a completion never prints an error
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line.startswith("plain,")]


def test_scenario_names(runbook_env):
    assert complete("runbook run ") == ["outcome", "slow", "wipe-cache"]
    assert complete("runbook diagnose w") == ["wipe-cache"]
    assert complete("runbook breaker reset o") == ["outcome"]


def test_scenario_names_offer_nothing_without_a_collection(runbook_env, tmp_path):
    assert complete("runbook run ", {"RUNBOOK_COLLECTION_ROOT": str(tmp_path / "none")}) == []


def test_lab_faults_and_releases():
    assert complete("runbook lab break crash") == ["crash", "crash-loop"]
    assert complete("runbook lab deploy v") == ["v1", "v2"]


def test_hosts_from_the_given_inventory(runbook_env, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"gw-1": {}}, "children": {
        "gateways": {"hosts": {"gw-2": {}, "edge-1": {}}}}}}), encoding="utf-8")
    assert complete(f"runbook run service-down -i {inventory} -l gw") == ["gw-1", "gw-2"]
    assert complete("runbook run service-down -l e", {"RUNBOOK_INVENTORY": str(inventory)}) == ["edge-1"]
    assert complete("runbook run service-down -l ") == []  # no lab, no inventory: nothing, no error


def test_incident_ids_from_the_timeline(runbook_env, collection):
    store_module = "plugins/module_utils/_timeline.py"  # the real store in the fixture collection
    (collection / store_module).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / store_module, collection / store_module)
    assert complete("runbook incident show ") == []  # no store yet: nothing, and none is created
    assert not (runbook_env / "timeline.db").exists()
    with open_store() as store:
        first = store.new_incident(title="disk full on gw-1", severity="P2")
    assert complete("runbook incident show ") == [first]
    assert complete(f"runbook postmortem {first[:4]}") == [first]
    assert complete("runbook run outcome --incident I") == [first]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script(shell):
    result = subprocess.run([sys.executable, "-m", "runbook_remediation", "completion", shell],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "_RUNBOOK_COMPLETE" in result.stdout
