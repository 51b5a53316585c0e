"""service_state and service_recover: read, then restart within the budget and verify.

The service manager is a fake that records the argv it is given (systemctl, docker,
docker compose) and flips a real HTTP health endpoint on 127.0.0.1 between down and up,
as a unit's start would.
"""

from __future__ import annotations

import json
import time

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _service
from ansible_collections.runbook.remediation.plugins.modules import service_recover, service_state


class Manager:
    """A fake systemd/docker: answers `show`/`inspect`/`logs`, records stops and starts."""

    def __init__(self, server, dead=True, starts_healthy=True, logs="line 1\nline 2\n"):
        self.server = server
        self.calls = []
        self.dead = dead
        self.starts_healthy = starts_healthy
        self.logs = logs
        self.set_healthy(not dead)

    def set_healthy(self, healthy):
        reply = self.server.Reply(200, {"status": "healthy"}) if healthy else self.server.Reply(503, {"status": "down"})
        self.server.routes[("GET", "/health")] = reply

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        if argv[:2] == ["systemctl", "show"]:
            state = "failed" if self.dead else "active"
            return 0, f"ActiveState={state}\nSubState={state}\nResult=exit-code\nMainPID=0\nLoadState=loaded\n", ""
        if argv[0] == "journalctl" or argv[:2] == ["docker", "logs"]:
            return 0, self.logs, ""
        if argv[:2] == ["docker", "inspect"]:
            status = "exited" if self.dead else "running"
            return 0, json.dumps([{"Id": "abc123def456789", "State": {"Status": status, "ExitCode": 1,
                                                                      "OOMKilled": False}, "RestartCount": 0}]), ""
        if argv[:2] == ["docker", "ps"]:
            return 0, "proj-demo-1\n", ""
        if argv[-2:-1] in (["stop"],) or "stop" in argv:
            self.dead = True
            self.set_healthy(False)
            return 0, "", ""
        if "start" in argv or "up" in argv:
            self.dead = False
            self.set_healthy(self.starts_healthy)
            return 0, "", ""
        return 0, "", ""


def svc(server, manager="systemd", **extra):
    base = {"name": "demo", "manager": manager, "health_url": f"{server.url}/health",
            "unit": "demo.service", "container": "demo-1", "project_src": "/srv/proj"}
    base.update(extra)
    return base


@pytest.fixture
def args(http_server, tmp_path):
    def make(**extra):
        base = {"service": svc(http_server), "state_dir": str(tmp_path), "verify_probes": 2, "verify_interval": 0.05,
                "verify_timeout": 2, "stop_wait": 0, "health_timeout": 1}
        base.update(extra)
        return base
    return make


@pytest.fixture
def manager(http_server, monkeypatch):
    fake = Manager(http_server)
    from ansible.module_utils import basic

    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw))
    return fake


def history(tmp_path):
    [path] = tmp_path.glob("restarts-*.json")
    return json.loads(path.read_text())


def test_a_dead_unit_is_started_not_stopped_and_verified(run_module, args, manager, tmp_path):
    result = run_module(service_recover.main, args())
    assert not result.failed, result.msg
    assert result["recovered"] is True and result["changed"] is True and result["escalate"] is False
    assert ["systemctl", "start", "demo.service"] in manager.calls
    assert ["systemctl", "stop", "demo.service"] not in manager.calls
    assert result["state"]["active_state"] == "failed" and result["log_tail"] == ["line 1", "line 2"]
    assert result["actions"] == ["restarted demo (systemd, attempt 1 of at most 3)"]
    assert result["verification"]["healthy"] is True and len(history(tmp_path)) == 1


def test_a_healthy_service_is_left_alone(run_module, args, manager):
    manager.dead = False
    manager.set_healthy(True)
    result = run_module(service_recover.main, args())
    assert result["healthy"] is True and result["changed"] is False and result["actions"] == []
    assert not any("start" in call or "stop" in call for call in manager.calls)
    assert "state" not in result.result  # no evidence gathered for a healthy service


def test_check_mode_and_act_false_only_plan(run_module, args, manager, tmp_path):
    planned = run_module(service_recover.main, {**args(), "_ansible_check_mode": True})
    assert planned["changed"] is True and planned["actions"] == ["would restart demo (systemd)"]
    looked = run_module(service_recover.main, args(act=False))
    assert looked["changed"] is False and looked["actions"] == ["would restart demo (systemd)"]
    assert not any(call[:2] == ["systemctl", "start"] for call in manager.calls)
    assert not list(tmp_path.glob("restarts-*.json"))  # the budget is untouched


def test_a_crash_loop_uses_the_budget_then_escalates(run_module, args, manager, tmp_path):
    manager.starts_healthy = False
    result = run_module(service_recover.main, args(budget_max=2, max_attempts=3, verify_timeout=0.3))
    assert result["recovered"] is False and result["escalate"] is True
    assert len(result["attempts"]) == 2 and len(history(tmp_path)) == 2
    again = run_module(service_recover.main, args(budget_max=2, verify_timeout=0.3))
    assert again["escalate"] is True and again["attempts"] == [] and len(history(tmp_path)) == 2


