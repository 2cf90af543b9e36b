"""Variance kernels.

Array code only (no pandas): Taylor linearization for stratified multistage designs and
replicate-weight variance.  This is where speed lives.

Taylor linearization (ultimate-cluster with the usual multistage extension)
---------------------------------------------------------------------------
An estimator is linearized into per-row scores ``z_i = w_i * u_i`` (one column per estimate).
At stage 1 the scores are summed within PSUs and the PSU totals are centred within their
stratum; stratum ``h`` with ``n_h`` PSUs and sampling fraction ``f_h`` contributes
``(1 - f_h) * n_h / (n_h - 1) * sum_j (Z_hj - Zbar_h)(Z_hj - Zbar_h)'``.  When a stage is
sampled without replacement (``f_h > 0``) the next stage adds its own contribution, computed the
same way within each sampled unit, multiplied by the product of the sampling fractions of the
earlier stages.  With replacement at stage 1 (no fpc) later stages contribute nothing.

Scores are passed as sparse triplets ``(row, col, value)`` so that domain estimation (a score is
non-zero only in the row's own domain) never materializes an ``n x domains`` matrix.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .errors import LonelyPSUError

LONELY_PSU_POLICIES = ("fail", "remove", "certainty", "adjust", "average")


@dataclass(frozen=True)
class Stage:
    """One sampling stage.

    unit:      per row, the code (0..n_units-1) of the unit sampled at this stage.
    group:     per unit, the code of the group it was sampled within (the stratum at stage 1,
               the parent unit at later stages).
    size:      per group, the number of units sampled in it.
    fraction:  per group, the sampling fraction (0 when sampled with replacement).
    labels:    per group, a printable label (stratum names, for error messages).
    """

    unit: np.ndarray
    group: np.ndarray
    size: np.ndarray
    fraction: np.ndarray
    labels: tuple = ()

    @property
    def n_units(self) -> int:
        return int(self.group.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.size.shape[0])

    def lonely_groups(self) -> np.ndarray:
        """Groups with one sampled unit that are not certainty selections (f < 1)."""
        return np.flatnonzero((self.size == 1) & (self.fraction < 1))


def check_lonely(stage: Stage, stage_no: int = 1) -> None:
    """Raise LonelyPSUError naming the groups with a single sampled unit (policy ``fail``)."""
    lonely_g = stage.lonely_groups()
    if not lonely_g.size:
        return
    names = [str(stage.labels[g]) if stage.labels else str(g) for g in lonely_g[:10]]
    more = f" and {lonely_g.size - 10} more" if lonely_g.size > 10 else ""
    what = "stratum" if stage_no == 1 else f"stage-{stage_no - 1} unit"
    raise LonelyPSUError(
        f"{lonely_g.size} {what}(s) with a single stage-{stage_no} unit: {', '.join(names)}{more}; "
        "choose lonely_psu='remove', 'certainty', 'adjust' or 'average'"
    )


DENSE_LIMIT = 4_000_000  # unit x estimate cells below which unit totals are a dense array


def unit_totals(stage: Stage, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, m: int):
    """Sum scores within the units of ``stage``: (n_units x m), dense when small, else sparse."""
    u = stage.unit[rows]
    if stage.n_units * m <= DENSE_LIMIT:
        return np.bincount(u * m + cols, weights=vals, minlength=stage.n_units * m).reshape(stage.n_units, m)
    return sp.coo_matrix((vals, (u, cols)), shape=(stage.n_units, m)).tocsr()  # duplicates summed


def stage_scale(stage: Stage, mult: np.ndarray, lonely: str, stage_no: int):
    """The per-group quantities of one stage's variance: units sampled ``size``, ``fpc`` (1 - f),
    the lonely groups, the groups with 2+ units (``regular``) and the scale ``c_g = mult_g (1 -
    f_g) n_g / (n_g - 1)`` on them (0 elsewhere).  Policy ``fail`` raises on a lonely group."""
    size = stage.size.astype(float)
    fpc = 1.0 - stage.fraction
    lonely_g = stage.lonely_groups()
    regular = size > 1
    c_group = np.zeros(stage.n_groups)
    c_group[regular] = mult[regular] * fpc[regular] * size[regular] / (size[regular] - 1.0)
    if lonely_g.size and lonely == "fail":
        check_lonely(stage, stage_no)
    return size, fpc, lonely_g, regular, c_group


def _stage_vcov(z, stage: Stage, mult: np.ndarray, lonely: str, stage_no: int) -> np.ndarray:
    """Contribution of one stage given unit totals ``z`` and the per-group multiplier ``mult``."""
    dense = isinstance(z, np.ndarray)
    size, fpc, lonely_g, regular, c_group = stage_scale(stage, mult, lonely, stage_no)
    # sum_g c_g [ sum_{u in g} z_u z_u' - n_g zbar_g zbar_g' ]
    c_unit = c_group[stage.group]
    g_ind = sp.csr_matrix((np.ones(stage.n_units), (stage.group, np.arange(stage.n_units))),
                          shape=(stage.n_groups, stage.n_units))
    if dense:
        v = z.T @ (z * c_unit[:, None])
        gsum = np.asarray(g_ind @ z)  # n_groups x m
    else:
        v = np.asarray((z.T @ z.multiply(c_unit[:, None]).tocsr()).todense())
        gsum = np.asarray((g_ind @ z).todense())
    keep = c_group != 0
    if keep.any():
        gs = gsum[keep]
        v -= gs.T @ (gs * (c_group[keep] / size[keep])[:, None])
    if lonely_g.size and lonely == "adjust":
        # a lonely unit is measured from zero, the population mean of linearized scores
        # (as R's "adjust"; for means and ratios the scores sum to zero)
        dev = gsum[lonely_g]  # group sum == the lonely unit's total
        v += dev.T @ (dev * (mult[lonely_g] * fpc[lonely_g])[:, None])
    if lonely_g.size and lonely == "average":
        # each lonely group takes the average contribution of the groups with 2+ units; per
        # estimate, counting only the groups its scores touch (a domain's strata, as R)
        touched = (np.asarray(g_ind @ np.abs(z)) if dense else np.asarray((g_ind @ abs(z)).todense())) > 0
        n_reg = touched[regular].sum(axis=0).astype(float)
        n_lone = touched[lonely_g].sum(axis=0).astype(float)
        f = np.where(n_reg > 0, (n_reg + n_lone) / np.where(n_reg > 0, n_reg, 1.0), 1.0)
        v *= np.sqrt(np.outer(f, f))
    return v


def taylor_vcov(
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    m: int,
    stages: list[Stage],
    lonely: str = "fail",
) -> np.ndarray:
    """Covariance matrix (m x m) of estimates whose scores are the triplets (rows, cols, vals)."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    vals = np.asarray(vals, dtype=float)
    return taylor_vcov_of_totals(lambda stage: unit_totals(stage, rows, cols, vals, m), m, stages, lonely)


