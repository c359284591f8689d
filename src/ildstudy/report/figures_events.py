"""Event figures: adverse events by arm and category, Kaplan–Meier curves of discontinuation and progression.

Called by :func:`ildstudy.report.figures.render_figures` inside its ``rc_context``; matplotlib is
imported only inside the functions.
"""

from __future__ import annotations

import numpy as np

from ildstudy.analysis.adverse_events import AdverseEventResult
from ildstudy.analysis.discontinuation import DiscontinuationResult, EndpointResult
from ildstudy.analysis.progression import ProgressionResult
from ildstudy.report import extract
from ildstudy.report.formatting import fmt_ci, fmt_month, fmt_num, is_missing, p_phrase
from ildstudy.report.style import GRID, NEUTRAL


def adverse_event_figure(ae: AdverseEventResult, colours: dict[str, str], *, n_by_arm: dict[str, int]):
    """Horizontal grouped bars: % of patients with ≥ 1 adverse event, overall and by category.

    ``colours`` gives the arms (in order) and their colours; ``n_by_arm`` the legend's n."""
    from matplotlib.figure import Figure

    arms = list(colours)
    by_arm = extract.ae_by_arm(ae)
    rows = [{"category": "Any adverse event",
             "arms": {a: {"patients": by_arm[a]["patients_with_event"], "n": by_arm[a]["n"],
                          "percent": by_arm[a]["percent"]} for a in arms}}]
    rows += extract.ae_by_category(ae, arms)
    height = 0.8 / len(arms)
    fig = Figure(figsize=(6.6, 0.5 * len(rows) + 1.3))
    ax = fig.add_subplot()
    top = len(rows) - 1
    xmax = 1.0
    for i, row in enumerate(rows):
        for j, arm in enumerate(arms):
            cell = row["arms"][arm]
            pct = 0.0 if is_missing(cell["percent"]) else float(cell["percent"])
            y = top - i + 0.4 - height * (j + 0.5)
            ax.barh(y, pct, height=height * 0.92, color=colours[arm], zorder=2,
                    label=f"{arm} (n = {n_by_arm.get(arm, cell['n'])})" if i == 0 else None)
            if not is_missing(cell["patients"]) and not is_missing(cell["n"]):
                ax.text(pct + 0.6, y, f"{int(cell['patients'])}/{int(cell['n'])}", va="center", fontsize=7.5,
                        color="#333333")
            xmax = max(xmax, pct)
    ax.set_yticks([top - i for i in range(len(rows))], [r["category"] for r in rows])
    ax.get_yticklabels()[0].set_fontweight("bold")
    ax.axhline(top - 0.5, color="#999999", linewidth=0.6)
    ax.set_ylim(-0.55, top + 0.55)
    ax.set_xlim(0, xmax * 1.18 + 1)
    ax.set_xlabel("Patients with \u2265 1 event (%)")
    ax.xaxis.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    ax.legend(loc="lower right")
    return fig


def adverse_event_caption() -> str:
    """Caption of the adverse-event bar chart."""
    return ("Percentage of patients with at least one adverse event, overall and by category; labels give "
            "patients with an event / patients in the arm. A patient can count in several categories.")


def _hr_text(endpoint: EndpointResult) -> str:
    """``HR 1.23 (0.80–1.90)``; with more than two arms one line per arm (``AZA HR ...``)."""
    if len(endpoint.arms) > 2:
        return "\n".join(f"{h.term[3:]} HR {fmt_num(h.hazard_ratio, 2)} ({fmt_ci(h.ci_low, h.ci_high, 2)})"
                         for h in endpoint.cox_by_arm if not is_missing(h.hazard_ratio))
    hr = endpoint.cox
    if hr is None or is_missing(hr.hazard_ratio):
        return ""
    return f"HR {fmt_num(hr.hazard_ratio, 2)} ({fmt_ci(hr.ci_low, hr.ci_high, 2)})"


def km_figure(disc: DiscontinuationResult, colours: dict[str, str], *, n_by_arm: dict[str, int],
              max_months: float, treatment: str, reference: str):
    """Kaplan–Meier curves of time to discontinuation, one panel per endpoint, numbers at risk below.

    ``colours`` gives the arms (in order) and their colours, ``n_by_arm`` the legend's n, ``max_months``
    the x range; ``treatment`` and ``reference`` name the hazard ratio's arms."""
    analyses = extract.km_endpoints(disc)
    return km_panels(analyses, [f"Discontinuation for {extract.endpoint_label(e)}" for e in analyses], colours,
                     n_by_arm=n_by_arm, max_months=max_months, treatment=treatment, reference=reference,
                     ylabel="Remaining on treatment (%)")


