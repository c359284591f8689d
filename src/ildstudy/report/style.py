"""The report's visual constants: arm colours, outcome units and the matplotlib settings.

One palette serves the figures and the HTML (table headers, key-result swatches), so an arm has
the same colour everywhere. The colours are Okabe & Ito's colour-blind-safe set, taken in a fixed
order by the position of the arm in the protocol (first arm, then the reference arm).

>>> arm_colours(["AZA", "MMF"])
{'AZA': '#D55E00', 'MMF': '#0072B2'}
"""

from __future__ import annotations

from collections.abc import Sequence

#: Okabe–Ito colours by arm position (protocol order: treatment arm first, reference arm last).
ARM_COLOURS: tuple[str, ...] = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")

#: Colour of things that belong to no arm (null lines, contrasts, grid).
NEUTRAL = "#333333"
GRID = "#DDDDDD"

#: Units of an outcome's difference, by outcome name (labels come from the protocol).
OUTCOME_UNITS: dict[str, str] = {
    "fvc_pct_pred": "%-points",
    "dlco_pct_pred": "%-points",
    "prednisone_mg": "mg/day",
    "fev1_pct_pred": "%-points",
    "fvc_zscore": "z",
    "fev1_zscore": "z",
    "dlco_zscore": "z",
    "fvc_ml": "mL",
    "fev1_fvc": "",
    "fev1_fvc_zscore": "z",
}

#: Fixed salt so that matplotlib's SVG ids, and hence the files, are identical on rerun.
SVG_HASH_SALT = "ildstudy-report"

#: Resolution of the PNG copies of each figure.
PNG_DPI = 300


def arm_colours(arms: Sequence[str]) -> dict[str, str]:
    """Map arm names, in protocol order, to their colours (cycling if there are more than six)."""
    return {arm: ARM_COLOURS[i % len(ARM_COLOURS)] for i, arm in enumerate(arms)}


def outcome_unit(name: str) -> str:
    """Unit of a difference in outcome ``name`` (empty when unknown)."""
    return OUTCOME_UNITS.get(name, "")


def matplotlib_rc() -> dict[str, object]:
    """rcParams used for every figure: deterministic SVG, editable text, quiet axes.

    ``svg.fonttype = "none"`` keeps text as text (editable in a manuscript, escaped by matplotlib)
    and ``text.parse_math = False`` stops a ``$`` in a data label from being read as mathtext.
    """
    return {
        "svg.hashsalt": SVG_HASH_SALT,
        "svg.fonttype": "none",
        "text.parse_math": False,
        "text.usetex": False,
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "Liberation Sans"],
        "font.size": 9.5,
        "axes.titlesize": 10.5,
        "axes.titleweight": "bold",
        "axes.labelsize": 9.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#555555",
        "axes.grid": False,
        "xtick.color": "#333333",
        "ytick.color": "#333333",
        "legend.frameon": False,
        "legend.fontsize": 9,
        "savefig.bbox": "tight",
        "savefig.pad_inches": 0.05,
        "figure.dpi": 100,
        "path.simplify": True,
    }
