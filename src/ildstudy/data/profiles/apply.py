"""Apply a mapping profile: a centre's tables -> the canonical tables, every value accounted for.

Each canonical column is built from its source column (value map, then date format, dose parser or unit),
then typed and checked by the same :func:`~ildstudy.data.coerce.coerce_table` as a canonical registry. A
value the profile cannot read becomes a :class:`~ildstudy.errors.Problem` (error) with the centre's file,
row, column and value; a source column that no table uses is reported as a warning (unless the profile
lists it under ``ignore``). Nothing is dropped silently.

>>> from ildstudy.data.profiles import load_profile, read_with_profile           # doctest: +SKIP
>>> registry, problems = read_with_profile(load_profile("examples/profile/profile.toml"),
...                                        "examples/profile/export")           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.data.coerce import MISSING, coerce_table
from ildstudy.data.profiles.model import CANONICAL_UNITS, ColumnMap, Profile, TableMap
from ildstudy.data.profiles.sources import SourceTable, read_source
from ildstudy.data.profiles.values import read_date, read_dose, read_number, to_unit
from ildstudy.data.readers import MAX_PER_KIND, RawTable, shorten
from ildstudy.data.registry import Registry
from ildstudy.data.schema import TABLES, TableSpec
from ildstudy.errors import Problem

TRUE_CHECKBOX = frozenset({"1", "checked", "true", "yes"})
FALSE_CHECKBOX = frozenset({"0", "unchecked", "false", "no", ""})


def read_with_profile(profile: Profile, raw_dir: str | Path) -> tuple[Registry, list[Problem]]:
    """Read a centre's files (or REDCap project) in ``raw_dir`` through ``profile``.

    Returns the registry (typed canonical tables) and every problem, errors and warnings, like
    :func:`~ildstudy.data.registry.read_registry`; never raises for bad data.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        return Registry({}), [Problem(str(raw_dir), None, None, None, "folder does not exist")]
    if profile.redcap is not None:
        from ildstudy.data.redcap import redcap_sources

        sources, problems = redcap_sources(profile, raw_dir)
    else:
        sources, problems = _file_sources(profile, raw_dir)
    tables: dict[str, pd.DataFrame] = {}
    files: dict[str, Path] = {}
    used: dict[str, set[str]] = {}
    for spec in TABLES:
        tmap = profile.tables.get(spec.name)
        source = sources.get(spec.name)
        if tmap is None or source is None:
            continue
        typed, table_problems, columns = map_table(spec, tmap, source)
        problems += table_problems
        used.setdefault(source.file, set()).update(columns | set(tmap.ignore))
        if typed is not None:
            tables[spec.name] = typed
            files[spec.name] = raw_dir / source.file
    problems += _unmapped_columns(profile, sources, used)
    return Registry(tables, files, tuple(p for p in problems if p.severity != "error")), problems


def _file_sources(profile: Profile, raw_dir: Path) -> tuple[dict[str, SourceTable], list[Problem]]:
    sources: dict[str, SourceTable] = {}
    problems: list[Problem] = []
    cache: dict[tuple, tuple[SourceTable | None, list[Problem]]] = {}
    for name, tmap in profile.tables.items():
        key = (tmap.file, tmap.delimiter, tmap.encoding, tmap.sheet)
        if key not in cache:
            cache[key] = read_source(raw_dir / tmap.file, delimiter=tmap.delimiter, encoding=tmap.encoding,
                                     sheet=tmap.sheet)
            problems += cache[key][1]
        if cache[key][0] is not None:
            sources[name] = cache[key][0]
    return sources, problems


def _unmapped_columns(profile: Profile, sources: dict[str, SourceTable], used: dict[str, set[str]]) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for name, source in sources.items():
        if source.file in seen and profile.redcap is None:
            continue
        seen.add(source.file)
        for c in source.frame.columns:
            if c not in used.get(source.file, set()) and not _is_redcap_bookkeeping(c):
                n = int((source.frame[c] != "").sum())
                where = f"REDCap instrument {profile.tables[name].instrument!r}" if profile.redcap else "this file"
                problems.append(Problem(source.file, 1, c, None,
                                        f"column of {where} is not mapped by the profile ({n} non-empty values "
                                        "not read); map it or list it under 'ignore'", "warning"))
    return problems


def _is_redcap_bookkeeping(c: str) -> bool:
    return c in ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance") or c.endswith("_complete")


