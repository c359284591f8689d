"""Sensitivity analyses: the study re-run under the protocol's ``[[sensitivity]]`` variants on the same registry,
summarised side by side with the primary analysis.

Each variant is a whole protocol (:meth:`ildstudy.protocol.Protocol.sensitivity_protocol`): another protocol
(e.g. the published reading ``huapaya2019_published``) or this one with some settings changed (intention to treat,
another baseline window, patients with a follow-up measurement). Its cohort is built again and analysed by the same
code as the primary analysis; what is kept is the summary a reader compares: patients per arm, each outcome's arm
difference at the summary month (the primary endpoint's month, else 36 months when it is a contrast month, else
the last), and the adverse-event proportions and test. A variant whose cohort is too small or whose model cannot
be fitted is kept as a row with the reason (``status = "not run"``), never dropped.

The confounding designs of the primary analysis (``[confounding]``, :mod:`ildstudy.analysis.confounding`) are rows
too (``kind = "confounding"``, named ``confounding:<design>``, the unweighted marginal model first): the same cohort,
each outcome's fixed-effects model weighted or matched by the propensity score, cluster-robust SEs (normal
intervals, so ``df`` is empty). Their patients per arm are those with a positive weight; their adverse events are
in the confounding block (a weighted risk difference), not here. So one table, and one forest plot, holds the
summary-month contrast of every analysis the protocol declares.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ildstudy._json import frame_records
from ildstudy.errors import CohortError, ModelError
from ildstudy.protocol import Protocol

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.analysis.result import StudyResult

PRIMARY = "primary"
#: the name of a confounding design's row: ``confounding:overlap``
CONFOUNDING_PREFIX = "confounding:"
ANALYSIS_COLUMNS = ["analysis", "kind", "label", "protocol", "changes", "status", "reason"]
CONTRAST_COLUMNS = ["analysis", "outcome", "month", "contrast", "estimate", "se", "df", "ci_low", "ci_high", "p"]
AE_COLUMNS = ["analysis", "arm", "n", "patients_with_event", "percent", "test", "p"]


def summary_month(protocol: Protocol) -> float:
    """The month compared across analyses: the primary endpoint's, else 36 when a contrast month, else the last."""
    if protocol.analysis.primary is not None:
        return float(protocol.analysis.primary.month)
    months = [float(m) for m in protocol.analysis.contrast_months]
    return 36.0 if 36.0 in months else months[-1]


