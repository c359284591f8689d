"""Adverse events by arm: patients with at least one event, the protocol's test, risk difference and ratio.

The comparison is arm versus reference arm (e.g. AZA vs MMF) on the 2×2 table
``[[events_arm, no_events_arm], [events_ref, no_events_ref]]``:

* the protocol's test — Yates-corrected χ² (``chisq.test(x)``, R's default and what Huapaya et al. report),
  uncorrected χ² (``chisq.test(x, correct = FALSE)``) or Fisher's exact test (``fisher.test(x)``); all three
  are always computed and reported;
* risk difference ``p_arm − p_ref`` (proportions, not percent) with the **Wald** interval
  ``(p1 − p2) ± z sqrt(p1(1 − p1)/n1 + p2(1 − p2)/n2)``, no continuity correction — identical to
  ``prop.test(c(a, c), c(n1, n2), correct = FALSE)$conf.int``;
* risk ratio ``p_arm / p_ref`` with the **Katz log** interval ``exp(log RR ± z sqrt(1/a − 1/n1 + 1/c − 1/n2))``;
  with no event in either arm the ratio (or its interval) is undefined and reported as ``None``
  (no 0.5 correction is added);
* the conditional maximum-likelihood odds ratio with its exact interval (``fisher.test``'s estimate).

More than two arms (the reference arm last): the protocol's test is the overall k×2 test — χ² (R's
``chisq.test(x)`` applies no continuity correction beyond 2×2, so "yates" is Pearson's χ² there, with k − 1 df) or
Fisher's exact test of the k×2 table — and each other arm is compared with the reference on its own 2×2 table
(risk difference, risk ratio, odds ratio, Fisher's p) in :attr:`AdverseEventResult.comparisons`; the single
``risk_difference``, ``risk_ratio`` and ``odds_ratio`` are then ``None``.

By category: patients with at least one event of the category per arm, with Fisher's exact p; events that led
to discontinuation are counted per arm (events and patients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats

from ildstudy._json import finite_or_none, frame_records
from ildstudy.analysis.contingency import (
    OddsRatio,
    TestResult,
    chisq_test,
    conditional_odds_ratio,
    fisher_test,
)
from ildstudy.data.schema import AE_CATEGORIES

AETest = Literal["yates", "chisq", "fisher"]

BY_ARM_COLUMNS = ("arm", "patients_with_event", "n", "percent", "events", "events_led_to_discontinuation",
                  "patients_with_discontinuation")
BY_CATEGORY_COLUMNS = ("category", "arm", "patients_with_event", "n", "percent", "events", "fisher_p")
MISSING_CATEGORY = "(missing)"


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its confidence interval and the method that produced the interval."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    conf_level: float = 0.95

    def to_dict(self) -> dict:
        return {"estimate": finite_or_none(self.estimate), "ci_low": finite_or_none(self.ci_low),
                "ci_high": finite_or_none(self.ci_high), "method": self.method, "conf_level": self.conf_level}


@dataclass(frozen=True, slots=True)
class ArmComparison:
    """One arm versus the reference on their 2×2 table.

    Attributes
    ----------
    arm, reference_arm : str
    risk_difference : Interval
        Proportion scale, Wald CI.
    risk_ratio : Interval
        Katz log CI.
    odds_ratio : OddsRatio
        Conditional MLE with exact CI.
    fisher : TestResult
        Fisher's exact test of the 2×2 table.
    """

    arm: str
    reference_arm: str
    risk_difference: Interval
    risk_ratio: Interval
    odds_ratio: OddsRatio
    fisher: TestResult

    def to_dict(self) -> dict:
        """``{arm, reference_arm, risk_difference, risk_ratio, odds_ratio, fisher_p}``."""
        return {"arm": self.arm, "reference_arm": self.reference_arm,
                "risk_difference": self.risk_difference.to_dict(), "risk_ratio": self.risk_ratio.to_dict(),
                "odds_ratio": self.odds_ratio.to_dict(), "fisher_p": finite_or_none(self.fisher.p)}


@dataclass(frozen=True, slots=True)
class AdverseEventResult:
    """Adverse events, arm versus reference.

    Attributes
    ----------
    arm, reference_arm : str
        The first compared arm and the reference (differences and ratios are arm − / ÷ reference).
    test : str
        The protocol's choice ("yates", "chisq" or "fisher").
    primary : TestResult
        The protocol's test (name, statistic, df, p).
    yates, chisq, fisher : TestResult
        All three tests, always.
    risk_difference : Interval or None
        Proportion scale (0.197 = 19.7 percentage points), Wald CI; ``None`` with more than two arms.
    risk_ratio : Interval or None
        Katz log CI; ``None`` with more than two arms.
    odds_ratio : OddsRatio or None
        Conditional MLE with exact CI (as ``fisher.test``); ``None`` with more than two arms.
    by_arm : pandas.DataFrame, shape (k, 7)
        Columns ``arm``, ``patients_with_event``, ``n``, ``percent`` (0–100), ``events`` (event rows),
        ``events_led_to_discontinuation``, ``patients_with_discontinuation``; rows the compared arms in
        protocol order, then the reference.
    by_category : pandas.DataFrame, shape (k × n_categories, 7)
        Long: ``category``, ``arm``, ``patients_with_event`` (≥ 1 event of that category), ``n``, ``percent``,
        ``events``, ``fisher_p`` (same on both rows of a category). Categories in the canonical schema order
        (cytopenia, hepatotoxicity, ...), then others alphabetically; a category absent from an arm has 0.
        ``fisher_p`` is of the k×2 table.
    arms : tuple of str
        All arms, compared arms first, reference last.
    comparisons : tuple of ArmComparison
        One per compared arm (with two arms, the same numbers as ``risk_difference`` etc.).
    """

    arm: str
    reference_arm: str
    test: str
    primary: TestResult
    yates: TestResult
    chisq: TestResult
    fisher: TestResult
    risk_difference: Interval | None
    risk_ratio: Interval | None
    odds_ratio: OddsRatio | None
    by_arm: pd.DataFrame = field(repr=False)
    by_category: pd.DataFrame = field(repr=False)
    arms: tuple[str, ...] = ()
    comparisons: tuple[ArmComparison, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict with the keys of results.json's ``adverse_events``.

        ``{by_arm: {ARM: {patients_with_event, n, percent, events, events_led_to_discontinuation,
        patients_with_discontinuation}}, test, statistic, p, fisher_p, tests: {yates, chisq, fisher},
        risk_difference, risk_ratio, odds_ratio, by_category: [{category, ARM: {patients_with_event, n,
        percent, events}, fisher_p}], reference_arm}``; ``test`` is the protocol's key ("yates", "chisq",
        "fisher") and ``test_name`` the primary test's printed name ("Yates-corrected chi-squared", ...).
        With more than two arms ``risk_difference``, ``risk_ratio`` and ``odds_ratio`` are null and
        ``comparisons: [{arm, reference_arm, risk_difference, risk_ratio, odds_ratio, fisher_p}]`` holds one
        entry per compared arm (the key is absent with two arms).
        """
        by_arm = {r["arm"]: {k: v for k, v in r.items() if k != "arm"} for r in frame_records(self.by_arm)}
        categories = []
        for cat, grp in self.by_category.groupby("category", sort=False):
            entry: dict = {"category": cat}
            for r in frame_records(grp):
                entry[r["arm"]] = {k: r[k] for k in ("patients_with_event", "n", "percent", "events")}
                entry["fisher_p"] = r["fisher_p"]
            categories.append(entry)
        out = {
            "by_arm": by_arm,
            "reference_arm": self.reference_arm,
            "test": self.test,
            "test_name": self.primary.test,
            "statistic": finite_or_none(self.primary.statistic),
            "p": finite_or_none(self.primary.p),
            "fisher_p": finite_or_none(self.fisher.p),
            "tests": {"yates": self.yates.to_dict(), "chisq": self.chisq.to_dict(), "fisher": self.fisher.to_dict()},
            "risk_difference": None if self.risk_difference is None else self.risk_difference.to_dict(),
            "risk_ratio": None if self.risk_ratio is None else self.risk_ratio.to_dict(),
            "odds_ratio": None if self.odds_ratio is None else self.odds_ratio.to_dict(),
            "by_category": categories,
        }
        if len(self.comparisons) > 1:
            out["comparisons"] = [c.to_dict() for c in self.comparisons]
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """Exports to ``tables/``: ``adverse_events_by_arm`` and ``adverse_events_by_category`` (wide)."""
        return {"adverse_events_by_arm": self.by_arm, "adverse_events_by_category": self.by_category_wide()}

    def by_category_wide(self) -> pd.DataFrame:
        """``by_category`` with one row per category: ``category``, then per arm ``<ARM>_patients``, ``<ARM>_n``,
        ``<ARM>_percent``, ``<ARM>_events``, then ``fisher_p``."""
        rows = []
        for cat, grp in self.by_category.groupby("category", sort=False):
            row: dict = {"category": cat}
            for r in grp.itertuples(index=False):
                row.update({f"{r.arm}_patients": r.patients_with_event, f"{r.arm}_n": r.n,
                            f"{r.arm}_percent": r.percent, f"{r.arm}_events": r.events})
            row["fisher_p"] = grp["fisher_p"].iloc[0]
            rows.append(row)
        cols = ["category"] + [f"{a}_{k}" for a in (self.arms or (self.arm, self.reference_arm))
                               for k in ("patients", "n", "percent", "events")] + ["fisher_p"]
        return pd.DataFrame(rows, columns=cols)


