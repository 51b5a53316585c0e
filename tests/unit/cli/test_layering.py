"""The CLI's layers: shell.py registers the commands; a command imports only
commands/base.py among the commands; plain modules import no command at all."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import runbook_remediation

PACKAGE = Path(runbook_remediation.__file__).parent
COMMANDS = sorted(p for p in (PACKAGE / "commands").glob("*.py") if p.name != "__init__.py")
PLAIN = sorted(p for p in PACKAGE.rglob("*.py")
               if p.parent != PACKAGE / "commands" and p.name not in ("shell.py", "__main__.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (``from X import y`` counts as X and X.y), relative
    imports resolved."""
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _commands_imported(path: Path) -> set[str]:
    return {name for name in imported_modules(path)
            if name in ("runbook_remediation.shell", "runbook_remediation.commands")
            or name.startswith(("runbook_remediation.shell.", "runbook_remediation.commands."))}


def test_the_lists_are_not_empty():
    assert {p.stem for p in COMMANDS} >= {"base", "run", "triage", "incident", "postmortem", "watch"}
    assert {p.stem for p in PLAIN} >= {"scenarios", "incidents", "watcher", "runner", "results"}


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.stem)
def test_a_command_imports_no_other_command(path):
    # The package itself (empty), base and its members (`from ...base import Context`).
    allowed = {"runbook_remediation.commands"}
    if path.stem != "base":
        allowed.add("runbook_remediation.commands.base")
    others = {name for name in _commands_imported(path)
              if name not in allowed and not name.startswith("runbook_remediation.commands.base.")}
    assert not others, f"{path.name} imports {sorted(others)}: move what they share to commands/base.py " \
                       "or a plain module"


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_plain_module_imports_no_command(path):
    assert not _commands_imported(path), f"{path.relative_to(PACKAGE)} imports {sorted(_commands_imported(path))}"


def test_the_import_check_sees_imports():
    shell = imported_modules(PACKAGE / "shell.py")
    assert "runbook_remediation.commands.base.Context" in shell
    assert "runbook_remediation.errors.ExitCode" in shell


def test_shell_registers_every_command_module():
    """shell.py imports commands lazily, by name: every module under commands/ (but base)
    is in its map, and every name in the map imports and is a click command."""
    from runbook_remediation import shell

    assert {module for module, _ in shell.COMMANDS.values()} == {p.stem for p in COMMANDS} - {"base"}
    for name in shell.COMMANDS:
        assert shell.cli.get_command(None, name).name == name


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.stem)
def test_each_command_module_imports_on_its_own(path):
    """In a fresh interpreter, first thing: no import cycle through shell.py."""
    module = _module_name(path)
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
