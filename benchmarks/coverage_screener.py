"""Do the screener survey's 95% intervals cover its known truth, whether the population was
generated in one piece or streamed in chunks?

``survey synth --variant screener`` streams the population in chunks of CHUNK_HOUSEHOLDS
(250,000) households; chunk k > 0 has its own random streams and draws its 5-year status with
the chunk's mean 12-month counts, so a population of more than 250,000 households is a
different draw of the same model than one generated whole.  This study draws, for each seed
and each layout (``--chunks``: chunk sizes; 0 = the default, which holds a population of up
to 250,000 households in one chunk), a sample of ``--households`` issued households from a
population of ``--population-households`` with ``synth_screener``, loads it through a copy of
``specs/synthetic-screener.yaml``, estimates the indicator table (prevalence, incidence,
feeling safe, worry: the families ``tests/test_screener.py`` checks against the truth) and
compares every cell with 20+ cases with ``truth.csv``.

Usage (from the repository root):

    .venv/bin/python benchmarks/coverage_screener.py                            # 10 seeds x 2 layouts
    .venv/bin/python benchmarks/coverage_screener.py --seeds 11 12 --chunks 0 25000

Per layout and family (12-month victimization, 5-year prevalence, perceptions) it prints the
number of cells, the share whose interval covers the truth, the mean and standard deviation of
z = (estimate - truth) / SE, the largest |z| and the number of samples whose largest |z| in the
family is 3.5 or more.  Results go to ``benchmarks/results/coverage_screener.json``
(git-ignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from survey import synth as S  # noqa: E402
from survey.indicators import indicator_table  # noqa: E402
from survey.ingest import load  # noqa: E402
from survey.spec import load_yaml  # noqa: E402

SPEC = ROOT / "specs" / "synthetic-screener.yaml"


def one(folder: Path, seed: int, households: int, population: int, chunk: int) -> pd.DataFrame:
    """One sample against its truth: the merged cells (20+ cases) with z and coverage."""
    default = S.CHUNK_HOUSEHOLDS
    S.CHUNK_HOUSEHOLDS = chunk or default
    try:
        data_dir = S.synth_screener(folder / "data", households=households, seed=seed,
                                    population_households=population)
    finally:
        S.CHUNK_HOUSEHOLDS = default
    raw = load_yaml(SPEC.read_text())
    for f in raw["files"].values():
        f["path"] = str(data_dir / "respondents.sav")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    table = indicator_table(load(spec), publication="none",
                            indicators=["prevalence", "incidence", "feeling_safe", "worry"])
    truth = pd.read_csv(data_dir / "truth.csv")
    t = table.assign(domain_value=table.domain_value.astype(str))
    tr = truth.assign(domain_value=truth.domain_value.astype(str))
    m = t.merge(tr, on=["indicator", "crime_type", "domain", "domain_value"], validate="one_to_one")
    m = m[m.n_cases >= 20].copy()
    m["z"] = (m.estimate - m.value) / m.se
    m["covered"] = (m.ci_low <= m.value) & (m.value <= m.ci_high)
    m["family"] = np.where(m.indicator.isin(["feeling_safe", "worry"]), "perceptions",
                           np.where(m.crime_type.str.endswith("_5y"), "5-year prevalence",
                                    "12-month prevalence and incidence"))
    return m[["family", "indicator", "crime_type", "domain", "domain_value", "estimate", "value", "se", "z",
              "covered"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(11, 21)))
    ap.add_argument("--households", type=int, default=16_000)
    ap.add_argument("--population-households", type=int, default=200_000)
    ap.add_argument("--chunks", type=int, nargs="+", default=[0, 40_000],
                    help="chunk sizes in households (0: the default, one chunk for this population)")
    ap.add_argument("--out", default=str(HERE / "results" / "coverage_screener.json"))
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="coverage_screener."))
    t0 = time.perf_counter()
    runs = []
    try:
        for seed in args.seeds:
            for chunk in args.chunks:
                m = one(tmp / f"{seed}-{chunk}", seed, args.households, args.population_households, chunk)
                runs.append(m.assign(seed=seed, chunk=chunk))
                shutil.rmtree(tmp / f"{seed}-{chunk}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    allm = pd.concat(runs, ignore_index=True)
    summary = []
    for (chunk, family), g in allm.groupby(["chunk", "family"], sort=True):
        per_sample = g.groupby("seed").z.apply(lambda z: z.abs().max())
        row = {"chunk_households": int(chunk) or S.CHUNK_HOUSEHOLDS, "family": family, "samples": int(g.seed.nunique()),
               "cells": int(len(g)), "coverage": float(g.covered.mean()), "mean_z": float(g.z.mean()),
               "sd_z": float(g.z.std()), "max_abs_z": float(g.z.abs().max()),
               "samples_with_abs_z_3_5": int((per_sample >= 3.5).sum())}
        summary.append(row)
        n_chunks = -(-args.population_households // row["chunk_households"])
        print(f"chunks of {row['chunk_households']:>7,} (~{n_chunks} chunks)  {family:<34} cells {row['cells']:5d}  "
              f"coverage {row['coverage']:.3f}  mean z {row['mean_z']:+.3f}  sd z {row['sd_z']:.3f}  "
              f"max |z| {row['max_abs_z']:.2f}  samples with |z| >= 3.5: {row['samples_with_abs_z_3_5']}"
              f"/{row['samples']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": args.seeds, "households": args.households,
                               "population_households": args.population_households, "chunks": args.chunks,
                               "seconds": time.perf_counter() - t0, "summary": summary}, indent=2) + "\n")
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
