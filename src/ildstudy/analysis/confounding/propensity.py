"""The propensity score: a logistic regression of the first arm on baseline covariates.

Fitted by iteratively reweighted least squares exactly as R's ``glm(arm ~ ..., family = binomial)``
(``glm.fit``: start ``mu = (y + 0.5) / 2``, convergence when ``|dev - dev_old| / (|dev| + 0.1) < epsilon``);
``epsilon`` defaults to 1e-12 so the coefficients are those of the maximum itself, not of R's default
stopping point (1e-8). The linear predictor is MatchIt's ``distance`` with ``link = "linear.logit"``.

Covariates are registered names (:mod:`ildstudy.variables`); numeric and binary ones enter as their model
column (``female``, ``age``, ...), factors as R's treatment-contrast dummies (``diagnosisDM``, first level the
reference). Patients with a missing covariate are left out (complete cases, as ``matchit()`` requires).

>>> import numpy as np, pandas as pd
>>> x = pd.DataFrame({"age": [40., 50, 60, 70, 45, 55, 65, 75]})
>>> fit = fit_propensity(np.array([1, 0, 1, 1, 0, 0, 1, 0]), x)
>>> fit.terms
('(Intercept)', 'age')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from ildstudy.errors import ModelError
from ildstudy.variables import covariate_spec


@dataclass(frozen=True, slots=True)
class PropensityFit:
    """A fitted propensity-score model.

    Attributes
    ----------
    terms : column names of the model matrix, R's naming (``(Intercept)``, ``age``, ``diagnosisDM``).
    coef, se : ndarray, shape (p,)
        Maximum-likelihood coefficients and model-based standard errors.
    linear_predictor : ndarray, shape (n,)
        ``X @ coef``, the logit of the score (MatchIt's ``linear.logit`` distance).
    ps : ndarray, shape (n,)
        The propensity score ``P(first arm | covariates)``.
    treated : ndarray of bool, shape (n,)
    deviance, null_deviance : float
    iterations : int
    converged : bool
        False when IRLS did not settle within ``max_iter`` (e.g. separation): the scores are then suspect.
    """

    terms: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    linear_predictor: np.ndarray
    ps: np.ndarray
    treated: np.ndarray
    deviance: float
    null_deviance: float
    iterations: int
    converged: bool

    def coefficients(self) -> pd.DataFrame:
        """DataFrame[term, estimate, se, z, p] (Wald z, as ``summary.glm``)."""
        z = self.coef / self.se
        return pd.DataFrame({"term": list(self.terms), "estimate": self.coef, "se": self.se, "z": z,
                             "p": 2 * stats.norm.sf(np.abs(z))})


def covariate_matrix(patients: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The propensity model's covariate columns (no intercept) from the cohort's patients table.

    Numeric and binary covariates give one column named by their model term; a factor gives a 0/1 column per
    level but the first (``spec.levels`` order, else sorted observed values), named ``term + level``. A
    missing value stays NaN in every column of that covariate.
    """
    cols: dict[str, pd.Series] = {}
    for name in names:
        spec = covariate_spec(name)
        if spec.column not in patients.columns:
            raise ModelError(f"confounding.ps_covariates: covariate {name!r} (column {spec.column!r}) is not in the "
                             "cohort's patients table")
        values = spec.model_values(patients[spec.column])
        if spec.kind != "factor":
            cols[spec.term] = pd.to_numeric(values).astype(float).reset_index(drop=True)
            continue
        observed = sorted(str(v) for v in values.dropna().unique())
        levels = [lv for lv in spec.levels if lv in observed] if spec.levels else observed
        text = values.astype(object).reset_index(drop=True)
        for level in levels[1:]:
            col = (text.astype(str) == level).astype(float)
            cols[f"{spec.term}{level}"] = col.where(text.notna(), np.nan)
    return pd.DataFrame(cols)


def fit_propensity(treated: np.ndarray, covariates: pd.DataFrame, *, epsilon: float = 1e-12,
                   max_iter: int = 100) -> PropensityFit:
    """Logistic regression of ``treated`` on ``covariates`` (plus an intercept) by IRLS.

    Parameters
    ----------
    treated : array of 0/1 or bool, shape (n,)
    covariates : DataFrame, shape (n, k)
        Complete (no missing values); columns as :func:`covariate_matrix` names them.
    epsilon, max_iter : glm.control's convergence settings.

    Raises
    ------
    ModelError
        Missing values, an arm without patients, or a rank-deficient model matrix (a covariate constant in the
        cohort, or collinear with others: the message names the columns).
    """
    y = np.asarray(treated, dtype=float)
    X = np.column_stack([np.ones(len(y)), covariates.to_numpy(dtype=float)]) if covariates.shape[1] else \
        np.ones((len(y), 1))
    terms = ("(Intercept)", *covariates.columns)
    if not np.isfinite(X).all():
        raise ModelError("propensity score: the covariates have missing values (give complete cases)")
    if y.min() == y.max():
        raise ModelError("propensity score: every patient is in the same arm")
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        constant = [t for t, c in zip(terms[1:], X[:, 1:].T) if np.ptp(c) == 0]
        what = f"constant: {', '.join(constant)}" if constant else "collinear columns"
        raise ModelError(f"propensity score: the model matrix is rank deficient ({what}); drop a covariate from "
                         "confounding.ps_covariates")
    mu = (y + 0.5) / 2
    eta = np.log(mu / (1 - mu))
    dev_old = _deviance(y, mu)
    converged, it = False, 0
    eps = np.finfo(float).eps  # R's binomial()$linkinv and mu.eta keep mu and the weights at least DBL_EPSILON
    for it in range(1, max_iter + 1):
        w = np.maximum(mu * (1 - mu), eps)
        z = eta + (y - mu) / w
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        eta = X @ beta
        mu = np.clip(expit(eta), eps, 1 - eps)
        dev = _deviance(y, mu)
        if abs(dev - dev_old) / (abs(dev) + 0.1) < epsilon:
            converged = True
            break
        dev_old = dev
    w = np.maximum(mu * (1 - mu), eps)
    cov = np.linalg.pinv(X.T @ (X * w[:, None]))
    p1 = y.mean()
    return PropensityFit(terms=terms, coef=beta, se=np.sqrt(np.diag(cov)), linear_predictor=eta, ps=mu,
                         treated=y.astype(bool), deviance=float(_deviance(y, mu)),
                         null_deviance=float(_deviance(y, np.full(len(y), p1))), iterations=it,
                         converged=converged and bool(np.all((mu > 1e-10) & (mu < 1 - 1e-10))))


def _deviance(y: np.ndarray, mu: np.ndarray) -> float:
    mu = np.clip(mu, 1e-300, 1 - 1e-16)
    return float(-2 * np.sum(y * np.log(mu) + (1 - y) * np.log1p(-mu)))
