"""Fay-Herriot small-area estimation (survey.sae).

Oracles: R metafor (tests/reference/make_fay_herriot.R -> data/fay_herriot_metafor.csv) for
sigma2_u, beta, their SEs, the EBLUPs (BLUPs of the true effects), g1 + g2 (metafor's BLUP
variance), the synthetic estimate and its prediction variance out of sample; the Prasad-Rao and
Datta-Lahiri MSE computed here with dense matrices from metafor's sigma2_u; a model-based
simulation with known truth (a reduced run of benchmarks/sae_simulation.py); the synthetic
survey's population truth by region.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survey import sae
from survey.errors import ColumnNotFoundError, SurveyWarning

ROOT = Path(__file__).resolve().parents[1]
REF = pd.read_csv(ROOT / "tests" / "reference" / "data" / "fay_herriot_metafor.csv")
CASES = [("fh30", "REML"), ("fh30", "ML"), ("zero", "REML"), ("zero", "ML")]


def _case(dataset, method):
    return REF[(REF.dataset == dataset) & (REF.method == method)].reset_index(drop=True)


def _fit(g, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SurveyWarning)
        return sae.fay_herriot(g, estimate="y", se="se", covariates=["x1", "x2"], method=method, **kw)


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.mark.parametrize("dataset, method", CASES)
def test_sigma2_beta_and_eblup_equal_metafor(dataset, method):
    g = _case(dataset, method)
    f = _fit(g, method)
    a = f.attrs
    tau2 = g.tau2.iloc[0]
    if tau2 == 0:
        assert a["sigma2_u"] == 0 and a["at_zero"]
    else:
        assert a["sigma2_u"] == pytest.approx(tau2, rel=1e-6)
    assert _rel(list(a["beta"].values()), g.loc[0, ["b0", "b1", "b2"]]) < 1e-6
    assert _rel(list(a["beta_se"].values()), g.loc[0, ["se_b0", "se_b1", "se_b2"]]) < 1e-6
    s = g.y.notna().to_numpy()
    assert (f["in_sample"].to_numpy() == s).all()
    assert _rel(f["eblup"][s], g["blup"][s]) < 1e-6
    # metafor's BLUP variance is g1 + g2 (sigma2_u treated as known)
    assert _rel((f["g1"] + f["g2"])[s], g["blup_se"][s] ** 2) < 1e-6
    assert _rel(f["synthetic"], g["fitted"]) < 1e-6
    if method == "ML" and tau2 > 0:  # metafor's ML SE of tau2 is the inverse expected information
        assert np.sqrt(a["var_sigma2_u"]) == pytest.approx(g.se_tau2.iloc[0], rel=1e-6)


def test_areas_without_a_sample_get_the_synthetic_estimate_with_metafor_prediction_variance():
    g = _case("fh30", "REML")
    f = _fit(g, "REML")
    out = g.y.isna().to_numpy()
    assert out.sum() == 4 and (f.loc[out, "eblup"] == f.loc[out, "synthetic"]).all()
    assert (f.loc[out, "gamma"] == 0).all()
    # predict(): pi.ub = fitted + z sqrt(se^2 + tau2) = x'beta + z sqrt(g2 + sigma2_u)
    z = 1.959963984540054
    assert _rel(f.loc[out, "mse"], ((g.pi_ub - g.fitted) / z)[out] ** 2) < 1e-6


def _prasad_rao_by_hand(g, tau2, method):
    """Prasad-Rao (REML) / Datta-Lahiri (ML) MSE from dense matrices, at a given sigma2_u."""
    s = g.y.notna().to_numpy()
    Xa = np.column_stack([np.ones(len(g)), g.x1, g.x2])
    X, psi = Xa[s], g.se.to_numpy()[s] ** 2
    V = np.diag(tau2 + psi)
    Vi = np.linalg.inv(V)
    XtViX_inv = np.linalg.inv(X.T @ Vi @ X)
    m = len(psi)
    out = np.empty(len(g))
    ibar = 2.0 / np.trace(Vi @ Vi)  # asymptotic variance of the variance estimator
    bias = -np.trace(XtViX_inv @ X.T @ Vi @ Vi @ X) / np.trace(Vi @ Vi)  # E(ML) - sigma2_u
    k = 0
    for i in range(len(g)):
        x = Xa[i]
        if not s[i]:
            out[i] = tau2 + x @ XtViX_inv @ x - (bias if method == "ML" else 0.0)
            continue
        p = psi[k]
        k += 1
        B = p / (tau2 + p)
        g1 = tau2 * p / (tau2 + p)
        g2 = B ** 2 * x @ XtViX_inv @ x
        g3 = p ** 2 / (tau2 + p) ** 3 * ibar
        out[i] = g1 + g2 + 2 * g3 - (bias * B ** 2 if method == "ML" else 0.0)
    assert k == m
    return out


@pytest.mark.parametrize("dataset, method", CASES)
def test_prasad_rao_mse_by_hand(dataset, method):
    g = _case(dataset, method)
    f = _fit(g, method)
    assert _rel(f["mse"], _prasad_rao_by_hand(g, g.tau2.iloc[0], method)) < 1e-6
    assert np.allclose(f["rmse"], np.sqrt(f["mse"])) and np.allclose(f["cv"], f["rmse"] / f["eblup"].abs())


def test_sigma2_at_zero_warns_and_gives_the_synthetic_estimate():
    g = _case("zero", "REML")
    with pytest.warns(SurveyWarning, match="sigma2_u estimated as 0 by REML \\(20 areas\\).*g2 \\+ 2 g3"):
        f = sae.fay_herriot(g, estimate="y", se="se", covariates=["x1", "x2"])
    assert (f["gamma"] == 0).all() and np.allclose(f["eblup"], f["synthetic"], rtol=0, atol=0)
    assert (f["g1"] == 0).all() and (f["g3"] > 0).all()


def test_ratio_benchmarking_to_a_national_estimate():
    g = _case("fh30", "REML").assign(pop=np.arange(1, 31) * 1000.0)
    f = _fit(g, "REML", benchmark=5.0, shares="pop")
    w = g["pop"] / g["pop"].sum()
    assert float(w @ f["eblup_benchmarked"]) == pytest.approx(5.0, rel=1e-12)
    ratio = 5.0 / float(w @ f["eblup"])
    assert np.allclose(f["eblup_benchmarked"], ratio * f["eblup"], rtol=1e-12)
    assert np.allclose(f["mse_benchmarked"], f["mse"] + (f["eblup_benchmarked"] - f["eblup"]) ** 2)
    with pytest.raises(sae.SmallAreaError, match="benchmark needs shares="):
        _fit(g, "REML", benchmark=5.0)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.assign(se=d.se.where(d.area != "A05")), "column 'se' is missing, zero or negative for areas "
                                                         "with a direct estimate: A05 \\(1 row\\)"),
    (lambda d: d.assign(se=d.se.where(~d.area.isin(["A01", "A02"]), 0.0)), "A01, A02 \\(2 rows\\)"),
    (lambda d: d.assign(area=d.area.replace({"A02": "A01"})), "duplicate areas A01, A01 \\(2 rows\\)"),
    (lambda d: d.assign(x2=2 * d.x1 + 1), "collinear on the 26 sampled areas: x2 is a linear combination of "
                                          "\\(intercept\\), x1"),
    (lambda d: d.assign(x1=d.x1.where(d.area != "A07")), "covariate 'x1' is missing or not finite for areas A07"),
    (lambda d: d.assign(x1=d.x1.astype(object).where(d.area != "A08", "n/a")), "'x1' \\(covariate\\) is not numeric"),
    (lambda d: d.head(3), "2 areas with a direct estimate for 3 coefficients .* need at least 4"),
])
def test_bad_inputs_are_one_line_errors_naming_column_and_rows(change, message):
    d = change(_case("fh30", "REML")[["area", "y", "se", "x1", "x2"]])
    with pytest.raises(sae.SmallAreaError, match=message) as e:
        sae.fay_herriot(d, estimate="y", se="se", covariates=["x1", "x2"], source="areas.csv")
    assert "\n" not in str(e.value) and str(e.value).startswith("areas.csv: ")


def test_unknown_column_suggests_the_spelling():
    d = _case("fh30", "REML")
    with pytest.raises(ColumnNotFoundError, match="'X1' \\(covariate\\).*did you mean 'x1'"):
        sae.fay_herriot(d, estimate="y", se="se", covariates=["X1"])


# ---------------------------------------------------------------------------------------------
# simulation with known truth (reduced run of benchmarks/sae_simulation.py)
# ---------------------------------------------------------------------------------------------
def _bench():
    spec = importlib.util.spec_from_file_location("sae_simulation", ROOT / "benchmarks" / "sae_simulation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_simulation_eblup_beats_direct_and_prasad_rao_is_unbiased():
    """30 sampled areas (psi = 0.25, 1, 4 x sigma2_u) + 3 out of sample, 600 replications, REML:
    the EBLUP's empirical MSE is below the direct variance in every class, and the mean
    Prasad-Rao MSE is within 3 Monte Carlo SEs (+1%) of the empirical MSE; without g3 (g1 + g2)
    the psi = 1 class is underestimated by more than its simulation error."""
    res = _bench().simulate(m=30, reps=600, out_of_sample=3, methods=("REML",), seed=4).set_index("class")
    ins = res.drop(index="out of sample")
    assert (ins.emp_mse < ins.direct_var).all()
    assert (ins.emp_mse / ins.direct_var).mean() < 0.6
    assert (res.rel_bias.abs() < 3 * res.mc_se + 0.01).all(), res.to_string()
    assert res.loc["psi=1", "naive_rel_bias"] < res.loc["psi=1", "rel_bias"] - 0.03


# ---------------------------------------------------------------------------------------------
# the synthetic survey: indicator table + auxiliary file -> EBLUPs, against the population truth
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def region_table():
    from survey.indicators import indicator_table
    from survey.ingest import load

    data = load(ROOT / "specs" / "synthetic.yaml")
    return indicator_table(data, domains=["region"], indicators=["prevalence"], by_victimization=False,
                           publication="none")


def test_synthetic_auxiliary_is_the_population_by_region():
    from survey.synth import REGIONS

    aux = sae.synthetic_auxiliary(seed=1, population_households=100_000)
    assert list(aux["area"]) == list(REGIONS.values())
    assert aux["households"].sum() == 100_000 and aux["share"].sum() == pytest.approx(1.0)
    truth = pd.read_csv(ROOT / "data" / "synthetic" / "truth.csv")
    t = truth[(truth.domain == "region") & (truth.indicator == "prevalence") & (truth.crime_type == "household")]
    # the truth file's denominators are the same population's households by region
    assert dict(zip(t.domain_value, t.denominator)) == dict(zip(aux.area, aux.households))


def test_region_eblups_are_closer_to_the_truth_than_the_direct_estimates(region_table):
    aux = sae.synthetic_auxiliary()
    d = sae.from_indicator_table(region_table, aux, "prevalence", "household", "region")
    f = sae.fay_herriot(d, covariates=["prior_rate"])
    truth = pd.read_csv(ROOT / "data" / "synthetic" / "truth.csv")
    t = truth[(truth.domain == "region") & (truth.indicator == "prevalence") & (truth.crime_type == "household")]
    f = f.merge(t[["domain_value", "value"]], left_on="area", right_on="domain_value")
    assert len(f) == 8 and f["in_sample"].all()
    err_direct = ((f.direct - f.value) ** 2).mean()
    err_eblup = ((f.eblup - f.value) ** 2).mean()
    assert err_eblup < 0.5 * err_direct  # measured: 0.47 vs 2.30 (seed 1)
    # with 8 areas g2 + 2 g3 is large (sigma2_u and beta from 8 points): the estimated MSE is
    # below the direct variance on average, not in every region
    assert f.mse.mean() < (f.direct_se ** 2).mean()


def test_indicator_table_join_and_publication_rule(region_table):
    aux = sae.synthetic_auxiliary()
    aux = pd.concat([aux, pd.DataFrame([{"area": "Islands", "households": 500, "share": 0.0,
                                         "share_urban": 0.1, "deprivation": 0.5, "share_renting": 0.3,
                                         "prior_rate": 12.0}])], ignore_index=True)
    t = region_table.copy()
    north = (t.domain == "region") & (t.domain_value == "North")
    t.loc[north, "suppressed"] = True
    d = sae.from_indicator_table(t, aux, "prevalence", "burglary", "region")
    assert d.set_index("area")[["direct", "direct_se"]].isna().all(axis=1).to_dict() == {
        **{a: False for a in aux.area}, "North": True, "Islands": True}
    f = sae.fay_herriot(d, covariates=["prior_rate"])
    pub = sae.publication_rule(f, cv_bands=(15, 30), max_cv=30)
    assert (pub.loc[~pub.in_sample, "estimate_type"] == "model-based (synthetic)").all()
    sup = f["cv"] * 100 > 30
    assert (pub["suppressed"] == sup).all() and pub.loc[sup, "eblup"].isna().all()
    with pytest.raises(sae.SmallAreaError, match="values not in the auxiliary file's 'area' column: North"):
        sae.from_indicator_table(t, aux[aux.area != "North"], "prevalence", "burglary", "region")


# ---------------------------------------------------------------------------------------------
# notebooks/local.py: the small-area step of batch runs (not in survey.params.NOTEBOOKS), paired, runs with papermill
# ---------------------------------------------------------------------------------------------
def test_local_notebook_pair_in_sync_and_stripped():
    import jupytext
    import nbformat

    py = jupytext.read(ROOT / "notebooks" / "local.py")
    nb = nbformat.read(ROOT / "notebooks" / "local.ipynb", as_version=4)
    assert [c.source for c in py.cells] == [c.source for c in nb.cells], \
        "notebooks/local.py and .ipynb differ: run `jupytext --sync notebooks/local.py`"
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    assert len([c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]) == 1


def test_local_notebook_publishes_small_areas_csv(tmp_path, monkeypatch, region_table):
    """The local notebook on its own (no run folder: it computes the indicator table of its
    parameters, publication rule none) on the default synthetic survey and the population
    auxiliary file: small_areas.csv holds the direct estimates of the table and the EBLUPs of
    a direct fay_herriot call on them."""
    import papermill as pm

    from survey.batch import pin_kernel_environment

    pin_kernel_environment()
    monkeypatch.setenv("SURVEY_PROJECT_ROOT", str(ROOT))
    aux = sae.write_csv(sae.synthetic_auxiliary(), tmp_path / "aux.csv")
    out = tmp_path / "out"
    section = {"indicator": "prevalence", "crime_type": "household", "area": "region", "auxiliary": str(aux),
               "covariates": ["prior_rate"], "method": "REML"}
    pm.execute_notebook(str(ROOT / "notebooks" / "local.ipynb"), str(tmp_path / "local.ipynb"), kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path),
                        parameters={"small_areas": section, "output_dir": str(out), "publication": "none"})
    got = pd.read_csv(out / "small_areas.csv", keep_default_na=False, na_values=[""])
    assert list(got.columns) == sae.PUBLISHED_COLUMNS and len(got) == 8
    assert set(got.method) == {"model-based (Fay–Herriot)"} and not got.suppressed.any()
    direct = region_table[(region_table.crime_type == "household") & (region_table.domain == "region")]
    direct = direct.set_index("domain_value")
    hh = got.set_index("area")
    assert np.allclose(hh["direct"], direct.loc[hh.index, "estimate"], rtol=1e-12)
    assert np.allclose(hh["direct_se"], direct.loc[hh.index, "se"], rtol=1e-12)
    f = sae.fay_herriot(sae.from_indicator_table(region_table, sae.read_auxiliary(aux), "prevalence", "household",
                                                 "region"), covariates=["prior_rate"]).set_index("area")
    for col in ("eblup", "mse", "gamma"):
        assert np.allclose(hh[col], f.loc[hh.index, col], rtol=1e-9), col
    assert set(hh["reliability"]) <= {"high", "moderate", "low"}
    assert (hh["reliability"] == np.where(hh.cv * 100 <= 15, "high", np.where(hh.cv * 100 <= 30, "moderate", "low"))).all()


def test_gvf_smoothed_variances_on_the_synthetic_regions():
    """Every household and personal crime type by region (seed 1), against the population truth:
    the EBLUP's squared error is below the direct estimate's for each crime type, and with
    GVF-smoothed sampling variances it is lower still on average (measured: mean squared error
    0.754 direct, 0.265 EBLUP, 0.182 EBLUP with smoothed variances)."""
    from survey import gvf
    from survey.indicators import indicator_table
    from survey.ingest import load

    t = indicator_table(load(ROOT / "specs" / "synthetic.yaml"), domains=["region", "tenure", "urban"],
                        indicators=["prevalence"], by_victimization=False)
    aux = sae.synthetic_auxiliary()
    crimes = ["household", "burglary", "vehicle_theft", "vandalism", "other_household_theft", "assault", "threats",
              "personal_theft", "fraud"]
    truth = pd.read_csv(ROOT / "data" / "synthetic" / "truth.csv")
    truth = truth[(truth.indicator == "prevalence") & (truth.domain == "region")]
    err = {}
    for smooth in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SurveyWarning)
            r = sae.small_area_table(t, aux, "prevalence", crimes, "region", ["prior_rate"], max_cv=None,
                                     smooth_variances=smooth)
        m = r.merge(truth[["crime_type", "domain_value", "value"]], left_on=["crime_type", "area"],
                    right_on=["crime_type", "domain_value"])
        assert len(m) == 72
        err[smooth] = m.assign(d=(m.direct - m.value) ** 2, e=(m.estimate - m.value) ** 2).groupby("crime_type")[["d", "e"]].mean()
        if smooth:  # the model's SEs are the GVF's: sqrt(b / y p (1 - p)) in %
            g = gvf.fit_table_proportions(t, "prevalence", "household")
            hh = r[r.crime_type == "burglary"].merge(
                t[(t.crime_type == "burglary") & (t.domain == "region")], left_on="area", right_on="domain_value")
            p = hh.estimate_y / 100
            assert np.allclose(hh.direct_se, 100 * np.sqrt(g.b / hh.weighted_base * p * (1 - p)), rtol=1e-12)
            assert hh.se_source.iloc[0].startswith("proportion GVF, b = 31.15 (70 cells")
    raw, smoothed = err[False], err[True]
    assert (raw.e < raw.d).all()
    assert smoothed.e.mean() < 0.8 * raw.e.mean() < 0.5 * raw.d.mean()
