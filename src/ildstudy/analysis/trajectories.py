"""Each outcome's mixed model over time, and its marginal means and contrasts.

The model, as a biostatistician would write it in lme4::

    value ~ months * arm + female + age + antisynthetase + ever_smoker + (1 + months | patient)

(covariates as chosen by the protocol; random intercept only if the protocol says so; with
``time_model = "categorical"`` the visit month is a factor and the random part is an intercept; with
``natural_spline`` / ``piecewise`` the time term is ``ns(months, knots = ..., Boundary.knots = ...)`` /
``pl(months, knots = ...)``). Arms are a factor whose reference level is the protocol's reference arm, so R
prints the terms ``armAZA`` and ``months:armAZA``. Marginal means are emmeans' with the protocol's
``analysis.marginal_means`` (``weights``, ``cov.keep``), Satterthwaite df. The arm differences carry their role
(the declared primary endpoint, or exploratory) and p-values adjusted within each outcome's family
(``analysis.multiplicity``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ildstudy.analysis.outcome_slopes import contrast_support, outcome_slopes
from ildstudy.analysis.result import OutcomeResult
from ildstudy.errors import ModelError
from ildstudy.lmm import fit_lmm
from ildstudy.lmm.adjust import adjust_p
from ildstudy.lmm.weighting import describe_weighting
from ildstudy.protocol import Outcome, Protocol
from ildstudy.variables import CovariateTerms, covariate_spec, covariates

#: Covariate name -> model column (``sex`` -> ``female``, ``smoking`` -> ``ever_smoker``), from the
#: registry of :mod:`ildstudy.variables`.
COVARIATE_COLUMNS = CovariateTerms()
CI_COLUMNS = ["estimate", "se", "df", "ci_low", "ci_high"]


def patient_positions(patients: pd.DataFrame, ids: pd.Series) -> np.ndarray:
    """Each id's row in ``patients`` (-1 when absent). A cohort's outcome table gives its ids as a categorical
    over the patients table's ids (:func:`ildstudy.cohort.build_cohort`): then the codes are the positions."""
    keys = pd.Index(patients["patient_id"])
    if isinstance(ids.dtype, pd.CategoricalDtype) and ids.cat.categories.equals(keys):
        return ids.cat.codes.to_numpy(dtype=np.int64)
    if not keys.is_unique:
        raise ValueError("patient_id is not unique in the patients table")
    return keys.get_indexer(ids)


def model_frame(patients: pd.DataFrame, outcomes: pd.DataFrame, outcome: str,
                covariate_names=None) -> pd.DataFrame:
    """Join one outcome's long rows with the patient covariates, as model columns.

    Parameters
    ----------
    patients : DataFrame[patient_id, arm, <covariate columns>...]
        The cohort's patient table.
    outcomes : DataFrame[patient_id, outcome, months, value]
        The cohort's long outcome table.
    covariate_names : sequence of str, optional
        Registered covariates (:mod:`ildstudy.variables`) to add, each as its model column (``term``:
        binary 1.0/0.0, numeric float, factor text). Default: every registered covariate whose column the
        patients table has.
    """
    rows = outcomes.loc[outcomes["outcome"] == outcome, ["patient_id", "months", "value"]]
    specs = ([covariate_spec(c) for c in covariate_names] if covariate_names is not None
             else [s for s in covariates().values() if s.column in patients.columns])
    cov = {"patient_id": patients["patient_id"], "arm": patients["arm"].astype(str)}
    for spec in specs:
        cov.setdefault(spec.term, spec.model_values(patients[spec.column]))
    # an inner many-to-one join on patient_id, by position and straight into one frame (pandas' merge, concat and
    # rename copy the ~20 columns several times: 1 s a call at 100,000 patients); rows keep their order, as
    # merge's inner join does. ``copy=False``: the columns are new arrays, and pandas would otherwise copy them
    # all into one 2-D block per dtype (0.3 s of a 0.35 s call at 100,000 patients)
    pos = patient_positions(patients, rows["patient_id"])
    keep = pos >= 0
    pos = pos[keep]
    patient = patients["patient_id"].to_numpy(dtype=object)[pos]
    columns = {"patient": patient, "months": rows["months"].to_numpy()[keep],
               outcome: rows["value"].to_numpy()[keep]}
    for name, values in cov.items():
        if name != "patient_id":
            columns.setdefault(name, pd.Series(values).reset_index(drop=True).take(pos).reset_index(drop=True))
    return pd.DataFrame(columns, copy=False)


