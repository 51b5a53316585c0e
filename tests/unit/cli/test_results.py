"""results.py: runner events -> per-host results and the exit code (synthetic events)."""

from __future__ import annotations

import pytest

from runbook_remediation import results
from runbook_remediation.errors import ExitCode


def result(host: str, outcome: str, **extra) -> dict:
    return {
        "scenario": "service-down", "service": "demo", "host": host, "outcome": outcome,
        "message": f"{host} is {outcome}", "findings": ["f"], "actions": ["a"],
        "verification": {"passed": True}, "evidence": {"unit": "active"}, "check_mode": False, **extra,
    }


def ok(host: str, task: str = "Probe", facts: dict | None = None, changed: bool = False) -> dict:
    res = {"changed": changed}
    if facts is not None:
        res["ansible_facts"] = facts
    return {"event": "runner_on_ok", "event_data": {"host": host, "task": task, "res": res}}


def recorded(host: str, outcome: str, **extra) -> dict:
    return ok(host, "Record the scenario result", {"runbook_result": result(host, outcome, **extra)})


def failed(host: str, msg: str, task: str = "Check", ignore_errors: bool = False) -> dict:
    return {"event": "runner_on_failed",
            "event_data": {"host": host, "task": task, "ignore_errors": ignore_errors, "res": {"msg": msg}}}


def unreachable(host: str, msg: str = "ssh: connect to host: Connection refused") -> dict:
    return {"event": "runner_on_unreachable",
            "event_data": {"host": host, "task": "Probe", "res": {"msg": msg, "unreachable": True}}}


def stats(processed=(), failures=(), dark=(), rescued=()) -> dict:
    return {"event": "playbook_on_stats", "event_data": {
        "processed": dict.fromkeys(processed, 1), "failures": dict.fromkeys(failures, 1),
        "dark": dict.fromkeys(dark, 1), "rescued": dict.fromkeys(rescued, 1), "ok": {}, "changed": {},
    }}


def collect(*events) -> results.Collector:
    collector = results.Collector()
    for event in events:
        collector(event)
    return collector


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["healthy"], ("healthy", ExitCode.NOTHING_TO_DO)),
        (["healthy", "healthy"], ("healthy", ExitCode.NOTHING_TO_DO)),
        (["remediated"], ("remediated", ExitCode.REMEDIATED)),
        (["healthy", "remediated"], ("remediated", ExitCode.REMEDIATED)),
        (["planned"], ("planned", ExitCode.REMEDIATED)),
        (["healthy", "planned"], ("planned", ExitCode.REMEDIATED)),
        (["remediated", "planned"], ("remediated", ExitCode.REMEDIATED)),
        (["failed"], ("failed", ExitCode.FAILED)),
        (["remediated", "failed"], ("failed", ExitCode.FAILED)),
        (["escalate"], ("escalate", ExitCode.ESCALATE)),
        (["failed", "escalate", "remediated"], ("escalate", ExitCode.ESCALATE)),
        (["unreachable"], ("unreachable", ExitCode.UNAVAILABLE)),
        (["unreachable", "healthy"], ("unreachable", ExitCode.UNAVAILABLE)),
        (["unreachable", "remediated"], ("unreachable", ExitCode.UNAVAILABLE)),
        (["unreachable", "failed"], ("failed", ExitCode.FAILED)),
        (["unreachable", "escalate"], ("escalate", ExitCode.ESCALATE)),
        (["invalid"], ("invalid", ExitCode.BAD_INPUT)),
        (["invalid", "failed"], ("failed", ExitCode.FAILED)),
        (["invalid", "unreachable"], ("invalid", ExitCode.BAD_INPUT)),
        (["unavailable", "healthy"], ("unavailable", ExitCode.UNAVAILABLE)),
    ],
)
def test_overall_outcome_and_exit_code(outcomes, expected):
    assert results.overall(outcomes) == expected


@pytest.mark.parametrize(
    ("error_kind", "code"),
    [("input", ExitCode.BAD_INPUT), ("unavailable", ExitCode.UNAVAILABLE), ("remediation", ExitCode.FAILED),
     (None, ExitCode.FAILED)],
)
def test_error_kind_of_a_failed_result_decides_the_exit_code(error_kind, code):
    collector = results.Collector()
    extra = {"error_kind": error_kind} if error_kind else {}
    collector(recorded("lab-1", "failed", **extra))
    summary = results.summarize(collector, "service-down")
    assert summary.exit_code == code
    assert summary.outcome == "failed"  # the outcome stays one of the contract's


