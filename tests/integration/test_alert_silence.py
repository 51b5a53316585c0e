"""alertmanager_silence and the alert_silence role against a real Alertmanager (not named
test_alertmanager_silence.py: the unit tests hold that module name, and pytest imports
both as top-level modules).

The fixture starts Debian's prometheus-alertmanager with the lab's own code
(runbook_remediation.lab.monitoring: Server, alertmanager_config) on a free 127.0.0.1
port, clustering off, storage in a temp dir. The module's main() runs in-process over
real HTTP; the role runs through ansible-playbook. Every test uses its own comment or
scenario name, so tests never see each other's silences.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from runbook_remediation.lab.lab import free_port
from runbook_remediation.lab.monitoring import ALERTMANAGER_BIN, Server, alertmanager_config
from tests.collection_loader import install_collection_loader

pytestmark = pytest.mark.lab

install_collection_loader()

from ansible_collections.runbook.remediation.plugins.module_utils import _silence  # noqa: E402
from ansible_collections.runbook.remediation.plugins.module_utils._http import HttpClient  # noqa: E402
from ansible_collections.runbook.remediation.plugins.modules import alertmanager_silence  # noqa: E402

HOST = "lab-9"


# --------------------------------------------------------------------------- Alertmanager


@pytest.fixture(scope="module")
def am(tmp_path_factory):
    """A running Alertmanager; yields its base URL."""
    if shutil.which(ALERTMANAGER_BIN) is None:
        pytest.skip(f"{ALERTMANAGER_BIN} is not installed (apt-get install prometheus-alertmanager)")
    server = Server("alertmanager", tmp_path_factory.mktemp("alertmanager"), free_port())
    server.write_config(alertmanager_config())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def api(url: str, body=None, method: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip() else None


def silences(url: str, comment: str) -> list[dict]:
    return [s for s in api(url + "/api/v2/silences") if s["comment"] == comment]


def live(url: str, comment: str) -> list[dict]:
    return [s for s in silences(url, comment) if s["status"]["state"] in ("active", "pending")]


def inject_alert(url: str, **labels) -> None:
    """An alert POSTed straight to Alertmanager, firing for 10 minutes."""
    api(url + "/api/v2/alerts", [{"labels": labels, "annotations": {"summary": "test"}}], method="POST")


def alert_status(url: str, alertname: str) -> dict:
    """The alert's status once Alertmanager has processed it (silences apply then)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [a for a in api(url + "/api/v2/alerts") if a["labels"]["alertname"] == alertname]
        if found and found[0]["status"]["state"] != "unprocessed":
            return found[0]["status"]
        time.sleep(0.1)
    raise AssertionError(f"alert {alertname} never processed")


