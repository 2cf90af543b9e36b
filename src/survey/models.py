"""Design-based regression: survey-weighted GLMs with design-based standard errors (as R's
``svyglm``), for risk and protective factors of victimization.

``design.glm(formula, family=...)`` fits by weighted maximum (pseudo-)likelihood.  Families:
``binomial`` (logit; R's quasibinomial), ``poisson`` (log; quasipoisson) and ``negbin``
(negative binomial NB2, log link, ``theta`` estimated by weighted maximum likelihood; Tseloni-style
models of repeat victimization counts).  Formulas go through *formulaic*; ``offset(expr)`` in the formula or
``offset=`` gives an offset (e.g. log exposure).

Categories and reference levels.  Before the design matrix is built, every categorical
predictor (a pandas categorical, a text column, or a column wrapped in ``C()``) loses the
categories that no row of the model holds with a weight above zero (value labels often list
more categories than a file holds: a region label set for a whole continent, a band nobody
falls in); they are named in a :class:`EmptyCategoryWarning` and listed in
``GLMResult.dropped_levels``.  An empty category is therefore never a reference level.  The
reference level of each categorical is then declared: ``reference={"region": "North"}`` names
it; otherwise ``reference_rule`` chooses it: ``"first"`` (default: the first category, in the
pandas category order, else sorted, that holds a case; the same as R's ``glm`` after
``droplevels``, and stable from one wave to the next) or ``"largest"`` (the category with the
largest sum of weights in the model's rows).  ``GLMResult.reference`` records the choice.

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


class EmptyCategoryWarning(SurveyWarning):
    """Categories of a predictor with no case in the model's rows were dropped before the fit."""


REFERENCE_RULES = ("first", "largest")


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


_C_WRAPPED = re.compile(r"\bC\(\s*`?([A-Za-z_][A-Za-z0-9_.]*)`?\s*[,)]")


