"""Each cohort step on small hand-built registries: a patient per exclusion, windows at their boundaries,
baseline ties, the end of follow-up (as-treated vs intention-to-treat, stop, switch, chained courses).

Windows (days relative to index, inclusive) of the published reading (``huapaya2019_published``):
both_arms [-365, 90], other_agents [-365, 1826], a follow-up PFT required; of the default ``huapaya2019``:
both_arms and other_agents [-365, 0], no follow-up PFT required. Both: baseline [-90, 30]; grace 30 days;
max 60 months = 1826 days; data cut 2018-12-31.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ildstudy.cohort import STEP_IDS, build_cohort
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol

INDEX = dt.date(2015, 1, 1)           # data cut 2018-12-31 is day 1460
EARLY = dt.date(2010, 1, 1)           # index early enough for 60 months of follow-up
MONTH = 30.4375


def iso(n: int, base: dt.date = INDEX) -> str:
    return (base + dt.timedelta(days=n)).isoformat()


PUBLISHED = "huapaya2019_published"


def itt_protocol(name: str = "huapaya2019"):
    return parse_protocol(builtin_protocol_text(name).replace('analysis = "as_treated"',
                                                              'analysis = "intention_to_treat"'))


def good(b, pid, drug="Imuran", base=INDEX, stop=None, fu_day=180, **patient):
    """A patient who passes every step: arm drug at index, baseline PFT on index, one follow-up PFT."""
    b.patient(pid, **patient)
    b.med(pid, drug, iso(0, base), None if stop is None else iso(stop, base), 100.0)
    b.pft(pid, iso(0, base), 60.0, 45.0)
    if fu_day is not None:
        b.pft(pid, iso(fu_day, base), 62.0, 47.0)
    return b


def steps_of(cohort) -> dict[str, str | None]:
    out = {pid: None for pid in cohort.patients["patient_id"]}
    out.update(dict(zip(cohort.excluded["patient_id"], cohort.excluded["step"])))
    return out


@pytest.fixture
def step_registry(registry_builder):
    return build_step_registry(registry_builder)


def build_step_registry(b):
    """One patient per exclusion and per window boundary (see EXPECTED_STEPS)."""
    good(b, "ok_aza")
    good(b, "ok_mmf", drug="CellCept")
    good(b, "ok_overlap_dx", diagnosis="overlap")
    # population
    good(b, "pop_other_dx", diagnosis="other")
    good(b, "pop_no_ild", ild=False)
    good(b, "pop_ild_missing", ild=None)
    # arm_drug: glucocorticoids and an other agent only
    b.patient("no_arm").med("no_arm", "prednisone", iso(0), None, 20).med("no_arm", "Rituxan", iso(10))
    b.pft("no_arm", iso(0), 60).pft("no_arm", iso(180), 61)
    # index_before_cut: first AZA the day after the cut; on the cut day passes this step (fails follow_up)
    b.patient("idx_after_cut").med("idx_after_cut", "azathioprine", "2019-01-01").pft("idx_after_cut", "2019-01-01", 60)
    b.patient("idx_on_cut").med("idx_on_cut", "azathioprine", "2018-12-31").pft("idx_on_cut", "2018-12-31", 60)
    # both_arms: window [-365, 90]. The index is the first start of *any* arm drug, so only other-arm
    # prescriptions starting on or after index can overlap it.
    good(b, "both_day90").med("both_day90", "Myfortic", iso(90))
    good(b, "both_day91", fu_day=100).med("both_day91", "Myfortic", iso(91))  # a switch (ends follow-up at 121)
    good(b, "both_same_day").med("both_same_day", "CellCept", iso(0))
    # an earlier other-arm course makes *that* drug the index: MMF index at -400, AZA at +400 is a switch,
    # and the PFTs are no longer in the baseline window
    good(b, "both_earlier").med("both_earlier", "MMF", iso(-400), iso(-365))
    # other_agents: window [-365, 1826]
    good(b, "other_day1826", base=EARLY).med("other_day1826", "Trexall", iso(1826, EARLY))
    good(b, "other_day1827", base=EARLY).med("other_day1827", "Trexall", iso(1827, EARLY))
    good(b, "other_before_365").med("other_before_365", "Cytoxan", iso(-500), iso(-365))
    good(b, "other_before_366").med("other_before_366", "Cytoxan", iso(-500), iso(-366))
    good(b, "other_ongoing").med("other_ongoing", "tacrolimus", iso(-1000))                     # no stop: to the cut
    good(b, "other_after_cut").med("other_after_cut", "Prograf", "2019-02-01")                  # after the cut: unused
    # baseline_pft: window [-90, 30], FVC % required
    for pid, d in (("bl_m90", -90), ("bl_m91", -91), ("bl_p30", 30), ("bl_p31", 31)):
        b.patient(pid).med(pid, "Imuran", iso(0)).pft(pid, iso(d), 60).pft(pid, iso(200), 61)
    b.patient("bl_no_fvc").med("bl_no_fvc", "Imuran", iso(0))
    b.pft("bl_no_fvc", iso(0), None, 45).pft("bl_no_fvc", iso(200), 61)
    # follow_up: a PFT after day 30 and on or before the end of follow-up
    good(b, "fu_none", fu_day=None)
    good(b, "fu_day31", fu_day=31)
    good(b, "fu_stop_inside", stop=100, fu_day=130)      # stop 100 + grace 30 = end 130
    good(b, "fu_stop_outside", stop=100, fu_day=131)
    good(b, "fu_dlco_only", fu_day=None).pft("fu_dlco_only", iso(200), None, 50)
    return b.build()


#: The published reading (huapaya2019_published).
EXPECTED_STEPS = {
    "ok_aza": None, "ok_mmf": None, "ok_overlap_dx": None,
    "pop_other_dx": "population", "pop_no_ild": "population", "pop_ild_missing": "population",
    "no_arm": "arm_drug", "idx_after_cut": "index_before_cut", "idx_on_cut": "follow_up",
    "both_day90": "both_arms", "both_day91": None, "both_same_day": "both_arms", "both_earlier": "baseline_pft",
    "other_day1826": "other_agents", "other_day1827": None, "other_before_365": "other_agents",
    "other_before_366": None, "other_ongoing": "other_agents", "other_after_cut": None,
    "bl_m90": None, "bl_m91": "baseline_pft", "bl_p30": None, "bl_p31": "baseline_pft", "bl_no_fvc": "baseline_pft",
    "fu_none": "follow_up", "fu_day31": None, "fu_stop_inside": None, "fu_stop_outside": "follow_up",
    "fu_dlco_only": "follow_up",
}
#: The default protocol: only exposure up to index excludes; later other-arm or other-agent starts are
#: switches / add-ons (they end follow-up), and no follow-up PFT is required.
EXPECTED_STEPS_DEFAULT = {
    **EXPECTED_STEPS,
    "idx_on_cut": None, "both_day90": None, "other_day1826": None,
    "fu_none": None, "fu_stop_outside": None, "fu_dlco_only": None,
}
EXPECTED = {PUBLISHED: EXPECTED_STEPS, "huapaya2019": EXPECTED_STEPS_DEFAULT}


@pytest.mark.parametrize("protocol", list(EXPECTED))
def test_each_patient_leaves_at_the_expected_step(step_registry, protocol):
    cohort = build_cohort(step_registry, protocol)
    assert steps_of(cohort) == EXPECTED[protocol]


@pytest.mark.parametrize("protocol", list(EXPECTED))
def test_attrition_counts_and_accounting(step_registry, protocol):
    EXPECTED_STEPS = EXPECTED[protocol]
    cohort = build_cohort(step_registry, protocol)
    a = cohort.attrition
    assert a["step"].tolist() == ["registry", *STEP_IDS]
    assert a.loc[0, "remaining"] == len(EXPECTED_STEPS) and a.loc[0, "excluded"] == 0
    for step in STEP_IDS:
        row = a.set_index("step").loc[step]
        assert row["excluded"] == sum(1 for s in EXPECTED_STEPS.values() if s == step), step
    assert a["excluded"].sum() + a["remaining"].iloc[-1] == len(EXPECTED_STEPS)
    # remaining = previous remaining - excluded
    assert (a["remaining"].shift(1).iloc[1:] - a["excluded"].iloc[1:] == a["remaining"].iloc[1:]).all()
    # per arm: unknown before the arm_drug step, then the arm of the first arm drug
    assert a[["remaining_AZA", "remaining_MMF"]].iloc[:2].isna().all().all()
    last = a.iloc[-1]
    assert last["remaining_MMF"] == 1 and last["remaining_AZA"] == last["remaining"] - 1
    assert cohort.arm_counts == {"AZA": int(last["remaining_AZA"]), "MMF": 1}
    arm_drug = a.set_index("step").loc["arm_drug"]   # MMF: ok_mmf, both_earlier; AZA: the others with an index
    assert (arm_drug["remaining_AZA"], arm_drug["remaining_MMF"]) == (arm_drug["remaining"] - 2, 2)
    assert sorted(cohort.excluded["patient_id"]) == sorted(p for p, s in EXPECTED_STEPS.items() if s)
    assert not set(cohort.excluded["patient_id"]) & set(cohort.patients["patient_id"])
    rec = cohort.attrition_records()
    assert rec[0]["remaining"] == {"AZA": None, "MMF": None} and rec[-1]["remaining"] == cohort.arm_counts


def test_index_tie_between_arms_takes_the_first_arm_and_fails_both_arms(registry_builder):
    b = registry_builder
    good(b, "tie", drug="CellCept").med("tie", "Imuran", iso(0))
    cohort = build_cohort(b.build())
    row = cohort.attrition.set_index("step").loc["arm_drug"]
    assert (row["remaining_AZA"], row["remaining_MMF"]) == (1, 0)
    assert steps_of(cohort) == {"tie": "both_arms"}


def test_baseline_is_closest_to_index_ties_to_the_earlier(registry_builder):
    b = registry_builder
    for pid, pfts in {
        "tie": [(-5, 50.0), (5, 55.0)],            # equally close: the earlier
        "closer_after": [(-10, 50.0), (3, 55.0)],  # the closer one, after index
        "same_day": [(-2, 50.0, None), (-2, 52.0, 40.0), (-2, 58.0, None)],  # same day: with DLCO first
    }.items():
        b.patient(pid).med(pid, "Imuran", iso(0))
        for d, fvc, *dlco in pfts:
            b.pft(pid, iso(d), fvc, dlco[0] if dlco else 40.0)
        b.pft(pid, iso(300), 60.0)
    cohort = build_cohort(b.build())
    base = cohort.patients.set_index("patient_id")["baseline_fvc_pct_pred"].to_dict()
    assert base == {"tie": 50.0, "closer_after": 55.0, "same_day": 52.0}
    # the baseline PFT is month 0; other PFTs in the baseline window are not outcomes
    fvc = cohort.outcomes.query("outcome == 'fvc_pct_pred' and patient_id == 'tie'")
    assert fvc[["months", "value"]].values.tolist() == [[0.0, 50.0], [300 / MONTH, 60.0]]


def _end(cohort) -> dict[str, tuple[float, str]]:
    p = cohort.patients.set_index("patient_id")
    return {k: (round(v * MONTH), r) for k, v, r in zip(p.index, p["follow_up_months"], p["follow_up_end"])}


@pytest.fixture
def follow_up_registry(registry_builder):
    return build_follow_up_registry(registry_builder)


def build_follow_up_registry(b):
    """Patients whose follow-up ends at the cut, at 60 months, at a stop or a switch, with chained courses."""
    good(b, "ongoing_cut")                                           # ends at the data cut (day 1460)
    good(b, "ongoing_max", base=EARLY)                               # ends at 60 months (day 1826)
    good(b, "stop_100", stop=100, fu_day=90)                         # as-treated: 130
    good(b, "switch_200").med("switch_200", "CellCept", iso(200))   # switch to the other arm: 230
    good(b, "switch_other", base=EARLY).med("switch_other", "methotrexate", iso(1900, EARLY))  # after 1826: none
    good(b, "chain_gap30", stop=100).med("chain_gap30", "azasan", iso(130), iso(300))      # chained: 330
    good(b, "chain_gap31", stop=100, fu_day=90).med("chain_gap31", "azasan", iso(131), iso(300))      # not chained: 130
    good(b, "chain_nested", stop=500).med("chain_nested", "Imuran", iso(10), iso(20)).med(
        "chain_nested", "Imuran", iso(520), iso(700))                                       # latest stop 500: 730
    good(b, "chain_mmf", drug="CellCept", stop=100).med("chain_mmf", "Myfortic", iso(110), iso(400))  # same arm: 430
    good(b, "stop_late", stop=1500)                                  # stop after the cut: data cut
    return b.build()


def test_end_of_follow_up_as_treated(follow_up_registry):
    cohort = build_cohort(follow_up_registry)
    assert _end(cohort) == {
        "ongoing_cut": (1460, "data_cut"), "ongoing_max": (1826, "max_months"),
        "stop_100": (130, "treatment_end"), "switch_200": (230, "treatment_end"),
        "switch_other": (1826, "max_months"), "chain_gap30": (330, "treatment_end"),
        "chain_gap31": (130, "treatment_end"), "chain_nested": (730, "treatment_end"),
        "chain_mmf": (430, "treatment_end"), "stop_late": (1460, "data_cut"),
    }
    p = cohort.patients.set_index("patient_id")
    assert p.loc["switch_200", "treatment_end"] == "switch" and p.loc["stop_100", "treatment_end"] == "stop"
    assert p.loc["ongoing_cut", "treatment_end"] is None and not p.loc["ongoing_cut", "discontinued"]
    assert not p.loc["stop_late", "discontinued"]
    assert p.loc["stop_100", "treatment_months"] == pytest.approx(100 / MONTH)
    assert p.loc["ongoing_max", "treatment_months"] == pytest.approx(1826 / MONTH)
    # a PFT after the end of follow-up is not an outcome: switch_200's follow-up PFT (day 180) is kept
    fvc = cohort.outcomes.query("outcome == 'fvc_pct_pred' and patient_id == 'switch_200'")
    assert fvc["months"].tolist() == [0.0, pytest.approx(180 / MONTH)]


def test_end_of_follow_up_intention_to_treat(follow_up_registry):
    cohort = build_cohort(follow_up_registry, itt_protocol())
    ends = _end(cohort)
    assert ends["stop_100"] == (1460, "data_cut") and ends["switch_200"] == (1460, "data_cut")
    assert ends["ongoing_max"] == (1826, "max_months")
    p = cohort.patients.set_index("patient_id")
    # treatment end is still reported (for discontinuation analyses)
    assert p.loc["stop_100", "discontinued"] and p.loc["stop_100", "treatment_months"] == pytest.approx(100 / MONTH)


def test_itt_keeps_a_patient_whose_only_follow_up_pft_is_after_the_stop(registry_builder):
    b = registry_builder
    good(b, "late_pft", stop=100, fu_day=400)
    assert steps_of(build_cohort(b.build(), PUBLISHED)) == {"late_pft": "follow_up"}
    assert steps_of(build_cohort(b.build(), itt_protocol(PUBLISHED))) == {"late_pft": None}
    # the default protocol requires no follow-up PFT: the patient stays, with baseline only
    cohort = build_cohort(b.build())
    assert steps_of(cohort) == {"late_pft": None}
    assert cohort.outcomes.query("outcome == 'fvc_pct_pred'")["months"].tolist() == [0.0]


def test_stop_reason_of_the_course(registry_builder):
    b = registry_builder
    b.patient("p").med("p", "Imuran", iso(0), iso(100), 100, "remission").med("p", "Imuran", iso(110), iso(250), 50,
                                                                              "adverse_event")
    b.pft("p", iso(0), 60).pft("p", iso(200), 62)
    p = build_cohort(b.build()).patients.iloc[0]
    ended = (p["treatment_end"], p["stop_reason"], round(p["follow_up_months"] * MONTH))
    assert ended == ("stop", "adverse_event", 280)
