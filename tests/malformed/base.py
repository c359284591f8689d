"""A hand-made valid registry of four patients, and helpers to write and edit it as CSV, XLSX or Parquet.

Rows are lists of text cells, exactly as they would sit in a CSV file; ``edit_cell`` and friends
address them by the row number a spreadsheet shows (header = row 1).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

HEADERS = {
    "patients": ["patient_id", "sex", "birth_date", "diagnosis", "ild", "ild_diagnosis_date", "smoking_status",
                 "race_ethnicity", "height_cm"],
    "antibodies": ["patient_id", "antibody", "result", "test_date"],
    "medications": ["patient_id", "drug", "start_date", "stop_date", "daily_dose_mg", "stop_reason"],
    "pft": ["patient_id", "test_date", "fvc_pct_pred", "dlco_pct_pred", "fvc_l", "fev1_l", "dlco", "dlco_unit",
            "hemoglobin_g_dl"],
    "adverse_events": ["patient_id", "event_date", "category", "drug", "serious", "led_to_discontinuation"],
}

ROWS = {
    "patients": [
        ["P1", "F", "1960-02-03", "DM", "true", "2015-03-04", "never", "White", "165"],
        ["P2", "M", "1955-05-06", "ASyS", "true", "2016-01-01", "former", "Black", "180.5"],
        ["P3", "F", "1970-07-08", "PM", "false", "", "current", "", ""],
        ["P4", "M", "1948-12-31", "overlap", "true", "2012-06-30", "", "Hispanic", "172"],
    ],
    "antibodies": [
        ["P1", "Jo-1", "positive", "2015-03-10"],
        ["P2", "PL-7", "negative", ""],
        ["P4", "MDA5", "positive", "2012-07-01"],
    ],
    "medications": [
        ["P1", "azathioprine", "2015-04-01", "2016-04-01", "100", "adverse_event"],
        ["P1", "prednisone", "2015-03-05", "", "20", ""],
        ["P2", "Mycophenolate Mofetil", "2016-02-01", "", "2000", ""],
        ["P4", "CellCept", "2012-08-01", "2014-08-01", "1500", "remission"],
    ],
    "pft": [
        ["P1", "2015-03-20", "65.5", "48", "2.1", "1.8", "12.5", "mL/min/mmHg", "13.1"],
        ["P1", "2015-09-20", "70", "50.2", "2.3", "1.9", "13", "mL/min/mmHg", ""],
        ["P2", "2016-01-15", "58", "40", "2.9", "2.4", "", "", "14"],
        ["P4", "2012-07-15", "80", "62", "3.1", "2.6", "4.1", "mmol/min/kPa", ""],
    ],
    "adverse_events": [
        ["P1", "2015-10-01", "cytopenia", "azathioprine", "true", "true"],
        ["P4", "2013-01-01", "infection", "", "false", "false"],
    ],
}

TABLES = tuple(HEADERS)


def table_rows(name: str) -> list[list[str]]:
    """Header and data rows of a base table (a fresh copy)."""
    return [list(HEADERS[name])] + [list(r) for r in ROWS[name]]


def csv_text(rows: list[list[str]], newline: str = "\n") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerows(rows)
    return buf.getvalue()


def write_base(folder: Path, fmt: str = "csv") -> Path:
    """Write the base registry into ``folder`` (created) as csv, xlsx or parquet files; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        write_table(folder, name, table_rows(name), fmt)
    return folder


def write_table(folder: Path, name: str, rows: list[list], fmt: str = "csv") -> Path:
    """Write one table; rows[0] is the header. XLSX and Parquet keep the cells' Python types."""
    path = folder / f"{name}.{fmt}"
    if fmt == "csv":
        path.write_text(csv_text(rows), encoding="utf-8")
    elif fmt == "xlsx":
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        for r in rows:
            ws.append([None if v == "" else v for v in r])
        wb.save(path)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        header, data = rows[0], rows[1:]
        columns = [[r[i] if i < len(r) else None for r in data] for i in range(len(header))]
        pq.write_table(pa.table([pa.array(c) for c in columns], names=[str(h) for h in header]), path)
    else:
        raise ValueError(fmt)
    return path


def read_csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def edit_cell(folder: Path, name: str, row: int, column: str, value: str) -> None:
    """Set one cell of ``name``.csv; ``row`` as a spreadsheet shows it (first data row = 2)."""
    path = folder / f"{name}.csv"
    rows = read_csv_rows(path)
    rows[row - 1][rows[0].index(column)] = value
    path.write_text(csv_text(rows), encoding="utf-8")


def drop_column(folder: Path, name: str, column: str) -> None:
    path = folder / f"{name}.csv"
    rows = read_csv_rows(path)
    i = rows[0].index(column)
    path.write_text(csv_text([r[:i] + r[i + 1:] for r in rows]), encoding="utf-8")


def add_row(folder: Path, name: str, values: list[str]) -> int:
    """Append a data row to ``name``.csv; return its row number."""
    path = folder / f"{name}.csv"
    rows = read_csv_rows(path) + [values]
    path.write_text(csv_text(rows), encoding="utf-8")
    return len(rows)
