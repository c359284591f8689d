"""Linear mixed models with one grouping factor that match lme4/lmerTest, from group sums.

Pipeline (one module each): :mod:`~ildstudy.lmm.formula` (parse ``y ~ x + (1 + t | g)``) ->
:mod:`~ildstudy.lmm.design` (formulaic model matrices, R conventions) ->
:mod:`~ildstudy.lmm.stats` (per-group sufficient statistics) ->
:mod:`~ildstudy.lmm.deviance` (profiled REML/ML deviance, exact gradient and Hessian) ->
:mod:`~ildstudy.lmm.optimize` (bounded optimisation over theta, convergence checks) ->
:mod:`~ildstudy.lmm.satterthwaite` (lmerTest's df) and :mod:`~ildstudy.lmm.emmeans`
(marginal means, contrasts), :mod:`~ildstudy.lmm.trends` (emtrends-like slopes) ->
:class:`~ildstudy.lmm.results.LmmFit`. Time bases ``ns()``/``pl()``: :mod:`~ildstudy.lmm.splines`.
"""

from ildstudy.lmm.at_risk import months_with_enough, patients_at_risk
from ildstudy.lmm.emmeans import Contrasts, MarginalMeans
from ildstudy.lmm.fit import fit_lmm
from ildstudy.lmm.options import OptimizerOptions
from ildstudy.lmm.results import LmmFit, RandomEffects
from ildstudy.lmm.trends import Slopes

__all__ = [
    "Contrasts", "LmmFit", "MarginalMeans", "OptimizerOptions", "RandomEffects", "Slopes", "fit_lmm",
    "months_with_enough", "patients_at_risk",
]
