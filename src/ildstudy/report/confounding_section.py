"""The report's "Confounding" section as plain template context (the template escapes every string): methods text
written from the ``[confounding]`` settings, the propensity model, sample sizes, balance, and the outcome,
adverse-event and discontinuation comparisons under each design.

Reads :class:`~ildstudy.analysis.confounding.result.ConfoundingResult` only (and the outcome labels).
"""

from __future__ import annotations

from typing import Any

from ildstudy.analysis.confounding.result import DESIGN_LABELS, ConfoundingResult
from ildstudy.analysis.confounding.study import CONFOUNDING_SKIPPED
from ildstudy.analysis.result import StudyResult
from ildstudy.report import extract
from ildstudy.report.figures_confounding import SMD_THRESHOLD, term_label
from ildstudy.report.formatting import and_join, fmt_ci, fmt_int, fmt_month, fmt_num, fmt_p, is_missing, significant
from ildstudy.variables import covariates as registered_covariates

WEIGHT_TEXT = {
    "iptw_ate": "inverse probability of treatment weights for the average treatment effect (ATE: 1/e for {t}, "
                "1/(1 − e) for {r}{stab})",
    "iptw_att": "inverse probability weights for the effect in the {t} patients (ATT: 1 for {t}, e/(1 − e) for "
                "{r}{stab})",
    "overlap": "overlap weights (1 − e for {t}, e for {r}; Li, Morgan & Zaslavsky 2018), which target the patients "
               "for whom either drug was a plausible choice and balance every covariate of the score model exactly",
}


def methods_text(cf: ConfoundingResult) -> list[str]:
    """The methods paragraphs, from the settings as run."""
    s, t, r = cf.settings, cf.treated_arm, cf.reference_arm
    labels = {n: spec.label for n, spec in registered_covariates().items()}
    names = [labels.get(c, c).split(",")[0] for c in s["ps_covariates"]]
    covs = and_join([_lower_first(n) for n in names])
    by_arm = cf.propensity_info["excluded_missing"]
    excluded = sum(by_arm.values())
    arms = and_join([f"{fmt_int(v)} {a}" for a, v in by_arm.items() if v])
    miss = (f" {_patients(excluded)} ({arms}) with a missing covariate {'was' if excluded == 1 else 'were'} left "
            "out of these analyses (complete cases)." if excluded else "")
    first = (f"Confounding by indication was addressed with a propensity score: the probability e of starting {t} "
             f"rather than {r}, estimated by logistic regression on {covs}.{miss}")
    parts = []
    for d in cf.designs:
        if d == "none":
            continue
        if d == "matching":
            cal = (f"within a caliper of {s['caliper']:g} SD of the logit of the score" if s["caliper"]
                   else "without a caliper")
            parts.append(f"1:{s['ratio']} nearest-neighbour matching of {t} patients to {r} patients on the logit of "
                         f"the score, {'with' if s['replace'] else 'without'} replacement, highest score first, {cal} "
                         "(MatchIt's nearest-neighbour algorithm)")
        else:
            stab = ", stabilised by the arm shares" if s["stabilize"] and d != "overlap" else ""
            parts.append(WEIGHT_TEXT[d].format(t=t, r=r, stab=stab))
    design = (f"The primary design was {parts[0]}" + (f"; also shown: {and_join(parts[1:])}." if parts[1:] else ".")
              if parts else "No weighting or matching was requested; only the unadjusted comparison is shown.")
    extra = []
    if s["trim"]:
        extra.append(f"patients with a score below {s['trim']:g} or above {1 - s['trim']:g} were trimmed")
    if s["truncate"] is not None:
        extra.append(f"weights were truncated at their {100 * s['truncate']:g}th percentile")
    design += f" Before weighting, {and_join(extra)}." if extra else ""
    analysis = ("Balance is shown as standardised mean differences (SMD; denominator: the SD of the unweighted "
                "sample, pooled for ATE and overlap weights, the first arm's for ATT designs and matching) and "
                f"variance ratios, an absolute SMD below {SMD_THRESHOLD:g} being read as balance (Austin 2009); "
                "effective sample sizes are Kish's. Each outcome's model (the fixed part of the mixed model) "
                "was refitted by weighted least squares with cluster-robust standard errors (sandwich HC1, clustered "
                "by patient, or by matched set after matching without replacement); adverse events are compared as "
                "a weighted risk difference and ratio, discontinuation with weighted Kaplan–Meier curves and a "
                "weighted Cox model with robust variance. E-values (VanderWeele & Ding 2017) give the strength of "
                "association an unmeasured confounder would need, with both arm and outcome, to explain an estimate "
                "away; for differences of means through RR ≈ exp(0.91 d), d = difference / SD of the patients' "
                "first values. Intervals do not include the uncertainty of the estimated score.")
    return [first, design, analysis]


