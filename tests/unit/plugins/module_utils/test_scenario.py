"""The scenario frame's rules: request shapes, safety overrides, outcomes."""

from __future__ import annotations

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _scenario as scenario

PAYLOAD = "{{ lookup('pipe', 'id > /tmp/owned') }}"


@pytest.mark.parametrize("value", ["demo", "web-1", "api_v2.internal", ""])
def test_plain_service_names_pass(value):
    assert scenario.check_request({"service": value})["service"] == value


@pytest.mark.parametrize("value", [PAYLOAD, "{% raw %}", "{# x #}", "demo\n", "a b", "a,b", "web-*", "x;rm -rf /",
                                   "a" * 200, "ünïcode", "../etc"])
def test_anything_else_is_refused_without_echoing_it(value):
    with pytest.raises(scenario.RequestError) as exc:
        scenario.check_request({"service": value})
    assert "{{" not in str(exc.value) and "lookup" not in str(exc.value)


@pytest.mark.parametrize(("name", "value"), [
    ("runbook_alert_key", "deadbeef@2026-12-03T08:00:00Z"),
    ("runbook_alert_key", "0a1b2c3d4e5f6789@2026-12-03T08:00:00.123456789+01:00"),
    ("runbook_run_id", "20261203T080000-ab12cd34"),
    ("runbook_incident", "INC-20261203-0001"),
    ("cpu_limit_raise_to", "1.5"), ("cpu_limit_raise_to", "2"),
    ("replica_scale_to", "4"), ("replica_scale_to", 3),
    ("config_restore_revision", "HEAD"), ("config_restore_revision", "HEAD~1"), ("config_restore_revision", "v1.2"),
    ("config_restore_revision", "0a1b2c3"),
    ("app_admin_action", "cache_clear"), ("app_admin_action", "gc"),
    ("redis_memory_to", "512M"), ("redis_memory_to", "1.5G"), ("redis_memory_flush", "all"),
    ("redis_memory_flush_db", "3"), ("redis_memory_flush_db", 3),
    ("db_max_connections_to", "300"), ("db_max_connections_to", 300),
    ("prometheus_retention_time", "15d"), ("prometheus_retention_time", "1h30m"), ("prometheus_retention_size", "10GB"),
    ("pod_isolate_action", "revert"), ("maintenance_mode_action", "enable"), ("maintenance_mode_action", "disable"),
    ("traffic_weight_action", "revert"), ("traffic_weight_to", "0"), ("traffic_weight_to", 50),
    ("host_isolate_action", "revert"), ("client_block_action", "unblock"),
])
def test_other_request_values(name, value):
    assert scenario.check_request({name: value})[name] == str(value)


@pytest.mark.parametrize(("name", "value"), [
    ("runbook_alert_key", "x@y"), ("runbook_alert_key", PAYLOAD), ("runbook_run_id", PAYLOAD),
    ("runbook_incident", "INC 1"), ("service", 7.5), ("service", ["demo"]), ("service", True),
    ("cpu_limit_raise_to", PAYLOAD), ("cpu_limit_raise_to", "1; reboot"), ("cpu_limit_raise_to", "0.125"),
    ("replica_scale_to", PAYLOAD), ("replica_scale_to", "{{ 2 + 2 }}"), ("replica_scale_to", "2.5"),
    ("replica_scale_to", "-1"), ("replica_scale_to", "1000"), ("replica_scale_to", True),
    ("config_restore_revision", PAYLOAD), ("config_restore_revision", "--output=/tmp/x"),
    ("config_restore_revision", "-p"), ("config_restore_revision", "HEAD:../../etc/shadow"),
    ("config_restore_revision", "a b"), ("config_restore_revision", "HEAD\n"),
    ("config_restore_force", "maybe"), ("config_restore_force", PAYLOAD),
    ("app_admin_action", PAYLOAD), ("app_admin_action", "Cache-Clear"), ("app_admin_action", "../x"),
    ("app_admin_action", "cache_clear\n"), ("app_admin_force", "maybe"),
    ("redis_memory_to", "lots"), ("redis_memory_to", PAYLOAD), ("redis_memory_flush", "everything"),
    ("redis_memory_flush_db", "-1"), ("redis_memory_flush_db", "0; FLUSHALL"),
    ("redis_memory_flush", PAYLOAD), ("redis_memory_flush_db", PAYLOAD),
    ("db_max_connections_to", PAYLOAD), ("db_max_connections_to", "300; ALTER SYSTEM RESET ALL"),
    ("db_max_connections_to", "-1"), ("db_max_connections_to", "1e3"),
    ("prometheus_retention_time", PAYLOAD), ("prometheus_retention_time", "15 days"),
    ("prometheus_retention_time", "15d\n"),
    ("prometheus_retention_size", PAYLOAD), ("prometheus_retention_size", "10G"),
    ("pod_isolate_action", PAYLOAD), ("pod_isolate_action", "delete"),
    ("maintenance_mode_action", PAYLOAD), ("maintenance_mode_action", "on"), ("maintenance_mode_action", "enable\n"),
    ("traffic_weight_action", PAYLOAD), ("traffic_weight_action", "drain"),
    ("traffic_weight_to", PAYLOAD), ("traffic_weight_to", "-1"), ("traffic_weight_to", "0.5"),
    ("traffic_weight_to", "{{ 7 * 7 }}"), ("traffic_weight_to", True),
    ("host_isolate_action", PAYLOAD), ("host_isolate_action", "open"), ("client_block_action", PAYLOAD),
])
def test_other_bad_request_values(name, value):
    with pytest.raises(scenario.RequestError):
        scenario.check_request({name: value})


