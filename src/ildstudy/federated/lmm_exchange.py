"""The exact pooled REML fit from site aggregates: one exchange of sums per value of theta.

The profiled REML deviance, its gradient and lmerTest's Hessian in (theta, sigma)
(:mod:`ildstudy.lmm.deviance`) are sums over patients of functions of each patient's q x q
block at a given theta. Writing, for patient g in working coordinates (see :mod:`ildstudy.lmm.stats`),
A = Z'Z, B = Z'X_w, c = Z'y_w, D = Lambda Lambda', T = (I + A D)^{-1}, W = T B, t = T c and
S = T A, every quantity the pooled fit needs is a polynomial in beta_hat (and C = (X'V^{-1}X)^{-1})
whose coefficients are *sums over patients that do not depend on beta*:

    logdet = sum log|I + A D|          BtW  = sum B (x) W         BDt = sum B' D t    cDt = sum c' D t
    sumS   = sum S                      WtW  = sum W (x) W         tt  = sum t t'      Wt  = sum W (x) t
    SS     = sum S (x) S                ttS  = sum t t' (x) S      WtS = sum W (x) t (x) S
    WWS    = sum W (x) W (x) S

(e = t - W beta gives sum e e' = tt - 2 sym(Wt beta) + beta'WtW beta, and likewise for the terms with
S). A site answers a request for theta with these sums over its own patients
(:func:`site_moments`); the coordinator adds the sites' answers and evaluates the deviance,
gradient and Hessian exactly as the pooled code does (:func:`pooled_derivatives`), then takes its
next optimiser step. Nothing per patient leaves a site; the number of rounds is the number of
theta values the optimiser evaluates (L-BFGS-B then Newton, as :mod:`ildstudy.lmm.optimize`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from ildstudy.errors import ModelError
from ildstudy.lmm.deviance import covariance_derivatives, theta_lower_bounds, theta_positions
from ildstudy.lmm.optimize import RESTART_VALUES, SINGULAR_TOL, OptimizerRecord, check_convergence
from ildstudy.lmm.options import OptimizerOptions

MOMENT_NAMES = ("logdet", "BtW", "BDt", "cDt", "sumS", "WtW", "tt", "Wt", "SS", "ttS", "WtS", "WWS",
                "XtX", "Xty", "yty", "n")
"""The sums a site returns for one theta (working coordinates), in the order written to files."""


@dataclass(frozen=True, slots=True)
class SiteRows:
    """One model's rows at one site. Kept at the site (private state); never written to a site file.

    Attributes
    ----------
    X : ndarray, shape (n, p)
    Z : ndarray, shape (n, q)
    y : ndarray, shape (n,)
    codes : ndarray of int64, shape (n,)
        Patient index 0..G-1 of each row.
    n_groups : int
    """

    X: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    n_groups: int


@dataclass(frozen=True, slots=True)
class Working:
    """The pooled working coordinates the coordinator sends with every request.

    Attributes
    ----------
    x_factor : ndarray, shape (p, p)
        R0, upper Cholesky factor of the pooled X'X (X = X_w R0).
    beta_offset : ndarray, shape (p,)
        Pooled OLS coefficients (y_w = y - X beta_offset).
    """

    x_factor: np.ndarray
    beta_offset: np.ndarray


def working_coordinates(XtX: np.ndarray, Xty: np.ndarray, names: tuple[str, ...]) -> Working:
    """R0 and the OLS offset from the pooled X'X and X'y, as :func:`ildstudy.lmm.stats.group_statistics`.

    Raises
    ------
    ModelError
        Collinear or all-zero fixed-effects columns in the pooled design.
    """
    from ildstudy.lmm.stats import _x_factor  # the same collinearity check and message as the pooled fit

    R0 = _x_factor(np.asarray(XtX, dtype=float), names)
    return Working(x_factor=R0, beta_offset=scipy.linalg.cho_solve((R0, False), np.asarray(Xty, dtype=float)))


def _group_blocks(rows: SiteRows, working: Working) -> tuple[np.ndarray, ...]:
    """Per-patient A, B_w, c_w and the site's X_w'X_w, X_w'y_w, y_w'y_w (all in working coordinates)."""
    X, Z, codes, G = rows.X, rows.Z, rows.codes, rows.n_groups
    n, p = X.shape
    q = Z.shape[1]
    resid = rows.y - X @ working.beta_offset
    Xw = scipy.linalg.solve_triangular(working.x_factor, X.T, trans="T").T
    A = np.empty((G, q, q))
    B = np.empty((G, q, p))
    c = np.empty((G, q))
    for k in range(q):
        for m in range(k, q):
            A[:, k, m] = A[:, m, k] = np.bincount(codes, weights=Z[:, k] * Z[:, m], minlength=G)
        c[:, k] = np.bincount(codes, weights=Z[:, k] * resid, minlength=G)
        for j in range(p):
            B[:, k, j] = np.bincount(codes, weights=Z[:, k] * Xw[:, j], minlength=G)
    return A, B, c, Xw.T @ Xw, Xw.T @ resid, float(resid @ resid)


def site_moments(rows: SiteRows, working: Working, theta: np.ndarray) -> dict[str, np.ndarray | float]:
    """The sums over this site's patients at ``theta`` (see the module docstring for each name).

    Parameters
    ----------
    rows : SiteRows
        The site's own model rows (they stay at the site).
    working : Working
        Pooled working coordinates from the coordinator's request.
    theta : ndarray, shape (k,)

    Returns
    -------
    dict
        Keys :data:`MOMENT_NAMES`; arrays whose shapes depend only on q and p, never on the number
        of patients.
    """
    theta = np.asarray(theta, dtype=float)
    A, B, c, XtX, Xty, yty = _group_blocks(rows, working)
    G, q, p = B.shape
    D, _, _ = covariance_derivatives(theta, q)
    M = np.eye(q) + A @ D
    sign, logdet = np.linalg.slogdet(M)
    T = np.linalg.inv(M)
    W = T @ B
    t = (T @ c[:, :, None])[:, :, 0]
    S = T @ A
    S = (S + S.transpose(0, 2, 1)) / 2
    Dt = t @ D.T
    return {
        "logdet": float(np.sum(logdet)),
        "BtW": np.einsum("gka,glb->kalb", B, W),
        "BDt": np.einsum("gka,gk->a", B, Dt),
        "cDt": float(np.sum(c * Dt)),
        "sumS": S.sum(axis=0),
        "WtW": np.einsum("gka,glb->klab", W, W),
        "tt": t.T @ t,
        "Wt": np.einsum("gap,gb->apb", W, t),
        "SS": np.einsum("gab,gcd->abcd", S, S),
        "ttS": np.einsum("gb,gd,gac->bdac", t, t, S),
        "WtS": np.einsum("gbp,gd,gac->bpdac", W, t, S),
        "WWS": np.einsum("gap,gbr,gcd->abprcd", W, W, S),
        "XtX": XtX, "Xty": Xty, "yty": yty, "n": int(len(rows.y)),
    }


def add_moments(answers: list[dict]) -> dict[str, np.ndarray | float]:
    """Sum the sites' answers for one theta, key by key."""
    out = {}
    for name in MOMENT_NAMES:
        values = [np.asarray(a[name], dtype=float) for a in answers]
        total = np.sum(values, axis=0)
        out[name] = float(total) if total.ndim == 0 else total
    out["n"] = int(round(out["n"]))
    return out


