"""Change between overlapping waves (survey.change.wave_change) on a synthetic rotating panel
with known truth: coverage of the 95% interval of the change from the stacked design, against
the interval that assumes independent waves (survey.indicators.compare_waves).

    .venv/bin/python benchmarks/panel_change.py --draws 500

The population: H strata of PSUs of households, each household with a persistent risk (a PSU
effect times a household frailty); its victimization in wave 1 and wave 2 are independent
draws given that risk (so they are positively correlated across households), with the risk
raised by `--effect` in wave 2.  The true change is the population's.  Each draw selects 2 PSUs
per stratum (kept in both waves, as a panel of areas) and m households per PSU in wave 1; wave 2
keeps a share `--overlap` of them and draws the rest anew from the same PSUs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from survey.change import wave_change
from survey.ingest import SurveyData
from survey.spec import parse_spec

SPEC = {"survey": "panel", "period": "wave", "files": {"r": {"path": "-", "unit": "household", "keys": ["hid"]}},
        "design": {"file": "r", "weights": "w", "strata": "h", "psu": "p", "nest": True},
        "victimization": {"source": "respondent", "types": [
            {"name": "x", "unit": "household", "victim": {"variable": "v", "yes": [1]}}]}}


def population(H=20, P=12, M=150, effect=0.3, seed=0):
    rng = np.random.default_rng(seed)
    h = np.repeat(np.arange(H), P * M)
    p = np.tile(np.repeat(np.arange(P), M), H)
    psu_eff = np.repeat(rng.gamma(4.0, 0.25, H * P), M)
    frail = rng.gamma(0.7, 1 / 0.7, H * P * M)
    risk = np.clip(0.06 * psu_eff * frail, 0, 0.9)
    y1 = (rng.uniform(size=risk.size) < risk).astype(float)
    y2 = (rng.uniform(size=risk.size) < np.clip(risk * (1 + effect), 0, 0.95)).astype(float)
    return pd.DataFrame({"hid": np.arange(risk.size), "h": h, "p": h * 100 + p, "y1": y1, "y2": y2}), P, M


def _wave(pop, rows, w, ycol, period):
    df = pd.DataFrame({"hid": pop.hid.to_numpy()[rows], "h": pop.h.to_numpy()[rows], "p": pop.p.to_numpy()[rows],
                       "w": w, "v": pop[ycol].to_numpy()[rows]})
    df["victim__x"] = df["v"]
    df["_respondent"] = True
    spec = parse_spec({**SPEC, "period": period})
    return SurveyData(spec=spec, spec_path=None, respondents=df, incidents=None, accounting=pd.DataFrame())


def draw(pop, P, M, m=25, overlap=0.5, rng=None):
    H = pop.h.nunique()
    rows1, rows2, w1, w2 = [], [], [], []
    for hh in range(H):
        psus = rng.choice(P, 2, replace=False)
        for q in psus:
            start = (hh * P + q) * M
            first = rng.choice(M, m, replace=False)
            keep = first[: int(round(overlap * m))]
            rest = np.setdiff1d(np.arange(M), first)
            new = rng.choice(rest, m - len(keep), replace=False)
            rows1 += list(start + first)
            rows2 += list(start + np.concatenate([keep, new]))
            w1 += [P / 2 * M / m] * m
            w2 += [P / 2 * M / m] * m
    return _wave(pop, np.array(rows1), np.array(w1), "y1", "wave 1"), _wave(pop, np.array(rows2), np.array(w2), "y2", "wave 2")


def run(draws: int, overlap: float, seed: int = 1):
    pop, P, M = population()
    truth = 100 * (pop.y2.mean() - pop.y1.mean())
    rng = np.random.default_rng(seed)
    hit = hit_ind = 0
    ratio = []
    for _ in range(draws):
        a, b = draw(pop, P, M, overlap=overlap, rng=rng)
        r = wave_change(a, b, "prevalence", "x").iloc[0]
        hit += r.ci_low <= truth <= r.ci_high
        q = (r.ci_high - r.difference) / r.se
        hit_ind += abs(r.difference - truth) <= q * r.se_independent
        ratio.append(r.se / r.se_independent)
    return {"truth": truth, "coverage": hit / draws, "coverage_independent": hit_ind / draws,
            "se_ratio": float(np.mean(ratio)), "draws": draws, "overlap": overlap}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--overlap", type=float, nargs="*", default=[0.0, 0.5, 1.0])
    args = ap.parse_args()
    for ov in args.overlap:
        t = time.perf_counter()
        r = run(args.draws, ov)
        print(f"overlap {ov:.1f}: true change {r['truth']:.2f} points; coverage stacked {100 * r['coverage']:.1f}%, "
              f"assuming independence {100 * r['coverage_independent']:.1f}%; SE ratio {r['se_ratio']:.2f} "
              f"({args.draws} draws, {time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
