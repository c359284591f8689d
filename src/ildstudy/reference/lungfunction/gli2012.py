"""GLI-2012 multi-ethnic spirometry equations, ages 3-95 (Quanjer et al. 2012).

Quanjer PH, Stanojevic S, Cole TJ, et al. Multi-ethnic reference values for spirometry for the 3-95-yr age
range: the global lung function 2012 equations. Eur Respir J 2012;40:1324-43. doi:10.1183/09031936.00080312.

For ``log`` the natural logarithm, height in cm, age in years, and 0/1 indicators of the ethnic groups
(Caucasian is the reference group)::

    M = exp(a0 + a1 log(height) + a2 log(age) + a3 black + a4 NE_asian + a5 SE_asian + a6 other + Mspline)
    S = exp(p0 + p1 log(age) + p2 black + p3 NE_asian + p4 SE_asian + p5 other + Sspline)
    L = q0 + q1 log(age) + Lspline

The coefficients (``tables/gli2012_coefficients.csv``) and the age splines (``tables/gli2012_splines.csv``,
0.25-year steps, linearly interpolated) are the GLI's published lookup tables (the paper's online supplement;
see ``tables/README.md``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._core import read_csv_rows, splines

NAME = "gli_2012"
AGE_RANGE = (3.0, 95.0)
MEASURES = ("fvc", "fev1", "fev1_fvc")
#: the GLI-2012 groups, in the order of the coefficients a3..a6 / p2..p5 (caucasian = reference)
ETHNICITIES = ("caucasian", "black", "north_east_asian", "south_east_asian", "other")
SPLINES = "gli2012_splines.csv"


@lru_cache(maxsize=None)
def coefficients() -> dict[tuple[str, str], dict[str, float]]:
    """``{(sex, measure): {"a0": ..., "q1": ...}}`` from ``tables/gli2012_coefficients.csv``."""
    return {(r["sex"], r["measure"]): {k: float(v) for k, v in r.items() if k not in ("sex", "measure")}
            for r in read_csv_rows("gli2012_coefficients.csv")}


def lms(measure: str, male: np.ndarray, age: np.ndarray, height_cm: np.ndarray, ethnicity: np.ndarray):
    """L, M, S of ``measure`` (litres or the FEV1/FVC ratio); ``ethnicity`` indexes :data:`ETHNICITIES`."""
    lsp, msp, ssp = splines(SPLINES, measure, male, age)
    groups = np.stack([ethnicity == k for k in range(1, 5)]).astype(float)  # black, NE, SE, other
    L, M, S = (np.full(age.shape, np.nan) for _ in range(3))
    la, lh = np.log(age), np.log(height_cm)
    for sex, mask in (("male", male), ("female", ~male)):
        c = coefficients()[(sex, measure)]
        g = groups[:, mask]
        M[mask] = np.exp(c["a0"] + c["a1"] * lh[mask] + c["a2"] * la[mask]
                         + sum(c[f"a{k + 3}"] * g[k] for k in range(4)) + msp[mask])
        S[mask] = np.exp(c["p0"] + c["p1"] * la[mask] + sum(c[f"p{k + 2}"] * g[k] for k in range(4)) + ssp[mask])
        L[mask] = c["q0"] + c["q1"] * la[mask] + lsp[mask]
    return L, M, S
