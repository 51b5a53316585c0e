# Read-only, run on the target by the env_toggle role (python3 -c): the values of the named
# environment variables the service runs with, and the revert record. Only the variables
# asked for leave the target: the rest of the environment (secrets among it) never does.
#   argv: MANAGER THING RECORD_PATH NAME...   (THING: unit, container, PROJECT/SERVICE, or for
#   Kubernetes a JSON object {kubectl, kubeconfig, context, namespace, deployment, container})
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

if manager == "kubernetes":
    # What a Ready pod of the Deployment runs with (its spec: the process's own environment
    # is the pod's); with none Ready, what the Deployment would start.
    where = json.loads(thing)
    kubectl = [where.get("kubectl") or "kubectl"]
    kubectl += ["--kubeconfig", where["kubeconfig"]] if where.get("kubeconfig") else []
    kubectl += ["--context", where["context"]] if where.get("context") else []
    kubectl += ["--namespace", where.get("namespace") or "default", "--request-timeout", "10s"]

    def env_of(spec):
        containers = spec.get("containers") or []
        named = [c for c in containers if c.get("name") == where.get("container")] or containers[:1]
        return {e["name"]: e["value"] for e in (named[0].get("env") or []) if named and "value" in e}

    got = run(*kubectl, "get", "deployment", where["deployment"], "--output", "json")
    if got.returncode != 0:
        out(f"cannot read deployment {where['deployment']}: {' '.join(got.stderr.split())[:300]}")
    deployment = json.loads(got.stdout)
    labels = deployment["spec"]["selector"].get("matchLabels") or {}
    listed = run(*kubectl, "get", "pods", "--selector", ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                 "--output", "json")
    pods = json.loads(listed.stdout).get("items", []) if listed.returncode == 0 else []
    ready = [p for p in pods if not p["metadata"].get("deletionTimestamp")
             and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])]
    if ready:
        out(running=True, where="pod " + ready[0]["metadata"]["name"], env=env_of(ready[0]["spec"]))
    out(where=f"deployment {where['deployment']} (no pod ready)", env=env_of(deployment["spec"]["template"]["spec"]))

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
