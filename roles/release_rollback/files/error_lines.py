# Read-only, run on the target by the release_rollback role (python3 -c): the log lines of
# the service's current process that contain a word (ERROR), counted, the last few kept.
#   argv: MANAGER THING WORD LIMIT   (THING: unit, container, or PROJECT/SERVICE)
import json
import subprocess
import sys

manager, thing, word, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def out(lines, since, error=""):
    found = [line for line in lines if word in line]
    print(json.dumps({"count": len(found), "lines": found[-limit:], "since": since, "error": error}))
    sys.exit(0)


if manager == "systemd":
    pid = run("systemctl", "show", "-p", "MainPID", "--value", thing).stdout.strip()
    if not pid.isdigit() or pid == "0":
        out([], "", f"{thing} has no running process")
    # The journal entries of this process only: what it logged since it started.
    journal = run("journalctl", "--no-pager", "--output=short-iso", "_SYSTEMD_UNIT=" + thing, "_PID=" + pid)
    out(journal.stdout.splitlines(), f"pid {pid}", journal.stderr.strip() if journal.returncode else "")

if manager == "compose":
    project, service = thing.split("/", 1)
    ids = run("docker", "ps", "-q", "--filter", "label=com.docker.compose.project=" + project,
              "--filter", "label=com.docker.compose.service=" + service).stdout.split()
    if not ids:
        out([], "", f"no running container of the Compose service {service}")
    thing = ids[0]
inspected = run("docker", "inspect", "--type", "container", thing)
if inspected.returncode != 0:
    out([], "", f"cannot inspect container {thing}")
# Parsed here: the environment in the answer never leaves this process.
started = json.loads(inspected.stdout)[0]["State"]["StartedAt"]
logs = run("docker", "logs", "--since", started, thing)
out(logs.stdout.splitlines() + logs.stderr.splitlines(), f"container started {started}")