@dataclass(frozen=True, slots=True)
class PooledDerivatives:
    """The pooled evaluation at one theta (working coordinates), as :class:`ildstudy.lmm.deviance.VarparDerivatives`.

    Attributes
    ----------
    theta : ndarray, shape (k,)
    deviance : float
    gradient : ndarray, shape (k,)
    profiled_hessian : ndarray, shape (k, k)
    hessian : ndarray, shape (k + 1, k + 1)
        lmerTest's Hessian in (theta, sigma).
    vcov_beta : ndarray, shape (p, p)
    jac_vcov_beta : ndarray, shape (k + 1, p, p)
    beta : ndarray, shape (p,)
    sigma : float
    """

    theta: np.ndarray
    deviance: float
    gradient: np.ndarray
    profiled_hessian: np.ndarray
    hessian: np.ndarray
    vcov_beta: np.ndarray
    jac_vcov_beta: np.ndarray
    beta: np.ndarray
    sigma: float


def pooled_derivatives(m: dict, theta: np.ndarray, q: int, logdet_x_factor: float, reml: bool = True
                       ) -> PooledDerivatives:
    """Deviance, gradient and Hessian from the summed moments; the formulas of
    :func:`ildstudy.lmm.deviance.profile` and :func:`~ildstudy.lmm.deviance.varpar_derivatives`
    with every per-patient sum replaced by its expansion in beta."""
    theta = np.asarray(theta, dtype=float)
    k = len(theta)
    p = m["XtX"].shape[0]
    D, dD, d2D = covariance_derivatives(theta, q)
    XVX = m["XtX"] - np.einsum("kl,kalb->ab", D, m["BtW"])
    XVX = (XVX + XVX.T) / 2
    XVy = m["Xty"] - m["BDt"]
    yVy = m["yty"] - m["cDt"]
    n = m["n"]
    nu = n - p if reml else n
    nan = np.full(k, np.nan)
    try:
        R = scipy.linalg.cholesky(XVX, lower=False)
    except np.linalg.LinAlgError:
        R = None
    beta = scipy.linalg.cho_solve((R, False), XVy) if R is not None else np.full(p, np.nan)
    r2 = yVy - float(beta @ XVy) if R is not None else np.nan
    if R is None or not (r2 > 0 and np.isfinite(r2)):
        return PooledDerivatives(theta, np.inf, nan, np.full((k, k), np.nan), np.full((k + 1, k + 1), np.nan),
                                 np.full((p, p), np.nan), np.full((k + 1, p, p), np.nan), beta, np.nan)
    deviance = m["logdet"] + nu * (1.0 + np.log(2.0 * np.pi * r2 / nu))
    if reml:
        deviance += 2.0 * float(np.sum(np.log(np.diag(R)))) + logdet_x_factor
    C = scipy.linalg.cho_solve((R, False), np.eye(p))
    C = (C + C.T) / 2
    s2 = r2 / nu
    sigma = float(np.sqrt(s2))
    WtW, Wt, WtS, WWS = m["WtW"], m["Wt"], m["WtS"], m["WWS"]
    Wb_t = np.einsum("bpa,p->ab", Wt, beta)  # sum t_a (W beta)_b
    E = m["tt"] - Wb_t - Wb_t.T + np.einsum("abpr,p,r->ab", WtW, beta, beta)
    tWS = np.einsum("dpbac,p->bdac", WtS, beta)  # sum t_b (W beta)_d S_ac
    ESE = m["ttS"] - tWS - tWS.transpose(1, 0, 2, 3) + np.einsum("bdprac,p,r->bdac", WWS, beta, beta)
    U = Wt - np.einsum("abpr,r->apb", WtW, beta)
    sum_S = m["sumS"]
    Q = np.einsum("jkl,klab->jab", dD, WtW)
    Q2 = np.einsum("jmkl,klab->jmab", d2D, WtW)
    trSS = np.einsum("jbc,mda,abcd->jm", dD, dD, m["SS"])
    u = np.einsum("jab,apb->jp", dD, U)
    ySSy = np.einsum("jab,mcd,bdac->jm", dD, dD, ESE) - u @ C @ u.T
    tr_PVjl = np.einsum("ab,jlba->jl", sum_S, d2D)
    tr_PVjPVl = trSS
    if reml:
        OS = np.einsum("pr,abprcd->abcd", C, WWS)
        tr_omegaS = np.einsum("jbc,mda,abcd->jm", dD, dD, OS)
        CQ = C @ Q
        tr_PVjl = tr_PVjl - np.einsum("ab,jlba->jl", C, Q2)
        tr_PVjPVl = trSS - tr_omegaS - tr_omegaS.T + np.einsum("jab,lba->jl", CQ, CQ)
    yPVjlPy = np.einsum("ab,jlba->jl", E, d2D)
    yPVjPy = np.einsum("ab,jba->j", E, dD)
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = tr_PVjl - tr_PVjPVl + (2.0 * ySSy - yPVjlPy) / s2
    H[:k, k] = H[k, :k] = 2.0 * yPVjPy / sigma**3
    H[k, k] = 6.0 * r2 / sigma**4 - 2.0 * nu / s2
    H = (H + H.T) / 2
    jac = np.empty((k + 1, p, p))
    jac[:k] = s2 * np.einsum("ab,jbc,cd->jad", C, Q, C)
    jac[k] = 2.0 * sigma * C
    profiled = H[:k, :k] - np.outer(H[:k, k], H[:k, k]) / H[k, k]
    grad = np.einsum("ab,jba->j", sum_S, dD) - nu / r2 * yPVjPy
    if reml:
        grad -= np.einsum("jab,ba->j", Q, C)
    return PooledDerivatives(theta=theta, deviance=float(deviance), gradient=grad,
                             profiled_hessian=(profiled + profiled.T) / 2, hessian=H, vcov_beta=s2 * C,
                             jac_vcov_beta=jac, beta=beta, sigma=sigma)


