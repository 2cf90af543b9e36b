"""Design-based regression: survey-weighted GLMs with design-based standard errors (as R's
``svyglm``), for risk and protective factors of victimization.

``design.glm(formula, family=...)`` fits by weighted maximum (pseudo-)likelihood.  Families:
``binomial`` (logit; R's quasibinomial), ``poisson`` (log; quasipoisson) and ``negbin``
(negative binomial NB2, log link, ``theta`` estimated by weighted maximum likelihood; Tseloni-style
models of repeat victimization counts).  Formulas go through *formulaic*; categorical predictors
take their first level (pandas category order, else sorted) as the reference; ``offset(expr)``
in the formula or ``offset=`` gives an offset (e.g. log exposure).

Variance.  Taylor designs: the sandwich ``A^-1 B A^-1``, with ``A`` the weighted information
and ``B`` the design variance of the estimating-function totals (each row's influence
``w_i A^-1 x_i (y_i - mu_i) mu'_i / V(mu_i)`` goes through the design's variance kernel, so
strata, PSUs, fpc, lonely PSUs, domains and calibration all apply).  Replicate designs: the
model is refitted on every replicate (Newton from the full-sample estimate) and the replicate
variance of the coefficients is used.  Tests and intervals use t on ``df_residual = design df
+ 1 - number of coefficients``, as R.  For ``negbin`` ``theta`` is held at its full-sample
estimate in the variance (documented approximation: with replicate designs the replicate
variance of the coefficients is exact for that ``theta``).

Domains: ``subset=`` (boolean or expression) estimates within a domain on the full design.
Rows with a missing value in the model are left out of the fit as a domain too, counted in
``n_dropped`` and named in a warning.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from .errors import SurveyError, SurveyWarning

FAMILIES = ("binomial", "poisson", "negbin")
TABLE_COLUMNS = ["term", "estimate", "se", "t", "df", "p_value", "ci_low", "ci_high", "exp_estimate",
                 "exp_ci_low", "exp_ci_high"]


class ModelError(SurveyError, ValueError):
    """The model cannot be fitted (constant predictor, empty category, bad outcome...)."""


class SeparationWarning(SurveyWarning):
    """(Quasi-)complete separation: some coefficients are not identified."""


# ---------------------------------------------------------------------------------------------
# families
# ---------------------------------------------------------------------------------------------
def _mu(family: str, eta: np.ndarray) -> np.ndarray:
    if family == "binomial":
        return special.expit(eta)
    return np.exp(np.clip(eta, -700, 700))


def _var_and_dmu(family: str, mu: np.ndarray, theta: float | None):
    """V(mu) and dmu/deta."""
    if family == "binomial":
        v = mu * (1 - mu)
        return v, v
    if family == "poisson":
        return mu, mu
    return mu + mu * mu / theta, mu


# ---------------------------------------------------------------------------------------------
# model frame
# ---------------------------------------------------------------------------------------------
_OFFSET = re.compile(r"\+?\s*offset\(((?:[^()]|\([^()]*\))*)\)")


def _model_frame(data: pd.DataFrame, formula: str, offset):
    import formulaic

    offsets = [m.group(1) for m in _OFFSET.finditer(formula)]
    rhs_formula = _OFFSET.sub("", formula).strip()
    if rhs_formula.endswith("~"):
        rhs_formula += " 1"
    try:
        mm = formulaic.model_matrix(rhs_formula, data, na_action="ignore")
    except Exception as e:  # formulaic raises its own error types
        msg = str(e).splitlines()[0]
        raise ModelError(f"formula '{formula}': {msg}") from None
    if not hasattr(mm, "lhs"):
        raise ModelError(f"formula '{formula}' has no outcome (write 'y ~ x1 + x2')")
    y = mm.lhs
    if y.shape[1] != 1:
        raise ModelError(f"formula '{formula}': the outcome must be one column, got {list(y.columns)}")
    x = mm.rhs
    off = np.zeros(len(data))
    for expr in offsets:
        o = formulaic.model_matrix(f"0 + I({expr})", data, na_action="ignore")
        off = off + np.asarray(o, dtype=float)[:, 0]
    if offset is not None:
        off = off + (data[offset].to_numpy(dtype=float) if isinstance(offset, str) else np.asarray(offset, float))
    return np.asarray(y, dtype=float)[:, 0], np.asarray(x, dtype=float), list(x.columns), off, mm, y.columns[0]


def _variables(formula: str, data: pd.DataFrame) -> list[str]:
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", formula))
    return [c for c in data.columns if c in names]


# ---------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------
def _irls(x, y, w, off, family, theta=None, beta=None, maxit=100, tol=1e-12):
    p = x.shape[1]
    if beta is None:
        if family == "binomial":
            mu = np.clip((y + 0.5) / 2.0, 0.25, 0.75)
            eta = special.logit(mu)
        else:
            mu = y + 0.1
            eta = np.log(mu)
        beta = np.zeros(p)
        first = True
    else:
        first = False
    converged = False
    dev_old = np.inf
    for it in range(maxit):  # noqa: B007 (it is returned)
        if not first:
            eta = x @ beta + off
            mu = _mu(family, eta)
        first = False
        v, dmu = _var_and_dmu(family, mu, theta)
        v = np.maximum(v, 1e-300)
        ww = w * dmu * dmu / v
        z = (eta - off) + (y - mu) / np.where(dmu == 0, 1e-300, dmu)
        xtw = x.T * ww
        try:
            beta_new = np.linalg.solve(xtw @ x, xtw @ z)
        except np.linalg.LinAlgError:
            beta_new = np.linalg.lstsq(xtw @ x, xtw @ z, rcond=None)[0]
        eta = x @ beta_new + off
        mu = _mu(family, eta)
        dev = _deviance(family, y, mu, w, theta)
        if np.max(np.abs(beta_new - beta)) < tol * (1 + np.max(np.abs(beta_new))) or abs(dev - dev_old) < tol * (
                abs(dev) + 0.1):
            beta = beta_new
            converged = True
            break
        beta, dev_old = beta_new, dev
    return beta, converged, it + 1


def _deviance(family, y, mu, w, theta):
    with np.errstate(divide="ignore", invalid="ignore"):
        if family == "binomial":
            d = -2 * (special.xlogy(y, mu) + special.xlogy(1 - y, 1 - mu))
        elif family == "poisson":
            d = 2 * (special.xlogy(y, y / mu) - (y - mu))
        else:
            d = 2 * (special.xlogy(y, y / mu) - (y + theta) * np.log((y + theta) / (mu + theta)))
    return float(np.nansum(w * d))


def _nb_loglik(y, mu, w, t):
    """Weighted NB2 log-likelihood in the shape ``t`` (terms without ``t`` left out)."""
    return float(np.sum(w * (special.gammaln(y + t) - special.gammaln(t) + t * np.log(t / (t + mu))
                             + y * np.log(mu / (t + mu)))))


def _theta_ml(y, mu, w, theta0=1.0):
    """Weighted ML of the NB2 shape theta given mu: Newton on log theta with steps of at most 1
    and backtracking on the log-likelihood, so it converges from any start (victimization
    counts have theta far below 1)."""
    lt = float(np.log(theta0))
    ll = _nb_loglik(y, mu, w, np.exp(lt))
    for _ in range(200):
        t = np.exp(lt)
        s = special.digamma(y + t) - special.digamma(t) + np.log(t / (t + mu)) + 1 - (y + t) / (t + mu)
        h = special.polygamma(1, y + t) - special.polygamma(1, t) + 1 / t - 2 / (t + mu) + (y + t) / (t + mu) ** 2
        g = np.sum(w * s) * t  # d ll / d log t
        hh = np.sum(w * h) * t * t + g  # d2 ll / d log t2
        step = -g / hh if hh < 0 else np.sign(g)
        step = float(np.clip(step, -1.0, 1.0))
        for _ in range(60):  # backtrack until the log-likelihood does not decrease
            lt_new = float(np.clip(lt + step, -30, 30))
            ll_new = _nb_loglik(y, mu, w, np.exp(lt_new))
            if ll_new >= ll - 1e-12 * abs(ll):
                break
            step /= 2
        done = abs(lt_new - lt) < 1e-12
        lt, ll = lt_new, ll_new
        if done:
            break
    return float(np.exp(lt))


def _fit(x, y, w, off, family, beta=None):
    if family != "negbin":
        b, conv, it = _irls(x, y, w, off, family, beta=beta)
        return b, None, conv, it
    b, conv, it = _irls(x, y, w, off, "poisson", beta=beta)
    theta = 1.0
    for _ in range(50):
        mu = _mu("negbin", x @ b + off)
        theta_new = _theta_ml(y[w > 0], mu[w > 0], w[w > 0], theta)
        b_new, conv, it = _irls(x, y, w, off, "negbin", theta=theta_new, beta=b)
        done = abs(theta_new - theta) < 1e-10 * (1 + theta) and np.max(np.abs(b_new - b)) < 1e-12
        b, theta = b_new, theta_new
        if done:
            break
    return b, theta, conv, it


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass
class GLMResult:
    """A fitted survey GLM (statsmodels spirit: a value to inspect, tidy tables).

    table: term, estimate, se, t, df, p_value, ci_low, ci_high, exp_estimate, exp_ci_low,
    exp_ci_high, plus odds_ratio/or_ci_low/or_ci_high (binomial) or rate_ratio/rr_ci_low/
    rr_ci_high (poisson, negbin).
    """

    formula: str
    family: str
    terms: list
    coef: pd.Series
    vcov: pd.DataFrame
    df_residual: float
    n: int
    n_dropped: int
    weighted_n: float
    dispersion: float
    theta: float | None
    converged: bool
    level: float
    table: pd.DataFrame = field(repr=False)
    design_df: float = np.nan
    _design: object = field(repr=False, default=None)
    _x: np.ndarray = field(repr=False, default=None)
    _mm: object = field(repr=False, default=None)
    _fit_rows: np.ndarray = field(repr=False, default=None)
    _off: np.ndarray = field(repr=False, default=None)
    _influence: np.ndarray = field(repr=False, default=None)
    _rep_betas: np.ndarray = field(repr=False, default=None)

    def summary(self) -> pd.DataFrame:
        return self.table

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        level = level or self.level
        q = stats.t.ppf((1 + level) / 2, self.df_residual)
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        return pd.DataFrame({"ci_low": self.coef - q * se, "ci_high": self.coef + q * se}, index=self.coef.index)

    def wald_test(self, terms) -> pd.DataFrame:
        """Wald test that every coefficient of ``terms`` is 0 (as R's ``regTermTest``, method
        "Wald"): F = W / q on (q, df_residual) degrees of freedom.  A term is a coefficient name
        or a formula term (e.g. ``"C(region)"``, which takes all its levels)."""
        terms = [terms] if isinstance(terms, str) else list(terms)
        idx = []
        for t in terms:
            hit = [i for i, name in enumerate(self.terms) if name == t or name.startswith(f"{t}[")]
            if not hit:
                raise ModelError(f"wald_test: no coefficient for term '{t}' (terms: {', '.join(self.terms)})")
            idx += hit
        idx = sorted(set(idx))
        b = self.coef.to_numpy()[idx]
        v = self.vcov.to_numpy()[np.ix_(idx, idx)]
        chisq = float(b @ np.linalg.solve(v, b))
        q = len(idx)
        f = chisq / q
        return pd.DataFrame([{"terms": " + ".join(terms), "chisq": chisq, "F": f, "df1": q, "df2": self.df_residual,
                              "p_value": float(stats.f.sf(f, q, self.df_residual))}])

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "response") -> np.ndarray:
        x = self._x if newdata is None else np.asarray(self._mm.rhs.model_spec.get_model_matrix(newdata), float)
        off = self._off if newdata is None else np.zeros(len(newdata))
        eta = x @ self.coef.to_numpy() + off
        return eta if type == "link" else _mu(self.family, eta)

    def predictive_margins(self, variable: str, level: float | None = None,
                           variance: str = "svypredmeans") -> pd.DataFrame:
        """Predictive margins of ``variable``: for each of its levels, the weighted mean over the
        fitted rows of the prediction with every row set to that level (as R's
        ``svypredmeans``), with a design-based SE.

        ``variance="svypredmeans"`` (R's): the design variance of the mean of the predictions
        at fixed coefficients plus the variance from the coefficients (``g' V g``), without
        their covariance; ``"linearized"``: the full linearization, the cross term included.
        Replicate designs: the margins recomputed on every replicate (refitted coefficients,
        replicate weights).  Intervals: t on the design degrees of freedom.
        """
        from .design import ReplicateDesign
        from .variance import replicate_vcov

        if variance not in ("svypredmeans", "linearized"):
            raise ModelError("variance must be 'svypredmeans' or 'linearized'")
        level = level or self.level
        d = self._design
        data = d.data
        if variable not in data.columns:
            raise ModelError(f"predictive_margins: '{variable}' is not a variable of the data")
        s = data[variable]
        rows = self._fit_rows
        levels = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else sorted(s.dropna().unique())
        if isinstance(s.dtype, pd.CategoricalDtype):  # levels with no case in the fit were left out of it
            present = set(s[rows & (d.w > 0)].dropna().unique())
            levels = [lev for lev in levels if lev in present]
        wf = np.where(rows, d.w, 0.0)
        big_w = wf.sum()
        beta = self.coef.to_numpy()
        spec = self._mm.rhs.model_spec
        est, cond, grads, xls = [], [], [], []
        for lev in levels:
            nd = data.copy(deep=False)
            nd[variable] = pd.Categorical([lev] * len(nd), categories=levels) if isinstance(
                s.dtype, pd.CategoricalDtype) else lev
            mm = spec.get_model_matrix(nd, na_action="ignore")
            mm = mm[list(self.coef.index)] if set(self.coef.index) <= set(mm.columns) else mm
            xl = np.nan_to_num(np.asarray(mm, float))
            mu = _mu(self.family, np.where(rows, xl @ beta + self._off, 0.0))
            m = float(np.sum(wf * mu) / big_w)
            _, dmu = _var_and_dmu(self.family, mu, self.theta)
            est.append(m)
            cond.append(np.where(rows, wf * (mu - m) / big_w, 0.0))
            grads.append((xl * (wf * dmu)[:, None]).sum(axis=0) / big_w)
            xls.append(xl)
        g = np.array(grads)  # levels x p
        if isinstance(d, ReplicateDesign):
            reps = np.empty((len(levels), d.n_replicates))
            for j in range(d.n_replicates):
                wr = np.where(rows, d.repw[:, j + 1], 0.0)
                for i, xl in enumerate(xls):
                    mu = _mu(self.family, np.where(rows, xl @ self._rep_betas[:, j] + self._off, 0.0))
                    reps[i, j] = np.sum(wr * mu) / wr.sum()
            v = replicate_vcov(np.array(est), reps, d.scale, d.rscales, d.mse)
        elif variance == "linearized":
            v = _design_vcov(d, np.column_stack(cond) + self._influence @ g.T)
        else:
            v = _design_vcov(d, np.column_stack(cond)) + g @ self.vcov.to_numpy() @ g.T
        se = np.sqrt(np.clip(np.diag(v), 0, None))
        ddf = float(d.df)  # margins are means over the design (R: degf of the design)
        q = stats.t.ppf((1 + level) / 2, ddf)
        out = pd.DataFrame({"variable": variable, "level": [str(x) for x in levels], "estimate": est, "se": se})
        out["ci_low"], out["ci_high"] = out.estimate - q * se, out.estimate + q * se
        out["df"] = ddf
        from .estimate import Covariance

        out.attrs["vcov"] = Covariance(v)
        return out


def _design_vcov(design, z: np.ndarray) -> np.ndarray:
    """Taylor design variance of influence columns z (n x k)."""
    r, c = np.nonzero(z)
    return design._vcov(r, c, z[r, c], z.shape[1])


# ---------------------------------------------------------------------------------------------
def glm(design, formula: str, family: str = "binomial", offset=None, subset=None, level: float = 0.95) -> GLMResult:
    """Survey-weighted GLM with design-based SEs (as R ``svyglm``; see the module docstring)."""
    from threadpoolctl import threadpool_limits

    # the products here are tall and thin: one BLAS thread is 2-3x faster than two on 2 cores
    with threadpool_limits(limits=1, user_api="blas"):
        return _glm(design, formula, family, offset, subset, level)


def _glm(design, formula, family, offset, subset, level) -> GLMResult:
    from .design import ReplicateDesign

    if family not in FAMILIES:
        raise ModelError(f"family must be one of {', '.join(FAMILIES)}, not '{family}'")
    if subset is not None:  # a domain of the full design (its df is the domain's, as R)
        design = design.subset(subset)
    data = design.data
    dom = design._in_domain().copy()
    y, x, terms, off, mm, yname = _model_frame(data, formula, offset)
    complete = np.isfinite(y) & np.isfinite(x).all(axis=1) & np.isfinite(off)
    dropped = dom & ~complete
    n_dropped = int(dropped.sum())
    if n_dropped:
        used = _variables(formula, data)
        counts = {v: int((dom & data[v].isna().to_numpy()).sum()) for v in used if data[v].isna().any()}
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items() if v) or "transformed values"
        warnings.warn(f"glm: {n_dropped} rows of the domain have a missing value and are left out of the fit "
                      f"({detail}); they remain in the design", SurveyWarning, stacklevel=3)
    rows = dom & complete
    w = np.where(rows, design.w, 0.0)
    if not np.any(w > 0):
        raise ModelError("glm: no row of the domain has complete data")
    y = np.where(rows, y, 0.0)
    x = np.where(rows[:, None], x, 0.0)
    off = np.where(rows, off, 0.0)
    _check_outcome(y, w, family, yname)
    x, terms = _drop_empty_levels(x, w, terms)
    _check_design_matrix(x, w, terms)
    beta, theta, conv, _ = _fit(x, y, w, off, family)
    if not conv:
        warnings.warn(f"glm: the fit did not converge ({formula})", SurveyWarning, stacklevel=2)
    if family == "binomial":
        _check_separation(x, y, w, terms, beta)
    eta = x @ beta + off
    mu = _mu(family, eta)
    v, dmu = _var_and_dmu(family, mu, theta)
    ww = w * dmu * dmu / np.maximum(v, 1e-300)
    a_inv = np.linalg.pinv((x.T * ww) @ x)
    resid = (y - mu) * dmu / np.maximum(v, 1e-300)
    infl = (x * (w * resid)[:, None]) @ a_inv  # n x p influence on beta
    p = x.shape[1]
    rep_betas = None
    if isinstance(design, ReplicateDesign):
        vcov, rep_betas = _replicate_vcov(design, x, y, off, rows, family, beta, theta)
    else:
        r = np.flatnonzero(rows)
        rr = np.repeat(r, p)
        cc = np.tile(np.arange(p), len(r))
        vcov = design._vcov(rr, cc, infl[r].ravel(), p)
    # degrees of freedom of the design the model is fitted on (rows with missing values are a
    # domain left out, as R's na.omit on a survey design)
    fit_design = design if (rows == design._in_domain()).all() or isinstance(design, ReplicateDesign) else (
        design.subset(rows))
    design_df = float(fit_design.df)
    df_res = design_df + 1 - p
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = (y - mu) / np.sqrt(np.maximum(v, 1e-300))
    # as R's summary.svyglm: the design-weighted variance of the Pearson residuals
    pos = w > 0
    n_fit = int(pos.sum())
    rbar = np.sum(w * pearson) / np.sum(w)
    dispersion = float(np.sum(w * (pearson - rbar) ** 2) / np.sum(w) * n_fit / max(n_fit - 1, 1))
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = beta / se
    q = stats.t.ppf((1 + level) / 2, df_res)
    table = pd.DataFrame({"term": terms, "estimate": beta, "se": se, "t": t, "df": df_res,
                          "p_value": 2 * stats.t.sf(np.abs(t), df_res),
                          "ci_low": beta - q * se, "ci_high": beta + q * se})
    table["exp_estimate"], table["exp_ci_low"], table["exp_ci_high"] = (
        np.exp(table.estimate), np.exp(table.ci_low), np.exp(table.ci_high))
    name = "odds_ratio" if family == "binomial" else "rate_ratio"
    short = "or" if family == "binomial" else "rr"
    table[name], table[f"{short}_ci_low"], table[f"{short}_ci_high"] = (
        table.exp_estimate, table.exp_ci_low, table.exp_ci_high)
    coef = pd.Series(beta, index=terms, name="estimate")
    return GLMResult(formula=formula, family=family, terms=terms, coef=coef,
                     vcov=pd.DataFrame(vcov, index=terms, columns=terms), df_residual=df_res,
                     n=int((rows & (design.w > 0)).sum()), n_dropped=n_dropped, weighted_n=float(w.sum()),
                     dispersion=dispersion, theta=theta, converged=conv, level=level, table=table,
                     design_df=design_df, _design=design, _x=x, _mm=mm, _fit_rows=rows, _off=off,
                     _influence=infl, _rep_betas=rep_betas)


def _replicate_vcov(design, x, y, off, rows, family, beta, theta, chunk: int = 1_024, maxit: int = 25):
    """Refit on every replicate at once: Newton steps for all replicates in one pass over the
    rows per iteration (gradients and Hessians as matrix products, the Hessian from the
    row-wise products of the upper triangle of x x'), in cache-sized row chunks, starting at
    the full-sample estimate; theta fixed for negbin.  Returns the replicate covariance and
    the replicate coefficients."""
    from .variance import replicate_vcov

    n, p = x.shape
    r_ = design.n_replicates
    fit_rows = np.flatnonzero(rows)
    everyone = len(fit_rows) == n
    xr, yr, offr = (x, y, off) if everyone else (x[fit_rows], y[fit_rows], off[fit_rows])
    iu = np.triu_indices(p)
    b = np.repeat(beta[:, None], r_, axis=1)
    mu0 = _mu(family, xr @ beta + offr)  # the first pass: every replicate at the full-sample beta
    for it in range(maxit):
        g = np.zeros((p, r_))
        h = np.zeros((len(iu[0]), r_))
        for a in range(0, len(fit_rows), chunk):
            sl = slice(a, a + chunk)
            xc = xr[sl]
            wc = design.repw[sl, 1:] if everyone else design.repw[fit_rows[sl], 1:]
            if it == 0:  # one shared column of mu: no n x R work but the products
                m0 = mu0[sl]
                v, dmu = _var_and_dmu(family, m0, theta)
                v = np.maximum(v, 1e-300)
                g += xc.T @ (wc * ((yr[sl] - m0) * dmu / v)[:, None])
                h += (xc[:, iu[0]] * xc[:, iu[1]]).T @ (wc * (dmu * dmu / v)[:, None])
                continue
            mu = _mu(family, xc @ b + offr[sl, None])
            if family == "negbin":
                v, dmu = _var_and_dmu(family, mu, theta)
                v = np.maximum(v, 1e-300)
                resid, hw = (yr[sl, None] - mu) * dmu / v, dmu * dmu / v
            else:  # canonical links: score weight 1, information weight V(mu)
                resid = yr[sl, None] - mu
                hw = mu * (1.0 - mu) if family == "binomial" else mu
            g += xc.T @ (wc * resid)
            h += (xc[:, iu[0]] * xc[:, iu[1]]).T @ (wc * hw)
        step = np.empty_like(b)
        hm = np.zeros((p, p))
        for j in range(r_):
            hm[iu] = h[:, j]
            hm.T[iu] = h[:, j]
            step[:, j] = np.linalg.lstsq(hm, g[:, j], rcond=None)[0]
        b += step
        # Newton converges quadratically from the full-sample estimate: after a step below
        # 1e-7 the error left is ~1e-14
        if np.max(np.abs(step)) < 1e-7 * (1 + np.max(np.abs(b))):
            break
    return replicate_vcov(beta, b, design.scale, design.rscales, design.mse), b


def _check_outcome(y, w, family, name):
    yy = y[w > 0]
    if family == "binomial":
        bad = int(((yy < 0) | (yy > 1)).sum())
        if bad:
            raise ModelError(f"binomial outcome '{name}' must be 0/1 (or a proportion); {bad} rows are outside [0, 1]")
        if yy.min() == yy.max():
            raise ModelError(f"binomial outcome '{name}' is constant ({yy.min():g}) in the domain")
    else:
        bad = int((yy < 0).sum())
        if bad:
            raise ModelError(f"count outcome '{name}' is negative for {bad} rows")


def _drop_empty_levels(x, w, terms):
    """A category level with no case in the domain is dropped, with a warning naming it (as
    R's glm drops unused factor levels)."""
    pos = w > 0
    empty = [j for j, t in enumerate(terms) if "[" in t and np.all(x[pos, j] == 0)]
    if empty:
        warnings.warn(f"glm: {', '.join(terms[j] for j in empty)} has no case in the domain and is left out "
                      "of the model", SurveyWarning, stacklevel=4)
        keep = [j for j in range(len(terms)) if j not in empty]
        x, terms = x[:, keep], [terms[j] for j in keep]
    return x, terms


def _check_design_matrix(x, w, terms):
    pos = w > 0
    for j, t in enumerate(terms):
        col = x[pos, j]
        if t == "Intercept":
            continue
        if np.all(col == 0):
            raise ModelError(f"term '{t}' has no case in the domain (all {int(pos.sum())} rows are 0)")
        if np.all(col == col[0]):
            raise ModelError(f"term '{t}' is constant ({col[0]:g}) in the domain: it cannot be estimated "
                             "beside the intercept")
    rank = np.linalg.matrix_rank(x[pos])
    if rank < x.shape[1]:
        raise ModelError(f"the model matrix is rank deficient ({rank} of {x.shape[1]} columns): collinear terms")


def _check_separation(x, y, w, terms, beta):
    pos = w > 0
    sep = []
    for j, t in enumerate(terms):
        col = x[pos, j]
        if t == "Intercept" or not np.isin(col, [0.0, 1.0]).all():
            continue
        ones = col == 1
        yy = y[pos][ones]
        if len(yy) and (np.all(yy == 1) or np.all(yy == 0)):
            sep.append(t)
    big = [t for t, b in zip(terms, beta) if abs(b) > 15 and t != "Intercept" and t not in sep]
    if sep:
        warnings.warn(f"glm: (quasi-)complete separation on {', '.join(sep)}: the outcome is constant where "
                      "these are 1, so their coefficients and SEs are not meaningful", SeparationWarning, stacklevel=3)
    if big:
        warnings.warn(f"glm: coefficients of {', '.join(big)} are extreme (|b| > 15): possible separation "
                      "by a continuous predictor; their SEs are not meaningful", SeparationWarning, stacklevel=3)
