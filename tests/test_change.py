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


# ---------------------------------------------------------------------------------------------
# compare_waves chooses: independent formula or the stacked design, and says which
# ---------------------------------------------------------------------------------------------
def _table(w, period):
    """A one-row indicator table (prevalence of x overall) of a panel wave, estimated on its own."""
    import pandas as pd

    r = w.design("household").mean("victim__x").iloc[0]
    return pd.DataFrame({"indicator": ["prevalence"], "crime_type": ["x"], "domain": ["overall"],
                         "domain_value": ["all"], "period": [period], "estimate": [100 * r.estimate],
                         "se": [100 * r.se], "suppressed": [False]})


def test_compare_waves_overlapping_panel_uses_the_stacked_design(pop):
    from survey.indicators import compare_waves

    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(4))
    ta, tb = _table(a, "wave 1"), _table(b, "wave 2")
    old = compare_waves(ta, tb).iloc[0]
    assert old.method.startswith("independent samples")
    r = compare_waves(ta, tb, data_a=a, data_b=b).iloc[0]
    assert r.method == "overlapping samples: covariance from 40 shared PSUs: stacked design, t on its 20 df"
    assert r.shared_psus == 40 and r.shared_units == 40 * 12  # round(0.5 x 25) households kept per PSU
    assert r.se == pytest.approx(100 * _by_hand(a, b), rel=1e-10)  # the by-hand covariance formula
    assert r.se < old.se and r.df == 20  # positively correlated waves
    assert r.difference == pytest.approx(tb.estimate.iloc[0] - ta.estimate.iloc[0], rel=1e-12)
    from scipy import stats

    q = stats.t.ppf(0.975, 20)
    assert r.ci_high - r.difference == pytest.approx(q * r.se, rel=1e-10)


def test_compare_waves_independent_waves_give_the_old_result(pop):
    import pandas as pd

    from survey.indicators import compare_waves

    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(5))
    b.respondents["p"] = b.respondents["p"] + 10_000  # other PSUs ...
    b.respondents["hid"] = b.respondents["hid"] + 10_000_000  # ... and other households
    b._designs.clear()
    ta, tb = _table(a, "wave 1"), _table(b, "wave 2")
    old = compare_waves(ta, tb)
    new = compare_waves(ta, tb, data_a=a, data_b=b)
    pd.testing.assert_frame_equal(new[old.columns], old)
    assert new.method.iloc[0] == "independent samples: SE = sqrt(se1^2 + se2^2), z test"
    assert new.shared_psus.iloc[0] == 0 and new.shared_units.iloc[0] == 0
    assert new.se.iloc[0] == pytest.approx(np.hypot(ta.se.iloc[0], tb.se.iloc[0]), rel=1e-15)


def test_compare_waves_samples_declared(pop):
    """compare.samples: 'independent' keeps the independent formula although the waves share PSUs
    (codes that only coincide), 'overlapping' fails on waves that share nothing."""
    from survey.errors import SurveyError
    from survey.indicators import compare_waves

    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(4))
    ta, tb = _table(a, "wave 1"), _table(b, "wave 2")
    r = compare_waves(ta, tb, data_a=a, data_b=b, samples="independent").iloc[0]
    assert r.shared_psus == 40  # the overlap is there ...
    assert r.method.startswith("independent samples (declared")  # ... and deliberately not used
    assert r.se == pytest.approx(np.hypot(ta.se.iloc[0], tb.se.iloc[0]), rel=1e-15)
    stacked = compare_waves(ta, tb, data_a=a, data_b=b, samples="overlapping").iloc[0]
    assert stacked.se == pytest.approx(100 * _by_hand(a, b), rel=1e-10)
    b.respondents["p"] = b.respondents["p"] + 10_000
    b.respondents["hid"] = b.respondents["hid"] + 10_000_000
    b._designs.clear()
    with pytest.raises(SurveyError, match="share no PSU"):
        compare_waves(ta, _table(b, "wave 2"), data_a=a, data_b=b, samples="overlapping")


