"""The indicator table of a survey whose design file is too large for memory: the file (Parquet)
is read in row batches, each batch goes through the same per-row derivations as
:func:`survey.ingest.load` (victim flags, counts with their cap, repeat and multiple
victimization, reporting, perception codings, missing codes, domains with their labels, bands
and recodes), and the derived columns feed the accumulators of :mod:`survey.stream`.  The table
equals :func:`survey.indicators.indicator_table` on the same data loaded in memory (estimates,
SEs, intervals, df, bases and publication flags; tests/test_stream_indicators.py).

What streams (one pass over the file, memory bounded by the batch and by the number of
cells x PSUs, or cells x replicates):

* victimization from respondent items (``victimization.source: respondent``) or from an
  incident file linked to the design file (``source: incidents``, the NCVS shape; see
  :class:`_Incidents`): prevalence, incidence, concentration, repeat victims, victimizations
  against repeat victims, multiple victimization, reporting (by victims; over victimizations
  and the dark figure with an incident file), the counts of victimizations and victims, the
  Gini indices over the population and over victims; perception items, also by victimization
  status;
* ``combine`` (several rows of one unit over the period): on a file sorted by the unit key in
  the same pass (a unit's rows at the end of a batch wait for the next one), otherwise through
  temporary files partitioned by a hash of the unit key (:meth:`_Derived._buckets`);
* Taylor designs (strata, one stage of PSUs or none: each row its own PSU, stage-1 fpc) and
  replicate designs; the df of each
  domain (PSUs minus strata among its rows, or the rank of its rows' replicate weights) and the
  Satterthwaite effective df of incidence and concentration, as in memory.

Several sampling stages: without a first-stage fpc the later stages add nothing to the
variance (with-replacement sampling of PSUs), as in memory, and the first stage streams; two
stages with a first-stage fpc stream the second stage's variance too (per PSU the products of
its SSUs' totals, :func:`survey.stream._stage2_vcov`), each SSU's rows reaching the
accumulators together (sorted by PSU and SSU, else partitioned as for ``combine``).

What does not (a one-line :class:`StreamIndicatorError` names it): several design files (an
incident file must link to the design file), several strata columns, more than two stages with
a first-stage fpc (or two with ``combine``), several stages with ``lonely_psu: certainty``, an
incident file larger than the memory limit.

The Gini indices do not sort the file: the counts are non-negative integers (capped), so a
cell's weighted distribution of a count is a short histogram (a proportion estimate of its
values), and the Gini computed from the histogram is the Gini of the rows; the replicate
histograms give the replicate Ginis, and on Taylor designs the Gini's linearized value depends
only on a row's cell and count, so its variance follows from the proportions' covariance
(:func:`_gini_rows`).

On Dask (``indicator_table(..., dask=True)``) each row group of the design file is one task
that derives and accumulates its rows on a worker (:class:`_Sums`); the partial sums are added
two by two, so the table is the one-machine table.  Not there: an incident file, ``combine``,
two stages with a first-stage fpc (:func:`check_dask`).

Besides the table, for the reports, each in one more pass: the Lorenz curves
(:func:`lorenz_curves`, from the same weighted histogram of the counts), the design summary
and the domains' weighted distributions (:func:`design_summary`), and the differences between
two categories of a domain with the covariance of the two cells (:func:`domain_differences`).

A percentile cap takes two passes (the first gathers the weighted distribution of the counts,
over the rows before any ``combine``).  Memory: the batch, the accumulators (cells x PSUs, or
cells x replicates), an incident file's used columns, and with unsorted ``combine`` one bucket
(about :data:`BUCKET_BATCHES` batches); the buckets take disk space about the used columns.

Not checked when streaming (they need every key at once): unique keys, one respondent per
household for household rates of a person file.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from . import indicators as I
from . import ingest as G
from . import stream as S
from .errors import SurveyError, SurveyWarning
from .spec import SurveySpec, read_spec

__all__ = ["StreamIndicatorError", "STREAM_FAMILIES", "engine_plan", "used_columns", "check_streamable", "stream_accounting",
           "indicator_table", "check_dask", "lorenz_curves", "design_summary", "DESIGN_SUMMARY_COLUMNS", "domain_differences"]

STREAM_FAMILIES = tuple(I.INDICATORS)
"""The indicator families the streamed table computes (all of them)."""

_GINI_OVER = (("gini", "population", "gyp"), ("gini_victims", "victims", "gyv"))
"""The Gini families: over whom, and the prefix of the derived column holding the counts of
the rows they keep (NaN elsewhere)."""


class StreamIndicatorError(SurveyError, ValueError):
    """The survey (or the family asked for) cannot be computed by streaming."""


# ---------------------------------------------------------------------------------------------
# what streams, which columns, how large
# ---------------------------------------------------------------------------------------------
def _spec(spec, spec_path):
    if isinstance(spec, SurveySpec):
        return spec, (Path(spec_path) if spec_path is not None else None)
    return read_spec(spec), Path(spec)


def _design_path(spec: SurveySpec, spec_path) -> Path:
    return G._resolve(spec_path, spec.files[spec.design.file].path)


def _why_not(spec: SurveySpec, spec_path) -> str:
    """Why the spec cannot stream ('' when it can)."""
    d = spec.design
    path = _design_path(spec, spec_path)
    if not (path.suffix.lower() == ".parquet" or path.is_dir()):
        return f"design file {path.name} is not Parquet (streaming reads Parquet row groups)"
    for name, f in spec.files.items():
        if f.unit != "incident" and G._resolve(spec_path, f.path) != path:
            return (f"file '{name}' ({Path(f.path).name}) is not the design file; streaming reads one "
                    "respondent file")
    v = spec.victimization
    if v is not None and v.source == "incidents" and spec.files[v.file].link.to != spec.design.file:
        return (f"the incidents link to file '{spec.files[v.file].link.to}', not to the design file "
                f"'{spec.design.file}' that streams")
    if isinstance(d.strata, list) and len(d.strata) > 1:  # the design crosses them into the strata
        return "design.strata has several columns; streaming takes one stratum column (cross them in the file)"
    stages = max(len(p) if isinstance(p, list) else 1 for p in (d.psu, d.fpc))
    if stages > 1 and _one(d.fpc) is not None and d.replicate is None:
        # without a first-stage fpc the later stages add nothing to the variance (with-replacement
        # sampling of PSUs), so only stage 1 is needed; with it, stage 2 streams (_stage2)
        if not (isinstance(d.psu, list) and len(d.psu) == 2) or (isinstance(d.fpc, list) and len(d.fpc) > 2):
            return ("design.psu has several stages with a first-stage fpc and more than two stages; streaming "
                    "handles two")
        if spec.files[d.file].combine is not None:
            return "design.psu has two stages with a first-stage fpc and the design file combines rows into units"
    if stages > 1 and d.lonely_psu == "certainty":
        return ("design.psu has several stages with lonely_psu: certainty (a lonely PSU's later stages count); "
                "streaming handles several stages with another lonely_psu")
    return ""


def check_streamable(spec, spec_path=None) -> None:
    """Raise :class:`StreamIndicatorError` (one line) if the spec's indicator table cannot stream."""
    spec, spec_path = _spec(spec, spec_path)
    why = _why_not(spec, spec_path)
    if why:
        raise StreamIndicatorError(f"spec '{spec.survey}': cannot stream: {why}")


def _one(part):
    return part[0] if isinstance(part, list) else part


def _stage2(spec: SurveySpec) -> tuple[str, str | None] | None:
    """Two stages with a first-stage fpc (the second stage's variance counts): the SSU column and
    its fpc; else None."""
    d = spec.design
    if d.replicate is None and isinstance(d.psu, list) and len(d.psu) == 2 and _one(d.fpc) is not None:
        return d.psu[1], (d.fpc[1] if isinstance(d.fpc, list) and len(d.fpc) > 1 else None)
    return None


def used_columns(spec: SurveySpec, names: list[str]) -> list[str]:
    """Columns of the design file the derivations and the design read (in file order)."""
    need: set[str] = set()
    for cols in G._needed_columns(spec).values():
        need |= cols
    for dom in spec.domains.values():
        if dom.variable is not None:
            need.add(dom.variable)
    for item in spec.perception:
        need.add(item.variable)
        if item.follow_up is not None:
            need.add(item.follow_up.variable)
    d = spec.design
    need |= set(d.weight_columns())
    if d.replicate is not None:
        parts = d.replicate.columns.values() if isinstance(d.replicate.columns, dict) else [d.replicate.columns]
        for p in parts:
            need |= set(S._match_replicates(names, p, spec.files[d.file].path))
    return [c for c in names if c in need]


def engine_plan(spec, spec_path=None, mode: str | None = None, memory_limit=None,
                chunk_rows: int | None = None) -> S.EnginePlan:
    """In memory or streamed, for this spec: the spec's ``design.engine`` with the given
    overrides (a parameter set's ``engine:``).  Rows and columns come from the Parquet footer
    (nothing is read); other formats are not streamable and ``auto`` keeps them in memory."""
    import pyarrow.parquet as pq

    spec, spec_path = _spec(spec, spec_path)
    e = spec.design.engine
    mode = mode or e.mode
    memory_limit = memory_limit if memory_limit is not None else e.memory_limit
    chunk_rows = int(chunk_rows or e.chunk_rows)
    why = _why_not(spec, spec_path)
    path = _design_path(spec, spec_path)
    rows, ncols = None, 0
    if path.suffix.lower() == ".parquet" or path.is_dir():
        if not path.exists():
            raise StreamIndicatorError(f"{path}: no such file or directory")
        rows = S.parquet_rows(path)
        import pyarrow.dataset as ds

        names = list(pq.read_schema(path).names) if path.is_file() else list(
            ds.dataset(str(path), format="parquet").schema.names)
        ncols = len(used_columns(spec, names))
    try:
        plan = S.choose_engine(rows, ncols, mode, memory_limit, streamable=not why, why_not=why,
                               chunk_rows=chunk_rows)
    except S.EstimationError as err:
        raise StreamIndicatorError(f"spec '{spec.survey}': {err}") from None
    v = spec.victimization
    if plan.mode == "stream" and v is not None and v.source == "incidents":
        import dataclasses

        path = G._resolve(spec_path, spec.files[v.file].path)
        if path.exists():
            what, est = _incident_size(path, G._needed_columns(spec)[v.file])
            over = " (over the limit: the stream will stop)" if plan.limit_bytes and est > plan.limit_bytes else ""
            plan = dataclasses.replace(plan, note=f"incident file {path.name} held in memory: {what}, about "
                                                   f"{S._fmt_bytes(est)}{over}")
    return plan


