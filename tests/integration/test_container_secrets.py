"""A secret in a container's environment never reaches the run's artifacts, the timeline or
the output: the roles that inspect or recreate Docker and Compose containers (error-rate,
latency, fd-exhaustion, oom-killed, env-toggle) read `docker inspect`, whose answer holds
the whole environment."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import http_status, restore_host, runbook, wait_for

pytestmark = pytest.mark.lab

NAME = "lab-compose"


@pytest.fixture
def compose_secret(lab):
    """The Compose service recreated with a password in its environment (as a real one has)."""
    secret = f"seeded-{uuid.uuid4().hex}"
    override = lab.compose_dir / "compose.override.yaml"
    override.write_text(yaml.safe_dump({"services": {"demo": {"environment": {"DEMO_DB_PASSWORD": secret}}}}),
                        encoding="utf-8")
    subprocess.run(["docker", "compose", "--project-directory", str(lab.compose_dir), "up", "-d", "--no-build"],
                   check=True, capture_output=True)
    host = lab.host(NAME)

    def has_secret() -> bool:
        containers = lab.client.containers.list(filters={"label": f"com.docker.compose.project={lab.compose_project}"})
        return any(f"DEMO_DB_PASSWORD={secret}" in c.attrs["Config"]["Env"] for c in containers)

    wait_for(has_secret, timeout=60, what="the Compose service with the password")
    wait_for(lambda: http_status(host.health_url) == 200, timeout=60, what="the Compose service healthy")
    yield secret
    override.unlink(missing_ok=True)
    restore_host(lab, NAME)


def test_a_containers_secret_stays_out_of_every_record(lab, compose_secret):
    outputs = []
    for argv in (["diagnose", "error-rate"], ["diagnose", "fd-exhaustion"], ["diagnose", "oom-killed"],
                 ["run", "latency", "--check"], ["run", "env-toggle", "-e", "env_toggle_revert=true"],
                 ["-v", "diagnose", "error-rate"]):
        result = runbook(*argv, "-l", NAME)
        assert result.returncode in (0, 3, 4), (argv, result.stdout[-2000:], result.stderr[-2000:])
        outputs.append(result.stdout + result.stderr)
    assert not [text for text in outputs if compose_secret in text]
    state = Path(os.environ["RUNBOOK_STATE_DIR"])
    # The Compose project (the service's own configuration) lives in the lab's state too.
    leaked = [str(p) for p in state.rglob("*") if p.is_file() and lab.compose_dir not in p.parents
              and compose_secret.encode() in p.read_bytes()]
    assert leaked == [], "\n".join(leaked)
