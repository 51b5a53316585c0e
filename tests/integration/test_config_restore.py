"""config-restore end to end on the real lab (seed 001's configuration recovery): lab-1's demo
reads /etc/runbook-demo/config/production.toml, a git work tree whose HEAD is the known-good.
A bad edit reloaded -> the service refuses it and reports unhealthy -> `runbook run
config-restore --yes` restores HEAD (checked with the demo's own --check-config first), keeps
the replaced file, reloads (same process) and verifies; check mode, drift on a healthy service,
a bad known-good and bad input change nothing."""

from __future__ import annotations

import json
import urllib.error

import pytest

from runbook_remediation.lab.lab import CONFIG_DIR, CONFIG_PATH, REMEDIATION_STATE
from runbook_remediation.lab.monitoring import http_json
from tests.conftest import restore_host, run_json, runbook

pytestmark = pytest.mark.lab

HOST = "lab-1"
BACKUPS = f"{REMEDIATION_STATE}/config-backups/demo"


def health(lab) -> tuple[int, dict]:
    try:
        return 200, http_json(lab.host(HOST).health_url, timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sh(lab, script: str, check: bool = True) -> str:
    result = lab.client.containers.get(lab.host(HOST).container).exec_run(["sh", "-c", script])
    assert not check or result.exit_code == 0, result.output
    return result.output.decode()


def checksum(lab) -> str:
    return sh(lab, f"sha256sum {CONFIG_PATH}").split()[0]


@pytest.fixture
def broken(lab):
    """lab-1 with a bad edit of its configuration reloaded: refused, unhealthy (503)."""
    restore_host(lab, HOST)
    result = runbook("lab", "break", "config-broken", "--host", HOST)
    assert result.returncode == 0, result.stdout + result.stderr
    status, _body = health(lab)
    assert status == 503
    yield
    restore_host(lab, HOST)
    assert sh(lab, f"git -C {CONFIG_DIR} status --porcelain") == ""  # heal put the known-good back


def test_a_broken_config_is_restored_from_git_and_reloaded(lab, broken):
    before, pid = checksum(lab), health(lab)[1]["pid"]

    code, payload = run_json("run", "config-restore", "-l", HOST, "--check")
    assert code == 0, payload
    result = payload["hosts"][HOST]
    assert result["outcome"] == "planned", result
    assert "the check command refuses it: invalid config:" in " ".join(result["findings"])
    assert checksum(lab) == before and sh(lab, f"ls {BACKUPS} 2>/dev/null", check=False) == ""

    code, payload = run_json("run", "config-restore", "-l", HOST, "--yes")
    assert code == 0, payload
    result = payload["hosts"][HOST]
    assert result["outcome"] == "remediated", result
    assert result["actions"][1] == "reloaded runbook-demo.service"
    assert result["evidence"]["sha256"] == before and result["evidence"]["good_sha256"] != before
    assert result["verification"]["healthy"] is True
    # The known-good is in place (git sees no change), the replaced file kept privately, and
    # the same process runs on it (a reload, not a restart).
    assert sh(lab, f"git -C {CONFIG_DIR} status --porcelain") == ""
    kept = result["backup"]
    assert kept.startswith(BACKUPS + "/production.toml.")
    assert sh(lab, f"stat -c %a {kept}").strip() == "600"
    assert sh(lab, f"sha256sum {kept}").split()[0] == before
    status, body = health(lab)
    assert status == 200 and body["pid"] == pid

    code, payload = run_json("run", "config-restore", "-l", HOST, "--yes")
    assert code == 4, payload


def test_drift_on_a_healthy_service_is_reported_and_left_alone_unless_forced(lab):
    restore_host(lab, HOST)
    try:
        # A valid, different file: someone may have meant it.
        sh(lab, f"sed -i 's/log_level = \"INFO\"/log_level = \"DEBUG\"/' {CONFIG_PATH}"
                " && systemctl reload runbook-demo.service")
        drifted = checksum(lab)
        code, payload = run_json("run", "config-restore", "-l", HOST, "--yes")
        assert code == 4, payload
        result = payload["hosts"][HOST]
        assert "drift left alone (config_restore_force=true restores it)" in result["message"], result
        assert checksum(lab) == drifted

        code, payload = run_json("run", "config-restore", "-l", HOST, "--yes", extra={"config_restore_force": True})
        assert code == 0, payload
        assert payload["hosts"][HOST]["outcome"] == "remediated"
        assert sh(lab, f"git -C {CONFIG_DIR} status --porcelain") == ""
    finally:
        restore_host(lab, HOST)


def test_no_known_good_at_that_revision_escalates_and_changes_nothing(lab, broken):
    before = checksum(lab)
    code, payload = run_json("run", "config-restore", "-l", HOST, "--yes", extra={"config_restore_revision": "v9"})
    assert code == 3, payload
    result = payload["hosts"][HOST]
    assert result["outcome"] == "escalate" and "has no known-good to restore" in result["message"], result
    assert result["actions"] == []
    assert checksum(lab) == before


def test_a_known_good_that_fails_its_check_escalates_and_changes_nothing(lab, broken):
    """The revision asked for holds an invalid file: it is checked beside the live one and
    never put in place, and the run escalates with the check command's reason."""
    before = checksum(lab)
    # A tagged commit off to the side: HEAD and the work tree stay as they are.
    sh(lab, f"cd {CONFIG_DIR} && blob=$(printf 'workers = [\\n' | git hash-object -w --stdin)"
            " && tree=$(printf '100644 blob %s\\tproduction.toml\\n' $blob | git mktree)"
            " && commit=$(git -c user.name=t -c user.email=t@example.invalid commit-tree $tree -m invalid)"
            " && git tag runbook-test-invalid $commit")
    try:
        code, payload = run_json("run", "config-restore", "-l", HOST, "--yes",
                                 extra={"config_restore_revision": "runbook-test-invalid"})
        assert code == 3, payload
        result = payload["hosts"][HOST]
        assert result["outcome"] == "escalate", result
        assert "did not restore" in result["message"], result["message"]
        assert "the known-good file fails the check command too: invalid config:" in result["message"]
        assert "nothing was changed" in result["message"] and "\n" not in result["message"]
        assert checksum(lab) == before
        assert sh(lab, f"ls {BACKUPS} 2>/dev/null", check=False) == ""
        assert health(lab)[0] == 503  # still the broken-but-running configuration
    finally:
        sh(lab, f"git -C {CONFIG_DIR} tag -d runbook-test-invalid", check=False)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"config_restore_revision": "--output=/tmp/owned-config"}, "config_restore_revision must be a git revision"),
        ({"config_restore_revision": "HEAD..main"}, "not a range or an option"),
        ({"config_restore_revision": "{{ lookup('pipe', 'touch /tmp/owned-config') }}"},
         "templates are not accepted from a request"),
        ({"config_restore_force": "maybe"}, "config_restore_force must be true or false"),
        ({"config_restore_backup_dir": "/var/lib/../../etc"}, "config_restore_backup_dir must be an absolute path"),
    ],
)
def test_bad_requests_change_nothing(lab, broken, extra, words):
    before = checksum(lab)
    code, payload = run_json("run", "config-restore", "-l", HOST, "--yes", extra=extra)
    assert code == 2, payload
    assert words in payload["hosts"][HOST]["message"], payload
    assert checksum(lab) == before
    assert sh(lab, "ls /tmp/owned-config 2>/dev/null", check=False) == ""
