"""Estimated marginal means and contrasts between them, in the manner of R's emmeans.

The reference grid crosses every variable of the fixed part: factors at all their levels,
numeric covariates at their mean over the rows used in the fit (emmeans' ``cov.reduce = mean``)
except those with at most two distinct values (0/1 indicators), which keep both values like a
factor (emmeans' default ``cov.keep = "2"``; other thresholds or names with ``cov_keep``), and
variables given in ``at``, which take those values. A marginal mean of a cell of ``specs`` x ``by``
is the average of the model's predictions over the grid rows of that cell, equally weighted by
default (emmeans' ``weights = "equal"``; ``"proportional"``, ``"outer"``, ``"cells"`` and ``"flat"``
as emmeans defines them, see :mod:`ildstudy.lmm.weighting`); it is a linear combination L beta, so
its standard error and Satterthwaite df come from :mod:`ildstudy.lmm.satterthwaite`, exactly as
emmeans obtains them from lmerTest with ``lmer.df = "satterthwaite"``.

What the ILD study needs is one call each::

    fit.emmeans("arm", by="months", at={"months": months})                 # means per arm and month
    fit.contrast("months", by="arm", at={"months": months}, ref=0)         # change from month 0
    fit.contrast("arm", by="months", at={"months": months})                # AZA - MMF per month

p-values are unadjusted (emmeans adjusts families of more than one contrast by default); for a
family adjustment (Holm, Bonferroni, Sidak, multivariate t) see :mod:`ildstudy.lmm.adjust`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ildstudy.errors import ModelError
from ildstudy.lmm.design import level_label, model_rows
from ildstudy.lmm.weighting import (
    COUNT_COLUMN, MAX_KEPT_VALUES, CovKeep, Weighting, cell_weights, check_weights, cov_keep_rule,
    grid_frequencies,
)

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
    vcov : ndarray, shape (m, m), or None
        Covariance of the contrasts, ``L V L'`` (V = ``fit.vcov``), for family-wise adjustments
        (:func:`ildstudy.lmm.adjust.adjust_contrasts`).
    """

    specs: str
    by: tuple[str, ...]
    table: pd.DataFrame
    L: np.ndarray
    level: float
    vcov: np.ndarray | None = None


