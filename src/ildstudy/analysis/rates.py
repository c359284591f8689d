"""Event rates per 100 person-years and rate ratios, computed as R computes them.

* :func:`incidence_rates` — per arm: events, person-years, the rate per 100 person-years with the exact
  (Garwood) Poisson interval of ``poisson.test(x, T)``: ``[qgamma(α/2, x), qgamma(1 − α/2, x + 1)] / T``
  (lower limit 0 when x = 0).
* the exact rate ratio of ``poisson.test(c(x1, x2), c(T1, T2))``: conditional on x1 + x2 the compared arm's count
  is binomial with p = T1 / (T1 + T2); p-value of ``binom.test``, Clopper–Pearson limits ``p_L, p_U`` mapped to
  ``p / (1 − p) / (T1 / T2)``.
* a Poisson GLM ``glm(n_events ~ arm + offset(log(person_years)), family = poisson)``: Wald z, p and
  ``confint.default`` interval ``exp(β ± z·SE)``; deviance and Pearson χ² (overdispersion check).
* a negative-binomial (NB2, Var = μ + μ²/θ) GLM as ``MASS::glm.nb`` with the same offset: maximum likelihood in
  (β, θ), alternating Fisher scoring for β and Newton steps for θ (glm.nb's scheme) until both stop moving;
  SEs of β are glm.nb's (expected information at the fitted θ); ``se_theta`` is ``theta.ml``'s (observed information).

Written by hand: statsmodels' ``NegativeBinomial`` uses a different parametrisation (α = 1/θ) and optimiser and
reports an SE for α from the joint Hessian, and neither scipy nor statsmodels provides ``poisson.test``'s two-sample
exact interval. When an arm has no event the GLM estimates are infinite; the model results are then ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from ildstudy.analysis._arms import two_arm_patients
from ildstudy._json import finite_or_none

RATE_COLUMNS = ("patient_id", "arm", "n_events", "person_years")
PER = 100.0
_TOL = 1e-12
_MAX_ITER = 200
#: θ beyond this means no overdispersion (the NB2 fit tends to the Poisson one); the NB result is then None.
_THETA_MAX = 1e8


@dataclass(frozen=True, slots=True)
class ArmRate:
    """Events and person-time of one arm, with the rate per ``per`` person-years and its exact interval."""

    arm: str
    n: int
    events: int
    person_years: float
    rate: float
    ci_low: float
    ci_high: float
    per: float = PER

    def to_dict(self) -> dict:
        return {"arm": self.arm, "n": self.n, "events": self.events, "person_years": self.person_years,
                f"rate_per_{int(self.per)}py": self.rate, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "method": "exact Poisson (Garwood), as poisson.test(x, T)"}


@dataclass(frozen=True, slots=True)
class ExactRateRatio:
    """``poisson.test(c(x1, x2), c(T1, T2))``: estimate, exact interval and p (``None`` when x1 + x2 = 0)."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None

    def to_dict(self) -> dict:
        return {"estimate": finite_or_none(self.estimate), "ci_low": finite_or_none(self.ci_low),
                "ci_high": finite_or_none(self.ci_high), "p": finite_or_none(self.p),
                "method": "exact conditional (binomial), as poisson.test(c(x1, x2), c(T1, T2))"}


