"""The report's "Lung function" section and the methods sentence naming the reference equations.

Reads the typed :class:`~ildstudy.analysis.lung_function.LungFunctionResult` only (``result.lung_function``);
without one (no ``[lung_function]`` table, no derived outcome) the methods say the recorded % predicted were
used and the section is left out.
"""

from __future__ import annotations

from typing import Any

from ildstudy.analysis.result import StudyResult
from ildstudy.report.formatting import fmt_int, fmt_num, is_missing

MEASURE_LABELS = {"fvc": "FVC", "fev1": "FEV1", "dlco": "DLCO"}
REASON_LABELS = {
    "no_raw_value": "no raw value (recorded % predicted not used)", "no_dlco_unit": "DLCO without a unit",
    "non_positive_value": "raw value 0 or negative", "no_sex": "sex missing", "no_birth_date": "birth date missing",
    "no_height": "height missing", "no_ethnicity": "no ethnicity group for the equation",
    "height_outside_range": "height outside 50–250 cm", "age_outside_range": "age outside the equation’s range",
}


def methods_sentence(result: StudyResult) -> str:
    """One sentence for the methods: which equation gave the lung-function values ('' without PFT outcomes)."""
    p = result.protocol
    if not any(o.source == "pft" for o in p.outcomes):
        return ""
    lf = result.lung_function
    if lf is None or not lf.recomputed:
        return ("Lung function was analysed as % predicted as recorded by each centre (the centres’ own "
                "reference equations; not recomputed).")
    hb = " adjusted to the test’s haemoglobin" if lf.settings["hb_correction"] else ""
    flagged = int(lf.measures["n_flagged"].sum())
    left = (f" {fmt_int(flagged)} test value(s) that could not be recomputed (no raw value, or age or height "
            "outside an equation’s range) were left out and are counted in the Lung function section."
            if flagged else "")
    return (f"% predicted and z-scores were recomputed from the raw values (FVC and FEV1 in litres, DLCO in its "
            f"recorded unit) with one set of reference equations, using sex, age at the test and height: "
            f"{lf.label('fvc')} for FVC and FEV1 and {lf.label('dlco')} for DLCO{hb}.{left}")


def lung_function_context(result: StudyResult) -> dict[str, Any] | None:
    """Rows of the equations table and the flags table; None when nothing was derived."""
    lf = result.lung_function
    if lf is None:
        return None
    measures = []
    for r in lf.measures.to_dict(orient="records"):
        diff = r["mean_recorded_minus_derived"]
        measures.append({"measure": MEASURE_LABELS[r["measure"]], "equation": lf.label(r["measure"]),
                         "tests": fmt_int(r["n_tests"]), "derived": fmt_int(r["n_derived"]),
                         "flagged": fmt_int(r["n_flagged"]),
                         "diff": "—" if is_missing(diff) else fmt_num(diff, 2, sign=True)})
    flags = [{"measure": MEASURE_LABELS[r["measure"]], "reason": REASON_LABELS.get(r["reason"], r["reason"]),
              "n": fmt_int(r["n"])} for r in lf.flags.to_dict(orient="records")]
    return {"recomputed": lf.recomputed, "measures": measures, "flags": flags, "citations": lf.citations(),
            "outcomes": [{"name": n, "unit": u} for n, u in lf.outcomes.items()],
            "hb_uncorrected": fmt_int(lf.n_hb_uncorrected) if lf.n_hb_uncorrected else ""}
