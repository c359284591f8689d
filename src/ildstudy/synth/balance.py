"""Random effects and residuals of the outcome models, and the "balanced" construction.

Random intercepts and slopes are drawn from distributions bounded below (intercept scores standardised
Gamma(2), right-skewed and never below -1.41 SD; slope scores uniform within +-1.73 SD; combined to the
model's SDs and correlation), so that outcome values rarely leave their plausible range (about 0.35% of DLCO values are clipped to it;
see docs/validation.md).

A *balanced* registry (the default one) fixes, by construction, what would otherwise be left to the
luck of the seed:

* within each arm of eligible patients, the random effects of each outcome have sample mean exactly
  zero and sample covariance exactly the model's (centred and whitened);
* then, given the observations the analysis will use (per eligible patient: the baseline and the
  follow-up measurements inside the follow-up window, the doses at the evaluated dose months) and their
  independently drawn residuals, the random effects are moved by the smallest amount that makes the
  generalised least-squares estimate of the fixed effects (at the true variance parameters) equal the
  true fixed effects (:func:`balance_to_design`).

A linear mixed model with the study's formula then estimates the true fixed effects up to rounding and
the small difference between estimated and true variance parameters; its standard errors are those of an
ordinary sample. Sampled registries (``balanced=False``) draw everything independently, as a recovery
study needs.
"""

from __future__ import annotations

import numpy as np

from ildstudy.synth.calibration import MODELS, OUTCOMES

SQRT3 = np.sqrt(3.0)
#: random intercept scores: standardised Gamma(2) (right-skewed, bounded below at -sqrt(2) SD)
INTERCEPT_SHAPE = 2.0


def covariance(name: str) -> np.ndarray:
    """The model's 2x2 covariance of (random intercept, random slope)."""
    m = MODELS[name]
    off = m.corr * m.sd_intercept * m.sd_slope
    return np.array([[m.sd_intercept**2, off], [off, m.sd_slope**2]])


def random_effects(n: int, rng: np.random.Generator, group: np.ndarray, balanced: bool,
                   measured: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Random intercepts and slopes, shape (n, outcomes, 2); balanced within each eligible arm if asked.

    ``measured`` restricts the balancing of an outcome to the patients who have it (e.g. a DLCO).
    """
    z = rng.uniform(-SQRT3, SQRT3, size=(n, len(OUTCOMES), 2))
    gamma2 = rng.standard_exponential((n, len(OUTCOMES), 2)).sum(axis=2)               # Gamma(2)
    z[:, :, 0] = (gamma2 - INTERCEPT_SHAPE) / np.sqrt(INTERCEPT_SHAPE)
    re = np.empty_like(z)
    for k, name in enumerate(OUTCOMES):
        chol = np.linalg.cholesky(covariance(name))
        re[:, k, 0] = chol[0, 0] * z[:, k, 0]
        re[:, k, 1] = chol[1, 0] * z[:, k, 0] + chol[1, 1] * z[:, k, 1]
        if balanced:
            has = (measured or {}).get(name, np.ones(n, dtype=bool))
            for arm in (0, 1):
                sel = (group == arm) & has
                if sel.sum() > 2:
                    re[sel, k, :] = _whitened(re[sel, k, :], covariance(name))
    return re


def _whitened(b: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``b`` shifted and linearly transformed to sample mean 0 and sample covariance ``target``."""
    centred = b - b.mean(axis=0)
    sample = np.cov(centred, rowvar=False)
    return centred @ np.linalg.inv(np.linalg.cholesky(sample)).T @ np.linalg.cholesky(target).T


def design_rows(treated, female, age, antisynthetase, ever_smoker) -> np.ndarray:
    """Per patient, the (2, p) map from fixed effects to (intercept, slope) in the study formula.

    Columns follow :meth:`OutcomeModel.fixed_effects`: intercept, months, arm, female, age,
    antisynthetase, ever_smoker, months:arm.
    """
    n = len(treated)
    c = np.zeros((n, 2, 8))
    c[:, 0, 0] = 1.0
    c[:, 1, 1] = 1.0
    c[:, 0, 2] = treated
    c[:, 0, 3] = female
    c[:, 0, 4] = age
    c[:, 0, 5] = antisynthetase
    c[:, 0, 6] = ever_smoker
    c[:, 1, 7] = treated
    return c


def balance_to_design(b: np.ndarray, patient: np.ndarray, months: np.ndarray, analysed: np.ndarray,
                      design: np.ndarray, name: str, resid: np.ndarray) -> np.ndarray:
    """Random effects minimally changed so that, with the given residuals, the GLS estimate is exact.

    With ``X_i = Z_i C_i`` (every column of a patient's design is a combination of its intercept and
    months) the generalised least-squares estimate of the fixed effects is
    ``beta + (sum X'V^-1 X)^-1 sum C_i' (W_i b_i + Z_i' V_i^-1 e_i)`` with ``W_i = Z_i' V_i^-1 Z_i``. This
    returns ``b_i - G M_i' lambda`` (``M_i = C_i' W_i``), with ``lambda`` chosen so that the sum vanishes at
    the model's true variance parameters: the smallest change of the random effects in the metric of
    ``G``. Residuals stay independent draws.

    ``b`` is (n, 2); rows of ``patient``/``months``/``resid`` with ``analysed`` are the observations the
    study's model uses; ``design`` is (n, 2, p) from :func:`design_rows` (zeros for patients not analysed).
    """
    n = len(b)
    if not analysed.any():
        return b
    g = covariance(name)
    sigma2 = MODELS[name].residual_sd ** 2
    p, t, e = patient[analysed], months[analysed], resid[analysed]
    s0 = np.bincount(p, minlength=n).astype(float)
    s1 = np.bincount(p, weights=t, minlength=n)
    s2 = np.bincount(p, weights=t * t, minlength=n)
    a = np.stack([np.stack([s0, s1], -1), np.stack([s1, s2], -1)], -2) / sigma2        # Z'Z / sigma^2
    ze = np.stack([np.bincount(p, weights=e, minlength=n), np.bincount(p, weights=t * e, minlength=n)], -1) / sigma2
    inner = np.linalg.inv(np.linalg.inv(g)[None] + a)
    w = a - a @ inner @ a                                                              # Z' V^-1 Z
    u = ze - np.einsum("nij,njk,nk->ni", a, inner, ze)                                 # Z' V^-1 e
    m = np.swapaxes(design, 1, 2) @ w                                                  # (n, p, 2)
    r = np.einsum("npk,nk->p", m, b) + np.einsum("npk,nk->p", design.swapaxes(1, 2), u)
    s = np.einsum("npk,kl,nql->pq", m, g, m)
    lam = np.linalg.lstsq(s, r, rcond=None)[0]
    return b - np.einsum("kl,npl,p->nk", g, m, lam)
