"""GLI Global 2022 race-neutral spirometry equations, ages 3-95 (Bowerman et al. 2023).

Bowerman C, Bhakta NR, Brazzale D, et al. A race-neutral approach to the interpretation of lung function
measurements. Am J Respir Crit Care Med 2023;207:768-74. doi:10.1164/rccm.202205-0963OC. Recommended by the 2023
ATS statement on race and ethnicity in pulmonary function test interpretation (Bhakta et al., AJRCCM 2023).

For ``log`` the natural logarithm, height in cm and age in years::

    M = exp(m0 + m1 log(height) + m2 log(age) + Mspline)
    S = exp(s0 + s1 log(age) + Sspline)
    L = l0 + l1 log(age)

:data:`COEFFICIENTS` are the published coefficients (Bowerman 2023, online supplement, as also carried by
rspiro 0.5, ``R/getLMS_GLIgl.R``); the age splines (``tables/gli_global2022_splines.csv``, 0.25-year steps,
linearly interpolated) are the published lookup table (see ``tables/README.md``).
"""

from __future__ import annotations

import numpy as np

from ._core import splines

NAME = "gli_global_2022"
AGE_RANGE = (3.0, 95.0)
MEASURES = ("fvc", "fev1", "fev1_fvc")
SPLINES = "gli_global2022_splines.csv"

#: (sex, measure) -> (m0, m1 [log height], m2 [log age], s0, s1 [log age], l0, l1 [log age])
COEFFICIENTS: dict[tuple[str, str], tuple[float, ...]] = {
    ("male", "fev1"): (-11.399108, 2.462664, -0.011394, -2.256278, 0.080729, 1.22703, 0.0),
    ("male", "fvc"): (-12.629131, 2.727421, 0.009174, -2.195595, 0.068466, 0.9346, 0.0),
    ("male", "fev1_fvc"): (1.022608, -0.218592, -0.027586, -2.882025, 0.068889, 3.8243, -0.3328),
    ("female", "fev1"): (-10.901689, 2.385928, -0.076386, -2.364047, 0.129402, 1.21388, 0.0),
    ("female", "fvc"): (-12.055901, 2.621579, -0.035975, -2.310148, 0.120428, 0.899, 0.0),
    ("female", "fev1_fvc"): (0.9189568, -0.1840671, -0.0461306, -3.171582, 0.144358, 6.6490, -0.9920),
}


def lms(measure: str, male: np.ndarray, age: np.ndarray, height_cm: np.ndarray, ethnicity=None):
    """L, M, S of ``measure`` (litres or the FEV1/FVC ratio); ``ethnicity`` is not used (race-neutral)."""
    lsp, msp, ssp = splines(SPLINES, measure, male, age)
    L, M, S = (np.full(age.shape, np.nan) for _ in range(3))
    la, lh = np.log(age), np.log(height_cm)
    for sex, mask in (("male", male), ("female", ~male)):
        m0, m1, m2, s0, s1, l0, l1 = COEFFICIENTS[(sex, measure)]
        M[mask] = np.exp(m0 + m1 * lh[mask] + m2 * la[mask] + msp[mask])
        S[mask] = np.exp(s0 + s1 * la[mask] + ssp[mask])
        L[mask] = l0 + l1 * la[mask] + lsp[mask]
    return L, M, S
