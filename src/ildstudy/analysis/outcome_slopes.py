"""Per-outcome extras of the mixed model: annualised slopes per arm with their differences, and how many patients
support the contrast at each month.

* **Slopes** (:func:`outcome_slopes`): the change per year of each arm's marginal mean, as
  ``emtrends(fit, ~ arm, var = "months")`` times 12, and each arm minus the reference (``contrast(emtrends(...),
  "trt.vs.ctrl")``), with Satterthwaite df and 95% CIs (:meth:`ildstudy.lmm.results.LmmFit.slopes`). With linear
  time the slope does not depend on the month: one row per arm (``month`` empty). With a curved time (``ns()`` /
  ``pl()`` in the formula) the slopes are given at each contrast month. A visit-factor model has no slope (``None``).
* **Contrast support** (:func:`contrast_support`): per contrast month and arm, the patients with an observation
  at or after that month (:func:`ildstudy.lmm.at_risk.patients_at_risk`); a month has ``enough_data`` when every
  arm has at least ``analysis.min_at_risk`` (default :data:`MIN_AT_RISK`) such patients. Months without enough data are still estimated (the model
  extrapolates) but flagged "limited data" in the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ildstudy.lmm.at_risk import months_with_enough, patients_at_risk

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.lmm.results import LmmFit

#: Default minimum number of patients per arm with data at or after a contrast month (the protocol's
#: ``analysis.min_at_risk`` replaces it in a study).
MIN_AT_RISK = 10
SLOPE_COLUMNS = ["kind", "term", "month", "estimate", "se", "df", "ci_low", "ci_high", "p"]


def outcome_slopes(fit: LmmFit, formula: str, arms: list[str], reference_arm: str,
                   months: list[float], grid: dict | None = None) -> pd.DataFrame | None:
    """Annualised slopes per arm and slope differences (arm − reference) of one outcome's model.

    Parameters
    ----------
    fit : LmmFit
        The outcome's fitted model (time variable ``months``; arm factor ``arm``).
    formula : str
        Its formula (``visit`` → no slopes; ``ns(``/``pl(`` → slopes at ``months``).
    arms : list of str
        Protocol order (reference last).
    reference_arm : str
    months : list of float
        Contrast months (used for curved time only).
    grid : dict, optional
        Reference-grid options passed to the slopes (``weights``, ``cov_keep``), as for the marginal means.

    Returns
    -------
    DataFrame or None
        ``kind`` ("slope" or "difference"), ``term`` (arm, or "AZA - MMF"), ``month`` (NaN for linear time),
        ``estimate, se, df, ci_low, ci_high`` (per year), ``p`` (slope = 0 / difference = 0); ``None`` for a
        visit-factor model.
    """
    fixed = formula.split("(1", 1)[0]
    if "visit" in fixed:
        return None
    curved = "ns(" in fixed or "pl(" in fixed
    at = {"months": list(months) if curved else [0.0]}
    g = grid or {}
    s = fit.slopes("months", "arm", by="months", at=at, per=12, **g).table
    d = fit.slope_contrast("months", "arm", by="months", at=at, method="trt.vs.ctrl", ref=reference_arm, per=12,
                           **g)
    rows = []
    for r in s.itertuples(index=False):
        rows.append({"kind": "slope", "term": str(r.arm), "month": float(r.months) if curved else np.nan,
                     **{k: float(getattr(r, k)) for k in ("estimate", "se", "df", "ci_low", "ci_high", "p")}})
    for r in d.itertuples(index=False):
        rows.append({"kind": "difference", "term": str(r.contrast), "month": float(r.months) if curved else np.nan,
                     **{k: float(getattr(r, k)) for k in ("estimate", "se", "df", "ci_low", "ci_high", "p")}})
    order = {a: i for i, a in enumerate(arms)}
    out = pd.DataFrame(rows, columns=SLOPE_COLUMNS)
    key = out["term"].map(lambda t: order.get(t, len(order)))
    out = out.assign(_k=(out["kind"] == "difference").astype(int), _a=key)
    return out.sort_values(["_k", "month", "_a"], kind="stable").drop(columns=["_k", "_a"]).reset_index(drop=True)


def contrast_support(frame: pd.DataFrame, outcome: str, arms: list[str], months: list[float],
                     minimum: int = MIN_AT_RISK, columns: list[str] | None = None) -> pd.DataFrame:
    """Patients per arm with an observation at or after each contrast month, and whether it is enough.

    Parameters
    ----------
    frame : DataFrame[patient, arm, months, <outcome>, ...]
        The outcome's model frame; rows with the outcome (or any of ``columns``) missing are ignored, as the
        model ignores them.
    outcome : str
    arms : list of str
    months : list of float
    minimum : int
        Patients needed in every arm (:data:`MIN_AT_RISK`).
    columns : list of str, optional
        Further model columns (covariates) that must be present.

    Returns
    -------
    DataFrame
        ``month, n_at_risk_<ARM>..., min_at_risk, enough_data``.
    """
    need = [outcome, "months", "arm", *(columns or [])]
    rows = frame.dropna(subset=[c for c in need if c in frame.columns])
    risk = patients_at_risk(rows["patient"], rows["arm"].astype(str), rows["months"], at=months, arms=arms)
    enough = months_with_enough(risk, minimum)
    out = pd.DataFrame({"month": risk.index.to_numpy(dtype=float)})
    for a in arms:
        out[f"n_at_risk_{a}"] = risk[a].to_numpy(dtype=np.int64)
    out["min_at_risk"] = int(minimum)
    out["enough_data"] = enough.to_numpy(dtype=bool)
    return out
