"""Confounding by indication (issue 12): propensity score, weights, matching, balance, weighted and matched outcome
models and E-values, against the fixtures of tests/reference/confounding_reference.R (R 4.2, MatchIt 4.5.1,
sandwich 3.0-2, survival 3.5-3, survey 4.1-1; see tests/reference/confounding/reference.json "versions").

The data set (tests/reference/confounding/data) is simulated there with confounding by indication: lower baseline
FVC / DLCO raise the chance of AZA.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.confounding.balance import balance_table, sample_sizes
from ildstudy.analysis.confounding.evalue import evalue_ci, evalue_rr, evalues_md
from ildstudy.analysis.confounding.matching import nearest_match
from ildstudy.analysis.confounding.outcomes import risk_difference, weighted_cox, weighted_km, weighted_ls
from ildstudy.analysis.confounding.propensity import fit_propensity
from ildstudy.analysis.confounding.weights import kish_ess, psweights
from ildstudy.lmm.design import build_design
from ildstudy.lmm.formula import parse_formula

HERE = Path(__file__).parent / "reference" / "confounding"
REF = json.loads((HERE / "reference.json").read_text())

#: Named tolerances (absolute unless said).
COEF_TOL = 1e-8        # IRLS / WLS coefficients vs glm (epsilon = 1e-14) / lm
COEF_DEFAULT_TOL = 1e-5  # vs glm at its default epsilon = 1e-8 (what a user sees)
WEIGHT_TOL = 1e-9      # weights (relative)
SE_TOL = 1e-8          # sandwich / robust SEs (relative)
SMD_TOL = 1e-9
COX_TOL = 1e-7         # coxph at eps = 1e-12
#: Fixture settings where MatchIt 4.5.1 itself is wrong (see test_matching_reproduces_matchit).
KNOWN_451_BUG = {"ratio3_replace"}


@pytest.fixture(scope="module")
def data():
    pts = pd.read_csv(HERE / "data" / "patients.csv")
    X = pd.get_dummies(pts["diagnosis"].astype(pd.CategoricalDtype(["ASyS", "DM", "PM", "overlap"])),
                       prefix="diagnosis", prefix_sep="", drop_first=True).astype(float)
    cov = pd.concat([pts[["female", "age", "antisynthetase", "ever_smoker"]].astype(float), X,
                     pts[["baseline_fvc_pct_pred", "baseline_dlco_pct_pred"]]], axis=1)
    fit = fit_propensity(pts["treat"].to_numpy(), cov)
    return pts, cov, fit


def test_propensity_matches_glm(data):
    # R: glm(treat ~ female + age + ... , family = binomial, control = glm.control(epsilon = 1e-14))
    _, _, fit = data
    ref = REF["ps"]["tight"]
    assert list(fit.terms) == ref["term"]
    np.testing.assert_allclose(fit.coef, ref["estimate"], atol=COEF_TOL, rtol=0)
    np.testing.assert_allclose(fit.se, ref["se"], rtol=SE_TOL)
    np.testing.assert_allclose(fit.ps, REF["ps"]["ps"], atol=COEF_TOL)
    np.testing.assert_allclose(fit.linear_predictor, REF["ps"]["linear_predictor"], atol=COEF_TOL)
    np.testing.assert_allclose(fit.coef, REF["ps"]["default"]["estimate"], atol=COEF_DEFAULT_TOL)   # glm default
    assert fit.converged


@pytest.mark.parametrize("key, design, kw", [
    ("iptw_ate", "iptw_ate", {"stabilize": False}),
    ("iptw_ate_stabilised", "iptw_ate", {}),
    ("iptw_att", "iptw_att", {"stabilize": False}),
    ("iptw_att_stabilised", "iptw_att", {}),
    ("overlap", "overlap", {}),
    ("iptw_ate_trim_0.1", "iptw_ate", {"trim": 0.1}),
    ("iptw_ate_truncate_0.95", "iptw_ate", {"truncate": 0.95}),
    ("iptw_att_truncate_0.95", "iptw_att", {"truncate": 0.95}),
])
def test_weights_match_the_base_r_formulas(data, key, design, kw):
    pts, _, fit = data
    w = psweights(fit.ps, fit.treated, design, **kw)
    np.testing.assert_allclose(w.weights, REF["weights"][key], rtol=WEIGHT_TOL, atol=1e-12)
    if "truncate" in kw:
        cap = REF["weights"]["cap_ate_0.95" if design == "iptw_ate" else "cap_att_0.95"]
        assert w.cap == pytest.approx(cap, rel=WEIGHT_TOL)
        assert w.truncated.sum() > 0


@pytest.mark.parametrize("name", ["ratio1_noreplace", "ratio2_noreplace", "ratio1_replace", "ratio3_replace"])
def test_matching_reproduces_matchit(data, name):
    # R: matchit(f, method = "nearest", distance = "glm", link = "linear.logit", caliper = 0.2, ratio, replace)
    _, _, fit = data
    ref = REF["matching"][name]
    np.testing.assert_allclose(fit.linear_predictor, ref["distance"], atol=1e-6)   # MatchIt's glm: default eps
    # the fixtures match on 1e6 x the linear predictor: MatchIt 4.5.1 truncates |differences| to integers (its
    # C abs(), fixed in 4.5.4, #163); what the installed matchit(distance = "glm") returns is kept as legacy_n_matched
    assert ref["legacy_n_matched"] != ref["n_matched"]
    m = nearest_match(fit.linear_predictor, fit.treated, ratio=ref["ratio"], replace=ref["replace"], caliper_sd=0.2)
    assert m.caliper == pytest.approx(ref["caliper"], rel=1e-6)
    want = np.array([[-1 if v is None else v for v in row] for row in ref["match_matrix"]])
    if name in KNOWN_451_BUG:
        # MatchIt 4.5.1 compares 0-based candidates with the 1-based matches already made (nn_matchC_vec.cpp's
        # check_in, fixed in 4.5.3, #159): with replacement and ratio > 1 it matches the same control again.
        np.testing.assert_array_equal(m.matches[:, 0], want[:, 0])       # the first round is unaffected
        assert (want[:, 1:] == want[:, :1]).all()                        # 4.5.1: k copies of the first match
        assert all(len(set(r[r >= 0])) == len(r[r >= 0]) for r in m.matches)   # ildstudy: k distinct controls
        return
    np.testing.assert_array_equal(m.matches, want)
    np.testing.assert_allclose(m.weights, ref["weights"], rtol=1e-12)
    if ref["subclass"] is None:
        assert (m.subclass == -1).all()
    else:   # the same partition into matched sets (MatchIt numbers them differently)
        ours = pd.Series(m.subclass).where(m.subclass >= 0)
        theirs = pd.Series(ref["subclass"], dtype="float")
        assert ours.isna().equals(theirs.isna())
        pairs = pd.crosstab(ours.dropna(), theirs.dropna())
        assert ((pairs > 0).sum(axis=1) == 1).all() and ((pairs > 0).sum(axis=0) == 1).all()
    # summary(m)$sum.matched: Std. Mean Diff. (treated SD of the full sample) and Var. Ratio
    _, cov, _ = data
    bal = balance_table(cov, fit.treated, m.weights, "ATT")
    sm = ref["summary_matched"]
    ref_smd = dict(zip(sm["covariate"], sm["std_mean_diff"]))
    ref_vr = dict(zip(sm["covariate"], sm["var_ratio"]))
    for row in bal.itertuples():
        assert row.smd_after == pytest.approx(ref_smd[row.covariate], abs=SMD_TOL)
        if row.type == "numeric":
            assert row.variance_ratio_after == pytest.approx(ref_vr[row.covariate], rel=1e-9)


@pytest.mark.parametrize("design, estimand", [("iptw_ate", "ATE"), ("iptw_att", "ATT"), ("overlap", "ATO"),
                                              ("matching", "ATT")])
def test_balance_uses_cobalts_definitions(data, design, estimand):
    pts, cov, fit = data
    w = (nearest_match(fit.linear_predictor, fit.treated).weights if design == "matching"
         else psweights(fit.ps, fit.treated, design).weights)
    bal = balance_table(cov, fit.treated, w, estimand)
    ref = REF["balance"][design]
    for got, want in zip(bal.itertuples(), ref["rows"]):
        assert got.covariate == want["covariate"]
        assert got.smd_before == pytest.approx(want["smd_before"], abs=SMD_TOL)
        assert got.smd_after == pytest.approx(want["smd_after"], abs=SMD_TOL)
        if want["variance_ratio_after"] is not None:
            assert got.variance_ratio_before == pytest.approx(want["variance_ratio_before"], rel=1e-9)
            assert got.variance_ratio_after == pytest.approx(want["variance_ratio_after"], rel=1e-9)
    sizes = sample_sizes(fit.treated, w)
    assert sizes["treated"]["ess"] == pytest.approx(ref["ess_treated"], rel=1e-12)
    assert sizes["reference"]["ess"] == pytest.approx(ref["ess_reference"], rel=1e-12)
    if design == "overlap":   # overlap weights balance every covariate of the PS model exactly (Li et al. 2018)
        assert np.abs(bal["smd_after"]).max() < 1e-8


def _design_weights(pts, fit, design):
    if design == "crude":
        return np.ones(len(pts)), pts["id"].to_numpy()
    if design == "matching":
        m = nearest_match(fit.linear_predictor, fit.treated)
        return m.weights, np.where(m.subclass >= 0, m.subclass.astype(str), pts["id"].to_numpy())
    return psweights(fit.ps, fit.treated, design).weights, pts["id"].to_numpy()


@pytest.mark.parametrize("design", ["crude", "iptw_ate", "iptw_att", "overlap", "matching"])
def test_outcome_models_match_lm_vcovcl_coxph_survfit(data, design):
    pts, _, fit = data
    w, cluster = _design_weights(pts, fit, design)
    ref = REF["outcomes"][design]
    # trajectory: lm(fvc ~ months * arm + covariates, weights = w) + vcovCL(cluster = ~ id | ~ subclass, "HC1")
    long = pd.read_csv(HERE / "data" / "measurements.csv").merge(pts, on="id").sort_values(["id", "months"],
                                                                                           kind="stable")
    by_id = dict(zip(pts["id"], range(len(pts))))
    idx = long["id"].map(by_id).to_numpy()
    f = parse_formula("fvc_pct_pred ~ months * arm + female + age + antisynthetase + ever_smoker + (1 | id)")
    d = build_design(f, long, factor_levels={"arm": ["MMF", "AZA"]})
    r = weighted_ls(d.X, d.y, w[idx], cluster[idx], d.fixed_names)
    t = ref["trajectory"]
    assert list(r.terms) == t["term"]
    np.testing.assert_allclose(r.coef, t["estimate"], atol=COEF_TOL)
    np.testing.assert_allclose(np.sqrt(np.diag(r.vcov)), t["se"], rtol=SE_TOL)
    assert (r.n_obs, r.n_clusters) == (t["n_obs"], t["n_clusters"])
    L = np.zeros(len(r.terms)); L[r.terms.index("armAZA")] = 1; L[r.terms.index("months:armAZA")] = 36
    c = r.contrast(L)
    assert c["estimate"] == pytest.approx(t["contrast_36"], abs=COEF_TOL)
    assert c["se"] == pytest.approx(t["contrast_36_se"], rel=SE_TOL)
    assert r.residual_sd == pytest.approx(t["residual_sd"], rel=1e-10)
    # adverse events: lm(ae ~ treat, weights = w) + vcovCL(type = "HC1")
    a = ref["adverse_events"]
    rd = risk_difference(pts["ae"].to_numpy(), fit.treated, w, cluster)
    assert rd["estimate"] == pytest.approx(a["rd"], abs=COEF_TOL)
    assert rd["se"] == pytest.approx(a["rd_se"], rel=SE_TOL)
    assert rd["rr"] == pytest.approx(a["rr"], rel=1e-10)
    assert rd["rr_se_log"] == pytest.approx(a["rr_se_log"], rel=SE_TOL)
    # survey::svyglm's SE is the HC0 cluster sandwich times G / (G - 1): HC1's without the (n - 1) / (n - k) factor
    n, G = a["n"], len(set(cluster[w > 0]))
    assert rd["se"] / np.sqrt((n - 1) / (n - 2)) == pytest.approx(a["svyglm_rd_se"], rel=1e-6)
    # survfit(Surv(time, status) ~ arm, weights = w) at 12, 24, 36 months
    km = ref["km"]
    for arm, sel in (("armf=MMF", ~fit.treated), ("armf=AZA", fit.treated)):
        got = weighted_km(pts["time"].to_numpy()[sel], pts["status"].to_numpy()[sel] == 1, w[sel], [12, 24, 36])
        want = [s for s, st in zip(km["surv"], km["strata"]) if st == arm]
        np.testing.assert_allclose(got, want, atol=1e-12)
    # coxph(Surv(time, status) ~ treat, weights = w, robust = TRUE, cluster = ...)
    cx = weighted_cox(pts["time"].to_numpy(), pts["status"].to_numpy() == 1, fit.treated, w, cluster)
    assert cx.coef == pytest.approx(ref["cox"]["coef"], abs=COX_TOL)
    assert cx.robust_se == pytest.approx(ref["cox"]["robust_se"], rel=COX_TOL)


def test_evalues_follow_vanderweele_ding():
    ref = REF["evalues"]
    for rr, want in zip(ref["rr"]["input"], ref["rr"]["evalue"]):
        assert evalue_rr(rr) == pytest.approx(want, rel=1e-12)
    md = ref["md"]
    got = evalues_md(md["estimate"], md["se"], md["sd"])
    assert got["rr"] == pytest.approx(md["converted"]["rr"], rel=1e-12)
    assert got["rr_ci_high"] == pytest.approx(md["converted"]["hi"], rel=1e-12)
    assert got["evalue"] == pytest.approx(md["evalue"], rel=1e-12)
    assert got["evalue_ci"] == pytest.approx(md["evalue_ci"], rel=1e-12)
    assert evalue_ci(1.5, 0.9, 2.2) == 1.0   # an interval containing 1


def test_kish_ess_and_trimming_edges():
    assert kish_ess(np.ones(10)) == pytest.approx(10)
    assert kish_ess(np.array([1.0, 0.0, 0.0])) == pytest.approx(1)
    w = psweights(np.array([0.01, 0.5, 0.99, 0.3]), np.array([True, False, True, False]), "iptw_ate", trim=0.05)
    assert w.trimmed.tolist() == [True, False, True, False] and w.weights[w.trimmed].sum() == 0
    with pytest.raises(ValueError, match="trim"):
        psweights(np.array([0.5]), np.array([True]), "iptw_ate", trim=0.6)


# -- protocol settings and the study wiring --------------------------------------------------------------------

def test_confounding_settings_validate_and_round_trip():
    from ildstudy.errors import ProtocolError
    from ildstudy.protocol import load_protocol, parse_protocol

    p = load_protocol("huapaya2019")
    cf = p.confounding
    assert (cf.design, cf.also, cf.caliper, cf.ratio, cf.replace) == ("overlap", ("iptw_ate", "matching"), 0.2, 1, False)
    assert cf.covariate_names(p.analysis) == ("sex", "age", "antisynthetase", "smoking", "baseline_fvc_pct_pred",
                                              "baseline_dlco_pct_pred", "diagnosis")
    assert parse_protocol(p.to_toml()) == p
    text = p.to_toml()
    for bad, message in [('design = "overlap"', 'design = "ipw"'), ("ratio = 1", "ratio = 0"),
                         ("trim = 0.0", "trim = 0.7")]:
        with pytest.raises(ProtocolError, match="confounding"):
            parse_protocol(text.replace(bad, message, 1))
    with pytest.raises(ProtocolError, match="not a known covariate"):
        parse_protocol(text.replace("[confounding]\n", '[confounding]\nps_covariates = ["bmi"]\n', 1))
    with pytest.raises(ProtocolError, match="at most once"):
        parse_protocol(text.replace('also = [', 'also = [ "overlap", ', 1))


def test_more_than_two_arms_is_skipped_with_a_clear_warning():
    from ildstudy.analysis.confounding.study import confounding_notice, study_confounding
    from ildstudy.protocol import load_protocol, parse_protocol

    from test_three_arms import three_arm_toml   # the three-arm variant of huapaya2019 (tests/test_three_arms.py)

    p3 = parse_protocol(three_arm_toml())
    assert len(p3.arms) == 3
    notice = confounding_notice(p3)
    assert len(notice) == 1 and "compare two arms; this protocol has 3 (AZA, RTX, MMF)" in notice[0]
    assert study_confounding(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), p3) is None
    assert confounding_notice(load_protocol("huapaya2019")) == []


@pytest.fixture(scope="module")
def demo_confounding():
    from ildstudy.analysis.confounding.study import study_confounding
    from ildstudy.cohort import build_cohort
    from ildstudy.data.load import registry_from_frames
    from ildstudy.protocol import load_protocol
    from ildstudy.synth import generate_registry

    p = load_protocol("huapaya2019")
    tables, _ = generate_registry(None, np.random.default_rng(2019), p)
    cohort = build_cohort(registry_from_frames(tables), p)
    return p, cohort, study_confounding(cohort.patients, cohort.outcomes, cohort.adverse_events, p)


def test_study_confounding_on_the_demo_registry(demo_confounding):
    from ildstudy.analysis.schema import load_schema
    from ildstudy.report.exports import canonical_json

    p, cohort, cf = demo_confounding
    assert cf.designs == ("none", "overlap", "iptw_ate", "matching")
    info = cf.propensity_info
    n_cc = info["n"] + sum(info["excluded_missing"].values())
    assert n_cc == len(cohort.patients)
    # overlap weights: exact balance of every score covariate; the unweighted SMDs of baseline FVC/DLCO are large
    ov = cf.balance[cf.balance["design"] == "overlap"]
    assert np.abs(ov["smd_after"]).max() < 1e-8
    before = cf.balance[cf.balance["design"] == "none"].set_index("covariate")["smd_before"]
    assert before["baseline_fvc_pct_pred"] < -0.5
    # every outcome x contrast month x design, and the unweighted row equals an OLS with the same covariates
    assert len(cf.outcomes) == len(p.outcomes) * len(p.analysis.contrast_months) * len(cf.designs)
    m = cf.propensity_info["matched"]
    assert m[p.treatment_arm] == m[p.reference_arm] > 0          # 1:1 without replacement
    doc = json.loads(canonical_json({"confounding": cf.to_dict()}))
    problems = [x for x in load_schema().validate_results(doc) if "confounding" in x]
    assert problems == []
    assert set(cf.tables()) == {"confounding_propensity", "confounding_sample_sizes", "confounding_balance",
                                "confounding_outcomes", "confounding_adverse_events", "confounding_discontinuation"}


def test_report_section_and_figures(demo_confounding, tmp_path):
    from ildstudy.report import confounding_section, figures_confounding
    from ildstudy.report.style import arm_colours

    p, _, cf = demo_confounding
    text = " ".join(confounding_section.methods_text(cf))
    assert "overlap weights" in text and "caliper of 0.2 SD" in text and "without replacement" in text
    assert "HC1" in text and "VanderWeele" in text
    import matplotlib
    matplotlib.use("Agg")
    fig = figures_confounding.love_plot(cf)
    fig.savefig(tmp_path / "love.svg")
    fig = figures_confounding.overlap_figure(cf, arm_colours(["AZA", "MMF"]))
    fig.savefig(tmp_path / "overlap.svg")
    assert (tmp_path / "love.svg").read_text().count("<svg") == 1


# -- planted confounding in the synthetic registry ---------------------------------------------------------------

def test_synth_plants_confounding_by_indication():
    from ildstudy.protocol import load_protocol
    from ildstudy.synth import generate_registry
    from ildstudy.synth.generate import PlannedRegistry

    p = load_protocol("huapaya2019")
    plain, t0 = generate_registry(400, np.random.default_rng(7), p, balanced=False)
    conf, t1 = generate_registry(400, np.random.default_rng(7), p, balanced=False, confounding=2.0)
    assert "confounding" not in t0.to_dict() and t1.confounding["strength"] == 2.0
    assert t1.confounding["severity_difference"] > 0.5            # AZA patients are sicker (latent FVC/DLCO lower)
    assert all(v < 0 for v in t1.confounding["random_intercept_difference"].values())
    assert t1.arms == t0.arms and t1.adverse_events == t0.adverse_events   # arm sizes and per-arm plans unchanged
    # the causal difference has no baseline part: arm_differences = months_arm x month
    assert t1.arm_differences["fvc_pct_pred"]["0"] == 0.0 and t0.arm_differences["fvc_pct_pred"]["0"] != 0.0
    for name in ("patients", "medications", "adverse_events"):         # only outcome values differ
        pd.testing.assert_frame_equal(plain[name], conf[name])
    assert not plain["pft"]["fvc_pct_pred"].equals(conf["pft"]["fvc_pct_pred"])
    with pytest.raises(ValueError, match="sampled registry"):
        PlannedRegistry(None, np.random.default_rng(7), p, confounding=1.0)


def test_baseline_pft_as_measured_decides_the_arm():
    """The planted choice uses the baseline visit's own residual: the baseline FVC written to the registry is the
    fixed part + random intercept + the plan's baseline residual, and the residuals were selected with the arm."""
    from ildstudy.protocol import load_protocol
    from ildstudy.synth.calibration import MODELS
    from ildstudy.synth.generate import PlannedRegistry

    p = load_protocol("huapaya2019")
    gen = PlannedRegistry(600, np.random.default_rng(11), p, balanced=False, confounding=2.0)
    plan = gen.plan
    assert plan.base_resid.shape == (plan.n, 2)
    pft = gen._block(plan, np.random.default_rng(5))["pft"]
    pid = pft["patient_id"].numbers - 1                       # Ids count from 1; plan rows from 0
    days = pft["test_date"].days - plan.index[pid]
    base = plan.eligible[pid] & (days == plan.base_visit[pid]) & ~np.isnan(pft["fvc_pct_pred"])
    i = pid[base]
    m = MODELS["fvc_pct_pred"]
    expected = m.fixed_mean(0.0, (plan.arm[i] == 0).astype(float), plan.female[i], plan.age[i],
                            plan.antisynthetase[i], plan.smoking[i] > 0) + plan.re[i, 0, 0] + plan.base_resid[i, 0]
    expected = np.clip(np.round(expected, m.decimals), m.low, m.high)
    assert base.sum() > 300
    np.testing.assert_allclose(np.asarray(pft["fvc_pct_pred"])[base], expected, atol=1e-9)
    c = gen.truth.confounding
    # AZA patients measure worse at baseline through both their level and the visit's noise (selection on both)
    assert c["severity_difference"] > 0.5
    assert all(v < 0 for v in c["baseline_residual_difference"].values())
    assert all(v < 0 for v in c["random_intercept_difference"].values())


