"""Kaplan–Meier estimates and the log-rank test, computed as R's ``survival`` package computes them.

* :func:`kaplan_meier` — ``survfit(Surv(time, status) ~ 1)``: one row per distinct time (event or censoring),
  Greenwood variance, confidence intervals by R's ``survfit_confint`` for ``conf.type`` "log" (R's default:
  ``exp(log S ± z·se(log S))``, upper bound capped at 1), "log-log" or "plain".
* :meth:`KaplanMeier.at` — ``summary(fit, times = ..., extend = TRUE)``: numbers at risk, events since the previous
  requested time, survival and CI at the requested times.
* :meth:`KaplanMeier.median` — the median and its CI as ``print(fit)`` / ``summary(fit)$table`` show them
  (survival's ``survmean``: the first time with S ≤ 0.5; if S is exactly 0.5 there and the curve drops later,
  the midpoint to the time of that drop).
* :func:`logrank_test` — ``survdiff(Surv(time, status) ~ group)`` (ρ = 0).

Written by hand (rather than lifelines' ``KaplanMeierFitter``, whose intervals are log-log "exponential
Greenwood" only) so that every number can be matched with R line by line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats

from ildstudy._json import finite_or_none

ConfType = Literal["log", "log-log", "plain"]
KM_COLUMNS = ("time", "n_risk", "n_event", "n_censor", "survival", "std_err", "ci_low", "ci_high")
AT_COLUMNS = ("time", "n_risk", "n_event", "survival", "std_err", "ci_low", "ci_high")
_TOL = math.sqrt(np.finfo(float).eps)


def _check_conf(conf_type: str, conf_level: float) -> float:
    if conf_type not in get_args(ConfType):
        raise ValueError(f"conf_type must be one of {get_args(ConfType)}, got {conf_type!r}")
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
    return float(stats.norm.ppf(1 - (1 - conf_level) / 2))


def confidence_limits(surv: np.ndarray, se_log: np.ndarray, conf_type: ConfType, conf_level: float):
    """Pointwise limits as R's ``survfit_confint(p, se, logse = TRUE, conf.type, conf.int)``.

    ``se_log`` is the standard error of log S (survfit's ``std.err``). Returns ``(lower, upper)`` arrays with NaN
    where R gives NA (S = 0 for "log"; S = 0 or 1 for "log-log").
    """
    z = _check_conf(conf_type, conf_level)
    p = np.asarray(surv, dtype=float)
    se = np.asarray(se_log, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if conf_type == "plain":
            half = se * p * z
            return np.maximum(p - half, 0.0), np.minimum(p + half, 1.0)  # NaN propagates, as R's pmax/pmin
        if conf_type == "log":
            xx = np.where(p == 0, np.nan, p)
            return np.exp(np.log(xx) - z * se), np.minimum(np.exp(np.log(xx) + z * se), 1.0)
        xx = np.where((p == 0) | (p == 1), np.nan, p)
        half = z * se / np.log(xx)
        return np.exp(-np.exp(np.log(-np.log(xx)) - half)), np.exp(-np.exp(np.log(-np.log(xx)) + half))


def _minmin(y: np.ndarray, x: np.ndarray) -> float | None:
    """survival's ``survmean`` median rule on a curve ``y`` over times ``x``."""
    keep = ~np.isnan(y) & (y < 0.5 + _TOL)
    if not keep.any():
        return None
    x, y = x[keep], y[keep]
    if abs(y[0] - 0.5) < _TOL and np.any(y < y[0]):
        return float((x[0] + x[np.argmax(y < y[0])]) / 2)
    return float(x[0])


@dataclass(frozen=True, slots=True)
class KaplanMeier:
    """A Kaplan–Meier curve (one group).

    Attributes
    ----------
    n : int
        Patients.
    table : pandas.DataFrame, shape (n_times, 8)
        One row per distinct time: ``time``, ``n_risk``, ``n_event``, ``n_censor``, ``survival``, ``std_err``
        (Greenwood SE of S, as ``summary(fit)$std.err``), ``ci_low``, ``ci_high`` (NaN where R gives NA).
    se_log : numpy.ndarray, shape (n_times,)
        SE of log S (survfit's ``fit$std.err``; inf once S = 0).
    conf_type : {"log", "log-log", "plain"}
    conf_level : float
    """

    n: int
    table: pd.DataFrame = field(repr=False)
    se_log: np.ndarray = field(repr=False)
    conf_type: ConfType = "log"
    conf_level: float = 0.95

    def at(self, times) -> pd.DataFrame:
        """Survival at ``times``, as ``summary(fit, times = times, extend = TRUE)``.

        Returns
        -------
        pandas.DataFrame, shape (len(times), 7)
            ``time``, ``n_risk`` (patients with time ≥ t), ``n_event`` (events after the previous requested time
            and up to t), ``survival``, ``std_err``, ``ci_low``, ``ci_high`` (carried forward from the last
            distinct time ≤ t; before the first time S = 1, SE 0 and limits (1, 1), as R's ``survfit0`` start).
        """
        times = np.asarray(sorted(float(t) for t in times))
        t = self.table["time"].to_numpy()
        events = self.table["n_event"].to_numpy()
        n_risk_at = self.table["n_risk"].to_numpy()
        rows, prev = [], -np.inf
        for tt in times:
            idx = np.searchsorted(t, tt, side="right") - 1
            later = np.searchsorted(t, tt, side="left")
            n_risk = int(n_risk_at[later]) if later < len(t) else 0
            n_event = int(events[(t > prev) & (t <= tt)].sum())
            if idx < 0:  # before the first time: survfit0's starting row, S = 1 with limits (1, 1) for any type
                surv, std_err, lo, hi = 1.0, 0.0, 1.0, 1.0
            else:
                row = self.table.iloc[idx]
                surv, std_err, lo, hi = (float(row["survival"]), float(row["std_err"]), float(row["ci_low"]),
                                         float(row["ci_high"]))
            rows.append({"time": float(tt), "n_risk": n_risk, "n_event": n_event, "survival": surv,
                         "std_err": std_err, "ci_low": lo, "ci_high": hi})
            prev = tt
        return pd.DataFrame(rows, columns=list(AT_COLUMNS))

    def median(self) -> dict[str, float | None]:
        """``{"median", "ci_low", "ci_high"}`` as ``summary(fit)$table`` (``None`` when not reached)."""
        t = self.table["time"].to_numpy()
        return {"median": _minmin(self.table["survival"].to_numpy(), t),
                "ci_low": _minmin(self.table["ci_low"].to_numpy(), t),
                "ci_high": _minmin(self.table["ci_high"].to_numpy(), t)}


def _check_times(time, event) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time, dtype=float)
    e = np.asarray(event)
    if t.ndim != 1 or e.shape != t.shape:
        raise ValueError("time and event must be 1-D arrays of the same length")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be finite and non-negative")
    if e.dtype != bool:
        if not set(np.unique(e).tolist()) <= {0, 1}:
            raise ValueError("event must be boolean (or 0/1)")
        e = e.astype(bool)
    return t, e


