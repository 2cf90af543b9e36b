"""Load a survey through its spec: read the files, link them, apply the victimization rules,
harmonize domains and perception items, build the design, and account for every row.

``load(spec)`` returns a :class:`SurveyData`.  Nothing is dropped silently: each exclusion is a
row of ``SurveyData.accounting`` (step, file, rows, detail), and anything the spec does not
explain (an incident that matches no respondent, a code outside the declared set, a negative or
missing weight among respondents...) is a ``SurveyError`` naming the file, the variable and the
row count, unless the spec declares it as an exclusion.

Columns added to the respondent table (one row per row of the design file):

==================  ===========================================================================
``n__<type>``       victimizations of the crime type (or group) in the reference period, after
                    exclusions, series counting and the cap, times ``incident weight /
                    respondent weight`` when the spec gives an incident weight (NCVS ADJINC)
``victim__<type>``  1 when the respondent (household or person) had at least one such incident
``rep__<type>``     victimizations reported to the police (same counting as ``n__``)
``repunk__<type>``  victimizations whose reporting is unknown
``krep__<type>``    sample victimizations reported to the police (series counted, capped, no
                    weight adjustment; the reporting rate's sample cases)
``k__<type>``       victimizations of the respondent (series counted, capped, no weight
                    adjustment): the count that makes a repeat victim (2+)
``vrep__<type>``    1 when at least one of the respondent's incidents was reported (incidents)
``types__<group>``  how many different crime types of the group the respondent suffered
``rv__<type>``      1 for a repeat victim (``k__`` of 2 or more)
``ri__<type>``      ``n__`` of repeat victims (victimizations suffered by repeat victims)
``mv__<group>``     1 for a victim of two or more different types of the group
``perc__<item>``    perception item: 1 positive ("very/fairly safe", "very worried"), 0 other,
                    NaN missing
``<domain>``        each spec domain as a labelled pandas Categorical (bands, recodes applied)
==================  ===========================================================================
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .design import Design, ReplicateDesign
from .errors import LonelyPSUError, SurveyError, column_not_found
from .spec import SpecError, SurveySpec, expression_names, read_spec


class IngestError(SurveyError, ValueError):
    """The data do not follow the spec (names the file, the variable and the row count)."""


@dataclass
class SurveyData:
    """A survey loaded through its spec, ready for estimation.

    respondents: the design file's rows with the harmonized columns (see module docstring).
    incidents: the incidents kept (after exclusions), with ``crime_type``, ``unit``,
        ``series_count``, ``count`` (after the cap and weight adjustment) and ``reported``.
    accounting: the row accounting (step, file, rows, detail).
    rows, row_unit: with ``combine`` in the spec, the row-level table (one row per interview) and
        each row's unit (row of ``respondents``); ``incidents.file_row`` is the row an incident
        links to, ``respondent_row`` its unit.  None without ``combine``.
    """

    spec: SurveySpec
    spec_path: Path | None
    respondents: pd.DataFrame
    incidents: pd.DataFrame | None
    accounting: pd.DataFrame
    metadata: dict = field(default_factory=dict)
    value_labels: dict = field(default_factory=dict)
    rows: pd.DataFrame | None = None
    row_unit: np.ndarray | None = None
    _designs: dict = field(default_factory=dict, repr=False)

    @property
    def crime_types(self) -> list[str]:
        v = self.spec.victimization
        return v.type_names() if v else []

    @property
    def crime_groups(self) -> list[str]:
        v = self.spec.victimization
        return list(v.groups) if v else []

    def unit_of(self, crime: str) -> str:
        """household or person: the unit a crime type (or group) is counted against."""
        v = self.spec.victimization
        units = {t.unit for t in v.types if t.name in v.members(crime)}
        if len(units) != 1:
            raise SpecError(f"crime group '{crime}' mixes household and person crime types")
        return units.pop()

    @property
    def reference_period(self) -> str:
        """The period the estimates cover: the combined unit's period where the spec combines
        rows (``combine.period``), else the spec's ``period``."""
        comb = self.spec.files[self.spec.design.file].combine
        if self.rows is not None and comb is not None and comb.period:
            return comb.period
        return self.spec.period or ""

    def row_data(self) -> SurveyData:
        """The survey at the level of the file's rows (each interview), before rows were combined
        into units over the reference period (``files.<design file>.combine``): per-interview
        figures, such as the NCVS household-quarter rates by a characteristic at interview.
        Without ``combine`` the survey itself."""
        if self.rows is None:
            return self
        inc = self.incidents
        if inc is not None and "file_row" in inc:
            inc = inc.assign(respondent_row=inc["file_row"].to_numpy())
        return SurveyData(spec=self.spec, spec_path=self.spec_path, respondents=self.rows, incidents=inc,
                          accounting=self.accounting, metadata=self.metadata, value_labels=self.value_labels)

    def design(self, unit: str | None = None) -> Design | ReplicateDesign:
        """The respondent design, weighted for ``unit`` (household or person; default: the
        design file's unit).  Non-respondent rows stay in the design (domain of respondents)."""
        unit = unit or self.spec.files[self.spec.design.file].unit
        if unit not in self._designs:
            self._designs[unit] = _make_design(self, unit)
        return self._designs[unit]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
class _Accounting:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, step: str, file: str, rows: int, detail: str = "") -> None:
        self.rows.append({"step": step, "file": file, "rows": int(rows), "detail": detail})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", "file", "rows", "detail"])


def _eval(df: pd.DataFrame, expr: str, where: str) -> np.ndarray:
    """A spec condition on the rows of ``df`` (``survey.expr``: never evaluated as code)."""
    from .expr import ExpressionError, evaluate

    try:
        return evaluate(expr, df)
    except ExpressionError as e:
        raise IngestError(f"{where}: {e}") from None
    except SurveyError as e:
        raise IngestError(f"{where}: {e}") from None


def _in(values: pd.Series, codes) -> np.ndarray:
    """values in codes, comparing numbers numerically and strings as strings."""
    codes = list(codes)
    if not codes:
        return np.zeros(len(values), dtype=bool)
    num = pd.to_numeric(pd.Series(codes, dtype=object), errors="coerce").dropna().to_numpy(dtype=float)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return np.isin(values.to_numpy(dtype=float, na_value=np.nan), num)
    # text, or numbers mixed with Stata/SAS extended missing codes ("a", ".b"): numbers compare
    # as numbers (1.0 is code 1), the rest as text
    as_num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    text = values.astype(str).isin([str(c) for c in codes]).to_numpy()
    return np.isin(as_num, num) | (text & values.notna().to_numpy())


def _code_counts(values: pd.Series, mask: np.ndarray, limit: int = 8) -> str:
    vc = values[mask].value_counts(dropna=False).head(limit)
    return ", ".join(f"{_fmt_code(k)}: {v}" for k, v in vc.items())