def _level_key(v) -> str:
    """A category as text (2.0 and "2" are the same level when matching a reference)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _prepare_categories(data: pd.DataFrame, formula: str, dom: np.ndarray, w: np.ndarray, reference: dict,
                        rule: str):
    """Drop the categories with no case (weight > 0, complete data, in the domain) of every
    categorical predictor and put each one's reference level first.  Returns (data, dropped
    {variable: [levels]}, reference {variable: level}, rows whose value was an empty category)."""
    used = _variables(formula, data)
    lhs = formula.split("~", 1)[0]
    outcome = set(_variables(lhs, data)) if "~" in formula else set()
    wrapped = set(_C_WRAPPED.findall(formula))
    cats = [v for v in used if v not in outcome and (
        isinstance(data[v].dtype, pd.CategoricalDtype) or v in wrapped
        or not (pd.api.types.is_numeric_dtype(data[v].dtype) or pd.api.types.is_bool_dtype(data[v].dtype)))]
    unknown = [v for v in reference if v not in cats]
    if unknown:
        raise ModelError(f"reference: '{unknown[0]}' is not a categorical predictor of '{formula}' "
                         f"(categorical predictors: {', '.join(cats) or 'none'})")
    introduced = np.zeros(len(data), dtype=bool)
    if not cats:
        return data, {}, {}, introduced
    ok = dom & (w > 0) & data[used].notna().all(axis=1).to_numpy()
    out, dropped, refs = data, {}, {}
    for v in cats:
        s = data[v]
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = list(s.cat.categories)
        else:
            levels = sorted(s.dropna().unique(), key=lambda x: (not isinstance(x, (int, float, np.number)), x))
        wsum = pd.Series(w[ok], dtype=float).groupby(s[ok].to_numpy(), sort=False).sum()
        held = [lv for lv in levels if lv in wsum.index]
        empty = [lv for lv in levels if lv not in wsum.index]
        if len(held) == 1:
            raise ModelError(f"predictor '{v}' holds a single category ('{_level_key(held[0])}') in the "
                             f"{int(ok.sum()):,} rows of the model: it cannot be estimated")
        if not held:
            continue  # no complete row: glm says so
        if v in reference:
            want = _level_key(reference[v])
            match = [lv for lv in levels if _level_key(lv) == want]
            if not match:
                import difflib

                close = difflib.get_close_matches(want, [_level_key(lv) for lv in levels], n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ModelError(f"reference of '{v}': '{want}' is not one of its categories{hint} "
                                 f"({', '.join(_level_key(lv) for lv in levels)})")
            if match[0] in empty:
                raise ModelError(f"reference of '{v}': category '{want}' has no case in the {int(ok.sum()):,} "
                                 "rows of the model")
            ref = match[0]
        elif rule == "largest":
            ref = max(held, key=lambda lv: (wsum[lv], -held.index(lv)))
        else:
            ref = held[0]
        refs[v] = _level_key(ref)
        order = [ref] + [lv for lv in held if lv != ref]
        if empty:
            dropped[v] = [_level_key(lv) for lv in empty]
        if order != levels:
            if out is data:
                out = data.copy(deep=False)
            gone = s.notna().to_numpy() & ~s.isin(held).to_numpy()
            introduced |= gone
            vals = s.astype(object).where(~gone)
            out[v] = pd.Categorical(vals, categories=order)
    if dropped:
        detail = "; ".join(f"'{v}': {', '.join(repr(x) for x in lv)}" for v, lv in dropped.items())
        warnings.warn(f"glm: {sum(map(len, dropped.values()))} categor{'y' if sum(map(len, dropped.values())) == 1 else 'ies'} "
                      f"with no case in the {int(ok.sum()):,} rows of the model dropped before the fit ({detail}); "
                      "the reference is a category that holds cases", EmptyCategoryWarning, stacklevel=4)
    return out, dropped, refs, introduced


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
    reference: dict = field(default_factory=dict)       # categorical variable -> its reference level
    dropped_levels: dict = field(default_factory=dict)  # variable -> categories with no case, dropped
    _design: object = field(repr=False, default=None)
    _x: np.ndarray = field(repr=False, default=None)
    _mm: object = field(repr=False, default=None)
    _fit_rows: np.ndarray = field(repr=False, default=None)
    _off: np.ndarray = field(repr=False, default=None)
    _influence: np.ndarray = field(repr=False, default=None)
    _rep_betas: np.ndarray = field(repr=False, default=None)
    _data: pd.DataFrame = field(repr=False, default=None)  # the data with the categories as fitted

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
        return term_wald_test(self.terms, self.coef, self.vcov, terms, self.df_residual, ModelError)

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
        data = d.data if self._data is None else self._data
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
def glm(design, formula: str, family: str = "binomial", offset=None, subset=None, level: float = 0.95,
        reference: dict | None = None, reference_rule: str = "first") -> GLMResult:
    """Survey-weighted GLM with design-based SEs (as R ``svyglm``; see the module docstring).

    ``reference``: ``{variable: level}``, the reference level of categorical predictors;
    ``reference_rule``: ``"first"`` or ``"largest"``, for the categoricals not in ``reference``.
    Categories with no case in the model's rows are dropped first (never a reference)."""
    from threadpoolctl import threadpool_limits

    if reference_rule not in REFERENCE_RULES:
        raise ModelError(f"reference_rule must be one of {', '.join(REFERENCE_RULES)}, not '{reference_rule}'")
    # the products here are tall and thin: one BLAS thread is 2-3x faster than two on 2 cores
    with threadpool_limits(limits=1, user_api="blas"):
        return _glm(design, formula, family, offset, subset, level, dict(reference or {}), reference_rule)


