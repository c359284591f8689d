"""ildstudy.lmm against R: every fixture in tests/reference/lmm/*.json (lme4, lmerTest, emmeans).

The fixtures and their data are written by ``tests/reference/lmm_reference.R`` (R call, package
versions and format in ``tests/reference/README.md``); R is not needed to run these tests.
Each quantity has its own named tolerance below; an assertion message names the fixture and
the quantity.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildstudy.lmm import fit_lmm

FIXTURES = Path(__file__).parent / "reference" / "lmm"

# Tolerances are set just above the worst difference actually achieved over all fixtures (measured when
# they were tightened, issue 16; re-measure with the loop in each test if a fixture is added). Where the worst
# case is a fixture on which lme4's default optimiser did not converge (orthodont_ml, lme4's own warning), the
# difference is lme4's, not ours: our criterion is lower there (by 3.5e-5).
CRITERION_RTOL = 1e-6
"""REML criterion / deviance never worse than lme4's: ours <= lme4 * (1 + 1e-6). Achieved: at most +1.1e-12
(sleepstudy_intercept_reml), i.e. equal; lower by 3.5e-5 on orthodont_ml."""
ESTIMATE_SE_FRACTION = 1e-4
"""Fixed effects, marginal means, contrasts, slopes: |ours - R| <= 1e-4 of R's standard error.
Achieved: 5.0e-5 (ild110_reml, smoker); marginal means 2.5e-5, contrasts and slopes 4.6e-5 (ild110_reml)."""
SE_RTOL = 1e-3
"""Standard errors: 0.1% relative. Achieved: 6.5e-4 (orthodont_ml, unconverged in lme4), 2.8e-4 otherwise."""
DF_RTOL = 0.005
"""Satterthwaite degrees of freedom: 0.5% relative. Achieved: 7.9e-4 (orthodont_ml), 4.5e-4 (orthodont_reml)."""
SD_RTOL = 0.005
"""Residual SD and random-effect SDs: 0.5% relative (absolute 1e-4 x residual SD when R's SD is 0).
Achieved: random-effect SD 4.0e-3 (orthodont_ml, unconverged in lme4), 1.1e-3 otherwise; residual SD 2.7e-4."""
CORR_ATOL = 0.005
"""Random-effect correlations: absolute (NaN where an SD is 0, as in R). Achieved: 2.7e-3 (orthodont_ml)."""
RANEF_SD_FRACTION = 0.005
"""Conditional modes (BLUPs): |ours - R| <= this fraction of the term's random-effect SD (+1e-8), on fixtures
where lme4 converged. Achieved: 3.6e-3 (orthodont_reml)."""
CI_SE_FRACTION = ESTIMATE_SE_FRACTION + 2.5 * SE_RTOL
"""Confidence limits, as a fraction of R's SE: |d ci| <= |d estimate| + t_crit |d se| (+ se |d t_crit|, negligible
at these df), with t_crit <= 2.5 at 95% for df >= 6. Achieved: 3.7e-4 (orthodont_reml)."""
LOGLIK_ATOL = 1e-6
"""logLik / AIC / BIC follow from the criterion: ours may only be better, by rounding at most this much worse."""


def _fixture_paths() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module", params=_fixture_paths(), ids=lambda p: p.stem)
def case(request):
    fixture = _load(request.param)
    data = pd.read_csv(FIXTURES / "data" / fixture["data"])
    fit = fit_lmm(
        fixture["formula"],
        data,
        reml=fixture.get("method", "REML") == "REML",
        factor_levels=fixture.get("factors") or None,
    )
    return fixture, fit


def test_fixtures_present():
    assert _fixture_paths(), f"no fixtures in {FIXTURES}"


def test_sizes_and_flags(case):
    fx, fit = case
    name = fx["case"]
    assert fit.n_obs == fx["n_obs"], f"{name}: n_obs"
    assert fit.n_groups == fx["n_groups"], f"{name}: n_groups"
    if "n_rows_in_file" in fx:
        assert fit.n_dropped == fx["n_rows_in_file"] - fx["n_obs"], f"{name}: rows dropped for NA"
    if "singular" in fx:
        assert fit.singular == fx["singular"], f"{name}: singular flag"
    assert fit.converged, f"{name}: converged ({fit.messages})"
    assert fit.method == fx.get("method", "REML"), f"{name}: method"


def test_criterion_not_worse_than_lme4(case):
    fx, fit = case
    key = "reml_criterion" if fit.method == "REML" else "deviance"
    r_value = fx[key]
    assert fit.criterion <= r_value + CRITERION_RTOL * abs(r_value), (
        f"{fx['case']}: {key} {fit.criterion!r} worse than lme4's {r_value!r}"
    )
    for quantity, ours, sign in (("loglik", fit.loglik, 1), ("aic", fit.aic, -1), ("bic", fit.bic, -1)):
        if quantity in fx:
            assert sign * (ours - fx[quantity]) >= -LOGLIK_ATOL - CRITERION_RTOL * abs(r_value), (
                f"{fx['case']}: {quantity} {ours!r} vs R {fx[quantity]!r}"
            )
    if "loglik_df" in fx:
        assert fit.n_parameters == fx["loglik_df"], f"{fx['case']}: logLik df"


def test_fixed_effects(case):
    fx, fit = case
    ours = fit.fixed_effects.set_index("term")
    expected = [row["term"] for row in fx["fixed_effects"]]
    assert list(ours.index) == expected, f"{fx['case']}: fixed-effect terms (R names, R order)"
    for row in fx["fixed_effects"]:
        term, mine = row["term"], ours.loc[row["term"]]
        label = f"{fx['case']}: {term}"
        assert abs(mine.estimate - row["estimate"]) <= ESTIMATE_SE_FRACTION * row["se"], f"{label}: estimate"
        assert mine.se == pytest.approx(row["se"], rel=SE_RTOL), f"{label}: se"
        assert mine.df == pytest.approx(row["df"], rel=DF_RTOL), f"{label}: Satterthwaite df"
        assert abs(mine.t - row["t"]) <= ESTIMATE_SE_FRACTION + SE_RTOL * abs(row["t"]), f"{label}: t"


def test_variance_components(case):
    fx, fit = case
    name = fx["case"]
    assert fit.residual_sd == pytest.approx(fx["residual_sd"], rel=SD_RTOL), f"{name}: residual SD"
    re = fx.get("random_effects")
    if not re:
        return
    assert list(fit.random_effects.terms) == re["terms"], f"{name}: random-effect terms"
    for term, ours, theirs in zip(re["terms"], fit.random_effects.sd, re["sd"]):
        tol = SD_RTOL * theirs if theirs > 0 else 1e-4 * fx["residual_sd"]
        assert abs(ours - theirs) <= tol, f"{name}: SD of {term}: {ours} vs {theirs}"
    corr_r = np.array(re.get("corr") or np.eye(len(re["terms"])), dtype=float)
    corr = fit.random_effects.corr
    for i in range(corr_r.shape[0]):
        for j in range(i):
            if math.isnan(corr_r[i, j]):
                assert math.isnan(corr[i, j]), f"{name}: correlation [{i},{j}] should be NaN"
            else:
                assert abs(corr[i, j] - corr_r[i, j]) <= CORR_ATOL, f"{name}: correlation [{i},{j}]"


def test_conditional_modes(case):
    fx, fit = case
    ranef = fx.get("ranef")
    if not ranef:
        pytest.skip("fixture has no ranef")
    if fx.get("converged") is False:
        # lme4's default optimiser stopped early here (the fixture records its warning); our optimum
        # is R's own bobyqa refit (test_optimum_check), so BLUPs from the unconverged theta are not
        # a reference. Run anyway: strict=False reports XPASS if they happen to agree.
        pytest.xfail(f"lme4 did not converge: {fx.get('convergence_warnings')}")
    ours = fit.conditional_modes
    ours.index = ours.index.astype(str)
    theirs = pd.DataFrame(ranef["values"], index=[str(v) for v in ranef["levels"]], columns=ranef["terms"])
    for j, term in enumerate(ranef["terms"]):
        tol = RANEF_SD_FRACTION * fx["random_effects"]["sd"][j] + 1e-8
        diff = np.abs(ours.loc[theirs.index, term].to_numpy() - theirs[term].to_numpy())
        assert diff.max() <= tol, f"{fx['case']}: conditional modes of {term} (max diff {diff.max():.3g})"


THETA_RTOL = 1e-4
"""theta against R's bobyqa refit (``optimum_check``). Achieved: 5.3e-6 relative (singular_slope_reml)."""


