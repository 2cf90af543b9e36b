"""Report helpers for the notebooks and batch runs: plotly figures of indicator tables, the
indicator table files (CSV, Parquet and a metadata sidecar), the Excel workbook and the HTML
reports without code.

Figures are plain ``plotly.graph_objects.Figure`` objects shown through the
``plotly_mimetype`` renderer (:func:`setup_notebook`): an executed notebook keeps each figure
as JSON (a few kB), never plotly.js (``FigureWidget`` or the ``notebook`` renderer put ~5 MB
of JavaScript into every executed notebook).  :func:`notebook_to_html` turns the figures
into HTML when a report is written, loading plotly.js once per report from a file next to it
(offline), inline, or from the CDN.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import inspect
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import SurveyError

PLOTLY_MIME = "application/vnd.plotly.v1+json"
TABLE_FILES = ("indicators.csv", "indicators.parquet", "indicators.meta.json")
EXCEL_COLUMNS = ["survey", "period", "crime_type", "crime_label", "iccs", "unit", "domain", "domain_value",
                 "estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n", "n_cases", "weighted_base",
                 "measure", "reliability", "flag_reason", "suppressed", "suppression_reason", "sdg_indicator",
                 "sdg_deviation"]


# ---------------------------------------------------------------------------------------------
# notebooks
# ---------------------------------------------------------------------------------------------
def setup_notebook() -> None:
    """Plotly figures as JSON (``plotly_mimetype``), pandas display settings for reports."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype"
    pio.templates.default = "plotly_white"
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 160)


def md(text: str) -> None:
    """Show Markdown built from results (prose that quotes the numbers).  HTML in it is shown
    as text (spec titles, sources and labels are data, never markup): see :func:`safe_markdown`."""
    from IPython.display import Markdown, display

    display(Markdown(safe_markdown(text)))


_HARMFUL_LINK = re.compile(r"\]\(\s*<?\s*(?:javascript|vbscript|data|file)\s*:", re.IGNORECASE)


def safe_markdown(text: str) -> str:
    """Markdown with raw HTML neutralized: ``<`` and ``>`` become entities (Markdown passes raw
    HTML such as ``<script>`` straight into the report), and links to ``javascript:``,
    ``vbscript:``, ``data:`` or ``file:`` URLs lose their target.  Idempotent (already escaped
    text is left alone), so the reports can apply it again to every Markdown output."""
    text = str(text).replace("<", "&lt;").replace(">", "&gt;")
    return _HARMFUL_LINK.sub("](#blocked:", text)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""Text starting with one of these is a formula to a spreadsheet (OWASP CSV injection)."""


def neutral_text(value):
    """A text cell a spreadsheet will not run: a leading quote before ``= + - @``, tab or CR
    (the OWASP rule).  Anything that is not text (numbers, missing values) is returned as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def neutral_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells are :func:`neutral_text` (numeric columns untouched),
    for the CSV and Excel files the tool writes (Parquet keeps the values as they are)."""
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if col.dtype == object or pd.api.types.is_string_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype):
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(object)
            if col.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_START)).any():
                out[c] = col.map(neutral_text)
    if any(isinstance(c, str) and c.startswith(FORMULA_START) for c in out.columns):
        out.columns = [neutral_text(c) for c in out.columns]
    return out


def no_counts_sentence(what: str) -> str:
    """The one sentence a report section prints when the survey has screeners but no count item
    ("how many times") for the selected crime types."""
    return (f"{what}: not available for this survey, because the selected crime types have screener "
            "questions (victim or not) but no count of how many times, so only prevalence can be estimated.")


def fmt(x, digits: int = 1) -> str:
    """A number for prose: thousands separators, '..' when missing (suppressed)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ".."
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ci_text(row, digits: int = 1) -> str:
    """'12.3% (95% CI 10.1 to 14.5)' for a row of the indicator table (a Series, a mapping or
    a row of ``itertuples``); '..' with the reason when suppressed."""
    def get(key, default=None):
        if hasattr(row, "_fields"):
            return getattr(row, key, default)
        return row.get(key, default) if hasattr(row, "get") else row[key]

    if bool(get("suppressed", False)) or pd.isna(get("estimate")):
        return f".. (suppressed: {get('suppression_reason') or 'not estimable'})"
    measure = get("measure", "")
    unit = "%" if measure == "%" else f" {measure}" if measure not in ("ratio", "index", "") else ""
    return f"{fmt(get('estimate'), digits)}{unit} (95% CI {fmt(get('ci_low'), digits)} to {fmt(get('ci_high'), digits)})"


