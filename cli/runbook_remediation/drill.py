"""Drills: a seed system's runbook rehearsed on the lab, failure mode by failure mode.

A profile (``drills/<name>.yml``, package data) names the seed, the lab host that stands
in for its system and its runbook's failure modes: each either automated (the lab fault to
inject, the alert it raises, the scenario that remediates it, the outcome expected) or
listed as not automated, with the reason. `runbook drill PROFILE` heals the host, injects
each fault, waits for its alert, runs the scenario as an on-call engineer would (`runbook
run`, recorded in the incident timeline), verifies the service healthy and the alert
resolved, and heals the host again; the report gives each mode's outcome and timings. A mode
without a fault is one of the runbook's emergency actions (seed 002's maintenance mode, a
region drained): the drill takes it, checks the service and, with ``revert``, undoes it
(`runbook run --revert`) as the all-clear would.

Drills touch only the lab: the host is a lab host and every run gets the lab's inventory.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import yaml

from runbook_remediation.errors import BadInput, RunbookError
from runbook_remediation.lab.lab import PROFILE_PARTS, SERVICE, WORKER_SERVICE
from runbook_remediation.lab.monitoring import PROFILE_ALERTS
from runbook_remediation.lab.postgres import SERVICE as POSTGRES_SERVICE

PARTS = {part for parts in PROFILE_PARTS.values() for part in parts}

OUTCOMES = ("remediated", "escalate", "healthy")
ALERT_TIMEOUT = 120.0  # seconds from the fault to its alert firing
HEALTH_TIMEOUT = 90.0  # after the run: healthy, and the alert resolved
DISPATCH_TIMEOUT = 120.0  # --loop: from the alert firing to the loop's run being admitted
LOOP_RUN_TIMEOUT = 900.0  # --loop: the loop's run to its end
WATCH_START_TIMEOUT = 120.0  # --loop: ansible-rulebook up and listening
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Mode:
    name: str
    title: str
    fault: str = ""
    params: dict = field(default_factory=dict)
    deploy: str = ""  # instead of a fault: deploy this release (`runbook lab deploy`)
    alert: str = ""
    scenario: str = ""
    service: str = SERVICE  # the host's service the scenario acts on (`--service`)
    host: str = ""  # a lab host other than the profile's (a dependency described elsewhere)
    needs: str = ""  # a part of the seed's lab profile (`runbook lab up --profile`): redis
    extra: dict = field(default_factory=dict)
    confirm: bool = False  # a destructive scenario: the drill confirms it (the lab is its own)
    expect: str = "remediated"
    revert: bool = False  # an action: undone after it is verified (`runbook run --revert`)
    not_automated: str = ""

    @property
    def action(self) -> bool:
        """An emergency action the runbook takes by decision, not a fault's remedy."""
        return not (self.fault or self.deploy)


@dataclass(frozen=True)
class Profile:
    name: str
    seed: str
    system: str
    host: str
    modes: tuple[Mode, ...]


def _files():
    return resources.files("runbook_remediation").joinpath("drills")


def names() -> list[str]:
    return sorted(p.name[:-4] for p in _files().iterdir() if p.name.endswith(".yml"))