def test_optimum_check(case):
    """Where the R script refitted with bobyqa, we reach that optimum (criterion and theta)."""
    fx, fit = case
    check = fx.get("optimum_check")
    if not check:
        pytest.skip("fixture has no optimum_check")
    assert fit.criterion <= check["criterion"] + CRITERION_RTOL * abs(check["criterion"]), (
        f"{fx['case']}: criterion {fit.criterion!r} vs R bobyqa refit {check['criterion']!r}"
    )
    np.testing.assert_allclose(
        fit.theta, check["theta"], rtol=THETA_RTOL, atol=1e-6,
        err_msg=f"{fx['case']}: theta vs R bobyqa refit",
    )


def _emmeans_cases():
    out = []
    for path in _fixture_paths():
        for i, spec in enumerate(_load(path).get("emmeans", [])):
            out.append(pytest.param(path, i, id=f"{path.stem}-{i}-{spec.get('specs')}-by-{spec.get('by')}"))
    return out


def _key(value):
    return round(float(value), 9) if isinstance(value, (int, float)) else str(value)


@pytest.mark.parametrize(("path", "index"), _emmeans_cases())
def test_emmeans(path, index):
    fx = _load(path)
    spec = fx["emmeans"][index]
    data = pd.read_csv(FIXTURES / "data" / fx["data"])
    fit = fit_lmm(fx["formula"], data, reml=fx.get("method", "REML") == "REML", factor_levels=fx.get("factors") or None)
    specs, by, at = spec["specs"], spec.get("by"), spec.get("at") or None
    level = spec.get("level", 0.95)
    label = f"{fx['case']} emmeans[{index}] {specs} by {by}"
    names = [specs] + ([by] if by else [])
    means = fit.emmeans(specs, by=by, at=at, level=level).table
    ours = {tuple(_key(row[n]) for n in names): row for _, row in means.iterrows()}
    for row in spec.get("means", []):
        key = tuple(_key(row[n]) for n in names)
        assert key in ours, f"{label}: no mean for {key}"
        _check(ours[key], row, "emmean", label + f" mean {key}", estimate_name="estimate")
        if "lower_cl" in row:
            for mine, theirs in (("ci_low", "lower_cl"), ("ci_high", "upper_cl")):
                assert abs(ours[key][mine] - row[theirs]) <= CI_SE_FRACTION * row["se"], f"{label}: {mine}"

    method = spec.get("method", "revpairwise")
    ref = None
    if method.startswith("trt.vs.ctrl"):
        suffix = method[len("trt.vs.ctrl"):]
        levels = list(dict.fromkeys(means[specs]))
        ref = levels[int(suffix) - 1] if suffix else None
        method = "trt.vs.ctrl"
    contrasts = fit.contrast(specs, by=by, at=at, method=method, ref=ref, level=level).table
    ours_c = {(row["contrast"],) + ((_key(row[by]),) if by else ()): row for _, row in contrasts.iterrows()}
    for row in spec.get("contrasts", []):
        key = (row["contrast"],) + ((_key(row[by]),) if by else ())
        assert key in ours_c, f"{label}: no contrast {key} (ours: {list(ours_c)})"
        _check(ours_c[key], row, "estimate", label + f" contrast {key}", estimate_name="estimate")
        if spec.get("adjust", "none") == "none" and "p_value" in row:
            assert abs(ours_c[key]["t_ratio"] - row["t_ratio"]) <= ESTIMATE_SE_FRACTION + SE_RTOL * abs(row["t_ratio"]), (
                f"{label} contrast {key}: t ratio"
            )


