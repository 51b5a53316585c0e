"""Bad input never crashes and output cannot be abused: a table of bad command lines.

Each case runs ``python -m runbook_remediation ...`` as a user does (a child process,
stdin not a TTY, no lab: ``RUNBOOK_LAB_NAME`` is a test name and ``DOCKER_HOST`` points
at nothing) with its own state directory, and must:

- exit 2 (bad input) or 5 (a prerequisite unavailable), as the case says;
- say so on stderr in ONE line, ``runbook: error: ...``, optionally followed by the
  CLI's one ``hint: ...`` line (``Terminal.error``) and nothing else: no traceback, no
  multi-line dump. Only where ansible-playbook has to run to find out (an inventory it
  cannot parse, a ``--limit`` matching nothing) may progress lines (``runbook: ...``)
  come first;
- show no secret it was given (a webhook token, a password in a URL);
- let no control character through (an ESC from a title, a scenario name, a URL).

Where a command needs an inventory, it gets one in the case's directory whose hosts
nobody answers for; every case stops at checking its input.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-T0ken-4242"  # seeded into every URL, token and password below
ESC = "\x1b]0;pwned\x07"  # retitles a terminal that prints it
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
BAD = 2
UNAVAILABLE = 5
TIMEOUT = 180


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Case:
    """One bad input. ``argv`` and ``env`` values may name the case's files: {inv}
    (a good inventory of unreachable hosts), {broken} (broken YAML), {binary}, {ini}
    (broken INI), {half} (INI with a good host line before the broken one), {deep}
    (deeply nested JSON), {latin1} (a non-UTF-8 vars file),
    {notdb} (a file that is no database), {nonutf_matrix}, {broken_matrix}, {pm}
    (an existing file), {listvars} (a YAML list), {dir} (the case's directory), {incident} (an open incident,
    with ``setup="incident"``; resolved with ``setup="resolved"``), {closed} (a port
    nobody listens on)."""

    id: str
    argv: tuple[str, ...]
    code: int = BAD
    env: dict = field(default_factory=dict)
    setup: str | None = None
    progress: bool = False  # ansible-playbook runs first: progress lines may precede the error


def case(id_: str, *argv: str, **kwargs) -> Case:
    return Case(id_, tuple(argv), **kwargs)


INC = "INC[/]"  # an incident id that is rich markup

CASES = [
    # --- run -------------------------------------------------------------------------------
    case("run-scenario-markup", "run", "x[/]"),
    case("run-scenario-markup-open-tag", "run", "[bold red]boom"),
    case("run-scenario-escape", "run", f"x{ESC}"),
    case("run-scenario-empty", "run", ""),
    case("run-limit-markup", "run", "service-down", "-i", "{inv}", "-l", "zz[/]", "--check", progress=True),
    case("run-limit-empty", "run", "service-down", "-i", "{inv}", "-l", "", "--check"),
    case("run-inventory-missing", "run", "service-down", "-i", "{dir}/nope.yml", "--check"),
    case("run-no-inventory-no-lab", "run", "service-down", "--check"),
    case("run-inventory-broken-yaml", "run", "service-down", "-i", "{broken}", "--check", progress=True),
    case("run-inventory-binary", "run", "service-down", "-i", "{binary}", "--check", progress=True),
    case("run-inventory-broken-ini", "run", "service-down", "-i", "{ini}", "--check", progress=True),
    # ansible-core alone would run on web-1, the host the parser took before it failed.
    case("run-inventory-half-ini", "run", "service-down", "-i", "{half}", "--check", progress=True),
    case("run-extra-vars-no-equals", "run", "service-down", "-i", "{inv}", "-e", "novalue"),
    case("run-extra-vars-empty", "run", "service-down", "-i", "{inv}", "-e", " "),
    case("run-extra-vars-bad-name", "run", "service-down", "-i", "{inv}", "-e", '{"1x": 1}'),
    case("run-extra-vars-markup-name", "run", "service-down", "-i", "{inv}", "-e", "x[/]=1"),
    case("run-extra-vars-broken-json", "run", "service-down", "-i", "{inv}", "-e", '{"a": ['),
    case("run-extra-vars-not-a-mapping", "run", "service-down", "-i", "{inv}", "-e", "@{listvars}"),
    case("run-extra-vars-unbalanced-quote", "run", "service-down", "-i", "{inv}", "-e", "a='b"),
    case("run-extra-vars-file-missing", "run", "service-down", "-i", "{inv}", "-e", "@{dir}/nope.yml"),
    case("run-extra-vars-deep-json", "run", "service-down", "-i", "{inv}", "-e", "@{deep}"),
    case("run-extra-vars-deep-inline", "run", "service-down", "-i", "{inv}", "-e",
         '{"a": ' + "[" * 20000 + "]" * 20000 + "}"),
    case("run-extra-vars-not-utf8", "run", "service-down", "-i", "{inv}", "-e", "@{latin1}"),
    case("run-extra-vars-confirm", "run", "service-down", "-i", "{inv}", "-e", "runbook_confirm=true"),
    case("run-service-empty", "run", "service-down", "-i", "{inv}", "--service", " "),
    case("run-service-disagrees", "run", "service-down", "-i", "{inv}", "--service", "a", "-e", "service=b"),
    case("run-timeout-zero", "run", "service-down", "-i", "{inv}", "--timeout", "0"),
    case("run-timeout-not-a-number", "run", "service-down", "-i", "{inv}", "--timeout", "soon"),
    case("run-incident-empty", "run", "service-down", "-i", "{inv}", "--check", "--incident", " "),
    case("run-incident-markup", "run", "service-down", "-i", "{inv}", "--check", "--incident", INC),
    case("run-destructive-without-tty", "run", "db-restore", "-i", "{inv}"),
    case("run-output-yaml", "run", "service-down", "-o", "yaml"),
    case("run-webhook-env-bad-acts-first", "run", "service-down", "-i", "{inv}", "-y",
         env={"RUNBOOK_WEBHOOK_URL": f"http://hooks.example:abc/{SECRET}"}),
    # --- diagnose --------------------------------------------------------------------------
    case("diagnose-scenario-markup", "diagnose", "y[/]"),
    case("diagnose-limit-empty", "diagnose", "service-down", "-i", "{inv}", "-l", " "),
    case("diagnose-inventory-env-broken", "diagnose", "service-down", env={"RUNBOOK_INVENTORY": "{broken}"},
         progress=True),
    case("diagnose-inventory-env-missing", "diagnose", "service-down", env={"RUNBOOK_INVENTORY": "{dir}/nope"}),
    case("diagnose-incident-env-markup", "diagnose", "service-down", "-i", "{inv}",
         env={"RUNBOOK_INCIDENT": INC}),
    case("diagnose-runs-keep-env", "diagnose", "service-down", "-i", "{inv}", env={"RUNBOOK_RUNS_KEEP": "many"}),
    # --- list and the root group -----------------------------------------------------------
    case("list-extra-argument-escape", "list", ESC),
    case("list-output-yaml", "list", "-o", "yaml"),
    case("root-output-env-yaml", "list", env={"RUNBOOK_OUTPUT": "yaml"}),
    case("root-verbose-env-maybe", "list", env={"RUNBOOK_VERBOSE": "maybe"}),
    case("root-debug-env-maybe", "list", env={"RUNBOOK_DEBUG": "maybe"}),
    case("root-unknown-command", "frobnicate"),
    case("root-unknown-command-escape", f"x{ESC}"),
    case("root-output-without-value", "--output"),
    case("root-unknown-option", "--colour", "list"),
    case("list-collection-missing", "list", code=UNAVAILABLE, env={"RUNBOOK_COLLECTION_ROOT": "{dir}/nope"}),
    # --- triage ----------------------------------------------------------------------------
    case("triage-alertmanager-unparsable", "triage", "--no-open", "--alertmanager", f"http://[::1/{SECRET}"),
    case("triage-alertmanager-bad-port-password", "triage", "--no-open", "--alertmanager",
         f"http://admin:{SECRET}@127.0.0.1:abc/"),
    case("triage-prometheus-not-http", "triage", "--no-open", "--prometheus", f"ftp://prom.example/{SECRET}"),
    case("triage-alertmanager-env-markup", "triage", "--no-open", env={"RUNBOOK_ALERTMANAGER_URL": "x[/]"}),
    case("triage-matrix-missing", "triage", "--no-open", "--alertmanager", "http://127.0.0.1:{closed}",
         "--matrix", "{dir}/nope.yml"),
    case("triage-matrix-broken-yaml", "triage", "--no-open", "--alertmanager", "http://127.0.0.1:{closed}",
         "--matrix", "{broken_matrix}"),
    case("triage-matrix-env-not-utf8", "triage", "--no-open", "--alertmanager", "http://127.0.0.1:{closed}",
         env={"RUNBOOK_SEVERITY_MATRIX": "{nonutf_matrix}"}),
    case("triage-inventory-missing", "triage", "--no-open", "-i", "{dir}/nope.yml"),
    case("triage-run-without-tty", "triage", "--run"),
    case("triage-notify-space", "triage", "--alertmanager", "http://127.0.0.1:{closed}", "--notify",
         f"https://hooks.example/a b/{SECRET}"),
    case("triage-webhook-env-userinfo", "triage", "--alertmanager", "http://127.0.0.1:{closed}",
         env={"RUNBOOK_WEBHOOK_URL": f"https://user:{SECRET}@hooks.example/x"}),
    # --- incident --------------------------------------------------------------------------
    case("incident-open-title-empty", "incident", "open", "", "--no-notify"),
    case("incident-open-title-blank", "incident", "open", " \t ", "--no-notify"),
    case("incident-open-severity-bad", "incident", "open", "t", "--severity", "P9"),
    case("incident-open-detected-at-markup", "incident", "open", "t", "--detected-at", "x[/]", "--no-notify"),
    case("incident-open-detected-at-escape", "incident", "open", "t", "--detected-at", ESC, "--no-notify"),
    case("incident-open-scenario-markup", "incident", "open", "t", "--scenario", "x[/]", "--no-notify"),
    case("incident-open-scenario-empty", "incident", "open", "t", "--scenario", "", "--no-notify"),
    case("incident-open-host-empty", "incident", "open", "t", "--host", "web-1", "--host", "", "--no-notify"),
    case("incident-open-commander-empty", "incident", "open", "t", "--commander", " ", "--no-notify"),
    case("incident-open-webhook-ipv6", "incident", "open", "t", "--notify", f"http://[::1/hook/{SECRET}"),
    case("incident-open-webhook-space", "incident", "open", "t", "--notify", f"https://hooks.example/a b/{SECRET}"),
    case("incident-open-webhook-port", "incident", "open", "t", "--notify", f"https://hooks.example:abc/{SECRET}"),
    case("incident-open-webhook-port-range", "incident", "open", "t", "--notify",
         f"https://hooks.example:99999/{SECRET}"),
    case("incident-open-webhook-userinfo", "incident", "open", "t", "--notify",
         f"https://hook:{SECRET}@hooks.example/x"),
    case("incident-open-webhook-scheme", "incident", "open", "t", "--notify", f"ftp://hooks.example/{SECRET}"),
    case("incident-open-webhook-control", "incident", "open", "t", "--notify",
         f"https://hooks.example/{SECRET}{ESC}"),
    case("incident-open-webhook-env-ipv6", "incident", "open", "t",
         env={"RUNBOOK_WEBHOOK_URL": f"http://[::1/hook/{SECRET}"}),
    case("incident-update-markup", "incident", "update", INC, "--note", "x"),
    case("incident-update-empty-id", "incident", "update", "", "--note", "x"),
    case("incident-update-nothing", "incident", "update", "{incident}", setup="incident"),
    case("incident-update-status-resolved", "incident", "update", "{incident}", "--status", "resolved",
         setup="incident"),
    case("incident-update-status-bogus", "incident", "update", "{incident}", "--status", "bogus", setup="incident"),
    case("incident-update-commander-empty", "incident", "update", "{incident}", "--commander", "",
         setup="incident"),
    case("incident-update-webhook-env-space", "incident", "update", "{incident}", "--note", "x",
         env={"RUNBOOK_WEBHOOK_URL": f"https://hooks.example/{SECRET} x"}, setup="incident"),
    case("incident-ack-markup", "incident", "ack", INC),
    case("incident-resolve-markup", "incident", "resolve", INC, "--no-notify"),
    case("incident-resolve-already", "incident", "resolve", "{incident}", "--no-notify", setup="resolved"),
    case("incident-resolve-webhook-port", "incident", "resolve", "{incident}", "--notify",
         f"http://hooks.example:0/{SECRET}", setup="incident"),
    case("incident-show-markup", "incident", "show", INC),
    case("incident-show-escape", "incident", "show", f"INC{ESC}"),
    case("incident-show-empty", "incident", "show", ""),
    case("incident-notify-kind-bogus", "incident", "notify", "{incident}", "--kind", "bogus", setup="incident"),
    case("incident-notify-markup", "incident", "notify", INC),
    case("incident-list-extra-argument", "incident", "list", "--all", "more"),
    case("incident-list-timeline-not-a-db", "incident", "list", code=UNAVAILABLE,
         env={"RUNBOOK_TIMELINE_DB": "{notdb}"}),
    case("incident-list-timeline-a-directory", "incident", "list", code=UNAVAILABLE,
         env={"RUNBOOK_TIMELINE_DB": "{dir}"}),
    case("incident-list-state-dir-a-file", "incident", "list", code=UNAVAILABLE,
         env={"RUNBOOK_STATE_DIR": "{notdb}"}),
    # --- postmortem ------------------------------------------------------------------------
    case("postmortem-output-yaml", "postmortem", "{incident}", "-o", "yaml", setup="incident"),
    case("postmortem-markup", "postmortem", INC),
    case("postmortem-empty", "postmortem", ""),
    case("postmortem-file-exists", "postmortem", "{incident}", "--file", "{pm}", setup="incident"),
    case("postmortem-file-no-directory", "postmortem", "{incident}", "--file", "{dir}/nope/pm.md",
         setup="incident"),
    # --- watch -----------------------------------------------------------------------------
    case("watch-alertmanager-basic-auth-down", "watch", "-i", "{inv}", "--alertmanager",
         f"http://admin:{SECRET}@127.0.0.1:" + "{closed}/", code=UNAVAILABLE),
    case("watch-alertmanager-unparsable", "watch", "-i", "{inv}", "--alertmanager", f"http://[::1/{SECRET}"),
    case("watch-alertmanager-not-http", "watch", "-i", "{inv}", "--alertmanager", "ftp://am.example/"),
    case("watch-inventory-missing", "watch", "-i", "{dir}/nope.yml", "--alertmanager", "http://127.0.0.1:1"),
    case("watch-no-inventory-no-lab", "watch"),
    case("watch-port-zero", "watch", "--port", "0"),
    case("watch-drain-negative", "watch", "--drain", "-1"),
    # --- breaker ---------------------------------------------------------------------------
    case("breaker-reset-markup", "breaker", "reset", "x[/]"),
    case("breaker-reset-empty-scenario", "breaker", "reset", ""),
    case("breaker-status-recent-negative", "breaker", "status", "--recent", "-1"),
    case("breaker-status-envelope-not-a-db", "breaker", "status", code=UNAVAILABLE,
         env={"RUNBOOK_ENVELOPE_DB": "{notdb}"}),
    # --- lab -------------------------------------------------------------------------------
    case("lab-up-hosts-zero", "lab", "up", "--hosts", "0"),
    case("lab-up-hosts-not-a-number", "lab", "up", "--hosts", "two"),
    case("lab-status-name-markup", "lab", "status", env={"RUNBOOK_LAB_NAME": "Bad[/]"}),
    case("lab-status-output-yaml", "lab", "status", "-o", "yaml"),
    case("lab-break-host-empty", "lab", "break", "crash", "--host", ""),
    case("lab-break-host-blank", "lab", "break", "crash", "--host", "  "),
    case("lab-break-fault-empty", "lab", "break", "", "--host", "lab-1"),
    case("lab-break-fault-markup", "lab", "break", "x[/]", "--host", "lab-1"),
    case("lab-break-param-no-equals", "lab", "break", "crash", "--host", "lab-1", "-p", "rate"),
    case("lab-break-lab-not-up", "lab", "break", "crash", "--host", f"lab-1{ESC}"),
    case("lab-heal-host-empty", "lab", "heal", "--host", ""),
    case("lab-down-name-bad", "lab", "down", env={"RUNBOOK_LAB_NAME": "UPPER"}),
]


def _files(work: Path) -> dict[str, str]:
    """The case's files (see :class:`Case`)."""
    python = sys.executable
    files = {
        "inv": work / "inventory.yml",
        "broken": work / "broken.yml",
        "binary": work / "binary.yml",
        "ini": work / "broken.ini",
        "half": work / "half.ini",
        "deep": work / "deep.json",
        "latin1": work / "vars-latin1.yml",
        "notdb": work / "not-a-database",
        "nonutf_matrix": work / "matrix-latin1.yml",
        "broken_matrix": work / "matrix-broken.yml",
        "pm": work / "pm.md",
        "listvars": work / "vars-list.yml",
    }
    files["inv"].write_text(
        "all:\n  hosts:\n    web-1:\n      ansible_host: 127.0.0.1\n"
        f"      ansible_port: {closed_port()}\n      ansible_user: nobody\n"
        f"      ansible_python_interpreter: {python}\n", encoding="utf-8")
    files["broken"].write_text("all:\n  hosts:\n    web-1: [\n", encoding="utf-8")
    files["binary"].write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    files["ini"].write_text("[web\nweb-1\n", encoding="utf-8")
    files["half"].write_text("web-1 ansible_connection=local\n[web\nweb-2\n", encoding="utf-8")
    files["deep"].write_text('{"a": ' + "[" * 100000 + "]" * 100000 + "}", encoding="utf-8")
    files["latin1"].write_bytes("service: caf\u00e9\n".encode("latin-1"))
    files["notdb"].write_text("this is not SQLite\n" * 100, encoding="utf-8")
    files["nonutf_matrix"].write_bytes("severities:\n  P1: {name: \u00e9lev\u00e9}\n".encode("latin-1"))
    files["broken_matrix"].write_text("severities: [\n  P1\n", encoding="utf-8")
    files["pm"].write_text("an earlier post-mortem\n", encoding="utf-8")
    files["listvars"].write_text("- 1\n- 2\n", encoding="utf-8")
    return {key: str(path) for key, path in files.items()} | {"dir": str(work), "closed": str(closed_port())}


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RUNBOOK_") and k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "CI")}
    env.update({
        "RUNBOOK_STATE_DIR": str(work / "state"),
        "RUNBOOK_CACHE_DIR": str(work / "cache"),
        "RUNBOOK_COLLECTION_ROOT": str(REPO),
        "RUNBOOK_LAB_NAME": "test-bad-inputs",  # never a user's lab
        "DOCKER_HOST": f"unix://{work}/no-docker.sock",  # and no Docker engine at all
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(work / "ansible-remote"),
        "NO_COLOR": "1",
        "TERM": "dumb",
        "PYTHONWARNINGS": "ignore",
    })
    return env


