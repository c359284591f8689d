"""`ildstudy run`: from a folder or a database, refusing invalid data without writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ildstudy.cli import run
from ildstudy.synth import write_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reg") / "registry"
    write_registry(folder, n_patients=None, seed=7, fmt="csv")
    return folder


def test_invalid_registry_is_refused_and_nothing_written(registry, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in registry.glob("*.csv"):
        (bad / f.name).write_bytes(f.read_bytes())
    lines = (bad / "pft.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("test_date")] = "2019-02-30"
    lines[3] = ",".join(cells)
    (bad / "pft.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert run(["run", "huapaya2019", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pft.csv:4: test_date: '2019-02-30' is not a date" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())


def test_needs_data_or_db(tmp_path, capsys):
    assert run(["run", "huapaya2019", "--out", str(tmp_path / "o")]) == 2
    assert "exactly one" in capsys.readouterr().err


def test_run_from_duckdb_file_equals_run_from_folder(registry, tmp_path):
    db = tmp_path / "study.duckdb"
    assert run(["load", str(registry), "--db", str(db)]) == 0
    assert run(["run", "huapaya2019", str(registry), "--out", str(tmp_path / "a")]) == 0
    assert run(["run", "huapaya2019", "--db", str(db), "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    for key in ("arms", "attrition", "table1", "outcomes", "adverse_events", "discontinuation"):
        assert a[key] == b[key], key


@pytest.mark.postgres
def test_run_inside_postgresql_equals_run_from_folder(registry, tmp_path, pg_schema):
    """`ildstudy load DATA --db postgresql://...` then `ildstudy run PROTOCOL --db postgresql://...`."""
    assert run(["load", str(registry), "--db", pg_schema]) == 0
    assert run(["run", "huapaya2019", str(registry), "--out", str(tmp_path / "a")]) == 0
    assert run(["run", "huapaya2019", "--db", pg_schema, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    for key in ("arms", "attrition", "table1", "outcomes", "adverse_events", "discontinuation"):
        assert a[key] == b[key], key


def test_markup_like_values_are_shown_verbatim(registry, tmp_path, capsys):
    import csv

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in registry.glob("*.csv"):
        (bad / f.name).write_bytes(f.read_bytes())
    rows = list(csv.reader((bad / "patients.csv").open(newline="")))
    rows[2][rows[0].index("diagnosis")] = "[/red] :smile:"
    with (bad / "patients.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert run(["run", "huapaya2019", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "'[/red] :smile:'" in err and "Traceback" not in err
