"""ML risk models (survey.risk): weighted fits, PSU-grouped cross-validation, weighted metrics
checked against hand formulas, importance on the synthetic survey whose risk model is known,
save/load, scikit-learn's estimator contract, and every bad input named in a warning or error."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.metrics import log_loss as sk_log_loss

from survey import synth as S
from survey.errors import ColumnNotFoundError, SurveyError, SurveyWarning, WeightError
from survey.ingest import load
from survey.risk import (
    CALIBRATION_COLUMNS,
    IMPORTANCE_COLUMNS,
    METRIC_COLUMNS,
    NOTE,
    PD_COLUMNS,
    ConstantPredictorError,
    MissingValuesWarning,
    RiskModel,
    RiskModelError,
    SeparationWarning,
    SubgroupWarning,
    calibration_table,
    psu_folds,
    weighted_auc,
    weighted_brier,
    weighted_log_loss,
)

SPEC = Path(__file__).resolve().parents[1] / "specs" / "synthetic.yaml"
SEED = 1
HOUSEHOLDS = 10_000  # ~6,900 respondents, ~120 assault victims: enough events to rank factors
TARGET = "victim__assault"
FEATURES = ["age", "sex", "tenure", "depriv_q", "urban", "prior", "noise"]
# small but honest settings for the trees, to keep the module fast
MODEL_PARAMS = {"logistic": {}, "gradient_boosting": {"max_iter": 100, "learning_rate": 0.1},
                "random_forest": {"n_estimators": 50, "max_samples": 0.5}}


# ---------------------------------------------------------------------------------------------
# fixtures: the synthetic survey (known truth), loaded through its spec
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def population() -> S.Population:
    return S.make_population(SEED, 20 * HOUSEHOLDS)


@pytest.fixture(scope="module")
def survey(population, tmp_path_factory):
    root = tmp_path_factory.mktemp("risk")
    out = root / "data" / "synthetic"
    S.write_sample(S.draw_sample(population, HOUSEHOLDS, SEED), out)
    text = SPEC.read_text().replace("../data/synthetic/", f"{out}/")
    # keep the respondent's area deprivation quintile and prior victimization
    text = text.replace("    link: {to: households, on: [hhid]}\n",
                        "    link: {to: households, on: [hhid]}\n    columns: [depriv_q, prevvict]\n", 1)
    spec = root / "synthetic.yaml"
    spec.write_text(text)
    data = load(spec)
    r = data.respondents
    r["prior"] = (r["prevvict"] == 1).astype(float)  # 1 yes, 2 no, 8 don't know
    r["noise"] = np.random.default_rng(99).normal(size=len(r))  # pure noise: no association
    return data


@pytest.fixture(scope="module")
def fitted(survey):
    """The three models fitted on the survey, with held-out permutation importance; the
    warnings each raised."""
    out = {}
    for name, params in MODEL_PARAMS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = RiskModel(name, features=FEATURES, target=TARGET, seed=SEED, model_params=params).fit(survey)
            m.permutation_importance(n_repeats=3)
        out[name] = (m, [w for w in caught if issubclass(w.category, SurveyWarning)])
    return out


def _true_effects(pop: S.Population) -> dict[str, float]:
    """|coefficient| x population SD of each covariate of the assault risk model (the size of
    its contribution to the log-rate), mapped to the survey's predictors."""
    c = pop.coefficients.set_index("crime_type").loc["assault"]
    per = pop.persons
    hh = pop.households.set_index("hhid").loc[per["hhid"]]
    ten = hh["tenure"].to_numpy()
    return {
        "age": abs(c["age10"]) * np.std((per["age"] - 45) / 10),
        "sex": abs(c["male"]) * np.std(per["sex"] == 1),
        "tenure": float(np.std(c["social_renter"] * (ten == 2) + c["private_renter"] * (ten == 3))),
        "depriv_q": abs(c["deprivation"]) * np.std(hh["deprivation"].to_numpy()),
        "urban": abs(c["urban"]) * np.std(hh["urban"].to_numpy() == 1),
        "prior": abs(c["prior"]) * np.std(per["prior"]),
        "noise": 0.0,
    }


