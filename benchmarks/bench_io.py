"""Benchmark survey.io.read on a wide SPSS file: all columns vs only the needed ones, and
pyreadstat's multiprocessing reader vs one process.

Generates (fixed seed, in a temporary directory) an SPSS .sav file of 2,000 numeric columns x
100,000 rows (integer codes 1-9 as SPSS stores them, doubles; code 9 declared user-missing on
the 10 "needed" columns and every 50th other column, about 11% of values), then times:

  - read(path)                                   all 2,000 columns, one process
  - read(path, multiprocess=True)                all columns, pyreadstat.read_file_multiprocessing
  - read(path, columns=NEEDED)                   the 10 columns a spec needs (pyreadstat usecols)
  - read(path, columns=NEEDED, multiprocess=True)
  - pyreadstat.read_sav directly (all, 10 columns): the cost of survey.io's own layer
    (metadata-only read first, user-missing codes to NaN with the originals kept)

Each job: best of --reps runs (2, or 3 with --quick), the jobs taken in turn (round-robin) so
that other load on the machine spreads over all of them; the median and all times are in the
JSON, with the load average. The 10-column results are checked against the same columns of the
all-column result.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_io.py            # 100,000 rows x 2,000 columns, ~4 min idle
    .venv/bin/python benchmarks/bench_io.py --quick    # 20,000 rows, ~1 min
    .venv/bin/python benchmarks/bench_io.py --zsav     # also the same file compressed (.zsav)
    .venv/bin/python benchmarks/bench_io.py --rows 250000 --cols 200   # a tall file

Results are printed and written to benchmarks/results/bench_io.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyreadstat

from survey.io import MULTIPROCESS_MIN_ROWS, read

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "bench_io.json"
N_NEEDED = 10


def make_file(path: Path, n: int, k: int, seed: int, compress: bool) -> tuple[list[str], float]:
    """Write the wide file; return the needed columns and the write time."""
    rng = np.random.default_rng(seed)
    names = [f"v{i:04d}" for i in range(k)]
    data = rng.integers(1, 10, size=(n, k), dtype=np.int8).astype(np.float64)
    df = pd.DataFrame(data, columns=names, copy=False)
    del data
    # the needed columns are spread over the file, as a spec's variables are
    needed = [names[int(i)] for i in np.linspace(0, k - 1, N_NEEDED).round()]
    missing = {c: [9] for c in set(needed) | set(names[::50])}
    labels = {c: f"Question {c[1:]}" for c in names}
    t0 = time.perf_counter()
    pyreadstat.write_sav(df, path, compress=compress, column_labels=labels, missing_ranges=missing,
                         variable_value_labels={c: {9: "Refused"} for c in missing})
    return needed, time.perf_counter() - t0


def bench_file(path: Path, needed: list[str], reps: int) -> list[dict[str, Any]]:
    """Time every job ``reps`` times, round-robin (so that other load on the machine spreads
    evenly over the jobs), and check the 10-column results against the all-column one."""
    p = str(path)
    jobs = [
        ("read, all columns", lambda: read(p, multiprocess=False), "all", False),
        ("read, all columns, multiprocess", lambda: read(p, multiprocess=True), "all", True),
        (f"read, {N_NEEDED} columns", lambda: read(p, columns=needed, multiprocess=False), N_NEEDED, False),
        (f"read, {N_NEEDED} columns, multiprocess", lambda: read(p, columns=needed, multiprocess=True),
         N_NEEDED, True),
        ("pyreadstat.read_sav, all columns", lambda: pyreadstat.read_sav(p, user_missing=True), "all", None),
        (f"pyreadstat.read_sav, {N_NEEDED} columns",
         lambda: pyreadstat.read_sav(p, user_missing=True, usecols=needed), N_NEEDED, None),
    ]
    rows = [{"job": name, "columns": cols, "multiprocess": mp, "times_s": [], "cpu_s": []}
            for name, _, cols, mp in jobs]
    reference = None
    for rep in range(reps):
        for (name, fn, cols, mp), row in zip(jobs, rows):
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            df, meta = fn()
            row["times_s"].append(time.perf_counter() - t0)
            row["cpu_s"].append(time.process_time() - c0)  # this process only (not the workers)
            if rep == 0:
                row["frame_mib"] = float(df.memory_usage(index=False).sum() / 2**20)
                row["shape"] = list(df.shape)
                if mp is not None:
                    assert meta.multiprocess == mp
                if name == "read, all columns":
                    reference = df[needed].copy()
                elif mp is not None and cols == N_NEEDED:
                    pd.testing.assert_frame_equal(df, reference)  # same values as the all-column read
            del df, meta
        print(f"    repetition {rep + 1}/{reps}: " + ", ".join(f"{r['times_s'][-1]:.2f}" for r in rows) + " s",
              flush=True)
    for row in rows:
        row["best_s"] = min(row["times_s"])
        row["median_s"] = statistics.median(row["times_s"])
        row["best_cpu_s"] = min(row["cpu_s"])
    base = rows[0]["best_s"]
    for row in rows:
        row["speedup_vs_all_columns_1_process"] = base / row["best_s"]
    return rows


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"| {'job':<42} | {'best (s)':>9} | {'median (s)':>10} | {'speed-up':>8} | {'CPU (s)':>8} "
          f"| {'frame (MiB)':>11} |")
    print(f"|{'-' * 44}|{'-' * 11}|{'-' * 12}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    for r in rows:
        cpu = f"{r['best_cpu_s']:>8.2f}" if not r["multiprocess"] else f"{'(' + format(r['best_cpu_s'], '.2f') + ')':>8}"
        print(f"| {r['job']:<42} | {r['best_s']:>9.2f} | {r['median_s']:>10.2f} | "
              f"{r['speedup_vs_all_columns_1_process']:>7.1f}x | {cpu} | {r['frame_mib']:>11.1f} |")
    print("speed-up: best wall time of 'read, all columns' / best wall time of the job. CPU: this process's "
          "CPU time (in parentheses for multiprocess jobs: the workers' time is not counted).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows (default 100,000)")
    ap.add_argument("--cols", type=int, default=2_000, help="numeric columns (default 2,000)")
    ap.add_argument("--quick", action="store_true", help="20,000 rows")
    ap.add_argument("--zsav", action="store_true", help="also time the compressed (.zsav) file")
    ap.add_argument("--reps", type=int, default=None,
                    help="timed repetitions per job (default 2; 3 with --quick)")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    n = 20_000 if args.quick else args.rows
    if args.reps is None:
        args.reps = 3 if args.quick else 2
    k = args.cols
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"bench_io: {n:,} rows x {k:,} numeric columns, {N_NEEDED} needed; best of {args.reps}; "
          f"{cpus} CPUs (multiprocess uses {min(4, max(2, cpus))} processes)", flush=True)

    report: dict[str, Any] = {
        "config": {"rows": n, "cols": k, "needed": N_NEEDED, "reps": args.reps, "seed": args.seed,
                   "multiprocess_min_rows": MULTIPROCESS_MIN_ROWS},
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": cpus,
                    "loadavg_start": list(os.getloadavg()), "pyreadstat": pyreadstat.__version__,
                    "pandas": pd.__version__, "numpy": np.__version__},
        "files": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmp:
        for compress in [False, True] if args.zsav else [False]:
            ext = ".zsav" if compress else ".sav"
            path = Path(tmp) / f"wide{ext}"
            needed, write_s = make_file(path, n, k, args.seed, compress)
            gc.collect()
            size = path.stat().st_size
            print(f"  {path.name}: {size / 2**20:,.0f} MiB written in {write_s:.1f} s; timing...", flush=True)
            rows = bench_file(path, needed, args.reps)
            report["files"][ext] = {"bytes": size, "write_s": write_s, "needed_columns": needed, "jobs": rows}
            print_table(f"{path.name} ({n:,} rows x {k:,} columns, {size / 2**20:,.0f} MiB)", rows)
            path.unlink()
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    print(f"load average at start {report['machine']['loadavg_start'][0]:.2f}, at end "
          f"{report['machine']['loadavg_end'][0]:.2f} ({cpus} CPUs): other work on the machine skews timings")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
