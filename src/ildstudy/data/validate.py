"""Checks across rows and tables, run after every cell has its type.

``validate_registry`` returns problems; it never raises for bad data. The checks on single
cells (types, ranges, categories, dates after today) are made while typing, in
:mod:`ildstudy.data.coerce`; the ones here need more than one cell:

- patients: at least one patient; ``patient_id`` unique; ILD diagnosed after birth;
  (warning) an ILD diagnosis date for a patient recorded without ILD;
- every other table: its ``patient_id`` is in patients; no date before the patient's birth;
- medications: ``stop_date`` not before ``start_date``;
- (warning) drug names that the drug dictionary (:mod:`ildstudy.reference.drugs`) does not recognise.

All checks are vectorised; a :class:`~ildstudy.errors.Problem` is built only for a flagged
row, at most :data:`~ildstudy.data.readers.MAX_PER_KIND` per (file, column, problem).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ildstudy.data.readers import MAX_PER_KIND, located_problems, source_rows
from ildstudy.data.registry import Registry
from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy.errors import Problem
from ildstudy.reference.drugs import DrugNames, normalise_drug_name, unrecognised_drug_problems

__all__ = ["MAX_PER_KIND", "in_file_order", "summary", "validate_registry"]

NO_PATIENTS = "has no rows: a registry needs at least one patient"
DUPLICATE_ID = "appears more than once (each patient must have one row)"
NOT_A_PATIENT = "is not a patient_id in {patients}"
BEFORE_BIRTH = "is before the patient's birth_date"
STOP_BEFORE_START = "is before start_date"
ILD_DATE_WITHOUT_ILD = "is given but ild is false"


def validate_registry(registry: Registry) -> list[Problem]:
    """Return the problems that involve more than one cell: ids, links between tables, date order.

    Parameters
    ----------
    registry
        Typed tables as returned by :func:`~ildstudy.data.registry.read_registry` (possibly
        incomplete: tables or columns that could not be read are skipped).

    Examples
    --------
    >>> from ildstudy.data import read_registry                  # doctest: +SKIP
    >>> registry, problems = read_registry("registry")           # doctest: +SKIP
    >>> problems += validate_registry(registry)                  # doctest: +SKIP
    """
    tables = {name: _Table(name, frame, registry.files.get(name))
              for name, frame in registry.tables.items() if name in TABLES_BY_NAME}
    problems: list[Problem] = []
    patients = tables.get("patients")
    lookup = None
    if patients is not None:
        problems += _check_patients(patients)
        if len(patients.frame):  # with no patients at all, one message says it better than an orphan per row
            lookup = _PatientLookup(patients)
    for name, table in tables.items():
        if name == "patients":
            continue
        if lookup is not None:
            problems += _check_links(table, lookup, patients.file)
        if name == "medications":
            problems += _check_stop_after_start(table)
        problems += _check_drug_names(table)
    return problems


class _Table:
    """A typed table with its file name and the row number of each row in that file."""

    def __init__(self, name: str, frame: pd.DataFrame, path: Path | None):
        self.name = name
        self.frame = frame
        self.file = path.name if path is not None else f"{name}.csv"
        self.rows = source_rows(frame, path)

    def column(self, name: str) -> pd.Series | None:
        return self.frame[name] if name in self.frame.columns else None

    def problems(self, mask, column: str, text: str, severity: str = "error", values=None) -> list[Problem]:
        if values is None:
            values = _Shown(self.frame[column])
        return located_problems(self.file, self.rows, mask, column, values, text, severity)


class _Shown:
    """Positional access to typed cells as text (dates as YYYY-MM-DD)."""

    def __init__(self, s: pd.Series):
        self._s = s

    def __getitem__(self, i: int) -> str:
        v = self._s.iloc[int(i)]
        if v is None or v is pd.NA or v is pd.NaT:
            return ""
        if isinstance(v, pd.Timestamp):
            return v.strftime("%Y-%m-%d")
        if isinstance(v, float):
            return str(int(v)) if v.is_integer() else repr(v)
        return str(v)


class _PatientLookup:
    """Where each patient_id sits in patients (first row if repeated), for per-row joins."""

    def __init__(self, patients: _Table):
        ids = patients.column("patient_id")
        if ids is None:
            ids = pd.Series([], dtype=object)
        first = (~ids.duplicated() & ids.notna()).to_numpy()
        self.ids = _id_array(ids[first])
        birth = patients.column("birth_date")
        self.birth = (birth[first].to_numpy("datetime64[ns]") if birth is not None
                      else np.full(int(first.sum()), np.datetime64("NaT"), "datetime64[ns]"))

    def positions(self, ids: pd.Series) -> np.ndarray:
        """Position of each id in patients, -1 when absent (or the id is missing)."""
        pos = pc.index_in(_id_array(ids), value_set=self.ids)
        return np.asarray(pc.fill_null(pos, -1).to_numpy(zero_copy_only=False), dtype=np.int64)

    def births(self, positions: np.ndarray) -> np.ndarray:
        out = np.full(len(positions), np.datetime64("NaT"), "datetime64[ns]")
        known = positions >= 0
        out[known] = self.birth[positions[known]]
        return out


def _id_array(ids: pd.Series) -> pa.Array:
    """Patient ids as a pyarrow string array (hash joins in Arrow are ~10x faster than on objects)."""
    values = ids.to_numpy(object)
    try:
        return pa.array(values, pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids that are not all text
        return pa.array([None if pd.isna(v) else str(v) for v in values], pa.large_string())


def _check_patients(patients: _Table) -> list[Problem]:
    if len(patients.frame) == 0:
        return [Problem(patients.file, None, None, None, NO_PATIENTS)]
    problems: list[Problem] = []
    ids = patients.column("patient_id")
    if ids is not None:
        problems += patients.problems((ids.duplicated(keep=False) & ids.notna()).to_numpy(), "patient_id",
                                      DUPLICATE_ID)
    birth, ild_date = patients.column("birth_date"), patients.column("ild_diagnosis_date")
    if birth is not None and ild_date is not None:
        problems += patients.problems((ild_date < birth).to_numpy(), "ild_diagnosis_date", BEFORE_BIRTH)
    ild = patients.column("ild")
    if ild is not None and ild_date is not None:
        without = (ild.eq(False).fillna(False) & ild_date.notna()).to_numpy(bool)
        problems += patients.problems(without, "ild_diagnosis_date", ILD_DATE_WITHOUT_ILD, "warning")
    return problems


def _check_links(table: _Table, lookup: _PatientLookup, patients_file: str) -> list[Problem]:
    """Rows whose patient is not in patients; dates before the patient's birth."""
    ids = table.column("patient_id")
    if ids is None:
        return []
    pos = lookup.positions(ids)
    problems = table.problems((pos < 0) & ids.notna().to_numpy(), "patient_id",
                              NOT_A_PATIENT.format(patients=patients_file))
    births = lookup.births(pos)
    if np.isnat(births).all():
        return problems
    for col in TABLES_BY_NAME[table.name].columns:
        dates = table.column(col.name) if col.kind == "date" else None
        if dates is not None:
            problems += table.problems(dates.to_numpy("datetime64[ns]") < births, col.name, BEFORE_BIRTH)
    return problems


