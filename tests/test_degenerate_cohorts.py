"""Issue 17 item 4: empty and degenerate cohorts stop with a CohortError (attrition attached, the step that
emptied the cohort named) or a ModelError naming the outcome -- never a report of nothing or a TypeError.

Registries are built by hand (``registry_builder``): every patient is DM with ILD, starts its arm drug on
2012-01-10, has a baseline PFT five days before and three follow-up PFTs, so it passes every cohort step unless
a test removes something. The expected counts follow from that construction.
"""

from __future__ import annotations

import numpy as np
import pytest

from ildstudy.analysis.study import run_study
from ildstudy.cli import run
from ildstudy.errors import CohortError, ModelError
from ildstudy.protocol import builtin_protocol_text, parse_protocol
from ildstudy.synth import write_registry

FOLLOW_UP_PFTS = ("2012-07-01", "2013-01-15", "2014-02-01")


def add_patients(b, arm: str, n: int, rng, *, baseline: bool = True, steroid: bool = True,
                 smoking: str | None = "random", antisynthetase_is_female: bool = False):
    drug = {"AZA": "Imuran", "MMF": "CellCept"}[arm]
    for i in range(n):
        pid = f"{arm}{i:03d}"
        sex = str(rng.choice(["F", "M"]))
        smoke = str(rng.choice(["never", "former"])) if smoking == "random" else smoking
        b.patient(pid, sex=sex, birth_date=f"19{int(rng.integers(40, 80))}-03-01", smoking_status=smoke)
        if (sex == "F") if antisynthetase_is_female else rng.random() < 0.4:
            b.antibody(pid, "Jo-1")
        b.med(pid, drug, "2012-01-10")
        if steroid:
            b.med(pid, "prednisone", "2011-12-01", "2013-06-01", dose=float(rng.integers(5, 40)))
        if baseline:
            b.pft(pid, "2012-01-05", 60 + rng.normal(0, 10), 45 + rng.normal(0, 10))
        for day in FOLLOW_UP_PFTS:
            b.pft(pid, day, 60 + rng.normal(0, 10), 44 + rng.normal(0, 10))
    return b


def protocol(min_patients: int | None = None, *pairs: tuple[str, str]):
    text = builtin_protocol_text("huapaya2019")
    if min_patients is not None:
        pairs = (("min_patients_per_arm = 10", f"min_patients_per_arm = {min_patients}"), *pairs)
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return parse_protocol(text)


def cohort_error(p, registry, steps=None) -> CohortError:
    with pytest.raises(CohortError) as exc:
        run_study(p, registry, on_step=None if steps is None else steps.append)
    return exc.value


def identity_row(err: CohortError):
    att = err.attrition
    assert att is not None and att["step"].iloc[0] == "registry" and att["step"].iloc[-1] == "cohort"
    return att.iloc[-1]


def test_empty_cohort_names_the_step_that_emptied_it(registry_builder):
    rng = np.random.default_rng(1)
    b = add_patients(add_patients(registry_builder, "AZA", 12, rng), "MMF", 12, rng)
    err = cohort_error(protocol(None, ('diagnoses = ["DM", "PM", "ASyS", "IMNM", "CADM", "overlap"]',
                                       'diagnoses = ["PM"]')), b.build())
    assert err.step == "population"
    assert "the cohort is empty after step 'population' (not myositis with ILD): no remaining patients" in str(err)
    last = identity_row(err)
    assert last["remaining"] == 0 and last["excluded"] == 24   # all 24 built patients are DM


def test_empty_registry(registry_builder):
    err = cohort_error(protocol(), registry_builder.build())
    assert err.step == "registry" and "the registry has no patients" in str(err)
    assert identity_row(err)["remaining"] == 0


def test_one_arm_never_exposed(registry_builder):
    # issue 17: one empty arm wrote a full report, then exited 1 with a TypeError
    b = add_patients(registry_builder, "AZA", 12, np.random.default_rng(2))
    steps: list[str] = []
    err = cohort_error(protocol(), b.build(), steps)
    assert err.step == "arm_drug"
    assert "arm MMF is empty after step 'arm_drug' (never exposed to an arm drug)" in str(err)
    last = identity_row(err)
    assert last["remaining_AZA"] == 12 and last["remaining_MMF"] == 0
    assert not any(s.startswith(("Table 1", "Mixed model")) for s in steps)


def test_one_arm_emptied_by_a_later_step(registry_builder):
    rng = np.random.default_rng(3)
    b = add_patients(add_patients(registry_builder, "AZA", 12, rng), "MMF", 5, rng, baseline=False)
    err = cohort_error(protocol(), b.build())
    assert err.step == "baseline_pft"
    assert "arm MMF is empty after step 'baseline_pft' (no baseline PFT)" in str(err)
    att = err.attrition.set_index("step")
    assert att.loc["other_agents", "remaining_MMF"] == 5 and att.loc["baseline_pft", "remaining_MMF"] == 0