def _fmt_code(x) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _needed_columns(spec: SurveySpec) -> dict[str, set[str]]:
    """Columns each file must provide, from every part of the spec."""
    need: dict[str, set[str]] = {name: set(f.keys) | set(f.columns) for name, f in spec.files.items()}
    for name, f in spec.files.items():
        if f.link:
            need[name] |= set(f.link.on)
            need[f.link.to] |= set(f.link.on)
        if f.respondents:
            need[name] |= expression_names(f.respondents)
    d = spec.design
    dfile = d.file
    for part in (d.strata, d.psu, d.fpc):
        if part:
            need[dfile] |= set([part] if isinstance(part, str) else part)
    v = spec.victimization
    if v is not None:
        if v.source == "incidents":
            inc = need[v.file]
            inc.add(v.crime_code)
            if v.weight:
                inc.add(v.weight)
            for rule in v.exclude:
                inc |= expression_names(rule.where)
            if v.series:
                inc |= expression_names(v.series.when) | {v.series.count}
            if v.reported:
                inc.add(v.reported.variable)
        else:
            for t in v.types:
                for item in (t.count, t.victim, t.reported):
                    if item is not None:
                        need[dfile].add(item.variable)
                if t.victim is not None and t.victim.skip is not None:
                    need[dfile].add(t.victim.skip.variable)
    comb = spec.files[dfile].combine
    if comb is not None:
        need[dfile] |= set(comb.key) | set(comb.order)
    return need


def _item_columns(spec: SurveySpec) -> set[str]:
    """Respondent-file items whose answer codes matter (screeners, counts, reported, skip
    filters, perception items): their user-missing codes are kept apart from blanks."""
    cols: set[str] = set()
    v = spec.victimization
    if v is not None and v.source == "respondent":
        for t in v.types:
            for item in (t.count, t.victim, t.reported):
                if item is not None:
                    cols.add(item.variable)
            if t.victim is not None and t.victim.skip is not None:
                cols.add(t.victim.skip.variable)
    for item in spec.perception:
        cols.add(item.variable)
        if item.follow_up is not None:
            cols.add(item.follow_up.variable)
    return cols


ORIGINAL = "__orig__"
"""Prefix of the temporary columns holding an item's answers with the file's user-missing codes
put back (the reader sets them to NaN); dropped at the end of :func:`load`."""


def _keep_original_codes(df: pd.DataFrame, meta, items: set[str]) -> None:
    for col in sorted(items & set(getattr(meta, "original_codes", {}) or {})):
        if col in df.columns and not meta.original_codes[col].empty:
            df[ORIGINAL + col] = meta.original(df, col)


def _answers(resp: pd.DataFrame, col: str) -> tuple[pd.Series, np.ndarray]:
    """An item's answers with the file's user-missing codes restored, and the rows whose answer
    was such a code (item nonresponse declared in the file, e.g. SPSS 7/8/9)."""
    orig = resp.get(ORIGINAL + col)
    if orig is None:
        return resp[col], np.zeros(len(resp), dtype=bool)
    return orig, (resp[col].isna() & orig.notna()).to_numpy()


def _resolve(spec_path: Path | None, p: str) -> Path:
    path = Path(p)
    if not path.is_absolute() and spec_path is not None:
        path = spec_path.parent / path
    return path


def _read(spec: SurveySpec, spec_path: Path | None, name: str, columns: set[str], acc: _Accounting):
    from .io import read

    f = spec.files[name]
    path = _resolve(spec_path, f.path)
    df, meta = read(path, columns=sorted(columns) if columns else None, encoding=f.encoding)
    acc.add("read", name, len(df), f"{path.name}: {len(df.columns)} columns read")
    if f.unit != "incident":
        _keep_original_codes(df, meta, _item_columns(spec))
    return df.reset_index(drop=True), meta


def _check_keys(df: pd.DataFrame, keys: list[str], name: str, path: str) -> None:
    if not keys:
        return
    miss = df[keys].isna().any(axis=1)
    if miss.any():
        raise IngestError(f"{path}: {int(miss.sum())} rows have a missing key ({', '.join(keys)})")
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        raise IngestError(f"{path}: {int(dup.sum())} rows share a key ({', '.join(keys)}) with another row; "
                          f"keys must be unique in file '{name}'")


# ---------------------------------------------------------------------------------------------
# the loader
# ---------------------------------------------------------------------------------------------
def load(spec: str | Path | SurveySpec, spec_path: str | Path | None = None) -> SurveyData:
    """Load a survey through its spec (a path to the YAML, or a parsed ``SurveySpec``)."""
    if not isinstance(spec, SurveySpec):
        spec_path = Path(spec)
        spec = read_spec(spec_path)
    elif spec_path is not None:
        spec_path = Path(spec_path)
    acc = _Accounting()
    need = _needed_columns(spec)
    for dom in spec.domains.values():
        if dom.variable is not None:
            need[dom.file or spec.design.file].add(dom.variable)
    for item in spec.perception:
        need[spec.design.file].add(item.variable)
        if item.follow_up is not None:
            need[spec.design.file].add(item.follow_up.variable)
    # weights may live in the design file or in a file it links to
    frames, metas = {}, {}
    for name in spec.files:
        if spec.files[name].unit == "incident":
            continue
        cols = need[name] | _weight_columns(spec, name, frames)
        if name == spec.design.file and spec.design.replicate_needs_all_columns():
            cols |= _replicate_matches(spec, spec_path, name)  # the regex matched on the header only
        frames[name], metas[name] = _read(spec, spec_path, name, cols, acc)
    dname = spec.design.file
    dfile = spec.files[dname]
    resp = frames[dname]
    resp_path = _resolve(spec_path, dfile.path).name
    _check_keys(resp, dfile.keys, dname, resp_path)

    # bring columns of linked respondent-level files (e.g. household variables for persons)
    for name, f in spec.files.items():
        if name == dname or f.unit == "incident":
            continue
        other = frames[name]
        _check_keys(other, f.keys, name, _resolve(spec_path, f.path).name)
        if dfile.link and dfile.link.to == name:
            on = dfile.link.on
        elif f.link and f.link.to == dname:
            # a file linked *to* the design file (e.g. persons -> households): every row must
            # belong to a row of the design file
            on = f.link.on
            fpath = _resolve(spec_path, f.path).name
            found = other[on].merge(resp[on].drop_duplicates(), on=on, how="left", indicator=True)["_merge"]
            unmatched = int((found != "both").sum())
            if unmatched and f.link.unmatched == "error":
                raise IngestError(f"{fpath}: {unmatched} rows match no row of file '{dname}' on {', '.join(on)}")
            if unmatched:
                acc.add(f"exclude: unmatched {name}", name, unmatched,
                        f"rows of '{name}' matching no row of '{dname}' on {', '.join(on)}")
            continue
        else:
            continue
        cols = [c for c in other.columns if c not in resp.columns or c in on]
        merged = resp.merge(other[cols], on=on, how="left", validate="many_to_one", indicator=True)
        unmatched = int((merged["_merge"] != "both").sum())
        if unmatched:
            raise IngestError(f"{resp_path}: {unmatched} rows match no row of file '{name}' on {', '.join(on)}")
        resp = merged.drop(columns="_merge")
        acc.add("link", dname, len(resp), f"columns of '{name}' joined on {', '.join(on)}")

    # respondents
    if dfile.respondents:
        is_resp = _eval(resp, dfile.respondents, f"{resp_path}: respondents")
        acc.add("respondents", dname, int(is_resp.sum()),
                f"{int((~is_resp).sum())} non-respondent rows kept for design information")
        if not is_resp.any():
            raise IngestError(f"{resp_path}: the respondents rule '{dfile.respondents}' selects none of "
                              f"the {len(resp)} rows")
    else:
        is_resp = np.ones(len(resp), dtype=bool)
        acc.add("respondents", dname, len(resp), "every row is a respondent")
    resp["_respondent"] = is_resp

    labels: dict[str, dict] = {}
    for meta in metas.values():
        for var, lab in getattr(meta, "value_labels", {}).items():
            labels.setdefault(var, lab)

    data = SurveyData(spec=spec, spec_path=spec_path, respondents=resp, incidents=None,
                      accounting=pd.DataFrame(), metadata=metas, value_labels=labels)
    _check_design_columns(data, resp_path, acc)
    if spec.victimization is not None:
        if spec.victimization.source == "incidents":
            _incidents(data, need, acc)
        else:
            _respondent_counts(data, resp_path, acc)
    _perception(data, resp_path, acc)
    _domains(data, frames, spec_path, acc)
    data.respondents = data.respondents.drop(
        columns=[c for c in data.respondents.columns if c.startswith(ORIGINAL)])
    if dfile.combine is not None:
        _combine_units(data, resp_path, acc)
    data.accounting = acc.frame()
    return data


