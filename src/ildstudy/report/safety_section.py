"""The report's "Safety: person-time and competing risks" subsection, the outcome slopes table and the
"limited data" marks of the contrast tables, as plain template context (the template escapes every string).

Reads typed results only: :class:`~ildstudy.analysis.safety.SafetyResult` and
:class:`~ildstudy.analysis.result.OutcomeResult` (``slopes``, ``contrast_support``).
"""

from __future__ import annotations

from typing import Any

from ildstudy.analysis.result import OutcomeResult, StudyResult
from ildstudy.analysis.safety import CAUSE_LABELS
from ildstudy.report.figures_safety import CAUSE_TITLES
from ildstudy.report.formatting import fmt_ci, fmt_int, fmt_month, fmt_num, fmt_p, is_missing, significant

RATE_METHODS = {"exact": "Exact (conditional binomial, poisson.test)", "poisson_glm": "Poisson GLM",
                "negative_binomial": "Negative binomial (glm.nb)"}
HR_MODELS = {"cause_specific_cox": "Cause-specific Cox HR", "fine_gray": "Fine–Gray subdistribution HR"}


def safety_context(result: StudyResult, figure: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Rows of the person-time table, the rate ratios, the cause-specific / Fine–Gray hazard ratios and the
    cumulative incidence at the report months; ``None`` when the run has no safety result."""
    s = result.safety
    if s is None:
        return None
    rates = [{"arm": r["arm"], "n": fmt_int(r["n"]), "events": fmt_int(r["events"]),
              "person_years": fmt_num(r["person_years"], 1), "rate": fmt_num(r["rate_per_100py"], 1),
              "ci": fmt_ci(r["ci_low"], r["ci_high"], 1)} for r in s.rates_table().to_dict(orient="records")]
    ratios = [{"contrast": r["contrast"], "method": RATE_METHODS.get(r["method"], r["method"]),
               "estimate": fmt_num(r["estimate"], 2), "ci": fmt_ci(r["ci_low"], r["ci_high"], 2),
               "p": fmt_p(r["p"]) if not is_missing(r["p"]) else "—", "sig": significant(r["p"])}
              for r in s.rate_ratios_table().to_dict(orient="records")]
    hrs = [{"contrast": r["contrast"], "cause": CAUSE_TITLES[int(r["cause"])],
            "model": HR_MODELS.get(r["model"], r["model"]), "estimate": fmt_num(r["estimate"], 2),
            "ci": fmt_ci(r["ci_low"], r["ci_high"], 2), "p": fmt_p(r["p"]) if not is_missing(r["p"]) else "—",
            "sig": significant(r["p"]), "events": fmt_int(r["n_events"])}
           for r in s.hazard_ratios_table().to_dict(orient="records")]
    cif = s.cumulative_incidence_table()
    months = [m for m in s.report_months if m > 0]
    cif_rows = []
    for cause in CAUSE_LABELS:
        for arm in s.arms:
            sel = cif[(cif["cause"] == cause) & (cif["arm"] == arm)].set_index("month")
            cif_rows.append({"cause": CAUSE_TITLES[cause], "arm": arm,
                             "cells": [f"{fmt_num(100 * sel.loc[m, 'estimate'], 1)}%" for m in months]})
    return {"rates": rates, "ratios": ratios, "hrs": hrs, "cif_months": [fmt_month(m) for m in months],
            "cif": cif_rows, "excluded": s.excluded_zero_time, "figure": figure}


def slope_rows(outcome: OutcomeResult) -> list[dict[str, Any]]:
    """Per arm the change per year, then each arm − reference difference (empty for visit-factor models)."""
    if outcome.slopes is None:
        return []
    return [{"kind": r["kind"], "term": r["term"], "month": "" if is_missing(r["month"]) else fmt_month(r["month"]),
             "estimate": fmt_num(r["estimate"], 2, sign=r["kind"] == "difference"),
             "ci": fmt_ci(r["ci_low"], r["ci_high"], 2), "p": fmt_p(r["p"]), "sig": significant(r["p"])}
            for r in outcome.slopes.to_dict(orient="records")]


def limited_months(outcome: OutcomeResult) -> list[str]:
    """Contrast months (as shown in the report) at which an arm has fewer patients with data than needed."""
    sup = outcome.contrast_support
    if sup is None:
        return []
    return [fmt_month(m) for m, ok in zip(sup["month"], sup["enough_data"]) if not bool(ok)]


def min_at_risk(outcome: OutcomeResult) -> int | None:
    """The minimum number of patients per arm used for the "limited data" marks."""
    sup = outcome.contrast_support
    return None if sup is None or sup.empty else int(sup["min_at_risk"].iloc[0])
