"""The result of :func:`ildstudy.lmm.fit_lmm`: a frozen :class:`LmmFit` with R-style tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ildstudy._json import finite_or_none, plain
from ildstudy.errors import ModelError
from ildstudy.lmm.design import Encoding, model_rows
from ildstudy.lmm.optimize import OptimizerRecord
from ildstudy.lmm.satterthwaite import VarianceSensitivity, linear_combination_table

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.lmm.emmeans import Contrasts, MarginalMeans
    from ildstudy.lmm.trends import Slopes
    from ildstudy.lmm.weighting import CovKeep, Weighting


@dataclass(frozen=True, slots=True)
class RandomEffects:
    """Variance components of the single grouping factor.

    Attributes
    ----------
    group : str
        Grouping column.
    terms : tuple of str
        Random-effect columns as R names them (``(Intercept)``, ``months``), length q.
    sd : ndarray, shape (q,)
        Standard deviations of the random effects.
    corr : ndarray, shape (q, q)
        Their correlation matrix (NaN where a standard deviation is 0, as R gives).
    covariance : ndarray, shape (q, q)
        sigma^2 Lambda Lambda'.
    """

    group: str
    terms: tuple[str, ...]
    sd: np.ndarray
    corr: np.ndarray
    covariance: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """``{terms, sd, corr}`` with NaN as None (JSON)."""
        return {
            "terms": list(self.terms),
            "sd": [finite_or_none(v) for v in self.sd],
            "corr": [[finite_or_none(v) for v in row] for row in self.corr],
        }


@dataclass(frozen=True, slots=True)
class LmmFit:
    """A fitted linear mixed model with one grouping factor (see :func:`ildstudy.lmm.fit_lmm`).

    Attributes
    ----------
    formula : str
    method : {"REML", "ML"}
    n_obs, n_groups, n_dropped : int
        Observations used, groups, rows dropped for missing values.
    group : str
        Grouping column.
    fixed_effects : DataFrame
        Columns ``term, estimate, se, df, t, p`` (Satterthwaite df, as lmerTest's summary).
    coef : ndarray, shape (p,)
    random_effects : RandomEffects
    residual_sd : float
    theta : ndarray, shape (k,)
        Relative covariance factor, lower triangle column-major (lme4's ``getME(fit, "theta")``).
    criterion : float
        REML criterion (REML fits) or deviance (ML fits), as lme4 reports them.
    loglik, aic, bic : float
        lme4's conventions: for REML fits the REML log-likelihood; df = p + k + 1.
    n_parameters : int
        p + k + 1.
    converged, singular : bool
    messages : tuple of str
        Convergence and boundary findings, empty if none.
    optimizer : OptimizerRecord
    conditional_modes : DataFrame
        BLUPs, one row per group (index: group level), one column per random term.
    fitted : ndarray, shape (n_obs,)
        Conditional fitted values X beta + Z b, rows in the order of the data used.
    residuals : ndarray, shape (n_obs,)
        y - fitted.
    sensitivity : VarianceSensitivity
        What Satterthwaite df need.
    encoding : Encoding
        How to build model rows for new data.
    """

    formula: str
    method: Literal["REML", "ML"]
    n_obs: int
    n_groups: int
    n_dropped: int
    group: str
    fixed_effects: pd.DataFrame
    coef: np.ndarray
    random_effects: RandomEffects
    residual_sd: float
    theta: np.ndarray
    criterion: float
    loglik: float
    aic: float
    bic: float
    n_parameters: int
    converged: bool
    singular: bool
    messages: tuple[str, ...]
    optimizer: OptimizerRecord
    conditional_modes: pd.DataFrame
    fitted: np.ndarray
    residuals: np.ndarray
    sensitivity: VarianceSensitivity
    encoding: Encoding

    @property
    def reml_criterion(self) -> float | None:
        """REML criterion at the optimum (None for ML fits)."""
        return self.criterion if self.method == "REML" else None

    @property
    def deviance(self) -> float | None:
        """Deviance at the optimum (None for REML fits, whose criterion is ``reml_criterion``)."""
        return self.criterion if self.method == "ML" else None

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects (p x p), labelled by term."""
        terms = list(self.fixed_effects["term"])
        return pd.DataFrame(self.sensitivity.vcov_beta, index=terms, columns=terms)

    def linear_combination(
        self, L: np.ndarray | list, level: float = 0.95, labels: list[str] | None = None
    ) -> pd.DataFrame:
        """Estimate, SE, Satterthwaite df, t, p and CI of ``L @ beta`` (lmerTest's ``contest1D``).

        Parameters
        ----------
        L : array_like, shape (p,) or (m, p)
            One linear combination per row, columns in the order of ``fixed_effects``.
        level : float
            Confidence level.
        labels : list of str, optional
            Row labels (column ``contrast``).

        Returns
        -------
        DataFrame
            ``[contrast,] estimate, se, df, t, p, ci_low, ci_high``.
        """
        L = np.atleast_2d(np.asarray(L, dtype=np.float64))
        if L.shape[1] != self.coef.shape[0]:
            raise ModelError(
                f"L has {L.shape[1]} columns; the model has {self.coef.shape[0]} fixed effects "
                f"({', '.join(self.fixed_effects['term'])})"
            )
        return linear_combination_table(L, self.coef, self.sensitivity, level, labels)

    def emmeans(
        self, specs: str | list[str], by: str | list[str] | None = None,
        at: dict[str, list] | None = None, level: float = 0.95,
        weights: Weighting = "equal", cov_keep: CovKeep = 2,
    ) -> MarginalMeans:
        """Marginal means as emmeans computes them; see :func:`ildstudy.lmm.emmeans.marginal_means`."""
        from ildstudy.lmm.emmeans import marginal_means

        return marginal_means(self, specs, by=by, at=at, level=level, weights=weights, cov_keep=cov_keep)

    def contrast(
        self, specs: str, by: str | list[str] | None = None, at: dict[str, list] | None = None,
        method: str | dict = "trt.vs.ctrl", ref: Any = None, level: float = 0.95,
        weights: Weighting = "equal", cov_keep: CovKeep = 2,
    ) -> Contrasts:
        """Contrasts between marginal means; see :func:`ildstudy.lmm.emmeans.contrasts`."""
        from ildstudy.lmm.emmeans import contrasts

        return contrasts(self, specs, by=by, at=at, method=method, ref=ref, level=level, weights=weights,
                         cov_keep=cov_keep)

    def slopes(
        self, var: str, specs: str | list[str], by: str | list[str] | None = None,
        at: dict[str, list] | None = None, delta: float | None = None, per: float = 1.0,
        level: float = 0.95, weights: Weighting = "equal", cov_keep: CovKeep = 2,
    ) -> Slopes:
        """Slopes of marginal means over ``var`` (emtrends); see :func:`ildstudy.lmm.trends.slopes`."""
        from ildstudy.lmm.trends import slopes

        return slopes(self, var, specs, by=by, at=at, delta=delta, per=per, level=level, weights=weights,
                      cov_keep=cov_keep)

    def slope_contrast(
        self, var: str, specs: str, by: str | list[str] | None = None, at: dict[str, list] | None = None,
        method: str | dict = "trt.vs.ctrl", ref: Any = None, delta: float | None = None,
        per: float = 1.0, level: float = 0.95, weights: Weighting = "equal", cov_keep: CovKeep = 2,
    ) -> pd.DataFrame:
        """Differences between slopes; see :func:`ildstudy.lmm.trends.slope_contrasts`."""
        from ildstudy.lmm.trends import slope_contrasts

        return slope_contrasts(self, var, specs, by=by, at=at, method=method, ref=ref, delta=delta,
                               per=per, level=level, weights=weights, cov_keep=cov_keep)

    def predict(
        self, newdata: pd.DataFrame, level: Literal["population", "conditional"] = "population"
    ) -> pd.DataFrame:
        """Predictions for new rows.

        Parameters
        ----------
        newdata : DataFrame
            Must hold the fixed-effects columns (and, for ``"conditional"``, the random-effects
            columns and the grouping column).
        level : {"population", "conditional"}
            ``"population"``: X beta with its standard error. ``"conditional"``: X beta + Z b for
            groups seen in the fit (new groups get the population prediction, as lme4's
            ``allow.new.levels = TRUE``); no standard error.

        Returns
        -------
        DataFrame
            Columns ``estimate, se`` indexed like ``newdata``.
        """
        if level not in ("population", "conditional"):
            raise ModelError(f"level must be 'population' or 'conditional', got {level!r}")
        X = model_rows(self.encoding, newdata, "fixed")
        estimate = X @ self.coef
        if level == "population":
            se = np.sqrt(np.einsum("na,ab,nb->n", X, self.sensitivity.vcov_beta, X))
            return pd.DataFrame({"estimate": estimate, "se": se}, index=newdata.index)
        if self.group not in newdata.columns:
            raise ModelError(f"conditional predictions need the grouping column {self.group!r}")
        Z = model_rows(self.encoding, newdata, "random")
        modes = self.conditional_modes
        position = pd.Index(modes.index).get_indexer(newdata[self.group])
        b = np.where((position >= 0)[:, None], modes.to_numpy()[np.maximum(position, 0)], 0.0)
        estimate = estimate + np.sum(Z * b, axis=1)
        return pd.DataFrame({"estimate": estimate, "se": np.nan}, index=newdata.index)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``ildstudy lmm --json`` (docs/design.md), NaN written as null."""
        out: dict[str, Any] = {
            "formula": self.formula,
            "n_obs": self.n_obs,
            "n_groups": self.n_groups,
            "n_dropped": self.n_dropped,
            "group": self.group,
            "method": self.method,
        }
        out["reml_criterion" if self.method == "REML" else "deviance"] = finite_or_none(self.criterion)
        out.update(
            loglik=finite_or_none(self.loglik),
            aic=finite_or_none(self.aic),
            bic=finite_or_none(self.bic),
            converged=self.converged,
            singular=self.singular,
            messages=list(self.messages),
            fixed_effects=[
                {"term": row.term, **{k: finite_or_none(getattr(row, k)) for k in ("estimate", "se", "df", "t", "p")}}
                for row in self.fixed_effects.itertuples(index=False)
            ],
            df_method="satterthwaite",
            random_effects=self.random_effects.to_dict(),
            residual_sd=finite_or_none(self.residual_sd),
            theta=[finite_or_none(v) for v in self.theta],
            optimizer=plain(self.optimizer.to_dict()),
        )
        return out

    def summary(self) -> str:
        """A text summary laid out like lme4/lmerTest's ``summary(fit)``."""
        from ildstudy.lmm.summary import format_summary

        return format_summary(self)