def show_table(table: pd.DataFrame, columns=None, digits: int = 1):
    """A compact, rounded view of indicator rows for a report."""
    cols = columns or ["crime_label", "domain", "domain_value", "estimate", "ci_low", "ci_high", "cv", "n",
                       "n_cases", "reliability", "suppression_reason"]
    view = table[[c for c in cols if c in table.columns]].copy()
    for c in ("estimate", "ci_low", "ci_high", "se"):
        if c in view:
            view[c] = view[c].round(digits)
    if "cv" in view:
        view["cv"] = (view["cv"] * 100).round(1)
        view = view.rename(columns={"cv": "cv %"})
    return view.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def _hover(rows: pd.DataFrame) -> list[str]:
    out = []
    for _, r in rows.iterrows():
        if bool(r["suppressed"]):
            out.append(f"suppressed: {r['suppression_reason']}<br>n = {r['n']:,}")
            continue
        out.append(f"{fmt(r['estimate'], 2)} {r['measure']} (95% CI {fmt(r['ci_low'], 2)} to {fmt(r['ci_high'], 2)})"
                   f"<br>CV {fmt(100 * r['cv'], 1)}%, n = {r['n']:,}, cases = {r['n_cases']:,}"
                   f"<br>{r['reliability']}{': ' + r['flag_reason'] if r['flag_reason'] else ''}")
    return out


def estimate_bars(rows: pd.DataFrame, category: str = "crime_label", series: str | None = None,
                  title: str = "", xaxis_title: str | None = None, height: int | None = None):
    """Horizontal bars of estimates with 95% CI error bars (one bar per ``category``, one colour
    per ``series``).  Suppressed cells have no bar; the hover text says why."""
    import plotly.graph_objects as go

    fig = go.Figure()
    groups = [(None, rows)] if series is None else list(rows.groupby(series, sort=False, observed=True))
    for name, g in groups:
        est = g["estimate"].to_numpy(dtype=float)
        fig.add_trace(go.Bar(
            y=g[category].astype(str), x=est, orientation="h", name=str(name) if name is not None else "",
            error_x=dict(type="data", symmetric=False, array=g["ci_high"].to_numpy(dtype=float) - est,
                         arrayminus=est - g["ci_low"].to_numpy(dtype=float)),
            hovertext=_hover(g), hoverinfo="text+y"))
    measure = rows["measure"].iloc[0] if len(rows) else ""
    n_cat = rows[category].nunique()
    fig.update_layout(title=title, barmode="group", showlegend=series is not None,
                      xaxis_title=xaxis_title or measure, yaxis=dict(autorange="reversed"),
                      height=height or max(320, 60 + 26 * n_cat * (1 if series is None else max(1, rows[series].nunique()))),
                      margin=dict(l=10, r=10, t=60, b=40), legend=dict(orientation="h", y=-0.15))
    return fig


def domain_bars(table: pd.DataFrame, indicator: str, crimes, domain: str, title: str = ""):
    """An indicator by the categories of one domain, one colour per crime type, with the
    overall value for reference."""
    rows = table[(table["indicator"] == indicator) & table["crime_type"].isin(list(crimes))
                 & (table["domain"] == domain)]
    return estimate_bars(rows, category="domain_value", series="crime_label", title=title)


