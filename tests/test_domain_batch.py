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


# ----- effective df (Satterthwaite) ---------------------------------------------------------
def _satterthwaite_by_hand(df: pd.DataFrame, y: str, x: str | None, dom: np.ndarray, fpc: str | None = None,
                           lonely_adjust: bool = False) -> tuple[float, float]:
    """Variance and Satterthwaite df of the domain ratio sum w y / sum w x, with loops over the
    strata: PSU totals of the linearized values (PSUs outside the domain: 0), v_h = (1 - f_h)
    n_h / (n_h - 1) sum (t - tbar)^2 on n_h - 1 df; a lonely PSU (adjust) t^2 on 1 df."""
    w = df["w"].to_numpy(float)
    yy = df[y].to_numpy(float)
    xx = np.ones(len(df)) if x is None else df[x].to_numpy(float)
    X = np.sum((w * xx)[dom])
    R = np.sum((w * yy)[dom]) / X
    z = np.where(dom, w * (yy - R * xx) / X, 0.0)
    v_sum = den = 0.0
    for h in sorted(df["h"].unique()):
        in_h = (df["h"] == h).to_numpy()
        psus = sorted(df.loc[in_h, "psu"].unique())
        t = np.array([z[in_h & (df["psu"] == p).to_numpy()].sum() for p in psus])
        n = len(t)
        f = 0.0 if fpc is None else n / df.loc[in_h, fpc].iloc[0]
        if n == 1:
            if not lonely_adjust:
                continue
            vh, k = (1 - f) * t[0] ** 2, 1
        else:
            vh, k = (1 - f) * n / (n - 1) * np.sum((t - t.mean()) ** 2), n - 1
        v_sum += vh
        den += vh**2 / k
    return v_sum, v_sum**2 / den


def _unequal_design(seed: int, sizes=(2, 3, 5, 7, 2, 4, 6, 3)) -> pd.DataFrame:
    """Strata of 2, 3, 5+ PSUs, 1 to 6 rows per PSU, unequal weights and stratum variances."""
    rng = np.random.default_rng(seed)
    rows = []
    psu = 0
    for h, n in enumerate(sizes):
        for _ in range(n):
            m = int(rng.integers(1, 7))
            for _ in range(m):
                rows.append(dict(h=h, psu=psu, w=float(rng.uniform(1, 4)),
                                 y=float(rng.gamma(0.5, 3.0) * (1 + h)), x=float(rng.integers(1, 4)),
                                 d=int(rng.integers(0, 3)), N=3 * n))
            psu += 1
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_effective_df_is_satterthwaite_by_hand(seed):
    """Means and ratios, overall and by domain, with and without fpc: the batch's df_effective
    is Satterthwaite's df computed here by loops over strata, whatever their PSU counts."""
    df = _unequal_design(seed)
    fams = [Ratios("m", ["y"], ["y"], None, ["y"], effective_df=True),
            Ratios("r", ["y"], ["y"], ["x"], ["y"], base="den", effective_df=True)]
    for fpc in (None, "N"):
        design = sv.Design(df, psu="psu", strata="h", weights="w", fpc=fpc)
        fe = FamilyEstimator(design, fams)
        for by in (None, "d"):
            cells = [np.ones(len(df), dtype=bool)] if by is None else [
                (df["d"] == g).to_numpy() for g in sorted(df["d"].unique())]
            for fam, got in zip(fams, fe.estimate(by)):
                assert len(got) == len(cells)
                for g, dom in enumerate(cells):
                    v, want = _satterthwaite_by_hand(df, "y", None if fam.den is None else "x", dom, fpc)
                    assert np.isclose(got["se"].iloc[g] ** 2, v, rtol=1e-9)
                    assert np.isclose(got["df_effective"].iloc[g], min(want, design.df), rtol=1e-9), (fpc, by, g)
                    assert got["df_effective"].iloc[g] <= design.df