def _glm(design, formula, family, offset, subset, level, reference=None, reference_rule="first") -> GLMResult:
    from .design import ReplicateDesign

    if family not in FAMILIES:
        raise ModelError(f"family must be one of {', '.join(FAMILIES)}, not '{family}'")
    if subset is not None:  # a domain of the full design (its df is the domain's, as R)
        design = design.subset(subset)
    data0 = design.data
    dom = design._in_domain().copy()
    data, dropped_levels, refs, introduced = _prepare_categories(data0, formula, dom, np.asarray(design.w, float),
                                                                 reference or {}, reference_rule)
    y, x, terms, off, mm, yname = _model_frame(data, formula, offset)
    complete = np.isfinite(y) & np.isfinite(x).all(axis=1) & np.isfinite(off)
    # rows of a dropped (empty) category are rows the model never held (weight 0 or outside)
    dropped = dom & ~complete & ~introduced
    n_dropped = int(dropped.sum())
    if n_dropped:
        used = _variables(formula, data0)
        counts = {v: int((dom & data0[v].isna().to_numpy()).sum()) for v in used if data0[v].isna().any()}
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items() if v) or "transformed values"
        warnings.warn(f"glm: {n_dropped} rows of the domain have a missing value and are left out of the fit "
                      f"({detail}); they remain in the design", SurveyWarning, stacklevel=3)
    rows = dom & complete & ~introduced
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
                     design_df=design_df, reference=refs, dropped_levels=dropped_levels, _design=design, _x=x,
                     _mm=mm, _fit_rows=rows, _off=off, _influence=infl, _rep_betas=rep_betas, _data=data)


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


# =============================================================================================
# Models from a parameter set: risk models of victimization and models of other outcomes
# =============================================================================================
# A model is declared as data (a mapping of a parameter set, never evaluated as code):
#
#   name: unsafe_after_dark            # letters, digits, _ (unique)
#   outcome: not safe_dark             # a perception item (its 0/1 coding perc__<item>), "not <item>"
#                                      # (its complement), victim:<crime> (0/1) or count:<crime> (n__)
#   predictors: [victim:personal, sex, age_band]   # domain names and victim:<crime>
#   family: logistic                   # logistic | poisson | negbin (count: outcomes: poisson, negbin)
#   reference: {region: North}         # optional reference levels of domain predictors
#   reference_rule: first              # optional: first | largest (default: the run's reference_rule)
#
# The risk models of the risk notebook are the same objects: outcome victim:<crime>, predictors
# the run's risk_predictors (default: risk_predictor_default).

MODEL_KEYS = ("name", "outcome", "predictors", "family", "reference", "reference_rule")
MODEL_FAMILY = {"logistic": "binomial", "poisson": "poisson", "negbin": "negbin"}
ON_FAILURE = ("fail", "record")
MODEL_TABLE_COLUMNS = [
    "model", "outcome", "family", "crime_type", "unit", "formula", "term", "label", "reference", "estimate", "se",
    "t", "df", "p_value", "ci_low", "ci_high", "exp_estimate", "exp_ci_low", "exp_ci_high", "odds_ratio",
    "or_ci_low", "or_ci_high", "rate_ratio", "rr_ci_low", "rr_ci_high", "n", "n_dropped", "weighted_n",
    "dropped_categories", "status", "note"]
"""Columns of ``risk_models.csv``: one row per coefficient of a fitted model (``status``
``fitted``), or one row per model that could not be fitted (``status`` ``not fitted``, the
reason in ``note``, estimates empty) when the run records failures.  ``reference``: the
reference level the coefficient is compared with (``Region: North (reference)``);
``dropped_categories``: the categories with no case left out of that model; ``crime_type``: the
crime of a victimization risk model (``risk_<crime>``), empty for other models."""
MARGIN_COLUMNS = ["model", "outcome", "crime_type", "domain", "variable", "level", "estimate", "se", "ci_low",
                  "ci_high", "df"]
_VICTIM_PREFIXES = ("n", "k", "victim", "rep", "repunk", "vrep", "types", "rv", "ri", "mv")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModelSpecError(SurveyError, ValueError):
    """A model of a parameter set is not valid (unknown key, outcome, predictor or family)."""


class ModelFitError(ModelError):
    """A model of the run could not be fitted (names the model, its outcome and why)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model, checked against the survey spec (see the section comment above)."""

    name: str
    outcome: str
    outcome_column: str
    complement: bool
    unit: str
    family: str
    predictors: tuple
    reference: dict = field(default_factory=dict)
    reference_rule: str | None = None
    crime_type: str | None = None

    def outcome_expression(self) -> str:
        return f"I(1 - {self.outcome_column})" if self.complement else self.outcome_column

    def predictor_terms(self) -> list[str]:
        return [f"victim__{p.split(':', 1)[1]}" if p.startswith("victim:") else f"C({p})" for p in self.predictors]

    def formula(self) -> str:
        return f"{self.outcome_expression()} ~ " + " + ".join(self.predictor_terms())


