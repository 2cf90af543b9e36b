"""Design-based GLMs (``d.glm``) against R's ``svyglm`` / ``regTermTest`` / ``svypredmeans`` and
``MASS::glm.nb`` (the oracle).

Fixtures are produced by ``tests/reference/make_glm_reference.R`` (R 4.2, survey 4.1-1, MASS
7.3-58) under ``tests/reference/fixtures/glm/``; that script documents every case and column.

* ``r_glm.csv``: coefficients (estimate, se, t, df, p_value, ci_low, ci_high) per case.
* ``r_glm_fit.csv``: per case n, n_dropped, df_residual, dispersion.
* ``r_glm_tests.csv``: ``regTermTest(model, ~terms, method="Wald")``.
* ``r_glm_margins.csv``: predictive margins of stype (``svypredmeans`` and diagnostics).
* ``r_glm_negbin.csv``: ``MASS::glm.nb`` coefficients and theta on unweighted data.

Every fixture case must be mapped below (``DESIGNS`` x ``MODELS``, ``WALD_TERMS``,
``MARGIN_MODELS``, ``NEGBIN``); an unmapped case fails, so nothing is skipped silently.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import survey as sv

REF = Path(__file__).parent / "reference"
DATA = REF / "data"
FIX = REF / "fixtures"
GLM = FIX / "glm"
REPW = FIX / "repweights"

REL = 1e-6       # relative tolerance against R (svyglm fixtures)
REL_NB = 1e-5    # glm.nb point estimates and theta
FLOOR = 1e-12    # absolute differences below this count as equal


def _read(path: Path, text: list[str]) -> pd.DataFrame:
    """Fixture CSVs: only the literal ``NA`` is missing; text columns stay text."""
    return pd.read_csv(path, keep_default_na=False, na_values=["NA"], dtype={c: str for c in text})


COEF = _read(GLM / "r_glm.csv", ["case", "term"])
FIT = _read(GLM / "r_glm_fit.csv", ["case", "design", "model", "family", "call"]).set_index("case")
TESTS = _read(GLM / "r_glm_tests.csv", ["case", "test", "terms"])
MARGINS = _read(GLM / "r_glm_margins.csv", ["case", "method", "level"])
NB = _read(GLM / "r_glm_negbin.csv", ["case", "term"])
META = _read(REPW / "meta.csv", ["design", "dataset", "weights_file", "type", "call"]).set_index("design")
RSCALES = _read(REPW / "rscales.csv", ["design"])

FIT_CASES = list(FIT.index)


# =============================================================================================
# data: R's expressions rebuilt as columns (make_glm_reference.R, header)
# =============================================================================================
@functools.cache
def api(name: str) -> pd.DataFrame:
    df = pd.read_csv(DATA / f"{name}.csv", dtype={"cds": str})
    df["schwide_yes"] = (df["sch.wide"] == "Yes").astype(float)       # I(sch.wide == "Yes")
    df["enroll100"] = np.round(df["enroll"] / 100)                      # round(enroll/100), half to even
    df["log_api_stu"] = np.log(df["api.stu"])                           # offset(log(api.stu))
    df["log_enroll"] = np.log(df["enroll"])                             # offset(log(enroll))
    df["one"] = 1.0
    return df


# =============================================================================================
# designs
# =============================================================================================
def _rep_from_r(name: str) -> sv.ReplicateDesign:
    """ReplicateDesign from exactly R's replicate weights (fixtures/repweights, make_reference.R)."""
    m = META.loc[name]
    data = api(m["dataset"])
    w = _read(REPW / m["weights_file"], ["cds", "pstrat"])
    assert (w["cds"].to_numpy() == data["cds"].to_numpy()).all()
    rw = [c for c in w.columns if re.fullmatch(r"rw\d+", c)]
    data = pd.concat([data, w[["pw"] + rw].rename(columns={"pw": "w_full"})], axis=1)
    rs = RSCALES[RSCALES["design"] == name].sort_values("replicate")["rscale"].to_numpy(dtype=float)
    return sv.ReplicateDesign(data, weights="w_full", replicate_weights=rw, method=m["type"],
                              scale=float(m["scale"]), rscales=rs, mse=str(m["mse"]).upper() == "TRUE",
                              combined_weights=True, df=float(m["degf"]))


NOT_H = lambda df: (df["stype"] != "H").to_numpy()  # noqa: E731
NOT_E = lambda df: (df["stype"] != "E").to_numpy()  # noqa: E731

# design name -> (builder, subset mask builder or None)
DESIGNS = {
    "clus1": (lambda: sv.Design(api("apiclus1"), psu="dnum", weights="pw", fpc="fpc"), None),
    "strat": (lambda: sv.Design(api("apistrat"), strata="stype", weights="pw", fpc="fpc"), None),
    "clus1_jk1": (lambda: _rep_from_r("clus1_jk1"), None),
    # R: svyglm(f, design = subset(dclus1, stype != "H")): a domain on the full design
    "clus1_domNotH": (lambda: sv.Design(api("apiclus1"), psu="dnum", weights="pw", fpc="fpc"), NOT_H),
    # R: subset(dclus1, stype != "E"): 12 of the 15 districts, degf 11
    "clus1_domNotE": (lambda: sv.Design(api("apiclus1"), psu="dnum", weights="pw", fpc="fpc"), NOT_E),
    "clus2": (lambda: sv.Design(api("apiclus2"), psu=["dnum", "snum"], fpc=["fpc1", "fpc2"]), None),
}


@functools.cache
def design(name: str):
    return DESIGNS[name][0]()


