"""A third arm in a test protocol, without touching library code (issue 16, item 2 and its acceptance test).

The registry is the calibrated synthetic one (``write_registry``, seed 2019) with the azathioprine of every
third AZA patient relabelled to rituximab; the protocol is the built-in ``huapaya2019`` with a third arm RTX
(rituximab, taken out of the other agents), written as TOML here. Arms: AZA, RTX, MMF (reference last).
The rules checked are those of docs/protocol.md ("More than two arms"): every arm contrasted with the reference,
an overall r x 2 adverse-event test with k - 1 df plus per-arm risk differences and ratios, a log-rank test
with k - 1 df, one Cox hazard ratio per non-reference arm, Kruskal-Wallis / chi-squared in Table 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ildstudy
from ildstudy.analysis.schema import load_schema
from ildstudy.protocol import load_protocol
from ildstudy.protocols import __file__ as _protocols_init

BUILTIN = Path(_protocols_init).with_name("huapaya2019.toml")
ARMS = ["AZA", "RTX", "MMF"]


def three_arm_toml() -> str:
    text = BUILTIN.read_text(encoding="utf-8")
    mmf = '[[arms]]\nname = "MMF"'
    assert mmf in text and '"rituximab", ' in text
    text = text.replace(mmf, '[[arms]]\nname = "RTX"\nlabel = "Rituximab"\ndrugs = ["rituximab"]\n\n' + mmf)
    # the published-reading sensitivity analysis is another (two-arm) protocol: not comparable with three arms
    published = text.index('[[sensitivity]]\nname = "published_reading"')
    end = text.index("[[sensitivity]]", published + 1)
    text = text[:published] + text[end:]
    return text.replace('"rituximab", ', "")


def relabel_third_arm(registry: Path) -> set[str]:
    """Every third patient whose medications include azathioprine gets rituximab instead (prescriptions and the
    adverse events naming the drug); returns their ids."""
    meds = pd.read_csv(registry / "medications.csv", dtype=str, keep_default_na=False)
    aza = sorted(set(meds.loc[meds["drug"].str.lower().str.contains("azathioprine|imuran"), "patient_id"]))
    moved = set(aza[::3])
    on_aza = meds["patient_id"].isin(moved) & meds["drug"].str.lower().str.contains("azathioprine|imuran")
    meds.loc[on_aza, "drug"] = "rituximab"
    meds.to_csv(registry / "medications.csv", index=False)
    ae = pd.read_csv(registry / "adverse_events.csv", dtype=str, keep_default_na=False)
    hit = ae["patient_id"].isin(moved) & ae["drug"].str.lower().str.contains("azathioprine|imuran")
    ae.loc[hit, "drug"] = "rituximab"
    ae.to_csv(registry / "adverse_events.csv", index=False)
    return moved


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from ildstudy.synth import write_registry

    root = tmp_path_factory.mktemp("three_arms")
    registry = root / "registry"
    write_registry(registry, n_patients=None, seed=2019, fmt="csv")
    relabel_third_arm(registry)
    toml = root / "three_arms.toml"
    toml.write_text(three_arm_toml(), encoding="utf-8")
    result = ildstudy.run_study(toml, registry)
    out = root / "out"
    ildstudy.write_outputs(result, out)
    return result, out, json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_protocol_has_three_arms_reference_last():
    p = load_protocol(_write(three_arm_toml()))
    assert [a.name for a in p.arms] == ARMS and p.reference_arm == "MMF"
    assert p.compared_arms == ("AZA", "RTX")


def _write(text: str) -> Path:
    import tempfile

    f = Path(tempfile.mkdtemp()) / "p.toml"
    f.write_text(text, encoding="utf-8")
    return f


def test_every_arm_has_patients(study):
    result, _, doc = study
    assert list(doc["arms"]) == ARMS
    assert all(doc["arms"][a]["n"] >= 10 for a in ARMS)
    assert doc["reference_arm"] == "MMF"


def test_results_json_validates_against_the_schema(study):
    _, _, doc = study
    assert load_schema().validate_results(doc) == []


def test_two_contrasts_per_outcome_and_month(study):
    result, _, doc = study
    months = [float(m) for m in result.protocol.analysis.contrast_months]
    for name, block in doc["outcomes"].items():
        diffs = pd.DataFrame(block["arm_differences"])
        assert set(diffs["contrast"]) == {"AZA - MMF", "RTX - MMF"}, name
        assert len(diffs) == 2 * len(months)
        assert (diffs.groupby("month").size() == 2).all()
        terms = [f["term"] for f in block["model"]["fixed_effects"]]
        assert {"armAZA", "armRTX", "months:armAZA", "months:armRTX"} <= set(terms)
        # at month 0 the contrast is the arm main effect (linear time model, months = 0)
        fe = {f["term"]: f["estimate"] for f in block["model"]["fixed_effects"]}
        at0 = diffs[diffs["month"] == 0.0].set_index("contrast")["estimate"]
        assert at0["RTX - MMF"] == pytest.approx(fe["armRTX"], rel=1e-9, abs=1e-9)


def test_adverse_events_overall_test_with_two_df_and_per_arm_comparisons(study):
    result, _, doc = study
    ae = doc["adverse_events"]
    assert ae["tests"]["chisq"]["df"] == 2 and ae["tests"]["yates"]["df"] == 2
    # the overall test recomputed from the by-arm counts (R: chisq.test(x) on a 3 x 2 table applies no
    # continuity correction, so the protocol's "yates" is Pearson's chi-squared here)
    table = np.array([[ae["by_arm"][a]["patients_with_event"],
                       ae["by_arm"][a]["n"] - ae["by_arm"][a]["patients_with_event"]] for a in ARMS])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert dof == 2
    assert ae["statistic"] == pytest.approx(chi2, rel=1e-9) and ae["p"] == pytest.approx(p, rel=1e-9)  # json: 10 digits
    assert ae["risk_difference"] is None and ae["risk_ratio"] is None  # one per arm instead, below
    comps = {c["arm"]: c for c in ae["comparisons"]}
    assert list(comps) == ["AZA", "RTX"]
    for a, c in comps.items():
        k, n = ae["by_arm"][a]["patients_with_event"], ae["by_arm"][a]["n"]
        k0, n0 = ae["by_arm"]["MMF"]["patients_with_event"], ae["by_arm"]["MMF"]["n"]
        assert c["reference_arm"] == "MMF"
        assert c["risk_difference"]["estimate"] == pytest.approx(k / n - k0 / n0, rel=1e-9)
        assert c["risk_ratio"]["estimate"] == pytest.approx((k / n) / (k0 / n0), rel=1e-9)
        assert c["risk_difference"]["ci_low"] < c["risk_difference"]["estimate"] < c["risk_difference"]["ci_high"]
    for cat in ae["by_category"]:
        assert set(ARMS) <= set(cat)


def test_discontinuation_logrank_two_df_and_two_hazard_ratios(study):
    _, _, doc = study
    disc = doc["discontinuation"]
    assert disc["logrank"]["df"] == 2
    assert disc["cox_hr"] is None
    hrs = disc["cox_hrs"]
    assert [h["term"] for h in hrs] == ["armAZA", "armRTX"]
    for h in hrs:
        assert h["ci_low"] < h["estimate"] < h["ci_high"]


def test_cox_matches_lifelines_with_two_dummies(study):
    """The two HRs are one Cox model with two arm indicators (R: ``coxph(Surv(months, event) ~ arm)`` with
    MMF as reference), not two separate two-arm fits: refit it directly with lifelines."""
    from lifelines import CoxPHFitter

    result, _, doc = study
    km = result.discontinuation.any_reason
    pts = _times(result)
    df = pd.DataFrame({"months": pts["months"], "event": pts["event"].astype(int),
                       "AZA": (pts["arm"] == "AZA").astype(float), "RTX": (pts["arm"] == "RTX").astype(float)})
    fit = CoxPHFitter().fit(df, "months", "event", fit_options={"precision": 1e-20, "r_precision": 0.0,
                                                                "step_size": 0.95, "max_steps": 500})
    got = {c.term: c.coef for c in km.cox_by_arm}
    assert got["armAZA"] == pytest.approx(float(fit.params_["AZA"]), rel=1e-8)
    assert got["armRTX"] == pytest.approx(float(fit.params_["RTX"]), rel=1e-8)


def _times(result) -> pd.DataFrame:
    """Per-patient (arm, months, event) from the any-reason KM table: n_event and n_censor rows expanded."""
    rows = []
    for r in result.discontinuation.any_reason.km.itertuples(index=False):
        rows += [(r.arm, r.time, True)] * int(r.n_event) + [(r.arm, r.time, False)] * int(r.n_censor)
    return pd.DataFrame(rows, columns=["arm", "months", "event"])


def test_table1_uses_k_group_tests(study):
    _, _, doc = study
    rows = {(r["variable"], r["level"]): r for r in doc["table1"] if r["test"] is not None}
    assert rows[("age", None)]["test"] == "Kruskal-Wallis"
    assert rows[("prednisone_mg", None)]["test"] == "Kruskal-Wallis"
    assert rows[("sex", "F")]["test"] in {"Pearson's Chi-squared", "Chi-squared", "Fisher's exact"} or \
        "hi-squared" in rows[("sex", "F")]["test"] or "Fisher" in rows[("sex", "F")]["test"]
    for r in rows.values():
        assert set(ARMS) <= set(r)
        if r["smd"] is not None:
            assert r["smd"] >= 0  # k > 2: the largest |SMD| of an arm versus the reference


def test_report_and_tables_show_every_contrast(study):
    _, out, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    for a in ARMS:
        assert a in html
    assert "RTX \u2212 MMF" in html and "AZA \u2212 MMF" in html
    assert "Yates" not in html  # no continuity correction beyond 2 x 2: the report must not claim one
    assert "Chi-squared test of all 3 arms (2 df)" in html
    diffs = pd.read_csv(out / "tables" / "fvc_pct_pred_arm_differences.csv")
    assert set(diffs["contrast"]) == {"AZA - MMF", "RTX - MMF"}
    wide = pd.read_csv(out / "tables" / "adverse_events_by_category.csv")
    assert {f"{a}_patients" for a in ARMS} <= set(wide.columns)
    assert (out / "share").is_dir()
