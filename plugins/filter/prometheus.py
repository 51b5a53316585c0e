# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over Prometheus's command line: its retention flags, set in an argument list.

Prometheus takes its retention from the command line only (kingpin refuses a repeated
flag), so lowering it means rewriting the arguments the service starts with: the
container's command, a Compose service's `command:`, or Debian's ARGS line.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# The flags that set retention, the deprecated `--storage.tsdb.retention` among them.
_RETENTION_FLAG = re.compile(r"^--storage\.tsdb\.retention(\.time|\.size)?(=.*)?$")
DURATION_RE = re.compile(r"^([0-9]{1,6}(y|w|d|h|m|s|ms))+$")
SIZE_RE = re.compile(r"^[0-9]{1,6}(B|KB|MB|GB|TB|PB|EB)$")
_DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")
_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
# Prometheus's sizes are powers of 1024 (units.Base2Bytes: 1KB = 1024 B).
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "PB": 1024**5, "EB": 1024**6}


def prometheus_seconds(duration):
    """A Prometheus duration (``15d``, ``1h30m``, ``0s``) in seconds."""
    text = str(duration)
    if not DURATION_RE.match(text):
        raise AnsibleFilterError("prometheus_seconds: %r is not a Prometheus duration such as 15d" % (duration,))
    return sum(int(number) * _SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def prometheus_bytes(size):
    """A Prometheus size (``10GB``, ``512MB``, ``0B``) in bytes (powers of 1024)."""
    text = str(size)
    match = re.match(r"^([0-9]{1,6})(B|KB|MB|GB|TB|PB|EB)$", text)
    if not match:
        raise AnsibleFilterError("prometheus_bytes: %r is not a Prometheus size such as 10GB" % (size,))
    return int(match.group(1)) * _BYTES[match.group(2)]


def with_retention(args, time="", size=""):
    """``args`` (a list of strings) without any retention flag (``--flag=value`` or
    ``--flag value``), then ``--storage.tsdb.retention.time=TIME`` and
    ``--storage.tsdb.retention.size=SIZE`` for those given."""
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise AnsibleFilterError("with_retention expects the command line as a list of strings")
    if time and not DURATION_RE.match(str(time)):
        raise AnsibleFilterError("with_retention: %r is not a Prometheus duration such as 15d" % (time,))
    if size and not SIZE_RE.match(str(size)):
        raise AnsibleFilterError("with_retention: %r is not a Prometheus size such as 10GB" % (size,))
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        match = _RETENTION_FLAG.match(arg)
        if match:
            skip = match.group(2) is None  # `--flag value`: the value is the next argument
            continue
        kept.append(arg)
    if time:
        kept.append("--storage.tsdb.retention.time=%s" % time)
    if size:
        kept.append("--storage.tsdb.retention.size=%s" % size)
    return kept


class FilterModule:
    def filters(self):
        return {"with_retention": with_retention, "prometheus_seconds": prometheus_seconds,
                "prometheus_bytes": prometheus_bytes}
