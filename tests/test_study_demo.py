"""The demo study end to end (issues 5 and 7): the published findings are reproduced because the generator
and the pipeline are right, outputs are byte-stable, nothing is lost, and nothing identifies a patient.

Published reference values (Huapaya et al., CHEST 2019, abstract; see ../shared/STUDY.md): arms 66 / 44;
adverse events 22/66 vs 6/44, Yates chi-squared p = 0.036; 36-month adjusted AZA - MMF differences
FVC +1.9, DLCO -8.2 (both not significant), prednisone -6.6 mg/day (significant). They appear only here,
as the expectations a correct pipeline must meet; none is written into the pipeline. The published
findings are those of the published reading (protocol ``huapaya2019_published``, run on the demo's
registry); the demo itself runs the default ``huapaya2019`` (no selection on events after index).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from ildstudy.cli import run
from ildstudy.protocol import load_protocol

PUBLISHED_36 = {"fvc_pct_pred": 1.9, "dlco_pct_pred": -8.2, "prednisone_mg": -6.6}  # CHEST 2019 abstract
SIGNIFICANT_36 = {"fvc_pct_pred": False, "dlco_pct_pred": False, "prednisone_mg": True}
ALPHA = 0.05


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo")
    a, b = root / "a", root / "b"
    assert run(["demo", "--out", str(a)]) == 0
    assert run(["demo", "--out", str(b)]) == 0
    return a, b


@pytest.fixture(scope="module")
def published_run(demo_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("published") / "out"
    assert run(["run", "huapaya2019_published", str(demo_runs[0] / "registry"), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def results(published_run) -> dict:
    """The published reading's results (the published findings are checked on these)."""
    return json.loads((published_run / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def default_results(demo_runs) -> dict:
    return json.loads((demo_runs[0] / "results.json").read_text(encoding="utf-8"))


def test_default_protocol_keeps_patients_the_published_reading_drops(default_results, results):
    """Default: the planted later add-ons and patients without a follow-up PFT stay in the cohort."""
    pub = {a: v["n"] for a, v in results["arms"].items()}
    new = {a: v["n"] for a, v in default_results["arms"].items()}
    assert all(new[a] > pub[a] for a in pub)
    steps = {r["step"]: r["excluded"] for r in default_results["attrition"]}
    assert steps["follow_up"] == 0 and steps["other_agents"] < {r["step"]: r["excluded"]
                                                                 for r in results["attrition"]}["other_agents"]
    assert default_results["protocol_sha256"] != results["protocol_sha256"]


def test_results_json_has_the_contract_keys(results):
    for key in ("schema_version", "protocol_sha256", "data_sha256", "arms", "attrition", "table1", "outcomes",
                "adverse_events", "discontinuation"):
        assert key in results
    for name in PUBLISHED_36:
        block = results["outcomes"][name]
        assert set(block) >= {"model", "marginal_means", "change_from_baseline", "arm_differences"}
        model = block["model"]
        assert set(model) >= {"formula", "n_obs", "n_patients", "reml_criterion", "loglik", "converged",
                              "fixed_effects", "random_effects", "residual_sd"}
        terms = [f["term"] for f in model["fixed_effects"]]
        assert terms[:3] == ["(Intercept)", "months", "armAZA"] and "months:armAZA" in terms
        assert model["converged"] is True
        assert {d["contrast"] for d in block["arm_differences"]} == {"AZA - MMF"}


def test_arms_and_adverse_events_as_published(results):
    assert {a: v["n"] for a, v in results["arms"].items()} == {"AZA": 66, "MMF": 44}
    ae = results["adverse_events"]
    assert ae["by_arm"]["AZA"]["patients_with_event"] == 22 and ae["by_arm"]["MMF"]["patients_with_event"] == 6
    assert ae["test"] == "yates"
    assert ae["p"] == pytest.approx(0.036, abs=0.0005)   # R: chisq.test(matrix(c(22,44,6,38),2)) -> 0.03574
    assert round(ae["p"], 2) == 0.04                      # printed as P = .04 in the paper


@pytest.mark.parametrize("outcome", list(PUBLISHED_36))
def test_36_month_differences_contain_the_published_value(results, outcome):
    row = next(r for r in results["outcomes"][outcome]["arm_differences"] if r["month"] == 36)
    assert row["ci_low"] <= PUBLISHED_36[outcome] <= row["ci_high"], row
    assert (row["p"] < ALPHA) is SIGNIFICANT_36[outcome], row


def test_within_arm_changes_in_the_published_direction(results):
    def change(outcome, arm, month=36):
        rows = results["outcomes"][outcome]["change_from_baseline"]
        return next(r for r in rows if r["arm"] == arm and r["month"] == month)

    for arm in ("AZA", "MMF"):
        fvc, pred = change("fvc_pct_pred", arm), change("prednisone_mg", arm)
        assert fvc["estimate"] > 0 and fvc["p"] < ALPHA, fvc          # FVC improved in both arms
        assert pred["estimate"] < 0 and pred["p"] < ALPHA, pred       # prednisone fell in both arms
    dlco_aza = change("dlco_pct_pred", "AZA")
    assert dlco_aza["estimate"] > 0 and dlco_aza["p"] < ALPHA        # DLCO improved in AZA
    dlco_mmf = change("dlco_pct_pred", "MMF")
    assert not (dlco_mmf["estimate"] > 0 and dlco_mmf["p"] < ALPHA)   # ... and not in MMF


def test_table1_baseline_lung_function_lower_in_aza(results):
    for variable in ("fvc_pct_pred", "dlco_pct_pred"):
        row = next(r for r in results["table1"] if r["variable"] == variable)
        aza, mmf = (float(row[a].split(" ")[0]) for a in ("AZA", "MMF"))
        assert aza < mmf and row["p"] < ALPHA and row["test"], row


def test_reruns_are_byte_identical(demo_runs):
    a, b = demo_runs
    for rel in ("results.json", "report.html", "attrition.csv", "tables/table1.csv",
                "tables/prednisone_mg_arm_differences.csv", "figures/forest_differences.svg"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_run_json_holds_what_varies(demo_runs):
    meta = json.loads((demo_runs[0] / "run.json").read_text())
    assert {"started", "finished", "host", "versions", "protocol_sha256", "data_sha256"} <= set(meta)
    text = (demo_runs[0] / "results.json").read_text()
    assert meta["started"] not in text and meta["host"] not in text


@pytest.mark.parametrize("which", ["default", "published"])
def test_nothing_lost_identity_in_attrition(demo_runs, published_run, which):
    att = pd.read_csv((demo_runs[0] if which == "default" else published_run) / "attrition.csv")
    total = int(att.loc[att["step"] == "registry", "remaining"].iloc[0])
    patients = pd.read_csv(demo_runs[0] / "registry" / "patients.csv")
    assert total == len(patients)
    steps = att[~att["step"].isin(["registry", "cohort"])]
    excluded = int(steps["excluded"].sum())
    cohort = int(steps["remaining"].iloc[-1])
    assert excluded + cohort == total
    identity = att[att["step"] == "cohort"].iloc[0]       # the identity row written by every run
    assert (int(identity["excluded"]), int(identity["remaining"])) == (excluded, cohort)
    assert f"registry {total} = excluded {excluded} + cohort {cohort}" == identity["reason"]
    if which == "default":
        return
    # the registry's planted ineligible patients fail exactly the published steps
    truth = json.loads((demo_runs[0] / "registry" / "truth.json").read_text())
    for step, n in truth["attrition"].items():
        assert int(att.loc[att["step"] == step, "excluded"].iloc[0]) == n, step


def _shared_files(out: Path) -> list[Path]:
    files = [out / "report.html", out / "results.json", out / "attrition.csv"]
    files += sorted((out / "tables").glob("*.csv")) + sorted((out / "share").glob("*.csv"))
    return files


def test_no_patient_ids_or_dates_in_shared_outputs(demo_runs):
    out = demo_runs[0]
    reg = out / "registry"
    ids = set(pd.read_csv(reg / "patients.csv", dtype=str)["patient_id"].str.strip())
    dates: set[str] = set()
    for name, cols in {"patients": ["birth_date", "ild_diagnosis_date"], "medications": ["start_date", "stop_date"],
                       "pft": ["test_date"], "adverse_events": ["event_date"]}.items():
        frame = pd.read_csv(reg / f"{name}.csv", dtype=str)
        for c in cols:
            dates |= set(frame[c].dropna().str.strip())
    dates.discard(str(load_protocol("huapaya2019").index.data_cut))  # a protocol date, printed in the methods
    token = re.compile(r"[A-Za-z0-9_\-]+")
    for path in _shared_files(out):
        text = path.read_text(encoding="utf-8")
        words = set(token.findall(text))
        leaked_ids = ids & words
        assert not leaked_ids, f"{path.name} contains patient ids {sorted(leaked_ids)[:3]}"
        leaked_dates = {d for d in dates if d in text}
        assert not leaked_dates, f"{path.name} contains patient dates {sorted(leaked_dates)[:3]}"


def test_share_suppresses_small_counts(demo_runs):
    share = pd.read_csv(demo_runs[0] / "share" / "attrition.csv", dtype=str)
    for col in ("excluded", "remaining", "remaining_AZA", "remaining_MMF"):
        for v in share[col].dropna():
            assert v in ("<5", "*") or int(v) == 0 or int(v) >= 5, (col, v)  # "*": complementary


def test_front_door_gives_the_cli_outputs_byte_for_byte(demo_runs, tmp_path):
    """``ildstudy.run_study`` + the one serializer reproduce the demo's results.json and tables/ exactly."""
    import ildstudy
    from ildstudy.analysis.serialize import results_document, study_tables
    from ildstudy.report.exports import canonical_json, write_tables

    a, _ = demo_runs
    result = ildstudy.run_study("huapaya2019", a / "registry")
    assert canonical_json(results_document(result)) == (a / "results.json").read_text(encoding="utf-8")
    write_tables(study_tables(result), tmp_path, xlsx=False)
    for csv in sorted((a / "tables").glob("*.csv")):
        assert (tmp_path / csv.name).read_bytes() == csv.read_bytes(), csv.name
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == sorted(p.name for p in (a / "tables").glob("*.csv"))


def test_progression_block_and_planted_fvc_slope(demo_runs, default_results):
    """The demo's [progression]: four endpoints, and the AZA - MMF FVC slope (mL/year) covers the planted one.

    Planted (truth.json): FVC % predicted slope difference ``months:armAZA`` points/month; in mL/year that is
    12 x it / 100 x the predicted FVC (litres; the registry's mean of fvc_l / (fvc_pct_pred / 100)) x 1000, an
    approximation (the predicted value varies between patients and falls with age)."""
    pr = default_results["progression"]
    assert [e["name"] for e in pr["endpoints"]] == ["fvc_relative_10", "fvc_absolute_5", "dlco_relative_15", "ppf"]
    registry = demo_runs[0] / "registry"
    truth = json.loads((registry / "truth.json").read_text(encoding="utf-8"))
    per_month = truth["model"]["fvc_pct_pred"]["fixed_effects"]["months:armAZA"]
    from ildstudy.data import load_registry

    pft = load_registry(registry).tables["pft"]
    predicted = (pft["fvc_l"] / (pft["fvc_pct_pred"] / 100)).mean()  # 3.48 L on the seed-2019 registry
    planted = 12 * per_month / 100 * predicted * 1000
    slope = pr["fvc_slope"]
    assert slope["available"] and slope["unit"] == "mL/year"
    diff = next(r for r in slope["slopes"] if r["kind"] == "difference")
    assert diff["ci_low"] <= planted <= diff["ci_high"], (planted, diff)