def _toy(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """A small stratified cluster sample with a logistic outcome of x and g."""
    rng = np.random.default_rng(seed)
    stratum = np.repeat(np.arange(4), n // 4)
    psu = stratum * 100 + rng.integers(0, 10, n)
    x = rng.normal(size=n)
    g = rng.choice(["a", "b", "c"], n)
    eta = -1.2 + 1.0 * x + 0.8 * (g == "b")
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"stratum": stratum, "psu": psu, "w": rng.uniform(50, 150, n), "x": x,
                         "g": pd.Categorical(g, categories=["a", "b", "c"]), "z": rng.normal(size=n), "y": y})


TOY_DESIGN = {"weights": "w", "strata": "stratum", "psu": "psu"}


def _toy_fit(df, features=("x", "g"), **kw) -> RiskModel:
    return RiskModel(kw.pop("model", "logistic"), features=list(features), target="y", **kw).fit(df, TOY_DESIGN)


# ---------------------------------------------------------------------------------------------
# the ML model ranks the true risk factors first
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODEL_PARAMS))
def test_importance_ranks_the_true_risk_factors_first(fitted, population, name):
    m, caught = fitted[name]
    assert not caught, [str(w.message) for w in caught]  # clean input: no warning at all
    imp = m.importance_
    assert list(imp.columns) == IMPORTANCE_COLUMNS
    assert imp.attrs["note"] == NOTE and (imp["note"] == NOTE).all()
    assert list(imp["rank"]) == list(range(1, len(FEATURES) + 1))
    effects = _true_effects(population)
    coef = population.coefficients.set_index("crime_type").loc["assault"]
    # the largest coefficient (prior victimization, which also marks the unobserved frailty)
    # and the largest contribution (age: coefficient x SD) are the top-ranked factors
    largest_coef = max(["age10", "male", "social_renter", "private_renter", "deprivation", "urban", "prior"],
                       key=lambda k: abs(coef[k]))
    assert largest_coef == "prior"
    assert max(effects, key=effects.get) == "age"
    order = list(imp["feature"])
    assert order[0] == "prior", order
    assert "age" in order[:3], order
    # the pure-noise predictor has negligible importance, below both
    value = imp.set_index("feature")["importance_mean"]
    assert value["noise"] < 0.25 * value["prior"], value
    assert order.index("noise") > order.index("age"), order
    if name == "logistic":
        assert order.index("noise") >= 3, order  # not in the top three


def test_logistic_recovers_the_generating_signs(fitted):
    m, _ = fitted["logistic"]
    c = m.coefficients_.set_index("term")["coefficient"]
    assert c["age"] < 0 and c["sex_Female"] < 0 and c["prior"] > 0 and c["tenure_Social renter"] > 0
    # per SD of age: the generating -0.35 per 10 years times the SD of age/10 (about 1.8)
    assert -1.0 < c["age"] < -0.35
    assert m.coefficients_["note"].iloc[1:].str.len().gt(0).all()


# ---------------------------------------------------------------------------------------------
# metrics and calibration
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODEL_PARAMS))
def test_metrics_table(fitted, survey, name):
    m, _ = fitted[name]
    t = m.metrics_
    assert list(t.columns) == METRIC_COLUMNS
    r = survey.respondents
    overall = t.iloc[0]
    assert (overall["subgroup"], overall["group"]) == ("overall", "all")
    assert overall["n"] == m.n_ == len(r) and m.n_dropped_ == 0
    assert overall["weighted_n"] == pytest.approx(r["wt_person"].sum())  # person weights for assault
    assert overall["events"] == r[TARGET].sum()
    assert 0.65 < overall["auc"] < 0.95
    o = m.oof_
    assert overall["auc"] == pytest.approx(weighted_auc(o["y"], o["predicted"], o["weight"]))
    assert overall["brier"] == pytest.approx(weighted_brier(o["y"], o["predicted"], o["weight"]))
    assert overall["log_loss"] == pytest.approx(weighted_log_loss(o["y"], o["predicted"], o["weight"]))
    # subgroups: the person domains of the spec, every level, adding up to the total
    assert m.unit_ == "person"
    assert m.subgroups_ == ["sex", "age_band", "region", "urban", "tenure", "sex_age"]  # and the cross
    for sub, g in t[t["subgroup"] != "overall"].groupby("subgroup"):
        assert list(g["group"]) == list(r[sub].cat.categories)
        assert g["n"].sum() == overall["n"] and g["events"].sum() == overall["events"]
        assert g["weighted_n"].sum() == pytest.approx(overall["weighted_n"])
    male = t[(t["subgroup"] == "sex") & (t["group"] == "Male")].iloc[0]
    sel = (r.loc[o.index, "sex"] == "Male").to_numpy()
    assert male["auc"] == pytest.approx(weighted_auc(o["y"][sel], o["predicted"][sel], o["weight"][sel]))
    assert male["observed"] == pytest.approx(np.average(o["y"][sel], weights=o["weight"][sel]))


