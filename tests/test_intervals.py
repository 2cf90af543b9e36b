"""Intervals and degrees of freedom of the indicator table.

- % indicators by domain: logit interval on the domain's own df, against R's
  ``svyby(~y, ~by, design, svyciprop, method="logit")`` (tests/reference/make_domain_ci.R,
  its output domain_ci.csv), on the batch and the general paths, Taylor and replicate designs;
- cells at their bound with SE 0 (no case, 0% or 100%, a rate at its floor): no interval, never
  rated high or reliable, a reason in flag_reason, under every publication preset;
- bounded indicators keep their intervals inside their range (Gini in [0, 1], % in [0, 100]).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import survey as sv
from survey.domain_batch import FamilyEstimator, Ratios, domain_df
from survey.indicators import _family_rows, _gini_ci, _log_ci, indicator_table
from survey.quality import BOUND_REASON, RULES, apply_rule

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"


@functools.cache
def api(name: str) -> pd.DataFrame:
    df = pd.read_csv(ROOT / "src" / "survey" / "data" / f"{name}.csv", dtype={"cds": str})
    df["y"] = (df["api00"] > 650).astype(float)
    df["sw"] = (df["sch.wide"] == "Yes").astype(float)
    if name == "apiclus1":
        rw = pd.read_csv(REF / "domain_ci_jk1.csv", dtype={"cds": str})
        assert (rw["cds"].to_numpy() == df["cds"].to_numpy()).all()
        df = pd.concat([df, rw.drop(columns="cds")], axis=1)
    return df


DESIGNS = {  # the designs of make_domain_ci.R
    "strat": lambda: sv.Design(api("apistrat"), strata="stype", weights="pw", fpc="fpc"),
    "clus1": lambda: sv.Design(api("apiclus1"), psu="dnum", weights="pw", fpc="fpc"),
    "strat_psu": lambda: sv.Design(api("apistrat"), psu="dnum", strata="stype", weights="pw", nest=True),
    "clus1_jk1": lambda: sv.ReplicateDesign(api("apiclus1"), weights="pw", replicate_weights="^rep[0-9]+$",
                                            method="JK1", scale=14 / 15),
}


@functools.cache
def reference() -> pd.DataFrame:
    return pd.read_csv(REF / "domain_ci.csv", keep_default_na=True)


def _table_rows(design, var, by, path):
    """The indicator table's rows of a % indicator (prevalence) of ``var`` by ``by``."""
    if path == "batch":
        fr = FamilyEstimator(design, [Ratios("prevalence", [var], [var], None, [var])]).estimate(by)[0]
    else:
        fr = design.mean(var, by=by)
    return _family_rows(None, design, "prevalence", fr, [var], by, np.zeros(len(fr), dtype=int), "person")


CASES = sorted(reference()["case"].unique())


