"""Lung-function reference equations: predicted values, lower limits of normal, z-scores and % predicted.

Equations (see ``docs/lungfunction.md`` for the formulas, populations and sources):

===================== ========================= ========= ============================================
``equation``          measures                  ages      ``ethnicity``
===================== ========================= ========= ============================================
``"gli_2012"``        fvc, fev1, fev1_fvc       3-95      required: caucasian, black, north_east_asian,
                                                          south_east_asian, other
``"gli_global_2022"`` fvc, fev1, fev1_fvc       3-95      not used (race-neutral)
``"gli_tlco_2017"``   tlco                      5-90      not used (Caucasian reference data)
``"nhanes3"``         fvc, fev1, fev1_fvc       8-80      required: caucasian, african_american,
                                                          mexican_american
===================== ========================= ========= ============================================

FVC and FEV1 are in litres, FEV1/FVC is a ratio (0.75, not 75 %), TLCO is in ``units="si"`` (mmol/min/kPa) or
``"traditional"`` (mL/min/mmHg). Height is in cm (50-250 accepted), age in years.

Bad inputs: by default (``on_invalid="raise"``) an age outside the equation's range, a missing or implausible
height or age, an unknown sex, ethnicity, measure, equation or unit raises :class:`LungFunctionInputError` (a
:class:`~ildstudy.errors.DataError`) naming the value. With ``on_invalid="flag"`` out-of-range or missing
ages/heights give NaN in every array of the result and ``valid = False`` there (unknown names still raise).

>>> ref = predict("gli_global_2022", "fvc", sex=["female", "male"], age=[60.0, 60.0], height_cm=[165.0, 178.0])
>>> ref.predicted.round(2)
array([3.1 , 4.37])
>>> zscore(ref, [2.60, 4.90]).round(2)
array([-0.97,  0.8 ])
"""

from __future__ import annotations

import numpy as np

from . import gli2012, gli_global2022, gli_tlco2017, nhanes3
from ._core import (HEIGHT_RANGE_CM, MEASURES, LungFunctionInputError, Measure, OnInvalid, Reference, _fail,
                    check_on_invalid, check_range, lms_zscore, make_reference, parse_levels, parse_sex)

__all__ = ["EQUATIONS", "MEASURES", "LungFunctionInputError", "Reference", "predict", "zscore",
           "percent_predicted", "convert_tlco", "hb_corrected_tlco", "hb_factor"]

EQUATIONS = {m.NAME: m for m in (gli2012, gli_global2022, gli_tlco2017, nhanes3)}

#: an observed FEV1/FVC above this is taken to be a percentage by mistake
_MAX_RATIO = 1.5


def _equation(equation: str):
    if equation not in EQUATIONS:
        raise _fail("equation", equation, f"unknown reference equation; expected one of {', '.join(EQUATIONS)}")
    return EQUATIONS[equation]


def predict(equation: str, measure: Measure, sex, age, height_cm, ethnicity=None, *, units: str = "si",
            hb_g_dl=None, on_invalid: OnInvalid = "raise") -> Reference:
    """Reference values (L, M, S, predicted, LLN) of ``measure`` by ``equation`` for each person.

    Parameters
    ----------
    equation : {"gli_2012", "gli_global_2022", "gli_tlco_2017", "nhanes3"}
    measure : {"fvc", "fev1", "fev1_fvc", "tlco"}
    sex : str or array of str
        "male"/"female" (or "m"/"f"), any case.
    age : float or array
        Years (decimal age; the GLI splines are interpolated linearly between their 0.25-year table ages).
    height_cm : float or array
        Standing height in cm.
    ethnicity : str or array of str, optional
        The equation's group (required by gli_2012 and nhanes3, ignored by the others).
    units : {"si", "traditional"}
        TLCO units; ignored for spirometry.
    hb_g_dl : float or array, optional
        Haemoglobin (g/dL) for TLCO: ``M`` is multiplied by ``1.7 Hb / (K + Hb)`` (2017 ERS/ATS standard; see
        :func:`hb_factor`). NaN entries are left unadjusted. Not allowed for spirometry.
    on_invalid : {"raise", "flag"}
        What an out-of-range/missing age or height does: raise, or give NaN with ``valid = False``.

    Returns
    -------
    Reference
        Arrays of the broadcast shape of ``sex``, ``age``, ``height_cm`` (and ``ethnicity``, ``hb_g_dl``).

    Raises
    ------
    LungFunctionInputError
        Unknown equation/measure/sex/ethnicity/units, or (with ``on_invalid="raise"``) an age outside the
        equation's range or a height outside 50-250 cm.

    Examples
    --------
    >>> float(predict("gli_2012", "fev1", "male", 30.0, 180.0, ethnicity="caucasian").predicted.round(3))
    4.614
    """
    mod = _equation(equation)
    check_on_invalid(on_invalid)
    if measure not in mod.MEASURES:
        hint = " (TLCO: use gli_tlco_2017)" if measure == "tlco" else ""
        raise _fail("measure", measure, f"{equation} has no equation for this measure; expected one of "
                                        f"{', '.join(mod.MEASURES)}{hint}")
    if measure == "tlco" and units not in gli_tlco2017.UNITS:
        raise _fail("units", units, "unknown TLCO units; expected 'si' (mmol/min/kPa) or 'traditional' "
                                    "(mL/min/mmHg)")
    if hb_g_dl is not None and measure != "tlco":
        raise _fail("hb_g_dl", None, "haemoglobin adjustment applies to TLCO only")
    needs_eth = hasattr(mod, "ETHNICITIES")
    if needs_eth and ethnicity is None:
        raise _fail("ethnicity", None, f"{equation} needs an ethnicity; expected one of {', '.join(mod.ETHNICITIES)}")
    parts = [np.asarray(sex, dtype=object), np.asarray(age, dtype=float), np.asarray(height_cm, dtype=float)]
    parts.append(np.asarray(ethnicity if needs_eth else "", dtype=object))
    parts.append(np.asarray(np.nan if hb_g_dl is None else hb_g_dl, dtype=float))
    sex_a, age_a, h_a, eth_a, hb_a = np.broadcast_arrays(*parts)
    male = parse_sex(sex_a)
    eth = parse_levels(eth_a, mod.ETHNICITIES, "ethnicity", equation) if needs_eth else None
    if np.any(np.isfinite(hb_a) & ((hb_a <= 0) | (hb_a > 30))):
        bad = hb_a[np.isfinite(hb_a) & ((hb_a <= 0) | (hb_a > 30))].ravel()[0]
        raise _fail("hb_g_dl", f"{bad:g}", "haemoglobin must be in g/dL (between 0 and 30)")
    valid = check_range(age_a, *mod.AGE_RANGE, "age", equation, on_invalid)
    valid &= check_range(h_a, *HEIGHT_RANGE_CM, "height_cm", equation, on_invalid)
    # compute on safe placeholders where invalid, then blank those out
    age_c, h_c = np.where(valid, age_a, mod.AGE_RANGE[0]), np.where(valid, h_a, 170.0)
    if measure == "tlco":
        L, M, S = mod.lms(measure, male, age_c, h_c, units=units)
        M = M * gli_tlco2017.hb_factor(hb_a, male, age_c)
        unit_name = units
    else:
        L, M, S = mod.lms(measure, male, age_c, h_c, eth)
        unit_name = "ratio" if measure == "fev1_fvc" else "L"
    return make_reference(equation, measure, unit_name, L, M, S, valid,
                          hb_adjusted=bool(np.isfinite(hb_a).any()))


