"""Numbers as a journal prints them: estimates, confidence intervals, p-values, percentages.

Tables give exact p-values (three decimals, ``<0.001``); prose rounds them the way journals do
(two decimals, three below 0.01, never rounding a p just under 0.05 up to "0.05").
Negative numbers use the typographic minus sign (U+2212).

>>> fmt_p(0.036), fmt_p_prose(0.036), fmt_p(0.0004), fmt_p_prose(0.0049)
('0.036', '0.04', '<0.001', '0.005')
>>> fmt_ci(-3.14, 6.94)
'−3.1 to 6.9'
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Literal

import numpy as np
import pandas as pd

MINUS = "\u2212"
DASH = "\u2014"
ALPHA = 0.05


def is_missing(x) -> bool:
    """True for None, NaN, ``pd.NA`` and ``NaT`` (False for containers and other values)."""
    if x is None:
        return True
    try:
        missing = pd.isna(x)
    except (TypeError, ValueError):
        return False
    return bool(missing) if isinstance(missing, (bool, np.bool_)) else False


def _minus(text: str) -> str:
    return text.replace("-", MINUS) if text.startswith("-") else text


def fmt_num(x, digits: int = 1, *, sign: bool = False) -> str:
    """A number with ``digits`` decimals; ``sign=True`` prefixes ``+`` to positive values."""
    if is_missing(x):
        return DASH
    x = float(x)
    text = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return _minus(text)


def fmt_int(x) -> str:
    """A count without decimals (``—`` when missing)."""
    if is_missing(x):
        return DASH
    return _minus(str(int(round(float(x)))))


def fmt_ci(low, high, digits: int = 1) -> str:
    """``"low to high"`` (journals avoid an en dash when a bound is negative)."""
    if is_missing(low) or is_missing(high):
        return DASH
    return f"{fmt_num(low, digits)} to {fmt_num(high, digits)}"


def fmt_est_ci(est, low, high, digits: int = 1, *, sign: bool = False) -> str:
    """``"1.9 (95% CI −3.1 to 6.9)"``-style text without the "95% CI" words: ``"1.9 (−3.1 to 6.9)"``."""
    return f"{fmt_num(est, digits, sign=sign)} ({fmt_ci(low, high, digits)})"


def format_p(p, style: Literal["table", "prose"] = "table", *, phrase: bool = False) -> str:
    """The package's one p-value formatter (report tables, report prose, figures and the CLI).

    Parameters
    ----------
    p : float or None
    style : ``"table"`` — exact: three decimals, ``<0.001``, ``>0.999``; ``"prose"`` — as journals print
        it: ``0.036 → 0.04``, ``0.0049 → 0.005``, ``<0.001``, ``>0.99``, and a p just below 0.05 keeps three
        decimals (``0.049``) rather than rounding up to ``0.05``.
    phrase : prefix ``p = `` (``p < 0.001``, ``p > 0.999``).

    Returns ``—`` (``p = —``) when ``p`` is missing.

    >>> format_p(0.0357), format_p(0.0357, "prose"), format_p(0.0004, phrase=True), format_p(0.2, "prose", phrase=True)
    ('0.036', '0.04', 'p < 0.001', 'p = 0.20')
    """
    if style not in ("table", "prose"):
        raise ValueError(f"style must be 'table' or 'prose', not {style!r}")
    text = _p_text(p, style)
    if not phrase:
        return text
    return f"p {text[0]} {text[1:]}" if text[:1] in "<>" else f"p = {text}"


def _p_text(p, style: str) -> str:
    if is_missing(p):
        return DASH
    p = float(p)
    if p < 0.001:
        return "<0.001"
    if style == "table":
        return ">0.999" if p > 0.999 else f"{p:.3f}"
    if p < 0.01:
        return f"{p:.3f}"
    if p > 0.99:
        return ">0.99"
    two = f"{p:.2f}"
    if p < ALPHA <= float(two):
        return f"{p:.3f}"
    return two


def fmt_p(p) -> str:
    """Exact p-value for tables: ``format_p(p)``."""
    return format_p(p)


def fmt_p_prose(p) -> str:
    """Journal-style p-value for text: ``format_p(p, "prose")``."""
    return format_p(p, "prose")


def p_phrase(p) -> str:
    """``"p = 0.04"`` or ``"p < 0.001"`` for prose: ``format_p(p, "prose", phrase=True)``."""
    return format_p(p, "prose", phrase=True)


def significant(p, alpha: float = ALPHA) -> bool:
    """True when ``p`` is present and below ``alpha``."""
    return not is_missing(p) and float(p) < alpha


def fmt_pct(x, digits: int = 1) -> str:
    """``33.3%``."""
    if is_missing(x):
        return DASH
    return f"{fmt_num(x, digits)}%"


def fmt_month(m) -> str:
    """Months as ``36`` (integers without decimals), ``1.5`` otherwise."""
    if is_missing(m):
        return DASH
    m = float(m)
    return str(int(m)) if m.is_integer() else f"{m:g}"


def fmt_days(days: int) -> str:
    """``-365`` → ``"365 days before"``, ``30`` → ``"30 days after"``, ``0`` → ``"on the day of"``."""
    if days == 0:
        return "on the day of"
    word = "day" if abs(days) == 1 else "days"
    return f"{abs(days)} {word} {'before' if days < 0 else 'after'}"


def fmt_cell(v, digits: int = 1) -> str:
    """A table cell of unknown type: text as is, integers as counts, reals with ``digits`` decimals."""
    if is_missing(v):
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, Integral):
        return fmt_int(v)
    if isinstance(v, Real):
        f = float(v)
        return fmt_int(f) if f.is_integer() and abs(f) >= 1000 else fmt_num(f, digits)
    return str(v)


def fmt_general(x, sig: int = 4) -> str:
    """``sig`` significant digits without trailing zeros, as R prints coefficients (``0.05531``, ``64.02``).

    >>> fmt_general(0.0553), fmt_general(64.0), fmt_general(-1234.56), fmt_general(3.2e-7)
    ('0.0553', '64', '−1235', '3.2e−07')
    """
    if is_missing(x):
        return DASH
    x = float(x)
    if not math.isfinite(x):
        return DASH
    if x != 0 and abs(x) < 1e-4:
        return f"{x:.{sig}g}".replace("-", MINUS)
    if abs(x) >= 10 ** sig:
        return _minus(f"{x:.0f}")
    return _minus(f"{x:.{sig}g}")


def and_join(items: list[str]) -> str:
    """``["a", "b", "c"]`` → ``"a, b and c"``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