@pytest.mark.parametrize("case", CASES)
def test_domain_logit_intervals_match_r_svyby_svyciprop(case):
    ref = reference()[reference()["case"] == case]
    name, by, var = ref["design"].iloc[0], ref["by"].iloc[0], ref["variable"].iloc[0]
    name = case[: -len(f"_{by}_{var}")]
    design = DESIGNS[name]()
    replicate = isinstance(design, sv.ReplicateDesign)
    paths = ["general"] if replicate else ["batch", "general"]
    for path in paths:
        got = _table_rows(design, var, by, path).set_index(by)
        got.index = got.index.astype(str)
        assert sorted(got.index) == sorted(ref["by_value"].astype(str))
        for _, r in ref.iterrows():
            g = got.loc[str(r["by_value"])]
            # the df of each domain: degf() of R's subset design
            assert g["df"] == r["degf"], (case, path, r["by_value"])
            p = g["estimate"] / 100
            assert np.isclose(p, r["estimate"], rtol=1e-6, atol=1e-9)
            lo, hi = g["ci_low"] / 100, g["ci_high"] / 100
            interior = 1e-8 < r["estimate"] < 1 - 1e-8
            if not interior:  # all cases or none: R's glm stops near the bound; here no interval
                assert p in (0.0, 1.0) and np.isnan(lo) and np.isnan(hi)
            elif r["degf"] == 0:  # one PSU: R and here, no interval
                assert np.isnan(r["ci_low"]) and np.isnan(lo) and np.isnan(hi)
            elif r["degf"] == 1:
                # R's confint.svyglm turns t(1) into a normal level 1 - 2 pnorm(qt(.025, 1)),
                # which rounds to 1 (an infinite interval); here the t(1) logit interval
                q = stats.t.ppf(0.975, 1)
                se = g["se"] / 100
                eta = np.log(p / (1 - p))
                h = q * se / (p * (1 - p))
                assert np.isclose(lo, 1 / (1 + np.exp(-(eta - h))), rtol=1e-12)
                assert np.isclose(hi, 1 / (1 + np.exp(-(eta + h))), rtol=1e-12)
            elif not replicate:
                assert np.isclose(lo, r["ci_low"], rtol=1e-6), (case, path, r["by_value"], lo, r["ci_low"])
                assert np.isclose(hi, r["ci_high"], rtol=1e-6), (case, path, r["by_value"], hi, r["ci_high"])
    if replicate:
        # R's svyciprop refits the logit on every replicate of the domain's subset design; the
        # engine's proportion() does the same: with the domain's df, the same interval as R
        dfs = domain_df(design, by)
        keys = design.mean(var, by=by)[by].astype(str).tolist()
        for _, r in ref.iterrows():
            g = keys.index(str(r["by_value"]))
            assert dfs[g] == r["degf"]
            if not 1e-8 < r["estimate"] < 1 - 1e-8:
                continue
            sub = design.subset(design.data[by].astype(str).to_numpy() == str(r["by_value"]))
            pr = sub.proportion(var, df=float(dfs[g]))
            row = pr[pr["level"].astype(float) == 1.0].iloc[0]
            assert np.isclose(row["ci_low"], r["ci_low"], rtol=1e-6), (case, r["by_value"])
            assert np.isclose(row["ci_high"], r["ci_high"], rtol=1e-6), (case, r["by_value"])


def test_overall_rows_keep_the_design_df():
    design = DESIGNS["strat_psu"]()
    for path in ("batch", "general"):
        got = _table_rows(design, "y", None, path)
        d = design.data
        assert got["df"].iloc[0] == design.df == d.groupby("stype")["dnum"].nunique().sum() - 3


def test_domain_df_is_the_subset_designs_df():
    design = DESIGNS["strat_psu"]()
    dfs = domain_df(design, "cname")
    keys = design.mean("y", by="cname")["cname"].astype(str).tolist()
    for k, d in zip(keys, dfs):
        rows = design.data["cname"].astype(str) == k
        # PSUs minus strata among the domain's rows, counted here directly
        sub = design.data[rows]
        assert d == sub.groupby("stype")["dnum"].nunique().sum() - sub["stype"].nunique()


# ----- cells at their bound with SE 0 --------------------------------------------------------
def test_log_and_gini_intervals_by_hand():
    est, se, df = np.array([2.0, 0.0, 1.0]), np.array([0.5, 0.0, 0.0]), np.array([10.0, 10.0, 10.0])
    lo, hi = _log_ci(est, se, df, 0.0)
    q = stats.t.ppf(0.975, 10)
    assert np.isclose(lo[0], 2.0 * np.exp(-q * 0.25)) and np.isclose(hi[0], 2.0 * np.exp(q * 0.25))
    assert np.isnan(lo[1]) and np.isnan(hi[1])  # a rate of 0 with SE 0: no interval
    lo, hi = _log_ci(est, se, df, 1.0)  # concentration: every victim once (1, SE 0): no interval
    assert np.isnan(lo[2]) and np.isnan(hi[2])
    # Gini: logit interval, inside (0, 1), where Wald would cross 0
    g, s = np.array([0.05, 0.9, 0.0]), np.array([0.04, 0.05, 0.0])
    lo, hi = _gini_ci(g, s, np.array([20.0, 20.0, 20.0]))
    q = stats.t.ppf(0.975, 20)
    for i in (0, 1):
        eta, h = np.log(g[i] / (1 - g[i])), q * s[i] / (g[i] * (1 - g[i]))
        assert np.isclose(lo[i], 1 / (1 + np.exp(h - eta)), rtol=1e-12)
        assert np.isclose(hi[i], 1 / (1 + np.exp(-eta - h)), rtol=1e-12)
        assert 0 < lo[i] < g[i] < hi[i] < 1
    assert g[0] - q * s[0] < 0  # the Wald interval would go below 0
    assert np.isnan(lo[2]) and np.isnan(hi[2])


