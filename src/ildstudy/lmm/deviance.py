"""The profiled deviance of a linear mixed model, its gradient and its Hessian, from group sums.

Model (Bates et al. 2015, JSS 67(1), section 3): y = X beta + Z b + e with, for each group i,
b_i ~ N(0, sigma^2 Lambda Lambda') and e ~ N(0, sigma^2 I). Lambda is the q x q lower-triangular
relative covariance factor; theta holds its lower-triangle elements column by column (lme4's
order), diagonal elements bounded below by 0. Write D = Lambda Lambda' and, per group,
V_i = I + Z_i D Z_i' (marginal covariance over sigma^2). With A_i = Z_i'Z_i, B_i = Z_i'X_i,
c_i = Z_i'y_i everything reduces to q x q algebra per group:

    T_i = (I + A_i D)^{-1},  Z_i'V_i^{-1} = T_i Z_i',  log|V_i| = log|I + Lambda'A_i Lambda|
    X'V^{-1}X = X'X - sum_i B_i' D T_i B_i,  X'V^{-1}y = X'y - sum_i B_i' D T_i c_i, ...

so that, with r^2 the penalised residual sum of squares at beta_hat(theta) and nu = n - p (REML)
or n (ML), the profiled deviance is

    REML: log|V| + log|X'V^{-1}X| + nu (1 + log(2 pi r^2 / nu))
    ML:   log|V|                 + nu (1 + log(2 pi r^2 / nu))

which equals lme4's ``ldL2 + ldRX2 + ...`` (log|L_theta|^2 = log|V| by Sylvester's identity). The
exact gradient in theta and the exact Hessian in lmerTest's parameters (theta, sigma) follow from
d V / d theta_j = Z D_j Z' with D_j = dD/dtheta_j and P = V^{-1} - V^{-1}X(X'V^{-1}X)^{-1}X'V^{-1}:
tr(P V_j), y'P V_j P y and their derivatives, which again reduce to per-group q x q products.
No n x n matrix is formed and there is no Python loop over groups: per-group matrices are stacked
as arrays of shape (G, q, q) and (G, q, p), multiplied with batched ``matmul``, and sums over groups
are single BLAS products of the (G, q*p) stacks (laid out so that the long dimension is the inner
one, which OpenBLAS handles far better than a tall-skinny right product).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ildstudy.lmm.stats import GroupStats


def theta_positions(q: int) -> list[tuple[int, int]]:
    """(row, column) in Lambda of each theta element: lower triangle, column-major (lme4)."""
    return [(r, c) for c in range(q) for r in range(c, q)]


def theta_lower_bounds(q: int) -> np.ndarray:
    """lme4's ``lower``: 0 for diagonal elements of Lambda, -inf otherwise. Shape (q(q+1)/2,)."""
    return np.array([0.0 if r == c else -np.inf for r, c in theta_positions(q)])


def relative_factor(theta: np.ndarray, q: int) -> np.ndarray:
    """Lambda, shape (q, q), from theta."""
    lam = np.zeros((q, q))
    for value, (r, c) in zip(theta, theta_positions(q)):
        lam[r, c] = value
    return lam