def wait_state(url: str, alertname: str, state: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = alert_status(url, alertname)
        if status["state"] == state:
            return status
        time.sleep(0.1)
    raise AssertionError(f"alert {alertname} never became {state}: {status}")


# --------------------------------------------------------------------------- the module, in-process


class ModuleExit(Exception):
    def __init__(self, failed: bool, result: dict):
        super().__init__(result.get("msg", ""))
        self.failed = failed
        self.result = result


@pytest.fixture
def run(monkeypatch):
    """run(check=False, diff=False, **args) -> (failed, result) from the module's main()."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def exit_json(self, **kwargs):
        raise ModuleExit(False, kwargs)

    def fail_json(self, msg, **kwargs):
        raise ModuleExit(True, dict(kwargs, msg=msg))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def _run(check=False, diff=False, **args):
        args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(ModuleExit) as excinfo:
            alertmanager_silence.main()
        return excinfo.value.failed, excinfo.value.result

    return _run


def test_create_extend_expire(run, am):
    comment = f"test {uuid.uuid4()}"
    alertname = f"Demo{uuid.uuid4().hex[:8]}"
    args = {"url": am, "labels": {"alertname": [alertname, "Other"], "host": HOST}, "comment": comment,
            "duration": "15m"}
    inject_alert(am, alertname=alertname, host=HOST, severity="critical")
    assert alert_status(am, alertname)["state"] == "active"

    # check mode: reports the creation, creates nothing
    failed, result = run(check=True, diff=True, **args)
    assert not failed, result["msg"]
    assert (result["changed"], result["action"], result["silence_id"]) == (True, "created", None)
    assert result["diff"]["before"] == {} and result["diff"]["after"]["comment"] == comment
    assert silences(am, comment) == []

    failed, result = run(**args)
    assert not failed, result["msg"]
    assert (result["changed"], result["action"]) == (True, "created")
    silence_id = result["silence_id"]
    (made,) = live(am, comment)
    assert made["id"] == silence_id and made["createdBy"] == "runbook.remediation"
    assert sorted((m["name"], m["value"], m["isRegex"]) for m in made["matchers"]) == [
        ("alertname", f"{alertname}|Other", True), ("host", HOST, False)]
    ends = _silence.parse_am_time(made["endsAt"])
    assert ends == pytest.approx(time.time() + 900, abs=30)
    assert result["silence"]["ends_at"] == made["endsAt"] and result["silence"]["state"] == "active"
    # it really silences the alert
    assert wait_state(am, alertname, "suppressed")["silencedBy"] == [silence_id]

    # a second run (and a check-mode run) changes nothing
    for check in (False, True):
        failed, result = run(check=check, **args)
        assert not failed, result["msg"]
        assert (result["changed"], result["action"], result["silence_id"]) == (False, "unchanged", silence_id)
    assert [s["updatedAt"] for s in live(am, comment)] == [made["updatedAt"]]

    # longer, and by someone else: updated in place, same id
    failed, result = run(**dict(args, duration="1h", created_by="alice"))
    assert not failed, result["msg"]
    assert (result["changed"], result["action"], result["silence_id"]) == (True, "updated", silence_id)
    (updated,) = live(am, comment)
    assert updated["createdBy"] == "alice"
    assert _silence.parse_am_time(updated["endsAt"]) == pytest.approx(time.time() + 3600, abs=30)

    # expire: check mode first (nothing happens), then for real, then nothing to do
    absent = {"url": am, "state": "absent", "labels": args["labels"], "comment": comment}
    failed, result = run(check=True, **absent)
    assert not failed and (result["changed"], result["expired"]) == (True, [silence_id])
    assert len(live(am, comment)) == 1
    failed, result = run(**absent)
    assert not failed, result["msg"]
    assert (result["changed"], result["action"], result["expired"]) == (True, "expired", [silence_id])
    assert result["silence"]["state"] == "expired"
    assert live(am, comment) == [] and silences(am, comment)[0]["status"]["state"] == "expired"
    assert wait_state(am, alertname, "active")["silencedBy"] == []
    failed, result = run(**absent)
    assert not failed and (result["changed"], result["action"], result["expired"]) == (False, "absent", [])


def test_alertmanager_filters_the_silences_by_our_plain_matchers(run, am):
    """ensure_present/absent ask Alertmanager for the silences with our host only (it keeps
    expired ones for days): another host's silence with the same comment is not returned."""
    comment = f"test {uuid.uuid4()}"
    ours = {"url": am, "labels": {"alertname": "Filtered", "host": HOST}, "comment": comment}
    failed, result = run(**ours)
    assert not failed, result["msg"]
    failed, other = run(**dict(ours, labels={"alertname": "Filtered", "host": "lab-8"}))
    assert not failed and other["silence_id"] != result["silence_id"]
    client = _silence.SilenceClient(HttpClient(base_url=am, timeout=5))
    matchers = _silence.build_matchers(None, ours["labels"])
    assert {s["id"] for s in client.silences(_silence.server_filters(matchers)) if s["comment"] == comment} \
        == {result["silence_id"]}
    assert {result["silence_id"], other["silence_id"]} <= {s["id"] for s in client.silences()}
    failed, again = run(**ours)
    assert not failed and (again["action"], again["silence_id"]) == ("unchanged", result["silence_id"])
    failed, gone = run(**dict(ours, state="absent"))
    assert not failed and gone["expired"] == [result["silence_id"]]
    assert [s["id"] for s in live(am, comment)] == [other["silence_id"]]


def test_by_silence_id(run, am):
    comment = f"test {uuid.uuid4()}"
    failed, result = run(url=am, labels={"alertname": "ById"}, comment=comment, ends_at="+10m")
    assert not failed, result["msg"]
    silence_id = result["silence_id"]

    # a new comment for the same silence: matchers and end come along, id stays
    failed, result = run(url=am, silence_id=silence_id, comment=comment + " (handover)", ends_at="+20m")
    assert not failed, result["msg"]
    assert (result["changed"], result["silence_id"]) == (True, silence_id)
    assert live(am, comment + " (handover)")[0]["id"] == silence_id

    failed, result = run(url=am, state="absent", silence_id=silence_id)
    assert not failed and (result["changed"], result["expired"]) == (True, [silence_id])
    failed, result = run(url=am, state="absent", silence_id=silence_id)
    assert not failed and result["changed"] is False
    failed, result = run(url=am, state="absent", silence_id=str(uuid.uuid4()))
    assert not failed and result["changed"] is False and result["silence"] is None

    failed, result = run(url=am, silence_id=silence_id, duration="5m")
    assert failed and result["error_kind"] == "input"
    assert result["msg"] == f"silence {silence_id} has expired: give matchers and a comment to create a new one"


def test_alertmanager_refuses_a_silence_of_everything(run, am):
    comment = f"test {uuid.uuid4()}"
    failed, result = run(url=am, labels={"alertname": "~.*"}, comment=comment)
    assert failed
    assert result["error_kind"] == "input"
    assert result["msg"] == (f"Alertmanager at {am} refused the request: silence invalid: "
                             "at least one matcher must not match the empty string")
    assert silences(am, comment) == []


def test_alertmanager_down_is_unavailable(run):
    url = f"http://127.0.0.1:{free_port()}"
    for state in ("present", "absent"):
        failed, result = run(url=url, state=state, labels={"alertname": "X"}, comment="c")
        assert failed
        assert result["error_kind"] == "unavailable"
        assert result["msg"] == f"Alertmanager at {url} is unreachable: connection refused"


# --------------------------------------------------------------------------- the role, through ansible-playbook

WRAPPED = """\
# A scenario's remediation wrapped in its silence: the silence is expired in `always`,
# so also when the remediation fails.
- name: Remediation under a silence
  hosts: all
  gather_facts: false
  vars:
    runbook_scenario: "{{ scenario }}"
    runbook_alerts: ["{{ alertname }}", Other]
  tasks:
    - name: Silence, remediate, always expire
      block:
        - name: Silence the scenario's own alerts while it acts
          ansible.builtin.include_role:
            name: runbook.remediation.alert_silence

        - name: The alert is silenced while the remediation acts
          runbook.remediation.prometheus_alerts:
            url: "{{ runbook_alertmanager_url }}"
            alertname: "{{ alertname }}"
            state: suppressed
          register: suppressed
          delegate_to: localhost
          when: check_suppressed | default(false) | bool
          failed_when: suppressed.count != 1

        - name: The remediation fails
          ansible.builtin.fail:
            msg: the remediation failed
          when: remediation_fails | default(false) | bool
      always:
        - name: Expire the silence, failure included
          ansible.builtin.include_role:
            name: runbook.remediation.alert_silence
            tasks_from: expire

        - name: Report the silence
          ansible.builtin.debug:
            var: alert_silence_result
"""

CONVERGE = """\
- name: Converge
  hosts: all
  gather_facts: false
  vars:
    runbook_scenario: "{{ scenario }}"
    runbook_alerts: ["{{ alertname }}"]
  roles:
    - role: runbook.remediation.alert_silence
"""


@pytest.fixture
def playbooks(tmp_path):
    (tmp_path / "wrapped.yml").write_text(WRAPPED)
    (tmp_path / "converge.yml").write_text(CONVERGE)
    return tmp_path


def inventory(directory: Path, am_url: str | None) -> Path:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "runbook_services": [{"name": "demo", "manager": "systemd", "unit": "demo.service",
                              "health_url": "http://127.0.0.1:1/health"}],
    }
    if am_url:
        host["runbook_alertmanager_url"] = am_url
    path = directory / f"inventory-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {HOST: host}}}))
    return path


