"""``runbook completion SHELL``: the shell completion script (what it completes: ../completion.py)."""

from __future__ import annotations

import click


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL; source it from your shell's rc file.

    \b
    bash: eval "$(runbook completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(runbook completion zsh)"    (in ~/.zshrc)
    fish: runbook completion fish > ~/.config/fish/completions/runbook.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    click.echo(cls(ctx.find_root().command, {}, "runbook", "_RUNBOOK_COMPLETE").source())
