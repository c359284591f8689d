"""Read an OMOP CDM v5.4 into the canonical registry tables, so the cohort and analyses run unchanged.

``person`` -> patients (sex from ``gender_concept_id``, birth date from ``year/month/day_of_birth``, diagnosis from
the first ``[omop.diagnoses]`` set with a condition, ILD from the ``ild`` set; smoking from ``observation``, height
from ``measurement``); ``measurement`` -> antibodies (value positive/negative) and pft (one row per person and
date, each value converted from its ``unit_concept_id``); ``drug_exposure`` -> medications (the generic name of
the concept set a drug is in, descendants included; OHDSI drug eras for every drug but the glucocorticoids, whose
exposures keep their own daily dose read from ``sig``; an exposure running to the end of the person's
``observation_period`` with no ``verbatim_end_date`` is ongoing); ``condition_occurrence`` in an adverse-event set
-> adverse_events (suspected drug, seriousness, discontinuation from linked ``observation`` rows); ``death`` and
``observation_period`` are checked. Every problem names the CDM table, the row (``person_id`` / ``*_id``) and the
column; nothing is dropped silently.

>>> registry, problems = read_omop("cdm.duckdb")       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.data.coerce import coerce_table
from ildstudy.data.omop.cdm import Cdm, open_cdm
from ildstudy.data.omop.concepts import DLCO_UNITS, UNITS, OmopSettings, Vocabulary
from ildstudy.data.omop.eras import drug_eras
from ildstudy.data.omop.origins import Origins, relocate_read
from ildstudy.data.omop.origins import at as _at
from ildstudy.data.omop.origins import text as _text
from ildstudy.data.readers import RawTable
from ildstudy.data.registry import Registry
from ildstudy.data.schema import TABLES, TABLES_BY_NAME
from ildstudy.errors import Problem

FEMALE, MALE = 8532, 8507
RACES = {8527: "White", 8516: "Black or African American", 8515: "Asian"}
HISPANIC = 38003563
PFT_COLUMNS = ("fvc_pct_pred", "dlco_pct_pred", "fvc_l", "fev1_l", "dlco", "hemoglobin_g_dl")
NOT_A_PERSON = "is not a person_id in person"


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce").dt.normalize()


def read_omop(url: str, schema: str | None = None, settings: OmopSettings | None = None
              ) -> tuple[Registry, list[Problem]]:
    """Read the CDM at ``url`` (DuckDB file or PostgreSQL URL, ``schema`` default main/public) into a
    :class:`~ildstudy.data.registry.Registry` and every problem found (errors and warnings; never raises for bad
    data, raises :class:`~ildstudy.errors.IldStudyError` when the CDM cannot be opened or a table is missing)."""
    cdm = open_cdm(url, schema)
    try:
        return _read(cdm, settings or OmopSettings())
    finally:
        cdm.close()


def _read(cdm: Cdm, s: OmopSettings) -> tuple[Registry, list[Problem]]:
    vocab = _vocabulary(cdm, s)
    ids = lambda *sets: sorted(set().union(*(vocab.resolve(cs) for cs in sets)))  # noqa: E731
    problems: list[Problem] = list(cdm.problems)
    origins = Origins()
    person = cdm.read("person", ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth",
                                 "day_of_birth", "race_concept_id", "ethnicity_concept_id"),
                      ("person_source_value", "race_source_value"))
    dup = person["person_id"].duplicated(keep=False)
    problems += [_at("person", "person_id", p, "person_id", p, "appears more than once")
                 for p in person.loc[dup, "person_id"].unique()]
    src = person["person_source_value"]
    use_source = src.notna().all() and not src.duplicated().any()
    pid = dict(zip(person["person_id"], src.astype(str) if use_source else person["person_id"].astype(str)))
    known = set(pid)

    def orphans(frame: pd.DataFrame, table: str, key: str) -> pd.DataFrame:
        bad = ~frame["person_id"].isin(known)
        for _, r in frame[bad].head(20).iterrows():
            problems.append(_at(table, key, r[key], "person_id", r["person_id"], NOT_A_PERSON))
        if bad.sum() > 20:
            problems.append(Problem(table, None, "person_id", None, f"... and {int(bad.sum()) - 20} more rows whose "
                                                                   "person_id is not in person"))
        return frame[~bad]

    period = _observation_periods(cdm, orphans, problems)
    cond = orphans(cdm.read("condition_occurrence", ("condition_occurrence_id", "person_id", "condition_concept_id",
                                                    "condition_start_date"), ("condition_status_source_value",),
                                 where=("condition_concept_id", ids(s.ild, *s.diagnoses.values(),
                                                                    *s.adverse_events.values()))),
                   "condition_occurrence", "condition_occurrence_id")
    cond["condition_start_date"] = _dates(cond["condition_start_date"])
    meas = orphans(cdm.read("measurement", ("measurement_id", "person_id", "measurement_concept_id",
                                            "measurement_date", "value_as_number", "value_as_concept_id",
                                            "unit_concept_id"), ("value_source_value",),
                            where=("measurement_concept_id", ids(*s.measurements.values(),
                                                                 *s.antibodies.values()))),
                   "measurement", "measurement_id")
    meas["measurement_date"] = _dates(meas["measurement_date"])
    obs = (orphans(cdm.read("observation", ("observation_id", "person_id", "observation_concept_id",
                                            "observation_date", "value_as_concept_id"),
                            ("value_as_string", "observation_event_id")), "observation", "observation_id")
           if cdm.has("observation") else pd.DataFrame(columns=["observation_id", "person_id",
                                                                "observation_concept_id", "observation_date",
                                                                "value_as_concept_id", "value_as_string",
                                                                "observation_event_id"]))
    obs["observation_date"] = _dates(obs["observation_date"])
    drugs = orphans(cdm.read("drug_exposure", ("drug_exposure_id", "person_id", "drug_concept_id",
                                               "drug_exposure_start_date", "drug_exposure_end_date"),
                             ("verbatim_end_date", "stop_reason", "sig"),
                             where=("drug_concept_id", ids(*s.drugs.values()))),
                     "drug_exposure", "drug_exposure_id")
    _check_death(cdm, orphans, problems)
    resolved = {name: vocab.resolve(cs) for name, cs in s.drugs.items()}
    tables = {
        "patients": _patients(person, pid, cond, obs, meas, s, vocab, origins, problems),
        "antibodies": _antibodies(meas, pid, s, vocab, origins, problems),
        "medications": _medications(drugs, pid, period, resolved, s, origins, problems),
        "pft": _pft(meas, pid, s, vocab, origins, problems),
        "adverse_events": _adverse_events(cond, obs, pid, resolved, s, vocab, origins, problems),
    }
    for name, sets in (("drugs", s.drugs), ("measurements", s.measurements)):
        for key, cs in sets.items():
            if not vocab.resolve(cs) and cs.codes and not cs.concept_ids and not vocab.present:
                problems.append(Problem(f"omop.{name}", None, key, ", ".join(cs.codes),
                                        "is given by code only and the CDM has no concept table: list its "
                                        "concept_ids in [omop]", "warning"))
    typed = {}
    seen = {(p.file, p.column) for p in problems}  # a cell already reported here is not reported again by coerce
    for spec in TABLES:
        frame = tables[spec.name]
        table, found = coerce_table(RawTable(spec, Path(f"{spec.name}.csv"), frame, 2))
        table.attrs["omop_origin"] = list(origins.rows.get(spec.name, []))
        table.attrs["omop_columns"] = dict(origins.columns.get(spec.name, {}))
        typed[spec.name] = table
        problems += [q for q in (relocate_read(p, origins) for p in found) if (q.file, q.column) not in seen]
    registry = Registry(typed, {}, tuple(p for p in problems if p.severity != "error"))
    return registry, problems


def _concept_sets(s: OmopSettings):
    for value in s.model_dump(exclude_none=True).values():
        items = value.values() if isinstance(value, dict) and "concept_ids" not in value else [value]
        for cs in items:
            if isinstance(cs, dict) and "concept_ids" in cs:
                yield cs


def _vocabulary(cdm: Cdm, s: OmopSettings) -> Vocabulary:
    """The rows of ``concept`` and ``concept_ancestor`` the settings need (codes, units, their descendants)."""
    if not cdm.has("concept"):
        return Vocabulary()
    sets = list(_concept_sets(s))
    codes = {c for cs in sets for c in cs["codes"]} | {c for units in UNITS.values() for c in units}
    concepts = cdm.read("concept", ("concept_id", "vocabulary_id", "concept_code", "concept_name"),
                        where=("concept_code", sorted({c.split(":", 1)[1] for c in codes})))
    concepts = concepts[(concepts["vocabulary_id"] + ":" + concepts["concept_code"]).isin(codes)]
    ancestors = None
    if cdm.has("concept_ancestor"):
        ids = {int(i) for cs in sets for i in cs["concept_ids"]} | {int(i) for i in concepts["concept_id"]}
        ancestors = cdm.read("concept_ancestor", ("ancestor_concept_id", "descendant_concept_id"),
                             where=("ancestor_concept_id", sorted(ids)))
    return Vocabulary(concepts, ancestors)


def _observation_periods(cdm: Cdm, orphans, problems) -> pd.Series:
    if not cdm.has("observation_period"):
        problems.append(Problem("observation_period", None, None, None, "the CDM has no observation_period table: "
                                "every exposure without an end date is an error", "warning"))
        return pd.Series(dtype="datetime64[ns]")
    op = orphans(cdm.read("observation_period", ("observation_period_id", "person_id",
                                                 "observation_period_start_date", "observation_period_end_date")),
                 "observation_period", "observation_period_id")
    start, end = _dates(op["observation_period_start_date"]), _dates(op["observation_period_end_date"])
    for _, r in op[end < start].head(20).iterrows():
        problems.append(_at("observation_period", "observation_period_id", r["observation_period_id"],
                            "observation_period_end_date", r["observation_period_end_date"],
                            "is before observation_period_start_date"))
    return end.groupby(op["person_id"]).max()


def _check_death(cdm: Cdm, orphans, problems) -> None:
    if cdm.has("death"):
        death = orphans(cdm.read("death", ("person_id", "death_date")), "death", "person_id")
        for p in death.loc[death["person_id"].duplicated(), "person_id"].unique():
            problems.append(_at("death", "person_id", p, "person_id", p, "has more than one death record"))


def _in(values: pd.Series, ids: set[int]) -> pd.Series:
    return values.isin(list(ids)) if ids else pd.Series(False, index=values.index)


def _latest(frame: pd.DataFrame, date: str) -> pd.DataFrame:
    return frame.sort_values(["person_id", date], kind="mergesort").drop_duplicates("person_id", keep="last")


def _patients(person, pid, cond, obs, meas, s, vocab, origins, problems) -> pd.DataFrame:
    rows = []
    cond_sets = [(dx, vocab.resolve(cs)) for dx, cs in s.diagnoses.items()]
    ild_ids = vocab.resolve(s.ild)
    ild = cond[_in(cond["condition_concept_id"], ild_ids)]
    known_onset = ild[ild["condition_status_source_value"].fillna("") != s.unknown_onset]
    ild_date = known_onset.groupby("person_id")["condition_start_date"].min().to_dict()
    has_ild = set(ild["person_id"])
    diagnosis: dict = {}
    for dx, ids in reversed(cond_sets):  # earlier sets win
        for p in cond.loc[_in(cond["condition_concept_id"], ids), "person_id"]:
            diagnosis[p] = dx
    smoke = []
    for status, cs in s.smoking.items():
        ids = vocab.resolve(cs)
        hit = obs[_in(obs["observation_concept_id"], ids) | _in(obs["value_as_concept_id"], ids)]
        smoke.append(hit.assign(status=status))
    smoke = _latest(pd.concat(smoke), "observation_date").set_index("person_id")["status"].to_dict()
    height = _values(meas, "height_cm", s, vocab, problems)
    height = _latest(height, "measurement_date").set_index("person_id")["value"].to_dict()
    for r in person.itertuples(index=False):
        p = r.person_id
        sex = {FEMALE: "F", MALE: "M"}.get(r.gender_concept_id)
        if sex is None:
            problems.append(_at("person", "person_id", p, "gender_concept_id", r.gender_concept_id,
                                f"is not FEMALE ({FEMALE}) or MALE ({MALE})"))
        parts = (r.year_of_birth, r.month_of_birth, r.day_of_birth)
        birth = ""
        if any(pd.isna(v) for v in parts):
            problems.append(_at("person", "person_id", p, "month_of_birth" if pd.notna(r.year_of_birth)
                                else "year_of_birth", None, "is missing: ildstudy needs the full birth date "
                                "(year, month and day of birth)"))
        else:
            birth = f"{int(parts[0]):04d}-{int(parts[1]):02d}-{int(parts[2]):02d}"
        if r.ethnicity_concept_id == HISPANIC:
            race = "Hispanic or Latino"
        else:
            race = RACES.get(r.race_concept_id, r.race_source_value if pd.notna(r.race_source_value) else "")
        rows.append({"patient_id": pid[p], "sex": sex or "", "birth_date": birth,
                     "diagnosis": diagnosis.get(p, "other"), "ild": _text(p in has_ild),
                     "ild_diagnosis_date": _text(ild_date.get(p)), "smoking_status": _text(smoke.get(p)),
                     "race_ethnicity": _text(race), "height_cm": _text(height.get(p))})
        origins.rows["patients"].append(("person", "person_id", p))
    origins.columns["patients"] = {"sex": "gender_concept_id", "birth_date": "year_of_birth"}
    return pd.DataFrame(rows, columns=TABLES_BY_NAME["patients"].column_names)


def _values(meas, column, s, vocab, problems) -> pd.DataFrame:
    """The measurements of one column's concept set, ``value`` in the canonical unit (bad units: errors)."""
    hit = meas[_in(meas["measurement_concept_id"], vocab.resolve(s.measurements[column]))].copy()
    units = {vocab.unit_id(code): (code, f) for code, f in UNITS[column].items() if vocab.unit_id(code) is not None}
    factor = hit["unit_concept_id"].map(lambda u: units.get(u, (None, np.nan))[1])
    bad = factor.isna() & hit["value_as_number"].notna()
    allowed = ", ".join(f"{uid} ({code.split(':', 1)[1]})" for uid, (code, _) in units.items()) or "none found"
    for _, r in hit[bad].head(20).iterrows():
        problems.append(_at("measurement", "measurement_id", r["measurement_id"], "unit_concept_id",
                            r["unit_concept_id"], f"is not a unit of {column} (accepted: {allowed})"))
    hit["value"] = hit["value_as_number"].astype(float) * factor
    hit["unit_code"] = hit["unit_concept_id"].map(lambda u: units.get(u, (None, 0))[0])
    return hit[~bad]


