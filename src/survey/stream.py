"""Estimation beyond memory: totals, means, ratios and proportions by domain from Parquet files
read in row batches (or from Dask partitions), by accumulating sufficient statistics.

No step holds more than one batch of rows.  What is kept between batches is small and does not
grow with the number of rows:

* Taylor designs (strata, one stage of PSUs, optional stage-1 fpc): per (PSU, cell, column) the
  weighted sums ``sum w y`` and ``sum w x`` (``x`` = 1 for means and proportions).  The
  linearization scores of a ratio ``R = Y / X`` are ``w (y - R x) / X``, linear in ``y`` and
  ``x``, so their PSU totals follow exactly from those sums once ``R`` and ``X`` are known:
  ``(Y_p - R X_p) / X``.  The variance is then the in-memory engine's own stratified kernel
  (``survey.variance.taylor_vcov``) on the PSU totals, with the same lonely-PSU policies.
* Replicate designs: per (cell, column) the totals of ``y`` and ``x`` under the full-sample
  weight and every replicate weight (the replicate estimates follow), and a CountSketch of the
  replicate weights for their rank (the df), with signs and buckets hashed from each row's
  batch and position, so that batches can be read in any order or in parallel.
* Per (cell, column): rows, missing rows, weighted n, and for the design effect's SRS variance
  the residual sum of squares, merged across batches with the parallel (Chan et al.) update so
  that no large sums cancel.

Batches are merged by the values of the ``by`` variables, strata and PSU ids, never by codes,
so that partial results from separate processes (the Dask path) merge the same way.  Results
have the columns of :mod:`survey.estimate` and equal the in-memory estimators on the same data
to rounding (the sums are added in another order): tested at 1e-12 relative.

API::

    from survey import stream
    stream.estimate("big.parquet", "mean", "income", weights="w", strata="h", psu="psu", by="region")
    stream.estimate(path, "ratio", "crimes", denominator="persons", weights="w",
                    replicate_weights=r"^repw\\d+$", method="Fay", rho=0.5, by=["region", "sex"])
    stream.estimate(path, "proportion", "victim", ..., ci_method="logit", where="age >= 16")
    stream.estimate_dask(path_or_dask_dataframe, "mean", "income", ..., scheduler=None)

Taylor designs without a PSU column (each row its own PSU) keep, per (stratum, cell), the sums
above and the second moments ``sum w^2 y y'``, ``sum w^2 y x'``, ``sum w^2 x x'`` (K x K): a
row's score touches only its own cell, so its stratum's sum of squared scores follows.

Two stages (``ssu=``, ``fpc2=``; they count when stage 1 has an fpc): per (PSU, cell) the
products of each SSU's weighted totals ``sum_j Y_j Y_j'``, ``Y_j X_j'``, ``X_j X_j'``, from batches
that hold each SSU whole (:func:`estimate_frames` only; ``survey.stream_indicators`` cuts the
batches so); the covariances between cells of that part are NaN.

Not supported here (use the in-memory designs): more than two stages, calibration, quantiles,
``df="domain"``; without PSUs, ``lonely_psu="average"`` and the heavy-tailed effective df.
``by`` levels are ordered by value (categorical columns: by value too, not by their category
order).

Engine choice: :func:`choose_engine` (``auto`` | ``memory`` | ``stream``) from the rows and used
columns of a Parquet footer (:func:`parquet_rows`) against a memory limit (:func:`parse_size`,
default a share of :func:`available_memory`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import (
    DesignError,
    DomainError,
    EstimationError,
    ReplicateWeightError,
    SurveyWarning,
    WeightError,
    column_not_found,
)

__all__ = ["StreamDesign", "estimate", "estimate_many", "estimate_dask", "KINDS", "ENGINE_MODES", "parse_size",
           "available_memory", "EnginePlan", "choose_engine", "parquet_rows"]

KINDS = ("total", "mean", "ratio", "proportion")
DEFAULT_BATCH_ROWS = 65_536


# ---------------------------------------------------------------------------------------------
# in memory or streamed: the choice
# ---------------------------------------------------------------------------------------------
ENGINE_MODES = ("auto", "memory", "stream")
MEMORY_FRACTION = 0.5
"""Without a ``memory_limit``, ``auto`` streams when the estimated in-memory size exceeds this
share of the memory available (MemAvailable of /proc/meminfo, else free pages from sysconf)."""
BYTES_PER_VALUE = 8
_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40, "k": 10 ** 3, "m": 10 ** 6,
          "g": 10 ** 9, "t": 10 ** 12}


def parse_size(value, what: str = "memory_limit") -> int:
    """Bytes from ``4GB``, ``512 MiB``, ``1.5G`` or a number of bytes (a ValueError otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a size such as 4GB or 512MB, not {value!r}")
    if isinstance(value, (int, float)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{what} must be a positive size, not {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a size such as 4GB or 512MB, not {value!r}")
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", value)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"{what} must be a size such as 4GB or 512MB, not {value!r}")
    out = int(float(m.group(1)) * _UNITS[unit])
    if out <= 0:
        raise ValueError(f"{what} must be a positive size, not {value!r}")
    return out


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: MemAvailable (Linux), else the free
    physical pages (``os.sysconf``); None when neither is known."""
    import os

    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _fmt_bytes(b: float | None) -> str:
    if b is None:
        return "unknown"
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.3g} {unit}"
    return f"{int(b)} B"


def parquet_rows(path) -> int:
    """Rows of a Parquet file (or a directory of them) from the footers only."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    path = Path(path)
    files = [path] if path.is_file() else [Path(f) for f in ds.dataset(str(path), format="parquet").files]
    return int(sum(pq.ParquetFile(f).metadata.num_rows for f in files))


@dataclass(frozen=True)
class EnginePlan:
    """What ``auto`` chose and why (``survey validate`` prints :meth:`line`)."""

    mode: str  # memory | stream
    reason: str
    rows: int | None
    columns: int
    estimated_bytes: int | None
    available_bytes: int | None
    limit_bytes: int | None
    chunk_rows: int = 0
    note: str = ""  # what else the stream holds (an incident file)

    def line(self) -> str:
        return (f"engine: {self.mode} ({self.reason}); rows {self.rows if self.rows is not None else 'unknown'}, "
                f"used columns {self.columns}, estimated in memory {_fmt_bytes(self.estimated_bytes)} "
                f"(rows x columns x {BYTES_PER_VALUE} bytes), available memory {_fmt_bytes(self.available_bytes)}, "
                f"limit {_fmt_bytes(self.limit_bytes)}" + (f"; {self.note}" if self.note else ""))


def choose_engine(rows: int | None, columns: int, mode: str = "auto", memory_limit=None, *,
                  streamable: bool = True, why_not: str = "", chunk_rows: int = DEFAULT_BATCH_ROWS,
                  available: int | None = -1) -> EnginePlan:
    """In memory or streamed.  ``auto``: stream when ``rows x columns x 8`` bytes exceed the
    ``memory_limit`` (bytes or ``"4GB"``; default :data:`MEMORY_FRACTION` of the available
    memory).  ``streamable`` False (e.g. the file is not Parquet: ``why_not`` says why) keeps
    ``auto`` in memory; ``stream`` then is an error."""
    if mode not in ENGINE_MODES:
        raise ValueError(f"engine mode must be one of {', '.join(ENGINE_MODES)}, not {mode!r}")
    avail = available_memory() if available == -1 else available
    limit = parse_size(memory_limit) if memory_limit is not None else (
        int(avail * MEMORY_FRACTION) if avail else None)
    est = rows * columns * BYTES_PER_VALUE if rows is not None else None
    plan = dict(rows=rows, columns=columns, estimated_bytes=est, available_bytes=avail, limit_bytes=limit,
                chunk_rows=int(chunk_rows))
    if mode == "stream":
        if not streamable:
            raise EstimationError(f"engine mode 'stream' is not possible: {why_not}")
        return EnginePlan("stream", "mode: stream", **plan)
    if mode == "memory":
        return EnginePlan("memory", "mode: memory", **plan)
    if not streamable:
        return EnginePlan("memory", f"auto; cannot stream: {why_not}", **plan)
    if est is None or limit is None:
        return EnginePlan("memory", "auto; size or memory unknown", **plan)
    src = "memory_limit" if memory_limit is not None else f"{MEMORY_FRACTION:.0%} of available memory"
    if est > limit:
        return EnginePlan("stream", f"auto: {_fmt_bytes(est)} exceeds the {src}", **plan)
    return EnginePlan("memory", f"auto: {_fmt_bytes(est)} fits in the {src}", **plan)


# ---------------------------------------------------------------------------------------------
# the design, as column names
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamDesign:
    """The design of a file too large for memory, as column names and options.

    Taylor: ``weights``, ``strata`` (optional), ``psu``, ``fpc`` (stage 1: population count of
    PSUs in the stratum, or the sampling fraction), ``nest``, ``lonely_psu``.  Replicate:
    ``weights``, ``replicate_weights`` (a list of columns or a regular expression matched on the
    file's header), ``method``, ``rho``, ``scale``, ``rscales``, ``mse``, ``combined_weights``,
    ``df``; the same meanings and defaults as :class:`survey.ReplicateDesign`.
    """

    weights: str
    strata: str | None = None
    psu: str | None = None
    fpc: str | None = None
    nest: bool = False
    lonely_psu: str = "fail"
    replicate_weights: object = None
    method: str = "other"
    rho: float | None = None
    scale: float | None = None
    rscales: object = None
    mse: bool = False
    combined_weights: bool = True
    df: float | None = None
    ssu: str | None = None  # Taylor, two stages: the second-stage units (each SSU's rows in one batch)
    fpc2: str | None = None  # their fpc per PSU (count of SSUs in the PSU, or the fraction)
    # (the second stage counts only with a first-stage fpc; estimate_frames only: see _stage2_vcov)

    @property
    def replicate(self) -> bool:
        return self.replicate_weights is not None


def _match_replicates(names: list[str], spec, source: str) -> list[str]:
    if isinstance(spec, str):
        if spec in names:
            return [spec]
        try:
            pat = re.compile(spec)
        except re.error as e:
            raise ReplicateWeightError(f"replicate_weights pattern '{spec}' is not a valid regex: {e}") from e
        cols = [c for c in names if pat.search(c)]
        if not cols:
            raise ReplicateWeightError(
                f"replicate_weights pattern '{spec}' matches none of the {len(names)} columns of {source}")
        return cols
    cols = list(spec)
    for c in cols:
        if c not in names:
            raise column_not_found(c, names, "replicate weight", source)
    return cols


@dataclass(frozen=True)
class _Job:
    """What one estimate reads and how (resolved against the file's header)."""

    kind: str
    variables: tuple  # analysis columns (proportion: one)
    denominators: tuple  # ratio: paired with variables
    by: tuple
    where: str | None
    design: StreamDesign
    replicate_columns: tuple
    source: str

    @property
    def columns(self) -> list[str]:
        d = self.design
        cols = [d.weights, *self.variables, *self.denominators, *self.by]
        cols += [c for c in (d.strata, d.psu, d.fpc, d.ssu, d.fpc2) if c]
        cols += list(self.replicate_columns)
        if self.where:
            from .expr import parse

            cols += sorted(parse(self.where).names)
        return list(dict.fromkeys(cols))


# ---------------------------------------------------------------------------------------------
# value dictionaries (merge by value)
# ---------------------------------------------------------------------------------------------
def _py(v):
    return v.item() if hasattr(v, "item") else v


class _Levels:
    """A growing list of distinct values with their ids."""

    __slots__ = ("values", "index")

    def __init__(self):
        self.values: list = []
        self.index: dict = {}

    def ids(self, values) -> np.ndarray:
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            v = _py(v)
            j = self.index.get(v)
            if j is None:
                j = self.index[v] = len(self.values)
                self.values.append(v)
            out[i] = j
        return out

    def __len__(self):
        return len(self.values)

    def order(self) -> np.ndarray:
        """Rank (0..) of every id when the values are sorted (as ``pd.factorize(sort=True)``)."""
        if not self.values:
            return np.zeros(0, dtype=np.int64)
        perm = np.asarray(pd.Index(self.values, dtype=object).argsort(), dtype=np.int64) if _mixed(self.values) \
            else np.argsort(pd.Index(self.values).to_numpy(), kind="stable")
        rank = np.empty(len(perm), dtype=np.int64)
        rank[perm] = np.arange(len(perm))
        return rank


def _mixed(values) -> bool:
    return len({type(v) for v in values}) > 1


def _local_codes(s: pd.Series, levels: _Levels) -> np.ndarray:
    """Global ids (in ``levels``) of a batch's values; -1 for missing."""
    code, uniq = pd.factorize(s, use_na_sentinel=True)
    if len(uniq) == 0:
        return code.astype(np.int64)
    glob = levels.ids(list(uniq))
    out = np.where(code >= 0, glob[np.maximum(code, 0)], -1)
    return out.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# the accumulator
# ---------------------------------------------------------------------------------------------
def _grow(a: np.ndarray, shape: tuple) -> np.ndarray:
    if a.shape == shape:
        return a
    out = np.zeros(shape, dtype=a.dtype)
    out[tuple(slice(0, s) for s in a.shape)] = a
    return out


@dataclass
class _Acc:
    """Sufficient statistics of one estimate over the rows seen so far (see the module doc).

    Axes: P PSUs (Taylor), G cells, K columns (variables, or levels of a proportion), R1 = 1 +
    replicates.  Cells, PSUs and levels are ids in the value dictionaries below.
    """

    nb: int
    K: int
    R1: int
    taylor: bool
    by_levels: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)  # tuple of by-level ids -> cell id
    cell_keys: list = field(default_factory=list)
    strata: _Levels = field(default_factory=_Levels)
    psus: _Levels = field(default_factory=_Levels)
    units: dict = field(default_factory=dict)  # (stratum id, psu id) -> PSU id
    unit_keys: list = field(default_factory=list)
    levels: _Levels = field(default_factory=_Levels)  # proportion levels
    n_rows: int = 0
    n_by_missing: int = 0
    bad: dict = field(default_factory=dict)  # (what, column) -> rows
    fpc_lo: dict = field(default_factory=dict)  # stratum id -> min fpc
    fpc_hi: dict = field(default_factory=dict)
    sketch: np.ndarray | None = None
    rows_psu: bool = False  # Taylor without PSUs: each row its own PSU (units are the strata)
    proportion: bool = False  # K: the levels seen so far (see _on_levels)
    stage2: bool = False  # two stages: per PSU the second moments of its SSUs' totals (see _stage2_vcov)

    def __post_init__(self):
        self.by_levels = [_Levels() for _ in range(self.nb)]
        z = np.zeros
        self.A = z((0, 0, self.K))  # Taylor: sum w y per (PSU, cell, column)
        self.B = z((0, 0, self.K))  # sum w x
        self.unit_pos = z(0)  # PSU: domain rows with a positive weight (subset df)
        self.TN = z((0, self.K, self.R1))  # replicate totals of y
        self.TD = z((0, self.K, self.R1))  # of x
        for name in ("n", "miss", "sw", "sx", "sy", "ss", "cr", "qq"):
            setattr(self, name, z((0, self.K)))
        self.rows_pos = z(0)  # per cell: rows with a positive weight (Korn-Graubard's n)
        # rows as PSUs: per (stratum, cell) the second moments sum w^2 y y', w^2 y x', w^2 x x'
        # (K x K), and the rows per stratum (its sample size)
        self.Qyy = z((0, 0, self.K, self.K))
        self.Qyx = z((0, 0, self.K, self.K))
        self.Qxx = z((0, 0, self.K, self.K))
        self.nrow = z(0)
        # two stages: per (PSU, cell) sum over its SSUs of Y Y', Y X', X X' (the SSUs' weighted
        # totals, K x K), the SSUs per PSU and the second-stage fpc's range per PSU
        self.Q2yy = z((0, 0, self.K, self.K))
        self.Q2yx = z((0, 0, self.K, self.K))
        self.Q2xx = z((0, 0, self.K, self.K))
        self.n2 = z(0)
        self.fpc2_lo: dict = {}
        self.fpc2_hi: dict = {}

    # ----- sizes ------------------------------------------------------------------------------
    @property
    def G(self) -> int:
        return len(self.cell_keys)

    @property
    def P(self) -> int:
        return len(self.unit_keys)

    def _resize(self, G: int, P: int, K: int):
        self.K = K
        if self.taylor:
            self.A = _grow(self.A, (P, G, K))
            self.B = _grow(self.B, (P, G, K))
            self.unit_pos = _grow(self.unit_pos, (P,))
            if self.rows_psu:
                for name in ("Qyy", "Qyx", "Qxx"):
                    setattr(self, name, _grow(getattr(self, name), (P, G, K, K)))
                self.nrow = _grow(self.nrow, (P,))
            if self.stage2:
                for name in ("Q2yy", "Q2yx", "Q2xx"):
                    setattr(self, name, _grow(getattr(self, name), (P, G, K, K)))
                self.n2 = _grow(self.n2, (P,))
        else:
            self.TN = _grow(self.TN, (G, K, self.R1))
            self.TD = _grow(self.TD, (G, K, self.R1))
        for name in ("n", "miss", "sw", "sx", "sy", "ss", "cr", "qq"):
            setattr(self, name, _grow(getattr(self, name), (G, K)))
        self.rows_pos = _grow(self.rows_pos, (G,))

    def cell_ids(self, combos: np.ndarray) -> np.ndarray:
        out = np.empty(len(combos), dtype=np.int64)
        for i, c in enumerate(map(tuple, combos.tolist())):
            j = self.cells.get(c)
            if j is None:
                j = self.cells[c] = len(self.cell_keys)
                self.cell_keys.append(c)
            out[i] = j
        return out

    def unit_ids(self, pairs: np.ndarray) -> np.ndarray:
        out = np.empty(len(pairs), dtype=np.int64)
        for i, c in enumerate(map(tuple, pairs.tolist())):
            j = self.units.get(c)
            if j is None:
                j = self.units[c] = len(self.unit_keys)
                self.unit_keys.append(c)
            out[i] = j
        return out

    # ----- the residual sums of squares (parallel update) -------------------------------------
    def _add_summary(self, gi, ki, n, miss, sw, sx, sy, ss, cr, qq):
        """Add another part's per-(cell, column) summary at (gi, ki); ``ss`` and ``cr`` are its
        sums of ``w e^2`` and ``w x e`` with ``e = y - r x``, ``r = sy / sx`` (0 if sx = 0)."""
        ix = np.ix_(gi, ki)
        a_sx, a_sy, a_ss, a_cr, a_qq = (self.sx[ix], self.sy[ix], self.ss[ix], self.cr[ix], self.qq[ix])
        with np.errstate(invalid="ignore", divide="ignore"):
            r1 = np.where(a_sx != 0, a_sy / np.where(a_sx != 0, a_sx, 1), 0.0)
            r2 = np.where(sx != 0, sy / np.where(sx != 0, sx, 1), 0.0)
            tx, ty = a_sx + sx, a_sy + sy
            r = np.where(tx != 0, ty / np.where(tx != 0, tx, 1), 0.0)
        d1, d2 = r1 - r, r2 - r
        self.ss[ix] = a_ss + 2 * d1 * a_cr + d1 * d1 * a_qq + ss + 2 * d2 * cr + d2 * d2 * qq
        self.cr[ix] = a_cr + d1 * a_qq + cr + d2 * qq
        self.qq[ix] = a_qq + qq
        self.sx[ix], self.sy[ix] = tx, ty
        self.n[ix] += n
        self.miss[ix] += miss
        self.sw[ix] += sw

    # ----- merging another accumulator (Dask partitions, or batches) -------------------------
    def merge(self, o: _Acc) -> _Acc:
        bmaps = [mine.ids(theirs.values) for mine, theirs in zip(self.by_levels, o.by_levels)]
        gi = self.cell_ids(np.array([[bmaps[b][c[b]] for b in range(self.nb)] for c in o.cell_keys],
                                    dtype=np.int64).reshape(len(o.cell_keys), self.nb))
        smap = self.strata.ids(o.strata.values)
        pmap = self.psus.ids(o.psus.values)
        ui = self.unit_ids(np.array([[smap[s], pmap[p]] for s, p in o.unit_keys], dtype=np.int64).reshape(-1, 2))
        ki = self.levels.ids(o.levels.values) if o.levels.values or self.levels.values else np.arange(o.K)
        K = max(self.K, int(ki.max()) + 1 if ki.size else 0)
        if self.proportion:  # both on every level: a level one side has not seen still has its denominators
            _on_levels(self, np.arange(self.K), K)
            _on_levels(o, ki, K)
            ki = np.arange(K)
        self._resize(self.G, self.P, K)
        if self.taylor:
            ix = np.ix_(ui, gi, ki)
            self.A[ix] += o.A
            self.B[ix] += o.B
            self.unit_pos[ui] += o.unit_pos
            if self.rows_psu:
                ix4 = np.ix_(ui, gi, ki, ki)
                self.Qyy[ix4] += o.Qyy
                self.Qyx[ix4] += o.Qyx
                self.Qxx[ix4] += o.Qxx
                self.nrow[ui] += o.nrow
            if self.stage2:
                ix4 = np.ix_(ui, gi, ki, ki)
                self.Q2yy[ix4] += o.Q2yy
                self.Q2yx[ix4] += o.Q2yx
                self.Q2xx[ix4] += o.Q2xx
                self.n2[ui] += o.n2
                for u, v in o.fpc2_lo.items():
                    u2 = int(ui[u])
                    self.fpc2_lo[u2] = min(self.fpc2_lo.get(u2, np.inf), v)
                    self.fpc2_hi[u2] = max(self.fpc2_hi.get(u2, -np.inf), o.fpc2_hi[u])
        else:
            self.TN[np.ix_(gi, ki)] += o.TN
            self.TD[np.ix_(gi, ki)] += o.TD
        self._add_summary(gi, ki, o.n, o.miss, o.sw, o.sx, o.sy, o.ss, o.cr, o.qq)
        self.rows_pos[gi] += o.rows_pos
        self.n_rows += o.n_rows
        self.n_by_missing += o.n_by_missing
        for k, v in o.bad.items():
            self.bad[k] = self.bad.get(k, 0) + v
        for s, v in o.fpc_lo.items():
            s2 = int(smap[s])
            self.fpc_lo[s2] = min(self.fpc_lo.get(s2, np.inf), v)
            self.fpc_hi[s2] = max(self.fpc_hi.get(s2, -np.inf), o.fpc_hi[s])
        if o.sketch is not None:
            self.sketch = o.sketch.copy() if self.sketch is None else self.sketch + o.sketch
        return self


def _on_levels(acc: _Acc, ki: np.ndarray, K: int) -> None:
    """A proportion's accumulator on ``K`` levels, its own at ``ki``, in place.  Its sums of
    the level indicators (``A``, ``TN``, ``sy``, ``ss``, ``cr``, ``Qyy``) are 0 on the other
    levels, but the sums of the rows with a level (the denominators ``B``, ``TD``, ``sx``, ``sw``,
    ``qq``, ``Qxx``, the rows ``n`` and ``miss``, and ``Qyx`` along ``x``) are the same on every
    level: copied, or a level first seen in a later batch would miss the earlier batches' rows
    in its denominator."""
    if acc.K == K and np.array_equal(ki, np.arange(K)):
        return
    has = acc.K > 0

    def same(a, axis):
        shape = list(a.shape)
        shape[axis] = K
        if not has:
            return np.zeros(shape)
        return np.broadcast_to(np.take(a, [0], axis=axis), shape).copy()

    def own(a, axis):
        shape = list(a.shape)
        shape[axis] = K
        out = np.zeros(shape)
        idx = [slice(None)] * a.ndim
        idx[axis] = ki
        out[tuple(idx)] = a
        return out

    if acc.taylor:
        acc.A, acc.B = own(acc.A, 2), same(acc.B, 2)
        def products(yy, yx, xx):  # the (P, G, K, K) cross-products over the K known levels
            P, G = yy.shape[:2]
            qyy, qyx, qxx = (np.zeros((P, G, K, K)) for _ in range(3))
            qyy[:, :, ki[:, None], ki[None, :]] = yy
            if has:
                qyx[:, :, ki, :] = yx[:, :, :, :1]
                qxx[:] = xx[:, :, :1, :1]
            return qyy, qyx, qxx

        if acc.rows_psu:
            acc.Qyy, acc.Qyx, acc.Qxx = products(acc.Qyy, acc.Qyx, acc.Qxx)
        if acc.stage2:
            acc.Q2yy, acc.Q2yx, acc.Q2xx = products(acc.Q2yy, acc.Q2yx, acc.Q2xx)
    else:
        acc.TN, acc.TD = own(acc.TN, 1), same(acc.TD, 1)
    for name in ("n", "miss", "sw", "sx", "qq"):
        setattr(acc, name, same(getattr(acc, name), 1))
    for name in ("sy", "ss", "cr"):
        setattr(acc, name, own(getattr(acc, name), 1))
    acc.K = K


# ---------------------------------------------------------------------------------------------
# one batch -> an accumulator
# ---------------------------------------------------------------------------------------------
def _numeric(s: pd.Series, name: str, what: str, source: str) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(float).to_numpy()
    if not pd.api.types.is_numeric_dtype(s.dtype):
        conv = pd.to_numeric(s, errors="coerce")
        bad = int((conv.isna() & s.notna()).sum())
        if bad:
            raise EstimationError(f"{what} '{name}' in {source} is not numeric: {bad} rows of a batch hold "
                                  "non-numeric values")
        s = conv
    return s.to_numpy(dtype=float, na_value=np.nan)


def _factorize_rows(parts: list, rows) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct combinations of non-negative integer columns (on ``rows``, a mask
    or None for all) and the combinations themselves, (u x len(parts)); by hashing, not sorting."""
    parts = [p if rows is None else p[rows] for p in parts]
    if not parts[0].size:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(parts)), dtype=np.int64)
    radix = [int(p.max()) + 1 for p in parts]
    key = parts[0].astype(np.int64)
    for p, r in zip(parts[1:], radix[1:]):
        key = key * r + p
    code, uniq = pd.factorize(key)
    cols = []
    rem = np.asarray(uniq, dtype=np.int64)
    for r in reversed(radix[1:]):
        cols.append(rem % r)
        rem = rem // r
    cols.append(rem)
    return code.astype(np.int64), np.column_stack(cols[::-1])


def _splitmix(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _replicate_matrix(frame: pd.DataFrame, job: _Job, w: np.ndarray, acc: _Acc, arrays=None,
                      buf=None) -> np.ndarray:
    """The batch's C-ordered (rows x (1 + R)) float64 matrix [w, replicate weights], filled in
    row blocks so that the transposition stays in cache; missing/negative values counted."""
    n = len(w)
    cols = job.replicate_columns
    if arrays is None:
        arrays = []
        for c in cols:
            s = frame[c]
            arrays.append(s.to_numpy(dtype=float, na_value=np.nan) if pd.api.types.is_numeric_dtype(s.dtype)
                          else _numeric(s, c, "replicate weight", job.source))
    mat = buf[:n * (len(cols) + 1)].reshape(n, len(cols) + 1) if buf is not None and buf.size >= n * (len(cols) + 1) \
        else np.empty((n, len(cols) + 1))
    mat[:, 0] = w
    step = 4_096
    for a in range(0, n, step):
        blk = mat[a:a + step]
        for j, x in enumerate(arrays):
            blk[:, j + 1] = x[a:a + step]
    low = mat[:, 1:].min(axis=0) if n else np.zeros(len(cols))
    for j in np.flatnonzero(~(low >= 0)):
        col = mat[:, j + 1]
        nan = int(np.isnan(col).sum())
        if nan:
            acc.bad[("missing", cols[j])] = acc.bad.get(("missing", cols[j]), 0) + nan
        neg = int((col < 0).sum())
        if neg:
            acc.bad[("negative", cols[j])] = acc.bad.get(("negative", cols[j]), 0) + neg
    if not job.design.combined_weights:
        mat[:, 1:] *= w[:, None]
    return mat


def _batch(frame: pd.DataFrame, job: _Job, batch_id: int, rep_arrays=None, buffer=None, shared=None) -> _Acc:
    """The accumulator of one batch of rows (a pandas DataFrame with the job's columns; the
    replicate weights may come separately as numpy arrays, ``rep_arrays``)."""
    from .variance import replicate_totals

    d = job.design
    n = len(frame)
    nb = len(job.by)
    R1 = len(job.replicate_columns) + 1
    k = len(job.variables)
    acc = _Acc(nb=nb, K=k if job.kind != "proportion" else 0, R1=R1, taylor=not d.replicate,
               rows_psu=not d.replicate and d.psu is None, proportion=job.kind == "proportion",
               stage2=not d.replicate and d.psu is not None and d.ssu is not None)
    acc.n_rows = n
    if n == 0:
        return acc

    def count(what, col, m):
        if m:
            acc.bad[(what, col)] = acc.bad.get((what, col), 0) + int(m)

    w = _numeric(frame[d.weights], d.weights, "weight", job.source)
    count("missing", d.weights, np.isnan(w).sum())
    count("infinite", d.weights, np.isinf(w).sum())
    count("negative", d.weights, (w < 0).sum())
    w = np.where(np.isfinite(w) & (w >= 0), w, 0.0)

    # domain (where) and cells
    dom = np.ones(n, dtype=bool)
    if job.where:
        from .expr import evaluate

        dom = np.asarray(evaluate(job.where, frame), dtype=bool)
    if nb:
        parts = [_local_codes(frame[b], lv) for b, lv in zip(job.by, acc.by_levels)]
        missing = np.zeros(n, dtype=bool)
        for c in parts:
            missing |= c < 0
        acc.n_by_missing = int((missing & dom).sum())
        ok = dom & ~missing
        inv, uniq = _factorize_rows(parts, ok)
        cell = np.full(n, -1, dtype=np.int64)
        cell[ok] = acc.cell_ids(uniq)[inv]
    else:
        ok = dom
        cell = np.where(ok, 0, -1).astype(np.int64)
        if ok.any():
            acc.cell_ids(np.zeros((1, 0), dtype=np.int64))
    G = acc.G

    # analysis columns: y, x (None: 1), valid (n x K)
    if job.kind == "proportion":
        v = job.variables[0]
        lev = _local_codes(frame[v], acc.levels)
        K = len(acc.levels)
        valid1 = lev >= 0
        valid = np.repeat(valid1[:, None], K, axis=1)
        y = None
        x = None
    else:
        K = k
        y = np.column_stack([_numeric(frame[c], c, "analysis variable", job.source) for c in job.variables])
        valid = ~np.isnan(y)
        x = None
        if job.kind == "ratio":
            x = np.column_stack([_numeric(frame[c], c, "analysis variable", job.source) for c in job.denominators])
            valid &= ~np.isnan(x)
            x = np.where(valid, x, 0.0)
        y = np.where(valid, y, 0.0)
    inc = cell >= 0
    use = inc[:, None] & valid  # rows x K counted in each column's cell
    acc._resize(G, 0, K)
    g0 = np.where(inc, cell, 0)

    # Taylor: PSUs and per-(PSU, cell, column) sums
    if acc.taylor:
        s_code = (_local_codes(frame[d.strata], acc.strata) if d.strata else np.zeros(n, dtype=np.int64))
        if d.strata:
            count("missing", d.strata, (s_code < 0).sum())
        else:
            acc.strata.ids(["(all)"])
        if d.psu is None:  # each row its own PSU: the per-stratum sums and second moments
            acc.psus.ids(["(rows)"])
            p_code = np.zeros(n, dtype=np.int64)
        else:
            p_code = _local_codes(frame[d.psu], acc.psus)
            count("missing", d.psu, (p_code < 0).sum())
        pinv, uq = _factorize_rows([np.maximum(s_code, 0), np.maximum(p_code, 0)], None)
        unit = acc.unit_ids(uq)[pinv]
        P = acc.P
        acc._resize(G, P, K)
        if d.fpc:
            f = _numeric(frame[d.fpc], d.fpc, "fpc", job.source)
            count("missing", d.fpc, np.isnan(f).sum())
            fr = pd.DataFrame({"s": s_code, "f": f}).groupby("s")["f"].agg(["min", "max"])
            for s, (lo, hi) in zip(fr.index, fr.to_numpy()):
                acc.fpc_lo[int(s)] = min(acc.fpc_lo.get(int(s), np.inf), lo)
                acc.fpc_hi[int(s)] = max(acc.fpc_hi.get(int(s), -np.inf), hi)
        acc.unit_pos = np.bincount(unit, (dom & (w > 0)).astype(float), minlength=P)
        base = (unit * G + g0) * K
        if job.kind == "proportion":
            r_ok = inc & valid1
            acc.A = np.bincount(base[r_ok] + lev[r_ok], w[r_ok], minlength=P * G * K).reshape(P, G, K)
            bsum = np.bincount((unit * G + g0)[r_ok], w[r_ok], minlength=P * G).reshape(P, G, 1)
            acc.B = np.repeat(bsum, K, axis=2)
        else:
            idx = (base[:, None] + np.arange(K)).ravel()
            um = use.ravel()
            acc.A = np.bincount(idx[um], (w[:, None] * y).ravel()[um], minlength=P * G * K).reshape(P, G, K)
            xv = np.ones_like(y) if x is None else x
            acc.B = np.bincount(idx[um], (w[:, None] * xv).ravel()[um], minlength=P * G * K).reshape(P, G, K)
        if acc.rows_psu:
            acc.nrow = np.bincount(unit, minlength=P).astype(float)
            if job.kind == "proportion":
                r_ok = inc & valid1
                yv = np.zeros((n, K))
                yv[np.flatnonzero(r_ok), lev[r_ok]] = 1.0
                xe = np.repeat(r_ok[:, None].astype(float), K, axis=1)
            else:
                yv = np.where(use, y, 0.0)
                xe = np.where(use, np.ones_like(y) if x is None else x, 0.0)
            rows = np.flatnonzero(inc)
            ug = (unit * G + g0)[rows]
            w2 = (w * w)[rows]
            yr, xr = yv[rows], xe[rows]
            flat = (ug[:, None, None] * K * K + np.arange(K * K).reshape(K, K)[None]).ravel()
            for name, a, b in (("Qyy", yr, yr), ("Qyx", yr, xr), ("Qxx", xr, xr)):
                outer = (w2[:, None, None] * a[:, :, None] * b[:, None, :]).ravel()
                setattr(acc, name, np.bincount(flat, outer, minlength=P * G * K * K).reshape(P, G, K, K))
        if acc.stage2:
            _stage2_sums(acc, frame, job, unit, P, G, K, w, inc, g0, use, y, x, lev if job.kind == "proportion"
                         else None, valid1 if job.kind == "proportion" else None)
    else:
        # replicate totals: one pass of the batch's weight matrix
        if shared is not None and "mat" in shared:  # several estimates of one batch: built once
            mat = shared["mat"]
            acc.bad.update(shared["bad"])
        else:
            mat = _replicate_matrix(frame, job, w, acc, rep_arrays, buffer)
            if shared is not None:
                shared["mat"] = mat
                shared["bad"] = {k: v for k, v in acc.bad.items() if k[1] in job.replicate_columns}
        if job.kind == "proportion":
            r_ok = inc & valid1
            idx = np.column_stack([g0 * K + np.maximum(lev, 0), G * K + g0]).astype(np.int64)
            val = np.column_stack([r_ok, r_ok]).astype(float)
            n_out, n_num = G * K + G, G * K
        else:
            idx = np.concatenate([g0[:, None] * K + np.arange(K), G * K + g0[:, None] * K + np.arange(K)], axis=1)
            xv = np.ones_like(y) if x is None else x
            val = np.concatenate([np.where(use, y, 0.0), np.where(use, xv, 0.0)], axis=1)
            n_out, n_num = 2 * G * K, G * K
        ks = 0
        if d.df is None and shared is not None and "sketch" in shared:  # the same for every estimate
            acc.sketch = shared["sketch"]
        elif d.df is None:
            # CountSketch of the replicate weights (their rank gives the df), bucket and sign
            # hashed from (batch, row), computed in the same pass over the batch's weights
            ks = 4 * (R1 - 1)
            h = _splitmix((np.uint64(batch_id) << np.uint64(32)) + np.arange(n, dtype=np.uint64))
            idx = np.column_stack([idx, n_out + (h % np.uint64(ks)).astype(np.int64)])
            val = np.column_stack([val, np.where((h >> np.uint64(63)) == 1, 1.0, -1.0)])
        t = replicate_totals(idx, val, n_out + ks, mat)
        acc.TN = t[:n_num].reshape(G, K, R1)
        if job.kind == "proportion":
            acc.TD = np.repeat(t[n_num:n_out].reshape(G, 1, R1), K, axis=1)
        else:
            acc.TD = t[n_num:n_out].reshape(G, K, R1)
        if ks:
            acc.sketch = t[n_out:, 1:]
            if shared is not None:
                shared["sketch"] = acc.sketch
        del mat

    # summary per (cell, column): n, missing, weighted n, and the SRS residual sums
    pos = (w > 0)
    acc.rows_pos = np.bincount(cell[inc & pos], minlength=G).astype(float)
    gk = (g0[:, None] * K + np.arange(K))
    cnt_ok = (use & pos[:, None]).ravel()
    flat = gk.ravel()
    acc.n = np.bincount(flat[cnt_ok], minlength=G * K).reshape(G, K).astype(float)
    acc.miss = np.bincount(flat[(inc[:, None] & ~valid).ravel()], minlength=G * K).reshape(G, K).astype(float)
    if job.kind == "proportion":
        r_ok = inc & valid1
        sw = np.bincount(g0[r_ok], w[r_ok], minlength=G)
        a = np.bincount(g0[r_ok] * K + lev[r_ok], w[r_ok], minlength=G * K).reshape(G, K)
        acc.sw = np.repeat(sw[:, None], K, axis=1)
        acc.sx = acc.sw.copy()
        acc.sy = a
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(acc.sx != 0, a / np.where(acc.sx != 0, acc.sx, 1), 0.0)
        acc.ss = a * (1 - r) ** 2 + (acc.sw - a) * r * r  # sum w (1{level} - r)^2
        acc.cr = a - r * acc.sw  # sum w (1{level} - r)
        acc.qq = acc.sw.copy()
    else:
        um = use.ravel()
        wy = (w[:, None] * y).ravel()[um]
        acc.sw = np.bincount(flat[um], np.repeat(w, K)[um], minlength=G * K).reshape(G, K)
        xv = np.ones_like(y) if x is None else x
        wx = (w[:, None] * xv).ravel()[um]
        acc.sx = np.bincount(flat[um], wx, minlength=G * K).reshape(G, K)
        acc.sy = np.bincount(flat[um], wy, minlength=G * K).reshape(G, K)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(acc.sx != 0, acc.sy / np.where(acc.sx != 0, acc.sx, 1), 0.0)
        e = (y - r.ravel()[flat.reshape(n, K)] * xv).ravel()[um]
        wr = np.repeat(w, K)[um]
        xr = xv.ravel()[um]
        acc.ss = np.bincount(flat[um], wr * e * e, minlength=G * K).reshape(G, K)
        acc.cr = np.bincount(flat[um], wr * xr * e, minlength=G * K).reshape(G, K)
        acc.qq = np.bincount(flat[um], wr * xr * xr, minlength=G * K).reshape(G, K)
    return acc


def _stage2_sums(acc: _Acc, frame, job: _Job, unit, P, G, K, w, inc, g0, use, y, x, lev, valid1) -> None:
    """Two stages: each SSU's weighted totals of y and x per cell (an SSU's rows are all in this
    batch), their products summed per (PSU, cell), and the SSUs per PSU (every row's)."""
    d = job.design
    sv = pd.factorize(frame[d.ssu], use_na_sentinel=True)[0]
    if (sv < 0).any():
        raise DesignError(f"SSU '{d.ssu}' in {job.source}: {int((sv < 0).sum())} rows are missing")
    sinv, suq = _factorize_rows([unit, sv], None)
    unit_of_ssu = suq[:, 0]
    acc.n2 = np.bincount(unit_of_ssu, minlength=P).astype(float)
    if d.fpc2:
        f = _numeric(frame[d.fpc2], d.fpc2, "fpc", job.source)
        fr = pd.DataFrame({"u": unit, "f": f}).groupby("u")["f"].agg(["min", "max"])
        for u, (lo, hi) in zip(fr.index, fr.to_numpy()):
            acc.fpc2_lo[int(u)], acc.fpc2_hi[int(u)] = lo, hi
    if lev is not None:
        r_ok = inc & valid1
        yv = np.zeros((len(frame), K))
        yv[np.flatnonzero(r_ok), lev[r_ok]] = 1.0
        xe = np.repeat(r_ok[:, None].astype(float), K, axis=1)
    else:
        yv = np.where(use, y, 0.0)
        xe = np.where(use, np.ones_like(y) if x is None else x, 0.0)
    rows = np.flatnonzero(inc)
    pair = sinv[rows] * G + g0[rows]  # (SSU, cell)
    pu, pinv = np.unique(pair, return_inverse=True)
    Ys = np.zeros((len(pu), K))
    Xs = np.zeros((len(pu), K))
    np.add.at(Ys, pinv, w[rows, None] * yv[rows])
    np.add.at(Xs, pinv, w[rows, None] * xe[rows])
    ug = unit_of_ssu[pu // G] * G + pu % G
    flat = (ug[:, None, None] * K * K + np.arange(K * K).reshape(K, K)[None]).ravel()
    for name, a, b in (("Q2yy", Ys, Ys), ("Q2yx", Ys, Xs), ("Q2xx", Xs, Xs)):
        setattr(acc, name, np.bincount(flat, (a[:, :, None] * b[:, None, :]).ravel(),
                                       minlength=P * G * K * K).reshape(P, G, K, K))


def _stage2_vcov(acc: _Acc, porder, gorder, korder, est, t_den, z, mult, d: StreamDesign, job: _Job,
                 labels) -> np.ndarray:
    """The second stage's variance (PSUs sampled without replacement at stage 1): per PSU ``u``
    with ``n_u`` SSUs, ``mult_u (1 - f2_u) n_u / (n_u - 1) (sum_j z_uj z_uj' - z_u z_u' / n_u)``
    with ``z_uj`` the SSU's score totals (from the per-PSU products of the SSUs' totals) and
    ``z_u`` the PSU's; ``mult_u`` the stage-1 sampling fraction of its stratum.  Within each cell
    (the blocks the estimates need); the covariances between cells are left NaN (an SSU may
    have rows in several cells)."""
    from .errors import LonelyPSUError

    P, m = z.shape
    K, G = len(korder), len(gorder)
    size = acc.n2[porder]
    fraction = np.zeros(P)
    if d.fpc2:
        lo = np.array([acc.fpc2_lo.get(int(u), np.nan) for u in porder])
        hi = np.array([acc.fpc2_hi.get(int(u), np.nan) for u in porder])
        bad = np.flatnonzero(lo != hi)
        if bad.size:
            raise DesignError(f"fpc '{d.fpc2}' in {job.source} differs within {bad.size} stage-2 group(s) "
                              f"(e.g. {labels[bad[0]]})")
        if np.all(hi <= 1):
            if np.any(hi <= 0):
                raise DesignError(f"fpc '{d.fpc2}' as sampling fraction must be in (0, 1]")
            fraction = hi
        else:
            small = np.flatnonzero(hi < size)
            if small.size:
                raise DesignError(f"fpc '{d.fpc2}' in {job.source}: population size {hi[small[0]]:g} is smaller than "
                                  f"the {int(size[small[0]])} units sampled in {small.size} group(s) "
                                  f"(e.g. {labels[small[0]]})")
            fraction = size / hi
    lonely = np.flatnonzero((size == 1) & (fraction < 1))
    if lonely.size and d.lonely_psu == "fail":
        names = ", ".join(str(labels[g]) for g in lonely[:10])
        raise LonelyPSUError(f"{lonely.size} stage-1 unit(s) with a single stage-2 unit: {names}; choose "
                             "lonely_psu='remove', 'certainty', 'adjust' or 'average'")
    if lonely.size and d.lonely_psu == "average":
        raise DesignError("lonely_psu 'average' at the second stage is not available when streaming; use remove "
                          "or adjust")
    fpc = 1.0 - fraction
    regular = size > 1
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(regular, mult * fpc * size / (size - 1.0), 0.0)
        coef = np.where(regular, c / np.where(regular, size, 1.0), 0.0)
    sel = np.ix_(porder, gorder, korder, korder)
    Qyy, Qyx, Qxx = acc.Q2yy[sel], acc.Q2yx[sel], acc.Q2xx[sel]
    if job.kind == "total":
        M = Qyy
    else:
        R = est.reshape(G, K)
        X = t_den.reshape(G, K)
        with np.errstate(invalid="ignore", divide="ignore"):
            num = (Qyy - R[None, :, None, :] * Qyx - R[None, :, :, None] * np.swapaxes(Qyx, 2, 3)
                   + R[None, :, :, None] * R[None, :, None, :] * Qxx)
            M = np.nan_to_num(num / (X[None, :, :, None] * X[None, :, None, :]))
    Mt = np.einsum("u,ugab->gab", c, M)
    v = np.full((m, m), np.nan)
    zz = z.T @ (z * coef[:, None])
    if d.lonely_psu == "adjust" and lonely.size:
        zz -= z[lonely].T @ (z[lonely] * (mult[lonely] * fpc[lonely])[:, None])
    for g in range(G):
        b = slice(g * K, (g + 1) * K)
        v[b, b] = Mt[g] - zz[b, b]
    return v


# ---------------------------------------------------------------------------------------------
# accumulators -> the result table
# ---------------------------------------------------------------------------------------------
def _raise_bad(acc: _Acc, job: _Job):
    for (what, col), m in acc.bad.items():
        if what == "negative" and col == job.design.weights:
            raise WeightError(f"weight '{col}' in {job.source}: {m} of {acc.n_rows} rows are negative")
        if col == job.design.weights:
            raise WeightError(f"weight '{col}' in {job.source}: {m} of {acc.n_rows} rows are {what}")
        if col in job.replicate_columns:
            raise ReplicateWeightError(
                f"replicate weight '{col}' in {job.source}: {m} of {acc.n_rows} rows are {what}")
        what_col = "strata" if col == job.design.strata else ("PSU" if col == job.design.psu else "fpc")
        raise DesignError(f"{what_col} variable '{col}' in {job.source}: {m} of {acc.n_rows} rows are {what}")


def _finish(acc: _Acc, job: _Job, level: float, df, ci_method: str, na_rm: bool,
            effective_df: str | None = None) -> pd.DataFrame:
    from . import estimate as E
    from .design import _default_scale
    from .variance import Stage, replicate_vcov, taylor_vcov

    d = job.design
    _raise_bad(acc, job)
    if acc.n_rows == 0:
        raise EstimationError(f"{job.source} has no rows")
    if acc.n_by_missing:
        warnings.warn(
            f"by variable(s) {', '.join(job.by)} in {job.source}: {acc.n_by_missing} rows in the domain have a "
            "missing value and belong to no cell (they still count in the design)", SurveyWarning, stacklevel=3)
    if acc.G == 0:
        if job.where and not job.by:
            raise DesignError(f"subset condition selects none of the {acc.n_rows} rows of {job.source}")
        raise DomainError(f"by variable(s) {', '.join(job.by)} in {job.source}: no row of the domain has all values")
    if not na_rm and acc.miss.sum() > 0:
        j = int(np.flatnonzero(acc.miss.sum(axis=0) > 0)[0])
        name = job.variables[0] if job.kind == "proportion" else job.variables[j]
        raise EstimationError(f"variable '{name}' in {job.source}: {int(acc.miss[:, j].sum())} rows in the domain "
                              "are missing; use na_rm=True to treat them as a domain")

    # order cells by the sorted levels of each by variable (as the in-memory engine)
    G = acc.G
    if job.by:
        ranks = [lv.order() for lv in acc.by_levels]
        keys_r = np.array([[ranks[b][c[b]] for b in range(acc.nb)] for c in acc.cell_keys], dtype=np.int64)
        gorder = np.lexsort(keys_r.T[::-1])
        keys = pd.DataFrame({b: [acc.by_levels[i].values[acc.cell_keys[g][i]] for g in gorder]
                             for i, b in enumerate(job.by)})
    else:
        gorder = np.arange(G)
        keys = pd.DataFrame(index=range(1))
    if job.kind == "proportion":
        korder = np.argsort(acc.levels.order())
        if not len(korder):
            raise EstimationError(f"variable '{job.variables[0]}' in {job.source}: all {acc.n_rows} rows are missing")
        labels = [job.variables[0]] * len(korder)
        lev_values = [acc.levels.values[i] for i in korder]
    else:
        korder = np.arange(acc.K)
        labels = ([f"{a}/{b}" for a, b in zip(job.variables, job.denominators)] if job.kind == "ratio"
                  else list(job.variables))
        lev_values = None
    K = len(korder)
    m = G * K
    sel = np.ix_(gorder, korder)
    n_, miss, sw, sx, sy, ss = (a[sel].ravel() for a in (acc.n, acc.miss, acc.sw, acc.sx, acc.sy, acc.ss))

    reps = None
    dfe = None
    if d.replicate:
        tn = acc.TN[sel].reshape(m, -1)
        td = acc.TD[sel].reshape(m, -1)
        if job.kind == "total":
            est_all = tn
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                est_all = tn / td
        est = est_all[:, 0]
        reps = est_all[:, 1:]
        R = reps.shape[1]
        rho = float(d.rho or 0.0)
        scale = d.scale if d.scale is not None else _default_scale(d.method, R, rho)
        if d.rscales is None:
            if d.method == "JKn":
                raise ReplicateWeightError("method 'JKn' needs rscales ((n_h - 1) / n_h per replicate)")
            rscales = np.ones(R)
        else:
            rscales = np.broadcast_to(np.asarray(d.rscales, dtype=float), (R,)).copy()
        vcov = replicate_vcov(est, reps, float(scale), rscales, bool(d.mse))
        t_num, t_den = tn[:, 0], td[:, 0]
        if df is None:
            if d.df is not None:
                df = float(d.df)
            else:
                s = np.linalg.svd(acc.sketch, compute_uv=False) if acc.sketch is not None else np.zeros(0)
                df = float(int((s > s.max() * 1e-9).sum()) - 1) if s.size and s.max() > 0 else -1.0
    else:
        # PSUs ordered by (stratum, PSU id), strata by value
        srank, prank = acc.strata.order(), acc.psus.order()
        uk = np.array(acc.unit_keys, dtype=np.int64).reshape(-1, 2)
        porder = np.lexsort((prank[uk[:, 1]], srank[uk[:, 0]]))
        uk = uk[porder]
        if not d.nest and d.strata and not acc.rows_psu:
            per = pd.Series(uk[:, 0]).groupby(uk[:, 1]).nunique()
            bad = per[per > 1]
            if len(bad):
                raise DesignError(
                    f"PSU '{d.psu}' in {job.source}: {len(bad)} PSU id(s) appear in more than one stratum "
                    f"(e.g. {acc.psus.values[int(bad.index[0])]!r}); use nest=True if ids are only unique within strata")
        A = acc.A[porder][:, gorder][:, :, korder].reshape(acc.P, m)
        B = acc.B[porder][:, gorder][:, :, korder].reshape(acc.P, m)
        t_num = A.sum(axis=0)
        t_den = B.sum(axis=0)
        if job.kind == "total":
            est, z = t_num, A
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                est = t_num / t_den
                z = (A - est[None, :] * B) / t_den[None, :]
        # the stage: PSUs within strata
        s_of_unit = srank[uk[:, 0]]
        n_strata = int(s_of_unit.max()) + 1
        size = np.bincount(s_of_unit, minlength=n_strata)
        fraction = np.zeros(n_strata)
        s_ids = np.empty(n_strata, dtype=np.int64)
        s_ids[srank] = np.arange(len(srank))
        labels_s = tuple(str(acc.strata.values[s_ids[g]]) for g in range(n_strata))
        if d.fpc:
            lo = np.array([acc.fpc_lo[int(s_ids[g])] for g in range(n_strata)])
            hi = np.array([acc.fpc_hi[int(s_ids[g])] for g in range(n_strata)])
            bad_f = np.flatnonzero(lo != hi)
            if bad_f.size:
                raise DesignError(f"fpc '{d.fpc}' in {job.source} differs within {bad_f.size} stage-1 group(s) "
                                  f"(e.g. {labels_s[bad_f[0]]})")
            if all(v <= 1 for v in acc.fpc_hi.values()):
                if np.any(hi <= 0):
                    raise DesignError(f"fpc '{d.fpc}' as sampling fraction must be in (0, 1]")
                fraction = hi
            else:
                small = np.flatnonzero(hi < size)
                if small.size:
                    raise DesignError(f"fpc '{d.fpc}' in {job.source}: population size {hi[small[0]]:g} is smaller "
                                      f"than the {size[small[0]]} units sampled in {small.size} group(s) "
                                      f"(e.g. {labels_s[small[0]]})")
                fraction = size / hi
        if acc.rows_psu:  # units are the strata, each row a PSU: size is the rows
            size = acc.nrow[porder]
            if d.fpc and not all(v <= 1 for v in acc.fpc_hi.values()):
                small = np.flatnonzero(hi < size)
                if small.size:
                    raise DesignError(f"fpc '{d.fpc}' in {job.source}: population size {hi[small[0]]:g} is smaller "
                                      f"than the {int(size[small[0]])} rows sampled in {small.size} stratum(s) "
                                      f"(e.g. {labels_s[small[0]]})")
                fraction = size / hi
            vcov, dfe = _rows_vcov(acc, porder, gorder, korder, est, t_den, z, size, fraction, labels_s, d,
                                   job, effective_df)
            if df is None:
                pos = acc.unit_pos[porder]
                df = float(pos.sum() - (pos > 0).sum()) if job.where else float(acc.nrow.sum() - n_strata)
        else:
            stage = Stage(unit=np.arange(acc.P, dtype=np.int64), group=s_of_unit, size=size, fraction=fraction,
                          labels=labels_s)
            rr, cc = np.nonzero(z)
            vcov = taylor_vcov(rr, cc, z[rr, cc], m, [stage], d.lonely_psu)
            mult = fraction[s_of_unit]
            if acc.stage2 and np.any(mult > 0):  # without replacement at stage 1: the SSUs' variance
                labels_u = tuple(f"{labels_s[s_of_unit[u]]}/{acc.psus.values[uk[u, 1]]}" for u in range(acc.P))
                vcov = vcov + _stage2_vcov(acc, porder, gorder, korder, est, t_den, z, mult, d, job, labels_u)
            if effective_df:
                dfe = _effective_df(z, stage, d.lonely_psu, effective_df)
        if df is None:
            if job.where:
                pos = acc.unit_pos[porder] > 0
                df = float(pos.sum() - np.unique(s_of_unit[pos]).size)
            else:
                df = float(acc.P - n_strata)
    if isinstance(df, str):
        raise EstimationError("df='domain' is not available when streaming; give a number or None")
    df = float(df)

    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    if job.kind == "proportion":
        nrows = np.repeat(acc.rows_pos[gorder], K)
        if ci_method == "logit" and reps is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                eta, eta_r = np.log(est / (1 - est)), np.log(reps / (1 - reps))
            se_eta = np.sqrt(np.diag(replicate_vcov(eta, eta_r, float(scale), rscales, bool(d.mse))))
            h = E._tq(level, df) * se_eta
            lo, hi = 1 / (1 + np.exp(-(eta - h))), 1 / (1 + np.exp(-(eta + h)))
        else:
            lo, hi = E.proportion_ci(est, se, level, df, ci_method, n=nrows)
    else:
        lo, hi = E._wald(est, se, level, df)
    # the SRS variance of Kish's deff (as survey.estimate._cell_summary)
    kind = "mean" if job.kind == "proportion" else job.kind
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = ss / sw * n_ / (n_ - 1)
        if kind == "ratio":
            s2 = s2 / (sx / sw) ** 2
        vs = s2 / n_ * (1 - n_ / sw)
        if kind == "total":
            vs = vs * sw * sw
        deff = np.diag(vcov) / vs
    if kind != "total":
        empty = n_ == 0
        if empty.any():
            est = np.where(empty, np.nan, est)
    attrs = {"estimator": job.kind, "n_by_missing": acc.n_by_missing, "streamed_rows": acc.n_rows,
             # the weighted sums behind each estimate, in result order (m x 1, or m x (1 + R) with the
             # replicates): what a nonlinear function of the cells' totals (a Gini) is computed from
             "totals": (t_num[:, None], t_den[:, None]) if reps is None else (tn, td)}
    if reps is not None:
        attrs["replicate_scale"] = (float(scale), rscales, bool(d.mse))
    if job.kind == "proportion":
        attrs["ci_method"] = ci_method
    out = E._result(keys, K, labels, lev_values, est, vcov, lo, hi, df, deff, n_, miss, sw, attrs)
    if dfe is not None:
        out["df_effective"] = np.minimum(dfe, df)
    return out


def _rows_vcov(acc: _Acc, porder, gorder, korder, est, t_den, s, size, fraction, labels, d, job, effective_df):
    """The variance of a Taylor design without PSUs (each row its own PSU, with replacement
    within strata): ``sum_h c_h (sum_i z_i z_i' - s_h s_h' / n_h)``, ``c_h = (1 - f_h) n_h /
    (n_h - 1)``, from the per-(stratum, cell) second moments of ``w y`` and ``w x`` (a row's
    scores ``w (y - R x) / X`` touch only its own cell) and the stratum sums ``s``; with the
    effective df (Satterthwaite) when asked."""
    from .errors import LonelyPSUError

    P, m = s.shape
    K = len(korder)
    G = len(gorder)
    sel = np.ix_(porder, gorder, korder, korder)
    Qyy, Qyx, Qxx = acc.Qyy[sel], acc.Qyx[sel], acc.Qxx[sel]
    if job.kind == "total":
        M = Qyy
    else:
        R = est.reshape(G, K)
        X = t_den.reshape(G, K)
        with np.errstate(invalid="ignore", divide="ignore"):
            num = (Qyy - R[None, :, None, :] * Qyx - R[None, :, :, None] * np.swapaxes(Qyx, 2, 3)
                   + R[None, :, :, None] * R[None, :, None, :] * Qxx)
            M = num / (X[None, :, :, None] * X[None, :, None, :])
        M = np.nan_to_num(M)
    lonely = size < 2
    fpc = 1.0 - fraction
    if lonely.any():
        if d.lonely_psu == "fail":
            raise LonelyPSUError(f"{int(lonely.sum())} stratum(s) of {job.source} have a single row "
                                 f"(e.g. {labels[int(np.flatnonzero(lonely)[0])]}); set lonely_psu")
        if d.lonely_psu == "average":
            raise DesignError("lonely_psu 'average' is not available when streaming a design without PSUs; "
                              "use remove, certainty or adjust")
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(lonely, 0.0, fpc * size / (size - 1.0))
        coef = np.where(lonely, 0.0, c / size)
    if d.lonely_psu == "adjust":
        c = np.where(lonely, fpc, c)  # the lonely row measured from 0: z z'
    Mt = np.einsum("h,hgab->gab", c, M)
    vcov = np.zeros((m, m))
    for g in range(G):
        vcov[g * K:(g + 1) * K, g * K:(g + 1) * K] = Mt[g]
    vcov -= s.T @ (s * coef[:, None])
    dfe = None
    if effective_df:
        if effective_df != "satterthwaite":
            raise EstimationError("effective_df 'heavy_tailed' needs PSUs when streaming")
        diag = np.einsum("hgaa->hga", M).reshape(P, m)
        with np.errstate(invalid="ignore", divide="ignore"):
            vh = np.where(lonely[:, None], 0.0, c[:, None] * (diag - s * s / size[:, None]))
            if d.lonely_psu == "adjust":
                vh = np.where(lonely[:, None], fpc[:, None] * s * s, vh)
            vh = np.clip(vh, 0, None)
            kh = np.where(lonely, 1.0, size - 1.0)[:, None]
            v, den = vh.sum(axis=0), (vh * vh / kh).sum(axis=0)
            dfe = np.where(den > 0, v * v / den, np.nan)
    return vcov, dfe


def _effective_df(z: np.ndarray, stage, lonely: str, method: str) -> np.ndarray:
    """Satterthwaite's effective df of each estimate's first-stage variance from its PSU totals
    ``z`` (P x m): ``(sum_h v_h)^2 / sum_h (v_h^2 / k_h)``, ``v_h`` stratum h's contribution and
    ``k_h`` its PSUs minus 1 (lonely PSUs: a 1-df term under ``adjust``, none otherwise);
    ``heavy_tailed``: in strata of 3+ PSUs the fourth-moment estimate of Var(v_h) when larger.
    The same quantity as :meth:`survey.domain_batch.DomainBatch.effective_df` (not clipped)."""
    import scipy.sparse as sp

    from .variance import stage_scale

    size, fpc, lonely_g, regular, c_group = stage_scale(stage, np.ones(stage.n_groups), "remove", 1)
    H = sp.csr_matrix((np.ones(len(stage.group)), (stage.group, np.arange(len(stage.group)))),
                      shape=(stage.n_groups, len(stage.group)))
    with np.errstate(invalid="ignore", divide="ignore"):
        s1, s2 = np.asarray(H @ z), np.asarray(H @ (z * z))
        nh = size[:, None]
        vh = c_group[:, None] * (s2 - s1 * s1 / nh)
        kh = np.where(regular, size - 1.0, 1.0)[:, None]
        if lonely_g.size and lonely == "adjust":
            lone = np.zeros(stage.n_groups, dtype=bool)
            lone[lonely_g] = True
            vh = np.where(lone[:, None], fpc[:, None] * s1 * s1, vh)
        vh = np.clip(vh, 0, None)
        half = vh * vh / kh
        if method == "heavy_tailed":
            s3, s4 = np.asarray(H @ (z ** 3)), np.asarray(H @ (z ** 4))
            mm = s1 / nh
            d2 = s2 - nh * mm * mm
            d4 = s4 - 4 * mm * s3 + 6 * mm * mm * s2 - 3 * nh * mm ** 4
            ch = c_group[:, None]
            spread = ch * ch * nh / np.where(nh > 1, nh - 1, 1) * np.clip(d4 - d2 * d2 / nh, 0, None)
            big = (nh >= 3) & regular[:, None]
            half = np.where(big, np.maximum(half, spread / 2), half)
        v, den = vh.sum(axis=0), half.sum(axis=0)
        return np.where(den > 0, v * v / den, np.nan)


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _make_job(names: list[str], source: str, kind: str, variables, denominator, by, where,
              design: StreamDesign) -> _Job:
    from .design import REPLICATE_METHODS
    from .variance import LONELY_PSU_POLICIES

    if kind not in KINDS:
        raise EstimationError(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
    variables = _as_list(variables)
    if not variables:
        raise EstimationError("no analysis variable given")
    dens = _as_list(denominator)
    if kind == "ratio":
        if len(dens) == 1 and len(variables) > 1:
            dens = dens * len(variables)
        if len(dens) != len(variables):
            raise EstimationError(f"{len(variables)} numerators for {len(dens)} denominators")
    elif dens:
        raise EstimationError(f"denominator= is for kind 'ratio', not '{kind}'")
    if kind == "proportion" and len(variables) != 1:
        raise EstimationError("proportion takes one variable")
    if design.lonely_psu not in LONELY_PSU_POLICIES:
        raise DesignError(f"lonely_psu must be one of {', '.join(LONELY_PSU_POLICIES)}, not '{design.lonely_psu}'")
    rep_cols: list[str] = []
    if design.replicate:
        if design.method not in REPLICATE_METHODS:
            raise ReplicateWeightError(
                f"method must be one of {', '.join(REPLICATE_METHODS)}, not '{design.method}'")
        if design.method == "Fay" and (design.rho is None or not 0 <= design.rho < 1):
            raise ReplicateWeightError("method 'Fay' needs rho in [0, 1) (e.g. rho=0.5)")
        rep_cols = _match_replicates(names, design.replicate_weights, source)
        if len(rep_cols) < 2:
            raise ReplicateWeightError(f"need at least 2 replicate weights, found {len(rep_cols)}")
    job = _Job(kind, tuple(variables), tuple(dens), tuple(_as_list(by)), where, design, tuple(rep_cols), source)
    what = {design.weights: "weight", design.strata: "strata", design.psu: "PSU", design.fpc: "fpc"}
    for c in job.columns:
        if c not in names:
            raise column_not_found(c, names, what.get(c, "by" if c in job.by else "analysis variable"), source)
    return job


def _design_of(design: StreamDesign | None, kw: dict) -> StreamDesign:
    if design is not None:
        if kw:
            raise EstimationError(f"give design= or design columns ({', '.join(kw)}), not both")
    elif "weights" not in kw:
        raise DesignError("streaming needs weights= (a column of the file)")
    else:
        design = StreamDesign(**kw)
    if design.ssu is not None:
        raise EstimationError(f"ssu='{design.ssu}' (a second stage) needs batches that hold each SSU whole, which a "
                              "file's row groups do not promise: use estimate_frames with batches cut at SSU "
                              "boundaries (as survey.stream_indicators does)")
    return design


def estimate(source, kind: str, variables, *, denominator=None, by=None, where: str | None = None,
             design: StreamDesign | None = None, level: float = 0.95, df=None, ci_method: str = "logit",
             na_rm: bool = True, batch_rows: int = DEFAULT_BATCH_ROWS, **design_columns) -> pd.DataFrame:
    """One estimate from a Parquet file (or a directory of Parquet files) read in row batches.

    ``kind``: ``total`` | ``mean`` | ``ratio`` (with ``denominator=``) | ``proportion``.
    ``by``: domain columns; ``where``: a condition of :mod:`survey.expr` (a subset domain, as
    ``design.subset(where)``).  The design: ``design=StreamDesign(...)`` or its fields as
    keywords (``weights=``, ``strata=``, ``psu=``, ``replicate_weights=``, ``method=``...).
    Only the columns the estimate needs are read, ``batch_rows`` rows at a time, so memory is
    bounded by the batch (for replicate designs about ``batch_rows x (1 + R) x 8`` bytes).
    Returns the table of :func:`survey.estimate.mean` & co. (``attrs["vcov"]`` included).
    """
    request = dict(kind=kind, variables=variables, denominator=denominator, by=by, where=where,
                   ci_method=ci_method, na_rm=na_rm)
    return estimate_many(source, [request], design=design, level=level, df=df, batch_rows=batch_rows,
                         **design_columns)[0]


def estimate_many(source, requests: list, *, design: StreamDesign | None = None, level: float = 0.95, df=None,
                  batch_rows: int = DEFAULT_BATCH_ROWS, **design_columns) -> list:
    """Several estimates from ONE read of the file (the indicator table's families: every
    ``ratio``/``mean``/``proportion`` for every domain variable), one result table per request.

    ``requests``: dicts with ``kind``, ``variables`` and optionally ``denominator``, ``by``,
    ``where``, ``ci_method`` (default logit), ``na_rm`` (default True).  A replicate design's
    weight matrix is built once per batch for all requests.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    design = _design_of(design, design_columns)
    path = Path(source)
    if not path.exists():
        raise EstimationError(f"{source}: no such file or directory")
    dataset = ds.dataset(str(path), format="parquet")
    names = list(dataset.schema.names)
    jobs, opts = _jobs(names, path.name, requests, design)
    rep_cols = jobs[0].replicate_columns
    reps = set(rep_cols)
    columns = list(dict.fromkeys(c for j in jobs for c in j.columns))
    small = [c for c in columns if c not in reps]

    def parts():
        for batch in _batches(dataset, columns, int(batch_rows)):
            frame = batch.select(small).to_pandas()
            arrays = None
            if reps:  # straight from Arrow (float32 stays float32 until the matrix is filled)
                arrays = []
                for c in rep_cols:
                    col = batch.column(c)
                    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
                        arrays = None
                        frame = batch.to_pandas()
                        break
                    arrays.append(col.to_numpy(zero_copy_only=False) if col.null_count == 0
                                  else col.to_pandas().to_numpy(dtype=float, na_value=np.nan))
            yield frame, arrays
            del frame, arrays, batch

    accs = _accumulate(jobs, parts(), int(batch_rows))
    if accs[0] is None:
        raise EstimationError(f"{path.name} has no rows")
    return [_finish(a, job, level, df, *o) for a, job, o in zip(accs, jobs, opts)]


def _jobs(names: list, source: str, requests: list, design: StreamDesign) -> tuple[list, list]:
    jobs, opts = [], []
    for q in requests:
        q = dict(q)
        ci, na_rm = _request_options(q)
        eff = q.pop("effective_df", None)
        if eff not in (None, "satterthwaite", "heavy_tailed"):
            raise EstimationError(f"effective_df must be 'satterthwaite', 'heavy_tailed' or None, not '{eff}'")
        jobs.append(_make_job(names, source, q.pop("kind", None), q.pop("variables", None),
                              q.pop("denominator", None), q.pop("by", None), q.pop("where", None), design))
        if q:
            raise EstimationError(f"unknown request key(s): {', '.join(map(str, q))}")
        opts.append((ci, na_rm, eff))
    if not jobs:
        raise EstimationError("no estimate requested")
    return jobs, opts


def _accumulate(jobs: list, parts, batch_rows: int) -> list:
    """One accumulator per job over ``parts``: (pandas frame, replicate arrays or None)."""
    accs: list = [None] * len(jobs)
    buffer = None
    reps = jobs[0].replicate_columns
    for i, (frame, arrays) in enumerate(parts):
        if reps and (buffer is None or buffer.size < len(frame) * (len(reps) + 1)):
            buffer = np.empty(max(int(batch_rows), len(frame)) * (len(reps) + 1))
        shared: dict = {}
        for j, job in enumerate(jobs):
            part = _batch(frame, job, i, arrays, buffer, shared)
            accs[j] = part if accs[j] is None else accs[j].merge(part)
        del frame, arrays, shared
    return accs


def estimate_frames(frames, names: list, requests: list, *, design: StreamDesign, source: str = "frames",
                    level: float = 0.95, df=None, batch_rows: int = DEFAULT_BATCH_ROWS) -> list:
    """:func:`estimate_many` over an iterable of pandas DataFrames (e.g. derived columns computed
    batch by batch from a file read in row groups); ``names``: the columns they hold (checked
    before the first frame).  Batches are numbered in order: the replicate df sketch is the
    same for the same batches."""
    jobs, opts = _jobs(list(names), source, requests, design)
    accs = _accumulate(jobs, ((f, None) for f in frames), int(batch_rows))
    if accs[0] is None:
        raise EstimationError(f"{source} has no rows")
    return [_finish(a, job, level, df, *o) for a, job, o in zip(accs, jobs, opts)]


def _batches(dataset, columns: list, batch_rows: int):
    """Row batches of every file, one row group at a time (``ParquetFile.iter_batches`` without
    pre-buffering: the dataset scanner's read-ahead buffered most of a 9 GB file in memory)."""
    import pyarrow.parquet as pq

    for f in dataset.files:
        pf = pq.ParquetFile(f, pre_buffer=False)
        try:
            yield from pf.iter_batches(batch_size=batch_rows, columns=columns)
        finally:
            pf.close()


def _request_options(q: dict) -> tuple[str, bool]:
    from .estimate import CI_METHODS

    ci = q.pop("ci_method", "logit")
    if ci not in CI_METHODS:
        raise EstimationError(f"ci_method must be one of {', '.join(CI_METHODS)}, not '{ci}'")
    return ci, bool(q.pop("na_rm", True))


def _partition(frame: pd.DataFrame, job: _Job, i: int) -> _Acc:
    return _batch(frame, job, i)


def _merge(a: _Acc, b: _Acc) -> _Acc:
    return a.merge(b)


def estimate_dask(source, kind: str, variables, *, denominator=None, by=None, where: str | None = None,
                  design: StreamDesign | None = None, level: float = 0.95, df=None, ci_method: str = "logit",
                  na_rm: bool = True, scheduler=None, split_row_groups=True, **design_columns) -> pd.DataFrame:
    """The same estimate with Dask: every partition of ``dask.dataframe.read_parquet(source)`` (or
    of a Dask DataFrame given as ``source``) becomes an accumulator on the workers, merged by a
    tree reduction; only the small accumulators travel.  ``scheduler``: as ``dask.compute``
    (None: the default, e.g. a ``distributed.Client`` in use)."""
    import dask
    import dask.dataframe as dd

    from .estimate import CI_METHODS

    if ci_method not in CI_METHODS:
        raise EstimationError(f"ci_method must be one of {', '.join(CI_METHODS)}, not '{ci_method}'")
    design = _design_of(design, design_columns)
    if isinstance(source, (str, Path)):
        ddf = dd.read_parquet(str(source), split_row_groups=split_row_groups)
        name = Path(source).name
    else:
        ddf, name = source, "dask dataframe"
    names = [str(c) for c in ddf.columns]
    job = _make_job(names, name, kind, variables, denominator, by, where, design)
    parts = ddf[job.columns].to_delayed()
    accs = [dask.delayed(_partition)(p, job, i) for i, p in enumerate(parts)]
    while len(accs) > 1:  # tree reduction
        accs = [dask.delayed(_merge)(accs[i], accs[i + 1]) if i + 1 < len(accs) else accs[i]
                for i in range(0, len(accs), 2)]
    (acc,) = dask.compute(accs[0], scheduler=scheduler)
    return _finish(acc, job, level, df, ci_method, na_rm)
