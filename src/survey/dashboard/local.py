"""The model-based small-area dashboard (``dashboards/local.ipynb``, issue 14).

Shows a run's ``small_areas.csv`` (written by ``notebooks/local.py``: Fay–Herriot EBLUPs with
their root MSE, rated by the indicator table's publication rule) as a tile-grid map and a
table, labelled "model-based estimates" everywhere, with the direct estimate and its CV beside
the model-based estimate and its CV.  Withheld areas show the reason and never a number;
flagged ones a dagger and the reason.  Every word goes through :mod:`survey.i18n` (keys
``local.*``).

Only runs with a ``small_areas.csv`` are offered.  The file is read like the other published
files (:class:`survey.dashboard.data.Run`: a fixed name, inside the run folder, through
``open``), its columns checked against :data:`SMALL_AREA_COLUMNS` (a copy of
``survey.sae.PUBLISHED_COLUMNS``, pinned by a test: a dashboard kernel imports no estimation
module).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import charts
from .apps import Cell, Dashboard, View, _safe_name
from .data import DashboardInputError, Publication, PublicationError, Run
from .data import publication as _publication

SMALL_AREAS_FILE = "small_areas.csv"
SMALL_AREA_COLUMNS = ["indicator", "crime_type", "domain", "area", "area_label", "direct", "direct_se",
                      "sampling_se", "eblup", "mse", "rmse", "cv", "gamma", "method", "in_sample", "n", "reliability",
                      "suppressed", "flag_reason", "suppression_reason", "note"]
"""``survey.sae.PUBLISHED_COLUMNS`` (equal, by a test)."""
Z95 = 1.959963984540054


def small_areas(run: Run) -> pd.DataFrame | None:
    """A run's ``small_areas.csv`` (read once and kept), or None when it has none."""
    cache = run._cache
    if "_small_areas" in cache:
        return cache["_small_areas"]
    p = (run.folder / SMALL_AREAS_FILE).resolve()
    if p.parent != run.folder:
        raise PublicationError(f"{SMALL_AREAS_FILE!r} resolves outside the run folder {run.name}")
    out = None
    if p.is_file():
        with open(p, "rb") as f:
            out = pd.read_csv(f, dtype={"area": str, "area_label": str, "domain": str, "note": str,
                                        "flag_reason": str, "suppression_reason": str, "reliability": str},
                              keep_default_na=False, na_values=[""], encoding="utf-8")
        missing = [c for c in SMALL_AREA_COLUMNS if c not in out.columns]
        if missing:
            raise PublicationError(f"{run.name}/{SMALL_AREAS_FILE}: missing column(s) {', '.join(missing)}")
        for c in ("flag_reason", "suppression_reason", "reliability", "note"):
            out[c] = out[c].fillna("").astype(str)
        for c in ("suppressed", "in_sample"):
            out[c] = out[c].astype(str).str.lower().isin(("true", "1"))
    cache["_small_areas"] = out
    return out


