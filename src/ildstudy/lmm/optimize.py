"""Minimise the profiled deviance over theta and check the optimum honestly.

The optimiser sees only theta (k = q(q+1)/2 numbers) with lme4's bounds (diagonal elements of
Lambda >= 0). It starts where lme4 starts (Lambda = I), runs L-BFGS-B on the exact gradient,
then polishes with a few bounded Newton steps on the exact Hessian of the profiled deviance.
The record of the run (start, end, evaluations, criterion) is kept with the fit, as in
MixedModels.jl, and can be re-verified by evaluating the deviance at ``final``.

Convergence is checked as lme4's ``checkConv`` does, but with exact derivatives: the gradient
scaled by the Hessian (the Newton step) must be below ``GRADIENT_TOL`` for parameters off the
boundary, parameters on the boundary must not want to move inside (KKT), and the Hessian on the
free parameters must be positive definite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ildstudy.lmm.deviance import (
    VarparDerivatives,
    deviance_and_gradient,
    theta_lower_bounds,
    theta_positions,
    varpar_derivatives,
)
from ildstudy.lmm.options import OptimizerOptions
from ildstudy.lmm.stats import GroupStats

SINGULAR_TOL = 1e-4
"""lme4's ``isSingular`` tolerance: a diagonal element of Lambda below this means a singular fit."""
_DEFAULTS = OptimizerOptions()
GRADIENT_TOL = _DEFAULTS.gradient_tol
"""lme4's ``check.conv.grad`` tolerance on the Hessian-scaled gradient (default of ``OptimizerOptions``)."""
RESTART_VALUES = (0.01, 0.1, 1.0)
"""Values given to zero diagonal elements of Lambda when restarting from a boundary optimum."""


@dataclass(frozen=True, slots=True)
class OptimizerRecord:
    """What the optimiser did.

    Attributes
    ----------
    method : str
        ``"L-BFGS-B+Newton"``.
    start, final : tuple of float
        theta at the start and at the end (length k).
    lower : tuple of float
        Lower bounds of theta (``-inf`` for off-diagonal elements).
    evaluations : int
        Deviance evaluations (each with its gradient) including the Newton polish.
    criterion : float
        Profiled deviance at ``final`` (REML criterion or ML deviance).
    gradient : tuple of float
        Exact gradient at ``final``.
    hessian_eigenvalues : tuple of float
        Eigenvalues of the profiled deviance's Hessian on the free parameters.
    returned : str
        L-BFGS-B's message.
    options : OptimizerOptions
        The tolerances and limits the run used.
    """

    method: str
    start: tuple[float, ...]
    final: tuple[float, ...]
    lower: tuple[float, ...]
    evaluations: int
    criterion: float
    gradient: tuple[float, ...]
    hessian_eigenvalues: tuple[float, ...]
    returned: str
    options: OptimizerOptions = _DEFAULTS

    def to_dict(self) -> dict:
        """``{method, start, final, evaluations, criterion, returned, options}`` (JSON)."""
        return {
            "method": self.method, "start": list(self.start), "final": list(self.final),
            "evaluations": self.evaluations, "criterion": self.criterion, "returned": self.returned,
            "options": self.options.model_dump(),
        }


@dataclass(frozen=True, slots=True)
class Convergence:
    """Outcome of the checks at the optimum.

    Attributes
    ----------
    converged : bool
    singular : bool
        Some diagonal element of Lambda is below ``SINGULAR_TOL`` (lme4's ``isSingular``).
    messages : tuple of str
        Human-readable findings, empty when everything is fine.
    """

    converged: bool
    singular: bool
    messages: tuple[str, ...]


