"""Checks across rows and tables, run after every cell has its type.

``validate_registry`` returns problems; it never raises for bad data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ildstudy.data.registry import Registry
from ildstudy.errors import Problem

MAX_PER_KIND = 20


def validate_registry(registry: Registry) -> list[Problem]:
    """Duplicate patient ids, rows whose patient is not in patients."""
    problems: list[Problem] = []
    patients = registry.tables.get("patients")
    if patients is None:
        return problems
    fname = registry.files["patients"].name
    ids = patients["patient_id"]
    dup = ids.duplicated(keep="first") & ids.notna()
    problems += _rows(fname, np.flatnonzero(dup), "patient_id", ids, "duplicate patient_id", 2)
    known = set(ids.dropna())
    for name, frame in registry.tables.items():
        if name == "patients":
            continue
        orphan = ~frame["patient_id"].isin(known) & frame["patient_id"].notna()
        problems += _rows(registry.files[name].name, np.flatnonzero(orphan), "patient_id",
                          frame["patient_id"], "patient is not in patients", _offset(registry, name))
    return problems


def _offset(registry: Registry, name: str) -> int:
    return 1 if registry.files[name].suffix.lower() == ".parquet" else 2


def _rows(fname: str, idx: np.ndarray, column: str, values: pd.Series, text: str, offset: int) -> list[Problem]:
    out = [Problem(fname, int(i) + offset, column, str(values.iloc[i]), text) for i in idx[:MAX_PER_KIND]]
    if len(idx) > MAX_PER_KIND:
        out.append(Problem(fname, None, column, None, f"... and {len(idx) - MAX_PER_KIND} more rows: {text}"))
    return out