def lorenz_figure(curves: pd.DataFrame, ginis: dict | None = None, title: str = ""):
    """Lorenz curves (population share vs share of victimizations), one per crime type, with the
    line of equality; ``ginis`` maps crime label -> Gini for the legend."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="Equal spread", line=dict(dash="dot", color="grey")))
    for label, g in curves.groupby("label", sort=False):
        gi = (ginis or {}).get(label)
        name = f"{label} (Gini {gi:.2f})" if gi is not None and not math.isnan(gi) else str(label)
        fig.add_trace(go.Scatter(x=g["population_share"], y=g["victimization_share"], mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title="Share of the population (least to most victimized)",
                      yaxis_title="Share of victimizations", xaxis=dict(tickformat=".0%"),
                      yaxis=dict(tickformat=".0%"), height=480, legend=dict(orientation="h", y=-0.2))
    return fig


def ratio_forest(table: pd.DataFrame, ratio: str = "odds_ratio", low: str = "or_ci_low", high: str = "or_ci_high",
                 title: str = "", label: str = "Odds ratio"):
    """Forest plot of odds or rate ratios with 95% CIs (log scale), intercept left out."""
    import plotly.graph_objects as go

    t = table[table["term"] != "Intercept"]
    fig = go.Figure(go.Scatter(
        x=t[ratio], y=t["term"], mode="markers",
        error_x=dict(type="data", symmetric=False, array=t[high] - t[ratio], arrayminus=t[ratio] - t[low]),
        hovertext=[f"{r:.2f} (95% CI {lo:.2f} to {hi:.2f}), p = {p:.3g}"
                   for r, lo, hi, p in zip(t[ratio], t[low], t[high], t["p_value"])], hoverinfo="text+y"))
    fig.add_vline(x=1, line_dash="dot", line_color="grey")
    fig.update_layout(title=title, xaxis_type="log", xaxis_title=f"{label} (log scale)", showlegend=False,
                      yaxis=dict(autorange="reversed"), height=max(320, 80 + 24 * len(t)),
                      margin=dict(l=10, r=10, t=60, b=40))
    return fig


# ---------------------------------------------------------------------------------------------
# the indicator table on disk
# ---------------------------------------------------------------------------------------------
def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    return o


DESIGN_NOTES = {
    "srswr": "simple random sampling with replacement assumed: the file has no strata or PSU; standard errors "
             "ignore clustering and stratification",
    "no_psu": "stratified simple random sampling assumed: the file has no PSU; standard errors ignore clustering",
    "no_strata": "clustered sampling without strata assumed: the file has no strata; standard errors ignore "
                 "stratification",
}
"""What a report says when the spec gives fewer design variables than a complex sample has."""


def design_info(spec) -> dict:
    """The design a run's estimates assume, from the spec: ``kind`` (``full``: strata and PSU;
    ``replicate``: replicate weights; ``srswr``: weights only; ``no_psu``; ``no_strata``), the
    design columns and ``note``: one sentence stating a simplified design ("" otherwise), the
    manifest's ``design`` entry, the reports' and the dashboards' design note."""
    d = spec.design
    strata = [d.strata] if isinstance(d.strata, str) else list(d.strata or [])
    psu = [d.psu] if isinstance(d.psu, str) else list(d.psu or [])
    if d.replicate is not None:
        kind = "replicate"
    elif not strata and not psu:
        kind = "srswr"
    elif not psu:
        kind = "no_psu"
    elif not strata:
        kind = "no_strata"
    else:
        kind = "full"
    return {"kind": kind, "weights": list(d.weight_columns()), "strata": strata, "psu": psu,
            "replicate_weights": d.replicate is not None, "note": DESIGN_NOTES.get(kind, "")}


def table_fingerprint(values: dict) -> str:
    """What determines an indicator table: spec, data, period, selections, rules."""
    keys = ("spec", "data_dir", "period", "domains", "crime_types", "publication", "cap_rule")
    return hashlib.sha256(json.dumps(_jsonable({k: values.get(k) for k in keys}), sort_keys=True).encode()).hexdigest()