def risk_difference_wald(a: int, n1: int, c: int, n2: int, conf_level: float = 0.95) -> Interval:
    """``a/n1 − c/n2`` with the Wald interval (= R ``prop.test(c(a, c), c(n1, n2), correct = FALSE)``)."""
    if n1 == 0 or n2 == 0:
        return Interval(None, None, None, "Wald", conf_level)
    p1, p2 = a / n1, c / n2
    z = float(stats.norm.ppf(0.5 + conf_level / 2))
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return Interval(p1 - p2, max(p1 - p2 - half, -1.0), min(p1 - p2 + half, 1.0), "Wald", conf_level)


def risk_ratio_katz(a: int, n1: int, c: int, n2: int, conf_level: float = 0.95) -> Interval:
    """``(a/n1) / (c/n2)`` with the Katz log interval; ``None`` where undefined (a or c zero)."""
    method = "Katz log"
    if n1 == 0 or n2 == 0 or c == 0:
        return Interval(None, None, None, method, conf_level)
    rr = (a / n1) / (c / n2)
    if a == 0:
        return Interval(0.0, None, None, method, conf_level)
    z = float(stats.norm.ppf(0.5 + conf_level / 2))
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    return Interval(rr, math.exp(math.log(rr) - z * se), math.exp(math.log(rr) + z * se), method, conf_level)


