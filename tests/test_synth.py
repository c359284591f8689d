"""The synthetic registry (issue 2, item 6): deterministic, loadable, format-independent, and its planted truth
holds in the written tables.

Counts are checked against ``test_synth_rules`` -- a plain pandas reading of docs/protocol.md, independent of
``ildstudy.cohort`` -- not against the generator's own bookkeeping. The published numbers (66/44 patients,
22/66 and 6/44 with adverse events, 36-month differences +1.9, -8.2, -6.6; Huapaya et al., CHEST 2019) are
the calibration targets of STUDY.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_synth_rules import STEPS, adverse_event_patients, analysis_tables, build_cohort

from ildstudy.data import load_registry
from ildstudy.data.coerce import coerce_table
from ildstudy.data.readers import RawTable
from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy.errors import IldStudyError
from ildstudy.protocol import load_protocol
from ildstudy.reference.drugs import DrugNames
from ildstudy.synth import generate_registry, write_registry
from ildstudy.synth.spelling import DRUG_SPELLINGS, GENERIC_OF

SEED = 2019                      # the default seed of `ildstudy synth` and `ildstudy demo`
TABLES = ("patients", "antibodies", "medications", "pft", "adverse_events")
PUBLISHED_36 = {"fvc_pct_pred": 1.9, "dlco_pct_pred": -8.2, "prednisone_mg": -6.6}   # CHEST 2019 abstract
ARM_DRUGS = {"AZA": {"azathioprine"}, "MMF": {"mycophenolate mofetil", "mycophenolic acid"}}
FORMULA = "value ~ months * arm + female + age + antisynthetase + ever_smoker + (1 + months | id)"
# the balanced default registry pins the model estimates; left over: rounding of values and the gap
# between REML's variance estimates and the true ones
ESTIMATE_TOL = {"fvc_pct_pred": 0.3, "dlco_pct_pred": 0.6, "prednisone_mg": 0.15}


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def default_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("default_csv")
    truth = write_registry(out, seed=SEED, fmt="csv")
    return out, truth


@pytest.fixture(scope="module")
def default_registry(default_csv):
    return load_registry(default_csv[0])


@pytest.fixture(scope="module")
def default_fate(default_registry):
    return build_cohort(default_registry.tables)


# --- same seed, same bytes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,n", [("csv", None), ("parquet", None), ("xlsx", 40), ("parquet", 300)])
def test_same_seed_same_bytes(tmp_path, fmt, n):
    a, b = tmp_path / "a", tmp_path / "b"
    write_registry(a, n_patients=n, seed=11, fmt=fmt)
    write_registry(b, n_patients=n, seed=11, fmt=fmt)
    assert file_hashes(a) == file_hashes(b)
    assert len(file_hashes(a)) == 7                      # five tables, truth.json and the .ildstudy-output marker


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_other_seed_other_bytes(tmp_path, fmt):
    write_registry(tmp_path / "a", seed=11, fmt=fmt)
    write_registry(tmp_path / "b", seed=12, fmt=fmt)
    ha, hb = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert all(ha[f"{t}.{fmt}"] != hb[f"{t}.{fmt}"] for t in TABLES)


def test_in_memory_registry_is_what_is_written(tmp_path):
    """generate_registry and write_registry build the same rows from the same seed."""
    protocol = load_protocol("huapaya2019_published")
    frames, truth = generate_registry(250, np.random.default_rng(5), protocol)
    written = write_registry(tmp_path, n_patients=250, seed=5, fmt="parquet")
    assert truth.to_dict() | {"seed": 5} == written.to_dict()
    loaded = load_registry(tmp_path)
    for name in TABLES:
        typed, _ = coerce_table(RawTable(TABLES_BY_NAME[name], Path(name), frames[name], 2))
        pd.testing.assert_frame_equal(typed, loaded.tables[name], check_dtype=False)


def test_duckdb_format_holds_the_typed_tables(tmp_path, default_registry):
    import duckdb

    write_registry(tmp_path, seed=SEED, fmt="duckdb")
    con = duckdb.connect(str(tmp_path / "registry.duckdb"), read_only=True)
    expected = default_registry.to_duckdb()
    for name in TABLES:
        spec = TABLES_BY_NAME[name]
        order = ", ".join(f'"{c}"' for c in spec.column_names)
        got = con.execute(f'SELECT * FROM "{name}" ORDER BY {order}').df()
        want = expected.execute(f'SELECT * FROM "{name}" ORDER BY {order}').df()
        pd.testing.assert_frame_equal(got, want)


# --- loading and format independence ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_every_table_loads_without_errors(tmp_path, fmt):
    write_registry(tmp_path, n_patients=120, seed=3, fmt=fmt)
    registry = load_registry(tmp_path)                   # raises DataError on any error
    assert set(registry.tables) == set(TABLES)
    for p in registry.problems:                          # only the deliberately unknown drug names
        assert p.severity == "warning" and "unrecognised drug name" in p.problem, str(p)


def test_csv_parquet_xlsx_load_into_identical_duckdb_tables(tmp_path):
    """Issue 2 acceptance: the loader does not depend on the file format."""
    frames = {}
    for fmt in ("csv", "parquet", "xlsx"):
        write_registry(tmp_path / fmt, seed=SEED, fmt=fmt)
        con = load_registry(tmp_path / fmt).to_duckdb()
        for name in TABLES:
            cols = ", ".join(f'"{c}"' for c in TABLES_BY_NAME[name].column_names)
            frames[fmt, name] = con.execute(f'SELECT * FROM "{name}" ORDER BY {cols}').df()
    for name in TABLES:
        assert len(frames["csv", name]) > 0
        pd.testing.assert_frame_equal(frames["csv", name], frames["parquet", name])
        pd.testing.assert_frame_equal(frames["csv", name], frames["xlsx", name])


def test_no_folder_ends_up_with_tables_of_two_formats(tmp_path):
    """An earlier synthetic registry is replaced as a whole; a user's folder of tables is refused."""
    write_registry(tmp_path / "r", n_patients=20, seed=1, fmt="csv")
    write_registry(tmp_path / "r", n_patients=20, seed=1, fmt="parquet")
    assert sorted(p.suffix for p in (tmp_path / "r").iterdir() if p.stem in TABLES) == [".parquet"] * len(TABLES)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "patients.csv").write_text("patient_id\n")
    with pytest.raises(IldStudyError, match="not written by ildstudy"):
        write_registry(mine, n_patients=20, seed=1, fmt="parquet")
    assert [p.name for p in mine.iterdir()] == ["patients.csv"]


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(IldStudyError, match="csv, parquet, xlsx, duckdb"):
        write_registry(tmp_path, n_patients=20, seed=1, fmt="json")


