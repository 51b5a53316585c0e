"""soffice-leak end to end with real headless LibreOffice on this host (no lab: the lab image
has no LibreOffice). The test starts real `soffice --headless --accept=...` listeners as
the user `nobody` (each with its own profile directory and port), decoys around them,
and runs the scenario playbook with ansible-playbook against this host
(ansible_connection=local). It asserts which PIDs die and which live, what is removed,
and that a second run and a check-mode run change nothing.

Every process the test starts is in a process group of its own (start_new_session), and
the fixture kills those groups, by their id, whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbook_remediation.lab.lab import soffice_greets as greets
from tests.conftest import wait_for

SOFFICE = "/usr/bin/soffice"
MAX_AGE = 30  # seconds: the stale listeners are waited past it, the young ones stay well under it

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SOFFICE),
    reason="needs root and LibreOffice (apt-get install libreoffice-writer-nogui)",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stat_of(pid: int) -> tuple[str, int] | None:
    """(state, start time in ticks) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[19])


def ppid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


@dataclass
class Proc:
    """One process the test started (pid) and, for LibreOffice, its soffice.bin worker."""

    name: str
    popen: subprocess.Popen
    user: str
    start: int
    port: int = 0
    profile: Path | None = None
    worker: int = 0
    worker_start: int = 0
    tmpdir: str = "/tmp"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self, pid: int, start: int) -> bool:
        """Running, and still the process that was started (a zombie is dead)."""
        now = stat_of(pid)
        return now is not None and now[1] == start and now[0] not in ("Z", "X")

    @property
    def launcher_alive(self) -> bool:
        return self.alive(self.pid, self.start)

    @property
    def worker_alive(self) -> bool:
        return self.alive(self.worker, self.worker_start)

    @property
    def url(self) -> str:
        return f"file://{self.profile}"


@dataclass
class Office:
    """Starts LibreOffice listeners and decoys; kills every process group it started."""

    base: Path
    procs: list[Proc] = field(default_factory=list)

    def home(self, user: str) -> Path:
        entry = pwd.getpwnam(user)
        home = self.base / f"home-{user}"
        home.mkdir(exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        return home

    def spawn(self, name: str, argv: list[str], user: str, env: dict | None = None) -> Proc:
        entry = pwd.getpwnam(user)
        popen = subprocess.Popen(
            argv, user=entry.pw_uid, group=entry.pw_gid, start_new_session=True, cwd=self.base,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.home(user)), **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        proc = Proc(name, popen, user, 0)
        self.procs.append(proc)
        state = wait_for(lambda: stat_of(popen.pid), timeout=5, what=f"{name} started")
        proc.start = state[1]
        return proc

    def soffice(self, name: str, user: str = "nobody", tmpdir: str | None = None) -> Proc:
        entry = pwd.getpwnam(user)
        profile = self.base / "profiles" / name
        profile.mkdir(parents=True)
        os.chown(profile, entry.pw_uid, entry.pw_gid)
        port = free_port()
        proc = self.spawn(name, [
            SOFFICE, "--headless", "--invisible", "--nologo", "--norestore", "--nolockcheck",
            f"-env:UserInstallation=file://{profile}", f"--accept=socket,host=127.0.0.1,port={port};urp;",
        ], user, env={"TMPDIR": tmpdir} if tmpdir else None)
        proc.port, proc.profile, proc.tmpdir = port, profile, tmpdir or "/tmp"
        return proc

    def ready(self, procs: list[Proc], timeout: float = 120) -> None:
        """Wait until each listener answers, and note its soffice.bin (the child of the oosplash we started)."""
        for proc in procs:
            wait_for(lambda p=proc: greets(p.port), timeout=timeout, interval=0.5, what=f"{proc.name} listening")
            proc.worker = wait_for(lambda p=proc: self.child_worker(p.pid), timeout=10, what=f"{proc.name}'s worker")
            proc.worker_start = stat_of(proc.worker)[1]
            assert Path(f"/proc/{proc.pid}/exe").resolve().name == "oosplash"

    @staticmethod
    def child_worker(pid: int) -> int | None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "exe").resolve().name == "soffice.bin" and ppid_of(int(entry.name)) == pid:
                    return int(entry.name)
            except (OSError, ValueError):
                continue
        return None

    def age(self, proc: Proc) -> float:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - proc.worker_start / os.sysconf("SC_CLK_TCK")

    def stop_all(self) -> None:
        for proc in self.procs:
            # The group is ours until its leader is reaped, which only we do (wait below).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # What LibreOffice leaves in /tmp for the processes this test started (the scenario removes the
        # stale ones' own): its lu<PID>*.tmp directories and its pipe sockets.
        for proc in self.procs:
            if not proc.worker:
                continue
            uid = pwd.getpwnam(proc.user).pw_uid
            for path in Path(proc.tmpdir).glob(f"lu{proc.worker}*.tmp"):
                if path.is_dir() and path.stat().st_uid == uid:
                    shutil.rmtree(path, ignore_errors=True)
            pipe = Path("/tmp") / pipe_name(proc.url, uid)
            if pipe.is_socket():
                pipe.unlink()
        shutil.rmtree(self.base, ignore_errors=True)


