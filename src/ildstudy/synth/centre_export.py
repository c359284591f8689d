"""Write a registry as a messy centre export: the kind of files a hospital's own database produces.

German column names, ``;`` separators, decimal commas, Windows-1252 text, day-first dates (``23.03.1960``),
PFT dates as Excel serial numbers, sex coded 1/2, FVC and FEV1 in mL, DLCO % predicted as a fraction,
haemoglobin in g/L, height in m, German brand names (Imurek, Decortin) and free-text doses (``"7,5 mg bid"``,
``"10mg"``, ``"20 mg tgl."``, ``"15 mg weekly"``). ``examples/profile/`` is written by this module from the
synthetic registry (seed 2019); ``examples/profile/profile.toml`` reads it back to the canonical registry.

>>> from ildstudy.data import load_registry                                    # doctest: +SKIP
>>> write_centre_export(load_registry("registry"), "centre-export")           # doctest: +SKIP
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.data.profiles.values import EXCEL_EPOCH, read_dose

SEX = {"M": "1", "F": "2"}
DIAGNOSIS = {"DM": "Dermatomyositis", "PM": "Polymyositis", "ASyS": "Antisynthetase-Syndrom", "IMNM": "IMNM",
             "CADM": "CADM", "overlap": "Overlap-Myositis", "other": "Sonstige"}
SMOKING = {"never": "nie", "former": "ehemalig", "current": "aktiv"}
RESULT = {"positive": "positiv", "negative": "negativ"}
STOP = {"adverse_event": "Nebenwirkung", "inefficacy": "Wirkungslos", "remission": "Remission",
        "other": "Sonstiges", "unknown": "unbekannt"}
AE = {"cytopenia": "Zytopenie", "hepatotoxicity": "Hepatotoxizität", "gi_intolerance": "GI-Unverträglichkeit",
      "infection": "Infektion", "rash": "Exanthem", "pancreatitis": "Pankreatitis", "malignancy": "Malignom",
      "other": "Sonstige"}
BRANDS = {"azathioprine": "Imurek", "prednisone": "Decortin"}
YES_NO = {True: "ja", False: "nein"}
UTF8_FILES = ("Antikoerper.csv",)
"""Written as UTF-8 (the lab system's export; antibody names hold a Greek gamma); the rest is Windows-1252."""


def _missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v))


def _num(v, scale: float = 1.0, divide: bool = False) -> str:
    if _missing(v):
        return ""
    x = v / scale if divide else v * scale
    return f"{x:.12g}".replace(".", ",")


def _day_first(v) -> str:
    return "" if _missing(v) else v.strftime("%d.%m.%Y")


def _serial(v) -> str:
    return "" if _missing(v) else str((v.date() - EXCEL_EPOCH).days)


def _coded(v, codes: dict) -> str:
    return "" if _missing(v) else codes[v]


def dose_text(dose: float, drug: str, i: int) -> str:
    """A free-text form of ``dose`` mg/day that :func:`~ildstudy.data.profiles.values.read_dose` reads back
    exactly (the plain ``"<dose> mg"`` when a fancier form would not)."""
    if _missing(dose):
        return ""
    comma = lambda x: f"{x:.12g}".replace(".", ",")  # noqa: E731
    forms = [f"{comma(dose / 2)} mg bid", f"{comma(dose)}mg", f"{comma(dose)} mg tgl.", f"{comma(dose)} mg daily"]
    if "methotrexat" in drug.lower():
        forms = [f"{comma(dose * 7)} mg weekly"] + forms
    for text in (forms[0] if "methotrexat" in drug.lower() else forms[i % 4], f"{comma(dose)} mg"):
        if read_dose(text)[0] == dose:
            return text
    raise ValueError(f"dose {dose!r} has no text form that reads back exactly")


def centre_tables(registry) -> dict[str, tuple[list[str], list[list[str]]]]:
    """File name -> (header, rows) of the centre export of ``registry``."""
    p = registry["patients"]
    out = {"Patienten.csv": (["PatNr", "Geschlecht", "Geburtsdatum", "Diagnose", "ILD", "ILD_Diagnosedatum",
                              "Raucher", "Herkunft", "Groesse_m", "Bemerkung"],
                             [[r.patient_id, SEX[r.sex], _day_first(r.birth_date), DIAGNOSIS[r.diagnosis],
                               YES_NO[bool(r.ild)], _day_first(r.ild_diagnosis_date),
                               _coded(r.smoking_status, SMOKING), r.race_ethnicity or "",
                               _num(r.height_cm, 100, divide=True), ""] for r in p.itertuples()])}
    a = registry["antibodies"]
    out["Antikoerper.csv"] = (["PatNr", "Antikoerper", "Befund", "Datum"],
                              [[r.patient_id, r.antibody, RESULT[r.result], _day_first(r.test_date)]
                               for r in a.itertuples()])
    m = registry["medications"]
    out["Medikation.csv"] = (["PatNr", "Praeparat", "Beginn", "Ende", "Dosierung", "Absetzgrund"],
                             [[r.patient_id, BRANDS.get(r.drug, r.drug), _day_first(r.start_date),
                               _day_first(r.stop_date), dose_text(r.daily_dose_mg, r.drug, i),
                               _coded(r.stop_reason, STOP)] for i, r in enumerate(m.itertuples())])
    f = registry["pft"]
    out["Lufu.csv"] = (["PatNr", "Untersuchungsdatum", "FVC_proz_Soll", "DLCO_Soll_Anteil", "FVC_ml", "FEV1_ml",
                        "DLCO", "DLCO_Einheit", "Hb_g_l"],
                       [[r.patient_id, _serial(r.test_date), _num(r.fvc_pct_pred),
                         _num(r.dlco_pct_pred, 100, divide=True), _num(r.fvc_l, 1000), _num(r.fev1_l, 1000),
                         _num(r.dlco), r.dlco_unit or "", _num(r.hemoglobin_g_dl, 10)] for r in f.itertuples()])
    e = registry["adverse_events"]
    out["Nebenwirkungen.csv"] = (["PatNr", "Datum", "Kategorie", "Medikament", "schwerwiegend", "Therapieabbruch"],
                                 [[r.patient_id, _day_first(r.event_date), AE[r.category], r.drug or "",
                                   "" if _missing(r.serious) else YES_NO[bool(r.serious)],
                                   "" if _missing(r.led_to_discontinuation) else YES_NO[bool(r.led_to_discontinuation)]]
                                  for r in e.itertuples()])
    return out


def write_centre_export(registry, folder: str | Path) -> list[Path]:
    """Write the centre export of ``registry`` into ``folder`` (``;``-separated; Windows-1252 except :data:`UTF8_FILES`); return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (header, rows) in centre_tables(registry).items():
        path = folder / name
        encoding = "utf-8" if name in UTF8_FILES else "cp1252"
        with open(path, "w", newline="", encoding=encoding) as fh:
            w = csv.writer(fh, delimiter=";", lineterminator="\r\n")
            w.writerow(header)
            w.writerows(rows)
        paths.append(path)
    return paths


