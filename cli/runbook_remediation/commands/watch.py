"""``runbook watch``: the closed loop, locally. Alertmanager -> ansible-rulebook -> scenario.

The supervision of ansible-rulebook lives in :mod:`runbook_remediation.watcher`.
"""

from __future__ import annotations

from pathlib import Path

import click

from runbook_remediation import watcher
from runbook_remediation.commands.base import Context, handle_errors, non_empty


@click.command()
@click.option("-i", "--inventory", metavar="PATH", envvar="RUNBOOK_INVENTORY", callback=non_empty,
              help="Inventory the rulebook's runs use. Default: the lab's when the lab is up.")
@click.option("--alertmanager", metavar="URL", envvar="RUNBOOK_ALERTMANAGER_URL",
              help="The Alertmanager that sends the alerts. Default: the lab's.")
@click.option("--port", type=click.IntRange(1, 65535), help="Webhook port on 127.0.0.1. Default: a free one.")
@click.option("--attach/--no-attach", default=None,
              help="Point the lab's Alertmanager at this watcher while it runs (default: when it is the lab's).")
@click.option("--rulebook", "rulebook_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Another rulebook (default: the collection's alertmanager.yml).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The webhook's bearer token (a 0600 file Alertmanager reads too). Default: a new token "
                   "in <state dir>/watch/token.")
@click.option("--catalogue", "overlay", metavar="FILE", envvar="RUNBOOK_CATALOGUE_OVERLAY",
              help="Your own alert names -> scenarios (`alerts: {ALERT: SCENARIO}`): the rulebook gets rules "
                   "for them. Env: RUNBOOK_CATALOGUE_OVERLAY.")
@click.option("--drain", type=click.IntRange(min=0), default=120, show_default=True, metavar="SECONDS",
              help="On Ctrl-C, wait this long for remediations in flight to finish before stopping them.")
@click.pass_obj
@handle_errors
def watch(ctx: Context, inventory: str | None, alertmanager: str | None, port: int | None, attach: bool | None,
          rulebook_path: Path | None, token_file: Path | None, overlay: str | None, drain: int) -> None:
    """Remediate alerts as they fire: Alertmanager -> rulebook -> scenario, until Ctrl-C.

    The webhook listens on 127.0.0.1 and takes alerts only with its bearer token; an
    alert may act only on a host of the inventory.

    Alerts whose scenario is destructive are only diagnosed; a human runs those. An
    alert labelled runbook_scenario=NAME runs that scenario; a firing alert that maps to
    none is recorded in the timeline and announced ("no scenario"), once.
    The safety envelope (dedupe, budget, cooldown, breaker, blast radius) decides what
    acts: see `runbook breaker status`.
    """
    the_plan = watcher.plan(inventory, alertmanager, port, attach, rulebook_path, token_file, overlay)
    watcher.watch(ctx.terminal, the_plan, drain=drain, verbose=ctx.verbose)