def test_calibration_table_sums(fitted):
    m, _ = fitted["gradient_boosting"]
    cal, met = m.calibration_, m.metrics_
    assert list(cal.columns) == CALIBRATION_COLUMNS
    for (sub, grp), c in cal.groupby(["subgroup", "group"], sort=False):
        row = met[(met["subgroup"] == sub) & (met["group"] == grp)].iloc[0]
        assert c["n"].sum() == row["n"]
        assert c["weighted_n"].sum() == pytest.approx(row["weighted_n"])
        assert (c["weighted_n"] * c["observed"]).sum() == pytest.approx(row["observed"] * row["weighted_n"])
        assert (c["weighted_n"] * c["mean_predicted"]).sum() == pytest.approx(
            row["mean_predicted"] * row["weighted_n"])
        assert (c["bin_low"] < c["bin_high"]).all() and c["bin"].is_monotonic_increasing
        inside = (c["mean_predicted"] >= c["bin_low"] - 1e-12) & (c["mean_predicted"] <= c["bin_high"] + 1e-12)
        assert inside.all()
    overall = cal[cal["subgroup"] == "overall"]
    share = overall["weighted_n"] / overall["weighted_n"].sum()
    assert len(overall) >= 5 and share.max() < 0.35  # weighted-quantile bins of similar weight


def test_calibration_table_by_hand():
    p = np.array([0.1, 0.2, 0.6, 0.9])
    y = np.array([0, 1, 1, 1])
    w = np.array([1.0, 2.0, 1.0, 1.0])
    t = calibration_table(y, p, w, bins=2, strategy="uniform")
    assert list(t["weighted_n"]) == [3.0, 2.0]
    assert t["mean_predicted"].tolist() == pytest.approx([(0.1 + 0.4) / 3, 0.75])
    assert t["observed"].tolist() == pytest.approx([2 / 3, 1.0])
    assert list(t["n"]) == [2, 2]


# ---------------------------------------------------------------------------------------------
# weighted metrics against hand formulas
# ---------------------------------------------------------------------------------------------
def _hand_auc(y, p, w) -> float:
    """Weighted Mann-Whitney: sum over (event i, non-event j) of w_i w_j [p_i > p_j] (+ half
    for ties), over sum of w_i w_j."""
    num = den = 0.0
    for i in range(len(y)):
        if y[i] != 1:
            continue
        for j in range(len(y)):
            if y[j] != 0:
                continue
            ww = w[i] * w[j]
            num += ww * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
            den += ww
    return num / den


def test_weighted_auc_equals_the_weighted_mann_whitney_formula():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.3, 0.4, 0.4, 0.8, 0.2, 0.1, 0.4, 0.7, 0.05])  # ties across classes at 0.4
    w = np.array([2.0, 1.0, 0.5, 3.0, 1.5, 1.0, 4.0, 0.25, 1.0, 2.0])
    assert weighted_auc(y, p, w) == pytest.approx(_hand_auc(y, p, w), abs=1e-12)
    # integer weights = replicated rows
    k = np.array([1, 2, 1, 3, 1, 1, 2, 1, 1, 2])
    assert weighted_auc(y, p, k) == pytest.approx(weighted_auc(np.repeat(y, k), np.repeat(p, k)), abs=1e-12)
    assert np.isnan(weighted_auc([0, 0], [0.1, 0.2], [1, 1]))
    rng = np.random.default_rng(5)
    y2, p2, w2 = rng.integers(0, 2, 60), rng.integers(0, 8, 60) / 8, rng.uniform(0.1, 5, 60)
    assert weighted_auc(y2, p2, w2) == pytest.approx(_hand_auc(y2, p2, w2), abs=1e-12)


