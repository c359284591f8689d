"""Draft a mapping profile from a folder of a centre's files, for the user to check and complete.

Each file is matched to the canonical table whose column names it resembles most (English and German
synonyms, ignoring case and punctuation); values are sampled to guess date forms (ISO, day-first,
month-first, Excel serial), units (mL vs L, fraction vs %, m vs cm, g/L vs g/dL), decimal commas,
free-text doses and value maps. Nothing is decided silently: every guess that needs a look is listed in
the draft as a ``# CHECK`` comment and returned as a note -- in particular date columns whose day and month
could be either way round (``03/04/2019`` with no day above 12), and codes whose meaning cannot be known
(sex ``1``/``2``: the draft maps them to ``"?"`` so the import fails until they are filled in).

>>> text, notes = infer_profile("examples/profile/export")        # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tomli_w

from ildstudy.data.profiles.sources import SourceTable, read_source
from ildstudy.data.profiles.values import read_dose
from ildstudy.data.schema import TABLES, TABLES_BY_NAME

SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "patients": {"patient_id": ("patientid", "patid", "patnr", "patientnr", "pid", "id", "mrn", "recordid"),
                 "sex": ("sex", "gender", "geschlecht"),
                 "birth_date": ("birthdate", "dob", "dateofbirth", "geburtsdatum", "gebdat", "geburtstag"),
                 "diagnosis": ("diagnosis", "diagnose", "dx"),
                 "ild": ("ild", "ilddiagnosis", "lungenbeteiligung", "ipf"),
                 "ild_diagnosis_date": ("ilddiagnosisdate", "ilddate", "ilddiagnosedatum", "ilddatum"),
                 "smoking_status": ("smokingstatus", "smoking", "smoker", "raucher", "rauchen", "nikotin"),
                 "race_ethnicity": ("raceethnicity", "race", "ethnicity", "herkunft", "ethnie"),
                 "height_cm": ("heightcm", "height", "groesse", "grosse", "koerpergroesse", "groessem", "groessecm")},
    "antibodies": {"patient_id": ("patientid", "patid", "patnr", "pid", "id", "mrn"),
                   "antibody": ("antibody", "antikoerper", "antikorper", "ak", "test"),
                   "result": ("result", "befund", "ergebnis"),
                   "test_date": ("testdate", "date", "datum", "befunddatum")},
    "medications": {"patient_id": ("patientid", "patid", "patnr", "pid", "id", "mrn"),
                    "drug": ("drug", "medication", "medikament", "praeparat", "wirkstoff", "substanz"),
                    "start_date": ("startdate", "start", "beginn", "von", "startdatum"),
                    "stop_date": ("stopdate", "stop", "end", "ende", "bis", "enddatum"),
                    "daily_dose_mg": ("dailydosemg", "dose", "dosis", "dosierung", "dosemg", "tagesdosis"),
                    "stop_reason": ("stopreason", "absetzgrund", "grund", "reasonstopped")},
    "pft": {"patient_id": ("patientid", "patid", "patnr", "pid", "id", "mrn"),
            "test_date": ("testdate", "pftdate", "untersuchungsdatum", "datum", "date"),
            "fvc_pct_pred": ("fvcpctpred", "fvcpct", "fvcpred", "fvcprozsoll", "fvcsoll", "fvcprozent"),
            "dlco_pct_pred": ("dlcopctpred", "dlcopct", "dlcopred", "dlcosoll", "dlcosollanteil", "dlcoprozsoll"),
            "fvc_l": ("fvcl", "fvc", "fvcml", "fvcliter"), "fev1_l": ("fev1l", "fev1", "fev1ml"),
            "dlco": ("dlco", "tlco", "dlcoabs"), "dlco_unit": ("dlcounit", "dlcoeinheit", "einheit"),
            "hemoglobin_g_dl": ("hemoglobingdl", "hb", "hgb", "haemoglobin", "hemoglobin", "hbgl", "hbgdl")},
    "adverse_events": {"patient_id": ("patientid", "patid", "patnr", "pid", "id", "mrn"),
                       "event_date": ("eventdate", "aedate", "date", "datum", "ereignisdatum"),
                       "category": ("category", "kategorie", "aecategory", "art", "type"),
                       "drug": ("drug", "medikament", "suspecteddrug", "praeparat"),
                       "serious": ("serious", "schwerwiegend", "sae"),
                       "led_to_discontinuation": ("ledtodiscontinuation", "discontinued", "therapieabbruch",
                                                  "abbruch")},
}
KNOWN_WORDS = {"männlich": "M", "maennlich": "M", "weiblich": "F", "m": "M", "w": "F", "f": "F", "male": "M",
               "female": "F", "ja": "true", "nein": "false", "positiv": "positive", "negativ": "negative",
               "nie": "never", "ehemalig": "former", "aktiv": "current", "raucher": "current",
               "nichtraucher": "never", "exraucher": "former"}
_DMY = re.compile(r"^(\d{1,2})[./\-](\d{1,2})[./\-](\d{4})$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}")
_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def _squash(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
                  .replace("ß", "ss"))


def _read(path: Path) -> tuple[SourceTable | None, str, str]:
    head = path.read_bytes() if path.suffix.lower() == ".csv" else b""
    first = head.split(b"\n", 1)[0]
    delimiter = max((";", ",", "\t", "|"), key=lambda s: first.count(s.encode())) if head else ","
    try:
        head.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "cp1252"
    source, _ = read_source(path, delimiter=delimiter, encoding=encoding)
    return source, delimiter, encoding


def _match(columns: list[str], table: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for canonical, words in SYNONYMS[table].items():
        for c in columns:
            if c not in found.values() and (_squash(c) in words or _squash(c) == _squash(canonical)):
                found[canonical] = c
                break
    return found


def infer_profile(raw_dir: str | Path) -> tuple[str, list[str]]:
    """Return (draft profile TOML text, notes for the user). The draft parses once its ``"?"`` are filled in."""
    raw_dir = Path(raw_dir)
    files = sorted(p for p in raw_dir.iterdir() if p.suffix.lower() in (".csv", ".xlsx", ".parquet")
                   and not p.name.startswith((".", "~$")))
    notes: list[str] = []
    candidates = []
    read: dict[Path, tuple] = {}
    for path in files:
        source, delimiter, encoding = _read(path)
        if source is None:
            notes.append(f"{path.name}: cannot be read; left out")
            continue
        read[path] = (source, delimiter, encoding)
        for t in TABLES:
            m = _match(list(source.frame.columns), t.name)
            required = sum(c in m for c in t.required_columns)
            candidates.append((required, len(m), t.name, path, m))
    chosen: dict[str, tuple[Path, dict[str, str]]] = {}
    used_files: set[Path] = set()
    for required, n, table, path, m in sorted(candidates, key=lambda c: (-c[0], -c[1], c[2])):
        if table in chosen or path in used_files or n < 2:
            continue
        chosen[table] = (path, m)
        used_files.add(path)
    lines = ["# Draft mapping profile written by 'ildstudy import --infer'. Check every '# CHECK' line and replace",
             "# every \"?\" before importing. Columns not matched to a canonical column are listed under 'ignore'.",
             f"name = {tomli_w.dumps({'v': raw_dir.name}).split('=', 1)[1].strip()}", ""]
    for path in files:
        if path in read and path not in used_files:
            notes.append(f"{path.name}: matches no canonical table; left out")
    for t in TABLES:
        if t.name not in chosen:
            notes.append(f"no file looks like the {t.name} table; add [tables.{t.name}] by hand")
            continue
        path, m = chosen[t.name]
        source, delimiter, encoding = read[path]
        lines += _table_lines(t.name, path.name, source, m, delimiter, encoding, notes)
    return "\n".join(lines) + "\n", notes


def _v(value) -> str:
    """``value`` as an inline TOML value (lists and tables on one line)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_v(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_v(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _table_lines(table, file, source, m, delimiter, encoding, notes) -> list[str]:
    spec = TABLES_BY_NAME[table]
    frame = source.frame
    comma = any(_COMMA.match(v) for c in frame.columns for v in frame[c][:200])
    head = [f"[tables.{table}]", f"file = {_v(file)}"]
    if delimiter != ",":
        head.append(f"delimiter = {_v(delimiter)}")
    if encoding != "utf-8":
        head.append(f"encoding = {_v(encoding)}")
    if comma:
        head.append('decimal = ","')
    ignore = [c for c in frame.columns if c not in m.values()]
    if ignore:
        head.append(f"ignore = {_v(ignore)}   # CHECK: not matched to any {table} column")
        notes.append(f"{file}: columns not matched, listed under ignore: {', '.join(ignore)}")
    body = ["", f"[tables.{table}.columns]"]
    for col in spec.column_names:
        if col not in m:
            if col in spec.required_columns:
                body.append(f'{col} = "?"   # CHECK: required, no matching column found')
                notes.append(f"{file}: required column {table}.{col} not found")
            continue
        body.append(_column_line(table, spec.column(col), m[col], [v for v in frame[m[col]] if v], file, notes))
    return head + body + [""]


def _column_line(table, column, src, values, file, notes) -> str:
    sample = values[:2000]
    parts = {"from": src}
    comment = ""
    if column.kind == "date":
        fmt, comment = _date_format(sample)
        if fmt != "iso":
            parts["date"] = fmt
        if comment:
            notes.append(f"{file}: {src}: {comment.removeprefix('# CHECK: ')}")
    elif column.kind == "number":
        nums = np.array([float(v.replace(",", ".")) for v in sample if re.fullmatch(r"[+-]?\d+([.,]\d+)?", v)])
        text = [v for v in sample if not re.fullmatch(r"[+-]?\d+([.,]\d+)?", v)]
        med = float(np.median(nums)) if len(nums) else None
        if column.name == "daily_dose_mg" and text:
            parts["dose"] = True
            unread = sorted({v for v in text if read_dose(v)[1]})
            if unread:
                comment = f"# CHECK: {len(unread)} dose texts are not readable, e.g. {unread[0]!r}"
        elif med is not None:
            unit = {"fvc_l": ("mL", med > 20), "fev1_l": ("mL", med > 20), "height_cm": ("m", med < 3),
                    "fvc_pct_pred": ("fraction", med <= 1.5), "dlco_pct_pred": ("fraction", med <= 1.5),
                    "hemoglobin_g_dl": ("g/L", med > 30)}.get(column.name)
            if unit and unit[1]:
                parts["unit"] = unit[0]
                comment = f"# CHECK: values look like {unit[0]} (median {med:g})"
    elif column.kind in ("category", "bool"):
        distinct = sorted(set(sample))
        canon = column.canonical() if column.kind == "category" else {}
        ok_bool = {"true", "false", "yes", "no", "1", "0", "y", "n", "t", "f"}
        unknown = [v for v in distinct if (v.lower() not in canon if column.kind == "category"
                                           else v.lower() not in ok_bool)]
        if unknown and len(distinct) <= 20:
            parts["map"] = {v: KNOWN_WORDS.get(v.lower(), "?") for v in unknown}
            if "?" in parts["map"].values():
                allowed = ", ".join(column.categories) if column.kind == "category" else "true, false"
                comment = f"# CHECK: replace each \"?\" by one of {allowed}"
                notes.append(f"{file}: {src}: codes {', '.join(v for v, t in parts['map'].items() if t == '?')} "
                             f"need a meaning ({table}.{column.name})")
    if list(parts) == ["from"]:
        line = f"{column.name} = {_v(src)}"
    else:
        line = f"{column.name} = {{ " + ", ".join(f"{_key(k)} = {_v(v)}" for k, v in parts.items()) + " }"
    return f"{line}   {comment}" if comment else line


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _v(k)


def _date_format(values: list[str]) -> tuple[str, str]:
    if not values:
        return "iso", "# CHECK: no values to tell the date form; ISO assumed"
    if all(_ISO.match(v) for v in values):
        return "iso", ""
    if all(re.fullmatch(r"\d{5}", v) for v in values):
        return "excel-serial", "# CHECK: 5-digit numbers read as Excel date serials"
    dmy = [_DMY.match(v) for v in values]
    if all(dmy):
        first = max(int(x.group(1)) for x in dmy)
        second = max(int(x.group(2)) for x in dmy)
        if first > 12 and second <= 12:
            return "day-first", ""
        if second > 12 and first <= 12:
            return "month-first", ""
        return "day-first", ("# CHECK: ambiguous: no day above 12 in the sample, so day-first and month-first "
                             "both fit; day-first assumed")
    return "iso", "# CHECK: dates in several forms; give the format (e.g. \"%d %b %Y\")"


