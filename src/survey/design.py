"""Survey design objects: the one object every estimator takes.

``Design`` describes a stratified multistage sample for Taylor linearization (as R's
``svydesign``); ``ReplicateDesign`` carries replicate weights (as R's ``svrepdesign``).  Both are
immutable: ``subset``, calibration and conversion return new objects.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import estimate as _est
from ._columns import as_list, codes, column, numeric
from .errors import DesignError, ReplicateWeightError, SurveyWarning, WeightError, column_not_found
from .variance import LONELY_PSU_POLICIES, Stage, check_lonely, taylor_vcov

__all__ = ["Design", "ReplicateDesign", "REPLICATE_METHODS"]


def _check_weights(w: np.ndarray, name: str) -> np.ndarray:
    n = w.shape[0]
    bad_nan = int(np.isnan(w).sum())
    if bad_nan:
        raise WeightError(f"weight '{name}': {bad_nan} of {n} rows are missing")
    bad_inf = int(np.isinf(w).sum())
    if bad_inf:
        raise WeightError(f"weight '{name}': {bad_inf} of {n} rows are infinite")
    neg = int((w < 0).sum())
    if neg:
        raise WeightError(f"weight '{name}': {neg} of {n} rows are negative (min {w.min():g})")
    if n and not np.any(w > 0):
        raise WeightError(f"weight '{name}': all {n} rows are zero")
    return w


def _weights_from(data: pd.DataFrame, weights: str | None, probs: str | None) -> tuple[np.ndarray, str]:
    if weights is not None and probs is not None:
        raise DesignError("give either weights= or probs=, not both")
    if weights is not None:
        return _check_weights(numeric(data, weights, "weight"), weights), weights
    p = numeric(data, probs, "selection probability")
    nan = int(np.isnan(p).sum())
    if nan:
        raise WeightError(f"selection probability '{probs}': {nan} of {len(p)} rows are missing")
    bad = int(((p <= 0) | (p > 1)).sum())
    if bad:
        raise WeightError(f"selection probability '{probs}': {bad} of {len(p)} rows are not in (0, 1]")
    return 1.0 / p, probs


def _labels(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Integer codes for the combinations of ``cols`` (no missing allowed)."""
    if len(cols) == 1:
        return pd.factorize(df[cols[0]], sort=True)[0].astype(np.int64)
    return df.groupby(cols, sort=True, observed=True).ngroup().to_numpy().astype(np.int64)


