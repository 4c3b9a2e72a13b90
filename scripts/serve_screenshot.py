"""The README's screenshot of tgan-serve's page: serve MODEL, open / in headless chromium, save a PNG.

    python scripts/serve_screenshot.py demo-out/export --out docs/images/serve-page.png

Needs the serve extra, Debian's chromium and the playwright package (no browser download).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _serve import running_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--name", default="mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "serve-page.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    log = args.out.with_suffix(".log")
    with running_server(args.model, "--name", args.name, log=log) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1100, "height": 720})
        tab.goto(f"{url}/")
        tab.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete && "
                              "i.naturalWidth)")
        tab.locator("#grid figure").nth(7).click()
        tab.fill("#seed-b", "11")
        tab.dispatch_event("#seed-b", "change")
        tab.wait_for_timeout(500)
        tab.eval_on_selector("#morph-t", "(el) => { el.value = 7; el.dispatchEvent(new Event('input')); }")
        tab.screenshot(path=str(args.out))
        browser.close()
    log.unlink()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
