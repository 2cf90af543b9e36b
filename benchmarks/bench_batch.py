"""Batch runs: N parameter sets on J process workers (``survey batch --jobs J``).

Reports the total (wall) time of the batch against the work it contains: for every executed
notebook, the kernel start-up (papermill's notebook start to its first cell) and the cell time
(papermill's per-cell durations), summed over all runs.  ``speed-up = sum / wall`` and
``efficiency = speed-up / J``; the rest of a notebook's wall time (reading and writing the
notebook, kernel shutdown) and the per-run finishing work (HTML, Excel, manifest, the rename)
are listed too.

    .venv/bin/python benchmarks/bench_batch.py                       # 20 sets, 2 workers
    .venv/bin/python benchmarks/bench_batch.py --notebooks all       # every notebook (~4x longer)
    .venv/bin/python benchmarks/bench_batch.py --sets 4 --jobs 1     # quick look

The synthetic survey (``--households``, seed 1) and the parameter sets are written to a
temporary project folder; results go to ``benchmarks/results/bench_batch.json`` (git-ignored).
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

import yaml

ROOT = Path(__file__).resolve().parents[1]

# variations a national office would run: domains, crime selections, rules
VARIANTS = [
    {},
    {"domains": ["region"]},
    {"domains": ["sex", "age_band"]},
    {"domains": ["urban", "tenure"]},
    {"crime_types": ["household", "personal", "violent"]},
    {"crime_types": ["burglary", "vehicle_theft", "assault"], "domains": ["region"]},
    {"publication": "bjs"},
    {"publication": {"preset": "cv_bands", "cv_bands": [20, 35]}},
    {"cap_rule": "percentile 98"},
    {"cap_rule": "fixed 5", "domains": ["region", "urban"]},
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=20, help="parameter sets (default 20)")
    ap.add_argument("--jobs", type=int, default=2, help="process workers (default 2)")
    ap.add_argument("--notebooks", default="ingest,victimization,summary",
                    help="notebooks per run, comma-separated, or 'all' (default ingest,victimization,summary)")
    ap.add_argument("--households", type=int, default=3000, help="synthetic sample size (default 3000)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project folder")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_batch.json"))
    args = ap.parse_args(argv)

    from survey.batch import run_batch
    from survey.params import NOTEBOOKS
    from survey.synth import synth

    notebooks = list(NOTEBOOKS) if args.notebooks == "all" else [n.strip() for n in args.notebooks.split(",")]
    project = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        (project / "pyproject.toml").write_text("")
        synth(project / "data" / "synthetic", households=args.households, seed=1)
        (project / "specs").mkdir()
        shutil.copy(ROOT / "specs" / "synthetic.yaml", project / "specs" / "synthetic.yaml")
        pdir = project / "parameters"
        pdir.mkdir()
        files = []
        for i in range(args.sets):
            p = {"name": f"set{i + 1:02d}", "spec": "specs/synthetic.yaml", "notebooks": notebooks,
                 "period": "Synthetic year", "seed": i + 1, **VARIANTS[i % len(VARIANTS)]}
            f = pdir / f"set{i + 1:02d}.yaml"
            f.write_text(yaml.safe_dump(p))
            files.append(str(f))
        print(f"{args.sets} parameter sets x {len(notebooks)} notebooks ({', '.join(notebooks)}) on {args.jobs} "
              f"process workers; synthetic survey of {args.households:,} households; {os.cpu_count()} CPUs",
              flush=True)
        t0 = time.perf_counter()
        results = run_batch(files, jobs=args.jobs, root=str(project), notebook_dir=str(ROOT / "notebooks"),
                            progress=None)
        wall = time.perf_counter() - t0
        failed = [r for r in results if r["status"] != "succeeded"]
        for r in failed:
            print(f"FAILED {r['name']}: {r['error']}", file=sys.stderr)
        startup = cells = nb_wall = html = excel = run_wall = 0.0
        per_nb: dict[str, list[float]] = {}
        for r in results:
            run_wall += r["seconds"] or 0.0
            for n in r["notebooks"]:
                startup += n.get("kernel_startup") or 0.0
                cells += n.get("cells") or 0.0
                nb_wall += n.get("seconds") or 0.0
                per_nb.setdefault(n["name"], []).append((n.get("kernel_startup") or 0.0) + (n.get("cells") or 0.0))
            m = Path(r["output_dir"]) / "manifest.json" if r["status"] == "succeeded" else None
            if m and m.exists():
                t = json.loads(m.read_text())["timings_seconds"]
                html += t["html"]
                excel += t["excel"]
        work = startup + cells
        res = {
            "sets": args.sets, "jobs": args.jobs, "notebooks": notebooks, "households": args.households,
            "cpus": os.cpu_count(), "python": platform.python_version(), "failed": len(failed),
            "wall_seconds": round(wall, 1),
            "sum_kernel_startup_seconds": round(startup, 1), "sum_cell_seconds": round(cells, 1),
            "sum_startup_plus_cells_seconds": round(work, 1),
            "sum_notebook_wall_seconds": round(nb_wall, 1),
            "sum_other_notebook_seconds": round(nb_wall - work, 1),
            "sum_html_seconds": round(html, 1), "sum_excel_seconds": round(excel, 1),
            "sum_run_seconds": round(run_wall, 1),
            "speedup_vs_startup_plus_cells": round(work / wall, 2),
            "efficiency": round(work / wall / args.jobs, 2),
            "mean_startup_plus_cells_per_notebook": {k: round(sum(v) / len(v), 2) for k, v in per_nb.items()},
        }
        print(f"wall time of the batch                 {wall:8.1f} s")
        print(f"sum of kernel start-up                 {startup:8.1f} s")
        print(f"sum of cell time                       {cells:8.1f} s")
        print(f"sum of start-up + cells                {work:8.1f} s   speed-up {work / wall:.2f} on {args.jobs} "
              f"workers (efficiency {work / wall / args.jobs:.0%})")
        print(f"sum of notebook wall (+ IO, shutdown)  {nb_wall:8.1f} s")
        print(f"sum of HTML / Excel per run            {html:8.1f} / {excel:.1f} s")
        print(f"sum of run wall (worker view)          {run_wall:8.1f} s")
        print("mean start-up + cells per notebook: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in res["mean_startup_plus_cells_per_notebook"].items()))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {out}")
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {project}")
        else:
            shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
