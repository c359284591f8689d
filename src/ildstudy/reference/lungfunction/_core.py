"""Shared machinery of the lung-function reference equations: the result type, the LMS formulas, input checks
and the GLI spline tables.

Every equation is expressed in the LMS form of Cole & Green (1992) as used by the GLI: for an observed value
``y`` with median ``M``, coefficient of variation ``S`` and skewness (Box-Cox power) ``L``,

* z-score ``z = ((y / M) ** L - 1) / (L * S)``
* lower limit of normal (5th centile) ``LLN = M * (1 - 1.645 * L * S) ** (1 / L)``

NHANES III (a regression with a constant residual SD) is the special case ``L = 1``, ``S = SEE / M``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np

from ...errors import DataError, Problem

#: z of the 5th centile, as used by the GLI and by Hankinson 1999 for the LLN.
Z_LLN = 1.645

Measure = Literal["fvc", "fev1", "fev1_fvc", "tlco"]
OnInvalid = Literal["raise", "flag"]
MEASURES: tuple[str, ...] = ("fvc", "fev1", "fev1_fvc", "tlco")

#: plausible standing height (cm) accepted by every equation; outside it the input is treated as a data error.
HEIGHT_RANGE_CM = (50.0, 250.0)


class LungFunctionInputError(DataError):
    """Inputs a lung-function reference equation cannot use (age outside its range, height 0, unknown sex...)."""


@dataclass(frozen=True, slots=True)
class Reference:
    """Reference values of one measure for ``n`` people (all arrays have the broadcast shape of the inputs).

    Attributes
    ----------
    equation, measure, units : str
        The equation (``"gli_2012"`` ...), the measure (``"fvc"`` ...), and the units of ``M``, ``predicted``
        and ``lln``: ``"L"`` for volumes, ``"ratio"`` for FEV1/FVC, ``"si"`` (mmol/min/kPa) or
        ``"traditional"`` (mL/min/mmHg) for TLCO.
    L, M, S : ndarray of float
        The LMS parameters (``L = 1`` for NHANES III).
    predicted : ndarray of float
        The predicted (median) value, ``= M``.
    lln : ndarray of float
        The lower limit of normal, the 5th centile.
    valid : ndarray of bool
        ``False`` where the inputs were outside the equation's range (only with ``on_invalid="flag"``); the
        other arrays are NaN there.
    hb_adjusted : bool
        Whether ``M`` (and so ``predicted`` and ``lln``) was adjusted to the given haemoglobin.
    """

    equation: str
    measure: str
    units: str
    L: np.ndarray
    M: np.ndarray
    S: np.ndarray
    predicted: np.ndarray
    lln: np.ndarray
    valid: np.ndarray
    hb_adjusted: bool = False


def lms_lln(L: np.ndarray, M: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``M * (1 - 1.645 L S) ** (1 / L)``, the 5th centile of an LMS distribution."""
    with np.errstate(invalid="ignore"):
        return M * (1.0 - Z_LLN * L * S) ** (1.0 / L)


