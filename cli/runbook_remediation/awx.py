"""AWX/Tower job templates as data, generated from the catalogue and the roles' argument specs.

    python -m runbook_remediation.awx > extensions/awx/job_templates.yml

Playbooks have no argument specs; roles do. A scenario playbook's user-facing variables
are derived here: the options of every ``runbook.remediation.*`` role entry point the
playbook includes (``include_role``/``import_role`` with their ``tasks_from``, or
``roles:``), minus what the playbook sets itself, plus the variables every scenario
playbook reads (:data:`COMMON`). Each job template's survey asks for ``service``, the
incident, diagnose-only, and the role variables ``extensions/awx/surveys.yml`` selects,
with types, defaults, choices and ``required`` taken from the specs. A unit test keeps
the committed file equal to what this renders.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runbook_remediation.catalogue import Scenario, catalogue
from runbook_remediation.collection import Collection, find_collection
from runbook_remediation.errors import RunbookError

COLLECTION = "runbook.remediation"
SELECTION = Path("extensions") / "awx" / "surveys.yml"
_INCLUDES = {f"{prefix}{action}" for prefix in ("", "ansible.builtin.", "ansible.legacy.")
             for action in ("include_role", "import_role")}
_TASK_LISTS = ("pre_tasks", "roles", "tasks", "post_tasks", "handlers")
_MARKUP = re.compile(r"\b[CVOIMBLU]\(([^()]*)\)")


@dataclass(frozen=True)
class Variable:
    """One variable a playbook reads, as its argument spec (or :data:`COMMON`) declares it."""

    name: str
    type: str = "str"
    default: Any = None
    description: str = ""
    required: bool = False
    choices: tuple[Any, ...] = ()
    no_log: bool = False
    source: str = "scenario playbooks"
    # The playbook applies `| bool` itself, so a survey's string answer ('true') works.
    coerced: bool = False

    def same_spec(self, other: Variable) -> bool:
        keys = ("type", "default", "required", "choices", "no_log")
        return all(getattr(self, key) == getattr(other, key) for key in keys)


COMMON: tuple[Variable, ...] = (
    Variable("service", "str", "", "Which of the host's runbook_services (empty when the host has only one)."),
    Variable("runbook_hosts", "str", "all", "Host pattern the play runs on (AWX: use the limit instead)."),
    Variable("runbook_diagnose_only", "bool", False, "Gather evidence and decide, change nothing.", coerced=True),
    Variable("runbook_confirm", "bool", False, "Confirms a destructive scenario (set by the approval workflow).",
             coerced=True),
    Variable("runbook_incident", "str", "", "Incident this run belongs to, recorded on the incident timeline."),
)


@dataclass(frozen=True)
class RoleUse:
    role: str  # the role's name inside the collection
    entry_point: str
    fixed: frozenset[str]  # variables the include sets itself (its vars:)


@dataclass(frozen=True)
class PlaybookVariables:
    """The derived argument spec of one scenario playbook."""

    playbook: str
    variables: dict[str, Variable]
    fixed: frozenset[str]  # set by the playbook on an include: not the user's to choose
    reads: frozenset[str]  # common variables the playbook or its roles actually mention
    # Role variables whose default comes from runbook_confirm: asking for one would bypass the approval.
    confirms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Question:
    """One survey question asked for a role variable (extensions/awx/surveys.yml)."""

    variable: str
    question: str | None = None
    min: int | None = None
    max: int | None = None


def _tasks(items: Any) -> Iterator[dict]:
    """Every task of a task list, blocks flattened."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in ("block", "rescue", "always"):
            yield from _tasks(item.get(key))


