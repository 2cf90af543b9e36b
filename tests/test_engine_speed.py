"""The engine's fast paths give the numbers of the slow ones, checked against hand computation:
the SRS variance of Kish's deff from cell totals (and its fallback when that cancels), the
factor codes of text and categorical columns, the cells of one by variable, the replicate weight
matrix and its validation, and the df from the rank sketch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import survey as sv
from survey._columns import codes as slow_codes
from survey.design import _as_rows, _fast_codes, _weight_matrix
from survey.errors import ReplicateWeightError


def _frame(n=4000, seed=11, shift=0.0, spread=3.0):
    rng = np.random.default_rng(seed)
    h = np.repeat(np.arange(20), n // 20)
    psu = h * 2 + rng.integers(0, 2, n)
    df = pd.DataFrame({
        "h": h, "psu": psu, "w": rng.uniform(1, 6, n),
        "y": shift + rng.gamma(2.0, spread, n),
        "v": rng.integers(0, 2, n).astype(float),
        "region": pd.array(rng.choice(["North", "South", "East", "West"], n), dtype="str"),
        "cat": pd.array(rng.choice(["low", "mid", "high"], n, p=[0.2, 0.5, 0.3]), dtype="str"),
    })
    df["region_cat"] = pd.Categorical(df["region"].astype(object), categories=["West", "North", "Unused", "South",
                                                                                 "East"])
    for r in range(12):
        df[f"RW{r + 1}"] = df["w"] * rng.choice([0.5, 1.5], n)
    return df


def _hand_vsrs(df, y, by, total=False):
    """Kish's SRS variance per cell, two passes (residuals from the cell mean), as R's deff."""
    out = []
    for _, d in df.groupby(by, sort=True):
        w, v = d["w"].to_numpy(), d[y].to_numpy()
        W, n = w.sum(), len(v)
        m = np.sum(w * v) / W
        s2 = np.sum(w * (v - m) ** 2) / W * n / (n - 1)
        vs = s2 / n * (1 - n / W)
        out.append(vs * W * W if total else vs)
    return np.array(out)


@pytest.mark.parametrize("shift", [0.0, 1e7])  # 1e7: sum w y^2 - S^2/W cancels; the rows are summed
@pytest.mark.parametrize("kind", ["mean", "total"])
@pytest.mark.parametrize("rep", [False, True])
def test_deff_srs_variance_equals_two_pass_hand_computation(shift, kind, rep):
    df = _frame(shift=shift, spread=3.0 if shift == 0 else 1e-3)
    d = (sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5) if rep
         else sv.Design(df, weights="w", strata="h", psu="psu"))
    got = getattr(d, kind)("y", by="region")
    vs = _hand_vsrs(df, "y", "region", total=kind == "total")
    np.testing.assert_allclose((got["se"] ** 2 / got["deff"]).to_numpy(), vs, rtol=1e-9)
    # and as the replicate/Taylor variance itself is unchanged, the deff is se^2 / vs
    np.testing.assert_allclose(got["deff"].to_numpy(), (got["se"] ** 2).to_numpy() / vs, rtol=1e-9)


@pytest.mark.parametrize("rep", [False, True])
def test_deff_of_proportions_equals_hand_computation(rep):
    df = _frame()
    d = (sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5) if rep
         else sv.Design(df, weights="w", strata="h", psu="psu"))
    got = d.proportion("cat", by="region")
    for lev in ["high", "low", "mid"]:
        df["ind"] = (df["cat"] == lev).astype(float)
        vs = _hand_vsrs(df, "ind", "region")
        g = got[got["level"] == lev]
        np.testing.assert_allclose((g["se"] ** 2 / g["deff"]).to_numpy(), vs, rtol=1e-9)


@pytest.mark.parametrize("rep", [False, True])
def test_deff_with_missing_values(rep):
    """The row-by-row path (missing values) against the hand formula; then the same design
    object on a complete column (its cached completeness is per column)."""
    df = _frame()
    df["y2"] = df["y"]
    df.loc[df.index[::7], "y"] = np.nan
    d = (sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5) if rep
         else sv.Design(df, weights="w", strata="h", psu="psu"))
    for _ in range(2):  # the second call uses the cached completeness
        got = d.mean("y", by="region")
        ok = df.dropna(subset=["y"])
        np.testing.assert_allclose((got["se"] ** 2 / got["deff"]).to_numpy(), _hand_vsrs(ok, "y", "region"),
                                   rtol=1e-9)
        assert (got["n_missing"] > 0).all()
        got2 = d.mean("y2", by="region")
        np.testing.assert_allclose((got2["se"] ** 2 / got2["deff"]).to_numpy(), _hand_vsrs(df, "y2", "region"),
                                   rtol=1e-9)


@pytest.mark.parametrize("series", [
    pd.Series(["b", None, "a", "c", "a"], dtype="str"),
    pd.Series(["b", None, "a", "c", "a"], dtype="string"),
    pd.Series(["x"] * 3, dtype="str"),
    pd.Series([], dtype="str"),
    pd.Series(pd.Categorical(["b", None, "a"], categories=["z", "a", "b"])),
    pd.Series(pd.Categorical(["b", None, "a"], categories=["b", "a"], ordered=True)),
    pd.Series(pd.Categorical([None, None], categories=["b", "a"])),
    pd.Series([3, 1, 2, 1]),
    pd.Series(["b", "a", None], dtype=object),
])
def test_fast_codes_equal_the_general_codes(series):
    a, la = _fast_codes(series)
    b, lb = slow_codes(series)
    assert a.dtype == np.int64 and np.array_equal(a, b)
    assert la.equals(lb) and la.dtype == lb.dtype and type(la) is type(lb)


def test_fast_codes_by_hand():
    c, lev = _fast_codes(pd.Series(["b", None, "a", "c", "a"], dtype="str"))
    assert c.tolist() == [1, -1, 0, 2, 0] and list(lev) == ["a", "b", "c"]
    c, lev = _fast_codes(pd.Series(pd.Categorical(["b", None, "a"], categories=["z", "a", "b"])))
    assert c.tolist() == [1, -1, 0] and list(lev) == ["a", "b"]


@pytest.mark.parametrize("by", ["region", "region_cat", ["region", "cat"]])
def test_cells_of_text_and_categorical_domains(by):
    df = _frame()
    d = sv.Design(df, weights="w", strata="h", psu="psu")
    got = d.mean("y", by=by)
    cols = by if isinstance(by, list) else [by]
    want = (df.groupby(cols, observed=True).apply(lambda x: np.sum(x["w"] * x["y"]) / x["w"].sum(),
                                                 include_groups=False))
    np.testing.assert_allclose(got["estimate"].to_numpy(), want.to_numpy(), rtol=1e-13)
    if by == "region_cat":  # the unused category is no cell; the categories and their order are kept
        assert list(got[by].astype(str)) == ["West", "North", "South", "East"]
        assert list(got[by].cat.categories) == ["West", "North", "Unused", "South", "East"]


@pytest.mark.parametrize("n", [5000, 40000])
def test_weight_matrix_layout_and_values(n):
    df = _frame(n=n)
    df["RW3"] = df["RW3"].astype(np.float32)      # other numeric types are converted
    df["RW4"] = (df["RW4"] * 2).round().astype(np.int64)
    cols = [f"RW{r + 1}" for r in range(12)]
    m = _weight_matrix(df, cols, df["w"].to_numpy(), True)
    assert m.flags.c_contiguous and m.shape == (n, 13)
    np.testing.assert_array_equal(m, np.column_stack([df["w"].to_numpy()] + [df[c].to_numpy(float) for c in cols]))
    mult = _weight_matrix(df, cols, df["w"].to_numpy(), False)
    np.testing.assert_array_equal(mult[:, 1:], m[:, 1:] * df["w"].to_numpy()[:, None])


@pytest.mark.parametrize("bad", [None, "nan", "neg"])
def test_weight_matrix_from_one_block(bad):
    """Replicate columns that lie as consecutive rows of pandas' 2-D float64 block (a frame built
    from a dict, as pyarrow's to_pandas does) are read one tile of all columns at a time: the
    same matrix and the same errors as column by column."""
    src = _frame(n=9000)
    cols = [f"RW{r + 1}" for r in range(12)]
    if bad == "nan":
        src.loc[[3, 4100, 8999], "RW5"] = np.nan
    elif bad == "neg":
        src.loc[[6000], "RW11"] = -2.0
    df = pd.DataFrame({c: src[c].to_numpy() for c in ["h", "psu", "w", "y", "v"] + cols})  # one float block
    arrays = [df[c].to_numpy() for c in cols]
    for sel in (arrays, arrays[::2]):  # consecutive or equally spaced rows: a view of exactly them
        view = _as_rows(sel, len(df))
        assert view is not None and not view.flags.writeable
        assert all(np.shares_memory(view[j], x) and np.array_equal(view[j], x, equal_nan=True)
                   for j, x in enumerate(sel))
    assert _as_rows(arrays[::-1], len(df)) is None and _as_rows([arrays[0], arrays[1], arrays[3]], len(df)) is None
    assert _as_rows([src[c].to_numpy() for c in cols], len(df)) is None  # columns added one by one
    if bad is None:
        m = _weight_matrix(df, cols, df["w"].to_numpy(), True)
        np.testing.assert_array_equal(m, np.column_stack([src["w"].to_numpy()] + [src[c].to_numpy() for c in cols]))
        mult = _weight_matrix(df, cols, df["w"].to_numpy(), False)
        np.testing.assert_array_equal(mult[:, 1:], m[:, 1:] * src["w"].to_numpy()[:, None])
    else:
        msg = (r"replicate weight 'RW5': 3 of 9000 rows are missing" if bad == "nan"
               else r"replicate weight 'RW11': 1 of 9000 rows are negative")
        with pytest.raises(ReplicateWeightError, match=msg):
            sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5)


@pytest.mark.parametrize("n", [3000, 40000])
def test_weight_matrix_names_the_bad_column(n):
    df = _frame(n=n)
    df.loc[[5, 9, n - 1], "RW7"] = np.nan
    with pytest.raises(ReplicateWeightError, match=rf"replicate weight 'RW7': 3 of {n} rows are missing"):
        sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5)
    df = _frame(n=n)
    df.loc[[0, 2048], "RW12"] = -1.0  # in two tiles of the transposition
    with pytest.raises(ReplicateWeightError, match=rf"replicate weight 'RW12': 2 of {n} rows are negative"):
        sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5)
    df = _frame(n=n)
    df.loc[[n - 7], "RW2"] = -0.5  # only in the last tile
    with pytest.raises(ReplicateWeightError, match=rf"replicate weight 'RW2': 1 of {n} rows are negative"):
        sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5)


@pytest.mark.parametrize("rep", [False, True])
def test_result_frames_from_cached_columns_equal_the_general_path(rep):
    """Warm calls assemble the result from the leading columns kept in the design's cache; the
    frame is the one pandas' constructor gives (values, dtypes, categories), and editing one
    result changes no later one."""
    from survey import estimate as E

    df = _frame()
    d = (sv.ReplicateDesign(df, weights="w", replicate_weights=r"^RW\d+$", method="Fay", rho=0.5) if rep
         else sv.Design(df, weights="w", strata="h", psu="psu"))
    calls = [("mean", dict(variables="y", by="region")), ("mean", dict(variables=["y", "v"], by="region_cat")),
             ("total", dict(variables="y", by=["region", "cat"])), ("proportion", dict(variable="cat", by="region")),
             ("proportion", dict(variable="region_cat")), ("ratio", dict(numerator="y", denominator="v"))]
    built = []
    real = E._result
    try:
        E._result = lambda *a, **k: built.append((a, k)) or real(*a, **k)
        for f, kw in calls:
            getattr(d, f)(**kw)
            warm = getattr(d, f)(**kw)  # the cached leading columns are used from here
            a, k = built[-1]
            assert k.get("cache") is d._cache
            general = real(*a, **{**k, "cache": None})
            pd.testing.assert_frame_equal(warm, general, check_exact=True)
            if "region_cat" in warm:
                assert list(warm["region_cat"].cat.categories) == ["West", "North", "Unused", "South", "East"]
            first = warm.copy()
            warm.loc[0, warm.columns[0]] = warm.iloc[-1, 0]
            warm.loc[0, "variable"] = "edited"
            warm.loc[0, "estimate"] = -1.0
            pd.testing.assert_frame_equal(getattr(d, f)(**kw), first, check_exact=True)
    finally:
        E._result = real


def test_df_from_the_sketch_is_the_exact_rank():
    """n > 8 R: the df comes from the CountSketch (fused into the first estimate or on its own);
    it equals the exact rank of the replicate weights minus 1, also for a rank-deficient set."""
    df = _frame(n=6000)
    df["RW13"] = (df["RW1"] + df["RW2"]) / 2  # a dependent column: rank 12 of 13
    cols = [f"RW{r + 1}" for r in range(13)]
    exact = np.linalg.matrix_rank(df[cols].to_numpy()) - 1
    assert exact == 11
    d = sv.ReplicateDesign(df, weights="w", replicate_weights=cols, method="Fay", rho=0.5)
    assert d.df == exact
    d2 = sv.ReplicateDesign(df, weights="w", replicate_weights=cols, method="Fay", rho=0.5)
    d2.mean("y", by="region")  # the rank sketched in the same pass as the first estimate
    assert d2._df == exact


def _multistage(seed=5, n=3000):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 12, n)
    psu = h * 10 + rng.integers(0, 4, n)
    ssu = psu * 10 + rng.integers(0, 3, n)
    df = pd.DataFrame({"h": h, "psu": psu, "ssu": ssu, "w": rng.uniform(1, 9, n),
                       "cat": pd.array(rng.choice(["a", "b", "c", "d"], n, p=[0.1, 0.2, 0.3, 0.4]), dtype="str"),
                       "dom": rng.choice(["x", "y", "z"], n, p=[0.6, 0.35, 0.05]),
                       "N1": 0.0, "N2": 0.0})
    df["N1"] = df.groupby("h")["psu"].transform("nunique") * 3.0  # population PSUs per stratum
    df["N2"] = 8.0  # population SSUs per PSU
    df.loc[df["h"] == 11, "psu"] = 110  # a stratum with one PSU (lonely)
    df.loc[df["h"] == 11, "ssu"] = 1100 + df.loc[df["h"] == 11, "ssu"] % 3
    return df


@pytest.mark.parametrize("lonely", ["remove", "adjust", "average", "certainty"])
@pytest.mark.parametrize("stages", ["one", "two-fpc"])
@pytest.mark.parametrize("subset", [False, True])
def test_taylor_proportions_from_codes_equal_indicator_means(lonely, stages, subset):
    """Taylor proportions are computed from the factor codes (unit totals of weighted counts);
    the same numbers as the means of the level indicators (scores summed row by row), on one-
    and two-stage designs with fpc, every lonely-PSU policy, by domains and in a subset."""
    df = _multistage()
    for lev in "abcd":
        df[f"i_{lev}"] = (df["cat"] == lev).astype(float)
    if stages == "one":
        d = sv.Design(df, weights="w", strata="h", psu="psu", lonely_psu=lonely)
    else:
        d = sv.Design(df, weights="w", strata="h", psu=["psu", "ssu"], fpc=["N1", "N2"], lonely_psu=lonely)
    if subset:
        d = d.subset(df["w"].to_numpy() > 2)
    got = d.proportion("cat", by="dom")
    want = d.mean([f"i_{lev}" for lev in "abcd"], by="dom")
    for c in ("estimate", "se", "deff", "n", "weighted_n"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-11, atol=1e-15,
                                   err_msg=c)
    np.testing.assert_allclose(np.asarray(got.attrs["vcov"]), np.asarray(want.attrs["vcov"]), rtol=1e-10,
                               atol=1e-12 * np.abs(np.asarray(want.attrs["vcov"])).max())
    # and the hand-computed estimate of one cell
    sel = (df["dom"] == "y") & ((df["w"] > 2) if subset else True)
    p = np.sum(df.loc[sel, "w"] * df.loc[sel, "i_b"]) / df.loc[sel, "w"].sum()
    assert got[(got["dom"] == "y") & (got["level"] == "b")]["estimate"].iloc[0] == pytest.approx(p, rel=1e-13)
