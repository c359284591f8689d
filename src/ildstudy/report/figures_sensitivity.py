"""Sensitivity figure: one forest plot of the arm difference at the summary month across the primary analysis,
every sensitivity analysis and every confounding design (propensity-score rows drawn as circles, below a rule),
one panel per outcome.

Called by :func:`ildstudy.report.figures.render_figures` inside its ``rc_context``; matplotlib is imported only
inside the function.
"""

from __future__ import annotations

import numpy as np

from ildstudy.analysis.sensitivity import PRIMARY, SensitivityResult
from ildstudy.report.formatting import fmt_month, significant
from ildstudy.report.style import GRID, NEUTRAL, outcome_unit


def sensitivity_forest(s: SensitivityResult, labels: dict[str, str], *, contrast: str, treatment: str):
    """Point and 95% CI of each analysis's difference at ``s.month``; rows are analyses (primary on top, the
    confounding designs last, as circles), filled markers p < 0.05. ``labels`` maps outcome names to panel titles, in
    order. Analyses not run have no point."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = list(s.analyses["analysis"])
    titles = dict(zip(s.analyses["analysis"], s.analyses["label"]))
    ypos = {a: len(names) - 1 - i for i, a in enumerate(names)}
    design_rows = set(s.analyses.loc[s.analyses["kind"] == "confounding", "analysis"])
    outcomes = [o for o in labels if (s.contrasts["outcome"] == o).any()]
    fig = Figure(figsize=(3.0 * len(outcomes) + 3.2, 0.5 * len(names) + 1.9), layout="constrained")
    axes = fig.subplots(1, len(outcomes), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, outcomes):
        d = s.contrasts[s.contrasts["outcome"] == name]
        y = np.array([ypos[a] for a in d["analysis"]], dtype=float)
        est, lo, hi = (d[c].to_numpy(float) for c in ("estimate", "ci_low", "ci_high"))
        sig = np.array([significant(p) for p in d["p"]], dtype=bool)
        ps = np.array([a in design_rows for a in d["analysis"]], dtype=bool)
        ax.axvline(0.0, color=NEUTRAL, linestyle="--", linewidth=0.9, zorder=1)
        if design_rows and len(design_rows) < len(names):
            ax.axhline(max(ypos[a] for a in design_rows) + 0.5, color=NEUTRAL, linewidth=0.6, zorder=1)
        if PRIMARY in ypos:
            ax.axhspan(ypos[PRIMARY] - 0.45, ypos[PRIMARY] + 0.45, color=GRID, alpha=0.5, zorder=0)
        ax.hlines(y, lo, hi, color=NEUTRAL, linewidth=1.5, zorder=2)
        for marker, rows in (("D", ~ps), ("o", ps)):
            ax.scatter(est[sig & rows], y[sig & rows], marker=marker, s=34, color=NEUTRAL, zorder=3)
            ax.scatter(est[~sig & rows], y[~sig & rows], marker=marker, s=34, facecolor="white", edgecolor=NEUTRAL,
                       linewidths=1.3, zorder=3)
        span = np.nanmax(np.abs(np.concatenate([lo, hi, [1.0]])))
        ax.set_xlim(-1.08 * span, 1.08 * span)
        ax.xaxis.grid(True, color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(labels[name], loc="left")
        unit = outcome_unit(name)
        ax.set_xlabel(f"{contrast} at {fmt_month(s.month)} months{', ' + unit if unit else ''}\n"
                      f"\u2190 lower in {treatment}    higher in {treatment} \u2192", fontsize=8.5)
    axes[0].set_yticks(list(ypos.values()), [_short(titles[a]) for a in ypos])
    axes[0].set_ylim(-0.6, len(names) - 0.4)
    fig.legend(handles=[
        Line2D([], [], marker="D", linestyle="none", color=NEUTRAL, label="p < 0.05"),
        Line2D([], [], marker="D", linestyle="none", markerfacecolor="white", markeredgecolor=NEUTRAL,
               label="p \u2265 0.05"),
        Line2D([], [], color=NEUTRAL, linewidth=1.5, label="95% CI"),
        *([Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor=NEUTRAL,
                  label="propensity-score design")] if design_rows else []),
    ], loc="outside lower center", ncol=4 if design_rows else 3, fontsize=8.5)
    return fig


def sensitivity_caption(s: SensitivityResult, contrast: str) -> str:
    """Caption of the sensitivity forest plot."""
    kinds = set(s.analyses["kind"])
    text = (f"Adjusted differences {contrast} at {fmt_month(s.month)} months with 95% confidence intervals, in the "
            "primary analysis (shaded)")
    if "sensitivity" in kinds:
        text += " and each sensitivity analysis"
    if "confounding" in kinds:
        text += (", and under each propensity-score design of the primary cohort (circles, below the rule: "
                 "fixed-effects models, unweighted or weighted or matched, cluster-robust intervals)")
    text += " (unadjusted p)."
    if "sensitivity" in kinds:
        text += " Each sensitivity analysis builds its own cohort from the same registry."
    return text + " An analysis that could not be run, or has no estimate at this month, has no point."


def _short(label: str, width: int = 34) -> str:
    """The label on at most two lines of ``width`` characters (an ellipsis when longer)."""
    import textwrap

    lines = textwrap.wrap(label, width)
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), width, placeholder="\u2026")]
    return "\n".join(lines)
