"""`--out` never destroys a user's file (issue 17, item 1), XLSX exports are byte-identical (item 7).

The cases are the commands of the issue: `ildstudy run huapaya2019 reg --out reg`, `--out` on the
registry's parent, on a folder holding notes.txt, on an existing file; output folders get the umask's
modes, not 0700; partial folders of dead processes are cleaned. Every refusal must exit 2, say why,
and leave every byte on disk as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ildstudy.cli import run
from ildstudy.errors import CohortError, OutputError
from ildstudy.report.exports import write_table
from ildstudy.report.outdir import MARKER, atomic_output_dir, check_output_dir, clean_stale_partials, _host
from ildstudy.synth import write_registry


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` (hidden ones too) with the hash of its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("safety") / "reg"
    write_registry(folder, n_patients=60, seed=3, fmt="csv")
    return folder


def _never_run(*args, **kwargs):
    raise AssertionError("run_study was called although --out had to be refused first")


@pytest.fixture
def no_study(monkeypatch):
    """Refusals must come before the (slow) study: fail if it is started."""
    monkeypatch.setattr("ildstudy.analysis.study.run_study", _never_run)


# --- refusals: the commands of the issue -------------------------------------------------------------------

def test_out_on_the_input_registry_is_refused(registry, no_study, capsys):
    before = tree(registry.parent)
    assert run(["run", "huapaya2019", str(registry), "--out", str(registry)]) == 2
    err = capsys.readouterr().err
    assert "is an input of this command" in err and "bug" not in err
    assert tree(registry.parent) == before


def test_out_on_the_registry_parent_is_refused(registry, no_study, capsys):
    before = tree(registry.parent)
    assert run(["run", "huapaya2019", str(registry), "--out", str(registry.parent)]) == 2
    assert "contains an input of this command" in capsys.readouterr().err
    assert tree(registry.parent) == before


@pytest.mark.parametrize("spelling", ["dotdot", "symlink", "trailing_slash"])
def test_input_spelled_otherwise_is_still_refused(registry, tmp_path, no_study, capsys, spelling):
    if spelling == "dotdot":
        out = f"{registry}/../{registry.name}"
    elif spelling == "symlink":
        (tmp_path / "link").symlink_to(registry, target_is_directory=True)
        out = str(tmp_path / "link")
    else:
        out = f"{registry}/"
    before = tree(registry)
    assert run(["run", "huapaya2019", str(registry), "--out", out]) == 2
    assert "is an input of this command" in capsys.readouterr().err
    assert tree(registry) == before


def test_non_empty_user_folder_is_refused_and_kept(registry, tmp_path, no_study, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    assert run(["run", "huapaya2019", str(registry), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "not empty and was not written by ildstudy" in err and "notes.txt" in err
    assert "Choose a new folder, or delete this one yourself" in err
    assert (folder / "notes.txt").read_text() == "my notes\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]          # no partial folder either


def test_existing_file_is_refused_and_kept(registry, tmp_path, no_study, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me\n")
    assert run(["run", "huapaya2019", str(registry), "--out", str(target)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert target.read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.txt"]


def test_out_inside_a_file_is_refused(registry, tmp_path, no_study, capsys):
    (tmp_path / "f.txt").write_text("x")
    assert run(["run", "huapaya2019", str(registry), "--out", str(tmp_path / "f.txt" / "out")]) == 2
    assert "is a file, so no folder can be made inside it" in capsys.readouterr().err
    assert (tmp_path / "f.txt").read_text() == "x"


def test_db_file_and_protocol_file_are_inputs_too(tmp_path, no_study, capsys):
    db = tmp_path / "data" / "study.duckdb"
    db.parent.mkdir()
    db.write_bytes(b"not really a database")
    assert run(["run", "huapaya2019", "--db", str(db), "--out", str(db)]) == 2
    assert run(["run", "huapaya2019", "--db", f"duckdb://{db}", "--out", str(db.parent)]) == 2
    proto = tmp_path / "p" / "study.toml"
    proto.parent.mkdir()
    proto.write_text("# a protocol\n")
    assert run(["run", str(proto), "--db", str(db), "--out", str(proto.parent)]) == 2
    err = capsys.readouterr().err
    assert err.count("is an input of this command") == 1 and err.count("contains an input") == 2
    assert db.read_bytes() == b"not really a database" and proto.read_text() == "# a protocol\n"


def test_spark_tables_folder_is_an_input(tmp_path, no_study, capsys):
    """``--db spark://...?tables=FOLDER`` reads FOLDER: --out on it (or its parent) must be refused."""
    tables = tmp_path / "lake" / "tables"
    tables.mkdir(parents=True)
    (tables / "patients.parquet").write_bytes(b"PAR1")
    url = f"spark://local[1]?tables={tables}"
    assert run(["run", "huapaya2019", "--db", url, "--out", str(tables)]) == 2
    assert run(["run", "huapaya2019", "--db", url, "--out", str(tables.parent)]) == 2
    err = capsys.readouterr().err
    assert "is an input of this command" in err and "contains an input" in err
    assert (tables / "patients.parquet").read_bytes() == b"PAR1"


