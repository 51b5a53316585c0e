#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: remediation_guard

short_description: Admit or refuse a remediation through the durable safety envelope

version_added: 0.1.0

description:
  - The safety envelope every scenario passes before it acts, whichever entrance started it (the runbook CLI,
    C(ansible-playbook), AWX, an ansible-rulebook rule). Its state is one SQLite file, so it survives restarts of
    the CLI, the rulebook and the controller, and concurrent runs see each other.
  - O(action=admit) decides whether this run may remediate O(scenario) on O(target) now and, when it may, takes a
    lease on the target. It refuses a duplicate (the same alert, or another run on the target), a target on hold
    after its attempt budget, a target acted on less than O(min_interval) ago, and a scenario whose circuit
    breaker is open. The call that exhausts O(max_attempts) within O(window) puts the target on hold for
    O(cooldown) seconds and answers C(escalate). When the target's O(group) already has its share of targets
    being remediated (O(max_share) of O(group_size), the blast radius) it waits up to O(wait) seconds for a slot.
  - O(action=release) ends this run's attempt with its O(outcome); a C(failed) outcome (the remediation did not
    verify) counts against the target's circuit breaker, which opens after O(breaker_threshold) failures in a
    row and stays open until a human resets it (C(runbook breaker reset SCENARIO --target TARGET), or
    O(action=reset)). When O(fleet_breaker_threshold) targets are failing at once, the scenario's fleet breaker
    opens for every target.
  - O(action=status) reads the state; O(action=reset) closes breakers and lifts holds.
  - Runs where the state file lives, normally on the controller (C(delegate_to) V(localhost)).

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes

attributes:
  check_mode:
    support: full
    details:
      - In check mode O(action=admit) decides without taking a lease or writing anything; the other actions
        report what they would change.
  diff_mode:
    support: none
  platform:
    platforms: posix