def test_weighted_brier_and_log_loss_by_hand():
    y = np.array([1, 0, 0, 1, 0])
    p = np.array([0.8, 0.1, 0.4, 0.3, 0.0])
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.0])
    brier = sum(wi * (pi - yi) ** 2 for yi, pi, wi in zip(y, p, w)) / w.sum()
    assert weighted_brier(y, p, w) == pytest.approx(brier, abs=1e-15)
    eps = np.finfo(float).eps
    q = np.clip(p, eps, 1 - eps)
    ll = -sum(wi * (yi * np.log(qi) + (1 - yi) * np.log(1 - qi)) for yi, qi, wi in zip(y, q, w)) / w.sum()
    assert weighted_log_loss(y, p, w) == pytest.approx(ll, rel=1e-12)
    p2 = np.clip(p, 0.01, 0.99)
    assert weighted_log_loss(y, p2, w) == pytest.approx(sk_log_loss(y, p2, sample_weight=w), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# PSU folds
# ---------------------------------------------------------------------------------------------
def test_psu_folds_never_split_a_psu_and_cover_every_row_once(survey):
    r = survey.respondents
    strata, psu = r["stratum"].to_numpy(), r["psu"].to_numpy()
    folds = psu_folds(strata, psu, n_splits=5, seed=3)
    assert folds.shape == (len(r),) and set(np.unique(folds)) == set(range(5))
    held_out = np.concatenate([np.flatnonzero(folds == k) for k in range(5)])
    assert np.array_equal(np.sort(held_out), np.arange(len(r)))  # each row held out exactly once
    per_psu = pd.Series(folds).groupby(psu).nunique()
    assert (per_psu == 1).all()  # no PSU split
    # each stratum's PSUs spread over the folds (counts differ by at most one)
    units = pd.DataFrame({"s": strata, "p": psu, "f": folds}).drop_duplicates()
    for _, u in units.groupby("s"):
        counts = np.bincount(u["f"], minlength=5)
        assert counts.max() - counts.min() <= 1
    sizes = np.bincount(folds)
    assert sizes.max() / sizes.min() < 1.1
    assert np.array_equal(folds, psu_folds(strata, psu, n_splits=5, seed=3))  # reproducible
    assert not np.array_equal(folds, psu_folds(strata, psu, n_splits=5, seed=4))


def test_fit_uses_psu_folds(fitted, survey):
    m, _ = fitted["logistic"]
    psu = survey.respondents.loc[m.oof_.index, "psu"]
    assert (m.oof_["fold"].groupby(psu.to_numpy()).nunique() == 1).all()
    assert sorted(m.oof_["fold"].unique()) == [1, 2, 3, 4, 5]
    assert m.n_psu_ == survey.respondents["psu"].nunique()


def test_psu_folds_pairs_and_errors():
    # PSU ids only unique within strata: (stratum, psu) is the unit
    strata = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    psu = np.array([1, 1, 2, 2, 1, 1, 2, 2])
    f = psu_folds(strata, psu, n_splits=2, seed=0)
    assert f[0] == f[1] and f[2] == f[3] and f[4] == f[5] and f[6] == f[7]
    assert f[0] != f[2] and f[4] != f[6]
    # no PSU: every row is its own PSU
    assert sorted(np.bincount(psu_folds(None, np.arange(10), 5, 0))) == [2] * 5
    with pytest.raises(RiskModelError, match="only 4 PSUs for 5"):
        psu_folds(strata, psu, n_splits=5)
    with pytest.raises(RiskModelError, match="at least 2"):
        psu_folds(strata, psu, n_splits=1)
    with pytest.raises(RiskModelError, match="PSU: 1 of 8 rows are missing"):
        psu_folds(strata, np.array([1, 1, 2, None, 1, 1, 2, 2], dtype=object), n_splits=2)


# ---------------------------------------------------------------------------------------------
# inputs: SurveyData, DataFrame + design, household crimes
# ---------------------------------------------------------------------------------------------
def test_dataframe_with_design_equals_survey_data(survey, fitted):
    m, _ = fitted["logistic"]
    r = survey.respondents
    kw = dict(features=FEATURES, target=TARGET, seed=SEED, subgroups=["sex"])
    a = RiskModel("logistic", **kw).fit(r, {"weights": "wt_person", "strata": "stratum", "psu": "psu"})
    b = RiskModel("logistic", **kw).fit(r, survey.design("person"))
    c = RiskModel("logistic", **kw).fit(r, sample_weight="wt_person", strata="stratum", psu="psu")
    for other in (a, b, c):
        np.testing.assert_allclose(other.oof_["predicted"], m.oof_["predicted"], rtol=1e-10)
    np.testing.assert_allclose(a.metrics_["auc"], m.metrics_.iloc[:3]["auc"], rtol=1e-10)


def test_household_crime_uses_household_weights(survey):
    m = RiskModel("logistic", features=["tenure", "urban", "depriv_q"], target="victim__burglary").fit(survey)
    assert m.unit_ == "household"
    assert m.weighted_n_ == pytest.approx(survey.respondents["wt_household"].sum())
    assert "sex" not in m.subgroups_ and "tenure" in m.subgroups_  # sex is a person domain


def test_sklearn_calling_convention_fit_x_y_sample_weight():
    df = _toy()
    ref = _toy_fit(df, seed=2)
    m = RiskModel("logistic", features=["x", "g"], target="unused", seed=2).fit(
        df[["x", "g"]], df["y"], sample_weight=df["w"].to_numpy(), strata=df["stratum"].to_numpy(),
        psu=df["psu"].to_numpy())
    np.testing.assert_allclose(m.oof_["predicted"], ref.oof_["predicted"], rtol=1e-12)
    assert m.score(df, df["y"], sample_weight=df["w"]) == pytest.approx(
        weighted_auc(df["y"], m.predict_proba(df)[:, 1], df["w"]))


# ---------------------------------------------------------------------------------------------
# partial dependence, importance options
# ---------------------------------------------------------------------------------------------
def test_partial_dependence_is_a_weighted_average(fitted):
    m, _ = fitted["logistic"]
    pdp = m.partial_dependence("age")
    assert list(pdp.columns) == PD_COLUMNS and pdp.attrs["note"] == NOTE and (pdp["note"] == NOTE).all()
    assert pdp["value"].is_monotonic_increasing and len(pdp) == 20
    assert pdp["average_prediction"].is_monotonic_decreasing  # the generating age effect is negative
    X, w = m._fit_data["X"], m._fit_data["w"]
    v = pdp["value"].iloc[3]
    by_hand = np.sum(w * m.pipeline_.predict_proba(X.assign(age=v))[:, 1]) / np.sum(w)
    assert pdp["average_prediction"].iloc[3] == pytest.approx(by_hand, rel=1e-12)
    ten = m.partial_dependence("tenure")
    assert list(ten["value"]) == ["Owner", "Social renter", "Private renter"]
    assert ten.set_index("value")["average_prediction"].idxmax() == "Social renter"
    assert set(m.partial_dependence_) == {"age", "tenure"}


def test_permutation_importance_options():
    df = _toy()
    m = _toy_fit(df, features=("x", "g", "z"), seed=4)
    a = m.permutation_importance(on="fit", scoring="neg_brier_score", n_repeats=2)
    assert a["on"].eq("fit").all() and a["scoring"].eq("neg_brier_score").all()
    assert a["feature"].iloc[0] == "x"
    b = m.permutation_importance(n_repeats=2)
    pd.testing.assert_frame_equal(b, m.permutation_importance(n_repeats=2))  # seeded
    assert b["on"].eq("held_out").all()
    with pytest.raises(RiskModelError, match="scoring must be one of"):
        m.permutation_importance(scoring="accuracy")


def test_same_seed_same_results_other_seed_other_folds():
    df = _toy()
    a = _toy_fit(df, model="gradient_boosting", seed=7, model_params={"max_iter": 30})
    b = _toy_fit(df, model="gradient_boosting", seed=7, model_params={"max_iter": 30})
    pd.testing.assert_frame_equal(a.oof_, b.oof_)
    pd.testing.assert_frame_equal(a.metrics_, b.metrics_)
    c = _toy_fit(df, model="gradient_boosting", seed=8, model_params={"max_iter": 30})
    assert not np.array_equal(a.oof_["fold"], c.oof_["fold"])


# ---------------------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODEL_PARAMS))
def test_save_load_round_trip(fitted, survey, tmp_path, name):
    m, _ = fitted[name]
    out = m.save(tmp_path / "risk" / name)
    files = {p.name for p in out.iterdir()}
    assert {"model.joblib", "metrics.csv", "calibration.csv", "accounting.csv", "importance.csv",
            "model.json"} <= files
    meta = json.loads((out / "model.json").read_text())
    assert meta["seed"] == SEED and meta["params"]["model"] == name and meta["target"] == TARGET
    assert meta["versions"]["sklearn"] == sklearn.__version__
    assert meta["n"] == m.n_ and meta["n_dropped"] == 0 and meta["note"] == NOTE
    assert meta["metrics_overall"]["auc"] == pytest.approx(m.metrics_["auc"].iloc[0])
    back = RiskModel.load(out)
    np.testing.assert_array_equal(back.predict_proba(survey), m.predict_proba(survey))
    pd.testing.assert_frame_equal(back.metrics_, m.metrics_)
    saved = pd.read_csv(out / "metrics.csv", keep_default_na=False, na_values=[""])
    np.testing.assert_allclose(saved["auc"], m.metrics_["auc"], rtol=1e-12)
    imp = pd.read_csv(out / "importance.csv")
    assert list(imp["feature"]) == list(m.importance_["feature"]) and (imp["note"] == NOTE).all()
    assert not hasattr(back, "oof_") and back._fit_data is None  # no microdata in the file
    with pytest.raises(RiskModelError, match="pass data="):
        back.partial_dependence("age")
    # overwrite in place, atomically: no temporary folder left behind
    m.save(out)
    assert sorted(p.name for p in out.parent.iterdir()) == [name]


# ---------------------------------------------------------------------------------------------
# scikit-learn's estimator contract
# ---------------------------------------------------------------------------------------------
def test_sklearn_contract():
    from sklearn.utils.estimator_checks import (
        check_do_not_raise_errors_in_init_or_set_params,
        check_estimator_cloneable,
        check_estimator_repr,
        check_get_params_invariance,
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
        check_set_params,
    )
    from sklearn.utils.validation import check_is_fitted

    est = RiskModel("logistic", features=["x", "g"], target="y", model_params={"C": 0.5})
    for check in (check_parameters_default_constructible, check_no_attributes_set_in_init,
                  check_get_params_invariance, check_set_params, check_estimator_repr, check_estimator_cloneable,
                  check_do_not_raise_errors_in_init_or_set_params):
        check("RiskModel", est)
    params = est.get_params()
    assert params["model_params"] == {"C": 0.5}
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert twin.set_params(model="gradient_boosting", model_params={"max_iter": 20}) is twin
    assert twin._estimator().max_iter == 20 and twin._estimator().random_state == 0
    df = _toy()
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in est.get_params().items()}
    assert est.fit(df, TOY_DESIGN) is est
    assert est.get_params() == before  # fit does not touch the parameters
    check_is_fitted(est)
    assert est.pipeline_[-1].C == 0.5
    assert not hasattr(clone(est), "pipeline_")
    assert list(est.feature_names_in_) == ["x", "g"] and est.n_features_in_ == 2


