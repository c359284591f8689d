"""Failures of the environment exit 2 with the operating system's reason, never "a bug" (issue 17, item 6).

Full disk (a monkeypatched ENOSPC, and a real 64 kB tmpfs when running as root on Linux), a read-only
output parent, an invalid --out; `synth` on a full disk leaves no half-written registry; a failed run
leaves no partial folder and an earlier output as it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ildstudy.cli import run
from ildstudy.report.outdir import MARKER, atomic_output_dir
from ildstudy.synth import write_registry

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ENOSPC_TEXT = os.strerror(errno.ENOSPC)   # "No space left on device"


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def assert_environment_failure(code: int, err: str, reason: str) -> None:
    assert code == 2, err
    assert reason in err, err
    assert "bug" not in err and "internal error" not in err and "Traceback" not in err


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("env") / "reg"
    write_registry(folder, n_patients=60, seed=3, fmt="csv")
    return folder


@pytest.fixture(scope="module")
def result(registry):
    """One real study result, reused so that each failure test only exercises the writer."""
    from ildstudy.analysis.study import run_study

    return run_study("huapaya2019", registry)


@pytest.fixture
def quick_study(monkeypatch, result):
    monkeypatch.setattr("ildstudy.analysis.study.run_study", lambda *a, **k: result)


@pytest.fixture
def earlier_output(tmp_path) -> Path:
    out = tmp_path / "out"
    with atomic_output_dir(out) as d:
        (d / "report.html").write_text("the earlier report\n")
    return out


def _enospc_after(monkeypatch, target: str, n_ok: int = 0):
    """Make ``target`` (a dotted function path) raise ENOSPC after ``n_ok`` successful calls."""
    module_name, _, name = target.rpartition(".")
    import importlib

    module = importlib.import_module(module_name)
    real = getattr(module, name)
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, ENOSPC_TEXT, str(args[-1]) if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)
    return calls


# --- full disk, simulated ------------------------------------------------------------------------------

def test_full_disk_during_run_exits_2_and_leaves_nothing(registry, tmp_path, quick_study, monkeypatch, capsys):
    calls = _enospc_after(monkeypatch, "ildstudy.report.outputs.write_report")
    out = tmp_path / "out"
    code = run(["run", "huapaya2019", str(registry), "--out", str(out)])
    assert_environment_failure(code, capsys.readouterr().err, ENOSPC_TEXT)
    assert calls["n"] == 1
    assert list(tmp_path.iterdir()) == []                              # no out/, no .out.partial-*


def test_full_disk_keeps_an_earlier_output_intact(registry, earlier_output, quick_study, monkeypatch, capsys):
    before = tree(earlier_output)
    _enospc_after(monkeypatch, "ildstudy.report.exports.write_table", n_ok=3)
    code = run(["run", "huapaya2019", str(registry), "--out", str(earlier_output)])
    err = capsys.readouterr().err
    assert_environment_failure(code, err, ENOSPC_TEXT)
    assert "left as it was" in err
    assert tree(earlier_output) == before
    assert [p.name for p in earlier_output.parent.iterdir()] == ["out"]


def test_synth_on_a_full_disk_leaves_no_half_written_registry(tmp_path, monkeypatch, capsys):
    from ildstudy.synth import writers

    real = writers._CsvSink.write
    seen = {"n": 0}

    def write(self, table):
        seen["n"] += 1
        if seen["n"] > 3:
            raise OSError(errno.ENOSPC, ENOSPC_TEXT)
        return real(self, table)

    monkeypatch.setattr(writers._CsvSink, "write", write)
    code = run(["synth", "--out", str(tmp_path / "reg"), "--patients", "50"])
    assert_environment_failure(code, capsys.readouterr().err, ENOSPC_TEXT)
    assert seen["n"] > 3 and list(tmp_path.iterdir()) == []


def test_any_oserror_in_a_command_is_exit_2_with_the_reason(registry, tmp_path, monkeypatch, capsys):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(registry / "pft.csv"))

    monkeypatch.setattr("ildstudy.analysis.study.run_study", denied)
    code = run(["run", "huapaya2019", str(registry), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert_environment_failure(code, err, f"{os.strerror(errno.EACCES)} ({registry / 'pft.csv'})")
    assert not (tmp_path / "o").exists()


# --- invalid --out ---------------------------------------------------------------------------------------

def test_out_name_too_long_exits_2(registry, tmp_path, capsys):
    code = run(["run", "huapaya2019", str(registry), "--out", str(tmp_path / ("x" * 300))])
    assert_environment_failure(code, capsys.readouterr().err, os.strerror(errno.ENAMETOOLONG))
    assert list(tmp_path.iterdir()) == []


# --- full disk and read-only, for real (root on Linux: tmpfs mounts) -----------------------------------

@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount(options)`` mounts a fresh tmpfs and returns its folder; unmounted afterwards."""
    if not IS_ROOT or not sys.platform.startswith("linux"):
        pytest.skip("needs root on Linux to mount a tmpfs (a real full or read-only file system)")
    mounted = []

    def mount(options: str) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_real_full_disk_run(registry, quick_study, mount_tmpfs, capsys):
    disk = mount_tmpfs("size=64k")
    with atomic_output_dir(disk / "out") as d:                         # an earlier (small) output
        (d / "report.html").write_text("the earlier report\n")
    before = tree(disk / "out")
    code = run(["run", "huapaya2019", str(registry), "--out", str(disk / "out")])
    assert_environment_failure(code, capsys.readouterr().err, ENOSPC_TEXT)
    assert tree(disk / "out") == before
    assert [p.name for p in disk.iterdir()] == ["out"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx", "duckdb"])
def test_real_full_disk_synth(mount_tmpfs, capsys, fmt):
    disk = mount_tmpfs("size=64k")
    code = run(["synth", "--out", str(disk / "reg"), "--patients", "200", "--format", fmt])
    assert_environment_failure(code, capsys.readouterr().err, ENOSPC_TEXT)
    assert list(disk.iterdir()) == []


def test_real_read_only_parent(registry, mount_tmpfs, capsys):
    disk = mount_tmpfs("ro,size=64k")
    code = run(["run", "huapaya2019", str(registry), "--out", str(disk / "out")])
    assert_environment_failure(code, capsys.readouterr().err, os.strerror(errno.EROFS))
    code = run(["synth", "--out", str(disk / "reg"), "--patients", "20"])
    assert_environment_failure(code, capsys.readouterr().err, os.strerror(errno.EROFS))


@pytest.mark.skipif(IS_ROOT, reason="root ignores file modes; the read-only mount test covers root")
def test_read_only_parent_by_mode(registry, tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code = run(["run", "huapaya2019", str(registry), "--out", str(parent / "out")])
        assert_environment_failure(code, capsys.readouterr().err, os.strerror(errno.EACCES))
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def test_marker_is_written_last(tmp_path, monkeypatch):
    """ENOSPC while writing the marker itself: still nothing left behind."""
    from ildstudy.errors import EnvironmentFailure

    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == MARKER:
            raise OSError(errno.ENOSPC, ENOSPC_TEXT, str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(EnvironmentFailure, match=ENOSPC_TEXT):
        with atomic_output_dir(tmp_path / "out") as d:
            (d / "report.html").write_text("r")
    assert list(tmp_path.iterdir()) == []
