"""The five Voilà dashboards in a real browser: `survey dashboard` on a free loopback port with
the `publication` root (a real batch run), driven by headless Debian Chromium through Python
playwright (no browser download).

For each dashboard: the chart renders with no error output and no console error; the download
returns exactly the rows of the table shown; a filter change re-renders a different chart; French
and Spanish change the labels; suppressed cells show their reason; and the page requests nothing
from a host other than the server. What the browser shows is compared with the same dashboard
built in-process (survey.dashboard.build) on the same publication, so the test checks that the
served page shows the app's content, not just that something appeared.

Without /usr/bin/chromium (or playwright) the tests skip with the reason, unless
$SURVEY_REQUIRE_BROWSER is set (CI: .ci/run sets it and installs chromium), then they fail.
Screenshots: test-output/screenshots/.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from survey import serve

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "screenshots"
DASHBOARDS = ("overview", "victimization", "fear", "repeat", "risk")
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
TIMEOUT_MS = 90_000  # a cold kernel on a loaded 2-core machine
# the order in which a test picks the filter to change
FILTER_ORDER = ("crime", "indicator", "domain", "period", "run")


def _need_browser():
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


def norm(text: str) -> str:
    """Whitespace-insensitive text (narrow no-break spaces of French formatting included)."""
    text = "".join(" " if unicodedata.category(ch) == "Zs" else ch for ch in text or "")
    return re.sub(r"\s+", " ", text).strip()


def check_suppressed(rows: list[list[str]], classes: list[str], lang: str) -> int:
    """Suppressed cells of a table: in each row with any, one cell says the translated word and
    the reason; companion cells (e.g. the CI) are empty; none shows a number. Returns how many
    rows have suppressed cells."""
    from survey.i18n import translate

    word = translate("word.suppressed", lang)
    n = 0
    for row in rows:
        cells = [t for t, cls in zip(row, classes[:len(row)], strict=True) if "svy-suppressed" in cls]
        classes = classes[len(row):]
        if cells:
            n += 1
            assert any(norm(t).startswith(word) and len(norm(t)) > len(word) + 3 for t in cells), row
            for text in cells:
                assert text == "" or norm(text).startswith(word), text
                assert not re.fullmatch(r"[\d.,\s%\[\]-]+", text) or text == "", text  # never a number
    return n


# ---------------------------------------------------------------------------------------------
# fixtures: one server, one browser, one page per dashboard
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    _need_browser()  # before the publication (a batch run) is made for nothing
    publication = request.getfixturevalue("publication")
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    with serve.ServerProcess(publication, dashboards=ROOT / "dashboards", timeout=240, log_path=log) as srv:
        yield srv


@pytest.fixture(scope="module")
def context(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS, headless=True,
            accept_downloads=True, viewport={"width": 1280, "height": 1000}, locale="en-US")
        ctx.set_default_timeout(TIMEOUT_MS)
        yield ctx
        ctx.close()


class Dash:
    """A dashboard page in the browser, its in-process twin, and what the page did."""

    def __init__(self, name, page, app, base):
        self.name, self.page, self.app, self.base = name, page, app, base
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.root = f".svy-dashboard-{name}"

    # --- DOM ------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.page.get_attribute(f"{self.root} .svy-status .svy-render", "data-count"))

    def figure(self) -> dict:
        """Title, axis titles and data of the first rendered plotly figure."""
        return self.page.evaluate("""sel => {
            const g = document.querySelector(sel + ' .svy-chart .js-plotly-plot');
            if (!g || !g.layout) return null;
            const t = x => (x && x.title && (x.title.text ?? x.title)) || '';
            return {title: t(g.layout), x: t(g.layout.xaxis), y: t(g.layout.yaxis),
                    data: JSON.stringify(g.data.map(d => [d.type, d.name, d.x, d.y, d.text]))};
        }""", self.root)

    def title(self) -> str:
        return norm(self.page.inner_text(f"{self.root} .svy-title"))

    def table(self) -> tuple[list[str], list[list[str]], list[str]]:
        """Header, rows (cell texts) and cell classes of the table shown."""
        return self.page.evaluate("""sel => {
            const t = document.querySelector(sel + ' .svy-table table');
            if (!t) return [[], [], []];
            const head = [...t.querySelectorAll('thead th')].map(e => e.textContent);
            const rows = [...t.querySelectorAll('tbody tr')].map(r => [...r.querySelectorAll('td')].map(e => e.textContent));
            const cls = [...t.querySelectorAll('tbody td')].map(e => e.className);
            return [head, rows, cls];
        }""", self.root)

    def select(self, name: str, code: str) -> None:
        """Choose the option whose value is ``code`` in filter ``name`` (ipywidgets renders
        labels as option values, so the label comes from the twin's (label, code) options),
        wait for the re-render, and make the twin follow."""
        before = self.count()
        labels = [lab for lab, c in self.app.widgets[name].options if c == code]
        assert labels, f"{code!r} is not an option of {name} in {self.name}"
        self.page.select_option(f"{self.root} .svy-filter-{name} select", label=labels[0])
        self.page.wait_for_function(
            "([sel, n]) => +document.querySelector(sel + ' .svy-status .svy-render')?.dataset.count > n",
            arg=[self.root, before])
        self.app.select(**{name: code})
        self.wait_for_chart()

    def wait_for_chart(self) -> None:
        """The twin's figure title is on screen (the browser re-rendered the new figure)."""
        self.page.wait_for_selector(f"{self.root} .svy-chart .js-plotly-plot")
        if self.app.figures:
            want = self.app.figures[0].layout.title.text or ""
            self.page.wait_for_function(
                """([sel, want]) => {
                    const g = document.querySelector(sel + ' .svy-chart .js-plotly-plot');
                    const t = g && g.layout && g.layout.title;
                    return t && (t.text ?? t) === want;
                }""", arg=[self.root, want])

    def shot(self, label: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{label}.png"), full_page=True)

    def assert_clean(self) -> None:
        """No error output, no traceback, no console error."""
        page = self.page
        bad = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                           ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], "
                           ".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
        assert bad.count() == 0, bad.first.inner_text()
        body = page.inner_text("body")
        assert "Traceback" not in body and "There was an error when executing cell" not in body
        assert page.locator(f"{self.root} .svy-error").count() == 0, page.inner_text(f"{self.root} .svy-error")
        assert not self.console_errors, self.console_errors


@pytest.fixture(scope="module", params=DASHBOARDS)
def dash(request, context, server):
    from survey.dashboard import build

    name = request.param
    page = context.new_page()
    d = Dash(name, page, build(name, root=server.outputs, language="en"), server.base)
    page.on("request", lambda r: d.requests.append(r.url))
    page.on("websocket", lambda ws: d.requests.append(ws.url))
    page.on("console", lambda m: m.type == "error" and d.console_errors.append(m.text))
    page.on("pageerror", lambda e: d.console_errors.append(f"page error: {e}"))
    page.goto(server.base + f"voila/render/{name}.ipynb")
    page.wait_for_selector(f"{d.root} .svy-chart .js-plotly-plot")
    yield d
    page.close()


# ---------------------------------------------------------------------------------------------
# tests (pytest runs them in this order for each dashboard)
# ---------------------------------------------------------------------------------------------
def test_all_dashboards_exist():
    for name in DASHBOARDS:
        assert (ROOT / "dashboards" / f"{name}.ipynb").exists(), name


def test_chart_renders_without_errors(dash):
    dash.wait_for_chart()
    fig = dash.figure()
    assert fig and fig["data"] != "[]", f"{dash.name}: empty figure"
    assert norm(fig["title"]) == norm(dash.app.figures[0].layout.title.text)
    assert dash.title() == norm(dash.app.view.title)
    _, rows, classes = dash.table()
    check_suppressed(rows, classes, "en")
    dash.assert_clean()
    dash.shot("en")


def test_download_returns_the_rows_shown(dash):
    page = dash.page
    link = page.locator(f"{dash.root} .svy-download a")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8")
    notes = [line for line in text.splitlines() if line.startswith("# ")]
    assert len(notes) >= 2, "the download carries the notes (definition, rule, source)"
    rows = list(csv.reader(io.StringIO("\n".join(line for line in text.splitlines() if not line.startswith("# ")))))
    head, shown, _ = dash.table()
    assert rows[0] == head, "same columns in the same order"
    assert rows[1:] == shown, "exactly the rows shown"
    assert len(shown) >= 1
    # the link itself is a data: URL (no request to the server for the file)
    href = link.get_attribute("href")
    assert href.startswith("data:text/csv") and base64.b64decode(href.split(",", 1)[1]).decode("utf-8") == text


def test_filter_change_changes_the_chart(dash):
    app = dash.app
    candidates = []
    for name in FILTER_ORDER:
        w = app.widgets.get(name)
        if w is not None and not w.disabled and len(w.options) > 1:
            candidates += [(name, code) for _, code in w.options if code != w.value]
    assert candidates, f"{dash.name}: no filter with a second option"
    before_fig, before_title, before_count = dash.figure(), dash.title(), dash.count()
    # the first option whose chart differs from the one shown (some filters, e.g. the crime
    # type of a chart "by crime type", change only the table; the twin tells which)
    from survey.dashboard import build

    probe = build(dash.name, root=app.pub.root, language="en")
    probe.select(**{k: v for k, v in app.state.items() if k in probe.widgets and k != "language"})
    shown = app.figures[0].to_json()
    for name, code in candidates:
        probe.select(**{name: code})
        if probe.figures and probe.figures[0].to_json() != shown:
            break
        probe.select(**{name: app.widgets[name].value})
    else:
        pytest.fail(f"{dash.name}: no filter option changes the chart")
    dash.select(name, code)
    after = dash.figure()
    assert dash.count() > before_count
    assert after != before_fig, f"{dash.name}: changing {name} to {code} left the chart as it was"
    assert norm(after["title"]) == norm(app.figures[0].layout.title.text)
    assert dash.title() == norm(app.view.title) and dash.title() != before_title
    dash.assert_clean()
    dash.shot(f"filter-{name}")


def test_suppressed_cells_show_their_reason(dash):
    """Take a cell the publication suppressed (indicators.parquet of the run shown), bring the
    dashboard to a view of it, and check each suppressed cell shows the translated word and the
    reason, never a number, exactly as the in-process twin renders it."""
    import pandas as pd

    from survey.dashboard import build

    app = dash.app
    table = pd.read_parquet(Path(app.pub.root) / app.state["run"] / "indicators.parquet")
    withheld = table[table["suppressed"].astype(bool)]
    order = [n for n in ("indicator", "crime", "domain") if n in app.widgets]
    column = {"indicator": "indicator", "crime": "crime_type", "domain": "domain"}

    def suppressed(a):
        return [c.text for row in a.view.rows for c in row if "svy-suppressed" in c.cls]

    target = {} if suppressed(app) else None
    probe = build(dash.name, root=app.pub.root, language="en")
    probe.select(**{k: v for k, v in app.state.items() if k in probe.widgets and k != "language"})
    combos = withheld[[column[n] for n in order]].drop_duplicates().itertuples(index=False)
    for combo in (combos if target is None else []):
        want = dict(zip(order, combo, strict=True))
        try:
            for n in order:  # options depend on the filters before
                if want[n] not in [c for _, c in probe.widgets[n].options]:
                    raise LookupError
                probe.select(**{n: want[n]})
        except LookupError:
            continue
        if suppressed(probe):
            target = want
            break
    if dash.name in ("victimization", "repeat"):  # the demo run suppresses cells they show
        assert target is not None, f"{dash.name}: no view with a suppressed cell"
    if target is None:  # this dashboard shows no indicator that the run suppressed
        assert dash.name in ("overview", "fear", "risk")
        return
    for n in order:
        if n in target and target[n] != app.widgets[n].value:
            dash.select(n, target[n])
    head, rows, classes = dash.table()
    shown = [t for cls, t in zip(classes, sum(rows, []), strict=True) if "svy-suppressed" in cls]
    assert shown and [norm(t) for t in shown] == [norm(t) for t in suppressed(app)]
    assert check_suppressed(rows, classes, "en") > 0
    dash.assert_clean()
    dash.shot("suppressed")


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_language_changes_the_labels(dash, lang):
    from survey.dashboard import build
    from survey.i18n import translate

    en = build(dash.name, root=dash.app.pub.root, language="en")
    en.select(**{k: v for k, v in dash.app.state.items() if k in en.widgets and k != "language"})
    en_title, en_fig, en_head = norm(en.view.title), en.figures[0].layout.title.text if en.figures else "", en.view.columns
    dash.select("language", lang)
    title, (head, _, _) = dash.title(), dash.table()
    assert title == norm(dash.app.view.title)
    assert title != en_title, f"{dash.name}: the title did not change in {lang}"
    if dash.app.figures:
        fig = dash.figure()
        assert norm(fig["title"]) == norm(dash.app.figures[0].layout.title.text) != norm(en_fig)
        axes = dash.app.figures[0].layout
        assert norm(fig["x"]) == norm(axes.xaxis.title.text or "") and norm(fig["y"]) == norm(axes.yaxis.title.text or "")
    assert [norm(h) for h in head] == [norm(h) for h in dash.app.view.columns]
    assert head != en_head, f"{dash.name}: table headers not translated to {lang}"
    # the filter descriptions are translated too (the language dropdown names itself)
    label = dash.page.inner_text(f"{dash.root} .svy-filter-language .widget-label")
    assert norm(label) == norm(translate("filter.language", lang))
    dash.assert_clean()
    dash.shot(lang)


def test_no_false_session_banner_and_tab_close_cookie(dash, server):
    """After the filter and language changes above, the "session expired" banner of the
    survey-lab template has not appeared (it watches the kernel websocket; a false alarm would
    tell readers to reload a working page), and the page set the _xsrf cookie that its
    tab-close beacon needs to shut its kernel down."""
    assert dash.page.locator("#svy-session-expired").count() == 0
    assert dash.page.evaluate("() => typeof window.WebSocket === 'function' && window.WebSocket.__survey === true")
    cookies = {c["name"] for c in dash.page.context.cookies()}
    assert "_xsrf" in cookies, cookies
    assert "comm_open refused" not in "".join(server.lines), "a dashboard page hit the --max-comms cap"


def test_no_request_leaves_the_server(dash):
    """Every request and websocket of the page went to the loopback server (data: URLs are
    the download links). The lab template's Font Awesome CDN link is removed by the survey-lab
    template, so no exception is needed."""
    assert dash.requests, "no request recorded"
    outside = sorted({u for u in dash.requests
                      if not u.startswith(("data:", "blob:", "about:"))
                      and (urlsplit(u).hostname or "") not in LOOPBACK})
    assert not outside, f"{dash.name}: requests to other hosts: {outside}"
