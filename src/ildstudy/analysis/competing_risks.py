"""Competing risks: Aalen–Johansen cumulative incidence, cause-specific Cox and Fine–Gray, as R computes them.

Input is one row per patient: a time and a cause code (0 = censored, 1, 2, ... = the first event that ended the
time at risk, e.g. 1 = stopped for an adverse event, 2 = stopped for another reason or switched drug — a switch is a
discontinuation event, not a censoring).

* :func:`aalen_johansen` — ``survfit(Surv(time, factor(cause)) ~ 1)`` (multi-state): at each distinct time the
  event-free probability ``S(t) = Π (1 − d/r)`` and the cumulative incidence ``F_k(t) = Σ S(s−)·d_k(s)/r(s)``.
  Standard errors are survfit's infinitesimal-jackknife (IJ) ones: ``var = Σ_i (∂F_k/∂w_i)²`` at unit weights,
  with the influence updated exactly through each time. Intervals by ``survfit_confint(p, se, logse = FALSE,
  conf.type)``: "log" (survfit's default) ``exp(log F ± z·se/F)`` with the upper limit capped at 1, "plain" or
  "log-log"; NaN where R gives NA (F = 0).
* :func:`cause_specific_cox` — ``coxph(Surv(time, cause == k) ~ arm)`` (other causes censored) with Efron ties, as
  in :mod:`ildstudy.analysis.discontinuation`.
* :func:`fine_gray` — the subdistribution hazard ratio: a weighted Cox partial likelihood in which a patient with
  a competing event stays in the risk set after it with weight ``G(t−)/G(T_i−)`` (``G`` = Kaplan–Meier of
  censoring). ``censoring_ties="finegray"`` orders events before censorings at a tie (``survival::finegray``; then
  ``coxph(Surv(fgstart, fgstop, fgstatus) ~ arm, weights = fgwt)`` is matched, Efron or Breslow ties);
  ``"crr"`` uses the ordinary censoring KM (``cmprsk::crr``, Breslow ties; coefficient only — crr's SE adds the
  censoring-estimation term of Fine & Gray (1999), which is not implemented). SEs: model-based (coxph's
  ``naive.var``) and robust sandwich clustered by patient (``coxph(... + cluster(id))``, crr-like).

Written by hand: lifelines has no Aalen–Johansen variance matching survfit and no Cox fit with time-varying
case weights (``CoxTimeVaryingFitter`` takes no weights), and there is no maintained Python Fine–Gray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats

from ildstudy.analysis._arms import two_arm_patients
from ildstudy._json import finite_or_none, frame_records
from ildstudy.analysis.discontinuation import CoxResult, cox_two_arms

ConfType = Literal["log", "log-log", "plain"]
Ties = Literal["efron", "breslow"]
CensoringTies = Literal["finegray", "crr"]
CIF_COLUMNS = ("time", "state", "n_risk", "n_event", "n_censor", "estimate", "std_err", "ci_low", "ci_high")
EVENT_FREE = "event_free"
_NEWTON_TOL = 1e-13
_MAX_ITER = 100


def _zq(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
    return float(stats.norm.ppf(1 - (1 - conf_level) / 2))


def _check(time, cause) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time, dtype=float)
    c = np.asarray(cause)
    if t.ndim != 1 or c.shape != t.shape:
        raise ValueError("time and cause must be 1-D arrays of the same length")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be finite and non-negative")
    ci = c.astype(float)
    if np.isnan(ci).any() or np.any(ci != np.round(ci)) or np.any(ci < 0):
        raise ValueError("cause must be integer codes >= 0 (0 = censored)")
    return t, ci.astype(int)


def confidence_limits(p, se, conf_type: ConfType, conf_level: float):
    """``survfit_confint(p, se, logse = FALSE, conf.type)``: limits for a probability from its SE."""
    if conf_type not in get_args(ConfType):
        raise ValueError(f"conf_type must be one of {get_args(ConfType)}, got {conf_type!r}")
    z = _zq(conf_level)
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_log = np.where(np.asarray(se) == 0, 0.0, np.asarray(se, dtype=float) / p)
        if conf_type == "plain":
            half = se_log * p * z
            return np.maximum(p - half, 0.0), np.minimum(p + half, 1.0)
        if conf_type == "log":
            xx = np.where(p == 0, np.nan, p)
            return np.exp(np.log(xx) - z * se_log), np.minimum(np.exp(np.log(xx) + z * se_log), 1.0)
        xx = np.where((p == 0) | (p == 1), np.nan, p)
        half = z * se_log / np.log(xx)
        return np.exp(-np.exp(np.log(-np.log(xx)) - half)), np.exp(-np.exp(np.log(-np.log(xx)) + half))


@dataclass(frozen=True, slots=True)
class CumulativeIncidence:
    """Aalen–Johansen estimate of one group.

    Attributes
    ----------
    n : int
    causes : tuple of int
        Cause codes (> 0) present in the data (or requested).
    table : pandas.DataFrame, shape (n_times · (1 + n_causes), 9)
        Long format, one row per distinct time and state: ``time``, ``state`` ("event_free" or the cause code
        as text), ``n_risk`` (at risk just before ``time``), ``n_event`` (events of that cause at ``time``; all
        causes for "event_free"), ``n_censor``, ``estimate`` (probability of being in the state), ``std_err``
        (IJ, as survfit's ``std.err``), ``ci_low``, ``ci_high``.
    conf_type, conf_level
    """

    n: int
    causes: tuple[int, ...]
    table: pd.DataFrame = field(repr=False)
    conf_type: ConfType = "log"
    conf_level: float = 0.95

    def cif(self, cause: int) -> pd.DataFrame:
        """Rows of one cause."""
        return self.table[self.table["state"] == str(cause)].reset_index(drop=True)

    def at(self, times, cause: int) -> pd.DataFrame:
        """``time, estimate, std_err, ci_low, ci_high`` of ``cause`` at ``times`` (step function carried forward;
        0 with SE 0 before the first time)."""
        tab = self.cif(cause)
        t = tab["time"].to_numpy()
        rows = []
        for tt in sorted(float(x) for x in times):
            i = np.searchsorted(t, tt, side="right") - 1
            if i < 0:
                rows.append({"time": tt, "estimate": 0.0, "std_err": 0.0, "ci_low": np.nan, "ci_high": np.nan})
            else:
                r = tab.iloc[i]
                rows.append({"time": tt, **{k: float(r[k]) for k in ("estimate", "std_err", "ci_low", "ci_high")}})
        return pd.DataFrame(rows, columns=["time", "estimate", "std_err", "ci_low", "ci_high"])

    def to_dict(self) -> dict:
        return {"n": self.n, "causes": list(self.causes), "conf_type": self.conf_type,
                "conf_level": self.conf_level, "variance": "infinitesimal jackknife (survfit)",
                "table": frame_records(self.table)}


def aalen_johansen(time, cause, causes=None, conf_type: ConfType = "log",
                   conf_level: float = 0.95) -> CumulativeIncidence:
    """Cumulative incidence of each cause, as ``survfit(Surv(time, factor(cause)) ~ 1)``.

    Parameters
    ----------
    time : array_like, shape (n,)
        Follow-up times (≥ 0).
    cause : array_like of int, shape (n,)
        0 = censored, k > 0 = ended by cause k.
    causes : sequence of int, optional
        Causes to report (default: those present).
    conf_type : {"log", "log-log", "plain"}
    conf_level : float

    Returns
    -------
    CumulativeIncidence

    Examples
    --------
    >>> ci = aalen_johansen([1, 2, 2, 3], [1, 2, 0, 1])
    >>> ci.cif(1)["estimate"].round(4).tolist()
    [0.25, 0.25, 0.75]
    """
    t, c = _check(time, cause)
    confidence_limits(np.zeros(0), np.zeros(0), conf_type, conf_level)
    causes = tuple(sorted(set(c[c > 0].tolist()))) if causes is None else tuple(int(k) for k in causes)
    n = len(t)
    uniq = np.unique(t)
    K = len(causes)
    order = np.argsort(t, kind="stable")
    t_s, c_s = t[order], c[order]
    U = np.zeros(n)            # ∂S/∂w_i
    G = np.zeros((K, n))       # ∂F_k/∂w_i
    S, F = 1.0, np.zeros(K)
    rows = []
    start = 0
    for tt in uniq:
        stop = np.searchsorted(t_s, tt, side="right")
        r = n - start
        here = c_s[start:stop]
        d_k = np.array([np.sum(here == k) for k in causes], dtype=float)
        d_all = float(np.sum(here > 0))
        n_cens = int(np.sum(here == 0))
        at_risk = np.zeros(n)
        at_risk[start:] = 1.0
        if d_all > 0:
            lam_k = d_k / r
            lam = d_all / r
            a_all = -at_risk * lam / r
            a_all[start:stop] += (here > 0) / r
            a_k = -at_risk[None, :] * lam_k[:, None] / r
            for j, k in enumerate(causes):
                a_k[j, start:stop] += (here == k) / r
            G = G + U[None, :] * lam_k[:, None] + S * a_k
            U = U * (1 - lam) - S * a_all
            F = F + S * lam_k
            S = S * (1 - lam)
        se_s = math.sqrt(float(U @ U))
        se_f = np.sqrt(np.einsum("ki,ki->k", G, G))
        rows.append((tt, EVENT_FREE, r, int(d_all), n_cens, S, se_s))
        for j, k in enumerate(causes):
            rows.append((tt, str(k), r, int(d_k[j]), n_cens, float(F[j]), float(se_f[j])))
        start = stop
    table = pd.DataFrame(rows, columns=list(CIF_COLUMNS[:7]))
    lo, hi = confidence_limits(table["estimate"].to_numpy(), table["std_err"].to_numpy(), conf_type, conf_level)
    table["ci_low"], table["ci_high"] = lo, hi
    # back to the original (sorted-index) positions is unnecessary: influence sums are order-free
    return CumulativeIncidence(n, causes, table, conf_type, conf_level)


def cause_specific_cox(time, cause, is_arm, k: int, term: str, conf_level: float = 0.95) -> CoxResult | None:
    """Cause-specific hazard ratio ``coxph(Surv(time, cause == k) ~ arm)`` (Efron ties; other causes censored).

    ``None`` when an arm has no event of cause ``k``. See :func:`ildstudy.analysis.discontinuation.cox_two_arms`.
    """
    t, c = _check(time, cause)
    return cox_two_arms(t, c == int(k), np.asarray(is_arm).astype(bool), term, conf_level)


@dataclass(frozen=True, slots=True)
class FineGrayResult:
    """Fine–Gray subdistribution-hazard model with one binary term (arm 1 vs reference 0).

    Attributes
    ----------
    term : str
    cause : int
    coef, se, z, p : float
        log subdistribution hazard ratio, its model-based SE (coxph's ``naive.var`` on the finegray data), Wald
        z and p.
    robust_se, robust_z, robust_p : float
        Sandwich SE clustered by patient (``coxph(... + cluster(id), weights = fgwt)``) and its Wald z, p.
    hazard_ratio, ci_low, ci_high : float
        ``exp(coef)`` and the robust interval ``exp(coef ± z·robust_se)``.
    loglik_null, loglik : float
        Weighted partial log-likelihood at 0 and at the estimate.
    ties, censoring_ties : str
    n, n_events : int
    iterations : int
    """

    term: str
    cause: int
    coef: float
    se: float
    z: float
    p: float
    robust_se: float
    robust_z: float
    robust_p: float
    hazard_ratio: float
    ci_low: float
    ci_high: float
    loglik_null: float
    loglik: float
    ties: str
    censoring_ties: str
    n: int
    n_events: int
    iterations: int
    conf_level: float = 0.95

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__slots__}
        for k in ("coef", "se", "z", "p", "robust_se", "robust_z", "robust_p", "hazard_ratio", "ci_low", "ci_high",
                  "loglik_null", "loglik"):
            out[k] = finite_or_none(out[k])
        out["estimate"] = out["hazard_ratio"]
        out["method"] = "Fine-Gray (weighted Cox), robust CI and p in robust_*; CI uses robust_se"
        return out


def censoring_survival(time, cause, censoring_ties: CensoringTies = "finegray"):
    """Kaplan–Meier of the censoring distribution: returns ``(times, G)`` at each censoring time (G after it).

    ``"finegray"``: patients with an event at a censoring time are not at risk of censoring there (events come
    first, as ``survival::finegray``); ``"crr"``: they are (``survfit(Surv(time, cause == 0) ~ 1)``, as crr).
    """
    if censoring_ties not in get_args(CensoringTies):
        raise ValueError(f"censoring_ties must be one of {get_args(CensoringTies)}, got {censoring_ties!r}")
    t, c = _check(time, cause)
    ct, n_cens = np.unique(t[c == 0], return_counts=True)
    n_cens = n_cens.astype(float)
    ts = np.sort(t)
    at_risk = len(t) - np.searchsorted(ts, ct, side="left")
    if censoring_ties == "finegray":
        te = np.sort(t[c > 0])
        at_risk = at_risk - (np.searchsorted(te, ct, side="right") - np.searchsorted(te, ct, side="left"))
    return ct, np.cumprod(1 - n_cens / at_risk)


def _g_before(ct, g, x):
    """G(x−): product over censoring times < x."""
    i = np.searchsorted(ct, x, side="left") - 1
    return np.where(i >= 0, g[np.maximum(i, 0)], 1.0)


def fine_gray(time, cause, is_arm, k: int = 1, term: str = "arm", *, ties: Ties = "efron",
              censoring_ties: CensoringTies = "finegray", conf_level: float = 0.95) -> FineGrayResult | None:
    """Fine–Gray model for cause ``k``: ``coxph(Surv(fgstart, fgstop, fgstatus) ~ arm, weights = fgwt)`` on
    ``finegray(Surv(time, factor(cause)) ~ ., etype = k)``.

    Parameters
    ----------
    time, cause : array_like, shape (n,)
        Times and cause codes (0 = censored).
    is_arm : array_like of bool, shape (n,)
        1 for the compared arm, 0 for the reference.
    k : int
        Cause of interest.
    term : str
        Name of the coefficient (R's "armAZA").
    ties : {"efron", "breslow"}
        coxph's ties (``crr`` uses Breslow).
    censoring_ties : {"finegray", "crr"}
        Which censoring Kaplan–Meier the weights use (see :func:`censoring_survival`).

    Returns
    -------
    FineGrayResult or None
        ``None`` if an arm has no event of cause ``k`` (infinite estimate).
    """
    if ties not in get_args(Ties):
        raise ValueError(f"ties must be one of {get_args(Ties)}, got {ties!r}")
    zq = _zq(conf_level)
    t, c = _check(time, cause)
    x = np.asarray(is_arm).astype(float)
    ev = c == int(k)
    if not ev[x == 1].any() or not ev[x == 0].any():
        return None
    ct, g = censoring_survival(t, c, censoring_ties)
    competing = (c > 0) & ~ev
    g_own = _g_before(ct, g, t)
    event_times = np.unique(t[ev])
    g_evt = _g_before(ct, g, event_times)
    # Weights as a dense (event times x n) matrix would be: 1 while at risk (t_i >= tau_j); G(tau_j-)/G(T_i-)
    # after a competing event (T_i < tau_j); 0 otherwise. Every sum below is that matrix's row sums, taken with
    # cumulative sums over time-sorted rows instead (O(n log n); the dense loop was quadratic in time and memory).
    k_t = len(event_times)
    order = np.argsort(t, kind="stable")
    start = np.searchsorted(t[order], event_times, side="left")
    comp = np.flatnonzero(competing)
    comp_order = comp[np.argsort(t[comp], kind="stable")]
    comp_before = np.searchsorted(t[comp_order], event_times, side="left")   # competing events before tau_j
    dead = np.flatnonzero(ev)
    j_of = np.searchsorted(event_times, t[dead])
    nd = np.bincount(j_of, minlength=k_t).astype(float)
    by_time = np.argsort(j_of, kind="stable")
    rank = np.empty(len(dead))
    rank[by_time] = np.arange(len(dead)) - np.searchsorted(j_of[by_time], j_of[by_time], side="left")
    m = rank / nd[j_of] if ties == "efron" else np.zeros(len(dead))
    upto = np.searchsorted(event_times, t, side="right")
    last = np.where(ev, np.searchsorted(event_times, t, side="left"), upto)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_g = np.where(competing, 1.0 / g_own, 0.0)

    def suffix(v, idx):  # sum of v over the time-sorted rows from idx on
        return np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])[idx]

    def prefix(v, idx):  # sum of v over the first idx rows
        return np.concatenate([[0.0], np.cumsum(v)])[idx]

    def pieces(beta):
        r = np.exp(beta * x)
        rx = r * x
        s0 = suffix(r[order], start) + g_evt * prefix((r * inv_g)[comp_order], comp_before)
        s1 = suffix(rx[order], start) + g_evt * prefix((rx * inv_g)[comp_order], comp_before)
        e0 = np.bincount(j_of, weights=r[dead], minlength=k_t)
        e1 = np.bincount(j_of, weights=rx[dead], minlength=k_t)
        den0 = s0[j_of] - m * e0[j_of]                # one entry per event (Efron's m within its tie group)
        xbar = (s1[j_of] - m * e1[j_of]) / den0
        ll = float(beta * x[dead].sum() - np.log(den0).sum())
        score = float(x[dead].sum() - xbar.sum())
        info = float((xbar * (1 - xbar)).sum())       # x is 0/1: S2 = S1
        # score residuals: δ_i(x_i − mean x̄) − Σ_m w_i r_i (x_i − x̄_m)/den_m, deaths scaled by (1 − m)
        a = np.bincount(j_of, weights=1 / den0, minlength=k_t)
        b = np.bincount(j_of, weights=xbar / den0, minlength=k_t)
        A, B = prefix(a, last), prefix(b, last)                       # event times while at risk
        LA, LB = suffix(g_evt * a, upto), suffix(g_evt * b, upto)     # after a competing event, weighted
        resid = -r * (x * A - B) - np.where(competing, r * inv_g * (x * LA - LB), 0.0)
        a1 = np.bincount(j_of, weights=(1 - m) / den0, minlength=k_t)
        b1 = np.bincount(j_of, weights=xbar * (1 - m) / den0, minlength=k_t)
        mean_xbar = np.bincount(j_of, weights=xbar, minlength=k_t) / nd
        resid[dead] += x[dead] - mean_xbar[j_of] - r[dead] * (x[dead] * a1[j_of] - b1[j_of])
        return ll, score, info, resid

    beta, it = 0.0, 0
    ll0 = pieces(0.0)[0]
    for it in range(1, _MAX_ITER + 1):
        _, score, info, _ = pieces(beta)
        step = score / info
        beta += step
        if abs(step) < _NEWTON_TOL * (1 + abs(beta)):
            break
    ll, score, info, resid = pieces(beta)
    se = 1 / math.sqrt(info)
    robust_se = math.sqrt(float(resid @ resid)) / info
    z, rz = beta / se, beta / robust_se
    return FineGrayResult(term, int(k), float(beta), se, z, float(2 * stats.norm.sf(abs(z))), robust_se, rz,
                          float(2 * stats.norm.sf(abs(rz))), math.exp(beta), math.exp(beta - zq * robust_se),
                          math.exp(beta + zq * robust_se), float(ll0), float(ll), ties, censoring_ties, len(t),
                          int(ev.sum()), it, conf_level)


@dataclass(frozen=True, slots=True)
class CompetingRisksResult:
    """Per arm cumulative incidence of each cause, and per cause the cause-specific and Fine–Gray hazard ratios.

    Attributes
    ----------
    arms : tuple of str
        (compared arm, reference).
    causes : tuple of int
    cause_labels : dict
        Cause code → label (e.g. {1: "adverse_event", 2: "other"}).
    cumulative_incidence : dict
        Arm → :class:`CumulativeIncidence`.
    cause_specific : dict
        Cause → :class:`~ildstudy.analysis.discontinuation.CoxResult` or ``None`` (no event in an arm).
    fine_gray : dict
        Cause → :class:`FineGrayResult` or ``None``.
    """

    arms: tuple[str, ...]
    reference_arm: str
    causes: tuple[int, ...]
    cause_labels: dict
    cumulative_incidence: dict
    cause_specific: dict
    fine_gray: dict

    def to_dict(self) -> dict:
        return {"arms": list(self.arms), "reference_arm": self.reference_arm, "causes": list(self.causes),
                "cause_labels": {str(k): v for k, v in self.cause_labels.items()},
                "cumulative_incidence": {a: ci.to_dict() for a, ci in self.cumulative_incidence.items()},
                "cause_specific_hr": {str(k): None if v is None else v.to_dict()
                                      for k, v in self.cause_specific.items()},
                "fine_gray_shr": {str(k): None if v is None else v.to_dict() for k, v in self.fine_gray.items()}}


def competing_risks(data: pd.DataFrame, arms: list[str], reference_arm: str, *, cause_labels=None,
                    ties: Ties = "efron", censoring_ties: CensoringTies = "finegray", conf_type: ConfType = "log",
                    conf_level: float = 0.95) -> CompetingRisksResult:
    """Competing-risks analysis of two arms.

    Parameters
    ----------
    data : pandas.DataFrame, shape (n_patients, 4)
        ``patient_id`` (unique), ``arm``, ``time`` (≥ 0, e.g. months from index), ``cause`` (0 = censored,
        k > 0 = the event that ended follow-up; count a switch as a discontinuation cause, not as censoring).
    arms : list of str, length 2
    reference_arm : str
    cause_labels : dict, optional
        Cause code → label for the output.
    ties, censoring_ties, conf_type, conf_level
        See :func:`fine_gray` and :func:`aalen_johansen`.

    Returns
    -------
    CompetingRisksResult

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"patient_id": list("abcdefgh"), "arm": ["AZA"] * 4 + ["MMF"] * 4,
    ...                   "time": [1, 2, 3, 4, 1, 2, 5, 6], "cause": [1, 2, 1, 0, 2, 1, 1, 0]})
    >>> res = competing_risks(d, ["AZA", "MMF"], "MMF")
    >>> res.cumulative_incidence["AZA"].cif(1)["estimate"].round(3).tolist()
    [0.25, 0.25, 0.5, 0.5]
    """
    order, arm = two_arm_patients(data, arms, reference_arm, ("patient_id", "arm", "time", "cause"))
    arms = [str(a) for a in arms]
    t, c = _check(pd.to_numeric(data["time"], errors="coerce"), pd.to_numeric(data["cause"], errors="coerce"))
    causes = tuple(sorted(set(c[c > 0].tolist())))
    labels = {k: (cause_labels or {}).get(k, str(k)) for k in causes}
    is_arm = arm == order[0]
    term = f"arm{order[0]}"
    cif = {a: aalen_johansen(t[arm == a], c[arm == a], causes, conf_type, conf_level) for a in order}
    cs = {k: cause_specific_cox(t, c, is_arm, k, term, conf_level) for k in causes}
    fg = {k: fine_gray(t, c, is_arm, k, term, ties=ties, censoring_ties=censoring_ties, conf_level=conf_level)
          for k in causes}
    return CompetingRisksResult(tuple(order), reference_arm, causes, labels, cif, cs, fg)