def test_overall_without_hosts_is_bad_input():
    with pytest.raises(results.NoHostsMatched) as info:
        results.overall([])
    assert info.value.exit_code == ExitCode.BAD_INPUT


@pytest.mark.parametrize("outcome", ["healthy", "remediated", "planned", "failed", "escalate"])
def test_recorded_result_is_the_host_entry(outcome):
    # failed/escalate hosts are failed by a later task: that must not change their outcome
    failures = ["lab-1"] if outcome in ("failed", "escalate") else []
    events = [recorded("lab-1", outcome)]
    if failures:
        events.append(failed("lab-1", "lab-1 is " + outcome, task="Fail when the scenario did not end well"))
    summary = results.summarize(collect(*events, stats(["lab-1"], failures)), "service-down")
    entry = summary.hosts["lab-1"]
    assert entry == result("lab-1", outcome)
    assert summary.outcome == outcome
    assert summary.broken == set()


def test_host_failed_before_the_result_takes_the_failure_message():
    summary = results.summarize(
        collect(ok("lab-1"), failed("lab-1", "service nope is not in runbook_services", task="Check the service"),
                stats(["lab-1"], failures=["lab-1"])),
        "service-down", service="nope",
    )
    entry = summary.hosts["lab-1"]
    assert entry["outcome"] == "failed"
    assert entry["message"] == "service nope is not in runbook_services"
    assert entry["task"] == "Check the service"
    assert entry["service"] == "nope"
    assert entry["findings"] == [] and entry["actions"] == [] and entry["evidence"] == {}
    assert summary.exit_code == ExitCode.FAILED
    assert summary.broken == {"lab-1"}


def test_unreachable_host_without_result():
    summary = results.summarize(
        collect(unreachable("lab-2"), recorded("lab-1", "healthy"), stats(["lab-1", "lab-2"], dark=["lab-2"])),
        "service-down",
    )
    assert summary.hosts["lab-2"]["outcome"] == "unreachable"
    assert "Connection refused" in summary.hosts["lab-2"]["message"]
    assert summary.hosts["lab-1"]["outcome"] == "healthy"
    assert (summary.outcome, summary.exit_code) == ("unreachable", ExitCode.UNAVAILABLE)


def test_rescued_failure_keeps_the_recorded_result():
    summary = results.summarize(
        collect(failed("lab-1", "restart failed"), recorded("lab-1", "remediated"),
                stats(["lab-1"], rescued=["lab-1"])),
        "service-down",
    )
    assert summary.hosts["lab-1"]["outcome"] == "remediated"
    assert summary.exit_code == ExitCode.REMEDIATED


def test_ignored_failure_is_not_a_failure_without_stats():
    summary = results.summarize(collect(failed("lab-1", "meh", ignore_errors=True), recorded("lab-1", "healthy")),
                                "service-down")
    assert summary.hosts["lab-1"]["outcome"] == "healthy"


def test_failure_after_a_good_result_fails_the_host():
    summary = results.summarize(
        collect(recorded("lab-1", "remediated"), failed("lab-1", "boom", task="Notify"),
                stats(["lab-1"], failures=["lab-1"])),
        "service-down",
    )
    entry = summary.hosts["lab-1"]
    assert entry["outcome"] == "failed"
    assert "Notify" in entry["message"] and "boom" in entry["message"]
    assert summary.exit_code == ExitCode.FAILED


def test_unknown_outcome_is_a_failure():
    summary = results.summarize(collect(recorded("lab-1", "fixed"), stats(["lab-1"])), "service-down")
    assert summary.hosts["lab-1"]["outcome"] == "failed"
    assert "'fixed'" in summary.hosts["lab-1"]["message"]


def test_host_that_ended_without_a_result_failed():
    summary = results.summarize(collect(ok("lab-1", task="Probe"), stats(["lab-1"])), "service-down")
    assert summary.hosts["lab-1"]["outcome"] == "failed"
    assert "without a result" in summary.hosts["lab-1"]["message"]
    assert "Probe" in summary.hosts["lab-1"]["message"]


