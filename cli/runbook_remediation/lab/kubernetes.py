"""A real Kubernetes 1.20 cluster for the lab: control plane and one kubelet as plain processes.

Nothing is preinstalled and no registry is reachable, so ``scripts/kubernetes-build`` builds
the binaries from Debian's ``kubernetes`` source package (upstream 1.20.2, with a two-line
dockershim patch) into ``${RUNBOOK_CACHE_DIR:-/var/cache/runbook}/kubernetes/bin`` and imports
a local pause image. This module runs them: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and a kubelet (dockershim, talking to the machine's dockerd), every one
listening on 127.0.0.1 and on ports picked free at start, every file under one run directory
that the caller chooses. Pods use the host network (there is no CNI and no kube-proxy).

API (no click; a future ``runbook lab`` command wraps it)::

    bin_dir() -> Path                               where scripts/kubernetes-build puts the binaries
    ensure_binaries(bins=None) -> dict[str, Path]   name -> path (etcd included); raises Unavailable
    ensure_prerequisites(bins=None, run_dir=None) -> dict[str, Path]   + root, dockerd, pause image,
                                                    no kubelet of another run dir
    cluster = Cluster(run_dir, bins=None, progress=print)
    cluster.start(timeout=180) -> dict              timings; node Ready, kubeconfig written
    cluster.stop(timeout=30) -> list[str]           what it did; safe to call twice or from another process
    cluster.status() -> dict                        per-process pid + RSS, pods' containers, totals
    cluster.kubectl(*args, check=True, input=None, timeout=120) -> CompletedProcess[str]
    cluster.kubectl_json(*args) -> dict             ``kubectl ... -o json`` parsed
    cluster.env() -> dict[str, str]                 KUBECONFIG, KUBECACHEDIR, PATH with bin/kubectl first
    cluster.kubeconfig -> Path                      admin (system:masters) kubeconfig in the run dir
    cluster.api_get(path) -> dict | None            GET an API path as admin (None on error; for polling)
    cluster.running() -> bool                       every process alive
    cluster.containers() -> list[dict]              this cluster's pod containers in dockerd
    read_sysctls() -> dict[str, str]                the sysctls the kubelet changes ("vm/overcommit_memory": "0")
    Cluster.load(run_dir) -> Cluster                a cluster started by another process (from cluster.json)
    build_demo_image(progress=...) -> str           image tag (lab's systemd image + demo_service.py)
    demo_manifest(name, port, image, ...) -> dict   the demo Deployment
    apply_demo(cluster, name="demo", port=None, ...) -> DemoApp   applied, rolled out, /health answering

The run directory (state in ``cluster.json``: pids, ports, paths, saved sysctls)::

    pki/            CA, apiserver serving cert, client certs, service-account keys, node token
    etcd/           etcd data                    logs/<component>.log
    kubelet/        --root-dir (pods, volumes)   kubelet-pki/  --cert-dir (self-signed serving cert)
    dockershim/     --experimental-dockershim-root-directory, dockershim.sock its CRI socket
    *.kubeconfig    admin, controller-manager, scheduler, kubelet    kubectl-cache/  kubectl's cache
    bin/kubectl     wrapper: the built kubectl with --cache-dir=kubectl-cache (see below)

Flags and why the odd ones exist (checked on Debian 12, 2 cores, docker.io 20.10, cgroup v1):

* etcd: client, peer and metrics URLs all ``http://127.0.0.1:<free>`` (its defaults are fixed
  ports, and the metrics listener would otherwise be the client one).
* kube-apiserver: ``--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --insecure-port=0``
  (no plain-HTTP port), ``--secure-port=<free>``; ``--client-ca-file``, ``--token-auth-file``
  (the kubelet's token, user ``system:node:127.0.0.1``), ``--authorization-mode=Node,RBAC``; a
  service-account key pair (1.20 requires ``--service-account-issuer`` and the signing key);
  ``--kubelet-client-certificate/key`` (a system:masters cert: ``kubectl logs/exec`` go through
  the kubelet, which authorizes them by webhook); ``--endpoint-reconciler-type=none`` (else it
  complains every 10 s that 127.0.0.1 is a loopback address); ``--service-cluster-ip-range``
  198.18.0.0/24, a benchmarking range outside the private ones: without kube-proxy nothing ever
  routes to a ClusterIP, so no traffic is sent there.
* kube-controller-manager and kube-scheduler: ``--bind-address=127.0.0.1 --port=0`` (no
  insecure port), ``--secure-port=<free>`` (defaults 10257/10259 are fixed), ``--cert-dir`` in
  the run dir, ``--leader-elect=false`` (one replica: no lease traffic);
  controller-manager ``--use-service-account-credentials`` (each controller acts as its own
  service account, as kubeadm does: its own identity may not create pods),
  ``--flex-volume-plugin-dir`` in the run dir (default /usr/libexec/kubernetes/...).
* kubelet: ``--hostname-override=127.0.0.1`` (a loopback ``--node-ip`` is refused; a non-IP
  name makes it pick the default-route interface and send logs/exec traffic off loopback),
  ``--container-runtime=docker --pod-infra-container-image=<local pause>`` (no registry),
  ``--network-plugin=`` (no CNI: hostNetwork pods only), ``--cgroup-driver=cgroupfs`` (dockerd's),
  ``--cgroups-per-qos=false --enforce-node-allocatable=`` (no kubepods cgroup tree on the host),
  ``--fail-swap-on=false --protect-kernel-defaults=false``, ``--make-iptables-util-chains=false``
  (dockerd runs with --iptables=false; never touch the host's tables),
  ``--image-gc-high-threshold=100 --image-gc-low-threshold=99`` (never delete anyone's images),
  ``--address=127.0.0.1 --port=<free> --read-only-port=0 --healthz-bind-address=127.0.0.1
  --healthz-port=<free>``, ``--client-ca-file --anonymous-auth=false --authorization-mode=Webhook``,
  every path in the run dir (``--root-dir --cert-dir --volume-plugin-dir
  --container-runtime-endpoint --image-service-endpoint --experimental-dockershim-root-directory``),
  ``--feature-gates=DevicePlugins=false`` (no device-plugin socket dir). Environment
  ``AWS_EC2_METADATA_DISABLED=true``: the built-in ECR credential provider would otherwise try
  the EC2 metadata address at start (GCE's checks a DMI file, Azure's needs a config flag).
* The kubelet binary is patched (scripts/kubernetes/dockershim-oom-score-adj.patch): runc here
  cannot set a negative oom_score_adj (no CAP_SYS_RESOURCE) and dockershim always asks -998 for
  sandboxes (-997 for Guaranteed pods). Unpatched, the node goes Ready and every pod fails.

Host side effects and how they are undone:

* The kubelet sets vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1 (and checks
  vm.panic_on_oom, kernel.keys.root_max*) once at start: ``start()`` saves them before and
  restores them as soon as the kubelet has written them; ``stop()`` restores them again.
* Pods' containers live in the machine's dockerd, labelled ``io.kubernetes.*``. ``stop()``
  removes only those whose pod belongs to this cluster (pod UIDs under its --root-dir, sandbox
  checkpoints under its dockershim dir). A kubelet treats every ``io.kubernetes.*`` container of
  its engine as its own and kills those of unknown pods, so there is ONE lab cluster per Docker
  engine: ``start()`` refuses while another kubelet runs.
* The kubelet mounts (secret tmpfs) under its root dir: ``stop()`` unmounts them. It creates
  /var/log/pods and /var/log/containers: ``stop()`` removes this cluster's entries and the two
  directories when it made them and they are empty.
* kubectl writes ~/.kube/cache by default. kubectl 1.20 ignores ``KUBECACHEDIR`` (newer ones
  read it), so ``Cluster.kubectl()`` passes ``--cache-dir`` and ``env()`` puts the run dir's
  ``bin/kubectl`` wrapper (which adds it) first on PATH; KUBECACHEDIR is set too.

Limits: no kube-proxy (Services do not route; never run in-cluster API clients in pods), pods
reach each other and the host on 127.0.0.1 only, each hostNetwork replica needs its own port,
no metrics for ``kubectl top``/HPA, no privileged pods, API versions of 1.20 (no policy/v1).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from runbook_remediation.errors import BadInput, RunbookError, Unavailable

VERSION = "1.20.2"
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
PAUSE_IMAGE = f"runbook-lab-k8s-pause:{VERSION}"
DEMO_IMAGE_REPO = "runbook-lab-k8s-demo"
DEMO_DIR = "/opt/runbook-demo"
BUILD_HINT = "run scripts/kubernetes-build (as root, ~10 min once; it needs the Debian archive)"
NODE_NAME = "127.0.0.1"
SERVICE_CIDR = "198.18.0.0/24"  # never routed: see the module docstring
STATE_FILE = "cluster.json"
# What the kubelet's container manager sets once at start (setupKernelTunables), as /proc/sys paths.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
VAR_LOG_DIRS = ("/var/log/pods", "/var/log/containers")
DOCKER_LABEL_UID = "io.kubernetes.pod.uid"

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


# --- binaries and prerequisites ----------------------------------------------------------------
def bin_dir() -> Path:
    """Where scripts/kubernetes-build installs the binaries (same default as the script)."""
    base = os.environ.get("RUNBOOK_CACHE_DIR") or "/var/cache/runbook"
    return Path(base).expanduser() / "kubernetes" / "bin"


def ensure_binaries(bins: Path | None = None) -> dict[str, Path]:
    """Name -> path of every binary the cluster runs, or Unavailable naming what is missing."""
    bins = Path(bins) if bins else bin_dir()
    missing = [name for name in KUBE_BINARIES if not os.access(bins / name, os.X_OK)]
    if missing or not (bins / ".stamp").is_file():
        raise Unavailable(
            f"the Kubernetes {VERSION} binaries are not built in {bins} (missing: {', '.join(missing) or '.stamp'})",
            hint=BUILD_HINT,
        )
    found = {name: bins / name for name in KUBE_BINARIES}
    etcd = shutil.which("etcd")
    if etcd is None:
        raise Unavailable("etcd is not installed (Debian package etcd-server)", hint=BUILD_HINT)
    found["etcd"] = Path(etcd)
    return found


def build_script() -> Path | None:
    """scripts/kubernetes-build of the checkout the collection runs from, if it has one."""
    from runbook_remediation.collection import find_collection

    try:
        script = find_collection().root / "scripts" / "kubernetes-build"
    except RunbookError:
        return None
    return script if os.access(script, os.X_OK) else None


def image_exists(tag: str) -> bool:
    return _docker("image", "inspect", "--format", "{{.Id}}", tag, check=False).returncode == 0


def other_kubelets(run_dir: Path | None = None) -> list[int]:
    """Pids of kubelets that are not this run dir's (they share dockerd: one cluster per engine).
    A zombie (exited, its parent has not reaped it yet) kills no pod: it does not count."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not _alive(int(proc.name)):
            continue
        try:
            if (proc / "comm").read_text().strip() != "kubelet":
                continue
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if run_dir is None or f"{run_dir}/" not in cmdline:
            pids.append(int(proc.name))
    return pids


