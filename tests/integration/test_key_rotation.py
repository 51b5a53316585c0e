"""key-rotation on the real lab: a systemd service and a Compose service, each with two
consumers (app, worker) sharing the key's env file; the old key refused and the new one
accepted afterwards, both consumers restarted and healthy, and neither key anywhere under
the state directory, in -v output, the timeline or the webhook's payloads."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from runbook_remediation.lab import image as lab_image
from runbook_remediation.lab.lab import DEMO_PATH, demo_service_source, free_port
from tests.conftest import http_status, runbook, wait_for

pytestmark = pytest.mark.lab

KEY_DIR = "/etc/runbook-keys"
VARIABLE = "DEMO_API_KEY"
JMES = "components[?status=='unhealthy'] | length(@) == `0`"
NAMES = ("api", "app", "worker")


def key_status(url: str, key: str) -> int | None:
    request = urllib.request.Request(url, headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return body.get("status") == "healthy"


class Webhook:
    """A Slack-style webhook on 127.0.0.1 that keeps every body it gets."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def services(ports: dict[str, int], manager: str, extra: dict) -> list[dict]:
    out = []
    for name in NAMES:
        svc = {"name": name, "manager": manager, "port": ports[name],
               "health_url": f"http://127.0.0.1:{ports[name]}/health", "health_jmespath": JMES, **extra(name)}
        if name == "api":
            svc["key_rotation"] = {"env_file": extra("env_file")["env_file"], "variable": VARIABLE,
                                   "verify_url": f"http://127.0.0.1:{ports['api']}/api/work",
                                   "consumers": ["app", "worker"]}
        out.append(svc)
    return out


def unit(name: str, port: int, api_port: int, env_file: str) -> str:
    upstream = f" --upstream http://127.0.0.1:{api_port}/api/work" if name != "api" else ""
    return f"""[Unit]
Description=key-rotation test {name}
StartLimitIntervalSec=0
[Service]
User=runbook-demo
EnvironmentFile={env_file}
ExecStart=/usr/bin/python3 {DEMO_PATH} --port {port} --name key-{name} --log-dir /var/log/runbook-key-{name} \\
  --workload-rps 1{upstream}
LogsDirectory=runbook-key-{name}
Restart=no
"""


class SystemdSet:
    """api + app + worker as systemd units on the lab's lab-1 host."""

    def __init__(self, lab, worker_env: str = "api.env"):
        self.lab = lab
        self.container = lab.client.containers.get(lab.host("lab-1").container)
        self.ports = {name: free_port() for name in NAMES}
        self.old = "old-" + secrets.token_urlsafe(24)
        self.env_file = f"{KEY_DIR}/api.env"
        self.worker_env = f"{KEY_DIR}/{worker_env}"

    def sh(self, script: str) -> str:
        result = self.container.exec_run(["sh", "-c", script])
        assert result.exit_code == 0, result.output
        return result.output.decode()

    def up(self) -> None:
        self.sh(f"install -d -m 0700 {KEY_DIR} && umask 077 && printf '%s\\n' '# the demo API key' "
                f"'{VARIABLE}={self.old}' > {self.env_file} && cp -p {self.env_file} {KEY_DIR}/stale.env")
        for name in NAMES:
            env = self.worker_env if name == "worker" else self.env_file
            text = unit(name, self.ports[name], self.ports["api"], env).replace("'", "'\\''")
            self.sh(f"printf '%s' '{text}' > /etc/systemd/system/runbook-key-{name}.service")
        self.sh("systemctl daemon-reload && systemctl restart " + " ".join(f"runbook-key-{n}" for n in NAMES))
        for name in NAMES:
            wait_for(lambda n=name: healthy(self.ports[n]), timeout=30, what=f"systemd {name} healthy")

    def down(self) -> None:
        units = " ".join(f"runbook-key-{n}.service" for n in NAMES)
        self.container.exec_run(["sh", "-c", f"systemctl stop {units}; cd /etc/systemd/system && rm -f {units}; "
                                             f"systemctl daemon-reload; rm -rf {KEY_DIR}"])

    def main_pids(self) -> dict[str, str]:
        return {n: self.sh(f"systemctl show -p MainPID --value runbook-key-{n}").strip() for n in NAMES}

    def env_text(self) -> str:
        return self.sh(f"cat {self.env_file}")

    def host_vars(self) -> dict:
        return {
            "ansible_connection": "community.docker.docker",
            "ansible_host": self.container.name,
            "ansible_python_interpreter": "/usr/bin/python3",
            "runbook_services": services(self.ports, "systemd", lambda n: (
                {"env_file": self.env_file} if n == "env_file" else {"unit": f"runbook-key-{n}.service"})),
        }


