"""Combine site summaries into the pooled study (``ildstudy federate``).

Counts and sums are added; the mixed models are fitted exactly by the theta exchange of
:mod:`ildstudy.federated.lmm_exchange`, through ``answer(outcome, working, theta) -> [site sums]``
(in-process sites, or stored answer files; an answer not yet available raises
:class:`~ildstudy.federated.lmm_exchange.AnswersNeeded` and the round is reported as pending).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ildstudy.analysis.contingency import chisq_test, fisher_test
from ildstudy.analysis.discontinuation import discontinuation
from ildstudy.errors import IldStudyError, ModelError
from ildstudy.federated.lmm_exchange import (
    AnswersNeeded, SiteRows, Working, add_moments, optimize_pooled, pooled_derivatives, site_moments,
    working_coordinates,
)
from ildstudy.federated.site import SCHEMA, SiteState
from ildstudy.lmm.design import build_design
from ildstudy.lmm.formula import parse_formula
from ildstudy.lmm.results import LmmFit, RandomEffects
from ildstudy.lmm.deviance import covariance_derivatives
from ildstudy.lmm.satterthwaite import linear_combination_table, variance_sensitivity
from ildstudy.protocol import Protocol

Answer = Callable[[str, Working, np.ndarray], list[dict]]


@dataclass(frozen=True, slots=True)
class Federation:
    """The outcome of one ``federate`` pass.

    Attributes
    ----------
    results : dict or None
        The pooled study when every model has converged through the exchange; else None.
    pending : dict
        ``{outcome: (working, theta)}`` of the next round's requests (empty when done).
    fits : dict[str, LmmFit]
        The pooled fits (empty until done).
    """

    results: dict | None
    pending: dict
    fits: dict


def in_process(states: list[SiteState]) -> Answer:
    """Answers computed on the spot from the sites' states (one machine, tests and demos)."""
    def answer(outcome: str, working: Working, theta: np.ndarray) -> list[dict]:
        return [site_moments(s.rows[outcome], working, theta) for s in states]
    return answer


def federate(summaries: list[dict], protocol: Protocol, answer: Answer) -> Federation:
    """Pool the site summaries; fit the models through ``answer``.

    Raises
    ------
    IldStudyError
        Fewer than two sites, a file that is not a site summary, or sites run with different protocols.
    """
    _check(summaries, protocol)
    arms = [a.name for a in protocol.arms]
    results = {
        "schema": "ildstudy-federated/1", "protocol_sha256": protocol.sha256(),
        "sites": [s["site"] for s in summaries],
        "arms": {a: sum(int(s["arms"][a]) for s in summaries) for a in arms},
        "table1": pooled_table1(summaries),
        "adverse_events": pooled_adverse_events(summaries, arms, protocol.reference_arm),
        "discontinuation": pooled_discontinuation(summaries, arms, protocol.reference_arm).to_dict(),
        "outcomes": {},
    }
    pending, fits = {}, {}
    for outcome in protocol.outcomes:
        docs = [s["models"][outcome.name] for s in summaries]
        try:
            fit, rounds = pooled_fit(outcome.name, docs, protocol, answer)
        except AnswersNeeded as need:
            pending[outcome.name] = (need.working, need.theta)
            continue
        fits[outcome.name] = fit
        results["outcomes"][outcome.name] = _outcome_block(fit, protocol, rounds)
    if pending:
        return Federation(results=None, pending=pending, fits={})
    return Federation(results=results, pending={}, fits=fits)


def _check(summaries: list[dict], protocol: Protocol) -> None:
    if len(summaries) < 2:
        raise IldStudyError(f"federate needs at least 2 site summaries, got {len(summaries)}")
    for s in summaries:
        if not isinstance(s, dict) or s.get("schema") != SCHEMA:
            raise IldStudyError(f"{s.get('site', '?') if isinstance(s, dict) else s}: not a site summary ({SCHEMA})")
        if s["protocol_sha256"] != protocol.sha256():
            raise IldStudyError(f"site {s['site']!r} ran a different protocol (sha256 {s['protocol_sha256'][:12]}…)")
    names = [s["site"] for s in summaries]
    if len(set(names)) != len(names):
        raise IldStudyError(f"site names must be distinct, got {names}")


def _sum(values):
    """Sum of counts; None when any site suppressed its cell (the pooled cell is then not exact)."""
    if any(isinstance(v, str) or v is None for v in values):
        return None
    return sum(values)


