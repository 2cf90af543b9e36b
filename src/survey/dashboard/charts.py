"""Plotly figures of the dashboards: estimates with 95% CI error bars, suppressed cells not
plotted but annotated with their reason, flagged cells hatched and marked with a dagger.

Every chart marks cells the same way (:func:`marks`).  Maps (:func:`area_map`, for a tile grid
:func:`tile_map`, for GeoJSON areas :func:`geojson_map`) draw areas as filled polygons on plain
axes (offline, no map tiles): flagged areas with an SVG pattern fill, suppressed ones grey
without a value, colours from zero or centred on the national estimate; other views (e.g.
model-based small-area estimates) call :func:`area_map` with their rows (columns
``domain_value``, ``estimate``, ``ci_low``, ``ci_high``, optionally ``flag_reason``,
``suppressed``, ``suppression_reason``, ``n``, ``measure``), ``note=`` and ``model_based=True``.
Crossed breakdowns: :func:`crossed_bars` (grouped bars, panels for a third margin).

Figures are plain plotly JSON dicts ``{"data": [...], "layout": {...}}`` (what the plotly mime
renderer gets), built without plotly's graph objects: constructing and validating
``go.Figure`` objects (make_subplots, update_layout, the template) cost most of a re-render.
The dicts are exactly what ``go.Figure(...).to_json()`` gave before (pinned by a test);
:func:`to_figure` makes a ``go.Figure`` of one when a caller wants the object."""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
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
        if tr_.get("fill") == "toself":  # a map area: its label trace says it (not its outline's points)
            continue
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


CELL_COLUMNS = ("domain_value", "suppressed", "suppression_reason", "n", "estimate", "ci_low", "ci_high",
                "flag_reason", "measure")
"""The indicator-table columns a chart reads of each cell (a table without ``suppression_reason``,
``n`` or ``measure`` - e.g. model-based small-area estimates - gets them blank)."""


@dataclass(frozen=True)
class Mark:
    """How one published cell is drawn: ``status`` is ``ok``, ``flagged`` (unreliable: drawn
    hatched, with a dagger), ``suppressed`` or ``no_case`` (both: no value, a word instead);
    ``value``/``low``/``high`` are None for the last two; ``hover`` is the label and value with
    its interval (or the word and the reason); ``reason`` is the reason alone."""

    label: str
    value: str
    status: str
    estimate: float | None
    low: float | None
    high: float | None
    text: str
    hover: str
    reason: str

    @property
    def drawn(self) -> bool:
        return self.status in ("ok", "flagged")


def marks(rows, labels, tr: Translator) -> list[Mark]:
    """One :class:`Mark` per row of ``rows`` (indicator-table rows) labelled by ``labels``."""
    t = rows
    get = {c: (t[c].tolist() if c in t.columns else [None] * len(t)) for c in CELL_COLUMNS}
    out = []
    for i, lab in enumerate(labels):
        value, supp, supp_reason, n, estimate, lo, hi, flag, measure = (get[c][i] for c in CELL_COLUMNS)
        flag = "" if flag is None or (isinstance(flag, float) and math.isnan(flag)) else str(flag)
        measure = "" if measure is None or (isinstance(measure, float) and math.isnan(measure)) else measure
        if bool(supp) and not (isinstance(supp, float) and math.isnan(supp)):
            reason = tr("cell.suppressed", reason=tr.reason(supp_reason or "", n))
            out.append(Mark(lab, str(value), "suppressed", None, None, None, tr("chart.suppressed_mark"),
                            f"{lab}: {reason}", reason))
            continue
        if no_sample_case(flag):
            reason = tr("reason.no_sample_case")
            out.append(Mark(lab, str(value), "no_case", None, None, None, tr("chart.no_case_mark"),
                            f"{lab}: {reason}", reason))
            continue
        e, lo, hi = _f(estimate), _f(lo), _f(hi)
        shown = tr.in_measure(e, measure)
        hover = f"{lab}: {shown} {tr.ci(lo, hi)}".rstrip()
        if flag:
            hover += f" {FLAG} {tr.reason(flag)}"
        out.append(Mark(lab, str(value), "flagged" if flag else "ok", e, lo, hi,
                        shown + (f" {FLAG}" if flag else ""), hover, tr.reason(flag) if flag else ""))
    return out


