"""How many patients per arm still contribute data at given months: to flag thin contrasts.

A contrast at month m is supported by the patients who are still followed at m. The rule used
here: a patient counts at month m if they have an observation at or after m (``months >= m``),
i.e. their last observed visit is at m or later — a patient seen at 0 and 30 counts at 12 even
without a visit near 12, because the mixed model interpolates their trajectory. With
``window=w`` the stricter rule "an observation within ``[m - w, m + w]``" is used instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ildstudy.errors import ModelError


def patients_at_risk(
    patient: Sequence, arm: Sequence, months: Sequence[float], at: Sequence[float],
    window: float | None = None, arms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Number of patients per arm with an observation at or after each month in ``at``.

    Parameters
    ----------
    patient, arm, months : array_like, shape (n,)
        One entry per observation (visit): patient id, arm, months since index. Rows with a
        missing month are ignored.
    at : sequence of float
        Months to count at.
    window : float, optional
        If given, count patients with an observation within ``window`` months of m instead.
    arms : sequence of str, optional
        Arms (columns) in this order; default: sorted distinct arms.

    Returns
    -------
    DataFrame
        Index ``month`` (the values of ``at``), one integer column per arm.

    Examples
    --------
    >>> patients_at_risk(["a", "a", "b"], ["X", "X", "Y"], [0, 14, 3], at=[0, 12])
           X  Y
    month      
    0.0    1  1
    12.0   1  0
    """
    frame = pd.DataFrame({"patient": np.asarray(patient), "arm": np.asarray(arm),
                          "months": pd.to_numeric(pd.Series(np.asarray(months)), errors="coerce")})
    if not (len(frame["patient"]) == len(frame["arm"]) == len(frame["months"])):
        raise ModelError("patient, arm and months must have the same length")
    if window is not None and not (np.isfinite(window) and window >= 0):
        raise ModelError(f"window must be a non-negative number of months, got {window!r}")
    frame = frame[frame["months"].notna()]
    arm_order = list(arms) if arms is not None else sorted(frame["arm"].astype(str).unique())
    at_values = np.asarray(list(at), dtype=np.float64)
    out = {}
    for name in arm_order:
        rows = frame[frame["arm"].astype(str) == str(name)]
        if window is None:
            last = rows.groupby("patient")["months"].max().to_numpy()
            out[str(name)] = (last[None, :] >= at_values[:, None]).sum(axis=1)
        else:
            near = np.abs(rows["months"].to_numpy()[None, :] - at_values[:, None]) <= window
            ids = rows["patient"].to_numpy()
            out[str(name)] = [len(set(ids[mask])) for mask in near]
    return pd.DataFrame(out, index=pd.Index(at_values, name="month")).astype(np.int64)


def months_with_enough(at_risk: pd.DataFrame, minimum: int) -> pd.Series:
    """True for the months at which every arm has at least ``minimum`` patients at risk."""
    if int(minimum) != minimum or minimum < 0:
        raise ModelError(f"minimum must be a non-negative whole number, got {minimum!r}")
    return (at_risk >= minimum).all(axis=1)
