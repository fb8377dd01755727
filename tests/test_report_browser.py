"""The report in a real browser: headless Chromium, network disabled.

Loads without console errors, every chart rendered by plotly, a screenshot with real
content. Skipped when chromium is absent unless REQUIRE_BROWSER=1 (CI sets it).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.report_fixtures import need_chromium, processed_dir, run_chromium, sample_outputs

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from pipeline.report import build_report

    base = sample_outputs(tmp_path_factory.getbasetemp())
    out = tmp_path_factory.mktemp("browser") / "report.html"
    build_report(processed_dir(base), out)
    return out


def test_cjk_fonts_installed():
    need_chromium()
    if not shutil.which("fc-list"):
        pytest.skip("fontconfig not available")
    fonts = subprocess.run(["fc-list", ":lang=ja", "family"], capture_output=True, text=True).stdout
    assert fonts.strip(), "no Japanese font installed (fonts-noto-cjk): Japanese would render as boxes"


def test_report_renders_in_chromium_without_console_errors(report):
    need_chromium()
    dom, console = run_chromium(report, report.parent, dump_dom=True)
    assert console == [], "console messages:\n" + "\n".join(console)
    drawn = re.search(r'data-charts-drawn="(\d+)"', dom)
    assert drawn, "report.js did not finish"
    n_figs = len(re.findall(r'<div class="chart[^"]*" id="fig-', dom))
    assert int(drawn.group(1)) >= n_figs >= 8
    # each chart div became a plotly graph with an SVG
    assert dom.count('class="plot-container plotly"') >= n_figs
    assert len(re.findall(r'<svg class="main-svg"', dom)) >= 2 * n_figs
    # Japanese text present in rendered chart labels (SVG text), not only in the HTML
    assert re.search(r'<text[^>]*>[^<]*サイバーセキュリティ', dom)


def test_screenshot_is_not_blank(report):
    need_chromium()
    from PIL import Image

    png = report.parent / "report.png"
    run_chromium(report, report.parent, screenshot=png, size="1280,2400")
    assert png.exists() and png.stat().st_size > 50_000
    im = Image.open(png).convert("RGB")
    assert im.size == (1280, 2400)
    small = im.resize((320, 600))
    pixels = list(small.getdata())
    non_white = sum(1 for p in pixels if sum(p) < 720) / len(pixels)
    colours = len(set(pixels))
    assert non_white > 0.05, f"only {non_white:.1%} non-white pixels"
    assert colours > 200, f"only {colours} distinct colours"
    # the coverage bar chart's blue bars are on the first screen
    assert sum(1 for p in pixels if p[2] > 140 and p[0] < 110 and p[1] < 150) > 200
