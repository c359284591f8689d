"""Propensity-score weights: inverse probability of treatment (ATE, ATT), overlap weights, trimming, truncation.

With ``e`` the propensity score of the first arm (``treated``) and ``p = mean(treated)``:

========  ==========================  =========================  ==================================
design    treated                     reference arm              stabilised (``stabilize=True``)
========  ==========================  =========================  ==================================
iptw_ate  ``1 / e``                   ``1 / (1 - e)``            times ``p`` / ``1 - p`` (Robins et al. 2000)
iptw_att  ``1``                       ``e / (1 - e)``            reference arm times ``(1 - p) / p``
overlap   ``1 - e``                   ``e``                      (not stabilised: bounded already)
========  ==========================  =========================  ==================================

These are WeightIt's ``method = "glm"`` weights (``estimand = "ATE"``, ``"ATT"``, ``"ATO"``); WeightIt's
``stabilize = TRUE`` multiplies each arm's ATE weights by the arm's share, the ATT variant here scales the
reference arm so its weights sum to about its own size (Austin & Stuart 2015, Stat Med 34:3661). Constant factors
per arm change no weighted mean, only the weights' scale.

*Trimming* (Crump et al. 2009) drops patients whose score lies outside ``[a, 1 - a]`` (weight 0) before the
weights are formed. *Truncation* caps weights above the ``q``-th quantile (R's type-7 ``quantile``) at that
quantile, as ``WeightIt::trim(w, at = q)``: over every weight for ATE and overlap, over the reference arm's for ATT
(the treated keep weight 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

WeightDesign = Literal["iptw_ate", "iptw_att", "overlap"]
ESTIMAND = {"iptw_ate": "ATE", "iptw_att": "ATT", "overlap": "ATO", "matching": "ATT", "none": "crude"}


@dataclass(frozen=True, slots=True)
class Weights:
    """Weights of one design, shape (n,), with what was done to them.

    ``trimmed`` marks patients dropped by the score trimming (weight 0); ``truncated`` those whose weight was
    capped; ``cap`` the truncation value (``None`` without truncation)."""

    design: str
    weights: np.ndarray
    trimmed: np.ndarray
    truncated: np.ndarray
    cap: float | None


def psweights(ps: np.ndarray, treated: np.ndarray, design: WeightDesign, *, stabilize: bool = True,
              trim: float = 0.0, truncate: float | None = None) -> Weights:
    """The weights of ``design`` for scores ``ps`` (see the module table).

    Parameters
    ----------
    ps : ndarray, shape (n,)
        Propensity score of the first arm.
    treated : ndarray of bool, shape (n,)
    design : {"iptw_ate", "iptw_att", "overlap"}
    stabilize : multiply by the arm shares (IPTW only).
    trim : float in [0, 0.5)
        Drop patients with ``ps < trim`` or ``ps > 1 - trim`` (0: none).
    truncate : float in (0.5, 1), optional
        Cap weights at their ``truncate`` quantile.

    Examples
    --------
    >>> psweights(np.array([0.2, 0.5, 0.8]), np.array([True, False, True]), "iptw_ate", stabilize=False).weights
    array([5.  , 2.  , 1.25])
    """
    if design not in ("iptw_ate", "iptw_att", "overlap"):
        raise ValueError(f"design must be iptw_ate, iptw_att or overlap, got {design!r}")
    e = np.asarray(ps, dtype=float)
    t = np.asarray(treated, dtype=bool)
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    keep = (e >= trim) & (e <= 1 - trim) if trim > 0 else np.ones(len(e), dtype=bool)
    p = t[keep].mean() if keep.any() else np.nan
    if design == "iptw_ate":
        w = np.where(t, 1 / e, 1 / (1 - e))
        if stabilize:
            w = w * np.where(t, p, 1 - p)
    elif design == "iptw_att":
        w = np.where(t, 1.0, e / (1 - e))
        if stabilize:
            w = w * np.where(t, 1.0, (1 - p) / p)
    else:
        w = np.where(t, 1 - e, e)
    w = np.where(keep, w, 0.0)
    capped = np.zeros(len(w), dtype=bool)
    cap = None
    if truncate is not None:
        if not 0.5 < truncate < 1:
            raise ValueError(f"truncate must be a quantile in (0.5, 1), got {truncate}")
        pool = keep & (~t if design == "iptw_att" else True)
        cap = float(np.quantile(w[pool], truncate)) if pool.any() else None   # numpy "linear" = R type 7
        if cap is not None:
            capped = pool & (w > cap)
            w = np.where(capped, cap, w)
    return Weights(design=design, weights=w, trimmed=~keep, truncated=capped, cap=cap)


def kish_ess(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no positive weight)."""
    w = np.asarray(w, dtype=float)
    s2 = float(np.sum(w ** 2))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0
