"""The study protocol: a validated, frozen settings object loaded from TOML.

Every field is documented in ``docs/protocol.md``. Unknown keys and bad values are rejected
with a message naming the key; a protocol round-trips TOML -> object -> TOML.

>>> from ildstudy.protocol import load_protocol
>>> p = load_protocol("huapaya2019")
>>> [a.name for a in p.arms], p.reference_arm
(['AZA', 'MMF'], 'MMF')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError,
                      field_validator, model_validator)

from ildstudy.data.coerce import category_lookup
from ildstudy.data.omop.concepts import OmopSettings
from ildstudy.data.schema import PATIENTS
from ildstudy.errors import ProtocolError
from ildstudy.reference.drugs import DrugNames, declared_drug_names
from ildstudy.reference.lungfunction.settings import LungFunctionSettings
from ildstudy.variables import DERIVED_PFT_COLUMNS
from ildstudy.variables import covariates as registered_covariates
from ildstudy.variables import outcomes as registered_outcomes

BUILTIN = ("huapaya2019", "huapaya2019_published")
#: A number: TOML integer or float, never a string or a boolean.
Number = Annotated[float, Field(strict=True)]
DAYS_PER_MONTH = 30.4375


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Population(_Settings):
    diagnoses: tuple[StrictStr, ...] = Field(min_length=1)
    require_ild: StrictBool = True
    #: ``patients.ild_diagnosis_date`` on or before index + ``ild_diagnosis_tolerance_days`` (missing: fails).
    require_ild_before_index: StrictBool = False
    ild_diagnosis_tolerance_days: StrictInt = Field(default=0, ge=0)


class Arm(_Settings):
    name: StrictStr = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    label: StrictStr = ""
    drugs: tuple[StrictStr, ...] = Field(min_length=1)


class Index(_Settings):
    data_cut: dt.date
    #: New users only: some registry record on or before index - washout_days (0: no such rule).
    washout_days: StrictInt = Field(default=0, ge=0)

    @field_validator("data_cut", mode="before")
    @classmethod
    def _date_only(cls, v: Any) -> Any:
        # a TOML date, or "YYYY-MM-DD" text; not a number (pydantic would read it as a Unix time) or a datetime
        if isinstance(v, dt.datetime) or not isinstance(v, (dt.date, str)):
            raise ValueError("must be a date, written 2018-12-31 or \"2018-12-31\"")
        return v


class Window(_Settings):
    """Days relative to the index date, inclusive."""

    from_days: StrictInt
    to_days: StrictInt

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.to_days < self.from_days:
            raise ValueError("to_days must be >= from_days")
        return self


class OtherAgents(Window):
    drugs: tuple[StrictStr, ...]


class Exclusions(_Settings):
    other_agents: OtherAgents
    both_arms: Window
    #: Allow rules that select patients on events after index (windows with to_days > 0, a required
    #: follow-up measurement): only to reproduce a published reading (``huapaya2019_published``).
    allow_post_index_selection: StrictBool = False


class FollowUp(_Settings):
    max_months: Number = Field(gt=0, le=240)
    analysis: Literal["as_treated", "intention_to_treat"] = "as_treated"
    grace_days: StrictInt = Field(default=30, ge=0)
    #: Exclude patients without a follow-up measurement before the end of follow-up (selection on the future).
    require_follow_up_measurement: StrictBool = False

    @property
    def max_days(self) -> int:
        """Last day of follow-up relative to index: round(max_months x 30.4375), halves up (60 -> 1826)."""
        return math.floor(self.max_months * DAYS_PER_MONTH + 0.5)


class Outcome(_Settings):
    #: A registered outcome (:mod:`ildstudy.variables`).
    name: StrictStr
    label: StrictStr = ""
    source: Literal["pft", "glucocorticoids"]
    #: ``linear`` (months), ``categorical`` (visit factor), ``natural_spline`` (``splines::ns(months, knots,
    #: Boundary.knots)``) or ``piecewise`` (linear with a change of slope at each knot).
    time_model: Literal["linear", "categorical", "natural_spline", "piecewise"] = "linear"
    #: Interior knots in months (natural_spline: at least one; piecewise: the change points).
    knots: tuple[Number, ...] = ()
    #: natural_spline only: boundary knots in months (default: 0 and follow_up.max_months).
    boundary_knots: tuple[Number, Number] | None = None
    random_effects: Literal["intercept_slope", "intercept"] = "intercept_slope"

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        known = registered_outcomes()
        if v not in known:
            raise ValueError(f"{v!r} is not a registered outcome; known: {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _source_fits(self) -> "Outcome":
        want = registered_outcomes()[self.name].source
        if self.source != want:
            raise ValueError(f"outcome {self.name} comes from source '{want}'")
        curved = self.time_model in ("natural_spline", "piecewise")
        if curved and not self.knots:
            raise ValueError(f"time_model = \"{self.time_model}\" needs knots (months), e.g. knots = [12, 36]")
        if not curved and self.knots:
            raise ValueError(f"knots are used only with time_model = \"natural_spline\" or \"piecewise\", "
                             f"not \"{self.time_model}\"")
        if self.boundary_knots is not None and self.time_model != "natural_spline":
            raise ValueError("boundary_knots are used only with time_model = \"natural_spline\"")
        if list(self.knots) != sorted(set(self.knots)) or any(k <= 0 for k in self.knots):
            raise ValueError("knots must be positive, increasing and distinct months")
        return self


class MarginalMeans(_Settings):
    """How the reference grid averages over covariates, with emmeans' names (docs/protocol.md)."""

    #: ``weights`` of ``emmeans()``: ``equal`` (each covariate level counts the same), ``proportional`` (levels
    #: weighted by their frequency in the fitted rows), ``outer``, ``cells``, ``flat``.
    weights: Literal["equal", "proportional", "outer", "cells", "flat"] = "equal"
    #: ``cov.keep`` of ``ref_grid()``: numeric covariates with at most this many distinct values are averaged
    #: over their values like a factor; the others are held at their mean. 0 = every covariate at its mean.
    cov_keep: StrictInt = Field(default=2, ge=0)