def test_demo_follows_the_same_rules(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("n")
    started = time.perf_counter()
    assert run(["demo", "--out", str(folder)]) == 2
    assert time.perf_counter() - started < 5              # refused before the registry is generated
    assert "not empty and was not written by ildstudy" in capsys.readouterr().err
    assert tree(folder) == {"notes.txt": hashlib.sha256(b"n").hexdigest()}


def test_synth_follows_the_same_rules(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "patients.csv").write_text("my real registry\n")
    assert run(["synth", "--out", str(folder), "--patients", "20"]) == 2
    (tmp_path / "f.txt").write_text("x")
    assert run(["synth", "--out", str(tmp_path / "f.txt"), "--patients", "20"]) == 2
    err = capsys.readouterr().err
    assert "not written by ildstudy" in err and "is an existing file" in err
    assert (folder / "patients.csv").read_text() == "my real registry\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "mine"]


def test_synth_replaces_its_own_earlier_output_with_no_mixed_formats(tmp_path):
    write_registry(tmp_path / "r", n_patients=20, seed=1, fmt="csv")
    write_registry(tmp_path / "r", n_patients=20, seed=1, fmt="parquet")
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert names == sorted([MARKER, "truth.json", *(f"{t}.parquet" for t in
                                                    ("patients", "antibodies", "medications", "pft",
                                                     "adverse_events"))])


def test_marked_output_with_a_user_file_added_is_refused(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as d:
        (d / "report.html").write_text("v1")
    (out / "my-notes.txt").write_text("added by the user")
    with pytest.raises(OutputError, match="files ildstudy did not write .*my-notes.txt"):
        with atomic_output_dir(out) as d:
            (d / "report.html").write_text("v2")
    assert (out / "report.html").read_text() == "v1" and (out / "my-notes.txt").exists()


def test_forged_or_broken_marker_is_not_trusted(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.csv").write_text("precious")
    (out / MARKER).write_text("{not json")
    with pytest.raises(OutputError, match="not written by ildstudy"):
        check_output_dir(out)
    (out / MARKER).write_text(json.dumps({"written_by": "someone else", "entries": ["data.csv"]}))
    with pytest.raises(OutputError, match="not written by ildstudy"):
        check_output_dir(out)


def test_files_added_during_the_run_stop_the_replace(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as d:
        (d / "report.html").write_text("v1")
    with pytest.raises(OutputError):
        with atomic_output_dir(out) as d:
            (d / "report.html").write_text("v2")
            (out / "late.txt").write_text("written while the study ran")
    assert (out / "late.txt").exists() and (out / "report.html").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- what is accepted ----------------------------------------------------------------------------------

def test_empty_folder_and_earlier_output_are_accepted_atomically(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with atomic_output_dir(out) as d:
        (d / "report.html").write_text("v1")
    marker = json.loads((out / MARKER).read_text())
    assert marker["written_by"] == "ildstudy" and marker["entries"] == ["report.html"]
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as d:
            (d / "report.html").write_text("half")
            raise RuntimeError("killed half-way")
    assert (out / "report.html").read_text() == "v1"
    with atomic_output_dir(out) as d:
        (d / "results.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_modes_follow_the_umask_not_0700(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_output_dir(tmp_path / "a" / "out") as d:
            (d / "tables").mkdir()
            (d / "tables" / "t.csv").write_text("x\n")
            (d / "report.html").write_text("r")
    finally:
        os.umask(old)
    out = tmp_path / "a" / "out"
    for folder in (out, out / "tables"):
        assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, oct(folder.stat().st_mode)
    for f in (out / "report.html", out / "tables" / "t.csv", out / MARKER):
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, (f, oct(f.stat().st_mode))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_partials_of_dead_processes_are_cleaned(tmp_path):
    out = tmp_path / "out"
    host = _host()
    dead = tmp_path / f".out.partial-{host}-{_dead_pid()}-0badc0de"
    old = tmp_path / f".out.old-{host}-{_dead_pid()}-0badc0de"
    live = tmp_path / f".out.partial-{host}-1-12345678"                  # pid 1 is always alive
    elsewhere = tmp_path / f".out.partial-otherhost-{_dead_pid()}-12345678"  # another machine's run
    other_name = tmp_path / f".other.partial-{host}-{_dead_pid()}-12345678"
    for p in (dead, old, live, elsewhere, other_name):
        p.mkdir()
        (p / "report.html").write_text("half")
    with atomic_output_dir(out) as d:
        (d / "report.html").write_text("v1")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["out", live.name, elsewhere.name, other_name.name])
    assert clean_stale_partials(out) == []


def test_partial_of_a_killed_run_is_cleaned_by_the_next(tmp_path):
    """A real kill: a child process is SIGKILLed while its output folder is being written."""
    out = tmp_path / "out"
    code = ("import os, signal, sys\n"
            "from ildstudy.report.outdir import atomic_output_dir\n"
            "with atomic_output_dir(sys.argv[1]) as d:\n"
            "    (d / 'report.html').write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    child = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True)
    assert child.returncode == -9
    partials = [p.name for p in tmp_path.iterdir()]
    assert len(partials) == 1 and partials[0].startswith(f".out.partial-{_host()}-")
    with atomic_output_dir(out) as d:
        (d / "report.html").write_text("v1")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --- a real run: marker, modes, rerun replaces -----------------------------------------------------------

@pytest.fixture(scope="module")
def result(registry):
    """One real study result; the test below runs the real CLI and writer with it (the study itself is
    tested elsewhere, and running it twice would only cost time)."""
    from ildstudy.analysis.study import run_study

    return run_study("huapaya2019", registry)


def test_real_run_writes_marker_and_umask_modes_and_reruns_in_place(registry, result, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setattr("ildstudy.analysis.study.run_study", lambda *a, **k: result)
    out = tmp_path / "study"
    old = os.umask(0o022)
    try:
        assert run(["run", "huapaya2019", str(registry), "--out", str(out)]) == 0
        first = tree(out)
        assert run(["run", "huapaya2019", str(registry), "--out", str(out)]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    second = tree(out)
    assert first.keys() == second.keys()
    same = {k for k in first if first[k] == second[k]}
    assert set(first) - same <= {"run.json"}                          # run.json holds the run's time
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "report.html").stat().st_mode & 0o777 == 0o644
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "study" and "report.html" in marker["entries"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


# --- a study stopped by the cohort: attrition written, exit 2 ------------------------------------------

def test_cohort_error_writes_attrition_only_and_exits_2(registry, tmp_path, monkeypatch, capsys):
    attrition = pd.DataFrame({"step": ["population", "arms"], "reason": ["ILD required", "no MMF patient"],
                              "excluded": [10, 50], "remaining_AZA": [30, 30], "remaining_MMF": [20, 0]})

    def stop(*args, **kwargs):
        raise CohortError("arm MMF is empty after step 'arms'", attrition=attrition, step="arms")

    monkeypatch.setattr("ildstudy.analysis.study.run_study", stop)
    out = tmp_path / "out"
    assert run(["run", "huapaya2019", str(registry), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ildstudy: error: arm MMF is empty after step 'arms'" in err and "attrition.csv" in err
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "README.txt", "attrition.csv"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "attrition.csv"), attrition)
    assert "arm MMF is empty after step 'arms'" in (out / "README.txt").read_text()
    # the same rules: a user's folder is not replaced by the attrition either
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("n")
    assert run(["run", "huapaya2019", str(registry), "--out", str(mine)]) == 2
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


# --- XLSX exports: byte-identical ------------------------------------------------------------------------

def test_xlsx_export_is_byte_identical_across_time(tmp_path):
    frame = pd.DataFrame({"arm": ["AZA", "MMF"], "n": [66, 44], "percent": [33.3, 13.6]})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_table(frame, tmp_path / "a" / "table1")
    time.sleep(2.1)  # openpyxl stamps the save time (dcterms:modified, ZIP entries with 2 s resolution)
    write_table(frame, tmp_path / "b" / "table1")
    assert (tmp_path / "a" / "table1.xlsx").read_bytes() == (tmp_path / "b" / "table1.xlsx").read_bytes()
    with zipfile.ZipFile(tmp_path / "a" / "table1.xlsx") as z:
        core = z.read("docProps/core.xml").decode()
        assert {i.date_time for i in z.infolist()} == {(2000, 1, 1, 0, 0, 0)}
    assert "<dcterms:modified" in core and "2000-01-01T00:00:00Z</dcterms:modified>" in core
    from openpyxl import load_workbook

    ws = load_workbook(tmp_path / "a" / "table1.xlsx").active
    assert [c.value for c in ws[2]] == ["AZA", 66, 33.3]
