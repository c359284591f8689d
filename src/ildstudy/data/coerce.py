"""Give raw table columns their real types, reporting every cell that does not fit.

Vectorised over whole columns; a :class:`~ildstudy.errors.Problem` is built only for bad
cells, at most :data:`~ildstudy.data.readers.MAX_PER_KIND` per (column, problem), followed by
one summary line.

What a cell may hold, by column kind (see ``docs/data-format.md``):

- every kind: an empty cell, or ``NA``, ``N/A``, ``#N/A``, ``NULL``, ``NaN`` or ``.``, is missing;
- date: ``YYYY-MM-DD`` text, or a date cell of a spreadsheet or Parquet file; not before
  1900-01-01 and not after today, where "today" is the latest date anywhere on Earth (see :func:`latest_today`),
  so the check does not depend on the machine's time zone;
- number: a decimal-point number (``75``, ``75.5``, ``1e3``), finite and within the column's range;
- bool: true/false, yes/no, y/n, t/f, 1/0 (any case);
- category: one of the column's values, ignoring case, spaces, hyphens and underscores, or an alias.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ildstudy.data.readers import ROWS_ATTR, RawTable, located_problems
from ildstudy.data.schema import Column
from ildstudy.errors import Problem

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})
MISSING_WORDS = frozenset({"", "na", "n/a", "#n/a", "null", "nan", "."})
ISO_DATE = r"\d{4}-\d{2}-\d{2}"
EARLIEST_DATE = pd.Timestamp("1900-01-01")

MISSING = "required value is missing"
NOT_A_DATE = "is not a date (YYYY-MM-DD)"
AMBIGUOUS_DATE = ("is ambiguous: day and month could be either way round; "
                  "write dates as YYYY-MM-DD (e.g. 2019-04-03)")
NOT_ISO_DATE = "is not in YYYY-MM-DD form, the only date form accepted (e.g. 2019-04-03)"
FUTURE_DATE = "is after today"
EARLY_DATE = "is before 1900-01-01"
NOT_A_NUMBER = "is not a number"
COMMA_NUMBER = "is not a number (write numbers with a decimal point and no thousands separator)"
NOT_BOOL = "is not true or false"

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_COMMA_NUMBER = r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?|[+-]?\d+,\d+"
_DAY_MONTH = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})$")
_OTHER_DATE = re.compile(
    r"^(\d{4}[/.\-]\d{1,2}[/.\-]\d{1,2}([ T].*)?|\d{8}"
    r"|.*\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b.*)$",
    re.IGNORECASE,
)
_NS_MAX = pd.Timestamp.max.normalize()
_NS_MIN = pd.Timestamp.min.ceil("D")
_NS_MAX_S = _NS_MAX.to_datetime64().astype("datetime64[s]")
_NS_MIN_S = _NS_MIN.to_datetime64().astype("datetime64[s]")


def coerce_table(raw: RawTable) -> tuple[pd.DataFrame, list[Problem]]:
    """Return the table with canonical columns in canonical order and types, and the problems.

    Types: id/text/category -> object (str or None); date -> datetime64[ns] (midnight);
    bool -> pandas ``boolean``; number -> float64. Optional columns absent from the file are
    added as all-missing. Every row of ``raw.frame`` is kept; a bad cell becomes missing.
    The problems include those the reader found (``raw.problems``). When the rows are not
    numbered index + offset, the typed frame keeps their numbers in ``attrs["ildstudy_rows"]``.

    Examples
    --------
    >>> from ildstudy.data.readers import read_raw_table        # doctest: +SKIP
    >>> raw, fatal = read_raw_table(PFT, Path("registry/pft.csv"))  # doctest: +SKIP
    >>> typed, problems = coerce_table(raw)                      # doctest: +SKIP
    """
    frame = raw.frame
    n = len(frame)
    rows = raw.row_numbers()
    today = pd.Timestamp(latest_today())
    out: dict[str, pd.Series] = {}
    problems: list[Problem] = list(raw.problems)
    for col in raw.spec.columns:
        if col.name not in frame.columns:
            out[col.name] = _empty(col, n)
            continue
        source = frame[col.name]
        values, bad = coerce_column(source, col, today)
        out[col.name] = values
        shown = _CellText(source)
        for text, mask in bad.items():
            problems += located_problems(raw.path.name, rows, mask, col.name, shown, text)
    typed = pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)
    if raw.rows is not None and not np.array_equal(rows, np.arange(n) + raw.row_offset):
        typed.attrs[ROWS_ATTR] = rows
    return typed, problems


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def latest_today() -> dt.date:
    """The last date a cell may hold: the current UTC date plus one day.

    Calendars run from UTC-12 to UTC+14, so the current UTC date plus one day is never earlier than the
    date anywhere on Earth: a date that is today somewhere is never called "after today", on any machine
    and in any time zone (``TZ`` plays no part).

    Examples
    --------
    >>> latest_today() - dt.datetime.now(dt.timezone.utc).date()  # doctest: +SKIP
    datetime.timedelta(days=1)
    """
    return _utc_now().date() + dt.timedelta(days=1)


def coerce_column(s: pd.Series, col: Column, today: pd.Timestamp) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Return (typed values, {problem text: boolean mask of the bad cells}) for one column."""
    s = s.reset_index(drop=True)
    if col.kind == "date" and pd.api.types.is_datetime64_any_dtype(s):
        values, missing, bad = _typed_dates(s)
    elif col.kind == "number" and pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        numbers = np.array(s.to_numpy(dtype="float64", na_value=np.nan), dtype="float64")
        missing = np.isnan(numbers)
        infinite = np.isinf(numbers)
        numbers[infinite] = np.nan
        values, bad = pd.Series(numbers, dtype="float64"), {NOT_A_NUMBER: infinite}
    elif col.kind == "bool" and pd.api.types.is_bool_dtype(s):
        values = s.astype("boolean")
        missing, bad = values.isna().to_numpy(), {}
    else:
        text = _text_array(s)
        missing = _np_bool(pc.is_in(text, value_set=_MISSING_SPELLINGS))
        values, bad = _PARSERS[col.kind](text, missing, col)
    if col.kind == "date":
        values, out_of_range = _bounded_dates(values, today)
        for text, mask in out_of_range.items():
            bad[text] = bad[text] | mask if text in bad else mask
    if col.required:
        bad[MISSING] = missing
    if col.kind == "number":
        bad.update(_range_problems(values, col))
    return values, {text: mask for text, mask in bad.items() if mask.any()}