class PrimaryEndpoint(_Settings):
    """The one confirmatory contrast: an outcome's arm difference at one month (unadjusted)."""

    outcome: StrictStr
    month: Number = Field(ge=0)


class Multiplicity(_Settings):
    """How p-values of the arm differences other than the primary one are adjusted (exploratory)."""

    #: ``none``, ``holm``, ``bonferroni``, ``sidak`` or ``mvt`` (emmeans' single-step multivariate t).
    adjust: Literal["none", "holm", "bonferroni", "sidak", "mvt"] = "holm"
    #: ``outcome``: one family per outcome (its arm differences at every contrast month, less the primary).
    family: Literal["outcome"] = "outcome"


class Analysis(_Settings):
    #: Registered covariate names (:mod:`ildstudy.variables`), in model order.
    covariates: tuple[StrictStr, ...] = ("sex", "age", "antisynthetase", "smoking")
    #: Covariates (of ``covariates``) that also get a covariate x time term.
    time_interactions: tuple[StrictStr, ...] = ()
    dose_months: tuple[Number, ...] = Field(min_length=1)
    contrast_months: tuple[Number, ...] = Field(min_length=1)
    adverse_event_test: Literal["yates", "chisq", "fisher"] = "yates"
    median_iqr: tuple[StrictStr, ...] = ()
    #: Fewest cohort patients an arm may have for the models to be fitted (see docs/protocol.md).
    min_patients_per_arm: StrictInt = Field(default=10, ge=2)
    #: A contrast month is flagged "limited data" when an arm has fewer patients with data at or after it.
    min_at_risk: StrictInt = Field(default=10, ge=1)
    marginal_means: MarginalMeans = MarginalMeans()
    #: The declared primary endpoint (None: every contrast is reported unadjusted and exploratory).
    primary: PrimaryEndpoint | None = None
    multiplicity: Multiplicity = Multiplicity()

    @field_validator("dose_months", "contrast_months")
    @classmethod
    def _sorted(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(m < 0 for m in v) or list(v) != sorted(set(v)):
            raise ValueError("months must be non-negative, increasing and distinct")
        return v


class Sensitivity(_Settings):
    """A sensitivity analysis: the study re-run with other cohort or analysis settings, reported side by side.

    ``protocol`` names another protocol (built-in name or TOML path) to run instead; ``changes`` sets keys of
    this protocol by dotted name (``"follow_up.analysis" = "intention_to_treat"``). Give one or both (the
    changes then apply to the named protocol). The arms must stay the same."""

    name: StrictStr = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    label: StrictStr = ""
    protocol: StrictStr | None = None
    changes: dict[StrictStr, Any] = {}

    @model_validator(mode="after")
    def _something(self) -> "Sensitivity":
        if self.protocol is None and not self.changes:
            raise ValueError("give protocol = \"<name or path>\" or changes = { \"key.path\" = value }")
        return self


#: Designs of the ``[confounding]`` table (``none``: the unadjusted comparison only).
CONFOUNDING_DESIGNS = ("none", "iptw_ate", "iptw_att", "overlap", "matching")
#: Added to ``analysis.covariates`` in the default propensity-score model.
DEFAULT_PS_EXTRA = ("baseline_fvc_pct_pred", "baseline_dlco_pct_pred", "diagnosis")


class Confounding(_Settings):
    """Confounding by indication (``[confounding]``, docs/protocol.md): the propensity score of the first arm,
    the design that uses it, and the outcome analyses re-run under it (:mod:`ildstudy.analysis.confounding`).

    ``design`` is the primary design, ``also`` further designs reported beside it; the unadjusted comparison is
    always shown. Two arms only: with more arms the analyses are skipped with a warning naming this table."""

    design: Literal["none", "iptw_ate", "iptw_att", "overlap", "matching"] = "none"
    also: tuple[Literal["iptw_ate", "iptw_att", "overlap", "matching"], ...] = ()
    #: Registered covariates of the propensity model (default: analysis.covariates + baseline FVC and DLCO %
    #: predicted + diagnosis).
    ps_covariates: tuple[StrictStr, ...] | None = None
    #: Multiply IPTW weights by the arm shares.
    stabilize: StrictBool = True
    #: Drop patients with a score outside [trim, 1 - trim] (0: none).
    trim: Number = Field(default=0.0, ge=0, lt=0.5)
    #: Cap weights at this quantile (e.g. 0.99; unset: no truncation).
    truncate: Number | None = Field(default=None, gt=0.5, lt=1)
    #: Matching: caliper in SDs of the logit of the score (0: no caliper), controls per treated, reuse.
    caliper: Number = Field(default=0.2, ge=0)
    ratio: StrictInt = Field(default=1, ge=1, le=10)
    replace: StrictBool = False

    @field_validator("ps_covariates")
    @classmethod
    def _known(cls, v):
        if v is None:
            return v
        known = registered_covariates()
        bad = [c for c in v if c not in known]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} not a known covariate; known: {', '.join(known)}")
        if len(set(v)) != len(v) or not v:
            raise ValueError("covariates must be distinct, at least one")
        return v

    @model_validator(mode="after")
    def _distinct(self) -> "Confounding":
        if self.design in self.also or len(set(self.also)) != len(self.also):
            raise ValueError("also: each design at most once, and not the primary design")
        return self

    @property
    def designs(self) -> tuple[str, ...]:
        """The designs analysed, primary first (without ``none``)."""
        return tuple(d for d in (self.design, *self.also) if d != "none")

    def covariate_names(self, analysis: "Analysis") -> tuple[str, ...]:
        """The propensity model's covariates: ``ps_covariates``, or the default."""
        if self.ps_covariates is not None:
            return self.ps_covariates
        return tuple(dict.fromkeys((*analysis.covariates, *DEFAULT_PS_EXTRA)))


