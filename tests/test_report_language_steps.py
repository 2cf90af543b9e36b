"""The small-area step (notebooks/local.py) and the evaluation step (notebooks/evaluation.py)
of batch runs in the run's language: one real batch (papermill) of four small parameter sets,
a regional run with ``small_areas:`` and a pooled-waves run with ``evaluation:``, each in French
and in Spanish.  Their HTML reports (prose, printed lines, tables, figure titles, axes and
legends) must leave no English, and their numbers are written the language's way, equal to the
published CSVs (which keep their English schema)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_report_language import DATA_TEXTS, NNBSP, figure_text, left_english, visible_text

from survey.batch import batch_main

ROOT = Path(__file__).resolve().parents[1]
HOUSEHOLDS = 1500
LANGS = ("fr", "es")
TITLES = {"en": "Synthetic pooled waves with a prevention programme",
          "fr": "Vagues synthétiques empilées avec un programme de prévention",
          "es": "Oleadas sintéticas apiladas con un programa de prevención"}

BURGLARY = {"en": "Domestic burglary", "fr": "Cambriolage du domicile", "es": "Robo en la vivienda"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``survey batch`` of local-fr, local-es (the victimization notebook, then the small-area
    step) and eval-fr, eval-es (ingest, then the evaluation step)."""
    from survey.evaluation import write_pooled_survey
    from survey.synth import synth, write_area_covariates

    names = [f"{kind}-{lang}" for kind in ("local", "eval") for lang in LANGS]
    reuse = os.environ.get("SURVEY_TEST_STEPS_RUNS")  # a folder kept between sessions, for quick iterations
    if reuse and all((Path(reuse) / "outputs" / n / "manifest.json").exists() for n in names):
        return {n: Path(reuse) / "outputs" / n for n in names}
    root = Path(reuse) if reuse else tmp_path_factory.mktemp("stepsproject")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("")
    data = root / "data" / "synthetic"
    synth(data, households=HOUSEHOLDS, seed=1)
    write_pooled_survey(root / "data" / "synthetic-evaluation", seed=3, n_strata=4, areas_per_stratum=6,
                        respondents=25)
    (root / "specs").mkdir(exist_ok=True)
    shutil.copy(ROOT / "specs" / "synthetic.yaml", root / "specs" / "synthetic.yaml")
    ev_spec = (ROOT / "specs" / "synthetic-evaluation.yaml").read_text(encoding="utf-8")  # (YAML 1.2: `yes:` is a key)
    line = f"title: {TITLES['en']}\n"
    assert line in ev_spec
    ev_spec = ev_spec.replace(line, "title: " + json.dumps(TITLES, ensure_ascii=False) + "\n")  # the title in 3 languages
    label = "label: Domestic burglary,"
    assert label in ev_spec
    ev_spec = ev_spec.replace(label, "label: " + json.dumps(BURGLARY, ensure_ascii=False) + ",")  # and the crime type
    (root / "specs" / "synthetic-evaluation.yaml").write_text(ev_spec, encoding="utf-8")
    (root / "parameters" / "areas").mkdir(parents=True, exist_ok=True)
    write_area_covariates(root / "parameters" / "areas" / "synthetic-regions.csv", data / "truth.csv", seed=1)
    regional = yaml.safe_load((ROOT / "parameters" / "synthetic-regional.yaml").read_text(encoding="utf-8"))
    evaluation = yaml.safe_load((ROOT / "parameters" / "synthetic-evaluation.yaml").read_text(encoding="utf-8"))
    files = []
    for lang in LANGS:
        sets = {f"local-{lang}": {"spec": "specs/synthetic.yaml", "period": "Synthetic year", "domains": ["region"],
                                  "crime_types": ["household"], "publication": "ons",
                                  "small_areas": regional["small_areas"]},
                f"eval-{lang}": {"spec": "specs/synthetic-evaluation.yaml", "data_dir": "data/synthetic-evaluation",
                                 "publication": "ons", "evaluation": evaluation["evaluation"]}}
        for name, raw in sets.items():
            raw.update(name=name, language=lang, seed=1,
                       notebooks=["victimization"] if name.startswith("local") else ["ingest"])
            path = root / "parameters" / f"{name}.yaml"
            path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
            files.append(str(path))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = batch_main([*files, "--jobs", "2", "--root", str(root), "--notebook-dir", str(ROOT / "notebooks"),
                           "--no-progress"])
    assert code == 0, out.getvalue() + err.getvalue()
    return {n: root / "outputs" / n for n in names}