options:
  action:
    description:
      - What to do.
    type: str
    choices: [admit, release, status, reset]
    default: admit
  path:
    description:
      - The envelope's SQLite file.
      - Default C($RUNBOOK_ENVELOPE_DB), else C(envelope.db) in the runbook state directory (C($RUNBOOK_STATE_DIR),
        C($XDG_STATE_HOME/runbook) or C(~/.local/state/runbook)).
      - On AWX, point it at storage that outlives the job's execution environment.
      - Ignored when C($RUNBOOK_STATE_DSN) is set (a libpq DSN or V(postgresql://) URL), the envelope is that
        PostgreSQL database, shared by every controller (needs psycopg2 on the controller).
    type: path
  scenario:
    description:
      - The scenario name, for example V(service-down). Required for O(action=admit) and O(action=release).
    type: str
  target:
    description:
      - What is remediated, for example V(web-1/gateway) (host and service). Required for O(action=admit) and
        O(action=release).
    type: str
  run_id:
    description:
      - This run's identifier; the lease belongs to it. Required for O(action=admit) and O(action=release).
    type: str
  alert_key:
    description:
      - The alert that triggered the run (fingerprint and start time). An alert already remediated, or found
        healthy, is answered C(duplicate).
    type: str
  group:
    description:
      - The blast-radius group of the target (replicas of one service). Default the target itself.
    type: str
  group_size:
    description:
      - How many targets the group has.
    type: int
    default: 1
  max_share:
    description:
      - The share of the group that may be remediated at once, between 0 and 1 (at least one target).
    type: float
    default: 0.5
  wait:
    description:
      - Seconds to wait for a blast-radius slot before answering C(busy).
    type: float
    default: 0
  max_attempts:
    description:
      - Attempts per target and scenario within O(window) before escalating.
    type: int
    default: 3
  window:
    description:
      - Seconds over which attempts are counted.
    type: float
    default: 3600
  min_interval:
    description:
      - Minimum seconds between two attempts on one target.
    type: float
    default: 0
  cooldown:
    description:
      - Seconds a target stays on hold once its budget is exhausted.
    type: float
    default: 3600
  breaker_threshold:
    description:
      - Failed verifications in a row of one target that open that target's circuit breaker.
    type: int
    default: 3
  fleet_breaker_threshold:
    description:
      - Targets with failed verifications at once that open the scenario's circuit breaker for the whole fleet.
    type: int
    default: 3
  lease_ttl:
    description:
      - Seconds after which the lease of a run that never released (killed controller) expires.
    type: float
    default: 900
  outcome:
    description:
      - The run's outcome, for O(action=release).
    type: str
    choices: [healthy, remediated, failed, escalate, planned, skipped]

notes:
  - Uses Python's C(sqlite3) only. Every decision is one C(BEGIN IMMEDIATE) transaction.

seealso:
  - module: runbook.remediation.health_check

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
- name: Ask the safety envelope before restarting
  runbook.remediation.remediation_guard:
    scenario: service-down
    target: "{{ inventory_hostname }}/gateway"
    run_id: "{{ runbook_run_id }}"
    alert_key: "{{ ansible_eda.event.fingerprint | default(omit) }}"
    group: gateway
    group_size: "{{ groups['gateway'] | length }}"
    max_share: 0.5
    wait: 120
  delegate_to: localhost
  register: admission

- name: Release the lease with the outcome
  runbook.remediation.remediation_guard:
    action: release
    scenario: service-down
    target: "{{ inventory_hostname }}/gateway"
    run_id: "{{ runbook_run_id }}"
    outcome: remediated
  delegate_to: localhost

- name: Close the service-down breaker after the cause was fixed
  runbook.remediation.remediation_guard:
    action: reset
    scenario: service-down
  delegate_to: localhost
"""

RETURN = r"""
decision:
  description:
    - For O(action=admit), one of V(act), V(duplicate), V(cooldown), V(escalate), V(breaker), V(busy).
  returned: action is admit
  type: str
  sample: act
reason:
  description: Why, in one line.
  returned: action is admit
  type: str
  sample: attempt 1 of 3 on web-1/gateway within 3600s
attempts:
  description: Attempts within the window, this one included when admitted.
  returned: when counted
  type: int
  sample: 1
breaker_open:
  description: Whether the scenario's circuit breaker is open after O(action=release).
  returned: action is release
  type: bool
  sample: false
breaker_failures:
  description: Failed verifications in a row after O(action=release).
  returned: action is release
  type: int
  sample: 0
status:
  description: Breakers, holds, active leases and recent decisions.
  returned: action is status or reset
  type: dict
path:
  description: The state file used.
  returned: always
  type: str
  sample: /root/.local/state/runbook/envelope.db
error_kind:
  description: V(input) for bad arguments, V(unavailable) when the state file cannot be used.
  returned: failure
  type: str
  sample: unavailable
"""

import sqlite3

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.remediation.plugins.module_utils._envelope import (
    Envelope,
    EnvelopeError,
    default_path,
)
from ansible_collections.runbook.remediation.plugins.module_utils._statedb import env_dsn


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", choices=["admit", "release", "status", "reset"], default="admit"),
            path=dict(type="path"),
            scenario=dict(type="str"),
            target=dict(type="str"),
            run_id=dict(type="str"),
            alert_key=dict(type="str", no_log=False),
            group=dict(type="str"),
            group_size=dict(type="int", default=1),
            max_share=dict(type="float", default=0.5),
            wait=dict(type="float", default=0),
            max_attempts=dict(type="int", default=3),
            window=dict(type="float", default=3600),
            min_interval=dict(type="float", default=0),
            cooldown=dict(type="float", default=3600),
            breaker_threshold=dict(type="int", default=3),
            fleet_breaker_threshold=dict(type="int", default=3),
            lease_ttl=dict(type="float", default=900),
            outcome=dict(type="str", choices=["healthy", "remediated", "failed", "escalate", "planned", "skipped"]),
        ),
        required_if=[
            ("action", "admit", ("scenario", "target", "run_id")),
            ("action", "release", ("scenario", "target", "run_id", "outcome")),
        ],
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"] or default_path()

    def bad(msg):
        module.fail_json(msg=msg, error_kind="input", path=path)

    if not 0 < p["max_share"] <= 1:
        bad("max_share must be in (0, 1], got %s" % p["max_share"])
    for name in ("group_size", "max_attempts", "breaker_threshold", "fleet_breaker_threshold"):
        if p[name] < 1:
            bad("%s must be at least 1, got %s" % (name, p[name]))
    for name in ("wait", "window", "min_interval", "cooldown", "lease_ttl"):
        if p[name] < 0:
            bad("%s must not be negative, got %s" % (name, p[name]))

    dsn = env_dsn()
    try:
        envelope = Envelope(path, dsn=dsn)
    except EnvelopeError as exc:
        module.fail_json(msg=str(exc), error_kind="unavailable", path=path)
    path = envelope.path  # the shared database's password-free name when RUNBOOK_STATE_DSN is set
    try:
        if p["action"] == "admit":
            result = envelope.admit(
                p["target"], p["scenario"], p["run_id"], group=p["group"], group_size=p["group_size"],
                max_share=p["max_share"], alert_key=p["alert_key"] or None, max_attempts=p["max_attempts"],
                window=p["window"], min_interval=p["min_interval"], cooldown=p["cooldown"],
                breaker_threshold=p["breaker_threshold"], lease_ttl=p["lease_ttl"], wait=p["wait"],
                dry_run=module.check_mode, fleet_breaker_threshold=p["fleet_breaker_threshold"])
            # A lease (or a hold) was written: that is a change of the envelope's state.
            wrote = result.get("attempt_id") is not None or result["decision"] == "escalate"
            changed = wrote and not module.check_mode
            module.exit_json(changed=changed, path=path, **result)
        if p["action"] == "release":
            if module.check_mode:
                module.exit_json(changed=False, path=path, released=False)
            result = envelope.release(p["target"], p["scenario"], p["run_id"], p["outcome"],
                                      breaker_threshold=p["breaker_threshold"],
                                      fleet_breaker_threshold=p["fleet_breaker_threshold"])
            module.exit_json(changed=result["released"], path=path, **result)
        if p["action"] == "reset":
            before = envelope.status()
            if module.check_mode:
                module.exit_json(changed=bool(before["breakers"] or before["holds"]), path=path, status=before)
            result = envelope.reset(scenario=p["scenario"], target=p["target"])
            module.exit_json(changed=bool(result["breakers_closed"] or result["holds_lifted"]), path=path,
                             status=envelope.status(), **result)
        module.exit_json(changed=False, path=path, status=envelope.status())
    except (sqlite3.Error, *envelope.conn.errors) as exc:  # mid-way: locked for too long, damaged, gone
        module.fail_json(msg="safety envelope state %s: %s" % (path, exc), error_kind="unavailable", path=path)
    finally:
        envelope.close()


if __name__ == "__main__":
    main()