def load(name: str, faults: tuple[str, ...], scenarios: set[str], releases: tuple[str, ...] = ()) -> Profile:
    """The profile ``name``, checked against the lab's faults and the catalogue's scenarios."""
    if name not in names():
        raise BadInput(f"unknown drill profile {name!r} (profiles: {', '.join(names())})")
    raw = yaml.safe_load(_files().joinpath(f"{name}.yml").read_text(encoding="utf-8")) or {}
    modes = []
    for item in raw.get("modes") or []:
        unknown = sorted(str(key) for key in item if key not in Mode.__dataclass_fields__)
        if unknown:
            raise RunbookError(f"drill {name}: mode {item.get('name')} has unknown keys {', '.join(unknown)}")
        mode = Mode(**item)
        if not mode.not_automated:
            if mode.deploy and mode.deploy not in releases:
                raise RunbookError(f"drill {name}: mode {mode.name} deploys an unknown release {mode.deploy!r}")
            if mode.fault and mode.fault not in faults:
                raise RunbookError(f"drill {name}: mode {mode.name} injects an unknown fault {mode.fault!r}")
            if mode.action and mode.alert:
                raise RunbookError(f"drill {name}: mode {mode.name} waits for {mode.alert} but injects no fault")
            if mode.needs and mode.needs not in PARTS:
                raise RunbookError(f"drill {name}: mode {mode.name} needs {mode.needs!r}, no lab profile's part")
            if mode.revert and not mode.action:
                raise RunbookError(f"drill {name}: mode {mode.name} reverts a remedy; only actions are reverted")
            if mode.scenario not in scenarios:
                raise RunbookError(f"drill {name}: mode {mode.name} runs an unknown scenario {mode.scenario!r}")
            if mode.expect not in OUTCOMES:
                raise RunbookError(f"drill {name}: mode {mode.name} expects {mode.expect!r}, not an outcome")
        modes.append(mode)
    return Profile(name=raw["profile"], seed=str(raw["seed"]), system=raw["system"], host=raw["host"],
                   modes=tuple(modes))


def _poll(get, timeout: float, interval: float = 0.5):
    """The first truthy get() within ``timeout`` seconds, or None."""
    found = None

    def got() -> bool:
        nonlocal found
        found = get()
        return bool(found)

    return found if _wait(got, timeout, interval) is not None else None