class AnswersNeeded(Exception):
    """Raised by an evaluator when the sites have not yet answered for ``theta`` (file exchange)."""

    def __init__(self, theta: np.ndarray):
        super().__init__(f"site answers needed at theta = {list(map(float, theta))}")
        self.theta = np.asarray(theta, dtype=float)


Evaluator = Callable[[np.ndarray], PooledDerivatives]


def optimize_pooled(evaluate: Evaluator, q: int, options: OptimizerOptions | None = None
                    ) -> tuple[OptimizerRecord, object, PooledDerivatives]:
    """Minimise the pooled profiled deviance over theta, as :func:`ildstudy.lmm.optimize.optimize_theta`.

    ``evaluate(theta)`` returns the pooled evaluation (in-process sites) or raises
    :class:`AnswersNeeded` (file exchange: the caller writes a request and stops; rerunning replays
    the same deterministic sequence of theta values from the stored answers).

    Returns
    -------
    OptimizerRecord, Convergence, PooledDerivatives
    """
    options = options or OptimizerOptions()
    lower = theta_lower_bounds(q)
    start = np.array([1.0 if r == c else 0.0 for r, c in theta_positions(q)])
    count = [0]

    def ev(theta):
        count[0] += 1
        return evaluate(np.maximum(np.asarray(theta, dtype=float), lower))

    best = _from(ev, start, lower, q, options)
    zero = np.isfinite(lower) & (np.array(best[0].final) <= SINGULAR_TOL)
    if zero.any():
        for value in RESTART_VALUES:
            trial = _from(ev, np.where(zero, value, np.array(best[0].final)), lower, q, options)
            if trial[0].criterion < best[0].criterion - 1e-9 * max(1.0, abs(best[0].criterion)):
                best = trial
    record, convergence, deriv = best
    fields = {name: getattr(record, name) for name in record.__slots__}
    return OptimizerRecord(**{**fields, "evaluations": count[0], "options": options}), convergence, deriv


