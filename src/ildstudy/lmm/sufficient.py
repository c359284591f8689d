"""Fit a mixed model from per-patient sums computed *in the database* (Ibis), not from rows.

The profiled deviance, its derivatives, Satterthwaite df and marginal means need only, per group i,
n_i, Z_i'Z_i, Z_i'X_i and Z_i'y_i, plus the global X'X, X'y and y'y (see
:mod:`ildstudy.lmm.deviance`). Every column of X and Z that R's model-matrix rules produce for the
supported terms is an SQL expression of the data columns, so these sums are SQL aggregates:

1. one small query per factor for its levels (and min/max/mean/distinct values of numeric
   covariates, type-7 quantiles for ``ns(x, df = k)`` knots), on the rows with no missing model
   column (the same rows ``fit_lmm`` keeps; the number dropped is counted in SQL);
2. the model-matrix columns as Ibis expressions: intercept, numeric columns, factor dummies
   (treatment contrasts exactly as formulaic/R code them), products for interactions, ``pl()``
   hinges and ``ns()`` as the piecewise cubic polynomials of the training basis (CASE on the knot
   intervals, linear beyond the boundary knots);
3. pass 1: one global aggregate (X'X, X'y) -> OLS coefficients b; pass 2: one
   ``group_by(id).aggregate(...)`` of n_i, Z_i'Z_i, Z_i'X_i and Z_i'(y - X b) (and, above
   ``WARM_START_GROUPS`` x 2 groups, X_i'X_i, X_i'(y - X b), (y - X b)'(y - X b) for the warm start on
   a subsample of groups, as ``fit_lmm`` does). Only that per-patient table leaves the database.

The column layout is taken from formulaic's model spec built on a few rows (with the full factor
levels and the knots resolved in SQL), so names, order and ``emmeans`` grids are those of
:func:`ildstudy.lmm.fit_lmm`; a numpy evaluation of the same column plan is checked against
formulaic's matrix on those rows before anything is summed. Terms that are not expressible (``log(x)``,
``I(x^2)``, ``poly()``, ...) raise :class:`~ildstudy.errors.ModelError` naming the column: fit such
models with ``fit_lmm`` on a DataFrame. Without rows, ``fit.fitted`` and ``fit.residuals`` are empty
and the summary omits the scaled-residual quantiles. This module builds Ibis expressions only; it
never opens a connection (the caller passes a table of any Ibis backend).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ildstudy.errors import ModelError
from ildstudy.lmm import design as _design
from ildstudy.lmm.design import Encoding, level_label
from ildstudy.lmm.fit import WARM_START_GROUPS, check_sizes, fit_from_statistics
from ildstudy.lmm.formula import TimeCall, _split_top_level, parse_formula, rewrite_time_calls
from ildstudy.lmm.optimize import optimize_theta
from ildstudy.lmm.options import OptimizerOptions, optimizer_options
from ildstudy.lmm.results import LmmFit
from ildstudy.lmm.splines import ns_basis, ns_knots
from ildstudy.lmm.stats import statistics_from_sums

PROTOTYPE_ROWS = 500
"""Rows fetched to build formulaic's model spec and to check the SQL column plan against it."""

_LEVEL = re.compile(r"^(?P<var>.+?)\[(?:T\.)?(?P<level>.*)\]$")


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """Per-group sums fetched from the database, and what the fit needs besides them.

    Attributes
    ----------
    n_obs, n_dropped : int
        Rows used; rows dropped for a missing model column.
    group_levels : ndarray, shape (G,)
        Sorted group ids (the order of every per-group array).
    sums : DataFrame
        The per-group table as fetched (one row per group, sorted by group id).
    fixed_names, random_names : tuple of str
    XtX, Xty : ndarray
        Global X'X and X'(y - X offset), shapes (p, p) and (p,).
    yty : float
        (y - X offset)'(y - X offset).
    offset : ndarray, shape (p,)
        OLS coefficients from pass 1.
    ZtZ, ZtX, Zty : ndarray, shapes (G, q, q), (G, q, p), (G, q)
    group_sizes : ndarray, shape (G,)
    group_XtX, group_Xty, group_yty : ndarray or None
        Per-group X_i'X_i, X_i'r_i, r_i'r_i (only when the warm start needs them).
    encoding : Encoding
    """

    n_obs: int
    n_dropped: int
    group_levels: np.ndarray
    sums: pd.DataFrame
    fixed_names: tuple[str, ...]
    random_names: tuple[str, ...]
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    offset: np.ndarray
    ZtZ: np.ndarray
    ZtX: np.ndarray
    Zty: np.ndarray
    group_sizes: np.ndarray
    group_XtX: np.ndarray | None
    group_Xty: np.ndarray | None
    group_yty: np.ndarray | None
    encoding: Encoding


