"""Coverage of the indicator table's 95% intervals on the synthetic survey (known truth).

One finite population (``survey.synth.make_population``, fixed seed), then ``--draws``
independent samples of it (``draw_sample`` with seeds ``--sample-seed``, +1, ...).  Each sample
goes the way a user's data go: written as .sav files (``write_sample``) into a temporary folder,
loaded through a copy of ``specs/synthetic.yaml`` (its ``../data/synthetic/`` paths rewritten to
the folder) with ``survey.ingest.load``, and estimated with
``survey.indicators.indicator_table(data, publication="none")``.  Every cell (indicator, crime
type or item, domain, domain value) is matched with ``truth_table(pop)``; per cell:

coverage        share of draws whose interval (ci_low, ci_high) holds the truth (an undefined
                interval, e.g. concentration with no victim in the cell, or a cell at its
                bound with SE 0, which the table gives no interval, counts as a miss and is
                also reported as ``undefined``)
rel_bias        (mean estimate - truth) / truth
se_ratio        mean SE / empirical SD of the estimates (1 = the SE is right on average)
bias_sd         (mean estimate - truth) / empirical SD of the estimates
expected_cases  mean sample victims of the crime type in the cell (victimization indicators);
                for perception items the smaller of mean positives and mean negatives

Alternative intervals are computed from the same estimate, SE and df (no change to the
engine), to tell the estimator's interval shape from its SE: ``wald_z`` (normal quantile),
``logit`` (for % indicators: symmetric on the logit scale) and ``log`` (for rates and ratios:
symmetric on the log scale).  The identity incidence = prevalence x concentration is checked in
every draw.

``--cap N`` runs the same with a fixed cap of N victimizations of a type per respondent (the
practice of ONS and BJS for extreme counts) in the spec and in the truth (the population value
of the capped indicator).

Usage (from the repository root):

    .venv/bin/python benchmarks/coverage_synth.py                    # 300 draws of 6,000 households
    .venv/bin/python benchmarks/coverage_synth.py --draws 30 --households 2000   # a quick look

Results are printed and written to ``benchmarks/results/coverage_synth.json`` (git-ignored);
``--save-draws PATH.npz`` also keeps every draw's estimates and SEs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from survey import synth as S  # noqa: E402
from survey.indicators import indicator_table  # noqa: E402
from survey.ingest import load  # noqa: E402

SPEC = ROOT / "specs" / "synthetic.yaml"
KEYS = ["indicator", "crime_type", "domain", "domain_value"]
MAIN = ("prevalence", "incidence", "concentration", "feeling_safe")
EXTRA = ("reporting_rate", "repeat_victims", "worry")
OTHER = ("repeat_incidents", "reporting_rate_victims", "dark_figure", "multiple_victimization")
FAMILIES = MAIN + EXTRA + OTHER  # every family with a truth (the Gini has none)
PERCENT = {"prevalence", "feeling_safe", "worry", "reporting_rate", "repeat_victims", "repeat_incidents",
           "reporting_rate_victims", "dark_figure", "multiple_victimization"}
PERCEPTION = {"feeling_safe", "worry"}
NOMINAL = 0.95
BAND = (0.93, 0.97)


# ---------------------------------------------------------------------------------------------
# one draw
# ---------------------------------------------------------------------------------------------
def write_spec(folder: Path, cap: float | None = None) -> Path:
    """specs/synthetic.yaml with its data paths pointing into ``folder`` (and, with ``cap``, a
    fixed cap on each type's victimizations per respondent)."""
    text = SPEC.read_text()
    if "../data/synthetic/" not in text:  # pragma: no cover - guards a spec rewrite
        raise SystemExit(f"{SPEC}: expected '../data/synthetic/' paths to rewrite")
    if cap is not None:
        if "cap: {rule: none}" not in text:  # pragma: no cover
            raise SystemExit(f"{SPEC}: expected 'cap: {{rule: none}}' to rewrite")
        text = text.replace("cap: {rule: none}", f"cap: {{rule: fixed, value: {cap:g}}}")
    p = folder / "synthetic.yaml"
    p.write_text(text.replace("../data/synthetic/", ""))
    return p


def one_draw(pop: S.Population, households: int, seed: int, folder: Path, spec_path: Path,
             households_per_psu: int = 20) -> tuple[pd.DataFrame, dict]:
    """Draw, write, load and estimate one sample; returns the indicator table and timings."""
    t0 = time.perf_counter()
    sample = S.draw_sample(pop, households, seed, households_per_psu=households_per_psu)
    t1 = time.perf_counter()
    S.write_sample(sample, folder)
    t2 = time.perf_counter()
    data = load(spec_path)
    t3 = time.perf_counter()
    table = indicator_table(data, indicators=list(FAMILIES), publication="none")
    t4 = time.perf_counter()
    info = {"draw": t1 - t0, "write": t2 - t1, "load": t3 - t2, "table": t4 - t3,
            "respondents": int(len(sample.persons)), "psus": int(sample.info["psus"]),
            "df": float(table["df"].iloc[0])}
    return table, info


def identity_error(table: pd.DataFrame) -> float:
    """Largest relative gap between incidence / 1000 and prevalence / 100 x concentration."""
    k = ["crime_type", "domain", "domain_value"]
    w = {f: table.loc[table["indicator"] == f].set_index(k)["estimate"] for f in ("prevalence", "incidence",
                                                                              "concentration")}
    prev = w["prevalence"]
    inc = w["incidence"].reindex(prev.index)
    conc = w["concentration"].reindex(prev.index)
    pos = prev > 0
    gap = (inc[pos] / 1000 - prev[pos] / 100 * conc[pos]).abs() / (inc[pos] / 1000)
    zero = inc[~pos].abs().max() if (~pos).any() else 0.0  # no victim: incidence must be 0
    return float(max(gap.max() if pos.any() else 0.0, zero if np.isfinite(zero) else 0.0))


# ---------------------------------------------------------------------------------------------
# the repeated sampling
# ---------------------------------------------------------------------------------------------
def simulate(draws: int, households: int, population_households: int, seed: int = 1, sample_seed: int = 1001,
             households_per_psu: int = 20, progress: bool = True, cap: float | None = None) -> dict:
    """Run ``draws`` samples; returns the truth-aligned arrays (cells x draws) and run info."""
    t_start = time.perf_counter()
    pop = S.make_population(seed, population_households)
    truth = S.truth_table(pop, cap=cap)
    truth = truth[truth["indicator"].isin(FAMILIES)].reset_index(drop=True)
    index = pd.MultiIndex.from_frame(truth[KEYS])
    K = len(truth)
    arrays = {c: np.full((K, draws), np.nan) for c in ("estimate", "se", "ci_low", "ci_high", "df", "n", "n_cases")}
    timings, ident, missing_rows, extra_rows = [], [], set(), set()
    folder = Path(tempfile.mkdtemp(prefix="coverage_synth."))
    try:
        spec_path = write_spec(folder, cap)
        for d in range(draws):
            table, info = one_draw(pop, households, sample_seed + d, folder, spec_path, households_per_psu)
            tab = table.set_index(KEYS)
            extra_rows |= set(tab.index.difference(index))
            tab = tab.reindex(index)
            missing_rows |= set(index[tab["estimate"].isna() & tab["n"].isna()])
            for c in arrays:
                arrays[c][:, d] = tab[c].to_numpy(dtype=float)
            ident.append(identity_error(table))
            timings.append(info)
            if progress and (d + 1) % max(1, draws // 20) == 0:
                el = time.perf_counter() - t_start
                print(f"  draw {d + 1}/{draws}  {el:6.0f} s elapsed, ~{el / (d + 1) * (draws - d - 1):4.0f} s to go",
                      flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"truth": truth, "arrays": arrays, "timings": pd.DataFrame(timings), "identity": np.asarray(ident),
            "pop_info": pop.info, "missing_rows": sorted(missing_rows), "extra_rows": sorted(extra_rows),
            "seconds": time.perf_counter() - t_start}


def cell_table(sim: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """Per cell: truth, coverage of the published and alternative intervals, bias, SE ratio;
    and the cells x draws array of coverage indicators."""
    with warnings.catch_warnings():  # cells never estimated (all NaN) give NaN summaries
        warnings.simplefilter("ignore", RuntimeWarning)
        return _cell_table(sim)


def _cell_table(sim: dict) -> tuple[pd.DataFrame, np.ndarray]:
    truth = sim["truth"]
    a = sim["arrays"]
    est, se, lo, hi, df = a["estimate"], a["se"], a["ci_low"], a["ci_high"], a["df"]
    tv = truth["value"].to_numpy()[:, None]
    D = est.shape[1]
    defined = np.isfinite(lo) & np.isfinite(hi)
    with np.errstate(invalid="ignore"):
        covered = defined & (lo <= tv) & (tv <= hi)
        # alternative intervals from the same estimate, SE and df
        q_t = stats.t.ppf(0.975, np.where(np.isfinite(df), df, np.inf))
        z = stats.norm.ppf(0.975)
        wald_z = (np.abs(est - tv) <= z * se)
        pct = truth["indicator"].isin(PERCENT).to_numpy()[:, None]
        p = np.where(pct, est / 100.0, np.nan)
        tp = np.where(pct, tv / 100.0, np.nan)
        # logit interval: symmetric on the logit scale (delta method), as estimate.proportion_ci
        with np.errstate(divide="ignore"):
            h = q_t * (se / 100.0) / (p * (1 - p))
            logit_cov = np.abs(np.log(p / (1 - p)) - np.log(tp / (1 - tp))) <= h
            # log interval for rates and ratios (positive quantities)
            log_cov = np.abs(np.log(est) - np.log(tv)) <= q_t * se / est
    logit_cov = np.where(pct, logit_cov, np.nan)
    alt_log = np.where(~pct, log_cov, np.nan)
    mean_est = np.nanmean(np.where(np.isfinite(est), est, np.nan), axis=1) if D else np.nan
    sd_est = np.nanstd(est, axis=1, ddof=1)
    mean_se = np.nanmean(se, axis=1)
    fam = truth["indicator"].to_numpy()
    # expected sample cases: victims of the crime type in the cell (prevalence n_cases); for
    # perception items the smaller of the mean positives and negatives
    ncase = np.nanmean(a["n_cases"], axis=1)
    nbase = np.nanmean(a["n"], axis=1)
    key3 = list(zip(truth["crime_type"], truth["domain"], truth["domain_value"]))
    victims = dict(zip([k for k, f in zip(key3, fam) if f == "prevalence"], ncase[fam == "prevalence"]))
    expected = np.array([min(c, b - c) if f in PERCEPTION else victims.get(k, np.nan)
                         for f, k, c, b in zip(fam, key3, ncase, nbase)])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = truth[KEYS + ["unit", "value", "numerator", "denominator"]].rename(columns={"value": "truth"}).copy()
        out["expected_cases"] = expected
        out["mean_n"] = nbase
        out["coverage"] = covered.mean(axis=1)
        out["undefined"] = (~defined).mean(axis=1)
        out["coverage_defined"] = covered.sum(axis=1) / defined.sum(axis=1)
        out["coverage_wald_z"] = np.where(np.isfinite(se), wald_z, False).mean(axis=1)
        out["coverage_logit"] = np.nanmean(logit_cov, axis=1)  # NaN on rows of the other kind
        out["coverage_log"] = np.nanmean(alt_log, axis=1)
        out["mean_estimate"] = mean_est
        out["rel_bias"] = (mean_est - out["truth"]) / out["truth"]
        out["sd_estimate"] = sd_est
        out["mean_se"] = mean_se
        out["se_ratio"] = mean_se / sd_est
        out["bias_sd"] = (mean_est - out["truth"]) / sd_est
        out["below"] = np.where(defined, hi < tv, False).mean(axis=1)  # interval entirely below the truth
        out["above"] = np.where(defined, lo > tv, False).mean(axis=1)
    return out, covered


def _group(cells: pd.DataFrame, fam: str, which: str, min_cases: float) -> pd.DataFrame:
    c = cells[cells["indicator"] == fam]
    if which == "overall":
        return c[c["domain"] == "overall"]
    c = c[c["domain"] != "overall"]
    if which == "domains":
        return c
    if which == "large":
        return c[c["expected_cases"] >= min_cases]
    return c[~(c["expected_cases"] >= min_cases)]


def summarize(cells: pd.DataFrame, covered: np.ndarray, min_cases: float = 20.0) -> list[dict]:
    """Pooled coverage per family and group of cells (overall rows; domain cells; domain cells
    with at least / fewer than ``min_cases`` expected sample cases)."""
    D = covered.shape[1]
    rows = []
    for fam in FAMILIES:
        for which in ("overall", "domains", "large", "small"):
            g = _group(cells, fam, which, min_cases)
            if g.empty:
                continue
            cov = covered[g.index.to_numpy()]
            per_draw = cov.mean(axis=0)  # draws are independent: the SE of pooled coverage
            rows.append({
                "indicator": fam, "cells": which, "n_cells": int(len(g)), "draws": D,
                "coverage": float(cov.mean()),
                "mc_se": float(per_draw.std(ddof=1) / np.sqrt(D)) if D > 1 else float("nan"),
                "cell_min": float(g["coverage"].min()), "cell_median": float(g["coverage"].median()),
                "cell_max": float(g["coverage"].max()),
                "cells_below_band": int((g["coverage"] < BAND[0]).sum()),
                "cells_above_band": int((g["coverage"] > BAND[1]).sum()),
                "undefined": float(g["undefined"].mean()),
                "below": float(g["below"].mean()), "above": float(g["above"].mean()),
                "coverage_wald_z": float(g["coverage_wald_z"].mean()),
                "coverage_logit": float(g["coverage_logit"].mean()) if fam in PERCENT else None,
                "coverage_log": float(g["coverage_log"].mean()) if fam not in PERCENT else None,
                "median_abs_rel_bias": float(g["rel_bias"].abs().median()),
                "max_abs_rel_bias": float(g["rel_bias"].abs().max()),
                "median_bias_sd": float(g["bias_sd"].median()),
                "median_se_ratio": float(g["se_ratio"].median()),
                "median_expected_cases": float(g["expected_cases"].median()),
            })
    return rows


def _fmt(x, pct=True, nd=1):
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{100 * x:.{nd}f}" if pct else f"{x:.{nd}f}"


def print_report(summary: list[dict], cells: pd.DataFrame, sim: dict, min_cases: float) -> None:
    label = {"overall": "overall rows", "domains": "domain cells, all",
             "large": f"domains, >= {min_cases:g} cases", "small": f"domains, < {min_cases:g} cases"}
    print()
    print(f"{'indicator':<24}{'cells':<22}{'n':>5}{'cover%':>8}{'±mc':>6}{'min':>7}{'med':>7}{'<93':>5}{'>97':>5}"
          f"{'undef%':>7}{'waldz%':>8}{'alt%':>7}{'|rb|%':>7}{'bias/sd':>8}{'se/sd':>7}{'cases':>8}")
    for r in summary:
        alt = r["coverage_logit"] if r["coverage_logit"] is not None else r["coverage_log"]
        print(f"{r['indicator']:<24}{label[r['cells']]:<22}{r['n_cells']:>5}{_fmt(r['coverage']):>8}"
              f"{_fmt(r['mc_se']):>6}{_fmt(r['cell_min'], nd=0):>7}{_fmt(r['cell_median'], nd=0):>7}"
              f"{r['cells_below_band']:>5}{r['cells_above_band']:>5}{_fmt(r['undefined']):>7}"
              f"{_fmt(r['coverage_wald_z']):>8}{_fmt(alt):>7}{_fmt(r['median_abs_rel_bias'], nd=2):>7}"
              f"{r['median_bias_sd']:>8.2f}{r['median_se_ratio']:>7.2f}{r['median_expected_cases']:>8.0f}")
    print("  cover%: pooled coverage of the table's 95% intervals (±mc: Monte Carlo SE from the per-draw "
          "means); min/med: per-cell coverage; <93/>97: cells outside 93-97%;")
    print("  waldz%: estimate ± 1.96 SE; alt%: logit interval (% indicators) or log interval (rates, ratios); "
          "|rb|%: median |relative bias|; bias/sd, se/sd: medians over cells; cases: median expected cases")
    ident = sim["identity"]
    print(f"\nincidence = prevalence x concentration: largest relative gap over {ident.size} draws = "
          f"{ident.max():.2e}")
    worst = cells[cells["indicator"].isin(MAIN + EXTRA)].nsmallest(8, "coverage")
    print("\nlowest-coverage cells (table interval):")
    for _, r in worst.iterrows():
        print(f"  {r['indicator']:<16}{r['crime_type']:<22}{r['domain']:<9}{r['domain_value']:<16}"
              f"coverage {100 * r['coverage']:5.1f}%  truth {r['truth']:9.3f}  mean est {r['mean_estimate']:9.3f}  "
              f"se/sd {r['se_ratio']:.2f}  expected cases {r['expected_cases']:.1f}  "
              f"(below {100 * r['below']:.1f}%, above {100 * r['above']:.1f}%)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=300, help="independent samples (default 300)")
    ap.add_argument("--households", type=int, default=6_000, help="issued households per sample (default 6000)")
    ap.add_argument("--population-households", type=int, default=200_000,
                    help="households in the population (default 200000)")
    ap.add_argument("--households-per-psu", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1, help="population seed (default 1)")
    ap.add_argument("--sample-seed", type=int, default=1001, help="seed of the first sample (then +1 each)")
    ap.add_argument("--min-cases", type=float, default=20.0,
                    help="expected sample victims that make a domain cell 'large' (default 20)")
    ap.add_argument("--out", default=str(HERE / "results" / "coverage_synth.json"))
    ap.add_argument("--save-draws", default=None, help="also save every draw's estimates (npz)")
    ap.add_argument("--cap", type=float, default=None,
                    help="fixed cap on each type's victimizations per respondent, in the spec and the truth")
    args = ap.parse_args(argv)

    print(f"coverage on the synthetic survey: {args.draws} draws of {args.households:,} issued households "
          f"from a population of {args.population_households:,} households (seed {args.seed})", flush=True)
    sim = simulate(args.draws, args.households, args.population_households, args.seed, args.sample_seed,
                   args.households_per_psu, cap=args.cap)
    cells, covered = cell_table(sim)
    summary = summarize(cells, covered, args.min_cases)
    tm = sim["timings"]
    pi = sim["pop_info"]
    print(f"\npopulation: {pi['households']:,} households, {pi['persons']:,} adults, {pi['areas']:,} areas; "
          f"sample: {tm['respondents'].mean():,.0f} respondents (mean), {tm['psus'].iloc[0]} PSUs "
          f"(PSU sampling fraction {tm['psus'].iloc[0] / pi['areas']:.1%}), design df {tm['df'].iloc[0]:g}; "
          f"{sim['seconds']:.0f} s ({tm[['draw', 'write', 'load', 'table']].mean().sum():.2f} s per draw: "
          + ", ".join(f"{c} {tm[c].mean():.2f}" for c in ("draw", "write", "load", "table")) + ")")
    if sim["missing_rows"] or sim["extra_rows"]:
        print(f"WARNING: {len(sim['missing_rows'])} truth cells missing from the table, "
              f"{len(sim['extra_rows'])} table cells without a truth")
    print_report(summary, cells, sim, args.min_cases)

    result = {
        "config": {k: getattr(args, k) for k in ("draws", "households", "population_households",
                                                 "households_per_psu", "seed", "sample_seed", "min_cases",
                                                 "cap")},
        "population": pi,
        "sample": {"mean_respondents": float(tm["respondents"].mean()), "psus": int(tm["psus"].iloc[0]),
                   "psu_sampling_fraction": float(tm["psus"].iloc[0] / pi["areas"]), "df": float(tm["df"].iloc[0])},
        "seconds": {"total": sim["seconds"], **{f"mean_{c}": float(tm[c].mean())
                                                for c in ("draw", "write", "load", "table")}},
        "identity_max_relative_gap": float(sim["identity"].max()),
        "missing_truth_cells_in_table": [list(k) for k in sim["missing_rows"]],
        "table_cells_without_truth": [list(k) for k in sim["extra_rows"]],
        "summary": summary,
        "cells": json.loads(cells.drop(columns=["numerator", "denominator"]).to_json(orient="records")),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out}")
    if args.save_draws:
        np.savez_compressed(args.save_draws, **sim["arrays"], truth=sim["truth"]["value"].to_numpy(),
                            keys=sim["truth"][KEYS].astype(str).to_numpy())
        print(f"wrote {args.save_draws}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
