"""``runbook postmortem INCIDENT``: the seeds' post-mortem, filled in from the timeline.

Summary, impact, the real timeline (alert start, opening, acknowledgement, every run and
what it changed, notifications, resolution), the actions taken, and the metrics TTD, TTA,
TTM and TTR computed from the recorded timestamps, with their definitions. Root cause,
contributing factors, lessons and action items are left for the review to fill in.

``-o`` is the output format, as on every command; the file is ``--file``.
"""

from __future__ import annotations

from pathlib import Path

import click

from runbook_remediation import completion as complete
from runbook_remediation import incidents
from runbook_remediation.commands.base import Context, handle_errors, non_empty, output_option
from runbook_remediation.errors import BadInput


@click.command()
@click.argument("incident_id", metavar="INCIDENT", callback=non_empty, shell_complete=complete.incident_ids)
@click.option("--file", "-f", "target", metavar="FILE",
              help="Write the Markdown to FILE (default: stdout; `-` is stdout too).")
@click.option("--force", is_flag=True, help="Overwrite FILE when it exists.")
@output_option
@click.pass_obj
@handle_errors
def postmortem(ctx: Context, incident_id: str, target: str | None, force: bool) -> None:
    """Write INCIDENT's post-mortem (Markdown) from its recorded timeline.

    Metrics: TTD (alert start -> opened), TTA (opened -> acknowledged), TTM (opened ->
    mitigated), TTR (opened -> resolved); the document states the definitions. `-o json`
    puts the Markdown, the metrics and the file written into one JSON document.
    """
    path = None
    if target and target != "-":
        path = Path(target).expanduser()
        if path.exists() and not force:
            raise BadInput(f"{path} exists: pass --force to overwrite it")
        if not path.parent.is_dir():
            raise BadInput(f"{path.parent} is not a directory")
    record, text = incidents.postmortem(incident_id)
    if record["status"] != "resolved":
        ctx.terminal.warn(f"{incident_id} is not resolved yet ({record['status']}): TTR is n/a")
    if path is not None:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from exc
        ctx.terminal.status(f"post-mortem of {incident_id} written to {path}")
    if ctx.terminal.json:
        ctx.terminal.data({"incident": incident_id, "path": str(path) if path else None,
                           "metrics": incidents.metrics(record), "markdown": text})
    elif path is None:
        ctx.terminal.text(text)