def table_metadata(table: pd.DataFrame, data, values: dict | None = None) -> dict:
    """The indicator table's metadata: survey, source, rules, definitions, notes."""
    from .indicators import INDICATORS

    spec = data.spec
    fams = list(dict.fromkeys(table["indicator"]))
    return _jsonable({
        "survey": spec.survey, "title": spec.title, "period": spec.period, "source": spec.source,
        "licence": spec.licence, "publication_rule": table.attrs.get("publication_rule") or {},
        "cap_rule": sorted({c for c in table["cap_rule"].unique() if c}),
        "notes": list(table.attrs.get("notes") or []),
        "definitions": {f: {"label": INDICATORS[f].label, "measure": INDICATORS[f].measure,
                            "definition": INDICATORS[f].definition, "sdg": INDICATORS[f].sdg} for f in fams},
        "rows": int(len(table)), "columns": list(table.columns),
        "fingerprint": table_fingerprint(values or {}), "design": design_info(spec),
    })


def write_indicator_table(table: pd.DataFrame, out_dir, data, values: dict | None = None) -> list[Path]:
    """Write ``indicators.csv``, ``indicators.parquet`` and ``indicators.meta.json`` into
    ``out_dir``.  The same table gives the same bytes (no timestamps)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, pq, meta = (out / f for f in TABLE_FILES)
    tmp = out / ".indicators.tmp"
    tmp.mkdir(exist_ok=True)
    neutral_frame(table).to_csv(tmp / csv.name, index=False, lineterminator="\n")
    plain = table.copy()
    plain.attrs = {}
    plain.to_parquet(tmp / pq.name, index=False)
    (tmp / meta.name).write_text(json.dumps(table_metadata(table, data, values), indent=1, sort_keys=True) + "\n",
                                 encoding="utf-8")
    written = [csv, pq, meta]
    grid = tile_grid_frame(data.spec, table)
    if grid is not None:
        neutral_frame(grid).to_csv(tmp / TILE_GRID_FILE, index=False, lineterminator="\n")
        written.append(out / TILE_GRID_FILE)
    from .areas import AREAS_FILE, area_collection  # a spec's GeoJSON map areas, checked (issue 13)

    areas = area_collection(data.spec, getattr(data, "spec_path", None), table)
    if areas is not None:
        (tmp / AREAS_FILE).write_text(json.dumps(areas, separators=(",", ":")) + "\n", encoding="utf-8")
        written.append(out / AREAS_FILE)
    for f in written:
        (tmp / f.name).replace(f)
    tmp.rmdir()
    return written


TILE_GRID_FILE = "tile_grid.csv"


def tile_grid_frame(spec, table: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The tile-grid maps the spec declares (``domains.<name>.tile_grid``) as one table with
    columns domain, domain_value, row, col (the dashboards' map input), or None.  With ``table``,
    a grid value that is not a published value of its domain is an error naming it."""
    rows = []
    for name, dom in spec.domains.items():
        if not dom.tile_grid:
            continue
        if table is not None:
            published = set(table.loc[table["domain"] == name, "domain_value"].astype(str))
            unknown = sorted(set(dom.tile_grid) - published)
            if published and unknown:
                raise SurveyError(f"spec domain '{name}': tile_grid value(s) {', '.join(unknown)} are not values of "
                                  f"the domain (published: {', '.join(sorted(published))})")
        for value, (r, c) in dom.tile_grid.items():
            rows.append({"domain": name, "domain_value": str(value), "row": int(r), "col": int(c)})
    return pd.DataFrame(rows, columns=["domain", "domain_value", "row", "col"]) if rows else None


def read_indicator_table(out_dir, values: dict | None = None) -> pd.DataFrame | None:
    """The indicator table written in ``out_dir`` (Parquet), or None when there is none or it
    was made with other parameters (``values``' fingerprint)."""
    out = Path(out_dir)
    pq, meta = out / "indicators.parquet", out / "indicators.meta.json"
    if not (pq.exists() and meta.exists()):
        return None
    m = json.loads(meta.read_text(encoding="utf-8"))
    if values is not None and m.get("fingerprint") != table_fingerprint(values):
        return None
    table = pd.read_parquet(pq)
    table.attrs["publication_rule"] = m.get("publication_rule")
    table.attrs["notes"] = m.get("notes")
    return table


