"""One exception type for every error a user can act on, and the exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``runbook`` command. Scripts and AWX rely on them."""

    REMEDIATED = 0  # the scenario acted and verification passed (or a command succeeded)
    FAILED = 1  # remediation or verification failed, or an unexpected error
    BAD_INPUT = 2  # unknown scenario, bad inventory or options (click uses 2 too)
    ESCALATE = 3  # a budget, cooldown or breaker said no: a human must decide
    NOTHING_TO_DO = 4  # the service was healthy; nothing was changed
    UNAVAILABLE = 5  # a prerequisite is missing or unreachable (dockerd, Prometheus, a host)
    CANCELLED = 130  # interrupted (Ctrl-C)


class RunbookError(Exception):
    """An error with a one-line message for the user and the exit code to leave with."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint


class BadInput(RunbookError):
    """The user asked for something that cannot be: nothing was changed."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, ExitCode.BAD_INPUT, hint)


class Unavailable(RunbookError):
    """A prerequisite is missing or does not answer."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, ExitCode.UNAVAILABLE, hint)
