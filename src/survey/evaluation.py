"""Programme evaluation on pooled survey waves: design-based difference-in-differences.

A prevention programme starts in some areas (treated) at a known wave; other areas
(comparison) do not get it.  The survey is run in waves before and after; the respondents of
all waves are stacked into one table with a ``wave`` column and a ``treated`` indicator (the
respondent lives in a programme area).  The effect is the change in the treated areas minus
the change in the comparison areas, estimated as the coefficient of ``treated x post`` in::

    outcome ~ wave effects + treated + treated:post [+ covariates]

``model="linear"``: weighted least squares (a rate, a count per respondent, a 0/1 prevalence
read in points): the coefficient is the effect in the outcome's units.  ``model="logistic"``:
the survey-weighted logistic GLM of :mod:`survey.models`; the coefficient is a log odds ratio,
and the effect on the prevalence scale among the treated after the start (the average, over
the treated respondents of the post waves, of their fitted prevalence minus the same with the
programme term removed) is reported beside it with a delta-method (Taylor) or replicate SE.

Variance: design-based (the sandwich with the design's strata, PSUs and fpc, or the
replicates).  When the same areas are surveyed in every wave, give the *area* as the PSU of the
pooled design (not wave x area): the variance is then clustered on areas across waves, which
allows any correlation of an area's results over time (the usual clustered DiD).  Tests and
intervals: t on the model's residual degrees of freedom (design df + 1 - coefficients, as R's
``svyglm``).

Pre-trend check (two or more pre-programme waves): the DiD model plus ``treated x wave`` for
every pre wave but the last, and the joint Wald F test that those are all 0 (parallel trends
before the start).  Event study (``event_study=True``): ``treated x wave`` for every wave but
the last pre wave (the reference), one effect per wave.

Staggered starts (``staggered_did``; ``did(..., start={area: first wave}, group="area")``):
areas join the programme in different waves (cohorts ``g``: the first wave treated); some never
do.  Two estimates, both design-based:

- the two-way fixed-effects (TWFE) regression ``outcome ~ wave effects + cohort effects + D``
  with ``D = 1[wave >= g]`` (cohort effects, not area effects: the respondents differ from wave
  to wave).  Under effects that differ between cohorts or grow over time its single
  coefficient is a weighted average that can even have the wrong sign (earlier-treated areas
  serve as comparisons for later ones); it is reported for reference;
- group-time effects ``ATT(g, t)`` for every cohort ``g`` and wave ``t >= g`` against the
  never-treated areas only (areas not yet treated are not used as comparisons): the 2 x 2
  difference in differences of the weighted means of cohort ``g`` and of the never-treated
  areas between wave ``t`` and wave ``g - 1`` (the last wave before the cohort's start), the
  coefficient of ``G x post`` in the saturated regression on those four cells (a domain of the
  pooled design, so its SE is design-based and equals R's ``svyglm`` on ``subset(design, ...)``);
  and their average weighted by the treated respondents' weighted counts (the weights taken as
  fixed), with the joint covariance of all ``ATT(g, t)`` from their influence functions (or
  replicates), since they share the never-treated areas.

``simulate_pooled_waves`` draws pooled waves with a known programme effect (areas as PSUs in
strata, some treated, an additive reduction of the prevalence by ``effect`` after the start);
the tests and benchmarks/evaluation_coverage.py use it to check recovery and coverage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from .errors import SurveyError, SurveyWarning

__all__ = ["did", "DiDResult", "EvaluationError", "EFFECT_COLUMNS", "simulate_pooled_waves", "linear_model",
           "staggered_did", "StaggeredResult", "simulate_staggered_waves", "GROUP_TIME_COLUMNS"]

EFFECT_COLUMNS = ["estimand", "scale", "effect", "se", "t", "df", "p_value", "ci_low", "ci_high", "method", "model",
                  "n"]
MODELS = ("linear", "logistic")


class EvaluationError(SurveyError, ValueError):
    """The evaluation cannot be run on these data (no treated areas, one wave...)."""


# ---------------------------------------------------------------------------------------------
# design-based linear regression (weighted least squares with the design's sandwich)
# ---------------------------------------------------------------------------------------------
@dataclass
class LinearFit:
    """Survey-weighted least squares (R's ``svyglm`` with the gaussian family)."""

    formula: str
    terms: list
    coef: pd.Series
    vcov: pd.DataFrame
    df_residual: float
    design_df: float
    n: int
    table: pd.DataFrame = field(repr=False)
    _x: np.ndarray = field(repr=False, default=None)
    _rows: np.ndarray = field(repr=False, default=None)
    _influence: np.ndarray = field(repr=False, default=None)
    _rep_betas: np.ndarray = field(repr=False, default=None)

    def wald_test(self, terms) -> pd.DataFrame:
        from .models import term_wald_test

        return term_wald_test(self.terms, self.coef, self.vcov, terms, self.df_residual)


def linear_model(design, formula: str, level: float = 0.95) -> LinearFit:
    """Survey-weighted least squares with design-based SEs (as R's ``svyglm``, gaussian):
    ``beta = (X'WX)^-1 X'Wy``; Taylor: each row's influence ``w_i e_i (X'WX)^-1 x_i`` through
    the design's variance kernel; replicate designs: refitted on every replicate weight."""
    import formulaic

    from .design import ReplicateDesign
    from .variance import replicate_vcov

    try:
        mm = formulaic.model_matrix(formula, design.data, na_action="ignore")
    except Exception as e:  # formulaic's own error types
        raise EvaluationError(f"formula '{formula}': {str(e).splitlines()[0]}") from None
    y = np.asarray(mm.lhs, float)[:, 0]
    x = np.asarray(mm.rhs, float)
    terms = list(mm.rhs.columns)
    dom = design._in_domain()
    complete = np.isfinite(y) & np.isfinite(x).all(axis=1)
    dropped = int((dom & ~complete).sum())
    if dropped:
        warnings.warn(f"linear_model: {dropped} rows of the domain have a missing value in '{formula}' and are "
                      "left out of the fit; they remain in the design", SurveyWarning, stacklevel=3)
    rows = dom & complete
    w = np.where(rows, design.w, 0.0)
    y = np.where(rows, y, 0.0)
    x = np.where(rows[:, None], x, 0.0)
    xtwx = (x.T * w) @ x
    if np.linalg.matrix_rank(xtwx) < x.shape[1]:
        raise EvaluationError(f"linear_model: the model matrix of '{formula}' is rank deficient "
                              f"({x.shape[1]} columns, {int((w > 0).sum())} rows): collinear terms")
    a_inv = np.linalg.inv(xtwx)
    beta = a_inv @ ((x.T * w) @ y)
    e = y - x @ beta
    infl = (x * (w * e)[:, None]) @ a_inv
    p = x.shape[1]
    rep_betas = None
    if isinstance(design, ReplicateDesign):
        rep_betas = np.empty((p, design.n_replicates))
        for j in range(design.n_replicates):
            wr = np.where(rows, design.repw[:, j + 1], 0.0)
            rep_betas[:, j] = np.linalg.solve((x.T * wr) @ x, (x.T * wr) @ y)
        vcov = replicate_vcov(beta, rep_betas, design.scale, design.rscales, design.mse)
    else:
        r = np.flatnonzero(rows)
        vcov = design._vcov(np.repeat(r, p), np.tile(np.arange(p), len(r)), infl[r].ravel(), p)
    if isinstance(design, ReplicateDesign):
        # the design's df, or for a domain (R's subset() drops the other rows of a replicate
        # design) the rank of the replicate weights on the domain's rows minus 1
        if rows.all():
            ddf = float(design.df)
        else:
            from .design import _replicate_rank

            ddf = float(_replicate_rank(design.repw[rows]) - 1)
    else:
        fit_design = design if (rows == dom).all() else design.subset(rows)
        ddf = float(fit_design.df)
    df_res = ddf + 1 - p
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = beta / se
    q = stats.t.ppf((1 + level) / 2, df_res)
    table = pd.DataFrame({"term": terms, "estimate": beta, "se": se, "t": t, "df": df_res,
                          "p_value": 2 * stats.t.sf(np.abs(t), df_res), "ci_low": beta - q * se,
                          "ci_high": beta + q * se})
    return LinearFit(formula=formula, terms=terms, coef=pd.Series(beta, index=terms),
                     vcov=pd.DataFrame(vcov, index=terms, columns=terms), df_residual=df_res, design_df=ddf,
                     n=int((w > 0).sum()), table=table, _x=x, _rows=rows, _influence=infl, _rep_betas=rep_betas)


# ---------------------------------------------------------------------------------------------
# difference-in-differences
# ---------------------------------------------------------------------------------------------
@dataclass
class DiDResult:
    """``effects``: the tidy effect table (EFFECT_COLUMNS); ``pretrend``: the joint Wald test
    of the pre-programme ``treated x wave`` terms (None with one pre wave) and
    ``pretrend_terms`` their coefficients; ``event_study``: one effect per wave relative to the
    last pre wave (None unless asked); ``fit``: the DiD model itself."""

    effects: pd.DataFrame
    pretrend: pd.DataFrame | None
    pretrend_terms: pd.DataFrame | None
    event_study: pd.DataFrame | None
    fit: object = field(repr=False)
    waves: list = field(default_factory=list)
    start: object = None
    model: str = "linear"


def _indicator(s: pd.Series, name: str) -> np.ndarray:
    if s.isna().any():
        raise EvaluationError(f"did: '{name}' is missing for {int(s.isna().sum())} of {len(s)} rows")
    if s.dtype == bool:
        return s.to_numpy(dtype=float)
    v = pd.to_numeric(s, errors="coerce")
    bad = int((~v.isin([0, 1])).sum())
    if bad:
        raise EvaluationError(f"did: '{name}' must be 0/1 (or true/false); {bad} of {len(s)} rows are not")
    return v.to_numpy(dtype=float)


def _fit(design, formula, model, level):
    if model == "linear":
        return linear_model(design, formula, level=level)
    from .models import glm

    return glm(design, formula, family="binomial", level=level)


def _coef_row(fit, term, estimand, scale, level, method, model):
    b = float(fit.coef[term])
    se = float(np.sqrt(fit.vcov.loc[term, term]))
    return _row(estimand, scale, b, se, fit.df_residual, level, method, model, fit.n)


def _row(estimand, scale, est, se, df, level, method, model, n):
    t = est / se if se > 0 else np.nan
    q = stats.t.ppf((1 + level) / 2, df)
    return {"estimand": estimand, "scale": scale, "effect": est, "se": se, "t": t, "df": df,
            "p_value": float(2 * stats.t.sf(abs(t), df)), "ci_low": est - q * se, "ci_high": est + q * se,
            "method": method, "model": model, "n": n}


def _att_prevalence(fit, design, tp: np.ndarray, term: str):
    """Effect on the prevalence among the treated after the start (logistic model): the
    weighted mean over those respondents of expit(eta) - expit(eta - delta), with its
    linearization (the averaging plus the coefficients' influence, the delta method) or its
    replicates."""
    from .design import ReplicateDesign
    from .variance import replicate_vcov

    j = fit.terms.index(term)
    x = fit._x
    rows = fit._fit_rows & (tp == 1)
    beta = fit.coef.to_numpy()

    def value(b, w):
        eta = x @ b
        a = np.where(rows, w, 0.0)
        return float(np.sum(a * (special.expit(eta) - special.expit(eta - b[j]))) / a.sum())

    est = value(beta, design.w)
    if isinstance(design, ReplicateDesign):
        reps = np.array([value(fit._rep_betas[:, r], design.repw[:, r + 1]) for r in range(design.n_replicates)])
        v = replicate_vcov(np.array([est]), reps[None, :], design.scale, design.rscales, design.mse)[0, 0]
        return est, float(np.sqrt(max(v, 0))), "replicate"
    eta = x @ beta
    p1, p0 = special.expit(eta), special.expit(eta - beta[j])
    a = np.where(rows, design.w, 0.0)
    big_a = a.sum()
    x0 = x.copy()
    x0[:, j] = 0.0  # d(eta - delta)/d beta: the row's x without the programme term
    g = ((x * (a * p1 * (1 - p1))[:, None]).sum(axis=0) - (x0 * (a * p0 * (1 - p0))[:, None]).sum(axis=0)) / big_a
    z = a * ((p1 - p0) - est) / big_a + fit._influence @ g
    r = np.flatnonzero(z)
    v = design._vcov(r, np.zeros(len(r), dtype=np.int64), z[r], 1)[0, 0]
    return est, float(np.sqrt(max(v, 0))), "linearization (delta method)"


def did(design, outcome: str, treated: str | None, wave: str, start, model: str = "linear",
        covariates: str | None = None, event_study: bool = False, level: float = 0.95, group: str | None = None):
    """Design-based difference-in-differences on pooled waves (see the module docstring).

    design: a Design/ReplicateDesign over the stacked respondents of all waves.
    outcome: the outcome column (0/1 for prevalence, a number for rates or counts).
    treated: 0/1 (or bool) column, 1 for respondents of programme areas.
    wave: the wave column (sortable: numbers or dates); ``start``: the first wave in which the
        programme runs (waves >= start are "post"); or, for staggered starts, a mapping
        ``{area: first wave}`` of the treated areas with ``group=`` the area column (areas not in
        it are never treated): then the result is :func:`staggered_did`'s.
    model: ``linear`` | ``logistic``.  covariates: extra formula terms, e.g. ``"C(sex) + age"``.
    """
    if isinstance(start, dict):  # staggered starts: one first wave per area (or group) of `group`
        if group is None:
            raise EvaluationError("did: a start per area needs group= (the column of the areas the starts refer to)")
        if model != "linear":
            raise EvaluationError("did: staggered starts are estimated with the linear model only")
        data = design.data
        if group not in data.columns:
            raise EvaluationError(f"did: group column '{group}' is not in the data ({len(data.columns)} columns)")
        first = data[group].map(start)
        tr = _indicator(data[treated], treated) if treated is not None else first.notna().to_numpy(float)
        bad = int(((tr == 1) != first.notna().to_numpy()).sum())
        if bad:
            raise EvaluationError(f"did: {bad} of {len(data)} rows are treated without a start in start= "
                                  f"(or have a start and are not treated)")
        d = design._replace(data=data.assign(did_first=first))
        return staggered_did(d, outcome, wave, "did_first", covariates=covariates, level=level)
    if model not in MODELS:
        raise EvaluationError(f"did: model must be one of {', '.join(MODELS)}, not '{model}'")
    data = design.data
    for name, what in ((outcome, "outcome"), (treated, "treated"), (wave, "wave")):
        if name not in data.columns:
            raise EvaluationError(f"did: {what} column '{name}' is not in the data ({len(data.columns)} columns)")
    wv = data[wave]
    if wv.isna().any():
        raise EvaluationError(f"did: wave '{wave}' is missing for {int(wv.isna().sum())} of {len(wv)} rows")
    tr = _indicator(data[treated], treated)
    waves = sorted(wv.unique())
    try:
        post = (wv >= start).to_numpy()
    except TypeError:
        raise EvaluationError(f"did: start {start!r} cannot be compared with the waves of '{wave}' "
                              f"({waves[:5]})") from None
    pre_waves = [x for x in waves if not x >= start]
    post_waves = [x for x in waves if x >= start]
    if not pre_waves or not post_waves:
        raise EvaluationError(f"did: start {start!r} leaves {len(pre_waves)} pre and {len(post_waves)} post waves "
                              f"of '{wave}' ({len(waves)} waves); need at least one of each")
    dom = design._in_domain() & (design.w > 0)
    for label, mask in (("treated", tr == 1), ("comparison", tr == 0)):
        for period, pm in (("before", ~post), ("after", post)):
            if not np.any(dom & mask & pm):
                raise EvaluationError(f"did: no {label} respondent {period} the start ({start!r}) in "
                                      f"{int(dom.sum())} rows of the design")
    aug = data.copy(deep=False)
    aug["did_y"] = pd.to_numeric(data[outcome], errors="coerce")
    labels = {x: f"w{i}" for i, x in enumerate(waves)}
    aug["did_wave"] = pd.Categorical(wv.map(labels), categories=list(labels.values()))
    aug["did_treated"] = tr
    aug["did_tp"] = tr * post
    for x, lab in labels.items():
        aug[f"did_t_{lab}"] = tr * (wv == x).to_numpy()
    d = design._replace(data=aug)
    if model == "logistic":
        yy = aug["did_y"][dom].dropna()
        if not yy.isin([0, 1]).all():
            raise EvaluationError(f"did: a logistic model needs a 0/1 outcome; '{outcome}' has "
                                  f"{int((~yy.isin([0, 1])).sum())} other values")
    extra = f" + {covariates}" if covariates else ""
    base = "did_y ~ C(did_wave) + did_treated"
    fit = _fit(d, f"{base} + did_tp{extra}", model, level)
    from .design import ReplicateDesign

    is_rep = isinstance(design, ReplicateDesign)
    method = "design-based, " + ("replicate" if is_rep else "linearization")
    rows = []
    if model == "linear":
        rows.append(_coef_row(fit, "did_tp", "did", f"difference in mean {outcome}", level, method, model))
    else:
        rows.append(_coef_row(fit, "did_tp", "did_log_odds_ratio", "log odds ratio", level, method, model))
        est, se, how = _att_prevalence(fit, d, aug["did_tp"].to_numpy(), "did_tp")
        rows.append(_row("att_prevalence", f"difference in prevalence of {outcome} (treated, after)", est, se,
                         float(d.df), level, f"design-based, {how}", model, fit.n))
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    pretrend = pretrend_terms = None
    if len(pre_waves) >= 2:
        pre_terms = [f"did_t_{labels[x]}" for x in pre_waves[:-1]]
        pf = _fit(d, f"{base} + {' + '.join(pre_terms)} + did_tp{extra}", model, level)
        pretrend = pf.wald_test(pre_terms)
        pretrend.insert(0, "waves", ", ".join(str(x) for x in pre_waves[:-1]))
        pretrend["reference_wave"] = pre_waves[-1]
        tab = pf.table.set_index("term").loc[pre_terms].reset_index()
        tab.insert(0, "wave", pre_waves[:-1])
        pretrend_terms = tab[["wave", "estimate", "se", "t", "df", "p_value", "ci_low", "ci_high"]]
    es = None
    if event_study:
        ref = pre_waves[-1]
        terms = [f"did_t_{labels[x]}" for x in waves if x != ref]
        ef = _fit(d, f"{base} + {' + '.join(terms)}{extra}", model, level)
        tab = ef.table.set_index("term").loc[terms].reset_index()
        tab.insert(0, "wave", [x for x in waves if x != ref])
        es = tab[["wave", "estimate", "se", "t", "df", "p_value", "ci_low", "ci_high"]]
        refrow = pd.DataFrame([{"wave": ref, "estimate": 0.0, "se": 0.0, "t": np.nan, "df": ef.df_residual,
                                "p_value": np.nan, "ci_low": 0.0, "ci_high": 0.0}])
        es = pd.concat([es, refrow]).sort_values("wave", kind="stable").reset_index(drop=True)
        es["post"] = [x >= start for x in es.wave]
        es["reference"] = es.wave == ref
        es["scale"] = "difference in mean" if model == "linear" else "log odds ratio"
    return DiDResult(effects=effects, pretrend=pretrend, pretrend_terms=pretrend_terms, event_study=es, fit=fit,
                     waves=waves, start=start, model=model)


# ---------------------------------------------------------------------------------------------
# staggered starts
# ---------------------------------------------------------------------------------------------
GROUP_TIME_COLUMNS = ["cohort", "wave", "base_wave", "estimate", "se", "t", "df", "p_value", "ci_low", "ci_high",
                      "weight", "n"]


@dataclass
class StaggeredResult:
    """``effects``: the tidy table (EFFECT_COLUMNS) with the TWFE coefficient (``twfe``) and the
    average of the group-time effects (``att_average``); ``group_time``: one row per cohort and
    post wave (GROUP_TIME_COLUMNS); ``vcov``: the joint covariance of the group-time effects;
    ``twfe_fit``: the TWFE regression."""

    effects: pd.DataFrame
    group_time: pd.DataFrame
    vcov: np.ndarray = field(repr=False)
    twfe_fit: object = field(repr=False)
    waves: list = field(default_factory=list)
    cohorts: list = field(default_factory=list)
    pretrend: object = None
    pretrend_terms: object = None
    event_study: object = None
    model: str = "linear"


def staggered_did(design, outcome: str, wave: str, first: str, covariates: str | None = None,
                  level: float = 0.95) -> StaggeredResult:
    """Difference in differences with staggered starts (module docstring).

    first: column with the first treated wave of the respondent's area (its cohort), missing
        for areas never treated.  Waves must be sortable; every cohort needs a wave before its
        start, and there must be never-treated respondents.
    """
    from .design import ReplicateDesign
    from .variance import replicate_vcov

    data = design.data
    for name, what in ((outcome, "outcome"), (wave, "wave"), (first, "first-wave")):
        if name not in data.columns:
            raise EvaluationError(f"staggered_did: {what} column '{name}' is not in the data "
                                  f"({len(data.columns)} columns)")
    wv = data[wave]
    if wv.isna().any():
        raise EvaluationError(f"staggered_did: wave '{wave}' is missing for {int(wv.isna().sum())} of {len(wv)} rows")
    waves = sorted(wv.unique())
    fv = data[first]
    never = fv.isna().to_numpy()
    cohorts = sorted(fv.dropna().unique())
    dom = design._in_domain() & (design.w > 0)
    if not np.any(dom & never):
        raise EvaluationError(f"staggered_did: no never-treated respondent ('{first}' missing) in {int(dom.sum())} "
                              "rows: the group-time effects need a never-treated comparison")
    if not cohorts:
        raise EvaluationError(f"staggered_did: no treated respondent ('{first}' is missing in all {len(fv)} rows)")
    for g in cohorts:
        if g not in waves or waves.index(g) == 0:
            raise EvaluationError(f"staggered_did: cohort starting in {g!r} has no wave of '{wave}' before its start "
                                  f"(waves {waves[:6]})")
    is_rep = isinstance(design, ReplicateDesign)
    method = "design-based, " + ("replicate" if is_rep else "linearization")
    labels = {x: f"w{i}" for i, x in enumerate(waves)}
    aug = data.copy(deep=False)
    aug["did_y"] = pd.to_numeric(data[outcome], errors="coerce")
    aug["did_wave"] = pd.Categorical(wv.map(labels), categories=list(labels.values()))
    clab = {g: f"c{i}" for i, g in enumerate(cohorts)}
    aug["did_cohort"] = pd.Categorical(fv.map(clab).fillna("never"), categories=["never"] + list(clab.values()))
    wpos = wv.map({x: i for i, x in enumerate(waves)}).to_numpy()
    gpos = fv.map({x: waves.index(x) for x in cohorts}).to_numpy(dtype=float)
    aug["did_D"] = np.where(never, 0.0, (wpos >= gpos).astype(float))
    d = design._replace(data=aug)
    extra = f" + {covariates}" if covariates else ""
    twfe = linear_model(d, f"did_y ~ C(did_wave) + C(did_cohort) + did_D{extra}", level=level)
    rows = [_coef_row(twfe, "did_D", "twfe", f"difference in mean {outcome} (two-way fixed effects)", level,
                      method, "linear")]
    # group-time effects against the never-treated, each a saturated 2 x 2 on a domain
    gt, infl, reps = [], [], []
    for g in cohorts:
        base = waves[waves.index(g) - 1]
        for t in waves[waves.index(g):]:
            in_g = (fv == g).to_numpy()
            cell = (in_g | never) & (wv.isin([base, t])).to_numpy()
            if not (np.any(dom & cell & in_g & (wv == t).to_numpy()) and np.any(dom & cell & never & (wv == t).to_numpy())
                    and np.any(dom & cell & in_g & (wv == base).to_numpy())
                    and np.any(dom & cell & never & (wv == base).to_numpy())):
                raise EvaluationError(f"staggered_did: cohort {g!r} or the never-treated have no respondent in wave "
                                      f"{t!r} or {base!r}")
            sub = d._replace(data=aug.assign(did_G=in_g.astype(float), did_post=(wv == t).to_numpy(float),
                                             did_Gpost=(in_g & (wv == t).to_numpy()).astype(float))).subset(cell)
            fit = linear_model(sub, "did_y ~ did_post + did_G + did_Gpost", level=level)
            j = fit.terms.index("did_Gpost")
            b = float(fit.coef.iloc[j])
            se = float(np.sqrt(fit.vcov.iloc[j, j]))
            tt = b / se if se > 0 else np.nan
            q = stats.t.ppf((1 + level) / 2, fit.df_residual)
            treated_t = dom & in_g & (wv == t).to_numpy()
            gt.append({"cohort": g, "wave": t, "base_wave": base, "estimate": b, "se": se, "t": tt,
                       "df": fit.df_residual, "p_value": float(2 * stats.t.sf(abs(tt), fit.df_residual)),
                       "ci_low": b - q * se, "ci_high": b + q * se, "weight": float(design.w[treated_t].sum()),
                       "n": fit.n})
            if is_rep:
                reps.append(fit._rep_betas[j])
            else:
                infl.append(fit._influence[:, j])
    gtab = pd.DataFrame(gt, columns=GROUP_TIME_COLUMNS)
    est = gtab["estimate"].to_numpy()
    k = len(gtab)
    if is_rep:
        v = replicate_vcov(est, np.vstack(reps), design.scale, design.rscales, design.mse)
    else:
        z = np.column_stack(infl)
        r, c = np.nonzero(z)
        v = d._vcov(r, c, z[r, c], k)
    a = gtab["weight"].to_numpy() / gtab["weight"].sum()
    avg = float(a @ est)
    se_avg = float(np.sqrt(max(a @ v @ a, 0.0)))
    df_avg = float(gtab["df"].min())
    rows.append(_row("att_average", f"difference in mean {outcome} (group-time effects against never-treated, "
                     "averaged with the treated weighted counts)", avg, se_avg, df_avg, level, method, "linear",
                     int(twfe.n)))
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    return StaggeredResult(effects=effects, group_time=gtab, vcov=v, twfe_fit=twfe, waves=waves, cohorts=cohorts)


def simulate_staggered_waves(n_strata: int = 6, areas_per_stratum: int = 12, waves=(1, 2, 3, 4, 5),
                             cohorts: dict | None = None, share_never: float = 0.5, respondents: int = 20,
                             base: float = 0.20, trend: float = 0.01, area_sd: float = 0.04,
                             area_wave_sd: float = 0.02, weight_cv: float = 0.4, seed: int = 0) -> pd.DataFrame:
    """Stacked waves with staggered starts and a known effect per cohort.

    ``cohorts``: ``{first wave: effect}`` (default ``{3: -0.04, 4: -0.08}``).  In every stratum a
    share ``share_never`` of the areas is never treated, the rest is split evenly between the
    cohorts.  Prevalence ``base + u_area + v_area,wave + trend * (wave index) + effect_g *
    1[wave >= g]`` for an area of cohort ``g`` (plus 0.04 for women), clipped to [0.001, 0.999];
    so the true ATT(g, t) is ``effect_g`` in every post wave.  Columns: wave, stratum, area,
    first (first treated wave, missing if never), treated, sex, victim, weight.
    """
    cohorts = {3: -0.04, 4: -0.08} if cohorts is None else dict(cohorts)
    rng = np.random.default_rng(seed)
    waves = list(waves)
    n_areas = n_strata * areas_per_stratum
    stratum = np.repeat(np.arange(n_strata), areas_per_stratum)
    first = np.full(n_areas, np.nan)
    eff = np.zeros(n_areas)
    gs = list(cohorts)
    n_never = int(round(share_never * areas_per_stratum))
    for h in range(n_strata):
        idx = rng.permutation(np.flatnonzero(stratum == h))[n_never:]
        for i, a in enumerate(idx):
            g = gs[i % len(gs)]
            first[a], eff[a] = g, cohorts[g]
    u = rng.normal(0, area_sd, n_areas)
    sig = np.sqrt(np.log(1 + weight_cv ** 2))
    out = []
    for t, wv in enumerate(waves):
        v = rng.normal(0, area_wave_sd, n_areas)
        area = np.repeat(np.arange(n_areas), respondents)
        n = len(area)
        female = rng.random(n) < 0.52
        on = ~np.isnan(first[area]) & (wv >= np.nan_to_num(first[area], nan=np.inf))
        p = np.clip(base + u[area] + v[area] + trend * t + eff[area] * on + 0.04 * female, 0.001, 0.999)
        out.append(pd.DataFrame({
            "wave": wv, "stratum": stratum[area] + 1, "area": area + 1, "first": first[area],
            "treated": (~np.isnan(first[area])).astype(int), "sex": np.where(female, "female", "male"),
            "victim": (rng.random(n) < p).astype(int),
            "weight": np.round(1000 * np.exp(rng.normal(-sig * sig / 2, sig, n)), 4)}))
    return pd.concat(out, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# synthetic pooled waves with a known programme effect
# ---------------------------------------------------------------------------------------------
def simulate_pooled_waves(n_strata: int = 6, areas_per_stratum: int = 10, share_treated: float = 0.5,
                          waves=(1, 2, 3, 4), start=3, respondents: int = 30, base: float = 0.20,
                          effect: float = -0.05, trend: float = 0.01, area_sd: float = 0.05,
                          area_wave_sd: float = 0.02, pretrend: float = 0.0, weight_cv: float = 0.4,
                          seed: int = 0) -> pd.DataFrame:
    """Stacked respondents of several waves with a known programme effect.

    Areas are the PSUs (``area``), ``areas_per_stratum`` in each of ``n_strata`` strata; in each
    stratum ``share_treated`` of them get the programme (``treated``), starting at wave
    ``start``.  Every wave samples ``respondents`` persons per area.  A respondent's
    victimization prevalence is additive::

        p = base + u_area + v_area,wave + trend * (wave index) + effect * treated * post
            + pretrend * treated * (wave index)  + 0.04 * (sex == "female")

    (``u`` persistent area effects, sd ``area_sd``; ``v`` area-by-wave shocks, sd
    ``area_wave_sd``), clipped to [0.001, 0.999]; ``victim`` ~ Bernoulli(p).  So the true
    programme effect on the prevalence is ``effect`` (e.g. -0.05 = 5 points fewer victims) for
    every treated respondent after the start, and the difference in differences of the
    population prevalences equals it (the clipping aside).  ``incidents`` is a Poisson count
    with mean ``2.5 p``.  Weights: lognormal with coefficient of variation about ``weight_cv``,
    independent of the outcome.
    """
    rng = np.random.default_rng(seed)
    waves = list(waves)
    n_areas = n_strata * areas_per_stratum
    stratum = np.repeat(np.arange(n_strata), areas_per_stratum)
    treated = np.zeros(n_areas, dtype=int)
    k = int(round(share_treated * areas_per_stratum))
    for h in range(n_strata):
        idx = np.flatnonzero(stratum == h)
        treated[rng.choice(idx, size=k, replace=False)] = 1
    u = rng.normal(0, area_sd, n_areas)
    out = []
    sig = np.sqrt(np.log(1 + weight_cv ** 2))
    for t, wv in enumerate(waves):
        v = rng.normal(0, area_wave_sd, n_areas)
        area = np.repeat(np.arange(n_areas), respondents)
        n = len(area)
        female = rng.random(n) < 0.52
        is_post = wv >= start
        p = (base + u[area] + v[area] + trend * t + effect * treated[area] * is_post + pretrend * treated[area] * t
             + 0.04 * female)
        p = np.clip(p, 0.001, 0.999)
        victim = (rng.random(n) < p).astype(int)
        out.append(pd.DataFrame({
            "wave": wv, "stratum": stratum[area] + 1, "area": area + 1, "treated": treated[area],
            "post": int(is_post), "sex": np.where(female, "female", "male"), "victim": victim,
            "incidents": rng.poisson(2.5 * p),
            "weight": np.round(1000 * np.exp(rng.normal(-sig * sig / 2, sig, n)), 4)}))
    return pd.concat(out, ignore_index=True)