# model name (R) -> engine formula, family, offset column
MODELS = {
    "logit_ell_meals": ("schwide_yes ~ ell + meals", "binomial", None),
    "logit_ell_stype": ("schwide_yes ~ ell + C(stype)", "binomial", None),
    "logit_ell_avged": ("schwide_yes ~ ell + `avg.ed`", "binomial", None),
    "pois_stype_meals": ("enroll100 ~ C(stype) + meals", "poisson", None),
    "pois_stype_meals_offset": ("enroll100 ~ C(stype) + meals", "poisson", "log_api_stu"),
    "pois_meals": ("enroll100 ~ meals", "poisson", None),
    "pois_meals_offset": ("enroll100 ~ meals", "poisson", "log_api_stu"),
}
R_FAMILY = {"binomial": "quasibinomial", "poisson": "quasipoisson"}
# the response column of each model, for the y_sum check
RESPONSE = {"logit": "schwide_yes", "pois": "enroll100"}


def engine_term(r_term: str) -> str:
    """R's coefficient name -> formulaic's."""
    if r_term == "(Intercept)":
        return "Intercept"
    m = re.fullmatch(r"stype([EHM])", r_term)
    if m:
        return f"C(stype)[T.{m.group(1)}]"
    return r_term


def engine_test_terms(r_terms: str) -> list[str]:
    """regTermTest's ~a+b -> the engine's wald_test term list."""
    return ["C(stype)" if t == "stype" else t for t in r_terms.split("+")]


def _fit_case(case: str, **kw):
    row = FIT.loc[case]
    dn, mn = row["design"], row["model"]
    if dn not in DESIGNS or mn not in MODELS:
        pytest.fail(f"fixture case {case!r}: design {dn!r} or model {mn!r} has no engine mapping")
    formula, family, offset = MODELS[mn]
    d = design(dn)
    sub = DESIGNS[dn][1]
    args = dict(family=family)
    if offset is not None:
        args["offset"] = offset
    if sub is not None:
        args["subset"] = sub(d.data)
    args.update(kw)
    return d.glm(formula, **args)


