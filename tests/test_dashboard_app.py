"""The dashboard apps in-process (no browser) on a real publication (the session fixture
``publication``: the demo and two-wave parameter sets run by the real batch): the numbers shown
are the published ones, formatted per language; filters and language re-render; suppressed cells
show their reason and never a number; the CSV download is exactly what is shown; hostile widget
values are refused; no dashboard opens microdata."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from traitlets import TraitError

from survey.dashboard import APPS, DashboardInputError, Publication, build, charts
from survey.dashboard.data import MICRODATA_EXTENSIONS, PublicationError
from survey.i18n import Translator, format_ci, format_measure, format_number, format_percent

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pub(publication):
    return Publication(publication)


@pytest.fixture(scope="module")
def table(publication):
    return pd.read_parquet(publication / "demo" / "indicators.parquet")


def cells(app) -> list[list[str]]:
    return [[c.text for c in row] for row in app.view.rows]


def figure_json(app, i: int = 0) -> dict:
    return app.chart.outputs[i]["data"]["application/vnd.plotly.v1+json"]


def downloaded(app) -> tuple[str, list[str], list[list[str]]]:
    """(file name, notes, rows incl. header) decoded from the download link's data URI."""
    m = re.search(r'download="([^"]+)" href="data:text/csv;charset=utf-8;base64,([A-Za-z0-9+/=]+)"', app.download.value)
    assert m, app.download.value
    text = base64.b64decode(m.group(2)).decode("utf-8")
    notes = [ln[2:] for ln in text.splitlines() if ln.startswith("# ")]
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("# "))
    return html.unescape(m.group(1)), notes, list(csv.reader(io.StringIO(body)))


def partition(t: pd.DataFrame, indicator: str, crime: str, domain: str) -> pd.DataFrame:
    return t[(t.indicator == indicator) & (t.crime_type == crime) & (t.domain == domain)]


def a_suppressed_partition(t: pd.DataFrame):
    """A victimization partition with both suppressed and published cells (from the data)."""
    sub = t[(t.domain != "overall") & t.indicator.isin(["reporting_rate", "repeat_victims", "concentration"])]
    for (ind, crime, dom), g in sub.groupby(["indicator", "crime_type", "domain"], sort=False):
        if g.suppressed.any() and (~g.suppressed).any() and (g.suppression_reason.str.startswith("unweighted")).any():
            return ind, crime, dom
    pytest.skip("no partition with suppressed and published cells in the demo run")