def _word_annotation(x, mark: Mark, xref: str = "x", yref: str = "y") -> dict:
    """The rotated word drawn at the base of a bar that has no value (suppressed, no case)."""
    return dict(x=x, y=0, xref=xref, yref=yref, text=mark.text, showarrow=False, yanchor="bottom", textangle=-90,
                font=dict(size=11, color="#595959"), hovertext=mark.reason)


def estimate_bars(rows, labels, tr: Translator, title: str, xaxis: str, yaxis: str, name: str | None = None,
                  previous=None, previous_name: str | None = None) -> dict:
    """One bar per cell (``rows``: the indicator table rows, ``labels``: the translated x labels),
    with asymmetric 95% CI error bars.  Suppressed cells get no bar, an annotation with the reason;
    flagged cells are hollow and hatched, with a dagger at their base (so that the mark never
    collides with the error bar); a cell with no sample case is a label, without an interval.
    ``previous``: estimates of the previous wave, drawn above the bars as a marker that points
    the way the estimate moved since."""
    ms = marks(rows, labels, tr)
    est = [m.estimate for m in ms]
    flagged = [m.status == "flagged" for m in ms]
    data = [_drop_none(dict(
        type="bar", x=list(labels), y=est, name=name, text=[FLAG if f else "" for f in flagged],
        textposition="inside", insidetextanchor="start", textfont=dict(color="#1a1a1a", size=14),
        hovertext=[m.hover if m.drawn else "" for m in ms], hoverinfo="text",
        marker=dict(color=["rgba(31, 95, 139, 0.25)" if f else COLORS[0] for f in flagged],
                    line=dict(color=COLORS[0], width=1.5),
                    pattern=dict(shape=["/" if f else "" for f in flagged], fgcolor=COLORS[0], fillmode="overlay")),
        error_y=_error_bars(ms)))]
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
    annotations = [_word_annotation(lab, m) for lab, m in zip(labels, ms) if not m.drawn]
    layout = _drop_empty({"annotations": annotations, "showlegend": previous is not None,
                          "separators": separators(tr), "legend": {"orientation": "h", "y": -0.3}})
    if all(v is None for v in est):  # nothing to draw: no empty -1..1 axis
        layout["yaxis"] = {"range": [0, 1], "showticklabels": False}
    return figure(data, _layout(layout, title, xaxis, yaxis))


def _error_bars(ms: list[Mark], color: str = "#333") -> dict:
    return dict(type="data", symmetric=False, color=color, thickness=1.2,
                array=[None if m.high is None or m.estimate is None else m.high - m.estimate for m in ms],
                arrayminus=[None if m.low is None or m.estimate is None else m.estimate - m.low for m in ms])


# ---------------------------------------------------------------------------------------------
# maps: a tile grid or GeoJSON areas, drawn as filled polygons on plain axes (offline: no map
# tiles, no geo projection service); flagged areas hatched (an SVG pattern fill), suppressed
# areas grey with the word, never a colour; the scale from zero or centred on the national value
# ---------------------------------------------------------------------------------------------
SCALES = ("zero", "national")
HATCH = dict(shape="/", size=10, solidity=0.3)
EMPTY_FILL = "#d9d9d9"
SEQUENTIAL, DIVERGING = "Blues", "RdBu_r"


def _rgb(colour: str) -> tuple[float, float, float]:
    c = colour.strip()
    if c.startswith("#"):
        return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(float(x) for x in re.findall(r"[\d.]+", c)[:3])


def colour_at(scale: list, t: float) -> str:
    """The colour at position ``t`` (0..1, clipped) of a plotly colorscale list, interpolated
    linearly in RGB between its stops (as plotly does)."""
    t = min(1.0, max(0.0, float(t)))
    for (p0, c0), (p1, c1) in zip(scale, scale[1:]):
        if t <= p1:
            w = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            a, b = _rgb(c0), _rgb(c1)
            return "rgb({},{},{})".format(*(round(x + w * (y - x)) for x, y in zip(a, b)))
    return "rgb({},{},{})".format(*(round(x) for x in _rgb(scale[-1][1])))


