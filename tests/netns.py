"""A lab host with a network namespace of its own, for firewall scenarios (auth-abuse,
isolate-host): the systemd lab image run with ``--network none --cap-add NET_ADMIN``
(TESTBED: the engine grants it), loopback only, the demo service in it as a systemd unit
reading its API key from an ``EnvironmentFile``. iptables there never touches this
machine's tables; clients are simulated from loopback addresses inside the namespace
(``curl --interface 127.0.0.N``)."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from runbook_remediation.lab import image as lab_image
from runbook_remediation.lab.lab import CGROUP_CONTROLLERS, DEMO_PATH, demo_service_source, docker_client, free_port
from tests.conftest import wait_for


class NetnsHost:
    """The systemd lab image with its own network namespace and NET_ADMIN, running the demo
    service as ``unit`` (logs in ``log_dir``, API key in ``key_file``)."""

    def __init__(self, name: str, *, unit: str, log_dir: str, key_file: str, label: str,
                 demo_name: str = "demo"):
        self.client = docker_client()
        self.name = name
        self.unit = unit
        self.log_dir = log_dir
        self.key_file = key_file
        self.label = label
        self.demo_name = demo_name
        self.port = free_port()  # its own namespace: any port would do, but none is hard-coded
        self.key = "good-" + secrets.token_urlsafe(16)
        self.container = None

    def up(self) -> None:
        if not lab_image.image_exists(self.client):
            lab_image.build_image(self.client)
        volumes = {str(demo_service_source()): {"bind": DEMO_PATH, "mode": "ro"}}
        for controller in CGROUP_CONTROLLERS:
            path = Path("/sys/fs/cgroup") / controller
            if path.is_dir():
                volumes[str(path)] = {"bind": str(path), "mode": "rw"}
        self.container = self.client.containers.run(
            lab_image.IMAGE, name=self.name, detach=True, network_mode="none", cgroupns="host",
            cap_add=["SYS_ADMIN", "NET_ADMIN"], stop_signal="SIGRTMIN+3",
            tmpfs={"/run": "rw", "/run/lock": "rw", "/sys/fs/cgroup": "rw,mode=755"},
            volumes=volumes, labels={"org.runbook.lab": self.label},
        )
        wait_for(lambda: self.exec("systemctl is-system-running", check=False).strip() in ("running", "degraded"),
                 timeout=60, what="systemd booted")
        key_dir = str(Path(self.key_file).parent)
        unit = f"""[Unit]
Description={self.label} service
StartLimitIntervalSec=0
[Service]
EnvironmentFile={self.key_file}
ExecStart=/usr/bin/python3 {DEMO_PATH} --port {self.port} --name {self.demo_name} --log-dir {self.log_dir}
LogsDirectory={Path(self.log_dir).name}
"""
        self.exec(f"install -d -m 0700 {key_dir} && umask 077 && echo DEMO_API_KEY={self.key} > {self.key_file} && "
                  f"printf '%s' '{unit}' > /etc/systemd/system/{self.unit} && systemctl daemon-reload && "
                  f"systemctl start {self.unit}")
        wait_for(lambda: self.status("127.0.0.1", self.key, "/health") == 200, timeout=30, what="service healthy")

    def down(self) -> None:
        if self.container is not None:
            self.container.remove(force=True)

    def exec(self, script: str, check: bool = True) -> str:
        result = self.container.exec_run(["sh", "-c", script])
        if check:
            assert result.exit_code == 0, result.output
        return result.output.decode()

    def curl(self, source: str, key: str, path: str = "/api/work", count: int = 1, target: str = "127.0.0.1",
             timeout: int = 1) -> list[int]:
        """``count`` requests from ``source`` to ``target`` inside the namespace; HTTP status each (0: no answer)."""
        out = self.exec(f"for i in $(seq {count}); do curl -s -o /dev/null -w '%{{http_code}}\\n' -m {timeout} "
                        f"--interface {source} -H 'X-API-Key: {key}' http://{target}:{self.port}{path}; done",
                        check=False)
        return [int(word) for word in out.split()]

    def status(self, source: str, key: str, path: str = "/api/work", target: str = "127.0.0.1") -> int:
        return (self.curl(source, key, path, target=target) or [0])[0]

    def ruleset(self) -> str:
        return self.exec("iptables -S; ip6tables -S")

    def service(self, **more) -> dict:
        """The demo service's description for ``runbook_services``."""
        return {"name": "demo", "manager": "systemd", "unit": self.unit, "port": self.port,
                "health_url": f"http://127.0.0.1:{self.port}/health", **more}

    def connection_vars(self) -> dict:
        return {"ansible_connection": "community.docker.docker", "ansible_host": self.name,
                "ansible_python_interpreter": "/usr/bin/python3"}


def host_ruleset() -> str:
    """This machine's own tables (read only), to show they never change."""
    out = []
    for binary in ("iptables", "ip6tables"):
        result = subprocess.run([binary, "-S"], capture_output=True, text=True, check=False)
        out.append(result.stdout + result.stderr)
    return "\n".join(out)
