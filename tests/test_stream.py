"""survey.stream: estimates from Parquet files read in row batches (and from Dask partitions)
equal the in-memory engine (itself checked against R's survey) on the same data to 1e-12, with
memory bounded by the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import survey as sv
from survey import stream
from survey.errors import ColumnNotFoundError, DesignError, ReplicateWeightError, WeightError

RTOL = 1e-12
NUM_COLS = ["estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n", "n_missing", "weighted_n"]
REP = dict(replicate_weights=r"^rw\d+$", method="Fay", rho=0.5)


def _frame(n=6000, seed=1, n_rep=10):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 12, n)
    psu = h * 10 + rng.integers(0, 3, n)
    df = pd.DataFrame({
        "h": h, "psu": psu, "w": rng.uniform(1, 9, n), "y": rng.gamma(2, 5, n), "x": rng.uniform(1, 3, n),
        "region": pd.array(rng.choice(["North", "South", "East", "West"], n), dtype="str"),
        "age": rng.integers(1, 5, n),
        "cat": pd.array(rng.choice(["a", "b", "c"], n), dtype="str"),
    })
    df.loc[rng.random(n) < 0.03, "y"] = np.nan
    df.loc[rng.random(n) < 0.02, "cat"] = None
    df.loc[rng.random(n) < 0.01, "region"] = None
    fac = rng.choice([0.5, 1.5], (n_rep, 200))
    for r in range(n_rep):  # Fay factors per PSU, stored as float32 (as on disk)
        df[f"rw{r + 1}"] = (df["w"] * fac[r][psu]).astype("float32")
    return df


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "survey.parquet"
    _frame().to_parquet(path, row_group_size=700)  # many small row groups
    back = pd.read_parquet(path)  # the data as the in-memory engine sees them
    return path, back


def _same(got: pd.DataFrame, want: pd.DataFrame):
    assert len(got) == len(want)
    by = list(want.columns[: want.columns.get_loc("variable")])
    for c in by:
        assert [str(v) for v in got[c]] == [str(v) for v in want[c]]
    assert list(got["variable"]) == list(want["variable"])
    assert [str(v) for v in got["level"]] == [str(v) for v in want["level"]]
    for c in NUM_COLS:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=RTOL, atol=0,
                                   equal_nan=True, err_msg=c)
    v, u = np.asarray(got.attrs["vcov"]), np.asarray(want.attrs["vcov"])
    np.testing.assert_allclose(v, u, rtol=RTOL, atol=RTOL * np.abs(u).max())


def _designs(back):
    return {
        "taylor": (sv.Design(back, weights="w", strata="h", psu="psu"), dict(strata="h", psu="psu")),
        "replicate": (sv.ReplicateDesign(back, weights="w", **REP), REP),
    }


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate"])
@pytest.mark.parametrize("by", [None, "region", ["region", "age"]])
def test_streamed_estimates_equal_in_memory(parquet, kind, by):
    path, back = parquet
    des, kw = _designs(back)[kind]
    run = dict(weights="w", by=by, batch_rows=500, **kw)
    _same(stream.estimate(path, "mean", ["y", "x"], **run), des.mean(["y", "x"], by=by))
    _same(stream.estimate(path, "total", "y", **run), des.total("y", by=by))
    _same(stream.estimate(path, "ratio", "y", denominator="x", **run), des.ratio("y", "x", by=by))
    for ci in ("logit", "beta", "wilson"):
        _same(stream.estimate(path, "proportion", "cat", ci_method=ci, **run),
              des.proportion("cat", by=by, ci_method=ci))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate"])
def test_where_is_a_subset_domain(parquet, kind):
    path, back = parquet
    des, kw = _designs(back)[kind]
    got = stream.estimate(path, "mean", "y", by="region", where="age >= 3", weights="w", batch_rows=1000, **kw)
    _same(got, des.subset("age >= 3").mean("y", by="region"))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_fpc_and_lonely_psu(tmp_path):
    df = _frame(3000, seed=5)
    df = df[~((df["h"] == 3) & (df["psu"] != 30))].copy()  # stratum 3: a single PSU
    df["N"] = 50.0 + df["h"]  # PSUs in the stratum's population
    path = tmp_path / "fpc.parquet"
    df.to_parquet(path, row_group_size=400)
    back = pd.read_parquet(path)
    for lonely in ("adjust", "certainty", "average", "remove"):
        des = sv.Design(back, weights="w", strata="h", psu="psu", fpc="N", lonely_psu=lonely)
        got = stream.estimate(path, "mean", "y", by="region", weights="w", strata="h", psu="psu", fpc="N",
                              lonely_psu=lonely, batch_rows=333)
        with pytest.warns(sv.SurveyWarning):
            want = des.mean("y", by="region")
        _same(got, want)
    with pytest.raises(DesignError, match="single stage-1 unit"):
        stream.estimate(path, "mean", "y", weights="w", strata="h", psu="psu")


def test_hand_computed_taylor_domain_mean(parquet):
    """Independent of the engine: the with-replacement stratified formula on PSU totals."""
    path, back = parquet
    got = stream.estimate(path, "mean", "y", by="age", weights="w", strata="h", psu="psu", batch_rows=700)
    ok = back["y"].notna()
    for _, row in got.iterrows():
        d = back[ok & (back["age"] == row["age"])]
        est = np.sum(d["w"] * d["y"]) / d["w"].sum()
        z = (back["w"] * np.where(ok & (back["age"] == row["age"]), back["y"].fillna(0) - est, 0.0)) / d["w"].sum()
        zp = pd.Series(z).groupby([back["h"], back["psu"]]).sum()
        v = 0.0
        for _, zs in zp.groupby(level=0):
            nh = len(zs)
            v += nh / (nh - 1) * np.sum((zs - zs.mean()) ** 2)
        assert row["estimate"] == pytest.approx(est, rel=1e-13)
        assert row["se"] == pytest.approx(np.sqrt(v), rel=1e-11)
        assert row["df"] == back.groupby("h")["psu"].nunique().sum() - 12


def test_replicate_sums_against_extended_precision(parquet):
    path, back = parquet
    got = stream.estimate(path, "mean", "y", weights="w", batch_rows=500, **REP)
    ok = back["y"].notna().to_numpy()
    W = np.column_stack([back["w"]] + [back[f"rw{r + 1}"].astype(float) for r in range(10)])[ok].astype(np.longdouble)
    y = back["y"].to_numpy()[ok].astype(np.longdouble)
    est = (W * y[:, None]).sum(0) / W.sum(0)
    d = est[1:] - est[1:].mean()
    assert got["estimate"].iloc[0] == pytest.approx(float(est[0]), rel=1e-14)
    assert got["se"].iloc[0] == pytest.approx(float(np.sqrt((d * d).sum() / (10 * 0.25))), rel=1e-12)
    assert got["df"].iloc[0] == 9  # rank of the 10 replicate weights minus 1 (from the streamed sketch)


def _replicate_file(path, n, R=40, seed=9):
    rng = np.random.default_rng(seed)
    cols = {"w": rng.uniform(1, 3, n), "y": rng.normal(size=n), "g": rng.integers(0, 20, n)}
    fac = rng.choice([0.5, 1.5], (R, 50))
    psu = rng.integers(0, 50, n)
    for r in range(R):
        cols[f"rw{r + 1}"] = (cols["w"] * fac[r][psu]).astype("float32")
    pd.DataFrame(cols).to_parquet(path, row_group_size=50_000)


def test_memory_is_bounded_by_the_batch(tmp_path):
    """Replicate estimates on 250,000 and 1,000,000 rows x 40 replicates, in a fresh process:
    four times the rows add almost nothing to the peak RSS (numpy and Arrow allocations alike),
    far below the weight matrix an in-memory design would hold; the Python/numpy allocations
    stay a few batches."""
    import json
    import os
    import subprocess
    import sys

    _replicate_file(tmp_path / "small.parquet", 1_000)
    _replicate_file(tmp_path / "a.parquet", 250_000)
    _replicate_file(tmp_path / "b.parquet", 1_000_000)
    code = f"""
