"""The report's "Sensitivity analyses" section as plain template context (the template escapes every string).

Reads :class:`~ildstudy.analysis.sensitivity.SensitivityResult` only.
"""

from __future__ import annotations

from typing import Any

from ildstudy.analysis.result import StudyResult
from ildstudy.report.formatting import fmt_ci, fmt_int, fmt_month, fmt_num, fmt_p, fmt_pct, is_missing, significant


def sensitivity_context(result: StudyResult, figure: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """One row per analysis: its label, what it changes, patients per arm, each outcome's difference at the summary
    month and the adverse-event proportions; ``None`` when the protocol declares no sensitivity analysis."""
    s = result.sensitivity
    if s is None:
        return None
    arms = list(result.arms)
    outcomes = [(o.name, o.label) for o in result.outcomes.values()]
    rows = []
    for a in s.analyses.to_dict(orient="records"):
        name = a["analysis"]
        cells = []
        for o, _label in outcomes:
            d = s.contrasts[(s.contrasts["analysis"] == name) & (s.contrasts["outcome"] == o)]
            if d.empty:
                cells.append({"estimate": "—", "ci": "", "p": "", "sig": False})
                continue
            r = d.iloc[0]
            cells.append({"estimate": fmt_num(r["estimate"], 1, sign=True), "ci": fmt_ci(r["ci_low"], r["ci_high"]),
                          "p": fmt_p(r["p"]), "sig": significant(r["p"])})
        ev = s.adverse_events[s.adverse_events["analysis"] == name]
        ae = [f"{fmt_int(r['patients_with_event'])}/{fmt_int(r['n'])} ({fmt_pct(r['percent'])})"
              for r in ev.to_dict(orient="records")]
        ae_p = ev["p"].iloc[0] if len(ev) else None
        rows.append({"label": a["label"], "what": _what(a), "run": a["status"] == "run", "reason": a["reason"],
                     "n": [fmt_int(a[f"n_{arm}"]) if not is_missing(a[f"n_{arm}"]) else "—" for arm in arms],
                     "cells": cells, "ae": " vs ".join(ae) if ae else "—",
                     "ae_p": fmt_p(ae_p) if not is_missing(ae_p) else "—", "ae_sig": significant(ae_p),
                     "primary": name == "primary", "kind": a["kind"], "first_design": False})
    designs = [r for r in rows if r["kind"] == "confounding"]
    if designs:
        designs[0]["first_design"] = True
    return {"month": fmt_month(s.month), "arms": arms, "outcomes": [label for _n, label in outcomes],
            "rows": rows, "figure": figure, "has_designs": bool(designs), "treatment": result.protocol.treatment_arm,
            "has_variants": any(r["kind"] == "sensitivity" for r in rows)}


def _what(row: dict[str, Any]) -> str:
    if row["kind"] == "confounding":
        weighted = "unweighted" if row["analysis"].endswith(":none") else "weighted by the design"
        return (f"same cohort; fixed-effects model {weighted}, cluster-robust SE; patients with a positive weight; "
                "adverse events in the confounding section")
    if row["analysis"] == "primary":
        return f"protocol {row['protocol']}"
    parts = [f"protocol {row['protocol']}"] if row["protocol"] != "" else []
    if row["changes"]:
        parts.append(row["changes"])
    return "; ".join(parts)
