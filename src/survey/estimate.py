"""Estimators: totals, means, ratios, proportions and quantiles, overall and by domain.

Every estimator is computed on the full design.  A domain (``by`` cell, or a ``subset``
design) enters through its indicator, never by dropping rows, so the PSUs that hold no domain
member still count (as R's ``svyby`` and ``subset.survey.design``).

Result columns (one row per by-cell x variable [x level]):

=============  =================================================================================
by columns     the values of the ``by`` variables
variable       the analysis variable (``num/den`` for a ratio)
level          the category (proportions) or the probability (quantiles); NA otherwise
estimate       the point estimate
se             design-based standard error (Taylor linearization or replicates)
ci_low/high    confidence interval at ``level`` (t with ``df``; method per estimator)
df             degrees of freedom used for the interval (design df by default)
cv             coefficient of variation, ``se / |estimate|``
deff           Kish design effect against SRS without replacement (R's ``deff=TRUE``)
n              unweighted number of sample rows in the cell with a non-missing value
n_missing      rows in the cell whose analysis value is missing (handled as a domain)
weighted_n     estimated population size of the cell (sum of weights of those rows)
=============  =================================================================================

``result.attrs["vcov"]`` holds the full covariance matrix of the estimates in row order
(``np.asarray(result.attrs["vcov"])``), which ``survey.contrast`` uses for differences between
domains.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ._columns import as_list, numeric
from .errors import DomainError, EstimationError, SurveyWarning
from .variance import DENSE_LIMIT, replicate_totals, replicate_vcov, taylor_vcov_of_totals

RESULT_COLUMNS = ["variable", "level", "estimate", "se", "ci_low", "ci_high", "df", "cv", "deff",
                  "n", "n_missing", "weighted_n"]
CI_METHODS = ("logit", "xlogit", "wilson", "beta", "asin", "mean")


def _all(a: np.ndarray) -> bool:
    """``a.all()``, at once for a broadcast scalar (``_numeric_block``'s all-valid mask is a
    read-only ``np.broadcast_to(True, (n, k))``: numpy would still visit its n x k elements,
    ~1 ms per check at n = 500,000)."""
    if a.size and not any(a.strides):
        return bool(a.flat[0])
    return bool(a.all())


# ---------------------------------------------------------------------------------------------
# cells (domains)
# ---------------------------------------------------------------------------------------------
def _cells(design, by) -> tuple[np.ndarray, pd.DataFrame, int]:
    """Cell code per row (-1 outside every cell), the cell keys, and rows with a missing by value.

    Cached on the (immutable) design; the arrays returned are shared, never modify them.
    """
    key = ("cells",) + tuple(as_list(by))
    hit = design._cache.get(key)
    if hit is None:  # warns (missing by values) once per design and by
        hit = design._cache[key] = _make_cells(design, by)
    return hit


def _make_cells(design, by) -> tuple[np.ndarray, pd.DataFrame, int]:
    n = design.n
    dom = design._in_domain()
    by = as_list(by)
    if not by:
        cell = np.where(dom, 0, -1).astype(np.int64)
        return cell, pd.DataFrame(index=range(1)), 0
    parts = []
    levels = []
    for b in by:
        c, lev = design.codes(b)
        if (c < 0).all():
            raise DomainError(f"by variable '{b}': all {n} rows are missing")
        parts.append(c)
        levels.append(lev)
    if len(by) == 1 and design.domain is None and len(levels[0]) and int(parts[0].min()) >= 0:
        # one by variable on every row, no missing value: the factor codes (0..L-1, every level
        # present) are the cells, in the same order as the general path below gives them
        return parts[0], _keys(design, by, [levels[0].take(np.arange(len(levels[0])))]), 0
    missing = parts[0] < 0
    for c in parts[1:]:
        missing = missing | (c < 0)
    n_missing_by = int((missing & dom).sum())
    if n_missing_by:
        warnings.warn(
            f"by variable(s) {', '.join(by)}: {n_missing_by} rows in the domain have a missing value "
            "and belong to no cell (they still count in the design)", SurveyWarning, stacklevel=5)
    ok = dom & ~missing
    if not ok.any():
        raise DomainError(f"by variable(s) {', '.join(by)}: no row of the domain has all values")
    # mixed-radix key, then compress to the combinations present in the domain
    key = parts[0] + 1
    for c, lev in zip(parts[1:], levels[1:]):
        key = key * (len(lev) + 1) + (c + 1)
    size = int(np.prod([len(lev) + 1 for lev in levels]))
    if size <= 4 * n + 1024:
        present = np.bincount(key[ok], minlength=size) > 0
        uniq = np.flatnonzero(present)
        remap = np.cumsum(present) - 1
        cell = np.where(ok, remap[key], -1)
    else:
        uniq, inv = np.unique(key[ok], return_inverse=True)
        cell = np.full(n, -1, dtype=np.int64)
        cell[ok] = inv
    # decode keys
    cols = {}
    rem = uniq.copy()
    for b, lev in reversed(list(zip(by, levels))):
        idx = rem % (len(lev) + 1) - 1
        rem = rem // (len(lev) + 1)
        cols[b] = lev.take(idx)
    return cell, _keys(design, by, [cols[b] for b in by]), n_missing_by


def _keys(design, by: list, values: list) -> pd.DataFrame:
    """The cell keys frame: one column per by variable (categoricals keep their categories)."""
    data = design._data if hasattr(design, "_data") else design.data
    keys = pd.DataFrame({b: np.asarray(v) for b, v in zip(by, values)})
    for b in by:
        s = data[b]
        if isinstance(s.dtype, pd.CategoricalDtype):
            keys[b] = pd.Categorical(keys[b], categories=s.cat.categories)
    return keys


class _Plan:
    """What every estimate on one design and one cell coding shares, computed once.

    ``all_in``: every row is in a cell; ``rows``: rows in a cell (None: all); ``pos``: rows in
    a cell with a positive weight (None: all) with their cells ``g_pos`` and weights ``w_pos``,
    the counts ``nn`` and weight sums ``sw`` of those rows per cell; ``idx``: the replicate
    product's cell index arrays per (k, with denominator).
    """

    __slots__ = ("cell", "G", "all_in", "rows", "g_rows", "w_rows", "pos", "g_pos", "w_pos", "nn", "sw",
                 "idx")

    def __init__(self, design, cell: np.ndarray, G: int):
        w = design.w
        self.cell, self.G = cell, G
        inc = cell >= 0
        self.all_in = bool(inc.all())
        self.rows = None if self.all_in else np.flatnonzero(inc)
        self.g_rows = cell if self.all_in else cell[self.rows]
        self.w_rows = w if self.all_in else w[self.rows]
        if self.all_in and design.all_positive:
            self.pos, self.g_pos, self.w_pos = None, cell, w
        else:
            self.pos = np.flatnonzero(inc & (w > 0))
            self.g_pos, self.w_pos = cell[self.pos], w[self.pos]
        self.nn = np.bincount(self.g_pos, minlength=G).astype(float)
        self.sw = np.bincount(self.g_pos, self.w_pos, minlength=G)
        self.idx = {}

    def replicate_index(self, k: int, with_den: bool) -> np.ndarray:
        """(n x k[*2]) cell index of every row's numerator [and denominator] columns."""
        hit = self.idx.get((k, with_den))
        if hit is None:
            cell, n, m = self.cell, self.cell.shape[0], self.G * k
            g = cell if self.all_in else np.where(cell >= 0, cell, 0)
            ncol = 2 * k if with_den else k
            hit = np.empty((n, ncol), dtype=np.int32 if 2 * m < 2**31 else np.int64)
            for v in range(k):
                hit[:, v] = g * k + v
                if with_den:
                    hit[:, k + v] = m + g * k + v
            hit.flags.writeable = False
            self.idx[(k, with_den)] = hit
        return hit


