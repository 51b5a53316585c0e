"""``runbook postmortem INCIDENT``: the seeds' post-mortem, filled in from the timeline.

Summary, impact, the real timeline (alert start, opening, acknowledgement, every run and
what it changed, notifications, resolution), the actions taken, and the metrics TTD, TTA,
TTM and TTR computed from the recorded timestamps, with their definitions. Root cause,
contributing factors, lessons and action items are left for the review to fill in.
"""

from __future__ import annotations

from pathlib import Path

import click

from runbook_remediation import incidents
from runbook_remediation.commands.base import Context, handle_errors
from runbook_remediation.errors import BadInput


def _output(ctx: click.Context, _param, value):
    """``-o text|json`` selects the output format as on every command; any other value is
    the file to write the Markdown to (``-`` for stdout)."""
    if value in ("text", "json"):
        ctx.find_object(Context).terminal.output = value
        return None
    return value


@click.command()
@click.argument("incident_id", metavar="INCIDENT")
@click.option("--output", "-o", "target", metavar="FILE", callback=_output, is_eager=True,
              help="Write the Markdown to FILE (default: stdout). `-o json`/`-o text` choose the output "
                   "format as on every command.")
@click.option("--force", is_flag=True, help="Overwrite FILE when it exists.")
@click.pass_obj
@handle_errors
def postmortem(ctx: Context, incident_id: str, target: str | None, force: bool) -> None:
    """Write INCIDENT's post-mortem (Markdown) from its recorded timeline.

    Metrics: TTD (alert start -> opened), TTA (opened -> acknowledged), TTM (opened ->
    mitigated), TTR (opened -> resolved); the document states the definitions.
    """
    record, text = incidents.postmortem(incident_id)
    if record["status"] != "resolved":
        ctx.terminal.warn(f"{incident_id} is not resolved yet ({record['status']}): TTR is n/a")
    path = None
    if target and target != "-":
        path = Path(target).expanduser()
        if path.exists() and not force:
            raise BadInput(f"{path} exists: pass --force to overwrite it")
        if not path.parent.is_dir():
            raise BadInput(f"{path.parent} is not a directory")
        path.write_text(text, encoding="utf-8")
        ctx.terminal.status(f"post-mortem of {incident_id} written to {path}")
    if ctx.terminal.json:
        ctx.terminal.data({"incident": incident_id, "path": str(path) if path else None,
                           "metrics": incidents.metrics(record), "markdown": text})
    elif path is None:
        click.echo(text, nl=False)
