"""The dashboard site with the keyboard only, and the accessibility of its reader-facing pages:
`survey dashboard` on a free loopback port with the `publication` root (a real batch run),
driven by headless Debian Chromium through Python playwright (no browser download).

- landing page: Tab reaches the skip link first (visible when focused), Enter on it moves focus
  to the main content, the next Tab reaches the first dashboard link, Enter opens the dashboard;
- in the dashboard: Tab reaches the filters in the order they are laid out, each with a visible
  focus indicator; the arrow keys change a filter and the table changes; focus stays on the
  filter after the re-render and is never trapped (Tab and Shift+Tab always move on);
- the access-code page (a server with a token) works with the keyboard: a wrong code says so,
  the right one opens the landing page;
- axe-core: no WCAG 2.0/2.1 A or AA violation on the landing and access-code pages in English,
  French and Spanish; no horizontal scroll at 390 px.

Without /usr/bin/chromium (or playwright) the tests skip with the reason, unless
$SURVEY_REQUIRE_BROWSER is set, then they fail. Screenshots: test-output/screenshots/.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _browser import AXE, LOOPBACK, ROOT, SHOTS, chromium_context, need_axe, need_browser, served_dashboards

from survey import serve

PUBLISHER = "Office of Crime Statistics"
TOKEN = "kbd-" + secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):
    """The open site (loopback, no token)."""
    need_browser()
    publication = request.getfixturevalue("publication")
    folder = tmp_path_factory.mktemp("kbd-site")
    with serve.ServerProcess(publication, "--max-kernels", "20", "--max-kernels-per-client", "20",
                             "--publisher", PUBLISHER, dashboards=served_dashboards(folder / "dashboards"), timeout=240,
                             log_path=folder / "voila.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def locked_site(request, tmp_path_factory):
    """The same site behind an access code (no preheated kernels: only its pages are used)."""
    need_browser()
    publication = request.getfixturevalue("publication")
    folder = tmp_path_factory.mktemp("kbd-locked")
    with serve.ServerProcess(publication, "--pool-size", "0", "--token", TOKEN, "--publisher", PUBLISHER,
                             dashboards=served_dashboards(folder / "dashboards"), timeout=240,
                             log_path=folder / "voila.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with chromium_context(viewport={"width": 1280, "height": 900}, locale="en-US") as ctx:
        yield ctx


@pytest.fixture
def page(browser):
    pg = browser.new_page()
    pg.requests = []
    pg.errors = []
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda e: pg.errors.append(f"page error: {e}"))
    yield pg
    pg.close()


# document.title and lang each time the title changes, from the document's creation on, and
# whether the dashboard's widgets were there yet (page.add_init_script: runs before the page's
# own scripts, so the first entry is the title as the server sent it)
TITLE_WATCH = """(() => {
    window.__svyTitles = [];
    let last = null;
    const note = () => {
        const t = document.title;
        if (t && t !== last) {
            last = t;
            window.__svyTitles.push({title: t, lang: document.documentElement.lang,
                                     widgets: !!document.querySelector('.svy-dashboard .svy-title')});
        }
    };
    new MutationObserver(note).observe(document, {subtree: true, childList: true, characterData: true});
})();"""


# what has the keyboard focus: element, filter it belongs to, focus indicator, position
FOCUSED = """() => {
    const e = document.activeElement;
    if (!e || e === document.body || e === document.documentElement) return {tag: 'body'};
    const s = getComputedStyle(e), r = e.getBoundingClientRect();
    const f = e.closest('[class*="svy-filter-"]');
    const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
    return {tag: e.tagName.toLowerCase(), id: e.id, cls: String(e.className || ''), href: e.getAttribute('href'),
            text: (e.innerText || e.textContent || '').trim().slice(0, 80),
            filter: f ? [...f.classList].find(c => c.startsWith('svy-filter-')).slice(11) : null,
            indicator: (outline ? 'outline ' + s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor : '')
                       + (s.boxShadow && s.boxShadow !== 'none' ? ' shadow ' + s.boxShadow : ''),
            top: Math.round(r.top + scrollY), left: Math.round(r.left + scrollX), width: r.width, height: r.height,
            in_view: r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth && r.width > 0};
}"""

# the same element's indicator when it does not have the focus (to tell a focus style from a border)
UNFOCUSED = """sel => {
    const e = document.querySelector(sel); const s = getComputedStyle(e);
    const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
    return (outline ? 'outline ' + s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor : '')
           + (s.boxShadow && s.boxShadow !== 'none' ? ' shadow ' + s.boxShadow : '');
}"""


def focused(page) -> dict:
    return page.evaluate(FOCUSED)


def tab(page, back: bool = False) -> dict:
    page.keyboard.press("Shift+Tab" if back else "Tab")
    return focused(page)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def axe_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""() => axe.run(document,
        {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
        .then(r => r.violations.map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')))""")


