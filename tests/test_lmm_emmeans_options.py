"""emmeans' weights / cov.keep and the multiplicity adjustments, against R (issue 15, items 4 and 6).

Reference numbers: ``tests/reference/lmm/emmeans_options/ild110_options.json``, written by
``tests/reference/emmeans_options.R`` (R, lme4, lmerTest, emmeans, mvtnorm versions recorded in the file) from
the ild110 data of ``lmm_reference.R`` plus a derived 3-level ``diagnosis`` (the rule is in both scripts).
Model: ``fvc ~ months * arm + female + age + antisynth + smoker + diagnosis + (1 + months | id)``.

Two routes are checked. *Exact*: our weighting applied to R's coefficients and covariance matrix
(``L @ beta_R``, ``sqrt(L V_R L')``) and our adjustment applied to R's estimates, SEs and df -- this isolates
the weighting and adjustment rules from the fit. *Full*: our own fit end to end, within the tolerances of
``test_lmm_reference.py`` (the fits differ at the optimum by lme4's optimiser tolerance).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from ildstudy.errors import ModelError
from ildstudy.lmm import fit_lmm
from ildstudy.lmm.adjust import (
    adjust_contrasts, adjust_family, adjust_p, critical_values, fix_df, mvt_box_probability, mvt_quantile,
)
from ildstudy.lmm.weighting import describe_weighting, frequency_table
from test_lmm_reference import CI_SE_FRACTION, DF_RTOL, ESTIMATE_SE_FRACTION, SE_RTOL

ROOT = Path(__file__).parent / "reference" / "lmm"
FIXTURE = ROOT / "emmeans_options" / "ild110_options.json"
MONTHS = [0, 12, 36]

WEIGHTING_RTOL = 1e-9
"""Exact route, means: L beta_R and sqrt(L V_R L') against emmeans' emmean and SE, relative. Achieved: 1.9e-15 (estimate), 2.5e-14 (SE)."""
P_EXACT_ATOL = 1e-12
"""Exact route, Holm / Bonferroni / Sidak / none p values and critical values from R's inputs. Achieved: 9.6e-15."""
P_FULL_ATOL = 1e-4
"""Full route, p values of our own fit (t differs from R's by ~1e-5). Achieved: 6.1e-6."""
MVT_P_ATOL = 2e-3
"""mvt p values against mvtnorm (both randomised; mvtnorm's default abseps is 1e-3). Achieved: 2.1e-4 (df-rule
family), 8.5e-6 (ild110 contrasts, our fit), 4.5e-6 (R's inputs); R's own spread over 20 seeds: 2.8e-5."""
MVT_CRIT_ATOL = 0.01
"""mvt critical values (t units) and simultaneous limits (in SEs) against mvtnorm's qmvt, which root-finds to
ptol = 1e-3 in probability. Achieved: 2.1e-3 (df-rule family), 2.0e-3 SE (ild110 limits); R's own limits vary by 4.1e-3 SE over 20 seeds."""


def diagnosis_of(ids: pd.Series) -> np.ndarray:
    """The derived factor of emmeans_options.R: c("ASyS","ASyS","ASyS","DM","DM","PM","PM")[k %% 7 + 1]."""
    k = ids.str[1:].astype(int).to_numpy()
    return np.array(["ASyS", "ASyS", "ASyS", "DM", "DM", "PM", "PM"])[k % 7]


@pytest.fixture(scope="module")
def fx() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def data(fx) -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "data" / fx["data"])
    frame["diagnosis"] = diagnosis_of(frame["id"])
    return frame


@pytest.fixture(scope="module")
def fit(fx, data):
    return fit_lmm(fx["formula"], data, factor_levels=fx["factors"])


@pytest.fixture(scope="module")
def fit2(fx, data):
    """The interaction model of the fixture (female x diagnosis)."""
    return fit_lmm(fx["interaction_model"]["formula"], data, factor_levels=fx["factors"])


