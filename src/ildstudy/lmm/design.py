"""Turn a parsed mixed-model formula and a DataFrame into the matrices X, Z, y and group codes.

R conventions: string, categorical and boolean columns are factors (levels sorted, or as given by
the caller, first level = reference, treatment contrasts); ``factor(x)`` in a formula makes a
numeric column a factor; rows with a missing value in any column the model uses are dropped (as
lme4's ``na.omit``) and counted; unused factor levels are dropped (as ``model.frame``). The fixed
and random parts go through formulaic; its column names are translated to R's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaicError

from ildstudy.errors import ModelError
from ildstudy.lmm.formula import MixedFormula, TimeCall, r_column_name, rewrite_time_calls
from ildstudy.lmm.splines import make_ns_transform, make_pl_transform
from ildstudy.lmm.weighting import frequency_table

_FACTOR_CALL = re.compile(r"\b(?:as\.)?factor\(\s*`?([A-Za-z_.][A-Za-z0-9_.]*)`?\s*\)")


@dataclass(frozen=True, slots=True)
class Encoding:
    """How the model's columns are encoded; reused to build rows for new data and emmeans grids.

    Attributes
    ----------
    fixed : str
        Fixed-part formula as given to formulaic (``factor(x)`` rewritten to a backticked column).
    random : str
        Random-part formula as given to formulaic.
    factors : dict[str, tuple[str, ...]]
        Level labels of every factor column the model uses (first = reference).
    sources : dict[str, str]
        For each factor column, the data column it comes from (``"factor(visit)" -> "visit"``).
    numeric_means : dict[str, float]
        Mean over the used rows of every numeric variable of the fixed part (emmeans' default).
    numeric_values : dict[str, tuple[float, ...]]
        Distinct values of numeric fixed-part variables with at most two of them (e.g. 0/1
        indicators): emmeans' default ``cov.keep = "2"`` keeps them like factor levels.
    fixed_variables : tuple[str, ...]
        Variables of the fixed part in order of appearance (factor columns under their model name).
    fixed_spec, random_spec : formulaic.ModelSpec
        formulaic's specs, to build model matrices for new data with identical columns (they hold
        the training knots of ``ns()`` terms, so new rows reuse them, as R's ``makepredictcall``).
    numeric_ranges : dict[str, tuple[float, float]]
        (min, max) over the used rows of every numeric fixed-part variable (emtrends' ``delta.var``).
    time_calls : tuple of TimeCall
        The ``ns()`` / ``pl()`` calls of the formula, in order.
    context : dict
        formulaic evaluation context: one stateful transform per time call.
    level_counts : DataFrame or None
        Counts of the fitted rows per combination of the fixed-part factors and few-valued numeric
        variables (:func:`ildstudy.lmm.weighting.frequency_table`): what emmeans' ``weights`` and
        ``cov.keep`` need. None when the fit did not see the rows (statistics computed in an engine).
    """

    fixed: str
    random: str
    factors: dict[str, tuple[str, ...]]
    sources: dict[str, str]
    numeric_means: dict[str, float]
    numeric_values: dict[str, tuple[float, ...]]
    fixed_variables: tuple[str, ...]
    fixed_spec: Any
    random_spec: Any
    numeric_ranges: dict[str, tuple[float, float]]
    time_calls: tuple[TimeCall, ...]
    context: dict[str, Any]
    level_counts: pd.DataFrame | None = None

    def frame(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return ``data`` with the model's factor columns encoded with the fitted levels."""
        out = {}
        for name, source in self.sources.items():
            if source not in data.columns:
                raise ModelError(f"column {source!r} is missing from the new data")
            out[name] = _as_factor(data[source], name, list(self.factors[name]), drop_unused=False)
        for name in data.columns:
            if name not in out:
                out[name] = data[name]
        return pd.DataFrame(out, index=data.index)


@dataclass(frozen=True, slots=True)
class Design:
    """Model matrices of one mixed model, rows in the order of the (NA-filtered) data.

    Attributes
    ----------
    X : ndarray, shape (n, p)
        Fixed-effects model matrix.
    Z : ndarray, shape (n, q)
        Random-effects model matrix of the single grouping factor (one row block per group).
    y : ndarray, shape (n,)
        Response.
    group_codes : ndarray of int64, shape (n,)
        Index of each row's group in ``group_levels``.
    group_levels : ndarray, shape (G,)
        Sorted distinct values of the grouping column.
    fixed_names, random_names : tuple of str
        Column names as R prints them (``(Intercept)``, ``armAZA``, ``months:armAZA``).
    n_dropped : int
        Rows dropped because a used column was missing.
    encoding : Encoding
        How to rebuild rows of X and Z for new data.
    """

    formula: MixedFormula
    X: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    group_codes: np.ndarray
    group_levels: np.ndarray
    fixed_names: tuple[str, ...]
    random_names: tuple[str, ...]
    n_dropped: int
    encoding: Encoding


def build_design(
    formula: MixedFormula,
    data: pd.DataFrame,
    factor_levels: dict[str, list] | None = None,
) -> Design:
    """Build X, Z, y and group codes for ``formula`` on ``data``.

    Parameters
    ----------
    formula : MixedFormula
        From :func:`ildstudy.lmm.formula.parse_formula`.
    data : DataFrame
        One row per observation.
    factor_levels : dict, optional
        Explicit level order for factor columns, e.g. ``{"arm": ["MMF", "AZA"]}`` (first = reference).
        A numeric column listed here becomes a factor.

    Raises
    ------
    ModelError
        Missing column, non-numeric response, unknown level, no rows left, non-finite model matrix.
    """
    if not isinstance(data, pd.DataFrame):
        raise ModelError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    factor_levels = dict(factor_levels or {})
    fixed, fixed_factor_calls = _rewrite_factor_calls(formula.fixed)
    random, random_factor_calls = _rewrite_factor_calls(formula.random)
    fixed, fixed_time = rewrite_time_calls(fixed)
    random, random_time = rewrite_time_calls(random, start=len(fixed_time))
    time_calls = fixed_time + random_time
    context = {call.placeholder: _time_transform(call) for call in time_calls}
    factor_calls = {**fixed_factor_calls, **random_factor_calls}
    fixed_vars = _variables(fixed, data, factor_calls, "fixed")
    random_vars = _variables(random, data, factor_calls, "random-effects")
    used = _unique([formula.response, formula.group, *fixed_vars, *random_vars, *factor_calls.values()])
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise ModelError(
            f"column(s) {', '.join(map(repr, missing))} named in the formula are not in the data "
            f"(columns: {', '.join(map(str, data.columns))})"
        )
    for name in factor_levels:
        if name not in used and name not in factor_calls:
            raise ModelError(f"factor_levels names {name!r}, which the formula does not use")

    # column by column: data[used] and frame.loc[keep] would copy every column twice (0.2 s at 550,000 rows)
    frame = {c: data[c] for c in used}
    keep = np.logical_and.reduce([col.notna().to_numpy() for col in frame.values()])
    n_dropped = int((~keep).sum())
    index = data.index
    if n_dropped:
        frame = {c: col[keep] for c, col in frame.items()}
        index = index[keep]
    if not keep.any():
        raise ModelError("no rows left after dropping rows with missing values in the model's columns")

    y = _response(frame[formula.response], formula.response)
    factors: dict[str, tuple[str, ...]] = {}
    sources: dict[str, str] = {}
    columns: dict[str, Any] = {}
    for name in _unique([*fixed_vars, *random_vars]):
        column = frame[name]
        if name in factor_levels or _is_factor_like(column):
            encoded = _as_factor(column, name, factor_levels.get(name), drop_unused=True)
            factors[name], sources[name] = tuple(encoded.categories), name
            columns[name] = encoded
        else:
            columns[name] = pd.to_numeric(column).astype(np.float64)
    for model_name, source in factor_calls.items():
        levels = factor_levels.get(model_name, factor_levels.get(source))
        encoded = _as_factor(frame[source], model_name, levels, drop_unused=True)
        factors[model_name], sources[model_name] = tuple(encoded.categories), source
        columns[model_name] = encoded
    model_frame = pd.DataFrame(columns, index=index, copy=False)

    for call in time_calls:
        if call.variable in factors:
            raise ModelError(f"{call.label}: {call.variable!r} must be numeric, not a factor")
    X, fixed_spec = _model_matrix(fixed, model_frame, "fixed", context)
    Z, random_spec = _model_matrix(random, model_frame, "random-effects", context)
    if Z.shape[1] == 0:
        raise ModelError(f"the random-effects term ({formula.random} | {formula.group}) has no columns")
    group_codes, group_levels = _group_codes(frame[formula.group])
    numeric_means = {
        name: float(col.mean()) for name, col in columns.items()
        if name not in factors and name in fixed_vars
    }
    numeric_ranges = {
        name: (float(columns[name].min()), float(columns[name].max())) for name in numeric_means
    }
    numeric_values = {}
    for name in numeric_means:
        distinct = _at_most_two_values(columns[name].to_numpy())
        if distinct is not None:
            numeric_values[name] = distinct
    model_vars = [v for v in fixed_vars if v in columns] + [
        name for name in factor_calls if f"`{name}`" in fixed
    ]
    ordered_vars = tuple(_order_of_appearance(fixed, _unique(model_vars)))
    encoding = Encoding(
        fixed=fixed,
        random=random,
        factors=factors,
        sources=sources,
        numeric_means=numeric_means,
        numeric_values=numeric_values,
        fixed_variables=ordered_vars,
        fixed_spec=fixed_spec,
        random_spec=random_spec,
        numeric_ranges=numeric_ranges,
        time_calls=time_calls,
        context=context,
        level_counts=frequency_table(
            model_frame, [v for v in ordered_vars if v in factors], [v for v in ordered_vars if v in numeric_means]
        ),
    )
    return Design(
        formula=formula,
        X=X,
        Z=Z,
        y=y,
        group_codes=group_codes,
        group_levels=group_levels,
        fixed_names=tuple(_r_name(c, time_calls) for c in fixed_spec.column_names),
        random_names=tuple(_r_name(c, time_calls) for c in random_spec.column_names),
        n_dropped=n_dropped,
        encoding=encoding,
    )


def model_rows(encoding: Encoding, data: pd.DataFrame, part: str = "fixed") -> np.ndarray:
    """Rows of X (``part="fixed"``) or Z (``"random"``) for new data, columns as in the fit.

    Returns
    -------
    ndarray, shape (len(data), p) or (len(data), q)
    """
    spec = encoding.fixed_spec if part == "fixed" else encoding.random_spec
    frame = encoding.frame(data)
    try:
        matrix = spec.get_model_matrix(frame, output="numpy", na_action="raise", context=encoding.context)
    except FormulaicError as exc:
        raise ModelError(f"cannot build the {part} model matrix for the new data: {exc}") from None
    except ValueError as exc:
        raise ModelError(f"cannot build the {part} model matrix for the new data: {exc}") from None
    return np.asarray(matrix, dtype=np.float64)


def _rewrite_factor_calls(text: str) -> tuple[str, dict[str, str]]:
    """Replace ``factor(x)`` by a backticked column ``factor(x)``; return the mapping to ``x``."""
    calls: dict[str, str] = {}

    def replace(match: re.Match) -> str:
        name = f"factor({match.group(1)})"
        calls[name] = match.group(1)
        return f"`{name}`"

    return _FACTOR_CALL.sub(replace, text), calls


def _variables(text: str, data: pd.DataFrame, factor_calls: dict[str, str], part: str) -> list[str]:
    try:
        required = Formula(text).required_variables
    except FormulaicError as exc:
        raise ModelError(f"cannot parse the {part} part {text!r}: {exc}") from None
    # Derived ``factor(x)`` columns are built from their source column, listed separately.
    names = [str(v) for v in required if str(v) not in factor_calls and not str(v).startswith("_ildstudy_time")]
    return _order_of_appearance(text, _unique(names))


def _order_of_appearance(text: str, names: list[str]) -> list[str]:
    def position(name: str) -> int:
        match = re.search(rf"(?<![A-Za-z0-9_.]){re.escape(name)}(?![A-Za-z0-9_.])", text)
        return match.start() if match else len(text)

    return sorted(names, key=position)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _at_most_two_values(values: np.ndarray) -> tuple[float, ...] | None:
    """The distinct values if there are at most two (O(n), no sort), else None."""
    first = values[0]
    other = values[values != first]
    if other.size == 0:
        return (float(first),)
    second = other[0]
    if np.all(other == second):
        return tuple(sorted((float(first), float(second))))
    return None


def _response(column: pd.Series, name: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise ModelError(f"response {name!r} must be numeric, got values like {column.iloc[0]!r}")
    y = column.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise ModelError(f"response {name!r} has infinite values")
    return y


def _is_factor_like(column: pd.Series) -> bool:
    dtype = column.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def level_label(value: Any) -> str:
    """Print a level as R would: TRUE/FALSE, integers without '.0', strings unchanged."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.15g}"
    return str(value)


def _as_factor(
    column: pd.Series, name: str, levels: list | None, drop_unused: bool
) -> pd.Categorical:
    """Encode a column as a Categorical of string labels in R's level order.

    ``levels`` (if given) fixes the order; otherwise a categorical keeps its order and anything
    else is sorted. With ``drop_unused`` levels absent from the column are dropped, as R's
    ``model.frame(drop.unused.levels = TRUE)`` does; a value outside ``levels`` is an error.
    Labels are computed on the distinct values only, so this is fast on millions of rows.
    """
    codes, uniques = pd.factorize(column, sort=False)
    uniques = list(uniques)
    if isinstance(column.dtype, pd.CategoricalDtype):
        natural = [level_label(v) for v in column.cat.categories]
    else:
        try:
            ordered = sorted(uniques)
        except TypeError:
            ordered = sorted(uniques, key=str)
        natural = _unique([level_label(v) for v in ordered])
    labels = [level_label(v) for v in uniques]
    order = natural if levels is None else _unique([level_label(v) for v in levels])
    unknown = sorted(set(labels) - set(order))
    if unknown:
        raise ModelError(
            f"column {name!r} has value(s) {', '.join(map(repr, unknown[:5]))} not among its "
            f"levels {order}"
        )
    if drop_unused:
        order = [level for level in order if level in set(labels)]
    position = {level: i for i, level in enumerate(order)}
    lookup = np.array([position[label] for label in labels] + [-1], dtype=np.int64)
    return pd.Categorical.from_codes(lookup[codes], categories=order)


def _model_matrix(text: str, frame: pd.DataFrame, part: str, context: dict) -> tuple[np.ndarray, Any]:
    try:
        matrix = model_matrix(text, frame, output="numpy", na_action="ignore", context=context)
    except FormulaicError as exc:
        cause = exc.__cause__
        if isinstance(cause, ModelError):
            raise cause from None
        raise ModelError(f"cannot build the {part} model matrix from {text!r}: {exc}") from None
    spec = matrix.model_spec
    array = np.ascontiguousarray(np.asarray(matrix, dtype=np.float64))
    if array.ndim != 2 or array.shape[0] != len(frame):
        raise ModelError(f"the {part} part {text!r} did not give one model-matrix row per observation")
    if not np.all(np.isfinite(array)):
        raise ModelError(f"the {part} part {text!r} produced non-finite values (e.g. log of 0)")
    return array, spec


def _time_transform(call: TimeCall):
    if call.kind == "ns":
        return make_ns_transform(call.df, call.knots, call.boundary_knots, call.intercept)
    return make_pl_transform(call.knots)


def _r_name(formulaic_name: str, time_calls: tuple[TimeCall, ...]) -> str:
    """R's column name, with ``_ildstudy_timeN(x)`` put back as the call R prints (``ns(x, df = 3)``)."""
    name = r_column_name(formulaic_name)
    for call in time_calls:
        name = name.replace(f"{call.placeholder}({call.variable})", call.label)
    return name


def _group_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    try:
        codes, levels = pd.factorize(column, sort=True)
    except TypeError:
        codes, levels = pd.factorize(column.astype(str), sort=True)
    return codes.astype(np.int64), np.asarray(levels)
