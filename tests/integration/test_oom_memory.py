"""oom-killed and memory-leak end to end on the real lab: systemd, Docker, Compose, bad input, check mode.

Every test leaves its host as the lab made it (128M limit, no drop-in, no override,
healthy). The raise history (``memory-*.json``) is kept between tests on purpose: it is
what stops an OOM kill that a test already answered from counting again; the files on
the Docker host are removed when the module ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import http_status, restore_host, run_json, runbook, wait_for

pytestmark = pytest.mark.lab

MIB = 1024 * 1024
LIMIT = 128 * MIB  # the lab's MEMORY_LIMIT
UNIT = "runbook-demo.service"
DROPIN = f"/etc/systemd/system/{UNIT}.d/runbook-memory.conf"
STATE_DIR = "/var/lib/runbook-remediation"
# Short verification windows keep the runs quick; the logic is the same.
FAST = {"memory_limit_raise_verify_timeout": 6, "service_restart_stop_wait": 0}
# The memory-leak test's trend: the last 30 s at 1 s resolution, a leak above 256 KiB/s.
TREND = {
    **FAST,
    "memory_limit_raise_trend_window": 30,
    "memory_limit_raise_trend_step": "1s",
    "memory_limit_raise_trend_warmup": 3,
    "memory_limit_raise_growth_threshold": 256 * 1024,
}


def container(lab, name: str):
    return lab.client.containers.get(lab.host(name).container)


def sh(lab, name: str, script: str) -> tuple[int, str]:
    result = container(lab, name).exec_run(["sh", "-c", script])
    return result.exit_code, (result.output or b"").decode(errors="replace").strip()


def unit_show(lab, name: str) -> dict:
    properties = "ActiveState,Result,MemoryMax,MainPID,ExecMainStartTimestamp,ControlGroup"
    out = sh(lab, name, f"systemctl show -p {properties} {UNIT}")[1]
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cgroup_limit(lab, name: str) -> int:
    cgroup = unit_show(lab, name)["ControlGroup"]
    out = sh(lab, name, f"cat /sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes")[1]
    return int(out)


def dropin(lab, name: str) -> str | None:
    code, out = sh(lab, name, f"cat {DROPIN}")
    return out if code == 0 else None


def inspect(lab, name: str) -> dict:
    return lab.client.api.inspect_container(lab.host(name).container)


def break_memory(lab, name: str, **params) -> None:
    argv = ["lab", "break", "memory-leak", "--host", name]
    for key, value in params.items():
        argv += ["-p", f"{key}={value}"]
    result = runbook(*argv)
    assert result.returncode == 0, result.stderr


def oom_kill(lab, name: str) -> None:
    """Leak 60 MiB/s under the 128M limit until the kernel kills the service."""
    host = lab.host(name)
    break_memory(lab, name, mb_per_second=60)
    if host.manager == "systemd":
        wait_for(lambda: unit_show(lab, name)["ActiveState"] == "failed", timeout=30, what=f"{name} OOM-killed")
    else:
        wait_for(lambda: inspect(lab, name)["State"]["Status"] == "exited", timeout=30, what=f"{name} OOM-killed")
        assert inspect(lab, name)["State"]["OOMKilled"] is True
    assert http_status(host.health_url) is None


def host_files(lab, name: str) -> list[Path]:
    """The raise history and restart budget of a docker/compose service, on the Docker host (this machine)."""
    host = lab.host(name)
    target = host.container if host.manager == "docker" else f"{lab.compose_project}.demo"
    return [Path(STATE_DIR) / f"memory-demo@{target}.json", Path(STATE_DIR) / f"restarts-demo@{target}.json"]


def restore(lab, name: str) -> None:
    """Back to the lab's own limits: no drop-in / override, the container made again, healthy."""
    host = lab.host(name)
    if host.manager == "systemd":
        sh(lab, name, f"rm -f {DROPIN} {STATE_DIR}/restarts-demo@{UNIT}.json && systemctl daemon-reload")
    else:
        for path in host_files(lab, name)[1:]:  # the restart budget; the raise history stays
            path.unlink(missing_ok=True)
        if host.manager == "compose":
            for path in lab.compose_dir.glob("compose.override.yaml*"):  # and the role's backups
                path.unlink()
    restore_host(lab, name)


