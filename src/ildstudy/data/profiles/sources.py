"""Read a centre's own files as text cells, every row kept and numbered as the user sees it.

A :class:`SourceTable` holds every column of the file as text (``''`` for an empty cell), the number of each
row in its file (CSV/XLSX: the header is row 1) and, for spreadsheets, which cells were real date cells.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.errors import Problem


@dataclass(frozen=True)
class SourceTable:
    """A source file (or REDCap instrument) as text: ``frame`` (str cells), ``rows`` (row number per frame row)."""

    file: str
    frame: pd.DataFrame
    rows: np.ndarray
    date_cells: frozenset[tuple[int, str]] = field(default_factory=frozenset)


def _cell(v: object) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, float):
        if v != v:
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dt.datetime, dt.date)):
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    return str(v).strip()


def read_source(path: Path, *, delimiter: str = ",", encoding: str = "utf-8",
                sheet: str | None = None) -> tuple[SourceTable | None, list[Problem]]:
    """Read one CSV, XLSX or Parquet file as text cells; ``(None, problems)`` when it cannot be read."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        return None, [Problem(name, None, None, None, f"file named in the profile does not exist in {path.parent}")]
    suffix = path.suffix.lower()
    try:
        if suffix == ".xlsx":
            return _read_xlsx(path, sheet), []
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            text = pd.DataFrame({c: [_cell(v) for v in frame[c].to_numpy(object)] for c in frame.columns})
            dates = frozenset((i, c) for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])
                              for i in range(len(frame)))
            return SourceTable(name, text, np.arange(len(frame), dtype=np.int64) + 1, dates), []
        return _read_csv(path, delimiter, encoding)
    except UnicodeDecodeError:
        return None, [Problem(name, None, None, None,
                              f"is not {encoding} text; set encoding (e.g. encoding = \"cp1252\") for this file "
                              "in the profile")]
    except Exception as exc:  # noqa: BLE001 - any reader failure is a problem with the file
        return None, [Problem(name, None, None, None, f"cannot be read: {' '.join(str(exc).split())[:160]}")]


def _read_csv(path: Path, delimiter: str, encoding: str) -> tuple[SourceTable | None, list[Problem]]:
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    text = path.read_bytes().decode(enc)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    problems: list[Problem] = []
    try:
        header = next(reader)
    except StopIteration:
        return None, [Problem(path.name, None, None, None, "is empty (expected a header row)")]
    header = [h.strip() for h in header]
    if len(header) == 1 and delimiter not in text.splitlines()[0]:
        for sep in (";", ",", "\t", "|"):
            if sep != delimiter and sep in text.splitlines()[0]:
                return None, [Problem(path.name, 1, None, None,
                                      f"has one column only: it looks separated by {sep!r}; set delimiter = "
                                      f"{sep!r} for this file in the profile")]
    records, rows = [], []
    last = reader.line_num
    for rec in reader:
        start, last = last + 1, reader.line_num
        if not any(v.strip() for v in rec):
            continue
        if len(rec) != len(header):
            if len(rec) > len(header) and not any(v.strip() for v in rec[len(header):]):
                rec = rec[: len(header)]
            else:
                problems.append(Problem(path.name, start, None, None,
                                        f"has {len(rec)} values but the header has {len(header)} columns"))
                continue
        records.append([v.strip() for v in rec])
        rows.append(start)
    frame = pd.DataFrame(records, columns=header, dtype=object) if records else pd.DataFrame(columns=header,
                                                                                              dtype=object)
    return SourceTable(path.name, frame, np.array(rows, dtype=np.int64)), problems


def _read_xlsx(path: Path, sheet: str | None) -> SourceTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = pd.read_excel(path, sheet_name=sheet if sheet is not None else 0, header=None, dtype=object,
                            engine="openpyxl", keep_default_na=False, na_values=[])
    header = [_cell(v) for v in raw.iloc[0]] if len(raw) else []
    body = raw.iloc[1:].reset_index(drop=True)
    cells = {h: [_cell(v) for v in body.iloc[:, j]] for j, h in enumerate(header)}
    dates = frozenset((i, h) for j, h in enumerate(header) for i, v in enumerate(body.iloc[:, j])
                      if isinstance(v, (dt.datetime, dt.date)))
    frame = pd.DataFrame(cells, dtype=object)
    keep = frame.apply(lambda r: any(v for v in r), axis=1).to_numpy(bool) if len(frame) else np.zeros(0, bool)
    rows = np.arange(len(frame), dtype=np.int64)[keep] + 2
    old_to_new = {int(o): n for n, o in enumerate(np.flatnonzero(keep))}
    dates = frozenset((old_to_new[i], h) for i, h in dates if i in old_to_new)
    return SourceTable(path.name, frame.loc[keep].reset_index(drop=True), rows, dates)