def only_loopback(page) -> list[str]:
    return sorted({u for u in page.requests if not u.startswith(("data:", "blob:", "about:"))
                   and (urlsplit(u).hostname or "") not in LOOPBACK})


# ---------------------------------------------------------------------------------------------
# keyboard only: landing page -> dashboard -> filters
# ---------------------------------------------------------------------------------------------
def test_keyboard_only_from_the_landing_page_to_a_filter_change(site, page):
    page.goto(site.base)
    # 1. the skip link comes first, shows itself when focused, and moves focus to the content
    f = tab(page)
    assert f["tag"] == "a" and "skip" in f["cls"] and f["href"] == "#main", f
    assert f["in_view"] and f["top"] >= 0 and f["indicator"], f
    assert f["text"] == "Skip to the dashboards"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # 2. the next Tab is the first dashboard link, then the second; Shift+Tab goes back
    first = tab(page)
    assert first["tag"] == "a" and first["href"].endswith("voila/render/overview.ipynb?lang=en"), first
    assert first["text"] == "Overview of crime and safety" and first["indicator"], first
    second = tab(page)
    assert second["href"].endswith("voila/render/victimization.ipynb?lang=en") and second["top"] >= first["top"], second
    assert tab(page, back=True)["href"] == first["href"]
    shot(page, "landing-keyboard-focus")
    # 3. Enter opens the dashboard
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/voila/render/overview\.ipynb\?lang=en$"))
    root = ".svy-dashboard-overview"
    page.wait_for_selector(f"{root} .svy-chart .js-plotly-plot")
    # the filters a reader can use, in the order they are laid out
    filters = page.evaluate("""sel => [...document.querySelectorAll(sel + ' .svy-filters select')]
        .filter(s => !s.disabled).map(s => [...s.closest('[class*="svy-filter-"]').classList]
        .find(c => c.startsWith('svy-filter-')).slice(11))""", root)
    assert "crime" in filters and "language" in filters, filters
    # 4. Tab through the whole page: every filter is reached in layout order with a visible
    #    focus indicator; the crime filter is changed with the arrow keys on the way
    seen, reached, hrefs, classes, changed, png = [], [], [], [], None, None
    for _ in range(120):
        f = tab(page)
        if f["tag"] == "body":
            break
        assert not seen or (f["tag"], f["id"], f["cls"], f["top"], f["left"]) != seen[-1], \
            f"focus stuck on {f}"  # Tab always moves on
        seen.append((f["tag"], f["id"], f["cls"], f["top"], f["left"]))
        hrefs.append(f["href"])
        classes.append(f["filter"] if f["tag"] == "select" else None)
        if "svy-png" in f["cls"] and png is None:  # the chart as an image, with Enter
            assert f["indicator"] and f["text"] == "Download the chart as an image (PNG)", f
            with page.expect_download() as got:
                page.keyboard.press("Enter")
            png = (got.value.suggested_filename, Path(got.value.path()).read_bytes())
            assert focused(page)["cls"] == f["cls"], "focus lost after the download"
        if f["filter"] and f["tag"] == "select":
            if reached and reached[-1][0] == f["filter"]:
                continue
            reached.append((f["filter"], f["top"], f["left"]))
            other = next(n for n in filters if n != f["filter"])
            idle = page.evaluate(UNFOCUSED, f"{root} .svy-filter-{other} select")
            assert f["indicator"] and f["indicator"] != idle, f"{f['filter']}: no visible focus indicator ({f}, idle {idle!r})"
            assert f["in_view"], f
            if f["filter"] == "crime" and changed is None:
                changed = change_with_arrow_keys(page, root)
                assert focused(page)["filter"] == "crime", "focus lost after the re-render"
        if len(seen) > 3 and seen[-1] in seen[:-1]:
            break  # wrapped around to an element already visited: not trapped
    else:
        pytest.fail(f"Tab did not leave the page within 120 presses: {seen[-5:]}")
    assert [r[0] for r in reached] == filters, f"filters reached {reached}, laid out {filters}"
    for (_, t1, l1), (_, t2, l2) in zip(reached, reached[1:], strict=False):
        assert t2 > t1 + 2 or (abs(t2 - t1) <= 2 and l2 > l1), f"filter order does not follow the layout: {reached}"
    assert changed is not None, "the crime filter was not reached"
    if page.locator(f"{root} .svy-download a").count():
        assert any((h or "").startswith("data:text/csv") for h in hrefs), "the download link was not reached"
        # from the last filter to the table's download link: the chart adds no Tab stop (no
        # plotly mode bar: it used to put ten buttons here), so the link is the next stop or
        # the one after (Chromium may make the scrollable table box a stop of its own)
        first, last = classes.index(filters[0]), classes.index(filters[-1])
        link = next(i for i, h in enumerate(hrefs) if (h or "").startswith("data:text/csv"))
        between = seen[last + 1:link]
        assert link > last and link - last <= 2, f"{link - last} Tab presses from the last filter to the download: {between}"
        assert link - first <= len(filters) + 1, f"{link - first} Tab presses from the first filter to the download"
        assert not any("modebar" in c[2] for c in seen), [c for c in seen if "modebar" in c[2]]
    assert page.locator(f"{root} .svy-chart .modebar-btn").count() == 0
    # the PNG: the chart drawn at twice its size (read from the file's IHDR chunk)
    assert png is not None, "the chart's PNG button was not reached"
    name, data = png
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    box = page.locator(f"{root} .svy-chart .js-plotly-plot").first.bounding_box()
    assert name.startswith("overview-") and name.endswith(".png") and data[:8] == b"\x89PNG\r\n\x1a\n", name
    assert abs(width - 2 * box["width"]) <= 2 and abs(height - 2 * box["height"]) <= 2, (width, height, box)
    assert len(data) > 10_000, len(data)  # more than a blank canvas
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "overview-chart-download.png").write_bytes(data)
    # 5. Shift+Tab walks back from the end without being trapped
    back = [tab(page, back=True) for _ in range(3)]
    assert len({(b["tag"], b["cls"], b["top"], b["left"]) for b in back}) == 3, back
    assert page.locator("#svy-session-expired").count() == 0
    assert not only_loopback(page), only_loopback(page)
    shot(page, "overview-keyboard")


def change_with_arrow_keys(page, root: str) -> tuple[str, str]:
    """With the crime filter focused: ArrowDown picks the next crime type; the dashboard
    re-renders: the table shows other rows and the chart other data. Returns (table before,
    table after)."""
    def table():
        return page.inner_text(f"{root} .svy-table")

    def count():
        return int(page.get_attribute(f"{root} .svy-status .svy-render", "data-count"))

    def chart():
        return page.evaluate("""sel => { const g = document.querySelector(sel + ' .svy-chart .js-plotly-plot');
            return g && g.layout ? JSON.stringify([g.layout.title, g.data.map(d => [d.x, d.y])]) : ''; }""", root)

    before_table, before_count, before_chart = table(), count(), chart()
    before_value = page.evaluate("sel => document.querySelector(sel + ' .svy-filter-crime select').value", root)
    page.keyboard.press("ArrowDown")
    page.wait_for_function("([sel, n]) => +document.querySelector(sel + ' .svy-status .svy-render')?.dataset.count > n",
                           arg=[root, before_count])
    page.wait_for_function("([sel, t]) => document.querySelector(sel + ' .svy-table').innerText !== t",
                           arg=[root, before_table])
    after_value = page.evaluate("sel => document.querySelector(sel + ' .svy-filter-crime select').value", root)
    after_table = table()
    assert after_value != before_value and after_table != before_table
    page.wait_for_function("""([sel, c]) => { const g = document.querySelector(sel + ' .svy-chart .js-plotly-plot');
        return g && g.layout && JSON.stringify([g.layout.title, g.data.map(d => [d.x, d.y])]) !== c; }""",
                           arg=[root, before_chart])  # the chart was redrawn with other data
    assert after_value in after_table or after_value in page.inner_text(f"{root} .svy-title"), \
        f"the new crime type {after_value!r} is not what the table or title shows"
    return before_table, after_table


# ---------------------------------------------------------------------------------------------
# the access-code page with the keyboard
# ---------------------------------------------------------------------------------------------
def test_access_code_page_with_the_keyboard(locked_site, browser):
    browser.clear_cookies()
    page = browser.new_page()
    try:
        page.goto(locked_site.base + "?lang=fr")  # sent to the access-code page, in French
        assert urlsplit(page.url).path == "/login"
        assert page.evaluate("() => document.documentElement.lang") == "fr"
        assert page.inner_text("h1") == "Code d’accès requis"
        body = page.inner_text("body")
        assert PUBLISHER in body and not re.search(r"jupyter|token", page.content(), re.I)
        f = tab(page)
        assert "skip" in f["cls"] and f["text"] == "Aller au formulaire du code d’accès" and f["indicator"]
        page.keyboard.press("Enter")
        field = tab(page)
        assert field["tag"] == "input" and field["id"] == "svy-access-code" and field["indicator"], field
        page.keyboard.type("not-the-code")
        page.keyboard.press("Enter")
        page.wait_for_selector("#svy-login-error")
        assert page.inner_text("#svy-login-error") == "Ce code d’accès n’est pas valide. Vérifiez-le et réessayez."
        assert page.evaluate("() => document.documentElement.lang") == "fr"
        need_axe()
        assert axe_violations(page) == [], "the page with the error message"
        shot(page, "login-fr-error")
        page.keyboard.press("Tab")  # skip link
        page.keyboard.press("Enter")
        assert tab(page)["id"] == "svy-access-code"
        page.keyboard.type(TOKEN)
        page.keyboard.press("Tab")
        assert focused(page)["id"] == "svy-login-submit" and focused(page)["indicator"]
        page.keyboard.press("Enter")
        page.wait_for_selector("main h1")
        assert urlsplit(page.url).path == "/" and urlsplit(page.url).query == "lang=fr" and TOKEN not in page.url
        assert page.inner_text("h1") == "Statistiques sur la délinquance et la sécurité : tableaux de bord"
        assert TOKEN not in page.content()
    finally:
        page.close()
    assert TOKEN not in "".join(line for line in locked_site.lines if not line.startswith("dashboards: "))


# ---------------------------------------------------------------------------------------------
# axe-core, phone width and screenshots: landing and access-code pages in three languages
# ---------------------------------------------------------------------------------------------
LANDING_H1 = {"en": "Crime and safety statistics: dashboards",
              "fr": "Statistiques sur la délinquance et la sécurité : tableaux de bord",
              "es": "Estadísticas de delincuencia y seguridad: tableros"}
