"""REDCap projects: the "export records" CSV (raw codes or labels) read with its data dictionary CSV.

The records file has one row per record, event and repeat instance (``redcap_event_name``,
``redcap_repeat_instrument``, ``redcap_repeat_instance``); checkbox fields are one column per choice
(``field___1``). The data dictionary gives each field's instrument (``Form Name``), type, choices and
validation. This module turns one instrument into a :class:`~ildstudy.data.profiles.sources.SourceTable`
of text cells -- choices decoded to their labels, yes/no and true/false to ``true``/``false``, checkboxes to
``true``/``false``, dates and datetimes to ``YYYY-MM-DD``, ``number_comma_decimal`` to a decimal point --
which a profile then maps to a canonical table (:mod:`ildstudy.data.profiles.apply`).

A "labels" export may also use field labels as column headers; they are translated back to field names
through the dictionary (checkbox headers ``Label (choice=Choice label)``).

>>> from ildstudy.data.profiles import load_profile, read_with_profile    # doctest: +SKIP
>>> registry, problems = read_with_profile(load_profile("examples/redcap/profile.toml"),
...                                        "examples/redcap")            # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ildstudy.data.profiles.sources import SourceTable, read_source
from ildstudy.errors import Problem

BOOKKEEPING = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance", "redcap_data_access_group")
_LABEL_HEADERS = {"eventname": "redcap_event_name", "repeatinstrument": "redcap_repeat_instrument",
                  "repeatinstance": "redcap_repeat_instance", "dataaccessgroup": "redcap_data_access_group"}
DICTIONARY_COLUMNS = {"variablefieldname": "name", "formname": "form", "fieldtype": "type", "fieldlabel": "label",
                      "choicescalculationsorsliderlabels": "choices",
                      "textvalidationtypeorshowslidernumber": "validation"}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the data dictionary; ``choices`` maps raw code -> label (radio, dropdown, checkbox)."""

    name: str
    form: str
    type: str
    label: str
    choices: tuple[tuple[str, str], ...] = ()
    validation: str = ""

    def choice_label(self, code: str) -> str | None:
        return dict(self.choices).get(code)


def _squash(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower())


def parse_choices(text: str) -> tuple[tuple[str, str], ...]:
    """``"1, Female | 2, Male"`` -> ``(("1", "Female"), ("2", "Male"))``."""
    out = []
    for part in text.split("|"):
        if "," in part:
            code, label = part.split(",", 1)
            out.append((code.strip(), label.strip()))
    return tuple(out)


def read_dictionary(path: Path) -> tuple[dict[str, Field], list[Problem]]:
    """Read a REDCap data dictionary CSV into ``{field name: Field}`` (in dictionary order)."""
    source, problems = read_source(path)
    if source is None:
        return {}, problems
    cols = {DICTIONARY_COLUMNS[_squash(c)]: c for c in source.frame.columns if _squash(c) in DICTIONARY_COLUMNS}
    missing = [k for k in ("name", "form", "type") if k not in cols]
    if missing:
        return {}, [Problem(path.name, 1, None, None,
                            "is not a REDCap data dictionary (no 'Variable / Field Name', 'Form Name' and "
                            "'Field Type' columns)")]
    fields: dict[str, Field] = {}
    for _, r in source.frame.iterrows():
        get = lambda k: str(r[cols[k]]).strip() if k in cols else ""  # noqa: E731
        ftype = get("type").lower()
        choices = parse_choices(get("choices")) if ftype in ("radio", "dropdown", "checkbox") else ()
        if ftype == "yesno":
            choices = (("1", "Yes"), ("0", "No"))
        elif ftype == "truefalse":
            choices = (("1", "True"), ("0", "False"))
        fields[get("name")] = Field(get("name"), get("form"), ftype, get("label"), choices, get("validation").lower())
    return fields, problems


def redcap_sources(profile, raw_dir: Path) -> tuple[dict[str, SourceTable], list[Problem]]:
    """One :class:`SourceTable` per canonical table of a REDCap ``profile`` (its ``instrument`` and ``event``)."""
    spec = profile.redcap
    fields, problems = read_dictionary(raw_dir / spec.dictionary)
    if not fields:
        return {}, problems
    records, read_problems = read_source(raw_dir / spec.records)
    problems += read_problems
    if records is None:
        return {}, problems
    records, header_problems = _field_headers(records, fields)
    problems += header_problems
    record_id = next(iter(fields))
    forms = {f.form for f in fields.values()}
    out: dict[str, SourceTable] = {}
    for table, tmap in profile.tables.items():
        if tmap.instrument not in forms:
            problems.append(Problem(spec.dictionary, None, None, tmap.instrument,
                                    f"instrument of tables.{table} is not a form of the data dictionary "
                                    f"(forms are {', '.join(sorted(forms))})"))
            continue
        out[table] = instrument_table(records, fields, tmap.instrument, tmap.event, record_id, spec.export)
    return out, problems


