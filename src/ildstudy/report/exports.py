"""Write a study's outputs: results.json, run.json, tables (CSV/XLSX), share/; atomically.

Byte stability: ``results.json`` holds no run time, host or versions (those go to ``run.json``) and
floats are written with ``FLOAT_DIGITS`` significant digits, so a rerun on the same data and
protocol gives identical bytes.

Safety of exports: string cells that a spreadsheet would run as a formula (starting with
``= + - @``, or a tab/CR) are prefixed with a single quote in CSV and XLSX; ``share/`` holds
copies of the tables in which counts below ``min_cell`` are shown as ``"<min_cell"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

FLOAT_DIGITS = 10
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_COUNT_PCT = re.compile(r"^\s*(\d+)\s*(\(.*\))?\s*$")


def _clean(obj):
    """JSON-ready copy: numpy scalars to Python, NaN/inf to None, floats rounded to FLOAT_DIGITS."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return [_clean(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        if not math.isfinite(x):
            return None
        return float(f"{x:.{FLOAT_DIGITS}g}")
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    return obj if isinstance(obj, str) else str(obj)


def canonical_json(obj) -> str:
    """Deterministic JSON text (keys in insertion order, floats to FLOAT_DIGITS digits)."""
    return json.dumps(_clean(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


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


def _write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    import datetime as dt

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = path.stem[:31]
    ws.append([str(c) for c in frame.columns])
    for row in frame.itertuples(index=False):
        ws.append([_xlsx_cell(v) for v in row])
    fixed = dt.datetime(2000, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.save(path)


def _xlsx_cell(v):
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


@contextmanager
def atomic_output_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``final``; on success replace ``final`` by it.

    An interrupted or failed run leaves ``final`` as it was (and no half-written report in it).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    path.write_text(canonical_json(obj), encoding="utf-8")


def write_tables(tables: Mapping[str, pd.DataFrame], folder: Path, *, xlsx: bool = True,
                 transform: Callable[[str, pd.DataFrame], pd.DataFrame] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        write_table(transform(name, frame) if transform else frame, folder / name, xlsx=xlsx)
