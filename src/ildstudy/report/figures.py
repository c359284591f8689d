"""The report's figures: outcome trajectories, the forest plot of contrasts, adverse events, KM curves.

Every figure is drawn on a pyplot-free :class:`matplotlib.figure.Figure` (Agg for PNG) inside
:func:`matplotlib.rc_context`, so nothing global changes, and saved as SVG (text kept as text,
fixed hash salt, no date: identical bytes on rerun) and 300-dpi PNG. matplotlib is imported only
inside these functions. Arms have the colours of :data:`ildstudy.report.style.ARM_COLOURS`.

>>> from pathlib import Path                                    # doctest: +SKIP
>>> figs = render_figures(result, Path("out/figures"))          # doctest: +SKIP
>>> [f.name for f in figs]                                      # doctest: +SKIP
['trajectory_fvc_pct_pred', ..., 'forest_differences', 'adverse_events', 'discontinuation_km']
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.analysis.result import OutcomeResult, StudyResult
from ildstudy.report import extract
from ildstudy.report.formatting import fmt_month, significant
from ildstudy.report.style import GRID, NEUTRAL, PNG_DPI, arm_colours, matplotlib_rc, outcome_unit

#: At most this many patients' observed trajectories are drawn per arm (evenly spaced by series).
MAX_SERIES_PER_ARM = 400


@dataclass(frozen=True, slots=True)
class RenderedFigure:
    """One figure as written to ``figures/``.

    Attributes
    ----------
    name : file stem (``figures/<name>.svg`` and ``.png``).
    title, caption : plain text for the report (escaped by the template).
    svg : the SVG document exactly as written.
    paths : the SVG and PNG files.
    """

    name: str
    title: str
    caption: str
    svg: str
    paths: tuple[Path, Path]


def render_figures(result: StudyResult, folder: Path) -> list[RenderedFigure]:
    """Draw every figure of the report and write it to ``folder`` as SVG and PNG.

    Parameters
    ----------
    result : the study result.
    folder : the ``figures/`` folder (created if needed).

    Returns
    -------
    list of :class:`RenderedFigure`, in report order: one trajectory per outcome, the forest plot,
    adverse events, discontinuation curves (the last two only when their data are present).
    """
    import matplotlib

    from ildstudy.report import figures_events

    folder.mkdir(parents=True, exist_ok=True)
    arms = extract.arm_names(result)
    colours = arm_colours(arms)
    p = result.protocol
    months = [float(m) for m in p.analysis.contrast_months]
    max_months = float(p.follow_up.max_months)
    contrast = extract.contrast_label(result)
    out: list[RenderedFigure] = []
    with matplotlib.rc_context(matplotlib_rc()):
        for outcome in result.outcomes.values():
            fig = trajectory_figure(outcome, colours, n_by_arm=result.arms, months=months, max_months=max_months)
            out.append(_save(fig, folder, f"trajectory_{outcome.name}", f"{outcome.label}: trajectories",
                             _trajectory_caption(outcome, months)))
        if result.outcomes:
            fig = forest_figure(list(result.outcomes.values()), months=months, contrast=contrast,
                                treatment=p.treatment_arm if len(p.compared_arms) == 1 else "arm",
                                colours=colours)
            out.append(_save(fig, folder, "forest_differences", f"Adjusted differences {contrast}",
                             _forest_caption(contrast)))
        if result.adverse_events is not None and not result.adverse_events.by_arm.empty:
            fig = figures_events.adverse_event_figure(result.adverse_events, colours, n_by_arm=result.arms)
            out.append(_save(fig, folder, "adverse_events", "Adverse events by arm and category",
                             figures_events.adverse_event_caption()))
        lung = result.lung_function
        if lung is not None and lung.zscore_trajectories is not None and lung.zscore_trajectories.fits:
            from ildstudy.report import figures_lungfunction as fl

            traj = lung.zscore_trajectories
            fig = fl.zscore_figure(traj, colours, months=months, max_months=max_months)
            out.append(_save(fig, folder, "zscore_trajectories", "Lung function z-scores",
                             fl.zscore_caption(traj, lung.label("fvc", check=lung.checked),
                                               lung.label("dlco", check=lung.checked), months)))
        each_arm = p.treatment_arm if len(p.compared_arms) == 1 else "each arm"  # the KM captions' compared arm
        if result.discontinuation is not None:
            fig = figures_events.km_figure(result.discontinuation, colours, n_by_arm=result.arms,
                                           max_months=max_months, treatment=p.treatment_arm,
                                           reference=p.reference_arm)
            out.append(_save(fig, folder, "discontinuation_km", "Time to treatment discontinuation",
                             figures_events.km_caption(each_arm, p.reference_arm)))
        if result.progression is not None and result.progression.endpoints:
            fig = figures_events.progression_figure(result.progression, colours, n_by_arm=result.arms,
                                                    max_months=max_months, treatment=p.treatment_arm,
                                                    reference=p.reference_arm)
            out.append(_save(fig, folder, "progression_km", "Time to progression",
                             figures_events.progression_caption(each_arm, p.reference_arm)))
        if result.safety is not None:
            from ildstudy.report import figures_safety

            fig = figures_safety.cumulative_incidence_figure(result.safety, colours, n_by_arm=result.arms,
                                                             max_months=max_months)
            out.append(_save(fig, folder, "cumulative_incidence", "Discontinuation with competing causes",
                             figures_safety.cumulative_incidence_caption()))
        if result.sensitivity is not None:
            from ildstudy.report import figures_sensitivity

            fig = figures_sensitivity.sensitivity_forest(
                result.sensitivity, {o.name: o.label for o in result.outcomes.values()}, contrast=contrast,
                treatment=p.treatment_arm if len(p.compared_arms) == 1 else "arm")
            out.append(_save(fig, folder, "sensitivity_forest", "Sensitivity analyses",
                             figures_sensitivity.sensitivity_caption(result.sensitivity, contrast)))
        if getattr(result, "confounding", None) is not None:
            from ildstudy.report import figures_confounding as fc

            cf = result.confounding
            out.append(_save(fc.overlap_figure(cf, colours), folder, "confounding_overlap",
                             "Propensity-score overlap", fc.overlap_caption(cf)))
            out.append(_save(fc.love_plot(cf), folder, "confounding_love_plot", "Covariate balance (love plot)",
                             fc.love_caption(cf)))
    return out


def _save(fig, folder: Path, name: str, title: str, caption: str) -> RenderedFigure:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg_path, png_path = folder / f"{name}.svg", folder / f"{name}.png"
    with open(svg_path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(svg)
    fig.savefig(png_path, format="png", dpi=PNG_DPI, facecolor="white")
    return RenderedFigure(name=name, title=title, caption=caption, svg=svg, paths=(svg_path, png_path))


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _sample_series(ids: np.ndarray, limit: int) -> np.ndarray:
    ids = np.unique(ids)
    if len(ids) <= limit:
        return ids
    return ids[np.linspace(0, len(ids) - 1, limit).round().astype(int)]


def trajectory_figure(outcome: OutcomeResult, colours: dict[str, str], *, n_by_arm: dict[str, int],
                      months: list[float], max_months: float):
    """Marginal means with 95% CI bands per arm over months, observed patient values faintly behind.

    ``colours`` gives the arms (in order) and their colours, ``n_by_arm`` the legend's n, ``months`` the
    x ticks (the protocol's contrast months) and ``max_months`` the follow-up maximum (x range)."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    arms = list(colours)
    fig = Figure(figsize=(6.6, 4.0))
    ax = fig.add_subplot()
    obs = outcome.observed
    sampled = False
    if obs is not None and not obs.empty:
        for arm in arms:
            sub = obs[obs["arm"].astype(str) == arm]
            keep = _sample_series(sub["series"].to_numpy(), MAX_SERIES_PER_ARM)
            sampled |= len(keep) < sub["series"].nunique()
            sub = sub[sub["series"].isin(keep)].sort_values(["series", "months"], kind="mergesort")
            segs = [g[["months", "value"]].to_numpy(float) for _, g in sub.groupby("series", sort=True)]
            ax.add_collection(LineCollection(segs, colors=colours[arm], linewidths=0.5, alpha=0.14,
                                             zorder=1))
            ax.scatter(sub["months"], sub["value"], s=3.5, color=colours[arm], alpha=0.22, linewidths=0,
                       zorder=1)
    mm = outcome.marginal_means
    handles = []
    for arm in arms:
        sub = mm[mm["arm"].astype(str) == arm].sort_values("month", kind="mergesort")
        if sub.empty:
            continue
        x = sub["month"].to_numpy(float)
        ax.fill_between(x, sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float),
                        color=colours[arm], alpha=0.2, linewidth=0, zorder=2)
        ax.plot(x, sub["estimate"].to_numpy(float), color=colours[arm], linewidth=2.4, marker="o",
                markersize=4.5, zorder=3)
        n = n_by_arm.get(arm)
        handles.append(Line2D([], [], color=colours[arm], linewidth=2.4, marker="o", markersize=4.5,
                              label=f"{arm} (n = {n}): adjusted mean, 95% CI" if n else arm))
    handles.append(Line2D([], [], color="#777777", linewidth=0.8, alpha=0.6,
                          label="observed values, one line per patient" + (" (sample)" if sampled else "")))
    ticks = months
    ax.set_xticks(ticks, [fmt_month(t) for t in ticks])
    ax.set_xlim(-1.5, max(float(max_months), ticks[-1]) + 1.5)
    ax.set_xlabel("Months since treatment start")
    ax.set_ylabel(_wrap(outcome.label, 40))
    ax.yaxis.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8.5)
    return fig