@pytest.fixture(scope="module")
def r_coef(fx):
    beta = np.array([row["estimate"] for row in fx["fixed_effects"]])
    return beta, np.array(fx["vcov_fixed"])


def _by(block) -> list[str]:
    """``by`` as a list (the R script writes one name as a string, none as [])."""
    return [block["by"]] if isinstance(block["by"], str) else list(block["by"])


def _cov_keep(value: list[str]):
    return [int(v) if v.isdigit() else v for v in value]


def _key(row, names):
    return tuple(round(float(row[n]), 9) if isinstance(row[n], (int, float, np.floating)) else str(row[n])
                 for n in names)


def test_fixture_and_derived_factor(fx, data, fit):
    assert fx["source"] == "tests/reference/emmeans_options.R" and fx["emmeans_version"] and fx["mvtnorm_version"]
    counts = data["diagnosis"].value_counts().to_dict()
    assert counts == fx["diagnosis_rows"], "the Python derivation of diagnosis must equal the R script's"
    assert fit.n_obs == fx["n_obs"]
    terms = [row["term"] for row in fx["fixed_effects"]]
    assert list(fit.fixed_effects["term"]) == terms


def _mean_cases():
    fx = json.loads(FIXTURE.read_text())
    return [pytest.param(i, id=f"{b['specs']}-by-{'-'.join(_by(b)) or 'none'}-{b['weights']}-keep{'-'.join(b['cov_keep'])}")
            for i, b in enumerate(fx["means"])]


@pytest.mark.parametrize("index", _mean_cases())
def test_means_against_emmeans(fx, fit, r_coef, index):
    """emmeans(fit, ~ specs | by, at = list(months = c(0, 12, 36)), weights = w, cov.keep = k)."""
    block = fx["means"][index]
    by = _by(block) or None
    means = fit.emmeans(block["specs"], by=by, at=block["at"], weights=block["weights"],
                        cov_keep=_cov_keep(block["cov_keep"]))
    names = [block["specs"], *_by(block)]
    beta_r, vcov_r = r_coef
    ours = {_key(row, names): i for i, row in means.table.iterrows()}
    assert len(ours) == len(block["means"])
    for row in block["means"]:
        label = f"means[{index}] {block['weights']} {_key(row, names)}"
        i = ours[_key(row, names)]
        L = means.L[i]
        assert L @ beta_r == pytest.approx(row["estimate"], rel=WEIGHTING_RTOL), f"{label}: L beta_R"
        assert np.sqrt(L @ vcov_r @ L) == pytest.approx(row["se"], rel=WEIGHTING_RTOL), f"{label}: R's SE"
        mine = means.table.iloc[i]
        assert abs(mine["estimate"] - row["estimate"]) <= ESTIMATE_SE_FRACTION * row["se"], f"{label}: estimate"
        assert mine["se"] == pytest.approx(row["se"], rel=SE_RTOL), f"{label}: se"
        assert mine["df"] == pytest.approx(row["df"], rel=DF_RTOL), f"{label}: df"
        assert abs(mine["ci_low"] - row["lower_cl"]) <= CI_SE_FRACTION * row["se"], f"{label}: ci_low"