def as_text(s: pd.Series) -> pd.Series:
    """Cell values as stripped text (pyarrow-backed strings); missing cells become ''."""
    return pd.Series(pd.arrays.ArrowStringArray(pc.cast(_text_array(s), pa.large_string())), index=s.index)


def _text_array(s: pd.Series) -> pa.ChunkedArray:
    """The column as a pyarrow string array: cells as written, stripped, '' for a missing cell."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        arr = pa.array(s.array)
        arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    elif pd.api.types.is_datetime64_any_dtype(s):  # a date cell where text was expected: its day
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_localize(None)
        txt = s.dt.strftime("%Y-%m-%d")
        arr = pa.chunked_array([pa.array(txt.to_numpy(object), pa.large_string(), from_pandas=True)])
    else:
        cells = [_cell_text(v) for v in s.to_numpy(object)]
        arr = pa.chunked_array([pa.array(cells, pa.large_string())])
    return pc.utf8_trim_whitespace(pc.fill_null(arr, ""))


def _np_bool(mask) -> np.ndarray:
    """A pyarrow boolean array (nulls count as false) as a numpy bool array."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


class _CellText:
    """Positional access to a column's cells as the user wrote them (only bad cells are shown)."""

    def __init__(self, s: pd.Series):
        self._s = s

    def __getitem__(self, i: int) -> str:
        return _cell_text(self._s.iloc[int(i)])


def _cell_text(v: object) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return ""
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, dt.date):  # a spreadsheet date (with or without a time of day) is that day
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    if isinstance(v, np.datetime64):
        return _cell_text(pd.Timestamp(v)) if not np.isnat(v) else ""
    return str(v).strip()