@dataclass(frozen=True)
class SensitivityResult:
    """The primary analysis and each sensitivity analysis, side by side.

    Attributes
    ----------
    month : float
        The month of the compared arm differences (:func:`summary_month`).
    analyses : DataFrame[analysis, kind, label, protocol, changes, status, reason, n_<ARM>...]
        One row per analysis, the primary first, then the ``[[sensitivity]]`` variants, then the confounding designs
        (``kind``: ``"primary"``, ``"sensitivity"``, ``"confounding"``); ``status`` is ``"run"`` or ``"not run"``
        (``reason`` says why).
    contrasts : DataFrame[analysis, outcome, month, contrast, estimate, se, df, ci_low, ci_high, p]
        Each outcome's arm difference(s) at ``month`` (unadjusted p).
    adverse_events : DataFrame[analysis, arm, n, patients_with_event, percent, test, p]
        Patients with at least one adverse event per arm, and the protocol's test.
    """

    month: float
    analyses: pd.DataFrame
    contrasts: pd.DataFrame
    adverse_events: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``sensitivity``: ``{month, analyses, contrasts, adverse_events}``."""
        return {"month": self.month, "analyses": frame_records(self.analyses),
                "contrasts": frame_records(self.contrasts), "adverse_events": frame_records(self.adverse_events)}

    def tables(self) -> dict[str, pd.DataFrame]:
        """``sensitivity_analyses``, ``sensitivity_contrasts``, ``sensitivity_adverse_events``."""
        return {"sensitivity_analyses": self.analyses, "sensitivity_contrasts": self.contrasts,
                "sensitivity_adverse_events": self.adverse_events}


def run_sensitivity(main: StudyResult, run: Callable[[Protocol], StudyResult],
                    on_step: Callable[[str], None] | None = None) -> SensitivityResult | None:
    """Run every sensitivity analysis of ``main.protocol`` with ``run`` (protocol -> result on the same data) and
    summarise them, and ``main``'s confounding designs, beside ``main``; ``None`` when the protocol declares no
    sensitivity analysis and no confounding analysis ran."""
    protocol = main.protocol
    if not protocol.sensitivity and main.confounding is None:
        return None
    step = on_step or (lambda _s: None)
    month = summary_month(protocol)
    arms = [a.name for a in protocol.arms]
    rows, contrasts, events = [], [], []
    _summarise(PRIMARY, "Primary analysis", protocol.name, "", main, month, arms, rows, contrasts, events,
               kind="primary")
    for sa in protocol.sensitivity:
        step(f"Sensitivity analysis: {sa.label or sa.name}")
        variant = protocol.sensitivity_protocol(sa.name)
        changes = "; ".join(f"{k} = {_value(v)}" for k, v in sa.changes.items())
        source = sa.protocol or protocol.name
        try:
            result = run(variant)
        except (CohortError, ModelError) as exc:
            rows.append({"analysis": sa.name, "kind": "sensitivity", "label": sa.label or sa.name, "protocol": source, "changes": changes,
                         "status": "not run", "reason": str(exc).splitlines()[0],
                         **{f"n_{a}": None for a in arms}})
            continue
        _summarise(sa.name, sa.label or sa.name, source, changes, result, month, arms, rows, contrasts, events)
    if main.confounding is not None:
        _confounding_rows(main, month, arms, rows, contrasts)
    n_cols = [f"n_{a}" for a in arms]
    analyses = pd.DataFrame(rows, columns=ANALYSIS_COLUMNS + n_cols)
    for c in n_cols:
        analyses[c] = analyses[c].astype("Int64")
    return SensitivityResult(
        month=month, analyses=analyses,
        contrasts=pd.DataFrame(contrasts, columns=CONTRAST_COLUMNS),
        adverse_events=pd.DataFrame(events, columns=AE_COLUMNS).astype({"n": "int64", "patients_with_event": "int64"}),
    )


def _summarise(name: str, label: str, source: str, changes: str, result: StudyResult, month: float,
               arms: list[str], rows: list, contrasts: list, events: list, kind: str = "sensitivity") -> None:
    rows.append({"analysis": name, "kind": kind, "label": label, "protocol": source, "changes": changes, "status": "run",
                 "reason": "", **{f"n_{a}": int(result.arms.get(a, 0)) for a in arms}})
    for o in result.outcomes.values():
        d = o.arm_differences
        for r in d[np.isclose(d["month"].to_numpy(dtype=float), month)].to_dict(orient="records"):
            contrasts.append({"analysis": name, "outcome": o.name, "month": month, "contrast": r["contrast"],
                              **{k: float(r[k]) for k in ("estimate", "se", "df", "ci_low", "ci_high", "p")}})
    ae = result.adverse_events
    if ae is not None:
        by_arm = ae.by_arm.set_index("arm")
        for a in arms:
            if a in by_arm.index:
                r = by_arm.loc[a]
                events.append({"analysis": name, "arm": a, "n": int(r["n"]),
                               "patients_with_event": int(r["patients_with_event"]),
                               "percent": float(r["percent"]), "test": ae.primary.test,
                               "p": None if ae.primary.p is None else float(ae.primary.p)})


def confounding_label(design: str) -> str:
    """The label of a confounding design's row: ``Propensity score: Overlap weights (ATO)``."""
    from ildstudy.analysis.confounding.result import DESIGN_LABELS

    if design == "none":
        return "Marginal model, unweighted (propensity-score complete cases)"
    return f"Propensity score: {DESIGN_LABELS.get(design, design)}"


def _confounding_rows(main: StudyResult, month: float, arms: list[str], rows: list, contrasts: list) -> None:
    """One row per confounding design of ``main`` (``none`` first) and its outcomes' differences at ``month``."""
    cf = main.confounding
    at = cf.outcomes[np.isclose(cf.outcomes["month"].to_numpy(dtype=float), month)]
    for d in cf.designs:
        name = CONFOUNDING_PREFIX + d
        n = cf.sample_sizes[cf.sample_sizes["design"] == d].set_index("arm")["n_weighted"]
        primary = " (primary design)" if d == cf.primary and d != "none" else ""
        rows.append({"analysis": name, "kind": "confounding", "label": confounding_label(d) + primary,
                     "protocol": main.protocol.name, "changes": f"confounding design = {_value(d)}",
                     "status": "run", "reason": "", **{f"n_{a}": int(n[a]) if a in n.index else None for a in arms}})
        for r in at[at["design"] == d].to_dict(orient="records"):
            contrasts.append({"analysis": name, "outcome": r["outcome"], "month": month, "contrast": r["contrast"],
                              "df": np.nan, **{k: float(r[k]) for k in ("estimate", "se", "ci_low", "ci_high", "p")}})


def _value(v: Any) -> str:
    """A setting as TOML writes it: ``true``, ``"intention_to_treat"``, ``[12, 36]``, ``["sex", "age"]``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)
