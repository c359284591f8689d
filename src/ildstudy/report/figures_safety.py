"""Safety figure: cumulative incidence of discontinuation for an adverse event (Aalen–Johansen, competing risks).

Called by :func:`ildstudy.report.figures.render_figures` inside its ``rc_context``; matplotlib is imported only
inside the function.
"""

from __future__ import annotations

import numpy as np

from ildstudy.analysis.safety import CAUSE_LABELS, SafetyResult
from ildstudy.report import extract
from ildstudy.report.formatting import fmt_month
from ildstudy.report.style import GRID

CAUSE_TITLES = {1: "Stopped for an adverse event", 2: "Other stop or switch"}


def cumulative_incidence_figure(safety: SafetyResult, colours: dict[str, str], *, n_by_arm: dict[str, int],
                                max_months: float):
    """Step curves of the cumulative incidence (%) of each cause per arm with 95% CI bands, one panel per cause.

    ``colours`` gives the arms (in order) and their colours, ``n_by_arm`` the legend's n, ``max_months`` the x
    range."""
    from matplotlib.figure import Figure

    arms = list(colours)
    ticks = extract.risk_ticks(float(max_months))
    fig = Figure(figsize=(9.8, 4.0))
    axes = fig.subplots(1, len(CAUSE_LABELS), sharey=True)
    top = 1.0
    for ax, cause in zip(np.atleast_1d(axes), CAUSE_LABELS):
        for arm in arms:
            ci = safety.cumulative_incidence(arm)
            if cause not in ci.causes:
                continue
            curve = ci.cif(cause)
            t = np.r_[0.0, curve["time"].to_numpy(float)]
            y = 100 * np.r_[0.0, curve["estimate"].to_numpy(float)]
            lo = 100 * np.r_[0.0, curve["ci_low"].fillna(0.0).to_numpy(float)]
            hi = 100 * np.r_[0.0, curve["ci_high"].fillna(0.0).to_numpy(float)]
            ax.step(t, y, where="post", color=colours[arm], linewidth=2.0, zorder=3,
                    label=f"{arm} (n = {n_by_arm.get(arm, '')})")
            ax.fill_between(t, lo, hi, step="post", color=colours[arm], alpha=0.14, linewidth=0, zorder=2)
            top = max(top, float(np.nanmax(hi)))
        ax.set_title(CAUSE_TITLES[cause], loc="left")
        ax.set_xlim(0, float(max_months) * 1.02)
        ax.set_xticks(ticks, [fmt_month(x) for x in ticks])
        ax.set_xlabel("Months since treatment start")
        ax.yaxis.grid(True, color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
    first = np.atleast_1d(axes)[0]
    first.set_ylim(0, min(100.0, top * 1.1 + 1))
    first.set_ylabel("Cumulative incidence (%)")
    handles, labels = first.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=max(1, len(arms)), bbox_to_anchor=(0.5, 1.0), fontsize=9)
    fig.subplots_adjust(top=0.82, wspace=0.12)
    return fig


def cumulative_incidence_caption() -> str:
    """Caption of the cumulative-incidence figure."""
    return ("Cumulative incidence (Aalen–Johansen) of stopping the assigned drug for an adverse event (left) and "
            "of any other stop or a switch to the other arm's drug (right), each treated as a competing risk of "
            "the other, with 95% confidence bands (infinitesimal-jackknife standard errors).")
