"""_proc: the one reader of /proc (pure parsers, then readers on a fake tree and on this process)."""

from __future__ import annotations

import os
import socket

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _proc


def stat_line(pid=42, comm="python3", state="S", ppid=1, start=123456):
    fields = [state, str(ppid), "42", "42"] + ["0"] * 15 + [str(start)] + ["0"] * 20
    return f"{pid} ({comm}) " + " ".join(fields) + "\n"


# --------------------------------------------------------------------------- stat


@pytest.mark.parametrize(("comm", "state", "ppid", "start"), [
    ("python3", "S", 1, 123456),
    ("soffice (x) y", "R", 4230, 7),  # the name may hold parentheses and spaces
    ("a) b (c)", "Z", 2, 0),
    ("", "D", 0, 99),
])
def test_parse_stat(comm, state, ppid, start):
    assert _proc.parse_stat(stat_line(comm=comm, state=state, ppid=ppid, start=start)) == (comm, state, ppid, start)


@pytest.mark.parametrize("text", ["", "42 python3 S 1", "42 (x) S 1 2 3"])
def test_parse_stat_refuses_what_is_not_a_stat_line(text):
    with pytest.raises(ValueError, match="unexpected /proc/PID/stat"):
        _proc.parse_stat(text)


@pytest.mark.parametrize(("start", "boot", "ticks", "epoch"), [
    (250, 1000, 100, 1002.5),
    (0, 1795000000, 100, 1795000000.0),
    (1, 0, 3, 0.33),  # two decimals
])
def test_start_epoch(start, boot, ticks, epoch):
    assert _proc.start_epoch(stat_line(comm="a) b (c", start=start), boot, ticks) == epoch


# --------------------------------------------------------------------------- status


STATUS = ("Name:\tsoffice.bin\nState:\tS (sleeping)\nUid:\t65534\t0\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n"
          "VmRSS:\t   83692 kB\nCapEff:\t000001fffeffffff\n")


@pytest.mark.parametrize(("text", "uid", "gid", "rss", "cap_eff"), [
    (STATUS, 65534, 65534, 83692 * 1024, 0x1fffeffffff),
    ("Name:\tx\nState:\tZ (zombie)\nUid:\t1\t1\t1\t1\n", 1, None, 0, 0),  # a zombie has no VmRSS
    ("Name:\tx\n", None, None, 0, 0),
])
def test_parse_status(text, uid, gid, rss, cap_eff):
    status = _proc.parse_status(text)
    assert (status.uid, status.gid, status.rss, status.cap_eff) == (uid, gid, rss, cap_eff)


@pytest.mark.parametrize(("uids", "gids", "ids"), [
    ("0\t0\t0\t0", "0\t0\t0\t0", (0, 0)),
    ("1000\t1000\t1000\t0", "100\t100\t100\t7", (1000, 100)),  # the filesystem id does not count
    ("1000\t0\t1000\t1000", "100\t100\t100\t100", None),  # setuid half-way
    ("1000\t1000\t1000\t1000", "100\t100\t0\t100", None),
    (None, "100\t100\t100\t100", None),  # no Uid line
])
def test_status_ids_only_when_real_effective_and_saved_agree(uids, gids, ids):
    text = "Name:\tx\n" + (f"Uid:\t{uids}\n" if uids else "") + f"Gid:\t{gids}\n"
    assert _proc.parse_status(text).ids == ids


# --------------------------------------------------------------------------- links, environ, maps, tables


@pytest.mark.parametrize(("target", "stripped"), [
    ("/var/log/app.log (deleted)", "/var/log/app.log"),
    ("/var/log/app.log", "/var/log/app.log"),
    ("/tmp/(deleted) x", "/tmp/(deleted) x"),
])
def test_strip_deleted(target, stripped):
    assert _proc.strip_deleted(target) == stripped


@pytest.mark.parametrize(("data", "env"), [
    (b"PATH=/bin\0TMPDIR=/var/tmp/x/\0", {"PATH": "/bin", "TMPDIR": "/var/tmp/x/"}),
    (b"A=b=c\0NOEQUALS\0\0", {"A": "b=c"}),
    (b"", {}),
    (b"X=\xff\0", {"X": "\ufffd"}),
])
def test_parse_environ(data, env):
    assert _proc.parse_environ(data) == env


@pytest.mark.parametrize(("target", "inode"), [
    ("socket:[45123]", 45123),
    ("pipe:[45123]", None),
    ("/var/log/socket:[1]", None),
])
def test_socket_inode(target, inode):
    assert _proc.socket_inode(target) == inode


MAPS = """\
55d0c4a00000-55d0c4a28000 r--p 00000000 fd:01 1835037                    /usr/bin/python3.11
7f1c2c000000-7f1c2c021000 rw-p 00000000 00:00 0
7f1c2d5ff000-7f1c2d600000 ---p 00000000 00:00 0                          [stack]
7f1c2e000000-7f1c2e001000 r--s 00000000 00:1a 4242                       /dev/shm/x (deleted)
7ffd5a1f0000-7ffd5a211000 rw-p 00000000 00:00 0
"""


def test_parse_maps_keeps_file_backed_mappings_only():
    assert _proc.parse_maps(MAPS) == [(os.makedev(0xfd, 0x01), 1835037), (os.makedev(0, 0x1a), 4242)]