def covariance_derivatives(theta: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D = Lambda Lambda' and its first and second derivatives in theta.

    Returns
    -------
    D : ndarray, shape (q, q)
    dD : ndarray, shape (k, q, q)
        dD[j] = E_j Lambda' + Lambda E_j' with E_j the unit matrix at theta_j's position.
    d2D : ndarray, shape (k, k, q, q)
        d2D[j, l] = E_j E_l' + E_l E_j' (constant in theta).
    """
    lam = relative_factor(theta, q)
    positions = theta_positions(q)
    k = len(positions)
    units = np.zeros((k, q, q))
    for j, (r, c) in enumerate(positions):
        units[j, r, c] = 1.0
    dD = units @ lam.T + lam @ units.transpose(0, 2, 1)
    prod = np.einsum("jab,lcb->jlac", units, units)
    d2D = prod + prod.transpose(1, 0, 2, 3)
    return lam @ lam.T, dD, d2D


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything at one theta, in the working coordinates of :class:`GroupStats`.

    Attributes
    ----------
    theta : ndarray, shape (k,)
    deviance : float
        Profiled REML criterion or ML deviance in *original* coordinates (comparable with lme4).
    beta : ndarray, shape (p,)
        beta_hat(theta) in working coordinates.
    r2 : float
        Penalised residual sum of squares.
    sigma : float
        sigma_hat(theta) = sqrt(r2 / nu).
    nu : int
        n - p (REML) or n (ML).
    C : ndarray, shape (p, p)
        (X_w'V^{-1}X_w)^{-1}.
    T : ndarray, shape (G, q, q)
        (I + A_i D)^{-1}.
    W : ndarray, shape (G, q, p)
        Z_i'V_i^{-1}X_w,i = T_i B_i.
    WtW : ndarray, shape (q, q, p, p)
        sum_i W_ik W_il' for every pair of random-effect columns k, l.
    e : ndarray, shape (G, q)
        Z_i'V_i^{-1}(y_i - X_i beta_hat); the conditional modes are b_i = D e_i.
    reml : bool
    """

    theta: np.ndarray
    deviance: float
    beta: np.ndarray
    r2: float
    sigma: float
    nu: int
    C: np.ndarray
    T: np.ndarray
    W: np.ndarray
    WtW: np.ndarray
    e: np.ndarray
    reml: bool


def profile(stats: GroupStats, theta: np.ndarray, reml: bool) -> Profile:
    """Evaluate the profiled deviance and the quantities it is built from at ``theta``."""
    theta = np.asarray(theta, dtype=np.float64)
    q, p, n, G = stats.q, stats.p, stats.n, stats.n_groups
    D, _, _ = covariance_derivatives(theta, q)
    A, B, c = stats.ZtZ, stats.ZtX, stats.Zty
    T, logdet = _inverse_and_logdet(np.eye(q) + (D.T @ A.reshape(G * q, q).T).T.reshape(G, q, q))
    W = np.matmul(T, B, out=np.empty_like(B))
    Tc = np.matmul(T, c[:, :, None])[:, :, 0]
    B2, W2 = B.reshape(G, q * p), W.reshape(G, q * p)
    BtW = (B2.T @ W2).reshape(q, p, q, p)
    XVX = stats.XtX - np.einsum("kl,kalb->ab", D, BtW)
    XVX = (XVX + XVX.T) / 2
    DTc = Tc @ D.T
    XVy = stats.Xty - np.einsum("kpk->p", (B2.T @ DTc).reshape(q, p, q))
    yVy = stats.yty - float(np.sum(c * DTc))
    nu = n - p if reml else n
    try:
        R = scipy.linalg.cholesky(XVX, lower=False)
    except np.linalg.LinAlgError:
        return _failed(theta, stats, reml, nu)
    beta = scipy.linalg.cho_solve((R, False), XVy)
    r2 = yVy - float(beta @ XVy)
    if not (r2 > 0 and np.isfinite(r2)):
        return _failed(theta, stats, reml, nu)
    deviance = float(np.sum(logdet)) + nu * (1.0 + np.log(2.0 * np.pi * r2 / nu))
    if reml:
        deviance += 2.0 * float(np.sum(np.log(np.diag(R)))) + stats.logdet_x_factor
    C = scipy.linalg.cho_solve((R, False), np.eye(p))
    e = Tc - (W.reshape(G * q, p) @ beta).reshape(G, q)
    WtW = (W2.T @ W2).reshape(q, p, q, p).transpose(0, 2, 1, 3)
    return Profile(
        theta=theta, deviance=deviance, beta=beta, r2=r2, sigma=float(np.sqrt(r2 / nu)), nu=nu,
        C=(C + C.T) / 2, T=T, W=W, WtW=WtW, e=e, reml=reml,
    )


def deviance_and_gradient(stats: GroupStats, theta: np.ndarray, reml: bool) -> tuple[float, np.ndarray]:
    """Profiled deviance and its exact gradient in theta, shape (k,).

    d/dtheta_j = tr(P V_j) - nu y'P V_j P y / r^2 with tr(P V_j) = sum_i tr(S_i D_j) - tr(C Q_j)
    (the second term REML only), S_i = T_i A_i, Q_j = sum_i W_i' D_j W_i, y'PV_jPy = sum_i e_i'D_j e_i.
    """
    prof = profile(stats, theta, reml)
    k = len(theta)
    if not np.isfinite(prof.deviance):
        return prof.deviance, np.full(k, np.nan)
    _, dD, _ = covariance_derivatives(prof.theta, stats.q)
    sum_S = np.einsum("gab,gbc->ac", prof.T, stats.ZtZ)
    E = prof.e.T @ prof.e
    grad = np.einsum("ab,jba->j", sum_S, dD) - prof.nu / prof.r2 * np.einsum("ab,jba->j", E, dD)
    if reml:
        grad -= np.einsum("jkl,klab,ba->j", dD, prof.WtW, prof.C)
    return prof.deviance, grad


@dataclass(frozen=True, slots=True)
class VarparDerivatives:
    """Second-order quantities at theta, in lmerTest's parameters varpar = (theta, sigma).

    Attributes
    ----------
    hessian : ndarray, shape (k + 1, k + 1)
        Hessian of the (non-profiled) deviance f(theta, sigma) -- lmerTest's ``devfun_vp`` --
        at sigma = sigma_hat(theta).
    vcov_beta : ndarray, shape (p, p)
        sigma^2 (X_w'V^{-1}X_w)^{-1} (working coordinates).
    jac_vcov_beta : ndarray, shape (k + 1, p, p)
        Derivative of ``vcov_beta`` with respect to each element of varpar.
    profiled_hessian : ndarray, shape (k, k)
        Hessian of the profiled deviance in theta (Schur complement of sigma).
    gradient : ndarray, shape (k,)
        Gradient of the profiled deviance in theta.
    deviance : float
        Profiled deviance at theta.
    profile : Profile
        The evaluation at theta these derivatives were computed from.
    """

    hessian: np.ndarray
    vcov_beta: np.ndarray
    jac_vcov_beta: np.ndarray
    profiled_hessian: np.ndarray
    gradient: np.ndarray
    deviance: float
    profile: Profile


def varpar_derivatives(stats: GroupStats, theta: np.ndarray, reml: bool) -> VarparDerivatives:
    """Exact Hessian of lmerTest's deviance in (theta, sigma) at sigma = sigma_hat(theta).

    With P as in the module docstring, V_j = Z D_j Z', V_jl = Z d2D_jl Z' and nu as above:

        d2f/dtheta_j dtheta_l = tr(P V_jl) - tr(P V_j P V_l) + (2 y'PV_jPV_lPy - y'PV_jlPy) / s^2
        d2f/dtheta_j dsigma   = 2 y'P V_j P y / s^3
        d2f/dsigma^2          = 6 r^2 / s^4 - 2 nu / s^2

    where Z'PZ = blockdiag(S_i) - W C W' gives every trace as per-group q x q products
    (for ML, P is replaced by V^{-1} in the two trace terms only).
    """
    prof = profile(stats, theta, reml)
    q, k, G, p = stats.q, len(theta), stats.n_groups, stats.p
    _, dD, d2D = covariance_derivatives(prof.theta, q)
    C, W, e, s2 = prof.C, prof.W, prof.e, prof.sigma**2
    # Per-group q x q matrices enter only through a few "moments" over groups, each one BLAS
    # product of (G, q*q) stacks; everything below them is k x k algebra.
    S = prof.T @ stats.ZtZ  # (G, q, q): Z_i'V_i^{-1}Z_i
    S = (S + S.transpose(0, 2, 1)) / 2
    S2 = S.reshape(G, q * q)
    sum_S = S2.sum(axis=0).reshape(q, q)
    E = e.T @ e
    Q = np.einsum("jkl,klab->jab", dD, prof.WtW)
    Q2 = np.einsum("jmkl,klab->jmab", d2D, prof.WtW)
    SS = (S2.T @ S2).reshape(q, q, q, q)  # sum_i S[a,b] S[c,d]
    trSS = np.einsum("jbc,mda,abcd->jm", dD, dD, SS)  # sum_i tr(S_i D_j S_i D_m)
    ee = (e[:, :, None] * e[:, None, :]).reshape(G, q * q)
    ESE = (ee.T @ S2).reshape(q, q, q, q)  # sum_i e_b e_d S[a,c] at [b,d,a,c]
    W2 = W.reshape(G, q * p)
    U = (W2.T @ e).reshape(q, p, q)  # sum_i W_i[a,:] e_i[b] at [a,:,b]
    u = np.einsum("jab,apb->jp", dD, U)  # sum_i W_i' D_j e_i
    ySSy = np.einsum("jab,mcd,bdac->jm", dD, dD, ESE) - u @ C @ u.T
    tr_PVjl = np.einsum("ab,jlba->jl", sum_S, d2D)
    tr_PVjPVl = trSS
    if reml:
        WC = (C @ W.reshape(G * q, p).T).T.reshape(G, q, p)
        omega = np.einsum("gap,gbp->gab", WC, W)  # W_i C W_i'
        OS = (omega.reshape(G, q * q).T @ S2).reshape(q, q, q, q)
        tr_omegaS = np.einsum("jbc,mda,abcd->jm", dD, dD, OS)  # sum_i tr(Omega_i D_j S_i D_m)
        CQ = C @ Q
        tr_PVjl = tr_PVjl - np.einsum("ab,jlba->jl", C, Q2)
        tr_PVjPVl = trSS - tr_omegaS - tr_omegaS.T + np.einsum("jab,lba->jl", CQ, CQ)
    yPVjlPy = np.einsum("ab,jlba->jl", E, d2D)
    yPVjPy = np.einsum("ab,jba->j", E, dD)
    sigma = prof.sigma
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = tr_PVjl - tr_PVjPVl + (2.0 * ySSy - yPVjlPy) / s2
    H[:k, k] = H[k, :k] = 2.0 * yPVjPy / sigma**3
    H[k, k] = 6.0 * prof.r2 / sigma**4 - 2.0 * prof.nu / s2
    H = (H + H.T) / 2
    jac = np.empty((k + 1,) + C.shape)
    jac[:k] = s2 * np.einsum("ab,jbc,cd->jad", C, Q, C)
    jac[k] = 2.0 * sigma * C
    profiled = H[:k, :k] - np.outer(H[:k, k], H[:k, k]) / H[k, k]
    grad = np.einsum("ab,jba->j", sum_S, dD) - prof.nu / prof.r2 * yPVjPy
    if reml:
        grad -= np.einsum("jab,ba->j", Q, C)
    return VarparDerivatives(
        hessian=H, vcov_beta=s2 * C, jac_vcov_beta=jac, profiled_hessian=(profiled + profiled.T) / 2,
        gradient=grad, deviance=prof.deviance, profile=prof,
    )


def _inverse_and_logdet(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log-determinant of every q x q block of M, shape (G, q, q) -> ((G, q, q), (G,)).

    Closed forms for q = 1, 2; batched LAPACK beyond. Every block here is I + A_i D, whose
    eigenvalues are >= 1, so the determinant is positive and well away from 0.
    """
    q = M.shape[1]
    if q == 1:
        return 1.0 / M, np.log(M[:, 0, 0])
    if q == 2:
        a, b, c, d = M[:, 0, 0], M[:, 0, 1], M[:, 1, 0], M[:, 1, 1]
        det = a * d - b * c
        inv = np.empty_like(M)
        inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 0], inv[:, 1, 1] = d / det, -b / det, -c / det, a / det
        return inv, np.log(det)
    _, logdet = np.linalg.slogdet(M)
    return np.linalg.inv(M), logdet


def _failed(theta: np.ndarray, stats: GroupStats, reml: bool, nu: int) -> Profile:
    q, p, G = stats.q, stats.p, stats.n_groups
    nan = np.full(p, np.nan)
    return Profile(
        theta=theta, deviance=np.inf, beta=nan, r2=np.nan, sigma=np.nan, nu=nu,
        C=np.full((p, p), np.nan), T=np.full((G, q, q), np.nan), W=np.full((G, q, p), np.nan),
        WtW=np.full((q, q, p, p), np.nan), e=np.full((G, q), np.nan), reml=reml,
    )
