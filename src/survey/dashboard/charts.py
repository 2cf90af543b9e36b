"""Plotly figures of the dashboards: estimates with 95% CI error bars, suppressed cells not
plotted but annotated with their reason, flagged cells hatched and marked with a dagger.

Figures are plain plotly JSON dicts ``{"data": [...], "layout": {...}}`` (what the plotly mime
renderer gets), built without plotly's graph objects: constructing and validating
``go.Figure`` objects (make_subplots, update_layout, the template) cost most of a re-render.
The dicts are exactly what ``go.Figure(...).to_json()`` gave before (pinned by a test);
:func:`to_figure` makes a ``go.Figure`` of one when a caller wants the object."""

from __future__ import annotations

import copy
import json
import math
from functools import cache
from pathlib import Path

import numpy as np

from ..i18n import Translator

FLAG = "†"
COLORS = ("#1f5f8b", "#e07b39", "#4a9c5d", "#8c5fa8", "#c44e52", "#6b6b6b")
TEMPLATE = "plotly_white"
MARGIN = {"l": 70, "r": 30, "t": 70, "b": 90}
NAN = float("nan")  # a missing colour value (serialized as null, as plotly does)


def _f(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _drop_none(d: dict) -> dict:
    """``d`` without the keys whose value is None (plotly leaves such properties unset)."""
    return {k: v for k, v in d.items() if v is not None}


def _drop_empty(layout: dict) -> dict:
    """``layout`` without an empty ``annotations`` list (plotly does not write an empty array)."""
    if not layout.get("annotations", True):
        del layout["annotations"]
    return layout


@cache
def _template() -> dict:
    """The plotly_white template as plain JSON, read from plotly's package data without importing
    plotly (the same dict as ``plotly.io.templates["plotly_white"].to_plotly_json()``, by a test);
    read once per process and shared: never mutated."""
    import importlib.util

    folder = Path(importlib.util.find_spec("plotly").submodule_search_locations[0])
    return json.loads((folder / "package_data" / "templates" / f"{TEMPLATE}.json").read_text(encoding="utf-8"))


@cache
def _colorscale(name: str) -> list:
    """A named colorscale as the [[position, colour], ...] list plotly's validator makes of it."""
    from _plotly_utils.basevalidators import ColorscaleValidator

    return [list(x) for x in ColorscaleValidator("colorscale", "scatter.marker").validate_coerce(name)]


SUBPLOT_SPACING = 0.08


def _subplots(titles: list[str]) -> dict:
    """The layout ``make_subplots(rows=1, cols=len(titles), subplot_titles=titles,
    horizontal_spacing=0.08)`` makes, as JSON (same arithmetic, equal by a test): the x/y axes of
    each panel and the subplot-title annotations."""
    cols = len(titles)
    width = (1.0 - SUBPLOT_SPACING * (cols - 1)) / cols
    widths = [width] * cols
    layout: dict = {}
    annotations = []
    for c, title in enumerate(titles):
        x_s = sum(widths[:c]) + c * SUBPLOT_SPACING
        domain = [x_s, x_s + widths[c]]
        i = "" if c == 0 else str(c + 1)
        layout[f"xaxis{i}"] = {"anchor": f"y{i}", "domain": domain}
        layout[f"yaxis{i}"] = {"anchor": f"x{i}", "domain": [0.0, 1.0]}
        if title:
            annotations.append({"font": {"size": 16}, "showarrow": False, "text": title, "x": sum(domain) / 2.0,
                                "xanchor": "center", "xref": "paper", "y": 1.0, "yanchor": "bottom",
                                "yref": "paper"})
    if annotations:
        layout["annotations"] = annotations
    return layout


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def to_json(fig: dict) -> str:
    """The JSON of a figure dict as plotly writes it (NaN and infinities as null)."""
    text = json.dumps(fig, default=_json_default)
    if "NaN" in text or "Infinity" in text:  # as plotly's encoder: only then decode and re-encode
        text = json.dumps(json.loads(text, parse_constant=lambda _: None))
    return text


def _layout(layout: dict, title: str, xaxis: str, yaxis: str, height: int = 420) -> dict:
    """The layout settings shared by every figure (title, axis titles, template, size)."""
    layout["title"] = {"text": title, "x": 0.01, "xanchor": "left"}
    layout.setdefault("xaxis", {})["title"] = {"text": xaxis}
    layout.setdefault("yaxis", {})["title"] = {"text": yaxis}
    layout["template"] = _template()
    layout["height"] = height
    layout["margin"] = dict(MARGIN)
    return layout


def figure(data: list, layout: dict) -> dict:
    return {"data": data, "layout": layout}


def title_of(fig: dict) -> str:
    """A figure's title (also when it is not drawn because the page heading says it: then
    ``layout.meta.title``)."""
    layout = fig.get("layout") or {}
    return (layout.get("title") or {}).get("text") or (layout.get("meta") or {}).get("title") or ""


def describe(fig: dict, tr: Translator) -> str:
    """A text alternative of a figure (its title, axes and the values of each trace, as the
    hover texts give them): shown under the chart for screen readers and print."""
    parts = [title_of(fig)]
    for tr_ in fig.get("data") or []:
        hov = tr_.get("hovertext")
        if isinstance(hov, list):
            vals = [h for h in hov if h]
        else:
            xs, ys = tr_.get("x") or [], tr_.get("y") or []
            vals = [f"{x}: {tr.number(y, 2)}" for x, y in zip(xs, ys) if _f(y) is not None] if not isinstance(
                xs, str) else []
        if vals:
            name = tr_.get("name")
            parts.append((f"{name}: " if name else "") + "; ".join(str(v).replace("<br>", " ") for v in vals[:40]))
    return tr("chart.text", text=" — ".join(p for p in parts if p))


def to_figure(fig: dict):
    """A ``plotly.graph_objects.Figure`` of a figure dict (validated; for callers that want it)."""
    import plotly.graph_objects as go

    return go.Figure(copy.deepcopy(fig))


def separators(tr: Translator) -> str:
    """plotly's ``separators`` (decimal then thousands) for the language."""
    return {"en": ".,", "fr": ", ", "es": ",."}[tr.lang]


NO_CASE = "no sample case"
"""How survey.quality's flag reason for a cell with no sample case starts (no interval)."""


def no_sample_case(flag_reason) -> bool:
    return str(flag_reason or "").startswith(NO_CASE)


def change_marker(previous, current) -> tuple[str, str]:
    """The previous wave's marker: a triangle pointing from the previous value towards the
    current one (up: the estimate rose since, down: it fell), a diamond when unchanged."""
    p, c = _f(previous), _f(current)
    if p is None or c is None or p == c:
        return "diamond", "#333333"
    return ("triangle-up", "#8a2a0a") if c > p else ("triangle-down", "#0b5a2a")


def estimate_bars(rows, labels, tr: Translator, title: str, xaxis: str, yaxis: str, name: str | None = None,
                  previous=None, previous_name: str | None = None) -> dict:
    """One bar per cell (``rows``: the indicator table rows, ``labels``: the translated x labels),
    with asymmetric 95% CI error bars.  Suppressed cells get no bar, an annotation with the reason;
    flagged cells are hollow and hatched, with a dagger at their base (so that the mark never
    collides with the error bar); a cell with no sample case is a label, without an interval.
    ``previous``: estimates of the previous wave, drawn above the bars as a marker that points
    the way the estimate moved since."""
    est, up, down, text, hover, pattern, fill = [], [], [], [], [], [], []
    annotations = []
    cols = rows[["suppressed", "suppression_reason", "n", "estimate", "ci_low", "ci_high", "flag_reason", "measure"]]
    for lab, (supp, supp_reason, n, estimate, ci_low, ci_high, flag_reason, measure) in zip(
            labels, cols.itertuples(index=False, name=None)):
        if bool(supp):
            est.append(None)
            up.append(None)
            down.append(None)
            text.append("")
            pattern.append("")
            fill.append(COLORS[0])
            hover.append("")
            annotations.append(dict(x=lab, y=0, yref="y", text=tr("chart.suppressed_mark"), showarrow=False,
                                    yanchor="bottom", textangle=-90, font=dict(size=11, color="#595959"),
                                    hovertext=tr("cell.suppressed", reason=tr.reason(supp_reason, n))))
            continue
        e, lo, hi = _f(estimate), _f(ci_low), _f(ci_high)
        if no_sample_case(flag_reason):
            est.append(None)
            up.append(None)
            down.append(None)
            text.append("")
            pattern.append("")
            fill.append(COLORS[0])
            hover.append("")
            annotations.append(dict(x=lab, y=0, yref="y", text=tr("chart.no_case_mark"), showarrow=False,
                                    yanchor="bottom", textangle=-90, font=dict(size=11, color="#595959"),
                                    hovertext=tr("reason.no_sample_case")))
            continue
        est.append(e)
        up.append(None if hi is None or e is None else hi - e)
        down.append(None if lo is None or e is None else e - lo)
        flagged = bool(flag_reason)
        pattern.append("/" if flagged else "")
        fill.append("rgba(31, 95, 139, 0.25)" if flagged else COLORS[0])
        text.append(FLAG if flagged else "")
        h = f"{lab}: {tr.in_measure(e, measure)} {tr.ci(lo, hi)}"
        if flagged:
            h += f" {FLAG} {tr.reason(flag_reason)}"
        hover.append(h)
    data = [_drop_none(dict(
        type="bar", x=list(labels), y=est, name=name, text=text, textposition="inside", insidetextanchor="start",
        textfont=dict(color="#1a1a1a", size=14), hovertext=hover, hoverinfo="text",
        marker=dict(color=fill, line=dict(color=COLORS[0], width=1.5),
                    pattern=dict(shape=pattern, fgcolor=COLORS[0], fillmode="overlay")),
        error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, color="#333", thickness=1.2)))]
    if previous is not None:
        symbols, colours, hov = [], [], []
        for lab, p, e in zip(labels, previous, est):
            sym, col = change_marker(p, e)
            symbols.append(sym)
            colours.append(col)
            hov.append(f"{lab} ({previous_name}): {tr.number(_f(p))}" if _f(p) is not None else "")
        # drawn after (above) the bars, with a white outline: visible inside a bar and above it
        data.append(_drop_none(dict(type="scatter", x=list(labels), y=[_f(v) for v in previous], mode="markers",
                                    name=previous_name, hovertext=hov, hoverinfo="text", cliponaxis=False,
                                    marker=dict(symbol=symbols, size=13, color=colours,
                                                line=dict(color="white", width=1.5)))))
    layout = _drop_empty({"annotations": annotations, "showlegend": previous is not None,
                          "separators": separators(tr), "legend": {"orientation": "h", "y": -0.3}})
    if all(v is None for v in est):  # nothing to draw: no empty -1..1 axis
        layout["yaxis"] = {"range": [0, 1], "showticklabels": False}
    return figure(data, _layout(layout, title, xaxis, yaxis))