def taylor_vcov_of_totals(totals, m: int, stages: list[Stage], lonely: str = "fail") -> np.ndarray:
    """Covariance matrix (m x m) of estimates whose score totals in the units of a stage are
    ``totals(stage)`` ((n_units x m), dense or sparse): :func:`taylor_vcov` for callers that sum
    the scores into units without forming them row by row."""
    v = np.zeros((m, m))
    mult = np.ones(stages[0].n_groups)
    for k, stage in enumerate(stages):
        if not np.any(mult > 0):
            break
        z = totals(stage)
        v += _stage_vcov(z, stage, mult, lonely, k + 1)
        if k + 1 < len(stages):
            # multiplier of the next stage's groups (= this stage's units)
            f = stage.fraction.copy()
            if lonely == "certainty":
                f[stage.lonely_groups()] = 1.0
            mult = (mult * f)[stage.group]
    return v


# ---------------------------------------------------------------------------------------------
# replicate weights
# ---------------------------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="survey-rep")
    return _POOL


def replicate_totals(idx: np.ndarray, val: np.ndarray, n_cells: int, w: np.ndarray, threads: int = 2,
                     squares: int = 0, w0: np.ndarray | None = None):
    """Weighted totals of every (cell x weight column) in one pass over the weights.

    Row ``i`` of the data adds ``val[i, j] * w[i, :]`` to cell ``idx[i, j]`` for each ``j``:
    ``idx``/``val`` are (n x c) arrays (c small: the cells a row belongs to; a zero value for a
    row outside every cell).  ``w`` is the (n x (1 + R)) C-ordered matrix of full-sample and
    replicate weights.  This is a sparse (cells x n) matrix in CSC order times ``w``, which
    reads each row of ``w`` once, sequentially; the rows are split between threads (scipy's
    sparse kernels release the GIL; the calling thread takes one share) without copying anything.

    ``squares`` > 0 (with ``w0``, the full-sample weights as their own contiguous array): also
    return, per cell, ``sum_i w0[i] val[i, j]^2`` over the first ``squares`` columns j (the
    second moments of the SRS variance), computed by the same threads on their rows just
    before their product, while those rows are in cache: ``(totals, second_moments)``.
    """
    n, c = idx.shape
    idx = np.ascontiguousarray(idx)
    val = np.ascontiguousarray(val, dtype=float)

    def block(a: int, b: int):
        ptr = np.arange(0, (b - a) * c + 1, c, dtype=idx.dtype)
        q = None
        if squares:
            ptr_q = ptr if squares == c else np.arange(0, (b - a) * squares + 1, squares, dtype=idx.dtype)
            sq = sp.csc_matrix((np.square(val[a:b, :squares]).ravel(), np.ascontiguousarray(idx[a:b, :squares]).ravel(),
                                ptr_q), shape=(n_cells, b - a))
            q = sq @ w0[a:b]
        s = sp.csc_matrix((val[a:b].ravel(), idx[a:b].ravel(), ptr), shape=(n_cells, b - a))
        return np.asarray(s @ w[a:b]), q

    if threads <= 1 or n < 50_000:
        t, q = block(0, n)
    else:
        cuts = np.linspace(0, n, threads + 1).astype(int)
        # the calling thread takes the first rows itself (one thread fewer to wake and wait for)
        pool = _pool()
        rest = [pool.submit(block, a, b) for a, b in zip(cuts[1:-1], cuts[2:])]
        out = [block(cuts[0], cuts[1])] + [f.result() for f in rest]
        t = np.sum([o[0] for o in out], axis=0)
        q = np.sum([o[1] for o in out], axis=0) if squares else None
    return (t, q) if squares else t


def replicate_vcov(
    full: np.ndarray, reps: np.ndarray, scale: float, rscales: np.ndarray, mse: bool
) -> np.ndarray:
    """Replicate covariance: ``scale * sum_r rscales_r (t_r - c)(t_r - c)'``.

    full: (m,) full-sample estimates; reps: (m x R) replicate estimates; ``c`` is the full-sample
    estimate when ``mse`` is true, else the mean of the replicates.
    """
    centre = full if mse else reps.mean(axis=1)
    d = reps - centre[:, None]
    # a replicate estimate that is undefined (0/0 in an empty cell) contributes nothing
    d = np.where(np.isfinite(d), d, 0.0)
    return scale * (d * rscales[None, :]) @ d.T
