"""Finding the collection: the wheel's bundled copy, and the version check that fails closed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runbook_remediation import __version__, collection
from runbook_remediation.errors import ExitCode, Unavailable

REPO = Path(__file__).resolve().parents[3]
FIXTURE = Path(__file__).parent / "fixtures" / "collection"


def test_one_version_for_the_cli_the_collection_and_the_fixture():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
    assert galaxy["version"] == __version__, "bump galaxy.yml and runbook_remediation.__version__ together"
    assert collection.collection_version(REPO) == __version__
    assert collection.collection_version(FIXTURE) == __version__, "the CLI test fixture's galaxy.yml too"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and 'attr = "runbook_remediation.__version__"' in pyproject


def test_version_from_an_installed_manifest(tmp_path):
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "1.2.3"}}), encoding="utf-8")
    assert collection.collection_version(tmp_path) == "1.2.3"
    (tmp_path / "MANIFEST.json").write_text("{not json", encoding="utf-8")
    assert collection.collection_version(tmp_path) is None


def test_another_release_fails_closed(tmp_path):
    root = tmp_path / "remediation"
    root.mkdir()
    (root / "galaxy.yml").write_text("namespace: runbook\nname: remediation\nversion: '9.9.9'  # x\n",
                                     encoding="utf-8")
    with pytest.raises(Unavailable) as caught:
        collection.check_version(collection.Collection(root, tmp_path))
    assert caught.value.exit_code == ExitCode.UNAVAILABLE
    assert f"9.9.9 at {root} does not match the runbook CLI {__version__}" in caught.value.message
    assert collection.check_version(collection.Collection(root, tmp_path), "9.9.9").root == root


def test_cli_exits_5_with_one_line_for_a_mismatched_collection(tmp_path):
    root = tmp_path / "remediation"
    root.mkdir()
    (root / "galaxy.yml").write_text("namespace: runbook\nname: remediation\nversion: 0.0.1\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "runbook_remediation", "list"], capture_output=True, text=True,
                            check=False, env={"PATH": "/usr/bin:/bin", "RUNBOOK_COLLECTION_ROOT": str(root),
                                              "HOME": str(tmp_path)})
    assert result.returncode == 5, result.stdout + result.stderr
    assert "does not match the runbook CLI" in result.stderr and "Traceback" not in result.stderr


def test_the_wheels_bundled_copy_is_found_without_a_checkout(tmp_path, monkeypatch):
    bundled = tmp_path / "_collection"
    root = bundled / "ansible_collections" / "runbook" / "remediation"
    root.mkdir(parents=True)
    (root / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": __version__}}), encoding="utf-8")
    monkeypatch.setattr(collection, "BUNDLED", bundled)
    monkeypatch.setattr(collection, "checkout_root", lambda: None)
    monkeypatch.delenv("RUNBOOK_COLLECTION_ROOT", raising=False)
    found = collection.find_collection()
    assert found.root == root and found.search_path == bundled
    assert found.env_collections_path().split(":")[0] == str(bundled)


def test_runtime_requires_ansible_has_a_lower_bound_only():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    spec = runtime["requires_ansible"]
    assert re.fullmatch(r">=\s*2\.\d+(\.\d+)?", spec), spec


def test_execution_environment_metadata_names_existing_files():
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert meta["version"] == 1
    python = (REPO / meta["dependencies"]["python"]).read_text(encoding="utf-8")
    system = (REPO / meta["dependencies"]["system"]).read_text(encoding="utf-8")
    wanted = {re.split(r"[<>=\s\[]", line)[0].lower() for line in python.splitlines()
              if line.strip() and not line.startswith("#")}
    assert {"requests", "psycopg2-binary", "jmespath"} <= wanted
    assert "postgresql-client [platform:dpkg]" in system


def test_list_fits_an_80_column_terminal_one_line_per_scenario(monkeypatch):
    """The real catalogue (the checkout's collection): a header and one line per scenario."""
    from click.testing import CliRunner

    from runbook_remediation import catalogue, shell

    monkeypatch.delenv("RUNBOOK_COLLECTION_ROOT", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    scenarios = catalogue.catalogue(collection.find_collection())
    result = CliRunner().invoke(shell.cli, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(scenarios) + 1, result.stdout
    assert max(len(line) for line in lines) <= 80, result.stdout
    for line, scenario in zip(lines[1:], scenarios, strict=True):
        assert line.split()[:3] == [scenario.name, scenario.severity, "yes" if scenario.destructive else "no"]
    full = CliRunner().invoke(shell.cli, ["list", "--full"])
    assert full.exit_code == 0 and "restart budget" in " ".join(full.stdout.split())


def test_runs_starting_at_once_each_put_the_same_dev_link_in_place(tmp_path, monkeypatch):
    """Eight processes on a fresh cache, each through a stale link: none fails (File exists)."""
    import multiprocessing

    monkeypatch.setenv("RUNBOOK_CACHE_DIR", str(tmp_path / "cache"))
    search = collection.dev_search_path(REPO)
    link = search / "ansible_collections" / "runbook" / "remediation"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path, target_is_directory=True)  # stale: another checkout
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=collection.ensure_dev_link, args=(REPO,)) for _worker in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [worker.exitcode for worker in workers] == [0] * 8
    assert link.resolve() == REPO
    assert sorted(p.name for p in link.parent.iterdir()) == ["remediation"]  # no temporary left
