"""Runner events in, per-host scenario results and the run's exit code out.

Every scenario playbook ends each host with a ``Record the scenario result`` task
(``set_fact: runbook_result``), so that host's ``runner_on_ok`` event carries
``res.ansible_facts.runbook_result``. A host can also end without one: unreachable, or a
task failed before the result; its entry is then made from the failure event's ``msg``.

Which hosts failed or were unreachable comes from the ``playbook_on_stats`` event when
there is one (a failure rescued by a ``block`` is not a failure), else from the events.

When no host ran, ansible's own lines say why: an inventory it could not parse (broken
YAML, a binary file) is bad input and says so (:class:`InventoryUnusable`), not "no host
matched".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath

from runbook_remediation.errors import BadInput, ExitCode, RunbookError
from runbook_remediation.outcomes import (
    ESCALATE,
    FAILED,
    HEALTHY,
    PLANNED,
    REMEDIATED,
    REPORTED,
    SKIPPED,
    UNREACHABLE,
)

RESULT_FACT = "runbook_result"

# A failed result may say why (``error_kind``): bad input, or a prerequisite (Prometheus,
# the Docker engine) that did not answer. Nothing was touched in either case.
INVALID = "invalid"  # failed because of the inventory or the variables
UNAVAILABLE = "unavailable"  # failed because something it needs did not answer

# The overall outcome is the first of these that any host has.
PRECEDENCE: tuple[tuple[str, ExitCode], ...] = (
    (ESCALATE, ExitCode.ESCALATE),
    (FAILED, ExitCode.FAILED),
    (INVALID, ExitCode.BAD_INPUT),
    (UNREACHABLE, ExitCode.UNAVAILABLE),
    (UNAVAILABLE, ExitCode.UNAVAILABLE),
    (REMEDIATED, ExitCode.REMEDIATED),
    (PLANNED, ExitCode.REMEDIATED),
    (HEALTHY, ExitCode.NOTHING_TO_DO),
    (SKIPPED, ExitCode.NOTHING_TO_DO),
)

# ansible-playbook refuses to start without hosts before it emits any event but this
# verbose line; it is the one piece of ansible's text we read.
_NO_HOSTS_TEXT = ("no hosts to target", "no hosts matched")
# ... and its inventory warnings, one line (one verbose event) each.
_UNPARSED = re.compile(r"Unable to parse (?P<source>.+) as an inventory source")
# ... or, with ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED (runner.our_env), its error.
_UNPARSED_ERROR = re.compile(r"Completely failed to parse inventory source (?P<source>.+)")
_NOTHING_PARSED = "No inventory was parsed"
_PLUGIN_FAILED = re.compile(r"Failed to parse inventory with '(?P<plugin>[^']+)' plugin: (?P<message>.+)")
_ORIGIN = re.compile(r"^Origin: (?P<path>[^<].*?):(?P<line>\d+):(?P<column>\d+)$")
_UNDECODABLE = re.compile(r"File '(?P<path>.+)' could not be decoded as 'utf-8'")
_GROUP_SKIPPED = re.compile(r"Skipping '.+' as this is not a valid group definition")
# The inventory plugin whose complaint fits a file, by its suffix (the others' only confuse).
_PLUGIN_FOR = {".yml": ("yaml", "auto"), ".yaml": ("yaml", "auto"), ".json": ("yaml", "auto"),
               ".toml": ("toml",), ".ini": ("ini",), "": ("ini",)}


class NoHostsMatched(BadInput):
    """The inventory and limit left no host to run on: nothing was changed."""


class RunBroken(RunbookError):
    """ansible-playbook stopped before any host ran (a bad playbook, inventory or var)."""


class InventoryUnusable(BadInput):
    """ansible could not read the inventory (not YAML/INI, not UTF-8): nothing was run."""


class VaultLocked(RunbookError):
    """The inventory holds vault-encrypted vars and no vault password was given: a missing
    prerequisite (exit 5), nothing was run."""

    def __init__(self, message: str):
        super().__init__(message, ExitCode.UNAVAILABLE,
                         hint="give ansible its vault password, e.g. ANSIBLE_VAULT_PASSWORD_FILE=FILE "
                              "(the example inventories' throwaway one: inventories/vault-password.example)")


# ansible-core's words when it meets vault data without a secret to open it.
_VAULT_LOCKED = ("no vault secrets found", "no vault secrets were found")


def rank(entry: dict) -> str:
    """The key a host's result is ranked by: its outcome, refined by ``error_kind``."""
    if entry.get("outcome") == FAILED:
        return {"input": INVALID, "unavailable": UNAVAILABLE}.get(entry.get("error_kind"), FAILED)
    return entry.get("outcome", FAILED)


def overall(outcomes: Iterable[str]) -> tuple[str, ExitCode]:
    """The run's outcome and exit code from its hosts' outcomes."""
    seen = set(outcomes)
    for outcome, code in PRECEDENCE:
        if outcome in seen:
            return outcome, code
    if seen:  # only outcomes we do not know: summarize() never lets one through
        return FAILED, ExitCode.FAILED
    raise NoHostsMatched("no host matched")


