"""tgan-serve's web page in a real headless browser: Debian's chromium driven by Playwright (no browser download).

Under CI (CI=true) a missing browser fails this test; elsewhere it skips with the install command.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _runtime_factories import TinyModels, shared_tiny_models
from _serve import running_server
from PIL import Image

INSTALL = "apt-get install -y chromium && pip install playwright"
PAGE_SEEDS = 24


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None if found else "chromium is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}: CI must run the browser test ({INSTALL})")
        pytest.skip(f"{missing}: {INSTALL}")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    tiny: TinyModels = shared_tiny_models(tmp_path_factory)
    served = tmp_path_factory.mktemp("serve-page")
    exports = served / "exports"  # a folder of exports: "tiny" (listed first, the page's default) and "tiny-cond"
    exports.mkdir()
    (exports / "tiny").symlink_to(tiny.export)
    (exports / "tiny-cond").symlink_to(tiny.cond_export)
    with running_server(exports, log=served / "serve.log") as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1200, "height": 800})
        tab.goto(f"{url}/")
        yield tab, url
        browser.close()


def wait_for_images(tab: Any) -> None:
    tab.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth)")


def test_page_shows_a_grid_of_samples_by_seed(page: tuple[Any, str], tmp_path: Path) -> None:
    tab, _ = page
    wait_for_images(tab)
    captions = tab.locator("#grid figcaption").all_inner_texts()
    assert captions == [f"seed {s}" for s in range(PAGE_SEEDS)]
    widths = tab.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [32] * PAGE_SEEDS  # every sample image decoded
    shot = np.asarray(Image.open(io.BytesIO(tab.screenshot())).convert("RGB"))
    grid_box = tab.locator("#grid").bounding_box()
    region = shot[int(grid_box["y"]):int(grid_box["y"] + grid_box["height"]),
                  int(grid_box["x"]):int(grid_box["x"] + grid_box["width"])]
    assert region.std() > 5 and len(np.unique(region.reshape(-1, 3), axis=0)) > 100  # pictures, not a blank page


def test_click_shows_the_seed_and_its_permalink(page: tuple[Any, str]) -> None:
    tab, url = page
    tab.locator("#grid figure").nth(5).click()
    assert tab.locator("#detail-seed").inner_text() == "5"
    assert tab.locator("#permalink").get_attribute("href") == f"{url}/v1/models/tiny/images/5.png"
    tab.wait_for_function("() => document.getElementById('detail-image').naturalWidth === 32")


def test_morph_slider_draws_frames_between_two_seeds(page: tuple[Any, str]) -> None:
    tab, _ = page
    tab.fill("#seed-a", "3")
    tab.fill("#seed-b", "17")
    tab.dispatch_event("#seed-b", "change")
    tab.wait_for_function("() => document.getElementById('morph').width === 32")

    def frame(i: int) -> list[int]:
        tab.eval_on_selector("#morph-t", f"(el) => {{ el.value = {i}; el.dispatchEvent(new Event('input')); }}")
        pixels: list[int] = tab.evaluate(
            "() => Array.from(document.getElementById('morph').getContext('2d').getImageData(0, 0, 32, 32).data)")
        return pixels

    tab.wait_for_timeout(300)  # the strip loads
    first, middle = frame(0), frame(8)
    assert len(set(first)) > 10 and first != middle  # real pictures, and the slider changes them


def test_truncation_slider_and_paging_change_the_images(page: tuple[Any, str]) -> None:
    tab, _ = page
    tab.eval_on_selector("#truncation", "(el) => { el.value = 5; el.dispatchEvent(new Event('input'));"
                                        " el.dispatchEvent(new Event('change')); }")
    assert tab.locator("#truncation-value").inner_text() == "0.5"
    assert tab.locator("#grid img").first.get_attribute("src").endswith("0.png?truncation=0.5")
    tab.click("#next")
    wait_for_images(tab)
    assert tab.locator("#grid figcaption").first.inner_text() == f"seed {PAGE_SEEDS}"


def test_a_conditional_model_gets_a_class_selector_that_the_images_follow(page: tuple[Any, str]) -> None:
    tab, _ = page
    assert tab.locator("#class-box").is_hidden()  # the unconditional default model has no classes
    tab.select_option("#model", "tiny-cond")
    assert tab.locator("#class-box").is_visible()
    assert tab.locator("#class option").all_inner_texts() == ["cat", "dog", "seven"]
    tab.select_option("#class", "dog")
    wait_for_images(tab)  # a refused label (400) would never decode
    src = tab.locator("#grid img").first.get_attribute("src")
    assert src.startswith("/v1/models/tiny-cond/images/") and "label=dog" in src
    assert "label=dog" in tab.locator("#permalink").get_attribute("href")
    tab.select_option("#model", "tiny")  # back to the unconditional model: no selector, no label in the URLs
    assert tab.locator("#class-box").is_hidden()
    assert "label=" not in tab.locator("#grid img").first.get_attribute("src")
