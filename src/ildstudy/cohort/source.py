"""The registry tables as Ibis expressions on any backend, with drug names normalised in SQL.

:class:`Sources` checks that the five canonical tables exist with the columns and types the cohort needs
and exposes them as Ibis tables. Drug names are normalised inside the database with the rules of
:func:`ildstudy.reference.drugs.normalise_drug_name` (lower case, white-space runs collapsed, trimmed) and
mapped to generic names with a ``CASE`` over the known spellings -- plain SQL that DuckDB and PostgreSQL
run alike. The mapping is computed once per distinct spelling (:func:`drug_map`, a small table) and joined
back to the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    # Trim with a regular expression, not TRIM: Ibis's TRIM lists the characters as '\t\f\v...', which Spark
    # SQL reads as the letters f and v ("Prograf" -> "progra"). After the collapse only spaces are left.
    text = column.re_replace(pattern, " ").re_replace(r"^ +| +$", "").lower()
    return text.nullif("")


def generic_name(normalised: ir.StringValue, names: DrugNames) -> ir.StringValue:
    """Map a normalised spelling to its generic name with a ``CASE``; unknown spellings stay as they are."""
    pairs = [(k, v) for k, v in sorted(names.spellings.items()) if k != v]
    if not pairs:
        return normalised
    return normalised.cases(*pairs, else_=normalised)


def checked_tables(con) -> dict[str, ir.Table]:
    """The five canonical tables of ``con``, dates as dates and numbers as doubles.

    Raises :class:`DataError` naming every missing table or column and every column of the wrong type.
    """
    problems: list[Problem] = []
    tables: dict[str, ir.Table] = {}
    for spec in TABLES:
        try:
            table = con.table(spec.name)
        except TableNotFound:
            problems.append(Problem(spec.name, None, None, None, f"table '{spec.name}' is missing from the database"))
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
        tables[spec.name] = table.mutate(**casts) if casts else table
    if problems:
        raise DataError(problems)
    return tables


def drug_map(medications: ir.Table, adverse_events: ir.Table, names: DrugNames) -> ir.Table:
    """One row per distinct drug spelling in the registry: ``drug`` (as written), ``generic``,
    ``n_medications``, ``n_adverse_events`` (rows using that spelling).

    Normalising the few distinct spellings instead of every row keeps the work small on any database
    (PostgreSQL's regular expressions are slow over millions of rows).
    """
    one, zero = ibis.literal(1, "int64"), ibis.literal(0, "int64")
    rows = ibis.union(medications.select("drug", in_medications=one, in_adverse_events=zero),
                      adverse_events.select("drug", in_medications=zero, in_adverse_events=one), distinct=False)
    rows = rows.filter(rows.drug.notnull())
    spellings = rows.group_by("drug").aggregate(n_medications=rows.in_medications.sum(),
                                                n_adverse_events=rows.in_adverse_events.sum())
    # Normalise in its own projection: the CASE then tests a column, not the regular expression once per
    # spelling (Spark expands a simple CASE into one comparison per branch, and its generated code overflows).
    spellings = spellings.mutate(_normalised=normalised_name(spellings.drug))
    return spellings.mutate(generic=generic_name(spellings._normalised, names)).drop("_normalised")


def _with_generic(table: ir.Table, spellings: ir.Table) -> ir.Table:
    """``table`` plus ``generic`` looked up by its ``drug`` (NULL when the row names no drug)."""
    lookup = spellings.select(spelling=spellings.drug, mapped=spellings.generic)
    j = table.left_join(lookup, table.drug == lookup.spelling)
    return j.select(*table.columns, generic=j.mapped)


@dataclass(frozen=True)
class Sources:
    """The canonical tables of one database, ready for the cohort.

    ``medications`` and ``adverse_events`` carry ``generic`` (normalised generic drug name, NULL when the
    row names no drug) next to the original ``drug``; dates are SQL dates. ``drug_map`` is
    :func:`drug_map`.
    """

    patients: ir.Table
    antibodies: ir.Table
    medications: ir.Table
    pft: ir.Table
    adverse_events: ir.Table
    drug_map: ir.Table
    names: DrugNames

    @classmethod
    def open(cls, con, names: DrugNames, keep: Callable[[ir.Table, str], ir.Table] | None = None) -> "Sources":
        """Check the tables of ``con`` (an Ibis backend) and wrap them; raise :class:`DataError` if unusable.

        ``keep(expr, name)``, when given, stores the drug map in the database and returns the stored table.
        """
        tables = checked_tables(con)
        spellings = drug_map(tables["medications"], tables["adverse_events"], names)
        if keep is not None:
            spellings = keep(spellings, "drug_map")
        return cls(tables["patients"], tables["antibodies"], _with_generic(tables["medications"], spellings),
                   tables["pft"], _with_generic(tables["adverse_events"], spellings), spellings, names)

    def drug_name_problems(self, con) -> list[Problem]:
        """Warnings, with row counts, for drug spellings that match no known name."""
        frame = con.execute(self.drug_map)
        frame = frame[frame["generic"].notna() & ~frame["generic"].isin(sorted(self.names.generics))]
        problems: list[Problem] = []
        for label, column in (("medications", "n_medications"), ("adverse_events", "n_adverse_events")):
            counts = frame.groupby("generic")[column].sum()
            problems += unrecognised_drug_problems(_as_counts(counts[counts > 0]), label)
        return problems


def _as_counts(counts) -> Mapping[str, int]:
    return {str(k): int(v) for k, v in counts.items()}


def drug_arm_case(column: ir.StringValue, arm_of_drug: Mapping[str, str]) -> ir.StringValue:
    """The arm a generic drug name belongs to, or NULL."""
    pairs = sorted(arm_of_drug.items())
    return column.cases(*pairs, else_=ibis.null("string"))
