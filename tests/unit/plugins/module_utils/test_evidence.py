"""The evidence collector (module_utils/_evidence.py) and the archive (action/evidence_bundle.py)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from ansible_collections.runbook.remediation.plugins.action.evidence_bundle import build_archive, safe_name
from ansible_collections.runbook.remediation.plugins.module_utils import _evidence

EXEC_START = ('{ path=/usr/bin/python3 ; argv[]=/usr/bin/python3 /opt/demo/demo.py --port 8080 '
              '--config=/etc/demo/demo.conf --log-dir /var/log/demo ; ignore_errors=no ; start_time=[n/a] }')

SYSTEMD = {"name": "demo", "manager": "systemd", "unit": "demo.service", "health_url": "http://127.0.0.1:1/health",
           "logs": ["/var/log/demo/*.log"]}


def test_exec_paths_finds_the_executable_and_path_arguments():
    assert _evidence.exec_paths(EXEC_START) == ["/usr/bin/python3", "/opt/demo/demo.py", "/etc/demo/demo.conf",
                                                "/var/log/demo"]
    assert _evidence.exec_paths("") == []


def test_tail_file_keeps_the_last_lines_within_the_byte_bound(tmp_path):
    path = tmp_path / "security.log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert _evidence.tail_file(str(path), 3, 1 << 20).splitlines() == ["line 997", "line 998", "line 999"]
    # Only the end is read: the first, partial line of the window is dropped.
    text = _evidence.tail_file(str(path), 1000, 100)
    assert text.splitlines()[-1] == "line 999" and all(line.startswith("line ") for line in text.splitlines())


class FakeHost:
    """run(argv) answers from a table; records every command (to show that none writes)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        for prefix, answer in self.answers.items():
            if " ".join(argv).startswith(prefix):
                return answer
        return 0, "", ""


def test_systemd_collection_reads_only_and_checksums_the_unit(tmp_path):
    unit = tmp_path / "demo.service"
    unit.write_text("[Service]\n")
    host = FakeHost({
        "systemctl show": (0, f"MainPID=42\nExecStart={EXEC_START}\nFragmentPath={unit}\nDropInPaths=\n"
                              "EnvironmentFiles=/etc/demo/env (ignore_errors=no)\n", ""),
        "lsof": (0, "python3 42 demo 3u IPv4 TCP 127.0.0.1:8080 (LISTEN)\n", ""),
    })
    collector = _evidence.Collector(host, SYSTEMD, log_lines=10, security_logs=[str(tmp_path / "missing.log")])
    out = collector.collect()
    names = [item["name"] for item in out["items"]]
    for wanted in ("unit_show", "unit_status", "service_journal", "auth_log", "processes", "sockets", "open_files",
                   "users", "security_log"):
        assert wanted in names
    assert ["lsof", "-n", "-P", "-p", "42"] in host.calls
    # Only reading commands ran.
    assert {argv[0] for argv in host.calls} <= {"systemctl", "journalctl", "ps", "ss", "lsof", "who"}
    assert all(argv[1] in ("show", "status") for argv in host.calls if argv[0] == "systemctl")
    sums = {c["path"]: c for c in out["checksums"]}
    assert sums[str(unit)]["sha256"] == hashlib.sha256(b"[Service]\n").hexdigest()
    assert "/etc/demo/env" in sums  # the environment file: checksummed, never read into the bundle
    missing = next(i for i in out["items"] if i["name"] == "security_log")
    assert missing["rc"] == 1 and "missing.log" in missing["content"]


