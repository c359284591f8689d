"""The protocol's ``[progression]`` on a cohort: each endpoint's decline times from the cohort's tables, then
:mod:`ildstudy.analysis.progression` and :mod:`ildstudy.analysis.progression_slope`.

Baseline values are the patients table's ``baseline_fvc_pct_pred`` / ``baseline_dlco_pct_pred`` (the baseline PFT);
follow-up tests are the long outcome rows of ``fvc_pct_pred`` / ``dlco_pct_pred`` after month 0 (PFTs after the
baseline window up to the end of follow-up; :func:`ildstudy.cohort.tables.outcomes_table`).
"""

from __future__ import annotations

import pandas as pd

from ildstudy.analysis.progression import (Criterion, DeclineTimes, ProgressionResult, combine_any, first_decline,
                                           progression_endpoint)
from ildstudy.analysis.progression_slope import fvc_slope
from ildstudy.protocol import FVC_SLOPE_OUTCOME, PROGRESSION_MEASURES, Protocol

#: The PPF physiological criterion (Raghu et al., AJRCCM 2022;205:e18-e47, "physiological criteria"): absolute
#: declines of % predicted.
PPF_CRITERIA = (Criterion("fvc", "absolute", 5.0), Criterion("dlco", "absolute", 10.0))
PPF_NAME = "ppf"
PPF_LABEL = "Physiological criterion of PPF (FVC \u2265 5 or DLCO \u2265 10 points % predicted)"


def measure_times(patients: pd.DataFrame, outcomes: pd.DataFrame, c: Criterion, *, confirmed: bool,
                  window: float | None) -> DeclineTimes:
    """:func:`~ildstudy.analysis.progression.first_decline` of one criterion for the patients, in their order."""
    col = PROGRESSION_MEASURES[c.measure]
    from ildstudy.analysis.trajectories import patient_positions

    rows = outcomes[(outcomes["outcome"] == col) & (outcomes["months"] > 0)]
    pos = patient_positions(patients, rows["patient_id"])
    rows, pos = rows[pos >= 0], pos[pos >= 0]
    baseline = pd.to_numeric(patients[f"baseline_{col}"], errors="coerce").to_numpy(dtype=float)
    return first_decline(baseline, pos, rows["months"].to_numpy(dtype=float), rows["value"].to_numpy(dtype=float),
                         kind=c.kind, threshold=c.threshold, confirmed=confirmed, window=window)


def study_progression(patients: pd.DataFrame, outcomes: pd.DataFrame, protocol: Protocol) -> ProgressionResult | None:
    """Every endpoint of ``protocol.progression`` and the FVC slope; ``None`` without ``[progression]``."""
    pr = protocol.progression
    if pr is None:
        return None
    from ildstudy.analysis.trajectories import model_frame

    arms = [a.name for a in protocol.arms]
    ref = protocol.reference_arm
    arm = patients["arm"].astype(str).to_numpy()
    months = tuple(float(m) for m in protocol.analysis.contrast_months)
    results = []
    for e in pr.endpoints:
        c = Criterion(e.measure, e.kind, float(e.threshold))
        times = measure_times(patients, outcomes, c, confirmed=e.confirmed, window=e.window_months)
        results.append(progression_endpoint(e.key, e.title, (c,), times, arm, arms, ref, confirmed=e.confirmed,
                                            window=e.window_months, report_months=months))
    if pr.ppf:
        w = float(pr.ppf_window_months)
        parts = [measure_times(patients, outcomes, c, confirmed=pr.ppf_confirmed, window=w) for c in PPF_CRITERIA]
        label = PPF_LABEL.replace(")", f", within {w:g} months{', confirmed' if pr.ppf_confirmed else ''})")
        results.append(progression_endpoint(PPF_NAME, label, PPF_CRITERIA, combine_any(parts), arm, arms, ref,
                                            confirmed=pr.ppf_confirmed, window=w,
                                            report_months=[m for m in months if m <= w] or months[:1]))
    slope = None
    if pr.fvc_slope:
        cov = list(dict.fromkeys(protocol.analysis.covariates))
        slope = fvc_slope(model_frame(patients, outcomes, FVC_SLOPE_OUTCOME, cov), protocol)
    return ProgressionResult(tuple(results), slope)

