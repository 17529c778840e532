"""The page in headless Chromium (Debian's chromium, driven by Playwright) against a real server: search, compare
two pipelines, open a document, add one with the token, and save screenshots (wide and narrow).

The screenshots go to $RANKSTACK_SCREENSHOT_DIR when set (e.g. bench/out), else to the test's temporary folder."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.serve.conftest import TOKEN, ServerProcess

CHROMIUM = Path(os.environ.get("RANKSTACK_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser_page(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver; .ci/run does)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), headless=True,
                                                       args=ARGS, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: problems.append(f"outside request {r.url}")
                if not r.url.startswith(("http://127.0.0.1", "data:")) else None)
        yield page, problems
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def test_search_compare_open_add_and_screenshot(make_config, token_file, browser_page, tmp_path):
    page, problems = browser_page
    out = Path(os.environ.get("RANKSTACK_SCREENSHOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(make_config(), token_file).start()
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#judged option:nth-child(3)", state="attached")
        assert page.locator("#pipeline-a option").all_inner_texts()[:2] == ["BM25", "BM25 >> dense"]

        # one pipeline, keyboard only: "/" focuses the box, Enter searches
        page.keyboard.press("/")
        page.keyboard.type("vitamin D deficiency")
        page.keyboard.press("Enter")
        page.wait_for_selector(".column .hit")
        first = page.locator(".column .hit").first
        assert first.locator("mark").count() > 0  # matched query terms marked
        assert "BM25" in first.locator(".scores").inner_text()

        # a judged query, two pipelines side by side
        page.select_option("#judged", index=2)
        page.check("#compare")
        page.select_option("#pipeline-a", "BM25")
        page.select_option("#pipeline-b", "BM25 >> dense")
        page.click("#search-button")
        page.wait_for_selector(".results.compare .column:nth-child(2) .hit")  # selectors: the CSP forbids eval
        columns = page.locator(".column")
        assert columns.nth(0).locator("h2").inner_text() == "BM25"
        assert columns.nth(1).locator("h2").inner_text() == "BM25 >> dense"
        for i in range(2):
            assert "nDCG@10" in columns.nth(i).locator(".ndcg").inner_text()
            assert columns.nth(i).locator(".rel").count() == columns.nth(i).locator(".hit").count()
        assert columns.nth(1).locator(".move").count() == columns.nth(1).locator(".hit").count()  # each marked
        assert "BiEncoder" in columns.nth(1).locator(".scores").first.inner_text()
        page.screenshot(path=str(out / "serve-page.png"))

        # the document on click (a dialog), closed with Escape
        columns.nth(0).locator("button.title").first.click()
        page.wait_for_selector("#doc-dialog[open]")
        assert len(page.locator("#doc-text").inner_text()) > 50
        page.screenshot(path=str(out / "serve-document.png"))
        page.keyboard.press("Escape")
        page.wait_for_selector("#doc-dialog:not([open])", state="attached")

        # add a document with the token, then find it
        page.click("#token-box summary")
        page.fill("#token", TOKEN)
        page.click("#add-box summary")
        page.fill("#add-id", "okapi-1")
        page.fill("#add-title", "Okapis")
        page.fill("#add-text", "The okapi is a giraffid with zebra-like stripes.")
        page.click("#add-form button[type=submit]")
        page.wait_for_selector("#add-status:has-text('Added okapi-1')")
        page.uncheck("#compare")
        page.fill("#query", "okapi giraffid")
        page.keyboard.press("Enter")
        page.wait_for_selector(".column .hit:first-child .docid:text-is('id okapi-1')")

        # narrow screen: one column, nothing wider than the viewport
        page.set_viewport_size({"width": 390, "height": 844})
        page.check("#compare")
        page.click("#search-button")
        page.wait_for_selector(".results.compare .column:nth-child(2) .hit")
        boxes = [columns.nth(i).bounding_box() for i in range(2)]
        for box in [*boxes, page.locator("#search-form").bounding_box()]:
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # nothing wider than the screen
        assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"]  # stacked, not side by side
        page.screenshot(path=str(out / "serve-narrow.png"))
        assert not problems, problems
    finally:
        server.stop()
