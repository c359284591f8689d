"""The sufficient-statistics core against a brute-force dense implementation (full n x n V).

The dense reference follows the textbook definitions: V = I + Z (I_G kron D) Z', GLS beta, and the
(RE)ML deviance in (theta, sigma) exactly as lmerTest's ``devfun_vp``; derivatives of the dense
version are taken by central finite differences. Small random data only.
"""

import numpy as np
import pandas as pd
import pytest

from ildstudy.errors import ModelError
from ildstudy.lmm import fit_lmm
from ildstudy.lmm.deviance import (
    covariance_derivatives,
    deviance_and_gradient,
    profile,
    relative_factor,
    varpar_derivatives,
)
from ildstudy.lmm.stats import group_statistics

DEVIANCE_ATOL = 1e-8
"""Sufficient statistics vs dense n x n: same deviance up to rounding."""
DERIVATIVE_RTOL = 1e-5
"""Exact gradient/Hessian vs central finite differences of the dense deviance (FD error ~1e-7)."""


def _data(rng, q, n_groups=14):
    sizes = rng.integers(1, 8, n_groups)
    codes = np.repeat(np.arange(n_groups), sizes)
    rng.shuffle(codes)  # rows of a group need not be adjacent
    n = codes.size
    t = rng.uniform(0, 5, n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), t, x, 50 + 3 * rng.normal(size=n)])
    Z = np.column_stack([np.ones(n), t, x])[:, :q]
    b = rng.normal(size=(n_groups, q))
    y = X @ [10.0, 2.0, -1.0, 0.1] + np.sum(Z * b[codes], axis=1) + rng.normal(size=n)
    return X, Z, y, codes, n_groups


def _dense_f(X, Z, y, codes, G, theta, sigma, reml):
    n, p = X.shape
    q = Z.shape[1]
    lam = relative_factor(theta, q)
    D = lam @ lam.T
    Zfull = np.zeros((n, G * q))
    for i in range(n):
        Zfull[i, codes[i] * q : (codes[i] + 1) * q] = Z[i]
    V = np.eye(n) + Zfull @ np.kron(np.eye(G), D) @ Zfull.T
    Vi = np.linalg.inv(V)
    XVX = X.T @ Vi @ X
    beta = np.linalg.solve(XVX, X.T @ Vi @ y)
    r = y - X @ beta
    r2 = r @ Vi @ r
    f = np.linalg.slogdet(V)[1] + r2 / sigma**2 + n * np.log(2 * np.pi * sigma**2)
    if reml:
        f += np.linalg.slogdet(XVX)[1] - p * np.log(2 * np.pi * sigma**2)
    return f, r2, beta, sigma**2 * np.linalg.inv(XVX)


def _dense_profiled(X, Z, y, codes, G, theta, reml):
    n, p = X.shape
    _, r2, _, _ = _dense_f(X, Z, y, codes, G, theta, 1.0, reml)
    return _dense_f(X, Z, y, codes, G, theta, np.sqrt(r2 / (n - p if reml else n)), reml)[0]


@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("reml", [True, False])
def test_deviance_gradient_hessian_match_dense(q, reml):
    rng = np.random.default_rng(100 + q)
    X, Z, y, codes, G = _data(rng, q)
    stats = group_statistics(X, Z, y, codes, G)
    k = q * (q + 1) // 2
    theta = rng.uniform(0.2, 1.5, k)
    prof = profile(stats, theta, reml)
    assert prof.deviance == pytest.approx(_dense_profiled(X, Z, y, codes, G, theta, reml), abs=DEVIANCE_ATOL)
    beta = stats.beta_offset + np.linalg.solve(stats.x_factor, prof.beta)
    np.testing.assert_allclose(beta, _dense_f(X, Z, y, codes, G, theta, 1.0, reml)[2], rtol=1e-9)

    _, grad = deviance_and_gradient(stats, theta, reml)
    h = 1e-6
    fd = [
        (_dense_profiled(X, Z, y, codes, G, theta + h * e, reml)
         - _dense_profiled(X, Z, y, codes, G, theta - h * e, reml)) / (2 * h)
        for e in np.eye(k)
    ]
    np.testing.assert_allclose(grad, fd, rtol=DERIVATIVE_RTOL, atol=1e-5)

    deriv = varpar_derivatives(stats, theta, reml)
    x0 = np.r_[theta, prof.sigma]
    K = k + 1

    def f(v):
        return _dense_f(X, Z, y, codes, G, v[:-1], v[-1], reml)[0]

    hh = 1e-4
    H = np.array([[
        (f(x0 + hh * a + hh * b) - f(x0 + hh * a - hh * b) - f(x0 - hh * a + hh * b) + f(x0 - hh * a - hh * b))
        / (4 * hh * hh) for b in np.eye(K)] for a in np.eye(K)])
    np.testing.assert_allclose(deriv.hessian, H, rtol=DERIVATIVE_RTOL, atol=1e-4 * np.abs(H).max())

    r_inv = np.linalg.inv(stats.x_factor)
    jac = np.einsum("ab,jbc,dc->jad", r_inv, deriv.jac_vcov_beta, r_inv)
    fd_jac = np.array([
        (_dense_f(X, Z, y, codes, G, (x0 + 1e-6 * e)[:-1], (x0 + 1e-6 * e)[-1], reml)[3]
         - _dense_f(X, Z, y, codes, G, (x0 - 1e-6 * e)[:-1], (x0 - 1e-6 * e)[-1], reml)[3]) / 2e-6
        for e in np.eye(K)])
    np.testing.assert_allclose(jac, fd_jac, rtol=DERIVATIVE_RTOL, atol=1e-6 * np.abs(fd_jac).max())