def time_term(outcome: Outcome, protocol: Protocol) -> str:
    """The fixed-effects time term of the outcome's ``time_model``: ``months``, ``visit``,
    ``ns(months, knots = c(12, 36), Boundary.knots = c(0, 60))`` (exactly ``splines::ns``) or
    ``pl(months, knots = c(12))`` (piecewise linear: months plus ``pmax(months - knot, 0)`` per knot)."""
    knots = ", ".join(f"{k:g}" for k in outcome.knots)
    if outcome.time_model == "categorical":
        return "visit"
    if outcome.time_model == "natural_spline":
        lo, hi = outcome.boundary_knots or (0.0, protocol.follow_up.max_months)
        return f"ns(months, knots = c({knots}), Boundary.knots = c({lo:g}, {hi:g}))"
    if outcome.time_model == "piecewise":
        return f"pl(months, knots = c({knots}))"
    return "months"


def outcome_formula(outcome: Outcome, protocol: Protocol) -> str:
    """The lme4 formula: ``y ~ time * arm + covariates + time:covariate... + (random part)``; the covariate
    x time terms are the protocol's ``analysis.time_interactions``; the time term is :func:`time_term`."""
    terms = [COVARIATE_COLUMNS[c] for c in protocol.analysis.covariates]
    time = time_term(outcome, protocol)
    terms += [f"{time}:{COVARIATE_COLUMNS[c]}" for c in protocol.analysis.time_interactions]
    fixed = f"{outcome.name} ~ {time} * arm" + "".join(f" + {t}" for t in terms)
    if outcome.time_model == "categorical" or outcome.random_effects == "intercept":
        return f"{fixed} + (1 | patient)"
    return f"{fixed} + (1 + months | patient)"


def nearest_month(months: np.ndarray, grid: tuple[float, ...]) -> np.ndarray:
    """Each time mapped to the nearest protocol month (for categorical visit models)."""
    g = np.asarray(grid, dtype=float)
    return g[np.abs(np.asarray(months, dtype=float)[:, None] - g[None, :]).argmin(axis=1)]


