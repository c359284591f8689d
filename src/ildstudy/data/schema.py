"""The canonical registry tables: their columns, types, required columns and allowed values.

One source of truth for the loader, the validator, the synthetic generator and
``docs/data-format.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["id", "text", "date", "bool", "number", "category"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a canonical table.

    ``categories`` lists the canonical spellings of a category column; input is matched
    case-insensitively and through ``aliases`` (lower-case alias -> canonical value).
    ``low``/``high`` bound a number column (inclusive); values outside are errors.
    """

    name: str
    kind: Kind
    required: bool = False
    categories: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    low: float | None = None
    high: float | None = None
    description: str = ""

    def canonical(self) -> dict[str, str]:
        """Map every accepted lower-case spelling to its canonical category."""
        table = {c.lower(): c for c in self.categories}
        table.update({a: c for a, c in self.aliases})
        return table


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A canonical table: its name (also the file stem) and columns."""

    name: str
    columns: tuple[Column, ...]
    description: str
    required: bool = True

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


DIAGNOSES = ("DM", "PM", "ASyS", "IMNM", "CADM", "overlap", "other")
ANTIBODIES = (
    "Jo-1", "PL-7", "PL-12", "EJ", "OJ", "KS", "Zo", "Ha", "MDA5", "TIF1-γ", "NXP2", "SRP",
    "HMGCR", "Ro52", "PM-Scl", "U1RNP", "Ku", "Mi-2", "SAE",
)
ANTISYNTHETASE = ("Jo-1", "PL-7", "PL-12", "EJ", "OJ", "KS", "Zo", "Ha")
AE_CATEGORIES = (
    "cytopenia", "hepatotoxicity", "gi_intolerance", "infection", "rash", "pancreatitis",
    "malignancy", "other",
)
STOP_REASONS = ("adverse_event", "inefficacy", "remission", "other", "unknown")

PATIENTS = TableSpec(
    "patients",
    (
        Column("patient_id", "id", True, description="unique patient identifier (text)"),
        Column("sex", "category", True, ("F", "M"), (("female", "F"), ("male", "M")), description="F or M"),
        Column("birth_date", "date", True, description="date of birth"),
        Column("diagnosis", "category", True, DIAGNOSES,
               (("dermatomyositis", "DM"), ("polymyositis", "PM"), ("antisynthetase syndrome", "ASyS")),
               description="myositis diagnosis"),
        Column("ild", "bool", True, description="interstitial lung disease present"),
        Column("ild_diagnosis_date", "date", description="date ILD was diagnosed"),
        Column("smoking_status", "category", False, ("never", "former", "current"),
               (("ex", "former"), ("ex-smoker", "former"), ("non-smoker", "never")),
               description="never, former or current"),
        Column("race_ethnicity", "text", description="free text"),
        Column("height_cm", "number", low=100, high=230, description="height in cm"),
    ),
    "one row per patient",
)

ANTIBODIES_TABLE = TableSpec(
    "antibodies",
    (
        Column("patient_id", "id", True),
        Column("antibody", "category", True, ANTIBODIES,
               (("tif1-gamma", "TIF1-γ"), ("tif1g", "TIF1-γ"), ("jo1", "Jo-1"), ("pl7", "PL-7"),
                ("pl12", "PL-12"), ("mi2", "Mi-2"), ("pmscl", "PM-Scl"))),
        Column("result", "category", True, ("positive", "negative"),
               (("pos", "positive"), ("neg", "negative"), ("+", "positive"), ("-", "negative"))),
        Column("test_date", "date"),
    ),
    "one row per antibody test",
)

MEDICATIONS = TableSpec(
    "medications",
    (
        Column("patient_id", "id", True),
        Column("drug", "text", True, description="generic or brand name, any case"),
        Column("start_date", "date", True),
        Column("stop_date", "date", description="empty = ongoing"),
        Column("daily_dose_mg", "number", low=0, description="daily dose in mg (>= 0)"),
        Column("stop_reason", "category", False, STOP_REASONS),
    ),
    "one row per prescription interval; a dose change is a new row",
)

PFT = TableSpec(
    "pft",
    (
        Column("patient_id", "id", True),
        Column("test_date", "date", True),
        Column("fvc_pct_pred", "number", low=10, high=200),
        Column("dlco_pct_pred", "number", low=5, high=200),
        Column("fvc_l", "number", low=0.1, high=10),
        Column("fev1_l", "number", low=0.1, high=10),
        Column("dlco", "number", low=0),
        Column("dlco_unit", "category", False, ("mL/min/mmHg", "mmol/min/kPa"),
               (("ml/min/mmhg", "mL/min/mmHg"), ("mmol/min/kpa", "mmol/min/kPa"))),
        Column("hemoglobin_g_dl", "number", low=3, high=25),
    ),
    "one row per pulmonary function test",
)

ADVERSE_EVENTS = TableSpec(
    "adverse_events",
    (
        Column("patient_id", "id", True),
        Column("event_date", "date", True),
        Column("category", "category", True, AE_CATEGORIES),
        Column("drug", "text"),
        Column("serious", "bool"),
        Column("led_to_discontinuation", "bool"),
    ),
    "one row per adverse event",
)

TABLES: tuple[TableSpec, ...] = (PATIENTS, ANTIBODIES_TABLE, MEDICATIONS, PFT, ADVERSE_EVENTS)
TABLES_BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}
FILE_SUFFIXES = (".csv", ".parquet", ".xlsx")
