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
- group-time effects ``ATT(g, t)`` for every cohort ``g`` and wave ``t >= g`` (and, as
  placebos, every wave before ``g - 1``, with a joint adjusted Wald test that those are all 0:
  ``F (d - q + 1) / (d q)`` of the Wald statistic on (q, d - q + 1) df) against
  the never-treated areas only (areas not yet treated are not used as comparisons): the 2 x 2
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
from pathlib import Path

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
    last pre wave (None unless asked) and ``event_study_vcov`` the joint covariance of its
    effects (waves x waves, the reference wave left out); ``fit``: the DiD model itself."""

    effects: pd.DataFrame
    pretrend: pd.DataFrame | None
    pretrend_terms: pd.DataFrame | None
    event_study: pd.DataFrame | None
    fit: object = field(repr=False)
    waves: list = field(default_factory=list)
    start: object = None
    model: str = "linear"
    event_study_vcov: pd.DataFrame | None = field(default=None, repr=False)


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
    es = es_vcov = None
    if event_study:
        ref = pre_waves[-1]
        terms = [f"did_t_{labels[x]}" for x in waves if x != ref]
        ef = _fit(d, f"{base} + {' + '.join(terms)}{extra}", model, level)
        es_waves = [x for x in waves if x != ref]
        es_vcov = pd.DataFrame(ef.vcov.loc[terms, terms].to_numpy(), index=es_waves, columns=es_waves)
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
                     waves=waves, start=start, model=model, event_study_vcov=es_vcov)


# ---------------------------------------------------------------------------------------------
# staggered starts
# ---------------------------------------------------------------------------------------------
GROUP_TIME_COLUMNS = ["cohort", "wave", "base_wave", "post", "estimate", "se", "t", "df", "p_value", "ci_low",
                      "ci_high", "weight", "n"]


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
        for t in [x for x in waves if x != base]:  # pre-start waves (placebos) and the waves from the start
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
            gt.append({"cohort": g, "wave": t, "base_wave": base, "post": t >= g, "estimate": b, "se": se, "t": tt,
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
    post = gtab["post"].to_numpy(dtype=bool)
    a = np.where(post, gtab["weight"].to_numpy(), 0.0)
    a = a / a.sum()
    avg = float(a @ est)
    se_avg = float(np.sqrt(max(a @ v @ a, 0.0)))
    df_avg = float(gtab.loc[post, "df"].min())
    rows.append(_row("att_average", f"difference in mean {outcome} (group-time effects against never-treated, "
                     "averaged with the treated weighted counts)", avg, se_avg, df_avg, level, method, "linear",
                     int(twfe.n)))
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    pretrend = None
    if (~post).any():  # placebo cells: joint Wald test that all are 0 (parallel trends before each start)
        from .models import term_wald_test

        names = [f"c{i}" for i in range(k)]
        pre = [names[i] for i in np.flatnonzero(~post)]
        d_min = float(gtab.loc[~post, "df"].min())
        pretrend = term_wald_test(names, est, v, pre, d_min)
        # the covariance of the cells is estimated on about d_min degrees of freedom: the adjusted
        # Wald statistic F (d - q + 1) / d on (q, d - q + 1) df (Korn and Graubard's small-sample form)
        q = len(pre)
        if d_min - q + 1 > 0:
            f_adj = float(pretrend["F"].iloc[0]) * (d_min - q + 1) / d_min
            pretrend["F"], pretrend["df2"] = f_adj, d_min - q + 1
            pretrend["p_value"] = float(stats.f.sf(f_adj, q, d_min - q + 1))
        pretrend.insert(0, "waves", "; ".join(f"cohort {r.cohort} in {r.wave}" for r in gtab[~post].itertuples()))
        pretrend["reference_wave"] = "the wave before each cohort's start"
    return StaggeredResult(effects=effects, group_time=gtab, vcov=v, twfe_fit=twfe, waves=waves, cohorts=cohorts,
                           pretrend=pretrend)


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


# ---------------------------------------------------------------------------------------------
# batch runs: the evaluation section of a parameter set on a survey read through its spec
# ---------------------------------------------------------------------------------------------
EVALUATION_TABLE_COLUMNS = ["term", "estimate", "se", "ci_low", "ci_high", "df", "p", "method", "note"]
"""``evaluation.csv``: one row per estimate (the effect, the pre-trend test and its terms, the
event study, the group-time effects), tidy."""
COST_BENEFIT_COLUMNS = ["quantity", "estimate", "se", "ci_low", "ci_high", "df", "method", "years",
                        "discount_rate", "currency", "price_year", "crime_type", "effect_term", "note"]


@dataclass
class PreparedEvaluation:
    """What :func:`did` needs, from a survey and an evaluation section."""

    design: object
    outcome: str
    treated: str | None
    wave: str
    start: object
    group: str | None
    model: str
    covariates: str | None
    event_study: bool
    unit: str
    label: str


def prepare_evaluation(data, section: dict) -> PreparedEvaluation:
    """The pooled design of a survey (``survey.ingest.SurveyData`` whose respondent file stacks the
    periods) for the checked ``evaluation`` section of a parameter set
    (:func:`survey.params.check_evaluation`): the outcome column (``victim:<crime>`` ->
    ``victim__<crime>``, ``count:<crime>`` -> ``n__<crime>``), the treated indicator from the
    condition (survey.expr, never code) or the codes, the start(s).  Columns that are missing
    are one-line errors naming the column and the rows."""
    from .expr import evaluate

    oc = section["outcome"]
    if ":" in oc:
        kind, crime = oc.split(":", 1)
        unit = data.unit_of(crime)
        col = f"{'victim' if kind == 'victim' else 'n'}__{crime}"
        label = f"{'victims' if kind == 'victim' else 'victimizations'} of {crime} per {unit}"
    else:
        unit = data.spec.files[data.spec.design.file].unit
        col, label = oc, oc
    design = data.design(unit)
    df = design.data
    n = len(df)
    for what, c in (("outcome", col), ("period", section["period"]), ("area", section.get("area")),
                    *(("covariates", c) for c in section.get("covariates") or [])):
        if c is not None and c not in df.columns:
            raise EvaluationError(f"evaluation.{what}: column '{c}' is not in the respondent file ({n} rows)")
    aug = {"eval_y": pd.to_numeric(df[col], errors="coerce")}
    period = df[section["period"]]
    if isinstance(period.dtype, pd.CategoricalDtype):
        period = period.astype(object)
    num = pd.to_numeric(period, errors="coerce")
    if num.notna().sum() == period.notna().sum():  # numbers (years, wave numbers), sortable as such
        period = num
    else:
        period = period.astype("string")
    aug["eval_period"] = period

    def as_period(v, what):
        if pd.api.types.is_numeric_dtype(period):
            x = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
            if pd.isna(x):
                raise EvaluationError(f"evaluation.{what}: {v!r} is not a period of '{section['period']}' "
                                      f"(numbers; {n} rows)")
            return float(x) if float(x) != int(x) else int(x)
        return str(v)

    tr = section.get("treated")
    treated = None
    if tr is not None:
        if isinstance(tr, dict):
            if tr["variable"] not in df.columns:
                raise EvaluationError(f"evaluation.treated: column '{tr['variable']}' is not in the respondent file "
                                      f"({n} rows)")
            text = f"{tr['variable']} in {list(tr['codes'])!r}"
        else:
            text = tr
        try:
            mask = evaluate(text, df)
        except SurveyError as e:
            raise EvaluationError(f"evaluation.treated: {e} ({n} rows)") from None
        aug["eval_treated"] = np.asarray(mask, dtype=float)
        treated = "eval_treated"
        dom = design._in_domain() & (design.w > 0)
        if not np.any(dom & (mask == 1)) or not np.any(dom & (mask == 0)):
            raise EvaluationError(f"evaluation.treated: '{text}' selects {int(np.sum(dom & (mask == 1)))} of "
                                  f"{int(dom.sum())} respondents; need treated and comparison respondents")
    start = section["start"]
    group = None
    if isinstance(start, dict):
        group = section["area"]
        codes = df[group].astype(str)
        start = {str(k): as_period(v, f"start.{k}") for k, v in start.items()}
        unknown = sorted(set(start) - set(codes.unique()))
        if unknown:
            raise EvaluationError(f"evaluation.start: area code(s) {', '.join(unknown[:5])} not in column '{group}' "
                                  f"({n} rows)")
        aug["eval_area"] = codes
        group = "eval_area"
    else:
        start = as_period(start, "start")
    d = design._replace(data=df.assign(**aug))
    cov = section.get("covariates")
    return PreparedEvaluation(design=d, outcome="eval_y", treated=treated, wave="eval_period", start=start,
                              group=group, model=section.get("model", "linear"),
                              covariates=" + ".join(f"C({c})" for c in cov) if cov else None,
                              event_study=bool(section.get("event_study")), unit=unit, label=label)


def _tidy(term, est, se, lo, hi, df, p, method, note):
    return {"term": term, "estimate": est, "se": se, "ci_low": lo, "ci_high": hi, "df": df, "p": p,
            "method": method, "note": note}


def evaluation_table(res, label: str = "the outcome") -> pd.DataFrame:
    """The tidy ``evaluation.csv`` of a :func:`did` or :func:`staggered_did` result
    (EVALUATION_TABLE_COLUMNS): the effects, then the pre-trend test and its terms, the event
    study or the group-time effects."""
    rows = []
    for e in res.effects.itertuples():
        rows.append(_tidy(e.estimand, e.effect, e.se, e.ci_low, e.ci_high, e.df, e.p_value, e.method,
                          f"{e.scale.replace('eval_y', label)}; {e.n} respondents in the fit"))
    method = res.effects.method.iloc[0]
    if getattr(res, "pretrend", None) is not None:
        w = res.pretrend.iloc[0]
        rows.append(_tidy("pretrend_test", float(w.F), np.nan, np.nan, np.nan, float(w.df2), float(w.p_value), method,
                          f"joint Wald F test on ({w.df1:g}, {w.df2:g}) df that treated minus comparison did not "
                          f"change before the start: periods {w.waves} against {w.reference_wave}"))
        for r in (res.pretrend_terms.itertuples() if res.pretrend_terms is not None else ()):
            rows.append(_tidy(f"pretrend: {r.wave}", r.estimate, r.se, r.ci_low, r.ci_high, r.df, r.p_value, method,
                              f"treated minus comparison in {r.wave} relative to {w.reference_wave}"))
    if getattr(res, "event_study", None) is not None:
        for r in res.event_study.itertuples():
            rows.append(_tidy(f"event_study: {r.wave}", r.estimate, r.se, r.ci_low, r.ci_high, r.df, r.p_value,
                              method, ("reference period (0 by construction)" if r.reference else
                                       f"treated minus comparison relative to the last period before the start; "
                                       f"{'after' if r.post else 'before'} the start; {r.scale}")))
    if isinstance(res, StaggeredResult):
        for r in res.group_time.itertuples():
            rows.append(_tidy(f"att: cohort {r.cohort:g} period {r.wave}" if isinstance(r.cohort, float)
                              else f"att: cohort {r.cohort} period {r.wave}", r.estimate, r.se, r.ci_low, r.ci_high,
                              r.df, r.p_value, method,
                              f"areas starting in {r.cohort} against never-treated areas, period {r.wave} minus "
                              f"{r.base_wave}; weight {r.weight:.6g}"))
    return pd.DataFrame(rows, columns=EVALUATION_TABLE_COLUMNS)


def yearly_effects(res, effects) -> tuple[list, np.ndarray, np.ndarray, float]:
    """The effect of each programme year from an event study (``effects: event_study``: year k
    takes the effect of the k-th period from the start; a list: year k takes the effect of the
    k-th period listed, which may repeat, e.g. the last period observed for later years):
    (periods, effects, their joint covariance, df).  Errors name the periods there are."""
    es, v = getattr(res, "event_study", None), getattr(res, "event_study_vcov", None)
    if es is None or v is None:
        raise EvaluationError("evaluation.effects: effects per year come from the event study: set event_study: true "
                              "(one start for every area, linear model)")
    if str(es.scale.iloc[0]) != "difference in mean":
        raise EvaluationError(f"evaluation.effects: the event study is on the {es.scale.iloc[0]} scale; effects per "
                              "year value crimes averted with the linear model only")
    post = [w for w, p in zip(es.wave, es.post, strict=True) if p]
    if isinstance(effects, str) and effects == "event_study":
        periods = list(post)
    elif isinstance(effects, (list, tuple)) and effects:
        periods = []
        for i, p in enumerate(effects):
            match = [w for w in post if w == p or str(w) == str(p)]
            if not match:
                raise EvaluationError(f"evaluation.effects[{i}]: period {p!r} is not a period from the start "
                                      f"(event study: {', '.join(str(w) for w in post)}; {len(es)} periods)")
            periods.append(match[0])
    else:
        raise EvaluationError(f"evaluation.effects must be pooled, event_study or a list of periods, not {effects!r}")
    est = es.set_index("wave").loc[periods, "estimate"].to_numpy(dtype=float)
    cov = v.loc[periods, periods].to_numpy(dtype=float)
    return periods, est, cov, float(es.df.iloc[0])


def cost_benefit_table(res, section: dict, level: float = 0.95) -> pd.DataFrame | None:
    """``cost_benefit.csv`` (COST_BENEFIT_COLUMNS) of an evaluation with a programme cost: the
    crimes (or victims) averted by the effect (``did``, ``att_average`` with staggered starts,
    ``att_prevalence`` with the logistic model) over the exposed units of every year, valued with
    the unit cost of ``crime_type`` and discounted at ``discount_rate``
    (:func:`survey.cost.discounted_cost_benefit`).  With ``effects: event_study`` or a list of
    periods, each year's crimes averted use that year's event-study effect (:func:`yearly_effects`)
    with the effects' joint covariance; the years are then the effects' (a single programme cost
    falls in year 0, a single exposure applies every year; lists must have as many years).
    ``effect_term`` says which effects were used.  None without a programme cost."""
    from .cost import discounted_cost_benefit, load_unit_costs

    if section.get("programme_cost") is None:
        return None
    tab = load_unit_costs(section.get("unit_costs")).set_index("crime_type")
    ct = section["crime_type"]
    cost_args = dict(rate=section.get("discount_rate", 0.035), level=level, crime_type=ct,
                     currency=tab.loc[ct, "currency"], price_year=tab.loc[ct, "price_year"])
    mode = section.get("effects") or "pooled"
    if mode != "pooled":
        periods, est, cov, df = yearly_effects(res, mode)
        years = len(periods)
        costs, exposed = section["programme_cost"], section["exposed"]
        for name, v in (("programme_cost", costs), ("exposed", exposed)):
            if isinstance(v, list) and len(v) != years:
                raise EvaluationError(f"evaluation.{name} has {len(v)} years but effects give {years} "
                                      f"(periods {', '.join(str(p) for p in periods)})")
        costs = costs if isinstance(costs, list) else [float(costs)] + [0.0] * (years - 1)
        exposed = exposed if isinstance(exposed, list) else [float(exposed)] * years
        cb = discounted_cost_benefit(est, costs, exposed, float(tab.loc[ct, "unit_cost"]), vcov=cov, df=df,
                                     **cost_args)
        cb["effect_term"] = "event_study: " + ", ".join(str(p) for p in periods)
    else:
        eff = res.effects.set_index("estimand")
        term = next(t for t in ("att_average", "att_prevalence", "did") if t in eff.index)
        e = eff.loc[term]
        cb = discounted_cost_benefit(e["effect"], section["programme_cost"], section["exposed"],
                                     float(tab.loc[ct, "unit_cost"]), se=float(e["se"]), df=float(e["df"]),
                                     **cost_args)
        cb["effect_term"] = term
    victims = section["outcome"].startswith("victim:")
    cb["note"] = ("the effect is on victims (0/1): victims averted are valued at the cost of one crime, a lower "
                  "bound when victims suffer several" if victims else "crimes averted valued at the unit cost")
    return cb[COST_BENEFIT_COLUMNS]


def write_csv(df: pd.DataFrame, path) -> None:
    """A table as CSV, written atomically, text cells a spreadsheet would run as formulas
    neutralized (:func:`survey._safe_csv.write_safe_csv`)."""
    from ._safe_csv import write_safe_csv

    write_safe_csv(df, path)


def write_pooled_survey(out_dir, seed: int = 1, effect: float = -0.05, start: int = 3, n_strata: int = 8,
                        areas_per_stratum: int = 12, respondents: int = 40) -> Path:
    """A pooled-waves survey file for ``specs/synthetic-evaluation.yaml``: ``pooled.csv`` (one row
    per household and wave: ``hid``, wave, stratum, area, treated, sex, victim, weight; drawn by
    :func:`simulate_pooled_waves` with a known programme effect) and ``truth.json`` (the effect on
    the prevalence, the start).  ``python -m survey.evaluation --out data/synthetic-evaluation``."""
    import json

    from ._atomic import atomic_write

    df = simulate_pooled_waves(n_strata=n_strata, areas_per_stratum=areas_per_stratum, respondents=respondents,
                               effect=effect, start=start, seed=seed)
    df.insert(0, "hid", np.arange(1, len(df) + 1))
    out = Path(out_dir)
    write_csv(df.drop(columns=["post", "incidents"]), out / "pooled.csv")
    atomic_write(out / "truth.json", json.dumps({
        "effect": effect, "start": start, "scale": "prevalence (0-1), additive, every treated respondent after the "
        "start", "seed": seed, "generator": "survey.evaluation.simulate_pooled_waves", "rows": int(len(df))},
        indent=1) + "\n")
    return out


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m survey.evaluation",
                                 description="write the synthetic pooled-waves survey with a known programme effect")
    ap.add_argument("--out", default="data/synthetic-evaluation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--effect", type=float, default=-0.05)
    args = ap.parse_args(argv)
    print(write_pooled_survey(args.out, seed=args.seed, effect=args.effect))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
