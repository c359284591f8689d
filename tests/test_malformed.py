"""A corpus of malformed registries: each is the valid base registry (tests/malformed/base.py) with one
thing broken. For each, ``ildstudy validate`` must give the right exit code and name the file, the row
and the column of the problem (where a row or column applies), without a traceback.

Each case lists what it expects as ``(file, row, column, words)``: a line
``ildstudy: error: FILE:ROW: COLUMN: ...`` (or ``warning``) containing ``words``; ``row``/``column``
are ``None`` for problems with a whole file or column.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from ildstudy.cli import run
from malformed.base import (
    TABLES, add_row, csv_text, drop_column, edit_cell, read_csv_rows, table_rows, write_base, write_table,
)


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[Path], None]
    code: int
    expect: tuple[tuple[str, int | None, str | None, str], ...] = ()
    severity: str = "error"


def _rewrite(folder: Path, name: str, fn: Callable[[str], str]) -> None:
    path = folder / f"{name}.csv"
    path.write_text(fn(path.read_text(encoding="utf-8")), encoding="utf-8", newline="")


def bom_crlf(folder: Path) -> None:
    for name in TABLES:
        path = folder / f"{name}.csv"
        path.write_bytes(b"\xef\xbb\xbf" + csv_text(read_csv_rows(path), "\r\n").encode("utf-8"))


def semicolons(folder: Path) -> None:
    _rewrite(folder, "patients", lambda t: t.replace(",", ";"))


def latin1(folder: Path) -> None:
    edit_cell(folder, "patients", 3, "race_ethnicity", "Hispánico")
    path = folder / "patients.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))


def utf16(folder: Path) -> None:
    path = folder / "pft.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))


def missing_table(folder: Path) -> None:
    (folder / "antibodies.csv").unlink()


def twice(folder: Path) -> None:
    write_table(folder, "patients", table_rows("patients"), "parquet")


def empty_file(folder: Path) -> None:
    (folder / "pft.csv").write_bytes(b"")


def header_only(name: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        (folder / f"{name}.csv").write_text(",".join(table_rows(name)[0]) + "\n", encoding="utf-8")
    return mutate


def cell(name: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    return lambda folder: edit_cell(folder, name, row, column, value)


def cells(*edits: tuple[str, int, str, str]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        for e in edits:
            edit_cell(folder, *e)
    return mutate


def append_line(name: str, line: str) -> Callable[[Path], None]:
    return lambda folder: _rewrite(folder, name, lambda t: t + line + "\n")


def xlsx_registry(folder: Path) -> None:
    for name in TABLES:
        (folder / f"{name}.csv").unlink()
        write_table(folder, name, table_rows(name), "xlsx")


def xlsx_bad_date(folder: Path) -> None:
    xlsx_registry(folder)
    rows = table_rows("pft")
    rows[1][1] = dt.datetime(2015, 3, 20)     # a real date cell is fine
    rows[2][1] = "20/09/2015"                 # a text cell that is not ISO
    write_table(folder, "pft", rows, "xlsx")


def xlsx_blank_row(folder: Path) -> None:
    xlsx_registry(folder)
    rows = table_rows("medications")
    rows.insert(2, [""] * len(rows[0]))       # an empty sheet row 3: the bad value is on sheet row 5
    rows[4][4] = "-20"
    write_table(folder, "medications", rows, "xlsx")


def parquet_registry(folder: Path) -> None:
    for name in TABLES:
        (folder / f"{name}.csv").unlink()
        write_table(folder, name, table_rows(name), "parquet")


def parquet_typed(folder: Path) -> None:
    """Parquet with real types: dates, floats, booleans."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet_registry(folder)
    pq.write_table(pa.table({
        "patient_id": ["P1", "P2"], "test_date": pa.array([dt.date(2015, 3, 20), dt.date(2016, 1, 15)]),
        "fvc_pct_pred": [65.5, 58.0], "dlco_pct_pred": pa.array([48, None], pa.int64()),
    }), folder / "pft.parquet")