def _wait(predicate, timeout: float, interval: float = 0.5) -> float | None:
    """Seconds until predicate() held, or None when it did not within ``timeout``."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


def firing(lab, alert: str, host: str, service: str) -> bool:
    """Whether ``alert`` fires for ``service`` on ``host`` (every lab alert carries both
    labels: the API's ServiceDown is not its worker's)."""
    from runbook_remediation.lab.monitoring import http_json

    body = http_json(f"http://127.0.0.1:{lab.state().prometheus_port}/api/v1/alerts", timeout=5)
    return any(a["state"] == "firing" and a["labels"].get("alertname") == alert and a["labels"].get("host") == host
               and a["labels"].get("service") == service for a in body["data"]["alerts"])


def run(lab, profile: Profile, only: tuple[str, ...] = (), progress: Progress = lambda _m: None,
        loop: bool = False) -> dict:
    """Drill every mode of ``profile`` (or ``only`` these) on the lab; the report. With
    ``loop``, `runbook watch` runs beside the drill and the alerts dispatch the remediations
    (the closed loop); a mode the loop does not take (a destructive scenario, which needs
    approval, extra variables, an emergency action) is run by hand as without it."""
    known = {m.name for m in profile.modes}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise BadInput(f"drill {profile.name} has no failure mode {', '.join(unknown)} "
                       f"(modes: {', '.join(sorted(known))})")
    if not lab.state().hosts:
        flag = " --kubernetes" if profile.host == "lab-k8s" else ""
        raise BadInput("the lab is not up", hint=f"runbook lab up{flag}")
    host = lab.host(profile.host)  # a lab host, or bad input: drills never leave the lab
    touched = {host.name: host}
    # While the profile is up the lab fires the seed's own names on its host (GgenMcpServiceDown
    # for ServiceDown): the drill waits for those.
    seed_names = PROFILE_ALERTS.get(profile.name, {}) if profile.name in lab.state().profiles else {}
    started = datetime.now(UTC)
    rows = []
    with _drill_envelope(profile.name, started), (_closed_loop(lab, progress) if loop else contextlib.nullcontext()):
        try:
            for mode in profile.modes:
                if only and mode.name not in only:
                    continue
                if mode.not_automated:
                    rows.append({"mode": mode.name, "title": mode.title, "outcome": "not automated", "ok": None,
                                 "reason": " ".join(mode.not_automated.split())})
                    continue
                if mode.needs and not _lab_has(lab, mode.needs):
                    rows.append({"mode": mode.name, "title": mode.title, "outcome": "not automated", "ok": None,
                                 "reason": f"the lab has no {mode.needs}: runbook lab up --profile {profile.name}"})
                    continue
                mode_host = lab.host(mode.host) if mode.host else host
                if mode.alert in seed_names and mode_host.name == host.name:
                    mode = replace(mode, alert=seed_names[mode.alert])  # the seed's own name
                touched[mode_host.name] = mode_host
                rows.append(_drill(lab, mode_host, mode, progress, loop=loop))
        finally:  # also after a failure or Ctrl-C: the next drill starts from a healed lab
            for name in touched:
                progress(f"healing {name}")
                lab.heal(name)
    automated = [r for r in rows if r["ok"] is not None]
    return {"profile": profile.name, "seed": profile.seed, "system": profile.system, "host": host.name,
            "dispatch": "runbook watch" if loop else "runbook run",
            "started_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
            "ok": all(r["ok"] for r in automated), "modes": rows}


@contextlib.contextmanager
def _drill_envelope(profile: str, started: datetime):
    """The drill's runs (and its loop's) are admitted by a safety envelope of the drill's own,
    <state dir>/drills/<start>-<profile>-envelope.db: rehearsals spend no budget of the user's
    envelope, and the next drill starts with a full one (3 attempts per target and hour), as
    it starts from a healed lab. An envelope the user chose ($RUNBOOK_ENVELOPE_DB, a shared
    $RUNBOOK_STATE_DSN) is kept."""
    from runbook_remediation import shared_state
    from runbook_remediation.paths import state_dir

    if os.environ.get("RUNBOOK_ENVELOPE_DB") or shared_state.dsn():
        yield
        return
    folder = state_dir() / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%S")
    os.environ["RUNBOOK_ENVELOPE_DB"] = str(folder / f"{stamp}-{profile}-envelope.db")
    try:
        yield
    finally:
        os.environ.pop("RUNBOOK_ENVELOPE_DB", None)


@contextlib.contextmanager
def _closed_loop(lab, progress: Progress):
    """`runbook watch` in a child process for the drill's length: the lab's Alertmanager sends
    to it while it runs; stopped with SIGTERM (it lets a remediation in flight end)."""
    from runbook_remediation.lab.lab import free_port

    folder = lab.dir.parent / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "watch.log"
    progress(f"starting runbook watch (log: {log_path})")
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-m", "runbook_remediation", "watch", "--port", str(free_port())],
                                   stdout=subprocess.DEVNULL, stderr=log, env=_lab_env(),
                                   preexec_fn=_stop_with_parent(os.getpid()))
    try:
        ready = _wait(lambda: "remediating alerts as they fire" in log_path.read_text(encoding="utf-8")
                      or process.poll() is not None, WATCH_START_TIMEOUT, interval=0.2)
        if ready is None or process.poll() is not None:
            tail = (log_path.read_text(encoding="utf-8").strip().splitlines() or ["no output"])[-1]
            raise RunbookError(f"runbook watch did not start: {tail}", hint=f"see {log_path}")
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stop_with_parent(parent: int) -> Callable[[], None]:
    """For the watcher's child process: SIGTERM when the drill dies (killed, -9 included),
    so that no watcher is left remediating the lab's alerts after its drill. Linux only;
    elsewhere the drill's own finally stops it as before."""
    import ctypes

    try:  # looked up here, in the drill: the child between fork and exec only calls it
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def preexec() -> None:
        if prctl is None:
            return
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the drill died before the prctl: stop now
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _healthy(lab, host, mode: Mode) -> bool:
    """The mode's service answers: the demo's /health, the profile PostgreSQL's connection for
    the API and its index's amcheck, or the profile Redis's PING and a write."""
    if mode.service == SERVICE:
        from runbook_remediation.lab.lab import probe_health

        # A LibreOffice leak is over when no soffice is left in the container, not only
        # when the service answers (it answers throughout).
        if not probe_health(host)[0] or (mode.fault == "soffice-leak" and lab.soffice_processes(host.name)):
            return False
        # A rotated key works when the API's consumer, the worker, is healthy with it.
        worker = lab.worker_host() if mode.scenario == "key-rotation" else None
        return worker is None or probe_health(worker)[0]
    if mode.service == POSTGRES_SERVICE:
        server = lab.postgres()
        # Long queries are over when none of the API's runs past the drill's 2 s threshold.
        return server.healthy() and (mode.fault != "pg-long-queries" or server.long_queries(2.0) == 0)
    if mode.service == WORKER_SERVICE:
        from runbook_remediation.lab.lab import probe_health

        worker = lab.worker_host()
        return worker is not None and probe_health(worker)[0]
    client = lab.redis_client(timeout=1)
    try:
        return bool(client.ping() and client.set("lab:drill:probe", b"x" * 1024))
    except Exception:  # noqa: BLE001 - refused (OOM), unreachable: not healthy yet
        return False
    finally:
        client.close()


