"""Multiplicity adjustment of a family of t tests, as emmeans' ``summary(..., adjust = )`` does it.

Rules copied from emmeans 1.8.4, ``R/summary.R``:

* p values (``.adj.p.value``): ``"holm"`` and ``"bonferroni"`` are R's ``p.adjust(p, method, n = k)``;
  ``"sidak"`` is ``1 - (1 - p)^k``; ``"mvt"`` is the single-step multivariate-t adjustment
  ``1 - pmvt(-|t_i|, |t_i|, df = fix.df(df_i), corr)``: **each contrast uses its own df**, made an integer
  by ``.fix.df`` (``max(1, d)``, then ``floor(d + 0.25)``; infinite or above 9999 becomes 0, which
  mvtnorm treats as the normal distribution), and ``corr`` is the correlation of the whole family
  (``cov2cor(vcov(object))``, i.e. of ``L V L'``). Missing df are taken as infinite.
* A family of one is never adjusted (emmeans forces ``adjust = "none"``); so with ``by`` groups of one
  contrast each, emmeans adjusts nothing unless the family is widened (``update(ct, by = NULL)``).
* Simultaneous intervals (``.adj.critval``): ``"sidak"`` ``qt(1 - (1 - level^(1/k))/2, df)``,
  ``"bonferroni"`` ``qt(1 - (1 - level)/(2k), df)``; ``"holm"`` has no interval of its own and emmeans uses
  Bonferroni's; ``"mvt"`` is ``qmvt(level, tail = "both.tails", df = fix.df(df_i), corr)`` per contrast
  (once when all df are equal).

The multivariate-t probabilities are computed here by randomised quasi-Monte Carlo over the
Genz–Bretz separation of variables (:func:`mvt_box_probability`), which also handles singular
correlations (pairwise contrasts of three or more levels, or contrasts that are multiples of one
another, which ``scipy.stats.multivariate_t`` does not). mvtnorm's answer is random too (its default
``GenzBretz(abseps = 0.001)``); with a fixed generator ours is reproducible; the integration error is
about 1e-5 at the default number of points, and the two agree to 2e-3 in p (``tests/test_lmm_emmeans_options.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats
from scipy.stats import qmc

from ildstudy.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.lmm.emmeans import Contrasts

AdjustMethod = Literal["none", "holm", "bonferroni", "sidak", "mvt"]
ADJUST_METHODS: tuple[str, ...] = get_args(AdjustMethod)
MVT_SEED = 20190401
"""Seed of the default generator for the multivariate-t integration (results are reproducible)."""
MVT_POINTS = 2**16
"""Scrambled Sobol' points of the multivariate-t integration (integration error about 1e-5)."""


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A multiplicity adjustment over one family of k tests.

    Attributes
    ----------
    method : str
        The method asked for.
    ci_method : str
        The method of the simultaneous intervals (``"bonferroni"`` for Holm, as emmeans; ``"none"`` for a
        family of one).
    family_size : int
        k.
    p_adjusted : ndarray, shape (k,)
    critical_value : ndarray, shape (k,)
        t quantile of each simultaneous interval: ``estimate +- critical_value * se``.
    df_used : ndarray, shape (k,)
        The df of each test (``fix.df`` integers for mvt, 0 meaning normal; as given otherwise).
    level : float
    """

    method: str
    ci_method: str
    family_size: int
    p_adjusted: np.ndarray
    critical_value: np.ndarray
    df_used: np.ndarray
    level: float


def fix_df(df: np.ndarray) -> np.ndarray:
    """emmeans' ``.fix.df``: the integer df handed to mvtnorm (0 = normal)."""
    d = np.asarray(df, dtype=np.float64).copy()
    d[np.isnan(d)] = np.inf
    d = np.where(d > 0, np.maximum(1.0, d), d)
    d = np.where(np.isinf(d) | (d > 9999), 0.0, d)
    return np.floor(d + 0.25)