def parquet_wrong_type(folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet_registry(folder)
    pq.write_table(pa.table({"patient_id": ["P1", "P2"], "test_date": pa.array([20150320, 20160115])}),
                   folder / "pft.parquet")


def parquet_truncated(folder: Path) -> None:
    parquet_registry(folder)
    path = folder / "adverse_events.parquet"
    path.write_bytes(path.read_bytes()[:50])


def xlsx_named_csv(folder: Path) -> None:
    (folder / "antibodies.csv").unlink()
    write_table(folder, "antibodies", table_rows("antibodies"), "xlsx").rename(folder / "antibodies.csv")


def many_bad_dates(folder: Path) -> None:
    for i in range(30):
        add_row(folder, "pft", ["P1", f"2015/01/{i + 1:02d}", "70", "", "", "", "", "", ""])


def shuffled_header_names(folder: Path) -> None:
    path = folder / "patients.csv"
    rows = read_csv_rows(path)
    rows[0] = ["Patient ID", "SEX", "Birth_Date", "diagnosis", "ILD", "ild-diagnosis-date", "smoking_status",
               "race_ethnicity", "height_cm"]
    path.write_text(csv_text(rows), encoding="utf-8")


def duplicate_header(folder: Path) -> None:
    path = folder / "pft.csv"
    rows = read_csv_rows(path)
    path.write_text(csv_text([r + [r[2]] for r in rows]), encoding="utf-8")


def extra_column(folder: Path) -> None:
    path = folder / "pft.csv"
    rows = read_csv_rows(path)
    path.write_text(csv_text([rows[0] + ["site"]] + [r + ["A"] for r in rows[1:]]), encoding="utf-8")


def unknown_file(folder: Path) -> None:
    (folder / "adverse_event.csv").write_text("a,b\n1,2\n", encoding="utf-8")


def blank_lines(folder: Path) -> None:
    _rewrite(folder, "pft", lambda t: t.replace("\n", "\n\n", 2))   # blank rows 3 and 5 (a spreadsheet shows them)
    edit_text = (folder / "pft.csv").read_text(encoding="utf-8").replace("70,50.2", "700,50.2")
    (folder / "pft.csv").write_text(edit_text, encoding="utf-8")


def na_markers(folder: Path) -> None:
    edit_cell(folder, "patients", 4, "ild_diagnosis_date", "NA")
    edit_cell(folder, "patients", 4, "height_cm", "N/A")
    edit_cell(folder, "pft", 3, "hemoglobin_g_dl", "#N/A")
    edit_cell(folder, "medications", 3, "stop_date", "NULL")


def trailing_commas(folder: Path) -> None:
    _rewrite(folder, "antibodies", lambda t: t.replace("\n", ",\n").replace("test_date,", "test_date", 1))


def cr_only(folder: Path) -> None:
    _rewrite(folder, "adverse_events", lambda t: t.replace("\n", "\r"))


def missing_folder(folder: Path) -> None:
    shutil.rmtree(folder)


CASES = [
    # valid variants: exit 0
    Case("valid_base", lambda f: None, 0),
    Case("bom_and_crlf", bom_crlf, 0),
    Case("cr_only_line_endings", cr_only, 0),
    Case("xlsx_registry", xlsx_registry, 0),
    Case("parquet_registry", parquet_registry, 0),
    Case("parquet_typed_columns", parquet_typed, 0),
    Case("header_only_adverse_events", header_only("adverse_events"), 0),
    Case("na_markers_are_missing", na_markers, 0),
    Case("trailing_empty_values", trailing_commas, 0),
    Case("header_case_and_spaces", shuffled_header_names, 0),
    # warnings only: exit 0
    Case("extra_column", extra_column, 0, (("pft.csv", 1, "site", "unknown column, ignored"),), "warning"),
    Case("unknown_file", unknown_file, 0, (("adverse_event.csv", None, None, "did you mean 'adverse_events'"),),
         "warning"),
    Case("unrecognised_drug", cell("medications", 3, "drug", "wonder pill"), 0,
         (("medications.csv", None, "drug", "unrecognised drug name in 1 row"),), "warning"),
    Case("ild_date_without_ild", cell("patients", 4, "ild_diagnosis_date", "2019-01-01"), 0,
         (("patients.csv", 4, "ild_diagnosis_date", "is given but ild is false"),), "warning"),
    # file problems
    Case("missing_folder", missing_folder, 2, ((None, None, None, "does not exist"),)),
    Case("wrong_delimiter", semicolons, 2, (("patients.csv", 1, None, "separated by semicolons"),)),
    Case("latin1_encoding", latin1, 2, (("patients.csv", 3, "race_ethnicity", "not UTF-8"),)),
    Case("utf16_encoding", utf16, 2, (("pft.csv", None, None, "UTF-16"),)),
    Case("missing_table", missing_table, 2, (("antibodies.csv", None, None, "missing table 'antibodies'"),)),
    Case("table_in_two_formats", twice, 2, (("patients.csv", None, None, "given twice"),)),
    Case("empty_file", empty_file, 2, (("pft.csv", None, None, "is empty"),)),
    Case("header_only_patients", header_only("patients"), 2, (("patients.csv", None, None, "no rows"),)),
    Case("xlsx_named_csv", xlsx_named_csv, 2, (("antibodies.csv", None, None, "Excel"),)),
    Case("parquet_truncated", parquet_truncated, 2,
         (("adverse_events.parquet", None, None, "cannot be read as Parquet"),)),
    # header problems
    Case("missing_required_column", lambda f: drop_column(f, "pft", "test_date"), 2,
         (("pft.csv", 1, "test_date", "required column is missing"),)),
    Case("duplicate_header_column", duplicate_header, 2,
         (("pft.csv", 1, "fvc_pct_pred", "more than once in the header"),)),
    Case("no_header_row", lambda f: _rewrite(f, "antibodies", lambda t: t.split("\n", 1)[1]), 2,
         (("antibodies.csv", 1, None, "is not a header row"),)),
    # rows
    Case("ragged_row_more_values", append_line("pft", "P2,2016-06-01,70,50,2.5,2.0,13,mL/min/mmHg,13,extra"), 2,
         (("pft.csv", 6, None, "has 10 values but the header has 9 columns"),)),
    Case("ragged_row_fewer_values", append_line("medications", "P2,prednisone,2016-02-01"), 2,
         (("medications.csv", 6, None, "has 3 values but the header has 6 columns"),)),
    Case("unmatched_quote", append_line("adverse_events", 'P2,2016-05-01,"rash,,false,false'), 2,
         (("adverse_events.csv", 4, None, "quote"),)),
    Case("blank_lines_keep_row_numbers", blank_lines, 2,
         (("pft.csv", 5, "fvc_pct_pred", "outside the plausible range (10 to 200)"),)),
    # dates
    Case("bad_date", cell("pft", 3, "test_date", "2019-13-01"), 2,
         (("pft.csv", 3, "test_date", "is not a date (YYYY-MM-DD)"),)),
    Case("impossible_day", cell("antibodies", 2, "test_date", "2019-02-30"), 2,
         (("antibodies.csv", 2, "test_date", "is not a date"),)),
    Case("ambiguous_date", cell("patients", 2, "birth_date", "03/04/1960"), 2,
         (("patients.csv", 2, "birth_date", "is ambiguous"),)),
    Case("day_first_date", cell("patients", 5, "birth_date", "31/12/1948"), 2,
         (("patients.csv", 5, "birth_date", "is not in YYYY-MM-DD form"),)),
    Case("date_after_today", cell("medications", 4, "start_date", "2099-01-01"), 2,
         (("medications.csv", 4, "start_date", "is after today"),)),
    Case("date_far_future", cell("adverse_events", 2, "event_date", "3019-01-01"), 2,
         (("adverse_events.csv", 2, "event_date", "is after today"),)),
    Case("date_before_1900", cell("patients", 3, "birth_date", "1855-05-06"), 2,
         (("patients.csv", 3, "birth_date", "before 1900"),)),
    Case("stop_before_start", cell("medications", 2, "stop_date", "2015-01-01"), 2,
         (("medications.csv", 2, "stop_date", "is before start_date"),)),
    Case("birth_after_ild_diagnosis", cell("patients", 2, "birth_date", "2016-01-01"), 2,
         (("patients.csv", 2, "ild_diagnosis_date", "before the patient's birth_date"),)),
    Case("pft_before_birth", cell("pft", 5, "test_date", "1940-01-01"), 2,
         (("pft.csv", 5, "test_date", "before the patient's birth_date"),)),
    Case("event_before_birth", cell("adverse_events", 3, "event_date", "1947-01-01"), 2,
         (("adverse_events.csv", 3, "event_date", "before the patient's birth_date"),)),
    Case("xlsx_bad_date", xlsx_bad_date, 2, (("pft.xlsx", 3, "test_date", "is not in YYYY-MM-DD form"),)),
    Case("many_bad_dates_are_capped", many_bad_dates, 2,
         (("pft.csv", 6, "test_date", "is not in YYYY-MM-DD form"),
          ("pft.csv", None, "test_date", "... and 10 more rows where the value is not in YYYY-MM-DD form"))),
    # ids and links
    Case("duplicate_patient_id", cell("patients", 4, "patient_id", "P2"), 2,
         (("patients.csv", 3, "patient_id", "appears more than once"),
          ("patients.csv", 4, "patient_id", "appears more than once"))),
    Case("orphan_patient_in_pft", cell("pft", 4, "patient_id", "P9"), 2,
         (("pft.csv", 4, "patient_id", "is not a patient_id in patients.csv"),)),
    Case("required_value_empty", cell("pft", 2, "patient_id", ""), 2,
         (("pft.csv", 2, "patient_id", "required value is missing"),)),
    # numbers
    Case("fvc_out_of_range", cell("pft", 2, "fvc_pct_pred", "250"), 2,
         (("pft.csv", 2, "fvc_pct_pred", "outside the plausible range (10 to 200)"),)),
    Case("dlco_out_of_range", cell("pft", 3, "dlco_pct_pred", "2"), 2,
         (("pft.csv", 3, "dlco_pct_pred", "outside the plausible range (5 to 200)"),)),
    Case("height_out_of_range", cell("patients", 2, "height_cm", "65"), 2,
         (("patients.csv", 2, "height_cm", "outside the plausible range (100 to 230)"),)),
    Case("negative_dose", cell("medications", 5, "daily_dose_mg", "-1500"), 2,
         (("medications.csv", 5, "daily_dose_mg", "is negative"),)),
    Case("xlsx_blank_row_and_negative_dose", xlsx_blank_row, 2,
         (("medications.xlsx", 5, "daily_dose_mg", "is negative"),)),
    Case("number_with_text", cell("pft", 2, "fvc_pct_pred", "65%"), 2,
         (("pft.csv", 2, "fvc_pct_pred", "is not a number"),)),
    Case("decimal_comma", cell("pft", 3, "dlco_pct_pred", "50,2"), 2,
         (("pft.csv", 3, "dlco_pct_pred", "decimal point"),)),
    Case("infinite_number", cell("pft", 4, "fvc_l", "inf"), 2, (("pft.csv", 4, "fvc_l", "is not a number"),)),
    Case("parquet_wrong_type", parquet_wrong_type, 2, (("pft.parquet", 1, "test_date", "YYYY-MM-DD"),)),
    # categories and booleans
    Case("unknown_sex", cell("patients", 2, "sex", "U"), 2,
         (("patients.csv", 2, "sex", "is not one of the allowed values: F, M"),)),
    Case("unknown_diagnosis", cell("patients", 3, "diagnosis", "sarcoidosis"), 2,
         (("patients.csv", 3, "diagnosis", "allowed values: DM, PM, ASyS"),)),
    Case("bool_not_true_false", cell("patients", 4, "ild", "maybe"), 2,
         (("patients.csv", 4, "ild", "is not true or false"),)),
    Case("unknown_ae_category", cell("adverse_events", 2, "category", "headache"), 2,
         (("adverse_events.csv", 2, "category", "allowed values: cytopenia"),)),
    Case("unknown_antibody", cell("antibodies", 3, "antibody", "Jo-2"), 2,
         (("antibodies.csv", 3, "antibody", "allowed values: Jo-1"),)),
    Case("unknown_antibody_result", cell("antibodies", 4, "result", "weak"), 2,
         (("antibodies.csv", 4, "result", "allowed values: positive, negative"),)),
    Case("unknown_stop_reason", cell("medications", 2, "stop_reason", "toxicity"), 2,
         (("medications.csv", 2, "stop_reason", "allowed values: adverse_event"),)),
    Case("rich_markup_in_value", cell("patients", 2, "sex", "[/red]"), 2,
         (("patients.csv", 2, "sex", "'[/red]' is not one of"),)),
    Case("several_problems_at_once",
         cells(("patients", 2, "sex", "U"), ("pft", 3, "test_date", "2019-13-01"),
               ("medications", 4, "daily_dose_mg", "-5")), 2,
         (("patients.csv", 2, "sex", "allowed"), ("pft.csv", 3, "test_date", "not a date"),
          ("medications.csv", 4, "daily_dose_mg", "negative"))),
]


def _line_prefix(severity: str, file: str | None, row: int | None, column: str | None) -> str:
    loc = file or ""
    if row is not None:
        loc += f":{row}"
    if column:
        loc += f": {column}"
    return f"ildstudy: {severity}: {loc}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_registry(case: Case, tmp_path: Path, capsys):
    folder = write_base(tmp_path / "registry")
    case.mutate(folder)
    code = run(["validate", str(folder)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output and "internal error" not in output
    assert code == case.code, output
    lines = captured.err.splitlines()
    for file, row, column, words in case.expect:
        if case.code == 0:  # warnings only: the table on stdout names the file, row and column
            table_rows = [line for line in captured.out.splitlines() if line.startswith("│")]
            assert any(words in line and file in line and (column or "") in line
                       and (row is None or f"│ {row} " in line) for line in table_rows), output
        elif file is None:
            assert any(line.startswith("ildstudy: error:") and words in line for line in lines), output
        else:
            prefix = _line_prefix(case.severity, file, row, column)
            assert any(line.startswith(prefix) and words in line for line in lines), (prefix, words, output)
    if case.code == 2:
        assert "┃ file" in captured.err and "severity" in captured.err, output  # the table, on stderr
        assert lines[-1].startswith("ildstudy: error: ") and "the registry cannot be used" in lines[-1], output
    else:
        assert "the registry can be used" in captured.out or "valid, no problems found" in captured.out, output


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert sum(c.code == 2 for c in CASES) >= 30