def test_an_old_restart_falls_out_of_the_window(run_module, args, manager, tmp_path):
    path = _service.budget_path(str(tmp_path), svc(manager.server))
    _service.write_budget(path, [time.time() - 7200, time.time() - 7100])
    result = run_module(service_recover.main, args(budget_max=2))
    assert result["recovered"] is True and len(history(tmp_path)) == 1


def test_an_unhealthy_dependency_is_restarted_first(run_module, args, manager, http_server):
    dep = svc(http_server, name="redis", unit="redis.service", health_url=f"{http_server.url}/dep")
    http_server.routes[("GET", "/dep")] = [http_server.Reply(503, {}), http_server.Reply(200, {})]
    result = run_module(service_recover.main, args(dependencies=[dep]))
    assert result["findings"][-1] == "dependency redis is unhealthy: HTTP status 503, expected 200"
    starts = [call for call in manager.calls if "start" in call]
    assert starts[0] == ["systemctl", "start", "redis.service"] or starts[0][-1] == "redis.service"
    assert result["actions"][0].startswith("restarted dependency redis")


@pytest.mark.parametrize(("manager_name", "stop", "start"), [
    ("docker", ["docker", "stop", "--time", "30", "demo-1"], ["docker", "start", "demo-1"]),
    ("compose", ["docker", "compose", "--project-directory", "/srv/proj", "--project-name", "proj", "stop",
                 "--timeout", "30", "demo"],
     ["docker", "compose", "--project-directory", "/srv/proj", "--project-name", "proj", "up", "--detach",
      "--no-deps", "--no-build", "--pull", "never", "demo"]),
])
def test_container_restarts(run_module, args, manager, http_server, manager_name, stop, start):
    manager.dead = False  # running but unhealthy: a graceful stop, then start
    result = run_module(service_recover.main, args(service=svc(http_server, manager=manager_name)))
    assert result["recovered"] is True, result.msg
    assert stop in manager.calls and start in manager.calls


@pytest.mark.parametrize(("bad", "words"), [
    ({"manager": "nomad"}, "manager must be one of"),
    ({"manager": "kubernetes"}, "needs deployment"),
    ({"manager": "systemd", "unit": ""}, "needs unit"),
    ({"health_url": "ftp://x"}, "cannot probe its health_url ftp://x: it is not an http(s), tcp, redis"),
    ({"health_url": "redis://:pw@127.0.0.1"}, "must not carry credentials"),
    ({"health_jmespath": "[[["}, "invalid health_jmespath"),
])
def test_bad_descriptions_are_input_errors(run_module, args, manager, http_server, bad, words):
    result = run_module(service_state.main, {"service": {**svc(http_server), **bad}})
    assert result.failed and result["error_kind"] == "input" and words in result.msg


def test_service_state_reads_only(run_module, manager, http_server, tmp_path):
    result = run_module(service_state.main, {"service": svc(http_server), "state_dir": str(tmp_path)})
    assert result["healthy"] is False and result["changed"] is False
    assert result["findings"][:2] == ["health check failed: HTTP status 503, expected 200",
                                      "unit demo.service is failed (failed, result exit-code)"]
    assert all(call[0] in ("systemctl", "journalctl") and "start" not in call for call in manager.calls)


def test_eaddrinuse_names_the_port_holder(run_module, manager, http_server, tmp_path):
    manager.logs = "OSError: [Errno 98] Address already in use\n"
    result = run_module(service_state.main, {"service": svc(http_server, port=8080), "state_dir": str(tmp_path)})
    assert any(call[0] == "ss" and "sport = :8080" in call for call in manager.calls)
    assert any(f.startswith("port 8080 is already in use (EADDRINUSE)") for f in result["findings"])


def test_budget_paths_keep_their_old_names():
    assert _service.budget_path("/s", {"name": "demo", "manager": "systemd", "unit": "a.service"}) \
        == "/s/restarts-demo@a.service.json"
    assert _service.budget_path("/s", {"name": "demo", "manager": "compose", "project_src": "/x/proj"}) \
        == "/s/restarts-demo@proj.demo.json"


def test_an_unreadable_history_counts_as_none(tmp_path):
    path = tmp_path / "restarts-x.json"
    path.write_text("not json")
    assert _service.read_budget(str(path), 3600) == []


# --------------------------------------------------------------------------- summary
# `summary` is the service_restart role's result (its fact service_restart_result): the
# outcomes and messages the role's Jinja computed before the module did.


def test_summary_healthy(run_module, args, manager):
    manager.dead = False
    manager.set_healthy(True)
    summary = run_module(service_recover.main, args())["summary"]
    assert summary["outcome"] == "healthy"
    assert summary["message"] == "healthy: demo answers its health check, nothing to do"
    assert summary["service"] == "demo" and summary["manager"] == "systemd"
    assert summary["actions"] == [] and summary["verification"] == {}
    # No evidence gathered for a healthy service: only health, the count and the attempts.
    assert set(summary["evidence"]) == {"health", "restarts_in_window", "attempts"}


