"""``build_cohort``: run the cohort expressions on a backend and collect the analysis tables."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.cohort.attrition import attrition_table, check_accounting
from ildstudy.cohort.backend import Connection, TempTables, connect
from ildstudy.cohort.lungfunction import LungFunctionDerivation, derivation_warnings
from ildstudy.cohort.pft_store import derived_sources
from ildstudy.cohort.source import Sources
from ildstudy.cohort.steps import STEP_IDS, patient_status
from ildstudy.cohort.tables import (adverse_events_table, cohort_doses, covariate_columns, missing_dose_count,
                                    outcomes_table, patients_table)
from ildstudy.errors import DataError, Problem
from ildstudy.protocol import Protocol, load_protocol
from ildstudy.reference.drugs import DrugNames

# Column types of the returned tables: identical whatever the backend.
PATIENT_TYPES = {
    "patient_id": "str", "arm": "str", "index_date": "date", "age": "float", "sex": "str", "diagnosis": "str",
    "antisynthetase": "bool", "smoking": "str", "baseline_fvc_pct_pred": "float",
    "baseline_dlco_pct_pred": "float", "baseline_prednisone_mg": "float", "follow_up_months": "float",
    "follow_up_end": "str", "treatment_months": "float", "discontinued": "bool", "treatment_end": "str",
    "stop_reason": "str", "treatment_end_drug": "str",
}
#: ``patient_id`` and ``outcome`` become categoricals (:func:`_sorted_outcomes`), from whatever text the backend
#: returned: converting 3.4 million of each to object strings first took 0.45 s a build at 100,000 patients.
OUTCOME_TYPES = {"patient_id": "text", "outcome": "text", "months": "float", "value": "float"}
AE_TYPES = {"patient_id": "str", "months": "float", "category": "str", "drug": "str", "serious": "boolean",
            "led_to_discontinuation": "boolean"}


def patient_types() -> dict[str, str]:
    """Columns and types of the patients table: :data:`PATIENT_TYPES` (the built-in columns, in their
    order), then every other registered covariate (:mod:`ildstudy.variables`)."""
    types = dict(PATIENT_TYPES)
    for col, kind in covariate_columns():
        types.setdefault(col, kind)
    return types


#: Why follow-up ended, in the order of the censoring table (``treatment_end`` values for follow-up ended
#: by the end of treatment, as-treated; else ``follow_up_end``).
CENSORING_REASONS = ("stop", "switch", "add_on", "max_months", "data_cut")


def censoring_table(patients: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """``reason, drug, n, n_<ARM>...``: cohort patients by why their follow-up ended.

    ``reason`` is the end of treatment (``stop``, ``switch`` to the other arm's drug, ``add_on`` of an other
    agent) when it ended follow-up (as-treated), else ``max_months`` or ``data_cut``. Switch and add-on rows
    are one per drug (``drug`` = generic name; one row with ``drug`` missing and zero counts when there was
    none); other reasons have one row each, zero counts included.
    """
    by_treatment = patients["follow_up_end"] == "treatment_end"
    reason = patients["treatment_end"].where(by_treatment, patients["follow_up_end"])
    drug = patients["treatment_end_drug"].where(by_treatment & reason.isin(["switch", "add_on"]), None)
    rows = []
    for r in CENSORING_REASONS:
        hit = reason == r
        drugs = sorted(set(drug[hit].dropna())) if r in ("switch", "add_on") else []
        for d in (drugs or [None]):
            sel = hit & (drug == d) if d is not None else hit
            row = {"reason": r, "drug": d, "n": int(sel.sum())}
            row.update({f"n_{a}": int((sel & (patients["arm"] == a)).sum()) for a in arms})
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame["drug"] = frame["drug"].astype(object).where(frame["drug"].notna(), None)
    return frame


@dataclass(frozen=True)
class Cohort:
    """A built cohort: attrition, analysis tables and warnings. See :mod:`ildstudy.cohort`."""

    protocol: Protocol
    attrition: pd.DataFrame
    patients: pd.DataFrame
    outcomes: pd.DataFrame
    adverse_events: pd.DataFrame
    excluded: pd.DataFrame
    warnings: tuple[Problem, ...]
    backend: str
    censoring: pd.DataFrame | None = None
    #: How % predicted / z-scores were derived from raw values (:mod:`ildstudy.cohort.lungfunction`); None when
    #: the protocol uses the recorded values only.
    lung_function: LungFunctionDerivation | None = None

    @property
    def arm_counts(self) -> dict[str, int]:
        """Cohort patients per arm, in protocol order: ``{"AZA": 66, "MMF": 44}``."""
        counts = self.patients["arm"].value_counts()
        return {a.name: int(counts.get(a.name, 0)) for a in self.protocol.arms}

    def attrition_records(self) -> list[dict]:
        """The attrition table as ``results.json`` writes it: ``[{step, reason, excluded, remaining: {ARM: n}}]``
        (``remaining`` per arm is ``None`` before the arm is known; ``remaining_total`` is the row total)."""
        out = []
        for row in self.attrition.itertuples(index=False):
            r = row._asdict()
            out.append({"step": r["step"], "reason": r["reason"], "excluded": int(r["excluded"]),
                        "remaining": {a.name: (None if pd.isna(r[f"remaining_{a.name}"])
                                               else int(r[f"remaining_{a.name}"])) for a in self.protocol.arms},
                        "remaining_total": int(r["remaining"])})
        return out


def build_cohort(source, protocol: Protocol | str | Path = "huapaya2019") -> Cohort:
    """Build the cohort of ``protocol`` from the registry tables in ``source``. See :mod:`ildstudy.cohort`."""
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol)
    conn = connect(source)
    try:
        return _build(conn, protocol)
    finally:
        conn.close()


def _build(conn: Connection, protocol: Protocol) -> Cohort:
    con = conn.backend
    temp = TempTables(con)
    try:
        return _build_in(conn, temp, protocol)
    finally:
        temp.drop_all()


def _build_in(conn: Connection, temp: TempTables, protocol: Protocol) -> Cohort:
    con = conn.backend
    arms = [a.name for a in protocol.arms]
    # Intermediate results stay in the database as temporary tables: the run's shared ones (the same for every
    # cohort of a run with the same drug names / [lung_function]) and this cohort's own (``temp``).
    shared = conn.run_tables()
    names = DrugNames.from_protocol(protocol)
    src = shared.get("sources", _drug_names_key(names), lambda tables: _sources(con, names, tables.store))
    fetch = temp.engine.fetch  # a query's result as a pandas frame
    registry_ids = _registry_ids(fetch, src)
    warnings = list(src.drug_name_problems(con))
    src, lung = derived_sources(con, src, protocol, shared)
    if lung is not None:
        warnings += derivation_warnings(lung)
    status_expr = temp.store(patient_status(src, protocol, keep=_keep(con, temp, shared)), "status")
    doses = temp.store(cohort_doses(src, status_expr, protocol), "doses")

    status = _typed(fetch(status_expr.select("patient_id", "arm", "step")),
                    {"patient_id": "str", "arm": "str", "step": "str"})
    patients = _typed(fetch(patients_table(src, status_expr, doses, protocol)), patient_types())
    patients = _sorted(patients, ["patient_id"])
    # ordered in the database (in parallel; its string order may differ from Python's, which _order allows for)
    outcomes = outcomes_table(src, status_expr, doses, protocol).order_by(["outcome", "patient_id", "months", "value"])
    outcomes = _typed(fetch(outcomes, categorical=("patient_id", "outcome")), OUTCOME_TYPES)
    outcomes = _sorted_outcomes(outcomes, patients, protocol.cohort_outcomes())
    adverse = _typed(fetch(adverse_events_table(src, status_expr, protocol)), AE_TYPES)
    adverse = _sorted(adverse, list(AE_TYPES))

    excluded = status.loc[status["step"].notna(), ["patient_id", "step"]]
    excluded = _sorted(excluded.assign(_s=excluded["step"].map({s: i for i, s in enumerate(STEP_IDS)})),
                       ["_s", "patient_id"]).drop(columns="_s")
    attrition = attrition_table(status, arms)
    check_accounting(registry_ids, status, patients, excluded, attrition, arms)

    n_missing = con.execute(missing_dose_count(doses))
    n_missing = 0 if n_missing is None or pd.isna(n_missing) else int(n_missing)
    if n_missing:
        warnings.append(Problem("medications", None, "daily_dose_mg", None,
                                f"{n_missing} prednisone-equivalent dose evaluation(s) left missing: a "
                                "glucocorticoid prescription active that day has no daily_dose_mg",
                                severity="warning"))
    return Cohort(protocol, attrition, patients, outcomes, adverse, excluded, tuple(warnings), conn.name,
                  censoring_table(patients, arms), lung)


def _sources(con, names: DrugNames, store) -> Sources:
    """The registry tables with the drug map and the normalised medications stored in the database."""
    src = Sources.open(con, names, keep=store)
    return replace(src, medications=store(src.medications, "medications"))


#: Steps of :func:`~ildstudy.cohort.steps.patient_status` that most of a run's cohorts compute alike (the index
#: dates; the follow-up, unless a sensitivity analysis changes how it ends): stored once per run and shared.
SHARED_STEPS = ("index", "follow_up")


def _keep(con, temp: TempTables, shared):
    """How ``patient_status`` stores a step: in the run's tables for :data:`SHARED_STEPS`, keyed by the step's SQL
    (which names every table and setting it reads, so the same SQL is the same result on an unchanged registry),
    in this cohort's own otherwise."""
    def keep(expr, stem: str):
        if stem not in SHARED_STEPS:
            return temp.store(expr, stem)
        return shared.get(stem, str(con.compile(expr)), lambda tables: tables.store(expr, stem))
    return keep


