"""Display models of the report's tables: plain dicts of already formatted text for the template.

Nothing here is HTML: every value is a plain string that the template escapes. Each function reads
one part of the :class:`~ildstudy.analysis.result.StudyResult` and returns rows in display order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ildstudy.analysis.result import OutcomeResult, StudyResult
from ildstudy.report import extract
from ildstudy.report.formatting import (
    DASH,
    and_join,
    fmt_cell,
    fmt_ci,
    fmt_general,
    fmt_int,
    fmt_month,
    fmt_num,
    fmt_p,
    fmt_pct,
    format_p,
    is_missing,
    significant,
)
from ildstudy.report.style import arm_colours, outcome_unit
from ildstudy.report.text import ae_overall_test, ae_test_name


def arm_columns(result: StudyResult) -> list[dict[str, Any]]:
    """One header per arm: name, long label, n, colour."""
    labels = extract.arm_labels(result)
    colours = arm_colours(extract.arm_names(result))
    return [{"name": a, "label": labels.get(a, a), "n": fmt_int(result.arms.get(a)), "colour": colours[a]}
            for a in extract.arm_names(result)]


def key_results(result: StudyResult) -> dict[str, Any]:
    """The compact box under the summary: headline differences, adverse events, discontinuation."""
    month = extract.headline_month(result)
    names, labels = extract.contrast_names(result), extract.contrast_labels(result)
    diffs = []
    for o in result.outcomes.values():
        for label, row in zip(labels, extract.differences_at(o.arm_differences, month, names)):
            if not row:
                continue
            diffs.append({"label": o.label if len(names) == 1 else f"{o.label}, {label}",
                          "unit": outcome_unit(o.name),
                          "estimate": fmt_num(row["estimate"], 1, sign=True),
                          "ci": fmt_ci(row.get("ci_low"), row.get("ci_high")),
                          "p": fmt_p(row.get("p")), "sig": significant(row.get("p"))})
    ae = result.adverse_events
    by_arm = extract.ae_by_arm(ae) if ae is not None else {}
    ae_arms = [{"name": a, "percent": fmt_pct(by_arm[a]["percent"]),
                "count": f"{fmt_int(by_arm[a]['patients_with_event'])}/{fmt_int(by_arm[a]['n'])}"}
               for a in extract.arm_names(result) if a in by_arm]
    disc = []
    for endpoint in extract.km_endpoints(result.discontinuation):
        for hr in extract.hazard_ratios(endpoint):
            if not is_missing(hr.hazard_ratio):
                disc.append({"label": f"Discontinuation ({extract.endpoint_label(endpoint)})",
                             "arm": hr.term[3:], "estimate": fmt_num(hr.hazard_ratio, 2),
                             "ci": fmt_ci(hr.ci_low, hr.ci_high, 2), "p": fmt_p(hr.p), "sig": significant(hr.p)})
    ae_p = ae.primary.p if ae is not None else None
    return {"month": fmt_month(month), "contrast": extract.contrast_label(result), "differences": diffs,
            "ae_arms": ae_arms, "ae_p": fmt_p(ae_p), "ae_sig": significant(ae_p),
            "ae_test": (ae_overall_test(ae) if ae is not None and len(ae.comparisons) > 1
                        else ae_test_name(ae.test if ae is not None else None)), "discontinuation": disc,
            "treatment": result.protocol.treatment_arm, "reference": result.protocol.reference_arm}


def flow(result: StudyResult) -> dict[str, Any]:
    """STROBE-style flow from the attrition table: a start box, exclusion steps, one box per arm."""
    arms = extract.arm_names(result)
    att = result.attrition if result.attrition is not None else pd.DataFrame()
    labels = extract.arm_labels(result)
    if att.empty:
        return {"start": None, "steps": [], "arms": []}

    def count(v) -> int | None:
        return None if is_missing(v) else int(v)

    def split(rec) -> str:
        parts = [f"{a} {count(rec.get(f'remaining_{a}'))}" for a in arms
                 if count(rec.get(f"remaining_{a}")) is not None]
        return " \u00b7 ".join(parts)

    recs = att.to_dict(orient="records")
    first = recs[0]
    first_excluded = count(first.get("excluded")) or 0
    start_n = (count(first["remaining"]) or 0) + first_excluded
    start_label = str(first.get("step", "")).replace("_", " ") if first_excluded == 0 else "Patients screened"
    steps_recs = recs[1:] if first_excluded == 0 else recs
    total_excluded = None
    if len(steps_recs) >= 2 and _is_total_row(steps_recs[-1], steps_recs[:-1]):
        total_excluded = count(steps_recs[-1].get("excluded"))
        steps_recs = steps_recs[:-1]
    steps = []
    for rec in steps_recs:
        reason = str(rec.get("reason") or "") or str(rec.get("step", "")).replace("_", " ")
        steps.append({"excluded": fmt_int(rec.get("excluded")), "reason": reason,
                      "n": fmt_int(rec["remaining"]), "split": split(rec)})
    final = recs[-1]
    arm_boxes = [{"name": a, "label": labels.get(a, a), "colour": arm_colours(arms)[a],
                  "n": fmt_int(final.get(f"remaining_{a}", result.arms.get(a)))} for a in arms]
    if total_excluded is None:
        total_excluded = sum(count(r.get("excluded")) or 0 for r in steps_recs) + (
            first_excluded if steps_recs is not recs else 0)
    return {"start": {"label": start_label[:1].upper() + start_label[1:], "n": fmt_int(start_n),
                      "split": split(first) if first_excluded == 0 else ""},
            "steps": steps, "arms": arm_boxes, "total_excluded": fmt_int(total_excluded)}


def _is_total_row(last: dict[str, Any], before: list[dict[str, Any]]) -> bool:
    """True for a closing summary row (excluded = all exclusions so far, remaining unchanged)."""
    try:
        excluded = sum(int(r.get("excluded") or 0) for r in before)
        return (int(last.get("excluded")) == excluded and excluded > 0
                and int(last["remaining"]) == int(before[-1]["remaining"]))
    except (TypeError, ValueError):
        return False


def table1(result: StudyResult) -> list[dict[str, Any]]:
    """Table 1 rows: a variable row (with p, test, SMD, missing) and indented level rows."""
    frame = result.table1.table if result.table1 is not None else None
    if frame is None or frame.empty:
        return []
    arms = extract.arm_names(result)
    rows: list[dict[str, Any]] = []

    def stats(rec) -> dict[str, str]:
        test = fmt_cell(rec.get("test"))
        return {"p": fmt_p(rec.get("p")) if not is_missing(rec.get("p")) else "",
                "sig": significant(rec.get("p")), "test": "" if test.strip("-\u2014 ") == "" else test,
                "smd": fmt_num(rec.get("smd"), 2) if not is_missing(rec.get("smd")) else "",
                "missing": fmt_cell(rec.get("missing"))}

    for variable, group in frame.groupby("variable", sort=False):
        recs = group.to_dict(orient="records")
        label = recs[0].get("label")
        label = str(variable) if is_missing(label) or not str(label) else str(label)
        levels = ["" if is_missing(r.get("level")) else str(r.get("level")) for r in recs]
        cells = lambda r: [fmt_cell(r.get(a)) for a in arms]  # noqa: E731
        if len(recs) == 1:  # continuous, or binary (its level is the value counted: the label says it)
            rows.append({"label": label, "level": False, "cells": cells(recs[0]), **stats(recs[0])})
            continue
        rows.append({"label": label, "level": False, "cells": [""] * len(arms), **stats(recs[0])})
        for rec, level in zip(recs, levels):
            rows.append({"label": level or DASH, "level": True, "cells": cells(rec),
                         "p": "", "sig": False, "test": "", "smd": "", "missing": ""})
    return rows


def p_cell(p) -> str:
    """``"p = 0.036"`` or ``"p < 0.001"`` with the exact (table) p-value: ``format_p(p, phrase=True)``."""
    return format_p(p, phrase=True)


def _at(frame: pd.DataFrame, arm: str | None, month: float) -> dict[str, Any] | None:
    if frame is None or frame.empty:
        return None
    sel = np.isclose(frame["month"].astype(float), month)
    if arm is not None:
        sel &= frame["arm"].astype(str).to_numpy() == arm
    rows = frame[sel]
    return None if rows.empty else rows.iloc[0].to_dict()


def contrasts(result: StudyResult, outcome: OutcomeResult) -> list[dict[str, Any]]:
    """Per month: adjusted means and changes from month 0 per arm, each arm difference (``diffs``, one per
    contrast) and its p."""
    arms = extract.arm_names(result)
    names = extract.contrast_names(result)
    months = sorted({float(m) for m in outcome.marginal_means["month"]} |
                    {float(m) for m in outcome.arm_differences["month"]})
    rows = []
    for m in months:
        means, changes = [], []
        for arm in arms:
            mm = _at(outcome.marginal_means, arm, m)
            means.append({"est": fmt_num(mm["estimate"]) if mm else DASH,
                          "ci": fmt_ci(mm.get("ci_low"), mm.get("ci_high")) if mm else ""})
            ch = _at(outcome.change_from_baseline, arm, m)
            if ch and m > 0:
                changes.append({"est": fmt_num(ch["estimate"], 1, sign=True),
                                "ci": fmt_ci(ch.get("ci_low"), ch.get("ci_high")),
                                "p": fmt_p(ch.get("p")), "p_text": p_cell(ch.get("p")),
                                "sig": significant(ch.get("p"))})
            else:
                changes.append({"est": "reference" if m == 0 else DASH, "ci": "", "p": "", "p_text": "",
                                "sig": False})
        diffs = [{"diff": fmt_num(d["estimate"], 1, sign=True) if d else DASH,
                  "diff_ci": fmt_ci(d.get("ci_low"), d.get("ci_high")) if d else "",
                  "p": fmt_p(d.get("p")) if d else DASH, "sig": significant(d.get("p")) if d else False,
                  "primary": bool(d) and d.get("role") == "primary",
                  "p_adj": (DASH if not d or d.get("role") == "primary" or is_missing(d.get("p_adjusted"))
                            else fmt_p(d.get("p_adjusted"))),
                  "sig_adj": bool(d) and d.get("role") != "primary" and significant(d.get("p_adjusted"))}
                 for d in extract.differences_at(outcome.arm_differences, m, names)]
        rows.append({"month": fmt_month(m), "means": means, "changes": changes, "diffs": diffs})
    return rows


def adverse_events(result: StudyResult) -> dict[str, Any]:
    """Rows (any event, then categories) of ``patients/n (%)`` per arm and the test footnote."""
    arms = extract.arm_names(result)
    ae = result.adverse_events
    if ae is None:
        return {"rows": [], "test": ae_test_name(None), "statistic": "", "p": fmt_p(None), "sig": False,
                "fisher_p": "", "rd": "", "contrast": extract.contrast_label(result)}
    by_arm = extract.ae_by_arm(ae)

    def cell(k, n, pct) -> str:
        if is_missing(k):
            return DASH
        return f"{fmt_int(k)}/{fmt_int(n)} ({fmt_pct(pct)})" if not is_missing(n) else fmt_int(k)

    rows = []
    if by_arm:
        rows.append({"label": "Any adverse event", "total": True, "cells": [
            cell(by_arm.get(a, {}).get("patients_with_event"), by_arm.get(a, {}).get("n"),
                 by_arm.get(a, {}).get("percent")) for a in arms]})
    for rec in extract.ae_by_category(ae, arms):
        rows.append({"label": rec["category"], "total": False,
                     "cells": [cell(rec["arms"][a]["patients"], rec["arms"][a]["n"], rec["arms"][a]["percent"])
                               for a in arms]})
    rd = extract.risk_difference_pp(ae)
    stat, p, fisher_p = ae.primary.statistic, ae.primary.p, ae.fisher.p
    if len(ae.comparisons) > 1:  # k arms: the overall test, then each arm's risk difference versus the reference
        rds = [f"{a} \u2212 {ae.reference_arm} {fmt_num(r['estimate'], 1, sign=True)} percentage points (95% CI "
               f"{fmt_ci(r.get('ci_low'), r.get('ci_high'))})" for a, r in extract.risk_differences_pp(ae)
               if r and "ci_low" in r]
        return {"rows": rows, "test": ae_overall_test(ae),
                "statistic": fmt_num(stat, 2) if not is_missing(stat) else "", "p": fmt_p(p),
                "sig": significant(p), "fisher_p": fmt_p(fisher_p) if not is_missing(fisher_p) else "",
                "rd": "; ".join(rds), "contrast": and_join(arms)}
    return {
        "rows": rows, "test": ae_test_name(ae.test),
        "statistic": fmt_num(stat, 2) if not is_missing(stat) else "",
        "p": fmt_p(p), "sig": significant(p),
        "fisher_p": fmt_p(fisher_p) if not is_missing(fisher_p) else "",
        "rd": (f"{fmt_num(rd['estimate'], 1, sign=True)} percentage points (95% CI "
               f"{fmt_ci(rd.get('ci_low'), rd.get('ci_high'))})") if rd and "ci_low" in rd else "",
        "contrast": extract.contrast_label(result),
    }


def discontinuation(result: StudyResult) -> list[dict[str, Any]]:
    """Per KM analysis: discontinuations and % still on drug at the headline month per arm, tests."""
    arms = extract.arm_names(result)
    month = extract.headline_month(result)
    rows = []
    for endpoint in extract.km_endpoints(result.discontinuation):
        events = extract.events_by_arm(endpoint, arms)
        remaining = []
        for a in arms:
            s = extract.survival_at(extract.km_curve(endpoint, a), month)
            remaining.append(fmt_pct(100 * s, 0) if s is not None else DASH)
        hrs, logrank_p = extract.hazard_ratios(endpoint), endpoint.logrank.p
        hr = hrs[0] if len(hrs) == 1 else None
        rows.append({
            "label": extract.endpoint_label(endpoint).capitalize(),
            "events": [f"{events[a]}/{fmt_int(result.arms.get(a))}" for a in arms],
            "remaining": remaining,
            "logrank_p": fmt_p(logrank_p), "logrank_sig": significant(logrank_p),
            "hr": fmt_num(hr.hazard_ratio if hr else None, 2),
            "hr_ci": fmt_ci(hr.ci_low if hr else None, hr.ci_high if hr else None, 2),
            "hr_p": fmt_p(hr.p if hr else None), "hr_sig": significant(hr.p if hr else None),
        })
        if len(arms) > 2:  # one HR per non-reference arm, in one cell each
            rows[-1].update({
                "hr": "; ".join(f"{h.term[3:]} {fmt_num(h.hazard_ratio, 2)}" for h in hrs) or fmt_num(None, 2),
                "hr_ci": "; ".join(fmt_ci(h.ci_low, h.ci_high, 2) for h in hrs) or fmt_ci(None, None, 2),
                "hr_p": "; ".join(fmt_p(h.p) for h in hrs) or fmt_p(None),
                "hr_sig": any(significant(h.p) for h in hrs)})
    return rows


def _variance_rows(model: dict[str, Any]) -> list[dict[str, str]]:
    re_block = model.get("random_effects") or {}
    sd, corr = re_block.get("sd"), re_block.get("corr")
    terms = list(re_block.get("terms") or [])
    if isinstance(sd, dict):
        terms, sds = list(sd), list(sd.values())
    elif isinstance(sd, (list, tuple)):
        sds = list(sd)
        terms = terms if len(terms) == len(sds) else [f"term {i + 1}" for i in range(len(sds))]
    elif sd is not None:
        sds, terms = [sd], terms[:1] or ["(Intercept)"]
    else:
        sds = []
    rows = [{"component": f"Patient: {t}", "kind": "SD", "value": fmt_general(v)} for t, v in zip(terms, sds)]
    if isinstance(corr, (list, tuple)) and corr and isinstance(corr[0], (list, tuple)):
        for i in range(len(corr)):
            for j in range(i):
                a = terms[j] if j < len(terms) else str(j)
                b = terms[i] if i < len(terms) else str(i)
                rows.append({"component": f"Patient: {a}, {b}", "kind": "correlation",
                             "value": fmt_num(corr[i][j], 3)})
    elif isinstance(corr, dict):
        rows += [{"component": f"Patient: {k}", "kind": "correlation", "value": fmt_num(v, 3)}
                 for k, v in corr.items()]
    elif corr is not None and not is_missing(corr) and len(terms) > 1:
        rows.append({"component": f"Patient: {', '.join(terms[:2])}", "kind": "correlation",
                     "value": fmt_num(corr, 3)})
    if not is_missing(model.get("residual_sd")):
        rows.append({"component": "Residual", "kind": "SD", "value": fmt_general(model["residual_sd"])})
    return rows


def model_appendix(outcome: OutcomeResult) -> dict[str, Any]:
    """Fit summary, fixed effects and variance components of one outcome's model."""
    model = outcome.model or {}
    conv = model.get("converged")
    meta = [
        ("Formula", outcome.formula or str(model.get("formula", ""))),
        ("Observations", fmt_int(model.get("n_obs"))),
        ("Patients", fmt_int(model.get("n_patients"))),
        ("REML criterion", fmt_num(model.get("reml_criterion"), 2)),
        ("Log-likelihood", fmt_num(model.get("loglik"), 2)),
        ("Converged", DASH if conv is None else ("yes" if conv else "NO \u2014 interpret with caution")),
    ]
    if model.get("singular") is not None:
        meta.append(("Singular fit", "yes (a variance component is at its boundary)" if model["singular"] else "no"))
    if model.get("method"):
        df_method = str(model.get("df_method", "satterthwaite")).capitalize()
        meta.append(("Estimation", f"{model['method']}, {df_method} df"))
    fe = outcome.fixed_effects if outcome.fixed_effects is not None else pd.DataFrame()
    fixed = [{"term": str(r.get("term")), "estimate": fmt_general(r.get("estimate")),
              "se": fmt_general(r.get("se")), "df": fmt_num(r.get("df"), 1), "t": fmt_num(r.get("t"), 2),
              "p": fmt_p(r.get("p")), "sig": significant(r.get("p"))} for r in fe.to_dict(orient="records")]
    return {"name": outcome.name, "label": outcome.label, "meta": meta, "fixed": fixed,
            "variance": _variance_rows(model), "converged": bool(conv) if conv is not None else None}