# ---------------------------------------------------------------------------------------------
# bad input: a clear warning or error naming the term; nothing silently dropped
# ---------------------------------------------------------------------------------------------
def test_perfect_separation_names_the_predictor():
    df = _toy()
    df["leak"] = df["y"] * 2 + np.random.default_rng(1).uniform(0, 0.5, len(df))
    with pytest.warns(SeparationWarning) as rec:
        _toy_fit(df, features=("x", "leak"))
    assert [str(w.message) for w in rec] == [
        f"predictor 'leak' separates 'y' perfectly: every event and no non-event has 'leak' > "
        f"{df.loc[df['y'] == 0, 'leak'].max():g} (is it derived from the outcome?)"]
    df["leak_cat"] = np.where(df["y"] == 1, "victim", "not")
    with pytest.warns(SeparationWarning, match="predictor 'leak_cat' separates 'y' perfectly"):
        _toy_fit(df, features=("x", "leak_cat"), model="random_forest", model_params={"n_estimators": 10})
    # quasi-complete separation: a small level with no event (logistic)
    g = df["g"].astype(str).to_numpy()
    g[np.flatnonzero(df["y"] == 0)[:6]] = "d"
    df["g2"] = g
    with pytest.warns(SeparationWarning, match="predictor 'g2': quasi-complete separation at level.*'d': 0 events in 6"):
        _toy_fit(df, features=("x", "g2"))


