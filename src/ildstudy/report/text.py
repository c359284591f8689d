"""The report's prose, generated from the numbers and the protocol: summary of findings and methods.

Sentences are plain text (the template escapes them). p-values in prose are rounded the way
journals print them (:func:`~ildstudy.report.formatting.fmt_p_prose`); exact values are in the tables.
"""

from __future__ import annotations

from ildstudy.analysis.result import StudyResult
from ildstudy.lmm.weighting import describe_weighting
from ildstudy.report import extract, lungfunction_section
from ildstudy.report.formatting import (
    and_join,
    fmt_ci,
    fmt_days,
    fmt_month,
    fmt_num,
    fmt_pct,
    is_missing,
    p_phrase,
    significant,
)
from ildstudy.report.style import outcome_unit

DIAGNOSES = {
    "DM": "dermatomyositis", "PM": "polymyositis", "ASyS": "antisynthetase syndrome",
    "IMNM": "immune-mediated necrotising myopathy", "CADM": "clinically amyopathic dermatomyositis",
    "overlap": "overlap myositis", "other": "other myositis",
}
COVARIATES = {"sex": "sex", "age": "age at index", "antisynthetase": "antisynthetase antibody",
              "smoking": "smoking"}
AE_TESTS = {
    "yates": "\u03c7\u00b2 test with Yates\u2019 continuity correction",
    "chisq": "Pearson\u2019s \u03c7\u00b2 test",
    "fisher": "Fisher\u2019s exact test",
}


def prose_label(label: str) -> str:
    """Outcome label for running text: unit suffix dropped, ordinary words lower-cased.

    >>> prose_label("Prednisone-equivalent dose, mg/day"), prose_label("FVC % predicted")
    ('prednisone-equivalent dose', 'FVC % predicted')
    """
    text = label.split(",")[0].strip()
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def _with_unit(value, name: str) -> str:
    unit = outcome_unit(name).replace("-", "\u2011")  # non-breaking hyphen: "%-points" stays on one line
    return f"{fmt_num(value, 1, sign=True)}\u00a0{unit}" if unit else fmt_num(value, 1, sign=True)


def ae_test_name(test) -> str:
    """Words for an adverse-event test key (``yates`` → χ² with Yates' correction)."""
    return AE_TESTS.get(str(test), str(test)) if test else "a test of two proportions"


def ae_overall_test(ae) -> str:
    """More than two arms: the overall k×2 test in words ("Chi-squared test of all 3 arms (2 df)")."""
    df = "" if ae.primary.df is None else f" ({ae.primary.df:g} df)"
    return f"{ae.primary.test} test of all {len(ae.arms)} arms{df}"


