"""Tests on contingency tables, computed as R computes them.

* :func:`chisq_test` — Pearson's χ² test, optionally with Yates' continuity correction, as
  ``chisq.test(x, correct = TRUE | FALSE)`` (R applies the correction to 2×2 tables only; so does this).
* :func:`fisher_test` — Fisher's exact test, two-sided, for 2×2 and r×2 / 2×c tables, as ``fisher.test(x)``:
  the p-value is the total probability of all tables with the observed margins whose probability does not exceed
  that of the observed table (relative tolerance 1e-7, as R). Tables are enumerated exactly; this module does
  not use ``scipy.stats.fisher_exact`` because SciPy's r×c version is a Monte-Carlo approximation and its 2×2
  version uses a different tie tolerance (1e-14) from R's.
* :func:`table1_test` — the Table 1 rule (gtsummary's default): Pearson χ² without correction, or Fisher's exact
  test when any expected count is below 5.
* :func:`conditional_odds_ratio` — the conditional maximum-likelihood odds ratio and its exact CI, as the
  ``estimate`` and ``conf.int`` of R's ``fisher.test`` (R's construction, vectorised over the support; SciPy's
  ``odds_ratio(kind="conditional")`` gives the same numbers but takes minutes on registry-sized tables).

Written by hand (≈ 40 lines of arithmetic) because the numbers must match R to the last digits, including the
edge cases users hit (zero margins, sparse tables).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from scipy.special import gammaln

from ildstudy._json import finite_or_none

CHISQ = "Chi-squared"
YATES = "Yates-corrected chi-squared"
FISHER = "Fisher's exact"
NO_TEST = "—"

#: R's ``fisher.test`` counts tables whose probability is ≤ (1 + 1e-7) × the observed table's.
FISHER_RELATIVE_TOLERANCE = 1e-7
#: Above this many tables with the observed margins, :func:`fisher_test` refuses (and :func:`table1_test`
#: falls back to the χ² test, saying so in the test name).
MAX_FISHER_TABLES = 5_000_000


@dataclass(frozen=True, slots=True)
class TestResult:
    """One hypothesis test as reported in a table.

    Attributes
    ----------
    test : str
        Name as printed ("Chi-squared", "Yates-corrected chi-squared", "Fisher's exact", "Welch t-test",
        "Wilcoxon rank-sum", or "—" when no test could be done).
    statistic : float or None
        Test statistic (χ², t, W); ``None`` for Fisher's exact test and when not computable.
    df : float or None
        Degrees of freedom (χ², Welch t); ``None`` otherwise.
    p : float or None
        Two-sided p-value; ``None`` when no test could be done.
    """

    __test__ = False  # not a pytest test class

    test: str
    statistic: float | None = None
    df: float | None = None
    p: float | None = None

    def to_dict(self) -> dict:
        return {"test": self.test, "statistic": finite_or_none(self.statistic), "df": finite_or_none(self.df),
                "p": finite_or_none(self.p)}


def _as_counts(table) -> np.ndarray:
    x = np.asarray(table)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"a contingency table must be a 2-D array of counts, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("a contingency table must hold non-negative whole counts")
    return x.astype(np.int64)


def expected_counts(table) -> np.ndarray:
    """Expected counts under independence, ``outer(row sums, column sums) / total``; shape of ``table``."""
    x = _as_counts(table).astype(float)
    total = x.sum()
    if total == 0:
        return np.zeros_like(x)
    return np.outer(x.sum(axis=1), x.sum(axis=0)) / total


def chisq_test(table, *, correct: bool) -> TestResult:
    """Pearson's χ² test of independence, as R's ``chisq.test(x, correct = correct)``.

    Parameters
    ----------
    table : array_like, shape (r, c)
        Counts.
    correct : bool
        Apply Yates' continuity correction. As in R, it is applied only to 2×2 tables, with R's clamp
        ``min(0.5, |O − E|)`` (the minimum over all cells).

    Returns
    -------
    TestResult
        ``test`` is "Yates-corrected chi-squared" when the correction was applied, else "Chi-squared";
        ``df = (r − 1)(c − 1)``. Statistic and p are ``None`` when an expected count is 0 (a row or column of
        zeros: R returns NaN there).
    """
    x = _as_counts(table)
    e = expected_counts(x)
    yates = correct and x.shape == (2, 2)
    name = YATES if yates else CHISQ
    df = float((x.shape[0] - 1) * (x.shape[1] - 1))
    if np.any(e == 0) or df == 0:
        return TestResult(name, None, df, None)
    dev = np.abs(x - e)
    if yates:
        dev = dev - min(0.5, float(dev.min()))
    stat = float(np.sum(dev**2 / e))
    return TestResult(name, stat, df, float(stats.chi2.sf(stat, df)))


def _log_choose(n: np.ndarray | int, k: np.ndarray | int) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def count_tables(table) -> int:
    """Number of r×2 (or 2×c) tables with the margins of ``table``: the size of Fisher's enumeration (counts above
    :data:`MAX_FISHER_TABLES` are reported as ``MAX_FISHER_TABLES + 1``)."""
    x = _rx2(table)
    rows = x.sum(axis=1)
    n1 = int(x[:, 0].sum())
    # ways[j] = number of ways the rows so far put j counts in the first column; a row of size r adds 0..r:
    # new[j] = ways[j - r] + ... + ways[j], a difference of running sums (O(n1) per row, not O(n1 * r)).
    # Counts are capped just above MAX_FISHER_TABLES, which is all the callers ask, so floats stay exact.
    cap = float(MAX_FISHER_TABLES + 1)
    ways = np.zeros(n1 + 1, dtype=float)
    ways[0] = 1.0
    for r in rows:
        run = np.concatenate([[0.0], np.cumsum(ways)])
        j = np.arange(n1 + 1)
        ways = np.minimum(run[j + 1] - run[np.maximum(j - int(r), 0)], cap)
    return int(round(ways[n1]))


def _rx2(table) -> np.ndarray:
    x = _as_counts(table)
    if x.shape[1] != 2 and x.shape[0] == 2:
        x = x.T
    if x.shape[1] != 2:
        raise ValueError(
            f"Fisher's exact test is implemented for 2x2, r x 2 and 2 x c tables, got {x.shape[0]} x {x.shape[1]}")
    return x


def fisher_test(table) -> TestResult:
    """Two-sided Fisher's exact test for a 2×2, r×2 or 2×c table, as R's ``fisher.test(x)``.

    Parameters
    ----------
    table : array_like, shape (r, 2) or (2, c)
        Counts.

    Returns
    -------
    TestResult
        ``test`` "Fisher's exact", ``statistic`` and ``df`` ``None``. A table with fewer than two non-empty rows
        or columns has a single possible table: p = 1 (as R).

    Raises
    ------
    ValueError
        For tables with more than two rows and more than two columns, or with more than
        :data:`MAX_FISHER_TABLES` tables with the observed margins.
    """
    x = _rx2(table)
    x = x[x.sum(axis=1) > 0]
    if x.shape[0] < 2 or np.any(x.sum(axis=0) == 0):
        return TestResult(FISHER, None, None, 1.0)
    n_tables = count_tables(x)
    if n_tables > MAX_FISHER_TABLES:
        raise ValueError(f"Fisher's exact test needs {n_tables} tables (more than {MAX_FISHER_TABLES})")
    rows = x.sum(axis=1)
    n1 = int(x[:, 0].sum())
    total = int(rows.sum())
    log_norm = float(_log_choose(total, n1))
    log_obs = float(np.sum(_log_choose(rows, x[:, 0]))) - log_norm
    # Enumerate the first column (x_1..x_r, sum n1, 0 <= x_i <= row_i), keeping only completable partial sums.
    remaining = np.concatenate([np.cumsum(rows[::-1])[::-1][1:], [0]])
    sums = np.zeros(1, dtype=np.int64)
    logp = np.zeros(1)
    for i in range(len(rows) - 1):
        k = np.arange(rows[i] + 1)
        s = (sums[:, None] + k[None, :]).ravel()
        lp = (logp[:, None] + _log_choose(rows[i], k)[None, :]).ravel()
        keep = (s <= n1) & (s + remaining[i] >= n1)
        sums, logp = s[keep], lp[keep]
    logp = logp + _log_choose(rows[-1], n1 - sums) - log_norm
    extreme = logp <= log_obs + math.log1p(FISHER_RELATIVE_TOLERANCE)
    p = float(np.exp(logp[extreme]).sum())
    return TestResult(FISHER, None, None, min(p, 1.0))


def table1_test(table) -> TestResult:
    """The Table 1 test of a levels × arms table (gtsummary's default rule).

    Empty rows and columns are dropped; with fewer than two non-empty rows or columns no test is done
    (``test`` "—", ``p`` ``None``). Otherwise Pearson's χ² without correction, or Fisher's exact test when any
    expected count is below 5. If Fisher's enumeration would exceed :data:`MAX_FISHER_TABLES` tables, the χ²
    test is reported as "Chi-squared (Fisher's exact infeasible)".

    Parameters
    ----------
    table : array_like, shape (levels, arms)
        Counts.
    """
    x = _as_counts(table)
    x = x[x.sum(axis=1) > 0][:, x.sum(axis=0) > 0]
    if x.shape[0] < 2 or x.shape[1] < 2:
        return TestResult(NO_TEST)
    if expected_counts(x).min() >= 5:
        return chisq_test(x, correct=False)
    try:
        return fisher_test(x)
    except ValueError:
        res = chisq_test(x, correct=False)
        return TestResult(f"{CHISQ} (Fisher's exact infeasible)", res.statistic, res.df, res.p)


@dataclass(frozen=True, slots=True)
class OddsRatio:
    """Conditional maximum-likelihood odds ratio of a 2×2 table with its exact CI (as R's ``fisher.test``)."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    conf_level: float = 0.95

    def to_dict(self) -> dict:
        return {"estimate": finite_or_none(self.estimate), "ci_low": finite_or_none(self.ci_low),
                "ci_high": finite_or_none(self.ci_high), "conf_level": self.conf_level,
                "method": "conditional MLE, exact CI (fisher.test)"}


def _log_dhyper(support: np.ndarray, m: int, n: int, k: int) -> np.ndarray:
    """log P(X = x) of the central hypergeometric (m white, n black, k drawn), x over ``support``."""
    return _log_choose(m, support) + _log_choose(n, k - support) - float(_log_choose(m + n, k))


class _NoncentralHypergeometric:
    """Fisher's noncentral hypergeometric distribution on a fixed support, as R's ``fisher.test`` builds it
    (``dnhyper``: ``exp(logdc + log(ncp) * support)`` normalised), parametrised by ``theta = log(ncp)``.

    One vector of log central probabilities is computed once; every evaluation is then a vector exponential
    over the support (SciPy's ``nchypergeom_fisher`` recomputes its pmf cell by cell, which takes minutes on
    the 100k-patient tables of a registry study).
    """

    def __init__(self, m: int, n: int, k: int):
        self.lo, self.hi = max(0, k - n), min(k, m)
        self.support = np.arange(self.lo, self.hi + 1, dtype=float)
        self.logdc = _log_dhyper(self.support, m, n, k)

    def pmf(self, theta: float) -> np.ndarray:
        d = self.logdc + theta * self.support
        d = np.exp(d - d.max())
        return d / d.sum()

    def mean(self, theta: float) -> float:
        return float(self.support @ self.pmf(theta))

    def lower_tail(self, x: int, theta: float) -> float:
        """P(X <= x)."""
        return float(self.pmf(theta)[: x - self.lo + 1].sum())

    def upper_tail(self, x: int, theta: float) -> float:
        """P(X >= x)."""
        return float(self.pmf(theta)[x - self.lo:].sum())


def _root_in_log(fun, increasing: bool) -> float:
    """``exp`` of the root of a monotone ``fun(theta)``, bracketing outwards from 0 by doubling."""
    lo, hi = -1.0, 1.0
    for _ in range(12):          # |theta| up to 4096: odds ratios far beyond any double's reach
        f_lo, f_hi = fun(lo), fun(hi)
        if (f_lo <= 0 <= f_hi) if increasing else (f_lo >= 0 >= f_hi):
            break
        lo, hi = 2 * lo, 2 * hi
    return math.exp(optimize.brentq(fun, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps, maxiter=500))


def conditional_odds_ratio(table, conf_level: float = 0.95) -> OddsRatio:
    """Conditional MLE odds ratio ``(a/b)/(c/d)`` of ``[[a, b], [c, d]]`` with its exact CI.

    As R's ``fisher.test``: the estimate solves E[X; ncp] = a under Fisher's noncentral hypergeometric
    distribution of the top-left cell given the margins; the two-sided CI solves P(X >= a; ncp_L) = α/2 and
    P(X <= a; ncp_U) = α/2. R's ``uniroot`` stops at a tolerance of about 1e-4; the roots here are solved to
    machine precision (as SciPy's ``odds_ratio(kind="conditional")``, which the tests use as a second oracle).
    Infinite values (a zero cell) are returned as ``None`` (JSON has no infinity); a zero margin gives ``None``
    throughout.
    """
    x = _as_counts(table)
    if x.shape != (2, 2):
        raise ValueError("the odds ratio needs a 2x2 table")
    if np.any(x.sum(axis=0) == 0) or np.any(x.sum(axis=1) == 0):
        return OddsRatio(None, None, None, conf_level)
    m, n, k, a = int(x[:, 0].sum()), int(x[:, 1].sum()), int(x[0].sum()), int(x[0, 0])
    dist = _NoncentralHypergeometric(m, n, k)
    alpha = (1 - conf_level) / 2
    if a == dist.lo:
        estimate, low = 0.0, 0.0
    else:
        estimate = _root_in_log(lambda t: dist.mean(t) - a, increasing=True)
        low = _root_in_log(lambda t: dist.upper_tail(a, t) - alpha, increasing=True)
    if a == dist.hi:
        estimate, high = (math.inf if a != dist.lo else estimate), math.inf
    else:
        high = _root_in_log(lambda t: dist.lower_tail(a, t) - alpha, increasing=False)
    return OddsRatio(finite_or_none(estimate), finite_or_none(low), finite_or_none(high), conf_level)