@pytest.fixture(scope="module", autouse=True)
def forget_host_files(lab):
    yield
    for name in ("lab-docker", "lab-compose"):
        for path in host_files(lab, name):
            path.unlink(missing_ok=True)


@pytest.fixture
def restored(lab):
    """Hosts a test names are restored after it, whatever happened."""
    touched: list[str] = []
    yield touched.append
    for name in touched:
        restore(lab, name)


def test_systemd_oom_kill_raises_memory_max_then_nothing_to_do(lab, restored):
    restored("lab-1")
    oom_kill(lab, "lab-1")
    assert unit_show(lab, "lab-1")["Result"] == "signal"  # cgroup v1: systemd does not say oom-kill

    code, payload = run_json("run", "oom-killed", "-l", "lab-1", extra=FAST)
    assert code == 0, payload
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "remediated", result
    assert result["evidence"]["oom"]["sources"] == ["kernel log (dmesg)"]
    kill = result["evidence"]["oom"]["kills"][-1]
    assert kill["task_memcg"].endswith(f"/system.slice/{UNIT}") and kill["task"] == "python3"
    assert any(f.startswith("OOM kill found by: kernel log (dmesg)") for f in result["findings"])
    assert result["actions"][0].startswith(f"raised MemoryMax of {UNIT} from 128 MiB to 256 MiB")
    assert result["actions"][1].startswith("restarted demo")
    assert result["verification"]["limit_applied"] is True and result["verification"]["healthy"] is True

    assert "MemoryMax=268435456" in dropin(lab, "lab-1")
    show = unit_show(lab, "lab-1")
    assert show["MemoryMax"] == str(2 * LIMIT)
    assert cgroup_limit(lab, "lab-1") == 2 * LIMIT
    time.sleep(3)  # it stays up
    again = unit_show(lab, "lab-1")
    assert again["ActiveState"] == "active" and again["MainPID"] == show["MainPID"]
    assert http_status(lab.host("lab-1").health_url) == 200

    code, payload = run_json("run", "oom-killed", "-l", "lab-1", extra=FAST)
    assert code == 4, payload
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "healthy"
    assert result["evidence"]["oom"]["older_kills"] >= 1  # the answered kill no longer counts
    assert unit_show(lab, "lab-1")["ExecMainStartTimestamp"] == show["ExecMainStartTimestamp"]
    assert unit_show(lab, "lab-1")["MemoryMax"] == str(2 * LIMIT)


def test_worker_oom_kill_in_a_running_unit_is_raised_in_place(lab, restored):
    """A process of the unit (not its main one) is OOM-killed: the cgroup counter and the kernel log see it."""
    restored("lab-2")
    before = unit_show(lab, "lab-2")
    worker = (
        f"echo $$ > /sys/fs/cgroup/memory{before['ControlGroup']}/cgroup.procs && exec python3 -c "
        "'x = bytearray(300 * 2**20); x[::4096] = bytes(len(range(0, len(x), 4096)))'"
    )
    code = sh(lab, "lab-2", worker)[0]
    assert code == 137  # SIGKILL from the OOM killer
    assert unit_show(lab, "lab-2")["ActiveState"] == "active"

    code, payload = run_json("run", "oom-killed", "-l", "lab-2", extra=FAST)
    assert code == 0, payload
    result = payload["hosts"]["lab-2"]
    assert result["outcome"] == "remediated", result
    assert result["evidence"]["oom"]["sources"] == ["kernel log (dmesg)", "memory cgroup counter (oom_kill 1)"]
    assert result["message"].endswith("raised from 128 MiB to 256 MiB in place and healthy")
    assert not any(action.startswith("restarted") for action in result["actions"])
    after = unit_show(lab, "lab-2")
    assert after["MainPID"] == before["MainPID"]  # not restarted
    assert after["MemoryMax"] == str(2 * LIMIT)
    assert cgroup_limit(lab, "lab-2") == 2 * LIMIT  # applied live by daemon-reload

    code, payload = run_json("run", "oom-killed", "-l", "lab-2", extra=FAST)
    assert code == 4, payload


