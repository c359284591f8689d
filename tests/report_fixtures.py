"""A FAKE :class:`~ildstudy.analysis.result.StudyResult` for rendering tests of the report.

THIS IS A FIXTURE, NOT A RESULT. The numbers are made up to *resemble* the published study
(AZA 66 / MMF 44, adverse events 22/66 vs 6/44, 36-month AZA − MMF differences near +1.9, −8.2 and
−6.6) so the report can be laid out and tested without running the pipeline. No model was fitted
to produce them; nothing here may be quoted or compared against anything. The outcome models and
Table 1 are typed results filled with made-up numbers; the adverse-event and discontinuation results
are the real analysis functions run on made-up per-patient data (so they have their real types).

>>> result = fake_study_result()
>>> result.arms
{'AZA': 66, 'MMF': 44}
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ildstudy.analysis.adverse_events import AdverseEventResult, compare_adverse_events
from ildstudy.analysis.discontinuation import DiscontinuationResult, discontinuation
from ildstudy.analysis.result import OutcomeResult, StudyResult
from ildstudy.analysis.table1 import Table1Result
from ildstudy.protocol import load_protocol

ARMS = {"AZA": 66, "MMF": 44}
# Made-up linear trajectories (intercept, slope per month) per arm, and residual/between-patient SDs.
TRAJECTORIES = {
    "fvc_pct_pred": {"AZA": (56.0, 0.330), "MMF": (64.0, 0.0553), "sd": (12.0, 0.12, 4.0)},
    "dlco_pct_pred": {"AZA": (43.0, 0.050), "MMF": (53.0, 0.0), "sd": (11.0, 0.10, 5.0)},
    "prednisone_mg": {"AZA": (24.0, -0.340), "MMF": (20.0, -0.0456), "sd": (7.0, 0.08, 4.0)},
}
SE_BASE = {"fvc_pct_pred": 1.8, "dlco_pct_pred": 1.9, "prednisone_mg": 1.2}
AE = {"AZA": 22, "MMF": 6}
AE_CATEGORIES = {  # patients with >= 1 event of the category, by arm (made up)
    "cytopenia": (8, 2), "hepatotoxicity": (5, 1), "gi_intolerance": (6, 2),
    "infection": (4, 1), "rash": (2, 0), "pancreatitis": (1, 0),
}


def _mm_se(name: str, month: float) -> float:
    return SE_BASE[name] * np.sqrt(1.0 + ((month - 14.0) / 22.0) ** 2)


def _outcome(protocol, outcome, rng: np.random.Generator) -> OutcomeResult:
    name = outcome.name
    spec = TRAJECTORIES[name]
    months = list(protocol.analysis.contrast_months)
    df = 102.4
    tq = stats.t.ppf(0.975, df)
    mm, cfb, diffs = [], [], []
    for arm in ARMS:
        b0, b1 = spec[arm]
        for m in months:
            est, se = b0 + b1 * m, _mm_se(name, m) * (1.15 if arm == "MMF" else 1.0)
            mm.append({"arm": arm, "month": float(m), "estimate": est, "se": se, "df": df,
                       "ci_low": est - tq * se, "ci_high": est + tq * se})
            ce, cs = b1 * m, 0.045 * m + 1e-12
            cfb.append({"arm": arm, "month": float(m), "estimate": ce, "se": cs, "df": df,
                        "ci_low": ce - tq * cs, "ci_high": ce + tq * cs,
                        "p": float(2 * stats.t.sf(abs(ce / cs), df)) if m > 0 else np.nan})
    for m in months:
        (a0, a1), (r0, r1) = spec["AZA"], spec["MMF"]
        est = (a0 + a1 * m) - (r0 + r1 * m)
        se = float(np.hypot(_mm_se(name, m), 1.15 * _mm_se(name, m)))
        diffs.append({"month": float(m), "contrast": "AZA - MMF", "estimate": est, "se": se, "df": df,
                      "ci_low": est - tq * se, "ci_high": est + tq * se,
                      "p": float(2 * stats.t.sf(abs(est / se), df))})
    # Observed values: irregular visits, a random intercept and slope per (anonymous) series.
    rows, series = [], 0
    sd_int, sd_slope, sd_res = spec["sd"]
    for arm, n in ARMS.items():
        b0, b1 = spec[arm]
        for _ in range(n):
            series += 1
            u0, u1 = rng.normal(0, sd_int), rng.normal(0, sd_slope)
            last = rng.uniform(14, 60)
            t = 0.0
            while t <= last:
                y = b0 + u0 + (b1 + u1) * t + rng.normal(0, sd_res)
                if name == "prednisone_mg":
                    y = max(0.0, y)
                rows.append({"series": series, "arm": arm, "months": round(t, 2), "value": round(y, 1)})
                t += rng.uniform(2.5, 8.0)
    observed = pd.DataFrame(rows)
    fe = pd.DataFrame(
        [("(Intercept)", spec["MMF"][0], 3.1, 104.2), ("months", spec["MMF"][1], 0.041, 88.3),
         ("armAZA", spec["AZA"][0] - spec["MMF"][0], 2.6, 105.9), ("sexM", -1.4, 2.4, 103.7),
         ("age", -0.08, 0.09, 104.8), ("antisynthetaseTRUE", 1.1, 2.5, 104.1),
         ("smokingever", -2.0, 2.6, 103.9), ("months:armAZA", spec["AZA"][1] - spec["MMF"][1], 0.052, 86.1)],
        columns=["term", "estimate", "se", "df"])
    fe["t"] = fe["estimate"] / fe["se"]
    fe["p"] = 2 * stats.t.sf(fe["t"].abs(), fe["df"])
    formula = f"{name} ~ months * arm + sex + age + antisynthetase + smoking + (1 + months | patient)"
    model = {
        "formula": formula, "n_obs": int(len(observed)), "n_patients": sum(ARMS.values()),
        "reml_criterion": 7012.3 + len(name), "loglik": -3506.2 - len(name), "converged": True,
        "fixed_effects": fe.to_dict(orient="records"),
        "random_effects": {"terms": ["(Intercept)", "months"], "sd": [sd_int, sd_slope], "corr": [[1.0, -0.21], [-0.21, 1.0]]},
        "residual_sd": sd_res, "method": "REML", "singular": False, "df_method": "satterthwaite",
    }
    return OutcomeResult(
        name=name, label=outcome.label or name, formula=formula, model=model, fixed_effects=fe,
        marginal_means=pd.DataFrame(mm), change_from_baseline=pd.DataFrame(cfb),
        arm_differences=pd.DataFrame(diffs), observed=observed,
    )


def _adverse_events(cats: dict[str, tuple[int, int]], test: str) -> AdverseEventResult:
    """AE[arm] of the arm's patients have events; each category's patients are taken in turn from them."""
    per_patient, events = [], []
    for j, (arm, n) in enumerate(ARMS.items()):
        ids = [f"{arm}{i:03d}" for i in range(n)]
        per_patient += [{"patient_id": pid, "arm": arm, "any_event": i < AE[arm]} for i, pid in enumerate(ids)]
        nxt = 0
        for cat, counts in cats.items():
            for _ in range(counts[j]):
                events.append({"patient_id": ids[nxt % AE[arm]], "arm": arm, "category": cat,
                               "led_to_discontinuation": False})
                nxt += 1
    return compare_adverse_events(pd.DataFrame(per_patient), pd.DataFrame(events), list(ARMS), "MMF", test=test)


def _discontinuation(rng: np.random.Generator) -> DiscontinuationResult:
    """Made-up stop times: exponential any-reason stops, a share of them for adverse events, uniform censoring."""
    rates = {"AZA": 1 / 40, "MMF": 1 / 55}
    ae_share = {"AZA": 0.35, "MMF": 0.15}
    rows = []
    for arm, n in ARMS.items():
        t_event = rng.exponential(1 / rates[arm], n)
        t_cens = rng.uniform(14, 60, n)
        ae = rng.uniform(size=n) < ae_share[arm]
        for i in range(n):
            rows.append({"patient_id": f"{arm}{i:03d}", "arm": arm,
                         "months": float(np.round(min(t_event[i], t_cens[i]), 1)),
                         "event": bool(t_event[i] <= t_cens[i]),
                         "reason": "adverse_event" if ae[i] else "inefficacy"})
    return discontinuation(pd.DataFrame(rows), list(ARMS), "MMF")


def fake_study_result(*, title: str | None = None, arm_label: str | None = None,
                      category: str | None = None, seed: int = 7) -> StudyResult:
    """Build the FAKE study result (see the module docstring: a rendering fixture, not results).

    Parameters
    ----------
    title : replaces the protocol title (to test escaping).
    arm_label : replaces the first arm's label (to test escaping).
    category : an extra adverse-event category name (to test escaping of data strings).
    seed : seed of the made-up observed values and discontinuation times.
    """
    rng = np.random.default_rng(seed)
    protocol = load_protocol("huapaya2019")
    update: dict = {}
    if title is not None:
        update["title"] = title
    if arm_label is not None:
        update["arms"] = (protocol.arms[0].model_copy(update={"label": arm_label}), protocol.arms[1])
    protocol = protocol.model_copy(update=update)

    # Shapes as the cohort code writes them: ``remaining`` plus nullable per-arm counts (<NA> before arms).
    attrition = pd.DataFrame(
        [("registry", "patients in the registry", 0, 148, None, None),
         ("population", "not myositis or no ILD", 8, 140, None, None),
         ("arm_drug", "index date after the data cut", 4, 136, 82, 54),
         ("other_agents", "other steroid-sparing agent", 12, 124, 75, 49),
         ("both_arms", "exposed to both arms", 6, 118, 71, 47),
         ("baseline_pft", "no baseline PFT", 5, 113, 68, 45),
         ("follow_up", "no follow-up measurement", 3, 110, 66, 44),
         ("cohort", "registry 148 = excluded 38 + cohort 110", 38, 110, 66, 44)],
        columns=["step", "reason", "excluded", "remaining", "remaining_AZA", "remaining_MMF"])
    attrition = attrition.astype({"remaining_AZA": "Int64", "remaining_MMF": "Int64"})

    # As the Table 1 code writes it: one row per continuous or binary variable (a binary's level is the
    # value counted), one per level of a categorical one; p, test, SMD, missing on its first row only.
    t1_table = pd.DataFrame(
        [("age", "Age at index, years", None, "49.8 (11.9)", "51.2 (12.4)", 0.551, "Welch t-test", 0.115, 0),
         ("sex", "Female", "F", "44 (66.7%)", "30 (68.2%)", 0.969, "Yates chi-squared", 0.032, 0),
         ("antisynthetase", "Antisynthetase antibody", True, "43 (65.2%)", "27 (61.4%)", 0.838,
          "Yates chi-squared", 0.079, 0),
         ("smoking", "Ever smoker", "ever", "19 (29.2%)", "12 (27.9%)", 0.912, "Yates chi-squared", 0.061, 2),
         ("diagnosis", "Diagnosis", "ASyS", "30 (45.5%)", "19 (43.2%)", 0.74, "Fisher's exact", 0.2, 0),
         ("diagnosis", "Diagnosis", "DM", "20 (30.3%)", "15 (34.1%)", None, None, None, None),
         ("diagnosis", "Diagnosis", "PM", "16 (24.2%)", "10 (22.7%)", None, None, None, None),
         ("fvc_pct_pred", "Baseline FVC, % predicted", None, "56.1 (14.2)", "64.3 (15.0)", 0.004, "Welch t-test",
          0.56, 0),
         ("dlco_pct_pred", "Baseline DLCO, % predicted", None, "43.2 (13.1)", "53.1 (14.8)", 0.0004,
          "Welch t-test", 0.71, 3),
         ("prednisone_mg", "Baseline prednisone-equivalent, mg/day", None, "20.0 [10.0, 30.0]",
          "20.0 [10.0, 27.5]", 0.62, "Wilcoxon rank-sum", 0.09, 0)],
        columns=["variable", "label", "level", "AZA", "MMF", "p", "test", "smd", "missing"], dtype=object)

    outcomes = {o.name: _outcome(protocol, o, rng) for o in protocol.outcomes}

    table1 = Table1Result(arms=tuple(ARMS), n=dict(ARMS), table=t1_table, numbers=pd.DataFrame(),
                          tests=pd.DataFrame())

    cats = dict(AE_CATEGORIES)
    if category is not None:
        cats[category] = (1, 1)
    provenance = {"ildstudy_version": "0.1.0", "protocol_sha256": protocol.sha256(),
                  "data_sha256": "f" * 8 + "0" * 56}
    return StudyResult(
        protocol=protocol, arms=dict(ARMS), attrition=attrition, table1=table1, outcomes=outcomes,
        adverse_events=_adverse_events(cats, protocol.analysis.adverse_event_test),
        discontinuation=_discontinuation(rng), provenance=provenance,
    )
