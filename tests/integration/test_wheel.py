"""`pip install .` (not editable) is enough: the wheel ships the collection the CLI drives.

The wheel is built from this checkout (``pip wheel``, build isolation as a user gets it)
and installed into a fresh venv in a temporary directory, far from the checkout. To keep
the test minutes short, that venv gets the wheel itself (``--no-deps``) and borrows the
third-party packages (ansible, click, ...) from the project's .venv through a ``.pth``
line: a ``.pth`` line adds the directory only, so the checkout's editable install (its own
``.pth`` finder) is NOT visible there -- ``runbook_remediation`` can only come from the
wheel, and the test asserts it does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from runbook_remediation import __version__

REPO = Path(__file__).resolve().parents[2]
BUNDLE = "runbook_remediation/_collection/ansible_collections/runbook/remediation"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    had_build = (REPO / "build").exists()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    if not had_build:  # pip builds in the tree: leave no build/ (its collection copy) behind
        shutil.rmtree(REPO / "build", ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return next(out.glob("runbook_remediation-*.whl"))


@pytest.fixture(scope="module")
def wheel_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "zz_project_deps.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    return venv


def wheel_env(venv: Path, **extra: str) -> dict:
    """The environment of a user with only the wheel: no checkout, no collection paths."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUNBOOK_COLLECTION_ROOT", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS",
                        "PYTHONPATH", "VIRTUAL_ENV")}
    # ansible-playbook and friends come from the project's venv (see the module docstring).
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(venv.parent)  # no ~/.ansible/collections of the machine's user
    env.update(extra)
    return env


def wheel_runbook(venv: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "runbook"), *args], capture_output=True, text=True, check=False,
                          cwd=venv.parent, env=env or wheel_env(venv), timeout=600)


def test_wheel_ships_the_built_collection(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        manifest = json.loads(whl.read(f"{BUNDLE}/MANIFEST.json"))
    assert manifest["collection_info"]["version"] == __version__
    for wanted in ("meta/runtime.yml", "meta/scenarios.yml", "playbooks/service_down.yml",
                   "roles/service_restart/meta/argument_specs.yml", "plugins/modules/service_recover.py",
                   "FILES.json"):
        assert f"{BUNDLE}/{wanted}" in names, wanted
    # What galaxy.yml keeps out of the tarball stays out of the wheel's copy too.
    for unwanted in ("tests/", "cli/", "molecule/", "extensions/awx/", "inventories/", "setup.py", "build/"):
        assert not any(n.startswith(f"{BUNDLE}/{unwanted}") for n in names), unwanted


def test_wheel_only_install_lists_the_scenarios(wheel_venv):
    where = subprocess.run([str(wheel_venv / "bin" / "python"), "-c",
                            "import runbook_remediation.collection as c; print(c.find_collection().root)"],
                           capture_output=True, text=True, check=False, cwd=wheel_venv.parent,
                           env=wheel_env(wheel_venv))
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(wheel_venv), where.stdout  # not the checkout
    result = wheel_runbook(wheel_venv, "-o", "json", "list")
    assert result.returncode == 0, result.stdout + result.stderr
    names = {s["name"] for s in json.loads(result.stdout)}
    assert {"service-down", "disk-full"} <= names


def test_wheel_refuses_a_collection_of_another_release(wheel_venv, tmp_path):
    other = tmp_path / "ansible_collections" / "runbook" / "remediation"
    other.mkdir(parents=True)
    (other / "galaxy.yml").write_text("namespace: runbook\nname: remediation\nversion: 0.0.9\n", encoding="utf-8")
    result = wheel_runbook(wheel_venv, "list", env=wheel_env(wheel_venv, RUNBOOK_COLLECTION_ROOT=str(other)))
    assert result.returncode == 5, result.stdout + result.stderr
    assert f"0.0.9 at {other} does not match the runbook CLI {__version__}" in result.stderr
    assert "Traceback" not in result.stderr


def test_wheel_only_install_runs_a_playbook_of_its_own_collection(wheel_venv, tmp_path):
    """No lab needed: ansible-playbook runs the wheel's service_down (check mode) and the
    one host, a container that does not exist, is unreachable: exit 5, not 2 (the request
    and the frame's checks passed) and not 'collection not found'."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    ghost:\n      ansible_connection: community.docker.docker\n"
        "      ansible_host: runbook-no-such-container\n"
        "      runbook_services:\n        - {name: demo, manager: systemd, unit: demo.service,"
        " health_url: 'http://127.0.0.1:8080/health'}\n", encoding="utf-8")
    env = wheel_env(wheel_venv, RUNBOOK_STATE_DIR=str(tmp_path / "state"),
                    ANSIBLE_LOCAL_TEMP=str(tmp_path / "state" / "ansible-tmp"))
    result = wheel_runbook(wheel_venv, "run", "service-down", "--check", "-i", str(inventory), env=env)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "ghost" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.lab
def test_wheel_only_install_runs_service_down_in_check_mode(wheel_venv, lab):
    """Needs the lab: the wheel's CLI breaks lab-1, plans the restart in check mode, changes nothing."""
    from tests.conftest import http_status, restore_host, wait_for

    lab_keys = ("RUNBOOK_LAB_NAME", "RUNBOOK_STATE_DIR", "ANSIBLE_LOCAL_TEMP")
    env = wheel_env(wheel_venv, **{k: os.environ[k] for k in lab_keys if k in os.environ})
    host = lab.host("lab-1")
    try:
        crash = wheel_runbook(wheel_venv, "lab", "break", "crash", "--host", "lab-1", env=env)
        assert crash.returncode == 0, crash.stdout + crash.stderr
        wait_for(lambda: http_status(host.health_url) is None, timeout=10, what="lab-1 down")
        result = wheel_runbook(wheel_venv, "-o", "json", "run", "service-down", "-l", "lab-1", "--check", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        planned = json.loads(result.stdout)["hosts"]["lab-1"]
        assert planned["outcome"] == "planned" and planned["check_mode"] is True, planned
        assert planned["actions"] and "would restart" in planned["actions"][0]
        assert http_status(host.health_url) is None  # check mode restarted nothing
    finally:
        restore_host(lab, "lab-1")
