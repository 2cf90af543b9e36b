"""Coverage of the design-based difference-in-differences (survey.evaluation.did) over repeated
draws of pooled waves with a known programme effect.

Each draw: ``survey.evaluation.simulate_pooled_waves`` (6 strata x 10 areas, half of the areas
of each stratum treated, 4 waves with the programme from wave 3, 30 respondents per area and
wave, prevalence 20% + area effects + area-by-wave shocks + trend, a true reduction of the
prevalence by 5 points in treated areas after the start; new areas, treatment assignment and
respondents every draw).  The pooled design has the areas as PSUs across waves (clustered on
area) within strata.  Estimators:

- ``linear``: the coefficient of treated x post in the survey-weighted linear model (effect in
  prevalence points; the generating model is additive, so the truth is exactly ``effect``);
- ``logistic``: the effect on the prevalence among the treated after the start from the
  survey-weighted logistic model (delta method); the logit model is not the generating one, so
  this is an approximation of the truth (reported, not required to be nominal);
- the pre-trend Wald test (wave 1 x treated, wave 2 the reference): its rejection rate at 5%
  should be about 5% since trends are parallel.

    .venv/bin/python benchmarks/evaluation_coverage.py                 # 1000 draws, ~3-4 min
    .venv/bin/python benchmarks/evaluation_coverage.py --draws 200 --models linear

Monte Carlo SE of a coverage p over D draws: sqrt(p (1 - p) / D) (0.7 points at 95%, D = 1000).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import survey as sv
from survey.evaluation import did, simulate_pooled_waves

DEFAULTS = dict(n_strata=6, areas_per_stratum=10, respondents=30, effect=-0.05, waves=(1, 2, 3, 4), start=3)


def coverage(draws: int = 1000, seed: int = 20261206, models=("linear", "logistic"), level: float = 0.95,
             **sim) -> dict:
    """Run ``draws`` simulations; returns per model the coverage of the true effect, the mean
    estimate, the SD of the estimates, the mean SE, misses below/above, and the pre-trend
    rejection rate."""
    kw = {**DEFAULTS, **sim}
    truth = kw["effect"]
    out = {m: {"est": [], "se": [], "lo": [], "hi": [], "pre_p": []} for m in models}
    for i in range(draws):
        df = simulate_pooled_waves(seed=seed + i, **kw)
        d = sv.Design(df, strata="stratum", psu="area", weights="weight")
        for m in models:
            r = did(d, "victim", "treated", "wave", start=kw["start"], model=m, level=level)
            row = r.effects.iloc[0] if m == "linear" else r.effects.set_index("estimand").loc["att_prevalence"]
            o = out[m]
            o["est"].append(row["effect"])
            o["se"].append(row["se"])
            o["lo"].append(row["ci_low"])
            o["hi"].append(row["ci_high"])
            o["pre_p"].append(float(r.pretrend["p_value"].iloc[0]) if r.pretrend is not None else np.nan)
    res = {}
    for m, o in out.items():
        est, se, lo, hi = (np.array(o[k]) for k in ("est", "se", "lo", "hi"))
        cover = float(np.mean((lo <= truth) & (truth <= hi)))
        res[m] = {"draws": draws, "truth": truth, "coverage": cover,
                  "mc_se": float(np.sqrt(cover * (1 - cover) / draws)),
                  "miss_below": float(np.mean(hi < truth)), "miss_above": float(np.mean(lo > truth)),
                  "mean_estimate": float(est.mean()), "sd_estimate": float(est.std(ddof=1)),
                  "mean_se": float(se.mean()), "se_over_sd": float(se.mean() / est.std(ddof=1)),
                  "pretrend_rejection_5pct": float(np.nanmean(np.array(o["pre_p"]) < 0.05))}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--models", default="linear,logistic")
    a = ap.parse_args()
    t = time.time()
    res = coverage(a.draws, a.seed, tuple(a.models.split(",")))
    for m, r in res.items():
        print(f"{m:9s} coverage {100 * r['coverage']:.1f}% (MC SE {100 * r['mc_se']:.1f}; misses below "
              f"{100 * r['miss_below']:.1f}%, above {100 * r['miss_above']:.1f}%)  mean estimate "
              f"{r['mean_estimate']:+.4f} (truth {r['truth']:+.3f})  SD {r['sd_estimate']:.4f}  mean SE "
              f"{r['mean_se']:.4f}  SE/SD {r['se_over_sd']:.3f}  pre-trend rejections "
              f"{100 * r['pretrend_rejection_5pct']:.1f}%")
    print(f"{a.draws} draws in {time.time() - t:.0f} s")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
