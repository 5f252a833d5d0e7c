"""Reviewers' view: the run index in a real headless Chromium, served from 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from flows.produce import run_catalog
from tests.flows.helpers import small_profile, write_csv, write_flatlays

CHROMIUM = "/usr/bin/chromium"  # Debian's package (make test installs it); Playwright downloads nothing
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("index")
    rows = write_flatlays(root / "in", 2)
    rows.append({"sku": "BAD-1", "image": "g00.png", "category": "umbrella"})
    csv_path = write_csv(root / "in" / "products.csv", rows)
    report = run_catalog(str(csv_path), str(small_profile(root, variants=1)), str(root / "out"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root / "out"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", report.run_id
    server.shutdown()


def test_index_shows_counts_sheets_and_rejects(served_run: tuple[str, str], tmp_path: Path) -> None:
    base, run_id = served_run
    assert Path(CHROMIUM).exists(), "install Debian's chromium (make test does: apt-get install -y chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"{base}/index.html")
        page.wait_for_load_state("load")
        counts = page.inner_text("#counts")
        assert "4\nproduced" in counts and "1\nrejected" in counts
        cards = page.locator("#products .card")
        assert cards.count() == 2
        # Every contact sheet thumbnail actually loaded.
        widths = page.eval_on_selector_all(
            "#products img", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
        )
        assert len(widths) == 2 and all(w and w > 200 for w in widths)
        assert "'umbrella' is not a garment category" in page.inner_text("#rejects")
        # A card opens its full-size contact sheet.
        with page.expect_navigation():
            cards.first.locator("a").click()
        assert page.url.endswith("sheets/SKU-00.jpg")
        page.screenshot(path=str(tmp_path / "sheet.png"))
        # The run's own report under runs/<id>/: its links climb back to the sheets at the root.
        page.goto(f"{base}/runs/{run_id}/index.html")
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all(
            "#products img", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
        )
        assert len(widths) == 2 and all(w and w > 200 for w in widths)
        assert "'umbrella' is not a garment category" in page.inner_text("#rejects")
        browser.close()
