"""process_cleanup: /proc parsing, scope, selection, signalling and leftovers.

Pure helpers are fed /proc text; the signalling and main() run against real child
processes of this test (copies of /bin/sleep under worker and launcher names), scoped
to this test's own process tree, so nothing else on the machine can be touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _proc
from ansible_collections.runbook.remediation.plugins.module_utils import _processes as mod
from ansible_collections.runbook.remediation.plugins.modules import process_cleanup

TICKS = 100


class FakeClock(mod.Clock):
    """Ages from a fixed uptime: a process that started at tick T is (uptime - T/100) s old."""

    def __init__(self, uptime=10000.0):
        super().__init__(uptime=uptime, boot=1_700_000_000.0, ticks=TICKS)


def proc(pid, name="soffice.bin", ppid=100, age=10, uid=65534, state="S", rss=80 << 20, argv=None,
         clock=None):
    clock = clock or FakeClock()
    start = int((clock.uptime - age) * TICKS)
    exe = None if state == "Z" else "/usr/lib/libreoffice/program/" + name
    return mod.Proc(pid, ppid, name, state, start, uid, 0 if state == "Z" else rss, exe=exe, argv=argv or [])


def pair(pid, age, **kwargs):
    """An oosplash (pid) with its soffice.bin child (pid + 1)."""
    return [proc(pid, "oosplash", age=age + 1, rss=4 << 20, **kwargs), proc(pid + 1, ppid=pid, age=age, **kwargs)]


# --------------------------------------------------------------------------- parsing


def test_parse_stat_takes_the_name_up_to_the_last_parenthesis():
    fields = ["S", "1", "42", "42"] + ["0"] * 15 + ["123456"] + ["0"] * 20
    assert _proc.parse_stat("4242 (soffice (x) y) " + " ".join(fields)) == ("soffice (x) y", "S", 1, 123456)


def test_parse_status_real_uid_and_rss_and_a_zombie_without_rss():
    text = "Name:\tsoffice.bin\nUid:\t65534\t0\t65534\t65534\nVmRSS:\t   83692 kB\n"
    status = _proc.parse_status(text)
    assert (status.uid, status.rss) == (65534, 83692 * 1024)
    zombie = _proc.parse_status("Name:\tx\nState:\tZ (zombie)\nUid:\t1\t1\t1\t1\n")
    assert (zombie.uid, zombie.rss) == (1, 0)


@pytest.mark.parametrize(("data", "argv"), [
    (b"/usr/lib/libreoffice/program/soffice.bin\0--headless\0",
     ["/usr/lib/libreoffice/program/soffice.bin", "--headless"]),
    (b"", []),
    (b"sh\0-c\0sleep 1; :\0", ["sh", "-c", "sleep 1; :"]),
])
def test_parse_cmdline(data, argv):
    assert _proc.parse_cmdline(data) == argv


@pytest.mark.parametrize(("link", "name"), [
    ("/usr/lib/libreoffice/program/soffice.bin", "soffice.bin"),
    ("/usr/lib/libreoffice/program/soffice.bin (deleted)", "soffice.bin"),  # after a package upgrade
    ("/tmp/bin/soffice.bin.bak", "soffice.bin.bak"),
])
def test_exe_basename(link, name):
    assert _proc.exe_basename(link) == name


LO_ARGV = ["/usr/lib/libreoffice/program/soffice.bin", "-env:UserInstallation=file:///srv/lo/p%201", "--headless",
           "--accept=socket,host=127.0.0.1,port=2002;urp;StarOffice.ComponentContext"]


def test_user_installation_and_accept_address_from_a_real_command_line():
    assert mod.user_installation(LO_ARGV) == "file:///srv/lo/p%201"
    assert mod.accept_address(LO_ARGV) == ("127.0.0.1", 2002)


@pytest.mark.parametrize(("arg", "address"), [
    ("-accept=socket,host=0,port=8100;urp;", ("0", 8100)),
    ("--accept=socket,port=8100;urp;", ("127.0.0.1", 8100)),
    ("--accept=pipe,name=lo_pipe;urp;", None),          # a named pipe: no TCP port to probe
    ("--accept=socket,host=127.0.0.1,port=x;urp;", None),
    ("--accept=socket,host=127.0.0.1,port=70000;urp;", None),
    ("--headless", None),
])
def test_accept_address(arg, address):
    assert mod.accept_address([arg]) == address


NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:94DF 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 45123 1 0 100 0 0 10 0
   1: 0100007F:94DF 0100007F:B0C2 01 00000000:00000000 00:00000000 00000000 65534        0 45999 1 0 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0
"""
NET_TCP6 = (
    "  sl  local_address                         remote_address                        st\n"
    "   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 888 1\n"
)


