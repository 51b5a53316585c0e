"""Every alert the seed runbooks name maps to a scenario; users map their own names (label,
overlay); unmapped alerts reach the rulebook's catch-all; the severity matrix's order."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from runbook_remediation import catalogue, rulebook, triage
from runbook_remediation.collection import Collection
from runbook_remediation.errors import BadInput
from runbook_remediation.lab.monitoring import PROFILE_ALERTS, alertmanager_config, rules_text

REPO = Path(__file__).resolve().parents[3]
REAL = Collection(REPO, REPO)
SCENARIOS = catalogue.catalogue(REAL)
MATRIX = triage.load_matrix(None, REPO)

# The seeds (the requirements) live in shared/ beside the checkout (CI lays a copy there).
SEEDS = next((p for p in (REPO.parent / "shared" / "seeds", Path("/work/shared/seeds")) if p.is_dir()), None)

# How the seeds name their alerts: "Alert: `X`", "### Alert: `X` / `Y`", "**Alert**: `X`",
# "Prometheus alert: `X`", "- `X` alert", "`X` alert firing".
_ALERT_LINE = re.compile(r"(?i)(?:\balert\b\**\s*:\s*((?:`[^`]+`(?:\s*/\s*)?)+))|(?:`([^`]+)`\s+alert\b)")
_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_:]*)`")


def seed_alert_names(directory: Path) -> set[str]:
    names = set()
    for path in sorted(directory.glob("*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for match in _ALERT_LINE.finditer(line):
                names.update(_NAME.findall(match.group(1) or f"`{match.group(2)}`"))
    return names


# The names the seeds used when this was written (the issue counted 15): the parser must
# find at least these, so a parser that finds nothing cannot pass.
KNOWN_SEED_ALERTS = {
    "HighErrorRate", "HighLatencyP95", "HighMemoryUsage", "AuthenticationErrors", "GgenMcpServiceDown",
    "GgenMcpHighErrorRate", "GgenMcpHighLatency", "GgenMcpMemoryCritical", "GgenMcpElevatedMemoryUsage",
    "GgenMcpLowCacheHitRate", "GgenMcpHighLibreOfficeProcessCount", "GgenMcpHighActiveForks",
    "GgenMcpHighDiskUsage", "database_connection_pool_exhausted", "HighLatency",
}


@pytest.mark.skipif(SEEDS is None, reason="shared/seeds is not beside this checkout")
def test_the_parser_finds_the_seeds_alerts():
    assert seed_alert_names(SEEDS) >= KNOWN_SEED_ALERTS


def seed_names() -> list[str]:
    return sorted(seed_alert_names(SEEDS) if SEEDS else KNOWN_SEED_ALERTS)


@pytest.mark.parametrize("name", seed_names())
def test_every_seed_alert_maps_to_a_scenario(name):
    mapping = catalogue.alert_map(SCENARIOS)
    assert name in mapping, f"{name} (used in the seed runbooks) maps to no scenario"
    # Triage says which, and the rulebook has a rule that runs it.
    [row] = triage.classify([alert(name, severity="warning")], SCENARIOS, MATRIX, None)
    assert row.scenario is mapping[name]
    [ruleset] = yaml.safe_load((REPO / rulebook.RULEBOOK).read_text(encoding="utf-8"))
    rule = next(r for r in ruleset["rules"] if f'alertname == "{name}"' in r["condition"])
    assert rule["action"]["run_playbook"]["name"] == mapping[name].fqcn


@pytest.mark.parametrize(
    ("name", "scenario"),
    [("GgenMcpHighErrorRate", "error-rate"), ("HighErrorRate", "error-rate"), ("HighLatencyP95", "latency"),
     ("GgenMcpHighLatency", "latency"), ("HighLatency", "latency"), ("HighMemoryUsage", "memory-leak"),
     ("GgenMcpServiceDown", "service-down"), ("GgenMcpHighDiskUsage", "disk-full")],
)
def test_fitting_scenarios(name, scenario):
    assert catalogue.alert_map(SCENARIOS)[name].name == scenario


# --- the lab's own rules ------------------------------------------------------------------------

LAB_RULES = REPO / "cli" / "runbook_remediation" / "lab" / "files" / "prometheus-rules.yml"
GGEN_MCP_RULES = LAB_RULES.with_name("prometheus-rules-ggen-mcp.yml")


def lab_rules() -> list[dict]:
    groups = yaml.safe_load(rules_text(["ggen-mcp"]))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_a_profile_fires_the_seeds_own_names_and_they_inhibit_their_generic_twins():
    assert [g["name"] for g in yaml.safe_load(rules_text())["groups"]] == [
        "runbook-demo", "runbook-redis", "runbook-postgres"]
    seed_rules = yaml.safe_load(GGEN_MCP_RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    mapping = catalogue.alert_map(SCENARIOS)
    twins = PROFILE_ALERTS["ggen-mcp"]
    assert {rule["alert"] for rule in seed_rules} == set(twins.values())
    for generic, seed in twins.items():
        assert mapping[seed].name == mapping[generic].name, seed  # the same remedy
    for rule in seed_rules:
        assert 'host="lab-docker"' in rule["expr"], rule["alert"]  # the ggen-mcp-server replica only
    inhibit = alertmanager_config()["inhibit_rules"]
    assert {"source_matchers": ["alertname=GgenMcpServiceDown"], "target_matchers": ["alertname=ServiceDown"],
            "equal": ["host", "service"]} in inhibit
    assert len(inhibit) == 1 + len(twins)


def test_every_lab_alert_maps_to_a_scenario_and_carries_where_to_act():
    mapping = catalogue.alert_map(SCENARIOS)
    names = {rule["alert"] for rule in lab_rules()}
    assert {"ServiceDown", "HighErrorRate", "HighLatencyP95", "HighMemoryUsage", "AuthenticationErrors"} <= names
    for rule in lab_rules():
        assert rule["alert"] in mapping, f"the lab fires {rule['alert']}, which maps to no scenario"
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule
        # Triage and the rulebooks act on host and service: every expression keeps them.
        expr = " ".join(rule["expr"].split())
        assert "by (host, service" in expr or "sum" not in expr, rule["alert"]


def test_the_lab_names_its_alerts_as_the_seeds_do():
    # The seeds' generic names the demo has a metric for; the GgenMcp* names belong to that system.
    generic = {name for name in KNOWN_SEED_ALERTS if not name.startswith("GgenMcp")}
    fired = {rule["alert"] for rule in lab_rules()}
    assert {"HighErrorRate", "HighLatencyP95", "HighMemoryUsage", "AuthenticationErrors"} <= generic & fired


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_lab_rules(tmp_path):
    combined = tmp_path / "rules.yml"
    combined.write_text(rules_text(["ggen-mcp"]), encoding="utf-8")  # as Prometheus gets them with the profile
    for path in (LAB_RULES, combined):
        result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr


# --- the user's own names ------------------------------------------------------------------------

def alert(name, host="lab-1", service="demo", **labels):
    all_labels = {"alertname": name, "host": host, "service": service, **labels}
    return triage.Alert(name=name, labels=all_labels, starts_at=datetime(2026, 1, 1, tzinfo=UTC),
                        fingerprint=triage.fingerprint(all_labels))


def overlay_file(tmp_path, text):
    path = tmp_path / "overlay.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_overlay_maps_a_users_name_and_may_remap(tmp_path):
    path = overlay_file(tmp_path, "alerts:\n  CheckoutErrors: error-rate\n  HighLatency: service-down\n")
    overlay = catalogue.load_overlay(path, SCENARIOS)
    rows = triage.classify([alert("CheckoutErrors"), alert("HighLatency", host="lab-2")], SCENARIOS, MATRIX, None,
                           overlay)
    mapped = {r.alert.name: r.scenario.name for r in rows}
    assert mapped == {"CheckoutErrors": "error-rate", "HighLatency": "service-down"}
    # Without the overlay the name maps to nothing.
    [row] = triage.classify([alert("CheckoutErrors")], SCENARIOS, MATRIX, None)
    assert row.scenario is None and row.as_dict(datetime.now(UTC))["action"] == triage.NO_SCENARIO


def test_the_runbook_scenario_label_wins_over_the_name():
    rows = triage.classify([alert("Whatever", runbook_scenario="latency"),
                            alert("HighErrorRate", host="lab-2", runbook_scenario="latency"),
                            alert("HighErrorRate", host="lab-3", runbook_scenario="no-such-scenario")],
                           SCENARIOS, MATRIX, None)
    by_host = {r.alert.host: r.scenario.name if r.scenario else None for r in rows}
    # A label naming no scenario maps to none: announced, never guessed from the name.
    assert by_host == {"lab-1": "latency", "lab-2": "latency", "lab-3": None}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alerts:\n  Foo: no-such\n", "unknown scenario 'no-such'"),
        ("alerts: [Foo]\n", "expected `alerts:"),
        ("scenarios: []\n", "expected `alerts:"),
        ("alerts:\n  'bad name{}': latency\n", "is not an alert name"),
        ("alerts: {\n", "not readable YAML"),
    ],
)
def test_a_bad_overlay_is_bad_input(tmp_path, text, message):
    with pytest.raises(BadInput, match=re.escape(message)):
        catalogue.load_overlay(overlay_file(tmp_path, text), SCENARIOS)


def test_a_missing_overlay_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        catalogue.load_overlay(tmp_path / "nope.yml", SCENARIOS)


# --- the rulebook: label rules, overlay, catch-all ------------------------------------------------

def parsed_rules(text):
    rules_parser = pytest.importorskip("ansible_rulebook.rules_parser")
    from ansible_rulebook.validators import Validate

    data = yaml.safe_load(text)
    Validate.rulebook(data)
    [ruleset] = rules_parser.parse_rule_sets(data, {"webhook_host": "127.0.0.1", "webhook_port": 5000,
                                                    "webhook_token": "t"})
    return ruleset


def test_the_rulebook_has_a_catch_all_for_unmapped_alerts():
    [ruleset] = yaml.safe_load((REPO / rulebook.RULEBOOK).read_text(encoding="utf-8"))
    last = ruleset["rules"][-1]
    assert last["action"]["run_playbook"] == {"name": rulebook.UNHANDLED,
                                              "extra_vars": {"runbook_unhandled": "no-scenario"}}
    assert last["condition"].startswith('event.runbook_rejected is not defined and event.status == "firing"')
    for name in catalogue.alert_map(SCENARIOS):
        assert f'"{name}"' in last["condition"]  # mapped names are not caught
    labelled = [r for r in ruleset["rules"] if "runbook_scenario ==" in r["condition"]]
    assert len(labelled) == len(SCENARIOS)
    parsed_rules((REPO / rulebook.RULEBOOK).read_text(encoding="utf-8"))


def test_an_overlay_adds_rules(tmp_path):
    overlay = catalogue.load_overlay(overlay_file(tmp_path, "alerts:\n  CheckoutErrors: error-rate\n"), SCENARIOS)
    text = rulebook.rulebook(SCENARIOS, overlay)
    [ruleset] = yaml.safe_load(text)
    rule = next(r for r in ruleset["rules"] if 'alertname == "CheckoutErrors"' in r["condition"])
    assert rule["action"]["run_playbook"]["name"] == "runbook.remediation.error_rate"
    assert rule["action"]["run_playbook"]["extra_vars"]["runbook_diagnose_only"] is True  # destructive
    assert '"CheckoutErrors"' in ruleset["rules"][-1]["condition"]
    parsed_rules(text)


def test_the_rulebook_module_takes_an_overlay(tmp_path, capsys):
    path = overlay_file(tmp_path, "alerts:\n  SlowSearch: latency\n")
    assert rulebook.main(["--overlay", str(path)]) == 0
    assert 'alertname == "SlowSearch"' in capsys.readouterr().out
    assert rulebook.main(["--overlay", str(tmp_path / "nope.yml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert rulebook.main(["--bogus"]) == 2


# --- severity: the seeds' matrices, rule order -----------------------------------------------------

@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        # The catalogue's P2 scenarios are P2 even when their alert is only a warning.
        ("HighDiskUsage", {"severity": "warning"}, "P2"),
        ("GgenMcpHighDiskUsage", {"severity": "warning"}, "P2"),
        ("FileDescriptorExhaustion", {"severity": "warning"}, "P2"),
        ("MemoryGrowth", {"severity": "warning"}, "P2"),
        ("HighMemoryUsage", {"severity": "warning"}, "P2"),
        # Seed 000: auth failures P1; error rate > 1% P2, > 5% P1 (seed 002); P95 latency P2.
        ("AuthenticationErrors", {"severity": "warning"}, "P1"),
        ("GgenMcpHighErrorRate", {"severity": "critical"}, "P1"),
        ("GgenMcpHighErrorRate", {"severity": "warning"}, "P2"),
        ("GgenMcpHighLatency", {"severity": "critical"}, "P2"),
        ("HighLatency", {}, "P2"),
        ("GgenMcpServiceDown", {"severity": "critical"}, "P1"),
        # Unmapped: the label decides, else the default.
        ("SomethingElse", {"severity": "warning"}, "P3"),
        ("SomethingElse", {"severity": "critical"}, "P1"),
        ("SomethingElse", {}, "P3"),
    ],
)
def test_severity(name, labels, expected):
    [row] = triage.classify([alert(name, **labels)], SCENARIOS, MATRIX, None)
    assert row.severity == expected, row.classification


def test_the_catalogue_rule_comes_before_the_generic_label_rules():
    names = [rule.name for rule in MATRIX.rules]
    catalogue_rule = next(i for i, r in enumerate(MATRIX.rules) if r.severity == "catalogue")
    warning_rule = names.index("a warning")
    critical_rule = names.index("a critical alert no rule above covers")
    assert catalogue_rule < warning_rule and catalogue_rule < critical_rule