@functools.cache
def run_case(case: str):
    """The engine fit, with the warnings it raised (message strings)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = _fit_case(case)
    return fit, [str(w.message) for w in rec]


def fit_or_refusal(case: str):
    """Fit the case (an empty category level of a domain is dropped with a named warning)."""
    return run_case(case)[0]


# =============================================================================================
# comparison helpers
# =============================================================================================
def close(got, want, rel: float = REL) -> bool:
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return True
    if got is None or pd.isna(got):
        return False
    got, want = float(got), float(want)
    return abs(got - want) <= FLOOR or abs(got - want) <= rel * abs(want)


def _diff(what: str, want, got, source: str = "R") -> str:
    try:
        rd = abs(float(got) - float(want)) / abs(float(want))
    except (TypeError, ValueError, ZeroDivisionError):
        rd = float("nan")
    return f"{what}: {source} {float(want):.12g}, engine {got!r} (rel diff {rd:.2e})"


# =============================================================================================
# 0. fixtures present and every case mapped
# =============================================================================================
def test_fixtures_present():
    assert len(FIT_CASES) >= 20, "run `Rscript tests/reference/make_glm_reference.R`"
    assert set(COEF["case"]) == set(FIT_CASES)


def test_every_fixture_case_is_mapped():
    bad = [c for c in FIT_CASES if FIT.loc[c, "design"] not in DESIGNS or FIT.loc[c, "model"] not in MODELS]
    bad += [f"{c}/{t}" for c, t in zip(TESTS["case"], TESTS["terms"]) if c not in FIT.index]
    bad += [c for c in MARGINS["case"].unique() if c not in MARGIN_CASES]
    bad += [c for c in NB["case"].unique() if c not in NEGBIN]
    assert not bad, f"fixture cases with no engine mapping: {bad}"


def test_published_vignette_values():
    """reference.csv line 9 (survey vignette): the fixture and the engine at printed precision."""
    fit = run_case("clus1_logit_ell_meals")[0]
    tab = fit.table.set_index("term")
    for term, est, se, p in [("Intercept", 1.899557, 0.509915, 0.00290), ("ell", 0.039925, 0.012443, 0.00751),
                             ("meals", -0.019115, 0.008825, 0.05117)]:
        assert abs(tab.loc[term, "estimate"] - est) <= 5e-7, (term, tab.loc[term, "estimate"], est)
        assert abs(tab.loc[term, "se"] - se) <= 5e-7, (term, tab.loc[term, "se"], se)
        assert abs(tab.loc[term, "p_value"] - p) <= 5e-6, (term, tab.loc[term, "p_value"], p)
        assert tab.loc[term, "df"] == 12
    assert fit.df_residual == 12


# =============================================================================================
# 1. coefficients, SE, t, df, p, CI: every svyglm case
# =============================================================================================
COEF_FIELDS = ["estimate", "se", "t", "df", "p_value", "ci_low", "ci_high"]


@pytest.mark.parametrize("case", FIT_CASES)
def test_glm_coefficients(case):
    fit = fit_or_refusal(case)
    tab = fit.table
    want = COEF[COEF["case"] == case]
    errs = []
    got_terms = list(tab["term"])
    want_terms = [engine_term(t) for t in want["term"]]
    if sorted(got_terms) != sorted(want_terms):
        errs.append(f"{case}: terms R {want_terms} vs engine {got_terms}")
    tab = tab.set_index("term")
    for _, r in want.iterrows():
        term = engine_term(r["term"])
        if term not in tab.index:
            continue
        for f in COEF_FIELDS:
            if not close(tab.loc[term, f], r[f]):
                errs.append(_diff(f"{case} [{term}] {f}", r[f], tab.loc[term, f]))
        if not close(fit.coef[term], r["estimate"]):
            errs.append(_diff(f"{case} coef[{term}]", r["estimate"], fit.coef[term]))
        if not close(math.sqrt(fit.vcov.loc[term, term]), r["se"]):
            errs.append(_diff(f"{case} sqrt(vcov[{term}])", r["se"], math.sqrt(fit.vcov.loc[term, term])))
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("case", FIT_CASES)
def test_glm_fit_info(case):
    """n, n_dropped, df_residual (= design df + 1 - p) and the response sum."""
    fit = fit_or_refusal(case)
    r = FIT.loc[case]
    errs = []
    for f, got in [("n", fit.n), ("n_dropped", fit.n_dropped), ("df_residual", fit.df_residual)]:
        if not close(got, r[f]):
            errs.append(_diff(f"{case} {f}", r[f], got))
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("case", FIT_CASES)
def test_fixture_data_match(case):
    """The Python-side columns are R's expressions: the response sums agree over R's rows."""
    r = FIT.loc[case]
    d = design(r["design"])
    formula = MODELS[r["model"]][0]
    cols = [c for c in d.data.columns if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w.])", formula)]
    used = np.array(d.data[cols].notna().all(axis=1), dtype=bool)
    if DESIGNS[r["design"]][1] is not None:
        used &= DESIGNS[r["design"]][1](d.data)
    y = d.data[RESPONSE[r["model"].split("_")[0]]].to_numpy(dtype=float)
    assert used.sum() == r["n"]
    assert close(y[used].sum(), r["y_sum"], rel=1e-12)


@pytest.mark.parametrize("case", FIT_CASES)
def test_glm_dispersion(case):
    """summary.svyglm's dispersion: svyvar(Pearson residuals (y - mu)/sqrt(V(mu)), design).

    The fixture's ``dispersion_svyvar`` is that definition.  R's printed ``dispersion`` equals
    it on Taylor designs without dropped rows; it differs (R 4.1-1 quirks, documented in
    make_glm_reference.R) for the JK1 design (summary.svrepglm: n times an uncentred mean
    square) and for clus2 Poisson models with dropped rows (prior weights rescaled before
    na.omit)."""
    fit = fit_or_refusal(case)
    want = FIT.loc[case, "dispersion_svyvar"]
    assert close(fit.dispersion, want), (
        _diff(f"{case} dispersion", want, fit.dispersion)
        + f"; R's summary(model)$dispersion = {FIT.loc[case, 'dispersion']:.12g}")


# =============================================================================================
# 2. odds ratios / rate ratios = exp(coef), their CIs = exp(CI bounds)
# =============================================================================================
@pytest.mark.parametrize("case", FIT_CASES)
def test_ratios_are_exp(case):
    fit = fit_or_refusal(case)
    family = MODELS[FIT.loc[case, "model"]][1]
    names = ("odds_ratio", "or_ci_low", "or_ci_high") if family == "binomial" else (
        "rate_ratio", "rr_ci_low", "rr_ci_high")
    tab = fit.table.set_index("term")
    for c in ("exp_estimate", "exp_ci_low", "exp_ci_high") + names:
        assert c in tab.columns, f"{case}: table has no column {c!r} ({list(tab.columns)})"
    errs = []
    want = COEF[COEF["case"] == case]
    for _, r in want.iterrows():
        term = engine_term(r["term"])
        if term not in tab.index:
            errs.append(f"{case}: no row {term}")
            continue
        row = tab.loc[term]
        for src, cols in (("estimate", ("exp_estimate", names[0])), ("ci_low", ("exp_ci_low", names[1])),
                          ("ci_high", ("exp_ci_high", names[2]))):
            for c in cols:
                if not close(row[c], math.exp(r[src])):
                    errs.append(_diff(f"{case} [{term}] {c} vs exp(R {src})", math.exp(r[src]), row[c]))
                if not close(row[c], math.exp(row[src]), rel=1e-12):
                    errs.append(f"{case} [{term}] {c} = {row[c]!r} is not exp({src}) = {math.exp(row[src])!r}")
    assert not errs, "\n".join(errs)


def test_level_changes_intervals():
    """level=0.90 gives t intervals on df_residual at 90%."""
    from scipy import stats

    fit = design("clus1").glm("schwide_yes ~ ell + meals", family="binomial", level=0.90)
    tab = fit.table.set_index("term")
    q = stats.t.ppf(0.95, 12)
    want = COEF[COEF["case"] == "clus1_logit_ell_meals"]
    for _, r in want.iterrows():
        t = engine_term(r["term"])
        assert close(tab.loc[t, "ci_low"], r["estimate"] - q * r["se"])
        assert close(tab.loc[t, "ci_high"], r["estimate"] + q * r["se"])


# =============================================================================================
# 3. Wald tests vs regTermTest
# =============================================================================================
WALD_CASES = [(c, t) for c, t in zip(TESTS["case"], TESTS["test"])]


@pytest.mark.parametrize(("case", "test"), WALD_CASES, ids=[f"{c}-{t}" for c, t in WALD_CASES])
def test_wald_vs_regtermtest(case, test):
    r = TESTS[(TESTS["case"] == case) & (TESTS["test"] == test)].iloc[0]
    fit = fit_or_refusal(case)
    res = fit.wald_test(engine_test_terms(r["terms"]))
    assert isinstance(res, pd.DataFrame) and len(res) == 1, f"wald_test returned {res!r}"
    got = res.iloc[0]
    errs = [_diff(f"{case} {test} {f}", r[f], got.get(f)) for f in ("chisq", "F", "df1", "df2", "p_value")
            if not close(got.get(f), r[f])]
    assert not errs, "\n".join(errs)


def test_single_term_wald_is_t_squared():
    fit = run_case("clus1_logit_ell_meals")[0]
    res = fit.wald_test(["meals"]).iloc[0]
    t = fit.table.set_index("term").loc["meals"]
    assert close(res["F"], t["t"] ** 2, rel=1e-10)
    assert close(res["p_value"], t["p_value"], rel=1e-8)


# =============================================================================================
# 4. predictive margins vs svypredmeans (Taylor) / replicate versions (JK1)
# =============================================================================================
MARGIN_MODELS = {  # R's svypredmeans(svyglm(adjust), ~stype) <-> engine model adjust + C(stype)
    "logit_ell_meals": ("schwide_yes ~ ell + meals + C(stype)", "binomial"),
    "pois_meals": ("enroll100 ~ meals + C(stype)", "poisson"),
}
MARGIN_CASES = {f"{dn}_{mn}": (dn, mn) for dn in ("clus1", "strat", "clus2", "clus1_jk1") for mn in MARGIN_MODELS}


@functools.cache
def margins(case: str) -> pd.DataFrame:
    dn, mn = MARGIN_CASES[case]
    formula, family = MARGIN_MODELS[mn]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = design(dn).glm(formula, family=family)
    res = fit.predictive_margins("stype")
    return res.assign(level=res["level"].astype(str)).set_index("level")


MARGIN_FIXTURE_CASES = sorted(MARGINS["case"].unique())


def _margin_rows(case: str):
    if case not in MARGIN_CASES:
        pytest.fail(f"margins fixture case {case!r} has no engine mapping")
    want = MARGINS[MARGINS["case"] == case]
    got = margins(case)
    missing = sorted(set(want["level"]) - set(got.index))
    assert not missing, f"{case}: no engine row for levels {missing} (engine: {list(got.index)})"
    for lev, w in want.groupby("level"):
        yield lev, got.loc[lev], w.set_index("method")


@pytest.mark.parametrize("case", MARGIN_FIXTURE_CASES)
def test_predictive_margins_estimate(case):
    """The margin itself: design-weighted mean of the counterfactual predictions."""
    errs = []
    for lev, g, by in _margin_rows(case):
        est = by["estimate"].iloc[0]
        if not close(g["estimate"], est):
            errs.append(_diff(f"{case} [{lev}] estimate", est, g["estimate"]))
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("case", MARGIN_FIXTURE_CASES)
def test_predictive_margins_se(case):
    """Taylor designs: svypredmeans' SE (Graubard-Korn: se_cond^2 + se_beta^2, no cross term).
    The fixture's "linearized" row (full linearization, the cross term kept) is shown on failure.
    JK1: svypredmeans fails on replicate designs in survey 4.1-1; either R replicate version
    ("gk_replicate" or "replicate_refit", make_glm_reference.R section 4) is accepted."""
    errs = []
    for lev, g, by in _margin_rows(case):
        if "svypredmeans" in by.index:
            ref = by.loc["svypredmeans"]
            if not close(g["se"], ref["se"]):
                errs.append(_diff(f"{case} [{lev}] se", ref["se"], g["se"])
                            + f" [svypredmeans se_cond {ref['se_cond']:.6g}, se_beta {ref['se_beta']:.6g};"
                            f" R linearized {by.loc['linearized', 'se']:.10g}]")
        elif not any(close(g["se"], by.loc[m, "se"]) for m in by.index):
            errs.append(f"{case} [{lev}] se: engine {g['se']!r}, R " +
                        ", ".join(f"{m} {by.loc[m, 'se']:.12g}" for m in by.index))
    assert not errs, "\n".join(errs)


@pytest.mark.parametrize("case", MARGIN_FIXTURE_CASES)
def test_predictive_margins_ci(case):
    """Intervals: estimate -/+ t(degf(design)) * se, the engine's convention for estimates
    (docs/engine-api.md: df=None is the design df), with the engine's own SE."""
    from scipy import stats

    errs = []
    for lev, g, by in _margin_rows(case):
        q = stats.t.ppf(0.975, by["df"].iloc[0])
        for f, sign in (("ci_low", -1), ("ci_high", 1)):
            want = g["estimate"] + sign * q * g["se"]
            if not close(g[f], want):
                errs.append(_diff(f"{case} [{lev}] {f}", want, g[f],
                                  f"estimate -/+ t(degf {by['df'].iloc[0]:g}) * engine se ="))
    assert not errs, "\n".join(errs)


