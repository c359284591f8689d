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
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ildstudy.errors import ProtocolError

BUILTIN = ("huapaya2019",)
Covariate = Literal["sex", "age", "antisynthetase", "smoking"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Population(_Settings):
    diagnoses: tuple[str, ...] = Field(min_length=1)
    require_ild: bool = True


class Arm(_Settings):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    label: str = ""
    drugs: tuple[str, ...] = Field(min_length=1)

    @field_validator("drugs")
    @classmethod
    def _lower(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower() for d in v)


class Index(_Settings):
    data_cut: dt.date


class Window(_Settings):
    """Days relative to the index date, inclusive."""

    from_days: int
    to_days: int

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.to_days < self.from_days:
            raise ValueError("to_days must be >= from_days")
        return self


class OtherAgents(Window):
    drugs: tuple[str, ...]

    @field_validator("drugs")
    @classmethod
    def _lower(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower() for d in v)


class Exclusions(_Settings):
    other_agents: OtherAgents
    both_arms: Window


class FollowUp(_Settings):
    max_months: float = Field(gt=0, le=240)
    analysis: Literal["as_treated", "intention_to_treat"] = "as_treated"
    grace_days: int = Field(default=30, ge=0)


class Outcome(_Settings):
    name: Literal["fvc_pct_pred", "dlco_pct_pred", "prednisone_mg"]
    label: str = ""
    source: Literal["pft", "glucocorticoids"]
    time_model: Literal["linear", "categorical"] = "linear"
    random_effects: Literal["intercept_slope", "intercept"] = "intercept_slope"

    @model_validator(mode="after")
    def _source_fits(self) -> "Outcome":
        want = "glucocorticoids" if self.name == "prednisone_mg" else "pft"
        if self.source != want:
            raise ValueError(f"outcome {self.name} comes from source '{want}'")
        return self


class Analysis(_Settings):
    covariates: tuple[Covariate, ...] = ("sex", "age", "antisynthetase", "smoking")
    dose_months: tuple[float, ...] = Field(min_length=1)
    contrast_months: tuple[float, ...] = Field(min_length=1)
    adverse_event_test: Literal["yates", "chisq", "fisher"] = "yates"
    median_iqr: tuple[str, ...] = ()

    @field_validator("dose_months", "contrast_months")
    @classmethod
    def _sorted(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(m < 0 for m in v) or list(v) != sorted(set(v)):
            raise ValueError("months must be non-negative, increasing and distinct")
        return v


class Protocol(_Settings):
    """A complete study protocol. See ``docs/protocol.md``."""

    name: str
    title: str = ""
    reference: str = ""
    population: Population
    arms: tuple[Arm, ...] = Field(min_length=2, max_length=2)
    index: Index
    exclusions: Exclusions
    baseline: Window
    follow_up: FollowUp
    outcomes: tuple[Outcome, ...] = Field(min_length=1)
    analysis: Analysis
    glucocorticoids: dict[str, float]
    drug_names: dict[str, str] = {}

    @model_validator(mode="after")
    def _consistent(self) -> "Protocol":
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must differ")
        overlap = set(self.arms[0].drugs) & set(self.arms[1].drugs)
        if overlap:
            raise ValueError(f"drug(s) {sorted(overlap)} belong to both arms")
        if any(v <= 0 for v in self.glucocorticoids.values()):
            raise ValueError("glucocorticoids: every equivalent dose must be > 0 mg")
        if "prednisone" not in self.glucocorticoids:
            raise ValueError("glucocorticoids: must include prednisone")
        if self.analysis.contrast_months[-1] > self.follow_up.max_months:
            raise ValueError("analysis.contrast_months: beyond follow_up.max_months")
        return self

    @property
    def reference_arm(self) -> str:
        """The reference (comparator) arm: the last arm listed (contrasts are arm - reference)."""
        return self.arms[-1].name

    @property
    def treatment_arm(self) -> str:
        return self.arms[0].name

    def arm_of_drug(self) -> dict[str, str]:
        return {d: a.name for a in self.arms for d in a.drugs}

    def prednisone_factor(self) -> dict[str, float]:
        """mg prednisone per mg of each glucocorticoid."""
        base = self.glucocorticoids["prednisone"]
        return {k.lower(): base / v for k, v in self.glucocorticoids.items()}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json"))

    def sha256(self) -> str:
        return hashlib.sha256(self.to_toml().encode()).hexdigest()


def parse_protocol(text: str, source: str = "protocol") -> Protocol:
    """Parse TOML text into a :class:`Protocol`; raise :class:`ProtocolError` naming each bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            if e["type"] == "missing":
                msg = "required key is missing"
            lines.append(f"{source}: {key}: {msg}")
        raise ProtocolError("\n".join(lines)) from None


def builtin_protocol_text(name: str) -> str:
    if name not in BUILTIN:
        raise ProtocolError(f"unknown built-in protocol '{name}'; built-in: {', '.join(BUILTIN)}")
    return resources.files("ildstudy.protocols").joinpath(f"{name}.toml").read_text(encoding="utf-8")


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a built-in protocol by name (``"huapaya2019"``) or a TOML file by path."""
    s = str(name_or_path)
    if s in BUILTIN:
        return parse_protocol(builtin_protocol_text(s), f"{s}.toml")
    path = Path(s)
    if not path.exists():
        raise ProtocolError(f"{s}: no such protocol file, and not a built-in protocol ({', '.join(BUILTIN)})")
    return parse_protocol(path.read_text(encoding="utf-8"), path.name)
