"""Competing risks against R (survival 3.5-3: survfit multi-state, coxph, finegray; cmprsk 2.2-11: cuminc, crr).

Reference numbers come from tests/reference/safety_reference.R (versions in the fixture) on
tests/reference/analysis/data/competing_risks.csv: 96 patients, whole months (ties among events and between events
and censorings), cause 1 = stopped for an adverse event, 2 = stopped for another reason or switched, 0 = censored.
The suite never runs R.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.competing_risks import (
    EVENT_FREE, aalen_johansen, censoring_survival, competing_risks, confidence_limits, fine_gray)
from ildstudy.analysis.kaplan_meier import kaplan_meier

REF_DIR = Path(__file__).parent / "reference" / "analysis"
REF = json.loads((REF_DIR / "competing_risks.json").read_text(encoding="utf-8"))
DATA = pd.read_csv(REF_DIR / REF["data"]).rename(columns={"status": "cause"})
MODELS = {m["cause"]: m for m in REF["models"]}
IS_AZA = (DATA["arm"] == "AZA").to_numpy()

# Aalen–Johansen estimate, IJ standard error and log interval: the same closed-form arithmetic as R (measured 6e-16)
AJ_ATOL = 1e-12
# Fine–Gray / Cox: both sides iterate Newton–Raphson to convergence (measured: coef 6e-14, SE 3e-15, loglik 4e-13)
FG_COEF_ATOL = 1e-9
FG_SE_ATOL = 1e-9
FG_LOGLIK_ATOL = 1e-8
COX_COEF_RTOL = 1e-7
# cmprsk::crr stops when the score is < gtol = 1e-6, which leaves its coefficient ~1e-6 from the maximum (measured
# 8e-7 and 1.6e-6); its log-likelihood, flat at the maximum, agrees to 1e-11.
CRR_COEF_ATOL = 5e-6
CRR_LOGLIK_ATOL = 1e-8


@pytest.fixture(scope="module")
def result():
    return competing_risks(DATA, ["AZA", "MMF"], "MMF", cause_labels={1: "adverse_event", 2: "other"})


def test_fixture_provenance():
    assert REF["source"] == "tests/reference/safety_reference.R"
    assert REF["cmprsk_version"] and REF["survival_version"] and REF["r_version"].startswith("R version")
    assert REF["aalen_johansen"]["conf_type"] == "log"


@pytest.mark.parametrize("arm", ["AZA", "MMF"])
def test_aalen_johansen_matches_survfit_multistate(result, arm):
    ci = result.cumulative_incidence[arm]
    rows = [r for r in REF["aalen_johansen"]["rows"] if r["arm"] == arm]
    assert len(ci.table) == 3 * len(rows)
    for r in rows:   # survfit(Surv(time, factor(status, 0:2)) ~ arm): pstate, std.err, lower, upper
        for j, state in enumerate([EVENT_FREE, "1", "2"]):
            q = ci.table[(ci.table["time"] == r["time"]) & (ci.table["state"] == state)]
            assert len(q) == 1
            q = q.iloc[0]
            assert q["n_risk"] == r["n_risk"] and q["n_censor"] == r["n_censor"]
            if j:
                assert q["n_event"] == r["n_event"][j - 1]
            assert q["estimate"] == pytest.approx(r["pstate"][j], abs=AJ_ATOL)
            assert q["std_err"] == pytest.approx(r["std_err"][j], abs=AJ_ATOL)
            if r["lower"][j] is None:
                assert math.isnan(q["ci_low"]) and math.isnan(q["ci_high"])
            else:
                assert q["ci_low"] == pytest.approx(r["lower"][j], abs=AJ_ATOL)
                assert q["ci_high"] == pytest.approx(r["upper"][j], abs=AJ_ATOL)


def test_cumulative_incidence_at_times_matches_cuminc_estimate(result):
    for r in REF["cuminc"]["at"]:   # cmprsk::timepoints(cuminc(time, status, arm), report_times)$est
        ours = result.cumulative_incidence[r["arm"]].at(r["times"], r["cause"])
        np.testing.assert_allclose(ours["estimate"], r["est"], rtol=0, atol=AJ_ATOL)


def test_event_free_state_is_kaplan_meier():
    """S(t) of the multi-state fit is the all-cause Kaplan–Meier (independent of R)."""
    s = DATA[DATA["arm"] == "AZA"]
    ci = aalen_johansen(s["time"], s["cause"])
    km = kaplan_meier(s["time"], s["cause"] > 0)
    ef = ci.table[ci.table["state"] == EVENT_FREE]
    np.testing.assert_allclose(ef["estimate"], km.table["survival"], atol=1e-14)
    total = ef["estimate"].to_numpy() + sum(ci.cif(k)["estimate"].to_numpy() for k in ci.causes)
    np.testing.assert_allclose(total, 1.0, atol=1e-14)


def test_ij_standard_error_by_brute_force_jackknife_derivative():
    """The IJ SE is sqrt(Σ (∂F/∂w_i)²); check ∂F/∂w_i by finite differences on duplicated weights (no R)."""
    t = np.array([1, 2, 2, 3, 4, 4, 5, 6, 7, 7], dtype=float)
    c = np.array([1, 2, 0, 1, 1, 0, 2, 1, 0, 1])

    def cif_last(w):      # weighted AJ written directly
        S, F = 1.0, 0.0
        for tt in np.unique(t):
            r = w[t >= tt].sum()
            d1 = w[(t == tt) & (c == 1)].sum()
            d = w[(t == tt) & (c > 0)].sum()
            F += S * d1 / r
            S *= 1 - d / r
        return F

    h = 1e-6
    infl = [(cif_last(np.ones(10) + h * np.eye(10)[i]) - cif_last(np.ones(10) - h * np.eye(10)[i])) / (2 * h)
            for i in range(10)]
    ours = aalen_johansen(t, c).cif(1).iloc[-1]
    assert ours["estimate"] == pytest.approx(cif_last(np.ones(10)), abs=1e-14)
    assert ours["std_err"] == pytest.approx(math.sqrt(sum(v * v for v in infl)), rel=1e-7)


@pytest.mark.parametrize("cause", [1, 2])
def test_cause_specific_cox_matches_coxph(result, cause):
    ours = result.cause_specific[cause]
    r = MODELS[cause]["cause_specific"]["efron"]     # coxph(Surv(time, status == k) ~ arm)
    assert ours.term == "armAZA"
    assert ours.coef == pytest.approx(r["coef"], rel=COX_COEF_RTOL)
    assert ours.se == pytest.approx(r["se"], rel=COX_COEF_RTOL)
    assert ours.p == pytest.approx(r["p"], rel=1e-6)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((r["ci_low"], r["ci_high"]), rel=COX_COEF_RTOL)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("cause", [1, 2])
def test_fine_gray_matches_finegray_weighted_coxph(cause, ties):
    ours = fine_gray(DATA["time"], DATA["cause"], IS_AZA, cause, "armAZA", ties=ties)
    r = MODELS[cause]["finegray"][ties]              # coxph(Surv(fgstart, fgstop, fgstatus) ~ arm, weights = fgwt)
    rob = MODELS[cause]["finegray"][f"robust_{ties}"]  # ... + cluster(patient_id)
    assert ours.coef == pytest.approx(r["coef"], abs=FG_COEF_ATOL)
    assert ours.se == pytest.approx(r["naive_se"], abs=FG_SE_ATOL)          # sqrt(diag(fit$naive.var))
    assert ours.robust_se == pytest.approx(rob["se"], abs=FG_SE_ATOL)       # sqrt(diag(fit$var)), clustered
    assert ours.robust_p == pytest.approx(rob["p"], rel=1e-7)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((rob["ci_low"], rob["ci_high"]), rel=1e-8)
    assert ours.loglik_null == pytest.approx(r["loglik"][0], abs=FG_LOGLIK_ATOL)
    assert ours.loglik == pytest.approx(r["loglik"][1], abs=FG_LOGLIK_ATOL)


@pytest.mark.parametrize("cause", [1, 2])
def test_fine_gray_crr_weights_match_cmprsk_crr(cause):
    ours = fine_gray(DATA["time"], DATA["cause"], IS_AZA, cause, "armAZA", ties="breslow", censoring_ties="crr")
    r = MODELS[cause]["crr"]                          # crr(time, status, cov1 = arm == "AZA", failcode = k)
    assert r["converged"]
    assert ours.coef == pytest.approx(r["coef"], abs=CRR_COEF_ATOL)
    assert ours.loglik == pytest.approx(r["loglik"], abs=CRR_LOGLIK_ATOL)
    # the two censoring conventions give different estimates on these tied data (so the option matters)
    fg = fine_gray(DATA["time"], DATA["cause"], IS_AZA, cause, "armAZA", ties="breslow")
    assert abs(fg.coef - ours.coef) > 1e-3   # measured 2.3e-3 (cause 1), 1.5e-3 (cause 2)


def test_censoring_survival_conventions():
    t = np.array([1.0, 2.0, 2.0, 3.0])
    c = np.array([1, 1, 0, 0])
    ct, g_fg = censoring_survival(t, c, "finegray")    # at t = 2 the event leaves first: 1 of 2 at risk censored
    _, g_crr = censoring_survival(t, c, "crr")         # ordinary KM: 1 of 3
    assert ct.tolist() == [2.0, 3.0]
    assert g_fg.tolist() == pytest.approx([0.5, 0.0]) and g_crr.tolist() == pytest.approx([2 / 3, 0.0])


def test_no_event_in_an_arm_gives_none():
    d = DATA.assign(cause=np.where(IS_AZA & (DATA["cause"] == 1), 0, DATA["cause"]))
    res = competing_risks(d, ["AZA", "MMF"], "MMF")
    assert res.fine_gray[1] is None and res.cause_specific[1] is None and res.fine_gray[2] is not None
    json.dumps(res.to_dict(), allow_nan=False)


def test_validation():
    with pytest.raises(ValueError, match="cause"):
        aalen_johansen([1, 2], [1, -1])
    with pytest.raises(ValueError, match="conf_type"):
        confidence_limits([0.5], [0.1], "arcsine", 0.95)
    with pytest.raises(ValueError, match="ties"):
        fine_gray(DATA["time"], DATA["cause"], IS_AZA, 1, ties="exact")
    with pytest.raises(ValueError, match="column"):
        competing_risks(DATA.drop(columns="cause"), ["AZA", "MMF"], "MMF")


def test_to_dict(result):
    out = result.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["cause_labels"] == {"1": "adverse_event", "2": "other"}
    assert out["fine_gray_shr"]["1"]["estimate"] == pytest.approx(MODELS[1]["finegray"]["efron"]["hr"], rel=1e-9)
