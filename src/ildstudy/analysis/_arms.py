"""Checks shared by the per-patient two-arm analyses (rates, competing risks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def two_arm_patients(data: pd.DataFrame, arms: Sequence[str], reference_arm: str,
                     columns: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Check one row per patient of two arms; return ``([compared arm, reference arm], arm per row)``.

    Raises
    ------
    ValueError
        Not two distinct arms including ``reference_arm``, a column of ``columns`` missing, a patient twice, or
        an arm value that is not one of ``arms``.
    """
    arms = [str(a) for a in arms]
    if len(arms) != 2 or arms[0] == arms[1] or reference_arm not in arms:
        raise ValueError(f"arms must be two distinct arms including reference_arm {reference_arm!r}, got {arms}")
    order = [arms[0] if arms[1] == reference_arm else arms[1], reference_arm]
    absent = [c for c in columns if c not in data.columns]
    if absent:
        raise ValueError(f"data has no column(s) {absent}")
    if data["patient_id"].duplicated().any():
        raise ValueError("data.patient_id must be unique")
    arm = data["arm"].astype("string").fillna("<missing>").to_numpy(dtype=object)
    unknown = sorted(set(arm) - set(arms))
    if unknown:
        raise ValueError(f"data.arm has values that are not arms {arms}: {unknown}")
    return order, arm