def test_without_stats_events_decide():
    # a run stopped early has no playbook_on_stats
    summary = results.summarize(collect(unreachable("b"), failed("a", "nope")), "s")
    assert summary.hosts["a"]["outcome"] == "failed"
    assert summary.hosts["b"]["outcome"] == "unreachable"
    assert summary.exit_code == ExitCode.FAILED


def test_result_is_normalised():
    fact = {"outcome": "healthy", "message": None, "findings": "one", "evidence": "not a dict"}
    summary = results.summarize(collect(ok("h", facts={"runbook_result": fact}), stats(["h"])), "svc", check=True)
    entry = summary.hosts["h"]
    assert entry["scenario"] == "svc" and entry["host"] == "h"
    assert entry["message"] == "" and entry["findings"] == ["one"] and entry["actions"] == []
    assert entry["evidence"] == {} and entry["verification"] == {}
    assert entry["check_mode"] is True


def test_hosts_are_sorted_and_as_dict_is_the_json_shape():
    summary = results.summarize(collect(recorded("b", "healthy"), recorded("a", "remediated"), stats(["a", "b"])),
                                "service-down")
    assert list(summary.hosts) == ["a", "b"]
    assert summary.as_dict("/tmp/x") == {
        "scenario": "service-down", "outcome": "remediated", "exit_code": 0,
        "hosts": summary.hosts, "artifacts": "/tmp/x",
    }


def test_no_hosts_matched_event():
    with pytest.raises(results.NoHostsMatched):
        results.summarize(collect({"event": "playbook_on_no_hosts_matched", "event_data": {}}, stats()), "s")


def test_no_hosts_from_ansibles_error_line():
    error = {"event": "verbose",
             "stdout": "[ERROR]: Specified inventory, host pattern and/or --limit leaves us with no hosts to target."}
    with pytest.raises(results.NoHostsMatched) as info:
        results.summarize(collect(error), "s", rc=1)
    assert "no hosts to target" in info.value.message


def test_playbook_error_before_any_host():
    error = {"event": "verbose", "stdout": "[ERROR]: YAML parsing failed: mapping values are not allowed here"}
    with pytest.raises(results.RunBroken) as info:
        results.summarize(collect({"event": "verbose", "stdout": "[WARNING]: meh"}, error), "s", rc=4)
    assert info.value.exit_code == ExitCode.FAILED
    assert "YAML parsing failed" in info.value.message
    assert "WARNING" not in info.value.message


def test_vault_data_without_a_password_is_a_missing_prerequisite():
    error = {"event": "error", "stdout": "[ERROR]: Attempting to decrypt but no vault secrets found.\r\n"}
    with pytest.raises(results.VaultLocked) as info:
        results.summarize(collect(error), "s", rc=1)
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert "no vault password was given: Attempting to decrypt but no vault secrets found." in info.value.message
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in info.value.hint


def verbose(*lines: str) -> list[dict]:
    return [{"event": "verbose", "stdout": line} for line in lines]


BROKEN_YAML = verbose(  # ansible-core 2.19's lines for `-i broken.yml` (one verbose event each)
    "[WARNING]: Failed to parse inventory with 'auto' plugin: YAML parsing failed: While parsing a flow node "
    "did not find expected node content.",
    "", "Failed to parse inventory with 'auto' plugin.", "", "<<< caused by >>>", "",
    "YAML parsing failed: While parsing a flow node did not find expected node content.",
    "Origin: /inv/broken.yml:4:1", "",
    "[WARNING]: Failed to parse inventory with 'yaml' plugin: YAML parsing failed: While parsing a flow node "
    "did not find expected node content.",
    "Origin: <inventory plugin 'yaml' with source '/inv/broken.yml'>",
    "[WARNING]: Failed to parse inventory with 'ini' plugin: Failed to parse inventory: Invalid host pattern "
    "'all:' supplied, ending in ':' is not allowed, this character is reserved to provide a port.",
    "Origin: /inv/broken.yml",
    "[WARNING]: Unable to parse /inv/broken.yml as an inventory source",
    "[WARNING]: No inventory was parsed, only implicit localhost is available",
    "[WARNING]: provided hosts list is empty, only localhost is available. Note that the implicit localhost "
    "does not match 'all'",
)