class ComposeSet:
    """api + app + worker as one Compose project on this machine, env_file shared."""

    def __init__(self, directory: Path, lab_name: str):
        self.dir = directory
        self.project = f"runbook-{lab_name}-keys"
        self.ports = {name: free_port() for name in NAMES}
        self.old = "old-" + secrets.token_urlsafe(24)
        self.env_file = directory / "api.env"

    def compose(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "compose", "--project-directory", str(self.dir), "--project-name",
                               self.project, *args], capture_output=True, text=True, check=False, timeout=300)

    def up(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text(f"{VARIABLE}={self.old}\n")
        self.env_file.chmod(0o600)
        spec = {"name": self.project, "services": {}}
        for name in NAMES:
            command = ["python3", DEMO_PATH, "--port", str(self.ports[name]), "--name", f"key-{name}",
                       "--log-dir", "/tmp/log", "--workload-rps", "1"]
            if name != "api":
                command += ["--upstream", f"http://127.0.0.1:{self.ports['api']}/api/work"]
            spec["services"][name] = {
                "image": lab_image.IMAGE, "command": command, "network_mode": "host", "stop_signal": "SIGTERM",
                "stop_grace_period": "5s", "env_file": ["api.env"],
                "volumes": [f"{demo_service_source()}:{DEMO_PATH}:ro"],
            }
        (self.dir / "compose.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        result = self.compose("up", "--detach", "--no-build", "--pull", "never")
        assert result.returncode == 0, result.stderr
        for name in NAMES:
            wait_for(lambda n=name: healthy(self.ports[n]), timeout=60, what=f"compose {name} healthy")

    def down(self) -> None:
        self.compose("down", "--timeout", "2")

    def started(self) -> dict[str, str]:
        """service -> "container-id state" of every container of the project, running or not
        (so a consumer that died shows as exited instead of missing)."""
        out = subprocess.run(["docker", "ps", "--all", "--filter", f"label=com.docker.compose.project={self.project}",
                              "--format", '{{.Label "com.docker.compose.service"}} {{.ID}} {{.State}}'],
                             capture_output=True, text=True, check=True).stdout
        found: dict[str, str] = {}
        for line in out.splitlines():
            service, rest = line.split(" ", 1)
            found[service] = f"{found[service]}, {rest}" if service in found else rest
        return found

    def env_text(self) -> str:
        return self.env_file.read_text()

    def host_vars(self) -> dict:
        return {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "runbook_services": services(self.ports, "compose", lambda n: (
                {"env_file": str(self.env_file)} if n == "env_file" else
                {"project_src": str(self.dir), "project": self.project, "compose_service": n})),
        }


def write_inventory(path: Path, hosts: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"all": {"vars": {"ansible_pipelining": True}, "hosts": hosts}}))
    return path


def current_key(text: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(VARIABLE + "="))