def pipe_name(url: str, uid: int) -> str:
    digest = hashlib.md5(url.encode("utf-16-le")).digest()  # LibreOffice's naming: hex bytes, no leading zero
    return f"OSL_PIPE_{uid}_SingleOfficeIPC_" + "".join(f"{byte:x}" for byte in digest)


def lu_dirs(proc: Proc) -> list[Path]:
    return sorted(Path(proc.tmpdir).glob(f"lu{proc.worker}*.tmp"))


@pytest.fixture
def office():
    base = Path(tempfile.mkdtemp(prefix="soffice-leak-"))
    base.chmod(0o755)  # nobody and daemon must reach their profiles under it
    (base / "profiles").mkdir(mode=0o755)
    the_office = Office(base)
    try:
        yield the_office
    finally:
        the_office.stop_all()


def write_inventory(base: Path, service: dict) -> Path:
    inventory = {"all": {"hosts": {"here": {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "runbook_services": [service],
    }}}}
    path = base / "inventory.yml"
    path.write_text(json.dumps(inventory))  # JSON is YAML
    return path


def converter(base: Path, **extra) -> dict:
    return {"name": "converter", "manager": "systemd", "unit": "converter.service", "user": "nobody",
            "libreoffice": {"profile_roots": [str(base / "profiles")]}, **extra}