def optimize_theta(
    stats: GroupStats, reml: bool, start: np.ndarray | None = None,
    options: OptimizerOptions = _DEFAULTS,
) -> tuple[OptimizerRecord, Convergence, VarparDerivatives]:
    """Minimise the profiled deviance over theta.

    Parameters
    ----------
    stats : GroupStats
    reml : bool
        REML criterion (True) or ML deviance (False).
    start : ndarray, shape (k,), optional
        Starting theta; lme4's default (Lambda = identity) if omitted. When a start is given
        (e.g. the optimum on a subsample of groups), bounded Newton steps are tried first and
        L-BFGS-B is run only if they do not reach a converged optimum.
    options : OptimizerOptions
        Tolerances and limits (:mod:`ildstudy.lmm.options`); recorded in the result.

    Returns
    -------
    OptimizerRecord, Convergence
    VarparDerivatives
        Exact derivatives at the optimum (reused for Satterthwaite df).
    """
    q = stats.q
    lower = theta_lower_bounds(q)
    default = np.array([1.0 if r == c else 0.0 for r, c in theta_positions(q)])
    count = [0]
    best = _optimize_from(stats, reml, default if start is None else start, start is not None, count, options)
    # A boundary optimum can be a local one (lme4's bobyqa sometimes walks past it): restart with
    # each zero diagonal element of Lambda set to a few positive values and keep the best.
    diagonal = np.isfinite(lower)
    zero = diagonal & (np.array(best[0].final) <= SINGULAR_TOL)
    if zero.any():
        for value in RESTART_VALUES:
            trial_start = np.where(zero, value, np.array(best[0].final))
            trial = _optimize_from(stats, reml, trial_start, False, count, options)
            if trial[0].criterion < best[0].criterion - 1e-9 * max(1.0, abs(best[0].criterion)):
                best = trial
    record, convergence, deriv = best
    record = OptimizerRecord(**{**_as_dict(record), "evaluations": count[0], "options": options})
    return record, convergence, deriv


def _optimize_from(
    stats: GroupStats, reml: bool, theta0: np.ndarray, warm: bool, count: list[int],
    options: OptimizerOptions,
) -> tuple[OptimizerRecord, Convergence, VarparDerivatives]:
    """One optimisation from ``theta0``: Newton first if ``warm``, else L-BFGS-B then Newton."""
    q = stats.q
    lower = theta_lower_bounds(q)
    theta0 = np.maximum(np.asarray(theta0, dtype=np.float64), lower)
    if warm:
        theta, deriv = _newton_polish(stats, reml, theta0, lower, count, options)
        grad, hess = deriv.gradient, deriv.profiled_hessian
        convergence = check_convergence(theta, lower, grad, hess, q, True, options)
        if convergence.converged:
            record = _record("Newton", theta0, theta, lower, count, deriv.deviance, grad, hess, "warm start")
            return record, convergence, deriv

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        count[0] += 1
        dev, grad = deviance_and_gradient(stats, theta, reml)
        if not np.isfinite(dev):
            return 1e300, np.zeros_like(theta)
        return dev, grad

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    result = scipy.optimize.minimize(
        objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": options.max_iterations, "maxfun": options.max_evaluations,
                 "ftol": options.ftol, "gtol": options.gtol, "maxcor": options.memory},
    )
    theta = np.maximum(np.asarray(result.x, dtype=np.float64), lower)
    theta, deriv = _newton_polish(stats, reml, theta, lower, count, options)
    grad, hess = deriv.gradient, deriv.profiled_hessian
    convergence = check_convergence(theta, lower, grad, hess, q, bool(result.success), options)
    record = _record(
        "L-BFGS-B+Newton", theta0, theta, lower, count, deriv.deviance, grad, hess, str(result.message)
    )
    return record, convergence, deriv


def _as_dict(record: OptimizerRecord) -> dict:
    return {name: getattr(record, name) for name in record.__slots__}


def _record(
    method: str, theta0: np.ndarray, theta: np.ndarray, lower: np.ndarray, count: list[int],
    dev: float, grad: np.ndarray, hess: np.ndarray, returned: str,
) -> OptimizerRecord:
    free = _free_parameters(theta, lower, grad)
    eig = np.linalg.eigvalsh(hess[np.ix_(free, free)]) if free.any() else np.array([])
    return OptimizerRecord(
        method=method,
        start=tuple(map(float, theta0)),
        final=tuple(map(float, theta)),
        lower=tuple(map(float, lower)),
        evaluations=count[0],
        criterion=float(dev),
        gradient=tuple(map(float, grad)),
        hessian_eigenvalues=tuple(map(float, eig)),
        returned=returned,
    )


