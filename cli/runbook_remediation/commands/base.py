"""What every command shares: the context, the error handling and the common options.

The one command module the others import; it imports none of them. Logic lives in
plain modules (:mod:`runbook_remediation.scenarios`, :mod:`runbook_remediation.incidents`,
:mod:`runbook_remediation.watcher`...): a command is its options, one call and the
rendering of what it returned.
"""

from __future__ import annotations

import functools

import click

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


def non_empty(_ctx: click.Context, param: click.Parameter, value):
    """Callback for a name that must not be empty (``--host ''``, an empty INCIDENT): a
    usage error, exit 2. Strips blanks; takes a ``multiple`` option's tuple too."""
    if value is None:
        return None
    values = value if isinstance(value, tuple) else (value,)
    stripped = tuple(str(v).strip() for v in values)
    if any(not v for v in stripped):
        raise click.BadParameter("must not be empty", param=param)
    return stripped if isinstance(value, tuple) else stripped[0]


def handle_errors(func):
    """Turn RunbookError into a one-line message and its exit code.

    Any other exception is a bug, or an input nobody checked: one line naming only its
    type (its text may hold what the user typed, a token in a URL included) and exit 1;
    ``--debug`` shows the traceback.
    """

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
        except (click.exceptions.Exit, click.ClickException, click.Abort, BrokenPipeError):
            raise  # click's own (a closed pipe included: `runbook incident list | head -1`)
        except Exception as exc:
            if runbook.debug:
                raise
            runbook.terminal.error(*unexpected(exc))
            ctx.exit(int(ExitCode.FAILED))

    return wrapper


def unexpected(exc: BaseException) -> tuple[str, str]:
    """The message and hint for an exception nobody expected (no text of its own: it may
    quote a secret)."""
    return (f"unexpected error ({type(exc).__name__}): this is a bug in runbook",
            "run again with --debug for the traceback (it may show what you typed, secrets too)")


def confirm(question: str) -> bool:
    """Ask ``question`` on stderr (default no). Callers check ``can_prompt()`` first."""
    return click.confirm(question, default=False, err=True)


def exit_with(code: int) -> None:
    """Leave the command with exit code ``code``."""
    click.get_current_context().exit(int(code))