#: The pft outcome each progression measure reads (% predicted, as recorded).
PROGRESSION_MEASURES = {"fvc": "fvc_pct_pred", "dlco": "dlco_pct_pred"}
#: The outcome whose mixed-model slope gives the annualised FVC change in mL/year (FVC in litres x 1000).
FVC_SLOPE_OUTCOME = "fvc_l"


class ProgressionEndpoint(_Settings):
    """A decline from baseline (``[[progression.endpoints]]``): the first follow-up test whose ``measure`` (% predicted)
    is at least ``threshold`` below the baseline value, relatively (% of baseline) or absolutely (points), within
    ``window_months`` of index (unset: the whole follow-up); ``confirmed``: the next test of the measure must show the
    decline too (docs/progression.md)."""

    name: StrictStr | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    label: StrictStr = ""
    measure: Literal["fvc", "dlco"]
    kind: Literal["relative", "absolute"]
    threshold: Number = Field(gt=0, le=100)
    confirmed: StrictBool = False
    window_months: Number | None = Field(default=None, gt=0)

    @property
    def key(self) -> str:
        """``name``, or ``<measure>_<kind>_<threshold>[_confirmed]`` (``fvc_relative_10``)."""
        if self.name:
            return self.name
        return f"{self.measure}_{self.kind}_{self.threshold:g}".replace(".", "_") + (
            "_confirmed" if self.confirmed else "")

    @property
    def title(self) -> str:
        """``label``, or ``FVC relative decline ≥ 10%`` / ``DLCO absolute decline ≥ 15 points``."""
        if self.label:
            return self.label
        unit = "%" if self.kind == "relative" else " points"
        window = f" within {self.window_months:g} months" if self.window_months else ""
        return (f"{self.measure.upper()} {self.kind} decline \u2265 {self.threshold:g}{unit}{window}"
                + (", confirmed" if self.confirmed else ""))


