"""ildstudy.reference.lungfunction against R's rspiro 0.5 and against the published formulas.

The fixtures in tests/reference/lungfunction/*.json were written by tests/reference/lungfunction_reference.R,
which runs rspiro 0.5's own functions (source from github.com/cran/rspiro at 3858db5, the CRAN mirror; CRAN
itself is not reachable from the build machine) -- see that script's header for the call behind each number and
for the two places where ildstudy deliberately differs from rspiro (spline interpolation for GLI Global / TLCO,
the female child/adult split of NHANES III), which the fixtures avoid.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ildstudy.errors import DataError, IldStudyError
from ildstudy.reference import lungfunction as lf
from ildstudy.reference.lungfunction import _core, gli_global2022, gli_tlco2017, nhanes3

FIXTURES = Path(__file__).parent / "reference" / "lungfunction"

# Named tolerances (relative unless stated).
LMS_RTOL = 1e-9        # L, M, S and predicted: same tables and formulas, so only floating-point noise
LLN_RTOL = 1e-9
Z_ATOL = 1e-8          # z-scores (absolute)
TRAD_SPLINE_RTOL = 1e-5  # rspiro's separate traditional-unit spline copy differs from the SI one by ~1e-7


def _load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _columns(rows: list[dict], measure: str) -> dict[str, np.ndarray]:
    sel = [r for r in rows if r["measure"] == measure]
    cols = {k: np.array([r.get(k) for r in sel]) for k in sel[0]}
    return cols


CASES = [("gli_2012", "gli_2012", m, "si") for m in ("fvc", "fev1", "fev1_fvc")]
CASES += [("gli_global_2022", "gli_global_2022", m, "si") for m in ("fvc", "fev1", "fev1_fvc")]
CASES += [("gli_tlco_2017_si", "gli_tlco_2017", "tlco", "si"),
          ("gli_tlco_2017_traditional", "gli_tlco_2017", "tlco", "traditional")]
CASES += [("nhanes3", "nhanes3", m, "si") for m in ("fvc", "fev1", "fev1_fvc")]


@pytest.mark.parametrize(("fixture", "equation", "measure", "units"), CASES)
def test_matches_rspiro(fixture, equation, measure, units):
    fx = _load(fixture)
    assert fx["source"] == "tests/reference/lungfunction_reference.R"
    c = _columns(fx["rows"], measure)
    # the fixture covers both sexes and ages 5 (8 for NHANES III) to 90 (80), two heights per age
    assert set(c["sex"]) == {"male", "female"}
    lo, hi = (8, 80) if equation == "nhanes3" else (5, 90)
    assert c["age"].min() == lo and c["age"].max() == hi
    eth = c["ethnicity"] if equation in ("gli_2012", "nhanes3") else None
    ref = lf.predict(equation, measure, c["sex"], c["age"].astype(float), c["height_cm"].astype(float),
                     ethnicity=eth, units=units)
    rtol = TRAD_SPLINE_RTOL if units == "traditional" else LMS_RTOL
    np.testing.assert_allclose(ref.predicted, c["predicted"].astype(float), rtol=rtol)
    np.testing.assert_allclose(ref.lln, c["lln"].astype(float), rtol=max(rtol, LLN_RTOL))
    if equation != "nhanes3":  # rspiro exposes no LMS for NHANES III
        for k in ("L", "M", "S"):
            np.testing.assert_allclose(getattr(ref, k), c[k].astype(float), rtol=rtol)
    z = lf.zscore(ref, c["observed"].astype(float))
    np.testing.assert_allclose(z, c["z"].astype(float), atol=Z_ATOL if units == "si" else 1e-4)
    np.testing.assert_allclose(lf.percent_predicted(ref, c["observed"].astype(float)),
                               100 * c["observed"].astype(float) / c["predicted"].astype(float), rtol=rtol)
    assert ref.valid.all()


def test_gli2012_fixture_has_every_ethnic_group_and_off_grid_ages():
    c = _columns(_load("gli_2012")["rows"], "fev1")
    assert set(c["ethnicity"]) == set(lf.gli2012.ETHNICITIES)
    assert np.any((c["age"] * 4) % 1 != 0)  # rspiro interpolates GLI-2012 too, so off-grid ages are compared


def test_ethnic_groups_change_gli2012_but_not_global():
    args = ("fvc", ["male"] * 5, [40.0] * 5, [175.0] * 5)
    gli = lf.predict("gli_2012", *args, ethnicity=list(lf.gli2012.ETHNICITIES))
    assert len(set(np.round(gli.predicted, 6))) == 5
    glob = lf.predict("gli_global_2022", *args, ethnicity=list(lf.gli2012.ETHNICITIES))
    assert np.ptp(glob.predicted) == 0


def test_spline_interpolation_between_table_ages_follows_gli():
    # GLI method: Mspline(age) = Mspline(a0) + (age - a0) / 0.25 * (Mspline(a0 + 0.25) - Mspline(a0)).
    # Written out here from the table rows rather than through ildstudy's helper.
    rows = [r for r in _core.read_csv_rows("gli_global2022_splines.csv")
            if r["sex"] == "female" and r["measure"] == "fev1" and r["age"] in ("62.25", "62.5")]
    (m0, s0), (m1, s1) = [(float(r["m_spline"]), float(r["s_spline"])) for r in rows]
    age, h = 62.4, 163.0
    msp = m0 + (age - 62.25) / 0.25 * (m1 - m0)
    ssp = s0 + (age - 62.25) / 0.25 * (s1 - s0)
    c = gli_global2022.COEFFICIENTS[("female", "fev1")]
    M = math.exp(c[0] + c[1] * math.log(h) + c[2] * math.log(age) + msp)
    S = math.exp(c[3] + c[4] * math.log(age) + ssp)
    ref = lf.predict("gli_global_2022", "fev1", "female", age, h)
    assert float(ref.M) == pytest.approx(M, rel=1e-12)
    assert float(ref.S) == pytest.approx(S, rel=1e-12)
    # and strictly between the neighbouring grid ages' values (not a step at floor(age))
    lo, hi = (float(lf.predict("gli_global_2022", "fev1", "female", a, h).M) for a in (62.25, 62.5))
    assert min(lo, hi) < float(ref.M) < max(lo, hi)


def test_lms_formulas():
    # z of the LLN is -1.645 and z of the median is 0, for every equation (LLN = M (1 - 1.645 L S)^(1/L)).
    for eq, measure, eth in [("gli_2012", "fev1_fvc", "other"), ("gli_global_2022", "fvc", None),
                             ("gli_tlco_2017", "tlco", None), ("nhanes3", "fev1", "mexican_american")]:
        ref = lf.predict(eq, measure, ["male", "female"], [25.0, 70.0], [180.0, 160.0], ethnicity=eth)
        np.testing.assert_allclose(lf.zscore(ref, ref.lln), -1.645, atol=1e-12)
        np.testing.assert_allclose(lf.zscore(ref, ref.predicted), 0.0, atol=1e-12)


def test_nhanes3_child_adult_split_is_20_for_males_and_18_for_females():
    # Hankinson 1999 tables 4 (males: < 20 / >= 20 yr) and 5 (females: < 18 / >= 18 yr).
    assert nhanes3.ADULT_FROM == {"male": 20.0, "female": 18.0}
    h, eth = 165.0, "caucasian"
    c = nhanes3.coefficients()[("fvc", "female", eth, "adult")]
    expected = c["b0"] + c["b1_age"] * 18.5 + c["b2_age2"] * 18.5 ** 2 + c["b3_height2_pred"] * h ** 2
    assert float(lf.predict("nhanes3", "fvc", "female", 18.5, h, ethnicity=eth).predicted) == pytest.approx(expected)
    c = nhanes3.coefficients()[("fvc", "male", eth, "child")]
    expected = c["b0"] + c["b1_age"] * 18.5 + c["b2_age2"] * 18.5 ** 2 + c["b3_height2_pred"] * h ** 2
    assert float(lf.predict("nhanes3", "fvc", "male", 18.5, h, ethnicity=eth).predicted) == pytest.approx(expected)


def test_tlco_units_and_hb_correction():
    args = ("gli_tlco_2017", "tlco", ["male", "female", "male"], [50.0, 50.0, 10.0], [178.0, 164.0, 140.0])
    si, trad = lf.predict(*args, units="si"), lf.predict(*args, units="traditional")
    # the published traditional intercepts differ from the SI ones by log(2.987)
    np.testing.assert_allclose(trad.predicted / si.predicted, math.exp(-7.034920 + 8.129189), rtol=1e-5)
    np.testing.assert_allclose(lf.convert_tlco(si.predicted, "si", "traditional"), trad.predicted, rtol=5e-4)
    np.testing.assert_allclose(lf.convert_tlco(lf.convert_tlco(7.5, "si", "traditional"), "traditional", "si"), 7.5)
    # 2017 ERS/ATS: factor 1.7 Hb / (K + Hb), K = 10.22 (male >= 15 y) or 9.38 (female, child < 15 y);
    # Hb 10 g/dL: 17 / 20.22 = 0.840752 for the man, 17 / 19.38 = 0.877193 for the woman and the boy.
    hb = lf.predict(*args, hb_g_dl=[10.0, 10.0, 10.0])
    np.testing.assert_allclose(hb.predicted / si.predicted, [17 / 20.22, 17 / 19.38, 17 / 19.38], rtol=1e-12)
    assert hb.hb_adjusted and not si.hb_adjusted
    # standard Hb (14.6 male >= 15, 13.4 female / child) leaves the prediction unchanged; NaN Hb = not given
    std = lf.predict(*args, hb_g_dl=[14.6, 13.4, np.nan])
    np.testing.assert_allclose(std.predicted, si.predicted, rtol=1e-12)
    # adjusting the prediction or correcting the measurement gives the same z-score
    y = np.array([6.0, 5.0, 4.0])
    np.testing.assert_allclose(lf.zscore(hb, y),
                               lf.zscore(si, lf.hb_corrected_tlco(y, 10.0, args[2], args[3])), rtol=1e-12)


@pytest.mark.parametrize(("kwargs", "column"), [
    (dict(equation="gli_tlco_2017", measure="tlco", age=4.0), "age"),
    (dict(equation="gli_tlco_2017", measure="tlco", age=91.0), "age"),
    (dict(equation="nhanes3", measure="fvc", age=7.0, ethnicity="caucasian"), "age"),
    (dict(equation="nhanes3", measure="fvc", age=81.0, ethnicity="caucasian"), "age"),
    (dict(equation="gli_2012", measure="fvc", age=96.0, ethnicity="caucasian"), "age"),
    (dict(equation="gli_global_2022", measure="fvc", age=2.9), "age"),
    (dict(equation="gli_global_2022", measure="fvc", height_cm=0.0), "height_cm"),
    (dict(equation="gli_global_2022", measure="fvc", height_cm=float("nan")), "height_cm"),
    (dict(equation="gli_global_2022", measure="fvc", sex="x"), "sex"),
    (dict(equation="gli_2012", measure="fvc"), "ethnicity"),
    (dict(equation="gli_2012", measure="fvc", ethnicity="martian"), "ethnicity"),
    (dict(equation="gli_global_2022", measure="tlco"), "measure"),
    (dict(equation="gli_tlco_2017", measure="tlco", units="ml"), "units"),
    (dict(equation="knudson", measure="fvc"), "equation"),
    (dict(equation="gli_global_2022", measure="fvc", hb_g_dl=12.0), "hb_g_dl"),
    (dict(equation="gli_tlco_2017", measure="tlco", hb_g_dl=120.0), "hb_g_dl"),
])
def test_bad_inputs_raise_a_clear_error(kwargs, column):
    base = dict(sex="female", age=50.0, height_cm=165.0)
    base.update(kwargs)
    with pytest.raises(lf.LungFunctionInputError) as exc:
        lf.predict(**base)
    assert isinstance(exc.value, DataError) and isinstance(exc.value, IldStudyError)
    assert exc.value.problems[0].column == column
    assert str(exc.value)


def test_flag_mode_gives_nan_with_a_flag_never_a_silent_nan():
    ref = lf.predict("gli_tlco_2017", "tlco", "male", [4.0, 40.0, 40.0], [170.0, 0.0, 180.0], on_invalid="flag")
    assert ref.valid.tolist() == [False, False, True]
    for arr in (ref.L, ref.M, ref.S, ref.predicted, ref.lln):
        assert np.isnan(arr[:2]).all() and np.isfinite(arr[2])
    with pytest.raises(lf.LungFunctionInputError):
        lf.predict("gli_tlco_2017", "tlco", "male", 40.0, 170.0, on_invalid="ignore")


def test_observed_checks():
    ref = lf.predict("gli_global_2022", "fev1_fvc", "male", 50.0, 175.0)
    with pytest.raises(lf.LungFunctionInputError, match="ratio"):
        lf.zscore(ref, 75.0)
    with pytest.raises(lf.LungFunctionInputError, match="positive"):
        lf.percent_predicted(ref, 0.0)
    assert np.isnan(lf.zscore(ref, np.nan))  # a missing observation stays missing


def test_broadcasting_and_shapes():
    ref = lf.predict("gli_global_2022", "fvc", "male", np.array([[30.0], [60.0]]), np.array([170.0, 180.0]))
    assert ref.predicted.shape == (2, 2)
    assert ref.predicted[0, 1] > ref.predicted[0, 0] and ref.predicted[0, 0] > ref.predicted[1, 0]


def test_tables_ship_with_the_package():
    # each spline table starts at the equation's lower age bound and is on the 0.25-year grid
    for mod in (lf.gli2012, gli_global2022, gli_tlco2017):
        for (sex, measure), (ages, *_cols) in _core.spline_table(mod.SPLINES).items():
            assert ages[0] == mod.AGE_RANGE[0] and ages[-1] >= mod.AGE_RANGE[1], (mod.NAME, sex, measure)