def test_docker_oom_kill_is_raised_in_place(lab, restored):
    restored("lab-docker")
    container_id = inspect(lab, "lab-docker")["Id"]
    oom_kill(lab, "lab-docker")

    # The kernel log is the whole host's: the container's kill never counts for another service.
    code, payload = run_json("run", "oom-killed", "-l", "lab-2", extra=FAST)
    assert code == 4, payload

    code, payload = run_json("run", "oom-killed", "-l", "lab-docker", extra=FAST)
    assert code == 0, payload
    result = payload["hosts"]["lab-docker"]
    assert result["outcome"] == "remediated", result
    assert result["evidence"]["oom"]["sources"] == ["kernel log (dmesg)", "Docker State.OOMKilled"]
    assert result["verification"]["same_container"] is True
    state = inspect(lab, "lab-docker")
    assert state["Id"] == container_id  # updated in place, not recreated
    assert state["HostConfig"]["Memory"] == 2 * LIMIT
    assert state["HostConfig"]["MemorySwap"] == 2 * LIMIT  # no swap, as before
    assert state["State"]["Running"] is True
    assert http_status(lab.host("lab-docker").health_url) == 200

    code, payload = run_json("run", "oom-killed", "-l", "lab-docker", extra=FAST)
    assert code == 4, payload
    assert inspect(lab, "lab-docker")["State"]["StartedAt"] == state["State"]["StartedAt"]


def test_compose_oom_kill_merges_the_limit_into_the_override(lab, restored):
    restored("lab-compose")
    override = lab.compose_dir / "compose.override.yaml"
    override.write_text("services:\n  demo:\n    environment:\n      KEPT: 'yes'\n", encoding="utf-8")
    oom_kill(lab, "lab-compose")

    code, payload = run_json("run", "oom-killed", "-l", "lab-compose", extra=FAST)
    assert code == 0, payload
    result = payload["hosts"]["lab-compose"]
    assert result["outcome"] == "remediated", result
    assert "Docker State.OOMKilled" in result["evidence"]["oom"]["sources"]
    merged = yaml.safe_load(override.read_text(encoding="utf-8"))
    assert merged["services"]["demo"]["environment"] == {"KEPT": "yes"}  # the existing override is kept
    assert merged["services"]["demo"]["mem_limit"] == 2 * LIMIT
    assert merged["services"]["demo"]["memswap_limit"] == 2 * LIMIT
    state = inspect(lab, "lab-compose")
    assert state["HostConfig"]["Memory"] == 2 * LIMIT
    assert "KEPT=yes" in state["Config"]["Env"]  # compose up used the merged configuration
    assert http_status(lab.host("lab-compose").health_url) == 200

    code, payload = run_json("run", "oom-killed", "-l", "lab-compose", extra=FAST)
    assert code == 4, payload


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"memory_limit_raise_to": "64G"}, "is above the ceiling of 4096 MiB (memory_limit_raise_ceiling)"),
        ({"memory_limit_raise_ceiling": "1T", "memory_limit_raise_to": "1000G",
          "runbook_override_safety": "a ceiling above the host"}, "% of the memory of the host"),
    ],
    ids=["above-ceiling", "above-host-share"],
)
def test_limit_above_the_ceiling_is_bad_input_and_changes_nothing(lab, extra, words):
    before = unit_show(lab, "lab-1")
    code, payload = run_json("run", "oom-killed", "-l", "lab-1", extra=extra)
    assert code == 2, payload
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "failed" and result["error_kind"] == "input"
    assert result["message"].startswith("invalid input: the memory limit asked for")
    assert words in result["message"] and "nothing was changed" in result["message"]
    assert dropin(lab, "lab-1") is None
    assert unit_show(lab, "lab-1") == before