def ensure_prerequisites(bins: Path | None = None, run_dir: Path | None = None) -> dict[str, Path]:
    """ensure_binaries() plus root, a reachable dockerd, the pause image and no other kubelet."""
    found = ensure_binaries(bins)
    if os.geteuid() != 0:
        raise Unavailable("the lab cluster needs root (the kubelet mounts volumes and drives dockerd)")
    if shutil.which("docker") is None or _docker("info", "--format", "{{.ID}}", check=False).returncode != 0:
        raise Unavailable("the Docker engine does not answer", hint="start dockerd (scripts/bootstrap does it)")
    if not image_exists(PAUSE_IMAGE):
        raise Unavailable(f"the pause image {PAUSE_IMAGE} is missing", hint=BUILD_HINT)
    others = other_kubelets(run_dir)
    if others:
        raise Unavailable(
            f"another kubelet runs (pid {', '.join(map(str, others))}): a kubelet kills the pods of any other "
            "cluster on the same Docker engine, so only one lab cluster runs at a time",
            hint="stop the other cluster first",
        )
    return found


# --- small helpers -------------------------------------------------------------------------------
def _docker(*args: str, check: bool = True, timeout: float = 120, input: str | None = None):
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout, input=input
    )
    if check and result.returncode != 0:
        raise RunbookError(f"docker {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nobody listens on right now on 127.0.0.1 (never hard-coded)."""
    socks, ports = [], []
    try:
        for _index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in socks:
            sock.close()
    return ports


def _opener(context: ssl.SSLContext | None = None):
    # No proxies: every request goes to 127.0.0.1, whatever http_proxy says.
    handlers: list = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def http_status(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with _opener(context).open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _insecure_context() -> ssl.SSLContext:
    # Only for /healthz of the controller-manager and scheduler on 127.0.0.1: they serve a
    # certificate they made themselves at start.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def read_sysctls() -> dict[str, str]:
    values = {}
    for key in KUBELET_SYSCTLS:
        try:
            values[key] = (Path("/proc/sys") / key).read_text().strip()
        except OSError:
            continue
    return values


def _write_sysctls(values: dict[str, str]) -> list[str]:
    """Write back the values that differ; returns what changed ("key a -> b")."""
    changed = []
    current = read_sysctls()
    for key, value in values.items():
        if current.get(key) != value:
            try:
                (Path("/proc/sys") / key).write_text(value + "\n")
                changed.append(f"{key.replace('/', '.')} {current.get(key)} -> {value}")
            except OSError as exc:
                changed.append(f"{key.replace('/', '.')}: could not restore {value} ({exc})")
    return changed


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_pids(pid: int) -> list[int]:
    """Every pid in the memory cgroup of ``pid`` (a container's processes), else just ``pid``."""
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _hier, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                procs = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "cgroup.procs"
                return [int(p) for p in procs.read_text().split()]
    except (OSError, ValueError):
        pass
    return [pid]


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under ``root`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(root).rstrip("/") + "/"
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) < 5:
            continue
        point = parts[4].encode().decode("unicode_escape")  # \040 for spaces and friends
        if point == str(root) or point.startswith(prefix):
            found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


# --- PKI with the `cryptography` package (ansible-core depends on it) ----------------------------
def _pki(pki: Path) -> None:
    """CA, serving and client certificates, service-account keys: made once per run dir."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if (pki / "done").is_file():
        return
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=365)

    def write_key(name: str, key) -> None:
        (pki / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
        os.chmod(pki / f"{name}.key", 0o600)

    def name_of(common: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name_of("runbook-lab-kubernetes-ca")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write_key("ca", ca_key)
    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(name: str, common: str, org: str | None = None, server: bool = False,
              dns: Iterable[str] = (), ips: Iterable[str] = ()) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder().subject_name(name_of(common, org)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        write_key(name, key)
        cert = builder.sign(ca_key, hashes.SHA256())
        (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    service_ip = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
    issue("apiserver", "kube-apiserver", server=True,
          dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"),
          ips=("127.0.0.1", service_ip))
    issue("admin", "runbook-lab-admin", org="system:masters")
    issue("controller-manager", "system:kube-controller-manager")
    issue("scheduler", "system:kube-scheduler")
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key("sa", sa_key)
    (pki / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    # The kubelet authenticates with a static token (user system:node:127.0.0.1, group system:nodes).
    token = hashlib.sha256(os.urandom(32)).hexdigest()[:32]
    (pki / "tokens.csv").write_text(f'{token},system:node:{NODE_NAME},kubelet-{NODE_NAME},"system:nodes"\n')
    os.chmod(pki / "tokens.csv", 0o600)
    (pki / "kubelet.token").write_text(token)
    os.chmod(pki / "kubelet.token", 0o600)
    (pki / "done").write_text("")


def _kubeconfig(path: Path, server: str, ca: Path, user: str, *, cert: Path | None = None,
                key: Path | None = None, token: str | None = None) -> None:
    creds: dict[str, str] = {"token": token} if token else {"client-certificate": str(cert), "client-key": str(key)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "runbook-lab", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": "runbook-lab", "context": {"cluster": "runbook-lab", "user": user}}],
        "current-context": "runbook-lab",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    os.chmod(path, 0o600)


# --- the cluster ---------------------------------------------------------------------------------
@dataclass
class ClusterState:
    run_dir: str
    bins: dict[str, str]
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)  # as they were before the kubelet started
    created_dirs: list[str] = field(default_factory=list)  # /var/log dirs the kubelet made
    started_at: float | None = None
    ready_seconds: float | None = None
    stopped_at: float | None = None


class Cluster:
    """One cluster in one run directory. ``start()`` then ``stop()``; ``load()`` from elsewhere."""

    def __init__(self, run_dir: Path | str, bins: Path | None = None, progress: Progress = _quiet):
        self.run_dir = Path(run_dir).resolve()
        self.bins = bins
        self.progress = progress
        self.state: ClusterState | None = self._load_state()
        self._procs: dict[str, subprocess.Popen] = {}

    @classmethod
    def load(cls, run_dir: Path | str, progress: Progress = _quiet) -> Cluster:
        cluster = cls(run_dir, progress=progress)
        if cluster.state is None:
            raise RunbookError(f"no lab cluster state in {cluster.state_path}")
        return cluster

    # --- paths and access ------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    @property
    def pki(self) -> Path:
        return self.run_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "admin.kubeconfig"

    @property
    def kubelet_root(self) -> Path:
        return self.run_dir / "kubelet"

    @property
    def dockershim_root(self) -> Path:
        return self.run_dir / "dockershim"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._state().ports['apiserver']}"

    def _state(self) -> ClusterState:
        if self.state is None:
            raise RunbookError(f"the lab cluster in {self.run_dir} was never started")
        return self.state

    def _load_state(self) -> ClusterState | None:
        if not self.state_path.is_file():
            return None
        try:
            return ClusterState(**json.loads(self.state_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise RunbookError(f"lab cluster state {self.state_path} is unreadable ({exc})") from exc

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self._state()), indent=2) + "\n")
        tmp.replace(self.state_path)

    def env(self) -> dict[str, str]:
        """Environment for kubectl and Ansible's kubernetes.core: this cluster, no ~/.kube writes."""
        self._state()  # raises when the cluster was never started
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "K8S_AUTH_KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.run_dir / "kubectl-cache"),
            "PATH": f"{self.run_dir / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [self._state().bins["kubectl"], f"--cache-dir={self.run_dir / 'kubectl-cache'}", *args],
            capture_output=True, text=True, check=False,
            timeout=timeout, input=input, env={**os.environ, **self.env()},
        )
        if check and result.returncode != 0:
            raise RunbookError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def _api_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def api_get(self, path: str, timeout: float = 5.0) -> dict | None:
        """GET an API path as admin; None on any error (for polling)."""
        try:
            with _opener(self._api_context()).open(self.server + path, timeout=timeout) as response:
                return json.loads(response.read())
        except (OSError, ValueError, urllib.error.HTTPError):
            return None

    # --- processes -------------------------------------------------------------------------------
    def _launch(self, name: str, argv: list[str]) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            # Own session (process group): Ctrl-C of the caller does not reach it, stop() can
            # signal the group, and it outlives the caller (cluster.json lets another stop it).
            # AWS_EC2_METADATA_DISABLED: the kubelet's ECR credential provider probes the EC2
            # metadata address (169.254.169.254) at start; traffic goes to 127.0.0.1 only.
            env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.run_dir, start_new_session=True, env=env)
        self._procs[name] = proc
        self._state().pids[name] = proc.pid
        self._save_state()

    def _log_tail(self, name: str, lines: int = 5) -> str:
        try:
            text = (self.run_dir / "logs" / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def _ours(self, pid: int) -> bool:
        """Is ``pid`` still the process this cluster started (not a reused pid)?"""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return str(self.run_dir) in cmdline

    def _wait(self, what: str, predicate: Callable[[], object], timeout: float, watch: Iterable[str]) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            for name in watch:
                if not _alive(self._state().pids.get(name)):
                    raise RunbookError(f"{name} exited while waiting for {what}: {self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise RunbookError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.2)

    def _terminate(self, name: str, timeout: float) -> str | None:
        state = self._state()
        pid = state.pids.get(name)
        if not pid:
            return None
        proc = self._procs.get(name)
        result = None
        stat = _proc_stat(pid)
        if stat and _alive(pid) and self._ours(pid):
            group = stat[2] == pid  # started with its own session
            kill = (lambda sig: os.killpg(pid, sig)) if group else (lambda sig: os.kill(pid, sig))
            try:
                kill(signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None:
                    break
                time.sleep(0.1)
            result = f"stopped {name} (pid {pid})"
            if _alive(pid):
                try:
                    kill(signal.SIGKILL)
                except ProcessLookupError:
                    pass
                result = f"killed {name} (pid {pid})"
            if group:
                self._kill_group_leftovers(pid)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                result = f"{name} (pid {pid}) did not exit"
        for _attempt in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        state.pids.pop(name, None)
        self._save_state()
        return result

    @staticmethod
    def _kill_group_leftovers(pgid: int) -> None:
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                stat = _proc_stat(int(proc.name))
                if stat and stat[2] == pgid and stat[0] not in ("Z", "X"):
                    try:
                        os.kill(int(proc.name), signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def running(self) -> bool:
        if self.state is None:
            return False
        return all(_alive(self.state.pids.get(name)) and self._ours(self.state.pids[name]) for name in COMPONENTS)

    # --- start -----------------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> dict:
        """Start everything, wait for the node Ready. Returns timings in seconds."""
        if self.state is not None and any(_alive(p) and self._ours(p) for p in self.state.pids.values()):
            raise RunbookError(f"the lab cluster in {self.run_dir} is already running", hint="stop() it first")
        found = ensure_prerequisites(self.bins, self.run_dir)
        if len(str(self.dockershim_root / "dockershim.sock")) > 100:  # sun_path holds 108 bytes
            raise BadInput(f"run dir {self.run_dir} is too long for the dockershim socket path")
        began = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("etcd", "kubelet", "kubelet-pki", "kubelet-plugins", "dockershim", "flexvolume",
                    "controller-manager", "scheduler", "kubectl-cache", "logs", "bin"):
            (self.run_dir / sub).mkdir(exist_ok=True)
        os.chmod(self.run_dir / "etcd", 0o700)
        _pki(self.pki)
        wrapper = self.run_dir / "bin" / "kubectl"
        cache = shlex.quote(f"--cache-dir={self.run_dir / 'kubectl-cache'}")
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(str(found["kubectl"]))} {cache} "$@"\n')
        wrapper.chmod(0o755)
        names = ("etcd_client", "etcd_peer", "etcd_metrics", "apiserver", "controller_manager", "scheduler",
                 "kubelet", "kubelet_healthz")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.state = ClusterState(run_dir=str(self.run_dir), bins={k: str(v) for k, v in found.items()},
                                  ports=ports, started_at=time.time())
        self._save_state()
        pki, run = self.pki, self.run_dir
        server = self.server
        ca = pki / "ca.crt"
        _kubeconfig(self.kubeconfig, server, ca, "admin", cert=pki / "admin.crt", key=pki / "admin.key")
        _kubeconfig(run / "controller-manager.kubeconfig", server, ca, "system:kube-controller-manager",
                    cert=pki / "controller-manager.crt", key=pki / "controller-manager.key")
        _kubeconfig(run / "scheduler.kubeconfig", server, ca, "system:kube-scheduler",
                    cert=pki / "scheduler.crt", key=pki / "scheduler.key")
        _kubeconfig(run / "kubelet.kubeconfig", server, ca, f"system:node:{NODE_NAME}",
                    token=(pki / "kubelet.token").read_text().strip())
        timings: dict[str, float] = {}
        try:
            self._start_control_plane(found, ports, timeout, began, timings)
            self._start_kubelet(found, ports, timeout, began, timings)
        except BaseException:
            logs = run / "logs"
            self.progress(f"start failed; stopping what runs (logs in {logs})")
            self.stop()
            raise
        timings["total"] = round(time.monotonic() - began, 1)
        self.state.ready_seconds = timings["total"]
        self._save_state()
        self.progress(f"cluster ready in {timings['total']} s: {server}, kubeconfig {self.kubeconfig}")
        return timings

    def _start_control_plane(self, found: dict[str, Path], ports: dict[str, int], timeout: float,
                             began: float, timings: dict[str, float]) -> None:
        pki, run = self.pki, self.run_dir
        etcd_client = f"http://127.0.0.1:{ports['etcd_client']}"
        etcd_peer = f"http://127.0.0.1:{ports['etcd_peer']}"
        self.progress("starting etcd")
        self._launch("etcd", [
            str(found["etcd"]), "--name=runbook-lab", f"--data-dir={run / 'etcd'}",
            f"--listen-client-urls={etcd_client}", f"--advertise-client-urls={etcd_client}",
            f"--listen-peer-urls={etcd_peer}", f"--initial-advertise-peer-urls={etcd_peer}",
            f"--initial-cluster=runbook-lab={etcd_peer}", "--initial-cluster-state=new",
            f"--listen-metrics-urls=http://127.0.0.1:{ports['etcd_metrics']}",
        ])
        self._wait("etcd health", lambda: http_status(f"{etcd_client}/health") == 200, timeout, ["etcd"])
        timings["etcd"] = round(time.monotonic() - began, 1)
        self.progress("starting kube-apiserver")
        self._launch("kube-apiserver", [
            str(found["kube-apiserver"]), f"--etcd-servers={etcd_client}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
            "--insecure-port=0",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer=https://127.0.0.1:{ports['apiserver']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={pki / 'admin.crt'}", f"--kubelet-client-key={pki / 'admin.key'}",
            "--endpoint-reconciler-type=none",
        ])
        context = self._api_context()
        self._wait("kube-apiserver /readyz", lambda: http_status(f"{self.server}/readyz", context) == 200,
                   timeout, ["etcd", "kube-apiserver"])
        timings["apiserver"] = round(time.monotonic() - began, 1)
        self.progress("starting kube-controller-manager and kube-scheduler")
        self._launch("kube-controller-manager", [
            str(found["kube-controller-manager"]), f"--kubeconfig={run / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={run / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={run / 'controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1", "--port=0", f"--secure-port={ports['controller_manager']}",
            f"--cert-dir={run / 'controller-manager'}", "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--flex-volume-plugin-dir={run / 'flexvolume'}",
        ])
        self._launch("kube-scheduler", [
            str(found["kube-scheduler"]), f"--kubeconfig={run / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={run / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={run / 'scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1", "--port=0", f"--secure-port={ports['scheduler']}",
            f"--cert-dir={run / 'scheduler'}", "--leader-elect=false",
        ])

    def _start_kubelet(self, found: dict[str, Path], ports: dict[str, int], timeout: float,
                       began: float, timings: dict[str, float]) -> None:
        state, pki, run = self._state(), self.pki, self.run_dir
        state.sysctls = read_sysctls()
        state.created_dirs = [d for d in VAR_LOG_DIRS if not Path(d).exists()]
        self._save_state()
        socket_url = f"unix://{self.dockershim_root / 'dockershim.sock'}"
        self.progress("starting kubelet")
        self._launch("kubelet", [
            str(found["kubelet"]), f"--kubeconfig={run / 'kubelet.kubeconfig'}",
            f"--hostname-override={NODE_NAME}",
            "--container-runtime=docker", f"--pod-infra-container-image={PAUSE_IMAGE}",
            "--network-plugin=", "--cgroup-driver=cgroupfs", "--cgroups-per-qos=false",
            "--enforce-node-allocatable=", "--fail-swap-on=false", "--protect-kernel-defaults=false",
            "--make-iptables-util-chains=false",
            "--image-gc-high-threshold=100", "--image-gc-low-threshold=99",
            "--address=127.0.0.1", f"--port={ports['kubelet']}", "--read-only-port=0",
            "--healthz-bind-address=127.0.0.1", f"--healthz-port={ports['kubelet_healthz']}",
            f"--client-ca-file={pki / 'ca.crt'}", "--anonymous-auth=false", "--authorization-mode=Webhook",
            f"--root-dir={self.kubelet_root}", f"--cert-dir={run / 'kubelet-pki'}",
            f"--volume-plugin-dir={run / 'kubelet-plugins'}",
            f"--container-runtime-endpoint={socket_url}", f"--image-service-endpoint={socket_url}",
            f"--experimental-dockershim-root-directory={self.dockershim_root}",
            "--feature-gates=DevicePlugins=false",
        ])
        everything = list(COMPONENTS)
        self._wait("node Ready", self._node_ready, timeout, everything)
        timings["node_ready"] = round(time.monotonic() - began, 1)
        self._restore_kubelet_sysctls()
        insecure = _insecure_context()
        for name, key in (("kube-controller-manager", "controller_manager"), ("kube-scheduler", "scheduler")):
            url = f"https://127.0.0.1:{ports[key]}/healthz"
            self._wait(f"{name} /healthz", lambda url=url: http_status(url, insecure) == 200, timeout, everything)
        # Pods are refused until the default service account has its token: wait for it here,
        # so a Deployment applied right after start does not sit in backoff.
        self._wait("the default service account token", self._default_token_ready, timeout, everything)
        timings["controllers"] = round(time.monotonic() - began, 1)

    def _node_ready(self) -> bool:
        node = self.api_get(f"/api/v1/nodes/{NODE_NAME}")
        conditions = (node or {}).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _default_token_ready(self) -> bool:
        account = self.api_get("/api/v1/namespaces/default/serviceaccounts/default")
        return bool((account or {}).get("secrets"))

    def _restore_kubelet_sysctls(self, wait: float = 15.0) -> None:
        """The kubelet writes its sysctls once, early; wait for that write, then undo it."""
        saved = self._state().sysctls
        pending = {k for k, v in KUBELET_SYSCTLS.items() if k in saved and saved[k] != v}
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            current = read_sysctls()
            pending = {k for k in pending if current.get(k) != KUBELET_SYSCTLS[k]}
            if pending:
                time.sleep(0.1)
        for change in _write_sysctls(saved):
            self.progress(f"restored {change}")

    # --- stop ------------------------------------------------------------------------------------
    def _own_pod_uids(self) -> set[str]:
        pods = self.kubelet_root / "pods"
        return {p.name for p in pods.iterdir()} if pods.is_dir() else set()

    def containers(self) -> list[dict]:
        """This cluster's containers in dockerd (sandboxes included), from their io.kubernetes labels."""
        fmt = "\t".join(("{{.ID}}", '{{.Label "io.kubernetes.pod.uid"}}', '{{.Label "io.kubernetes.docker.type"}}',
                         '{{.Label "io.kubernetes.pod.namespace"}}', '{{.Label "io.kubernetes.pod.name"}}',
                         '{{.Label "io.kubernetes.container.name"}}', "{{.State}}"))
        result = _docker("ps", "-a", "--no-trunc", "--filter", f"label={DOCKER_LABEL_UID}", "--format", fmt,
                         check=False)
        uids = self._own_pod_uids()
        checkpoints = self.dockershim_root / "sandbox"
        sandboxes = {p.name for p in checkpoints.iterdir()} if checkpoints.is_dir() else set()
        found = []
        for line in result.stdout.splitlines():
            cid, uid, kind, namespace, pod, container, running = (line.split("\t") + [""] * 7)[:7]
            if uid in uids or cid in sandboxes:
                found.append({"id": cid, "pod_uid": uid, "type": kind, "namespace": namespace, "pod": pod,
                              "container": container or "POD", "state": running})
        return found

    def stop(self, timeout: float = 30) -> list[str]:
        """Stop everything this run dir started and undo the kubelet's traces. Idempotent."""
        if self.state is None:
            return []
        done: list[str] = []

        def note(item: str | None) -> None:
            if item:
                done.append(item)
                self.progress(item)

        # The kubelet first: it would restart the containers removed next.
        note(self._terminate("kubelet", timeout))
        for _attempt in range(3):
            ids = [c["id"] for c in self.containers()]
            if not ids:
                break
            result = _docker("rm", "-f", *ids, check=False)
            note(f"removed {len(ids)} pod containers" if result.returncode == 0 else
                 f"docker rm failed: {result.stderr.strip()}")
        for point in mounts_under(self.run_dir):
            result = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                result = subprocess.run(["umount", "-l", point], capture_output=True, text=True, check=False)
            note(f"unmounted {point}" if result.returncode == 0 else f"could not unmount {point}")
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            note(self._terminate(name, timeout))
        for change in _write_sysctls(self.state.sysctls):
            note(f"restored {change}")
        self._clean_var_log()
        self.state.stopped_at = time.time()
        self._save_state()
        return done

    def _clean_var_log(self) -> None:
        """This cluster's pod log dirs and container links; the dirs themselves if the kubelet made them.

        Ours: the pods still under the kubelet's root dir, and pod log dirs made since start
        whose logs all point at removed containers (pods deleted during the run; only one
        kubelet runs per engine, see ensure_prerequisites).
        """
        uids = self._own_pod_uids()
        since = (self._state().started_at or time.time()) - 1
        removed = []
        pods_log = Path(VAR_LOG_DIRS[0])
        if pods_log.is_dir():
            for entry in pods_log.iterdir():
                logs = list(entry.glob("*/*.log"))
                dangling = all(log.is_symlink() and not log.exists() for log in logs)
                mine = entry.name.rsplit("_", 1)[-1] in uids
                try:
                    made_since = entry.stat().st_ctime >= since
                except OSError:
                    continue
                if mine or (made_since and dangling):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(f"{entry}/")
        links = Path(VAR_LOG_DIRS[1])
        if removed and links.is_dir():
            for link in links.iterdir():
                if link.is_symlink() and os.readlink(link).startswith(tuple(removed)):
                    link.unlink(missing_ok=True)
        for made in reversed(self._state().created_dirs):
            try:
                Path(made).rmdir()  # only when empty: another cluster's logs stay
            except OSError:
                pass

    # --- status ----------------------------------------------------------------------------------
    def status(self) -> dict:
        """Per-process pid and RSS (control plane, kubelet, pods' containers) for `runbook lab status`."""
        if self.state is None:
            return {"run_dir": str(self.run_dir), "started": False, "running": False, "processes": [],
                    "containers": [], "total_rss_bytes": 0}
        processes = []
        for name in COMPONENTS:
            pid = self.state.pids.get(name)
            alive = bool(pid) and _alive(pid) and self._ours(pid)
            processes.append({"name": name, "pid": pid if alive else None, "alive": alive,
                              "rss_bytes": rss_bytes(pid) if alive else 0})
        containers = []
        own = self.containers() if any(p["alive"] for p in processes) or self._own_pod_uids() else []
        running_ids = [c["id"] for c in own if c["state"] == "running"]
        pids: dict[str, int] = {}
        if running_ids:
            inspected = _docker("inspect", "--format", "{{.Id}} {{.State.Pid}}", *running_ids, check=False)
            for line in inspected.stdout.splitlines():
                cid, _sep, pid = line.partition(" ")
                if pid.isdigit() and int(pid) > 0:
                    pids[cid] = int(pid)
        for item in own:
            pid = pids.get(item["id"])
            rss = sum(rss_bytes(p) for p in _cgroup_pids(pid)) if pid else 0
            containers.append({**item, "pid": pid, "rss_bytes": rss})
        total = sum(p["rss_bytes"] for p in processes) + sum(c["rss_bytes"] for c in containers)
        return {
            "run_dir": str(self.run_dir),
            "started": True,
            "running": all(p["alive"] for p in processes),
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "ports": dict(self.state.ports),
            "ready_seconds": self.state.ready_seconds,
            "processes": processes,
            "containers": containers,
            "total_rss_bytes": total,
        }


# --- the demo app --------------------------------------------------------------------------------
def demo_service_source() -> Path:
    return Path(str(resources.files("runbook_remediation.lab").joinpath("demo_service.py")))


def build_demo_image(progress: Progress = _quiet) -> str:
    """The lab's systemd image (it has python3) + demo_service.py as entrypoint. Returns the tag.

    The tag carries a hash of the base image and the script: a changed script makes a new image.
    Builds the lab's base image first (debootstrap, ~90 s) when it is missing.
    """
    from runbook_remediation.lab import image as lab_image

    base = lab_image.IMAGE
    if not image_exists(base):
        import docker  # docker-py, as the lab uses it

        progress(f"building the lab's base image {base}")
        lab_image.build_image(docker.from_env(timeout=120), progress)
    base_id = _docker("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    script = demo_service_source().read_bytes()
    tag = f"{DEMO_IMAGE_REPO}:{hashlib.sha256(base_id.encode() + script).hexdigest()[:12]}"
    if image_exists(tag):
        return tag
    progress(f"building {tag}")
    cid = _docker("create", "--entrypoint", "/bin/true", base).stdout.strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / Path(DEMO_DIR).name
            folder.mkdir(mode=0o755)  # readable in the image by any user
            (folder / "demo_service.py").write_bytes(script)
            _docker("cp", str(folder), f"{cid}:{Path(DEMO_DIR).parent}/")
        _docker("commit",
                "--change", f'ENTRYPOINT ["python3", "{DEMO_DIR}/demo_service.py"]',
                "--change", "CMD []",
                "--change", "LABEL org.runbook.lab.image=k8s-demo",
                cid, tag)
    finally:
        _docker("rm", "-f", cid, check=False)
    return tag


@dataclass
class DemoApp:
    name: str
    namespace: str
    port: int
    image: str

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"


def demo_manifest(name: str, port: int, image: str, *, namespace: str = "default", faults: Iterable[str] = (),
                  env: dict[str, str] | None = None, grace_seconds: int = 3,
                  port_candidates: Sequence[int] = (), env_from: dict[str, tuple[str, str]] | None = None) -> dict:
    """The demo Deployment: one hostNetwork replica of demo_service.py on 127.0.0.1:``port``.

    * The port goes in as DEMO_PORT (demo_service reads DEMO_* variables), so ``kubectl set env``
      makes a new revision the way a real config change does.
    * The port is also declared (containerPort = hostPort on the host network): the scheduler
      then never puts two pods on it, and the rollout strategy removes the old pod before the
      new one starts (maxSurge 0): with one node and one port there is no room for a surge.
    * Probes: httpGet with ``host: 127.0.0.1``. For hostNetwork pods on this node the pod IP is
      127.0.0.1 anyway (the node's address is its name, 127.0.0.1); naming it keeps probes on
      loopback whatever the node's address.
    * A short grace period: demo_service exits at once on SIGTERM, so rollouts are quick.
    * With ``port_candidates`` (replicas, for scaling), each pod takes the first free of them
      (DEMO_PORT_CANDIDATES): no port is declared and there are no probes (a probe names one
      port), so a pod is Ready once it runs; its health is each port's /health.
    * ``env_from``: variables read from a ConfigMap's key when the pod starts (variable ->
      (ConfigMap, key)), as seed 002's app-config feeds its pods.
    """
    variables = {"DEMO_PORT": str(port), "DEMO_NAME": name, "DEMO_HOST": "127.0.0.1",
                 "DEMO_LOG_DIR": "/var/log/runbook-demo", "DEMO_DB": "/var/lib/runbook-demo/queue.db"}
    if faults:
        variables["DEMO_FAULT"] = ";".join(faults)
    if port_candidates:
        del variables["DEMO_PORT"]
        variables["DEMO_PORT_CANDIDATES"] = ",".join(str(p) for p in port_candidates)
    variables.update(env or {})
    probe = {"httpGet": {"host": "127.0.0.1", "path": "/health", "port": port, "scheme": "HTTP"},
             "timeoutSeconds": 2}
    labels = {"app": name, "app.kubernetes.io/part-of": "runbook-lab"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "dnsPolicy": "Default",  # no cluster DNS: the host's resolv.conf
                    "terminationGracePeriodSeconds": grace_seconds,
                    "containers": [{
                        "name": "demo",
                        "image": image,
                        "imagePullPolicy": "Never",  # no registry: the image is local
                        "env": [{"name": k, "value": v} for k, v in variables.items()] + [
                            {"name": k, "valueFrom": {"configMapKeyRef": {"name": ref[0], "key": ref[1]}}}
                            for k, ref in (env_from or {}).items()],
                        **({} if port_candidates else {
                            "ports": [{"name": "http", "containerPort": port, "hostPort": port, "protocol": "TCP"}],
                            "readinessProbe": {**probe, "periodSeconds": 1, "failureThreshold": 2},
                            "livenessProbe": {**probe, "initialDelaySeconds": 2, "periodSeconds": 2,
                                              "failureThreshold": 3},
                        }),
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                      "limits": {"memory": "128Mi"}},
                        "volumeMounts": [{"name": "logs", "mountPath": "/var/log/runbook-demo"},
                                         {"name": "state", "mountPath": "/var/lib/runbook-demo"}],
                    }],
                    "volumes": [{"name": "logs", "emptyDir": {}}, {"name": "state", "emptyDir": {}}],
                },
            },
        },
    }


def apply_demo(cluster: Cluster, name: str = "demo", port: int | None = None, *, image: str | None = None,
               namespace: str = "default", faults: Iterable[str] = (), env: dict[str, str] | None = None,
               wait: bool = True, timeout: float = 120, port_candidates: Sequence[int] = (),
               env_from: dict[str, tuple[str, str]] | None = None) -> DemoApp:
    """Apply the demo Deployment (port picked free unless given; with ``port_candidates``
    the first of them); with ``wait``, until /health answers."""
    image = image or build_demo_image(cluster.progress)
    port = port or (port_candidates[0] if port_candidates else free_ports(1)[0])
    manifest = demo_manifest(name, port, image, namespace=namespace, faults=faults, env=env,
                             port_candidates=port_candidates, env_from=env_from)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    app = DemoApp(name=name, namespace=namespace, port=port, image=image)
    if wait:
        cluster.kubectl("-n", namespace, "rollout", "status", f"deployment/{name}", f"--timeout={int(timeout)}s",
                        timeout=timeout + 10)
        deadline = time.monotonic() + 30
        while http_status(app.health_url) != 200:
            if time.monotonic() > deadline:
                raise RunbookError(f"{app.health_url} does not answer 200 after the rollout")
            time.sleep(0.2)
    return app
