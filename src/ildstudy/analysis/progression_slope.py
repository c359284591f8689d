"""The annualised FVC slope in mL/year per arm, from the mixed model of FVC in litres.

FVC in litres (``pft.fvc_l``, as recorded; the registered outcome ``fvc_l``) is multiplied by 1000 and fitted with
the protocol's covariates and linear time, whatever the ``[[outcomes]]`` time models:

    fvc_ml ~ months * arm + <covariates> + (1 + months | patient)

The slope of each arm is ``emtrends(fit, ~ arm, var = "months")`` × 12 (mL/year) and the difference arm −
reference ``contrast(emtrends(...), "trt.vs.ctrl")`` (:func:`ildstudy.analysis.outcome_slopes.outcome_slopes`),
Satterthwaite df and 95% CIs. Without FVC in litres in the cohort (or when the model cannot be fitted) the slope is
reported as not available, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from ildstudy._json import frame_records
from ildstudy.analysis.outcome_slopes import outcome_slopes
from ildstudy.errors import ModelError
from ildstudy.lmm import fit_lmm
from ildstudy.protocol import FVC_SLOPE_OUTCOME, Outcome

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.protocol import Protocol

ML_PER_L = 1000.0
SLOPE_NAME = "fvc_ml"
UNIT = "mL/year"


@dataclass(frozen=True)
class FvcSlopeResult:
    """``available`` (bool) and ``reason`` (why not); the ``formula``, ``n_obs``, ``n_patients`` and ``slopes``
    (DataFrame[kind, term, month, estimate, se, df, ci_low, ci_high, p], mL/year; None when not available)."""

    available: bool
    reason: str | None
    formula: str | None = None
    n_obs: int = 0
    n_patients: int = 0
    slopes: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"available": self.available, "reason": self.reason, "unit": UNIT, "outcome": FVC_SLOPE_OUTCOME,
                "formula": self.formula, "n_obs": self.n_obs, "n_patients": self.n_patients,
                "slopes": None if self.slopes is None else frame_records(self.slopes)}


def fvc_slope(frame: pd.DataFrame, protocol: Protocol) -> FvcSlopeResult:
    """Fit the FVC (mL) model and return the slopes per arm; not available (with the reason) when it cannot be.

    Parameters
    ----------
    frame : DataFrame[patient, arm, months, fvc_l, <covariate terms>...]
        :func:`ildstudy.analysis.trajectories.model_frame` of the outcome ``fvc_l``.
    protocol : Protocol
    """
    from ildstudy.analysis.trajectories import COVARIATE_COLUMNS, outcome_formula

    arms = [a.name for a in protocol.arms]
    data = frame.dropna(subset=[FVC_SLOPE_OUTCOME]).copy()
    if data.empty:
        return FvcSlopeResult(False, "no FVC in litres (pft.fvc_l) in the cohort's PFTs")
    data[SLOPE_NAME] = data.pop(FVC_SLOPE_OUTCOME) * ML_PER_L
    per_arm = data.groupby("arm")["patient"].nunique().reindex(arms, fill_value=0)
    later = data[data["months"] > 0].groupby("arm")["patient"].nunique().reindex(arms, fill_value=0)
    short = [a for a in arms if per_arm[a] == 0 or later[a] == 0]
    if short:
        return FvcSlopeResult(False, f"arm(s) {', '.join(short)} have no follow-up FVC in litres (pft.fvc_l)",
                              n_obs=len(data), n_patients=int(data["patient"].nunique()))
    outcome = Outcome(name=FVC_SLOPE_OUTCOME, source="pft", time_model="linear", random_effects="intercept_slope")
    formula = outcome_formula(outcome, protocol).replace(f"{FVC_SLOPE_OUTCOME} ~", f"{SLOPE_NAME} ~", 1)
    used = data.dropna(subset=[COVARIATE_COLUMNS[c] for c in protocol.analysis.covariates])
    grid = {"weights": protocol.analysis.marginal_means.weights,
            "cov_keep": protocol.analysis.marginal_means.cov_keep}
    levels = {"arm": [protocol.reference_arm] + [a for a in arms if a != protocol.reference_arm]}
    try:
        fit = fit_lmm(formula, used, reml=True, factor_levels=levels)
        slopes = outcome_slopes(fit, formula, arms, protocol.reference_arm, [0.0], grid=grid)
    except ModelError as exc:
        return FvcSlopeResult(False, f"the model {formula!r} cannot be fitted: {exc}", formula, len(used),
                              int(used["patient"].nunique()))
    return FvcSlopeResult(True, None, formula, len(used), int(used["patient"].nunique()), slopes)
