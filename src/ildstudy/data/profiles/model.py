"""The mapping profile: how a centre's own export (or a REDCap project) maps onto the canonical tables.

A profile is a TOML file, validated all at once into frozen pydantic objects (unknown keys and bad
values are errors naming the key) and written back by :meth:`Profile.to_toml` (a test proves the round
trip). See ``docs/inputs.md`` for worked examples.

>>> profile = parse_profile('''
... [tables.patients]
... file = "pat.csv"
... [tables.patients.columns]
... patient_id = "ID"
... sex = { from = "Geschlecht", map = { "1" = "M", "2" = "F" } }
... birth_date = { from = "GebDat", date = "day-first" }
... diagnosis = "Diagnose"
... ild = { value = "true" }
... ''', require_all_tables=False)
>>> profile.tables["patients"].columns["sex"].map["2"]
'F'
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ildstudy.data.schema import TABLES, TABLES_BY_NAME
from ildstudy.errors import DataError, Problem

DateFormat = str
"""``"iso"``, ``"day-first"``, ``"month-first"``, ``"excel-serial"`` or a strptime format such as
``"%d.%m.%Y"``."""
NAMED_DATE_FORMATS = ("iso", "day-first", "month-first", "excel-serial")

Unit = Literal["L", "mL", "percent", "fraction", "cm", "m", "mm", "mg", "g", "g/dL", "g/L"]

#: the canonical unit of each number column that a profile may convert, and the units it accepts
CANONICAL_UNITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fvc_l": ("L", ("L", "mL")),
    "fev1_l": ("L", ("L", "mL")),
    "fvc_pct_pred": ("percent", ("percent", "fraction")),
    "dlco_pct_pred": ("percent", ("percent", "fraction")),
    "height_cm": ("cm", ("cm", "m", "mm")),
    "daily_dose_mg": ("mg", ("mg", "g")),
    "hemoglobin_g_dl": ("g/dL", ("g/dL", "g/L")),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnMap(_Frozen):
    """Where one canonical column comes from, and how its values are read.

    Exactly one of ``source`` (a column of the centre's file; in TOML ``from``) and ``value`` (the same
    value for every row) is given. ``map`` replaces values (matched ignoring case and surrounding
    spaces; values not in the map are kept and checked as usual). ``date`` says how a date column is
    written, ``unit`` in which unit a number column is written, ``dose`` that the column is free text
    such as ``"5 mg bid"`` (read as mg/day). ``choice`` reads a REDCap checkbox option (``field___1``)
    as true/false.
    """

    source: str | None = Field(default=None, alias="from")
    value: str | None = None
    map: dict[str, str] = Field(default_factory=dict)
    date: DateFormat | None = None
    unit: Unit | None = None
    dose: bool = False
    choice: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "ColumnMap":
        if (self.source is None) == (self.value is None):
            raise ValueError("give exactly one of 'from' (a column of the file) and 'value' (a constant)")
        if self.date is not None and self.date not in NAMED_DATE_FORMATS and "%" not in self.date:
            raise ValueError(f"date must be one of {', '.join(NAMED_DATE_FORMATS)} or a strptime format "
                             f"such as '%d.%m.%Y', got {self.date!r}")
        return self

    def is_plain(self) -> bool:
        return self.value is None and not (self.map or self.date or self.unit or self.dose or self.choice)


class TableMap(_Frozen):
    """One canonical table: the file (or REDCap instrument) it comes from and its columns.

    ``columns`` maps canonical column name -> :class:`ColumnMap` (a bare string is the source column).
    ``ignore`` lists source columns known to hold nothing for this table (they are not reported as
    unmapped). ``delimiter``, ``encoding`` and ``decimal`` describe a CSV file (German exports often use
    ``;``, ``cp1252`` and ``,``).
    """

    file: str | None = None
    instrument: str | None = None
    event: str | None = None
    sheet: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal: Literal[".", ","] = "."
    columns: dict[str, ColumnMap]
    ignore: tuple[str, ...] = ()

    @field_validator("columns", mode="before")
    @classmethod
    def _strings_are_sources(cls, v):
        if isinstance(v, dict):
            return {k: ({"from": c} if isinstance(c, str) else c) for k, c in v.items()}
        return v

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1:
            raise ValueError(f"delimiter must be one character, got {v!r}")
        return v


class RedcapSource(_Frozen):
    """A REDCap project: its "export records" CSV (raw codes or labels) and its data dictionary CSV."""

    records: str
    dictionary: str
    export: Literal["raw", "labels"] = "raw"


class Profile(_Frozen):
    """A whole mapping profile (see the module docstring and ``docs/inputs.md``)."""

    name: str = ""
    description: str = ""
    redcap: RedcapSource | None = None
    tables: dict[str, TableMap]

    @model_validator(mode="after")
    def _check_tables(self) -> "Profile":
        for name, table in self.tables.items():
            if name not in TABLES_BY_NAME:
                raise ValueError(f"tables.{name}: not a canonical table (tables are {', '.join(TABLES_BY_NAME)})")
            spec = TABLES_BY_NAME[name]
            where = "instrument" if self.redcap is not None else "file"
            if getattr(table, where) is None:
                raise ValueError(f"tables.{name}: '{where}' is required"
                                 + (" (this profile reads a REDCap project)" if where == "instrument" else ""))
            for col, cmap in table.columns.items():
                if col not in spec.column_names:
                    raise ValueError(f"tables.{name}.columns.{col}: not a column of {name} "
                                     f"(columns are {', '.join(spec.column_names)})")
                kind = spec.column(col).kind
                if cmap.date is not None and kind != "date":
                    raise ValueError(f"tables.{name}.columns.{col}: 'date' is only for date columns")
                if cmap.unit is not None:
                    units = CANONICAL_UNITS.get(col, (None, ()))[1]
                    if cmap.unit not in units:
                        allowed = ", ".join(units) if units else "none (this column has no unit to convert)"
                        raise ValueError(f"tables.{name}.columns.{col}: unit {cmap.unit!r} is not allowed "
                                         f"(allowed: {allowed})")
                if cmap.dose and kind != "number":
                    raise ValueError(f"tables.{name}.columns.{col}: 'dose' is only for number columns")
            missing = [c for c in spec.required_columns if c not in table.columns]
            if missing:
                raise ValueError(f"tables.{name}: required column(s) not mapped: {', '.join(missing)}")
        return self

    def missing_tables(self) -> list[str]:
        """Canonical tables the profile does not map."""
        return [t.name for t in TABLES if t.name not in self.tables]

    def to_toml(self) -> str:
        """The profile as TOML (``from`` for source columns); :func:`parse_profile` reads it back equal."""
        return tomli_w.dumps(self.model_dump(mode="json", by_alias=True, exclude_defaults=True))


def parse_profile(text: str, file: str = "profile.toml", *, require_all_tables: bool = True) -> Profile:
    """Parse and validate a profile; raise :class:`DataError` naming the key of every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(Problem(file, None, None, None, f"is not valid TOML: {exc}")) from None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(Problem(file, None, key or None, None, msg))
        raise DataError(problems) from None
    if require_all_tables and profile.missing_tables():
        raise DataError(Problem(file, None, "tables", None,
                                f"does not map the table(s) {', '.join(profile.missing_tables())} "
                                "(every canonical table is needed)"))
    return profile


def load_profile(path: str | Path) -> Profile:
    """Read a profile TOML file (see :func:`parse_profile`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(Problem(str(path), None, None, None, "profile file does not exist")) from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DataError(Problem(str(path), None, None, None, f"cannot be read as a TOML profile: {exc}")) from None
    return parse_profile(text, path.name)