def pooled_table1(summaries: list[dict]) -> list[dict]:
    """Counts per level, n, mean and SD (from sums and sums of squares) per variable and arm."""
    keys = [(r["variable"], r["arm"]) for r in summaries[0]["table1"]]
    rows = {k: [] for k in keys}
    for s in summaries:
        for r in s["table1"]:
            rows.setdefault((r["variable"], r["arm"]), []).append(r)
    out = []
    for (var, arm), parts in rows.items():
        row = {"variable": var, "arm": arm, "kind": parts[0]["kind"], "missing": _sum([p["missing"] for p in parts])}
        if parts[0]["kind"] == "continuous":
            n = _sum([p["n"] for p in parts])
            s1, s2 = _sum([p["sum"] for p in parts]), _sum([p["sum_squares"] for p in parts])
            ok = n is not None and s1 is not None and n > 0
            mean = s1 / n if ok else None
            sd = math.sqrt(max(s2 - n * mean * mean, 0.0) / (n - 1)) if ok and n > 1 else None
            row.update(n=n, mean=mean, sd=sd)
        else:
            levels = sorted({lv for p in parts for lv in p["levels"]})
            row["levels"] = {lv: _sum([p["levels"].get(lv, 0) for p in parts]) for lv in levels}
        out.append(row)
    return out


def pooled_adverse_events(summaries: list[dict], arms: list[str], reference_arm: str) -> dict:
    """Pooled 2x2 counts, Yates/Pearson chi-squared and Fisher tests, and per-category counts."""
    arm = arms[0] if arms[1] == reference_arm else arms[1]
    by_arm = {}
    for a in (arm, reference_arm):
        parts = [s["adverse_events"]["by_arm"][a] for s in summaries]
        by_arm[a] = {k: _sum([p[k] for p in parts]) for k in parts[0]}
    out = {"by_arm": by_arm, "by_category": []}
    k1, n1 = by_arm[arm]["patients_with_event"], by_arm[arm]["n"]
    k2, n2 = by_arm[reference_arm]["patients_with_event"], by_arm[reference_arm]["n"]
    if k1 is not None and k2 is not None:
        table = np.array([[k1, n1 - k1], [k2, n2 - k2]])
        for name, res in (("yates", chisq_test(table, correct=True)), ("chisq", chisq_test(table, correct=False)),
                          ("fisher", fisher_test(table))):
            out[name] = {"statistic": _finite(getattr(res, "statistic", None)), "p": _finite(res.p)}
    cats = {}
    for s in summaries:
        for r in s["adverse_events"]["by_category"]:
            cats.setdefault((r["category"], r["arm"]), []).append(r)
    for (cat, a), parts in sorted(cats.items()):
        out["by_category"].append({"category": cat, "arm": a,
                                   "patients_with_event": _sum([p["patients_with_event"] for p in parts]),
                                   "events": _sum([p["events"] for p in parts])})
    return out


def pooled_discontinuation(summaries: list[dict], arms: list[str], reference_arm: str):
    """Kaplan–Meier, log-rank and Cox on monthly times, from the pooled monthly counts.

    The pooled counts are expanded into one anonymous row per stop or censoring at its month, so
    :func:`ildstudy.analysis.discontinuation.discontinuation` sees exactly the risk sets of the
    pooled cohort with times rounded to the month (the estimates depend on nothing else).
    """
    rows = []
    for s in summaries:
        for r in s["discontinuation"]:
            for kind, event, reason in (("stops_adverse_event", True, "adverse_event"),
                                        ("stops_other", True, "other"), ("censored", False, None)):
                rows += [(r["arm"], r["month"], event, reason)] * int(r[kind])
    times = pd.DataFrame(rows, columns=["arm", "months", "event", "reason"])
    times.insert(0, "patient_id", [f"row{i}" for i in range(len(times))])
    return discontinuation(times, arms, reference_arm)


def pooled_fit(outcome: str, docs: list[dict], protocol: Protocol, answer: Answer) -> tuple[LmmFit, int]:
    """The exact pooled REML fit of one outcome; returns the fit and the number of theta rounds."""
    names = tuple(docs[0]["fixed_names"])
    if any(tuple(d["fixed_names"]) != names for d in docs):
        raise ModelError(f"outcome {outcome}: the sites' model columns differ: {[d['fixed_names'] for d in docs]}")
    XtX = np.sum([np.asarray(d["XtX"]) for d in docs], axis=0)
    Xty = np.sum([np.asarray(d["Xty"]) for d in docs], axis=0)
    working = working_coordinates(XtX, Xty, names)
    q = len(docs[0]["random_names"])
    logdet_x = float(2.0 * np.sum(np.log(np.abs(np.diag(working.x_factor)))))
    seen: dict[tuple, object] = {}

    def evaluate(theta):
        key = tuple(map(float, theta))
        if key not in seen:
            try:
                parts = answer(outcome, working, theta)
            except AnswersNeeded as need:
                need.working = working
                raise
            seen[key] = pooled_derivatives(add_moments(parts), theta, q, logdet_x, reml=True)
        return seen[key]

    record, convergence, deriv = optimize_pooled(evaluate, q)
    return _lmm_fit(docs, protocol, working, record, convergence, deriv), len(seen)


