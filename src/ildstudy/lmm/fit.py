"""``fit_lmm``: formula -> design -> sufficient statistics -> optimum -> inference -> LmmFit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from ildstudy.errors import ModelError
from ildstudy.lmm.design import Encoding, build_design
from ildstudy.lmm.deviance import covariance_derivatives
from ildstudy.lmm.formula import MixedFormula, parse_formula
from ildstudy.lmm.optimize import optimize_theta
from ildstudy.lmm.options import OptimizerOptions, optimizer_options
from ildstudy.lmm.results import LmmFit, RandomEffects
from ildstudy.lmm.satterthwaite import linear_combination_table, variance_sensitivity
from ildstudy.lmm.stats import GroupStats, group_statistics

WARM_START_GROUPS = 5_000
"""With more than twice this many groups, theta is first estimated on every k-th group (about this
many), and the full-data optimisation starts there: a few Newton steps instead of tens of
L-BFGS-B evaluations on millions of rows. The answer is still the full-data optimum (checked)."""


def fit_lmm(
    formula: str,
    data: pd.DataFrame,
    *,
    reml: bool = True,
    factor_levels: dict[str, list] | None = None,
    optimizer: OptimizerOptions | Mapping[str, Any] | None = None,
) -> LmmFit:
    """Fit a linear mixed model with one grouping factor, as ``lmerTest::lmer`` does.

    Parameters
    ----------
    formula : str
        lme4 syntax with one random-effects term: ``"y ~ x1 + x2*f + (1 + t | g)"``; ``(1 | g)``,
        ``(t | g)`` (intercept and slope) and ``(0 + t | g)`` are accepted. ``factor(x)`` makes a
        numeric column a factor. Time bases in R syntax: ``ns(months, df = 3)``, ``ns(months, knots =
        c(6, 18), Boundary.knots = c(0, 60))`` (exactly ``splines::ns``) and ``pl(months, knots =
        c(6, 12))`` (hinge terms); see :mod:`ildstudy.lmm.splines`.
    data : DataFrame
        One row per observation. String, categorical and boolean columns are factors.
    reml : bool
        REML (default, as lmer) or maximum likelihood.
    factor_levels : dict, optional
        Level order of factor columns, first = reference, e.g. ``{"arm": ["MMF", "AZA"]}``;
        otherwise levels are sorted.
    optimizer : OptimizerOptions or mapping, optional
        Optimizer tolerances and limits, e.g. ``{"ftol": 1e-12, "max_evaluations": 500}``
        (see :class:`ildstudy.lmm.options.OptimizerOptions`); validated, and recorded in
        ``fit.optimizer.options`` together with the start and final theta, the number of
        evaluations and the criterion.

    Returns
    -------
    LmmFit

    Raises
    ------
    ModelError
        Bad formula, missing column, non-numeric response, collinear fixed effects, or too few
        groups/observations for the random effects, or bad optimizer options.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(30), 5); t = np.tile(np.arange(5.0), 30)
    >>> y = 10 + 0.5 * t + rng.normal(size=30)[g] + rng.normal(size=150)
    >>> fit = fit_lmm("y ~ t + (1 | g)", pd.DataFrame({"y": y, "t": t, "g": g}))
    >>> list(fit.fixed_effects["term"])
    ['(Intercept)', 't']
    """
    options = optimizer_options(optimizer)
    parsed = parse_formula(formula)
    design = build_design(parsed, data, factor_levels)
    n, p = design.X.shape
    q = design.Z.shape[1]
    n_groups = len(design.group_levels)
    check_sizes(n, p, q, n_groups, reml, parsed.group)

    stats = group_statistics(design.X, design.Z, design.y, design.group_codes, n_groups, design.fixed_names)
    start = _warm_start(design, n_groups, reml, options)
    return fit_from_statistics(
        stats, parsed, reml=reml, options=options, start=start, fixed_names=design.fixed_names,
        random_names=design.random_names, group_levels=design.group_levels, n_dropped=design.n_dropped,
        encoding=design.encoding, rows=(design.X, design.Z, design.y, design.group_codes),
    )


def check_sizes(n: int, p: int, q: int, n_groups: int, reml: bool, group: str) -> None:
    """Raise ModelError if there are too few groups or observations for the model (as lme4 checks)."""
    if n_groups < 2:
        raise ModelError(f"grouping factor {group!r} must have at least 2 levels, got {n_groups}")
    if n <= q * n_groups:
        raise ModelError(
            f"number of observations ({n}) must exceed the number of random effects "
            f"({q} per group x {n_groups} groups = {q * n_groups})"
        )
    if reml and n <= p:
        raise ModelError(f"REML needs more observations ({n}) than fixed effects ({p})")


def fit_from_statistics(
    stats: GroupStats,
    parsed: MixedFormula,
    *,
    reml: bool,
    options: OptimizerOptions,
    start: np.ndarray | None,
    fixed_names: tuple[str, ...],
    random_names: tuple[str, ...],
    group_levels: np.ndarray,
    n_dropped: int,
    encoding: Encoding,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> LmmFit:
    """Optimise theta on ``stats`` and assemble the :class:`LmmFit` (shared by the in-memory and
    in-engine paths, see :mod:`ildstudy.lmm.sufficient`).

    ``rows`` = (X, Z, y, group_codes) gives fitted values and residuals; without rows (statistics
    computed in a database) ``fitted`` and ``residuals`` are empty arrays of shape (0,).
    """
    n, p, q = stats.n, stats.p, stats.q
    record, convergence, deriv = optimize_theta(stats, reml, start=start, options=options)
    theta = np.array(record.final)
    prof = deriv.profile
    sens = variance_sensitivity(deriv, stats.x_factor)
    beta = stats.beta_offset + scipy.linalg.solve_triangular(stats.x_factor, prof.beta)
    fixed = linear_combination_table(np.eye(p), beta, sens)
    fixed.insert(0, "term", list(fixed_names))
    fixed = fixed.drop(columns=["ci_low", "ci_high"])

    D, _, _ = covariance_derivatives(theta, q)
    sigma = prof.sigma
    covariance = sigma**2 * D
    sd = np.sqrt(np.diag(covariance))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = covariance / np.outer(sd, sd)
    modes = prof.e @ D.T  # (G, q): b_i = D Z_i'V_i^{-1}(y_i - X_i beta)
    if rows is not None:
        X, Z, y, codes = rows
        fitted = X @ beta + np.sum(Z * modes[codes], axis=1)
        residuals = y - fitted
    else:
        fitted = residuals = np.empty(0)

    k = len(theta)
    n_parameters = p + k + 1
    criterion = prof.deviance
    messages = convergence.messages + sens.messages()
    return LmmFit(
        formula=parsed.text,
        method="REML" if reml else "ML",
        n_obs=n,
        n_groups=stats.n_groups,
        n_dropped=n_dropped,
        group=parsed.group,
        fixed_effects=fixed,
        coef=beta,
        random_effects=RandomEffects(
            group=parsed.group, terms=random_names, sd=sd, corr=corr, covariance=covariance
        ),
        residual_sd=sigma,
        theta=theta,
        criterion=criterion,
        loglik=-criterion / 2.0,
        aic=criterion + 2.0 * n_parameters,
        bic=criterion + np.log(n) * n_parameters,
        n_parameters=n_parameters,
        converged=convergence.converged,
        singular=convergence.singular,
        messages=messages,
        optimizer=record,
        conditional_modes=pd.DataFrame(
            modes, index=pd.Index(group_levels, name=parsed.group), columns=list(random_names)
        ),
        fitted=fitted,
        residuals=residuals,
        sensitivity=sens,
        encoding=encoding,
    )


def _warm_start(design, n_groups: int, reml: bool, options: OptimizerOptions) -> np.ndarray | None:
    """theta at the optimum on a deterministic subsample of groups, or None for small data."""
    if n_groups <= 2 * WARM_START_GROUPS:
        return None
    step = n_groups // WARM_START_GROUPS
    rows = design.group_codes % step == 0
    codes = design.group_codes[rows] // step
    try:
        sub = group_statistics(design.X[rows], design.Z[rows], design.y[rows], codes, int(codes.max()) + 1)
    except ModelError:  # e.g. a rare factor level absent from the subsample
        return None
    record, _, _ = optimize_theta(sub, reml, options=options)
    return np.array(record.final)