def _close(name, known) -> str:
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def victimization_variables(spec) -> set[str]:
    """Variables of the spec's victimization section: crime code, incident weight, screeners,
    counts, reported items, and the variables of its series and exclusion rules."""
    from .expr import parse

    v = spec.victimization
    if v is None:
        return set()
    names = {v.crime_code, v.weight, v.reported.variable if v.reported else None}
    for t in v.types:
        names |= {t.count.variable if t.count else None, t.victim.variable if t.victim else None,
                  t.reported.variable if t.reported else None}
    exprs = [e.where for e in v.exclude] + ([v.series.when, v.series.count] if v.series else [])
    for e in exprs:
        names |= set(parse(e).names)
    return {n for n in names if n}


def victimization_domains(spec) -> list[str]:
    """Domains whose variable is an item of the victimization section (see
    :func:`victimization_variables`), a column the ingest derives from incidents (``victim__``,
    ``n__``...), or a variable of the incident file: victim status, never a predictor of
    victimization by default."""
    v = spec.victimization
    if v is None:
        return []
    items = victimization_variables(spec)
    inc_file = v.file if v.source == "incidents" else None
    out = []
    for name, d in spec.domains.items():
        if d.variable is None:  # a crossed domain: see its parts
            continue
        derived = "__" in d.variable and d.variable.split("__", 1)[0] in _VICTIM_PREFIXES
        if d.variable in items or derived or (inc_file is not None and d.file == inc_file):
            out.append(name)
    return out


def risk_predictor_default(spec) -> list[str]:
    """The default predictors of the victimization risk models: the spec's domains except
    :func:`victimization_domains`."""
    exclude = set(victimization_domains(spec))
    return [d for d, dom in spec.domains.items() if d not in exclude and dom.cross is None]


def _unit_of(spec, crime: str) -> str:
    v = spec.victimization
    units = {t.unit for t in v.types if t.name in v.members(crime)}
    if len(units) != 1:
        raise ModelSpecError(f"crime group '{crime}' mixes household and person crime types")
    return units.pop()


def check_models_value(value, what: str = "models") -> list[dict] | None:
    """The shape of a ``models`` parameter (a list of mappings with known keys and plain
    values), before the spec is read.  Returns a copy (or None)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise ModelSpecError(f"{what} must be a non-empty list of model mappings (name, outcome, predictors, "
                             f"family), not {value!r}")
    out, names = [], []
    for i, m in enumerate(value):
        where = f"{what}[{i + 1}]"
        if not isinstance(m, dict):
            raise ModelSpecError(f"{where} must be a mapping (name, outcome, predictors, family), not {m!r}")
        bad = [k for k in m if k not in MODEL_KEYS]
        if bad:
            raise ModelSpecError(f"{where}: unknown key '{bad[0]}'{_close(bad[0], MODEL_KEYS)} "
                                 f"(keys: {', '.join(MODEL_KEYS)})")
        for k in ("name", "outcome", "predictors"):
            if m.get(k) in (None, "", []):
                raise ModelSpecError(f"{where}: '{k}' is required")
        name = m["name"]
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ModelSpecError(f"{where}: name must be letters, digits and _ (not starting with a digit), "
                                 f"not {name!r}")
        where = f"{what} '{name}'"
        if name.startswith("risk_"):
            raise ModelSpecError(f"{where}: names starting with risk_ are the victimization risk models' "
                                 "(risk_<crime>); choose another name")
        if name in names:
            raise ModelSpecError(f"{where}: two models are named '{name}'")
        names.append(name)
        if not isinstance(m["outcome"], str):
            raise ModelSpecError(f"{where}: outcome must be text (an item, 'not <item>', victim:<crime> or "
                                 f"count:<crime>), not {m['outcome']!r}")
        preds = m["predictors"]
        if isinstance(preds, str):
            preds = [p.strip() for p in preds.split(",") if p.strip()]
        if not isinstance(preds, (list, tuple)) or not all(isinstance(p, str) for p in preds):
            raise ModelSpecError(f"{where}: predictors must be a list of names, not {preds!r}")
        dup = sorted({p for p in preds if list(preds).count(p) > 1})
        if dup:
            raise ModelSpecError(f"{where}: predictor {', '.join(dup)} given twice")
        family = m.get("family", "logistic")
        if family not in MODEL_FAMILY:
            raise ModelSpecError(f"{where}: family must be one of {', '.join(MODEL_FAMILY)}, not {family!r}"
                                 f"{_close(family, MODEL_FAMILY)}")
        ref = m.get("reference") or {}
        if not isinstance(ref, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                                and not isinstance(v, bool) for k, v in ref.items()):
            raise ModelSpecError(f"{where}: reference must be a mapping {{domain: level}}, not {ref!r}")
        rule = m.get("reference_rule")
        if rule is not None and rule not in REFERENCE_RULES:
            raise ModelSpecError(f"{where}: reference_rule must be one of {', '.join(REFERENCE_RULES)}, not "
                                 f"{rule!r}{_close(rule, REFERENCE_RULES)}")
        out.append({"name": name, "outcome": m["outcome"].strip(), "predictors": list(preds), "family": family,
                    "reference": {k: str(v) for k, v in ref.items()}, "reference_rule": rule})
    return out


def check_reference_value(value, what: str = "risk_reference") -> dict | None:
    """``{domain: level}`` (levels as text) or None."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value or not all(
            isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
            for k, v in value.items()):
        raise ModelSpecError(f"{what} must be a mapping {{domain: reference level}}, not {value!r}")
    return {k: str(v) for k, v in value.items()}