def _antibodies(meas, pid, s, vocab, origins, problems) -> pd.DataFrame:
    rows = []
    for antibody, cs in s.antibodies.items():
        hit = meas[_in(meas["measurement_concept_id"], vocab.resolve(cs))]
        for r in hit.itertuples(index=False):
            text = str(r.value_source_value or "").strip().lower()
            result = ("positive" if r.value_as_concept_id in s.positive or text == "positive" else
                      "negative" if r.value_as_concept_id in s.negative or text == "negative" else None)
            if result is None:
                problems.append(_at("measurement", "measurement_id", r.measurement_id, "value_as_concept_id",
                                    r.value_as_concept_id, f"is neither positive {s.positive} nor negative "
                                                           f"{s.negative} ({antibody} antibody)"))
                continue
            rows.append({"patient_id": pid[r.person_id], "antibody": antibody, "result": result,
                         "test_date": _text(r.measurement_date)})
            origins.rows["antibodies"].append(("measurement", "measurement_id", r.measurement_id))
    origins.columns["antibodies"] = {"test_date": "measurement_date", "result": "value_as_concept_id"}
    return pd.DataFrame(rows, columns=TABLES_BY_NAME["antibodies"].column_names)


def _pft(meas, pid, s, vocab, origins, problems) -> pd.DataFrame:
    parts = []
    for column in PFT_COLUMNS:
        v = _values(meas, column, s, vocab, problems)
        parts.append(v.assign(column=column))
    m = pd.concat(parts, ignore_index=True)
    m = m.sort_values(["person_id", "measurement_date", "measurement_id"], kind="mergesort")
    twice = m.duplicated(["person_id", "measurement_date", "column"], keep="first")
    for _, r in m[twice].head(20).iterrows():
        problems.append(_at("measurement", "measurement_id", r["measurement_id"], "measurement_date",
                            _text(r["measurement_date"]), f"is a second {r['column']} of this person on this date "
                                                          "(one value per test date)"))
    m = m[~twice]
    order = {p: i for i, p in enumerate(pid)}
    m = m.assign(_o=m["person_id"].map(order))
    rows = []
    for (_, date), g in m.groupby(["_o", "measurement_date"], sort=True):
        p = g["person_id"].iloc[0]
        row = {"patient_id": pid[p], "test_date": _text(date)}
        for r in g.itertuples(index=False):
            row[r.column] = _text(r.value)
            origins.cells[("pft", len(rows), r.column)] = r.measurement_id
            if r.column == "dlco":
                row["dlco_unit"] = DLCO_UNITS.get(r.unit_code, "")
        rows.append(row)
        origins.rows["pft"].append(("measurement", "measurement_id", int(g["measurement_id"].min())))
    origins.columns["pft"] = {c: "value_as_number" for c in PFT_COLUMNS} | {"test_date": "measurement_date"}
    return pd.DataFrame(rows, columns=TABLES_BY_NAME["pft"].column_names).fillna("")