def km_panels(analyses: list[EndpointResult], titles: list[str], colours: dict[str, str], *,
              n_by_arm: dict[str, int], max_months: float, treatment: str, reference: str, ylabel: str,
              columns: int | None = None, tick_step: float = 12.0):
    """Kaplan–Meier panels (one per endpoint, ``columns`` per row; default all in one row), each with its
    log-rank p and hazard ratio and the numbers at risk below (discontinuation and progression)."""
    from matplotlib.figure import Figure

    arms = list(colours)
    max_m = float(max_months)
    ticks = extract.risk_ticks(max_m, tick_step)
    ncol = columns or len(analyses)
    nrow = -(-len(analyses) // ncol)
    fig = Figure(figsize=(4.9 * ncol + 0.4, 4.7 * nrow))
    grid = fig.add_gridspec(2 * nrow, ncol, height_ratios=[3.4, 0.3 + 0.28 * len(arms)] * nrow, hspace=0.42,
                            wspace=0.28)
    for k, endpoint in enumerate(analyses):
        row, col = divmod(k, ncol)
        ax = fig.add_subplot(grid[2 * row, col])
        risk = fig.add_subplot(grid[2 * row + 1, col], sharex=ax)
        for arm in arms:
            curve = extract.km_curve(endpoint, arm)
            if curve.empty:
                continue
            t = curve["time"].to_numpy(float)
            s = 100 * curve["survival"].to_numpy(float)
            if t[0] > 0:
                t, s = np.r_[0.0, t], np.r_[100.0, s]
            ax.step(t, s, where="post", color=colours[arm], linewidth=2.0, zorder=3,
                    label=f"{arm} (n = {n_by_arm.get(arm, '')})")
            if {"ci_low", "ci_high"} <= set(curve.columns):
                lo, hi = 100 * curve["ci_low"].to_numpy(float), 100 * curve["ci_high"].to_numpy(float)
                if len(lo) < len(t):
                    lo, hi = np.r_[100.0, lo], np.r_[100.0, hi]
                ax.fill_between(t, lo, hi, step="post", color=colours[arm], alpha=0.14, linewidth=0, zorder=2)
            cens = curve[curve.get("n_censor", 0) > 0] if "n_censor" in curve else curve.iloc[0:0]
            ax.plot(cens["time"].to_numpy(float), 100 * cens["survival"].to_numpy(float), linestyle="none",
                    marker="|", markersize=6, markeredgewidth=1.0, color=colours[arm], zorder=4)
        ax.set_ylim(0, 103)
        ax.set_xlim(0, max_m * 1.02)
        ax.set_title(titles[k], loc="left")
        ax.set_ylabel(ylabel if col == 0 else "")
        ax.yaxis.grid(True, color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelbottom=True)
        ax.set_xticks(ticks, [fmt_month(x) for x in ticks])
        ax.set_xlabel("Months since treatment start")
        lines = []
        if not is_missing(endpoint.logrank.p):
            lines.append(f"Log-rank {p_phrase(endpoint.logrank.p)}")
        if _hr_text(endpoint):
            lines.append(f"{_hr_text(endpoint)}, {treatment} vs {reference}")
        if lines:
            ax.text(0.02, 0.04, "\n".join(lines), transform=ax.transAxes, fontsize=8.5, color=NEUTRAL,
                    va="bottom", ha="left",
                    bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#BBBBBB"})
        _risk_table(risk, endpoint, arms, colours, ticks)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(arms), bbox_to_anchor=(0.5, 1.0), fontsize=9)
    return fig


def progression_figure(progression: ProgressionResult, colours: dict[str, str], *, n_by_arm: dict[str, int],
                       max_months: float, treatment: str, reference: str):
    """Kaplan–Meier curves of time to each progression endpoint (two panels per row), numbers at risk below."""
    eps = list(progression.endpoints)
    return km_panels([e.km for e in eps], [_wrap(e.label) for e in eps], colours, n_by_arm=n_by_arm,
                     max_months=max_months, treatment=treatment, reference=reference,
                     ylabel="Free of progression (%)", columns=min(2, len(eps)))


def progression_caption(treatment: str, reference: str) -> str:
    """Caption of the progression figure."""
    return (f"Kaplan–Meier estimates of the percentage of patients without a qualifying decline from baseline "
            f"(time of the first qualifying test; censored at the last test, within the endpoint's window), with "
            f"95% confidence bands; ticks mark censored patients. HR: Cox hazard ratio of progression, {treatment} "
            f"vs {reference} (95% CI).")


def _wrap(text: str, width: int = 44) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _risk_table(ax, endpoint: EndpointResult, arms: list[str], colours: dict[str, str],
                ticks: list[float]) -> None:
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(axis="both", length=0, labelbottom=False)
    ax.tick_params(axis="y", pad=16)
    ax.set_ylim(len(arms) - 0.5, -0.7)
    ax.set_yticks(range(len(arms)), arms)
    for lab, arm in zip(ax.get_yticklabels(), arms):
        lab.set_color(colours[arm])
        lab.set_fontweight("bold")
    for i, arm in enumerate(arms):
        curve = extract.km_curve(endpoint, arm)
        for t in ticks:
            ax.text(t, i, str(extract.n_at_risk(curve, t)) if not curve.empty else "", ha="center",
                    va="center", fontsize=8.5, color=colours[arm])
    ax.text(0.0, -0.85, "Number at risk", transform=ax.get_yaxis_transform(), fontsize=8.5,
            fontweight="bold", color=NEUTRAL, va="bottom", ha="left")


def km_caption(treatment: str, reference: str) -> str:
    """Caption of the Kaplan–Meier figure."""
    return (f"Kaplan–Meier estimates of the percentage of patients still on their assigned drug, with 95% "
            f"confidence bands; ticks mark censored patients. Numbers at risk are given under each panel. "
            f"HR: Cox hazard ratio of discontinuation, {treatment} vs {reference} (95% CI).")