def _combine_units(data: SurveyData, path: str, acc: _Accounting) -> None:
    """One row per unit over the reference period (``files.<design file>.combine``).

    A unit's rows (e.g. the two 6-month interviews of an NCVS household in the collection year)
    become one row: a victim if any respondent row reports a victimization (unknown when none
    does and one is unknown); victimizations summed: ``n__`` as ``sum_r w_r n_r / W`` so that
    ``W n__`` keeps the weighted victimizations (the incident weighting of incidence), ``k__``
    (the unweighted count that makes a repeat victim) as the plain sum; reported to the police
    if any; perception items and domains from the last respondent row that answered; the
    weight ``W`` (and replicate weights) by the declared rule over the respondent rows (0 for a
    unit with no respondent row, kept for design information; its counts are unknown); strata, PSUs and fpc must be
    the same on every row of a unit.  ``SurveyData.rows`` keeps the row-level table and
    ``incidents.respondent_row`` points at the unit's row.
    """
    spec = data.spec
    d = spec.design
    comb = spec.files[d.file].combine
    rows = data.respondents
    for c in comb.key + comb.order:
        if c not in rows.columns:
            raise column_not_found(c, rows.columns, "combine key" if c in comb.key else "combine order", path)
    miss = rows[comb.key].isna().any(axis=1)
    if miss.any():
        raise IngestError(f"{path}: {int(miss.sum())} rows have a missing unit key ({', '.join(comb.key)})")
    rows = rows.reset_index(drop=True)
    order = (rows.sort_values(comb.order, kind="stable").index.to_numpy() if comb.order
             else np.arange(len(rows)))  # row positions in time order
    codes, uniq = pd.MultiIndex.from_frame(rows[comb.key]).factorize() if len(comb.key) > 1 else \
        pd.factorize(rows[comb.key[0]])
    unit = np.asarray(codes)
    U = int(unit.max()) + 1 if len(unit) else 0
    is_resp = rows["_respondent"].to_numpy()
    # design variables: constant within a unit
    for part in (d.strata, d.psu, d.fpc):
        for c in [part] if isinstance(part, str) else (part or []):
            x = pd.factorize(rows[c])[0]
            lo = np.full(U, np.iinfo(np.int64).max)
            hi = np.full(U, -1)
            np.minimum.at(lo, unit, x)
            np.maximum.at(hi, unit, x)
            bad = int((lo != hi).sum())
            if bad:
                raise IngestError(f"{path}: '{c}' differs between the rows of {bad} units "
                                  f"(combine key {', '.join(comb.key)}); a unit has one stratum and PSU")
    # the last respondent row of each unit (in time order), else its last row
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows))
    key_last = np.where(is_resp, rank + len(rows), rank)
    best = np.full(U, -1)
    np.maximum.at(best, unit, key_last)
    last_row = np.empty(U, dtype=np.int64)
    hit = key_last == best[unit]
    last_row[unit[hit]] = np.flatnonzero(hit)
    out = rows.iloc[last_row].reset_index(drop=True).copy()
    n_rows = np.bincount(unit, minlength=U)
    n_resp = np.bincount(unit, weights=is_resp.astype(float), minlength=U)
    out["_respondent"] = n_resp > 0
    out["_rows"] = n_rows
    out["_respondent_rows"] = n_resp.astype(np.int64)

    def pick(x: np.ndarray, rule: str) -> np.ndarray:
        x = np.where(is_resp, x, 0.0)
        if rule == "sum":
            return np.bincount(unit, weights=x, minlength=U)
        if rule == "mean":
            s = np.bincount(unit, weights=x, minlength=U)
            return np.where(n_resp > 0, s / np.where(n_resp > 0, n_resp, 1), 0.0)
        sel = np.where(is_resp, rank if rule == "last" else -rank, np.iinfo(np.int64).min)
        top = np.full(U, np.iinfo(np.int64).min)
        np.maximum.at(top, unit, sel)
        r = np.flatnonzero((sel == top[unit]) & is_resp)
        res = np.zeros(U)
        res[unit[r]] = x[r]
        return res

    wcols = list(d.weight_columns())
    if d.replicate is not None:
        for u in ("household", "person"):
            try:
                rc = d.replicate_columns_for(u)
            except SpecError:
                continue
            wcols += [c for c in (rc if isinstance(rc, list) else [c for c in rows.columns if _re_match(rc, c)])]
    wcols = list(dict.fromkeys(wcols))
    raw_w = {c: rows[c].to_numpy(dtype=float) for c in wcols}
    for c in wcols:
        out[c] = pick(raw_w[c], comb.weights)
    # victimization columns
    v = spec.victimization
    if v is not None:
        dunit = spec.files[d.file].unit
        names = v.type_names() + list(v.groups)
        cols: dict[str, np.ndarray] = {}
        for name in names:
            try:
                wc = d.weight_for(data.unit_of(name), dunit)
            except SpecError:  # a group mixing units: the design file's weight
                wc = d.weight_for(dunit, dunit)
            w_row, W = np.where(is_resp, raw_w[wc], 0.0), out[wc].to_numpy(dtype=float)
            for prefix in ("n", "rep", "repunk"):
                col = f"{prefix}__{name}"
                if col in rows:
                    x = rows[col].to_numpy(dtype=float)
                    s_ = np.bincount(unit, weights=np.where(is_resp, np.nan_to_num(x) * w_row, 0.0), minlength=U)
                    nan = np.bincount(unit, weights=(np.isnan(x) & is_resp).astype(float), minlength=U) > 0
                    with np.errstate(invalid="ignore", divide="ignore"):
                        val = np.where(W > 0, s_ / np.where(W > 0, W, 1), 0.0)
                    # unknown when a respondent row is unknown, or the unit has no respondent row
                    # (as a non-interview row of the row-level file: out of every base)
                    cols[col] = np.where(nan | (n_resp == 0), np.nan, val)
            for col in (f"k__{name}", f"krep__{name}"):
                if col in rows:
                    x = rows[col].to_numpy(dtype=float)
                    s_ = np.bincount(unit, weights=np.where(is_resp, np.nan_to_num(x), 0.0), minlength=U)
                    nan = np.bincount(unit, weights=(np.isnan(x) & is_resp).astype(float), minlength=U) > 0
                    cols[col] = np.where(nan | (n_resp == 0), np.nan, s_)
            for prefix in ("victim", "vrep"):
                col = f"{prefix}__{name}"
                if col in rows:
                    cols[col] = _any_of(rows[col].to_numpy(dtype=float), unit, U, is_resp)
        for g, members in v.groups.items():
            vic = np.column_stack([cols[f"victim__{m}"] for m in members])
            cols[f"types__{g}"] = np.nansum(vic, axis=1)
        _repeat_columns(cols, v)
        for c, x in cols.items():
            out[c] = x
    # perception items: the last answer in the period
    for item in spec.perception:
        col = f"perc__{item.name}"
        out[col] = _last_answer(rows[col].to_numpy(dtype=float), unit, U, rank, is_resp)
    # domains: the last respondent row's value (already in ``out``); count units whose value changes
    changed = []
    for name in spec.domains:
        x = pd.factorize(rows[name])[0]
        lo = np.full(U, np.iinfo(np.int64).max)
        hi = np.full(U, -2)
        sel = is_resp & (x >= 0)
        np.minimum.at(lo, unit[sel], x[sel])
        np.maximum.at(hi, unit[sel], x[sel])
        k = int(((hi >= 0) & (lo != hi)).sum())
        if k:
            changed.append(f"{name} {k}")
    acc.add("combine", d.file, U,
            f"{len(rows)} rows combined into {U} units on {', '.join(comb.key)} "
            f"({int(out['_respondent'].sum())} with a respondent row, "
            f"{int((n_resp > 1).sum())} with 2+); weights: {comb.weights} over the unit's respondent rows"
            + (f"; domain value changed within the period (last row's value used): {', '.join(changed)}"
               if changed else ""))
    data.rows = rows
    data.row_unit = unit
    data.respondents = out
    if data.incidents is not None and "respondent_row" in data.incidents:
        file_row = data.incidents["respondent_row"].to_numpy()
        data.incidents["file_row"] = file_row
        data.incidents["respondent_row"] = unit[file_row]


