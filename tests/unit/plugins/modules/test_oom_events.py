from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from ansible_collections.runbook.remediation.plugins.modules import oom_events

UNIT_CG = "/docker/abc/system.slice/runbook-demo.service"
OTHER_CG = "/docker/abc/system.slice/other.service"

DMESG = f"""\
[ 3540.330000] python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[ 3540.330912] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=abc,mems_allowed=0-1,3,oom_memcg={UNIT_CG},\
task_memcg={UNIT_CG},task=python3,pid=14110,uid=997
[ 3540.330943] Memory cgroup out of memory: Killed process 14110 (python3) total-vm:517944kB, anon-rss:130156kB, \
file-rss:11048kB, shmem-rss:0kB, UID:997 pgtables:380kB oom_score_adj:0
[ 3600.000001] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=abc,mems_allowed=0,oom_memcg={OTHER_CG},\
task_memcg={OTHER_CG},task=java,pid=200,uid=0
[ 3600.000002] Memory cgroup out of memory: Killed process 200 (java) total-vm:1kB, anon-rss:2kB, file-rss:0kB
[ 3700.500000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=abc,mems_allowed=0,oom_memcg=/docker/abc,\
task_memcg={UNIT_CG},task=worker,pid=300,uid=997
[ 3700.500001] Memory cgroup out of memory: Killed process 300 (worker) total-vm:10kB, anon-rss:20kB, file-rss:0kB
"""

OLD_KERNEL = """\
[  100.000000] Task in /system.slice/app.service killed as a result of limit of /system.slice/app.service
[  100.000100] Memory cgroup out of memory: Kill process 42 (app) score 1000 or sacrifice child
[  100.000200] Killed process 42 (app) total-vm:2048kB, anon-rss:1024kB, file-rss:0kB, shmem-rss:0kB
[  200.000000] Out of memory: Killed process 7 (hog) total-vm:4096kB, anon-rss:4000kB, file-rss:0kB
"""


# --------------------------------------------------------------------------- pure helpers


def test_parse_dmesg_keeps_timed_lines():
    records = oom_events.parse_dmesg("[    1.500000] hello\nno time here\n[12345.000001] world")
    assert records == [(1.5, "hello"), (12345.000001, "world")]


def test_extract_kills_pairs_the_oom_kill_line_with_its_killed_process_line():
    kills = oom_events.extract_kills(oom_events.parse_dmesg(DMESG))
    assert [k["pid"] for k in kills] == [14110, 200, 300]
    first = kills[0]
    assert first == {
        "uptime": 3540.330912, "pid": 14110, "task": "python3", "uid": 997, "task_memcg": UNIT_CG,
        "oom_memcg": UNIT_CG, "constraint": "CONSTRAINT_MEMCG", "total_vm_kb": 517944, "anon_rss_kb": 130156,
        "message": first["message"],
    }
    assert first["message"].startswith("Memory cgroup out of memory: Killed process 14110")
    assert kills[2]["oom_memcg"] == "/docker/abc"  # a parent's limit, the unit's task


def test_extract_kills_reads_old_kernels_and_global_ooms():
    kills = oom_events.extract_kills(oom_events.parse_dmesg(OLD_KERNEL))
    assert len(kills) == 2
    assert kills[0]["task_memcg"] == "/system.slice/app.service" and kills[0]["pid"] == 42
    assert kills[0]["constraint"] == "CONSTRAINT_MEMCG" and kills[0]["anon_rss_kb"] == 1024
    assert kills[1]["task_memcg"] is None and kills[1]["task"] == "hog"  # host-wide OOM: no cgroup


@pytest.mark.parametrize(
    ("memcg", "cgroups", "expected"),
    [
        (UNIT_CG, [UNIT_CG], True),
        (UNIT_CG + "/", [UNIT_CG], True),
        (UNIT_CG + "/worker.scope", [UNIT_CG], True),
        (OTHER_CG, [UNIT_CG], False),
        ("/docker/abc/system.slice/runbook-demo.service2", [UNIT_CG], False),
        ("/docker/abc", [UNIT_CG], False),
        ("/docker/abc", ["/docker/xyz", "/docker/abc"], True),
        (None, [UNIT_CG], False),
        ("", [UNIT_CG], False),
    ],
)
def test_cgroup_matches_only_the_cgroup_and_beneath(memcg, cgroups, expected):
    assert oom_events.cgroup_matches(memcg, cgroups) is expected


