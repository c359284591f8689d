"""Time bases for mixed-model formulas: R's natural cubic spline ``ns()`` and a piecewise-linear ``pl()``.

``ns_basis`` reproduces ``splines::ns`` (R 4.2) column for column: interior knots at type-7
quantiles of x when ``df`` is given, boundary knots at ``range(x)`` unless given, the B-spline
basis of order 4 constrained to zero second derivative at both boundary knots through the same
Householder QR (LINPACK ``dqrdc2`` / ``qr.qty``) that R applies, and linear extrapolation beyond
the boundary knots. The constraint's null space is not unique, so the exact reflectors matter:
any other orthogonal complement gives the same fit but different coefficients.

``pl_basis`` is the hinge basis ``x, (x - k1)+, (x - k2)+, ...``: the first coefficient is the slope
before the first knot, each further one the change of slope at its knot.

In a formula both are *stateful transforms* (formulaic keeps their state in the model spec), so
rows built later for new data — marginal means at contrast months, slopes, predictions — reuse
the knots computed on the training rows, as R's ``makepredictcall`` does for ``ns``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from formulaic.materializers.types import FactorValues
from formulaic.utils.stateful_transforms import stateful_transform

from ildstudy.errors import ModelError


def r_quantile7(x: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """R's default ``quantile(x, probs, type = 7)``, with R's arithmetic (index ``1 + (n - 1) p``)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    index = 1 + (x.size - 1) * np.asarray(probs, dtype=np.float64)  # 1-based, as in R
    lo, hi = np.floor(index).astype(int), np.ceil(index).astype(int)
    qs = x[lo - 1]
    interpolate = (index > lo) & (x[hi - 1] != qs)
    h = index - lo
    return np.where(interpolate, (1 - h) * qs + h * x[hi - 1], qs)