def _incident_size(path: Path, need) -> tuple[str, int]:
    """An incident file's size in memory: rows x used columns x 8 bytes from a Parquet footer,
    else its size on disk (those formats store about what memory holds)."""
    if path.suffix.lower() == ".parquet" or path.is_dir():
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        rows = S.parquet_rows(path)
        names = pq.read_schema(path).names if path.is_file() else ds.dataset(str(path), format="parquet").schema.names
        k = max(1, len([c for c in names if c in need]))
        return f"{rows} rows x {k} columns", rows * k * S.BYTES_PER_VALUE
    return "its size on disk", path.stat().st_size


# ---------------------------------------------------------------------------------------------
# the per-row derivations, batch by batch
# ---------------------------------------------------------------------------------------------
class _Incidents:
    """An incident file (``victimization.source: incidents``) when the respondent file streams.

    The incident file is read whole (it is usually far smaller than the respondent file: one
    row per victimization), once; what depends on it alone runs once (the exclusion rules and
    crime codes, with their accounting); the incidents kept are indexed by the link key.  Each
    batch of respondents then takes its own incidents (a lookup of its keys) through the rest of
    the in-memory steps (link, non-respondents, series, incident weight over respondent weight,
    reporting, cap and the counts per respondent: :func:`survey.ingest._link_incidents`), so
    the counts are the in-memory counts.  Memory: the incident file's used columns, checked
    against the memory limit before it is read.  Incidents whose key no batch holds are the
    unmatched ones (an error, or an accounting line, after the pass)."""

    def __init__(self, spec: SurveySpec, spec_path, memory_limit=None):
        v = spec.victimization
        f = spec.files[v.file]
        self.spec, self.name = spec, v.file
        self.path = G._resolve(spec_path, f.path)
        if not self.path.exists():
            raise StreamIndicatorError(f"{self.path}: no such file or directory")
        need = G._needed_columns(spec)[v.file]
        self._check_size(need, memory_limit)
        self.acc = G._Accounting()
        inc, _ = G._read(spec, spec_path, v.file, need, self.acc)
        G._check_keys(inc, f.keys, v.file, self.path.name)
        keep, type_of = G._incident_rules(spec, inc, self.path.name, self.acc)
        self.on = list(f.link.on)
        self.inc = inc.loc[keep].reset_index(drop=True)
        self.type_of = type_of[keep].reset_index(drop=True)
        self.bytes = int(self.inc.memory_usage(deep=True).sum())
        codes, uniq = pd.factorize(pd.MultiIndex.from_frame(self.inc[self.on]) if len(self.on) > 1
                                   else self.inc[self.on[0]])
        self.keys = pd.Index(uniq) if len(self.on) == 1 else uniq
        self.order = np.argsort(codes, kind="stable")
        self.start = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniq)))])
        self.seen = np.zeros(len(uniq), dtype=bool)
        self.counted: dict = {}

    def _check_size(self, need, memory_limit):
        limit = S.parse_size(memory_limit) if memory_limit is not None else None
        if limit is None:
            avail = S.available_memory()
            limit = int(avail * S.MEMORY_FRACTION) if avail else None
        if limit is None:
            return
        what, est = _incident_size(self.path, need)
        if est > limit:
            raise StreamIndicatorError(
                f"{self.path.name}: the incident file ({what}, about {S._fmt_bytes(est)}) exceeds the memory limit "
                f"({S._fmt_bytes(limit)}); streaming reads the respondent file in batches but holds the incidents "
                "in memory: raise engine.memory_limit or split the incident file by year")

    def link(self, data: G.SurveyData, acc: G._Accounting) -> None:
        """The counts of one batch of respondents from their incidents (in place)."""
        resp = data.respondents
        idx = pd.MultiIndex.from_frame(resp[self.on]) if len(self.on) > 1 else pd.Index(resp[self.on[0]])
        pos = self.keys.get_indexer(idx)
        pos = np.unique(pos[pos >= 0])
        self.seen[pos] = True
        lo, hi = self.start[pos], self.start[pos + 1]
        rows = np.sort(self.order[np.repeat(lo, hi - lo) + _ranges(hi - lo)])
        sub = self.inc.iloc[rows].reset_index(drop=True)
        try:
            G._link_incidents(data, sub, np.ones(len(sub), dtype=bool),
                              self.type_of.iloc[rows].reset_index(drop=True), self.path.name, acc)
        except pd.errors.MergeError:
            dup = int(resp.duplicated(self.on, keep=False).sum())
            raise StreamIndicatorError(f"{self.path.name}: {dup} respondent rows share a link key "
                                       f"({', '.join(self.on)}) with another row; an incident must link to one "
                                       "respondent") from None
        for t, n in data.incidents["crime_type"].value_counts().items():
            self.counted[t] = self.counted.get(t, 0) + int(n)

    def finish(self) -> list[dict]:
        """After the pass: the incidents no batch held (an error, or an accounting line)."""
        v = self.spec.victimization
        link = self.spec.files[v.file].link
        out = []
        unmatched = int(np.diff(self.start)[~self.seen].sum())
        if unmatched:
            if link.unmatched == "error":
                raise G.IngestError(f"{self.path.name}: {unmatched} incidents match no respondent of file "
                                    f"'{link.to}' on {', '.join(link.on)}")
            out.append({"step": "exclude: unmatched", "file": v.file, "rows": unmatched,
                        "detail": f"incidents matching no respondent on {', '.join(link.on)}"})
        return out

    def counted_detail(self) -> str:
        s = pd.Series(self.counted, dtype="int64").sort_values(ascending=False, kind="stable")
        return ", ".join(f"{t}: {n}" for t, n in s.items())


_SUMMED = re.compile(r"(\d+)(?= respondents capped\)| with unknown count)")


def _merge_detail(a: str, b: str) -> str:
    """Two batches' accounting detail of one line: the counts inside it summed (respondents
    capped per type, series with an unknown count); else the first batch's."""
    na, nb = _SUMMED.findall(a), _SUMMED.findall(b)
    if not na or len(na) != len(nb) or _SUMMED.sub("#", a) != _SUMMED.sub("#", b):
        return a
    it = iter(str(int(x) + int(y)) for x, y in zip(na, nb))
    return _SUMMED.sub(lambda m: next(it), a)


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 for each n of ``lengths``, concatenated."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - starts


class _Derived:
    """Reads the design file in batches and derives the respondent columns of each."""

    def __init__(self, spec: SurveySpec, spec_path, chunk_rows: int, memory_limit=None, combine: bool = True):
        import pyarrow.dataset as ds

        self.spec, self.spec_path, self.chunk_rows = spec, spec_path, int(chunk_rows)
        self.path = _design_path(spec, spec_path)
        if not self.path.exists():
            raise StreamIndicatorError(f"{self.path}: no such file or directory")
        self.dataset = ds.dataset(str(self.path), format="parquet")
        self.names = list(self.dataset.schema.names)
        self.columns = used_columns(spec, self.names)
        self.accounting: dict = {}
        self.rows = 0
        self.batches = 0
        self.combine = spec.files[spec.design.file].combine if combine else None  # False: the rows as they are
        two = _stage2(spec)
        # the rows that must reach the accumulators together: a combined unit's, or an SSU's
        self.unit_key = (list(self.combine.key) if self.combine is not None else
                         [_one(spec.design.psu), two[0]] if two else None)
        self.buckets = 0  # unsorted combine: the temporary files the rows were partitioned into
        self.part = None  # Dask: (file, row group) the only rows read, the first at row ``start0`` of the file
        self.start0 = 0
        self.cap_text = None  # a percentile cap's rule (the batches apply it as the fixed caps it gave)
        v = spec.victimization
        self.incidents = (_Incidents(spec, spec_path, memory_limit if memory_limit is not None
                                     else spec.design.engine.memory_limit)
                          if v is not None and v.source == "incidents" else None)

    def __iter__(self):
        spec = self.spec
        dname = spec.design.file
        dfile = spec.files[dname]
        comb = self.combine
        ukey = self.unit_key
        fname = self.path.name
        start = self.start0
        for batches in self._segments():  # the file; or, unsorted units (combine, SSUs), each bucket
            carry = None  # combine: the rows of the batch's last unit wait for the next batch
            last_key = None
            for resp in _then_none(batches):
                if ukey is not None:
                    if resp is not None:
                        last_key = _check_sorted(resp, ukey, last_key, fname,
                                                 start + (0 if carry is None else len(carry)))
                    parts = [x for x in (carry, resp) if x is not None]
                    if not parts:
                        break
                    resp = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
                    if resp is not None and not resp.empty and parts[-1] is not carry:
                        keys = resp[ukey]
                        tail = (keys == keys.iloc[-1]).all(axis=1).to_numpy()
                        cut = len(resp) - int(np.argmin(tail[::-1])) if not tail.all() else 0
                        resp, carry = resp.iloc[:cut].reset_index(drop=True), resp.iloc[cut:].reset_index(drop=True)
                    else:
                        carry = None
                    if resp.empty:
                        continue
                elif resp is None:
                    break
                n = len(resp)
                acc = G._Accounting()
                try:
                    if dfile.respondents:
                        is_resp = G._eval(resp, dfile.respondents, f"{fname}: respondents")
                    else:
                        is_resp = np.ones(n, dtype=bool)
                    resp["_respondent"] = is_resp
                    data = G.SurveyData(spec=spec, spec_path=self.spec_path, respondents=resp, incidents=None,
                                        accounting=pd.DataFrame(), metadata={}, value_labels={})
                    G._check_design_columns(data, fname, acc)
                    if self.incidents is not None:
                        if self.batches == 0:  # the incident file's own lines, once
                            acc.rows += self.incidents.acc.rows
                        self.incidents.link(data, acc)
                    elif spec.victimization is not None:
                        G._respondent_counts(data, fname, acc)
                    G._perception(data, fname, acc)
                    G._domains(data, {}, self.spec_path, acc)
                    if comb is not None:
                        G._combine_units(data, fname, acc)
                except SurveyError as err:
                    raise type(err)(f"{err} (rows {start + 1}-{start + n} of {fname}, read in batches)") from None
                for r in acc.rows:
                    if r["step"] == "cap" and self.cap_text:
                        fixed = G._cap_text(spec.victimization.cap)
                        if r["detail"].startswith(fixed + ":"):
                            r = {**r, "detail": self.cap_text + r["detail"][len(fixed):]}
                    key = (r["step"], r["file"], "" if r["step"] in ("incidents counted", "combine") else
                           r["detail"].split(":")[0].split(" (")[0])
                    have = self.accounting.get(key)
                    merge = (_merge_combine(have["detail"], r["detail"], list(spec.domains))
                             if have is not None and r["step"] == "combine" else None)
                    self.accounting[key] = dict(r) if have is None else {
                        **have, "rows": have["rows"] + r["rows"],
                        "detail": merge or _merge_detail(have["detail"], r["detail"])}
                if dfile.respondents:
                    self.accounting.setdefault(("respondents", dname, ""), {
                        "step": "respondents", "file": dname, "rows": 0, "detail": "respondent rows (rule "
                        f"'{dfile.respondents}'); the others are kept for design information"})
                    self.accounting[("respondents", dname, "")]["rows"] += int(is_resp.sum())
                self.rows += n
                self.batches += 1
                start += n
                yield data.respondents
        if self.incidents is not None:
            for r in self.incidents.finish():
                self.accounting[(r["step"], r["file"], "")] = r
            for key, r in self.accounting.items():
                if key[0] == "incidents counted":
                    r["detail"] = self.incidents.counted_detail()

    def _segments(self):
        """The batches of the file, as one segment; with ``combine`` on a file not sorted by
        the unit key, one segment per bucket of units (:meth:`_buckets`)."""
        key = self.unit_key
        if self.part is not None:
            import pyarrow.parquet as pq

            f, rg = self.part
            pf = pq.ParquetFile(f, pre_buffer=False)
            yield (b.to_pandas() for b in pf.iter_batches(batch_size=self.chunk_rows, row_groups=[rg],
                                                           columns=self.columns))
            return
        if key is None or _is_sorted(self.dataset, key, self.path.name):
            yield (b.to_pandas() for b in S._batches(self.dataset, self.columns, self.chunk_rows))
            return
        yield from self._buckets(key)

    def _buckets(self, key: list[str]):
        """``combine`` on an unsorted file, in bounded memory: a first pass writes each batch's
        rows to one of K temporary Parquet files by a hash of the unit key (every row of a unit
        in one file), K such that a file holds about :data:`BUCKET_BATCHES` batches; then each
        file is read whole, sorted by the key (stable: a unit's rows keep the file's order), and
        cut into batches.  The temporary directory (under the system's temporary directory,
        ``TMPDIR``) is deleted when the pass ends, or fails."""
        import math
        import tempfile

        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = S.parquet_rows(self.path)
        K = max(2, math.ceil(rows / (BUCKET_BATCHES * self.chunk_rows)))
        self.buckets = K
        with tempfile.TemporaryDirectory(prefix="survey-combine-") as tmp:
            writers: dict = {}
            schema = None
            try:
                for b in S._batches(self.dataset, self.columns, self.chunk_rows):
                    t = pa.Table.from_batches([b])
                    schema = schema or t.schema
                    if not t.schema.equals(schema):  # files of a dataset may differ in types
                        t = t.cast(schema)
                    keys = t.select(key).to_pandas()
                    for c in key:  # hash values, not types (1 and 1.0 are one unit)
                        keys[c] = (keys[c].astype(float) if pd.api.types.is_numeric_dtype(keys[c])
                                   else keys[c].astype(str))
                    h = pd.util.hash_pandas_object(keys, index=False).to_numpy() % np.uint64(K)
                    for k in np.unique(h).tolist():
                        if k not in writers:
                            writers[k] = pq.ParquetWriter(str(Path(tmp) / f"bucket{k}.parquet"), schema)
                        writers[k].write_table(t.filter(pa.array(h == k)))
            finally:
                for w in writers.values():
                    w.close()
            for k in sorted(writers):
                part = pq.read_table(str(Path(tmp) / f"bucket{k}.parquet")).to_pandas()
                part = part.sort_values(key, kind="stable").reset_index(drop=True)
                yield (part.iloc[i:i + self.chunk_rows].reset_index(drop=True)
                       for i in range(0, len(part), self.chunk_rows))
                del part

    def accounting_frame(self) -> pd.DataFrame:
        what = "unit" if self.combine is not None else "second-stage unit"
        how = (f" (the rows of a {what} not consecutive in the file: rows partitioned by the {what} key into "
               f"{self.buckets} temporary files, then each file sorted)" if self.buckets else "")
        head = [{"step": "read", "file": self.spec.design.file, "rows": self.rows,
                 "detail": f"{self.path.name}: {len(self.columns)} columns read in {self.batches} batches of "
                           f"up to {self.chunk_rows} rows (streamed){how}"}]
        return pd.DataFrame(head + list(self.accounting.values()), columns=["step", "file", "rows", "detail"])


