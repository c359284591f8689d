"""Optimizer settings of :func:`ildstudy.lmm.fit_lmm`: a frozen, validated object kept with the fit.

The defaults are the values the engine has always used; they reach lme4's optimum (or a lower
criterion) on every reference fixture. Change them only to study convergence: every fit records
the options it ran with in ``fit.optimizer.options`` (and ``fit.to_dict()["optimizer"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ildstudy.errors import ModelError


class OptimizerOptions(BaseModel):
    """Tolerances and limits of the theta optimisation (L-BFGS-B, then bounded Newton steps).

    Attributes
    ----------
    ftol : float
        L-BFGS-B's relative reduction of the deviance at which it stops (scipy ``ftol``).
    gtol : float
        L-BFGS-B's projected-gradient tolerance (scipy ``gtol``).
    max_iterations : int
        L-BFGS-B iterations at most (scipy ``maxiter``).
    max_evaluations : int
        Deviance evaluations L-BFGS-B may spend (scipy ``maxfun``), per start.
    memory : int
        L-BFGS-B's number of stored corrections (scipy ``maxcor``).
    newton_steps : int
        Bounded Newton polishing steps at most, on the exact Hessian.
    newton_step_tol : float
        Newton polishing stops when its step in theta is below this (relative to max |theta|).
    gradient_tol : float
        Convergence check: largest Hessian-scaled gradient accepted (lme4's ``check.conv.grad``
        default 0.002).
    boundary_gradient_tol : float
        Convergence check: largest negative gradient tolerated on a parameter held at its bound.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ftol: float = Field(1e-10, gt=0, lt=1)
    gtol: float = Field(1e-6, gt=0)
    max_iterations: int = Field(1000, ge=1)
    max_evaluations: int = Field(15000, ge=1)
    memory: int = Field(20, ge=1, le=1000)
    newton_steps: int = Field(8, ge=0, le=1000)
    newton_step_tol: float = Field(1e-7, gt=0)
    gradient_tol: float = Field(2e-3, gt=0)
    boundary_gradient_tol: float = Field(1e-3, gt=0)


def optimizer_options(value: OptimizerOptions | Mapping[str, Any] | None) -> OptimizerOptions:
    """Validate ``value`` (None = defaults, a mapping of option names, or an OptimizerOptions).

    Raises
    ------
    ModelError
        Unknown option or bad value; the message lists the allowed options.
    """
    if value is None:
        return OptimizerOptions()
    if isinstance(value, OptimizerOptions):
        return value
    if not isinstance(value, Mapping):
        raise ModelError(f"optimizer options must be a mapping or OptimizerOptions, got {type(value).__name__}")
    try:
        return OptimizerOptions(**dict(value))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'optimizer'}: {e['msg']}" for e in exc.errors()
        )
        allowed = ", ".join(OptimizerOptions.model_fields)
        raise ModelError(f"bad optimizer options ({problems}); allowed options: {allowed}") from None