def test_parse_net_tcp_listening_sockets_only():
    assert _proc.parse_net_tcp(NET_TCP) == {45123: ("127.0.0.1", 38111), 777: ("0.0.0.0", 8080)}
    assert _proc.parse_net_tcp(NET_TCP6) == {888: ("::1", 3000)}


def test_in_unit_matches_a_whole_path_component_in_any_hierarchy():
    v2 = "0::/system.slice/converter.service\n"
    hybrid = "12:pids:/\n1:name=systemd:/system.slice/converter.service/worker\n0::/\n"
    assert _proc.in_unit(v2, "converter.service") and _proc.in_unit(hybrid, "converter.service")
    assert not _proc.in_unit(v2, "convert.service")
    assert not _proc.in_unit("0::/system.slice/converter.service-x.scope\n", "converter.service")


@pytest.mark.parametrize(("url", "path"), [
    ("file:///srv/lo/p1", "/srv/lo/p1"),
    ("file:///srv/lo/p%201/", "/srv/lo/p 1"),
    ("file:///srv//lo/./p1", "/srv/lo/p1"),
])
def test_profile_path(url, path):
    assert mod.profile_path(url) == path


@pytest.mark.parametrize("url", [
    "$SYSUSERCONFIG/libreoffice/4", "file://otherhost/srv/p", "http://x/p", "file:///srv/lo/../etc", "file:///a%00b",
])
def test_profile_path_refuses(url):
    with pytest.raises(ValueError):
        mod.profile_path(url)


def test_inside_is_strict():
    assert mod.inside("/srv/lo/p1", "/srv/lo") and mod.inside("/srv/lo/a/b", "/srv/lo/")
    assert not mod.inside("/srv/lo", "/srv/lo") and not mod.inside("/srv/lower/p", "/srv/lo")


def test_pipe_name_is_libreoffices_own():
    # Seen on this machine: soffice -env:UserInstallation=file:///tmp/sx/profiles/pa2 made this socket
    # (each digest byte in hex without a leading zero).
    assert mod.pipe_name("file:///tmp/sx/profiles/pa2", 65534) == (
        "OSL_PIPE_65534_SingleOfficeIPC_b94b8fdd14443840548fb95ec026341")


@pytest.mark.parametrize(("name", "pids"), [
    ("lu199658alk.tmp", [1, 19, 199, 1996, 19965, 199658]),
    ("lu42.tmp", [4, 42]),
    ("lu0abc.tmp", []),
    ("lufoo.tmp", []),
    ("sv123.tmp", []),
    ("lu123.tmp.bak", []),
])
def test_temp_dir_owner_candidates(name, pids):
    assert mod.temp_dir_owner_candidates(name) == pids


def test_temp_dir_of_reads_tmpdir_then_tmp_then_temp():
    assert mod.temp_dir_of(b"PATH=/bin\0TMPDIR=/var/tmp/x/\0TMP=/y\0") == "/var/tmp/x"
    assert mod.temp_dir_of(b"TMP=/y\0TEMP=/z\0") == "/y"
    assert mod.temp_dir_of(b"TMPDIR=relative\0TMP=/a/../b\0") == "/tmp"


# --------------------------------------------------------------------------- scope and selection


def test_scope_user_tree_and_cgroup_must_all_hold():
    procs = {p.pid: p for p in [proc(10, ppid=1, uid=0), proc(20, ppid=10), proc(30, ppid=20), proc(40, ppid=1)]}
    by_user = mod.Scope(uid=65534, user="nobody")
    assert by_user.why_out(procs[30], procs) is None
    assert by_user.why_out(procs[10], procs).startswith("outside the scope: user ")
    by_tree = mod.Scope(tree=10)
    assert by_tree.why_out(procs[30], procs) is None
    assert by_tree.why_out(procs[10], procs) == "outside the scope: not a descendant of PID 10"  # not itself
    assert by_tree.why_out(procs[40], procs) is not None
    cgroups = {30: "0::/system.slice/converter.service\n", 40: "0::/system.slice/other.service\n"}
    by_unit = mod.Scope(uid=65534, user="nobody", cgroup="converter.service", read_cgroup=cgroups.__getitem__)
    assert by_unit.why_out(procs[30], procs) is None
    assert by_unit.why_out(procs[40], procs) == "outside the scope: not in the cgroup of converter.service"


