"""Per-group sufficient statistics of a linear mixed model with one grouping factor.

Everything the profiled deviance needs is a handful of small cross-products per group
(Z_i'Z_i, Z_i'X_i, Z_i'y_i) plus X'X, X'y and y'y; they are computed here once, in a few
vectorised passes over the rows (``np.bincount`` and one sparse-times-dense product per column of
Z), and the optimiser never sees the rows again.

For numerical stability the statistics are kept in *working coordinates*: the response is
replaced by its ordinary-least-squares residual ``y - X beta_ols`` and the fixed-effects columns
are whitened, ``X = X_w R0`` with ``R0`` the Cholesky factor of X'X, so that X_w'X_w = I. The
mixed-model fit is invariant to both changes; :mod:`ildstudy.lmm.fit` maps results back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse

from ildstudy.errors import ModelError


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Sufficient statistics in working coordinates (see the module docstring).

    Attributes
    ----------
    ZtZ : ndarray, shape (G, q, q)
        Z_i'Z_i for each group i.
    ZtX : ndarray, shape (G, q, p)
        Z_i'X_w,i.
    Zty : ndarray, shape (G, q)
        Z_i'y_w,i.
    XtX : ndarray, shape (p, p)
        X_w'X_w (the identity up to rounding).
    Xty : ndarray, shape (p,)
        X_w'y_w (zero up to rounding).
    yty : float
        y_w'y_w, the OLS residual sum of squares.
    n : int
        Number of observations.
    x_factor : ndarray, shape (p, p)
        Upper-triangular R0 with X = X_w R0.
    beta_offset : ndarray, shape (p,)
        OLS coefficients subtracted from y: y_w = y - X beta_offset.
    group_sizes : ndarray of int64, shape (G,)
        Observations per group.
    """

    ZtZ: np.ndarray
    ZtX: np.ndarray
    Zty: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n: int
    x_factor: np.ndarray
    beta_offset: np.ndarray
    group_sizes: np.ndarray

    @property
    def q(self) -> int:
        """Random effects per group."""
        return self.ZtZ.shape[1]

    @property
    def p(self) -> int:
        """Fixed-effects coefficients."""
        return self.XtX.shape[0]

    @property
    def n_groups(self) -> int:
        """Number of groups G."""
        return self.ZtZ.shape[0]

    @property
    def logdet_x_factor(self) -> float:
        """log|X'X| = 2 sum(log diag R0); the REML deviance in original coordinates adds it."""
        return float(2.0 * np.sum(np.log(np.abs(np.diag(self.x_factor)))))


def group_statistics(
    X: np.ndarray,
    Z: np.ndarray,
    y: np.ndarray,
    group_codes: np.ndarray,
    n_groups: int,
    column_names: tuple[str, ...] | None = None,
) -> GroupStats:
    """Compute :class:`GroupStats` from the rows.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    Z : ndarray, shape (n, q)
    y : ndarray, shape (n,)
    group_codes : ndarray of int, shape (n,)
        Group index 0..G-1 of each row (any order).
    n_groups : int
        G.
    column_names : tuple of str, optional
        Names of X's columns, used in the error message for collinear columns.

    Raises
    ------
    ModelError
        If X has collinear columns.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    codes = np.asarray(group_codes, dtype=np.int64)
    n, p = X.shape
    q = Z.shape[1]

    XtX = X.T @ X
    R0 = _x_factor(XtX, column_names)
    beta_offset = scipy.linalg.cho_solve((R0, False), X.T @ y)
    resid = y - X @ beta_offset
    Xty = scipy.linalg.solve_triangular(R0, X.T @ resid, trans="T")

    sizes = np.bincount(codes, minlength=n_groups)
    order = np.argsort(codes, kind="stable")
    indptr = np.concatenate(([0], np.cumsum(sizes)))
    ZtZ = np.empty((n_groups, q, q))
    ZtX = np.empty((n_groups, q, p))
    Zty = np.empty((n_groups, q))
    for k in range(q):
        zk = Z[:, k]
        for m in range(k, q):
            ZtZ[:, k, m] = np.bincount(codes, weights=zk * Z[:, m], minlength=n_groups)
            ZtZ[:, m, k] = ZtZ[:, k, m]
        Zty[:, k] = np.bincount(codes, weights=zk * resid, minlength=n_groups)
        summer = scipy.sparse.csr_matrix((zk[order], order, indptr), shape=(n_groups, n))
        ZtX[:, k, :] = np.asarray(summer @ X)
    # Whiten: Z_i'X_w = Z_i'X R0^{-1}, i.e. solve R0' B_w' = B' for all groups at once.
    ZtX = scipy.linalg.solve_triangular(R0, ZtX.reshape(-1, p).T, trans="T").T.reshape(n_groups, q, p)
    XtX_w = scipy.linalg.solve_triangular(
        R0, scipy.linalg.solve_triangular(R0, XtX, trans="T").T, trans="T"
    )
    return GroupStats(
        ZtZ=ZtZ,
        ZtX=np.ascontiguousarray(ZtX),
        Zty=Zty,
        XtX=(XtX_w + XtX_w.T) / 2,
        Xty=Xty,
        yty=float(resid @ resid),
        n=n,
        x_factor=R0,
        beta_offset=beta_offset,
        group_sizes=sizes,
    )


def _x_factor(XtX: np.ndarray, column_names: tuple[str, ...] | None) -> np.ndarray:
    """Upper Cholesky factor of X'X; a clear error naming the first collinear column otherwise."""
    p = XtX.shape[0]
    scale = np.sqrt(np.maximum(np.diag(XtX), np.finfo(float).tiny))
    corr = XtX / np.outer(scale, scale)
    names = column_names or tuple(f"column {j + 1}" for j in range(p))
    # Sequential check as R's pivot-free QR: column j is aliased if its residual on 0..j-1 is ~0.
    for j in range(p):
        if np.diag(XtX)[j] == 0:
            raise ModelError(f"fixed-effects column {names[j]!r} is all zero; remove it from the formula")
        sub = corr[: j + 1, : j + 1]
        if np.linalg.eigvalsh(sub)[0] < 1e-10:
            raise ModelError(
                f"fixed-effects columns are collinear: {names[j]!r} is a linear combination of "
                f"earlier columns ({', '.join(map(repr, names[:j]))}); remove it from the formula"
            )
    return np.linalg.cholesky(XtX).T