def playbook(directory: Path, name: str, am_url: str | None, *args: str, **extra) -> tuple[int, dict]:
    """ansible-playbook with the json stdout callback: (rc, its JSON report)."""
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inventory(directory, am_url)), str(directory / name), "-e", json.dumps(extra),
         *args],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=directory)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON report (rc {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.returncode, report


def task_result(report: dict, name: str) -> dict:
    """The host's result of the last task called ``name`` (role tasks are named ``role : name``)."""
    found = [task["hosts"][HOST] for play in report["plays"] for task in play["tasks"]
             if task["task"]["name"].split(" : ")[-1] == name and HOST in task["hosts"]]
    assert found, f"no task {name!r} ran"
    return found[-1]


def test_role_is_idempotent_and_check_mode_changes_nothing(playbooks, am):
    scenario = f"converge-{uuid.uuid4().hex[:8]}"
    comment = f"runbook.remediation {scenario} on {HOST}"
    # Nothing fires ConvergeDown: silence regardless (only_firing is tested on its own below).
    extra = {"scenario": scenario, "alertname": "ConvergeDown", "alert_silence_only_firing": False}

    rc, report = playbook(playbooks, "converge.yml", am, **extra)
    assert rc == 0, report["stats"]
    assert report["stats"][HOST]["changed"] == 1
    (made,) = live(am, comment)
    assert sorted((m["name"], m["value"]) for m in made["matchers"]) == [
        ("alertname", "ConvergeDown"), ("host", HOST), ("service", "demo")]
    # the module's arguments and result stay hidden (alert_silence_no_log)
    assert "censored" in task_result(report, "Create or extend the silence")

    rc, report = playbook(playbooks, "converge.yml", am, **extra)
    assert rc == 0 and report["stats"][HOST]["changed"] == 0, report["stats"]
    rc, report = playbook(playbooks, "converge.yml", am, "--check", **extra)
    assert rc == 0 and report["stats"][HOST]["changed"] == 0, report["stats"]
    assert live(am, comment) == [made]  # same id, same end, not even touched (updatedAt)


def test_a_failing_remediation_still_expires_its_silence(playbooks, am):
    scenario = f"failing-{uuid.uuid4().hex[:8]}"
    alertname = f"Failing{uuid.uuid4().hex[:8]}"
    comment = f"runbook.remediation {scenario} on {HOST}"
    inject_alert(am, alertname=alertname, host=HOST, service="demo")
    assert alert_status(am, alertname)["state"] == "active"

    rc, report = playbook(playbooks, "wrapped.yml", am, scenario=scenario, alertname=alertname,
                          remediation_fails=True, check_suppressed=True)
    assert rc == 2, report["stats"]
    assert report["stats"][HOST]["failures"] == 1
    assert task_result(report, "The alert is silenced while the remediation acts")["count"] == 1
    assert task_result(report, "The remediation fails")["msg"] == "the remediation failed"
    result = task_result(report, "Report the silence")["alert_silence_result"]
    assert result["silenced"] is True and result["expired"] == [result["silence_id"]]
    (silence,) = silences(am, comment)
    assert silence["id"] == result["silence_id"] and silence["status"]["state"] == "expired"
    assert wait_state(am, alertname, "active")["silencedBy"] == []


def test_alertmanager_down_does_not_block_the_remediation(playbooks):
    url = f"http://127.0.0.1:{free_port()}"
    rc, report = playbook(playbooks, "wrapped.yml", url, scenario="down", alertname="DownAlert",
                          alert_silence_only_firing=False)
    assert rc == 0, report["stats"]
    assert report["stats"][HOST]["failures"] == 0
    result = task_result(report, "Report the silence")["alert_silence_result"]
    assert result["silenced"] is False and result["error_kind"] == "unavailable"
    assert result["message"] == (f"warning: could not silence DownAlert, Other: Alertmanager at {url} is "
                                 "unreachable: connection refused")
    assert result["expire_message"].startswith("warning: could not expire the silence")

    rc, report = playbook(playbooks, "wrapped.yml", url, scenario="down", alertname="DownAlert",
                          alert_silence_required=True, alert_silence_only_firing=False)
    # required: the silence fails the host, and so does the expiry in `always`
    assert rc == 2 and report["stats"][HOST]["failures"] == 2


def test_check_mode_and_no_url_and_diagnose_only_make_no_silence(playbooks, am):
    scenario = f"dry-{uuid.uuid4().hex[:8]}"
    comment = f"runbook.remediation {scenario} on {HOST}"
    rc, report = playbook(playbooks, "wrapped.yml", am, "--check", scenario=scenario, alertname="DryAlert",
                          alert_silence_only_firing=False)
    assert rc == 0, report["stats"]
    assert task_result(report, "Report the silence")["alert_silence_result"]["message"].startswith("would silence")
    assert silences(am, comment) == []

    rc, report = playbook(playbooks, "wrapped.yml", am, scenario=scenario, alertname="DryAlert",
                          runbook_diagnose_only=True)
    assert rc == 0 and report["stats"][HOST]["changed"] == 0
    result = task_result(report, "Report the silence")["alert_silence_result"]
    assert result["skipped"] is True and result["message"].startswith("not silenced: disabled")
    assert silences(am, comment) == []

    rc, report = playbook(playbooks, "wrapped.yml", None, scenario=scenario, alertname="DryAlert")
    assert rc == 0 and report["stats"][HOST]["changed"] == 0
    result = task_result(report, "Report the silence")["alert_silence_result"]
    assert result["message"] == "not silenced: no Alertmanager URL (runbook_alertmanager_url)"


def test_nothing_firing_leaves_alertmanager_alone(playbooks, am):
    """A run that finds nothing wrong makes no silence (and changes nothing); once the
    alert fires for the host, the same run silences it and expires it at the end."""
    scenario = f"quiet-{uuid.uuid4().hex[:8]}"
    alertname = f"Quiet{uuid.uuid4().hex[:8]}"
    comment = f"runbook.remediation {scenario} on {HOST}"
    rc, report = playbook(playbooks, "wrapped.yml", am, scenario=scenario, alertname=alertname)
    assert rc == 0 and report["stats"][HOST]["changed"] == 0, report["stats"]
    result = task_result(report, "Report the silence")["alert_silence_result"]
    assert result["silenced"] is False and result["message"].startswith(f"not silenced: none of {alertname}")
    assert silences(am, comment) == []

    inject_alert(am, alertname=alertname, host="another-host", service="demo")  # not ours
    rc, report = playbook(playbooks, "wrapped.yml", am, scenario=scenario, alertname=alertname)
    assert rc == 0 and silences(am, comment) == []

    inject_alert(am, alertname=alertname, host=HOST, service="demo")
    assert alert_status(am, alertname)["state"] == "active"
    rc, report = playbook(playbooks, "wrapped.yml", am, scenario=scenario, alertname=alertname,
                          check_suppressed=True)
    assert rc == 0, report["stats"]
    (silence,) = silences(am, comment)
    assert silence["status"]["state"] == "expired"


def test_bad_role_input_fails_before_anything(playbooks, am):
    rc, report = playbook(playbooks, "converge.yml", am, scenario="bad", alertname="Bad Name")
    assert rc == 2
    failure = task_result(report, "Check the silence settings")
    assert failure["msg"].startswith("alert_silence: alertnames must be a list of alert names")
    assert silences(am, f"runbook.remediation bad on {HOST}") == []
