# Read-only, run on the target by the env_toggle role (python3 -c): the values of the named
# environment variables the service runs with, and the revert record. Only the variables
# asked for leave the target: the rest of the environment (secrets among it) never does.
#   argv: MANAGER THING RECORD_PATH NAME...   (THING: unit, container, or PROJECT/SERVICE)
import json
import os
import subprocess
import sys

manager, thing, record_path, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def out(error="", running=False, env=None, where=""):
    record = {}
    if os.path.isfile(record_path):
        with open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
    wanted = set(names) | set(record if isinstance(record, dict) else ())
    env = env or {}
    print(json.dumps({"error": error, "running": running, "where": where, "record": record,
                      "env": dict((name, env.get(name)) for name in sorted(wanted))}))
    sys.exit(0)


if manager == "systemd":
    pid = run("systemctl", "show", "-p", "MainPID", "--value", thing).stdout.strip()
    if pid.isdigit() and pid != "0":
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                pairs = handle.read().decode("utf-8", "replace").split("\0")
        except OSError as exc:
            out(f"cannot read the environment of {thing} (pid {pid}): {exc.strerror}")
        out(running=True, where=f"pid {pid}", env=dict(p.split("=", 1) for p in pairs if "=" in p))
    # Not running: what the unit would start with (Environment= of the unit and its drop-ins).
    words = run("systemctl", "show", "-p", "Environment", "--value", thing).stdout.split()
    out(where=f"unit {thing} (not running)", env=dict(w.split("=", 1) for w in words if "=" in w))

if manager == "compose":
    project, service = thing.split("/", 1)
    ids = run("docker", "ps", "-a", "-q", "--filter", "label=com.docker.compose.project=" + project,
              "--filter", "label=com.docker.compose.service=" + service).stdout.split()
    if not ids:
        out(f"no container of the Compose service {service} in project {project}")
    thing = ids[0]
inspected = run("docker", "inspect", thing)
if inspected.returncode != 0:
    last = (inspected.stderr.strip().splitlines() or ["?"])[-1]
    out(f"cannot inspect container {thing}: {last}")
container = json.loads(inspected.stdout)[0]
pairs = container["Config"].get("Env") or []
out(running=bool(container["State"].get("Running")), where="container " + container["Name"].lstrip("/"),
    env=dict(p.split("=", 1) for p in pairs if "=" in p))
