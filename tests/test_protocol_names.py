"""Issue 17 items 2, 4 (protocol part) and 7 (part): protocol names normalised like the data, unknown names,
overrides of the built-in drug table, strict types, impossible windows and duplicate outcomes.

The cohort counts compared here are those of the built-in published reading (huapaya2019_published) on the default synthetic registry
(66 AZA / 44 MMF, 8 excluded for other agents: the planted counts of ``ildstudy.synth.calibration``); every
test compares a rewritten protocol against the built-in one on the same registry rather than pasting numbers.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ildstudy.cohort import build_cohort
from ildstudy.data import load_registry
from ildstudy.errors import ProtocolError
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol
from ildstudy.reference.drugs import DrugNames
from ildstudy.synth import write_registry

BUILTIN = builtin_protocol_text("huapaya2019_published")
DIAGNOSES = 'diagnoses = ["DM", "PM", "ASyS", "IMNM", "CADM", "overlap"]'
AZA_DRUGS = 'drugs = ["azathioprine"]'
OTHER_AGENTS = '"cyclophosphamide", "tacrolimus", "cyclosporine", "rituximab", "methotrexate", "ivig"'


def edited(*pairs: tuple[str, str]) -> str:
    text = BUILTIN
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def rejected(text: str) -> str:
    with pytest.raises(ProtocolError) as exc:
        parse_protocol(text, "my.toml")
    return str(exc.value)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry")
    write_registry(folder, seed=2019)
    return load_registry(folder)


@pytest.fixture(scope="module")
def builtin_attrition(registry):
    cohort = build_cohort(registry, load_protocol("huapaya2019_published"))
    assert cohort.arm_counts == {"AZA": 66, "MMF": 44}  # the calibrated default registry
    return cohort.attrition


# -- diagnoses ---------------------------------------------------------------------------------------------

def test_lower_case_diagnoses_select_the_same_cohort(registry, builtin_attrition):
    # issue 17: diagnoses = ["dm","pm",...] gave AZA 12 / MMF 5 instead of 66 / 44
    p = parse_protocol(edited((DIAGNOSES, 'diagnoses = ["dm", " pm", "asys", "IMNM", "cadm", "Overlap"]')))
    assert p.population.diagnoses == load_protocol("huapaya2019_published").population.diagnoses
    cohort = build_cohort(registry, p)
    assert cohort.arm_counts == {"AZA": 66, "MMF": 44}
    assert cohort.attrition.equals(builtin_attrition)


def test_diagnosis_aliases_are_those_of_the_loader():
    p = parse_protocol(edited((DIAGNOSES, 'diagnoses = ["dermatomyositis", "antisynthetase syndrome"]')))
    assert p.population.diagnoses == ("DM", "ASyS")


def test_unknown_diagnosis_names_the_key_and_the_allowed_values():
    msg = rejected(edited((DIAGNOSES, 'diagnoses = ["DM", "myositis"]')))
    assert "my.toml: population.diagnoses[1]: 'myositis' is not a diagnosis" in msg
    assert "allowed: DM, PM, ASyS, IMNM, CADM, overlap, other" in msg


def test_a_diagnosis_listed_twice_is_an_error():
    assert "population.diagnoses[1]" in rejected(edited((DIAGNOSES, 'diagnoses = ["DM", "dm"]')))


# -- drug names --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["Imuran", "AZA", "  AZATHIOPRINE "])
def test_arm_brand_names_and_abbreviations_mean_the_generic(registry, spelling):
    # issue 17: arm drug "Imuran" or "AZA" gave an empty arm
    p = parse_protocol(edited((AZA_DRUGS, f'drugs = ["{spelling}"]')))
    assert p.arms[0].drugs == ("azathioprine",)
    assert p.sha256() == load_protocol("huapaya2019_published").sha256()   # the same study, the same hash
    if spelling == "Imuran":
        assert build_cohort(registry, p).arm_counts == {"AZA": 66, "MMF": 44}


def test_other_agent_brand_names_exclude_the_same_patients(registry, builtin_attrition):
    # issue 17: "Rituxan", "Cytoxan", "MTX" excluded 4 patients instead of 8
    p = parse_protocol(edited((OTHER_AGENTS, '"Cytoxan", "tacrolimus", "cyclosporine", "Rituxan", "MTX", "ivig"')))
    assert p.exclusions.other_agents.drugs == load_protocol("huapaya2019_published").exclusions.other_agents.drugs
    attrition = build_cohort(registry, p).attrition
    excluded = attrition.set_index("step")["excluded"]
    assert excluded["other_agents"] == builtin_attrition.set_index("step")["excluded"]["other_agents"] == 8
    assert attrition.equals(builtin_attrition)


def test_glucocorticoid_keys_are_normalised():
    p = parse_protocol(edited(("methylprednisolone = 4.0", '"Solu-Medrol" = 4.0')))
    assert p.glucocorticoids == load_protocol("huapaya2019_published").glucocorticoids


@pytest.mark.parametrize("old, new, key", [
    (AZA_DRUGS, 'drugs = ["azathioprine", "wonderpill"]', "arms[0].drugs[1]: 'wonderpill' is not a known drug name"),
    (OTHER_AGENTS, '"cyclophosphamide", "zapitol"', "exclusions.other_agents.drugs[1]: 'zapitol' is not a known"),
    ("betamethasone = 0.6", '"wondersone" = 0.6', 'glucocorticoids."wondersone": not a known drug name'),
])
def test_unknown_drug_names_name_the_key(old, new, key):
    msg = rejected(edited((old, new)))
    assert key in msg
    assert "[drug_names]" in msg


def test_a_protocol_declares_a_new_generic_and_its_spellings():
    p = parse_protocol(edited((AZA_DRUGS, 'drugs = ["Wonderpill"]'),
                              ("[drug_names]", '[drug_names]\n"wonderpill" = "wonderpill"\n"WP 5mg" = "Wonderpill"')))
    assert p.arms[0].drugs == ("wonderpill",)
    assert p.drug_names == {"wonderpill": "wonderpill", "wp 5mg": "wonderpill"}
    names = DrugNames.from_protocol(p)
    assert names.generic("wp  5MG") == "wonderpill"


def test_a_declared_brand_of_a_known_generic_resolves_to_the_generic():
    p = parse_protocol(edited(("[drug_names]", '[drug_names]\n"aza tabs" = "Imuran"')))
    assert p.drug_names == {"aza tabs": "azathioprine"}


def test_overriding_the_builtin_table_needs_the_setting():
    # issue 17: a [drug_names] entry silently overrode the built-in table
    override = ("[drug_names]", '[drug_names]\n"Imuran" = "mercaptopurine"')
    msg = rejected(edited(override))
    assert "drug_names.\"Imuran\": 'imuran' is a built-in spelling of 'azathioprine'" in msg
    assert "override_builtin_drug_names = true" in msg
    p = parse_protocol(edited(override, ('name = "huapaya2019_published"',
                                         'name = "huapaya2019_published"\noverride_builtin_drug_names = true')))
    assert DrugNames.from_protocol(p).generic("IMURAN") == "mercaptopurine"
    assert parse_protocol(p.to_toml()) == p
    # the same generic is not an override
    assert parse_protocol(edited(("[drug_names]", '[drug_names]\n"Imuran" = "azathioprine"')))


def test_two_arms_sharing_a_drug_after_normalisation():
    msg = rejected(edited((AZA_DRUGS, 'drugs = ["azathioprine", "CellCept"]')))
    assert "arms[1].drugs[0]: 'mycophenolate mofetil' belongs to arm AZA too" in msg


def test_a_drug_listed_twice_in_an_arm_is_an_error():
    assert "arms[0].drugs[1]: 'Imuran' is azathioprine, listed already" in rejected(
        edited((AZA_DRUGS, 'drugs = ["azathioprine", "Imuran"]')))


def test_an_arm_drug_cannot_be_an_other_agent():
    assert "exclusions.other_agents.drugs[0]: 'azathioprine' is a drug of arm AZA" in rejected(
        edited((OTHER_AGENTS, '"Imuran", "tacrolimus"')))


def test_round_trip_of_a_protocol_written_with_brand_names():
    p = parse_protocol(edited((AZA_DRUGS, 'drugs = ["Imuran"]'), (DIAGNOSES, 'diagnoses = ["dm", "pm"]')))
    q = parse_protocol(p.to_toml())
    assert q == p and q.to_toml() == p.to_toml()


# -- strict types ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("old, new, message", [
    ("grace_days = 30 ", "grace_days = true ", "follow_up.grace_days: must be a whole number, got true"),
    ("grace_days = 30 ", "grace_days = 30.0 ", "follow_up.grace_days: must be a whole number, got 30.0"),
    ("max_months = 60", 'max_months = "60"', 'follow_up.max_months: must be a number, got "60"'),
    ("max_months = 60", "max_months = true", "follow_up.max_months: must be a number, got true"),
    ("require_ild = true", "require_ild = 1", "population.require_ild: must be true or false, got 1"),
    ("from_days = -90", "from_days = -90.5", "baseline.from_days: must be a whole number"),
    ("dose_months = [0,", 'dose_months = ["0",', "analysis.dose_months[0]: must be a number"),
    ("prednisone = 5.0", 'prednisone = "5"', 'glucocorticoids.prednisone: must be a number'),
    ('label = "Azathioprine"', "label = 3", "arms[0].label: must be text in quotes, got 3"),
    ("min_patients_per_arm = 10", "min_patients_per_arm = 10.5", "analysis.min_patients_per_arm: must be a whole"),
    ("min_patients_per_arm = 10", "min_patients_per_arm = 1", "analysis.min_patients_per_arm"),
    ('name = "huapaya2019_published"', 'name = "huapaya2019_published"\noverride_builtin_drug_names = "yes"',
     "override_builtin_drug_names: must be true or false"),
    ('data_cut = "2018-12-31"', "data_cut = 1546214400", "index.data_cut: must be a date"),
    ('data_cut = "2018-12-31"', "data_cut = 2018-12-31T00:00:00", "index.data_cut: must be a date"),
])
def test_wrong_types_are_rejected_naming_the_key(old, new, message):
    msg = rejected(edited((old, new)))
    assert f"my.toml: {message}" in msg
    assert "too_short" not in msg and "Tuple should have" not in msg   # no follow-on noise


def test_numbers_may_be_integers_and_toml_dates_stay_dates():
    p = parse_protocol(edited(("max_months = 60", "max_months = 60.0"), ("prednisone = 5.0", "prednisone = 5"),
                              ('data_cut = "2018-12-31"', "data_cut = 2018-12-31")))
    q = load_protocol("huapaya2019_published")
    assert p.index.data_cut == dt.date(2018, 12, 31) == q.index.data_cut
    assert p.follow_up.max_months == 60.0 and p.glucocorticoids["prednisone"] == 5.0
    assert p.sha256() == q.sha256()


# -- windows and outcomes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pairs, message", [
    ([("from_days = -90\nto_days = 30", "from_days = 2000\nto_days = 2100")],
     "baseline.from_days: day 2000 is after the end of follow-up (follow_up.max_months = 60, day 1826)"),
    ([("from_days = -90\nto_days = 30", "from_days = -90\nto_days = 1826")],
     "baseline.to_days: day 1826 leaves no day for a follow-up PFT"),
    ([("from_days = -90\nto_days = 30", "from_days = -90\nto_days = 300"), ("max_months = 60", "max_months = 6")],
     "baseline.to_days: day 300 leaves no day"),
    ([("from_days = -365\nto_days = 1826", "from_days = 1900\nto_days = 2000")],
     "exclusions.other_agents.from_days: the window starts on day 1900, after the end of follow-up"),
    ([("from_days = -365\nto_days = 90", "from_days = 1900\nto_days = 1950")],
     "exclusions.both_arms.from_days: the window starts on day 1900"),
    ([("dose_months = [0, 3, 6, 12, 18, 24, 36, 48, 60]", "dose_months = [0, 3, 72]")],
     "analysis.dose_months: month 72 is beyond follow_up.max_months (60)"),
    ([('name = "dlco_pct_pred"', 'name = "fvc_pct_pred"')],
     "outcomes[1].name: 'fvc_pct_pred' is the name of outcomes[0] too"),
    ([('name = "MMF"', 'name = "AZA"')], "arms[1].name: 'AZA' is the name of arms[0] too"),
])
def test_impossible_windows_and_duplicate_names(pairs, message):
    assert f"my.toml: {message}" in rejected(edited(*pairs))


def test_a_baseline_window_ending_one_day_before_the_end_of_follow_up_is_allowed():
    p = parse_protocol(edited(("from_days = -90\nto_days = 30", "from_days = -90\nto_days = 1825")))
    assert p.follow_up.max_days == 1826   # round(60 x 30.4375) = 1826, as docs/protocol.md states