# --- the planted truth, recounted from the tables -------------------------------------------------------------

def test_truth_json_is_written_and_complete(default_csv):
    out, truth = default_csv
    data = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    assert data == json.loads(truth.to_json())
    assert data["seed"] == SEED and data["n_patients"] == 155 and data["design"] == "balanced"
    assert data["arms"] == {"AZA": 66, "MMF": 44}
    assert set(data["attrition"]) == set(STEPS) and all(v > 0 for v in data["attrition"].values())
    assert data["adverse_events"] == {"AZA": {"patients_with_event": 22, "n": 66},
                                      "MMF": {"patients_with_event": 6, "n": 44}}
    months = [str(int(m)) for m in load_protocol("huapaya2019_published").analysis.contrast_months]
    for outcome, published in PUBLISHED_36.items():
        assert list(data["arm_differences"][outcome]) == months
        assert data["arm_differences"][outcome]["36"] == published
        fixed = data["model"][outcome]["fixed_effects"]
        for m in months:
            expected = fixed["armAZA"] + fixed["months:armAZA"] * int(m)
            assert data["arm_differences"][outcome][m] == pytest.approx(expected, abs=1e-6)


def test_planted_counts_match_the_rules(default_registry, default_fate, default_csv):
    fate, counts = default_fate
    truth = default_csv[1]
    assert counts == truth.attrition
    eligible = fate[fate["step"] == ""]
    assert eligible["arm"].value_counts().to_dict() == truth.arms
    assert len(fate) == truth.n_patients == len(default_registry.tables["patients"])


def test_planted_adverse_events_match_the_rules(default_registry, default_fate, default_csv):
    assert adverse_event_patients(default_registry.tables, default_fate[0]) == {
        arm: v["patients_with_event"] for arm, v in default_csv[1].adverse_events.items()}


