"""Pulmonary function tests: irregular visits and values from the outcome models.

Visits: a few before index (outside the baseline window), the baseline visit (inside it, closest to
index), sometimes a second one inside the window (farther from index), then follow-up visits every
3-6 months with jitter from the plan's first follow-up day until the patient leaves the clinic or the
data cut. FVC % and DLCO % follow the outcome models at months since index (the baseline visit at
month 0, as the analysis places it); visits before the baseline window repeat the baseline level.
DLCO is missing at some visits, FVC at a few later ones; absolute FVC, FEV1 and DLCO (in mL/min/mmHg or
mmol/min/kPa) are derived from the percentages with rough reference values.
"""

from __future__ import annotations

import numpy as np

from ildstudy.reference import lungfunction as lf
from ildstudy.reference.lungfunction.gli_tlco2017 import TRADITIONAL_PER_SI
from ildstudy.synth.balance import balance_to_design, design_rows
from ildstudy.synth.calibration import MODELS, Calibration
from ildstudy.synth.columns import Coded, Dates, Table
from ildstudy.synth.plan import Plan
from ildstudy.synth.windows import DAYS_PER_MONTH, NONE, Windows, choose, row_order, uniform_int

DLCO_UNITS = ("mL/min/mmHg", "mmol/min/kPa", "ml/min/mmHg")
#: mL/min/mmHg per mmol/min/kPa, as the reference equations convert (gli_tlco2017.TRADITIONAL_PER_SI)
MMHG_PER_KPA = TRADITIONAL_PER_SI


