"""Fay-Herriot EBLUP and its Prasad-Rao MSE estimator against known truth (model-based simulation).

Areas (fixed over replications): ``m`` sampled areas in three classes of sampling variance
``psi`` (``--psi``, default 0.25, 1 and 4 times sigma2_u: direct estimates much better than,
as good as, and much worse than the model), ``m / 3`` areas each, plus ``--out-of-sample`` areas
with covariates only; one covariate x ~ U(0, 1) (drawn once), beta = (1, 2), sigma2_u = 1.

Each replication draws ``theta_i = 1 + 2 x_i + u_i`` (u_i ~ N(0, sigma2_u)) for every area and
``direct_i = theta_i + e_i`` (e_i ~ N(0, psi_i)) for the sampled ones, fits
``survey.sae.fay_herriot`` by REML and by ML, and records the squared error of the EBLUP (of
the synthetic estimate out of sample) and the estimated MSE.  Per class of area:

direct_var       psi: the MSE of the direct estimator
emp_mse          empirical MSE of the EBLUP, mean over replications and the class's areas
est_mse          mean estimated MSE (Prasad-Rao for REML, Datta-Lahiri for ML)
rel_bias         (est_mse - emp_mse) / emp_mse, with mc_se its Monte Carlo standard error (from
                 the replication-level class means of est - squared error, whose areas share
                 sigma2_u and beta)
naive_rel_bias   the same for g1 + g2 (the MSE as if sigma2_u were known): the g3 term's share
at_zero          share of replications where sigma2_u was estimated as 0

Usage (from the repository root)::

    python benchmarks/sae_simulation.py                 # m = 60, 1000 replications, ~25 s
    python benchmarks/sae_simulation.py --reps 2000 --m 30 --out benchmarks/results/sae.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from survey.errors import SurveyWarning
from survey.sae import fay_herriot


def simulate(m: int = 60, reps: int = 500, psi=(0.25, 1.0, 4.0), sigma2_u: float = 1.0,
             out_of_sample: int = 6, methods=("REML", "ML"), seed: int = 2026) -> pd.DataFrame:
    """Run the simulation; one row per method and area class (see the module docstring)."""
    rng = np.random.default_rng(seed)
    k = len(psi)
    if m % k:
        raise ValueError(f"m = {m} is not a multiple of the {k} psi classes")
    psi_i = np.repeat(np.asarray(psi, float) * sigma2_u, m // k)
    cls = np.repeat([f"psi={p:g}" for p in psi], m // k).tolist() + ["out of sample"] * out_of_sample
    n = m + out_of_sample
    x = rng.uniform(0, 1, n)
    mean = 1.0 + 2.0 * x
    base = pd.DataFrame({"area": [f"a{i:03d}" for i in range(n)], "x": x,
                         "direct_se": np.r_[np.sqrt(psi_i), np.full(out_of_sample, np.nan)]})
    err = {mt: np.empty((reps, n)) for mt in methods}
    est = {mt: np.empty((reps, n)) for mt in methods}
    naive = {mt: np.empty((reps, n)) for mt in methods}
    zero = {mt: 0 for mt in methods}
    for r in range(reps):
        theta = mean + rng.normal(0, np.sqrt(sigma2_u), n)
        direct = np.r_[theta[:m] + rng.normal(0, np.sqrt(psi_i)), np.full(out_of_sample, np.nan)]
        d = base.assign(direct=direct)
        for mt in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SurveyWarning)
                f = fay_herriot(d, covariates=["x"], method=mt)
            err[mt][r] = (f["eblup"].to_numpy() - theta) ** 2
            est[mt][r] = f["mse"].to_numpy()
            naive[mt][r] = np.where(f["in_sample"], f["g1"] + f["g2"], f["mse"])
            zero[mt] += f.attrs["at_zero"]
    rows = []
    cls = np.asarray(cls)
    for mt in methods:
        for c in dict.fromkeys(cls):
            j = cls == c
            e, s, nv = err[mt][:, j], est[mt][:, j], naive[mt][:, j]
            emp = float(e.mean())
            diff_r = (s - e).mean(axis=1)  # one value per replication (areas share the fit)
            diff_n = (nv - e).mean(axis=1)
            rows.append({
                "method": mt, "class": c, "areas": int(j.sum()),
                "direct_var": float(psi_i[j[:m]].mean()) if c != "out of sample" else np.nan,
                "emp_mse": emp, "est_mse": float(s.mean()),
                "rel_bias": float(diff_r.mean()) / emp, "mc_se": float(diff_r.std(ddof=1) / np.sqrt(reps)) / emp,
                "naive_rel_bias": float(diff_n.mean()) / emp,
                "at_zero": zero[mt] / reps,
            })
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=60)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--psi", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    ap.add_argument("--out-of-sample", type=int, default=6)
    ap.add_argument("--out", type=Path, default=None, help="write the table as JSON")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = simulate(a.m, a.reps, tuple(a.psi), out_of_sample=a.out_of_sample, seed=a.seed)
    secs = time.perf_counter() - t0
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(res.to_string(index=False))
    print(f"m = {a.m}, {a.reps} replications, seed {a.seed}: {secs:.1f} s")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"args": {k: v for k, v in vars(a).items() if k != "out"},
                                     "seconds": secs, "rows": res.to_dict("records")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