@pytest.mark.parametrize("weights", ["equal", "proportional", "outer", "cells", "flat"])
def test_interaction_model_separates_outer_from_proportional(fx, fit2, weights):
    """fvc ~ months * arm + female * diagnosis + age: the averaged variables interact, so "outer" (product of
    margins) and "proportional" (joint frequencies) differ (they coincide for additive models)."""
    model = fx["interaction_model"]
    block = next(b for b in model["means"] if b["weights"] == weights)
    beta_r = np.array([row["estimate"] for row in model["fixed_effects"]])
    vcov_r = np.array(model["vcov_fixed"])
    assert list(fit2.fixed_effects["term"]) == [row["term"] for row in model["fixed_effects"]]
    means = fit2.emmeans("arm", by="months", at={"months": MONTHS}, weights=weights)
    ours = {_key(row, ["arm", "months"]): i for i, row in means.table.iterrows()}
    for row in block["means"]:
        i = ours[_key(row, ["arm", "months"])]
        assert means.L[i] @ beta_r == pytest.approx(row["estimate"], rel=WEIGHTING_RTOL), f"{weights}: L beta_R"
        assert np.sqrt(means.L[i] @ vcov_r @ means.L[i]) == pytest.approx(row["se"], rel=WEIGHTING_RTOL)
        mine = means.table.iloc[i]
        assert abs(mine["estimate"] - row["estimate"]) <= ESTIMATE_SE_FRACTION * row["se"], f"{weights}: estimate"
        assert mine["df"] == pytest.approx(row["df"], rel=DF_RTOL), f"{weights}: df"
    outer = np.array([r["estimate"] for r in next(b for b in model["means"] if b["weights"] == "outer")["means"]])
    prop = np.array([r["estimate"] for r in next(b for b in model["means"] if b["weights"] == "proportional")["means"]])
    assert np.min(np.abs(outer - prop)) > 0.01


def test_weightings_really_differ(fx):
    """The fixture discriminates: every option moves some mean by far more than the tolerance."""
    blocks = {(b["weights"], tuple(b["cov_keep"])): b for b in fx["means"] if _by(b) == ["months"]}
    base = np.array([r["estimate"] for r in blocks[("equal", ("2",))]["means"]])
    for key in [("proportional", ("2",)), ("cells", ("2",)), ("flat", ("2",)), ("equal", ("0",)), ("cells", ("0",))]:
        other = np.array([r["estimate"] for r in blocks[key]["means"]])
        assert np.max(np.abs(other - base)) > 0.1, key


def test_default_is_unchanged(fit):
    """No options = weights="equal", cov_keep=2, bit for bit (the ild110 fixtures of lmm_reference.R cover it)."""
    a = fit.emmeans("arm", by="months", at={"months": MONTHS})
    b = fit.emmeans("arm", by="months", at={"months": MONTHS}, weights="equal", cov_keep=2)
    c = fit.emmeans("arm", by="months", at={"months": MONTHS}, weights="equal", cov_keep="2")
    assert np.array_equal(a.L, b.L) and np.array_equal(a.L, c.L)
    # cov_keep=0, [] and 1 are one grid (emmeans' threshold is max(1, k)); the R script checks character(0) == "0".
    z = [fit.emmeans("arm", by="months", at={"months": MONTHS}, cov_keep=k).L for k in (0, 1, [])]
    assert np.array_equal(z[0], z[1]) and np.array_equal(z[0], z[2])
    assert not np.allclose(z[0], a.L)


def _contrast_cases():
    fx = json.loads(FIXTURE.read_text())
    return [pytest.param(i, id=f"{c['family'].replace(' ', '_')}-{c['weights']}-{c['adjust']}")
            for i, c in enumerate(fx["contrasts"])]


def _family_contrasts(fit, block):
    if block["family"] == "by arm":  # contrast(emmeans(~ months | arm), "trt.vs.ctrl1"): families of two
        ct = fit.contrast("months", by="arm", at={"months": MONTHS}, ref=0, weights=block["weights"])
        return ct, [[0, 1], [2, 3]]
    ct = fit.contrast("arm", by="months", at={"months": MONTHS}, weights=block["weights"])
    return ct, ([[0], [1], [2]] if block["family"] == "by months" else [[0, 1, 2]])


