"""Lorenz curves and the Gini coefficient: value against the brute-force definition,
linearization against finite differences and against a jackknife of the same design."""

import numpy as np
import pandas as pd
import pytest

import survey as sv
from survey.lorenz import _gini_scores, gini_value


def _data(seed=3, n=400):
    rng = np.random.default_rng(seed)
    y = rng.negative_binomial(0.3, 0.4, n).astype(float)
    w = rng.uniform(1, 6, n)
    return y, w


def test_gini_equals_mean_absolute_difference_definition():
    y, w = _data()
    big_w = w.sum()
    mean = (w * y).sum() / big_w
    brute = (w[:, None] * w[None, :] * np.abs(y[:, None] - y[None, :])).sum() / (2 * big_w**2 * mean)
    assert gini_value(y, w) == pytest.approx(brute, rel=1e-12)
    assert gini_value(np.ones(10), np.ones(10)) == pytest.approx(0.0, abs=1e-12)


def test_linearization_is_the_derivative():
    y, w = _data(n=120)
    _, u = _gini_scores(y, w)
    eps = 1e-6
    fd = [(gini_value(y, w + eps * (np.arange(len(w)) == k)) - gini_value(y, w - eps * (np.arange(len(w)) == k)))
          / (2 * eps) for k in range(len(w))]
    np.testing.assert_allclose(u, fd, atol=1e-7)


def test_linearized_se_agrees_with_jackknife():
    rng = np.random.default_rng(7)
    rows = []
    for h in range(12):
        for p in range(4):
            m = 30
            frail = rng.gamma(0.5, 2.0)
            rows.append(pd.DataFrame({"h": h, "psu": f"{h}-{p}", "w": rng.uniform(50, 150, m),
                                      "y": rng.poisson(0.4 * frail, m).astype(float)}))
    df = pd.concat(rows, ignore_index=True)
    d = sv.Design(df, weights="w", strata="h", psu="psu")
    y = df.y.to_numpy()
    g, u = _gini_scores(y, d.w)
    lin = np.sqrt(d._vcov(np.arange(len(y)), np.zeros(len(y), dtype=int), d.w * u, 1)[0, 0])
    jk = sv.as_replicate(d, method="JKn")
    reps = np.array([gini_value(y, jk.repw[:, j + 1]) for j in range(jk.n_replicates)])
    jk_se = np.sqrt(np.sum(jk.rscales * (reps - g) ** 2))
    assert lin == pytest.approx(jk_se, rel=0.05)


def test_lorenz_and_gini_on_ncvs():
    from pathlib import Path

    from survey.ingest import load
    from survey.lorenz import gini, lorenz

    data = load(Path(__file__).resolve().parents[1] / "specs" / "ncvs-2021.yaml")
    cur = lorenz(data, "property")
    assert cur.population_share.iloc[0] == 0 and cur.victimization_share.iloc[-1] == pytest.approx(1.0)
    assert (np.diff(cur.victimization_share) >= -1e-12).all()
    # ~93.7% of households have no property victimization in the collection year: flat until then
    assert cur.loc[cur.population_share <= 0.93, "victimization_share"].max() == 0
    assert cur.loc[cur.population_share < 0.945, "victimization_share"].max() > 0
    g = gini(data, "property").iloc[0]
    assert 0.9 < g.estimate < 1 and 0 < g.se < 0.01
    v = gini(data, "property", over="victims", by="tenure")
    assert (v.estimate < g.estimate).all() and len(v) == 2
