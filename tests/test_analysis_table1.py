"""Table 1 against R (tests/reference/analysis/table1.json, data in tests/reference/analysis/data/table1.csv).

Every reference number comes from tests/reference/analysis_reference.R (R 4.2.2): means and SDs from mean()/sd(),
quartiles from quantile(type = 7), Welch from t.test(x, y), Wilcoxon from wilcox.test(x, y, exact = FALSE,
correct = TRUE), categorical tests from chisq.test(correct = FALSE) / fisher.test on table(level, arm) with
gtsummary's rule, SMDs from tableone's formulas written out in the script (tableone's StdDiff without abs();
StdDiffMulti with MASS::ginv). The suite never runs R.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.table1 import (
    Table1Result,
    Variable,
    smd_binary,
    smd_categorical,
    table1,
)

REF_DIR = Path(__file__).parent / "reference" / "analysis"
REF = json.loads((REF_DIR / "table1.json").read_text(encoding="utf-8"))
DATA = pd.read_csv(REF_DIR / REF["data"])
ARMS = list(REF["arms"])

# Descriptive statistics: same arithmetic as R (15 significant digits in the fixture).
SUMMARY_RTOL = 1e-12
# Tests: same algorithm as R (Welch; normal approximation of the rank-sum test; χ²; exact Fisher enumeration).
STATISTIC_RTOL = 1e-9
P_VALUE_RTOL = 1e-9
# SMDs: same formulas (generalised inverse at MASS::ginv's tolerance).
SMD_RTOL = 1e-9

CONTINUOUS = {c["variable"]: c for c in REF["continuous"]}
CATEGORICAL = {c["variable"]: c for c in REF["categorical"]}


def _variables(summary: str) -> list[Variable]:
    return [
        *(Variable(name, summary=summary) for name in CONTINUOUS),
        Variable("sex", "Female", kind="binary", positive="F"),
        Variable("antisynthetase", "Antisynthetase antibody", kind="binary", positive=True),
        Variable("smoking", kind="categorical", levels=("never", "former", "current")),
        Variable("diagnosis", kind="categorical", levels=("DM", "PM", "ASyS", "IMNM", "CADM", "overlap")),
        Variable("ild", kind="binary", positive=True),
        Variable("height_cm", "Height, cm"),
    ]


@pytest.fixture(scope="module")
def mean_sd() -> Table1Result:
    return table1(DATA, "arm", ARMS, _variables("mean_sd"))


@pytest.fixture(scope="module")
def median_iqr() -> Table1Result:
    return table1(DATA, "arm", ARMS, _variables("median_iqr"))


def _row(res: Table1Result, variable: str, level=None) -> dict:
    t = res.table
    sel = t["variable"] == variable
    if level is not None:
        sel &= t["level"] == level
    return t[sel].iloc[0].to_dict()


def _test(res: Table1Result, variable: str) -> dict:
    return res.tests.set_index("variable").loc[variable].to_dict()


def test_fixture_provenance():
    assert REF["source"] == "tests/reference/analysis_reference.R"
    assert {"r_version", "stats_version", "MASS_version"} <= set(REF)
    assert len(DATA) == sum(REF["n"].values())


def test_arm_sizes(mean_sd):
    assert mean_sd.n == REF["n"]                          # table(arm)
    assert mean_sd.arms == tuple(ARMS)


@pytest.mark.parametrize("variable", sorted(CONTINUOUS))
def test_continuous_summaries_match_r(mean_sd, variable):
    ref = CONTINUOUS[variable]
    nums = mean_sd.numbers[mean_sd.numbers["variable"] == variable].set_index("arm")
    for arm in ARMS:
        r = ref["by_arm"][arm]  # mean(), sd(), quantile(x, c(.25, .5, .75), type = 7)
        assert nums.loc[arm, "n"] == r["n"] and nums.loc[arm, "missing"] == r["missing"]
        for key in ("mean", "sd", "median", "q1", "q3"):
            assert nums.loc[arm, key] == pytest.approx(r[key], rel=SUMMARY_RTOL), (arm, key)
    row = _row(mean_sd, variable)
    for arm in ARMS:
        r = ref["by_arm"][arm]
        assert row[arm] == r["mean_sd_text"]           # sprintf("%.1f (%.1f)", mean, sd)
    assert row["missing"] == sum(ref["by_arm"][a]["missing"] for a in ARMS)


@pytest.mark.parametrize("variable", sorted(CONTINUOUS))
def test_welch_matches_r(mean_sd, variable):
    ref = CONTINUOUS[variable]["welch"]                  # t.test(x, y): Welch
    t = _test(mean_sd, variable)
    assert t["test"] == "Welch t-test"
    assert t["statistic"] == pytest.approx(ref["statistic"], rel=STATISTIC_RTOL)
    assert t["df"] == pytest.approx(ref["df"], rel=STATISTIC_RTOL)
    assert t["p"] == pytest.approx(ref["p"], rel=P_VALUE_RTOL)
    assert _row(mean_sd, variable)["p"] == t["p"]


@pytest.mark.parametrize("variable", sorted(CONTINUOUS))
def test_wilcoxon_matches_r(median_iqr, variable):
    ref = CONTINUOUS[variable]["wilcoxon"]               # wilcox.test(x, y, exact = FALSE, correct = TRUE)
    t = _test(median_iqr, variable)
    assert t["test"] == "Wilcoxon rank-sum"
    assert t["statistic"] == pytest.approx(ref["statistic"], rel=STATISTIC_RTOL)   # R's W
    assert t["p"] == pytest.approx(ref["p"], rel=P_VALUE_RTOL)
    r = CONTINUOUS[variable]["by_arm"]
    row = _row(median_iqr, variable)
    for arm in ARMS:
        assert row[arm] == r[arm]["median_iqr_text"]   # sprintf("%.1f [%.1f, %.1f]", median, q1, q3)


@pytest.mark.parametrize("variable", sorted(CONTINUOUS))
def test_continuous_smd_matches_r(mean_sd, median_iqr, variable):
    # (m1 - m2) / sqrt((s1^2 + s2^2) / 2), signed, AZA - MMF; the same whatever the summary
    expected = CONTINUOUS[variable]["smd"]
    assert _row(mean_sd, variable)["smd"] == pytest.approx(expected, rel=SMD_RTOL)
    assert _row(median_iqr, variable)["smd"] == pytest.approx(expected, rel=SMD_RTOL)


@pytest.mark.parametrize("variable", ["sex", "antisynthetase", "smoking", "diagnosis", "ild"])
def test_categorical_matches_r(mean_sd, variable):
    ref = CATEGORICAL[variable]
    nums = mean_sd.numbers[mean_sd.numbers["variable"] == variable]
    shown = [ref["positive"]] if "positive" in ref else ref["levels"]
    for level in shown:
        level_key = "True" if level == "TRUE" else level
        for arm in ARMS:
            row = nums[(nums["level"] == level_key) & (nums["arm"] == arm)].iloc[0]
            count = ref["counts"][arm][level]                                   # table(arm, level)
            n = sum(ref["counts"][arm].values())
            assert row["count"] == count and row["n"] == n
            assert row["missing"] == ref["missing"][arm]
            assert _row(mean_sd, variable, level_key)[arm] == f"{count} ({100 * count / n:.1f}%)"
    first = mean_sd.table[mean_sd.table["variable"] == variable].iloc[0]
    assert first["test"] == ref["test"]
    if ref.get("p") is None:
        assert first["p"] is None
    else:
        assert first["p"] == pytest.approx(ref["p"], rel=P_VALUE_RTOL)
    if ref["test"] == "Chi-squared":
        assert _test(mean_sd, variable)["statistic"] == pytest.approx(ref["chisq"]["statistic"], rel=STATISTIC_RTOL)
    # binary: the signed SMD (AZA - MMF); categorical: Yang & Dalton (tableone::StdDiffMulti)
    expected_smd = ref.get("smd_binary_signed", ref["smd"])
    assert first["smd"] == pytest.approx(expected_smd, rel=SMD_RTOL, abs=1e-15)
    if "positive" in ref and ref["smd"] is not None:
        assert abs(first["smd"]) == pytest.approx(ref["smd"], rel=SMD_RTOL, abs=1e-15)   # tableone prints |SMD|


def test_categorical_rows_and_stats_on_first_level(mean_sd):
    rows = mean_sd.table[mean_sd.table["variable"] == "smoking"]
    assert rows["level"].tolist() == ["never", "former", "current"]
    assert rows["p"].iloc[0] is not None and rows["p"].iloc[1:].isna().all()
    assert rows["test"].iloc[1:].isna().all() and rows["missing"].iloc[1:].isna().all()
    assert rows["missing"].iloc[0] == 2


def test_single_level_factor(mean_sd):
    row = _row(mean_sd, "ild")
    assert row["p"] is None and row["test"] == "—"
    assert row["smd"] == 0.0                                  # tableone: zero difference, zero variance -> 0


def test_all_missing_variable(mean_sd):
    row = _row(mean_sd, "height_cm")
    assert row["AZA"] == "—" and row["MMF"] == "—"
    assert row["p"] is None and row["test"] == "—" and row["smd"] is None
    assert row["missing"] == sum(REF["all_missing"]["missing"].values())
    rec = [r for r in mean_sd.records() if r["variable"] == "height_cm"][0]
    assert rec["missing_by_arm"] == REF["all_missing"]["missing"]


def test_all_missing_categorical_and_binary():
    df = pd.DataFrame({"arm": ["A", "A", "B"], "c": [None, None, None], "b": [np.nan, np.nan, np.nan]})
    res = table1(df, "arm", ["A", "B"], [Variable("c", kind="categorical"), Variable("b", kind="binary")])
    assert res.table["test"].tolist() == ["—", "—"]
    assert res.table["p"].isna().all() and res.table["smd"].isna().all()
    assert res.table["A"].tolist() == ["—", "—"] and res.table["missing"].tolist() == [3, 3]


def test_welch_needs_two_values_per_arm():
    df = pd.DataFrame({"arm": ["A", "A", "A", "B"], "x": [1.0, 2.0, 4.0, 3.0]})
    res = table1(df, "arm", ["A", "B"], [Variable("x")])
    row = res.table.iloc[0]
    assert row["test"] == "—" and row["p"] is None and row["smd"] is None
    assert row["B"] == "3.0 (—)"
    # the rank-sum test needs one value per arm
    res = table1(df, "arm", ["A", "B"], [Variable("x", summary="median_iqr")])
    assert res.table.iloc[0]["test"] == "Wilcoxon rank-sum" and res.table.iloc[0]["p"] is not None


def test_arm_without_values():
    df = pd.DataFrame({"arm": ["A", "A", "B", "B"], "x": [1.0, 2.0, None, None], "c": ["u", "v", None, None]})
    res = table1(df, "arm", ["A", "B"], [Variable("x"), Variable("c", kind="categorical")])
    assert res.table.iloc[0]["B"] == "—" and res.table.iloc[0]["test"] == "—"
    c = res.table[res.table["variable"] == "c"]
    assert c["B"].tolist() == ["—", "—"] and c.iloc[0]["p"] is None and c.iloc[0]["smd"] is None


def test_level_absent_from_one_arm():
    df = pd.DataFrame({"arm": ["A"] * 6 + ["B"] * 6, "c": ["u", "u", "v", "w", "w", "w", "u", "u", "u", "v", "v", "v"]})
    res = table1(df, "arm", ["A", "B"], [Variable("c", kind="categorical", levels=("u", "v", "w", "z"))])
    t = res.table.set_index("level")
    assert t.loc["w", "B"] == "0 (0.0%)" and t.loc["z", "A"] == "0 (0.0%)"
    assert t.loc["u", "test"] == "Fisher's exact"
    assert 0 <= t.loc["u", "p"] <= 1


def test_zero_variance_smd():
    assert smd_binary(1.0, 1.0) == 0.0 and smd_binary(0.0, 1.0) is None
    assert smd_categorical(np.array([[5, 0], [7, 0]])) == 0.0
    assert smd_categorical(np.array([[0, 0], [7, 0]])) is None


def test_multilevel_smd_two_levels_equals_binary():
    counts = np.array([[12, 22], [15, 11]])
    p1, p2 = 22 / 34, 11 / 26
    assert smd_categorical(counts) == pytest.approx(abs(smd_binary(p1, p2)), rel=1e-12)


def test_json_ready(mean_sd):
    d = mean_sd.to_dict()
    text = json.dumps(d, allow_nan=False)          # no NaN / inf anywhere
    assert json.loads(text)["rows"][0]["variable"] == "age"
    for rec in d["rows"]:
        assert {"variable", "level", "AZA", "MMF", "p", "test", "smd", "missing"} <= set(rec)
        for v in rec.values():
            assert v is None or isinstance(v, (str, int, float, dict))
            assert not isinstance(v, float) or math.isfinite(v)


def test_result_is_frozen(mean_sd):
    with pytest.raises(dataclasses.FrozenInstanceError):
        mean_sd.arms = ("x", "y")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Variable("x").name = "y"  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "ordinal"}, "kind must be one of"),
    ({"summary": "mean"}, "summary must be one of"),
    ({"digits": -1}, "digits"),
])
def test_variable_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Variable("x", **kwargs)


def test_input_errors():
    df = pd.DataFrame({"arm": ["A", "B", "C"], "x": [1.0, 2.0, 3.0], "s": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="not arms"):
        table1(df, "arm", ["A", "B"], [Variable("x")])
    ok = df[df["arm"] != "C"]
    with pytest.raises(ValueError, match="two or more"):
        table1(ok, "arm", ["A"], [Variable("x")])
    with pytest.raises(ValueError, match="no column"):
        table1(ok, "arm", ["A", "B"], [Variable("nope")])
    with pytest.raises(ValueError, match="non-numeric"):
        table1(ok, "arm", ["A", "B"], [Variable("s")])
    with pytest.raises(ValueError, match="outside its levels"):
        table1(ok, "arm", ["A", "B"], [Variable("s", kind="categorical", levels=("a",))])
    with pytest.raises(ValueError, match="declared binary"):
        table1(df.assign(arm=["A", "B", "B"]), "arm", ["A", "B"], [Variable("s", kind="binary", positive="a")])
    with pytest.raises(ValueError, match="may not be"):
        table1(ok.assign(arm=["p", "B"]), "arm", ["p", "B"], [Variable("x")])


def test_binary_as_zero_one():
    df = pd.DataFrame({"arm": ["A"] * 4 + ["B"] * 4, "x": [1, 0, 1, 1, 0, 0, 1, np.nan], "y": [True] * 8})
    res = table1(df, "arm", ["A", "B"], [Variable("x", kind="binary"), Variable("y", kind="binary")])
    t = res.table.set_index("variable")
    assert t.loc["x", "A"] == "3 (75.0%)" and t.loc["x", "B"] == "1 (33.3%)" and t.loc["x", "missing"] == 1
    assert t.loc["y", "test"] == "—" and t.loc["y", "A"] == "4 (100.0%)"
