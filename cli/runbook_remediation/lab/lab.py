"""The local incident lab: target hosts to break and remediate, with real monitoring.

``up`` makes (idempotently): N systemd containers that Ansible reaches with the docker
connection, each running the demo service as a systemd unit; one demo service run as a
plain Docker container; Prometheus and Alertmanager on 127.0.0.1; an inventory. Every
container uses the host network, so every port is picked free and recorded in the
state file; nothing listens outside 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from runbook_remediation.errors import BadInput, RunbookError, Unavailable
from runbook_remediation.lab import image as lab_image
from runbook_remediation.lab import postgres as lab_postgres
from runbook_remediation.lab.monitoring import (
    ScrapeTarget,
    Server,
    alertmanager_config,
    http_json,
    prometheus_config,
    rules_text,
    stop_process,
    write_file_sd,
)

LABEL = "org.runbook.lab"
# The inventory host of the demo Deployment on the lab's Kubernetes cluster (`up --kubernetes`).
K8S_HOST = "lab-k8s"
# Seed 002's emergency controls on the lab cluster: the app-config ConfigMap whose flag the
# pods read at start (maintenance-mode), and the region's load-balancer Service whose weight
# annotation steers traffic (traffic-drain).
K8S_CONFIGMAP = "demo-config"
K8S_REGION = "americas"
K8S_REGION_SERVICE = f"demo-{K8S_REGION}"
K8S_WEIGHT_ANNOTATION = "traffic.mpc-transformer.com/weight"
MAX_HOSTS = 20
SERVICE = "demo"
UNIT = "runbook-demo.service"
DEMO_PATH = "/opt/runbook-demo/demo_service.py"
LOG_DIR = "/var/log/runbook-demo"
STATE_SUBDIR = "/var/lib/runbook-demo"
# Where the collection's roles keep their per-service histories on a target (restart
# budgets, memory raises): service_restart_state_dir and friends.
REMEDIATION_STATE = "/var/lib/runbook-remediation"
# The demo service's faults, as `runbook lab break` offers them.
FAULTS = ("crash", "crash-loop", "hang", "error-rate", "latency", "cpu-burn", "load", "memory-leak", "fd-leak",
          "log-flood")
# The Compose service scales out (replica_scale) up to this many replicas. Host networking:
# each replica takes the first free of REPLICA_PORTS ports the lab picked free (a spare or
# two, should something else have taken one since).
REPLICA_CEILING = 4
REPLICA_PORTS = 6
# Each systemd host's cgroup v1 controllers are bind-mounted one by one: mounting the
# whole tree makes systemd remount the host's cgroups read-only (TESTBED.md).
CGROUP_CONTROLLERS = ("systemd", "unified", "memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer")
LOG_FS_SIZE = "64m"  # a small log filesystem, so a log flood really fills it
# Limits like a real deployment's, small enough that the fd-leak and memory-leak faults
# reach them in seconds (the remediations raise them).
NOFILE_LIMIT = 1024
MEMORY_LIMIT = "128m"
# ggen-mcp's container with LibreOffice inside: each headless soffice takes some 130 MiB.
OFFICE_MEMORY_LIMIT = "512m"
# The demo service's releases (`runbook lab deploy`): what each sets in the service's
# environment. v2 is the bad release: a share of its requests fail (error_type release_bug).
RELEASES = {"v1": {"DEMO_RELEASE": "v1"}, "v2": {"DEMO_RELEASE": "v2", "DEMO_RELEASE_ERROR_RATE": "0.5"}}
RELEASE_IMAGE = "runbook-lab-demo"  # Docker and Compose: one image per release, RELEASE_IMAGE:<release>
RELEASES_DIR = "/opt/runbook-demo/releases"  # systemd: one directory per release ...
CURRENT_RELEASE = "/opt/runbook-demo/current"  # ... and the symlink to the running one
# The upstream providers' status, kept outside the service (an outage does not end when
# it restarts or its container is recreated): systemd hosts keep it on the host, Docker and
# Compose services get it from a lab directory mounted read-only (DEMO_UPSTREAM_STATUS_FILE).
# The service calls `primary` (DEMO_UPSTREAM_PROVIDER); `secondary` is its configured fallback.
PROVIDER_STATUS_FILE = "/var/lib/runbook-upstream/providers.json"
# The demo's configuration on systemd hosts (seed 001's config/production.toml): a git work
# tree whose HEAD is the known-good file (config-restore restores from it).
CONFIG_DIR = "/etc/runbook-demo/config"
CONFIG_PATH = f"{CONFIG_DIR}/production.toml"
CONFIG_TEXT = ('# runbook lab demo: production configuration\n'
               '[server]\nlog_level = "INFO"\n\n[limits]\nmax_body_kb = 64\n')

PROVIDER_FALLBACK = "secondary"
# Faults outside the demo service, which the lab injects itself (`runbook lab break`):
# provider-down (-p provider=NAME, default primary) takes an upstream provider down;
# redis-full fills the profile's Redis to its maxmemory (writes refused), redis-down stops it;
# pg-pool-exhausted, pg-index-corrupt and pg-down act on its PostgreSQL (lab/postgres.py); soffice-leak
# leaves headless LibreOffice listeners running in ggen-mcp's container (lab-docker).
# worker-down kills causal-eval's worker container. port-taken kills the Docker
# service's container and has another process take its port (seed 003's EADDRINUSE); heal
# stops that process. heavy-work (-p iterations=N, default 1500)
# sets the work per request high, as a bad configuration would (seed 000's MCTS iterations):
# a systemd drop-in or the Compose override, the service restarted; P95 climbs past 2 s.
# sqlite-corrupt takes the nightly backup of a systemd host's queue, then overwrites a page of it.
LAB_FAULTS = ("provider-down", "config-broken", "sqlite-corrupt", "redis-full", "redis-down", *lab_postgres.FAULTS,
              "soffice-leak", "worker-down", "heavy-work", "port-taken")
QUEUE_DB = f"{STATE_SUBDIR}/queue.db"
QUEUE_BACKUPS = f"{STATE_SUBDIR}/backups"
# Left by sqlite-corrupt: heal then removes the queue and its backups (the service seeds a new one).
SQLITE_FAULT_MARKER = f"{STATE_SUBDIR}/.lab-sqlite-corrupt"
# The nightly backup as db-backup makes one: the online backup API, a checksum sidecar in
# sha256sum's format written before the atomic rename to queue-<UTC stamp>.db.
NIGHTLY_BACKUP = """
import hashlib, os, sqlite3, sys, time
db, backups, marker = sys.argv[1:4]
os.makedirs(backups, exist_ok=True)
name = time.strftime("queue-%Y%m%dT%H%M%SZ.db", time.gmtime())
temp = os.path.join(backups, "." + name)
source, copy = sqlite3.connect(db), sqlite3.connect(temp)
source.backup(copy)
copy.close()
source.close()
with open(temp, "rb") as handle:
    digest = hashlib.sha256(handle.read()).hexdigest()
with open(os.path.join(backups, name + ".sha256"), "w") as handle:
    handle.write("%s  %s\\n" % (digest, name))
os.rename(temp, os.path.join(backups, name))
open(marker, "w").close()
print(name)
"""
SOFFICE = "/usr/bin/soffice"
SOFFICE_USER = "nobody"  # what the leaked instances run as in the container (never root)
# `runbook lab up --profile NAME`: the seed systems (the drill profiles) and the parts each
# adds to the stock lab. causal-eval (seed 004): a Redis, a PostgreSQL and a worker beside the
# Compose service, in its project (the Redis full at a small maxmemory under noeviction); mpc-transformer
# (seed 002): the Kubernetes cluster; ggen-mcp (seed 003): LibreOffice inside the Docker
# service's container (the lab's office image). The others run on the stock lab's hosts as they are.
PROFILES = ("causal-eval", "edge-gateway", "ggen-mcp", "mcts", "mpc-transformer")
# ggen-mcp's Redis and PostgreSQL (its dependencies) are the lab's one Redis and PostgreSQL,
# which causal-eval's API uses too: services of the Compose project.
PROFILE_PARTS = {"causal-eval": ("redis", "postgresql", "worker"), "ggen-mcp": ("libreoffice", "redis", "postgresql"),
                 "mpc-transformer": ("kubernetes",)}
# Writes $2 into the file $1 inside a host (its directory made): beside it, then renamed, so
# the reader never sees half a file.
WRITE_FILE = 'mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1.tmp" && mv "$1.tmp" "$1"'
HEAVY_WORK_ITERATIONS = 1500  # 3 s of work per request (2 ms an iteration)
# heavy-work's drop-in: it sorts before the remediations' runbook-*.conf, which win over it.
HEAVY_WORK_DROPIN = f"/etc/systemd/system/{UNIT}.d/lab-heavy-work.conf"
# port-taken's process: it listens on the service's port until heal stops it (found by this
# marker in its command line, never by its pid alone).
PORT_HOLDER_MARKER = "runbook-lab-port-holder"
PORT_HOLDER = """
import signal, socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the health checks' TIME_WAIT
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
print("listening", flush=True)
while True:
    signal.pause()
"""
REDIS_SERVICE = "redis"
# Seed 004's worker (`docker-compose restart app worker`): the demo service under another name
# in the Compose project, a consumer of the API (it calls /api/work, its `upstream` component).
WORKER_SERVICE = "worker"
# The demo's health answer is healthy when no component is unhealthy (degraded passes).
HEALTH_JMESPATH = "components[?status=='unhealthy'] | length(@) == `0`"
WORKER_WORKLOAD_RPS = "5"
# With the worker, the API needs a key on /api/work and the worker sends it: both read it from
# one env file in the Compose project (seed 004's API key, rotated by key-rotation, which
# restarts the API and its consumer the worker). Heal puts a fresh key in.
API_KEY_FILE = "api.env"
API_KEY_VARIABLE = "DEMO_API_KEY"
REDIS_CONF_DIR = "/etc/runbook-redis"  # in its container; the lab's redis/ directory mounted
REDIS_MAXMEMORY = "4mb"
REDIS_CEILING = "64M"  # redis-memory raises maxmemory up to this


@dataclass
class LabHost:
    name: str  # inventory host name, also the `host` label of its alerts
    container: str
    manager: str  # systemd | docker | compose
    port: int
    # Compose: the ports its replicas may take (the first is `port`), picked free by `up`.
    replica_ports: list[int] = field(default_factory=list)

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


@dataclass
class LabState:
    hosts: list[LabHost] = field(default_factory=list)
    prometheus_port: int | None = None
    prometheus_pid: int | None = None
    alertmanager_port: int | None = None
    alertmanager_pid: int | None = None
    webhook_url: str | None = None
    webhook_token_file: str | None = None
    # `lab up --kubernetes`: the cluster's run dir, kubeconfig and the demo Deployment's port.
    kubernetes: dict | None = None
    # `lab up --profile NAME`: the profiles asked for, and the Redis one adds (its port, its
    # exporter's port and pid), and the PostgreSQL (its port, its exporter's port and pid, the
    # leaking client's pid).
    profiles: list[str] = field(default_factory=list)
    redis: dict | None = None
    postgres: dict | None = None
    worker: dict | None = None  # causal-eval's worker: its port
    port_holder: dict | None = None  # port-taken's process: its pid and the port it holds

    @classmethod
    def load(cls, path: Path) -> LabState:
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw["hosts"] = [LabHost(**h) for h in raw.get("hosts", [])]
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise RunbookError(f"lab state {path} is unreadable ({exc}); run `runbook lab down` to reset") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)


def free_port(taken: set[int] = frozenset()) -> int:
    """A port nobody listens on right now (host networking: never hard-code one)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port
    raise Unavailable("no free TCP port on 127.0.0.1")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def docker_client():
    """A client for the local engine, or a one-line reason why there is none."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException as exc:
        # docker-py's text nests the real cause in tuples; where it looked is what helps.
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise Unavailable(
            f"cannot reach the Docker engine at {where}", hint="start dockerd (scripts/bootstrap does it)"
        ) from exc
    return client


def demo_service_source() -> Path:
    return Path(str(resources.files("runbook_remediation.lab").joinpath("demo_service.py")))


def unit_text(port: int) -> str:
    return f"""[Unit]