def _plan(design, cell: np.ndarray, G: int) -> _Plan:
    """The cached :class:`_Plan` of ``cell`` on ``design`` (the plan keeps ``cell`` alive, so
    its ``id`` cannot be reused by another array while cached)."""
    key = ("plan", id(cell), G)
    hit = design._cache.get(key)
    if hit is None or hit.cell is not cell:
        hit = design._cache[key] = _Plan(design, cell, G)
    return hit


# ---------------------------------------------------------------------------------------------
# the core: ratios of weighted totals, on any design
# ---------------------------------------------------------------------------------------------
def _ratio_core(design, num: np.ndarray, den: np.ndarray | None, valid: np.ndarray, cell: np.ndarray, G: int,
                replicates: dict | None = None, den_ones: bool = False, moments: dict | None = None):
    """Estimates ``sum w num / sum w den`` per (cell, column), with their full covariance.

    num, den: (n x k) arrays (den None: totals); valid: (n x k) booleans; cell: (n,) codes.
    Returns est (G*k,), vcov (G*k x G*k), t_num and t_den (G*k,) full-sample totals (t_den None
    for totals).  Index j = g*k + v.  For a replicate design, ``replicates["estimates"]`` receives
    the (G*k x R) replicate estimates when a dict is given, and ``moments["squares"]`` the
    (G*k,) sums ``sum w num^2`` (for the SRS variance; rows all valid) when ``moments`` is.
    """
    from .design import ReplicateDesign

    n, k = num.shape
    m = G * k
    plan = _plan(design, cell, G)
    all_valid = _all(valid)
    if not isinstance(design, ReplicateDesign) and all_valid:
        # Taylor, every variable on the same rows: vectorized over the k variables
        r = np.arange(n) if plan.rows is None else plan.rows
        gr, wr = plan.g_rows, plan.w_rows
        nr = num if plan.rows is None else num[r]
        idx = gr if k == 1 else (gr[:, None] * k + np.arange(k)).ravel()
        t_num = np.bincount(idx, (wr[:, None] * nr).ravel(), minlength=m)
        if den is None:
            est, t_den, u = t_num, None, nr
        else:
            dr = den if plan.rows is None else den[r]
            t_den = np.bincount(idx, (wr[:, None] * dr).ravel(), minlength=m)
            with np.errstate(invalid="ignore", divide="ignore"):
                est = t_num / t_den
                u = (nr - est.reshape(G, k)[gr] * dr) / t_den.reshape(G, k)[gr]
        vcov = design._vcov(r if k == 1 else np.repeat(r, k), idx, (wr[:, None] * u).ravel(), m)
        return est, vcov, t_num, t_den
    if plan.all_in and all_valid:  # every row counts: no masked copies
        in_cell = valid
        num0, den0 = num, den
    else:
        in_cell = (cell >= 0)[:, None] & valid
        num0 = np.where(in_cell, num, 0.0)
        den0 = None if den is None else np.where(in_cell, den, 0.0)
    if isinstance(design, ReplicateDesign):
        # means and proportions on rows all valid: the denominators are the cells' sums of the
        # full-sample and replicate weights, kept on the plan from the first such estimate (the
        # same sums, in the same order, as the product with a column of ones), so later calls
        # multiply the weights by the numerators only
        sums_ok = den is not None and den_ones and all_valid
        sums = plan.idx.get("weights") if sums_ok else None
        sq = k if (moments is not None and all_valid) else 0
        if sums is not None:
            tn = replicate_totals(plan.replicate_index(k, False), np.ascontiguousarray(num0, dtype=float), m,
                                  design.repw, squares=sq, w0=design.w)
            if sq:
                tn, moments["squares"] = tn
            t = np.concatenate([tn, np.repeat(sums, k, axis=0)])
        else:
            ncol = 2 * k if den is not None else k
            idx = plan.replicate_index(k, den is not None)
            rows_out = 2 * m if den is not None else m
            # the first estimate on a design also sketches the replicate weights for their rank
            # (the df) in the same pass: the same sketch, summed in the same order, as on its own
            R1 = design.repw.shape[1]
            sketch = design._df is None and n > 8 * R1
            val = np.empty((n, ncol + sketch))
            val[:, :k] = num0
            if den is not None:
                val[:, k:ncol] = den0
            if sketch:
                from .design import _sketch_columns

                s_idx, s_val = _sketch_columns(n, R1)
                idx = np.concatenate([idx, (s_idx + rows_out).astype(idx.dtype)], axis=1)
                val[:, ncol] = s_val[:, 0]
            t = replicate_totals(idx, val, rows_out + (4 * R1 if sketch else 0), design.repw, squares=sq,
                                 w0=design.w)
            if sq:
                t, q = t
                moments["squares"] = q[:m]
            if sketch:
                from .design import _rank_of

                object.__setattr__(design, "_df", float(_rank_of(t[rows_out:, 1:]) - 1))
                t = t[:rows_out]
            if sums_ok:
                plan.idx["weights"] = t[m + np.arange(G) * k].copy()
        if den is None:
            est_all = t
            t_den = None
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                est_all = t[:m] / t[m:]
            t_den = t[m:, 0]
        est = est_all[:, 0]
        if replicates is not None:
            replicates["estimates"] = est_all[:, 1:]
        vcov = replicate_vcov(est, est_all[:, 1:], design.scale, design.rscales, design.mse)
        return est, vcov, t[:m, 0], t_den
    w = design.w
    rows_l, cols_l, vals_l = [], [], []
    est = np.empty(m)
    t_num = np.empty(m)
    t_den = None if den is None else np.empty(m)
    all_rows = np.arange(n)
    for v in range(k):
        mask = in_cell[:, v]
        r = all_rows if mask.all() else np.flatnonzero(mask)
        gv = cell[r]
        wr = w[r]
        nr = num0[r, v]
        tn = np.bincount(gv, weights=wr * nr, minlength=G)
        t_num[v::k] = tn
        if den is None:
            e = tn
            u = nr
        else:
            dr = den0[r, v]
            td = np.bincount(gv, weights=wr * dr, minlength=G)
            with np.errstate(invalid="ignore", divide="ignore"):
                e = tn / td
                u = (nr - e[gv] * dr) / td[gv]
            t_den[v::k] = td
        est[v::k] = e
        rows_l.append(r)
        cols_l.append(gv * k + v)
        vals_l.append(wr * u)
    rows = np.concatenate(rows_l)
    cols = np.concatenate(cols_l)
    vals = np.concatenate(vals_l)
    vcov = design._vcov(rows, cols, vals, m)
    return est, vcov, t_num, t_den