def _num(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


class LocalApp(Dashboard):
    """Model-based small-area estimates of one run: map, direct vs model-based chart, table."""

    name = "local"
    filters = ("run", "language")
    run_preference = ("synthetic-regional",)

    def __init__(self, pub: Publication | None = None, language: str = "en", run: str | None = None, **initial):
        pub = pub if pub is not None else _publication()
        if not self._runs(pub):
            from ..i18n import Translator, check_language

            raise DashboardInputError(Translator(check_language(language))("local.none"))
        super().__init__(pub, language=language, run=run or self._default_run(pub), **initial)

    @staticmethod
    def _runs(pub: Publication) -> list[str]:
        return [n for n in pub.run_names() if small_areas(pub.runs[n]) is not None]

    def _default_run(self, pub: Publication) -> str:
        runs = self._runs(pub)
        return next((p for p in self.run_preference if p in runs), runs[0])

    def allowed(self, name: str, state: dict) -> list[str]:
        if name == "run":
            return self._runs(self.pub)
        return super().allowed(name, state)

    def rule_text(self) -> str:
        return super().rule_text() + " " + self.tr("local.note.rule")

    # ----- the view ---------------------------------------------------------------------------
    def build_view(self) -> View:
        tr, run = self.tr, self.run
        t = small_areas(run)
        indicator, crime, domain = (str(t[c].iloc[0]) if len(t) else "" for c in ("indicator", "crime_type", "domain"))
        cells = run.cells(indicator, crime, domain) if len(t) else run.indicators.iloc[:0]
        direct = {str(v): r for v, (_, r) in zip(cells["domain_value"], cells.iterrows())}
        measure = str(cells["measure"].iloc[0]) if len(cells) else "%"
        period = self.period_label(", ".join(run.periods()))
        title = tr("local.title", indicator=tr.indicator(indicator), crime=self.crime_name(crime),
                   domain=self.domain_name(domain), period=period)
        labels = [self.value_label(domain, a) for a in t["area"]]
        est = t["eblup"].to_numpy(dtype=float)
        rmse = t["rmse"].to_numpy(dtype=float)
        rows = pd.DataFrame({"domain_value": t["area"].to_numpy(), "suppressed": t["suppressed"].to_numpy(),
                             "estimate": est, "measure": measure, "ci_low": est - Z95 * rmse,
                             "ci_high": est + Z95 * rmse, "flag_reason": t["flag_reason"].to_numpy()})
        figures = []
        shapes = self.map_shapes(domain)  # the run's GeoJSON areas, else its tile grid
        if shapes is not None:
            figures.append(charts.area_map(rows, shapes, labels, tr, tr("local.map", indicator=tr.indicator(indicator),
                                                                       crime=self.crime_name(crime)),
                                           unit=tr.measure(measure), model_based=True))
        figures.append(self.compare_figure(t, labels, direct, measure, domain))
        table = [self.area_cells(lab, r, direct.get(str(r["area"])), measure) for lab, (_, r) in
                 zip(labels, t.iterrows())]
        columns = [self.domain_name(domain), tr("local.col.direct"), tr("local.col.direct_ci"),
                   tr("local.col.direct_cv"), tr("local.col.model"), tr("local.col.rmse"), tr("local.col.model_cv"),
                   tr("local.col.gamma"), tr("local.col.n"), tr("col.reliability")]
        last = next((n for n in t["note"] if "sigma2_u" in n), "").split(";")[-1].strip()
        method = "ML" if last.startswith("ML,") else "REML"  # the note ends with "<method>, sigma2_u = ..."
        notes = [tr("local.banner"), tr("local.note.model", method=method), tr("local.note.interval")]
        notes += self.common_notes([SMALL_AREAS_FILE], tr.definition(indicator, ""))
        return View(title=title, figures=figures, columns=columns, rows=table, notes=notes,
                    filename=_safe_name(self.name, run.name, indicator, crime, domain, tr.lang),
                    message="" if len(t) else tr("word.no_data"), key_points=self.cv_points(t, direct))

    def compare_figure(self, t: pd.DataFrame, labels, direct: dict, measure: str, domain: str) -> dict:
        """Direct estimates (95% CI) and model-based estimates (± 1.96 RMSE) side by side per
        area; a withheld model-based estimate is not drawn (its hover says why)."""
        tr = self.tr
        traces = []
        for key, color in (("direct", charts.COLORS[1]), ("model", charts.COLORS[0])):
            ys, up, down, hov = [], [], [], []
            for lab, (_, r) in zip(labels, t.iterrows()):
                if key == "direct":
                    d = direct.get(str(r["area"]))
                    e = None if d is None or bool(d["suppressed"]) else _num(d["estimate"])
                    lo = None if d is None else _num(d["ci_low"])
                    hi = None if d is None else _num(d["ci_high"])
                    text = (f"{lab}: {tr.in_measure(e, measure)} {tr.ci(lo, hi)}" if e is not None else
                            f"{lab}: {tr('word.suppressed') if d is not None and bool(d['suppressed']) else tr('word.not_available')}")
                else:
                    e = None if bool(r["suppressed"]) else _num(r["eblup"])
                    s = _num(r["rmse"])
                    lo = hi = None
                    if e is not None and s is not None:
                        lo, hi = e - Z95 * s, e + Z95 * s
                    text = (f"{lab}: {tr.in_measure(e, measure)} {tr.ci(lo, hi)}" if e is not None else
                            f"{lab}: {tr('cell.suppressed', reason=tr.reason(r['suppression_reason'], r['n']))}")
                ys.append(e)
                up.append(None if e is None or hi is None else hi - e)
                down.append(None if e is None or lo is None else e - lo)
                hov.append(text)
            traces.append(dict(type="scatter", mode="markers", name=tr(f"local.trace.{key}"), x=list(labels), y=ys,
                               hovertext=hov, hoverinfo="text", marker=dict(color=color, size=10,
                                                                            symbol="circle" if key == "model" else "diamond"),
                               error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, color=color,
                                            thickness=1.4), offsetgroup=key))
        layout = {"showlegend": True, "legend": {"orientation": "h", "y": -0.3}, "separators": charts.separators(tr),
                  "scattermode": "group"}
        return charts.figure(traces, charts._layout(layout, tr("local.compare", domain=self.domain_name(domain)),
                                                    self.domain_name(domain), tr.measure(measure)))

    def area_cells(self, label: str, r, d, measure: str) -> list[Cell]:
        """One area: direct estimate, its CI and CV (as the indicator table publishes them), then
        the model-based estimate, RMSE, CV, weight of the direct estimate, sample cases and
        reliability; a withheld model-based estimate is words, never a number."""
        tr = self.tr
        if d is None or bool(d["suppressed"]):
            why = tr("word.suppressed") if d is not None else tr("word.not_available")
            dcells = [Cell(why, "svy-suppressed"), Cell(""), Cell("")]
        else:
            cv = _num(d["cv"])
            dcells = [Cell(tr.in_measure(d["estimate"], measure)), Cell(tr.ci(d["ci_low"], d["ci_high"])),
                      Cell(tr.percent(100 * cv, 1) if cv is not None else "")]
        n = Cell(tr.number(r["n"], 0))
        rel = Cell(tr.reliability(r["reliability"]))
        if bool(r["suppressed"]):
            blank = Cell("", "svy-suppressed")
            return [Cell(label)] + dcells + [Cell(tr("cell.suppressed", reason=tr.reason(r["suppression_reason"], r["n"])),
                                                  "svy-suppressed"), blank, blank, blank, n, Cell(tr("word.suppressed"))]
        value = tr.in_measure(r["eblup"], measure)
        cv = _num(r["cv"])
        gamma = _num(r["gamma"])
        model = Cell(value)
        if r["flag_reason"]:
            model = Cell(tr("cell.flagged", value=value, mark=charts.FLAG, reason=tr.reason(r["flag_reason"])),
                         "svy-flagged")
        elif not bool(r["in_sample"]):
            model = Cell(f"{value} ({tr('local.word.synthetic')})")
        return [Cell(label)] + dcells + [model, Cell(tr.number(r["rmse"], 2)),
                                         Cell(tr.percent(100 * cv, 1) if cv is not None else ""),
                                         Cell(tr.number(gamma, 2) if gamma is not None else ""), n, rel]

    def cv_points(self, t: pd.DataFrame, direct: dict) -> list[str]:
        """How many areas the model made more precise: model-based CV below the direct CV."""
        pairs = []
        for _, r in t.iterrows():
            d = direct.get(str(r["area"]))
            if bool(r["suppressed"]) or d is None or bool(d["suppressed"]):
                continue
            a, b = _num(r["cv"]), _num(d["cv"])
            if a is not None and b is not None:
                pairs.append(a < b)
        if not pairs:
            return []
        return [self.tr("local.key.cv", k=self.tr.number(int(np.sum(pairs)), 0), n=self.tr.number(len(pairs), 0))]


