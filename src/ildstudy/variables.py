"""The registries of study variables: outcomes and baseline covariates, each defined in one place.

An **outcome** (:class:`OutcomeSpec`) says where its values come from (a ``pft`` column, or the
``glucocorticoids`` prednisone-equivalent dose), its label and unit. A **covariate** (:class:`CovariateSpec`)
is a baseline variable of the cohort's patients table: its kind (numeric, binary, factor), how it is derived
(an Ibis expression over the per-patient baseline row, see :data:`BASELINE_COLUMNS`), the name of its model
column (the R term: ``female``, ``ever_smoker``, ``age``, ...) and its Table 1 row.

The protocol validates ``[[outcomes]] name``, ``analysis.covariates`` and ``analysis.time_interactions``
against these registries; the cohort derives every registered covariate; the model frame and Table 1 read
the specs. Adding an outcome or a covariate is one :func:`register_outcome` / :func:`register_covariate`
call. Every column of the canonical ``patients`` table that is not an id or a date is registered under its
own name (so ``race_ethnicity``, ``height_cm``, ``ild`` work as covariates as they are).

>>> outcome_spec("fvc_pct_pred").column
'fvc_pct_pred'
>>> [covariate_spec(c).term for c in ("sex", "age", "antisynthetase", "smoking")]
['female', 'age', 'antisynthetase', 'ever_smoker']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ildstudy.data.schema import PATIENTS, PFT

OutcomeSource = Literal["pft", "glucocorticoids"]
CovariateKind = Literal["numeric", "binary", "factor"]
#: Column dtype of a covariate in the cohort's patients table (``ildstudy.cohort.build._typed`` kinds).
CovariateDtype = Literal["float", "str", "bool", "boolean"]

#: Columns of the per-patient baseline row a covariate's ``derive`` may use: the canonical ``patients``
#: columns, ``index_date``, ``antisynthetase_hits`` (positive antisynthetase antibodies), the baseline PFT
#: (``baseline_fvc_pct_pred``, ``baseline_dlco_pct_pred``) and ``baseline_prednisone_mg`` (dose on the
#: index day). Nothing dated after index is among them.
BASELINE_COLUMNS: tuple[str, ...] = (
    *(c.name for c in PATIENTS.columns if c.name != "patient_id"), "index_date", "antisynthetase_hits",
    "baseline_fvc_pct_pred", "baseline_dlco_pct_pred", "baseline_prednisone_mg",
)


@dataclass(frozen=True, slots=True)
class OutcomeSpec:
    """One outcome: ``name`` (protocol and results key), ``label``, ``source``, ``column`` (the ``pft``
    column for ``source = "pft"``; ``None`` for the dose), ``unit``."""

    name: str
    label: str
    source: OutcomeSource
    column: str | None
    unit: str


@dataclass(frozen=True, slots=True)
class CovariateSpec:
    """One baseline covariate.

    ``name`` is what the protocol writes; ``column`` its column in the cohort's patients table; ``term`` the
    model column (and R term for numeric/binary covariates; a factor's terms are ``term`` + level, R-style:
    ``diagnosisPM``); ``kind``; ``dtype`` of ``column``; ``positive`` the value coded 1 for a binary
    covariate; ``levels`` the factor level order (first = reference; default: sorted observed values);
    ``derive(t)`` the Ibis expression of ``column`` over the baseline row ``t`` (:data:`BASELINE_COLUMNS`);
    ``label`` its Table 1 row; ``description`` how it is derived, for people.
    """

    name: str
    column: str
    term: str
    kind: CovariateKind
    dtype: CovariateDtype
    derive: Callable[[Any], Any]
    label: str
    description: str
    positive: Any = True
    levels: tuple[str, ...] = ()

    def model_values(self, values):
        """The model column from the patients-table column (pandas Series): 1.0/0.0 (binary, NaN where
        missing), float (numeric) or text with missing as NaN (factor)."""
        import numpy as np
        import pandas as pd

        s = pd.Series(values)
        if self.kind == "binary":
            return pd.Series(np.where(s.isna(), np.nan, (s == self.positive).astype(float)), index=s.index)
        if self.kind == "numeric":
            return pd.to_numeric(s).astype(float)
        return s.astype(object).where(s.notna(), np.nan)


#: PFT columns the cohort derives from raw values (:mod:`ildstudy.cohort.lungfunction`), not in the pft table:
#: column -> whether it needs ``[lung_function] reference_equation`` other than ``as_recorded`` (``fvc_ml`` is
#: ``fvc_l`` x 1000 and needs no equation).
DERIVED_PFT_COLUMNS: dict[str, bool] = {"fvc_zscore": True, "fev1_pct_pred": True, "fev1_zscore": True,
                                        "dlco_zscore": True, "fvc_ml": False, "fev1_fvc": False,
                                        "fev1_fvc_zscore": True}

_OUTCOMES: dict[str, OutcomeSpec] = {}
_COVARIATES: dict[str, CovariateSpec] = {}


def register_outcome(spec: OutcomeSpec, *, replace: bool = False) -> OutcomeSpec:
    """Add an outcome to the registry (``replace=True`` to redefine one). A ``pft`` outcome's column must
    be a number column of the canonical ``pft`` table."""
    if spec.name in _OUTCOMES and not replace:
        raise ValueError(f"outcome {spec.name!r} is registered already")
    if spec.source == "pft":
        numbers = [c.name for c in PFT.columns if c.kind == "number"]
        if spec.column not in numbers and spec.column not in DERIVED_PFT_COLUMNS:
            raise ValueError(f"outcome {spec.name!r}: pft column {spec.column!r} is not a number column of "
                             f"the pft table ({', '.join(numbers)})")
    elif spec.column is not None:
        raise ValueError(f"outcome {spec.name!r}: source {spec.source!r} takes no column")
    _OUTCOMES[spec.name] = spec
    return spec


def unregister_outcome(name: str) -> None:
    """Remove an outcome (for tests that register a toy outcome)."""
    _OUTCOMES.pop(name, None)


def register_covariate(spec: CovariateSpec, *, replace: bool = False) -> CovariateSpec:
    """Add a covariate to the registry (``replace=True`` to redefine one)."""
    if spec.name in _COVARIATES and not replace:
        raise ValueError(f"covariate {spec.name!r} is registered already")
    _COVARIATES[spec.name] = spec
    return spec


def unregister_covariate(name: str) -> None:
    """Remove a covariate (for tests)."""
    _COVARIATES.pop(name, None)


def outcomes() -> Mapping[str, OutcomeSpec]:
    """The registered outcomes, in registration order."""
    return dict(_OUTCOMES)


def covariates() -> Mapping[str, CovariateSpec]:
    """The registered covariates, in registration order."""
    return dict(_COVARIATES)


def outcome_spec(name: str) -> OutcomeSpec:
    """The registered outcome ``name``; :class:`KeyError` listing the known names otherwise."""
    try:
        return _OUTCOMES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a registered outcome; known: {', '.join(_OUTCOMES)}") from None


def covariate_spec(name: str) -> CovariateSpec:
    """The registered covariate ``name``; :class:`KeyError` listing the known names otherwise."""
    try:
        return _COVARIATES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a known covariate; known: {', '.join(_COVARIATES)}") from None


class CovariateTerms(Mapping[str, str]):
    """Read-only mapping covariate name -> model column (term), always up to date with the registry."""

    def __getitem__(self, name: str) -> str:
        return covariate_spec(name).term

    def __iter__(self) -> Iterator[str]:
        return iter(list(_COVARIATES))

    def __len__(self) -> int:
        return len(_COVARIATES)


# --- the built-in outcomes -------------------------------------------------------------------------------
register_outcome(OutcomeSpec("fvc_pct_pred", "FVC % predicted", "pft", "fvc_pct_pred", "% predicted"))
register_outcome(OutcomeSpec("dlco_pct_pred", "DLCO % predicted", "pft", "dlco_pct_pred", "% predicted"))
register_outcome(OutcomeSpec("prednisone_mg", "Prednisone-equivalent dose, mg/day", "glucocorticoids", None,
                             "mg/day"))
#: FVC in litres as recorded (pft.fvc_l): the annualised FVC slope in mL/year of [progression] (docs/progression.md)
register_outcome(OutcomeSpec("fvc_l", "FVC, L", "pft", "fvc_l", "L"))
# derived from raw values by the cohort (DERIVED_PFT_COLUMNS, docs/lungfunction.md)
register_outcome(OutcomeSpec("fvc_zscore", "FVC z-score", "pft", "fvc_zscore", "z-score"))
register_outcome(OutcomeSpec("fvc_ml", "FVC, mL", "pft", "fvc_ml", "mL"))
register_outcome(OutcomeSpec("fev1_pct_pred", "FEV1 % predicted", "pft", "fev1_pct_pred", "% predicted"))
register_outcome(OutcomeSpec("fev1_zscore", "FEV1 z-score", "pft", "fev1_zscore", "z-score"))
register_outcome(OutcomeSpec("dlco_zscore", "DLCO z-score", "pft", "dlco_zscore", "z-score"))
register_outcome(OutcomeSpec("fev1_fvc", "FEV1/FVC ratio", "pft", "fev1_fvc", "ratio"))
register_outcome(OutcomeSpec("fev1_fvc_zscore", "FEV1/FVC z-score", "pft", "fev1_fvc_zscore", "z-score"))


# --- the built-in covariates -----------------------------------------------------------------------------
def _days(date, origin):
    return (date - origin).cast("int64")


def _year(t):
    return t.index_date.year().cast("int64")


def _era(t):
    start = _year(t) - _year(t) % 5
    return start.cast("string").concat("-", (start + 4).cast("string"))


def _smoking(t):
    import ibis

    return t.smoking_status.cases(("never", "never"), ("former", "ever"), ("current", "ever"),
                                  else_=ibis.null("string"))


_BUILTIN = (
    CovariateSpec("sex", "sex", "female", "binary", "str", lambda t: t.sex, "Female",
                  "patients.sex; model column female = 1 for F", positive="F"),
    CovariateSpec("age", "age", "age", "numeric", "float",
                  lambda t: _days(t.index_date, t.birth_date).cast("float64") / 365.25, "Age at index, years",
                  "(index date - birth_date) in days / 365.25"),
    CovariateSpec("antisynthetase", "antisynthetase", "antisynthetase", "binary", "bool",
                  lambda t: t.antisynthetase_hits.fill_null(0) > 0, "Antisynthetase antibody",
                  "any positive Jo-1, PL-7, PL-12, EJ, OJ, KS, Zo or Ha antibody"),
    CovariateSpec("smoking", "smoking", "ever_smoker", "binary", "str", _smoking, "Ever smoker",
                  "smoking_status former/current -> ever, never -> never; model column ever_smoker",
                  positive="ever"),
    CovariateSpec("diagnosis", "diagnosis", "diagnosis", "factor", "str", lambda t: t.diagnosis, "Diagnosis",
                  "patients.diagnosis (factor; R terms diagnosisPM, ...)"),
    CovariateSpec("baseline_fvc_pct_pred", "baseline_fvc_pct_pred", "baseline_fvc_pct_pred", "numeric", "float",
                  lambda t: t.baseline_fvc_pct_pred, "Baseline FVC, % predicted", "FVC % of the baseline PFT"),
    CovariateSpec("baseline_dlco_pct_pred", "baseline_dlco_pct_pred", "baseline_dlco_pct_pred", "numeric",
                  "float", lambda t: t.baseline_dlco_pct_pred, "Baseline DLCO, % predicted",
                  "DLCO % of the baseline PFT (may be missing)"),
    CovariateSpec("baseline_prednisone_mg", "baseline_prednisone_mg", "baseline_prednisone_mg", "numeric",
                  "float", lambda t: t.baseline_prednisone_mg, "Baseline prednisone-equivalent, mg/day",
                  "prednisone-equivalent mg/day on the index day"),
    CovariateSpec("disease_duration_years", "disease_duration_years", "disease_duration_years", "numeric",
                  "float", lambda t: _days(t.index_date, t.ild_diagnosis_date).cast("float64") / 365.25,
                  "ILD duration at index, years",
                  "(index date - patients.ild_diagnosis_date) in days / 365.25; missing without a diagnosis date"),
    CovariateSpec("index_year", "index_year", "index_year", "numeric", "float", lambda t: _year(t).cast("float64"),
                  "Year of index", "calendar year of the index date"),
    CovariateSpec("calendar_era", "calendar_era", "calendar_era", "factor", "str", _era, "Calendar era of index",
                  "five-year period of the index date (2010-2014, 2015-2019, ...)"),
)
for _spec in _BUILTIN:
    register_covariate(_spec)

# every other patients column (not an id, not a date) by its own name
_KIND_OF = {"category": ("factor", "str"), "text": ("factor", "str"), "number": ("numeric", "float"),
            "bool": ("binary", "boolean")}
for _col in PATIENTS.columns:
    if _col.name in _COVARIATES or _col.kind not in _KIND_OF or _col.name in {"sex", "diagnosis"}:
        continue
    _kind, _dtype = _KIND_OF[_col.kind]
    register_covariate(CovariateSpec(
        _col.name, _col.name, _col.name, _kind, _dtype, (lambda name: lambda t: t[name])(_col.name),
        _col.name.replace("_", " ").capitalize(), f"patients.{_col.name} as recorded"))
del _spec, _col, _kind, _dtype