def test_container_collection_runs_inside_and_drops_the_environment_values():
    svc = {"name": "demo", "manager": "docker", "container": "c1", "health_url": "http://127.0.0.1:1/health"}
    inspect = [{"Path": "python3", "Args": ["/opt/demo/demo.py", "--port", "1"], "State": {"Running": True},
                "Config": {"Env": ["DEMO_API_KEY=s3cr3t-value", "PATH=/usr/bin"]}}]
    host = FakeHost({
        "docker inspect": (0, json.dumps(inspect), ""),
        "docker exec c1 sha256sum": (0, "ab" * 32 + "  /proc/1/exe\n", ""),
    })
    out = _evidence.Collector(host, svc).collect()
    dump = json.dumps(out)
    assert "s3cr3t-value" not in dump
    assert any(argv[:3] == ["docker", "exec", "c1"] and argv[3] == "ps" for argv in host.calls)
    sums = {c["path"]: c for c in out["checksums"]}
    assert sums["/proc/1/exe"]["sha256"] == "ab" * 32
    assert "error" in sums["/opt/demo/demo.py"]


def test_kubernetes_collection_keeps_no_environment_value():
    svc = {"name": "api", "manager": "kubernetes", "deployment": "api", "namespace": "shop", "kubectl": "kubectl",
           "health_url": "http://127.0.0.1:1/health"}
    template = {"spec": {"containers": [{"name": "api", "env": [{"name": "API_TOKEN", "value": "s3cr3t-value"},
                                                                {"name": "FROM_SECRET", "valueFrom": {}}]}]}}
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": '{"env": "s3cr3t-value"}'}
    deployment = {"metadata": {"name": "api", "annotations": annotations},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}}, "template": template},
                  "status": {}}
    pods = {"items": [{"metadata": {"name": "api-1"}, "spec": template["spec"], "status": {}}]}
    host = FakeHost({
        "kubectl --namespace shop --request-timeout 10s get deployment api": (0, json.dumps(deployment), ""),
        "kubectl --namespace shop --request-timeout 10s get deployment/api": (0, json.dumps(deployment), ""),
        "kubectl --namespace shop --request-timeout 10s get pods": (0, json.dumps(pods), ""),
        "kubectl --namespace shop --request-timeout 10s get replicasets": (0, json.dumps({"items": []}), ""),
        "kubectl --namespace shop --request-timeout 10s top": (1, "", "error: Metrics API not available"),
    })
    out = _evidence.Collector(host, svc).collect()
    assert "s3cr3t-value" not in json.dumps(out)
    items = {item["name"]: item for item in out["items"]}
    assert {"deployment", "replicasets", "pods", "events", "service_journal", "previous_logs", "top"} <= set(items)
    assert '"API_TOKEN"' in items["deployment"]["content"] and '"(not kept)"' in items["deployment"]["content"]
    assert items["top"]["rc"] == 1 and "Metrics API" in items["top"]["content"]
    assert "--since=1h" in items["service_journal"]["source"]
    # Nothing but reads: get, logs, top.
    assert {argv[5] for argv in host.calls} <= {"get", "logs", "top"}


def test_items_are_bounded():
    host = FakeHost({"ps": (0, "x" * 5000, "")})
    svc = dict(SYSTEMD)
    out = _evidence.Collector(host, svc, max_bytes=1024).collect()
    ps = next(i for i in out["items"] if i["name"] == "processes")
    assert len(ps["content"]) == 1024 and ps["truncated"] is True


def test_archive_manifest_matches_every_member():
    items = [{"name": "processes", "content": "pid 1\n"}, {"name": "processes", "content": "again\n"},
             {"name": "../etc/passwd", "content": "no escape\n"}]
    data, manifest = build_archive("lab-1", items, [{"path": "/bin/x", "sha256": "0" * 64}], {"host": "lab-1"}, 0)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    listed = dict(reversed(line.split("  ", 1)) for line in members.pop("MANIFEST.sha256").decode().splitlines())
    assert listed == manifest == {name: hashlib.sha256(body).hexdigest() for name, body in members.items()}
    assert "lab-1/processes_2.txt" in members
    assert all(name.startswith("lab-1/") and ".." not in name for name in members)


@pytest.mark.parametrize(("raw", "safe"), [("lab-1", "lab-1"), ("../x", "x"), ("", "unnamed"), ("a b/c", "a_b_c")])
def test_safe_name(raw, safe):
    assert safe_name(raw) == safe