def fit_outcome(outcome: Outcome, frame: pd.DataFrame, protocol: Protocol, *, detail: str = "all") -> OutcomeResult:
    """Fit the protocol's model of one outcome and compute means, changes and arm differences.

    ``detail="differences"`` computes only the model and the arm differences (what a sensitivity analysis is
    summarised by, :mod:`ildstudy.analysis.sensitivity`): ``marginal_means``, ``change_from_baseline`` and
    ``observed`` are then empty and ``slopes`` / ``contrast_support`` None. The arm differences are the same.

    Raises :class:`~ildstudy.errors.ModelError` naming the outcome when its model cannot be fitted
    (e.g. every row has a missing covariate, or the design is collinear)."""
    if detail not in ("all", "differences"):
        raise ValueError(f"detail must be 'all' or 'differences', got {detail!r}")
    full = detail == "all"
    arms = [a.name for a in protocol.arms]
    levels = {"arm": [protocol.reference_arm] + [a for a in arms if a != protocol.reference_arm]}
    months = [float(m) for m in protocol.analysis.contrast_months]
    data = frame.copy() if outcome.time_model == "categorical" else frame
    formula = outcome_formula(outcome, protocol)
    if outcome.time_model == "categorical":
        data["visit"] = [_month_label(m) for m in nearest_month(data["months"].to_numpy(), tuple(months))]
        levels["visit"] = [_month_label(m) for m in months if _month_label(m) in set(data["visit"])]
        spec, at = "visit", {}
    else:
        spec, at = "months", {"months": months}
    values = data[outcome.name].dropna()
    if len(values) and values.nunique() == 1:
        raise ModelError(f"outcome {outcome.name}: every measurement in the cohort is {values.iloc[0]:g} "
                         f"({len(values)} measurements); a mixed model of a constant cannot be fitted")
    grid = {"weights": protocol.analysis.marginal_means.weights, "cov_keep": protocol.analysis.marginal_means.cov_keep}
    means = change = slopes = None
    try:
        fit = fit_lmm(formula, data, reml=True, factor_levels=levels)
        contrasts = fit.contrast("arm", by=spec, at=at, method="trt.vs.ctrl", ref=protocol.reference_arm, **grid)
        diff = contrasts.table
        if full:
            means = fit.emmeans("arm", by=spec, at=at, **grid).table
            change = fit.contrast(spec, by="arm", at=at, ref=_ref(spec, months), **grid).table
            slopes = outcome_slopes(fit, formula, arms, protocol.reference_arm, months, grid=grid)
    except ModelError as exc:
        counts = data.groupby("arm")["patient"].nunique().reindex(arms, fill_value=0)
        who = ", ".join(f"{a} {int(n)}" for a, n in counts.items())
        empty = [c for c in (COVARIATE_COLUMNS[k] for k in protocol.analysis.covariates) if data[c].isna().all()]
        hint = f"; covariate {', '.join(empty)} is missing for every patient" if empty else ""
        raise ModelError(f"outcome {outcome.name}: the model {formula!r} cannot be fitted on this cohort "
                         f"({len(data)} measurements; patients with a measurement: {who}): {exc}{hint}") from None

    ad = pd.DataFrame({"month": _as_month(diff[spec]), "contrast": diff["contrast"].astype(str)})
    ad[CI_COLUMNS + ["p"]] = diff[CI_COLUMNS + ["p"]].to_numpy()
    ad = adjusted_differences(ad, contrasts, fit, outcome.name, protocol)
    d = fit.to_dict()
    model = {
        "formula": formula,
        "n_obs": d["n_obs"],
        "n_patients": d["n_groups"],
        "method": d.get("method", "REML"),
        "reml_criterion": d.get("reml_criterion"),
        "loglik": d["loglik"],
        "aic": d.get("aic"),
        "bic": d.get("bic"),
        "converged": d["converged"],
        "singular": bool(getattr(fit, "singular", False)),
        "fixed_effects": d["fixed_effects"],
        "df_method": "satterthwaite",
        **(dropped_rows(data, outcome.name, protocol) if full else {}),
        "marginal_means": {**grid, "description": describe_weighting(grid["weights"], grid["cov_keep"])},
        "random_effects": d["random_effects"],
        "residual_sd": d["residual_sd"],
    }
    if full:
        mm = pd.DataFrame({"arm": means["arm"].astype(str), "month": _as_month(means[spec])})
        mm[CI_COLUMNS] = means[CI_COLUMNS].to_numpy()
        cfb = pd.DataFrame({"arm": change["arm"].astype(str), "month": _months_from_labels(change["contrast"], spec)})
        cfb[CI_COLUMNS + ["p"]] = change[CI_COLUMNS + ["p"]].to_numpy()
        mm, cfb = _order_arms(mm, arms), _order_arms(cfb, arms)
        series = pd.factorize(frame["patient"], sort=True)[0] + 1
        observed = pd.DataFrame({"series": series, "arm": frame["arm"].to_numpy(),
                                 "months": frame["months"].to_numpy(), "value": frame[outcome.name].to_numpy()})
        support = contrast_support(data, outcome.name, arms, months, minimum=protocol.analysis.min_at_risk,
                                   columns=[COVARIATE_COLUMNS[c] for c in protocol.analysis.covariates])
    else:  # a sensitivity analysis's fit: the arm differences only
        mm = pd.DataFrame(columns=["arm", "month", *CI_COLUMNS])
        cfb = pd.DataFrame(columns=["arm", "month", *CI_COLUMNS, "p"])
        observed = pd.DataFrame(columns=["series", "arm", "months", "value"])
        support = None
    return OutcomeResult(
        name=outcome.name, label=outcome.label or outcome.name, formula=formula, model=model,
        fixed_effects=fit.fixed_effects.copy(), marginal_means=mm, change_from_baseline=cfb,
        arm_differences=ad.reset_index(drop=True), observed=observed, slopes=slopes, contrast_support=support,
    )


