"""The documentation: every Python example runs, the site builds strictly, the generated pages
cover what they document, every link and image of the built site resolves, and the pages render
in a real browser (headless Chromium)."""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SKIP_REASON = "# not run in the tests:"

mktestdocs = pytest.importorskip("mktestdocs", reason="the docs requirements (requirements/docs.txt)")


def blocks(page: Path, lang: str) -> list[str]:
    return [body for tag, body in FENCE.findall(page.read_text()) if tag == lang]


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_example_of_a_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a relative path writes here
    mktestdocs.check_md_file(page, memory=True)


def test_an_example_that_is_not_run_says_why():
    for page in PAGES:
        for body in blocks(page, "py"):
            assert body.startswith(SKIP_REASON), f"{page.relative_to(ROOT)}: a ```py block without '{SKIP_REASON} …'"


def test_the_readme_fits_on_a_screen_and_gives_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 8000, len(text)
    assert "bash scripts/setup.sh && .venv/bin/evo-ensembles sparse" in text and "bash scripts/test.sh" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


# --- the built site -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once with --strict (tutorials not run: the slow test runs them)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "EVO_DOCS_TUTORIALS": "skip", "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    return out


def test_the_cli_reference_lists_every_command_and_flag_with_its_default(site):
    from evo_ensembles.cli import COMMANDS, build_parser

    sys.path.insert(0, str(DOCS))
    try:
        import pages
    finally:
        sys.path.remove(str(DOCS))
    text = pages.cli_reference()
    parser = build_parser()
    top = pages._subparsers(parser)
    for cmd in COMMANDS:
        assert f"## `evo-ensembles {cmd.name}`" in text
        words = cmd.name.split()
        p = top[words[0]] if len(words) == 1 else pages._subparsers(top[words[0]])[words[1]]
        for action in p._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert f"`{action.option_strings[0]}`" in text, (cmd.name, action.option_strings)
    row = next(line for line in text.splitlines() if line.startswith("| `--target-kl`"))
    assert "(default: 0.02)" in row  # a default, as the config declares it
    assert (site / "reference" / "cli" / "index.html").exists()


def test_the_results_schema_page_has_every_record_of_results_py(site):
    import typing

    from evo_ensembles import results

    html = (site / "reference" / "results" / "index.html").read_text()
    for name, obj in vars(results).items():
        if isinstance(obj, type) and typing.is_typeddict(obj):
            assert f"<code>{name}</code>" in html, name
            for key in typing.get_type_hints(obj):
                assert f"<code>{key}</code>" in html, (name, key)


def test_every_committed_table_has_a_benchmark_page_with_its_provenance(site):
    for md in (ROOT / "benchmarks" / "results").glob("*.md"):
        html = (site / "benchmarks" / md.stem / "index.html").read_text()
        assert "How this table was made" in html and "hardware" in html, md.stem


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.refs.append(("link", a["href"]))
        if tag == "img" and a.get("src"):
            self.refs.append(("image", a["src"]))


def test_no_page_of_the_site_has_a_broken_link_or_image(site):
    broken = []
    for page in site.rglob("*.html"):
        parser = _Refs()
        parser.feed(page.read_text())
        for kind, ref in parser.refs:
            url = urlparse(ref)
            if url.scheme or ref.startswith(("#", "mailto:")):
                continue
            path = unquote(url.path)
            target = (site / path.lstrip("/") if path.startswith("/") else page.parent / path).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {kind} {ref}")
    assert not broken, "\n".join(broken[:20])


# --- in a real browser -------------------------------------------------------------------------------

BROWSER_PAGES = {"home": "", "a method page": "methods/sparse/", "the API reference": "reference/api/methods/",
                 "a benchmark page": "benchmarks/table5_2/"}


@pytest.fixture(scope="module")
def served(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request log in the test output
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _chromium():
    webdriver = pytest.importorskip("selenium.webdriver")
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them as root)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver))


def test_the_pages_render_with_their_navigation_in_headless_chromium(served, tmp_path):
    browser = _chromium()
    shots = Path(os.environ.get("EVO_DOCS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        for what, path in BROWSER_PAGES.items():
            browser.get(urljoin(served, path))
            state = browser.execute_script("""
                const nav = document.querySelectorAll('nav.md-nav--primary a.md-nav__link');
                const imgs = [...document.images];
                return {title: document.title, nav: nav.length,
                        h1: (document.querySelector('article h1') || {}).textContent || '',
                        broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
                        images: imgs.length, text: document.body.innerText.length};""")
            browser.save_screenshot(str(shots / f"{what.replace(' ', '_')}.png"))
            assert state["nav"] >= 10, (what, state)  # the site's navigation rendered
            assert state["h1"].strip() and state["text"] > 500, (what, state)
            assert not state["broken"], (what, state["broken"])
            if what in ("home", "a benchmark page"):
                assert state["images"] >= 1, (what, state)
    finally:
        browser.quit()


@pytest.mark.slow
def test_the_site_builds_with_every_tutorial_run(tmp_path):
    env = {**os.environ, "EVO_DOCS_TUTORIALS": "run", "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT,
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    for name in ("own-model", "ppo", "analyze"):
        assert "What it printed when this site was built" in (tmp_path / "site" / "tutorials" / name / "index.html"
                                                               ).read_text()


def test_the_api_reference_shows_no_raw_sphinx_roles(site):
    html = (site / "reference" / "api" / "methods" / "index.html").read_text()
    assert "noisy_ensemble" in html and ":func:<code" not in html and ":class:<code" not in html
