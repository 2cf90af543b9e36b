"""Design-based GLM coefficients over repeated samples of the synthetic survey (slow; excluded
from `make test`).

A reduced run of ``benchmarks/coverage_glm.py``: one population (1,000,000 households, fixed
seed), 40 samples of 20,000 issued households written as .sav, loaded through
``specs/synthetic.yaml`` and fitted with ``data.design(unit).glm`` (Taylor), for assault
(persons) and burglary (households), poisson (count) and binomial (victim).  The truth is the
census parameter: the same GLM on the whole population.  Checks that

- loading through the spec and building ``survey.Design`` from the sample frames give the same
  fits (so ``--direct`` is a valid shortcut);
- the slopes are unbiased for the census values (within 4.5 Monte Carlo SEs);
- the SEs match the spread of the estimates (mean SE / SD within 0.75-1.33 per slope);
- the pooled coverage of the slopes' 95% intervals is compatible with 93-97% within 3 Monte
  Carlo SEs.

The full run (300 draws) gives 92.8-95.5% per model (benchmarks/README.md, "coverage_glm.py").
Run with ``.venv/bin/python -m pytest -m slow tests/test_glm_coverage.py``; about 1-2 minutes.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "coverage_glm.py"
DRAWS, HOUSEHOLDS, POPULATION = 40, 20_000, 1_000_000


def _module():
    spec = importlib.util.spec_from_file_location("coverage_glm", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cg():
    return _module()


@pytest.fixture(scope="module")
def run(cg):
    sim = cg.simulate(DRAWS, HOUSEHOLDS, POPULATION, seed=3, sample_seed=701, progress=False)
    return sim, cg.term_table(sim)


def test_spec_path_and_direct_designs_agree(cg):
    from survey import synth as S

    pop = S.make_population(2, 200_000)
    sample = S.draw_sample(pop, 6_000, 11)
    models = cg.model_list()
    folder = Path(tempfile.mkdtemp(prefix="test_glm_coverage."))
    try:
        via_spec = cg.designs_via_spec(pop, sample, folder, cg.write_spec(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    direct = cg.designs_direct(pop, sample)
    for unit in ("person", "household"):
        a, b = via_spec[unit].design, direct[unit].design
        assert np.allclose(a.w, b.w, rtol=1e-12)
        for t in ("assault", "burglary"):
            assert np.array_equal(a.data[f"n__{t}"].to_numpy(float), b.data[f"n__{t}"].to_numpy(float))
    fa, fb = cg.fit_draw(via_spec, models), cg.fit_draw(direct, models)
    for m in models:
        for k in ("estimate", "se"):
            np.testing.assert_allclose(fa[m["name"]][k], fb[m["name"]][k], rtol=1e-8, err_msg=f"{m['name']} {k}")
        assert fa[m["name"]]["df"] == fb[m["name"]]["df"]


def test_every_fit_succeeds(run):
    sim, _ = run
    for name, info in sim["info"].items():
        assert not info["errors"], (name, info["errors"][:3])
        assert info["not_converged"] == 0, name


def test_slopes_are_unbiased_for_the_census_values(run):
    _, terms = run
    slopes = terms[terms["term"] != "Intercept"]
    z = (slopes["mean_estimate"] - slopes["census"]) / (slopes["sd_estimate"] / np.sqrt(DRAWS))
    bad = slopes.loc[z.abs() > 4.5, ["model", "term", "census", "mean_estimate", "sd_estimate"]]
    assert bad.empty, bad.to_string()


def test_standard_errors_match_the_spread_of_the_estimates(run):
    _, terms = run
    slopes = terms[terms["term"] != "Intercept"]
    # with 40 draws the SD of the estimates is itself uncertain by about 11%
    bad = slopes.loc[(slopes["se_ratio"] < 0.75) | (slopes["se_ratio"] > 1.33), ["model", "term", "se_ratio"]]
    assert bad.empty, bad.to_string()


@pytest.mark.parametrize("model", ["assault/poisson", "assault/binomial", "burglary/poisson", "burglary/binomial"])
def test_slope_intervals_cover_the_census_values(run, model):
    sim, _ = run
    m = next(mm for mm in sim["models"] if mm["name"] == model)
    a = sim["arrays"][model]
    truth = sim["census"][model].reindex(m["terms"]).to_numpy()[:, None]
    cov = ((a["ci_low"] <= truth) & (truth <= a["ci_high"]))[1:]
    p = cov.mean()
    k = cov.shape[0]
    se = max(cov.mean(axis=0).std(ddof=1) / np.sqrt(DRAWS), np.sqrt(0.95 * 0.05 / (k * DRAWS)))
    assert 0.93 - 3 * se <= p <= 0.97 + 3 * se, f"{model}: coverage {p:.3f} over {k} slopes x {DRAWS} draws (se {se:.3f})"
