"""Lung function recomputed with one reference equation: % predicted and z-scores from the raw PFT values.

Centres record FVC/FEV1 in litres and DLCO in mL/min/mmHg or mmol/min/kPa, and their labs used different
equations over the years. With ``[lung_function] reference_equation`` other than ``as_recorded`` every PFT's
``fvc_pct_pred``, ``dlco_pct_pred`` (and the derived ``fvc_zscore``, ``fev1_pct_pred``, ``fev1_zscore``,
``dlco_zscore``) are recomputed here from ``fvc_l``, ``fev1_l``, ``dlco`` + ``dlco_unit`` (+ ``hemoglobin_g_dl``),
sex, age at the test (``(test_date - birth_date)`` days / 365.25, as the cohort's age) and ``patients.height_cm``
with :mod:`ildstudy.reference.lungfunction`; the recorded % predicted is then not used. ``fvc_ml`` is
``1000 fvc_l`` under any setting. With ``as_recorded`` and a ``check_equation`` the recorded % predicted are
kept, every test is recomputed with the check equation only to compare (per measure and per test year), and
the z-scores and FEV1 % predicted come from it.

Why here, in pandas, before the cohort steps: the GLI equations are spline lookup tables, not SQL, and the
cohort's baseline-PFT step must select on the recomputed FVC % (a raw-only registry has no recorded one). So
the pft table is read once (any backend), derived by :func:`derive_pft` and stored back as a temporary table
that replaces ``Sources.pft`` (:mod:`ildstudy.cohort.pft_store`, in blocks of tests on DuckDB); every cohort step
after it is unchanged SQL.

A test whose value cannot be derived is flagged, never a silent NaN: its value is missing, and
:class:`LungFunctionDerivation` counts it per measure and reason (``no_raw_value``, ``no_dlco_unit``,
``no_sex``, ``no_birth_date``, ``no_height``, ``no_ethnicity``, ``age_outside_range``, ``height_outside_range``,
``non_positive_value``); :func:`derivation_warnings` counts them (without patient ids: warnings reach the shared
outputs; :attr:`LungFunctionDerivation.examples` holds the first tests of each reason). Counts are over the whole
registry's pft table (every test of every patient). An unknown ``dlco_unit`` is a :class:`DataError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ildstudy.errors import DataError, Problem
from ildstudy.reference import lungfunction as lf
from ildstudy.reference.lungfunction.settings import ETHNICITY_GROUPS, LungFunctionSettings

#: pft columns the derivation reads (patients: sex, birth_date, height_cm, race_ethnicity)
RAW_COLUMNS = ("patient_id", "test_date", "fvc_pct_pred", "dlco_pct_pred", "fvc_l", "fev1_l", "dlco", "dlco_unit",
               "hemoglobin_g_dl")
#: columns the derivation adds to the pft table (:data:`ildstudy.variables.DERIVED_PFT_COLUMNS`)
DERIVED_COLUMNS = ("fvc_zscore", "fev1_pct_pred", "fev1_zscore", "dlco_zscore", "fvc_ml", "fev1_fvc",
                   "fev1_fvc_zscore")
#: dlco_unit (canonical spelling, data/schema.py) -> units of :func:`ildstudy.reference.lungfunction.predict`
DLCO_UNITS = {"mL/min/mmHg": "traditional", "mmol/min/kPa": "si"}
#: measure -> (raw column, recorded % column or None, % column written or None, z column written); ``fev1_fvc``
#: is the ratio ``fev1_l / fvc_l`` (computed under any setting, as ``fvc_ml``), given a z-score only
MEASURES = {"fvc": ("fvc_l", "fvc_pct_pred", "fvc_pct_pred", "fvc_zscore"),
            "fev1": ("fev1_l", None, "fev1_pct_pred", "fev1_zscore"),
            "fev1_fvc": ("fev1_fvc", None, None, "fev1_fvc_zscore"),
            "dlco": ("dlco", "dlco_pct_pred", "dlco_pct_pred", "dlco_zscore")}
#: measure -> its name for people (warnings, report)
MEASURE_LABELS = {"fvc": "FVC", "fev1": "FEV1", "fev1_fvc": "FEV1/FVC", "dlco": "DLCO"}
#: the reasons a test is flagged, in the order they are checked
REASONS = ("no_raw_value", "no_dlco_unit", "non_positive_value", "ratio_above_1_5", "no_sex", "no_birth_date",
           "no_height", "no_ethnicity", "height_outside_range", "age_outside_range")
#: the reasons that are the patient's (patients table or age at the test), not the test value's
PERSON_REASONS = ("no_sex", "no_birth_date", "no_height", "no_ethnicity", "height_outside_range",
                  "age_outside_range")
#: an FEV1/FVC ratio above this is not a ratio of one person's manoeuvres (FEV1 cannot exceed FVC by half)
MAX_RATIO = 1.5
_EXAMPLES = 3
#: a recorded and a recomputed % predicted further apart than this (points) are counted as disagreeing
AGREEMENT_POINTS = 5.0


@dataclass(frozen=True)
class LungFunctionDerivation:
    """What the derivation did.

    Attributes
    ----------
    equation, dlco_equation : the spirometry and DLCO equations (``as_recorded``: nothing recomputed).
    hb_correction : whether predicted DLCO was adjusted to haemoglobin.
    measures : DataFrame[measure, equation, n_tests, n_derived, n_flagged, n_compared, mean_recorded_minus_derived]
        per measure: tests with a raw or recorded value, derived, flagged; for FVC and DLCO the tests with both a
        recorded and a recomputed % predicted and their mean difference (recorded - recomputed, points).
    flags : DataFrame[measure, reason, n] (only reasons that occurred).
    examples : DataFrame[measure, reason, patient_id, test_date] (the first few tests of each reason).
    n_hb_uncorrected : DLCO tests derived without haemoglobin although ``hb_correction`` is on.
    check_equation : with ``as_recorded`` and ``[lung_function] check_equation``: the equation the recorded % predicted
        were checked against (they stay the study's values; only z-scores and FEV1 values come from it).
    agreement : DataFrame[measure, year, n_compared, mean_recorded_minus_derived, n_differ_over_5]
        recorded − recomputed % predicted per test year (a laboratory's change of equation shows as a step).
    """

    equation: str
    dlco_equation: str | None
    hb_correction: bool
    measures: pd.DataFrame
    flags: pd.DataFrame
    examples: pd.DataFrame
    n_hb_uncorrected: int = 0
    check_equation: str | None = None
    agreement: pd.DataFrame = field(default_factory=lambda: _agreement_rows([]))


def derive_pft(pft: pd.DataFrame, patients: pd.DataFrame,
               settings: LungFunctionSettings) -> tuple[pd.DataFrame, LungFunctionDerivation]:
    """The pft table with the derived columns, and what was derived and flagged.

    Parameters
    ----------
    pft : DataFrame with :data:`RAW_COLUMNS` (extra columns kept).
    patients : DataFrame[patient_id, sex, birth_date, height_cm, race_ethnicity].
    settings : the protocol's ``[lung_function]``.

    Raises
    ------
    DataError
        A ``dlco_unit`` that is neither mL/min/mmHg nor mmol/min/kPa (naming the pft column and value).
    """
    out = pft.reset_index(drop=True).copy()
    fvc_l = pd.to_numeric(out["fvc_l"]).astype(float)
    out["fvc_ml"] = fvc_l * 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (pd.to_numeric(out["fev1_l"]).astype(float) / fvc_l).to_numpy()
    out["fev1_fvc"] = np.where(np.isfinite(ratio) & (fvc_l.to_numpy() > 0), ratio, np.nan)
    for col in ("fvc_zscore", "fev1_pct_pred", "fev1_zscore", "dlco_zscore", "fev1_fvc_zscore"):
        out[col] = np.nan
    empty = pd.DataFrame({"measure": pd.Series(dtype=object), "reason": pd.Series(dtype=object),
                          "n": pd.Series(dtype="int64")})
    if settings.equation is None:
        return out, LungFunctionDerivation("as_recorded", None, False, _measure_rows([]), empty,
                                           empty.drop(columns="n").assign(patient_id=None, test_date=None))
    keep_recorded = settings.checks
    who = out[["patient_id"]].merge(patients.drop_duplicates("patient_id"), on="patient_id", how="left")
    test = pd.to_datetime(out["test_date"])
    test_year = test.dt.year.to_numpy()
    age = ((test - pd.to_datetime(who["birth_date"])).dt.days / 365.25).to_numpy(float)
    height = pd.to_numeric(who["height_cm"]).to_numpy(float)
    sexes = {"f": "female", "female": "female", "m": "male", "male": "male"}
    sex = _map_unique(who["sex"], lambda v: sexes.get(str(v).strip().lower()))
    person = {"no_sex": pd.isna(sex),
              "no_birth_date": np.isnan(age), "no_height": np.isnan(height),
              "height_outside_range": ~np.isnan(height) & ((height < lf.HEIGHT_RANGE_CM[0])
                                                            | (height > lf.HEIGHT_RANGE_CM[1]))}
    sex_c = np.where(person["no_sex"], "male", sex)
    age_c = np.where(np.isnan(age), 50.0, age)
    h_c = np.where(np.isnan(height) | person["height_outside_range"], 170.0, height)

    rows, flags, examples, agreement = [], [], [], []
    n_hb = 0
    for measure, (raw_col, rec_col, pct_col, z_col) in MEASURES.items():
        eq = settings.dlco_equation if measure == "dlco" else settings.equation
        raw = pd.to_numeric(out[raw_col]).to_numpy(float)
        recorded = (pd.to_numeric(out[rec_col]).to_numpy(float) if rec_col else np.full(len(out), np.nan))
        is_test = ~np.isnan(raw) | ~np.isnan(recorded)
        reasons = {"no_raw_value": np.isnan(raw), "non_positive_value": ~np.isnan(raw) & (raw <= 0), **person}
        if measure == "fev1_fvc":
            reasons["ratio_above_1_5"] = ~np.isnan(raw) & (raw > MAX_RATIO)
        kw: dict = {}
        if measure == "dlco":
            units, no_unit = _dlco_units(out["dlco_unit"])
            reasons["no_dlco_unit"] = ~np.isnan(raw) & no_unit
        groups = ETHNICITY_GROUPS.get(eq)
        if groups:
            eth = _map_unique(who["race_ethnicity"], settings.ethnicity_group)
            reasons["no_ethnicity"] = pd.isna(eth)
            kw["ethnicity"] = np.where(pd.isna(eth), groups[0], eth)
        lo, hi = lf.EQUATIONS[eq].AGE_RANGE
        reasons["age_outside_range"] = ~np.isnan(age) & ((age < lo) | (age > hi))
        # the first reason that applies, as a code (0 = none; i + 1 = REASONS[i])
        reason = np.zeros(len(out), dtype=np.int8)
        for i, r in enumerate(REASONS):
            if r in reasons:
                reason[(reason == 0) & is_test & reasons[r]] = i + 1
        ok = is_test & (reason == 0)
        pct, z = np.full(len(out), np.nan), np.full(len(out), np.nan)
        if ok.any():
            idx = np.flatnonzero(ok)
            if measure == "dlco":
                hb = (pd.to_numeric(out["hemoglobin_g_dl"]).to_numpy(float)[idx] if settings.hb_correction
                      else None)
                n_hb += int(np.isnan(hb).sum()) if hb is not None else 0
                for unit in np.unique(units[idx]):
                    sub = idx[units[idx] == unit]
                    ref = lf.predict(eq, "tlco", sex_c[sub], age_c[sub], h_c[sub], units=unit,
                                     hb_g_dl=None if hb is None else hb[np.isin(idx, sub)])
                    pct[sub], z[sub] = lf.percent_predicted(ref, raw[sub]), lf.zscore(ref, raw[sub])
            else:
                extra = {k: v[idx] for k, v in kw.items()}
                ref = lf.predict(eq, measure, sex_c[idx], age_c[idx], h_c[idx], **extra)
                pct[idx], z[idx] = lf.percent_predicted(ref, raw[idx]), lf.zscore(ref, raw[idx])
        if pct_col and not (keep_recorded and rec_col):
            out[pct_col] = pct
        out[z_col] = z
        both = ~np.isnan(recorded) & ok
        d = recorded[both] - pct[both]
        sd = float(np.std(d, ddof=1)) if len(d) > 1 else None
        rows.append({"measure": measure, "equation": eq, "n_tests": int(is_test.sum()), "n_derived": int(ok.sum()),
                     "n_flagged": int((is_test & ~ok).sum()), "n_compared": int(both.sum()) if rec_col else None,
                     "mean_recorded_minus_derived": float(d.mean()) if len(d) and rec_col else None,
                     "sd_recorded_minus_derived": sd if rec_col else None,
                     "n_differ_over_5": int((np.abs(d) > AGREEMENT_POINTS).sum()) if rec_col else None})
        if rec_col and len(d):
            years = test_year[both]
            for year in np.unique(years):
                dy = d[years == year]
                agreement.append({"measure": measure, "year": int(year), "n_compared": len(dy),
                                  "mean_recorded_minus_derived": float(dy.mean()),
                                  "n_differ_over_5": int((np.abs(dy) > AGREEMENT_POINTS).sum())})
        for i, r in enumerate(REASONS):
            hit = np.flatnonzero(reason == i + 1)
            if len(hit):
                flags.append({"measure": measure, "reason": r, "n": len(hit)})
                examples += [{"measure": measure, "reason": r, "patient_id": str(out["patient_id"].iloc[i]),
                              "test_date": str(test.iloc[i].date()) if pd.notna(test.iloc[i]) else None}
                             for i in hit[:_EXAMPLES]]
    flag_frame = pd.DataFrame(flags, columns=["measure", "reason", "n"]).astype({"n": "int64"})
    ex_frame = pd.DataFrame(examples, columns=["measure", "reason", "patient_id", "test_date"])
    return out, LungFunctionDerivation(settings.reference_equation, settings.dlco_equation, settings.hb_correction,
                                       _measure_rows(rows), flag_frame, ex_frame, n_hb,
                                       check_equation=settings.check_equation if keep_recorded else None,
                                       agreement=_agreement_rows(agreement))


def _measure_rows(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["measure", "equation", "n_tests", "n_derived", "n_flagged", "n_compared",
                                        "mean_recorded_minus_derived", "sd_recorded_minus_derived",
                                        "n_differ_over_5"])
    return frame.astype({"n_tests": "int64", "n_derived": "int64", "n_flagged": "int64", "n_compared": "Int64",
                         "mean_recorded_minus_derived": "float64", "sd_recorded_minus_derived": "float64",
                         "n_differ_over_5": "Int64"})


def _agreement_rows(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["measure", "year", "n_compared", "mean_recorded_minus_derived",
                                        "n_differ_over_5"])
    return frame.astype({"year": "int64", "n_compared": "int64", "mean_recorded_minus_derived": "float64",
                         "n_differ_over_5": "int64"})


def _dlco_units(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Units per test (``si``/``traditional``) and where the unit is missing; :class:`DataError` for an unknown
    one (a database's pft table is not validated by the loader)."""
    lookup = {k.lower(): v for k, v in DLCO_UNITS.items()}
    units = _map_unique(column, lambda t: lookup.get(str(t).strip().lower(), "?"))
    bad = np.flatnonzero(units == "?")
    if len(bad):
        raise DataError([Problem("pft", None, "dlco_unit", str(column.iloc[i]),
                                 f"unknown DLCO unit; expected one of {', '.join(DLCO_UNITS)}") for i in bad[:10]])
    return units, pd.isna(units)


def _map_unique(values: pd.Series, func) -> np.ndarray:
    """``func`` of each non-missing value (None where missing), computed once per distinct value: the pft table
    has a million rows and a handful of sexes, units and ethnicity labels."""
    codes, uniques = pd.factorize(values)
    mapped = np.array([func(u) for u in uniques] + [None], dtype=object)
    return mapped[codes]  # code -1 (missing) takes the last entry, None


def derivation_warnings(d: LungFunctionDerivation) -> list[Problem]:
    """One warning per reason: how many tests of each measure were flagged, and why (a patient without height
    flags all four measures of every test: one line, not four)."""
    out = []
    group_of = d.check_equation or d.equation
    words = {"no_raw_value": "no raw value (the recorded % predicted is not used)",
             "no_dlco_unit": "no dlco_unit",
             "non_positive_value": "raw value is 0 or negative", "no_sex": "patient has no sex",
             "no_birth_date": "patient has no birth_date", "no_height": "patient has no height_cm",
             "no_ethnicity": f"patients.race_ethnicity maps to no {group_of} group ([lung_function] ethnicity_map)",
             "height_outside_range": "height_cm outside 50-250 cm",
             "ratio_above_1_5": "fev1_l / fvc_l above 1.5 (values swapped or in other units?)",
             "age_outside_range": "age at test outside the equation's range"}
    if d.check_equation:
        words["no_raw_value"] = "no raw value"
    by_reason: dict[str, list] = {}
    for r in d.flags.itertuples(index=False):
        by_reason.setdefault(r.reason, []).append((r.measure, int(r.n)))
    for reason, items in by_reason.items():
        equations = dict.fromkeys(d.dlco_equation if m == "dlco" else group_of for m, _ in items)
        eq = " / ".join(equations)
        what = (f"not checked against {eq} (recorded % predicted kept, no z-score)" if d.check_equation
                else f"not recomputed with {eq} and left without a value")
        counts = ", ".join(f"{n} {MEASURE_LABELS[m]}" for m, n in items)
        # the raw column for a value's problem; none for the patient's (the reason names the patients column)
        column = None if reason in PERSON_REASONS else ", ".join(dict.fromkeys(
            "fev1_l" if m == "fev1_fvc" else MEASURES[m][0] for m, _ in items))
        # no patient ids or dates: warnings go into results.json and the report (the reason is a condition on
        # the user's own tables; the first tests are in the Python API's Cohort.lung_function.examples)
        out.append(Problem("pft", None, column, None, f"{counts} test(s) {what}: {words[reason]}",
                           severity="warning"))
    if d.n_hb_uncorrected:
        out.append(Problem("pft", None, "hemoglobin_g_dl", None,
                           f"{d.n_hb_uncorrected} DLCO test(s) without haemoglobin: predicted DLCO not "
                           "Hb-corrected for them", severity="warning"))
    return out


def needs_derivation(protocol) -> bool:
    """Whether the cohort must derive the pft table: an equation (reference or check), or a derived outcome."""
    from ildstudy.variables import DERIVED_PFT_COLUMNS, outcome_spec

    return protocol.lung.equation is not None or any(outcome_spec(o.name).column in DERIVED_PFT_COLUMNS
                                          for o in protocol.outcomes)
