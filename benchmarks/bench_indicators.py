"""Time the full indicator suite on a large synthetic survey: target under 10 s on 2 cores.

The job (issue: "10 crime types x 50 domains x all indicators with SEs on a 500,000-respondent
synthetic survey"):

- data: ``survey.synth`` population of ``--population-households`` households (fixed seed),
  stratified two-stage sample of ``--households`` issued households, ``--households-per-psu``
  per PSU; about 68% respond and one adult each is the respondent, so 740,000 issued households
  give about 500,000 respondents.  The population's areas (the PSUs) are made smaller than the
  generator's default (``--mean-area-size``, ``--min-area-size``) so that the sample's 18,500
  PSUs of 40 households fit in 1.5 million households.  Written as .sav files in a temporary
  folder (or ``--data DIR``, reused when it holds the same configuration).
- spec: ``specs/synthetic.yaml`` with its paths rewritten, plus a 28-level domain ``district``
  declared from an existing variable: a ``recode`` of the PSU code, district k+1 holding the
  PSUs with ``psu % 28 == k`` (no file is modified).  Domains: region 8 + age band 7 + sex 2 +
  urban 2 + tenure 3 + district 28 = 50 cells (person rates; household rates have no sex and
  age band: 41 cells), plus the overall row.
- crimes: the 10 crime types and the spec's 3 groups (the default of ``indicator_table``);
  ``--types-only`` leaves the groups out.  Indicators: every family (the default).

Timed, best of ``--reps`` (default 3): ``load`` (read the three .sav files, link, count, build
the respondent table), ``indicator_table`` cold (on a freshly loaded ``SurveyData``, so the
household and person designs are built inside the call) and warm (a second call on the same
data: designs and domain cells cached).  Then each indicator family alone (warm, one call each,
which includes the table assembly and publication rule of that call), and a cProfile of one
cold call: the top functions by own time and by cumulative time.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_indicators.py                    # about 500,000 respondents
    .venv/bin/python benchmarks/bench_indicators.py --data /tmp/bench_ind   # keep the files for reruns
    .venv/bin/python benchmarks/bench_indicators.py --households 74000 --population-households 150000

Results are printed and written to ``benchmarks/results/bench_indicators.json`` (git-ignored);
the profile to ``benchmarks/results/bench_indicators.prof`` (``python -m pstats``).  The exit
code is 1 when the best cold time exceeds ``--budget`` seconds (default 10).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from survey import synth as S  # noqa: E402
from survey.indicators import INDICATORS, indicator_table  # noqa: E402
from survey.ingest import load  # noqa: E402

SPEC = ROOT / "specs" / "synthetic.yaml"
N_DISTRICTS = 28


def _rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _src_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "src" / "survey").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def write_spec(folder: Path, n_areas: int) -> Path:
    """The synthetic spec pointing into ``folder``, with the 28-level ``district`` domain (a
    recode of the PSU code).  Edited as text: YAML 1.1 loaders read the key ``on`` as a boolean."""
    text = SPEC.read_text().replace("../data/synthetic/", "")
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("publication:"))
    if not lines[at - 1].startswith("  ") or "domains:" not in text:  # pragma: no cover - spec layout guard
        raise SystemExit(f"{SPEC}: expected the domains section just before 'publication:'")
    dom = [f"  district:  # benchmark domain: PSU code modulo {N_DISTRICTS}",
           "    variable: psu", f"    label: District (PSU code modulo {N_DISTRICTS})", "    recode:"]
    for k in range(N_DISTRICTS):
        codes = ", ".join(str(p) for p in range(1, n_areas + 1) if p % N_DISTRICTS == k)
        dom.append(f'      "District {k + 1:02d}": [{codes}]')
    p = folder / "synthetic_bench.yaml"
    p.write_text("\n".join(lines[:at] + dom + lines[at:]) + "\n")
    return p


def generate(folder: Path, args) -> dict:
    """Population, sample and .sav files in ``folder`` (reused when the configuration matches)."""
    config = {k: getattr(args, k) for k in ("population_households", "households", "households_per_psu",
                                            "mean_area_size", "min_area_size", "seed")}
    meta_path = folder / "bench_meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("config") == config and all((folder / f).exists() for f in meta["files"]):
            print(f"reusing the data in {folder}")
            write_spec(folder, int(meta["population"]["areas"]))  # the spec may have changed
            meta["reused"] = True
            return meta
    folder.mkdir(parents=True, exist_ok=True)
    t = {}
    t0 = time.perf_counter()
    pop = S.make_population(args.seed, args.population_households, mean_area_size=args.mean_area_size,
                            min_area_size=args.min_area_size)
    t["population"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    sample = S.draw_sample(pop, args.households, args.seed, households_per_psu=args.households_per_psu)
    t["sample"] = time.perf_counter() - t1
    rss_after_sample = _rss_mb()
    t2 = time.perf_counter()
    paths = S.write_sample(sample, folder)
    t["write"] = time.perf_counter() - t2
    n_areas = int(pop.info["areas"])
    spec_path = write_spec(folder, n_areas)
    meta = {"config": config, "population": pop.info, "sample": sample.info | {"psus_per_stratum": None},
            "seconds": t, "peak_rss_mb_after_sample": rss_after_sample,
            "files": [p.name for p in paths] + [spec_path.name],
            "bytes": {p.name: p.stat().st_size for p in paths}, "reused": False}
    meta_path.write_text(json.dumps(meta, indent=1, default=_json_default) + "\n")
    del pop, sample
    gc.collect()
    return meta


def _json_default(o):
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _best(times: list[float]) -> dict:
    return {"best": min(times), "median": sorted(times)[len(times) // 2], "all": times}


def top_functions(prof: cProfile.Profile, key: str, limit: int = 25) -> list[dict]:
    st = pstats.Stats(prof)
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{_short(file)}:{func}", "line": line, "calls": nc, "own_s": tt, "cum_s": ct})
    rows.sort(key=lambda r: -r[key])
    return rows[:limit]


def _short(file: str) -> str:
    for marker in ("/src/", "/site-packages/", "/lib/python"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population-households", type=int, default=1_500_000)
    ap.add_argument("--households", type=int, default=740_000, help="issued households (default 740000)")
    ap.add_argument("--households-per-psu", type=int, default=40)
    ap.add_argument("--mean-area-size", type=float, default=64.0,
                    help="mean households per area in the population (default 64)")
    ap.add_argument("--min-area-size", type=int, default=42, help="smallest area (default 42)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--types-only", action="store_true", help="the 10 crime types without the 3 groups")
    ap.add_argument("--no-families", action="store_true", help="skip the per-family timings")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--per-domain", action="store_true", help="also time each domain alone (warm)")
    ap.add_argument("--data", default=None, help="folder for the generated files (kept; reused when it matches)")
    ap.add_argument("--budget", type=float, default=10.0)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_indicators.json"))
    args = ap.parse_args(argv)

    load_start = os.getloadavg()
    digest = _src_digest()
    tmp = None
    if args.data:
        folder = Path(args.data)
    else:
        tmp = folder = Path(tempfile.mkdtemp(prefix="bench_indicators."))
    try:
        meta = generate(folder, args)
        spec_path = folder / "synthetic_bench.yaml"
        s = meta["sample"]
        print(f"data: population {meta['population']['households']:,} households "
              f"({meta['population']['persons']:,} adults, {meta['population']['areas']:,} areas); sample "
              f"{s['households_issued']:,} households issued, {s['persons']:,} respondents, {s['psus']:,} PSUs "
              f"({s['certainty_psus']:,} certainty), {s['incidents']:,} incidents")
        if not meta["reused"]:
            print("  generation: " + ", ".join(f"{k} {v:.1f} s" for k, v in meta["seconds"].items())
                  + f"; peak RSS {meta['peak_rss_mb_after_sample']:,.0f} MB; files "
                  + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in meta["bytes"].items()))

        # load, then the cold table on each fresh load
        load_t, cold_t, warm_t, cold_cpu, warm_cpu = [], [], [], [], []
        table = None
        for _ in range(args.reps):
            gc.collect()
            t0 = time.perf_counter()
            data = load(spec_path)
            load_t.append(time.perf_counter() - t0)
            crimes = data.crime_types if args.types_only else None
            t1, c1 = time.perf_counter(), time.process_time()
            table = indicator_table(data, crime_types=crimes)
            cold_t.append(time.perf_counter() - t1)
            cold_cpu.append(time.process_time() - c1)
            t2, c2 = time.perf_counter(), time.process_time()
            indicator_table(data, crime_types=crimes)
            warm_t.append(time.perf_counter() - t2)
            warm_cpu.append(time.process_time() - c2)
            print(f"  load {load_t[-1]:.2f} s, indicator_table cold {cold_t[-1]:.2f} s (CPU {cold_cpu[-1]:.2f} s), "
                  f"warm {warm_t[-1]:.2f} s (CPU {warm_cpu[-1]:.2f} s); load average {os.getloadavg()[0]:.1f}",
                  flush=True)
        n_resp = int(data.respondents["_respondent"].sum())
        doms = {d: int(data.respondents[d].cat.categories.size) for d in data.spec.domains}
        counts = table.groupby("indicator").size().to_dict()
        print(f"table: {len(table):,} rows ({n_resp:,} respondents; domains "
              + ", ".join(f"{d} {k}" for d, k in doms.items()) + f" = {sum(doms.values())} cells)")

        # the designs alone (cold), then each family alone (warm)
        data = load(spec_path)
        t0 = time.perf_counter()
        data.design("household")
        t_dh = time.perf_counter() - t0
        t0 = time.perf_counter()
        data.design("person")
        t_dp = time.perf_counter() - t0
        families = {}
        if not args.no_families:
            indicator_table(data, crime_types=crimes, indicators=["prevalence"])  # warm the domain cells
            for fam in INDICATORS:
                if fam not in counts:
                    continue
                t0 = time.perf_counter()
                indicator_table(data, crime_types=crimes, indicators=[fam])
                families[fam] = time.perf_counter() - t0
            print("  per family (warm, one call each): " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                                     sorted(families.items(), key=lambda x: -x[1])))
            print(f"  designs (cold): household {t_dh:.2f} s, person {t_dp:.2f} s")
        per_domain = {}
        if args.per_domain:
            for dom in data.spec.domains:
                t0 = time.perf_counter()
                indicator_table(data, crime_types=crimes, domains=[dom])
                per_domain[dom] = time.perf_counter() - t0
            t0 = time.perf_counter()
            indicator_table(data, crime_types=crimes, domains=[])
            per_domain["overall only"] = time.perf_counter() - t0
            print("  per domain (warm, with the overall rows; all families): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in per_domain.items()))

        prof_rows = {}
        if not args.no_profile:
            data = load(spec_path)
            prof = cProfile.Profile()
            prof.enable()
            indicator_table(data, crime_types=crimes)
            prof.disable()
            prof_path = Path(args.out).with_suffix(".prof")
            prof_path.parent.mkdir(parents=True, exist_ok=True)
            prof.dump_stats(str(prof_path))
            prof_rows = {"by_own_time": top_functions(prof, "own_s"), "by_cumulative_time": top_functions(prof, "cum_s")}
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(1)
            total = float(buf.getvalue().split("in ")[1].split(" seconds")[0]) if " seconds" in buf.getvalue() else None
            print(f"profile of one cold call (total {total:.2f} s under cProfile), top by own time:")
            for r in prof_rows["by_own_time"][:15]:
                print(f"  {r['own_s']:7.2f} s own {r['cum_s']:7.2f} s cum {r['calls']:>8} calls  {r['function']}")
            print("top by cumulative time (survey functions):")
            for r in [r for r in prof_rows["by_cumulative_time"] if r["function"].startswith("survey/")][:15]:
                print(f"  {r['cum_s']:7.2f} s cum {r['own_s']:7.2f} s own {r['calls']:>8} calls  {r['function']}")
            print(f"wrote {prof_path}")

        best = min(cold_t)
        verdict = "OK" if best <= args.budget else "OVER BUDGET"
        print(f"indicator_table cold best {best:.2f} s (CPU {min(cold_cpu):.2f} s; warm {min(warm_t):.2f} s), "
              f"load best {min(load_t):.2f} s, "
              f"budget {args.budget:g} s: {verdict}")
        load_end = os.getloadavg()
        if _src_digest() != digest:
            print("WARNING: src/survey changed while the benchmark ran")
        result = {
            "config": vars(args), "data": meta, "respondents": n_resp, "domains": doms,
            "rows": len(table), "rows_per_indicator": counts,
            "crime_types": (data.crime_types if args.types_only else data.crime_types + data.crime_groups),
            "seconds": {"load": _best(load_t), "indicator_table_cold": _best(cold_t),
                        "indicator_table_warm": _best(warm_t), "indicator_table_cold_cpu": _best(cold_cpu),
                        "indicator_table_warm_cpu": _best(warm_cpu), "design_household": t_dh, "design_person": t_dp,
                        "families_warm": families, "domains_warm": per_domain},
            "within_budget": best <= args.budget, "profile": prof_rows, "peak_rss_mb": _rss_mb(),
            "src_sha256": digest, "loadavg_start": load_start, "loadavg_end": load_end,
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count()},
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
        print(f"wrote {out}")
        return 0 if best <= args.budget else 1
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
