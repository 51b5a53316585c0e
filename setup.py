"""Build hook: the wheel carries the Ansible collection the CLI drives.

``pip install .`` (not editable) and ``pip wheel .`` build the collection with
``ansible-galaxy collection build`` (the same content as the Galaxy tarball: galaxy.yml's
``build_ignore`` decides what ships) and unpack it, as ``ansible-galaxy collection install``
would, into ``runbook_remediation/_collection/ansible_collections/runbook/remediation``.
``runbook_remediation.collection`` finds it there. An editable install skips this: the
CLI then uses the checkout itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE = Path("runbook_remediation", "_collection", "ansible_collections", "runbook", "remediation")
# ansible-galaxy, run from the build environment's ansible-core (see build-system.requires).
GALAXY = "import sys; from ansible.cli.galaxy import main; sys.argv[0] = 'ansible-galaxy'; main()"


class BuildPyWithCollection(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not (ROOT / "galaxy.yml").is_file():
            raise SystemExit("setup.py: galaxy.yml not found: build the wheel from the checkout or the sdist")
        dest = Path(self.build_lib) / BUNDLE
        with tempfile.TemporaryDirectory() as out:
            result = subprocess.run(
                [sys.executable, "-c", GALAXY, "collection", "build", str(ROOT), "--output-path", out, "--force"],
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise SystemExit(f"setup.py: ansible-galaxy collection build failed:\n{result.stdout}{result.stderr}")
            tarball = next(Path(out).glob("runbook-remediation-*.tar.gz"))
            shutil.rmtree(dest.parents[1], ignore_errors=True)  # no file of an earlier build lingers
            dest.mkdir(parents=True)
            with tarfile.open(tarball) as tar:
                tar.extractall(dest, filter="data")


setup(cmdclass={"build_py": BuildPyWithCollection})
