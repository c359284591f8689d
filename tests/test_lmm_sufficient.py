"""In-engine sufficient statistics (issue 13 item 2): ``fit_lmm_in_engine`` on an Ibis table (DuckDB,
PostgreSQL) gives the same fit as ``fit_lmm`` on the pandas frame.

No reference numbers from R here: the reference is ildstudy's own in-memory path (itself checked
against lme4/lmerTest in test_lmm_reference.py). The two paths differ only in floating-point summation
order (SQL SUM over rows vs numpy), so they agree to rounding, not bit for bit. Tolerances, relative:
criterion 1e-12; estimates, SE, df 1e-9 (achieved on ild110: <= 7e-11 for estimates, 5e-12 for SE/df;
estimates of near-zero coefficients are compared relative to their SE).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ibis = pytest.importorskip("ibis")

from ildstudy.errors import ModelError  # noqa: E402
from ildstudy.lmm import fit_lmm  # noqa: E402
from ildstudy.lmm.sufficient import fit_lmm_in_engine  # noqa: E402

DATA = Path(__file__).parent / "reference" / "lmm" / "data" / "ild110.csv"
STUDY = "fvc ~ months * arm + female + age + antisynth + smoker + (1 + months | id)"
FORMULAS = [
    STUDY,
    "fvc ~ ns(months, df = 3) * arm + female + age + antisynth + smoker + (1 + months | id)",
    "fvc ~ ns(months, knots = c(6, 18), Boundary.knots = c(0, 60)) * arm + (1 + months | id)",
    "fvc ~ pl(months, knots = c(6, 12)) * arm + female + age + antisynth + smoker + (1 + months | id)",
    "fvc ~ months + factor(smoker) + arm + (1 | id)",
    "fvc ~ months * arm + (0 + months | id)",
]
CRITERION_RTOL = 1e-12
COEF_RTOL = 1e-9


def assert_same_fit(a, b):
    fa, fb = a.fixed_effects, b.fixed_effects
    assert list(fa["term"]) == list(fb["term"])
    assert (a.n_obs, a.n_groups, a.n_dropped, a.method) == (b.n_obs, b.n_groups, b.n_dropped, b.method)
    assert abs(a.criterion - b.criterion) <= CRITERION_RTOL * abs(a.criterion)
    scale = np.maximum(np.abs(fa["estimate"].to_numpy()), fa["se"].to_numpy())
    assert np.all(np.abs(fa["estimate"].to_numpy() - fb["estimate"].to_numpy()) <= COEF_RTOL * scale)
    for col in ("se", "df", "t"):
        np.testing.assert_allclose(fb[col].to_numpy(), fa[col].to_numpy(), rtol=COEF_RTOL, err_msg=col)
    np.testing.assert_allclose(b.random_effects.sd, a.random_effects.sd, rtol=COEF_RTOL)
    np.testing.assert_allclose(b.residual_sd, a.residual_sd, rtol=COEF_RTOL)
    np.testing.assert_array_equal(b.conditional_modes.index.to_numpy(), a.conditional_modes.index.to_numpy())
    np.testing.assert_allclose(b.conditional_modes.to_numpy(), a.conditional_modes.to_numpy(),
                               rtol=1e-8, atol=1e-8 * np.abs(a.conditional_modes.to_numpy()).max())


@pytest.fixture(scope="module")
def ild110():
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def duck_ild110(ild110):
    return ibis.duckdb.connect().create_table("ild110", ild110)


@pytest.mark.parametrize("formula", FORMULAS)
def test_duckdb_matches_in_memory_on_ild110(formula, ild110, duck_ild110):
    assert_same_fit(fit_lmm(formula, ild110), fit_lmm_in_engine(formula, duck_ild110))


def test_ml_and_factor_levels(ild110, duck_ild110):
    levels = {"arm": ["MMF", "AZA"]}
    a = fit_lmm(STUDY, ild110, reml=False, factor_levels=levels)
    b = fit_lmm_in_engine(STUDY, duck_ild110, reml=False, factor_levels=levels)
    assert_same_fit(a, b)
    assert "months:armAZA" in list(b.fixed_effects["term"])


def test_marginal_means_and_contrasts_need_only_the_sums(ild110, duck_ild110):
    formula = FORMULAS[1]
    a, b = fit_lmm(formula, ild110), fit_lmm_in_engine(formula, duck_ild110)
    at = {"months": [0, 6, 12, 24]}
    ma, mb = a.emmeans("arm", by="months", at=at).table, b.emmeans("arm", by="months", at=at).table
    for col in ("estimate", "se", "df"):
        np.testing.assert_allclose(mb[col], ma[col], rtol=COEF_RTOL, err_msg=col)
    ca, cb = a.contrast("arm", by="months", at=at).table, b.contrast("arm", by="months", at=at).table
    for col in ("estimate", "se", "df", "p"):
        np.testing.assert_allclose(cb[col], ca[col], rtol=1e-8, err_msg=col)
    assert b.fitted.size == 0 and "not available" in b.summary()


def test_missing_values_dropped_and_counted(ild110):
    frame = ild110.copy()
    frame.loc[[3, 10, 50], "fvc"] = np.nan
    frame.loc[[7], "age"] = np.nan
    frame.loc[[7, 20], "arm"] = None
    table = ibis.duckdb.connect().create_table("gaps", frame)
    a, b = fit_lmm(STUDY, frame), fit_lmm_in_engine(STUDY, table)
    assert b.n_dropped == a.n_dropped == 5
    assert_same_fit(a, b)


def test_unsupported_term_is_a_clear_error(duck_ild110):
    with pytest.raises(ModelError, match="cannot be computed in the database"):
        fit_lmm_in_engine("fvc ~ log(age) + months + (1 | id)", duck_ild110)
    with pytest.raises(ModelError, match="not in the table"):
        fit_lmm_in_engine("fvc ~ nope + (1 | id)", duck_ild110)


def synthetic(n_patients: int, seed: int = 13) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.integers(2, 10, n_patients)
    pid = np.repeat(np.arange(n_patients), visits)
    n = pid.size
    months = np.round(rng.uniform(0, 60, n), 2)
    arm = np.where(rng.random(n_patients) < 0.45, "AZA", "MMF")[pid]
    age = np.round(rng.normal(50, 12, n_patients), 1)[pid]
    female = (rng.random(n_patients) < 0.7).astype(int)[pid]
    b0, b1 = rng.normal(0, 14, n_patients)[pid], rng.normal(0, 0.12, n_patients)[pid]
    fvc = 65 + 0.1 * months + (arm == "AZA") * (1 - 0.05 * months) - 0.2 * age + 3 * female + b0 + b1 * months
    fvc = fvc + rng.normal(0, 5, n)
    return pd.DataFrame({"id": [f"S{i:06d}" for i in pid], "months": months, "arm": arm, "female": female,
                         "age": age, "fvc": np.round(fvc, 1)})


def test_duckdb_matches_in_memory_on_20k_patients_with_warm_start():
    # 20k groups > 2 x WARM_START_GROUPS: both paths start from theta fitted on the same subsample.
    frame = synthetic(20_000)
    formula = "fvc ~ months * arm + female + age + (1 + months | id)"
    table = ibis.duckdb.connect().create_table("s20k", frame)
    assert_same_fit(fit_lmm(formula, frame), fit_lmm_in_engine(formula, table))


def test_postgres_matches_in_memory(pg_schema, ild110):
    con = ibis.connect(pg_schema)
    frame = ild110.copy()
    frame.loc[[3, 10], "fvc"] = np.nan
    try:
        table = con.create_table("ild110", frame)
        for formula in (STUDY, FORMULAS[1], FORMULAS[4]):
            assert_same_fit(fit_lmm(formula, frame), fit_lmm_in_engine(formula, table))
    finally:
        con.disconnect()
