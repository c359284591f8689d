"""Conversion of results to JSON-ready Python values (shared by lmm, analysis and report: the one JSON cleaner).

Floats become plain Python floats, integers plain ints, NaN/±inf/``pd.NA``/``None`` become ``None``; NumPy and
pandas scalars are unwrapped; mappings, sequences and DataFrames (as row records) are converted recursively. This is
the package's only JSON cleaner: the analysis modules call it without rounding, and the writer of ``results.json``
(:func:`ildstudy.report.exports.canonical_json`) calls it with ``digits`` for byte-stable output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def plain(value: Any, digits: int | None = None) -> Any:
    """Return ``value`` as JSON-ready Python data (``None`` for every kind of missing or non-finite number).

    Parameters
    ----------
    value : scalar, mapping, sequence, ndarray, Series or DataFrame
    digits : int, optional
        Round every float to this many significant digits (``float(f"{x:.{digits}g}")``).

    Raises
    ------
    TypeError
        For a value of any other type (a date, a path, an object): results hold numbers and text only.

    >>> plain({"a": np.float64(1 / 3), "b": [np.int64(2), float("nan")]}, digits=3)
    {'a': 0.333, 'b': [2, None]}
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return None
        return v if digits is None else float(f"{v:.{digits}g}")
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v, digits) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return frame_records(value, digits)
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [plain(v, digits) for v in value]
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


def frame_records(frame: pd.DataFrame, digits: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``frame`` as a list of JSON-ready dicts (column order kept); ``digits`` as in :func:`plain`."""
    cols = [str(c) for c in frame.columns]
    return [{c: plain(v, digits) for c, v in zip(cols, row)} for row in frame.itertuples(index=False, name=None)]


def finite_or_none(x: float | None) -> float | None:
    """``float(x)`` if finite, else ``None``."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
