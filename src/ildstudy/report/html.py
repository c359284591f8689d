"""The self-contained HTML report and :func:`write_report`.

``report.html`` is one file that works offline: CSS inline, figures as inline SVG, no scripts, no
fonts, images or links that load anything (a Content-Security-Policy of ``default-src 'none'``
makes the browser refuse any such load). It is rendered with jinja2 with autoescaping on, so every
string from the data or the protocol is HTML-escaped; only the inline SVG (written by matplotlib,
which escapes its text) is inserted as markup. The same result gives the same bytes on every run.

>>> from ildstudy.report import write_report                      # doctest: +SKIP
>>> paths = write_report(result, Path("demo-output"))             # doctest: +SKIP
>>> [p.name for p in paths][:2]                                   # doctest: +SKIP
['report.html', 'trajectory_fvc_pct_pred.svg']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ildstudy.analysis.result import StudyResult
from ildstudy.report import extract, safety_section, sensitivity_section, tables, text
from ildstudy.report import confounding_section, lungfunction_section, progression_section
from ildstudy.report.figures import RenderedFigure, render_figures
from ildstudy.report.formatting import fmt_month
from ildstudy.report.style import arm_colours
from ildstudy.report.svg import inline_svg

REPORT_NAME = "report.html"
FIGURES_DIR = "figures"
TEMPLATE = "report.html.j2"


def write_report(result: StudyResult, out_dir: Path) -> list[Path]:
    """Write ``report.html`` and ``figures/*.svg|png`` for ``result`` into ``out_dir``.

    Nothing else is written (tables, results.json and share/ are the exports' job).

    Parameters
    ----------
    result : the study result.
    out_dir : the run's output folder (created if needed).

    Returns
    -------
    list of Path
        ``report.html`` first, then each figure's SVG and PNG.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = render_figures(result, out_dir / FIGURES_DIR)
    report = out_dir / REPORT_NAME
    with open(report, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(render_html(result, figures))
    return [report] + [p for f in figures for p in f.paths]


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("ildstudy.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _figure(fig: RenderedFigure | None, index: int) -> dict[str, Any] | None:
    if fig is None:
        return None
    return {"name": fig.name, "title": fig.title, "caption": fig.caption,
            "svg": Markup(inline_svg(fig.svg, f"fig{index}-{fig.name.replace('_', '-')}", fig.title)),
            "files": f"{FIGURES_DIR}/{fig.name}.svg, .png"}


def report_context(result: StudyResult, figures: list[RenderedFigure]) -> dict[str, Any]:
    """Everything the template shows, as plain (unescaped) text and inline-SVG markup."""
    by_name = {f.name: _figure(f, i + 1) for i, f in enumerate(figures)}
    p = result.protocol
    outcomes = [{"name": o.name, "label": o.label, "figure": by_name.get(f"trajectory_{o.name}"),
                 "rows": tables.contrasts(result, o), "model": tables.model_appendix(o),
                 "slopes": safety_section.slope_rows(o), "limited": safety_section.limited_months(o),
                 "min_at_risk": safety_section.min_at_risk(o), "dropped": text.dropped_sentence(o)}
                for o in result.outcomes.values()]
    return {
        "title": p.title or p.name,
        "protocol": p.name,
        "notice": str((result.provenance or {}).get("notice") or ""),
        "reference": p.reference,
        "summary": " ".join(text.summary_sentences(result)),
        "key": tables.key_results(result),
        "methods": text.methods_paragraphs(result),
        "flow": tables.flow(result),
        "arms": tables.arm_columns(result),
        "table1": tables.table1(result),
        "lung_function": lungfunction_section.lung_function_context(result, by_name.get("zscore_trajectories")),
        "outcomes": outcomes,
        "headline_month": fmt_month(extract.headline_month(result)),
        "contrast": extract.contrast_label(result),
        "contrasts": extract.contrast_labels(result),
        "forest": by_name.get("forest_differences"),
        "ae": tables.adverse_events(result),
        "ae_figure": by_name.get("adverse_events"),
        "km": tables.discontinuation(result),
        "km_figure": by_name.get("discontinuation_km"),
        "km_month": fmt_month(extract.headline_month(result)),
        "progression": progression_section.progression_context(result, by_name.get("progression_km")),
        "safety": safety_section.safety_context(result, by_name.get("cumulative_incidence")),
        "multiplicity": text.multiplicity_labels(p),
        "sensitivity": sensitivity_section.sensitivity_context(result, by_name.get("sensitivity_forest")),
        "confounding": confounding_section.confounding_context(result, by_name.get("confounding_overlap"),
                                                               by_name.get("confounding_love_plot")),
        "provenance": extract.provenance(result),
        "colours": arm_colours(extract.arm_names(result)),
    }


def render_html(result: StudyResult, figures: list[RenderedFigure]) -> str:
    """The report as one HTML document (text)."""
    return _environment().get_template(TEMPLATE).render(**report_context(result, figures))