def _observed(ref: Reference, observed) -> np.ndarray:
    y = np.asarray(observed, dtype=float)
    finite = y[np.isfinite(y)]
    if np.any(finite <= 0):
        raise _fail(ref.measure, f"{finite[finite <= 0][0]:g}", "observed value must be positive")
    if ref.measure == "fev1_fvc" and np.any(finite > _MAX_RATIO):
        raise _fail(ref.measure, f"{finite[finite > _MAX_RATIO][0]:g}",
                    "FEV1/FVC must be a ratio (e.g. 0.75), not a percentage")
    return y


def zscore(ref: Reference, observed) -> np.ndarray:
    """``((y / M) ** L - 1) / (L S)`` for observed values ``y`` in the units of ``ref``.

    A missing observation (NaN) gives NaN; a non-positive value, or an FEV1/FVC given as a percentage, raises
    :class:`LungFunctionInputError`.

    Examples
    --------
    >>> ref = predict("nhanes3", "fvc", "female", 50.0, 165.0, ethnicity="caucasian")
    >>> float(zscore(ref, ref.lln).round(3))
    -1.645
    """
    return lms_zscore(_observed(ref, observed), ref.L, ref.M, ref.S)


def percent_predicted(ref: Reference, observed) -> np.ndarray:
    """``100 y / predicted`` (same rules for ``observed`` as :func:`zscore`).

    Examples
    --------
    >>> ref = predict("gli_global_2022", "fev1", "male", 45.0, 175.0)
    >>> float(percent_predicted(ref, ref.predicted * 0.8).round(6))
    80.0
    """
    return 100.0 * _observed(ref, observed) / ref.predicted


def convert_tlco(value, from_units: str, to_units: str) -> np.ndarray:
    """Convert TLCO between "si" (mmol/min/kPa) and "traditional" (mL/min/mmHg): 1 SI unit = 2.986 traditional.

    Examples
    --------
    >>> round(float(convert_tlco(10.0, "si", "traditional")), 6)
    29.86
    """
    for u in (from_units, to_units):
        if u not in gli_tlco2017.UNITS:
            raise _fail("units", u, "unknown TLCO units; expected 'si' (mmol/min/kPa) or 'traditional' (mL/min/mmHg)")
    v = np.asarray(value, dtype=float)
    if from_units == to_units:
        return v
    return v * gli_tlco2017.TRADITIONAL_PER_SI if to_units == "traditional" else v / gli_tlco2017.TRADITIONAL_PER_SI


def hb_factor(hb_g_dl, sex, age) -> np.ndarray:
    """``1.7 Hb / (K + Hb)``, K = 10.22 (males >= 15 years) or 9.38 (females, children < 15); 2017 ERS/ATS.

    Examples
    --------
    >>> hb_factor([14.6, 13.4, 10.0], ["male", "female", "male"], [40, 40, 10]).round(4)
    array([1.    , 1.    , 0.8772])
    """
    return gli_tlco2017.hb_factor(hb_g_dl, parse_sex(np.asarray(sex, dtype=object)), age)


def hb_corrected_tlco(observed, hb_g_dl, sex, age) -> np.ndarray:
    """Measured TLCO corrected to the standard haemoglobin: ``observed x (K + Hb) / (1.7 Hb)`` (2017 ERS/ATS).

    ``zscore(predict(..., hb_g_dl=hb), y)`` equals ``zscore(predict(...), hb_corrected_tlco(y, hb, ...))``.
    """
    return np.asarray(observed, dtype=float) / hb_factor(hb_g_dl, sex, age)