def test_a_ceiling_raised_from_the_command_line_needs_an_override(lab):
    before = unit_show(lab, "lab-1")
    code, payload = run_json("run", "oom-killed", "-l", "lab-1",
                             extra={"memory_limit_raise_ceiling": "1T", "memory_limit_raise_to": "1000G"})
    assert code == 2, payload
    message = payload["hosts"]["lab-1"]["message"]
    assert message.startswith("invalid input: memory_limit_raise_ceiling from the command line loosens"), message
    assert "runbook_override_safety" in message
    assert dropin(lab, "lab-1") is None
    assert unit_show(lab, "lab-1") == before


def test_check_mode_plans_the_raise_and_changes_nothing(lab, restored):
    restored("lab-1")
    oom_kill(lab, "lab-1")
    before = unit_show(lab, "lab-1")
    code, payload = run_json("run", "oom-killed", "-l", "lab-1", "--check", extra=FAST)
    assert code == 0, payload
    result = payload["hosts"]["lab-1"]
    assert result["outcome"] == "planned" and result["check_mode"] is True
    assert result["message"] == "planned: would raise the memory limit of demo from 128 MiB to 256 MiB and restart it"
    assert result["actions"][0].startswith(f"would raise MemoryMax of {UNIT} from 128 MiB to 256 MiB")
    assert result["actions"][1].startswith("would restart demo")
    assert dropin(lab, "lab-1") is None
    assert unit_show(lab, "lab-1") == before  # still dead, same limit, not started

    # diagnose: the evidence, nothing changed either
    diagnosed = runbook("-o", "json", "diagnose", "oom-killed", "-l", "lab-1")
    assert diagnosed.returncode == 0, diagnosed.stderr
    evidence = json.loads(diagnosed.stdout)["hosts"]["lab-1"]["evidence"]
    assert evidence["oom"]["found"] is True and evidence["limit"]["new"] == 2 * LIMIT
    assert dropin(lab, "lab-1") is None
    assert unit_show(lab, "lab-1") == before


def test_memory_leak_is_restarted_and_the_trend_recorded(lab, restored):
    restored("lab-2")
    host = lab.host("lab-2")
    started = unit_show(lab, "lab-2")["ExecMainStartTimestamp"]
    break_memory(lab, "lab-2", mb_per_second=2, max_mb=40)  # leaking, far from the limit: not killed
    time.sleep(12)  # a trend Prometheus (1 s scrape) can see
    assert unit_show(lab, "lab-2")["ActiveState"] == "active"

    code, payload = run_json("run", "memory-leak", "-l", "lab-2", extra=TREND)
    assert code == 0, payload
    result = payload["hosts"]["lab-2"]
    assert result["outcome"] == "remediated", result
    trend = result["evidence"]["trend"]
    assert trend["query"] == 'process_resident_memory_bytes{host="lab-2",service="demo"}'
    assert trend["leak"] is True and trend["points"] >= 3
    assert trend["per_second"] > TREND["memory_limit_raise_growth_threshold"]
    assert trend["last"] - trend["first"] > 10 * MIB
    assert result["findings"][0].startswith("resident memory grew from")
    assert result["actions"][0].startswith("restarted demo")
    assert unit_show(lab, "lab-2")["ExecMainStartTimestamp"] != started
    assert http_status(host.health_url) == 200

    # The new process does not leak: nothing to do.
    time.sleep(6)
    code, payload = run_json("run", "memory-leak", "-l", "lab-2", extra=TREND)
    assert code == 4, payload
    assert payload["hosts"]["lab-2"]["outcome"] == "healthy"