def test_an_arm_below_the_minimum_refuses_the_models(registry_builder):
    rng = np.random.default_rng(4)
    b = add_patients(add_patients(registry_builder, "AZA", 12, rng), "MMF", 3, rng)
    steps: list[str] = []
    err = cohort_error(protocol(), b.build(), steps)
    assert "arm MMF has 3 patients: fewer than analysis.min_patients_per_arm = 10" in str(err)
    assert "lower analysis.min_patients_per_arm" in str(err)
    assert err.step == "arm_drug"   # the arm never had 10 patients
    assert identity_row(err)["remaining_MMF"] == 3
    assert not any(s.startswith("Mixed model") for s in steps)


def test_an_arm_falling_below_the_minimum_names_the_step(registry_builder):
    rng = np.random.default_rng(5)
    b = add_patients(add_patients(registry_builder, "AZA", 12, rng), "MMF", 6, rng)
    for i in range(6, 12):   # six more MMF patients, all without a baseline PFT
        pid = f"MMF{i:03d}"
        b.patient(pid).med(pid, "CellCept", "2012-01-10").pft(pid, "2013-01-15", 60, 45)
    err = cohort_error(protocol(), b.build())
    assert err.step == "baseline_pft" and "the arm had 6 left after step 'baseline_pft'" in str(err)


def test_the_issue_3_patient_cohort_is_refused_with_the_attrition(registry_builder):
    # issue 17: a 3-patient cohort gave "no rows left after dropping rows..." or "collinear", no attrition
    rng = np.random.default_rng(6)
    b = add_patients(add_patients(registry_builder, "AZA", 2, rng), "MMF", 1, rng)
    err = cohort_error(protocol(), b.build())
    assert "arm AZA has 2 patients, arm MMF has 1" in str(err)
    assert identity_row(err)["remaining"] == 3


def test_a_small_allowed_cohort_runs(registry_builder):
    rng = np.random.default_rng(0)
    b = add_patients(add_patients(registry_builder, "AZA", 3, rng), "MMF", 3, rng)
    result = run_study(protocol(3), b.build())
    assert result.arms == {"AZA": 3, "MMF": 3}
    assert set(result.results["outcomes"]) == {"fvc_pct_pred", "dlco_pct_pred", "prednisone_mg"}
    # six patients cannot carry the propensity model's covariates: the confounding analyses are skipped, said why
    assert result.confounding is None
    skipped = [w for w in result.warnings if w.startswith("[confounding] skipped: propensity score:")]
    assert len(skipped) == 1 and "rank deficient" in skipped[0]
    from ildstudy.report.confounding_section import confounding_context
    assert confounding_context(result) == {"skipped": skipped}


def test_collinear_covariates_name_the_outcome(registry_builder):
    rng = np.random.default_rng(7)
    b = add_patients(registry_builder, "AZA", 12, rng, antisynthetase_is_female=True)
    add_patients(b, "MMF", 12, rng, antisynthetase_is_female=True)
    with pytest.raises(ModelError, match=r"^outcome fvc_pct_pred: .*collinear: 'antisynthetase'"):
        run_study(protocol(), b.build())


def test_a_covariate_missing_for_everyone_names_the_outcome_and_the_covariate(registry_builder):
    rng = np.random.default_rng(8)
    b = add_patients(add_patients(registry_builder, "AZA", 12, rng, smoking=None), "MMF", 12, rng, smoking=None)
    with pytest.raises(ModelError) as exc:
        run_study(protocol(), b.build())
    msg = str(exc.value)
    assert msg.startswith("outcome fvc_pct_pred: ") and "no rows left after dropping rows" in msg
    assert "covariate ever_smoker is missing for every patient" in msg


def test_a_constant_outcome_names_the_outcome(registry_builder):
    # no glucocorticoid prescriptions: every prednisone-equivalent dose is 0 mg (the LMM would fail numerically)
    rng = np.random.default_rng(9)
    b = add_patients(add_patients(registry_builder, "AZA", 12, rng, steroid=False), "MMF", 12, rng, steroid=False)
    with pytest.raises(ModelError, match=r"^outcome prednisone_mg: every measurement in the cohort is 0 "):
        run_study(protocol(), b.build())


def test_cli_run_exits_2_on_an_empty_arm(tmp_path, capsys):
    registry = tmp_path / "registry"
    write_registry(registry, n_patients=60, seed=11)
    text = builtin_protocol_text("huapaya2019")
    text = text.replace('drugs = ["azathioprine"]', 'drugs = ["newdrug"]', 1)
    text = text.replace("[drug_names]", '[drug_names]\n"newdrug" = "newdrug"')
    proto = tmp_path / "p.toml"
    proto.write_text(text, encoding="utf-8")
    assert run(["run", str(proto), str(registry), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "arm AZA is empty after step 'arm_drug'" in err
    assert "Traceback" not in err
