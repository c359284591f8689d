"""The one serializer of a :class:`~ildstudy.analysis.result.StudyResult`: the content of ``results.json``,
and the tables of ``tables/`` (``share/`` suppresses the counts of these tables by the results schema,
:mod:`ildstudy.report.share`).

Each block comes from its result's ``to_dict()`` / ``tables()``; this module only puts them in order
(keys of docs/design.md). The values are JSON-ready but not rounded: the writer
(:func:`ildstudy.report.exports.canonical_json`) fixes the float digits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ildstudy.analysis.result import StudyResult

#: version of the layout of results.json
SCHEMA_VERSION = 1


def attrition_records(result: StudyResult) -> list[dict[str, Any]]:
    """results.json's ``attrition``: ``[{step, reason, excluded, remaining: {ARM: n}, remaining_total}]``, one per
    cohort step (the closing ``cohort`` row of ``result.attrition`` is attrition.csv's only)."""
    frame = result.attrition
    if len(frame) and frame["step"].iloc[-1] == "cohort":
        frame = frame.iloc[:-1]
    arms = [a.name for a in result.protocol.arms]
    out = []
    for r in frame.to_dict(orient="records"):
        out.append({"step": r["step"], "reason": r["reason"], "excluded": int(r["excluded"]),
                    "remaining": {a: None if pd.isna(r[f"remaining_{a}"]) else int(r[f"remaining_{a}"])
                                  for a in arms},
                    "remaining_total": int(r["remaining"])})
    return out


def results_document(result: StudyResult) -> dict[str, Any]:
    """The content of results.json.

    >>> results_document(result)["outcomes"]["fvc_pct_pred"]["arm_differences"][0]["contrast"]  # doctest: +SKIP
    'AZA - MMF'
    """
    p = result.protocol
    labels = {a.name: a.label for a in p.arms}
    return {
        "schema_version": SCHEMA_VERSION,
        "protocol": p.name,
        "protocol_sha256": result.provenance["protocol_sha256"],
        "data_sha256": result.provenance["data_sha256"],
        "arms": {a: {"n": n, "label": labels[a]} for a, n in result.arms.items()},
        "reference_arm": p.reference_arm,
        "attrition": attrition_records(result),
        "table1": result.table1.records(),
        **({"lung_function": result.lung_function.to_dict()} if result.lung_function is not None else {}),
        "outcomes": {name: o.to_dict() for name, o in result.outcomes.items()},
        "adverse_events": _with(result.adverse_events.to_dict(), "person_time",
                                result.safety and result.safety.person_time_dict()),
        "discontinuation": _with(result.discontinuation.to_dict(), "competing_risks",
                                 result.safety and result.safety.competing_risks_dict()),
        **({"progression": result.progression.to_dict()} if result.progression is not None else {}),
        **({"sensitivity": result.sensitivity.to_dict()} if result.sensitivity is not None else {}),
        **({"confounding": result.confounding.to_dict()} if result.confounding is not None else {}),
        "warnings": list(result.warnings),
    }


def study_tables(result: StudyResult) -> dict[str, pd.DataFrame]:
    """Every table of ``tables/`` (name -> DataFrame), in the order written: attrition, Table 1, each
    outcome's four tables, adverse events by arm and by category, discontinuation at the report months."""
    tables = {"attrition": result.attrition, **result.table1.tables()}
    if result.lung_function is not None:
        tables.update(result.lung_function.tables())
    for o in result.outcomes.values():
        tables.update(o.tables())
    tables.update(result.adverse_events.tables())
    tables.update(result.discontinuation.tables())
    if result.safety is not None:
        tables.update(result.safety.tables())
    if result.progression is not None:
        tables.update(result.progression.tables())
    if result.sensitivity is not None:
        tables.update(result.sensitivity.tables())
    if result.confounding is not None:
        tables.update(result.confounding.tables())
    return tables


def _with(block: dict[str, Any], key: str, value: dict[str, Any] | None) -> dict[str, Any]:
    """``block`` plus ``key: value`` when the analysis was run (``result.safety`` is optional)."""
    return block if value is None else {**block, key: value}
