"""Proportional-odds survey regression (survey.ordinal) against R's ``svyolr`` and
``withReplicates`` + ``MASS::polr`` (tests/reference/make_svyolr.R writes the fixtures under
tests/reference/fixtures/ordinal/; the script documents every case and the tight optim control
that makes R a 1e-6 oracle), plus an independent check of the linearized margins by numerical
differentiation with respect to each row's weight."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import survey as sv
from survey.ordinal import TABLE_COLUMNS, OrdinalError, olr

REF = Path(__file__).resolve().parent / "reference"
DATA = REF / "data"
FIX = REF / "fixtures" / "ordinal"
REPW = REF / "fixtures" / "repweights"
REL = 1e-6


def _read(path: Path, text: list[str]) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=["NA"], dtype={c: str for c in text})


COEF = _read(FIX / "r_svyolr.csv", ["case", "term", "kind"])
FIT = _read(FIX / "r_svyolr_fit.csv", ["case", "design", "formula"]).set_index("case")
MARG = _read(FIX / "r_svyolr_margins.csv", ["case", "type", "variable", "level", "category"])


@functools.cache
def api(name: str) -> pd.DataFrame:
    df = pd.read_csv(DATA / f"{name}.csv", dtype={"cds": str})
    # R: cut(api00, c(-Inf, 550, 650, 750, Inf), labels = 1:4, ordered_result = TRUE)
    df["apicat"] = pd.cut(df["api00"], [-np.inf, 550, 650, 750, np.inf], labels=["1", "2", "3", "4"], ordered=True)
    return df


@functools.cache
def fear() -> pd.DataFrame:
    df = pd.read_csv(DATA / "fear_ordinal.csv")
    df["fearf"] = pd.Categorical(df["fear"].astype(str), categories=["1", "2", "3", "4"], ordered=True)
    return df


def _rep_api(name: str, dataset: str) -> sv.ReplicateDesign:
    meta = _read(REPW / "meta.csv", ["design", "dataset", "weights_file", "type", "call"]).set_index("design")
    rsc = _read(REPW / "rscales.csv", ["design"])
    m = meta.loc[name]
    data = api(dataset)
    w = _read(REPW / m["weights_file"], ["cds", "pstrat"])
    assert (w["cds"].to_numpy() == data["cds"].to_numpy()).all()
    rw = [c for c in w.columns if re.fullmatch(r"rw\d+", c)]
    data = pd.concat([data, w[["pw"] + rw].rename(columns={"pw": "w_full"})], axis=1)
    rs = rsc[rsc["design"] == name].sort_values("replicate")["rscale"].to_numpy(dtype=float)
    return sv.ReplicateDesign(data, weights="w_full", replicate_weights=rw, method=m["type"], scale=float(m["scale"]),
                              rscales=rs, df=float(m["degf"]))


def _rep_fear() -> sv.ReplicateDesign:
    w = pd.read_csv(FIX / "fear_jkn_repw.csv")
    rs = pd.read_csv(FIX / "fear_jkn_rscales.csv")
    rw = [c for c in w.columns if c.startswith("rw")]
    data = pd.concat([fear(), w.rename(columns={"w": "w_full"})], axis=1)
    assert np.allclose(data["w_full"], data["w"])
    return sv.ReplicateDesign(data, weights="w_full", replicate_weights=rw, method="JKn",
                              scale=float(rs["scale"].iloc[0]), rscales=rs["rscale"].to_numpy(float),
                              df=float(rs["degf"].iloc[0]))


DESIGNS = {
    "strat": lambda: sv.Design(api("apistrat"), strata="stype", weights="pw", fpc="fpc"),
    "clus1": lambda: sv.Design(api("apiclus1"), psu="dnum", weights="pw", fpc="fpc"),
    "fear": lambda: sv.Design(fear(), strata="stratum", psu="psu", weights="w", fpc="npsu_pop"),
    "clus1_jk1": lambda: _rep_api("clus1_jk1", "apiclus1"),
    "strat_jkn": lambda: _rep_api("strat_jkn", "apistrat"),
    "fear_jkn": _rep_fear,
    # R: svyolr(f, subset(dfear, age >= 30)), a domain of the full design
    "fear_dom_age30": lambda: design("fear").subset(fear()["age"].to_numpy() >= 30),
}


@functools.cache
def design(name):
    return DESIGNS[name]()


def engine_formula(r_formula: str) -> str:
    return r_formula.replace("stype", "C(stype)")


def engine_term(r_term: str) -> str:
    """R's coefficient names (stypeH, sexmale) as formulaic's."""
    m = re.fullmatch(r"stype([EHM])", r_term)
    if m:
        return f"C(stype)[T.{m.group(1)}]"
    m = re.fullmatch(r"sex(male|female)", r_term)
    if m:
        return f"sex[T.{m.group(1)}]"
    return r_term


@functools.cache
def fit(case: str):
    f = FIT.loc[case]
    return olr(design(f["design"]), engine_formula(f["formula"]))


def close(got, want, rel=REL):
    return abs(got - want) <= rel * max(abs(want), 1e-12)


def test_fixtures_cover_taylor_and_replicate():
    assert len(FIT) == 8 and set(FIT["design"]) == set(DESIGNS)
    assert set(COEF["kind"]) == {"coef", "cutpoint"}


@pytest.mark.parametrize("case", list(FIT.index))
def test_coefficients_cutpoints_and_ses_match_r(case):
    res = fit(case)
    want = COEF[COEF["case"] == case]
    tab = res.table.set_index("term")
    assert list(tab.kind) == list(want.kind)
    for _, row in want.iterrows():
        t = engine_term(row["term"])
        assert close(tab.loc[t, "estimate"], row["estimate"]), (case, t, tab.loc[t, "estimate"], row["estimate"])
        assert close(tab.loc[t, "se"], row["se"]), (case, t, tab.loc[t, "se"], row["se"])
    assert res.df_residual == FIT.loc[case, "df_residual"]
    assert res.n == FIT.loc[case, "n"]
    if not np.isnan(FIT.loc[case, "deviance"]):
        assert close(res.deviance, FIT.loc[case, "deviance"])
    assert res.variance == ("replicate" if "_j" in FIT.loc[case, "design"] else "linearization")


def test_table_columns_and_odds_ratios():
    res = fit("fear_sex_age")
    tab = res.table
    assert list(tab.columns) == TABLE_COLUMNS
    coef = tab[tab.kind == "coef"]
    assert np.allclose(coef.odds_ratio, np.exp(coef.estimate))
    assert np.allclose(coef.or_ci_low, np.exp(coef.ci_low))
    assert tab[tab.kind == "cutpoint"].odds_ratio.isna().all()
    # cut points increase; women (the reference) are more worried than men: beta(male) < 0
    cuts = tab[tab.kind == "cutpoint"].estimate.to_numpy()
    assert (np.diff(cuts) > 0).all()
    assert tab.set_index("term").loc["sex[T.male]", "estimate"] < 0
    from scipy import stats

    q = stats.t.ppf(0.975, res.df_residual)
    assert np.allclose(tab.ci_high - tab.estimate, q * tab.se)


@pytest.mark.parametrize("case", sorted(set(MARG["case"])))
@pytest.mark.parametrize("kind", ["counterfactual", "domain"])
def test_replicate_margins_match_r(case, kind):
    res = fit(case)
    want = MARG[(MARG["case"] == case) & (MARG["type"] == kind)]
    var = want["variable"].iloc[0]
    got = res.predictive_margins(**({"variable": var} if kind == "counterfactual" else {"by": var}))
    assert (got.method == "replicate").all()
    m = got.merge(want, on=["level", "category"], suffixes=("", "_r"))
    assert len(m) == len(want)
    for _, row in m.iterrows():
        assert close(row["estimate"], row["estimate_r"]), row
        assert close(row["se"], row["se_r"]), row
    # probabilities of each level sum to 1
    assert np.allclose(got.groupby("level").estimate.sum(), 1.0)


def test_taylor_margin_estimates_match_r_full_sample():
    """The full-sample margins do not depend on the variance method: R's (from the JK1 case
    of the same sample) are the Taylor fit's too."""
    got = fit("clus1_meals_stype").predictive_margins(variable="stype")
    want = MARG[(MARG["case"] == "clus1_jk1_meals_stype") & (MARG["type"] == "counterfactual")]
    m = got.merge(want, on=["level", "category"], suffixes=("", "_r"))
    assert len(m) == 12 and np.allclose(m.estimate, m.estimate_r, rtol=1e-6)
    assert (got.method == "linearization").all()