def test_memory_near_its_limit_is_restarted_though_it_no_longer_grows(lab, restored):
    """Seed 003 GgenMcpMemoryCritical: above a share of the limit, not growing any more."""
    restored("lab-2")
    started = unit_show(lab, "lab-2")["ExecMainStartTimestamp"]
    break_memory(lab, "lab-2", mb_per_second=40, max_mb=50)  # 50 MiB at once, then flat
    # The ramp out of the trend's 30 s window: every run below sees a flat line. (12 s was
    # enough on an idle machine; under CI's load the window still caught the ramp's end.)
    time.sleep(TREND["memory_limit_raise_trend_window"] + 2)
    near = {**TREND, "memory_limit_raise_usage_threshold": 0.4}  # 40% of the 128 MiB limit

    code, payload = run_json("run", "memory-leak", "-l", "lab-2", "--check", extra=near)
    assert code == 0, payload
    result = payload["hosts"]["lab-2"]
    assert result["outcome"] == "planned", result
    assert "is near its memory limit" in result["message"] and "limit (threshold 40%)" in result["message"]
    trend = result["evidence"]["trend"]
    assert trend["leak"] is False and trend["near_limit"] is True and trend["limit_bytes"] == 128 * MIB
    assert unit_show(lab, "lab-2")["ExecMainStartTimestamp"] == started

    # The default 90% is not reached: nothing to do, and the finding says how far it is.
    code, payload = run_json("run", "memory-leak", "-l", "lab-2", extra=TREND)
    assert code == 4, payload
    assert "% of the 128.0 MiB limit (threshold 90%)" in payload["hosts"]["lab-2"]["message"]

    code, payload = run_json("run", "memory-leak", "-l", "lab-2", extra=near)
    assert code == 0, payload
    assert payload["hosts"]["lab-2"]["outcome"] == "remediated", payload
    assert unit_show(lab, "lab-2")["ExecMainStartTimestamp"] != started


@pytest.mark.parametrize("value", ["1.5", "-0.1", "most"])
def test_a_bad_usage_threshold_is_bad_input(lab, value):
    code, payload = run_json("run", "memory-leak", "-l", "lab-2", extra={"memory_limit_raise_usage_threshold": value})
    assert code == 2, payload
    assert "usage_threshold" in payload["hosts"]["lab-2"]["message"], payload["hosts"]["lab-2"]["message"]


NO_LIMIT = f"/etc/systemd/system/{UNIT}.d/10-no-limit.conf"  # sorts before the role's runbook-memory.conf


def test_a_unit_without_a_memory_limit_gets_a_first_one_on_request(lab, restored):
    """Seed 001 (MemoryMax=1G): no limit of its own, so nothing to raise -- only one to set, when asked."""
    restored("lab-2")
    sh(lab, "lab-2", f"mkdir -p /etc/systemd/system/{UNIT}.d && printf '[Service]\\nMemoryMax=infinity\\n' > {NO_LIMIT}"
                     " && systemctl daemon-reload")
    try:
        assert unit_show(lab, "lab-2")["MemoryMax"] == "infinity"
        first = {**FAST, "memory_limit_raise_force": True}

        code, payload = run_json("run", "oom-killed", "-l", "lab-2", extra=first)
        assert code == 3, payload
        message = payload["hosts"]["lab-2"]["message"]
        assert "has no memory limit of its own" in message
        assert "memory_limit_raise_to=SIZE sets a first limit" in message

        asked = {**FAST, "memory_limit_raise_to": "192M", "memory_limit_raise_reservation": "64M"}
        code, payload = run_json("run", "oom-killed", "-l", "lab-2", "--check", extra=asked)
        assert code == 0, payload
        result = payload["hosts"]["lab-2"]
        assert result["message"] == (
            "planned: would set the memory limit of demo to 192 MiB (it had none), reservation 64 MiB in place"
        ), result
        assert dropin(lab, "lab-2") is None and unit_show(lab, "lab-2")["MemoryMax"] == "infinity"

        before = unit_show(lab, "lab-2")
        code, payload = run_json("run", "oom-killed", "-l", "lab-2", extra=asked)
        assert code == 0, payload
        result = payload["hosts"]["lab-2"]
        assert result["outcome"] == "remediated", result
        assert result["evidence"]["limit"]["first"] is True and result["evidence"]["limit"]["current"] == 0
        assert result["actions"][0].startswith(
            f"set MemoryMax of {UNIT} to 192 MiB (it had none) and MemoryLow to 64 MiB"
        )
        assert result["verification"]["limit_applied"] is True
        after = unit_show(lab, "lab-2")
        assert after["MemoryMax"] == str(192 * MIB) and after["MainPID"] == before["MainPID"]  # set live
        assert sh(lab, "lab-2", f"systemctl show -p MemoryLow --value {UNIT}")[1] == str(64 * MIB)
        assert cgroup_limit(lab, "lab-2") == 192 * MIB  # in force in the kernel, not only in systemd

        code, payload = run_json("run", "oom-killed", "-l", "lab-2", extra=asked)
        assert code == 4, payload  # it has its limit now: nothing to do
        assert unit_show(lab, "lab-2")["MainPID"] == before["MainPID"]
    finally:
        sh(lab, "lab-2", f"rm -f {NO_LIMIT} && systemctl daemon-reload")