import json, tracemalloc
from survey import stream
kw = dict(by="g", weights="w", replicate_weights=r"^rw\\d+$", method="Fay", rho=0.5, batch_rows=20_000)
def status(key):
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith(key))
stream.estimate({str(tmp_path / "small.parquet")!r}, "mean", "y", **kw)  # imports, warm-up
out = {{}}
for name in ("a", "b"):
    try:
        with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark VmHWM
            f.write("5")
        base = status("VmRSS:")
    except OSError:
        base = None
    tracemalloc.start()
    res = stream.estimate({str(tmp_path)!r} + f"/{{name}}.parquet", "mean", "y", **kw)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out[name] = dict(rows=len(res), extra=None if base is None else status("VmHWM:") - base, traced=traced)
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert run.returncode == 0, run.stderr[-2000:]
    m = json.loads(run.stdout.strip().splitlines()[-1])
    matrix_b = 1_000_000 * 41 * 8  # what ReplicateDesign would hold for b
    assert m["a"]["rows"] == m["b"]["rows"] == 20
    assert m["b"]["traced"] < 0.05 * matrix_b, m
    assert m["b"]["traced"] < 1.5 * m["a"]["traced"], m
    if m["a"]["extra"] is not None:  # Linux
        assert m["b"]["extra"] < m["a"]["extra"] + 0.1 * matrix_b, m
        assert m["b"]["extra"] < 0.5 * matrix_b, m


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate"])
def test_dask_synchronous(parquet, kind):
    path, back = parquet
    des, kw = _designs(back)[kind]
    got = stream.estimate_dask(path, "ratio", "y", denominator="x", by="region", weights="w",
                               scheduler="synchronous", **kw)
    _same(got, des.ratio("y", "x", by="region"))
    got = stream.estimate_dask(path, "proportion", "cat", by=["region", "age"], weights="w",
                               scheduler="synchronous", **kw)
    _same(got, des.proportion("cat", by=["region", "age"]))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_dask_local_cluster(parquet):
    distributed = pytest.importorskip("distributed")
    path, back = parquet
    des, kw = _designs(back)["replicate"]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as c, \
            distributed.Client(c):
        got = stream.estimate_dask(path, "mean", ["y", "x"], by="region", weights="w", **kw)
    _same(got, des.mean(["y", "x"], by="region"))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_errors_name_file_variable_and_rows(tmp_path):
    df = _frame(1000)
    df.loc[:6, "w"] = -1.0
    path = tmp_path / "bad.parquet"
    df.to_parquet(path, row_group_size=300)
    with pytest.raises(WeightError, match=r"weight 'w' in bad.parquet: 7 of 1000 rows are negative"):
        stream.estimate(path, "mean", "y", weights="w", strata="h", psu="psu")
    with pytest.raises(ColumnNotFoundError, match="did you mean 'region'"):
        stream.estimate(path, "mean", "y", by="regio", weights="w", strata="h", psu="psu")
    with pytest.raises(ReplicateWeightError, match="matches none of the"):
        stream.estimate(path, "mean", "y", weights="w", replicate_weights=r"^repw\d+$", method="Fay", rho=0.5)
    # without PSUs (each row its own): what does not stream is one line
    df = _frame(1000).assign(w=lambda d: d["w"].abs())
    df.loc[0, "h"] = 99  # a stratum of one row
    path = tmp_path / "lonely.parquet"
    df.to_parquet(path, row_group_size=300)
    with pytest.raises(DesignError, match="lonely_psu 'average' is not available when streaming a design without"):
        stream.estimate(path, "mean", "y", weights="w", strata="h", lonely_psu="average")
    with pytest.raises(sv.LonelyPSUError, match=r"1 stratum\(s\) of lonely.parquet have a single row \(e.g. 99\)"):
        stream.estimate(path, "mean", "y", weights="w", strata="h")
    with pytest.raises(sv.EstimationError, match="heavy_tailed' needs PSUs"):
        stream.estimate_many(path, [{"kind": "mean", "variables": "y", "effective_df": "heavy_tailed"}],
                             weights="w", strata="h", lonely_psu="remove")
    for policy in ("remove", "certainty", "adjust"):
        want = sv.Design(df, weights="w", strata="h", lonely_psu=policy).mean("y", by="region")
        _same(stream.estimate(path, "mean", "y", by="region", weights="w", strata="h", lonely_psu=policy), want)


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate"])
def test_many_estimates_from_one_read(parquet, kind):
    """The indicator table's families (ratios, means, proportions, several domain variables) in
    one pass over the file."""
    path, back = parquet
    des, kw = _designs(back)[kind]
    got = stream.estimate_many(path, [
        dict(kind="ratio", variables=["y", "x"], denominator="x", by="region"),
        dict(kind="mean", variables="y", by="age"),
        dict(kind="proportion", variables="cat", by=["region", "age"], ci_method="beta"),
        dict(kind="total", variables="x", where="age == 2"),
    ], weights="w", batch_rows=800, **kw)
    _same(got[0], des.ratio(["y", "x"], "x", by="region"))
    _same(got[1], des.mean("y", by="age"))
    _same(got[2], des.proportion("cat", by=["region", "age"], ci_method="beta"))
    _same(got[3], des.subset("age == 2").total("x"))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_replicate_options_multipliers_jk1_mse(tmp_path):
    df = _frame(2000, seed=4, n_rep=6)
    for r in range(6):  # multipliers of the full-sample weight instead of full weights
        df[f"rw{r + 1}"] = (df[f"rw{r + 1}"] / df["w"]).astype("float32")
    path = tmp_path / "mult.parquet"
    df.to_parquet(path, row_group_size=300)
    back = pd.read_parquet(path)
    opts = dict(replicate_weights=r"^rw\d+$", method="JK1", combined_weights=False, mse=True)
    des = sv.ReplicateDesign(back, weights="w", **opts)
    got = stream.estimate(path, "ratio", "y", denominator="x", by="region", weights="w", batch_rows=256, **opts)
    _same(got, des.ratio("y", "x", by="region"))
    got = stream.estimate(path, "total", "x", by="age", weights="w", df=30, **opts)
    _same(got, des.total("x", by="age", df=30))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("strata", ["h", None])
