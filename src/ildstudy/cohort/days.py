"""Day arithmetic shared by the cohort steps: every date becomes whole days relative to the index date.

Working in integer days (``date.delta(index_date)``) instead of date + interval arithmetic keeps the SQL
identical in meaning on DuckDB and PostgreSQL (where ``date + interval`` is a timestamp).
"""

from __future__ import annotations

import math

import ibis
import ibis.expr.types as ir

#: Days per month: months since index = days / 30.4375 (docs/design.md).
DAYS_PER_MONTH = 30.4375
#: Days per year for ages: age = days / 365.25.
DAYS_PER_YEAR = 365.25
#: Stand-in for "no stop date" in day arithmetic (far beyond any follow-up).
OPEN_END = 10_000_000


def month_day(months: float) -> int:
    """The day offset of a protocol month: ``round(months * 30.4375)``, halves rounded up.

    >>> [month_day(m) for m in (0, 3, 6, 12, 24, 36, 60)]
    [0, 91, 183, 365, 731, 1096, 1826]
    """
    return math.floor(months * DAYS_PER_MONTH + 0.5)


def days_since(date: ir.DateValue, origin: ir.DateValue) -> ir.IntegerValue:
    """Whole days from ``origin`` to ``date`` (negative before it).

    Compiles to ``CAST(date - origin AS BIGINT)``: DuckDB and PostgreSQL subtract dates into whole days
    natively, many times faster on PostgreSQL than Ibis's portable ``date.delta(origin, unit="day")`` (which goes
    through epoch seconds). A backend without integer date subtraction would need ``delta`` here.
    """
    return (date - origin).cast("int64")


def to_months(days: ir.NumericValue) -> ir.FloatingValue:
    """Months since index: ``days / 30.4375`` in double precision on every engine.

    The cast matters on Spark, which reads the literal ``30.4375`` as a DECIMAL and would divide in decimal
    arithmetic (rounded to 6 places); DuckDB and PostgreSQL divide in double precision either way.
    """
    return days.cast("float64") / DAYS_PER_MONTH


def to_years(days: ir.NumericValue) -> ir.FloatingValue:
    """Years (for ages): ``days / 365.25`` in double precision (see :func:`to_months`)."""
    return days.cast("float64") / DAYS_PER_YEAR


def left_join_on_patient(left: ir.Table, right: ir.Table) -> ir.Table:
    """``left`` LEFT JOIN ``right`` USING (patient_id), keeping one patient_id column."""
    joined = left.left_join(right, "patient_id")
    return joined.drop("patient_id_right") if "patient_id_right" in joined.columns else joined


def flag(condition: ir.BooleanValue) -> ir.IntegerValue:
    """1 where ``condition`` holds, else 0 (NULL counts as 0); aggregate with ``.max()`` for "any"."""
    return ibis.cases((condition, 1), else_=0)
