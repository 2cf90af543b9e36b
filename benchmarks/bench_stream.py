"""Estimation beyond memory (survey.stream): time, peak memory and agreement on a generated file.

Writes (fixed seed, in chunks, so generation memory stays bounded too) a Parquet file of --rows
rows: 160 strata x 2 PSUs, lognormal weights, `y` gamma, a 50-level text domain `region`,
`victim` (0/1) and --replicates Fay replicate weights (rho = 0.5; random balanced half-samples of
the strata) stored as float32, the way large files are published.  Then, each in a fresh
process (so the peak RSS is the job's own):

  S1. replicate-weight domain means of y by region, survey.stream.estimate (row batches)
  S2. Taylor domain means of y by region (strata/PSU), survey.stream.estimate
  S3. Taylor domain proportions of victim by region, survey.stream.estimate
  D1. S1 with survey.stream.estimate_dask on a distributed LocalCluster (processes, 2 workers)
  M1. S1 in memory: pandas.read_parquet + ReplicateDesign + mean, when --in-memory-max-rows allows

Peak memory is the child's VmHWM after resetting it (/proc/self/clear_refs; elsewhere ru_maxrss
from resource.getrusage); the baseline (interpreter, numpy, pandas, pyarrow, survey imported)
is reported alongside.  Agreement: max relative difference of
estimates and SEs between the paths (streamed vs in-memory when M1 runs, streamed vs Dask).

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_stream.py                          # 10M rows x 160 replicates (~6.5 GB)
    .venv/bin/python benchmarks/bench_stream.py --rows 1000000 --replicates 80
    .venv/bin/python benchmarks/bench_stream.py --keep /data/big.parquet # keep (or reuse) the file

Results are written to benchmarks/results/bench_stream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "bench_stream.json"
N_STRATA, N_DOMAINS, RHO = 160, 50, 0.5


def generate(path: Path, rows: int, n_rep: int, seed: int = 20261206, chunk: int = 250_000, extra=None) -> float:
    """Write the file; ``extra(rng, m, psu, dom, w, offset)``: more columns (a dict of Arrow
    arrays) for each chunk of ``m`` rows (bench_stream_indicators adds the crime items)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_psu = 2 * N_STRATA
    psu_eff = np.exp(rng.normal(0, 0.25, n_psu))
    psu_w = np.exp(rng.normal(0, 0.3, n_psu))
    # Fay half-samples: replicate r flips PSU 1/2 of stratum h by sign[r, h], balanced columns
    sign = np.where(rng.random((n_rep, N_STRATA)) < 0.5, 1.0, -1.0)
    shares = 1.0 / np.arange(1, N_DOMAINS + 1) ** 1.2
    shares /= shares.sum()
    labels = np.asarray([f"{d:02d} {('North', 'South', 'East', 'West', 'Centre')[d % 5]} district"
                         for d in range(1, N_DOMAINS + 1)], dtype=object)
    t0 = time.perf_counter()
    writer = None
    done = 0
    while done < rows:
        m = min(chunk, rows - done)
        psu = rng.integers(0, n_psu, m)
        h = psu // 2
        w = np.exp(rng.normal(np.log(400.0), 0.6, m)) * psu_w[psu]
        dom = rng.choice(N_DOMAINS, size=m, p=shares)
        y = rng.gamma(2.0, 10.0 * psu_eff[psu])
        victim = (rng.random(m) < 0.05 + 0.002 * dom).astype(np.int8)
        cols = {"stratum": pa.array(h + 1, pa.int32()), "psu": pa.array(psu + 1, pa.int32()),
                "w": pa.array(w), "y": pa.array(y), "victim": pa.array(victim),
                "region": pa.array(labels[dom], pa.string())}
        if extra is not None:
            cols.update(extra(rng, m, psu, dom, w, done))
        first = np.where(psu % 2 == 0, 1.0, -1.0)
        for r in range(n_rep):
            cols[f"repw{r + 1}"] = pa.array((w * (1.0 + (1.0 - RHO) * first * sign[r, h])).astype(np.float32))
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(str(path), table.schema, compression="none")
        writer.write_table(table, row_group_size=131_072)
        done += m
    writer.close()
    return time.perf_counter() - t0


JOBS = {
    "S1": "replicate domain means, streamed (row batches)",
    "S2": "Taylor domain means, streamed",
    "S3": "Taylor domain proportions, streamed",
    "D1": "replicate domain means, Dask LocalCluster (2 worker processes)",
    "M1": "replicate domain means in memory (read_parquet + design + mean)",
}
REP = dict(replicate_weights=r"^repw\d+$", method="Fay", rho=RHO)


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith(key))