class Progression(_Settings):
    """Progression endpoints (``[progression]``, docs/progression.md): declines from baseline, the physiological
    criterion of progressive pulmonary fibrosis (``ppf``: absolute FVC decline >= 5 points or DLCO decline >= 10 points
    of % predicted within ``ppf_window_months``; Raghu et al., AJRCCM 2022;205:e18-e47), each as time to the first
    qualifying test by arm; and the annualised FVC slope in mL/year from FVC in litres (``fvc_slope``)."""

    endpoints: tuple[ProgressionEndpoint, ...] = ()
    ppf: StrictBool = False
    ppf_window_months: Number = Field(default=12, gt=0)
    ppf_confirmed: StrictBool = False
    fvc_slope: StrictBool = True

    def needed_outcomes(self) -> tuple[str, ...]:
        """The pft outcomes the cohort must carry for these analyses (beyond the protocol's ``[[outcomes]]``)."""
        names = [PROGRESSION_MEASURES[e.measure] for e in self.endpoints]
        if self.ppf:
            names += list(PROGRESSION_MEASURES.values())
        if self.fvc_slope:
            names.append(FVC_SLOPE_OUTCOME)
        return tuple(dict.fromkeys(names))


class Protocol(_Settings):
    """A complete study protocol. See ``docs/protocol.md``."""

    name: StrictStr
    title: StrictStr = ""
    reference: StrictStr = ""
    population: Population
    arms: tuple[Arm, ...] = Field(min_length=2, max_length=8)
    index: Index
    exclusions: Exclusions
    baseline: Window
    follow_up: FollowUp
    outcomes: tuple[Outcome, ...] = Field(min_length=1)
    analysis: Analysis
    glucocorticoids: dict[StrictStr, Number]
    drug_names: dict[StrictStr, StrictStr] = {}
    #: Allow ``[drug_names]`` to map a spelling the built-in table knows to a different generic.
    override_builtin_drug_names: StrictBool = False
    #: Sensitivity analyses (``[[sensitivity]]``), each run on the same registry and shown side by side.
    sensitivity: tuple[Sensitivity, ...] = ()
    #: OMOP CDM input: concept sets and drug eras (``[omop]``, docs/inputs.md); None = the defaults.
    omop: OmopSettings | None = None
    #: Confounding by indication: propensity score, weighting / matching, balance (``[confounding]``).
    confounding: Confounding | None = None
    #: Progression endpoints and the annualised FVC slope (``[progression]``); None = not analysed.
    progression: Progression | None = None
    #: Reference equations for % predicted and z-scores (``[lung_function]``); None = as recorded.
    lung_function: LungFunctionSettings | None = None

    @property
    def lung(self) -> LungFunctionSettings:
        """``[lung_function]``, or its defaults (as recorded) when the protocol has none."""
        return self.lung_function or LungFunctionSettings()

    @model_validator(mode="after")
    def _checked(self) -> "Protocol":
        """Diagnoses and drug names through the data's normalisation, then the cross-field rules."""
        checked = self.model_copy(update=_normalised_names(self))
        problems = _consistency_problems(checked)
        if problems:
            raise ValueError("\n".join(problems))
        return checked

    @property
    def reference_arm(self) -> str:
        """The reference (comparator) arm: the last arm listed (contrasts are arm - reference)."""
        return self.arms[-1].name

    @property
    def treatment_arm(self) -> str:
        """The first arm (with two arms, the one compared with the reference)."""
        return self.arms[0].name

    @property
    def compared_arms(self) -> tuple[str, ...]:
        """Every arm but the reference, in protocol order: each is contrasted with the reference arm."""
        return tuple(a.name for a in self.arms[:-1])

    def cohort_outcomes(self) -> tuple[str, ...]:
        """Outcomes the cohort's long table carries: the ``[[outcomes]]``, then those ``[progression]`` and
        ``[lung_function] zscore_trajectories`` need."""
        names = [o.name for o in self.outcomes]
        if self.progression is not None:
            names += self.progression.needed_outcomes()
        if self.lung.zscore_trajectories:  # analysis/zscore_trajectories.py
            names += ["fvc_zscore", "dlco_zscore"]
        return tuple(dict.fromkeys(names))

    def cohort_key(self) -> str:
        """The settings the cohort is built from, as text: two protocols with equal keys have the same cohort.

        Everything but what only the analysis reads (names and labels, ``[analysis]`` except ``dose_months``,
        each outcome's model settings, ``[[sensitivity]]``, ``[confounding]``), so a setting added later counts
        as a cohort setting until it is listed here. A sensitivity analysis that changes only the model (time as
        a spline, more covariates) reuses the primary cohort instead of building it again.
        """
        d = self.model_dump(mode="json", exclude={"name", "title", "reference", "sensitivity", "confounding"})
        d["analysis"] = {"dose_months": d["analysis"]["dose_months"]}
        d["outcomes"] = [o.name for o in self.outcomes]
        d["cohort_outcomes"] = list(self.cohort_outcomes())
        return json.dumps(d, sort_keys=True, default=str)

    def arm_of_drug(self) -> dict[str, str]:
        return {d: a.name for a in self.arms for d in a.drugs}

    def prednisone_factor(self) -> dict[str, float]:
        """mg prednisone per mg of each glucocorticoid."""
        base = self.glucocorticoids["prednisone"]
        return {k.lower(): base / v for k, v in self.glucocorticoids.items()}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))

    def sensitivity_protocol(self, name: str) -> "Protocol":
        """The protocol of sensitivity analysis ``name``: the named protocol (or this one) with its ``changes``,
        without sensitivity analyses of its own. Raises :class:`ProtocolError` naming the key."""
        by_name = {s.name: (i, s) for i, s in enumerate(self.sensitivity)}
        if name not in by_name:
            raise ProtocolError(f"no sensitivity analysis {name!r}; declared: {', '.join(by_name) or 'none'}")
        i, sa = by_name[name]
        where = f"sensitivity[{i}] ({sa.name})"
        base = load_protocol(sa.protocol) if sa.protocol is not None else self
        data = base.model_dump(mode="python", exclude_none=True)
        data.pop("sensitivity", None)
        for dotted, value in sa.changes.items():
            nodes = [data]
            parts = dotted.split(".")
            for part in parts[:-1]:
                nxt = []
                for node in nodes:
                    if part == "lung_function" and node.get(part) is None:  # unset: its defaults, to change
                        node[part] = LungFunctionSettings().model_dump(mode="python")
                    child = node.get(part)
                    if isinstance(child, dict):
                        nxt.append(child)
                    elif isinstance(child, (list, tuple)) and child and all(isinstance(c, dict) for c in child):
                        nxt.extend(child)  # "outcomes.time_model": every outcome
                    else:
                        raise ProtocolError(f"{where}: changes.\"{dotted}\": {part!r} is not a table of the "
                                            "protocol")
                nodes = nxt
            for node in nodes:
                if parts[-1] not in node and parts[-1] not in _OPTIONAL_KEYS:
                    raise ProtocolError(f"{where}: changes.\"{dotted}\": unknown key")
                node[parts[-1]] = value
        data["name"] = f"{self.name}:{sa.name}"
        try:
            variant = Protocol.model_validate(data)
        except ValidationError as exc:
            msg = "; ".join(filter(None, (
                (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "")
                + e["msg"].removeprefix("Value error, ").replace("\n", "; ") for e in exc.errors())))
            raise ProtocolError(f"{where}: {msg}") from None
        if [a.name for a in variant.arms] != [a.name for a in self.arms]:
            raise ProtocolError(f"{where}: arms {[a.name for a in variant.arms]} differ from the protocol's "
                                f"{[a.name for a in self.arms]}; a sensitivity analysis compares the same arms")
        return variant

    def sha256(self) -> str:
        return hashlib.sha256(self.to_toml().encode()).hexdigest()