def _re_match(pattern: str, col: str) -> bool:
    import re

    return re.search(pattern, col) is not None


def _any_of(x: np.ndarray, unit: np.ndarray, U: int, is_resp: np.ndarray) -> np.ndarray:
    """Per unit: 1 if any respondent row is 1, else NaN if any is unknown, else 0 (and 0 for a
    unit with no respondent row)."""
    yes = np.bincount(unit, weights=(np.nan_to_num(x) > 0) & is_resp, minlength=U) > 0
    unk = np.bincount(unit, weights=np.isnan(x) & is_resp, minlength=U) > 0
    return np.where(yes, 1.0, np.where(unk, np.nan, 0.0))


def _last_answer(x: np.ndarray, unit: np.ndarray, U: int, rank: np.ndarray, is_resp: np.ndarray) -> np.ndarray:
    ok = is_resp & ~np.isnan(x)
    sel = np.where(ok, rank, -1)
    top = np.full(U, -1)
    np.maximum.at(top, unit, sel)
    out = np.full(U, np.nan)
    r = np.flatnonzero(ok & (sel == top[unit]))
    out[unit[r]] = x[r]
    return out


def _weight_columns(spec: SurveySpec, name: str, frames) -> set[str]:
    d = spec.design
    if name == d.file:
        cols = set(d.weight_columns())
        if d.replicate is not None:
            rc = d.replicate.columns
            for part in (rc.values() if isinstance(rc, dict) else [rc]):
                if isinstance(part, list):
                    cols |= set(part)
        return cols
    return set()


def _replicate_matches(spec: SurveySpec, spec_path, name: str) -> set[str]:
    """Columns of the design file matched by the replicate-weight regular expression(s), from
    the file's header (no data read)."""
    import re

    from .io import columns_of

    f = spec.files[name]
    header = columns_of(_resolve(spec_path, f.path), encoding=f.encoding)
    rc = spec.design.replicate.columns
    out: set[str] = set()
    for part in (rc.values() if isinstance(rc, dict) else [rc]):
        if isinstance(part, str):
            try:
                rx = re.compile(part)
            except re.error as e:
                raise SpecError(f"design.replicate.columns: '{part}' is not a regular expression: {e}") from None
            out |= {c for c in header if rx.search(c)}
    return out


MAX_WEIGHT = 1e10
"""A weight above this (more units than any population) is an error, not a weight."""


def _check_design_columns(data: SurveyData, path: str, acc: _Accounting) -> None:
    d = data.spec.design
    resp = data.respondents
    is_resp = resp["_respondent"].to_numpy()
    for wcol in d.weight_columns():
        if wcol not in resp.columns:
            raise column_not_found(wcol, resp.columns, "weight", path)
        w = pd.to_numeric(resp[wcol], errors="coerce")
        text = w.isna() & resp[wcol].notna()
        if (text & is_resp).any():
            raise IngestError(f"{path}: weight '{wcol}' is not a number for {int((text & is_resp).sum())} "
                              f"respondents ({_code_counts(resp[wcol], (text & is_resp).to_numpy(), 3)})")
        huge = ~np.isfinite(w.fillna(0.0)) | (w > MAX_WEIGHT)
        if (huge & is_resp).any():
            rows = np.flatnonzero((huge & is_resp).to_numpy())
            raise IngestError(f"{path}: weight '{wcol}' is infinite or above {MAX_WEIGHT:g} for {len(rows)} "
                              f"respondents (rows {', '.join(str(r + 1) for r in rows[:5])}"
                              f"{', ...' if len(rows) > 5 else ''})")
        bad_nan = int((w.isna() & is_resp).sum())
        if bad_nan:
            raise IngestError(f"{path}: weight '{wcol}' is missing for {bad_nan} respondents")
        neg = int(((w < 0) & is_resp).sum())
        if neg:
            raise IngestError(f"{path}: weight '{wcol}' is negative for {neg} respondents")
        non_resp_nan = int((w.isna() & ~is_resp).sum())
        if non_resp_nan:
            acc.add("weights", d.file, non_resp_nan, f"non-respondent rows with a missing '{wcol}' get weight 0")
        resp[wcol] = w.fillna(0.0).where(is_resp, 0.0)
    for part, what in ((d.strata, "strata"), (d.psu, "PSU")):
        for c in [part] if isinstance(part, str) else (part or []):
            if c not in resp.columns:
                raise column_not_found(c, resp.columns, what, path)
            miss = int(resp[c].isna().sum())
            if miss:
                raise IngestError(f"{path}: {what} variable '{c}' is missing for {miss} rows")