def test_constant_predictor_is_an_error_naming_it():
    df = _toy().assign(k=3.0)
    with pytest.raises(ConstantPredictorError, match="predictor 'k' is constant: all 800 rows fitted have the value 3"):
        _toy_fit(df, features=("x", "k"))
    df["kc"] = pd.Categorical(["a"] * len(df), categories=["a", "b"])
    with pytest.raises(SurveyError, match="predictor 'kc' is constant"):
        _toy_fit(df, features=("x", "kc"))


def test_subgroup_level_with_no_case_or_no_event_is_a_nan_row_with_a_note():
    df = _toy()
    sub = np.where(np.arange(len(df)) % 2 == 0, "p", "q")
    none = np.flatnonzero(df["y"] == 0)[:40]
    sub[none] = "r"  # level r: 40 rows, no event
    df["sub"] = pd.Categorical(sub, categories=["p", "q", "r", "s"])  # level s: no case at all
    with pytest.warns(SubgroupWarning, match="sub=r \\(no events in this group\\).*sub=s \\(no cases in this group\\)"):
        m = _toy_fit(df, subgroups=["sub"])
    t = m.metrics_.set_index(["subgroup", "group"])
    assert t.loc[("sub", "s"), "n"] == 0 and np.isnan(t.loc[("sub", "s"), "auc"])
    assert t.loc[("sub", "s"), "note"] == "no cases in this group: metrics undefined"
    assert t.loc[("sub", "r"), "n"] == 40 and np.isnan(t.loc[("sub", "r"), "auc"])
    assert t.loc[("sub", "r"), "brier"] >= 0 and "no events" in t.loc[("sub", "r"), "note"]
    assert t.loc[("sub", "p"), "auc"] > 0.5
    assert t.xs("sub")["n"].sum() == t.loc[("overall", "all"), "n"]