def _check_stop_after_start(medications: _Table) -> list[Problem]:
    start, stop = medications.column("start_date"), medications.column("stop_date")
    if start is None or stop is None:
        return []
    return medications.problems((stop < start).to_numpy(), "stop_date", STOP_BEFORE_START)


def _check_drug_names(table: _Table) -> list[Problem]:
    """Warnings for drug names the built-in drug dictionary does not know, one per spelling with its count.

    A protocol may add spellings (``[drug_names]``); ``ildstudy run`` reports against those too.
    """
    drugs = table.column("drug")
    if drugs is None or not len(drugs):
        return []
    names = DrugNames.builtin()
    codes, uniques = pd.factorize(drugs.astype(object))
    n_rows = np.bincount(codes[codes >= 0], minlength=len(uniques))
    counts: dict[str, int] = {}
    for spelling, n in zip(uniques, n_rows):
        key = normalise_drug_name(str(spelling))
        if key is not None and names.generic(key) is None:
            counts[key] = counts.get(key, 0) + int(n)
    problems = unrecognised_drug_problems(counts, table.file, "drug")
    if len(problems) > MAX_PER_KIND:
        rest = sorted(counts.values(), reverse=True)[MAX_PER_KIND:]
        problems = problems[:MAX_PER_KIND] + [Problem(
            table.file, None, "drug", None,
            f"... and {len(rest)} more unrecognised drug names in {sum(rest)} rows", "warning")]
    return problems


def in_file_order(problems: list[Problem]) -> list[Problem]:
    """Problems grouped by file (tables in schema order, then other files); order kept within a file."""
    order = {name: i for i, name in enumerate(TABLES_BY_NAME)}

    def key(item: tuple[int, Problem]) -> tuple[int, str, int]:
        i, p = item
        return (order.get(Path(p.file).stem.lower(), len(order)) if p.file else -1, p.file, i)

    return [p for _, p in sorted(enumerate(problems), key=key)]


def summary(problems: list[Problem], folder: str | Path) -> str:
    """One sentence a clinician can act on: how many errors and warnings, in which files."""
    errors: dict[str, int] = {}
    n_warn = 0
    for p in problems:
        more = re.match(r"\.\.\. and (\d+) more rows", p.problem) if p.row is None else None
        count = int(more.group(1)) if more else 1
        if p.severity == "error":
            file = p.file or str(folder)
            errors[file] = errors.get(file, 0) + count
        else:
            n_warn += count
    warn = "no warnings" if not n_warn else f"{n_warn:,} warning{'s' if n_warn != 1 else ''}"
    if not errors:
        return f"{folder}: no errors, {warn}; the registry can be used."
    n_err = sum(errors.values())
    files = {f: n for f, n in errors.items() if f != str(folder)}
    where = (f" in {next(iter(files))}" if len(files) == 1 and len(errors) == 1
             else f" ({', '.join(f'{f}: {n:,}' for f, n in files.items())})" if files else "")
    return (f"{folder}: {n_err:,} error{'s' if n_err != 1 else ''}{where}, {warn}; "
            "the registry cannot be used until the errors are fixed")