@pytest.mark.parametrize("by", [None, "region", ["region", "age"]])
def test_designs_without_psu_each_row_its_own_psu(parquet, strata, by):
    """No PSU column: every row is a PSU (stratified sampling of rows with replacement), as the
    in-memory Design without psu=; the per-(stratum, cell) second moments are what streams."""
    path, back = parquet
    des = sv.Design(back, weights="w", strata=strata)
    run = dict(weights="w", strata=strata, by=by, batch_rows=700)
    _same(stream.estimate(path, "mean", ["y", "x"], **run), des.mean(["y", "x"], by=by))
    _same(stream.estimate(path, "total", "y", **run), des.total("y", by=by))
    _same(stream.estimate(path, "ratio", ["y", "x"], denominator="x", **run), des.ratio(["y", "x"], "x", by=by))
    _same(stream.estimate(path, "proportion", "cat", **run), des.proportion("cat", by=by))
    sub = des.subset(back["age"] >= 2)
    _same(stream.estimate(path, "mean", "y", where="age >= 2", **run), sub.mean("y", by=by))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_no_psu_fpc_and_effective_df(parquet, tmp_path):
    path, back = parquet
    back = back.assign(N=back["h"].map(back.groupby("h").size() * 7.5))
    p2 = tmp_path / "fpc.parquet"
    back.to_parquet(p2, row_group_size=900)
    des = sv.Design(back, weights="w", strata="h", fpc="N")
    _same(stream.estimate(p2, "mean", "y", weights="w", strata="h", fpc="N", by="region"),
          des.mean("y", by="region"))
    # Satterthwaite df by hand: (sum_h v_h)^2 / sum_h v_h^2 / (n_h - 1), v_h the strata's terms
    res = stream.estimate_many(p2, [{"kind": "mean", "variables": "y", "effective_df": "satterthwaite"}],
                               weights="w", strata="h", fpc="N")[0]
    ok = back["y"].notna()
    w, y, h = back["w"][ok], back["y"][ok], back["h"][ok]
    ybar = (w * y).sum() / w.sum()
    z = w * (y - ybar) / w.sum()
    n_h = back.groupby("h").size()
    zs = z.groupby(h).agg(["sum", lambda v: (v * v).sum()])
    zs.columns = ["s1", "s2"]
    nh = n_h.loc[zs.index]
    vh = (1 - nh / (7.5 * nh)) * nh / (nh - 1) * (zs["s2"] - zs["s1"] ** 2 / nh)
    want = vh.sum() ** 2 / (vh ** 2 / (nh - 1)).sum()
    assert res["df_effective"].iloc[0] == pytest.approx(want, rel=1e-10)
    assert res["se"].iloc[0] == pytest.approx(np.sqrt(vh.sum()), rel=1e-10)


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("design", ["taylor", "replicate", "rows"])
def test_proportion_level_first_seen_in_a_later_batch(tmp_path, design):
    """A level absent from the first batches (a rare count value, a late category): its
    denominator still counts the earlier batches' rows (it was left out before: p of such a
    level too large, and its SE off)."""
    back = _frame(3000, seed=4)
    back["cat"] = back["cat"].astype(object)
    late = np.arange(len(back)) >= 2000
    back.loc[late & (np.random.default_rng(2).random(len(back)) < 0.1), "cat"] = "z"  # only after row 2000
    back["cat"] = pd.array(back["cat"], dtype="str")
    path = tmp_path / "late.parquet"
    back.to_parquet(path, row_group_size=500)
    back = pd.read_parquet(path)
    des, kw = _designs(back)[design if design != "rows" else "taylor"]
    if design == "rows":
        des, kw = sv.Design(back, weights="w", strata="h"), dict(strata="h")
    for by in (None, "region"):
        got = stream.estimate(path, "proportion", "cat", weights="w", by=by, batch_rows=400, **kw)
        want = des.proportion("cat", by=by)
        _same(got, want)
    z = got[got["level"] == "z"]
    assert len(z) == 4 and (z["estimate"] > 0.02).all() and (z["estimate"] < 0.06).all()


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_second_stage_from_batches_of_whole_ssus(tmp_path):
    """Two stages with a first-stage fpc: the SSUs' variance from batches that hold each SSU
    whole (estimate_frames), equal to the in-memory two-stage Design; estimate() on a file
    refuses ssu= (its row groups may cut an SSU)."""
    back = _frame(3000, seed=6)
    back["ssu"] = back["psu"] * 10 + np.random.default_rng(3).integers(0, 5, len(back))
    back["N1"] = 8.0
    back["N2"] = 12.0
    back = back.sort_values(["psu", "ssu"], kind="stable").reset_index(drop=True)
    des = sv.Design(back, weights="w", strata="h", psu=["psu", "ssu"], fpc=["N1", "N2"])
    design = stream.StreamDesign(weights="w", strata="h", psu="psu", fpc="N1", ssu="ssu", fpc2="N2")
    cuts = np.flatnonzero(np.diff(back["ssu"].to_numpy()) != 0) + 1
    edges = [0] + [int(c) for c in cuts[::40]] + [len(back)]
    frames = [back.iloc[a:b] for a, b in zip(edges[:-1], edges[1:])]
    got = stream.estimate_frames(frames, list(back.columns), [
        dict(kind="mean", variables=["y", "x"], by="region"), dict(kind="total", variables="y", by="age"),
        dict(kind="ratio", variables="y", denominator="x"), dict(kind="proportion", variables="cat", by="region")],
        design=design)
    for g, w in zip(got, (des.mean(["y", "x"], by="region"), des.total("y", by="age"), des.ratio("y", "x"),
                          des.proportion("cat", by="region"))):
        for c in ("estimate", "se", "df", "n"):
            np.testing.assert_allclose(g[c].to_numpy(float), w[c].to_numpy(float), rtol=1e-10, err_msg=c)
    one = sv.Design(back, weights="w", strata="h", psu="psu", fpc="N1").mean(["y", "x"], by="region")
    assert (got[0]["se"].to_numpy() > one["se"].to_numpy() * 1.01).all()
    path = tmp_path / "two.parquet"
    back.to_parquet(path)
    with pytest.raises(stream.EstimationError, match="ssu='ssu' .* needs batches that hold each SSU whole"):
        stream.estimate(path, "mean", "y", design=design)