def role_uses(plays: Any) -> list[RoleUse]:
    """The collection's role entry points a playbook runs, in order."""
    uses = []
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        for entry in play.get("roles") or []:
            name = entry if isinstance(entry, str) else (entry.get("role") or entry.get("name") or "")
            fixed = frozenset((entry.get("vars") or {}) if isinstance(entry, dict) else ())
            if name.startswith(f"{COLLECTION}."):
                uses.append(RoleUse(name.removeprefix(f"{COLLECTION}."), "main", fixed))
            # The scenario frame runs its remediation role: that role's variables are the playbook's too.
            inner = entry.get("scenario_role", "") if isinstance(entry, dict) else ""
            if name == f"{COLLECTION}.scenario" and inner.startswith(f"{COLLECTION}."):
                uses.append(RoleUse(inner.removeprefix(f"{COLLECTION}."), str(entry.get("scenario_tasks_from", "main")),
                                    frozenset()))
        for key in _TASK_LISTS:
            if key == "roles":
                continue
            for task in _tasks(play.get(key)):
                action = next((k for k in task if k in _INCLUDES), None)
                args = task.get(action) if action else None
                if not isinstance(args, dict):
                    continue
                name = str(args.get("name", ""))
                if name.startswith(f"{COLLECTION}."):
                    uses.append(RoleUse(name.removeprefix(f"{COLLECTION}."), str(args.get("tasks_from", "main")),
                                        frozenset(task.get("vars") or {})))
    return uses


def _plain(description: Any) -> str:
    """A spec description as one line of plain text (no C()/V()/O() markup)."""
    text = " ".join(description) if isinstance(description, list) else str(description or "")
    return _MARKUP.sub(r"\1", " ".join(text.split()))


def role_options(root: Path, role: str, entry_point: str) -> dict[str, Variable]:
    """The options of one role entry point; none when the role declares no such entry point
    (Ansible then validates nothing either)."""
    path = root / "roles" / role / "meta" / "argument_specs.yml"
    if not (root / "roles" / role).is_dir():
        raise RunbookError(f"{COLLECTION}.{role} is not a role of this collection (no roles/{role})")
    try:
        specs = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("argument_specs") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read the argument specs of role {role}: {exc}") from exc
    options = (specs.get(entry_point) or {}).get("options") or {}
    return {
        name: Variable(
            name=name,
            type=str(spec.get("type", "str")),
            default=spec.get("default"),
            description=_plain(spec.get("description")),
            required=bool(spec.get("required", False)),
            choices=tuple(spec.get("choices") or ()),
            no_log=bool(spec.get("no_log", False)),
            source=f"{COLLECTION}.{role} ({entry_point})",
        )
        for name, spec in options.items()
    }


def playbook_variables(root: Path, playbook: str) -> PlaybookVariables:
    """Derive the argument spec of ``playbooks/<playbook>.yml``."""
    path = root / "playbooks" / f"{playbook}.yml"
    try:
        text = path.read_text(encoding="utf-8")
        plays = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read playbook {path}: {exc}") from exc
    uses = role_uses(plays)
    variables: dict[str, Variable] = {}
    for use in uses:
        for name, option in role_options(root, use.role, use.entry_point).items():
            known = variables.setdefault(name, option)
            if not known.same_spec(option):
                raise RunbookError(f"{playbook}: {name} is declared differently by {known.source} and {option.source}")
    for common in COMMON:
        variables.setdefault(common.name, common)
    # Role defaults and tasks count as reading a variable too (`service` is read by the defaults).
    texts = [text]
    for role in {use.role for use in uses}:
        texts += [p.read_text(encoding="utf-8") for p in sorted((root / "roles" / role).glob("*/*.yml"))]
    reads = frozenset(c.name for c in COMMON if any(re.search(rf"\b{c.name}\b", t) for t in texts))
    confirms = set()
    for role in {use.role for use in uses}:
        defaults = root / "roles" / role / "defaults" / "main.yml"
        try:
            values = yaml.safe_load(defaults.read_text(encoding="utf-8")) if defaults.is_file() else {}
        except (OSError, yaml.YAMLError) as exc:
            raise RunbookError(f"cannot read {defaults}: {exc}") from exc
        confirms |= {k for k, v in (values or {}).items() if re.search(r"\brunbook_confirm\b", str(v))}
    return PlaybookVariables(playbook, variables, frozenset().union(*(u.fixed for u in uses)), reads,
                             frozenset(confirms))