# ---------------------------------------------------------------------------------------------
# the numbers shown are the published ones
# ---------------------------------------------------------------------------------------------
SPEC_REGIONS = yaml.safe_load((ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8"))[
    "domains"]["region"]


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_victimization_numbers_equal_the_indicator_table(pub, table, lang):
    app = build("victimization", root=pub.root, language=lang, run="demo")
    app.select(indicator="prevalence", crime="household", domain="region")
    expected = partition(table, "prevalence", "household", "region")
    assert len(expected) == len(app.view.rows) == 8
    for row, (_, r) in zip(cells(app), expected.iterrows()):
        # region names in the reader's language: the spec's translations (translations.csv)
        names = {} if lang == "en" else SPEC_REGIONS["translations"][lang]
        assert row[0] == names.get(r.domain_value, r.domain_value)
        assert not r.suppressed
        shown = format_measure(r.estimate, "%", lang, 1)
        assert row[1] == shown or row[1].startswith(shown + " †")
        assert row[2] == format_ci(r.ci_low, r.ci_high, lang, 1)
        assert row[3] == format_number(r.se, lang, 2)
        # CV shown = SE / estimate, by hand (not the table's cv column)
        assert row[4] == format_percent(100 * r.se / r.estimate, lang, 1)
        assert row[5] == format_number(r.n, lang, 0)
        assert row[6] == format_number(r.n_cases, lang, 0)
    fig = figure_json(app)
    bars = [d for d in fig["data"] if d["type"] == "bar"][0]
    assert bars["y"] == pytest.approx(list(expected.estimate))
    assert bars["error_y"]["array"] == pytest.approx(list(expected.ci_high - expected.estimate))
    assert bars["error_y"]["arrayminus"] == pytest.approx(list(expected.estimate - expected.ci_low))


def test_fear_numbers_and_overall_items(pub, table):
    app = build("fear", root=pub.root, language="fr", run="demo")
    app.select(crime="safe_dark", domain="sex")
    exp = partition(table, "feeling_safe", "safe_dark", "sex")
    assert [r[1] for r in cells(app)] == [format_measure(v, "%", "fr") for v in exp.estimate]
    assert [r[0] for r in cells(app)] == ["Homme", "Femme"]
    app.select(domain="overall")  # the items of the same measure only (no "very worried" under "feeling safe")
    items = table[(table.indicator == "feeling_safe") & (table.domain == "overall")]
    assert [r[1] for r in cells(app)] == [format_measure(v, "%", "fr") for v in items.estimate]
    app.select(crime="worry_burglary")
    items = table[(table.indicator == "worry") & (table.domain == "overall")]
    assert len(items) == 2 and [r[1] for r in cells(app)] == [format_measure(v, "%", "fr") for v in items.estimate]
    assert figure_json(app)["layout"]["yaxis"]["title"]["text"].startswith(Translator("fr").indicator("worry"))


def test_overview_change_since_previous_wave(publication, pub):
    cmp = pd.read_csv(publication / "synthetic-two-waves" / "comparison.csv")
    cur = pd.read_parquet(publication / "synthetic-two-waves" / "indicators.parquet")
    app = build("overview", root=pub.root, language="en", run="synthetic-two-waves")
    app.select(crime="household")
    rows = cells(app)
    assert [r[0] for r in rows] == ["Prevalence", "Incidence rate", "Reporting rate", "Feeling safe"]
    for row, ind in zip(rows, ["prevalence", "incidence", "reporting_rate", "feeling_safe"]):
        crime = "safe_dark" if ind == "feeling_safe" else "household"
        c = cmp[(cmp.indicator == ind) & (cmp.crime_type == crime) & (cmp.domain == "overall")].iloc[0]
        e = cur[(cur.indicator == ind) & (cur.crime_type == crime) & (cur.domain == "overall")].iloc[0]
        assert row[2].startswith(format_measure(e.estimate, e.measure, "en"))
        diff = format_number(c.difference, "en", 1)
        assert row[4].startswith(("+" if c.difference > 0 else "") + diff) and "since Year 1" in row[4]
        assert row[5].startswith("significant" if c.significant else "not significant")
        assert format_number(c.p_value, "en", 3) in row[5] or "< 0.001" in row[5]
    # the chart shows the previous wave as well
    names = {d.get("name") for d in figure_json(app)["data"]}
    assert "Year 1" in names and "Year 2" in names
    # a run with no previous wave says so
    app.select(run="demo")
    assert all(r[4] == "no previous wave" for r in cells(app))
    app.select(language="es")
    assert all(r[4] == "no hay ola anterior" for r in cells(app))


def test_repeat_lorenz_curves_from_lorenz_csv(publication, pub, table):
    lor = pd.read_csv(publication / "demo" / "lorenz.csv")
    app = build("repeat", root=pub.root, language="en", run="demo")
    app.select(indicator="gini", crime="personal", domain="overall")
    fig = figure_json(app)
    exp = lor[(lor.crime_type == "personal") & (lor.over == "population")]
    curve = [d for d in fig["data"] if d["name"] == "All"][0]
    assert curve["x"] == pytest.approx(list(100 * exp.population_share))
    assert curve["y"] == pytest.approx(list(100 * exp.victimization_share))
    assert "Lorenz" in charts.title_of(fig)
    gini = partition(table, "gini", "personal", "overall").iloc[0]
    by_crime = {r[0]: r[1] for r in cells(app)}  # overall: one row per crime type
    assert by_crime["Personal"] == format_measure(gini.estimate, "index", "en")
    app.select(indicator="concentration", domain="age_band")
    exp = partition(table, "concentration", "personal", "age_band")
    shown = [r[1] for r in cells(app)]
    for s, (_, r) in zip(shown, exp.iterrows()):
        if r.suppressed:
            assert s.startswith("suppressed: ")
        else:
            assert s.startswith(format_measure(r.estimate, "ratio", "en"))


def test_risk_forest_and_performance(publication, pub):
    models = pd.read_csv(publication / "demo" / "risk_models.csv")
    perf = pd.read_csv(publication / "demo" / "risk_performance.csv")
    app = build("risk", root=pub.root, language="en", run="demo")
    app.select(crime="personal", indicator="odds_ratio")
    exp = models[(models.crime_type == "personal") & (models.term != "Intercept")]
    assert [r[2] for r in cells(app)] == [format_number(v, "en", 2) for v in exp.odds_ratio]
    # the reference category of each term, from risk_models.csv's reference column
    assert [r[1] for r in cells(app)] == [x.split(": ", 1)[1].removesuffix(" (reference)") for x in exp.reference]
    fig = figure_json(app)
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert fig["data"][0]["x"] == pytest.approx(list(exp.odds_ratio))
    assert cells(app)[0][0] == exp.label.iloc[0]  # "Sex: Female", rebuilt from the term and translated
    app.select(indicator="auc", domain="sex")
    exp = perf[(perf.crime_type == "personal") & (perf.subgroup == "sex")]
    assert [r[0] for r in cells(app)] == ["Male", "Female"]
    assert [r[5] for r in cells(app)] == [format_number(v, "en", 3) for v in exp.auc]
    fig = figure_json(app)  # AUC on a fixed 0-1 axis with the 0.5 line of a model no better than chance
    assert fig["layout"]["yaxis"]["range"] == [0, 1]
    assert fig["layout"]["shapes"][0]["y0"] == 0.5
    app.select(domain="overall")
    assert " by " not in charts.title_of(figure_json(app))
    app.select(domain="sex", language="fr")
    assert [r[0] for r in cells(app)] == ["Homme", "Femme"]
    assert [r[5] for r in cells(app)] == [format_number(v, "fr", 3) for v in exp.auc]


# ---------------------------------------------------------------------------------------------
# filters, language
# ---------------------------------------------------------------------------------------------
def test_changing_a_filter_changes_the_figure_and_rerenders(pub):
    app = build("victimization", root=pub.root, language="en", run="demo")
    app.select(indicator="prevalence", crime="household", domain="region")
    before, count = figure_json(app), app.render_count
    assert f'data-count="{count}"' in app.status.value
    app.widgets["domain"].value = "tenure"  # as the browser would
    after = figure_json(app)
    assert app.render_count == count + 1 and f'data-count="{count + 1}"' in app.status.value
    assert after["data"][0]["x"] != before["data"][0]["x"]
    assert "Tenure" in charts.title_of(after) and "Region" in charts.title_of(before)
    app.widgets["crime"].value = "burglary"
    assert "Domestic burglary" in charts.title_of(figure_json(app))
    # dependent options follow: person-only domains are offered for a personal crime
    app.select(crime="assault")
    assert "sex" in [v for _, v in app.widgets["domain"].options]


@pytest.mark.parametrize("name", sorted(APPS))
def test_switching_language_relabels_everything(pub, name):
    app = build(name, root=pub.root, language="en", run="demo")
    en = (app.title.value, json.dumps(figure_json(app)["layout"]), app.table.value, app.notes.value,
          [w.description for w in app.widgets.values()])
    en_options = {k: list(w.options) for k, w in app.widgets.items()}
    app.widgets["language"].value = "fr"
    fr = (app.title.value, json.dumps(figure_json(app)["layout"]), app.table.value, app.notes.value,
          [w.description for w in app.widgets.values()])
    for a, b in zip(en, fr):
        assert a != b
    assert "Langue" in fr[4] and "Language" in en[4]
    # same codes, translated labels
    for k, w in app.widgets.items():
        assert [v for _, v in w.options] == [v for _, v in en_options[k]]
    app.select(language="es")
    assert "Idioma" in [w.description for w in app.widgets.values()]
    layout = figure_json(app)["layout"]
    assert layout["separators"] == ",."


def test_axis_titles_are_translated(pub):
    app = build("victimization", root=pub.root, language="es", run="demo")
    app.select(indicator="incidence", crime="personal", domain="age_band")
    layout = figure_json(app)["layout"]
    assert layout["xaxis"]["title"]["text"] == "Edad"
    assert layout["yaxis"]["title"]["text"] == "Tasa de incidencia (por 1.000)"
    assert charts.title_of({"layout": layout}).startswith("Tasa de incidencia: Delitos contra las personas según Edad")


# ---------------------------------------------------------------------------------------------
# suppressed and flagged cells
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang, word", [("en", "suppressed"), ("fr", "supprimé"), ("es", "suprimido")])
def test_suppressed_cells_show_the_reason_never_a_number(pub, table, lang, word):
    ind, crime, dom = a_suppressed_partition(table)
    exp = partition(table, ind, crime, dom)
    app = build("victimization", root=pub.root, language=lang, run="demo")
    app.select(indicator=ind, crime=crime, domain=dom)
    fig = figure_json(app)
    bars = [d for d in fig["data"] if d["type"] == "bar"][0]
    annotations = [a["text"] for a in fig["layout"].get("annotations", [])]
    assert annotations.count(Translator(lang)("chart.suppressed_mark")) == int(exp.suppressed.sum())
    for row, y, (_, r) in zip(app.view.rows, bars["y"], exp.iterrows()):
        if r.suppressed:
            assert y is None
            assert row[1].cls == "svy-suppressed" and row[1].text.startswith(word)
            reason = Translator(lang).reason(r.suppression_reason, r.n)
            assert reason in row[1].text and str(r.n) in reason
            assert row[2].text == ""  # no interval either
            assert f'<td class="svy-suppressed">{html.escape(row[1].text)}</td>' in app.table.value
        else:
            assert y == pytest.approx(r.estimate)
            assert row[1].cls != "svy-suppressed"
    # the suppressed values are withheld in the data too: nothing could leak
    assert exp.loc[exp.suppressed, "estimate"].isna().all()


def fig_dict(fig) -> dict:
    return json.loads(fig.to_json())


def test_flagged_cells_show_the_number_with_a_marker_and_the_reason(publication, table):
    """The demo rule (ons) flags cells with no sample case; check a flagged cell end to end."""
    flagged = table[(table.flag_reason != "") & ~table.suppressed & (table.domain != "overall")
                    & table.indicator.isin(["prevalence", "incidence"])]
    if flagged.empty:
        pytest.skip("no flagged published cell in the demo run")
    no_case = flagged[flagged.flag_reason.str.startswith("no sample case")]
    flagged = flagged[~flagged.flag_reason.str.startswith("no sample case")]
    for _, r in flagged.head(1).iterrows():
        app = build("victimization", root=publication, language="en", run="demo")
        app.select(indicator=r.indicator, crime=r.crime_type, domain=r.domain)
        row = next(row for row in app.view.rows if row[0].text == Translator("en").value(r.domain_value))
        assert row[1].cls == "svy-flagged"
        assert row[1].text.startswith(format_measure(r.estimate, r.measure, "en")) and "†" in row[1].text
        assert Translator("en").reason(r.flag_reason) in row[1].text
        bars = [d for d in figure_json(app)["data"] if d["type"] == "bar"][0]
        i = bars["x"].index(row[0].text)
        assert bars["marker"]["pattern"]["shape"][i] == "/" and bars["text"][i] == "†"
    for _, r in no_case.head(1).iterrows():  # no sample case: said in words, no 0.0% and no interval
        app = build("victimization", root=publication, language="en", run="demo")
        app.select(indicator=r.indicator, crime=r.crime_type, domain=r.domain)
        row = next(row for row in app.view.rows if row[0].text == Translator("en").value(r.domain_value))
        assert row[1].text == "no sample case (no interval)" and row[2].text == ""
        assert "0.0" not in " ".join(c.text for c in row[1:5])
        bars = [d for d in figure_json(app)["data"] if d["type"] == "bar"][0]
        assert bars["y"][bars["x"].index(row[0].text)] is None


# ---------------------------------------------------------------------------------------------
# download = what is shown
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(APPS))
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_csv_download_is_exactly_the_rows_shown_with_notes(pub, name, lang):
    app = build(name, root=pub.root, language=lang, run="demo")
    fname, notes, rows = downloaded(app)
    assert fname.endswith(".csv") and "demo" in fname and lang in fname
    assert rows[0] == app.view.columns
    assert rows[1:] == cells(app)
    assert len(rows) > 1
    # the rows shown in the HTML table, in the same order
    shown = re.findall(r"<tr>(.*?)</tr>", app.table.value)
    assert len(shown) == len(rows)  # header + rows
    for tr_html, row in zip(shown[1:], rows[1:]):
        assert [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr_html)] == row
    tr = Translator(lang)
    joined = "\n".join(notes)
    assert joined.startswith(tr("note.definition", text="").rstrip()) or name == "risk"
    assert tr("note.source", source="").strip().rstrip(":").strip() in joined
    # reader-facing text only: no run id, file name, path or internals
    for internal in ("demo/", ".parquet", ".csv", "Run:", "truth", "SE of 0", "`"):
        assert internal not in joined, internal
    assert notes == [html.unescape(n) for n in re.findall(r"<li>(.*?)</li>", app.notes.value)]


