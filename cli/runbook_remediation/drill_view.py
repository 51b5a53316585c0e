"""The live view of a drill on a terminal: one row per failure mode, its current step and
how long it has taken, redrawn as the drill goes (stderr, so ``-o json`` and ``-o markdown``
stay clean on stdout). Off a terminal the drill prints its progress lines as before.

It reads the drill's progress lines: ``MODE: STEP`` moves that mode's row to STEP (the
last one, ``MODE: remediated``, ends it); any other line is the view's footer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from runbook_remediation.drill import OUTCOMES, Profile

DONE = set(OUTCOMES) | {"failed", "timeout", "canceled"}


class DrillView:
    """The rows' state; ``render()`` is what rich's Live redraws."""

    def __init__(self, profile: Profile, only: tuple[str, ...] = (), clock: Callable[[], float] = time.monotonic):
        self.profile = profile
        self.clock = clock
        self.rows: dict[str, dict] = {}
        for mode in profile.modes:
            if only and mode.name not in only:
                continue
            state = "not automated" if mode.not_automated else "waiting"
            self.rows[mode.name] = {"title": mode.title, "step": state, "started": None, "ended": None,
                                    "done": bool(mode.not_automated)}
        self.footer = ""

    def progress(self, message: str) -> None:
        name, separator, step = message.partition(": ")
        row = self.rows.get(name)
        if row is None or not separator or not step or row["done"]:
            self.footer = message
            return
        now = self.clock()
        if row["started"] is None:
            row["started"] = now
        row["step"] = step
        # "remediated", "failed (expected remediated)": the mode's last line.
        if step.split(" ", 1)[0] in DONE:
            row["ended"], row["done"] = now, True

    def finish(self, report: dict) -> None:
        """Every row as the report has it (a mode that stopped early said no last line)."""
        for row in report["modes"]:
            mine = self.rows.get(row["mode"])
            if mine is None or row["ok"] is None:
                continue
            verdict = row["outcome"] or "failed"
            mine["step"] = verdict if row["ok"] else f"{verdict}: {row.get('message') or 'expected ' + row['expected']}"
            mine["ok"], mine["done"] = row["ok"], True
            mine["ended"] = mine["ended"] or self.clock()
            mine["started"] = mine["started"] or mine["ended"]
        self.footer = ""

    def render(self) -> Group:
        table = Table(title=f"drill {self.profile.name} (seed {self.profile.seed}) on {self.profile.host}",
                      title_justify="left", expand=False)
        table.add_column("failure mode", no_wrap=True)
        table.add_column("step")
        table.add_column("time", justify="right", no_wrap=True)
        now = self.clock()
        for name, row in self.rows.items():
            step = Text(row["step"])
            if row["done"] and row["ended"] is not None:
                ok = row.get("ok")
                if ok is None:  # still going by the progress lines: the last one says how it ended
                    ok = row["step"].split(" ", 1)[0] in OUTCOMES and "expected" not in row["step"]
                step.stylize("green" if ok else "bold red")
            elif row["started"] is not None:
                step.stylize("yellow")
            else:
                step.stylize("dim")
            elapsed = ""
            if row["started"] is not None:
                elapsed = f"{(row['ended'] or now) - row['started']:.0f} s"
            table.add_row(name, step, elapsed)
        return Group(table, Text(self.footer, style="dim")) if self.footer else Group(table)