def nowhere(keys: list[str], state_dir: Path, output: str, webhook: Webhook) -> None:
    """None of ``keys`` under the state directory (timeline, run records, artifacts), in
    the output or in what the webhook got."""
    for key in keys:
        assert key not in output
        for body in webhook.bodies:
            assert key.encode() not in body
        for path in state_dir.rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def test_rotation_systemd_and_compose_with_two_consumers(lab, lab_env, tmp_path, webhook):
    systemd, compose = SystemdSet(lab), ComposeSet(tmp_path / "compose", lab.name)
    try:
        systemd.up()
        compose.up()
        hosts = {"keys-systemd": systemd.host_vars(), "keys-compose": compose.host_vars()}
        key_files = {name: tmp_path / "keys" / f"{name}.key" for name in hosts}
        for name, host in hosts.items():
            host["key_rotation_key_file"] = str(key_files[name])
        inventory = write_inventory(tmp_path / "inventory.yml", hosts)
        env = {"RUNBOOK_WEBHOOK_URL": webhook.url}

        # Without confirmation: refused, nothing touched.
        refused = runbook("run", "key-rotation", "-i", str(inventory), "--service", "api", env=env)
        assert refused.returncode == 2, refused.stderr
        assert "confirmation" in refused.stderr
        assert current_key(systemd.env_text()) == systemd.old and current_key(compose.env_text()) == compose.old

        pids, containers = systemd.main_pids(), compose.started()
        assert all(containers.get(n, "").endswith(" running") for n in NAMES), containers
        result = runbook("-v", "run", "key-rotation", "-i", str(inventory), "--service", "api", "--yes", env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output

        for kind, keys in (("systemd", systemd), ("compose", compose)):
            new = current_key(keys.env_text())
            assert new != keys.old and len(new) >= 40
            url = f"http://127.0.0.1:{keys.ports['api']}/api/work"
            assert key_status(url, keys.old) == 401, kind
            assert key_status(url, new) == 200, kind
            assert all(healthy(keys.ports[n]) for n in NAMES), kind
            host = f"keys-{kind}"
            assert key_files[host].read_text().strip() == new
            assert (key_files[host].stat().st_mode & 0o777) == 0o600
            nowhere([keys.old, new], Path(lab_env["RUNBOOK_STATE_DIR"]), output, webhook)
        assert systemd.sh(f"stat -c %a {systemd.env_file}").strip() == "600"
        # Every one restarted: new main PIDs, new containers (the env file is read at start).
        after_pids, after_containers = systemd.main_pids(), compose.started()
        assert all(after_pids[n] != pids[n] for n in NAMES), (pids, after_pids)
        assert all(after_containers.get(n, "missing") != containers.get(n) for n in NAMES), (
            containers, after_containers)
        assert all(after_containers[n].endswith(" running") for n in NAMES), after_containers

        # Just rotated: a repeated request changes nothing (the marker line in the env file).
        texts = (systemd.env_text(), compose.env_text())
        again = runbook("run", "key-rotation", "-i", str(inventory), "--service", "api", "--yes", env=env)
        assert again.returncode == 4, again.stdout + again.stderr
        assert (systemd.env_text(), compose.env_text()) == texts
    finally:
        systemd.down()
        compose.down()


def test_consumer_failing_with_the_new_key_restores_the_old_and_escalates(lab, lab_env, tmp_path, webhook):
    # The worker reads a stale copy of the key: with the new key in place it is refused and
    # stays unhealthy, so the rotation must put the old key back.
    systemd = SystemdSet(lab, worker_env="stale.env")
    try:
        systemd.up()
        before = systemd.env_text()
        inventory = write_inventory(tmp_path / "inventory.yml", {"keys-systemd": systemd.host_vars()})
        result = runbook("-o", "json", "run", "key-rotation", "-i", str(inventory), "--service", "api", "--yes",
                         "-e", '{"key_rotation_verify_timeout": 6}', env={"RUNBOOK_WEBHOOK_URL": webhook.url})
        assert result.returncode == 3, result.stdout + result.stderr
        host = json.loads(result.stdout)["hosts"]["keys-systemd"]
        assert host["outcome"] == "escalate"
        assert "restored and works again" in host["message"]
        assert any("worker" in finding for finding in host["findings"])
        assert systemd.env_text() == before
        url = f"http://127.0.0.1:{systemd.ports['api']}/api/work"
        assert key_status(url, systemd.old) == 200
        wait_for(lambda: all(healthy(systemd.ports[n]) for n in NAMES), timeout=15, what="all healthy again")
        assert webhook.bodies, "the escalation was not posted"
        nowhere([systemd.old], Path(lab_env["RUNBOOK_STATE_DIR"]), result.stdout + result.stderr, webhook)
        assert http_status(f"http://127.0.0.1:{systemd.ports['api']}/health") == 200
    finally:
        systemd.down()
