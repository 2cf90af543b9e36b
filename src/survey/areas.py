"""Map areas of a domain from a GeoJSON file the spec declares (``domains.<name>.geojson`` with
``id_property``), checked as data before a run publishes them.

The file is an input like the survey's data files: a path relative to the spec's folder that
must resolve inside the project (the nearest folder above the spec that holds
``pyproject.toml`` or ``.git``; the spec's own folder when there is none), at most
:data:`MAX_BYTES`, a FeatureCollection of Polygon or MultiPolygon features in longitude and
latitude, each with the property ``id_property`` holding one of the domain's value codes or
published labels (unique).  Every error is one line naming the file and the property.

:func:`area_collection` gives the areas of every domain as one FeatureCollection whose features
carry only ``domain`` and ``domain_value`` (the published value) - what a run writes as
``areas.geojson`` for the dashboards (no other property of the file is published).
:func:`check_survey_areas` makes the same check on a loaded survey (``survey validate``).
:func:`grid_geojson` makes rectangles from a tile grid (the committed synthetic regions file).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import SurveyError

AREAS_FILE = "areas.geojson"
MAX_BYTES = 5_000_000
MAX_FEATURES = 5_000
MAX_POSITIONS = 500_000
DECIMALS = 6
_MARKERS = ("pyproject.toml", ".git")


class AreasError(SurveyError, ValueError):
    """A GeoJSON file of map areas that cannot be used (one line naming the file)."""


def _project(folder: Path) -> Path:
    for p in (folder, *folder.parents):
        if any((p / m).exists() for m in _MARKERS):
            return p
    return folder


def resolve(path: str, spec_path: Path | None) -> Path:
    """The file a spec's ``geojson`` names (relative to the spec's folder), refused when it
    resolves outside the project."""
    base = Path(spec_path).resolve().parent if spec_path is not None else Path.cwd().resolve()
    p = Path(path)
    p = (p if p.is_absolute() else base / p).resolve()
    root = _project(base)
    if not p.is_relative_to(root):
        raise AreasError(f"{Path(path).name}: the GeoJSON file resolves outside the project folder {root}")
    return p


def _positions(rings, where: str) -> int:
    count = 0
    if not isinstance(rings, list) or not rings:
        raise AreasError(f"{where}: a polygon is a list of rings")
    for ring in rings:
        if not isinstance(ring, list) or len(ring) < 4:
            raise AreasError(f"{where}: a ring has at least 4 positions")
        for pt in ring:
            if (not isinstance(pt, list) or len(pt) < 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in pt[:2])):
                raise AreasError(f"{where}: a position is [longitude, latitude] in numbers")
            if not (-180 <= pt[0] <= 180 and -90 <= pt[1] <= 90):
                raise AreasError(f"{where}: position {pt[:2]} is not a longitude and latitude")
        if ring[0][:2] != ring[-1][:2]:
            raise AreasError(f"{where}: a ring ends where it starts")
        count += len(ring)
    return count


def _geometry(g, where: str) -> tuple[dict, int]:
    if not isinstance(g, dict) or g.get("type") not in ("Polygon", "MultiPolygon"):
        kind = g.get("type") if isinstance(g, dict) else type(g).__name__
        raise AreasError(f"{where}: geometry {str(kind)[:30]!r} is not a Polygon or MultiPolygon")
    coords = g.get("coordinates")
    if g["type"] == "Polygon":
        n = _positions(coords, where)
    else:
        if not isinstance(coords, list) or not coords:
            raise AreasError(f"{where}: a MultiPolygon is a list of polygons")
        n = sum(_positions(poly, where) for poly in coords)

    def rnd(x):
        return round(float(x), DECIMALS) if not isinstance(x, list) else [rnd(v) for v in x]
    return {"type": g["type"], "coordinates": rnd(coords)}, n


def read_areas(path: Path, id_property: str, domain: str, values: dict[str, str]) -> list[dict]:
    """The features of one domain's GeoJSON file as ``{domain, domain_value}`` features;
    ``values`` maps each accepted id (value codes and published labels, as strings) to the
    published value."""
    name = path.name
    if not path.is_file():
        raise AreasError(f"{name}: GeoJSON file of domain '{domain}' not found ({path})")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise AreasError(f"{name}: {size:,} bytes, more than the {MAX_BYTES:,} a GeoJSON file of areas may have")
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AreasError(f"{name}: not JSON ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise AreasError(f"{name}: not a GeoJSON FeatureCollection")
    feats = doc["features"]
    if not feats or len(feats) > MAX_FEATURES:
        raise AreasError(f"{name}: {len(feats)} features (1 to {MAX_FEATURES:,})")
    out, missing, unknown, seen, dup, positions = [], 0, [], set(), [], 0
    for i, f in enumerate(feats):
        where = f"{name}: feature {i + 1} of {len(feats)}"
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise AreasError(f"{where}: not a Feature")
        props = f.get("properties") if isinstance(f.get("properties"), dict) else {}
        raw = props.get(id_property)
        if raw is None or isinstance(raw, (dict, list, bool)):
            missing += 1
            continue
        key = str(raw).strip()
        if key.endswith(".0") and isinstance(raw, float):
            key = key[:-2]
        geometry, n = _geometry(f.get("geometry"), where)
        positions += n
        if key not in values:
            unknown.append(key)
            continue
        value = values[key]
        if value in seen:
            dup.append(key)
        seen.add(value)
        out.append({"type": "Feature", "properties": {"domain": domain, "domain_value": value}, "geometry": geometry})
    if positions > MAX_POSITIONS:
        raise AreasError(f"{name}: {positions:,} positions, more than {MAX_POSITIONS:,} (simplify the areas)")
    if missing:
        raise AreasError(f"{name}: property '{id_property}' missing or not a value in {missing} of {len(feats)} "
                         f"features")
    if unknown:
        shown = ", ".join(sorted(set(unknown))[:5])
        raise AreasError(f"{name}: property '{id_property}' of {len(unknown)} of {len(feats)} features ({shown}) is "
                         f"not a value code or label of domain '{domain}' "
                         f"(values: {', '.join(sorted(set(values.values()))[:12])})")
    if dup:
        raise AreasError(f"{name}: property '{id_property}' gives the value(s) {', '.join(sorted(set(dup))[:5])} to "
                         f"more than one feature")
    return out


def area_collection(spec, spec_path: Path | None, table=None) -> dict | None:
    """The map areas of every domain with a ``geojson`` as one FeatureCollection (features with
    ``domain`` and ``domain_value``), or None.  The accepted ids of a domain are its value
    codes (``labels`` keys) and labels, and, with ``table`` (the indicator table), its
    published values."""
    feats: list[dict] = []
    for name, dom in spec.domains.items():
        if not dom.geojson:
            continue
        values = {str(v): str(v) for v in (dom.labels or {}).values()}
        values.update({str(k): str(v) for k, v in (dom.labels or {}).items()})
        values.update({str(k): str(k) for k in (dom.tile_grid or {})})
        if table is not None:
            published = table.loc[table["domain"] == name, "domain_value"].astype(str)
            values.update({v: v for v in published})
        feats += read_areas(resolve(dom.geojson, spec_path), dom.id_property or "id", name, values)
    return {"type": "FeatureCollection", "features": feats} if feats else None


def check_survey_areas(data) -> dict | None:
    """The check a run makes when it publishes the map areas, made on a loaded survey (what
    ``survey validate`` runs): :func:`area_collection` with the values the data give each
    domain (its categories in ``data.respondents``) accepted as published values.  Raises
    :class:`AreasError`; returns the collection (None when no domain has a ``geojson``)."""
    import pandas as pd

    parts = []
    for name, dom in data.spec.domains.items():
        col = data.respondents.get(name) if dom.geojson else None
        if col is not None:
            values = col.cat.categories if hasattr(col, "cat") else col.dropna().unique()
            parts.append(pd.DataFrame({"domain": name, "domain_value": [str(v) for v in values]}))
    table = pd.concat(parts, ignore_index=True) if parts else None
    return area_collection(data.spec, data.spec_path, table)


def grid_geojson(grid: dict, id_property: str = "name", lon0: float = 0.0, lat0: float = 0.0,
                 size: float = 1.0, source: str = "") -> dict:
    """Rectangles (not real boundaries) for a tile grid ``{value: (row, column)}``: cell (r, c)
    spans longitudes lon0 + c*size .. +size and latitudes lat0 - r*size .. -size (row 0 north)."""
    feats = []
    for value, (r, c) in grid.items():
        w, n = lon0 + c * size, lat0 - r * size
        ring = [[w, n], [w + size, n], [w + size, n - size], [w, n - size], [w, n]]
        feats.append({"type": "Feature", "properties": {id_property: str(value)},
                      "geometry": {"type": "Polygon", "coordinates": [[[round(x, DECIMALS), round(y, DECIMALS)]
                                                                       for x, y in ring[::-1]]]}})
    out = {"type": "FeatureCollection", "features": feats}
    if source:
        out["source"] = source
    return out