def adjust_p(
    t: Sequence[float] | np.ndarray,
    df: Sequence[float] | np.ndarray,
    corr: np.ndarray | None = None,
    method: AdjustMethod = "none",
    *,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Two-sided p values of t ratios ``t`` adjusted over their family, as emmeans.

    Parameters
    ----------
    t, df : array_like, shape (k,)
        t ratios and their (Satterthwaite) df.
    corr : ndarray, shape (k, k), optional
        Correlation of the estimates; needed for ``"mvt"`` only.
    method : {"none", "holm", "bonferroni", "sidak", "mvt"}
    rng : numpy.random.Generator, optional
        For ``"mvt"``; default ``numpy.random.default_rng(MVT_SEED)``.

    Returns
    -------
    ndarray, shape (k,)

    Examples
    --------
    >>> adjust_p([2.5, 1.0], [30.0, 30.0], method="holm").round(4)
    array([0.0362, 0.3253])
    """
    t, df = _vectors(t, df)
    method = _check_method(method)
    p = 2.0 * scipy.stats.t.sf(np.abs(t), np.where(np.isnan(df), np.inf, df))
    k = len(t)
    if k <= 1 or method == "none":
        return p
    if method == "bonferroni":
        return np.minimum(1.0, k * p)
    if method == "holm":
        order = np.argsort(p, kind="stable")
        scaled = np.maximum.accumulate((k - np.arange(k)) * p[order])
        out = np.empty(k)
        out[order] = np.minimum(1.0, scaled)
        return out
    if method == "sidak":
        return 1.0 - (1.0 - p) ** k
    corr = _correlation(corr, k)
    dfi = fix_df(df)
    return np.array([
        1.0 - mvt_box_probability(abs(t[i]), corr, int(dfi[i]), rng=_rng(rng)) for i in range(k)
    ])


def critical_values(
    df: Sequence[float] | np.ndarray,
    corr: np.ndarray | None = None,
    method: AdjustMethod = "none",
    level: float = 0.95,
    *,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """t quantiles of simultaneous two-sided intervals over the family, as emmeans' ``.adj.critval``."""
    df = _vectors(df)[0]
    method = _check_method(method)
    if not 0.5 < level < 1:
        raise ModelError(f"level must be between 0.5 and 1, got {level!r}")
    k = len(df)
    d = np.where(np.isnan(df), np.inf, df)
    method = _ci_method(method, k)
    if method == "none":
        return scipy.stats.t.ppf(1 - (1 - level) / 2, d)
    if method == "bonferroni":
        return scipy.stats.t.ppf(1 - (1 - level) / k / 2, d)
    if method == "sidak":
        return scipy.stats.t.ppf(1 - (1 - level ** (1 / k)) / 2, d)
    corr = _correlation(corr, k)
    dfi = fix_df(d)
    cache: dict[int, float] = {}
    for v in dfi.astype(int):
        if v not in cache:
            cache[v] = mvt_quantile(level, corr, v, rng=_rng(rng))
    return np.array([cache[v] for v in dfi.astype(int)])


def adjust_family(
    estimate: np.ndarray, se: np.ndarray, df: np.ndarray, cov: np.ndarray | None,
    method: AdjustMethod = "none", level: float = 0.95, *, rng: np.random.Generator | None = None,
) -> Adjustment:
    """p values and simultaneous-interval critical values of one family of estimates (t = estimate / se).

    ``cov`` is the family's covariance (``L V L'``); its correlation drives ``"mvt"``.
    """
    estimate, se, df = _vectors(estimate, se, df)
    corr = None
    if cov is not None:
        cov = np.asarray(cov, dtype=np.float64)
        sd = np.sqrt(np.diag(cov))
        corr = cov / np.outer(sd, sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = estimate / se
    method = _check_method(method)
    p = adjust_p(t, df, corr, method, rng=rng)
    cv = critical_values(df, corr, method, level, rng=rng)
    df_used = fix_df(df) if method == "mvt" and len(df) > 1 else df
    return Adjustment(method=method, ci_method=_ci_method(method, len(df)), family_size=len(df),
                      p_adjusted=p, critical_value=cv, df_used=df_used, level=level)


def adjust_contrasts(
    contrasts: Contrasts,
    method: AdjustMethod,
    rows: Sequence[int] | Sequence[bool] | np.ndarray | None = None,
    *,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """The contrasts' table with ``p_adjusted``, ``ci_low_adj``, ``ci_high_adj`` over one family.

    Parameters
    ----------
    contrasts : Contrasts
        From :func:`ildstudy.lmm.emmeans.contrasts` (``fit.contrast(...)``).
    method : {"none", "holm", "bonferroni", "sidak", "mvt"}
    rows : int positions or boolean mask, optional
        The family; default every row (emmeans' ``update(ct, by = NULL)``). Rows outside it get NaN.
    rng : numpy.random.Generator, optional
        For ``"mvt"``; default ``numpy.random.default_rng(MVT_SEED)``.

    Returns
    -------
    DataFrame
        A copy of ``contrasts.table`` with the three columns added; interval level ``contrasts.level``.
    """
    if contrasts.vcov is None:
        raise ModelError("these contrasts carry no covariance matrix; make them with fit.contrast(...)")
    table = contrasts.table
    m = len(table)
    if rows is None:
        index = np.arange(m)
    else:
        sel = np.asarray(rows)
        if sel.dtype == bool:
            if sel.shape != (m,):
                raise ModelError(f"rows: a boolean mask must have {m} entries, got {sel.shape[0]}")
            index = np.flatnonzero(sel)
        else:
            index = sel.astype(np.int64).ravel()
            if index.size and (index.min() < 0 or index.max() >= m or len(set(index)) != index.size):
                raise ModelError(f"rows must be distinct positions 0..{m - 1}; got {list(index)}")
    if index.size == 0:
        raise ModelError("rows selects no contrasts")
    est, se, df = (table[c].to_numpy(dtype=np.float64)[index] for c in ("estimate", "se", "df"))
    adj = adjust_family(est, se, df, contrasts.vcov[np.ix_(index, index)], method, contrasts.level, rng=rng)
    out = table.copy()
    for name, values in (("p_adjusted", adj.p_adjusted), ("ci_low_adj", est - adj.critical_value * se),
                         ("ci_high_adj", est + adj.critical_value * se)):
        column = np.full(m, np.nan)
        column[index] = values
        out[name] = column
    return out


def mvt_box_probability(
    c: float, corr: np.ndarray, df: int, *, rng: np.random.Generator | None = None,
    points: int = MVT_POINTS,
) -> float:
    """P(|T_j| <= c for all j) for T multivariate t (``df`` integer, 0 = normal) with correlation ``corr``.

    Genz–Bretz separation of variables on a pivoted, rank-revealing Cholesky factor (singular ``corr``
    allowed: a dependent row constrains the last variable it loads on), integrated by scrambled Sobol'
    points (``points``, a power of 2).
    """
    factor, last = _pivoted_factor(np.asarray(corr, dtype=np.float64))
    r = factor.shape[1]
    sobol = qmc.Sobol(d=r + (1 if df > 0 else 0), scramble=True, seed=_rng(rng))
    u = sobol.random(points)
    if df > 0:
        scale = np.sqrt(scipy.stats.chi2.ppf(np.clip(u[:, -1], 1e-300, 1 - 1e-16), df) / df)
    else:
        scale = np.ones(points)
    return min(1.0, max(0.0, float(np.mean(_separated(factor, last, c * scale, u[:, :r])))))


def mvt_quantile(level: float, corr: np.ndarray, df: int, *, rng: np.random.Generator | None = None) -> float:
    """c with ``mvt_box_probability(c, corr, df) = level`` (mvtnorm's ``qmvt(tail = "both.tails")``)."""
    k = corr.shape[0]
    d = np.inf if df == 0 else df
    lo = float(scipy.stats.t.ppf(1 - (1 - level) / 2, d))
    hi = float(scipy.stats.t.ppf(1 - (1 - level) / k / 2, d))
    seed = int(_rng(rng).integers(2**63))  # the same points at every c: a smooth, monotone function

    def gap(c: float) -> float:
        return mvt_box_probability(c, corr, df, rng=np.random.default_rng(seed)) - level

    if gap(lo) >= 0:
        return lo
    if gap(hi) <= 0:
        return hi
    return float(scipy.optimize.brentq(gap, lo, hi, xtol=1e-8))


def _separated(factor: np.ndarray, last: np.ndarray, bound: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Genz's integrand at each point: the product of the conditional interval probabilities."""
    n, r = u.shape
    z = np.zeros((n, r))
    value = np.ones(n)
    for m in range(r):
        lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
        for j in np.flatnonzero(last == m):
            shift = z[:, :m] @ factor[j, :m]
            a, b = (-bound - shift) / factor[j, m], (bound - shift) / factor[j, m]
            if factor[j, m] < 0:
                a, b = b, a
            lower, upper = np.maximum(lower, a), np.minimum(upper, b)
        pa, pb = scipy.stats.norm.cdf(lower), scipy.stats.norm.cdf(np.maximum(upper, lower))
        width = pb - pa
        value = value * width
        z[:, m] = scipy.stats.norm.ppf(np.clip(pa + u[:, m] * width, 1e-300, 1 - 1e-16))
    return value


def _pivoted_factor(corr: np.ndarray, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """A (k x r) with A A' = corr (rank r) from a pivoted Cholesky, and each row's last nonzero column."""
    k = corr.shape[0]
    if corr.shape != (k, k) or not np.all(np.isfinite(corr)):
        raise ModelError("the correlation matrix of the family must be a finite square matrix")
    residual = corr.copy()
    A = np.zeros((k, k))
    pivots: list[int] = []
    for m in range(k):
        remaining = [i for i in range(k) if i not in pivots]
        p = max(remaining, key=lambda i: residual[i, i])
        if residual[p, p] <= tol:
            break
        pivots.append(p)
        A[:, m] = residual[:, p] / np.sqrt(residual[p, p])
        A[pivots[:-1], m] = 0.0
        residual = residual - np.outer(A[:, m], A[:, m])
    r = len(pivots)
    A = A[:, :r]
    A[np.abs(A) < tol] = 0.0
    last = np.array([np.flatnonzero(row)[-1] if np.any(row) else -1 for row in A])
    if np.any(last < 0):
        raise ModelError("a contrast in the family has zero variance; the multivariate-t adjustment needs none")
    return A, last


def _ci_method(method: str, k: int) -> str:
    if k <= 1:
        return "none"
    return "bonferroni" if method == "holm" else method


def _check_method(method: str) -> str:
    if method not in ADJUST_METHODS:
        raise ModelError(f"adjust method must be one of {', '.join(map(repr, ADJUST_METHODS))}; got {method!r}")
    return method


def _correlation(corr: np.ndarray | None, k: int) -> np.ndarray:
    if corr is None:
        raise ModelError("the 'mvt' adjustment needs the correlation matrix of the family")
    corr = np.asarray(corr, dtype=np.float64)
    if corr.shape != (k, k):
        raise ModelError(f"corr must be {k} x {k} for {k} tests, got {corr.shape}")
    return corr


def _vectors(*arrays) -> list[np.ndarray]:
    out = [np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in arrays]
    if len({a.shape for a in out}) > 1 or out[0].ndim != 1:
        raise ModelError(f"t, df, estimates and SEs must be vectors of one length; got shapes {[a.shape for a in out]}")
    return out


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return np.random.default_rng(MVT_SEED) if rng is None else rng
