"""Contingency-table tests against R (tests/reference/analysis/contingency.json).

Every reference number comes from tests/reference/analysis_reference.R (R 4.2.2, stats); the R call is stored in
the fixture next to each number ("call") and repeated in the comments below. The suite never runs R.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ildstudy.analysis.contingency import (
    CHISQ,
    FISHER,
    NO_TEST,
    YATES,
    chisq_test,
    conditional_odds_ratio,
    count_tables,
    expected_counts,
    fisher_test,
    table1_test,
)

FIXTURE = Path(__file__).parent / "reference" / "analysis" / "contingency.json"
REF = json.loads(FIXTURE.read_text(encoding="utf-8"))

# Same algorithm as R (closed-form χ², exact enumeration for Fisher): agreement to rounding error. The fixture
# holds 15 significant digits (jsonlite digits = NA).
STATISTIC_RTOL = 1e-9
P_VALUE_RTOL = 1e-9
# R's fisher.test finds the conditional MLE and its CI with uniroot() at its default tolerance
# (.Machine$double.eps^0.25 ≈ 1.2e-4, absolute); SciPy solves more tightly. Worst seen: 1.8e-4 relative (a CI
# bound); hence this loose tolerance, for these three numbers only.
ODDS_RATIO_RTOL = 1e-3

TWO_BY_TWO = {c["name"]: c for c in REF["two_by_two"]}
R_BY_2 = {c["name"]: c for c in REF["r_by_2"]}


def _close(actual, expected, rtol):
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, rel=rtol, abs=1e-300)


def test_fixture_records_its_provenance():
    assert REF["source"] == "tests/reference/analysis_reference.R"
    assert REF["r_version"].startswith("R version")
    assert {"huapaya2019_ae", "small_expected", "zero_in_arm", "all_events_one_arm"} <= set(TWO_BY_TWO)


@pytest.mark.parametrize("name", sorted(TWO_BY_TWO))
def test_chisq_2x2_matches_r(name):
    case = TWO_BY_TWO[name]
    yates = chisq_test(case["table"], correct=True)     # chisq.test(x, correct = TRUE)
    pearson = chisq_test(case["table"], correct=False)  # chisq.test(x, correct = FALSE)
    assert yates.test == YATES and pearson.test == CHISQ
    _close(yates.statistic, case["yates"]["statistic"], STATISTIC_RTOL)
    _close(yates.p, case["yates"]["p"], P_VALUE_RTOL)
    _close(pearson.statistic, case["chisq"]["statistic"], STATISTIC_RTOL)
    _close(pearson.p, case["chisq"]["p"], P_VALUE_RTOL)
    assert yates.df == case["yates"]["df"] == 1
    np.testing.assert_allclose(expected_counts(case["table"]), case["expected"], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(TWO_BY_TWO))
def test_fisher_2x2_matches_r(name):
    case = TWO_BY_TWO[name]
    res = fisher_test(case["table"])                     # fisher.test(x)$p.value
    assert res.test == FISHER and res.statistic is None
    _close(res.p, case["fisher"]["p"], P_VALUE_RTOL)


@pytest.mark.parametrize("name", sorted(TWO_BY_TWO))
def test_conditional_odds_ratio_matches_r(name):
    case = TWO_BY_TWO[name]
    orr = conditional_odds_ratio(case["table"])          # fisher.test(x)$estimate, $conf.int
    for mine, theirs in ((orr.estimate, case["fisher"]["odds_ratio"]), (orr.ci_low, case["fisher"]["or_ci_low"]),
                         (orr.ci_high, case["fisher"]["or_ci_high"])):
        if theirs is None or theirs == 0:
            assert mine in (None, 0.0)
        else:
            assert mine == pytest.approx(theirs, rel=ODDS_RATIO_RTOL)


@pytest.mark.parametrize("name", sorted(R_BY_2))
def test_r_by_2_matches_r(name):
    case = R_BY_2[name]
    pearson = chisq_test(case["table"], correct=True)    # chisq.test(x, correct = FALSE): no Yates beyond 2x2
    assert pearson.test == CHISQ
    _close(pearson.statistic, case["chisq"]["statistic"], STATISTIC_RTOL)
    _close(pearson.p, case["chisq"]["p"], P_VALUE_RTOL)
    assert pearson.df == case["chisq"]["df"]
    _close(fisher_test(case["table"]).p, case["fisher"]["p"], P_VALUE_RTOL)   # fisher.test(x)$p.value
    # 2 x c orientation gives the same answer
    _close(fisher_test(np.asarray(case["table"]).T).p, case["fisher"]["p"], P_VALUE_RTOL)


def test_huapaya_adverse_events_as_published():
    """22/66 vs 6/44: only the Yates-corrected test gives the published P = .04 (R fixture, not constants)."""
    case = TWO_BY_TWO["huapaya2019_ae"]
    yates = chisq_test(case["table"], correct=True)
    assert f"{yates.statistic:.2f}" == "4.41" and f"{yates.p:.3f}" == "0.036" and f"{yates.p:.2f}" == "0.04"
    assert f"{chisq_test(case['table'], correct=False).p:.3f}" == "0.020"
    assert f"{fisher_test(case['table']).p:.3f}" == "0.025"


def test_fisher_2x2_agrees_with_scipy_on_all_small_tables():
    # SciPy's 2x2 Fisher test is exact too (its tie tolerance differs from R's, which matters only for
    # probabilities equal to within 1e-7 but not 1e-14: none of these tables).
    for a, b, c, d in itertools.product(range(0, 7), repeat=4):
        table = [[a, b], [c, d]]
        expected = stats.fisher_exact(table).pvalue
        assert fisher_test(table).p == pytest.approx(expected, rel=1e-9, abs=1e-15), table


def test_count_tables():
    assert count_tables([[1, 1], [1, 1]]) == 3          # x in {0, 1, 2}
    assert count_tables([[4, 4], [4, 4], [4, 4]]) == 61  # R_BY_2 "balanced_3x2" (checked by brute force below)
    brute = sum(1 for x in itertools.product(range(9), repeat=3) if sum(x) == 12)
    assert brute == 61


def test_zero_margins():
    # a column of zeros (no event in either arm): R's chisq.test gives NaN, fisher.test p = 1
    res = chisq_test([[0, 10], [0, 12]], correct=True)
    assert res.statistic is None and res.p is None
    assert fisher_test([[0, 10], [0, 12]]).p == 1.0
    assert fisher_test([[0, 0], [3, 4]]).p == 1.0
    assert conditional_odds_ratio([[0, 10], [0, 12]]).estimate is None


def test_table1_rule():
    assert table1_test([[30, 20], [25, 30]]).test == CHISQ           # all expected >= 5
    assert table1_test([[1, 20], [5, 12]]).test == FISHER            # an expected count < 5
    assert table1_test([[10, 12], [0, 0]]).test == NO_TEST           # a single observed level
    assert table1_test([[10, 0], [5, 0]]).test == NO_TEST            # a single arm with data
    # empty levels are dropped before testing
    assert table1_test([[30, 20], [0, 0], [25, 30]]).p == pytest.approx(
        chisq_test([[30, 20], [25, 30]], correct=False).p, rel=1e-12)


def test_table1_rule_falls_back_when_fisher_is_infeasible(monkeypatch):
    import ildstudy.analysis.contingency as contingency

    monkeypatch.setattr(contingency, "MAX_FISHER_TABLES", 10)
    res = table1_test(R_BY_2["diagnosis_6x2"]["table"])
    assert res.test == "Chi-squared (Fisher's exact infeasible)"
    _close(res.p, R_BY_2["diagnosis_6x2"]["chisq"]["p"], P_VALUE_RTOL)


def test_bad_tables():
    with pytest.raises(ValueError):
        chisq_test([[1, -1], [2, 3]], correct=False)
    with pytest.raises(ValueError):
        chisq_test([[1.5, 1], [2, 3]], correct=False)
    with pytest.raises(ValueError):
        fisher_test(np.ones((3, 3)))


@pytest.mark.parametrize("module", ["contingency", "table1", "adverse_events", "kaplan_meier", "discontinuation"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"ildstudy.analysis.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_conditional_odds_ratio_agrees_with_scipy():
    # SciPy's odds_ratio(kind="conditional") solves the same equations to machine precision (R stops uniroot at
    # ~1e-4, hence the looser R tolerance above); it is the oracle for the vectorised construction here.
    rng = np.random.default_rng(20261203)
    tables = [[[a, b], [c, d]] for a, b, c, d in itertools.product(range(0, 5), repeat=4)]
    tables += rng.integers(0, 200, size=(60, 2, 2)).tolist()
    checked = 0
    for table in tables:
        x = np.asarray(table)
        if np.any(x.sum(axis=0) == 0) or np.any(x.sum(axis=1) == 0):
            continue
        ref = stats.contingency.odds_ratio(x, kind="conditional")
        ci = ref.confidence_interval(confidence_level=0.95)
        mine = conditional_odds_ratio(x)
        for got, want in ((mine.estimate, ref.statistic), (mine.ci_low, ci.low), (mine.ci_high, ci.high)):
            if np.isinf(want):
                assert got is None, table
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-300), table
        checked += 1
    assert checked > 400
