"""Conversion of analysis results to JSON-ready Python values (shared by the analysis modules).

Floats become plain Python floats, integers plain ints, NaN/±inf/``pd.NA``/``None`` become ``None``; NumPy and
pandas scalars are unwrapped; mappings and sequences are converted recursively. No rounding: byte-stable output is
the job of the writer of ``results.json`` (fixed float formatting).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def plain(value: Any) -> Any:
    """Return ``value`` as JSON-ready Python data (``None`` for every kind of missing or non-finite number)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return frame_records(value)
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [plain(v) for v in value]
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` as a list of JSON-ready dicts (column order kept)."""
    cols = [str(c) for c in frame.columns]
    return [{c: plain(v) for c, v in zip(cols, row)} for row in frame.itertuples(index=False, name=None)]


def finite_or_none(x: float | None) -> float | None:
    """``float(x)`` if finite, else ``None``."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