def _check_domain_predictors(spec, names, unit, where, check_unit=True) -> None:
    known = list(spec.domains)
    seen: dict[str, str] = {}
    for p in names:
        if p not in spec.domains:
            raise ModelSpecError(f"{where}: '{p}' is not a domain of the spec{_close(p, known)} "
                                 f"(domains: {', '.join(known) or 'none'})")
        d = spec.domains[p]
        if d.cross is not None:
            raise ModelSpecError(f"{where}: '{p}' crosses {', '.join(d.cross)}; give its parts as predictors "
                                 "(interaction terms are not offered)")
        if check_unit and d.units and unit not in d.units:
            raise ModelSpecError(f"{where}: domain '{p}' applies to {', '.join(d.units)} rates, not to the "
                                 f"{unit} unit of this model")
        key = f"{d.file or spec.design.file}:{d.variable}"
        if key in seen:
            raise ModelSpecError(f"{where}: domains '{seen[key]}' and '{p}' are two codings of the variable "
                                 f"'{d.variable}': they would be collinear; keep one")
        seen[key] = p


def _check_reference_levels(spec, reference: dict, where: str) -> None:
    """Reference levels of domains whose categories the spec declares (labels, recode) are
    checked before any data is read; the others (value labels of the file) when fitting."""
    for dom, level in reference.items():
        d = spec.domains.get(dom)
        if d is None:
            continue
        known = ([str(v) for v in d.labels.values()] if d.labels else list(d.recode) if d.recode else None)
        if known is not None and str(level) not in known:
            raise ModelSpecError(f"{where}: reference of '{dom}': '{level}' is not one of its categories"
                                 f"{_close(level, known)} ({', '.join(known)})")