def test_group_instances_pairs_each_worker_with_its_launcher():
    procs = [*pair(100, age=50), proc(300, ppid=1, age=40), proc(400, "oosplash", ppid=1, age=30)]
    instances = mod.group_instances(procs, ["oosplash"])
    assert [(i.main.pid, i.launcher.pid if i.launcher else None, i.main_is_launcher) for i in instances] == [
        (101, 100, False), (300, None, False), (400, None, True)]


def choose(procs, **kwargs):
    instances = mod.group_instances(procs, ["oosplash"])
    selected, kept = mod.choose(instances, FakeClock(), **kwargs)
    return instances, {i.main.pid: i.reasons for i in selected}, {i.main.pid: i.reasons[-1] for i in kept}


def test_choose_by_age_then_count_keeps_the_youngest():
    procs = pair(100, age=7200) + pair(200, age=600) + pair(300, age=500) + pair(400, age=400) + pair(500, age=5)
    _instances, selected, kept = choose(procs, max_age=3600, max_count=2)
    assert selected == {101: ["older than max_age (7200 s > 3600 s)"],
                        201: ["beyond max_count (4 live instances, keeping the 2 youngest)"],
                        301: ["beyond max_count (4 live instances, keeping the 2 youngest)"]}
    assert kept == {401: "younger than max_age (400 s <= 3600 s), within max_count (2 of 2)",
                    501: "younger than max_age (5 s <= 3600 s), within max_count (1 of 2)"}


def test_choose_with_nothing_stale_selects_nothing():
    _instances, selected, kept = choose(pair(100, age=50) + pair(200, age=40), max_age=3600, max_count=5)
    assert selected == {} and set(kept) == {101, 201}


def test_choose_max_count_zero_selects_every_live_instance():
    _instances, selected, _kept = choose(pair(100, age=50) + pair(200, age=40), max_count=0)
    assert set(selected) == {101, 201}


def test_choose_orphans_only_when_asked_and_never_a_launcher():
    procs = [proc(300, ppid=1, age=40), proc(400, "oosplash", ppid=1, age=30)]
    assert choose(procs)[1] == {}
    _instances, selected, kept = choose(procs, orphans=True)
    assert selected == {300: ["orphaned: its launcher is gone (parent is PID 1)"]}
    assert kept == {400: "no selection criterion applies"}


def test_choose_zombies_go_through_their_launcher_or_are_reported():
    procs = [proc(100, "oosplash", ppid=50, age=60), proc(101, ppid=100, age=59, state="Z"),
             proc(201, ppid=77, age=59, state="Z")]
    instances, selected, kept = choose(procs)
    assert selected == {101: ["zombie: its launcher oosplash 100 has not reaped it"]}
    assert kept == {201: "zombie (holds no memory): only its parent PID 77 can reap it"}
    sel = [i for i in instances if i.main.pid == 101]
    # Only the launcher is signalled: a zombie cannot be.
    assert [(p.pid, role) for p, role in mod.targets_of(sel, instances)] == [(100, "launcher")]


def test_choose_probes_only_what_is_old_enough_and_not_selected_yet():
    probed = []

    def probe(instances):
        probed.extend(i.main.pid for i in instances)
        return {201: ("unresponsive on 127.0.0.1:2002: the connection failed: Connection refused", ""),
                301: (None, "responsive on 127.0.0.1:2003")}

    procs = pair(100, age=7200) + pair(200, age=600) + pair(300, age=500) + pair(400, age=5)
    _instances, selected, kept = choose(procs, max_age=3600, probe=probe, probe_min_age=60)
    assert sorted(probed) == [201, 301]
    assert set(selected) == {101, 201}
    assert selected[201] == ["unresponsive on 127.0.0.1:2002: the connection failed: Connection refused"]
    assert kept[301] == "younger than max_age (500 s <= 3600 s), responsive on 127.0.0.1:2003"
    assert kept[401] == "younger than max_age (5 s <= 3600 s), too young to probe (5 s < 60 s)"


