"""``runbook watch``: the closed loop, locally. Alertmanager -> ansible-rulebook -> scenario.

Starts ansible-rulebook with the collection's rulebook (extensions/eda/rulebooks/
alertmanager.yml, generated from the catalogue) listening on 127.0.0.1 for Alertmanager's
webhook. When the Alertmanager is the lab's, it is pointed at the watcher for as long as
the watcher runs; another Alertmanager needs the printed receiver in its configuration.
Every run goes through the safety envelope, as CLI and AWX runs do.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import click
import yaml

from runbook_remediation import runner
from runbook_remediation.collection import find_collection
from runbook_remediation.errors import BadInput, Unavailable
from runbook_remediation.paths import state_dir
from runbook_remediation.rulebook import RULEBOOK
from runbook_remediation.shell import Context, handle_errors


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _lab_inventory() -> tuple[Path | None, dict]:
    path = state_dir() / "lab" / "inventory.yml"
    if not path.is_file():
        return None, {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None, {}
    return path, (data.get("all") or {}).get("vars") or {}


def _check_alertmanager(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--alertmanager {url!r} is not an http(s) URL")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v2/status", timeout=3) as response:  # noqa: S310
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"Alertmanager at {url} does not answer: {reason}") from exc


def _playbooks_running(root: int) -> bool:
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


def _rulebook_binary() -> str:
    beside = Path(sys.executable).parent / "ansible-rulebook"
    found = str(beside) if beside.is_file() else shutil.which("ansible-rulebook")
    if not found:
        raise Unavailable("ansible-rulebook is not installed",
                          hint="pip install 'runbook-remediation[eda]' (it needs Java 17: "
                               "apt-get install openjdk-17-jre-headless)")
    return found


@click.command()
@click.option("-i", "--inventory", metavar="PATH", envvar="RUNBOOK_INVENTORY",
              help="Inventory the rulebook's runs use. Default: the lab's when the lab is up.")
@click.option("--alertmanager", metavar="URL", envvar="RUNBOOK_ALERTMANAGER_URL",
              help="The Alertmanager that sends the alerts. Default: the lab's.")
@click.option("--port", type=click.IntRange(1, 65535), help="Webhook port on 127.0.0.1. Default: a free one.")
@click.option("--attach/--no-attach", default=None,
              help="Point the lab's Alertmanager at this watcher while it runs (default: when it is the lab's).")
@click.option("--rulebook", "rulebook_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Another rulebook (default: the collection's alertmanager.yml).")
@click.option("--drain", type=click.IntRange(min=0), default=120, show_default=True, metavar="SECONDS",
              help="On Ctrl-C, wait this long for remediations in flight to finish before stopping them.")
@click.pass_obj
@handle_errors
def watch(ctx: Context, inventory: str | None, alertmanager: str | None, port: int | None, attach: bool | None,
          rulebook_path: Path | None, drain: int) -> None:
    """Remediate alerts as they fire: Alertmanager -> rulebook -> scenario, until Ctrl-C.

    Alerts whose scenario is destructive are only diagnosed; a human runs those.
    The safety envelope (dedupe, budget, cooldown, breaker, blast radius) decides what
    acts: see `runbook breaker status`.
    """
    collection = find_collection()
    lab_path, lab_vars = _lab_inventory()
    inventory_path = Path(inventory).expanduser() if inventory else lab_path
    if inventory_path is None:
        raise BadInput("no inventory: pass -i or start the lab (runbook lab up)")
    if not inventory_path.exists():
        raise BadInput(f"inventory {inventory_path} does not exist")
    alertmanager = alertmanager or lab_vars.get("runbook_alertmanager_url")
    if not alertmanager:
        raise BadInput("no Alertmanager: pass --alertmanager URL (or start the lab)")
    _check_alertmanager(alertmanager)
    rulebook = rulebook_path or collection.root / RULEBOOK
    if not rulebook.is_file():
        raise BadInput(f"rulebook {rulebook} does not exist")
    binary = _rulebook_binary()
    is_lab = alertmanager.rstrip("/") == str(lab_vars.get("runbook_alertmanager_url", "")).rstrip("/")
    attach = is_lab if attach is None else attach
    if attach and not is_lab:
        raise BadInput("--attach works with the lab's Alertmanager only; add the printed receiver to yours")

    port = port or _free_port()
    if _listening("127.0.0.1", port):
        raise BadInput(f"port {port} on 127.0.0.1 is taken: pick another with --port")
    work = state_dir() / "watch"
    work.mkdir(parents=True, exist_ok=True)
    vars_file = work / "vars.yml"
    vars_file.write_text(yaml.safe_dump({"webhook_host": "127.0.0.1", "webhook_port": port}), encoding="utf-8")
    log_path = work / "rulebook.log"
    webhook_url = f"http://127.0.0.1:{port}/alerts"

    env = dict(os.environ)
    env.update(runner.our_env(collection.env_collections_path(), os.environ))
    env.update({"RUNBOOK_ENTRANCE": "rulebook", "RUNBOOK_STATE_DIR": str(state_dir())})
    callback = "runbook.remediation.timeline"
    if (collection.root / "plugins" / "callback" / "timeline.py").is_file():
        enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
        env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join(dict.fromkeys([*enabled, callback]))
    argv = [binary, "--rulebook", str(rulebook), "--inventory", str(inventory_path), "--vars", str(vars_file)]
    if ctx.verbose:
        argv.append("-v")

    ctx.terminal.status(f"watch: starting ansible-rulebook ({rulebook.name}) on {webhook_url}; log: {log_path}")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    lab = None
    stopping = {"signal": None}

    def stop(signum, _frame):
        stopping["signal"] = signum

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = time.monotonic() + 90
        while not _listening("127.0.0.1", port):
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise Unavailable(f"ansible-rulebook exited at start: {tail[0] if tail else 'no output'}",
                                  hint=f"see {log_path}")
            if time.monotonic() > deadline or stopping["signal"]:
                raise Unavailable("ansible-rulebook did not start listening within 90 s", hint=f"see {log_path}")
            time.sleep(0.2)
        if attach:
            from runbook_remediation.lab.lab import Lab

            lab = Lab(state_dir())
            lab.set_webhook(webhook_url)
            ctx.terminal.status(f"watch: the lab's Alertmanager {alertmanager} now sends to {webhook_url}")
        else:
            ctx.terminal.status(f"watch: add to {alertmanager}'s configuration a receiver "
                                f"webhook_configs: [{{url: {webhook_url}, send_resolved: true}}]")
        ctx.terminal.status("watch: remediating alerts as they fire (Ctrl-C stops; `runbook breaker status`)")
        while process.poll() is None and not stopping["signal"]:
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
                ctx.terminal.warn(f"could not detach the lab's Alertmanager: {exc}")
        deadline = time.monotonic() + drain
        if process.poll() is None and _playbooks_running(process.pid):
            ctx.terminal.status(f"watch: waiting up to {drain}s for the remediations in flight "
                                "(Ctrl-C again: stop now)")
            stopping["signal"] = None
            while (process.poll() is None and _playbooks_running(process.pid) and time.monotonic() < deadline
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
    ctx.terminal.status("watch: stopped")