def model_spec(spec, m: dict, what: str = "models", default_rule: str | None = None) -> ModelSpec:
    """One model mapping (from :func:`check_models_value`) checked against the survey spec."""
    where = f"{what} '{m['name']}'"
    v = spec.victimization
    crimes = (v.type_names() + list(v.groups)) if v is not None else []
    items = [i.name for i in spec.perception]
    out = m["outcome"]
    crime = None
    complement = False
    if ":" in out:
        kind, target = (x.strip() for x in out.split(":", 1))
        if kind not in ("victim", "count"):
            raise ModelSpecError(f"{where}: outcome '{out}': the prefix must be victim: or count:"
                                 f"{_close(kind + ':', ['victim:', 'count:'])}")
        if target not in crimes:
            raise ModelSpecError(f"{where}: outcome '{out}': '{target}' is not a crime type or group of the spec"
                                 f"{_close(target, crimes)} (known: {', '.join(crimes) or 'none'})")
        crime = target
        column = f"{'victim' if kind == 'victim' else 'n'}__{target}"
        unit = _unit_of(spec, target)
        if kind == "count" and m["family"] == "logistic":
            raise ModelSpecError(f"{where}: outcome '{out}' is a count: family poisson or negbin, not logistic")
        out = f"{kind}:{target}"
    else:
        item = out
        if out.lower().startswith("not "):
            item, complement = out[4:].strip(), True
        if item not in items:
            raise ModelSpecError(f"{where}: outcome '{out}': '{item}' is not a perception item of the spec"
                                 f"{_close(item, items)} (items: {', '.join(items) or 'none'}; or victim:<crime>)")
        column = f"perc__{item}"
        unit = spec.files[spec.design.file].unit
        out = f"not {item}" if complement else item
    domains, victims = [], []
    for p in m["predictors"]:
        if p.startswith("victim:"):
            c = p.split(":", 1)[1].strip()
            if c not in crimes:
                raise ModelSpecError(f"{where}: predictor '{p}': '{c}' is not a crime type or group of the spec"
                                     f"{_close(c, crimes)}")
            if crime is not None and set(v.members(c)) & set(v.members(crime)):
                raise ModelSpecError(f"{where}: predictor '{p}' shares crime types with the outcome '{out}': "
                                     "a victim status cannot predict itself")
            victims.append(f"victim:{c}")
        else:
            domains.append(p)
    _check_domain_predictors(spec, domains, unit, where)
    bad = [k for k in m.get("reference") or {} if k not in domains]
    if bad:
        raise ModelSpecError(f"{where}: reference: '{bad[0]}' is not a domain predictor of this model"
                             f"{_close(bad[0], domains)} (predictors: {', '.join(domains) or 'none'})")
    _check_reference_levels(spec, m.get("reference") or {}, where)
    return ModelSpec(name=m["name"], outcome=out, outcome_column=column, complement=complement, unit=unit,
                     family=m["family"], predictors=tuple(victims + domains), reference=dict(m.get("reference") or {}),
                     reference_rule=m.get("reference_rule") or default_rule, crime_type=crime)


def check_risk_parameters(spec, values: dict, where: str = "") -> None:
    """Check the risk notebook's parameters against the spec (risk_predictors,
    risk_reference, models), each problem one line with a "did you mean"."""
    preds = values.get("risk_predictors")
    if preds:
        _check_domain_predictors(spec, preds, None, f"{where}risk_predictors", check_unit=False)
        vict = [p for p in preds if p in victimization_domains(spec)]
        if vict:
            raise ModelSpecError(f"{where}risk_predictors: '{vict[0]}' is a victim-status domain (an item of the "
                                 "victimization section): it cannot predict victimization")
    ref = values.get("risk_reference") or {}
    allowed = preds or risk_predictor_default(spec)
    bad = [k for k in ref if k not in allowed]
    if bad:
        raise ModelSpecError(f"{where}risk_reference: '{bad[0]}' is not a risk predictor{_close(bad[0], allowed)} "
                             f"(risk predictors: {', '.join(allowed) or 'none'})")
    _check_reference_levels(spec, ref, f"{where}risk_reference")
    models = values.get("models") or []
    if models and spec.victimization is None and any(":" in m["outcome"] for m in models):
        raise ModelSpecError(f"{where}models: spec has no victimization section (victim:/count: outcomes)")
    for m in models:
        model_spec(spec, m, f"{where}models", values.get("reference_rule"))


def risk_models(spec, crime_types, predictors=None, reference=None, reference_rule="first") -> list[ModelSpec]:
    """The victimization risk models of the risk notebook: one logistic model per crime type or
    group (``risk_<crime>``), outcome ``victim:<crime>``, predictors the given domains (default:
    :func:`risk_predictor_default`) that apply to the crime's unit, one per source variable."""
    predictors = list(predictors) if predictors else risk_predictor_default(spec)
    out = []
    for c in crime_types:
        unit = _unit_of(spec, c)
        preds, seen = [], set()
        for p in predictors:
            d = spec.domains[p]
            key = f"{d.file or spec.design.file}:{d.variable}"
            if (d.units and unit not in d.units) or key in seen:
                continue
            seen.add(key)
            preds.append(p)
        ref = {k: v for k, v in (reference or {}).items() if k in preds}
        out.append(ModelSpec(name=f"risk_{c}", outcome=f"victim:{c}", outcome_column=f"victim__{c}",
                             complement=False, unit=unit, family="logistic", predictors=tuple(preds),
                             reference=ref, reference_rule=reference_rule, crime_type=c))
    return out


