"""The indicator table streamed from a pooled file beyond memory (survey.stream_indicators): time
and peak memory on a generated file.

The file is bench_stream.py's (160 strata x 2 PSUs, lognormal weights ``w``, a 50-level text
domain ``region``, --replicates Fay replicate weights as float32) with the items of a
respondent-based victimization survey added: ``hhid``, ``resp`` (respondent 1/0), ``sex``,
``age``, for burglary (household) and assault (person) a 12-month screener (1 yes, 2 no, 8 don't
know), a count (97 "too many to remember") and reported to the police (1, 2, 8), a 5-year
burglary screener, and ``safedark`` (feeling safe after dark, 1-4, 5 never goes out, 8).  The
spec (written next to the file) is a replicate design (Fay, rho 0.5) on ``w`` for households and
persons, domains region, sex (labels) and age band (bands), a cap of 10, and every family.

``--incidents``: the NCVS shape.  An incident file is written next to the file from its counts
(one row per victimization of a respondent: crime code, an out-of-scope flag excluded by a rule,
series incidents with their number of times, an incident weight, reported to the police) and
the spec counts victimizations from it (``victimization.source: incidents``), the respondent
file still streaming; the incident file is held in memory.

    .venv/bin/python benchmarks/bench_stream_indicators.py                 # 10M rows x 160 replicates
    .venv/bin/python benchmarks/bench_stream_indicators.py --rows 200000 --replicates 40 --compare
    .venv/bin/python benchmarks/bench_stream_indicators.py --keep /data/pooled.parquet
    .venv/bin/python benchmarks/bench_stream_indicators.py --rows 500000 --replicates 40 --incidents --compare

The table is computed in a fresh process; its peak RSS (VmHWM after a reset, else ru_maxrss) and
the time are reported, with the interpreter's baseline.  ``--compare`` also loads the file in
memory and computes the in-memory table (small files only) and reports the largest relative
differences.  ``--dask N`` also computes the table on a Dask LocalCluster of N worker processes
(one task per row group, ``indicator_table(dask=True)``) and reports its time and the largest
relative differences to the one-machine table.  Results: benchmarks/results/bench_stream_indicators.json.
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
sys.path.insert(0, str(HERE))
DEFAULT_OUT = HERE / "results" / "bench_stream_indicators.json"


def crime_items(rng, m, psu, dom, w, offset):
    import pyarrow as pa

    risk = rng.gamma(1.0, 1.0, m) * (1 + 0.01 * dom)
    cols = {"hhid": pa.array(np.arange(offset + 1, offset + m + 1), pa.int64()),
            "resp": pa.array((rng.random(m) < 0.96).astype(np.int8)),
            "sex": pa.array(rng.integers(1, 3, m).astype(np.int8)),
            "age": pa.array(rng.integers(16, 95, m).astype(np.int16))}
    for c, p in (("burg", 0.06), ("asl", 0.04)):
        vic = rng.random(m) < p * risk
        dk = rng.random(m) < 0.02
        scr = np.where(dk, 8, np.where(vic, 1, 2)).astype(np.float32)
        cnt = np.where(vic & ~dk, 1 + rng.poisson(0.6 * risk), np.nan).astype(np.float32)
        cnt[vic & ~dk & (rng.random(m) < 0.03)] = 97
        pol = np.where(vic & ~dk, rng.choice(np.array([1, 2, 8], np.float32), m, p=[0.45, 0.5, 0.05]), np.nan)
        cols[f"{c}12"], cols[f"{c}n"], cols[f"{c}pol"] = pa.array(scr), pa.array(cnt), pa.array(pol.astype(np.float32))
    b5 = np.where(rng.random(m) < 0.15, 1, 2).astype(np.float32)
    cols["burg5"] = pa.array(b5)
    cols["safedark"] = pa.array(rng.choice(np.array([1, 2, 3, 4, 5, 8], np.float32), m,
                                           p=[0.3, 0.3, 0.2, 0.12, 0.04, 0.04]))
    return cols


def spec_dict(path: Path) -> dict:
    items = []
    for name, c, unit in (("burglary", "burg", "household"), ("assault", "asl", "person")):
        items.append({"name": name, "unit": unit, "victim": {"variable": f"{c}12", "yes": [1], "missing": [8]},
                      "count": {"variable": f"{c}n", "dont_know": [97], "dont_know_value": "cap"},
                      "reported": {"variable": f"{c}pol", "yes": [1], "no": [2], "unknown": [8]}})
    items.append({"name": "burglary_5y", "unit": "household", "period": "5 years",
                  "victim": {"variable": "burg5", "yes": [1]}})
    return {
        "survey": "pooled", "period": "2016-2025 pooled",
        "files": {"respondents": {"path": str(path), "unit": "person", "keys": ["hhid"], "respondents": "resp == 1",
                                  "link": {"to": "households", "on": ["hhid"]}},
                  "households": {"path": str(path), "unit": "household", "keys": ["hhid"]}},
        "design": {"file": "respondents", "weights": {"household": "w", "person": "w"},
                   "replicate": {"columns": r"^repw[0-9]+$", "method": "Fay", "rho": 0.5},
                   "engine": {"mode": "auto", "chunk_rows": 65536}},
        "victimization": {"source": "respondent", "types": items, "cap": {"rule": "fixed", "value": 10},
                          "groups": {"property": ["burglary"]}},
        "perception": [{"name": "safe_dark", "variable": "safedark", "indicator": "feeling_safe",
                        "positive": [1, 2], "missing": [8]}],
        "domains": {"region": {"variable": "region"},
                    "sex": {"variable": "sex", "labels": {1: "Male", 2: "Female"}},
                    "age_band": {"variable": "age", "bands": [16, 30, 45, 65]}},
        "publication": {"preset": "ons", "min_base": 50},
    }


def write_incidents(path: Path, out: Path, seed: int = 7) -> int:
    """The incident file of ``--incidents``, from the respondent file's counts (batch by batch)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    pf = pq.ParquetFile(path)
    writer = None
    n = 0
    try:
        for b in pf.iter_batches(batch_size=1 << 18, columns=["hhid", "w", "resp", "burgn", "asln"]):
            d = b.to_pandas()
            ok = d["resp"].to_numpy() == 1
            parts = []
            for col, code in (("burgn", 31), ("asln", 11)):
                k = np.nan_to_num(d[col].to_numpy(dtype=float))
                k = np.where(ok & (k < 97), k, 0).astype(np.int64)
                parts.append((np.repeat(d["hhid"].to_numpy(), k), np.repeat(d["w"].to_numpy(), k),
                              np.full(int(k.sum()), code)))
            ids = np.concatenate([p[0] for p in parts])
            m = len(ids)
            t = pa.table({"hhid": ids, "code": np.concatenate([p[2] for p in parts]).astype(np.int16),
                          "abroad": (rng.random(m) < 0.01).astype(np.int8),
                          "series": (rng.random(m) < 0.03).astype(np.int8),
                          "times": rng.choice(np.array([6, 8, 12, 997], np.int16), m),
                          "iwt": np.concatenate([p[1] for p in parts]) * rng.uniform(0.9, 1.1, m),
                          "police": rng.choice(np.array([1, 2, 8], np.int8), m, p=[0.45, 0.5, 0.05])})
            t = t.append_column("incid", pa.array(np.arange(n + 1, n + m + 1)))
            writer = writer or pq.ParquetWriter(str(out), t.schema)
            writer.write_table(t)
            n += m
    finally:
        if writer is not None:
            writer.close()
    return n