# ---------------------------------------------------------------------------------------------
# untrusted input
# ---------------------------------------------------------------------------------------------
HOSTILE = ["../../data/synthetic", "../demo", "/etc/passwd", "demo/../../data", "region or 1 == 1",
           "indicator == 'x' or @__import__('os').system('id')", "prevalence; DROP TABLE", "", "x" * 500]


@pytest.mark.parametrize("name", sorted(APPS))
def test_hostile_widget_values_are_refused(pub, name):
    app = build(name, root=pub.root, language="en", run="demo")
    state, count, fig = dict(app.state), app.render_count, figure_json(app)
    for filt in app.filters:
        for bad in HOSTILE + [None, 3, ["demo"], {"run": "demo"}]:
            with pytest.raises(DashboardInputError):
                app.select(**{filt: bad})
            assert app.state == state and app.render_count == count
    with pytest.raises(DashboardInputError):
        app.select(output_dir="/tmp")  # not a filter
    # a value from the websocket that is not an option: refused by the widget itself...
    for w in app.widgets.values():
        with pytest.raises(TraitError):
            w.value = "../../data"
    # ... and if an observer ever saw one, the app refuses it, says so and keeps its state
    app._on_widget({"owner": app.widgets["run"], "new": "../../data", "name": "value"})
    assert app.state == state and "refused run" in app.status.value and figure_json(app) == fig
    assert app.widgets["run"].value == "demo"


def test_data_layer_opens_only_published_files(pub, publication, tmp_path):
    run = pub.run("demo")
    for bad in ("../demo", "demo/..", "..", "/tmp", "_logs", ".hidden"):
        with pytest.raises(DashboardInputError):
            pub.run(bad)
    for bad in ("../../data/synthetic/households.sav", "households.sav", "run.log", "indicators.xlsx", "summary.ipynb"):
        with pytest.raises(PublicationError):
            run.path(bad)
    # a run folder symlinked to somewhere else is not a run
    (publication / "evil").symlink_to(ROOT / "data", target_is_directory=True)
    try:
        assert "evil" not in Publication(publication).run_names()
    finally:
        (publication / "evil").unlink()
    # schema check
    bad_root = tmp_path / "bad-publication"
    bad = bad_root / "broken"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "manifest.json").write_text(json.dumps({"status": "succeeded"}))
    pd.DataFrame({"indicator": ["prevalence"]}).to_parquet(bad / "indicators.parquet")
    with pytest.raises(PublicationError, match="missing column"):
        _ = Publication(bad_root).run("broken").indicators


# ---------------------------------------------------------------------------------------------
# speed: figures are plain dicts equal to plotly's own, only changed widget state is sent, and a
# dashboard kernel imports neither scipy nor plotly's graph objects
# ---------------------------------------------------------------------------------------------
def _each_option(app, per_filter: int = 4):
    """Walk a few options of every filter but the language (each run first)."""
    for run in app.pub.run_names():
        app.select(run=run)
        yield
        for f in app.filters:
            if f in ("run", "language"):
                continue
            for _, code in list(app.widgets[f].options)[:per_filter]:
                app.select(**{f: code})
                yield


@pytest.mark.parametrize("name", sorted(APPS))
def test_figure_dicts_are_what_plotly_makes_of_them(pub, name):
    """Every figure sent is valid for plotly and unchanged by its validation: the JSON of the
    plain dict equals ``go.Figure(dict).to_json()`` (so skipping graph objects changes nothing)."""
    app = build(name, root=pub.root, language="fr")
    seen = 0
    for _ in _each_option(app, per_filter=3):
        for i, (out, fig) in enumerate(zip(app.chart.outputs, app.figures)):
            sent = dict(figure_json(app, i))
            assert sent.pop("config") == {"displaylogo": False, "responsive": True, "displayModeBar": False}
            assert sent == json.loads(fig.to_json()), (name, app.state, i)
            assert out["data"]["text/plain"] == f"<plotly figure: {charts.title_of(fig_dict(fig))}>"
            seen += 1
    assert seen


def test_subplot_layout_and_template_equal_plotly():
    import plotly.io as pio
    from plotly.subplots import make_subplots

    from survey.dashboard import charts

    assert charts._template() == pio.templates["plotly_white"].to_plotly_json()
    for titles in (["a"], ["a", "b"], ["a", "b", "c"], ["Prévalence", "b", "c", "d"], list("abcde"), list("abcdef"),
                   ["a", "", "c"]):
        want = make_subplots(rows=1, cols=len(titles), subplot_titles=titles,
                             horizontal_spacing=0.08).layout.to_plotly_json()
        want.pop("template", None)
        assert json.loads(json.dumps(charts._subplots(titles))) == json.loads(json.dumps(want)), titles
    assert json.loads(charts.to_json({"x": [1.5, float("nan"), float("inf")], "t": "NaN"})) == {
        "x": [1.5, None, None], "t": "NaN"}


def test_indicator_schema_is_the_indicator_table_schema():
    from survey.dashboard.data import INDICATOR_COLUMNS
    from survey.indicators import TABLE_COLUMNS

    assert INDICATOR_COLUMNS == TABLE_COLUMNS


@pytest.mark.parametrize("name", sorted(APPS))
def test_a_filter_change_sends_only_what_changed(pub, name, monkeypatch):
    """A change from the browser re-sends no dropdown whose options are unchanged, and each
    rendered widget at most once (every comm message costs a round in the browser)."""
    import ipywidgets as W

    app = build(name, root=pub.root, language="en")
    f = next(f for f in app.filters if f not in ("run", "language") and len(app.widgets[f].options) > 1)
    sent = []
    orig = W.Widget._send
    monkeypatch.setattr(W.Widget, "_send", lambda self, msg, buffers=None: (
        sent.append((self, sorted(msg.get("state", {})))), orig(self, msg, buffers))[1])
    for _, code in list(app.widgets[f].options)[1:4]:
        before = {n: list(w.options) for n, w in app.widgets.items()}
        sent.clear()
        app.widgets[f].value = code  # as from the browser
        for n, w in app.widgets.items():
            keys = [k for s, k in sent if s is w]
            if list(w.options) == before[n]:
                assert not any("_options_labels" in k for k in keys), (n, keys)
        counts = {}
        for s, _ in sent:
            counts[id(s)] = counts.get(id(s), 0) + 1
        assert max(counts.values()) == 1, [(type(s).__name__, s._dom_classes, k) for s, k in sent]


