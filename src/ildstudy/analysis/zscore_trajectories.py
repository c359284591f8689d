"""FVC and DLCO z-score trajectories per arm (``[lung_function] zscore_trajectories``).

% predicted hides age: a patient's % predicted drifts as the reference population ages, and 80% means different
things at 30 and at 75. The z-score (the GLI's standardised distance from the healthy median; −1.645 is the lower
limit of normal) is the ATS/ERS-recommended scale. This fits each PFT outcome's mixed model — the same formula,
covariates, time model and marginal-mean settings as its % predicted outcome (:func:`ildstudy.analysis.
trajectories.fit_outcome`) — to the z-scores of the study's equation (``reference_equation``, or
``check_equation`` when % predicted are used as recorded), giving the marginal mean z-score per arm at the
contrast months and the arm differences. The z-scores are a secondary, exploratory view: they never replace the
protocol's outcomes and do not enter the primary endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ildstudy._json import frame_records
from ildstudy.analysis.result import OutcomeResult
from ildstudy.errors import ModelError
from ildstudy.protocol import Outcome, Protocol

#: z-score outcome -> the % predicted outcome whose model settings it takes
ZSCORE_OUTCOMES = {"fvc_zscore": "fvc_pct_pred", "dlco_zscore": "dlco_pct_pred"}


@dataclass(frozen=True)
class ZscoreTrajectories:
    """``equation`` (spirometry; DLCO uses ``dlco_equation``), ``fits`` (z outcome -> its OutcomeResult) and
    ``not_fitted`` (z outcome -> why: no z-scores in the cohort, or the model could not be fitted)."""

    equation: str
    dlco_equation: str
    fits: dict[str, OutcomeResult] = field(default_factory=dict)
    not_fitted: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """results.json ``lung_function.zscore_trajectories``: per z outcome ``{available, reason, formula,
        n_obs, n_patients, marginal_means, arm_differences}``."""
        out = {"equation": self.equation, "dlco_equation": self.dlco_equation, "outcomes": {}}
        for name in ZSCORE_OUTCOMES:
            if name in self.fits:
                fit = self.fits[name]
                out["outcomes"][name] = {
                    "available": True, "reason": None, "formula": fit.formula, "n_obs": fit.model["n_obs"],
                    "n_patients": fit.model["n_patients"], "marginal_means": frame_records(fit.marginal_means),
                    "arm_differences": frame_records(fit.arm_differences)}
            elif name in self.not_fitted:
                out["outcomes"][name] = {"available": False, "reason": self.not_fitted[name], "formula": None,
                                         "n_obs": 0, "n_patients": 0, "marginal_means": None,
                                         "arm_differences": None}
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """``lung_function_zscore_means`` and ``lung_function_zscore_differences`` (column ``outcome`` first)."""
        means = [f.marginal_means.assign(outcome=n) for n, f in self.fits.items()]
        diffs = [f.arm_differences.assign(outcome=n) for n, f in self.fits.items()]

        def stack(frames):
            if not frames:
                return pd.DataFrame({"outcome": pd.Series(dtype=object)})
            frame = pd.concat(frames, ignore_index=True)
            return frame[["outcome", *[c for c in frame.columns if c != "outcome"]]]

        return {"lung_function_zscore_means": stack(means), "lung_function_zscore_differences": stack(diffs)}


def zscore_trajectories(patients: pd.DataFrame, outcomes: pd.DataFrame, protocol: Protocol) -> ZscoreTrajectories:
    """Fit the z-score models; an outcome without z-scores in the cohort, or whose model cannot be fitted, is
    listed in ``not_fitted`` with the reason (the study goes on)."""
    from ildstudy.analysis.trajectories import fit_outcome, model_frame

    lung = protocol.lung
    by_name = {o.name: o for o in protocol.outcomes}
    result = ZscoreTrajectories(lung.equation, lung.dlco_equation)
    for name, pct in ZSCORE_OUTCOMES.items():
        like = by_name.get(pct)  # its model settings (time model, knots, random effects), under the z-score's name
        outcome = (like.model_copy(update={"name": name, "label": ""}) if like
                   else Outcome(name=name, source="pft"))
        frame = model_frame(patients, outcomes, name)
        if frame[name].notna().sum() == 0:
            result.not_fitted[name] = "no z-scores in the cohort's PFTs (no raw values, or none recomputable)"
            continue
        try:
            result.fits[name] = fit_outcome(outcome, frame, protocol)
        except ModelError as exc:
            result.not_fitted[name] = str(exc)
    return result
