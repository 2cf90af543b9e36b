"""Repeated sampling of the synthetic survey (slow; excluded from `make test`).

A reduced run of ``benchmarks/coverage_synth.py``: one population, 30 samples written as .sav,
loaded through ``specs/synthetic.yaml`` and estimated with ``indicator_table``.  Checks that

- incidence = prevalence x concentration in every cell of every draw;
- the estimates agree with the truth on average (the truth and the table define the same
  quantities): every overall row of every indicator within 4.5 Monte Carlo SEs of its truth;
- the 95% intervals cover the truth: pooled coverage of the overall rows (feeling safe: every
  cell, as it has one overall row) is compatible with 93-97% within 3 Monte Carlo SEs.

Incidence and concentration are expected to fall short: their SEs are right on average, but the
victimization counts are so skewed (gamma frailties, up to 30 a year) that the estimate and its
SE are strongly correlated and the symmetric interval misses on the low side; coverage rises
only slowly with the number of victims (see benchmarks/README.md, "coverage_synth.py").

Run with ``.venv/bin/python -m pytest -m slow tests/test_coverage.py``; about a minute.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "coverage_synth.py"
DRAWS, HOUSEHOLDS, POPULATION = 30, 6_000, 200_000


def _module():
    spec = importlib.util.spec_from_file_location("coverage_synth", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run():
    cs = _module()
    sim = cs.simulate(DRAWS, HOUSEHOLDS, POPULATION, seed=5, sample_seed=501, progress=False)
    cells, covered = cs.cell_table(sim)
    return cs, sim, cells, covered


def test_every_truth_cell_is_estimated(run):
    _, sim, _, _ = run
    assert not sim["missing_rows"], sim["missing_rows"][:5]
    assert not sim["extra_rows"], sim["extra_rows"][:5]


def test_incidence_is_prevalence_times_concentration_in_every_draw(run):
    _, sim, _, _ = run
    assert sim["identity"].size == DRAWS
    assert sim["identity"].max() < 1e-9


def test_estimates_agree_with_the_truth_on_average(run):
    _, _, cells, _ = run
    overall = cells[cells["domain"] == "overall"]
    mc_se = overall["sd_estimate"] / np.sqrt(DRAWS)
    z = (overall["mean_estimate"] - overall["truth"]) / mc_se
    bad = overall.loc[z.abs() > 4.5, ["indicator", "crime_type", "truth", "mean_estimate"]]
    assert bad.empty, bad.to_string()


SHORTFALL = pytest.mark.xfail(strict=False, reason="skewed counts: the symmetric interval misses low "
                                                  "(SE unbiased); see benchmarks/README.md")


@pytest.mark.parametrize("family", ["prevalence", pytest.param("incidence", marks=SHORTFALL),
                                    pytest.param("concentration", marks=SHORTFALL), "feeling_safe"])
def test_intervals_cover_the_truth(run, family):
    _, _, cells, covered = run
    sel = (cells["indicator"] == family) & ((cells["domain"] == "overall") | (family == "feeling_safe"))
    cov = covered[sel.to_numpy()]
    k = cov.shape[0]
    p = cov.mean()
    # Monte Carlo SE: from the per-draw means (cells of one draw are correlated), at least the
    # binomial SE of k x draws independent trials at the nominal 95%
    se = max(cov.mean(axis=0).std(ddof=1) / np.sqrt(DRAWS), np.sqrt(0.95 * 0.05 / (k * DRAWS)))
    assert 0.93 - 3 * se <= p <= 0.97 + 3 * se, f"{family}: coverage {p:.3f} over {k} cells x {DRAWS} draws (se {se:.3f})"
