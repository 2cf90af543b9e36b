"""Time the synthetic survey generator (``survey synth``): the target is 50,000 households in
under 30 s, end to end (population of 20 x the sample, sample, .sav files, truth).

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_synth.py                      # 50,000 households, 1 run
    .venv/bin/python benchmarks/bench_synth.py --reps 3 --replicates bootstrap
    .venv/bin/python benchmarks/bench_synth.py --households 5000 --budget 5

Each run times the phases separately (population, truth table, sample, writing) and the whole
``synth()`` call (which writes into a temporary folder that is removed afterwards).  Results are
printed and written to ``benchmarks/results/bench_synth.json`` (git-ignored).  The exit code is 1
when the best end-to-end time exceeds ``--budget`` seconds (default 30).
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from survey import synth as S  # noqa: E402


def one_run(households: int, seed: int, replicate: str | None, n_replicates: int | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth."))
    try:
        t = {}
        t0 = time.perf_counter()
        pop = S.make_population(seed, 20 * households)
        t["population"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        truth = S.truth_table(pop)
        t["truth"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        sample = S.draw_sample(pop, households, seed, replicate=replicate, n_replicates=n_replicates)
        t["sample"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        S.write_sample(sample, tmp / "phases")
        S.write_truth(pop, tmp / "phases", sample, truth)
        t["write"] = time.perf_counter() - t3
        del pop, truth, sample
        t4 = time.perf_counter()
        out = S.synth(tmp / "synthetic", households=households, seed=seed, replicate=replicate,
                      n_replicates=n_replicates)
        t["synth_end_to_end"] = time.perf_counter() - t4
        meta = json.loads((out / "truth.json").read_text())
        sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
        return {"seconds": t, "population": meta["population"], "sample": meta["sample"], "bytes": sizes}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replicates", choices=["JKn", "bootstrap"], default=None)
    ap.add_argument("--n-replicates", type=int, default=None)
    ap.add_argument("--reps", type=int, default=1, help="timed runs (best is reported)")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds allowed end to end (default 30)")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_synth.json"))
    args = ap.parse_args(argv)

    runs = [one_run(args.households, args.seed, args.replicates, args.n_replicates) for _ in range(args.reps)]
    best = min(runs, key=lambda r: r["seconds"]["synth_end_to_end"])
    s, p = best["sample"], best["population"]
    print(f"survey synth: {args.households:,} households issued ({s['households_responding']:,} responding, "
          f"{s['incidents']:,} incidents); population {p['households']:,} households, {p['persons']:,} adults, "
          f"{p['incidents']:,} incidents; replicates: {args.replicates or 'none'}")
    for phase in ("population", "truth", "sample", "write", "synth_end_to_end"):
        vals = [r["seconds"][phase] for r in runs]
        print(f"  {phase:<18} best {min(vals):7.2f} s   (runs: {', '.join(f'{v:.2f}' for v in vals)})")
    total = best["seconds"]["synth_end_to_end"]
    verdict = "OK" if total <= args.budget else "OVER BUDGET"
    print(f"  end to end {total:.2f} s against a budget of {args.budget:g} s: {verdict}")
    print("  files: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in best["bytes"].items()))
    result = {"households": args.households, "seed": args.seed, "replicates": args.replicates,
              "n_replicates": args.n_replicates, "budget_seconds": args.budget, "runs": runs,
              "best_end_to_end_seconds": total, "within_budget": total <= args.budget,
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if total <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
