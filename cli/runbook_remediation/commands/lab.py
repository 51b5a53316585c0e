"""``runbook lab``: the local incident lab (up, status, break, down)."""

from __future__ import annotations

import click

from runbook_remediation import completion as complete
from runbook_remediation.commands.base import Context, handle_errors, non_empty, output_option
from runbook_remediation.errors import BadInput
from runbook_remediation.lab.lab import FAULTS, LAB_FAULTS, MAX_HOSTS, PROFILES, RELEASES, Lab
from runbook_remediation.paths import state_dir
from runbook_remediation.terminal import safe


def _lab(ctx: Context) -> Lab:
    return Lab(state_dir(), progress=ctx.terminal.status)


@click.group()
def lab() -> None:
    """The local incident lab: real hosts, a demo service to break, real monitoring.

    State lives in $RUNBOOK_STATE_DIR/lab (default ~/.local/state/runbook/lab).
    """


@lab.command()
@click.option("--hosts", type=int, default=2, show_default=True,
              help=f"Number of systemd target hosts (1 to {MAX_HOSTS}).")
@click.option("--kubernetes", is_flag=True,
              help="Also run a Kubernetes 1.20 cluster (etcd, control plane, kubelet on 127.0.0.1) with the demo "
                   "as a Deployment: host lab-k8s. Without it, `up` stops a cluster a previous `up` started. "
                   "Needs scripts/kubernetes-build once.")
@click.option("--profile", "profiles", multiple=True, type=click.Choice(PROFILES), metavar="NAME",
              help="Also the parts of a seed system's replica (repeatable): causal-eval adds a Redis (full at "
                   "maxmemory, noeviction), a PostgreSQL and a worker to the Compose project, ggen-mcp "
                   "LibreOffice in the Docker service's container (and the Redis and PostgreSQL), "
                   "mpc-transformer the Kubernetes cluster. "
                   f"Profiles: {', '.join(PROFILES)}. Without it, `up` removes the parts a previous `up` added.")
@output_option
@click.pass_obj
@handle_errors
def up(ctx: Context, hosts: int, kubernetes: bool, profiles: tuple[str, ...]) -> None:
    """Start the lab (idempotent: a second run changes nothing)."""
    the_lab = _lab(ctx)
    changes = the_lab.up(hosts, kubernetes=kubernetes, profiles=profiles)
    status = the_lab.status()
    if ctx.terminal.json:
        ctx.terminal.data({"changed": bool(changes), "changes": changes, **status})
        return
    for change in changes:
        ctx.terminal.status(change)
    ctx.terminal.status("lab is up" + ("" if changes else " (nothing changed)"))
    _print_status(ctx, status)


@lab.command()
@output_option
@click.pass_obj
@handle_errors
def status(ctx: Context) -> None:
    """Show the lab's hosts, their health, and the monitoring URLs."""
    result = _lab(ctx).status()
    if ctx.terminal.json:
        ctx.terminal.data(result)
        return
    if not result["up"]:
        ctx.terminal.status("the lab is not up (runbook lab up)")
        return
    _print_status(ctx, result)


def _parse_params(values: tuple[str, ...]) -> dict:
    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--param takes KEY=VALUE, not {item!r}")
        try:
            params[key] = float(value) if "." in value or value.isdigit() else value
        except ValueError:
            params[key] = value
    return params


@lab.command(
    name="break",
    help=f"Inject FAULT into the demo service on a lab host.\n\nFAULT is one of: {', '.join(FAULTS + LAB_FAULTS)} "
         f"(provider-down takes the upstream provider -p provider=NAME down, default primary).",
)
@click.argument("fault", metavar="FAULT", callback=non_empty, shell_complete=complete.lab_faults)
@click.option("--host", "host_name", required=True, callback=non_empty, shell_complete=complete.inventory_hosts,
              help="Lab host to break (see `runbook lab status`).")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="Fault parameter, e.g. rate=0.3.")
@output_option
@click.pass_obj
@handle_errors
def break_(ctx: Context, fault: str, host_name: str, params: tuple[str, ...]) -> None:
    result = _lab(ctx).break_service(fault, host_name, _parse_params(params))
    if ctx.terminal.json:
        ctx.terminal.data(result)
    else:
        ctx.terminal.status(f"injected {fault} on {host_name}")


