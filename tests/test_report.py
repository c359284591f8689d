"""The HTML report and its figures, rendered from the FAKE study result of ``report_fixtures``.

The fixture's numbers only resemble the study; these tests check rendering (escaping, offline
self-containment, sections, figures, tables, byte stability), not results.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pandas as pd
import pytest
from report_fixtures import fake_study_result

from ildstudy.report import write_report
from ildstudy.report.formatting import fmt_ci, fmt_num, fmt_p, fmt_p_prose, p_phrase
from ildstudy.report.style import ARM_COLOURS, arm_colours

HOSTILE_TITLE = "<script>alert(1)</script> AZA vs MMF"
HOSTILE_ARM = "Azathioprine & <b>friends</b>"
HOSTILE_CATEGORY = '<img src=x onerror="alert(2)">'
SECTIONS = ["summary", "key-title", "methods", "flow", "table1", "outcome-fvc_pct_pred",
            "outcome-dlco_pct_pred", "outcome-prednisone_mg", "differences", "adverse-events",
            "discontinuation", "appendix", "provenance"]


@pytest.fixture(scope="module")
def hostile_result():
    return fake_study_result(title=HOSTILE_TITLE, arm_label=HOSTILE_ARM, category=HOSTILE_CATEGORY)


@pytest.fixture(scope="module")
def written(tmp_path_factory, hostile_result):
    out = tmp_path_factory.mktemp("report")
    paths = write_report(hostile_result, out)
    return out, paths, (out / "report.html").read_text(encoding="utf-8")


def test_hostile_strings_are_escaped_in_html_and_figures(written):
    out, _, html = written
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Azathioprine &amp; &lt;b&gt;friends&lt;/b&gt;" in html
    assert "<b>friends</b>" not in html
    assert "<img" not in html.lower()  # quotes may stay inside text: without a tag they are inert
    assert "&lt;img src=x onerror=" in html  # the category, shown as text (table and bar-chart label)
    svg = (out / "figures" / "adverse_events.svg").read_text(encoding="utf-8")
    assert "<img" not in svg and "&lt;img" in svg


def test_report_loads_nothing_from_outside(written):
    _, _, html = written
    for tag in ("<link", "<iframe", "<object", "<embed", "<img", "<script", "<base", "@import", "<meta http-equiv=\"refresh\""):
        assert tag not in html.lower(), tag
    attr_re = re.compile(r"""\s((?:xlink:)?href|src|srcset|action|poster|data|formaction)\s*=\s*["']?([^"'\s>]*)""")
    for tag in re.findall(r"<[^>]+>", html):  # only real tags: escaped text has no raw '<'
        for attr, value in attr_re.findall(tag):
            assert attr.endswith("href") and value.startswith("#"), (attr, value, tag[:80])
    assert not re.search(r"url\(\s*['\"]?(?!#)", html), "CSS url() pointing outside the page"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert "default-src 'none'" in html  # the CSP forbids any load the checks above might miss


def test_sections_present_in_order(written):
    _, _, html = written
    positions = [html.find(f'id="{s}"') for s in SECTIONS]
    assert all(p > 0 for p in positions), dict(zip(SECTIONS, positions))
    assert positions == sorted(positions)


def test_figures_and_tables_counted_and_ids_unique(written):
    _, _, html = written
    assert html.count("<svg") >= 5
    assert html.count("<table") >= 3
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, duplicates[:5]
    # every in-page reference points at an id that exists
    refs = set(re.findall(r'url\(#([^)]+)\)', html)) | set(re.findall(r'href="#([^"]+)"', html))
    assert refs <= set(ids), sorted(refs - set(ids))[:5]


def test_write_report_writes_report_and_figures_only(written):
    out, paths, _ = written
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out).as_posix() for p in paths) == on_disk
    assert paths[0] == out / "report.html"
    stems = {p.stem for p in (out / "figures").iterdir()}
    assert len(stems) >= 5
    for stem in stems:
        assert (out / "figures" / f"{stem}.svg").exists() and (out / "figures" / f"{stem}.png").exists()
    assert set(on_disk) == {"report.html"} | {f"figures/{s}.{e}" for s in stems for e in ("svg", "png")}


def test_png_figures_are_300_dpi(written):
    from PIL import Image

    out, _, _ = written
    with Image.open(out / "figures" / "forest_differences.png") as im:
        assert [round(d) for d in im.info["dpi"]] == [300, 300]