def tile_map(rows, grid, labels, tr: Translator, title: str, unit: str = "") -> dict:
    """A tile-grid map: one square per region at (row, col) of ``grid``, coloured by estimate on a
    scale anchored at zero (so that a small difference does not look like a hotspot), the unit
    on the colour bar and the interval on hover; unreliable (flagged) regions are drawn as
    outlined tiles with a dagger, suppressed regions grey with the word, never as a colour."""
    pos = {str(v): (int(r), int(c)) for v, r, c in zip(grid["domain_value"], grid["row"], grid["col"])}
    xs, ys, zs, txt, hov, lines, widths = [], [], [], [], [], [], []
    cols = rows[["domain_value", "suppressed", "estimate", "measure", "ci_low", "ci_high", "flag_reason"]]
    for lab, (value, supp, estimate, measure, lo, hi, flag) in zip(labels, cols.itertuples(index=False, name=None)):
        if str(value) not in pos:
            continue
        row, col = pos[str(value)]
        xs.append(col)
        ys.append(-row)
        e = None if bool(supp) or no_sample_case(flag) else _f(estimate)
        flagged = e is not None and bool(flag)
        zs.append(None if flagged else e)
        lines.append("#8a2a0a" if flagged else "white")
        widths.append(4 if flagged else 2)
        if e is None:
            word = tr("chart.suppressed_mark") if bool(supp) else tr("chart.no_case_mark")
            txt.append(f"{lab}<br>{word}")
            hov.append(f"{lab}: {word}")
        else:
            mark = f" {FLAG}" if flagged else ""
            txt.append(f"{lab}<br>{tr.in_measure(e, measure)}{mark}")
            hov.append(f"{lab}: {tr.in_measure(e, measure)} {tr.ci(lo, hi)}"
                       + (f" {FLAG} {tr.reason(flag)}" if flagged else ""))
    known = [z for z in zs if z is not None]
    hi_z = max(known) if known else 1.0
    ink = ["#1a1a1a" if z is None else ("white" if hi_z > 0 and z / hi_z > 0.55 else "#1a1a1a") for z in zs]
    data = [dict(type="scatter", x=xs, y=ys, mode="markers+text", text=txt, textfont=dict(size=10, color=ink),
                 hovertext=hov, hoverinfo="text",
                 marker=dict(symbol="square", size=70, color=[z if z is not None else NAN for z in zs],
                             cmin=0.0, cmax=hi_z if hi_z > 0 else 1.0,
                             colorscale=_colorscale("Blues"), showscale=True,
                             colorbar=dict(title=dict(text=unit, side="right"), thickness=14),
                             line=dict(color=lines, width=widths)))]
    layout = {"xaxis": {"visible": False}, "yaxis": {"visible": False, "scaleanchor": "x"},
              "separators": separators(tr), "plot_bgcolor": "white"}
    return figure(data, _layout(layout, title, "", "", height=480))


