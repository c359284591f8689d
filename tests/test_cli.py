"""The command-line contract: --help everywhere, --version, exit codes, no tracebacks."""

import subprocess
import sys

import pytest

from ildstudy import __version__
from ildstudy.cli import app, run

COMMANDS = sorted((c.name or c.callback.__name__).replace("_", "-") for c in app.registered_commands)
COMMANDS += ["protocol", "protocol show"]


def test_version(capsys):
    assert run(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert run([*command.split(), "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_expected_commands_exist():
    for name in ("synth", "validate", "load", "demo"):
        assert name in COMMANDS


def test_bad_usage_exits_2_without_traceback(capsys):
    assert run(["validate", "--no-such-option"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_missing_folder_is_a_clean_error(tmp_path, capsys):
    assert run(["validate", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert "does not exist" in captured.err
    assert "Traceback" not in captured.err


def test_unknown_builtin_protocol(capsys):
    assert run(["protocol", "show", "nosuch"]) == 2
    assert "unknown built-in protocol" in capsys.readouterr().err


def test_console_script_runs():
    exe = [sys.executable, "-c", "from ildstudy.cli import main; main()", "--version"]
    res = subprocess.run(exe, capture_output=True, text=True)
    assert res.returncode == 0 and __version__ in res.stdout
