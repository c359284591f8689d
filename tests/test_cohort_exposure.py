"""Exposure rules without selection on the future (issue 15, item 1).

The default protocol ``huapaya2019`` excludes only on exposure up to the index date; starting another
steroid-sparing agent (add-on) or the other arm's drug (switch) after index ends as-treated follow-up and is
counted in ``Cohort.censoring``. The published reading ``huapaya2019_published`` excludes on later exposure and
requires a follow-up PFT. New-user washout and ILD-before-index are settings. Every expected value below is
derived by hand from the rules in docs/protocol.md (days relative to index; grace 30 days; data cut 2018-12-31).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ildstudy.cohort import STEP_IDS, build_cohort
from ildstudy.errors import ProtocolError
from ildstudy.protocol import builtin_protocol_text, parse_protocol

INDEX = dt.date(2015, 1, 1)
MONTH = 30.4375
PUBLISHED = "huapaya2019_published"


def iso(n: int) -> str:
    return (INDEX + dt.timedelta(days=n)).isoformat()


def good(b, pid, drug="Imuran", fu_days=(180, 400), **patient):
    """A patient in the default cohort: arm drug from index, baseline PFT on index, follow-up PFTs."""
    b.patient(pid, **patient).med(pid, drug, iso(0), None, 100.0).pft(pid, iso(0), 60.0, 45.0)
    for d in fu_days:
        b.pft(pid, iso(d), 62.0, 47.0)
    return b


def in_cohort(cohort) -> set[str]:
    return set(cohort.patients["patient_id"])


def protocol_with(name: str = "huapaya2019", **replacements: str):
    text = builtin_protocol_text(name)
    for old, new in replacements.values():
        assert old in text, old
        text = text.replace(old, new, 1)
    return parse_protocol(text)


def test_rituximab_after_index_ends_follow_up_in_default_and_excludes_in_published(registry_builder):
    b = registry_builder
    good(b, "ritux").med("ritux", "Rituxan", iso(250))       # add-on on day 250, after the PFT on day 180
    good(b, "plain")
    good(b, "mmf", drug="CellCept")
    registry = b.build()

    default = build_cohort(registry)
    assert in_cohort(default) == {"ritux", "plain", "mmf"}
    p = default.patients.set_index("patient_id")
    assert p.loc["ritux", "follow_up_end"] == "treatment_end"
    assert p.loc["ritux", "treatment_end"] == "add_on" and p.loc["ritux", "treatment_end_drug"] == "rituximab"
    assert round(p.loc["ritux", "follow_up_months"] * MONTH) == 280          # 250 + grace 30
    assert p.loc["ritux", "discontinued"] and p.loc["ritux", "stop_reason"] is None
    # the PFT on day 400 is after the end of follow-up: not an outcome
    months = default.outcomes.query("outcome == 'fvc_pct_pred' and patient_id == 'ritux'")["months"].tolist()
    assert months == [0.0, pytest.approx(180 / MONTH)]

    c = default.censoring.set_index(["reason", "drug"], drop=False)
    assert c.loc[("add_on", "rituximab"), ["n", "n_AZA", "n_MMF"]].tolist() == [1, 1, 0]
    assert int(c.loc[c["reason"] == "data_cut", "n"].sum()) == 2               # plain, mmf: ongoing to the cut
    assert int(default.censoring["n"].sum()) == 3
    assert list(default.censoring.columns) == ["reason", "drug", "n", "n_AZA", "n_MMF"]

    published = build_cohort(registry, PUBLISHED)
    assert in_cohort(published) == {"plain", "mmf"}
    assert dict(zip(published.excluded["patient_id"], published.excluded["step"])) == {"ritux": "other_agents"}


def test_switch_to_the_other_arm_is_recorded_with_its_drug(registry_builder):
    b = registry_builder
    good(b, "sw").med("sw", "Myfortic", iso(60))               # inside the published both_arms window (<= 90)
    registry = b.build()
    p = build_cohort(registry).patients.iloc[0]
    assert (p["treatment_end"], p["treatment_end_drug"], round(p["follow_up_months"] * MONTH)) == (
        "switch", "mycophenolic acid", 90)
    assert build_cohort(registry, PUBLISHED).excluded["step"].tolist() == ["both_arms"]


def test_exposure_on_or_before_index_still_excludes(registry_builder):
    b = registry_builder
    good(b, "mtx_before").med("mtx_before", "methotrexate", iso(-200), iso(-10))
    good(b, "mtx_same_day").med("mtx_same_day", "methotrexate", iso(0))      # combination from the start
    good(b, "mmf_same_day").med("mmf_same_day", "CellCept", iso(0))
    good(b, "mtx_day1").med("mtx_day1", "methotrexate", iso(1))              # add-on: stays
    cohort = build_cohort(b.build())
    assert dict(zip(cohort.excluded["patient_id"], cohort.excluded["step"])) == {
        "mtx_before": "other_agents", "mtx_same_day": "other_agents", "mmf_same_day": "both_arms"}
    p = cohort.patients.set_index("patient_id")
    assert (p.loc["mtx_day1", "treatment_end"], round(p.loc["mtx_day1", "follow_up_months"] * MONTH)) == (
        "add_on", 31)


def _mutations():
    """Changes to records dated after index, each applied to a copy of the base registry."""
    def add_agent(b):
        b.med("p_base", "cyclophosphamide", iso(100)).med("p_long", "tacrolimus", iso(700), iso(900))

    def add_other_arm(b):
        b.med("p_base", "CellCept", iso(45)).med("p_mmf", "Imuran", iso(20))

    def stop_early(b):
        b.rows["medications"] = [dict(r, stop_date=iso(5)) if r["patient_id"] == "p_base" and r["drug"] == "Imuran"
                                 else r for r in b.rows["medications"]]

    def drop_follow_up_pfts(b):
        b.rows["pft"] = [r for r in b.rows["pft"] if r["test_date"] <= iso(30)]

    def add_events(b):
        b.ae("p_base", iso(90), drug="Imuran").ae("p_mmf", iso(10), "infection")

    def later_pfts(b):
        b.pft("p_nofu", iso(500), 70.0)

    return {"add_agent": add_agent, "add_other_arm": add_other_arm, "stop_early": stop_early,
            "drop_follow_up_pfts": drop_follow_up_pfts, "add_events": add_events, "later_pfts": later_pfts}


def _base(b):
    good(b, "p_base")
    good(b, "p_long", fu_days=(200, 800, 1200))
    good(b, "p_mmf", drug="CellCept")
    good(b, "p_nofu", fu_days=())                                          # baseline PFT only
    good(b, "p_prior").med("p_prior", "rituximab", iso(-100), iso(-50))  # excluded on prior exposure
    return b


@pytest.mark.parametrize("mutation", list(_mutations()))
def test_no_record_after_index_moves_a_patient_in_or_out_of_the_default_cohort(registry_builder, mutation):
    from conftest import RegistryBuilder

    before = build_cohort(_base(RegistryBuilder()).build())
    b = _base(registry_builder)
    _mutations()[mutation](b)
    after = build_cohort(b.build())
    assert in_cohort(after) == in_cohort(before) == {"p_base", "p_long", "p_mmf", "p_nofu"}
    assert after.excluded.to_dict("records") == before.excluded.to_dict("records")


def test_the_published_reading_does_select_on_the_future(registry_builder):
    """The invariance above is a property of the default rules: the same changes move patients under
    the published reading (so the test above can fail)."""
    from conftest import RegistryBuilder

    before = build_cohort(_base(RegistryBuilder()).build(), PUBLISHED)
    assert "p_nofu" not in in_cohort(before)                               # no follow-up PFT
    moved = {}
    for name, mutate in _mutations().items():
        b = _base(RegistryBuilder())
        mutate(b)
        moved[name] = in_cohort(build_cohort(b.build(), PUBLISHED)) ^ in_cohort(before)
    assert moved["add_agent"] == {"p_base", "p_long"} and moved["add_other_arm"] == {"p_base", "p_mmf"}
    assert moved["drop_follow_up_pfts"] == {"p_base", "p_long", "p_mmf"} and moved["later_pfts"] == {"p_nofu"}


@pytest.mark.parametrize("key, old, new", [
    ("exclusions.other_agents.to_days", "to_days = 0", "to_days = 1826"),
    ("exclusions.both_arms.to_days", "to_days = 0\n\n[baseline]", "to_days = 90\n\n[baseline]"),
    ("follow_up.require_follow_up_measurement", "require_follow_up_measurement = false",
     "require_follow_up_measurement = true"),
])
def test_post_index_selection_is_refused_unless_allowed(key, old, new):
    text = builtin_protocol_text("huapaya2019")
    assert old in text
    with pytest.raises(ProtocolError) as exc:
        parse_protocol(text.replace(old, new, 1), "mine.toml")
    assert f"mine.toml: {key}:" in str(exc.value) and "allow_post_index_selection = true" in str(exc.value)
    allowed = text.replace(old, new, 1).replace("allow_post_index_selection = false",
                                                "allow_post_index_selection = true")
    parse_protocol(allowed)                                                # explicitly allowed: accepted


def test_new_steps_are_in_the_attrition_table(registry_builder):
    cohort = build_cohort(good(registry_builder, "p").build())
    assert cohort.attrition["step"].tolist() == ["registry", *STEP_IDS]
    assert {"ild_before_index", "washout"} <= set(STEP_IDS)
    order = list(STEP_IDS)
    assert order.index("index_before_cut") < order.index("ild_before_index") < order.index("washout") < \
        order.index("both_arms")
    assert cohort.attrition.set_index("step").loc[["ild_before_index", "washout"], "excluded"].tolist() == [0, 0]


def test_washout_requires_a_record_before_index(registry_builder):
    b = registry_builder
    good(b, "seen_200").pft("seen_200", iso(-200), 58.0)       # a PFT 200 days before index
    good(b, "seen_180").pft("seen_180", iso(-180), 58.0)       # exactly index - 180: on or before
    good(b, "seen_179").pft("seen_179", iso(-179), 58.0)
    good(b, "first_seen_at_index")
    good(b, "dx_early", ild_diagnosis_date=iso(-400))          # the ILD diagnosis date is a record too
    protocol = protocol_with(w=("washout_days = 0", "washout_days = 180"))
    cohort = build_cohort(b.build(), protocol)
    assert dict(zip(cohort.excluded["patient_id"], cohort.excluded["step"])) == {
        "seen_179": "washout", "first_seen_at_index": "washout"}


def test_ild_diagnosed_before_index(registry_builder):
    b = registry_builder
    good(b, "dx_before", ild_diagnosis_date=iso(-30))
    good(b, "dx_on_index", ild_diagnosis_date=iso(0))
    good(b, "dx_day14", ild_diagnosis_date=iso(14))
    good(b, "dx_day15", ild_diagnosis_date=iso(15))
    good(b, "dx_missing")
    on = ("require_ild_before_index = false", "require_ild_before_index = true")
    strict = build_cohort(b.build(), protocol_with(r=on))
    assert dict(zip(strict.excluded["patient_id"], strict.excluded["step"])) == {
        "dx_day14": "ild_before_index", "dx_day15": "ild_before_index", "dx_missing": "ild_before_index"}
    tolerant = build_cohort(b.build(), protocol_with(
        r=on, t=("ild_diagnosis_tolerance_days = 0", "ild_diagnosis_tolerance_days = 14")))
    assert set(tolerant.excluded["patient_id"]) == {"dx_day15", "dx_missing"}
    off = build_cohort(b.build())
    assert off.excluded.empty


def test_censoring_table_under_intention_to_treat(registry_builder):
    b = registry_builder
    good(b, "ritux").med("ritux", "Rituxan", iso(250))
    protocol = protocol_with(a=('analysis = "as_treated"', 'analysis = "intention_to_treat"'))
    cohort = build_cohort(b.build(), protocol)
    c = cohort.censoring
    assert c.loc[c["n"] > 0, "reason"].tolist() == ["data_cut"]           # ITT: treatment ends nothing
    p = cohort.patients.iloc[0]
    assert p["treatment_end"] == "add_on" and p["follow_up_end"] == "data_cut"
    assert isinstance(c, pd.DataFrame) and c["reason"].tolist()[:3] == ["stop", "switch", "add_on"]
