"""OMOP CDM v5.4 as a folder of CSV files (``--omop FOLDER``, ``synth --format omop-csv``): the committed example
(examples/omop/, the synthetic registry seed 2019) is what the writer writes, reads to the same tables as the DuckDB
CDM and the canonical registry, and gives the same study; a cell that is not of its column's CDM type is named by
file, line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ildstudy.analysis.serialize import results_document
from ildstudy.analysis.study import run_study
from ildstudy.cli import run as cli
from ildstudy.data import load_registry
from ildstudy.data.omop import check_omop, load_omop
from ildstudy.errors import IldStudyError
from ildstudy.protocol import load_protocol
from ildstudy.synth import write_registry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "omop"


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("huapaya2019").model_copy(update={"sensitivity": ()})


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("omopcsv")
    write_registry(root / "csv", seed=2019, fmt="omop-csv")
    write_registry(root / "duckdb", seed=2019, fmt="omop")
    write_registry(root / "registry", seed=2019, fmt="csv")
    return root


def test_writer_reproduces_the_committed_example(written):
    committed = sorted(p.name for p in EXAMPLE.glob("*.csv"))
    assert committed == sorted(p.name for p in (written / "csv").glob("*.csv"))
    assert "person.csv" in committed and "measurement.csv" in committed
    for name in committed:
        assert (written / "csv" / name).read_bytes() == (EXAMPLE / name).read_bytes(), name


def test_csv_folder_reads_as_the_duckdb_cdm(written, protocol):
    from_csv = load_omop(str(EXAMPLE), protocol=protocol)
    from_duckdb = load_omop(str(written / "duckdb" / "cdm.duckdb"), protocol=protocol)
    assert from_csv.problems == ()
    for name, frame in from_duckdb.tables.items():
        pd.testing.assert_frame_equal(from_csv[name], frame, obj=name)  # dtypes too


def test_csv_folder_gives_the_canonical_study(written, protocol):
    a = run_study(protocol, load_registry(written / "registry"))
    b = run_study(protocol, load_omop(str(EXAMPLE), protocol=protocol))
    pd.testing.assert_frame_equal(a.attrition, b.attrition)
    da, db = results_document(a), results_document(b)
    for k in da:
        if k not in ("data_sha256", "warnings"):  # provenance of the tables as read; drug-name warnings (see test_omop)
            assert da[k] == db[k], k


def test_bad_cell_is_named_by_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "cdm"
    shutil.copytree(EXAMPLE, bad)
    lines = (bad / "measurement.csv").read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    value, date = header.index("value_as_number"), header.index("measurement_date")
    row = lines[5].split(",")
    row[value] = "abc"
    lines[5] = ",".join(row)
    row = lines[9].split(",")
    row[date] = "03/12/2015"
    lines[9] = ",".join(row)
    (bad / "measurement.csv").write_text("".join(lines))
    _, problems = check_omop(str(bad))
    text = [str(p) for p in problems if p.severity == "error"]
    assert "measurement.csv:6: value_as_number: 'abc' is not a number (CDM v5.4 measurement.value_as_number is " \
           "DOUBLE)" in text
    assert "measurement.csv:10: measurement_date: '03/12/2015' is not a date (YYYY-MM-DD) (CDM v5.4 " \
           "measurement.measurement_date is DATE)" in text
    assert cli(["validate", "--omop", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 errors in measurement.csv" in err and "value_as_number" in err and "'abc'" in err
    out = tmp_path / "out"
    assert cli(["run", "huapaya2019", "--omop", str(bad), "--out", str(out)]) == 2 and not out.exists()


def test_folder_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IldStudyError, match="the folder has no CSV files"):
        load_omop(str(empty))
    twice = tmp_path / "twice"
    shutil.copytree(EXAMPLE, twice)
    shutil.copy(twice / "person.csv", twice / "PERSON.csv")
    with pytest.raises(IldStudyError, match="more than one file for table person"):
        load_omop(str(twice))
    assert cli(["validate", "--omop", str(EXAMPLE)]) == 0
    assert "valid, no problems found" in capsys.readouterr().out
