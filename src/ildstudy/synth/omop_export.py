"""Write a canonical registry as an OMOP CDM v5.4 in one DuckDB file, with the minimal vocabulary it needs.

Used by ``ildstudy synth --format omop`` (``cdm.duckdb``) and ``--format omop-csv`` (one ``<table>.csv`` per
table, :func:`write_cdm_csv`). Tables: person, observation_period,
condition_occurrence, drug_exposure, measurement, observation, death (empty), concept, concept_ancestor. The
vocabulary holds every concept the data use: the verified standard ids of :mod:`ildstudy.data.omop.concepts`, and
for the others a local concept (id above 2,000,000,000) with the real vocabulary code (LOINC, SNOMED, UCUM) or an
``ildstudy`` code. A prescription written with a brand name (``Imuran``) gets a synthetic branded-drug concept,
a descendant of its ingredient in ``concept_ancestor``, so that reading it back exercises descendant expansion.
Conventions the reader relies on (``docs/inputs.md``): observation periods run from a person's first record to
the day after the last; an ongoing prescription ends at the end of observation with no ``verbatim_end_date``; the
daily dose is written in ``sig``; a record without a date (antibody test, ILD onset) is dated at the start of
observation (ILD: ``condition_status_source_value`` "onset date unknown").

>>> from ildstudy.data import load_registry                                 # doctest: +SKIP
>>> write_cdm(load_registry("registry"), "cdm.duckdb", load_protocol("huapaya2019"))   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ildstudy.data.database import sql_path_literal
from ildstudy.data.omop.concepts import INGREDIENTS, LOCAL, MEASUREMENTS, UNIT_IDS, UNITS, OmopSettings
from ildstudy.data.omop.ddl import DDL
from ildstudy.data.omop.reader import FEMALE, HISPANIC, MALE, PFT_COLUMNS, RACES
from ildstudy.reference.drugs import DrugNames

EHR = 32817  #: type concept "EHR"


class _Vocab:
    """The concept rows written, by code; local ids handed out in order."""

    def __init__(self):
        self.rows: dict[int, dict] = {}
        self.by_code: dict[str, int] = {}
        self.ancestors: list[tuple[int, int, int]] = []

    def add(self, code: str, name: str, domain: str, known: int | None = None, klass: str = "") -> int:
        if code in self.by_code:
            return self.by_code[code]
        cid = known if known is not None else LOCAL + 1 + sum(1 for c in self.rows if c > LOCAL)
        voc, concept_code = code.split(":", 1)
        self.rows[cid] = {"concept_id": cid, "concept_name": name, "domain_id": domain, "vocabulary_id": voc,
                          "concept_class_id": klass or domain, "standard_concept": "S",
                          "concept_code": concept_code, "valid_start_date": "1970-01-01",
                          "valid_end_date": "2099-12-31", "invalid_reason": None}
        self.by_code[code] = cid
        self.ancestors.append((cid, cid, 0))
        return cid


def _vocabulary(settings: OmopSettings) -> _Vocab:
    v = _Vocab()
    for name, cid in INGREDIENTS.items():
        v.add(f"RxNorm:{name}", name, "Drug", cid, "Ingredient")  # RxNorm codes are not checked here: name as code
    for column, (code, cid) in MEASUREMENTS.items():
        v.add(code, column, "Measurement", cid, "Lab Test")
    for column, units in UNITS.items():
        for code in units:
            v.add(code, code.split(":", 1)[1], "Unit", UNIT_IDS.get(code))
    for code, known, name in (("Gender:F", FEMALE, "FEMALE"), ("Gender:M", MALE, "MALE"),
                              ("Ethnicity:Hispanic", HISPANIC, "Hispanic or Latino"),
                              ("Meas Value:Positive", settings.positive[0], "Positive"),
                              ("Meas Value:Negative", settings.negative[0], "Negative"),
                              ("Meas Value:Yes", settings.yes[0], "Yes"), ("Meas Value:No", settings.no[0], "No"),
                              ("Type Concept:EHR", EHR, "EHR")):
        v.add(code, name, code.split(":")[0], known)
    for cid, race in RACES.items():
        v.add(f"Race:{race}", race, "Race", cid)
    sets = [(f"diagnosis {k}", cs, "Condition") for k, cs in settings.diagnoses.items()]
    sets += [("interstitial lung disease", settings.ild, "Condition")]
    sets += [(f"smoking {k}", cs, "Observation") for k, cs in settings.smoking.items()]
    sets += [(f"antibody {k}", cs, "Measurement") for k, cs in settings.antibodies.items()]
    sets += [(f"adverse event {k}", cs, "Condition") for k, cs in settings.adverse_events.items()]
    sets += [(n, getattr(settings, n), "Observation") for n in ("ae_suspected_drug", "ae_serious",
                                                                 "ae_led_to_discontinuation")]
    for name, cs, domain in sets:
        for code in cs.codes:
            v.add(code, name, domain)
    return v


def _brand(v: _Vocab, generic: str) -> int:
    """The synthetic branded-drug concept of ``generic``, a descendant of its ingredient."""
    code = f"ildstudy:branded {generic}"
    if code not in v.by_code:
        cid = v.add(code, f"{generic} [branded, synthetic]", "Drug", klass="Branded Drug")
        v.ancestors.append((INGREDIENTS[generic], cid, 1))
    return v.by_code[code]


def cdm_tables(registry, protocol, settings: OmopSettings | None = None) -> dict[str, pd.DataFrame]:
    """The CDM tables (DataFrames, DDL column names) of a typed canonical ``registry``."""
    s = settings or OmopSettings()
    v = _vocabulary(s)
    names = DrugNames.from_protocol(protocol)
    t = registry.tables
    pts = t["patients"].reset_index(drop=True)
    person_of = {p: i + 1 for i, p in enumerate(pts["patient_id"])}
    dates = [pts[["patient_id", "birth_date"]].rename(columns={"birth_date": "d"}).iloc[0:0]]
    for name, cols in (("antibodies", ("test_date",)), ("medications", ("start_date", "stop_date")),
                       ("pft", ("test_date",)), ("adverse_events", ("event_date",)),
                       ("patients", ("ild_diagnosis_date",))):
        for c in cols:
            dates.append(t[name][["patient_id", c]].rename(columns={c: "d"}))
    d = pd.concat(dates).dropna()
    first, last = d.groupby("patient_id")["d"].min(), d.groupby("patient_id")["d"].max()
    start = pts["patient_id"].map(first).fillna(pts["birth_date"])
    end = pts["patient_id"].map(last).fillna(start) + pd.Timedelta(days=1)
    start_of, end_of = dict(zip(pts["patient_id"], start)), dict(zip(pts["patient_id"], end))
    out = {"person": pd.DataFrame({
        "person_id": range(1, len(pts) + 1),
        "gender_concept_id": pts["sex"].map({"F": FEMALE, "M": MALE}).fillna(0).astype(int),
        "year_of_birth": pts["birth_date"].dt.year, "month_of_birth": pts["birth_date"].dt.month,
        "day_of_birth": pts["birth_date"].dt.day,
        "race_concept_id": pts["race_ethnicity"].map({r: c for c, r in RACES.items()}).fillna(0).astype(int),
        "ethnicity_concept_id": (pts["race_ethnicity"] == "Hispanic or Latino").map({True: HISPANIC, False: 0}),
        "person_source_value": pts["patient_id"], "race_source_value": pts["race_ethnicity"]})}
    out["observation_period"] = pd.DataFrame({"observation_period_id": range(1, len(pts) + 1),
                                              "person_id": range(1, len(pts) + 1),
                                              "observation_period_start_date": start, "observation_period_end_date": end,
                                              "period_type_concept_id": EHR})
    cond, meas, obs = [], [], []
    resolve = lambda cs: v.by_code[cs.codes[0]] if cs.codes else cs.concept_ids[0]  # noqa: E731
    for r in pts.itertuples(index=False):
        p, s0 = person_of[r.patient_id], start_of[r.patient_id]
        cond.append((p, resolve(s.diagnoses[r.diagnosis]), s0, None))
        if pd.notna(r.ild) and bool(r.ild):
            known = pd.notna(r.ild_diagnosis_date)
            cond.append((p, resolve(s.ild), r.ild_diagnosis_date if known else s0,
                         None if known else s.unknown_onset))
        if isinstance(r.smoking_status, str):
            obs.append((p, resolve(s.smoking[r.smoking_status]), s0, None, None, None))
        if pd.notna(r.height_cm):
            meas.append((p, resolve(s.measurements["height_cm"]), s0, r.height_cm, None, v.by_code["UCUM:cm"]))
    for r in t["antibodies"].itertuples(index=False):
        value = s.positive[0] if r.result == "positive" else s.negative[0]
        meas.append((person_of[r.patient_id], resolve(s.antibodies[r.antibody]),
                     r.test_date if pd.notna(r.test_date) else start_of[r.patient_id], None, value, None))
    canonical_unit = {c: next(iter(UNITS[c])) for c in PFT_COLUMNS}
    for r in t["pft"].itertuples(index=False):
        for c in PFT_COLUMNS:
            x = getattr(r, c)
            if pd.notna(x):
                unit = ({"mL/min/mmHg": "UCUM:mL/min/mm[Hg]", "mmol/min/kPa": "UCUM:mmol/min/kPa"}.get(r.dlco_unit)
                        if c == "dlco" else canonical_unit[c])
                meas.append((person_of[r.patient_id], resolve(s.measurements[c]), r.test_date, x, None,
                             v.by_code[unit] if unit else 0))
    drug_ids = {n: cs.concept_ids[0] for n, cs in s.drugs.items() if cs.concept_ids}
    rows = []
    for r in t["medications"].itertuples(index=False):
        generic = names.generic(r.drug)
        spelled = (r.drug or "").strip().lower()
        cid = 0
        if generic in drug_ids:
            cid = drug_ids[generic] if spelled == generic or generic not in INGREDIENTS else _brand(v, generic)
        stop = r.stop_date if pd.notna(r.stop_date) else None
        rows.append({"person_id": person_of[r.patient_id], "drug_concept_id": cid, "drug_exposure_start_date":
                     r.start_date, "drug_exposure_end_date": stop if stop is not None else end_of[r.patient_id],
                     "verbatim_end_date": stop, "drug_type_concept_id": EHR, "stop_reason": r.stop_reason,
                     "sig": None if pd.isna(r.daily_dose_mg) else f"{float(r.daily_dose_mg)!r} mg daily",
                     "drug_source_value": r.drug})
    out["drug_exposure"] = pd.DataFrame(rows).assign(drug_exposure_id=lambda f: range(1, len(f) + 1))
    yes_no = lambda b: s.yes[0] if b else s.no[0]  # noqa: E731
    for i, r in enumerate(t["adverse_events"].itertuples(index=False)):
        p = person_of[r.patient_id]
        cid = 10_000_000_000 + i  # apart from the diagnosis/ILD rows numbered 1..n
        cond.append((p, resolve(s.adverse_events[r.category]), r.event_date, None, cid))
        generic = names.generic(r.drug) if isinstance(r.drug, str) else None
        if generic is not None:
            obs.append((p, resolve(s.ae_suspected_drug), r.event_date, drug_ids.get(generic),
                        None if generic in drug_ids else r.drug, cid))
        for flag, cs in ((r.serious, s.ae_serious), (r.led_to_discontinuation, s.ae_led_to_discontinuation)):
            if pd.notna(flag):
                obs.append((p, resolve(cs), r.event_date, yes_no(bool(flag)), None, cid))
    c = pd.DataFrame([x if len(x) == 5 else (*x, None) for x in cond],
                     columns=["person_id", "condition_concept_id", "condition_start_date",
                              "condition_status_source_value", "condition_occurrence_id"])
    c["condition_occurrence_id"] = c["condition_occurrence_id"].fillna(pd.Series(range(1, len(c) + 1))).astype(int)
    out["condition_occurrence"] = c.assign(condition_type_concept_id=EHR)
    out["measurement"] = pd.DataFrame(meas, columns=["person_id", "measurement_concept_id", "measurement_date",
                                                     "value_as_number", "value_as_concept_id", "unit_concept_id"]
                                      ).assign(measurement_id=lambda f: range(1, len(f) + 1),
                                               measurement_type_concept_id=EHR)
    out["observation"] = pd.DataFrame(obs, columns=["person_id", "observation_concept_id", "observation_date",
                                                    "value_as_concept_id", "value_as_string", "observation_event_id"]
                                      ).assign(observation_id=lambda f: range(1, len(f) + 1),
                                               observation_type_concept_id=EHR)
    out["death"] = pd.DataFrame(columns=["person_id", "death_date"])
    out["concept"] = pd.DataFrame(list(v.rows.values()))
    out["concept_ancestor"] = pd.DataFrame([(a, d, n, n) for a, d, n in v.ancestors],
                                           columns=["ancestor_concept_id", "descendant_concept_id",
                                                    "min_levels_of_separation", "max_levels_of_separation"])
    return out


def write_cdm(registry, path: str | Path, protocol, settings: OmopSettings | None = None, con=None) -> Path:
    """Write :func:`cdm_tables` into the DuckDB file ``path`` (replaced), or into ``con`` (any DB-API connection
    with DuckDB's or PostgreSQL's SQL, e.g. a schema for the tests) when given."""
    import duckdb

    tables = cdm_tables(registry, protocol, settings)
    own = con is None
    if own:
        path = Path(path)
        if path.exists():
            path.unlink()
        con = duckdb.connect(str(path))
    try:
        for name, ddl in DDL.items():
            con.execute(f'CREATE TABLE "{name}" ({ddl})')
            frame = tables[name]
            cols = [c.split()[0] for c in ddl.split(", ")]
            frame = frame.reindex(columns=cols).astype(object).where(frame.reindex(columns=cols).notna(), None)
            con.register("_cdm_frame", frame)
            con.execute(f'INSERT INTO "{name}" SELECT * FROM _cdm_frame')
            con.unregister("_cdm_frame")
    finally:
        if own:
            con.close()
    return Path(path)


def write_cdm_csv(registry, folder: str | Path, protocol, settings: OmopSettings | None = None) -> list[Path]:
    """:func:`cdm_tables` as one CSV file per table in ``folder`` (header row, ISO dates, empty cells for
    missing values, rows in the tables' order): what ``--omop FOLDER`` reads."""
    import duckdb

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with duckdb.connect(":memory:") as con:
        write_cdm(registry, folder, protocol, settings, con=con)
        for name in DDL:
            path = folder / f"{name}.csv"
            con.execute(f'COPY (SELECT * FROM "{name}") TO {sql_path_literal(path)} (HEADER, DELIMITER \',\')')
            written.append(path)
    return written