def _trajectory_caption(outcome: OutcomeResult, months: list[float]) -> str:
    return (f"{outcome.label}: adjusted marginal means (lines and points) with 95% confidence bands per arm "
            f"from the linear mixed-effects model, at months "
            f"{', '.join(fmt_month(m) for m in months)}. "
            "Faint lines and dots behind are the observed values, one line per patient.")


def forest_figure(outcomes: list[OutcomeResult], *, months: list[float], contrast: str, treatment: str,
                  colours: dict[str, str] | None = None):
    """AZA − MMF adjusted differences with 95% CIs at each contrast month, one panel per outcome.

    ``contrast`` is the axis label ("AZA − MMF") and ``treatment`` the arm named in the direction hint. With
    more than one contrast (more than two arms) each month has one row per contrast ("AZA - MMF",
    "RTX - MMF"), drawn in the compared arm's colour from ``colours`` and named in the legend."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ypos = {m: len(months) - 1 - i for i, m in enumerate(months)}
    fig = Figure(figsize=(2.9 * len(outcomes) + 0.8, 0.34 * len(months) + 1.9), layout="constrained")
    axes = fig.subplots(1, len(outcomes), sharey=True, squeeze=False)[0]
    treat = treatment
    names = list(dict.fromkeys(str(c) for o in outcomes for c in o.arm_differences["contrast"]))
    offset = {c: 0.0 if len(names) == 1 else (len(names) - 1) / 2 * 0.5 / len(names) - j * 0.5 / len(names)
              for j, c in enumerate(names)}
    for ax, outcome in zip(axes, outcomes):
        d = outcome.arm_differences.sort_values("month", kind="mergesort")
        d = d[d["month"].astype(float).isin(months)]
        y = np.array([ypos[float(m)] + offset[str(c)] for m, c in zip(d["month"], d["contrast"])])
        if len(names) > 1:
            _forest_many(ax, d, y, names, colours or {})
            _forest_axis(ax, outcome, d, contrast, treat)
            continue
        est = d["estimate"].to_numpy(float)
        lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
        sig = np.array([significant(p) for p in d["p"]], dtype=bool)
        ax.axvline(0.0, color=NEUTRAL, linestyle="--", linewidth=0.9, zorder=1)
        ax.hlines(y, lo, hi, color=NEUTRAL, linewidth=1.5, zorder=2)
        ax.scatter(est[sig], y[sig], marker="D", s=34, color=NEUTRAL, zorder=3)
        ax.scatter(est[~sig], y[~sig], marker="D", s=34, facecolor="white", edgecolor=NEUTRAL,
                   linewidths=1.3, zorder=3)
        _forest_axis(ax, outcome, d, contrast, treat)
    axes[0].set_yticks(list(ypos.values()), [f"{fmt_month(m)} mo" for m in ypos])
    axes[0].set_ylim(-0.6, len(months) - 0.4)
    axes[0].set_ylabel("Months since treatment start")
    by_arm = [Line2D([], [], color=(colours or {}).get(c.split(" - ")[0], NEUTRAL), linewidth=1.5, marker="D",
                     label=c.replace(" - ", " \u2212 ")) for c in names] if len(names) > 1 else []
    fig.legend(handles=[
        *by_arm,
        Line2D([], [], marker="D", linestyle="none", color=NEUTRAL, label="p < 0.05"),
        Line2D([], [], marker="D", linestyle="none", markerfacecolor="white", markeredgecolor=NEUTRAL,
               label="p \u2265 0.05"),
        Line2D([], [], color=NEUTRAL, linewidth=1.5, label="95% CI"),
    ], loc="outside lower center", ncol=3 + len(by_arm), fontsize=8.5)
    return fig


def _forest_axis(ax, outcome: OutcomeResult, d: pd.DataFrame, contrast: str, treat: str) -> None:
    """Symmetric x range, grid, title and axis label of one forest panel."""
    lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
    span = np.nanmax(np.abs(np.concatenate([lo, hi, [1.0]])))
    ax.set_xlim(-1.08 * span, 1.08 * span)
    ax.xaxis.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(_wrap(outcome.label, 30), loc="left")
    unit = outcome_unit(outcome.name)
    ax.set_xlabel(f"{contrast}{', ' + unit if unit else ''}\n"
                  f"\u2190 lower in {treat}    higher in {treat} \u2192", fontsize=8.5)


def _forest_many(ax, d: pd.DataFrame, y: np.ndarray, names: list[str], colours: dict[str, str]) -> None:
    """One row per contrast at each month, in the compared arm's colour; filled diamonds p < 0.05."""
    ax.axvline(0.0, color=NEUTRAL, linestyle="--", linewidth=0.9, zorder=1)
    for c in names:
        sel = (d["contrast"].astype(str) == c).to_numpy()
        colour = colours.get(c.split(" - ")[0], NEUTRAL)
        est = d["estimate"].to_numpy(float)[sel]
        lo, hi = d["ci_low"].to_numpy(float)[sel], d["ci_high"].to_numpy(float)[sel]
        sig = np.array([significant(p) for p in d["p"][sel]], dtype=bool)
        ax.hlines(y[sel], lo, hi, color=colour, linewidth=1.5, zorder=2)
        ax.scatter(est[sig], y[sel][sig], marker="D", s=30, color=colour, zorder=3)
        ax.scatter(est[~sig], y[sel][~sig], marker="D", s=30, facecolor="white", edgecolor=colour,
                   linewidths=1.3, zorder=3)


def _forest_caption(contrast: str) -> str:
    return (f"Adjusted differences {contrast} (diamonds) with 95% confidence intervals "
            "at each protocol month, from each outcome's mixed-effects model; filled diamonds: p < 0.05 "
            "(not adjusted for multiple comparisons). The dashed line marks no difference.")
