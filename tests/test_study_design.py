"""Issue 15's study-design settings inside the study run: flexible time in the protocol, the minimum at risk,
marginal-mean weighting, rows dropped per model, the primary endpoint with adjusted exploratory p-values, and the
sensitivity analyses side by side.

The numerics are checked against R elsewhere (splines and emtrends: test_lmm_reference.py / test_lmm_time.py;
weights and p-value adjustment: test_lmm_emmeans_options.py); here each expectation is recomputed independently
(a separate run of the variant protocol, Holm's rule written out, the missing covariates counted from the cohort)
so the tests fail when the study wires the wrong thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ildstudy
from ildstudy.analysis.trajectories import outcome_formula
from ildstudy.data import load_registry
from ildstudy.errors import ProtocolError
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol

REL = 1e-9


def _variant(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BASE = builtin_protocol_text("huapaya2019")
NO_SENSITIVITY = BASE.split("\n[[sensitivity]]", 1)[0]


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    from ildstudy.synth import write_registry

    root = tmp_path_factory.mktemp("design") / "registry"
    write_registry(root, n_patients=None, seed=2019)
    return root


@pytest.fixture(scope="module")
def study(registry, tmp_path_factory):
    result = ildstudy.run_study("huapaya2019", registry)
    out = tmp_path_factory.mktemp("design_out") / "out"
    ildstudy.write_outputs(result, out)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return result, out, doc


# -- protocol settings -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("old,new,message", [
    ('time_model = "linear"\nrandom_effects', 'time_model = "natural_spline"\nrandom_effects', "needs knots"),
    ('time_model = "linear"\nrandom_effects', 'time_model = "linear"\nknots = [12]\nrandom_effects',
     "knots are used only with"),
    ('time_model = "linear"\nrandom_effects', 'time_model = "piecewise"\nknots = [60]\nrandom_effects',
     "outcomes[0].knots: month 60 is not before follow_up.max_months"),
    ('time_model = "linear"\nrandom_effects', 'time_model = "piecewise"\nknots = [24, 12]\nrandom_effects',
     "increasing"),
    ('outcome = "fvc_pct_pred"\nmonth = 36', 'outcome = "fev1"\nmonth = 36', "analysis.primary.outcome"),
    ('outcome = "fvc_pct_pred"\nmonth = 36', 'outcome = "fvc_pct_pred"\nmonth = 30', "analysis.primary.month"),
    ('adjust = "holm"', 'adjust = "tukey"', "analysis.multiplicity.adjust"),
    ('weights = "equal"\ncov_keep', 'weights = "prop"\ncov_keep', "analysis.marginal_means.weights"),
    ("min_at_risk = 10", "min_at_risk = 0", "analysis.min_at_risk"),
])
def test_bad_design_settings_are_refused_naming_the_key(old, new, message):
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_protocol(_variant(NO_SENSITIVITY, old, new))


@pytest.mark.parametrize("changes,message", [
    ('{ "follow_up.analyses" = "intention_to_treat" }', r'changes."follow_up.analyses": unknown key'),
    ('{ "follow_up.analysis" = "per_protocol" }', "follow_up.analysis"),
    ('{ "arms.name" = "X" }', "arms[1].name: 'X' is the name of arms[0] too"),
    ('{ "nothing.here" = 1 }', "'nothing' is not a table"),
])
def test_a_bad_sensitivity_analysis_is_an_error_when_the_protocol_is_loaded(tmp_path, changes, message):
    text = NO_SENSITIVITY + f'\n[[sensitivity]]\nname = "bad"\nchanges = {changes}\n'
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"p\.toml: sensitivity\[0\] \(bad\)") as err:
        load_protocol(path)
    assert message in str(err.value)


def test_time_models_become_lme4_formulas():
    p = parse_protocol(NO_SENSITIVITY)
    ns = p.outcomes[0].model_copy(update={"time_model": "natural_spline", "knots": (12.0, 36.0)})
    pl = p.outcomes[0].model_copy(update={"time_model": "piecewise", "knots": (12.0,)})
    assert outcome_formula(ns, p).startswith(
        "fvc_pct_pred ~ ns(months, knots = c(12, 36), Boundary.knots = c(0, 60)) * arm + female")
    assert outcome_formula(pl, p).startswith("fvc_pct_pred ~ pl(months, knots = c(12)) * arm + female")
    assert outcome_formula(ns, p).endswith("+ (1 + months | patient)")


# -- the study run -----------------------------------------------------------------------------------------------

def _holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down, written out: the i-th smallest p times (m - i), made monotone, capped at 1."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    adj = np.maximum.accumulate(np.array([(m - i) * p[j] for i, j in enumerate(order)]))
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def test_primary_endpoint_is_unadjusted_and_the_rest_holm_adjusted_per_outcome(study):
    result, _, doc = study
    for name, o in doc["outcomes"].items():
        rows = pd.DataFrame(o["arm_differences"])
        primary = rows["role"] == "primary"
        if name == "fvc_pct_pred":
            assert rows.loc[primary, "month"].tolist() == [36.0]
            assert rows.loc[primary, "p_adjusted"].tolist() == rows.loc[primary, "p"].tolist()
        else:
            assert not primary.any()
        family = rows[~primary]
        np.testing.assert_allclose(family["p_adjusted"], _holm(family["p"].to_numpy(float)), rtol=REL)
        assert (family["p_adjusted"] >= family["p"] - 1e-15).all()


def test_methods_and_report_state_the_primary_endpoint_the_adjustment_and_the_weighting(study):
    _, out, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "The primary endpoint was the difference in FVC % predicted at 36 months" in html
    assert "adjusted by Holm&#39;s method within each outcome" in html
    assert 'emmeans weights = &#34;equal&#34;' in html or "emmeans weights = \"equal\"" in html
    assert ">Holm p</th>" in html
    assert 'title="the protocol\'s primary endpoint">primary</span>' in html


def test_models_report_no_dropped_rows_on_complete_data(study):
    _, _, doc = study
    for o in doc["outcomes"].values():
        assert o["model"]["n_dropped"] == 0
        assert o["model"]["n_dropped_patients"] == 0
        assert o["model"]["dropped_reasons"] == {}
        assert o["model"]["marginal_means"]["weights"] == "equal"
        assert o["model"]["marginal_means"]["cov_keep"] == 2


def test_missing_covariates_are_counted_per_model_and_named(registry, tmp_path):
    import shutil

    from ildstudy.cohort import build_cohort

    copy = tmp_path / "registry"
    shutil.copytree(registry, copy)
    pts = pd.read_csv(copy / "patients.csv", dtype=str, keep_default_na=False)
    ids = pts["patient_id"].iloc[::9].tolist()
    pts.loc[pts["patient_id"].isin(ids), "smoking_status"] = ""
    pts.to_csv(copy / "patients.csv", index=False)
    p = parse_protocol(NO_SENSITIVITY)
    result = ildstudy.run_study(p, copy)
    cohort = build_cohort(load_registry(copy), p)
    for name, o in result.outcomes.items():
        rows = cohort.outcomes[cohort.outcomes["outcome"] == name]
        missing = rows["patient_id"].isin(ids)
        assert o.model["n_dropped"] == int(missing.sum()) > 0
        assert o.model["dropped_reasons"] == {"smoking": int(missing.sum())}
        assert o.model["n_dropped_patients"] == rows.loc[missing, "patient_id"].nunique()
        assert o.model["n_obs"] == len(rows) - int(missing.sum())
    from ildstudy.report.text import methods_paragraphs

    html_text = " ".join(methods_paragraphs(result))
    assert "left out of the model" in html_text and "smoking" in html_text


def test_sensitivity_rows_equal_separate_runs_of_each_variant(study, registry):
    result, _, doc = study
    s = doc["sensitivity"]
    names = [a["analysis"] for a in s["analyses"] if a["kind"] != "confounding"]
    assert names == ["primary", "published_reading", "intention_to_treat", "baseline_window_60",
                     "baseline_window_180", "with_follow_up_pft", "natural_spline_time", "baseline_lung_function",
                     "gli_global_2022"]
    assert [a["kind"] for a in s["analyses"][:2]] == ["primary", "sensitivity"]
    assert all(a["status"] == "run" for a in s["analyses"])
    assert s["month"] == 36.0
    primary = s["analyses"][0]
    assert {a: primary[f"n_{a}"] for a in result.arms} == result.arms
    # the published reading, run on its own
    published = ildstudy.run_study("huapaya2019_published", registry)
    row = s["analyses"][1]
    assert {a: row[f"n_{a}"] for a in published.arms} == published.arms
    for name, o in published.outcomes.items():
        d = o.arm_differences.set_index("month").loc[36.0]
        got = [c for c in s["contrasts"] if c["analysis"] == "published_reading" and c["outcome"] == name][0]
        assert got["estimate"] == pytest.approx(float(d["estimate"]), rel=REL)
        assert got["p"] == pytest.approx(float(d["p"]), rel=REL)
    ae = {r["arm"]: r for r in s["adverse_events"] if r["analysis"] == "published_reading"}
    by_arm = published.adverse_events.by_arm.set_index("arm")
    assert {a: ae[a]["patients_with_event"] for a in ae} == {a: int(by_arm.loc[a, "patients_with_event"]) for a in ae}


def test_the_spline_sensitivity_fits_ns_time(study, registry):
    result, _, doc = study
    p = load_protocol("huapaya2019").sensitivity_protocol("natural_spline_time")
    assert all(o.time_model == "natural_spline" and o.knots == (12.0, 36.0) for o in p.outcomes)
    alone = ildstudy.run_study(p, registry)
    assert "ns(months, knots = c(12, 36), Boundary.knots = c(0, 60)) * arm" in alone.outcomes["fvc_pct_pred"].formula
    got = {c["outcome"]: c for c in doc["sensitivity"]["contrasts"] if c["analysis"] == "natural_spline_time"}
    for name, o in alone.outcomes.items():
        d = o.arm_differences.set_index("month").loc[36.0]
        assert got[name]["estimate"] == pytest.approx(float(d["estimate"]), rel=REL)
        # curved time: slopes at every contrast month
        assert o.slopes["month"].notna().all()


def test_report_shows_the_sensitivity_table_and_forest(study):
    _, out, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<section id="sensitivity">' in html
    assert "Published reading: later exposure excludes, follow-up PFT required" in html
    assert (out / "figures" / "sensitivity_forest.svg").exists()
    for t in ("sensitivity_analyses", "sensitivity_contrasts", "sensitivity_adverse_events"):
        assert (out / "tables" / f"{t}.csv").exists()


def test_a_variant_that_cannot_run_is_a_row_with_the_reason(registry, tmp_path):
    text = NO_SENSITIVITY + ('\n[[sensitivity]]\nname = "tiny"\nlabel = "Only overlap myositis"\n'
                             'changes = { "population.diagnoses" = ["overlap"] }\n')
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    result = ildstudy.run_study(load_protocol(path), registry)
    rows = result.sensitivity.analyses.set_index("analysis")
    assert rows.loc["tiny", "status"] == "not run"
    assert "fewer than" in rows.loc["tiny", "reason"] or "empty" in rows.loc["tiny", "reason"]
    assert rows.loc["primary", "status"] == "run"


def test_model_only_variants_reuse_the_primary_cohort(registry, monkeypatch):
    """Spline time and extra covariates change only the model: their cohort is the primary one (built once);
    every variant that changes a cohort rule gets its own build, on the one connection of the run."""
    import ildstudy.analysis.study as study_mod

    p = load_protocol("huapaya2019")
    key = p.cohort_key()
    same = {s.name for s in p.sensitivity if p.sensitivity_protocol(s.name).cohort_key() == key}
    assert same == {"natural_spline_time", "baseline_lung_function"}
    built, conns = [], set()
    real = study_mod.build_cohort

    def counting(source, protocol):
        built.append(protocol.name)
        conns.add(id(source))
        return real(source, protocol)

    import ildstudy.cohort.lungfunction as lung_mod

    derived = []
    real_derive = lung_mod.derive_pft

    def counting_derive(pft, patients, settings):
        derived.append(settings.model_dump_json())
        return real_derive(pft, patients, settings)

    monkeypatch.setattr(study_mod, "build_cohort", counting)
    monkeypatch.setattr(lung_mod, "derive_pft", counting_derive)
    result = ildstudy.run_study(p, registry)
    assert len(built) == 1 + len(p.sensitivity) - len(same)
    assert len(conns) == 1
    # the pft table is derived once per [lung_function] setting in a row (the connection's memo): the check of the
    # primary and the cohort-changing variants, then gli_global_2022 (the last variant that builds a cohort)
    assert len(derived) == 2 and derived[0] != derived[1]
    rows = result.sensitivity.analyses.set_index("analysis")
    assert (rows.loc[["natural_spline_time", "baseline_lung_function"], "status"] == "run").all()


def test_cohort_key_counts_settings_the_cohort_reads():
    p = load_protocol("huapaya2019")
    spec = p.sensitivity_protocol
    assert spec("baseline_window_60").cohort_key() != p.cohort_key()
    assert spec("intention_to_treat").cohort_key() != p.cohort_key()
    assert spec("gli_global_2022").cohort_key() != p.cohort_key()
    relabelled = p.model_copy(update={"title": "another title", "name": "x"})
    assert relabelled.cohort_key() == p.cohort_key()
