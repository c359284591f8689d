"""The planted truth of a synthetic registry, written beside the tables as ``truth.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ildstudy.synth.calibration import MODELS, OUTCOMES, STEPS
from ildstudy.synth.medications import STEROID_STEP

FORMULA = "{y} ~ months * arm + female + age + antisynthetase + ever_smoker + (1 + months | id)"
CODING = {
    "months": "days since index / 30.4375 (PFT outcomes); the dose month for prednisone_mg",
    "arm": "1 for the protocol's first arm (AZA), 0 for the reference arm (MMF)",
    "female": "1 for sex F", "age": "years at index, (index - birth_date) / 365.25",
    "antisynthetase": "1 if any Jo-1, PL-7, PL-12, EJ, OJ, KS, Zo or Ha antibody is positive",
    "ever_smoker": "1 for former or current smokers",
}


@dataclass(frozen=True)
class Truth:
    """What a synthetic registry was built to contain.

    Attributes
    ----------
    n_patients : int
        Patients in ``patients`` (eligible and planted ineligible).
    arms : dict
        Eligible patients per arm, ``{"AZA": 66, "MMF": 44}``.
    attrition : dict
        Planted ineligible patients per attrition step (each fails exactly that step).
    adverse_events : dict
        Per arm, eligible patients with at least one adverse event in their follow-up window, and n.
    arm_differences : dict
        Per outcome, the true covariate-adjusted arm difference (first arm minus reference) at each
        contrast month (keys are the month as text, ``"36"``).
    within_arm_change : dict
        Per outcome and arm, the true change from month 0 at each contrast month.
    model : dict
        Per outcome, the data-generating linear mixed model (formula, fixed effects, random-effect SDs
        and correlation, residual SD, rounding and range of values).
    coding : dict
        How each model variable is coded (``months``, ``arm``, ``female``, ...).
    design : str
        ``"balanced"`` (the default registry: outcome data built so that the study's mixed models
        recover the fixed effects up to rounding, see :mod:`ildstudy.synth.balance`) or ``"sampled"``.
    seed : int or None
        The seed, when the registry was written by :func:`~ildstudy.synth.write_registry`.
    """

    n_patients: int
    protocol: str
    arms: dict[str, int]
    attrition: dict[str, int]
    adverse_events: dict[str, dict[str, int]]
    arm_differences: dict[str, dict[str, float]]
    within_arm_change: dict[str, dict[str, dict[str, float]]]
    model: dict[str, dict]
    design: str
    coding: dict[str, str] = field(default_factory=lambda: dict(CODING))
    seed: int | None = None
    notes: tuple[str, ...] = field(default=())
    #: Planted confounding by indication (:mod:`ildstudy.synth.confounding`); None (and absent from truth.json)
    #: without it.
    confounding: dict | None = None

    def to_dict(self) -> dict:
        return {
            "seed": self.seed, "protocol": self.protocol, "n_patients": self.n_patients, "arms": self.arms,
            "attrition": self.attrition, "adverse_events": self.adverse_events,
            "arm_differences": self.arm_differences, "within_arm_change": self.within_arm_change,
            "model": self.model, "coding": self.coding, "design": self.design, "notes": list(self.notes),
            **({"confounding": self.confounding} if self.confounding is not None else {}),
        }

    def to_json(self) -> str:
        """Deterministic JSON text (same truth, same bytes)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


def _month_key(m: float) -> str:
    return str(int(m)) if float(m).is_integer() else repr(float(m))


def _r(x: float) -> float:
    return float(round(x, 6)) + 0.0


def build_truth(protocol, group: np.ndarray, ae: np.ndarray, balanced: bool, models=None) -> Truth:
    """The truth of a plan: counts from the plan's groups and flags, effects from the outcome models
    (``models``: name -> OutcomeModel, default the calibrated :data:`~ildstudy.synth.calibration.MODELS`)."""
    models = MODELS if models is None else models
    names = [a.name for a in protocol.arms]
    arms = {names[a]: int((group == a).sum()) for a in (0, 1)}
    attrition = {step: int((group == 2 + i).sum()) for i, step in enumerate(STEPS)}
    adverse_events = {names[a]: {"patients_with_event": int(((group == a) & ae).sum()), "n": arms[names[a]]}
                      for a in (0, 1)}
    months = protocol.analysis.contrast_months
    differences = {o: {_month_key(m): _r(models[o].arm_difference(m)) for m in months} for o in OUTCOMES}
    change = {o: {names[a]: {_month_key(m): _r(models[o].slope(a == 0) * m) for m in months} for a in (0, 1)}
              for o in OUTCOMES}
    model = {}
    for o in OUTCOMES:
        m = models[o]
        fixed = {k.replace("AZA", names[0]): float(v) for k, v in m.fixed_effects().items()}
        model[o] = {"formula": FORMULA.format(y=o), "fixed_effects": fixed,
                    "random_effects": {"sd": [m.sd_intercept, m.sd_slope], "corr": m.corr,
                                       "distribution": ("intercept scores standardised Gamma(2) (right-skewed, >= -1.41 SD); "
                                                        "slope scores uniform (within +-sqrt(3) SD)")},
                    "residual_sd": m.residual_sd, "rounding": 10.0 ** -m.decimals, "range": [m.low, m.high]}
    model["prednisone_mg"]["rounding"] = {f"{k} mg": v for k, v in STEROID_STEP.items()}
    notes = (
        "arm_differences = armAZA + months:armAZA * month, the covariate-adjusted difference "
        f"{names[0]} - {names[1]} of the data-generating model",
        "balanced: random effects centred and whitened within each eligible arm, then moved by the smallest "
        "amount that makes the generalised least-squares estimate at the true variance parameters exact; the "
        "study's mixed models recover the fixed effects up to rounding" if balanced
        else "sampled: random effects and residuals drawn independently",
    )
    return Truth(n_patients=int(len(group)), protocol=protocol.name, arms=arms, attrition=attrition,
                 adverse_events=adverse_events, arm_differences=differences, within_arm_change=change,
                 model=model, design="balanced" if balanced else "sampled", notes=notes)
