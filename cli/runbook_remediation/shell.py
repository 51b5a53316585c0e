"""The ``runbook`` command: a root group with global options, one module per command.

The commands live in ``commands/`` (what they share in ``commands/base.py``); this
module builds the root group and registers them. Every error a user can act on is a
:class:`RunbookError` and becomes one line on stderr and its exit code (see
``commands.base.handle_errors``); a traceback appears only with ``--debug``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from runbook_remediation import __version__
from runbook_remediation.commands.base import Context, unexpected
from runbook_remediation.errors import ExitCode
from runbook_remediation.terminal import one_line

# name -> (module under commands/, its click command): imported only when the command
# runs (or help lists it), so `runbook run` does not pay for the incident and lab code.
COMMANDS = {
    "lab": ("lab", "lab"),
    "drill": ("drill", "drill_"),
    "list": ("list", "list_"),
    "run": ("run", "run"),
    "diagnose": ("run", "diagnose"),
    "triage": ("triage", "triage_"),
    "incident": ("incident", "incident"),
    "postmortem": ("postmortem", "postmortem"),
    "watch": ("watch", "watch"),
    "breaker": ("breaker", "breaker"),
    "completion": ("completion", "completion"),
}


class _LazyGroup(click.Group):
    """The root group: commands resolved by name on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        return getattr(importlib.import_module(f"runbook_remediation.commands.{module}"), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RUNBOOK"})
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Output format for data on stdout. Env: RUNBOOK_OUTPUT.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show every task as it starts, skipped too. Env: RUNBOOK_VERBOSE.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors. Env: RUNBOOK_DEBUG.")
@click.version_option(__version__, prog_name="runbook")
@click.pass_context
def cli(ctx: click.Context, output: str, verbose: bool, debug: bool) -> None:
    """Incident-response runbooks as tested, idempotent Ansible automation.

    Exit codes: 0 remediated/ok, 1 failed, 2 bad input, 3 escalate, 4 nothing to do
    (healthy), 5 a prerequisite unavailable, 130 cancelled.
    """
    ctx.obj = Context(output=output, debug=debug, verbose=verbose)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Usage errors become one line with exit code 2; an
    exception nobody expected one line with exit code 1 (its traceback with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="runbook", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `runbook` alone: help, then exit 2 like click
        click.echo(exc.ctx.get_help(), err=True)
        code = ExitCode.BAD_INPUT
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "runbook"
        _error(f"{exc.format_message()} (see `{command} --help`)")
        code = ExitCode.BAD_INPUT
    except click.Abort:
        _error("cancelled")
        code = ExitCode.CANCELLED
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        _error(exc.format_message())
        code = exc.exit_code
    except Exception as exc:  # an input nobody checked, outside any command (or a bug)
        if _debug(args):
            raise
        message, hint = unexpected(exc)
        _error(message)
        click.echo(f"hint: {hint}", err=True)
        code = ExitCode.FAILED
    sys.exit(int(code or 0))


def _error(message: str) -> None:
    """One line on stderr, whatever the message holds (click quotes what the user typed)."""
    click.echo(f"runbook: error: {one_line(message)}", err=True)


def _debug(args: list[str]) -> bool:
    """--debug (or RUNBOOK_DEBUG) as the root group would have read it."""
    if "--" in args:
        args = args[: args.index("--")]
    flag = os.environ.get("RUNBOOK_DEBUG", "").strip().lower()
    return "--debug" in args or flag in ("1", "true", "t", "yes", "y", "on")