def incident_spec(spec: dict, incidents: Path) -> dict:
    """``spec_dict``'s survey with victimizations counted from the incident file."""
    spec = dict(spec)
    spec["files"] = dict(spec["files"], incidents={
        "path": str(incidents), "unit": "incident", "keys": ["incid"],
        "link": {"to": "respondents", "on": ["hhid"], "unmatched": "error"}})
    spec["victimization"] = {
        "source": "incidents", "file": "incidents", "crime_code": "code", "weight": "iwt",
        "types": [{"name": "burglary", "unit": "household", "codes": [31]},
                  {"name": "assault", "unit": "person", "codes": [11]}],
        "groups": {"property": ["burglary"]},
        "exclude": [{"name": "abroad", "where": "abroad == 1"}],
        "series": {"when": "series == 1", "count": "times", "unknown_codes": [997], "unknown_value": 6, "cap": 10},
        "cap": {"rule": "fixed", "value": 10},
        "reported": {"variable": "police", "yes": [1], "no": [2], "unknown": [8]}}
    return spec


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith(key))


def dask_child(spec: str, chunk_rows: int, workers: int) -> dict:
    """The same table on a Dask LocalCluster (worker processes, one thread each)."""
    import distributed

    from survey import stream_indicators as SI

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as c, distributed.Client(c):
        t0 = time.perf_counter()
        table = SI.indicator_table(spec, chunk_rows=chunk_rows, dask=True)
        secs = time.perf_counter() - t0
    table.to_parquet(Path(spec).with_suffix(".dask.parquet"))
    return {"seconds": secs, "rows": len(table), "engine": table.attrs["engine"], "workers": workers}