def map_table(spec: TableSpec, tmap: TableMap, source: SourceTable
              ) -> tuple[pd.DataFrame | None, list[Problem], set[str]]:
    """Build one canonical table from its source: (typed table or None, problems, source columns used)."""
    frame = source.frame
    n = len(frame)
    problems: list[Problem] = []
    out: dict[str, object] = {}
    reported: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    used: set[str] = set()
    for col, cmap in tmap.columns.items():
        kind = spec.column(col).kind
        if cmap.value is not None:
            out[col] = np.full(n, cmap.value, dtype=object)
            continue
        src = f"{cmap.source}___{cmap.choice}" if cmap.choice is not None else cmap.source
        if src not in frame.columns:
            close = ", ".join(list(frame.columns)[:12])
            problems.append(Problem(source.file, 1, src, None,
                                    f"column named in the profile for {spec.name}.{col} is not in the file "
                                    f"(its columns are {close}{', ...' if frame.shape[1] > 12 else ''})"))
            continue
        used.add(src)
        names[col] = src
        text = frame[src].to_numpy(object)
        values, bad = convert_column(text, cmap, kind, tmap.decimal, col,
                                     date_cells={i for i, c in source.date_cells if c == src})
        out[col] = values
        for reason, mask in bad.items():
            problems += _located(source.file, source.rows, mask, src, text, reason)
            reported[col] = reported.get(col, np.zeros(n, bool)) | mask
    if any(p.severity == "error" and p.row == 1 for p in problems):
        return None, problems, used
    raw = RawTable(spec, Path(source.file), pd.DataFrame(out, index=pd.RangeIndex(n), dtype=object), 2,
                   source.rows)
    typed, cell_problems = coerce_table(raw)
    rows_of = {int(r): i for i, r in enumerate(source.rows)}
    for p in cell_problems:
        if p.problem == MISSING and p.column in reported and p.row in rows_of and reported[p.column][rows_of[p.row]]:
            continue  # the unreadable value was reported already
        if p.column in names:
            p = Problem(p.file, p.row, f"{names[p.column]} ({spec.name}.{p.column})", p.value, p.problem, p.severity)
        problems.append(p)
    return typed, problems, used


def convert_column(text: np.ndarray, cmap: ColumnMap, kind: str, decimal: str, canonical: str,
                   date_cells: set[int] = frozenset()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One source column -> canonical text cells and ``{reason: mask of unreadable cells}``."""
    cells = np.array(["" if v is None else str(v).strip() for v in text], dtype=object)
    if cmap.map:
        lower = {k.strip().lower(): v for k, v in cmap.map.items()}
        cells = np.array([lower.get(v.lower(), v) for v in cells], dtype=object)
    if cmap.choice is not None:
        return _checkbox(cells)
    reader: Callable[[str], tuple[object, str | None]] | None = None
    if kind == "date" and cmap.date is not None and cmap.date != "iso":
        fmt = cmap.date
        reader = lambda v: read_date(v, fmt)  # noqa: E731
    elif kind == "number" and cmap.dose:
        unit = cmap.unit
        reader = lambda v: read_dose(v, unit)  # noqa: E731
    elif kind == "number" and (cmap.unit is not None or decimal == ","):
        unit = cmap.unit if cmap.unit != CANONICAL_UNITS.get(canonical, ("",))[0] else None

        def reader(v: str):
            x, why = read_number(v, decimal)
            return (None, why) if why else (to_unit(x, unit), None)
    if reader is None:
        return cells, {}
    out = np.empty(len(cells), dtype=object)
    bad: dict[str, np.ndarray] = {}
    memo: dict[str, tuple[object, str | None]] = {}
    for i, v in enumerate(cells):
        if v == "" or v.lower() in ("na", "n/a", "#n/a", "null", "nan", "."):
            out[i] = ""
            continue
        if i in date_cells:  # a real date cell of a spreadsheet: already a date, whatever the declared text form
            out[i] = v
            continue
        if v not in memo:
            memo[v] = reader(v)
        value, why = memo[v]
        if why is not None:
            bad.setdefault(why, np.zeros(len(cells), bool))[i] = True
            out[i] = ""
        else:
            out[i] = value if isinstance(value, str) else repr(float(value))
    return out, bad


def _checkbox(cells: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    low = np.array([v.lower() for v in cells], dtype=object)
    out = np.where(np.isin(low, list(TRUE_CHECKBOX)), "true", np.where(np.isin(low, list(FALSE_CHECKBOX)), "false", ""))
    unknown = ~np.isin(low, list(TRUE_CHECKBOX | FALSE_CHECKBOX))
    return out.astype(object), ({"is not a checkbox value (1/0, Checked/Unchecked)": unknown} if unknown.any() else {})


def _located(file: str, rows: np.ndarray, mask: np.ndarray, column: str, values, reason: str) -> list[Problem]:
    idx = np.flatnonzero(mask)
    out = [Problem(file, int(rows[i]), column, shorten(values[i]), reason) for i in idx[:MAX_PER_KIND]]
    if len(idx) > MAX_PER_KIND:
        out.append(Problem(file, None, column, None, f"... and {len(idx) - MAX_PER_KIND} more rows where the value "
                                                     f"{reason}"))
    return out