def _runbook(argv, env, work: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runbook_remediation", *argv], env=env, cwd=work,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="backslashreplace",
                          timeout=TIMEOUT, check=False)


def _setup(kind: str | None, env: dict[str, str], work: Path) -> dict[str, str]:
    if kind is None:
        return {}
    opened = _runbook(["incident", "open", "disk full on web-1", "--no-notify"], env, work)
    assert opened.returncode == 0, opened.stderr
    incident = opened.stdout.strip()
    if kind == "resolved":
        resolved = _runbook(["incident", "resolve", incident, "--no-notify"], env, work)
        assert resolved.returncode == 0, resolved.stderr
    return {"incident": incident}


def _fill(text: str, values: dict[str, str]) -> str:
    """``text`` with its ``{name}`` placeholders filled in (JSON braces stay as they are)."""
    return re.sub(r"\{(\w+)\}", lambda match: values.get(match[1], match[0]), text)


def _run(item: Case, work: Path):
    """(the finished process, the case's directory), or the exception that stopped it."""
    try:
        work.mkdir(parents=True)
        values = _files(work)
        env = _env(work)
        values |= _setup(item.setup, env, work)
        env.update({key: _fill(value, values) for key, value in item.env.items()})
        argv = [_fill(arg, values) for arg in item.argv]
        return _runbook(argv, env, work), work
    except Exception as exc:  # noqa: BLE001 - reported by the case's own test
        return exc


