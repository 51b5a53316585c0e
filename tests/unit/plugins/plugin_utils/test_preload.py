"""Preloading a play's plugins in ansible-playbook's main process (before it forks workers)."""

from __future__ import annotations

import pytest
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.vars.manager import VariableManager
from ansible_collections.runbook.remediation.plugins.plugin_utils import _frame, _preload

INVENTORY = """\
all:
  children:
    containers:
      vars:
        ansible_connection: community.docker.docker
      hosts:
        web-1: {}
        web-2: {}
    local:
      hosts:
        ctl:
          ansible_connection: local
        templated:
          ansible_connection: "{{ lookup('env', 'CONN') }}"
    remote:
      hosts:
        db-1: {}
"""


@pytest.fixture
def play_for(tmp_path):
    source = tmp_path / "inventory.yml"
    source.write_text(INVENTORY, encoding="utf-8")
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(source)])
    manager = VariableManager(loader=loader, inventory=inventory)

    def play_for(hosts: str, **keywords) -> Play:
        return Play.load({"hosts": hosts, "gather_facts": False, "tasks": [], **keywords},
                         variable_manager=manager, loader=loader)

    return play_for


def test_each_host_names_its_connection_or_gets_the_plays(play_for):
    # A group's connection, a host's own; a templated one is left to the workers (the
    # play's default stands in); a host that names none gets the play's.
    assert _preload.connection_names(play_for("all")) == {"community.docker.docker", "local", "ssh"}
    assert _preload.connection_names(play_for("containers")) == {"community.docker.docker"}
    assert _preload.connection_names(play_for("remote", connection="paramiko")) == {"paramiko"}


def test_a_frame_play_loads_the_frame_actions_and_the_catalogue(play_for, monkeypatch):
    monkeypatch.setattr(_frame, "_CATALOGUE_CACHE", {})
    loaded = _preload.preload(play_for("containers"), "service-down")
    assert loaded[0] == "community.docker.docker" and "ansible.builtin.sh" in loaded
    assert set(_preload.FRAME_ACTIONS) <= set(loaded)
    assert _frame._CATALOGUE_CACHE, "the catalogue was not parsed in this process"


def test_another_play_loads_only_its_connections(play_for, monkeypatch):
    monkeypatch.setattr(_frame, "_CATALOGUE_CACHE", {})
    assert _preload.preload(play_for("ctl")) == ["local", "ansible.builtin.sh"]
    assert not _frame._CATALOGUE_CACHE


def test_an_unknown_scenario_is_an_error_the_callback_catches(play_for):
    with pytest.raises(ValueError, match="not in the catalogue"):
        _preload.preload(play_for("ctl"), "no-such-scenario")