# =============================================================================================
# 5. negative binomial: unweighted point estimates and theta vs MASS::glm.nb
# =============================================================================================
NEGBIN = {
    # case -> (data, formula, offset column)
    "nb_srs_meals_stype": ("apisrs", "enroll100 ~ meals + C(stype)", None),
    "nb_clus1_emer_ell_stype_offset": ("apiclus1", "emer ~ ell + C(stype)", "log_enroll"),
}
NB_WEIGHTS = ["one", "pw"]  # weight 1, and the equal sampling weights (apisrs 30.97; apiclus1 33.85)


@pytest.mark.parametrize("weights", NB_WEIGHTS)
@pytest.mark.parametrize("case", sorted(NB["case"].unique()))
def test_negbin_vs_glm_nb(case, weights):
    if case not in NEGBIN:
        pytest.fail(f"negbin fixture case {case!r} has no engine mapping")
    data, formula, offset = NEGBIN[case]
    df = api(data)
    assert df[weights].nunique() == 1, "negbin is checked on equal weights only"
    kw = {"offset": offset} if offset else {}
    fit = sv.Design(df, weights=weights).glm(formula, family="negbin", **kw)
    want = NB[NB["case"] == case].set_index("term")
    errs = []
    for term, r in want.iterrows():
        if term == "theta":
            got = getattr(fit, "theta", None)
            if not close(got, r["estimate"], rel=REL_NB):
                errs.append(_diff(f"{case} theta", r["estimate"], got))
            continue
        t = engine_term(term)
        if not close(fit.coef.get(t), r["estimate"], rel=REL_NB):
            errs.append(_diff(f"{case} [{t}] estimate", r["estimate"], fit.coef.get(t)))
    tab = fit.table.set_index("term")
    assert "rate_ratio" in tab.columns
    assert np.allclose(tab["rate_ratio"], np.exp(tab["estimate"]), rtol=1e-12)
    assert not errs, "\n".join(errs)