def test_targets_worker_first_then_its_launcher_but_never_a_shared_launcher_of_a_kept_worker():
    procs = [proc(100, "oosplash", age=100), proc(101, ppid=100, age=99), proc(102, ppid=100, age=10)]
    instances = mod.group_instances(procs, ["oosplash"])
    selected, _kept = mod.choose(instances, FakeClock(), max_age=50)
    assert [(p.pid, role) for p, role in mod.targets_of(selected, instances)] == [(101, "worker")]
    assert selected[0].launcher_kept
    both = mod.group_instances(procs[:2], ["oosplash"])
    assert [(p.pid, role) for p, role in mod.targets_of(both, both)] == [(101, "worker"), (100, "launcher")]


# --------------------------------------------------------------------------- validation


def params(**overrides):
    base = dict(executables=["soffice.bin", "oosplash"], launchers=["oosplash"], user="nobody", tree=None,
                cgroup=None, max_age=None, max_count=None, probe_min_age=60, grace=10.0, probe_timeout=5.0,
                profile_roots=[])
    base.update(overrides)
    return base


@pytest.mark.parametrize(("overrides", "message"), [
    ({"executables": []}, "executables is empty"),
    ({"executables": ["/usr/bin/soffice"]}, "must be a basename"),
    ({"launchers": ["oosplash.bin"]}, "must also be in executables"),
    ({"user": None}, "no scope"),
    ({"user": "", "cgroup": ""}, "no scope"),
    ({"user": None, "tree": 1}, "every process"),
    ({"user": "no-such-user-here"}, "unknown user"),
    ({"cgroup": "../x"}, "not a systemd unit name"),
    ({"max_count": -1}, "max_count must not be negative"),
    ({"grace": -1.0}, "grace must not be negative"),
    ({"profile_roots": ["/var"]}, "too broad"),
    ({"profile_roots": ["relative/dir"]}, "not absolute"),
])
def test_validate_refuses(overrides, message):
    with pytest.raises(mod.InputError, match=message):
        mod.validate(params(**overrides))


def test_validate_accepts_a_numeric_uid_and_a_unit():
    _exes, _launchers, scope, _roots = mod.validate(params(user="65534", cgroup="converter.service"))
    assert scope.uid == 65534 and scope.cgroup == "converter.service"


def test_container_scope_only_inside_that_container(monkeypatch, tmp_path):
    """container=ID needs no other scope, and is refused unless the module runs in that very
    container (this machine may itself be some container: /.dockerenv proves nothing)."""
    cid = "5ecd39eeb8912b6461ae3e26ed4718df3230d662642dcfa19dc3ca011f4068f2"
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"103 82 254:0 /var/lib/docker/containers/{cid}/hostname /etc/hostname rw - ext4 x rw\n")
    with pytest.raises(mod.InputError, match="this is not container 5ecd39eeb891"):
        mod.validate(params(user=None, container=cid))  # this process's own mountinfo does not name it
    with pytest.raises(mod.InputError, match="64 hex digits"):
        mod.validate(params(user=None, container="5ecd39eeb891"))
    monkeypatch.setattr(mod.in_container, "__defaults__", (str(mountinfo),))
    _exes, _launchers, scope, _roots = mod.validate(params(user=None, container=cid))
    assert scope.uid is None and scope.tree is None and scope.cgroup is None
    with pytest.raises(mod.InputError, match="this is not container"):
        mod.validate(params(user=None, container="f" * 64))
    with pytest.raises(mod.InputError, match="no scope"):
        mod.validate(params(user=None))


def test_module_refuses_with_error_kind_input_and_touches_nothing(run_module):
    result = run_module(process_cleanup.main, {"executables": ["soffice.bin"]})
    assert result.failed and result["error_kind"] == "input"
    assert result.msg.startswith("process_cleanup: no scope")


# --------------------------------------------------------------------------- real processes


@pytest.fixture
def bindir(tmp_path):
    """Copies of /bin/sleep named like LibreOffice's executables (their /proc/PID/exe basenames)."""
    for name in ("worker.bin", "worker.bin.bak"):
        shutil.copy("/bin/sleep", tmp_path / name)
    shutil.copy("/bin/sh", tmp_path / "launch")
    return tmp_path


