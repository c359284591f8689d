"""Column containers of the generated tables and their conversion to Arrow and pandas.

Rows are built as numpy arrays: text as codes into a vocabulary (:class:`Coded`), dates as day numbers
(:class:`Dates`), booleans as ``int8`` with ``-1`` for missing (:class:`Flags`), numbers as ``float64``
with ``NaN`` for missing. Converting to Arrow never goes through Python objects, which keeps a
million-patient registry fast and small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy.synth.windows import NONE


@dataclass(frozen=True, slots=True)
class Coded:
    """Text: ``codes`` (``int32``, ``-1`` missing) into ``vocab``."""

    codes: np.ndarray
    vocab: tuple[str, ...]

    def take(self, order: np.ndarray) -> "Coded":
        return Coded(self.codes[order], self.vocab)


@dataclass(frozen=True, slots=True)
class Dates:
    """Dates as days since 1970-01-01 (``int64``); ``NONE`` or more is missing."""

    days: np.ndarray

    def take(self, order: np.ndarray) -> "Dates":
        return Dates(self.days[order])

    @property
    def missing(self) -> np.ndarray:
        return self.days >= NONE

    def datetime64(self) -> np.ndarray:
        """``datetime64[D]`` with NaT for missing."""
        out = np.where(self.missing, np.iinfo(np.int64).min, self.days).astype("datetime64[D]")
        return out


@dataclass(frozen=True, slots=True)
class Flags:
    """Booleans: ``int8`` 1/0, ``-1`` missing."""

    values: np.ndarray

    def take(self, order: np.ndarray) -> "Flags":
        return Flags(self.values[order])


@dataclass(frozen=True, slots=True)
class Ids:
    """Patient identifiers as numbers; the text is ``P`` + the number zero-padded to ``width`` digits."""

    numbers: np.ndarray
    width: int
    first: int | None = None
    vocab: pa.Array | None = None

    def take(self, order: np.ndarray) -> "Ids":
        return Ids(self.numbers[order], self.width, self.first, self.vocab)

    def dictionary(self) -> tuple[pa.Array, np.ndarray]:
        """(text of consecutive patient numbers, indices of this column into it).

        Uses the precomputed ``vocab`` (text of ``first, first + 1, ...``) when given.
        """
        if self.vocab is not None:
            return self.vocab, (self.numbers - self.first).astype(np.int32)
        lo = int(self.numbers.min(initial=0))
        hi = int(self.numbers.max(initial=-1))
        return id_text(np.arange(lo, hi + 1), self.width), (self.numbers - lo).astype(np.int32)


def id_text(numbers: np.ndarray, width: int) -> pa.Array:
    """``P000001``-style identifiers for patient numbers (vectorised in Arrow)."""
    digits = pc.utf8_lpad(pa.array(numbers, type=pa.int64()).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise("P", digits, "")


Column = Coded | Dates | Flags | Ids | np.ndarray
Table = dict[str, Column]


def take(col: Column, order: np.ndarray) -> Column:
    return col[order] if isinstance(col, np.ndarray) else col.take(order)


def concat(parts: list[Column]) -> Column:
    """Concatenate blocks of one column; text blocks are re-coded into the union vocabulary."""
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, Dates):
        return Dates(np.concatenate([p.days for p in parts]))
    if isinstance(first, Flags):
        return Flags(np.concatenate([p.values for p in parts]))
    if isinstance(first, Ids):
        return Ids(np.concatenate([p.numbers for p in parts]), first.width)    # vocabularies differ per block
    vocab: dict[str, int] = {}
    for p in parts:
        for v in p.vocab:
            vocab.setdefault(v, len(vocab))
    codes = []
    for p in parts:
        remap = np.array([vocab[v] for v in p.vocab] + [-1], dtype=np.int32)
        codes.append(remap[p.codes])           # -1 indexes the appended -1
    return Coded(np.concatenate(codes), tuple(vocab))


def concat_tables(parts: list[Table]) -> Table:
    """Concatenate blocks of rows of one table (same columns)."""
    return {k: concat([p[k] for p in parts]) for k in parts[0]}


def coded(values: np.ndarray, vocab: tuple[str, ...]) -> Coded:
    return Coded(np.asarray(values, dtype=np.int32), tuple(vocab))


def to_arrow(table_name: str, table: Table) -> pa.Table:
    """An Arrow table with the canonical columns of ``table_name`` (string, date32, bool, float64)."""
    spec = TABLES_BY_NAME[table_name]
    arrays = []
    for col in spec.columns:
        arrays.append(_arrow_array(table[col.name]))
    return pa.Table.from_arrays(arrays, names=list(spec.column_names))


def _arrow_array(col: Column) -> pa.Array:
    if isinstance(col, Ids):
        vocab, idx = col.dictionary()
        return pa.DictionaryArray.from_arrays(pa.array(idx), vocab).cast(pa.string())
    if isinstance(col, Coded):
        missing = col.codes < 0
        idx = pa.array(np.where(missing, 0, col.codes).astype(np.int32), mask=missing)
        vocab = pa.array(list(col.vocab) or [""], type=pa.string())
        return pa.DictionaryArray.from_arrays(idx, vocab).cast(pa.string())
    if isinstance(col, Dates):
        missing = col.missing
        return pa.array(np.where(missing, 0, col.days).astype(np.int32), mask=missing).view(pa.date32())
    if isinstance(col, Flags):
        return pa.array(col.values == 1, mask=col.values < 0)
    values = np.asarray(col, dtype=np.float64)
    return pa.array(values, mask=np.isnan(values))


def to_pandas(table_name: str, table: Table) -> pd.DataFrame:
    """The table as pandas: text as ``object`` (``None`` missing), dates ``datetime64[ns]``, booleans
    ``boolean``, numbers ``float64`` -- the types :func:`ildstudy.data.load_registry` produces."""
    spec = TABLES_BY_NAME[table_name]
    data = {}
    for c in spec.columns:
        col = table[c.name]
        if isinstance(col, Ids):
            vocab, idx = col.dictionary()
            data[c.name] = pd.Series(vocab.to_numpy(zero_copy_only=False).astype(object)[idx], dtype=object)
        elif isinstance(col, Coded):
            vocab = np.array(list(col.vocab) + [None], dtype=object)
            data[c.name] = pd.Series(vocab[col.codes], dtype=object)
        elif isinstance(col, Dates):
            data[c.name] = pd.Series(col.datetime64().astype("datetime64[ns]"))
        elif isinstance(col, Flags):
            data[c.name] = pd.Series(pd.array(np.where(col.values < 0, None, col.values == 1), dtype="boolean"))
        else:
            data[c.name] = pd.Series(np.asarray(col, dtype=np.float64))
    return pd.DataFrame(data)