def play(inventory: Path, extra: dict, check: bool = False) -> tuple[int, dict, dict]:
    """ansible-playbook runbook.remediation.soffice_leak: exit code, runbook_result, recap stats."""
    argv = ["ansible-playbook", "runbook.remediation.soffice_leak", "-i", str(inventory), "-e", json.dumps(extra)]
    if check:
        argv.append("--check")
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"},
    )
    try:
        output = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON from ansible-playbook (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    facts = [host.get("ansible_facts", {}).get("runbook_result")
             for play_ in output["plays"] for task in play_["tasks"] for host in task["hosts"].values()]
    facts = [fact for fact in facts if fact]
    assert facts, result.stdout[-3000:]
    return result.returncode, facts[-1], output["stats"]["here"]


def test_exactly_the_stale_listeners_die_then_nothing_to_do(office):
    started = time.monotonic()
    # The stale generation, with decoys as old as they are.
    stale = [office.soffice(f"stale-{i}") for i in range(6)]
    other_user = office.soffice("daemon-old", user="daemon")      # another user's real soffice
    bindir = office.base / "bin"
    bindir.mkdir()
    shutil.copy("/bin/sleep", bindir / "soffice.bin.bak")            # a similar name (exe soffice.bin.bak)
    (bindir / "soffice").write_text("#!/bin/sh\nsleep 600\n")        # a script named soffice (exe: the shell)
    (bindir / "soffice").chmod(0o755)
    similar = office.spawn("similar", [str(bindir / "soffice.bin.bak"), "600"], "nobody")
    script = office.spawn("script", [str(bindir / "soffice")], "nobody")
    leftover = office.base / "profiles" / "left-by-nobody"         # a profile no process uses: stays
    leftover.mkdir()
    os.chown(leftover, pwd.getpwnam("nobody").pw_uid, -1)
    office.ready([*stale, other_user])
    wait_for(lambda: min(office.age(p) for p in stale) > MAX_AGE + 1, timeout=MAX_AGE + 60, interval=0.5,
             what="the first generation to pass max_age")

    # The young generation: two young listeners and a young healthy one, all of nobody.
    young = [office.soffice(f"young-{i}") for i in range(2)]
    healthy = office.soffice("young-healthy")
    office.ready([*young, healthy])
    assert max(office.age(p) for p in [*young, healthy]) < MAX_AGE - 10, "LibreOffice started too slowly here"
    survivors = [*young, healthy, other_user]
    stale_lu = {p.name: lu_dirs(p) for p in stale}
    assert all(stale_lu.values()), "every listener makes a lu<PID>*.tmp directory in /tmp"

    inventory = write_inventory(office.base, converter(office.base))
    extra = {"soffice_cleanup_max_age": MAX_AGE, "soffice_cleanup_grace": 5}

    # Check mode: the plan names exactly the stale ones, nothing is signalled or removed.
    code, result, stats = play(inventory, extra, check=True)
    assert code == 0, result
    assert result["outcome"] == "planned", result
    assert {item["pid"] for item in result["evidence"]["selected"]} == {p.worker for p in stale}
    assert result["evidence"]["killed"] == [] and stats["changed"] == 0
    assert all(p.worker_alive and p.launcher_alive for p in [*stale, *survivors])

    # The real run.
    code, result, stats = play(inventory, extra)
    assert code == 0, result
    assert result["outcome"] == "remediated", result
    evidence = result["evidence"]
    killed = {item["pid"]: item for item in evidence["killed"]}
    assert set(killed) == {p.worker for p in stale} | {p.pid for p in stale}
    assert {killed[p.worker]["exe"] for p in stale} == {"soffice.bin"}
    assert {killed[p.pid]["exe"] for p in stale} == {"oosplash"}
    assert all(item["signal"] in ("SIGTERM", "SIGKILL") for item in killed.values())
    assert evidence["rss_freed_bytes"] > 6 * 40 * 2**20  # about 85 MB per soffice.bin
    assert not any(p.worker_alive or p.launcher_alive for p in stale)
    assert all(p.worker_alive and p.launcher_alive for p in survivors)
    assert similar.launcher_alive and script.launcher_alive
    assert result["verification"] == {**result["verification"], "killed_alive": [], "instances_after": 3,
                                      "within_max_count": True}
    kept = {item["pid"]: item["reason"] for item in evidence["kept"]}
    assert kept[other_user.worker].startswith("outside the scope: user daemon")
    assert "younger than max_age" in kept[healthy.worker]
    assert similar.pid not in kept and script.pid not in kept  # not LibreOffice at all

    # What the stale ones left is gone; everything else stays.
    removed = {(item["type"], item["path"]) for item in evidence["removed_paths"]}
    assert {("profile", str(p.profile)) for p in stale} <= removed
    assert {("temp", str(path)) for p in stale for path in stale_lu[p.name]} <= removed
    assert not any(p.profile.exists() for p in stale)
    assert not any(path.exists() for paths in stale_lu.values() for path in paths)
    assert all(p.profile.exists() for p in survivors) and leftover.exists()
    assert all(lu_dirs(p) for p in [*young, healthy])
    assert all(greets(p.port) for p in survivors)

    # Second run: nothing stale, nothing changed, nobody killed.
    code, result, stats = play(inventory, extra)
    assert code == 0, result
    assert result["outcome"] == "healthy", result
    assert result["evidence"]["killed"] == [] and stats["changed"] == 0
    assert all(p.worker_alive and p.launcher_alive for p in survivors)
    assert time.monotonic() - started < 240


@pytest.fixture
def health_url():
    """The service's own health endpoint (a stand-in: the converter service itself is not part of the test)."""

    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def test_hung_and_orphaned_listeners_are_stopped_the_responsive_one_stays(office, health_url):
    """The probe: a stopped (SIGSTOP) soffice.bin still accepts TCP connections in the kernel but never greets.
    Its oosplash is stopped too: both handle SIGTERM, which stays pending on a stopped process, so only SIGKILL
    ends them. (With the launcher running, its death orphans the process group and the kernel sends the stopped
    worker SIGCONT, after which SIGTERM is enough.) An orphan has lost its oosplash."""
    tmpdir = office.base / "tmp"
    tmpdir.mkdir()
    os.chown(tmpdir, pwd.getpwnam("nobody").pw_uid, -1)
    hung, orphan, fine = (office.soffice(name, tmpdir=str(tmpdir)) for name in ("hung", "orphan", "fine"))
    office.ready([hung, orphan, fine])
    os.kill(hung.worker, signal.SIGSTOP)
    os.kill(hung.pid, signal.SIGSTOP)
    os.kill(orphan.pid, signal.SIGKILL)  # its launcher, which this test started
    orphan.popen.wait(timeout=10)
    wait_for(lambda: ppid_of(orphan.worker) != orphan.pid, timeout=5, what="the orphan reparented")
    ppid = ppid_of(orphan.worker)
    if ppid != 1:
        pytest.skip(f"orphans are reparented to a subreaper ({ppid}) here, not to PID 1")
    lu = {p.name: lu_dirs(p) for p in (hung, orphan, fine)}
    assert all(lu.values()), "with TMPDIR set, LibreOffice makes its lu<PID>*.tmp directory there"

    inventory = write_inventory(office.base, converter(office.base, health_url=health_url))
    code, result, _stats = play(inventory, {
        "soffice_cleanup_max_age": 0, "soffice_cleanup_max_count": -1, "soffice_cleanup_probe": True,
        "soffice_cleanup_probe_min_age": 0, "soffice_cleanup_probe_timeout": 2, "soffice_cleanup_grace": 2})
    assert code == 0, result
    assert result["outcome"] == "remediated", result
    evidence = result["evidence"]
    reasons = {item["pid"]: " ".join(item["reasons"]) for item in evidence["selected"]}
    assert set(reasons) == {hung.worker, orphan.worker}
    assert f"unresponsive on 127.0.0.1:{hung.port}" in reasons[hung.worker]
    assert "no greeting" in reasons[hung.worker]
    assert reasons[orphan.worker].startswith("orphaned")
    killed = {item["pid"]: item for item in evidence["killed"]}
    assert set(killed) == {hung.worker, hung.pid, orphan.worker}
    assert killed[hung.worker]["signal"] == killed[hung.pid]["signal"] == "SIGKILL"
    assert killed[orphan.worker]["signal"] == "SIGTERM"
    assert not hung.worker_alive and not hung.launcher_alive and not orphan.worker_alive
    assert fine.worker_alive and fine.launcher_alive and greets(fine.port)
    assert result["verification"]["health"]["healthy"] is True
    kept = {item["pid"]: item["reason"] for item in evidence["kept"]}
    assert kept[fine.worker] == f"responsive on 127.0.0.1:{fine.port}"
    assert not any(path.exists() for name in ("hung", "orphan") for path in lu[name])
    assert all(path.exists() for path in lu["fine"])


def test_a_service_without_a_user_is_bad_input_and_nothing_is_touched(office):
    listener = office.soffice("untouched")
    office.ready([listener])
    service = converter(office.base)
    del service["user"]
    inventory = write_inventory(office.base, service)
    code, result, _stats = play(inventory, {"soffice_cleanup_max_count": 0})
    assert code == 2, result
    assert result["outcome"] == "failed" and result["error_kind"] == "input", result
    assert result["message"].startswith("invalid input: service converter: no safe scope"), result
    assert listener.worker_alive and listener.launcher_alive

    # A Docker service is cleaned up inside its container (test_soffice_leak_container.py):
    # without one running, nothing is reached, nothing on this host is touched.
    inventory = write_inventory(office.base, converter(office.base, manager="docker", container="no-such-converter"))
    code, result, _stats = play(inventory, {})
    assert code != 0 and result["outcome"] == "failed", result
    assert "docker service converter has no running container" in result["message"], result
    assert listener.worker_alive and listener.launcher_alive
