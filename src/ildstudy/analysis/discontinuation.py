"""Discontinuation of the arm drug: Kaplan–Meier by arm, log-rank test and Cox hazard ratio.

Two endpoints from one table of times: **any reason** (every stop is an event) and **adverse events alone**
(stops for ``reason == "adverse_event"`` are events; stops for other reasons are censored at the stop).
Follow-up must already be censored at the data cut or the protocol's maximum (60 months) by the caller.

* Kaplan–Meier per arm with Greenwood SEs and R's default "log" interval (:mod:`ildstudy.analysis.kaplan_meier`),
  the numbers at risk / survival at the report months (``summary(fit, times, extend = TRUE)``) and the median.
* Log-rank p as ``survdiff``.
* Cox hazard ratio, arm versus reference (:func:`ildstudy.analysis.cox.efron_cox`: Efron ties, R's ``coxph`` default),
  with the Wald CI ``exp(β ± z·SE)`` and Wald p (``summary(coxph(...))``'s ``Pr(>|z|)``). When an arm has no
  event the partial-likelihood estimate is infinite (R warns and prints a huge β); the hazard ratio is then
  reported as ``None``.
* More than two arms (the reference last): the log-rank test has k − 1 df, and the Cox model has one indicator
  per non-reference arm (R's ``coxph(Surv(months, event) ~ arm)`` with the reference as first level), giving one
  hazard ratio per arm versus the reference (:attr:`EndpointResult.cox_by_arm`); when any arm has no event all
  are ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ildstudy._json import finite_or_none, frame_records
from ildstudy.analysis.cox import efron_cox
from ildstudy.analysis.kaplan_meier import ConfType, LogRankResult, kaplan_meier, logrank_test

REPORT_MONTHS = (0, 12, 24, 36, 48, 60)
AE_REASON = "adverse_event"


@dataclass(frozen=True, slots=True)
class CoxResult:
    """Cox proportional-hazards fit with one term: arm (1) versus reference (0).

    Attributes
    ----------
    term : str
        R's name of the coefficient, e.g. "armAZA".
    coef, se, z, p : float
        log hazard ratio, its SE, Wald z and two-sided p.
    hazard_ratio, ci_low, ci_high : float
        ``exp(coef)`` and ``exp(coef ± z_{1−α/2}·se)``.
    loglik_null, loglik : float
        Partial log-likelihood at β = 0 and at the estimate (R's ``fit$loglik``).
    n, n_events : int
    converged : bool
        False if Newton–Raphson did not converge (:attr:`ildstudy.analysis.cox.CoxFit.converged`).
    ties : str
        "efron".
    """

    term: str
    coef: float
    se: float
    z: float
    p: float
    hazard_ratio: float
    ci_low: float
    ci_high: float
    loglik_null: float
    loglik: float
    n: int
    n_events: int
    converged: bool = True
    ties: str = "efron"
    conf_level: float = 0.95

    def to_dict(self) -> dict:
        """``{estimate, ci_low, ci_high, p}`` (results.json's ``cox_hr``) plus ``term, coef, se, z, ...``."""
        return {"estimate": finite_or_none(self.hazard_ratio), "ci_low": finite_or_none(self.ci_low),
                "ci_high": finite_or_none(self.ci_high), "p": finite_or_none(self.p), "term": self.term,
                "coef": finite_or_none(self.coef), "se": finite_or_none(self.se), "z": finite_or_none(self.z),
                "loglik_null": finite_or_none(self.loglik_null), "loglik": finite_or_none(self.loglik),
                "n": self.n, "n_events": self.n_events, "converged": self.converged, "ties": self.ties,
                "conf_level": self.conf_level,
                "method": "Cox PH (Efron ties), Wald CI and p"}


@dataclass(frozen=True, slots=True)
class EndpointResult:
    """One discontinuation endpoint.

    Attributes
    ----------
    endpoint : str
        "any_reason" or "adverse_event".
    arms : tuple of str
        Arm order (compared arms, reference last).
    reference_arm : str
    km : pandas.DataFrame
        Kaplan–Meier rows, arm by arm: ``arm``, ``time``, ``n_risk``, ``n_event``, ``n_censor``, ``survival``,
        ``std_err`` (SE of S), ``ci_low``, ``ci_high``.
    at_times : pandas.DataFrame
        The report table: ``arm``, ``time`` (each report month), ``n_risk``, ``n_event`` (since the previous
        report month), ``survival``, ``std_err``, ``ci_low``, ``ci_high``.
    medians : pandas.DataFrame, shape (2, 5)
        ``arm``, ``n``, ``events``, ``median``, ``ci_low``, ``ci_high`` (months; NaN when not reached).
    logrank : LogRankResult
    cox : CoxResult or None
        Two arms: the hazard ratio; ``None`` when an arm has no event (infinite estimate), and always ``None``
        with more than two arms (see ``cox_by_arm``).
    conf_type : str
    conf_level : float
    cox_by_arm : tuple of CoxResult
        One hazard ratio per non-reference arm, in arm order, from one Cox model (two arms: ``(cox,)``); empty
        when not estimable.
    """

    endpoint: str
    arms: tuple[str, ...]
    reference_arm: str
    km: pd.DataFrame = field(repr=False)
    at_times: pd.DataFrame = field(repr=False)
    medians: pd.DataFrame = field(repr=False)
    logrank: LogRankResult = field(repr=False)
    cox: CoxResult | None = None
    conf_type: ConfType = "log"
    conf_level: float = 0.95
    cox_by_arm: tuple[CoxResult, ...] = ()

    def to_dict(self) -> dict:
        """``{endpoint, km: [...], at_times: [...], medians: [...], logrank_p, logrank: {...}, cox_hr}``; with
        more than two arms ``cox_hr`` is null and ``cox_hrs`` lists one hazard ratio per non-reference arm."""
        out = {"endpoint": self.endpoint, "arms": list(self.arms), "reference_arm": self.reference_arm,
                "conf_type": self.conf_type, "conf_level": self.conf_level,
                "km": frame_records(self.km), "at_times": frame_records(self.at_times),
                "medians": frame_records(self.medians), "logrank_p": finite_or_none(self.logrank.p),
                "logrank": self.logrank.to_dict(), "cox_hr": None if self.cox is None else self.cox.to_dict()}
        if len(self.arms) > 2:
            out["cox_hrs"] = [c.to_dict() for c in self.cox_by_arm]
        return out


@dataclass(frozen=True, slots=True)
class DiscontinuationResult:
    """Both endpoints: ``any_reason`` (primary) and ``adverse_event``."""

    any_reason: EndpointResult
    adverse_event: EndpointResult

    def to_dict(self) -> dict:
        """results.json's ``discontinuation``: the any-reason endpoint's keys (``km``, ``logrank_p``,
        ``cox_hr``, ...) at top level, and the adverse-event endpoint under ``adverse_event``."""
        out = self.any_reason.to_dict()
        out["adverse_event"] = self.adverse_event.to_dict()
        return out

    @property
    def endpoints(self) -> tuple[EndpointResult, EndpointResult]:
        """``(any_reason, adverse_event)``."""
        return (self.any_reason, self.adverse_event)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Exports to ``tables/``: ``discontinuation_at_months`` (:meth:`at_times_table`)."""
        return {"discontinuation_at_months": self.at_times_table()}

    def km_table(self) -> pd.DataFrame:
        """Both endpoints' Kaplan–Meier rows stacked, with a first column ``analysis`` ("any_reason",
        "adverse_event")."""
        return pd.concat([e.km.assign(analysis=e.endpoint) for e in (self.any_reason, self.adverse_event)],
                         ignore_index=True)[["analysis", *self.any_reason.km.columns]]

    def at_times_table(self) -> pd.DataFrame:
        """Both endpoints' report-month tables stacked, with a first column ``analysis``."""
        return pd.concat([e.at_times.assign(analysis=e.endpoint) for e in (self.any_reason, self.adverse_event)],
                         ignore_index=True)[["analysis", *self.any_reason.at_times.columns]]


def cox_two_arms(months: np.ndarray, event: np.ndarray, is_arm: np.ndarray, term: str,
                 conf_level: float = 0.95) -> CoxResult | None:
    """Cox model ``Surv(months, event) ~ arm`` with Efron ties (:func:`ildstudy.analysis.cox.efron_cox`);
    ``None`` if an arm has no event.

    Parameters
    ----------
    months, event, is_arm : numpy.ndarray, shape (n,)
        Times, event indicators, and 1 for the compared arm / 0 for the reference.
    term : str
        Name of the coefficient (R's "armAZA").
    """
    event = event.astype(bool)
    is_arm = is_arm.astype(bool)
    if not event[is_arm].any() or not event[~is_arm].any():
        return None
    return _cox_results(months, event, is_arm[:, None], [term], conf_level)[0]


def cox_arms(months: np.ndarray, event: np.ndarray, arm: np.ndarray, compared: list[str],
             conf_level: float = 0.95) -> tuple[CoxResult, ...]:
    """Cox model ``Surv(months, event) ~ arm`` with one indicator per compared arm (the reference is the rest),
    Efron ties; one :class:`CoxResult` per compared arm (term ``arm<ARM>``, the model's shared log-likelihoods),
    or ``()`` when some arm (or the reference) has no event.

    Parameters
    ----------
    months, event, arm : numpy.ndarray, shape (n,)
        Times, event indicators, arm labels.
    compared : list of str
        The non-reference arms, in order.
    """
    event = event.astype(bool)
    groups = [arm == a for a in compared]
    reference = ~np.logical_or.reduce(groups)
    if not all(event[g].any() for g in (*groups, reference)):
        return ()
    return _cox_results(months, event, np.column_stack(groups), [f"arm{a}" for a in compared], conf_level)


def _cox_results(months, event, x, terms: list[str], conf_level: float) -> tuple[CoxResult, ...]:
    fit = efron_cox(np.asarray(months, dtype=float), event, x.astype(float))
    zq = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    out = []
    for coef, se, term in zip(fit.coef.tolist(), fit.se.tolist(), terms):
        z = coef / se
        out.append(CoxResult(term=term, coef=coef, se=se, z=z, p=float(2 * stats.norm.sf(abs(z))),
                             hazard_ratio=math.exp(coef), ci_low=math.exp(coef - zq * se),
                             ci_high=math.exp(coef + zq * se), loglik_null=fit.loglik_null, loglik=fit.loglik,
                             n=len(event), n_events=int(event.sum()), converged=fit.converged,
                             conf_level=conf_level))
    return tuple(out)


def _endpoint(name: str, data: pd.DataFrame, event: np.ndarray, order: list[str], reference_arm: str,
              report_months, conf_type: ConfType, conf_level: float) -> EndpointResult:
    km_frames, at_frames, medians = [], [], []
    months = data["months"].to_numpy(dtype=float)
    arm = data["arm"].to_numpy()
    for a in order:
        sel = arm == a
        km = kaplan_meier(months[sel], event[sel], conf_type, conf_level)
        km_frames.append(km.table.assign(arm=a))
        at_frames.append(km.at(report_months).assign(arm=a))
        medians.append({"arm": a, "n": int(sel.sum()), "events": int(event[sel].sum()), **km.median()})
    km_cols = ["arm", "time", "n_risk", "n_event", "n_censor", "survival", "std_err", "ci_low", "ci_high"]
    at_cols = ["arm", "time", "n_risk", "n_event", "survival", "std_err", "ci_low", "ci_high"]
    km_table = pd.concat(km_frames, ignore_index=True)[km_cols]
    at_table = pd.concat(at_frames, ignore_index=True)[at_cols]
    med = pd.DataFrame(medians, columns=["arm", "n", "events", "median", "ci_low", "ci_high"])
    med[["median", "ci_low", "ci_high"]] = med[["median", "ci_low", "ci_high"]].astype(float)
    logrank = logrank_test(months, event, arm, groups=order)
    if len(order) == 2:
        cox = cox_two_arms(months, event, arm == order[0], f"arm{order[0]}", conf_level)
        by_arm = () if cox is None else (cox,)
    else:
        cox, by_arm = None, cox_arms(months, event, arm, order[:-1], conf_level)
    return EndpointResult(name, tuple(order), reference_arm, km_table, at_table, med, logrank, cox, conf_type,
                          conf_level, by_arm)


def event_endpoint(name: str, data: pd.DataFrame, event: np.ndarray, order: list[str], reference_arm: str,
                   report_months=REPORT_MONTHS, conf_type: ConfType = "log",
                   conf_level: float = 0.95) -> EndpointResult:
    """Kaplan–Meier per arm, log-rank and Cox of one time-to-event endpoint (also used for progression).

    Parameters
    ----------
    name : str
        The endpoint's name.
    data : pandas.DataFrame, shape (n, 2+)
        ``arm`` (each one of ``order``) and ``months`` (≥ 0) per patient.
    event : numpy.ndarray of bool, shape (n,)
    order : list of str
        Arms, compared arms first, the reference last.
    reference_arm : str
    """
    return _endpoint(name, data, np.asarray(event, dtype=bool), list(order), reference_arm, tuple(report_months),
                     conf_type, conf_level)


def discontinuation(times: pd.DataFrame, arms: list[str], reference_arm: str, *,
                    report_months=REPORT_MONTHS, conf_type: ConfType = "log",
                    conf_level: float = 0.95) -> DiscontinuationResult:
    """Time to stopping the arm drug, for any reason and for adverse events alone.

    Parameters
    ----------
    times : pandas.DataFrame, shape (n_patients, 5)
        One row per cohort patient: ``patient_id`` (unique), ``arm`` (one of ``arms``), ``months`` (from index
        to the stop, or to censoring at the end of follow-up; ≥ 0), ``event`` (bool: the arm drug was stopped
        at ``months``), ``reason`` (the stop reason for events — ``adverse_event``, ``inefficacy``,
        ``remission``, ``other``, ``unknown``; ignored for censored rows).
    arms : list of str, length 2 or more
        The arms (e.g. ``["AZA", "MMF"]``).
    reference_arm : str
        The reference (e.g. "MMF"); each hazard ratio is another arm versus it.
    report_months : sequence of float
        Times of the report table (0, 12, 24, 36, 48, 60).
    conf_type : {"log", "log-log", "plain"}
        Kaplan–Meier interval ("log", R's ``survfit`` default).
    conf_level : float
        Level of every interval (0.95).

    Returns
    -------
    DiscontinuationResult

    Raises
    ------
    ValueError
        Missing columns, unknown arms, duplicated patients, negative or missing times, non-boolean events.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"patient_id": list("abcdef"), "arm": ["AZA"] * 3 + ["MMF"] * 3,
    ...                   "months": [3.0, 10.0, 60.0, 12.0, 40.0, 60.0],
    ...                   "event": [True, True, False, True, False, False],
    ...                   "reason": ["adverse_event", "inefficacy", None, "adverse_event", None, None]})
    >>> res = discontinuation(t, ["AZA", "MMF"], "MMF")
    >>> res.any_reason.at_times.query("time == 12")[["arm", "n_risk", "survival"]].round(4).values.tolist()
    [['AZA', 1, 0.3333], ['MMF', 3, 0.6667]]
    """
    arms = [str(a) for a in arms]
    if len(arms) < 2 or len(set(arms)) != len(arms) or reference_arm not in arms:
        raise ValueError(f"arms must be two or more distinct arms including reference_arm {reference_arm!r}, "
                         f"got {arms}")
    order = [a for a in arms if a != reference_arm] + [reference_arm]
    absent = [c for c in ("patient_id", "arm", "months", "event", "reason") if c not in times.columns]
    if absent:
        raise ValueError(f"times has no column(s) {absent}")
    data = times[["patient_id", "arm", "months", "event", "reason"]].copy()
    data["arm"] = data["arm"].astype("string")
    unknown = sorted(set(data["arm"].fillna("<missing>")) - set(arms))
    if unknown:
        raise ValueError(f"times.arm has values that are not arms {arms}: {unknown}")
    if data["patient_id"].duplicated().any():
        raise ValueError("times.patient_id must be unique")
    months = pd.to_numeric(data["months"], errors="coerce")
    if months.isna().any() or (months < 0).any() or not np.isfinite(months.to_numpy(dtype=float)).all():
        raise ValueError("times.months must be present, finite and >= 0")
    data["months"] = months.astype(float)
    ev = data["event"]
    if ev.isna().any() or not set(pd.unique(ev)) <= {True, False, 0, 1}:
        raise ValueError("times.event must be true/false for every patient")
    any_event = ev.astype(bool).to_numpy()
    ae_event = any_event & (data["reason"].astype("string").fillna("").str.strip().str.lower() == AE_REASON).to_numpy()
    common = {"order": order, "reference_arm": reference_arm, "report_months": tuple(report_months),
              "conf_type": conf_type, "conf_level": conf_level}
    return DiscontinuationResult(
        any_reason=_endpoint("any_reason", data, any_event, **common),
        adverse_event=_endpoint("adverse_event", data, ae_event, **common))
