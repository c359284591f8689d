"""Give raw table columns their real types, reporting every cell that does not fit.

Vectorised over whole columns; a :class:`~ildstudy.errors.Problem` is built only for bad
cells, at most ``MAX_PER_KIND`` per (column, problem) followed by one summary line.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ildstudy.data.readers import RawTable
from ildstudy.data.schema import Column
from ildstudy.errors import Problem

MAX_PER_KIND = 20
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


def coerce_table(raw: RawTable) -> tuple[pd.DataFrame, list[Problem]]:
    """Return the table with canonical columns in canonical order and types, and the problems.

    Types: id/text/category -> object (str or None); date -> datetime64[ns] (midnight);
    bool -> pandas ``boolean``; number -> float64. Optional columns absent from the file are
    added as all-missing. Every input row is kept.
    """
    out: dict[str, pd.Series] = {}
    problems: list[Problem] = []
    n = len(raw.frame)
    for col in raw.spec.columns:
        if col.name not in raw.frame.columns:
            out[col.name] = _empty(col, n)
            continue
        values, bad = _coerce_column(raw.frame[col.name], col)
        out[col.name] = values
        problems += _report(raw, col, bad)
    return pd.DataFrame(out, index=pd.RangeIndex(n)), problems


def _empty(col: Column, n: int) -> pd.Series:
    if col.kind == "date":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    if col.kind == "bool":
        return pd.Series(pd.NA, index=range(n), dtype="boolean")
    if col.kind == "number":
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(None, index=range(n), dtype=object)


def as_text(s: pd.Series) -> pd.Series:
    """Cell values as stripped strings; missing cells (None, NaN, NaT, '') become ''."""
    if pd.api.types.is_datetime64_any_dtype(s):
        txt = s.dt.strftime("%Y-%m-%d").where(s.dt.normalize() == s, s.astype(str))
        return txt.fillna("")
    if pd.api.types.is_bool_dtype(s):
        return s.map({True: "true", False: "false"}).astype(object).fillna("")
    if pd.api.types.is_float_dtype(s):
        integral = s.notna() & np.isfinite(s) & (s == np.round(s))
        txt = s.map(repr).where(~integral, s.fillna(0).astype("int64", errors="ignore").astype(str))
        return txt.where(s.notna(), "")
    if pd.api.types.is_integer_dtype(s):
        return s.astype(str).where(s.notna(), "")
    return s.map(_cell_text).astype(object)


def _cell_text(v: object) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, float):
        if np.isnan(v):
            return ""
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d") if v.time() == dt.time(0) else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.strftime("%Y-%m-%d")
    return str(v).strip()


def _coerce_column(s: pd.Series, col: Column) -> tuple[pd.Series, dict[str, pd.Series]]:
    """Return (typed values, {problem text: boolean mask of bad cells})."""
    bad: dict[str, pd.Series] = {}
    if col.kind == "number" and pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        values = s.astype("float64")
        missing = values.isna()
    else:
        text = as_text(s)
        missing = text == ""
        if col.kind in ("id", "text"):
            values = text.where(~missing, None)
        elif col.kind == "category":
            values = text.str.lower().map(col.canonical())
            unknown = ~missing & values.isna()
            bad[f"unknown value; allowed: {', '.join(col.categories)}"] = unknown
            values = values.where(~missing, None).astype(object)
        elif col.kind == "bool":
            low = text.str.lower()
            values = pd.Series(pd.NA, index=s.index, dtype="boolean")
            values[low.isin(TRUE_WORDS)] = True
            values[low.isin(FALSE_WORDS)] = False
            bad["is not true/false"] = ~missing & values.isna()
        elif col.kind == "date":
            shaped = text.str.match(ISO_DATE)
            values = pd.to_datetime(text.where(shaped, None), format="%Y-%m-%d", errors="coerce")
            bad["is not a date (YYYY-MM-DD)"] = ~missing & values.isna()
        else:  # number written as text
            values = pd.to_numeric(text.str.replace(",", "", regex=False).where(~missing, None), errors="coerce")
            values = values.astype("float64")
            bad["is not a number"] = ~missing & values.isna()
    if col.required:
        bad["required value is missing"] = missing
    if col.kind == "number":
        if col.low is not None:
            bad[f"is below the plausible range ({col.low:g} to {col.high:g})" if col.high is not None
                else f"must be at least {col.low:g}"] = values < col.low
        if col.high is not None:
            bad[f"is above the plausible range ({col.low:g} to {col.high:g})" if col.low is not None
                else f"must be at most {col.high:g}"] = values > col.high
    return values, bad


def _report(raw: RawTable, col: Column, bad: dict[str, pd.Series]) -> list[Problem]:
    problems: list[Problem] = []
    for text, mask in bad.items():
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        for i in idx[:MAX_PER_KIND]:
            value = _cell_text(raw.frame[col.name].iloc[i]) if col.name in raw.frame.columns else ""
            problems.append(Problem(raw.path.name, int(i) + raw.row_offset, col.name, value, text))
        if len(idx) > MAX_PER_KIND:
            problems.append(Problem(raw.path.name, None, col.name, None,
                                    f"... and {len(idx) - MAX_PER_KIND} more rows where the value {text}"))
    return problems