@pytest.mark.parametrize(
    ("slice_name", "path"),
    [
        ("system.slice", "/system.slice"),
        ("user-1000.slice", "/user.slice/user-1000.slice"),
        ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
        ("-.slice", "/"),
        ("", "/"),
    ],
)
def test_slice_path(slice_name, path):
    assert oom_events.slice_path(slice_name) == path


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", 3),  # cgroup v1 memory.oom_control
        ("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n", 2),  # cgroup v2 memory.events
        ("oom_kill_disable 0\nunder_oom 0\n", None),  # kernels before 4.13 have no counter
    ],
)
def test_parse_counter(text, value):
    assert oom_events.parse_counter(text) == value


def test_parse_show_splits_units():
    text = "Id=system.slice\nControlGroup=/docker/abc/system.slice\n\nId=-.slice\nControlGroup=/docker/abc\n"
    assert oom_events.parse_show(text) == [
        {"Id": "system.slice", "ControlGroup": "/docker/abc/system.slice"},
        {"Id": "-.slice", "ControlGroup": "/docker/abc"},
    ]


def test_parse_mem_total():
    assert oom_events.parse_mem_total("MemTotal:       24683656 kB\nMemFree: 1 kB\n") == 24683656 * 1024
    assert oom_events.parse_mem_total("nothing") is None