def _drug_names_key(names: DrugNames) -> tuple:
    return tuple(sorted(names.spellings.items())), tuple(sorted(names.generics))


def _registry_ids(fetch, src: Sources) -> pd.Series:
    ids = fetch(src.patients.select("patient_id"))["patient_id"]
    problems = []
    if ids.isna().any():
        problems.append(Problem("patients", None, "patient_id", None,
                                f"{int(ids.isna().sum())} patient(s) without patient_id"))
    dup = ids[ids.duplicated() & ids.notna()]
    if len(dup):
        problems.append(Problem("patients", None, "patient_id", str(dup.iloc[0]),
                                f"duplicate patient_id ({dup.nunique()} id(s) appear more than once)"))
    if problems:
        raise DataError(problems)
    return ids.astype(str)


def _typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """Exactly ``types``' columns, in order, with the same dtypes whatever the backend returned."""
    out = {}
    for col, kind in types.items():
        s = frame[col]
        if kind == "str":
            out[col] = s.astype(object).where(s.notna(), None)
        elif kind == "text":  # left as the backend gave it; the caller makes it a categorical
            out[col] = s
        elif kind == "float":
            out[col] = pd.to_numeric(s, errors="raise").astype("float64")
        elif kind == "bool":
            out[col] = s.astype(bool)
        elif kind == "boolean":
            out[col] = s.astype("boolean")
        elif kind == "date":
            out[col] = pd.to_datetime(s).astype("datetime64[ns]")
        else:  # pragma: no cover - a typo in the tables above
            raise ValueError(kind)
    return pd.DataFrame(out, index=frame.index, copy=False)  # no copy into 2-D blocks: the columns are new