def statistics_from_sums(
    ZtZ: np.ndarray,
    ZtX: np.ndarray,
    Zty: np.ndarray,
    XtX: np.ndarray,
    Xty: np.ndarray,
    yty: float,
    n: int,
    group_sizes: np.ndarray,
    column_names: tuple[str, ...] | None = None,
    offset: np.ndarray | None = None,
) -> GroupStats:
    """:class:`GroupStats` from cross-products summed elsewhere (e.g. in a database), no rows needed.

    Parameters
    ----------
    ZtZ : ndarray, shape (G, q, q)
        Z_i'Z_i.
    ZtX : ndarray, shape (G, q, p)
        Z_i'X_i in original (not whitened) coordinates.
    Zty : ndarray, shape (G, q)
        Z_i'r_i for a response r = y - X offset.
    XtX : ndarray, shape (p, p)
        X'X.
    Xty : ndarray, shape (p,)
        X'r.
    yty : float
        r'r.
    n : int
        Number of observations.
    group_sizes : ndarray of int, shape (G,)
    column_names : tuple of str, optional
        For the collinearity message.
    offset : ndarray, shape (p,), optional
        The coefficients already subtracted from y (zero if None). Passing the OLS coefficients
        (computed from X'X and X'y first) keeps r'r free of cancellation.

    Returns
    -------
    GroupStats
        The same working coordinates as :func:`group_statistics` (OLS residual response,
        whitened fixed effects).
    """
    XtX = (np.asarray(XtX, dtype=np.float64) + np.asarray(XtX, dtype=np.float64).T) / 2
    p = XtX.shape[0]
    G, q = ZtZ.shape[0], ZtZ.shape[1]
    R0 = _x_factor(XtX, column_names)
    delta = scipy.linalg.cho_solve((R0, False), Xty)
    Zr = Zty - ZtX @ delta
    Xr = Xty - XtX @ delta
    rr = float(yty - 2.0 * delta @ Xty + delta @ XtX @ delta)
    ZtX_w = scipy.linalg.solve_triangular(R0, ZtX.reshape(-1, p).T, trans="T").T.reshape(G, q, p)
    XtX_w = scipy.linalg.solve_triangular(R0, scipy.linalg.solve_triangular(R0, XtX, trans="T").T, trans="T")
    base = np.zeros(p) if offset is None else np.asarray(offset, dtype=np.float64)
    return GroupStats(
        ZtZ=np.ascontiguousarray(ZtZ, dtype=np.float64),
        ZtX=np.ascontiguousarray(ZtX_w),
        Zty=np.ascontiguousarray(Zr),
        XtX=(XtX_w + XtX_w.T) / 2,
        Xty=scipy.linalg.solve_triangular(R0, Xr, trans="T"),
        yty=rr,
        n=int(n),
        x_factor=R0,
        beta_offset=base + delta,
        group_sizes=np.asarray(group_sizes, dtype=np.int64),
    )
