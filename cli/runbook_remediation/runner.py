"""The one place that builds ansible-runner arguments and runs a scenario playbook.

Everything a scenario does happens in the playbook; this module only starts
``ansible-playbook`` through ansible-runner, shows live progress on stderr, and hands
every event to the callers (``results.Collector`` turns them into per-host results).

Choices, and why:

- ``quiet=True``: ansible's own output goes only to ``artifacts/<id>/stdout``; the
  terminal gets our rendering of the events. ``json_mode`` is left off: the events our
  ``event_handler`` receives are the same with or without it (it only changes what is
  written to the stdout stream and file), and a text ``stdout`` file is what an engineer
  opens when a run failed.
- ``cancel_callback``: SIGINT/SIGTERM set a flag (the previous handlers are restored
  after the run). ansible-playbook runs in its own session on a pty, so Ctrl-C reaches
  only us; ansible-runner polls the flag, we kill ansible's process tree, it reaps the rest.
  What already runs on a target through a connection (ssh, ``docker exec``) is not ours
  to kill: ssh's remote side gets a hangup, a ``docker exec`` process runs to its end.
- ``timeout``: enforced by the same callback (ansible-runner's own job timeout would
  leave ansible's workers running, see :class:`_Stop`); the run ends with status ``timeout``.
- ``private_data_dir``: ``$RUNBOOK_STATE_DIR/runs/<timestamp>-<scenario>`` (mode 0700),
  one per run, kept so every run can be looked at afterwards.

The environment (an allow-list)
    One policy for every child the CLI starts (ansible-playbook here, ansible-rulebook in
    ``runbook watch``): :func:`child_env`. A variable inherited from ours is kept only
    when it is on :data:`ALLOWED_ENV` or starts with one of :data:`ALLOWED_PREFIXES`, and
    a ``RUNBOOK_*`` one only when its name names no secret (the collection's one rule,
    :mod:`runbook_remediation.secret_names`); ours (:func:`our_env`) win. Nothing touches
    this process's own ``os.environ``. ansible-runner seeds the child's environment with
    a copy of ``os.environ`` (see ``BaseConfig.prepare_env``) and writes the whole of it
    to ``artifacts/<id>/command``. So the runner is prepared first
    (``interface.init_runner``), then its environment is replaced before the run by
    :func:`child_env` of what it prepared: variables ansible-runner itself sets or changes
    (its callback plugin, ``AWX_ISOLATED_DATA_DIR``, ``RUNNER_*``, the fact cache) stay.
    ansible-runner's default of ``ANSIBLE_HOST_KEY_CHECKING=False`` is removed again
    unless the user set it, so SSH host keys are checked as ansible-playbook would check
    them. We always set ``ANSIBLE_COLLECTIONS_PATH`` (the collection we found first),
    ``ANSIBLE_NOCOLOR=1``, ``ANSIBLE_RETRY_FILES_ENABLED=0``, and put the directory of the
    ansible-playbook that belongs to this Python first on ``PATH``;
    ``ANSIBLE_STDOUT_CALLBACK`` is ansible-runner's (the user's is kept as
    ``ORIGINAL_STDOUT_CALLBACK``).

Secrets
    Never put a secret in ``extravars`` or the environment: ansible-runner writes both to
    disk (``env/extravars``, ``env/envvars`` and ``artifacts/<id>/command``). Secrets
    belong in the inventory's vault-encrypted vars or a lookup the playbook makes. An
    extra var that holds one anyway (its name says password, token, api_key, secret...
    by the collection's one rule, or masking changes its value: see
    :func:`split_secrets`) is kept out of the run directory: it goes to a 0600 file in a
    private temporary directory (memory-backed when the machine has one), passed as
    ``-e @FILE`` and removed when the run ends.
    ``RUNBOOK_*`` variables that hold secrets (the webhook URL, tokens) are never passed.

The incident timeline
    :func:`timeline_env` enables the collection's ``timeline`` callback (appended to the
    user's ``ANSIBLE_CALLBACKS_ENABLED``) and tells it the run id, the incident, the
    entrance (``cli``) and the store's path, so the CLI's records and the callback's land
    on one run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from rich.markup import escape

from runbook_remediation import secret_names
from runbook_remediation.errors import BadInput, Unavailable

# User environment passed on to the children (ansible-playbook, ansible-rulebook);
# everything else stays behind. JAVA_HOME and DROOLS_JPY_* are for ansible-rulebook's JVM.
ALLOWED_ENV = frozenset(
    {
        "PATH", "HOME", "USER", "LANG", "TERM", "TZ", "SSH_AUTH_SOCK",
        "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "KUBECONFIG",
        "JAVA_HOME",
    }
)
ALLOWED_PREFIXES = ("LC_", "ANSIBLE_", "RUNBOOK_", "DROOLS_JPY_")
# Set by us from the collection we found, never inherited.
OWN_ENV = frozenset({"ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"})
# RUNBOOK_* variables whose names name a secret are ours but secret (ansible-runner writes
# the child's environment to artifacts/<id>/command); these only look like one (the
# callback's masking patterns).
NOT_SECRET_ENV = frozenset({"RUNBOOK_SECRET_PATTERNS"})
# Never inherited: the shared state DSN may carry a password (a key=value DSN slips past
# the URL check). A child gets shared_state.child_env()'s password-free DSN in ``ours``.
NEVER_INHERITED = frozenset({"RUNBOOK_STATE_DSN", "PGPASSWORD", "PGPASSFILE"})
TIMELINE_CALLBACK = "runbook.remediation.timeline"
# How often (seconds) ansible-runner looks at the cancel flag and the timeout when
# ansible-playbook is silent (its default is 5 s, too slow for Ctrl-C).
POLL_SECONDS = 0.2

EventHandler = Callable[[dict], None]


@dataclass(frozen=True)
class Request:
    """What to run: validated by :func:`validate` before anything starts."""

    scenario: str  # kebab-case name, used to name the run directory
    playbook: str  # FQCN, e.g. runbook.remediation.service_down
    inventory: Path
    limit: str | None = None
    extravars: dict = field(default_factory=dict)
    check: bool = False
    timeout: int | None = None
    # Extra vars that hold secrets: never written into the run directory (see Secrets).
    secret_vars: dict = field(default_factory=dict)
    # Set in the child on top of our_env() (the timeline callback's settings).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """How ansible-playbook ended (not what it found: that is ``results``)."""

    status: str  # successful | failed | timeout | canceled
    rc: int
    artifacts: Path  # <private_data_dir>/artifacts/<ident>: stdout, job_events, command
    private_data_dir: Path
    elapsed: float

    @property
    def cancelled(self) -> bool:
        return self.status == "canceled"

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"


# --- input ------------------------------------------------------------------------------

def parse_extra_vars(values: Iterable[str]) -> dict:
    """``-e`` values as ansible-playbook reads them, merged left to right.

    ``k=v [k2=v2 ...]`` (values stay strings, as ansible keeps them), a JSON/YAML object
    ``{...}``, or ``@file.yml`` holding one.
    """
    merged: dict = {}
    for value in values:
        text = value.strip()
        if not text:
            raise BadInput("-e takes KEY=VALUE, a JSON/YAML object or @FILE, not an empty string")
        if text.startswith("@"):
            merged.update(_vars_file(Path(text[1:]).expanduser()))
        elif text.startswith("{"):
            merged.update(_vars_object(text, f"-e {value!r}"))
        else:
            merged.update(_key_values(text))
    return merged


def _vars_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"-e @{path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise BadInput(f"-e @{path}: cannot read it ({exc.strerror or exc})") from exc
    return _vars_object(text, f"-e @{path}")


# Nesting deeper than this is no variable a playbook reads, and deep enough to exhaust
# the parser's recursion: refused as bad input.
MAX_DEPTH = 64


def _depth(value, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level


def _vars_object(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"{where} is not valid JSON/YAML: {problem}") from exc
    except RecursionError as exc:
        raise BadInput(f"{where} is nested too deeply (more than {MAX_DEPTH} levels)") from exc
    if _depth(data) > MAX_DEPTH:
        raise BadInput(f"{where} is nested too deeply (more than {MAX_DEPTH} levels)")
    if not isinstance(data, dict):
        raise BadInput(f"{where} must hold a mapping of variables, not {type(data).__name__}")
    for key in data:
        _check_name(key, where)
    return data


def _key_values(text: str) -> dict:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise BadInput(f"-e {text!r}: {exc}") from exc
    pairs = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep:
            if len(tokens) == 1:
                raise BadInput(f"-e {text!r} is not KEY=VALUE, a JSON/YAML object or @FILE")
            # Usually a value with spaces that shlex split: name the whole -e value.
            raise BadInput(f"-e {text!r}: {token!r} is not KEY=VALUE (quote a value with spaces: "
                           f"-e 'key=\"a b\"', or pass JSON: -e '{{\"key\": \"a b\"}}')")
        _check_name(key, f"-e {text!r}")
        pairs[key] = value
    return pairs


def _check_name(key, where: str) -> None:
    if not isinstance(key, str) or not key.isidentifier():
        raise BadInput(f"{where}: {key!r} is not a valid variable name")


def validate(request: Request) -> None:
    """Refuse bad input before anything runs (nothing is changed on bad input)."""
    if not request.inventory.exists():
        raise BadInput(f"inventory {request.inventory} not found")
    _check_inventory_text(request.inventory)
    if request.limit is not None and not request.limit.strip():
        raise BadInput("--limit is empty: name a host, a group or a pattern")
    if request.timeout is not None and request.timeout <= 0:
        raise BadInput("--timeout must be a positive number of seconds")
    _check_plain_data(request.extravars)
    _check_plain_data(request.secret_vars)


def split_secrets(extravars: Mapping, is_secret: Callable[[str, object], bool]) -> tuple[dict, dict]:
    """(plain, secret) extra vars: ``is_secret(name, value)`` decides for each top-level var."""
    plain, secret = {}, {}
    for name, value in extravars.items():
        (secret if is_secret(name, value) else plain)[name] = value
    return plain, secret


def _check_inventory_text(inventory: Path) -> None:
    """A static inventory file must be UTF-8 text. ansible-core only warns about one that
    is not and runs on whatever hosts its INI parser took from the bytes before it gave up."""
    if not inventory.is_file() or os.access(inventory, os.X_OK):  # a directory; a script may be a binary
        return
    try:
        inventory.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"inventory {inventory} is not UTF-8 text (a binary file?): nothing was run") from None
    except OSError as exc:
        raise BadInput(f"inventory {inventory} cannot be read: {exc.strerror or exc}") from None


def _check_plain_data(extravars: Mapping) -> None:
    """ansible-runner hands extra vars to ansible-playbook as JSON: dates and the like cannot pass."""
    try:
        json.dumps(extravars)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"extra vars must be plain data: {exc}") from exc


# --- environment ------------------------------------------------------------------------

def is_allowed(name: str, value: str = "") -> bool:
    """Whether the user's variable ``name`` may reach a child (ansible-playbook,
    ansible-rulebook), whose environment ansible-runner writes to its artifacts: never a
    secret-named one (``ANSIBLE_BECOME_PASS``, ``RUNBOOK_*_TOKEN``...), never a URL with
    credentials in it (``DOCKER_HOST=tcp://user:pass@host``)."""
    if name in OWN_ENV or name in NEVER_INHERITED:
        return False
    # ANSIBLE_VAULT_PASSWORD_FILE and friends name a file, not the secret itself.
    if name not in NOT_SECRET_ENV and not name.endswith("_FILE") and secret_names.is_secret_name(name):
        return False
    if _USERINFO.search(value or ""):
        return False
    return name in ALLOWED_ENV or name.startswith(ALLOWED_PREFIXES)


# scheme://user:password@host: a URL that carries its credentials.
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


def find_ansible_playbook(path: str) -> str:
    """The ansible-playbook that belongs to this Python (a venv's bin), else the first on PATH."""
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").is_file():
        return str(here)
    found = shutil.which("ansible-playbook", path=path)
    if not found:
        raise Unavailable(
            "ansible-playbook not found",
            hint="install ansible-core in the runbook environment (pip install runbook-remediation)",
        )
    return str(Path(found).parent)


def our_env(collections_path: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What the CLI always sets in the child."""
    user_path = environ.get("PATH", os.defpath)
    bin_dir = find_ansible_playbook(user_path)
    parts = [bin_dir] + [p for p in user_path.split(os.pathsep) if p]
    return {
        "PATH": os.pathsep.join(dict.fromkeys(parts)),
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # An inventory source that does not parse stops the run. By default ansible-core
        # warns and runs on the hosts the source gave before its parser failed.
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
    }


def timeline_env(run_id: str, db: Path | str, incident: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """What the ``timeline`` callback needs: enabled (after the user's own callbacks), the
    run id the CLI recorded, the incident, the entrance and the store's path."""
    enabled = [c.strip() for c in environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    if TIMELINE_CALLBACK not in enabled:
        enabled.append(TIMELINE_CALLBACK)
    env = {
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(enabled),
        "RUNBOOK_RUN_ID": run_id,
        "RUNBOOK_ENTRANCE": "cli",
        "RUNBOOK_TIMELINE_DB": str(db),
    }
    if incident:
        env["RUNBOOK_INCIDENT"] = incident
    return env


def child_env(inherited: Mapping[str, str], ours: Mapping[str, str],
              prepared: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child process's environment: the one policy of every child the CLI starts.

    A variable of ``inherited`` (our environment) passes only if :func:`is_allowed`;
    ``ours`` wins over it. ``prepared``: the environment a launcher made from
    ``inherited`` (ansible-runner's); a variable whose value equals the one in
    ``inherited`` came from our environment and is treated like it, anything the
    launcher added or changed stays. ``ANSIBLE_HOST_KEY_CHECKING`` is only what the
    user set.
    """
    env = {}
    for name, value in (inherited if prepared is None else prepared).items():
        only_inherited = name in inherited and inherited[name] == value
        if not only_inherited or is_allowed(name, value):
            env[name] = value
    for name in OWN_ENV:
        env.pop(name, None)
    if "ANSIBLE_HOST_KEY_CHECKING" not in inherited:
        env.pop("ANSIBLE_HOST_KEY_CHECKING", None)  # ansible-runner defaults it to False
    env.update(ours)
    return env


# --- the run ----------------------------------------------------------------------------

# Retention of the run directories (their artifacts hold every task's output): the
# newest RUNBOOK_RUNS_KEEP are kept, none older than RUNBOOK_RUNS_MAX_AGE_DAYS.
RUNS_KEEP = 200
RUNS_MAX_AGE_DAYS = 30.0
_RUN_DIR = re.compile(r"^\d{8}T\d{6}-[a-z0-9][a-z0-9-]*$")


def retention(environ: Mapping[str, str]) -> tuple[int, float]:
    """(keep, max age in days) from the environment; bad values are bad input."""
    try:
        keep = int(environ.get("RUNBOOK_RUNS_KEEP", RUNS_KEEP))
        days = float(environ.get("RUNBOOK_RUNS_MAX_AGE_DAYS", RUNS_MAX_AGE_DAYS))
    except ValueError as exc:
        raise BadInput("RUNBOOK_RUNS_KEEP must be a whole number and RUNBOOK_RUNS_MAX_AGE_DAYS a number of days") \
            from exc
    if keep < 1 or days <= 0:
        raise BadInput("RUNBOOK_RUNS_KEEP must be at least 1 and RUNBOOK_RUNS_MAX_AGE_DAYS more than 0")
    return keep, days


def prune_runs(base: Path, keep: int, max_age_days: float, now: float | None = None) -> list[Path]:
    """Remove run directories past the retention; returns what was removed. Only
    directories named like a run (``20261203T080000-service-down``) are ever touched."""
    if not base.is_dir():
        return []
    now = time.time() if now is None else now
    runs = sorted((p for p in base.iterdir() if p.is_dir() and not p.is_symlink() and _RUN_DIR.match(p.name)),
                  key=lambda p: p.name, reverse=True)
    removed = []
    for index, path in enumerate(runs):
        try:
            old = now - path.stat().st_mtime > max_age_days * 86400
        except OSError:
            continue
        if index >= keep or old:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def new_run_dir(base: Path, scenario: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y%m%dT%H%M%S")
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    keep, days = retention(os.environ)
    prune_runs(base, keep - 1, days)  # room for the new one
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = base / f"{stamp}-{scenario}{suffix}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return path
    raise Unavailable(f"cannot make a run directory under {base}")


class _DataDumper(yaml.SafeDumper):
    """YAML in which every string value that could be a template (it holds a ``{``) is
    ``!unsafe``: ansible-core loads it as data and never renders it (``{{ lookup('pipe',
    ...) }}`` stays text). Other strings stay plain: ansible-core 2.19 turns an unsafe
    ``"5"`` into the number 5 when it is templated, a plain one stays a string."""

    def represent_mapping(self, tag, mapping, flow_style=None):
        node = super().represent_mapping(tag, mapping, flow_style)
        for key_node, _value in node.value:  # names stay plain: only values are data
            if key_node.tag == "!unsafe":
                key_node.tag = "tag:yaml.org,2002:str"
        return node


_DataDumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "!unsafe" if "{" in value else "tag:yaml.org,2002:str", value))


def dump_vars(data: Mapping) -> str:
    """Extra vars as ansible-playbook should read them: data, never templates."""
    return yaml.dump(dict(data), Dumper=_DataDumper, sort_keys=True, allow_unicode=True)


def write_extravars(private_data_dir: Path, extravars: Mapping) -> None:
    """``env/extravars`` of the run, which ansible-runner passes as ``-e @FILE``. Written
    here, not by ansible-runner (which would also put them inline on the command line as
    JSON, where ansible-core treats every string as a trusted template)."""
    env_dir = private_data_dir / "env"
    env_dir.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(env_dir / "extravars", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(dump_vars(extravars))


def secrets_file(secret_vars: Mapping) -> Path:
    """A 0600 file of ``!unsafe`` YAML in a fresh 0700 directory outside the run directory,
    in memory when the machine offers it (``$XDG_RUNTIME_DIR``, ``/dev/shm``). The caller
    removes it."""
    base = None
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):  # noqa: S108 - a private 0700 dir inside
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            base = candidate
            break
    directory = Path(tempfile.mkdtemp(prefix="runbook-secrets-", dir=base))
    path = directory / "vars.yml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(dump_vars(secret_vars))
    return path


def remove_secrets_file(path: Path | None) -> None:
    if path is None:
        return
    shutil.rmtree(path.parent, ignore_errors=True)


def runner_kwargs(request: Request, private_data_dir: Path, ours: Mapping[str, str],
                  secret_file: Path | None = None) -> dict:
    """The arguments for ansible-runner (pure: tested without running anything)."""
    kwargs = {
        "private_data_dir": str(private_data_dir),
        "ident": private_data_dir.name,
        "playbook": request.playbook,
        "inventory": str(request.inventory.resolve()),
        "envvars": dict(ours),
        "settings": {"pexpect_timeout": POLL_SECONDS},
        "quiet": True,
        "json_mode": False,
        "rotate_artifacts": 0,
        # Facts live in memory for the run. ansible-runner's default jsonfile cache makes
        # ansible-core decode every host's facts on each task and host (~15 ms each, in the
        # single controller thread): a third of a ten-host run. Nothing reads it afterwards.
        "fact_cache_type": "memory",
    }
    if request.limit:
        kwargs["limit"] = request.limit.strip()
    # Extra vars: env/extravars, written by write_extravars (never inline, see there).
    cmdline = []
    if request.check:
        cmdline.append("--check")
    if secret_file is not None:
        cmdline += ["-e", f"@{secret_file}"]
    if cmdline:
        kwargs["cmdline"] = shlex.join(cmdline)
    # request.timeout is enforced by _Stop, not by ansible-runner's own job timeout: that
    # one kills only ansible-playbook's process group and leaves the workers running.
    return kwargs


class _Stop:
    """The ``cancel_callback``: Ctrl-C/SIGTERM or the timeout stop ansible-playbook.

    Signal handlers only set a flag (restored on exit). ansible-runner polls this object
    every :data:`POLL_SECONDS` and, once it says True, SIGKILLs ansible-playbook's process
    group. Ansible's workers ``setsid()`` into groups of their own, which that misses (a
    module's ``sleep`` would outlive the run), so the groups of every descendant of
    ansible-playbook are killed first.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, timeout: float | None = None, on_cancel: Callable[[], None] = lambda: None):
        self.reason: str | None = None  # "canceled" | "timeout"
        self.playbook_pid: int | None = None
        self._deadline = time.monotonic() + timeout if timeout else None
        self._on_cancel = on_cancel
        self._previous: dict = {}
        self._killed = False

    def event(self, event: dict) -> None:
        """Events carry ansible-playbook's pid (its callback runs in the main process)."""
        if self.playbook_pid is None and isinstance(event.get("pid"), int):
            self.playbook_pid = event["pid"]

    def _handler(self, signum, frame):
        if self.reason is None:
            self.reason = "canceled"
            self._on_cancel()

    def __call__(self) -> bool:
        if self.reason is None and self._deadline is not None and time.monotonic() > self._deadline:
            self.reason = "timeout"
        if self.reason is None:
            return False
        if not self._killed:
            self._killed = True
            kill_descendants(self.playbook_pid)
        return True

    def __enter__(self) -> _Stop:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _process_parents() -> dict[int, int]:
    """{pid: ppid} of every process we can see (/proc, else ps)."""
    parents: dict[int, int] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 1 and fields[1].isdigit():
                parents[int(entry.name)] = int(fields[1])
        return parents
    try:
        listing = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True,
                                 check=False, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return parents
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            parents[int(parts[0])] = int(parts[1])
    return parents


def kill_descendants(pid: int | None) -> list[int]:
    """SIGKILL the process groups of ``pid``'s descendants (never our own group).

    Returns the groups killed.
    """
    if not pid:
        return []
    children: dict[int, list[int]] = {}
    for child, parent in _process_parents().items():
        children.setdefault(parent, []).append(child)
    groups: set[int] = set()
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            groups.add(os.getpgid(current))
        except OSError:
            continue
    groups -= {0, 1, os.getpgrp()}
    killed = []
    for group in sorted(groups):
        try:
            os.killpg(group, signal.SIGKILL)
            killed.append(group)
        except OSError:
            continue
    return killed


def run(
    request: Request,
    collections_path: str,
    runs_dir: Path,
    handlers: Iterable[EventHandler] = (),
    on_cancel: Callable[[], None] = lambda: None,
) -> RunInfo:
    """Run the playbook; every event goes to each of ``handlers`` as it arrives."""
    from ansible_runner.interface import init_runner

    validate(request)
    inherited = dict(os.environ)
    ours = {**our_env(collections_path, inherited), **request.env}
    private_data_dir = new_run_dir(runs_dir, request.scenario)
    if request.extravars:
        write_extravars(private_data_dir, request.extravars)
    started = time.monotonic()
    secret_file = secrets_file(request.secret_vars) if request.secret_vars else None
    try:
        with _Stop(request.timeout, on_cancel) as stop:
            handlers = [stop.event, *handlers]

            def event_handler(event: dict) -> bool:
                for handler in handlers:
                    handler(event)
                return True  # keep every event in artifacts/<id>/job_events

            runner = init_runner(
                **runner_kwargs(request, private_data_dir, ours, secret_file),
                event_handler=event_handler,
                cancel_callback=stop,
            )
            runner.config.env = child_env(inherited, ours, prepared=runner.config.env)
            status, rc = runner.run()
    finally:
        remove_secrets_file(secret_file)
    return RunInfo(
        status=stop.reason or status,
        rc=rc if rc is not None else -1,
        artifacts=Path(runner.config.artifact_dir),
        private_data_dir=private_data_dir,
        elapsed=time.monotonic() - started,
    )


# --- progress ---------------------------------------------------------------------------

_HOST_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_COLOURS = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "red", "skipped": "dim",
            "ignored": "dim"}


class Progress:
    """Live progress on stderr: one line per host and task that ran (host, task, status,
    elapsed). ``verbose`` adds a header when each task starts and the skipped tasks."""

    def __init__(self, console, verbose: bool = False):
        self.console = console
        self.verbose = verbose

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            if self.verbose:
                self.console.print(f"[bold]{escape(_task_name(data))}[/bold]", markup=True)
        elif kind in _HOST_EVENTS:
            self._host_line(kind, data)

    def _host_line(self, kind: str, data: dict) -> None:
        res = data.get("res") or {}
        state = _HOST_EVENTS[kind]
        if state == "ok" and res.get("changed"):
            state = "changed"
        if state == "failed" and data.get("ignore_errors"):
            state = "ignored"
        if state == "skipped" and not self.verbose:
            return
        duration = data.get("duration")
        elapsed = f"{duration:.1f}s" if isinstance(duration, int | float) else ""
        colour = _COLOURS[state]
        task = _task_name(data)
        task = task if len(task) <= 60 else task[:59] + "…"
        line = (f"  {escape(str(data.get('host', '?'))):<14} {escape(task)}  "
                f"[{colour}]{state}[/{colour}]  [dim]{elapsed}[/dim]")
        message = first_line(res.get("msg")) if state in ("failed", "unreachable") else ""
        if message:
            line += f"\n      [{colour}]{escape(message)}[/{colour}]"
        self.console.print(line, markup=True)


def _task_name(data: dict) -> str:
    return str(data.get("task") or data.get("name") or "(unnamed task)").strip()


def first_line(value, limit: int = 300) -> str:
    """A message fit for one line of a terminal."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
