"""The results data model: one committed file, ``results_schema.csv``, with a row per table × column.

Columns of the schema file (in the manner of OHDSI CohortMethod's ``resultsDataModelSpecification.csv``):
``table`` (``tables.<name>`` for a CSV in ``tables/`` and ``share/``, or a results.json path such as
``results.outcomes.*.model`` where ``*`` is any key and ``[]`` a list item), ``column`` (``*`` any key;
``{arm}`` / ``{outcome}`` placeholders), ``type`` (int, float, str, bool, object, array), ``nullable``,
``required``, ``is_count`` (a count of patients or events: suppressed in ``share/`` below ``min_cell``),
``reveals`` (the count columns a derived value is computed from: hidden with them), ``description``.

>>> from ildstudy.analysis.schema import load_schema
>>> load_schema().table_columns("adverse_events_by_arm")["percent"].reveals
('patients_with_event',)
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

SCHEMA_FILE = "results_schema.csv"
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "object": (dict,),
          "array": (list,)}


@dataclass(frozen=True, slots=True)
class Column:
    """One schema row."""

    table: str
    column: str
    type: str
    nullable: bool
    required: bool
    is_count: bool
    reveals: tuple[str, ...]
    description: str

    def matches(self, name: str) -> bool:
        """Whether a concrete column name (``AZA_patients``) is this row (``{arm}_patients``)."""
        if self.column == "*":
            return True
        pattern = re.escape(self.column).replace(r"\{arm\}", ".+").replace(r"\{outcome\}", ".+")
        return re.fullmatch(pattern, name) is not None


@dataclass(frozen=True, slots=True)
class ResultsSchema:
    """All rows of ``results_schema.csv``."""

    columns: tuple[Column, ...]

    def _table_rows(self, table: str) -> list[Column]:
        return [c for c in self.columns if _table_matches(c.table, table)]

    def table_columns(self, table: str, names: list[str] | None = None) -> dict[str, Column]:
        """Schema rows of a ``tables/`` table, by concrete column name when ``names`` are given.

        Concrete names match exact rows before placeholder rows (``remaining`` before ``remaining_{arm}``).
        """
        rows = [c for c in self.columns if c.table.startswith("tables.") and _table_matches(c.table[7:], table)]
        if names is None:
            return {c.column: c for c in rows}
        out = {}
        for name in names:
            exact = [c for c in rows if c.column == name]
            pattern = [c for c in rows if c.matches(name)]
            if exact or pattern:
                out[name] = (exact or pattern)[0]
        return out

    def count_columns(self, table: str, names: list[str]) -> list[str]:
        """The concrete columns of ``table`` holding counts."""
        return [n for n, c in self.table_columns(table, names).items() if c.is_count]

    def validate_results(self, results: dict) -> list[str]:
        """Problems of ``results`` (a results.json object) against the schema; empty when it conforms.

        Every key present needs a schema row of the right type; every required row must be present
        wherever its parent is.
        """
        problems: list[str] = []
        self._check(results, "results", problems)
        return problems

    def _check(self, obj, path: str, problems: list[str]) -> None:
        rows = self._table_rows(path)
        if isinstance(obj, dict):
            for key, value in obj.items():
                row = next((r for r in rows if r.column == key), None) or next((r for r in rows if r.matches(key)), None)
                if row is None:
                    problems.append(f"{path}.{key}: not in the schema")
                    continue
                if value is None:
                    if not row.nullable:
                        problems.append(f"{path}.{key}: null but not nullable")
                    continue
                if not isinstance(value, _TYPES[row.type]) or (row.type != "bool" and isinstance(value, bool)):
                    problems.append(f"{path}.{key}: {type(value).__name__}, schema says {row.type}")
                    continue
                child = f"{path}.{'*' if row.column == '*' or '{' in row.column else key}"
                if isinstance(value, dict):
                    self._check(value, child, problems)
                elif isinstance(value, list):
                    for item in value:
                        if isinstance(item, dict):
                            self._check(item, child + "[]", problems)
            for row in rows:
                if row.required and row.column not in obj and "*" not in row.column and "{" not in row.column:
                    problems.append(f"{path}.{row.column}: required but missing")


def _table_matches(pattern: str, name: str) -> bool:
    regex = re.escape(pattern).replace(r"\{outcome\}", ".+").replace(r"\{arm\}", ".+")
    return re.fullmatch(regex, name) is not None


@lru_cache(maxsize=1)
def load_schema() -> ResultsSchema:
    """Read the committed ``results_schema.csv`` (packaged next to this module)."""
    text = files("ildstudy.analysis").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    cols = []
    for r in csv.DictReader(text.splitlines()):
        cols.append(Column(r["table"], r["column"], r["type"], r["nullable"] == "true", r["required"] == "true",
                           r["is_count"] == "true", tuple(r["reveals"].split()), r["description"]))
    return ResultsSchema(tuple(cols))
