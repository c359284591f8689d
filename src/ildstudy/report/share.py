"""``share/``: copies of the tables meant to leave the centre, with small cells suppressed so that they stay hidden.

Primary suppression: a count (``is_count`` in ``analysis/results_schema.csv``) between 1 and ``min_cell - 1``
is shown as ``"<min_cell"``. Complementary (secondary) suppression: each table is written as a set of integer
cells tied by the identities a reader knows (margins, ``remaining_{i-1} = excluded_i + remaining_i``, per-arm
chains, ``count + complement = non-missing = n - missing``, events ≥ patients, …); for every hidden or implied
small cell the range of values consistent with what is still shown is computed by linear programming, and while
a cell is pinned to one value another shown cell of one of its identities (the smallest) is hidden too, shown as
``"*"``. Values computed from counts (percentages, survival, Greenwood SEs and CIs, p-values, SMDs) are withheld
whenever one of the counts they come from is hidden (the ``reveals`` column of the schema).

>>> from ildstudy.report.share import share_tables                  # doctest: +SKIP
>>> shared = share_tables(result.tables, result.results, min_cell=10)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.analysis.schema import load_schema
from ildstudy.report.exports import FLOAT_DIGITS, write_tables

SECONDARY = "*"
_COUNT_PCT = re.compile(r"^\s*(\d+)\s*(?:\(\s*([\d.]+)%\s*\))?\s*$")
_KM_DERIVED = ("survival", "std_err", "ci_low", "ci_high")


@dataclass
class Grid:
    """Integer cells and the linear identities between them that a reader of the tables knows.

    A cell has a true ``value``; ``loc`` is where it is shown (``(table, row, column)``; ``None`` for a cell that
    is only implied, such as the patients excluded from one arm at one step); ``public`` cells (arm sizes) are
    never hidden; ``sensitive=False`` marks slack cells of inequalities (``events - patients ≥ 0``).
    """

    value: dict = field(default_factory=dict)
    loc: dict = field(default_factory=dict)
    public: set = field(default_factory=set)
    slack: set = field(default_factory=set)
    eqs: list = field(default_factory=list)

    def cell(self, key, value, loc=None, *, public=False, slack=False):
        self.value[key] = int(value)
        self.loc[key] = loc
        if public:
            self.public.add(key)
        if slack:
            self.slack.add(key)
        return key

    def equal(self, terms: Mapping) -> None:
        """Add ``sum(coef * cell) == 0``; an identity that the true values break is not one, and is dropped."""
        terms = {k: c for k, c in terms.items() if c}
        if terms and sum(c * self.value[k] for k, c in terms.items()) == 0:
            self.eqs.append(terms)

    def at_least(self, big, small, name) -> None:
        """``big ≥ small`` (through a non-sensitive slack cell)."""
        if self.value[big] >= self.value[small]:
            s = self.cell(("slack", name), self.value[big] - self.value[small], slack=True)
            self.equal({big: 1, small: -1, s: -1})


def value_range(grid: Grid, key, primary: set, hidden: set, min_cell: int) -> tuple[float, float]:
    """The smallest and largest value of ``key`` consistent with the shown cells (LP relaxation)."""
    from scipy.optimize import linprog

    unknown = [k for k in grid.value if k in hidden or (grid.loc[k] is None and k not in grid.public)]
    if key not in unknown:
        return grid.value[key], grid.value[key]
    index = {k: i for i, k in enumerate(unknown)}
    rows, rhs = [], []
    for eq in grid.eqs:
        if not any(k in index for k in eq):
            continue
        row = np.zeros(len(unknown))
        b = 0.0
        for k, c in eq.items():
            if k in index:
                row[index[k]] += c
            else:
                b -= c * grid.value[k]
        rows.append(row)
        rhs.append(b)
    bounds = [(1, min_cell - 1) if k in primary else (0, None) for k in unknown]
    out = []
    for sign in (1, -1):
        c = np.zeros(len(unknown))
        c[index[key]] = sign
        res = linprog(c, A_eq=np.array(rows) if rows else None, b_eq=np.array(rhs) if rows else None,
                      bounds=bounds, method="highs")
        if res.status == 2:  # the true values satisfy every identity, so this is a bug, never "safe"
            raise AssertionError(f"share/ identities are inconsistent around {key!r}")
        out.append(sign * res.fun if res.status == 0 else (math.inf if sign < 0 else -math.inf))
    return out[0], out[1]


def protect(grid: Grid, min_cell: int) -> tuple[set, set]:
    """Primary and complementary suppression of a grid: ``(primary, secondary)`` sets of cell keys."""
    primary = {k for k, v in grid.value.items()
               if grid.loc[k] is not None and k not in grid.public and 0 < v < min_cell}
    secondary: set = set()
    sensitive = [k for k, v in grid.value.items() if 0 < v < min_cell and k not in grid.public and k not in grid.slack
                 and (k in primary or grid.loc[k] is None)]
    while True:
        hidden = primary | secondary
        pinned = None
        for k in sensitive:
            lo, hi = value_range(grid, k, primary, hidden, min_cell)
            if math.isfinite(hi - lo) and math.floor(hi + 1e-7) - math.ceil(lo - 1e-7) < 1:
                pinned = k
                break
        if pinned is None:
            # A complementary cell that the shown cells pin anyway protects nothing: show it (the set of
            # tables consistent with what is shown does not change, so all of them can go back at once).
            shown_again = set()
            for k in secondary:
                lo, hi = value_range(grid, k, primary, hidden, min_cell)
                if math.isfinite(hi - lo) and hi - lo < 0.5:
                    shown_again.add(k)
            return primary, secondary - shown_again
        choice = _complement_for(grid, pinned, hidden)
        if choice is None:  # nothing shown is tied to it any more: hide every shown cell of the grid
            choice = min((k for k in grid.value if grid.loc[k] is not None and k not in hidden
                          and k not in grid.public), key=lambda k: grid.value[k], default=None)
            if choice is None:
                raise AssertionError(f"cannot protect cell {pinned!r}")
        secondary.add(choice)


def _complement_for(grid: Grid, key, hidden: set):
    """The smallest shown cell in an identity reaching ``key`` through hidden or implied cells."""
    reach, frontier, candidates = {key}, [key], []
    while frontier and not candidates:
        nxt = []
        for eq in grid.eqs:
            if not any(k in reach for k in frontier if k in eq):
                continue
            for k in eq:
                shown = grid.loc[k] is not None and k not in hidden
                if shown and k not in grid.public:
                    candidates.append(k)
                elif not shown and k not in reach and k not in grid.public:
                    reach.add(k)
                    nxt.append(k)
        frontier = nxt
    return min(candidates, key=lambda k: (grid.value[k] == 0, grid.value[k], str(k)), default=None)


# ---- grids per table kind -------------------------------------------------------------------------------------

def _int(v) -> int | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return int(v)


def attrition_grid(grid: Grid, frame: pd.DataFrame, arms: list[str], table: str = "attrition") -> None:
    """``remaining_{i-1} = excluded_i + remaining_i`` overall and per arm; arms add up; the cohort row."""
    rem_prev: dict = {}
    excluded_keys = []
    for i, row in frame.iterrows():
        last = row["step"] == "cohort"
        rem = grid.cell((table, i, "remaining"), row["remaining"], (table, i, "remaining"))
        arm_keys = {a: grid.cell((table, i, f"remaining_{a}"), row[f"remaining_{a}"], (table, i, f"remaining_{a}"))
                    for a in arms if f"remaining_{a}" in frame and _int(row[f"remaining_{a}"]) is not None}
        if last:
            exc = grid.cell((table, i, "excluded"), row["excluded"], (table, i, "excluded"))
            grid.equal({exc: 1, **{k: -1 for k in excluded_keys}})
            grid.equal({rem: 1, rem_prev[None]: -1})
            for a, k in arm_keys.items():
                if a in rem_prev:
                    grid.equal({k: 1, rem_prev[a]: -1})
            continue
        if i > 0:
            exc = grid.cell((table, i, "excluded"), row["excluded"], (table, i, "excluded"))
            excluded_keys.append(exc)
            grid.equal({rem_prev[None]: 1, exc: -1, rem: -1})
            for a, k in arm_keys.items():
                if a in rem_prev:
                    x = grid.cell((table, i, f"excluded_{a}"), grid.value[rem_prev[a]] - grid.value[k])
                    grid.equal({rem_prev[a]: 1, x: -1, k: -1})
        if len(arm_keys) == len(arms):
            grid.equal({rem: 1, **{k: -1 for k in arm_keys.values()}})
        rem_prev = {None: rem, **arm_keys}


def table1_grid(grid: Grid, frame: pd.DataFrame, arms: list[str], arm_n: dict, missing_by_arm: dict,
                table: str = "table1") -> dict:
    """Per variable: counts + complement = non-missing (shown through the percentages) = n − missing.

    Returns ``{variable: [cell keys]}`` so that p-value and SMD go with any hidden cell of their variable.
    """
    groups: dict = {}
    for var, rows in frame.groupby("variable", sort=False):
        first = rows.index[0]
        keys = []
        miss = {a: int(missing_by_arm.get(var, {}).get(a, 0)) for a in arms}
        miss_keys = {a: grid.cell((table, var, "missing", a), miss[a]) for a in arms}
        if _int(rows.loc[first, "missing"]) is not None:
            total = grid.cell((table, first, "missing"), rows.loc[first, "missing"], (table, first, "missing"))
            grid.equal({total: 1, **{k: -1 for k in miss_keys.values()}})
            keys.append(total)
        parsed = {(i, a): _COUNT_PCT.match(str(rows.loc[i, a])) for i in rows.index for a in arms}
        if all(parsed.values()):
            for a in arms:
                n_key = grid.cell(("arm_n", table, a), arm_n[a], public=True)
                den = grid.cell((table, first, ("pct", a)), arm_n[a] - miss[a], (table, first, ("pct", a)))
                grid.equal({den: 1, miss_keys[a]: 1, n_key: -1})
                counts = [grid.cell((table, i, a), parsed[i, a].group(1), (table, i, a)) for i in rows.index]
                terms = {k: 1 for k in counts}
                if len(counts) == 1:  # binary: the other value is implied
                    other = grid.cell((table, var, "other", a), grid.value[den] - grid.value[counts[0]])
                    terms[other] = 1
                grid.equal({**terms, den: -1})
                keys += [den, *counts]
        groups[var] = keys
    return groups


def adverse_event_grid(grid: Grid, by_arm: pd.DataFrame, by_cat: pd.DataFrame, arms: list[str]) -> None:
    """Patients with/without events per arm and category, events ≥ patients, categories add up to events."""
    ta, tc = "adverse_events_by_arm", "adverse_events_by_category"
    for i, row in by_arm.iterrows():
        a = row["arm"]
        n = grid.cell(("arm_n", ta, a), row["n"], public=True)
        pe = grid.cell((ta, i, "patients_with_event"), row["patients_with_event"], (ta, i, "patients_with_event"))
        ev = grid.cell((ta, i, "events"), row["events"], (ta, i, "events"))
        eld = grid.cell((ta, i, "events_led_to_discontinuation"), row["events_led_to_discontinuation"],
                        (ta, i, "events_led_to_discontinuation"))
        pwd = grid.cell((ta, i, "patients_with_discontinuation"), row["patients_with_discontinuation"],
                        (ta, i, "patients_with_discontinuation"))
        none = grid.cell((ta, a, "no_event"), grid.value[n] - grid.value[pe])
        grid.equal({pe: 1, none: 1, n: -1})
        for big, small in ((ev, pe), (pe, pwd), (eld, pwd), (ev, eld)):
            grid.at_least(big, small, (big, small))
        cat_events, cat_patients = {}, {}
        for j, crow in by_cat.iterrows():
            if f"{a}_patients" not in by_cat:
                continue
            pk = grid.cell((tc, j, f"{a}_patients"), crow[f"{a}_patients"], (tc, j, f"{a}_patients"))
            ek = grid.cell((tc, j, f"{a}_events"), crow[f"{a}_events"], (tc, j, f"{a}_events"))
            nk = grid.cell((tc, j, a, "no_event"), grid.value[n] - grid.value[pk])
            grid.equal({pk: 1, nk: 1, n: -1})
            grid.at_least(ek, pk, (ek, pk))
            grid.at_least(pe, pk, (pe, pk))
            cat_events[j], cat_patients[j] = ek, pk
        if cat_events:
            grid.equal({ev: 1, **{k: -1 for k in cat_events.values()}})
            total = grid.cell((tc, a, "sum_patients"), sum(grid.value[k] for k in cat_patients.values()), slack=True)
            grid.equal({total: 1, **{k: -1 for k in cat_patients.values()}})
            grid.at_least(total, pe, (total, pe))


def km_grid(grid: Grid, frame: pd.DataFrame, table: str = "discontinuation_at_months") -> dict:
    """Per curve: at risk falls by at least the events of the interval. Returns ``{curve: [row indexes]}``."""
    curves: dict = {}
    for curve, rows in frame.groupby(["analysis", "arm"], sort=False):
        prev = None
        for i, row in rows.sort_values("time").iterrows():
            r = grid.cell((table, i, "n_risk"), row["n_risk"], (table, i, "n_risk"))
            d = grid.cell((table, i, "n_event"), row["n_event"], (table, i, "n_event"))
            if prev is not None:
                c = grid.cell((table, i, "left"), grid.value[prev] - grid.value[r] - grid.value[d], slack=True)
                if grid.value[c] >= 0:
                    grid.equal({prev: 1, r: -1, d: -1, c: -1})
            prev = r
            curves.setdefault(curve, []).append(i)
    return curves


# ---- putting it together --------------------------------------------------------------------------------------

def share_tables(tables: Mapping[str, pd.DataFrame], results: Mapping, min_cell: int) -> dict[str, pd.DataFrame]:
    """The ``share/`` copies of ``tables`` (name → DataFrame) with primary and complementary suppression.

    Parameters
    ----------
    tables : mapping
        The tables written to ``tables/`` (``attrition``, ``table1``, ``adverse_events_by_arm``, ...).
    results : mapping
        The results.json object (arm sizes and per-arm missing counts of Table 1).
    min_cell : int
        Counts from 1 to ``min_cell - 1`` are hidden.
    """
    schema = load_schema()
    arms = list(results["arms"])
    arm_n = {a: int(v["n"]) for a, v in results["arms"].items()}
    missing_by_arm = {r["variable"]: r.get("missing_by_arm", {}) for r in results.get("table1", [])
                      if r.get("missing") is not None}
    grid = Grid()
    t1_groups, curves = {}, {}
    if "attrition" in tables:
        attrition_grid(grid, tables["attrition"], arms)
    if "table1" in tables:
        t1_groups = table1_grid(grid, tables["table1"], arms, arm_n, missing_by_arm)
    if "adverse_events_by_arm" in tables:
        adverse_event_grid(grid, tables["adverse_events_by_arm"],
                           tables.get("adverse_events_by_category", pd.DataFrame()), arms)
    if "discontinuation_at_months" in tables:
        curves = km_grid(grid, tables["discontinuation_at_months"])
    primary, secondary = protect(grid, min_cell)
    mark = {grid.loc[k]: f"<{min_cell}" for k in primary} | {grid.loc[k]: SECONDARY for k in secondary}

    out = {}
    for name, frame in tables.items():
        shown = frame.copy().astype(object)
        cols = schema.table_columns(name, list(frame.columns))
        for col in frame.columns:  # primary rule on every count column, modelled in a grid or not
            if col in cols and cols[col].is_count:
                shown[col] = pd.Series([_count_cell(v, min_cell) for v in frame[col]], index=frame.index,
                                       dtype=object)
        for (table, row, col), text in mark.items():
            if table != name:
                continue
            if isinstance(col, tuple):  # a denominator shown through percentages: drop the percentages
                a = col[1]
                var = frame.loc[row, "variable"]
                for i in frame.index[frame["variable"] == var]:
                    m = _COUNT_PCT.match(str(shown.loc[i, a]))
                    if m:
                        shown.loc[i, a] = m.group(1)
                continue
            shown.loc[row, col] = text
        for col, spec in cols.items():  # derived values go with the counts they come from
            sources = [c for c in frame.columns if c in cols and cols[c].is_count
                       and any(_source_match(r, c) for r in spec.reveals)]
            if not spec.reveals or spec.is_count or name in ("table1", "discontinuation_at_months"):
                continue
            for i in frame.index:
                if any(_hidden(shown.loc[i, s]) for s in _row_sources(col, sources)):
                    shown.loc[i, col] = SECONDARY if not _hidden(shown.loc[i, col]) else shown.loc[i, col]
        if name == "table1":
            for var, keys in t1_groups.items():
                if any(k in primary or k in secondary for k in keys):
                    for i in frame.index[frame["variable"] == var]:
                        for col in ("p", "smd"):
                            if not pd.isna(frame.loc[i, col]):
                                shown.loc[i, col] = SECONDARY
        if name == "discontinuation_at_months":
            for rows in curves.values():
                gone = False
                for i in rows:
                    gone = gone or _hidden(shown.loc[i, "n_risk"]) or _hidden(shown.loc[i, "n_event"])
                    if gone:
                        shown.loc[i, list(_KM_DERIVED)] = SECONDARY
        if name == "attrition":
            shown.loc[frame["step"] == "cohort", "reason"] = "registry = excluded + cohort"
        out[name] = _tidy(shown, frame)
    return out


def _tidy(shown: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns with nothing hidden keep their type; floats among hidden cells get the tables' digits."""
    for col in shown.columns:
        if not any(_hidden(v) for v in shown[col]) and not (frame[col].dtype == object):
            shown[col] = frame[col] if not pd.api.types.is_float_dtype(frame[col]) else shown[col].astype(float)
        else:
            shown[col] = [float(f"{v:.{FLOAT_DIGITS}g}") if isinstance(v, float) and math.isfinite(v) else v
                          for v in shown[col]]
    return shown