#: Keys a sensitivity ``changes`` entry may set although the dumped protocol lacks them (unset optional settings).
_OPTIONAL_KEYS = frozenset({"primary", "boundary_knots"})


def _key(path: str, name: str) -> str:
    return f'{path}."{name}"'


def _normalised_names(p: Protocol) -> dict[str, Any]:
    """Fields with canonical diagnoses and generic drug names; :class:`ValueError` listing every unknown one."""
    problems: list[str] = []
    canonical = category_lookup(PATIENTS.column("diagnosis"))
    allowed = ", ".join(PATIENTS.column("diagnosis").categories)
    diagnoses: list[str] = []
    for i, d in enumerate(p.population.diagnoses):
        c = canonical(d)
        if c is None:
            problems.append(f"population.diagnoses[{i}]: {d!r} is not a diagnosis; allowed: {allowed}")
        elif c in diagnoses:
            problems.append(f"population.diagnoses[{i}]: {d!r} is {c}, listed already")
        else:
            diagnoses.append(c)

    spellings, bad = declared_drug_names(p.drug_names, override_builtin=p.override_builtin_drug_names)
    problems += [f"{_key('drug_names', k)}: {m}" for k, m in bad]
    names = DrugNames.builtin(extra_spellings=spellings)

    def generics(key: str, given) -> list[str]:
        out: list[str] = []
        for j, d in enumerate(given):
            g = names.generic(d)
            if g is None:
                problems.append(
                    f"{key}[{j}]: {d!r} is not a known drug name; declare it under [drug_names] "
                    f"(\"{d}\" = \"{d}\" for a new generic name, or \"{d}\" = \"<generic>\" for another spelling)")
            elif g in out:
                problems.append(f"{key}[{j}]: {d!r} is {g}, listed already")
            else:
                out.append(g)
        return out

    arms = [a.model_copy(update={"drugs": tuple(generics(f"arms[{i}].drugs", a.drugs))})
            for i, a in enumerate(p.arms)]
    other = p.exclusions.other_agents
    other = other.model_copy(update={"drugs": tuple(generics("exclusions.other_agents.drugs", other.drugs))})
    glucocorticoids: dict[str, float] = {}
    for k, v in p.glucocorticoids.items():
        g = names.generic(k)
        if g is None:
            problems.append(f"{_key('glucocorticoids', k)}: not a known drug name; declare it under [drug_names]")
        elif g in glucocorticoids:
            problems.append(f"{_key('glucocorticoids', k)}: is {g}, listed already")
        else:
            glucocorticoids[g] = v
    if problems:
        raise ValueError("\n".join(problems))
    return {
        "population": p.population.model_copy(update={"diagnoses": tuple(diagnoses)}),
        "arms": tuple(arms),
        "exclusions": p.exclusions.model_copy(update={"other_agents": other}),
        "glucocorticoids": glucocorticoids,
        "drug_names": spellings,
    }


