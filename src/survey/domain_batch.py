"""All domain x estimate variances of many ratio families from one pass over the weights.

The indicator table needs, for every domain variable, the estimate and SE of dozens of ratios
``sum w y / sum w x`` (means are ratios with ``x = 1``) in every cell.  Estimating them one
family at a time (``design.ratio(...)``) rebuilds per-row scores and a full covariance matrix for
each family; here the work is shared:

1. the row-level quantities every family needs (``w y``, ``w x``, the second moments of the SRS
   variance, case indicators) are registered once per design as columns of one matrix ``X``,
   identical columns kept once (a 0/1 column equals its square);
2. per domain variable and sampling stage, the rows are summed into (sampling unit x cell)
   pairs with one sparse product ``A @ X``; the cell totals are sums of pair totals;
3. the linearized score of ratio ``R_g = Y_g / X_g`` is ``w (y - R_g x) / X_g``, linear in the
   data, so its unit totals are ``(T_y - R_g T_x) / X_g`` computed on the pair totals, never on
   the rows;
4. only the variances are formed (the diagonal of the stage formula of
   :mod:`survey.variance`): per stage ``sum_u c_u z_u^2 - sum_h c_h / n_h Z_h^2``, with the
   lonely-PSU policies ``adjust`` and ``average`` and the later-stage multipliers as in
   :func:`survey.variance.taylor_vcov`.

The results are those of ``design.mean``/``design.ratio`` (to rounding; a test checks it on
several designs), for Taylor designs without calibration.  Replicate and calibrated designs go
through the general estimators.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import SurveyWarning
from .estimate import _cells, _tq
from .variance import stage_scale


def supported(design) -> bool:
    """Taylor design without calibration (the batch path applies)."""
    from .design import ReplicateDesign

    return not isinstance(design, ReplicateDesign) and not getattr(design, "calibrations", ())


def domain_df(design, by) -> np.ndarray:
    """Per cell of ``by`` (in the order of the estimators' cells): the degrees of freedom of the
    domain's own subset design, as R's ``svyby(..., svyciprop)`` uses them (each domain's
    estimate is computed on ``subset(design, domain)``, whose ``degf`` is taken).

    Taylor designs: ``design.subset(cell).df`` (PSUs minus strata among the domain's rows with a
    positive weight).  Replicate designs: as R, which recomputes ``degf`` for a subset of a
    replicate design: the rank of the domain's rows of the replicate weights, minus 1.  No
    ``by``: the design's df."""
    from .design import ReplicateDesign, _replicate_rank

    cell, keys, _ = _cells(design, by)
    if not by:
        return np.array([float(design.df)])
    key = ("domain_df",) + (tuple(by) if isinstance(by, (list, tuple)) else (by,))
    hit = design._cache.get(key)
    if hit is None:
        out = np.empty(len(keys))
        for g in range(len(keys)):
            mask = cell == g
            if isinstance(design, ReplicateDesign):
                rows = mask & (design.w > 0)
                out[g] = float(_replicate_rank(design.repw[rows]) - 1) if rows.any() else 0.0
            else:
                out[g] = design.subset(mask).df
        hit = design._cache[key] = out
    return hit


class Columns:
    """Row vectors registered once; a vector equal to one already registered gets its index."""

    def __init__(self, n: int):
        self.n = n
        self.vecs: list[np.ndarray] = []
        self._seen: dict = {}

    def add(self, v: np.ndarray) -> int:
        v = np.ascontiguousarray(v, dtype=float)
        key = (float(v.sum()), int(np.count_nonzero(v)))
        for j in self._seen.get(key, ()):
            if np.array_equal(self.vecs[j], v):
                return j
        self._seen.setdefault(key, []).append(len(self.vecs))
        self.vecs.append(v)
        return len(self.vecs) - 1

    def matrix(self) -> np.ndarray:
        return np.column_stack(self.vecs) if self.vecs else np.zeros((self.n, 0))


class _StagePairs:
    """Rows summed into (stage unit x cell) pairs."""

    __slots__ = ("A", "P", "row_pair", "pc", "pu", "cell_of_pairs", "H", "hg_group", "cell_of_hg")

    def __init__(self, stage, rows, cell_r, G, n):
        key = stage.unit[rows].astype(np.int64) * G + cell_r
        pairs, inv = np.unique(key, return_inverse=True)
        P = self.P = len(pairs)
        self.A = sp.csr_matrix((np.ones(len(rows)), (inv, rows)), shape=(P, n))
        self.row_pair = np.full(n, -1, dtype=np.int64)  # per row, its pair (-1 outside every cell)
        self.row_pair[rows] = inv
        self.pu = pairs // G
        self.pc = pairs % G
        self.cell_of_pairs = sp.csr_matrix((np.ones(P), (self.pc, np.arange(P))), shape=(G, P))
        hkey = stage.group[self.pu].astype(np.int64) * G + self.pc
        hg, hinv = np.unique(hkey, return_inverse=True)
        self.H = sp.csr_matrix((np.ones(P), (hinv, np.arange(P))), shape=(len(hg), P))
        self.hg_group = hg // G
        self.cell_of_hg = sp.csr_matrix((np.ones(len(hg)), (hg % G, np.arange(len(hg)))), shape=(G, len(hg)))


class DomainBatch:
    """The cells of one domain variable (``by``) on a design, with its stage pair structures."""

    def __init__(self, design, by):
        self.design = design
        self.by = by
        self.cell, self.keys, _ = _cells(design, by)
        self.G = len(self.keys)
        self.rows = np.flatnonzero(self.cell >= 0)
        cell_r = self.cell[self.rows]
        self.stages = [_StagePairs(st, self.rows, cell_r, self.G, design.n) for st in design.stages]

    @classmethod
    def of(cls, design, by) -> DomainBatch:
        key = ("domain_batch", by)
        hit = design._cache.get(key)
        if hit is None:
            hit = design._cache[key] = cls(design, by)
        return hit

    def pair_totals(self, X: np.ndarray) -> list[np.ndarray]:
        """Per stage, the (pairs x columns) totals of the row matrix X."""
        return [s.A @ X for s in self.stages]

    def pair_totals_of_rows(self, rows: np.ndarray, X: np.ndarray) -> list[np.ndarray]:
        """Per stage, the (pairs x columns) totals of ``X``, whose row ``i`` belongs to data row
        ``rows[i]`` (the other data rows are zero)."""
        inside = self.cell[rows] >= 0
        r, Xr = (rows, X) if inside.all() else (rows[inside], X[inside])
        out = []
        for s in self.stages:
            M = sp.csr_matrix((np.ones(len(r)), (s.row_pair[r], np.arange(len(r)))), shape=(s.P, len(r)))
            out.append(M @ Xr)
        return out

    def cell_totals(self, T1: np.ndarray) -> np.ndarray:
        return self.stages[0].cell_of_pairs @ T1

    # ----- variance --------------------------------------------------------------------------
    def variance(self, Z_of_stage) -> np.ndarray:
        """Variances (G x J) of estimates whose stage-s unit totals are ``Z_of_stage(s)``
        ((pairs x J) arrays, one column per estimate, each pair holding its own cell's score)."""
        d = self.design
        stages = d.stages
        lonely = d.lonely_psu
        v = None
        mult = np.ones(stages[0].n_groups)
        for s, st in enumerate(stages):
            if not np.any(mult > 0):
                break
            vs = self._stage_var(s, st, Z_of_stage(s), mult, lonely)
            v = vs if v is None else v + vs
            if s + 1 < len(stages):
                f = st.fraction.copy()
                if lonely == "certainty":
                    f[st.lonely_groups()] = 1.0
                mult = (mult * f)[st.group]
        return v

    def effective_df(self, Z: np.ndarray, method: str = "satterthwaite") -> np.ndarray:
        """Effective degrees of freedom (G x J) of the first-stage variance estimate of
        estimates whose PSU totals are ``Z`` (Satterthwaite):

            df = (sum_h v_h)^2 / sum_h v_h^2 / k_h

        ``v_h``: stratum h's contribution to the first-stage variance of the cell estimate
        (``c_h sum_i (z_hi - zbar_h)^2``, the PSUs of the stratum without a row in the cell
        counting with total 0); ``k_h = n_h - 1``, the df of a stratum of ``n_h`` PSUs.  Each
        ``v_h`` is taken as a scaled chi-square on ``k_h`` df (normal PSU totals), and the sum
        as one chi-square with the same mean and variance.  Lonely PSUs, as the variance treats
        them: ``adjust`` measures the lonely PSU's total from 0, a term with 1 df; ``average``
        multiplies the whole variance by a constant, which leaves the df unchanged; ``remove``,
        ``certainty`` (and ``fail``, which never gets here) give them no term.  A stratum
        counts as PSUs minus 1, so the result is at most the design df (PSUs minus strata);
        it is clipped to ``design.df`` (the lonely ``adjust`` terms could exceed it).  Low when
        a few strata carry the variance (the victims of a rare crime in a cell); NaN where the
        variance is 0.

        ``method="heavy_tailed"``: in strata of 3 or more PSUs, each ``v_h^2 / k_h`` (the
        normal-theory half-variance of ``v_h``) is replaced by the larger of it and half the
        fourth-moment estimate of ``Var(v_h)`` from the spread of the PSUs' squared deviations,
        ``c_h^2 n_h / (n_h - 1) sum_i (d_hi^2 - mean_i d_hi^2)^2``.  A stratum then never counts
        for more than its ``n_h - 1`` df, and for fewer when its PSU totals are heavier-tailed
        than normal (victimization counts are); paired strata (NCVS) are unchanged."""
        d = self.design
        st = d.stages[0]
        p = self.stages[0]
        size, fpc, lonely_g, regular, c_group = stage_scale(st, np.ones(st.n_groups), "remove", 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s1, s2 = p.H @ Z, p.H @ (Z * Z)
            hg = p.hg_group
            nh = size[hg][:, None]
            vh = c_group[hg][:, None] * (s2 - s1 * s1 / nh)  # 0 on lonely strata (c = 0)
            kh = np.where(regular[hg], size[hg] - 1.0, 1.0)[:, None]
            if lonely_g.size and d.lonely_psu == "adjust":
                lone = np.zeros(st.n_groups, dtype=bool)
                lone[lonely_g] = True
                vh = np.where(lone[hg][:, None], fpc[hg][:, None] * s1 * s1, vh)
            vh = np.clip(vh, 0, None)
            v = np.asarray(p.cell_of_hg @ vh)
            half = vh * vh / kh
            if method == "heavy_tailed":
                s3, s4 = p.H @ (Z * Z * Z), p.H @ (Z * Z * Z * Z)
                m = s1 / nh
                d2 = s2 - nh * m * m
                d4 = s4 - 4 * m * s3 + 6 * m * m * s2 - 3 * nh * m ** 4
                ch = c_group[hg][:, None]
                spread = ch * ch * nh / np.where(nh > 1, nh - 1, 1) * np.clip(d4 - d2 * d2 / nh, 0, None)
                big = (nh >= 3) & regular[hg][:, None]
                half = np.where(big, np.maximum(half, spread / 2), half)
            elif method != "satterthwaite":
                raise ValueError(f"effective df method must be 'satterthwaite' or 'heavy_tailed', not {method!r}")
            den = np.asarray(p.cell_of_hg @ half)
            dfe = np.where(den > 0, v * v / den, np.nan)
        return np.minimum(dfe, float(d.df))

    def _stage_var(self, s, st, Z, mult, lonely) -> np.ndarray:
        p = self.stages[s]
        size, fpc, lonely_g, regular, c_group = stage_scale(st, mult, lonely, s + 1)
        cu = c_group[st.group[p.pu]]
        with np.errstate(invalid="ignore"):
            v = p.cell_of_pairs @ (cu[:, None] * Z * Z)
            gs = p.H @ Z
            coef = c_group / size
            v -= p.cell_of_hg @ (coef[p.hg_group][:, None] * gs * gs)
            if lonely_g.size and lonely == "adjust":
                lc = np.zeros(st.n_groups)
                lc[lonely_g] = mult[lonely_g] * fpc[lonely_g]
                v += p.cell_of_hg @ (lc[p.hg_group][:, None] * gs * gs)
            if lonely_g.size and lonely == "average":
                touched = (p.H @ np.abs(Z)) > 0
                is_lonely = np.zeros(st.n_groups, dtype=bool)
                is_lonely[lonely_g] = True
                n_reg = p.cell_of_hg @ (touched & regular[p.hg_group][:, None]).astype(float)
                n_lone = p.cell_of_hg @ (touched & is_lonely[p.hg_group][:, None]).astype(float)
                f = np.where(n_reg > 0, (n_reg + n_lone) / np.where(n_reg > 0, n_reg, 1.0), 1.0)
                v = v * f
        return np.asarray(v)


# ---------------------------------------------------------------------------------------------
# families of ratios
# ---------------------------------------------------------------------------------------------
class Ratios:
    """A family of k ratios ``num_j / den_j`` (``den_j`` None: the mean of ``num_j``), estimated
    in every cell.  ``cases``: columns whose positive rows are the sample cases (``n_cases``);
    ``base``: "cell" (n, weighted_n of the cell, as ``design.mean``) or "den" (the rows with a
    positive denominator: victims, victimizations)."""

    def __init__(self, name, items, num, den, cases, base="cell", effective_df=False):
        self.name, self.items, self.num, self.den, self.cases, self.base = name, items, num, den, cases, base
        self.effective_df = effective_df  # also give each estimate's effective df (df_effective)


def _raw(design, col) -> np.ndarray:
    return design.data[col].to_numpy(dtype=float, na_value=np.nan)


class FamilyEstimator:
    """Register the columns of many ratio families on one design, then estimate them by domain."""

    def __init__(self, design, families: list[Ratios]):
        self.design = design
        self.families = families
        n = design.n
        w = design.w
        self.cols = Columns(n)
        pos_w = (w > 0).astype(float)
        raw: dict[str, np.ndarray] = {}

        def get(c):
            if c not in raw:
                raw[c] = _raw(design, c)
            return raw[c]

        sym: dict[tuple, int] = {}

        def reg(key, *factors):
            """Register the product of ``factors`` under the symbolic ``key`` (built once)."""
            j = sym.get(key)
            if j is None:
                v = factors[0]
                for f in factors[1:]:
                    v = v * f
                j = sym[key] = self.cols.add(v)
            return j

        self.idx = []
        for fam in families:
            ids = []
            for a, b, c in zip(fam.num, fam.den if fam.den is not None else [None] * len(fam.num), fam.cases):
                ya = get(a)
                xb = get(b) if b is not None else None
                valid = ~np.isnan(ya) if xb is None else ~np.isnan(ya) & ~np.isnan(xb)
                allv = bool(valid.all())
                vkey = "1" if allv else ("valid", a, b)
                vv = np.ones(n) if allv else valid.astype(float)
                y = ya if allv else np.where(valid, ya, 0.0)
                x = vv if xb is None else (xb if allv else np.where(valid, xb, 0.0))
                ky, kx = (a, vkey), ((b if b is not None else "1"), vkey)
                e = dict(
                    y=reg(("w",) + ky, w, y), x=reg(("w",) + kx, w, x),
                    yy=reg(("w2",) + ky + ky, w, y, y), xx=reg(("w2",) + kx + kx, w, x, x),
                    xy=reg(("w2",) + tuple(sorted([ky, kx], key=str)), w, x, y),
                    nn=reg(("n", vkey), pos_w, vv), sw=reg(("w", "1", vkey), w, vv),
                    cases=reg(("cases", c), pos_w, np.nan_to_num(get(c), nan=0.0) > 0),
                )
                if fam.base == "den":
                    pos = np.nan_to_num(xb, nan=0.0) > 0
                    e["bn"] = reg(("pos_n", b), pos_w, pos)
                    e["bw"] = reg(("pos_w", b), w, pos_w, pos)
                ids.append(e)
            self.idx.append(ids)
        # columns that are zero outside a few rows (victims: all but the weights and counts of
        # respondents) are kept for those rows only; the others over every row
        vecs = self.cols.vecs
        nnz = np.array([np.count_nonzero(v) for v in vecs])
        self.dense_idx = np.flatnonzero(nnz > 0.3 * n)
        self.sparse_idx = np.flatnonzero(nnz <= 0.3 * n)
        if self.sparse_idx.size:
            nz = np.zeros(n, dtype=bool)
            for j in self.sparse_idx:
                nz |= vecs[j] != 0
            self.rows_sparse = np.flatnonzero(nz)
            self.X_sparse = np.column_stack([vecs[j][self.rows_sparse] for j in self.sparse_idx])
        else:
            self.rows_sparse = np.zeros(0, dtype=np.int64)
            self.X_sparse = np.zeros((0, 0))
        self.X_dense = np.column_stack([vecs[j] for j in self.dense_idx]) if self.dense_idx.size else None
        self.m = len(vecs)
        self.cols.vecs = []  # the matrices hold them

    def _pair_totals(self, db: DomainBatch) -> list[np.ndarray]:
        dense = db.pair_totals(self.X_dense) if self.X_dense is not None else None
        sparse = db.pair_totals_of_rows(self.rows_sparse, self.X_sparse) if self.sparse_idx.size else None
        out = []
        for s, st in enumerate(db.stages):
            T = np.empty((st.P, self.m))
            if dense is not None:
                T[:, self.dense_idx] = dense[s]
            if sparse is not None:
                T[:, self.sparse_idx] = sparse[s]
            out.append(T)
        return out

    def estimate(self, by, level: float = 0.95) -> list[pd.DataFrame]:
        """One frame per family: the ``by`` key column(s), variable, estimate, se, ci_low,
        ci_high, df, cv, deff, n, weighted_n, n_cases (rows in cell order x items)."""
        design = self.design
        db = DomainBatch.of(design, by)
        T = self._pair_totals(db)
        C = db.cell_totals(T[0])
        df = float(design.df)
        q = _tq(level, df)
        out = []
        for fam, ids in zip(self.families, self.idx):
            def col(name, ids=ids):
                return np.array([e[name] for e in ids])

            a, b = col("y"), col("x")
            ty, tx = C[:, a], C[:, b]
            nn, sw = C[:, col("nn")], C[:, col("sw")]
            with np.errstate(invalid="ignore", divide="ignore"):
                R = ty / tx
                # a cell without a valid row has no scores at all (variance 0, as the general
                # estimators, which leave such rows out); a valid cell with a zero denominator
                # total has undefined scores (NaN)
                none = nn == 0

                def Z(s, a=a, b=b, R=R, tx=tx, none=none):
                    pc = db.stages[s].pc
                    z = (T[s][:, a] - R[pc] * T[s][:, b]) / tx[pc]
                    return np.where(none[pc], 0.0, z) if none.any() else z

                var = db.variance(Z)
                dfe = (db.effective_df(Z(0), "satterthwaite" if fam.effective_df is True else fam.effective_df)
                       if fam.effective_df else None)
                s2 = (C[:, col("yy")] - 2 * R * C[:, col("xy")] + R * R * C[:, col("xx")]) / sw * nn / (nn - 1)
                s2 = s2 / (tx / sw) ** 2
                vsrs = s2 / nn * (1 - nn / sw)
                deff = var / vsrs
            se = np.sqrt(np.clip(var, 0, None))
            est = np.where(nn == 0, np.nan, R)
            if fam.base == "den":
                n_out, wn = C[:, col("bn")], C[:, col("bw")]
            else:
                n_out, wn = nn, sw
            k = len(ids)
            frame = db.keys.loc[db.keys.index.repeat(k)].reset_index(drop=True) if by else pd.DataFrame(
                index=range(k))
            frame["variable"] = np.tile(np.asarray(fam.items, dtype=object), db.G)
            frame["estimate"] = est.ravel()
            frame["se"] = se.ravel()
            frame["ci_low"] = (est - q * se).ravel()
            frame["ci_high"] = (est + q * se).ravel()
            frame["df"] = df
            with np.errstate(invalid="ignore", divide="ignore"):
                frame["cv"] = (se / np.abs(est)).ravel()
            frame["deff"] = deff.ravel()
            frame["n"] = np.rint(n_out.ravel()).astype(np.int64)
            frame["weighted_n"] = wn.ravel()
            frame["n_cases"] = np.rint(C[:, col("cases")].ravel()).astype(np.int64)
            if dfe is not None:
                frame["df_effective"] = dfe.ravel()
            out.append(frame)
        return out


# ---------------------------------------------------------------------------------------------
# Gini coefficients
# ---------------------------------------------------------------------------------------------
def _missing_by_message(by, n_missing: int) -> str:
    return (f"by variable(s) {by}: {n_missing} rows in the domain have a missing value "
            "and belong to no cell (they still count in the design)")


def _gini_cells(G, V, vals, cr, vi, wr, yr, zero_w=None):
    """Per cell: the Gini, its linearized values ``u`` for the given rows, and for rows of value
    0 (``u0``), the weight sum N and the count total Y.  ``zero_w``: weight of the rows of value 0
    not among the given rows (the non-victims, left out of the row arrays), per cell."""
    wg = np.bincount(cr * V + vi, weights=wr, minlength=G * V).reshape(G, V)
    if zero_w is not None:
        wg[:, 0] += zero_w
    c = np.cumsum(wg, axis=1)
    N = c[:, -1] if V else np.zeros(G)
    Y = np.bincount(cr, weights=wr * yr, minlength=G)
    # per cell, the gap to the next value present in the cell (0 after the largest), so that the
    # sums run over the cell's own values as in lorenz._gini_scores
    has = wg > 0
    idx = np.where(has, np.arange(V), V)
    nxt = np.minimum.accumulate(np.concatenate([idx[:, 1:], np.full((G, 1), V)], axis=1)[:, ::-1], axis=1)[:, ::-1]
    delta = np.where(has, vals[None, :] - np.append(vals, 0.0)[nxt], 0.0)
    single = has.sum(axis=1) == 1  # one distinct value: no inequality, G = 0 exactly
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (c * c * delta).sum(axis=1)
        g = np.where(single, 0.0, a / (N * Y) - 1.0)
        g = np.where(Y > 0, g, np.nan)
        tail = np.cumsum((2 * c * delta)[:, ::-1], axis=1)[:, ::-1]
        good = (Y > 0) & ~single
        u = np.where(good[cr], (tail[cr, vi] - (g[cr] + 1.0) * (Y[cr] + N[cr] * yr)) / (N[cr] * Y[cr]), 0.0)
        u0 = np.where(good, (tail[:, 0] - (g + 1.0) * Y) / (N * Y), 0.0) if V else np.zeros(G)
    return g, u, u0, N


class GiniBatch:
    """Gini coefficients of several count variables, each among its own rows ``keep`` (as
    :func:`survey.lorenz.gini` on ``design.subset(keep)``), in every cell of a domain variable.

    items: (y, keep, df) per variable, ``df`` that of the subset design.  A variable of
    non-negative integers kept on every row (the Gini over the population) is computed from its
    positive rows only: the rows of value 0 share one linearized value per cell, so their unit
    totals are that value times the unit totals of their weights."""

    def __init__(self, design, items):
        self.design = design
        w = design.w
        self.items = []
        for y, keep, df in items:
            kk = np.flatnonzero(keep)
            rk = kk[w[kk] > 0]
            yr = np.nan_to_num(y[rk])
            integer = bool(yr.size) and bool(np.all(yr == np.round(yr))) and yr.min() >= 0 and yr.max() < 10_000
            if integer:
                vals = np.arange(int(yr.max()) + 1, dtype=float)
                vi = yr.astype(np.int64)
            else:
                vals, vi = np.unique(yr, return_inverse=True)
            it = dict(kk=kk, rk=rk, yr=yr, wr=w[rk], vals=vals, vi=vi, df=float(df),
                      zeros=integer and bool(keep.all()))
            if it["zeros"]:  # keep the positive rows only
                pos = yr > 0
                it.update(rk=rk[pos], yr=yr[pos], wr=it["wr"][pos], vi=vi[pos])
            self.items.append(it)

    def _shared(self, db: DomainBatch) -> dict:
        """Per cell and per stage pair: the weights of every row (the population items)."""
        key = ("gini_shared", db.by)
        hit = self.design._cache.get(key)
        if hit is None:
            w = self.design.w
            r = db.rows
            hit = self.design._cache[key] = dict(
                W=np.bincount(db.cell[r], weights=w[r], minlength=db.G),
                n=np.bincount(db.cell[r][w[r] > 0], minlength=db.G),
                Wp=[np.bincount(st.row_pair[r], weights=w[r], minlength=st.P) for st in db.stages])
        return hit

    def estimate(self, by, level: float = 0.95) -> list[pd.DataFrame]:
        """One frame per item: key column(s), estimate, se, ci_low, ci_high, df, n, weighted_n,
        n_cases; cells without a kept row are left out (as the subset design's cells)."""
        design = self.design
        db = DomainBatch.of(design, by)
        full = db.cell
        G = db.G
        in_dom = design._in_domain()
        k = len(self.items)
        T = [np.zeros((st.P, k)) for st in db.stages]
        slow = [j for j, it in enumerate(self.items) if not it["zeros"]]
        S = np.zeros((design.n, len(slow))) if slow else None
        parts = []
        for j, it in enumerate(self.items):
            ck = full[it["kk"]]
            if by:
                n_miss = int(((ck < 0) & in_dom[it["kk"]]).sum())
                if n_miss:
                    warnings.warn(_missing_by_message(by, n_miss), SurveyWarning, stacklevel=3)
                present = np.bincount(ck[ck >= 0], minlength=G) > 0
            else:
                present = np.ones(1, dtype=bool)
            cf = full[it["rk"]]
            sel = cf >= 0
            r, cr, yr, wr, vi = it["rk"][sel], cf[sel], it["yr"][sel], it["wr"][sel], it["vi"][sel]
            vals = it["vals"]
            V = len(vals)
            if it["zeros"]:
                sh = self._shared(db)
                wpos = np.bincount(cr, weights=wr, minlength=G)
                npos = np.bincount(cr, minlength=G)
                zero_w = np.where(sh["n"] > npos, sh["W"] - wpos, 0.0)
                g, u, u0, N = _gini_cells(G, V, vals, cr, vi, wr, yr, zero_w)
                for s_, st in enumerate(db.stages):
                    rp = st.row_pair[r]
                    wp_pos = np.bincount(rp, weights=wr, minlength=st.P)
                    T[s_][:, j] = u0[st.pc] * (sh["Wp"][s_] - wp_pos) + np.bincount(rp, weights=wr * u, minlength=st.P)
                n = sh["n"]
            else:
                g, u, _, N = _gini_cells(G, V, vals, cr, vi, wr, yr)
                S[r, slow.index(j)] = wr * u
                n = np.bincount(cr, minlength=G)
            cases = np.bincount(cr[yr > 0], minlength=G)
            parts.append((g, n, N, cases, present))
        if slow:
            for s_, Ts in enumerate(db.pair_totals(S)):
                T[s_][:, slow] = Ts
        var = db.variance(lambda s_: T[s_])
        out = []
        for j, (it, (g, n, wn, cases, present)) in enumerate(zip(self.items, parts)):
            se = np.sqrt(np.clip(var[:, j], 0, None))
            q = _tq(level, it["df"])
            fr = db.keys.copy() if by else pd.DataFrame(index=range(1))
            fr["estimate"], fr["se"] = g, se
            fr["ci_low"], fr["ci_high"] = g - q * se, g + q * se
            fr["df"], fr["n"], fr["weighted_n"] = it["df"], n.astype(np.int64), wn
            fr["n_cases"] = cases.astype(np.int64)
            out.append(fr[present].reset_index(drop=True))
        return out