def marginal_means(
    fit: LmmFit,
    specs: str | list[str],
    by: str | list[str] | None = None,
    at: dict[str, list] | None = None,
    level: float = 0.95,
    weights: Weighting = "equal",
    cov_keep: CovKeep = 2,
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
    weights : {"equal", "proportional", "outer", "cells", "flat"}
        How the grid rows of a cell are averaged, with emmeans' meanings
        (:mod:`ildstudy.lmm.weighting`); frequencies are those of the observations used in the fit.
    cov_keep : int, str or list
        emmeans' ``cov.keep``: numeric covariates with at most this many distinct values (default 2),
        or named ones, enter the grid at each value; the others at their mean. ``0``: all at means.

    Returns
    -------
    MarginalMeans

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from ildstudy.lmm import fit_lmm
    >>> rng = np.random.default_rng(2)
    >>> g = np.repeat(np.arange(40), 4); t = np.tile([0.0, 6, 12, 24], 40)
    >>> arm = np.where(g < 20, "A", "B"); female = (g % 3 == 0).astype(float)
    >>> y = 60 + 0.1 * t + 2 * female + rng.normal(size=40)[g] + rng.normal(size=160)
    >>> data = pd.DataFrame({"y": y, "t": t, "g": g, "arm": arm, "female": female})
    >>> fit = fit_lmm("y ~ t * arm + female + (1 | g)", data)
    >>> m = fit.emmeans("arm", by="t", at={"t": [0, 12]}, weights="proportional")
    >>> list(m.table.columns)
    ['arm', 't', 'estimate', 'se', 'df', 'ci_low', 'ci_high']
    """
    specs_t, by_t = _names(fit, specs), _names(fit, by)
    cells, L = _cells(fit, specs_t + by_t, dict(at or {}), weights, cov_keep)
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
    weights: Weighting = "equal",
    cov_keep: CovKeep = 2,
) -> Contrasts:
    """Contrasts between the marginal means of ``specs`` within each ``by`` cell.

    Parameters
    ----------
    fit : LmmFit
    specs : str
        The variable whose levels are compared.
    by, at, level, weights, cov_keep
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
    means = marginal_means(fit, specs, by=by, at=at, level=level, weights=weights, cov_keep=cov_keep)
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
    vcov = L @ fit.sensitivity.vcov_beta @ L.T
    return Contrasts(specs=spec, by=means.by, table=table, L=L, level=level, vcov=vcov)


def reference_grid(fit: LmmFit, at: dict[str, list] | None = None, cov_keep: CovKeep = 2) -> pd.DataFrame:
    """The reference grid: every combination of factor levels, kept covariate values and ``at`` values.

    Numeric covariates not in ``at`` are kept at each of their values if ``cov_keep`` says so
    (:func:`ildstudy.lmm.weighting.cov_keep_rule`; default: those with at most two values, emmeans'
    ``cov.keep = "2"``) and are otherwise at their mean over the fitted rows.
    """
    return _grid(fit, at, cov_keep)[0]


def _grid(fit: LmmFit, at: dict[str, list] | None, cov_keep: CovKeep) -> tuple[pd.DataFrame, list[str]]:
    """The grid and the names of its kept numeric covariates."""
    enc = fit.encoding
    at = dict(at or {})
    unknown = [name for name in at if _model_name(fit, name) not in enc.fixed_variables]
    if unknown:
        raise ModelError(
            f"'at' names {', '.join(map(repr, unknown))}, not a fixed-effects variable "
            f"({', '.join(enc.fixed_variables)})"
        )
    at = {_model_name(fit, k): v for k, v in at.items()}
    threshold, keep_names = cov_keep_rule(cov_keep)
    bad = [n for n in keep_names if n not in enc.numeric_means and _model_name(fit, n) not in enc.factors]
    if bad:
        raise ModelError(
            f"cov_keep names {', '.join(map(repr, bad))}, not a numeric fixed-effects variable "
            f"({', '.join(sorted(enc.numeric_means)) or 'none'})"
        )
    clash = [n for n in keep_names if n in at]
    if clash:
        raise ModelError(f"{', '.join(map(repr, clash))} is given in both 'at' and cov_keep; give it in one of them")
    values, kept = {}, []
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
        else:
            distinct = _kept_values(fit, name, threshold, name in keep_names)
            if distinct is None:
                values[name] = [enc.numeric_means[name]]
            else:
                values[name] = list(distinct)
                kept.append(name)
    rows = list(itertools.product(*values.values()))
    return pd.DataFrame(rows, columns=list(values.keys())), kept


def _kept_values(fit: LmmFit, name: str, threshold: int, named: bool) -> tuple[float, ...] | None:
    """The covariate's distinct values if ``cov_keep`` keeps it, else None (it goes to its mean)."""
    enc = fit.encoding
    if name in enc.numeric_values:  # at most two values, known for every kind of fit
        distinct = enc.numeric_values[name]
        return distinct if named or len(distinct) <= threshold else None
    if not named and threshold <= 2:
        return None  # more than two values: reduced at emmeans' default and below
    counts = _counts(fit, f"cov_keep={threshold if not named else name!r}")
    if name not in counts.columns:
        if named:
            raise ModelError(
                f"cov_keep names {name!r}, which has more than {MAX_KEPT_VALUES} distinct values; "
                "give its values in 'at' instead"
            )
        return None
    distinct = tuple(sorted(float(v) for v in pd.unique(counts[name])))
    return distinct if named or len(distinct) <= threshold else None


def _counts(fit: LmmFit, what: str) -> pd.DataFrame:
    """The fitted rows' frequency table, or a ModelError saying why ``what`` cannot be honoured."""
    counts = fit.encoding.level_counts
    if counts is None or int(counts[COUNT_COLUMN].sum()) != fit.n_obs:
        raise ModelError(
            f"{what} needs the frequencies of the observations used in the fit, which this fit does not "
            "carry (it was made from sufficient statistics); use weights='equal' and cov_keep=2"
        )
    return counts


def _cells(
    fit: LmmFit, names: tuple[str, ...], at: dict, weights: str = "equal", cov_keep: CovKeep = 2
) -> tuple[list[tuple], np.ndarray]:
    check_weights(weights)
    grid, kept = _grid(fit, at, cov_keep)
    frame = grid.rename(columns={k: v for k, v in fit.encoding.sources.items() if k != v})
    X = model_rows(fit.encoding, frame, "fixed")
    keys = [tuple(row) for row in grid[list(names)].itertuples(index=False)] if names else [()] * len(grid)
    cells = list(dict.fromkeys(keys))
    position = {cell: i for i, cell in enumerate(cells)}
    index = np.array([position[key] for key in keys])
    wgt = None
    averaged = [c for c in grid.columns if c not in names and grid[c].nunique() > 1]
    if weights != "equal" and averaged:
        counted = [c for c in grid.columns if c in fit.encoding.factors] + kept
        wgt = grid_frequencies(grid, _counts(fit, f"weights={weights!r}"), counted)
    w = cell_weights(grid, wgt, names, weights)
    totals = np.bincount(index, weights=w, minlength=len(cells))
    empty = [cells[i] for i in np.flatnonzero(totals <= 0)]
    if empty:
        label = ", ".join(f"{n}={v}" for n, v in zip(names, empty[0]))
        raise ModelError(
            f"weights={weights!r}: the cell {label or '(all)'} has no observations in the data used in the fit, "
            "so its mean is not estimable with these weights"
        )
    L = np.zeros((len(cells), X.shape[1]))
    np.add.at(L, index, X * w[:, None])
    L /= totals[:, None]
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