def fit_lmm_in_engine(
    formula: str,
    table: Any,
    *,
    reml: bool = True,
    factor_levels: dict[str, list] | None = None,
    optimizer: OptimizerOptions | Mapping[str, Any] | None = None,
) -> LmmFit:
    """Fit ``formula`` as :func:`ildstudy.lmm.fit_lmm` does, with the sums computed by the database.

    Parameters
    ----------
    formula : str
        As for ``fit_lmm``; fixed and random parts may use numeric columns, factors (string or
        boolean columns, ``factor(x)``), interactions, ``ns()`` and ``pl()``.
    table : ibis.expr.types.Table
        One row per observation, on any Ibis backend (DuckDB, PostgreSQL, ...).
    reml, factor_levels, optimizer
        As for ``fit_lmm``.

    Returns
    -------
    LmmFit
        Equal to ``fit_lmm(formula, table.execute(), ...)`` up to floating-point summation order;
        ``fitted`` and ``residuals`` are empty arrays (the rows never leave the database).

    Raises
    ------
    ModelError
        As ``fit_lmm``, and for terms that cannot be computed in SQL.

    Examples
    --------
    >>> import ibis, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(30), 5); t = np.tile(np.arange(5.0), 30)
    >>> frame = pd.DataFrame({"y": 10 + 0.5 * t + rng.normal(size=30)[g] + rng.normal(size=150), "t": t, "g": g})
    >>> fit = fit_lmm_in_engine("y ~ t + (1 | g)", ibis.duckdb.connect().create_table("d", frame))
    >>> list(fit.fixed_effects["term"])
    ['(Intercept)', 't']
    """
    options = optimizer_options(optimizer)
    parsed = parse_formula(formula)
    stats_in = engine_statistics(formula, table, factor_levels=factor_levels,
                                 _warm_start_sums=None)
    G = len(stats_in.group_levels)
    p, q = len(stats_in.fixed_names), len(stats_in.random_names)
    check_sizes(stats_in.n_obs, p, q, G, reml, parsed.group)
    stats = statistics_from_sums(
        stats_in.ZtZ, stats_in.ZtX, stats_in.Zty, stats_in.XtX, stats_in.Xty, stats_in.yty,
        stats_in.n_obs, stats_in.group_sizes, stats_in.fixed_names, offset=stats_in.offset,
    )
    start = _warm_start(stats_in, reml, options)
    return fit_from_statistics(
        stats, parsed, reml=reml, options=options, start=start, fixed_names=stats_in.fixed_names,
        random_names=stats_in.random_names, group_levels=stats_in.group_levels,
        n_dropped=stats_in.n_dropped, encoding=stats_in.encoding, rows=None,
    )