def test_missing_predictors_drop_rows_with_a_count_or_impute():
    df = _toy()
    df.loc[[3, 10, 11], "x"] = np.nan
    df.loc[[11, 12], "g"] = np.nan
    with pytest.warns(MissingValuesWarning, match=r"4 of 800 rows dropped .*'x' 3, 'g' 2"):
        m = _toy_fit(df)
    assert m.n_dropped_ == 4 and m.n_ == 796 and m.n_missing_ == {"x": 3, "g": 2}
    acc = m.accounting_.set_index("step")
    assert acc.loc["missing predictors", "rows"] == 4 and acc.loc["fitted", "rows"] == 796
    assert acc.loc["input", "rows"] == 800
    with pytest.warns(MissingValuesWarning, match="2 of 4 rows have missing predictors"):
        p = m.predict_proba(df.loc[[0, 1, 3, 12]])
    assert np.isnan(p[2:]).all() and not np.isnan(p[:2]).any()
    with pytest.warns(MissingValuesWarning, match=r"imputed in 4 of 800 rows \('x' 3, 'g' 2\)"):
        mi = _toy_fit(df, impute=True)
    assert mi.n_ == 800 and mi.n_dropped_ == 0 and "(missing)" in mi.categories_["g"]
    assert not np.isnan(mi.predict_proba(df)).any()


def test_missing_target_and_zero_weights_are_counted():
    df = _toy()
    df.loc[[0, 1], "y"] = np.nan
    df.loc[[5], "w"] = 0.0
    with pytest.warns(MissingValuesWarning, match="target 'y' is missing for 2 of 799 rows"):
        m = _toy_fit(df)
    acc = m.accounting_.set_index("step")["rows"]
    assert acc["zero weight"] == 1 and acc["missing target"] == 2 and acc["fitted"] == 797
    assert m.n_dropped_ == 3 and m.n_ + m.n_dropped_ == m.n_input_


def test_other_bad_inputs_are_clear_errors():
    df = _toy()
    with pytest.raises(ColumnNotFoundError, match="variable 'X' .*did you mean 'x'"):
        _toy_fit(df, features=("X", "g"))
    with pytest.raises(RiskModelError, match="target 'z' must be 0/1: 800 of 800 rows hold other values"):
        RiskModel(features=["x"], target="z").fit(df, TOY_DESIGN)
    with pytest.raises(RiskModelError, match="model must be one of logistic, gradient_boosting, random_forest"):
        _toy_fit(df, model="svm")
    with pytest.raises(RiskModelError, match="'alpha' not a parameter of LogisticRegression"):
        _toy_fit(df, model_params={"alpha": 1.0})
    with pytest.raises(RiskModelError, match="seed="):
        _toy_fit(df, model="random_forest", model_params={"random_state": 3})
    with pytest.raises(RiskModelError, match="the target 'y' is also in features"):
        _toy_fit(df, features=("x", "y"))
    with pytest.raises(WeightError, match="weight 'w': 1 of 800 rows are negative"):
        _toy_fit(df.assign(w=np.r_[-1.0, df["w"].to_numpy()[1:]]))
    with pytest.raises(RiskModelError, match="target 'y' has no events among the 800 rows"):
        _toy_fit(df.assign(y=0.0))
    with pytest.raises(RiskModelError, match="only 40 PSUs for 50 cross-validation folds"):
        _toy_fit(df, n_splits=50)
    with pytest.warns(SurveyWarning, match="no survey weights given"):
        with pytest.warns(SurveyWarning, match="no PSU given"):
            RiskModel(features=["x", "g"], target="y").fit(df)


