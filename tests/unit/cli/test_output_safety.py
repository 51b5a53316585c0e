"""What the CLI prints and posts cannot be abused: user, alert and timeline text is never
markup and never carries control characters (terminal.py), webhook URLs are checked
before anything acts and never quoted (notify.py), chat messages are escaped as Slack asks,
and an exception nobody expected is one line (commands/base.py, shell.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_remediation import catalogue, notify, shell
from runbook_remediation.errors import BadInput, ExitCode
from runbook_remediation.terminal import Terminal, clean, one_line, safe

REPO = Path(__file__).resolve().parents[3]
SECRET = "w3bh00k-t0ken-s3cret"
TITLE = "disk \x1b]0;pwned\x07full [bold]x[/] <!channel> & \u202egnp.exe\x9b31m"


# --- terminal.py -------------------------------------------------------------------------------

def test_clean_strips_control_characters_but_tab_and_newline():
    assert clean("a\x1b]0;t\x07b\tc\nd\x7f\x9b\u202e\r\x00") == "a]0;tb\tc\nd"
    assert one_line("a\n\tb \x1b[2J c\n") == "a b [2J c"
    assert safe("[bold]x[/] \x1b") == "\\[bold]x\\[/] "


def test_terminal_lines_take_plain_text(capsys):
    terminal = Terminal()
    terminal.error("unknown scenario 'x[/]'\nsecond line \x1b]0;t\x07", hint="run [red]it[/red]")
    terminal.warn("[/]")
    terminal.status("x[/] \x1b[2J\nrunbook: error: forged")
    err = capsys.readouterr().err
    assert err.splitlines() == ["runbook: error: unknown scenario 'x[/]' second line ]0;t", "hint: run [red]it[/red]",
                                "runbook: warning: [/]", "runbook: x[/] [2J runbook: error: forged"]


def test_the_consoles_strip_control_characters_whatever_the_caller_did(capsys):
    terminal = Terminal()
    terminal.out.print(f"title: {TITLE}", markup=False)
    terminal.text("# Post-mortem \x1b]0;x\x07\n")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out
    assert out.splitlines() == ["title: disk ]0;pwnedfull [bold]x[/] <!channel> & gnp.exe31m", "# Post-mortem ]0;x"]


def test_json_output_escapes_control_characters(capsys):
    Terminal(output="json").data({"title": TITLE})
    out = capsys.readouterr().out
    assert "\x1b" not in out and json.loads(out)["title"] == TITLE


# --- notify.py ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://[::1/hook/{SECRET}", "cannot be parsed"),
        (f"https://hooks.example/a b/{SECRET}", "space or a control character"),
        (f"https://hooks.example/{SECRET}\x1b", "space or a control character"),
        (f"https://hooks.example:abc/{SECRET}", "not a number from 1 to 65535"),
        (f"https://hooks.example:99999/{SECRET}", "not a number from 1 to 65535"),
        (f"https://hooks.example:0/{SECRET}", "not a number from 1 to 65535"),
        (f"https://hook:{SECRET}@hooks.example/x", "user:password@"),
        (f"https://{SECRET}@hooks.example/x", "user:password@"),
        (f"ftp://hooks.example/{SECRET}", "not an http(s) URL"),
        (f"https:///{SECRET}", "not an http(s) URL"),
        (f"hooks.example/{SECRET}", "not an http(s) URL"),
    ],
)
def test_a_bad_webhook_url_is_bad_input_and_never_quoted(url, problem):
    with pytest.raises(BadInput) as info:
        notify.webhook_url(url)
    assert problem in info.value.message
    assert SECRET not in info.value.message and "\x1b" not in info.value.message


def test_a_good_webhook_url_passes_as_it_is(monkeypatch):
    assert notify.webhook_url(f" https://hooks.slack.example/services/T0/B0/{SECRET} ") == \
        f"https://hooks.slack.example/services/T0/B0/{SECRET}"
    assert notify.webhook_url("http://[::1]:8080/hook") == "http://[::1]:8080/hook"
    assert notify.where("http://[::1]:8080/hook") == "http://[::1]:8080"
    monkeypatch.setenv(notify.ENV, f"http://[::1/{SECRET}")
    with pytest.raises(BadInput, match=r"\$RUNBOOK_WEBHOOK_URL"):
        notify.webhook_url(None)


def test_send_never_hands_urllib_a_url_it_would_quote():
    with pytest.raises(notify.Unavailable) as info:
        notify.send(f"https://hooks.example/a b/{SECRET}", "text")
    assert SECRET not in info.value.message


def test_message_text_is_escaped_as_slack_asks():
    assert notify.message_text("a <!channel> & <http://evil|docs>\x1b]0;t\x07\n- b") == \
        "a &lt;!channel&gt; &amp; &lt;http://evil|docs&gt;]0;t\n- b"


# --- end to end: a hostile title through the commands and the webhook -----------------------------

class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps the JSON bodies it gets."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    the_receiver = Receiver()
    yield the_receiver
    the_receiver.close()


def invoke(*args):
    return CliRunner(catch_exceptions=False).invoke(shell.cli, list(args))


def test_a_hostile_title_is_shown_as_text_everywhere(runbook_env, monkeypatch, receiver):
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    opened = invoke("incident", "open", TITLE, "--host", "web-1", "--notify", receiver.url)
    assert opened.exit_code == 0, opened.output
    incident_id = opened.stdout.strip()
    update = invoke("incident", "update", incident_id, "--note", "see <!here> [/]\x1b[2J", "--notify", receiver.url)
    assert update.exit_code == 0, update.output
    outputs = [opened, update, invoke("incident", "show", incident_id), invoke("incident", "list"),
               invoke("incident", "notify", incident_id), invoke("postmortem", incident_id),
               invoke("-o", "json", "incident", "show", incident_id)]
    for result in outputs:
        assert result.exit_code == 0, result.output
        text = result.stdout + result.stderr
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, text
        assert SECRET not in text
    assert "[bold]x[/]" in outputs[2].stdout  # markup shown as typed, not applied
    assert json.loads(outputs[-1].stdout)["title"] == TITLE  # the record keeps what was typed

    sent = [body["text"] for body in receiver.bodies]
    assert len(sent) == 2
    assert all("\x1b" not in text and "\x07" not in text and "<!" not in text for text in sent)
    assert "&lt;!channel&gt; &amp;" in sent[0] and "see &lt;!here&gt; [/]" in sent[1]


def test_a_bad_webhook_url_is_refused_before_the_incident_is_opened(runbook_env, monkeypatch):
    monkeypatch.setenv("RUNBOOK_COLLECTION_ROOT", str(REPO))
    result = invoke("-o", "json", "incident", "open", "x", "--notify", f"http://hooks.example:abc/{SECRET}")
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert SECRET not in result.output
    listed = invoke("-o", "json", "incident", "list", "--all")
    assert json.loads(listed.stdout) == []


# --- an exception nobody expected --------------------------------------------------------------------

def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        shell.main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_an_unexpected_error_is_one_line_without_its_text(capsys, monkeypatch):
    def broken(_collection):
        raise ValueError(f"http://user:{SECRET}@host/ \x1b]0;t\x07")

    monkeypatch.setattr(catalogue, "catalogue", broken)
    code, out, err = run_main(capsys, "list")
    assert code == ExitCode.FAILED
    assert err.splitlines() == ["runbook: error: unexpected error (ValueError): this is a bug in runbook",
                                "hint: run again with --debug for the traceback (it may show what you typed, "
                                "secrets too)"]
    assert SECRET not in out + err


def test_debug_shows_the_traceback_of_a_bug(monkeypatch):
    def broken(_collection):
        raise ValueError("a bug")

    monkeypatch.setattr(catalogue, "catalogue", broken)
    with pytest.raises(ValueError, match="a bug"):
        shell.main(["--debug", "list"])
    monkeypatch.setenv("RUNBOOK_DEBUG", "1")
    with pytest.raises(ValueError, match="a bug"):
        shell.main(["list"])


def test_an_unexpected_error_outside_a_command_is_one_line(capsys, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(shell.Context, "__init__", broken)
    code, _out, err = run_main(capsys, "list")
    assert code == ExitCode.FAILED
    assert err.splitlines()[0] == "runbook: error: unexpected error (RuntimeError): this is a bug in runbook"
    assert len(err.splitlines()) == 2 and SECRET not in err


def test_usage_errors_quote_no_control_characters(capsys):
    code, _out, err = run_main(capsys, "list", "\x1b]0;pwned\x07")
    assert code == ExitCode.BAD_INPUT
    assert err.splitlines() == ["runbook: error: Got unexpected extra argument (]0;pwned) (see `runbook list --help`)"]


@pytest.mark.parametrize("argv", [["lab", "break", "crash", "--host", " "], ["lab", "heal", "--host", ""],
                                  ["incident", "show", ""], ["postmortem", " "],
                                  ["incident", "open", "t", "--host", ""]])
def test_an_empty_name_is_a_usage_error(capsys, argv):
    code, _out, err = run_main(capsys, *argv)
    assert code == ExitCode.BAD_INPUT
    assert len(err.splitlines()) == 1 and "must not be empty" in err, err