def engine_statistics(
    formula: str, table: Any, *, factor_levels: dict[str, list] | None = None, _warm_start_sums: bool | None = None,
) -> EngineStatistics:
    """Compute the per-group sums of ``formula`` on ``table`` in the database (see the module docstring).

    ``_warm_start_sums``: fetch per-group X'X, X'r, r'r (default: when there are more than
    ``2 * WARM_START_GROUPS`` groups, as the fit's warm start then needs them).
    """
    import ibis

    parsed = parse_formula(formula)
    factor_levels = dict(factor_levels or {})
    fixed, fixed_factor_calls = _design._rewrite_factor_calls(parsed.fixed)
    random, random_factor_calls = _design._rewrite_factor_calls(parsed.random)
    fixed, fixed_time = rewrite_time_calls(fixed)
    random, random_time = rewrite_time_calls(random, start=len(fixed_time))
    time_calls = fixed_time + random_time
    factor_calls = {**fixed_factor_calls, **random_factor_calls}
    fixed_vars = _design._variables(fixed, None, factor_calls, "fixed")
    random_vars = _design._variables(random, None, factor_calls, "random-effects")
    used = _design._unique([parsed.response, parsed.group, *fixed_vars, *random_vars, *factor_calls.values()])
    schema = table.schema()
    missing = [c for c in used if c not in schema]
    if missing:
        raise ModelError(
            f"column(s) {', '.join(map(repr, missing))} named in the formula are not in the table "
            f"(columns: {', '.join(schema.names)})"
        )
    for name in factor_levels:
        if name not in used and name not in factor_calls:
            raise ModelError(f"factor_levels names {name!r}, which the formula does not use")
    response_type = schema[parsed.response]
    if not response_type.is_numeric() or response_type.is_boolean():
        raise ModelError(f"response {parsed.response!r} must be numeric, got a {response_type} column")

    complete = _complete(table, used, schema)
    counts = table.aggregate(n_all=table.count(), n_ok=ibis.ifelse(complete, 1, 0).sum()).execute()
    n_all, n_ok = int(counts["n_all"].iloc[0]), int(counts["n_ok"].iloc[0] or 0)
    if n_ok == 0:
        raise ModelError("no rows left after dropping rows with missing values in the model's columns")
    rows = table.filter(complete)
    floats = [c for c in used if schema[c].is_floating()]
    if floats:
        inf = rows.aggregate(**{c: ibis.ifelse(rows[c].isinf(), 1, 0).sum() for c in floats}).execute()
        bad = [c for c in floats if int(inf[c].iloc[0] or 0)]
        if bad:
            raise ModelError(f"column(s) {', '.join(map(repr, bad))} have infinite values")

    # Factors: which columns, their levels (label -> value used in SQL comparisons).
    factor_columns = {}  # model name -> source column
    for name in _design._unique([*fixed_vars, *random_vars]):
        dtype = schema[name]
        if name in factor_levels or dtype.is_string() or dtype.is_boolean():
            factor_columns[name] = name
        elif not dtype.is_numeric():
            raise ModelError(f"column {name!r} ({dtype}) is neither numeric nor a factor")
    factor_columns.update(factor_calls)
    factors: dict[str, tuple[str, ...]] = {}
    values: dict[str, dict[str, Any]] = {}
    for model_name, source in factor_columns.items():
        distinct = rows.select(source).distinct().execute()[source].tolist()
        given = factor_levels.get(model_name, factor_levels.get(source))
        factors[model_name], values[model_name] = _levels(distinct, model_name, given)
    for call in time_calls:
        if call.variable in factors:
            raise ModelError(f"{call.label}: {call.variable!r} must be numeric, not a factor")

    numeric = [v for v in _design._unique([*fixed_vars, *random_vars]) if v not in factors]
    fixed_numeric = [v for v in fixed_vars if v not in factors]
    numeric_means, numeric_ranges, numeric_values = _numeric_summaries(rows, fixed_numeric)
    time_calls = tuple(_resolve_time_call(rows, call) for call in time_calls)
    context = {call.placeholder: _design._time_transform(call) for call in time_calls}

    prototype = _model_frame(rows.select(*used).limit(PROTOTYPE_ROWS).execute(), numeric, factor_columns,
                             factors)
    X_proto, fixed_spec = _design._model_matrix(fixed, prototype, "fixed", context)
    Z_proto, random_spec = _design._model_matrix(random, prototype, "random-effects", context)
    if Z_proto.shape[1] == 0:
        raise ModelError(f"the random-effects term ({parsed.random} | {parsed.group}) has no columns")
    fixed_plan = [_column_plan(c, numeric, factors, values, factor_columns, time_calls) for c in fixed_spec.column_names]
    random_plan = [_column_plan(c, numeric, factors, values, factor_columns, time_calls) for c in random_spec.column_names]
    for plan, matrix, part in ((fixed_plan, X_proto, "fixed"), (random_plan, Z_proto, "random-effects")):
        _check_plan(plan, matrix, prototype, part)

    p, q = len(fixed_plan), len(random_plan)
    design_cols = {f"_x{j}": _sql_column(rows, plan) for j, plan in enumerate(fixed_plan)}
    design_cols.update({f"_z{k}": _sql_column(rows, plan) for k, plan in enumerate(random_plan)})
    design_cols["_y"] = rows[parsed.response].cast("float64")
    design_cols["_g"] = rows[parsed.group]
    d = rows.select(**design_cols)
    xs = [d[f"_x{j}"] for j in range(p)]
    zs = [d[f"_z{k}"] for k in range(q)]

    # Pass 1: X'X and X'y -> OLS offset, so pass 2 sums residuals (no cancellation in r'r).
    pass1 = {f"xx_{j}_{l}": (xs[j] * xs[l]).sum() for j in range(p) for l in range(j, p)}
    pass1.update({f"xy_{j}": (xs[j] * d._y).sum() for j in range(p)})
    pass1["n_groups"] = d._g.nunique()
    g1 = d.aggregate(**pass1).execute().iloc[0]
    XtX = np.empty((p, p))
    for j in range(p):
        for l in range(j, p):
            XtX[j, l] = XtX[l, j] = float(g1[f"xx_{j}_{l}"])
    Xy = np.array([float(g1[f"xy_{j}"]) for j in range(p)])
    fixed_names = tuple(_design._r_name(c, time_calls) for c in fixed_spec.column_names)
    random_names = tuple(_design._r_name(c, time_calls) for c in random_spec.column_names)
    R0 = np.linalg.cholesky(_design_check(XtX, fixed_names)).T
    import scipy.linalg

    offset = scipy.linalg.cho_solve((R0, False), Xy)
    n_groups = int(g1["n_groups"])
    warm = n_groups > 2 * WARM_START_GROUPS if _warm_start_sums is None else _warm_start_sums

    resid = d._y - sum((xs[j] * float(offset[j]) for j in range(p)), ibis.literal(0.0))
    d2 = d.mutate(_r=resid)
    xs = [d2[f"_x{j}"] for j in range(p)]
    zs = [d2[f"_z{k}"] for k in range(q)]
    agg = {"n": d2._g.count()}
    agg.update({f"zz_{k}_{m}": (zs[k] * zs[m]).sum() for k in range(q) for m in range(k, q)})
    agg.update({f"zx_{k}_{j}": (zs[k] * xs[j]).sum() for k in range(q) for j in range(p)})
    agg.update({f"zr_{k}": (zs[k] * d2._r).sum() for k in range(q)})
    agg.update({f"xr_{j}": (xs[j] * d2._r).sum() for j in range(p)})
    agg["rr"] = (d2._r * d2._r).sum()
    if warm:
        agg.update({f"xx_{j}_{l}": (xs[j] * xs[l]).sum() for j in range(p) for l in range(j, p)})
    sums = d2.group_by("_g").aggregate(**agg).execute()
    sums = sums.sort_values("_g", kind="stable").reset_index(drop=True)
    G = len(sums)
    ZtZ = np.empty((G, q, q))
    for k in range(q):
        for m in range(k, q):
            ZtZ[:, k, m] = ZtZ[:, m, k] = sums[f"zz_{k}_{m}"].to_numpy(np.float64)
    ZtX = np.stack([np.column_stack([sums[f"zx_{k}_{j}"].to_numpy(np.float64) for j in range(p)])
                    for k in range(q)], axis=1)
    Zr = np.column_stack([sums[f"zr_{k}"].to_numpy(np.float64) for k in range(q)])
    Xr_g = np.column_stack([sums[f"xr_{j}"].to_numpy(np.float64) for j in range(p)])
    rr_g = sums["rr"].to_numpy(np.float64)
    group_XtX = None
    if warm:
        group_XtX = np.empty((G, p, p))
        for j in range(p):
            for l in range(j, p):
                group_XtX[:, j, l] = group_XtX[:, l, j] = sums[f"xx_{j}_{l}"].to_numpy(np.float64)

    model_vars = [v for v in fixed_vars if v in numeric or v in factors] + [
        name for name in factor_calls if f"`{name}`" in fixed
    ]
    encoding = Encoding(
        fixed=fixed, random=random, factors=factors,
        sources={name: source for name, source in factor_columns.items()},
        numeric_means=numeric_means, numeric_values=numeric_values,
        fixed_variables=tuple(_design._order_of_appearance(fixed, _design._unique(model_vars))),
        fixed_spec=fixed_spec, random_spec=random_spec, numeric_ranges=numeric_ranges,
        time_calls=time_calls, context=context,
    )
    return EngineStatistics(
        n_obs=n_ok, n_dropped=n_all - n_ok, group_levels=sums["_g"].to_numpy(), sums=sums,
        fixed_names=fixed_names, random_names=random_names, XtX=XtX, Xty=Xr_g.sum(axis=0),
        yty=float(rr_g.sum()), offset=offset, ZtZ=ZtZ, ZtX=ZtX, Zty=Zr,
        group_sizes=sums["n"].to_numpy(np.int64), group_XtX=group_XtX,
        group_Xty=Xr_g if warm else None, group_yty=rr_g if warm else None, encoding=encoding,
    )


