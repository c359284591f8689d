"""Prednisone-equivalent glucocorticoid doses.

Equivalents are anti-inflammatory potencies: the mg of each glucocorticoid that equal 5 mg prednisone
(prednisone 5 = prednisolone 5 = methylprednisolone 4 = triamcinolone 4 = hydrocortisone 20 = cortisone 25 =
dexamethasone 0.75 = betamethasone 0.6). A protocol's ``[glucocorticoids]`` table overrides them.

The cohort computes daily doses inside the database (:mod:`ildstudy.cohort.tables`); this module holds the
conversion factors and a small pure-Python definition of the daily dose, :func:`daily_prednisone_equivalent`,
that states the rule in one place and is what the hand-worked tests check the SQL against.

>>> prednisone_equivalent_mg("methylprednisolone", 8.0)
10.0
>>> prednisone_equivalent_mg("dexamethasone", 1.5)
10.0
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: mg of each glucocorticoid equivalent to 5 mg prednisone (STUDY.md, "Domain conventions").
DEFAULT_EQUIVALENTS: Mapping[str, float] = {
    "prednisone": 5.0, "prednisolone": 5.0, "methylprednisolone": 4.0, "triamcinolone": 4.0,
    "hydrocortisone": 20.0, "cortisone": 25.0, "dexamethasone": 0.75, "betamethasone": 0.6,
}


def prednisone_factors(equivalents: Mapping[str, float] = DEFAULT_EQUIVALENTS) -> dict[str, float]:
    """mg prednisone per mg of each glucocorticoid: ``equivalents['prednisone'] / equivalents[drug]``."""
    base = equivalents["prednisone"]
    return {name.strip().lower(): base / mg for name, mg in equivalents.items()}


def prednisone_equivalent_mg(drug: str, dose_mg: float,
                             equivalents: Mapping[str, float] = DEFAULT_EQUIVALENTS) -> float:
    """The prednisone-equivalent of ``dose_mg`` of the glucocorticoid ``drug`` (a generic name).

    Raises ``KeyError`` for a drug that is not in ``equivalents``.
    """
    return dose_mg * prednisone_factors(equivalents)[drug.strip().lower()]


@dataclass(frozen=True, slots=True)
class Prescription:
    """One glucocorticoid prescription interval (``stop=None``: ongoing)."""

    drug: str
    start: dt.date
    stop: dt.date | None
    daily_dose_mg: float | None


def is_active(p: Prescription, day: dt.date, data_cut: dt.date) -> bool:
    """Active on ``start <= day < stop`` (half-open); an ongoing prescription up to and including the cut."""
    if day < p.start:
        return False
    return day <= data_cut if p.stop is None else day < p.stop


def daily_prednisone_equivalent(prescriptions: Iterable[Prescription], day: dt.date, data_cut: dt.date,
                                equivalents: Mapping[str, float] = DEFAULT_EQUIVALENTS) -> float | None:
    """Prednisone-equivalent mg/day on ``day``: the sum over glucocorticoids active that day.

    Prescriptions of drugs that are not glucocorticoids (not in ``equivalents``) are ignored. No active
    glucocorticoid gives 0.0; an active prescription without a dose makes the day's dose unknown (``None``).

    >>> d = dt.date
    >>> rx = [Prescription("prednisone", d(2015, 1, 1), d(2015, 2, 1), 20.0),
    ...       Prescription("prednisone", d(2015, 2, 1), None, 15.0)]
    >>> daily_prednisone_equivalent(rx, d(2015, 2, 1), data_cut=d(2018, 12, 31))
    15.0
    """
    factors = prednisone_factors(equivalents)
    total = 0.0
    for p in prescriptions:
        factor = factors.get(p.drug.strip().lower())
        if factor is None or not is_active(p, day, data_cut):
            continue
        if p.daily_dose_mg is None:
            return None
        total += p.daily_dose_mg * factor
    return total
