"""The numbers the synthetic registry is calibrated to (``STUDY.md``, "Calibration targets").

Everything the generator plants is stated here once: how many patients of each kind, the covariate
shares, the adverse-event rates and the three outcome models. The outcome models are linear mixed
models with the study's own formula,

    y ~ months * arm + female + age + antisynthetase + ever_smoker + (1 + months | id)

so the true covariate-adjusted AZA - MMF difference at month m is ``arm + months_arm * m``: the
36-month differences are the published +1.9 (FVC %), -8.2 (DLCO %) and -6.6 mg/day (prednisone).
The remaining parameters are assumptions chosen so that, on the default (balanced) registry, the study's
mixed models show the published findings with margins (checked in ``tests/test_synth.py``; on ten seeds:
baseline FVC % and DLCO % lower in AZA, Welch p <= 0.005 and <= 0.007; FVC % improving in both arms and
DLCO % in AZA only, p <= 0.007; prednisone falling in both arms; at 36 months prednisone significant,
FVC % (p ~ 0.5) and DLCO % (p 0.086-0.125) not). DLCO's wide between-patient spread, the fifth of
patients without any DLCO and DLCO at half of the follow-up visits are what keep its 36-month difference
of -8.2 not significant, as published, while the 13.5-point baseline gap keeps the AZA slope clear.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Attrition steps of ``docs/protocol.md``, in order; a planted patient fails exactly one of them.
STEPS: tuple[str, ...] = (
    "population", "arm_drug", "index_before_cut", "both_arms", "other_agents", "baseline_pft", "follow_up",
)

#: Outcomes of the built-in protocol, in the order the truth reports them.
OUTCOMES: tuple[str, ...] = ("fvc_pct_pred", "dlco_pct_pred", "prednisone_mg")


@dataclass(frozen=True, slots=True)
class OutcomeModel:
    """The data-generating linear mixed model of one outcome.

    Fixed effects use the coding of the study formula: ``arm`` is 1 for the treatment arm (the
    protocol's first arm, AZA) and 0 for the reference arm; ``female`` 1 for F; ``age`` in years at
    index (days / 365.25); ``antisynthetase`` 1 when any antisynthetase antibody is positive;
    ``ever_smoker`` 1 for former or current smokers. Random intercept and slope (per month) have
    standard deviations ``sd_intercept`` and ``sd_slope`` and correlation ``corr`` (distributions in
    :mod:`ildstudy.synth.balance`); observations add independent normal noise with ``residual_sd``.
    Values are rounded to ``decimals`` and kept in ``[low, high]`` (the bounded random effects keep
    values at a bound rare: about 0.2% of DLCO values, none of FVC).
    """

    name: str
    intercept: float
    months: float
    arm: float
    months_arm: float
    female: float
    age: float
    antisynthetase: float
    ever_smoker: float
    sd_intercept: float
    sd_slope: float
    corr: float
    residual_sd: float
    decimals: int = 1
    low: float = 0.0
    high: float = 200.0

    def fixed_mean(self, months, treated, female, age, antisynthetase, ever_smoker) -> np.ndarray:
        """The population mean: fixed effects only (arrays broadcast)."""
        return (self.intercept + self.months * months + self.arm * treated + self.months_arm * months * treated
                + self.female * female + self.age * age + self.antisynthetase * antisynthetase
                + self.ever_smoker * ever_smoker)

    def arm_difference(self, month: float) -> float:
        """True covariate-adjusted treatment - reference difference at ``month``."""
        return self.arm + self.months_arm * month

    def slope(self, treated: bool) -> float:
        """True within-arm change per month."""
        return self.months + (self.months_arm if treated else 0.0)

    def fixed_effects(self) -> dict[str, float]:
        """Fixed effects named as R prints them (treatment arm ``AZA``; covariates as 0/1 and years)."""
        return {"(Intercept)": self.intercept, "months": self.months, "armAZA": self.arm,
                "female": self.female, "age": self.age, "antisynthetase": self.antisynthetase,
                "ever_smoker": self.ever_smoker, "months:armAZA": self.months_arm}

    def as_dict(self) -> dict:
        return asdict(self)


#: FVC % predicted: AZA starts ~8 points lower and gains 0.275 %/month more; +1.9 at 36 months.
FVC = OutcomeModel(
    "fvc_pct_pred", intercept=70.5, months=0.12, arm=-8.0, months_arm=(1.9 + 8.0) / 36,
    female=2.0, age=-0.10, antisynthetase=-2.5, ever_smoker=-2.0,
    sd_intercept=12.0, sd_slope=0.15, corr=0.2, residual_sd=4.0, decimals=1, low=15.0, high=150.0,
)

#: DLCO % predicted: AZA starts ~13.5 points lower; MMF flat, AZA improving; -8.2 at 36 months.
#: Wide between-patient spread, a fifth of patients without any DLCO and DLCO at half the follow-up
#: visits make the 36-month difference imprecise (as published: not significant) while the AZA slope
#: stays clearly positive.
DLCO = OutcomeModel(
    "dlco_pct_pred", intercept=65.65, months=-0.01, arm=-13.5, months_arm=(-8.2 + 13.5) / 36,
    female=1.0, age=-0.15, antisynthetase=-2.5, ever_smoker=-4.0,
    sd_intercept=18.0, sd_slope=0.28, corr=0.15, residual_sd=5.0, decimals=1, low=5.0, high=150.0,
)

#: Prednisone-equivalent mg/day at the dose months: both arms ~25 at index; MMF -> ~18, AZA -> ~7 at 60 months.
PREDNISONE = OutcomeModel(
    "prednisone_mg", intercept=25.5, months=-0.12, arm=0.0, months_arm=-6.6 / 36,
    female=-0.5, age=-0.01, antisynthetase=1.0, ever_smoker=0.0,
    sd_intercept=3.0, sd_slope=0.04, corr=-0.6, residual_sd=1.0, decimals=1, low=0.0, high=200.0,
)

MODELS: dict[str, OutcomeModel] = {m.name: m for m in (FVC, DLCO, PREDNISONE)}


@dataclass(frozen=True, slots=True)
class Calibration:
    """Counts and shares of the default registry; ``n_patients=N`` scales the counts to N.

    ``eligible`` is (treatment, reference) arm sizes; ``planted`` the ineligible patients per
    attrition step; ``adverse_events`` (treatment, reference) eligible patients with at least one
    adverse event in their follow-up window.
    """

    eligible: tuple[int, int] = (66, 44)
    planted: tuple[tuple[str, int], ...] = (
        ("population", 10), ("arm_drug", 6), ("index_before_cut", 4), ("both_arms", 6),
        ("other_agents", 8), ("baseline_pft", 6), ("follow_up", 5),
    )
    adverse_events: tuple[int, int] = (22, 6)
    female: float = 0.67
    antisynthetase: float = 0.65
    smoking: tuple[float, float, float] = (0.70, 0.22, 0.08)  # never, former, current
    age_mean: float = 50.0
    age_sd: float = 12.0
    treatment_share_planted: float = 0.6
    ae_discontinued: float = 0.45      # share of eligible AE patients whose AE stopped the arm drug
    other_stop: float = 0.25           # share of the other eligible patients who stop before 60 months
    switch_share: float = 0.5          # share of stoppers (inefficacy or AE) who switch to the other arm
    index_years: float = 17.0          # index dates over this many years before (data cut - 2 years): 2000-2016
    dlco_measured: float = 0.5         # share of follow-up visits with a DLCO
    dlco_never: float = 0.2            # share of patients who never have a DLCO

    @property
    def n_default(self) -> int:
        return sum(self.eligible) + sum(n for _, n in self.planted)

    def group_counts(self, n_patients: int | None) -> dict[str, int]:
        """Patients per group (``eligible_0``, ``eligible_1`` and each step) summing to ``n_patients``.

        ``None`` gives the default counts; otherwise the default proportions are scaled by largest
        remainders so that the counts add up exactly.
        """
        names = ["eligible_0", "eligible_1"] + [s for s, _ in self.planted]
        weights = np.array(list(self.eligible) + [n for _, n in self.planted], dtype=float)
        if n_patients is None:
            return dict(zip(names, weights.astype(int).tolist()))
        return dict(zip(names, largest_remainder(n_patients, weights).tolist()))

    def ae_count(self, arm: int, n_arm: int, n_default_arm: int) -> int:
        """Eligible patients of an arm with an in-window adverse event, at the default rate."""
        return int(np.floor(n_arm * self.adverse_events[arm] / n_default_arm + 0.5))


HUAPAYA2019 = Calibration()


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (ties go to the earlier entry)."""
    weights = np.asarray(weights, dtype=float)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    short = int(total - counts.sum())
    if short:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts
