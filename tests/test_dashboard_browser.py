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
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _browser import AXE, LOOPBACK, ROOT, SHOTS, chromium_context, need_axe, need_browser, served_dashboards

from survey import serve
from survey.dashboard import charts

DASHBOARDS = ("overview", "victimization", "fear", "repeat", "risk")
# the order in which a test picks the filter to change
FILTER_ORDER = ("crime", "indicator", "domain", "period", "run")


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
    """`survey dashboard` on the three-wave publication (demo, synthetic-two-waves and a third
    wave on `survey synth --seed 3`), serving copies of the dashboards with this checkout's
    sources first on the kernels' path (Voilà's kernels do not see $PYTHONPATH)."""
    import shutil

    need_browser()  # before the publication (a batch run) is made for nothing
    folder = tmp_path_factory.mktemp("voila")
    publication = folder / "outputs"  # a copy: a run is added (below) that other modules must not see
    shutil.copytree(request.getfixturevalue("three_waves"), publication)
    _add_cv_run(publication)
    dashboards = served_dashboards(folder / "dashboards")
    # many pages stay open in one browser here: the kernel caps are tested in test_dashboard_abuse
    with serve.ServerProcess(publication, "--max-kernels", "60", "--max-kernels-per-client", "60",
                             dashboards=dashboards, timeout=240, log_path=folder / "voila.log") as srv:
        yield srv


CV_RUN = "demo-cv"


def _add_cv_run(root: Path) -> None:
    """A run folder ``demo-cv``: the demo's indicator table rated by the cv_bands rule
    (survey.quality: cells with a CV above 30% published and flagged, which the demo's ONS rule
    never does) with the spec's GeoJSON region areas, written by the publishing code
    (survey.report.write_indicator_table), before the server starts (its preheated kernels
    list the runs when they start)."""
    import json
    import shutil
    from types import SimpleNamespace

    import pandas as pd

    from survey.quality import apply_rule
    from survey.report import write_indicator_table
    from survey.spec import load_yaml, parse_spec

    cv = root / CV_RUN
    shutil.copytree(root / "demo", cv)
    manifest = json.loads((cv / "manifest.json").read_text(encoding="utf-8"))
    manifest["description"] = "The demo run under the CV bands rule"
    (cv / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    table = apply_rule(pd.read_parquet(root / "demo" / "indicators.parquet"), "cv_bands")
    raw = load_yaml((ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8"))
    raw["domains"]["region"].update(geojson="../data/areas/synthetic-regions.geojson", id_property="name")
    write_indicator_table(table, cv, SimpleNamespace(spec=parse_spec(raw), spec_path=ROOT / "specs" / "synthetic.yaml"))


@pytest.fixture(scope="module")
def context(server, chromium):
    return chromium


@pytest.fixture(scope="module")
def chromium():
    """The browser (one playwright per module: a second one cannot start while it runs)."""
    with chromium_context(accept_downloads=True, viewport={"width": 1280, "height": 1000}, locale="en-US") as ctx:
        yield ctx


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
            const title = t(g.layout) || (g.layout.meta && g.layout.meta.title) || '';
            return {title: title, x: t(g.layout.xaxis), y: t(g.layout.yaxis),
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
        if self.app.figure_specs:
            want = charts.title_of(self.app.figure_specs[0])
            self.page.wait_for_function(
                """([sel, want]) => {
                    const g = document.querySelector(sel + ' .svy-chart .js-plotly-plot');
                    const l = g && g.layout;
                    const t = l && l.title && (l.title.text ?? l.title);
                    return l && ((t || (l.meta && l.meta.title) || '') === want);
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
    assert norm(fig["title"]) == norm(charts.title_of(dash.app.figure_specs[0]))
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
    assert norm(after["title"]) == norm(charts.title_of(app.figure_specs[0]))
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
    en_title, en_head = norm(en.view.title), en.view.columns
    en_fig = charts.title_of(en.figure_specs[0]) if en.figure_specs else ""
    dash.select("language", lang)
    title, (head, _, _) = dash.title(), dash.table()
    assert title == norm(dash.app.view.title)
    assert title != en_title, f"{dash.name}: the title did not change in {lang}"
    if dash.app.figures:
        fig = dash.figure()
        assert norm(fig["title"]) == norm(charts.title_of(dash.app.figure_specs[0])) != norm(en_fig)
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


# ---------------------------------------------------------------------------------------------
# issue 13: quality marks, change, trend, languages, print, phone, accessibility
# ---------------------------------------------------------------------------------------------


def _open(context, server, name: str, width: int = 1280, height: int = 1000) -> Dash:
    from survey.dashboard import build

    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    d = Dash(name, page, build(name, root=server.outputs, language="en"), server.base)
    page.on("console", lambda m: m.type == "error" and d.console_errors.append(m.text))
    page.on("pageerror", lambda e: d.console_errors.append(f"page error: {e}"))
    page.goto(server.base + f"voila/render/{name}.ipynb")
    page.wait_for_selector(f"{d.root} .svy-chart .js-plotly-plot")
    return d


def _traces(d: Dash, index: int = 0) -> list[dict]:
    """The traces of the index-th plotly figure as the browser holds them."""
    return d.page.evaluate("""([sel, i]) => {
        const g = document.querySelectorAll(sel + ' .svy-chart .js-plotly-plot')[i];
        return g ? g.data.map(t => ({type: t.type, x: t.x, y: t.y, text: t.text, name: t.name,
                                     symbol: t.marker && t.marker.symbol,
                                     pattern: t.marker && t.marker.pattern && t.marker.pattern.shape})) : null;
    }""", [d.root, index])


def _go(d: Dash, **state) -> None:
    for name in ("run", "indicator", "crime", "domain", "scale", "language"):
        if name in state and d.app.state.get(name) != state[name]:
            d.select(name, state[name])


def test_flagged_suppressed_and_change_markers_in_the_browser(context, server):
    """Flagged cells: hollow hatched bars with † (not a plain bar) and the reason in the table;
    suppressed cells: no bar (null, never 0) and the word; the previous wave: a marker drawn
    above the bars (after them), pointing up where the estimate rose and down where it fell,
    as comparison.csv says."""
    import pandas as pd

    root = Path(server.outputs)
    cmp = pd.read_csv(root / "synthetic-two-waves" / "comparison.csv", dtype={"domain_value": str})
    by_region = cmp[(cmp.indicator == "prevalence") & (cmp.domain == "region") & cmp.difference.notna()]
    signs = by_region.groupby("crime_type")["difference"].agg(lambda s: (s > 0).any() and (s < 0).any())
    crime = next(c for c in ("household", "burglary", "personal", "vehicle_theft") if signs.get(c, False))
    d = _open(context, server, "victimization")
    try:
        _go(d, run="synthetic-two-waves", indicator="prevalence", crime=crime, domain="region")
        traces = _traces(d)
        kinds = [t["type"] for t in traces]
        assert kinds.index("scatter") > kinds.index("bar"), "the previous wave is drawn above the bars"
        marker = traces[kinds.index("scatter")]
        exp = by_region[by_region.crime_type == crime].set_index("domain_value")
        for region, symbol in zip(marker["x"], marker["symbol"], strict=True):
            diff = exp.loc[region, "difference"]
            assert symbol == ("triangle-up" if diff > 0 else "triangle-down"), (region, diff, symbol)
        assert {"triangle-up", "triangle-down"} <= set(marker["symbol"])
        d.shot("change-markers")
        # flagged and suppressed cells of the demo run
        table = pd.read_parquet(root / "demo" / "indicators.parquet")
        flagged = table[(table.flag_reason != "") & ~table.suppressed & ~table.flag_reason.str.startswith("no sample")
                        & table.indicator.isin(["prevalence", "incidence"]) & (table.domain != "overall")]
        if len(flagged):
            r = flagged.iloc[0]
            _go(d, run="demo", indicator=r.indicator, crime=r.crime_type, domain=r.domain)
            bars = next(t for t in _traces(d) if t["type"] == "bar")
            i = bars["x"].index(d.app.value_label(r.domain, r.domain_value))
            assert bars["pattern"][i] == "/" and bars["text"][i] == "†"
            _, rows, classes = d.table()
            cell = next(row for row in rows if row[0] == bars["x"][i])[1]
            assert "†" in cell and d.app.tr.reason(r.flag_reason) in cell
            d.shot("flagged")
        from survey.dashboard.data import VICTIMIZATION_INDICATORS

        withheld = table[table.suppressed & table.indicator.isin(VICTIMIZATION_INDICATORS) & (table.domain != "overall")]
        assert len(withheld), "the demo run suppresses cells"
        r = withheld.iloc[0]
        _go(d, run="demo", indicator=r.indicator, crime=r.crime_type, domain=r.domain)
        bars = next(t for t in _traces(d) if t["type"] == "bar")
        i = bars["x"].index(d.app.value_label(r.domain, r.domain_value))
        assert bars["y"][i] is None, "a suppressed cell is not drawn (never as 0)"
        d.assert_clean()
    finally:
        d.page.close()


def test_trend_lines_over_three_waves_in_the_browser(context, server):
    d = _open(context, server, "victimization")
    try:
        _go(d, run="synthetic-year3", indicator="prevalence", crime="household", domain="region")
        n = d.page.locator(f"{d.root} .svy-chart .js-plotly-plot").count()
        lines = None
        for i in range(n):
            t = _traces(d, i)
            if t and all(x["type"] == "scatter" for x in t) and len(t[0]["x"] or []) == 4:
                lines = t
        assert lines is not None, "no trend chart"
        assert lines[0]["x"] == ["Synthetic year", "Year 1", "Year 2", "Year 3"]
        assert len(lines) == 8 and all(sum(v is not None for v in line["y"]) == 4 for line in lines)
        d.shot("trend")
    finally:
        d.page.close()


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_no_english_data_label_left(context, server, lang):
    """French and Spanish: the region names, crime labels and survey title the spec gives in
    the language replace the English ones everywhere on the page (title, chart, table, notes)."""
    import yaml

    spec = yaml.safe_load((ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8"))
    region = spec["domains"]["region"]
    english = {en for en, x in region["translations"][lang].items() if x != en}
    crimes = {t["name"]: t["label"] for t in spec["victimization"]["types"]}
    english |= {crimes["burglary"]["en"], spec["title"]["en"]}
    d = _open(context, server, "victimization")
    try:
        _go(d, run="demo", indicator="prevalence", crime="burglary", domain="region", language=lang)
        text = d.page.inner_text(d.root) + " " + " ".join(d.page.evaluate(
            "sel => [...document.querySelectorAll(sel + ' option')].map(o => o.textContent)", d.root))
        chart = " ".join(str(x) for t in _traces(d) for x in (t["x"] or []))
        left = sorted(w for w in english if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text + " " + chart))
        assert not left, f"{lang}: English data labels left: {left}"
        assert crimes["burglary"][lang] in text and region["translations"][lang]["North West"] in chart
        assert spec["title"][lang] in text
        assert "Run:" not in text and ".parquet" not in text and "truth" not in text
        d.shot(f"labels-{lang}")
    finally:
        d.page.close()


def test_print_keeps_chart_table_and_notes(context, server, tmp_path):
    """Printing (Chromium's PDF of the print media): the chart, the table and the notes are
    laid out (not hidden, not clipped to one screen) and the PDF runs over more than one A4
    page; the filters are not printed."""
    d = _open(context, server, "victimization")
    try:
        _go(d, run="demo", indicator="prevalence", crime="household", domain="region")
        d.page.emulate_media(media="print")
        seen = d.page.evaluate("""sel => {
            const vis = e => { if (!e) return false; const r = e.getBoundingClientRect();
                               return r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; };
            const q = s => document.querySelector(sel + ' ' + s);
            return {chart: vis(q('.svy-chart .js-plotly-plot')), table: vis(q('.svy-table table')),
                    notes: vis(q('.svy-notes li')), filters: vis(q('.svy-filters')),
                    clipped: [...document.querySelectorAll('body, html, #rendered_cells')]
                        .some(e => ['hidden', 'scroll', 'auto'].includes(getComputedStyle(e).overflowY)
                                    && e.scrollHeight > e.clientHeight + 2)};
        }""", d.root)
        assert seen == {"chart": True, "table": True, "notes": True, "filters": False, "clipped": False}, seen
        pdf = d.page.pdf(format="A4", print_background=True)
        (tmp_path / "victimization.pdf").write_bytes(pdf)
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "victimization-print.pdf").write_bytes(pdf)
        pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
        assert pages >= 2, f"the print is {pages} page(s): cut off"
        try:  # the text itself when pypdf is installed
            import pypdf
        except ImportError:
            pypdf = None
        if pypdf is not None:
            text = norm(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages))
            assert norm(d.app.view.columns[0]) in text and "Publication rule" in text
        d.page.emulate_media(media="screen")
    finally:
        d.page.close()


@pytest.mark.parametrize("name", DASHBOARDS)
def test_phone_width_without_horizontal_scroll(context, server, name):
    d = _open(context, server, name, width=390, height=844)
    try:
        d.wait_for_chart()
        width = d.page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
        d.shot("phone")
        assert width <= 390, f"{name}: the page is {width} px wide at 390 px"
    finally:
        d.page.close()


@pytest.mark.parametrize("name", DASHBOARDS)
def test_no_accessibility_violation_wcag_a_aa(context, server, name):
    """axe-core (tests/js, `make axe`) on each dashboard: no WCAG 2 A or AA violation."""
    need_axe()
    d = _open(context, server, name)
    try:
        d.wait_for_chart()
        d.page.add_script_tag(path=str(AXE))
        result = d.page.evaluate("""sel => axe.run(document.querySelector(sel),
            {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})
            .then(r => r.violations.map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')))""",
                                 d.root)
        assert result == [], f"{name}: {result}"
    finally:
        d.page.close()


def test_crossed_breakdown_in_the_browser(context, server):
    """A crossed domain (sex × age of the synthetic spec): grouped bars (age on the axis, one
    group per sex, each bar its cell's published estimate, never 0 for a cell without value)
    and the heat table (rows ages, columns sexes), both rendered; the table shown has one row
    per published cell, labelled part by part."""
    import pandas as pd

    table = pd.read_parquet(Path(server.outputs) / "demo" / "indicators.parquet")
    exp = table[(table.indicator == "prevalence") & (table.crime_type == "robbery") & (table.domain == "sex_age")]
    if exp.empty:
        pytest.skip("the publication has no crossed domain")
    d = _open(context, server, "victimization")
    try:
        _go(d, run="demo", indicator="prevalence", crime="robbery", domain="sex_age")
        _, rows, _ = d.table()
        assert [r[0] for r in rows] == list(exp.domain_value)  # English: the published labels
        bars = [t for t in _traces(d) if t["type"] == "bar"]
        assert [b["name"] for b in bars] == ["Male", "Female"]
        by_cell = {v: (None if s or f.startswith("no sample") else e)
                   for v, s, f, e in zip(exp.domain_value, exp.suppressed, exp.flag_reason, exp.estimate)}
        for b in bars:
            assert b["y"] == pytest.approx([by_cell[f"{b['name']} × {age}"] for age in b["x"]])
        heat = d.page.evaluate("""sel => {
            const t = document.querySelector(sel + ' .svy-extra table.svy-heat-table');
            if (!t) return null;
            return {cols: [...t.querySelectorAll('thead th')].map(e => e.textContent),
                    rows: [...t.querySelectorAll('tbody tr')].map(r => [...r.children].map(e => e.textContent)),
                    shown: t.getBoundingClientRect().height > 0};
        }""", d.root)
        assert heat and heat["shown"] and heat["cols"][1:] == ["Male", "Female"]
        ages = list(dict.fromkeys(v.split(" × ")[1] for v in exp.domain_value))
        assert [r[0] for r in heat["rows"]] == ages
        for r in heat["rows"]:
            for sex, text in zip(["Male", "Female"], r[1:]):
                v = by_cell[f"{sex} × {r[0]}"]
                assert (text in ("suppressed", "no sample case")) == (v is None), (sex, r[0], text)
        d.shot("crossed")
        d.assert_clean()
    finally:
        d.page.close()


def _map_index(d: Dash) -> int:
    titles = d.page.evaluate("""sel => [...document.querySelectorAll(sel + ' .svy-chart .js-plotly-plot')]
        .map(g => (g.layout.title && (g.layout.title.text ?? g.layout.title)) || '')""", d.root)
    return next(i for i, t in enumerate(titles) if t.startswith(("Map", "Carte", "Mapa")))


def _map_dom(d: Dash, i: int) -> dict:
    """What the browser drew of the i-th figure: fills with an SVG pattern, the colour bar's
    title, the least x of the areas, the legend texts and all the SVG text."""
    return d.page.evaluate(r"""([sel, i]) => {
        const g = document.querySelectorAll(sel + ' .svy-chart .js-plotly-plot')[i];
        const fills = [...g.querySelectorAll('.cartesianlayer path.js-fill')];  // not the legend's swatches
        const patterned = fills.filter(p => /url\(/.test(p.style.fill || p.getAttribute('fill') || ''));
        const defs = g.querySelectorAll('defs pattern').length;
        const bar = g.querySelector('.colorbar .cbtitle, .cbtitle');
        const xs = g.data.filter(t => t.fill === 'toself').flatMap(t => t.x.filter(v => v !== null));
        return {title: (g.layout.title && (g.layout.title.text ?? g.layout.title)) || '',
                patterned: patterned.length, fills: fills.length, patterns: defs,
                colorbar: bar ? bar.textContent : '', minx: Math.min(...xs),
                legend: [...g.querySelectorAll('.legendtext')].map(e => e.textContent),
                text: [...g.querySelectorAll('text')].map(e => e.textContent).join(' ')};
    }""", [d.root, i])


def _map_when(d: Dash, ready=lambda m: True, seconds: float = 60.0) -> dict:
    """The map as drawn once it has the twin's map title and ``ready(map)`` holds (the output of
    a re-render reaches the page figure by figure: the bars' title may be the same before and
    after), or as it is then."""
    import time

    want = next(charts.title_of(f) for f in d.app.figure_specs if charts.title_of(f).startswith(("Map", "Carte",
                                                                                                    "Mapa")))
    end = time.monotonic() + seconds
    while True:
        try:
            drawn = _map_dom(d, _map_index(d))
        except StopIteration:  # the map is not drawn yet
            drawn = None
        if (drawn is not None and drawn["title"] == want and ready(drawn)) or time.monotonic() > end:
            return drawn or {}
        time.sleep(0.25)


def test_map_hatching_scale_toggle_and_geojson_in_the_browser(context, server):
    """The region map: the tile grid of the demo run (its ONS rule flags nothing: no pattern);
    the run rated by the cv_bands rule with the spec's GeoJSON areas (``demo-cv``, see
    :func:`_add_cv_run`): the areas are drawn instead of the tiles, the flagged ones with an SVG
    pattern fill (as many as its table flags and publishes) and a legend entry; the scale toggle
    changes the colour bar; in French and Spanish no English word of the map is left."""
    import pandas as pd

    from survey.i18n import translate

    root = Path(server.outputs)
    demo = pd.read_parquet(root / "demo" / "indicators.parquet")
    exp = demo[(demo.indicator == "prevalence") & (demo.crime_type == "robbery") & (demo.domain == "region")]
    table = pd.read_parquet(root / CV_RUN / "indicators.parquet")
    cv_exp = table[(table.indicator == "prevalence") & (table.crime_type == "robbery") & (table.domain == "region")]
    flagged = cv_exp[(cv_exp.flag_reason != "") & ~cv_exp.suppressed & ~cv_exp.flag_reason.str.startswith("no sample")]
    assert len(flagged), "the cv_bands rule flags robbery by region"
    d = _open(context, server, "victimization")
    page = d.page
    try:
        _go(d, run="demo", indicator="prevalence", crime="robbery", domain="region")
        tiles = _map_when(d)
        assert tiles["fills"] == len(exp) and tiles["patterned"] == 0 and tiles["minx"] < 1  # the tile grid
        assert tiles["colorbar"] == "%"
        _go(d, run=CV_RUN, indicator="prevalence", crime="robbery", domain="region")
        drawn = _map_when(d, lambda m: m["minx"] > 5)
        assert drawn["fills"] == len(cv_exp) and drawn["patterned"] == len(flagged) and drawn["patterns"] >= 1, drawn
        assert drawn["minx"] > 5  # the GeoJSON areas: longitudes 10-13 (scaled), not tile columns 0-3
        assert translate("charts.legend_flagged", "en", mark="†") in drawn["legend"]
        d.shot("map-hatched")
        d.select("scale", "national")
        centred = _map_when(d, lambda m: "national" in m["colorbar"])
        assert centred["colorbar"] != drawn["colorbar"] and "national" in centred["colorbar"]
        assert centred["patterned"] == len(flagged)
        d.shot("map-centred")
        english = {translate(k, "en", mark="†", unit="%", value="1") for k in (
            "charts.legend_flagged", "charts.legend_empty", "charts.scale_zero", "charts.scale_national",
            "charts.filter_scale")}
        for lang in ("fr", "es"):
            _go(d, language=lang)
            legend = translate("charts.legend_flagged", lang, mark="†")
            text = d.page.inner_text(d.root) + " " + _map_when(d, lambda m, x=legend: x in m["legend"])["text"] + " ".join(
                d.page.evaluate("sel => [...document.querySelectorAll(sel + ' option')].map(o => o.textContent)",
                                d.root))
            left = sorted(w for w in english if w in text)
            assert not left, f"{lang}: English left on the map: {left}"
            assert legend in text
            d.shot(f"map-{lang}")
        d.assert_clean()
    finally:
        page.close()


def test_geojson_hole_is_not_painted_over_in_chromium(chromium):
    """An area with a hole (test_dashboard_app.HOLED: a square ring around an enclave, every
    ring wound the same way in the file) drawn by charts.area_map with plotly.js in Chromium:
    the pixel in the hole (outside the enclave) is the background, the ring and the enclave
    have their own colours. Without a server: the figure in a page of its own."""
    import json

    import pandas as pd
    import plotly.offline
    from test_dashboard_app import HOLED

    from survey.i18n import Translator

    rows = pd.DataFrame({"domain_value": ["Ring", "Enclave"], "estimate": [10.0, 30.0], "ci_low": [8.0, 25.0],
                         "ci_high": [12.0, 35.0], "suppressed": False, "flag_reason": "", "measure": "%", "n": 500})
    shapes = charts.geojson_shapes(HOLED)
    fig = charts.area_map(rows, shapes, ["Ring", "Enclave"], Translator("en"), "T", "%")
    fills = {t["meta"]["domain_value"]: t["fillcolor"] for t in fig["data"] if t.get("fill") == "toself"}
    k = shapes["Enclave"][0][0][0] / 11.5
    points = {"hole": (11.2 * k, 1.2), "ring": (10.4 * k, 3.6), "enclave": (12.0 * k, 2.0)}
    page_html = ("<html><body style='margin:0;background:white'><div id='g'></div><script>"
                 + plotly.offline.get_plotlyjs() + "</script></body></html>")
    page = chromium.new_page()
    try:
        page.set_viewport_size({"width": 700, "height": 520})
        page.set_content(page_html)
        spec = json.loads(charts.to_json(fig))
        page.evaluate("f => Plotly.newPlot('g', f.data, Object.assign(f.layout, {width: 700, height: 500}),"
                      " {staticPlot: true})", spec)
        where = page.evaluate("""pts => { const g = document.getElementById('g'), L = g._fullLayout,
            r = g.getBoundingClientRect(), out = {};
            for (const [k, [x, y]] of Object.entries(pts))
                out[k] = [r.left + L._size.l + L.xaxis.l2p(x), r.top + L._size.t + L.yaxis.l2p(y)];
            return out; }""", points)
        png = base64.b64encode(page.screenshot()).decode("ascii")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "geojson-hole.png"))
        seen = page.evaluate("""async ([src, where]) => { const img = new Image(); img.src = src; await img.decode();
            const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
            const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0), out = {};
            for (const [k, [x, y]] of Object.entries(where))
                out[k] = Array.from(ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data).slice(0, 3);
            return out; }""", ["data:image/png;base64," + png, where])
    finally:
        page.close()

    def rgb(colour):
        return [round(v) for v in charts._rgb(colour)]

    def near(a, b):
        return all(abs(x - y) <= 3 for x, y in zip(a, b, strict=True))

    assert near(seen["hole"], [255, 255, 255]), seen
    assert near(seen["ring"], rgb(fills["Ring"])), (seen, fills)
    assert near(seen["enclave"], rgb(fills["Enclave"])), (seen, fills)
