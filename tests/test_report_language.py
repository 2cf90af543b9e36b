"""Reports and workbooks in the run's language: a real batch (papermill: the victimization, fear,
repeat and summary notebooks) on a small synthetic survey with ``language: fr`` and ``language: es``.

The HTML reports and the Excel workbook must speak the language: no word of the English UI
strings (the English catalog) or of the spec's English labels is left in the visible text;
numbers are written the language's way in the reports and are numbers with a number format
in the workbook, equal to the indicator table (``indicators.csv``); the run's description in
the language is used; the CSV keeps its one schema."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from survey import params as sp
from survey.batch import batch_main
from survey.i18n import LANGUAGES, catalog

ROOT = Path(__file__).resolve().parents[1]
HOUSEHOLDS = 3000
NOTEBOOKS = ("victimization", "fear", "repeat", "risk", "summary")
"""The reports translated in full (ingest: checked apart, its tables name the spec's files)."""
NNBSP = "\u202f"
DESCRIPTIONS = {"en": "Small synthetic run for the language test",
                "fr": "Petite exécution synthétique pour le test des langues",
                "es": "Pequeña ejecución sintética para la prueba de idiomas"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``survey batch`` of two parameter sets, French and Spanish (:data:`NOTEBOOKS`)."""
    import os

    from survey.synth import synth

    reuse = os.environ.get("SURVEY_TEST_LANGUAGE_RUNS")  # a folder kept between sessions, for quick iterations
    if reuse and all((Path(reuse) / "outputs" / f"lang-{x}" / "manifest.json").exists() for x in ("fr", "es")):
        return {x: Path(reuse) / "outputs" / f"lang-{x}" for x in ("fr", "es")}
    root = Path(reuse) if reuse else tmp_path_factory.mktemp("langproject")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("")
    synth(root / "data" / "synthetic", households=HOUSEHOLDS, seed=1)
    (root / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "synthetic.yaml", root / "specs" / "synthetic.yaml")
    (root / "parameters").mkdir()
    files = []
    for lang in ("fr", "es"):
        raw = {"name": f"lang-{lang}", "spec": "specs/synthetic.yaml", "period": "Synthetic year",
               "publication": "ons", "language": lang, "seed": 1, "notebooks": ["ingest", *NOTEBOOKS],
               "description": DESCRIPTIONS["en"], f"description_{lang}": DESCRIPTIONS[lang]}
        path = root / "parameters" / f"lang-{lang}.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        files.append(str(path))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = batch_main([*files, "--jobs", "2", "--root", str(root), "--notebook-dir", str(ROOT / "notebooks"),
                           "--no-progress"])
    assert code == 0, out.getvalue() + err.getvalue()
    return {lang: root / "outputs" / f"lang-{lang}" for lang in ("fr", "es")}


# ---------------------------------------------------------------------------------------------
# what the reader sees
# ---------------------------------------------------------------------------------------------
class _Text(HTMLParser):
    """The visible text of a page: no script, style or head, and no code (file and function
    names are not words of a language); ``skip`` more elements (tables)."""

    def __init__(self, skip=()):
        super().__init__()
        self.skip = 0
        self.tags = {"script", "style", "head", "code", *skip}
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.tags:
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in self.tags:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(page: str, skip=()) -> str:
    p = _Text(skip)
    p.feed(page)
    return re.sub(r"[ \t\r\n]+", " ", " ".join(p.parts))  # (not str.split: it splits at no-break spaces)


def figure_text(ipynb: Path, titles_only: bool = False) -> str:
    """The text of the report's figures (titles, axis titles, legends, category labels, hover
    texts; or the titles only) as the executed notebook holds them (plotly JSON)."""
    nb = json.loads(ipynb.read_text(encoding="utf-8"))
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            fig = (o.get("data") or {}).get("application/vnd.plotly.v1+json")
            if not fig:
                continue
            layout = fig.get("layout") or {}
            for part in (layout, layout.get("xaxis") or {}, layout.get("yaxis") or {}):
                title = part.get("title")
                out.append(title.get("text", "") if isinstance(title, dict) else str(title or ""))
            for tr in [] if titles_only else fig.get("data") or []:
                out.append(str(tr.get("name") or ""))
                for key in ("y", "hovertext"):
                    vals = tr.get(key) or []
                    out += [str(v) for v in vals] if isinstance(vals, list) else []
    return " ".join(out)


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿ’']{4,}", re.sub(r"\{[^}]*\}|<[^>]*>|`[^`]*`", " ", text))}


def english_words(lang: str) -> set[str]:
    """Words of the English UI strings the reports and the workbook use (catalog keys report.,
    excel., rule., reason., reliability., indicator., definition., unit., measure., domain.,
    value.) that the language's catalog does not use itself ("Concentration", "Source" are
    French words too)."""
    prefixes = ("report.", "excel.", "rule.", "reason.", "reliability.", "indicator.", "definition.", "unit.",
                "measure.", "domain.", "value.", "note.design.")
    en = set().union(*(_words(v) for k, v in catalog("en").items() if k.startswith(prefixes)))
    own = set().union(*(_words(v) for v in catalog(lang).values()))
    return en - own


def spec_labels(lang: str) -> tuple[set[str], dict]:
    """The spec's English labels that have another text in ``lang`` (crime types, items,
    domains, region names, title), and the crime labels in ``lang``."""
    spec = yaml.safe_load((ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8"))
    english, crimes = set(), {}
    if spec["title"][lang] != spec["title"]["en"]:
        english.add(spec["title"]["en"])
    for t in spec["victimization"]["types"]:
        lab = t["label"]
        if isinstance(lab, dict):
            crimes[t["name"]] = lab[lang]
            if lab[lang] != lab["en"]:
                english.add(lab["en"])
    for d in list(spec["domains"].values()) + list(spec.get("perception") or []):
        lab = d.get("label") if isinstance(d, dict) else None
        if isinstance(lab, dict) and lab.get(lang) != lab.get("en"):
            english.add(lab["en"])
        for en, x in ((d.get("translations") or {}).get(lang) or {}).items():
            if x != en:
                english.add(en)
    return english, crimes


def left_english(text: str, lang: str) -> list[str]:
    words = english_words(lang)
    labels, _ = spec_labels(lang)
    found = sorted(w for w in _words(text) if w in words)
    found += sorted(lab for lab in labels if re.search(rf"(?<![\w-]){re.escape(lab)}(?![\w-])", text))
    return found


def _table(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "indicators.csv", keep_default_na=False, na_values=[""])


DATA_TEXTS = ("Generated by `survey synth` (seed 1); truth in data/synthetic/truth.csv",
              "Generated by (seed 1); truth in data/synthetic/truth.csv")
"""The spec's source: data, shown as the spec gives it (it has no translation)."""