def _onehot_taylor(design, code: np.ndarray, L: int, cell: np.ndarray, G: int):
    """:func:`_ratio_core` for the proportions of the L levels of a factor (``code``, every row
    valid) on a Taylor design without calibration, from the factor codes instead of an n x L
    indicator matrix.  The score of level l in cell g is ``w (1{level l} - p_gl) / W_g``, so its
    total over the rows of a sampling unit is ``(A_ugl - p_gl B_ug) / W_g`` with ``A_ugl`` the
    weight of the unit's rows of cell g at level l and ``B_ug`` the weight of its rows of cell g:
    two weighted counts per stage instead of summing n x L scores.  The totals are the sums
    ``_ratio_core`` forms (the same additions in the same order, zeros left out).  Returns None
    when a stage's (units x estimates) array would be too large to hold dense."""
    m = G * L
    if any(st.n_units * m > DENSE_LIMIT for st in design.stages):
        return None
    plan = _plan(design, cell, G)
    gr, wr = plan.g_rows, plan.w_rows
    cr = code if plan.rows is None else code[plan.rows]
    gl = gr * L + cr
    t_num = np.bincount(gl, wr, minlength=m)
    t_den = np.repeat(np.bincount(gr, wr, minlength=G), L)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = t_num / t_den
    p = est.reshape(G, L)
    W = t_den.reshape(G, L)

    def totals(stage):
        u = stage.unit if plan.rows is None else stage.unit[plan.rows]
        nu = stage.n_units
        A = np.bincount(u * m + gl, wr, minlength=nu * m).reshape(nu, G, L)
        B = np.bincount(u * G + gr, wr, minlength=nu * G).reshape(nu, G, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (A - p[None] * B) / W[None]  # NaN in a cell without weight, as the row scores give
        return z.reshape(nu, m)

    vcov = taylor_vcov_of_totals(totals, m, list(design.stages), design.lonely_psu)
    return est, vcov, t_num, t_den


def _cell_summary(design, y: np.ndarray, x: np.ndarray | None, valid: np.ndarray, cell: np.ndarray, G: int,
                  kind: str | None, t_num: np.ndarray | None = None, t_den: np.ndarray | None = None,
                  binary: bool = False, squares: np.ndarray | None = None):
    """Per (cell, column): unweighted n, n missing, weighted n and the SRS variance for deff.

    ``n`` counts rows with a positive weight and a valid value.  The SRS variance (Kish's deff
    denominator, as R) is ``s2 / n * (1 - n / N)`` for a mean or ratio, ``s2`` the weighted
    variance of the residuals ``(y - R x) / xbar`` with the ``n / (n - 1)`` correction, and
    ``N^2`` times that for a total.  ``kind`` None skips it.  ``t_num``/``t_den``: the weighted
    totals of y and x per (cell, column) when the caller has them (for a mean, ``t_den`` is the
    weighted count).  ``binary``: y holds 0/1 indicators (proportions).  ``squares``: the sums
    ``sum w y^2`` per (cell, column) when the caller has them (the replicate product's threads).

    Without ``x`` (means, totals, proportions) and all values valid, the residual sum of
    squares of a cell is not summed over its rows but derived from its totals: for 0/1 values
    ``S (1 - r)^2 + (W - S) r^2`` (``S`` the weighted count of ones, ``W`` the cell's weight,
    ``r = S / W``), otherwise ``sum w y^2 - S^2 / W`` (one pass over the rows instead of
    three); when that difference cancels (a residual sum of squares below 1e-3 of ``sum w y^2``,
    a cell whose values hardly vary around a large mean) the residuals are summed row by row.
    """
    _, k = valid.shape
    w = design.w
    if _all(valid):
        # vectorized over the k variables (same rows for all); the rows, cells, counts and
        # weight sums come from the design's cached plan of these cells
        plan = _plan(design, cell, G)
        r, gr, wr = plan.pos, plan.g_pos, plan.w_pos
        m = G * k
        idx = gr if k == 1 else (gr[:, None] * k + np.arange(k)).ravel()
        nn = np.repeat(plan.nn, k)
        sw = t_den if (t_den is not None and x is None) else np.repeat(plan.sw, k)
        if kind is None:
            return nn, np.zeros(m), sw, np.full(m, np.nan)
        have = t_num is not None and (binary or (squares is not None and x is None))
        yr = None if have else (y if r is None else y[r])
        sy = t_num if t_num is not None else np.bincount(idx, (wr[:, None] * yr).ravel(), minlength=m)
        xr = None if x is None else (x if r is None else x[r])
        if xr is None:
            sx = sw
        else:
            sx = t_den if t_den is not None else np.bincount(idx, (wr[:, None] * xr).ravel(), minlength=m)
        with np.errstate(invalid="ignore", divide="ignore"):
            ss = None
            if xr is None and binary:
                r_ = sy / sw
                ss = sy * (1 - r_) ** 2 + (sw - sy) * r_ * r_
            elif x is None:
                if squares is not None:
                    q = squares
                else:
                    wy = np.multiply(wr, yr[:, 0]) if k == 1 else wr[:, None] * yr
                    np.multiply(wy, yr if k > 1 else yr[:, 0], out=wy)
                    q = np.bincount(idx, wy.ravel(), minlength=m)
                ss = q - sy * sy / sw
                if not np.all((ss >= 1e-3 * q) | ~(sw > 0)):
                    ss = None  # cancellation: sum the residuals row by row
            if ss is None and yr is None:
                yr = y if r is None else y[r]
            if ss is not None:
                s2 = ss / sw * nn / (nn - 1)
            elif k == 1:  # the common case, in place (the same operations in the same order)
                e = np.take((sy / sx), gr)
                if xr is not None:
                    np.multiply(e, xr[:, 0], out=e)
                np.subtract(yr[:, 0], e, out=e)
                we = np.multiply(wr, e)
                np.multiply(we, e, out=we)
                s2 = np.bincount(idx, we, minlength=m) / sw * nn / (nn - 1)
            else:
                ratio_ = (sy / sx).reshape(G, k)[gr]
                e = yr - ratio_ if xr is None else yr - ratio_ * xr
                s2 = np.bincount(idx, (wr[:, None] * e * e).ravel(), minlength=m) / sw * nn / (nn - 1)
            if kind == "ratio":
                s2 = s2 / (sx / sw) ** 2
            vs = s2 / nn * (1 - nn / sw)
            if kind == "total":
                vs = vs * sw * sw
        return nn, np.zeros(m), sw, vs
    inc = cell >= 0
    g = np.where(inc, cell, 0)
    all_in = bool(inc.all()) and design.all_positive
    out_n, out_miss, out_wn, out_vs = (np.empty(G * k) for _ in range(4))
    for v in range(k):
        okv = valid[:, v]
        fast = all_in and bool(okv.all())
        if fast:  # the common case, without masks
            wv, nn = w, np.bincount(g, minlength=G).astype(float)
            out_miss[v::k] = 0
        else:
            ok = (inc & (w > 0) & okv).astype(float)
            wv = w * ok
            nn = np.bincount(g, ok, minlength=G)
            out_miss[v::k] = np.bincount(g, (inc & ~okv).astype(float), minlength=G)
        sw = t_den[v::k] if (t_den is not None and x is None) else np.bincount(g, wv, minlength=G)
        out_n[v::k] = nn
        out_wn[v::k] = sw
        if kind is None:
            continue
        yv = y[:, v] if fast else np.where(okv, y[:, v], 0.0)
        xv = None if x is None else (x[:, v] if fast else np.where(okv, x[:, v], 0.0))
        sy = t_num[v::k] if t_num is not None else np.bincount(g, wv * yv, minlength=G)
        if xv is None:
            sx = sw
        else:
            sx = t_den[v::k] if t_den is not None else np.bincount(g, wv * xv, minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = sy / sx
            e = yv - r[g] if xv is None else yv - r[g] * xv
            s2 = np.bincount(g, wv * e * e, minlength=G) / sw * nn / (nn - 1)
            if kind == "ratio":
                s2 = s2 / (sx / sw) ** 2
            vs = s2 / nn * (1 - nn / sw)
            if kind == "total":
                vs = vs * sw * sw
        out_vs[v::k] = vs
    return out_n, out_miss, out_wn, out_vs


# ---------------------------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------------------------
def _df(design, df, cell=None, G=1, k=1):
    """Degrees of freedom for intervals: the design df (default), a number, or ``"domain"``.

    ``"domain"``: per cell, PSUs minus strata among the cell's rows with positive weight, the
    df of R's subset designs (used by R's ``svyby`` with ``svyciprop`` or ``svyquantile``).
    """
    if df is None:
        return float(design.df)
    if isinstance(df, str):
        if df != "domain":
            raise EstimationError(f"df must be a number, None or 'domain', not '{df}'")
        if not hasattr(design, "stages") or cell is None:
            return float(design.df)
        st = design.stages[0]
        ok = (cell >= 0) & (design.w > 0)
        psu = st.unit[ok]
        per = pd.DataFrame({"g": cell[ok], "p": psu, "s": st.group[psu]}).groupby("g").agg(
            p=("p", "nunique"), s=("s", "nunique"))
        per = per.reindex(range(G), fill_value=0)
        return np.repeat((per["p"] - per["s"]).to_numpy(dtype=float), k)
    return float(df)


_TQ: dict = {}


def _tq(level: float, df):
    if np.ndim(df) == 0 and np.ndim(level) == 0:  # one quantile, memoized (scipy's ppf costs ~0.1 ms)
        key = (float(level), float(df))
        hit = _TQ.get(key)
        if hit is None:
            if len(_TQ) > 4096:
                _TQ.clear()
            hit = _TQ[key] = _tq_array(level, df)
        return hit
    return _tq_array(level, df)


def _tq_array(level: float, df):
    a = (1 + level) / 2
    df = np.asarray(df, dtype=float)
    out = np.where(np.isfinite(df), stats.t.ppf(a, np.where(np.isfinite(df), df, 1.0)), stats.norm.ppf(a))
    return float(out) if out.ndim == 0 else out


def _wald(est, se, level, df):
    q = _tq(level, df)
    return est - q * se, est + q * se


def proportion_ci(p, se, level: float, df: float, method: str, n: np.ndarray | None = None):
    """Confidence interval for a proportion ``p`` with design SE ``se`` (as R's ``svyciprop``).

    logit / xlogit: symmetric on the logit scale (delta method); asin: on the arcsine-root
    scale; mean: Wald; beta: Korn & Graubard (1998) Clopper-Pearson with the effective sample
    size, adjusted by the ratio of t quantiles on ``n - 1`` and ``df``; wilson: Wilson score with
    the effective sample size.  Quantiles are t on ``df``.
    """
    p = np.asarray(p, dtype=float)
    se = np.asarray(se, dtype=float)
    q = _tq(level, df)
    alpha = 1 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        if method in ("logit", "xlogit"):
            eta = np.log(p / (1 - p))
            h = q * se / (p * (1 - p))
            lo, hi = 1 / (1 + np.exp(-(eta - h))), 1 / (1 + np.exp(-(eta + h)))
        elif method == "asin":
            eta = np.arcsin(np.sqrt(p))
            h = q * se / (2 * np.sqrt(p * (1 - p)))
            lo = np.sin(np.clip(eta - h, 0, np.pi / 2)) ** 2
            hi = np.sin(np.clip(eta + h, 0, np.pi / 2)) ** 2
        elif method == "mean":
            lo, hi = p - q * se, p + q * se
        elif method == "beta":
            n_eff = p * (1 - p) / se**2
            if n is not None:
                nn = np.asarray(n, dtype=float)
                adj = (stats.t.ppf(alpha / 2, nn - 1) / -_tq(1 - alpha, df)) ** 2
                n_eff = n_eff * adj
            x = n_eff * p
            lo = stats.beta.ppf(alpha / 2, x, n_eff - x + 1)
            hi = stats.beta.ppf(1 - alpha / 2, x + 1, n_eff - x)
            lo = np.where(p == 0, 0.0, lo)
            hi = np.where(p == 1, 1.0, hi)
        elif method == "wilson":
            n_eff = p * (1 - p) / se**2
            z2 = q * q
            centre = (p + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
            half = q / (1 + z2 / n_eff) * np.sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff**2))
            lo, hi = centre - half, centre + half
        else:
            raise EstimationError(f"ci_method must be one of {', '.join(CI_METHODS)}, not '{method}'")
    return lo, hi


# ---------------------------------------------------------------------------------------------
# result assembly
# ---------------------------------------------------------------------------------------------
class Covariance:
    """The covariance matrix of a result's estimates, kept in ``result.attrs["vcov"]``.

    A thin wrapper so that pandas can compare and combine ``attrs`` (``np.asarray(cov)`` gives
    the matrix; equality is identity).
    """

    __slots__ = ("matrix",)

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.asarray(matrix, dtype=float)

    def __array__(self, dtype=None, copy=None):
        return self.matrix if dtype is None else self.matrix.astype(dtype)

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __eq__(self, other) -> bool:
        return self is other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Covariance({self.matrix.shape[0]}x{self.matrix.shape[1]})"


def _head_columns(keys: pd.DataFrame, k: int, variables: list, levels) -> dict:
    """The result's leading columns: the by values (each repeated k times), ``variable`` and
    ``level``, as arrays of the dtypes ``pd.DataFrame`` gives them."""
    G = len(keys)
    m = G * k
    rep = keys if k == 1 else keys.loc[keys.index.repeat(k)]
    cols = {c: rep[c].to_numpy() if not isinstance(rep[c].dtype, pd.CategoricalDtype) else rep[c].array
            for c in rep.columns}
    for c in rep.columns:  # extension dtypes (str, categorical...) kept as they are
        if not isinstance(cols[c], np.ndarray) or cols[c].dtype != rep[c].dtype:
            cols[c] = rep[c].array
    cols["variable"] = np.tile(np.asarray(variables, dtype=object), G)
    cols["level"] = (np.tile(np.asarray(levels, dtype=object), G) if levels is not None
                     else np.full(m, None, dtype=object))
    return cols


_TAIL = ("estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n", "n_missing", "weighted_n")


def _cached_head(cache: dict, keys: pd.DataFrame, k: int, variables: list, levels):
    """:func:`_head_columns` resolved to the arrays of a DataFrame (dtypes inferred once), kept
    in a design's cache per cells, variables and levels: ``(names, arrays)`` (names: every
    column of the result, the ``_TAIL`` ones last), or None when the levels cannot be a cache
    key or a by column has a result column's name.  Callers copy the arrays (results never
    share memory)."""
    if any(c in _TAIL or c in ("variable", "level") for c in keys.columns):
        return None  # a by column named like a result column: the general path decides
    try:
        key = ("result_head", id(keys), k, tuple(variables), None if levels is None else tuple(levels))
        hit = cache.get(key)
    except TypeError:  # unhashable levels
        return None
    if hit is None or hit[0] is not keys:
        frame = pd.DataFrame(_head_columns(keys, k, variables, levels), index=pd.RangeIndex(len(keys) * k))
        arrays = []
        for c in frame.columns:
            a = frame[c].array
            arrays.append(frame[c].to_numpy() if isinstance(a, pd.arrays.NumpyExtensionArray) else a)
        names = pd.Index(list(frame.columns) + list(_TAIL))
        hit = cache[key] = (keys, names, arrays)
    return hit[1], hit[2]


def _result(keys: pd.DataFrame, k: int, variables: list, levels, est, vcov, lo, hi, df, deff, n, miss, wn,
            extra_attrs=None, cache: dict | None = None) -> pd.DataFrame:
    """The result frame.  ``cache``: the design's cache, where the leading (by, variable,
    level) columns are kept resolved between calls; the frame is then assembled from its
    column arrays directly (pandas' constructor spends ~0.5 ms inferring and checking them)."""
    G = len(keys)
    m = G * k
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = se / np.abs(est)
    tail = {
        "estimate": np.array(np.broadcast_to(np.asarray(est, dtype=float), (m,))),
        "se": se,
        "ci_low": np.array(np.broadcast_to(np.asarray(lo, dtype=float), (m,))),
        "ci_high": np.array(np.broadcast_to(np.asarray(hi, dtype=float), (m,))),
        "df": np.array(np.broadcast_to(np.asarray(df, dtype=float), (m,))),
        "cv": np.array(cv, dtype=float),
        "deff": np.array(np.broadcast_to(np.asarray(deff, dtype=float), (m,))),
        "n": n.astype(np.int64),
        "n_missing": miss.astype(np.int64),
        "weighted_n": np.array(np.broadcast_to(np.asarray(wn, dtype=float), (m,))),
    }
    out = None
    head = None if cache is None else _cached_head(cache, keys, k, variables, levels)
    if head is not None and hasattr(pd.DataFrame, "_from_arrays"):
        names, arrays = head
        try:
            out = pd.DataFrame._from_arrays([a.copy() for a in arrays] + [tail[c] for c in _TAIL],
                                            columns=names, index=pd.RangeIndex(m), verify_integrity=False)
        except (TypeError, ValueError):  # a pandas without this constructor's signature
            out = None
    if out is None:
        out = pd.DataFrame({**_head_columns(keys, k, variables, levels), **tail}, index=pd.RangeIndex(m))
    out.attrs["vcov"] = Covariance(vcov)
    if extra_attrs:
        out.attrs.update(extra_attrs)
    return out


def _prepare(design, variables, by):
    variables = as_list(variables)
    if not variables:
        raise EstimationError("no analysis variable given")
    cell, keys, n_by_missing = _cells(design, by)
    return variables, cell, keys, n_by_missing


def _numeric_block(design, variables):
    cache = getattr(design, "_cache", None)
    key = ("complete",) + tuple(variables)
    view = None if cache is None else cache.get(("view",) + tuple(variables))
    if view is not None:  # a float64 column without missing values, seen before: no lookups
        return view, np.broadcast_to(True, view.shape)
    data = design._data if hasattr(design, "_data") else design.data
    if len(variables) == 1:
        s = data[variables[0]] if variables[0] in data.columns else None
        if s is not None and s.dtype == np.float64:  # a read-only view, no copy
            y = s.to_numpy()[:, None]
            view = y
        else:
            y = numeric(data, variables[0])[:, None]
    else:
        y = np.column_stack([numeric(data, v) for v in variables])
    # whether the columns have no missing value is a fact of the design's (unchangeable) data,
    # kept in its cache; all valid: a read-only broadcast of True (no n x k array)
    complete = None if cache is None else cache.get(key)
    if complete is None:
        nan = np.isnan(y)
        complete = not nan.any()
        if cache is not None:
            cache[key] = complete
        if not complete:
            return y, ~nan
    if complete and view is not None and cache is not None:
        # the view of the design's own (unchangeable) column, kept: holds no memory of its own
        cache[("view",) + tuple(variables)] = view
    return y, (np.broadcast_to(True, y.shape) if complete else ~np.isnan(y))


def _check_na(variables, valid, cell, na_rm):
    if not na_rm and not _all(valid):
        bad = (~valid) & (cell >= 0)[:, None]
        if bad.any():
            j = int(np.flatnonzero(bad.any(axis=0))[0])
            raise EstimationError(
                f"variable '{variables[j]}': {int(bad[:, j].sum())} rows in the domain are missing; "
                "use na_rm=True to treat them as a domain")


def _ratio_like(design, variables, y, x, valid, cell, keys, kind, level, df, na_rm, n_by_missing, labels=None):
    _check_na(variables, valid, cell, na_rm)
    G, k = len(keys), y.shape[1]
    # means: a read-only broadcast of 1.0 (no n x k allocation; the values are the same)
    den = None if kind == "total" else (np.broadcast_to(1.0, y.shape) if x is None else x)
    moments: dict | None = {} if x is None else None
    est, vcov, t_num, t_den = _ratio_core(design, y, den, valid, cell, G, den_ones=kind == "mean", moments=moments)
    d = _df(design, df, cell, G, k)
    lo, hi = _wald(est, np.sqrt(np.clip(np.diag(vcov), 0, None)), level, d)
    n, miss, wn, vsrs = _cell_summary(design, y, x, valid, cell, G, kind, t_num, t_den,
                                      squares=(moments or {}).get("squares"))
    with np.errstate(invalid="ignore", divide="ignore"):
        deff = np.diag(vcov) / vsrs
    empty = n == 0
    if empty.any() and kind != "total":
        est = np.where(empty, np.nan, est)
    return _result(keys, k, labels or variables, None, est, vcov, lo, hi, d, deff, n, miss, wn,
                   {"estimator": kind, "n_by_missing": n_by_missing}, cache=getattr(design, "_cache", None))


def mean(design, variables, by=None, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Means (as R ``svymean``; with ``by``, ``svyby(..., svymean, covmat=TRUE)``)."""
    variables, cell, keys, nbm = _prepare(design, variables, by)
    y, valid = _numeric_block(design, variables)
    return _ratio_like(design, variables, y, None, valid, cell, keys, "mean", level, df, na_rm, nbm)


def total(design, variables, by=None, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Totals (as R ``svytotal``)."""
    variables, cell, keys, nbm = _prepare(design, variables, by)
    y, valid = _numeric_block(design, variables)
    return _ratio_like(design, variables, y, None, valid, cell, keys, "total", level, df, na_rm, nbm)


def ratio(design, numerator, denominator, by=None, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Ratios of totals ``sum w y / sum w x`` (as R ``svyratio``); lists are paired in order."""
    nums, dens = as_list(numerator), as_list(denominator)
    if len(dens) == 1 and len(nums) > 1:
        dens = dens * len(nums)
    if len(nums) != len(dens):
        raise EstimationError(f"{len(nums)} numerators for {len(dens)} denominators")
    _, cell, keys, nbm = _prepare(design, nums, by)
    y, vy = _numeric_block(design, nums)
    x, vx = _numeric_block(design, dens)
    valid = vy & vx
    labels = [f"{a}/{b}" for a, b in zip(nums, dens)]
    return _ratio_like(design, labels, y, x, valid, cell, keys, "ratio", level, df, na_rm, nbm, labels)


def proportion(design, variable, by=None, level=0.95, df=None, ci_method="logit", na_rm=True) -> pd.DataFrame:
    """Proportion of each level of a categorical variable (or a 0/1 / boolean variable).

    The SE is that of the domain mean of the level indicator; the interval uses ``ci_method``
    (logit, xlogit, wilson, beta, asin, mean), as R's ``svyciprop``.
    """
    if ci_method not in CI_METHODS:
        raise EstimationError(f"ci_method must be one of {', '.join(CI_METHODS)}, not '{ci_method}'")
    if isinstance(variable, (list, tuple)):
        if len(variable) != 1:
            raise EstimationError("proportion() takes one variable")
        variable = variable[0]
    cell, keys, nbm = _cells(design, by)
    c, lev = design.codes(variable, "analysis variable")
    valid1 = c >= 0
    if not valid1.any():
        raise EstimationError(f"variable '{variable}': all {len(c)} rows are missing")
    L = len(lev)
    G = len(keys)
    reps: dict = {}
    fast = None
    if valid1.all() and hasattr(design, "stages") and not design.calibrations:
        fast = _onehot_taylor(design, c, L, cell, G)  # no n x L indicator matrix
    if fast is not None:
        est, vcov, t_num, _ = fast
        ind, valid = None, np.broadcast_to(True, (design.n, L))
    else:
        ind = np.zeros((design.n, L))
        ind[valid1, c[valid1]] = 1.0
        valid = np.repeat(valid1[:, None], L, axis=1)
        _check_na([variable] * L, valid, cell, na_rm)
        est, vcov, t_num, _ = _ratio_core(design, ind, np.ones_like(ind), valid, cell, G, reps, den_ones=True)
    d = _df(design, df, cell, G, L)
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    n, miss, wn, vsrs = _cell_summary(design, ind, None, valid, cell, G, "mean", t_num, binary=True)
    if ci_method == "logit" and "estimates" in reps:
        # replicate design: the variance of the logit itself from the replicates (as R's
        # svyciprop, which refits the logit on every replicate); xlogit keeps the delta method
        with np.errstate(invalid="ignore", divide="ignore"):
            eta, eta_r = np.log(est / (1 - est)), np.log(reps["estimates"] / (1 - reps["estimates"]))
        se_eta = np.sqrt(np.diag(replicate_vcov(eta, eta_r, design.scale, design.rscales, design.mse)))
        h = _tq(level, d) * se_eta
        lo, hi = 1 / (1 + np.exp(-(eta - h))), 1 / (1 + np.exp(-(eta + h)))
    else:
        lo, hi = proportion_ci(est, se, level, d, ci_method, n=np.repeat(_plan(design, cell, G).nn, L))
    with np.errstate(invalid="ignore", divide="ignore"):
        deff = np.diag(vcov) / vsrs
    levels = [x.item() if hasattr(x, "item") else x for x in lev]
    return _result(keys, L, [variable] * L, levels, est, vcov, lo, hi, d, deff, n, miss, wn,
                   {"estimator": "proportion", "ci_method": ci_method, "n_by_missing": nbm},
                   cache=getattr(design, "_cache", None))


# ---------------------------------------------------------------------------------------------
# quantiles (Woodruff)
# ---------------------------------------------------------------------------------------------
def _weighted_quantile(y_sorted, cw, total, p):
    """qrule 'math': the smallest y whose weighted CDF reaches p."""
    target = p * total
    i = np.searchsorted(cw, target * (1 - 1e-12), side="left")
    i = np.clip(i, 0, len(y_sorted) - 1)
    return y_sorted[i]


def quantile(design, variable, q=0.5, by=None, level=0.95, df=None, na_rm=True) -> pd.DataFrame:
    """Quantiles with Woodruff confidence intervals (as R ``svyquantile``, interval.type
    'mean', qrule 'math').

    The quantile is the smallest value whose weighted CDF reaches ``q``.  The interval is the
    Woodruff interval: the CI of the estimated CDF at the estimate, ``F(qhat) -/+ t * se``, with
    ``F(qhat)`` and its design SE those of the domain mean of ``1{y <= qhat}``, mapped back
    through the weighted quantile function; the reported SE is the interval width / ``2 t``.
    """
    if isinstance(variable, (list, tuple)):
        if len(variable) != 1:
            raise EstimationError("quantile() takes one variable")
        variable = variable[0]
    probs = np.atleast_1d(np.asarray(q, dtype=float))
    if np.any((probs < 0) | (probs > 1)):
        raise EstimationError(f"quantile probabilities must be in [0, 1], got {probs.tolist()}")
    cell, keys, nbm = _cells(design, by)
    y = numeric(design.data, variable)
    valid1 = ~np.isnan(y)
    _check_na([variable], valid1[:, None], cell, na_rm)
    G, k = len(keys), len(probs)
    w = design.w
    qhat = np.full((G, k), np.nan)
    sorted_by_cell = []
    for g in range(G):
        r = np.flatnonzero((cell == g) & valid1 & (w > 0))
        order = np.argsort(y[r], kind="stable")
        ys, ws = y[r][order], w[r][order]
        cw = np.cumsum(ws)
        tot = cw[-1] if len(cw) else np.nan
        sorted_by_cell.append((ys, cw, tot))
        if len(ys):
            for j, p in enumerate(probs):
                qhat[g, j] = _weighted_quantile(ys, cw, tot, p)
    # indicator 1{y <= qhat(cell, p)} for every p, as k analysis columns
    gi = np.where(cell >= 0, cell, 0)
    ind = (y[:, None] <= qhat[gi, :]).astype(float)
    valid = np.repeat(valid1[:, None], k, axis=1)
    est_f, vcov_f, _, _ = _ratio_core(design, ind, np.ones_like(ind), valid, cell, G, den_ones=True)
    se_f = np.sqrt(np.clip(np.diag(vcov_f), 0, None))
    d = _df(design, df, cell, G, k)
    tq = _tq(level, d)
    p_lo = np.clip(est_f - tq * se_f, 0, 1)
    p_hi = np.clip(est_f + tq * se_f, 0, 1)
    lo = np.empty(G * k)
    hi = np.empty(G * k)
    for g in range(G):
        ys, cw, tot = sorted_by_cell[g]
        for j in range(k):
            i = g * k + j
            if len(ys):
                lo[i] = _weighted_quantile(ys, cw, tot, p_lo[i])
                hi[i] = _weighted_quantile(ys, cw, tot, p_hi[i])
            else:
                lo[i] = hi[i] = np.nan
    se = (hi - lo) / (2 * tq)
    vcov = np.diag(se**2)
    n, miss, wn, _ = _cell_summary(design, ind, None, valid, cell, G, None)
    est = qhat.ravel()
    return _result(keys, k, [variable] * k, list(probs), est, vcov, lo, hi, d, np.full(G * k, np.nan), n, miss,
                   wn, {"estimator": "quantile", "n_by_missing": nbm})
