"""The analysis tables (patients, outcomes, adverse events), the Cohort API and its errors."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from ildstudy.cohort import Cohort, CohortInvariantError, build_cohort
from ildstudy.cohort.attrition import attrition_table, check_accounting
from ildstudy.data.database import write_registry_to
from ildstudy.errors import DataError, IldStudyError
from ildstudy.protocol import builtin_protocol_text, parse_protocol

INDEX = dt.date(2015, 1, 1)
MONTH = 30.4375


def iso(n: int) -> str:
    return (INDEX + dt.timedelta(days=n)).isoformat()


@pytest.fixture
def registry(registry_builder):
    return build_tables_registry(registry_builder)


def build_tables_registry(b):
    """Three cohort patients with covariates, PFTs, doses and adverse events around their windows."""
    b.patient("a1", sex="M", birth_date="1965-01-01", smoking_status="former", diagnosis="ASyS")
    b.med("a1", "Imuran", iso(0), iso(400), 150, "adverse_event").med("a1", "prednisone", iso(-30), None, 20)
    b.pft("a1", iso(-10), 55.0, None).pft("a1", iso(100), 57.5, 40.0).pft("a1", iso(200), None, 42.0)
    b.pft("a1", iso(431), 70.0, 50.0)                          # after stop 400 + 30: not an outcome
    b.antibody("a1", "PL-7", "positive").antibody("a1", "Jo-1", "negative")
    b.ae("a1", iso(-1), "rash", "Imuran")                        # before index
    b.ae("a1", iso(0), "cytopenia", "IMURAN", serious=True)      # index day
    b.ae("a1", iso(430), "infection", None)                      # last day of follow-up, no drug named
    b.ae("a1", iso(431), "infection", None)                      # after follow-up
    b.ae("a1", iso(50), "gi_intolerance", "CellCept")            # drug of the other arm
    b.ae("a1", iso(60), "hepatotoxicity", "prednisone")          # not an arm drug
    b.patient("m1", sex="F", smoking_status=None).med("m1", "cellcept", iso(0), None, 2000)
    b.pft("m1", iso(0), 66.0, 55.0).pft("m1", iso(365), 68.0, None)
    b.antibody("m1", "MDA5", "positive")
    b.patient("m2", smoking_status="current").med("m2", "mycophenolic acid", iso(0))
    b.pft("m2", iso(0), 70.0, 60.0).pft("m2", iso(90), 71.0, 61.0)
    b.patient("x1", diagnosis="other")
    return b.build()


def test_patients_table(registry):
    p = build_cohort(registry).patients
    assert p["patient_id"].tolist() == ["a1", "m1", "m2"]
    assert list(p.columns) == ["patient_id", "arm", "index_date", "age", "sex", "diagnosis", "antisynthetase",
                               "smoking", "baseline_fvc_pct_pred", "baseline_dlco_pct_pred", "baseline_prednisone_mg",
                               "follow_up_months", "follow_up_end", "treatment_months", "discontinued",
                               "treatment_end", "stop_reason", "treatment_end_drug",
                               # the other registered covariates (ildstudy.variables), in registration order
                               "disease_duration_years", "index_year", "calendar_era", "ild", "smoking_status",
                               "race_ethnicity", "height_cm"]
    a1, m1, m2 = (p.iloc[i] for i in range(3))
    assert (a1["arm"], m1["arm"], m2["arm"]) == ("AZA", "MMF", "MMF")
    assert a1["index_date"] == pd.Timestamp("2015-01-01")
    assert a1["age"] == pytest.approx((dt.date(2015, 1, 1) - dt.date(1965, 1, 1)).days / 365.25)
    assert (a1["sex"], a1["diagnosis"]) == ("M", "ASyS")
    assert (a1["smoking"], m1["smoking"], m2["smoking"]) == ("ever", None, "ever")
    assert p["antisynthetase"].tolist() == [True, False, False]   # PL-7 yes; MDA5 is not antisynthetase
    assert a1["baseline_fvc_pct_pred"] == 55.0 and pd.isna(a1["baseline_dlco_pct_pred"])
    assert p["baseline_prednisone_mg"].tolist() == [20.0, 0.0, 0.0]
    assert a1["follow_up_months"] == pytest.approx(430 / MONTH) and a1["follow_up_end"] == "treatment_end"
    assert (a1["treatment_end"], a1["stop_reason"], bool(a1["discontinued"])) == ("stop", "adverse_event", True)
    assert m1["follow_up_end"] == "data_cut" and m1["treatment_end"] is None and m1["stop_reason"] is None
    assert p.dtypes.to_dict() == {
        "patient_id": object, "arm": object, "index_date": "datetime64[ns]", "age": float, "sex": object,
        "diagnosis": object, "antisynthetase": bool, "smoking": object, "baseline_fvc_pct_pred": float,
        "baseline_dlco_pct_pred": float, "baseline_prednisone_mg": float, "follow_up_months": float,
        "follow_up_end": object, "treatment_months": float, "discontinued": bool, "treatment_end": object,
        "stop_reason": object, "treatment_end_drug": object, "disease_duration_years": float,
        "index_year": float, "calendar_era": object, "ild": "boolean", "smoking_status": object,
        "race_ethnicity": object, "height_cm": float}
    assert a1["index_year"] == 2015.0 and a1["calendar_era"] == "2015-2019"
    assert pd.isna(a1["disease_duration_years"])                 # no ild_diagnosis_date in this registry


def test_outcomes_table(registry):
    o = build_cohort(registry).outcomes
    assert list(o.columns) == ["patient_id", "outcome", "months", "value"]
    a1 = o[o.patient_id == "a1"]
    assert a1.query("outcome == 'fvc_pct_pred'")[["months", "value"]].values.tolist() == [
        [0.0, 55.0], [pytest.approx(100 / MONTH), 57.5]]
    assert a1.query("outcome == 'dlco_pct_pred'")[["months", "value"]].values.tolist() == [
        [pytest.approx(100 / MONTH), 40.0], [pytest.approx(200 / MONTH), 42.0]]
    # dose months inside follow-up (430 days): 0, 3, 6, 12 (day 365)
    assert a1.query("outcome == 'prednisone_mg'")[["months", "value"]].values.tolist() == [
        [0.0, 20.0], [3.0, 20.0], [6.0, 20.0], [12.0, 20.0]]
    assert o["outcome"].drop_duplicates().tolist() == ["fvc_pct_pred", "dlco_pct_pred", "prednisone_mg"]
    assert not o["value"].isna().any()


def test_outcomes_follow_the_protocol_outcomes(registry):
    text = builtin_protocol_text("huapaya2019")
    start = text.index('[[outcomes]]\nname = "dlco_pct_pred"')
    text = text[:start] + text[text.index("[[outcomes]]", start + 5):]
    # [progression] adds the outcomes its endpoints and FVC slope read (dlco_pct_pred, fvc_l); without it, none
    o = build_cohort(registry, parse_protocol(text)).outcomes
    # (fvc_l rows exist only where the registry records FVC in litres; this fixture has none)
    assert set(o["outcome"]) == {"fvc_pct_pred", "prednisone_mg", "dlco_pct_pred"}
    assert registry.tables["pft"]["fvc_l"].isna().all()
    text = text[:text.index("[progression]")] + text[text.index("# mg of each glucocorticoid"):]
    o = build_cohort(registry, parse_protocol(text)).outcomes
    assert set(o["outcome"]) == {"fvc_pct_pred", "prednisone_mg"}


def test_adverse_events_in_window_and_of_the_arm(registry):
    ae = build_cohort(registry).adverse_events
    assert list(ae.columns) == ["patient_id", "months", "category", "drug", "serious", "led_to_discontinuation"]
    assert ae[["patient_id", "category", "drug"]].values.tolist() == [
        ["a1", "cytopenia", "azathioprine"], ["a1", "infection", None]]
    assert ae["months"].tolist() == [0.0, pytest.approx(430 / MONTH)]
    assert ae["serious"].tolist() == [True, False] and str(ae["serious"].dtype) == "boolean"


def test_sources_registry_duckdb_connection_and_file_agree(registry, tmp_path):
    from_registry = build_cohort(registry)
    con = registry.to_duckdb()
    from_connection = build_cohort(con)
    con.execute("SELECT 1")                                     # a caller's connection stays open
    path = tmp_path / "study.duckdb"
    write_registry_to(registry, str(path))
    from_file = build_cohort(path)
    from_url = build_cohort(f"duckdb://{path}")
    for other in (from_connection, from_file, from_url):
        for name in ("attrition", "patients", "outcomes", "adverse_events", "excluded"):
            pd.testing.assert_frame_equal(getattr(from_registry, name), getattr(other, name))
    # no temporary tables are left behind
    left = duckdb.connect(str(path), read_only=True).execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_ildstudy_%'").fetchone()[0]
    assert left == 0
    assert isinstance(from_file, Cohort) and from_file.backend == str(path)


def test_missing_table_and_wrong_type_are_data_errors(registry):
    con = registry.to_duckdb()
    con.execute("DROP TABLE adverse_events")
    con.execute("ALTER TABLE pft ALTER test_date TYPE VARCHAR")
    with pytest.raises(DataError) as info:
        build_cohort(con)
    text = str(info.value)
    assert "adverse_events" in text and "missing" in text and "test_date" in text and "wrong type" in text


def test_duplicate_patient_id_is_a_data_error(registry):
    con = registry.to_duckdb()
    con.execute("INSERT INTO patients SELECT * FROM patients WHERE patient_id = 'a1'")
    with pytest.raises(DataError, match="duplicate patient_id"):
        build_cohort(con)


def test_bad_sources_are_user_errors(tmp_path):
    with pytest.raises(IldStudyError, match="no such DuckDB file"):
        build_cohort(tmp_path / "nothing.duckdb")
    with pytest.raises(IldStudyError, match="unknown kind of database URL"):
        build_cohort("mysql://x@y/z")
    with pytest.raises(IldStudyError, match=r"nobody:\*\*\*@.*cannot connect"):
        build_cohort("postgresql://nobody:secret@127.0.0.1:1/nothing")


def test_accounting_check_raises_on_inconsistency():
    status = pd.DataFrame({"patient_id": ["a", "b", "c"], "arm": ["AZA", "MMF", None],
                           "step": [None, None, "arm_drug"]})
    attrition = attrition_table(status, ["AZA", "MMF"])
    patients = pd.DataFrame({"patient_id": ["a", "b"], "arm": ["AZA", "MMF"]})
    excluded = pd.DataFrame({"patient_id": ["c"], "step": ["arm_drug"]})
    ids = pd.Series(["a", "b", "c"])
    check_accounting(ids, status, patients, excluded, attrition, ["AZA", "MMF"])   # consistent: no error
    with pytest.raises(CohortInvariantError, match="both in the cohort and excluded"):
        check_accounting(ids, status, patients, pd.DataFrame({"patient_id": ["c", "a"], "step": ["x", "y"]}),
                         attrition, ["AZA", "MMF"])
    with pytest.raises(CohortInvariantError, match="neither in the cohort nor excluded"):
        check_accounting(pd.Series(["a", "b", "c", "d"]), status, patients, excluded, attrition, ["AZA", "MMF"])