# ---------------------------------------------------------------------------------------------
# HTML reports
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["fr", "es"])
@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_no_english_left_in_the_reports(runs, lang, nb):
    run = runs[lang]
    page = (run / f"{nb}.html").read_text(encoding="utf-8")
    assert f'<html lang="{lang}"' in page
    text = visible_text(page)
    for data in DATA_TEXTS:
        text = text.replace(data, " ")
    text = re.sub(r"\S*/\S*\.yaml", " ", text)  # the spec's path in the parameters line
    charts = figure_text(run / f"{nb}.ipynb")
    assert charts.strip(), "the report has figures"
    left = left_english(text + " " + charts, lang)
    assert not left, f"{lang} {nb}: English left: {left}"
    assert DESCRIPTIONS[lang] in text and DESCRIPTIONS["en"] not in text


class _Tables(HTMLParser):
    """The text of a page's tables only."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.depth += tag == "table"

    def handle_endtag(self, tag):
        self.depth -= tag == "table"

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def table_text(page: str) -> str:
    p = _Tables()
    p.feed(page)
    return re.sub(r"[ \t\r\n]+", " ", " ".join(p.parts))


def ingest_english_left(run: Path, lang: str, spec_path: Path, data_texts=DATA_TEXTS):
    """(page, visible text outside tables, text of the tables, English left) of a run's ingest
    report: prose, tables and figures; in the tables the spec's file keys, file names, paths and
    «names» (the spec's file, a rule's name) are names, not words."""
    page = (run / "ingest.html").read_text(encoding="utf-8")
    text = visible_text(page, skip=("table",))
    for data in data_texts:
        text = text.replace(data, " ")
    text = re.sub(r"\S*/\S*\.yaml", " ", text)
    names = re.compile(r"\S*/\S*|\S+\.(sav|zsav|csv|parquet)\b|«[^»]*»")  # paths, file names, «names»
    all_tables = table_text(page)
    tables, charts = names.sub(" ", all_tables), names.sub(" ", figure_text(run / "ingest.ipynb"))
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    for f in spec["files"]:  # the spec's file keys (households, persons, incidents) in the tables' file columns
        tables = re.sub(rf"(?<![\w-]){re.escape(f)}(?![\w-])", " ", tables)
    return page, text, all_tables, left_english(text + " " + tables + " " + charts, lang)


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_ingest_report_in_the_language_with_its_row_accounting(runs, lang):
    """The ingest report's prose, headings, figures and tables, the loader's row accounting
    included (its steps and details in the language, crime types by their labels); in the
    tables, the spec's file keys, file names and paths are names, not words.
    ``accounting.csv`` keeps the loader's English (it is data)."""
    run = runs[lang]
    page, text, all_tables, left = ingest_english_left(run, lang, ROOT / "specs" / "synthetic.yaml")
    assert not left, f"{lang} ingest: English left: {left}"
    heading = {"fr": "Décompte des lignes", "es": "Recuento de filas"}[lang]
    assert heading in text and "Row accounting" not in text
    assert {"fr": "Lignes lues", "es": "Filas leídas"}[lang] in all_tables  # a translated header
    acc = pd.read_csv(run / "accounting.csv", keep_default_na=False)
    counted = acc[acc.step == "incidents counted"].iloc[0]  # the CSV: the loader's English
    assert list(acc.columns) == ["step", "file", "rows", "detail"] and "exclude: outside_period" in set(acc.step)
    assert {"fr": "incidents comptés", "es": "incidentes contados"}[lang] in all_tables
    assert {"fr": "Hors de la période de référence", "es": "Fuera del período de referencia"}[lang] in all_tables
    _, crimes = spec_labels(lang)
    pairs = [p.rsplit(": ", 1) for p in counted.detail.split(", ")]
    colon = NNBSP + ": " if lang == "fr" else ": "
    labelled = [(crimes[c], n) for c, n in pairs if c in crimes]
    assert labelled, pairs
    for label, n in labelled[:3]:  # crime types by their labels, with their counts (the cell is cut at 120)
        written = f"{int(n):,}".replace(",", NNBSP if lang == "fr" else ".")
        assert f"{label}{colon}{written}" in all_tables, (label, n)