def summary_sentences(result: StudyResult) -> list[str]:
    """The summary of findings, one sentence per list item."""
    p = result.protocol
    arms = extract.arm_names(result)
    labels = extract.arm_labels(result)
    treat, ref = p.treatment_arm, p.reference_arm
    names, labels_c = extract.contrast_names(result), extract.contrast_labels(result)
    many = len(names) > 1
    out: list[str] = []

    total = sum(int(n) for n in result.arms.values())
    who = and_join([f"{result.arms.get(a, 0)} started {labels.get(a, a).lower()} ({a})" for a in arms])
    start = ""
    att = result.attrition
    if att is not None and not att.empty:
        first = att.iloc[0].to_dict()
        n0 = first["remaining"]
        if not is_missing(n0):
            excluded = first.get("excluded")
            n0 = int(n0) + (0 if is_missing(excluded) else int(excluded))
            start = f"Of {n0} patients in the registry, "
    out.append(f"{start}{total} {'met' if start else 'patients met'} the protocol criteria: {who}.")

    baseline = []
    for o in result.outcomes.values():
        for arm, row in zip(p.compared_arms, extract.differences_at(o.arm_differences, 0.0, names)):
            if row and significant(row.get("p")):
                word = "lower" if float(row["estimate"]) < 0 else "higher"
                vs = f" than in {ref}" if many else ""
                baseline.append(f"{prose_label(o.label)} ({word} in {arm}{vs}: "
                                f"{_with_unit(row['estimate'], o.name)}, {p_phrase(row['p'])})")
    if baseline:
        out.append(f"At treatment start, adjusted means differed for {and_join(baseline)}.")

    month = extract.headline_month(result)
    parts, sig = [], []
    for o in result.outcomes.values():
        for label, row in zip(labels_c, extract.differences_at(o.arm_differences, month, names)):
            if not row:
                continue
            which = f" ({label.replace(' ', chr(0xa0))})" if many else ""
            parts.append(f"{_with_unit(row['estimate'], o.name)} for {prose_label(o.label)}{which} "
                         f"(95% CI {fmt_ci(row.get('ci_low'), row.get('ci_high'))}; {p_phrase(row.get('p'))})")
            if significant(row.get("p")):
                sig.append(prose_label(o.label) + which)
    if parts:
        contrast = extract.contrast_label(result).replace(" ", "\u00a0")  # keep "AZA − MMF" on one line
        out.append(f"At {fmt_month(month)} months, the adjusted differences {contrast} "
                   f"were {and_join(parts)}.")
        n = len(parts)
        if not sig:
            out.append("None of these differences was statistically significant (p < 0.05).")
        elif len(sig) == n:
            out.append("All of these differences were statistically significant (p < 0.05).")
        else:
            verb = "was" if len(sig) == 1 else "were"
            only = "only " if len(sig) == 1 else ""
            out.append(f"Of these, {only}the difference{'s' if len(sig) > 1 else ''} in {and_join(sig)} "
                       f"{verb} statistically significant (p < 0.05).")
        pe = p.analysis.primary
        if pe is not None:
            label = next((o.label for o in result.outcomes.values() if o.name == pe.outcome), pe.outcome)
            adj = ADJUST_SHORT[p.analysis.multiplicity.adjust]
            rest = ("" if p.analysis.multiplicity.adjust == "none"
                    else f"; {adj}-adjusted p-values are in the tables")
            out.append(f"The primary endpoint was {prose_label(label)} at {fmt_month(pe.month)} months; the other "
                       f"differences are exploratory{rest}.")

    ae = result.adverse_events
    by_arm = extract.ae_by_arm(ae) if ae is not None else {}
    if by_arm:
        groups = and_join([
            f"{by_arm[a]['patients_with_event']} of {by_arm[a]['n']} {a} patients ({fmt_pct(by_arm[a]['percent'])})"
            for a in arms if a in by_arm])
        rd_text = ""
        for arm, rd in extract.risk_differences_pp(ae):
            if rd and "ci_low" in rd:
                vs = f" {arm} \u2212 {ae.reference_arm}" if many else ""
                rd_text += (f"; risk difference{vs} {fmt_num(rd['estimate'], 1, sign=True)} percentage points, "
                            f"95% CI {fmt_ci(rd['ci_low'], rd['ci_high'])}")
        name = ae_overall_test(ae) if many else ae_test_name(ae.test)
        test = ("" if is_missing(ae.primary.p)
                else f" ({name}, {p_phrase(ae.primary.p)}{rd_text})")
        out.append(f"At least one adverse event occurred in {groups}{test}.")

    disc = []
    for endpoint in extract.km_endpoints(result.discontinuation):
        hrs = [h for h in extract.hazard_ratios(endpoint) if not is_missing(h.hazard_ratio)]
        if not hrs:
            continue
        each = ", ".join(f"{h.term[3:] + ' ' if many else ''}HR {fmt_num(h.hazard_ratio, 2)} (95% CI "
                         f"{fmt_ci(h.ci_low, h.ci_high, 2)})" for h in hrs)
        disc.append(f"for {extract.endpoint_label(endpoint)} {each[:-1]}; log-rank "
                    f"{p_phrase(endpoint.logrank.p)})")
    if disc:
        who = f"each arm vs {ref}" if many else f"{treat} vs {ref}"
        out.append(f"Hazard of discontinuation, {who}: {'; '.join(disc)}.")
    return out


def _drug_list(drugs) -> str:
    drugs = list(drugs)
    return ", ".join(drugs[:-1]) + " or " + drugs[-1] if len(drugs) > 1 else "".join(drugs)


def _window(from_days: int, to_days: int) -> str:
    return f"from {fmt_days(from_days)} to {fmt_days(to_days)} the index date"


