# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over Kubernetes objects: resource quantities, OOM kills, rollout revisions, selectors."""

from __future__ import annotations

import datetime
import math
import re
from decimal import Decimal, InvalidOperation

from ansible.errors import AnsibleFilterError

# The quantity grammar of k8s.io/apimachinery resource.Quantity: a number, then a binary
# suffix (Ki..Ei), a decimal one (n, u, m, k, M..E) or an exponent (e3, E6).
_QUANTITY_RE = re.compile(r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)"
                          r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_FACTORS = {
    "Ki": Decimal(1024), "Mi": Decimal(1024) ** 2, "Gi": Decimal(1024) ** 3, "Ti": Decimal(1024) ** 4,
    "Pi": Decimal(1024) ** 5, "Ei": Decimal(1024) ** 6,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def kubernetes_bytes(quantity):
    """A Kubernetes quantity (``128Mi``, ``1G``, ``16318164Ki``, ``1e9``) as a whole number,
    rounded up as Kubernetes rounds a byte count (``500m`` of memory is 1 byte)."""
    text = str(quantity).strip()
    match = _QUANTITY_RE.match(text)
    if not match:
        raise AnsibleFilterError("kubernetes_bytes: %r is not a Kubernetes quantity such as 128Mi" % (quantity,))
    number, suffix = match.group(1), match.group(2) or ""
    try:
        factor = _FACTORS[suffix] if suffix in _FACTORS else Decimal(10) ** int(suffix[1:])
        value = Decimal(number) * factor
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise AnsibleFilterError("kubernetes_bytes: %r is not a Kubernetes quantity: %s" % (quantity, exc)) from exc
    if value < 0:
        raise AnsibleFilterError("kubernetes_bytes: %r is negative" % (quantity,))
    return math.ceil(value)


def _epoch(stamp):
    """An API timestamp (RFC 3339, UTC) in seconds since the epoch; None when it is not one."""
    try:
        return datetime.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def kubernetes_oom_kills(pods, container, since=0):
    """The OOM kills of ``container`` the kubelet recorded in ``pods`` (k8s_info's
    resources): each container status whose state or lastState is terminated with reason
    OOMKilled, finished at or after ``since`` (seconds since the epoch). Returns
    [{pod, finished_at, restarts}], oldest first."""
    if not isinstance(pods, list):
        raise AnsibleFilterError("kubernetes_oom_kills expects a list of pods")
    kills = []
    for pod in pods:
        name = ((pod or {}).get("metadata") or {}).get("name", "")
        for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != container:
                continue
            for key in ("state", "lastState"):
                terminated = (status.get(key) or {}).get("terminated") or {}
                if terminated.get("reason") != "OOMKilled":
                    continue
                finished = str(terminated.get("finishedAt") or "")
                when = _epoch(finished)  # not dated (None): counted (the kubelet always dates it)
                if when is None or when >= float(since):
                    kills.append({"pod": name, "finished_at": finished,
                                  "restarts": int(status.get("restartCount") or 0)})
    return sorted(kills, key=lambda kill: kill["finished_at"])


def kubernetes_revisions(replicasets, deployment):
    """A Deployment's rollout history from its ReplicaSets (k8s_info's resources): one
    entry per revision, oldest first - {release: revision-N, revision, id (the ReplicaSet),
    image (its first container's), at (its creation, seconds since the epoch)}. Only the
    ReplicaSets the Deployment owns count."""
    if not isinstance(replicasets, list):
        raise AnsibleFilterError("kubernetes_revisions expects a list of ReplicaSets")
    entries = []
    for rs in replicasets:
        metadata = (rs or {}).get("metadata") or {}
        owners = [o.get("name") for o in metadata.get("ownerReferences") or [] if o.get("kind") == "Deployment"]
        revision = (metadata.get("annotations") or {}).get("deployment.kubernetes.io/revision", "")
        if deployment not in owners or not str(revision).isdigit():
            continue
        containers = ((((rs.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}])
        entries.append({"release": "revision-%s" % revision, "revision": int(revision), "id": metadata.get("name", ""),
                        "image": containers[0].get("image", ""),
                        "at": _epoch(metadata.get("creationTimestamp")) or 0.0})
    return sorted(entries, key=lambda entry: entry["revision"])


# A label key (an optional DNS prefix, then a name) and a label value, as the API accepts them:
# a selector string is made only of these, so nothing else can slip into it.
_LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_OPERATORS = {"In": "in", "NotIn": "notin"}


def kubernetes_selector(selector):
    """A workload's ``spec.selector`` (matchLabels and matchExpressions) as the label
    selectors of kubernetes.core's k8s_info (``app=web``, ``tier in (a,b)``, ``!canary``):
    the pods or ReplicaSets it owns, no more. An empty selector selects everything, so it
    is refused."""
    if not isinstance(selector, dict):
        raise AnsibleFilterError("kubernetes_selector expects a selector (matchLabels, matchExpressions)")
    selectors = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        _check_label(key, [value])
        selectors.append("%s=%s" % (key, value))
    for expression in selector.get("matchExpressions") or []:
        key, operator = (expression or {}).get("key"), (expression or {}).get("operator")
        values = [str(v) for v in (expression or {}).get("values") or []]
        _check_label(key, values)
        if operator in _OPERATORS and values:
            selectors.append("%s %s (%s)" % (key, _OPERATORS[operator], ",".join(values)))
        elif operator == "Exists" and not values:
            selectors.append(key)
        elif operator == "DoesNotExist" and not values:
            selectors.append("!" + key)
        else:
            raise AnsibleFilterError("kubernetes_selector: %r is not a selector expression" % (expression,))
    if not selectors:
        raise AnsibleFilterError("kubernetes_selector: the selector is empty (it would select everything)")
    return selectors


def _check_label(key, values):
    if not isinstance(key, str) or not _LABEL_KEY_RE.match(key):
        raise AnsibleFilterError("kubernetes_selector: %r is not a label key" % (key,))
    for value in values:
        if not isinstance(value, str) or not _LABEL_VALUE_RE.match(value):
            raise AnsibleFilterError("kubernetes_selector: %r is not a label value" % (value,))


class FilterModule:
    def filters(self):
        return {"kubernetes_bytes": kubernetes_bytes, "kubernetes_oom_kills": kubernetes_oom_kills,
                "kubernetes_revisions": kubernetes_revisions, "kubernetes_selector": kubernetes_selector}