def test_parse_journal_uses_the_kernel_time_and_decodes_byte_messages():
    lines = [
        {"MESSAGE": "hello", "_SOURCE_MONOTONIC_TIMESTAMP": "3540330912"},
        {"MESSAGE": list(b"bytes \xff"), "__REALTIME_TIMESTAMP": "1000000000"},
        {"MESSAGE": "no time"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    records = oom_events.parse_journal(text, boot_time=900.0)
    assert records[0] == (3540.330912, "hello")
    assert records[1][0] == pytest.approx(100.0) and records[1][1].startswith("bytes ")
    assert len(records) == 2


# --------------------------------------------------------------------------- the module


@pytest.fixture
def fake_host(monkeypatch, tmp_path):
    """Commands the module runs, answered from ``answers`` (argv[0] basename + args -> (rc, out, err))."""
    from ansible.module_utils import basic

    answers: dict = {}
    calls: list = []

    def get_bin_path(self, name, *args, **kwargs):
        return None if answers.get(("missing", name)) else f"/usr/bin/{name}"

    def run_command(self, args, **kwargs):
        calls.append(list(args))
        key = (args[0].rsplit("/", 1)[-1], *args[1:])
        for pattern, answer in answers.items():
            if pattern[0] != "missing" and key[: len(pattern)] == pattern:
                return answer
        return 1, "", f"unexpected command {args}"

    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    # The kernel log's clock: boot at a fixed time, so that kill times are predictable.
    clock = SimpleNamespace(time=lambda: 1_000_000.0, clock_gettime=lambda _clock: 10_000.0,
                            CLOCK_MONOTONIC=time.CLOCK_MONOTONIC)
    monkeypatch.setattr(oom_events, "time", clock)
    return answers, calls, tmp_path


def counter_file(root, cgroup, text):
    path = root / "memory" / cgroup.lstrip("/")
    path.mkdir(parents=True)
    (path / "memory.oom_control").write_text(text)


@pytest.fixture
def run(run_module, fake_host):
    root = fake_host[2]

    def _run(**args):
        args.setdefault("cgroup_root", str(root))
        return run_module(oom_events.main, args)

    return _run


def test_running_unit_kills_since_and_counter(run, fake_host):
    answers, calls, root = fake_host
    answers[("systemctl", "show")] = (0, f"Id=runbook-demo.service\nControlGroup={UNIT_CG}\nSlice=system.slice\n"
                                         "LoadState=loaded\n", "")
    answers[("dmesg",)] = (0, DMESG, "")
    counter_file(root, UNIT_CG, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")

    result = run(unit="runbook-demo.service", since=990_000.0 + 3600)  # boot 990000: only kills after 3600 s
    assert not result.failed, result.msg
    assert result["changed"] is False
    assert result["unit_cgroup"] == UNIT_CG and result["cgroups"] == [UNIT_CG]
    assert result["kernel_log"] == "dmesg" and result["kernel_log_errors"] == {}
    assert [k["pid"] for k in result["kills"]] == [300]  # 14110 is too old, 200 is another unit's
    assert result["kills"][0]["time"] == pytest.approx(990_000.0 + 3700.5)
    assert result["count"] == 1 and result["older"] == 1
    assert result["oom_kill_counter"] == 2
    assert result["counter_file"].endswith(UNIT_CG + "/memory.oom_control")
    assert result["boot_time"] == 990_000.0
    assert result["mem_total"] > 0
    assert ["/usr/bin/dmesg"] in calls


def test_dead_unit_is_found_through_its_slice(run, fake_host):
    answers = fake_host[0]
    answers[("systemctl", "show", "--property=Id,ControlGroup,Slice,LoadState")] = (
        0, "Id=runbook-demo.service\nControlGroup=\nSlice=system.slice\nLoadState=loaded\n", "")
    answers[("systemctl", "show", "--property=Id,ControlGroup")] = (
        0, "Id=system.slice\nControlGroup=/docker/abc/system.slice\n\nId=-.slice\nControlGroup=/docker/abc\n", "")
    answers[("dmesg",)] = (0, DMESG, "")
    result = run(unit="runbook-demo.service")
    assert result["unit_cgroup"] == UNIT_CG
    assert [k["pid"] for k in result["kills"]] == [14110, 300]
    assert result["oom_kill_counter"] is None and "counter_file" not in result.result


def test_dead_unit_in_an_inactive_slice_uses_the_root(run, fake_host):
    answers = fake_host[0]
    answers[("systemctl", "show", "--property=Id,ControlGroup,Slice,LoadState")] = (
        0, "Id=app.service\nControlGroup=\nSlice=apps-web.slice\nLoadState=loaded\n", "")
    answers[("systemctl", "show", "--property=Id,ControlGroup")] = (
        0, "Id=apps-web.slice\nControlGroup=\n\nId=-.slice\nControlGroup=/\n", "")
    answers[("dmesg",)] = (0, "", "")
    result = run(unit="app.service")
    assert result["unit_cgroup"] == "/apps.slice/apps-web.slice/app.service"


def test_journal_when_dmesg_is_refused(run, fake_host):
    answers, calls = fake_host[:2]
    answers[("dmesg",)] = (1, "", "dmesg: read kernel buffer failed: Operation not permitted")
    entry = {"MESSAGE": f"oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/docker/{'f' * 64},task=app,pid=9,uid=0",
             "_SOURCE_MONOTONIC_TIMESTAMP": "5000000"}
    answers[("journalctl",)] = (0, json.dumps(entry) + "\n", "")
    result = run(cgroups=[f"/docker/{'f' * 64}"], since=990_004.0)
    assert result["kernel_log"] == "journal"
    assert result["kernel_log_errors"] == {"dmesg": "dmesg: read kernel buffer failed: Operation not permitted"}
    assert [k["pid"] for k in result["kills"]] == [9]
    journal = next(c for c in calls if c[0].endswith("journalctl"))
    assert "--dmesg" in journal and "--since=@990004" in journal


def test_no_kernel_log_warns_and_still_reads_the_counter(run, fake_host):
    answers, root = fake_host[0], fake_host[2]
    answers[("missing", "dmesg")] = True
    answers[("journalctl",)] = (1, "", "No journal files were found.")
    counter_file(root, "/docker/abc", "oom_kill 1\n")
    result = run(cgroups=["/docker/abc"])
    assert not result.failed
    assert result["kernel_log"] is None and result["kills"] == []
    assert result["kernel_log_errors"] == {"dmesg": "dmesg is not installed", "journal": "No journal files were found."}
    assert result["oom_kill_counter"] == 1
    assert "could not read the kernel log" in result.warnings[0]


def test_cgroup_v2_counter(run, fake_host):
    answers, root = fake_host[0], fake_host[2]
    answers[("dmesg",)] = (0, "", "")
    path = root / "system.slice" / "app.service"
    path.mkdir(parents=True)
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
    result = run(cgroups=["/system.slice/app.service"], kernel_log=["dmesg"])
    assert result["oom_kill_counter"] == 1 and result["counter_file"].endswith("memory.events")


def test_unknown_unit_is_bad_input(run, fake_host):
    answers = fake_host[0]
    answers[("systemctl", "show")] = (0, "Id=nope.service\nControlGroup=\nSlice=\nLoadState=not-found\n", "")
    result = run(unit="nope.service")
    assert result.failed and result["error_kind"] == "input"
    assert result.msg == "oom_events: unit nope.service is not known to systemd on this host"


def test_unit_or_cgroups_is_required(run):
    result = run()
    assert result.failed
    assert "one of the following is required: unit, cgroups" in result.msg
