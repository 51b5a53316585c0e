"""The root command: output selection, usage errors, version."""

from __future__ import annotations

import json

import pytest

from runbook_remediation.shell import main


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize("argv", [["-o", "json", "list"], ["list", "--output", "json"], ["list", "-o", "json"]])
def test_output_json_before_or_after_the_command(capsys, argv):
    code, out, _err = run_main(capsys, *argv)
    assert code == 0
    assert any(entry["name"] == "service-down" for entry in json.loads(out))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["lab", "break", "crash"], "Missing option '--host'"),
        (["run"], "Missing argument 'SCENARIO'"),
        (["list", "--output", "yaml"], "'yaml' is not one of 'text', 'json'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(capsys, argv, needle):
    code, _out, err = run_main(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert lines[0].startswith("runbook: error:")


def test_version(capsys):
    code, out, _err = run_main(capsys, "--version")
    assert code == 0 and "0.1.0" in out