# =============================================================================================
# 6. domains: subset= and d.subset() agree; replicate designs have glm
# =============================================================================================
@pytest.mark.parametrize(("dn", "mask"), [("clus1_domNotH", NOT_H), ("clus1_domNotE", NOT_E)])
def test_subset_argument_equals_subset_design(dn, mask):
    """d.glm(..., subset=mask) and d.subset(mask).glm(...) are the same domain model (R's
    svyglm(design = subset(d, ...))), with df_residual = degf(subset) + 1 - p."""
    d = design("clus1")
    m = mask(d.data)
    a = d.glm("schwide_yes ~ ell + meals", family="binomial", subset=m)
    b = d.subset(m).glm("schwide_yes ~ ell + meals", family="binomial")
    want = FIT.loc[f"{dn}_logit_ell_meals", "df_residual"]
    assert a.df_residual == want, f"subset=: df_residual {a.df_residual}, R {want}"
    assert b.df_residual == want, f"d.subset(): df_residual {b.df_residual}, R {want}"
    pd.testing.assert_frame_equal(a.table, b.table, rtol=1e-10)


# =============================================================================================
# 7. bad input: named, never silent
# =============================================================================================
def _run_bad(fn):
    """Run fn; return (result or None, messages of warnings and of a raised SurveyError)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            res, err = fn(), None
        except sv.SurveyError as e:
            res, err = None, str(e)
    msgs = [str(w.message) for w in rec]
    return res, msgs + ([err] if err else []), err


def test_perfect_separation_binary_term_named():
    df = api("apiclus1").copy()
    # quasi-complete separation: every school with sep == 1 has the outcome 1
    df["sep"] = ((df["ell"] < 8) & (df["schwide_yes"] == 1)).astype(float)
    assert df["sep"].sum() > 5
    d = sv.Design(df, psu="dnum", weights="pw", fpc="fpc")
    _, msgs, _ = _run_bad(lambda: d.glm("schwide_yes ~ sep + meals", family="binomial"))
    assert any("sep" in m and "separat" in m.lower() for m in msgs), f"separation not named: {msgs}"


def test_perfect_separation_continuous_term_named():
    df = api("apiclus1").copy()
    df["high"] = (df["api00"] > 700).astype(float)   # complete separation on api00
    d = sv.Design(df, psu="dnum", weights="pw", fpc="fpc")
    _, msgs, _ = _run_bad(lambda: d.glm("high ~ api00", family="binomial"))
    assert any("api00" in m and "separat" in m.lower() for m in msgs), f"separation not named: {msgs}"


def test_constant_predictor_named():
    df = api("apiclus1").copy()
    df["const"] = 5.0
    d = sv.Design(df, psu="dnum", weights="pw", fpc="fpc")
    _, msgs, _ = _run_bad(lambda: d.glm("schwide_yes ~ ell + const", family="binomial"))
    assert any("const" in m for m in msgs), f"constant predictor not named: {msgs}"


def test_constant_predictor_in_domain_named():
    """Constant only within the domain (all E schools: stype-derived dummy is 0)."""
    df = api("apiclus1").copy()
    df["is_h"] = (df["stype"] == "H").astype(float)
    d = sv.Design(df, psu="dnum", weights="pw", fpc="fpc")
    _, msgs, _ = _run_bad(lambda: d.glm("schwide_yes ~ ell + is_h", family="binomial",
                                        subset=NOT_H(df)))
    assert any("is_h" in m for m in msgs), f"constant-in-domain predictor not named: {msgs}"


def test_empty_category_in_domain_named():
    d = design("clus1")
    _, msgs, _ = _run_bad(lambda: d.glm("schwide_yes ~ ell + C(stype)", family="binomial",
                                        subset=NOT_H(d.data)))
    assert any("stype" in m and "H" in m for m in msgs), f"empty category H not named: {msgs}"


def test_missing_predictor_counted_and_named():
    """apiclus1 avg.ed has 26 missing values: n_dropped = 26 and a warning names avg.ed."""
    d = design("clus1")
    fit, msgs, err = _run_bad(lambda: d.glm("schwide_yes ~ ell + `avg.ed`", family="binomial"))
    assert err is None, err
    assert fit.n_dropped == 26 == int(d.data["avg.ed"].isna().sum())
    assert fit.n == 183 - 26
    assert any("avg.ed" in m for m in msgs), f"no warning names avg.ed: {msgs}"


def test_injected_missing_predictor_counted_and_named():
    df = api("apistrat").copy()
    df.loc[[3, 17, 40, 41, 150, 199, 120], "ell"] = np.nan
    df.loc[[3, 60], "meals"] = np.nan   # row 3 missing in both: counted once
    d = sv.Design(df, strata="stype", weights="pw", fpc="fpc")
    fit, msgs, err = _run_bad(lambda: d.glm("schwide_yes ~ ell + meals", family="binomial"))
    assert err is None, err
    assert fit.n_dropped == 8 and fit.n == 192
    assert any("ell" in m and "meals" in m for m in msgs), f"warning does not name ell and meals: {msgs}"


def test_missing_outcome_counted():
    """apiclus2 enroll has 6 missing values (R drops them; r_glm_fit.csv n_dropped = 6)."""
    fit, msgs = run_case("clus2_pois_stype_meals")
    assert fit.n_dropped == 6 == FIT.loc["clus2_pois_stype_meals", "n_dropped"]
    assert any("enroll" in m for m in msgs), f"no warning names the outcome: {msgs}"


def test_missing_in_domain_only_counted():
    """Missing values outside the domain are not the domain's dropped rows."""
    df = api("apiclus1").copy()
    df.loc[df["stype"] == "H", "ell"] = np.nan
    d = sv.Design(df, psu="dnum", weights="pw", fpc="fpc")
    fit, _, err = _run_bad(lambda: d.glm("schwide_yes ~ ell + meals", family="binomial", subset=NOT_H(df)))
    assert err is None, err
    assert fit.n_dropped == 0
    want = COEF[COEF["case"] == "clus1_domNotH_logit_ell_meals"].set_index("term")
    assert close(fit.coef["ell"], want.loc["ell", "estimate"])
    assert close(fit.table.set_index("term").loc["ell", "se"], want.loc["ell", "se"])