@dataclass(frozen=True, slots=True)
class RateModel:
    """A count GLM ``n_events ~ arm + offset(log(person_years))`` with a log link.

    Attributes
    ----------
    family : {"poisson", "negative_binomial"}
    terms : tuple of str
        ``("(Intercept)", "arm<ARM>")``.
    coef, se : numpy.ndarray, shape (2,)
    z, p : float
        Wald z and two-sided p of the arm term.
    rate_ratio, ci_low, ci_high : float
        ``exp(β)`` and ``exp(β ± z·SE)`` (``confint.default``).
    loglik : float
    deviance, pearson_chisq : float
        Residual deviance and Pearson χ² (Poisson; for NB at the fitted θ).
    df_residual : int
    theta, se_theta : float or None
        NB2 shape (glm.nb's ``theta``, ``SE.theta``); ``None`` for Poisson.
    iterations : int
    """

    family: str
    terms: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    z: float
    p: float
    rate_ratio: float
    ci_low: float
    ci_high: float
    loglik: float
    deviance: float
    pearson_chisq: float
    df_residual: int
    theta: float | None = None
    se_theta: float | None = None
    iterations: int = 0
    conf_level: float = 0.95

    def to_dict(self) -> dict:
        return {"family": self.family, "term": self.terms[1], "estimate": finite_or_none(self.rate_ratio),
                "ci_low": finite_or_none(self.ci_low), "ci_high": finite_or_none(self.ci_high),
                "p": finite_or_none(self.p), "coef": finite_or_none(self.coef[1]), "se": finite_or_none(self.se[1]),
                "z": finite_or_none(self.z), "intercept": finite_or_none(self.coef[0]),
                "loglik": finite_or_none(self.loglik), "deviance": finite_or_none(self.deviance),
                "pearson_chisq": finite_or_none(self.pearson_chisq), "df_residual": self.df_residual,
                "theta": finite_or_none(self.theta), "se_theta": finite_or_none(self.se_theta),
                "conf_level": self.conf_level, "method": "Wald CI and p (confint.default)"}


@dataclass(frozen=True, slots=True)
class RateResult:
    """Rates per arm and the compared arm's rate ratio versus the reference by three methods."""

    arms: tuple[str, ...]
    reference_arm: str
    by_arm: tuple[ArmRate, ...]
    exact: ExactRateRatio
    poisson: RateModel | None
    negative_binomial: RateModel | None
    conf_level: float = 0.95

    def to_dict(self) -> dict:
        """``{arms, reference_arm, contrast, by_arm: [...], exact: {...}, poisson_glm, negative_binomial}``."""
        return {"arms": list(self.arms), "reference_arm": self.reference_arm,
                "contrast": f"{self.arms[0]} / {self.reference_arm}", "conf_level": self.conf_level,
                "by_arm": [a.to_dict() for a in self.by_arm], "exact": self.exact.to_dict(),
                "poisson_glm": None if self.poisson is None else self.poisson.to_dict(),
                "negative_binomial": None if self.negative_binomial is None else self.negative_binomial.to_dict()}