def test_a_dashboard_kernel_imports_no_estimation_modules(publication):
    """The dashboards import neither scipy (the estimation modules) nor plotly's graph objects:
    a cold kernel starts faster. ``survey``'s estimation names still load on first use."""
    import subprocess
    import sys

    code = (f"import sys; from survey.dashboard import build; build('overview', root={str(publication)!r}); "
            f"build('victimization', root={str(publication)!r}); "
            "print(sorted(m for m in ('scipy', 'scipy.stats', 'plotly.graph_objs', 'survey.design') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    code = ("import survey as sv, survey.contrast, survey.indicators; from survey import Design, difference; "
            "import survey.contrast as c; "
            "print(callable(sv.contrast) and sv.contrast is c and sv.Design is Design and sv.difference is difference "
            "and 'Design' in dir(sv) and sv.RESULT_COLUMNS == sv.estimate.RESULT_COLUMNS)")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stdout + out.stderr


# ---------------------------------------------------------------------------------------------
# no microdata: every dashboard notebook executed under an 'open' audit hook
# ---------------------------------------------------------------------------------------------
HOOK = r'''
import sys, json
_OPENED = []
def _audit(event, args):
    if event == "open" and args and args[0] is not None and not isinstance(args[0], int):
        _OPENED.append(str(args[0]))
sys.addaudithook(_audit)
# readers that open files in C (pyarrow, pyreadstat) do not raise the audit event: record their paths
import pandas as _pd
def _rec(name, f):
    def wrapper(path, *a, **k):
        _OPENED.append(str(getattr(path, "name", path)))
        return f(path, *a, **k)
    return wrapper
for _n in ("read_parquet", "read_csv", "read_spss", "read_stata", "read_sas", "read_excel"):
    setattr(_pd, _n, _rec(_n, getattr(_pd, _n)))
try:
    import pyreadstat as _prs
    for _n in ("read_sav", "read_dta", "read_sas7bdat", "read_xport", "read_por", "read_file_multiprocessing"):
        if hasattr(_prs, _n):
            setattr(_prs, _n, _rec(_n, getattr(_prs, _n)))
except ImportError:
    pass
'''
DUMP = "import json as _j; print('OPENED=' + _j.dumps(_OPENED))"