def kaplan_meier(time, event, conf_type: ConfType = "log", conf_level: float = 0.95) -> KaplanMeier:
    """Kaplan–Meier estimate of one group, as ``survfit(Surv(time, event) ~ 1, conf.type = conf_type)``.

    Parameters
    ----------
    time : array_like, shape (n,)
        Follow-up times (≥ 0).
    event : array_like of bool, shape (n,)
        True for an event, False for censoring.
    conf_type : {"log", "log-log", "plain"}
        Interval type; "log" is R's default.
    conf_level : float
        Interval level (0.95).

    Returns
    -------
    KaplanMeier

    Examples
    --------
    >>> km = kaplan_meier([1, 2, 2, 3], [True, True, False, True])
    >>> km.table["survival"].round(4).tolist()
    [0.75, 0.5, 0.0]
    """
    t, e = _check_times(time, event)
    _check_conf(conf_type, conf_level)
    if len(t) == 0:
        empty = pd.DataFrame(columns=list(KM_COLUMNS), dtype=float)
        return KaplanMeier(0, empty, np.zeros(0), conf_type, conf_level)
    uniq, inverse = np.unique(t, return_inverse=True)
    n_event = np.bincount(inverse, weights=e.astype(float), minlength=len(uniq))
    n_total = np.bincount(inverse, minlength=len(uniq)).astype(float)
    n_censor = n_total - n_event
    n_risk = len(t) - np.concatenate([[0.0], np.cumsum(n_total)[:-1]])
    surv = np.cumprod(1.0 - n_event / n_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        inc = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)
    se_log = np.sqrt(np.cumsum(inc))
    with np.errstate(invalid="ignore"):
        std_err = surv * se_log
    lo, hi = confidence_limits(surv, se_log, conf_type, conf_level)
    table = pd.DataFrame({"time": uniq, "n_risk": n_risk.astype(int), "n_event": n_event.astype(int),
                          "n_censor": n_censor.astype(int), "survival": surv, "std_err": std_err, "ci_low": lo,
                          "ci_high": hi}, columns=list(KM_COLUMNS))
    return KaplanMeier(len(t), table, se_log, conf_type, conf_level)