BUCKET_BATCHES = 4
"""Unsorted ``combine``: rows per temporary bucket file, in batches (a bucket is read whole)."""


def _is_sorted(dataset, key: list[str], fname: str) -> bool:
    """Whether the file is sorted by ``key`` (the unit's rows consecutive): a pass over the key
    columns only."""
    last = None
    start = 0
    for b in S._batches(dataset, list(key), 1 << 20):
        frame = b.to_pandas()
        try:
            last = _check_sorted(frame, key, last, fname, start)
        except StreamIndicatorError:
            return False
        start += len(frame)
    return True


_COMBINE = re.compile(r"^(\d+) rows combined into (\d+) units on (.*?) \((\d+) with a respondent row, (\d+) with "
                      r"2\+\)(.*?)(?:; domain value changed within the period \(last row's value used\): (.*))?$")


def _merge_combine(a: str, b: str, names: list[str]) -> str | None:
    """Two batches' ``combine`` accounting detail, summed (None if either is not in the form
    :func:`survey.ingest._combine_units` writes)."""
    ma, mb = _COMBINE.match(a), _COMBINE.match(b)
    if not (ma and mb) or ma.group(3) != mb.group(3) or ma.group(6) != mb.group(6):
        return None
    n = [int(ma.group(i)) + int(mb.group(i)) for i in (1, 2, 4, 5)]
    changed: dict = {}
    for m in (ma, mb):
        for part in (m.group(7) or "").split(", "):
            if part:
                name, k = part.rsplit(" ", 1)
                changed[name] = changed.get(name, 0) + int(k)
    order = sorted(changed, key=lambda x: names.index(x) if x in names else len(names))
    return (f"{n[0]} rows combined into {n[1]} units on {ma.group(3)} ({n[2]} with a respondent row, {n[3]} with "
            f"2+){ma.group(6)}" + ("; domain value changed within the period (last row's value used): "
                                   + ", ".join(f"{x} {changed[x]}" for x in order) if changed else ""))


_PROBE_CAP = 1e300  # pass 1 of a percentile cap: "too many to remember" answers get this, then drop out


def _percentile_caps(spec: SurveySpec, spec_path, chunk_rows: int, memory_limit=None, dask: bool = False,
                     scheduler=None) -> SurveySpec:
    """A percentile cap streams in two passes: the first gathers each crime type's weighted
    distribution of the victims' counts (a histogram: counts take few values), the caps are
    read from it as :func:`survey.ingest._cap_value` reads them from the rows, and the second
    pass applies them as fixed caps per type.  Returns the spec for the second pass.  ``dask``:
    the first pass's histograms per row group on Dask, added two by two."""
    from .spec import CapRule

    v = spec.victimization
    probe = spec.model_copy(update={"victimization": v.model_copy(
        update={"cap": CapRule.model_construct(rule="fixed", value=_PROBE_CAP, values=None, by="type")})})
    if dask:
        import dask as _dask

        der = _Derived(probe, spec_path, chunk_rows, memory_limit, combine=False)
        parts = [_dask.delayed(_cap_hist)(probe, v.cap.by, spec_path, chunk_rows, memory_limit, (f, rg))
                 for f, rg, _ in _row_groups(der.dataset)]
        while len(parts) > 1:
            parts = [_dask.delayed(_add_hist)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                     for i in range(0, len(parts), 2)]
        hist = _dask.compute(parts[0], scheduler=scheduler)[0] if parts else {}
    else:
        hist = _cap_hist(probe, v.cap.by, spec_path, chunk_rows, memory_limit)
    caps = {}
    for t in _capped(v):
        h = hist.get("all" if v.cap.by == "all" else t.name)
        if h is None or not len(h):
            caps[t.name] = np.inf
            continue
        h = h.sort_index()
        cw = np.cumsum(h.to_numpy())
        i = np.searchsorted(cw, v.cap.value / 100.0 * cw[-1] * (1 - 1e-12))
        caps[t.name] = float(h.index[min(i, len(h) - 1)])
    return spec.model_copy(update={"victimization": v.model_copy(
        update={"cap": CapRule.model_construct(rule="fixed", value=None, values=caps, by="type")})})


def _capped(v):
    return [t for t in v.types if v.source == "incidents" or t.count is not None]


def _cap_hist(probe: SurveySpec, by: str, spec_path, chunk_rows: int, memory_limit=None, part=None) -> dict:
    """The first pass of a percentile cap (over the file, or one (file, row group) ``part``):
    the weight of each count value of the victims, per type (or over all types: ``by`` all)."""
    v = probe.victimization
    dunit = probe.files[probe.design.file].unit
    hist: dict = {}
    der = _Derived(probe, spec_path, chunk_rows, memory_limit, combine=False)
    der.part = part
    # the rows before any combine (as the in-memory load, which caps before combining)
    for frame in der:
        for t in _capped(v):
            x = frame[f"k__{t.name}"].to_numpy(dtype=float, na_value=np.nan)
            w = frame[probe.design.weight_for(t.unit, dunit)].to_numpy(dtype=float)
            ok = (np.nan_to_num(x) > 0) & (x != _PROBE_CAP)
            hist = _add_hist(hist, {"all" if by == "all" else t.name: pd.Series(w[ok]).groupby(x[ok]).sum()})
    return hist


