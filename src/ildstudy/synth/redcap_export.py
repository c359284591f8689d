"""Write a registry as a REDCap project: data dictionary CSV and "export records" CSVs (raw and labels).

The project is longitudinal (events ``enrolment_arm_1`` and ``follow_up_arm_1``) with one non-repeating
instrument (``demographics``, ILD as option 1 of the checkbox ``organ_involvement``) and four repeating
instruments (``antibody_test``, ``medication``, ``pft``, ``adverse_event``), as a centre would build it.
``examples/redcap/`` is written by this module from the synthetic registry (seed 2019); reading it back
with ``examples/redcap/profile.toml`` gives the canonical registry again, value for value.

>>> from ildstudy.data import load_registry                                     # doctest: +SKIP
>>> write_redcap_project(load_registry("registry"), "redcap-project")          # doctest: +SKIP
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.data.redcap import Field, data_dictionary_frame
from ildstudy.data.schema import ANTIBODIES, AE_CATEGORIES

PROJECT = "ILDMyositisRegistry"
DIAGNOSIS_LABELS = (("1", "Dermatomyositis", "DM"), ("2", "Polymyositis", "PM"),
                    ("3", "Antisynthetase syndrome", "ASyS"), ("4", "Immune-mediated necrotising myopathy", "IMNM"),
                    ("5", "Clinically amyopathic dermatomyositis", "CADM"), ("6", "Overlap myositis", "overlap"),
                    ("7", "Other", "other"))
RACE = ("White", "Black or African American", "Asian", "Hispanic or Latino", "Other")
STOP = (("1", "Adverse event", "adverse_event"), ("2", "Inefficacy", "inefficacy"), ("3", "Remission", "remission"),
        ("4", "Other", "other"), ("99", "Unknown", "unknown"))
AE_LABELS = {"cytopenia": "Cytopenia", "hepatotoxicity": "Hepatotoxicity", "gi_intolerance": "GI intolerance",
             "infection": "Infection", "rash": "Rash", "pancreatitis": "Pancreatitis", "malignancy": "Malignancy",
             "other": "Other"}


def _fields() -> list[Field]:
    num = "number"
    return [
        Field("record_id", "demographics", "text", "Record ID"),
        Field("sex", "demographics", "radio", "Sex", (("1", "Female"), ("2", "Male"))),
        Field("birth_date", "demographics", "text", "Date of birth", validation="date_dmy"),
        Field("diagnosis", "demographics", "dropdown", "Myositis diagnosis", tuple((c, lab) for c, lab, _ in
                                                                                   DIAGNOSIS_LABELS)),
        Field("organ_involvement", "demographics", "checkbox", "Organ involvement",
              (("1", "Lung (ILD)"), ("2", "Joints"), ("3", "Skin"))),
        Field("ild_date", "demographics", "text", "Date ILD diagnosed", validation="date_dmy"),
        Field("smoking", "demographics", "radio", "Smoking", (("0", "Never"), ("1", "Former"), ("2", "Current"))),
        Field("race", "demographics", "dropdown", "Race / ethnicity", tuple((str(i + 1), r) for i, r in
                                                                            enumerate(RACE))),
        Field("height", "demographics", "text", "Height (cm)", validation=num),
        Field("ab_name", "antibody_test", "dropdown", "Antibody", tuple((str(i + 1), a) for i, a in
                                                                        enumerate(ANTIBODIES))),
        Field("ab_result", "antibody_test", "radio", "Result", (("1", "Positive"), ("0", "Negative"))),
        Field("ab_date", "antibody_test", "text", "Test date", validation="date_ymd"),
        Field("med_name", "medication", "text", "Drug (as prescribed)"),
        Field("med_start", "medication", "text", "Start date", validation="date_dmy"),
        Field("med_stop", "medication", "text", "Stop date", validation="date_dmy"),
        Field("med_dose", "medication", "text", "Daily dose (mg)", validation=num),
        Field("med_stop_reason", "medication", "dropdown", "Reason stopped", tuple((c, lab) for c, lab, _ in STOP)),
        Field("pft_date", "pft", "text", "PFT date", validation="date_dmy"),
        Field("fvc_pct", "pft", "text", "FVC % predicted", validation=num),
        Field("dlco_pct", "pft", "text", "DLCO % predicted", validation=num),
        Field("fvc_l", "pft", "text", "FVC (L)", validation=num),
        Field("fev1_l", "pft", "text", "FEV1 (L)", validation=num),
        Field("dlco", "pft", "text", "DLCO", validation=num),
        Field("dlco_unit", "pft", "radio", "DLCO unit", (("1", "mL/min/mmHg"), ("2", "mmol/min/kPa"))),
        Field("hb", "pft", "text", "Haemoglobin (g/dL)", validation=num),
        Field("ae_date", "adverse_event", "text", "Event date", validation="date_dmy"),
        Field("ae_category", "adverse_event", "dropdown", "Category",
              tuple((str(i + 1), AE_LABELS[c]) for i, c in enumerate(AE_CATEGORIES))),
        Field("ae_drug", "adverse_event", "text", "Suspected drug"),
        Field("ae_serious", "adverse_event", "yesno", "Serious"),
        Field("ae_stopped", "adverse_event", "yesno", "Led to discontinuation"),
    ]


FORMS = ("demographics", "antibody_test", "medication", "pft", "adverse_event")
EVENT = {"demographics": "enrolment_arm_1", "antibody_test": "enrolment_arm_1", "medication": "follow_up_arm_1",
         "pft": "follow_up_arm_1", "adverse_event": "follow_up_arm_1"}
EVENT_LABEL = {"enrolment_arm_1": "Enrolment (Arm 1: Registry)", "follow_up_arm_1": "Follow-up (Arm 1: Registry)"}
#: canonical table -> (form, {field: canonical column})
LAYOUT = {
    "patients": ("demographics", {"sex": "sex", "birth_date": "birth_date", "diagnosis": "diagnosis",
                                  "ild_date": "ild_diagnosis_date", "smoking": "smoking_status",
                                  "race": "race_ethnicity", "height": "height_cm"}),
    "antibodies": ("antibody_test", {"ab_name": "antibody", "ab_result": "result", "ab_date": "test_date"}),
    "medications": ("medication", {"med_name": "drug", "med_start": "start_date", "med_stop": "stop_date",
                                   "med_dose": "daily_dose_mg", "med_stop_reason": "stop_reason"}),
    "pft": ("pft", {"pft_date": "test_date", "fvc_pct": "fvc_pct_pred", "dlco_pct": "dlco_pct_pred",
                    "fvc_l": "fvc_l", "fev1_l": "fev1_l", "dlco": "dlco", "dlco_unit": "dlco_unit",
                    "hb": "hemoglobin_g_dl"}),
    "adverse_events": ("adverse_event", {"ae_date": "event_date", "ae_category": "category", "ae_drug": "drug",
                                         "ae_serious": "serious", "ae_stopped": "led_to_discontinuation"}),
}


def _canonical_to_label(field: Field, value: str) -> str:
    """The choice label a canonical value is stored under."""
    if field.name == "diagnosis":
        return {c: lab for _, lab, c in DIAGNOSIS_LABELS}[value]
    if field.name == "med_stop_reason":
        return {c: lab for _, lab, c in STOP}[value]
    if field.name == "ae_category":
        return AE_LABELS[value]
    if field.name == "sex":
        return {"F": "Female", "M": "Male"}[value]
    return {"positive": "Positive", "negative": "Negative"}.get(value, value.capitalize() if field.name == "smoking"
                                                               else value)


def _text(v: object) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.12g}"
    return str(v)


def project_rows(registry, rng: np.random.Generator) -> tuple[list[Field], list[dict[str, str]], list[dict[str, str]]]:
    """(fields, raw records, labels records) for a registry, in REDCap's row order."""
    fields = _fields()
    by_name = {f.name: f for f in fields}
    rows_raw: list[dict[str, str]] = []
    rows_lab: list[dict[str, str]] = []
    groups = {t: dict(tuple(registry[t].groupby("patient_id", sort=False))) for t in LAYOUT if t != "patients"}
    patients = registry["patients"]
    for _, p in patients.iterrows():
        pid = p["patient_id"]
        for table, (form, columns) in LAYOUT.items():
            frame = p.to_frame().T if table == "patients" else groups[table].get(pid)
            if frame is None:
                continue
            for instance, (_, r) in enumerate(frame.iterrows(), start=1):
                raw = {"record_id": pid, "redcap_event_name": EVENT[form],
                       "redcap_repeat_instrument": "" if form == "demographics" else form,
                       "redcap_repeat_instance": "" if form == "demographics" else str(instance)}
                lab = {**raw, "redcap_event_name": EVENT_LABEL[EVENT[form]],
                       "redcap_repeat_instrument": "" if form == "demographics" else form.replace("_", " ").title()}
                for name, canonical in columns.items():
                    f = by_name[name]
                    v = _text(r[canonical])
                    if f.type in ("radio", "dropdown") and v:
                        label = _canonical_to_label(f, v)
                        raw[name] = next(c for c, lab_ in f.choices if lab_ == label)
                        lab[name] = label
                    elif f.type == "yesno" and v:
                        raw[name], lab[name] = v, "Yes" if v == "1" else "No"
                    else:
                        raw[name] = lab[name] = v
                if form == "demographics":
                    organs = [bool(r["ild"]), bool(rng.random() < 0.3), bool(rng.random() < 0.6)]
                    for (code, _), on in zip(by_name["organ_involvement"].choices, organs):
                        raw[f"organ_involvement___{code}"] = "1" if on else "0"
                        lab[f"organ_involvement___{code}"] = "Checked" if on else "Unchecked"
                raw[f"{form}_complete"] = "2"
                lab[f"{form}_complete"] = "Complete"
                rows_raw.append(raw)
                rows_lab.append(lab)
    return fields, rows_raw, rows_lab


def _columns(fields: list[Field]) -> list[str]:
    cols = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    for form in FORMS:
        for f in fields:
            if f.form == form and f.name != "record_id":
                cols += [f"{f.name}___{c}" for c, _ in f.choices] if f.type == "checkbox" else [f.name]
        cols.append(f"{form}_complete")
    return cols


def write_redcap_project(registry, folder: str | Path, *, seed: int = 2019) -> list[Path]:
    """Write ``<PROJECT>_DataDictionary.csv``, ``<PROJECT>_DATA.csv`` (raw) and ``<PROJECT>_DATA_LABELS.csv``.

    ``seed`` draws the two checkbox options (joints, skin) that the canonical registry does not hold.
    Returns the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fields, raw, lab = project_rows(registry, np.random.default_rng(seed))
    cols = _columns(fields)
    paths = [folder / f"{PROJECT}_DataDictionary.csv", folder / f"{PROJECT}_DATA.csv",
             folder / f"{PROJECT}_DATA_LABELS.csv"]
    data_dictionary_frame(fields).to_csv(paths[0], index=False, lineterminator="\n")
    for path, rows in ((paths[1], raw), (paths[2], lab)):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, restval="", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    return paths
