"""Codebook of a survey loaded through its spec: variables, labels, value labels and
frequencies (unweighted and weighted), written as CSV and as a self-contained HTML page.

Columns of the codebook table:

==============  ============================================================================
file            the spec's name of the file
variable        the variable (column) name
label           its variable label (from the file)
role            what the spec uses it for (weight, strata, psu, domain:<name>, crime code,
                screener:<type>, count:<type>, reported to police:<type>, ...); each domain
                also has its own rows (variable = the domain name): its published categories
value           a code (or "(missing)"; for numeric variables with many values: the summary)
value_label     the label of the code (file value labels, or the spec's labels); SPSS
                user-missing codes (refused, don't know...) are shown with their code and
                "(user-missing)", not as "(missing)"
n               unweighted count of respondent rows (incident rows for the incident file)
weighted_n      weighted count (respondent weight; incident weight for incidents when given)
percent         weighted percent within the variable
==============  ============================================================================
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from .ingest import SurveyData

MAX_LEVELS = 40  # variables with more distinct values are summarized, not tabulated

CODEBOOK_COLUMNS = ["file", "variable", "label", "role", "value", "value_label", "n", "weighted_n", "percent"]


def _roles(data: SurveyData) -> dict[tuple[str, str], list[str]]:
    spec = data.spec
    roles: dict[tuple[str, str], list[str]] = {}

    def add(file, var, role):
        roles.setdefault((file, var), []).append(role)

    d = spec.design
    for w in d.weight_columns():
        add(d.file, w, "weight")
    for part, role in ((d.strata, "strata"), (d.psu, "psu"), (d.fpc, "fpc")):
        for c in [part] if isinstance(part, str) else (part or []):
            add(d.file, c, role)
    for name, f in spec.files.items():
        for k in f.keys:
            add(name, k, "key")
    for name, dom in spec.domains.items():
        add(dom.file or d.file, dom.variable, f"domain:{name}")
    for item in spec.perception:
        add(d.file, item.variable, f"perception:{item.name}")
        if item.follow_up is not None:
            add(d.file, item.follow_up.variable, f"follow-up:{item.name}")
    v = spec.victimization
    if v is not None and v.source == "incidents":
        add(v.file, v.crime_code, "crime code")
        if v.weight:
            add(v.file, v.weight, "incident weight")
        if v.reported:
            add(v.file, v.reported.variable, "reported to police")
        if v.series:
            add(v.file, v.series.count, "series count")
    elif v is not None:
        # respondent items: a type has a screener, a count, a reporting item, or several
        for t in v.types:
            for item, role in ((t.victim, "screener"), (t.count, "count"), (t.reported, "reported to police")):
                if item is not None:
                    add(d.file, item.variable, f"{role}:{t.name}")
    return roles


def _labels_for(data: SurveyData, file: str, var: str) -> dict:
    for dom in data.spec.domains.values():
        if dom.variable == var and dom.labels:
            return {float(k) if isinstance(k, (int, float)) else k: v for k, v in dom.labels.items()}
    meta = data.metadata.get(file)
    labs = getattr(meta, "value_labels", {}).get(var, {}) if meta is not None else {}
    return labs


def _table(frame: pd.DataFrame | pd.Series, w: np.ndarray, file: str, var: str, label: str, role: str,
           labels: dict, user_missing=()):
    """Rows of one variable (``frame[var]``, or the series itself); codes in ``user_missing``
    (SPSS user-missing, put back from the file) are labelled as such."""
    s = frame if isinstance(frame, pd.Series) else frame[var]
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    um = {float(c) for c in user_missing if isinstance(c, (int, float, np.number))}
    rows = []
    total = float(w.sum()) or 1.0
    if s.nunique(dropna=True) > MAX_LEVELS and pd.api.types.is_numeric_dtype(s.dtype):
        x = s.to_numpy(dtype=float, na_value=np.nan)
        ok = ~np.isnan(x)
        desc = (f"min {np.nanmin(x):g}, median {np.nanmedian(x):g}, max {np.nanmax(x):g}, "
                f"{s.nunique()} distinct") if ok.any() else "all missing"
        rows.append((desc, "", int(ok.sum()), float(w[ok].sum())))
        if (~ok).any():
            rows.append(("(missing)", "", int((~ok).sum()), float(w[~ok].sum())))
    elif s.nunique(dropna=True) > MAX_LEVELS:
        rows.append((f"{s.nunique()} distinct values", "", int(s.notna().sum()), float(w[s.notna().to_numpy()].sum())))
    else:
        keys = s.astype("object").where(s.notna(), "(missing)")
        grp = pd.DataFrame({"k": keys.to_numpy(), "w": w}).groupby("k", sort=False)
        agg = grp["w"].agg(["size", "sum"])
        order = sorted(agg.index, key=lambda k: (k == "(missing)", str(type(k)), k if k != "(missing)" else 0))
        for k in order:
            lab = labels.get(k, labels.get(float(k), "")) if isinstance(k, (int, float, np.number)) else labels.get(k, "")
            if isinstance(k, (int, float, np.number)) and float(k) in um:
                lab = f"{lab} (user-missing)" if lab else "(user-missing)"
            shown = f"{k:g}" if isinstance(k, (float, np.floating)) else str(k)
            rows.append((shown, lab, int(agg.loc[k, "size"]), float(agg.loc[k, "sum"])))
    return [
        {"file": file, "variable": var, "label": label, "role": role, "value": v, "value_label": lab, "n": n,
         "weighted_n": wn, "percent": 100.0 * wn / total}
        for v, lab, n, wn in rows
    ]


def _with_user_missing(data: SurveyData, file: str, rows: pd.DataFrame, var: str) -> tuple[pd.Series, list]:
    """The variable with its SPSS user-missing codes put back (the reader sets them to NaN),
    and those codes; the variable unchanged when the file declares none for it."""
    meta = data.metadata.get(file)
    codes = list(getattr(meta, "user_missing", {}).get(var, []) or []) if meta is not None else []
    if not codes or var not in getattr(meta, "original_codes", {}):
        return rows[var], codes
    try:
        return meta.original(rows, var), codes
    except Exception:  # a column the loader derived or re-indexed: show it as read
        return rows[var], codes


def codebook(data: SurveyData) -> pd.DataFrame:
    """The codebook table (one row per variable x value) of the variables the spec reads."""
    spec = data.spec
    roles = _roles(data)
    resp = data.rows if data.rows is not None else data.respondents  # the file's rows (interviews)
    is_resp = resp["_respondent"].to_numpy()
    dunit = spec.files[spec.design.file].unit
    w_resp = resp[spec.design.weight_for(dunit, dunit)].to_numpy(dtype=float)
    out = []
    design_vars = [c for c in resp.columns if not c.startswith("_") and "__" not in c
                   and c not in spec.domains]
    rows = resp.loc[is_resp]
    for var in design_vars:
        file = next((f for (f, v) in roles if v == var and f != getattr(spec.victimization, "file", None)),
                    spec.design.file)
        meta = data.metadata.get(file)
        label = getattr(meta, "variable_labels", {}).get(var, "") if meta is not None else ""
        role = ", ".join(roles.get((file, var), []))
        values, um = _with_user_missing(data, file, rows, var)
        out += _table(values, w_resp[is_resp], file, var, label or "", role, _labels_for(data, file, var), um)
    # domains: the published categories (bands and recodes applied; only the values present)
    for name, dom in spec.domains.items():
        file = dom.file or spec.design.file
        meta = data.metadata.get(file)
        label = getattr(meta, "variable_labels", {}).get(dom.variable, "") if meta is not None else ""
        what = f"domain:{name}" + (f" (from {dom.variable})" if dom.variable != name else "")
        out += _table(rows[name], w_resp[is_resp], file, name, dom.label or label or "", what, {})
    v = spec.victimization
    if data.incidents is not None and v is not None:
        inc = data.incidents
        w_inc = (inc[v.weight].to_numpy(dtype=float) if v.weight else np.ones(len(inc)))
        meta = data.metadata.get(v.file)
        for var in [c for c in inc.columns if c not in ("respondent_row", "file_row", "weight_adjustment")]:
            label = getattr(meta, "variable_labels", {}).get(var, "") if meta is not None else ""
            role = ", ".join(roles.get((v.file, var), [])) or ("derived" if var in (
                "crime_type", "unit", "series_count", "reported") else "")
            out += _table(inc, w_inc, v.file, var, label or "", role, _labels_for(data, v.file, var))
    return pd.DataFrame(out, columns=CODEBOOK_COLUMNS)


def write_codebook(data: SurveyData, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``codebook.csv`` and ``codebook.html`` into ``out_dir`` (atomically, file by file;
    the CSV's text cells that a spreadsheet would run as formulas get a leading quote)."""
    from ._atomic import atomic_write
    from ._safe_csv import write_safe_csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = codebook(data)
    csv_path, html_path = out_dir / "codebook.csv", out_dir / "codebook.html"
    write_safe_csv(table, csv_path)
    atomic_write(html_path, _html(data, table))
    return csv_path, html_path


