"""Slopes of marginal means over a numeric variable, as R's ``emmeans::emtrends``.

The slope of the marginal mean of a cell with respect to ``var`` is estimated, exactly as
emtrends does it (emmeans 1.8, ``max.degree = 1``), by the forward difference quotient

    (m(x + h) - m(x)) / h,    h = ``delta`` (default 0.001 * diff(range(var)) over the fitted rows),

where m is the marginal mean (reference grid and equal weights as :mod:`ildstudy.lmm.emmeans`).
It is a linear combination L beta, so its SE and Satterthwaite df come from the same machinery
as marginal means. For a model linear in ``var`` this is the slope exactly; for ``ns()`` or ``pl()``
time it differs from the analytic derivative by O(h) (documented in docs/lmm.md).

``per`` rescales the slope: with time in months, ``per=12`` gives the change per year (estimate,
SE and CI times 12; df and p unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ildstudy.errors import ModelError
from ildstudy.lmm.emmeans import MarginalMeans, _by_blocks, _cells, _contrast_weights, _model_name, _names, _order
from ildstudy.lmm.weighting import CovKeep, Weighting

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.lmm.results import LmmFit


@dataclass(frozen=True, slots=True)
class Slopes:
    """Slopes of the marginal means of the cells of ``specs`` x ``by`` with respect to ``var``.

    Attributes
    ----------
    var : str
    specs, by : tuple of str
    table : DataFrame
        One row per cell: the ``specs`` and ``by`` variables, then ``estimate, se, df, t_ratio, p,
        ci_low, ci_high`` (slope per ``per`` units of ``var``; p of slope = 0, unadjusted).
    L : ndarray, shape (m, p)
        Row i of ``table`` is ``L[i] @ fit.coef``.
    delta : float
        Step of the difference quotient.
    per : float
        Units of ``var`` per reported slope (1: per unit; 12: per year when var is in months).
    level : float
    """

    var: str
    specs: tuple[str, ...]
    by: tuple[str, ...]
    table: pd.DataFrame
    L: np.ndarray
    delta: float
    per: float
    level: float


def slopes(
    fit: LmmFit,
    var: str,
    specs: str | list[str],
    by: str | list[str] | None = None,
    at: dict[str, list] | None = None,
    delta: float | None = None,
    per: float = 1.0,
    level: float = 0.95,
    weights: Weighting = "equal",
    cov_keep: CovKeep = 2,
) -> Slopes:
    """Slopes over ``var`` per cell, as ``emtrends(fit, ~ specs | by, var = var, at = at)``.

    Parameters
    ----------
    fit : LmmFit
    var : str
        A numeric fixed-effects variable, e.g. ``"months"`` (also inside ``ns()``/``pl()``).
    specs, by, at, level
        As :func:`ildstudy.lmm.emmeans.marginal_means`; to get slopes at given months use
        ``by="months", at={"months": [...]}``.
    delta : float, optional
        Step h of the forward difference; default emtrends' ``0.001 * diff(range(var))``.
    per : float
        Rescale the slope (``12`` for per year when ``var`` is in months).
    weights, cov_keep
        As :func:`ildstudy.lmm.emmeans.marginal_means` (emtrends passes them to emmeans); ``var`` is
        always a grid variable given by value, never a kept covariate.

    Returns
    -------
    Slopes

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from ildstudy.lmm import fit_lmm
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(40), 5); t = np.tile([0.0, 6, 12, 24, 36], 40)
    >>> arm = np.where(g < 20, "A", "B"); y = 60 + 0.1 * t + rng.normal(size=40)[g] + rng.normal(size=200)
    >>> fit = fit_lmm("y ~ ns(t, df = 2) * arm + (1 | g)", pd.DataFrame({"y": y, "t": t, "g": g, "arm": arm}))
    >>> s = fit.slopes("t", "arm", by="t", at={"t": [0, 12]}, per=12)   # change per year at months 0, 12
    >>> list(s.table.columns)
    ['arm', 't', 'estimate', 'se', 'df', 't_ratio', 'p', 'ci_low', 'ci_high']
    """
    var_name = _model_name(fit, var)
    enc = fit.encoding
    if var_name not in enc.numeric_ranges:
        raise ModelError(
            f"var {var!r} must be a numeric fixed-effects variable "
            f"({', '.join(sorted(enc.numeric_ranges)) or 'none'})"
        )
    lo, hi = enc.numeric_ranges[var_name]
    h = 0.001 * (hi - lo) if delta is None else float(delta)
    if not np.isfinite(h) or h == 0:
        raise ModelError(f"delta must be a nonzero number (var {var!r} has range {lo}..{hi}); got {h}")
    if not np.isfinite(per) or per <= 0:
        raise ModelError(f"per must be a positive number, got {per!r}")
    specs_t, by_t = _names(fit, specs), _names(fit, by)
    at0 = dict(at or {})
    base = np.atleast_1d(np.asarray(at0.get(var, [enc.numeric_means[var_name]]), dtype=np.float64))
    at1 = {**at0, var: list(base + h)}
    at0 = {**at0, var: list(base)}
    cells, L0 = _cells(fit, specs_t + by_t, at0, weights, cov_keep)
    _, L1 = _cells(fit, specs_t + by_t, at1, weights, cov_keep)
    L = (L1 - L0) / h * per
    table = fit.linear_combination(L, level=level).rename(columns={"t": "t_ratio"})
    for i, name in enumerate(specs_t + by_t):
        table.insert(i, name, [cell[i] for cell in cells])
    order = _order(cells, len(specs_t), len(by_t))
    table = table.iloc[order].reset_index(drop=True)
    return Slopes(var=var_name, specs=specs_t, by=by_t, table=table, L=L[order], delta=h, per=float(per), level=level)


def slope_contrasts(
    fit: LmmFit,
    var: str,
    specs: str,
    by: str | list[str] | None = None,
    at: dict[str, list] | None = None,
    method: str | dict = "trt.vs.ctrl",
    ref: Any = None,
    delta: float | None = None,
    per: float = 1.0,
    level: float = 0.95,
    weights: Weighting = "equal",
    cov_keep: CovKeep = 2,
) -> pd.DataFrame:
    """Differences between slopes (e.g. ``"AZA - MMF"`` per month), as ``contrast(emtrends(...))``.

    Returns
    -------
    DataFrame
        ``contrast``, the ``by`` variables, ``estimate, se, df, t_ratio, p, ci_low, ci_high``.
    """
    if not isinstance(specs, str):
        raise ModelError("slope_contrasts() compares the levels of one variable; give specs as a string")
    s = slopes(fit, var, specs, by=by, at=at, delta=delta, per=per, level=level, weights=weights, cov_keep=cov_keep)
    means = MarginalMeans(specs=s.specs, by=s.by, table=s.table, L=s.L, level=level)
    spec = s.specs[0]
    levels = list(dict.fromkeys(s.table[spec]))
    weights = _contrast_weights(spec, levels, method, ref, fit)
    rows, labels, by_values = [], [], []
    for by_cell, block in _by_blocks(means):
        index = {lvl: i for i, lvl in enumerate(block[spec])}
        for label, w in weights:
            vector = sum(weight * s.L[block.index[index[lvl]]] for lvl, weight in w.items())
            rows.append(vector)
            labels.append(label)
            by_values.append(by_cell)
    L = np.array(rows).reshape(len(rows), s.L.shape[1])
    table = fit.linear_combination(L, level=level, labels=labels).rename(columns={"t": "t_ratio"})
    for i, name in enumerate(s.by):
        table.insert(1 + i, name, [cell[i] for cell in by_values])
    return table