def trend_lines(periods, series, tr: Translator, title: str, yaxis: str, measure: str) -> dict:
    """Lines across the published waves: ``series`` is a list of (name, estimates, lows, highs)
    aligned with ``periods`` (None where a wave has no published value: a gap, never 0), each
    with its 95% CI as error bars; flagged or missing intervals simply have no bar."""
    data = []
    for i, (name, est, lows, highs) in enumerate(series):
        est = [_f(v) for v in est]
        up = [None if e is None or _f(h) is None else _f(h) - e for e, h in zip(est, highs)]
        down = [None if e is None or _f(lo) is None else e - _f(lo) for e, lo in zip(est, lows)]
        hover = [f"{name}, {p}: {tr.in_measure(e, measure)} {tr.ci(lo, hi)}" if e is not None else ""
                 for p, e, lo, hi in zip(periods, est, lows, highs)]
        data.append(_drop_none(dict(type="scatter", x=list(periods), y=est, mode="lines+markers", name=name,
                                    connectgaps=False, hovertext=hover, hoverinfo="text",
                                    line=dict(color=COLORS[i % len(COLORS)], width=2),
                                    marker=dict(size=8, symbol=i % 8),
                                    error_y=dict(type="data", symmetric=False, array=up, arrayminus=down,
                                                 color=COLORS[i % len(COLORS)], thickness=1))))
    layout = {"separators": separators(tr), "legend": {"orientation": "h", "y": -0.25},
              "xaxis": {"type": "category"}}
    return figure(data, _layout(layout, title, tr("axis.wave"), yaxis, height=420))


