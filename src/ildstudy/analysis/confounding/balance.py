"""Covariate balance before and after weighting or matching: standardised mean differences, variance ratios and
effective sample sizes, with cobalt's definitions (``bal.tab``).

* Standardised mean difference: (weighted mean of the first arm - of the reference arm) / SD, where the SD is
  always that of the **unweighted** sample (cobalt's default), so adjusted and unadjusted SMDs share a
  denominator: for ATE, ATO (overlap) and the crude comparison the pooled SD ``sqrt((s1^2 + s0^2) / 2)``
  (``s.d.denom = "pooled"``); for ATT (ATT weights, matching) the SD of the first arm (``"treated"``).
  A binary column's variance is ``p (1 - p)``; a numeric one's the sample variance (n - 1). cobalt shows binary
  covariates as raw differences by default (``binary = "raw"``); here they are standardised too
  (``binary = "std"``), so one threshold (|SMD| < 0.1) reads the whole table.
* Variance ratio (numeric covariates only): weighted variance of the first arm / of the reference arm, each
  ``sum w (x - m)^2 * sum w / ((sum w)^2 - sum w^2)`` (cobalt's ``col_w_var``; the sample variance for w = 1).
* Effective sample size per arm: Kish's ``(sum w)^2 / sum w^2``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ildstudy.analysis.confounding.weights import kish_ess

BALANCE_COLUMNS = ["covariate", "type", "mean_treated_before", "mean_reference_before", "smd_before",
                   "variance_ratio_before", "mean_treated_after", "mean_reference_after", "smd_after",
                   "variance_ratio_after"]


def is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def weighted_variance(x: np.ndarray, w: np.ndarray, binary: bool) -> float:
    """cobalt's ``col_w_var``: ``p (1 - p)`` for binary columns, else the reliability-weights variance."""
    w = np.asarray(w, dtype=float)
    sw = w.sum()
    if sw <= 0:
        return float("nan")
    m = float(np.sum(w * x) / sw)
    if binary:
        return m * (1 - m)
    den = sw ** 2 - np.sum(w ** 2)
    return float(np.sum(w * (x - m) ** 2) * sw / den) if den > 0 else float("nan")


def balance_table(X: pd.DataFrame, treated: np.ndarray, weights: np.ndarray, estimand: str) -> pd.DataFrame:
    """One row per covariate column: means, SMD and variance ratio before (w = 1) and after (``weights``).

    Parameters
    ----------
    X : DataFrame, shape (n, k)
        Covariate columns (the propensity model's, factors as 0/1 level columns).
    treated : ndarray of bool, shape (n,)
    weights : ndarray, shape (n,)
        The design's weights (0: not in the adjusted sample).
    estimand : {"ATE", "ATO", "ATT", "crude"}
        Chooses the SD of the denominator (see the module text).

    Returns
    -------
    DataFrame[covariate, type, mean_treated_before, mean_reference_before, smd_before, variance_ratio_before,
    mean_treated_after, mean_reference_after, smd_after, variance_ratio_after]
    """
    t = np.asarray(treated, dtype=bool)
    w = np.asarray(weights, dtype=float)
    ones = np.ones(len(t))
    rows = []
    for name in X.columns:
        x = X[name].to_numpy(dtype=float)
        binary = is_binary(x)
        v1 = weighted_variance(x[t], ones[t], binary)
        v0 = weighted_variance(x[~t], ones[~t], binary)
        sd = np.sqrt(v1) if estimand == "ATT" else np.sqrt((v1 + v0) / 2)
        row = {"covariate": name, "type": "binary" if binary else "numeric"}
        for when, ww in (("before", ones), ("after", w)):
            m1 = np.sum(ww[t] * x[t]) / np.sum(ww[t]) if np.sum(ww[t]) > 0 else np.nan
            m0 = np.sum(ww[~t] * x[~t]) / np.sum(ww[~t]) if np.sum(ww[~t]) > 0 else np.nan
            row[f"mean_treated_{when}"] = float(m1)
            row[f"mean_reference_{when}"] = float(m0)
            row[f"smd_{when}"] = float((m1 - m0) / sd) if sd > 0 else np.nan
            row[f"variance_ratio_{when}"] = (np.nan if binary else weighted_variance(x[t], ww[t], False)
                                             / weighted_variance(x[~t], ww[~t], False))
        rows.append(row)
    return pd.DataFrame(rows, columns=BALANCE_COLUMNS)


def sample_sizes(treated: np.ndarray, weights: np.ndarray) -> dict[str, dict[str, float]]:
    """Per arm (``treated`` / ``reference``): patients, patients with weight > 0, Kish effective sample size."""
    t = np.asarray(treated, dtype=bool)
    w = np.asarray(weights, dtype=float)
    return {arm: {"n": int(sel.sum()), "n_weighted": int((w[sel] > 0).sum()), "ess": kish_ess(w[sel])}
            for arm, sel in (("treated", t), ("reference", ~t))}
