# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # What service_state and service_recover share: the service and its restart budget.
    DOCUMENTATION = r"""
options:
  service:
    description:
      - The service description, an item of the inventory's C(runbook_services) (secrets left out).
      - Needs C(name), C(manager) (V(systemd), V(docker), V(compose) or V(kubernetes)), C(health_url) and, by
        manager, C(unit), C(container), C(project_src) (with optional C(project) and C(compose_service)) or
        C(deployment) (with optional C(namespace), C(context), C(kubeconfig) and C(kubectl), the path of the
        kubectl binary). C(health_jmespath) and C(port) are used when present.
      - For a Kubernetes Deployment the module runs where the kubeconfig is (usually the controller); a restart
        deletes the pods that are not Ready (their ReplicaSet starts new ones at once, without the kubelet's
        back-off), or, when every pod is Ready and the restart is forced, runs C(kubectl rollout restart).
    type: dict
    required: true
  dependencies:
    description:
      - Descriptions of the services this one depends on (its C(depends_on)), on the same host.
    type: list
    elements: dict
    default: []
  state_dir:
    description:
      - Directory on the target that keeps the restart history (C(restarts-NAME@THING.json)), so every entrance
        (CLI, AWX, rulebook, a new controller) counts the same restarts.
    type: path
    default: /var/lib/runbook-remediation
  budget_window:
    description:
      - Seconds a restart counts against the budget.
    type: float
    default: 3600
  health_timeout:
    description:
      - Seconds per health probe.
    type: float
    default: 3
  log_lines:
    description:
      - Log lines kept as evidence.
    type: int
    default: 50
"""
