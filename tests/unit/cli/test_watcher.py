"""`runbook watch`'s child: ansible-rulebook gets the one environment policy of every
child the CLI starts, and its work directory and log are private."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from runbook_remediation import watcher
from runbook_remediation.collection import find_collection

REPO = Path(__file__).resolve().parents[3]


def test_rulebook_env_is_the_allow_list_plus_ours(runbook_env, collection):
    callback = "plugins/callback/timeline.py"
    (collection / callback).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / callback, collection / callback)
    environ = {
        "PATH": "/usr/bin:/bin", "HOME": "/home/op", "JAVA_HOME": "/usr/lib/jvm/17", "LANG": "C.UTF-8",
        "ANSIBLE_FORKS": "7", "ANSIBLE_CALLBACKS_ENABLED": "a.b.c", "ANSIBLE_COLLECTIONS_PATH": "/theirs",
        "RUNBOOK_STATE_DIR": str(runbook_env), "RUNBOOK_TIMELINE_DB": "/s/t.db",
        "RUNBOOK_API_TOKEN": "t0ken-value", "RUNBOOK_DB_PASS": "pa55-value",
        "RUNBOOK_WEBHOOK_URL": "http://127.0.0.1:9/hooks/s3cret",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t", "GITHUB_TOKEN": "ghp_x", "PYTHONPATH": "/x", "LD_PRELOAD": "/y.so",
    }
    env = watcher.rulebook_env(find_collection(), environ)
    for name in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "PYTHONPATH", "LD_PRELOAD", "RUNBOOK_API_TOKEN",
                 "RUNBOOK_DB_PASS", "ANSIBLE_HOST_KEY_CHECKING"):
        assert name not in env, name
    assert env["HOME"] == "/home/op" and env["JAVA_HOME"] == "/usr/lib/jvm/17" and env["LANG"] == "C.UTF-8"
    assert env["ANSIBLE_FORKS"] == "7" and env["RUNBOOK_TIMELINE_DB"] == "/s/t.db"
    assert env["ANSIBLE_COLLECTIONS_PATH"] == find_collection().env_collections_path()
    assert env["PATH"].endswith("/usr/bin:/bin")
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "a.b.c,runbook.remediation.timeline"
    assert env["RUNBOOK_ENTRANCE"] == "rulebook" and env["RUNBOOK_STATE_DIR"] == str(runbook_env)
    # handed on on purpose: the scenarios' report notifies a human through it
    assert env["RUNBOOK_WEBHOOK_URL"] == "http://127.0.0.1:9/hooks/s3cret"
    assert "RUNBOOK_WEBHOOK_URL" not in watcher.rulebook_env(find_collection(), {"PATH": "/usr/bin"})


def test_work_dir_and_log_are_private(runbook_env):
    work = runbook_env / "watch"
    work.mkdir(parents=True, mode=0o755)
    log = work / "rulebook.log"
    log.write_text("an older run\n", encoding="utf-8")
    log.chmod(0o644)
    assert watcher._work_dir() == work
    with os.fdopen(watcher._open_log(log), "ab") as handle:
        handle.write(b"this run\n")
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text(encoding="utf-8") == "an older run\nthis run\n"
    fresh = work / "new.log"
    os.close(watcher._open_log(fresh))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