class _Accounting(HTMLParser):
    """The text of the row accounting's table: the table whose header has the detail column."""

    def __init__(self, header: str):
        super().__init__()
        self.header, self.depth, self.tables, self.cells = header, 0, [], []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.depth += 1
            self.tables.append([])

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and self.tables:
            self.tables[-1].append(data)


def accounting_table(page: str, lang: str) -> str:
    p = _Accounting(catalog(lang)["report.acc.col.detail"])
    p.feed(page)
    found = [" ".join(t) for t in p.tables if any(x.strip() == p.header for x in t)]
    assert len(found) == 1, f"{len(found)} tables with a '{p.header}' column"
    return re.sub(r"[ \t\r\n]+", " ", found[0])


UNLABELLED_RULE = {"name": "placeless", "where": "V4022 == 99", "label": "Incident in no known place"}
"""An exclusion rule added to the NCVS spec with an English label only and no catalog key."""


@pytest.fixture(scope="module")
def loader_runs(tmp_path_factory):
    """The ingest report of two more specs in French and Spanish (``survey batch``, the ingest
    notebook only): NCVS 2021 (rows combined into collection-year households, series incidents,
    an exclusion rule labelled in the spec's three languages and one labelled in English only)
    and the ICVS-style template on its generated file (screeners with skip patterns)."""
    import importlib.util
    import sys

    root = tmp_path_factory.mktemp("loaderlang")
    (root / "pyproject.toml").write_text("")
    (root / "specs").mkdir()
    (root / "data").mkdir()
    (root / "data" / "ncvs2021").symlink_to(ROOT / "data" / "ncvs2021")
    from survey.spec import load_yaml

    raw = load_yaml((ROOT / "specs" / "ncvs-2021.yaml").read_text(encoding="utf-8"))  # (YAML 1.2: 'on' is a key)
    raw["victimization"]["exclude"].append(dict(UNLABELLED_RULE))
    (root / "specs" / "ncvs.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    path = ROOT / "tests" / "templates" / "make_files.py"
    spec = importlib.util.spec_from_file_location("template_make_files", path)
    mf = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mf)
    spec.loader.exec_module(mf)
    mf.make_icvs(root / "specs", skipped="sysmis")  # skipped count items left blank: the skip patterns explain them
    shutil.copy(ROOT / "specs" / "templates" / "icvs-style.yaml", root / "specs" / "icvs.yaml")
    (root / "parameters").mkdir()
    files = []
    for survey, period in (("ncvs", "2021"), ("icvs", "12 months before interview")):
        for lang in ("fr", "es"):
            target = root / "parameters" / f"{survey}-{lang}.yaml"
            target.write_text(yaml.safe_dump({"name": f"{survey}-{lang}", "spec": f"specs/{survey}.yaml", "period": period,
                                              "language": lang, "seed": 1, "notebooks": ["ingest"]},
                                             allow_unicode=True), encoding="utf-8")
            files.append(str(target))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = batch_main([*files, "--jobs", "2", "--root", str(root), "--notebook-dir", str(ROOT / "notebooks"),
                           "--no-progress"])
    assert code == 0, out.getvalue() + err.getvalue()
    return root