class Collector:
    """Feed it every runner event (it is an ``event_handler``); read it after the run."""

    def __init__(self) -> None:
        self.hosts: dict[str, None] = {}  # every host seen, in order
        self.results: dict[str, dict] = {}
        self.failures: dict[str, dict] = {}  # host -> {"task", "message"} of its last failure
        self.unreachable: dict[str, dict] = {}
        self.last_task: dict[str, str] = {}
        self.stats: dict | None = None
        self.no_hosts_matched = False
        self.errors: list[str] = []  # ansible's own [ERROR] lines outside any task
        self.unparsed: list[str] = []  # inventory sources ansible could not parse
        self.nothing_parsed = False
        self.plugin_errors: dict[str, str] = {}  # inventory plugin -> its first complaint
        self.origins: list[tuple[str, str, str]] = []  # (path, line, column) of parse errors
        self.undecodable: list[str] = []  # files that are not UTF-8
        self.group_warnings: list[str] = []

    def __call__(self, event: dict) -> None:
        self.add(event)

    def add(self, event: dict) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats":
            self.stats = data
        elif kind == "playbook_on_no_hosts_matched":
            self.no_hosts_matched = True
        elif kind in ("verbose", "error"):
            text = (event.get("stdout") or "").strip().splitlines()
            text = text[0].strip() if text else ""  # an "error" event goes on with a traceback
            if text.startswith(("[ERROR]", "ERROR!")):
                message = text.split(":", 1)[-1].strip() if text.startswith("[ERROR]") else text[6:].strip()
                self.errors.append(message)
                if match := _UNPARSED_ERROR.match(message):
                    self.unparsed.append(match["source"].strip())
            else:
                self._inventory_line(text)
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"):
            self._host_event(kind, data)

    def _inventory_line(self, text: str) -> None:
        if match := _UNPARSED.search(text):
            self.unparsed.append(match["source"])
        elif _NOTHING_PARSED in text:
            self.nothing_parsed = True
        elif match := _PLUGIN_FAILED.search(text):
            message = match["message"].strip().removeprefix("Failed to parse inventory: ")
            self.plugin_errors.setdefault(match["plugin"], message)
        elif match := _ORIGIN.match(text):
            self.origins.append((match["path"], match["line"], match["column"]))
        elif match := _UNDECODABLE.search(text):
            self.undecodable.append(match["path"])
        elif match := _GROUP_SKIPPED.search(text):
            self.group_warnings.append(match[0])

    def inventory_problem(self) -> str | None:
        """Why ansible had no inventory to run on, when that is why (else None)."""
        binary = [path for path in self.undecodable if path in self.unparsed or not self.unparsed]
        if binary:
            return f"{'inventory ' if binary[0] in self.unparsed else ''}{binary[0]} is not UTF-8 text (a binary file?)"
        if not self.unparsed and not self.nothing_parsed:
            return None
        source = self.unparsed[0] if self.unparsed else "the inventory"
        suffix = PurePath(source).suffix.lower()
        preferred = [p for p in _PLUGIN_FOR.get(suffix, ()) if p in self.plugin_errors]
        if "auto" in preferred and not self.plugin_errors["auto"].startswith(("no root 'plugin' key",
                                                                              "YAML parsing failed")):
            preferred.insert(0, "auto")  # the config of an inventory plugin: that plugin's complaint
        plugin = (preferred or list(self.plugin_errors) or [None])[0]
        detail = self.plugin_errors.get(plugin) if plugin else None
        where = next((f" (line {line}, column {column})" for path, line, column in self.origins
                      if path == source and plugin in ("yaml", "auto")), "")  # the YAML parser's position
        if not detail:
            return f"inventory {source} could not be parsed"
        as_what = {"auto": "an inventory plugin config", "yaml": "YAML", "ini": "INI",
                   "toml": "TOML"}.get(plugin, f"the {plugin} plugin")
        detail = detail.removeprefix("YAML parsing failed: ").rstrip(".")
        return f"inventory {source} could not be parsed as {as_what}: {detail}{where}"

    def _host_event(self, kind: str, data: dict) -> None:
        host = data.get("host")
        if not host:
            return
        self.hosts.setdefault(host, None)
        task = str(data.get("task") or "").strip()
        self.last_task[host] = task
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            fact = (res.get("ansible_facts") or {}).get(RESULT_FACT)
            if isinstance(fact, dict):
                self.results[host] = fact
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.failures[host] = {"task": task, "message": _message(res, "failed")}
        elif kind == "runner_on_unreachable":
            self.unreachable[host] = {"task": task, "message": _message(res, "unreachable")}


def _message(res: dict, fallback: str) -> str:
    msg = res.get("msg")
    if not msg and res.get("stderr"):
        msg = res["stderr"]
    if not msg:
        return fallback
    return " ".join(str(msg).split())