def _medications(drugs, pid, period, resolved, s, origins, problems) -> pd.DataFrame:
    from ildstudy.data.profiles.values import read_dose

    start = _dates(drugs["drug_exposure_start_date"])
    end = _dates(drugs["drug_exposure_end_date"])
    verbatim = _dates(drugs["verbatim_end_date"])
    obs_end = drugs["person_id"].map(period) if len(period) else pd.Series(pd.NaT, index=drugs.index)
    ongoing = verbatim.isna() & obs_end.notna() & (end >= obs_end)
    stop = verbatim.where(verbatim.notna(), end.where(~ongoing))
    parts = []
    for name, ids in resolved.items():
        hit = _in(drugs["drug_concept_id"], ids)
        if hit.any():
            parts.append(pd.DataFrame({"person": drugs.loc[hit, "person_id"], "drug": name, "start": start[hit],
                                       "stop": stop[hit], "reason": drugs.loc[hit, "stop_reason"],
                                       "sig": drugs.loc[hit, "sig"], "id": drugs.loc[hit, "drug_exposure_id"]}))
    x = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["person", "drug", "start", "stop",
                                                                                 "reason", "sig", "id"])
    doses = []
    for i, sig in zip(x["id"], x["sig"]):
        dose = None
        if isinstance(sig, str) and sig.strip():
            dose, why = read_dose(sig)
            if why:
                problems.append(_at("drug_exposure", "drug_exposure_id", i, "sig", sig, why))
        doses.append(dose)
    x["dose"] = doses
    keep = x["drug"].isin(s.keep_exposures)
    eras = drug_eras(x[~keep], s.persistence_days)
    x = pd.concat([x[keep], eras], ignore_index=True)
    order = {p: i for i, p in enumerate(pid)}
    x = x.assign(_o=x["person"].map(order)).sort_values(["_o", "start", "drug"], kind="mergesort")
    origins.rows["medications"] = [("drug_exposure", "drug_exposure_id", i) for i in x["id"]]
    origins.columns["medications"] = {"start_date": "drug_exposure_start_date", "stop_date": "drug_exposure_end_date",
                                      "daily_dose_mg": "sig", "stop_reason": "stop_reason"}
    return pd.DataFrame({"patient_id": [pid[p] for p in x["person"]], "drug": x["drug"].to_numpy(),
                         "start_date": [_text(v) for v in x["start"]], "stop_date": [_text(v) for v in x["stop"]],
                         "daily_dose_mg": [_text(v) for v in x["dose"]],
                         "stop_reason": [_text(v) for v in x["reason"]]})


