"""Read the pieces of a :class:`~ildstudy.analysis.result.StudyResult` that the report shows.

Small, pure helpers shared by the figures, the tables and the generated text: arm order and labels,
the month at which the headline contrast is reported, numbers at risk from a Kaplan–Meier table,
the statistics of each discontinuation analysis, display names of adverse-event categories.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ildstudy.analysis.result import StudyResult

#: Preferred month for the headline contrast (the published study's 36 months).
HEADLINE_MONTH = 36.0

KM_ANALYSES: dict[str, str] = {
    "any_reason": "any reason",
    "adverse_event": "adverse events",
}

AE_CATEGORY_NAMES: dict[str, str] = {
    "cytopenia": "Cytopenia",
    "hepatotoxicity": "Hepatotoxicity",
    "gi_intolerance": "GI intolerance",
    "infection": "Infection",
    "rash": "Rash",
    "pancreatitis": "Pancreatitis",
    "malignancy": "Malignancy",
    "other": "Other",
}


def arm_names(result: StudyResult) -> list[str]:
    """Arms in protocol order (treatment arm first, reference arm last)."""
    names = [a.name for a in result.protocol.arms]
    return names + [a for a in result.arms if a not in names]


def arm_labels(result: StudyResult) -> dict[str, str]:
    """Arm name -> its long label from the protocol (the name when the label is empty)."""
    return {a.name: a.label or a.name for a in result.protocol.arms}


def contrast_label(result: StudyResult) -> str:
    """``"AZA − MMF"`` (treatment minus reference, with a typographic minus)."""
    p = result.protocol
    return f"{p.treatment_arm} \u2212 {p.reference_arm}"


def headline_month(result: StudyResult) -> float:
    """36 months when it is a contrast month, else the last contrast month."""
    months = [float(m) for m in result.protocol.analysis.contrast_months]
    return HEADLINE_MONTH if HEADLINE_MONTH in months else months[-1]


def difference_at(frame: pd.DataFrame, month: float) -> dict[str, Any] | None:
    """The row of an ``arm_differences`` table at ``month`` as a dict (None when absent)."""
    if frame is None or frame.empty:
        return None
    rows = frame[np.isclose(frame["month"].astype(float), month)]
    return None if rows.empty else rows.iloc[0].to_dict()


def category_name(category: Any) -> str:
    """Display name of an adverse-event category (``gi_intolerance`` → ``GI intolerance``)."""
    text = str(category)
    if text in AE_CATEGORY_NAMES:
        return AE_CATEGORY_NAMES[text]
    text = text.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _category_cells(result: StudyResult, arms: list[str]) -> list[tuple[Any, dict[str, tuple]]]:
    """(category, {arm: (patients, n, percent)}) from the long or wide table, else from the results block."""
    frame = result.adverse_events_by_category
    out: list[tuple[Any, dict[str, tuple]]] = []
    if frame is not None and not frame.empty and {"arm", "patients_with_event"} <= set(frame.columns):
        for cat, grp in frame.groupby("category", sort=False):
            by = {str(r["arm"]): r for r in grp.to_dict(orient="records")}
            out.append((cat, {a: (by.get(a, {}).get("patients_with_event"), by.get(a, {}).get("n"),
                                  by.get(a, {}).get("percent")) for a in arms}))
    elif frame is not None and not frame.empty:
        for rec in frame.to_dict(orient="records"):
            out.append((rec["category"], {a: (rec.get(f"{a}_patients"), rec.get(f"{a}_n"),
                                              rec.get(f"{a}_percent")) for a in arms}))
    else:
        for rec in (result.adverse_events or {}).get("by_category") or []:
            cells = {}
            for a in arms:
                c = rec.get(a) if isinstance(rec.get(a), dict) else {}
                cells[a] = (c.get("patients_with_event", rec.get(f"{a}_patients")), c.get("n", rec.get(f"{a}_n")),
                            c.get("percent", rec.get(f"{a}_percent")))
            out.append((rec.get("category"), cells))
    return out


def ae_by_category(result: StudyResult, arms: list[str]) -> list[dict[str, Any]]:
    """Per category: name and, per arm, patients, n and percent; most frequent first.

    Reads ``adverse_events_by_category`` in long form (``category, arm, patients_with_event, n,
    percent``) or wide form (``<ARM>_patients, <ARM>_n, <ARM>_percent``), else the results block.
    """
    from ildstudy.report.formatting import is_missing

    rows = []
    for cat, cells in _category_cells(result, arms):
        row = {"category": category_name(cat), "arms": {}}
        for arm in arms:
            k, n, pct = cells[arm]
            if is_missing(pct) and not is_missing(k) and not is_missing(n) and n:
                pct = 100.0 * float(k) / float(n)
            row["arms"][arm] = {"patients": k, "n": n, "percent": pct}
        rows.append(row)
    total = lambda r: -sum(0.0 if is_missing(v["percent"]) else float(v["percent"])  # noqa: E731
                           for v in r["arms"].values())
    return sorted(rows, key=lambda r: (total(r), r["category"]))


def risk_difference_pp(result: StudyResult) -> dict[str, float] | None:
    """The adverse-event risk difference (treatment − reference) in percentage points.

    The results block may hold it as a proportion (0.197) or in points (19.7); the scale is the one
    that agrees with the per-arm percentages.
    """
    ae = result.adverse_events or {}
    rd = ae.get("risk_difference")
    by_arm = ae.get("by_arm") or {}
    p = result.protocol
    if not rd or rd.get("estimate") is None:
        return None
    scale = 1.0
    try:
        points = float(by_arm[p.treatment_arm]["percent"]) - float(by_arm[p.reference_arm]["percent"])
        est = float(rd["estimate"])
        scale = 100.0 if abs(100 * est - points) < abs(est - points) else 1.0
    except (KeyError, TypeError, ValueError):
        pass
    return {k: float(rd[k]) * scale for k in ("estimate", "ci_low", "ci_high") if rd.get(k) is not None}


def discontinuation_stats(result: StudyResult, analysis: str) -> dict[str, Any]:
    """``{"logrank_p", "cox_hr"}`` of one discontinuation analysis (empty when not reported).

    Accepts the stats nested under the analysis name (``discontinuation["adverse_event"]`` or
    ``discontinuation["analyses"][...]``) or, for ``any_reason``, at the top of the block.
    """
    block = result.discontinuation or {}
    for container in (block, block.get("analyses") or {}, block.get("by_analysis") or {}):
        nested = container.get(analysis) if isinstance(container, dict) else None
        if isinstance(nested, dict) and ("logrank_p" in nested or "cox_hr" in nested):
            return {"logrank_p": nested.get("logrank_p"), "cox_hr": nested.get("cox_hr") or {}}
    if analysis == "any_reason" and ("logrank_p" in block or "cox_hr" in block):
        return {"logrank_p": block.get("logrank_p"), "cox_hr": block.get("cox_hr") or {}}
    return {}


def remaining_total(record: dict[str, Any]) -> Any:
    """Patients remaining after an attrition step (column ``remaining`` or ``remaining_total``)."""
    return record.get("remaining_total", record.get("remaining"))


def km_analyses(result: StudyResult) -> list[str]:
    """Analyses present in the KM table, known ones first."""
    if result.km is None or result.km.empty:
        return []
    present = list(dict.fromkeys(result.km["analysis"].astype(str)))
    return [a for a in KM_ANALYSES if a in present] + [a for a in present if a not in KM_ANALYSES]


def km_curve(result: StudyResult, analysis: str, arm: str) -> pd.DataFrame:
    """Rows of the KM table for one analysis and arm, by time."""
    km = result.km
    sub = km[(km["analysis"].astype(str) == analysis) & (km["arm"].astype(str) == arm)]
    return sub.sort_values("time", kind="mergesort").reset_index(drop=True)


def n_at_risk(curve: pd.DataFrame, t: float) -> int:
    """Patients still at risk at time ``t``: ``n_risk`` of the first row at or after ``t``."""
    later = curve[curve["time"].astype(float) >= t - 1e-9]
    if later.empty:
        return 0
    return int(later.iloc[0]["n_risk"])


def survival_at(curve: pd.DataFrame, t: float) -> float | None:
    """Kaplan–Meier estimate at time ``t`` (the step value of the last row at or before ``t``)."""
    earlier = curve[curve["time"].astype(float) <= t + 1e-9]
    if earlier.empty or curve.empty or float(curve["time"].max()) < t:
        return None
    return float(earlier.iloc[-1]["survival"])


def events_by_arm(result: StudyResult, analysis: str, arms: list[str]) -> dict[str, int]:
    """Number of discontinuations per arm in one analysis."""
    return {arm: int(km_curve(result, analysis, arm)["n_event"].sum()) for arm in arms}


def risk_ticks(max_months: float, step: float = 12.0) -> list[float]:
    """0, 12, 24, ... up to ``max_months``."""
    return [float(t) for t in np.arange(0.0, float(max_months) + 1e-9, step)]


def provenance(result: StudyResult) -> dict[str, str]:
    """ildstudy version, protocol and data hashes (from ``provenance``, else ``results``).

    ``provenance["notice"]`` (e.g. "synthetic data: demo") is not listed here: the report shows it
    next to the title.
    """
    from ildstudy import __version__

    prov = dict(result.provenance or {})
    res = result.results or {}
    version = prov.get("ildstudy_version") or prov.get("version") or prov.get("ildstudy") or __version__
    return {
        "ildstudy version": str(version),
        "protocol": result.protocol.name,
        "protocol SHA-256": str(prov.get("protocol_sha256") or res.get("protocol_sha256") or result.protocol.sha256()),
        "data SHA-256": str(prov.get("data_sha256") or res.get("data_sha256") or "not recorded"),
        "results schema": str(res.get("schema_version", "")) or "not recorded",
    }
