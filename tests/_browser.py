"""What the browser tests share (tests/test_dashboard_browser.py, test_dashboard_keyboard.py,
test_dashboard_abuse.py, test_dashboard_local.py, test_screener.py): whether a browser is there,
the dashboards as the server must be given them, and headless Debian Chromium driven by Python
playwright (no browser download).

Without /usr/bin/chromium (or playwright) a browser test skips with the reason, unless
$SURVEY_REQUIRE_BROWSER is set (CI: .ci/run sets it and installs chromium), then it fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from survey import serve

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "screenshots"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
TIMEOUT_MS = 90_000  # a cold kernel on a loaded 2-core machine
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"


def need_browser() -> None:
    """Skip (or fail, with $SURVEY_REQUIRE_BROWSER) without python playwright or Chromium."""
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "python playwright is not installed (pip install -e '.[dev]')"
    if reason is None and not Path(serve.CHROMIUM).exists():
        reason = f"no Chromium at {serve.CHROMIUM} (apt-get install chromium)"
    if reason:
        if os.environ.get("SURVEY_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests required ($SURVEY_REQUIRE_BROWSER) but {reason}")
        pytest.skip(reason)


def need_axe() -> None:
    """Skip (or fail, with $SURVEY_REQUIRE_BROWSER) without axe-core in tests/js (make axe)."""
    if not AXE.exists():
        if os.environ.get("SURVEY_REQUIRE_BROWSER"):
            pytest.fail(f"accessibility checks required but {AXE} is missing (make axe)")
        pytest.skip(f"{AXE} is missing (make axe: npm install in tests/js)")


def served_dashboards(folder: Path, names: Iterable[str] | None = None) -> Path:
    """Copies of the dashboards (all, or ``names``) in ``folder`` with this checkout's sources
    first on the kernels' path: Voilà's kernels do not see $PYTHONPATH, so a worktree would
    otherwise be served the installed package."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted((ROOT / "dashboards").glob("*.ipynb")) if names is None else \
        [ROOT / "dashboards" / f"{n}.ipynb" for n in names]
    for nb_path in paths:
        nb = nbformat.read(nb_path, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {str(ROOT / 'src')!r})"))
        nbformat.write(nb, folder / nb_path.name)
    return folder


@contextmanager
def chromium_context(timeout_ms: float = TIMEOUT_MS, **options) -> Iterator:
    """A persistent browser context of headless Chromium in a fresh profile (``options``:
    viewport, locale, accept_downloads...; one playwright at a time per process)."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS,
                                                   headless=True, **options)
        ctx.set_default_timeout(timeout_ms)
        try:
            yield ctx
        finally:
            ctx.close()


@contextmanager
def chromium_browser() -> Iterator:
    """Headless Chromium as a browser (a test opens its own contexts, e.g. one per locale)."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