@pytest.mark.parametrize("lang", ["fr", "es"])
@pytest.mark.parametrize("survey", ["ncvs", "icvs"])
def test_loader_details_in_the_language(loader_runs, survey, lang):
    """The loader's combine, series and skip-pattern sentences and the exclusion rules' labels
    (the spec's in the language; a rule labelled in English only, by its name in a translated
    sentence) leave no English in the ingest report; ``accounting.csv`` keeps the loader's
    English."""
    from survey.spec import read_spec

    run = loader_runs / "outputs" / f"{survey}-{lang}"
    spec = read_spec(loader_runs / "specs" / f"{survey}.yaml")
    page = (run / "ingest.html").read_text(encoding="utf-8")
    tables = accounting_table(page, lang)
    assert len(tables) > 300, tables
    # the row accounting, less the names in it and the labels the spec gives in English only
    # (data: a spec in one language; these two test specs label their items and domains so)
    own = [x.label for x in (*spec.victimization.types, *spec.perception, *spec.domains.values())
           if x.label and not (x.label_i18n or {}).get(lang)]
    rest = re.sub(r"\S*/\S*|\S+\.(sav|zsav|csv|parquet)\b|«[^»]*»", " ", tables)
    for text in sorted(own, key=len, reverse=True):
        rest = rest.replace(text, " ")
    names = [*spec.files, *(t.name for t in spec.victimization.types), *(i.name for i in spec.perception)]
    for f in names:  # the spec's file keys, and item names where the spec has no label in the language
        rest = re.sub(rf"(?<![\w-]){re.escape(f)}(?![\w-])", " ", rest)
    left = left_english(rest, lang)
    assert not left, f"{lang} {survey} row accounting: English left: {left}"
    # the details in full (the report's cells are cut at 120 characters) as the report writes them
    from survey.report import Reader

    acc = pd.read_csv(run / "accounting.csv", keep_default_na=False)
    full = " ".join(Reader(lang, spec).accounting(acc)[catalog(lang)["report.acc.col.detail"]])
    for text in sorted(own, key=len, reverse=True):
        full = full.replace(text, " ")
    full = re.sub(r"\S*/\S*|\S+\.(sav|zsav|csv|parquet)\b|«[^»]*»", " ", full)
    for f in names:
        full = re.sub(rf"(?<![\w-]){re.escape(f)}(?![\w-])", " ", full)
    left = left_english(full, lang)
    assert not left, f"{lang} {survey} row accounting (full details): English left: {left}"
    steps = set(acc.step)
    if survey == "ncvs":
        assert {"combine", "series", "exclude: outside_us", f"exclude: {UNLABELLED_RULE['name']}"} <= steps
        combine = acc[acc.step == "combine"].iloc[0]
        m = re.match(r"^(\d+) rows combined into (\d+) units", combine.detail)
        assert m and "domain value changed" in combine.detail  # the CSV: the loader's English
        rows, units = (f"{int(x):,}".replace(",", NNBSP if lang == "fr" else ".") for x in m.groups())
        want = {"fr": (f"{rows} lignes regroupées en {units} unités selon IDHH", "la somme des poids",
                       "Incident survenu hors des États-Unis", f"règle «{NNBSP}placeless{NNBSP}» de la spécification",
                       "incidents en série comptés selon V4016", "plafond 10"),
                "es": (f"{rows} filas agrupadas en {units} unidades según IDHH", "la suma de los pesos",
                       "Incidente ocurrido fuera de los Estados Unidos", "regla «placeless» de la especificación",
                       "incidentes en serie contados según V4016", "tope 10")}[lang]
        for w in want:
            assert w in tables or w in full, (w, tables[:3000])
        assert want[0] in tables
        for english in ("rows combined", "series incidents", "outside the United States", UNLABELLED_RULE["label"],
                        "with unknown count", "over the unit's respondent rows"):
            assert english not in page, english
    else:
        skip = acc[acc.step == "skip pattern"]
        assert any("counted as not a victim" in d for d in skip.detail), list(skip.detail)
        want = {"fr": "burg12\u202f: question non posée (burg5 parmi [2]), comptée comme non-victime",
                "es": "burg12: pregunta no formulada (burg5 entre [2]), contada como no víctima"}[lang]
        assert want in tables, tables[:3000]
        assert "not asked" not in page and "counted as" not in page