LOGIN_H1 = {"en": "Access code needed", "fr": "Code d’accès requis", "es": "Se necesita un código de acceso"}


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_landing_page_accessible_in_each_language(site, page, lang):
    need_axe()
    page.goto(site.base + f"?lang={lang}")
    assert page.evaluate("() => document.documentElement.lang") == lang
    assert page.inner_text("h1") == LANDING_H1[lang]
    assert page.locator(".svy-dashboard-link a").count() == len(list((ROOT / "dashboards").glob("*.ipynb")))
    assert page.locator(".svy-run").count() >= 2
    assert axe_violations(page) == []
    shot(page, f"landing-{lang}")
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= 390, f"the landing page is {width} px wide at 390 px"
    assert axe_violations(page) == []
    shot(page, f"landing-{lang}-phone")
    # the language switcher goes to the other languages
    other = {"en": "fr", "fr": "es", "es": "en"}[lang]
    page.click(f'nav a[hreflang="{other}"]')
    page.wait_for_function("l => document.documentElement.lang === l", arg=other)
    assert page.inner_text("h1") == LANDING_H1[other]
    assert not only_loopback(page) and not page.errors, (only_loopback(page), page.errors)


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_access_code_page_accessible_in_each_language(locked_site, page, lang):
    need_axe()
    page.context.clear_cookies()  # signed out (another test signed in)
    page.goto(locked_site.base + f"?lang={lang}")  # to the access-code page, in the language asked for
    assert urlsplit(page.url).path == "/login"
    assert page.evaluate("() => document.documentElement.lang") == lang
    assert page.inner_text("h1") == LOGIN_H1[lang]
    assert not re.search(r"jupyter|token", page.content(), re.I)
    assert axe_violations(page) == []
    shot(page, f"login-{lang}")
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= 390, f"the access-code page is {width} px wide at 390 px"
    shot(page, f"login-{lang}-phone")
    assert not only_loopback(page) and not page.errors, (only_loopback(page), page.errors)


def test_dashboard_follows_the_language_chosen_on_the_landing_page(site, page):
    """French chosen on the landing page: the dashboard opened from it shows itself in French
    (the same title as the dashboard built in French in-process), the document says so
    (lang, title), and its link back to the landing page keeps the language."""
    from survey.dashboard import build
    from survey.i18n import Translator

    twin = build("overview", root=site.outputs, language="fr")
    page.add_init_script(TITLE_WATCH)
    page.goto(site.base + "?lang=fr")
    with page.expect_response(lambda r: "/voila/render/overview.ipynb" in r.url) as sent:
        page.click(".svy-dashboard-link a >> nth=0")
    # from its first byte, before the widgets render, the tab shows the dashboard's title in the
    # reader's language (not the notebook's English metadata title, not the file name), and the
    # document says it is French; the page's script then puts the view's title in it
    french = Translator("fr")("app.overview.title")
    assert french != Translator("en")("app.overview.title")
    early = re.search(r"<html[^>]*>.*?<title>(.*?)</title>", sent.value.text(), re.S)
    assert early and early.group(1).strip() == french, early
    assert re.search(r'<html[^>]*\slang="fr"', early.group(0)), early.group(0)[:200]
    root = ".svy-dashboard-overview"
    page.wait_for_selector(f"{root} .svy-title h2")
    seen = page.evaluate("() => window.__svyTitles")
    assert seen and seen[0] == {"title": french, "lang": "fr", "widgets": False}, seen
    page.wait_for_selector(f"{root} .svy-chart .js-plotly-plot")
    page.wait_for_function("() => document.documentElement.lang === 'fr'")
    page.wait_for_function("([sel, t]) => document.querySelector(sel + ' .svy-title').textContent.trim() === t",
                           arg=[root, twin.view.title.strip()])
    assert page.evaluate("sel => document.querySelector(sel + ' .svy-filter-language select').value", root) == "Français"
    page.wait_for_function("t => document.title === t", arg=twin.view.title.strip())
    back = page.locator("#svy-site-nav a")
    assert back.inner_text() == "← Tous les tableaux de bord" and back.get_attribute("href") == "/?lang=fr"
    f = tab(page)  # the first stop of the page, before the filters
    assert f["text"] == "← Tous les tableaux de bord" and f["indicator"], f
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/\?lang=fr$"))
    assert page.inner_text("h1") == "Statistiques sur la délinquance et la sécurité : tableaux de bord"