def child(job: str, path: str, batch_rows: int) -> dict:
    import pandas as pd

    import survey as sv
    from survey import stream

    # a forked child inherits its parent's high-water mark: reset it (Linux), else ru_maxrss
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status("VmRSS:")
    except OSError:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    if job == "S1":
        res = stream.estimate(path, "mean", "y", by="region", weights="w", batch_rows=batch_rows, **REP)
    elif job == "S2":
        res = stream.estimate(path, "mean", "y", by="region", weights="w", strata="stratum", psu="psu",
                              batch_rows=batch_rows)
    elif job == "S3":
        res = stream.estimate(path, "proportion", "victim", by="region", weights="w", strata="stratum", psu="psu",
                              batch_rows=batch_rows)
    elif job == "D1":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          memory_limit="3GiB") as cl, Client(cl) as client:
            t0 = time.perf_counter()  # cluster start-up excluded
            res = stream.estimate_dask(path, "mean", "y", by="region", weights="w", **REP)
            secs = time.perf_counter() - t0
            workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        out = {"seconds": secs, "worker_peak_rss": sorted(workers.values())}
    elif job == "M1":
        df = pd.read_parquet(path)
        des = sv.ReplicateDesign(df, weights="w", method="Fay", rho=RHO, replicate_weights=r"^repw\d+$")
        res = des.mean("y", by="region")
    else:
        raise SystemExit(f"unknown job {job}")
    if job != "D1":
        out = {"seconds": time.perf_counter() - t0}
    try:
        peak = _status("VmHWM:")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {**out, "peak_rss": peak, "baseline_rss": base,
            "region": [str(v) for v in res["region"]], "estimate": res["estimate"].tolist(),
            "se": res["se"].tolist(), "df": float(res["df"].iloc[0])}


def run_child(job: str, path: Path, batch_rows: int) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_child", job, "--file", str(path),
                           "--batch-rows", str(batch_rows)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rel(a: dict, b: dict, key: str) -> float:
    x, y = np.asarray(a[key]), np.asarray(b[key])
    return float(np.max(np.abs(x - y) / np.abs(y)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--replicates", type=int, default=160)
    ap.add_argument("--batch-rows", type=int, default=65_536)
    ap.add_argument("--in-memory-max-rows", type=int, default=2_000_000,
                    help="run M1 (in memory) only up to this many rows")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="write the file here and keep it (reused if present)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--file", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        print(json.dumps(child(args._child, args.file, args.batch_rows)))
        return 0

    tmp = None
    if args.keep is not None:
        path = args.keep
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench_stream_", dir=os.environ.get("BENCH_TMP")))
        path = tmp / "survey.parquet"
    report = {"config": vars(args) | {"keep": str(args.keep), "out": str(args.out)}, "jobs": {}}
    try:
        if not path.exists():
            print(f"writing {args.rows:,} rows x {args.replicates} float32 replicate weights to {path} ...", flush=True)
            report["generate_seconds"] = generate(path, args.rows, args.replicates)
        size = path.stat().st_size
        report["file_bytes"] = size
        matrix = args.rows * (args.replicates + 1) * 8
        report["in_memory_matrix_bytes"] = matrix
        print(f"file {size / 2**30:.2f} GiB; the in-memory weight matrix would be {matrix / 2**30:.2f} GiB; "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        jobs = ["S1", "S2", "S3"] + ([] if args.no_dask else ["D1"])
        if args.rows <= args.in_memory_max_rows:
            jobs.append("M1")
        for j in jobs:
            print(f"  {j}: {JOBS[j]} ...", flush=True)
            report["jobs"][j] = run_child(j, path, args.batch_rows)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{'job':<4}{'what':<66}{'time':>9}{'peak RSS':>11}{'baseline':>10}")
    for j, r in report["jobs"].items():
        if "error" in r:
            print(f"{j:<4}{JOBS[j]:<66}  FAILED: {r['error'].splitlines()[-1]}")
            continue
        print(f"{j:<4}{JOBS[j]:<66}{r['seconds']:>8.1f}s{r['peak_rss'] / 2**20:>9.0f}MB"
              f"{r['baseline_rss'] / 2**20:>8.0f}MB")
        if "worker_peak_rss" in r:
            print(f"{'':<4}{'  (Dask workers, peak RSS each)':<66}{'':>9}"
                  + "".join(f"{v / 2**20:>9.0f}MB" for v in r["worker_peak_rss"]))
    agree = {}
    s1 = report["jobs"].get("S1", {})
    for other in ("D1", "M1"):
        o = report["jobs"].get(other, {})
        if "estimate" in s1 and "estimate" in o:
            assert s1["region"] == o["region"]
            agree[f"S1 vs {other}"] = {"estimate": rel(s1, o, "estimate"), "se": rel(s1, o, "se"),
                                       "df": [s1["df"], o["df"]]}
    report["agreement"] = agree
    for k, v in agree.items():
        print(f"agreement {k}: max rel diff estimate {v['estimate']:.1e}, SE {v['se']:.1e}; df {v['df']}")
    report["loadavg_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
