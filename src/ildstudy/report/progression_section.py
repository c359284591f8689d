"""The report's "Progression" section as plain template context (the template escapes every string): one row per
endpoint (patients analysed and with a decline per arm, % free of progression at the report months, log-rank and
Cox), the annualised FVC slope per arm, and the methods sentences made from the protocol's ``[progression]``.

Reads typed results only (:class:`~ildstudy.analysis.progression.ProgressionResult`).
"""

from __future__ import annotations

from typing import Any

from ildstudy.analysis.result import StudyResult
from ildstudy.report import extract
from ildstudy.report.formatting import (DASH, fmt_ci, fmt_int, fmt_month, fmt_num, fmt_p, fmt_pct, is_missing,
                                        significant)

#: Months shown in the table (those that are contrast months and inside the endpoint's window).
SHOWN_MONTHS = (12.0, 24.0, 36.0)


def progression_context(result: StudyResult, figure: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Rows of the endpoint table and the slope table, and the methods text; ``None`` without progression."""
    pr = result.progression
    if pr is None:
        return None
    arms = extract.arm_names(result)
    contrast = [float(m) for m in result.protocol.analysis.contrast_months]
    months = [m for m in SHOWN_MONTHS if m in contrast] or contrast[-1:]
    rows = []
    for e in pr.endpoints:
        counts = e.counts.set_index("arm")
        hrs = extract.hazard_ratios(e.km)
        at = e.km.at_times.set_index(["arm", "time"])  # R's summary(fit, times, extend = TRUE), as in results.json
        cells = []
        for m in months:
            for a in arms:
                row = at.loc[(a, m)] if (a, m) in at.index else None
                if row is None or is_missing(row["survival"]):
                    cells.append(DASH)
                else:
                    cells.append(f"{fmt_pct(100 * float(row['survival']), 0)} (n = {fmt_int(row['n_risk'])})")
        rows.append({
            "label": e.label,
            "events": [f"{fmt_int(counts.loc[a, 'events'])}/{fmt_int(counts.loc[a, 'analysed'])}" for a in arms],
            "cells": cells,
            "logrank_p": fmt_p(e.km.logrank.p), "logrank_sig": significant(e.km.logrank.p),
            "hr": "; ".join(f"{fmt_num(h.hazard_ratio, 2)} ({fmt_ci(h.ci_low, h.ci_high, 2)})" for h in hrs) or DASH,
            "hr_p": "; ".join(fmt_p(h.p) for h in hrs) or DASH, "hr_sig": any(significant(h.p) for h in hrs),
            "not_analysed": sum(int(counts.loc[a, "no_baseline"]) for a in arms),
            "no_follow_up": sum(int(counts.loc[a, "no_follow_up_test"]) for a in arms),
        })
    return {"rows": rows, "arms": arms, "months": [fmt_month(m) for m in months], "slope": _slope(pr.fvc_slope),
            "methods": methods_sentences(result), "figure": figure}


def _slope(s) -> dict[str, Any] | None:
    if s is None:
        return None
    if not s.available:
        return {"available": False, "reason": s.reason, "rows": []}
    rows = [{"kind": r["kind"], "term": r["term"],
             "estimate": fmt_num(r["estimate"], 0, sign=r["kind"] == "difference"),
             "ci": fmt_ci(r["ci_low"], r["ci_high"], 0), "p": fmt_p(r["p"]) if not is_missing(r["p"]) else DASH,
             "sig": significant(r["p"])} for r in s.slopes.to_dict(orient="records")]
    return {"available": True, "reason": None, "rows": rows, "formula": s.formula, "n_obs": fmt_int(s.n_obs),
            "n_patients": fmt_int(s.n_patients)}


def methods_sentences(result: StudyResult) -> list[str]:
    """How the endpoints were defined and analysed, from the protocol's ``[progression]``."""
    pr = result.protocol.progression
    if pr is None:
        return []
    out = ["A decline is measured against the baseline PFT's value of the same measure (% predicted as recorded): "
           "relative declines in % of the baseline value, absolute declines in points of % predicted. The event "
           "time is that of the first follow-up test with a qualifying decline; patients without one are censored "
           "at their last test (within the endpoint's window), patients without a follow-up test at month 0, and "
           "patients without a baseline value of the measure are not analysed."]
    if any(e.confirmed for e in pr.endpoints) or (pr.ppf and pr.ppf_confirmed):
        out.append("For confirmed endpoints the next test of the measure must show the decline too; the event "
                   "time stays that of the first test.")
    if pr.ppf:
        out.append(f"The physiological criterion of progressive pulmonary fibrosis (Raghu et al., AJRCCM 2022) is an "
                   f"absolute decline of FVC ≥ 5 or DLCO ≥ 10 points of % predicted within "
                   f"{pr.ppf_window_months:g} months; the full definition also needs worsening symptoms or "
                   f"radiological progression, which the registry does not record, so this is the physiological "
                   f"criterion only. DLCO is used as recorded (haemoglobin correction only where the registry "
                   f"applied it).")
    out.append("Kaplan–Meier curves per arm with log-rank tests and Cox hazard ratios (Efron ties) are computed as "
               "for discontinuation; p-values are unadjusted.")
    if pr.fvc_slope:
        out.append("The annualised FVC slope (mL/year) per arm is the time slope of a linear mixed model of FVC in "
                   "litres × 1000 with the protocol's covariates and a random intercept and slope per patient "
                   "(emtrends × 12, Satterthwaite df).")
    return out