# ---------------------------------------------------------------------------------------------
# the risk notebook in a run: a model that cannot be fitted is never silent
# ---------------------------------------------------------------------------------------------
def _perception_project(tmp_path, on_failure):
    import yaml
    from test_models import perception_spec

    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    spec = perception_spec(root / "data")
    s = yaml.safe_load(spec.read_text())
    s["domains"] = {k: v for k, v in s["domains"].items() if k in ("sex", "age_band", "region")}
    spec.write_text(yaml.safe_dump(s, sort_keys=False))
    params = {"name": f"perception-{on_failure}", "spec": str(spec), "notebooks": ["risk"],
              "risk_crime_types": ["personal"], "on_model_failure": on_failure,
              "models": [{"name": "unsafe_after_dark", "outcome": "not safe_dark",
                          "predictors": ["victim:personal", "sex", "age_band", "region"]},
                         {"name": "piracy_risk", "outcome": "victim:piracy", "predictors": ["sex"]}]}
    pfile = root / f"{params['name']}.yaml"
    pfile.write_text(yaml.safe_dump(params, sort_keys=False))
    return root, pfile


@pytest.mark.parametrize("on_failure", ["fail", "record"])
def test_risk_run_with_a_model_that_cannot_be_fitted(tmp_path, on_failure):
    """fail: the run fails, its one line names the model, the outcome and why, and no output
    folder is published; record: the run succeeds with a 'not fitted' row in risk_models.csv,
    risk_model_failures.csv (in the manifest's outputs) and the reason in the report."""
    from survey.batch import execute_run, failure_line

    root, pfile = _perception_project(tmp_path, on_failure)
    res = execute_run(str(pfile), notebook_dir=str(Path(__file__).resolve().parents[1] / "notebooks"),
                      root=str(root), redirect_stderr=False)
    out = root / "outputs" / f"perception-{on_failure}"
    if on_failure == "fail":
        assert res["status"] == "failed"
        line = failure_line(res)
        assert "\n" not in line
        assert "ModelFitError" in line and "piracy_risk" in line and "victim:piracy" in line and "constant" in line
        assert not out.exists()
        return
    assert res["status"] == "succeeded", failure_line(res)
    models = pd.read_csv(out / "risk_models.csv")
    assert set(models.model) == {"risk_personal", "unsafe_after_dark", "piracy_risk"}
    bad = models[models.model == "piracy_risk"]
    assert list(bad.status) == ["not fitted"] and "constant" in bad.note.iloc[0]
    assert set(models[models.model != "piracy_risk"].status) == {"fitted"}
    # crime_type marks the victimization risk models only (readers select a crime's risk model by it)
    assert dict(models.groupby("model").crime_type.first().fillna("")) == {
        "risk_personal": "personal", "unsafe_after_dark": "", "piracy_risk": ""}
    # the empty region category is stated and never the reference
    fitted = models[(models.status == "fitted") & models.term.str.startswith("C(region)")]
    assert set(fitted.reference) == {"Region: North (reference)"}
    assert set(fitted.dropped_categories) == {"Region: Offshore islands"}
    failures = pd.read_csv(out / "risk_model_failures.csv")
    assert list(failures.model) == ["piracy_risk"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "risk_model_failures.csv" in {o["path"] for o in manifest["outputs"]}
    assert [f["model"] for f in manifest["model_failures"]] == ["piracy_risk"]
    assert "constant" in manifest["model_failures"][0]["reason"]
    assert manifest["parameters"]["resolved"]["on_model_failure"] == "record"
    html = (out / "risk.html").read_text()
    assert "Models that could not be fitted" in html and "piracy_risk" in html