def _lmm_fit(docs, protocol, working, record, convergence, deriv) -> LmmFit:
    formula = docs[0]["formula"]
    parsed = parse_formula(formula)
    arms = [a.name for a in protocol.arms]
    levels = {"arm": [protocol.reference_arm] + [a for a in arms if a != protocol.reference_arm]}
    template = _template(parsed, levels)
    design = build_design(parsed, template, levels)
    if tuple(design.fixed_names) != tuple(docs[0]["fixed_names"]):
        raise ModelError(f"{formula}: model columns {design.fixed_names} differ from the sites' {docs[0]['fixed_names']}")
    n = sum(d["n_obs"] for d in docs)
    means = {k: sum(d["numeric_sums"][k] for d in docs) / n for k in docs[0]["numeric_sums"]}
    values = {}
    for k in docs[0]["binary_values"]:
        site_values = [d["binary_values"].get(k) for d in docs]
        if all(v is not None for v in site_values) and len(set().union(*site_values)) <= 2:
            values[k] = tuple(sorted(set().union(*site_values)))
    encoding = dataclasses.replace(design.encoding, numeric_means=means, numeric_values=values,
                                   numeric_ranges={k: (math.nan, math.nan) for k in means})
    sens = variance_sensitivity(deriv, working.x_factor)
    import scipy.linalg

    p = len(design.fixed_names)
    beta = working.beta_offset + scipy.linalg.solve_triangular(working.x_factor, deriv.beta)
    fixed = linear_combination_table(np.eye(p), beta, sens).drop(columns=["ci_low", "ci_high"])
    fixed.insert(0, "term", list(design.fixed_names))
    theta = np.array(record.final)
    q = len(design.random_names)
    D, _, _ = covariance_derivatives(theta, q)
    cov = deriv.sigma**2 * D
    sd = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    k = len(theta)
    crit = deriv.deviance
    return LmmFit(
        formula=parsed.text, method="REML", n_obs=n, n_groups=sum(d["n_patients"] for d in docs),
        n_dropped=sum(d["n_dropped"] for d in docs), group=parsed.group, fixed_effects=fixed, coef=beta,
        random_effects=RandomEffects(group=parsed.group, terms=design.random_names, sd=sd, corr=corr, covariance=cov),
        residual_sd=deriv.sigma, theta=theta, criterion=crit, loglik=-crit / 2, aic=crit + 2 * (p + k + 1),
        bic=crit + np.log(n) * (p + k + 1), n_parameters=p + k + 1, converged=convergence.converged,
        singular=convergence.singular, messages=convergence.messages + sens.messages(), optimizer=record,
        conditional_modes=pd.DataFrame(columns=list(design.random_names)), fitted=np.array([]),
        residuals=np.array([]), sensitivity=sens, encoding=encoding)


def _template(parsed, levels) -> pd.DataFrame:
    """A four-row frame with the model's columns (no data): only to lay out the model's columns."""
    arms = levels["arm"]
    cols = {"arm": [arms[0], arms[0], arms[-1], arms[-1]], parsed.group: ["a", "a", "b", "b"]}
    frame = pd.DataFrame(cols)
    for name in _variables(parsed):
        if name not in frame.columns:
            frame[name] = [0.0, 1.0, 0.0, 1.0]
    return frame


def _variables(parsed) -> list[str]:
    import re

    text = f"{parsed.response} + {parsed.fixed} + {parsed.random}"
    return [v for v in dict.fromkeys(re.findall(r"[A-Za-z_][A-Za-z_0-9.]*", text)) if v not in ("arm",)]


def _outcome_block(fit: LmmFit, protocol: Protocol, rounds: int) -> dict:
    months = [float(m) for m in protocol.analysis.contrast_months]
    at = {"months": months}
    means = fit.emmeans("arm", by="months", at=at).table
    change = fit.contrast("months", by="arm", at=at, ref=months[0]).table
    diff = fit.contrast("arm", by="months", at=at, method="trt.vs.ctrl", ref=protocol.reference_arm).table
    return {"model": fit.to_dict(), "theta_rounds": rounds,
            "marginal_means": _records(means), "change_from_baseline": _records(change),
            "arm_differences": _records(diff)}


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (_finite(v) if isinstance(v, (float, np.floating)) else (str(v) if not isinstance(v, (int, np.integer))
             else int(v))) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _finite(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


__all__ = ["Federation", "federate", "in_process", "pooled_fit", "SiteRows"]
