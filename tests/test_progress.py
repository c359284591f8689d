"""Progress display and --quiet (issue 13 item 5): a bar only on a terminal, nothing with --quiet."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from ildstudy.cli import run

app_module = importlib.import_module("ildstudy.cli.app")  # not `import ... as`: ildstudy.cli.app is also the Typer app

ROOT = Path(__file__).resolve().parent.parent
BAR_CHARS = set("━╸╺⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")   # rich's bar and spinner glyphs


def _terminal(monkeypatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(app_module, "err", Console(file=buffer, force_terminal=True, width=100))
    return buffer


def test_progress_draws_on_a_terminal(monkeypatch):
    buffer = _terminal(monkeypatch)
    with app_module.progress("Working", total=2) as advance:
        advance(description="step one")
        advance()
    assert BAR_CHARS & set(buffer.getvalue())


def test_progress_is_silent_with_quiet_even_on_a_terminal(monkeypatch):
    buffer = _terminal(monkeypatch)
    with app_module.progress("Working", total=2, quiet=True) as advance:
        advance(description="step one")
    assert buffer.getvalue() == ""


def test_synth_quiet_prints_nothing(tmp_path, capsys):
    assert run(["synth", "--out", str(tmp_path / "reg"), "--patients", "40", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert (tmp_path / "reg" / "truth.json").exists()
    assert run(["validate", str(tmp_path / "reg"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_synth_without_quiet_says_what_it_wrote(tmp_path, capsys):
    assert run(["synth", "--out", str(tmp_path / "reg"), "--patients", "40"]) == 0
    assert "Wrote 40 patients" in capsys.readouterr().out


@pytest.mark.parametrize("quiet", [False, True])
def test_piped_run_has_no_progress_bar(tmp_path, quiet):
    """A real process with stdout/stderr piped (not a terminal): no bar glyphs; --quiet leaves stdout empty."""
    registry = tmp_path / "reg"
    assert run(["synth", "--out", str(registry), "--quiet"]) == 0
    cmd = [sys.executable, "-c", "from ildstudy.cli import main; main()", "run", "huapaya2019", str(registry),
           "--out", str(tmp_path / "out")] + (["--quiet"] if quiet else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not BAR_CHARS & set(proc.stdout + proc.stderr)
    if quiet:
        assert proc.stdout == ""
    else:
        assert "Outputs:" in proc.stdout
    assert (tmp_path / "out" / "results.json").exists()