def test_adverse_events_that_stopped_the_arm_drug_are_consistent(default_registry, default_fate):
    """An event that led to discontinuation lies within two weeks before an arm-drug stop for adverse events."""
    names = DrugNames.builtin()
    fate = default_fate[0].set_index("patient_id")
    meds = default_registry.tables["medications"]
    ae = default_registry.tables["adverse_events"]
    led = ae[ae["led_to_discontinuation"].fillna(False).astype(bool)]
    led = led[led["patient_id"].map(fate["arm"]).notna()]    # patients whose arm the rules decide
    assert len(led) > 10
    for pid, date in zip(led["patient_id"], led["event_date"]):
        arm_drugs = ARM_DRUGS[fate.loc[pid, "arm"]]
        m = meds[(meds["patient_id"] == pid) & (meds["stop_reason"] == "adverse_event")]
        m = m[[names.generic(d) in arm_drugs for d in m["drug"]]]
        gaps = (m["stop_date"] - date).dt.days
        assert ((gaps >= 0) & (gaps <= 14)).any(), pid


@pytest.mark.parametrize("n", [300, 37])
def test_scaled_registry_keeps_its_truth(tmp_path, n):
    truth = write_registry(tmp_path, n_patients=n, seed=8, fmt="parquet")
    registry = load_registry(tmp_path)
    fate, counts = build_cohort(registry.tables)
    assert truth.n_patients == n and truth.design == "sampled"
    assert counts == truth.attrition
    assert fate[fate["step"] == ""]["arm"].value_counts().to_dict() == truth.arms
    assert adverse_event_patients(registry.tables, fate) == {
        a: v["patients_with_event"] for a, v in truth.adverse_events.items()}


def test_scaled_registry_keeps_the_default_proportions():
    frames, truth = generate_registry(3100, np.random.default_rng(1), load_protocol("huapaya2019_published"))
    assert truth.n_patients == len(frames["patients"]) == 3100
    eligible = sum(truth.arms.values())
    assert eligible == 2200 and truth.arms == {"AZA": 1320, "MMF": 880}       # 110/155 and 60/40, scaled
    assert truth.attrition == {s: 20 * v for s, v in default_attrition().items()}
    assert truth.adverse_events["AZA"]["patients_with_event"] == 440 and truth.adverse_events["MMF"][
        "patients_with_event"] == 120


def default_attrition() -> dict[str, int]:
    frames, truth = generate_registry(None, np.random.default_rng(0), load_protocol("huapaya2019_published"))
    return truth.attrition


# --- realistic, valid values ------------------------------------------------------------------------------------

def test_dates_are_never_after_today_and_after_the_cut_only_for_planted_patients(default_registry, default_fate):
    today = pd.Timestamp(dt.date.today())
    cut = pd.Timestamp(load_protocol("huapaya2019_published").index.data_cut)
    fate = default_fate[0].set_index("patient_id")["step"]
    late_ok = set(fate[fate.isin(["index_before_cut", "follow_up"])].index)
    for name, frame in default_registry.tables.items():
        for col in TABLES_BY_NAME[name].columns:
            if col.kind != "date":
                continue
            values = frame[col.name]
            assert (values.dropna() <= today).all(), (name, col.name)
            after = frame.loc[values > cut, "patient_id"]
            assert set(after) <= late_ok, (name, col.name, sorted(set(after) - late_ok)[:5])


def test_drug_spellings_map_back_to_their_generic_names():
    names = DrugNames.from_protocol(load_protocol("huapaya2019_published"))
    for generic, (spellings, _) in DRUG_SPELLINGS.items():
        expected = GENERIC_OF.get(generic, generic)
        for s in spellings:
            assert names.generic(s) == expected, (s, expected)


def test_registry_has_the_promised_mess(default_registry, default_csv):
    raw = pd.read_csv(default_csv[0] / "medications.csv", dtype=str, keep_default_na=False)
    spelled = set(raw["drug"])
    assert {"Imuran", "CellCept", "Myfortic", "Medrol", "Deltasone"} <= spelled
    assert any(d != d.strip() for d in spelled) and any(d.isupper() for d in spelled)
    meds = default_registry.tables["medications"]
    names = DrugNames.builtin()
    generic = meds["drug"].map(names.generic)
    steroids = meds[generic.isin(["prednisone", "prednisolone", "methylprednisolone"])]
    assert set(generic[steroids.index]) == {"prednisone", "prednisolone", "methylprednisolone"}
    changes = steroids.merge(steroids, left_on=["patient_id", "stop_date"], right_on=["patient_id", "start_date"])
    assert len(changes) > 100                            # dose changes: stop of one row = start of the next
    pft = default_registry.tables["pft"]
    assert 0.2 < pft["dlco_pct_pred"].isna().mean() < 0.6
    assert pft["fvc_pct_pred"].isna().any()
    assert meds["stop_date"].isna().any() and (meds["stop_reason"] == "adverse_event").any()


