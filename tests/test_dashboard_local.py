"""The model-based small-area dashboard (``dashboards/local.ipynb``, ``survey.dashboard.local``)
in-process on a real run: the regional parameter set (with a stricter minimum base, so that two
regions are withheld) run by the real batch on a small synthetic survey.  Checked: the
"model-based estimates" label in every language, the numbers shown are the published ones
(``small_areas.csv`` and the indicator table's direct estimates), withheld areas have no value
on the map, in the chart, in the table or in the download, and only runs with model-based
estimates are offered."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from survey import sae
from survey.dashboard import DashboardInputError, Publication
from survey.dashboard.local import SMALL_AREA_COLUMNS, LocalApp, build
from survey.i18n import Translator

ROOT = Path(__file__).resolve().parents[1]
MIN_BASE = 230  # North (189 sample households) and North East (225) fall below it


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    import contextlib
    import io

    from survey.batch import batch_main
    from survey.synth import synth, write_area_covariates

    proj = tmp_path_factory.mktemp("localdash")
    (proj / "pyproject.toml").write_text("")
    data = proj / "data" / "synthetic"
    synth(data, households=3000, seed=1)
    (proj / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "synthetic.yaml", proj / "specs" / "synthetic.yaml")
    (proj / "parameters" / "areas").mkdir(parents=True)
    write_area_covariates(proj / "parameters" / "areas" / "synthetic-regions.csv", data / "truth.csv", seed=1)
    raw = yaml.safe_load((ROOT / "parameters" / "synthetic-regional.yaml").read_text())
    raw.update(notebooks=["victimization"], publication={"preset": "ons", "min_base": MIN_BASE})
    (proj / "parameters" / "synthetic-regional.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    plain = {"name": "plain", "spec": "specs/synthetic.yaml", "notebooks": ["victimization"], "domains": ["region"]}
    (proj / "parameters" / "plain.yaml").write_text(yaml.safe_dump(plain))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = batch_main([str(proj / "parameters" / "synthetic-regional.yaml"), str(proj / "parameters" / "plain.yaml"),
                           "--jobs", "2", "--root", str(proj), "--notebook-dir", str(ROOT / "notebooks"),
                           "--no-progress"])
    assert code == 0, out.getvalue() + err.getvalue()
    return proj / "outputs"


@pytest.fixture(scope="module")
def published(root):
    t = pd.read_csv(root / "synthetic-regional" / "small_areas.csv", keep_default_na=False, na_values=[""])
    return t.set_index("area")


def _map(app) -> dict:
    return next(f for f in app.figure_specs if (f["layout"].get("meta") or {}).get("model_based") is not None)


def _compare(app) -> dict:
    return next(f for f in app.figure_specs if f["data"][0].get("mode") == "markers" and len(f["data"]) == 2)


def test_published_columns_are_the_dashboards_copy():
    assert SMALL_AREA_COLUMNS == sae.PUBLISHED_COLUMNS


def test_two_areas_are_withheld_by_the_rule(published):
    sup = published["suppressed"]
    assert sorted(published.index[sup]) == ["North", "North East"]
    assert published.loc[sup, ["eblup", "mse", "rmse", "cv"]].isna().all().all()
    assert published.loc[~sup, "eblup"].notna().all()
    assert (published.loc[sup, "suppression_reason"] == f"unweighted base below {MIN_BASE}").all()


@pytest.mark.parametrize("lang, label", [("en", "Model-based estimates"), ("fr", "Estimations fondées sur un modèle"),
                                         ("es", "Estimaciones basadas en un modelo")])
def test_labelled_model_based_in_every_language(root, lang, label):
    app = build(root=root, language=lang)
    assert app.state["run"] == "synthetic-regional"
    assert app.view.title.startswith(label) and label in app.title.value
    assert any(label.lower() in charts_title.lower() for charts_title in
               [f["layout"]["title"]["text"] or f["layout"].get("meta", {}).get("title", "") for f in app.figure_specs])
    assert app.view.notes[0] == Translator(lang)("local.banner")
    if lang != "en":  # no English left
        shown = " ".join([app.view.title] + app.view.notes + app.view.columns)
        for word in ("Model-based", "Direct estimate", "Weight of the direct", "RMSE divided"):
            assert word not in shown, word


def test_table_direct_and_model_based_side_by_side(root, published):
    app = build(root=root, language="en")
    tr = Translator("en")
    ind = pd.read_parquet(root / "synthetic-regional" / "indicators.parquet")
    direct = ind[(ind.indicator == "prevalence") & (ind.crime_type == "household") & (ind.domain == "region")]
    direct = direct.set_index("domain_value")
    assert app.view.columns[:8] == ["Region", "Direct estimate", "Direct 95% CI", "Direct CV", "Model-based estimate",
                                    "RMSE", "Model-based CV", "Weight of the direct estimate"]
    rows = {r[0].text: r for r in app.view.rows}
    assert len(rows) == 8
    for area, p in published.iterrows():
        r = rows[area]
        if p["suppressed"]:
            assert r[4].cls == "svy-suppressed" and r[4].text.startswith("suppressed: unweighted base")
            assert all(not re.search(r"\d", c.text) for c in r[5:8]), [c.text for c in r]
            assert r[1].text == "suppressed"  # the indicator table withheld the direct estimate too
            continue
        assert r[1].text == tr.in_measure(direct.loc[area, "estimate"], "%")
        assert r[3].text == tr.percent(100 * direct.loc[area, "cv"], 1)
        assert r[4].text.split(" ")[0] == tr.in_measure(p["eblup"], "%").split(" ")[0]
        assert r[5].text == tr.number(p["rmse"], 2)
        assert r[6].text == tr.percent(100 * p["cv"], 1)
        assert r[7].text == tr.number(p["gamma"], 2)
        assert r[8].text == tr.number(p["n"], 0)


def test_withheld_areas_have_no_value_on_the_map_or_the_chart(root, published):
    app = build(root=root, language="fr")
    fig = _map(app)
    assert fig["layout"]["meta"]["model_based"]  # labelled model-based on the map itself
    m = fig["data"][-1]  # the labels trace: text and colour values of every area
    colours = dict(zip([t.split("<br>")[0] for t in m["text"]], m["marker"]["color"]))
    tr = Translator("fr")
    for area, p in published.iterrows():
        shown = app.value_label("region", area)
        c = colours[shown]
        if p["suppressed"]:
            assert c is None or c != c  # NaN: no colour
            assert tr("chart.suppressed_mark") in next(t for t in m["text"] if t.startswith(shown + "<br>"))
        elif not p["flag_reason"]:
            assert c == pytest.approx(p["eblup"], rel=1e-12)
    cmp = _compare(app)
    model = cmp["data"][1]
    by_area = dict(zip(model["x"], model["y"]))
    for area, p in published.iterrows():
        y = by_area[app.value_label("region", area)]
        assert (y is None) if p["suppressed"] else y == pytest.approx(p["eblup"], rel=1e-12)
    # the download: no number for a withheld area's model-based estimate
    m2 = re.search(r'base64,([A-Za-z0-9+/=]+)"', app.download.value)
    text = base64.b64decode(m2.group(1)).decode("utf-8")
    import csv
    import io

    north = next(r for r in csv.reader(io.StringIO(text)) if r and r[0] == "Nord")
    assert north[4].startswith("supprimé") and north[5:8] == ["", "", ""], north


def test_only_runs_with_model_based_estimates_are_offered(root):
    app = build(root=root, language="en")
    assert app.allowed("run", app.state) == ["synthetic-regional"]
    with pytest.raises(DashboardInputError):
        app.select(run="plain")
    with pytest.raises(DashboardInputError):
        app.select(run="../synthetic-regional")


def test_a_publication_without_model_based_estimates_says_so(tmp_path, root):
    only = tmp_path / "outputs"
    shutil.copytree(root / "plain", only / "plain")
    with pytest.raises(DashboardInputError, match="Aucune publication"):
        LocalApp(Publication(only), language="fr")


def test_dashboard_notebook_pair():
    import jupytext

    py = jupytext.read(ROOT / "dashboards" / "local.py")
    nb = nbformat.read(ROOT / "dashboards" / "local.ipynb", as_version=4)
    assert [c.source for c in py.cells] == [c.source for c in nb.cells]
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    assert "from survey.dashboard.local import show" in nb.cells[0].source


def test_in_a_real_browser(root, tmp_path):
    """`survey dashboard` serving dashboards/local.ipynb over the run: the page shows the
    in-process app's title ("Model-based estimates ..."), its map, and the withheld areas as
    words; no error output.  Skipped without Chromium or playwright (tests/_browser.py)."""
    from _browser import SHOTS, chromium_context, need_browser, served_dashboards

    from survey import serve

    need_browser()
    dashboards = served_dashboards(tmp_path / "dashboards", ["local"])
    app = build(root=root, language="en")
    with serve.ServerProcess(root, dashboards=dashboards, timeout=240, log_path=tmp_path / "voila.log") as srv, \
            chromium_context(timeout_ms=120_000, viewport={"width": 1280, "height": 1000}) as ctx:
        page = ctx.new_page()
        page.goto(srv.base + "voila/render/local.ipynb")
        page.wait_for_selector(".svy-dashboard-local .svy-chart .js-plotly-plot")
        title = page.inner_text(".svy-dashboard-local .svy-title")
        assert title.strip() == app.view.title and title.startswith("Model-based estimates")
        rows = page.evaluate("""() => [...document.querySelectorAll('.svy-dashboard-local .svy-table tbody tr')]
                                .map(r => [...r.querySelectorAll('td')].map(e => [e.textContent, e.className]))""")
        by_area = {r[0][0]: r for r in rows}
        assert len(by_area) == 8
        for area in ("North", "North East"):
            model = by_area[area][4]
            assert model[0].startswith("suppressed: ") and "svy-suppressed" in model[1]
            assert [c[0] for c in by_area[area][5:8]] == ["", "", ""]
        body = page.inner_text("body")
        assert "Traceback" not in body and "There was an error" not in body
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "local-en.png"), full_page=True)


def test_show_without_model_based_estimates_is_a_message(tmp_path, root, monkeypatch):
    """dashboards/local.ipynb on a publication without small_areas.csv: a heading and the
    translated message, no traceback."""
    import IPython.display

    from survey.dashboard import local

    only = tmp_path / "outputs"
    shutil.copytree(root / "plain", only / "plain")
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda x: shown.append(x))
    assert local.show(root=only, language="es") is None
    html_text = "".join(w.value for w in shown[0].children)
    assert Translator("es")("app.local.title") in html_text and "Ninguna publicación" in html_text