def test_report_and_figures_are_byte_identical_on_rerun(written, tmp_path):
    out, first, _ = written
    again = write_report(
        fake_study_result(title=HOSTILE_TITLE, arm_label=HOSTILE_ARM, category=HOSTILE_CATEGORY), tmp_path)
    assert [p.relative_to(out) for p in first] == [p.relative_to(tmp_path) for p in again]
    for pa, pb in zip(first, again):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_svg_files_have_no_date_and_keep_text(written):
    out, _, _ = written
    svg = (out / "figures" / "trajectory_fvc_pct_pred.svg").read_text(encoding="utf-8")
    assert "<dc:date>" not in svg
    assert "Months since treatment start" in svg  # text kept as text (svg.fonttype = none)


def test_arm_colours_are_the_same_everywhere(written):
    out, _, html = written
    first, second = ARM_COLOURS[0].lower(), ARM_COLOURS[1].lower()
    assert arm_colours(["AZA", "MMF"]) == {"AZA": ARM_COLOURS[0], "MMF": ARM_COLOURS[1]}
    for name in ("trajectory_fvc_pct_pred", "adverse_events", "discontinuation_km"):
        svg = (out / "figures" / f"{name}.svg").read_text(encoding="utf-8").lower()
        assert first in svg and second in svg, name
    assert f"--c: {ARM_COLOURS[0]}" in html and f"--c: {ARM_COLOURS[1]}" in html


def test_summary_and_key_results_come_from_the_numbers(written):
    _, _, html = written
    summary = re.search(r'<p class="summary">(.*?)</p>', html, re.S).group(1)
    assert "66 started" in summary and "44 started" in summary
    assert "22 of 66 AZA patients (33.3%)" in summary and "6 of 44 MMF patients (13.6%)" in summary
    assert "p = 0.04" in summary  # Yates p 0.0357 rounded for prose ...
    key = html[html.find('id="key-title"'):html.find('id="methods"')]
    assert "0.036" in key  # ... and exact in the key-results table
    assert "At 36 months" in summary and "+1.9\u00a0%\u2011points for FVC % predicted" in summary
    assert "prednisone-equivalent dose" in summary and "statistically significant" in summary


def test_methods_are_generated_from_the_protocol(written, hostile_result):
    _, _, html = written
    methods = html[html.find('id="methods"'):html.find('id="flow"')]
    p = hostile_result.protocol
    for drug in p.exclusions.other_agents.drugs + p.arms[1].drugs:
        assert drug in methods, drug
    assert "linear mixed-effects model of FVC % predicted" in methods
    assert "adjusted for sex, age at index, antisynthetase antibody and smoking" in methods
    assert "random intercept and slope per patient" in methods and "REML" in methods
    assert "Satterthwaite" in methods and "from 90 days before to 30 days after the index date" in methods
    assert "Yates" in methods and "log-rank" in methods and "Cox" in methods


def test_flow_diagram_has_a_box_per_exclusion(written, hostile_result):
    _, _, html = written
    flow = html[html.find('id="flow"'):html.find('id="table1"')]
    att = hostile_result.attrition
    steps = att.iloc[1:-1]  # first row: the registry; last row: the closing total, not a step
    assert flow.count("Excluded:") == len(steps)
    for reason in steps["reason"]:
        assert reason in flow
    assert "registry 148 = excluded" not in flow and "excluded in total: 38" in flow
    assert "n = 148" in flow and "n = 66" in flow and "n = 44" in flow


def test_optional_parts_missing_still_render(tmp_path):
    full = fake_study_result()
    bare = dataclasses.replace(full, discontinuation=None, adverse_events=None, table1=None,
                               attrition=pd.DataFrame(columns=full.attrition.columns), provenance={})
    paths = write_report(bare, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == len(full.outcomes) + 1  # trajectories and the forest plot
    assert "No attrition table was produced." in html
    assert len(paths) == 1 + 2 * (len(full.outcomes) + 1)


def test_report_package_does_not_import_matplotlib_on_import():
    code = ("import sys, ildstudy.report, ildstudy.report.html, ildstudy.report.figures; "
            "sys.exit(1 if 'matplotlib' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize(("p", "table", "prose"), [
    (0.0357, "0.036", "0.04"), (0.0004, "<0.001", "<0.001"), (0.0049, "0.005", "0.005"),
    (0.0496, "0.050", "0.050"), (0.048, "0.048", "0.048"), (0.51, "0.510", "0.51"), (0.9995, ">0.999", ">0.99"),
    (float("nan"), "\u2014", "\u2014"),
])
def test_p_values_formatted_like_a_journal(p, table, prose):
    assert fmt_p(p) == table
    assert fmt_p_prose(p) == prose