def test_parse_net_unix_bound_paths_only():
    text = ("Num       RefCount Protocol Flags    Type St Inode Path\n"
            "0000000000000000: 00000002 00000000 00010000 0001 01 22081 /run/systemd/private\n"
            "0000000000000000: 00000002 00000000 00000000 0002 01 17934\n"
            "0000000000000000: 00000003 00000000 00000000 0001 03 23456 /tmp/OSL_PIPE_0_x y\n")
    assert _proc.parse_net_unix(text) == {"/run/systemd/private", "/tmp/OSL_PIPE_0_x y"}


@pytest.mark.parametrize(("text", "value"), [
    ("MemTotal:       24683656 kB\nMemFree: 1 kB\n", 24683656 * 1024),
    ("MemFree:        1 kB\n", None),
    ("", None),
])
def test_parse_mem_total(text, value):
    assert _proc.parse_mem_total(text) == value


@pytest.mark.parametrize(("text", "btime"), [
    ("cpu  1 2 3\nbtime 1795000000\nprocesses 9\n", 1795000000),
    ("btime 0\n", 0),
])
def test_parse_btime(text, btime):
    assert _proc.parse_btime(text) == btime


def test_parse_btime_refuses_a_stat_without_it():
    with pytest.raises(ValueError, match="no btime"):
        _proc.parse_btime("cpu  1 2 3\n")


# --------------------------------------------------------------------------- readers


@pytest.fixture
def fake_proc(tmp_path):
    """A /proc tree with PID 77 (a fd dir with three entries, a socket among them) and a kernel-ish entry."""
    root = tmp_path / "proc"
    base = root / "77"
    (base / "fd").mkdir(parents=True)
    (base / "fd" / "0").symlink_to("/dev/null")
    (base / "fd" / "1").symlink_to("socket:[555]")
    (base / "fd" / "2").symlink_to("pipe:[556]")
    (base / "stat").write_text(stat_line(pid=77, comm="name with) paren", ppid=5, start=900))
    (base / "status").write_text(STATUS)
    (base / "comm").write_bytes(b"w\xffeird\n")
    (base / "cmdline").write_bytes(b"/usr/bin/worker\0--flag\0")
    (base / "environ").write_bytes(b"TMPDIR=/var/tmp\0")
    (base / "cgroup").write_text("0::/system.slice/converter.service\n")
    (base / "exe").symlink_to("/usr/bin/worker (deleted)")
    (root / "self").mkdir()
    (root / "uptime").write_text("12345.67 99.0\n")
    (root / "sys" / "fs").mkdir(parents=True)
    (root / "sys" / "fs" / "file-nr").write_text("2912\t0\t9223372036854775807\n")
    return root


def test_readers_on_a_fake_tree(fake_proc):
    proc = str(fake_proc)
    assert _proc.pids(proc) == [77]
    assert _proc.is_mounted(proc)
    assert _proc.read_stat(77, proc) == ("name with) paren", "S", 5, 900)
    assert _proc.read_status(77, proc).uid == 65534
    assert _proc.read_comm(77, proc) == "w\ufffdeird"
    assert _proc.read_cmdline(77, proc) == ["/usr/bin/worker", "--flag"]
    assert _proc.exe_basename(_proc.read_exe(77, proc)) == "worker"
    assert _proc.read_environ(77, proc) == b"TMPDIR=/var/tmp\0"
    assert _proc.in_unit(_proc.read_cgroup(77, proc), "converter.service")
    assert _proc.fd_count(77, proc) == 3
    assert _proc.socket_inodes(77, proc) == {555}
    assert _proc.uptime(proc) == 12345.67
    assert _proc.read_sys_number("fs/file-nr", proc) == 2912
    assert _proc.unix_socket_paths(proc) is None  # no net/unix in the fake tree


def test_a_gone_process_raises_oserror(fake_proc):
    with pytest.raises(FileNotFoundError):
        _proc.read_stat(4242, str(fake_proc))
    with pytest.raises(FileNotFoundError):
        _proc.fd_count(4242, str(fake_proc))


def test_boot_time_names_the_tree_when_btime_is_missing(fake_proc):
    (fake_proc / "stat").write_text("cpu  1 2 3\n")
    with pytest.raises(ValueError, match=f"no btime line in {fake_proc}/stat"):
        _proc.boot_time(str(fake_proc))


def test_this_process_as_the_kernel_shows_it():
    pid = os.getpid()
    _comm, state, ppid, start = _proc.read_stat(pid)
    assert state in ("R", "S") and ppid == os.getppid() and start > 0
    status = _proc.read_status(pid)
    assert (status.uid, status.gid) == (os.getuid(), os.getgid()) and status.rss > 0
    assert pid in _proc.pids()
    assert _proc.boot_time() <= _proc.start_epoch(_proc.read_text(_proc.pid_path(pid, "stat")), _proc.boot_time(),
                                                  os.sysconf("SC_CLK_TCK"))
    assert os.path.samefile(_proc.read_exe(pid), "/proc/self/exe")


def test_listening_addresses_of_this_process():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert ("127.0.0.1", port) in _proc.listening_addresses(os.getpid())
    assert ("127.0.0.1", port) not in _proc.listening_addresses(os.getpid())
