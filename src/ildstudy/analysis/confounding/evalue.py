"""E-values (VanderWeele & Ding 2017, Ann Intern Med 167:268–274): how strongly an unmeasured confounder would
have to be associated with both arm and outcome (risk-ratio scale) to explain away an estimate.

For a risk ratio ``RR >= 1``: ``E = RR + sqrt(RR (RR - 1))`` (for ``RR < 1`` the same of ``1 / RR``); the E-value of
the confidence limit nearer to 1 is 1 when the interval contains 1. A difference of means is first put on the
risk-ratio scale with the approximation of VanderWeele & Ding's Table (via Chinn 2000 / Hasselblad & Hedges
1995): ``d = difference / SD``, ``RR ~ exp(0.91 d)``, limits ``exp(0.91 d -+ 1.78 SE_d)`` — the formulas of the
EValue R package's ``evalues.MD``.

>>> round(evalue_rr(3.9), 2)
7.26
>>> evalue_rr(0.8) == evalue_rr(1 / 0.8)
True
"""

from __future__ import annotations

import math


def evalue_rr(rr: float) -> float:
    """The E-value of a risk ratio (1 for RR = 1; NaN for a missing or non-positive RR)."""
    if not (rr == rr) or rr <= 0 or math.isinf(rr):
        return float("nan")
    r = rr if rr >= 1 else 1 / rr
    return r + math.sqrt(r * (r - 1))


def evalue_ci(rr: float, lo: float, hi: float) -> float:
    """The E-value of the confidence limit nearer to 1 (1 when the interval contains 1)."""
    if not all(v == v for v in (rr, lo, hi)):
        return float("nan")
    if lo <= 1 <= hi:
        return 1.0
    return evalue_rr(lo if rr > 1 else hi)


def evalues(rr: float, lo: float, hi: float) -> dict[str, float]:
    """``{rr, rr_ci_low, rr_ci_high, evalue, evalue_ci}``."""
    return {"rr": rr, "rr_ci_low": lo, "rr_ci_high": hi, "evalue": evalue_rr(rr), "evalue_ci": evalue_ci(rr, lo, hi)}


def evalues_md(estimate: float, se: float, sd: float) -> dict[str, float]:
    """E-values of a difference of means ``estimate`` (with ``se``) on an outcome whose SD is ``sd``:
    ``evalues.MD(est = estimate / sd, se = se / sd)``."""
    if not sd > 0:
        return evalues(float("nan"), float("nan"), float("nan"))
    d, s = estimate / sd, se / sd
    return evalues(math.exp(0.91 * d), math.exp(0.91 * d - 1.78 * s), math.exp(0.91 * d + 1.78 * s))