def _consistency_problems(p: Protocol) -> list[str]:
    """Rules across fields: arms, drugs in two roles, windows and months against follow-up, outcomes."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, a in enumerate(p.arms):
        if a.name in seen:
            problems.append(f"arms[{i}].name: {a.name!r} is the name of arms[{seen[a.name]}] too")
        seen.setdefault(a.name, i)
    arm_of: dict[str, str] = {}
    for i, a in enumerate(p.arms):
        for j, d in enumerate(a.drugs):
            if d in arm_of:
                problems.append(f"arms[{i}].drugs[{j}]: {d!r} belongs to arm {arm_of[d]} too")
            arm_of.setdefault(d, a.name)
    for j, d in enumerate(p.exclusions.other_agents.drugs):
        if d in arm_of:
            problems.append(f"exclusions.other_agents.drugs[{j}]: {d!r} is a drug of arm {arm_of[d]}")
    for k, v in p.glucocorticoids.items():
        if v <= 0:
            problems.append(f"{_key('glucocorticoids', k)}: the equivalent dose must be > 0 mg")
    if "prednisone" not in p.glucocorticoids:
        problems.append("glucocorticoids: must include prednisone")

    fu = p.follow_up
    end = f"the end of follow-up (follow_up.max_months = {fu.max_months:g}, day {fu.max_days})"
    if p.baseline.from_days > fu.max_days:
        problems.append(f"baseline.from_days: day {p.baseline.from_days} is after {end}")
    elif p.baseline.to_days >= fu.max_days and fu.require_follow_up_measurement:
        problems.append(f"baseline.to_days: day {p.baseline.to_days} leaves no day for a follow-up PFT "
                        f"before {end}")
    for key, w in (("exclusions.other_agents", p.exclusions.other_agents), ("exclusions.both_arms",
                                                                            p.exclusions.both_arms)):
        if w.from_days > fu.max_days:
            problems.append(f"{key}.from_days: the window starts on day {w.from_days}, after {end}")
        elif w.to_days > 0 and not p.exclusions.allow_post_index_selection:
            problems.append(
                f"{key}.to_days: day {w.to_days} is after the index date: excluding on exposure after index "
                "selects patients on their future (as-treated follow-up ends at a switch or add-on instead); "
                "use to_days <= 0, or set exclusions.allow_post_index_selection = true to reproduce a "
                "published reading")
    if fu.require_follow_up_measurement and not p.exclusions.allow_post_index_selection:
        problems.append(
            "follow_up.require_follow_up_measurement: requiring a measurement after baseline selects patients "
            "on their future (the mixed model uses baseline-only patients); set it to false, or set "
            "exclusions.allow_post_index_selection = true to reproduce a published reading")
    problems += _covariate_problems(p.analysis)
    for key in ("contrast_months", "dose_months"):
        months = getattr(p.analysis, key)
        if months[-1] > fu.max_months:
            problems.append(f"analysis.{key}: month {months[-1]:g} is beyond follow_up.max_months "
                            f"({fu.max_months:g})")
    for i, o in enumerate(p.outcomes):
        for k in o.knots:
            if k >= fu.max_months:
                problems.append(f"outcomes[{i}].knots: month {k:g} is not before follow_up.max_months "
                                f"({fu.max_months:g})")
        if o.boundary_knots is not None:
            lo, hi = o.boundary_knots
            if not lo < hi or any(not lo < k < hi for k in o.knots):
                problems.append(f"outcomes[{i}].boundary_knots: [{lo:g}, {hi:g}] must be increasing and enclose "
                                f"the knots")
    pe = p.analysis.primary
    if pe is not None:
        if pe.outcome not in {o.name for o in p.outcomes}:
            problems.append(f"analysis.primary.outcome: {pe.outcome!r} is not one of the protocol's outcomes "
                            f"({', '.join(o.name for o in p.outcomes)})")
        if pe.month not in p.analysis.contrast_months:
            problems.append(f"analysis.primary.month: month {pe.month:g} is not one of analysis.contrast_months")
    for i, o in enumerate(p.outcomes):
        column = registered_outcomes()[o.name].column
        if DERIVED_PFT_COLUMNS.get(column) and p.lung.equation is None:
            problems.append(f"outcomes[{i}].name: {o.name!r} is computed from raw values with a reference "
                            "equation; set [lung_function] reference_equation or check_equation "
                            "(e.g. \"gli_global_2022\")")
    sens: dict[str, int] = {}
    for i, sa in enumerate(p.sensitivity):
        if sa.name in sens:
            problems.append(f"sensitivity[{i}].name: {sa.name!r} is the name of sensitivity[{sens[sa.name]}] too")
        sens.setdefault(sa.name, i)
    problems += _progression_problems(p)
    first: dict[str, int] = {}
    for i, o in enumerate(p.outcomes):
        if o.name in first:
            problems.append(f"outcomes[{i}].name: {o.name!r} is the name of outcomes[{first[o.name]}] too")
        first.setdefault(o.name, i)
    return problems


def _progression_problems(p: Protocol) -> list[str]:
    """``[progression]``: something to analyse, distinct endpoint names, windows inside follow-up."""
    pr = p.progression
    if pr is None:
        return []
    problems: list[str] = []
    if not pr.endpoints and not pr.ppf and not pr.fvc_slope:
        problems.append("progression: no endpoints, ppf = false and fvc_slope = false: nothing to analyse; "
                        "remove [progression] or declare [[progression.endpoints]]")
    seen: dict[str, str] = {"ppf": "ppf"} if pr.ppf else {}
    for i, e in enumerate(pr.endpoints):
        if e.key in seen:
            problems.append(f"progression.endpoints[{i}]: name {e.key!r} is taken by {seen[e.key]}; give a name")
        seen.setdefault(e.key, f"progression.endpoints[{i}]")
        if e.window_months is not None and e.window_months > p.follow_up.max_months:
            problems.append(f"progression.endpoints[{i}].window_months: {e.window_months:g} is beyond "
                            f"follow_up.max_months ({p.follow_up.max_months:g})")
    if pr.ppf and pr.ppf_window_months > p.follow_up.max_months:
        problems.append(f"progression.ppf_window_months: {pr.ppf_window_months:g} is beyond follow_up.max_months "
                        f"({p.follow_up.max_months:g})")
    return problems


def _covariate_problems(a: Analysis) -> list[str]:
    """Each covariate and time interaction must be a registered covariate; interactions must be covariates."""
    problems: list[str] = []
    known = registered_covariates()
    listed: dict[str, int] = {}
    for i, c in enumerate(a.covariates):
        if c not in known:
            problems.append(f"analysis.covariates[{i}]: {c!r} is not a known covariate; known: {', '.join(known)}")
        elif c in listed:
            problems.append(f"analysis.covariates[{i}]: {c!r} is listed already")
        listed.setdefault(c, i)
    terms: dict[str, str] = {}
    for i, c in enumerate(a.covariates):
        if c in known:
            t = known[c].term
            if t in terms and terms[t] != c:
                problems.append(f"analysis.covariates[{i}]: {c!r} is the same model column ({t}) as {terms[t]!r}")
            terms.setdefault(t, c)
    seen: set[str] = set()
    for i, c in enumerate(a.time_interactions):
        if c not in listed:
            problems.append(f"analysis.time_interactions[{i}]: {c!r} is not one of analysis.covariates "
                            f"({', '.join(a.covariates) or 'none'})")
        elif c in seen:
            problems.append(f"analysis.time_interactions[{i}]: {c!r} is listed already")
        seen.add(c)
    return problems


_TYPE_WORDS = {"int_type": "a whole number", "bool_type": "true or false", "float_type": "a number",
               "string_type": "text in quotes", "int_from_float": "a whole number"}


def _toml_value(v: Any) -> str:
    """A value as TOML would write it, for messages (``true``, ``"60"``, ``1.5``)."""
    try:
        return tomli_w.dumps({"v": v}).strip().removeprefix("v = ")
    except (TypeError, ValueError):
        return repr(v)


def parse_protocol(text: str, source: str = "protocol") -> Protocol:
    """Parse TOML text into a :class:`Protocol`; raise :class:`ProtocolError` naming each bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{source}: not valid TOML: {exc}") from None
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        lines = []
        errors = exc.errors()
        # a list whose bad item was dropped is then "too short": noise next to the item's own error
        errors = [e for e in errors if not (e["type"] == "too_short" and any(
            o is not e and o["loc"][:len(e["loc"])] == e["loc"] for o in errors))]
        for e in errors:
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            if e["type"] == "missing":
                msg = "required key is missing"
            if e["type"] in _TYPE_WORDS:
                msg = f"must be {_TYPE_WORDS[e['type']]}, got {_toml_value(e.get('input'))}"
            msg = msg.removeprefix("Value error, ")
            if key:
                lines.append(f"{source}: {key}: {msg}")
            else:  # cross-field rules: each line names its own key
                lines += [f"{source}: {line}" for line in msg.splitlines()]
        raise ProtocolError("\n".join(lines)) from None
    for sa in protocol.sensitivity:  # derive every variant now: a bad one is an error naming its entry
        try:
            protocol.sensitivity_protocol(sa.name)
        except ProtocolError as exc:
            raise ProtocolError(f"{source}: {exc}") from None
    return protocol


def builtin_protocol_text(name: str) -> str:
    if name not in BUILTIN:
        raise ProtocolError(f"unknown built-in protocol '{name}'; built-in: {', '.join(BUILTIN)}")
    return resources.files("ildstudy.protocols").joinpath(f"{name}.toml").read_text(encoding="utf-8")


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a built-in protocol by name (``"huapaya2019"``) or a TOML file by path.

    Every sensitivity analysis is derived once (:func:`parse_protocol`), so a bad one is an error at load time."""
    s = str(name_or_path)
    if s in BUILTIN:
        return parse_protocol(builtin_protocol_text(s), f"{s}.toml")
    path = Path(s)
    if not path.exists():
        raise ProtocolError(f"{s}: no such protocol file, and not a built-in protocol ({', '.join(BUILTIN)})")
    return parse_protocol(path.read_text(encoding="utf-8"), path.name)