def test_english_word_list_is_not_empty_and_catches_english():
    words = english_words("fr")
    assert {"households", "suppressed", "prevalence", "reporting", "victimized"} <= words
    assert left_english("Prevalence: households victimized at least once (%)", "fr")
    assert not left_english("Prévalence : ménages victimes au moins une fois (%)", "fr")


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_numbers_in_the_reports_are_written_the_language_way(runs, lang):
    run = runs[lang]
    table = _table(run)
    _, crimes = spec_labels(lang)
    text = visible_text((run / "victimization.html").read_text(encoding="utf-8"))
    dec = ","
    thousands = NNBSP if lang == "fr" else "."
    # the row count of the table, with the language's thousands separator
    n = len(table)
    assert n >= 1000
    written = f"{n:,}".replace(",", thousands)
    assert f"{written} {'lignes' if lang == 'fr' else 'filas'}" in text
    assert f"{n:,}" not in text
    # the prevalence of burglary with its interval, by hand from the CSV
    r = table[(table.indicator == "prevalence") & (table.crime_type == "household") & (table.domain == "overall")].iloc[0]

    def one(x):
        return f"{x:.1f}".replace(".", dec)

    est, lo, hi = one(r.estimate), one(r.ci_low), one(r.ci_high)
    if lang == "fr":
        expected = f"{est}{NNBSP}% (IC à 95{NNBSP}%{NNBSP}: de {lo} à {hi})"
    else:
        expected = f"{est}{NNBSP}% (IC del 95{NNBSP}%: de {lo} a {hi})"
    assert catalog(lang)["crime.synthetic.household"] in text  # a crime group: its label from the catalogs
    assert expected in text, (expected, text[:2000])
    assert f"{r.estimate:.1f}%" not in text
    # the chart's numbers follow the language too (plotly's separators) and its hover texts
    nb = json.loads((run / "victimization.ipynb").read_text(encoding="utf-8"))
    figs = [o["data"]["application/vnd.plotly.v1+json"] for c in nb["cells"] for o in c.get("outputs", [])
            if "application/vnd.plotly.v1+json" in (o.get("data") or {})]
    assert figs and all(f["layout"].get("separators") == ("," + NNBSP if lang == "fr" else ",.") for f in figs)
    hover = " ".join(str(h) for f in figs for t in f["data"] for h in (t.get("hovertext") or []))
    assert f"{r.estimate:.2f}".replace(".", ",") in hover