def test_effective_df_of_paired_and_equal_strata():
    """Two PSUs per stratum (as NCVS): df = (sum v_h)^2 / sum v_h^2; equal stratum contributions
    with n PSUs each give the design df exactly (strata x (n - 1))."""
    rng = np.random.default_rng(5)
    H = 30
    df = pd.DataFrame({"h": np.repeat(np.arange(H), 20), "psu": np.repeat(np.arange(2 * H), 10), "w": 1.0,
                       "y": rng.gamma(0.3, 5.0, 20 * H)})
    design = sv.Design(df, psu="psu", strata="h", weights="w")
    got = FamilyEstimator(design, [Ratios("m", ["y"], ["y"], None, ["y"], effective_df=True)]).estimate(None)[0]
    z = (df["y"] - df["y"].mean()) / len(df)
    tot = pd.DataFrame({"h": df["h"], "psu": df["psu"], "z": z}).groupby(["h", "psu"])["z"].sum()
    vh = tot.groupby(level=0).apply(lambda t: 2 * np.sum((t - t.mean()) ** 2)).to_numpy()
    assert np.isclose(got["df_effective"].iloc[0], vh.sum() ** 2 / np.sum(vh**2), rtol=1e-9)
    assert got["df_effective"].iloc[0] < design.df
    # 4 strata of 3 PSUs, PSU totals -1, 0, 1 in each: v_h equal, df = 4 x 2 = 8 = design df
    eq = pd.DataFrame({"h": np.repeat(np.arange(4), 3), "psu": np.arange(12), "w": 1.0,
                       "y": np.tile([-1.0, 0.0, 1.0], 4)})
    design = sv.Design(eq, psu="psu", strata="h", weights="w")
    got = FamilyEstimator(design, [Ratios("m", ["y"], ["y"], None, ["y"], effective_df=True)]).estimate(None)[0]
    assert design.df == 8 and np.isclose(got["df_effective"].iloc[0], 8.0, rtol=1e-12)
    # one stratum carrying all the variance: its own n_h - 1 = 2 df
    eq.loc[eq["h"] > 0, "y"] = 5.0
    design = sv.Design(eq, psu="psu", strata="h", weights="w")
    got = FamilyEstimator(design, [Ratios("m", ["y"], ["y"], None, ["y"], effective_df=True)]).estimate(None)[0]
    assert np.isclose(got["df_effective"].iloc[0], 2.0, rtol=1e-12)


@pytest.mark.parametrize("lonely", ["remove", "certainty", "adjust", "average"])
def test_effective_df_with_lonely_psus(lonely):
    """remove / certainty: no term for the lonely stratum; average: the variance times a
    constant, same df as remove; adjust: the lonely PSU's total from 0, on 1 df."""
    df = _unequal_design(7, sizes=(3, 1, 5, 2, 1, 4))
    design = sv.Design(df, psu="psu", strata="h", weights="w", lonely_psu=lonely)
    fe = FamilyEstimator(design, [Ratios("r", ["y"], ["y"], ["x"], ["y"], base="den", effective_df=True)])
    for by in (None, "d"):
        cells = [np.ones(len(df), dtype=bool)] if by is None else [
            (df["d"] == g).to_numpy() for g in sorted(df["d"].unique())]
        got = fe.estimate(by)[0]
        for g, dom in enumerate(cells):
            _, want = _satterthwaite_by_hand(df, "y", "x", dom, lonely_adjust=lonely == "adjust")
            assert np.isclose(got["df_effective"].iloc[g], min(want, design.df), rtol=1e-9), (lonely, by, g)


def test_effective_df_describes_the_variance_of_the_variance():
    """Simulation: normal PSU totals, strata of 2 to 8 PSUs with very unequal variances.  The
    Monte-Carlo variance of the variance estimate v is 2 E(v)^2 / df for Satterthwaite's df of
    the true stratum contributions (the df of a chi-square with v's mean and variance), and the
    df estimated in each sample is close to it (median within 25%); the design df (PSUs minus
    strata) would claim far less variance of v."""
    rng = np.random.default_rng(11)
    sizes = np.array([2, 3, 4, 5, 8, 2, 6, 3])
    sd = np.array([1.0, 4.0, 0.5, 2.0, 1.0, 3.0, 0.7, 1.5])
    h = np.repeat(np.arange(len(sizes)), sizes)
    n = len(h)
    J = 4000  # samples, as columns of one design
    Y = rng.normal(10.0, sd[h][:, None], size=(n, J))
    df = pd.DataFrame(Y, columns=[f"y{j}" for j in range(J)])
    df["h"], df["psu"], df["w"] = h, np.arange(n), 1.0
    design = sv.Design(df, psu="psu", strata="h", weights="w")
    cols = [f"y{j}" for j in range(J)]
    got = FamilyEstimator(design, [Ratios("m", cols, cols, None, cols, effective_df=True)]).estimate(None)[0]
    v = got["se"].to_numpy() ** 2
    # E v_h = n_h sd_h^2 / N^2 (one row per PSU, the mean's scores are (y - ybar) / N)
    ev = sizes * sd**2 / n**2
    df_true = ev.sum() ** 2 / np.sum(ev**2 / (sizes - 1))
    assert np.isclose(v.mean(), ev.sum(), rtol=0.03)
    ratio = v.var() / (2 * v.mean() ** 2 / df_true)
    assert 0.85 < ratio < 1.15, ratio
    assert design.df > 2.5 * df_true  # the design df would be far off
    med = np.median(got["df_effective"].to_numpy())
    assert abs(med / df_true - 1) < 0.25, (med, df_true)


