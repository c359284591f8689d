"""GLI-2017 reference equations for the transfer factor (TLCO, DLCO), ages 5-90 (Stanojevic et al. 2017).

Stanojevic S, Graham BL, Cooper BG, et al. Official ERS technical standards: Global Lung Function Initiative
reference values for the carbon monoxide transfer factor for Caucasians. Eur Respir J 2017;50:1700010.
doi:10.1183/13993003.00010-2017, with the correction Eur Respir J 2020;56:1750010 (doi:10.1183/13993003.50010-2017).
The equations are for Caucasians (the only group with enough data) and for values *not* corrected for
haemoglobin; the lookup table covers ages 5-90.

For ``log`` the natural logarithm, height in cm and age in years::

    M = exp(m0 + m1 log(height) + m2 log(age) + Mspline)
    S = exp(s0 + s1 log(age) + Sspline)
    L = l0

The SI (mmol/min/kPa) and traditional (mL/min/mmHg) equations differ only in the intercept ``m0`` (their
difference, 1.094269, is log 2.987). :data:`COEFFICIENTS` are the published (2020-corrected) coefficients, as
also carried by rspiro 0.5 (``R/getLMS_GLIdiff.R``); the spline table ``tables/gli_tlco2017_splines.csv`` is the
published lookup table (see ``tables/README.md``).

Haemoglobin (2017 ERS/ATS standard, Graham et al., Eur Respir J 2017;49:1600016, after Cotes et al. 1972): the
predicted TLCO at haemoglobin ``Hb`` (g/dL) is ``predicted x 1.7 Hb / (K + Hb)`` with ``K = 10.22`` for adult and
adolescent males (>= 15 years) and ``K = 9.38`` for females and for children < 15 years; equivalently the measured
TLCO corrected to the standard Hb (14.6 g/dL and 13.4 g/dL, where the factor is 1) is
``measured x (K + Hb) / (1.7 Hb)``.
"""

from __future__ import annotations

import numpy as np

from ._core import splines

NAME = "gli_tlco_2017"
AGE_RANGE = (5.0, 90.0)
MEASURES = ("tlco",)
SPLINES = "gli_tlco2017_splines.csv"
UNITS = ("si", "traditional")

#: sex -> (m0 SI, m0 traditional, m1 [log height], m2 [log age], s0, s1 [log age], L)
COEFFICIENTS: dict[str, tuple[float, ...]] = {
    "male": (-8.129189, -7.034920, 2.018368, -0.012425, -1.98996, 0.03536, 0.39482),
    "female": (-6.253720, -5.159451, 1.618697, -0.015390, -1.82905, -0.01815, 0.24160),
}

#: mL/min/mmHg per mmol/min/kPa for converting *observed* values: 1 mmol of gas at STPD is 22.4 mL and 1 kPa is
#: 7.50062 mmHg, so 22.4 / 7.50062 = 2.9864. (The GLI equations themselves use their published traditional-unit
#: intercepts, which imply 2.987; the 0.03 % difference is far below measurement precision.)
TRADITIONAL_PER_SI = 2.986

#: Hb constants of the 2017 ERS/ATS standard (g/dL)
HB_K_MALE_15_PLUS = 10.22
HB_K_FEMALE_OR_CHILD = 9.38
HB_ADULT_MALE_AGE = 15.0


def lms(measure: str, male: np.ndarray, age: np.ndarray, height_cm: np.ndarray, units: str = "si"):
    """L, M, S of TLCO in ``units`` ("si" or "traditional"), not adjusted for haemoglobin."""
    lsp, msp, ssp = splines(SPLINES, measure, male, age)
    L, M, S = (np.full(age.shape, np.nan) for _ in range(3))
    la, lh = np.log(age), np.log(height_cm)
    for sex, mask in (("male", male), ("female", ~male)):
        m0_si, m0_trad, m1, m2, s0, s1, l0 = COEFFICIENTS[sex]
        m0 = m0_si if units == "si" else m0_trad
        M[mask] = np.exp(m0 + m1 * lh[mask] + m2 * la[mask] + msp[mask])
        S[mask] = np.exp(s0 + s1 * la[mask] + ssp[mask])
        L[mask] = l0 + lsp[mask]
    return L, M, S


def hb_factor(hb_g_dl, male, age) -> np.ndarray:
    """``1.7 Hb / (K + Hb)``: predicted TLCO at haemoglobin ``hb_g_dl`` relative to the standard Hb.

    ``K`` is 10.22 for males aged >= 15 and 9.38 for females and children < 15 (2017 ERS/ATS standard).
    A missing Hb (NaN) gives a factor of 1 (no adjustment).
    """
    hb = np.asarray(hb_g_dl, dtype=float)
    k = np.where(np.asarray(male) & (np.asarray(age, dtype=float) >= HB_ADULT_MALE_AGE),
                 HB_K_MALE_15_PLUS, HB_K_FEMALE_OR_CHILD)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = 1.7 * hb / (k + hb)
    return np.where(np.isfinite(hb), f, 1.0)