def test_docker_reservation_is_set_in_place_with_the_raise(lab, restored):
    """Seed 003: mem_limit raised and mem_reservation set together, the same container."""
    restored("lab-docker")
    container_id = inspect(lab, "lab-docker")["Id"]
    asked = {**FAST, "memory_limit_raise_force": True, "memory_limit_raise_reservation": "96M"}
    code, payload = run_json("run", "oom-killed", "-l", "lab-docker", extra=asked)
    assert code == 0, payload
    result = payload["hosts"]["lab-docker"]
    assert result["outcome"] == "remediated", result
    assert result["message"].endswith("raised from 128 MiB to 256 MiB, reservation 96 MiB in place and healthy")
    state = inspect(lab, "lab-docker")
    assert state["Id"] == container_id
    assert state["HostConfig"]["Memory"] == 2 * LIMIT and state["HostConfig"]["MemoryReservation"] == 96 * MIB
    assert result["verification"]["limit_applied"] is True

    code, payload = run_json("run", "oom-killed", "-l", "lab-docker",
                             extra={**FAST, "memory_limit_raise_reservation": "96M"})
    assert code == 4, payload


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"memory_limit_raise_reservation": "1G"},
         "the memory reservation asked for, 1024 MiB, is above the new memory limit of 256 MiB"),
        ({"memory_limit_raise_reservation": "plenty"}, "memory_limit_raise_reservation must be a size"),
    ],
    ids=["above-the-limit", "not-a-size"],
)
def test_a_bad_reservation_is_bad_input_and_changes_nothing(lab, extra, words):
    before = unit_show(lab, "lab-1")
    code, payload = run_json("run", "oom-killed", "-l", "lab-1", extra=extra)
    assert code == 2, payload
    assert words in payload["hosts"]["lab-1"]["message"], payload["hosts"]["lab-1"]["message"]
    assert dropin(lab, "lab-1") is None
    assert unit_show(lab, "lab-1") == before


def test_compose_reservation_goes_into_the_override_and_in_place(lab, restored):
    restored("lab-compose")
    override = lab.compose_dir / "compose.override.yaml"
    container_id = inspect(lab, "lab-compose")["Id"]
    asked = {**FAST, "memory_limit_raise_force": True, "memory_limit_raise_reservation": "80M"}
    code, payload = run_json("run", "oom-killed", "-l", "lab-compose", extra=asked)
    assert code == 0, payload
    assert payload["hosts"]["lab-compose"]["outcome"] == "remediated", payload
    merged = yaml.safe_load(override.read_text(encoding="utf-8"))["services"]["demo"]
    assert merged["mem_limit"] == 2 * LIMIT and merged["mem_reservation"] == 80 * MIB
    state = inspect(lab, "lab-compose")
    assert state["Id"] == container_id  # running: updated in place
    assert state["HostConfig"]["MemoryReservation"] == 80 * MIB
