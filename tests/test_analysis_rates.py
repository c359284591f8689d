"""Incidence rates and rate ratios against R (stats::poisson.test, stats::glm, MASS::glm.nb).

Reference numbers come from tests/reference/safety_reference.R (R 4.2.2, MASS 7.3-58.2; versions in the fixture) on
tests/reference/analysis/data/ae_counts.csv (84 patients, unequal follow-up, overdispersed counts) and
ae_counts_zero.csv (no event in arm AZA). The suite never runs R.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.rates import exact_rate, exact_rate_ratio, incidence_rates

REF_DIR = Path(__file__).parent / "reference" / "analysis"
REF = json.loads((REF_DIR / "rates.json").read_text(encoding="utf-8"))
OVER = REF["overdispersed"]
ZERO = REF["zero_events"]

# exact (closed-form gamma / beta quantiles) quantities: the same arithmetic as R
RATE_RTOL = 1e-12
EXACT_CI_RTOL = 1e-10
EXACT_P_RTOL = 1e-10
# GLMs: ildstudy iterates to the maximum; glm()'s default stops when the deviance changes by < 1e-8 (relative),
# and summary.glm's SEs use the working weights of the previous iteration. Against R's tight run
# (glm.control(epsilon = 1e-14)) the agreement is close to rounding; against the default run it is what R's
# convergence leaves (measured: coef 1e-8 abs, SE 7e-5 rel for Poisson).
GLM_COEF_ATOL = {"tight": 1e-12, "default": 1e-7}
GLM_SE_RTOL = {"tight": 1e-7, "default": 2e-4}
GLM_P_RTOL = {"tight": 1e-6, "default": 2e-3}
LOGLIK_ATOL = 1e-9
# glm.nb: theta.ml stops when its Newton step is < eps^(1/4) = 1.2e-4 and reports SE.theta from the information at
# the iterate *before* that last step, so R's θ is ~6e-9 (relative) short of the maximum and SE.theta ~1.1e-4 off
# the SE at the maximum (checked: the information at R's previous iterate reproduces SE.theta to 6e-12).
NB_THETA_RTOL = 1e-7
NB_SE_THETA_RTOL = 2e-4
NB_COEF_ATOL = 1e-8
NB_SE_RTOL = 1e-7


def _data(ref):
    return pd.read_csv(REF_DIR / ref["data"])


@pytest.fixture(scope="module")
def over():
    return incidence_rates(_data(OVER), ["AZA", "MMF"], "MMF")


@pytest.fixture(scope="module")
def zero():
    return incidence_rates(_data(ZERO), ["AZA", "MMF"], "MMF")


def test_fixture_provenance():
    assert REF["source"] == "tests/reference/safety_reference.R"
    assert REF["r_version"].startswith("R version") and REF["MASS_version"]


@pytest.mark.parametrize("case", ["overdispersed", "zero_events"])
def test_rates_per_arm_match_poisson_test(case, over, zero):
    res = over if case == "overdispersed" else zero
    for ours, r in zip(res.by_arm, REF[case]["by_arm"], strict=True):   # poisson.test(x, T), x 100
        assert (ours.arm, ours.n, ours.events) == (r["arm"], r["n"], r["events"])
        assert ours.person_years == pytest.approx(r["person_years"], rel=RATE_RTOL)
        assert ours.rate == pytest.approx(r["rate_per_100py"], rel=RATE_RTOL, abs=0)
        assert ours.ci_low == pytest.approx(r["ci_low"], rel=EXACT_CI_RTOL, abs=0)
        assert ours.ci_high == pytest.approx(r["ci_high"], rel=EXACT_CI_RTOL)


@pytest.mark.parametrize("case", ["overdispersed", "zero_events"])
def test_exact_rate_ratio_matches_two_sample_poisson_test(case, over, zero):
    res = over if case == "overdispersed" else zero
    r = REF[case]["exact"]                        # poisson.test(c(x_AZA, x_MMF), c(t_AZA, t_MMF))
    assert res.exact.estimate == pytest.approx(r["estimate"], rel=RATE_RTOL, abs=0)
    assert res.exact.ci_low == pytest.approx(r["ci_low"], rel=EXACT_CI_RTOL, abs=0)
    assert res.exact.ci_high == pytest.approx(r["ci_high"], rel=EXACT_CI_RTOL)
    assert res.exact.p == pytest.approx(r["p"], rel=EXACT_P_RTOL)


def test_zero_events_arm_has_no_glm(zero):
    assert zero.by_arm[0].events == 0 and zero.by_arm[0].ci_low == 0.0
    assert zero.poisson is None and zero.negative_binomial is None
    d = zero.to_dict()
    assert d["poisson_glm"] is None and d["exact"]["estimate"] == 0.0


@pytest.mark.parametrize("control", ["tight", "default"])
def test_poisson_glm_matches_glm(over, control):
    r = OVER["poisson_glm"][control]              # glm(n_events ~ arm + offset(log(person_years)), poisson)
    m = over.poisson
    assert m.terms == tuple(OVER["terms"])
    np.testing.assert_allclose(m.coef, r["coef"], rtol=0, atol=GLM_COEF_ATOL[control])
    np.testing.assert_allclose(m.se, r["se"], rtol=GLM_SE_RTOL[control])
    assert m.z == pytest.approx(r["z"], rel=GLM_SE_RTOL[control])
    assert m.p == pytest.approx(r["p"], rel=GLM_P_RTOL[control])
    assert m.rate_ratio == pytest.approx(r["rate_ratio"], rel=GLM_COEF_ATOL[control] * 10)
    assert m.ci_low == pytest.approx(r["ci_low"], rel=GLM_SE_RTOL[control])    # confint.default
    assert m.ci_high == pytest.approx(r["ci_high"], rel=GLM_SE_RTOL[control])
    assert m.loglik == pytest.approx(r["loglik"], abs=LOGLIK_ATOL)               # logLik(fit)
    assert m.deviance == pytest.approx(r["deviance"], abs=LOGLIK_ATOL)           # deviance(fit)
    assert m.df_residual == r["df_residual"]
    if control == "tight":
        assert m.pearson_chisq == pytest.approx(r["pearson_chisq"], rel=1e-10)


def test_poisson_glm_estimate_is_ratio_of_crude_rates(over):
    """With arm as the only term the Poisson MLE is the ratio of the arms' crude rates (a check R cannot fake)."""
    assert over.poisson.rate_ratio == pytest.approx(over.exact.estimate, rel=1e-12)
    x = [a.events for a in over.by_arm]
    assert over.poisson.se[1] == pytest.approx(math.sqrt(1 / x[0] + 1 / x[1]), rel=1e-12)