@pytest.mark.parametrize("name", sorted(APPS))
def test_dashboard_notebook_opens_no_microdata(publication, name, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("SURVEY_DASHBOARD_OUTPUTS", str(publication))
    monkeypatch.setenv("SURVEY_DASHBOARD_LANGUAGE", "fr")
    nb = nbformat.read(ROOT / "dashboards" / f"{name}.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(HOOK))
    nb.cells.append(nbformat.v4.new_code_cell(
        "app.select(language='en'); [app.select(**{f: v}) for f in app.filters if f not in ('run', 'language') "
        "for v in app.allowed(f, app.state)[:2]]"))
    nb.cells.append(nbformat.v4.new_code_cell(DUMP))
    NotebookClient(nb, kernel_name="python3", timeout=180,
                   resources={"metadata": {"path": str(ROOT / "dashboards")}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    shown = [o for o in nb.cells[-3].outputs if o.output_type == "display_data"]
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in shown)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    opened = json.loads(text.split("OPENED=", 1)[1].strip())
    assert any(p.endswith("indicators.parquet") for p in opened), opened  # the recorder works
    data = (ROOT / "data").resolve()
    bad = [p for p in opened if p.lower().endswith(MICRODATA_EXTENSIONS)
           or Path(p).resolve().is_relative_to(data)]
    assert not bad, bad
    published = [Path(p).resolve() for p in opened if Path(p).resolve().is_relative_to(publication.resolve())]
    assert published and all(p.name in {"manifest.json", "indicators.parquet", "indicators.meta.json", "lorenz.csv",
                                         "risk_models.csv", "risk_performance.csv", "comparison.csv",
                                         "tile_grid.csv", "trend.csv", "translations.csv"}
                             for p in published), published


def rerated(table: pd.DataFrame, preset: str = "cv_bands") -> pd.DataFrame:
    """The demo run's indicator table under another publication rule (survey.quality): the
    cv_bands rule flags the cells whose CV is above 30% and publishes them, so that the charts
    have flagged cells to draw (the demo's ONS rule suppresses small bases and flags none)."""
    from survey.quality import apply_rule

    t = apply_rule(table, preset)
    t.attrs = {}
    return t


def _demo_copy(tmp_path, publication, preset: str | None = "cv_bands"):
    """(root, table): a copy of the demo run (aggregate files only) in a fresh publication
    root, its indicator table re-rated by ``preset`` (None: as published)."""
    import shutil

    root = tmp_path / "outputs"
    shutil.copytree(publication / "demo", root / "demo",
                    ignore=shutil.ignore_patterns("*.html", "*.ipynb", "*.js", "*.xlsx", "areas.geojson"))
    table = pd.read_parquet(root / "demo" / "indicators.parquet")
    if preset:
        table = rerated(table, preset)
        table.to_parquet(root / "demo" / "indicators.parquet", index=False)
    return root, table


def _expected_status(exp: pd.DataFrame) -> dict:
    """Each region's status from the indicator table's columns alone."""
    out = {}
    for _, r in exp.iterrows():
        if r.suppressed:
            out[r.domain_value] = "suppressed"
        elif r.flag_reason.startswith("no sample case"):
            out[r.domain_value] = "no_case"
        else:
            out[r.domain_value] = "flagged" if r.flag_reason else "ok"
    return out


def _map_parts(fig: dict) -> tuple[dict, dict]:
    """(value -> area trace, the label/colour-bar trace) of a map figure."""
    areas = {t["meta"]["domain_value"]: t for t in fig["data"] if t.get("fill") == "toself"}
    return areas, fig["data"][-1]


MAP_PARTITIONS = [("prevalence", "robbery", "cv_bands"), ("incidence", "vandalism", "cv_bands"),
                  ("reporting_rate", "household", None), ("concentration", "burglary", None)]


@pytest.mark.parametrize("indicator,crime,preset", MAP_PARTITIONS)
def test_tile_map_hatches_exactly_the_flagged_regions(tmp_path, publication, indicator, crime, preset):
    """The run's tile grid (tile_grid.csv, from the spec) gets a map next to the bars: the
    regions the indicator table flags (and publishes) are hatched, with a legend entry, and no
    other; suppressed regions are grey, say so and have no value (never a colour of 0); the
    colour scale runs from 0 to the largest value, the unit on the colour bar.  The demo run,
    as published (ONS rule: suppressed cells) and re-rated by the cv_bands rule (flagged cells)."""
    root, table = _demo_copy(tmp_path, publication, preset)
    app = build("victimization", root=root, language="fr", run="demo")
    app.select(indicator=indicator, crime=crime, domain="region")
    assert len(app.figure_specs) >= 2
    fig = next(f for f in app.figure_specs if charts.title_of(f).startswith("Carte"))
    exp = partition(table, indicator, crime, "region")
    status = _expected_status(exp)
    if preset:
        assert "flagged" in status.values()  # the test has something to find
    areas, labels = _map_parts(fig)
    assert set(areas) == set(status) == set(exp.domain_value)
    hatched = {v for v, t in areas.items() if t.get("fillpattern", {}).get("shape") == "/"}
    assert hatched == {v for v, s in status.items() if s == "flagged"}
    empty = {v for v, s in status.items() if s in ("suppressed", "no_case")}
    assert {v for v, t in areas.items() if t["fillcolor"] == charts.EMPTY_FILL} == empty
    by_value = dict(zip(exp.domain_value, exp.estimate))
    values = [t["meta"]["domain_value"] for t in areas.values()]
    for v, z, text in zip(values, labels["marker"]["color"], labels["text"]):
        if v in empty:
            assert charts._f(z) is None and ("supprimé" in text or "aucun cas" in text)
        else:
            assert z == pytest.approx(by_value[v])
    names = [t.get("name") for t in fig["data"] if t.get("showlegend")]
    if hatched:
        assert Translator("fr")("charts.legend_flagged", mark="†") in names
    if empty:
        assert Translator("fr")("charts.legend_empty") in names
    published = [by_value[v] for v in values if v not in empty]
    assert labels["marker"]["cmin"] == 0 and labels["marker"]["cmax"] == pytest.approx(max(published, default=1.0))
    assert labels["marker"]["colorbar"]["title"]["text"] == Translator("fr").measure(exp.measure.iloc[0])
    if published:  # by hand: the largest value gets the darkest blue of the scale
        top = max((v for v in values if v not in empty), key=lambda v: by_value[v])
        assert areas[top]["fillcolor"] == "rgb(8,48,107)"
        hover = labels["hovertext"][values.index(top)]
        r = exp[exp.domain_value == top].iloc[0]
        assert format_ci(r.ci_low, r.ci_high, "fr", 1) in hover
    app.select(domain="tenure")  # no map for another domain
    assert not any(charts.title_of(f).startswith("Carte") for f in app.figure_specs)


def test_map_scale_centred_on_the_national_value(tmp_path, publication):
    """The explorer's colour-scale toggle: centred on the national value, the diverging scale's
    midpoint is the published national (overall) estimate, its ends equally far from it (the
    region farthest from it gets an end colour); the colour bar says so; a domain without a
    map offers only the zero-based scale; a value that is not an option is refused."""
    root, table = _demo_copy(tmp_path, publication)
    app = build("victimization", root=root, language="en", run="demo")
    app.select(indicator="prevalence", crime="household", domain="region")
    assert [c for _, c in app.widgets["scale"].options] == ["zero", "national"]
    zero = _map_parts(app.figure_specs[1])[1]["marker"]
    app.select(scale="national")
    fig = app.figure_specs[1]
    areas, labels = _map_parts(fig)
    national = partition(table, "prevalence", "household", "overall").estimate.iloc[0]
    m = labels["marker"]
    assert m["cmid"] == pytest.approx(national) and (m["cmin"] + m["cmax"]) / 2 == pytest.approx(national)
    assert m["cmid"] != zero.get("cmid") and m["cmin"] != zero["cmin"]
    exp = partition(table, "prevalence", "household", "region")
    far = exp.loc[(exp.estimate - national).abs().idxmax()]
    assert m["cmax"] - m["cmid"] == pytest.approx(abs(far.estimate - national))
    assert areas[far.domain_value]["fillcolor"] == ("rgb(103,0,31)" if far.estimate > national else "rgb(5,48,97)")
    assert f"{national:.1f}" in m["colorbar"]["title"]["text"] and "national" in m["colorbar"]["title"]["text"]
    assert any("centred on the national value" in n for n in app.view.notes)
    with pytest.raises(DashboardInputError):
        app.select(scale="log")
    app.select(domain="tenure")
    assert [c for _, c in app.widgets["scale"].options] == ["zero"] and app.state["scale"] == "zero"


def test_map_function_for_model_based_estimates(table):
    """The map function other views call (small-area estimates): a title, a note as subtitle,
    and a model-based label; a table without suppression columns draws every value."""
    tr = Translator("es")
    exp = partition(table, "prevalence", "household", "region")[["domain_value", "estimate", "ci_low", "ci_high"]]
    exp = exp.assign(flag_reason=["" if i else "cv above 30%" for i in range(len(exp))], suppressed=False)
    shapes = charts.grid_shapes(pd.DataFrame({"domain_value": exp.domain_value, "row": range(len(exp)),
                                              "col": 0}))
    fig = charts.area_map(exp, shapes, list(exp.domain_value), tr, "Mapa", "%", note="Fay-Herriot",
                          model_based=True)
    sub = fig["layout"]["title"]["subtitle"]["text"]
    assert tr("charts.model_based") in sub and "Fay-Herriot" in sub and fig["layout"]["meta"]["model_based"]
    areas, labels = _map_parts(fig)
    assert labels["marker"]["color"] == pytest.approx(list(exp.estimate))
    assert {v for v, t in areas.items() if "fillpattern" in t} == {exp.domain_value.iloc[0]}
    charts.to_figure(fig)  # valid for plotly
    # the text alternative: the title and each area's value, never the outlines' coordinates
    assert charts.describe(fig, tr) == tr("chart.text", text="Mapa — " + "; ".join(labels["hovertext"]))


# ---------------------------------------------------------------------------------------------
# GeoJSON areas declared by the spec
# ---------------------------------------------------------------------------------------------
AREAS = ROOT / "data" / "areas" / "synthetic-regions.geojson"


def _raw_spec() -> dict:
    from survey.spec import load_yaml

    return load_yaml((ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8"))


def _spec_with_areas(tmp_path, geojson: str, id_property: str = "name"):
    from survey.spec import parse_spec

    raw = _raw_spec()
    raw["domains"]["region"].update(geojson=geojson, id_property=id_property)
    return parse_spec(raw), ROOT / "specs" / "synthetic.yaml"


def test_committed_regions_geojson_is_what_its_generator_makes():
    """data/areas/synthetic-regions.geojson: rectangles made by survey.areas.grid_geojson from
    the spec's tile grid (its "source" says so), not real boundaries."""
    from survey.areas import grid_geojson

    doc = json.loads(AREAS.read_text(encoding="utf-8"))
    assert "grid_geojson" in doc["source"] and "not real boundaries" in doc["source"]
    assert doc == grid_geojson(SPEC_REGIONS["tile_grid"], "name", lon0=10.0, lat0=50.0, size=1.0, source=doc["source"])
    north = next(f for f in doc["features"] if f["properties"]["name"] == "North")  # tile [0, 1]
    xs = [p[0] for p in north["geometry"]["coordinates"][0]]
    ys = [p[1] for p in north["geometry"]["coordinates"][0]]
    assert (min(xs), max(xs), min(ys), max(ys)) == (11.0, 12.0, 49.0, 50.0)


def test_geojson_areas_published_and_drawn(tmp_path, publication):
    """A spec's GeoJSON areas (geojson + id_property) are checked against the published
    values, written as areas.geojson (domain and value only) and drawn by the explorer instead
    of the tile grid: each feature's polygon, flagged areas hatched, suppressed ones grey."""
    from types import SimpleNamespace

    from survey.report import write_indicator_table

    spec, spec_path = _spec_with_areas(tmp_path, "../data/areas/synthetic-regions.geojson")
    root, table = _demo_copy(tmp_path, publication)
    written = write_indicator_table(table, root / "demo", SimpleNamespace(spec=spec, spec_path=spec_path))
    assert root / "demo" / "areas.geojson" in written
    areas = json.loads((root / "demo" / "areas.geojson").read_text(encoding="utf-8"))
    assert sorted(f["properties"]["domain_value"] for f in areas["features"]) == sorted(SPEC_REGIONS["tile_grid"])
    assert all(set(f["properties"]) == {"domain", "domain_value"} for f in areas["features"])
    app = build("victimization", root=root, language="en", run="demo")
    app.select(indicator="prevalence", crime="robbery", domain="region")
    fig = next(f for f in app.figure_specs if charts.title_of(f).startswith("Map"))
    drawn, labels = _map_parts(fig)
    exp = partition(table, "prevalence", "robbery", "region")
    status = _expected_status(exp)
    assert "flagged" in status.values()
    assert {v for v, t in drawn.items() if "fillpattern" in t} == {v for v, s in status.items() if s == "flagged"}
    assert {v for v, t in drawn.items() if t["fillcolor"] == charts.EMPTY_FILL} == {
        v for v, s in status.items() if s in ("suppressed", "no_case")}
    # the North rectangle (lon 11-12, lat 49-50) projected: longitudes times cos(mean latitude)
    doc = json.loads(AREAS.read_text(encoding="utf-8"))
    lat0 = sum(p[1] for f in doc["features"] for p in f["geometry"]["coordinates"][0]) / sum(
        len(f["geometry"]["coordinates"][0]) for f in doc["features"])
    import math
    k = math.cos(math.radians(lat0))
    assert min(drawn["North"]["x"]) == pytest.approx(11 * k) and max(drawn["North"]["x"]) == pytest.approx(12 * k)
    assert (min(drawn["North"]["y"]), max(drawn["North"]["y"])) == (49.0, 50.0)
    assert "tile" not in json.dumps(fig)  # the GeoJSON areas, not the grid
    charts.to_figure(fig)


# a square area (lon 10-14, lat 0-4) with a square hole (11-13, 1-3) holding a second area
# (an enclave), every ring wound the same (clockwise) way, as some files have them; and a
# multi-polygon area: two islands
HOLED = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"domain_value": "Ring"}, "geometry": {"type": "Polygon", "coordinates": [
        [[10, 0], [10, 4], [14, 4], [14, 0], [10, 0]], [[11, 1], [11, 3], [13, 3], [13, 1], [11, 1]]]}},
    {"type": "Feature", "properties": {"domain_value": "Enclave"}, "geometry": {"type": "Polygon", "coordinates": [
        [[11.5, 1.5], [11.5, 2.5], [12.5, 2.5], [12.5, 1.5], [11.5, 1.5]]]}},
    {"type": "Feature", "properties": {"domain_value": "Islands"}, "geometry": {"type": "MultiPolygon", "coordinates": [
        [[[15, 0], [16, 0], [16, 1], [15, 1], [15, 0]]], [[[15, 2], [15, 3], [16, 3], [16, 2], [15, 2]]]]}}]}


def _shoelace(xs, ys) -> float:
    """Twice the signed area of a ring by hand (positive: counter-clockwise)."""
    return sum(xs[i] * ys[i + 1] - xs[i + 1] * ys[i] for i in range(len(xs) - 1))


def test_geojson_holes_are_wound_against_their_outer_ring():
    """Outer rings counter-clockwise, holes clockwise (the non-zero fill rule then leaves the
    hole unfilled), whatever the file's winding; each area one trace, its rings separated by a
    gap; an enclave drawn in the hole is an area of its own."""
    shapes = charts.geojson_shapes(HOLED)
    k = math.cos(math.radians((8 + 9 + 9.5 + 2 + 12) / 25))  # the mean latitude of the 25 points
    ring, hole = shapes["Ring"]
    assert _shoelace([p[0] for p in ring], [p[1] for p in ring]) == pytest.approx(2 * 16 * k)  # 4 x 4, ccw
    assert _shoelace([p[0] for p in hole], [p[1] for p in hole]) == pytest.approx(-2 * 4 * k)  # 2 x 2, cw
    assert [_shoelace([p[0] for p in r], [p[1] for p in r]) > 0 for r in shapes["Islands"]] == [True, True]
    assert shapes["Enclave"][0][0] == (11.5 * k, 1.5)
    rows = pd.DataFrame({"domain_value": ["Ring", "Enclave", "Islands"], "estimate": [10.0, 30.0, 20.0],
                         "ci_low": [8.0, 25.0, 15.0], "ci_high": [12.0, 35.0, 25.0], "suppressed": False,
                         "flag_reason": "", "measure": "%", "n": 500})
    fig = charts.area_map(rows, shapes, ["Ring", "Enclave", "Islands"], Translator("en"), "T", "%")
    areas = {t["meta"]["domain_value"]: t for t in fig["data"] if t.get("fill") == "toself"}
    assert areas["Ring"]["x"].count(None) == 1 and len(areas["Ring"]["x"]) == 11
    xs = areas["Ring"]["x"][6:]
    ys = areas["Ring"]["y"][6:]
    assert _shoelace(xs, ys) < 0  # the hole as drawn
    # the labels: the enclave's at its centre; the ring's not in the hole (under the enclave's)
    # but in the band around it, which is 1 wide (lon 10-11 or 13-14, or lat 0-1 or 3-4)
    text = next(t for t in fig["data"] if t.get("mode") == "markers+text")
    at = {lab.split("<br>")[0]: (x / k, y) for lab, x, y in zip(text["text"], text["x"], text["y"])}
    assert at["Enclave"] == (pytest.approx(12.0), pytest.approx(2.0))
    x, y = at["Ring"]
    assert 10 < x < 14 and 0 < y < 4 and not (11 <= x <= 13 and 1 <= y <= 3), at["Ring"]
    assert min(x - 10, 14 - x, y, 4 - y, max(11 - x, x - 13, 1 - y, y - 3)) > 0.3, at["Ring"]  # off the edges
    charts.to_figure(fig)


def test_geojson_is_an_input_of_the_run(tmp_path):
    """The GeoJSON file is one of the files a run reads (checked to exist by the parameter
    validation, hashed in the manifest, watched for changes during the run)."""
    from survey.params import data_files

    raw = (ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8")
    raw = raw.replace("    variable: region\n", f"    variable: region\n    geojson: {AREAS}\n    id_property: name\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(raw, encoding="utf-8")
    assert ("areas:region", AREAS.resolve()) in data_files({"spec": str(spec)})


def test_survey_validate_checks_the_geojson_areas(tmp_path, capsys):
    """`survey validate` makes the check a run makes when it publishes the areas: a spec whose
    GeoJSON names every region passes and says how many areas it read; a feature naming no
    region fails with one line naming the file, the property and the value."""
    from survey.cli import main

    doc = json.loads(AREAS.read_text(encoding="utf-8"))
    spec = ROOT / "specs" / f".test-validate-{tmp_path.name}.yaml"
    raw = (ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8")
    try:
        for geojson, code in ((AREAS, 0), (None, 2)):
            if geojson is None:
                doc["features"][3]["properties"]["name"] = "Atlantis"
                geojson = _bad_geojson(tmp_path, doc)
            spec.write_text(raw.replace("    variable: region\n",
                                        f"    variable: region\n    geojson: {geojson}\n    id_property: name\n"),
                            encoding="utf-8")
            assert main(["validate", str(spec)]) == code
            out, err = capsys.readouterr()
            if code == 0:
                assert f"map areas: {len(doc['features'])} GeoJSON features" in out and not err
            else:
                assert "map areas" not in out and len(err.strip().splitlines()) == 1, err
                assert "bad.geojson" in err and "'name'" in err and "Atlantis" in err and "region" in err, err
    finally:
        spec.unlink(missing_ok=True)
        shutil.rmtree(ROOT / "data" / "areas" / f".test-{tmp_path.name}", ignore_errors=True)


def _bad_geojson(tmp_path, doc) -> str:
    folder = ROOT / "data" / "areas" / f".test-{tmp_path.name}"
    folder.mkdir(exist_ok=True)
    p = folder / "bad.geojson"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return str(p)


@pytest.mark.parametrize("case,message", [
    ("missing", "not found"), ("outside", "outside the project"), ("not_json", "not JSON"),
    ("point", "is not a Polygon or MultiPolygon"), ("unknown", "is not a value code or label"),
    ("no_property", "missing or not a value"), ("too_big", "bytes, more than"), ("duplicate", "more than one feature"),
    ("not_collection", "not a GeoJSON FeatureCollection")])
def test_bad_geojson_is_one_line_naming_the_file_and_property(tmp_path, table, monkeypatch, case, message):
    import shutil

    from survey import areas as A
    from survey.errors import SurveyError

    doc = json.loads(AREAS.read_text(encoding="utf-8"))
    path = None
    try:
        if case == "missing":
            path = "../data/areas/nowhere.geojson"
        elif case == "outside":
            outside = tmp_path / "outside.geojson"
            outside.write_text(json.dumps(doc))
            path = str(outside)
        elif case == "not_json":
            path = _bad_geojson(tmp_path, "{not json")
        elif case == "point":
            doc["features"][2]["geometry"] = {"type": "Point", "coordinates": [10, 50]}
            path = _bad_geojson(tmp_path, doc)
        elif case == "unknown":
            doc["features"][0]["properties"]["name"] = "Atlantis"
            path = _bad_geojson(tmp_path, doc)
        elif case == "no_property":
            del doc["features"][1]["properties"]["name"]
            path = _bad_geojson(tmp_path, doc)
        elif case == "too_big":
            monkeypatch.setattr(A, "MAX_BYTES", 100)
            path = str(AREAS)
        elif case == "duplicate":
            doc["features"][1]["properties"]["name"] = doc["features"][0]["properties"]["name"]
            path = _bad_geojson(tmp_path, doc)
        else:
            path = _bad_geojson(tmp_path, {"type": "Feature"})
        spec, spec_path = _spec_with_areas(tmp_path, path)
        with pytest.raises(SurveyError) as e:
            A.area_collection(spec, spec_path, table)
        text = str(e.value)
        assert message in text and "\n" not in text
        assert Path(path).name in text
        if case in ("unknown", "no_property", "duplicate"):
            assert "'name'" in text and "of 8 features" in text or case == "duplicate"
    finally:
        shutil.rmtree(ROOT / "data" / "areas" / f".test-{tmp_path.name}", ignore_errors=True)


def test_spec_geojson_goes_with_id_property():
    from survey.spec import parse_spec

    raw = _raw_spec()
    raw["domains"]["region"]["geojson"] = "../data/areas/synthetic-regions.geojson"
    with pytest.raises(ValueError, match="id_property"):
        parse_spec(raw)
    raw["domains"]["region"]["id_property"] = "name"
    raw["domains"]["sex_age"].update(geojson="x.geojson", id_property="id")
    with pytest.raises(ValueError, match="crossed domain"):
        parse_spec(raw)


# ---------------------------------------------------------------------------------------------
# crossed domains: grouped bars and a heat table
# ---------------------------------------------------------------------------------------------
def _crossed_partition(t: pd.DataFrame):
    """A crossed (sex × age) partition with published cells and cells drawn otherwise (flagged
    first, else without a value), from the data."""
    sub = t[(t.domain == "sex_age") & t.indicator.isin(["prevalence", "incidence", "dark_figure", "concentration"])]
    found = []
    for (ind, crime), g in sub.groupby(["indicator", "crime_type"], sort=False):
        st = set(_expected_status_frame(g))
        if "ok" in st and len(st) > 1:
            found.append(("flagged" not in st, -len(st), ind, crime))
    if not found:
        pytest.skip("no crossed partition with cells of more than one kind")
    return min(found)[2:]


def _expected_status_frame(g: pd.DataFrame) -> pd.Series:
    return pd.Series(_expected_status(g.assign(domain_value=range(len(g)))).values(), index=g.index)


def test_crossed_domain_grouped_bars_and_heat_table(tmp_path, publication):
    """sex × age: age on the axis, one coloured group of bars per sex, each bar the published
    estimate of its cell with its interval; flagged cells hatched with †; cells with no value
    (suppressed, no sample case) a grey mark at the base, never a bar of 0.  The heat table:
    rows the ages, columns the sexes, each cell the estimate († when flagged), the word for
    cells without a value."""
    root, table = _demo_copy(tmp_path, publication)  # re-rated: flagged cells
    ind, crime = _crossed_partition(table)
    app = build("victimization", root=root, language="en", run="demo")
    app.select(indicator=ind, crime=crime, domain="sex_age")
    exp = partition(table, ind, crime, "sex_age")
    status = dict(zip(exp.domain_value, _expected_status_frame(exp)))
    assert "flagged" in status.values() and "ok" in status.values()
    fig = app.figure_specs[0]
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert [b["name"] for b in bars] == ["Male", "Female"] and fig["layout"]["barmode"] == "group"
    seen = set()
    for b in bars:
        for age, y, pat, up in zip(b["x"], b["y"], b["marker"]["pattern"]["shape"], b["error_y"]["array"]):
            cell = f"{b['name']} × {age}"
            r = exp[exp.domain_value == cell].iloc[0]
            seen.add(cell)
            if status[cell] in ("suppressed", "no_case"):
                assert y is None
            else:
                assert y == pytest.approx(r.estimate) and up == pytest.approx(r.ci_high - r.estimate)
            assert (pat == "/") == (status[cell] == "flagged")
    assert seen == set(exp.domain_value)
    marks = [t for t in fig["data"] if t["type"] == "scatter"]
    assert sum(len(t["x"]) for t in marks) == sum(s in ("suppressed", "no_case") for s in status.values())
    assert fig["layout"]["xaxis"]["title"]["text"] == "Age" and fig["layout"]["legend"]["title"]["text"] == "Sex"
    heat = app.extra.value
    assert 'class="svy-table-grid svy-heat-table"' in heat
    head = re.findall(r'<th scope="col">([^<]*)</th>', heat)
    assert head[1:] == ["Male", "Female"]
    body = re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', heat)
    assert [a for a, _ in body] == list(dict.fromkeys(v.split(" × ")[1] for v in exp.domain_value))
    for age, tds in body:
        for sex, td in zip(["Male", "Female"], re.findall(r"<td[^>]*>[^<]*</td>", tds)):
            cell = f"{sex} × {age}"
            r = exp[exp.domain_value == cell].iloc[0]
            text = html.unescape(re.sub(r"<[^>]+>", "", td))
            if status[cell] == "suppressed":
                assert text == "suppressed" and "data-value" not in td
            elif status[cell] == "no_case":
                assert text == "no sample case" and "data-value" not in td
            else:
                assert float(re.search(r'data-value="([^"]+)"', td).group(1)) == pytest.approx(r.estimate)
                assert text == format_measure(r.estimate, r.measure, "en") + (" †" if status[cell] == "flagged" else "")
                assert ("svy-heat-flagged" in td) == (status[cell] == "flagged")
    app.select(language="es")
    assert [b["name"] for b in app.figure_specs[0]["data"] if b["type"] == "bar"] == ["Hombre", "Mujer"]


def test_crossed_bars_show_the_previous_wave(publication):
    """sex × age in the two-wave run: every bar with an estimate in Year 1 has a marker at the
    Year 1 estimate - compared with the demo run's own table, which published Year 1's data
    as a run of its own - pointing up where the estimate rose and down where it fell, drawn
    after (over) the bars, outside the plot clip, in the bar's group."""
    year1 = pd.read_parquet(publication / "demo" / "indicators.parquet")
    year2 = pd.read_parquet(publication / "synthetic-two-waves" / "indicators.parquet")
    app = build("victimization", root=publication, language="en", run="synthetic-two-waves")
    app.select(indicator="prevalence", crime="personal", domain="sex_age")
    was = partition(year1, "prevalence", "personal", "sex_age").set_index("domain_value")
    now = partition(year2, "prevalence", "personal", "sex_age").set_index("domain_value")
    assert len(was) >= 4 and set(was.index) == set(now.index)
    fig = app.figure_specs[0]
    kinds = [t["type"] for t in fig["data"]]
    marks = [t for t in fig["data"] if t.get("meta") == {"previous": True}]
    assert marks and kinds.index("scatter") > max(i for i, k in enumerate(kinds) if k == "bar")
    bars = {t["offsetgroup"]: t["name"] for t in fig["data"] if t["type"] == "bar"}
    seen, ups, downs = set(), 0, 0
    for t in marks:
        assert t["cliponaxis"] is False and t["marker"]["line"]["color"] == "white" and t["name"] == "Year 1"
        for age, y, sym in zip(t["x"], t["y"], t["marker"]["symbol"]):
            cell = f"{bars[t['offsetgroup']]} × {age}"
            seen.add(cell)
            assert y == pytest.approx(was.loc[cell, "estimate"], rel=1e-9)
            if now.loc[cell, "estimate"] > was.loc[cell, "estimate"]:
                assert sym == "triangle-up"
                ups += 1
            elif now.loc[cell, "estimate"] < was.loc[cell, "estimate"]:
                assert sym == "triangle-down"
                downs += 1
    assert seen == {v for v in was.index if not was.loc[v, "suppressed"]} and ups and downs
    assert [t["showlegend"] for t in marks] == [True] + [False] * (len(marks) - 1)
    assert any("Year 1" in n for n in app.view.notes)
    app.select(run="demo")  # no previous wave: no markers
    assert not [t for t in app.figure_specs[0]["data"] if t.get("meta") == {"previous": True}]


def test_three_way_cross_facets_or_falls_back_to_the_table():
    """A three-way cross: one panel per value of the third margin (each bar its cell's
    estimate), or no chart (the table only) when there would be more than MAX_FACETS panels."""
    tr = Translator("en")
    parts = [(s, a, u) for u in ("Urban", "Rural") for s in ("Male", "Female") for a in ("16-24", "25-34", "35+")]
    rows = pd.DataFrame({"domain_value": [" × ".join(p) for p in parts], "estimate": range(1, len(parts) + 1),
                         "ci_low": 0.0, "ci_high": 20.0, "suppressed": [i == 4 for i in range(len(parts))],
                         "flag_reason": ["cv above 30%" if i in (2, 9) else "" for i in range(len(parts))],
                         "measure": "%", "n": 100, "suppression_reason": "unweighted base below 50"})
    fig = charts.crossed_bars(rows, parts, tr, "T", "Age", "%", "Sex", axis=1)
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["Urban", "Rural"]
    hatched = set()
    for b in (t for t in fig["data"] if t["type"] == "bar"):
        panel = "Urban" if b["xaxis"] == "x" else "Rural"
        for age, y, pat, text in zip(b["x"], b["y"], b["marker"]["pattern"]["shape"], b["text"]):
            i = parts.index((b["name"], age, panel))
            assert y == (None if i == 4 else i + 1)
            if pat == "/":
                assert text == "†"
                hatched.add(i)
    assert hatched == {2, 9}
    empty = [t for t in fig["data"] if t["type"] == "scatter"]
    assert len(empty) == 1 and empty[0]["x"] == ["25-34"] and "suppressed: unweighted base 100 < 50" in empty[0]["hovertext"][0]
    charts.to_figure(fig)
    many = [(s, a, str(u)) for u in range(5) for s in ("M", "F") for a in ("x", "y")]
    rows5 = pd.DataFrame({"domain_value": [" × ".join(p) for p in many], "estimate": 1.0, "ci_low": 0.5,
                          "ci_high": 1.5, "suppressed": False, "flag_reason": "", "measure": "%"})
    assert charts.crossed_bars(rows5, many, tr, "T", "", "", axis=1) is None

# ---------------------------------------------------------------------------------------------
# trend over three waves (runs grouped by survey id)
# ---------------------------------------------------------------------------------------------
def test_trend_lines_over_three_published_waves(three_waves):
    """Three waves of the synthetic survey ('Synthetic year' of demo, 'Year 1' from the trend.csv
    of synthetic-two-waves, 'Year 2' and the 'Year 3' of a run on `survey synth --seed 3`): the
    explorer draws one line per region over every wave, each point the published estimate of
    its run, with its interval where the run publishes one."""
    pub = Publication(three_waves)
    app = build("victimization", root=pub.root, language="en", run="synthetic-year3")
    app.select(indicator="prevalence", crime="household", domain="region")
    trend = next(f for f in app.figure_specs if charts.title_of(f).endswith("all waves"))
    periods = trend["data"][0]["x"]
    assert periods == ["Synthetic year", "Year 1", "Year 2", "Year 3"]
    year3 = pd.read_parquet(three_waves / "synthetic-year3" / "indicators.parquet")
    year2 = pd.read_parquet(three_waves / "synthetic-two-waves" / "indicators.parquet")
    wide = pd.read_csv(three_waves / "synthetic-two-waves" / "trend.csv", dtype={"domain_value": str})
    for line in trend["data"]:
        region = line["name"]
        def pick(t, region=region):
            return t[(t.indicator == "prevalence") & (t.crime_type == "household") & (t.domain == "region")
                     & (t.domain_value == region)].iloc[0]
        r3, r2 = pick(year3), pick(year2)
        assert line["y"][3] == pytest.approx(r3.estimate) and line["y"][2] == pytest.approx(r2.estimate)
        assert line["error_y"]["array"][3] == pytest.approx(r3.ci_high - r3.estimate)
        assert line["y"][1] == pytest.approx(pick(wide)["Year 1"])  # Year 1: trend.csv only, no interval
        assert line["error_y"]["array"][1] is None
    assert len(trend["data"]) == 8
    assert "Trend" in "\n".join(app.view.notes)
    app.select(language="fr")
    trend = next(f for f in app.figure_specs if "toutes les vagues" in charts.title_of(f))
    assert trend["data"][0]["x"] == ["Année synthétique", "Année 1", "Année 2", "Année 3"]


def test_counts_beside_rates_with_their_intervals(pub, table):
    """The explorer shows the estimated numbers of victimizations and victims of each group,
    each with its 95% interval, beside the rate (the table's count rows)."""
    app = build("victimization", root=pub.root, language="en", run="demo")
    app.select(indicator="prevalence", crime="burglary", domain="region")
    col = app.view.columns.index("Estimated number (95% CI)")
    for row in app.view.rows:
        region = row[0].text
        parts = []
        for ind, word in (("victimizations", "Victimizations"), ("victims", "Victims")):
            r = table[(table.indicator == ind) & (table.crime_type == "burglary") & (table.domain == "region")
                      & (table.domain_value == region)].iloc[0]
            assert not r.suppressed
            parts.append(f"{word}: {r.estimate:,.0f} [{r.ci_low:,.0f}, {r.ci_high:,.0f}]")
        assert row[col].text == "; ".join(parts)


def test_crossed_domains_and_victimization_status(pub, table):
    """A crossed breakdown (sex × age) is a domain like any other, its cells labelled part by
    part in the reader's language; perception by victimization status is labelled in words."""
    crossed = table[table.domain.str.contains("sex_age")]
    if crossed.empty:
        pytest.skip("this publication has no crossed domain")
    app = build("victimization", root=pub.root, language="fr", run="demo")
    app.select(indicator="prevalence", crime="personal", domain="sex_age")
    exp = table[(table.indicator == "prevalence") & (table.crime_type == "personal") & (table.domain == "sex_age")]
    assert len(app.view.rows) == len(exp) >= 4
    first = app.view.rows[0][0].text
    assert " × " in first and first.split(" × ")[0] in ("Homme", "Femme")
    assert app.view.columns[0] == "Sexe et âge"
    fear = build("fear", root=pub.root, language="en", run="demo")
    fear.select(crime="safe_dark", domain="victim__household")
    assert [r[0].text for r in fear.view.rows] == ["Non-victims", "Victims"]
    assert fear.view.columns[0] == f"Victims of {fear.crime_name('household')} or not"


@pytest.mark.parametrize("name", sorted([*APPS, "local"]))
def test_dashboard_notebook_has_its_title_in_english(name):
    """The notebook's metadata title (what the browser tab shows before the widgets render,
    replaced by the translated title then) is the dashboard's English title of the catalog,
    written in the jupytext header of the .py pair and present in the .ipynb."""
    import jupytext

    title = Translator("en")(f"app.{name}.title")
    assert title and title != f"app.{name}.title"
    assert nbformat.read(ROOT / "dashboards" / f"{name}.ipynb", as_version=4).metadata.get("title") == title
    assert jupytext.read(ROOT / "dashboards" / f"{name}.py").metadata.get("title") == title