def _lab_has(lab, part: str) -> bool:
    state = lab.state()
    if part == "libreoffice":  # the Docker service runs on the office image while ggen-mcp is up
        return any("libreoffice" in PROFILE_PARTS.get(name, ()) for name in state.profiles)
    return {"redis": bool(state.redis), "postgresql": bool(state.postgres), "worker": bool(state.worker),
            "kubernetes": bool(state.kubernetes)}.get(part, False)


def _lab_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RUNBOOK_INVENTORY"}


def _loop_takes(mode: Mode) -> bool:
    """Whether the closed loop dispatches this mode's scenario from its alert, as is: the
    catalogue maps the alert to it (seed 003's OOM kill raises ServiceDown, which the loop
    answers with service-down; the runbook's answer, oom-killed, is a human's)."""
    return (bool(mode.alert) and not (mode.confirm or mode.extra or mode.action)
            and _alert_scenario(mode.alert) == mode.scenario)


@functools.cache
def _alert_scenario(alert: str) -> str | None:
    from runbook_remediation import catalogue
    from runbook_remediation.collection import find_collection

    scenario = catalogue.for_alert(find_collection(), alert)
    return scenario.name if scenario else None


def _attempts(target: str, scenario: str) -> list[dict]:
    from runbook_remediation import envelope

    store = envelope.open_envelope()
    try:
        return store.attempts(target=target, scenario=scenario)
    finally:
        store.close()


def _loop_run(target: str, mode: Mode, seen: set[str]) -> dict | None:
    """The closed loop's run of ``mode``'s scenario on ``target`` (one an alert started, not
    one of ``seen``) once it ended; None when none started within DISPATCH_TIMEOUT."""
    def started() -> dict | None:
        return next((a for a in _attempts(target, mode.scenario)
                     if a["run_id"] not in seen and "@" in (a["alert_key"] or "")), None)

    attempt = _poll(started, DISPATCH_TIMEOUT)
    if attempt is None:
        return None
    dispatched_at = time.time()

    def ended() -> dict | None:
        return next((a for a in _attempts(target, mode.scenario) if a["run_id"] == attempt["run_id"]
                     and a["ended_at"]), None)

    done = _poll(ended, LOOP_RUN_TIMEOUT)
    if done is None:
        return {"run_id": attempt["run_id"], "outcome": "failed", "dispatched_at": dispatched_at,
                "message": f"the loop's run did not end within {LOOP_RUN_TIMEOUT:.0f} s"}
    return {"run_id": done["run_id"], "outcome": done["outcome"], "dispatched_at": dispatched_at, "message": ""}


def _in_flight(target: str) -> bool:
    return any(not a["ended_at"] for a in _attempts(target, None))


def _drill(lab, host, mode: Mode, progress: Progress, loop: bool = False) -> dict:
    if loop and not _loop_takes(mode):
        # A step on-call takes by hand (approval, extra variables, an emergency action): the
        # loop is paused for it, so it does not also act on the alerts the step raises.
        with _loop_paused(lab, progress):
            return _drill_steps(lab, host, mode, progress, loop=True)
    return _drill_steps(lab, host, mode, progress, loop=loop)