@pytest.mark.parametrize("control", ["tight", "default"])
def test_negative_binomial_matches_glm_nb(over, control):
    r = OVER["negative_binomial"][control]        # MASS::glm.nb(n_events ~ arm + offset(log(person_years)))
    m = over.negative_binomial
    assert m.theta == pytest.approx(r["theta"], rel=NB_THETA_RTOL)
    assert m.se_theta == pytest.approx(r["se_theta"], rel=NB_SE_THETA_RTOL)
    np.testing.assert_allclose(m.coef, r["coef"], rtol=0, atol=NB_COEF_ATOL)
    np.testing.assert_allclose(m.se, r["se"], rtol=NB_SE_RTOL)
    assert m.p == pytest.approx(r["p"], rel=1e-6)
    assert m.ci_low == pytest.approx(r["ci_low"], rel=NB_SE_RTOL * 10)          # confint.default
    assert m.ci_high == pytest.approx(r["ci_high"], rel=NB_SE_RTOL * 10)
    assert m.loglik == pytest.approx(r["loglik"], abs=LOGLIK_ATOL)               # fit$twologlik / 2


def test_negative_binomial_is_the_maximum(over):
    """Moving θ or β away from the fit lowers the NB2 log-likelihood (independent of R)."""
    from ildstudy.analysis.rates import _nb_loglik

    d = _data(OVER)
    y, off = d["n_events"].to_numpy(float), np.log(d["person_years"].to_numpy(float))
    X = np.column_stack([np.ones(len(d)), (d["arm"] == "AZA").to_numpy(float)])
    m = over.negative_binomial
    best = _nb_loglik(y, np.exp(X @ m.coef + off), m.theta)
    assert best == pytest.approx(m.loglik, abs=1e-12)
    for db, dt in [((1e-4, 0), 0), ((0, 1e-4), 0), ((0, 0), 1e-3), ((-1e-4, 0), -1e-3)]:
        assert _nb_loglik(y, np.exp(X @ (m.coef + np.array(db)) + off), m.theta + dt) < best


def test_underdispersed_counts_give_no_nb_fit():
    d = pd.DataFrame({"patient_id": list("abcdef"), "arm": ["AZA"] * 3 + ["MMF"] * 3,
                      "n_events": [1, 1, 1, 1, 1, 1], "person_years": [1.0] * 6})
    res = incidence_rates(d, ["AZA", "MMF"], "MMF")
    assert res.poisson is not None and res.negative_binomial is None


def test_single_helpers_and_validation():
    rate, lo, hi = exact_rate(0, 10.0)
    assert (rate, lo) == (0.0, 0.0) and hi > 0
    assert exact_rate_ratio((0, 0), (1.0, 1.0)).estimate is None
    d = _data(OVER)
    with pytest.raises(ValueError, match="n_events"):
        incidence_rates(d.assign(n_events=-1), ["AZA", "MMF"], "MMF")
    with pytest.raises(ValueError, match="person_years"):
        incidence_rates(d.assign(person_years=0.0), ["AZA", "MMF"], "MMF")
    with pytest.raises(ValueError, match="not arms"):
        incidence_rates(d, ["AZA", "CYC"], "CYC")
    with pytest.raises(ValueError, match="unique"):
        incidence_rates(pd.concat([d, d.head(1)]), ["AZA", "MMF"], "MMF")


def test_to_dict_is_json_ready(over):
    out = over.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["contrast"] == "AZA / MMF" and out["by_arm"][0]["rate_per_100py"] == over.by_arm[0].rate
    assert out["negative_binomial"]["theta"] == over.negative_binomial.theta
