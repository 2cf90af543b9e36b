"""The design's cache (factor codes, cells, row plans, replicate weight sums) is safe: the data of
a design cannot change, and cached results equal hand-computed ones on every call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import survey as sv


def _frame(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    strata = np.repeat(np.arange(10), n // 10)
    psu = strata * 2 + rng.integers(0, 2, n)
    df = pd.DataFrame({
        "h": strata, "psu": psu, "w": rng.uniform(1, 5, n), "y": rng.gamma(2.0, 3.0, n),
        "region": pd.array(rng.choice(["North", "South", "East"], n), dtype="str"),
    })
    for r in range(8):
        df[f"REPW{r + 1}"] = df["w"] * rng.choice([0.5, 1.5], n)
    return df


def _hand_means(df, by):
    g = df.groupby(by)
    return (g.apply(lambda d: np.sum(d["w"] * d["y"]) / np.sum(d["w"]), include_groups=False)).sort_index()


def _hand_rep_se(df, by, scale):
    reps = [c for c in df.columns if c.startswith("REPW")]
    out = {}
    for lev, d in df.groupby(by):
        full = np.sum(d["w"] * d["y"]) / d["w"].sum()
        est = np.array([np.sum(d[c] * d["y"]) / d[c].sum() for c in reps])
        out[lev] = (full, np.sqrt(scale * np.sum((est - est.mean()) ** 2)))
    return out


def test_editing_design_data_does_not_change_the_design():
    df = _frame()
    d = sv.Design(df, weights="w", strata="h", psu="psu")
    before = d.mean("y", by="region")
    d.data["region"] = "North"            # edits a copy
    d.data.loc[0, "y"] = 1e9              # idem
    df.loc[:, "y"] = 0.0                  # the caller's frame after construction
    after = d.mean("y", by="region")
    pd.testing.assert_frame_equal(before, after)
    ref = _hand_means(_frame(), "region")
    np.testing.assert_allclose(after["estimate"].to_numpy(), ref.to_numpy(), rtol=1e-13)
    with pytest.raises(AttributeError):
        d.data = df
    # a new design on changed data sees the change (its own, empty cache)
    df2 = _frame()
    df2["region"] = np.where(df2["region"] == "East", "West", df2["region"])
    d2 = sv.Design(df2, weights="w", strata="h", psu="psu")
    got = d2.mean("y", by="region")
    assert list(got["region"]) == ["North", "South", "West"]
    np.testing.assert_allclose(got["estimate"].to_numpy(), _hand_means(df2, "region").to_numpy(), rtol=1e-13)


@pytest.mark.parametrize("domain", ["text", "categorical"])
def test_replicate_means_equal_hand_computation_on_every_call(domain):
    df = _frame()
    if domain == "categorical":
        df["region"] = pd.Categorical(df["region"], categories=["South", "North", "East"])
    r = sv.ReplicateDesign(df, weights="w", replicate_weights=r"^REPW\d+$", method="Fay", rho=0.5)
    ref = _hand_rep_se(df, "region", 1 / (8 * 0.25))
    first = r.mean("y", by="region")     # fills the plan's weight sums
    second = r.mean("y", by="region")    # uses them
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    for _, row in second.iterrows():
        est, se = ref[row["region"]]
        assert row["estimate"] == pytest.approx(est, rel=1e-13)
        assert row["se"] == pytest.approx(se, rel=1e-11)
    if domain == "categorical":  # categorical order kept
        assert list(second["region"].astype(str)) == ["South", "North", "East"]
    # proportions after means on the same cells use the cached sums, equal to hand computation
    df["hi"] = np.where(df["y"] > 6, "yes", "no")
    r2 = sv.ReplicateDesign(df, weights="w", replicate_weights=r"^REPW\d+$", method="Fay", rho=0.5)
    r2.mean("y", by="region")
    p = r2.proportion("hi", by="region")
    for lev, d in df.groupby("region", observed=True):
        want = np.sum(d["w"] * (d["hi"] == "yes")) / d["w"].sum()
        got = p[(p["region"] == lev) & (p["level"] == "yes")]["estimate"].iloc[0]
        assert got == pytest.approx(want, rel=1e-13)
