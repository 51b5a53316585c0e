"""The closed loop, locally: supervise ansible-rulebook for ``runbook watch``.

Starts ansible-rulebook with the collection's rulebook (extensions/eda/rulebooks/
alertmanager.yml, generated from the catalogue) listening on 127.0.0.1 for Alertmanager's
webhook. When the Alertmanager is the lab's, it is pointed at the watcher for as long as
the watcher runs; another Alertmanager needs the printed receiver in its configuration.
Every run goes through the safety envelope, as CLI and AWX runs do.

:func:`plan` checks everything and starts nothing; :func:`watch` runs ansible-rulebook
until a signal (or its own end), then drains the remediations in flight.

The environment
    ansible-rulebook gets the one policy of every child the CLI starts
    (:func:`runbook_remediation.runner.child_env`: the allow-list, no secret
    ``RUNBOOK_*`` variable), plus ours: the collection path, the ``timeline`` callback,
    ``RUNBOOK_ENTRANCE=rulebook`` and the state directory. One secret is handed on
    explicitly: ``$RUNBOOK_WEBHOOK_URL``, through which the scenarios' report tells a
    human when a run escalates or opens a breaker (ansible-rulebook's runs keep their
    ansible-runner directories only while they run). The work directory
    (``<state dir>/watch``) is 0700 and ``rulebook.log`` 0600.

Who may send alerts
    The webhook listens on 127.0.0.1 only and takes a POST only with the bearer token
    (ansible-rulebook answers 401 otherwise). The token is generated for each watcher
    (or read from ``--token-file``) and kept in ``<state dir>/watch/token`` (0600); the
    lab's Alertmanager is configured to read it from that file (``credentials_file``),
    another Alertmanager needs the same file. Every alert then passes the collection's
    alert filter: only the inventory's host names (``$RUNBOOK_ALERT_HOSTS``, from
    ``ansible-inventory``) may be acted on.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from runbook_remediation import catalogue, incidents, notify, paging, runner, shared_state
from runbook_remediation import inventory as inventories
from runbook_remediation.collection import Collection, find_collection
from runbook_remediation.errors import BadInput, RunbookError, Unavailable
from runbook_remediation.paths import state_dir
from runbook_remediation.rulebook import RULEBOOK
from runbook_remediation.rulebook import rulebook as generate_rulebook
from runbook_remediation.terminal import Terminal
from runbook_remediation.timeline import open_store

HOST = "127.0.0.1"
START_SECONDS = 90  # how long ansible-rulebook may take to listen
REMIND_SECONDS = 60  # how often the watcher pages the escalation steps that came due


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def lab_inventory() -> tuple[Path | None, dict]:
    """The lab's inventory and its ``all`` vars, when the lab is up."""
    path = state_dir() / "lab" / "inventory.yml"
    if not path.is_file():
        return None, {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None, {}
    return path, (data.get("all") or {}).get("vars") or {}


def shown(url: str) -> str:
    """An Alertmanager URL as messages show it: scheme, host and port (never its userinfo)."""
    return notify.where(url)


def _without_userinfo(url: str) -> str:
    """The URL to request: its user and password go in a header instead."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_alertmanager(url: str) -> None:
    """Alertmanager answers at ``url`` (whose user:password, if any, is basic auth)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise BadInput(f"--alertmanager {shown(url)} is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"--alertmanager {shown(url)} is not an http(s) URL with a host")
    request = urllib.request.Request(f"{_without_userinfo(url).rstrip('/')}/api/v2/status")  # noqa: S310 - checked
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"Alertmanager at {shown(url)} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"Alertmanager at {shown(url)} does not answer: {reason}") from exc


def playbooks_running(root: int) -> bool:
    """Whether an ansible-playbook runs below ``root`` (ansible-rulebook starts one per action)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        try:
            if b"ansible-playbook" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
        pending.extend(children.get(pid, []))
    return False


def rulebook_binary() -> str:
    beside = Path(sys.executable).parent / "ansible-rulebook"
    found = str(beside) if beside.is_file() else shutil.which("ansible-rulebook")
    if not found:
        raise Unavailable("ansible-rulebook is not installed",
                          hint="pip install 'runbook-remediation[eda]' (it needs Java 17: "
                               "apt-get install openjdk-17-jre-headless)")
    return found


def rulebook_env(collection: Collection, environ: Mapping[str, str], hosts: list[str] = (),
                 shared: Mapping[str, str] | None = None) -> dict[str, str]:
    """ansible-rulebook's environment (see the module's documentation); ``shared``: the
    shared state's password-free DSN and PGPASSFILE (shared_state.child_env)."""
    ours = runner.our_env(collection.env_collections_path(), environ)
    ours.update(shared or {})
    ours.update({"RUNBOOK_ENTRANCE": "rulebook", "RUNBOOK_STATE_DIR": str(state_dir())})
    if hosts:
        ours["RUNBOOK_ALERT_HOSTS"] = ",".join(hosts)
    if (collection.root / "plugins" / "callback" / "timeline.py").is_file():
        enabled = [c for c in environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
        ours["ANSIBLE_CALLBACKS_ENABLED"] = ",".join(dict.fromkeys([*enabled, runner.TIMELINE_CALLBACK]))
    if environ.get(notify.ENV):
        ours[notify.ENV] = environ[notify.ENV]
    return runner.child_env(environ, ours)


@dataclass(frozen=True)
class Plan:
    """What :func:`watch` starts, checked."""

    collection: Collection
    inventory: Path
    alertmanager: str
    rulebook: Path
    binary: str
    attach: bool
    port: int
    hosts: tuple[str, ...] = ()  # the inventory's host names: an alert may name only these
    token_file: Path | None = None  # the user's token; else one is made for this watcher

    @property
    def webhook_url(self) -> str:
        return f"http://{HOST}:{self.port}/alerts"


def plan(inventory: str | None, alertmanager: str | None, port: int | None, attach: bool | None,
         rulebook_path: Path | None, token_file: Path | None = None, overlay: str | None = None) -> Plan:
    """Check the inputs (the lab's inventory and Alertmanager by default); nothing is started."""
    collection = find_collection()
    shared_state.check()  # an unreachable shared database: exit 5 before anything starts
    lab_path, lab_vars = lab_inventory()
    inventory_path = Path(inventory).expanduser() if inventory else lab_path
    if inventory_path is None:
        raise BadInput("no inventory: pass -i or start the lab (runbook lab up)")
    if not inventory_path.exists():
        raise BadInput(f"inventory {inventory_path} does not exist")
    alertmanager = alertmanager or lab_vars.get("runbook_alertmanager_url")
    if not alertmanager:
        raise BadInput("no Alertmanager: pass --alertmanager URL (or start the lab)")
    check_alertmanager(alertmanager)
    rulebook = rulebook_path or collection.root / RULEBOOK
    overlay = catalogue.overlay_path(overlay)
    if overlay and rulebook_path is None:
        # The user's alert names: the collection's rulebook plus rules for them, written for this watcher.
        scenarios = catalogue.catalogue(collection)
        text = generate_rulebook(scenarios, catalogue.load_overlay(overlay, scenarios))
        rulebook = _work_dir() / "alertmanager.yml"
        rulebook.write_text(text, encoding="utf-8")
    elif overlay:
        raise BadInput("--catalogue and --rulebook exclude each other: the overlay makes the rulebook")
    if not rulebook.is_file():
        raise BadInput(f"rulebook {rulebook} does not exist")
    binary = rulebook_binary()
    if token_file is not None:
        read_token(token_file)  # checked now: a bad file is bad input before anything starts
    hosts = tuple(inventories.host_names(inventory_path, runner.child_env(os.environ, {})))
    is_lab = alertmanager.rstrip("/") == str(lab_vars.get("runbook_alertmanager_url", "")).rstrip("/")
    attach = is_lab if attach is None else attach
    if attach and not is_lab:
        raise BadInput("--attach works with the lab's Alertmanager only; add the printed receiver to yours")
    port = port or free_port()
    if listening(HOST, port):
        raise BadInput(f"port {port} on {HOST} is taken: pick another with --port")
    return Plan(collection, inventory_path, alertmanager, rulebook, binary, attach, port, hosts, token_file)


def read_token(path: Path) -> str:
    """The bearer token in ``path``: one line of printable characters, only its owner may read it."""
    try:
        if path.stat().st_mode & 0o077:
            raise BadInput(f"--token-file {path} is readable by others: chmod 600 it")
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--token-file {path} cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    if len(token) < 16 or any(c.isspace() or not c.isprintable() for c in token):
        raise BadInput(f"--token-file {path} must hold one token of at least 16 printable characters, no spaces")
    return token


def _token(work: Path, given: Path | None) -> tuple[str, Path]:
    """The webhook's bearer token and the 0600 file Alertmanager reads it from."""
    if given is not None:
        return read_token(given), given.resolve()
    path = work / "token"
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, path


def _work_dir() -> Path:
    """``<state dir>/watch``, 0700: the rulebook's vars and its log."""
    work = state_dir() / "watch"
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    work.chmod(0o700)
    return work


def _open_log(path: Path) -> int:
    """``rulebook.log`` for appending, 0600 (an older one is made 0600 too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


class EscalationPass:
    """`runbook incident remind` inside the watcher: a pass every ``interval`` seconds (the
    first at once). The timeline remembers what was sent, so the watcher and a cron job
    (or a restarted watcher) never send a step twice. ``clock`` and ``now`` are for tests."""

    def __init__(self, terminal: Terminal, interval: float = REMIND_SECONDS,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = incidents.now):
        self.terminal, self.interval, self.clock, self.now = terminal, interval, clock, now
        self.matrix = incidents.load_matrix()
        self.pager = paging.Pager.from_env(self.matrix)  # a bad roster or setting stops the watcher now
        self.next_at = clock()

    @property
    def enabled(self) -> bool:
        return self.pager.smtp is not None and self.pager.roster is not None

    def tick(self) -> paging.Report | None:
        """One pass when it is time (None otherwise); a failure is a warning, not the end."""
        if not self.enabled or self.clock() < self.next_at:
            return None
        self.next_at = self.clock() + self.interval
        try:
            with open_store() as store:
                report = paging.remind(store, self.pager, self.matrix, self.now())
        except RunbookError as exc:
            self.terminal.warn(f"watch: escalation pass failed: {exc.message}")
            return None
        for page in report.pages:
            (self.terminal.warn if page.error else self.terminal.status)(f"watch: page {page.describe()}")
        return report


def watch(terminal: Terminal, the_plan: Plan, *, drain: int, verbose: bool = False) -> None:
    """Run ansible-rulebook until SIGINT/SIGTERM (paging the escalation steps that come due
    every minute); on the way out detach the lab's Alertmanager, wait up to ``drain``
    seconds for the remediations in flight, then stop it."""
    # The shared state's password file lives as long as ansible-rulebook (and its playbooks).
    with shared_state.child_env() as shared:
        _watch(terminal, the_plan, drain=drain, verbose=verbose, shared=shared)


def _watch(terminal: Terminal, the_plan: Plan, *, drain: int, verbose: bool, shared: Mapping[str, str]) -> None:
    escalation = EscalationPass(terminal)
    work = _work_dir()
    token, token_file = _token(work, the_plan.token_file)
    vars_file = work / "vars.yml"
    fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"webhook_host": HOST, "webhook_port": the_plan.port, "webhook_token": token}, handle)
    log_path = work / "rulebook.log"
    webhook_url = the_plan.webhook_url
    env = rulebook_env(the_plan.collection, os.environ, list(the_plan.hosts), shared)
    argv = [the_plan.binary, "--rulebook", str(the_plan.rulebook), "--inventory", str(the_plan.inventory),
            "--vars", str(vars_file)]
    if verbose:
        argv.append("-v")

    terminal.status(f"watch: starting ansible-rulebook ({the_plan.rulebook.name}) on {webhook_url}; log: {log_path}")
    with os.fdopen(_open_log(log_path), "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    lab = None
    stopping = {"signal": None}

    def stop(signum, _frame):
        stopping["signal"] = signum

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = time.monotonic() + START_SECONDS
        while not listening(HOST, the_plan.port):
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise Unavailable(f"ansible-rulebook exited at start: {tail[0] if tail else 'no output'}",
                                  hint=f"see {log_path}")
            if time.monotonic() > deadline or stopping["signal"]:
                raise Unavailable(f"ansible-rulebook did not start listening within {START_SECONDS} s",
                                  hint=f"see {log_path}")
            time.sleep(0.2)
        if the_plan.attach:
            from runbook_remediation.lab.lab import Lab

            lab = Lab(state_dir())
            lab.set_webhook(webhook_url, str(token_file))
            terminal.status(f"watch: the lab's Alertmanager {shown(the_plan.alertmanager)} now sends to {webhook_url}")
        else:
            terminal.status(f"watch: add to {shown(the_plan.alertmanager)}'s configuration a receiver "
                            f"webhook_configs: [{{url: {webhook_url}, send_resolved: true, http_config: "
                            f"{{authorization: {{type: Bearer, credentials_file: {token_file}}}}}}}]")
        terminal.status("watch: remediating alerts as they fire (Ctrl-C stops; `runbook breaker status`)")
        if escalation.enabled:
            terminal.status(f"watch: paging due escalation steps every {REMIND_SECONDS} s")
        while process.poll() is None and not stopping["signal"]:
            escalation.tick()
            time.sleep(0.2)
        if process.poll() is not None and not stopping["signal"]:
            raise Unavailable(f"ansible-rulebook stopped (exit {process.returncode})", hint=f"see {log_path}")
    finally:
        # No new alerts first, then let the remediations in flight end: a restart of the
        # watcher must not cut a restart (or a restore) in half.
        if lab is not None:
            try:
                lab.set_webhook(None)
            except Exception as exc:  # noqa: BLE001 - best effort on the way out; say so
                terminal.warn(f"could not detach the lab's Alertmanager: {exc}")
        deadline = time.monotonic() + drain
        if process.poll() is None and playbooks_running(process.pid):
            terminal.status(f"watch: waiting up to {drain}s for the remediations in flight "
                            "(Ctrl-C again: stop now)")
            stopping["signal"] = None
            while (process.poll() is None and playbooks_running(process.pid) and time.monotonic() < deadline
                   and not stopping["signal"]):
                time.sleep(0.2)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    terminal.status("watch: stopped")
