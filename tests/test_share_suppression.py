"""share/ suppression that holds (issue 17 item 3) and results.json against the committed schema (issue 16).

The ATTACKER below is written independently of ``report/share.py``: it reads only what a share/ table shows,
and for every hidden cell ("<m": 1..m-1; "*": any value) it enumerates the candidate true values and keeps
those for which the rest of the table still has an integer solution (scipy's MILP) of the identities a reader
knows — remaining-count chains, arm sums, cohort totals, events ≥ patients, categories adding up to events,
at-risk counts falling by at least the events — and that agree with the values still shown: percentages,
Kaplan–Meier steps (S(t)/S(t-) between (n-d)/n and n_t/(n_t+d)), Table 1 p-values and SMDs recomputed with
the library's own functions. A cell with exactly one candidate is recovered. Against primary-only suppression
(the old ``suppress_small_counts``) the attacker recovers cells of each kind named in the issue; against
``share_tables`` it recovers none.
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from ildstudy.analysis.contingency import table1_test
from ildstudy.analysis.schema import load_schema
from ildstudy.analysis.table1 import smd_binary
from ildstudy.report.exports import suppress_small_counts
from ildstudy.report.share import share_tables

BIG = 10_000
PCT = re.compile(r"^\s*(\d+)\s*(?:\(\s*([\d.]+)%\s*\))?\s*$")


# ---- the attacker -----------------------------------------------------------------------------------------

class System:
    """Integer unknowns (hidden cells) with bounds, linear equalities and inequalities over cells."""

    def __init__(self):
        self.bounds, self.known, self.eq, self.ge = {}, {}, [], []

    def cell(self, key, shown):
        """Register a shown table cell: a number is known; "<m" is 1..m-1; "*" is 0..BIG."""
        if isinstance(shown, str) and shown.startswith("<"):
            self.bounds[key] = (1, int(shown[1:]) - 1)
        elif isinstance(shown, str) and shown == "*":
            self.bounds[key] = (0, BIG)
        else:
            self.known[key] = int(float(shown))
        return key

    def free(self, key):
        self.bounds[key] = (0, BIG)
        return key

    def feasible(self, fixed: dict) -> bool:
        names = list(self.bounds)
        if not names:
            return True
        idx = {k: i for i, k in enumerate(names)}
        lo = np.array([fixed.get(k, self.bounds[k][0]) for k in names], float)
        hi = np.array([fixed.get(k, self.bounds[k][1]) for k in names], float)
        try:
            cons = self._constraints(idx)
        except ValueError:
            return False
        res = milp(np.zeros(len(names)), constraints=cons, integrality=np.ones(len(names)), bounds=Bounds(lo, hi))
        return res.status == 0

    def _constraints(self, idx) -> list:
        """The identities over the unknowns ``idx``; ValueError when the known cells alone break one."""
        rows, rlo, rhi = [], [], []
        for terms, is_eq in [(t, True) for t in self.eq] + [(t, False) for t in self.ge]:
            row, b = np.zeros(len(idx)), 0.0
            for k, c in terms.items():
                if k in idx:
                    row[idx[k]] += c
                else:
                    b -= c * self.known[k]
            if not row.any():
                if (is_eq and b != 0) or (not is_eq and b > 0):
                    raise ValueError("inconsistent")
                continue
            rows.append(row)
            rlo.append(b)
            rhi.append(b if is_eq else np.inf)
        return [LinearConstraint(np.array(rows), rlo, rhi)] if rows else []

    def extreme(self, key, sign) -> float | None:
        """The smallest (sign 1) or largest (sign -1) integer value of ``key``; None when unbounded."""
        names = list(self.bounds)
        idx = {k: i for i, k in enumerate(names)}
        c = np.zeros(len(names))
        c[idx[key]] = sign
        res = milp(c, constraints=self._constraints(idx), integrality=np.ones(len(names)),
                   bounds=Bounds([self.bounds[k][0] for k in names], [self.bounds[k][1] for k in names]))
        return sign * res.fun if res.status == 0 else None

    def candidates(self, key, check=None, limit=2000) -> list[int]:
        """Values of ``key`` consistent with everything shown. For a "*" cell without a value check, the
        smallest and largest integer solutions (one value when they agree)."""
        lo, hi = self.bounds[key]
        if check is None and hi == BIG:
            a, b = self.extreme(key, 1), self.extreme(key, -1)
            return [] if a is None else sorted({round(a), round(b)}) if b is not None else [round(a), BIG]
        check = check or (lambda v: True)
        return [v for v in range(lo, min(hi, limit) + 1) if check(v) and self.feasible({key: v})]


def _hidden(v) -> bool:
    return isinstance(v, str) and (v.startswith("<") or v == "*")


def attack_attrition(t: pd.DataFrame, arms) -> dict:
    s = System()
    prev, exc_keys = None, []
    for i, row in t.iterrows():
        rem = s.cell(("rem", i), row["remaining"])
        arm = {a: s.cell((a, i), row[f"remaining_{a}"]) for a in arms if not pd.isna(row[f"remaining_{a}"])}
        exc = s.cell(("exc", i), row["excluded"])
        if row["step"] == "cohort":
            s.eq.append({exc: 1, **{k: -1 for k in exc_keys}})
            s.eq.append({rem: 1, prev[None]: -1})
            s.eq += [{k: 1, prev[a]: -1} for a, k in arm.items()]
            continue
        if prev is not None:
            exc_keys.append(exc)
            s.eq.append({prev[None]: 1, exc: -1, rem: -1})
            for a, k in arm.items():
                if a in prev:
                    s.ge.append({prev[a]: 1, k: -1})
        if len(arm) == len(arms):
            s.eq.append({rem: 1, **{k: -1 for k in arm.values()}})
        prev = {None: rem, **arm}
    return {k: s.candidates(k) for k in s.bounds}


def attack_adverse_events(by_arm: pd.DataFrame, by_cat: pd.DataFrame) -> dict:
    s, checks = System(), {}
    for i, row in by_arm.iterrows():
        a, n = row["arm"], int(row["n"])
        pe = s.cell((a, "pe"), row["patients_with_event"])
        ev = s.cell((a, "ev"), row["events"])
        eld = s.cell((a, "eld"), row["events_led_to_discontinuation"])
        pwd = s.cell((a, "pwd"), row["patients_with_discontinuation"])
        s.ge += [{ev: 1, pe: -1}, {pe: 1, pwd: -1}, {eld: 1, pwd: -1}, {ev: 1, eld: -1}]
        if not _hidden(row["percent"]):
            pct = float(row["percent"])
            checks[pe] = lambda v, pct=pct, n=n: abs(100 * v / n - pct) < 0.05
        cats_ev, cats_pt = [], []
        for j, crow in by_cat.iterrows():
            pk = s.cell((a, j, "pk"), crow[f"{a}_patients"])
            ek = s.cell((a, j, "ek"), crow[f"{a}_events"])
            s.ge += [{ek: 1, pk: -1}, {pe: 1, pk: -1}]
            if not _hidden(crow[f"{a}_percent"]):
                pct = float(crow[f"{a}_percent"])
                checks[pk] = lambda v, pct=pct, n=n: abs(100 * v / n - pct) < 0.05
            cats_ev.append(ek)
            cats_pt.append(pk)
        if cats_ev:
            s.eq.append({ev: 1, **{k: -1 for k in cats_ev}})
            s.ge.append({**{k: 1 for k in cats_pt}, pe: -1})
    return {k: s.candidates(k, checks.get(k)) for k in s.bounds}


def attack_km(t: pd.DataFrame) -> dict:
    s, checks = System(), {}
    for _, rows in t.groupby(["analysis", "arm"], sort=False):
        rows = rows.sort_values("time")
        prev = None
        for i, row in rows.iterrows():
            r = s.cell(("r", i), row["n_risk"])
            d = s.cell(("d", i), row["n_event"])
            if prev is not None:
                pi, pr = prev
                s.ge.append({pr: 1, r: -1, d: -1})
                if d in s.bounds and not _hidden(row["survival"]) and not _hidden(t.loc[pi, "survival"]) \
                        and r in s.known and pr in s.known and float(t.loc[pi, "survival"]) > 0:
                    ratio = float(row["survival"]) / float(t.loc[pi, "survival"])
                    n_hi, n_lo = s.known[pr], s.known[r]

                    def km_step(v, ratio=ratio, n_hi=n_hi, n_lo=n_lo):
                        upper = (n_hi - v) / n_hi          # all v events first, nobody censored before
                        lower = n_lo / (n_lo + v) if n_lo + v else 0.0   # events last, just before t
                        return lower - 1e-9 <= ratio <= upper + 1e-9
                    checks[d] = km_step
            prev = (i, r)
    return {k: s.candidates(k, checks.get(k)) for k in s.bounds}


def attack_table1(t: pd.DataFrame, arms, arm_n: dict) -> dict:
    """Per binary/categorical variable: counts add up to the non-missing count of each arm (read from a shown
    percentage, else n − missing with the missing counts adding up to the shown total); p-value and SMD of a
    binary variable recomputed from each candidate 2×2 table."""
    out = {}
    for var, rows in t.groupby("variable", sort=False):
        first = rows.index[0]
        s = System()
        miss_total = rows.loc[first, "missing"]
        miss = {a: s.free(("miss", a)) for a in arms}
        if not pd.isna(miss_total) and miss_total is not None:
            tot = s.cell(("missing",), miss_total)
            s.eq.append({tot: 1, **{k: -1 for k in miss.values()}})
        parsed = {(i, a): PCT.match(str(rows.loc[i, a])) for i in rows.index for a in arms}
        binary = len(rows) == 1
        if all(m or _hidden(rows.loc[i, a]) for (i, a), m in parsed.items()):
            for a in arms:
                cells = []
                den = s.free(("den", a))
                s.known[("n", a)] = arm_n[a]
                s.eq.append({den: 1, miss[a]: 1, ("n", a): -1})
                for i in rows.index:
                    shown = rows.loc[i, a]
                    m = parsed[i, a]
                    cells.append(s.cell((i, a), shown if _hidden(shown) else m.group(1)))
                    if m and m.group(2) and int(m.group(1)) > 0:   # a percentage pins the denominator
                        pct = float(m.group(2))
                        dens = [n for n in range(1, arm_n[a] + 1) if abs(100 * int(m.group(1)) / n - pct) < 0.05]
                        if len(dens) == 1:
                            s.known[den] = dens[0]
                            s.bounds.pop(den, None)
                if binary:
                    cells.append(s.free(("other", a)))
                s.eq.append({**{k: 1 for k in cells}, den: -1})
        check = lambda v: True  # noqa: E731
        p, smd = rows.loc[first, "p"], rows.loc[first, "smd"]
        hidden_counts = [(i, a) for (i, a) in parsed if _hidden(rows.loc[i, a])]
        if binary and hidden_counts and not _hidden(p) and not pd.isna(p):
            ranges = {b: (range(s.bounds[(first, b)][0], min(s.bounds[(first, b)][1], arm_n[b]) + 1)
                          if (first, b) in s.bounds else [s.known[(first, b)]]) for b in arms}
            consistent = []
            for x0 in ranges[arms[0]]:
                for x1 in ranges[arms[1]]:
                    x, n = (x0, x1), [arm_n[b] for b in arms]  # the attacker's guess: nobody missing
                    table = np.array([list(x), [n[0] - x0, n[1] - x1]])
                    ok = math.isclose(table1_test(table).p, float(p), rel_tol=1e-6)
                    if ok and not _hidden(smd) and not pd.isna(smd):
                        ok = math.isclose(smd_binary(x0 / n[0], x1 / n[1]), float(smd), rel_tol=1e-6, abs_tol=1e-12)
                    if ok:
                        consistent.append(x)
            for j, (i, a) in enumerate((first, b) for b in arms):
                if (i, a) in hidden_counts:
                    out[(var, i, a)] = sorted({x[j] for x in consistent})
            continue
        for k in s.bounds:
            if isinstance(k[0], (int, np.integer)) or k == ("missing",):
                out[(var, *k)] = s.candidates(k)
    return out


def recovered(shared: dict, arms, arm_n) -> dict:
    """Every hidden cell with exactly one candidate, by table."""
    found = {}
    attacks = {
        "attrition": lambda: attack_attrition(shared["attrition"], arms),
        "adverse_events": lambda: attack_adverse_events(shared["adverse_events_by_arm"],
                                                        shared["adverse_events_by_category"]),
        "discontinuation_at_months": lambda: attack_km(shared["discontinuation_at_months"]),
        "table1": lambda: attack_table1(shared["table1"], arms, arm_n),
    }
    for name, attack in attacks.items():
        if name in shared or (name == "adverse_events" and "adverse_events_by_arm" in shared):
            for cell, cands in attack().items():
                if len(cands) == 1:
                    found.setdefault(name, []).append((cell, cands[0]))
    return found


def small_counts_shown(shared: dict, min_cell: int) -> list:
    """Count cells (schema ``is_count``) showing a value from 1 to min_cell - 1."""
    schema, bad = load_schema(), []
    for name, frame in shared.items():
        for col in schema.count_columns(name, list(frame.columns)):
            for v in frame[col]:
                m = PCT.match(str(v)) if not isinstance(v, (int, float)) else None
                n = v if isinstance(v, (int, float)) and not pd.isna(v) else (int(m.group(1)) if m else None)
                if n is not None and 0 < n < min_cell:
                    bad.append((name, col, v))
    return bad


# ---- hand-built tables with the four leaks of the issue ---------------------------------------------------

ARMS = ["AZA", "MMF"]


def hand_built():
    """Small tables: an attrition chain with one small step, a KM table whose first step is 3 events of 66,
    a Table 1 binary row 2/5 vs 3/5 (arms of 5, as in the issue) and a continuous row with 3 missing."""
    attrition = pd.DataFrame({
        "step": ["registry", "population", "arm_drug", "other_agents", "cohort"],
        "reason": ["all", "not ILD", "no arm drug", "other agent", "registry 40 = excluded 30 + cohort 10"],
        "excluded": [0, 12, 15, 3, 30], "remaining": [40, 28, 13, 10, 10],
        "remaining_AZA": [pd.NA, pd.NA, 7, 5, 5], "remaining_MMF": [pd.NA, pd.NA, 6, 5, 5],
    }).astype({"remaining_AZA": "Int64", "remaining_MMF": "Int64"})
    km = pd.DataFrame({
        "analysis": ["any_reason"] * 3, "arm": ["AZA"] * 3, "time": [0.0, 12.0, 24.0],
        "n_risk": [66, 63, 50], "n_event": [0, 3, 12],
        "survival": [1.0, 63 / 66, 63 / 66 * (1 - 12 / 63)], "std_err": [0.0, 0.026, 0.05],
        "ci_low": [1.0, 0.9, 0.7], "ci_high": [1.0, 1.0, 0.9],
    })
    test = table1_test(np.array([[2, 3], [3, 2]]))
    t1 = pd.DataFrame({
        "variable": ["age", "sex"], "label": ["Age", "Female"], "level": [None, "F"],
        "AZA": ["50.0 (12.0)", "2 (40.0%)"], "MMF": ["51.0 (11.0)", "3 (60.0%)"],
        "p": [0.9, test.p], "test": ["Welch t-test", test.test], "smd": [0.1, smd_binary(0.4, 0.6)],
        "missing": [3, 0],
    })
    by_arm = pd.DataFrame({"arm": ARMS, "patients_with_event": [22, 6], "n": [66, 44],
                           "percent": [100 * 22 / 66, 100 * 6 / 44], "events": [25, 6],
                           "events_led_to_discontinuation": [10, 3], "patients_with_discontinuation": [10, 3]})
    by_cat = pd.DataFrame({"category": ["infection", "rash"], "AZA_patients": [20, 5], "AZA_n": [66, 66],
                           "AZA_percent": [100 * 20 / 66, 100 * 5 / 66], "AZA_events": [20, 5],
                           "MMF_patients": [6, 0], "MMF_n": [44, 44], "MMF_percent": [100 * 6 / 44, 0.0],
                           "MMF_events": [6, 0], "fisher_p": [0.07, 0.15]})
    tables = {"attrition": attrition, "table1": t1, "adverse_events_by_arm": by_arm,
              "adverse_events_by_category": by_cat, "discontinuation_at_months": km}
    results = {"arms": {"AZA": {"n": 5}, "MMF": {"n": 5}},
               "table1": [{"variable": "age", "missing": 3, "missing_by_arm": {"AZA": 1, "MMF": 2}},
                          {"variable": "sex", "missing": 0, "missing_by_arm": {"AZA": 0, "MMF": 0}}]}
    return tables, results


def primary_only(tables, min_cell):
    """The old share/ (primary suppression only), as written before this change."""
    counts = {"attrition": ["excluded", "remaining", "remaining_AZA", "remaining_MMF"], "table1": ARMS,
              "adverse_events_by_arm": ["patients_with_event", "n", "events", "events_led_to_discontinuation",
                                        "patients_with_discontinuation"],
              "adverse_events_by_category": [f"{a}_{c}" for a in ARMS for c in ("patients", "n", "events")],
              "discontinuation_at_months": ["n_risk", "n_event"]}
    linked = {"adverse_events_by_arm": {"percent": "patients_with_event"},
              "adverse_events_by_category": {f"{a}_percent": f"{a}_patients" for a in ARMS}}
    return {n: suppress_small_counts(f, counts.get(n, []), min_cell, linked.get(n)) for n, f in tables.items()}


def test_attacker_recovers_the_four_leaks_from_primary_only_output():
    tables, results = hand_built()
    old = primary_only(tables, 5)
    found = recovered(old, ARMS, {"AZA": 5, "MMF": 5})
    # attrition: 13 - 10 = 3 excluded at other_agents
    assert (("exc", 3), 3) in found["attrition"]
    # KM: S(12) = 63/66 with 66 then 63 at risk pins 3 events
    assert (("d", 1), 3) in found["discontinuation_at_months"]
    # Table 1: the p-value and SMD pin 2 of 5 (and 3 of 5)
    assert (("sex", 1, "AZA"), 2) in found["table1"] or (("sex", 1, "MMF"), 3) in found["table1"]
    # the missing column was never suppressed
    assert ("table1", "missing", 3) in small_counts_shown(old, 5)


def test_share_tables_resists_the_attacker_on_hand_built_tables():
    tables, results = hand_built()
    for min_cell in (5, 10):
        shared = share_tables(copy.deepcopy(tables), results, min_cell)
        assert recovered(shared, ARMS, {"AZA": 5, "MMF": 5}) == {}
        assert small_counts_shown(shared, min_cell) == []
        assert "30" not in shared["attrition"]["reason"].iloc[-1]


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    from ildstudy.analysis.study import run_study
    from ildstudy.synth import write_registry

    folder = tmp_path_factory.mktemp("share") / "reg"
    write_registry(folder, seed=2019, fmt="csv")  # the demo's registry (ildstudy demo --seed 2019)
    return run_study("huapaya2019", folder)


@pytest.mark.slow
@pytest.mark.parametrize("min_cell", [5, 10, 25])
def test_no_suppressed_cell_of_the_demo_is_recoverable(demo_result, min_cell):
    r = demo_result
    arms = list(r.results["arms"])
    arm_n = {a: r.results["arms"][a]["n"] for a in arms}
    shared = share_tables({"attrition": r.attrition, **r.tables}, r.results, min_cell)
    assert recovered(shared, arms, arm_n) == {}
    assert small_counts_shown(shared, min_cell) == []
    hidden = sum(_hidden(v) for f in shared.values() for v in f.to_numpy().ravel())
    assert hidden > 0  # min_cell >= 5 leaves small cells in the demo: the attack had something to try


@pytest.mark.slow
def test_primary_only_output_of_the_demo_is_recoverable(demo_result):
    r = demo_result
    arms = list(r.results["arms"])
    old = primary_only({"attrition": r.attrition, **r.tables}, 10)
    found = recovered(old, arms, {a: r.results["arms"][a]["n"] for a in arms})
    assert found.get("attrition") and found.get("discontinuation_at_months")


def test_demo_results_json_validates_against_the_schema(demo_result):
    import json

    from ildstudy.report.exports import canonical_json

    results = json.loads(canonical_json(demo_result.results))
    schema = load_schema()
    assert schema.validate_results(results) == []
    broken = copy.deepcopy(results)
    broken["arms"]["AZA"]["n"] = "66"
    del broken["table1"][0]["p"]
    broken["surprise"] = 1
    problems = schema.validate_results(broken)
    assert any("arms.*.n" in p and "str" in p for p in problems)
    assert any("table1[].p: required" in p for p in problems)
    assert any("surprise" in p for p in problems)


def test_every_written_table_has_schema_rows(demo_result):
    schema = load_schema()
    for name, frame in {"attrition": demo_result.attrition, **demo_result.tables}.items():
        documented = schema.table_columns(name, list(frame.columns))
        assert set(documented) == set(frame.columns), name
