"""Registries of outcomes and covariates (issue 16 item 2, issue 15 item 2): covariates by name, covariate x
time terms, clear errors for unknown names, and a toy outcome registered from this test file only."""

from __future__ import annotations

import datetime as dt

import pytest

from ildstudy.analysis.study import table1_variables
from ildstudy.analysis.trajectories import model_frame, outcome_formula
from ildstudy.cohort import build_cohort
from ildstudy.errors import ProtocolError
from ildstudy.protocol import builtin_protocol_text, parse_protocol
from ildstudy.variables import OutcomeSpec, covariates, register_outcome, unregister_outcome

INDEX = dt.date(2015, 1, 1)
COVS = 'covariates = ["sex", "age", "antisynthetase", "smoking"]'


def iso(n: int) -> str:
    return (INDEX + dt.timedelta(days=n)).isoformat()


def with_covariates(covs: str, interactions: str = "time_interactions = []"):
    text = builtin_protocol_text("huapaya2019")
    assert COVS in text and "time_interactions = []" in text
    return text.replace(COVS, covs).replace("time_interactions = []", interactions)


def test_unknown_covariate_names_its_key_and_the_known_names():
    with pytest.raises(ProtocolError) as exc:
        parse_protocol(with_covariates('covariates = ["sex", "centre"]'), "p.toml")
    msg = str(exc.value)
    assert "p.toml: analysis.covariates[1]: 'centre' is not a known covariate; known: sex, age," in msg
    assert "baseline_fvc_pct_pred" in msg and "disease_duration_years" in msg


def test_time_interaction_must_be_a_covariate():
    with pytest.raises(ProtocolError, match=r"analysis.time_interactions\[0\]: 'height_cm' is not one of"):
        parse_protocol(with_covariates('covariates = ["sex"]', 'time_interactions = ["height_cm"]'))


def test_unregistered_outcome_is_refused():
    text = builtin_protocol_text("huapaya2019").replace('name = "dlco_pct_pred"', 'name = "fev1_l"')
    with pytest.raises(ProtocolError, match=r"outcomes\[1\].name: 'fev1_l' is not a registered outcome; known: "
                                            r"fvc_pct_pred, dlco_pct_pred, prednisone_mg"):
        parse_protocol(text)


def _registry(b):
    for i, (pid, dx, drug) in enumerate([("a", "DM", "Imuran"), ("b", "PM", "CellCept"), ("c", "ASyS", "Imuran")]):
        b.patient(pid, diagnosis=dx, ild_diagnosis_date=iso(-365 * (i + 1)), height_cm=160.0 + i)
        b.med(pid, drug, iso(0))
        b.pft(pid, iso(0), 60.0 + i, 45.0).pft(pid, iso(180), 62.0 + i, 46.0)
    return b.build()


def test_covariates_by_name_in_the_model_frame_formula_and_table1(registry_builder):
    p = parse_protocol(with_covariates(
        'covariates = ["sex", "baseline_fvc_pct_pred", "diagnosis", "disease_duration_years", "height_cm"]',
        'time_interactions = ["baseline_fvc_pct_pred"]'))
    cohort = build_cohort(_registry(registry_builder), p)
    fvc = next(o for o in p.outcomes if o.name == "fvc_pct_pred")
    assert outcome_formula(fvc, p) == ("fvc_pct_pred ~ months * arm + female + baseline_fvc_pct_pred + diagnosis + "
                                       "disease_duration_years + height_cm + months:baseline_fvc_pct_pred + "
                                       "(1 + months | patient)")
    frame = model_frame(cohort.patients, cohort.outcomes, "fvc_pct_pred", p.analysis.covariates)
    first = frame.drop_duplicates("patient").set_index("patient")
    assert first["female"].tolist() == [1.0, 1.0, 1.0]
    assert first["baseline_fvc_pct_pred"].tolist() == [60.0, 61.0, 62.0]
    assert first["diagnosis"].tolist() == ["DM", "PM", "ASyS"]
    # index 2015-01-01, ILD diagnosed 365, 730, 1095 days before: / 365.25
    assert first["disease_duration_years"].tolist() == pytest.approx([365 / 365.25, 730 / 365.25, 1095 / 365.25])
    assert first["height_cm"].tolist() == [160.0, 161.0, 162.0]
    rows = [v.name for v in table1_variables(p)]
    assert rows[-3:] == ["disease_duration_years", "height_cm", "follow_up_months"]
    assert rows.count("fvc_pct_pred") == 1 and "baseline_fvc_pct_pred" not in rows   # shown once, as before


def test_default_covariates_keep_their_model_terms():
    p = parse_protocol(builtin_protocol_text("huapaya2019"))
    fvc = p.outcomes[0]
    assert outcome_formula(fvc, p) == ("fvc_pct_pred ~ months * arm + female + age + antisynthetase + ever_smoker + "
                                       "(1 + months | patient)")
    assert {"sex", "age", "antisynthetase", "smoking", "race_ethnicity", "height_cm", "calendar_era",
            "index_year", "baseline_prednisone_mg", "baseline_dlco_pct_pred"} <= set(covariates())


@pytest.fixture
def toy_outcome():
    spec = register_outcome(OutcomeSpec("fev1_l", "FEV1, litres", "pft", "fev1_l", "L"))
    try:
        yield spec
    finally:
        unregister_outcome("fev1_l")


def test_a_toy_outcome_registered_here_builds_a_cohort(registry_builder, toy_outcome):
    text = builtin_protocol_text("huapaya2019")
    toy = '[[outcomes]]\nname = "fev1_l"\nlabel = "FEV1"\nsource = "pft"\n\n[analysis]'
    p = parse_protocol(text.replace("[analysis]", toy, 1))
    assert [o.name for o in p.outcomes][-1] == "fev1_l"
    b = registry_builder
    b.patient("a").med("a", "Imuran", iso(0))
    for day, fvc, fev1 in ((-5, 60.0, 2.1), (100, 61.0, None), (200, 62.0, 2.4)):
        b.rows["pft"].append(dict(patient_id="a", test_date=iso(day), fvc_pct_pred=fvc, fev1_l=fev1))
    cohort = build_cohort(b.build(), p)
    rows = cohort.outcomes.query("outcome == 'fev1_l'")
    assert rows[["months", "value"]].values.tolist() == [[0.0, 2.1], [pytest.approx(200 / 30.4375), 2.4]]
    # in protocol order (no DLCO values in this registry)
    assert cohort.outcomes["outcome"].unique().tolist() == ["fvc_pct_pred", "prednisone_mg", "fev1_l"]