def _adverse_events(cond, obs, pid, resolved, s, vocab, origins, problems) -> pd.DataFrame:
    attr = obs[obs["observation_event_id"].notna()]
    drug_of = {cid: name for name, ids in resolved.items() for cid in ids}

    def linked(cs):
        a = attr[_in(attr["observation_concept_id"], vocab.resolve(cs))]
        return {int(e): r for e, r in zip(a["observation_event_id"], a.itertuples(index=False))}

    suspected, serious, led = linked(s.ae_suspected_drug), linked(s.ae_serious), linked(s.ae_led_to_discontinuation)

    def yes_no(r):
        if r is None:
            return ""
        if r.value_as_concept_id in s.yes:
            return "true"
        if r.value_as_concept_id in s.no:
            return "false"
        problems.append(_at("observation", "observation_id", r.observation_id, "value_as_concept_id",
                            r.value_as_concept_id, f"is neither yes {s.yes} nor no {s.no}"))
        return ""

    rows = []
    for category, cs in s.adverse_events.items():
        hit = cond[_in(cond["condition_concept_id"], vocab.resolve(cs))]
        for r in hit.itertuples(index=False):
            cid = int(r.condition_occurrence_id)
            d = suspected.get(cid)
            drug = "" if d is None else drug_of.get(d.value_as_concept_id, d.value_as_string or "")
            rows.append({"patient_id": r.person_id, "event_date": r.condition_start_date, "category": category,
                         "drug": drug, "serious": yes_no(serious.get(cid)),
                         "led_to_discontinuation": yes_no(led.get(cid)), "_id": cid})
    frame = pd.DataFrame(rows, columns=[*TABLES_BY_NAME["adverse_events"].column_names, "_id"])
    order = {p: i for i, p in enumerate(pid)}
    frame = frame.assign(_o=frame["patient_id"].map(order)).sort_values(["_o", "event_date", "_id"],
                                                                        kind="mergesort")
    origins.rows["adverse_events"] = [("condition_occurrence", "condition_occurrence_id", i) for i in frame["_id"]]
    origins.columns["adverse_events"] = {"event_date": "condition_start_date"}
    frame["patient_id"] = [pid[p] for p in frame["patient_id"]]
    frame["event_date"] = [_text(v) for v in frame["event_date"]]
    return frame.drop(columns=["_id", "_o"]).reset_index(drop=True)


__all__ = ["read_omop"]