@dataclass(frozen=True, slots=True)
class LogRankResult:
    """The log-rank test (``survdiff``, ρ = 0).

    Attributes
    ----------
    chisq : float or None
        χ² statistic; ``None`` without any event (R returns 0 with p = 1 there; no test is reported instead).
    df : int
        Groups − 1.
    p : float or None
    observed, expected : dict
        Events observed and expected per group.
    """

    chisq: float | None
    df: int
    p: float | None
    observed: dict[str, float]
    expected: dict[str, float]

    def to_dict(self) -> dict:
        return {"test": "Log-rank", "chisq": finite_or_none(self.chisq), "df": self.df, "p": finite_or_none(self.p),
                "observed": {k: float(v) for k, v in self.observed.items()},
                "expected": {k: float(v) for k, v in self.expected.items()}}


def logrank_test(time, event, group, groups: list[str] | None = None) -> LogRankResult:
    """Log-rank test of equal survival across groups, as R's ``survdiff(Surv(time, event) ~ group)``.

    Parameters
    ----------
    time, event : array_like, shape (n,)
        Follow-up times and event indicators.
    group : array_like, shape (n,)
        Group labels.
    groups : list of str, optional
        Group order in ``observed``/``expected`` (default: sorted labels). Every label must be listed.

    Returns
    -------
    LogRankResult
    """
    t, e = _check_times(time, event)
    g = np.asarray(group).astype(str)
    groups = sorted(set(g.tolist())) if groups is None else [str(x) for x in groups]
    if not set(g.tolist()) <= set(groups):
        raise ValueError(f"group has labels outside {groups}")
    k = len(groups)
    event_times = np.unique(t[e])
    n_g = np.empty((k, len(event_times)))   # at risk just before each event time, per group
    d_g = np.empty((k, len(event_times)))   # events at each event time, per group
    for j, x in enumerate(groups):
        tg = np.sort(t[g == x])
        n_g[j] = len(tg) - np.searchsorted(tg, event_times, side="left")
        te = np.sort(t[(g == x) & e])
        d_g[j] = np.searchsorted(te, event_times, side="right") - np.searchsorted(te, event_times, side="left")
    n, d = n_g.sum(axis=0), d_g.sum(axis=0)
    obs = d_g.sum(axis=1)
    exp = (n_g * d / n).sum(axis=1)
    var = np.zeros((k, k))
    informative = n > 1
    if informative.any():
        d_i, n_i = d[informative], n[informative]
        w = d_i * (n_i - d_i) / (n_i - 1)
        frac = n_g[:, informative] / n[informative]
        var = np.diag((w * frac).sum(axis=1)) - (w * frac) @ frac.T
    diff = (obs - exp)[:-1]
    v = var[:-1, :-1]
    observed = dict(zip(groups, obs.tolist()))
    expected = dict(zip(groups, exp.tolist()))
    if k < 2 or len(event_times) == 0 or np.linalg.matrix_rank(v) < k - 1:
        return LogRankResult(None, k - 1, None, observed, expected)
    chisq = float(diff @ np.linalg.solve(v, diff))
    return LogRankResult(chisq, k - 1, float(stats.chi2.sf(chisq, k - 1)), observed, expected)