def visit_days(plan: Plan, rng: np.random.Generator, win: Windows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All visits: (patient, day offset, kind) with kind 0 = before window, 1 = baseline, 2 = extra in-window,
    3 = follow-up (the first follow-up visit is always kept)."""
    n = plan.n
    pid = np.arange(n)
    n_pre = choose(rng, (0.5, 0.35, 0.15), n)
    n_pre = np.where(plan.base_visit >= NONE, np.maximum(n_pre, 1), n_pre)
    pre = win.baseline_from - 30 - uniform_int(rng, 0, 600, (n, 2))
    pre_keep = np.arange(2)[None, :] < n_pre[:, None]
    parts = [(np.repeat(pid[:, None], 2, 1)[pre_keep], pre[pre_keep], 0)]
    has_base = plan.base_visit < NONE
    parts.append((pid[has_base], plan.base_visit[has_base], 1))
    has_extra = plan.extra_visit < NONE
    parts.append((pid[has_extra], plan.extra_visit[has_extra], 2))

    span = int(np.max(plan.visit_end - plan.first_visit, initial=0))
    k_max = max(1, span // 90 + 2)
    gaps = uniform_int(rng, 90, 185, (n, k_max))
    gaps[:, 0] = 0
    days = plan.first_visit[:, None] + np.cumsum(gaps, axis=1)
    days = np.where(np.abs(days - win.max_days) <= win.margin, days + 7, days)   # clear of the 60-month edge
    keep = days <= plan.visit_end[:, None]
    keep[:, 0] = True
    parts.append((np.repeat(pid[:, None], k_max, 1)[keep], days[keep], 3))
    patient = np.concatenate([p for p, _, _ in parts])
    day = np.concatenate([d for _, d, _ in parts])
    kind = np.concatenate([np.full(len(p), k, np.int8) for p, _, k in parts])
    order = row_order(patient, day)
    return patient[order], day[order], kind[order]


def outcome_values(name: str, plan: Plan, patient: np.ndarray, months: np.ndarray, rng: np.random.Generator,
                   analysed: np.ndarray, baseline: np.ndarray | None = None) -> np.ndarray:
    """Observed values of a PFT outcome at ``months`` for rows of ``patient`` (rounded, clipped).

    ``analysed`` marks the rows the study's model uses; a balanced plan adjusts the random effects to them
    (:func:`~ildstudy.synth.balance.balance_to_design`). ``baseline`` marks the baseline-visit rows: when the plan
    carries baseline residuals (planted confounding, :mod:`ildstudy.synth.confounding`) they use the patient's.
    """
    m = MODELS[name]
    k = 0 if name == "fvc_pct_pred" else 1
    treated = (plan.arm[patient] == 0).astype(float)
    mean = m.fixed_mean(months, treated, plan.female[patient], plan.age[patient],
                        plan.antisynthetase[patient], plan.smoking[patient] > 0)
    resid = m.residual_sd * rng.standard_normal(len(patient))
    if plan.base_resid is not None and baseline is not None:
        resid = np.where(baseline, plan.base_resid[patient, k], resid)
    b = plan.re[:, k, :]
    if plan.balanced:
        b = balance_to_design(b, patient, months, analysed, patient_design(plan), name, resid)
    y = mean + b[patient, 0] + b[patient, 1] * months + resid
    return np.clip(np.round(y, m.decimals), m.low, m.high)


def patient_design(plan: Plan) -> np.ndarray:
    """(n, 2, p) design of each eligible patient in the study formula (zeros for the others)."""
    c = design_rows((plan.arm == 0).astype(float), plan.female, plan.age, plan.antisynthetase, plan.smoking > 0)
    return c * plan.eligible[:, None, None]


def pft_rows(plan: Plan, rng: np.random.Generator, win: Windows, cal: Calibration) -> Table:
    """Rows of the ``pft`` table for the patients of ``plan``.

    DLCO is measured at ``cal.dlco_measured`` of follow-up visits, 97% of baseline visits and 88% of the
    others, never for the plan's ``no_dlco`` patients; FVC is missing at 2% of follow-up visits after the
    first.
    """
    patient, day, kind = visit_days(plan, rng, win)
    months = np.where(kind == 3, day / DAYS_PER_MONTH, 0.0)
    n = len(patient)
    followup_rank = _rank_within(patient, kind == 3)
    fvc_missing = (kind == 3) & (followup_rank >= 1) & (rng.random(n) < 0.02)
    fvc_missing |= (kind == 1) & plan.base_fvc_missing[patient]
    measured = np.select([kind == 3, kind == 1], [cal.dlco_measured, 0.97], 0.88)
    dlco_missing = (rng.random(n) >= measured) | plan.no_dlco[patient]
    dlco_missing &= ~fvc_missing
    analysed = plan.eligible[patient] & ((kind == 1) | ((kind == 3) & (day > win.baseline_to)
                                                          & (day <= plan.eof[patient])))
    fvc = outcome_values("fvc_pct_pred", plan, patient, months, rng, analysed & ~fvc_missing, kind == 1)
    dlco = outcome_values("dlco_pct_pred", plan, patient, months, rng, analysed & ~dlco_missing, kind == 1)
    fvc = np.where(fvc_missing, np.nan, fvc)
    dlco = np.where(dlco_missing, np.nan, dlco)

    # raw values consistent with the reference equations: recorded % predicted = 100 raw / predicted (GLI Global
    # 2022 for FVC, GLI-2017 TLCO for DLCO, traditional units), age at test as the cohort computes it
    age = (plan.index[patient] + day - plan.birth[patient]) / 365.25
    height = plan.height[patient]
    height = np.where(np.isnan(height), np.where(plan.female[patient], 162.0, 176.0), height)
    female = plan.female[patient]
    sex = np.where(female, "female", "male")
    fvc_pred = lf.predict("gli_global_2022", "fvc", sex, age, height, on_invalid="flag").predicted
    fvc_l = np.clip(np.round(fvc / 100 * fvc_pred, 2), 0.2, 9.0)
    fev1_l = np.clip(np.round(fvc_l * rng.uniform(0.78, 0.90, n), 2), 0.15, 9.0)
    has_l = rng.random(n) < 0.9
    fvc_l = np.where(has_l, fvc_l, np.nan)
    fev1_l = np.where(has_l, fev1_l, np.nan)
    dlco_pred = lf.predict("gli_tlco_2017", "tlco", sex, age, height, units="traditional",
                           on_invalid="flag").predicted
    dlco_abs = dlco / 100 * dlco_pred
    unit = choose(rng, (0.8, 0.15, 0.05), n).astype(np.int32)
    dlco_abs = np.where(unit == 1, np.round(dlco_abs / MMHG_PER_KPA, 2), np.round(dlco_abs, 1))
    unit = np.where(np.isnan(dlco_abs), -1, unit)
    hb = np.where(rng.random(n) < 0.6, np.round(rng.normal(13.2, 1.4, n), 1), np.nan)
    hb = np.clip(hb, 7.0, 18.0)
    return {"patient_id": patient, "test_date": Dates(plan.index[patient] + day), "fvc_pct_pred": fvc,
            "dlco_pct_pred": dlco, "fvc_l": fvc_l, "fev1_l": fev1_l, "dlco": dlco_abs,
            "dlco_unit": Coded(unit, DLCO_UNITS), "hemoglobin_g_dl": hb}


def _rank_within(patient: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """0-based rank of each masked row among the masked rows of its patient (rows sorted by patient)."""
    c = np.cumsum(mask)
    start = np.r_[True, patient[1:] != patient[:-1]]
    base = np.maximum.accumulate(np.where(start, c - mask, 0))
    return np.where(mask, c - base - 1, -1)