def _as_bool(s: pd.Series, what: str, *, missing_as_false: bool) -> pd.Series:
    if s.isna().any():
        if not missing_as_false:
            raise ValueError(f"{what} has missing values")
        s = pd.Series([False if pd.isna(v) else v for v in s], index=s.index, dtype=object)
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
        low = s.map(lambda v: v if isinstance(v, (bool, np.bool_)) else mapping.get(str(v).strip().lower()))
        if low.isna().any():
            bad = sorted(set(s[low.isna()].map(str)))
            raise ValueError(f"{what} must be true/false, got {bad}")
        return low.astype(bool)
    if not set(pd.unique(s)) <= {True, False, 0, 1}:
        raise ValueError(f"{what} must be true/false")
    return s.astype(bool)


def _category_order(categories: list[str]) -> list[str]:
    known = [c for c in AE_CATEGORIES if c in categories]
    return known + sorted(c for c in categories if c not in AE_CATEGORIES)


def _validated(per_patient: pd.DataFrame, events: pd.DataFrame, arms: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Checked copies of the two input tables (arm as string, flags as bool, category filled)."""
    for name, frame, cols in (("per_patient", per_patient, ("patient_id", "arm", "any_event")),
                              ("events", events, ("patient_id", "arm", "category", "led_to_discontinuation"))):
        absent = [c for c in cols if c not in frame.columns]
        if absent:
            raise ValueError(f"{name} has no column(s) {absent}")
    pp = per_patient[["patient_id", "arm", "any_event"]].copy()
    pp["arm"] = pp["arm"].astype("string")
    pp["any_event"] = _as_bool(pp["any_event"], "per_patient.any_event", missing_as_false=False)
    if pp["patient_id"].duplicated().any():
        raise ValueError("per_patient.patient_id must be unique")
    unknown = sorted(set(pp["arm"].fillna("<missing>")) - set(arms))
    if unknown:
        raise ValueError(f"per_patient.arm has values that are not arms {arms}: {unknown}")
    ev = events[["patient_id", "arm", "category", "led_to_discontinuation"]].copy()
    ev["arm"] = ev["arm"].astype("string")
    ev["category"] = ev["category"].astype("string").fillna(MISSING_CATEGORY)
    ev["led_to_discontinuation"] = _as_bool(ev["led_to_discontinuation"].astype(object),
                                            "events.led_to_discontinuation", missing_as_false=True)
    known = pp.set_index("patient_id")
    stray = ev.loc[~ev["patient_id"].isin(known.index), "patient_id"]
    if len(stray):
        raise ValueError(f"events has patients not in per_patient: {_some(stray)}")
    mismatch = ev["arm"].to_numpy() != known.loc[ev["patient_id"], "arm"].to_numpy()
    if mismatch.any():
        raise ValueError(f"events.arm differs from per_patient.arm for {_some(ev['patient_id'][mismatch])}")
    no_flag = ~known.loc[ev["patient_id"], "any_event"].to_numpy()
    if no_flag.any():
        raise ValueError(f"per_patient.any_event is false for patients with events: {_some(ev['patient_id'][no_flag])}")
    return pp, ev


def _some(ids: pd.Series) -> list[str]:
    return sorted(map(str, set(ids)))[:5]


def compare_adverse_events(per_patient: pd.DataFrame, events: pd.DataFrame, arms: list[str], reference_arm: str,
                           test: AETest = "yates", conf_level: float = 0.95) -> AdverseEventResult:
    """Compare the proportion of patients with at least one adverse event between arms.

    Parameters
    ----------
    per_patient : pandas.DataFrame, shape (n_patients, 3)
        One row per cohort patient: ``patient_id`` (unique), ``arm`` (one of ``arms``), ``any_event`` (bool:
        at least one adverse event counted by the protocol).
    events : pandas.DataFrame, shape (n_events, 4)
        One row per adverse event counted by the protocol (docs/protocol.md: in [index, end of follow-up], drug
        empty or an arm drug): ``patient_id``, ``arm``, ``category`` (text; missing shown as "(missing)"),
        ``led_to_discontinuation`` (bool; missing counts as not). May be empty. Every patient here must be in
        ``per_patient`` with the same arm and ``any_event`` true.
    arms : list of str, length 2 or more
        The arms; ``reference_arm`` must be one of them.
    reference_arm : str
        The reference (e.g. "MMF"); every other arm is compared with it.
    test : {"yates", "chisq", "fisher"}
        The protocol's ``analysis.adverse_event_test``.
    conf_level : float
        Level of every interval (0.95).

    Returns
    -------
    AdverseEventResult

    Raises
    ------
    ValueError
        Bad ``test``, arms, missing columns, duplicated patients, or events inconsistent with ``per_patient``.

    Examples
    --------
    >>> import pandas as pd
    >>> pp = pd.DataFrame({"patient_id": [f"p{i}" for i in range(110)],
    ...                    "arm": ["AZA"] * 66 + ["MMF"] * 44,
    ...                    "any_event": [i < 22 for i in range(66)] + [i < 6 for i in range(44)]})
    >>> ev = pd.DataFrame({"patient_id": pp.patient_id[pp.any_event], "arm": pp.arm[pp.any_event],
    ...                    "category": "cytopenia", "led_to_discontinuation": False})
    >>> res = compare_adverse_events(pp, ev, ["AZA", "MMF"], "MMF")
    >>> round(res.primary.statistic, 2), round(res.primary.p, 3), round(res.fisher.p, 3)
    (4.41, 0.036, 0.025)
    """
    if test not in get_args(AETest):
        raise ValueError(f"test must be one of {get_args(AETest)}, got {test!r}")
    arms = [str(a) for a in arms]
    if len(arms) < 2 or len(set(arms)) != len(arms) or reference_arm not in arms:
        raise ValueError(f"arms must be two or more distinct arms including reference_arm {reference_arm!r}, "
                         f"got {arms}")
    order = [a for a in arms if a != reference_arm] + [reference_arm]
    pp, ev = _validated(per_patient, events, arms)

    rows = []
    for a in order:
        in_arm = pp["arm"] == a
        ev_arm = ev[ev["arm"] == a]
        k, n = int(pp.loc[in_arm, "any_event"].sum()), int(in_arm.sum())
        led = ev_arm["led_to_discontinuation"]
        rows.append({"arm": a, "patients_with_event": k, "n": n, "percent": 100.0 * k / n if n else math.nan,
                     "events": len(ev_arm), "events_led_to_discontinuation": int(led.sum()),
                     "patients_with_discontinuation": int(ev_arm.loc[led, "patient_id"].nunique())})
    by_arm = pd.DataFrame(rows, columns=list(BY_ARM_COLUMNS))
    table = np.array([[r["patients_with_event"], r["n"] - r["patients_with_event"]] for r in rows])
    yates, chisq, fisher = chisq_test(table, correct=True), chisq_test(table, correct=False), _fisher(table)
    primary = {"yates": yates, "chisq": chisq, "fisher": fisher}[test]
    comparisons = tuple(_comparison(r, rows[-1], conf_level) for r in rows[:-1])

    cat_rows = []
    for cat in _category_order(sorted(set(ev["category"]))):
        counts = []
        for r in rows:
            sub = ev[(ev["category"] == cat) & (ev["arm"] == r["arm"])]
            counts.append((int(sub["patient_id"].nunique()), r["n"], len(sub)))
        p = _fisher([[k, n - k] for k, n, _ in counts]).p
        for r, (k, n, e) in zip(rows, counts):
            cat_rows.append({"category": cat, "arm": r["arm"], "patients_with_event": k, "n": n,
                             "percent": 100.0 * k / n if n else math.nan, "events": e, "fisher_p": p})
    by_category = pd.DataFrame(cat_rows, columns=list(BY_CATEGORY_COLUMNS))
    only = comparisons[0] if len(comparisons) == 1 else None
    return AdverseEventResult(
        arm=order[0], reference_arm=reference_arm, test=test, primary=primary, yates=yates, chisq=chisq,
        fisher=fisher, risk_difference=only and only.risk_difference, risk_ratio=only and only.risk_ratio,
        odds_ratio=only and only.odds_ratio, by_arm=by_arm, by_category=by_category, arms=tuple(order),
        comparisons=comparisons)


def _fisher(table) -> TestResult:
    """Fisher's exact test of a 2×2 or k×2 table; a k×2 (k > 2) table whose enumeration is too large
    (:data:`~ildstudy.analysis.contingency.MAX_FISHER_TABLES`) gets ``p`` ``None`` instead of an error."""
    if len(table) == 2:
        return fisher_test(table)
    try:
        return fisher_test(table)
    except ValueError:
        return TestResult("Fisher's exact (infeasible)")


def _comparison(arm_row: dict, ref_row: dict, conf_level: float) -> ArmComparison:
    """One arm's by-arm row versus the reference's: its 2×2 table's RD, RR, OR and Fisher p."""
    a_, n1, c_, n2 = arm_row["patients_with_event"], arm_row["n"], ref_row["patients_with_event"], ref_row["n"]
    table = np.array([[a_, n1 - a_], [c_, n2 - c_]])
    return ArmComparison(arm_row["arm"], ref_row["arm"], risk_difference_wald(a_, n1, c_, n2, conf_level),
                         risk_ratio_katz(a_, n1, c_, n2, conf_level), conditional_odds_ratio(table, conf_level),
                         fisher_test(table))
