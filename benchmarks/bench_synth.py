"""Time and peak memory of the synthetic survey generator (``survey synth``), end to end:
population of 20 x the sample generated and sampled in streaming, .sav files, truth.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_synth.py                                  # 50,000 households
    .venv/bin/python benchmarks/bench_synth.py --households 50000 500000 2000000
    .venv/bin/python benchmarks/bench_synth.py --households 5000 --replicates bootstrap --phases
    .venv/bin/python benchmarks/bench_synth.py --variant screener --households 50000 500000

Every size runs ``survey.synth.synth()`` (``--variant screener``: ``synth_screener()``, the
respondent file of ``survey synth --variant screener``) in a fresh child process (into a temporary folder removed
afterwards): the wall time is measured in the child, the peak memory is the child's
``ru_maxrss`` (``os.wait4``), so one size's memory does not carry into the next; its CPU time
(user + system, start-up included) is given too, as the wall time of a busy machine varies.  ``--phases``
also times the in-memory phases in this process (``make_population``, ``truth_table``,
``draw_sample``, writing; for the screener ``make_population``, ``draw_screener_sample``,
``screener_truth``), as before streaming.  Results are printed and written to
``benchmarks/results/bench_synth.json`` (git-ignored).  The exit code is 1 when a size exceeds
``--budget`` seconds per 50,000 households (default 30; linear above 50,000).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))

from survey import synth as S  # noqa: E402

CHILD = """
import json, sys, time
from pathlib import Path
from survey import synth as S
out, households, seed, replicate, n_rep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
variant = sys.argv[6]
t0 = time.perf_counter()
if variant == "screener":
    S.synth_screener(out, households=households, seed=seed)
else:
    S.synth(out, households=households, seed=seed, replicate=replicate or None,
            n_replicates=int(n_rep) if n_rep else None)
seconds = time.perf_counter() - t0
meta = json.loads((Path(out) / "truth.json").read_text())
sizes = {p.name: p.stat().st_size for p in sorted(Path(out).iterdir())}
print(json.dumps({"seconds": seconds, "population": meta["population"], "sample": meta["sample"], "bytes": sizes}))
"""


def child_run(households: int, seed: int, replicate: str | None, n_replicates: int | None,
              variant: str = "national") -> dict:
    """synth() (or synth_screener()) end to end in a child process: its result, wall time and
    peak resident memory."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth."))
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
        args = [sys.executable, "-c", CHILD, str(tmp / "synthetic"), str(households), str(seed), replicate or "",
                str(n_replicates or ""), variant]
        t0 = time.perf_counter()
        with open(tmp / "stderr.txt", "w+b") as errf:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, env=env)
            out = proc.stdout.read()
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves: the child's own rusage
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - t0
            errf.seek(0)
            err = errf.read()
        if proc.returncode:
            raise RuntimeError(f"synth of {households} households failed: {err.decode()[-2000:]}")
        res = json.loads(out.decode().strip().splitlines()[-1])
        res["wall_seconds_with_startup"] = wall
        res["peak_rss_mb"] = usage.ru_maxrss / 1024  # kB on Linux
        res["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the child's, start-up included: load-proof
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def phases(households: int, seed: int, replicate: str | None, n_replicates: int | None,
           variant: str = "national") -> dict:
    """The in-memory phases in this process (the population whole)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth."))
    try:
        t = {}
        t0 = time.perf_counter()
        pop = S.make_population(seed, 20 * households)
        t["population"] = time.perf_counter() - t0
        if variant == "screener":
            t1 = time.perf_counter()
            sample = S.draw_screener_sample(pop, households, seed)
            t["sample"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            S.screener_truth(pop, sample.victims_5y)
            t["truth"] = time.perf_counter() - t2
            return t
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
        return t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, nargs="+", default=[50_000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variant", choices=["national", "screener"], default="national",
                    help="national: households, persons and incidents files (default); screener: the "
                         "respondent file of `survey synth --variant screener`")
    ap.add_argument("--replicates", choices=["JKn", "bootstrap"], default=None)
    ap.add_argument("--n-replicates", type=int, default=None)
    ap.add_argument("--phases", action="store_true", help="also time the in-memory phases (in this process)")
    ap.add_argument("--budget", type=float, default=30.0,
                    help="seconds allowed per 50,000 households end to end (default 30)")
    ap.add_argument("--out", default=None,
                    help="results JSON (default benchmarks/results/bench_synth.json, bench_synth_screener.json "
                         "for the screener)")
    args = ap.parse_args(argv)
    if args.variant == "screener" and args.replicates:
        ap.error("--replicates applies to the national variant only")

    results, ok = [], True
    for n in args.households:
        r = child_run(n, args.seed, args.replicates, args.n_replicates, args.variant)
        s, p = r["sample"], r["population"]
        budget = args.budget * max(1.0, n / 50_000)
        within = r["seconds"] <= budget
        ok &= within
        what = ("screener survey" if args.variant == "screener" else
                f"{s['incidents']:,} incidents; replicates: {args.replicates or 'none'}")
        print(f"survey synth {n:,} households issued ({s['households_responding']:,} responding); population "
              f"{p['households']:,} households, {p['persons']:,} adults, {p['incidents']:,} incidents; {what}")
        print(f"  {r['seconds']:8.1f} s in synth() ({r['wall_seconds_with_startup']:.1f} s with start-up, "
              f"{r['cpu_seconds']:.1f} s CPU), peak memory {r['peak_rss_mb']:,.0f} MB; budget {budget:g} s: {'OK' if within else 'OVER BUDGET'}")
        print("  files: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in r["bytes"].items()))
        if args.phases:
            r["phases_in_memory"] = phases(n, args.seed, args.replicates, args.n_replicates, args.variant)
            print("  in-memory phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["phases_in_memory"].items()))
        results.append({"households": n, "within_budget": within, "budget_seconds": budget,
                        "load_average": os.getloadavg(), **r})
    result = {"variant": args.variant, "seed": args.seed, "replicates": args.replicates, "n_replicates": args.n_replicates,
              "chunk_households": S.CHUNK_HOUSEHOLDS, "runs": results,
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()}}
    out = Path(args.out or HERE / "results" / ("bench_synth_screener.json" if args.variant == "screener"
                                                else "bench_synth.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
