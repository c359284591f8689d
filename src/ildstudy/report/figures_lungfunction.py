"""The lung-function section's figure: FVC and DLCO z-score trajectories per arm, the lower limit of normal marked.

matplotlib is imported only inside the function; the numbers come from
:class:`~ildstudy.analysis.zscore_trajectories.ZscoreTrajectories`.
"""

from __future__ import annotations

from ildstudy.analysis.zscore_trajectories import ZSCORE_OUTCOMES, ZscoreTrajectories
from ildstudy.report.formatting import fmt_month
from ildstudy.report.style import GRID
from ildstudy.variables import outcome_spec

#: z-score of the lower limit of normal (the 5th centile of the healthy population)
LLN_Z = -1.645


def zscore_figure(traj: ZscoreTrajectories, colours: dict[str, str], *, months: list[float], max_months: float):
    """Adjusted mean z-score with 95% CI bands per arm over months, one panel per measure fitted."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = [n for n in ZSCORE_OUTCOMES if n in traj.fits]
    fig = Figure(figsize=(3.4 * len(names) + 0.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, names):
        mm = traj.fits[name].marginal_means
        for arm, colour in colours.items():
            sub = mm[mm["arm"].astype(str) == arm].sort_values("month", kind="mergesort")
            if sub.empty:
                continue
            x = sub["month"].to_numpy(float)
            ax.fill_between(x, sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float), color=colour,
                            alpha=0.2, linewidth=0)
            ax.plot(x, sub["estimate"].to_numpy(float), color=colour, linewidth=2.2, marker="o", markersize=4)
        ax.axhline(LLN_Z, color="#555555", linestyle="--", linewidth=1)
        ax.set_xticks(months, [fmt_month(m) for m in months])
        ax.set_xlim(-1.5, max(float(max_months), months[-1]) + 1.5)
        ax.set_xlabel("Months since treatment start")
        ax.set_title(outcome_spec(name).label, fontsize=10)
        ax.yaxis.grid(True, color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("Adjusted mean z-score")
    handles = [Line2D([], [], color=c, linewidth=2.2, marker="o", markersize=4, label=a) for a, c in colours.items()]
    handles.append(Line2D([], [], color="#555555", linestyle="--", linewidth=1,
                          label="lower limit of normal (z = −1.645)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5)
    return fig


def zscore_caption(traj: ZscoreTrajectories, equation_label: str, dlco_label: str, months: list[float]) -> str:
    return (f"Adjusted mean z-scores (lines and points) with 95% confidence bands per arm, from each outcome's "
            f"linear mixed-effects model fitted to the z-scores ({equation_label} for FVC, {dlco_label} for DLCO), "
            f"at months {', '.join(fmt_month(m) for m in months)}. A z-score of −1.645 (dashed) is the lower "
            "limit of normal; the z-scores are a secondary, exploratory view of the % predicted analyses.")
