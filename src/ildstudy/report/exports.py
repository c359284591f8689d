"""Write a study's outputs: results.json, run.json, tables (CSV/XLSX), share/; atomically.

Byte stability: ``results.json`` holds no run time, host or versions (those go to ``run.json``) and
floats are written with ``FLOAT_DIGITS`` significant digits, so a rerun on the same data and
protocol gives identical bytes.

Safety of exports: string cells that a spreadsheet would run as a formula (starting with
``= + - @``, or a tab/CR) are prefixed with a single quote in CSV and XLSX; ``share/`` holds
copies of the tables in which counts below ``min_cell`` are shown as ``"<min_cell"``. XLSX files
are byte-identical on rerun too (fixed document and ZIP times). The output-folder rules (what
``--out`` accepts, atomic replace) are in :mod:`ildstudy.report.outdir`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy._json import plain
from ildstudy.report.outdir import atomic_output_dir  # noqa: F401 - the output-folder rules live there

FLOAT_DIGITS = 10
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_COUNT_PCT = re.compile(r"^\s*(\d+)\s*(\(.*\))?\s*$")


def canonical_json(obj) -> str:
    """Deterministic JSON text (keys in insertion order, floats to FLOAT_DIGITS digits); values are made
    JSON-ready by the package's one cleaner, :func:`ildstudy._json.plain`."""
    return json.dumps(plain(obj, FLOAT_DIGITS), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix string cells that a spreadsheet would evaluate (``=1+1``, ``@SUM``, ``-2+3``) with ``'``."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v
            )
    return out


def suppress_small_counts(frame: pd.DataFrame, count_columns: list[str], min_cell: int,
                          linked: dict[str, str] | None = None) -> pd.DataFrame:
    """Replace counts in ``count_columns`` below ``min_cell`` (but > 0) by ``"<min_cell"``.

    Numeric cells are compared directly; text cells of the form ``"3"`` or ``"3 (4.5%)"`` are
    suppressed by their leading count (the percentage goes too, as it would reveal the count).
    ``linked`` maps a derived column (a percentage) to its count column: where the count is
    suppressed, the derived value is too.
    """
    linked = {k: v for k, v in (linked or {}).items() if k in frame.columns and v in frame.columns}
    out = frame.copy().astype({c: object for c in [*count_columns, *linked] if c in frame.columns})
    mask_text = f"<{min_cell}"

    def hide(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return v
        if isinstance(v, (int, float, np.integer, np.floating)):
            return mask_text if 0 < v < min_cell else v
        m = _COUNT_PCT.match(str(v))
        if m and 0 < int(m.group(1)) < min_cell:
            return mask_text
        return v

    for col in count_columns:
        if col in out.columns:
            out[col] = out[col].map(hide)
    for derived, count in linked.items():
        out.loc[out[count] == mask_text, derived] = mask_text
    return out


def write_table(frame: pd.DataFrame, stem: Path, *, xlsx: bool = True) -> None:
    """Write ``stem.csv`` (and ``stem.xlsx``) with formula-like strings neutralised."""
    safe = neutralise_formulas(frame)
    safe.to_csv(stem.with_suffix(".csv"), index=False, lineterminator="\n", float_format=f"%.{FLOAT_DIGITS}g")
    if xlsx:
        _write_xlsx(safe, stem.with_suffix(".xlsx"))


#: the time written into every XLSX export (document properties and ZIP entries), so reruns are byte-identical
XLSX_FIXED_TIME = (2000, 1, 1, 0, 0, 0)


def _write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """One sheet; byte-identical for the same table (openpyxl stamps ``dcterms:modified`` and the ZIP
    entry times with the current time at save, so the saved bytes are rewritten with fixed times)."""
    import io

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = path.stem[:31]
    ws.append([str(c) for c in frame.columns])
    for row in frame.itertuples(index=False):
        ws.append([_xlsx_cell(v) for v in row])
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(deterministic_xlsx(buffer.getvalue()))


def deterministic_xlsx(data: bytes, fixed: tuple[int, ...] = XLSX_FIXED_TIME) -> bytes:
    """The same XLSX workbook with fixed document and ZIP entry times (:func:`ildstudy._xlsx.deterministic_xlsx`)."""
    from ildstudy._xlsx import deterministic_xlsx as fix

    return fix(data, tuple(fixed))


def _xlsx_cell(v):
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_json(path: Path, obj) -> None:
    path.write_text(canonical_json(obj), encoding="utf-8")


def write_tables(tables: Mapping[str, pd.DataFrame], folder: Path, *, xlsx: bool = True,
                 transform: Callable[[str, pd.DataFrame], pd.DataFrame] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        write_table(transform(name, frame) if transform else frame, folder / name, xlsx=xlsx)