def check_convergence(
    theta: np.ndarray, lower: np.ndarray, grad: np.ndarray, hess: np.ndarray, q: int, optimizer_ok: bool,
    options: OptimizerOptions = _DEFAULTS,
) -> Convergence:
    """Gradient, boundary (KKT) and Hessian checks at ``theta``; see the module docstring."""
    messages = []
    diagonal = np.array([r == c for r, c in theta_positions(q)])
    singular = bool(np.any(theta[diagonal] < SINGULAR_TOL))
    if singular:
        messages.append("boundary (singular) fit: a random-effect variance or correlation is at its limit")
    free = _free_parameters(theta, lower, grad)
    at_bound = ~free
    ok = True
    if np.any(grad[at_bound] < -options.boundary_gradient_tol):
        ok = False
        messages.append(
            "parameter(s) on the boundary would decrease the deviance by moving inside "
            f"(gradient {np.round(grad[at_bound], 6).tolist()})"
        )
    if free.any():
        h = hess[np.ix_(free, free)]
        eig = np.linalg.eigvalsh(h)
        if eig[0] <= 0:
            ok = False
            messages.append(f"Hessian of the deviance is not positive definite (eigenvalues {eig.tolist()})")
        else:
            step = np.linalg.solve(h, grad[free])
            worst = float(np.max(np.abs(step)))
            if worst > options.gradient_tol:
                ok = False
                messages.append(
                    f"failed to converge: max|Hessian-scaled gradient| = {worst:.3g} > {options.gradient_tol}"
                )
            if eig[-1] / eig[0] > 1e12:
                messages.append("the model is nearly unidentifiable: very large Hessian eigenvalue ratio")
    if not optimizer_ok and not ok:
        messages.append("the optimiser stopped before reaching its tolerance")
    return Convergence(converged=ok, singular=singular, messages=tuple(messages))


def _free_parameters(theta: np.ndarray, lower: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Parameters not held at their bound (a bound parameter with a positive gradient is held)."""
    at_bound = np.isfinite(lower) & (theta <= lower + 1e-10) & (grad >= 0)
    return ~at_bound


def _newton_polish(
    stats: GroupStats, reml: bool, theta: np.ndarray, lower: np.ndarray, count: list[int],
    options: OptimizerOptions = _DEFAULTS,
) -> tuple[np.ndarray, VarparDerivatives]:
    """Bounded Newton steps on the free parameters with step halving (theta stays >= lower).

    Diagonal elements within 1e-10 of their bound are set to it, as lme4 reports them.
    Returns theta and the exact derivatives there.
    """
    theta = np.where(np.isfinite(lower) & (theta < lower + 1e-10), lower, theta)
    deriv = varpar_derivatives(stats, theta, reml)
    count[0] += 1
    for _ in range(options.newton_steps):
        grad, hess = deriv.gradient, deriv.profiled_hessian
        free = _free_parameters(theta, lower, grad)
        if not free.any():
            break
        h = hess[np.ix_(free, free)]
        if np.linalg.eigvalsh(h)[0] <= 0:
            break
        step = np.zeros_like(theta)
        step[free] = -np.linalg.solve(h, grad[free])
        if np.max(np.abs(step)) < options.newton_step_tol * max(1.0, float(np.max(np.abs(theta)))):
            break  # already at the optimum to ~1e-7 in theta: skip one more O(G) evaluation
        trial = np.maximum(theta + step, lower)
        trial_deriv = varpar_derivatives(stats, trial, reml)
        count[0] += 1
        halvings = 0
        while not trial_deriv.deviance <= deriv.deviance and halvings < 30:
            step /= 2
            halvings += 1
            trial = np.maximum(theta + step, lower)
            trial_deriv = varpar_derivatives(stats, trial, reml)
            count[0] += 1
        if not trial_deriv.deviance <= deriv.deviance:
            break
        improvement = deriv.deviance - trial_deriv.deviance
        theta, deriv = trial, trial_deriv
        if improvement < 1e-12 * max(1.0, abs(deriv.deviance)):
            break
    theta_b = np.where(np.isfinite(lower) & (theta < lower + 1e-10), lower, theta)
    if np.any(theta_b != theta):
        theta, deriv = theta_b, varpar_derivatives(stats, theta_b, reml)
        count[0] += 1
    return theta, deriv