def child(spec: str, chunk_rows: int) -> dict:
    from survey import stream_indicators as SI

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status("VmRSS:")
    except OSError:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    plan = SI.engine_plan(spec)
    t0 = time.perf_counter()
    table = SI.indicator_table(spec, chunk_rows=chunk_rows)
    secs = time.perf_counter() - t0
    try:
        peak = _status("VmHWM:")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    table.to_parquet(Path(spec).with_suffix(".streamed.parquet"))
    return {"seconds": secs, "cpu_seconds": cpu.ru_utime + cpu.ru_stime, "peak_rss": peak, "baseline_rss": base,
            "rows": len(table), "families": sorted(set(table["indicator"])), "engine": table.attrs["engine"],
            "plan": plan.line()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--replicates", type=int, default=160)
    ap.add_argument("--chunk-rows", type=int, default=65_536)
    ap.add_argument("--compare", action="store_true", help="also the in-memory table (small files)")
    ap.add_argument("--incidents", action="store_true", help="count victimizations from an incident file")
    ap.add_argument("--keep", type=Path, default=None, help="write the file here and keep it (reused if present)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--dask", type=int, default=0, metavar="WORKERS",
                    help="also the table on a Dask LocalCluster of WORKERS processes (compared with the streamed one)")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_dask_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._dask_child:
        print(json.dumps(dask_child(args._dask_child, args.chunk_rows, args.dask)))
        return 0
    if args._child:
        print(json.dumps(child(args._child, args.chunk_rows)))
        return 0
    import yaml
    from bench_stream import generate

    tmp = None
    if args.keep is not None:
        path = args.keep
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench_stream_ind_", dir=os.environ.get("BENCH_TMP")))
        path = tmp / "pooled.parquet"
    report = {"config": vars(args) | {"keep": str(args.keep), "out": str(args.out)}}
    try:
        if not path.exists():
            print(f"writing {args.rows:,} rows x {args.replicates} replicate weights to {path} ...", flush=True)
            report["generate_seconds"] = generate(path, args.rows, args.replicates, extra=crime_items)
        spec = path.with_suffix(".yaml")
        sd = spec_dict(path)
        if args.incidents:
            inc = path.with_name(path.stem + "_incidents.parquet")
            t0 = time.perf_counter()
            report["incidents"] = {"rows": write_incidents(path, inc), "seconds": time.perf_counter() - t0}
            sd = incident_spec(sd, inc)
            spec = path.with_name(path.stem + "_incidents.yaml")
            print(f"incident file: {report['incidents']['rows']:,} incidents", flush=True)
        spec.write_text(yaml.safe_dump(sd, sort_keys=False))
        report["file_bytes"] = path.stat().st_size
        print(f"file {report['file_bytes'] / 2**30:.2f} GiB; load {os.getloadavg()[0]:.1f}", flush=True)
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_child", str(spec),
                               "--chunk-rows", str(args.chunk_rows)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            return 1
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        report["streamed"] = res
        print(res["plan"])
        print(f"streamed indicator table: {res['rows']} rows, {res['seconds']:.1f} s "
              f"(CPU {res['cpu_seconds']:.1f} s), peak RSS {res['peak_rss'] / 1e6:,.0f} MB "
              f"(baseline {res['baseline_rss'] / 1e6:,.0f} MB); {res['engine']}", flush=True)
        if args.dask:
            import pandas as pd

            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_dask_child", str(spec),
                                   "--chunk-rows", str(args.chunk_rows), "--dask", str(args.dask)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                return 1
            dres = json.loads(proc.stdout.strip().splitlines()[-1])
            got = pd.read_parquet(spec.with_suffix(".dask.parquet"))
            one = pd.read_parquet(spec.with_suffix(".streamed.parquet"))
            assert len(got) == len(one), (len(got), len(one))
            diffs = {}
            for c in ("estimate", "se", "df"):
                a, b = got[c].to_numpy(float), one[c].to_numpy(float)
                ok = np.isfinite(b) & (b != 0)
                diffs[c] = float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok]))) if ok.any() else 0.0
            dres["max_rel_diff_vs_streamed"] = diffs
            report["dask"] = dres
            print(f"on Dask ({args.dask} worker processes): {dres['seconds']:.1f} s; {dres['engine']}; max relative "
                  f"differences to the one-machine table {diffs}", flush=True)
        if args.compare:
            import pandas as pd

            from survey.indicators import indicator_table
            from survey.ingest import load
            from survey.stream_indicators import STREAM_FAMILIES

            t0 = time.perf_counter()
            want = indicator_table(load(spec), indicators=list(STREAM_FAMILIES))
            assert len(want) == res["rows"], (len(want), res["rows"])
            secs = time.perf_counter() - t0
            got = pd.read_parquet(spec.with_suffix(".streamed.parquet"))
            diffs = {}
            for c in ("estimate", "se", "ci_low", "ci_high"):
                a, b = got[c].to_numpy(float), want[c].to_numpy(float)
                ok = np.isfinite(b) & (b != 0)
                diffs[c] = float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok]))) if ok.any() else 0.0
            report["in_memory"] = {"seconds": secs, "max_rel_diff": diffs, "rows": len(want)}
            print(f"in memory: {secs:.1f} s; max relative differences {diffs}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
