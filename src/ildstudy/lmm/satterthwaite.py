"""Satterthwaite degrees of freedom for linear combinations of fixed effects, as lmerTest does.

lmerTest (Kuznetsova et al. 2017, JSS 82(13)) works in the variance parameters
varpar = (theta, sigma). For a contrast vector L it takes

    v(varpar)   = L' Var(beta_hat; varpar) L,        Var(beta_hat) = sigma^2 (X'V^{-1}X)^{-1}
    g           = d v / d varpar                      (gradient, length k + 1)
    A           = 2 H^{-1}                            (H: Hessian of the REML/ML deviance in varpar)
    df          = 2 v^2 / (g' A g)

lmerTest obtains H and dVar/dvarpar with numDeriv; here they are exact
(:func:`ildstudy.lmm.deviance.varpar_derivatives`). Like lmerTest, H is inverted on its
eigenvalues above ``HESSIAN_EIGEN_TOL`` only (a pseudo-inverse), so boundary fits still get a df.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.special

from ildstudy.lmm.deviance import VarparDerivatives

HESSIAN_EIGEN_TOL = 1e-8
"""lmerTest's ``tol`` in ``as_lmerModLT``: eigenvalues of H below it are dropped (and reported)."""


@dataclass(frozen=True, slots=True)
class VarianceSensitivity:
    """How Var(beta_hat) depends on the variance parameters, in original coordinates.

    Attributes
    ----------
    vcov_beta : ndarray, shape (p, p)
        Var(beta_hat) = sigma^2 (X'V^{-1}X)^{-1}.
    jac_vcov_beta : ndarray, shape (k + 1, p, p)
        d Var(beta_hat) / d varpar_j, varpar = (theta_1..theta_k, sigma).
    vcov_varpar : ndarray, shape (k + 1, k + 1)
        Asymptotic covariance of varpar, 2 H^+ (lmerTest's ``vcov_varpar``).
    hessian_eigenvalues : ndarray, shape (k + 1,)
        Eigenvalues of H, descending (as R's ``eigen``).
    """

    vcov_beta: np.ndarray
    jac_vcov_beta: np.ndarray
    vcov_varpar: np.ndarray
    hessian_eigenvalues: np.ndarray

    def messages(self) -> tuple[str, ...]:
        """lmerTest's warnings about the Hessian, if any."""
        ev = self.hessian_eigenvalues
        out = []
        neg = ev[ev < -HESSIAN_EIGEN_TOL]
        zero = ev[np.abs(ev) <= HESSIAN_EIGEN_TOL]
        if neg.size:
            out.append(
                f"Hessian of the deviance in (theta, sigma) has {neg.size} negative eigenvalue(s): "
                + " ".join(f"{v:.1e}" for v in neg)
            )
        if zero.size:
            out.append(
                f"Hessian of the deviance in (theta, sigma) has {zero.size} eigenvalue(s) close to zero "
                "(Satterthwaite df use a pseudo-inverse)"
            )
        return tuple(out)


def variance_sensitivity(deriv: VarparDerivatives, x_factor: np.ndarray) -> VarianceSensitivity:
    """Map :class:`VarparDerivatives` to original coordinates and invert H as lmerTest does.

    Parameters
    ----------
    deriv : VarparDerivatives
        In working coordinates, X = X_w R0.
    x_factor : ndarray, shape (p, p)
        R0; beta = R0^{-1} beta_w, so Var(beta) = R0^{-1} Var(beta_w) R0^{-T}.
    """
    r_inv = np.linalg.inv(x_factor)
    vcov = r_inv @ deriv.vcov_beta @ r_inv.T
    jac = np.einsum("ab,jbc,dc->jad", r_inv, deriv.jac_vcov_beta, r_inv)
    values, vectors = np.linalg.eigh(deriv.hessian)
    values, vectors = values[::-1], vectors[:, ::-1]
    pos = values > HESSIAN_EIGEN_TOL
    h_inv = (vectors[:, pos] / values[pos]) @ vectors[:, pos].T
    return VarianceSensitivity(
        vcov_beta=(vcov + vcov.T) / 2,
        jac_vcov_beta=(jac + jac.transpose(0, 2, 1)) / 2,
        vcov_varpar=2.0 * h_inv,
        hessian_eigenvalues=values,
    )


def satterthwaite(L: np.ndarray, sens: VarianceSensitivity) -> tuple[np.ndarray, np.ndarray]:
    """Variance and Satterthwaite df of each row of ``L``.

    Parameters
    ----------
    L : ndarray, shape (m, p)
    sens : VarianceSensitivity

    Returns
    -------
    variance : ndarray, shape (m,)
    df : ndarray, shape (m,)
    """
    L = np.atleast_2d(np.asarray(L, dtype=np.float64))
    variance = np.einsum("ma,ab,mb->m", L, sens.vcov_beta, L)
    grad = np.einsum("ma,jab,mb->mj", L, sens.jac_vcov_beta, L)
    denom = np.einsum("mj,jl,ml->m", grad, sens.vcov_varpar, grad)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, 2.0 * variance**2 / denom, np.nan)
    return variance, df


def linear_combination_table(
    L: np.ndarray,
    beta: np.ndarray,
    sens: VarianceSensitivity,
    level: float = 0.95,
    labels: list[str] | None = None,
) -> pd.DataFrame:
    """Estimate, SE, Satterthwaite df, t, p and CI of each linear combination ``L @ beta``.

    Parameters
    ----------
    L : ndarray, shape (m, p) or (p,)
    beta : ndarray, shape (p,)
    sens : VarianceSensitivity
    level : float
        Confidence level of the interval.
    labels : list of str, optional
        Row labels (column ``contrast``).

    Returns
    -------
    DataFrame
        Columns ``[contrast,] estimate, se, df, t, p, ci_low, ci_high``; one row per row of L.
        p is two-sided and unadjusted for multiplicity.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    L = np.atleast_2d(np.asarray(L, dtype=np.float64))
    if L.shape[1] != beta.shape[0]:
        raise ValueError(f"L has {L.shape[1]} columns but the model has {beta.shape[0]} fixed effects")
    estimate = L @ beta
    variance, df = satterthwaite(L, sens)
    se = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = estimate / se
    # Student t via scipy.special (importing scipy.stats costs more than a whole small fit).
    p = 2.0 * scipy.special.stdtr(df, -np.abs(t))
    half = scipy.special.stdtrit(df, 0.5 + level / 2.0) * se
    table = pd.DataFrame(
        {"estimate": estimate, "se": se, "df": df, "t": t, "p": p,
         "ci_low": estimate - half, "ci_high": estimate + half}
    )
    if labels is not None:
        table.insert(0, "contrast", list(labels))
    return table