def _add_hist(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, h in b.items():
        out[k] = h if k not in out else out[k].add(h, fill_value=0.0)
    return out


def _then_none(it):
    yield from it
    yield None


def _check_sorted(frame: pd.DataFrame, key: list[str], last, fname: str, start: int):
    """``combine`` when streaming: the rows of a unit must be consecutive, the file sorted by the
    unit key (checked batch by batch); returns the batch's last key."""
    k = frame[key]
    idx = pd.MultiIndex.from_frame(k) if len(key) > 1 else pd.Index(k[key[0]])
    bad = None
    if not idx.is_monotonic_increasing:
        codes = pd.Series(range(len(idx)))
        ok = np.asarray(idx[1:] >= idx[:-1]) if len(key) == 1 else np.array(
            [a >= b for a, b in zip(idx[1:], idx[:-1])])
        bad = int(codes[1:][~ok].iloc[0])
    elif last is not None and len(idx) and idx[0] < last:
        bad = 0
    if bad is not None:
        raise StreamIndicatorError(
            f"{fname}: combine needs the file sorted by {', '.join(key)} when streaming (the rows of a unit "
            f"consecutive); row {start + bad + 1} breaks the order; sort it, or load it in memory (engine mode: memory)")
    return idx[-1] if len(idx) else last


def _source(spec: SurveySpec, spec_path, chunk_rows: int | None, memory_limit=None) -> tuple[_Derived, str | None]:
    """The design file's derived batches (a percentile cap becomes the fixed caps of a first
    pass) and the respondent filter of the estimates (None: every row is a respondent)."""
    chunk_rows = chunk_rows or spec.design.engine.chunk_rows
    v = spec.victimization
    pct = v is not None and v.cap.rule == "percentile"
    der = _Derived(_percentile_caps(spec, spec_path, chunk_rows, memory_limit) if pct else spec, spec_path,
                   chunk_rows, memory_limit)
    der.cap_text = G._cap_text(v.cap) if pct else None
    dfile = spec.files[spec.design.file]
    return der, ("_respondent == 1" if (dfile.respondents or dfile.combine is not None) else None)


def stream_accounting(spec, spec_path=None, chunk_rows: int | None = None, memory_limit=None) -> pd.DataFrame:
    """The row accounting of :func:`survey.ingest.load`, by one streamed pass (counts summed
    over the batches, and the counts inside a line's detail where it has them; otherwise a
    line's detail is that of its first batch)."""
    spec, spec_path = _spec(spec, spec_path)
    check_streamable(spec, spec_path)
    der, _ = _source(spec, spec_path, chunk_rows, memory_limit)
    for _ in der:
        pass
    return der.accounting_frame()


# ---------------------------------------------------------------------------------------------
# per-cell side sums: cases, bases, domain df
# ---------------------------------------------------------------------------------------------
class _Cells:
    """For one design (unit) and one domain variable: per cell value, sums of derived
    quantities over the rows with a positive weight, and what the cell's df needs."""

    def __init__(self, by: str | None, quantities: list[tuple[str, str]], replicate: list[str] | None):
        self.by = by
        self.q = quantities
        self.sums: pd.DataFrame | None = None
        self.units: set = set()  # Taylor: (value, stratum, psu) with a positive-weight row
        self.units_rows: dict = {}  # Taylor without PSUs: (value, stratum) -> rows
        self._df_cache: dict = {}
        self.rep = replicate
        self.sketch: dict = {}  # replicate: value -> CountSketch of the cell's rows (4R x R)

    def add(self, frame: pd.DataFrame, w: np.ndarray, inside: np.ndarray, strata, psu, row0: int, mat=None):
        key = frame[self.by] if self.by else pd.Series(np.zeros(len(frame)), index=frame.index)
        ok = inside & (w > 0) & key.notna().to_numpy()
        if not ok.any():
            return
        cols = {}
        for op, c in self.q:
            x = frame[c].to_numpy(dtype=float, na_value=np.nan)[ok]
            if op == "pos":
                v = (np.nan_to_num(x) > 0).astype(float)
            elif op == "wpos":
                v = (np.nan_to_num(x) > 0) * w[ok]
            elif op == "sum":
                v = np.nan_to_num(x)
            elif op == "wsum":
                v = np.nan_to_num(x) * w[ok]
            else:  # rep2: sample victimizations of repeat victims
                x = np.nan_to_num(x)
                v = x * (x >= 2)
            cols[(op, c)] = v
        k = key[ok]
        kv = np.asarray(k.astype(object) if isinstance(k.dtype, pd.CategoricalDtype) else k, dtype=object)
        part = pd.DataFrame(cols, index=pd.Index(kv, name="value")).groupby(level=0, sort=False).sum() \
            if cols else pd.DataFrame(index=pd.Index(pd.unique(kv), name="value"))
        self.sums = part if self.sums is None else self.sums.add(part, fill_value=0.0)
        if self.rep is None:
            s = frame[strata].to_numpy()[ok] if strata else np.zeros(int(ok.sum()))
            if psu is None:  # each row its own PSU: rows per (value, stratum)
                for key, cnt in pd.Series(1, index=pd.MultiIndex.from_arrays([kv, s])).groupby(level=[0, 1]).size().items():
                    self.units_rows[key] = self.units_rows.get(key, 0) + int(cnt)
            else:
                p = frame[psu].to_numpy()[ok]
                self.units.update(zip(kv.tolist(), s.tolist(), p.tolist()))
        else:
            import scipy.sparse as sp

            M = mat[ok, 1:] if mat is not None else np.column_stack(
                [frame[c].to_numpy(dtype=float, na_value=np.nan)[ok] for c in self.rep])
            R = M.shape[1]
            ks = 4 * R
            rows = np.flatnonzero(ok).astype(np.uint64) + np.uint64(row0)
            h = S._splitmix(rows + np.uint64(0x5EED) * np.uint64(1 << 40))
            bucket = (h % np.uint64(ks)).astype(np.int64)
            sign = np.where((h >> np.uint64(63)) == 1, 1.0, -1.0)
            codes, uniq = pd.factorize(kv)
            C = sp.csr_matrix((sign, (codes * ks + bucket, np.arange(len(codes)))), shape=(len(uniq) * ks, len(codes)))
            T = np.asarray(C @ M).reshape(len(uniq), ks, R)
            for j, u in enumerate(uniq):
                have = self.sketch.get(u)
                self.sketch[u] = T[j] if have is None else have + T[j]

    def merge(self, o: _Cells) -> None:
        """Add another part's sums (other rows; the sketches hashed by the rows' places in the file)."""
        if o.sums is not None:
            self.sums = o.sums if self.sums is None else self.sums.add(o.sums, fill_value=0.0)
        self.units |= o.units
        for k, n in o.units_rows.items():
            self.units_rows[k] = self.units_rows.get(k, 0) + n
        for k, t in o.sketch.items():
            have = self.sketch.get(k)
            self.sketch[k] = t if have is None else have + t
        self._df_cache = {}

    def value(self, values, op: str, cols: list[str]) -> np.ndarray:
        """Per (value, column) in the order of ``values`` x ``cols`` (flattened)."""
        t = self.sums.reindex([_py(v) for v in values])
        return np.column_stack([t[(op, c)].fillna(0.0).to_numpy() for c in cols]).ravel()

    def df(self, values) -> np.ndarray:
        key = tuple(_py(v) for v in values)
        hit = self._df_cache.get(key)
        if hit is None:
            hit = self._df_cache[key] = self._df(values)
        return hit

    def _df(self, values) -> np.ndarray:
        out = []
        for v in values:
            v = _py(v)
            if self.rep is None and self.units_rows:
                rows = {s: r for (c, s), r in self.units_rows.items() if _py(c) == v}
                out.append(float(sum(rows.values()) - len(rows)))
            elif self.rep is None:
                units = {(s, p) for (c, s, p) in self.units if c == v}
                out.append(float(len(units) - len({s for s, _ in units})))
            else:
                from .design import _rank_of

                sk = self.sketch.get(v)
                out.append(float(_rank_of(sk) - 1) if sk is not None else 0.0)
        return np.asarray(out, dtype=float)


def _py(v):
    return v.item() if hasattr(v, "item") else v


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------
def _stream_design(spec: SurveySpec, unit: str) -> S.StreamDesign:
    d = spec.design
    dunit = spec.files[d.file].unit
    if unit != dunit and not (unit == "household" and dunit == "person" and spec.files[d.file].link is not None):
        raise G.IngestError(f"{unit}-level estimates need a {unit} design file or a person file linked "
                            f"to households; '{d.file}' holds {dunit}s")
    w = d.weight_for(unit, dunit)
    if d.replicate is not None:
        r = d.replicate
        return S.StreamDesign(weights=w, replicate_weights=d.replicate_columns_for(unit), method=r.method,
                              rho=r.rho, scale=r.scale, rscales=r.rscales, mse=r.mse)
    two = _stage2(spec)
    return S.StreamDesign(weights=w, strata=_one(d.strata), psu=_one(d.psu), fpc=_one(d.fpc), nest=d.nest,
                          lonely_psu=d.lonely_psu, ssu=two[0] if two else None, fpc2=two[1] if two else None)


class _Task:
    """One family x crimes x domain: the stream request and how its rows are finished."""

    def __init__(self, unit, family, crimes, kind, num, den, dom, cases, base=None, effective_df=None):
        self.unit, self.family, self.crimes, self.kind = unit, family, crimes, kind
        self.num, self.den, self.dom, self.cases, self.base = num, den, dom, cases, base
        self.effective_df = effective_df
        self.index: list[int] = []  # its columns in the merged estimate


def _plan(spec, names, crimes, families, dom_list, by_victimization, effective_df, taylor):
    """The tasks, in the order of the in-memory table's rows."""
    v = spec.victimization
    dunit = spec.files[spec.design.file].unit
    tasks: list[_Task] = []
    cols = set(names)
    types = {t.name: t for t in v.types} if v else {}

    def unit_of(c):
        return next(iter({types[m].unit for m in v.members(c)}))

    eff = effective_df if taylor else None
    if v is not None and crimes:
        for unit in ("household", "person"):
            cs = [c for c in crimes if unit_of(c) == unit]
            if not cs:
                continue
            counted = [c for c in cs if v.source == "incidents" or all(types[m].count is not None
                                                                         for m in v.members(c))]
            screener = [c for c in cs if c not in counted]
            udoms = [d for d in dom_list if d is None or not spec.domains[d].units or unit in spec.domains[d].units]
            groups = [c for c in counted if c in v.groups]
            victim = [f"victim__{c}" for c in counted]
            n = [f"n__{c}" for c in counted]
            vic = []
            if counted:
                rv = [f"rv__{c}" for c in counted]
                vrep = [f"vrep__{c}" for c in counted]
                ratios = []
                if "concentration" in families:
                    ratios.append(("concentration", n, victim, victim, eff))
                if "repeat_victims" in families:
                    ratios.append(("repeat_victims", rv, victim, rv, None))
                if "repeat_incidents" in families:
                    ratios.append(("repeat_incidents", [f"ri__{c}" for c in counted], n, rv, None))
                rep = [f"rep__{c}" for c in counted]
                if v.source == "incidents" and set(rep) <= cols:  # over victimizations: incidents only
                    for fam in ("reporting_rate", "dark_figure"):
                        if fam in families:
                            ratios.append((fam, rep, n, vrep, None))
                if set(vrep) <= cols and "reporting_rate_victims" in families:
                    ratios.append(("reporting_rate_victims", vrep, victim, vrep, None))
                for dom in udoms:
                    if "prevalence" in families:
                        vic.append(_Task(unit, "prevalence", counted, "mean", victim, None, dom, ("pos", victim)))
                    if "incidence" in families:
                        vic.append(_Task(unit, "incidence", counted, "mean", n, None, dom, ("pos", victim),
                                         effective_df=eff))
                    for fam, num, den, case, e in ratios:
                        base = (fam, counted) if fam in I.OVER_VICTIMIZATIONS else None
                        vic.append(_Task(unit, fam, counted, "ratio", num, den, dom, ("pos", case),
                                         base=base, effective_df=e))
            multiple = []
            mgroups = groups + [c for c in screener if c in v.groups and f"mv__{c}" in cols]
            if "multiple_victimization" in families:
                for gset in (groups, [c for c in mgroups if c not in groups]):
                    if not gset:
                        continue
                    for dom in udoms:
                        multiple.append(_Task(unit, "multiple_victimization", gset, "ratio",
                                              [f"mv__{g}" for g in gset], [f"victim__{g}" for g in gset], dom,
                                              ("pos", [f"mv__{g}" for g in gset])))
            tasks += vic
            for family, prefix, cr in (("victimizations", "n", counted), ("victims", "victim", counted + screener)):
                if family not in families or not cr:
                    continue
                for dom in udoms:
                    case = ("sum", [f"k__{c}" for c in cr]) if family == "victimizations" else \
                        ("pos", [f"victim__{c}" for c in cr])
                    tasks.append(_Task(unit, family, cr, "total", [f"{prefix}__{c}" for c in cr], None, dom, case))
            for c in screener:
                for dom in udoms:
                    if "prevalence" in families:
                        tasks.append(_Task(unit, "prevalence", [c], "mean", [f"victim__{c}"], None, dom,
                                           ("pos", [f"victim__{c}"])))
                    if f"vrep__{c}" in cols and "reporting_rate_victims" in families:
                        tasks.append(_Task(unit, "reporting_rate_victims", [c], "ratio", [f"vrep__{c}"],
                                           [f"victim__{c}"], dom, ("pos", [f"vrep__{c}"])))
            tasks += multiple
            for fam, _, prefix in _GINI_OVER:  # as the in-memory table: family, domain, crime type
                if fam in families:
                    for dom in udoms:
                        for c in counted:
                            tasks.append(_Task(unit, fam, [c], "gini", [f"{prefix}__{c}"], None, dom,
                                               ("pos", [f"{prefix}__{c}"])))
    items = [i for i in spec.perception if i.indicator in families]
    status_doms = []
    if by_victimization and v is not None and items and crimes:
        status = [c for c in crimes if c in v.groups] or [c for c in crimes if c in types]
        status_doms = [f"victim__{c}" for c in status]
    by_ind: dict[str, list] = {}
    for item in items:
        by_ind.setdefault(item.indicator, []).append(item)
    for pdoms in (list(dom_list), status_doms):  # as the in-memory table: by domain, then by victim status
        for ind, its in by_ind.items():
            pc = [f"perc__{i.name}" for i in its]
            for dom in pdoms:
                tasks.append(_Task(dunit, ind, [i.name for i in its], "mean", pc, None, dom, ("pos", pc)))
    return tasks


def _quantities(task: _Task) -> list[tuple[str, str]]:
    q = [(task.cases[0], c) for c in task.cases[1]]
    if task.kind == "gini":  # the kept rows (n) and their weight (weighted_n)
        q += [("pos", _kept(task.num[0])), ("wpos", _kept(task.num[0]))]
    if task.kind == "ratio":
        q += [("pos", c) for c in task.den] + [("wpos", c) for c in task.den]
    if task.base is not None:
        cr = task.base[1]
        q += [("sum", f"k__{c}") for c in cr] + [("wsum", f"n__{c}") for c in cr]
        q += ([("rep2", f"k__{c}") for c in cr] if task.base[0] == "repeat_incidents"
              else [("sum", f"krep__{c}") for c in cr])  # reported victimizations (incidents)
    return q


def _family_rows(family, est: pd.DataFrame, crimes, dom, n_cases, unit, cell_df):
    """As :func:`survey.indicators._family_rows`, with the domains' df given (``cell_df``)."""
    from .estimate import proportion_ci

    ind = I.INDICATORS[family]
    out = est.copy()
    if ind.measure == "%":
        if dom:
            out["df"] = cell_df
        p = out["estimate"].to_numpy(dtype=float)
        lo, hi = proportion_ci(p, out["se"].to_numpy(dtype=float), 0.95, out["df"].to_numpy(dtype=float), "logit")
        out["ci_low"], out["ci_high"] = lo, hi
    elif family in ("incidence", "concentration", "victimizations", "victims"):
        if "df_effective" in out:
            dfe = out["df_effective"].to_numpy(dtype=float)
            out["df"] = np.where(np.isfinite(dfe), np.minimum(out["df"].to_numpy(dtype=float), np.maximum(dfe, 1.0)),
                                 out["df"].to_numpy(dtype=float))
        out["ci_low"], out["ci_high"] = I._log_ci(out["estimate"].to_numpy(dtype=float),
                                                  out["se"].to_numpy(dtype=float), out["df"].to_numpy(dtype=float),
                                                  1.0 if family == "concentration" else 0.0)
    elif family in ("gini", "gini_victims"):
        out["ci_low"], out["ci_high"] = I._gini_ci(out["estimate"].to_numpy(dtype=float),
                                                   out["se"].to_numpy(dtype=float), out["df"].to_numpy(dtype=float))
    return I._label_rows(out, family, ind, crimes, n_cases, unit, dom)


class _Order:
    """The in-memory order of a domain's cells: the categories' order (labels, bands, recodes;
    crossed domains by their parts), else by value (as the stream)."""

    def __init__(self, spec: SurveySpec, first: pd.DataFrame):
        self.spec = spec
        self.cats = {}
        for name, d in spec.domains.items():
            if d.cross is None and (d.labels or d.bands is not None or d.recode is not None) and name in first:
                self.cats[name] = {str(c): i for i, c in enumerate(first[name].cat.categories)}

    def _rank(self, name, value):
        if name in self.cats:
            return (0, self.cats[name].get(str(value), 1 << 30), "")
        try:
            return (0, float(value), "")
        except (TypeError, ValueError):
            return (1, 0, str(value))

    def sort(self, res: pd.DataFrame, dom: str | None, k: int) -> pd.DataFrame:
        if not dom or len(res) <= k:
            return res
        d = self.spec.domains.get(dom)
        values = res[dom].to_numpy()[::k]
        if d is not None and d.cross is not None:
            keys = [tuple(self._rank(p, x) for p, x in zip(d.cross, str(v).split(G.CROSS))) for v in values]
        elif dom in self.cats:
            keys = [self._rank(dom, v) for v in values]
        else:
            return res
        order = sorted(range(len(values)), key=lambda i: keys[i])
        idx = np.concatenate([np.arange(i * k, (i + 1) * k) for i in order])
        out = res.iloc[idx].reset_index(drop=True)
        out.attrs = res.attrs
        return out


def indicator_table(spec, spec_path=None, crime_types=None, domains=None, indicators=None, publication=None,
                    by_victimization: bool = True, effective_df: str | None = None, chunk_rows: int | None = None,
                    memory_limit=None, dask: bool = False, scheduler=None, **publication_params) -> pd.DataFrame:
    """The indicator table (:data:`survey.indicators.TABLE_COLUMNS`) of ``spec`` by streaming its
    design file (Parquet) in batches of ``chunk_rows`` (default the spec's
    ``design.engine.chunk_rows``).  Arguments as :func:`survey.indicators.indicator_table`;
    ``indicators`` default: :data:`STREAM_FAMILIES`.  ``memory_limit`` (default the spec's
    ``design.engine.memory_limit``, else a share of the available memory) bounds what is held
    whole: an incident file larger than it is an error.

    ``dask=True``: the same sums on Dask (:func:`_dask_sums`): each row group of the design file
    is derived and accumulated on a worker, the partial sums are merged by a tree reduction;
    ``scheduler`` as ``dask.compute`` (None: the default, e.g. a ``distributed.Client`` in use).
    Respondent-file surveys without ``combine`` or a second stage's variance
    (:func:`check_dask`); a percentile cap's first pass runs on Dask too."""
    t0 = time.perf_counter()
    spec, spec_path = _spec(spec, spec_path)
    check_streamable(spec, spec_path)
    if dask:
        check_dask(spec)
    effective_df = effective_df or spec.publication.effective_df
    if effective_df not in ("satterthwaite", "heavy_tailed"):
        raise I.IndicatorError(f"effective_df must be 'satterthwaite' or 'heavy_tailed', not '{effective_df}'")
    v = spec.victimization
    meta = G.SurveyData(spec=spec, spec_path=spec_path, respondents=pd.DataFrame(), incidents=None,
                        accounting=pd.DataFrame())
    all_crimes = (meta.crime_types + meta.crime_groups) if v else []
    crimes = list(crime_types) if crime_types is not None else all_crimes
    bad = [c for c in crimes if c not in all_crimes]
    if bad:
        raise I.IndicatorError(f"unknown crime type(s) or group(s): {', '.join(bad)} (known: {', '.join(all_crimes)})")
    doms = list(domains) if domains is not None else list(spec.domains)
    bad = [d for d in doms if d not in spec.domains]
    if bad:
        raise I.IndicatorError(f"unknown domain(s): {', '.join(bad)} (known: {', '.join(spec.domains)})")
    families = list(indicators) if indicators is not None else list(STREAM_FAMILIES)
    unknown = [f for f in families if f not in I.INDICATORS]
    if unknown:
        raise I.IndicatorError(f"unknown indicator(s): {', '.join(unknown)} (known: {', '.join(I.INDICATORS)})")
    for c in crimes:
        meta.unit_of(c)  # a group mixing household and person types: one line
    chunk_rows = chunk_rows or spec.design.engine.chunk_rows
    dspec = spec  # the derivations' spec: a percentile cap becomes the fixed caps of a first pass
    if v is not None and v.cap.rule == "percentile":
        dspec = _percentile_caps(spec, spec_path, chunk_rows, memory_limit, dask, scheduler)
    # (on Dask the client derives only a few rows, to plan the table; the workers read every row)
    der = _Derived(dspec, spec_path, min(chunk_rows, _PLAN_ROWS) if dask else chunk_rows, memory_limit)
    der.cap_text = G._cap_text(v.cap) if dspec is not spec else None
    frames = iter(der)
    first = next(frames, None)
    if first is None:
        raise StreamIndicatorError(f"{der.path.name} has no rows")
    der.chunk_rows = int(chunk_rows)
    taylor = spec.design.replicate is None
    tasks = _plan(spec, list(first.columns), crimes, families, [None] + doms, by_victimization, effective_df, taylor)
    gcols = list(dict.fromkeys(t.num[0] for t in tasks if t.kind == "gini"))
    _gini_columns(first, gcols)
    names = list(first.columns)
    if not tasks:
        raise I.IndicatorError("no indicator could be computed for this selection")
    dfile = spec.files[spec.design.file]
    where = "_respondent == 1" if (dfile.respondents or dfile.combine is not None) else None
    if dfile.combine is not None:  # the reference period is the combined unit's
        meta.rows = pd.DataFrame()
    units = list(dict.fromkeys(t.unit for t in tasks))
    designs = {u: _stream_design(spec, u) for u in units}
    # one estimate per (unit, kind, domain) for all the families' columns (fewer passes over the
    # weights; the same numbers: each column keeps its own validity and cells)
    merged: dict = {}
    for t in tasks:
        if t.kind == "gini":
            continue
        pairs = merged.setdefault((t.unit, t.kind, t.dom), {"pairs": [], "eff": None})
        for p in zip(t.num, t.den or [None] * len(t.num)):
            if p not in pairs["pairs"]:
                pairs["pairs"].append(p)
        t.index = [pairs["pairs"].index(p) for p in zip(t.num, t.den or [None] * len(t.num))]
        pairs["eff"] = pairs["eff"] or t.effective_df
    keys = {u: [k for k in merged if k[0] == u] for u in units}
    # a Gini: the weighted distribution of the counts per cell (a proportion job of the kept
    # counts, with its variance and replicate totals), see _gini_rows
    gkeys = {u: list(dict.fromkeys((u, "gini", t.dom, t.num[0]) for t in tasks if t.unit == u and t.kind == "gini"))
             for u in units}
    kept = {(u, c): _KeptDf() for u in units for (_, _, _, c) in gkeys[u]}
    jobs, opts, cells = {}, {}, {}
    for u in units:
        reqs = []
        for key in keys[u]:
            m = merged[key]
            q = {"kind": key[1], "variables": [a for a, _ in m["pairs"]], "by": key[2], "where": where}
            if key[1] == "ratio":
                q["denominator"] = [b for _, b in m["pairs"]]
            if m["eff"]:
                q["effective_df"] = m["eff"]
            reqs.append(q)
        for key in gkeys[u]:
            reqs.append({"kind": "proportion", "variables": [key[3]], "by": key[2], "where": where, "na_rm": True})
        jobs[u], opts[u] = S._jobs(names, der.path.name, reqs, designs[u])
        ts = [t for t in tasks if t.unit == u]
        rep = list(jobs[u][0].replicate_columns) or None
        for t in ts:
            c = cells.setdefault((u, t.dom), _Cells(t.dom, [], rep))
            c.q = list(dict.fromkeys(c.q + _quantities(t)))
    order = _Order(spec, first)
    sums = _Sums(units, designs, jobs, cells, kept, where, gcols, der.chunk_rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        if dask:
            sums = _dask_sums(dspec, spec_path, der, sums, scheduler)
            for m in sorted(sums.notes):  # the workers' warnings, as the table's notes
                warnings.warn(m, SurveyWarning, stacklevel=2)
            der.accounting, der.rows, der.batches = sums.accounting, sums.rows, sums.batches
        else:
            row0 = 0
            for i, frame in enumerate(_chain(first, frames)):
                sums.add(frame, i, row0)
                row0 += len(frame)
                del frame
        accs, cells, kept = sums.accs, sums.cells, sums.kept
        results = {}
        for u in units:
            for key, job, acc, o in zip(keys[u] + gkeys[u], jobs[u], accs[u], opts[u]):
                res = S._finish(acc, job, 0.95, None, *o)
                if key[1] == "gini":
                    results[key] = res
                    continue
                results[key] = order.sort(res, key[2], len(merged[key]["pairs"]))
        rows = []
        for t in tasks:
            if t.kind == "gini":
                col = t.num[0]
                res = _gini_rows(results[(t.unit, "gini", t.dom, col)], t.dom, kept[(t.unit, col)], taylor)
                res = order.sort(res, t.dom, 1)
                rows.append(_rows(t, res, cells[(t.unit, t.dom)], 1))
                continue
            res = results[(t.unit, t.kind, t.dom)]
            K = len(merged[(t.unit, t.kind, t.dom)]["pairs"])
            sel = (np.arange(len(res) // K)[:, None] * K + np.asarray(t.index)[None, :]).ravel()
            part = res.iloc[sel].reset_index(drop=True)
            if not t.effective_df and "df_effective" in part:
                part = part.drop(columns="df_effective")
            rows.append(_rows(t, part, cells[(t.unit, t.dom)], len(t.num)))
    table = I._finish(meta, rows, crimes, spec, publication, publication_params, t0,
                      sorted({str(w.message) for w in caught}))
    table.attrs["engine"] = (f"stream: {der.rows} rows in {der.batches} batches of up to {der.chunk_rows} rows "
                             f"from {der.path.name}" + (f" on Dask ({sums.partitions} partitions: the row groups)"
                                                        if dask else ""))
    table.attrs["accounting"] = der.accounting_frame().to_dict(orient="records")  # JSON-able (to_parquet)
    return table


class _Sums:
    """Everything the table accumulates over the rows: the estimates' accumulators
    (:class:`survey.stream._Acc`), the cells' side sums (:class:`_Cells`), the Ginis' df
    (:class:`_KeptDf`); on Dask also a partition's accounting, rows, batches and warnings.
    :meth:`merge` adds another part's (the rows of the two parts disjoint)."""

    def __init__(self, units, designs, jobs, cells, kept, where, gcols, chunk_rows):
        self.units, self.designs, self.jobs, self.where, self.gcols = units, designs, jobs, where, gcols
        self.chunk_rows = chunk_rows
        self.accs = {u: [None] * len(jobs[u]) for u in units}
        self.cells = cells
        self.kept = kept
        self.buffers: dict = {}
        self.accounting: dict = {}
        self.rows = self.batches = 0
        self.partitions = 1
        self.notes: set = set()

    def empty(self) -> _Sums:
        return _Sums(self.units, self.designs, self.jobs, {k: _Cells(c.by, list(c.q), c.rep) for k, c in
                                                           self.cells.items()},
                     {k: _KeptDf() for k in self.kept}, self.where, self.gcols, self.chunk_rows)

    def add(self, frame: pd.DataFrame, batch_id: int, row0: int) -> None:
        """One batch of derived rows, the first at row ``row0`` of the design file."""
        _gini_columns(frame, self.gcols)
        inside = (frame["_respondent"].to_numpy(dtype=bool) if self.where else np.ones(len(frame), dtype=bool))
        for u in self.units:
            d = self.designs[u]
            shared: dict = {}
            R1 = len(self.jobs[u][0].replicate_columns) + 1
            buf = self.buffers.get(u)
            if R1 > 1 and (buf is None or buf.size < len(frame) * R1):
                buf = self.buffers[u] = np.empty(max(self.chunk_rows, len(frame)) * R1)
            for j, job in enumerate(self.jobs[u]):
                part = S._batch(frame, job, batch_id, None, buf, shared)
                self.accs[u][j] = part if self.accs[u][j] is None else self.accs[u][j].merge(part)
            w = np.nan_to_num(frame[d.weights].to_numpy(dtype=float, na_value=np.nan))
            for (uu, _), c in self.cells.items():
                if uu == u:
                    c.add(frame, w, inside, d.strata, d.psu, row0, shared.get("mat"))
            for (uu, col), k in self.kept.items():
                if uu == u:
                    k.add(frame, col, w, inside, d.strata, d.psu)

    def merge(self, o: _Sums) -> _Sums:
        for u in self.units:
            self.accs[u] = [b if a is None else a if b is None else a.merge(b)
                            for a, b in zip(self.accs[u], o.accs[u])]
        for k, c in self.cells.items():
            c.merge(o.cells[k])
        for k, c in self.kept.items():
            c.merge(o.kept[k])
        _merge_accounting(self.accounting, o.accounting)
        self.rows += o.rows
        self.batches += o.batches
        self.partitions += o.partitions
        self.notes |= o.notes
        self.buffers = {}
        return self


def _merge_accounting(a: dict, b: dict) -> None:
    """Two parts' accounting lines (:attr:`_Derived.accounting`), in place in ``a``: as the
    batches of one pass are merged (rows summed, the counts inside a detail summed)."""
    for key, r in b.items():
        have = a.get(key)
        a[key] = dict(r) if have is None else {**have, "rows": have["rows"] + r["rows"],
                                               "detail": _merge_detail(have["detail"], r["detail"])}


_PLAN_ROWS = 1000
"""On Dask: the rows the client derives to plan the table (the derived columns, the domains'
categories)."""


def check_dask(spec) -> None:
    """Raise :class:`StreamIndicatorError` (one line) if the spec's indicator table cannot be
    computed on Dask: what needs rows of several row groups together (an incident file, the
    units of ``combine``, the SSUs of a second stage's variance) does not run there (it streams
    on one machine).  A percentile cap's first pass runs there too."""
    v = spec.victimization
    d = spec.design
    why = ("victimization.source is incidents (an incident file)" if v is not None and v.source == "incidents"
           else f"file '{d.file}' has combine (a unit's rows may span row groups)"
           if spec.files[d.file].combine is not None
           else "design.psu has two stages with a first-stage fpc (an SSU's rows may span row groups)"
           if _stage2(spec) else "")
    if why:
        raise StreamIndicatorError(f"spec '{spec.survey}': the indicator table does not run on Dask: {why}; "
                                   "stream it on one machine (without dask)")


def _row_groups(dataset) -> list[tuple[str, int, int]]:
    """(file, row group, its first row in the design file) of each row group, from the footers."""
    import pyarrow.parquet as pq

    out, row0 = [], 0
    for f in dataset.files:
        meta = pq.ParquetFile(f).metadata
        for rg in range(meta.num_row_groups):
            out.append((f, rg, row0))
            row0 += meta.row_group(rg).num_rows
    return out


def _dask_part(dspec, spec_path, chunk_rows, cap_text, f, rg, row0, pid, tmpl: _Sums) -> _Sums:
    """On a worker: the sums of one row group (read in batches of ``chunk_rows``), its
    accounting and warnings.  Batch ids ``pid << 12 | j`` keep the replicate sketches' hashes
    distinct across partitions; the cells' sketches hash the rows' places in the file (row0)."""
    der = _Derived(dspec, spec_path, chunk_rows)
    der.part, der.start0, der.cap_text = (f, rg), row0, cap_text
    sums = tmpl.empty()
    sums.partitions = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        r = row0
        for j, frame in enumerate(der):
            sums.add(frame, (pid << 12) + j, r)
            r += len(frame)
            del frame
    sums.notes = {str(w.message) for w in caught}
    sums.accounting, sums.rows, sums.batches = der.accounting, der.rows, der.batches
    sums.buffers = {}
    return sums


def _dask_merge(a: _Sums, b: _Sums) -> _Sums:
    return a.merge(b)


def _dask_sums(dspec, spec_path, der: _Derived, tmpl: _Sums, scheduler) -> _Sums:
    """The table's sums on Dask: one task per row group of the design file (derivations and
    accumulators on the worker, only the sums travel), merged by a tree reduction."""
    import dask

    parts = [dask.delayed(_dask_part)(dspec, spec_path, der.chunk_rows, der.cap_text, f, rg, row0, i, tmpl)
             for i, (f, rg, row0) in enumerate(_row_groups(der.dataset))]
    if not parts:
        raise StreamIndicatorError(f"{der.path.name} has no rows")
    while len(parts) > 1:
        parts = [dask.delayed(_dask_merge)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    (out,) = dask.compute(parts[0], scheduler=scheduler)
    return out


def _kept(col: str) -> str:
    """The 0/1 column of the rows a Gini keeps (``gyp__burglary`` -> ``gkp__burglary``)."""
    return "gk" + col[2:]


def _gini_columns(frame: pd.DataFrame, cols: list[str]) -> None:
    """The counts each Gini keeps (NaN elsewhere), in place: over the population the rows whose
    count is known (as :func:`survey.lorenz.gini`), over victims those with a victimization."""
    for col in cols:
        crime = col.split("__", 1)[1]
        y = frame[f"k__{crime}"].to_numpy(dtype=float, na_value=np.nan)
        if col.startswith("gyv"):
            victim = frame[f"victim__{crime}"].to_numpy(dtype=float, na_value=np.nan)
            y = np.where(victim > 0, y, np.nan)
        frame[col] = y
        frame[_kept(col)] = (~np.isnan(y)).astype(float)


class _KeptDf:
    """The df of a Gini on a Taylor design: that of the subset design of its kept rows (PSUs
    minus strata among the kept rows of the domain with a positive weight; rows minus strata
    without PSUs), or the design's when every row is kept (as the in-memory table)."""

    def __init__(self):
        self.dropped = 0  # rows not kept, over every row of the design
        self.units: set = set()
        self.rows: dict = {}

    def add(self, frame: pd.DataFrame, col: str, w: np.ndarray, inside: np.ndarray, strata, psu):
        keep = frame[_kept(col)].to_numpy(dtype=float) > 0
        self.dropped += int((~keep).sum())
        ok = keep & inside & (w > 0)
        s = frame[strata].to_numpy()[ok] if strata else np.zeros(int(ok.sum()))
        if psu is None:
            for key, cnt in pd.Series(s).value_counts(sort=False).items():
                self.rows[key] = self.rows.get(key, 0) + int(cnt)
        else:
            self.units.update(zip(s.tolist(), frame[psu].to_numpy()[ok].tolist()))

    def merge(self, o: _KeptDf) -> None:
        self.dropped += o.dropped
        self.units |= o.units
        for k, n in o.rows.items():
            self.rows[k] = self.rows.get(k, 0) + n

    def df(self, design_df: float) -> float:
        if not self.dropped:
            return float(design_df)
        if self.rows or not self.units:
            return float(sum(self.rows.values()) - len(self.rows))
        return float(len(self.units) - len({s for s, _ in self.units}))


def _gini_rows(res: pd.DataFrame, dom: str | None, kept: _KeptDf, taylor: bool) -> pd.DataFrame:
    """The Gini of a count in each cell from the proportion estimate of its values.

    The counts are non-negative integers (capped), so a cell's weighted distribution of them
    is a short histogram, the weighted totals of the job (per replicate too), and the Gini
    computed from it (:func:`survey.domain_batch._gini_cells`, ties grouped as
    :mod:`survey.lorenz`) is the Gini of the rows.  Replicate designs recompute it on every
    replicate's histogram.  Taylor designs: the linearized value ``u`` of a row depends only
    on its cell and value, so the Gini's scores ``w u`` are ``N_g sum_v u_v`` times the
    proportions' scores ``w (1{y = v} - p_v) / N_g`` (up to ``sum_v p_v u_v = 0``), and the
    variance is ``N_g^2 u' V u`` with ``V`` the proportions' covariance in the cell: the
    variance the in-memory engine computes from the rows' scores.
    Columns: <dom>, estimate, se, ci_low, ci_high, df, n, weighted_n, cv, deff, variable."""
    from .domain_batch import _gini_cells
    from .variance import replicate_vcov

    levels = res["level"].to_numpy()
    K = len(pd.unique(levels))
    G = len(res) // K
    vals = np.asarray(levels[:K], dtype=float)
    order = np.argsort(vals, kind="stable")
    vals = vals[order]
    num = res.attrs["totals"][0]
    H = num.reshape(G, K, -1)[:, order, :]
    cr, vi = np.repeat(np.arange(G), K), np.tile(np.arange(K), G)

    def gini_of(h):
        g, u, _, N = _gini_cells(G, K, vals, cr, vi, h.ravel(), vals[vi])
        return g, u.reshape(G, K), N

    est, u, N = gini_of(H[:, :, 0])
    if taylor:
        V = np.asarray(res.attrs["vcov"])
        var = np.empty(G)
        for g in range(G):
            idx = g * K + order
            var[g] = N[g] ** 2 * (u[g] @ V[np.ix_(idx, idx)] @ u[g])
        df = kept.df(float(res["df"].iloc[0]))
    else:
        reps = np.column_stack([gini_of(H[:, :, r])[0] for r in range(1, H.shape[2])])
        scale, rscales, mse = res.attrs["replicate_scale"]
        var = np.diag(replicate_vcov(est, reps, scale, rscales, mse))
        df = float(res["df"].iloc[0])
    se = np.sqrt(np.clip(var, 0, None))
    out = res.iloc[::K][[dom]].reset_index(drop=True) if dom else pd.DataFrame(index=range(1))
    out["estimate"], out["se"] = est, se
    out["ci_low"] = out["ci_high"] = np.nan
    out["df"] = df
    with np.errstate(invalid="ignore", divide="ignore"):
        out["cv"] = se / np.abs(est)
    out["deff"] = np.nan
    out["variable"] = str(res["variable"].iloc[0]).split("__", 1)[1]
    present = res["n"].to_numpy()[::K] > 0  # cells with kept rows (as the in-memory table)
    out = out[present].reset_index(drop=True)
    return out


def _chain(first, rest):
    yield first
    yield from rest


def _rows(t: _Task, res: pd.DataFrame, cells: _Cells, k: int) -> pd.DataFrame:
    values = res[t.dom].to_numpy()[::k] if t.dom else np.zeros(1)
    if t.kind == "ratio":
        res["n"] = np.rint(cells.value(values, "pos", t.den)).astype(np.int64)
        res["weighted_n"] = cells.value(values, "wpos", t.den)
    elif t.kind == "gini":
        res["n"] = np.rint(cells.value(values, "pos", [_kept(t.num[0])])).astype(np.int64)
        res["weighted_n"] = cells.value(values, "wpos", [_kept(t.num[0])])
    n_cases = cells.value(values, t.cases[0], t.cases[1])
    if t.cases[0] == "sum":
        n_cases = np.rint(n_cases)
    n_cases = n_cases.astype(np.int64) if t.cases[0] == "pos" else n_cases
    cell_df = cells.df(values) if t.dom else None
    if cell_df is not None:
        cell_df = np.repeat(cell_df, k)
    out = _family_rows(t.family, res, t.crimes, t.dom, n_cases, t.unit, cell_df)
    if t.base is not None:  # victimizations as the base (as indicators._victimization_bases)
        cr = t.base[1]
        n = cells.value(values, "sum", [f"k__{c}" for c in cr])
        out["n"] = np.rint(n).astype(np.int64)
        out["weighted_base"] = cells.value(values, "wsum", [f"n__{c}" for c in cr])
        if t.base[0] == "repeat_incidents":
            num = cells.value(values, "rep2", [f"k__{c}" for c in cr])
        else:
            num = cells.value(values, "sum", [f"krep__{c}" for c in cr])
            num = n - num if t.base[0] == "dark_figure" else num
        out["n_cases"] = np.rint(num).astype(np.int64)
    return out


# ---------------------------------------------------------------------------------------------
# Lorenz curves
# ---------------------------------------------------------------------------------------------
def lorenz_curves(spec, spec_path=None, crimes=None, overs=("population", "victims"), points: int = 101,
                  chunk_rows: int | None = None, memory_limit=None) -> pd.DataFrame:
    """The Lorenz curves of :func:`survey.lorenz.lorenz` (overall, columns
    :data:`survey.lorenz.LORENZ_COLUMNS`) of each crime of ``crimes`` over each of ``overs``,
    from one streamed pass over the design file.

    The counts are non-negative numbers with many ties, and within a run of tied values the
    in-memory curve is a straight line (each row adds its weight to the population share and
    its weight times the same count to the victimization share).  The curve is therefore the
    line through the points of the weighted histogram of the counts, accumulated per value
    over the batches (the rows kept as :func:`survey.lorenz.lorenz` keeps them: a known count,
    over victims a victimization, a positive weight); memory: the batch and one weight per
    distinct count."""
    from .lorenz import LORENZ_COLUMNS

    spec, spec_path = _spec(spec, spec_path)  # (the curves come over by over, crime by crime)
    check_streamable(spec, spec_path)
    if spec.victimization is None:
        raise I.IndicatorError(f"spec '{spec.survey}' has no victimization section: no Lorenz curve")
    meta = G.SurveyData(spec=spec, spec_path=spec_path, respondents=pd.DataFrame(), incidents=None,
                        accounting=pd.DataFrame())
    known = meta.crime_types + meta.crime_groups
    crimes = list(crimes) if crimes is not None else known
    bad = [c for c in crimes if c not in known]
    if bad:
        raise I.IndicatorError(f"unknown crime type(s) or group(s): {', '.join(bad)} (known: {', '.join(known)})")
    if any(o not in ("population", "victims") for o in overs):
        raise ValueError("over must be 'population' or 'victims'")
    prefix = {o: p for _, o, p in _GINI_OVER}
    curves = [(c, o, f"{prefix[o]}__{c}", _stream_design(spec, meta.unit_of(c)).weights) for o in overs for c in crimes]
    cols = list(dict.fromkeys(col for _, _, col, _ in curves))
    der, where = _source(spec, spec_path, chunk_rows, memory_limit)
    respondents_only = where is not None
    hist: list[pd.Series] = [pd.Series(dtype=float) for _ in curves]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SurveyWarning)  # (the table's pass reports them)
        for frame in der:
            _gini_columns(frame, cols)
            inside = (frame["_respondent"].to_numpy(dtype=bool) if respondents_only
                      else np.ones(len(frame), dtype=bool))
            for i, (_, _, col, wcol) in enumerate(curves):
                y = frame[col].to_numpy(dtype=float, na_value=np.nan)
                w = frame[wcol].to_numpy(dtype=float, na_value=np.nan)
                ok = inside & ~np.isnan(y) & (np.nan_to_num(w) > 0)
                part = pd.Series(w[ok]).groupby(y[ok]).sum()
                hist[i] = part if hist[i].empty else hist[i].add(part, fill_value=0.0)
    grid = np.linspace(0, 1, points)
    parts = []
    for (crime, over, _, _), h in zip(curves, hist):
        h = h.sort_index()
        vals, wg = h.index.to_numpy(dtype=float), h.to_numpy(dtype=float)
        p = np.concatenate([[0.0], np.cumsum(wg) / wg.sum()]) if len(wg) else np.zeros(1)
        total = float(np.sum(wg * vals))
        lz = np.concatenate([[0.0], np.cumsum(wg * vals) / total]) if total > 0 else np.zeros(len(p))
        parts.append(pd.DataFrame({"crime_type": crime, "over": over, "domain": "overall", "domain_value": "all",
                                   "population_share": grid, "victimization_share": np.interp(grid, p, lz)}))
    return pd.concat(parts, ignore_index=True)[LORENZ_COLUMNS]


# ---------------------------------------------------------------------------------------------
# the design summary and the domains' distributions (the ingest report)
# ---------------------------------------------------------------------------------------------
DESIGN_SUMMARY_COLUMNS = ["unit", "kind", "rows", "strata", "psus", "df", "replicates", "method", "respondents",
                          "weighted_total"]
"""Columns of :func:`design_summary`'s first table (one row per unit): the design's rows (every
row of the design file, non-respondents too), strata, PSUs (each row its own without a PSU
column) and df (PSUs minus strata among the respondents with a positive weight; Taylor
designs), replicate weights and their method (replicate designs), rows with a positive weight
and their sum."""


class _DesignCount:
    """One unit's design counts, batch by batch (the strata and PSU ids seen: one entry per PSU)."""

    def __init__(self, d: S.StreamDesign):
        self.d = d
        self.rows = self.positive = 0
        self.total = 0.0
        self.strata: set = set()
        self.units: set = set()
        self.kept_units: set = set()
        self.kept_rows: dict = {}
        self.all_inside = True

    def add(self, frame: pd.DataFrame, inside: np.ndarray) -> None:
        d = self.d
        w = np.nan_to_num(frame[d.weights].to_numpy(dtype=float, na_value=np.nan))
        self.rows += len(frame)
        self.positive += int((w > 0).sum())
        self.total += float(w.sum())
        self.all_inside &= bool(inside.all())
        if d.replicate_weights is not None:
            return
        s = frame[d.strata].to_numpy() if d.strata else np.zeros(len(frame), dtype=np.int64)
        kept = inside & (w > 0)
        self.strata.update(pd.unique(s).tolist())
        if d.psu is None:
            for key, cnt in pd.Series(s[kept]).value_counts(sort=False).items():
                self.kept_rows[key] = self.kept_rows.get(key, 0) + int(cnt)
            return
        p = frame[d.psu].to_numpy()
        self.units.update(zip(s.tolist(), p.tolist()))
        self.kept_units.update(zip(s[kept].tolist(), p[kept].tolist()))

    def row(self, unit: str, spec: SurveySpec, replicates: int) -> dict:
        d = self.d
        out = {"unit": unit, "rows": self.rows, "respondents": self.positive, "weighted_total": self.total,
               "strata": np.nan, "psus": np.nan, "df": np.nan, "replicates": np.nan, "method": ""}
        if d.replicate_weights is not None:
            out.update(kind="replicate", replicates=replicates, method=spec.design.replicate.method)
            return out
        psus = self.rows if d.psu is None else len(self.units)
        if self.all_inside:
            df = psus - len(self.strata)
        elif d.psu is None:
            df = sum(self.kept_rows.values()) - len(self.kept_rows)
        else:
            df = len(self.kept_units) - len({s for s, _ in self.kept_units})
        out.update(kind="taylor", strata=len(self.strata) if self.rows else 0, psus=psus, df=float(df))
        return out


def design_summary(spec, spec_path=None, units=None, domains=(), chunk_rows: int | None = None,
                   memory_limit=None) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The design of each unit of ``units`` (:data:`DESIGN_SUMMARY_COLUMNS`, as the in-memory
    :meth:`survey.ingest.SurveyData.design` reports it) and the weighted distribution of each
    domain of ``domains`` ((domain, unit) pairs: the proportion of each of its values among the
    respondents, as ``design(unit).proportion(domain)``; a column ``domain`` added), from one
    streamed pass over the design file.  Memory: the batch, one entry per PSU, the
    proportions' accumulators."""
    spec, spec_path = _spec(spec, spec_path)
    check_streamable(spec, spec_path)
    units = list(units) if units else [spec.files[spec.design.file].unit]
    domains = [tuple(p) for p in domains]
    bad = [d for d, _ in domains if d not in spec.domains]
    if bad:
        raise I.IndicatorError(f"unknown domain(s): {', '.join(bad)} (known: {', '.join(spec.domains)})")
    der, where = _source(spec, spec_path, chunk_rows, memory_limit)
    designs = {u: _stream_design(spec, u) for u in dict.fromkeys(units + [u for _, u in domains])}
    counts = {u: _DesignCount(designs[u]) for u in units}
    jobs, opts, accs = {}, {}, {}
    order = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SurveyWarning)  # (the table's pass reports them)
        buffers: dict = {}
        for i, frame in enumerate(der):
            if order is None:
                order = _Order(spec, frame)
                for u in designs:
                    reqs = [{"kind": "proportion", "variables": [d], "where": where, "na_rm": True}
                            for d, uu in domains if uu == u]
                    if reqs:
                        jobs[u], opts[u] = S._jobs(list(frame.columns), der.path.name, reqs, designs[u])
                        accs[u] = [None] * len(reqs)
            inside = frame["_respondent"].to_numpy(dtype=bool) if where else np.ones(len(frame), dtype=bool)
            for c in counts.values():
                c.add(frame, inside)
            for u, js in jobs.items():
                R1 = len(js[0].replicate_columns) + 1
                buf = buffers.get(u)
                if R1 > 1 and (buf is None or buf.size < len(frame) * R1):
                    buf = buffers[u] = np.empty(max(der.chunk_rows, len(frame)) * R1)
                shared: dict = {}
                for j, job in enumerate(js):
                    part = S._batch(frame, job, i, None, buf, shared)
                    accs[u][j] = part if accs[u][j] is None else accs[u][j].merge(part)
            del frame
    if order is None:
        raise StreamIndicatorError(f"{der.path.name} has no rows")
    nrep = {u: len(S._match_replicates(list(der.names), spec.design.replicate_columns_for(u), der.path.name))
            if spec.design.replicate is not None else 0 for u in units}
    summary = pd.DataFrame([counts[u].row(u, spec, nrep[u]) for u in units], columns=DESIGN_SUMMARY_COLUMNS)
    results: dict = {}
    for u, js in jobs.items():
        names = [d for d, uu in domains if uu == u]
        for name, job, acc, o in zip(names, js, accs[u], opts[u]):
            res = S._finish(acc, job, 0.95, None, *o)
            res[name] = res["level"]
            res = order.sort(res, name, 1).drop(columns=name)
            res.insert(0, "domain", name)
            results[(name, u)] = res
    return summary, [results[p] for p in domains]


# ---------------------------------------------------------------------------------------------
# differences between two categories of a domain
# ---------------------------------------------------------------------------------------------
def domain_differences(spec, spec_path=None, comparisons=(), level: float = 0.95, chunk_rows: int | None = None,
                       memory_limit=None) -> pd.DataFrame:
    """:func:`survey.indicators.domain_difference` of each of ``comparisons`` ((indicator, crime,
    domain, a, b) tuples), from one streamed pass over the design file: one row each
    (:data:`survey.indicators.COMPARISON_COLUMNS`).

    The difference of two cells needs their covariance: the streamed estimate by the domain
    keeps it (:mod:`survey.stream`: on Taylor designs from the PSU totals of both cells'
    linearized variables, on replicate designs from both cells' replicate estimates), so the
    difference, its SE and t test equal the in-memory ones.  Two sampling stages with a
    first-stage fpc give no covariance between cells (NaN SE)."""
    spec, spec_path = _spec(spec, spec_path)
    check_streamable(spec, spec_path)
    comparisons = [tuple(c) for c in comparisons]
    if not comparisons:
        return pd.DataFrame(columns=I.COMPARISON_COLUMNS)
    meta = G.SurveyData(spec=spec, spec_path=spec_path, respondents=pd.DataFrame(), incidents=None,
                        accounting=pd.DataFrame())
    bad = [d for _, _, d, _, _ in comparisons if d not in spec.domains]
    if bad:
        raise I.IndicatorError(f"unknown domain(s): {', '.join(bad)} (known: {', '.join(spec.domains)})")
    dunit = spec.files[spec.design.file].unit
    jobs_of: dict = {}  # (indicator, crime, domain) -> (unit, request)
    for ind, crime, dom, _, _ in comparisons:
        num, den = I.estimate_columns(ind, crime)
        unit = dunit if num.startswith("perc__") else meta.unit_of(crime)
        q = {"kind": "mean" if den is None else "ratio", "variables": [num], "by": dom}
        if den is not None:
            q["denominator"] = [den]
        jobs_of[(ind, crime, dom)] = (unit, q)
    der, where = _source(spec, spec_path, chunk_rows, memory_limit)
    units = list(dict.fromkeys(u for u, _ in jobs_of.values()))
    designs = {u: _stream_design(spec, u) for u in units}
    keys = {u: [k for k, (uu, _) in jobs_of.items() if uu == u] for u in units}
    jobs, opts, accs = {}, {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SurveyWarning)  # (the table's pass reports them)
        buffers: dict = {}
        for i, frame in enumerate(der):
            if not jobs:
                for u in units:
                    reqs = [dict(jobs_of[k][1], where=where) for k in keys[u]]
                    jobs[u], opts[u] = S._jobs(list(frame.columns), der.path.name, reqs, designs[u])
                    accs[u] = [None] * len(reqs)
            for u in units:
                R1 = len(jobs[u][0].replicate_columns) + 1
                buf = buffers.get(u)
                if R1 > 1 and (buf is None or buf.size < len(frame) * R1):
                    buf = buffers[u] = np.empty(max(der.chunk_rows, len(frame)) * R1)
                shared: dict = {}
                for j, job in enumerate(jobs[u]):
                    part = S._batch(frame, job, i, None, buf, shared)
                    accs[u][j] = part if accs[u][j] is None else accs[u][j].merge(part)
            del frame
    if not jobs:
        raise StreamIndicatorError(f"{der.path.name} has no rows")
    results = {}
    for u in units:
        for k, job, acc, o in zip(keys[u], jobs[u], accs[u], opts[u]):
            # (the categories in the stream's order, with their covariance: found by label)
            results[k] = I.on_indicator_scale(S._finish(acc, job, level, None, *o), k[0])
    return pd.concat([I.difference_row(results[(ind, crime, dom)], ind, crime, dom, a, b, level)
                      for ind, crime, dom, a, b in comparisons], ignore_index=True)