@pytest.mark.parametrize("kind", ["counterfactual", "domain"])
def test_linearized_margins_equal_numerical_influence(kind):
    """The margins' linearization computed independently.  apiclus1 is one stage of 15
    districts out of 757 without strata, so the Taylor variance is
    ``(1 - f) n/(n-1) sum_j (z_j - zbar)^2`` over the PSU totals ``z_j`` of the scores, and a
    PSU's total is the derivative of the whole estimator (refit + average) when all its
    weights are scaled by ``(1 + e)``: numerical derivatives, a hand-written variance."""
    base = api("apiclus1").copy()
    kw = {"variable": "stype"} if kind == "counterfactual" else {"by": "stype"}
    w0 = base["pw"].to_numpy(float)
    psu = base["dnum"].to_numpy()

    def margins(scale_psu=None, e=0.0):
        w = w0.copy()
        if scale_psu is not None:
            w[psu == scale_psu] *= 1 + e
        d = sv.Design(base.assign(wt=w), psu="dnum", weights="wt", fpc="fpc")
        return olr(d, "apicat ~ meals + C(stype)").predictive_margins(**kw)

    ref = margins()
    eps = 1e-5
    units = np.unique(psu)
    z = np.array([(margins(u, eps).estimate.to_numpy() - margins(u, -eps).estimate.to_numpy()) / (2 * eps)
                  for u in units])
    n = len(units)
    f = n / base["fpc"].iloc[0]
    dev = z - z.mean(axis=0)
    v = (1 - f) * n / (n - 1) * dev.T @ dev
    assert np.allclose(np.sqrt(np.diag(v)), ref.se, rtol=1e-5)
    assert np.allclose(v, np.asarray(ref.attrs["vcov"]), rtol=1e-4, atol=1e-10)