def results_text(cf: ConfoundingResult, month: float, labels: dict[str, str]) -> str:
    """The results paragraph: balance before and after the primary design, effective sample sizes, and each
    outcome's difference at ``month`` under the primary design beside the unweighted one."""
    t, r, d = cf.treated_arm, cf.reference_arm, cf.primary
    if d == "none":
        return ""
    bal = cf.balance
    before = bal[bal["design"] == "none"].set_index("covariate")["smd_before"].abs()
    after = bal[bal["design"] == d].set_index("covariate")["smd_after"].abs()
    worst, worst_after = before.idxmax(), after.idxmax()
    ss = cf.sample_sizes[cf.sample_sizes["design"] == d].set_index("arm")
    name = _lower_first(DESIGN_LABELS[d])
    smd0 = bal[(bal["design"] == "none") & (bal["covariate"] == worst)]["smd_before"].iloc[0]
    balanced = ("every SMD was 0.00" if after.max() < 0.005 else
                f"the largest absolute SMD was {fmt_num(after.max(), 2)} ({_lower_first(_short(worst_after))})")
    text = (f"Before adjustment the arms differed most in {_lower_first(_short(worst))} (SMD "
            f"{fmt_num(smd0, 2, sign=True)}); after {name} {balanced}, with effective sample sizes of "
            f"{fmt_num(ss.loc[t, 'ess'], 1)} {t} and {fmt_num(ss.loc[r, 'ess'], 1)} {r} patients.")
    at = cf.outcomes[cf.outcomes["month"] == month]
    parts = []
    for o in dict.fromkeys(at["outcome"]):
        p, u = at[(at["outcome"] == o) & (at["design"] == d)], at[(at["outcome"] == o) & (at["design"] == "none")]
        if p.empty or u.empty:
            continue
        p, u = p.iloc[0], u.iloc[0]
        parts.append(f"{_lower_first(labels.get(o, o))} {fmt_num(p['estimate'], 1, sign=True)} (95% CI "
                     f"{fmt_ci(p['ci_low'], p['ci_high'])}; unweighted {fmt_num(u['estimate'], 1, sign=True)})")
    if parts:
        text += (f" At {fmt_month(month)} months, the {t} − {r} differences under {name} were: {and_join(parts)}.")
    return text


def _short(term: str) -> str:
    """A covariate column's label without its unit: ``Baseline FVC``, ``Diagnosis: DM``."""
    return term_label(term).split(",")[0]


def _lower_first(text: str) -> str:
    """``Baseline FVC`` -> ``baseline FVC``; acronyms (``FVC % predicted``, ``IPTW (ATE)``) stay."""
    word = text.split(" ")[0]
    return text if not text or word[:2].isupper() else text[0].lower() + text[1:]


def _patients(n: int) -> str:
    return f"{fmt_int(n)} patient" + ("" if n == 1 else "s")