@dataclass
class Summary:
    scenario: str
    hosts: dict[str, dict]
    outcome: str
    exit_code: ExitCode
    broken: set[str] = field(default_factory=set)  # hosts whose run broke (no usable result)

    def as_dict(self, artifacts=None) -> dict:
        return {
            "scenario": self.scenario,
            "outcome": self.outcome,
            "exit_code": int(self.exit_code),
            "hosts": self.hosts,
            "artifacts": str(artifacts) if artifacts is not None else None,
        }

    def diagnose_exit_code(self) -> ExitCode:
        """``runbook diagnose``: 0 when every host was diagnosed, whatever was found."""
        outcomes = {self.hosts[h]["outcome"] for h in self.broken}
        if FAILED in outcomes:
            return ExitCode.FAILED
        if UNREACHABLE in outcomes:
            return ExitCode.UNAVAILABLE
        return ExitCode.REMEDIATED


def summarize(
    collector: Collector, scenario: str, service: str | None = None, check: bool = False, rc: int = 0
) -> Summary:
    """Per-host results and the overall outcome. Raises when no host ran at all.

    ``rc`` is ansible-playbook's exit status: it only matters when no host ran.
    """
    stats = collector.stats or {}
    hosts = dict(collector.hosts)
    for key in ("processed", "failures", "dark"):
        for host in stats.get(key) or {}:
            hosts.setdefault(host, None)
    if not hosts:
        _raise_nothing_ran(collector, rc)
    if collector.stats is not None:
        failed, dark = set(stats.get("failures") or {}), set(stats.get("dark") or {})
    else:
        failed, dark = set(collector.failures), set(collector.unreachable)

    entries: dict[str, dict] = {}
    broken: set[str] = set()
    for host in sorted(hosts):
        base = {"scenario": scenario, "service": service, "host": host}
        result = collector.results.get(host)
        problem = collector.unreachable.get(host) if host in dark else collector.failures.get(host)
        if result is not None:
            entry = _normalise(result, base, check)
            if entry["outcome"] not in REPORTED:
                entry["message"] = f"the playbook reported an unknown outcome {entry['outcome']!r}: {entry['message']}"
                entry["outcome"] = FAILED
                broken.add(host)
            elif (host in failed or host in dark) and entry["outcome"] not in (FAILED, ESCALATE):
                detail = problem["message"] if problem else "a task failed"
                entry["message"] = f"task {(problem or {}).get('task', '?')!r} failed after the result: {detail}"
                entry["outcome"] = FAILED
                broken.add(host)
        elif host in dark:
            entry = _made(base, UNREACHABLE, problem, check, "unreachable")
            broken.add(host)
        elif host in failed:
            entry = _made(base, FAILED, problem, check, "failed")
            broken.add(host)
        else:
            last = collector.last_task.get(host) or "?"
            entry = _made(base, FAILED, {"task": last, "message": f"ended without a result (last task: {last})"},
                          check, "failed")
            broken.add(host)
        entries[host] = entry
    outcome, code = overall(rank(entry) for entry in entries.values())
    if outcome in (INVALID, UNAVAILABLE):  # reported as failed; the exit code says why
        outcome = FAILED
    return Summary(scenario=scenario, hosts=entries, outcome=outcome, exit_code=code, broken=broken)


def _normalise(result: dict, base: dict, check: bool) -> dict:
    entry = {**base, **{k: v for k, v in result.items() if v is not None}}
    entry["outcome"] = str(entry.get("outcome") or "")
    entry["message"] = str(entry.get("message") or "")
    for key in ("findings", "actions"):
        value = entry.get(key) or []
        entry[key] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    for key in ("verification", "evidence"):
        if not isinstance(entry.get(key), dict):
            entry[key] = {}
    entry["check_mode"] = bool(entry.get("check_mode", check))
    return entry


def _made(base: dict, outcome: str, problem: dict | None, check: bool, fallback: str) -> dict:
    problem = problem or {}
    return {
        **base,
        "outcome": outcome,
        "message": problem.get("message") or fallback,
        "task": problem.get("task"),
        "findings": [],
        "actions": [],
        "verification": {},
        "evidence": {},
        "check_mode": check,
    }


def _raise_nothing_ran(collector: Collector, rc: int) -> None:
    problem = collector.inventory_problem()
    if problem:
        raise InventoryUnusable(f"{problem}: nothing was run")
    text = " ".join(collector.errors)
    if collector.no_hosts_matched or any(marker in text.lower() for marker in _NO_HOSTS_TEXT):
        text = text or " ".join(collector.group_warnings[:1])
        raise NoHostsMatched(f"no host matched: {text}" if text else "no host matched")
    if any(marker in text.lower() for marker in _VAULT_LOCKED):
        raise VaultLocked(f"the inventory holds vault-encrypted vars and no vault password was given: {text}: "
                          "nothing was run")
    if text:
        raise RunBroken(f"ansible-playbook stopped before any host ran: {text}")
    if rc:
        raise RunBroken(f"ansible-playbook exited with status {rc} before any host ran")
    raise NoHostsMatched("no host matched")
