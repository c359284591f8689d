"""Planted confounding by indication (``ildstudy synth --confounding STRENGTH``): sicker patients get azathioprine.

In the calibrated models the published baseline imbalance (lower FVC and DLCO on AZA) is the fixed effect ``arm``:
a difference that exists at month 0, before either drug can act. With confounding planted it is produced by
selection instead:

* the ``arm`` coefficients of the FVC and DLCO models are set to 0 (:func:`confounded_models`), so the true, causal
  arm difference at month m is ``months_arm x m`` (a difference in decline only) -- ``truth.json``'s
  ``arm_differences``;
* each eligible patient's latent severity is ``s = -(b_FVC / sd_FVC + b_DLCO / sd_DLCO) / sqrt(2)`` from the
  random intercepts (the patient's own level of FVC and DLCO, which the baseline PFT measures with noise);
  the FVC and DLCO random-effect rows of the eligible patients are then dealt to the arms so that a row goes to
  the first arm (AZA) with odds rising as ``exp(strength x s)``: keys ``strength x s + Gumbel`` and the ``n_AZA``
  largest go to AZA (sampling without replacement with weights ``exp(strength x s)``, Plackett–Luce), the rest to
  MMF, each arm's rows in random order (:func:`confounded_random_effects`); prednisone random effects stay with
  their patient. The arm sizes and everything else planted per arm
  (covariates, adverse events, stops) stay exactly as without confounding.

The naive comparison of the arms is then biased by the arms' difference in mean random intercept (and, through the
intercept-slope correlation, in slope); a propensity score on the observed baseline FVC and DLCO removes most of
it (not all: the baseline PFT measures the latent level with residual noise, reliability
``sd_intercept^2 / (sd_intercept^2 + residual_sd^2)``, 0.90 for FVC and 0.93 for DLCO).
Sampled registries only (the balanced construction re-centres the random effects within each arm and would undo
the selection).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ildstudy.synth.calibration import MODELS, OUTCOMES, OutcomeModel

#: outcomes whose baseline level drives the choice of drug
SEVERITY_OUTCOMES = ("fvc_pct_pred", "dlco_pct_pred")


def confounded_models(models: dict[str, OutcomeModel] | None) -> dict[str, OutcomeModel]:
    """``models`` with the baseline arm difference of FVC and DLCO removed (``arm = 0``), unless given."""
    out = dict(models or {})
    for name in SEVERITY_OUTCOMES:
        out.setdefault(name, dataclasses.replace(MODELS[name], arm=0.0))
    return out


def latent_severity(re: np.ndarray) -> np.ndarray:
    """``-(b_FVC / sd_FVC + b_DLCO / sd_DLCO) / sqrt(2)`` per patient (random intercepts, shape (n, outcomes, 2))."""
    z = [re[:, OUTCOMES.index(o), 0] / MODELS[o].sd_intercept for o in SEVERITY_OUTCOMES]
    return -(z[0] + z[1]) / np.sqrt(2.0)


def confounded_random_effects(re: np.ndarray, group: np.ndarray, strength: float,
                              rng: np.random.Generator) -> np.ndarray:
    """The random effects with the eligible patients' rows dealt to the arms by severity (module text).

    ``group`` 0 / 1 are the eligible patients of the first / reference arm; other patients keep their rows."""
    if not np.isfinite(strength) or strength < 0:
        raise ValueError(f"confounding strength must be a finite number >= 0, got {strength!r}")
    out = np.array(re, dtype=float, copy=True)
    eligible = np.flatnonzero(group < 2)
    k = [OUTCOMES.index(o) for o in SEVERITY_OUTCOMES]      # the prednisone random effects stay with their patient
    rows = out[eligible][:, k, :]
    keys = strength * (-(rows[:, 0, 0] / MODELS[SEVERITY_OUTCOMES[0]].sd_intercept
                         + rows[:, 1, 0] / MODELS[SEVERITY_OUTCOMES[1]].sd_intercept) / np.sqrt(2.0))
    keys = keys + rng.gumbel(size=len(eligible))
    ranked = rows[np.argsort(-keys, kind="stable")]
    first = eligible[group[eligible] == 0]
    second = eligible[group[eligible] == 1]
    for dest, src in ((rng.permutation(first), ranked[:len(first)]), (rng.permutation(second), ranked[len(first):])):
        for j, kk in enumerate(k):
            out[dest, kk, :] = src[:, j, :]
    return out


def confounding_truth(strength: float, re: np.ndarray, group: np.ndarray) -> dict:
    """The ``confounding`` block of ``truth.json``: the setting and the realised imbalance it planted."""
    sev = latent_severity(re)
    first, second = group == 0, group == 1
    b = {o: float(np.mean(re[first, OUTCOMES.index(o), 0]) - np.mean(re[second, OUTCOMES.index(o), 0]))
         for o in SEVERITY_OUTCOMES}
    return {
        "strength": float(strength),
        "mechanism": "random-effect rows dealt to arms with odds exp(strength * severity), severity = "
                     "-(b_FVC/sd_FVC + b_DLCO/sd_DLCO)/sqrt(2); FVC and DLCO arm coefficients set to 0",
        "severity_difference": float(np.mean(sev[first]) - np.mean(sev[second])),
        "random_intercept_difference": {o: round(v, 6) for o, v in b.items()},
        "causal_contrast": "arm_differences (months_arm * month: no difference at month 0)",
    }