def model_sentence(result: StudyResult) -> str:
    """The mixed models in words, grouping outcomes with the same time model and random effects."""
    p = result.protocol
    covs = and_join([COVARIATES.get(c, c) for c in p.analysis.covariates])
    groups: dict[tuple[str, str], list[str]] = {}
    for o in p.outcomes:
        groups.setdefault((_time_words(o, p), o.random_effects), []).append(prose_label(o.label or o.name))
    parts = []
    for (time, re_kind), names in groups.items():
        random = ("a random intercept and slope per patient" if re_kind == "intercept_slope"
                  else "a random intercept per patient")
        parts.append(f"a linear mixed-effects model of {and_join(names)} with {time}, adjusted for {covs}, "
                     f"with {random}, fitted by REML, with Satterthwaite degrees of freedom")
    months = ", ".join(fmt_month(m) for m in p.analysis.contrast_months)
    mm = p.analysis.marginal_means
    dropped = [f"{int(o.model['n_dropped'])} measurements of {prose_label(o.label)} "
               f"({int(o.model.get('n_dropped_patients', 0))} patients) for a missing "
               f"{and_join(list(o.model.get('dropped_reasons', {})))}"
               for o in result.outcomes.values() if o.model.get("n_dropped")]
    dropped_text = (f" Measurements with a missing covariate were left out of the model: {and_join(dropped)}."
                    if dropped else " No measurement was left out for a missing covariate.")
    return (f"Each outcome was analysed with {'; and '.join(parts)}. Adjusted marginal means, changes from "
            f"month 0 and differences {extract.contrast_label(result)} with 95% confidence intervals are reported "
            f"at months {months}; in the marginal means, {describe_weighting(mm.weights, mm.cov_keep)}. "
            f"A month is flagged as having limited data when an arm has fewer than {p.analysis.min_at_risk} "
            f"patients with a measurement at or after it.{dropped_text}")


def _time_words(o, p) -> str:
    """The time term of an outcome's model in words."""
    knots = ", ".join(fmt_month(k) for k in o.knots)
    if o.time_model == "categorical":
        return "visit month (categorical) \u00d7 arm"
    if o.time_model == "natural_spline":
        lo, hi = o.boundary_knots or (0.0, p.follow_up.max_months)
        return (f"a natural cubic spline of months (interior knots at {knots} months, boundary knots at "
                f"{fmt_month(lo)} and {fmt_month(hi)}; R splines::ns) \u00d7 arm")
    if o.time_model == "piecewise":
        return f"piecewise-linear months (slope changes at {knots} months) \u00d7 arm"
    return "months (linear) \u00d7 arm"


ADJUST_SHORT = {"none": "Unadjusted", "holm": "Holm", "bonferroni": "Bonferroni", "sidak": "Šidák",
                "mvt": "mvt"}


def multiplicity_labels(p) -> dict[str, str]:
    """The contrast tables' adjusted-p column heading and their footnote."""
    pe = p.analysis.primary
    how = {"none": "are not adjusted", "holm": "are Holm-adjusted", "bonferroni": "are Bonferroni-adjusted",
           "sidak": "are Šidák-adjusted", "mvt": "are adjusted by the multivariate-t method (emmeans \u201cmvt\u201d)"}
    lead = "No primary endpoint was declared: every difference is exploratory"
    if pe is not None:
        label = next((o.label or o.name for o in p.outcomes if o.name == pe.outcome), pe.outcome)
        lead = (f"Primary endpoint: {label} at {fmt_month(pe.month)} months (unadjusted p); every other difference "
                "is exploratory")
    return {"short": ADJUST_SHORT[p.analysis.multiplicity.adjust],
            "note": f"{lead}, and its p-values {how[p.analysis.multiplicity.adjust]} within the outcome, over the "
                    "contrast months."}


def dropped_sentence(o) -> str:
    """What the outcome's model left out for a missing covariate, in one sentence ('' when nothing)."""
    n = int(o.model.get("n_dropped") or 0)
    if not n:
        return ""
    reasons = o.model.get("dropped_reasons", {})
    why = and_join([f"{k} ({v})" for k, v in reasons.items()])
    return (f"{n} measurement{'s' if n != 1 else ''} ({int(o.model.get('n_dropped_patients', 0))} patients without "
            f"any usable one) left out of the model for a missing value: {why}.")


def multiplicity_sentence(p) -> str:
    """The primary endpoint and how the other p-values were adjusted, in words."""
    words = {"none": "not adjusted", "holm": "adjusted by Holm's method", "bonferroni": "Bonferroni-adjusted",
             "sidak": "Šidák-adjusted",
             "mvt": "adjusted by the single-step multivariate-t method (emmeans adjust = \"mvt\")"}
    how = words[p.analysis.multiplicity.adjust]
    family = "within each outcome, over its contrast months"
    pe = p.analysis.primary
    if pe is None:
        return (f"No primary endpoint was declared; every contrast is exploratory, with p-values {how} {family} "
                "(unadjusted p also shown).")
    label = next((o.label or o.name for o in p.outcomes if o.name == pe.outcome), pe.outcome)
    return (f"The primary endpoint was the difference in {prose_label(label)} at {fmt_month(pe.month)} months, "
            f"tested at the two-sided 5% level without adjustment; all other contrasts are exploratory, with "
            f"p-values {how} {family} (unadjusted p also shown). Adverse-event and discontinuation comparisons "
            "are exploratory and unadjusted.")


