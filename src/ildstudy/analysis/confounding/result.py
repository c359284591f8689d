"""The typed result of the confounding analyses: :class:`ConfoundingResult` (results.json ``confounding``, the
``tables/confounding_*`` exports, and what the report's "Confounding" section reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ildstudy._json import frame_records

DESIGN_LABELS = {"none": "Unweighted", "iptw_ate": "IPTW (ATE)", "iptw_att": "IPTW (ATT)",
                 "overlap": "Overlap weights (ATO)", "matching": "Nearest-neighbour matching (ATT)"}


@dataclass(frozen=True)
class ConfoundingResult:
    """Propensity score, designs, balance and the outcome analyses under each design.

    Attributes
    ----------
    settings : dict
        The protocol's ``[confounding]`` table as run (``design``, ``also``, ``stabilize``, ``trim``,
        ``truncate``, ``caliper``, ``ratio``, ``replace``) plus ``ps_covariates`` (the names used).
    treated_arm, reference_arm : the first arm (whose score is modelled) and the reference arm.
    designs : the designs analysed, primary first; ``none`` (unadjusted) is always the first row of each table.
    propensity : DataFrame[term, estimate, se, z, p] — the logistic model.
    propensity_info : dict — ``converged``, ``iterations``, ``n`` (complete cases), ``excluded_missing``
        (arm -> patients left out for a missing covariate), ``caliper`` (logit scale) and ``matched``
        (arm -> matched patients), when matching ran.
    scores : DataFrame[arm, ps, linear_predictor, trimmed] — per complete-case patient (no identifiers), for the
        overlap figure; not written to results.json.
    balance : DataFrame[design, covariate, type, mean_treated_before, ..., smd_after, variance_ratio_after].
    sample_sizes : DataFrame[design, arm, n, n_weighted, ess].
    outcomes : DataFrame[design, outcome, month, contrast, estimate, se, ci_low, ci_high, p, n_obs, n_patients,
        n_clusters, cluster, sd, evalue, evalue_ci].
    adverse_events : DataFrame[design, n_treated, n_reference, events_treated, events_reference, risk_treated,
        risk_reference, rd, rd_ci_low, rd_ci_high, rd_p, rr, rr_ci_low, rr_ci_high, evalue, evalue_ci].
    discontinuation : DataFrame[design, n, events, hr, ci_low, ci_high, p].
    km : DataFrame[design, arm, month, surv] — weighted Kaplan–Meier at the contrast months.
    warnings : tuple of str.
    """

    settings: dict[str, Any]
    treated_arm: str
    reference_arm: str
    designs: tuple[str, ...]
    propensity: pd.DataFrame
    propensity_info: dict[str, Any]
    scores: pd.DataFrame
    balance: pd.DataFrame
    sample_sizes: pd.DataFrame
    outcomes: pd.DataFrame
    adverse_events: pd.DataFrame
    discontinuation: pd.DataFrame
    km: pd.DataFrame
    warnings: tuple[str, ...] = ()

    @property
    def primary(self) -> str:
        """The primary design (``none`` when only the unadjusted comparison was asked for)."""
        return self.settings["design"]

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``confounding`` block."""
        return {"settings": dict(self.settings), "treated_arm": self.treated_arm,
                "reference_arm": self.reference_arm, "designs": list(self.designs),
                "propensity": {**self.propensity_info, "coefficients": frame_records(self.propensity)},
                "sample_sizes": frame_records(self.sample_sizes), "balance": frame_records(self.balance),
                "outcomes": frame_records(self.outcomes), "adverse_events": frame_records(self.adverse_events),
                "discontinuation": frame_records(self.discontinuation), "km": frame_records(self.km),
                "warnings": list(self.warnings)}

    def tables(self) -> dict[str, pd.DataFrame]:
        """``confounding_propensity``, ``_sample_sizes``, ``_balance``, ``_outcomes``, ``_adverse_events``,
        ``_discontinuation``."""
        return {"confounding_propensity": self.propensity, "confounding_sample_sizes": self.sample_sizes,
                "confounding_balance": self.balance, "confounding_outcomes": self.outcomes,
                "confounding_adverse_events": self.adverse_events,
                "confounding_discontinuation": self.discontinuation}