@lab.command(
    help=f"Make RELEASE the running release of the demo service on a lab host, as a deployment "
         f"would, and record it in the deploy history on the target.\n\nRELEASE is one of: "
         f"{', '.join(RELEASES)} (v2 is the bad release: half its requests fail).",
)
@click.argument("release", metavar="RELEASE", callback=non_empty, shell_complete=complete.lab_releases)
@click.option("--host", "host_name", required=True, callback=non_empty,
              shell_complete=complete.inventory_hosts, help="Lab host to deploy to.")
@output_option
@click.pass_obj
@handle_errors
def deploy(ctx: Context, release: str, host_name: str) -> None:
    result = _lab(ctx).deploy(release, host_name)
    if ctx.terminal.json:
        ctx.terminal.data(result)
    else:
        was = f" (was {result['from']})" if result["from"] else ""
        ctx.terminal.status(f"{host_name} runs release {release}{was}")


@lab.command()
@click.option("--host", "host_name", required=True, callback=non_empty,
              shell_complete=complete.inventory_hosts, help="Lab host to heal.")
@output_option
@click.pass_obj
@handle_errors
def heal(ctx: Context, host_name: str) -> None:
    """Undo every injected fault on a host (after a drill) and wait until it is healthy."""
    action = _lab(ctx).heal(host_name)
    if ctx.terminal.json:
        ctx.terminal.data({"host": host_name, "action": action})
    else:
        ctx.terminal.status(f"{action}; {host_name} is healthy")


@lab.command()
@output_option
@click.pass_obj
@handle_errors
def down(ctx: Context) -> None:
    """Remove every container, process and file the lab made."""
    removed = _lab(ctx).down()
    if ctx.terminal.json:
        ctx.terminal.data({"removed": removed})
    else:
        for item in removed:
            ctx.terminal.status(item)
        ctx.terminal.status("lab is down")


def _print_status(ctx: Context, status: dict) -> None:
    from rich.table import Table

    table = Table(title="runbook lab", title_justify="left")
    for column in ("host", "manager", "container", "health", "health URL"):
        table.add_column(column)
    for host in status["hosts"]:
        health = host["health"]
        colour = "green" if host["healthy"] else "red"
        table.add_row(safe(host["name"]), safe(host["manager"]), safe(host["container_status"]),
                      f"[{colour}]{safe(health)}[/{colour}]", safe(host["health_url"]))
    ctx.terminal.out.print(table)
    ctx.terminal.out.print(f"Prometheus:   {safe(status['prometheus']['url'])}")
    ctx.terminal.out.print(f"Alertmanager: {safe(status['alertmanager']['url'])}")
    ctx.terminal.out.print(f"Inventory:    {safe(status['inventory'])}")
    redis = status.get("redis")
    if redis:
        answering = "answering" if redis["healthy"] else "down"
        ctx.terminal.out.print(f"Redis:        {safe(redis['url'])} ({answering}; exporter "
                               f"{safe(redis['exporter_url'])}), profiles {safe(', '.join(status['profiles']))}")
    postgres = status.get("postgres")
    if postgres:
        answering = "answering" if postgres["healthy"] else "not healthy"
        ctx.terminal.out.print(f"PostgreSQL:   {safe(postgres['url'])} ({answering}; exporter "
                               f"{safe(postgres['exporter_url'])})")
    worker = status.get("worker")
    if worker:
        colour = "green" if worker["healthy"] else "red"
        ctx.terminal.out.print(f"Worker:       {safe(worker['health_url'])} "
                               f"([{colour}]{safe(worker['health'])}[/{colour}])")
    cluster = status.get("kubernetes")
    if cluster:
        state = "running" if cluster["running"] else "stopped"
        memory = cluster["total_rss_bytes"] / 2**20
        ctx.terminal.out.print(f"Kubernetes:   {safe(cluster['server'])} ({state}, {memory:.0f} MiB resident: "
                               f"control plane, kubelet and pods), kubeconfig {safe(cluster['kubeconfig'])}")