def test_summary_remediated(run_module, args, manager):
    result = run_module(service_recover.main, args(dependencies=[]))
    summary = result["summary"]
    assert summary["outcome"] == "remediated"
    assert summary["message"] == "remediated: demo restarted and healthy"
    assert summary["actions"] == result["actions"] and summary["findings"] == result["findings"]
    assert summary["verification"] == result["verification"]
    evidence = summary["evidence"]
    # The manager's state, then the log tail and the dependencies, then health, count and attempts.
    assert evidence["active_state"] == "failed" and evidence["log_tail"] == ["line 1", "line 2"]
    assert evidence["dependencies"] == [] and "port_holder" not in evidence
    assert evidence["health"] == result["health"] and evidence["restarts_in_window"] == 1
    assert evidence["attempts"] == result["attempts"]


def test_summary_failed(run_module, args, manager):
    manager.starts_healthy = False
    # One attempt of a budget of three: not recovered, not escalated.
    summary = run_module(service_recover.main, args(max_attempts=1, verify_timeout=0.3))["summary"]
    assert summary["outcome"] == "failed"
    assert summary["message"] == "failed: demo restarted but did not become healthy"


def test_summary_escalate(run_module, args, manager):
    manager.starts_healthy = False
    summary = run_module(service_recover.main, args(budget_max=2, verify_timeout=0.3))["summary"]
    assert summary["outcome"] == "escalate"
    # budget_window is a float option: printed as the role's int default was (3600, not 3600.0).
    assert summary["message"] == ("escalate: demo was restarted 2 times in the last 3600 s (budget 2); "
                                  "not restarting again, a human must look")
    # Spent before this call: nothing restarted, the same message with another window.
    again = run_module(service_recover.main, args(budget_max=2, budget_window=1800.5))["summary"]
    assert again["outcome"] == "escalate" and again["actions"] == []
    assert again["message"].startswith("escalate: demo was restarted 2 times in the last 1800.5 s (budget 2);")


def test_summary_planned_in_check_mode(run_module, args, manager):
    summary = run_module(service_recover.main, {**args(), "_ansible_check_mode": True})["summary"]
    assert summary["outcome"] == "planned" and summary["message"] == "planned: would restart demo (systemd)"


def test_summary_planned_when_not_acting(run_module, args, manager):
    summary = run_module(service_recover.main, args(act=False))["summary"]
    assert summary["outcome"] == "planned" and summary["message"] == "planned: would restart demo (systemd)"
    assert summary["verification"] == {}


def test_summary_tolerates_missing_keys():
    """A result without recovered/escalate/verification reads as the role's defaults did."""
    params = {"service": {"name": "demo", "manager": "systemd"}, "force": True, "act": True,
              "budget_window": 600, "budget_max": 3}
    summary = service_recover.summarize({"healthy": True, "health": {}, "restarts_in_window": 0}, params, False)
    assert summary["outcome"] == "failed" and summary["verification"] == {} and summary["evidence"]["attempts"] == []


def test_a_start_that_fails_on_a_taken_port_stops_the_attempts_and_names_the_holder(
        run_module, args, manager, http_server, tmp_path, monkeypatch):
    manager.starts_healthy = False
    holder = 'LISTEN 0 128 127.0.0.1:40857 0.0.0.0:* users:(("python3",pid=32579,fd=3))'
    calls = manager.__call__

    class Fake:  # the start logs EADDRINUSE; ss names what holds the port
        def __call__(self, argv, **kwargs):
            if argv[0] == "ss":
                manager.calls.append(list(argv))
                return 0, holder + "\n", ""
            if argv[0] == "journalctl" and any("start" in call for call in manager.calls):
                return 0, "starting demo on 127.0.0.1:40857\nERROR EADDRINUSE: 127.0.0.1:40857 already in use\n", ""
            return calls(argv, **kwargs)

    from ansible.module_utils import basic

    fake = Fake()
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw))
    params = args(service=svc(http_server, port=40857), budget_max=3, max_attempts=3, verify_timeout=0.3)
    result = run_module(service_recover.main, params)
    assert result["recovered"] is False and result["escalate"] is True and result["port_taken"] is True
    assert len(result["attempts"]) == 1 and len(history(tmp_path)) == 1  # one try, not the whole budget
    assert result["port_holder"] == [holder]
    assert any(f.startswith("port 40857 is already in use (EADDRINUSE): LISTEN") for f in result["findings"])
    summary = result["summary"]
    assert summary["outcome"] == "escalate"
    assert summary["message"] == ("escalate: demo cannot start: its port 40857 is held by another process "
                                  "(python3 (pid 32579)); restarting again would not help, a human must free the port")
    assert not any(call[:1] == ["kill"] or "kill" in call for call in manager.calls)  # the holder is left alone


def test_the_holder_names_come_from_ss_users():
    lines = ['LISTEN 0 5 *:80 *:* users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6))', "LISTEN 0 5 *:81 *:*"]
    assert _service.holder_names(lines) == "nginx (pid 10), nginx (pid 11)"
    assert _service.holder_names([]) == ""
