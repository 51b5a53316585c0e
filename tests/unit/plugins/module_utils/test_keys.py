"""API key rotation (module_utils/_keys.py) without a network: env file edits, the marker,
and the rotate / verify / restore decisions with a fake service."""

from __future__ import annotations

import os
import stat

from ansible_collections.runbook.remediation.plugins.module_utils import _keys

SVC = {"name": "api", "manager": "systemd", "unit": "api.service", "health_url": "http://127.0.0.1:1/health"}
APP = {"name": "app", "manager": "systemd", "unit": "app.service", "health_url": "http://127.0.0.1:2/health"}


def test_replace_value_keeps_other_lines_and_marks_the_rotation():
    text = "# comment\nOTHER=1\nAPI_KEY=old\nAPI_KEY=dup\n"
    out = _keys.replace_value(text, "API_KEY", "new", now=0)
    assert out.splitlines() == ["# comment", "OTHER=1", "API_KEY=new",
                                "# runbook.remediation: API_KEY rotated at 1970-01-01T00:00:00Z"]
    assert _keys.last_rotation(out, "API_KEY") == 0
    assert _keys.last_rotation(out, "OTHER") is None
    # A second rotation replaces the marker, it does not add one.
    again = _keys.replace_value(out, "API_KEY", "newer", now=60)
    assert again.count("# runbook.remediation:") == 1 and _keys.last_rotation(again, "API_KEY") == 60


def test_write_env_is_atomic_and_private(tmp_path):
    path = tmp_path / "api.env"
    path.write_text("API_KEY=old\n")
    path.chmod(0o644)
    _keys.write_env(str(path), "API_KEY=new\n")
    assert path.read_text() == "API_KEY=new\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["api.env"]


class FakeService:
    """The service accepts the key in its env file as read at its last restart; the
    consumer is healthy when its key (from ``consumer_file``) is the service's."""

    def __init__(self, env_file, consumer_file=None):
        self.env_file, self.consumer_file = env_file, consumer_file or env_file
        self.accepted = self.consumer_key = None
        self.restarts = []
        self.restart()

    def restart(self):
        self.accepted = _keys.read_env(self.env_file, "API_KEY")[1]
        self.consumer_key = _keys.read_env(self.consumer_file, "API_KEY")[1]

    def run(self, argv):
        if argv[:2] == ["systemctl", "start"]:
            self.restarts.append(argv[2])
            self.restart()
        return 0, "", ""

    def status(self, _url, key):
        return 200 if key == self.accepted else 401

    def healthy(self, svc):
        return svc["name"] == "api" or self.consumer_key == self.accepted


def rotation(service, env_file):
    prober = type("P", (), {"healthy": staticmethod(service.healthy)})()
    return _keys.Rotation(service.run, service.status, prober, SVC, [APP], str(env_file), "API_KEY",
                          "http://127.0.0.1:1/api/work", verify_timeout=0, sleep=lambda _s: None)


def test_rotation_verified_returns_no_key_but_to_the_plugin(tmp_path):
    env = tmp_path / "api.env"
    env.write_text("API_KEY=old-key-value\n")
    service = FakeService(str(env))
    result = rotation(service, env).rotate(32)
    assert result["rotated"] is True and result["verification"]["old_key_status"] == 401
    new = result.pop("_new_key")
    assert new != "old-key-value" and len(new) >= 40 and service.accepted == new
    assert "old-key-value" not in repr(result) and new not in repr(result)
    assert service.restarts == ["api.service", "app.service"]


def test_consumer_failing_restores_the_old_file(tmp_path):
    env, stale = tmp_path / "api.env", tmp_path / "stale.env"
    env.write_text("# keep me\nAPI_KEY=old-key-value\n")
    stale.write_text("API_KEY=old-key-value\n")
    service = FakeService(str(env), str(stale))
    run = rotation(service, env)
    result = run.rotate(32)
    assert result["rotated"] is False and result["restored"] is True
    assert "_new_key" not in result
    assert env.read_text() == "# keep me\nAPI_KEY=old-key-value\n"
    assert service.accepted == "old-key-value"
    assert any("unhealthy consumers: app" in f for f in run.findings)
    assert "old-key-value" not in repr((result, run.findings, run.actions))