def test_french_typography_in_the_reports(runs):
    text = visible_text((runs["fr"] / "victimization.html").read_text(encoding="utf-8"))
    text += visible_text((runs["fr"] / "summary.html").read_text(encoding="utf-8"))
    for data in DATA_TEXTS:
        text = text.replace(data, " ")
    assert re.findall(r"\S [:;?!%]", text) == []  # a plain space before : ; ? ! % is wrong
    assert re.findall(r"[^\s\u202f\u00a0(\[][;?!%]", text) == []  # so is no space at all
    assert f"{NNBSP}:" in text


def test_manifest_carries_the_descriptions_and_the_language(runs):
    for lang, run in runs.items():
        m = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        assert m["language"] == lang and m["description"] == DESCRIPTIONS["en"]
        assert m[f"description_{lang}"] == DESCRIPTIONS[lang]
        other = "es" if lang == "fr" else "fr"
        assert f"description_{other}" not in m


def test_csv_keeps_its_one_schema(runs):
    from survey.indicators import TABLE_COLUMNS

    for run in runs.values():
        assert list(_table(run).columns) == list(TABLE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Excel workbook
# ---------------------------------------------------------------------------------------------
def _workbook(run):
    from openpyxl import load_workbook

    return load_workbook(run / "indicators.xlsx")


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_workbook_in_the_language_numbers_equal_the_csv(runs, lang):
    run = runs[lang]
    table = _table(run)
    wb = _workbook(run)
    prevalence = {"fr": "Prévalence", "es": "Prevalencia"}[lang]
    estimate = {"fr": "Estimation", "es": "Estimación"}[lang]
    notes = {"fr": "Informations", "es": "Información"}[lang]
    assert wb.sheetnames[0] == notes and prevalence in wb.sheetnames
    assert not set(wb.sheetnames) & set(table.indicator), "sheet names are translated, not codes"
    ws = wb[prevalence]
    header = [c.value for c in ws[1]]
    assert estimate in header and not set(header) & set(table.columns), header
    rows = table[table.indicator == "prevalence"].reset_index(drop=True)
    cells = list(ws.iter_rows(min_row=2))
    assert len(cells) == len(rows)
    _, crimes = spec_labels(lang)
    col = {h: i for i, h in enumerate(header)}
    cols = {"estimate": estimate, "se": {"fr": "Erreur type", "es": "Error estándar"}[lang],
            "n": {"fr": "Base non pondérée", "es": "Base no ponderada"}[lang]}
    crime_col = {"fr": "Type de crime", "es": "Tipo de delito"}[lang]
    checked = 0
    for (_, r), row in zip(rows.iterrows(), cells, strict=True):
        for name, head in cols.items():
            cell = row[col[head]]
            if pd.isna(r[name]):
                assert cell.value is None
                continue
            assert isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool), (name, cell.value)
            assert cell.value == pytest.approx(float(r[name]), rel=1e-12, abs=0)
            checked += 1
        assert row[col[estimate]].number_format == "#,##0.000"
        if r.crime_type in crimes:
            assert row[col[crime_col]].value == crimes[r.crime_type]
    assert checked > 3 * 20
    cv = {"fr": "CV (en\u202f%)", "es": "CV (en\u202f%)"}[lang]
    assert all(row[col[cv]].number_format == "0.0%" for row in cells)


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_no_english_left_in_the_workbook(runs, lang):
    wb = _workbook(runs[lang])
    skip = {"fr": ("Paramètres", "Source des données", "Logiciel"), "es": ("Parámetros", "Fuente", "Programa")}[lang]
    texts = []
    for ws in wb:
        texts.append(ws.title)
        for row in ws.iter_rows(values_only=True):
            if row and row[0] in skip:  # the parameters as given (YAML), the spec's source, the software: data
                continue
            texts += [v for v in row if isinstance(v, str)]
    text = "\n".join(texts).replace("(synthetic)", " ")  # the survey's id (a name) beside its title
    left = left_english(text, lang)
    assert not left, f"{lang}: English left in the workbook: {left}"
    notes = {r[0]: r[1] for r in wb.worksheets[0].iter_rows(values_only=True) if r and r[0]}
    item = {"fr": "Description de l’exécution", "es": "Descripción"}[lang]
    assert notes[item] == DESCRIPTIONS[lang]
    rule = {"fr": "Règle de suppression", "es": "Regla de supresión"}[lang]
    assert "50" in notes[rule] and ("répondants" if lang == "fr" else "encuestados") in notes[rule]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_formulas_are_neutralized_in_every_language(tmp_path, lang):
    """Text cells starting with = + - @ get a leading quote whatever the language; numbers stay
    numbers."""
    import openpyxl

    from survey.report import write_workbook

    table = pd.DataFrame({"indicator": ["prevalence"] * 3, "survey": ["s"] * 3, "crime_type": ["a", "b", "c"],
                          "period": ["=1+1", "+1", "2024"], "crime_label": ["-2+3", "@SUM(A1)", "burglary"],
                          "domain": ["overall"] * 3, "domain_value": ["=x", "all", "all"],
                          "estimate": [-1.5, 2.0, 3.0], "n": [10, 20, 30], "cap_rule": ["", "", ""]})
    meta = {"title": "=1+1", "survey": "s", "source": "@cmd", "licence": "-x", "definitions": {}}
    path = write_workbook(table, meta, tmp_path / "t.xlsx", lang=lang,
                          run={"name": "r", "description": "=HYPERLINK(\"x\")", "parameters": {"period": "=x"}})
    wb = openpyxl.load_workbook(path)
    cells = [c for ws in wb for row in ws.iter_rows() for c in row]
    assert not [c.value for c in cells if isinstance(c.value, str) and c.value.startswith(("=", "+", "-", "@"))]
    assert "'=HYPERLINK(\"x\")" in [c.value for c in cells]
    numbers = [c.value for c in cells if isinstance(c.value, (int, float)) and not isinstance(c.value, bool)]
    assert sorted(numbers) == [-1.5, 2, 3, 10, 20, 30]


