"""Refuse to analyse a cohort that is empty, has an empty arm, or has an arm too small for the models.

:func:`check_cohort_size` runs before any analysis step. It raises
:class:`~ildstudy.errors.CohortError` carrying the attrition table (with its identity row) and the id of the
cohort step that emptied the cohort or the arm, so that the CLI can write ``attrition.csv`` and say which step
to look at. The rules are in ``docs/protocol.md`` ("Degenerate cohorts").
"""

from __future__ import annotations

import pandas as pd

from ildstudy.errors import CohortError
from ildstudy.protocol import Protocol

MIN_SETTING = "analysis.min_patients_per_arm"


def check_cohort_size(attrition: pd.DataFrame, n_by_arm: dict[str, int], protocol: Protocol,
                      full_attrition: pd.DataFrame) -> None:
    """Raise :class:`CohortError` unless every arm has at least ``analysis.min_patients_per_arm`` patients.

    Parameters
    ----------
    attrition : DataFrame[step, reason, excluded, remaining, remaining_<ARM>...]
        The cohort's attrition table (first row ``registry``, then one row per step).
    n_by_arm : dict
        Cohort patients per arm.
    protocol : Protocol
    full_attrition : DataFrame
        The attrition table as it is written (with the identity row); carried by the error.

    Raises
    ------
    CohortError
        The cohort is empty (``step`` = the step after which no patient remained, or ``registry`` when the
        registry has none), an arm is empty (``step`` = the step after which it had none), or an arm has
        fewer than the minimum (``step`` = the step at which it fell below).
    """
    minimum = protocol.analysis.min_patients_per_arm
    if sum(n_by_arm.values()) == 0:
        step, reason = _first_step(attrition, "remaining", lambda n: n == 0)
        where = ("the registry has no patients" if step == "registry"
                 else f"the cohort is empty after step '{step}' ({reason}): no remaining patients")
        raise CohortError(f"{where}; see the attrition table", attrition=full_attrition, step=step)
    for arm, n in n_by_arm.items():
        if n == 0:
            step, reason = _first_step(attrition, f"remaining_{arm}", lambda k: k == 0)
            raise CohortError(
                f"arm {arm} is empty after step '{step}' ({reason}): no remaining patients in that arm; "
                "the arms cannot be compared (see the attrition table)", attrition=full_attrition, step=step)
    small = {arm: n for arm, n in n_by_arm.items() if n < minimum}
    if small:
        arm, n = next(iter(small.items()))
        step, reason = _first_step(attrition, f"remaining_{arm}", lambda k: k < minimum)
        left = int(attrition.loc[attrition["step"] == step, f"remaining_{arm}"].iloc[0])
        others = "".join(f", arm {a} has {k}" for a, k in list(small.items())[1:])
        raise CohortError(
            f"arm {arm} has {n} patient{'s' if n != 1 else ''}{others}: fewer than {MIN_SETTING} = {minimum} "
            f"needed to fit the models (the arm had {left} left after step '{step}' ({reason})); lower "
            f"{MIN_SETTING} in the protocol to run anyway", attrition=full_attrition, step=step)


def _first_step(attrition: pd.DataFrame, column: str, test) -> tuple[str, str]:
    """The first attrition row whose ``column`` is known and passes ``test``: its step id and reason."""
    for _, row in attrition.iterrows():
        value = row[column]
        if not pd.isna(value) and test(int(value)):
            return str(row["step"]), str(row["reason"])
    last = attrition.iloc[-1]  # not reached: the last row holds the cohort counts
    return str(last["step"]), str(last["reason"])