@dataclass
class ModelRun:
    """Fitted models of a run: ``table`` (:data:`MODEL_TABLE_COLUMNS`), ``margins``
    (:data:`MARGIN_COLUMNS`), ``fits`` (name -> GLMResult), ``failures`` (model, outcome,
    formula, reason), ``notes`` (name -> warnings of the fit)."""

    table: pd.DataFrame
    margins: pd.DataFrame
    fits: dict
    failures: list
    notes: dict
    specs: dict


def _term_label(spec, term: str) -> str:
    m = re.match(r"^C\((?P<var>[A-Za-z0-9_]+)\)\[T\.(?P<level>.*)\]$", term)
    if m and m["var"] in spec.domains:
        return f"{spec.domains[m['var']].label or m['var']}: {m['level']}"
    if term.startswith("victim__"):
        return f"Victim: {_crime_label(spec, term[8:])}"
    return term


def _crime_label(spec, crime: str) -> str:
    v = spec.victimization
    lab = next((t.label for t in v.types if t.name == crime), None) if v is not None else None
    return lab or crime.replace("_", " ").capitalize()


def _term_reference(spec, term: str, fit: GLMResult) -> str:
    m = re.match(r"^C\((?P<var>[A-Za-z0-9_]+)\)\[T\.(?P<level>.*)\]$", term)
    if m:
        var = m["var"]
        lab = spec.domains[var].label or var if var in spec.domains else var
        return f"{lab}: {fit.reference.get(var, '?')} (reference)"
    if term.startswith("victim__"):
        return f"Not a victim: {_crime_label(spec, term[8:])} (reference)"
    return ""


def _table_crime(ms: ModelSpec) -> str:
    """``crime_type`` of the table: the crime of a victimization risk model (``risk_<crime>``),
    empty for the other models (their outcome column says what they model), so that readers
    selecting a crime's risk model never mix in another model of the same crime."""
    return ms.crime_type if ms.crime_type and ms.name == f"risk_{ms.crime_type}" else ""


def fit_model(data, ms: ModelSpec, level: float = 0.95):
    """Fit one model on a ``SurveyData`` (design of the model's unit); returns (table,
    margins, fit, warnings).  Raises :class:`ModelFitError` (one line: model, outcome, why)
    when it cannot be fitted: a singular design, an outcome with no events, no complete row,
    a fit that does not converge."""
    spec = data.spec
    formula = ms.formula()
    why = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        try:
            fit = glm(data.design(ms.unit), formula, family=MODEL_FAMILY[ms.family], level=level,
                      reference=ms.reference, reference_rule=ms.reference_rule or "first")
        except SurveyError as e:
            why = str(e).splitlines()[0]
    msgs = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SurveyWarning)))
    if why is None and not fit.converged:
        why = "the fit did not converge"
    if why is None and not np.all(np.isfinite(fit.table["se"])):
        why = "the standard errors are not finite (singular design variance)"
    if why is not None:
        raise ModelFitError(f"model '{ms.name}' (outcome {ms.outcome}, {formula}) could not be fitted: {why}")
    t = fit.table.copy()
    for c in ("odds_ratio", "or_ci_low", "or_ci_high", "rate_ratio", "rr_ci_low", "rr_ci_high"):
        if c not in t.columns:
            t[c] = np.nan
    dropped = "; ".join(f"{spec.domains[k].label or k if k in spec.domains else k}: {', '.join(v)}"
                        for k, v in fit.dropped_levels.items())
    t = t.assign(model=ms.name, outcome=ms.outcome, family=ms.family, crime_type=_table_crime(ms), unit=ms.unit,
                 formula=formula, label=t["term"].map(lambda x: _term_label(spec, x)),
                 reference=t["term"].map(lambda x: _term_reference(spec, x, fit)), n=fit.n,
                 n_dropped=fit.n_dropped, weighted_n=fit.weighted_n, dropped_categories=dropped, status="fitted",
                 note="; ".join(msgs))
    margins = []
    for p in ms.predictors:
        if p.startswith("victim:"):
            continue
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Data has categories outside of the nominated levels")
            mg = fit.predictive_margins(p)
        mg.attrs = {}
        margins.append(mg.assign(model=ms.name, outcome=ms.outcome, crime_type=_table_crime(ms), domain=p))
    mt = pd.concat(margins, ignore_index=True)[MARGIN_COLUMNS] if margins else pd.DataFrame(columns=MARGIN_COLUMNS)
    return t[MODEL_TABLE_COLUMNS], mt, fit, msgs


