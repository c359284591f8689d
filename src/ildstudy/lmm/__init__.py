"""Linear mixed models with one grouping factor that match lme4/lmerTest, from group sums.

Pipeline (one module each): :mod:`~ildstudy.lmm.formula` (parse ``y ~ x + (1 + t | g)``) ->
:mod:`~ildstudy.lmm.design` (formulaic model matrices, R conventions) ->
:mod:`~ildstudy.lmm.stats` (per-group sufficient statistics) ->
:mod:`~ildstudy.lmm.deviance` (profiled REML/ML deviance, exact gradient and Hessian) ->
:mod:`~ildstudy.lmm.optimize` (bounded optimisation over theta, convergence checks) ->
:mod:`~ildstudy.lmm.satterthwaite` (lmerTest's df) and :mod:`~ildstudy.lmm.emmeans`
(marginal means, contrasts) -> :class:`~ildstudy.lmm.results.LmmFit`.
"""

from ildstudy.lmm.emmeans import Contrasts, MarginalMeans
from ildstudy.lmm.fit import fit_lmm
from ildstudy.lmm.results import LmmFit, RandomEffects

__all__ = ["Contrasts", "LmmFit", "MarginalMeans", "RandomEffects", "fit_lmm"]
