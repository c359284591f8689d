"""Planted confounding by indication (``ildstudy synth --confounding STRENGTH``): patients whose baseline PFT is
worse get azathioprine.

In the calibrated models the published baseline imbalance (lower FVC and DLCO on AZA) is the fixed effect ``arm``:
a difference that exists at month 0, before either drug can act. With confounding planted it is produced by
selection on what the clinician saw, the baseline PFT as measured:

* the ``arm`` coefficients of the FVC and DLCO models are set to 0 (:func:`confounded_models`), so the true, causal
  arm difference at month m is ``months_arm x m`` (a difference in decline only) -- ``truth.json``'s
  ``arm_differences``;
* each patient gets a baseline-visit residual ``e0`` per outcome (normal, SD ``residual_sd``), used by the baseline
  PFT instead of a fresh draw (:func:`ildstudy.synth.measurements.outcome_values`), so the patient's baseline
  value is ``fixed part(covariates) + b0 + e0``;
* a patient's *observed severity* is ``s = -((b0 + e0)_FVC / sd_FVC + (b0 + e0)_DLCO / sd_DLCO) / sqrt(2)``,
  ``sd = sqrt(sd_intercept^2 + residual_sd^2)``: the baseline FVC and DLCO % predicted as measured, net of the
  covariate part of the model (sex, age, antisynthetase, smoking), which the propensity score also sees;
* the bundles ``(b0, b1, e0)`` of FVC and DLCO of the eligible patients are dealt to the arms: the ``n_AZA``
  largest keys ``strength x s + L`` (``L`` standard logistic) go to AZA, the rest to MMF, each arm's bundles in
  random order (:func:`confounded_plan`). With the arm sizes fixed, the key's threshold is nearly constant, so a
  bundle goes to AZA with probability ``expit(strength x s - threshold)``: the log odds of AZA are linear in the
  observed baseline FVC and DLCO and the covariates, i.e. a logistic propensity score on those is correctly
  specified (up to the covariates' own per-arm distributions, planted exactly as without confounding).

Prednisone random effects stay with their patient; the arm sizes and everything else planted per arm
(covariates, adverse events, stops) stay exactly as without confounding. Given the observed baseline and the
covariates, the rest of a bundle (its slope, the part of ``b0`` the residual hides) no longer depends on the arm,
so a propensity score on the observed baseline removes the bias; the naive comparison keeps the arms' difference in
mean random intercept (and, through the intercept-slope correlation, in slope). Sampled registries only (the
balanced construction re-centres the random effects within each arm and would undo the selection).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ildstudy.synth.calibration import MODELS, OUTCOMES, OutcomeModel

#: outcomes whose baseline value drives the choice of drug
SEVERITY_OUTCOMES = ("fvc_pct_pred", "dlco_pct_pred")


def confounded_models(models: dict[str, OutcomeModel] | None) -> dict[str, OutcomeModel]:
    """``models`` with the baseline arm difference of FVC and DLCO removed (``arm = 0``), unless given."""
    out = dict(models or {})
    for name in SEVERITY_OUTCOMES:
        out.setdefault(name, dataclasses.replace(MODELS[name], arm=0.0))
    return out


def observed_severity(re: np.ndarray, base_resid: np.ndarray) -> np.ndarray:
    """``-((b0 + e0)_FVC / sd_FVC + (b0 + e0)_DLCO / sd_DLCO) / sqrt(2)`` per patient (module text).

    ``re``: random effects, shape (n, outcomes, 2); ``base_resid``: baseline residuals, shape (n, 2), in
    :data:`SEVERITY_OUTCOMES` order."""
    z = []
    for j, o in enumerate(SEVERITY_OUTCOMES):
        m = MODELS[o]
        z.append((re[:, OUTCOMES.index(o), 0] + base_resid[:, j]) / np.hypot(m.sd_intercept, m.residual_sd))
    return -(z[0] + z[1]) / np.sqrt(2.0)


def confounded_plan(plan, strength: float, rng: np.random.Generator):
    """The plan with baseline residuals drawn and the eligible patients' bundles dealt by severity (module text).

    ``plan.group`` 0 / 1 are the eligible patients of the first / reference arm; other patients keep their rows.
    """
    if not np.isfinite(strength) or strength < 0:
        raise ValueError(f"confounding strength must be a finite number >= 0, got {strength!r}")
    re = np.array(plan.re, dtype=float, copy=True)
    sd = np.array([MODELS[o].residual_sd for o in SEVERITY_OUTCOMES])
    e0 = rng.standard_normal((plan.n, len(SEVERITY_OUTCOMES))) * sd
    group = plan.group
    eligible = np.flatnonzero(group < 2)
    k = [OUTCOMES.index(o) for o in SEVERITY_OUTCOMES]      # the prednisone random effects stay with their patient
    rows, resid = re[eligible][:, k, :], e0[eligible]
    full = np.zeros((len(eligible), len(OUTCOMES), 2))
    full[:, k, :] = rows
    keys = strength * observed_severity(full, resid) + rng.logistic(size=len(eligible))
    order = np.argsort(-keys, kind="stable")
    rows, resid = rows[order], resid[order]
    first = eligible[group[eligible] == 0]
    second = eligible[group[eligible] == 1]
    n1 = len(first)
    for dest, sl in ((rng.permutation(first), slice(0, n1)), (rng.permutation(second), slice(n1, None))):
        for j, kk in enumerate(k):
            re[dest, kk, :] = rows[sl, j, :]
        e0[dest] = resid[sl]
    return dataclasses.replace(plan, re=re, base_resid=e0)


def confounding_truth(strength: float, plan) -> dict:
    """The ``confounding`` block of ``truth.json``: the setting and the realised imbalance it planted."""
    sev = observed_severity(plan.re, plan.base_resid)
    first, second = plan.group == 0, plan.group == 1
    re, e0 = plan.re, plan.base_resid

    def diff(v: np.ndarray) -> float:
        return round(float(np.mean(v[first]) - np.mean(v[second])), 6)

    return {
        "strength": float(strength),
        "mechanism": "baseline PFT as measured decides the arm: (b0, b1, e0) bundles of FVC and DLCO dealt to arms "
                     "with log odds strength * severity + logistic noise, severity = -((b0+e0)_FVC/sd_FVC + "
                     "(b0+e0)_DLCO/sd_DLCO)/sqrt(2), sd = sqrt(sd_intercept^2 + residual_sd^2), e0 the baseline "
                     "visit's residual; FVC and DLCO arm coefficients set to 0",
        "severity_difference": diff(sev),
        "random_intercept_difference": {o: diff(re[:, OUTCOMES.index(o), 0]) for o in SEVERITY_OUTCOMES},
        "baseline_residual_difference": {o: diff(e0[:, j]) for j, o in enumerate(SEVERITY_OUTCOMES)},
        "causal_contrast": "arm_differences (months_arm * month: no difference at month 0)",
        "ignorable_given": "sex, age, antisynthetase, smoking and the baseline FVC and DLCO % predicted as measured",
    }