def _field_headers(records: SourceTable, fields: dict[str, Field]) -> tuple[SourceTable, list[Problem]]:
    """Translate label headers (a labels export with label headers) back to field names."""
    columns = list(records.frame.columns)
    if next(iter(fields)) in columns:
        return records, []
    by_label: dict[str, str] = {}
    for f in fields.values():
        if f.type == "checkbox":
            for code, label in f.choices:
                by_label[_squash(f"{f.label} (choice={label})")] = f"{f.name}___{code}"
        else:
            by_label.setdefault(_squash(f.label), f.name)
    for form in {f.form for f in fields.values()}:
        by_label[_squash(f"{form.replace('_', ' ')} complete")] = f"{form}_complete"
    renamed = [by_label.get(_squash(c), _LABEL_HEADERS.get(_squash(c), c)) for c in columns]
    unknown = [c for c, r in zip(columns, renamed) if r == c]
    problems = [Problem(records.file, 1, c, None, "column header is neither a field name nor a field label of the "
                                                 "data dictionary", "warning") for c in unknown]
    frame = records.frame.copy()
    frame.columns = renamed
    return SourceTable(records.file, frame, records.rows), problems


def instrument_table(records: SourceTable, fields: dict[str, Field], form: str, event: str | None,
                     record_id: str, export: str) -> SourceTable:
    """The rows and columns of one instrument, values decoded to text (see the module docstring)."""
    frame = records.frame
    col = lambda name: frame[name] if name in frame.columns else pd.Series("", index=frame.index)  # noqa: E731
    repeat = col("redcap_repeat_instrument").astype(str)
    mine = [f for f in fields.values() if f.form == form and f.name != record_id and f.type != "descriptive"]
    columns = [record_id]
    for f in mine:
        columns += [f"{f.name}___{c}" for c, _ in f.choices] if f.type == "checkbox" else [f.name]
    columns = [c for c in columns if c in frame.columns]
    repeating = repeat.map(lambda v: _squash(v) == _squash(form)).to_numpy(bool)
    if repeating.any():
        keep = repeating
    else:
        values = frame[[c for c in columns if c != record_id]]
        keep = (repeat == "").to_numpy(bool) & (values != "").any(axis=1).to_numpy(bool)
    if event is not None and "redcap_event_name" in frame.columns:
        keep &= frame["redcap_event_name"].map(lambda v: _event_matches(v, event)).to_numpy(bool)
    sub = frame.loc[keep, columns].reset_index(drop=True).copy()
    for f in mine:
        if f.type == "checkbox":
            continue
        if f.name in sub.columns:
            sub[f.name] = [decode(f, v, export) for v in sub[f.name]]
    for f in mine:
        if f.type == "checkbox":
            for c, label in f.choices:
                name = f"{f.name}___{c}"
                if name in sub.columns:
                    sub[name] = [_checkbox_text(v, label) for v in sub[name]]
    return SourceTable(records.file, sub, records.rows[keep])


def _event_matches(value: str, event: str) -> bool:
    v, e = _squash(value), _squash(event)
    return v == e or v.startswith(_squash(re.sub(r"_arm_\d+$", "", event)))


def _checkbox_text(v: str, label: str) -> str:
    low = v.strip().lower()
    if low in ("1", "checked") or (low and low == label.lower()):
        return "true"
    if low in ("0", "unchecked", ""):
        return "false"
    return v


def decode(f: Field, v: str, export: str) -> str:
    """One cell of field ``f`` as canonical-ready text (a value that cannot be decoded is kept as written)."""
    v = v.strip()
    if v == "":
        return ""
    if f.type in ("yesno", "truefalse"):
        low = v.lower()
        if low in ("1", "yes", "true"):
            return "true"
        if low in ("0", "no", "false"):
            return "false"
        return v
    if f.type in ("radio", "dropdown"):
        if export == "raw":
            label = f.choice_label(v)
            return label if label is not None else v
        return v
    if f.validation.startswith(("date_", "datetime_")):
        m = re.match(r"^(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2})?)?$", v)
        return m.group(1) if m else v
    if f.validation == "number_comma_decimal" or f.validation.endswith("comma_decimal"):
        return v.replace(",", ".")
    return v


def data_dictionary_frame(fields: list[Field], validations: dict[str, str] | None = None) -> pd.DataFrame:
    """The dictionary CSV's columns (as REDCap writes them) for ``fields``; used to write example projects."""
    rows = []
    for f in fields:
        choices = " | ".join(f"{c}, {label}" for c, label in f.choices) if f.type in ("radio", "dropdown",
                                                                                       "checkbox") else ""
        rows.append({"Variable / Field Name": f.name, "Form Name": f.form, "Section Header": "",
                     "Field Type": f.type, "Field Label": f.label,
                     "Choices, Calculations, OR Slider Labels": choices, "Field Note": "",
                     "Text Validation Type OR Show Slider Number": f.validation,
                     "Text Validation Min": "", "Text Validation Max": "", "Identifier?": "",
                     "Branching Logic (Show field only if...)": "", "Required Field?": "",
                     "Custom Alignment": "", "Question Number (surveys only)": "", "Matrix Group Name": "",
                     "Matrix Ranking?": "", "Field Annotation": ""})
    return pd.DataFrame(rows)


__all__ = ["Field", "BOOKKEEPING", "data_dictionary_frame", "decode", "instrument_table", "parse_choices",
           "read_dictionary", "redcap_sources"]
