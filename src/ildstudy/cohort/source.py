"""The registry tables as Ibis expressions on any backend, with drug names normalised in SQL.

:class:`Sources` checks that the five canonical tables exist with the columns and types the cohort needs
and exposes them as Ibis tables. Drug names are normalised inside the database with the rules of
:func:`ildstudy.reference.drugs.normalise_drug_name` (lower case, white-space runs collapsed, trimmed) and
mapped to generic names with a ``CASE`` over the known spellings -- plain SQL that DuckDB and PostgreSQL
run alike, without uploading a mapping table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
from ibis.common.exceptions import TableNotFound

from ildstudy.data.schema import TABLES
from ildstudy.errors import DataError, Problem
from ildstudy.reference.drugs import WHITESPACE, DrugNames, unrecognised_drug_problems

#: Ibis type families the cohort accepts for each canonical column kind.
_KIND_OK = {
    "id": ("string",), "text": ("string",), "category": ("string",), "date": ("date", "timestamp"),
    "bool": ("boolean",), "number": ("float", "decimal", "integer"),
}


def _family(dtype) -> str:
    if dtype.is_string():
        return "string"
    if dtype.is_date():
        return "date"
    if dtype.is_timestamp():
        return "timestamp"
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_floating():
        return "float"
    if dtype.is_decimal():
        return "decimal"
    if dtype.is_integer():
        return "integer"
    return str(dtype)


def normalised_name(column: ir.StringValue) -> ir.StringValue:
    """SQL for :func:`~ildstudy.reference.drugs.normalise_drug_name`; empty names become NULL."""
    pattern = "[" + "".join({" ": " ", "\t": r"\t", "\n": r"\n", "\r": r"\r", "\f": r"\f",
                             "\v": r"\v"}[c] for c in WHITESPACE) + "]+"
    text = column.re_replace(pattern, " ").strip().lower()
    return text.nullif("")


def generic_name(normalised: ir.StringValue, names: DrugNames) -> ir.StringValue:
    """Map a normalised spelling to its generic name; unknown spellings stay as they are."""
    pairs = [(k, v) for k, v in sorted(names.spellings.items()) if k != v]
    if not pairs:
        return normalised
    return normalised.cases(*pairs, else_=normalised)


@dataclass(frozen=True)
class Sources:
    """The canonical tables of one database, ready for the cohort.

    ``medications`` and ``adverse_events`` carry ``generic`` (normalised generic drug name, NULL when the
    row names no drug) next to the original ``drug``; dates are SQL dates.
    """

    patients: ir.Table
    antibodies: ir.Table
    medications: ir.Table
    pft: ir.Table
    adverse_events: ir.Table
    names: DrugNames

    @classmethod
    def open(cls, con, names: DrugNames) -> "Sources":
        """Check the tables of ``con`` (an Ibis backend) and wrap them; raise :class:`DataError` if unusable."""
        problems: list[Problem] = []
        tables: dict[str, ir.Table] = {}
        for spec in TABLES:
            try:
                table = con.table(spec.name)
            except TableNotFound:
                problems.append(Problem(spec.name, None, None, None,
                                        f"table '{spec.name}' is missing from the database"))
                continue
            schema = table.schema()
            casts = {}
            for col in spec.columns:
                if col.name not in schema:
                    problems.append(Problem(spec.name, None, col.name, None, "column is missing"))
                    continue
                family = _family(schema[col.name])
                if family not in _KIND_OK[col.kind]:
                    problems.append(Problem(spec.name, None, col.name, str(schema[col.name]),
                                            f"column has the wrong type (expected {col.kind})"))
                elif col.kind == "date" and family == "timestamp":
                    casts[col.name] = table[col.name].cast("date")
                elif col.kind == "number" and family != "float":
                    casts[col.name] = table[col.name].cast("float64")
            if casts:
                table = table.mutate(**casts)
            tables[spec.name] = table
        if problems:
            raise DataError(problems)
        meds = tables["medications"]
        meds = meds.mutate(generic=generic_name(normalised_name(meds.drug), names))
        ae = tables["adverse_events"]
        ae = ae.mutate(generic=generic_name(normalised_name(ae.drug), names))
        return cls(tables["patients"], tables["antibodies"], meds, tables["pft"], ae, names)

    def drug_name_problems(self, con) -> list[Problem]:
        """Warnings, with row counts, for drug spellings that match no known name (one small query each)."""
        problems: list[Problem] = []
        known = sorted(self.names.generics)
        for label, table in (("medications", self.medications), ("adverse_events", self.adverse_events)):
            unknown = table.filter(table.generic.notnull() & ~table.generic.isin(known))
            counts = con.execute(unknown.group_by("generic").aggregate(n=unknown.count()))
            problems += unrecognised_drug_problems(_as_counts(counts), label)
        return problems


def _as_counts(frame) -> Mapping[str, int]:
    return {str(k): int(v) for k, v in zip(frame["generic"], frame["n"])}


def drug_arm_case(column: ir.StringValue, arm_of_drug: Mapping[str, str]) -> ir.StringValue:
    """The arm a generic drug name belongs to, or NULL."""
    pairs = sorted(arm_of_drug.items())
    return column.cases(*pairs, else_=ibis.null("string"))