# --- calibration: the default registry looks like the published cohort ----------------------------------------

@pytest.fixture(scope="module")
def default_analysis(default_registry, default_fate):
    return analysis_tables(default_registry.tables, default_fate[0])


def test_baseline_characteristics(default_analysis):
    people, outcomes = default_analysis
    assert 48 <= people["age"].mean() <= 52 and 10 <= people["age"].std() <= 14
    assert 0.65 <= people["female"].mean() <= 0.70
    assert 0.60 <= people["antisynthetase"].mean() <= 0.70
    assert 0.27 <= people["ever_smoker"].mean() <= 0.33
    pred0 = outcomes[(outcomes["outcome"] == "prednisone_mg") & (outcomes["months"] == 0)]
    assert 20 <= pred0["value"].mean() <= 30


@pytest.mark.parametrize("outcome,aza,mmf", [("fvc_pct_pred", 56, 64), ("dlco_pct_pred", 43, 53)])
def test_baseline_lung_function_lower_in_aza(default_analysis, outcome, aza, mmf):
    """STUDY.md: FVC ~56 vs ~64, DLCO ~43 vs ~53 % predicted at treatment start, significantly lower in AZA."""
    people, outcomes = default_analysis
    base = outcomes[(outcomes["outcome"] == outcome) & (outcomes["months"] == 0)].merge(people, on="id")
    a, m = base.loc[base["arm"] == "AZA", "value"], base.loc[base["arm"] == "MMF", "value"]
    assert abs(a.mean() - aza) <= 3 and abs(m.mean() - mmf) <= 4
    assert stats.ttest_ind(a, m, equal_var=False).pvalue < 0.01


@pytest.fixture(scope="module")
def default_fits(default_analysis):
    from ildstudy.lmm import fit_lmm

    people, outcomes = default_analysis
    fits = {}
    for outcome in PUBLISHED_36:
        data = outcomes[outcomes["outcome"] == outcome].merge(people, on="id")
        fits[outcome] = fit_lmm(FORMULA, data, factor_levels={"arm": ["MMF", "AZA"]})
    return fits


def _combination(fit, weights: dict[str, float]):
    terms = list(fit.fixed_effects["term"])
    vector = np.array([[weights.get(t, 0.0) for t in terms]])
    return fit.linear_combination(vector).iloc[0]


@pytest.mark.parametrize("outcome", list(PUBLISHED_36))
def test_study_model_recovers_the_planted_effects(default_fits, default_csv, outcome):
    """The balanced default registry: the study's mixed model estimates the true 36-month difference."""
    truth = default_csv[1]
    est = _combination(default_fits[outcome], {"armAZA": 1.0, "months:armAZA": 36.0})
    assert est["estimate"] == pytest.approx(truth.arm_differences[outcome]["36"], abs=ESTIMATE_TOL[outcome])
    significant = est["p"] < 0.05
    assert significant == (outcome == "prednisone_mg")   # as published: only prednisone differs at 36 months


@pytest.mark.parametrize("outcome,arm,direction", [
    ("fvc_pct_pred", "MMF", 1), ("fvc_pct_pred", "AZA", 1), ("prednisone_mg", "MMF", -1),
    ("prednisone_mg", "AZA", -1), ("dlco_pct_pred", "AZA", 1), ("dlco_pct_pred", "MMF", 0),
])
def test_within_arm_changes_as_published(default_fits, outcome, arm, direction):
    """FVC improves and prednisone falls in both arms; DLCO improves in AZA only."""
    weights = {"months": 1.0} | ({"months:armAZA": 1.0} if arm == "AZA" else {})
    slope = _combination(default_fits[outcome], weights)
    if direction == 0:
        assert slope["p"] > 0.2
    else:
        assert np.sign(slope["estimate"]) == direction and slope["p"] < 0.02


def test_balanced_registries_are_limited_to_one_block():
    with pytest.raises(ValueError, match="one block"):
        generate_registry(60_000, np.random.default_rng(0), load_protocol("huapaya2019_published"), balanced=True)
