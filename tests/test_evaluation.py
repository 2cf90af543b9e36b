"""Design-based difference-in-differences (survey.evaluation): the models against R's
``svyglm``/``regTermTest`` (tests/reference/make_did.R, fixtures under
tests/reference/fixtures/did/), recovery of a known programme effect from synthetic pooled
waves, a fast coverage run (the full one: benchmarks/evaluation_coverage.py), the delta-method
SE of the prevalence effect against an independent numerical linearization, and refusals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import survey as sv
from survey.evaluation import EFFECT_COLUMNS, EvaluationError, did, simulate_pooled_waves

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"
FIX = REF / "fixtures" / "did"
REL = 1e-6


def _read(path, text):
    return pd.read_csv(path, keep_default_na=False, na_values=["NA"], dtype={c: str for c in text})


R_COEF = _read(FIX / "r_did.csv", ["case", "term"])
R_TESTS = _read(FIX / "r_did_tests.csv", ["case", "terms"])


def pooled():
    return pd.read_csv(REF / "data" / "did_pooled.csv")


def design(kind):
    d = sv.Design(pooled(), strata="stratum", psu="area", weights="weight")
    return d if kind == "taylor" else sv.as_replicate(d, method="JKn")


def test_fixture_data_is_the_documented_draw():
    """did_pooled.csv is simulate_pooled_waves(...) as make_did.R documents (the generator is
    deterministic)."""
    df = simulate_pooled_waves(n_strata=5, areas_per_stratum=8, respondents=25, waves=(2019, 2020, 2021, 2022),
                               start=2021, seed=11)
    df["tp"] = df.treated * df.post
    pd.testing.assert_frame_equal(df, pooled(), check_dtype=False)


@pytest.mark.parametrize("kind", ["taylor", "jkn"])
@pytest.mark.parametrize("family", ["gaussian", "quasibinomial"])
def test_did_models_match_r_svyglm(kind, family):
    model = "linear" if family == "gaussian" else "logistic"
    r = did(design(kind), "victim", "treated", "wave", start=2021, model=model, covariates="C(sex)")
    want = R_COEF[R_COEF.case == f"{kind}_{family}_did"]
    fit = r.fit
    # same terms in the same order: intercept, waves, treated, treated x post, sex
    assert len(fit.coef) == len(want)
    assert np.allclose(fit.coef.to_numpy(), want.estimate.to_numpy(), rtol=REL, atol=1e-12)
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    assert np.allclose(se, want.se.to_numpy(), rtol=REL)
    assert fit.df_residual == want.df.iloc[0]
    eff = r.effects.iloc[0]
    tp = want.set_index("term").loc["tp"]
    assert np.isclose(eff.effect, tp.estimate, rtol=REL) and np.isclose(eff.se, tp.se, rtol=REL)
    assert eff.df == tp.df
    # the pre-trend check: R's model with t2019 and its regTermTest
    pre = R_COEF[R_COEF.case == f"{kind}_{family}_pretrend"].set_index("term").loc["t2019"]
    pt = r.pretrend_terms.iloc[0]
    assert pt.wave == 2019
    assert np.isclose(pt.estimate, pre.estimate, rtol=REL) and np.isclose(pt.se, pre.se, rtol=REL)
    test = R_TESTS[R_TESTS.case == f"{kind}_{family}_pretrend"].iloc[0]
    assert np.isclose(r.pretrend.F.iloc[0], test.F, rtol=REL)
    assert np.isclose(r.pretrend.p_value.iloc[0], test.p_value, rtol=1e-5)
    assert r.pretrend.df2.iloc[0] == test.df2
    assert list(r.effects.columns) == EFFECT_COLUMNS


def test_recovers_known_effect_linear_and_logistic():
    df = simulate_pooled_waves(n_strata=8, areas_per_stratum=12, respondents=60, effect=-0.06, seed=5)
    d = sv.Design(df, strata="stratum", psu="area", weights="weight")
    lin = did(d, "victim", "treated", "wave", start=3)
    e = lin.effects.iloc[0]
    assert e.ci_low <= -0.06 <= e.ci_high
    assert e.ci_high < 0  # the effect is detected
    assert abs(e.effect + 0.06) < 2.5 * e.se
    log = did(d, "victim", "treated", "wave", start=3, model="logistic")
    att = log.effects.set_index("estimand").loc["att_prevalence"]
    assert att.ci_low <= -0.06 <= att.ci_high
    assert abs(att.effect - e.effect) < 0.25 * e.se  # both read the same contrast on this scale
    assert log.effects.set_index("estimand").loc["did_log_odds_ratio", "effect"] < 0


def test_event_study_and_pretrend_detects_diverging_trends():
    df = simulate_pooled_waves(n_strata=8, areas_per_stratum=12, respondents=60, effect=-0.05, seed=7)
    d = sv.Design(df, strata="stratum", psu="area", weights="weight")
    r = did(d, "victim", "treated", "wave", start=3, event_study=True)
    es = r.event_study
    assert list(es.wave) == [1, 2, 3, 4] and es.reference.tolist() == [False, True, False, False]
    post = es[es.post]
    assert ((post.ci_low <= -0.05) & (-0.05 <= post.ci_high)).all()
    assert r.pretrend.p_value.iloc[0] > 0.05
    # treated areas drifting up by 8 points per wave before (and after) the start: the
    # pre-trend test rejects
    bad = simulate_pooled_waves(n_strata=8, areas_per_stratum=12, respondents=60, effect=-0.05, pretrend=0.08,
                                seed=7)
    rb = did(sv.Design(bad, strata="stratum", psu="area", weights="weight"), "victim", "treated", "wave", start=3)
    assert rb.pretrend.p_value.iloc[0] < 0.01


def test_att_prevalence_delta_method_equals_numerical_linearization():
    """The delta-method SE of the prevalence effect against an independent linearization:
    without fpc the Taylor variance depends on the PSU totals of the scores only, and a PSU's
    total is the derivative of the whole estimator (refit included) when all its weights are
    scaled by (1 + e)."""
    df = simulate_pooled_waves(n_strata=4, areas_per_stratum=6, respondents=20, seed=3)

    def att(scale_area=None, e=0.0):
        w = df["weight"].to_numpy(float).copy()
        if scale_area is not None:
            w[df["area"].to_numpy() == scale_area] *= 1 + e
        d = sv.Design(df.assign(wt=w), strata="stratum", psu="area", weights="wt")
        r = did(d, "victim", "treated", "wave", start=3, model="logistic")
        return r.effects.set_index("estimand").loc["att_prevalence"]

    ref = att()
    areas = sorted(df["area"].unique())
    eps = 1e-5
    tot = np.array([(att(a, eps).effect - att(a, -eps).effect) / (2 * eps) for a in areas])
    strat = df.groupby("area")["stratum"].first().loc[areas].to_numpy()
    v = 0.0
    for h in np.unique(strat):
        z = tot[strat == h]
        v += len(z) / (len(z) - 1) * np.sum((z - z.mean()) ** 2)
    assert np.isclose(np.sqrt(v), ref.se, rtol=1e-5)


def _bench():
    spec = importlib.util.spec_from_file_location("evaluation_coverage", ROOT / "benchmarks" / "evaluation_coverage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fast_coverage():
    """150 draws (fixed seeds) of the benchmark's simulation, linear DiD: the coverage of the
    true effect is compatible with 93-97% within 3 Monte Carlo SEs, the SEs match the spread,
    the estimate is unbiased.  The 1000-draw run is in benchmarks/README.md."""
    draws = 150
    res = _bench().coverage(draws=draws, seed=4242, models=("linear",), respondents=15)["linear"]
    mc = np.sqrt(0.95 * 0.05 / draws)
    assert 0.93 - 3 * mc <= res["coverage"] <= 0.97 + 3 * mc, res
    assert 0.8 < res["se_over_sd"] < 1.25, res
    assert abs(res["mean_estimate"] - res["truth"]) < 3 * res["sd_estimate"] / np.sqrt(draws), res


def test_refusals():
    df = pooled()
    d = sv.Design(df, strata="stratum", psu="area", weights="weight")
    with pytest.raises(EvaluationError, match="start 2030 leaves 4 pre and 0 post"):
        did(d, "victim", "treated", "wave", start=2030)
    bad = df.assign(tr2=df.treated * 2)
    with pytest.raises(EvaluationError, match="'tr2' must be 0/1.*2000 of 4000 rows"):
        did(sv.Design(bad, strata="stratum", psu="area", weights="weight"), "victim", "tr2", "wave", start=2021)
    with pytest.raises(EvaluationError, match="logistic model needs a 0/1 outcome"):
        did(d, "incidents", "treated", "wave", start=2021, model="logistic")
    with pytest.raises(EvaluationError, match="outcome column 'nope'"):
        did(d, "nope", "treated", "wave", start=2021)
    none = df.assign(t0=0)
    with pytest.raises(EvaluationError, match="no treated respondent before"):
        did(sv.Design(none, strata="stratum", psu="area", weights="weight"), "victim", "t0", "wave", start=2021)


# ---------------------------------------------------------------------------------------------
# the stand-alone notebook (not in survey.params.NOTEBOOKS: run on its own)
# ---------------------------------------------------------------------------------------------
def test_notebook_pair_in_sync_with_one_parameters_cell():
    import jupytext
    import nbformat

    py = jupytext.read(ROOT / "notebooks" / "evaluation.py")
    nb = nbformat.read(ROOT / "notebooks" / "evaluation.ipynb", as_version=4)
    assert [c.source for c in py.cells] == [c.source for c in nb.cells], \
        "notebooks/evaluation.py and .ipynb differ: run `jupytext --sync notebooks/evaluation.py`"
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    from survey import params as sp

    assert "evaluation" not in sp.NOTEBOOKS


def test_notebook_runs_with_papermill(tmp_path):
    import papermill as pm

    from survey.batch import pin_kernel_environment

    pin_kernel_environment()
    out = tmp_path / "out"
    pm.execute_notebook(str(ROOT / "notebooks" / "evaluation.ipynb"), str(tmp_path / "evaluation.ipynb"),
                        kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
                        parameters={"output_dir": str(out), "programme_cost": 1_000_000.0})
    eff = pd.read_csv(out / "evaluation_effects.csv")
    cb = pd.read_csv(out / "evaluation_cost_benefit.csv").set_index("quantity")
    # the demo: simulate_pooled_waves(effect=-0.05, seed=1), linear DiD, 20,000 exposed, burglary unit cost
    df = simulate_pooled_waves(effect=-0.05, seed=1)
    ref = did(sv.Design(df, strata="stratum", psu="area", weights="weight"), "victim", "treated", "wave", start=3)
    assert np.isclose(eff.effect.iloc[0], ref.effects.effect.iloc[0])
    assert np.isclose(cb.loc["benefit_cost_ratio", "estimate"], -ref.effects.effect.iloc[0] * 20_000 * 5930 / 1e6)
    assert (out / "evaluation_event_study.csv").is_file()


def test_att_prevalence_replicate_se_by_independent_refits():
    """Replicate SE of the prevalence effect: every replicate refitted from scratch by the
    survey GLM on a design weighted by that replicate's column, the effect recomputed by hand
    (mean over treated-after respondents of expit(eta) - expit(eta - tau)), combined with the
    JKn formula; and close to the Taylor SE."""
    from scipy.special import expit

    taylor = design("taylor")
    rep = design("jkn")
    r = did(rep, "victim", "treated", "wave", start=2021, model="logistic")
    got = r.effects.set_index("estimand").loc["att_prevalence"]
    df = pooled()
    df["did_wave"] = df["wave"].astype(str)
    tp = (df.treated * df.post).to_numpy() == 1
    formula = "victim ~ C(did_wave) + treated + tp"

    def att(w):
        d = sv.Design(df.assign(wr=w), weights="wr")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = d.glm(formula, family="binomial")
        eta = fit.predict(type="link")
        tau = fit.coef["tp"]
        return np.sum(w[tp] * (expit(eta[tp]) - expit(eta[tp] - tau))) / w[tp].sum()

    full = att(df["weight"].to_numpy(float))
    reps = np.array([att(rep.repw[:, j + 1]) for j in range(rep.n_replicates)])
    v = rep.scale * np.sum(rep.rscales * (reps - reps.mean()) ** 2)
    assert np.isclose(got.effect, full, rtol=1e-8)
    assert np.isclose(got.se, np.sqrt(v), rtol=1e-6)
    lin = did(taylor, "victim", "treated", "wave", start=2021, model="logistic").effects.set_index("estimand")
    assert abs(lin.loc["att_prevalence", "se"] / got.se - 1) < 0.1


# ---------------------------------------------------------------------------------------------
# staggered starts
# ---------------------------------------------------------------------------------------------
R_STAG = pd.read_csv(FIX / "r_did_staggered.csv")


def staggered(kind):
    df = pd.read_csv(REF / "data" / "did_staggered.csv")
    d = sv.Design(df, strata="stratum", psu="area", weights="weight")
    return d if kind == "taylor" else sv.as_replicate(d, method="JKn")


def test_staggered_fixture_is_the_documented_draw():
    from survey.evaluation import simulate_staggered_waves

    df = simulate_staggered_waves(n_strata=5, areas_per_stratum=8, respondents=20,
                                  waves=(2018, 2019, 2020, 2021, 2022), cohorts={2020: -0.05, 2021: -0.10}, seed=21)
    pd.testing.assert_frame_equal(df, pd.read_csv(REF / "data" / "did_staggered.csv"), check_dtype=False)


@pytest.mark.parametrize("kind", ["taylor", "jkn"])
def test_staggered_twfe_and_group_time_match_r_svyglm(kind):
    """tests/reference/make_did_staggered.R: the TWFE coefficient (svyglm with wave and cohort
    effects) and every ATT(g, t) (svyglm of the saturated 2 x 2 on subset(design, ...)): the
    estimates, SEs and residual df."""
    from survey.evaluation import GROUP_TIME_COLUMNS, staggered_did

    r = staggered_did(staggered(kind), "victim", "wave", "first")
    tw = R_STAG[R_STAG.case == f"{kind}_twfe"].iloc[0]
    e = r.effects.set_index("estimand").loc["twfe"]
    assert np.isclose(e.effect, tw.estimate, rtol=REL) and np.isclose(e.se, tw.se, rtol=REL) and e.df == tw.df
    want = R_STAG[R_STAG.case == f"{kind}_att"].reset_index(drop=True)
    g = r.group_time
    assert list(g.columns) == GROUP_TIME_COLUMNS
    assert g.cohort.tolist() == want.cohort.tolist() and g.wave.tolist() == want.wave.tolist()
    assert np.allclose(g.estimate, want.estimate, rtol=REL)
    assert np.allclose(g.se, want.se, rtol=REL)
    assert (g.df.to_numpy() == want.df.to_numpy()).all()
    assert (g.base_wave == g.cohort - 1).all()  # the last wave before each cohort's start
    assert (g.post == (g.wave >= g.cohort)).all() and (~g.post).sum() == 3  # placebos: 2018 (2020), 2018-19 (2021)
    # the average of the post cells: weights = treated weighted counts, SE from the joint
    # covariance (whose diagonal is the cells' own variances)
    assert np.allclose(np.sqrt(np.diag(r.vcov)), g.se, rtol=1e-10)
    a = np.where(g.post, g.weight, 0) / g.weight[g.post].sum()
    avg = r.effects.set_index("estimand").loc["att_average"]
    assert np.isclose(avg.effect, a @ g.estimate) and np.isclose(avg.se, np.sqrt(a @ r.vcov @ a))
    # the placebo test: Wald F on the placebo cells' joint covariance
    pre = np.flatnonzero(~g.post)
    b = g.estimate.to_numpy()[pre]
    dd = {"taylor": 22, "jkn": 26}[kind]  # the cells' residual df
    f = b @ np.linalg.solve(r.vcov[np.ix_(pre, pre)], b) / 3 * (dd - 3 + 1) / dd  # adjusted, on (3, dd - 2) df
    assert np.isclose(r.pretrend.F.iloc[0], f) and r.pretrend.df1.iloc[0] == 3 and r.pretrend.df2.iloc[0] == dd - 2
    from scipy import stats

    assert np.isclose(r.pretrend.p_value.iloc[0], stats.f.sf(f, 3, dd - 2))


def test_did_with_a_start_per_area_is_staggered_did():
    from survey.evaluation import staggered_did

    d = staggered("taylor")
    df = d.data
    starts = df.dropna(subset=["first"]).groupby("area")["first"].first().to_dict()
    r = did(d, "victim", "treated", "wave", start=starts, group="area")
    ref = staggered_did(d, "victim", "wave", "first")
    pd.testing.assert_frame_equal(r.group_time, ref.group_time)
    with pytest.raises(EvaluationError, match="needs group="):
        did(d, "victim", "treated", "wave", start=starts)
    wrong = {k: v for k, v in list(starts.items())[1:]}  # one treated area without a start
    with pytest.raises(EvaluationError, match="100 of 4000 rows are treated without a start"):
        did(d, "victim", "treated", "wave", start=wrong, group="area")


def test_staggered_coverage_of_known_cohort_effects():
    """300 draws (fixed seeds) of simulate_staggered_waves with cohort effects -0.04 (from wave
    3) and -0.08 (from wave 4): the 95% intervals of the five ATT(g, t) cover the known effects
    in 93-97% of the 1,500 cell-draws (measured 94.3%; each cell 93.0-96.0%), the weighted
    average covers its truth (the same weights applied to the known effects) 95.7%; SE/SD
    0.96-1.07.  The three placebo cells (before the starts) cover 0 in 93.3% of the draws; their
    joint adjusted Wald test rejects 8.3% of the time at 5% (slightly liberal)."""
    from survey.evaluation import simulate_staggered_waves, staggered_did

    truth = {3: -0.04, 4: -0.08}
    hits, hit_avg, est, ses, placebo, reject = [], [], [], [], [], []
    for s in range(300):
        df = simulate_staggered_waves(seed=1000 + s, respondents=15)
        r = staggered_did(sv.Design(df, strata="stratum", psu="area", weights="weight"), "victim", "wave", "first")
        g = r.group_time[r.group_time.post]
        tr = g.cohort.map(truth).to_numpy()
        hits.append(((g.ci_low <= tr) & (tr <= g.ci_high)).to_numpy())
        avg = r.effects.set_index("estimand").loc["att_average"]
        ta = float(g.weight @ tr / g.weight.sum())
        hit_avg.append(avg.ci_low <= ta <= avg.ci_high)
        est.append(g.estimate.to_numpy())
        ses.append(g.se.to_numpy())
        pl = r.group_time[~r.group_time.post]
        placebo.append(((pl.ci_low <= 0) & (0 <= pl.ci_high)).to_numpy())
        reject.append(r.pretrend.p_value.iloc[0] < 0.05)
    assert 0.92 <= np.mean(placebo) <= 0.98  # placebo cells cover 0 (parallel trends hold)
    assert 0.02 <= np.mean(reject) <= 0.10  # the joint placebo test: 8.3% here (7.0% on seeds 5000+)
    cover = np.array(hits)
    assert 0.93 <= cover.mean() <= 0.97, cover.mean(axis=0)
    assert (cover.mean(axis=0) >= 0.91).all() and (cover.mean(axis=0) <= 0.99).all()
    assert 0.93 <= np.mean(hit_avg) <= 0.97
    ratio = np.mean(ses, axis=0) / np.std(est, axis=0)
    assert ((ratio > 0.85) & (ratio < 1.2)).all(), ratio
    bias = np.mean(est, axis=0) - np.array([-0.04] * 3 + [-0.08] * 2)
    assert (np.abs(bias) < 3 * np.std(est, axis=0) / np.sqrt(300)).all(), bias


def test_staggered_refusals():
    from survey.evaluation import staggered_did

    d = staggered("taylor")
    df = d.data
    with pytest.raises(EvaluationError, match="no never-treated respondent"):
        staggered_did(sv.Design(df.assign(f2=df["first"].fillna(2022)), strata="stratum", psu="area",
                                weights="weight"), "victim", "wave", "f2")
    with pytest.raises(EvaluationError, match="has no wave of 'wave' before its start"):
        staggered_did(sv.Design(df.assign(f2=df["first"].replace(2020, 2018)), strata="stratum", psu="area",
                                weights="weight"), "victim", "wave", "f2")


# ---------------------------------------------------------------------------------------------
# the evaluation step of a batch run
# ---------------------------------------------------------------------------------------------
def test_batch_run_recovers_the_known_programme_effect(tmp_path):
    """parameters/synthetic-evaluation.yaml run by the real batch (papermill) on freshly written
    pooled waves with a known effect of -5 points: evaluation.csv's difference in differences
    covers the truth (truth.json), equals the same model fitted directly on the CSV with the
    areas as PSUs (the batch's ingest changes nothing), the pre-trend test is in it;
    cost_benefit.csv is the effect's crimes averted over three years discounted by hand; both
    files are in the manifest with their sha256."""
    import hashlib
    import json

    import yaml

    from survey.batch import execute_run
    from survey.evaluation import COST_BENEFIT_COLUMNS, EVALUATION_TABLE_COLUMNS, write_pooled_survey

    data_dir = write_pooled_survey(tmp_path / "data", seed=3)
    truth = json.loads((data_dir / "truth.json").read_text())
    raw = yaml.safe_load((ROOT / "parameters" / "synthetic-evaluation.yaml").read_text())
    raw.update(data_dir=str(data_dir), output_dir=str(tmp_path / "outputs" / "ev"), spec=str(ROOT / "specs" /
               "synthetic-evaluation.yaml"), notebooks=["ingest"])
    pf = tmp_path / "ev.yaml"
    pf.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = execute_run(str(pf), notebook_dir=str(ROOT / "notebooks"), root=str(ROOT), redirect_stderr=False)
    assert res["status"] == "succeeded", res["error"]
    out = tmp_path / "outputs" / "ev"
    ev = pd.read_csv(out / "evaluation.csv")
    assert list(ev.columns) == EVALUATION_TABLE_COLUMNS
    e = ev.set_index("term").loc["did"]
    assert e.ci_low <= truth["effect"] <= e.ci_high
    assert e.ci_high < 0  # detected
    df = pd.read_csv(data_dir / "pooled.csv")
    ref = did(sv.Design(df, strata="stratum", psu="area", weights="weight"), "victim", "treated", "wave", start=3)
    r = ref.effects.iloc[0]
    assert np.isclose(e.estimate, r.effect, rtol=1e-9) and np.isclose(e.se, r.se, rtol=1e-9) and e.df == r.df
    pt = ev.set_index("term").loc["pretrend_test"]
    assert np.isclose(pt.p, ref.pretrend.p_value.iloc[0], rtol=1e-9)
    assert {"event_study: 1", "event_study: 3", "event_study: 4"} <= set(ev.term)
    cb = pd.read_csv(out / "cost_benefit.csv").set_index("quantity")
    assert list(cb.reset_index().columns) == COST_BENEFIT_COLUMNS
    d = 1.035 ** -np.arange(3)
    pvb = -r.effect * 60_000 * 5930 * d.sum()
    pvc = 2_000_000 + 1_500_000 * (d[1] + d[2])
    assert np.isclose(cb.loc["benefit", "estimate"], pvb, rtol=1e-9)
    assert np.isclose(cb.loc["benefit", "se"], r.se * 60_000 * 5930 * d.sum(), rtol=1e-9)
    assert np.isclose(cb.loc["programme_cost", "estimate"], pvc, rtol=1e-12)
    assert np.isclose(cb.loc["benefit_cost_ratio", "estimate"], pvb / pvc, rtol=1e-9)
    assert (cb.currency == "GBP").all() and (cb.discount_rate == 0.035).all() and (cb.effect_term == "did").all()
    m = json.loads((out / "manifest.json").read_text())
    assert [n["name"] for n in m["notebooks"]] == ["ingest", "evaluation"]
    assert m["evaluation"]["terms"] == ["did", "pretrend_test"]
    assert m["evaluation"]["effects_sha256"] == hashlib.sha256((out / "evaluation.csv").read_bytes()).hexdigest()
    assert m["evaluation"]["section"]["start"] == 3
    assert {"evaluation.csv", "cost_benefit.csv"} <= {o["path"] for o in m["outputs"]}
    assert not list(out.glob(".*.csv*"))  # no temporary file left by the atomic writes


def test_prepare_evaluation_staggered_section_and_errors(tmp_path):
    """The section's staggered form (start per area code) gives staggered_did on the pooled
    design; missing columns are one-line errors naming the column and the rows."""
    from survey import params as sp
    from survey.evaluation import prepare_evaluation, staggered_did, write_pooled_survey

    data_dir = write_pooled_survey(tmp_path / "data", seed=4, n_strata=4, areas_per_stratum=6, respondents=15)
    values = {"spec": str(ROOT / "specs" / "synthetic-evaluation.yaml"), "data_dir": str(data_dir),
              "output_dir": str(tmp_path / "o")}
    data = sp.load_survey(values, write_accounting=False)
    df = pd.read_csv(data_dir / "pooled.csv")
    first = {a: (3 if a % 2 else 4) for a in sorted(df.loc[df.treated == 1, "area"].unique())}
    section = sp.check_evaluation({"outcome": "victim:burglary", "period": "wave", "area": "area",
                                   "start": {str(k): v for k, v in first.items()}})
    prep = prepare_evaluation(data, section)
    res = did(prep.design, prep.outcome, prep.treated, prep.wave, start=prep.start, group=prep.group)
    direct = staggered_did(sv.Design(df.assign(first=df.area.map(first)), strata="stratum", psu="area",
                                     weights="weight"), "victim", "wave", "first")
    pd.testing.assert_frame_equal(res.group_time, direct.group_time, check_dtype=False)
    bad = sp.check_evaluation({"outcome": "victim:burglary", "treated": "treated == 1", "period": "year", "start": 3})
    with pytest.raises(EvaluationError, match=r"evaluation.period: column 'year' is not in the respondent file "
                                              r"\(1440 rows\)"):
        prepare_evaluation(data, bad)
    with pytest.raises(EvaluationError, match="selects 0 of 1440 respondents"):
        prepare_evaluation(data, {**bad, "period": "wave", "treated": "treated == 7"})


# ---------------------------------------------------------------------------------------------
# effects per programme year (evaluation.effects)
# ---------------------------------------------------------------------------------------------
SECTION = {"outcome": "victim:burglary", "treated": "treated == 1", "period": "wave", "start": 3,
           "event_study": True, "crime_type": "burglary_dwelling", "discount_rate": 0.035}


def test_yearly_effects_discounted_by_hand():
    """``effects: [periods]`` values year k with the event-study effect of the k-th period: the
    benefit is the sum over years of -effect x exposed x unit cost x 1.035^-k; its SE is
    sqrt(g'Vg) with the event study's joint covariance.  With one period repeated the SE is the
    published SE of that period times the summed weights (no covariance involved); a single cost
    falls in year 0 and a single exposure applies every year."""
    from survey import params as sp
    from survey.cost import load_unit_costs
    from survey.evaluation import cost_benefit_table

    df = simulate_pooled_waves(effect=-0.05, seed=5)
    res = did(sv.Design(df, strata="stratum", psu="area", weights="weight"), "victim", "treated", "wave", start=3,
              event_study=True)
    es = res.event_study.set_index("wave")
    unit = float(load_unit_costs(None).set_index("crime_type").loc["burglary_dwelling", "unit_cost"])
    d = 1.035 ** -np.arange(4)
    exposed = [1000.0, 2000.0, 2000.0, 2500.0]
    # one period repeated: the published SE alone
    sec = sp.check_evaluation({**SECTION, "programme_cost": 1e6, "exposed": 1500, "effects": [4, 4, 4]})
    cb = cost_benefit_table(res, sec).set_index("quantity")
    g = unit * 1500 * d[:3].sum()
    assert np.isclose(cb.loc["benefit", "estimate"], -es.loc[4, "estimate"] * g, rtol=1e-12)
    assert np.isclose(cb.loc["benefit", "se"], es.loc[4, "se"] * g, rtol=1e-9)
    assert np.isclose(cb.loc["programme_cost", "estimate"], 1e6, rtol=1e-12)  # all in year 0
    assert np.isclose(cb.loc["crimes_averted", "estimate"], -es.loc[4, "estimate"] * 4500, rtol=1e-12)
    assert (cb.effect_term == "event_study: 4, 4, 4").all() and (cb.years == 3).all()
    # two periods: the covariance enters
    sec = sp.check_evaluation({**SECTION, "programme_cost": [4e5, 3e5, 3e5, 3e5], "exposed": exposed,
                               "effects": [3, 4, 4, 4]})
    cb = cost_benefit_table(res, sec).set_index("quantity")
    periods = [3, 4, 4, 4]
    beta = np.array([es.loc[p, "estimate"] for p in periods])
    gk = -unit * d * np.array(exposed)
    V = res.event_study_vcov
    assert np.allclose(np.diag(V.loc[[3, 4], [3, 4]]), es.loc[[3, 4], "se"] ** 2, rtol=1e-12)
    var = sum(gk[i] * gk[j] * V.loc[periods[i], periods[j]] for i in range(4) for j in range(4))
    pv_cost = 4e5 + 3e5 * d[1:].sum()
    assert np.isclose(cb.loc["benefit", "estimate"], float(gk @ beta), rtol=1e-12)
    assert np.isclose(cb.loc["benefit", "se"], np.sqrt(var), rtol=1e-9)
    assert np.isclose(cb.loc["benefit_cost_ratio", "estimate"], float(gk @ beta) / pv_cost, rtol=1e-12)
    assert V.loc[3, 4] != 0  # the covariance is not left out
    # event_study: the post periods in order, one a year
    sec = sp.check_evaluation({**SECTION, "programme_cost": [4e5, 3e5], "exposed": 1000, "effects": "event_study"})
    cb = cost_benefit_table(res, sec).set_index("quantity")
    assert (cb.effect_term == "event_study: 3, 4").all()
    assert np.isclose(cb.loc["crimes_averted", "estimate"], -1000 * (es.loc[3, "estimate"] + es.loc[4, "estimate"]),
                      rtol=1e-12)
    # refusals: one line naming the periods there are / the years
    with pytest.raises(EvaluationError, match=r"effects\[1\]: period 7 is not a period from the start \(event "
                                              r"study: 3, 4; 4 periods\)"):
        cost_benefit_table(res, sp.check_evaluation({**SECTION, "programme_cost": 1e6, "exposed": 10,
                                                     "effects": [3, 7]}))
    with pytest.raises(EvaluationError, match="programme_cost has 3 years but effects give 2"):
        cost_benefit_table(res, sp.check_evaluation({**SECTION, "programme_cost": [1, 2, 3], "exposed": 10,
                                                     "effects": "event_study"}))


@pytest.mark.parametrize("change, message", [
    ({"effects": "yearly"}, "effects must be pooled, event_study or a list of periods"),
    ({"effects": "event_studdy"}, "did you mean 'event_study'"),
    ({"effects": []}, "effects must list 1 to 100 periods"),
    ({"effects": [3, None]}, r"effects\[1\] must be a period"),
    ({"effects": [3, 4], "event_study": False}, "need event_study: true"),
    ({"effects": [3, 4], "model": "logistic"}, "the linear model"),
    ({"effects": [3, 4], "programme_cost": None, "exposed": None, "crime_type": None}, "without programme_cost"),
    ({"effects": [3, 4], "programme_cost": [1, 2, 3], "exposed": 5}, "programme_cost has 3 years and effects 2"),
])
def test_yearly_effects_parameter_refusals(change, message):
    from survey import params as sp

    section = {k: v for k, v in {**SECTION, "programme_cost": 1e6, "exposed": 10, **change}.items() if v is not None}
    with pytest.raises(sp.ParameterError, match=message):
        sp.check_evaluation(section)


def test_batch_run_values_each_year_with_its_own_effect(tmp_path):
    """parameters/synthetic-evaluation.yaml with ``effects: [3, 4, 4]`` through the real batch:
    cost_benefit.csv's benefit is the discounted sum, by hand, of the event-study effects that
    evaluation.csv publishes for periods 3, 4 and 4; its SE is sqrt(g'Vg) with the covariance of
    the same event study fitted directly on the pooled file; the report says which effects."""
    import yaml

    from survey.batch import execute_run
    from survey.evaluation import write_pooled_survey

    data_dir = write_pooled_survey(tmp_path / "data", seed=3)
    raw = yaml.safe_load((ROOT / "parameters" / "synthetic-evaluation.yaml").read_text())
    raw["evaluation"]["effects"] = [3, 4, 4]
    raw.update(data_dir=str(data_dir), output_dir=str(tmp_path / "outputs" / "ev"), spec=str(ROOT / "specs" /
               "synthetic-evaluation.yaml"), notebooks=["ingest"])
    pf = tmp_path / "ev.yaml"
    pf.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = execute_run(str(pf), notebook_dir=str(ROOT / "notebooks"), root=str(ROOT), redirect_stderr=False)
    assert res["status"] == "succeeded", res["error"]
    out = tmp_path / "outputs" / "ev"
    ev = pd.read_csv(out / "evaluation.csv").set_index("term")
    beta = np.array([ev.loc[f"event_study: {p}", "estimate"] for p in (3, 4, 4)])
    d = 1.035 ** -np.arange(3)
    g = -60_000 * 5930 * d
    cb = pd.read_csv(out / "cost_benefit.csv").set_index("quantity")
    assert np.isclose(cb.loc["benefit", "estimate"], float(g @ beta), rtol=1e-9)
    assert np.isclose(cb.loc["crimes_averted", "estimate"], -60_000 * beta.sum(), rtol=1e-9)
    pvc = 2_000_000 + 1_500_000 * (d[1] + d[2])
    assert np.isclose(cb.loc["benefit_cost_ratio", "estimate"], float(g @ beta) / pvc, rtol=1e-9)
    direct = did(sv.Design(pd.read_csv(data_dir / "pooled.csv"), strata="stratum", psu="area", weights="weight"),
                 "victim", "treated", "wave", start=3, event_study=True)
    V = direct.event_study_vcov.loc[[3, 4, 4], [3, 4, 4]].to_numpy()
    assert np.isclose(cb.loc["benefit", "se"], np.sqrt(g @ V @ g), rtol=1e-9)
    assert (cb.effect_term == "event_study: 3, 4, 4").all()
    page = (out / "evaluation.html").read_text(encoding="utf-8")
    assert "Each programme year is valued with the event-study effect of its period" in page
