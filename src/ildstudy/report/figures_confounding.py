"""Confounding figures: propensity-score distributions by arm (overlap) and the love plot (absolute standardised
mean differences before and after each design).

Called by :func:`ildstudy.report.figures.render_figures` inside its ``rc_context``; matplotlib is imported only
inside the functions. Each takes the one result it draws (:class:`~ildstudy.analysis.confounding.result.
ConfoundingResult`).
"""

from __future__ import annotations

import numpy as np

from ildstudy.analysis.confounding.result import DESIGN_LABELS, ConfoundingResult
from ildstudy.report.style import GRID, NEUTRAL

#: |SMD| below this is usually read as balanced (Austin 2009).
SMD_THRESHOLD = 0.1
DESIGN_MARKERS = {"iptw_ate": "s", "iptw_att": "D", "overlap": "o", "matching": "^"}


def term_label(term: str) -> str:
    """A propensity-model column for people: ``female`` -> ``Female``, ``diagnosisDM`` -> ``Diagnosis: DM``,
    ``baseline_fvc_pct_pred`` -> ``Baseline FVC, % predicted`` (the registered covariate labels)."""
    from ildstudy.variables import covariates

    specs = list(covariates().values())
    for spec in specs:
        if term == spec.term and spec.kind != "factor":
            return spec.label
    for spec in sorted((s for s in specs if s.kind == "factor"), key=lambda s: -len(s.term)):
        if term.startswith(spec.term) and len(term) > len(spec.term):
            return f"{spec.label}: {term[len(spec.term):]}"
    return term


def overlap_figure(cf: ConfoundingResult, colours: dict[str, str]):
    """Mirrored histograms of the propensity score: the first arm above the axis, the reference arm below."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.6))
    ax = fig.subplots()
    bins = np.linspace(0, 1, 26)
    for arm, sign in ((cf.treated_arm, 1), (cf.reference_arm, -1)):
        ps = cf.scores.loc[cf.scores["arm"] == arm, "ps"].to_numpy(float)
        counts, _ = np.histogram(ps, bins=bins)
        ax.bar(bins[:-1], sign * counts, width=np.diff(bins), align="edge", color=colours.get(arm, NEUTRAL),
               alpha=0.8, edgecolor="white", linewidth=0.5, label=f"{arm} (n = {len(ps)})")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"Propensity score: P({cf.treated_arm} | baseline covariates)")
    ax.set_ylabel(f"Patients ({cf.reference_arm} below the axis)")
    ticks = ax.get_yticks()
    ax.set_yticks(ticks, [f"{abs(int(t))}" for t in ticks])
    ax.yaxis.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", fontsize=9, frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def overlap_caption(cf: ConfoundingResult) -> str:
    return (f"Distribution of the propensity score of {cf.treated_arm} by arm ({cf.propensity_info['n']} patients "
            "with every covariate). Where one arm has scores the other lacks, the arms are not comparable and "
            "weights there are large.")


def love_plot(cf: ConfoundingResult):
    """Absolute SMD per covariate: unadjusted (open circle) and after each design (filled markers)."""
    from matplotlib.figure import Figure

    bal = cf.balance
    covs = list(dict.fromkeys(bal["covariate"]))
    y = np.arange(len(covs))[::-1]
    fig = Figure(figsize=(7.2, 0.32 * len(covs) + 1.4))
    ax = fig.subplots()
    before = bal[bal["design"] == "none"].set_index("covariate")["smd_before"].reindex(covs)
    ax.scatter(np.abs(before.to_numpy(float)), y, facecolors="white", edgecolors="black", s=34, zorder=3,
               label="Unadjusted")
    palette = ["#1b6ca8", "#d1495b", "#2e8540", "#8f5cb0"]
    for i, design in enumerate(d for d in cf.designs if d != "none"):
        after = bal[bal["design"] == design].set_index("covariate")["smd_after"].reindex(covs)
        ax.scatter(np.abs(after.to_numpy(float)), y, marker=DESIGN_MARKERS.get(design, "o"), s=30, zorder=4,
                   color=palette[i % len(palette)], label=DESIGN_LABELS[design])
    ax.axvline(SMD_THRESHOLD, color=NEUTRAL, linestyle="--", linewidth=0.8)
    ax.set_yticks(y, [term_label(c) for c in covs])
    ax.set_xlim(left=0)
    ax.set_xlabel("Absolute standardised mean difference")
    ax.xaxis.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    fig.tight_layout()
    return fig


def love_caption(cf: ConfoundingResult) -> str:
    return (f"Covariate balance: absolute standardised mean difference {cf.treated_arm} − {cf.reference_arm} of "
            f"each propensity-model covariate before and after each design (dashed line: {SMD_THRESHOLD:g}). The "
            "denominator is the SD of the unweighted sample (pooled for ATE and overlap weights, the first arm's "
            "for ATT designs), as in cobalt.")
