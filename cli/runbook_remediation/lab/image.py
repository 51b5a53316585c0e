"""The lab's Debian systemd image: built once with debootstrap, cached in the local engine.

No registry is reachable here, so the image is made from Debian's packages: debootstrap a
minimal bookworm root filesystem, then ``docker import`` it. The tag carries a recipe
version; bump ``IMAGE_VERSION`` whenever the package list or the set-up changes.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from runbook_remediation.errors import Unavailable
from runbook_remediation.paths import cache_dir

IMAGE_VERSION = "5"
IMAGE = f"runbook-lab-systemd:bookworm-{IMAGE_VERSION}"
SUITE = "bookworm"

# What a realistic target host has, plus what the remediations need on it.
PACKAGES = (
    "python3",
    "python3-apt",
    "python3-jmespath",  # health_check's JMESPath runs on the target
    "python3-psutil",  # community.general.pids and process selection
    "systemd",
    "systemd-sysv",
    "dbus",
    "procps",
    "psmisc",
    "logrotate",
    "sudo",
    "iproute2",
    "curl",
    "libpam-modules",
    "sqlite3",
    "lsof",
    "git",  # config-restore: the known-good configuration is a git HEAD
    # redis_memory's modules (community.general.redis) need the client library on the
    # target; the server for its molecule scenario (its packaged unit is masked below).
    "redis-server",
    "python3-redis",
    "ca-certificates",
    # Firewall scenarios (auth-abuse, isolate-host) on hosts with a network namespace of
    # their own: Debian 12's iptables is the nf_tables backend; nft for inspection.
    "iptables",
    "nftables",
)

# systemd units that make no sense in a container and only slow boot or fail.
MASKED_UNITS = (
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "getty.target",
    "console-getty.service",
    "systemd-firstboot.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    # Every lab host shares the machine's network: a Redis on 6379 in each would collide.
    "redis-server.service",
)


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive this machine already uses (never a hard-coded host)."""
    candidates = sorted((sources_dir / "sources.list.d").glob("*.sources"))
    for path in candidates:
        text = path.read_text(encoding="utf-8")
        for block in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.MULTILINE)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    legacy = sources_dir / "sources.list"
    if legacy.is_file():
        for line in legacy.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1] if not parts[1].startswith("[") else parts[2]
    raise Unavailable(f"no Debian {SUITE} archive found in {sources_dir}/sources.list(.d)")


def image_exists(client) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(IMAGE)
    except ImageNotFound:
        return False
    return True


def _prepare_rootfs(root: Path) -> None:
    """Container-friendly tweaks inside the fresh root filesystem."""
    systemd_dir = root / "etc" / "systemd" / "system"
    systemd_dir.mkdir(parents=True, exist_ok=True)
    for unit in MASKED_UNITS:
        target = systemd_dir / unit
        if not target.exists():
            target.symlink_to("/dev/null")
    # Journald to memory only: the lab hosts are throwaway and disk is shared.
    journald = root / "etc" / "systemd" / "journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "lab.conf").write_text("[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n", encoding="utf-8")
    # The demo service runs as an unprivileged user, like a real one.
    subprocess.run(
        ["chroot", str(root), "useradd", "--system", "--home-dir", "/var/lib/runbook-demo", "--shell",
         "/usr/sbin/nologin", "runbook-demo"],
        check=True, capture_output=True,
    )
    (root / "etc" / "hostname").write_text("runbook-lab\n", encoding="utf-8")
    # apt's caches make the image bigger and are never used in the lab.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / sub).glob("*"):
            if item.is_file():
                item.unlink()


def build_image(client, progress=lambda _msg: None) -> str:
    """Build and import the image unless the engine already has it. Returns the tag.

    ``docker import`` cannot set STOPSIGNAL: containers get ``stop_signal`` at run time.
    """
    if image_exists(client):
        return IMAGE
    if shutil.which("debootstrap") is None:
        raise Unavailable("debootstrap is not installed", hint="run scripts/bootstrap (apt-get install debootstrap)")
    mirror = debian_mirror()
    work = cache_dir() / "image-build"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        root = Path(tmp) / "rootfs"
        progress(f"building {IMAGE} with debootstrap from {mirror} (once, about 90 s)")
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"debootstrap failed: {tail[0]}")
        _prepare_rootfs(root)
        progress(f"importing {IMAGE}")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import",
             "--change", 'CMD ["/sbin/init"]',
             "--change", "ENV container=docker",
             "--change", f"LABEL org.runbook.lab.image={IMAGE_VERSION}",
             "-", IMAGE],
            stdin=tar.stdout, capture_output=True, text=True, check=False,
        )
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise Unavailable(f"docker import failed: {imported.stderr.strip() or 'tar failed'}")
    return IMAGE