def load_selection(path: Path, scenarios: list[Scenario]) -> dict[str, list[Question]]:
    """Which role variables each scenario's survey asks for."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read the survey selection {path}: {exc}") from exc
    known = {s.name for s in scenarios}
    selection: dict[str, list[Question]] = {}
    for scenario, entries in (raw.get("surveys") or {}).items():
        if scenario not in known:
            raise RunbookError(f"{path.name}: {scenario!r} is not a scenario of the catalogue")
        questions = []
        for entry in entries or []:
            entry = {"variable": entry} if isinstance(entry, str) else entry
            unknown = set(entry) - {"variable", "question", "min", "max"}
            if unknown or "variable" not in entry:
                raise RunbookError(f"{path.name}: {scenario}: an entry needs 'variable' and may have question, "
                                   f"min, max (got {sorted(entry)})")
            questions.append(Question(**entry))
        selection[scenario] = questions
    return selection


def survey_question(variable: Variable, question: Question) -> dict[str, Any]:
    """An AWX survey question for a variable, typed after its argument spec."""
    item: dict[str, Any] = {
        "question_name": question.question or variable.name,
        "question_description": variable.description,
        "variable": variable.name,
        "required": variable.required,
    }
    default = variable.default
    where = f"{variable.name} ({variable.source})"
    if variable.type == "bool":
        if not variable.coerced:
            raise RunbookError(f"{where} is a bool: a survey answers 'true' as a string, which the role would not "
                               "read as a boolean; leave it out of the survey")
        item.update(type="multiplechoice", choices=["false", "true"], default="true" if default else "false")
    elif variable.type == "int":
        item["type"] = "integer"
        if default is not None:
            item["default"] = int(default)
    elif variable.type == "float":
        item["type"] = "float"
        if default is not None:
            item["default"] = float(default)
    elif variable.type in ("str", "path", "raw"):
        if variable.choices:
            item.update(type="multiplechoice", choices=[str(c) for c in variable.choices])
            if default is not None:
                item["default"] = str(default)
        elif variable.no_log:
            item["type"] = "password"  # never a default: AWX would store and show it
        else:
            item["type"] = "text"
            if default is not None:
                item["default"] = str(default)
    else:
        raise RunbookError(f"{where} is a {variable.type}: an AWX survey cannot ask for one")
    for key in ("min", "max"):
        value = getattr(question, key)
        if value is None:
            continue
        if item["type"] not in ("integer", "float") or not isinstance(value, int) or isinstance(value, bool):
            raise RunbookError(f"{where}: {key} is for integer and float questions and must be an integer")
        item[key] = value
    if "default" in item and item["type"] in ("integer", "float"):
        low, high = item.get("min"), item.get("max")
        if (low is not None and item["default"] < low) or (high is not None and item["default"] > high):
            raise RunbookError(f"{where}: the default {item['default']} is outside min/max")
    return item


def _survey(scenario: Scenario, derived: PlaybookVariables, questions: list[Question]) -> list[dict[str, Any]]:
    common = [Question("service", "Service"), Question("runbook_incident", "Incident ID (optional)")]
    if "runbook_diagnose_only" in derived.reads:
        common.append(Question("runbook_diagnose_only", "Diagnose only (change nothing)"))
    spec = []
    for question in common + questions:
        name = question.variable
        if name not in derived.variables:
            raise RunbookError(f"{scenario.name}: {name} is not a variable of playbooks/{scenario.playbook}.yml "
                               "(neither an option of the roles it includes nor a common playbook variable)")
        if name in derived.fixed or name in ("runbook_confirm", "runbook_hosts"):
            raise RunbookError(f"{scenario.name}: {name} is set by the playbook or the workflow, not by a survey")
        if name in derived.confirms:
            raise RunbookError(f"{scenario.name}: {name} defaults to runbook_confirm: asking for it in a survey "
                               "would bypass the approval")
        spec.append(survey_question(derived.variables[name], question))
    names = [item["variable"] for item in spec]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RunbookError(f"{scenario.name}: asked twice in the survey: {', '.join(duplicates)}")
    return spec


def job_template_name(scenario: Scenario) -> str:
    return f"runbook: {scenario.name}"


def template(scenario: Scenario, derived: PlaybookVariables, questions: list[Question]) -> dict[str, Any]:
    """One scenario's job template (and, when destructive, its approval workflow)."""
    name = job_template_name(scenario)
    survey = {"name": name, "description": f"runbook.remediation {scenario.name}",
              "spec": _survey(scenario, derived, questions)}
    data: dict[str, Any] = {
        "scenario": scenario.name,
        "name": name,
        "description": f"{scenario.severity}: {scenario.description}",
        "playbook": f"playbooks/{scenario.playbook}.yml",
        "destructive": scenario.destructive,
        # The survey is the interface; a direct launch cannot add runbook_confirm.
        "ask_variables_on_launch": False,
        "ask_limit_on_launch": True,
        # Check mode shows the plan, without confirmation for destructive scenarios too.
        "ask_job_type_on_launch": True,
        "extra_vars": {"runbook_confirm": False} if scenario.destructive else {},
        "survey_spec": survey,
    }
    if scenario.destructive:
        if "runbook_confirm" not in derived.reads:
            raise RunbookError(f"{scenario.name} is destructive but playbooks/{scenario.playbook}.yml never reads "
                               "runbook_confirm: the approval would gate nothing")
        approval = f"Approve {name}"
        data["workflow"] = {
            "name": f"{name} (approval)",
            "description": f"{scenario.severity}: approval, then {name} with runbook_confirm=true. "
                           f"{scenario.description}",
            # Workflow extra vars win over the job template's (runbook_confirm: false).
            "extra_vars": {"runbook_confirm": True},
            "survey_spec": {**survey, "name": f"{name} (approval)"},
            "workflow_nodes": [
                {
                    "identifier": "approval",
                    "unified_job_template": {
                        "type": "workflow_approval",
                        "name": approval,
                        "description": f"{scenario.name} is destructive: approve to run it with runbook_confirm=true",
                        "timeout": "{{ runbook_awx_approval_timeout }}",
                    },
                    "related": {"success_nodes": [{"identifier": "run"}]},
                },
                {
                    "identifier": "run",
                    "unified_job_template": {
                        "type": "job_template",
                        "name": name,
                        "organization": {"name": "{{ runbook_awx_organization }}"},
                    },
                },
            ],
        }
    return data


