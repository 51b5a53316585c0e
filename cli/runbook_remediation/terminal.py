"""Output: progress and status to stderr, data to stdout, JSON for machines.

Colour is auto-detected by rich and off with NO_COLOR; nothing prompts when stdin is
not a TTY or under CI.

Text from users, alerts and the timeline is never markup and never reaches the terminal
with control characters (an ``ESC ]0;...`` in an incident title would retitle the
terminal, ``[/]`` in a scenario name would break rich's markup):

- :func:`safe` makes such text fit to put into markup (escaped, control characters out);
- :meth:`Terminal.status`, :meth:`Terminal.warn` and :meth:`Terminal.error` take plain
  text and make it safe themselves, on one line (a title cannot forge a second
  ``runbook: error:`` line);
- both consoles strip control characters from everything they render, whatever the
  caller did (tables and lines that interpolate escaped text);
- :func:`clean` strips them from text going elsewhere (a Markdown file, a webhook).
"""

from __future__ import annotations

import json
import os
import re
import sys

from rich.console import Console
from rich.markup import escape
from rich.text import Text

# C0 controls but tab and newline, DEL, C1 controls (a lone 0x9b is a CSI), and the
# invisible Unicode controls that reorder or hide text (bidi overrides and isolates).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n]+")


def clean(text) -> str:
    """``text`` without control characters (tab and newline stay)."""
    return _CONTROL.sub("", str(text))


def one_line(text) -> str:
    """``text`` cleaned, on one line (tabs and newlines become a space)."""
    return _LINE_BREAKS.sub(" ", clean(text)).strip()


def safe(text) -> str:
    """User, alert or timeline text made fit to put into rich markup: escaped, cleaned."""
    return escape(clean(text))


class _Console(Console):
    """A rich console that strips control characters from every string it renders."""

    def render_str(self, text: str, **kwargs) -> Text:
        return super().render_str(clean(text), **kwargs)


class Terminal:
    def __init__(self, output: str = "text", debug: bool = False):
        self.output = output
        self.debug = debug
        no_color = bool(os.environ.get("NO_COLOR"))
        # emoji=False: ":fire:" in an alert stays text.
        self.err = _Console(stderr=True, no_color=no_color, highlight=False, soft_wrap=True, emoji=False)
        self.out = _Console(no_color=no_color, highlight=False, soft_wrap=True, emoji=False)

    @property
    def json(self) -> bool:
        return self.output == "json"

    def status(self, message: str) -> None:
        """One line of progress (plain text) for humans, on stderr (never mixed into
        --output json data)."""
        self.err.print(f"[dim]runbook:[/dim] {safe(one_line(message))}", markup=True)

    def warn(self, message: str) -> None:
        """One line of warning (plain text) on stderr."""
        self.err.print(f"[yellow]runbook: warning:[/yellow] {safe(one_line(message))}", markup=True)

    def error(self, message: str, hint: str | None = None) -> None:
        """One line of error (plain text), and one of hint, on stderr."""
        self.err.print(f"[bold red]runbook: error:[/bold red] {safe(one_line(message))}", markup=True)
        if hint:
            self.err.print(f"[dim]hint: {safe(one_line(hint))}[/dim]", markup=True)

    def data(self, payload) -> None:
        """Machine-readable data on stdout (JSON escapes every control character)."""
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def text(self, text: str) -> None:
        """Plain text on stdout as it is (a Markdown document), control characters out."""
        sys.stdout.write(clean(text))
        sys.stdout.flush()

    def can_prompt(self) -> bool:
        return sys.stdin.isatty() and not os.environ.get("CI")