def lorenz(curves, tr: Translator, title: str, xaxis: str | None = None) -> dict:
    """Lorenz curves: ``curves`` is a list of (name, population_share, victimization_share);
    ``xaxis``: the x axis title (default: share of the population)."""
    data = [dict(type="scatter", x=[0, 100], y=[0, 100], mode="lines", name=tr("chart.equality"),
                 line=dict(dash="dot", color="#999"))]
    for i, (name, x, y) in enumerate(curves):
        data.append(_drop_none(dict(type="scatter", x=[100 * float(v) for v in x], y=[100 * float(v) for v in y],
                                    mode="lines", name=name, line=dict(color=COLORS[i % len(COLORS)], width=2.5))))
    layout = {"separators": separators(tr), "legend": {"orientation": "h", "y": -0.2}}
    return figure(data, _layout(layout, title, xaxis if xaxis is not None else tr("axis.population_share"),
                                tr("axis.victimization_share"), height=460))


def forest(labels, ors, lows, highs, tr: Translator, title: str) -> dict:
    """Odds-ratio forest plot (log scale) with the 95% CI and the line of no association."""
    y = list(labels)
    ors = [_f(v) for v in ors]
    lows, highs = list(lows), list(highs)
    data = [dict(
        type="scatter", x=ors, y=y, mode="markers", marker=dict(size=9, color=COLORS[0]),
        error_x=dict(type="data", symmetric=False,
                     array=[None if o is None or _f(h) is None else _f(h) - o for o, h in zip(ors, highs)],
                     arrayminus=[None if o is None or _f(lo) is None else o - _f(lo) for o, lo in zip(ors, lows)]),
        hovertext=[f"{lab}: {tr.number(o, 2)} {tr.ci(lo, hi, 2)}" for lab, o, lo, hi in zip(y, ors, lows, highs)],
        hoverinfo="text")]
    layout = {"shapes": [{"line": {"color": "#999", "dash": "dot"}, "type": "line", "x0": 1, "x1": 1, "xref": "x",
                          "y0": 0, "y1": 1, "yref": "y domain"}],
              "xaxis": {"type": "log"}, "yaxis": {"autorange": "reversed"}, "separators": separators(tr),
              "showlegend": False}
    return figure(data, _layout(layout, title, tr("axis.odds_ratio"), "", height=max(360, 80 + 26 * len(y))))


