"""Change between overlapping waves: the stacked-design SE equals a by-hand linearization with
the shared PSUs' covariance, reduces to the independent formula when no PSU is shared, and the
interval covers the known change of a synthetic rotating panel."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from survey.change import ChangeError, minimum_detectable_change, wave_change

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("panel_change", ROOT / "benchmarks" / "panel_change.py")
panel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(panel)


@pytest.fixture(scope="module")
def pop():
    return panel.population()


def _by_hand(a, b):
    """Var(p_b - p_a) by the ultimate-cluster formula on the PSU totals of the difference of the
    two waves' linearized scores (z = w (y - p) / sum w, wave b minus wave a)."""
    tot = {}
    for sign, w in ((-1, a), (1, b)):
        r = w.respondents
        p = np.average(r.v, weights=r.w)
        z = sign * r.w * (r.v - p) / r.w.sum()
        for (h, q), s in z.groupby([r.h, r.p]).sum().items():
            tot[(h, q)] = tot.get((h, q), 0.0) + s
    import pandas as pd

    t = pd.Series(tot)
    h = t.index.get_level_values(0)
    var = 0.0
    for _, g in t.groupby(h):
        n = len(g)
        var += n / (n - 1) * ((g - g.mean()) ** 2).sum()
    return np.sqrt(var)


def test_stacked_se_by_hand(pop):
    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(4))
    r = wave_change(a, b, "prevalence", "x").iloc[0]
    assert r.estimate_a == pytest.approx(100 * np.average(a.respondents.v, weights=a.respondents.w), rel=1e-12)
    assert r.estimate_b == pytest.approx(100 * np.average(b.respondents.v, weights=b.respondents.w), rel=1e-12)
    assert r.se == pytest.approx(100 * _by_hand(a, b), rel=1e-10)
    assert r.shared_psus == 40 and r.se < r.se_independent  # positively correlated waves
    assert r.df == 40 - 20
    for w in (a, b):
        w.respondents["grp"] = np.where(w.respondents.h < 10, "low", "high")
    by = wave_change(a, b, "prevalence", "x", domain="grp").set_index("domain_value")
    ra = a.respondents
    low = ra.grp == "low"
    assert by.loc["low", "estimate_a"] == pytest.approx(100 * np.average(ra.v[low], weights=ra.w[low]), rel=1e-12)
    assert set(by.index) == {"low", "high"} and (by.se < by.se_independent).all()


def test_no_shared_psu_is_independent(pop):
    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(5))
    b.respondents["p"] = b.respondents["p"] + 10_000  # other PSUs
    b._designs.clear()
    r = wave_change(a, b, "prevalence", "x").iloc[0]
    assert r.shared_psus == 0 and "independent" in r.method
    sa = a.design("household").mean("victim__x").iloc[0].se
    sb = b.design("household").mean("victim__x").iloc[0].se
    assert r.se == pytest.approx(100 * np.hypot(sa, sb), rel=1e-10)
    assert r.se == pytest.approx(r.se_independent, rel=1e-10)


def test_coverage_of_the_change(pop):
    out = panel.run(draws=120, overlap=0.5, seed=7)
    assert 0.88 <= out["coverage"] <= 0.99, out
    assert out["coverage_independent"] >= out["coverage"] and out["se_ratio"] < 0.95


def test_minimum_detectable_change():
    # by hand: (1.96 + 0.8416) sqrt(2 x 1.5 x 0.2 x 0.8 / 5000) for independent samples
    want = (1.959964 + 0.841621) * np.sqrt(2 * 1.5 * 0.2 * 0.8 / 5000)
    assert minimum_detectable_change(0.2, 5000, deff=1.5) == pytest.approx(want, rel=1e-5)
    assert minimum_detectable_change(0.2, 5000, deff=1.5, overlap=0.5, correlation=0.4) < want
    with pytest.raises(ChangeError, match="deff"):
        minimum_detectable_change(0.2, 5000, deff=-1)


def test_errors(pop):
    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(6))
    with pytest.raises(ChangeError, match="not one of"):
        wave_change(a, b, "gini", "x")