def test_bad_family_named():
    d = design("clus1")
    with pytest.raises(sv.SurveyError, match="gaussian"):
        d.glm("schwide_yes ~ ell", family="gaussian")


def test_binomial_outcome_out_of_range_named():
    d = design("clus1")
    with pytest.raises(sv.SurveyError, match="enroll100"):
        d.glm("enroll100 ~ ell", family="binomial")


def test_negbin_small_theta_matches_glm_nb():
    """Victimization counts are very overdispersed (theta << 1): theta's ML must not diverge.
    Reference: MASS::glm.nb(y ~ x) in R 4.x on exactly these data (written to CSV and read in R):
    coefficients -2.5141889202, 0.5206921078, theta 0.02133238648 (glm.nb's own tolerance ~1e-5)."""
    rng = np.random.default_rng(3)
    n = 20000
    x = rng.normal(size=n)
    mu = np.exp(-2.5 + 0.5 * x)
    y = rng.poisson(mu * rng.gamma(0.02, 1 / 0.02, n))
    d = sv.Design(pd.DataFrame({"y": y.astype(float), "x": x, "w": 1.0}), weights="w")
    fit = d.glm("y ~ x", family="negbin")
    np.testing.assert_allclose(fit.coef.to_numpy(), [-2.5141889202, 0.5206921078], rtol=1e-7)
    assert fit.theta == pytest.approx(0.02133238648, rel=1e-4)


# =============================================================================================
# Models from a parameter set (survey.models.fit_models): a perception outcome against R,
# empty categories, reference levels, failures, validation
# =============================================================================================
PERC = _read(FIX / "models" / "r_perception_model.csv", ["case", "term"])
PERSONAL = {"assault": [51, 52], "threats": [53], "robbery": [61], "personal_theft": [62],
            "sexual_violence": [71, 72], "fraud": [81]}
REGIONS = {0: "Offshore islands", 1: "North", 2: "North West", 3: "North East", 4: "Central", 5: "East",
           6: "Capital", 7: "South East", 8: "South West"}  # labels wider than the file: nobody offshore


def perception_spec(folder: Path) -> Path:
    """A spec over the raw fixture files of make_perception_model.R, written as .sav files:
    the region labels list a category nobody holds, first (the empty reference trap); the
    crime type piracy (code 91) has no incident (a model of it cannot be fitted); the domains
    police_dom (the reported item) and prior_dom (a derived victim column) are victim-status."""
    import pyreadstat

    folder.mkdir(parents=True, exist_ok=True)
    persons = pd.read_csv(DATA / "perception_persons.csv")
    incidents = pd.read_csv(DATA / "perception_incidents.csv")
    incidents["police"] = 1.0
    pyreadstat.write_sav(persons.astype(float), folder / "persons.sav")
    pyreadstat.write_sav(incidents.astype(float), folder / "incidents.sav")
    types = [{"name": k, "unit": "person", "codes": v} for k, v in PERSONAL.items()]
    types.append({"name": "piracy", "unit": "person", "codes": [91]})
    spec = {
        "schema_version": 1, "survey": "perception-fixture", "title": "Perception model fixture",
        "period": "Fixture year",
        "files": {"persons": {"path": "persons.sav", "unit": "person", "keys": ["hhid", "pid"]},
                  "incidents": {"path": "incidents.sav", "unit": "incident", "keys": ["incid"],
                                "link": {"to": "persons", "on": ["hhid", "pid"], "unmatched": "error"}}},
        "design": {"file": "persons", "weights": {"person": "wt_person"}, "strata": "stratum", "psu": "psu",
                   "nest": False, "lonely_psu": "fail"},
        "victimization": {"source": "incidents", "file": "incidents", "crime_code": "crimecode", "types": types,
                          "groups": {"personal": list(PERSONAL)},
                          "ignore_codes": [11, 12, 21, 22, 31, 41, 42, 99],  # household crimes: not here
                          "exclude": [{"name": "outside_period", "where": "month < 1 or month > 12"}],
                          "reported": {"variable": "police", "yes": [1], "no": [2]}},
        "perception": [{"name": "safe_dark", "variable": "safedark", "indicator": "feeling_safe",
                        "positive": [1, 2], "missing": [8, 9]}],
        "domains": {"sex": {"variable": "sex", "label": "Sex", "labels": {1: "Male", 2: "Female"}},
                    "age_band": {"variable": "age", "label": "Age", "bands": [16, 25, 35, 45, 55, 65, 75]},
                    "region": {"variable": "region", "label": "Region", "labels": REGIONS},
                    "police_dom": {"variable": "police", "label": "Reported"},
                    "prior_dom": {"variable": "victim__assault", "label": "Assaulted"}},
    }
    import yaml

    path = folder / "perception.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def perception_data(tmp_path_factory):
    """The fixture survey loaded through the ingest (domains police_dom and prior_dom left
    out: they are for the spec-level checks and have no column in the persons file)."""
    import yaml

    from survey.ingest import load

    folder = tmp_path_factory.mktemp("perception")
    path = perception_spec(folder)
    spec = yaml.safe_load(path.read_text())
    spec["domains"] = {k: v for k, v in spec["domains"].items() if k in ("sex", "age_band", "region")}
    loadable = folder / "loadable.yaml"
    loadable.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load(loadable)


UNSAFE = {"name": "unsafe_after_dark", "outcome": "not safe_dark",
          "predictors": ["victim:personal", "sex", "age_band", "region"], "family": "logistic"}


def _model(data, m: dict, rule="first"):
    from survey import models as M

    return M.model_spec(data.spec, M.check_models_value([m])[0], default_rule=rule)


def _r_name(term: str) -> str:
    m = re.match(r"^C\((\w+)\)\[T\.(.*)\]$", term)
    return f"{m[1]}{m[2]}" if m else ("(Intercept)" if term == "Intercept" else term)


