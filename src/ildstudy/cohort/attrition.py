"""The attrition table and the check that every registry patient is accounted for exactly once."""

from __future__ import annotations

import pandas as pd

from ildstudy.cohort.steps import FIRST_STEP_WITH_ARM, STEP_IDS, STEPS

REGISTRY_STEP = "registry"
REGISTRY_REASON = "patients in the registry"


class CohortInvariantError(RuntimeError):
    """Internal error: the cohort lost, duplicated or double-counted a patient (a bug, not bad data)."""


def attrition_table(status: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """One row for the registry, then one per step.

    ``status`` has one row per registry patient with ``arm`` (arm of the first arm drug, or missing) and
    ``step`` (first step failed, missing for cohort patients). Columns: ``step, reason, excluded, remaining``
    and ``remaining_<ARM>`` per arm -- missing (``<NA>``) for rows before ``arm_drug``, where some remaining
    patients have no arm yet.
    """
    position = status["step"].map({sid: i for i, sid in enumerate(STEP_IDS)}).fillna(len(STEP_IDS))
    first_with_arm = STEP_IDS.index(FIRST_STEP_WITH_ARM)
    rows = [{"step": REGISTRY_STEP, "reason": REGISTRY_REASON, "excluded": 0, "remaining": len(status),
             **{f"remaining_{a}": pd.NA for a in arms}}]
    for i, step in enumerate(STEPS):
        left = position > i
        row = {"step": step.id, "reason": step.reason, "excluded": int((position == i).sum()),
               "remaining": int(left.sum())}
        for a in arms:
            row[f"remaining_{a}"] = int((left & (status["arm"] == a)).sum()) if i >= first_with_arm else pd.NA
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame[["excluded", "remaining"]] = frame[["excluded", "remaining"]].astype("int64")
    for a in arms:
        frame[f"remaining_{a}"] = frame[f"remaining_{a}"].astype("Int64")
    return frame


def check_accounting(registry_ids: pd.Series, status: pd.DataFrame, patients: pd.DataFrame,
                     excluded: pd.DataFrame, attrition: pd.DataFrame, arms: list[str]) -> None:
    """Raise :class:`CohortInvariantError` unless every registry patient is in the cohort or excluded at
    exactly one step, and the tables agree with each other."""
    problems: list[str] = []
    registry = set(registry_ids)
    cohort_ids = patients["patient_id"]
    if status["patient_id"].duplicated().any():
        problems.append("a patient has more than one status row")
    if set(status["patient_id"]) != registry or len(status) != len(registry_ids):
        problems.append("the status rows are not the registry patients")
    if cohort_ids.duplicated().any():
        problems.append("a patient appears twice in the patients table")
    if excluded["patient_id"].duplicated().any():
        problems.append("a patient is excluded at more than one step")
    both = set(cohort_ids) & set(excluded["patient_id"])
    if both:
        problems.append(f"{len(both)} patient(s) both in the cohort and excluded")
    if set(cohort_ids) | set(excluded["patient_id"]) != registry:
        problems.append("some registry patients are neither in the cohort nor excluded")
    if set(cohort_ids) != set(status.loc[status["step"].isna(), "patient_id"]):
        problems.append("the patients table is not the patients that passed every step")
    if not patients["arm"].isin(arms).all():
        problems.append("a cohort patient has no arm")
    last = attrition.iloc[-1]
    if int(attrition["excluded"].sum()) + int(last["remaining"]) != len(registry_ids):
        problems.append("attrition: excluded + remaining != registry patients")
    if int(last["remaining"]) != len(patients) or any(
            int(last[f"remaining_{a}"]) != int((patients["arm"] == a).sum()) for a in arms):
        problems.append("attrition: the last row does not match the patients table")
    if problems:
        raise CohortInvariantError("cohort accounting failed: " + "; ".join(problems))