def _design_check(XtX: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    from ildstudy.lmm.stats import _x_factor

    _x_factor(XtX, names)  # raises the collinearity / all-zero-column message of fit_lmm
    return XtX


def _warm_start(s: EngineStatistics, reml: bool, options: OptimizerOptions) -> np.ndarray | None:
    """As ``fit._warm_start``: theta at the optimum on every k-th group (same groups, same order)."""
    G = len(s.group_levels)
    if G <= 2 * WARM_START_GROUPS or s.group_XtX is None:
        return None
    step = G // WARM_START_GROUPS
    sel = np.arange(G) % step == 0
    try:
        sub = statistics_from_sums(
            s.ZtZ[sel], s.ZtX[sel], s.Zty[sel], s.group_XtX[sel].sum(axis=0), s.group_Xty[sel].sum(axis=0),
            float(s.group_yty[sel].sum()), int(s.group_sizes[sel].sum()), s.group_sizes[sel],
        )
    except ModelError:
        return None
    record, _, _ = optimize_theta(sub, reml, options=options)
    return np.array(record.final)


def _complete(table, used: list[str], schema) -> Any:
    """True where no model column is missing (NULL, or NaN in a floating column: pandas' notna)."""
    cond = None
    for c in used:
        ok = table[c].notnull()
        if schema[c].is_floating():
            ok = ok & ~table[c].isnan()
        cond = ok if cond is None else cond & ok
    return cond


def _levels(distinct: list, name: str, given: list | None) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Level labels in fit_lmm's order (sorted or as given; unused dropped) and label -> SQL value."""
    try:
        ordered = sorted(distinct)
    except TypeError:
        ordered = sorted(distinct, key=str)
    by_label = {}
    for v in ordered:
        by_label.setdefault(level_label(v), v.item() if isinstance(v, np.generic) else v)
    order = list(by_label) if given is None else _design._unique([level_label(v) for v in given])
    unknown = sorted(set(by_label) - set(order))
    if unknown:
        raise ModelError(
            f"column {name!r} has value(s) {', '.join(map(repr, unknown[:5]))} not among its levels {order}"
        )
    order = [level for level in order if level in by_label]
    return tuple(order), {level: by_label[level] for level in order}


def _numeric_summaries(rows, names: list[str]):
    if not names:
        return {}, {}, {}
    agg = {}
    for i, c in enumerate(names):
        col = rows[c].cast("float64")
        agg.update({f"mean{i}": col.mean(), f"min{i}": col.min(), f"max{i}": col.max(),
                    f"nd{i}": col.nunique()})
    got = rows.aggregate(**agg).execute().iloc[0]
    means, ranges, two = {}, {}, {}
    for i, c in enumerate(names):
        means[c] = float(got[f"mean{i}"])
        ranges[c] = (float(got[f"min{i}"]), float(got[f"max{i}"]))
        if int(got[f"nd{i}"]) <= 2:
            two[c] = tuple(sorted({float(got[f"min{i}"]), float(got[f"max{i}"])}))
    return means, ranges, two


def _resolve_time_call(rows, call: TimeCall) -> TimeCall:
    """``ns()`` with knots/boundary from the data: computed in SQL (min, max, type-7 quantiles)."""
    if call.kind != "ns" or (call.knots is not None and call.boundary_knots is not None):
        return call
    x = rows[call.variable].cast("float64")
    boundary = call.boundary_knots
    if boundary is None:
        got = rows.aggregate(lo=x.min(), hi=x.max()).execute().iloc[0]
        boundary = (float(got["lo"]), float(got["hi"]))
        if boundary[0] == boundary[1]:
            raise ModelError(f"{call.label}: boundary knots must differ, got {list(boundary)}")
    knots = call.knots
    if knots is None and call.df is not None:
        n_interior = max(int(call.df) - 1 - int(call.intercept), 0)
        probs = np.linspace(0.0, 1.0, n_interior + 2)[1:-1]
        inside = rows.filter((x >= boundary[0]) & (x <= boundary[1])) if call.boundary_knots else rows
        xi = inside[call.variable].cast("float64")
        if n_interior:
            got = inside.aggregate(**{f"q{i}": xi.quantile(float(pr)) for i, pr in enumerate(probs)}).execute()
            knots = tuple(float(got[f"q{i}"].iloc[0]) for i in range(n_interior))
        else:
            knots = ()
    interior, bounds = ns_knots(np.array(boundary), None, knots or (), boundary, call.intercept)
    return dataclasses.replace(call, knots=tuple(float(v) for v in interior),
                               boundary_knots=tuple(float(v) for v in bounds))


def _model_frame(frame: pd.DataFrame, numeric: list[str], factor_columns: dict[str, str], factors) -> pd.DataFrame:
    cols = {name: pd.to_numeric(frame[name]).astype(np.float64) for name in numeric}
    for model_name, source in factor_columns.items():
        labels = [level_label(v) for v in frame[source]]
        cols[model_name] = pd.Categorical(labels, categories=list(factors[model_name]))
    return pd.DataFrame(cols, index=frame.index)


def _column_plan(name: str, numeric, factors, values, sources, time_calls) -> list[tuple]:
    """One model-matrix column as a product of parts: ``("num", col)``, ``("dummy", model name, label,
    source column, source value)`` or ``("ns" | "pl", call, j)``."""
    if name == "Intercept":
        return []
    return [_part(part, name, numeric, factors, values, sources, time_calls)
            for part in _split_top_level(name, ":")]


def _part(part: str, column: str, numeric, factors, values, sources, time_calls) -> tuple:
    bare = part.replace("`", "")
    if bare in numeric:
        return ("num", bare)
    for call in time_calls:
        prefix = f"{call.placeholder}({call.variable})"
        if bare.startswith(prefix) and bare[len(prefix):].isdigit():
            return (call.kind, call, int(bare[len(prefix):]))
    match = _LEVEL.match(bare)
    if match and match.group("var") in factors and match.group("level") in values[match.group("var")]:
        var, level = match.group("var"), match.group("level")
        return ("dummy", var, level, sources[var], values[var][level])
    raise ModelError(
        f"model column {column!r} cannot be computed in the database (supported: numeric columns, "
        "factors, interactions, ns(), pl()); fit this model with fit_lmm on a DataFrame"
    )


def _check_plan(plan: list[list[tuple]], matrix: np.ndarray, frame: pd.DataFrame, part: str) -> None:
    """The column plan, evaluated with numpy on the prototype rows, must reproduce formulaic's matrix."""
    got = np.column_stack([_numpy_column(frame, p) for p in plan]) if plan else np.empty((len(frame), 0))
    if got.shape != matrix.shape or not np.allclose(got, matrix, rtol=1e-11, atol=1e-11):
        raise ModelError(f"internal: the SQL plan of the {part} model matrix does not match formulaic's")


def _numpy_column(frame: pd.DataFrame, plan: list[tuple]) -> np.ndarray:
    out = np.ones(len(frame))
    for item in plan:
        if item[0] == "num":
            out = out * frame[item[1]].to_numpy(np.float64)
        elif item[0] == "dummy":
            out = out * (np.asarray(frame[item[1]].astype(str)) == item[2])
        else:
            out = out * _basis_numpy(item[1], frame[item[1].variable].to_numpy(np.float64), item[2])
    return out


def _pieces(call: TimeCall, j: int) -> list[tuple[float, float, np.ndarray]]:
    """Column j (1-based) of an ``ns`` basis as polynomials: (lo, hi, cubic coefficients in (x - lo) / w).

    The basis is a cubic on each knot interval and linear beyond the boundary knots; the
    coefficients are solved from the exact basis at 4 points of each interval.
    """
    lo, hi = call.boundary_knots
    breaks = [lo, *call.knots, hi]
    out = []
    width0 = hi - lo
    segments = [(lo - width0, lo)] + list(zip(breaks[:-1], breaks[1:])) + [(hi, hi + width0)]
    for a, b in segments:
        u = np.array([0.0, 1 / 3, 2 / 3, 1.0])
        x = a + (b - a) * u
        y = ns_basis(x, call.knots, call.boundary_knots, call.intercept)[:, j - 1]
        coef = np.linalg.solve(np.vander(u, 4, increasing=True), y)
        out.append((a, b, coef))
    return out


def _basis_numpy(call: TimeCall, x: np.ndarray, j: int) -> np.ndarray:
    if call.kind == "pl":
        return x if j == 1 else np.maximum(x - call.knots[j - 2], 0.0)
    pieces = _pieces(call, j)
    lo, hi = call.boundary_knots
    out = np.empty_like(x)
    for i, (a, b, c) in enumerate(pieces):
        if i == 0:
            mask = x < lo
        elif i == len(pieces) - 1:
            mask = x > hi
        else:
            mask = (x >= a) & ((x < b) if i < len(pieces) - 2 else (x <= b))
        u = (x[mask] - a) / (b - a)
        out[mask] = c[0] + u * (c[1] + u * (c[2] + u * c[3]))
    return out


def _sql_column(rows, plan: list[tuple]):
    import ibis

    expr = None
    for item in plan:
        if item[0] == "num":
            term = rows[item[1]].cast("float64")
        elif item[0] == "dummy":
            term = ibis.ifelse(rows[item[3]] == ibis.literal(item[4], type=rows[item[3]].type()), 1.0, 0.0)
        else:
            term = _basis_sql(item[1], rows[item[1].variable].cast("float64"), item[2])
        expr = term if expr is None else expr * term
    return ibis.literal(1.0, type="float64") if expr is None else expr


def _basis_sql(call: TimeCall, x, j: int):
    import ibis

    if call.kind == "pl":
        return x if j == 1 else ibis.greatest(x - float(call.knots[j - 2]), 0.0)
    pieces = _pieces(call, j)
    lo, hi = call.boundary_knots
    branches = []
    for i, (a, b, c) in enumerate(pieces):
        u = (x - float(a)) / float(b - a)
        poly = float(c[0]) + u * (float(c[1]) + u * (float(c[2]) + u * float(c[3])))
        if i == 0:
            cond = x < float(lo)
        elif i == len(pieces) - 1:
            cond = x > float(hi)
        elif i < len(pieces) - 2:
            cond = x < float(b)
        else:
            cond = x <= float(b)
        branches.append((cond, poly))
    return ibis.cases(*branches, else_=ibis.null("float64"))