_MISSING_SPELLINGS = pa.array(sorted({w for word in MISSING_WORDS for w in (word, word.upper(), word.title())}
                                     | {"NaN", "N/a", "Null"}), pa.large_string())


def _empty(col: Column, n: int) -> pd.Series:
    if col.kind == "date":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    if col.kind == "bool":
        return pd.Series(pd.NA, index=range(n), dtype="boolean")
    if col.kind == "number":
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(None, index=range(n), dtype=object)


# -- one parser per column kind: (text, missing mask, column) -> (values, {problem: mask}) --------

def _as_object(text: pa.ChunkedArray, missing: np.ndarray, col: Column) -> tuple[pd.Series, dict]:
    values = np.array(text.to_numpy(zero_copy_only=False), dtype=object)
    values[missing] = None
    return pd.Series(values, dtype=object), {}


def _by_unique(text: pa.ChunkedArray, lookup) -> np.ndarray:
    """``lookup`` applied once per distinct value, spread back over the column (object array)."""
    whole = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    encoded = pc.dictionary_encode(whole)
    mapped = np.array([lookup(u) for u in encoded.dictionary.to_pylist()] + [None], dtype=object)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    return mapped[codes]  # fancy indexing: a new, writable array


def category_lookup(col: Column) -> Callable[[str], str | None]:
    """The loader's rule for one cell of a category column: its canonical value, or ``None`` if unknown.

    Case, surrounding white space, inner spaces, hyphens and underscores are ignored, and the column's
    aliases are accepted (``" dm"`` -> ``"DM"``, ``"antisynthetase syndrome"`` -> ``"ASyS"``). The protocol
    normalises its ``population.diagnoses`` with this same function.
    """
    exact = col.canonical()
    squashed = {_squash(k): v for k, v in exact.items()}
    return lambda u: exact.get(u.strip().lower()) or squashed.get(_squash(u))


def _category(text: pa.ChunkedArray, missing: np.ndarray, col: Column):
    mapped = _by_unique(text, category_lookup(col))
    unknown = ~missing & pd.isna(mapped)
    mapped[missing] = None
    return pd.Series(mapped, dtype=object), {f"is not one of the allowed values: {', '.join(col.categories)}": unknown}


def _squash(word: str) -> str:
    return re.sub(r"[\s_\-]+", "", word).lower()


def _bool(text: pa.ChunkedArray, missing: np.ndarray, col: Column):
    def lookup(u: str):
        low = u.lower()
        return True if low in TRUE_WORDS else False if low in FALSE_WORDS else None

    mapped = _by_unique(text, lookup)
    unknown = ~missing & pd.isna(mapped)
    mapped[unknown | missing] = pd.NA
    return pd.Series(mapped, dtype=object).astype("boolean"), {NOT_BOOL: unknown}


