"""The ``runbook`` command: a root group with global options, one module per command.

Every error a user can act on is a :class:`RunbookError` and becomes one line on stderr
and its exit code; a traceback appears only with ``--debug``.
"""

from __future__ import annotations

import functools
import sys

import click

from runbook_remediation import __version__
from runbook_remediation.errors import ExitCode, RunbookError
from runbook_remediation.terminal import Terminal


class Context:
    """What every command gets: the terminal and the global settings."""

    def __init__(self, output: str, debug: bool, verbose: bool = False):
        self.terminal = Terminal(output=output, debug=debug)
        self.debug = debug
        self.verbose = verbose


def output_option(func):
    """``--output/-o`` on a command too (``runbook lab status -o json``), not only on
    the root group; the command's value wins."""

    def remember(ctx: click.Context, _param, value):
        if value:
            ctx.find_object(Context).terminal.output = value
        return value

    return click.option(
        "--output", "-o", type=click.Choice(["text", "json"]), default=None, expose_value=False,
        callback=remember, is_eager=True, help="Output format for data on stdout (text or json).",
    )(func)


def handle_errors(func):
    """Turn RunbookError into a one-line message and its exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        runbook: Context = ctx.find_object(Context)
        try:
            return func(*args, **kwargs)
        except RunbookError as exc:
            if runbook.debug:
                raise
            runbook.terminal.error(exc.message, exc.hint)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            runbook.terminal.error("cancelled")
            ctx.exit(int(ExitCode.CANCELLED))

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RUNBOOK"})
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


def _register() -> None:
    from runbook_remediation.commands import breaker, incident, lab, postmortem, run, triage, watch
    from runbook_remediation.commands import list as list_command

    cli.add_command(lab.lab)
    cli.add_command(list_command.list_)
    cli.add_command(run.run)
    cli.add_command(run.diagnose)
    cli.add_command(triage.triage_)
    cli.add_command(incident.incident)
    cli.add_command(postmortem.postmortem)
    cli.add_command(watch.watch)
    cli.add_command(breaker.breaker)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Usage errors become one line with exit code 2."""
    try:
        code = cli.main(args=argv, prog_name="runbook", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `runbook` alone: help, then exit 2 like click
        click.echo(exc.ctx.get_help(), err=True)
        code = ExitCode.BAD_INPUT
    except click.UsageError as exc:
        message = exc.format_message().replace("\n", " ")
        command = exc.ctx.command_path if exc.ctx else "runbook"
        click.echo(f"runbook: error: {message} (see `{command} --help`)", err=True)
        code = ExitCode.BAD_INPUT
    except click.Abort:
        click.echo("runbook: error: cancelled", err=True)
        code = ExitCode.CANCELLED
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        click.echo(f"runbook: error: {exc.format_message()}", err=True)
        code = exc.exit_code
    sys.exit(int(code or 0))
