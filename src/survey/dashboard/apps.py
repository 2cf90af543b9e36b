"""The five Voilà dashboards as ipywidgets apps on a :class:`~survey.dashboard.data.Publication`.

Each app is a :class:`Dashboard`: dropdown filters (run, period, crime type, indicator, domain,
language: those that make sense), a translated title, a plotly chart in an ``Output``, an HTML
table, a CSV download of exactly the rows shown (with the notes as ``#`` lines) and the notes.
The DOM contract (CSS classes ``svy-*``) is documented in the package docstring.

Widget values are untrusted: :meth:`Dashboard.select` checks every value against the allow-list
the data give for the current selection and refuses anything else (the app state is left as it
was); a refused value from the browser is put back and reported in the status line.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from dataclasses import dataclass, field

import ipywidgets as W
import numpy as np
import pandas as pd

from ..i18n import LANGUAGES, Translator, check_language, language_options
from . import charts
from .data import (
    HEADLINE_INDICATORS,
    PERCEPTION_INDICATORS,
    REPEAT_INDICATORS,
    VICTIMIZATION_INDICATORS,
    DashboardInputError,
    Publication,
    Run,
    check_choice,
)
from .data import publication as _publication

FILTERS = ("run", "period", "indicator", "crime", "domain", "language")
DESIGN_NOTE_KINDS = ("srswr", "no_psu", "no_strata")  # survey.report.design_info kinds that get a note
PLOTLY_MIME = "application/vnd.plotly.v1+json"
GROUP_PREFERENCE = ("property", "household", "personal", "violent")


@dataclass
class Cell:
    text: str
    cls: str = ""


@dataclass
class View:
    """What one render shows: title, figures (plotly figure dicts of :mod:`.charts`), table
    (translated headers, cells) and notes."""

    title: str
    figures: list = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    filename: str = "table"
    message: str = ""


def _safe_name(*parts) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "_", str(p)).strip("_") or "x" for p in parts if p is not None)


def figure_bundle(fig) -> dict:
    """The plotly mime bundle of a figure (a :mod:`~survey.dashboard.charts` dict or a
    ``go.Figure``), as the ``plotly_mimetype`` renderer makes it."""
    if isinstance(fig, dict):
        spec, title = json.loads(charts.to_json(fig)), charts.title_of(fig)
    else:
        spec, title = json.loads(fig.to_json()), fig.layout.title.text or ""
    spec["config"] = {"displaylogo": False, "responsive": True}
    return {PLOTLY_MIME: spec, "text/plain": f"<plotly figure: {title}>"}


def csv_text(view: View) -> str:
    buf = io.StringIO()
    for note in view.notes:
        buf.write("# " + note.replace("\n", " ") + "\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(view.columns)
    for row in view.rows:
        w.writerow([c.text for c in row])
    return buf.getvalue()


def table_html(view: View, tr: Translator) -> str:
    if view.message and not view.rows:
        return f'<p class="svy-message">{html.escape(view.message)}</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in view.columns)
    body = []
    for row in view.rows:
        tds = "".join((f'<td class="{c.cls}">' if c.cls else "<td>") + html.escape(c.text) + "</td>" for c in row)
        body.append(f"<tr>{tds}</tr>")
    msg = f'<p class="svy-message">{html.escape(view.message)}</p>' if view.message else ""
    return (f'{msg}<table class="svy-table-grid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


STYLE = """<style>
.svy-dashboard table.svy-table-grid {border-collapse: collapse; font-size: 13px; margin: 6px 0;}
.svy-dashboard table.svy-table-grid th, .svy-dashboard table.svy-table-grid td {border: 1px solid #ddd; padding: 3px 8px;}
.svy-dashboard table.svy-table-grid th {background: #f3f5f7; text-align: left;}
.svy-dashboard td.svy-suppressed {color: #777; font-style: italic;}
.svy-dashboard td.svy-flagged {background: #fff6e0;}
.svy-dashboard .svy-notes {font-size: 12px; color: #444;}
.svy-dashboard p.svy-design {border-left: 4px solid #c77700; background: #fff6e0; padding: 4px 8px; margin: 4px 0;}
.svy-dashboard .svy-download a {color: #1f5f8b; text-decoration: underline;}
</style>"""


class Dashboard:
    """Base class: filters, rendering and the DOM contract; subclasses give the allow-lists
    (:meth:`allowed`), the option labels (:meth:`label`) and the content (:meth:`build_view`)."""

    name = "dashboard"
    filters: tuple[str, ...] = ("run", "language")
    run_preference: tuple[str, ...] = ("demo",)

    def __init__(self, pub: Publication | None = None, language: str = "en", run: str | None = None, **initial):
        self.pub = pub if pub is not None else _publication()
        self.tr = Translator(check_language(language))
        self.state: dict[str, str | None] = {"language": language, "run": None}
        self.render_count = 0
        self.view: View | None = None
        self.figure_specs: list[dict] = []
        self._figures: list | None = None
        self._syncing = False
        first = run if run is not None else self.pub.default_run(self.run_preference)
        if first is None:
            raise DashboardInputError(f"no published run in {self.pub.root}")
        self.state = self._resolve({"run": first, **initial}, {"language": language, "run": None})
        self._build_widgets()
        self.render()

    # ----- allow-lists ------------------------------------------------------------------------
    @property
    def run(self) -> Run:
        return self.pub.run(self.state["run"])

    def allowed(self, name: str, state: dict) -> list[str]:
        if name == "run":
            return self.pub.run_names()
        if name == "language":
            return list(LANGUAGES)
        if name == "period":
            return self.pub.runs[state["run"]].periods()
        raise KeyError(name)

    def default(self, name: str, allowed: list[str], state: dict) -> str | None:
        return allowed[0] if allowed else None

    def label(self, name: str, value: str) -> str:
        tr, run = self.tr, self.run
        if name == "run":
            desc = self.pub.runs[value].manifest.get("description") or ""
            return f"{value} — {desc}" if desc else value
        if name == "indicator":
            return tr.indicator(value)
        if name == "crime":
            return tr.crime(value, run.crime_label(value), survey=run.survey)
        if name == "domain":
            return tr.domain(value)
        return str(value)

    def _resolve(self, changes: dict, state: dict) -> dict:
        """A new state: each change checked against its allow-list (in filter order, as earlier
        filters narrow later ones); values no longer allowed fall back to the default."""
        unknown = [k for k in changes if k not in self.filters]
        if unknown:
            raise DashboardInputError(f"refused filter {unknown[0][:40]!r}: not a filter of this dashboard")
        new = dict(state)
        for name in self.filters:
            allowed = self.allowed(name, new)
            if name in changes:
                new[name] = check_choice(changes[name], allowed, name)
            elif new.get(name) not in allowed:
                new[name] = self.default(name, allowed, new)
        return new

    # ----- widgets ----------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.widgets: dict[str, W.Dropdown] = {}
        for name in self.filters:
            dd = W.Dropdown(layout=W.Layout(width="auto", min_width="220px"),
                            style={"description_width": "initial"})
            dd.add_class(f"svy-filter-{'crime' if name == 'crime' else name}")
            dd.observe(self._on_widget, names="value")
            self.widgets[name] = dd
        self.title = W.HTML()
        self.title.add_class("svy-title")
        self.design_note = W.HTML()
        self.design_note.add_class("svy-design-note")
        self.chart = W.Output()
        self.chart.add_class("svy-chart")
        self.table = W.HTML()
        self.table.add_class("svy-table")
        self.download = W.HTML()
        self.download.add_class("svy-download")
        self.notes = W.HTML()
        self.notes.add_class("svy-notes")
        self.status = W.HTML()
        self.status.add_class("svy-status")
        bar = W.HBox(list(self.widgets.values()), layout=W.Layout(flex_flow="row wrap"))
        self.root = W.VBox([W.HTML(STYLE), self.title, self.design_note, bar, self.chart, self.table, self.download, self.notes,
                            self.status])
        self.root.add_class("svy-dashboard")
        self.root.add_class(f"svy-dashboard-{self.name}")
        self._sync_widgets()

    def _sync_widgets(self) -> None:
        self._syncing = True
        try:
            for name, dd in self.widgets.items():
                if name == "language":
                    opts = language_options()
                else:
                    opts = [(self.label(name, v), v) for v in self.allowed(name, self.state)]
                with dd.hold_sync():  # one message per dropdown, only of what changed (none if nothing did)
                    if list(dd.options) != opts:
                        dd.options = opts
                    dd.value = self.state.get(name) if opts else None
                    dd.description = self.tr(f"filter.{self.filter_label(name)}")
                    dd.disabled = len(opts) <= 1 and name not in ("run", "language")
        finally:
            self._syncing = False

    def filter_label(self, name: str) -> str:
        return name

    def _on_widget(self, change) -> None:
        if self._syncing:
            return
        name = next(n for n, w in self.widgets.items() if w is change["owner"])
        try:
            self.select(**{name: change["new"]})
        except DashboardInputError as e:
            self._sync_widgets()
            self._set_status(error=str(e))

    # ----- public API -------------------------------------------------------------------------
    def select(self, **changes) -> View:
        """Change filters (values are checked against the allow-lists; a refused value raises
        :class:`DashboardInputError` and changes nothing), then re-render."""
        new = self._resolve(changes, self.state)
        self.state = new
        self.tr = Translator(new["language"])
        self._sync_widgets()
        return self.render()

    def render(self) -> View:
        tr = self.tr
        view = self.build_view()
        self.view = view
        self.figure_specs = [f for f in view.figures if f is not None]
        self._figures = None
        self.title.value = f"<h2>{html.escape(view.title)}</h2>"
        design = self.design_text()
        self.design_note.value = f'<p class="svy-design">{html.escape(design)}</p>' if design else ""
        self.chart.outputs = tuple({"output_type": "display_data", "data": figure_bundle(f), "metadata": {}}
                                   for f in self.figure_specs) or (
            {"output_type": "display_data", "data": {"text/plain": view.message or tr("word.no_data")}, "metadata": {}},)
        self.table.value = table_html(view, tr)
        data = base64.b64encode(csv_text(view).encode("utf-8")).decode("ascii")
        self.download.value = (f'<a download="{html.escape(view.filename)}.csv" '
                               f'href="data:text/csv;charset=utf-8;base64,{data}">{html.escape(tr("word.download"))}</a>')
        self.notes.value = "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in view.notes) + "</ul>"
        self.render_count += 1
        self._set_status()
        return view

    @property
    def figures(self) -> list:
        """The figures shown, as ``plotly.graph_objects.Figure`` (made on first access: rendering
        sends the plain figure dicts of :attr:`figure_specs`)."""
        if self._figures is None:
            self._figures = [charts.to_figure(f) for f in self.figure_specs]
        return self._figures

    def _set_status(self, error: str = "") -> None:
        err = f' <span class="svy-error">{html.escape(error)}</span>' if error else ""
        self.status.value = f'<span class="svy-render" data-count="{self.render_count}"></span>{err}'

    def csv(self) -> str:
        return csv_text(self.view)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.root)

    # ----- helpers for subclasses -------------------------------------------------------------
    def rule_text(self) -> str:
        tr = self.tr
        rule = dict(self.run.meta.get("publication_rule") or {})
        preset = rule.get("preset", "none")
        if preset == "ons":
            text = tr("rule.ons", min_base=rule.get("min_base", 50))
        elif preset == "bjs":
            text = tr("rule.bjs", min_cases=rule.get("min_cases", 10), max_cv=tr.number(rule.get("max_cv", 50), 0))
        elif preset == "cv_bands":
            lo, hi = rule.get("cv_bands", (15, 30))
            text = tr("rule.cv_bands", low=tr.number(lo, 0), high=tr.number(hi, 0))
            if rule.get("suppress_low"):
                text += " " + tr("rule.cv_bands_suppress")
        else:
            text = tr("rule.none")
        return tr("note.rule", rule=text + " " + tr("rule.secondary"))

    def design_text(self) -> str:
        """The run's design note (translated) when its file has no strata or PSU, else ""."""
        run = self.run
        design = run.manifest.get("design") or run.meta.get("design") or {}
        kind = design.get("kind") if isinstance(design, dict) else None
        return self.tr(f"note.design.{kind}") if kind in DESIGN_NOTE_KINDS else ""

    def common_notes(self, files: list[str], definition: str | None = None) -> list[str]:
        tr = self.tr
        run = self.run
        out = []
        if definition:
            out.append(tr("note.definition", text=definition))
        design = self.design_text()
        if design:
            out.append(design)
        out.append(self.rule_text())
        out.append(tr("note.ci"))
        src = run.meta.get("source") or run.manifest.get("spec", {}).get("source") or ""
        title = run.meta.get("title") or ""
        out.append(tr("note.source", source=" — ".join(s for s in (title, src) if s)))
        period = self.state.get("period") or ", ".join(run.periods())
        out.append(tr("note.run", run=run.name, period=period))
        out.append(tr("note.file", file=", ".join(f"{run.name}/{f}" for f in files)))
        return out

    def value_label(self, domain: str, value: str) -> str:
        return self.tr("value.all") if domain == "overall" else self.tr.value(value)

    def estimate_cells(self, r) -> list[Cell]:
        """Estimate, CI, base and reliability cells of one indicator row: suppressed cells show
        the reason and never a number, flagged cells the number with a dagger and the reason."""
        tr = self.tr
        if bool(r["suppressed"]):
            reason = tr.reason(r["suppression_reason"], r["n"])
            return [Cell(tr("cell.suppressed", reason=reason), "svy-suppressed"), Cell("", "svy-suppressed"),
                    Cell(tr.number(r["n"], 0)), Cell(tr("word.suppressed"))]
        value = tr.in_measure(r["estimate"], r["measure"])
        ci = tr.ci(r["ci_low"], r["ci_high"], 2 if r["measure"] in ("ratio", "index") else 1)
        if r["flag_reason"]:
            return [Cell(tr("cell.flagged", value=value, mark=charts.FLAG, reason=tr.reason(r["flag_reason"])),
                         "svy-flagged"), Cell(ci), Cell(tr.number(r["n"], 0)), Cell(tr.reliability(r["reliability"]))]
        return [Cell(value), Cell(ci), Cell(tr.number(r["n"], 0)), Cell(tr.reliability(r["reliability"]))]

    def estimate_headers(self) -> list[str]:
        tr = self.tr
        return [tr("col.estimate"), tr("col.ci"), tr("col.n"), tr("col.reliability")]

    def indicator_view(self, indicator: str, crime: str, domain: str, kind: str) -> View:
        """The shared view of one indicator and crime type (or item) by a domain: bars with CIs
        (overall: one bar per crime type or item of the same indicator), table, notes."""
        tr, run, st = self.tr, self.run, self.state
        period = st.get("period")
        if domain == "overall":
            crimes = run.crime_types(indicator) if kind != "fear" else run.crime_types(PERCEPTION_INDICATORS)
            parts = []
            for c in crimes:
                ind = indicator if kind != "fear" else self.item_indicator(c)
                parts.append(run.cells(ind, c, "overall", period))
            rows = pd.concat(parts) if parts else run.cells(indicator, crime, domain, period)
            labels = [tr.crime(c, run.crime_label(c), survey=run.survey) for c in rows["crime_type"]]
            first_col = tr("col.crime")
            title = tr("chart.by_crime", indicator=tr.indicator(indicator), period=period or ", ".join(run.periods()))
            xaxis = tr("axis.crime")
        else:
            rows = run.cells(indicator, crime, domain, period)
            labels = [self.value_label(domain, v) for v in rows["domain_value"]]
            first_col = tr.domain(domain)
            title = tr("chart.by_domain", indicator=tr.indicator(indicator),
                       crime=tr.crime(crime, run.crime_label(crime), survey=run.survey),
                       domain=tr.domain(domain),
                       period=period or ", ".join(run.periods()))
            xaxis = tr.domain(domain)
        measure = rows["measure"].iloc[0] if len(rows) else ""
        yaxis = tr("axis.estimate", indicator=tr.indicator(indicator), measure=tr.measure(measure))
        figures = []
        previous, prev_name = None, None
        changes = run.changes(indicator, crime, domain) if domain != "overall" else None
        if changes is not None and len(changes):
            by_value = dict(zip(changes["domain_value"].astype(str), changes["estimate_a"]))
            previous = [by_value.get(str(v)) for v in rows["domain_value"]]
            prev_name = str(changes["a"].iloc[0])
        if len(rows):
            figures.append(charts.estimate_bars(rows, labels, tr, title, xaxis, yaxis,
                                                name=period or run.periods()[0], previous=previous,
                                                previous_name=prev_name))
            grid = run.tile_grid
            if grid is not None and domain != "overall":
                g = grid[grid["domain"].to_numpy() == domain]
                if len(g):
                    figures.append(charts.tile_map(rows, g, labels, tr, tr("chart.map", title=title)))
        table = [[Cell(lab)] + self.estimate_cells(r) for lab, (_, r) in zip(labels, rows.iterrows())]
        definition = tr.definition(indicator, rows["definition"].iloc[0] if len(rows) else "")
        files = ["indicators.parquet"] + (["comparison.csv"] if previous is not None else [])
        if len(figures) > 1:
            files.append("tile_grid.csv")
        notes = self.common_notes(files, definition)
        if previous is not None:
            notes.insert(2, tr("note.previous", period=prev_name))
        return View(title=title, figures=figures, columns=[first_col] + self.estimate_headers(), rows=table,
                    notes=notes, filename=_safe_name(self.name, run.name, indicator, crime, domain, tr.lang),
                    message="" if len(rows) else tr("word.no_data"))

    def item_indicator(self, item: str) -> str:
        t = self.run.indicators
        hit = t.loc[(t["crime_type"].to_numpy() == item) & t["indicator"].isin(PERCEPTION_INDICATORS).to_numpy(),
                    "indicator"]
        return str(hit.iloc[0]) if len(hit) else "feeling_safe"

    def build_view(self) -> View:  # pragma: no cover - abstract
        raise NotImplementedError


def _prefer(allowed: list[str], preference) -> str | None:
    for p in preference:
        if p in allowed:
            return p
    return allowed[0] if allowed else None


# ---------------------------------------------------------------------------------------------
# overview
# ---------------------------------------------------------------------------------------------
class OverviewApp(Dashboard):
    """Headline indicators (prevalence, incidence, reporting rate, feeling safe) with CIs and the
    change since the previous wave (comparison.csv), marked significant or not."""

    name = "overview"
    filters = ("run", "period", "crime", "language")
    run_preference = ("synthetic-two-waves", "demo")

    def allowed(self, name, state):
        if name == "crime":
            return self.pub.runs[state["run"]].crime_types("prevalence")
        return super().allowed(name, state)

    def default(self, name, allowed, state):
        if name == "crime":
            return _prefer(allowed, GROUP_PREFERENCE)
        return super().default(name, allowed, state)

    def build_view(self) -> View:
        tr, run, st = self.tr, self.run, self.state
        crime, period = st["crime"], st["period"]
        crime_name = tr.crime(crime, run.crime_label(crime), survey=run.survey)
        title = tr("overview.chart_title", crime=crime_name, period=period)
        items = []
        for ind in HEADLINE_INDICATORS:
            if ind == "feeling_safe":
                c = next(iter(run.crime_types("feeling_safe")), None)
            else:
                c = crime
            if c is None:
                continue
            rows = run.cells(ind, c, "overall", period)
            if len(rows):
                items.append((ind, c, rows.iloc[0]))
        has_previous = run.comparison is not None
        columns = [tr("col.indicator"), tr("col.crime")] + self.estimate_headers()[:2] + [
            tr("col.change"), tr("col.significance")]
        table, previous, prev_name = [], [], None
        for ind, c, r in items:
            cells = self.estimate_cells(r)[:2]
            change_cells = [Cell(tr("word.no_previous_wave")), Cell("")]
            prev = None
            if has_previous:
                ch = run.changes(ind, c, "overall")
                if ch is not None and len(ch) and not pd.isna(ch["difference"].iloc[0]):
                    x = ch.iloc[0]
                    prev, prev_name = x["estimate_a"], str(x["a"])
                    sign = "+" if float(x["difference"]) > 0 else ""
                    dec = 2 if r["measure"] in ("ratio", "index") else 1
                    unit = tr("measure.points") if r["measure"] == "%" else ""
                    diff = sign + tr.number(x["difference"], dec) + (f" {unit}" if unit else "")
                    sig = bool(x["significant"]) if not pd.isna(x["significant"]) else False
                    change_cells = [Cell(tr("overview.change", change=diff, period=prev_name)),
                                    Cell(tr("word.significant" if sig else "word.not_significant")
                                         + f" (p = {tr.p(x['p_value'])})", "svy-significant" if sig else "")]
                elif ch is not None and len(ch):
                    prev_name = str(ch["a"].iloc[0])
                    change_cells = [Cell(tr("word.not_comparable")), Cell("")]
            previous.append(prev)
            crime_lab = tr.crime(c, run.crime_label(c), survey=run.survey)
            table.append([Cell(tr.indicator(ind)), Cell(crime_lab)] + cells + change_cells)
        fig = charts.headline(items, previous, prev_name, tr, title) if items else None
        definitions = "; ".join(f"{tr.indicator(i)}: {tr.definition(i, r['definition'])}" for i, _, r in items)
        files = ["indicators.parquet"] + (["comparison.csv"] if has_previous else [])
        notes = self.common_notes(files, definitions)
        notes.insert(2, tr("note.change") if has_previous else tr("note.no_previous"))
        return View(title=title, figures=[fig], columns=columns, rows=table, notes=notes,
                    filename=_safe_name(self.name, run.name, crime, tr.lang),
                    message="" if items else tr("word.no_data"))


# ---------------------------------------------------------------------------------------------
# victimization explorer
# ---------------------------------------------------------------------------------------------
class _IndicatorCrimeDomain(Dashboard):
    """Filters indicator (among ``indicator_set``) -> crime type -> domain, each allowed list
    narrowed by the choices before it."""

    indicator_set: tuple = ()

    def allowed(self, name, state):
        if name in ("run", "language", "period"):
            return super().allowed(name, state)
        run = self.pub.runs[state["run"]]
        if name == "indicator":
            return run.indicator_codes(self.indicator_set)
        if name == "crime":
            return run.crime_types(state.get("indicator"))
        if name == "domain":
            return run.domains(state.get("indicator"), state.get("crime"))
        return super().allowed(name, state)


class VictimizationApp(_IndicatorCrimeDomain):
    """Crime type x domain: any victimization indicator with CI error bars (and a tile-grid map
    by region when the run publishes one)."""

    name = "victimization"
    filters = ("run", "period", "indicator", "crime", "domain", "language")
    indicator_set = VICTIMIZATION_INDICATORS

    def default(self, name, allowed, state):
        if name == "crime":
            return _prefer(allowed, GROUP_PREFERENCE)
        if name == "domain":
            return _prefer(allowed, ("region", "urbanicity", "urban"))
        return super().default(name, allowed, state)

    def build_view(self) -> View:
        st, tr = self.state, self.tr
        if not st.get("indicator") or not st.get("crime"):
            return View(title=tr("app.victimization.title"), message=tr("victimization.no_indicators"),
                        notes=self.common_notes(["indicators.parquet"]),
                        filename=_safe_name(self.name, self.run.name, tr.lang))
        return self.indicator_view(st["indicator"], st["crime"], st["domain"], "victimization")


# ---------------------------------------------------------------------------------------------
# fear of crime
# ---------------------------------------------------------------------------------------------
class FearApp(Dashboard):
    """Feeling safe after dark and worry items by domain."""

    name = "fear"
    filters = ("run", "crime", "domain", "language")

    def filter_label(self, name):
        return "item" if name == "crime" else name

    def allowed(self, name, state):
        if name in ("run", "language", "period"):
            return super().allowed(name, state)
        run = self.pub.runs[state["run"]]
        if name == "crime":
            return run.crime_types(PERCEPTION_INDICATORS)
        if name == "domain":
            item = state.get("crime")
            return run.domains(None, item) if item else []
        return super().allowed(name, state)

    def default(self, name, allowed, state):
        if name == "domain":
            return _prefer(allowed, ("sex", "age_band", "region"))
        return super().default(name, allowed, state)

    def build_view(self) -> View:
        tr, st = self.tr, self.state
        if not st.get("crime"):
            title = tr("app.fear.title")
            return View(title=title, message=tr("fear.no_items"), notes=self.common_notes(["indicators.parquet"]),
                        filename=_safe_name(self.name, self.run.name, tr.lang))
        item = st["crime"]
        return self.indicator_view(self.item_indicator(item), item, st["domain"], "fear")


# ---------------------------------------------------------------------------------------------
# repeat victimization
# ---------------------------------------------------------------------------------------------
class RepeatApp(_IndicatorCrimeDomain):
    """Concentration, repeat victims, share of victimizations against repeat victims and the
    Gini coefficients with their Lorenz curves (lorenz.csv)."""

    name = "repeat"
    filters = ("run", "indicator", "crime", "domain", "language")
    indicator_set = REPEAT_INDICATORS

    def default(self, name, allowed, state):
        if name == "crime":
            return _prefer(allowed, GROUP_PREFERENCE)
        if name == "domain":
            return _prefer(allowed, ("overall",))
        return super().default(name, allowed, state)

    def build_view(self) -> View:
        tr, run, st = self.tr, self.run, self.state
        ind, crime, domain = st["indicator"], st["crime"], st["domain"]
        if not ind or not crime:  # screeners only: no count of victimizations, nothing repeats
            return View(title=tr("app.repeat.title"), message=tr("repeat.no_counts"),
                        notes=self.common_notes(["indicators.parquet"]),
                        filename=_safe_name(self.name, run.name, tr.lang))
        view = self.indicator_view(ind, crime, domain, "repeat")
        lor = run.lorenz
        if ind in ("gini", "gini_victims") and lor is not None:
            over = "population" if ind == "gini" else "victims"
            m = (lor["crime_type"].to_numpy() == crime) & (lor["over"].to_numpy() == over)
            sub = lor[m]
            dm = sub["domain"].to_numpy() == domain
            sub = sub[dm] if dm.any() else sub[sub["domain"].to_numpy() == "overall"]
            curves = []
            for (d, v), g in sub.groupby(["domain", "domain_value"], sort=False):
                curves.append((self.value_label(d, v), g["population_share"], g["victimization_share"]))
            if curves:
                crime_name = tr.crime(crime, run.crime_label(crime), survey=run.survey)
                title = tr("repeat.lorenz_title", crime=crime_name, over=tr(f"repeat.over_{over}"))
                axis_x = tr("axis.population_share") if over == "population" else tr("axis.victim_share")
                fig = charts.lorenz(curves, tr, title, xaxis=axis_x)
                view.figures = [fig] + view.figures
                view.title = title
                view.notes.insert(2, tr("note.lorenz"))
                view.notes[-1] = tr("note.file", file=f"{run.name}/indicators.parquet, {run.name}/lorenz.csv")
        return view


# ---------------------------------------------------------------------------------------------
# risk and protective factors
# ---------------------------------------------------------------------------------------------
RISK_VIEWS = ("odds_ratio", "auc", "brier", "log_loss")
_TERM = re.compile(r"^C\((?P<var>[A-Za-z0-9_]+)\)\[T\.(?P<level>.*)\]$")


class RiskApp(Dashboard):
    """Odds-ratio forest plot (risk_models.csv) and subgroup model performance
    (risk_performance.csv: weighted out-of-fold AUC, Brier score, log loss)."""

    name = "risk"
    filters = ("run", "crime", "indicator", "domain", "language")

    def filter_label(self, name):
        return {"indicator": "view", "domain": "subgroup", "crime": "crime"}.get(name, name)

    def allowed(self, name, state):
        if name in ("run", "language", "period"):
            return super().allowed(name, state)
        run = self.pub.runs[state["run"]]
        models, perf = run.risk_models, run.risk_performance
        if name == "crime":
            found = []
            for t in (models, perf):
                if t is not None:
                    found += list(t["crime_type"].astype(str))
            return list(dict.fromkeys(found))
        if name == "indicator":
            out = []
            if models is not None and (models["crime_type"].astype(str).to_numpy() == state.get("crime")).any():
                out.append("odds_ratio")
            if perf is not None and (perf["crime_type"].astype(str).to_numpy() == state.get("crime")).any():
                out += ["auc", "brier", "log_loss"]
            return out
        if name == "domain":
            if perf is None or state.get("indicator") in (None, "odds_ratio"):
                return ["overall"]
            m = perf["crime_type"].astype(str).to_numpy() == state.get("crime")
            return list(dict.fromkeys(perf.loc[m, "subgroup"].astype(str)))
        return super().allowed(name, state)

    def default(self, name, allowed, state):
        if name == "crime":
            return _prefer(allowed, GROUP_PREFERENCE)
        if name == "domain":
            return _prefer(allowed, ("sex", "age_band", "region", "overall"))
        return super().default(name, allowed, state)

    def label(self, name, value):
        tr = self.tr
        if name == "indicator":
            return tr(f"risk.view.{value}")
        if name == "domain":
            return tr.domain(value)
        return super().label(name, value)

    def term_label(self, term: str) -> str:
        m = _TERM.match(str(term))
        if m:
            return f"{self.tr.domain(m['var'])}: {self.tr.value(m['level'])}"
        return str(term)

    def build_view(self) -> View:
        tr, run, st = self.tr, self.run, self.state
        crime = st.get("crime")
        if not crime:
            return View(title=tr("app.risk.title"), message=tr("risk.no_models"),
                        notes=self.common_notes(["indicators.parquet"]),
                        filename=_safe_name(self.name, run.name, tr.lang))
        crime_name = tr.crime(crime, run.crime_label(crime), survey=run.survey)
        if st["indicator"] == "odds_ratio":
            t = run.risk_models
            t = t[(t["crime_type"].astype(str).to_numpy() == crime) & (t["term"].astype(str).to_numpy() != "Intercept")]
            labels = [self.term_label(x) for x in t["term"]]
            title = tr("risk.forest_title", crime=crime_name)
            fig = charts.forest(labels, t["odds_ratio"], t["or_ci_low"], t["or_ci_high"], tr, title)
            rows = [[Cell(lab), Cell(tr.number(o, 2)), Cell(tr.ci(lo, hi, 2)), Cell(tr.p(p))]
                    for lab, o, lo, hi, p in zip(labels, t["odds_ratio"], t["or_ci_low"], t["or_ci_high"], t["p_value"])]
            columns = [tr("col.term"), tr("col.odds_ratio"), tr("col.ci"), tr("col.p_value")]
            n = int(t["n"].iloc[0]) if len(t) else 0
            notes = self.common_notes(["risk_models.csv"], tr("risk.or_definition", n=tr.number(n, 0)))
            return View(title=title, figures=[fig], columns=columns, rows=rows, notes=notes,
                        filename=_safe_name(self.name, run.name, crime, "odds_ratio", tr.lang))
        metric, sub = st["indicator"], st["domain"]
        p = run.risk_performance
        m = (p["crime_type"].astype(str).to_numpy() == crime) & (p["subgroup"].astype(str).to_numpy() == sub)
        p = p[m]
        labels = [self.value_label(sub, g) for g in p["group"].astype(str)]
        model = str(p["model"].iloc[0]) if len(p) else ""
        title = tr("risk.performance_title", metric=tr(f"risk.view.{metric}"), crime=crime_name,
                   subgroup=tr.domain(sub))
        fig = charts.metric_bars(labels, p[metric], tr, title, tr.domain(sub), tr(f"risk.view.{metric}"),
                                 notes=list(p["note"].fillna("").astype(str)))
        rows = []
        for lab, (_, r) in zip(labels, p.iterrows()):
            rows.append([Cell(lab), Cell(tr.number(r["n"], 0)), Cell(tr.number(r["events"], 0)),
                         Cell(tr.percent(100 * r["observed"], 1)), Cell(tr.percent(100 * r["mean_predicted"], 1)),
                         Cell(tr.number(r["auc"], 3)), Cell(tr.number(r["brier"], 3)), Cell(tr.number(r["log_loss"], 3)),
                         Cell(tr.get(f"risk.model.{model}", model)),
                         Cell(self.perf_note(r["note"]))])
        columns = [tr.domain(sub), tr("col.n"), tr("col.events"), tr("col.observed"), tr("col.mean_predicted"),
                   tr("col.auc"), tr("col.brier"), tr("col.log_loss"), tr("col.model"), tr("col.note")]
        notes = self.common_notes(["risk_performance.csv"], tr(f"risk.definition.{metric}"))
        notes.insert(1, tr("note.performance"))
        return View(title=title, figures=[fig], columns=columns, rows=rows, notes=notes,
                    filename=_safe_name(self.name, run.name, crime, metric, sub, tr.lang))

    def perf_note(self, note) -> str:
        note = "" if note is None or (isinstance(note, float) and np.isnan(note)) else str(note)
        tr = self.tr
        if not note:
            return ""
        if note.startswith("no cases"):
            return tr("risk.note.no_cases")
        if note.startswith("no events"):
            return tr("risk.note.no_events")
        if note.startswith("no non-events"):
            return tr("risk.note.no_nonevents")
        m = re.match(r"fewer than (\d+) events", note)
        if m:
            return tr("risk.note.few_events", n=m.group(1))
        return note


APPS: dict[str, type[Dashboard]] = {"overview": OverviewApp, "victimization": VictimizationApp, "fear": FearApp,
                                    "repeat": RepeatApp, "risk": RiskApp}


def build(name: str, root=None, language: str | None = None, run: str | None = None) -> Dashboard:
    """A dashboard on the publication root (default: ``$SURVEY_DASHBOARD_OUTPUTS`` or
    ``<project>/outputs``) in ``language`` (default: ``$SURVEY_DASHBOARD_LANGUAGE`` or en)."""
    import os

    cls = APPS[check_choice(name, APPS, "dashboard")]
    lang = language or os.environ.get("SURVEY_DASHBOARD_LANGUAGE") or "en"
    return cls(_publication(root), language=lang, run=run)


def show(name: str, root=None, language: str | None = None, run: str | None = None) -> Dashboard:
    """Build a dashboard and display it (the one call of each dashboard notebook)."""
    from IPython.display import display

    app = build(name, root, language, run)
    display(app.root)
    return app


__all__ = ["APPS", "Dashboard", "DashboardInputError", "FearApp", "OverviewApp", "RepeatApp", "RiskApp",
           "VictimizationApp", "build", "show"]
