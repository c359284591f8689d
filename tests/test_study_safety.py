"""Issue 15's safety and slope analyses inside the study run: person-time adverse events, competing-risks
discontinuation, annualised slopes and contrast support, in results.json, tables/, share/ and the report.

The numerics themselves are checked against R in tests/test_analysis_rates.py, test_analysis_competing_risks.py
and the lmm emtrends tests; here the expectations are recomputed from the cohort the study used (built again
with :func:`ildstudy.cohort.build_cohort`) and from the fitted model's own fixed effects, so each test can fail
if the study wires the wrong data or the wrong time into them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ildstudy
from ildstudy.analysis.outcome_slopes import MIN_AT_RISK
from ildstudy.analysis.schema import load_schema
from ildstudy.cohort import build_cohort
from ildstudy.data import load_registry
from ildstudy.protocol import load_protocol

REL = 1e-9  # recomputation of the same arithmetic (sums and ratios): floating-point agreement only


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from ildstudy.synth import write_registry

    root = tmp_path_factory.mktemp("safety")
    registry = root / "registry"
    write_registry(registry, n_patients=None, seed=2019)
    result = ildstudy.run_study("huapaya2019", registry)
    out = root / "out"
    ildstudy.write_outputs(result, out)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    cohort = build_cohort(load_registry(registry), load_protocol("huapaya2019"))
    return result, out, doc, cohort


def test_results_json_has_the_new_blocks_and_conforms(study):
    _, _, doc, _ = study
    assert load_schema().validate_results(doc) == []
    pt = doc["adverse_events"]["person_time"]
    assert [r["arm"] for r in pt["by_arm"]] == list(doc["arms"])
    assert pt["comparisons"][0]["contrast"] == "AZA / MMF"
    cr = doc["discontinuation"]["competing_risks"]
    assert cr["causes"] == {"1": "adverse_event", "2": "other_stop_or_switch"}
    assert set(cr["comparisons"][0]["fine_gray_shr"]) == {"1", "2"}
    for name, o in doc["outcomes"].items():
        assert o["slopes"], name
        assert len(o["contrast_support"]) == len(load_protocol("huapaya2019").analysis.contrast_months)


def test_rates_are_events_over_person_years_from_the_cohort(study):
    """events = adverse events within the as-treated time on the drug; person-years = treatment_months / 12."""
    _, _, doc, cohort = study
    pts, ev = cohort.patients, cohort.adverse_events
    end = ev["patient_id"].map(pts.set_index("patient_id")["treatment_months"])
    ev = ev[ev["months"].astype(float) <= end.astype(float)]
    ev = ev.merge(pts[["patient_id", "arm"]], on="patient_id")
    timed = pts[pts["treatment_months"] > 0]
    for row in doc["adverse_events"]["person_time"]["by_arm"]:
        a = row["arm"]
        arm_pts = timed[timed["arm"] == a]
        events = int(ev[ev["patient_id"].isin(arm_pts["patient_id"])].shape[0])
        years = float(arm_pts["treatment_months"].sum()) / 12
        assert row["events"] == events and row["n"] == len(arm_pts)
        assert row["person_years"] == pytest.approx(years, rel=REL)
        assert row["rate_per_100py"] == pytest.approx(100 * events / years, rel=REL)
    # the person-time events are a subset of the follow-up events the risk table counts
    counted = sum(r["events"] for r in doc["adverse_events"]["person_time"]["by_arm"])
    assert 0 < counted <= sum(v["events"] for v in doc["adverse_events"]["by_arm"].values())


def test_competing_causes_count_switches_as_events(study):
    result, _, doc, cohort = study
    pts = cohort.patients
    ended = pts["discontinued"].astype(bool)
    ae_stop = ended & pts["treatment_end"].eq("stop") & pts["stop_reason"].eq("adverse_event")
    other = ended & (pts["treatment_end"].isin(["stop", "switch"])) & ~ae_stop
    hr = {(r["cause"], r["model"]): r for r in result.safety.hazard_ratios_table().to_dict(orient="records")}
    assert hr[(1, "cause_specific_cox")]["n_events"] == int(ae_stop.sum())
    assert hr[(2, "fine_gray")]["n_events"] == int(other.sum())
    assert (ended & pts["treatment_end"].eq("switch")).sum() > 0  # the demo has switches to count
    # cumulative incidence at 60 months of both causes + still on drug cannot exceed 1
    cif = pd.DataFrame(doc["discontinuation"]["competing_risks"]["cumulative_incidence"])
    last = cif[cif["month"] == cif["month"].max()].groupby("arm")["estimate"].sum()
    assert (last > 0).all() and (last < 1).all()


def test_linear_slopes_equal_the_fixed_effects_times_12(study):
    result, _, doc, _ = study
    for name, o in result.outcomes.items():
        fe = o.fixed_effects.set_index("term")["estimate"]
        s = {r["term"]: r for r in doc["outcomes"][name]["slopes"]}
        assert s["MMF"]["month"] is None  # linear time: one slope, month-free
        assert s["MMF"]["estimate"] == pytest.approx(12 * fe["months"], rel=1e-9, abs=1e-12)
        assert s["AZA"]["estimate"] == pytest.approx(12 * (fe["months"] + fe["months:armAZA"]), rel=1e-9, abs=1e-12)
        assert s["AZA - MMF"]["estimate"] == pytest.approx(12 * fe["months:armAZA"], rel=1e-9, abs=1e-12)
        # the difference's SE and df are those of the months:armAZA coefficient (x12 for the SE)
        row = o.fixed_effects.set_index("term").loc["months:armAZA"]
        assert s["AZA - MMF"]["se"] == pytest.approx(12 * row["se"], rel=1e-9)
        assert s["AZA - MMF"]["df"] == pytest.approx(row["df"], rel=1e-6)


def test_contrast_support_counts_patients_with_data_at_or_after_each_month(study):
    result, out, doc, cohort = study
    obs = cohort.outcomes.merge(cohort.patients[["patient_id", "arm"]], on="patient_id")
    for name, o in result.outcomes.items():
        last = obs[obs["outcome"] == name].groupby(["arm", "patient_id"])["months"].max()
        for r in doc["outcomes"][name]["contrast_support"]:
            for a in doc["arms"]:
                # the model frame also drops rows with a missing covariate: never more than the raw count
                assert r[f"n_at_risk_{a}"] <= int((last.loc[a] >= r["month"]).sum())
            assert r["min_at_risk"] == MIN_AT_RISK
            assert r["enough_data"] == all(r[f"n_at_risk_{a}"] >= MIN_AT_RISK for a in doc["arms"])
        table = pd.read_csv(out / "tables" / f"{name}_contrast_support.csv")
        assert list(table["month"]) == [r["month"] for r in doc["outcomes"][name]["contrast_support"]]
    # counts decrease over months (patients only leave)
    sup = pd.DataFrame(doc["outcomes"]["fvc_pct_pred"]["contrast_support"])
    assert (np.diff(sup["n_at_risk_AZA"]) <= 0).all()


def test_tables_and_share_suppress_small_counts(study):
    _, out, _, _ = study
    for name in ("adverse_event_rates", "adverse_event_rate_ratios", "discontinuation_cumulative_incidence",
                 "discontinuation_cause_hazard_ratios", "fvc_pct_pred_slopes", "fvc_pct_pred_contrast_support"):
        assert (out / "tables" / f"{name}.csv").is_file(), name
        assert (out / "share" / f"{name}.csv").is_file(), name
    schema = load_schema()
    assert schema.count_columns("fvc_pct_pred_contrast_support", ["n_at_risk_AZA", "month"]) == ["n_at_risk_AZA"]



def test_share_hides_small_event_counts_and_the_rates_made_from_them(study):
    """With min_cell above the demo's smaller counts (MMF: 11 events, 11 AE stops), those cells are hidden and the
    rate and its CI computed from a hidden count are withheld."""
    from ildstudy.report.share import SECONDARY, share_tables

    result, _, doc, _ = study
    raw = result.tables
    small = int(raw["adverse_event_rates"]["events"].min())
    min_cell = small + 1
    shared = share_tables(raw, doc, min_cell=min_cell)
    rates = shared["adverse_event_rates"].set_index("arm")
    arm = raw["adverse_event_rates"].set_index("arm")["events"].idxmin()
    assert rates.loc[arm, "events"] == f"<{min_cell}"
    assert rates.loc[arm, "rate_per_100py"] == SECONDARY and rates.loc[arm, "ci_low"] == SECONDARY
    assert rates.loc[arm, "person_years"] == pytest.approx(raw["adverse_event_rates"].set_index("arm")
                                                           .loc[arm, "person_years"], rel=1e-6)
    hr_raw, hr = raw["discontinuation_cause_hazard_ratios"], shared["discontinuation_cause_hazard_ratios"]
    for s, v in zip(hr["n_events"], hr_raw["n_events"]):
        assert s == (f"<{min_cell}" if 0 < v < min_cell else int(v))
    sup = shared["fvc_pct_pred_contrast_support"]
    sup_raw = raw["fvc_pct_pred_contrast_support"]
    for s, v in zip(sup["n_at_risk_MMF"], sup_raw["n_at_risk_MMF"]):
        assert s == (f"<{min_cell}" if 0 < v < min_cell else int(v))


def test_report_shows_the_safety_section_and_slopes(study):
    _, out, _, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Safety: person-time and competing risks" in html
    assert "Adverse events per 100 person-years" in html
    assert "Fine–Gray subdistribution HR" in html
    assert "change per year" in html
    assert (out / "figures" / "cumulative_incidence.svg").is_file()


def test_limited_data_marks_follow_the_contrast_support(study):
    result, out, _, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    flagged = any(not o.contrast_support["enough_data"].all() for o in result.outcomes.values())
    assert ('class="limited"' in html) == flagged