def _heavy_tailed_by_hand(df, y, x, dom):
    """The heavy-tailed variant by loops: per stratum of 3+ PSUs the half-variance of v_h is the
    larger of v_h^2 / (n_h - 1) and half of n_h / (n_h - 1) sum_i (d_i^2 - mean d^2)^2, d_i the
    PSU totals' deviations (no fpc)."""
    w = df["w"].to_numpy(float)
    yy = df[y].to_numpy(float)
    xx = np.ones(len(df)) if x is None else df[x].to_numpy(float)
    X = np.sum((w * xx)[dom])
    R = np.sum((w * yy)[dom]) / X
    z = np.where(dom, w * (yy - R * xx) / X, 0.0)
    v_sum = den = 0.0
    for h in sorted(df["h"].unique()):
        in_h = (df["h"] == h).to_numpy()
        t = np.array([z[in_h & (df["psu"] == p).to_numpy()].sum() for p in sorted(df.loc[in_h, "psu"].unique())])
        n = len(t)
        c = n / (n - 1)
        d2 = (t - t.mean()) ** 2
        vh = c * d2.sum()
        half = vh**2 / (n - 1)
        if n >= 3:
            half = max(half, c * c * n / (n - 1) * np.sum((d2 - d2.mean()) ** 2) / 2)
        v_sum += vh
        den += half
    return v_sum**2 / den


@pytest.mark.parametrize("seed", [1, 2])
def test_heavy_tailed_effective_df_by_hand(seed):
    """The option for heavy-tailed counts: by hand; never above Satterthwaite's (so never more
    than n_h - 1 df per stratum); equal to it when every stratum has 2 PSUs."""
    df = _unequal_design(seed)
    fams = [Ratios("m", ["y"], ["y"], None, ["y"], effective_df="heavy_tailed"),
            Ratios("s", ["y"], ["y"], None, ["y"], effective_df=True)]
    design = sv.Design(df, psu="psu", strata="h", weights="w")
    heavy, satt = FamilyEstimator(design, fams).estimate("d")
    for g, dval in enumerate(sorted(df["d"].unique())):
        dom = (df["d"] == dval).to_numpy()
        want = _heavy_tailed_by_hand(df, "y", None, dom)
        assert np.isclose(heavy["df_effective"].iloc[g], min(want, design.df), rtol=1e-9)
    assert (heavy["df_effective"] <= satt["df_effective"] + 1e-9).all()
    paired = _unequal_design(seed, sizes=(2, 2, 2, 2, 2, 2))
    d2 = sv.Design(paired, psu="psu", strata="h", weights="w")
    a, b = FamilyEstimator(d2, fams).estimate("d")
    np.testing.assert_allclose(a["df_effective"], b["df_effective"], rtol=1e-12)


def test_effective_df_option_in_the_table():
    from survey.indicators import IndicatorError, indicator_table

    data = sv.load(Path(__file__).resolve().parents[1] / "specs" / "ncvs-2021.yaml")
    kw = dict(crime_types=["property"], domains=["region"], indicators=["incidence"])
    a = indicator_table(data, **kw)
    b = indicator_table(data, effective_df="heavy_tailed", **kw)
    np.testing.assert_allclose(a["df"], b["df"], rtol=1e-12)  # NCVS: 2 PSUs per stratum
    with pytest.raises(IndicatorError, match="effective_df"):
        indicator_table(data, effective_df="normal", **kw)