def luminance(colour: str) -> float:
    """The relative luminance of a colour (WCAG 2)."""
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (x / 255.0 for x in _rgb(colour))]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


DARK_INK = "#1a1a1a"


def ink(colour: str) -> str:
    """Dark or white text, whichever has the higher contrast on ``colour`` (WCAG ratio)."""
    lum = luminance(colour)
    return "white" if 1.05 / (lum + 0.05) > (lum + 0.05) / (luminance(DARK_INK) + 0.05) else DARK_INK


def colour_range(values, scale: str = "zero", national: float | None = None) -> dict:
    """The colour mapping of a map: ``zero``: sequential from 0 to the largest value (a small
    difference never looks like a hotspot); ``national``: diverging, its midpoint the national
    estimate and its ends equally far from it (so that equal distances above and below get
    equally strong colours)."""
    known = [v for v in (_f(x) for x in values) if v is not None]
    nat = _f(national)
    if scale == "national" and nat is not None:
        span = max((abs(v - nat) for v in known), default=0.0) or (abs(nat) * 0.1 or 1.0)
        return {"cmin": nat - span, "cmax": nat + span, "cmid": nat, "colorscale": _colorscale(DIVERGING)}
    hi = max(known, default=0.0)
    return {"cmin": 0.0, "cmax": hi if hi > 0 else 1.0, "colorscale": _colorscale(SEQUENTIAL)}


def _ring_centre(ring) -> tuple[float, float]:
    """Area-weighted centroid of a closed ring (the mean of its points if it has no area)."""
    a = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(ring, list(ring[1:]) + [ring[0]]):
        k = x0 * y1 - x1 * y0
        a += k
        cx += (x0 + x1) * k
        cy += (y0 + y1) * k
    if abs(a) < 1e-12:
        return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)
    return cx / (3 * a), cy / (3 * a)


