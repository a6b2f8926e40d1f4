"""The built site, opened in a real browser: math typeset by the site's own MathJax, each
chapter carrying the outputs of the build, no nbdev directive text, working search, and no
request leaving the machine.

Needs the site (`make book`, which runs this file at its end) and Debian's `chromium`
(`.ci/run` installs it); each test skips with the reason when one of them is missing.
"""
import functools
import json
import re
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# flags that keep Chromium's own background services quiet on a machine with no network
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--virtual-time-budget=20000"]

pytestmark = [
    pytest.mark.skipif(not (SITE / "index.html").exists(), reason="no built site: run `make book` first"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]


def chapter_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [f"{f}.html" for f in files]


@pytest.fixture(scope="module")
def server():
    """Serve the site on localhost, as a reader's static host would."""
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def render(url: str, workdir: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the URLs the page itself requested."""
    workdir.mkdir(parents=True, exist_ok=True)
    netlog = workdir / "net.json"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={workdir / 'profile'}", f"--log-net-log={netlog}",
         "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, page_requests(netlog, origin=re.match(r"https?://[^/]+", url)[0])


def page_requests(netlog: Path, origin: str) -> list[str]:
    """URLs requested on behalf of pages of `origin` (Chromium's own services are ignored)."""
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    site = origin.rsplit(":", 1)[0]  # isolation keys name the site without its port
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] == start_job and "url" in params:
            on_behalf_of_page = (params.get("initiator", "").startswith(origin)
                                 or site in params.get("network_isolation_key", "").split()
                                 or params["url"].startswith(origin))
            if on_behalf_of_page:
                urls.append(params["url"])
    return urls


@pytest.fixture(scope="module")
def rendered(server, tmp_path_factory):
    """Every chapter page rendered once (two browsers at a time)."""
    pages = chapter_pages()
    base = tmp_path_factory.mktemp("chromium")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda i_page: render(f"{server}/{i_page[1]}", base / str(i_page[0])),
                           enumerate(pages))
        return dict(zip(pages, results))


def test_every_chapter_page_was_built():
    missing = [p for p in chapter_pages() if not (SITE / p).exists()]
    assert not missing


def test_math_is_typeset_by_the_sites_own_mathjax(rendered):
    pages_with_math = 0
    for page, (dom, _) in rendered.items():
        source = (SITE / page).read_text()
        if 'class="math' not in source:
            continue
        pages_with_math += 1
        assert "<mjx-container" in dom, f"{page}: math was not typeset"
        assert "<mjx-merror" not in dom, f"{page}: MathJax reported an error"
    assert pages_with_math >= 3


def test_no_request_leaves_the_machine(rendered, server):
    for page, (_, requests) in rendered.items():
        assert requests, f"{page}: no requests recorded (net log empty?)"
        foreign = [u for u in requests if not (u.startswith(server) or u.startswith("data:"))]
        assert not foreign, f"{page} requested {foreign}"
        assert any("/_static/mathjax/" in u for u in requests) or 'class="math' not in (SITE / page).read_text()


def test_no_nbdev_directive_is_visible(rendered):
    directive = re.compile(r"#\|\s*(export|exporti|hide|default_exp|eval|echo|output)")
    for page, (dom, _) in rendered.items():
        assert not directive.search(dom), f"{page} shows an nbdev directive"


def test_hidden_cells_are_absent(rendered):
    dom, _ = rendered["nbs/03_numerical_gradients.html"]
    assert "set_printoptions" not in dom  # the chapter's `#| hide` set-up cell
    assert "nbdev_export()" not in dom    # the hidden, never-executed export cell


def test_chapters_carry_the_outputs_of_this_build(rendered):
    dom, _ = rendered["nbs/03_numerical_gradients.html"]
    # printed by a cell: the central difference of 0.01x^2 + 0.1x at x = 5 with h = 1e-4
    assert "0.1999999999990898" in dom
    assert re.search(r'<img[^>]+src="[^"]*_images/[^"]+\.png"', dom), "the error plot is missing"
    for page, (dom, _) in rendered.items():
        source = (SITE / page).read_text()
        if 'class="cell_input' in source:
            assert "cell_output" in dom, f"{page} has code cells but no outputs"


def test_a_request_to_the_network_would_be_caught(server, tmp_path):
    """The net-log reading above must see a page's request for a remote script or image."""
    leak = SITE / "_leak_probe.html"
    leak.write_text('<html><body><script src="https://cdn.example.invalid/x.js"></script>'
                    '<img src="http://example.invalid/a.png"></body></html>')
    try:
        _, requests = render(f"{server}/_leak_probe.html", tmp_path)
    finally:
        leak.unlink()
    assert "https://cdn.example.invalid/x.js" in requests and "http://example.invalid/a.png" in requests


def test_search_finds_a_chapter(server, tmp_path):
    dom, _ = render(f"{server}/search.html?q=central+difference", tmp_path)
    results = re.search(r'<ul class="search">(.*?)</ul>', dom, re.S)
    assert results and 'href="nbs/03_numerical_gradients.html' in results[1], "search found no chapter"
