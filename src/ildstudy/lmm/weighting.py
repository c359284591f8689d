"""How marginal means average over the reference grid: emmeans' ``weights`` and ``cov.keep``.

This module is pure (pandas/numpy only) so that :mod:`ildstudy.lmm.design` can count the fitted rows
with it and :mod:`ildstudy.lmm.emmeans` can weight the grid with it. Everything follows emmeans 1.8.4
(``R/ref-grid.R``: ``cov.keep`` and the ``.wgt.`` column; ``R/emmeans.R``: the ``weights`` switch).

``cov.keep`` (:func:`cov_keep_rule`)
    A numeric covariate with at most *k* distinct values over the fitted rows (``cov_keep=k``, emmeans'
    ``cov.keep = "k"``; emmeans' threshold is ``max(1, k)``), or named in a list, enters the grid at each
    of its values like a factor level; every other covariate is reduced to its mean over the fitted rows.
    ``cov_keep=0`` (or ``[]``, emmeans' ``character(0)``) puts every covariate at its mean. Variables given
    in ``at`` take those values and are never "kept".

``.wgt.`` (:func:`grid_frequencies`)
    Each grid row's frequency: the number of fitted rows (observations) whose factors and kept covariates
    equal the grid row's (``at`` covariates are not matched). If every frequency is 0, all are set to 1.

``weights`` (:func:`cell_weights`), for the variables averaged over (grid margins with more than one value
that are neither ``specs`` nor ``by``):

* ``"equal"``: every combination weighs the same (emmeans' default).
* ``"proportional"``: a combination weighs its frequency summed over the whole grid (the same weights in
  every cell).
* ``"outer"``: the product of each averaged variable's marginal frequencies.
* ``"cells"``: the frequency of the grid row itself, within each cell (raw cell frequencies).
* ``"flat"``: 1 for grid rows with data and 0 for empty ones, within each cell.

With nothing to average over, every option gives the cell's single grid row (as emmeans).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import pandas as pd

from ildstudy.errors import ModelError

Weighting = Literal["equal", "proportional", "outer", "cells", "flat"]
WEIGHTS: tuple[str, ...] = get_args(Weighting)
CovKeep = int | str | Sequence[str | int]

MAX_KEPT_VALUES = 20
"""Numeric covariates with at most this many distinct values are counted with the factors when a model is
fitted, so ``cov_keep`` thresholds (and named covariates) up to this many values can be honoured."""

COUNT_COLUMN = "_ildstudy_n"


def check_weights(weights: str) -> str:
    """Return ``weights`` if it is one of :data:`WEIGHTS`; otherwise raise ModelError listing them."""
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise ModelError(f"weights must be one of {', '.join(map(repr, WEIGHTS))}; got {weights!r}")
    return weights


def cov_keep_rule(cov_keep: CovKeep) -> tuple[int, tuple[str, ...]]:
    """(threshold, names) of a ``cov_keep`` value, as emmeans reads ``cov.keep``.

    An int (or a string of digits, as emmeans writes ``"2"``) is a threshold; strings are covariate names;
    a list may mix both, and the largest threshold counts. As in emmeans the threshold is at least 1
    (a covariate with one value is the same kept or averaged).
    """
    items = [cov_keep] if isinstance(cov_keep, (int, str)) and not isinstance(cov_keep, bool) else cov_keep
    if isinstance(items, (bool, float)) or not isinstance(items, Sequence):
        raise ModelError(f"cov_keep must be an int, a covariate name or a list of them; got {cov_keep!r}")
    thresholds, names = [], []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ModelError(f"cov_keep entries must be ints or covariate names; got {item!r}")
        if isinstance(item, int) or item.isdigit():
            value = int(item)
            if value < 0:
                raise ModelError(f"cov_keep thresholds must be >= 0; got {item!r}")
            thresholds.append(value)
        else:
            names.append(item)
    threshold = max([1, *thresholds])
    if threshold > MAX_KEPT_VALUES:
        raise ModelError(
            f"cov_keep thresholds above {MAX_KEPT_VALUES} distinct values are not supported; got {threshold}"
        )
    return threshold, tuple(dict.fromkeys(names))


def frequency_table(frame: pd.DataFrame, factors: Sequence[str], numerics: Sequence[str]) -> pd.DataFrame:
    """Counts of the distinct combinations of ``factors`` and of the few-valued ``numerics`` in ``frame``.

    Parameters
    ----------
    frame : DataFrame
        The fitted rows: factor columns as Categoricals of level labels, numeric columns as floats.
    factors, numerics : sequence of str
        Columns to count; numeric columns with more than :data:`MAX_KEPT_VALUES` distinct values are left
        out (they can never be kept as levels).

    Returns
    -------
    DataFrame
        One row per combination present: the columns (factors as label strings, numerics as floats) and
        the count in column :data:`COUNT_COLUMN`; it sums to ``len(frame)``.
    """
    codes, uniques, names = [], [], []
    for name in factors:
        column = frame[name]
        codes.append(np.asarray(column.cat.codes, dtype=np.int64))
        uniques.append(np.asarray(column.cat.categories, dtype=object))
        names.append(name)
    for name in numerics:
        values = frame[name].to_numpy(dtype=np.float64)
        if len(pd.unique(values[:10_000])) > MAX_KEPT_VALUES:
            continue
        code, unique = pd.factorize(values, sort=True)
        if len(unique) <= MAX_KEPT_VALUES:
            codes.append(code.astype(np.int64))
            uniques.append(np.asarray(unique, dtype=np.float64))
            names.append(name)
    if not names:
        return pd.DataFrame({COUNT_COLUMN: [len(frame)]})
    sizes = [max(len(u), 1) for u in uniques]
    if float(np.prod(np.array(sizes, dtype=np.float64))) < 2.0**62:
        combined = np.zeros(len(frame), dtype=np.int64)
        for code, size in zip(codes, sizes):
            combined = combined * size + code
        counts = pd.Series(combined).value_counts(sort=False).sort_index()
        keys, rest = counts.index.to_numpy(dtype=np.int64), []
        for size in reversed(sizes):
            rest.append(keys % size)
            keys = keys // size
        decoded = list(reversed(rest))
        n = counts.to_numpy(dtype=np.int64)
    else:  # pragma: no cover - more combinations than an int64 can index
        grouped = pd.DataFrame(dict(zip(names, codes))).value_counts(sort=False).sort_index()
        decoded = [grouped.index.get_level_values(i).to_numpy() for i in range(len(names))]
        n = grouped.to_numpy(dtype=np.int64)
    out = {name: unique[code] for name, unique, code in zip(names, uniques, decoded)}
    out[COUNT_COLUMN] = n
    return pd.DataFrame(out)


def grid_frequencies(grid: pd.DataFrame, counts: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """emmeans' ``.wgt.``: for each grid row, the fitted rows whose ``keys`` columns equal the grid row's.

    All-zero frequencies become all ones, as emmeans does.
    """
    keys = list(keys)
    if not keys:
        wgt = np.full(len(grid), float(counts[COUNT_COLUMN].sum()))
    else:
        totals = counts.groupby(keys, sort=False)[COUNT_COLUMN].sum()
        lookup = {(k if isinstance(k, tuple) else (k,)): float(v) for k, v in totals.items()}
        rows = grid[keys].itertuples(index=False, name=None)
        wgt = np.array([lookup.get(tuple(row), 0.0) for row in rows], dtype=np.float64)
    if np.all(np.abs(wgt) < 1e-12):
        wgt = wgt + 1.0
    return wgt


def cell_weights(grid: pd.DataFrame, wgt: np.ndarray | None, names: Sequence[str], weights: str) -> np.ndarray:
    """Weight of each grid row in the average over its cell (the ``names`` columns), up to a per-cell scale.

    Parameters
    ----------
    grid : DataFrame
        The reference grid, one column per model variable.
    wgt : ndarray, shape (len(grid),), or None
        :func:`grid_frequencies` (not needed for ``"equal"``).
    names : sequence of str
        ``specs`` + ``by``: the variables whose cells get a mean.
    weights : str
        One of :data:`WEIGHTS`.
    """
    check_weights(weights)
    averaged = [c for c in grid.columns if c not in names and grid[c].nunique(dropna=False) > 1]
    if weights == "equal" or not averaged:
        return np.ones(len(grid))
    assert wgt is not None
    if weights == "cells":
        return np.asarray(wgt, dtype=np.float64)
    if weights == "flat":
        return (np.asarray(wgt) > 0).astype(np.float64)
    if weights == "proportional":
        return _margin_sums(grid, wgt, averaged)
    total = float(np.sum(wgt))
    w = np.full(len(grid), total)
    for column in averaged:  # outer: N * prod_d (margin_d / N)
        w = w * _margin_sums(grid, wgt, [column]) / total
    return w


def _margin_sums(grid: pd.DataFrame, wgt: np.ndarray, columns: list[str]) -> np.ndarray:
    """For each grid row, the sum of ``wgt`` over the grid rows sharing its values of ``columns``."""
    key = pd.MultiIndex.from_frame(grid[columns]) if len(columns) > 1 else pd.Index(grid[columns[0]])
    codes, _ = pd.factorize(key)
    sums = np.bincount(codes, weights=wgt)
    return sums[codes]


_WEIGHT_PHRASES = {
    "equal": "with equal weights",
    "proportional": "in proportion to the frequencies of their combinations among the observations used in the fit",
    "outer": "in proportion to the products of each variable's marginal frequencies among the observations used in the fit",
    "cells": "in proportion to the frequencies of the observations in each cell (raw cell frequencies)",
    "flat": "with equal weights over the combinations present in the data in each cell (empty combinations ignored)",
}


def describe_weighting(weights: str = "equal", cov_keep: CovKeep = 2) -> str:
    """One sentence saying what ``weights`` and ``cov_keep`` do, for a methods section.

    Examples
    --------
    >>> describe_weighting()  # doctest: +NORMALIZE_WHITESPACE
    'Marginal means average over factors and over covariates with at most 2 distinct values with equal weights
    (emmeans weights = "equal", cov.keep = "2"); other covariates are held at their means.'
    >>> describe_weighting("proportional", 0)  # doctest: +ELLIPSIS
    'Marginal means average over factors in proportion to ... cov.keep = character(0)); all numeric covariates ...'
    """
    check_weights(weights)
    threshold, names = cov_keep_rule(cov_keep)
    kept = []
    if threshold >= 2:
        kept.append(f"covariates with at most {threshold} distinct values")
    if names:
        kept.append(("covariate " if len(names) == 1 else "covariates ") + ", ".join(names))
    over = "factors" + (" and over " + " and ".join(kept) if kept else "")
    r_keep = [f'"{threshold}"'] if threshold >= 2 else []
    r_keep += [f'"{n}"' for n in names]
    r_text = ("c(" + ", ".join(r_keep) + ")" if len(r_keep) > 1 else r_keep[0]) if r_keep else "character(0)"
    rest = "other covariates are held at their means" if kept else "all numeric covariates are held at their means"
    return (f"Marginal means average over {over} {_WEIGHT_PHRASES[weights]} "
            f'(emmeans weights = "{weights}", cov.keep = {r_text}); {rest}.')