def _fast_codes(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``survey._columns.codes`` (sorted codes, -1 missing, and the levels), faster on the two
    common kinds of domain column: a categorical (its codes, renumbered only when a category
    is unused) and text (factorized in order of appearance, then the few levels sorted and the
    codes renumbered, instead of sorting while factorizing).  The same result."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        c = s.cat.codes.to_numpy().astype(np.int64)
        used = np.bincount(c + 1, minlength=len(cats) + 1)[1:] > 0
        if used.all():
            return c, cats
        renum = np.append(np.cumsum(used) - 1, -1)  # index -1 (missing) stays -1
        return renum[c], cats[used]
    if isinstance(s.dtype, pd.StringDtype):
        code, uniq = pd.factorize(s, sort=False, use_na_sentinel=True)
        order = np.asarray(uniq.argsort())
        renum = np.empty(len(order) + 1, dtype=np.int64)
        renum[order] = np.arange(len(order))
        renum[-1] = -1
        return renum[code], pd.Index(uniq.take(order))
    return codes(s)


def _as_rows(arrays: list[np.ndarray], n: int) -> np.ndarray | None:
    """The columns as one read-only strided (R x n) view when they lie in memory as consecutive,
    equally spaced rows of one allocation (pandas keeps the float64 columns of a frame in one
    2-D block, a column per row, in the frame's column order), else None.  Row j of the view is
    ``arrays[j]`` itself: the view reads nothing but the columns."""
    if len(arrays) < 2 or n == 0:
        return None
    base = arrays[0].base
    if base is None:
        return None
    addr = [x.__array_interface__["data"][0] for x in arrays]
    step = addr[1] - addr[0]
    if step < 8 * n:  # the rows would overlap (or run backwards)
        return None
    for j, x in enumerate(arrays):
        if (x.base is not base or x.dtype != np.float64 or x.ndim != 1 or x.shape[0] != n or x.strides != (8,)
                or addr[j] != addr[0] + j * step):
            return None
    return np.lib.stride_tricks.as_strided(arrays[0], shape=(len(arrays), n), strides=(step, 8), writeable=False)


def _weight_matrix(data: pd.DataFrame, cols: list[str], w: np.ndarray, combined: bool) -> np.ndarray:
    """The C-ordered (n x (1 + R)) matrix [full weight, replicate weights], validated.

    The columns are read without copies (float64 columns are views) and transposed tile by
    tile: a tile of rows of every column goes to a small contiguous buffer, which is written
    transposed into the matrix while both are in cache (writing a column at a time into the
    C-ordered matrix strides through memory, and cost twice as long).  When the columns lie as
    consecutive rows of one block (pandas' 2-D float64 block) one copy per tile fills the
    buffer (~10% less CPU than a copy per column).  The ``min`` of each tile, taken while it is
    in cache, finds missing (NaN propagates) and negative values; the columns are inspected
    only when one is found, to name it.  (Measured and dropped: transposing straight from the
    block, without the buffer, ~10% more CPU; building the two halves of the rows in two
    threads, never faster on the shared 2-core machine at load 4-8: best 233 ms against
    169 ms on 500,000 x 80, probably the GIL and page faults.)
    """
    arrays = []
    for c in cols:
        s = data[c]
        if s.dtype == np.float64:
            arrays.append(s.to_numpy())
        elif pd.api.types.is_numeric_dtype(s.dtype):
            arrays.append(s.to_numpy(dtype=float, na_value=np.nan))
        else:
            arrays.append(numeric(data, c, "replicate weight"))  # raises with the count of bad values
    n, r = len(data), len(cols)
    mat = np.empty((n, r + 1))
    mat[:, 0] = w
    rows = _as_rows(arrays, n)
    step = 2_048
    tmp = np.empty((r, min(step, n)))
    ok = True
    for a in range(0, n, step):
        b = min(a + step, n)
        t = tmp[:, :b - a]
        if rows is not None:
            np.copyto(t, rows[:, a:b])
        else:
            for j, x in enumerate(arrays):
                t[j] = x[a:b]
        ok = ok and bool(t.min() >= 0)  # NaN fails the comparison
        mat[a:b, 1:] = t.T
    if not ok:
        low = mat[:, 1:].min(axis=0)
        for j in np.flatnonzero(~(low >= 0)):
            col = mat[:, j + 1]
            bad = int(np.isnan(col).sum())
            if bad:
                raise ReplicateWeightError(f"replicate weight '{cols[j]}': {bad} of {n} rows are missing")
            raise ReplicateWeightError(
                f"replicate weight '{cols[j]}': {int((col < 0).sum())} of {n} rows are negative")
    if not combined:
        mat[:, 1:] *= w[:, None]
    return mat


def _sketch_columns(n: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """The CountSketch of the rank (fixed seed): per row its bucket (of ``4 r``) and its sign,
    both from one draw of ``2 x 4 r`` values (bucket = value // 2, sign from its parity)."""
    rng = np.random.default_rng(20240601)
    v = rng.integers(0, 8 * r, size=(n, 1), dtype=np.int32)
    val = np.empty((n, 1))
    np.subtract(1.0, np.bitwise_and(v, 1) * 2.0, out=val)
    np.right_shift(v, 1, out=v)
    return v, val


_BLAS = []


def _one_blas_thread():
    """A context in which BLAS/LAPACK runs on one thread.  The rank's SVD is of a tiny (4R x R)
    matrix: OpenBLAS's threads gain nothing there, and on a busy machine (or next to the
    replicate product's own threads) waking them made it take 30 ms to 1.9 s instead of 1 ms."""
    import contextlib

    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except Exception:  # threadpoolctl missing or failing: run as is
            _BLAS.append(None)
    ctl = _BLAS[0]
    return ctl.limit(limits=1, user_api="blas") if ctl is not None else contextlib.nullcontext()


def _rank_of(sk: np.ndarray) -> int:
    with _one_blas_thread():
        s = np.linalg.svd(sk, compute_uv=False)
    return int((s > s.max() * 1e-9).sum()) if s.size and s.max() > 0 else 0


def _replicate_rank(repw: np.ndarray) -> int:
    """Numerical rank of the replicate weights ``repw[:, 1:]``, via a sparse random sketch."""
    from .variance import replicate_totals

    n, r = repw.shape
    if n <= 8 * r:
        sk = repw[:, 1:]
    else:
        idx, val = _sketch_columns(n, r)
        sk = replicate_totals(idx, val, 4 * r, repw)[:, 1:]  # the sketch is linear: drop column 0 after
    return _rank_of(sk)


@dataclass(frozen=True)
class Calibration:
    """One calibration step, remembered for the variance (residuals on ``x``)."""

    x: np.ndarray  # n x p calibration variables
    w: np.ndarray  # weights before this step (they weight the regression of the residuals)
    g_inverse: np.ndarray  # (X' W X)^-1 with those weights


def _snapshot(data: pd.DataFrame, internal: bool) -> pd.DataFrame:
    """The design's own view of the data: later edits of the caller's frame do not leak in
    (pandas copy-on-write makes the shallow copy cheap)."""
    return data if internal else data.copy(deep=False)


class _Base:
    """What Taylor and replicate designs share: data, weights, domains, estimators.

    The design's data cannot change after construction, which is what makes its cache safe:
    ``data`` hands out a (copy-on-write, so free) shallow copy of the design's own frame, so
    assigning a column of ``design.data`` or editing it in place changes that copy only, never
    the design; edits of the caller's frame after construction do not leak in either (pandas
    copy-on-write).  Build a new design to estimate on changed data.  ``_cache`` then holds, per
    design object, what depends on the data only: factor codes of columns (``codes``), the cell
    codes of every ``by`` used (``survey.estimate._cells``) and the row plan of those cells
    (``survey.estimate._plan``), the df, ``all_positive``.  ``subset``, calibration and
    ``with_options`` return new designs with new, empty caches.
    """

    _data: pd.DataFrame
    w: np.ndarray
    domain: np.ndarray | None

    @property
    def data(self) -> pd.DataFrame:
        """The design's data (a shallow copy: editing it does not change the design)."""
        return self._data.copy(deep=False)

    def codes(self, name: str, what: str = "by"):
        """Sorted factor codes (-1 missing) and levels of a column, cached on the design."""
        hit = self._cache.get(name)
        if hit is None:
            hit = _fast_codes(column(self._data, name, what))
            self._cache[name] = hit
        return hit

    # ----- basic facts ------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.w.shape[0])

    @property
    def weights(self) -> pd.Series:
        """Analysis weights (zero outside the domain of a subset design)."""
        w = self.w if self.domain is None else np.where(self.domain, self.w, 0.0)
        return pd.Series(w, index=self._data.index, name="weight")

    @property
    def all_positive(self) -> bool:
        """Every weight is positive (no zero-weight rows such as non-interviews)."""
        hit = self._cache.get("all_positive")
        if hit is None:
            hit = self._cache["all_positive"] = bool((self.w > 0).all())
        return hit

    def _in_domain(self) -> np.ndarray:
        return np.ones(self.n, dtype=bool) if self.domain is None else self.domain

    def subset(self, condition) -> _Base:
        """Domain design, as R's ``subset(design, ...)``: the full design is kept.

        ``condition``: a boolean array/Series aligned with the data, or a condition of the
        expression language of :mod:`survey.expr` such as ``"stype == 'H'"``.  Rows outside the domain still count as PSUs with
        zero contributions, so standard errors are right (never subset the data first).
        """
        if isinstance(condition, str):  # a condition of survey.expr (never evaluated as code)
            from .expr import evaluate

            mask = evaluate(condition, self._data)
        else:
            mask = condition
        mask = np.asarray(pd.Series(mask).fillna(False).to_numpy(), dtype=bool) if not isinstance(
            mask, np.ndarray
        ) else mask.astype(bool)
        if mask.shape[0] != self.n:
            raise DesignError(f"subset condition has {mask.shape[0]} values for {self.n} rows")
        new = self._in_domain() & mask
        if not new.any():
            raise DesignError(f"subset condition selects none of the {self.n} rows")
        return self._replace(_domain=new)

    # ----- estimators (see survey.estimate) ---------------------------------------------------
    def mean(self, variables, by=None, **kw) -> pd.DataFrame:
        """Domain means with design-based SEs, as R's ``svymean`` / ``svyby(..., svymean)``."""
        return _est.mean(self, variables, by=by, **kw)

    def total(self, variables, by=None, **kw) -> pd.DataFrame:
        """Population totals, as R's ``svytotal``."""
        return _est.total(self, variables, by=by, **kw)

    def ratio(self, numerator, denominator, by=None, **kw) -> pd.DataFrame:
        """Ratio of two totals, as R's ``svyratio``."""
        return _est.ratio(self, numerator, denominator, by=by, **kw)

    def proportion(self, variable, by=None, **kw) -> pd.DataFrame:
        """Proportions of every level, with ``ci_method`` intervals, as R's ``svyciprop``."""
        return _est.proportion(self, variable, by=by, **kw)

    def quantile(self, variable, q=0.5, by=None, **kw) -> pd.DataFrame:
        """Quantiles with Woodruff intervals, as R's ``svyquantile`` (qrule 'math')."""
        return _est.quantile(self, variable, q=q, by=by, **kw)

    def glm(self, formula: str, family: str = "binomial", **kw):
        """Survey-weighted GLM with design-based SEs, as R's ``svyglm`` (see survey.models)."""
        from .models import glm

        return glm(self, formula, family=family, **kw)

    # calibration lives in survey.weighting
    def poststratify(self, strata, population, **kw):
        """Post-stratify to known counts, as R's ``postStratify``."""
        from .weighting import poststratify

        return poststratify(self, strata, population, **kw)

    def rake(self, margins, **kw):
        """Rake to known margins by iterative post-stratification, as R's ``rake``."""
        from .weighting import rake

        return rake(self, margins, **kw)

    def calibrate(self, population, calfun="linear", **kw):
        """Calibrate to known totals (``linear`` GREG or ``raking``), as R's ``calibrate``."""
        from .weighting import calibrate

        return calibrate(self, population, calfun=calfun, **kw)


# =============================================================================================
# Taylor design
# =============================================================================================
class Design(_Base):
    """A stratified multistage design for Taylor linearization (as R's ``svydesign``).

    Parameters
    ----------
    data: the sample, one row per unit of analysis.
    weights / probs: column of sampling weights, or of selection probabilities (weights are
        then ``1/probs``).  Without either, weights come from the fpc (as R) or are 1.
    strata: stratum column (or list of columns whose combination is the stratum).
    psu: cluster column, or a list of columns for several stages ``[psu, ssu, ...]``; None means
        every row is its own PSU.
    fpc: finite population correction per stage: a column (or list, one per stage) holding the
        population count of units in the stratum (stage 1) or in the parent unit (later stages),
        or the sampling fraction (all values <= 1).  None: sampling with replacement.
    nest: PSU ids are only unique within strata (as R's ``nest=TRUE``).
    lonely_psu: what to do with a stratum holding one PSU: ``fail`` | ``remove`` |
        ``certainty`` | ``adjust`` | ``average`` (R's ``options(survey.lonely.psu=)``).
    """


    def __init__(self, data, weights=None, probs=None, strata=None, psu=None, fpc=None, nest=False,
                 lonely_psu="fail", *, _w=None, _stages=None, _domain=None, _calibrations=()):
        if not isinstance(data, pd.DataFrame):
            raise DesignError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        if lonely_psu not in LONELY_PSU_POLICIES:
            raise DesignError(f"lonely_psu must be one of {', '.join(LONELY_PSU_POLICIES)}, not '{lonely_psu}'")
        set_ = object.__setattr__
        set_(self, "_data", _snapshot(data, _stages is not None))
        set_(self, "_cache", {})
        set_(self, "weights_col", weights)
        set_(self, "probs", probs)
        set_(self, "strata", strata)
        set_(self, "psu", psu)
        set_(self, "fpc", fpc)
        set_(self, "nest", bool(nest))
        set_(self, "lonely_psu", lonely_psu)
        set_(self, "domain", _domain)
        set_(self, "calibrations", tuple(_calibrations))
        if _stages is None:
            _stages, w_fpc = self._build_stages()
        else:
            w_fpc = None
        set_(self, "stages", tuple(_stages))
        if _w is None:
            if weights is not None or probs is not None:
                _w, _ = _weights_from(data, weights, probs)
            elif w_fpc is not None:
                _w = w_fpc
            else:
                warnings.warn("no weights or probabilities given: assuming equal probability (weight 1)",
                              SurveyWarning, stacklevel=2)
                _w = np.ones(len(data))
        set_(self, "w", np.ascontiguousarray(_w, dtype=float))
        if lonely_psu == "fail":
            # fail at construction, as early as possible, naming the strata
            check_lonely(self.stages[0], 1)

    def _build_stages(self):
        data = self._data
        n = len(data)
        strata = as_list(self.strata)
        psus = as_list(self.psu)
        fpcs = as_list(self.fpc)
        for c in strata:
            column(data, c, "strata")
        for c in psus:
            column(data, c, "PSU")
        for c in fpcs:
            column(data, c, "fpc")
        n_stages = max(1, len(psus))
        if fpcs and len(fpcs) > n_stages:
            raise DesignError(f"{len(fpcs)} fpc columns for {n_stages} sampling stage(s)")
        for c in strata + psus:
            miss = int(data[c].isna().sum())
            if miss:
                what = "strata" if c in strata else "PSU"
                raise DesignError(f"{what} variable '{c}': {miss} of {n} rows are missing")
        # stratum codes
        if strata:
            s_code = _labels(data, strata)
            s_lab = data[strata].astype(str).agg("/".join, axis=1).to_numpy() if len(strata) > 1 else (
                data[strata[0]].astype(str).to_numpy())
        else:
            s_code = np.zeros(n, dtype=np.int64)
            s_lab = np.full(n, "(all)", dtype=object)
        n_strata = int(s_code.max()) + 1 if n else 0
        stratum_labels = [""] * n_strata
        first = np.unique(s_code, return_index=True)[1]
        for i in first:
            stratum_labels[s_code[i]] = s_lab[i]

        stages: list[Stage] = []
        parent = s_code  # per row: the group code at the current stage
        parent_labels = stratum_labels
        w_prob = np.ones(n)
        have_all_fpc = bool(fpcs)
        for k in range(n_stages):
            if k < len(psus):
                ids = data[psus[k]]
                if k == 0 and not self.nest and strata:
                    # R: clusters must be nested in strata unless nest=TRUE
                    per = pd.DataFrame({"p": ids.to_numpy(), "s": s_code}).groupby("p", sort=False)["s"].nunique()
                    bad = per[per > 1]
                    if len(bad):
                        raise DesignError(
                            f"PSU '{psus[0]}': {len(bad)} PSU id(s) appear in more than one stratum "
                            f"(e.g. {bad.index[0]!r}); use nest=True if ids are only unique within strata"
                        )
                unit = pd.DataFrame({"g": parent, "u": ids.to_numpy()}).groupby(
                    ["g", "u"], sort=True, observed=True).ngroup().to_numpy().astype(np.int64)
            else:
                unit = np.arange(n, dtype=np.int64)
                # keep the rows in parent order for reproducible codes
            n_units = int(unit.max()) + 1 if n else 0
            group_of_unit = np.zeros(n_units, dtype=np.int64)
            group_of_unit[unit] = parent
            n_groups = int(parent.max()) + 1 if n else 0
            size = np.bincount(group_of_unit, minlength=n_groups)
            fraction = np.zeros(n_groups)
            if k < len(fpcs):
                f = numeric(data, fpcs[k], "fpc")
                miss = int(np.isnan(f).sum())
                if miss:
                    raise DesignError(f"fpc '{fpcs[k]}': {miss} of {n} rows are missing")
                per_group = pd.Series(f).groupby(parent).agg(["min", "max"])
                incons = per_group[per_group["min"] != per_group["max"]]
                if len(incons):
                    raise DesignError(
                        f"fpc '{fpcs[k]}' differs within {len(incons)} stage-{k + 1} group(s) "
                        f"(e.g. {parent_labels[incons.index[0]]})"
                    )
                fg = per_group["max"].reindex(range(n_groups)).to_numpy()
                if np.all(f <= 1):
                    if np.any(fg <= 0):
                        raise DesignError(f"fpc '{fpcs[k]}' as sampling fraction must be in (0, 1]")
                    fraction = fg
                else:
                    small = np.flatnonzero(fg < size)
                    if small.size:
                        g = small[0]
                        raise DesignError(
                            f"fpc '{fpcs[k]}': population size {fg[g]:g} is smaller than the {size[g]} "
                            f"units sampled in {small.size} group(s) (e.g. {parent_labels[g]})"
                        )
                    fraction = size / fg
                w_prob = w_prob * fraction[parent]
            else:
                have_all_fpc = have_all_fpc and False
            stages.append(Stage(unit=unit, group=group_of_unit, size=size, fraction=fraction,
                                labels=tuple(parent_labels)))
            parent = unit
            if k + 1 < n_stages:
                lab_ids = data[psus[k]].astype(str).to_numpy()
                parent_labels = [""] * n_units
                for i in np.unique(unit, return_index=True)[1]:
                    parent_labels[unit[i]] = f"{psus[k]}={lab_ids[i]}"
        w_fpc = 1.0 / w_prob if (fpcs and len(fpcs) == n_stages and np.all(w_prob > 0)) else None
        return stages, w_fpc

    # ----- design facts -----------------------------------------------------------------------
    @property
    def df(self) -> float:
        """Design degrees of freedom: PSUs minus strata (as R's ``degf``).

        For a subset (domain) design, as R: PSUs minus strata among the rows of the domain with
        a positive weight.  Estimates ``by=`` domains of a full design use the full design's df.
        """
        st = self.stages[0]
        if self.domain is None:
            return float(st.n_units - st.n_groups)
        hit = self._cache.get("df")
        if hit is None:
            rows = self.domain & (self.w > 0)
            units = np.flatnonzero(np.bincount(st.unit[rows], minlength=st.n_units))
            hit = self._cache["df"] = float(units.size - np.unique(st.group[units]).size)
        return hit

    @property
    def n_psu(self) -> int:
        return self.stages[0].n_units

    @property
    def n_strata(self) -> int:
        return self.stages[0].n_groups

    def lonely_strata(self) -> list:
        """Labels of strata with a single PSU (handled by ``lonely_psu``)."""
        st = self.stages[0]
        return [st.labels[g] for g in st.lonely_groups()]

    def __repr__(self) -> str:
        parts = [f"n={self.n}", f"strata={self.n_strata}", f"psu={self.n_psu}", f"df={self.df:g}"]
        if len(self.stages) > 1:
            parts.append(f"stages={len(self.stages)}")
        if self.domain is not None:
            parts.append(f"domain={int(self.domain.sum())} rows")
        if self.calibrations:
            parts.append(f"calibrated x{len(self.calibrations)}")
        return f"Design({', '.join(parts)})"

    def _replace(self, **kw) -> Design:
        args = dict(data=self._data, weights=self.weights_col, probs=self.probs, strata=self.strata,
                    psu=self.psu, fpc=self.fpc, nest=self.nest, lonely_psu=self.lonely_psu,
                    _w=self.w, _stages=self.stages, _domain=self.domain, _calibrations=self.calibrations)
        args.update(kw)
        return Design(**args)

    def __copy__(self):
        return self._replace()


    # ----- variance -----------------------------------------------------------------------------
    def _vcov(self, rows, cols, vals, m) -> np.ndarray:
        """Covariance of estimates whose linearized scores are the triplets (rows, cols, vals)."""
        if self.calibrations:
            z = np.zeros((self.n, m))
            np.add.at(z, (rows, cols), vals)
            z = self._residualize(z)
            r, c = np.nonzero(z)
            return taylor_vcov(r, c, z[r, c], m, list(self.stages), self.lonely_psu)
        return taylor_vcov(rows, cols, vals, m, list(self.stages), self.lonely_psu)

    def _residualize(self, z: np.ndarray) -> np.ndarray:
        """Scores after calibration (``z = w u`` with the final weights ``w``).

        The influence values ``u`` are replaced by their residuals from the regression on each
        step's calibration variables, weighted by the weights *before* that step, last step
        first; the scores keep the final (calibrated) weights, as R does.
        """
        w = self.w
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(w[:, None] > 0, z / w[:, None], 0.0)
        for cal in reversed(self.calibrations):
            b = cal.g_inverse @ ((cal.x * cal.w[:, None]).T @ u)
            u = u - cal.x @ b
        return w[:, None] * u


# =============================================================================================
# Replicate-weight design
# =============================================================================================
REPLICATE_METHODS = ("BRR", "Fay", "JK1", "JKn", "bootstrap", "successive-difference", "ACS", "other")


def _default_scale(method: str, n_rep: int, rho: float) -> float:
    if method == "BRR":
        return 1.0 / n_rep
    if method == "Fay":
        return 1.0 / (n_rep * (1.0 - rho) ** 2)
    if method == "JK1":
        return (n_rep - 1.0) / n_rep
    if method == "JKn":
        return 1.0
    if method == "bootstrap":
        return 1.0 / (n_rep - 1.0)
    if method in ("successive-difference", "ACS"):
        return 4.0 / n_rep
    return 1.0


def _match_columns(data: pd.DataFrame, spec) -> list[str]:
    if isinstance(spec, str):
        if spec in data.columns:
            return [spec]
        try:
            pat = re.compile(spec)
        except re.error as e:
            raise ReplicateWeightError(f"replicate_weights pattern '{spec}' is not a valid regex: {e}") from e
        cols = [c for c in data.columns if pat.search(str(c))]
        if not cols:
            raise ReplicateWeightError(
                f"replicate_weights pattern '{spec}' matches none of the {len(data.columns)} columns"
            )
        return cols
    cols = list(spec)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise column_not_found(missing[0], data.columns, f"replicate weight; {len(missing)} of {len(cols)} missing")
    return cols


class ReplicateDesign(_Base):
    """A replicate-weight design (as R's ``svrepdesign``).

    Parameters
    ----------
    data: the sample.
    weights: the full-sample weight column.
    replicate_weights: a list of columns, or a regular expression matching them.
    method: ``BRR`` | ``Fay`` | ``JK1`` | ``JKn`` | ``bootstrap`` | ``successive-difference`` |
        ``ACS`` | ``other``.
    rho: Fay's coefficient (method ``Fay``).
    scale, rscales: the variance is ``scale * sum_r rscales[r] (t_r - c)^2``.  Defaults as R:
        BRR ``1/R``; Fay ``1/(R (1-rho)^2)``; JK1 ``(R-1)/R``; JKn ``1`` (rscales required);
        bootstrap ``1/(R-1)``; successive-difference and ACS ``4/R``; rscales 1.
    mse: centre on the full-sample estimate instead of the mean of the replicates.
    combined_weights: replicate columns are full weights (True, R's default) or multipliers of
        the full-sample weight (False).
    fpc: optional sampling fraction per replicate (or scalar) that multiplies rscales by (1-f),
        for JK1/JKn as R's ``fpc=`` with ``fpctype="fraction"``.
    df: degrees of freedom; default is the rank of the replicate weights minus 1 (as R).
    """


    def __init__(self, data, weights, replicate_weights, method="other", rho=None, scale=None,
                 rscales=None, mse=False, combined_weights=True, fpc=None, df=None, *,
                 _repw=None, _domain=None, _w0=None):
        if not isinstance(data, pd.DataFrame):
            raise DesignError(f"data must be a pandas DataFrame, not {type(data).__name__}")
        if method not in REPLICATE_METHODS:
            raise ReplicateWeightError(f"method must be one of {', '.join(REPLICATE_METHODS)}, not '{method}'")
        set_ = object.__setattr__
        set_(self, "_data", _snapshot(data, _repw is not None))
        set_(self, "_cache", {})
        set_(self, "domain", _domain)
        if _repw is None:
            cols = _match_columns(data, replicate_weights)
            w = _check_weights(numeric(data, weights, "weight"), weights)
            _repw = _weight_matrix(data, cols, w, combined_weights)
            _w0 = np.array(w, dtype=float)  # column 0 of the matrix (a contiguous copy, not a strided read)
            set_(self, "columns", tuple(cols))
        else:
            set_(self, "columns", tuple(replicate_weights or ()))
        n_rep = _repw.shape[1] - 1
        if n_rep < 2:
            raise ReplicateWeightError(f"need at least 2 replicate weights, found {n_rep}")
        if method == "Fay":
            if rho is None:
                raise ReplicateWeightError("method 'Fay' needs rho (e.g. rho=0.5)")
            if not 0 <= rho < 1:
                raise ReplicateWeightError(f"Fay rho must be in [0, 1), not {rho}")
        rho = float(rho or 0.0)
        if scale is None:
            scale = _default_scale(method, n_rep, rho)
        if rscales is None:
            if method == "JKn":
                raise ReplicateWeightError("method 'JKn' needs rscales ((n_h - 1) / n_h per replicate)")
            rscales = np.ones(n_rep)
        rscales = np.broadcast_to(np.asarray(rscales, dtype=float), (n_rep,)).copy()
        if fpc is not None:
            f = np.broadcast_to(np.asarray(fpc, dtype=float), (n_rep,))
            rscales = rscales * (1.0 - f)
        set_(self, "repw", np.ascontiguousarray(_repw, dtype=float))
        # the full-sample weights as their own contiguous array: column 0 of the C-ordered
        # matrix is one value per 8 (1 + R)-byte row, slow to scan for every estimate
        # (given by the caller when it has them: construction, designs sharing this matrix)
        set_(self, "_w0", np.ascontiguousarray(self.repw[:, 0]) if _w0 is None else _w0)
        set_(self, "method", method)
        set_(self, "rho", rho)
        set_(self, "scale", float(scale))
        set_(self, "rscales", rscales)
        set_(self, "mse", bool(mse))
        set_(self, "_df", None if df is None else float(df))

    @property
    def w(self) -> np.ndarray:  # type: ignore[override]
        return self._w0

    @property
    def n_replicates(self) -> int:
        return self.repw.shape[1] - 1

    @property
    def df(self) -> float:
        """Degrees of freedom: rank of the replicate weights minus 1 (as R), unless given.

        The rank is that of a random sketch ``Omega @ W`` (CountSketch with random signs, 4R
        rows, fixed seed), which has the rank of ``W`` with probability 1 for all practical
        purposes and costs one pass over the weights instead of ``n R^2`` flops.
        """
        if self._df is None:
            object.__setattr__(self, "_df", float(_replicate_rank(self.repw) - 1))
        return self._df

    def __repr__(self) -> str:
        dom = f", domain={int(self.domain.sum())} rows" if self.domain is not None else ""
        return (f"ReplicateDesign(n={self.n}, method={self.method}, replicates={self.n_replicates}, "
                f"scale={self.scale:g}, mse={self.mse}{dom})")

    def _replace(self, **kw) -> ReplicateDesign:
        args = dict(data=self._data, weights=None, replicate_weights=self.columns, method=self.method,
                    rho=self.rho if self.method == "Fay" else None, scale=self.scale, rscales=self.rscales,
                    mse=self.mse, df=self._df, _repw=self.repw, _domain=self.domain)
        if "_repw" not in kw:
            args["_w0"] = self._w0  # the same matrix: the same column 0
        args.update(kw)
        return ReplicateDesign(**args)


    def with_options(self, *, mse=None, scale=None, rscales=None) -> ReplicateDesign:
        """A copy with other variance options (e.g. ``mse=True``)."""
        kw = {}
        if mse is not None:
            kw["mse"] = mse
        if scale is not None:
            kw["scale"] = scale
        if rscales is not None:
            kw["rscales"] = rscales
        return self._replace(**kw)