def test_an_unparsable_inventory_says_so_not_no_host_matched():
    events = [*BROKEN_YAML, {"event": "playbook_on_no_hosts_matched", "event_data": {}}, stats()]
    with pytest.raises(results.InventoryUnusable) as info:
        results.summarize(collect(*events), "s")
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert info.value.message == ("inventory /inv/broken.yml could not be parsed as YAML: While parsing a flow node "
                                  "did not find expected node content (line 4, column 1): nothing was run")


def test_an_unparsable_ini_inventory_gets_the_ini_complaint():
    events = verbose(
        "[WARNING]: Failed to parse inventory with 'ini' plugin: Failed to parse inventory: not enough values "
        "to unpack (expected 3, got 2)",
        "Origin: /inv/hosts",
        "[WARNING]: Unable to parse /inv/hosts as an inventory source",
        "[WARNING]: No inventory was parsed, only implicit localhost is available",
    )
    with pytest.raises(results.InventoryUnusable, match=r"inventory /inv/hosts could not be parsed as INI: "
                                                        r"not enough values to unpack"):
        results.summarize(collect(*events, stats()), "s")


def test_a_source_that_fails_to_parse_is_an_error_and_says_why():
    # ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED (runner.our_env): ansible-core stops with an error
    # instead of running on the hosts the parser took before it failed.
    events = verbose(
        "[WARNING]: Failed to parse inventory with 'ini' plugin: Failed to parse inventory: not enough values "
        "to unpack (expected 3, got 2)",
        "Origin: /inv/hosts",
        "[ERROR]: Completely failed to parse inventory source /inv/hosts",
    )
    with pytest.raises(results.InventoryUnusable, match=r"^inventory /inv/hosts could not be parsed as INI: "
                                                        r"not enough values to unpack .*: nothing was run$"):
        results.summarize(collect(*events), "s", rc=1)


def test_a_binary_inventory_is_bad_input_even_when_ansible_crashes():
    events = [*verbose(
        "[DEPRECATION WARNING]: File '/inv/blob' could not be decoded as 'utf-8'. Invalid content has been escaped.",
        "[WARNING]: Unable to parse /inv/blob as an inventory source",
    ), {"event": "error", "stdout": "[ERROR]: Unexpected Exception, this is probably a bug: embedded null byte\r\n"
                                    "\r\nTraceback (most recent call last):\r\n  File ..."}]
    with pytest.raises(results.InventoryUnusable) as info:
        results.summarize(collect(*events), "s", rc=250)
    assert info.value.message == "inventory /inv/blob is not UTF-8 text (a binary file?): nothing was run"


def test_an_error_event_gives_its_first_line():
    event = {"event": "error", "stdout": "[ERROR]: Unexpected Exception: boom\r\n\r\nTraceback (most recent..."}
    with pytest.raises(results.RunBroken) as info:
        results.summarize(collect(event), "s", rc=250)
    assert info.value.message == "ansible-playbook stopped before any host ran: Unexpected Exception: boom"


def test_nonzero_rc_without_any_event():
    with pytest.raises(results.RunBroken, match="status 127"):
        results.summarize(collect(), "s", rc=127)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([recorded("a", "escalate"), failed("a", "x"), stats(["a"], ["a"])], ExitCode.REMEDIATED),
        ([recorded("a", "healthy"), stats(["a"])], ExitCode.REMEDIATED),
        ([recorded("a", "planned"), recorded("b", "failed"), stats(["a", "b"], ["b"])], ExitCode.REMEDIATED),
        ([recorded("a", "healthy"), unreachable("b"), stats(["a", "b"], dark=["b"])], ExitCode.UNAVAILABLE),
        ([recorded("a", "healthy"), failed("b", "bad service"), stats(["a", "b"], ["b"])], ExitCode.FAILED),
        ([unreachable("a"), failed("b", "bad"), stats(["a", "b"], ["b"], ["a"])], ExitCode.FAILED),
    ],
)
def test_diagnose_exit_code_says_whether_the_run_worked(events, expected):
    assert results.summarize(collect(*events), "s", check=True).diagnose_exit_code() == expected
