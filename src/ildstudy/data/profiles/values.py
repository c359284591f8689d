"""Cell readers of a mapping profile: dates in a declared format, numbers in a declared unit, free-text doses.

Each reader takes one cell's text and returns ``(value, None)`` or ``(None, reason)``; the reason becomes a
:class:`~ildstudy.errors.Problem` naming file, row, column and value. Nothing is guessed: a date is read
only in the column's declared format, a dose only when its amount and frequency are clear.

>>> read_date("03.04.2019", "day-first"), read_date("04/03/2019", "month-first")
(('2019-04-03', None), ('2019-04-03', None))
>>> read_dose("5mg bid"), read_dose("7.5 mg daily"), read_dose("10mg")
((10.0, None), (7.5, None), (10.0, None))
>>> read_dose("5-10 mg")[1]
'is a range of doses; give one dose per row (a dose change is a new row)'
"""

from __future__ import annotations

import datetime as dt
import re

EXCEL_EPOCH = dt.date(1899, 12, 30)
"""Day 0 of Excel's 1900 date system (serial 1 is 1900-01-01; Excel's phantom 1900-02-29 is skipped by this epoch
for serials from 61 on, the dates any registry holds)."""

_DMY = re.compile(r"^(\d{1,2})[./\-](\d{1,2})[./\-](\d{2,4})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_SERIAL = re.compile(r"^\d{1,6}(?:\.\d+)?$")

TWO_DIGIT_YEAR = "has a two-digit year; the century is not known (write the year with four digits)"


def read_date(text: str, fmt: str) -> tuple[str | None, str | None]:
    """Read ``text`` as a date in ``fmt``; return ``("YYYY-MM-DD", None)`` or ``(None, reason)``.

    ``fmt``: ``"iso"`` (``2019-04-03``, a time of day ignored), ``"day-first"`` (``03.04.2019``, ``3/4/2019``,
    ``03-04-2019``), ``"month-first"`` (``04/03/2019``), ``"excel-serial"`` (days since 1899-12-30, e.g.
    ``43558``) or a strptime format (``"%d %b %Y"``).
    """
    s = text.strip()
    if fmt == "excel-serial":
        if not _SERIAL.match(s):
            return None, "is not an Excel date serial number (days since 1899-12-30)"
        days = int(float(s))
        if days < 61:
            return None, "is an Excel serial before 1900-03-01 (not a registry date)"
        return (EXCEL_EPOCH + dt.timedelta(days=days)).isoformat(), None
    if fmt == "iso":
        m = _ISO.match(s)
        if not m:
            return None, "is not a date in YYYY-MM-DD form (the format the profile declares for this column)"
        y, mo, d = (int(g) for g in m.groups())
    elif fmt in ("day-first", "month-first"):
        m = _DMY.match(s)
        if not m:
            shape = "DD.MM.YYYY or DD/MM/YYYY" if fmt == "day-first" else "MM/DD/YYYY"
            return None, f"is not a date in {shape} form (the format the profile declares for this column)"
        a, b, year = m.groups()
        if len(year) != 4:
            return None, TWO_DIGIT_YEAR
        d, mo = (int(a), int(b)) if fmt == "day-first" else (int(b), int(a))
        y = int(year)
    else:
        try:
            parsed = dt.datetime.strptime(s, fmt)
        except ValueError:
            return None, f"does not match the date format {fmt!r} declared for this column"
        if "%y" in fmt:
            return None, TWO_DIGIT_YEAR
        return parsed.date().isoformat(), None
    try:
        return dt.date(y, mo, d).isoformat(), None
    except ValueError:
        return None, f"is not a real date (read as day {d}, month {mo}, year {y})"


# -- numbers and units ----------------------------------------------------------------------------

#: factor to the canonical unit: value_in_canonical = value * factor (for "mL" -> "L": 1/1000)
UNIT_FACTORS: dict[str, tuple[float, bool]] = {
    "L": (1.0, False), "mL": (1000.0, True), "percent": (1.0, False), "fraction": (100.0, False),
    "cm": (1.0, False), "m": (100.0, False), "mm": (10.0, True), "mg": (1.0, False), "g": (1000.0, False),
    "g/dL": (1.0, False), "g/L": (10.0, True),
}
"""unit -> (factor, divide): the canonical value is ``x / factor`` when ``divide`` else ``x * factor``."""

_PLAIN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def to_unit(x: float, unit: str | None) -> float:
    """``x`` written in ``unit`` expressed in the column's canonical unit, rounded to 15 significant digits
    (so that 2850 mL is 2.85 L, not 2.8500000000000001)."""
    if unit is None:
        return x
    factor, divide = UNIT_FACTORS[unit]
    y = x / factor if divide else x * factor
    return float(f"{y:.15g}")


def read_number(text: str, decimal: str = ".") -> tuple[float | None, str | None]:
    """A number written with ``decimal`` as decimal mark (``"2,85"`` with ``decimal=","``), no thousands marks."""
    s = text.strip().replace(" ", "")
    if decimal == "," and _DECIMAL_COMMA.match(s):
        s = s.replace(",", ".")
    if not _PLAIN.match(s):
        if decimal == "." and _DECIMAL_COMMA.match(s):
            return None, "is not a number (it has a decimal comma; set decimal = \",\" for this file)"
        return None, "is not a number"
    return float(s), None


# -- free-text doses --------------------------------------------------------------------------------

#: per-day multipliers of the frequency words a dose may carry
FREQUENCIES: tuple[tuple[str, float], ...] = (
    (r"every\s+other\s+day|alternate\s+days?|q\.?o\.?d\.?|qad", 0.5),
    (r"(?:once\s+)?(?:a\s+)?week(?:ly)?|/\s*w(?:ee)?k|per\s+week|q\.?w(?:k)?\.?|1\s*x\s*/?\s*(?:per\s+)?week", 1 / 7),
    (r"q\.?i\.?d\.?|four\s+times\s+(?:a\s+)?daily|four\s+times\s+a\s+day|4\s*x\s*(?:/\s*)?(?:daily|day|d)", 4.0),
    (r"t\.?i\.?d\.?|three\s+times\s+(?:a\s+)?daily|three\s+times\s+a\s+day|3\s*x\s*(?:/\s*)?(?:daily|day|d)", 3.0),
    (r"b\.?i\.?d\.?|twice\s+(?:a\s+)?daily|twice\s+a\s+day|2\s*x\s*(?:/\s*)?(?:daily|day|d)|q12h", 2.0),
    (r"daily|once\s+(?:a\s+)?daily|once\s+a\s+day|a\s+day|per\s+day|/\s*d(?:ay)?|q\.?d\.?|o\.?d\.?|1\s*x\s*"
     r"(?:/\s*)?(?:daily|day|d)|q24h|nocte|mane|each\s+morning|in\s+the\s+morning|at\s+night|t(?:ä|ae)glich|tgl\.?", 1.0),
)
_FREQ = [(re.compile(rf"^(?:{p})$"), m) for p, m in FREQUENCIES]
_AMOUNT = re.compile(r"^(\d+(?:[.,]\d+)?)\s*(mg|g|milligrams?|grams?)?\.?\s*(.*)$")
_RANGE = re.compile(r"\d\s*(?:-|–|to)\s*\d")
_WORD_UNIT = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gram": 1000.0, "grams": 1000.0}

DOSE_RANGE = "is a range of doses; give one dose per row (a dose change is a new row)"
DOSE_UNREAD = ("is not a dose ildstudy can read (write e.g. '10 mg', '7.5 mg daily', '5 mg bid', "
               "'1 g twice daily', '15 mg weekly')")


def read_dose(text: str, unit: str | None = None) -> tuple[float | None, str | None]:
    """Read a free-text dose as mg/day: an amount (mg or g; a bare number is in ``unit``, default mg) and an
    optional frequency -- daily/qd/od ×1, bid ×2, tid ×3, qid ×4, every other day/qod ×0.5, weekly ×1/7.

    Ranges (``"5-10 mg"``), several doses, units other than mg/g (``"2 tablets"``) and unknown words are
    refused with a reason, never guessed.
    """
    s = " ".join(text.strip().lower().split())
    if _RANGE.search(s):
        return None, DOSE_RANGE
    m = _AMOUNT.match(s)
    if not m:
        return None, DOSE_UNREAD
    amount_text, word_unit, rest = m.groups()
    if "," in amount_text and not re.fullmatch(r"\d+,\d{1,2}", amount_text):
        return None, DOSE_UNREAD
    amount = float(amount_text.replace(",", "."))
    if word_unit:
        amount *= _WORD_UNIT[word_unit]
    elif unit is not None:
        amount = to_unit(amount, unit)
    rest = rest.strip().strip(",;").strip()
    rest = re.sub(r"^(?:p\.?o\.?|orally|oral)\s*", "", rest).strip()
    rest = re.sub(r"\s*(?:p\.?o\.?|orally|oral)$", "", rest).strip()
    if not rest:
        return float(f"{amount:.15g}"), None
    for pattern, multiplier in _FREQ:
        if pattern.match(rest):
            return float(f"{amount * multiplier:.15g}"), None
    return None, DOSE_UNREAD
