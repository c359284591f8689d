"""The result of a study run: what the report, the exports and the Python API consume.

Every table is a pandas DataFrame without patient identifiers or individual dates;
``results`` is exactly the content of ``results.json`` (keys of DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ildstudy.protocol import Protocol


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


@dataclass(frozen=True)
class StudyResult:
    """Everything a study run produced.

    Attributes
    ----------
    protocol : the protocol that was run.
    arms : arm name -> number of patients, in protocol order (reference arm last).
    attrition : DataFrame[step, reason, excluded, remaining, remaining_<ARM>...]: a first ``registry`` row,
        one row per cohort step, and a last ``cohort`` row stating registry = excluded + cohort.
    table1 : DataFrame[variable, level, <ARM>..., p, test, smd, missing].
    outcomes : outcome name -> :class:`OutcomeResult`.
    adverse_events : the ``adverse_events`` block of results.json.
    adverse_events_by_category : DataFrame[category, <ARM>_patients, <ARM>_n, <ARM>_percent, <ARM>_events, ...,
        fisher_p] (wide).
    discontinuation : the ``discontinuation`` block of results.json.
    km : DataFrame[analysis, arm, time, n_risk, n_event, n_censor, survival, ci_low, ci_high]
        (analysis is ``any_reason`` or ``adverse_event``).
    results : the content of results.json.
    tables : every table written to ``tables/`` (name -> DataFrame).
    count_columns : table name -> columns holding patient counts (suppressed below --min-cell in share/).
    linked_columns : table name -> {derived column: count column}; a percentage is suppressed with its count.
    provenance : ildstudy version, protocol SHA-256, data SHA-256 (also in results.json); an optional
        ``notice`` (e.g. synthetic demo data) is shown next to the report's title.
    """

    protocol: Protocol
    arms: dict[str, int]
    attrition: pd.DataFrame
    table1: pd.DataFrame
    outcomes: dict[str, OutcomeResult]
    adverse_events: dict[str, Any]
    adverse_events_by_category: pd.DataFrame
    discontinuation: dict[str, Any]
    km: pd.DataFrame
    results: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    count_columns: dict[str, list[str]] = field(default_factory=dict)
    linked_columns: dict[str, dict[str, str]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
