"""The review app in a real headless Chromium on 127.0.0.1: browse, filter, decide with the keyboard, undo,
export, and a following run that renders exactly the rejected image."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from catalog.state import open_job_store
from flows.produce import run_catalog
from tests.webapp.review.conftest import produce, review_args
from webapp.review.command import build

CHROMIUM = "/usr/bin/chromium"  # Debian's package (make test installs it)
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    csv_path, profile, out = produce(tmp_path)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(build(review_args(out)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", csv_path, profile, out
    server.should_exit = True
    thread.join(timeout=10)


def _shot(page: Page, folder: Path, name: str) -> None:
    """Screenshots for people to look at (copied to $ONMODEL_SCREENSHOTS when set)."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))  # the viewport a reviewer sees (the header is sticky)
    if target := os.environ.get("ONMODEL_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_a_reviewer_works_through_a_run_with_the_keyboard(served, tmp_path: Path) -> None:
    base, csv_path, profile, out = served
    assert Path(CHROMIUM).exists(), "install Debian's chromium (make test does: apt-get install -y chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        # 1. The runs list: the catalogue and the run, nothing reviewed yet.
        page.goto(base + "/")
        expect(page.locator("#runs tbody tr")).to_have_count(2)
        assert "0 / 4" in page.inner_text("#runs")
        _shot(page, tmp_path, "review-runs")
        # 2. The run's gallery, filtered by search.
        page.locator("#runs tbody tr").nth(1).locator("a").click()
        expect(page.locator("#products .card")).to_have_count(2)
        _shot(page, tmp_path, "review-gallery")
        page.keyboard.press("/")
        page.keyboard.type("SKU-01")
        page.keyboard.press("Enter")
        expect(page.locator("#products .card")).to_have_count(1)
        page.goto(page.url.split("?")[0])
        # 3. Open the first product with Enter; source photo and cutout load beside the images.
        page.keyboard.press("Enter")
        expect(page.locator(".product-head h1")).to_have_text("SKU-00")
        loaded = page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length"
        )
        assert loaded >= 4  # source, cutout, two renders
        shots = page.locator("#images .shot")
        expect(shots).to_have_count(2)
        # 4. Approve the first image (a), move on (j), reject the second for a reason (r, 2, Enter).
        page.keyboard.press("a")
        expect(shots.nth(0)).to_have_class("shot r-approved")
        page.keyboard.press("j")
        page.keyboard.press("r")
        expect(page.locator("#reasons")).to_be_visible()
        _shot(page, tmp_path, "review-reject-dialog")
        page.keyboard.press("2")
        page.keyboard.press("Enter")
        expect(shots.nth(1)).to_have_class("shot r-rejected")
        expect(page.locator("#product-state")).to_have_text("rejected")
        # 5. Undo takes the rejection back (the page reloads with the image undecided), then reject again.
        page.keyboard.press("u")
        page.wait_for_load_state("load")
        expect(page.locator("#images .shot").nth(1)).to_have_class("shot r-undecided")
        page.locator("#images .shot").nth(1).locator("[data-action=reject]").click()
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        expect(page.locator("#images .shot").nth(1)).to_have_class("shot r-rejected")
        _shot(page, tmp_path, "review-product")
        # 6. Next product (n): approve all (A).
        page.keyboard.press("n")
        expect(page.locator(".product-head h1")).to_have_text("SKU-01")
        page.keyboard.press("A")
        expect(page.locator("#product-state")).to_have_text("approved")
        # 7. The gallery shows the states; export the approved images as a zip in the amazon preset.
        page.goto(base + page.url.split(base)[1].split("/products/")[0])
        expect(page.locator(".card.r-approved")).to_have_count(1)
        expect(page.locator(".card.r-rejected")).to_have_count(1)
        page.select_option("#export select[name=preset]", "amazon")
        with page.expect_download() as download:
            page.locator("#export button").click()
        archive = tmp_path / "export.zip"
        download.value.save_as(archive)
        assert len([n for n in zipfile.ZipFile(archive).namelist() if n.endswith(".jpg")]) == 3
        _shot(page, tmp_path, "review-gallery-decided")
        assert not errors, errors
        browser.close()
    # 8. The decisions are in the state store, with the reviewer's name; the next run renders only the rejected one.
    store = open_job_store(out / "state.sqlite")
    current = {job: d.decision for job, d in store.decisions().items()}
    assert sorted(current.values()) == ["approve", "approve", "approve", "reject"]
    assert {d.reviewer for d in store.decisions().values()} == {"ana"}
    (rejected,) = [job for job, decision in current.items() if decision == "reject"]
    report = run_catalog(str(csv_path), str(profile), str(out))
    assert [j.job_id for p in report.products for j in p.jobs if j.state == "produced"] == [rejected]