def dropped_rows(data: pd.DataFrame, outcome: str, protocol: Protocol) -> dict:
    """What the model left out, and why: ``n_dropped`` (measurements), ``n_dropped_patients`` (patients with a
    measurement but no usable row) and ``dropped_reasons`` (covariate -> measurements missing it)."""
    columns = {c: COVARIATE_COLUMNS[c] for c in protocol.analysis.covariates}
    missing = data[[outcome, "months", *columns.values()]].isna()
    bad = missing.any(axis=1)
    kept = set(data.loc[~bad, "patient"])
    reasons = {c: int(missing[col].sum()) for c, col in columns.items() if missing[col].any()}
    if missing[outcome].any():
        reasons["outcome value"] = int(missing[outcome].sum())
    return {"n_dropped": int(bad.sum()), "n_dropped_patients": int(data["patient"].nunique() - len(kept)),
            "dropped_reasons": reasons}


def adjusted_differences(ad: pd.DataFrame, contrasts, fit, outcome: str, protocol: Protocol) -> pd.DataFrame:
    """``role`` (``primary`` for the protocol's declared primary endpoint, else ``exploratory``) and
    ``p_adjusted``: the exploratory arm differences of this outcome are one family, adjusted by
    ``analysis.multiplicity.adjust`` (correlations from the model, L V L'); the primary one is unadjusted."""
    pe = protocol.analysis.primary
    primary = (np.zeros(len(ad), dtype=bool) if pe is None or pe.outcome != outcome
               else np.isclose(ad["month"].to_numpy(dtype=float), float(pe.month)))
    out = ad.assign(role=np.where(primary, "primary", "exploratory"), p_adjusted=ad["p"].to_numpy(dtype=float))
    family = np.flatnonzero(~primary)
    method = protocol.analysis.multiplicity.adjust
    if len(family) and method != "none":
        L = np.asarray(contrasts.L, dtype=float)[family]
        V = L @ fit.vcov.to_numpy(dtype=float) @ L.T
        sd = np.sqrt(np.diag(V))
        corr = V / np.outer(sd, sd)
        t = (ad["estimate"].to_numpy(dtype=float) / ad["se"].to_numpy(dtype=float))[family]
        out.loc[out.index[family], "p_adjusted"] = adjust_p(t, ad["df"].to_numpy(dtype=float)[family], corr, method)
    return out


def _month_label(m: float) -> str:
    return f"{m:g}"


def _ref(spec: str, months: list[float]):
    return _month_label(months[0]) if spec == "visit" else months[0]


def _as_month(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values.astype(str)).to_numpy(dtype=float)


def _months_from_labels(labels: pd.Series, spec: str) -> np.ndarray:
    """``"months12 - months0"`` (or ``"visit12 - visit0"``) -> 12.0."""
    first = labels.astype(str).str.split(" - ").str[0].str.replace(spec, "", regex=False)
    return pd.to_numeric(first).to_numpy(dtype=float)


def _order_arms(frame: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    order = {a: i for i, a in enumerate(arms)}
    return frame.sort_values(["arm", "month"], key=lambda s: s.map(order) if s.name == "arm" else s,
                             kind="stable").reset_index(drop=True)
