"""Estimated marginal means and contrasts between them, in the manner of R's emmeans.

The reference grid crosses every variable of the fixed part: factors at all their levels,
numeric covariates at their mean over the rows used in the fit (emmeans' ``cov.reduce = mean``)
except those with at most two distinct values (0/1 indicators), which keep both values like a
factor (emmeans' default ``cov.keep = "2"``), and variables given in ``at``, which take those values. A marginal mean of a cell of
``specs`` x ``by`` is the equally weighted average of the model's predictions over the grid rows of
that cell (emmeans' default ``weights = "equal"``); it is a linear combination L beta, so its
standard error and Satterthwaite df come from :mod:`ildstudy.lmm.satterthwaite`, exactly as
emmeans obtains them from lmerTest with ``lmer.df = "satterthwaite"``.

What the ILD study needs is one call each::

    fit.emmeans("arm", by="months", at={"months": months})                 # means per arm and month
    fit.contrast("months", by="arm", at={"months": months}, ref=0)         # change from month 0
    fit.contrast("arm", by="months", at={"months": months})                # AZA - MMF per month

p-values are unadjusted (emmeans adjusts families of more than one contrast by default).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ildstudy.errors import ModelError
from ildstudy.lmm.design import level_label, model_rows

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.lmm.results import LmmFit


@dataclass(frozen=True, slots=True)
class MarginalMeans:
    """Marginal means of the cells of ``specs`` (within each ``by`` cell).

    Attributes
    ----------
    specs, by : tuple of str
    table : DataFrame
        One row per cell: the ``specs`` and ``by`` variables, then ``estimate, se, df, ci_low,
        ci_high``; by-cells outermost, levels in model order.
    L : ndarray, shape (m, p)
        Row i of ``table`` is ``L[i] @ fit.coef``.
    level : float
        Confidence level of the intervals.
    """

    specs: tuple[str, ...]
    by: tuple[str, ...]
    table: pd.DataFrame
    L: np.ndarray
    level: float


@dataclass(frozen=True, slots=True)
class Contrasts:
    """Contrasts between the marginal means of one variable, within each ``by`` cell.

    Attributes
    ----------
    specs : str
    by : tuple of str
    table : DataFrame
        ``contrast`` (e.g. ``"AZA - MMF"``, ``"months12 - months0"``), the ``by`` variables,
        then ``estimate, se, df, t_ratio, p, ci_low, ci_high`` (p unadjusted; ``t_ratio`` as emmeans
        names it, so that a variable called ``t`` can be a ``by`` column).
    L : ndarray, shape (m, p)
    level : float
    """

    specs: str
    by: tuple[str, ...]
    table: pd.DataFrame
    L: np.ndarray
    level: float


def marginal_means(
    fit: LmmFit,
    specs: str | list[str],
    by: str | list[str] | None = None,
    at: dict[str, list] | None = None,
    level: float = 0.95,
) -> MarginalMeans:
    """Marginal means of ``specs`` within ``by``, as ``emmeans(fit, specs, by = by, at = at)``.

    Parameters
    ----------
    fit : LmmFit
    specs : str or list of str
        Variables whose cells get a mean (factors, or numeric variables listed in ``at``).
    by : str or list of str, optional
        Variables within whose cells the means are reported.
    at : dict, optional
        Values of variables in the reference grid, e.g. ``{"months": [0, 6, 12]}``.
    level : float
        Confidence level.

    Returns
    -------
    MarginalMeans
    """
    specs_t, by_t = _names(fit, specs), _names(fit, by)
    cells, L = _cells(fit, specs_t + by_t, dict(at or {}))
    table = fit.linear_combination(L, level=level).drop(columns=["t", "p"])
    for i, name in enumerate(specs_t + by_t):
        table.insert(i, name, [cell[i] for cell in cells])
    order = _order(cells, len(specs_t), len(by_t))
    table = table.iloc[order].reset_index(drop=True)
    return MarginalMeans(specs=specs_t, by=by_t, table=table, L=L[order], level=level)


def contrasts(
    fit: LmmFit,
    specs: str,
    by: str | list[str] | None = None,
    at: dict[str, list] | None = None,
    method: str | dict = "trt.vs.ctrl",
    ref: Any = None,
    level: float = 0.95,
) -> Contrasts:
    """Contrasts between the marginal means of ``specs`` within each ``by`` cell.

    Parameters
    ----------
    fit : LmmFit
    specs : str
        The variable whose levels are compared.
    by, at, level
        As :func:`marginal_means`.
    method : {"trt.vs.ctrl", "pairwise", "revpairwise"} or dict
        ``"trt.vs.ctrl"``: every level minus ``ref`` (default: the first level, the reference),
        giving ``"AZA - MMF"``. ``"pairwise"``: level i minus level j for i < j (emmeans' ``pairs``);
        ``"revpairwise"``: j minus i. A dict maps a label to weights per level,
        e.g. ``{"AZA - MMF": {"AZA": 1, "MMF": -1}}``.
    ref : optional
        Reference level for ``"trt.vs.ctrl"`` (a level label or an ``at`` value, e.g. 0).
    """
    if not isinstance(specs, str):
        raise ModelError("contrast() compares the levels of one variable; give specs as a string")
    means = marginal_means(fit, specs, by=by, at=at, level=level)
    spec = means.specs[0]
    levels = list(dict.fromkeys(means.table[spec]))
    weights = _contrast_weights(spec, levels, method, ref, fit)
    rows, labels, by_values = [], [], []
    for by_cell, block in _by_blocks(means):
        index = {lvl: i for i, lvl in enumerate(block[spec])}
        for label, w in weights:
            vector = np.zeros(means.L.shape[1])
            for lvl, weight in w.items():
                vector += weight * means.L[block.index[index[lvl]]]
            rows.append(vector)
            labels.append(label)
            by_values.append(by_cell)
    L = np.array(rows).reshape(len(rows), means.L.shape[1])
    table = fit.linear_combination(L, level=level, labels=labels).rename(columns={"t": "t_ratio"})
    for i, name in enumerate(means.by):
        table.insert(1 + i, name, [cell[i] for cell in by_values])
    return Contrasts(specs=spec, by=means.by, table=table, L=L, level=level)


def reference_grid(fit: LmmFit, at: dict[str, list] | None = None) -> pd.DataFrame:
    """The reference grid: every combination of factor levels and ``at`` values, covariates at means."""
    enc = fit.encoding
    at = dict(at or {})
    unknown = [name for name in at if _model_name(fit, name) not in enc.fixed_variables]
    if unknown:
        raise ModelError(
            f"'at' names {', '.join(map(repr, unknown))}, not a fixed-effects variable "
            f"({', '.join(enc.fixed_variables)})"
        )
    at = {_model_name(fit, k): v for k, v in at.items()}
    values = {}
    for name in enc.fixed_variables:
        if name in at:
            given = list(np.atleast_1d(at[name]))
            if name in enc.factors:
                labels = [_label(v) for v in given]
                bad = [v for v in labels if v not in enc.factors[name]]
                if bad:
                    raise ModelError(f"{name!r} has no level(s) {bad}; levels: {list(enc.factors[name])}")
                given = labels
            values[name] = given
        elif name in enc.factors:
            values[name] = list(enc.factors[name])
        elif name in enc.numeric_values:  # emmeans' cov.keep = "2": 0/1 covariates kept, averaged
            values[name] = list(enc.numeric_values[name])
        else:
            values[name] = [enc.numeric_means[name]]
    rows = list(itertools.product(*values.values()))
    return pd.DataFrame(rows, columns=list(values.keys()))


def _cells(fit: LmmFit, names: tuple[str, ...], at: dict) -> tuple[list[tuple], np.ndarray]:
    grid = reference_grid(fit, at)
    frame = grid.rename(columns={k: v for k, v in fit.encoding.sources.items() if k != v})
    X = model_rows(fit.encoding, frame, "fixed")
    keys = [tuple(row) for row in grid[list(names)].itertuples(index=False)] if names else [()] * len(grid)
    cells = list(dict.fromkeys(keys))
    position = {cell: i for i, cell in enumerate(cells)}
    index = np.array([position[key] for key in keys])
    L = np.zeros((len(cells), X.shape[1]))
    np.add.at(L, index, X)
    L /= np.bincount(index, minlength=len(cells))[:, None]
    return cells, L


def _order(cells: list[tuple], n_specs: int, n_by: int) -> np.ndarray:
    """By-cells outermost, then specs, each in grid (model) order."""
    first_seen: list[dict] = [{} for _ in range(n_specs + n_by)]
    for cell in cells:
        for i, value in enumerate(cell):
            first_seen[i].setdefault(value, len(first_seen[i]))
    def key(i: int) -> tuple:
        cell = cells[i]
        ranks = [first_seen[j][v] for j, v in enumerate(cell)]
        return tuple(ranks[n_specs:] + ranks[:n_specs])
    return np.array(sorted(range(len(cells)), key=key), dtype=np.int64)


def _by_blocks(means: MarginalMeans):
    table = means.table
    if not means.by:
        yield (), table
        return
    keys = [tuple(r) for r in table[list(means.by)].itertuples(index=False)]
    for key in dict.fromkeys(keys):
        mask = np.array([k == key for k in keys])
        yield key, table[mask]


def _contrast_weights(spec: str, levels: list, method: str | dict, ref: Any, fit: LmmFit) -> list[tuple[str, dict]]:
    is_factor = spec in fit.encoding.factors
    name = (lambda v: str(v)) if is_factor else (lambda v: f"{spec}{_label(v)}")
    if isinstance(method, dict):
        out = []
        for label, w in method.items():
            w = dict(zip(levels, w)) if not isinstance(w, dict) else {(_label(k) if is_factor else k): v for k, v in w.items()}
            bad = [k for k in w if k not in levels]
            if bad:
                raise ModelError(f"contrast {label!r} names level(s) {bad} not among {levels}")
            out.append((str(label), w))
        return out
    if method == "trt.vs.ctrl":
        if ref is None:
            base = levels[0]
        else:
            base = _label(ref) if is_factor else next((v for v in levels if np.isclose(v, float(ref))), None)
            if base not in levels:
                raise ModelError(f"ref {ref!r} is not a level of {spec!r} ({levels})")
        return [(f"{name(v)} - {name(base)}", {v: 1.0, base: -1.0}) for v in levels if v != base]
    if method in ("pairwise", "revpairwise"):
        pairs = list(itertools.combinations(levels, 2))
        if method == "pairwise":
            return [(f"{name(a)} - {name(b)}", {a: 1.0, b: -1.0}) for a, b in pairs]
        pairs = sorted(pairs, key=lambda ab: (levels.index(ab[1]), levels.index(ab[0])))
        return [(f"{name(b)} - {name(a)}", {b: 1.0, a: -1.0}) for a, b in pairs]
    raise ModelError(f"method must be 'trt.vs.ctrl', 'pairwise', 'revpairwise' or a dict, got {method!r}")


def _names(fit: LmmFit, names: str | list[str] | None) -> tuple[str, ...]:
    if names is None:
        return ()
    names = [names] if isinstance(names, str) else list(names)
    out = tuple(_model_name(fit, n) for n in names)
    bad = [n for n, m in zip(names, out) if m not in fit.encoding.fixed_variables]
    if bad:
        raise ModelError(
            f"{', '.join(map(repr, bad))} is not a fixed-effects variable of the model "
            f"({', '.join(fit.encoding.fixed_variables)})"
        )
    return out


def _model_name(fit: LmmFit, name: str) -> str:
    """Accept ``visit`` for a model variable ``factor(visit)``."""
    if name in fit.encoding.fixed_variables:
        return name
    for model_name, source in fit.encoding.sources.items():
        if source == name and model_name in fit.encoding.fixed_variables:
            return model_name
    return name


def _label(value: Any) -> str:
    return level_label(value)
