from __future__ import annotations

import os
import resource

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _proc
from ansible_collections.runbook.remediation.plugins.modules import process_limits_info as mod

LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             {nproc_soft:<20} {nproc_hard:<20} processes
Max open files            {nofile_soft:<20} {nofile_hard:<20} files
Max locked memory         8388608              8388608              bytes
Max nice priority         0                    0
Max realtime timeout      unlimited            unlimited            us
"""


def limits_text(nofile=(1024, 1024), nproc=(96364, 96364)):
    text = LIMITS.format(nofile_soft=nofile[0], nofile_hard=nofile[1], nproc_soft=nproc[0], nproc_hard=nproc[1])
    return "".join(line.ljust(78) + "\n" for line in text.splitlines())  # the kernel pads every row


def status_text(uid=0, cap_eff="000001ffffffffff"):
    return f"Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nCapEff:\t{cap_eff}\n"


def fake_process(proc, pid, comm="python3", nofile=(1024, 1024), nproc=(96364, 96364), fds=3,
                 cap_eff="000001ffffffffff", start_ticks=500):
    base = proc / str(pid)
    (base / "fd").mkdir(parents=True)
    for fd in range(fds):
        (base / "fd" / str(fd)).touch()
    (base / "limits").write_text(limits_text(nofile, nproc))
    (base / "status").write_text(status_text(cap_eff=cap_eff))
    (base / "comm").write_text(comm + "\n")
    fields = ["S"] + ["0"] * 18 + [str(start_ticks)] + ["0"] * 20
    (base / "stat").write_text(f"{pid} ({comm} (odd) name) " + " ".join(fields) + "\n")


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc"
    (root / "sys" / "fs").mkdir(parents=True)
    (root / "sys" / "fs" / "nr_open").write_text("1048576\n")
    (root / "sys" / "fs" / "file-max").write_text("9223372036854775807\n")
    (root / "sys" / "fs" / "file-nr").write_text("2912\t0\t9223372036854775807\n")
    (root / "stat").write_text("cpu  1 2 3\nbtime 1795000000\n")
    return root


def test_parse_limits_names_and_unlimited():
    limits = mod.parse_limits(limits_text(nofile=(1024, 4096)))
    assert limits["nofile"] == {"soft": 1024, "hard": 4096}
    assert limits["nproc"] == {"soft": 96364, "hard": 96364}
    assert limits["cpu"] == {"soft": -1, "hard": -1}
    assert limits["nice"] == {"soft": 0, "hard": 0}  # no unit column
    assert limits["rttime"] == {"soft": -1, "hard": -1}
    assert "Limit" not in limits


@pytest.mark.parametrize(("cap_eff", "expected"), [
    ("000001ffffffffff", True),
    ("000001fffeffffff", False),  # dockerd started without CAP_SYS_RESOURCE
    ("00000004a82425fb", False),  # a container's systemd
    ("0000000001000000", True),
])
def test_cap_sys_resource(cap_eff, expected):
    mask = _proc.parse_status(status_text(cap_eff=cap_eff)).cap_eff
    assert mod.has_capability(mask, mod.CAP_SYS_RESOURCE) is expected


def test_start_epoch_counts_fields_after_the_name():
    stat = "42 (a) b (c)) " + " ".join(["S"] + ["0"] * 18 + ["250"] + ["0"] * 5)
    assert mod.start_epoch(stat, 1000, 100) == 1002.5


def test_read_process(proc):
    fake_process(proc, 94, nofile=(1024, 2048), fds=7, start_ticks=os.sysconf("SC_CLK_TCK") * 3)
    info = mod.read_process(94, str(proc))
    assert info["pid"] == 94
    assert info["comm"] == "python3"
    assert info["uid"] == 0 and info["user"] == "root"
    assert info["open_fds"] == 7
    assert info["fd_usage"] == round(7 / 1024, 3)
    assert info["limits"]["nofile"] == {"soft": 1024, "hard": 2048}
    assert info["started_at"] == 1795000003.0
    assert info["cap_sys_resource"] is True


def test_read_process_gone(proc):
    with pytest.raises(mod.ProcessGone, match="process 4242 does not exist"):
        mod.read_process(4242, str(proc))


def test_supervisor_by_name_and_init(proc):
    fake_process(proc, 1, comm="systemd", nofile=(20000, 20000), cap_eff="00000004a82425fb")
    fake_process(proc, 700, comm="dockerd", nofile=(20000, 20000), cap_eff="000001fffeffffff")
    fake_process(proc, 701, comm="containerd")
    sups = mod.read_supervisors(["init", "dockerd", "nosuch"], str(proc))
    assert [s["name"] for s in sups] == ["init", "dockerd", "nosuch"]
    assert sups[0]["pid"] == 1 and sups[0]["comm"] == "systemd" and sups[0]["cap_sys_resource"] is False
    assert sups[1]["pid"] == 700 and sups[1]["limits"]["nofile"] == {"soft": 20000, "hard": 20000}
    assert sups[2] == {"name": "nosuch", "found": False}


def sup(comm, pid, nofile_hard, nproc_hard=-1, cap=False):
    return {"name": comm, "found": True, "pid": pid, "comm": comm, "cap_sys_resource": cap,
            "limits": {"nofile": {"soft": nofile_hard, "hard": nofile_hard},
                       "nproc": {"soft": nproc_hard, "hard": nproc_hard}}}


@pytest.mark.parametrize(("supervisors", "nofile", "nofile_reason", "nproc"), [
    ([], 1048576, "fs.nr_open", -1),
    ([sup("systemd", 1, 20000, 96364)], 20000, "hard limit of systemd (pid 1), which lacks CAP_SYS_RESOURCE", 96364),
    # with CAP_SYS_RESOURCE, systemd on a real host may go up to fs.nr_open
    ([sup("systemd", 1, 524288, cap=True)], 1048576, "fs.nr_open", -1),
    ([sup("dockerd", 700, 20000), sup("dockerd", 900, 8192)], 8192,
     "hard limit of dockerd (pid 900), which lacks CAP_SYS_RESOURCE", -1),
    ([{"name": "dockerd", "found": False}], 1048576, "fs.nr_open", -1),
    # a supervisor with unlimited nofile (impossible in practice) never lowers the ceiling
    ([sup("odd", 5, -1)], 1048576, "fs.nr_open", -1),
])
def test_compute_ceilings(supervisors, nofile, nofile_reason, nproc):
    ceilings = mod.compute_ceilings(1048576, supervisors)
    assert ceilings["nofile"] == {"value": nofile, "reason": nofile_reason}
    assert ceilings["nproc"]["value"] == nproc


def test_module_on_this_process(run_module):
    result = run_module(mod.main, {"pid": os.getpid(), "supervisors": ["init"]})
    assert not result.failed, result.msg
    assert result["changed"] is False
    process = result["process"]
    assert process["pid"] == os.getpid()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert process["limits"]["nofile"] == {"soft": soft, "hard": hard}
    assert process["open_fds"] >= 3
    assert result["kernel"]["nr_open"] > 0
    assert result["supervisors"][0]["pid"] == 1
    assert result["ceilings"]["nofile"]["value"] <= result["kernel"]["nr_open"]


def test_module_without_pid_reads_ceilings_only(run_module):
    result = run_module(mod.main, {"supervisors": ["no-such-process-name"]})
    assert not result.failed, result.msg
    assert "process" not in result.result
    assert result["supervisors"] == [{"name": "no-such-process-name", "found": False}]
    assert result["ceilings"]["nofile"] == {"value": result["kernel"]["nr_open"], "reason": "fs.nr_open"}
    assert result.warnings == [
        "no process named no-such-process-name runs on this host: its limits are not part of the ceilings"]


def test_module_pid_zero_is_a_clear_error(run_module):
    result = run_module(mod.main, {"pid": 0})
    assert result.failed
    assert "a stopped unit or container has no main process" in result.msg


def test_module_process_gone(run_module):
    result = run_module(mod.main, {"pid": 2**22 + 12345})
    assert result.failed
    assert result.msg.endswith("does not exist (any more); did the service stop or restart?")
