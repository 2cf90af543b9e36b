"""Plotly figures of the dashboards: estimates with 95% CI error bars, suppressed cells not
plotted but annotated with their reason, flagged cells hatched and marked with a dagger."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ..i18n import Translator

FLAG = "†"
COLORS = ("#1f5f8b", "#e07b39", "#4a9c5d", "#8c5fa8", "#c44e52", "#6b6b6b")


def _f(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _layout(fig: go.Figure, title: str, xaxis: str, yaxis: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left"), xaxis_title=xaxis, yaxis_title=yaxis,
                      template="plotly_white", height=height, margin=dict(l=70, r=30, t=70, b=90))
    return fig


def separators(tr: Translator) -> str:
    """plotly's ``separators`` (decimal then thousands) for the language."""
    return {"en": ".,", "fr": ", ", "es": ",."}[tr.lang]


def estimate_bars(rows, labels, tr: Translator, title: str, xaxis: str, yaxis: str, name: str | None = None,
                  previous=None, previous_name: str | None = None) -> go.Figure:
    """One bar per cell (``rows``: the indicator table rows, ``labels``: the translated x labels),
    with asymmetric 95% CI error bars.  Suppressed cells get no bar, an annotation with the reason;
    flagged cells are hatched with a dagger.  ``previous``: estimates of the previous wave."""
    est, up, down, text, hover, pattern = [], [], [], [], [], []
    annotations = []
    for lab, (_, r) in zip(labels, rows.iterrows()):
        if bool(r["suppressed"]):
            est.append(None)
            up.append(None)
            down.append(None)
            text.append("")
            pattern.append("")
            hover.append("")
            annotations.append(dict(x=lab, y=0, yref="y", text=tr("chart.suppressed_mark"), showarrow=False,
                                    yanchor="bottom", textangle=-90, font=dict(size=11, color="#888"),
                                    hovertext=tr("cell.suppressed", reason=tr.reason(r["suppression_reason"], r["n"]))))
            continue
        e, lo, hi = _f(r["estimate"]), _f(r["ci_low"]), _f(r["ci_high"])
        est.append(e)
        up.append(None if hi is None or e is None else hi - e)
        down.append(None if lo is None or e is None else e - lo)
        flagged = bool(r["flag_reason"])
        pattern.append("/" if flagged else "")
        text.append(FLAG if flagged else "")
        h = f"{lab}: {tr.in_measure(e, r['measure'])} {tr.ci(lo, hi)}"
        if flagged:
            h += f" {FLAG} {tr.reason(r['flag_reason'])}"
        hover.append(h)
    fig = go.Figure()
    if previous is not None:
        fig.add_trace(go.Scatter(x=list(labels), y=[_f(v) for v in previous], mode="markers", name=previous_name,
                                 marker=dict(symbol="diamond-open", size=11, color="#555")))
    fig.add_trace(go.Bar(
        x=list(labels), y=est, name=name, text=text, textposition="outside", hovertext=hover, hoverinfo="text",
        marker=dict(color=COLORS[0], pattern=dict(shape=pattern, fgcolor="white")),
        error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, color="#333", thickness=1.2)))
    fig.update_layout(annotations=annotations, showlegend=previous is not None, separators=separators(tr))
    return _layout(fig, title, xaxis, yaxis)


def tile_map(rows, grid, labels, tr: Translator, title: str) -> go.Figure:
    """A tile-grid map: one square per region at (row, col) of ``grid``, coloured by estimate;
    suppressed regions grey with their reason."""
    pos = {str(v): (int(r), int(c)) for v, r, c in zip(grid["domain_value"], grid["row"], grid["col"])}
    xs, ys, zs, txt = [], [], [], []
    for lab, (_, r) in zip(labels, rows.iterrows()):
        if str(r["domain_value"]) not in pos:
            continue
        row, col = pos[str(r["domain_value"])]
        xs.append(col)
        ys.append(-row)
        e = None if bool(r["suppressed"]) else _f(r["estimate"])
        zs.append(e)
        txt.append(f"{lab}<br>" + (tr.in_measure(e, r["measure"]) if e is not None else tr("chart.suppressed_mark")))
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers+text", text=txt, textfont=dict(size=10),
                               marker=dict(symbol="square", size=70, color=[z if z is not None else np.nan for z in zs],
                                           colorscale="Blues", showscale=True, line=dict(color="white", width=2))))
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"),
                      separators=separators(tr))
    return _layout(fig, title, "", "", height=480)