def test_wald_test_single_term_is_t_squared():
    res = fit("strat_meals_stype")
    wt = res.wald_test("C(stype)")
    assert wt.df1.iloc[0] == 2
    one = res.wald_test("meals")
    t = res.table.set_index("term").loc["meals", "t"]
    assert np.isclose(one.F.iloc[0], t * t)


def test_refusals():
    df = api("apistrat").copy()
    df["two"] = pd.Categorical(np.where(df.api00 > 650, "hi", "lo"), categories=["lo", "hi"], ordered=True)
    d = sv.Design(df, strata="stype", weights="pw", fpc="fpc")
    with pytest.raises(OrdinalError, match="3 or more"):
        olr(d, "two ~ meals")
    df["gap"] = pd.Categorical(df["apicat"].astype(str), categories=["1", "2", "3", "4", "5"], ordered=True)
    d = sv.Design(df, strata="stype", weights="pw", fpc="fpc")
    with pytest.raises(OrdinalError, match="no respondent in category 5"):
        olr(d, "gap ~ meals")
    with pytest.raises(OrdinalError, match="outcome 'nope'"):
        olr(d, "nope ~ meals")
    with pytest.raises(OrdinalError, match="exactly one"):
        olr(d, "apicat ~ meals").predictive_margins()


def test_numeric_outcome_codes_equal_the_ordered_categorical():
    """An outcome given as numeric codes 1-4 (sorted distinct values are the order) fits the
    same model as the ordered categorical."""
    d = design("fear")
    a = olr(d, "fearf ~ sex + age")
    b = olr(d, "fear ~ sex + age")
    assert b.levels == [1, 2, 3, 4] and b.cutpoints == ["1|2", "2|3", "3|4"]
    assert np.allclose(a.coef.to_numpy(), b.coef.to_numpy(), rtol=1e-12)
    assert np.allclose(a.vcov.to_numpy(), b.vcov.to_numpy(), rtol=1e-10)
