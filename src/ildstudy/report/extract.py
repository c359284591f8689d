"""Read the pieces of a :class:`~ildstudy.analysis.result.StudyResult` that the report shows.

Small, pure helpers shared by the figures, the tables and the generated text: arm order and labels,
the month at which the headline contrast is reported, numbers at risk from a Kaplan–Meier table,
display names of adverse-event categories. They read the typed results
(:class:`~ildstudy.analysis.adverse_events.AdverseEventResult`,
:class:`~ildstudy.analysis.discontinuation.EndpointResult`, ...) and nothing else: no layout is guessed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ildstudy.analysis.adverse_events import AdverseEventResult
from ildstudy.analysis.discontinuation import DiscontinuationResult, EndpointResult
from ildstudy.analysis.result import StudyResult
from ildstudy.analysis.serialize import SCHEMA_VERSION

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
    """``"AZA − MMF"`` (treatment minus reference, with a typographic minus); with more than two arms
    ``"each arm − MMF"``."""
    p = result.protocol
    first = p.treatment_arm if len(p.compared_arms) == 1 else "each arm"
    return f"{first} \u2212 {p.reference_arm}"


def contrast_labels(result: StudyResult) -> list[str]:
    """One label per contrast, in arm order: ``["AZA − MMF", "RTX − MMF"]`` (every arm minus the reference)."""
    p = result.protocol
    return [f"{a} \u2212 {p.reference_arm}" for a in p.compared_arms]


def contrast_names(result: StudyResult) -> list[str]:
    """The ``contrast`` values of the ``arm_differences`` tables, in arm order (``"AZA - MMF"``, ...)."""
    p = result.protocol
    return [f"{a} - {p.reference_arm}" for a in p.compared_arms]


def differences_at(frame: pd.DataFrame, month: float, contrasts: list[str]) -> list[dict[str, Any] | None]:
    """Per contrast (in the order given), the row of an ``arm_differences`` table at ``month`` (None when
    absent)."""
    if frame is None or frame.empty:
        return [None for _ in contrasts]
    rows = frame[np.isclose(frame["month"].astype(float), month)]
    by = {str(r["contrast"]): r for r in rows.to_dict(orient="records")}
    return [by.get(c) for c in contrasts]


def hazard_ratios(endpoint: EndpointResult) -> list:
    """The endpoint's Cox hazard ratios, one per non-reference arm (``CoxResult``; empty when not estimable);
    each one's arm is ``term[3:]`` (``armAZA`` → ``AZA``)."""
    return list(endpoint.cox_by_arm) if endpoint.cox_by_arm else ([endpoint.cox] if endpoint.cox else [])


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


def ae_by_category(ae: AdverseEventResult, arms: list[str]) -> list[dict[str, Any]]:
    """Per category (from ``ae.by_category``, long form): display name and, per arm, patients, n and percent;
    most frequent first."""
    from ildstudy.report.formatting import is_missing

    rows = []
    for cat, grp in ae.by_category.groupby("category", sort=False):
        by = {str(r["arm"]): r for r in grp.to_dict(orient="records")}
        row = {"category": category_name(cat), "arms": {}}
        for arm in arms:
            rec = by.get(arm, {})
            k, n, pct = rec.get("patients_with_event"), rec.get("n"), rec.get("percent")
            if is_missing(pct) and not is_missing(k) and not is_missing(n) and n:
                pct = 100.0 * float(k) / float(n)
            row["arms"][arm] = {"patients": k, "n": n, "percent": pct}
        rows.append(row)
    total = lambda r: -sum(0.0 if is_missing(v["percent"]) else float(v["percent"])  # noqa: E731
                           for v in r["arms"].values())
    return sorted(rows, key=lambda r: (total(r), r["category"]))


def ae_by_arm(ae: AdverseEventResult) -> dict[str, dict[str, Any]]:
    """Arm -> ``{patients_with_event, n, percent, ...}`` from ``ae.by_arm``."""
    return {str(r["arm"]): r for r in ae.by_arm.to_dict(orient="records")}


def risk_differences_pp(ae: AdverseEventResult) -> list[tuple[str, dict[str, float] | None]]:
    """Per compared arm: ``(arm, risk difference in percentage points or None)`` versus the reference."""
    out = []
    for c in ae.comparisons:
        rd = c.risk_difference
        pp = None if rd.estimate is None else {
            k: 100.0 * float(v) for k, v in (("estimate", rd.estimate), ("ci_low", rd.ci_low),
                                             ("ci_high", rd.ci_high)) if v is not None}
        out.append((c.arm, pp))
    return out


def risk_difference_pp(ae: AdverseEventResult) -> dict[str, float] | None:
    """The adverse-event risk difference (treatment − reference) in percentage points (``None`` when not
    estimable); ``ae.risk_difference`` is on the proportion scale."""
    rd = ae.risk_difference
    if rd is None or rd.estimate is None:
        return None
    return {k: 100.0 * float(v) for k, v in (("estimate", rd.estimate), ("ci_low", rd.ci_low),
                                               ("ci_high", rd.ci_high)) if v is not None}


def km_endpoints(disc: DiscontinuationResult | None) -> list[EndpointResult]:
    """The discontinuation endpoints in report order (any reason, adverse events); none without results."""
    return [] if disc is None else list(disc.endpoints)


def km_curve(endpoint: EndpointResult, arm: str) -> pd.DataFrame:
    """Rows of one endpoint's KM table for one arm, by time."""
    km = endpoint.km
    sub = km[km["arm"].astype(str) == arm]
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


def events_by_arm(endpoint: EndpointResult, arms: list[str]) -> dict[str, int]:
    """Number of discontinuations per arm in one endpoint."""
    return {arm: int(km_curve(endpoint, arm)["n_event"].sum()) for arm in arms}


def endpoint_label(endpoint: EndpointResult) -> str:
    """``any reason`` / ``adverse events``."""
    return KM_ANALYSES.get(endpoint.endpoint, endpoint.endpoint.replace("_", " "))


def risk_ticks(max_months: float, step: float = 12.0) -> list[float]:
    """0, 12, 24, ... up to ``max_months``."""
    return [float(t) for t in np.arange(0.0, float(max_months) + 1e-9, step)]


def provenance(result: StudyResult) -> dict[str, str]:
    """ildstudy version, protocol and data hashes (from ``result.provenance``) and the results schema version.

    ``provenance["notice"]`` (e.g. "synthetic data: demo") is not listed here: the report shows it
    next to the title.
    """
    from ildstudy import __version__

    prov = result.provenance
    return {
        "ildstudy version": str(prov.get("ildstudy_version") or __version__),
        "protocol": result.protocol.name,
        "protocol SHA-256": str(prov.get("protocol_sha256") or result.protocol.sha256()),
        "data SHA-256": str(prov.get("data_sha256") or "not recorded"),
        "results schema": str(SCHEMA_VERSION),
    }