def _z(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
    return float(stats.norm.ppf(1 - (1 - conf_level) / 2))


def exact_rate(events: int, person_years: float, conf_level: float = 0.95, per: float = PER) -> tuple[float, ...]:
    """``(rate, ci_low, ci_high)`` per ``per`` person-years, as ``poisson.test(events, person_years)``."""
    _z(conf_level)
    if person_years <= 0:
        raise ValueError("person_years must be > 0")
    a = (1 - conf_level) / 2
    lo = 0.0 if events == 0 else float(stats.gamma.ppf(a, events)) / person_years
    hi = float(stats.gamma.ppf(1 - a, events + 1)) / person_years
    return per * events / person_years, per * lo, per * hi


def exact_rate_ratio(x: tuple[int, int], t: tuple[float, float], conf_level: float = 0.95) -> ExactRateRatio:
    """The conditional exact test and interval of ``poisson.test(c(x1, x2), c(t1, t2))`` (ratio 1 vs 2)."""
    _z(conf_level)
    n = int(x[0] + x[1])
    if n == 0:
        return ExactRateRatio(None, None, None, None)
    p0 = t[0] / (t[0] + t[1])
    pval = float(stats.binomtest(int(x[0]), n, p0).pvalue)     # the same rule as binom.test (relErr 1 + 1e-7)
    a = (1 - conf_level) / 2
    p_lo = 0.0 if x[0] == 0 else float(stats.beta.ppf(a, x[0], n - x[0] + 1))
    p_hi = 1.0 if x[0] == n else float(stats.beta.ppf(1 - a, x[0] + 1, n - x[0]))
    scale = t[0] / t[1]
    with np.errstate(divide="ignore"):
        est = (x[0] / t[0]) / (x[1] / t[1]) if x[1] > 0 else math.inf
        hi = p_hi / (1 - p_hi) / scale if p_hi < 1 else math.inf
    return ExactRateRatio(float(est), p_lo / (1 - p_lo) / scale, float(hi), min(1.0, pval))


def _wald(family, terms, beta, cov, loglik, deviance, pearson, df_res, conf_level, theta=None, se_theta=None,
          iterations=0) -> RateModel:
    se = np.sqrt(np.diag(cov))
    z = float(beta[1] / se[1])
    zq = _z(conf_level)
    return RateModel(family, terms, beta, se, z, float(2 * stats.norm.sf(abs(z))), math.exp(beta[1]),
                     math.exp(beta[1] - zq * se[1]), math.exp(beta[1] + zq * se[1]), float(loglik), float(deviance),
                     float(pearson), df_res, theta, se_theta, iterations, conf_level)


def _scoring(X, y, offset, beta, weight_fn):
    """One Fisher-scoring step for a log-link GLM: ``weight_fn(mu)`` gives the working weights μ²/Var(μ)."""
    mu = np.exp(X @ beta + offset)
    w = weight_fn(mu)
    info = X.T @ (w[:, None] * X)
    score = X.T @ (w * (y - mu) / mu)
    return beta + np.linalg.solve(info, score), info


def _poisson_fit(X, y, offset):
    beta = np.linalg.lstsq(X, np.log(np.maximum(y, 0.1)) - offset, rcond=None)[0]
    for it in range(1, _MAX_ITER + 1):
        new, _ = _scoring(X, y, offset, beta, lambda mu: mu)
        done = np.max(np.abs(new - beta)) < _TOL * (1 + np.max(np.abs(beta)))
        beta = new
        if done:
            break
    mu = np.exp(X @ beta + offset)
    return beta, np.linalg.inv(X.T @ (mu[:, None] * X)), it


def _poisson_model(X, y, offset, terms, conf_level) -> RateModel:
    beta, cov, it = _poisson_fit(X, y, offset)
    mu = np.exp(X @ beta + offset)
    loglik = float(np.sum(y * np.log(mu) - mu - special.gammaln(y + 1)))
    dev = 2 * float(np.sum(special.xlogy(y, y / mu) - (y - mu)))
    pearson = float(np.sum((y - mu) ** 2 / mu))
    return _wald("poisson", terms, beta, cov, loglik, dev, pearson, len(y) - X.shape[1], conf_level, iterations=it)


def _nb_loglik(y, mu, theta) -> float:
    return float(np.sum(special.gammaln(theta + y) - special.gammaln(theta) - special.gammaln(y + 1)
                        + theta * np.log(theta) + special.xlogy(y, mu) - (theta + y) * np.log(theta + mu)))


def _theta_step(y, mu, theta):
    """Newton step of theta.ml: score and observed information of θ at fixed μ."""
    score = np.sum(special.digamma(theta + y) - special.digamma(theta) + np.log(theta) + 1
                   - np.log(theta + mu) - (y + theta) / (mu + theta))
    info = np.sum(-special.polygamma(1, theta + y) + special.polygamma(1, theta) - 1 / theta
                  + 2 / (mu + theta) - (y + theta) / (mu + theta) ** 2)
    return score, info


def _nb_model(X, y, offset, terms, conf_level) -> RateModel | None:
    beta, _, _ = _poisson_fit(X, y, offset)
    mu = np.exp(X @ beta + offset)
    # theta.ml's moment start: n / sum((y / mu - 1)^2)
    theta = len(y) / float(np.sum((y / mu - 1) ** 2)) if np.any(y != mu) else math.inf
    if not np.isfinite(theta):
        return None
    it = 0
    for it in range(1, _MAX_ITER + 1):
        old_beta, old_theta = beta, theta
        for _ in range(_MAX_ITER):
            new, _ = _scoring(X, y, offset, beta, lambda m: m / (1 + m / theta))
            step = np.max(np.abs(new - beta))
            beta = new
            if step < _TOL * (1 + np.max(np.abs(beta))):
                break
        mu = np.exp(X @ beta + offset)
        with np.errstate(all="ignore"):
            for _ in range(_MAX_ITER):
                score, info = _theta_step(y, mu, theta)
                new_theta = abs(theta + score / info)      # theta.ml keeps |θ|
                if not np.isfinite(new_theta) or new_theta > _THETA_MAX:
                    return None
                done = abs(new_theta - theta) < _TOL * theta
                theta = float(new_theta)
                if done:
                    break
        if (np.max(np.abs(beta - old_beta)) < _TOL * (1 + np.max(np.abs(beta)))
                and abs(theta - old_theta) < _TOL * theta):
            break
    mu = np.exp(X @ beta + offset)
    w = mu / (1 + mu / theta)
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    _, info_theta = _theta_step(y, mu, theta)
    dev = 2 * float(np.sum(special.xlogy(y, y / mu) - (y + theta) * np.log((y + theta) / (mu + theta))))
    pearson = float(np.sum((y - mu) ** 2 / (mu + mu ** 2 / theta)))
    return _wald("negative_binomial", terms, beta, cov, _nb_loglik(y, mu, theta), dev, pearson,
                 len(y) - X.shape[1], conf_level, theta=theta, se_theta=float(1 / math.sqrt(info_theta)),
                 iterations=it)


def incidence_rates(data: pd.DataFrame, arms: list[str], reference_arm: str, *, conf_level: float = 0.95,
                    per: float = PER) -> RateResult:
    """Event rates per arm and the rate ratio (compared arm / reference) by exact, Poisson and NB2 methods.

    Parameters
    ----------
    data : pandas.DataFrame, shape (n_patients, 4)
        One row per patient: ``patient_id`` (unique), ``arm`` (one of ``arms``), ``n_events`` (integer ≥ 0, e.g.
        adverse events during follow-up), ``person_years`` (> 0, time at risk).
    arms : list of str, length 2
    reference_arm : str
        The denominator of the rate ratio (e.g. "MMF").
    conf_level : float
        Level of every interval (0.95).
    per : float
        Rates are per ``per`` person-years (100).

    Returns
    -------
    RateResult
        ``poisson`` and ``negative_binomial`` are ``None`` when an arm has no event (infinite estimate);
        ``negative_binomial`` is also ``None`` when the data show no overdispersion (θ → ∞).

    Raises
    ------
    ValueError
        Missing columns, unknown arms, duplicated patients, negative/non-integer counts, person-years ≤ 0.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"patient_id": list("abcd"), "arm": ["AZA", "AZA", "MMF", "MMF"],
    ...                   "n_events": [2, 1, 0, 1], "person_years": [1.5, 2.0, 3.0, 1.0]})
    >>> res = incidence_rates(d, ["AZA", "MMF"], "MMF")
    >>> round(res.by_arm[0].rate, 2), round(res.exact.estimate, 3)
    (85.71, 3.429)
    """
    _z(conf_level)
    order, arm = two_arm_patients(data, arms, reference_arm, RATE_COLUMNS)
    arms = [str(a) for a in arms]
    y = pd.to_numeric(data["n_events"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(y).any() or (y < 0).any() or np.any(y != np.round(y)):
        raise ValueError("data.n_events must be integers >= 0")
    t = pd.to_numeric(data["person_years"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(t).any() or not np.isfinite(t).all() or (t <= 0).any():
        raise ValueError("data.person_years must be finite and > 0")
    by_arm = []
    for a in order:
        sel = arm == a
        if not sel.any():
            raise ValueError(f"arm {a!r} has no patient")
        x, pt = int(y[sel].sum()), float(t[sel].sum())
        by_arm.append(ArmRate(a, int(sel.sum()), x, pt, *exact_rate(x, pt, conf_level, per), per=per))
    exact = exact_rate_ratio((by_arm[0].events, by_arm[1].events), (by_arm[0].person_years,
                                                                      by_arm[1].person_years), conf_level)
    poisson = nb = None
    if by_arm[0].events > 0 and by_arm[1].events > 0:
        X = np.column_stack([np.ones(len(y)), (arm == order[0]).astype(float)])
        terms = ("(Intercept)", f"arm{order[0]}")
        poisson = _poisson_model(X, y, np.log(t), terms, conf_level)
        nb = _nb_model(X, y, np.log(t), terms, conf_level)
    return RateResult(tuple(order), reference_arm, tuple(by_arm), exact, poisson, nb, conf_level)
