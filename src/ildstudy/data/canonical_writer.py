"""Write typed registry tables as a canonical registry folder (one UTF-8 CSV per table).

Values are written so that reading the folder back gives the same tables (and the same
:meth:`~ildstudy.data.registry.Registry.sha256`): dates ``YYYY-MM-DD``, booleans ``true``/``false``,
numbers in Python's shortest round-trip form, missing values as empty cells.

>>> from ildstudy.data import load_registry                                   # doctest: +SKIP
>>> write_canonical_tables(load_registry("export", profile="p.toml"), out)   # doctest: +SKIP
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.data.schema import TABLES


def _cell(v: object, kind: str) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return ""
    if kind == "date":
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if kind == "bool":
        return "true" if bool(v) else "false"
    if kind == "number":
        x = float(v)
        return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
    return str(v)


def write_canonical_tables(registry, folder: str | Path) -> list[Path]:
    """Write ``<table>.csv`` for every table of ``registry`` into the existing ``folder``; return the paths."""
    folder = Path(folder)
    paths = []
    for spec in TABLES:
        if spec.name not in registry.tables:
            continue
        frame = registry.tables[spec.name]
        path = folder / f"{spec.name}.csv"
        kinds = [c.kind for c in spec.columns]
        columns = [frame[c.name].to_numpy(object) for c in spec.columns]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(spec.column_names)
            for i in range(len(frame)):
                w.writerow([_cell(col[i], k) for col, k in zip(columns, kinds)])
        paths.append(path)
    return paths
