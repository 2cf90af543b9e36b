"""The batch path of the indicator table (survey.domain_batch) against the general estimators.

The general estimators (``design.mean``, ``design.ratio``, ``lorenz.gini_design``) are checked
against R survey in test_r_reference.py; the batch path must give the same numbers on every kind
of Taylor design: stratified, one- and two-stage clusters with and without fpc, every lonely-PSU
policy, subset (domain) designs, missing values, and on the full indicator tables of the
synthetic survey and the real NCVS extract.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import survey as sv
from survey.domain_batch import FamilyEstimator, GiniBatch, Ratios, supported
from survey.estimate import _cells
from survey.indicators import indicator_table
from survey.lorenz import gini_design

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "reference" / "data"


@functools.cache
def api(name: str) -> pd.DataFrame:
    df = pd.read_csv(DATA / f"{name}.csv", dtype={"cds": str})
    # analysis columns: a count with ties (for the Gini), 0/1 flags, a column with missing values
    df["count"] = np.floor(df["meals"].fillna(0) / 20.0)
    df["pos"] = (df["count"] > 0).astype(float)
    df["big"] = (df["enroll"] > 500).astype(float)
    if name == "apiclus2":
        code = {v: i + 1 for i, v in enumerate(sorted(df["dnum"].unique()))}
        df["lstrat"] = np.ceil(df["dnum"].map(code) / 3).astype(int)
    return df


DESIGNS = {
    "srs": lambda: sv.Design(api("apisrs"), fpc="fpc"),
    "strat": lambda: sv.Design(api("apistrat"), strata="stype", weights="pw", fpc="fpc"),
    "strat_nest": lambda: sv.Design(api("apistrat"), psu="dnum", strata="stype", weights="pw", nest=True),
    "clus1": lambda: sv.Design(api("apiclus1"), psu="dnum", weights="pw", fpc="fpc"),
    "clus1_wr": lambda: sv.Design(api("apiclus1"), psu="dnum", weights="pw"),
    "clus2": lambda: sv.Design(api("apiclus2"), psu=["dnum", "snum"], fpc=["fpc1", "fpc2"]),
    "clus2_wr": lambda: sv.Design(api("apiclus2"), psu=["dnum", "snum"], weights="pw"),
}
for _o in ("remove", "certainty", "adjust", "average"):
    DESIGNS[f"lonely_{_o}"] = functools.partial(
        lambda o: sv.Design(api("apiclus2"), psu="dnum", strata="lstrat", weights="pw", lonely_psu=o), _o)

FAMILIES = [
    # means (one with missing values: acs.k3), ratios over victims-like denominators
    Ratios("means", ["api00", "acs", "big"], ["api00", "acs.k3", "big"], None, ["api00", "acs.k3", "big"]),
    Ratios("ratios", ["a", "b", "c"], ["api00", "meals", "count"], ["api99", "ell", "pos"],
           ["api00", "meals", "count"], base="den"),
]
COLS = ["estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n", "weighted_n"]


def _general(design, fam: Ratios, by):
    if fam.den is None:
        r = design.mean(fam.num, by=by)
    else:
        r = design.ratio(fam.num, fam.den, by=by)
        c, keys, _ = _cells(design, by)
        ok = (c >= 0) & (design.w > 0)
        n, wn = [], []
        for g in range(len(keys)):
            for d in fam.den:
                x = design.data[d].to_numpy(dtype=float, na_value=np.nan)
                m = ok & (c == g) & (np.nan_to_num(x) > 0)
                n.append(int(m.sum()))
                wn.append(float(design.w[m].sum()))
        r["n"] = n
        r["weighted_n"] = wn
    return r


def _same(got: pd.DataFrame, want: pd.DataFrame, what: str):
    for c in COLS:
        a = got[c].to_numpy(dtype=float)
        b = want[c].to_numpy(dtype=float)
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True), (what, c, a, b)


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("by", [None, "stype", "awards"])
def test_families_match_general_estimators(name, by):
    design = DESIGNS[name]()
    assert supported(design)
    fe = FamilyEstimator(design, FAMILIES)
    for fam, got in zip(FAMILIES, fe.estimate(by)):
        want = _general(design, fam, by)
        assert len(got) == len(want)
        if by:
            assert got[by].astype(str).tolist() == want[by].astype(str).tolist()
        _same(got, want, f"{name} {fam.name} by {by}")


@pytest.mark.parametrize("name", ["strat", "clus2", "lonely_adjust", "lonely_average"])
def test_families_on_a_subset_design(name):
    full = DESIGNS[name]()
    design = full.subset(full.data["stype"].to_numpy() != "H")
    fe = FamilyEstimator(design, FAMILIES)
    for fam, got in zip(FAMILIES, fe.estimate("awards")):
        _same(got, _general(design, fam, "awards"), f"{name} subset {fam.name}")


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("by", [None, "stype"])
def test_gini_matches_general(name, by):
    design = DESIGNS[name]()
    y = design.data["count"].to_numpy(dtype=float)
    over_pop = np.ones(design.n, dtype=bool)
    over_pos = y > 0
    items = []
    for keep in (over_pop, over_pos):
        df = float(design.df) if keep.all() else float(design.subset(keep).df)
        items.append((y, keep, df))
    for (yy, keep, _), got in zip(items, GiniBatch(design, items).estimate(by)):
        want = gini_design(design, yy, keep, by)
        assert len(got) == len(want)
        _same(got.assign(cv=0.0, deff=0.0), want.assign(cv=0.0, deff=0.0), f"gini {name} by {by}")
        assert got["n_cases"].tolist() == want["n_cases"].tolist()


def test_gini_of_equal_counts_is_exactly_zero():
    design = DESIGNS["strat"]()
    y = np.full(design.n, 3.0)
    got = GiniBatch(design, [(y, np.ones(design.n, dtype=bool), design.df)]).estimate(None)[0]
    want = gini_design(design, y, np.ones(design.n, dtype=bool))
    assert got["estimate"].iloc[0] == 0.0 and want["estimate"].iloc[0] == 0.0
    assert got["se"].iloc[0] == 0.0


def _tables_equal(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        x, y = a[c], b[c]
        if x.dtype.kind == "f":
            ok = np.isclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)
        else:
            ok = (x.astype(str) == y.astype(str)).to_numpy()
        assert ok.all(), (c, a.loc[~ok, ["indicator", "crime_type", "domain", "domain_value", c]].head())
    assert a.attrs["notes"] == b.attrs["notes"]


def test_indicator_table_batch_equals_general_on_the_synthetic_survey():
    data = sv.load(ROOT / "specs" / "synthetic.yaml")
    auto = indicator_table(data)
    general = indicator_table(sv.load(ROOT / "specs" / "synthetic.yaml"), method="general")
    _tables_equal(auto, general)


def test_indicator_table_batch_equals_general_on_ncvs():
    spec = ROOT / "specs" / "ncvs-2021.yaml"
    auto = indicator_table(sv.load(spec))
    general = indicator_table(sv.load(spec), method="general")
    _tables_equal(auto, general)


def test_unknown_method_is_an_error():
    data = sv.load(ROOT / "specs" / "synthetic.yaml")
    with pytest.raises(sv.SurveyError, match="method must be"):
        indicator_table(data, method="fast")


def test_effective_df_by_hand():
    """df_effective = 2 v^2 / Var(v), Var(v) from the spread of the PSUs' squared deviations
    within strata, computed here directly from the linearized PSU totals of a mean."""
    design = DESIGNS["strat_nest"]()
    got = FamilyEstimator(design, [Ratios("m", ["api00"], ["api00"], None, ["api00"], effective_df=True)]).estimate(None)[0]
    d = design.data
    w = design.w
    y = d["api00"].to_numpy(dtype=float)
    r = np.sum(w * y) / np.sum(w)
    z = w * (y - r) / np.sum(w)
    psu = d["stype"].astype(str) + "/" + d["dnum"].astype(str)
    tot = pd.DataFrame({"h": d["stype"], "psu": psu, "z": z}).groupby(["h", "psu"])["z"].sum().reset_index()
    v = var_v = 0.0
    for _, g in tot.groupby("h"):
        n = len(g)
        dev = g["z"].to_numpy() - g["z"].mean()
        c = n / (n - 1)
        v += c * np.sum(dev**2)
        var_v += c * c * n / (n - 1) * np.sum((dev**2 - np.mean(dev**2)) ** 2)
    assert np.isclose(got["se"].iloc[0] ** 2, v, rtol=1e-9)
    assert np.isclose(got["df_effective"].iloc[0], 2 * v * v / var_v, rtol=1e-9)


def test_effective_df_near_design_df_for_normal_totals():
    rng = np.random.default_rng(3)
    n_psu, per = 200, 5
    df = pd.DataFrame({"psu": np.repeat(np.arange(n_psu), per), "h": np.repeat(np.arange(n_psu) % 4, per),
                       "y": rng.normal(10, 2, n_psu * per) + np.repeat(rng.normal(0, 1, n_psu), per), "w": 1.0})
    design = sv.Design(df, psu="psu", strata="h", weights="w")
    got = FamilyEstimator(design, [Ratios("m", ["y"], ["y"], None, ["y"], effective_df=True)]).estimate(None)[0]
    assert 0.6 * design.df < got["df_effective"].iloc[0] < 1.4 * design.df
    # one PSU carrying the variance (a heavy tail): few effective df
    df.loc[df["psu"] == 7, "y"] += 400
    design = sv.Design(df, psu="psu", strata="h", weights="w")
    got = FamilyEstimator(design, [Ratios("m", ["y"], ["y"], None, ["y"], effective_df=True)]).estimate(None)[0]
    assert got["df_effective"].iloc[0] < 5


def test_effective_df_of_a_paired_design_is_satterthwaite():
    """Two PSUs per stratum (as NCVS): df = (sum v_h)^2 / sum v_h^2 (each stratum one df)."""
    rng = np.random.default_rng(5)
    H = 30
    df = pd.DataFrame({"h": np.repeat(np.arange(H), 20), "psu": np.repeat(np.arange(2 * H), 10), "w": 1.0,
                       "y": rng.gamma(0.3, 5.0, 20 * H)})
    design = sv.Design(df, psu="psu", strata="h", weights="w")
    got = FamilyEstimator(design, [Ratios("m", ["y"], ["y"], None, ["y"], effective_df=True)]).estimate(None)[0]
    z = (df["y"] - df["y"].mean()) / len(df)
    tot = pd.DataFrame({"h": df["h"], "psu": df["psu"], "z": z}).groupby(["h", "psu"])["z"].sum()
    vh = tot.groupby(level=0).apply(lambda t: 2 * np.sum((t - t.mean()) ** 2)).to_numpy()
    assert np.isclose(got["se"].iloc[0] ** 2, vh.sum(), rtol=1e-9)
    assert np.isclose(got["df_effective"].iloc[0], vh.sum() ** 2 / np.sum(vh**2), rtol=1e-9)
    assert got["df_effective"].iloc[0] < design.df