def confounding_context(result: StudyResult, overlap: dict[str, Any] | None = None,
                        love: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Everything the section shows; ``{"skipped": [reasons]}`` when the protocol asked for confounding analyses
    that could not run, ``None`` when it asked for none."""
    cf: ConfoundingResult | None = getattr(result, "confounding", None)
    if cf is None:
        skipped = [w for w in result.warnings if w.startswith(CONFOUNDING_SKIPPED)]
        return {"skipped": skipped} if skipped else None
    designs = list(cf.designs)
    month = float(extract.headline_month(result))
    labels = {o.name: o.label for o in result.outcomes.values()}
    sizes = []
    for d in designs:
        ss = cf.sample_sizes[cf.sample_sizes["design"] == d].set_index("arm")
        sizes.append({"design": DESIGN_LABELS[d], "primary": d == cf.primary,
                      "cells": [f"{fmt_int(ss.loc[a, 'n_weighted'])} (ESS {fmt_num(ss.loc[a, 'ess'], 1)})"
                                for a in (cf.treated_arm, cf.reference_arm)]})
    bal_rows = []
    for cov in dict.fromkeys(cf.balance["covariate"]):
        b = cf.balance[cf.balance["covariate"] == cov].set_index("design")
        cells = [fmt_num(b.loc["none", "smd_before"], 2, sign=True)]
        cells += [fmt_num(b.loc[d, "smd_after"], 2, sign=True) for d in designs if d != "none"]
        vr = [("—" if is_missing(b.loc[d, "variance_ratio_after"]) else fmt_num(b.loc[d, "variance_ratio_after"], 2))
              for d in designs if d != "none"]
        bal_rows.append({"covariate": term_label(cov), "cells": cells, "vr": vr})
    out_rows = []
    at = cf.outcomes[cf.outcomes["month"] == month]
    for name in dict.fromkeys(at["outcome"]):
        for d in designs:
            r = at[(at["outcome"] == name) & (at["design"] == d)]
            if r.empty:
                continue
            r = r.iloc[0]
            out_rows.append({"outcome": labels.get(name, name), "design": DESIGN_LABELS[d], "primary": d == cf.primary,
                             "estimate": fmt_num(r["estimate"], 1, sign=True), "ci": fmt_ci(r["ci_low"], r["ci_high"]),
                             "p": fmt_p(r["p"]), "sig": significant(r["p"]), "n": fmt_int(r["n_patients"]),
                             "evalue": f"{fmt_num(r['evalue'], 2)} ({fmt_num(r['evalue_ci'], 2)})"})
    ae = [{"design": DESIGN_LABELS[r["design"]], "primary": r["design"] == cf.primary,
           "risks": f"{fmt_num(100 * r['risk_treated'], 1)}% vs {fmt_num(100 * r['risk_reference'], 1)}%",
           "rd": f"{fmt_num(100 * r['rd'], 1, sign=True)} ({fmt_ci(100 * r['rd_ci_low'], 100 * r['rd_ci_high'])})",
           "rr": f"{fmt_num(r['rr'], 2)} ({fmt_ci(r['rr_ci_low'], r['rr_ci_high'], 2)})", "p": fmt_p(r["rd_p"]),
           "sig": significant(r["rd_p"]), "evalue": f"{fmt_num(r['evalue'], 2)} ({fmt_num(r['evalue_ci'], 2)})"}
          for r in cf.adverse_events.to_dict(orient="records")]
    disc = [{"design": DESIGN_LABELS[r["design"]], "primary": r["design"] == cf.primary,
             "hr": "—" if is_missing(r["hr"]) else f"{fmt_num(r['hr'], 2)} ({fmt_ci(r['ci_low'], r['ci_high'], 2)})",
             "p": "—" if is_missing(r["p"]) else fmt_p(r["p"]), "sig": significant(r["p"]),
             "events": fmt_int(r["events"])} for r in cf.discontinuation.to_dict(orient="records")]
    info = cf.propensity_info
    matched = info.get("matched")
    complete_case = "with a missing propensity-score covariate are left out"   # said by the methods text
    return {"methods": methods_text(cf), "results": results_text(cf, month, labels), "treated": cf.treated_arm, "reference": cf.reference_arm,
            "month": fmt_month(month), "designs": [DESIGN_LABELS[d] for d in designs if d != "none"],
            "sizes": sizes, "balance": bal_rows, "outcomes": out_rows, "ae": ae, "disc": disc,
            "n": fmt_int(info["n"]), "converged": info["converged"],
            "matched": None if matched is None else " and ".join(f"{fmt_int(v)} {a}" for a, v in matched.items()),
            "warnings": [w for w in cf.warnings if complete_case not in w], "overlap": overlap, "love": love}