def _make_design(data: SurveyData, unit: str):
    spec = data.spec
    d = spec.design
    resp = data.respondents
    dunit = spec.files[d.file].unit
    if unit != dunit:
        link = spec.files[d.file].link
        if not (unit == "household" and dunit == "person" and link is not None):
            raise IngestError(f"{unit}-level estimates need a {unit} design file or a person file linked "
                              f"to households; '{d.file}' holds {dunit}s")
        dup = int(resp.loc[resp["_respondent"], link.on].duplicated().sum())
        if dup:
            raise IngestError(f"household-level estimates need one respondent per household; file '{d.file}' "
                              f"has {dup} extra respondents in the same household")
    weights = d.weight_for(unit, dunit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        if d.replicate is None:
            try:
                design = Design(resp, weights=weights, strata=d.strata, psu=d.psu, fpc=d.fpc, nest=d.nest,
                                lonely_psu=d.lonely_psu)
            except LonelyPSUError as e:
                path = _resolve(data.spec_path, spec.files[d.file].path).name
                raise LonelyPSUError(f"{path}: strata '{d.strata}', PSU '{d.psu}': {e}") from None
        else:
            r = d.replicate
            design = ReplicateDesign(resp, weights=weights, replicate_weights=d.replicate_columns_for(unit),
                                     method=r.method, rho=r.rho, scale=r.scale, rscales=r.rscales, mse=r.mse)
    if not resp["_respondent"].all():
        design = design.subset(resp["_respondent"].to_numpy())
    return design


# ---------------------------------------------------------------------------------------------
# incidents
# ---------------------------------------------------------------------------------------------
def _incidents(data: SurveyData, need, acc: _Accounting) -> None:
    spec = data.spec
    v = spec.victimization
    f = spec.files[v.file]
    inc, meta = _read(spec, data.spec_path, v.file, need[v.file], acc)
    data.metadata[v.file] = meta
    path = _resolve(data.spec_path, f.path).name
    _check_keys(inc, f.keys, v.file, path)
    keep, type_of = _incident_rules(spec, inc, path, acc)
    _link_incidents(data, inc, keep, type_of, path, acc)


def _incident_rules(spec: SurveySpec, inc: pd.DataFrame, path: str, acc: _Accounting):
    """Steps 1-2 of the incidents, on the incident file alone: the exclusion rules and the crime
    codes.  Returns the incidents kept (boolean) and each incident's crime type."""
    v = spec.victimization
    n0 = len(inc)
    # 1. exclusion rules, in order
    keep = np.ones(n0, dtype=bool)
    removed = []
    for rule in v.exclude:
        hit = _eval(inc, rule.where, f"{path}: exclusion '{rule.name}'") & keep
        acc.add(f"exclude: {rule.name}", v.file, int(hit.sum()), rule.label or rule.where)
        removed.append(f"'{rule.name}' ({rule.where}) removes {int(hit.sum())}")
        keep &= ~hit
    if n0 and not keep.any():
        raise IngestError(f"{path}: the exclusion rules remove all {n0} incidents: {'; '.join(removed)}")
    # 2. crime codes
    code = inc[v.crime_code]
    type_of = pd.Series(pd.NA, index=inc.index, dtype="object")
    for t in v.types:
        type_of[_in(code, t.codes)] = t.name
    ignored = _in(code, v.ignore_codes) & keep
    if ignored.any():
        acc.add("ignore codes", v.file, int(ignored.sum()), f"{v.crime_code} in {v.ignore_codes}")
    keep &= ~ignored
    unknown = keep & type_of.isna().to_numpy()
    if unknown.any():
        raise IngestError(f"{path}: {int(unknown.sum())} incidents have a '{v.crime_code}' code in no crime type "
                          f"({_code_counts(code, unknown)}); declare them in a type or in ignore_codes")
    return keep, type_of


def _link_incidents(data: SurveyData, inc: pd.DataFrame, keep: np.ndarray, type_of: pd.Series, path: str,
                    acc: _Accounting) -> None:
    """Steps 3-6 of the incidents (link to the respondents, series, weight adjustment,
    reporting) and the counts per respondent (:func:`_cap_and_aggregate`)."""
    spec = data.spec
    v = spec.victimization
    f = spec.files[v.file]
    n0 = len(inc)
    keep = keep.copy()
    # 3. link to respondents
    link = f.link
    resp = data.respondents
    rkeys = resp[link.on].copy()
    rkeys["_row"] = np.arange(len(resp))
    linked = inc[link.on].merge(rkeys, on=link.on, how="left", validate="many_to_one")
    row = linked["_row"].to_numpy()
    unmatched = keep & np.isnan(row.astype(float))
    if unmatched.any():
        if link.unmatched == "error":
            raise IngestError(f"{path}: {int(unmatched.sum())} incidents match no respondent of file "
                              f"'{link.to}' on {', '.join(link.on)}")
        acc.add("exclude: unmatched", v.file, int(unmatched.sum()),
                f"incidents matching no respondent on {', '.join(link.on)}")
        keep &= ~unmatched
    is_resp = resp["_respondent"].to_numpy()
    nonresp = keep & ~is_resp[np.where(keep, np.nan_to_num(row), 0).astype(np.int64)]
    if nonresp.any():
        if link.unmatched == "error":
            raise IngestError(f"{path}: {int(nonresp.sum())} incidents link to non-respondent rows of file "
                              f"'{link.to}' (respondents rule: {spec.files[link.to].respondents})")
        acc.add("exclude: non-respondent", v.file, int(nonresp.sum()),
                "incidents linked to non-respondent rows (kept for design only)")
        keep &= ~nonresp
    # 4. series counting
    series_count = np.ones(n0)
    if v.series is not None:
        s = v.series
        is_series = _eval(inc, s.when, f"{path}: series rule") & keep
        cnt = pd.to_numeric(inc[s.count], errors="coerce")
        unk = _in(inc[s.count], s.unknown_codes) | cnt.isna().to_numpy()
        val = np.where(unk, s.unknown_value, cnt.to_numpy(dtype=float, na_value=np.nan))
        if s.cap is not None:
            val = np.minimum(val, s.cap)
        series_count = np.where(is_series, val, 1.0)
        acc.add("series", v.file, int(is_series.sum()),
                f"series incidents counted as {s.count} (unknown = {s.unknown_value:g}"
                + (f", cap {s.cap:g})" if s.cap is not None else ")")
                + f"; {int((is_series & unk).sum())} with unknown count")
    # 5. weight adjustment (NCVS: incident weight / respondent weight)
    rows_kept = row[keep].astype(np.int64)
    adj = np.ones(n0)
    if v.weight:
        iw = pd.to_numeric(inc[v.weight], errors="coerce").to_numpy(dtype=float)
        bad = keep & (np.isnan(iw) | (iw < 0))
        if bad.any():
            raise IngestError(f"{path}: incident weight '{v.weight}' is missing or negative for "
                              f"{int(bad.sum())} incidents")
        dunit = spec.files[spec.design.file].unit
        safe_row = np.where(keep, np.nan_to_num(row), 0).astype(np.int64)
        unit_of = {t.name: t.unit for t in v.types}
        rw = np.zeros(n0)
        for unit in ("household", "person"):
            on_unit = keep & (type_of.map(unit_of).to_numpy() == unit)
            if on_unit.any():
                wcol = spec.design.weight_for(unit, dunit)
                rw[on_unit] = resp[wcol].to_numpy(dtype=float)[safe_row[on_unit]]
        zero = keep & (rw <= 0)
        if zero.any():
            raise IngestError(f"{path}: {int(zero.sum())} incidents link to respondents with weight 0; "
                              "the incident weight cannot be adjusted")
        with np.errstate(invalid="ignore", divide="ignore"):
            adj = np.where(keep, iw / rw, 0.0)
    # 6. reported to police
    reported = np.full(n0, np.nan)
    if v.reported is not None:
        rv = inc[v.reported.variable]
        yes, no, unk = _in(rv, v.reported.yes), _in(rv, v.reported.no), _in(rv, v.reported.unknown)
        other = keep & ~(yes | no | unk) & rv.notna().to_numpy()
        if other.any():
            raise IngestError(f"{path}: '{v.reported.variable}' has codes outside yes/no/unknown for "
                              f"{int(other.sum())} incidents ({_code_counts(rv, other)})")
        reported = np.where(yes, 1.0, np.where(no, 0.0, np.nan))
    kept = inc.loc[keep].copy()
    kept["crime_type"] = type_of[keep].to_numpy()
    kept["unit"] = kept["crime_type"].map({t.name: t.unit for t in v.types})
    kept["series_count"] = series_count[keep]
    kept["weight_adjustment"] = adj[keep]
    kept["reported"] = reported[keep]
    kept["_row"] = rows_kept
    acc.add("incidents counted", v.file, len(kept),
            ", ".join(f"{t}: {n}" for t, n in kept["crime_type"].value_counts().items()))
    _cap_and_aggregate(data, kept, acc)


def _repeat_columns(cols: dict, v) -> None:
    """Repeat and multiple victimization indicators per respondent."""
    for c in v.type_names() + list(v.groups):
        k = cols[f"k__{c}"]
        cols[f"rv__{c}"] = np.where(np.isnan(k), np.nan, (k >= 2).astype(float))
        cols[f"ri__{c}"] = cols[f"n__{c}"] * np.nan_to_num(cols[f"rv__{c}"])
    for g in v.groups:
        t = cols[f"types__{g}"]
        cols[f"mv__{g}"] = np.where(np.isnan(t), np.nan, (t >= 2).astype(float))


def _cap_value(data: SurveyData, counts: pd.Series, weights: np.ndarray, crime: str | None = None) -> float:
    """The cap for one crime type: fixed (per type or for all), or the weighted percentile of
    the victims' counts (per type, or pooled over types with ``by: all``)."""
    cap = data.spec.victimization.cap
    if cap.rule == "fixed":
        if cap.values and crime in cap.values:
            return float(cap.values[crime])
        return float(cap.value) if cap.value is not None else np.inf
    x, w = counts.to_numpy(dtype=float), weights
    pos = np.nan_to_num(x) > 0
    if not pos.any():
        return np.inf
    x, w = x[pos], w[pos]
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order])
    i = np.searchsorted(cw, cap.value / 100.0 * cw[-1] * (1 - 1e-12))
    return float(x[order][min(i, len(x) - 1)])