@pytest.fixture
def children():
    started: list[subprocess.Popen] = []

    def start(argv, **kwargs):
        child = subprocess.Popen(argv, start_new_session=True, **kwargs)
        started.append(child)
        return child

    yield start
    for child in started:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # our own group, not yet reaped
        except ProcessLookupError:
            pass
        child.wait(timeout=10)


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_terminator_escalates_to_sigkill_when_sigterm_is_ignored(children):
    ignores = children([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                        "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    polite = children(["sleep", "60"])
    assert ignores.stdout.readline().strip() == "ready"
    targets = [mod.Target(mod.read_proc(pid), "worker") for pid in (ignores.pid, polite.pid)]
    started = time.monotonic()
    mod.Terminator(targets).run(grace=0.5)
    assert time.monotonic() - started < 30  # did not wait out the 60 s sleep (loose: load varies)
    assert [t.signal for t in targets] == ["SIGKILL", "SIGTERM"]
    assert all(t.ended for t in targets)
    assert ignores.wait(timeout=5) == -signal.SIGKILL and polite.wait(timeout=5) == -signal.SIGTERM


def test_terminator_never_signals_a_pid_that_names_another_process_now(children):
    child = children(["sleep", "60"])
    judged = mod.read_proc(child.pid)
    judged.start -= 1  # as if the judged process ended and its PID was reused by this one
    target = mod.Target(judged, "worker")
    mod.Terminator([target]).run(grace=0.1)
    assert target.missing and target.signal is None
    assert child.poll() is None


def test_main_plans_in_check_mode_then_stops_the_oldest_beyond_max_count(run_module, children, bindir):
    # Three "instances" under this test's process tree: a launcher shell with its worker child, and two
    # workers on their own; and a decoy with a similar name. Scope: descendants of this test's process.
    launcher = children([str(bindir / "launch"), "-c", f"{bindir / 'worker.bin'} 60; :"])
    assert wait_until(lambda: any(p.ppid == launcher.pid for p in mod.scan().values()))
    time.sleep(0.05)
    middle = children([str(bindir / "worker.bin"), "60"])
    time.sleep(0.05)
    young = children([str(bindir / "worker.bin"), "61"])
    decoy = children([str(bindir / "worker.bin.bak"), "60"])
    time.sleep(0.1)
    worker = next(p.pid for p in mod.scan().values() if p.ppid == launcher.pid)
    args = {"executables": ["worker.bin", "launch"], "launchers": ["launch"], "tree": os.getpid(), "max_count": 1,
            "grace": 2}

    plan = run_module(process_cleanup.main, {**args, "_ansible_check_mode": True})
    assert not plan.failed, plan.result
    assert plan["changed"] and plan["killed"] == []
    assert [item["pid"] for item in plan["selected"]] == [worker, middle.pid]
    assert plan["selected"][0]["launcher"]["pid"] == launcher.pid
    assert plan["instances_before"] == 3 and plan["instances_after"] == 1
    assert all(child.poll() is None for child in (launcher, middle, young, decoy))

    done = run_module(process_cleanup.main, args)
    assert not done.failed, done.result
    assert done["changed"]
    assert {(item["pid"], item["role"], item["signal"]) for item in done["killed"]} == {
        (worker, "worker", "SIGTERM"), (launcher.pid, "launcher", "SIGTERM"), (middle.pid, "worker", "SIGTERM")}
    assert done["rss_freed_bytes"] > 0 and done["instances_after"] == 1 and done["survivors"] == []
    assert launcher.wait(timeout=5) is not None and middle.wait(timeout=5) == -signal.SIGTERM
    assert young.poll() is None and decoy.poll() is None
    # age is whole seconds since start: 0 on a quiet machine, more under load.
    assert [{k: v for k, v in item.items() if k != "age"} for item in done["kept"]] == [
        {"pid": young.pid, "exe": "worker.bin", "user": "root", "reason": "within max_count (1 of 1)"}]
    assert done["kept"][0]["age"] >= 0

    again = run_module(process_cleanup.main, args)
    assert not again.failed and not again["changed"] and again["selected"] == [] and again["killed"] == []


def test_probe_tells_a_listener_that_greets_from_one_that_does_not():
    with socket.socket() as silent, socket.socket() as greeter:
        for sock in (silent, greeter):
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
        answered = []

        def serve():
            conn, _addr = greeter.accept()
            conn.sendall(b"\x00")
            answered.append(conn)

        import threading
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert mod.probe_listener("127.0.0.1", greeter.getsockname()[1], 2, True) is None
        # The kernel completes the handshake for a listener that never accepts: only the greeting tells.
        assert mod.probe_listener("127.0.0.1", silent.getsockname()[1], 0.3, False) is None
        assert "no greeting within 0.3 s" in mod.probe_listener("127.0.0.1", silent.getsockname()[1], 0.3, True)
        port = silent.getsockname()[1]
    assert mod.probe_listener("127.0.0.1", port, 0.3, True).startswith("the connection failed")
    for conn in answered:
        conn.close()


# --------------------------------------------------------------------------- leftovers


@pytest.fixture
def leftovers(tmp_path):
    def make(roots=(), check=False):
        return mod.Leftovers([str(r) for r in roots], check, mod.Clock())
    return make


def instance(pid, uid, url=None, start=None):
    argv = ["soffice.bin"] + ([f"-env:UserInstallation={url}"] if url else [])
    main = mod.Proc(pid, 1, "soffice.bin", "S", start if start is not None else 0, uid, 0, argv=argv)
    return mod.Instance(main)


def test_leftovers_remove_the_profile_inside_a_root_only(tmp_path, leftovers):
    root = tmp_path / "profiles"
    (root / "p1" / "user").mkdir(parents=True)
    (root / "p1" / "user" / "registrymodifications.xcu").write_text("x" * 100)
    outside = tmp_path / "elsewhere" / "p2"
    outside.mkdir(parents=True)
    (root / "link").symlink_to(outside)
    cleaner = leftovers([root])
    for url in (f"file://{root}/p1", f"file://{outside}", f"file://{root}/link", f"file://{root}"):
        cleaner.clean(instance(4242, os.getuid(), url), str(tmp_path / "no-tmp"), lambda url: [])
    assert [(item["type"], item["path"]) for item in cleaner.removed] == [("profile", f"{root}/p1")]
    reasons = {item["path"]: item["reason"] for item in cleaner.kept}
    assert reasons[str(outside)].startswith("not inside profile_roots")
    assert reasons[f"{root}/link"].startswith("reached through a symbolic link")
    assert reasons[str(root)].startswith("not inside profile_roots")  # the root itself never goes
    assert outside.exists() and not (root / "p1").exists()


def test_leftovers_keep_a_profile_still_in_use_or_of_another_user(tmp_path, leftovers):
    root = tmp_path / "profiles"
    (root / "p1").mkdir(parents=True)
    cleaner = leftovers([root])
    cleaner.clean(instance(4242, os.getuid(), f"file://{root}/p1"), str(tmp_path), lambda url: [5151])
    cleaner.clean(instance(4243, os.getuid() + 1, f"file://{root}/p1"), str(tmp_path), lambda url: [])
    assert cleaner.removed == []
    assert [item["reason"] for item in cleaner.kept] == [
        "the profile is still used by PID 5151", f"owned by {mod.user_name(os.getuid())}, not by the process user "
        f"{mod.user_name(os.getuid() + 1)}"]
    assert (root / "p1").exists()


def test_leftovers_temp_dirs_are_attributed_by_pid_owner_and_time(tmp_path, leftovers):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pid = 987654321  # no such process: nothing else can claim its directories
    for name in (f"lu{pid}ab1.tmp", f"lu{pid}7.tmp", f"lu{pid + 1}x.tmp", "lu12zz.tmp", f"sv{pid}.tmp"):
        (tmp / name).mkdir()
    (tmp / f"lu{pid}file.tmp").write_text("not a directory")
    cleaner = leftovers()
    clock = cleaner.clock
    start = int((clock.uptime - 5) * clock.ticks)  # started 5 s ago: older than its directories
    cleaner.clean(instance(pid, os.getuid(), start=start), str(tmp), lambda url: [])
    assert sorted(item["path"] for item in cleaner.removed) == [f"{tmp}/lu{pid}7.tmp", f"{tmp}/lu{pid}ab1.tmp"]
    assert [(Path(item["path"]).name, item["reason"]) for item in cleaner.kept] == [
        (f"lu{pid}file.tmp", "not a directory")]
    late = leftovers()
    (tmp / f"lu{pid}q.tmp").mkdir()
    late.clean(instance(pid, os.getuid(), start=int(clock.uptime * clock.ticks) + 3000), str(tmp), lambda url: [])
    assert late.removed == [] and "older than the process" in late.kept[-1]["reason"]


def test_leftovers_check_mode_removes_nothing(tmp_path, leftovers):
    root = tmp_path / "profiles"
    (root / "p1").mkdir(parents=True)
    cleaner = leftovers([root], check=True)
    cleaner.clean(instance(4242, os.getuid(), f"file://{root}/p1"), str(tmp_path), lambda url: [])
    assert [item["path"] for item in cleaner.removed] == [f"{root}/p1"] and (root / "p1").exists()