def _sorted_outcomes(outcomes: pd.DataFrame, patients: pd.DataFrame, names) -> pd.DataFrame:
    """The long outcome table by outcome (protocol order), patient_id, months, value; ``outcome`` a categorical
    whose categories are ``names`` (the protocol order), ``patient_id`` one whose categories are the patients
    table's ids (in its order, so a row's code is its patient's position there).

    Categoricals, because every analysis selects one outcome's rows (``outcomes["outcome"] == name``: 0.17 s a
    comparison of 3.4 million strings at 100,000 patients, forty times a run; on the codes it is 5 ms) and joins
    them to the patients (a hash lookup of every id string, or the codes), and a million-patient table of id
    strings is 1.5 GB. The patients table is already sorted by patient_id, so sorting the positions equals sorting
    the id strings (2.4 million rows at 100,000 patients: 1.2 s by string, 0.2 s so)."""
    outcome = pd.Categorical(outcomes["outcome"], categories=list(dict.fromkeys(names)))
    if (outcome.codes < 0).any():  # not expected: the cohort's table holds the protocol's outcomes only
        extra = sorted(set(outcomes["outcome"]) - set(names))
        raise AssertionError(f"outcome rows not declared by the protocol: {extra}")
    ids = pd.Index(patients["patient_id"])
    if not ids.is_unique:  # not expected: build_cohort's accounting checks the patients table
        raise AssertionError("duplicate patient ids in the cohort's patients table")
    rank = _positions(ids, outcomes["patient_id"])
    if (rank < 0).any():  # not expected: every outcome row is a cohort patient's
        raise AssertionError("outcome rows of patients outside the cohort")
    idx = _order(outcome.codes.astype(np.int64) * max(len(ids), 1) + rank,
                 outcomes["months"].to_numpy(dtype=float), outcomes["value"].to_numpy(dtype=float))
    return pd.DataFrame({"patient_id": pd.Categorical.from_codes(rank[idx], dtype=pd.CategoricalDtype(ids)),
                         "outcome": outcome.take(idx), "months": outcomes["months"].to_numpy()[idx],
                         "value": outcomes["value"].to_numpy()[idx]}, copy=False)


def _positions(ids: pd.Index, values: pd.Series) -> np.ndarray:
    """Each value's position in ``ids`` (-1 when absent or missing); from a categorical, by its categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        lookup = np.append(ids.get_indexer(values.cat.categories.astype(object)), -1)
        return lookup[codes]  # code -1 (missing) takes the last entry
    return ids.get_indexer(values)


def _order(key: np.ndarray, months: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The positions that sort rows by ``key``, then ``months``, then ``value`` (``np.lexsort``'s order).

    The cohort's query returns the rows ordered by outcome, patient_id, months, value, in the database's string
    order (a collation may differ from Python's). So each patient's rows are together and in (months, value)
    order, and a stable sort on the one integer key (timsort, fast on presorted runs) leaves them so; that is
    checked, and otherwise all the keys are sorted. At 100,000 patients (3.4 million rows): 0.03 s, against 0.5 s
    for ``np.lexsort`` (2 s on unordered rows, which is how DuckDB returns a parallel join)."""
    idx = np.argsort(key, kind="stable")
    k, m, v = key[idx], months[idx], value[idx]
    same = k[1:] == k[:-1]
    # NaN values sort last in lexsort; a pair with a NaN fails this check and so takes the full sort
    ordered = (m[1:] > m[:-1]) | ((m[1:] == m[:-1]) & (v[1:] >= v[:-1]))
    if bool(np.all(ordered | ~same)):
        return idx
    return np.lexsort((value, months, key))


def _sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by, na_position="last", kind="mergesort").reset_index(drop=True)
