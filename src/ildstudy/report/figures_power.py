"""The power curve of ``ildstudy power``: power against the number of patients, one line per effect.

matplotlib is imported only inside the functions; the numbers come from
:class:`~ildstudy.analysis.power.PowerResult`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ildstudy.analysis.power import PowerResult
from ildstudy.report.style import ARM_COLOURS, GRID, NEUTRAL, PNG_DPI, matplotlib_rc, outcome_unit


def power_figure(result: PowerResult):
    """Power (with Wilson 95% intervals) against n, one line per effect; the nominal alpha and 80% dashed."""
    from matplotlib.figure import Figure

    table = result.table()
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for i, effect in enumerate(result.settings.effects):
        g = table[table["outcome"] == effect.outcome].sort_values("n")
        colour = ARM_COLOURS[(i + 2) % len(ARM_COLOURS)] if i else NEUTRAL
        unit = outcome_unit(effect.outcome)
        label = f"{effect.outcome} at month {effect.month:g}: {effect.delta:+g}{' ' + unit if unit else ''}"
        n, power, lo, hi = (g[c].to_numpy(float) for c in ("n", "power", "ci_low", "ci_high"))
        ax.fill_between(n, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.errorbar(n, power, yerr=np.vstack([power - lo, hi - power]), marker="o", markersize=4, capsize=3, color=colour, label=label)
    ax.axhline(0.8, color=GRID, linestyle="--", linewidth=1)
    ax.axhline(result.settings.alpha, color=GRID, linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Patients (all eligible; 60% in the treatment arm)")
    ax.set_ylabel("Power")
    sizes = list(result.settings.sizes)
    if len(sizes) == 1:
        ax.set_xlim(sizes[0] - 10, sizes[0] + 10)
        ax.set_xticks(sizes)
    ax.set_title(f"Power of {result.contrast}\nalpha {result.settings.alpha:g}, {result.settings.reps} replicates "
                 f"per size; bars: Wilson 95% intervals")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def write_power_figure(result: PowerResult, folder: Path, name: str = "power") -> tuple[Path, Path]:
    """Write ``name.svg`` (no date: same result, same bytes) and ``name.png`` into ``folder``."""
    import matplotlib

    with matplotlib.rc_context(matplotlib_rc()):
        fig = power_figure(result)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        svg_path, png_path = folder / f"{name}.svg", folder / f"{name}.png"
        with open(svg_path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(buf.getvalue())
        fig.savefig(png_path, format="png", dpi=PNG_DPI, facecolor="white")
    return svg_path, png_path
