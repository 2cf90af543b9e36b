"""Properties of design-based estimators that hold for any sample (hypothesis).

(a) Scaling every weight by a constant leaves means, proportions and their SEs unchanged.
(b) Domain totals add up to the overall total, and the covariance matrix of the domain totals
    adds up to the variance of the overall total.
(c) One PSU per row, no strata: the SE of a mean is the with-replacement formula
    sqrt(n/(n-1) * sum w_i^2 (y_i - ybar)^2) / sum w.
(d) Replicate variance centred on the full-sample estimate (mse=True) is never smaller than the
    variance centred on the mean of the replicates (mse=False).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import survey as sv

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

weights_el = st.floats(0.5, 50.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
values_el = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def samples(draw, max_strata: int = 3):
    """A stratified cluster sample: 1-3 strata, 2-4 PSUs each, 1-4 rows per PSU."""
    stratum, psu = [], []
    for h in range(draw(st.integers(1, max_strata))):
        for p in range(draw(st.integers(2, 4))):
            m = draw(st.integers(1, 4))
            stratum += [h] * m
            psu += [f"{h}-{p}"] * m
    n = len(stratum)
    return pd.DataFrame({
        "h": stratum,
        "psu": psu,
        "w": draw(arrays(np.float64, n, elements=weights_el)),
        "y": draw(arrays(np.float64, n, elements=values_el)),
        "g": draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n)),
    })


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def assert_close(a, b, rtol=1e-8, atol=1e-9):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True), f"{a} != {b}"


# (a) -----------------------------------------------------------------------------------------
@SETTINGS
@given(df=samples(), c=st.floats(1e-3, 1e3, allow_nan=False, allow_subnormal=False))
def test_weight_scaling_leaves_means_proportions_and_ses_unchanged(df, c):
    df2 = df.assign(w=df["w"] * c)
    d1 = _quiet(sv.Design, df, weights="w", strata="h", psu="psu")
    d2 = _quiet(sv.Design, df2, weights="w", strata="h", psu="psu")
    for f in (lambda d: d.mean("y"),
              lambda d: d.mean("y", by="g"),
              lambda d: d.proportion("g", ci_method="mean"),
              lambda d: d.proportion("g", by="h", ci_method="mean")):
        r1, r2 = _quiet(f, d1), _quiet(f, d2)
        assert len(r1) == len(r2)
        assert_close(r1["estimate"], r2["estimate"])
        scale = max(1.0, float(np.nanmax(np.abs(r1["se"]))))
        assert_close(r1["se"], r2["se"], atol=1e-9 * scale)


# (b) -----------------------------------------------------------------------------------------
@SETTINGS
@given(df=samples())
def test_domain_totals_add_up_with_their_covariance(df):
    d = _quiet(sv.Design, df, weights="w", strata="h", psu="psu")
    overall = _quiet(d.total, "y").iloc[0]
    by = _quiet(d.total, "y", by="g")
    v = np.asarray(by.attrs["vcov"], dtype=float)
    assert v.shape == (len(by), len(by))
    scale = max(1.0, float(np.abs(df["w"] * df["y"]).sum()))
    assert_close(by["estimate"].sum(), overall["estimate"], atol=1e-9 * scale)
    assert_close(v.sum(), overall["se"] ** 2, atol=1e-9 * scale**2)
    assert_close(np.sqrt(np.diag(v)), by["se"], atol=1e-9 * scale)


# (c) -----------------------------------------------------------------------------------------
@SETTINGS
@given(df=samples(max_strata=1))
def test_one_psu_per_row_is_the_with_replacement_formula(df):
    d = _quiet(sv.Design, df, weights="w")  # no psu, no strata: every row is its own PSU
    r = _quiet(d.mean, "y").iloc[0]
    w, y = df["w"].to_numpy(), df["y"].to_numpy()
    n = len(y)
    ybar = (w * y).sum() / w.sum()
    se = np.sqrt(n / (n - 1) * (w**2 * (y - ybar) ** 2).sum()) / w.sum()
    assert_close(r["estimate"], ybar)
    assert_close(r["se"], se, atol=1e-10 * max(1.0, np.abs(y).max()))
    assert float(r["df"]) == n - 1
    assert float(d.df) == n - 1


# (d) -----------------------------------------------------------------------------------------
@SETTINGS
@given(df=samples(), data=st.data())
def test_replicate_mse_variance_is_not_smaller(df, data):
    n = len(df)
    n_rep = data.draw(st.integers(2, 12))
    mult = data.draw(arrays(np.float64, (n, n_rep), elements=st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0])))
    rep = pd.DataFrame(df["w"].to_numpy()[:, None] * mult, columns=[f"rw{i + 1}" for i in range(n_rep)])
    data_rep = pd.concat([df, rep], axis=1)
    cols = list(rep.columns)
    method = data.draw(st.sampled_from(["bootstrap", "JK1", "other"]))
    plain = _quiet(sv.ReplicateDesign, data_rep, weights="w", replicate_weights=cols, method=method, mse=False)
    mse = _quiet(sv.ReplicateDesign, data_rep, weights="w", replicate_weights=cols, method=method, mse=True)
    for f in (lambda d: d.mean("y"), lambda d: d.total("y"), lambda d: d.proportion("g", ci_method="mean")):
        a, b = _quiet(f, plain), _quiet(f, mse)
        assert_close(a["estimate"], b["estimate"])
        se_a, se_b = a["se"].to_numpy(dtype=float), b["se"].to_numpy(dtype=float)
        ok = np.isnan(se_a) | (se_b**2 >= se_a**2 * (1 - 1e-9) - 1e-12)
        assert ok.all(), f"mse variance {se_b**2} < plain variance {se_a**2}"
