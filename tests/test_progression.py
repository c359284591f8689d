"""Progression endpoints (issue 11 item 3): decline-from-baseline event times on hand-built data with hand-computed
answers, the [progression] protocol table, the results.json block against the schema, the report section, and a
planted effect recovered (events and the FVC slope in mL/year).

Every expected number below is worked out by hand in the comment next to it (no R reference is needed: event
detection is arithmetic on the test values; KM / log-rank / Cox are the discontinuation code, checked against R in
tests/test_analysis_discontinuation.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.progression import combine_any, first_decline, progression_endpoint
from ildstudy.analysis.progression_study import study_progression
from ildstudy.analysis.schema import load_schema
from ildstudy.errors import ProtocolError
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol

EXACT = 1e-12  # event times are copied test months: exact


def _decline(baseline, tests, **kw):
    """``tests``: list of (patient index, months, value)."""
    pat, months, value = (np.array(c, dtype=float) for c in zip(*tests)) if tests else ([], [], [])
    return first_decline(np.array(baseline, dtype=float), np.asarray(pat, dtype=int), months, value, **kw)


def test_relative_and_absolute_declines_from_baseline():
    # patient 0: baseline 80; month 6: 73 (relative 8.75%, absolute 7); month 12: 72 (relative exactly 10%)
    # patient 1: baseline 40; month 6: 35 (relative 12.5%, absolute exactly 5)
    # patient 2: baseline 100; month 6: 92 (relative 8%, absolute 8)
    tests = [(0, 6, 73), (0, 12, 72), (1, 6, 35), (2, 6, 92)]
    rel = _decline([80, 40, 100], tests, kind="relative", threshold=10)
    ab = _decline([80, 40, 100], tests, kind="absolute", threshold=5)
    assert rel.event.tolist() == [True, True, False]
    assert rel.months.tolist() == [12.0, 6.0, 6.0]  # patient 2 censored at its last test
    assert ab.event.tolist() == [True, True, True]
    assert ab.months.tolist() == [6.0, 6.0, 6.0]


def test_confirmed_needs_the_next_test_and_keeps_the_first_tests_time():
    # baseline 60; 6: 53 (-7, hit), 12: 58 (-2), 18: 54 (-6, hit), 24: 54 (-6, hit): unconfirmed event at 6;
    # confirmed: 6 is not confirmed by 12, 18 is confirmed by 24 -> event at 18 (the first test's time, not 24)
    tests = [(0, 6, 53), (0, 12, 58), (0, 18, 54), (0, 24, 54)]
    assert _decline([60], tests, kind="absolute", threshold=5).months.tolist() == [6.0]
    c = _decline([60], tests, kind="absolute", threshold=5, confirmed=True)
    assert c.event.tolist() == [True] and c.months.tolist() == [18.0]


def test_a_decline_at_the_last_test_cannot_be_confirmed():
    # baseline 60; 6: 59, 12: 50 (hit, last test) -> confirmed: censored at 12; unconfirmed: event at 12
    tests = [(0, 6, 59), (0, 12, 50)]
    c = _decline([60], tests, kind="relative", threshold=10, confirmed=True)
    assert c.event.tolist() == [False] and c.months.tolist() == [12.0]
    assert _decline([60], tests, kind="relative", threshold=10).event.tolist() == [True]


def test_censoring_no_follow_up_test_and_no_baseline():
    # patient 0: tests at 6 and 30 (unsorted input), no decline -> censored at 30
    # patient 1: no follow-up test -> censored at 0; patient 2: no baseline -> not analysed (NaN time)
    # a NaN test value is ignored (patient 0 at 40)
    tests = [(0, 30, 79), (0, 6, 81), (0, 40, np.nan), (2, 6, 10)]
    r = _decline([80, 70, np.nan], tests, kind="absolute", threshold=5)
    assert r.event.tolist() == [False, False, False]
    assert r.months[:2].tolist() == [30.0, 0.0] and np.isnan(r.months[2])
    assert r.has_baseline.tolist() == [True, True, False]
    assert r.n_tests.tolist() == [2, 0, 1]


def test_window_limits_qualifying_and_censoring_tests():
    # baseline 80; 6: 79, 18: 60 (hit). Window 12: only month 6 counts -> censored at 6. No window: event at 18.
    tests = [(0, 6, 79), (0, 18, 60)]
    w = _decline([80], tests, kind="absolute", threshold=5, window=12)
    assert w.event.tolist() == [False] and w.months.tolist() == [6.0]
    assert _decline([80], tests, kind="absolute", threshold=5).months.tolist() == [18.0]
    # with a window, confirmation may come from a test after it: 10: 70 (hit), 14: 70 (hit) -> event at 10
    c = _decline([80], [(0, 10, 70), (0, 14, 70)], kind="absolute", threshold=5, window=12, confirmed=True)
    assert c.event.tolist() == [True] and c.months.tolist() == [10.0]


def test_union_of_measures_takes_the_earliest_event_else_the_latest_censoring():
    # patient 0: FVC event at 10, DLCO censored at 14 -> event 10; patient 1: FVC censored 6, DLCO censored 11 ->
    # censored 11; patient 2: no DLCO baseline, FVC event at 8 -> event 8
    fvc = _decline([80, 80, 80], [(0, 10, 70), (1, 6, 79), (2, 8, 70)], kind="absolute", threshold=5)
    dlco = _decline([60, 60, np.nan], [(0, 14, 59), (1, 11, 55)], kind="absolute", threshold=10)
    u = combine_any([fvc, dlco])
    assert u.event.tolist() == [True, False, True]
    assert u.months.tolist() == [10.0, 11.0, 8.0]
    assert u.has_baseline.tolist() == [True, True, True]


def test_bad_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be 'relative' or 'absolute'"):
        _decline([80], [(0, 6, 70)], kind="percent", threshold=5)


def test_endpoint_counts_and_kaplan_meier_by_hand():
    # arm A: events at 6 and 18, censored at 12 -> S(6) = 2/3, S(12) = 2/3, S(18) = 0 (1 at risk, 1 event)
    # arm B: censored at 6, no follow-up test (censored at 0), no baseline (not analysed)
    times = _decline([80, 80, 80, 80, 80, np.nan],
                     [(0, 6, 70), (1, 12, 79), (2, 18, 70), (3, 6, 79), (5, 6, 50)], kind="absolute", threshold=5)
    arm = np.array(["A", "A", "A", "B", "B", "B"])
    res = progression_endpoint("fvc_absolute_5", "FVC", (), times, arm, ["A", "B"], "B", confirmed=False,
                               window=None, report_months=(0, 6, 12, 18))
    counts = res.counts.set_index("arm")
    assert counts.loc["A"].tolist() == [3, 0, 0, 3, 2]  # n, no_baseline, no_follow_up_test, analysed, events
    assert counts.loc["B"].tolist() == [3, 1, 1, 2, 0]
    at = res.km.at_times.set_index(["arm", "time"])["survival"]
    assert at[("A", 6.0)] == pytest.approx(2 / 3, abs=EXACT)
    assert at[("A", 12.0)] == pytest.approx(2 / 3, abs=EXACT)
    assert at[("A", 18.0)] == pytest.approx(0.0, abs=EXACT)
    assert res.km.cox is None  # arm B has no event: the hazard ratio is not estimable (infinite)
    assert res.to_dict()["logrank"]["test"]


def _cohort(rng: np.random.Generator, n_per_arm: int = 60, fvc_drop_per_month=(0.0, 0.6),
            ml_per_year=(0.0, -150.0)):
    """Hand-made cohort tables: arm AZA stable, MMF declining (% predicted and litres); tests every 6 months."""
    rows, pts = [], []
    for k, arm in enumerate(["AZA", "MMF"]):
        for i in range(n_per_arm):
            pid = f"{arm}{i}"
            base_fvc, base_dlco, base_l = rng.normal(70, 8), rng.normal(55, 8), rng.normal(2.6, 0.4)
            pts.append({"patient_id": pid, "arm": arm, "baseline_fvc_pct_pred": base_fvc,
                        "baseline_dlco_pct_pred": base_dlco, "sex": rng.choice(["F", "M"]),
                        "age": rng.normal(55, 10), "antisynthetase": bool(rng.random() < 0.5),
                        "smoking": rng.choice(["ever", "never"])})
            rows += [(pid, "fvc_pct_pred", 0.0, base_fvc), (pid, "dlco_pct_pred", 0.0, base_dlco),
                     (pid, "fvc_l", 0.0, base_l)]
            u = rng.normal(0, 30)  # the patient's own slope deviation, mL/year
            for m in (6.0, 12.0, 18.0, 24.0, 30.0, 36.0):
                rows.append((pid, "fvc_pct_pred", m, base_fvc - fvc_drop_per_month[k] * m + rng.normal(0, 2)))
                rows.append((pid, "dlco_pct_pred", m, base_dlco + rng.normal(0, 3)))
                rows.append((pid, "fvc_l", m, base_l + (ml_per_year[k] + u) * m / 12 / 1000 + rng.normal(0, 0.05)))
    return pd.DataFrame(pts), pd.DataFrame(rows, columns=["patient_id", "outcome", "months", "value"])


@pytest.fixture(scope="module")
def planted():
    patients, outcomes = _cohort(np.random.default_rng(20261203))
    return study_progression(patients, outcomes, load_protocol("huapaya2019"))


def test_planted_decline_is_detected(planted):
    by = {e.name: e for e in planted.endpoints}
    assert list(by) == ["fvc_relative_10", "fvc_absolute_5", "dlco_relative_15", "ppf"]
    e = by["fvc_absolute_5"]
    counts = e.counts.set_index("arm")["events"]
    # MMF loses 0.6 points a month: 5 points by ~8 months, so nearly every MMF patient declines by month 18;
    # AZA (noise SD 2 around a flat line) rarely drops 5 points
    assert counts["MMF"] >= 55 and counts["AZA"] <= 15
    assert e.km.logrank.p < 1e-6
    assert e.km.cox.hazard_ratio < 1 and e.km.cox.ci_high < 1  # AZA vs MMF
    # DLCO is flat in both arms: no difference planted
    assert by["dlco_relative_15"].km.logrank.p > 0.001


def test_planted_fvc_slope_in_ml_per_year(planted):
    s = planted.fvc_slope
    assert s.available and s.reason is None
    assert s.formula.startswith("fvc_ml ~ months * arm + female + age + antisynthetase + ever_smoker")
    t = s.slopes.set_index("term")
    # planted: AZA 0, MMF -150 mL/year, AZA - MMF +150; each 95% CI must cover it
    for term, truth in (("AZA", 0.0), ("MMF", -150.0), ("AZA - MMF", 150.0)):
        assert t.loc[term, "ci_low"] <= truth <= t.loc[term, "ci_high"], (term, t.loc[term].to_dict())
    assert t.loc["AZA - MMF", "p"] < 1e-6


def test_fvc_slope_not_available_without_litres():
    patients, outcomes = _cohort(np.random.default_rng(1), n_per_arm=12)
    res = study_progression(patients, outcomes[outcomes["outcome"] != "fvc_l"], load_protocol("huapaya2019"))
    assert not res.fvc_slope.available and "pft.fvc_l" in res.fvc_slope.reason
    assert res.to_dict()["fvc_slope"]["slopes"] is None


def test_results_block_conforms_to_the_schema(planted):
    doc = {"progression": planted.to_dict()}
    problems = [p for p in load_schema().validate_results(doc) if p.startswith("results.progression")]
    assert problems == []
    e = doc["progression"]["endpoints"][3]
    assert e["name"] == "ppf" and e["window_months"] == 12.0
    assert [c["measure"] for c in e["criteria"]] == ["fvc", "dlco"]
    assert set(e) >= {"counts", "km", "at_times", "medians", "logrank_p", "logrank", "cox_hr"}
    assert max(r["time"] for r in e["km"]) <= 12.0  # nothing beyond the PPF window
    tables = planted.tables()
    assert list(tables) == ["progression_at_months", "progression_counts", "progression_fvc_slope"]
    schema = load_schema()
    for name, frame in tables.items():
        assert set(schema.table_columns(name, list(frame.columns))) == set(frame.columns), name


def _with_progression(text: str, table: str) -> str:
    start = text.index("[progression]")
    end = text.index("# mg of each glucocorticoid")
    return text[:start] + table + "\n" + text[end:]


@pytest.mark.parametrize("table, message", [
    ('[progression]\n[[progression.endpoints]]\nmeasure = "fev1"\nkind = "relative"\nthreshold = 10\n',
     r"progression.endpoints\[0\].measure"),
    ('[progression]\n[[progression.endpoints]]\nmeasure = "fvc"\nkind = "relative"\nthreshold = 0\n',
     r"progression.endpoints\[0\].threshold"),
    ('[progression]\n[[progression.endpoints]]\nmeasure = "fvc"\nkind = "absolute"\nthreshold = 5\n'
     '[[progression.endpoints]]\nmeasure = "fvc"\nkind = "absolute"\nthreshold = 5\n',
     r"progression.endpoints\[1\]: name 'fvc_absolute_5' is taken by progression.endpoints\[0\]"),
    ('[progression]\n[[progression.endpoints]]\nmeasure = "fvc"\nkind = "absolute"\nthreshold = 5\n'
     'window_months = 72\n', r"progression.endpoints\[0\].window_months: 72 is beyond follow_up.max_months"),
    ('[progression]\nfvc_slope = false\n', r"progression: no endpoints, ppf = false and fvc_slope = false"),
    ('[progression]\nppf = "yes"\n', r"progression.ppf: must be true or false"),
    ('[progression]\nppf_windw = 12\n', r"progression.ppf_windw: unknown key"),
])
def test_bad_progression_settings_name_the_key(table, message):
    with pytest.raises(ProtocolError, match=message):
        parse_protocol(_with_progression(builtin_protocol_text("huapaya2019"), table))


def test_progression_settings_round_trip_and_cohort_outcomes():
    p = load_protocol("huapaya2019")
    assert parse_protocol(p.to_toml()) == p
    assert [e.key for e in p.progression.endpoints] == ["fvc_relative_10", "fvc_absolute_5", "dlco_relative_15"]
    assert p.progression.ppf and p.progression.ppf_window_months == 12
    # the cohort carries FVC in litres for the slope without it being a modelled [[outcomes]] entry
    # the outcomes, then progression's FVC in litres, then the z-scores of [lung_function] zscore_trajectories
    assert p.cohort_outcomes() == ("fvc_pct_pred", "dlco_pct_pred", "prednisone_mg", "fvc_l", "fvc_zscore",
                                   "dlco_zscore")
    assert [o.name for o in p.outcomes] == ["fvc_pct_pred", "dlco_pct_pred", "prednisone_mg"]


def test_report_has_the_progression_section(planted, tmp_path):
    from report_fixtures import fake_study_result

    from ildstudy.report.figures import render_figures
    from ildstudy.report.html import render_html

    result = dataclasses.replace(fake_study_result(), progression=planted)
    figures = render_figures(result, tmp_path / "figures")
    assert "progression_km" in [f.name for f in figures]
    html = render_html(result, figures)
    section = html[html.index('<section id="progression">'):]
    section = section[:section.index("</section>")]
    assert "Physiological criterion of PPF" in section and "physiological criterion only" in section
    assert "Annualised FVC slope, mL/year" in section
    assert html.index('id="discontinuation"') < html.index('id="progression"') < html.index('id="appendix"')
    assert "results.progression" not in html
    without = render_html(fake_study_result(), render_figures(fake_study_result(), tmp_path / "f2"))
    assert 'id="progression"' not in without


def test_test_rows_of_an_unknown_patient_are_refused():
    with pytest.raises(ValueError, match=r"patient indices must be in 0 \.\. 0"):
        _decline([80], [(1, 6, 70)], kind="absolute", threshold=5)


def _loop_first_decline(base, pat, t, v, kind, threshold, confirmed, window):
    """The per-patient loop first_decline used until 2026-12-03 (the oracle of the vectorised one)."""
    keep = ~np.isnan(v)
    pat, t, v = pat[keep].astype(np.int64), t[keep], v[keep]
    order = np.lexsort((t, pat))
    pat, t, v = pat[order], t[order], v[order]
    n = len(base)
    out_t, out_e = np.zeros(n), np.zeros(n, dtype=bool)
    n_tests = np.bincount(pat, minlength=n)
    b = base[pat]
    drop = 100 * (b - v) / b if kind == "relative" else b - v
    hit = drop >= threshold - 1e-9
    inside = np.ones_like(t, dtype=bool) if window is None else t <= window + 1e-9
    starts = np.r_[0, np.cumsum(n_tests)[:-1]]
    for i in np.flatnonzero(n_tests > 0):
        s = slice(starts[i], starts[i] + n_tests[i])
        h, w, ti = hit[s], inside[s], t[s]
        q = h & w
        if confirmed:
            q = q & np.r_[h[1:], False]
        if q.any():
            out_t[i], out_e[i] = ti[np.argmax(q)], True
        elif w.any():
            out_t[i] = ti[w].max()
    has = ~np.isnan(base)
    return np.where(has, out_t, np.nan), out_e & has


@pytest.mark.parametrize("confirmed", [False, True])
@pytest.mark.parametrize("window", [None, 12.0])
def test_vectorised_first_decline_equals_the_per_patient_loop(confirmed, window):
    rng = np.random.default_rng(11 + int(confirmed) + (0 if window is None else 2))
    events = 0
    for rep in range(150):
        n, m = int(rng.integers(1, 40)), int(rng.integers(0, 200))
        base = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(40, 100, n))
        pat = rng.integers(0, n, m)
        t = np.round(rng.uniform(0.1, 60, m), 0 if rep % 2 else 3)  # whole months: many tied test times
        v = np.where(rng.random(m) < 0.05, np.nan, rng.uniform(30, 105, m))
        for kind, thr in (("relative", 10.0), ("absolute", 5.0)):
            got = first_decline(base, pat, t, v, kind=kind, threshold=thr, confirmed=confirmed, window=window)
            months, event = _loop_first_decline(base, pat, t, v, kind, thr, confirmed, window)
            np.testing.assert_array_equal(got.months, months)
            np.testing.assert_array_equal(got.event, event)
            events += int(event.sum())
    assert events > 100