def ns_knots(
    x: np.ndarray, df: int | None, knots: Sequence[float] | None,
    boundary_knots: Sequence[float] | None, intercept: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Interior and boundary knots as ``splines::ns(x, df, knots, intercept, Boundary.knots)`` picks them.

    Returns
    -------
    knots : ndarray, shape (K,)
    boundary_knots : ndarray, shape (2,)
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ModelError("ns(): no non-missing values")
    if boundary_knots is not None:
        boundary = np.sort(np.asarray(boundary_knots, dtype=np.float64))
        if boundary.shape != (2,):
            raise ModelError(f"ns(): Boundary.knots must be two numbers, got {list(boundary_knots)}")
        outside = (x < boundary[0]) | (x > boundary[1])
    else:
        boundary = np.array([x.min(), x.max()]) if x.size > 1 else x[0] * np.array([7.0, 9.0]) / 8.0
        outside = np.zeros(x.size, dtype=bool)
    if df is not None and knots is None:
        n_interior = max(int(df) - 1 - int(intercept), 0)
        if n_interior > 0:
            probs = np.linspace(0.0, 1.0, n_interior + 2)[1:-1]
            interior = r_quantile7(x[~outside], probs)
        else:
            interior = np.array([])
    else:
        interior = np.sort(np.asarray(list(knots or []), dtype=np.float64))
    if boundary[0] >= boundary[1]:
        raise ModelError(f"ns(): boundary knots must differ, got {boundary.tolist()}")
    if np.any((interior <= boundary[0]) | (interior >= boundary[1])):
        raise ModelError(
            f"ns(): interior knots {interior.tolist()} must lie strictly inside the boundary knots "
            f"{boundary.tolist()}"
        )
    return interior, boundary


def ns_basis(
    x: np.ndarray, knots: Sequence[float], boundary_knots: Sequence[float], intercept: bool = False
) -> np.ndarray:
    """The natural cubic spline basis of ``splines::ns`` for fixed knots.

    Parameters
    ----------
    x : ndarray, shape (n,)
    knots : sequence of float
        Interior knots.
    boundary_knots : sequence of two floats
    intercept : bool
        Keep the first B-spline column (R's ``intercept = TRUE``).

    Returns
    -------
    ndarray, shape (n, len(knots) + 1 + intercept)
    """
    import scipy.interpolate  # ~0.3 s to import: only when a formula uses ns()

    x = np.asarray(x, dtype=np.float64)
    lo, hi = (float(v) for v in boundary_knots)
    t = np.sort(np.concatenate([[lo] * 4, [hi] * 4, np.asarray(knots, dtype=np.float64)]))
    n_basis = t.size - 4
    spline = scipy.interpolate.BSpline(t, np.eye(n_basis), 3, extrapolate=True)
    first = spline.derivative(1)
    basis = np.empty((x.size, n_basis))
    left, right = x < lo, x > hi
    inside = ~(left | right)
    basis[inside] = spline(x[inside])
    for mask, pivot in ((left, lo), (right, hi)):
        if mask.any():  # linear beyond the boundary: value + slope at the boundary knot
            basis[mask] = spline(pivot)[None, :] + (x[mask] - pivot)[:, None] * first(pivot)[None, :]
    const = spline.derivative(2)(np.array([lo, hi]))  # (2, n_basis): second derivatives at the ends
    if not intercept:
        const, basis = const[:, 1:], basis[:, 1:]
    reflectors = _householder_qr(const.T.copy())
    return _apply_qt(reflectors, basis.T).T[:, 2:]


def pl_basis(x: np.ndarray, knots: Sequence[float]) -> np.ndarray:
    """Hinge basis of piecewise-linear time: columns ``x, max(x - k1, 0), max(x - k2, 0), ...``.

    Returns
    -------
    ndarray, shape (n, 1 + len(knots))
    """
    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([x] + [np.maximum(x - float(k), 0.0) for k in knots])


def _householder_qr(a: np.ndarray) -> list[np.ndarray]:
    """Householder vectors u_l of LINPACK ``dqrdc2`` (R's ``qr``) for a full-rank (m, k) matrix.

    H_l = I - u_l u_l' / u_l[0] acts on rows l.. ; R's sign convention (x_ll / |x_ll|) is kept.
    """
    a = np.array(a, dtype=np.float64)
    m, k = a.shape
    out = []
    for col in range(min(m, k)):
        v = a[col:, col]
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            raise ModelError("ns(): the boundary constraint is degenerate (repeated boundary knots?)")
        if v[0] != 0.0:
            norm = np.copysign(norm, v[0])
        u = v / norm
        u[0] += 1.0
        for j in range(col + 1, k):
            tau = -np.dot(u, a[col:, j]) / u[0]
            a[col:, j] += tau * u
        out.append(u)
    return out


def _apply_qt(reflectors: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Q' y as R's ``qr.qty`` (LINPACK ``dqrsl``): H_1 first, then H_2, ..."""
    y = np.array(y, dtype=np.float64)
    for col, u in enumerate(reflectors):
        tau = -(u @ y[col:]) / u[0]
        y[col:] += np.outer(u, tau)
    return y


def make_ns_transform(df: int | None, knots, boundary_knots, intercept: bool):
    """A formulaic stateful transform evaluating one ``ns(...)`` call of a formula."""

    @stateful_transform
    def transform(x, _state={}):  # noqa: B006 -- formulaic replaces _state with the spec's state
        if "knots" not in _state:
            interior, boundary = ns_knots(np.asarray(x, dtype=np.float64), df, knots, boundary_knots, intercept)
            _state["knots"] = [float(v) for v in interior]
            _state["boundary_knots"] = [float(v) for v in boundary]
        basis = ns_basis(np.asarray(x, dtype=np.float64), _state["knots"], _state["boundary_knots"], intercept)
        return _factor_values(basis)

    return transform


def make_pl_transform(knots):
    """A formulaic stateful transform evaluating one ``pl(x, knots = c(...))`` call."""

    @stateful_transform
    def transform(x, _state={}):  # noqa: B006
        if "knots" not in _state:
            _state["knots"] = [float(v) for v in knots]
        return _factor_values(pl_basis(np.asarray(x, dtype=np.float64), _state["knots"]))

    return transform


def _factor_values(basis: np.ndarray) -> FactorValues:
    return FactorValues(
        {j + 1: basis[:, j] for j in range(basis.shape[1])},
        kind="numerical", spans_intercept=False, drop_field=None, format="{name}{field}", encoded=False,
    )