def _report(run: Path, nb: str) -> str:
    page = (run / f"{nb}.html").read_text(encoding="utf-8")
    text = visible_text(page)
    for data in DATA_TEXTS:
        text = text.replace(data, " ")
    return re.sub(r"\S*/\S*\.(yaml|csv)", " ", text)


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _num(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals, French and Spanish decimal comma (no thousands here)."""
    return f"{x:.{digits}f}".replace(".", ",")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind, nb", [("local", "local"), ("eval", "evaluation")])
def test_no_english_left_in_the_step_reports(runs, lang, kind, nb):
    run = runs[f"{kind}-{lang}"]
    page = (run / f"{nb}.html").read_text(encoding="utf-8")
    assert f'<html lang="{lang}"' in page
    text = _report(run, nb)
    charts = figure_text(run / f"{nb}.ipynb")
    assert charts.strip(), "the report has figures"
    left = left_english(text + " " + charts, lang)
    assert not left, f"{lang} {nb}: English left: {left}"
    nbj = json.loads((run / f"{nb}.ipynb").read_text(encoding="utf-8"))
    figs = [o["data"]["application/vnd.plotly.v1+json"] for c in nbj["cells"] for o in c.get("outputs", [])
            if "application/vnd.plotly.v1+json" in (o.get("data") or {})]
    assert figs and all(f["layout"].get("separators") == ("," + NNBSP if lang == "fr" else ",.") for f in figs)


@pytest.mark.parametrize("lang", LANGS)
def test_small_area_numbers_and_labels_in_the_language(runs, lang):
    run = runs[f"local-{lang}"]
    t = _csv(run / "small_areas.csv")
    assert len(t) == 8 and (t["method"] == "model-based (Fay–Herriot)").all()  # the CSV keeps its English
    text = _report(run, "local")
    north = {"fr": "Nord-Ouest", "es": "Noroeste"}[lang]
    assert north in text and "North West" not in text
    shown = t[t["eblup"].notna()]
    assert len(shown) >= 4
    for r in shown.itertuples():  # the EBLUPs and direct estimates, 2 decimals, decimal comma
        assert _num(r.eblup, 2) in text, (r.area, r.eblup)
        assert f"{r.eblup:.2f}" not in text
        assert _num(r.direct, 2) in text
    header = {"fr": "Estimation fondée sur un modèle (EBLUP)", "es": "Estimación basada en un modelo (EBLUP)"}[lang]
    assert header in text
    if lang == "fr":
        assert re.findall(r"\S [:;?!%]", text) == []  # French typography: no plain space before : ; ? ! %


@pytest.mark.parametrize("lang", LANGS)
def test_evaluation_numbers_in_the_language(runs, lang):
    run = runs[f"eval-{lang}"]
    ev = _csv(run / "evaluation.csv").set_index("term")
    assert "did" in ev.index  # the CSV keeps its English terms
    text = _report(run, "evaluation")
    assert TITLES[lang] in text and TITLES["en"] not in text
    assert BURGLARY[lang] in text
    d = ev.loc["did"]
    assert _num(d.estimate, 3).replace("-", "−") in text or _num(d.estimate, 3) in text, d.estimate
    cb = _csv(run / "cost_benefit.csv").set_index("quantity")
    ratio = cb.loc["benefit_cost_ratio"]
    assert _num(ratio.estimate, 2) in text and f"{ratio.estimate:.2f}" not in text
    words = {"fr": ("Rapport bénéfice-coût", "double différence", "Zones du programme"),
             "es": ("Razón beneficio-costo", "diferencias en diferencias", "Áreas del programa")}[lang]
    for w in words:
        assert w in text, w
    if lang == "fr":
        assert re.findall(r"\S [:;?!%]", text) == []