def _bound_table() -> pd.DataFrame:
    """A hand-made table: a 100% share with cases, a 0% share without, a rate at 0 and a Gini
    of 0 (SE 0, no interval), and an ordinary cell."""
    t = pd.DataFrame({
        "indicator": ["repeat_victims", "prevalence", "incidence", "gini", "prevalence"],
        "crime_type": "x", "domain": "overall", "domain_value": "all",
        "estimate": [100.0, 0.0, 0.0, 0.0, 20.0], "se": [0.0, 0.0, 0.0, 0.0, 1.0],
        "ci_low": [np.nan, np.nan, np.nan, np.nan, 18.0], "ci_high": [np.nan, np.nan, np.nan, np.nan, 22.0],
        "cv": [0.0, np.nan, np.nan, np.nan, 0.05], "deff": 1.0, "n": [400, 400, 400, 400, 400],
        "n_cases": [30, 0, 0, 30, 80], "weighted_base": 1000.0,
    })
    return t


@pytest.mark.parametrize("preset", sorted(RULES))
def test_cells_at_their_bound_are_never_rated_precise(preset):
    t = apply_rule(_bound_table(), preset, min_base=10, min_cases=10)
    bound = t.iloc[:4]
    assert not bound["reliability"].isin(["high", "moderate", "reliable"]).any(), bound["reliability"].tolist()
    assert (bound["flag_reason"] != "").all()
    assert t["flag_reason"].iloc[0] == BOUND_REASON  # 100% with 30 cases: no other flag
    assert t["flag_reason"].iloc[3] == BOUND_REASON
    assert t["reliability"].iloc[1] == "no sample cases"
    assert t["reliability"].iloc[4] in ("high", "reliable")  # the ordinary cell is untouched


@functools.cache
def synthetic_table() -> pd.DataFrame:
    return indicator_table(sv.load(ROOT / "specs" / "synthetic.yaml"))


def _check_table(t: pd.DataFrame) -> pd.Series:
    est = t["estimate"]
    at_bound = (t["se"] == 0) & est.notna()
    assert at_bound.any()
    # no SE-0 interval anywhere
    assert t.loc[at_bound, ["ci_low", "ci_high"]].isna().all().all()
    assert not t.loc[at_bound, "reliability"].isin(["high", "moderate", "reliable"]).any()
    assert (t.loc[at_bound, "flag_reason"] != "").all()
    # intervals inside the indicators' ranges and around the estimate
    ok = t["ci_low"].notna()
    pct = t["measure"] == "%"
    assert (t.loc[ok & pct, "ci_low"] >= 0).all() and (t.loc[ok & pct, "ci_high"] <= 100).all()
    gini = t["indicator"].isin(["gini", "gini_victims"])
    assert (t.loc[ok & gini, "ci_low"] >= 0).all() and (t.loc[ok & gini, "ci_high"] <= 1).all()
    assert (t.loc[ok, "ci_low"] <= t.loc[ok, "estimate"] + 1e-9).all()
    assert (t.loc[ok, "ci_high"] >= t.loc[ok, "estimate"] - 1e-9).all()
    assert (t.loc[ok & (t["indicator"] == "dark_figure"), "ci_high"] <= 100).all()
    return at_bound


def test_synthetic_table_intervals():
    t = synthetic_table()
    assert (t["indicator"] == "gini").any() and (t["indicator"] == "dark_figure").any()
    _check_table(t)
    # % rows by domain carry their domain's df, overall rows the design's
    pct = t[t["measure"] == "%"]
    design_df = t.loc[(t["domain"] == "overall") & (t["measure"] == "%"), "df"]
    assert design_df.nunique() <= 2  # one per unit design
    assert (pct.loc[pct["domain"] != "overall", "df"] <= design_df.max()).all()


def test_ncvs_table_intervals():
    t = indicator_table(sv.load(ROOT / "specs" / "ncvs-2021.yaml"))
    at_bound = _check_table(t)
    # cells at a bound with cases: a 100% reporting rate (2 victims), a Gini of 0 among victims
    with_cases = t[at_bound & (t["n_cases"] > 0)]
    assert {"reporting_rate", "gini_victims"} <= set(with_cases["indicator"])
    assert (with_cases["reliability"] == "interpret with caution").all()
    ic = t[t["indicator"].isin(["incidence", "concentration"])]
    assert (ic["df"] <= 170).all() and (ic["df"] >= 1).all()
