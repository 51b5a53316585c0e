"""The frame's catalogue reader: parsed once per process, again when the file changes."""

from __future__ import annotations

import os
import shutil

import pytest
from ansible_collections.runbook.remediation.plugins.plugin_utils import _frame


@pytest.fixture
def catalogue(tmp_path, monkeypatch):
    """A copy of meta/scenarios.yml the frame reads instead of the collection's."""
    root = tmp_path / "collection"
    (root / "meta").mkdir(parents=True)
    path = root / "meta" / "scenarios.yml"
    shutil.copy(os.path.join(_frame.COLLECTION_ROOT, "meta", "scenarios.yml"), path)
    monkeypatch.setattr(_frame, "COLLECTION_ROOT", str(root))
    monkeypatch.setattr(_frame, "_CATALOGUE_CACHE", {})
    return path


def test_an_entry_comes_from_the_catalogue(catalogue):
    entry = _frame.catalogue_entry("service-down")
    assert entry["name"] == "service-down" and entry["severity"] == "P0"
    with pytest.raises(ValueError, match="'no-such' is not in the catalogue"):
        _frame.catalogue_entry("no-such")


def test_the_catalogue_is_parsed_once_and_again_after_a_change(catalogue, monkeypatch):
    parsed = []
    real = _frame._load_yaml
    monkeypatch.setattr(_frame, "_load_yaml", lambda text: parsed.append(1) or real(text))
    for _attempt in range(5):
        _frame.catalogue_entry("service-down")
    assert len(parsed) == 1

    text = catalogue.read_text(encoding="utf-8")
    catalogue.write_text(text.replace("severity: P0", "severity: P1", 1), encoding="utf-8")
    stat = catalogue.stat()
    os.utime(catalogue, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    assert _frame.catalogue_entry("service-down")["severity"] == "P1"
    assert len(parsed) == 2


def test_the_libyaml_loader_is_safe():
    """CSafeLoader when libyaml is there, SafeLoader otherwise: never a loader that builds objects."""
    assert _frame._YAML_LOADER.__name__ in ("CSafeLoader", "SafeLoader")
    with pytest.raises(Exception, match="could not determine a constructor"):
        _frame._load_yaml("!!python/object/apply:os.system ['true']")