@pytest.mark.parametrize(("value", "expected"), [
    ({"DEMO_LOG_LEVEL": "debug", "DEMO_WORK_ITERATIONS": 5}, {"DEMO_LOG_LEVEL": "debug", "DEMO_WORK_ITERATIONS": "5"}),
    ('{"LLM_PROVIDER": "secondary"}', {"LLM_PROVIDER": "secondary"}), ("", {}), (None, {}),
])
def test_settings_requests(value, expected):
    assert scenario.check_request({"env_toggle_set": value})["env_toggle_set"] == expected


@pytest.mark.parametrize("value", [
    {"DEMO_LOG_LEVEL": PAYLOAD}, {PAYLOAD: "x"}, PAYLOAD, '{"A": "' + PAYLOAD.replace('"', "'") + '"}',
    {"A": "x\nExecStartPre=/bin/sh"}, {"A": "$(id)"}, {"A": True}, {"A": ["x"]}, ["A=x"], "A=x", {"1A": "x"},
])
def test_bad_settings_requests(value):
    with pytest.raises(scenario.RequestError) as exc:
        scenario.check_request({"env_toggle_set": value})
    assert "{{" not in str(exc.value) and "lookup" not in str(exc.value)


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("true", True), ("yes", True), ("0", False),
                                                 (False, False), ("", False), (None, False)])
def test_revert_flag(value, expected):
    assert scenario.check_request({"env_toggle_revert": value})["env_toggle_revert"] is expected


@pytest.mark.parametrize("value", [PAYLOAD, "maybe", [True], 2])
def test_bad_revert_flags(value):
    with pytest.raises(scenario.RequestError):
        scenario.check_request({"env_toggle_revert": value})


def test_an_eda_event_is_reduced_to_checked_fields():
    event = {"event": {"labels": {"alertname": "ServiceDown", "host": "lab-1", "service": "demo",
                                  "severity": "critical"},
                       "annotations": {"summary": PAYLOAD}, "fingerprint": "a1b2", "status": "firing",
                       "startsAt": "2026-12-03T08:00:00Z", "generatorURL": PAYLOAD}}
    alert = scenario.check_request({"ansible_eda": event})["alert"]
    assert alert == {"fingerprint": "a1b2", "starts_at": "2026-12-03T08:00:00Z", "status": "firing",
                     "labels": event["event"]["labels"], "key": "a1b2@2026-12-03T08:00:00Z"}


@pytest.mark.parametrize("labels", [{"service": PAYLOAD}, {"bad-name": "x"}, {"host": "a b"}, {"x": ["list"]}])
def test_an_eda_event_with_a_bad_label_is_refused(labels):
    with pytest.raises(scenario.RequestError):
        scenario.check_eda_event({"event": {"labels": labels}})


def test_safety_overrides_are_named():
    names = ["service", "safety_envelope_max_attempts", "runbook_blast_radius", "service_restart_budget_max",
             "service_restart_budget_window", "service_restart_max_attempts", "service_restart_state_dir",
             "memory_limit_raise_ceiling", "service_restart_verify_timeout", "runbook_verify_promql"]
    assert scenario.safety_overrides(names) == sorted(names[1:8])


@pytest.mark.parametrize(("decision", "outcome", "expected"), [
    ("act", "remediated", "remediated"),
    ("diagnose", "planned", "planned"),
    ("duplicate", "planned", "skipped"),
    ("cooldown", "planned", "escalate"),
    ("breaker", "planned", "escalate"),
    ("busy", "planned", "escalate"),
    ("cooldown", "healthy", "healthy"),
    ("breaker", "failed", "failed"),
])
def test_the_envelope_decision_shapes_the_outcome(decision, outcome, expected):
    result = scenario.apply_decision({"outcome": outcome, "message": "x"}, decision, "why")
    assert result["outcome"] == expected


def test_results_are_complete_and_unknown_outcomes_fail():
    final = scenario.complete_result({"outcome": "weird", "message": "m"}, "service-down", "web-1", False)
    assert final["outcome"] == "failed" and final["scenario"] == "service-down" and final["host"] == "web-1"
    assert set(final) >= {"findings", "actions", "verification", "evidence", "check_mode"}
    assert scenario.rejected_result("no such service")["message"] == "invalid input: no such service"
    assert scenario.rejected_result("down", "unavailable")["message"] == "unavailable: down"


def test_failure_keeps_what_the_role_recorded():
    result = scenario.failure_result({"findings": ["a"], "evidence": {"x": 1}}, "boom", "Restart it")
    assert result["outcome"] == "failed" and result["findings"] == ["a", "task 'Restart it' failed"]
    assert result["evidence"] == {"x": 1}


@pytest.mark.parametrize(("entry", "ttl"), [
    ({}, 900), ({"max_seconds": 60}, 900), ({"max_seconds": 3600}, 7200), ({"max_seconds": "x"}, 900)])
def test_lease_ttl_covers_the_longest_run(entry, ttl):
    assert scenario.lease_ttl(entry) == ttl