def _html(data: SurveyData, table: pd.DataFrame) -> str:
    spec = data.spec
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Codebook: {esc(spec.title or spec.survey)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:0 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px}"
        "td.n{text-align:right}h2{margin-top:1.5em}caption{text-align:left;font-weight:bold}</style>",
        "</head><body>",
        f"<h1>Codebook: {esc(spec.title or spec.survey)}</h1>",
        f"<p>Survey <code>{esc(spec.survey)}</code>, period {esc(spec.period or '')}. "
        f"Source: {esc(spec.source or '')}. Licence: {esc(spec.licence or '')}.</p>",
        "<h2>Row accounting</h2><table><tr><th>step</th><th>file</th><th>rows</th><th>detail</th></tr>",
    ]
    for r in data.accounting.itertuples():
        parts.append(f"<tr><td>{esc(r.step)}</td><td>{esc(r.file)}</td><td class='n'>{r.rows:,}</td>"
                     f"<td>{esc(r.detail)}</td></tr>")
    parts.append("</table><h2>Variables</h2>")
    for (file, var), grp in table.groupby(["file", "variable"], sort=False):
        first = grp.iloc[0]
        cap = f"{esc(file)}: {esc(var)}" + (f" — {esc(first.label)}" if first.label else "") + (
            f" <small>({esc(first.role)})</small>" if first.role else "")
        parts.append(f"<table><caption>{cap}</caption><tr><th>value</th><th>label</th><th>n</th>"
                     "<th>weighted n</th><th>%</th></tr>")
        for r in grp.itertuples():
            parts.append(f"<tr><td>{esc(str(r.value))}</td><td>{esc(str(r.value_label))}</td>"
                         f"<td class='n'>{r.n:,}</td><td class='n'>{r.weighted_n:,.0f}</td>"
                         f"<td class='n'>{r.percent:.1f}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