def build(root=None, language: str | None = None, run: str | None = None) -> LocalApp:
    """The model-based small-area dashboard on the publication root (default:
    ``$SURVEY_DASHBOARD_OUTPUTS`` or ``<project>/outputs``) in ``language``."""
    import os

    lang = language or os.environ.get("SURVEY_DASHBOARD_LANGUAGE") or "en"
    return LocalApp(_publication(root), language=lang, run=run)


def show(root=None, language: str | None = None, run: str | None = None) -> LocalApp | None:
    """Build the dashboard and display it (the one call of ``dashboards/local.ipynb``)."""
    import html
    import os

    import ipywidgets as W
    from IPython.display import display

    try:
        app = build(root, language, run)
    except DashboardInputError as e:  # no run with model-based estimates: say so, in the reader's words
        from ..i18n import Translator, check_language

        lang = language or os.environ.get("SURVEY_DASHBOARD_LANGUAGE") or "en"
        heading = Translator(check_language(lang))("app.local.title")
        box = W.VBox([W.HTML(f'<h2 class="svy-title">{html.escape(heading)}</h2>'),
                      W.HTML(f'<p class="svy-message">{html.escape(str(e))}</p>')])
        box.add_class("svy-dashboard")
        box.add_class("svy-dashboard-local")
        display(box)
        return None
    display(app.root)
    return app


__all__ = ["LocalApp", "SMALL_AREA_COLUMNS", "build", "show", "small_areas"]
