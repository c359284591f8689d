"""Find the registry's files and read them into raw DataFrames, reporting file-level problems.

A registry is a folder with one file per canonical table (``patients.csv``, ``pft.parquet``,
``medications.xlsx``, ...). Reading keeps every row; types are assigned later by
:mod:`ildstudy.data.coerce`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ildstudy.data.schema import FILE_SUFFIXES, TABLES, TableSpec
from ildstudy.errors import Problem


@dataclass(frozen=True, slots=True)
class RawTable:
    """A table as read from its file: all columns present in the file, every row.

    ``row_offset`` turns a 0-based DataFrame index into the row number users see
    (2 for CSV/XLSX, where the header is row 1; 1 for Parquet).
    """

    spec: TableSpec
    path: Path
    frame: pd.DataFrame
    row_offset: int


def find_table_files(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Map each canonical table name to its file in ``folder``; report missing or doubled files."""
    problems: list[Problem] = []
    if not folder.exists():
        return {}, [Problem(str(folder), None, None, None, "registry folder does not exist")]
    if not folder.is_dir():
        return {}, [Problem(str(folder), None, None, None, "is not a folder (expected a folder of table files)")]
    by_stem: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in FILE_SUFFIXES:
            by_stem.setdefault(p.stem.lower(), []).append(p)
    found: dict[str, Path] = {}
    for spec in TABLES:
        paths = by_stem.get(spec.name, [])
        if not paths:
            if spec.required:
                problems.append(Problem(
                    f"{spec.name}.csv", None, None, None,
                    f"missing table '{spec.name}' (expected {spec.name}.csv, .parquet or .xlsx in {folder})",
                ))
        elif len(paths) > 1:
            problems.append(Problem(
                paths[0].name, None, None, None,
                f"table '{spec.name}' is given twice ({', '.join(p.name for p in paths)}); keep one",
            ))
        else:
            found[spec.name] = paths[0]
    return found, problems


def read_raw_table(spec: TableSpec, path: Path) -> tuple[RawTable | None, list[Problem]]:
    """Read one file with every value as found (CSV: text; Parquet/XLSX: their cell types)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame, problems = _read_csv(path)
            offset = 2
        elif suffix == ".parquet":
            frame, problems = pd.read_parquet(path), []
            offset = 1
        else:
            frame, problems = pd.read_excel(path, dtype=object, engine="openpyxl"), []
            offset = 2
    except Exception as exc:  # noqa: BLE001 - any reader failure is a problem with the file
        return None, [Problem(path.name, None, None, None, f"cannot be read as {suffix[1:].upper()}: {_short(exc)}")]
    if frame is None:
        return None, problems
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    problems += _check_columns(spec, path, frame)
    return RawTable(spec, path, frame.reset_index(drop=True), offset), problems


def _read_csv(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [Problem(path.name, line, None, None,
                              "is not UTF-8 text (save the file as CSV UTF-8)")]
    if not text.strip():
        return None, [Problem(path.name, None, None, None, "is empty (expected a header row)")]
    header = text.splitlines()[0]
    if "," not in header:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in header:
                return None, [Problem(path.name, 1, None, None,
                                      f"is separated by {name}, not commas (save as comma-separated CSV)")]
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8-sig",
            skipinitialspace=False, quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.ParserError as exc:
        return None, [Problem(path.name, _line_from_parser_error(exc), None, None, f"malformed CSV: {_short(exc)}")]
    except pd.errors.EmptyDataError:
        return None, [Problem(path.name, None, None, None, "is empty (expected a header row)")]
    return frame, []


def _check_columns(spec: TableSpec, path: Path, frame: pd.DataFrame) -> list[Problem]:
    problems = []
    cols = list(frame.columns)
    seen: set[str] = set()
    for c in cols:
        if c in seen:
            problems.append(Problem(path.name, 1, c, None, "column appears twice in the header"))
        seen.add(c)
    for c in spec.required_columns:
        if c not in cols:
            problems.append(Problem(path.name, 1, c, None, "required column is missing"))
    for c in cols:
        if c not in spec.column_names:
            problems.append(Problem(path.name, 1, c, None,
                                    f"unknown column (ignored); {spec.name} columns are: {', '.join(spec.column_names)}",
                                    severity="warning"))
    return problems


def _line_from_parser_error(exc: Exception) -> int | None:
    import re

    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) if m else None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__