def test_covariance_derivatives_definition():
    theta = np.array([1.2, -0.3, 0.7])
    D, dD, _ = covariance_derivatives(theta, 2)
    lam = relative_factor(theta, 2)
    np.testing.assert_allclose(D, lam @ lam.T)
    for j in range(3):
        e = np.eye(3)[j] * 1e-7
        fd = (covariance_derivatives(theta + e, 2)[0] - covariance_derivatives(theta - e, 2)[0]) / 2e-7
        np.testing.assert_allclose(dD[j], fd, atol=1e-7)


def _frame(rng, n_groups=40, slope_sd=0.3, intercept_sd=2.0):
    sizes = rng.integers(2, 7, n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    t = np.concatenate([np.sort(rng.uniform(0, 10, s)) for s in sizes])
    arm = np.repeat(rng.choice(["MMF", "AZA"], n_groups), sizes)
    b0 = rng.normal(0, intercept_sd, n_groups)[g]
    b1 = rng.normal(0, slope_sd, n_groups)[g]
    y = 60 + 0.5 * t - 0.2 * t * (arm == "AZA") + b0 + b1 * t + rng.normal(0, 1.5, g.size)
    return pd.DataFrame({"y": y, "t": t, "arm": arm, "g": [f"p{i:03d}" for i in g]})


def test_fit_reaches_a_stationary_point_and_matches_dense_optimum():
    rng = np.random.default_rng(7)
    frame = _frame(rng)
    fit = fit_lmm("y ~ t*arm + (1 + t | g)", frame, factor_levels={"arm": ["MMF", "AZA"]})
    assert fit.converged and not fit.singular
    assert np.max(np.abs(fit.optimizer.gradient)) < 1e-3
    assert min(fit.optimizer.hessian_eigenvalues) > 0
    # Re-verify the optimiser's record with the dense deviance.
    X = np.column_stack([np.ones(len(frame)), frame.t, frame.arm == "AZA", frame.t * (frame.arm == "AZA")]).astype(float)
    Z = np.column_stack([np.ones(len(frame)), frame.t])
    codes = pd.factorize(frame.g, sort=True)[0]
    dense = _dense_profiled(X, Z, frame.y.to_numpy(), codes, codes.max() + 1, fit.theta, True)
    assert fit.criterion == pytest.approx(dense, abs=1e-7)
    for step in (1e-3, -1e-3):  # no nearby point is better
        for j in range(3):
            theta = fit.theta.copy()
            theta[j] += step
            assert _dense_profiled(X, Z, frame.y.to_numpy(), codes, codes.max() + 1, theta, True) >= dense - 1e-9


def test_fitted_values_and_conditional_modes_match_dense_blup():
    rng = np.random.default_rng(8)
    frame = _frame(rng, n_groups=25)
    fit = fit_lmm("y ~ t + (1 + t | g)", frame)
    X = np.column_stack([np.ones(len(frame)), frame.t])
    codes = pd.factorize(frame.g, sort=True)[0]
    G = codes.max() + 1
    D = fit.random_effects.covariance
    Zfull = np.zeros((len(frame), 2 * G))
    for i, c in enumerate(codes):
        Zfull[i, 2 * c : 2 * c + 2] = X[i]
    V = fit.residual_sd**2 * np.eye(len(frame)) + Zfull @ np.kron(np.eye(G), D) @ Zfull.T
    blup = np.kron(np.eye(G), D) @ Zfull.T @ np.linalg.solve(V, frame.y - X @ fit.coef)
    np.testing.assert_allclose(fit.conditional_modes.to_numpy().ravel(), blup, atol=1e-8)
    np.testing.assert_allclose(fit.fitted, X @ fit.coef + Zfull @ blup, atol=1e-8)
    np.testing.assert_allclose(fit.residuals + fit.fitted, frame.y)


def test_singular_fit_is_reached_and_flagged():
    rng = np.random.default_rng(9)
    frame = _frame(rng, n_groups=30)
    # Within-group noise only, centred in each group: no between-group variance at all.
    noise = rng.normal(size=len(frame))
    noise -= pd.Series(noise).groupby(frame.g.to_numpy()).transform("mean").to_numpy()
    frame["y"] = 3.0 + 0.5 * frame.t + noise
    fit = fit_lmm("y ~ t + (1 | g)", frame)
    assert fit.singular
    assert fit.theta[0] == 0.0
    assert any("singular" in m for m in fit.messages)
    # On the boundary a random-intercept model is the linear model: beta is OLS.
    X = np.column_stack([np.ones(len(frame)), frame.t])
    np.testing.assert_allclose(fit.coef, np.linalg.lstsq(X, frame.y, rcond=None)[0], rtol=1e-8)


def test_predict_population_and_conditional():
    rng = np.random.default_rng(10)
    frame = _frame(rng)
    fit = fit_lmm("y ~ t*arm + (1 + t | g)", frame, factor_levels={"arm": ["MMF", "AZA"]})
    new = frame.iloc[:5].copy()
    pop = fit.predict(new)
    X = np.column_stack([np.ones(5), new.t, new.arm == "AZA", new.t * (new.arm == "AZA")]).astype(float)
    np.testing.assert_allclose(pop["estimate"], X @ fit.coef)
    np.testing.assert_allclose(pop["se"], np.sqrt(np.einsum("na,ab,nb->n", X, fit.vcov.to_numpy(), X)))
    cond = fit.predict(new, level="conditional")
    np.testing.assert_allclose(cond["estimate"], fit.fitted[:5])
    new.loc[new.index[0], "g"] = "unknown"
    assert fit.predict(new, level="conditional")["estimate"].iloc[0] == pytest.approx(pop["estimate"].iloc[0])


def test_linear_combination_equals_coefficient_rows():
    rng = np.random.default_rng(11)
    fit = fit_lmm("y ~ t*arm + (1 + t | g)", _frame(rng), factor_levels={"arm": ["MMF", "AZA"]})
    table = fit.linear_combination(np.eye(4))
    np.testing.assert_allclose(table["df"], fit.fixed_effects["df"])
    np.testing.assert_allclose(table["se"], fit.fixed_effects["se"])
    with pytest.raises(ModelError, match="columns"):
        fit.linear_combination([1.0, 0.0])


def test_emmeans_api_for_the_study():
    rng = np.random.default_rng(12)
    fit = fit_lmm("y ~ t*arm + (1 + t | g)", _frame(rng), factor_levels={"arm": ["MMF", "AZA"]})
    months = [0, 3, 6]
    means = fit.emmeans("arm", by="t", at={"t": months}).table
    assert list(means.columns) == ["arm", "t", "estimate", "se", "df", "ci_low", "ci_high"]
    assert list(zip(means.arm, means.t)) == [(a, m) for m in months for a in ("MMF", "AZA")]
    b = fit.coef
    assert means.estimate.iloc[1] == pytest.approx(b[0] + b[2])
    change = fit.contrast("t", by="arm", at={"t": months}, ref=0).table
    assert list(change.contrast) == ["t3 - t0", "t6 - t0"] * 2
    assert change.estimate.iloc[1] == pytest.approx(6 * b[1])
    diff = fit.contrast("arm", by="t", at={"t": months}).table
    assert list(diff.contrast) == ["AZA - MMF"] * 3
    assert diff.estimate.iloc[2] == pytest.approx(b[2] + 6 * b[3])


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y ~ t + (1 | arm)", "at least 2 levels"),
        ("y ~ t + (1 | row)", "must exceed the number of random effects"),
        ("y ~ t + (1 | nope)", "not in the data"),
        ("y ~ t + t2 + (1 | g)", "collinear"),
    ],
)
def test_user_errors(formula, message):
    rng = np.random.default_rng(13)
    frame = _frame(rng, n_groups=6)
    frame["t2"] = 2 * frame["t"]
    frame["row"] = np.arange(len(frame))
    frame.loc[:, "arm"] = "MMF"
    with pytest.raises(ModelError, match=message):
        fit_lmm(formula, frame)