def fit_models(data, models, on_failure: str = "fail", level: float = 0.95) -> ModelRun:
    """Fit every model (:class:`ModelSpec`).  ``on_failure="fail"`` (default): the first model
    that cannot be fitted raises :class:`ModelFitError` (one line naming the model, its
    outcome and why), so the run fails; ``"record"``: it becomes a ``not fitted`` row of the
    table (the reason in ``note``) and an entry of ``failures``, and the others are fitted."""
    if on_failure not in ON_FAILURE:
        raise ModelSpecError(f"on_model_failure must be one of {', '.join(ON_FAILURE)}, not {on_failure!r}")
    tables, margins, fits, failures, notes, specs = [], [], {}, [], {}, {}
    for ms in models:
        specs[ms.name] = ms
        if not ms.predictors:
            err = ModelFitError(f"model '{ms.name}' (outcome {ms.outcome}) could not be fitted: no predictor applies "
                                f"to its {ms.unit} unit")
        else:
            try:
                t, mg, fit, msgs = fit_model(data, ms, level)
                tables.append(t)
                margins.append(mg)
                fits[ms.name], notes[ms.name] = fit, msgs
                continue
            except ModelFitError as e:
                err = e
        if on_failure == "fail":
            raise err
        reason = str(err).split("could not be fitted: ", 1)[-1]
        failures.append({"model": ms.name, "outcome": ms.outcome, "formula": ms.formula() if ms.predictors else "",
                         "reason": reason})
        row = {c: np.nan for c in MODEL_TABLE_COLUMNS}
        row.update(model=ms.name, outcome=ms.outcome, family=ms.family, crime_type=_table_crime(ms), unit=ms.unit,
                   formula=ms.formula() if ms.predictors else "", term="", label="", reference="",
                   dropped_categories="", status="not fitted", note=f"could not be fitted: {reason}")
        tables.append(pd.DataFrame([row], columns=MODEL_TABLE_COLUMNS))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=MODEL_TABLE_COLUMNS)
    mtab = pd.concat([m for m in margins if len(m)], ignore_index=True) if any(len(m) for m in margins) else (
        pd.DataFrame(columns=MARGIN_COLUMNS))
    return ModelRun(table=table, margins=mtab, fits=fits, failures=failures, notes=notes, specs=specs)


def term_wald_test(names, coef, vcov, terms, df_residual, error=ValueError) -> pd.DataFrame:
    """Wald test that the coefficients of ``terms`` (names, or formula terms such as
    ``"C(region)"`` taking all their levels) are all 0: F = W / q on (q, df_residual); shared by
    the GLM, the ordinal model and the evaluation's linear model."""
    terms = [terms] if isinstance(terms, str) else list(terms)
    names = list(names)
    idx = []
    for t in terms:
        hit = [i for i, name in enumerate(names) if name == t or name.startswith(f"{t}[")]
        if not hit:
            raise error(f"wald_test: no coefficient for term '{t}' (terms: {', '.join(names)})")
        idx += hit
    idx = sorted(set(idx))
    b = np.asarray(coef)[idx]
    v = np.asarray(vcov)[np.ix_(idx, idx)]
    chisq = float(b @ np.linalg.solve(v, b))
    q = len(idx)
    f = chisq / q
    return pd.DataFrame([{"terms": " + ".join(terms), "chisq": chisq, "F": f, "df1": q, "df2": df_residual,
                          "p_value": float(stats.f.sf(f, q, df_residual))}])