Description=runbook lab demo service (the lab's victim)
After=network.target
# Tests and remediations restart it often; systemd's default start limit would refuse.
StartLimitIntervalSec=0

[Service]
Type=simple
User=runbook-demo
# The running release (`runbook lab deploy`): a symlink to its directory.
EnvironmentFile=-{CURRENT_RELEASE}/release.env
Environment=DEMO_UPSTREAM_STATUS_FILE={PROVIDER_STATUS_FILE}
ExecStart=/usr/bin/python3 {DEMO_PATH} --port {port} --name {SERVICE} --log-dir {LOG_DIR} \\
  --db {STATE_SUBDIR}/queue.db --faults-file {STATE_SUBDIR}/faults --config {CONFIG_PATH}
# Re-reads the configuration (a bad one is refused and reported; the old one keeps running).
ExecReload=/bin/kill -HUP $MAINPID
StateDirectory=runbook-demo
LogsDirectory=runbook-demo
LimitNOFILE={NOFILE_LIMIT}
MemoryMax={MEMORY_LIMIT.upper()}
MemorySwapMax=0
# No automatic restart: the lab exists to show the remediation doing it.
Restart=no
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
"""


def _tar_bytes(files: dict[str, tuple[str, int]]) -> bytes:
    """A tar stream of {path: (text, mode)} for put_archive at /."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def lab_name() -> str:
    """Which lab: ``RUNBOOK_LAB_NAME`` (default ``lab``). Tests use their own, so they
    never touch a user's lab; container names and labels carry it."""
    name = os.environ.get("RUNBOOK_LAB_NAME", "lab")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", name):
        raise BadInput(f"RUNBOOK_LAB_NAME must be lowercase letters, digits and dashes, not {name!r}")
    return name


class Lab:
    def __init__(self, state_dir: Path, progress=lambda _msg: None):
        self.name = lab_name()
        self.dir = state_dir / "lab"
        self.state_path = self.dir / "lab.json"
        self.inventory_path = self.dir / "inventory.yml"
        self.progress = progress
        self._client = None

    # --- helpers --------------------------------------------------------------
    def _container_name(self, host: str) -> str:
        return f"runbook-{host}" if self.name == "lab" else f"runbook-{self.name}-{host}"

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    def state(self) -> LabState:
        return LabState.load(self.state_path)

    def _prometheus(self, state: LabState) -> Server:
        return Server("prometheus", self.dir / "prometheus", state.prometheus_port, state.prometheus_pid)

    def _alertmanager(self, state: LabState) -> Server:
        return Server("alertmanager", self.dir / "alertmanager", state.alertmanager_port, state.alertmanager_pid)

    def _redis_exporter(self, state: LabState) -> Server:
        redis = state.redis or {}
        return Server("redis-exporter", self.dir / "redis-exporter", redis.get("exporter_port"),
                      redis.get("exporter_pid"), redis_port=redis.get("port"))

    def _postgres_exporter(self, state: LabState) -> Server:
        postgres = state.postgres or {}
        return Server("postgres-exporter", self.dir / "postgres-exporter", postgres.get("exporter_port"),
                      postgres.get("exporter_pid"),
                      postgres=(postgres.get("port"), lab_postgres.ADMIN, self.postgres_dir / "admin-password"))

    @property
    def redis_dir(self) -> Path:
        return self.dir / "redis"

    @property
    def redis_container(self) -> str:
        return f"{self.compose_project}-{REDIS_SERVICE}-1"

    @property
    def worker_container(self) -> str:
        return f"{self.compose_project}-{WORKER_SERVICE}-1"

    def _container(self, name: str):
        from docker.errors import NotFound

        try:
            return self.client.containers.get(name)
        except NotFound:
            return None

    def _exec(self, container, argv: list[str], check: bool = True) -> str:
        result = container.exec_run(argv, demux=False)
        output = (result.output or b"").decode(errors="replace").strip()
        if check and result.exit_code != 0:
            raise RunbookError(f"{container.name}: `{' '.join(argv)}` failed: {output.splitlines()[-1:] or ''}")
        return output

    # --- containers ------------------------------------------------------------
    def _systemd_mounts(self) -> dict:
        volumes = {str(demo_service_source()): {"bind": DEMO_PATH, "mode": "ro"}}
        for controller in CGROUP_CONTROLLERS:
            path = Path("/sys/fs/cgroup") / controller
            if path.is_dir():
                volumes[str(path)] = {"bind": str(path), "mode": "rw"}
        return volumes

    def _create_systemd_host(self, host: LabHost):
        return self.client.containers.run(
            lab_image.IMAGE,
            name=host.container,
            detach=True,
            network_mode="host",
            cgroupns="host",
            # SYSLOG: dmesg works as on a real host (the kernel log names OOM-killed units).
            cap_add=["SYS_ADMIN", "SYSLOG"],
            stop_signal="SIGRTMIN+3",
            tmpfs={
                "/run": "rw",
                "/run/lock": "rw",
                "/sys/fs/cgroup": "rw,mode=755",
                LOG_DIR: f"rw,size={LOG_FS_SIZE},mode=0755",
            },
            volumes=self._systemd_mounts(),
            labels={LABEL: self.name, f"{LABEL}.host": host.name, f"{LABEL}.manager": "systemd"},
        )

    def upstream_dir(self, host: LabHost) -> Path:
        """Docker and Compose services: the lab directory holding their upstream status file,
        mounted read-only where the service reads it."""
        path = self.dir / "upstream" / host.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _create_docker_service(self, host: LabHost, image: str | None = None):
        from docker.types import Ulimit

        memory = OFFICE_MEMORY_LIMIT if image == lab_image.OFFICE_IMAGE else MEMORY_LIMIT
        return self.client.containers.run(
            image or lab_image.IMAGE,
            command=[
                "python3", DEMO_PATH, "--port", str(host.port), "--name", SERVICE, "--log-dir", LOG_DIR,
                "--db", f"{STATE_SUBDIR}/queue.db", "--faults-file", f"{STATE_SUBDIR}/faults",
            ],
            name=host.container,
            detach=True,
            network_mode="host",
            stop_signal="SIGTERM",
            mem_limit=memory,
            memswap_limit=memory,
            ulimits=[Ulimit(name="nofile", soft=NOFILE_LIMIT, hard=NOFILE_LIMIT)],
            tmpfs={LOG_DIR: f"rw,size={LOG_FS_SIZE},mode=0755"},
            environment={"DEMO_UPSTREAM_STATUS_FILE": PROVIDER_STATUS_FILE},
            volumes={
                str(demo_service_source()): {"bind": DEMO_PATH, "mode": "ro"},
                str(self.upstream_dir(host)): {"bind": str(Path(PROVIDER_STATUS_FILE).parent), "mode": "ro"},
            },
            labels={LABEL: self.name, f"{LABEL}.host": host.name, f"{LABEL}.manager": "docker"},
        )

    @property
    def compose_dir(self) -> Path:
        return self.dir / "compose"

    @property
    def compose_project(self) -> str:
        return f"runbook-{self.name}"

    def compose_file(self, host: LabHost, redis_port: int | None = None, postgres_port: int | None = None,
                     worker_port: int | None = None) -> dict:
        """The Compose v2 project holding the lab's Compose-managed demo service (and, for
        the causal-eval profile, its Redis on ``redis_port``, PostgreSQL on ``postgres_port``
        and worker on ``worker_port``)."""
        labels = {LABEL: self.name, f"{LABEL}.host": host.name, f"{LABEL}.manager": "compose"}  # `lab down` finds them
        project = {
            "name": self.compose_project,
            "services": {
                SERVICE: {
                    "image": lab_image.IMAGE,
                    # No container_name: Compose names replicas PROJECT-demo-N (the first is
                    # host.container) and refuses to scale a service with a fixed name.
                    "command": [
                        "python3", DEMO_PATH,
                        *(["--port-candidates", ",".join(map(str, host.replica_ports))] if host.replica_ports
                          else ["--port", str(host.port)]),
                        "--name", SERVICE, "--log-dir", LOG_DIR,
                        "--db", f"{STATE_SUBDIR}/queue.db", "--faults-file", f"{STATE_SUBDIR}/faults",
                    ],
                    "network_mode": "host",
                    "stop_signal": "SIGTERM",
                    "stop_grace_period": "10s",
                    "mem_limit": MEMORY_LIMIT,
                    "memswap_limit": MEMORY_LIMIT,
                    "ulimits": {"nofile": {"soft": NOFILE_LIMIT, "hard": NOFILE_LIMIT}},
                    "tmpfs": [f"{LOG_DIR}:size={LOG_FS_SIZE},mode=0755"],
                    "environment": {"DEMO_UPSTREAM_STATUS_FILE": PROVIDER_STATUS_FILE},
                    **({"env_file": [API_KEY_FILE]} if worker_port else {}),
                    "volumes": [f"{demo_service_source()}:{DEMO_PATH}:ro",
                                f"{self.upstream_dir(host)}:{Path(PROVIDER_STATUS_FILE).parent}:ro"],
                    "labels": labels,
                }
            },
        }
        if redis_port:
            project["services"][REDIS_SERVICE] = {
                "image": lab_image.IMAGE,
                # Its own file, so CONFIG REWRITE (redis-memory keeps a raise) writes the lab's copy.
                "command": ["redis-server", f"{REDIS_CONF_DIR}/redis.conf"],
                "network_mode": "host",
                "stop_grace_period": "5s",
                "volumes": [f"{self.redis_dir}:{REDIS_CONF_DIR}"],
                "labels": labels,
            }
        if worker_port:
            project["services"][WORKER_SERVICE] = {
                "image": lab_image.IMAGE,
                "command": ["python3", DEMO_PATH, "--port", str(worker_port), "--name", WORKER_SERVICE,
                            "--log-dir", LOG_DIR, "--workload-rps", WORKER_WORKLOAD_RPS,
                            "--upstream", f"http://127.0.0.1:{host.port}/api/work", "--upstream-rps", "1"],
                "network_mode": "host",
                "stop_signal": "SIGTERM",
                "stop_grace_period": "5s",
                "mem_limit": MEMORY_LIMIT,
                "memswap_limit": MEMORY_LIMIT,
                "tmpfs": [f"{LOG_DIR}:size={LOG_FS_SIZE},mode=0755"],
                "env_file": [API_KEY_FILE],
                "volumes": [f"{demo_service_source()}:{DEMO_PATH}:ro"],
                "labels": labels,
            }
        if postgres_port:
            project["services"][lab_postgres.SERVICE] = lab_postgres.compose_service(
                lab_image.POSTGRES_IMAGE, postgres_port, self.postgres_dir, labels)
        return project

    def _create_compose_service(self, host: LabHost, redis_port: int | None = None, postgres_port: int | None = None,
                                worker_port: int | None = None):
        if worker_port:
            self._write_api_key(overwrite=True)  # a new lab, or heal: a fresh key, never rotated
        self._write_compose(host, redis_port, postgres_port, worker_port)
        self._compose_up()
        return self.client.containers.get(host.container)

    @property
    def api_key_file(self) -> Path:
        return self.compose_dir / API_KEY_FILE

    def _write_api_key(self, overwrite: bool) -> bool:
        """The API's key for causal-eval's API and worker (0600, in the project's directory);
        kept when there (a rotation's key stays) unless ``overwrite``."""
        import secrets

        if self.api_key_file.is_file() and not overwrite:
            return False
        self.compose_dir.mkdir(parents=True, exist_ok=True)
        temp = self.api_key_file.with_suffix(".tmp")
        temp.unlink(missing_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{API_KEY_VARIABLE}={secrets.token_urlsafe(32)}\n")
        temp.replace(self.api_key_file)
        return True

    def _write_compose(self, host: LabHost, redis_port: int | None, postgres_port: int | None = None,
                       worker_port: int | None = None) -> list[str]:
        """Write the project's file; what changed in its services (``added redis in P``), or
        ``["rewrote ..."]`` for any other change, empty when the file is as it was."""
        self.compose_dir.mkdir(parents=True, exist_ok=True)
        compose_path = self.compose_dir / "compose.yaml"
        project = self.compose_file(host, redis_port, postgres_port, worker_port)
        text = yaml.safe_dump(project, sort_keys=False)
        if compose_path.is_file() and compose_path.read_text(encoding="utf-8") == text:
            return []
        before = set()
        if compose_path.is_file():
            before = set((yaml.safe_load(compose_path.read_text(encoding="utf-8")) or {}).get("services") or {})
        compose_path.write_text(text, encoding="utf-8")
        after = set(project["services"])
        changes = [f"added {name} in {self.compose_project}" for name in sorted(after - before)]
        changes += [f"removed {name} in {self.compose_project}" for name in sorted(before - after)]
        return changes or [f"rewrote {compose_path}"]

    def _compose_up(self) -> None:
        import subprocess

        result = subprocess.run(
            ["docker", "compose", "--project-directory", str(self.compose_dir), "up", "--detach", "--no-build",
             "--pull", "never", "--remove-orphans"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise Unavailable(f"docker compose up failed: {lines[-1]}", hint="scripts/bootstrap installs Compose v2")

    def _wait_systemd(self, container, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self._exec(container, ["systemctl", "is-system-running"], check=False)
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise Unavailable(f"systemd in {container.name} did not finish booting (state: {state or 'unknown'})")

    def _install_config(self, container) -> None:
        """The demo's configuration, committed as the known-good in a git work tree (once)."""
        if container.exec_run(["git", "-C", CONFIG_DIR, "rev-parse", "HEAD"]).exit_code == 0:
            return
        container.put_archive("/", _tar_bytes({CONFIG_PATH: (CONFIG_TEXT, 0o644)}))
        git = ["git", "-C", CONFIG_DIR, "-c", "user.name=runbook lab", "-c", "user.email=lab@runbook.invalid"]
        self._exec(container, ["git", "-C", CONFIG_DIR, "init", "-q"])
        self._exec(container, [*git, "add", "production.toml"])
        self._exec(container, [*git, "commit", "-q", "-m", "known-good configuration"])

    def _install_unit(self, container, host: LabHost) -> bool:
        """Install and start the demo unit. Returns True when anything changed."""
        self._install_config(container)
        wanted = unit_text(host.port)
        current = self._exec(container, ["cat", f"/etc/systemd/system/{UNIT}"], check=False)
        if current.strip() == wanted.strip():
            return False
        container.put_archive("/", _tar_bytes({f"/etc/systemd/system/{UNIT}": (wanted, 0o644)}))
        self._exec(container, ["systemctl", "daemon-reload"])
        self._exec(container, ["systemctl", "enable", "--now", UNIT])
        return True

    def _wait_healthy(self, hosts: list[LabHost], timeout: float = 30.0) -> None:
        pending = {h.name: h for h in hosts}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for name, host in list(pending.items()):
                if probe_health(host)[0]:
                    pending.pop(name)
            time.sleep(0.1)
        if pending:
            raise Unavailable(f"demo service not healthy on {', '.join(sorted(pending))} after {timeout:.0f} s")

    # --- public operations -------------------------------------------------------
    def up(self, hosts: int = 2, kubernetes: bool = False, profiles: tuple[str, ...] = ()) -> list[str]:
        """Make the lab match ``hosts`` systemd hosts, a Kubernetes cluster running the demo
        as a Deployment or none (``kubernetes``), and the parts of ``profiles`` (PROFILE_PARTS;
        a part no profile asks for any more is removed). Returns what changed (empty: nothing)."""
        if not 1 <= hosts <= MAX_HOSTS:
            raise BadInput(f"--hosts must be between 1 and {MAX_HOSTS}, not {hosts}")
        unknown = [name for name in profiles if name not in PROFILES]
        if unknown:
            raise BadInput(f"unknown lab profile {', '.join(unknown)} (profiles: {', '.join(PROFILES)})")
        parts = {part for name in profiles for part in PROFILE_PARTS.get(name, ())}
        kubernetes = kubernetes or "kubernetes" in parts
        client = self.client  # fail fast when dockerd is unreachable, before anything is made
        state = self.state()
        fresh = not state.hosts
        changes: list[str] = []
        created: list[str] = []
        recreated: list[str] = []  # made again on another image: waited for like the created
        started: list[Server] = []
        clusters: list = []  # a cluster this call started (stopped again when it fails)
        try:
            if not lab_image.image_exists(client):
                lab_image.build_image(client, self.progress)
                changes.append(f"built image {lab_image.IMAGE}")
            taken = {port for h in state.hosts for port in [h.port, *h.replica_ports]}
            taken |= set((state.redis or {}).get("ports", []))
            taken |= {(state.postgres or {}).get(key) for key in ("port", "exporter_port")} - {None}
            taken |= {(state.worker or {}).get("port")} - {None}
            redis_port = None
            if "redis" in parts:
                if state.redis is None:
                    state.redis = {"port": free_port(taken)}
                    taken.add(state.redis["port"])
                    state.redis["exporter_port"] = free_port(taken)
                    state.redis["ports"] = [state.redis["port"], state.redis["exporter_port"]]
                    taken.add(state.redis["exporter_port"])
                redis_port = state.redis["port"]
                self._write_redis_conf(state.redis["port"], overwrite=False)
            postgres_port = None
            if "postgresql" in parts:
                if state.postgres is None:
                    state.postgres = {"port": free_port(taken)}
                    taken.add(state.postgres["port"])
                if not state.postgres.get("exporter_port"):  # also a lab made before the exporter came
                    state.postgres["exporter_port"] = free_port(taken)
                    taken.add(state.postgres["exporter_port"])
                postgres_port = state.postgres["port"]
                self._postgres(state).write_files()
                lab_image.build_postgres_image(client, self.progress)  # once; cached in the engine
            worker_port = None
            if "worker" in parts:
                if state.worker is None:
                    state.worker = {"port": free_port(taken)}
                    taken.add(state.worker["port"])
                worker_port = state.worker["port"]
                self._write_api_key(overwrite=False)
            docker_image = lab_image.IMAGE
            if "libreoffice" in parts:
                docker_image = lab_image.build_office_image(client, self.progress)  # once; cached
            wanted = [f"lab-{i}" for i in range(1, hosts + 1)] + ["lab-docker", "lab-compose"]
            by_name = {h.name: h for h in state.hosts}
            new_hosts: list[LabHost] = []
            for name in wanted:
                host = by_name.get(name)
                if host is None:
                    port = free_port(taken)
                    taken.add(port)
                    manager = {"lab-docker": "docker", "lab-compose": "compose"}.get(name, "systemd")
                    host = LabHost(name=name, container=self._container_name(name), manager=manager, port=port)
                    if manager == "compose":
                        host.container = f"{self.compose_project}-{SERVICE}-1"
                        host.replica_ports = [port]
                        while len(host.replica_ports) < REPLICA_PORTS:
                            host.replica_ports.append(free_port(taken))
                            taken.add(host.replica_ports[-1])
                new_hosts.append(host)

            for host in new_hosts:
                container = self._container(host.container)
                if container is None:
                    self.progress(f"creating {host.name} ({host.manager})")
                    if host.manager == "systemd":
                        container = self._create_systemd_host(host)
                    elif host.manager == "docker":
                        container = self._create_docker_service(host, image=docker_image)
                    else:
                        container = self._create_compose_service(host, redis_port, postgres_port, worker_port)
                    created.append(host.container)
                    changes.append(f"created {host.container}")
                elif host.manager == "compose" and (compose_changes := self._write_compose(host, redis_port,
                                                                                           postgres_port, worker_port)):
                    # The project gained or lost a profile's part: Compose makes or removes it.
                    self._compose_up()
                    changes += compose_changes
                elif host.manager == "docker" and self._stock_image(container) not in (None, docker_image):
                    # ggen-mcp's LibreOffice came or went: the service made again on the other
                    # image (a deployed release's image is left as it is).
                    container.remove(force=True)
                    container = self._create_docker_service(host, image=docker_image)
                    recreated.append(host.container)
                    changes.append(f"recreated {host.container} "
                                   f"{'with' if docker_image == lab_image.OFFICE_IMAGE else 'without'} LibreOffice")
                elif container.status != "running":
                    # A lab host container that stopped is restarted; a demo service that
                    # is down inside a running host is left alone: that is the incident.
                    container.start()
                    changes.append(f"started {host.container}")
                if host.manager == "systemd":
                    self._wait_systemd(container)
                    if self._install_unit(container, host):
                        changes.append(f"installed {UNIT} on {host.name}")

            for host in state.hosts:  # fewer hosts asked for than the lab has
                if host.name not in wanted:
                    self._remove_container(host.container)
                    changes.append(f"removed {host.container}")
            state.hosts = new_hosts
            if kubernetes:
                changes += self._ensure_kubernetes(state, taken, clusters)
            elif state.kubernetes:
                changes += self._stop_kubernetes(state)
            if redis_port:
                changes += self._ensure_exporter(self._redis_exporter(state), state.redis, started)
            elif state.redis:
                if self._redis_exporter(state).stop():
                    changes.append("stopped the Redis exporter")
                shutil.rmtree(self.redis_dir, ignore_errors=True)
                state.redis = None
            if postgres_port:
                changes += self._ensure_postgres(state)
                changes += self._ensure_exporter(self._postgres_exporter(state), state.postgres, started)
            elif state.postgres:
                if self._postgres_exporter(state).stop():
                    changes.append("stopped the PostgreSQL exporter")
                if lab_postgres.stop_holder(state.postgres.get("holder_pid"), self.name):
                    changes.append("stopped the leaking PostgreSQL client")
                shutil.rmtree(self.postgres_dir, ignore_errors=True)
                state.postgres = None
            if not worker_port:
                state.worker = None  # its container went with the project's file (--remove-orphans)
                self.api_key_file.unlink(missing_ok=True)
            state.profiles = sorted(set(profiles))
            changes += self._ensure_monitoring(state, started)
            state.save(self.state_path)
            if self._write_inventory(state):
                changes.append(f"wrote {self.inventory_path}")
            if created or recreated:
                self._wait_healthy([h for h in new_hosts if h.container in created + recreated])
        except BaseException:
            # Leave nothing half-made: undo what this call created.
            for name in created:
                self._remove_container(name)
            for server in started:
                server.stop()
            for cluster in clusters:
                cluster.stop()
                state.kubernetes = None
            if fresh:
                # A new lab: every container with its label is this call's (Compose made the
                # profile's Redis and PostgreSQL beside the demo), and so are their files.
                for container in client.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"}):
                    container.remove(force=True)
                for directory in (self.redis_dir, self.postgres_dir):
                    shutil.rmtree(directory, ignore_errors=True)
                self._forget()
            raise
        return changes

    @property
    def kubernetes_dir(self) -> Path:
        return self.dir / "kubernetes"

    def kubernetes_host(self, state: LabState | None = None) -> LabHost | None:
        """The demo Deployment as a lab host (its pod answers on 127.0.0.1:port), when the
        cluster is part of the lab."""
        state = state or self.state()
        if not state.kubernetes:
            return None
        return LabHost(name=K8S_HOST, container=f"deployment/{SERVICE}", manager="kubernetes",
                       port=int(state.kubernetes["port"]))

    def _ensure_kubernetes(self, state: LabState, taken: set[int], clusters: list) -> list[str]:
        """The cluster running (started when it is not) and the demo Deployment on it (applied
        only when missing: a drill's changes to it stay until `lab heal`)."""
        from runbook_remediation.lab import kubernetes as k8s

        changes = []
        cluster = k8s.Cluster(self.kubernetes_dir, progress=self.progress)
        if not cluster.running() and self._build_kubernetes():
            changes.append("built the Kubernetes binaries")
        if not cluster.running():
            cluster.stop()  # what a stopped or crashed cluster left behind (idempotent)
            self.progress("starting the Kubernetes cluster (etcd, control plane, kubelet)")
            cluster.start()
            clusters.append(cluster)
            changes.append("started the Kubernetes cluster")
        port = int((state.kubernetes or {}).get("port") or free_port(taken))
        taken.add(port)
        state.kubernetes = {"run_dir": str(cluster.run_dir), "kubeconfig": str(cluster.kubeconfig),
                            "deployment": SERVICE, "namespace": "default", "port": port}
        if cluster.kubectl("get", "deployment", SERVICE, check=False).returncode != 0:
            self._apply_kubernetes_demo(cluster, port)
            changes.append(f"deployed Deployment {SERVICE} on the Kubernetes cluster")
        return changes

    def _build_kubernetes(self) -> bool:
        """Build the cluster's binaries and pause image once (scripts/kubernetes-build, ~10 min
        on 2 cores, cached outside git) when they are missing and this is a checkout that has
        the script; True when it built. Without the script, starting the cluster says how."""
        from runbook_remediation.lab import kubernetes as k8s

        try:
            k8s.ensure_binaries()
            if k8s.image_exists(k8s.PAUSE_IMAGE):
                return False
        except Unavailable:
            pass
        script = k8s.build_script()
        if script is None:
            return False
        self.progress(f"building the Kubernetes {k8s.VERSION} binaries once ({script}, ~10 min on 2 cores)")
        result = subprocess.run([str(script)], check=False)
        if result.returncode != 0:
            raise Unavailable(f"{script} failed (exit {result.returncode})", hint="its output above says why")
        return True

    def _apply_kubernetes_demo(self, cluster, port: int) -> None:
        from runbook_remediation.lab import kubernetes as k8s

        self.progress(f"deploying {SERVICE} on the Kubernetes cluster (127.0.0.1:{port})")
        # Replaced, not applied: a drill's changes to them (the flag, the weight and its
        # record) must not survive a heal.
        controls = {"apiVersion": "v1", "kind": "List", "items": kubernetes_controls(port)}
        cluster.kubectl("delete", "configmap", K8S_CONFIGMAP, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "service", K8S_REGION_SERVICE, "--ignore-not-found", check=False)
        cluster.kubectl("apply", "-f", "-", input=json.dumps(controls))
        # Faults kept in the pod's emptyDir: a crash-loop survives the kubelet's restarts.
        k8s.apply_demo(cluster, name=SERVICE, port=port, env={"DEMO_FAULTS_FILE": f"{STATE_SUBDIR}/faults"},
                       env_from={"MAINTENANCE_MODE": (K8S_CONFIGMAP, "maintenance_mode")})

    def _stop_kubernetes(self, state: LabState) -> list[str]:
        from runbook_remediation.lab import kubernetes as k8s

        self.progress("stopping the Kubernetes cluster")
        k8s.Cluster(self.kubernetes_dir, progress=self.progress).stop()
        state.kubernetes = None
        return ["stopped the Kubernetes cluster"]

    def _write_redis_conf(self, port: int, overwrite: bool) -> bool:
        """The profile Redis's configuration: 127.0.0.1 only, a small maxmemory under
        noeviction (full, it refuses writes), no persistence. Kept when there (a raise
        redis-memory made stays) unless ``overwrite`` (heal)."""
        path = self.redis_dir / "redis.conf"
        if path.is_file() and not overwrite:
            return False
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# runbook lab: seed 004's cache (runbook lab up --profile causal-eval)\n"
                        f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nmaxmemory {REDIS_MAXMEMORY}\n"
                        f"maxmemory-policy noeviction\nsave \"\"\nappendonly no\ndir /tmp\n", encoding="utf-8")
        return True

    def _ensure_exporter(self, exporter: Server, part: dict, started: list[Server]) -> list[str]:
        """Start a profile part's exporter unless it runs; its pid kept in the part's state."""
        if exporter.running():
            return []
        self.progress(f"starting {exporter.title} on {exporter.url}")
        exporter.start()
        started.append(exporter)
        part["exporter_pid"] = exporter.pid
        return [f"started {exporter.title}"]

    @staticmethod
    def _stock_image(container) -> str | None:
        """The lab image or the office image the container runs, None for another (a release's)."""
        image = (container.attrs.get("Config") or {}).get("Image")
        return image if image in (lab_image.IMAGE, lab_image.OFFICE_IMAGE) else None

    def _docker_image(self, state: LabState) -> str:
        """The Docker service's image: with LibreOffice when ggen-mcp's profile is up."""
        parts = {part for name in state.profiles for part in PROFILE_PARTS.get(name, ())}
        return lab_image.OFFICE_IMAGE if "libreoffice" in parts else lab_image.IMAGE

    def soffice_leak(self, host_name: str, params: dict) -> dict:
        """Headless LibreOffice listeners left running in the Docker service's container as
        nobody (seed 003: conversions that never gave their soffice back); returns once each
        answers on its port."""
        host = self.host(host_name)
        container = self._container(host.container) if host.manager == "docker" else None
        if container is None or self._stock_image(container) != lab_image.OFFICE_IMAGE:
            raise BadInput(f"soffice-leak needs the Docker host of `runbook lab up --profile ggen-mcp`, "
                           f"not {host.name}")
        try:
            count = int(params.get("count", 2))
        except (TypeError, ValueError):
            count = 0
        if not 1 <= count <= 5:
            raise BadInput(f"soffice-leak: count must be 1 to 5, not {params.get('count')!r}")
        ports: list[int] = []
        for _index in range(count):
            port = free_port(set(ports) | {host.port})
            ports.append(port)
            profile = f"/tmp/lo-leak-{port}"  # noqa: S108 - the container's own /tmp, nobody's profile
            container.exec_run([SOFFICE, "--headless", "--norestore", "--nologo", "--nodefault",
                                f"-env:UserInstallation=file://{profile}",
                                f"--accept=socket,host=127.0.0.1,port={port};urp;"],
                               user=SOFFICE_USER, environment={"HOME": "/tmp"}, detach=True)  # noqa: S108
        deadline = time.monotonic() + 60
        for port in ports:
            while not soffice_greets(port):
                if time.monotonic() > deadline:
                    raise Unavailable(f"LibreOffice in {host.container} did not listen on {port} within 60 s")
                time.sleep(0.25)
        return {"host": host.name, "fault": "soffice-leak", "params": {"ports": ports}}

    def soffice_processes(self, host_name: str) -> int:
        """How many soffice.bin run in the Docker service's container."""
        container = self._container(self.host(host_name).container)
        if container is None or container.status != "running":
            return 0
        result = container.exec_run(["pgrep", "-c", "-x", "soffice.bin"])
        output = result.output.decode(errors="replace").strip()
        return int(output) if output.isdigit() else 0

    @property
    def postgres_dir(self) -> Path:
        return self.dir / "postgres"

    @property
    def postgres_container(self) -> str:
        return f"{self.compose_project}-{lab_postgres.SERVICE}-1"

    def _postgres(self, state: LabState) -> lab_postgres.Postgres:
        if not state.postgres:
            raise BadInput("the lab has no PostgreSQL", hint="runbook lab up --profile causal-eval")
        return lab_postgres.Postgres(self.postgres_dir, state.postgres["port"])

    def postgres(self) -> lab_postgres.Postgres:
        """The profile's PostgreSQL, or bad input when the lab has none."""
        return self._postgres(self.state())

    def _ensure_postgres(self, state: LabState) -> list[str]:
        server = self._postgres(state)
        server.wait_ready()
        if server.set_up():
            return [f"made the {lab_postgres.DATABASE} database"]
        return []

    def postgres_fault(self, fault: str, host_name: str) -> dict:
        """pg-pool-exhausted: a client holds every connection slot the API's user may take;
        pg-index-corrupt: a page of the table's index overwritten while the server is stopped,
        then started again (amcheck finds it; queries through the index may go wrong);
        pg-down: its container killed, as a crash would; pg-long-queries: a client's sessions
        each run an hour-long query (returns once they have run for a few seconds)."""
        host = self.host(host_name)
        state = self.state()
        if host.manager != "compose" or not state.postgres:
            raise BadInput(f"{fault} needs the Compose host of `runbook lab up --profile causal-eval` (or ggen-mcp), "
                           f"not {host.name}")
        if fault == "pg-down":
            container = self._container(self.postgres_container)
            if container is not None:
                container.kill()
            return {"host": host.name, "fault": fault, "params": {}}
        server = self._postgres(state)
        if fault == "pg-pool-exhausted":
            lab_postgres.stop_holder(state.postgres.get("holder_pid"), self.name)
            pid, held = server.hold_connections(self.name)
            state.postgres["holder_pid"] = pid
            state.save(self.state_path)
            return {"host": host.name, "fault": fault, "params": {"connections": held}}
        if fault == "pg-long-queries":
            lab_postgres.stop_holder(state.postgres.get("holder_pid"), self.name)
            pid, held = server.hold_connections(self.name, limit=lab_postgres.LONG_QUERIES, queries=True)
            state.postgres["holder_pid"] = pid
            state.save(self.state_path)
            time.sleep(lab_postgres.LONG_QUERY_AGE)
            return {"host": host.name, "fault": fault, "params": {"queries": server.long_queries(1.0)}}
        path = server.index_path()
        container = self._container(self.postgres_container)
        if container is None:
            raise Unavailable(f"{self.postgres_container} is not running")
        container.stop(timeout=10)
        lab_postgres.scribble(path)
        container.start()
        server.wait_ready()
        return {"host": host.name, "fault": fault, "params": {"index": lab_postgres.INDEX}}

    def _heal_postgres(self, state: LabState) -> None:
        """The profile's PostgreSQL as `up` made it: no leaking client, running, the API's
        sessions gone, its table and index made again."""
        lab_postgres.stop_holder(state.postgres.get("holder_pid"), self.name)
        state.postgres.pop("holder_pid", None)
        state.save(self.state_path)
        server = self._postgres(state)
        server.wait_ready()
        server.terminate_app_sessions()
        server.set_up(reset=True)

    def redis_client(self, timeout: float = 3.0):
        """A client of the profile's Redis, or bad input when the lab has none."""
        import redis

        state = self.state()
        if not state.redis:
            raise BadInput("the lab has no Redis", hint="runbook lab up --profile causal-eval")
        return redis.Redis(host="127.0.0.1", port=state.redis["port"], socket_timeout=timeout)

    def redis_fault(self, fault: str, host_name: str) -> dict:
        """redis-full: write 1 KiB values until the Redis refuses (its maxmemory, noeviction);
        redis-down: stop its container, as a crash would."""
        import redis

        host = self.host(host_name)
        if host.manager != "compose" or not self.state().redis:
            raise BadInput(f"{fault} needs the Compose host of `runbook lab up --profile causal-eval` (or ggen-mcp), "
                           f"not {host.name}")
        if fault == "redis-down":
            container = self._container(self.redis_container)
            if container is not None:
                container.kill()
            return {"host": host.name, "fault": fault, "params": {}}
        client = self.redis_client()
        try:
            for index in range(100_000):
                client.set(f"lab:fill:{index}", b"x" * 1024)
        except redis.exceptions.ResponseError as exc:
            if "maxmemory" not in str(exc):  # the OOM refusal: full, as wanted
                raise Unavailable(f"the lab's Redis refused a write: {exc}") from exc
        except redis.exceptions.ConnectionError as exc:
            raise Unavailable(f"the lab's Redis is not answering ({exc}); is it already down?") from exc
        finally:
            client.close()
        return {"host": host.name, "fault": fault, "params": {}}

    def _heal_redis(self, state: LabState) -> None:
        """The profile's Redis as `up` made it: its file back, running, empty, the lab's maxmemory."""
        import redis

        self._write_redis_conf(state.redis["port"], overwrite=True)
        client = self.redis_client()
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    client.flushall()
                    client.config_set("maxmemory", REDIS_MAXMEMORY)
                    return
                except redis.exceptions.RedisError as exc:  # not up yet (just started): retried
                    if time.monotonic() > deadline:
                        raise Unavailable(f"the lab's Redis did not come back: {exc}") from exc
                    time.sleep(0.2)
        finally:
            client.close()

    def _ensure_monitoring(self, state: LabState, started: list[Server]) -> list[str]:
        changes = []
        taken = {port for h in state.hosts for port in [h.port, *h.replica_ports]}
        if state.alertmanager_port is None:
            state.alertmanager_port = free_port(taken)
        taken.add(state.alertmanager_port)
        if state.prometheus_port is None:
            state.prometheus_port = free_port(taken)

        alertmanager = self._alertmanager(state)
        changed = alertmanager.write_config(alertmanager_config(state.webhook_url, state.webhook_token_file))
        changes.append(self._ensure_running(alertmanager, changed, started))
        state.alertmanager_pid = alertmanager.pid

        prometheus = self._prometheus(state)
        # Services with replicas are found through their targets file (replica_scale rewrites
        # it); written here only when missing, so `up` keeps a scaled-out service's replicas.
        targets = [ScrapeTarget(h.name, SERVICE, h.manager, h.port) for h in state.hosts if not h.replica_ports]
        k8s_host = self.kubernetes_host(state)
        if k8s_host:  # the pod's host port, scraped like any host's service
            targets.append(ScrapeTarget(k8s_host.name, SERVICE, k8s_host.manager, k8s_host.port))
        worker = self.worker_host(state)
        if worker:  # the demo's rules apply to it: ServiceDown names it by its service label
            targets.append(ScrapeTarget(worker.name, WORKER_SERVICE, worker.manager, worker.port))
        for host in state.hosts:
            if host.replica_ports and not targets_file(self.dir, host).is_file():
                write_file_sd(targets_file(self.dir, host), [host.port], scrape_labels(host))
        rules = self.dir / "prometheus" / "rules.yml"
        replicated = any(h.replica_ports for h in state.hosts)
        # Not dot files: Ansible's copy renames a temporary `.ansible_tmp*NAME.json` into place.
        sd_files = [str(self.dir / "prometheus" / "targets" / "[^.]*.json")] if replicated else []
        compose_host = next((h for h in state.hosts if h.manager == "compose"), None)
        redis_targets = [ScrapeTarget(compose_host.name, REDIS_SERVICE, "compose", state.redis["exporter_port"])
                         ] if state.redis and compose_host else []
        postgres_targets = [ScrapeTarget(compose_host.name, lab_postgres.SERVICE, "compose",
                                         state.postgres["exporter_port"])] if state.postgres and compose_host else []
        changed = prometheus.write_config(
            prometheus_config(targets, state.alertmanager_port, rules, sd_files, redis_targets, postgres_targets),
            {"rules.yml": rules_text(state.profiles)},
        )
        changes.append(self._ensure_running(prometheus, changed, started))
        state.prometheus_pid = prometheus.pid
        return [change for change in changes if change]

    def _ensure_running(self, server: Server, config_changed: bool, started: list[Server]) -> str | None:
        """Start the server, or reload it when its configuration changed. Says what it did."""
        if not server.running():
            self.progress(f"starting {server.title} on {server.url}")
            server.start()
            started.append(server)
            return f"started {server.title}"
        if config_changed:
            server.reload()
            return f"reloaded {server.title}"
        return None

    def _write_inventory(self, state: LabState) -> bool:
        text = yaml.safe_dump(inventory(state, self.compose_dir, self.compose_project), sort_keys=False)
        header = "# Written by `runbook lab up`: the lab's hosts and their services. Do not edit.\n"
        if self.inventory_path.is_file() and self.inventory_path.read_text(encoding="utf-8") == header + text:
            return False
        self.inventory_path.parent.mkdir(parents=True, exist_ok=True)
        self.inventory_path.write_text(header + text, encoding="utf-8")
        return True

    def _remove_container(self, name: str) -> bool:
        container = self._container(name)
        if container is None:
            return False
        container.remove(force=True)
        return True

    def _forget(self) -> None:
        for path in (self.state_path, self.inventory_path):
            path.unlink(missing_ok=True)

    def down(self) -> list[str]:
        """Remove every container, process and file the lab made."""
        state = self.state()
        removed = []
        if (self.kubernetes_dir / "cluster.json").is_file() or state.kubernetes:
            from runbook_remediation.lab import kubernetes as k8s

            removed += k8s.Cluster(self.kubernetes_dir, progress=self.progress).stop()
        for server in (self._prometheus(state), self._alertmanager(state), self._redis_exporter(state),
                       self._postgres_exporter(state)):
            if server.port and server.stop():
                removed.append(f"stopped {server.kind}")
        if state.postgres and lab_postgres.stop_holder(state.postgres.get("holder_pid"), self.name):
            removed.append("stopped the leaking PostgreSQL client")
        held_port = (state.port_holder or {}).get("port")
        if self._release_port(state):
            removed.append(f"stopped the process holding port {held_port}")
        # Containers by label too, so a lost state file still cleans up.
        try:
            client = self.client
        except Unavailable:
            if state.hosts:
                raise
            client = None
        if client is not None:
            for container in client.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"}):
                container.remove(force=True)
                removed.append(f"removed {container.name}")
        # Deploy histories of the Docker and Compose services live on the Docker host (here).
        for host in state.hosts:
            if host.manager != "systemd" and Path(self.release_history_path(host)).is_file():
                Path(self.release_history_path(host)).unlink()
                removed.append(f"removed {self.release_history_path(host)}")
        if self.dir.exists():
            shutil.rmtree(self.dir)
            removed.append(f"removed {self.dir}")
        return removed

    def set_webhook(self, url: str | None, token_file: str | None = None) -> None:
        """Point the lab's Alertmanager at a webhook receiver (``runbook watch``) that wants
        the bearer token in ``token_file``, or at nothing again (``None``), and reload it."""
        state = self.state()
        if state.alertmanager_port is None:
            raise BadInput("the lab is not up: run `runbook lab up` first")
        state.webhook_url = url
        state.webhook_token_file = token_file if url else None
        alertmanager = self._alertmanager(state)
        if alertmanager.write_config(alertmanager_config(url, state.webhook_token_file)) and alertmanager.running():
            alertmanager.reload()
        state.save(self.state_path)

    def host(self, name: str) -> LabHost:
        state = self.state()
        if not state.hosts:
            raise BadInput("the lab is not up", hint="runbook lab up")
        known = [*state.hosts, *filter(None, [self.kubernetes_host(state)])]
        for host in known:
            if host.name == name:
                return host
        raise BadInput(f"unknown lab host {name!r} (lab hosts: {', '.join(h.name for h in known)})")

    def break_service(self, fault: str, host_name: str, params: dict | None = None) -> dict:
        if fault == "config-broken":
            return self.config_broken(host_name)
        if fault == "sqlite-corrupt":
            return self.sqlite_corrupt(host_name)
        if fault in ("redis-full", "redis-down"):
            return self.redis_fault(fault, host_name)
        if fault in lab_postgres.FAULTS:
            return self.postgres_fault(fault, host_name)
        if fault == "soffice-leak":
            return self.soffice_leak(host_name, params or {})
        if fault == "worker-down":
            return self.worker_down(host_name)
        if fault == "heavy-work":
            return self.heavy_work(host_name, params or {})
        if fault == "port-taken":
            return self.port_taken(host_name)
        if fault in LAB_FAULTS:
            return self.provider_down(host_name, params or {})
        if fault not in FAULTS:
            raise BadInput(f"unknown fault {fault!r} (faults: {', '.join(FAULTS + LAB_FAULTS)})")
        host = self.host(host_name)
        url = f"http://127.0.0.1:{host.port}/faults/{fault}"
        try:
            http_json(url, method="POST", body=params or {}, timeout=5)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise BadInput(f"the demo service on {host.name} refused {fault}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            # crash/crash-loop exit right after answering; a dropped reply is expected.
            if fault not in ("crash", "crash-loop"):
                raise Unavailable(
                    f"the demo service on {host.name} is not answering ({exc}); is it already down?"
                ) from exc
        return {"host": host.name, "fault": fault, "params": params or {}}

    def provider_down(self, host_name: str, params: dict) -> dict:
        """Take an upstream provider down for a host's demo service (the status file it reads,
        outside the service): every request through that provider fails."""
        provider = str(params.get("provider", "primary"))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", provider):
            raise BadInput(f"provider-down: provider must be a plain name, not {provider!r}")
        host = self.host(host_name)
        if host.manager == "kubernetes":
            raise BadInput(f"provider-down needs a systemd, Docker or Compose lab host; {host.name} is kubernetes")
        status = json.dumps({provider: "down"})
        if host.manager != "systemd":
            # Written beside the mount and renamed: the service never reads half a file.
            path = self.upstream_dir(host) / Path(PROVIDER_STATUS_FILE).name
            path.with_suffix(".tmp").write_text(status, encoding="utf-8")
            path.with_suffix(".tmp").replace(path)
            return {"host": host.name, "fault": "provider-down", "params": {"provider": provider}}
        container = self._container(host.container)
        if container is None or container.status != "running":
            raise Unavailable(f"{host.container} is not running")
        self._exec(container, ["sh", "-c", WRITE_FILE, "sh", PROVIDER_STATUS_FILE, status])
        return {"host": host.name, "fault": "provider-down", "params": {"provider": provider}}

    def heavy_work(self, host_name: str, params: dict) -> dict:
        """Too much work per request (DEMO_WORK_ITERATIONS), as a bad configuration sets it:
        a systemd drop-in, or the Compose project's override file; the service restarted with it."""
        try:
            iterations = int(params.get("iterations", HEAVY_WORK_ITERATIONS))
        except (TypeError, ValueError):
            iterations = 0
        if not 100 <= iterations <= 5000:
            raise BadInput(f"heavy-work: iterations must be 100 to 5000, not {params.get('iterations')!r}")
        host = self.host(host_name)
        if host.manager == "systemd":
            container = self._container(host.container)
            if container is None or container.status != "running":
                raise Unavailable(f"{host.container} is not running")
            text = f"[Service]\nEnvironment=DEMO_WORK_ITERATIONS={iterations}\n"
            self._exec(container, ["sh", "-c", WRITE_FILE, "sh", HEAVY_WORK_DROPIN, text])
            self._exec(container, ["systemctl", "daemon-reload"])
            self._exec(container, ["systemctl", "restart", UNIT])
        elif host.manager == "compose":
            # The override the remediations merge into (heal removes it), as an operator's edit would.
            path = self.compose_dir / "compose.override.yaml"
            override = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
            service = override.setdefault("services", {}).setdefault(SERVICE, {})
            service.setdefault("environment", {})["DEMO_WORK_ITERATIONS"] = str(iterations)
            path.write_text(yaml.safe_dump(override, sort_keys=False), encoding="utf-8")
            self._compose_up()
        else:
            raise BadInput(f"heavy-work needs a systemd or Compose lab host; {host.name} is {host.manager}")
        self._wait_healthy([host])
        return {"host": host.name, "fault": "heavy-work", "params": {"iterations": iterations}}

    def port_taken(self, host_name: str) -> dict:
        """The service's container died and another process took its port meanwhile: a
        restart fails to bind (EADDRINUSE) until heal stops that process."""
        host = self.host(host_name)
        # Not the Compose service: its replicas take the first free of their ports, so it
        # would start on the next one.
        if host.manager != "docker":
            raise BadInput(f"port-taken needs the Docker lab host; {host.name} is {host.manager}")
        state = self.state()
        if state.port_holder:
            raise BadInput(f"port {state.port_holder['port']} is taken already",
                           hint=f"runbook lab heal --host {host.name}")
        container = self._container(host.container)
        if container is not None and container.status == "running":
            container.kill()
        deadline = time.monotonic() + 10
        while port_in_use(host.port):  # the killed service's socket goes with its process
            if time.monotonic() > deadline:
                raise Unavailable(f"port {host.port} of {host.name} is still in use after its container was killed")
            time.sleep(0.1)
        process = subprocess.Popen(
            [sys.executable, "-c", PORT_HOLDER, str(host.port), f"{PORT_HOLDER_MARKER}={self.name}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
            text=True,
        )
        if process.stdout.readline().strip() != "listening":
            process.kill()
            process.wait()
            raise Unavailable(f"could not take port {host.port} of {host.name}")
        state.port_holder = {"pid": process.pid, "port": host.port}
        state.save(self.state_path)
        return {"host": host.name, "fault": "port-taken", "params": {"port": host.port, "pid": process.pid}}

    def _release_port(self, state: LabState) -> bool:
        """Stop port-taken's process (heal, down). True when one was stopped."""
        holder, state.port_holder = state.port_holder, None
        if not holder:
            return False
        state.save(self.state_path)
        return stop_process(holder.get("pid"), f"{PORT_HOLDER_MARKER}={self.name}", timeout=5.0)

    def worker_host(self, state: LabState | None = None) -> LabHost | None:
        """causal-eval's worker as a host entry of its own (its health and metrics URLs),
        on the Compose host; None without the profile."""
        state = state or self.state()
        compose_host = next((h for h in state.hosts if h.manager == "compose"), None)
        if not state.worker or compose_host is None:
            return None
        return LabHost(name=compose_host.name, container=self.worker_container, manager="compose",
                       port=state.worker["port"])

    def worker_down(self, host_name: str) -> dict:
        """worker-down: kill the worker's container, as a crash would (Compose restarts none)."""
        host = self.host(host_name)
        if host.manager != "compose" or not self.state().worker:
            raise BadInput(f"worker-down needs the Compose host of `runbook lab up --profile causal-eval`, "
                           f"not {host.name}")
        container = self._container(self.worker_container)
        if container is not None and container.status == "running":
            container.kill()
        return {"host": host.name, "fault": "worker-down", "params": {}}

    def config_broken(self, host_name: str) -> dict:
        """Break the demo's configuration file on a systemd host and reload it, as a bad edit
        would: the service refuses the file, keeps its previous configuration running and
        reports itself unhealthy."""
        host = self.host(host_name)
        if host.manager != "systemd":
            raise BadInput(f"config-broken needs a systemd lab host; {host.name} is {host.manager}")
        container = self._container(host.container)
        if container is None or container.status != "running":
            raise Unavailable(f"{host.container} is not running")
        self._exec(container, ["sh", "-c", 'printf "%s\n" "max_connections = [" >> "$1"', "sh", CONFIG_PATH])
        self._exec(container, ["systemctl", "reload", UNIT])
        return {"host": host.name, "fault": "config-broken", "params": {}}

    def sqlite_corrupt(self, host_name: str) -> dict:
        """Seed 001's corrupted queue on a systemd host: last night's backup taken first (as
        db-backup names it, with its checksum), then page 2 of the live file overwritten in
        place, as a failing disk would; the service reports its database unhealthy."""
        host = self.host(host_name)
        if host.manager != "systemd":
            raise BadInput(f"sqlite-corrupt needs a systemd lab host; {host.name} is {host.manager}")
        container = self._container(host.container)
        if container is None or container.status != "running":
            raise Unavailable(f"{host.container} is not running")
        backup = self._exec(container, ["python3", "-c", NIGHTLY_BACKUP, QUEUE_DB, QUEUE_BACKUPS,
                                        SQLITE_FAULT_MARKER])
        self._exec(container, ["dd", "if=/dev/urandom", f"of={QUEUE_DB}", "bs=4096", "seek=1", "count=1",
                               "conv=notrunc", "status=none"])
        return {"host": host.name, "fault": "sqlite-corrupt", "params": {"backup": backup}}

    def heal(self, host_name: str) -> str:
        """Reset a host after a drill: clear start-up faults and what remediations changed
        (unit drop-ins, the Compose override, the restart budgets, so the next drill starts
        with a full budget), then restart it fresh. The memory raise history stays: it
        marks which OOM kills were already handled."""
        host = self.host(host_name)
        if host.manager == "kubernetes":
            return self._heal_kubernetes(host)
        state = self.state()
        if state.port_holder and state.port_holder.get("port") in (host.port, *host.replica_ports):
            self._release_port(state)
        container = self._container(host.container)
        if host.manager == "compose":
            for name in ("compose.override.yaml", "compose.override.yml"):
                (self.compose_dir / name).unlink(missing_ok=True)
            for backup in self.compose_dir.glob("compose.override.y*ml.*~"):  # the remediations' backups
                backup.unlink(missing_ok=True)
        if host.manager != "systemd":
            # Docker and Compose services keep their histories on the controller (the Docker
            # host), named after what they count: the container, or Compose's project.service.
            thing = host.container if host.manager == "docker" else f"{self.compose_project}.{SERVICE}"
            # Every service of the Compose project: the profiles' Redis and PostgreSQL are
            # restarted within a budget of their own.
            counted = host.container if host.manager == "docker" else f"{self.compose_project}.*"
            for path in Path(REMEDIATION_STATE).glob(f"restarts-*@{counted}.json"):
                path.unlink(missing_ok=True)
            for path in Path(REMEDIATION_STATE).glob(f"releases-*@{thing}.json"):
                path.unlink(missing_ok=True)
            for path in Path(REMEDIATION_STATE).glob(f"env-*@{thing}.json"):
                path.unlink(missing_ok=True)
            (self.upstream_dir(host) / Path(PROVIDER_STATUS_FILE).name).unlink(missing_ok=True)
        if host.manager == "systemd" and container is not None and container.status == "running":
            self._exec(container, ["sh", "-c", f"rm -f {REMEDIATION_STATE}/restarts-*.json"])
            self._exec(container, ["rm", "-f", f"{STATE_SUBDIR}/faults"])
            self._exec(container, ["sh", "-c", f"rm -f /etc/systemd/system/{UNIT}.d/runbook-*.conf "
                                               f"{HEAVY_WORK_DROPIN}"])
            self._exec(container, ["sh", "-c", f"rm -f {CURRENT_RELEASE} {REMEDIATION_STATE}/releases-*.json"])
            self._exec(container, ["sh", "-c", f"rm -f {REMEDIATION_STATE}/env-*.json"])
            self._exec(container, ["rm", "-f", PROVIDER_STATUS_FILE])
            # The configuration back to its known-good (the git HEAD), its backups gone.
            self._exec(container, ["git", "-C", CONFIG_DIR, "checkout", "-q", "--", "."], check=False)
            self._exec(container, ["rm", "-rf", f"{REMEDIATION_STATE}/config-backups"])
            # After sqlite-corrupt: a new queue (the service seeds it at start), no backups.
            leftovers = (f"{QUEUE_BACKUPS} {QUEUE_DB} {QUEUE_DB}-wal {QUEUE_DB}-shm {QUEUE_DB}-journal "
                         f"{STATE_SUBDIR}/.runbook-* {SQLITE_FAULT_MARKER}")
            self._exec(container, ["sh", "-c", f"if [ -e {SQLITE_FAULT_MARKER} ]; then systemctl stop {UNIT}; "
                                               f"rm -rf {leftovers}; fi"])
            self._exec(container, ["systemctl", "daemon-reload"])
            self._exec(container, ["systemctl", "reset-failed", UNIT], check=False)
            self._exec(container, ["systemctl", "restart", UNIT])
            action = f"restarted {UNIT} on {host.name}"
        else:
            # A crash-looping container cannot be exec'd into: make it again from scratch.
            if container is not None:
                container.remove(force=True)
            if host.manager == "compose":
                # Back to one replica, registered alone for Prometheus.
                labels = [f"com.docker.compose.project={self.compose_project}", f"com.docker.compose.service={SERVICE}"]
                for replica in self.client.containers.list(all=True, filters={"label": labels}):
                    replica.remove(force=True)
                if host.replica_ports:
                    write_file_sd(targets_file(self.dir, host), [host.port], scrape_labels(host))
            state = self.state()
            if host.manager == "compose":
                container = self._create_compose_service(host, (state.redis or {}).get("port"),
                                                         (state.postgres or {}).get("port"),
                                                         (state.worker or {}).get("port"))
                if state.redis:
                    self._heal_redis(state)
                if state.postgres:
                    self._heal_postgres(state)
            elif host.manager == "docker":
                container = self._create_docker_service(host, image=self._docker_image(state))
            else:
                container = self._create_systemd_host(host)
            if host.manager == "systemd":
                self._wait_systemd(container)
                self._install_unit(container, host)
            action = f"recreated {host.container}"
        self._wait_healthy([host])
        return action

    def _heal_kubernetes(self, host: LabHost) -> str:
        """The Deployment made again from the lab's manifest (a drill's patches gone), its pods
        new (their emptyDir, with the faults, gone), the restart budget of it forgotten."""
        from runbook_remediation.lab import kubernetes as k8s

        cluster = k8s.Cluster(self.kubernetes_dir, progress=self.progress)
        if not cluster.running():
            raise Unavailable("the lab's Kubernetes cluster is not running", hint="runbook lab up --kubernetes")
        cluster.kubectl("delete", "deployment", SERVICE, "--wait=true", "--timeout=60s", check=False, timeout=70)
        for path in Path(REMEDIATION_STATE).glob(f"restarts-*@*.default.{SERVICE}.json"):
            path.unlink(missing_ok=True)
        self._apply_kubernetes_demo(cluster, host.port)
        self._wait_healthy([host])
        return f"recreated Deployment {SERVICE} on the Kubernetes cluster"

    # --- releases (`runbook lab deploy`) ------------------------------------------------
    def release_image(self, release: str) -> str:
        """The Docker image of a release (built from the lab's image on first use)."""
        from docker.errors import ImageNotFound

        tag = f"{RELEASE_IMAGE}:{lab_image.IMAGE.split(':', 1)[1]}-{release}"
        try:
            self.client.images.get(tag)
        except ImageNotFound:
            env = " ".join(f"{key}={value}" for key, value in RELEASES[release].items())
            dockerfile = f"FROM {lab_image.IMAGE}\nENV {env}\nLABEL org.runbook.release={release}\n"
            self.progress(f"building {tag}")
            self.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, pull=False)
        return tag

    def release_history_path(self, host: LabHost) -> str:
        """Where the deploy history of the host's service is kept (on the target; Docker and
        Compose: on the Docker host), as the release_rollback role reads it."""
        thing = {"systemd": UNIT, "docker": host.container,
                 "compose": f"{self.compose_project}.{SERVICE}"}[host.manager]
        return f"{REMEDIATION_STATE}/releases-{SERVICE}@{thing}.json"

    def release_history(self, host: LabHost) -> list[dict]:
        path = self.release_history_path(host)
        if host.manager == "systemd":
            container = self._container(host.container)
            text = self._exec(container, ["sh", "-c", f"cat {path} 2>/dev/null || echo '[]'"]) if container else "[]"
        else:
            text = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else "[]"
        try:
            history = json.loads(text or "[]")
        except ValueError:
            return []
        return history if isinstance(history, list) else []

    def _save_history(self, host: LabHost, container, history: list[dict]) -> None:
        text = json.dumps(history, indent=1) + "\n"
        path = self.release_history_path(host)
        if host.manager == "systemd":
            self._exec(container, ["mkdir", "-p", REMEDIATION_STATE])
            container.put_archive("/", _tar_bytes({path: (text, 0o644)}))
        else:
            Path(REMEDIATION_STATE).mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")

    def deploy(self, release: str, host_name: str) -> dict:
        """Make ``release`` the running release of the host's demo service, as a deployment
        would, and record it in the deploy history on the target."""
        if release not in RELEASES:
            raise BadInput(f"unknown release {release!r} (releases: {', '.join(RELEASES)})")
        host = self.host(host_name)
        if host.manager == "kubernetes":
            raise BadInput(f"lab deploy needs a systemd, Docker or Compose lab host; {host.name} is kubernetes "
                           f"(a rollout: kubectl set image or set env)")
        container = self._container(host.container)
        if container is None or (host.manager == "systemd" and container.status != "running"):
            raise Unavailable(f"{host.name} is not running", hint=f"runbook lab heal --host {host.name}")
        history = self.release_history(host)
        now = round(time.time(), 3)
        if host.manager == "systemd":
            files = {f"{RELEASES_DIR}/{name}/release.env": ("".join(f"{k}={v}\n" for k, v in env.items()), 0o644)
                     for name, env in RELEASES.items()}
            container.put_archive("/", _tar_bytes(files))
            running = self._exec(container, ["readlink", CURRENT_RELEASE], check=False) or f"{RELEASES_DIR}/v1"
            if not history:
                history.append({"release": Path(running).name, "path": running, "at": now, "by": "lab (initial)"})
            target = f"{RELEASES_DIR}/{release}"
            self._exec(container, ["ln", "-sfn", target, CURRENT_RELEASE])
            history.append({"release": release, "path": target, "at": now, "by": "runbook lab deploy"})
            self._save_history(host, container, history)
            self._exec(container, ["systemctl", "restart", UNIT])
        else:
            image = self.release_image(release)
            image_id = self.client.images.get(image).id
            if not history:
                config = container.attrs.get("Config") or {}
                env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
                history.append({"release": env.get("DEMO_RELEASE", "v1"), "image": config.get("Image"),
                                "image_id": container.attrs.get("Image"), "at": now, "by": "lab (initial)"})
            history.append({"release": release, "image": image, "image_id": image_id, "at": now,
                            "by": "runbook lab deploy"})
            self._save_history(host, container, history)
            if host.manager == "docker":
                container.remove(force=True)
                self._create_docker_service(host, image=image)
            else:
                override = self.compose_dir / "compose.override.yaml"
                data = yaml.safe_load(override.read_text(encoding="utf-8")) if override.is_file() else None
                data = data if isinstance(data, dict) else {}
                data.setdefault("services", {}).setdefault(SERVICE, {})["image"] = image
                override.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
                self._compose_up()
        # Answering is enough: the bad release answers, and soon reports itself unhealthy.
        deadline = time.monotonic() + 30
        while probe_health(host)[1] == "down":
            if time.monotonic() > deadline:
                raise Unavailable(f"the demo service on {host.name} does not answer after the deploy")
            time.sleep(0.2)
        return {"host": host.name, "release": release, "from": history[-2]["release"] if len(history) > 1 else None}

    def status(self) -> dict:
        state = self.state()
        if not state.hosts:
            return {"up": False, "hosts": [], "state_dir": str(self.dir)}
        hosts = []
        for host in state.hosts:
            healthy, detail = probe_health(host)
            container = self._container(host.container)
            hosts.append(
                {
                    "name": host.name,
                    "manager": host.manager,
                    "container": host.container,
                    "container_status": container.status if container else "missing",
                    "service": SERVICE,
                    "health_url": host.health_url,
                    "metrics_url": host.metrics_url,
                    "healthy": healthy,
                    "health": detail,
                }
            )
        cluster = None
        k8s_host = self.kubernetes_host(state)
        if k8s_host:
            from runbook_remediation.lab import kubernetes as k8s

            cluster = k8s.Cluster(self.kubernetes_dir).status()
            healthy, detail = probe_health(k8s_host)
            hosts.append({"name": k8s_host.name, "manager": "kubernetes", "container": k8s_host.container,
                          "container_status": "running" if cluster["running"] else "stopped", "service": SERVICE,
                          "health_url": k8s_host.health_url, "metrics_url": k8s_host.metrics_url,
                          "healthy": healthy, "health": detail})
            # What the cluster costs: control plane, kubelet and pods, resident memory.
            cluster = {key: cluster.get(key) for key in ("running", "server", "kubeconfig", "total_rss_bytes")}
        redis = None
        if state.redis:
            try:
                client = self.redis_client(timeout=1)
                healthy = bool(client.ping())
                client.close()
            except Exception:  # noqa: BLE001 - any failure to answer is "down" in a status line
                healthy = False
            redis = {"url": f"redis://127.0.0.1:{state.redis['port']}", "healthy": healthy,
                     "exporter_url": self._redis_exporter(state).url, "container": self.redis_container}
        postgres = None
        if state.postgres:
            postgres = {"url": f"postgresql://127.0.0.1:{state.postgres['port']}/{lab_postgres.DATABASE}",
                        "healthy": self._postgres(state).healthy(), "container": self.postgres_container,
                        "exporter_url": self._postgres_exporter(state).url}
        worker = None
        worker_host = self.worker_host(state)
        if worker_host:
            healthy, detail = probe_health(worker_host)
            worker = {"health_url": worker_host.health_url, "healthy": healthy, "health": detail,
                      "container": self.worker_container}
        prometheus, alertmanager = self._prometheus(state), self._alertmanager(state)
        return {
            "up": True,
            "hosts": hosts,
            "profiles": list(state.profiles),
            "redis": redis,
            "postgres": postgres,
            "worker": worker,
            "kubernetes": cluster,
            "prometheus": {"url": prometheus.url, "running": prometheus.running()},
            "alertmanager": {"url": alertmanager.url, "running": alertmanager.running()},
            "inventory": str(self.inventory_path),
            "state_dir": str(self.dir),
        }


def kubernetes_controls(port: int) -> list[dict]:
    """The lab Deployment's ConfigMap (its maintenance flag) and its region's Service (the
    traffic weight a balancer in front of the regions would read)."""
    labels = {"app.kubernetes.io/part-of": "runbook-lab"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": K8S_CONFIGMAP, "namespace": "default", "labels": labels},
         "data": {"maintenance_mode": "false", "region": K8S_REGION}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": K8S_REGION_SERVICE, "namespace": "default", "labels": labels,
                      "annotations": {K8S_WEIGHT_ANNOTATION: "100"}},
         "spec": {"selector": {"app": SERVICE}, "ports": [{"name": "http", "port": 80, "targetPort": port}]}},
    ]


def soffice_greets(port: int, timeout: float = 1.0) -> bool:
    """LibreOffice's URP bridge sends its protocol properties as soon as a client connects."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return bool(sock.recv(1))
    except OSError:
        return False


def probe_health(host: LabHost, timeout: float = 1.0) -> tuple[bool, str]:
    """(healthy, one-word detail) from the service's /health."""
    try:
        body = http_json(host.health_url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        return False, body.get("status") or f"http {exc.code}"
    except (urllib.error.URLError, OSError, ValueError):
        return False, "down"
    status = (body or {}).get("status", "unknown")
    return status == "healthy", status


def targets_file(lab_dir: Path, host: LabHost) -> Path:
    """The file_sd targets file of a host's replicas (Prometheus reads every *.json there)."""
    return lab_dir / "prometheus" / "targets" / f"{host.name}.json"


def scrape_labels(host: LabHost) -> dict[str, str]:
    """The labels a host's service is scraped with, static or discovered: the alert rules
    group by host and service."""
    return {"host": host.name, "service": SERVICE, "manager": host.manager}


def redis_description(port: int, compose_dir: Path, compose_project: str) -> dict:
    """The causal-eval profile's Redis as a service of the Compose host: restarted like any
    Compose service (service-down), its memory raised within a ceiling and kept in the file
    it runs from (redis-memory)."""
    return {
        "name": REDIS_SERVICE,
        "manager": "compose",
        "container": f"{compose_project}-{REDIS_SERVICE}-1",
        "project_src": str(compose_dir),
        "project": compose_project,
        "compose_service": REDIS_SERVICE,
        "health_url": f"redis://127.0.0.1:{port}",
        "redis": {"ceiling": REDIS_CEILING, "config_file": str(compose_dir.parent / "redis" / "redis.conf")},
    }


def worker_description(port: int, compose_dir: Path, compose_project: str) -> dict:
    """The causal-eval profile's worker as a service of the Compose host: restarted like any
    Compose service (service-down); healthy when its calls to the API succeed."""
    return {
        "name": WORKER_SERVICE,
        "manager": "compose",
        "container": f"{compose_project}-{WORKER_SERVICE}-1",
        "project_src": str(compose_dir),
        "project": compose_project,
        "compose_service": WORKER_SERVICE,
        "health_url": f"http://127.0.0.1:{port}/health",
        "health_jmespath": HEALTH_JMESPATH,
        "metrics_url": f"http://127.0.0.1:{port}/metrics",
        "port": port,
        "logs": [f"{LOG_DIR}/*.log"],
    }


def inventory(state: LabState, compose_dir: Path, compose_project: str) -> dict:
    """The lab as an Ansible inventory: one service description per host drives every role."""
    systemd_hosts, docker_hosts, compose_hosts = {}, {}, {}
    for host in state.hosts:
        service = {
            "name": SERVICE,
            "manager": host.manager,
            "health_url": host.health_url,
            "health_jmespath": HEALTH_JMESPATH,
            "metrics_url": host.metrics_url,
            "port": host.port,
            "logs": [f"{LOG_DIR}/*.log"],
            "database": {"type": "sqlite", "path": f"{STATE_SUBDIR}/queue.db", "backups": f"{STATE_SUBDIR}/backups"},
            # The work each request does (latency_relief): the knob, its floor, where /health says it.
            "work": {"env": "DEMO_WORK_ITERATIONS", "floor": 5, "health_key": "work_iterations"},
            # The upstream provider (release_rollback's provider switch): the variable, its fallback.
            "provider": {"env": "DEMO_UPSTREAM_PROVIDER", "fallback": PROVIDER_FALLBACK},
            # What env-toggle may change (env_toggle): the demo's knobs, the provider only to a known one.
            "settings": ["DEMO_WORK_ITERATIONS", "DEMO_WORKLOAD_RPS",
                         {"name": "DEMO_UPSTREAM_PROVIDER", "values": ["primary", PROVIDER_FALLBACK]}],
            # What admin-action may do (app_admin): the demo's admin endpoint and its GC signal.
            "admin": {"cache_clear": {"method": "POST", "path": "/admin/cache/clear"}, "gc": {"signal": "USR1"}},
        }
        if host.manager == "systemd":
            service["unit"] = UNIT
            service["user"] = "runbook-demo"
            service["releases"] = {"dir": RELEASES_DIR, "current": CURRENT_RELEASE}
            # config-restore: the file, its known-good (git HEAD of its work tree), the
            # service's own check command (the file's path is appended) and how to apply it.
            service["config"] = {"path": CONFIG_PATH, "repo": CONFIG_DIR,
                                 "validate": ["/usr/bin/python3", DEMO_PATH, "--check-config"], "apply": "reload"}
            # auth-abuse reads it. These hosts share this machine's network and have no
            # NET_ADMIN: a block fails there (Permission denied), it never changes the
            # machine's tables; the firewall test bed is a host with a namespace of its own.
            service["security_log"] = f"{LOG_DIR}/security.log"
            systemd_hosts[host.name] = {
                "ansible_connection": "community.docker.docker",
                "ansible_host": host.container,
                "ansible_python_interpreter": "/usr/bin/python3",
                "runbook_services": [service],
            }
        else:
            # Docker and Compose: the controller is the Docker host and manages the container.
            service["container"] = host.container
            if host.manager == "compose":
                service["project_src"] = str(compose_dir)
                service["project"] = compose_project
                service["compose_service"] = SERVICE
            if host.replica_ports:
                # replica_scale: how far it may scale out, the ports replicas take, and the
                # targets file Prometheus discovers them from (with the static config's labels).
                service["replicas"] = {
                    "ceiling": REPLICA_CEILING,
                    "ports": list(host.replica_ports),
                    "targets_file": str(targets_file(compose_dir.parent, host)),
                    "labels": scrape_labels(host),
                }
            services = [service]
            if host.manager == "compose" and state.redis:
                services.append(redis_description(state.redis["port"], compose_dir, compose_project))
            if host.manager == "compose" and state.postgres:
                services.append(lab_postgres.description(state.postgres["port"], compose_dir, compose_project))
            if host.manager == "compose" and state.worker:
                services.append(worker_description(state.worker["port"], compose_dir, compose_project))
                # key-rotation: the file the API and the worker read it from; the worker restarted too.
                service["key_rotation"] = {"env_file": str(compose_dir / API_KEY_FILE), "variable": API_KEY_VARIABLE,
                                           "verify_url": f"http://127.0.0.1:{host.port}/api/work",
                                           "consumers": [WORKER_SERVICE]}
            target = docker_hosts if host.manager == "docker" else compose_hosts
            target[host.name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "runbook_services": services,
            }
    kubernetes_hosts = {}
    if state.kubernetes:
        from runbook_remediation.lab import kubernetes as k8s

        port = int(state.kubernetes["port"])
        kubernetes_hosts[K8S_HOST] = {
            # The controller holds the kubeconfig: the tasks run here (kubernetes.core, kubectl).
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "runbook_services": [{
                "name": SERVICE,
                "manager": "kubernetes",
                "deployment": state.kubernetes["deployment"],
                "namespace": state.kubernetes["namespace"],
                "kubeconfig": state.kubernetes["kubeconfig"],
                "kubectl": str(k8s.bin_dir() / "kubectl"),
                "health_url": f"http://127.0.0.1:{port}/health",
                "metrics_url": f"http://127.0.0.1:{port}/metrics",
                "port": port,
                "settings": ["DEMO_WORK_ITERATIONS", "DEMO_WORKLOAD_RPS"],
                "memory": {"ceiling": "512M"},
                "maintenance": {"configmap": K8S_CONFIGMAP, "key": "maintenance_mode"},
                "traffic": {"service": K8S_REGION_SERVICE, "annotation": K8S_WEIGHT_ANNOTATION},
            }],
        }
    return {
        "all": {
            "vars": {
                "runbook_prometheus_url": f"http://127.0.0.1:{state.prometheus_port}",
                "runbook_alertmanager_url": f"http://127.0.0.1:{state.alertmanager_port}",
                "ansible_pipelining": True,
            },
            "children": {
                "lab": {
                    "children": {
                        "lab_systemd": {"hosts": systemd_hosts},
                        "lab_docker": {"hosts": docker_hosts},
                        "lab_compose": {"hosts": compose_hosts},
                        "lab_kubernetes": {"hosts": kubernetes_hosts},
                    }
                }
            },
        }
    }