@pytest.fixture(scope="module")
def demo_main(demo_confounding):
    """The demo cohort analysed by the protocol without its [[sensitivity]] variants (confounding only)."""
    from ildstudy.analysis.study import analyse_cohort

    p, cohort, _ = demo_confounding
    p = p.model_copy(update={"sensitivity": ()})
    return analyse_cohort(cohort, p, data_hash="test")


def test_every_confounding_design_is_a_row_of_the_sensitivity_forest(demo_main, tmp_path):
    import dataclasses

    from ildstudy.analysis.schema import load_schema
    from ildstudy.analysis.sensitivity import run_sensitivity
    from ildstudy.report import figures_sensitivity
    from ildstudy.report.exports import canonical_json
    from ildstudy.report.sensitivity_section import sensitivity_context

    def no_variant(_p):
        raise AssertionError("no [[sensitivity]] variant to run")

    main, cf = demo_main, demo_main.confounding
    s = run_sensitivity(main, no_variant)
    assert list(s.analyses["analysis"]) == ["primary", *(f"confounding:{d}" for d in cf.designs)]
    assert list(s.analyses["kind"]) == ["primary"] + ["confounding"] * len(cf.designs)
    assert s.analyses.loc[s.analyses["analysis"] == "confounding:overlap", "label"].item().endswith("(primary design)")
    # the rows carry the confounding block's numbers at the summary month, with no df (normal intervals)
    at = cf.outcomes[cf.outcomes["month"] == s.month].set_index(["design", "outcome"])
    rows = s.contrasts[s.contrasts["analysis"].str.startswith("confounding:")]
    assert len(rows) == len(cf.designs) * len(main.outcomes)
    for r in rows.itertuples():
        ref = at.loc[(r.analysis.split(":", 1)[1], r.outcome)]
        assert (r.estimate, r.ci_low, r.ci_high, r.p) == (ref["estimate"], ref["ci_low"], ref["ci_high"], ref["p"])
        assert np.isnan(r.df)
    primary = s.contrasts[s.contrasts["analysis"] == "primary"].set_index("outcome")
    d = main.outcomes["fvc_pct_pred"].arm_differences.set_index("month").loc[s.month]
    assert primary.loc["fvc_pct_pred", "estimate"] == d["estimate"]
    matched = s.analyses.set_index("analysis").loc["confounding:matching"]
    assert {a: matched[f"n_{a}"] for a in main.arms} == cf.propensity_info["matched"]
    # results.json and tables/ follow the schema (kind included)
    full = dataclasses.replace(main, sensitivity=s)
    doc = json.loads(canonical_json(full.results))
    assert [a["kind"] for a in doc["sensitivity"]["analyses"]][:2] == ["primary", "confounding"]
    assert [x for x in load_schema().validate_results(doc) if "sensitivity" in x] == []
    cols = list(full.tables["sensitivity_analyses"].columns)
    assert set(load_schema().table_columns("sensitivity_analyses", cols)) == set(cols)
    # the report: one table with a heading row before the designs, one forest with a row per analysis
    ctx = sensitivity_context(full)
    assert [r["first_design"] for r in ctx["rows"]] == [False, True] + [False] * (len(cf.designs) - 1)
    assert ctx["has_designs"] and not ctx["has_variants"]
    assert ctx["rows"][1]["ae"] == "—" and "cluster-robust" in ctx["rows"][1]["what"]
    import matplotlib
    matplotlib.use("Agg")
    fig = figures_sensitivity.sensitivity_forest(s, {o.name: o.label for o in main.outcomes.values()},
                                                 contrast="AZA − MMF", treatment="AZA")
    assert [t.get_text().replace("\n", " ") for t in fig.axes[0].get_yticklabels()][0] == "Primary analysis"
    assert len(fig.axes[0].get_yticklabels()) == 1 + len(cf.designs)
    caption = figures_sensitivity.sensitivity_caption(s, "AZA − MMF")
    assert "propensity-score design" in caption and "each sensitivity analysis" not in caption
    # neither variants nor confounding: no section
    assert run_sensitivity(dataclasses.replace(main, confounding=None), no_variant) is None
