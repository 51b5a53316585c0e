from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.runbook.remediation.plugins.filter.prometheus import (
    prometheus_bytes,
    prometheus_seconds,
    with_retention,
)

BASE = ["--config.file=/etc/prometheus.yml", "--storage.tsdb.path=/prometheus"]


@pytest.mark.parametrize(("args", "time", "size", "expected"), [
    (BASE, "15d", "", [*BASE, "--storage.tsdb.retention.time=15d"]),
    ([*BASE, "--storage.tsdb.retention.time=30d"], "15d", "", [*BASE, "--storage.tsdb.retention.time=15d"]),
    (["--storage.tsdb.retention.time", "30d", *BASE], "15d", "", [*BASE, "--storage.tsdb.retention.time=15d"]),
    ([*BASE, "--storage.tsdb.retention=30d"], "7d", "10GB",
     [*BASE, "--storage.tsdb.retention.time=7d", "--storage.tsdb.retention.size=10GB"]),
    ([*BASE, "--storage.tsdb.retention.size=50GB"], "", "", BASE),
    ([*BASE, "--web.enable-lifecycle"], "1h30m", "",
     [*BASE, "--web.enable-lifecycle", "--storage.tsdb.retention.time=1h30m"]),
])
def test_with_retention(args, time, size, expected):
    assert with_retention(list(args), time, size) == expected


@pytest.mark.parametrize(("args", "time", "size"), [
    ("--storage.tsdb.retention.time=30d", "15d", ""),
    (BASE, "15 days", ""),
    (BASE, "15d; rm -rf /", ""),
    (BASE, "", "10G"),
    ([1, 2], "15d", ""),
])
def test_with_retention_refuses(args, time, size):
    with pytest.raises(AnsibleFilterError):
        with_retention(args, time, size)


@pytest.mark.parametrize(("text", "seconds"), [("15d", 1296000), ("1h30m", 5400), ("0s", 0), ("2w", 1209600),
                                               ("1y", 31536000), ("500ms", 0.5)])
def test_prometheus_seconds(text, seconds):
    assert prometheus_seconds(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("0B", 0), ("512MB", 512 * 1024**2), ("10GB", 10 * 1024**3)])
def test_prometheus_bytes(text, size):
    assert prometheus_bytes(text) == size


@pytest.mark.parametrize("text", ["15", "d", "15 d", "-1d", "{{ 1 }}"])
def test_prometheus_seconds_refuses(text):
    with pytest.raises(AnsibleFilterError):
        prometheus_seconds(text)


@pytest.mark.parametrize("text", ["10G", "10 GB", "GB", "-1GB"])
def test_prometheus_bytes_refuses(text):
    with pytest.raises(AnsibleFilterError):
        prometheus_bytes(text)