def test_shared_households_without_psus_are_the_clusters(pop):
    """A design without PSUs (each household its own cluster): the households in both waves carry
    the covariance; by hand, the ultimate-cluster formula on household totals within strata."""
    from survey.change import sample_overlap
    from survey.indicators import compare_waves
    from survey.spec import parse_spec

    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(8))
    raw = {**panel.SPEC, "design": {"file": "r", "weights": "w", "strata": "h"}}
    for w, period in ((a, "wave 1"), (b, "wave 2")):
        w.spec = parse_spec({**raw, "period": period})
        w._designs.clear()
    ov = sample_overlap(a, b)
    assert ov["shared_psus"] is None and ov["shared_units"] == 480 and ov["unit_key"] == ["hid"]
    r = compare_waves(_table(a, "wave 1"), _table(b, "wave 2"), data_a=a, data_b=b).iloc[0]
    assert r.method.startswith("overlapping samples: covariance from 480 shared households (key hid)")
    for w in (a, b):
        w.respondents["p_hh"] = w.respondents["hid"]
    orig_p = (a.respondents.p.copy(), b.respondents.p.copy())
    a.respondents["p"], b.respondents["p"] = a.respondents.hid, b.respondents.hid
    want = 100 * _by_hand(a, b)
    a.respondents["p"], b.respondents["p"] = orig_p
    assert r.se == pytest.approx(want, rel=1e-10)
    n_clusters = len(set(a.respondents.hid) | set(b.respondents.hid))
    assert r.df == n_clusters - 20


def test_two_waves_run_data_compare_on_the_stacked_design():
    """The two synthetic waves of parameters/synthetic-two-waves.yaml: 104 (stratum, PSU) codes
    appear in both files, so the comparison uses the stacked design for the indicators it
    covers, with the SE of wave_change and the estimates of the two tables; the rest keeps the
    independent formula and says so.  (The two synthetic years are drawn from populations of
    different seeds that number their areas the same way: the shared codes are a coincidence
    the files cannot reveal; the covariance estimated between them is centred on zero.)"""
    import warnings

    from survey import params as sp
    from survey.indicators import compare_waves, indicator_table

    cfg = sp.read_parameter_set(ROOT / "parameters" / "synthetic-two-waves.yaml")
    v = cfg.values
    b = sp.load_survey(v, write_accounting=False)
    a = sp.load_survey(v, wave=v["compare"], write_accounting=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = dict(crime_types=["burglary", "assault"], domains=["region"])
        ta, tb = indicator_table(a, **kw), indicator_table(b, **kw)
    c = compare_waves(ta, tb, data_a=a, data_b=b).set_index(["indicator", "crime_type", "domain", "domain_value"])
    stacked = c.method.str.endswith("df")
    assert c.method.str.startswith("overlapping samples: covariance from 104 shared PSUs").all()
    assert set(c[stacked].index.get_level_values(0)) >= {"prevalence", "incidence"}
    assert not stacked[stacked.index.get_level_values(0) == "gini"].any()
    w = wave_change(a, b, "prevalence", "burglary", domain="region").set_index("domain_value")
    row = c.loc[("prevalence", "burglary", "region", "North")]
    assert row.se == pytest.approx(w.loc["North", "se"], rel=1e-12)
    assert row.estimate_a == pytest.approx(w.loc["North", "estimate_a"], rel=1e-9)


def test_compare_waves_replicate_designs_say_the_covariance_is_left_out(pop):
    from survey.indicators import compare_waves
    from survey.spec import parse_spec

    pop_df, P, M = pop
    a, b = panel.draw(pop_df, P, M, overlap=0.5, rng=np.random.default_rng(9))
    ta, tb = _table(a, "wave 1"), _table(b, "wave 2")
    for w in (a, b):
        w.respondents["rw1"] = w.respondents["w"]
        w.spec = parse_spec({**panel.SPEC, "design": {**panel.SPEC["design"], "replicate": {
            "columns": ["rw1"], "method": "JK1"}}})
    old = compare_waves(ta, tb)
    r = compare_waves(ta, tb, data_a=a, data_b=b)
    assert r.se.iloc[0] == old.se.iloc[0]
    assert r.method.iloc[0].startswith("overlapping samples: covariance from 40 shared PSUs; replicate-weight designs")
