"""AWX job templates as code: the generated data, its derivation from the argument specs,
the configure playbook and the execution environment.

No AWX server runs here: the surveys are checked against AWX's survey rules (restated in
``awx_survey_errors``) and the workflow nodes against ``awx.awx.workflow_job_template``'s
documented options; ``configure.yml`` is syntax-checked, never applied.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runbook_remediation import awx
from runbook_remediation.catalogue import catalogue
from runbook_remediation.collection import Collection
from runbook_remediation.errors import RunbookError

REPO = Path(__file__).resolve().parents[3]
REAL = Collection(REPO, REPO)
GENERATED = REPO / "extensions" / "awx" / "job_templates.yml"
TEMPLATES = yaml.safe_load(GENERATED.read_text(encoding="utf-8"))["runbook_awx_templates"]
SCENARIOS = {s.name: s for s in catalogue(REAL)}
BIN = Path(sys.executable).parent

# AWX's survey question types and the Python types their defaults may have.
AWX_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
             "integer": int, "float": (float, int)}
# What a survey question type may stand for in an argument spec.
SPEC_TYPES = {"text": {"str", "path", "raw"}, "password": {"str", "raw"}, "integer": {"int"}, "float": {"float"},
              "multiplechoice": {"str", "bool"}}


def awx_survey_errors(survey: dict) -> list[str]:
    """What AWX's survey_spec endpoint would refuse (checked offline)."""
    errors = []
    if not isinstance(survey.get("name"), str) or not isinstance(survey.get("description"), str):
        errors.append("name and description must be strings")
    spec = survey.get("spec")
    if not isinstance(spec, list) or not spec:
        return [*errors, "spec must be a non-empty list"]
    seen = set()
    for item in spec:
        where = item.get("variable", "?")
        if not all(isinstance(item.get(k), str) for k in ("type", "question_name", "variable")):
            errors.append(f"{where}: type, question_name and variable must be strings")
        if not isinstance(item.get("required"), bool):
            errors.append(f"{where}: required must be a bool")
        if where in seen:
            errors.append(f"{where}: duplicated")
        seen.add(where)
        kind = item.get("type")
        if kind not in AWX_TYPES:
            errors.append(f"{where}: unknown type {kind}")
            continue
        default = item.get("default", "")
        if default != "" and (not isinstance(default, AWX_TYPES[kind]) or isinstance(default, bool)):
            errors.append(f"{where}: default {default!r} is not a {kind}")
        for key in ("min", "max"):
            if key in item and (not isinstance(item[key], int) or isinstance(item[key], bool)):
                errors.append(f"{where}: {key} must be an integer")
        if kind in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                errors.append(f"{where}: choices must be a list of strings")
            elif "default" in item and item["default"] not in choices:
                errors.append(f"{where}: default {item['default']!r} is not a choice")
        if kind == "password" and item.get("default"):
            errors.append(f"{where}: a password question has a default")
    return errors


def graph(nodes: list[dict]) -> tuple[dict[str, dict], list[str]]:
    """Nodes by identifier, and the roots (nodes no other node leads to)."""
    by_id = {node["identifier"]: node for node in nodes}
    children = {child["identifier"] for node in nodes for kind in ("success_nodes", "failure_nodes", "always_nodes")
                for child in (node.get("related") or {}).get(kind, [])}
    return by_id, [i for i in by_id if i not in children]


def assert_approval_workflow(template: dict) -> None:
    workflow = template["workflow"]
    by_id, roots = graph(workflow["workflow_nodes"])
    assert len(roots) == 1, f"{template['name']}: one root node, got {roots}"
    root = by_id[roots[0]]
    assert root["unified_job_template"]["type"] == "workflow_approval", "the first node is an approval"
    related = root["related"]
    assert set(related) == {"success_nodes"}, "only an approval leads on: no failure/always path to the job"
    [run] = [by_id[n["identifier"]] for n in related["success_nodes"]]
    assert run["unified_job_template"] == {"type": "job_template", "name": template["name"],
                                           "organization": {"name": "{{ runbook_awx_organization }}"}}
    assert not run.get("related"), "the job is the last node"
    job_nodes = [n for n in by_id.values() if n["unified_job_template"]["type"] == "job_template"]
    assert job_nodes == [run], "the job template is reachable only through the approval"
    assert workflow["extra_vars"] == {"runbook_confirm": True}
    assert template["extra_vars"] == {"runbook_confirm": False}
    assert template["ask_variables_on_launch"] is False, "a direct launch must not be able to confirm"
    for survey in (template["survey_spec"], workflow["survey_spec"]):
        assert "runbook_confirm" not in [q["variable"] for q in survey["spec"]]
        assert not awx_survey_errors(survey)
    assert [q["variable"] for q in workflow["survey_spec"]["spec"]] == [
        q["variable"] for q in template["survey_spec"]["spec"]]


