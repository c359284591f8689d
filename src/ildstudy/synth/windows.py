"""The protocol's dates and windows as integer day offsets, and small vectorised helpers.

The generator works in days: absolute dates are days since 1970-01-01 (``int64``), everything about
one patient is an offset in days from that patient's index date. ``NONE`` marks "no such date".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ildstudy.synth.calibration import largest_remainder

DAYS_PER_MONTH = 30.4375
#: "no such date" (an offset far beyond any real one)
NONE = np.int64(10**9)
EPOCH = dt.date(1970, 1, 1)


def day_number(d: dt.date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


@dataclass(frozen=True, slots=True)
class Windows:
    """What the generator needs from a protocol, in days (offsets relative to the index date).

    ``dose_days`` are the evaluation days of the dose months, ``round(m * 30.4375)``; half-days
    (month 24 is 730.5 days) may be rounded either way by an implementation, so nothing the
    generator places depends on the exact day: every change of dose and every end of follow-up is
    kept at least ``margin`` days away from them.
    """

    cut: int
    baseline_from: int
    baseline_to: int
    both_from: int
    both_to: int
    other_from: int
    other_to: int
    grace: int
    max_days: int
    as_treated: bool
    dose_months: tuple[float, ...]
    dose_days: tuple[int, ...]
    margin: int = 3

    @classmethod
    def from_protocol(cls, protocol) -> "Windows":
        months = tuple(float(m) for m in protocol.analysis.dose_months)
        return cls(
            cut=day_number(protocol.index.data_cut),
            baseline_from=protocol.baseline.from_days, baseline_to=protocol.baseline.to_days,
            both_from=protocol.exclusions.both_arms.from_days, both_to=protocol.exclusions.both_arms.to_days,
            other_from=protocol.exclusions.other_agents.from_days,
            other_to=protocol.exclusions.other_agents.to_days,
            grace=protocol.follow_up.grace_days,
            max_days=int(np.floor(protocol.follow_up.max_months * DAYS_PER_MONTH)),
            as_treated=protocol.follow_up.analysis == "as_treated",
            dose_months=months,
            dose_days=tuple(int(np.floor(m * DAYS_PER_MONTH + 0.5)) for m in months),
        )

    def near_dose_day(self, offsets: np.ndarray) -> np.ndarray:
        """True where an offset lies within ``margin`` days of a dose-evaluation day."""
        d = np.asarray(self.dose_days)
        x = np.asarray(offsets)
        i = np.searchsorted(d, x)
        below = d[np.maximum(i - 1, 0)]
        above = d[np.minimum(i, len(d) - 1)]
        return (np.abs(x - below) <= self.margin) | (np.abs(x - above) <= self.margin)


def uniform_int(rng: np.random.Generator, low, high, size) -> np.ndarray:
    """Integers uniform on ``[low, high]``, shape ``size`` (inclusive; bounds broadcast; ``high < low``
    gives ``low``)."""
    low = np.broadcast_to(np.asarray(low, dtype=np.int64), size)
    high = np.maximum(np.broadcast_to(np.asarray(high, dtype=np.int64), size), low)
    return low + np.floor(rng.random(size) * (high - low + 1)).astype(np.int64)


def exact_split(strata: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Assign categories so that stratum ``s`` has exactly ``counts[s, c]`` members of category ``c``.

    Members are chosen at random within each stratum. ``counts`` rows must sum to the stratum sizes.
    """
    strata = np.asarray(strata, dtype=np.int64)
    n = len(strata)
    sizes = np.bincount(strata, minlength=counts.shape[0])
    if not np.array_equal(counts.sum(axis=1), sizes):
        raise ValueError("exact_split: category counts must add up to the stratum sizes")
    order = np.argsort(strata + rng.random(n))      # random order within each stratum
    starts = np.cumsum(sizes) - sizes
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[strata[order]]
    bounds = np.cumsum(counts, axis=1)
    codes = np.zeros(n, dtype=np.int8)
    for c in range(counts.shape[1] - 1):             # a handful of categories, not patients
        codes += rank >= bounds[strata, c]
    return codes


def exact_shares(strata: np.ndarray, shares, rng: np.random.Generator) -> np.ndarray:
    """Categories with shares ``shares`` (one row per stratum, or one row for all), exact by largest
    remainder within each stratum."""
    strata = np.asarray(strata, dtype=np.int64)
    n_strata = int(strata.max()) + 1 if len(strata) else 1
    shares = np.atleast_2d(np.asarray(shares, dtype=float))
    if shares.shape[0] == 1:
        shares = np.repeat(shares, n_strata, axis=0)
    sizes = np.bincount(strata, minlength=n_strata)
    counts = np.stack([largest_remainder(int(s), w) for s, w in zip(sizes, shares)])
    return exact_split(strata, counts, rng)


def row_order(patient: np.ndarray, day: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Order of rows by patient, then day, then ``tie`` (small non-negative ints), as one int64 key.

    ``patient`` < 2**20 (a block), ``|day|`` < 2**30 offsets or day numbers, ``tie`` < 2**8.
    """
    key = (np.asarray(patient, np.int64) << 39) + ((np.asarray(day, np.int64) + (1 << 30)) << 8)
    if tie is not None:
        key += np.asarray(tie, np.int64)
    return np.argsort(key, kind="stable")


def choose(rng: np.random.Generator, probs, size: int) -> np.ndarray:
    """Independent categorical draws (codes) with probabilities ``probs``."""
    cum = np.cumsum(np.asarray(probs, dtype=float))
    cum /= cum[-1]
    return np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(cum) - 1).astype(np.int8)


def choose_rows(rng: np.random.Generator, prob_rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, k) probability matrix."""
    cum = np.cumsum(prob_rows, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(prob_rows))
    return np.minimum((u[:, None] >= cum).sum(axis=1), prob_rows.shape[1] - 1).astype(np.int8)
