"""The built documentation works offline: no page loads a script, style, font or image
from the network, and the equations render in a browser with no network.

The checks of the built site are slow (they build it when `.ci/run` has not); the
detector itself is tested on small pages in the default suite.
"""

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"

REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)
LOADING = {"script": ("src",), "img": ("src", "srcset"), "iframe": ("src",),
           "source": ("src", "srcset"), "audio": ("src",), "video": ("src", "poster"),
           "embed": ("src",), "object": ("data",)}
"""Tags whose attributes make the browser load something (links <a href> do not)."""


class _Loads(HTMLParser):
    def __init__(self):
        super().__init__()
        self.loads = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in LOADING.get(tag, ()):
            if attrs.get(name):
                self.loads.append(attrs[name])
        if tag == "link" and attrs.get("href") and (attrs.get("rel") or "").lower() not in (
                "canonical", "alternate", "search", "author", "license", "next", "prev",
                "index"):
            self.loads.append(attrs["href"])
        if attrs.get("style"):
            self.loads += [a or b for a, b in CSS_URL.findall(attrs["style"])]


def remote_loads(html, css=False):
    """The addresses on the network that a page (or, with ``css``, a style sheet) loads."""
    if css:
        found = [a or b for a, b in CSS_URL.findall(html)]
    else:
        parser = _Loads()
        parser.feed(html)
        found = parser.loads + [a or b for a, b in CSS_URL.findall(
            " ".join(re.findall(r"<style[^>]*>(.*?)</style>", html, re.S | re.I)))]
    return sorted({address for address in found if REMOTE.match(address)})


def test_the_detector_finds_what_a_page_loads_from_the_network():
    page = """<html><head>
      <link rel="stylesheet" href="https://cdn.example.org/b.css">
      <link rel="canonical" href="https://example.org/page.html">
      <link rel="preload" href="//fonts.example.org/f.woff2" as="font">
      <script src="_static/local.js"></script>
      <script src="https://code.example.org/jquery.js"></script>
      <style>@import "https://fonts.example.org/css"; .a {background: url(img/x.png)}</style>
      </head><body><a href="https://www.example.org/">a link, not a load</a>
      <img src="http://example.org/i.png"><div style="background: url('//x.org/y.png')">
      </div></body></html>"""
    assert remote_loads(page) == sorted([
        "https://cdn.example.org/b.css", "//fonts.example.org/f.woff2",
        "https://code.example.org/jquery.js", "https://fonts.example.org/css",
        "http://example.org/i.png", "//x.org/y.png"])
    assert remote_loads('.f {src: url("https://f.org/a.woff")} .g {src: url(a.woff)}',
                        css=True) == ["https://f.org/a.woff"]
    assert remote_loads("<html><a href='https://x.org'>x</a></html>") == []


@pytest.fixture(scope="module")
def site():
    """The built site (built here if `.ci/run`'s documentation command has not run)."""
    if not (SITE / "index.html").is_file():
        subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                        "html", "docs", str(SITE)], cwd=ROOT, check=True)
    return SITE


@pytest.mark.slow
def test_no_built_page_loads_anything_from_the_network(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    offenders = {}
    for path in pages:
        loads = remote_loads(path.read_text(errors="replace"))
        if loads:
            offenders[str(path.relative_to(site))] = loads
    for path in sorted(site.rglob("*.css")):
        loads = remote_loads(path.read_text(errors="replace"), css=True)
        if loads:
            offenders[str(path.relative_to(site))] = loads
    assert not offenders, offenders
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def _rendered(page, profile):
    """The DOM of ``page`` after its scripts ran in headless Chromium with every network
    request sent to a closed port (no network)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, ("the offline check needs a browser: install Debian's chromium "
                      "(.ci/run does)")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=15000", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", ["guide/equations.html", "index.html"])
def test_equations_render_with_no_network(site, name, tmp_path):
    source = (site / name).read_text()
    expected = source.count('class="math')
    assert expected > 0, f"{name} holds no equation"
    dom = _rendered(site / name, tmp_path / "profile")
    assert dom.count("<mjx-container") >= expected, (
        f"{name}: {dom.count('<mjx-container')} of {expected} equations rendered")
    text = re.sub(r"<(mjx-container|script|style)\b.*?</\1>", "", dom, flags=re.S)
    text = re.sub(r"<[^>]+>", "", text)
    assert "\\[" not in text and "\\(" not in text, "raw LaTeX left on the page"