def _cap_text(cap) -> str:
    if cap.rule == "fixed":
        return "fixed" + (f" {cap.value:g}" if cap.value is not None else "") + (
            f" per type {dict(cap.values)}" if cap.values else "")
    return f"percentile {cap.value:g}" + (" pooled over types" if cap.by == "all" else " per type")


def _pooled(data: SurveyData, per_type: dict[str, tuple[pd.Series, np.ndarray]]) -> tuple[pd.Series, np.ndarray]:
    """Counts and weights of every type stacked (the distribution of ``cap.by: all``)."""
    xs = [c.reset_index(drop=True) for c, _ in per_type.values()]
    ws = [w for _, w in per_type.values()]
    return pd.concat(xs, ignore_index=True), np.concatenate(ws)


def _cap_and_aggregate(data: SurveyData, kept: pd.DataFrame, acc: _Accounting) -> None:
    v = data.spec.victimization
    resp = data.respondents
    n = len(resp)
    dunit = data.spec.files[data.spec.design.file].unit
    cols = {}
    cap_note = []
    raws = {}
    for t in v.types:
        sel = kept["crime_type"] == t.name
        rows = kept.loc[sel, "_row"].to_numpy()
        raws[t.name] = (pd.Series(np.bincount(rows, weights=kept.loc[sel, "series_count"].to_numpy(), minlength=n)),
                        resp[data.spec.design.weight_for(t.unit, dunit)].to_numpy(dtype=float))
    pooled = _pooled(data, raws) if v.cap.by == "all" else None
    for t in v.types:
        sel = kept["crime_type"] == t.name
        rows = kept.loc[sel, "_row"].to_numpy()
        sc = kept.loc[sel, "series_count"].to_numpy()
        adj = kept.loc[sel, "weight_adjustment"].to_numpy()
        rep = kept.loc[sel, "reported"].to_numpy()
        raw = raws[t.name][0].to_numpy()  # victimizations per respondent
        if v.cap.rule != "none":
            capv = _cap_value(data, *(pooled or raws[t.name]), crime=t.name)
            scale = np.where(raw > capv, capv / np.where(raw > 0, raw, 1), 1.0)
            capped = int((raw > capv).sum())
            cap_note.append(f"{t.name} cap {capv:g} ({capped} respondents capped)")
        else:
            scale = np.ones(n)
        f = sc * adj * scale[rows]
        cols[f"n__{t.name}"] = np.bincount(rows, weights=f, minlength=n)
        cols[f"k__{t.name}"] = raw * scale
        cols[f"victim__{t.name}"] = (np.bincount(rows, minlength=n) > 0).astype(float)
        cols[f"rep__{t.name}"] = np.bincount(rows, weights=f * (rep == 1), minlength=n)
        cols[f"krep__{t.name}"] = np.bincount(rows, weights=sc * scale[rows] * (rep == 1), minlength=n)
        cols[f"repunk__{t.name}"] = np.bincount(rows, weights=f * np.isnan(rep), minlength=n)
        cols[f"vrep__{t.name}"] = (np.bincount(rows, weights=(rep == 1).astype(float), minlength=n) > 0).astype(float)
    for g, members in v.groups.items():
        for prefix in ("n", "k", "rep", "repunk", "krep"):
            cols[f"{prefix}__{g}"] = sum(cols[f"{prefix}__{m}"] for m in members)
        cols[f"victim__{g}"] = (sum(cols[f"victim__{m}"] for m in members) > 0).astype(float)
        cols[f"vrep__{g}"] = (sum(cols[f"vrep__{m}"] for m in members) > 0).astype(float)
        cols[f"types__{g}"] = sum(cols[f"victim__{m}"] for m in members)
    if v.cap.rule != "none":
        acc.add("cap", v.file, len(kept), f"{_cap_text(v.cap)}: " + "; ".join(cap_note))
    _repeat_columns(cols, v)
    data.respondents = pd.concat([resp, pd.DataFrame(cols, index=resp.index)], axis=1)
    data.incidents = kept.drop(columns="_row").assign(respondent_row=kept["_row"].to_numpy())


