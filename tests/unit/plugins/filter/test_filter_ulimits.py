from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.runbook.remediation.plugins.filter.ulimits import ulimit_plan

CEILING = {"nofile": {"value": 20000, "reason": "hard limit of systemd (pid 1), which lacks CAP_SYS_RESOURCE"},
           "nproc": {"value": 96364, "reason": "hard limit of systemd (pid 1), which lacks CAP_SYS_RESOURCE"}}


def probe(nofile=(1024, 1024), nproc=(4096, 4096), configured_nofile=None, configured_nproc=None, ceilings=None):
    def pair(value):
        return {"soft": value[0], "hard": value[1]}

    return {
        "nofile": pair(nofile), "nproc": pair(nproc),
        "configured": {"nofile": pair(configured_nofile or nofile), "nproc": pair(configured_nproc or nproc)},
        "ceilings": CEILING if ceilings is None else ceilings,
    }


def test_no_pressure_no_request_is_nothing_to_do():
    plan = ulimit_plan(probe(), pressure=False)
    assert plan["want"] == {} and plan["changes"] == {}
    assert not plan["configure"] and not plan["restart"]
    assert plan["refused"] == [] and plan["escalate"] == ""


def test_pressure_doubles_the_soft_limit():
    plan = ulimit_plan(probe(), pressure=True)
    assert plan["want"] == {"nofile": 2048}
    assert plan["changes"] == {"nofile": {"soft": 2048, "hard": 2048}}
    assert plan["was"] == {"nofile": {"soft": 1024, "hard": 1024}}
    assert plan["configure"] and plan["restart"]
    assert plan["notes"] == ["new nofile 2048 (1024 x 2)"]


@pytest.mark.parametrize(("soft", "factor", "nofile_max", "target", "why"), [
    (1024, 2, 65536, 2048, "1024 x 2"),
    (1000, 1.5, 65536, 1500, "1000 x 1.5"),
    (1001, 1.5, 65536, 1502, "1001 x 1.5"),  # rounded up
    (16384, 2, 65536, 20000, "the platform ceiling: hard limit of systemd"),
    (8192, 4, 10000, 10000, "ulimit_raise_nofile_max"),
])
def test_computed_target_is_bounded(soft, factor, nofile_max, target, why):
    plan = ulimit_plan(probe(nofile=(soft, soft)), factor=factor, nofile_max=nofile_max, pressure=True)
    assert plan["want"] == {"nofile": target}
    assert plan["notes"][0].startswith(f"new nofile {target} ({why}")


@pytest.mark.parametrize(("nofile", "nofile_max", "words"), [
    ((20000, 20000), 65536, "nofile is already 20000, the most allowed (the platform ceiling: hard limit of systemd"),
    ((4096, 4096), 4096, "nofile is already 4096, the most allowed (ulimit_raise_nofile_max)"),
])
def test_at_the_cap_under_pressure_escalates(nofile, nofile_max, words):
    plan = ulimit_plan(probe(nofile=nofile), nofile_max=nofile_max, pressure=True)
    assert plan["escalate"].startswith(words)
    assert plan["escalate"].endswith("raising it cannot help, look for a descriptor leak")
    assert plan["changes"] == {} and not plan["restart"]


def test_requested_limit_applies_without_pressure_and_keeps_a_higher_hard_limit():
    plan = ulimit_plan(probe(nofile=(1024, 8192)), nofile=4096)
    assert plan["changes"] == {"nofile": {"soft": 4096, "hard": 8192}}


@pytest.mark.parametrize(("item", "args", "message"), [
    ("nofile", {"nofile": 50000},
     "requested nofile 50000 is above the platform ceiling 20000 (hard limit of systemd (pid 1), which lacks "
     "CAP_SYS_RESOURCE)"),
    ("nproc", {"nproc": 100000},
     "requested nproc 100000 is above the platform ceiling 96364 (hard limit of systemd (pid 1), which lacks "
     "CAP_SYS_RESOURCE)"),
])
def test_requested_above_the_ceiling_is_refused_and_nothing_planned(item, args, message):
    plan = ulimit_plan(probe(), pressure=True, **args)
    assert plan["refused"] == [message]
    assert plan["changes"] == {} and not plan["configure"] and not plan["restart"]


def test_requested_at_the_ceiling_is_fine():
    plan = ulimit_plan(probe(), nofile=20000)
    assert plan["refused"] == [] and plan["changes"]["nofile"] == {"soft": 20000, "hard": 20000}


def test_never_lowered():
    plan = ulimit_plan(probe(nofile=(8192, 8192), nproc=(-1, -1)), nofile=4096, nproc=2048)
    assert plan["changes"] == {}
    assert plan["notes"] == ["nofile is already 8192 (wanted 4096): left alone, never lowered",
                             "nproc is already unlimited (wanted 2048): left alone, never lowered"]


def test_configured_but_not_restarted_needs_only_a_restart():
    plan = ulimit_plan(probe(configured_nofile=(2048, 2048)), nofile=2048)
    assert plan["restart"] and not plan["configure"]


def test_running_with_it_but_configured_lower_needs_only_configuration():
    plan = ulimit_plan(probe(nofile=(2048, 2048), configured_nofile=(1024, 1024)), nofile=2048)
    assert plan["configure"] and not plan["restart"]


def test_nproc_with_an_unlimited_hard_limit_keeps_it():
    plan = ulimit_plan(probe(nproc=(512, -1)), nproc=1024)
    assert plan["changes"] == {"nproc": {"soft": 1024, "hard": -1}}


def test_no_ceiling_for_nproc():
    ceilings = {"nofile": {"value": 1048576, "reason": "fs.nr_open"}, "nproc": {"value": -1, "reason": "none"}}
    plan = ulimit_plan(probe(ceilings=ceilings), nproc=10**6)
    assert plan["refused"] == [] and plan["changes"]["nproc"]["soft"] == 10**6


def test_bad_probe_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="nofile must have integer soft and hard limits"):
        ulimit_plan({"nofile": {}, "nproc": {"soft": 1, "hard": 1}})