def lms_zscore(observed, L: np.ndarray, M: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``((y / M) ** L - 1) / (L S)``."""
    with np.errstate(invalid="ignore"):
        return ((np.asarray(observed, dtype=float) / M) ** L - 1.0) / (L * S)


def make_reference(equation: str, measure: str, units: str, L, M, S, valid, hb_adjusted=False) -> Reference:
    L, M, S = (np.where(valid, np.asarray(a, dtype=float), np.nan) for a in np.broadcast_arrays(L, M, S))
    return Reference(equation=equation, measure=measure, units=units, L=L, M=M, S=S, predicted=M,
                     lln=lms_lln(L, M, S), valid=np.asarray(valid, dtype=bool), hb_adjusted=hb_adjusted)


# ---- inputs ----------------------------------------------------------------------------------------------------

_SEX = {"male": True, "m": True, "female": False, "f": False}


def _fail(column: str, value, problem: str) -> LungFunctionInputError:
    return LungFunctionInputError(Problem(file="lung-function reference", row=None, column=column,
                                          value=None if value is None else str(value), problem=problem))


def _distinct(values) -> tuple[np.ndarray, list[str], tuple[int, ...]]:
    """(codes, distinct normalised texts, shape): each value's text stripped and lower-cased once per distinct
    value (a study passes a million tests with two sexes)."""
    import pandas as pd

    arr = np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(arr.ravel(), use_na_sentinel=False)
    return codes, [str(u).strip().lower() for u in uniques], arr.shape


def parse_sex(sex) -> np.ndarray:
    """``True`` for male: accepts "male"/"female"/"m"/"f" in any case (arrays or scalars)."""
    codes, texts, shape = _distinct(sex)
    bad = sorted({s for s in texts if s not in _SEX})
    if bad:
        raise _fail("sex", bad[0], "unknown sex; expected one of 'male', 'female' (or 'm', 'f')")
    return np.array([_SEX[s] for s in texts], dtype=bool)[codes].reshape(shape)


def parse_levels(values, levels: tuple[str, ...], column: str, equation: str) -> np.ndarray:
    """Index of each value in ``levels`` (case-insensitive); unknown values raise with the allowed list."""
    codes, texts, shape = _distinct(values)
    bad = sorted({v for v in texts if v not in levels})
    if bad:
        raise _fail(column, bad[0], f"unknown {column} for {equation}; expected one of {', '.join(levels)}")
    return np.array([levels.index(v) for v in texts], dtype=int)[codes].reshape(shape)


def check_range(values, lo: float, hi: float, column: str, equation: str, on_invalid: OnInvalid) -> np.ndarray:
    """Mask of finite values within ``[lo, hi]``; with ``on_invalid="raise"`` the first bad one raises."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & (v >= lo) & (v <= hi)
    if on_invalid == "raise" and not ok.all():
        bad = v[~ok].ravel()[0]
        what = "missing" if not np.isfinite(bad) else f"outside {equation}'s range {lo:g} to {hi:g}"
        raise _fail(column, f"{bad:g}", f"{column} {what}")
    return ok


def check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ("raise", "flag"):
        raise _fail("on_invalid", on_invalid, "expected 'raise' or 'flag'")


# ---- spline lookup tables ----------------------------------------------------------------------------------------

#: spacing of the GLI lookup tables (years)
TABLE_STEP = 0.25


@lru_cache(maxsize=None)
def spline_table(filename: str) -> dict[tuple[str, str], tuple[np.ndarray, ...]]:
    """``{(sex, measure): (ages, l_spline, m_spline, s_spline)}`` read from ``tables/<filename>``."""
    out: dict[tuple[str, str], list[list[float]]] = {}
    text = resources.files(__package__).joinpath("tables", filename).read_text(encoding="utf-8")
    for row in csv.DictReader(text.splitlines()):
        cols = out.setdefault((row["sex"], row["measure"]), [[], [], [], []])
        for i, key in enumerate(("age", "l_spline", "m_spline", "s_spline")):
            cols[i].append(float(row[key]))
    tables = {}
    for key, cols in out.items():
        ages = np.array(cols[0])
        order = np.argsort(ages)
        if not np.allclose(np.diff(ages[order]), TABLE_STEP):
            raise RuntimeError(f"{filename}: {key} ages are not on a {TABLE_STEP}-year grid")
        tables[key] = tuple(np.array(c)[order] for c in cols)
    return tables


def splines(filename: str, measure: str, male: np.ndarray, age: np.ndarray) -> tuple[np.ndarray, ...]:
    """(Lspline, Mspline, Sspline) at ``age``, linearly interpolated between the 0.25-year table ages
    (the GLI method); NaN outside the table."""
    table = spline_table(filename)
    out = [np.full(age.shape, np.nan) for _ in range(3)]
    for sex, mask in (("male", male), ("female", ~male)):
        if not mask.any():
            continue
        ages, *cols = table[(sex, measure)]
        a = age[mask]
        for o, col in zip(out, cols):
            o[mask] = np.interp(a, ages, col, left=np.nan, right=np.nan)
    return tuple(out)


def read_csv_rows(filename: str) -> list[dict[str, str]]:
    text = resources.files(__package__).joinpath("tables", filename).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))