@contextlib.contextmanager
def _loop_paused(lab, progress: Progress):
    """The lab's Alertmanager detached from `runbook watch` meanwhile, attached again after."""
    state = lab.state()
    url, token_file = state.webhook_url, state.webhook_token_file
    if not url:
        raise RunbookError("runbook watch is not attached to the lab's Alertmanager")
    progress("pausing the closed loop for a step taken by hand")
    lab.set_webhook(None)
    try:
        yield
    finally:
        lab.set_webhook(url, token_file)


def _drill_steps(lab, host, mode: Mode, progress: Progress, loop: bool = False) -> dict:
    injected = mode.fault or (f"deploy {mode.deploy}" if mode.deploy else "")
    row = {"mode": mode.name, "title": mode.title, "host": host.name, "fault": injected or None,
           "alert": mode.alert or None,
           "scenario": mode.scenario, "expected": mode.expect, "outcome": None, "ok": False,
           "detect_seconds": None, "remediate_seconds": None, "verify_seconds": None, "message": ""}

    def fires() -> bool:
        return firing(lab, mode.alert, host.name, mode.service)

    progress(f"{mode.name}: healing {host.name}")
    lab.heal(host.name)
    if mode.alert:
        _wait(lambda: not fires(), HEALTH_TIMEOUT)
    if loop:  # a run the heal's own alerts started ends first: it is not this mode's
        _wait(lambda: not _in_flight(f"{host.name}/{mode.service}"), LOOP_RUN_TIMEOUT)
    by_loop = loop and _loop_takes(mode)
    target = f"{host.name}/{mode.service}"
    seen = {a["run_id"] for a in _attempts(target, mode.scenario)} if by_loop else set()
    try:
        if mode.deploy:
            progress(f"{mode.name}: deploying release {mode.deploy}")
            lab.deploy(mode.deploy, host.name)
        elif mode.fault:
            progress(f"{mode.name}: injecting {mode.fault}")
            lab.break_service(mode.fault, host.name, dict(mode.params))
    except RunbookError as exc:  # this mode fails; the drill goes on, and heals at the end
        row["message"] = f"could not inject {injected}: {exc}"
        return row
    if mode.alert:
        progress(f"{mode.name}: waiting for {mode.alert} to fire")
        row["detect_seconds"] = _round(_wait(fires, ALERT_TIMEOUT))
        if row["detect_seconds"] is None:
            row["message"] = f"{mode.alert} did not fire within {ALERT_TIMEOUT:.0f} s"
            return row
        progress(f"{mode.name}: {mode.alert} fired after {row['detect_seconds']} s")
    fired_at = time.time()
    row["dispatched_by"] = "runbook watch" if by_loop else "runbook run"
    if by_loop:
        progress(f"{mode.name}: waiting for the closed loop's {mode.scenario} on {host.name}")
        result = _loop_run(target, mode, seen)
        if result is None:
            row["message"] = f"the closed loop dispatched no {mode.scenario} within {DISPATCH_TIMEOUT:.0f} s"
            return row
        # Dispatch: from the alert firing to the loop's run being admitted (seen here).
        row["dispatch_seconds"] = _round(max(0.0, result["dispatched_at"] - fired_at))
        row["remediate_seconds"] = _round(time.time() - result["dispatched_at"])
    else:
        progress(f"{mode.name}: runbook run {mode.scenario} -l {host.name} --service {mode.service}")
        began = time.monotonic()
        result = _run_scenario(lab, host.name, mode)
        row["remediate_seconds"] = _round(time.monotonic() - began)
    row["outcome"], row["message"] = result.get("outcome"), result.get("message", "")
    row["run_id"] = result.get("run_id")

    began = time.monotonic()
    # Recovery is waited for after a remedy; after an escalation it is only looked at once.
    timeout = HEALTH_TIMEOUT if row["outcome"] == "remediated" else 0.0
    healthy = _wait(lambda: _healthy(lab, host, mode), timeout) is not None
    resolved = not mode.alert or _wait(lambda: not fires(), timeout) is not None
    row["verify_seconds"] = _round(time.monotonic() - began)
    row["healthy"], row["alert_resolved"] = healthy, resolved
    row["ok"] = row["outcome"] == mode.expect and (healthy and resolved if mode.expect == "remediated" else True)
    if mode.revert and row["ok"]:
        progress(f"{mode.name}: runbook run {mode.scenario} --revert -l {host.name}")
        began = time.monotonic()
        undone = _run_scenario(lab, host.name, mode, revert=True)
        row["revert_seconds"] = _round(time.monotonic() - began)
        row["revert_outcome"] = undone.get("outcome")
        healthy = _wait(lambda: _healthy(lab, host, mode), HEALTH_TIMEOUT) is not None
        row["ok"] = row["revert_outcome"] == "remediated" and healthy
        if not row["ok"]:
            row["message"] = f"the revert ended {row['revert_outcome']}: {undone.get('message', '')}"
    progress(f"{mode.name}: {row['outcome']}" + ("" if row["ok"] else f" (expected {mode.expect})"))
    return row