def _respondent_counts(data: SurveyData, path: str, acc: _Accounting) -> None:
    """Victimization counted by respondent items (CSEW/ICVS style).

    A victim screener (``victim``) decides who is a victim: where it is not "yes" the count is 0
    whatever the count item holds (skip patterns leave it system-missing); a victim whose count
    is missing keeps ``victim__ = 1`` and a missing ``n__``.  A type with a screener and no count
    item is prevalence-only (``n__`` and ``k__`` missing).  "Too many to remember" codes are left
    out of the distribution the percentile cap is computed on, then take the cap.
    """
    v = data.spec.victimization
    resp = data.respondents
    dfile = data.spec.design.file
    dunit = data.spec.files[dfile].unit
    cols: dict[str, np.ndarray] = {}
    counts: dict[str, pd.Series] = {}
    dks: dict[str, np.ndarray] = {}
    victims: dict[str, np.ndarray] = {}
    for t in v.types:
        for item in (t.count, t.victim, t.reported):
            if item is not None and item.variable not in resp.columns:
                raise column_not_found(item.variable, resp.columns, f"item of crime type '{t.name}'", path)
        scr = None
        is_resp = resp["_respondent"].to_numpy()
        if t.victim is not None:
            scr, unknown = _screener(resp, t.victim, is_resp, dfile, acc)
            victims[t.name] = np.where(unknown, np.nan, scr.astype(float))
        if t.count is None:
            counts[t.name] = pd.Series(np.nan, index=resp.index)
            dks[t.name] = np.zeros(len(resp), dtype=bool)
            continue
        item = t.count
        answers, umiss = _answers(resp, item.variable)
        raw = pd.to_numeric(resp[item.variable], errors="coerce")
        dk = _in(answers, item.dont_know)
        raw = raw.where(~umiss | dk, np.nan)
        bad = raw.isna().to_numpy() & resp[item.variable].notna().to_numpy() & ~dk
        if bad.any():
            raise IngestError(f"{path}: count item '{item.variable}' has non-numeric codes for "
                              f"{int(bad.sum())} rows ({_code_counts(resp[item.variable], bad)})")
        neg = (raw < 0).to_numpy() & ~dk
        if neg.any():
            raise IngestError(f"{path}: count item '{item.variable}' is negative for {int(neg.sum())} rows")
        c = raw.where(~dk)  # "too many to remember": set aside for the cap distribution
        if scr is not None:
            c = c.where(scr, 0.0).where(~unknown)
            dk = dk & scr
            skipped = int((~scr & ~unknown & resp[item.variable].isna().to_numpy() & is_resp).sum())
            if skipped:
                acc.add("skip pattern", dfile, skipped, f"{item.variable}: not asked (screener not yes), counted as 0")
        counts[t.name], dks[t.name] = c, dk
    weights = {t.name: resp[data.spec.design.weight_for(t.unit, dunit)].to_numpy(dtype=float) for t in v.types}
    pooled = None
    if v.cap.rule == "percentile" and v.cap.by == "all":
        pooled = _pooled(data, {t: (counts[t].fillna(0.0), weights[t]) for t in counts})
    caps = []
    for t in v.types:
        c, dk = counts[t.name], dks[t.name]
        capv = np.inf
        if v.cap.rule != "none" and t.count is not None:
            capv = _cap_value(data, *(pooled or (c.fillna(0.0), weights[t.name])), crime=t.name)
        if t.count is not None and dk.any():
            item = t.count
            dk_val = capv if item.dont_know_value == "cap" else float(item.dont_know_value)
            if not np.isfinite(dk_val):
                raise IngestError(f"count item '{item.variable}': 'too many to remember' takes the cap, "
                                  "but the spec has no cap rule")
            c = c.where(~dk, dk_val)
            acc.add("dont know", dfile, int(dk.sum()), f"{item.variable}: {list(item.dont_know)} counted as {dk_val:g}")
        capped = c.clip(upper=capv)
        if v.cap.rule != "none" and t.count is not None:
            caps.append(f"{t.name} cap {capv:g} ({int((c > capv).sum())} respondents capped)")
        if t.count is not None:
            miss = int(c.isna().sum())
            if miss:
                acc.add("missing count", dfile, miss, f"{t.count.variable}: missing, a domain of its own")
        n_ = capped.to_numpy(dtype=float)
        cols[f"n__{t.name}"] = n_
        cols[f"k__{t.name}"] = n_
        if t.name in victims:
            vic = victims[t.name]
        else:
            vic = np.where(np.isnan(n_), np.nan, (n_ > 0).astype(float))
        cols[f"victim__{t.name}"] = vic
        if t.reported is not None:
            r = resp[t.reported.variable]
            yes, no = _in(r, t.reported.yes), _in(r, t.reported.no)
            cols[f"vrep__{t.name}"] = np.where(yes, 1.0, np.where(no, 0.0, np.nan))
    for g, members in v.groups.items():
        for prefix in ("n", "k"):
            cols[f"{prefix}__{g}"] = sum(cols[f"{prefix}__{m}"] for m in members)
        vic = np.column_stack([cols[f"victim__{m}"] for m in members])
        # a victim of any member; unknown when any member is unknown (the group's base is those
        # who answered for every member, as its count's: keeping "yes to one, unknown to another"
        # while dropping "no and unknown" would bias the group's prevalence upwards)
        any_yes = (np.nan_to_num(vic) > 0).any(axis=1)
        unknown = np.isnan(vic).any(axis=1)
        cols[f"victim__{g}"] = np.where(unknown, np.nan, any_yes.astype(float))
        cols[f"types__{g}"] = np.where(unknown, np.nan, np.nansum(vic, axis=1))
        if all(f"vrep__{m}" in cols for m in members):
            rep = np.column_stack([cols[f"vrep__{m}"] for m in members])
            any_rep = (np.nan_to_num(rep) > 0).any(axis=1)
            cols[f"vrep__{g}"] = np.where(any_rep, 1.0, np.where(np.isnan(rep).all(axis=1), np.nan, 0.0))
    if caps:
        acc.add("cap", dfile, len(resp), f"{_cap_text(v.cap)}: " + "; ".join(caps))
    _repeat_columns(cols, v)
    data.respondents = pd.concat([resp, pd.DataFrame(cols, index=resp.index)], axis=1)