def templates(collection: Collection) -> tuple[list[dict[str, Any]], list[Scenario]]:
    """Every scenario's job template, and the scenarios left out because their playbook is missing."""
    scenarios = catalogue(collection)
    selection = load_selection(collection.root / SELECTION, scenarios)
    made, missing = [], []
    for scenario in scenarios:
        if not scenario.playbook_path(collection).is_file():
            missing.append(scenario)
            continue
        derived = playbook_variables(collection.root, scenario.playbook)
        made.append(template(scenario, derived, selection.get(scenario.name, [])))
    return made, missing


class _Dumper(yaml.SafeDumper):
    """Block style with indented sequences, as yamllint wants; no anchors (a reader sees every survey whole)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


HEADER = """---
# Generated by `python -m runbook_remediation.awx > extensions/awx/job_templates.yml` from
# meta/scenarios.yml, extensions/awx/surveys.yml and the roles' argument specs: edit those,
# not this file. Read by extensions/awx/configure.yml ("{{ ... }}" is templated there).
"""


def render(collection: Collection) -> str:
    made, missing = templates(collection)
    text = HEADER
    if missing:
        text += "# Left out (playbook missing): " + ", ".join(s.name for s in missing) + "\n"
    body = yaml.dump({"runbook_awx_templates": made}, Dumper=_Dumper, sort_keys=False, width=110,
                     default_flow_style=False, allow_unicode=True)
    return text + body


def main() -> int:
    collection = find_collection()
    try:
        text = render(collection)
    except RunbookError as exc:
        sys.stderr.write(f"runbook_remediation.awx: error: {exc.message}\n")
        return 2
    _made, missing = templates(collection)
    for scenario in missing:
        sys.stderr.write(f"runbook_remediation.awx: warning: {scenario.name} left out: "
                         f"playbooks/{scenario.playbook}.yml does not exist\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
