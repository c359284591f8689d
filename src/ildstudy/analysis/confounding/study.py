"""The confounding analyses of a study: :func:`study_confounding` (called by ``analyse_cohort`` after safety).

Steps, each in its own module: the propensity score (:mod:`.propensity`) on complete cases, the weights or the
matched set of each design (:mod:`.weights`, :mod:`.matching`), balance before and after (:mod:`.balance`), then
every protocol outcome, the adverse events and discontinuation re-analysed under each design (:mod:`.outcomes`),
with E-values (:mod:`.evalue`). The unadjusted comparison (``none``: weight 1, clustered by patient) comes first
in every table, computed by the same code, so the rows differ only by the design.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ildstudy.analysis.confounding.balance import balance_table, sample_sizes
from ildstudy.analysis.confounding.evalue import evalues, evalues_md
from ildstudy.analysis.confounding.matching import nearest_match
from ildstudy.analysis.confounding.outcomes import risk_difference, weighted_cox, weighted_km, weighted_ls
from ildstudy.analysis.confounding.propensity import covariate_matrix, fit_propensity
from ildstudy.analysis.confounding.result import ConfoundingResult
from ildstudy.analysis.confounding.weights import ESTIMAND, psweights
from ildstudy.analysis.trajectories import model_frame, nearest_month, outcome_formula, patient_positions
from ildstudy.errors import ModelError
from ildstudy.lmm.design import build_design, model_rows
from ildstudy.lmm.formula import parse_formula
from ildstudy.protocol import Protocol


def study_confounding(patients: pd.DataFrame, outcomes: pd.DataFrame, adverse_events: pd.DataFrame,
                      protocol: Protocol) -> ConfoundingResult | None:
    """Run the protocol's ``[confounding]`` analyses; ``None`` when the protocol has none, or more than two arms
    (:func:`confounding_notice` gives the warning).

    Parameters
    ----------
    patients : the cohort's patients table (``patient_id``, ``arm``, covariate columns, ``treatment_months``,
        ``treatment_end``, ``discontinued``).
    outcomes : DataFrame[patient_id, outcome, months, value] — the cohort's long outcome table.
    adverse_events : DataFrame[patient_id, ...] — the cohort's adverse events in follow-up.
    """
    cf = protocol.confounding
    if cf is None or confounding_notice(protocol):
        return None
    treated_arm, ref = protocol.treatment_arm, protocol.reference_arm
    names = cf.covariate_names(protocol.analysis)
    X_all = covariate_matrix(patients, names)
    complete = X_all.notna().all(axis=1).to_numpy()
    arm_all = patients["arm"].astype(str).to_numpy()
    excluded = {a: int(((arm_all == a) & ~complete).sum()) for a in (treated_arm, ref)}
    pts = patients.loc[complete].reset_index(drop=True)
    X = X_all.loc[complete].reset_index(drop=True)
    treated = pts["arm"].astype(str).to_numpy() == treated_arm
    warnings: list[str] = []
    if sum(excluded.values()):
        warnings.append(f"{sum(excluded.values())} patient(s) with a missing propensity-score covariate are left out "
                        "of the confounding analyses (complete cases)")
    fit = fit_propensity(treated, X)
    if not fit.converged:
        warnings.append("the propensity-score model did not converge (separation?): scores near 0 or 1")
    info = {"converged": fit.converged, "iterations": fit.iterations, "n": int(len(pts)),
            "excluded_missing": excluded, "caliper": None, "matched": None}
    ids = pts["patient_id"].astype(str).to_numpy()
    designs = {"none": (np.ones(len(pts)), ids)}
    trimmed = np.zeros(len(pts), dtype=bool)
    for design in cf.designs:
        if design == "matching":
            if not cf.replace and treated.sum() > cf.ratio * (~treated).sum():
                warnings.append(f"matching without replacement: {int((~treated).sum())} {ref} patients for "
                                f"{int(treated.sum())} {treated_arm} patients, so not every {treated_arm} patient "
                                "can be matched")
            m = nearest_match(fit.linear_predictor, treated, ratio=cf.ratio, replace=cf.replace,
                              caliper_sd=cf.caliper or None)
            info["caliper"], info["matched"] = m.caliper, {treated_arm: int((m.matched & treated).sum()),
                                                             ref: int((m.matched & ~treated).sum())}
            cluster = np.where(m.subclass >= 0, np.char.add("set", m.subclass.astype(str)), ids)
            designs[design] = (m.weights, cluster)
        else:
            w = psweights(fit.ps, treated, design, stabilize=cf.stabilize, trim=cf.trim, truncate=cf.truncate)
            trimmed |= w.trimmed
            designs[design] = (w.weights, ids)
    bal, sizes, traj, ae, disc, km = [], [], [], [], [], []
    event = pts["patient_id"].isin(adverse_events["patient_id"]).to_numpy()
    time = pts["treatment_months"].astype(float).to_numpy()
    stopped = (pts["treatment_end"].eq("stop").fillna(False).astype(bool)
               & pts["discontinued"].astype(bool)).to_numpy()
    months = [float(m) for m in protocol.analysis.contrast_months]
    frames = {o.name: _outcome_frame(pts, outcomes, o, protocol) for o in protocol.outcomes}
    for design, (w, cluster) in designs.items():
        estimand = ESTIMAND[design]
        bal.append(balance_table(X, treated, w, estimand).assign(design=design))
        for key, arm in (("treated", treated_arm), ("reference", ref)):
            sizes.append({"design": design, "arm": arm, **sample_sizes(treated, w)[key]})
        for outcome in protocol.outcomes:
            try:
                traj += _trajectory(frames[outcome.name], outcome, protocol, w, cluster, design)
            except ModelError as exc:
                warnings.append(f"{design}: outcome {outcome.name}: {exc}")
        rd = risk_difference(event, treated, w, cluster)
        sel = w > 0
        ae.append({"design": design, "n_treated": int((sel & treated).sum()),
                   "n_reference": int((sel & ~treated).sum()),
                   "events_treated": int((sel & treated & event).sum()),
                   "events_reference": int((sel & ~treated & event).sum()),
                   "risk_treated": rd["risk_treated"], "risk_reference": rd["risk_reference"],
                   "rd": rd["estimate"], "rd_ci_low": rd["ci_low"], "rd_ci_high": rd["ci_high"], "rd_p": rd["p"],
                   **{k: v for k, v in evalues(rd["rr"], rd["rr_ci_low"], rd["rr_ci_high"]).items()}})
        cox = weighted_cox(time, stopped, treated, w, cluster)
        disc.append({"design": design, "n": int(sel.sum()), "events": int((sel & stopped).sum()),
                     "hr": cox.hr if cox else np.nan, "ci_low": cox.ci_low if cox else np.nan,
                     "ci_high": cox.ci_high if cox else np.nan, "p": cox.p if cox else np.nan})
        for arm, a_sel in ((treated_arm, treated), (ref, ~treated)):
            surv = weighted_km(time[a_sel], stopped[a_sel], w[a_sel], [m for m in months if m > 0])
            km += [{"design": design, "arm": arm, "month": m, "surv": float(s)}
                   for m, s in zip([m for m in months if m > 0], surv)]
    scores = pd.DataFrame({"arm": pts["arm"].astype(str).to_numpy(), "ps": fit.ps,
                           "linear_predictor": fit.linear_predictor, "trimmed": trimmed})
    settings = {"design": cf.design, "also": list(cf.also), "ps_covariates": list(names), "stabilize": cf.stabilize,
                "trim": cf.trim, "truncate": cf.truncate, "caliper": cf.caliper, "ratio": cf.ratio,
                "replace": cf.replace}
    balance = pd.concat(bal, ignore_index=True)
    balance = balance[["design", *[c for c in balance.columns if c != "design"]]]
    return ConfoundingResult(
        settings=settings, treated_arm=treated_arm, reference_arm=ref, designs=("none", *cf.designs),
        propensity=fit.coefficients(), propensity_info=info, scores=scores, balance=balance,
        sample_sizes=pd.DataFrame(sizes), outcomes=pd.DataFrame(traj, columns=OUTCOME_COLUMNS),
        adverse_events=pd.DataFrame(ae), discontinuation=pd.DataFrame(disc), km=pd.DataFrame(km),
        warnings=tuple(warnings))


CONFOUNDING_SKIPPED = "[confounding] skipped"
"""How every warning of a skipped ``[confounding]`` begins (the report's section shows these instead)."""


def confounding_notice(protocol: Protocol) -> list[str]:
    """The warning of a protocol whose ``[confounding]`` cannot run: propensity-score designs compare two arms."""
    cf = protocol.confounding
    if cf is None or not cf.designs or len(protocol.arms) == 2:
        return []
    return [f"{CONFOUNDING_SKIPPED}: propensity-score designs ({', '.join(cf.designs)}) compare two arms; this "
            f"protocol has {len(protocol.arms)} ({', '.join(a.name for a in protocol.arms)})"]


OUTCOME_COLUMNS = ["design", "outcome", "month", "contrast", "estimate", "se", "ci_low", "ci_high", "p", "n_obs",
                   "n_patients", "n_clusters", "cluster", "sd", "evalue", "evalue_ci"]


@dataclass
class _OutcomeFrame:
    """One outcome's model rows for every design: ``data`` (complete cases), ``idx`` (each row's patient
    position), ``levels`` (factor levels), ``first`` (each patient's first value by months, sorted by patient),
    and ``full_design`` (the design matrix of all rows, built by the first design that keeps every row)."""

    formula: object
    data: pd.DataFrame
    idx: np.ndarray
    levels: dict
    first: pd.Series
    full_design: object = field(default=None, repr=False)


def _outcome_frame(pts, outcomes, outcome, protocol) -> _OutcomeFrame:
    """The outcome's model rows (complete cases), each row's patient position, and each patient's first value (by
    months; the SD of the E-value); the same for every design."""
    formula = parse_formula(outcome_formula(outcome, protocol))
    data = model_frame(pts, outcomes, outcome.name)
    months = [float(m) for m in protocol.analysis.contrast_months]
    levels = {"arm": [protocol.reference_arm, protocol.treatment_arm]}
    if outcome.time_model == "categorical":
        data["visit"] = [f"{m:g}" for m in nearest_month(data["months"].to_numpy(), tuple(months))]
        levels["visit"] = [f"{m:g}" for m in months if f"{m:g}" in set(data["visit"])]
    used = [outcome.name, "months", *[t for t in data.columns if t not in ("patient", "arm", outcome.name, "months",
                                                                           "visit")]]
    needed = [c for c in used if c in formula.fixed or c in (outcome.name, "months")]
    data = data.dropna(subset=needed).reset_index(drop=True)
    idx = patient_positions(pts, data["patient"])
    first = data.sort_values("months", kind="stable").groupby("patient")[outcome.name].first()
    return _OutcomeFrame(formula, data, idx, levels, first)


def _trajectory(frame: _OutcomeFrame, outcome, protocol, w, cluster, design) -> list[dict]:
    """The outcome's fixed-effects model weighted by ``w``, its arm differences at the contrast months."""
    treated_arm, ref = protocol.treatment_arm, protocol.reference_arm
    formula, data, idx, levels, first = frame.formula, frame.data, frame.idx, frame.levels, frame.first
    months = [float(m) for m in protocol.analysis.contrast_months]
    wi = w[idx]
    positive = wi > 0
    if positive.all():  # weighting designs keep every row: one design matrix serves them all
        if frame.full_design is None:
            frame.full_design = build_design(formula, data, factor_levels=levels)
        d = frame.full_design
    else:
        data = data.loc[positive].reset_index(drop=True)
        idx, wi = idx[positive], wi[positive]
        if data.empty:
            raise ModelError("no measurements with positive weight")
        d = build_design(formula, data, factor_levels=levels)
    fit = weighted_ls(d.X, d.y, wi, cluster[idx], d.fixed_names)
    # a design keeps or drops whole patients, so their first values are those of all rows (sorted by patient as
    # the groupby of the kept rows would give them: the same SD to the last digit)
    patients = data["patient"].unique()
    sd = float(first[first.index.isin(patients)].std(ddof=1))
    if outcome.time_model == "categorical":
        months = [m for m in months if f"{m:g}" in levels["visit"]]
    # one grid of two rows (treated, reference) per contrast month, encoded at once
    grid = data.iloc[np.zeros(2 * len(months), dtype=int)].reset_index(drop=True)
    grid["arm"] = [treated_arm, ref] * len(months)
    grid["months"] = np.repeat(np.asarray(months, dtype=float), 2)
    if outcome.time_model == "categorical":
        grid["visit"] = [f"{m:g}" for m in grid["months"]]
    Xg = model_rows(d.encoding, grid) if months else np.empty((0, len(d.fixed_names)))
    rows = []
    for i, m in enumerate(months):
        c = fit.contrast(Xg[2 * i] - Xg[2 * i + 1])
        ev = evalues_md(c["estimate"], c["se"], sd)
        rows.append({"design": design, "outcome": outcome.name, "month": m, "contrast": f"{treated_arm} - {ref}",
                     **c, "n_obs": fit.n_obs, "n_patients": len(patients),
                     "n_clusters": fit.n_clusters, "cluster": "matched set" if design == "matching" and
                     not protocol.confounding.replace else "patient", "sd": sd, "evalue": ev["evalue"],
                     "evalue_ci": ev["evalue_ci"]})
    return rows
