"""Federated study (issue 14): a 3-site split of the demo registry federates to the pooled run.

Reference values are not pasted numbers: each federated quantity is compared with the same
quantity computed by the ordinary pooled code (fit_lmm, emmeans, discontinuation) on the pooled
cohort built from the same synthetic registry (ildstudy.synth, seed 2019).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.contingency import chisq_test, fisher_test
from ildstudy.analysis.discontinuation import discontinuation
from ildstudy.analysis.trajectories import model_frame, outcome_formula
from ildstudy.cohort import build_cohort
from ildstudy.cohort.build import Cohort
from ildstudy.data import load_registry
from ildstudy.federated.lmm_exchange import site_moments
from ildstudy.federated.pooled import federate, in_process
from ildstudy.federated.site import monthly_times, summarise_site
from ildstudy.lmm import fit_lmm
from ildstudy.protocol import load_protocol
from ildstudy.synth.writers import write_registry

COEF_TOL = 1e-8      # estimates, SEs, criterion: the "models to 1e-8" (relative)
DF_TOL = 1e-6        # Satterthwaite df, relative
N_SITES = 3


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry")
    write_registry(folder, seed=2019)
    protocol = load_protocol("huapaya2019")
    pooled = build_cohort(load_registry(folder), protocol)
    ids = np.sort(pooled.patients["patient_id"].to_numpy())
    sites = []
    for s in range(N_SITES):
        keep = set(ids[s::N_SITES])
        sites.append(Cohort(
            protocol=protocol, attrition=pooled.attrition,
            patients=pooled.patients[pooled.patients["patient_id"].isin(keep)].reset_index(drop=True),
            outcomes=pooled.outcomes[pooled.outcomes["patient_id"].isin(keep)].reset_index(drop=True),
            adverse_events=pooled.adverse_events[pooled.adverse_events["patient_id"].isin(keep)].reset_index(drop=True),
            excluded=pooled.excluded.iloc[:0], warnings=(), backend=pooled.backend))
    return protocol, pooled, sites


def _summaries(study, min_cell):
    protocol, _, sites = study
    out = [summarise_site(c, protocol, site=f"site{i + 1}", min_cell=min_cell) for i, c in enumerate(sites)]
    return [s for s, _ in out], [st for _, st in out]


@pytest.fixture(scope="module")
def federated(study):
    protocol, _, _ = study
    summaries, states = _summaries(study, min_cell=1)
    fed = federate(summaries, protocol, in_process(states))
    assert fed.results is not None and not fed.pending
    return summaries, states, fed


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def test_models_equal_pooled_fit_to_1e8(study, federated):
    protocol, pooled, _ = study
    _, _, fed = federated
    levels = {"arm": [protocol.reference_arm] + [a.name for a in protocol.arms if a.name != protocol.reference_arm]}
    months = [float(m) for m in protocol.analysis.contrast_months]
    for outcome in protocol.outcomes:
        ref = fit_lmm(outcome_formula(outcome, protocol), model_frame(pooled.patients, pooled.outcomes, outcome.name),
                      factor_levels=levels)
        got = fed.fits[outcome.name]
        assert got.converged and ref.converged
        assert got.n_obs == ref.n_obs and got.n_groups == ref.n_groups
        assert _rel(got.criterion, ref.criterion) < COEF_TOL
        fe, rf = got.fixed_effects, ref.fixed_effects
        assert list(fe["term"]) == list(rf["term"])
        assert _rel(fe["estimate"], rf["estimate"]) < COEF_TOL
        assert _rel(fe["se"], rf["se"]) < COEF_TOL
        assert _rel(fe["df"], rf["df"]) < DF_TOL
        assert _rel(got.residual_sd, ref.residual_sd) < COEF_TOL
        assert _rel(got.random_effects.sd, ref.random_effects.sd) < COEF_TOL
        at = {"months": months}
        for call in (lambda f: f.emmeans("arm", by="months", at=at).table,
                     lambda f: f.contrast("months", by="arm", at=at, ref=months[0]).table,
                     lambda f: f.contrast("arm", by="months", at=at, ref=protocol.reference_arm).table):
            a, b = call(got), call(ref)
            assert _rel(a["estimate"], b["estimate"]) < COEF_TOL
            assert _rel(a["se"], b["se"]) < COEF_TOL
            assert _rel(a["df"], b["df"]) < DF_TOL
        block = fed.results["outcomes"][outcome.name]
        assert 5 < block["theta_rounds"] < 200


def test_counts_equal_pooled_exactly(study, federated):
    protocol, pooled, _ = study
    _, _, fed = federated
    res = fed.results
    pts = pooled.patients
    arms = [a.name for a in protocol.arms]
    assert res["arms"] == {a: int((pts["arm"] == a).sum()) for a in arms}
    t1 = {(r["variable"], r["arm"]): r for r in res["table1"]}
    for arm in arms:
        sub = pts[pts["arm"] == arm]
        assert t1[("sex", arm)]["levels"] == {k: int(v) for k, v in sub["sex"].astype(str).value_counts().items()}
        age = sub["age"].astype(float)
        assert t1[("age", arm)]["n"] == age.notna().sum()
        assert abs(t1[("age", arm)]["mean"] - age.mean()) < 1e-10 * abs(age.mean())
        assert abs(t1[("age", arm)]["sd"] - age.std(ddof=1)) < 1e-9 * age.std(ddof=1)
    ev = pooled.adverse_events.merge(pts[["patient_id", "arm"]], on="patient_id")
    ae = res["adverse_events"]
    for arm in arms:
        assert ae["by_arm"][arm]["patients_with_event"] == ev.loc[ev["arm"] == arm, "patient_id"].nunique()
        assert ae["by_arm"][arm]["events"] == int((ev["arm"] == arm).sum())
    ref_arm = protocol.reference_arm
    arm = [a for a in arms if a != ref_arm][0]
    k = [ev.loc[ev["arm"] == a, "patient_id"].nunique() for a in (arm, ref_arm)]
    n = [int((pts["arm"] == a).sum()) for a in (arm, ref_arm)]
    table = np.array([[k[0], n[0] - k[0]], [k[1], n[1] - k[1]]])
    assert ae["yates"]["p"] == chisq_test(table, correct=True).p
    assert ae["fisher"]["p"] == fisher_test(table).p


def test_km_and_cox_equal_pooled_on_monthly_times(study, federated):
    protocol, pooled, _ = study
    _, _, fed = federated
    t = monthly_times(pooled.patients)
    times = pd.DataFrame({"patient_id": pooled.patients["patient_id"], "arm": t["arm"], "months": t["month"],
                          "event": t["event"], "reason": np.where(t["ae"], "adverse_event", "other")})
    arms = [a.name for a in protocol.arms]
    ref = discontinuation(times, arms, protocol.reference_arm).to_dict()
    got = fed.results["discontinuation"]
    assert got["km"] == ref["km"]
    assert got["logrank_p"] == ref["logrank_p"]
    assert got["cox_hr"]["estimate"] == pytest.approx(ref["cox_hr"]["estimate"], rel=1e-10)
    assert got["adverse_event"]["km"] == ref["adverse_event"]["km"]


def test_site_files_hold_no_identifier_date_or_row_value(study):
    protocol, pooled, sites = study
    summaries, _ = _summaries(study, min_cell=5)
    for summary, cohort in zip(summaries, sites):
        text = json.dumps(summary)
        for pid in cohort.patients["patient_id"].astype(str):
            assert re.search(rf"\b{re.escape(pid)}\b", text) is None, pid
        assert re.search(r"\d{4}-\d{2}-\d{2}", text) is None
        numbers = set(re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text))
        values = cohort.outcomes["value"].dropna().astype(float)
        row_values = {repr(float(v)) for v in values if not float(v).is_integer()}
        row_values |= {repr(float(v)) for v in cohort.patients["age"].dropna().astype(float) if not float(v).is_integer()}
        assert not numbers & row_values
        for block in summary["table1"]:
            for v in list(block.get("levels", {}).values()) + [block.get("missing"), block.get("n")]:
                assert v is None or isinstance(v, str) or v == 0 or v >= 5


def test_small_cells_suppressed_and_pooled_as_unknown(study):
    protocol, _, _ = study
    summaries, states = _summaries(study, min_cell=5)
    small = [r for s in summaries for r in s["adverse_events"]["by_category"] if isinstance(r["events"], str)]
    assert small, "the split should produce at least one suppressed category count"
    fed = federate(summaries, protocol, in_process(states))
    cats = {(r["category"], r["arm"]): r for r in fed.results["adverse_events"]["by_category"]}
    for r in small:
        assert cats[(r["category"], r["arm"])]["events"] is None


def test_theta_answers_do_not_grow_with_patients(study):
    protocol, _, _ = study
    _, states = _summaries(study, min_cell=1)
    from ildstudy.federated.lmm_exchange import working_coordinates

    rows = states[0].rows["fvc_pct_pred"]
    wk = working_coordinates(rows.X.T @ rows.X, rows.X.T @ rows.y, tuple(f"x{i}" for i in range(rows.X.shape[1])))
    ans = site_moments(rows, wk, np.array([1.0, 0.0, 1.0]))
    sizes = {k: np.size(v) for k, v in ans.items()}
    q, p = rows.Z.shape[1], rows.X.shape[1]
    assert sizes["WWS"] == q**4 * p**2 and max(sizes.values()) == q**4 * p**2
    assert rows.n_groups != q and rows.n_groups != p  # no dimension equals the number of patients by accident


def test_cli_file_exchange_matches_in_process(tmp_path):
    """`site summarise` on 3 registry folders split by patient, then the file exchange round by round."""
    from ildstudy.cli import run

    full = tmp_path / "registry"
    write_registry(full, seed=2019)
    tables = {p.name: pd.read_csv(p, dtype=str, keep_default_na=False) for p in full.glob("*.csv")}
    ids = np.sort(tables["patients.csv"]["patient_id"].to_numpy())
    summaries, states = [], []
    for s in range(N_SITES):
        folder = tmp_path / f"site{s + 1}"
        folder.mkdir()
        keep = set(ids[s::N_SITES])
        for name, frame in tables.items():
            frame[frame["patient_id"].isin(keep)].to_csv(folder / name, index=False)
        summary = tmp_path / f"site{s + 1}.json"
        assert run(["site", "summarise", "huapaya2019", str(folder), "--out", str(summary)]) == 0
        summaries.append(str(summary))
        states.append(str(summary.with_suffix(".private.npz")))
    exchange = tmp_path / "exchange"
    for rounds in range(1, 300):
        assert run(["federate", *summaries, "--exchange", str(exchange), "--out", str(tmp_path / "fed")]) == 0
        if (tmp_path / "fed" / "federated.json").exists():
            break
        request = sorted((exchange / "requests").glob("round-*.json"))[-1]
        for s, st in enumerate(states):
            assert run(["site", "answer", st, str(request), "--out", str(exchange / "answers" / f"r{rounds}-s{s}.json")]) == 0
    assert run(["federate", *summaries, *sum((["--state", st] for st in states), []), "--out", str(tmp_path / "local")]) == 0
    by_file = json.loads((tmp_path / "fed" / "federated.json").read_text())
    local = json.loads((tmp_path / "local" / "federated.json").read_text())
    assert by_file == local
    assert rounds == max(v["theta_rounds"] for v in local["outcomes"].values()) + 1
    for path in summaries:
        text = open(path).read()
        assert re.search(r"\d{4}-\d{2}-\d{2}", text) is None
        assert not any(pid in text for pid in ids)
    answers = " ".join(p.read_text() for p in (exchange / "answers").glob("*.json"))
    assert not any(pid in answers for pid in ids)
