"""Where each canonical row read from a CDM came from, so that every problem names the CDM table, row and column.

A canonical row keeps ``(table, id column, id)`` of its CDM row (a PFT cell: of its own ``measurement``); the
problems found while typing the canonical tables (canonical file and line) are renamed with it, e.g.
``measurement[measurement_id=17]: value_as_number``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from ildstudy.data.registry import Registry
from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy.errors import Problem


class Origins:
    """Where each canonical row came from: ``(table, id column, id)``, to name CDM rows in problems."""

    def __init__(self):
        self.rows: dict[str, list[tuple[str, str, object]]] = defaultdict(list)
        self.columns: dict[str, dict[str, str]] = {}
        self.cells: dict[tuple[str, int, str], object] = {}  # (table, row index, column) -> id of that cell's row

    def where(self, table: str, row: int | None, column: str | None) -> tuple[str, str | None]:
        rows = self.rows.get(table, [])
        i = None if row is None else row - 2
        if i is None or not 0 <= i < len(rows):
            return f"omop:{table}", column
        src, key, value = rows[i]
        value = self.cells.get((table, i, column), value)
        return f"{src}[{key}={value}]", self.columns.get(table, {}).get(column, column)


def _shown(v) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def at(table: str, key: str, value, column: str, shown, problem: str, severity: str = "error") -> Problem:
    return Problem(f"{table}[{key}={_shown(value)}]", None, column, _shown(shown), problem, severity)


def text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return ""
    if isinstance(v, (pd.Timestamp,)):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def relocate_read(p: Problem, origins: Origins) -> Problem:
    name = p.file.removesuffix(".csv")
    if name not in TABLES_BY_NAME:
        return p
    file, column = origins.where(name, p.row, p.column)
    return Problem(file, None, column, p.value, p.problem, p.severity)


def relocate(problems: list[Problem], registry: Registry) -> list[Problem]:
    """Problems of :func:`~ildstudy.data.validate.validate_registry` (canonical file and row) named by CDM rows."""
    out = []
    for p in problems:
        frame = registry.tables.get(p.file.removesuffix(".csv"))
        where = None if frame is None else frame.attrs.get("omop_origin")
        if where is not None and p.row is not None and 0 <= p.row - 2 < len(where):
            src, key, value = where[p.row - 2]
            column = frame.attrs.get("omop_columns", {}).get(p.column, p.column)
            out.append(Problem(f"{src}[{key}={value}]", None, column, p.value, p.problem, p.severity))
        else:
            out.append(p)
    return out



__all__ = ["Origins", "at", "relocate", "relocate_read", "text"]
