"""Prednisone-equivalent doses on hand-worked cases: the conversion, the pure-Python rule and the cohort's SQL.

Equivalents (STUDY.md): prednisone 5 = prednisolone 5 = methylprednisolone 4 = triamcinolone 4 =
hydrocortisone 20 = cortisone 25 = dexamethasone 0.75 = betamethasone 0.6 mg.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ildstudy.cohort import build_cohort
from ildstudy.protocol import builtin_protocol_text, parse_protocol
from ildstudy.reference.glucocorticoids import (DEFAULT_EQUIVALENTS, Prescription, daily_prednisone_equivalent,
                                                prednisone_equivalent_mg, prednisone_factors)

DOSE_TOL = 1e-9  # mg/day; every hand-worked value is exact in decimal
CUT = dt.date(2018, 12, 31)
INDEX = dt.date(2015, 1, 1)


def day(n: int) -> dt.date:
    return INDEX + dt.timedelta(days=n)


def iso(n: int) -> str:
    return day(n).isoformat()


@pytest.mark.parametrize("drug,dose,expected", [
    ("prednisone", 10, 10), ("prednisolone", 10, 10), ("methylprednisolone", 8, 10), ("triamcinolone", 4, 5),
    ("hydrocortisone", 20, 5), ("cortisone", 25, 5), ("dexamethasone", 1.5, 10), ("betamethasone", 0.6, 5),
    ("methylprednisolone", 1000, 1250),  # an IV pulse
])
def test_conversion_factors(drug, dose, expected):
    assert prednisone_equivalent_mg(drug, dose) == pytest.approx(expected, abs=DOSE_TOL)


def test_factors_follow_an_overridden_table():
    table = dict(DEFAULT_EQUIVALENTS, betamethasone=0.75)
    assert prednisone_factors(table)["betamethasone"] == pytest.approx(5 / 0.75)
    with pytest.raises(KeyError):
        prednisone_equivalent_mg("budesonide", 9)


# The taper used below, days relative to index 2015-01-01 (data cut 2018-12-31 = day 1460):
#   prednisone 40   [0, 91)      then prednisone 20 [91, 183)   (same-day change on day 91)
#   prednisone 10   [183, 400)   with methylprednisolone 8 [300, 400) overlapping (10 + 10 = 20)
#   nothing         [400, 700)   (gap: 0)
#   prednisolone 5  [700, ...)   ongoing at the data cut, with dexamethasone 0.75 [1000, 1100) (5 + 5 = 10)
TAPER = [
    ("Prednisone", 0, 91, 40.0), ("PREDNISONE", 91, 183, 20.0), ("Deltasone", 183, 400, 10.0),
    ("Medrol", 300, 400, 8.0), ("prednisolone", 700, None, 5.0), ("Decadron", 1000, 1100, 0.75),
]
# protocol month -> (day = round(m x 30.4375), prednisone-equivalent mg/day)
EXPECTED = {0: (0, 40.0), 3: (91, 20.0), 6: (183, 10.0), 12: (365, 20.0), 18: (548, 0.0), 24: (731, 5.0),
            36: (1096, 10.0)}


def _rx(taper=TAPER):
    from ildstudy.reference.drugs import DrugNames

    names = DrugNames.builtin()
    return [Prescription(names.generic(d), day(s), None if e is None else day(e), mg) for d, s, e, mg in taper]


@pytest.mark.parametrize("month", sorted(EXPECTED))
def test_daily_dose_pure_python(month):
    d, mg = EXPECTED[month]
    assert daily_prednisone_equivalent(_rx(), day(d), CUT) == pytest.approx(mg, abs=DOSE_TOL)


def test_daily_dose_edges():
    rx = _rx()
    assert daily_prednisone_equivalent(rx, day(90), CUT) == 40.0          # last day of the old dose
    assert daily_prednisone_equivalent(rx, day(-1), CUT) == 0.0           # before anything
    assert daily_prednisone_equivalent(rx, CUT, CUT) == 5.0               # ongoing: active on the cut day
    assert daily_prednisone_equivalent(rx, CUT + dt.timedelta(days=1), CUT) == 0.0
    missing = rx + [Prescription("prednisone", day(500), day(600), None)]
    assert daily_prednisone_equivalent(missing, day(548), CUT) is None    # dose unknown
    assert daily_prednisone_equivalent(missing, day(365), CUT) == 20.0
    other = rx + [Prescription("azathioprine", day(0), None, 150.0)]      # not a glucocorticoid
    assert daily_prednisone_equivalent(other, day(0), CUT) == 40.0


def _taper_registry(builder, taper=TAPER):
    b = builder.patient("p1").med("p1", "Imuran", iso(0), None, 150.0)
    b.pft("p1", iso(0), 60, 45).pft("p1", iso(200), 62, 47)
    for drug, s, e, mg in taper:
        b.med("p1", drug, iso(s), None if e is None else iso(e), mg)
    return b.build()


def test_cohort_sql_doses_match_hand_worked_values(registry_builder):
    cohort = build_cohort(_taper_registry(registry_builder))
    doses = cohort.outcomes.query("outcome == 'prednisone_mg'")
    # months 48 and 60 (days 1461, 1826) lie after the data cut: no rows
    assert doses["months"].tolist() == [0.0, 3.0, 6.0, 12.0, 18.0, 24.0, 36.0]
    for month, value in zip(doses["months"], doses["value"]):
        assert value == pytest.approx(EXPECTED[int(month)][1], abs=DOSE_TOL), month
    assert cohort.patients.loc[0, "baseline_prednisone_mg"] == pytest.approx(40.0, abs=DOSE_TOL)


def test_cohort_sql_doses_with_overridden_equivalents(registry_builder):
    text = builtin_protocol_text("huapaya2019").replace("methylprednisolone = 4.0", "methylprednisolone = 5.0")
    cohort = build_cohort(_taper_registry(registry_builder), parse_protocol(text))
    doses = cohort.outcomes.query("outcome == 'prednisone_mg'").set_index("months")["value"]
    assert doses[12.0] == pytest.approx(10.0 + 8.0, abs=DOSE_TOL)


def test_cohort_missing_dose_leaves_value_missing_with_warning(registry_builder):
    taper = TAPER + [("prednisone", 500, 600, None)]
    cohort = build_cohort(_taper_registry(registry_builder, taper))
    doses = cohort.outcomes.query("outcome == 'prednisone_mg'")
    assert 18.0 not in doses["months"].tolist()          # day 548: an active prescription without a dose
    assert 12.0 in doses["months"].tolist()
    assert any(p.column == "daily_dose_mg" and p.severity == "warning" for p in cohort.warnings)