# Derived images for tests that need a program the lab image lacks, each built once from
# the lab image with apt inside a container (the image's own sources), committed and cached:
# LibreOffice (seed 003's ggen-mcp-server runs soffice in Docker, for soffice-leak's container
# tests) and PostgreSQL 15 (seed 004's database runs in a container: settings that need a
# server restart, restarted through service_restart).
OFFICE_IMAGE = f"runbook-lab-office:bookworm-{IMAGE_VERSION}"
OFFICE_PACKAGES = ("libreoffice-writer-nogui",)
POSTGRES_IMAGE = f"runbook-lab-postgres:bookworm-{IMAGE_VERSION}"
POSTGRES_PACKAGES = ("postgresql-15",)


def build_derived_image(client, image: str, packages: tuple[str, ...], progress=lambda _msg: None,
                        files: dict[str, str] | None = None) -> str:
    """Build and commit IMAGE (the lab image plus PACKAGES, and FILES: path -> text, made
    executable) unless the engine has it. Returns the tag."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(image)
        return image
    except ImageNotFound:
        pass
    base = build_image(client, progress)
    progress(f"building {image}: {', '.join(packages)} from {base} (once)")
    script = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
              + " ".join(packages) + " && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb")
    for path, text in (files or {}).items():
        # base64: the text goes through sh -c unquoted and unharmed.
        script += f" && echo {base64.b64encode(text.encode()).decode()} | base64 -d > {path} && chmod 0755 {path}"
    builder = client.containers.run(base, ["sh", "-c", script], network_mode="host", detach=True)
    try:
        status = builder.wait(timeout=1800).get("StatusCode", 1)
        if status != 0:
            tail = builder.logs(tail=3).decode(errors="replace").strip() or "no output"
            raise Unavailable(f"installing {', '.join(packages)} into {base} failed (exit {status}): {tail}")
        repository, tag = image.split(":")
        builder.commit(repository=repository, tag=tag, changes=['CMD ["/sbin/init"]', "ENV container=docker",
                                                                f"LABEL org.runbook.lab.image={IMAGE_VERSION}"])
    finally:
        builder.remove(force=True)
    return image


def build_office_image(client, progress=lambda _msg: None) -> str:
    """The lab image plus headless LibreOffice Writer."""
    return build_derived_image(client, OFFICE_IMAGE, OFFICE_PACKAGES, progress)


# `runbook-postgres PORT [SERVER ARGS...]`: the container's command. The first start makes the
# cluster (superuser $PGUSER, password $PGPW, read once from the environment); every start
# runs the server as postgres on 127.0.0.1:PORT with the data kept in the container.
POSTGRES_START = """#!/bin/sh
set -e
port=$1
shift
data=/var/lib/runbook-pg
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -f "$data/PG_VERSION" ]; then
  install -d -o postgres -g postgres -m 0700 "$data"
  umask 077
  printf '%s\\n' "$PGPW" > /tmp/pw
  chown postgres /tmp/pw
  as_postgres /usr/lib/postgresql/15/bin/initdb -D "$data" -U "${PGUSER:-postgres}" --pwfile /tmp/pw \\
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f /tmp/pw
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/postgres -D "$data" \\
  -c listen_addresses=127.0.0.1 -p "$port" -k /tmp -c fsync=off "$@"
"""


def build_postgres_image(client, progress=lambda _msg: None) -> str:
    """The lab image plus the PostgreSQL 15 server and its start command, runbook-postgres."""
    return build_derived_image(client, POSTGRES_IMAGE, POSTGRES_PACKAGES, progress,
                               files={"/usr/local/bin/runbook-postgres": POSTGRES_START})
