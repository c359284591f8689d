"""Unit tests of the registry readers, typing and cross-table checks (the corpus is in test_malformed.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildstudy.cli import run
from ildstudy.data import load_registry, read_registry
from ildstudy.data.coerce import (
    AMBIGUOUS_DATE, COMMA_NUMBER, EARLY_DATE, FUTURE_DATE, NOT_A_DATE, NOT_ISO_DATE, coerce_column,
)
from ildstudy.data.readers import MAX_PER_KIND, find_table_files, read_raw_table, source_rows
from ildstudy.data.schema import PATIENTS, PFT, TABLES_BY_NAME
from ildstudy.data.validate import in_file_order, summary, validate_registry
from ildstudy.errors import DataError, Problem
from malformed.base import add_row, edit_cell, write_base

TODAY = pd.Timestamp("2026-01-01")


def _column(values, name, spec=PATIENTS):
    return coerce_column(pd.Series(values, dtype="string[pyarrow]"), spec.column(name), TODAY)


@pytest.mark.parametrize("value, problem", [
    ("2019-13-01", NOT_A_DATE), ("2019-02-29", NOT_A_DATE), ("yesterday", NOT_A_DATE), ("43528", NOT_A_DATE),
    ("03/04/2019", AMBIGUOUS_DATE), ("3.4.19", AMBIGUOUS_DATE),
    ("13/04/2019", NOT_ISO_DATE), ("2019/04/13", NOT_ISO_DATE), ("2019-4-3", NOT_ISO_DATE),
    ("4 March 2019", NOT_ISO_DATE), ("2019-04-13 10:30", NOT_ISO_DATE),
    ("2027-01-01", FUTURE_DATE), ("3019-01-01", FUTURE_DATE), ("1899-12-31", EARLY_DATE), ("0099-01-01", EARLY_DATE),
])
def test_each_bad_date_gets_its_reason(value, problem):
    values, bad = _column(["2019-04-13", value, ""], "ild_diagnosis_date")
    assert list(bad) == [problem]
    assert bad[problem].tolist() == [False, True, False]
    assert values.iloc[0] == pd.Timestamp("2019-04-13") and values.isna().tolist() == [False, True, True]
    assert str(values.dtype) == "datetime64[ns]"


def test_leap_day_and_whitespace_are_fine():
    values, bad = _column([" 2020-02-29 ", "2000-02-29"], "birth_date")
    assert not bad and values.tolist() == [pd.Timestamp("2020-02-29"), pd.Timestamp("2000-02-29")]


def test_numbers_and_their_problems():
    values, bad = _column(["75.5", "1e2", "+80", "75,5", "1,234", "75%", "inf", "NA", "", " 60 "], "fvc_pct_pred",
                          PFT)
    assert bad[COMMA_NUMBER].tolist() == [False] * 3 + [True, True] + [False] * 5
    assert bad["is not a number"].tolist() == [False] * 5 + [True, True] + [False] * 3
    assert values.tolist()[:3] == [75.5, 100.0, 80.0] and values.iloc[-1] == 60.0
    assert np.isnan(values.iloc[7]) and np.isnan(values.iloc[8])


def test_categories_ignore_case_spaces_and_use_aliases():
    values, bad = _column(["female", " M ", "f", "Male"], "sex")
    assert not bad and values.tolist() == ["F", "M", "F", "M"]
    values, bad = coerce_column(pd.Series(["GI intolerance", "gi-intolerance", "Cytopenia"]),
                                TABLES_BY_NAME["adverse_events"].column("category"), TODAY)
    assert not bad and values.tolist() == ["gi_intolerance", "gi_intolerance", "cytopenia"]


def test_booleans():
    values, bad = _column(["TRUE", "no", "1", "Y", "maybe", ""], "ild")
    assert values.tolist()[:4] == [True, False, True, True] and values.isna().tolist()[4:] == [True, True]
    assert bad["is not true or false"].tolist() == [False] * 4 + [True, False]
    assert bad["required value is missing"].tolist() == [False] * 5 + [True]


def test_typed_parquet_columns_are_used_as_they_are():
    dates = pd.Series(pd.to_datetime(["2019-04-13 10:30", None, "2030-01-01"], format="ISO8601"))
    values, bad = coerce_column(dates, PFT.column("test_date"), TODAY)
    assert values.iloc[0] == pd.Timestamp("2019-04-13") and bad[FUTURE_DATE].tolist() == [False, False, True]
    values, bad = coerce_column(pd.Series([65.0, np.inf, None]), PFT.column("fvc_pct_pred"), TODAY)
    assert bad["is not a number"].tolist() == [False, True, False]


def test_rows_are_numbered_as_a_spreadsheet_shows_them(tmp_path):
    folder = write_base(tmp_path / "r")
    path = folder / "pft.csv"
    text = path.read_text().splitlines()
    # a blank line (row 3), a row of empty cells (row 4), then data again: the bad value sits on row 6
    text[2:2] = ["", ",,,,,,,,"]
    text[5] = text[5].replace("58", "580")
    path.write_text("\r\n".join(text) + "\r\n")
    raw, fatal = read_raw_table(PFT, path)
    assert not fatal and raw.row_numbers().tolist() == [2, 5, 6, 7]
    registry, problems = read_registry(folder)
    assert [(p.row, p.column) for p in problems] == [(6, "fvc_pct_pred")]
    assert source_rows(registry.tables["pft"], path).tolist() == [2, 5, 6, 7]
    edit_cell(folder, "patients", 2, "patient_id", "PX")      # P1 now unknown: pft rows 2 and 5
    registry, _ = read_registry(folder)
    orphans = [p.row for p in validate_registry(registry) if p.column == "patient_id" and p.file == "pft.csv"]
    assert orphans == [2, 5]


def test_parquet_rows_start_at_one(tmp_path):
    folder = write_base(tmp_path / "r", "parquet")
    registry, problems = read_registry(folder)
    assert not problems
    assert source_rows(registry.tables["pft"], registry.files["pft"]).tolist() == [1, 2, 3, 4]


def test_problems_are_capped_per_file_column_and_kind(tmp_path):
    folder = write_base(tmp_path / "r")
    for i in range(MAX_PER_KIND + 15):
        add_row(folder, "pft", ["P9", "2015-01-01", "500", "", "", "", "", "", ""])
    registry, problems = read_registry(folder)
    problems += validate_registry(registry)
    fvc = [p for p in problems if p.column == "fvc_pct_pred"]
    assert len(fvc) == MAX_PER_KIND + 1 and fvc[-1].row is None and "... and 15 more rows" in fvc[-1].problem
    orphans = [p for p in problems if "is not a patient_id" in p.problem]
    assert len(orphans) == MAX_PER_KIND + 1
    assert "70 errors in pft.csv" in summary(problems, folder)


def test_read_registry_never_raises_and_load_registry_lists_every_error(tmp_path):
    folder = write_base(tmp_path / "r")
    edit_cell(folder, "patients", 2, "sex", "X")
    edit_cell(folder, "pft", 3, "test_date", "2019-13-01")
    registry, problems = read_registry(folder)
    assert {p.file for p in problems} == {"patients.csv", "pft.csv"}
    with pytest.raises(DataError) as info:
        load_registry(folder)
    assert [str(p) for p in info.value.problems] == [
        "patients.csv:2: sex: 'X' is not one of the allowed values: F, M",
        "pft.csv:3: test_date: '2019-13-01' is not a date (YYYY-MM-DD)",
    ]


def test_a_valid_registry_loads_with_canonical_types(tmp_path):
    registry = load_registry(write_base(tmp_path / "r"))
    pft = registry.tables["pft"]
    assert list(pft.columns) == list(PFT.column_names) and len(pft) == 4
    assert pft["test_date"].dtype == "datetime64[ns]" and pft["fvc_pct_pred"].dtype == "float64"
    assert pft["dlco_unit"].tolist() == ["mL/min/mmHg", "mL/min/mmHg", None, "mmol/min/kPa"]
    assert registry.tables["patients"]["ild"].dtype == "boolean"
    assert isinstance(registry.tables["patients"].index, pd.RangeIndex)


def test_find_table_files(tmp_path):
    folder = write_base(tmp_path / "r")
    (folder / "pft.csv").rename(folder / "PFT.CSV")
    (folder / "~$patients.xlsx").write_bytes(b"lock")
    (folder / "notes.csv").write_text("x\n1\n")
    files, problems = find_table_files(folder)
    assert files["pft"].name == "PFT.CSV" and len(files) == 5
    assert [(p.file, p.severity) for p in problems] == [("notes.csv", "warning")]


def test_validate_registry_tolerates_incomplete_registries():
    from ildstudy.data.registry import Registry

    frame = pd.DataFrame({"patient_id": ["P1", None], "test_date": pd.to_datetime(["2019-01-01", None])})
    assert [p.problem for p in validate_registry(Registry({"pft": frame}))] == []
    patients = pd.DataFrame({"patient_id": pd.Series([], dtype=object)})
    problems = validate_registry(Registry({"patients": patients, "pft": frame}))
    assert [p.problem for p in problems] == ["has no rows: a registry needs at least one patient"]
    patients = pd.DataFrame({"patient_id": ["P2"]})             # no birth_date column, no files
    problems = validate_registry(Registry({"patients": patients, "pft": frame}))
    assert [(p.file, p.row, p.column) for p in problems] == [("pft.csv", 2, "patient_id")]


def test_in_file_order_and_summary():
    ps = [Problem("pft.csv", 3, "a", None, "x"), Problem("patients.csv", 2, "b", None, "y", "warning"),
          Problem("pft.csv", 2, "c", None, "z")]
    assert [p.column for p in in_file_order(ps)] == ["b", "a", "c"]
    assert summary(ps, "reg") == ("reg: 2 errors in pft.csv, 1 warning; "
                                  "the registry cannot be used until the errors are fixed")
    assert summary(ps[1:2], "reg") == "reg: no errors, 1 warning; the registry can be used."


def test_cli_output_for_a_valid_registry(tmp_path, capsys):
    assert run(["validate", str(write_base(tmp_path / "r"))]) == 0
    out = capsys.readouterr().out
    assert "valid, no problems found (5 tables, 4 patients, 17 rows)" in out


def test_synthetic_registries_validate(tmp_path, capsys):
    pytest.importorskip("ildstudy.synth")
    for fmt in ("csv", "parquet", "xlsx"):
        folder = tmp_path / fmt
        assert run(["synth", "--out", str(folder), "--patients", "30", "--seed", "7", "--format", fmt]) == 0
        code = run(["validate", str(folder)])
        captured = capsys.readouterr()
        assert code == 0, captured.err


def test_validation_is_vectorised(tmp_path):
    """50k patients and 250k PFTs, every FVC out of range: seconds, and a capped list of problems."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_base(tmp_path / "big", "parquet")
    rng = np.random.default_rng(7)
    n, k = 50_000, 250_000
    ids = np.array([f"P{i:06d}" for i in range(n)], dtype=object)
    pq.write_table(pa.table({
        "patient_id": ids, "sex": rng.choice(["F", "M"], n), "birth_date": np.full(n, "1960-01-01"),
        "diagnosis": rng.choice(["DM", "PM"], n), "ild": rng.random(n) < 0.5,
    }), folder / "patients.parquet")
    pq.write_table(pa.table({
        "patient_id": ids[rng.integers(0, n, k)],
        "test_date": (pd.Timestamp("2010-01-01") + pd.to_timedelta(rng.integers(0, 3000, k), "D")).strftime("%Y-%m-%d"),
        "fvc_pct_pred": rng.uniform(201, 300, k).round(1).astype(str),
    }), folder / "pft.parquet")
    started = time.perf_counter()
    registry, problems = read_registry(folder)
    problems += validate_registry(registry)
    elapsed = time.perf_counter() - started
    assert len(registry.tables["pft"]) == k
    assert len([p for p in problems if p.column == "fvc_pct_pred"]) == MAX_PER_KIND + 1
    assert len(problems) < 10 * MAX_PER_KIND  # never a Problem per row
    assert elapsed < 30, f"validation took {elapsed:.1f} s"  # ~1-2 s on a laptop; generous for busy CI


