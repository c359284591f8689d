"""The result of a study run: typed results only, each with ``to_dict()`` (its results.json block) and
``tables()`` (its exports to ``tables/``).

:class:`StudyResult` holds one typed object per analysis — :class:`~ildstudy.analysis.table1.Table1Result`,
:class:`OutcomeResult` per outcome, :class:`~ildstudy.analysis.adverse_events.AdverseEventResult`,
:class:`~ildstudy.analysis.discontinuation.DiscontinuationResult` — and no copy of their numbers. The content of
``results.json`` is made by one function, :func:`ildstudy.analysis.serialize.results_document`, and the tables by
:func:`ildstudy.analysis.serialize.study_tables`; the report reads the typed objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from ildstudy._json import frame_records
from ildstudy.protocol import Protocol

if TYPE_CHECKING:
    from ildstudy.analysis.adverse_events import AdverseEventResult
    from ildstudy.analysis.confounding.result import ConfoundingResult
    from ildstudy.analysis.discontinuation import DiscontinuationResult
    from ildstudy.analysis.lung_function import LungFunctionResult
    from ildstudy.analysis.progression import ProgressionResult
    from ildstudy.analysis.safety import SafetyResult
    from ildstudy.analysis.sensitivity import SensitivityResult
    from ildstudy.analysis.table1 import Table1Result


@dataclass(frozen=True)
class OutcomeResult:
    """One outcome's mixed model and its marginal means and contrasts.

    Attributes
    ----------
    name, label : outcome id (``fvc_pct_pred``) and its label for people.
    formula : the lme4-style formula fitted.
    model : the ``model`` block of results.json (formula, n_obs, n_patients, reml_criterion, loglik,
        converged, fixed_effects, random_effects, residual_sd).
    fixed_effects : DataFrame[term, estimate, se, df, t, p].
    marginal_means : DataFrame[arm, month, estimate, se, df, ci_low, ci_high].
    change_from_baseline : DataFrame[arm, month, estimate, se, df, ci_low, ci_high, p] (month m − month 0).
    arm_differences : DataFrame[month, contrast, estimate, se, df, ci_low, ci_high, p] ("AZA - MMF").
    observed : DataFrame[series, arm, months, value] — the data the model saw; ``series`` is an
        anonymous per-patient number (not the patient id), for drawing faint trajectories.
    slopes : DataFrame[kind, term, month, estimate, se, df, ci_low, ci_high, p] or None — change per year per
        arm and arm − reference (:func:`ildstudy.analysis.outcome_slopes.outcome_slopes`); None for visit models.
    contrast_support : DataFrame[month, n_at_risk_<ARM>..., min_at_risk, enough_data] or None — patients with
        data at or after each contrast month (:func:`ildstudy.analysis.outcome_slopes.contrast_support`).
    """

    name: str
    label: str
    formula: str
    model: dict[str, Any]
    fixed_effects: pd.DataFrame
    marginal_means: pd.DataFrame
    change_from_baseline: pd.DataFrame
    arm_differences: pd.DataFrame
    observed: pd.DataFrame
    slopes: pd.DataFrame | None = None
    contrast_support: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``outcomes.<name>``: ``{model, marginal_means, change_from_baseline, arm_differences,
        slopes, contrast_support}`` (tables as lists of row dicts; the observed values are not written)."""
        out = {"model": self.model, "marginal_means": frame_records(self.marginal_means),
               "change_from_baseline": frame_records(self.change_from_baseline),
               "arm_differences": frame_records(self.arm_differences)}
        if self.slopes is not None or self.contrast_support is not None:
            out["slopes"] = None if self.slopes is None else frame_records(self.slopes)
            out["contrast_support"] = (None if self.contrast_support is None
                                       else frame_records(self.contrast_support))
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """``<name>_fixed_effects``, ``_marginal_means``, ``_change_from_baseline``, ``_arm_differences``, and
        when computed ``_slopes`` and ``_contrast_support``."""
        return {f"{self.name}_fixed_effects": self.fixed_effects,
                f"{self.name}_marginal_means": self.marginal_means,
                f"{self.name}_change_from_baseline": self.change_from_baseline,
                f"{self.name}_arm_differences": self.arm_differences,
                **({f"{self.name}_slopes": self.slopes} if self.slopes is not None else {}),
                **({f"{self.name}_contrast_support": self.contrast_support}
                   if self.contrast_support is not None else {})}


@dataclass(frozen=True)
class StudyResult:
    """Everything a study run produced, as typed results.

    Attributes
    ----------
    protocol : the protocol that was run.
    arms : arm name -> number of patients, in protocol order (reference arm last).
    attrition : DataFrame[step, reason, excluded, remaining, remaining_<ARM>...]: a first ``registry`` row,
        one row per cohort step, and a last ``cohort`` row stating registry = excluded + cohort
        (written as ``attrition.csv``; results.json lists the rows before the ``cohort`` row).
    table1 : :class:`~ildstudy.analysis.table1.Table1Result` (``None`` only in partial results built by hand).
    outcomes : outcome name -> :class:`OutcomeResult`.
    adverse_events : :class:`~ildstudy.analysis.adverse_events.AdverseEventResult` (or ``None``, as above).
    discontinuation : :class:`~ildstudy.analysis.discontinuation.DiscontinuationResult` (or ``None``).
    safety : :class:`~ildstudy.analysis.safety.SafetyResult` (person-time adverse events, competing-risks
        discontinuation) or ``None``; written under ``adverse_events.person_time`` and
        ``discontinuation.competing_risks``.
    sensitivity : :class:`~ildstudy.analysis.sensitivity.SensitivityResult` (the protocol's sensitivity analyses
        beside the primary one) or ``None`` when none is declared.
    warnings : data warnings of the run, as text (also in results.json).
    provenance : ildstudy version, protocol SHA-256, data SHA-256 (also in results.json); an optional
        ``notice`` (e.g. synthetic demo data) is shown next to the report's title.
    """

    protocol: Protocol
    arms: dict[str, int]
    attrition: pd.DataFrame
    table1: Table1Result | None
    outcomes: dict[str, OutcomeResult]
    adverse_events: AdverseEventResult | None
    discontinuation: DiscontinuationResult | None
    warnings: tuple[str, ...] = ()
    provenance: dict[str, str] = field(default_factory=dict)
    safety: SafetyResult | None = None
    sensitivity: SensitivityResult | None = None
    #: Confounding by indication (:mod:`ildstudy.analysis.confounding`): propensity score, designs, balance and the
    #: outcome analyses under them; ``None`` without a ``[confounding]`` table in the protocol.
    confounding: ConfoundingResult | None = None
    #: Progression endpoints (time to a decline from baseline, the PPF physiological criterion) and the annualised
    #: FVC slope (:mod:`ildstudy.analysis.progression`); ``None`` without a ``[progression]`` table.
    progression: ProgressionResult | None = None
    #: Lung function (:mod:`ildstudy.analysis.lung_function`): the reference equation of each measure and the tests
    #: derived or flagged; ``None`` when the protocol uses recorded % predicted only (no ``[lung_function]``).
    lung_function: LungFunctionResult | None = None

    @property
    def results(self) -> dict[str, Any]:
        """The content of results.json (:func:`ildstudy.analysis.serialize.results_document`)."""
        from ildstudy.analysis.serialize import results_document

        return results_document(self)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table written to ``tables/`` (:func:`ildstudy.analysis.serialize.study_tables`)."""
        from ildstudy.analysis.serialize import study_tables

        return study_tables(self)