# ---------------------------------------------------------------------------------------------
# descriptions in the parameter set
# ---------------------------------------------------------------------------------------------
def _set(tmp_path, **extra) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "specs").mkdir(exist_ok=True)
    shutil.copy(ROOT / "specs" / "synthetic.yaml", tmp_path / "specs" / "synthetic.yaml")
    if not (tmp_path / "data").exists():
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "synthetic").symlink_to(ROOT / "data" / "synthetic", target_is_directory=True)
    raw = {"spec": "specs/synthetic.yaml", "language": "fr", **extra}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_descriptions_per_language_and_fallback(tmp_path):
    cfg = sp.read_parameter_set(_set(tmp_path, description="English", description_fr="Français"), root=tmp_path)
    assert cfg.descriptions == {"en": "English", "fr": "Français"} and cfg.description == "English"
    assert sp.description_in(cfg.descriptions, "fr") == "Français"
    assert sp.description_in(cfg.descriptions, "es") == "English"  # the fallback
    assert sp.description_in({}, "es") == ""


@pytest.mark.parametrize("extra, message", [
    ({"description_fr": {"text": "x"}}, "description_fr must be text"),
    ({"description_es": ["a"]}, "description_es must be text"),
    ({"description_es": "x" * 1001}, "description_es must be text of at most 1000 characters"),
    ({"description_fr": "a\x1b[31m"}, "without control characters"),
    ({"description_de": "Deutsch"}, "unknown key 'description_de'"),
])
def test_bad_descriptions_are_one_line_errors(tmp_path, extra, message):
    with pytest.raises(sp.ParameterError, match=re.escape(message)) as e:
        sp.read_parameter_set(_set(tmp_path, **extra), root=tmp_path)
    assert "p.yaml" in str(e.value) and "\n" not in str(e.value)


