"""Open ``report.html`` in real headless Chromium (Debian's ``chromium``, driven by Playwright).

The main test opens the report of the real demo (``ildstudy demo``: synthetic registry, full
study); a second one opens a report rendered from the fake fixture with hostile strings and checks
that nothing runs (no dialog, no request).

No browser is downloaded: Playwright is pointed at the system executable (``/usr/bin/chromium`` or
``$ILDSTUDY_CHROMIUM``). Skipped with a reason when Chromium or Playwright is missing, unless
``ILDSTUDY_REQUIRE_SERVICES=1`` (CI), where that is a failure. Screenshots (first screen and full
page) go to the test's tmp dir and, when ``ILDSTUDY_SCREENSHOT_DIR`` is set, there as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from report_fixtures import fake_study_result

from ildstudy.report import write_report

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 720}  # a small laptop screen
MIN_FIGURES, MIN_TABLES = 5, 3


def _chromium() -> str:
    """Path of the system Chromium; skip (or fail in CI) when it or Playwright is missing."""
    required = os.environ.get("ILDSTUDY_REQUIRE_SERVICES") == "1"
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[test]')"
    exe = os.environ.get("ILDSTUDY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if missing is None and not (Path(exe).is_file() and os.access(exe, os.X_OK)):
        missing = f"no Chromium at {exe} (apt-get install chromium, or set ILDSTUDY_CHROMIUM)"
    if missing:
        if required:
            pytest.fail(f"ILDSTUDY_REQUIRE_SERVICES=1 but {missing}")
        pytest.skip(missing)
    return exe


@pytest.fixture(scope="module")
def report(tmp_path_factory, browser) -> Path:
    """The demo's report.html (``ildstudy demo``, as a user runs it; about 15 s)."""
    out = tmp_path_factory.mktemp("browser-demo") / "demo"
    run = subprocess.run([sys.executable, "-c", "from ildstudy.cli import main; main()", "demo", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out / "report.html"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser-hostile")
    write_report(fake_study_result(title="<script>alert(1)</script>", arm_label="Aza & <i>co</i>",
                                   category="<img src=x onerror=alert(2)>"), out)
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _save_screenshots(page, tmp_path: Path) -> list[Path]:
    targets = [tmp_path]
    if os.environ.get("ILDSTUDY_SCREENSHOT_DIR"):
        targets.append(Path(os.environ["ILDSTUDY_SCREENSHOT_DIR"]))
    written = []
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "report-first-screen.png"))
        page.screenshot(path=str(folder / "report-full-page.png"), full_page=True)
        written += [folder / "report-first-screen.png", folder / "report-full-page.png"]
    return written


def test_report_renders_offline_in_chromium(browser, report, tmp_path):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    console, page_errors, requests, failed = [], [], [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    url = report.resolve().as_uri()
    page.goto(url, wait_until="load")

    errors = [text for kind, text in console if kind in ("error", "warning")]
    assert not errors and not page_errors, (errors, page_errors)
    assert requests == [url], requests  # the file itself and nothing else
    assert not failed

    figures = page.locator("figure svg.fig-svg")
    assert figures.count() >= MIN_FIGURES
    for i in range(figures.count()):
        box = figures.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150, (i, box)
    assert page.locator("table").count() >= MIN_TABLES
    assert page.locator(".flow .box.excl").count() >= 1
    for section in ("summary", "methods", "flow", "table1", "differences", "adverse-events", "discontinuation",
                    "appendix", "provenance"):
        assert page.locator(f"#{section}").count() == 1, section

    # The main result is readable on the first screen: the key-results box is fully in view.
    key = page.locator("aside.key").bounding_box()
    assert key and key["y"] + key["height"] <= VIEWPORT["height"], key
    assert page.locator("aside.key").inner_text().count("months") >= 1
    # Nothing overflows sideways at laptop width.
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]

    shots = _save_screenshots(page, tmp_path)
    assert all(p.stat().st_size > 10_000 for p in shots)
    context.close()


def test_report_prints_without_network(browser, report, tmp_path):
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.resolve().as_uri(), wait_until="load")
    page.emulate_media(media="print")
    assert page.locator("nav.toc").is_hidden()
    pdf = tmp_path / "report.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.stat().st_size > 50_000
    assert requests == [report.resolve().as_uri()]
    page.close()


def test_narrow_screen_keeps_key_results_near_the_top(browser, report):
    page = browser.new_page(viewport={"width": 800, "height": 1000})
    page.goto(report.resolve().as_uri(), wait_until="load")
    key = page.locator("aside.key").bounding_box()
    assert key["y"] < 2 * 1000, key  # within two screens on a narrow window
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    page.close()


def test_hostile_strings_do_not_run_in_chromium(browser, hostile_report):
    page = browser.new_page()
    dialogs, requests, errors = [], [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(hostile_report.resolve().as_uri(), wait_until="load")
    assert not dialogs and not errors
    assert requests == [hostile_report.resolve().as_uri()]
    assert page.locator("h1").inner_text() == "<script>alert(1)</script>"
    assert page.locator("script, img, iframe").count() == 0
    assert "<img src=x onerror=alert(2)>" in page.locator("#adverse-events table").inner_text()
    page.close()
