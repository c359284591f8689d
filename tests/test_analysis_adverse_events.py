"""Adverse events by arm against R (tests/reference/analysis/contingency.json, "two_by_two").

Reference numbers come from tests/reference/analysis_reference.R (R 4.2.2): chisq.test(x) (Yates),
chisq.test(x, correct = FALSE), fisher.test(x), prop.test(events, n, correct = FALSE)$conf.int (the Wald
interval of the risk difference) and the Katz log interval of the risk ratio written out in R. The suite never
runs R.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ildstudy.analysis.adverse_events import (
    AdverseEventResult,
    compare_adverse_events,
    risk_difference_wald,
    risk_ratio_katz,
)

REF = json.loads((Path(__file__).parent / "reference" / "analysis" / "contingency.json").read_text("utf-8"))
CASES = {c["name"]: c for c in REF["two_by_two"]}

STATISTIC_RTOL = 1e-9   # same closed-form χ² as R
P_VALUE_RTOL = 1e-9     # same algorithms as R (χ² tail; exact Fisher enumeration)
CI_RTOL = 1e-9          # same closed-form intervals as R's prop.test / the Katz formula
ODDS_RATIO_RTOL = 1e-3  # R's fisher.test solves the conditional MLE with uniroot (tol ~1.2e-4); worst seen 1.8e-4


def _cohort(events: tuple[int, int], n: tuple[int, int], arms=("AZA", "MMF"), categories=None):
    """Per-patient and event tables with events[i] of n[i] patients of arms[i] having one event."""
    pp, ev = [], []
    for arm, k, size in zip(arms, events, n):
        for i in range(size):
            pid = f"{arm}{i:03d}"
            pp.append({"patient_id": pid, "arm": arm, "any_event": i < k})
            if i < k:
                cat = categories[arm][i % len(categories[arm])] if categories else "cytopenia"
                ev.append({"patient_id": pid, "arm": arm, "category": cat, "led_to_discontinuation": i % 3 == 0})
    return pd.DataFrame(pp), pd.DataFrame(ev, columns=["patient_id", "arm", "category", "led_to_discontinuation"])


def _run(case: dict, test="yates") -> AdverseEventResult:
    pp, ev = _cohort(tuple(case["events"]), tuple(case["n"]))
    return compare_adverse_events(pp, ev, ["AZA", "MMF"], "MMF", test=test)


def _close(actual, expected, rtol):
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, rel=rtol, abs=1e-300)


@pytest.mark.parametrize("name", sorted(CASES))
def test_tests_match_r(name):
    case = CASES[name]
    res = _run(case)
    _close(res.yates.statistic, case["yates"]["statistic"], STATISTIC_RTOL)   # chisq.test(x)
    _close(res.yates.p, case["yates"]["p"], P_VALUE_RTOL)
    _close(res.chisq.statistic, case["chisq"]["statistic"], STATISTIC_RTOL)   # chisq.test(x, correct = FALSE)
    _close(res.chisq.p, case["chisq"]["p"], P_VALUE_RTOL)
    _close(res.fisher.p, case["fisher"]["p"], P_VALUE_RTOL)                   # fisher.test(x)
    assert res.primary is res.yates


@pytest.mark.parametrize("name", sorted(CASES))
def test_risk_difference_and_ratio_match_r(name):
    case = CASES[name]
    res = _run(case)
    rd, rr = case["risk_difference"], case["risk_ratio"]
    _close(res.risk_difference.estimate, rd["estimate"], CI_RTOL)
    _close(res.risk_difference.ci_low, rd["ci_low"], CI_RTOL)      # prop.test(correct = FALSE)$conf.int[1]
    _close(res.risk_difference.ci_high, rd["ci_high"], CI_RTOL)
    _close(res.risk_ratio.estimate, rr["estimate"], CI_RTOL)        # Katz log interval
    _close(res.risk_ratio.ci_low, rr["ci_low"], CI_RTOL)
    _close(res.risk_ratio.ci_high, rr["ci_high"], CI_RTOL)
    if case["fisher"]["odds_ratio"] not in (None, 0):
        assert res.odds_ratio.estimate == pytest.approx(case["fisher"]["odds_ratio"], rel=ODDS_RATIO_RTOL)


def test_published_numbers_from_r_fixture():
    """Huapaya et al.: 22/66 (33.3%) vs 6/44 (13.6%), Yates χ² 4.41, p = 0.036 (printed 0.04)."""
    case = CASES["huapaya2019_ae"]
    res = _run(case)
    by_arm = res.to_dict()["by_arm"]
    assert (by_arm["AZA"]["patients_with_event"], by_arm["AZA"]["n"]) == (22, 66)
    assert (by_arm["MMF"]["patients_with_event"], by_arm["MMF"]["n"]) == (6, 44)
    assert f"{by_arm['AZA']['percent']:.1f}" == "33.3" and f"{by_arm['MMF']['percent']:.1f}" == "13.6"
    d = res.to_dict()
    assert d["test"] == "yates" and d["test_name"] == "Yates-corrected chi-squared"
    assert d["statistic"] == pytest.approx(case["yates"]["statistic"], rel=STATISTIC_RTOL)
    assert d["p"] == pytest.approx(case["yates"]["p"], rel=P_VALUE_RTOL)
    assert f"{d['p']:.2f}" == "0.04" and f"{d['p']:.3f}" == "0.036"
    assert d["fisher_p"] == pytest.approx(case["fisher"]["p"], rel=P_VALUE_RTOL)
    assert f"{d['tests']['chisq']['p']:.3f}" == "0.020" and f"{d['fisher_p']:.3f}" == "0.025"


@pytest.mark.parametrize("test, attr", [("yates", "yates"), ("chisq", "chisq"), ("fisher", "fisher")])
def test_protocol_choice_of_test(test, attr):
    res = _run(CASES["huapaya2019_ae"], test=test)
    assert res.primary is getattr(res, attr)
    d = res.to_dict()
    assert d["test"] == test and d["p"] == getattr(res, attr).p
    if test == "fisher":
        assert d["statistic"] is None


def test_zero_events_in_an_arm():
    case = CASES["zero_in_arm"]
    res = _run(case)
    assert res.by_arm.loc[0, "patients_with_event"] == 0 and res.by_arm.loc[0, "percent"] == 0.0
    assert res.risk_ratio.estimate == 0.0 and res.risk_ratio.ci_low is None and res.risk_ratio.ci_high is None
    # reference arm without events: ratio undefined
    pp, ev = _cohort((4, 0), (10, 10))
    res = compare_adverse_events(pp, ev, ["AZA", "MMF"], "MMF")
    assert res.risk_ratio.estimate is None
    json.dumps(res.to_dict(), allow_nan=False)


def test_no_events_at_all():
    pp, ev = _cohort((0, 0), (10, 12))
    res = compare_adverse_events(pp, ev, ["AZA", "MMF"], "MMF")
    assert res.yates.p is None and res.chisq.p is None       # R: NaN (expected count 0)
    assert res.fisher.p == 1.0
    assert res.risk_difference.estimate == 0.0
    assert res.by_category.empty
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["p"] is None and d["by_category"] == []


def test_all_patients_with_events():
    case = CASES["all_events_one_arm"]
    res = _run(case)
    assert res.by_arm.loc[0, "percent"] == 100.0
    _close(res.yates.p, case["yates"]["p"], P_VALUE_RTOL)
    assert res.risk_difference.ci_high <= 1.0
    assert res.odds_ratio.estimate is None                   # infinite
    json.dumps(res.to_dict(), allow_nan=False)


def test_by_category_and_discontinuation():
    cats = {"AZA": ["cytopenia", "hepatotoxicity", "infection"], "MMF": ["gi_intolerance", "cytopenia"]}
    pp, ev = _cohort((9, 4), (20, 15), categories=cats)
    # a second event of the same category for one patient counts the patient once, the event twice
    ev = pd.concat([ev, ev.iloc[[0]]], ignore_index=True)
    ev.loc[len(ev) - 1, "led_to_discontinuation"] = False
    res = compare_adverse_events(pp, ev, ["MMF", "AZA"], "MMF")  # arm order of the input does not matter
    assert (res.arm, res.reference_arm) == ("AZA", "MMF")
    bc = res.by_category.set_index(["category", "arm"])
    # schema order: cytopenia, hepatotoxicity, gi_intolerance, infection
    assert list(dict.fromkeys(res.by_category["category"])) == ["cytopenia", "hepatotoxicity", "gi_intolerance",
                                                                 "infection"]
    assert bc.loc[("cytopenia", "AZA"), "patients_with_event"] == 3
    assert bc.loc[("cytopenia", "AZA"), "events"] == 4
    assert bc.loc[("hepatotoxicity", "MMF"), "patients_with_event"] == 0           # absent from MMF
    assert bc.loc[("gi_intolerance", "AZA"), "percent"] == 0.0
    assert bc.loc[("cytopenia", "MMF"), "n"] == 15
    by_arm = res.by_arm.set_index("arm")
    assert by_arm.loc["AZA", "events"] == 10
    assert by_arm.loc["AZA", "events_led_to_discontinuation"] == 3                 # i = 0, 3, 6
    assert by_arm.loc["AZA", "patients_with_discontinuation"] == 3
    wide = res.by_category_wide()
    assert list(wide.columns[:5]) == ["category", "AZA_patients", "AZA_n", "AZA_percent", "AZA_events"]
    d = res.to_dict()
    cat0 = d["by_category"][0]
    assert cat0["category"] == "cytopenia" and cat0["AZA"]["patients_with_event"] == 3 and 0 <= cat0["fisher_p"] <= 1
    json.dumps(d, allow_nan=False)


def test_formulas_directly():
    rd = risk_difference_wald(22, 66, 6, 44)
    case = CASES["huapaya2019_ae"]["risk_difference"]
    assert (rd.ci_low, rd.ci_high) == pytest.approx((case["ci_low"], case["ci_high"]), rel=CI_RTOL)
    rr = risk_ratio_katz(22, 66, 6, 44)
    assert rr.estimate == pytest.approx(22 / 66 / (6 / 44))
    assert math.log(rr.ci_high) - math.log(rr.estimate) == pytest.approx(math.log(rr.estimate) - math.log(rr.ci_low))


def test_result_is_frozen():
    res = _run(CASES["large"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.test = "fisher"  # type: ignore[misc]


def test_input_errors():
    pp, ev = _cohort((3, 2), (10, 10))
    with pytest.raises(ValueError, match="test must be one of"):
        compare_adverse_events(pp, ev, ["AZA", "MMF"], "MMF", test="mcnemar")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference_arm"):
        compare_adverse_events(pp, ev, ["AZA", "MMF"], "CYC")
    with pytest.raises(ValueError, match="no column"):
        compare_adverse_events(pp.drop(columns="any_event"), ev, ["AZA", "MMF"], "MMF")
    with pytest.raises(ValueError, match="not arms"):
        compare_adverse_events(pp.assign(arm="X"), ev, ["AZA", "MMF"], "MMF")
    with pytest.raises(ValueError, match="unique"):
        compare_adverse_events(pd.concat([pp, pp.iloc[[0]]]), ev, ["AZA", "MMF"], "MMF")
    bad = ev.copy()
    bad.loc[0, "patient_id"] = "nobody"
    with pytest.raises(ValueError, match="not in per_patient"):
        compare_adverse_events(pp, bad, ["AZA", "MMF"], "MMF")
    flagless = pp.assign(any_event=False)
    with pytest.raises(ValueError, match="any_event is false"):
        compare_adverse_events(flagless, ev, ["AZA", "MMF"], "MMF")
    wrong_arm = ev.copy()
    wrong_arm.loc[0, "arm"] = "MMF"
    with pytest.raises(ValueError, match="differs"):
        compare_adverse_events(pp, wrong_arm, ["AZA", "MMF"], "MMF")


def test_flags_as_text_and_missing():
    pp, ev = _cohort((3, 2), (10, 10))
    pp["any_event"] = pp["any_event"].map({True: "true", False: "false"})
    ev["led_to_discontinuation"] = [None, "yes", "no", "1", "0"]
    ev["category"] = [None, "rash", "rash", "other", "weird"]
    res = compare_adverse_events(pp, ev, ["AZA", "MMF"], "MMF")
    assert res.by_arm["events_led_to_discontinuation"].sum() == 2
    assert list(dict.fromkeys(res.by_category["category"])) == ["rash", "other", "(missing)", "weird"]