ACCOUNTING = [  # every fixed sentence of the loader (survey.ingest), as it writes them
    ("read", "households", 3000, "households.sav: 15 columns read"),
    ("link", "persons", 2048, "columns of 'households' joined on hhid"),
    ("respondents", "persons", 2048, "every row is a respondent"),
    ("respondents", "households", 2048, "952 non-respondent rows kept for design information"),
    ("exclude: unmatched persons", "persons", 3, "rows of 'persons' matching no row of 'households' on hhid"),
    ("weights", "households", 952, "non-respondent rows with a missing 'wt' get weight 0"),
    ("exclude: outside_period", "incidents", 37, "Outside the reference period"),
    ("ignore codes", "incidents", 7, "crimecode in [99]"),
    ("exclude: unmatched", "incidents", 2, "incidents matching no respondent on hhid, pid"),
    ("exclude: non-respondent", "incidents", 1, "incidents linked to non-respondent rows (kept for design only)"),
    ("incidents counted", "incidents", 1608, "vandalism: 1100, burglary: 508"),
    ("cap", "incidents", 1608, "percentile 98 per type: vandalism cap 3 (12 respondents capped); burglary cap 2.5 "
                               "(4 respondents capped)"),
    ("skip pattern", "persons", 40, "q1: not asked (screener not yes), counted as 0"),
    ("dont know", "persons", 5, "q1: [98] counted as 0"),
    ("missing count", "persons", 3, "q1: missing, a domain of its own"),
    ("item nonresponse", "persons", 4, "q2: 8: 3, 9: 1 (refused, don't know...): out of the base"),
    ("item nonresponse", "persons", 2, "q2: blank with no declared skip pattern: out of the base"),
    ("perception follow-up", "persons", 9, "safe_dark: safedark in [3] answered by safedark2"),
    ("perception missing", "persons", 17, "safe_dark: no answer (8: 13, 9: 4; excluded from its base)"),
    ("domain", "persons", 2, "age_band: 2 rows below the first band"),
    ("domain missing", "persons", 3, "region: respondents with no value"),
    ("domain missing", "persons", 3, "sex_age: respondents with no value in one of sex, age_band"),
]


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_every_fixed_accounting_sentence_is_translated(lang):
    """Reader.accounting: every step and fixed detail of the loader in the language, crime types,
    items and domains by their labels, counts written the language's way; the English frame is
    returned unchanged in English."""
    from survey.report import Reader
    from survey.spec import read_spec

    acc = pd.DataFrame(ACCOUNTING, columns=["step", "file", "rows", "detail"])
    spec = read_spec(ROOT / "specs" / "synthetic.yaml")
    assert Reader("en", spec).accounting(acc).equals(acc)
    shown = Reader(lang, spec).accounting(acc)
    assert list(shown.columns) == {"fr": ["Étape", "Fichier", "Lignes", "Détail"],
                                   "es": ["Paso", "Archivo", "Filas", "Detalle"]}[lang]
    steps, details = shown.iloc[:, 0], shown.iloc[:, 3]
    assert not (steps == acc.step).any(), list(acc.step[steps == acc.step])
    assert not (details == acc.detail).any(), list(acc.detail[details == acc.detail])
    text = " ".join(steps) + " " + " ".join(details)
    text = re.sub(r"\S+\.sav|'[^']*'|«[^»]*»", " ", text)
    left = left_english(text, lang)
    assert not left, left
    _, crimes = spec_labels(lang)
    sep = NNBSP if lang == "fr" else "."
    colon = NNBSP + ": " if lang == "fr" else ": "
    assert f"{crimes['vandalism']}{colon}1{sep}100" in text and f"{crimes['burglary']}{colon}508" in text
    assert shown.iloc[0, 2] == f"3{sep}000"
    assert "2,5" in details.iloc[11]  # the cap, decimal comma