def _from(ev, theta0, lower, q, options):
    def objective(theta):
        d = ev(theta)
        if not np.isfinite(d.deviance):
            return 1e300, np.zeros_like(theta)
        return d.deviance, d.gradient

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    result = scipy.optimize.minimize(
        objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": options.max_iterations, "maxfun": options.max_evaluations,
                 "ftol": options.ftol, "gtol": options.gtol, "maxcor": options.memory})
    theta = np.maximum(np.asarray(result.x, dtype=float), lower)
    theta, d = _newton(ev, theta, lower, options)
    convergence = check_convergence(theta, lower, d.gradient, d.profiled_hessian, q, bool(result.success), options)
    free = ~(np.isfinite(lower) & (theta <= lower + 1e-10) & (d.gradient >= 0))
    eig = np.linalg.eigvalsh(d.profiled_hessian[np.ix_(free, free)]) if free.any() else np.array([])
    record = OptimizerRecord(
        method="federated L-BFGS-B+Newton", start=tuple(map(float, theta0)), final=tuple(map(float, theta)),
        lower=tuple(map(float, lower)), evaluations=0, criterion=float(d.deviance),
        gradient=tuple(map(float, d.gradient)), hessian_eigenvalues=tuple(map(float, eig)),
        returned=str(result.message), options=options)
    return record, convergence, d


def _newton(ev, theta, lower, options):
    """Bounded Newton polish with step halving, as :func:`ildstudy.lmm.optimize._newton_polish`."""
    theta = np.where(np.isfinite(lower) & (theta < lower + 1e-10), lower, theta)
    d = ev(theta)
    for _ in range(options.newton_steps):
        free = ~(np.isfinite(lower) & (theta <= lower + 1e-10) & (d.gradient >= 0))
        if not free.any():
            break
        h = d.profiled_hessian[np.ix_(free, free)]
        if not np.all(np.isfinite(h)) or np.linalg.eigvalsh(h)[0] <= 0:
            break
        step = np.zeros_like(theta)
        step[free] = -np.linalg.solve(h, d.gradient[free])
        if np.max(np.abs(step)) < options.newton_step_tol * max(1.0, float(np.max(np.abs(theta)))):
            break
        trial = np.maximum(theta + step, lower)
        td = ev(trial)
        halvings = 0
        while not td.deviance <= d.deviance and halvings < 30:
            step /= 2
            halvings += 1
            trial = np.maximum(theta + step, lower)
            td = ev(trial)
        if not td.deviance <= d.deviance:
            break
        improvement = d.deviance - td.deviance
        theta, d = trial, td
        if improvement < 1e-12 * max(1.0, abs(d.deviance)):
            break
    theta_b = np.where(np.isfinite(lower) & (theta < lower + 1e-10), lower, theta)
    if np.any(theta_b != theta):
        theta, d = theta_b, ev(theta_b)
    return theta, d


def check_site_size(n_groups: int, min_patients: int, what: str) -> None:
    """Refuse to answer for a model with fewer than ``min_patients`` patients at the site.

    Raises
    ------
    ModelError
    """
    if n_groups < min_patients:
        raise ModelError(f"{what}: the site has {n_groups} patient(s) with measurements, fewer than the "
                         f"minimum of {min_patients}; its sums could reveal individual values")