@pytest.mark.parametrize("index", _contrast_cases())
def test_adjusted_contrasts_against_emmeans(fx, fit, r_coef, index):
    """summary(ct, infer = c(TRUE, TRUE), adjust = a), ct by months (families of one: emmeans adjusts nothing),
    update(ct, by = NULL) (one family of three) and months | arm (families of two, perfectly correlated)."""
    block = fx["contrasts"][index]
    ct, families = _family_contrasts(fit, block)
    rows = block["rows"]
    assert [r["contrast"] for r in rows] == list(ct.table["contrast"])
    method = block["adjust"]
    p_tol = MVT_P_ATOL if method == "mvt" else P_EXACT_ATOL
    ci_tol = MVT_CRIT_ATOL if method == "mvt" else P_EXACT_ATOL
    beta_r, vcov_r = r_coef
    for family in families:
        theirs = [rows[i] for i in family]
        label = f"contrasts[{index}] {block['family']} {method} rows {family}"
        # exact route: R's estimates, SEs and df; covariance L V_R L'
        L = ct.L[family]
        est, se, df = (np.array([r[k] for r in theirs]) for k in ("estimate", "se", "df"))
        assert L @ beta_r == pytest.approx(est, rel=WEIGHTING_RTOL), f"{label}: L beta_R"
        adj = adjust_family(est, se, df, L @ vcov_r @ L.T, method)
        np.testing.assert_allclose(adj.p_adjusted, [r["p_value"] for r in theirs], rtol=0, atol=p_tol,
                                   err_msg=f"{label}: p (exact route)")
        np.testing.assert_allclose((est - adj.critical_value * se - [r["lower_cl"] for r in theirs]) / se, 0,
                                   atol=ci_tol, err_msg=f"{label}: lower limit (exact route)")
        # full route: our fit
        out = adjust_contrasts(ct, method, rows=family).iloc[family]
        np.testing.assert_allclose(out["p_adjusted"], [r["p_value"] for r in theirs], rtol=0,
                                   atol=MVT_P_ATOL if method == "mvt" else P_FULL_ATOL, err_msg=f"{label}: p")
        for mine, r_name in (("ci_low_adj", "lower_cl"), ("ci_high_adj", "upper_cl")):
            np.testing.assert_allclose((out[mine] - [r[r_name] for r in theirs]) / se, 0,
                                       atol=MVT_CRIT_ATOL if method == "mvt" else CI_SE_FRACTION,
                                       err_msg=f"{label}: {mine}")


def test_adjust_contrasts_defaults_to_one_family(fit):
    ct = fit.contrast("arm", by="months", at={"months": MONTHS})
    whole = adjust_contrasts(ct, "bonferroni")
    np.testing.assert_allclose(whole["p_adjusted"], np.minimum(1, 3 * ct.table["p"]), rtol=1e-12)
    part = adjust_contrasts(ct, "bonferroni", rows=[True, False, True])
    assert np.isnan(part["p_adjusted"].iloc[1]) and np.isnan(part["ci_low_adj"].iloc[1])
    np.testing.assert_allclose(part["p_adjusted"].iloc[[0, 2]], np.minimum(1, 2 * ct.table["p"].iloc[[0, 2]]))
    np.testing.assert_allclose(ct.vcov, ct.L @ fit.vcov.to_numpy() @ ct.L.T)


def test_mvt_df_rule_against_emmeans(fx):
    """emmeans:::.adj.p.value / .adj.critval on a family with df 3.7, 12.2, 40.6: each test its own fix.df."""
    rule = fx["df_rule"]
    corr = np.array(rule["corr"])
    assert list(fix_df(np.array(rule["df"]))) == rule["fix_df"]
    for method in ("none", "holm", "bonferroni", "sidak", "mvt"):
        tol = MVT_P_ATOL if method == "mvt" else P_EXACT_ATOL
        p = adjust_p(rule["t"], rule["df"], corr, method)
        np.testing.assert_allclose(p, rule[method]["p"], rtol=0, atol=tol, err_msg=f"{method}: p")
        cv = critical_values(rule["df"], corr, method)
        np.testing.assert_allclose(cv, rule[method]["critical_value"], rtol=0,
                                   atol=MVT_CRIT_ATOL if method == "mvt" else P_EXACT_ATOL, err_msg=f"{method}: cv")
    # Another df rule would fail the tolerance: every test at the smallest df is off by far more.
    wrong = [1 - mvt_box_probability(abs(t), corr, 3) for t in rule["t"]]
    assert np.max(np.abs(np.array(wrong) - rule["mvt"]["p"])) > 10 * MVT_P_ATOL
    assert rule["holm"]["ci_adjust"] == "bonferroni"  # emmeans has no Holm interval; ours likewise
    assert adjust_family(np.ones(3), np.ones(3), np.array(rule["df"]), corr, "holm").ci_method == "bonferroni"