def lorenz(curves, tr: Translator, title: str) -> go.Figure:
    """Lorenz curves: ``curves`` is a list of (name, population_share, victimization_share)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", name=tr("chart.equality"),
                             line=dict(dash="dot", color="#999")))
    for i, (name, x, y) in enumerate(curves):
        fig.add_trace(go.Scatter(x=(100 * np.asarray(x, float)).tolist(), y=(100 * np.asarray(y, float)).tolist(),
                                 mode="lines", name=name,
                                 line=dict(color=COLORS[i % len(COLORS)], width=2.5)))
    fig.update_layout(separators=separators(tr), legend=dict(orientation="h", y=-0.2))
    return _layout(fig, title, tr("axis.population_share"), tr("axis.victimization_share"), height=460)


def forest(labels, ors, lows, highs, tr: Translator, title: str) -> go.Figure:
    """Odds-ratio forest plot (log scale) with the 95% CI and the line of no association."""
    y = list(labels)
    ors = [_f(v) for v in ors]
    fig = go.Figure(go.Scatter(
        x=ors, y=y, mode="markers", marker=dict(size=9, color=COLORS[0]),
        error_x=dict(type="data", symmetric=False,
                     array=[None if o is None or _f(h) is None else _f(h) - o for o, h in zip(ors, highs)],
                     arrayminus=[None if o is None or _f(lo) is None else o - _f(lo) for o, lo in zip(ors, lows)]),
        hovertext=[f"{lab}: {tr.number(o, 2)} {tr.ci(lo, hi, 2)}" for lab, o, lo, hi in zip(y, ors, lows, highs)],
        hoverinfo="text"))
    fig.add_vline(x=1, line=dict(dash="dot", color="#999"))
    fig.update_layout(xaxis_type="log", yaxis=dict(autorange="reversed"), separators=separators(tr), showlegend=False)
    return _layout(fig, title, tr("axis.odds_ratio"), "", height=max(360, 80 + 26 * len(y)))


def metric_bars(labels, values, tr: Translator, title: str, xaxis: str, yaxis: str, notes=None) -> go.Figure:
    """Bars of a model metric by subgroup; missing values annotated with their note."""
    vals = [_f(v) for v in values]
    annotations = []
    for lab, v, note in zip(labels, vals, notes or [""] * len(vals)):
        if v is None:
            annotations.append(dict(x=lab, y=0, text=tr("word.not_available"), showarrow=False, yanchor="bottom",
                                    textangle=-90, font=dict(size=11, color="#888"), hovertext=note or ""))
    fig = go.Figure(go.Bar(x=list(labels), y=vals, marker=dict(color=COLORS[0]),
                           text=[tr.number(v, 3) if v is not None else "" for v in vals], textposition="outside"))
    fig.update_layout(annotations=annotations, separators=separators(tr))
    return _layout(fig, title, xaxis, yaxis)


def headline(items, previous, previous_name, tr: Translator, title: str) -> go.Figure:
    """One small panel per headline indicator (each in its own measure) with the 95% CI and,
    when there is one, the previous wave's estimate as a diamond."""
    from plotly.subplots import make_subplots

    names = [tr.indicator(ind) for ind, _, _ in items]
    fig = make_subplots(rows=1, cols=len(items), subplot_titles=names, horizontal_spacing=0.08)
    for i, ((_, _, r), prev) in enumerate(zip(items, previous), start=1):
        measure = tr.measure(r["measure"])
        if bool(r["suppressed"]):
            fig.add_annotation(x=measure, y=0, text=tr("chart.suppressed_mark"), showarrow=False, row=1, col=i,
                               hovertext=tr("cell.suppressed", reason=tr.reason(r["suppression_reason"], r["n"])))
            fig.add_trace(go.Bar(x=[measure], y=[None], showlegend=False), row=1, col=i)
            continue
        e, lo, hi = _f(r["estimate"]), _f(r["ci_low"]), _f(r["ci_high"])
        flagged = bool(r["flag_reason"])
        fig.add_trace(go.Bar(
            x=[measure], y=[e], name=str(r["period"]), showlegend=i == 1, marker=dict(
                color=COLORS[0], pattern=dict(shape="/" if flagged else "", fgcolor="white")),
            text=[tr.in_measure(e, r["measure"]) + (f" {FLAG}" if flagged else "")], textposition="outside",
            error_y=dict(type="data", symmetric=False, array=[None if hi is None else hi - e],
                         arrayminus=[None if lo is None else e - lo], color="#333")), row=1, col=i)
        if prev is not None and _f(prev) is not None:
            fig.add_trace(go.Scatter(x=[measure], y=[_f(prev)], mode="markers", name=previous_name,
                                     showlegend=i == 1, marker=dict(symbol="diamond-open", size=12, color="#555")),
                          row=1, col=i)
    fig.update_layout(separators=separators(tr), legend=dict(orientation="h", y=-0.15))
    return _layout(fig, title, "", "", height=420)