def _run_scenario(lab, host: str, mode: Mode, revert: bool = False) -> dict:
    """`runbook -o json run SCENARIO -l HOST` on the lab's inventory, as a user runs it."""
    argv = [sys.executable, "-m", "runbook_remediation", "-o", "json", "run", mode.scenario,
            "-i", str(lab.inventory_path), "-l", host, "--service", mode.service,
            *(["--yes"] if mode.confirm else []),
            *(["--revert"] if revert else []),
            *(["-e", json.dumps(mode.extra)] if mode.extra else [])]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900, env=_lab_env())
    try:
        payload = json.loads(done.stdout)
    except ValueError:
        return {"outcome": "failed", "message": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    fallback = {"outcome": payload.get("outcome", "failed"), "message": payload.get("message", "")}
    result = (payload.get("hosts") or {}).get(host) or fallback
    return {**result, "run_id": payload.get("run_id")}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def markdown(report: dict) -> str:
    """The report for the team's drill log."""
    def cell(value) -> str:
        return "-" if value is None else f"{value} s"

    loop = report.get("dispatch") == "runbook watch"
    lines = [f"# Drill {report['profile']} (seed {report['seed']}): {'passed' if report['ok'] else 'FAILED'}", "",
             f"{report['system']}, rehearsed on the lab host `{report['host']}`, {report['started_at'][:19]}Z to "
             f"{report['finished_at'][:19]}Z" + (", the alerts dispatched by the closed loop (`runbook watch`)."
                                                 if loop else "."), "",
             "| failure mode | alert | scenario | outcome | detect |" + (" dispatch |" if loop else "")
             + " remediate | verify |",
             "| --- | --- | --- | --- | --- |" + (" --- |" if loop else "") + " --- | --- |"]
    for row in report["modes"]:
        if row["ok"] is None:
            continue
        mark = "" if row["ok"] else f" (expected {row['expected']})"
        if row.get("revert_outcome"):
            mark += f", reverted in {row['revert_seconds']} s ({row['revert_outcome']})"
        if loop and row.get("dispatched_by") == "runbook run":
            mark += ", run by hand"
        dispatch = f" {cell(row.get('dispatch_seconds'))} |" if loop else ""
        where = f" (on `{row['host']}`)" if row.get("host", report["host"]) != report["host"] else ""
        lines.append(f"| {row['mode']}: {row['title']}{where} | {row['alert'] or '-'} | {row['scenario']} | "
                     f"{row['outcome']}{mark} | {cell(row['detect_seconds'])} |{dispatch} "
                     f"{cell(row['remediate_seconds'])} | {cell(row['verify_seconds'])} |")
    manual = [row for row in report["modes"] if row["ok"] is None]
    if manual:
        lines += ["", "Not automated:", ""] + [f"- {row['mode']} ({row['title']}): {row['reason']}" for row in manual]
    return "\n".join(lines) + "\n"


def save(report: dict, state_dir: Path) -> Path:
    """The report as Markdown and JSON under <state dir>/drills/; returns the Markdown's path."""
    folder = state_dir / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{report['started_at'][:19].replace(':', '').replace('-', '')}-{report['profile']}"
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    path = folder / f"{stem}.md"
    path.write_text(markdown(report), encoding="utf-8")
    return path