def _emtrends_cases():
    out = []
    for path in _fixture_paths():
        for i, spec in enumerate(_load(path).get("emtrends", [])):
            out.append(pytest.param(path, i, id=f"{path.stem}-trend{i}-{spec['specs']}-by-{spec['by']}"))
    return out


@pytest.mark.parametrize(("path", "index"), _emtrends_cases())
def test_emtrends(path, index):
    """Slopes and slope contrasts against ``emtrends(fit, ~ specs | by, var, at)`` (lmm_reference.R, trend_block)."""
    fx = _load(path)
    spec = fx["emtrends"][index]
    data = pd.read_csv(FIXTURES / "data" / fx["data"])
    fit = fit_lmm(fx["formula"], data, reml=fx.get("method", "REML") == "REML", factor_levels=fx.get("factors") or None)
    specs, by, at, var = spec["specs"], spec["by"], spec["at"], spec["var"]
    label = f"{fx['case']} emtrends[{index}] {specs} by {by}"
    result = fit.slopes(var, specs, by=by, at=at)
    assert result.delta == pytest.approx(spec["delta_var"], rel=1e-12), f"{label}: delta.var"
    ours = {(_key(row[specs]), _key(row[by])): row for _, row in result.table.iterrows()}
    assert len(ours) == len(spec["slopes"]), f"{label}: number of slopes"
    for row in spec["slopes"]:
        key = (_key(row[specs]), _key(row[by]))
        _check(ours[key], row, "trend", f"{label} slope {key}", estimate_name="estimate")
        for mine, theirs in (("ci_low", "lower_cl"), ("ci_high", "upper_cl")):
            assert abs(ours[key][mine] - row[theirs]) <= CI_SE_FRACTION * row["se"], f"{label} slope {key}: {mine}"
    per_year = fit.slopes(var, specs, by=by, at=at, per=12).table
    np.testing.assert_allclose(per_year["estimate"], 12 * result.table["estimate"], rtol=1e-12)
    np.testing.assert_allclose(per_year["df"], result.table["df"], rtol=1e-12)
    contrasts = fit.slope_contrast(var, specs, by=by, at=at, method=spec["method"])
    ours_c = {(row["contrast"], _key(row[by])): row for _, row in contrasts.iterrows()}
    for row in spec["contrasts"]:
        key = (row["contrast"], _key(row[by]))
        assert key in ours_c, f"{label}: no slope contrast {key} (ours: {list(ours_c)})"
        _check(ours_c[key], row, "estimate", f"{label} slope contrast {key}", estimate_name="estimate")


def _check(ours, theirs, r_name, label, estimate_name):
    assert abs(ours[estimate_name] - theirs[r_name]) <= ESTIMATE_SE_FRACTION * theirs["se"], f"{label}: estimate"
    assert ours["se"] == pytest.approx(theirs["se"], rel=SE_RTOL), f"{label}: se"
    assert ours["df"] == pytest.approx(theirs["df"], rel=DF_RTOL), f"{label}: df"