# ---------------------------------------------------------------------------------------------
# Excel
# ---------------------------------------------------------------------------------------------
def rule_text(rule: dict) -> str:
    """The publication rule in words, with its effective parameters."""
    from . import quality

    preset = (rule or {}).get("preset", "none")
    fn = quality.RULES.get(preset)
    params = {}
    if fn is not None:
        params = {k: p.default for k, p in inspect.signature(fn).parameters.items()
                  if p.default is not inspect.Parameter.empty}
    params.update({k: v for k, v in (rule or {}).items() if k != "preset" and v is not None})
    bands = params.get("cv_bands", (15.0, 30.0))
    if preset == "bjs":
        text = (f"BJS: estimates resting on {params.get('min_cases', 10)} or fewer sample cases or with a CV above "
                f"{params.get('max_cv', 50.0):g}% are flagged 'interpret with caution'; nothing is suppressed")
    elif preset == "ons":
        text = (f"ONS: estimates on an unweighted base below {params.get('min_base', 50)} are suppressed; "
                f"reliability bands by CV (high up to {bands[0]:g}%, moderate up to {bands[1]:g}%, low above)")
    elif preset == "cv_bands":
        text = (f"CV bands: reliability high up to {bands[0]:g}%, moderate up to {bands[1]:g}%, low above"
                + ("; low-reliability estimates are suppressed" if params.get("suppress_low") else ""))
    else:
        text = f"none: reliability bands by CV ({bands[0]:g}%, {bands[1]:g}%); nothing suppressed"
    return (text + ". Secondary suppression: when a single cell of a domain is suppressed and the other cells and "
            "the overall value would give it back, the next smallest cell is suppressed too. Cells without a "
            "sample case are marked 'no sample cases'.")


def _sheet_name(name: str, used: set) -> str:
    base = "".join(ch for ch in name if ch not in "[]:*?/\\")[:31] or "sheet"
    out, i = base, 2
    while out.lower() in used:
        out = f"{base[:28]}~{i}"
        i += 1
    used.add(out.lower())
    return out


def write_workbook(table: pd.DataFrame, meta: dict, path, run: dict | None = None) -> Path:
    """Excel workbook: a ``notes`` sheet (definitions, suppression rule, cap rule, source, date,
    run) and one sheet per indicator family."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    from .indicators import INDICATORS

    path = Path(path)
    run = run or {}
    families = [f for f in INDICATORS if f in set(table["indicator"])] + \
        [f for f in dict.fromkeys(table["indicator"]) if f not in INDICATORS]
    notes = [
        ("Survey", f"{meta.get('title') or ''} ({meta.get('survey')})"),
        ("Period", str(table["period"].iloc[0]) if len(table) else meta.get("period") or ""),
        ("Source", meta.get("source") or ""),
        ("Licence", meta.get("licence") or ""),
        ("Suppression rule", rule_text(meta.get("publication_rule") or {})),
        ("Cap rule", "; ".join(meta.get("cap_rule") or []) or "no victimization counts"),
        ("Date", run.get("date") or _dt.date.today().isoformat()),
        ("Run", run.get("name", "")),
        ("Parameters", json.dumps(run.get("parameters", {}), sort_keys=True, default=str)),
        ("Software", run.get("software", "")),
        ("Notes", "; ".join(meta.get("notes") or []) or "none"),
        ("Design", (meta.get("design") or {}).get("note") or "as declared in the spec (weights, strata, PSU)"),
        ("Reading the sheets", "One sheet per indicator family; one row per crime type (or perception item), "
                               "domain and category. Suppressed cells have no estimate; 'reliability' and "
                               "'flag_reason' carry the publication rule's flags. CIs are 95%."),
    ]
    defs = pd.DataFrame([{"indicator": f, "sheet": f, "label": d["label"], "measure": d["measure"],
                          "definition": d["definition"], "SDG": d["sdg"]}
                         for f, d in (meta.get("definitions") or {}).items()])
    tmp = path.with_name(f".{path.name}.tmp")
    used: set = set()
    sheet_names = {}
    with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        notes_df = neutral_frame(pd.DataFrame(notes, columns=["item", "value"]))
        defs = neutral_frame(defs)
        notes_df.to_excel(xw, sheet_name=_sheet_name("notes", used), index=False)
        start = len(notes_df) + 3
        if len(defs):
            defs.to_excel(xw, sheet_name="notes", index=False, startrow=start)
        for fam in families:
            rows = table[table["indicator"] == fam]
            sheet = _sheet_name(fam, used)
            sheet_names[fam] = sheet
            neutral_frame(rows[[c for c in EXCEL_COLUMNS if c in rows.columns]]).to_excel(
                xw, sheet_name=sheet, index=False)
        wb = xw.book
        ws = wb["notes"]
        ws.column_dimensions["A"].width = 22
        ws.column_dimensions["B"].width = 100
        for row in ws.iter_rows(min_row=1, max_row=len(notes) + 1):
            for c in row:
                c.alignment = Alignment(wrap_text=True, vertical="top")
        ws.cell(row=1, column=1).font = Font(bold=True)
        for col, width in zip("CDEF", (10, 12, 90, 8)):
            ws.column_dimensions[col].width = width
        for fam in families:
            ws = wb[sheet_names[fam]]
            ws.freeze_panes = "A2"
            ws.auto_filter.ref = ws.dimensions
            for i, c in enumerate([c for c in EXCEL_COLUMNS if c in table.columns], start=1):
                ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(c) + 4))
                if c in ("estimate", "se", "ci_low", "ci_high", "cv", "deff", "weighted_base"):
                    fmt_ = "#,##0" if c == "weighted_base" else "0.000"
                    for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                        cell.number_format = fmt_
        wb.properties.creator = "survey workbench"
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# HTML reports
# ---------------------------------------------------------------------------------------------
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style>body{max-width:72em;margin:auto} .jp-Cell{padding:0 1em}</style>{% endblock extra_css %}
"""


def plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def notebook_to_html(nb_path, html_path, title: str | None = None, plotlyjs: str = "file",
                     design_note: str = "") -> Path:
    """An executed notebook as an HTML report without code (as ``nbconvert --no-input``).

    plotlyjs: ``file`` (a ``plotly.min.js`` next to the report, copied there; offline),
    ``inline`` (self-contained, ~4.6 MB per report) or ``cdn``.  No other script is loaded
    from the network (the require.js, MathJax and Mermaid tags of nbconvert's template are
    left out).  ``design_note`` (see :func:`design_info`): shown at the top of the report.
    """
    import jinja2
    import nbformat
    import plotly.io as pio
    from nbconvert import HTMLExporter

    nb_path, html_path = Path(nb_path), Path(html_path)
    nb = nbformat.read(nb_path, as_version=4)
    include = {"file": "directory", "inline": True, "cdn": "cdn"}[plotlyjs]
    k = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") if out.get("output_type") in ("display_data", "execute_result") else None
            if data and isinstance(data.get("text/markdown"), (str, list)):  # spec strings are text, not HTML
                md_text = data["text/markdown"]
                data["text/markdown"] = safe_markdown("".join(md_text) if isinstance(md_text, list) else md_text)
            if not data or PLOTLY_MIME not in data:
                continue
            fig = dict(data[PLOTLY_MIME])
            height = (fig.get("layout") or {}).get("height")
            data["text/html"] = pio.to_html(fig, include_plotlyjs=include if k == 0 else False, full_html=False,
                                            validate=False, div_id=f"figure-{k + 1}",
                                            default_height=f"{height}px" if height else "480px",
                                            config={"displaylogo": False, "responsive": True})
            k += 1
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            extra_loaders=[jinja2.DictLoader({"survey_report.html.j2": _TEMPLATE})],
                            template_file="survey_report.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": html.escape(title or nb_path.stem)}})
    if design_note:
        at = body.find(">", body.find("<body")) + 1
        body = (body[:at] + '\n<p class="survey-design-note" style="max-width:72em;margin:1em auto;padding:.5em 1em;'
                'border-left:4px solid #c77700;background:#fff6e0"><strong>Design:</strong> '
                + html.escape(design_note[:1].upper() + design_note[1:]) + ".</p>" + body[at:])
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html_path)
    if k and plotlyjs == "file":
        js = html_path.parent / "plotly.min.js"
        if not js.exists():
            shutil.copyfile(plotly_js_path(), js)
    return html_path