def methods_paragraphs(result: StudyResult) -> list[str]:
    """Methods generated from the protocol: cohort paragraph and statistics paragraph."""
    p = result.protocol
    labels = extract.arm_labels(result)
    diag = and_join([f"{DIAGNOSES.get(d, d)} ({d})" for d in p.population.diagnoses])
    ild = " and interstitial lung disease (ILD)" if p.population.require_ild else ""
    arms = and_join([f"{a.name} ({labels[a.name]}: {_drug_list(list(a.drugs))})" for a in p.arms])
    ex = p.exclusions
    other_window = _window(ex.other_agents.from_days, ex.other_agents.to_days)
    both_window = _window(ex.both_arms.from_days, ex.both_arms.to_days)
    baseline_window = _window(p.baseline.from_days, p.baseline.to_days)
    fu = p.follow_up
    if fu.analysis == "as_treated":
        follow = (f"Follow-up (as-treated) ran from the index date to the earliest of drug stop or switch plus "
                  f"{fu.grace_days} days, {fmt_month(fu.max_months)} months, or the data cut "
                  f"({p.index.data_cut.isoformat()}).")
    else:
        follow = (f"Follow-up (intention-to-treat) ran from the index date to the earlier of "
                  f"{fmt_month(fu.max_months)} months or the data cut ({p.index.data_cut.isoformat()}), "
                  "regardless of drug stop or switch.")
    outcomes = []
    for o in p.outcomes:
        if o.source == "glucocorticoids":
            outcomes.append(f"{prose_label(o.label or o.name)} (mg/day, evaluated at months "
                            f"{', '.join(fmt_month(m) for m in p.analysis.dose_months)}; other glucocorticoids "
                            "converted to prednisone by anti-inflammatory potency)")
        else:
            outcomes.append(f"{prose_label(o.label or o.name)} (from pulmonary function tests)")
    title = f"“{p.title}” " if p.title else ""
    ref = f", following the design of {p.reference}" if p.reference else ""
    cohort = (
        f"Retrospective cohort study under the protocol {title}({p.name}{ref}). Patients with {diag}{ild} were "
        f"eligible. Treatment arms were defined by drug: {arms}; {p.reference_arm} is the reference arm. The "
        f"index date was the first start of an arm drug; patients whose index date was after the data cut "
        f"({p.index.data_cut.isoformat()}) were excluded, as were patients who received another steroid-sparing "
        f"agent ({_drug_list(list(ex.other_agents.drugs))}) {other_window} and patients exposed to both arms "
        f"{both_window}. The baseline pulmonary function test was the one closest to the index date "
        f"{baseline_window}. "
        f"{follow} Outcomes were {and_join(outcomes)}."
    )
    lung = lungfunction_section.methods_sentence(result)
    cohort = f"{cohort} {lung}" if lung else cohort
    t1 = result.table1.table if result.table1 is not None else None
    tests = ([t for t in dict.fromkeys(t1["test"].dropna().astype(str)) if t.strip("-\u2014 ")]
             if t1 is not None and not t1.empty else [])
    baseline = (f"Baseline characteristics were compared between arms ({and_join(tests)}), with standardised "
                "mean differences (SMD). " if tests else "")
    ae_test = ae_test_name(result.adverse_events.test if result.adverse_events is not None
                           else p.analysis.adverse_event_test)
    many = len(p.compared_arms) > 1
    if many and result.adverse_events is not None:
        ae_test = (f"{ae_overall_test(result.adverse_events)} (and each arm with {p.reference_arm} by risk "
                   "difference and ratio)")
    stats = (
        f"{model_sentence(result)} {baseline}The proportion of patients with at least one adverse event was "
        f"compared with a {ae_test} (Fisher’s exact p also shown). Time to discontinuation of the assigned drug "
        f"(for any reason, and for adverse events) was estimated with Kaplan–Meier curves, compared with the "
        f"log-rank test and summarised by Cox hazard ratios "
        f"({'each arm vs ' + p.reference_arm + ', one model' if many else p.treatment_arm + ' vs ' + p.reference_arm}). p-values "
        f"are two-sided. {multiplicity_sentence(p)}"
    )
    return [cohort, stats]