def metric_bars(labels, values, tr: Translator, title: str, xaxis: str, yaxis: str, notes=None,
                reference: float | None = None, reference_text: str = "", value_range=None) -> dict:
    """Bars of a model metric by subgroup; missing values annotated with their note.
    ``reference``: a dotted line (e.g. AUC 0.5: no better than chance) labelled
    ``reference_text``; ``value_range``: a fixed y range (e.g. [0, 1] for the AUC), so that a
    value below the reference is not auto-scaled into looking good."""
    vals = [_f(v) for v in values]
    annotations = []
    for lab, v, note in zip(labels, vals, notes or [""] * len(vals)):
        if v is None:
            annotations.append(dict(x=lab, y=0, text=tr("word.not_available"), showarrow=False, yanchor="bottom",
                                    textangle=-90, font=dict(size=11, color="#888"), hovertext=note or ""))
    data = [dict(type="bar", x=list(labels), y=vals, marker=dict(color=COLORS[0]),
                 text=[tr.number(v, 3) if v is not None else "" for v in vals], textposition="outside")]
    layout = _drop_empty({"annotations": annotations, "separators": separators(tr)})
    if reference is not None:
        layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": reference,
                             "y1": reference, "line": {"color": "#8a2a0a", "dash": "dot", "width": 2}}]
        layout.setdefault("annotations", []).append(
            {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": reference, "yanchor": "bottom",
             "text": reference_text, "showarrow": False, "font": {"size": 11, "color": "#8a2a0a"}})
    if value_range is not None:
        layout["yaxis"] = {"range": list(value_range)}
    return figure(data, _layout(layout, title, xaxis, yaxis))


def headline(items, previous, previous_name, tr: Translator, title: str) -> dict:
    """One small panel per headline indicator (each in its own measure) with the 95% CI and,
    when there is one, the previous wave's estimate as a triangle pointing the way it moved."""
    layout = _subplots([tr.indicator(ind) for ind, _, _ in items])
    annotations = layout.setdefault("annotations", [])
    data = []
    for i, ((_, _, r), prev) in enumerate(zip(items, previous), start=1):
        ax = {"xaxis": "x" if i == 1 else f"x{i}", "yaxis": "y" if i == 1 else f"y{i}"}
        measure = tr.measure(r["measure"])
        if bool(r["suppressed"]):
            annotations.append({"hovertext": tr("cell.suppressed", reason=tr.reason(r["suppression_reason"], r["n"])),
                                "showarrow": False, "text": tr("chart.suppressed_mark"), "x": measure,
                                "xref": ax["xaxis"], "y": 0, "yref": ax["yaxis"]})
            data.append(dict(type="bar", x=[measure], y=[None], showlegend=False, **ax))
            continue
        e, lo, hi = _f(r["estimate"]), _f(r["ci_low"]), _f(r["ci_high"])
        flagged = bool(r["flag_reason"])
        data.append(dict(
            type="bar", x=[measure], y=[e], name=str(r["period"]), showlegend=i == 1, marker=dict(
                color=COLORS[0], pattern=dict(shape="/" if flagged else "", fgcolor="white")),
            hovertext=[f"{tr.in_measure(e, r['measure'])} {tr.ci(lo, hi)}"], hoverinfo="text",
            error_y=dict(type="data", symmetric=False, array=[None if hi is None else hi - e],
                         arrayminus=[None if lo is None else e - lo], color="#333"), **ax))
        # the value above the upper end of its interval (never on the error bar)
        annotations.append({"text": tr.in_measure(e, r["measure"]) + (f" {FLAG}" if flagged else ""),
                            "showarrow": False, "x": measure, "xref": ax["xaxis"], "yref": ax["yaxis"],
                            "y": max(v for v in (hi, e, _f(prev)) if v is not None), "yanchor": "bottom",
                            "font": {"size": 12}})
        if prev is not None and _f(prev) is not None:
            sym, col = change_marker(prev, e)
            data.append(_drop_none(dict(type="scatter", x=[measure], y=[_f(prev)], mode="markers",
                                        name=previous_name, showlegend=i == 1, cliponaxis=False,
                                        marker=dict(symbol=sym, size=13, color=col,
                                                    line=dict(color="white", width=1.5)), **ax)))
    layout["separators"] = separators(tr)
    layout["legend"] = {"orientation": "h", "y": -0.15}
    return figure(data, _layout(_drop_empty(layout), title, "", "", height=420))