# ---------------------------------------------------------------------------------------------
# perception items and domains
# ---------------------------------------------------------------------------------------------
def _screener(resp: pd.DataFrame, item, is_resp: np.ndarray, dfile: str, acc: _Accounting):
    """(victim, unknown) masks of a screener.  Unknown (out of the base): the spec's ``missing``
    codes, the file's user-missing codes, and blanks that no declared skip pattern explains
    (unless ``blank: no``).  Each kind is counted in the accounting (respondents only)."""
    answers, umiss = _answers(resp, item.variable)
    yes = _in(answers, item.yes) & ~umiss
    declared = _in(answers, item.missing) & ~yes
    file_missing = umiss & ~declared
    blank = resp[item.variable].isna().to_numpy() & ~umiss
    if item.skip is not None:
        filt, _ = _answers(resp, item.skip.variable)
        skipped = blank & _in(filt, item.skip.codes)
    elif item.blank == "no":
        skipped = blank
    else:
        skipped = np.zeros(len(resp), dtype=bool)
    unexplained = blank & ~skipped
    unknown = declared | file_missing | unexplained
    var = item.variable
    if (skipped & is_resp).any():
        why = (f"{item.skip.variable} in {list(item.skip.codes)}" if item.skip is not None else "blank: no")
        acc.add("skip pattern", dfile, int((skipped & is_resp).sum()), f"{var}: not asked ({why}), counted as not a victim")
    if ((declared | file_missing) & is_resp).any():
        m = (declared | file_missing) & is_resp
        acc.add("item nonresponse", dfile, int(m.sum()),
                f"{var}: {_code_counts(answers, m)} (refused, don't know...): out of the base")
    if (unexplained & is_resp).any():
        acc.add("item nonresponse", dfile, int((unexplained & is_resp).sum()),
                f"{var}: blank with no declared skip pattern: out of the base")
    return yes, unknown


def _perception(data: SurveyData, path: str, acc: _Accounting) -> None:
    resp = data.respondents
    cols = {}
    for item in data.spec.perception:
        if item.variable not in resp.columns:
            raise column_not_found(item.variable, resp.columns, f"perception item '{item.name}'", path)
        s, umiss = _answers(resp, item.variable)  # the file's user-missing codes are no answer
        if item.follow_up is not None:
            fu = item.follow_up
            if fu.variable not in resp.columns:
                raise column_not_found(fu.variable, resp.columns, f"follow-up of perception item '{item.name}'", path)
            take = _in(s, fu.codes)
            if take.any():
                acc.add("perception follow-up", data.spec.design.file, int(take.sum()),
                        f"{item.name}: {item.variable} in {list(fu.codes)} answered by {fu.variable}")
            fs, fmiss = _answers(resp, fu.variable)
            s = s.where(~take, fs)
            umiss = np.where(take, fmiss, umiss)
        pos = _in(s, item.positive) & ~umiss
        miss = (_in(s, item.missing) | s.isna().to_numpy() | umiss) & ~pos
        known = data.value_labels.get(item.variable)
        if known and item.follow_up is not None:
            known = {**known, **data.value_labels.get(item.follow_up.variable, {})}
        if known:
            declared = _in(s, list(known)) | pos | miss
            bad = ~declared
            if bad.any():
                raise IngestError(f"{path}: '{item.variable}' has codes outside its value labels for "
                                  f"{int(bad.sum())} rows ({_code_counts(s, bad)})")
        cols[f"perc__{item.name}"] = np.where(miss, np.nan, pos.astype(float))
        n_miss = int((miss & resp["_respondent"].to_numpy()).sum())
        if n_miss:
            m = miss & resp["_respondent"].to_numpy()
            acc.add("perception missing", data.spec.design.file, n_miss,
                    f"{item.name}: no answer ({_code_counts(s, m)}; excluded from its base)")
    if cols:
        data.respondents = pd.concat([resp, pd.DataFrame(cols, index=resp.index)], axis=1)


CROSS = " × "
"""Joins the values of crossed domains in their published value ("Female × 16-24")."""


def _cross(resp: pd.DataFrame, parts: list[str]) -> pd.Categorical:
    """The cross of categorical domains: a value for each observed combination, in the order of
    the parts' categories; missing where any part is missing."""
    cats = [resp[p].cat for p in parts]
    codes = np.column_stack([c.codes for c in cats])
    ok = (codes >= 0).all(axis=1)
    sizes = [len(c.categories) for c in cats]
    key = np.zeros(len(resp), dtype=np.int64)
    for j, k in enumerate(sizes):
        key = key * k + np.where(ok, codes[:, j], 0)
    seen = np.unique(key[ok])
    labels = []
    for v in seen:
        parts_idx = []
        for k in reversed(sizes):
            parts_idx.append(v % k)
            v //= k
        labels.append(CROSS.join(str(c.categories[i]) for c, i in zip(cats, reversed(parts_idx))))
    pos = np.searchsorted(seen, key)
    return pd.Categorical.from_codes(np.where(ok, pos, -1), categories=labels)


def _domains(data: SurveyData, frames, spec_path, acc: _Accounting) -> None:
    resp = data.respondents
    crossed = {n: d for n, d in data.spec.domains.items() if d.cross is not None}
    for name, dom in data.spec.domains.items():
        if dom.cross is not None:
            continue
        fpath = _resolve(spec_path, data.spec.files[dom.file or data.spec.design.file].path).name
        if dom.variable not in resp.columns:
            raise column_not_found(dom.variable, resp.columns, f"domain '{name}'",
                                   _resolve(spec_path, data.spec.files[data.spec.design.file].path).name)
        s = resp[dom.variable]
        if dom.bands is not None:
            x = pd.to_numeric(s, errors="coerce")
            edges = list(dom.bands) + [np.inf]
            labs = [f"{_fmt_code(a)}-{_fmt_code(b - 1)}" if np.isfinite(b) else f"{_fmt_code(a)}+"
                    for a, b in zip(edges[:-1], edges[1:])]
            out = pd.cut(x, edges, right=False, labels=labs)
            below = int((x < edges[0]).sum())
            if below:
                acc.add("domain", data.spec.design.file, below, f"{name}: {below} rows below the first band")
        elif dom.recode is not None:
            out = pd.Series(pd.NA, index=resp.index, dtype="object")
            for lab, codes in dom.recode.items():
                out[_in(s, codes)] = lab
            bad = out.isna().to_numpy() & s.notna().to_numpy()
            if bad.any():
                raise IngestError(f"{fpath}: domain '{name}': '{dom.variable}' has codes in no recode group for "
                                  f"{int(bad.sum())} rows ({_code_counts(s, bad)})")
            out = pd.Categorical(out, categories=list(dom.recode))
        else:
            labels = dom.labels or data.value_labels.get(dom.variable)
            if labels:
                keys = list(labels)
                known = _in(s, keys)
                bad = ~known & s.notna().to_numpy()
                if bad.any():
                    raise IngestError(f"{fpath}: domain '{name}': '{dom.variable}' has codes without a label for "
                                      f"{int(bad.sum())} rows ({_code_counts(s, bad)})")
                if pd.api.types.is_numeric_dtype(s.dtype):
                    mapping = {float(k): str(v) for k, v in labels.items()}
                    out = s.astype(float).map(mapping)
                else:
                    mapping = {str(k): str(v) for k, v in labels.items()}
                    out = s.astype(str).map(mapping).where(s.notna())
                out = pd.Categorical(out, categories=list(dict.fromkeys(str(v) for v in labels.values())))
            else:
                out = s.astype("category")
        missing = int((pd.isna(out) & resp["_respondent"].to_numpy()).sum())
        if missing:
            acc.add("domain missing", data.spec.design.file, missing, f"{name}: respondents with no value")
        resp[name] = out
    for name, dom in crossed.items():
        resp[name] = _cross(resp, list(dom.cross))
        missing = int((resp[name].isna() & resp["_respondent"]).sum())
        if missing:
            acc.add("domain missing", data.spec.design.file, missing,
                    f"{name}: respondents with no value in one of {', '.join(dom.cross)}")
