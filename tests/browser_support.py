"""Real-browser tests: Debian's Chromium (never a downloaded browser), axe-core from node_modules, test photos.

Without /usr/bin/chromium the browser tests are skipped, except in CI (CI=true), where they fail: the CI log
must show that the pages were tested. `.ci/browser-deps` installs Chromium when it runs as root.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from web_helpers import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING

REPO_ROOT = Path(__file__).resolve().parent.parent
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def browser_marks(executable: str = CHROMIUM, in_ci: bool = IN_CI) -> list:
    """Marks for a browser test module: skipped without Chromium on a developer machine, never in CI."""
    marks = [pytest.mark.browser, pytest.mark.slow]
    if not Path(executable).exists() and not in_ci:
        marks.append(pytest.mark.skip(reason=CHROMIUM_MISSING))
    return marks


@contextlib.contextmanager
def chromium(extra_args: tuple[str, ...] = ()):
    """A headless Debian Chromium driven by Playwright; fails with the reason when it cannot run."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM_MISSING}; in CI the browser tests must run (.ci/browser-deps installs it as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(extra_args))
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, viewport: dict = DESKTOP, **options):
    """A page in a fresh context (its own cookies: its own visitor). CSP is bypassed only so axe can be injected."""
    context = browser.new_context(viewport=viewport, bypass_csp=True, **options)
    return context.new_page()


def assert_accessible(page, state: str) -> None:
    """Run axe-core (from node_modules) in the page as it is now; any violation fails with what and where."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing; run `npm ci` in the repository root")
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate("""async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
        .map((v) => `${v.id} (${v.impact}): ${v.help} -> ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`)""")
    assert violations == [], f"axe-core violations on {state}:\n" + "\n".join(violations)


def astronaut_png(path: Path) -> Path:
    """scikit-image's astronaut photo (one face) as a PNG file."""
    from skimage import data

    Image.fromarray(data.astronaut()).save(path)
    return path


def crowd_jpeg(path: Path, rows: int = 4, columns: int = 5, cell: int = 150) -> Path:
    """A group photo: the astronaut's face tiled rows x columns (every second one mirrored) on a grey canvas."""
    from skimage import data

    face = Image.fromarray(data.astronaut()[20:220, 140:320]).resize((cell - 20, cell + 10))
    canvas = np.full((rows * (cell + 30), columns * cell, 3), 110, np.uint8)
    for row in range(rows):
        for column in range(columns):
            tile = np.asarray(face)[:, ::-1] if (row + column) % 2 else np.asarray(face)
            top, left = row * (cell + 30) + 10, column * cell + 10
            canvas[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
    Image.fromarray(canvas).save(path, quality=92)
    return path


def boxes_of(page, selector: str) -> list[dict]:
    """Bounding boxes (x, y, width, height) of every element matching the selector."""
    return page.eval_on_selector_all(selector, "els => els.map((e) => { const r = e.getBoundingClientRect(); "
                                               "return {x: r.x, y: r.y, width: r.width, height: r.height}; })")


def intersects(a: dict, b: dict) -> bool:
    """True when two rectangles share area (touching edges do not count)."""
    return (min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"]) > 0.5 and
            min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"]) > 0.5)


def in_view(page, selector: str) -> bool:
    """True when the (first) element is entirely inside the viewport."""
    return page.eval_on_selector(selector, """(el) => { const r = el.getBoundingClientRect();
        return r.top >= -1 && r.left >= -1 && r.bottom <= innerHeight + 1 && r.right <= innerWidth + 1; }""")