def _number(text: pa.ChunkedArray, missing: np.ndarray, col: Column):
    present = pc.if_else(pa.array(~missing), text, pa.scalar(None, text.type))
    try:
        parsed = pc.cast(present, pa.float64())  # fast path: every value is a number
        ok = ~missing
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # some cell is not a number: find which
        ok = ~missing & _np_bool(pc.match_substring_regex(text, _NUMBER.pattern))
        try:
            parsed = pc.cast(pc.if_else(pa.array(ok), text, pa.scalar(None, text.type)), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = pa.array(_by_unique(text, _to_float), pa.float64(), from_pandas=True)
            ok &= ~np.isnan(np.asarray(parsed.to_numpy(zero_copy_only=False), dtype="float64"))
    numbers = np.array(parsed.to_numpy(zero_copy_only=False), dtype="float64")
    infinite = ok & ~np.isfinite(numbers)
    numbers[infinite] = np.nan
    bad = ~missing & (~ok | infinite)
    comma = np.zeros(len(numbers), bool)
    if bad.any():
        comma = bad & _np_bool(pc.match_substring_regex(text, f"^({_COMMA_NUMBER})$"))
    return pd.Series(numbers, dtype="float64"), {NOT_A_NUMBER: bad & ~comma, COMMA_NUMBER: comma}


def _to_float(value: str) -> float | None:
    try:
        return float(value) if _NUMBER.match(value) else None
    except (ValueError, OverflowError):
        return None


def _range_problems(values: pd.Series, col: Column) -> dict[str, np.ndarray]:
    v = values.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        low = v < col.low if col.low is not None else np.zeros(len(v), bool)
        high = v > col.high if col.high is not None else np.zeros(len(v), bool)
    if col.low is not None and col.high is not None:
        return {f"is outside the plausible range ({col.low:g} to {col.high:g})": low | high}
    if col.low == 0:
        return {"is negative (must be 0 or more)": low}
    if col.low is not None:
        return {f"is below {col.low:g} (must be at least {col.low:g})": low}
    return {f"is above {col.high:g} (must be at most {col.high:g})": high}


def _date(text: pa.ChunkedArray, missing: np.ndarray, col: Column):
    """ISO dates only; a bad cell is told apart as not a date, ambiguous or another date form."""
    shaped = pc.and_(pc.match_substring_regex(text, f"^{ISO_DATE}$"), pa.array(~missing))
    stamps = pc.strptime(pc.if_else(shaped, text, pa.scalar(None, text.type)), format="%Y-%m-%d", unit="s",
                         error_is_null=True)
    day = pc.cast(pc.utf8_slice_codeunits(pc.if_else(shaped, text, "0000-00-01"), 8, 10), pa.int64())
    real = pc.and_(shaped, pc.equal(pc.day(stamps), day))  # strptime rolls 2019-02-30 over to March
    ok = _np_bool(real)
    seconds = pc.if_else(real, stamps, pa.scalar(None, stamps.type)).to_numpy(zero_copy_only=False)
    seconds = np.array(seconds, dtype="datetime64[s]")
    in_ns = ok & (seconds <= _NS_MAX_S) & (seconds >= _NS_MIN_S)
    seconds[~in_ns] = np.datetime64("NaT")
    values = pd.Series(seconds.astype("datetime64[ns]"), dtype="datetime64[ns]")
    failed = np.flatnonzero(~missing & ~in_ns)
    bad: dict[str, np.ndarray] = {}
    if len(failed):
        why = _by_unique(pc.take(text, pa.array(failed)), _why_not_a_date)
        for kind in (NOT_A_DATE, AMBIGUOUS_DATE, NOT_ISO_DATE, FUTURE_DATE, EARLY_DATE):
            bad[kind] = np.zeros(len(missing), bool)
            bad[kind][failed[why == kind]] = True
    return values, bad


def _why_not_a_date(value: str) -> str:
    """Which date problem a cell that did not parse has (called once per distinct bad value)."""
    if re.fullmatch(ISO_DATE, value):
        try:
            year = dt.date.fromisoformat(value).year
        except ValueError:
            return NOT_A_DATE
        return FUTURE_DATE if year > 1900 else EARLY_DATE  # a real date outside datetime64[ns]
    m = _DAY_MONTH.match(value)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if a <= 12 and b <= 12 and a != b:
            return AMBIGUOUS_DATE
        if 1 <= min(a, b) <= 12 and max(a, b) <= 31:
            return NOT_ISO_DATE
        return NOT_A_DATE
    return NOT_ISO_DATE if _OTHER_DATE.match(value) else NOT_A_DATE


def _typed_dates(s: pd.Series):
    """Date cells of a spreadsheet or Parquet file: keep the day (any time of day is dropped)."""
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_localize(None)
    missing = s.isna().to_numpy()
    late = ~missing & (s > _NS_MAX).to_numpy()
    early = ~missing & (s < _NS_MIN).to_numpy()
    s = s.where(~(late | early)).dt.floor("D")
    return pd.Series(s, dtype="datetime64[ns]"), missing, {FUTURE_DATE: late, EARLY_DATE: early}


def _bounded_dates(values: pd.Series, today: pd.Timestamp) -> tuple[pd.Series, dict[str, np.ndarray]]:
    late = (values > today).to_numpy()
    early = (values < EARLIEST_DATE).to_numpy()
    return values.where(~(late | early)), {FUTURE_DATE: late, EARLY_DATE: early}


_PARSERS = {"id": _as_object, "text": _as_object, "category": _category, "bool": _bool,
            "number": _number, "date": _date}