def _signed_area(ring) -> float:
    """Twice the signed area of a ring: positive when it turns counter-clockwise."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, list(ring[1:]) + [ring[0]]))


def _ring_area(ring) -> float:
    return abs(_signed_area(ring)) / 2


def _wound(ring: list, outer: bool) -> list:
    """The ring counter-clockwise when it is an outer ring, clockwise when it is a hole."""
    return ring if (_signed_area(ring) >= 0) == outer else ring[::-1]


def _inside(x: float, y: float, rings) -> bool:
    """Whether (x, y) is in the filled part of an area's rings (even-odd: a hole's points are out)."""
    inside = False
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, list(ring[1:]) + [ring[0]]):
            if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
    return inside


def _edge_distance(x: float, y: float, rings) -> float:
    best = math.inf
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, list(ring[1:]) + [ring[0]]):
            dx, dy = x1 - x0, y1 - y0
            t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy)))
            best = min(best, math.hypot(x - x0 - t * dx, y - y0 - t * dy))
    return best


def label_point(rings, steps: int = 24) -> tuple[float, float]:
    """Where an area's label goes: the centre of its largest ring, unless that falls outside
    the area (in a hole, or outside a crescent): then the point of a grid over the ring that is
    inside the area and farthest from its edges."""
    outer = max(rings, key=_ring_area)
    x, y = _ring_centre(outer)
    if _inside(x, y, rings):
        return x, y
    xs, ys = [p[0] for p in outer], [p[1] for p in outer]
    (x0, x1), (y0, y1) = (min(xs), max(xs)), (min(ys), max(ys))
    grid = [(x0 + (x1 - x0) * (i + 0.5) / steps, y0 + (y1 - y0) * (j + 0.5) / steps)
            for i in range(steps) for j in range(steps)]
    inside = [p for p in grid if _inside(p[0], p[1], rings)]
    return max(inside, key=lambda p: _edge_distance(p[0], p[1], rings)) if inside else (x, y)


def grid_shapes(grid) -> dict[str, list]:
    """The tiles of a tile grid (columns domain_value, row, col): value -> [square ring]."""
    out = {}
    for v, r, c in zip(grid["domain_value"], grid["row"], grid["col"]):
        x0, y0 = int(c) + 0.04, -int(r) - 0.96
        out[str(v)] = [[(x0, y0), (x0 + 0.92, y0), (x0 + 0.92, y0 + 0.92), (x0, y0 + 0.92), (x0, y0)]]
    return out


def geojson_shapes(collection: dict, id_property: str = "domain_value") -> dict[str, list]:
    """The areas of a GeoJSON FeatureCollection (Polygon/MultiPolygon, lon/lat): the value of
    ``id_property`` -> its rings, projected for a flat drawing (equirectangular, longitudes
    scaled by the cosine of the mean latitude: right for the small areas of a country).

    Each polygon's outer ring turns counter-clockwise and its holes clockwise, whatever the
    file's winding: :func:`area_map` draws an area's rings as one SVG path, filled with the
    non-zero rule, so a hole wound against its outer ring is left unfilled (wound the same way
    it would be painted over)."""
    feats = collection.get("features") or []
    lats = [pt[1] for f in feats for poly in _polygons(f.get("geometry") or {}) for ring in poly for pt in ring]
    k = math.cos(math.radians(sum(lats) / len(lats))) if lats else 1.0
    out: dict[str, list] = {}
    for f in feats:
        key = str((f.get("properties") or {}).get(id_property))
        for poly in _polygons(f.get("geometry") or {}):
            rings = [[(float(x) * k, float(y)) for x, y, *_ in ring] for ring in poly if len(ring) >= 3]
            out.setdefault(key, []).extend(_wound(r, outer=i == 0) for i, r in enumerate(rings))
    return out


def _polygons(geometry: dict) -> list:
    """The polygons (each: its outer ring, then its holes) of a Polygon or MultiPolygon."""
    if geometry.get("type") == "Polygon":
        return [list(geometry.get("coordinates") or [])]
    if geometry.get("type") == "MultiPolygon":
        return [list(poly) for poly in geometry.get("coordinates") or []]
    return []


def area_map(rows, shapes: dict, labels, tr: Translator, title: str, unit: str = "", *, scale: str = "zero",
             national: float | None = None, note: str = "", model_based: bool = False, height: int = 480) -> dict:
    """A map of one published breakdown: each area of ``shapes`` (value -> rings, from
    :func:`grid_shapes` or :func:`geojson_shapes`) filled with the colour of its estimate;
    unreliable (flagged) areas hatched with a dagger, suppressed areas and areas with no sample
    case grey with the word (no value: never coloured as 0), each with a legend entry; the unit
    on the colour bar, the interval on hover.  ``scale``: ``zero`` (sequential from 0) or
    ``national`` (diverging around ``national``, the national estimate); ``note``: a subtitle
    (e.g. the model or the source); ``model_based``: the areas are model-based estimates (said
    in the subtitle and a legend entry).  Rows whose value has no area are left out."""
    ms = [m for m in marks(rows, labels, tr) if m.value in shapes]
    rng = colour_range([m.estimate for m in ms], scale, national)
    span = rng["cmax"] - rng["cmin"]
    data, cx, cy, txt, hov, inks, zs, legend_done = [], [], [], [], [], [], [], set()
    for m in ms:
        rings = shapes[m.value]
        xs, ys = [], []
        for ring in rings:
            xs += [p[0] for p in ring] + [None]
            ys += [p[1] for p in ring] + [None]
        fill = EMPTY_FILL if not m.drawn else colour_at(rng["colorscale"], (m.estimate - rng["cmin"]) / span)
        kind = "empty" if not m.drawn else m.status
        trace = dict(type="scatter", x=xs[:-1], y=ys[:-1], mode="lines", fill="toself", fillcolor=fill,
                     line=dict(color="white", width=1.5), hoverinfo="skip", showlegend=False,
                     meta={"domain_value": m.value, "status": m.status})
        if kind == "flagged":  # stripes in the text's colour: visible on light and dark fills alike
            trace["fillpattern"] = dict(HATCH, bgcolor=fill, fgcolor=ink(fill))
        if kind != "ok":
            trace["legendgroup"] = kind
            if kind not in legend_done:
                legend_done.add(kind)
                trace.update(showlegend=True, name=tr("charts.legend_flagged", mark=FLAG) if kind == "flagged"
                             else tr("charts.legend_empty"))
        data.append(trace)
        x, y = label_point(rings)
        cx.append(x)
        cy.append(y)
        txt.append(f"{m.label}<br>{m.text}")
        hov.append(m.hover)
        inks.append(ink(fill))
        zs.append(m.estimate if m.drawn else NAN)
    bar_title = unit if scale != "national" or _f(national) is None else tr(
        "charts.colorbar_national", unit=unit, value=tr.number(_f(national), 1))
    marker = dict(color=zs, size=1, opacity=0, showscale=True, colorscale=rng["colorscale"], cmin=rng["cmin"],
                  cmax=rng["cmax"], colorbar=dict(title=dict(text=bar_title, side="right"), thickness=14))
    if "cmid" in rng:
        marker["cmid"] = rng["cmid"]
    # the labels and the hover of each area, at its centre; the markers carry the colour bar
    data.append(dict(type="scatter", x=cx, y=cy, mode="markers+text", text=txt, showlegend=False,
                     textfont=dict(size=10, color=inks), hovertext=hov, hoverinfo="text", marker=marker,
                     meta={"scale": scale if "cmid" in rng else "zero", "midpoint": rng.get("cmid")}))
    subtitle = " — ".join(s for s in ((tr("charts.model_based") if model_based else ""), note) if s)
    layout = {"xaxis": {"visible": False}, "yaxis": {"visible": False, "scaleanchor": "x"},
              "separators": separators(tr), "plot_bgcolor": "white", "showlegend": bool(legend_done),
              "legend": {"orientation": "h", "y": -0.05, "x": 0}}
    layout = _layout(layout, title, "", "", height=height)
    if subtitle:
        layout["title"]["subtitle"] = {"text": subtitle}
    layout["meta"] = {"model_based": bool(model_based)}
    return figure(data, layout)


def tile_map(rows, grid, labels, tr: Translator, title: str, unit: str = "", **options) -> dict:
    """A tile-grid map (one square per value at (row, col) of ``grid``): :func:`area_map`."""
    return area_map(rows, grid_shapes(grid), labels, tr, title, unit, **options)


def geojson_map(rows, collection: dict, labels, tr: Translator, title: str, unit: str = "",
                id_property: str = "domain_value", **options) -> dict:
    """A map of GeoJSON areas (their ``id_property`` is the published value): :func:`area_map`."""
    return area_map(rows, geojson_shapes(collection, id_property), labels, tr, title, unit, **options)


# ---------------------------------------------------------------------------------------------
# crossed domains ("Female × 16-24"): grouped bars, facets for a third margin
# ---------------------------------------------------------------------------------------------
MAX_FACETS = 4


def crossed_bars(rows, parts, tr: Translator, title: str, xaxis: str, yaxis: str, legend_title: str = "",
                 axis: int = 1, previous=None, previous_name: str | None = None) -> dict | None:
    """Grouped bars of a crossed breakdown: ``parts`` gives each row's translated margin labels
    (2 or 3); margin ``axis`` on the x axis, the other of the first two as coloured groups (with
    their CIs, flagged bars hatched with †, suppressed and no-case cells a grey cross at the base
    with the reason on hover), a third margin as side-by-side panels; None with more than
    :data:`MAX_FACETS` panels (the heat table shows it).  ``previous``: the previous wave's
    estimate of each row (None where it has none), drawn on each bar as in :func:`estimate_bars`
    (a triangle pointing the way the estimate moved, above the bars with a white outline, so
    that it shows inside a bar as well as above it)."""
    labels = [CROSS_LABEL.join(p) for p in parts]
    ms = marks(rows, labels, tr)
    prev = [_f(v) for v in previous] if previous is not None else None
    k = len(parts[0]) if parts else 2
    group = 1 - axis if axis in (0, 1) else 0
    facets = list(dict.fromkeys(p[2] for p in parts)) if k == 3 else [""]
    if len(facets) > MAX_FACETS:
        return None
    layout = _subplots(facets if k == 3 else [""])
    groups = list(dict.fromkeys(p[group] for p in parts))
    data, seen_empty, changes = [], False, []
    for fi, facet in enumerate(facets):
        ax = {"xaxis": "x" if fi == 0 else f"x{fi + 1}", "yaxis": "y" if fi == 0 else f"y{fi + 1}"}
        for gi, g in enumerate(groups):
            sel = [(i, p, m) for i, (p, m) in enumerate(zip(parts, ms)) if p[group] == g and (k < 3 or p[2] == facet)]
            if not sel:
                continue
            before = [prev[i] for i, _, _ in sel] if prev is not None else None
            sel = [(p, m) for _, p, m in sel]
            colour = COLORS[gi % len(COLORS)]
            sm = [m for _, m in sel]
            fl = [m.status == "flagged" for m in sm]
            xs = [p[axis] for p, _ in sel]
            common = dict(offsetgroup=str(gi), legendgroup=str(gi), **ax)
            data.append(dict(type="bar", x=xs, y=[m.estimate for m in sm], name=g, showlegend=fi == 0,
                             text=[FLAG if f else "" for f in fl], textposition="inside", insidetextanchor="start",
                             textfont=dict(color="#1a1a1a", size=13),
                             hovertext=[f"{m.hover}" if m.drawn else "" for m in sm], hoverinfo="text",
                             marker=dict(color=[_fade(colour) if f else colour for f in fl],
                                         line=dict(color=colour, width=1.5),
                                         pattern=dict(shape=["/" if f else "" for f in fl], fgcolor=colour,
                                                      fillmode="overlay")),
                             error_y=_error_bars(sm), **common))
            empty = [(x, m) for x, m in zip(xs, sm) if not m.drawn]
            if empty:
                data.append(dict(type="scatter", mode="markers", x=[x for x, _ in empty], y=[0] * len(empty),
                                 name=tr("charts.legend_empty"), showlegend=not seen_empty, cliponaxis=False,
                                 legendrank=2000,
                                 hovertext=[m.hover for _, m in empty], hoverinfo="text",
                                 marker=dict(symbol="x-thin-open", size=11, color="#595959",
                                             line=dict(color="#595959", width=2)),
                                 **dict(common, legendgroup="empty")))
                seen_empty = True
            if before is not None and any(v is not None for v in before):
                shown = [(x, v, m) for x, v, m in zip(xs, before, sm) if v is not None]
                marker = [change_marker(v, m.estimate) for _, v, m in shown]
                changes.append(dict(type="scatter", mode="markers", x=[x for x, _, _ in shown],
                                    y=[v for _, v, _ in shown], name=previous_name, cliponaxis=False,
                                    hovertext=[f"{m.label} ({previous_name}): {tr.number(v)}" for _, v, m in shown],
                                    hoverinfo="text", marker=dict(symbol=[s for s, _ in marker], size=12,
                                                                  color=[c for _, c in marker],
                                                                  line=dict(color="white", width=1.5)),
                                    meta={"previous": True},
                                    **dict(common, legendgroup="previous")))
    for i, trace in enumerate(changes):  # after every bar: drawn over them
        trace["showlegend"] = i == 0
        trace["legendrank"] = 1500
        data.append(_drop_none(trace))
    for fi in range(len(facets)):
        i = "" if fi == 0 else str(fi + 1)
        layout.setdefault(f"xaxis{i}", {})["title"] = {"text": xaxis}
        layout.setdefault(f"yaxis{i}", {}).update(rangemode="tozero")
    layout.update(barmode="group", scattermode="group", separators=separators(tr),
                  legend={"orientation": "h", "y": -0.3, "title": {"text": legend_title}})
    layout = _layout(_drop_empty(layout), title, xaxis, yaxis, height=460)
    return figure(data, layout)


CROSS_LABEL = " × "


def _fade(colour: str, alpha: float = 0.25) -> str:
    r, g, b = _rgb(colour)
    return f"rgba({int(r)}, {int(g)}, {int(b)}, {alpha})"


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
