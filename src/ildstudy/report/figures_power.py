"""The power curve of ``ildstudy power``: power against the number of patients, one line per effect.

matplotlib is imported only inside the functions; the numbers come from
:class:`~ildstudy.analysis.power.PowerResult`.
"""

from __future__ import annotations

import io
from pathlib import Path

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
        ax.fill_between(g["n"], g["ci_low"], g["ci_high"], color=colour, alpha=0.15, linewidth=0)
        ax.plot(g["n"], g["power"], marker="o", markersize=4, color=colour, label=label)
    ax.axhline(0.8, color=GRID, linestyle="--", linewidth=1)
    ax.axhline(result.settings.alpha, color=GRID, linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Patients (all eligible; 60% in the treatment arm)")
    ax.set_ylabel("Power")
    ax.set_title(f"Power of the arm difference {result.contrast} (alpha {result.settings.alpha:g}, "
                 f"{result.settings.reps} replicates per size)")
    ax.legend(loc="lower right")
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
