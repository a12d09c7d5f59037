"""The flame-graph page in a real browser: `kprof diff --html` and `kprof show --html` write the page
for real captures of the Go sample app, headless Chromium runs its script, and the SVG it drew must
hold the frames of the functions that were hot; the page fetches nothing.

With KPROF_UPDATE_SCREENSHOT=1 the test also refreshes docs/flame-graph.png."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests import profiles_support
from tests.support import chromium
from tests.support.goapp import GoApp

DOCS_PICTURE = Path(__file__).resolve().parent.parent / "docs" / "flame-graph.png"


@pytest.fixture(scope="module")
def page(sample_app_binary, tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    base, incident = profiles_support.baseline_and_incident(GoApp(sample_app_binary), root)
    out = root / "index.html"
    done = profiles_support.kprof("diff", str(base), str(incident), "--html", str(out), "--jaeger-url", "http://127.0.0.1:16686")
    assert done.returncode == 0, done.stderr
    return out


def frames(dom: str, kind: str) -> set[str]:
    svg = re.search(rf'<svg class="flame" data-kind="{kind}"[^>]*>(.*?)</svg>', dom, re.S)
    assert svg, f"no flame graph for {kind}"
    return set(re.findall(r'<g class="frame[^"]*" data-name="([^"]+)"', svg.group(1)))


def test_the_script_draws_the_hot_frames(page):
    source = page.read_text()
    assert '<g class="frame' not in source  # the frames come from the script, not the file
    dom = chromium.dump_dom(page)
    cpu = frames(dom, "cpu")
    assert {"main.burnCPU", "crypto/sha256.Sum256", "main.(*app).runLoad.func3"} <= cpu
    heap = frames(dom, "heap")
    assert {"main.allocateHeld", "main.holdMemory"} <= heap
    assert "runtime.gopark" in frames(dom, "goroutine")
    # The diff's top growers are outlined in place.
    assert re.search(r'<g class="frame grown" data-name="main.allocateHeld"', dom)
    assert "What grew since the baseline" in dom and "main.allocateHeld" in dom.split('id="panel-diff"')[1]


def test_the_page_is_self_contained(page):
    source = page.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", source)
    assert not re.search(r"url\(|@import|fetch\(|XMLHttpRequest", source)
    # The only addresses are the SVG namespace and links the user follows by clicking.
    addresses = set(re.findall(r"https?://[^\s\"'<>)]+", source))
    assert addresses <= {"http://www.w3.org/2000/svg"}, addresses


def test_screenshot(page, tmp_path):
    png = chromium.screenshot(page, tmp_path / "page.png", width=1280, height=820)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    if os.environ.get("KPROF_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(png, DOCS_PICTURE)


def test_show_html_carries_the_capture_facts(page, tmp_path):
    incident = next(p.parent for p in page.parent.glob("incident/**/cpu.pprof"))
    out = tmp_path / "show.html"
    done = profiles_support.kprof("show", str(incident), "--html", str(out), "-n", "3")
    assert done.returncode == 0, done.stderr
    dom = chromium.dump_dom(out)
    assert "<th>reason</th><td>on-demand</td>" in dom and f"<td>{incident}</td>" in dom
    assert "main.burnCPU" in frames(dom, "cpu")
