"""NHANES III spirometry equations, ages 8-80 (Hankinson et al. 1999), for comparison with older reports.

Hankinson JL, Odencrantz JR, Fedan KB. Spirometric reference values from a sample of the general U.S.
population. Am J Respir Crit Care Med 1999;159:179-87. doi:10.1164/ajrccm.159.1.9712108.

FEV1 and FVC (tables 4 and 5; litres, height in cm)::

    predicted = b0 + b1 age + b2 age^2 + b3_pred height^2
    LLN       = b0 + b1 age + b2 age^2 + b3_lln  height^2

with separate coefficients for children (males < 20 years, females < 18 years, as in the paper's tables 4 and 5)
and adults. FEV1/FVC (table 6; the paper gives per cent, stored here as a ratio): ``predicted = b0 + b1 age``,
``LLN = b0_lln + b1 age``. The coefficients are ``tables/nhanes3_coefficients.csv``.

NHANES III is not an LMS model; in LMS form it is ``L = 1``, ``M = predicted``, ``S = SEE / predicted`` with
``SEE = (predicted - LLN) / 1.645``, which gives ``z = (observed - predicted) / SEE`` and returns the published
LLN exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._core import Z_LLN, read_csv_rows

NAME = "nhanes3"
AGE_RANGE = (8.0, 80.0)
MEASURES = ("fvc", "fev1", "fev1_fvc")
ETHNICITIES = ("caucasian", "african_american", "mexican_american")
#: first adult age (years) of Hankinson 1999's tables 4 (males) and 5 (females)
ADULT_FROM = {"male": 20.0, "female": 18.0}


@lru_cache(maxsize=None)
def coefficients() -> dict[tuple[str, str, str, str], dict[str, float]]:
    """``{(measure, sex, ethnicity, age_group): {"b0": ...}}``; age_group is child/adult ("all" for FEV1/FVC)."""
    keys = ("measure", "sex", "ethnicity", "age_group")
    return {tuple(r[k] for k in keys): {k: float(v) for k, v in r.items() if k not in keys}
            for r in read_csv_rows("nhanes3_coefficients.csv")}


def predicted_and_lln(measure: str, male: np.ndarray, age: np.ndarray, height_cm: np.ndarray,
                      ethnicity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The published predicted value and LLN (litres, or the FEV1/FVC ratio)."""
    pred, lln = np.full(age.shape, np.nan), np.full(age.shape, np.nan)
    h2 = height_cm ** 2
    for sex, sex_mask in (("male", male), ("female", ~male)):
        for e, eth in enumerate(ETHNICITIES):
            for group in (("all",) if measure == "fev1_fvc" else ("child", "adult")):
                mask = sex_mask & (ethnicity == e)
                if group == "child":
                    mask &= age < ADULT_FROM[sex]
                elif group == "adult":
                    mask &= age >= ADULT_FROM[sex]
                if not mask.any():
                    continue
                c = coefficients()[(measure, sex, eth, group)]
                a = age[mask]
                base = c["b1_age"] * a + c["b2_age2"] * a ** 2
                pred[mask] = c["b0"] + base + c["b3_height2_pred"] * h2[mask]
                lln[mask] = c["b0_lln"] + base + c["b3_height2_lln"] * h2[mask]
    return pred, lln


def lms(measure: str, male: np.ndarray, age: np.ndarray, height_cm: np.ndarray, ethnicity: np.ndarray):
    """NHANES III in LMS form: ``L = 1``, ``M = predicted``, ``S = ((predicted - LLN) / 1.645) / predicted``."""
    pred, lln = predicted_and_lln(measure, male, age, height_cm, ethnicity)
    return np.ones_like(pred), pred, (pred - lln) / Z_LLN / pred