def _selected(session: pytest.Session) -> list[Case]:
    wanted = []
    for test in session.items:
        params = getattr(getattr(test, "callspec", None), "params", {})
        if isinstance(params.get("item"), Case) and test.path == Path(__file__):
            wanted.append(params["item"])
    return wanted


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict:
    """Every selected case, run a few at a time (each is a process of its own)."""
    base = tmp_path_factory.mktemp("bad-inputs")
    wanted = _selected(request.session)
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        futures = {item.id: pool.submit(_run, item, base / item.id) for item in wanted}
        return {name: future.result() for name, future in futures.items()}


def _params():
    for item in CASES:
        yield pytest.param(item, id=item.id)


def test_the_table_is_big_and_distinct():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({(c.argv, tuple(sorted(c.env.items())), c.setup) for c in CASES}) == len(CASES)
    commands = {c.argv[0] if c.argv and not c.argv[0].startswith("-") else "" for c in CASES}
    assert commands >= {"run", "diagnose", "list", "triage", "incident", "postmortem", "watch", "breaker", "lab"}
    for sub in ("open", "update", "resolve", "show", "list", "ack", "notify"):
        assert any(c.argv[:2] == ("incident", sub) for c in CASES), sub
    for sub in ("up", "status", "break", "heal", "down"):
        assert any(c.argv[:2] == ("lab", sub) for c in CASES), sub
    assert {"RUNBOOK_WEBHOOK_URL", "RUNBOOK_INVENTORY", "RUNBOOK_OUTPUT"} <= {k for c in CASES for k in c.env}


@pytest.mark.parametrize("item", list(_params()))
def test_bad_input_is_one_line_and_its_exit_code(item: Case, outcomes):
    outcome = outcomes[item.id]
    if isinstance(outcome, Exception):
        raise outcome
    result, work = outcome
    shown = f"argv={item.argv!r} env={item.env!r}\nexit {result.returncode}\nstdout:\n{result.stdout}\n" \
            f"stderr:\n{result.stderr}"
    output = result.stdout + result.stderr
    assert "Traceback" not in output, shown
    assert SECRET not in output, shown
    assert not CONTROL.search(output), shown
    assert result.returncode == item.code, shown

    lines = result.stderr.splitlines()
    errors = [n for n, line in enumerate(lines) if line.startswith("runbook: error: ")]
    assert len(errors) == 1, shown
    before, after = lines[: errors[0]], lines[errors[0] + 1:]
    if item.progress:  # ansible-playbook ran: only progress ("runbook: ...") before the error
        assert all(line.startswith("runbook: ") for line in before), shown
    else:
        assert not before, shown
    assert after == [] or (len(after) == 1 and after[0].startswith("hint: ")), shown
    assert not (work / "yaml").exists(), "`-o yaml` wrote a file named yaml"
