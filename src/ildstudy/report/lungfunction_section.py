"""The report's "Lung function" section and the methods sentence naming the reference equations.

Reads the typed :class:`~ildstudy.analysis.lung_function.LungFunctionResult` only (``result.lung_function``);
without one (no ``[lung_function]`` table, no derived outcome) the methods say the recorded % predicted were
used and the section is left out. Three cases: % predicted recomputed with one equation; recorded % predicted
checked against an equation (``check_equation``: agreement per measure and per test year); and, in either, the
z-score trajectories per arm (``zscore_trajectories``) with their figure.
"""

from __future__ import annotations

from typing import Any

from ildstudy.analysis.result import StudyResult
from ildstudy.cohort.lungfunction import MEASURE_LABELS
from ildstudy.report.formatting import fmt_ci, fmt_int, fmt_month, fmt_num, format_p, is_missing
from ildstudy.variables import outcome_spec

ZSCORE_SENTENCE = (" FVC and DLCO z-score trajectories per arm were fitted with the same mixed models as "
                   "secondary, exploratory analyses.")
REASON_LABELS = {
    "no_raw_value": "no raw value (recorded % predicted not used)", "no_dlco_unit": "DLCO without a unit",
    "non_positive_value": "raw value 0 or negative", "no_sex": "sex missing", "no_birth_date": "birth date missing",
    "no_height": "height missing", "no_ethnicity": "no ethnicity group for the equation",
    "height_outside_range": "height outside 50–250 cm", "age_outside_range": "age outside the equation’s range",
    "ratio_above_1_5": "FEV1/FVC above 1.5",
}


def methods_sentence(result: StudyResult) -> str:
    """One sentence for the methods: which equation gave the lung-function values ('' without PFT outcomes)."""
    p = result.protocol
    if not any(o.source == "pft" for o in p.outcomes):
        return ""
    lf = result.lung_function
    if lf is not None and lf.checked:
        diffs = {r["measure"]: r["mean_recorded_minus_derived"] for r in lf.measures.to_dict(orient="records")}
        agree = "; ".join(f"{MEASURE_LABELS[m]} {fmt_num(diffs[m], 2, sign=True)} points" for m in ("fvc", "dlco")
                          if not is_missing(diffs.get(m)))
        agree = f" (mean recorded − recomputed % predicted: {agree})" if agree else ""
        z = ZSCORE_SENTENCE if lf.zscore_trajectories is not None else ""
        return ("Lung function was analysed as % predicted as recorded by each centre. Every test was also "
                f"recomputed from the raw values with {lf.label('fvc', check=True)} for FVC and FEV1 and "
                f"{lf.label('dlco', check=True)} for DLCO, using sex, age at the test and height, to check the "
                f"recorded values{agree} and to give z-scores.{z}")
    if lf is None or not lf.recomputed:
        return ("Lung function was analysed as % predicted as recorded by each centre (the centres’ own "
                "reference equations; not recomputed).")
    hb = " adjusted to the test’s haemoglobin" if lf.settings["hb_correction"] else ""
    flagged = int(lf.measures["n_flagged"].sum())
    left = (f" {fmt_int(flagged)} test value(s) that could not be recomputed (no raw value, or age or height "
            "outside an equation’s range) were left out and are counted in the Lung function section."
            if flagged else "")
    z = ZSCORE_SENTENCE if lf.zscore_trajectories is not None else ""
    return (f"% predicted and z-scores were recomputed from the raw values (FVC and FEV1 in litres, DLCO in its "
            f"recorded unit) with one set of reference equations, using sex, age at the test and height: "
            f"{lf.label('fvc')} for FVC and FEV1 and {lf.label('dlco')} for DLCO{hb}.{left}{z}")


def lung_function_context(result: StudyResult, figure: dict | None = None) -> dict[str, Any] | None:
    """Rows of the equations, agreement, flags and z-score tables, and the z-score figure; None when nothing
    was derived."""
    lf = result.lung_function
    if lf is None:
        return None
    measures = []
    for r in lf.measures.to_dict(orient="records"):
        diff, sd = r["mean_recorded_minus_derived"], r.get("sd_recorded_minus_derived")
        equation = lf.label(r["measure"], check=lf.checked) if (lf.checked or r["measure"] in lf.equations) else "—"
        measures.append({"measure": MEASURE_LABELS[r["measure"]], "equation": equation,
                         "tests": fmt_int(r["n_tests"]), "derived": fmt_int(r["n_derived"]),
                         "flagged": fmt_int(r["n_flagged"]),
                         "diff": "—" if is_missing(diff) else fmt_num(diff, 2, sign=True),
                         "sd": "—" if is_missing(sd) else fmt_num(sd, 2),
                         "apart": fmt_int(r.get("n_differ_over_5"))})
    reasons = {**REASON_LABELS, "no_raw_value": "no raw value"} if lf.checked else REASON_LABELS
    flags = [{"measure": MEASURE_LABELS[r["measure"]], "reason": reasons.get(r["reason"], r["reason"]),
              "n": fmt_int(r["n"])} for r in lf.flags.to_dict(orient="records")]
    return {"recomputed": lf.recomputed, "checked": lf.checked, "measures": measures, "flags": flags,
            "agreement": _agreement_rows(lf), "zscores": _zscore_rows(result), "figure": figure,
            "citations": lf.citations(), "outcomes": [{"name": n, "unit": u} for n, u in lf.outcomes.items()],
            "hb_uncorrected": fmt_int(lf.n_hb_uncorrected) if lf.n_hb_uncorrected else "",
            "files": ", ".join(f"tables/{name}.csv" for name in lf.tables())}


def _agreement_rows(lf) -> list[dict[str, str]]:
    """One row per test year: recorded − recomputed mean (tests) for FVC and DLCO."""
    if lf.agreement is None or lf.agreement.empty:
        return []
    rows = []
    for year, g in lf.agreement.groupby("year", sort=True):
        row = {"year": str(int(year))}
        for m in ("fvc", "dlco"):
            hit = g[g["measure"] == m]
            row[m] = ("—" if hit.empty else
                      f"{fmt_num(hit['mean_recorded_minus_derived'].iloc[0], 2, sign=True)} "
                      f"({fmt_int(hit['n_compared'].iloc[0])})")
        rows.append(row)
    return rows


def _zscore_rows(result: StudyResult) -> list[dict[str, str]]:
    """The z-score arm differences at the contrast months: outcome, month, contrast, estimate (95% CI), p."""
    traj = result.lung_function.zscore_trajectories
    if traj is None:
        return []
    rows = []
    for name, fit in traj.fits.items():
        for r in fit.arm_differences.sort_values("month", kind="mergesort").to_dict(orient="records"):
            rows.append({"outcome": outcome_spec(name).label, "month": fmt_month(r["month"]),
                         "contrast": str(r["contrast"]).replace(" - ", " − "),
                         "estimate": fmt_num(r["estimate"], 2, sign=True),
                         "ci": fmt_ci(r["ci_low"], r["ci_high"], 2), "p": format_p(r["p"])})
    for name, why in traj.not_fitted.items():
        rows.append({"outcome": outcome_spec(name).label, "month": "—", "contrast": "not fitted",
                     "estimate": "—", "ci": why, "p": "—"})
    return rows
