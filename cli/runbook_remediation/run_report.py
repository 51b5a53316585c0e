"""How a scenario run is shown: one JSON document, or each host's result, then a status line.

Shared by ``runbook run``, ``runbook diagnose`` and ``runbook triage --run``; the
command exits with the code it chose afterwards.
"""

from __future__ import annotations

import yaml

from runbook_remediation import outcomes, results, runner
from runbook_remediation.errors import ExitCode
from runbook_remediation.scenarios import Recorded
from runbook_remediation.terminal import Terminal, safe


def show(terminal: Terminal, summary: results.Summary, info: runner.RunInfo, code: ExitCode, diagnose: bool,
         recorded: Recorded | None = None, extra: dict | None = None) -> None:
    """Print the run's result (JSON on stdout, or per host) and the status lines (stderr)."""
    if terminal.json:
        payload = {**(extra or {}), **summary.as_dict(info.artifacts)}
        payload["exit_code"] = int(code)
        payload["incident"] = recorded.incident if recorded else None
        payload["run_id"] = recorded.run_id if recorded else None
        if diagnose:
            payload["diagnose"] = True
        terminal.data(payload)
    else:
        for host, entry in summary.hosts.items():
            _print_host(terminal.out, host, entry, diagnose)
    counts: dict[str, int] = {}
    for entry in summary.hosts.values():
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    detail = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    verb = "diagnosed" if diagnose else summary.outcome
    terminal.status(f"{summary.scenario}: {verb} ({detail}) in {info.elapsed:.1f}s, exit {int(code)}")
    terminal.status(f"artifacts: {info.artifacts}")
    if recorded is not None and recorded.incident:
        terminal.status(f"incident: {recorded.incident} (runbook incident show {recorded.incident})")
    if not diagnose and summary.outcome == outcomes.ESCALATE:
        terminal.warn("a budget, cooldown or breaker said no: a human must decide (see the findings above)")


def _print_host(out, host: str, entry: dict, diagnose: bool) -> None:
    outcome = entry["outcome"]
    colour = outcomes.colour(outcome)
    out.print(f"[bold]{safe(host)}[/bold]  [{colour}]{safe(outcome)}[/{colour}]  {safe(entry.get('message') or '')}",
              markup=True)
    if entry.get("task") and outcome in outcomes.BROKEN:
        out.print(f"  task: {safe(str(entry['task']))}", markup=True)
    for title, items in (("findings", entry["findings"]),
                         ("would do" if outcome == outcomes.PLANNED else "actions", entry["actions"])):
        if items:
            out.print(f"  {title}:")
            for item in items:
                out.print(f"    - {safe(item)}", markup=True)
    if entry["verification"]:
        out.print(f"  verification: {safe(_inline(entry['verification']))}", markup=True)
    if diagnose and entry["evidence"]:
        out.print("  evidence:")
        text = yaml.safe_dump(entry["evidence"], sort_keys=False, default_flow_style=False, allow_unicode=True,
                              width=4096)
        for line in text.rstrip().splitlines():
            out.print(f"    {safe(line)}", markup=True)
    out.print("")


def _inline(mapping: dict) -> str:
    parts = []
    for key, value in mapping.items():
        text = value if isinstance(value, str) else runner.first_line(value, limit=120)
        parts.append(f"{key}={text}")
    return ", ".join(parts)