def _count_cell(v, min_cell: int):
    """A count as shown: ``"<min_cell"`` when small, whole numbers as ``int`` (not ``3.0``)."""
    if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and not pd.isna(v):
        if 0 < v < min_cell:
            return f"<{min_cell}"
        return int(v) if float(v).is_integer() else v
    return v


def _source_match(pattern: str, column: str) -> bool:
    regex = re.escape(pattern).replace(r"\{arm\}", "(.+)")
    return re.fullmatch(regex, column) is not None


def _row_sources(col: str, sources: list[str]) -> list[str]:
    """Per-arm derived columns (``AZA_percent``) come from the same arm's counts; ``fisher_p`` from all arms'."""
    prefix = col.split("_")[0] + "_"
    same = [s for s in sources if s.startswith(prefix)]
    return same or sources


def _hidden(v) -> bool:
    return isinstance(v, str) and (v.startswith("<") or v == SECONDARY)


def write_share(tables: Mapping[str, pd.DataFrame], results: Mapping, folder: Path, min_cell: int) -> None:
    """Write ``share/``: the suppressed tables and a README saying what was withheld and why."""
    write_tables(share_tables(tables, results, min_cell), folder)
    (folder / "README.txt").write_text(
        f"Tables meant to leave the centre. Counts between 1 and {min_cell - 1} are shown as '<{min_cell}'. "
        f"'{SECONDARY}' marks a value withheld so that no '<{min_cell}' cell can be worked out from the others "
        "(margins, remaining counts, percentages, survival, p-values, SMDs). No patient identifiers or dates.\n",
        encoding="utf-8")