def test_number_formatting():
    assert fmt_num(-8.04, 1) == "\u22128.0" and fmt_num(1.94, 1, sign=True) == "+1.9"
    assert fmt_num(-0.04, 1, sign=True) == "0.0"
    assert fmt_ci(-3.14, 6.94) == "\u22123.1 to 6.9"
    assert p_phrase(0.0001) == "p < 0.001" and p_phrase(0.2) == "p = 0.20"


def test_risk_difference_is_shown_in_percentage_points():
    from ildstudy.report.extract import risk_difference_pp

    ae = fake_study_result().adverse_events  # the fixture's 22/66 vs 6/44
    rd = risk_difference_pp(ae)
    assert rd["estimate"] == pytest.approx(100 * (22 / 66 - 6 / 44))
    assert rd["ci_low"] == pytest.approx(100 * ae.risk_difference.ci_low)
    assert rd["ci_low"] < rd["estimate"] < rd["ci_high"]


def test_numbers_at_risk_from_the_km_table():
    from ildstudy.report.extract import km_curve, n_at_risk

    result = fake_study_result()
    curve = km_curve(result.discontinuation.any_reason, "AZA")
    assert n_at_risk(curve, 0.0) == 66
    t = float(curve["time"].iloc[5])
    assert n_at_risk(curve, t) == int(curve["n_risk"].iloc[5])
    assert n_at_risk(curve, 1e6) == 0


def test_inline_svg_prefixes_ids_and_references():
    from ildstudy.report.svg import inline_svg

    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg width="1pt" height="1pt" viewBox="0 0 1 1" '
           'xmlns="http://www.w3.org/2000/svg"><metadata>x</metadata><defs><style>*{a:b}</style>'
           '<clipPath id="p1"/></defs><g clip-path="url(#p1)"><use xlink:href="#p1"/><text>id="p1"</text></g></svg>')
    out = inline_svg(svg, "fig1", 'a "quoted" <label>')
    assert out.startswith('<svg id="fig1" viewBox="0 0 1 1" class="fig-svg" role="img" '
                          'aria-label="a &#34;quoted&#34; &lt;label&gt;">')
    assert 'id="fig1-p1"' in out and "url(#fig1-p1)" in out and 'xlink:href="#fig1-p1"' in out
    assert "<text>id=\"p1\"</text>" in out  # text content is left alone
    assert "#fig1 *{" in out and "<metadata>" not in out and "width=" not in out
    with pytest.raises(ValueError):
        inline_svg(svg, "bad id", "x")


def test_adverse_events_by_category_come_from_the_typed_result():
    from ildstudy.report.extract import ae_by_category

    ae = fake_study_result().adverse_events
    rows = ae_by_category(ae, ["AZA", "MMF"])
    # the fixture's made-up counts (report_fixtures.AE_CATEGORIES), most frequent first
    assert [r["category"] for r in rows[:2]] == ["Cytopenia", "GI intolerance"]
    assert rows[0]["arms"]["AZA"] == {"patients": 8, "n": 66, "percent": pytest.approx(100 * 8 / 66)}
    assert len(rows) == ae.by_category["category"].nunique()


def test_table1_rows_use_labels_and_indent_levels(written):
    from ildstudy.report.tables import table1

    rows = table1(fake_study_result())
    labels = [(r["label"], r["level"]) for r in rows]
    assert ("Female", False) in labels and ("F", True) not in labels  # a binary row shows the counted value only
    i = labels.index(("Diagnosis", False))
    assert labels[i + 1:i + 4] == [("ASyS", True), ("DM", True), ("PM", True)]
    assert rows[i]["p"] == "0.740" and rows[i]["cells"] == ["", ""] and rows[i + 1]["p"] == ""
    _, _, html = written
    assert "Baseline FVC, % predicted" in html and "Welch t-test" in html


def test_provenance_notice_is_shown_next_to_the_title(tmp_path):
    result = fake_study_result()
    noted = dataclasses.replace(result, provenance={**result.provenance, "notice": "Synthetic data <demo>"})
    from ildstudy.report.html import render_html

    html = render_html(noted, [])
    header = html[html.find("<header"):html.find("</header>")]
    assert '<span class="notice" role="note">Synthetic data &lt;demo&gt;</span>' in header
    assert 'class="notice"' not in render_html(result, [])
