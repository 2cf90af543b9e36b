"""Proportional-odds (cumulative logit) survey regression for ordered outcomes, as R's
``svyolr``: how worried people are about crime (not at all / not very / fairly / very), how
safe they feel walking alone after dark, and other ordered answers.

Model.  For an outcome with ordered categories ``1 < 2 < ... < K`` and predictors ``x`` (no
intercept column)::

    logit P(Y <= k | x) = zeta_k - x' beta,      k = 1 .. K-1,  zeta_1 < ... < zeta_{K-1}

This is R's parameterization (``MASS::polr``, ``svyolr``): a positive ``beta`` moves the
answers towards the *higher* categories (``exp(beta)`` is the odds ratio of being above any
cut rather than at or below it), and the cut points ``zeta`` (R's "intercepts", named
``"1|2"``, ``"2|3"`` ...) are on the scale of ``x' beta``.  Some programs (Stata's ``ologit``
is the same; SAS's default is the reverse) write ``logit P(Y <= k) = alpha_k + x' beta``:
their coefficients have the opposite sign.

Estimation.  Weighted maximum (pseudo-)likelihood by Newton-Raphson on ``(beta, zeta)`` with
the exact observed information.  Variance, Taylor designs: the sandwich ``I^-1 B I^-1``, each
row's influence ``w_i I^-1 s_i`` (``s_i`` the row's score) going through the design's variance
kernel (strata, PSUs, fpc, later stages, lonely PSUs, calibration, domains).  Replicate
designs: the model is refitted on every replicate weight (Newton from the full-sample
estimate) and the replicate variance of ``(beta, zeta)`` is used.  Tests and intervals: t on
``df = design df - number of coefficients`` (cut points not counted), as ``svyolr``'s
``df.residual``.

Predictive margins: the predicted probability of every category averaged over the sample,
either with everyone set to each level of a model variable (``variable=``, "counterfactual",
as ``svypredmeans``) or over the respondents of each domain (``by=``, e.g. sex or a minority
group).  Their SEs come from the full linearization (the design variance of the averaging plus
the propagated variance of the coefficients, with their covariance: the delta method) on Taylor
designs, and from the replicates (refitted coefficients and replicate weights) on replicate
designs; the ``method`` column says which.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from .errors import SurveyError, SurveyWarning

__all__ = ["olr", "OLRResult", "OrdinalError", "TABLE_COLUMNS"]

TABLE_COLUMNS = ["term", "kind", "estimate", "se", "t", "df", "p_value", "ci_low", "ci_high", "odds_ratio",
                 "or_ci_low", "or_ci_high"]


class OrdinalError(SurveyError, ValueError):
    """The proportional-odds model cannot be fitted."""


# ---------------------------------------------------------------------------------------------
# likelihood pieces
# ---------------------------------------------------------------------------------------------
def _cdf_pair(a: np.ndarray, b: np.ndarray):
    """F(a), F(b), F(a) - F(b) for the logistic F, a > b, accurate in both tails."""
    fa, fb = special.expit(a), special.expit(b)
    # in the upper tail F(a) - F(b) = F(-b) - F(-a) without cancellation
    with np.errstate(invalid="ignore"):
        pr = np.where(b > 0, special.expit(-b) - special.expit(-a), fa - fb)
    return fa, fb, pr


def _design_rows(x: np.ndarray, yc: np.ndarray, k: int):
    """Derivatives of a = zeta_y - eta and b = zeta_{y-1} - eta with respect to (beta, zeta)."""
    n, p = x.shape
    q = k - 1
    da = np.zeros((n, p + q))
    db = np.zeros((n, p + q))
    da[:, :p] = -x
    db[:, :p] = -x
    up = yc < q  # the upper cut exists
    da[np.flatnonzero(up), p + yc[up]] = 1.0
    lo = yc > 0
    db[np.flatnonzero(lo), p + yc[lo] - 1] = 1.0
    return da, db


def _parts(theta, x, yc, w, k, da, db, hessian=True):
    """Log-likelihood, per-row scores (unweighted) and the Hessian of the weighted log-likelihood."""
    p = x.shape[1]
    zeta = theta[p:]
    eta = x @ theta[:p]
    zext = np.concatenate([[-np.inf], zeta, [np.inf]])
    a = zext[yc + 1] - eta
    b = zext[yc] - eta
    fa, fb, pr = _cdf_pair(a, b)
    if np.any(pr[w > 0] <= 0) or np.any(np.diff(zeta) <= 0):
        return -np.inf, None, None
    pr = np.where(w > 0, pr, 1.0)
    ll = float(np.sum(w * np.log(pr)))
    da_f, db_f = fa * (1 - fa), fb * (1 - fb)  # densities (0 at infinite bounds)
    g = (da * da_f[:, None] - db * db_f[:, None]) / pr[:, None]
    if not hessian:
        return ll, g, None
    dpa, dpb = da_f * (1 - 2 * fa), db_f * (1 - 2 * fb)  # derivatives of the density
    h = (da.T * (w * dpa / pr)) @ da - (db.T * (w * dpb / pr)) @ db - (g.T * w) @ g
    return ll, g, h


def _start(yc, w, k, p):
    cum = np.cumsum(np.bincount(yc, weights=w, minlength=k))[:-1] / w.sum()
    return np.concatenate([np.zeros(p), special.logit(np.clip(cum, 1e-6, 1 - 1e-6))])


def _newton(theta, x, yc, w, k, da, db, maxit=100, tol=1e-11):
    ll, g, h = _parts(theta, x, yc, w, k, da, db)
    if not np.isfinite(ll):
        theta = _start(yc, w, k, x.shape[1])
        ll, g, h = _parts(theta, x, yc, w, k, da, db)
    converged = False
    for _ in range(maxit):
        grad = (g * w[:, None]).sum(axis=0)
        try:
            step = np.linalg.solve(-h, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(-h, grad, rcond=None)[0]
        t = 1.0
        for _ in range(60):  # step halving: keep the cut points ordered and the likelihood up
            new = theta + t * step
            ll_new, g_new, h_new = _parts(new, x, yc, w, k, da, db)
            if np.isfinite(ll_new) and ll_new >= ll - 1e-10 * abs(ll):
                break
            t /= 2
        else:
            break
        small = np.max(np.abs(t * step)) < tol * (1 + np.max(np.abs(theta)))
        theta, ll, g, h = new, ll_new, g_new, h_new
        if small:
            converged = True
            break
    return theta, ll, g, h, converged


# ---------------------------------------------------------------------------------------------
# model frame
# ---------------------------------------------------------------------------------------------
def _outcome(data: pd.DataFrame, name: str):
    if name not in data.columns:
        raise OrdinalError(f"olr: outcome '{name}' is not a column of the data ({len(data.columns)} columns)")
    s = data[name]
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = list(s.cat.categories)
        yc = s.cat.codes.to_numpy().astype(np.int64)
        miss = yc < 0
    else:
        miss = s.isna().to_numpy()
        levels = sorted(s[~miss].unique())
        yc = pd.Categorical(s, categories=levels).codes.astype(np.int64)
    return yc, levels, miss


def _frame(data: pd.DataFrame, formula: str):
    import formulaic

    if formula.count("~") != 1:
        raise OrdinalError(f"olr: formula '{formula}' must be 'outcome ~ predictors'")
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not re.fullmatch(r"`?[A-Za-z_][A-Za-z0-9_.]*`?", lhs):
        raise OrdinalError(f"olr: the outcome of '{formula}' must be a column name, not '{lhs}'")
    lhs = lhs.strip("`")
    try:
        mm = formulaic.model_matrix(rhs or "1", data, na_action="ignore")
    except Exception as e:  # formulaic's own error types
        raise OrdinalError(f"olr: formula '{formula}': {str(e).splitlines()[0]}") from None
    names = list(mm.columns)
    keep = [j for j, c in enumerate(names) if c != "Intercept"]
    x = np.asarray(mm, dtype=float)[:, keep]
    return lhs, x, [names[j] for j in keep], mm


# ---------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------
@dataclass
class OLRResult:
    """A fitted proportional-odds survey regression.

    ``table``: one row per coefficient (``kind == "coef"``) then per cut point (``"cutpoint"``):
    term, kind, estimate, se, t, df, p_value, ci_low, ci_high, odds_ratio, or_ci_low,
    or_ci_high (odds ratios for coefficients only).  ``coef``/``vcov`` hold all of them in that
    order.
    """

    formula: str
    outcome: str
    levels: list
    terms: list
    cutpoints: list
    coef: pd.Series
    vcov: pd.DataFrame
    df_residual: float
    design_df: float
    n: int
    n_dropped: int
    weighted_n: float
    loglik: float
    deviance: float
    converged: bool
    level: float
    variance: str
    table: pd.DataFrame = field(repr=False)
    _design: object = field(repr=False, default=None)
    _rows: np.ndarray = field(repr=False, default=None)
    _x: np.ndarray = field(repr=False, default=None)
    _mm: object = field(repr=False, default=None)
    _influence: np.ndarray = field(repr=False, default=None)
    _rep_thetas: np.ndarray = field(repr=False, default=None)

    def summary(self) -> pd.DataFrame:
        return self.table

    def wald_test(self, terms) -> pd.DataFrame:
        """Wald test that the coefficients of ``terms`` (names, or a formula term such as
        ``"C(region)"`` taking all its levels) are all 0: F = W / q on (q, df_residual)."""
        from .models import term_wald_test

        return term_wald_test(self.terms, self.coef, self.vcov, terms, self.df_residual, OrdinalError)

    def predict_proba(self, newdata: pd.DataFrame | None = None) -> pd.DataFrame:
        """Predicted probability of each category (columns: the outcome's levels)."""
        x = self._x if newdata is None else self._matrix(newdata)
        return pd.DataFrame(_probs(self.coef.to_numpy(), x, len(self.levels))[0],
                            columns=[str(v) for v in self.levels])

    def _matrix(self, newdata):
        spec = self._mm.model_spec
        mm = spec.get_model_matrix(newdata, na_action="ignore")
        return np.nan_to_num(np.asarray(mm, float)[:, [j for j, c in enumerate(mm.columns) if c != "Intercept"]])

    def predictive_margins(self, variable: str | None = None, by: str | None = None,
                           level: float | None = None) -> pd.DataFrame:
        """Predicted probability of each category averaged over the fitted respondents.

        ``variable=``: for each level of this model variable, everyone set to that level
        (counterfactual margins, as ``svypredmeans``).  ``by=``: the fitted probabilities
        averaged over the respondents of each domain of this column.  Columns: type, variable,
        level, category, estimate, se, ci_low, ci_high, df, method ("linearization" = full
        delta method on the design, or "replicate").  ``attrs["vcov"]``: their covariance.
        """
        from .design import ReplicateDesign
        from .estimate import Covariance
        from .variance import replicate_vcov

        if (variable is None) == (by is None):
            raise OrdinalError("predictive_margins: give exactly one of variable= or by=")
        level = level or self.level
        d = self._design
        data = d.data
        name = variable or by
        if name not in data.columns:
            raise OrdinalError(f"predictive_margins: '{name}' is not a column of the data ({len(data.columns)} columns)")
        s = data[name]
        rows = self._rows
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = list(s.cat.categories)
        else:
            levels = sorted(s[rows].dropna().unique())
        k = len(self.levels)
        theta = self.coef.to_numpy()
        cases = []  # (row weights indicator, model matrix)
        for lev in levels:
            if variable is not None:
                nd = data.copy(deep=False)
                nd[variable] = pd.Categorical([lev] * len(nd), categories=levels) if isinstance(
                    s.dtype, pd.CategoricalDtype) else lev
                cases.append((rows.astype(float), self._matrix(nd)))
            else:
                ind = (rows & (s == lev).to_numpy()).astype(float)
                cases.append((ind, self._x))
        est, z, reps = [], [], []
        replicate = isinstance(d, ReplicateDesign)
        for ind, x in cases:
            a = d.w * ind
            big_a = a.sum()
            if big_a <= 0:
                raise OrdinalError(f"predictive_margins: a level of '{name}' has no fitted respondent")
            pk, dp = _probs(theta, x, k, grad=True)
            m = (a[:, None] * pk).sum(axis=0) / big_a
            est.append(m)
            if replicate:
                r = np.empty((k, d.n_replicates))
                for j in range(d.n_replicates):
                    ar = d.repw[:, j + 1] * ind
                    r[:, j] = (ar[:, None] * _probs(self._rep_thetas[:, j], x, k)[0]).sum(axis=0) / ar.sum()
                reps.append(r)
            else:
                grad = np.einsum("i,ikp->kp", a, dp) / big_a  # k x P
                z.append(a[:, None] * (pk - m) / big_a + self._influence @ grad.T)
        est = np.concatenate(est)
        if replicate:
            v = replicate_vcov(est, np.vstack(reps), d.scale, d.rscales, d.mse)
            method = "replicate"
        else:
            zz = np.hstack(z)
            r, c = np.nonzero(zz)
            v = d._vcov(r, c, zz[r, c], zz.shape[1])
            method = "linearization"
        se = np.sqrt(np.clip(np.diag(v), 0, None))
        ddf = float(d.df)
        q = stats.t.ppf((1 + level) / 2, ddf)
        out = pd.DataFrame({"type": "counterfactual" if variable is not None else "domain", "variable": name,
                            "level": np.repeat([str(x) for x in levels], k),
                            "category": np.tile([str(x) for x in self.levels], len(levels)),
                            "estimate": est, "se": se})
        out["ci_low"], out["ci_high"] = out.estimate - q * se, out.estimate + q * se
        out["df"], out["method"] = ddf, method
        out.attrs["vcov"] = Covariance(v)
        return out


def _probs(theta, x, k, grad=False):
    """Category probabilities (n x k) and, with grad, their derivatives (n x k x P)."""
    n, p = x.shape
    zeta = theta[p:]
    eta = x @ theta[:p]
    cum = special.expit(zeta[None, :] - eta[:, None])  # n x (k-1)
    big = np.hstack([np.zeros((n, 1)), cum, np.ones((n, 1))])
    pk = np.diff(big, axis=1)
    if not grad:
        return pk, None
    dens = cum * (1 - cum)  # n x (k-1)
    dd = np.hstack([np.zeros((n, 1)), dens, np.zeros((n, 1))])  # f(u_k), 0 at the ends
    dp = np.zeros((n, k, p + k - 1))
    dp[:, :, :p] = -(dd[:, 1:] - dd[:, :-1])[:, :, None] * x[:, None, :]
    for j in range(k - 1):
        dp[:, j, p + j] += dens[:, j]       # P_j has F(zeta_j - eta) with a + sign
        dp[:, j + 1, p + j] -= dens[:, j]   # P_{j+1} has it with a - sign
    return pk, dp


# ---------------------------------------------------------------------------------------------
def olr(design, formula: str, subset=None, level: float = 0.95) -> OLRResult:
    """Proportional-odds survey regression (as R's ``svyolr``, logit link; module docstring).

    ``formula``: ``"outcome ~ x1 + C(x2)"``; the outcome is an ordered (or plain) pandas
    Categorical, whose category order is the order of the answers, or a numeric/text column
    whose sorted distinct values are.  ``subset=``: a domain of the full design.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _olr(design, formula, subset, level)


def _olr(design, formula, subset, level) -> OLRResult:
    from .design import ReplicateDesign
    from .variance import replicate_vcov

    if subset is not None:
        design = design.subset(subset)
    data = design.data
    yname, x, terms, mm = _frame(data, formula)
    yc, levels, ymiss = _outcome(data, yname)
    dom = design._in_domain()
    complete = ~ymiss & np.isfinite(x).all(axis=1)
    n_dropped = int((dom & ~complete).sum())
    if n_dropped:
        warnings.warn(f"olr: {n_dropped} rows of the domain have a missing value in '{formula}' and are left out "
                      "of the fit; they remain in the design", SurveyWarning, stacklevel=3)
    rows = dom & complete
    w = np.where(rows, design.w, 0.0)
    if not np.any(w > 0):
        raise OrdinalError(f"olr: no row of the domain has complete data for '{formula}'")
    k = len(levels)
    if k < 3:
        raise OrdinalError(f"olr: outcome '{yname}' has {k} categories; an ordinal model needs 3 or more "
                           "(use a logistic glm for 2)")
    yc = np.where(rows, yc, 0)
    x = np.where(rows[:, None], x, 0.0)
    counts = np.bincount(yc[w > 0], minlength=k)
    empty = [str(levels[j]) for j in range(k) if counts[j] == 0]
    if empty:
        raise OrdinalError(f"olr: outcome '{yname}' has no respondent in categor{'ies' if len(empty) > 1 else 'y'} "
                           f"{', '.join(empty)} of the domain ({int((w > 0).sum())} rows); merge or drop them")
    pos = w > 0
    for j, t in enumerate(terms):
        col = x[pos, j]
        if np.all(col == col[0]):
            raise OrdinalError(f"olr: term '{t}' is constant ({col[0]:g}) in the {int(pos.sum())} fitted rows")
    if x.shape[1] and np.linalg.matrix_rank(np.column_stack([np.ones(int(pos.sum())), x[pos]])) < x.shape[1] + 1:
        raise OrdinalError(f"olr: the model matrix of '{formula}' is rank deficient: collinear terms")
    p = x.shape[1]
    da, db = _design_rows(x, yc, k)
    theta, ll, g, h, conv = _newton(_start(yc, w, k, p), x, yc, w, k, da, db)
    if not conv:
        warnings.warn(f"olr: the fit did not converge ({formula})", SurveyWarning, stacklevel=3)
    info_inv = np.linalg.inv(-h)
    infl = (g * w[:, None]) @ info_inv  # n x P influence on (beta, zeta)
    npar = len(theta)
    rep_thetas = None
    if isinstance(design, ReplicateDesign):
        rep_thetas = np.empty((npar, design.n_replicates))
        for j in range(design.n_replicates):
            wr = np.where(rows, design.repw[:, j + 1], 0.0)
            rep_thetas[:, j] = _newton(theta.copy(), x, yc, wr, k, da, db)[0]
        vcov = replicate_vcov(theta, rep_thetas, design.scale, design.rscales, design.mse)
        variance = "replicate"
    else:
        r = np.flatnonzero(rows)
        vcov = design._vcov(np.repeat(r, npar), np.tile(np.arange(npar), len(r)), infl[r].ravel(), npar)
        variance = "linearization"
    fit_design = design if (rows == design._in_domain()).all() or isinstance(design, ReplicateDesign) else (
        design.subset(rows))
    design_df = float(fit_design.df)
    df_res = design_df - p
    cut_names = [f"{levels[j]}|{levels[j + 1]}" for j in range(k - 1)]
    names = terms + cut_names
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = theta / se
    q = stats.t.ppf((1 + level) / 2, df_res)
    table = pd.DataFrame({"term": names, "kind": ["coef"] * p + ["cutpoint"] * (k - 1), "estimate": theta,
                          "se": se, "t": t, "df": df_res, "p_value": 2 * stats.t.sf(np.abs(t), df_res),
                          "ci_low": theta - q * se, "ci_high": theta + q * se})
    is_coef = table.kind == "coef"
    table["odds_ratio"] = np.where(is_coef, np.exp(table.estimate), np.nan)
    table["or_ci_low"] = np.where(is_coef, np.exp(table.ci_low), np.nan)
    table["or_ci_high"] = np.where(is_coef, np.exp(table.ci_high), np.nan)
    wpos = w[w > 0]
    return OLRResult(formula=formula, outcome=yname, levels=list(levels), terms=terms, cutpoints=cut_names,
                     coef=pd.Series(theta, index=names, name="estimate"),
                     vcov=pd.DataFrame(vcov, index=names, columns=names), df_residual=df_res,
                     design_df=design_df, n=int(pos.sum()), n_dropped=n_dropped, weighted_n=float(w.sum()),
                     loglik=ll, deviance=float(-2 * ll / wpos.mean()), converged=conv, level=level,
                     variance=variance, table=table, _design=design, _rows=rows, _x=x, _mm=mm,
                     _influence=infl, _rep_thetas=rep_thetas)