@pytest.mark.parametrize("case", ["first", "declared"])
def test_perception_model_against_svyglm(perception_data, case):
    """Feeling unsafe ~ victim:personal + sex + age_band + region: coefficients, SEs, t, df,
    n against R's svyglm (make_perception_model.R) to 1e-6 relative.  ``first``: the region
    labels start with an empty category, which is dropped (R: droplevels), the reference is
    North; ``declared``: region Capital and age 45-54 named, sex by the rule ``largest``."""
    from survey import models as M

    m = dict(UNSAFE)
    if case == "declared":
        m["reference"] = {"region": "Capital", "age_band": "45-54"}
    ms = _model(perception_data, m, "largest" if case == "declared" else "first")
    run = M.fit_models(perception_data, [ms])
    t = run.table.assign(r=lambda x: x.term.map(_r_name)).set_index("r")
    want = PERC[PERC.case == case].set_index("term")
    coef = want.drop(index=["(n)", "(df)"])
    assert sorted(t.index) == sorted(coef.index)
    errs = [_diff(f"{case} [{term}] {col}", coef.loc[term, col], t.loc[term, col])
            for col in ("estimate", "se", "t", "p_value") for term in coef.index
            # p-values: their relative error is |t| times that of t (1e-5 for the small ones)
            if not close(t.loc[term, col], coef.loc[term, col], REL if col != "p_value" else 1e-5)]
    assert not errs, "\n".join(errs)
    assert (t["df"] == want.loc["(df)", "estimate"]).all()
    assert (t["n"] == want.loc["(n)", "estimate"]).all()
    # the empty category is stated, and never a reference
    assert (t["dropped_categories"] == "Region: Offshore islands").all()
    assert all("'region': 'Offshore islands'" in n for n in t["note"])  # the warning, kept in the table
    ref = dict(zip(t.index, t["reference"]))
    if case == "first":
        assert ref["regionEast"] == "Region: North (reference)"
        assert ref["sexFemale"] == "Sex: Male (reference)"
        assert ref["age_band75+"] == "Age: 16-24 (reference)"
    else:
        assert ref["regionEast"] == "Region: Capital (reference)"
        assert ref["sexMale"] == "Sex: Female (reference)"  # the largest by weight (R: which.max)
        assert ref["age_band75+"] == "Age: 45-54 (reference)"
    assert ref["victim__personal"] == "Not a victim: Personal (reference)"
    assert set(t["model"]) == {"unsafe_after_dark"} and set(t["outcome"]) == {"not safe_dark"}
    assert list(run.table.columns) == M.MODEL_TABLE_COLUMNS


def test_empty_reference_category_used_to_break_the_fit(perception_data):
    """The trap itself: with the empty category kept first (as formulaic's treatment coding
    would), the model matrix is rank deficient; the glm now drops it and names it."""
    d = perception_data.design("person")
    data = d.data
    assert list(data["region"].cat.categories)[0] == "Offshore islands"
    assert int((data["region"] == "Offshore islands").sum()) == 0
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = d.glm("victim__personal ~ C(region)", family="binomial")
    assert fit.reference == {"region": "North"}
    assert fit.dropped_levels == {"region": ["Offshore islands"]}
    assert "C(region)[T.Offshore islands]" not in fit.terms and len(fit.terms) == 8
    assert any(issubclass(w.category, sv.models.EmptyCategoryWarning) for w in rec)
    # a category held only by rows of weight 0 is empty too
    df = data.copy()
    df["w0"] = np.where(df["region"] == "North", 0.0, df["wt_person"])
    d0 = sv.Design(df, strata="stratum", psu="psu", weights="w0")
    fit0 = d0.glm("victim__personal ~ C(region)", family="binomial")
    assert fit0.reference == {"region": "North West"}
    assert fit0.dropped_levels == {"region": ["Offshore islands", "North"]}


def test_largest_reference_is_the_largest_weighted_category():
    """By hand: b holds more rows but less weight than a."""
    rng = np.random.default_rng(5)
    n = 400
    g = np.where(np.arange(n) < 150, "a", np.where(np.arange(n) < 350, "b", "c"))
    w = np.where(g == "a", 10.0, np.where(g == "b", 2.0, 1.0))
    df = pd.DataFrame({"g": pd.Categorical(g, categories=["c", "b", "a", "z"]), "w": w,
                       "y": (rng.random(n) < 0.3).astype(float)})
    d = sv.Design(df, weights="w")
    fit = d.glm("y ~ C(g)", family="binomial", reference_rule="largest")
    assert fit.reference == {"g": "a"} and fit.dropped_levels == {"g": ["z"]}
    assert fit.terms == ["Intercept", "C(g)[T.c]", "C(g)[T.b]"]
    # the same model, by hand: log odds ratio of c against a (weighted proportions)
    p = {k: np.average(df.y[g == k], weights=w[g == k]) for k in "abc"}
    assert fit.coef["C(g)[T.c]"] == pytest.approx(np.log(p["c"] / (1 - p["c"]) / (p["a"] / (1 - p["a"]))), rel=1e-9)
    with pytest.raises(sv.SurveyError, match="'z' has no case"):
        d.glm("y ~ C(g)", family="binomial", reference={"g": "z"})
    with pytest.raises(sv.SurveyError, match="'aa' is not one of its categories \\(did you mean 'a'\\?\\)"):
        d.glm("y ~ C(g)", family="binomial", reference={"g": "aa"})


