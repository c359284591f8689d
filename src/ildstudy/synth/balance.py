"""Random effects and residuals of the outcome models, and the "balanced" construction.

Random intercepts and slopes are drawn from a bounded distribution (independent uniform scores with
unit variance, combined to the model's SDs and correlation), so that outcome values stay inside their
plausible range without clipping.

A *balanced* registry (the default one) fixes, by construction, what would otherwise be left to the
luck of the seed:

* within each arm of eligible patients, the random effects of each outcome have sample mean exactly
  zero and sample covariance exactly the model's (centred and whitened);
* the residuals of the observations the analysis uses (per eligible patient: the baseline and the
  follow-up measurements inside the follow-up window, the doses at the evaluated dose months) are made
  orthogonal to that patient's intercept and months (projected off them).

A linear mixed model with the study's formula then estimates the true fixed effects up to rounding,
whatever the variance parameters, because every patient's design lies in the span of its intercept and
months. Sampled registries (``balanced=False``) draw everything independently, as a recovery study needs.
"""

from __future__ import annotations

import numpy as np

from ildstudy.synth.calibration import MODELS, OUTCOMES

SQRT3 = np.sqrt(3.0)


def covariance(name: str) -> np.ndarray:
    """The model's 2x2 covariance of (random intercept, random slope)."""
    m = MODELS[name]
    off = m.corr * m.sd_intercept * m.sd_slope
    return np.array([[m.sd_intercept**2, off], [off, m.sd_slope**2]])


def random_effects(n: int, rng: np.random.Generator, group: np.ndarray, balanced: bool) -> np.ndarray:
    """Random intercepts and slopes, shape (n, outcomes, 2); balanced within each eligible arm if asked."""
    z = rng.uniform(-SQRT3, SQRT3, size=(n, len(OUTCOMES), 2))
    re = np.empty_like(z)
    for k, name in enumerate(OUTCOMES):
        re[:, k, :] = z[:, k, :] @ np.linalg.cholesky(covariance(name)).T
        if balanced:
            for arm in (0, 1):
                sel = group == arm
                if sel.sum() > 2:
                    re[sel, k, :] = _whitened(re[sel, k, :], covariance(name))
    return re


def _whitened(b: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``b`` shifted and linearly transformed to sample mean 0 and sample covariance ``target``."""
    centred = b - b.mean(axis=0)
    sample = np.cov(centred, rowvar=False)
    return centred @ np.linalg.inv(np.linalg.cholesky(sample)).T @ np.linalg.cholesky(target).T


def orthogonal_residuals(patient: np.ndarray, months: np.ndarray, resid: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Residuals of masked rows with each patient's least-squares intercept and slope on months removed.

    ``patient`` are non-negative integer codes; unmasked rows are returned unchanged. A patient with one
    masked row (or all at the same month) gets its mean removed.
    """
    out = resid.copy()
    if not mask.any():
        return out
    p, t, e = patient[mask], months[mask], resid[mask]
    size = int(p.max()) + 1
    s0 = np.bincount(p, minlength=size).astype(float)
    s1 = np.bincount(p, weights=t, minlength=size)
    s2 = np.bincount(p, weights=t * t, minlength=size)
    r0 = np.bincount(p, weights=e, minlength=size)
    r1 = np.bincount(p, weights=t * e, minlength=size)
    det = s0 * s2 - s1 * s1
    flat = det <= 1e-9 * np.maximum(s0 * s2, 1.0)
    safe = np.where(flat, 1.0, det)
    a = np.where(flat, r0 / np.maximum(s0, 1.0), (s2 * r0 - s1 * r1) / safe)
    b = np.where(flat, 0.0, (s0 * r1 - s1 * r0) / safe)
    out[mask] = e - a[p] - b[p] * t
    return out
