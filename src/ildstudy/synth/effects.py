"""Planting another treatment effect in a sampled registry (simulation-based power, ``ildstudy power``).

An effect ``outcome@month=delta`` asks for a registry whose *true* covariate-adjusted difference
treatment - reference (AZA - MMF) of ``outcome`` at ``month`` is ``delta``. In the outcome models of
:mod:`ildstudy.synth.calibration` that difference is ``arm + months_arm * month``; :func:`planted_model`
keeps the calibrated baseline difference ``arm`` (the month-0 imbalance of the published study) and
changes the slope difference ``months_arm`` to ``(delta - arm) / month``. For ``month = 0`` the baseline
difference itself becomes ``delta`` and the slope difference is kept. Every other parameter (covariate
effects, random-effect SDs and correlation, residual SD, rounding, range) stays as calibrated.

The rows are then built exactly as for the calibrated models: every outcome value is
``fixed part + b0 + b1 * months + residual`` (rounded, kept in range), and a change ``d`` of the fixed
effects changes the fixed part by ``C_i d`` (``C_i`` maps the fixed effects of patient ``i`` to an
intercept and a slope, :func:`~ildstudy.synth.balance.design_rows`), so :func:`shifted_random_effects`
adds ``C_i d`` to each patient's random intercept and slope. With the same seed, a registry with a
planted effect differs from the calibrated one only in the outcome values of the shifted outcome.
This holds for *sampled* registries only: the balanced construction re-centres the random effects
within each arm and would undo the shift (:func:`~ildstudy.synth.generate_registry` refuses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from ildstudy.synth.balance import design_rows
from ildstudy.synth.calibration import MODELS, OUTCOMES, OutcomeModel

#: parameters a planted model must share with the calibrated one (the random effects are drawn with them)
VARIANCE_FIELDS = ("sd_intercept", "sd_slope", "corr", "residual_sd")


def planted_model(name: str, month: float, delta: float) -> OutcomeModel:
    """The calibrated model of ``name`` with a true treatment - reference difference ``delta`` at ``month``.

    Parameters
    ----------
    name : str
        An outcome of the generator (:data:`~ildstudy.synth.calibration.OUTCOMES`).
    month : float
        Month since index, ``>= 0``.
    delta : float
        The true adjusted difference treatment - reference at ``month``.

    Returns
    -------
    OutcomeModel
        ``months_arm = (delta - arm) / month`` (``month > 0``) or ``arm = delta`` (``month == 0``).

    Examples
    --------
    >>> m = planted_model("fvc_pct_pred", 36, 5.0)
    >>> round(m.arm_difference(36), 12), m.arm == MODELS["fvc_pct_pred"].arm
    (5.0, True)
    """
    if name not in MODELS:
        raise ValueError(f"outcome {name!r}: the generator plants only {', '.join(OUTCOMES)}")
    month, delta = float(month), float(delta)
    if not (np.isfinite(month) and month >= 0) or not np.isfinite(delta):
        raise ValueError(f"outcome {name!r}: month must be >= 0 and delta finite (got {month!r}, {delta!r})")
    base = MODELS[name]
    if month == 0:
        return dataclasses.replace(base, arm=delta)
    return dataclasses.replace(base, months_arm=(delta - base.arm) / month)


def checked_models(models: Mapping[str, OutcomeModel] | None) -> dict[str, OutcomeModel]:
    """The calibrated models with ``models`` in place of theirs; only fixed effects may differ."""
    merged = dict(MODELS)
    for name, model in (models or {}).items():
        if name not in MODELS or model.name != name:
            raise ValueError(f"model {name!r}: the generator plants only {', '.join(OUTCOMES)}")
        changed = [f for f in VARIANCE_FIELDS + ("decimals", "low", "high")
                   if getattr(model, f) != getattr(MODELS[name], f)]
        if changed:
            raise ValueError(f"model {name!r}: only fixed effects can be changed, not {', '.join(changed)}")
        merged[name] = model
    return merged


def shifted_random_effects(re: np.ndarray, models: Mapping[str, OutcomeModel], treated: np.ndarray,
                           female: np.ndarray, age: np.ndarray, antisynthetase: np.ndarray,
                           ever_smoker: np.ndarray) -> np.ndarray:
    """Random effects (n, outcomes, 2) plus ``C_i (beta_new - beta_calibrated)`` for each changed outcome.

    ``treated`` is 1 for the treatment arm (AZA); the covariates are per patient, as in the plan.
    """
    out = np.array(re, dtype=float, copy=True)
    c = design_rows(np.asarray(treated, float), female, age, antisynthetase, ever_smoker)   # (n, 2, 8)
    for k, name in enumerate(OUTCOMES):
        model = models.get(name, MODELS[name])
        d = (np.array(list(model.fixed_effects().values()))
             - np.array(list(MODELS[name].fixed_effects().values())))
        if np.any(d != 0):
            out[:, k, :] += c @ d
    return out