def test_data_format_doc_matches_the_schema_and_messages():
    """docs/data-format.md lists every column with its requiredness and values, and every check's message."""
    import re

    from ildstudy.data import coerce, readers, validate

    doc = (Path(__file__).parents[1] / "docs" / "data-format.md").read_text(encoding="utf-8")
    for spec in TABLES_BY_NAME.values():
        section = doc.split(f"### {spec.name}\n", 1)[1].split("\n### ", 1)[0]
        for col in spec.columns:
            cell = f"**`{col.name}`**" if col.required else f"`{col.name}`"
            assert re.search(rf"^\| {re.escape(cell)} \| {col.kind} \| {'yes' if col.required else 'no'} \|",
                             section, re.M), (spec.name, col.name)
            for value in col.categories:
                assert f"`{value}`" in section, (spec.name, col.name, value)
            if col.low is not None and col.high is not None:
                assert f"{col.low:g} to {col.high:g}" in section
    messages = [coerce.NOT_A_DATE, coerce.AMBIGUOUS_DATE, coerce.NOT_ISO_DATE, coerce.FUTURE_DATE,
                coerce.EARLY_DATE, coerce.NOT_A_NUMBER, coerce.COMMA_NUMBER, coerce.NOT_BOOL, coerce.MISSING,
                readers.NOT_UTF8, readers.UNMATCHED_QUOTE, validate.NO_PATIENTS, validate.DUPLICATE_ID,
                validate.BEFORE_BIRTH, validate.STOP_BEFORE_START, validate.ILD_DATE_WITHOUT_ILD,
                validate.NOT_A_PATIENT.format(patients="patients.csv")]
    for message in messages:
        assert message in doc, message
