"""Output: progress and status to stderr, data to stdout, JSON for machines.

Colour is auto-detected by rich and off with NO_COLOR; nothing prompts when stdin is
not a TTY or under CI.
"""

from __future__ import annotations

import json
import os
import sys

from rich.console import Console


class Terminal:
    def __init__(self, output: str = "text", debug: bool = False):
        self.output = output
        self.debug = debug
        no_color = bool(os.environ.get("NO_COLOR"))
        self.err = Console(stderr=True, no_color=no_color, highlight=False, soft_wrap=True)
        self.out = Console(no_color=no_color, highlight=False, soft_wrap=True)

    @property
    def json(self) -> bool:
        return self.output == "json"

    def status(self, message: str) -> None:
        """Progress for humans, on stderr (never mixed into --output json data)."""
        self.err.print(f"[dim]runbook:[/dim] {message}", markup=True)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]runbook: warning:[/yellow] {message}", markup=True)

    def error(self, message: str, hint: str | None = None) -> None:
        self.err.print(f"[bold red]runbook: error:[/bold red] {message}", markup=True)
        if hint:
            self.err.print(f"[dim]hint: {hint}[/dim]", markup=True)

    def data(self, payload) -> None:
        """Machine-readable data on stdout."""
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def can_prompt(self) -> bool:
        return sys.stdin.isatty() and not os.environ.get("CI")