def test_risk_predictor_default_excludes_victim_status_domains(tmp_path):
    from survey import models as M
    from survey.spec import read_spec

    spec = read_spec(perception_spec(tmp_path / "s"))
    assert M.victimization_domains(spec) == ["police_dom", "prior_dom"]
    assert M.risk_predictor_default(spec) == ["sex", "age_band", "region"]
    ms = M.risk_models(spec, ["personal"])
    assert [m.name for m in ms] == ["risk_personal"]
    assert ms[0].predictors == ("sex", "age_band", "region")
    assert ms[0].formula() == "victim__personal ~ C(sex) + C(age_band) + C(region)"
    # and the shipped synthetic spec: every domain (none is a victimization item) but its cross
    syn = read_spec(Path(__file__).resolve().parents[1] / "specs" / "synthetic.yaml")
    assert M.risk_predictor_default(syn) == ["sex", "age_band", "region", "urban", "tenure"]


def test_a_model_that_cannot_be_fitted_fails_with_one_line_or_is_recorded(perception_data):
    from survey import models as M

    bad = _model(perception_data, {"name": "piracy_risk", "outcome": "victim:piracy", "predictors": ["sex"]})
    good = _model(perception_data, UNSAFE)
    with pytest.raises(M.ModelFitError) as e:
        M.fit_models(perception_data, [good, bad])
    msg = str(e.value)
    assert "\n" not in msg
    assert "piracy_risk" in msg and "victim:piracy" in msg and "constant" in msg
    run = M.fit_models(perception_data, [good, bad], on_failure="record")
    row = run.table[run.table.model == "piracy_risk"]
    assert len(row) == 1 and row.status.iloc[0] == "not fitted" and "constant" in row.note.iloc[0]
    assert np.isnan(row.estimate.iloc[0])
    assert run.failures == [{"model": "piracy_risk", "outcome": "victim:piracy",
                             "formula": "victim__piracy ~ C(sex)", "reason": row.note.iloc[0].split(": ", 1)[1]}]
    assert set(run.table[run.table.model == "unsafe_after_dark"].status) == {"fitted"}


@pytest.mark.parametrize("models, message", [
    ([{"name": "m", "outcome": "not safe_drak", "predictors": ["sex"]}], "did you mean 'safe_dark'"),
    ([{"name": "m", "outcome": "safe_dark", "predictors": ["sexx"]}], "'sexx' is not a domain of the spec (did you mean 'sex'?)"),
    ([{"name": "m", "outcome": "victim:assualt", "predictors": ["sex"]}], "did you mean 'assault'"),
    ([{"name": "m", "outcome": "victim:assault", "predictors": ["victim:personal"]}], "cannot predict itself"),
    ([{"name": "m", "outcome": "safe_dark", "predictors": ["sex"], "famly": "poisson"}], "did you mean 'family'"),
    ([{"name": "m", "outcome": "safe_dark", "predictors": ["sex"], "family": "logit"}], "family must be one of"),
    ([{"name": "m", "outcome": "count:assault", "predictors": ["sex"]}], "poisson or negbin"),
    ([{"name": "m", "outcome": "safe_dark", "predictors": ["sex"], "reference": {"region": "North"}}],
     "'region' is not a domain predictor"),
    ([{"name": "m", "outcome": "safe_dark", "predictors": ["sex"], "reference": {"sex": "Mal"}}],
     "reference of 'sex': 'Mal' is not one of its categories (did you mean 'Male'?)"),
    ([{"name": "m", "outcome": "safe_dark", "predictors": ["sex"]}] * 2, "two models are named 'm'"),
    ([{"name": "risk_assault", "outcome": "victim:assault", "predictors": ["sex"]}], "names starting with risk_"),
    ([{"name": "m", "outcome": "safe_dark"}], "'predictors' is required"),
    ({"name": "m"}, "must be a non-empty list"),
])
def test_models_parameter_errors_are_one_line_before_any_kernel(tmp_path, models, message):
    from survey.params import ParameterError, read_parameter_set

    spec = perception_spec(tmp_path / "s")
    pfile = tmp_path / "p.yaml"
    import yaml

    pfile.write_text(yaml.safe_dump({"spec": str(spec), "models": models}))
    with pytest.raises(ParameterError) as e:
        read_parameter_set(pfile, root=tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(str(pfile.resolve()))


@pytest.mark.parametrize("values, message", [
    ({"risk_predictors": ["sex", "regoin"]}, "risk_predictors: 'regoin' is not a domain of the spec (did you mean 'region'?)"),
    ({"risk_predictors": ["sex", "police_dom"]}, "'police_dom' is a victim-status domain"),
    ({"risk_reference": {"regoin": "North"}}, "risk_reference: 'regoin' is not a risk predictor (did you mean 'region'?)"),
    ({"risk_reference": {"police_dom": "1"}}, "'police_dom' is not a risk predictor"),
    ({"risk_reference": {"region": "Nort"}}, "risk_reference: reference of 'region': 'Nort' is not one of its "
                                             "categories (did you mean 'North'?)"),
    ({"reference_rule": "biggest"}, "reference_rule must be one of first, largest"),
    ({"on_model_failure": "ignore"}, "on_model_failure must be one of fail, record"),
])
def test_risk_parameter_errors(tmp_path, values, message):
    import yaml

    from survey.params import ParameterError, read_parameter_set

    spec = perception_spec(tmp_path / "s")
    pfile = tmp_path / "p.yaml"
    pfile.write_text(yaml.safe_dump({"spec": str(spec), **values}))
    with pytest.raises(ParameterError) as e:
        read_parameter_set(pfile, root=tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_shipped_parameter_set_with_a_perception_model_is_valid():
    from survey import models as M
    from survey.params import read_parameter_set
    from survey.spec import read_spec

    root = Path(__file__).resolve().parents[1]
    cfg = read_parameter_set(root / "parameters" / "synthetic-perception-model.yaml", root=root)
    specs = [M.model_spec(read_spec(cfg.values["spec"]), m) for m in cfg.values["models"]]
    assert specs[0].formula() == "I(1 - perc__safe_dark) ~ victim__personal + C(sex) + C(age_band) + C(region)"
    assert specs[0].reference == {"region": "Capital"}
    assert specs[1].formula() == "n__personal ~ C(sex) + C(age_band) + C(urban)" and specs[1].family == "negbin"