def workflow_nodes_errors(nodes: list[dict]) -> list[str]:
    """Validate nodes against awx.awx.workflow_job_template's documented workflow_nodes option."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible.utils.plugin_docs import read_docstring
    from ansible_collections.awx.awx.plugins.modules import workflow_job_template

    def spec(options: dict) -> dict:
        keys = ("type", "elements", "choices", "required", "default", "aliases")
        return {name: {**{k: o[k] for k in keys if k in o},
                       **({"options": spec(o["suboptions"])} if "suboptions" in o else {})}
                for name, o in options.items()}

    doc = read_docstring(workflow_job_template.__file__)["doc"]
    validator = ArgumentSpecValidator({"workflow_nodes": spec({"n": doc["options"]["workflow_nodes"]})["n"]})
    # configure.yml templates these two strings; give them the values it would.
    text = yaml.safe_dump(nodes).replace("'{{ runbook_awx_approval_timeout }}'", "3600")
    text = text.replace("'{{ runbook_awx_organization }}'", "Default")
    result = validator.validate({"workflow_nodes": yaml.safe_load(text)})
    return [str(e) for e in result.errors]


# --- the committed data ---------------------------------------------------------------


def test_generated_file_is_current():
    assert GENERATED.read_text(encoding="utf-8") == awx.render(REAL), (
        "extensions/awx/job_templates.yml is stale: "
        "python -m runbook_remediation.awx > extensions/awx/job_templates.yml"
    )


def test_every_scenario_with_a_playbook_has_a_template():
    have = {t["scenario"] for t in TEMPLATES}
    want = {name for name, s in SCENARIOS.items() if s.playbook_path(REAL).is_file()}
    assert have == want


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["scenario"])
def test_template_names_the_catalogue_playbook(template):
    scenario = SCENARIOS[template["scenario"]]
    assert template["playbook"] == f"playbooks/{scenario.playbook}.yml"
    assert (REPO / template["playbook"]).is_file()
    assert template["destructive"] == scenario.destructive
    assert template["name"] == f"runbook: {scenario.name}"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["scenario"])
def test_survey_variables_exist_in_the_playbook_spec_and_agree(template):
    derived = awx.playbook_variables(REPO, SCENARIOS[template["scenario"]].playbook)
    assert not awx_survey_errors(template["survey_spec"])
    for question in template["survey_spec"]["spec"]:
        name = question["variable"]
        assert name in derived.variables, f"{name} is not read by {template['playbook']}"
        assert name not in derived.fixed, f"{name} is set by the playbook itself"
        assert name not in derived.confirms, f"{name} follows runbook_confirm: it would bypass the approval"
        variable = derived.variables[name]
        assert variable.type in SPEC_TYPES[question["type"]], f"{name}: {question['type']} for a {variable.type}"
        if variable.type == "bool":
            assert variable.coerced and question["choices"] == ["false", "true"]
            assert question["default"] == str(variable.default).lower()
        elif variable.no_log:
            assert question["type"] == "password" and "default" not in question
        elif variable.default is not None:
            assert question["default"] == variable.default, f"{name}: default differs from the spec"
        if variable.choices:
            assert question["choices"] == [str(c) for c in variable.choices]
        assert question["required"] == variable.required
        if "min" in question:
            assert question["default"] >= question["min"], f"{name}: default below min"
        if "max" in question:
            assert question["default"] <= question["max"], f"{name}: default above max"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["scenario"])
def test_only_destructive_scenarios_need_an_approval(template):
    if SCENARIOS[template["scenario"]].destructive:
        assert_approval_workflow(template)
        assert not workflow_nodes_errors(template["workflow"]["workflow_nodes"])
    else:
        assert "workflow" not in template
        assert template["extra_vars"] == {}


# --- the derivation and the generator, on a small collection of our own ---------------


SPECS = {
    "argument_specs": {
        "main": {"options": {
            "demo_threshold": {"type": "int", "default": 80, "description": ["Percent C(used)."]},
            "demo_ratio": {"type": "float", "default": 0.5, "description": "A V(ratio)."},
            "demo_mode": {"type": "str", "choices": ["fast", "safe"], "default": "safe", "description": "Mode."},
            "demo_token": {"type": "str", "no_log": True, "default": "s3cret", "description": "API token."},
            "demo_force": {"type": "bool", "default": False, "description": "Force."},
            "demo_paths": {"type": "list", "elements": "str", "default": [], "description": "Paths."},
            "demo_fail": {"type": "bool", "default": True, "description": "Fail the host."},
            "demo_name": {"type": "str", "required": True, "description": "Name."},
            "demo_go": {"type": "str", "default": "no", "description": "Go ahead."},
        }},
        "validate": {"options": {"demo_threshold": {"type": "int", "default": 80, "description": "Percent used."}}},
        "trend": {"options": {"demo_window": {"type": "int", "default": 900, "description": "Window."}}},
    }
}

PLAYBOOK = [{
    "name": "Demo",
    "hosts": "{{ runbook_hosts | default('all') }}",
    "roles": [{"role": "runbook.remediation.other", "vars": {"other_x": 1}}],
    "tasks": [
        {"name": "Validate", "block": [
            {"name": "Check",
             "ansible.builtin.include_role": {"name": "runbook.remediation.demo", "tasks_from": "validate"}},
        ], "rescue": [{"name": "Reject", "ansible.builtin.set_fact": {"runbook_rejected": True}}]},
        {"name": "Act", "when": "not (runbook_rejected | default(false))", "block": [
            {"name": "Run", "ansible.builtin.include_role": {"name": "runbook.remediation.demo"},
             "vars": {"demo_fail": False, "demo_diagnose": "{{ runbook_diagnose_only | default(false) | bool }}"}},
        ]},
        {"name": "Not ours", "ansible.builtin.import_role": {"name": "community.general.whatever"}},
    ],
}]


def make_collection(root: Path, *, destructive=False, surveys=None, specs=None,
                    role_tasks="---\n- name: Noop\n  ansible.builtin.debug:\n    msg: hi\n") -> Collection:
    specs = specs or SPECS
    (root / "meta").mkdir(parents=True)
    (root / "galaxy.yml").write_text("namespace: runbook\nname: remediation\nversion: 0.1.0\n", encoding="utf-8")
    entries = [{"name": "demo-one", "playbook": "demo_one", "description": "Demo.", "severity": "P1",
                "alerts": [], "destructive": destructive, "managers": ["systemd"]},
               {"name": "demo-two", "playbook": "demo_two", "description": "Pending.", "severity": "P2",
                "alerts": [], "destructive": False, "managers": ["systemd"]}]
    (root / "meta" / "scenarios.yml").write_text(yaml.safe_dump({"scenarios": entries}), encoding="utf-8")
    for role, role_specs in (("demo", specs), ("other", {"argument_specs": {"main": {"options": {
            "other_x": {"type": "int", "default": 0, "description": "X."},
            "other_y": {"type": "int", "default": 2, "description": "Y."}}}}})):
        (root / "roles" / role / "meta").mkdir(parents=True)
        (root / "roles" / role / "tasks").mkdir()
        (root / "roles" / role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(role_specs), encoding="utf-8")
        (root / "roles" / role / "tasks" / "main.yml").write_text(role_tasks, encoding="utf-8")
    (root / "playbooks").mkdir()
    (root / "playbooks" / "demo_one.yml").write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False), encoding="utf-8")
    (root / "extensions" / "awx").mkdir(parents=True)
    selection = {"surveys": surveys if surveys is not None else {"demo-one": [
        {"variable": "demo_threshold", "question": "Threshold", "min": 1, "max": 100},
        "demo_ratio", "demo_mode", "demo_token", "other_y"]}}
    (root / "extensions" / "awx" / "surveys.yml").write_text(yaml.safe_dump(selection), encoding="utf-8")
    return Collection(root, root)


def test_derivation_follows_the_includes_and_their_entry_points(tmp_path):
    make_collection(tmp_path)
    derived = awx.playbook_variables(tmp_path, "demo_one")
    # main and validate of demo, main of other (roles:), the common variables; not community.general's.
    assert {"demo_threshold", "demo_token", "demo_name", "other_x", "other_y", "service", "runbook_confirm"} <= set(
        derived.variables)
    assert "demo_window" not in derived.variables, "the trend entry point is not included"
    assert derived.fixed == {"demo_fail", "demo_diagnose", "other_x"}
    assert derived.variables["demo_threshold"].description == "Percent used."
    assert "runbook_diagnose_only" in derived.reads and "runbook_confirm" not in derived.reads


def test_derivation_refuses_one_variable_declared_two_ways(tmp_path):
    specs = yaml.safe_load(yaml.safe_dump(SPECS))
    specs["argument_specs"]["validate"]["options"]["demo_threshold"]["default"] = 90
    make_collection(tmp_path, specs=specs)
    with pytest.raises(RunbookError, match="demo_threshold is declared differently"):
        awx.playbook_variables(tmp_path, "demo_one")


def test_survey_questions_are_typed_after_the_specs(tmp_path):
    [template], missing = awx.templates(make_collection(tmp_path))
    assert [s.name for s in missing] == ["demo-two"]
    spec = {q["variable"]: q for q in template["survey_spec"]["spec"]}
    assert list(spec) == ["service", "runbook_incident", "runbook_diagnose_only", "demo_threshold", "demo_ratio",
                          "demo_mode", "demo_token", "other_y"]
    assert spec["demo_threshold"] == {"question_name": "Threshold", "question_description": "Percent used.",
                                      "variable": "demo_threshold", "required": False, "type": "integer",
                                      "default": 80, "min": 1, "max": 100}
    assert spec["demo_ratio"]["type"] == "float" and spec["demo_ratio"]["default"] == 0.5
    assert spec["demo_mode"]["type"] == "multiplechoice" and spec["demo_mode"]["choices"] == ["fast", "safe"]
    assert spec["demo_token"]["type"] == "password" and "default" not in spec["demo_token"], "no secret as default"
    assert spec["runbook_diagnose_only"]["choices"] == ["false", "true"]
    assert not awx_survey_errors(template["survey_spec"])
    assert "workflow" not in template


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("demo_force", "demo_force .* is a bool"),
        ("demo_paths", "demo_paths .* is a list"),
        ("demo_window", "demo_window is not a variable of playbooks/demo_one.yml"),
        ("demo_fail", "demo_fail is set by the playbook"),
        ("runbook_confirm", "runbook_confirm is set by the playbook or the workflow"),
        ({"variable": "demo_threshold", "min": 90}, "default 80 is outside min/max"),
        ({"variable": "demo_mode", "min": 1}, "min is for integer and float questions"),
        ({"variable": "demo_threshold", "label": "x"}, "an entry needs 'variable'"),
    ],
)
def test_bad_survey_selections_are_refused(tmp_path, entry, message):
    collection = make_collection(tmp_path, surveys={"demo-one": [entry]})
    with pytest.raises(RunbookError, match=message):
        awx.templates(collection)


def test_selection_for_an_unknown_scenario_is_refused(tmp_path):
    collection = make_collection(tmp_path, surveys={"demo-three": []})
    with pytest.raises(RunbookError, match="'demo-three' is not a scenario of the catalogue"):
        awx.templates(collection)


def test_destructive_scenario_gets_an_approval_workflow(tmp_path):
    tasks = "---\n- name: Refuse\n  ansible.builtin.fail:\n    msg: no\n  when: not (runbook_confirm | bool)\n"
    [template], _missing = awx.templates(make_collection(tmp_path, destructive=True, role_tasks=tasks))
    assert_approval_workflow(template)
    assert not workflow_nodes_errors(template["workflow"]["workflow_nodes"])


def test_a_variable_derived_from_runbook_confirm_is_refused(tmp_path):
    collection = make_collection(tmp_path, surveys={"demo-one": ["demo_go"]})
    (tmp_path / "roles" / "demo" / "defaults").mkdir()
    (tmp_path / "roles" / "demo" / "defaults" / "main.yml").write_text(
        "demo_go: \"{{ 'yes' if runbook_confirm | default(false) else 'no' }}\"\n", encoding="utf-8")
    with pytest.raises(RunbookError, match=r"demo_go defaults to runbook_confirm: .* would bypass the approval"):
        awx.templates(collection)


def test_destructive_scenario_must_read_runbook_confirm(tmp_path):
    collection = make_collection(tmp_path, destructive=True)
    with pytest.raises(RunbookError, match="never reads runbook_confirm: the approval would gate nothing"):
        awx.templates(collection)


def test_workflow_node_check_catches_a_bad_node():
    assert workflow_nodes_errors([{"identifier": "a", "unified_job_template": {"name": "x", "kind": "job"}}])


def test_render_names_left_out_scenarios_and_is_valid_yaml(tmp_path):
    text = awx.render(make_collection(tmp_path))
    assert "# Left out (playbook missing): demo-two\n" in text
    assert [t["scenario"] for t in yaml.safe_load(text)["runbook_awx_templates"]] == ["demo-one"]


def test_main_writes_the_file_and_reports_bad_input(tmp_path, monkeypatch, capsys):
    make_collection(tmp_path)
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(tmp_path))
    monkeypatch.setenv("RUNBOOK_CACHE_DIR", str(tmp_path / "cache"))
    assert awx.main() == 0
    out, err = capsys.readouterr()
    assert out == awx.render(Collection(tmp_path, tmp_path))
    assert "demo-two left out: playbooks/demo_two.yml does not exist" in err
    (tmp_path / "extensions" / "awx" / "surveys.yml").write_text("surveys: {demo-one: [demo_force]}\n")
    assert awx.main() == 2
    assert "error: demo_force" in capsys.readouterr().err


# --- the configure playbook and the execution environment -------------------------------


def test_configure_playbook_passes_syntax_check():
    result = subprocess.run([str(BIN / "ansible-playbook"), str(REPO / "extensions" / "awx" / "configure.yml"),
                             "--syntax-check"], capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("extra", "failed_task", "message"),
    [
        ({}, "Check the settings", "runbook_awx_scm_url and runbook_awx_inventory are required"),
        ({"runbook_awx_scm_url": "https://git.example/r.git", "runbook_awx_inventory": "prod",
          "runbook_awx_approval_timeout": "soon"}, "Check the settings", "timeout soon"),
        # Nobody listens on the port: the first request is the reference check, before any change.
        ({"runbook_awx_scm_url": "https://git.example/r.git", "runbook_awx_inventory": "prod"},
         "Check that the referenced objects exist", "Connection refused"),
    ],
)
def test_configure_playbook_stops_before_changing_anything(tmp_path, extra, failed_task, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "TOWER_"))}
    extra = {"controller_host": f"http://127.0.0.1:{free_port()}", **extra}
    result = subprocess.run([str(BIN / "ansible-playbook"), str(REPO / "extensions" / "awx" / "configure.yml"),
                             "-e", json.dumps(extra)], capture_output=True, text=True, check=False, cwd=tmp_path,
                            env={**env, "ANSIBLE_NOCOLOR": "1"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"TASK [{failed_task}" in result.stdout
    failed = result.stdout.split(f"TASK [{failed_task}", 1)[1]
    assert "fatal:" in failed or "failed:" in failed
    assert message in failed
    assert "changed=0" in result.stdout and "TASK [Create the project]" not in result.stdout


def test_execution_environment_matches_the_collection():
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text(encoding="utf-8"))
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
    tarball = f"runbook-remediation-{galaxy['version']}.tar.gz"
    assert ee["version"] == 3
    assert ee["additional_build_files"] == [{"src": tarball, "dest": "collections"}]
    collections = {c["name"]: c for c in ee["dependencies"]["galaxy"]["collections"]}
    assert collections[f"collections/{tarball}"]["type"] == "file"
    for name, version in galaxy["dependencies"].items():
        assert collections[name]["version"] == version, f"{name}: the EE and galaxy.yml disagree"
    assert any(p.startswith("psycopg2") for p in ee["dependencies"]["python"])


@pytest.mark.skipif(shutil.which("ansible-builder", path=str(BIN)) is None,
                    reason="ansible-builder is not installed (pip install ansible-builder)")
def test_ansible_builder_accepts_the_execution_environment(tmp_path):
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
    tarball = f"runbook-remediation-{galaxy['version']}.tar.gz"
    shutil.copy(REPO / "execution-environment.yml", tmp_path)
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    result = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "ctx",
                             "--output-filename", "Containerfile"], capture_output=True, text=True, check=False,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    build = tmp_path / "ctx" / "_build"
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text(encoding="utf-8")
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert (build / "collections" / tarball).is_file()
    requirements = yaml.safe_load((build / "requirements.yml").read_text(encoding="utf-8"))
    assert {c["name"] for c in requirements["collections"]} >= set(galaxy["dependencies"])
    assert "psycopg2-binary>=2.9" in (build / "requirements.txt").read_text(encoding="utf-8").split()
    # The image build installs from /build (the context's _build) with requirements.yml: do the
    # same for our own entry (the others need Galaxy, which is not reachable here).
    own = {"collections": [c for c in requirements["collections"] if c.get("type") == "file"]}
    (build / "own.yml").write_text(yaml.safe_dump(own), encoding="utf-8")
    # --force: the dev checkout on ANSIBLE_COLLECTIONS_PATH would count as installed already.
    installed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", "own.yml", "--no-deps",
                                "--force", "-p", str(tmp_path / "installed")], capture_output=True, text=True,
                               check=False, cwd=build)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (tmp_path / "installed" / "ansible_collections" / "runbook" / "remediation" / "playbooks").is_dir()
    # bindep exits 1 when packages are missing on this machine, 2 when the file does not parse.
    bindep = shutil.which("bindep", path=str(BIN))
    if bindep:
        parsed = subprocess.run([bindep, "-f", str(build / "bindep.txt"), "-b"], capture_output=True, text=True,
                                check=False)
        assert parsed.returncode in (0, 1), parsed.stdout + parsed.stderr
