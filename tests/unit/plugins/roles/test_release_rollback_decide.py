"""release_rollback's decision order (tasks/decide.yml, pure templating on the controller),
run by ansible-playbook on localhost with the facts the diagnosis would have set: a release
the errors followed comes before a failing provider; a failing provider with a fallback is
switched; the fallback in use, or a healthy provider, escalates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

NOW = time.time()
PLAN = {"configured": True, "env": "LLM_PROVIDER", "failing": True, "current": "primary", "fallback": "secondary",
        "switch": True, "escalate": "", "evidence": "degraded: provider primary is down"}
IN_USE = {**PLAN, "current": "secondary", "switch": False,
          "escalate": "provider secondary is failing and it is the fallback already: nothing left to switch to"}
HEALTHY = {**PLAN, "failing": False, "switch": False}
RELEASE = {"current": {"release": "v2", "since": NOW - 60, "recorded": True, "id": "b"},
           "previous": {"release": "v1", "id": "a"}, "began": NOW - 50}
NO_RELEASE = {"current": {"release": "unknown", "since": 0, "id": ""}, "previous": {}, "began": NOW - 50}

CASES = {
    "release_and_provider": (RELEASE, PLAN),
    "provider": (NO_RELEASE, PLAN),
    "fallback_in_use": (NO_RELEASE, IN_USE),
    "provider_healthy": (NO_RELEASE, HEALTHY),
    "errors_before_release_provider": ({**RELEASE, "began": NOW - 300}, PLAN),
}

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Decide
      ansible.builtin.include_role:
        name: runbook.remediation.release_rollback
        tasks_from: decide
    - name: Show
      ansible.builtin.debug:
        msg: >-
          {{ {'act': __release_rollback_act, 'stop': __release_rollback_stop,
              'fix': __release_rollback_fix} | to_json }}
"""


def decide(tmp_path: Path) -> dict:
    hosts = {}
    for name, (release, plan) in CASES.items():
        hosts[name] = {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "__release_rollback_svc": {"name": "demo"}, "__release_rollback_ratio_query": {},
            "__release_rollback_ratio": 0.9, "__release_rollback_query": "q",
            "__release_rollback_current": release["current"], "__release_rollback_previous": release["previous"],
            "__release_rollback_history": [release["previous"]] if release["previous"] else [],
            "__release_rollback_began": release["began"], "__release_rollback_dependencies": [],
            "__release_rollback_findings": [], "__release_rollback_provider": plan,
        }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    result = subprocess.run([playbook, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")],
                            capture_output=True, text=True, env=env, check=False, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    shown = next(t for t in tasks if t["task"]["name"] == "Show")["hosts"]
    return {name: json.loads(shown[name]["msg"]) for name in CASES}


def test_the_decision_order(tmp_path):
    out = decide(tmp_path)
    # A release the errors followed: rolled back, even with the provider failing too.
    assert out["release_and_provider"]["act"] and out["release_and_provider"]["fix"] == "rollback"
    # No release to blame, the provider failing with a fallback: switched.
    assert out["provider"]["act"] and out["provider"]["fix"] == "provider"
    # Errors older than the release, provider failing: not the release, the provider.
    assert out["errors_before_release_provider"]["act"]
    assert out["errors_before_release_provider"]["fix"] == "provider"
    # The fallback in use: escalate with why, nothing to act on.
    assert not out["fallback_in_use"]["act"]
    assert out["fallback_in_use"]["stop"][0] == "escalate"
    assert "fallback already" in out["fallback_in_use"]["stop"][1]
    # A healthy provider decides nothing: the release path's escalation stands.
    assert not out["provider_healthy"]["act"]
    assert "no previous release" in out["provider_healthy"]["stop"][1]