def test_mvt_singular_and_exact_cases():
    # duplicates (corr 1): the family is one test, p = 2 pt(-|t|, floor(df + 0.25))
    dup = np.ones((2, 2))
    p = adjust_p([2.7, 2.7], [3.7, 3.7], dup, "mvt")
    np.testing.assert_allclose(p, 2 * scipy.stats.t.sf(2.7, 3), atol=1e-6)
    # all pairwise differences of three equal-n means (rank 2): Tukey's studentized range
    pairs = np.array([[1, 0.5, -0.5], [0.5, 1, 0.5], [-0.5, 0.5, 1]])
    q = scipy.stats.studentized_range.ppf(0.95, 3, 20) / np.sqrt(2)
    assert mvt_box_probability(q, pairs, 20) == pytest.approx(0.95, abs=1e-5)
    assert mvt_quantile(0.95, pairs, 20) == pytest.approx(q, abs=1e-4)
    # a family of one is never adjusted (emmeans)
    for method in ("holm", "bonferroni", "sidak", "mvt"):
        assert adjust_p([2.0], [10.5], np.eye(1), method)[0] == pytest.approx(2 * scipy.stats.t.sf(2.0, 10.5))


def test_mvt_is_reproducible():
    corr = np.array([[1, 0.3, 0.1], [0.3, 1, 0.6], [0.1, 0.6, 1]])
    a = adjust_p([2.2, 1.1, 2.6], [30, 31, 35], corr, "mvt")
    b = adjust_p([2.2, 1.1, 2.6], [30, 31, 35], corr, "mvt")
    c = adjust_p([2.2, 1.1, 2.6], [30, 31, 35], corr, "mvt", rng=np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert np.max(np.abs(a - c)) < 1e-4  # the integration error, far below mvtnorm's


def test_slopes_pass_weights(fx, fit):
    tr = fit.slopes("months", "arm", by="months", at={"months": MONTHS}, weights="cells")
    ours = {_key(r, ["arm", "months"]): r for _, r in tr.table.iterrows()}
    for row in fx["trends"]["rows"]:
        mine = ours[_key(row, ["arm", "months"])]
        assert abs(mine["estimate"] - row["estimate"]) <= ESTIMATE_SE_FRACTION * row["se"]
        assert mine["df"] == pytest.approx(row["df"], rel=DF_RTOL)
    sc = fit.slope_contrast("months", "arm", by="months", at={"months": MONTHS}, weights="proportional", cov_keep=0)
    assert list(sc["contrast"]) == ["AZA - MMF"] * 3


def test_cov_keep_threshold_keeps_a_three_valued_covariate():
    """cov_keep=3 averages a 3-valued covariate over its values equally; cov_keep=2 puts it at its row mean."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(60), 3)
    dose = np.array([0.0, 1.0, 2.0])[np.where(np.arange(60) < 35, 0, np.where(np.arange(60) < 50, 1, 2))][g]
    arm = np.where(g % 2 == 0, "A", "B")
    y = 10 + 3 * dose + (arm == "B") + rng.normal(size=60)[g] + rng.normal(size=180)
    fit = fit_lmm("y ~ arm + dose + (1 | g)", pd.DataFrame({"y": y, "g": g, "arm": arm, "dose": dose}))
    b = dict(zip(fit.fixed_effects["term"], fit.coef))
    at_mean = fit.emmeans("arm", cov_keep=2).table["estimate"].to_numpy()
    kept = fit.emmeans("arm", cov_keep=3).table["estimate"].to_numpy()
    named = fit.emmeans("arm", cov_keep=["dose"]).table["estimate"].to_numpy()
    base = b["(Intercept)"] + np.array([0.0, b["armB"]])
    np.testing.assert_allclose(at_mean, base + b["dose"] * dose.mean(), rtol=1e-12)
    np.testing.assert_allclose(kept, base + b["dose"] * 1.0, rtol=1e-12)  # mean of the values 0, 1, 2
    np.testing.assert_allclose(named, kept, rtol=1e-12)
    prop = fit.emmeans("arm", cov_keep=3, weights="proportional").table["estimate"].to_numpy()
    np.testing.assert_allclose(prop, at_mean, rtol=1e-12)  # proportional weights over dose = its row mean


def test_describe_weighting():
    assert describe_weighting() == (
        "Marginal means average over factors and over covariates with at most 2 distinct values with equal "
        'weights (emmeans weights = "equal", cov.keep = "2"); other covariates are held at their means.')
    text = describe_weighting("proportional", 0)
    assert 'weights = "proportional", cov.keep = character(0)' in text and "all numeric covariates" in text
    assert 'cov.keep = c("3", "female")' in describe_weighting("cells", [3, "female"])
    assert "covariate female" in describe_weighting("flat", ["female"])


def test_frequency_table_counts_rows(fit, data):
    counts = fit.encoding.level_counts
    assert int(counts.iloc[:, -1].sum()) == len(data)
    assert set(counts.columns[:-1]) == {"arm", "female", "antisynth", "smoker", "diagnosis"}  # age, months: many values
    small = frequency_table(pd.DataFrame({"f": pd.Categorical(["a", "b", "a"])}), ["f"], [])
    assert small.to_dict("list") == {"f": ["a", "b"], small.columns[-1]: [2, 1]}


def test_bad_options_are_clear_errors(fit):
    at = {"months": MONTHS}
    with pytest.raises(ModelError, match="weights must be one of"):
        fit.emmeans("arm", by="months", at=at, weights="prop")
    with pytest.raises(ModelError, match="cov_keep"):
        fit.emmeans("arm", by="months", at=at, cov_keep=2.5)
    with pytest.raises(ModelError, match="not a numeric fixed-effects variable"):
        fit.emmeans("arm", by="months", at=at, cov_keep=["bmi"])
    with pytest.raises(ModelError, match="more than 20 distinct values"):
        fit.emmeans("arm", by="months", at=at, cov_keep=["age"])
    with pytest.raises(ModelError, match="both 'at' and cov_keep"):
        fit.emmeans("arm", at={"months": MONTHS, "female": [1]}, cov_keep=["female"])
    with pytest.raises(ModelError, match="adjust method must be one of"):
        adjust_p([1.0, 2.0], [10, 10], None, "tukey")
    ct = fit.contrast("arm", by="months", at=at)
    with pytest.raises(ModelError, match="rows"):
        adjust_contrasts(ct, "holm", rows=[0, 5])
    # a fit made from sufficient statistics carries no frequencies: weights other than "equal" say so
    bare = dataclasses.replace(fit, encoding=dataclasses.replace(fit.encoding, level_counts=None))
    with pytest.raises(ModelError, match="frequencies of the observations"):
        bare.emmeans("arm", by="months", at=at, weights="cells")
    assert np.array_equal(bare.emmeans("arm", by="months", at=at).L, fit.emmeans("arm", by="months", at=at).L)


def test_empty_cell_is_a_clear_error():
    g = np.repeat(np.arange(40), 2)
    arm = np.where(g < 20, "A", "B")
    site = np.where(g < 20, "x", np.where(g < 30, "x", "y"))  # arm A is never at site y
    sex = np.where(g % 2 == 0, "F", "M")
    y = np.random.default_rng(3).normal(size=80) + np.repeat(np.random.default_rng(4).normal(size=40), 2)
    fit = fit_lmm("y ~ arm + site + sex + (1 | g)", pd.DataFrame({"y": y, "g": g, "arm": arm, "site": site, "sex": sex}))
    with pytest.raises(ModelError, match="no observations"):
        fit.emmeans("site", by="arm", weights="cells")  # (site y, arm A) has no rows of either sex
    fit.emmeans("arm", weights="cells")  # averaging over site and sex within arm A uses site x only
