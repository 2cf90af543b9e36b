"""Benchmark design-based logistic regression: ours vs svy vs R ``svyglm``.

Issue target: "Design-based logistic regression with 80 replicate weights on n = 500,000 in
<= 2 s (R survey 22 s, svy 4.1 s on this machine), in the same benchmark harness as the engine."

Data: the engine benchmark's generator (``bench_engine.make_data``: n rows, 160 strata x 2 PSUs,
lognormal weights with a PSU factor, 80 Fay replicate weights with rho = 0.5 from a Hadamard
matrix, the 3-level ``cat``), plus predictors and a binary outcome from a logistic model with a
PSU random effect (so the design matters):

    age     integer 16-90 (numeric)
    x1      PSU-level score + row noise (numeric)
    male    0/1
    cat     low / mid / high (engine's; reference low)
    region  R1-R4, a stratum-level categorical (reference R1)
    y       Bernoulli(expit(-1.6 - 0.02 (age - 45) + 0.3 x1 + 0.4 male + {0, 0.3, 0.6}[cat]
                            + {0, 0.2, -0.1, 0.3}[region] + u_psu)),  u_psu ~ N(0, 0.3^2)

Jobs (the model ``y ~ age + x1 + male + cat + region``, logit link):

    rep     replicate-weight variance (Fay, rho = 0.5, 80 replicates; mse = FALSE: centred on the
            mean of the replicates, as R's default)
            ours  ReplicateDesign(df, weights="w", replicate_weights=REP_COLS, method="Fay", rho=0.5)
                  .glm("y ~ age + x1 + male + cat + region", family="binomial")
            svy   Sample(pl_df, Design(wgt="w", rep_wgts=BrrWgts(prefix="repw", n_reps=80, fay_coef=0.5,
                  padding=2))).glm.fit(y="y", x=["age", "x1", "male", Cat("cat", ref="low"), Cat("region", ref="R1")],
                           family="binomial", method="replication")
            R     svyglm(y ~ age + x1 + male + cat + region, design = svrepdesign(data = df, repweights = repw,
                  weights = ~w, type = "Fay", rho = 0.5, combined.weights = TRUE, mse = FALSE),
                  family = quasibinomial())
    taylor  Taylor linearization on strata / PSUs
            ours  Design(df, weights="w", strata="stratum", psu="psu").glm(..., family="binomial")
            svy   Sample(pl_df, Design(stratum="stratum", psu="psu", wgt="w")).glm.fit(..., family="binomial")
            R     svyglm(..., design = svydesign(ids = ~psu, strata = ~stratum, weights = ~w), quasibinomial())

Timing as the engine benchmark: design construction untimed (reported separately), one warm-up
call then the best of ``--reps`` (default 3); "cold" rows time the first fit on a freshly built
design (ours caches the replicate df on the design). R: the data go to R as raw binary arrays,
timed with ``system.time`` after loading, best of ``--r-reps`` (default 2) without a warm-up (R
has no lazy caches). Agreement: max relative difference of coefficients and SEs, ours vs svy
vs R. With ``--profile`` (default on when ours takes over 2 s on the replicate job), a cProfile
of one replicate fit is printed (top functions by cumulative and by own time) and saved.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_models.py             # n = 500,000, with R if Rscript exists
    .venv/bin/python benchmarks/bench_models.py --quick --no-r   # n = 50,000
    .venv/bin/python benchmarks/bench_models.py --no-svy --no-r --profile

Results are written to benchmarks/results/bench_models.json.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

import bench_engine as E  # noqa: E402  (the engine benchmark's generator and helpers)

DEFAULT_OUT = HERE / "results" / "bench_models.json"
TARGET_S = 2.0
FORMULA = "y ~ age + x1 + male + cat + region"
CAT_LEVELS = ("low", "mid", "high")
REGIONS = ("R1", "R2", "R3", "R4")
TRUE_COEF = {"Intercept": -1.6, "age": -0.02, "x1": 0.3, "male": 0.4, "cat:mid": 0.3, "cat:high": 0.6,
             "region:R2": 0.2, "region:R3": -0.1, "region:R4": 0.3}
JOBS = {"rep": "logistic GLM, 80 Fay replicates (rho 0.5)", "taylor": "logistic GLM, Taylor (strata/PSU)"}


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def make_data(n: int, seed: int = 20240611) -> dict[str, Any]:
    """The engine benchmark's file plus age, x1, male, region and a binary y (see the docstring)."""
    d = E.make_data(n, seed)
    rng = np.random.default_rng([seed, 7])
    n_psu = E.N_STRATA * E.PSU_PER_STRATUM
    psu0 = d["psu"] - 1
    stratum0 = d["stratum"] - 1
    age = rng.integers(16, 91, n)
    x1 = rng.normal(0.0, 0.7, n_psu)[psu0] + rng.normal(0.0, 0.7, n)
    male = (rng.random(n) < 0.5).astype(np.int32)
    region = (stratum0 % 4).astype(np.int32)  # 0..3, constant within a stratum
    u = rng.normal(0.0, 0.3, n_psu)[psu0]
    eta = (TRUE_COEF["Intercept"] + TRUE_COEF["age"] * (age - 45) + TRUE_COEF["x1"] * x1
           + TRUE_COEF["male"] * male + np.array([0.0, TRUE_COEF["cat:mid"], TRUE_COEF["cat:high"]])[d["cat"]]
           + np.array([0.0, 0.2, -0.1, 0.3])[region] + u)
    # the -0.02 (age - 45) above puts 45 into the intercept: the fitted intercept is -1.6 + 0.9
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int32)
    d.update({"age": age.astype(np.int32), "x1": x1, "male": male, "region": region, "yb": y})
    return d


def to_pandas(d: dict[str, Any]) -> pd.DataFrame:
    cols: dict[str, Any] = {
        "stratum": d["stratum"], "psu": d["psu"], "w": d["w"], "y": d["yb"].astype(float),
        "age": d["age"].astype(float), "x1": d["x1"], "male": d["male"].astype(float),
        "cat": pd.Categorical.from_codes(d["cat"], categories=list(CAT_LEVELS)),
        "region": pd.Categorical.from_codes(d["region"], categories=list(REGIONS)),
    }
    for j, c in enumerate(E.REP_COLS):
        cols[c] = d["repw"][:, j]
    return pd.DataFrame(cols)


def to_polars(d: dict[str, Any]):
    import polars as pl

    cols: dict[str, Any] = {
        "stratum": d["stratum"], "psu": d["psu"], "w": d["w"], "y": d["yb"].astype(float),
        "age": d["age"].astype(float), "x1": d["x1"], "male": d["male"].astype(float),
        "cat": np.asarray(CAT_LEVELS, dtype=object)[d["cat"]].astype(str),
        "region": np.asarray(REGIONS, dtype=object)[d["region"]].astype(str),
    }
    for j, c in enumerate(E.REP_COLS):
        cols[c] = np.ascontiguousarray(d["repw"][:, j])
    return pl.DataFrame(cols)


def write_binary(d: dict[str, Any], folder: Path) -> None:
    E.write_binary(d, folder)  # stratum, psu, dom, cat, w, y, repw, meta.json
    for k in ("age", "male", "region", "yb"):
        np.asarray(d[k], dtype="<i4").tofile(folder / f"{k}.bin")
    np.asarray(d["x1"], dtype="<f8").tofile(folder / "x1.bin")


# --------------------------------------------------------------------------------------------
# term names -> canonical (Intercept, age, x1, male, cat:mid, cat:high, region:R2, ...)
# --------------------------------------------------------------------------------------------
FACTORS = ("cat", "region")


def canon(term: str) -> str:
    if term in ("Intercept", "(Intercept)", "_intercept_"):
        return "Intercept"
    m = re.fullmatch(r"(\w+)\[T\.(.+)\]", term)  # formulaic
    if m:
        return f"{m.group(1)}:{m.group(2)}"
    for f in FACTORS:
        if term.startswith(f + "_"):  # svy
            return f"{f}:{term[len(f) + 1:]}"
        if term.startswith(f) and term != f:  # R: catmid, regionR2
            return f"{f}:{term[len(f):]}"
    return term


def frame(terms, est, se) -> pd.DataFrame:
    return pd.DataFrame({"term": [canon(t) for t in terms], "estimate": np.asarray(est, float),
                         "se": np.asarray(se, float)})


# --------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------
def ours_designs(pdf: pd.DataFrame):
    import survey as sv

    return {"taylor": lambda: sv.Design(pdf, weights="w", strata="stratum", psu="psu"),
            "rep": lambda: sv.ReplicateDesign(pdf, weights="w", replicate_weights=E.REP_COLS, method="Fay",
                                              rho=E.RHO)}


def ours_fit(design):
    return design.glm(FORMULA, family="binomial")


def ours_norm(res) -> pd.DataFrame:
    return frame(res.table["term"], res.table["estimate"], res.table["se"])


def svy_designs(pldf):
    import svy

    return {"taylor": lambda: svy.Sample(pldf, svy.Design(stratum="stratum", psu="psu", wgt="w")),
            "rep": lambda: svy.Sample(pldf, svy.Design(
                wgt="w", rep_wgts=svy.BrrWgts(prefix="repw", n_reps=E.N_REPS, fay_coef=E.RHO, padding=2)))}


def svy_fit_fn(job: str):
    from svy import Cat

    x = ["age", "x1", "male", Cat("cat", ref="low"), Cat("region", ref="R1")]
    method = "replication" if job == "rep" else "taylor"
    return lambda s: s.glm.fit(y="y", x=x, family="binomial", method=method).fitted


def svy_norm(fit) -> pd.DataFrame:
    return frame([c.term for c in fit.coefs], [c.est for c in fit.coefs], [c.se for c in fit.coefs])


R_SCRIPT = r"""
suppressPackageStartupMessages({library(survey); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; reps <- as.integer(args[2]); out <- args[3]; jobs_wanted <- strsplit(args[4], ",")[[1]]
meta <- fromJSON(file.path(dir, "meta.json"))
n <- meta$n; R <- meta$n_reps
rd <- function(name, what, size, count) {
  con <- file(file.path(dir, name), "rb"); on.exit(close(con))
  readBin(con, what = what, n = count, size = size, endian = "little")
}
t_load <- proc.time()[["elapsed"]]
df <- data.frame(
  stratum = rd("stratum.bin", "integer", 4, n), psu = rd("psu.bin", "integer", 4, n),
  w = rd("w.bin", "double", 8, n), y = rd("yb.bin", "integer", 4, n),
  age = rd("age.bin", "integer", 4, n), x1 = rd("x1.bin", "double", 8, n), male = rd("male.bin", "integer", 4, n)
)
df$cat <- factor(rd("cat.bin", "integer", 4, n), levels = 0:2, labels = c("low", "mid", "high"))
df$region <- factor(rd("region.bin", "integer", 4, n), levels = 0:3, labels = c("R1", "R2", "R3", "R4"))
repw <- matrix(rd("repw.bin", "double", 8, as.double(n) * R), nrow = n, ncol = R)
load_s <- proc.time()[["elapsed"]] - t_load

timeit <- function(f) {       # no warm-up: R keeps no lazy caches; best of reps
  times <- numeric(0); res <- NULL
  for (i in seq_len(reps)) { gc(FALSE); times <- c(times, system.time(res <- f())[["elapsed"]]) }
  list(res = res, t = list(best = min(times), median = median(times), all = times))
}
t_des <- system.time(des <- svydesign(ids = ~psu, strata = ~stratum, weights = ~w, data = df))[["elapsed"]]
t_rdes <- system.time(rdes <- svrepdesign(data = df, repweights = repw, weights = ~w, type = "Fay",
                                          rho = meta$rho, combined.weights = TRUE, mse = FALSE))[["elapsed"]]
f <- y ~ age + x1 + male + cat + region
jobs <- list(rep = function() svyglm(f, design = rdes, family = quasibinomial()),
             taylor = function() svyglm(f, design = des, family = quasibinomial()))
tim <- list(); res <- list()
for (j in intersect(names(jobs), jobs_wanted)) {
  b <- timeit(jobs[[j]])
  tim[[j]] <- b$t
  res[[j]] <- list(term = names(coef(b$res)), estimate = unname(coef(b$res)),
                   se = unname(sqrt(diag(vcov(b$res)))), df = b$res$df.residual)
}
o <- list(version = as.character(packageVersion("survey")), r_version = R.version.string, load_s = load_s,
          design = list(taylor = t_des, rep = t_rdes), jobs = tim, results = res)
write_json(o, out, digits = NA, auto_unbox = TRUE)
"""


def run_r(data_dir: Path, reps: int, workdir: Path, jobs: list[str]) -> dict[str, Any]:
    script = workdir / "bench_models.R"
    script.write_text(R_SCRIPT)
    out = workdir / "r_out.json"
    t0 = time.perf_counter()
    proc = subprocess.run(["Rscript", "--vanilla", str(script), str(data_dir), str(reps), str(out), ",".join(jobs)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    o = json.loads(out.read_text())
    o["wall_s"] = wall
    o["results"] = {j: frame(r["term"], r["estimate"], r["se"]) for j, r in o["results"].items()}
    return o


# --------------------------------------------------------------------------------------------
# agreement, profile
# --------------------------------------------------------------------------------------------
def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:
    m = a.merge(b, on="term", how="outer", suffixes=("_a", "_b"), indicator=True)
    both = m[m["_merge"] == "both"]

    def rel(x, y):
        x, y = x.to_numpy(float), y.to_numpy(float)
        return float(np.nanmax(np.abs(x - y) / np.maximum(np.abs(y), 1e-300))) if len(x) else float("nan")

    return {"terms_a": int(len(a)), "terms_b": int(len(b)), "terms_matched": int(len(both)),
            "unmatched": sorted(m.loc[m["_merge"] != "both", "term"].tolist()),
            "max_rel_diff_estimate": rel(both["estimate_a"], both["estimate_b"]),
            "max_rel_diff_se": rel(both["se_a"], both["se_b"])}


def anatomy(pdf: pd.DataFrame, reps: int = 2) -> dict[str, Any]:
    """Time the steps of one Newton pass over the rows as ``models._replicate_vcov`` does them
    (chunks of 32,768 rows, all replicates at once; binomial family), with the default BLAS
    threads and with one: which operations dominate, and whether BLAS threading helps."""
    from scipy import special
    from threadpoolctl import threadpool_limits

    import survey as sv
    from survey import models as M

    design = sv.ReplicateDesign(pdf, weights="w", replicate_weights=E.REP_COLS, method="Fay", rho=E.RHO)
    fit = design.glm(FORMULA, family="binomial")
    x = fit._x
    y = design.data["y"].to_numpy(float)
    p, R = x.shape[1], design.n_replicates
    b = np.repeat(fit.coef.to_numpy()[:, None], R, axis=1)
    iu = np.triu_indices(p)
    out: dict[str, Any] = {}
    for label, limit in (("default", None), ("blas1", 1)):
        best: dict[str, float] = {}
        for _ in range(reps):
            t: dict[str, float] = {}
            with threadpool_limits(limits=limit, user_api="blas"):
                for a in range(0, len(y), 32_768):
                    sl = slice(a, a + 32_768)
                    t0 = time.perf_counter()
                    xc, wc = x[sl], design.repw[sl, 1:]
                    eta = xc @ b
                    t1 = time.perf_counter()
                    mu = special.expit(eta)
                    t2 = time.perf_counter()
                    v, dmu = M._var_and_dmu("binomial", mu, None)
                    v = np.maximum(v, 1e-300)
                    rg = wc * (y[sl, None] - mu) * dmu / v
                    rh = wc * dmu * dmu / v
                    t3 = time.perf_counter()
                    g = xc.T @ rg
                    t4 = time.perf_counter()
                    xx = xc[:, iu[0]] * xc[:, iu[1]]
                    t5 = time.perf_counter()
                    h = xx.T @ rh
                    t6 = time.perf_counter()
                    for k, dt in (("eta = x @ b", t1 - t0), ("mu = expit(eta)", t2 - t1),
                                  ("working weights (n x R elementwise)", t3 - t2), ("gradient x' @ (n x R)", t4 - t3),
                                  ("row products x_i x_i' (upper triangle)", t5 - t4),
                                  ("Hessian (p(p+1)/2 x n) @ (n x R)", t6 - t5)):
                        t[k] = t.get(k, 0.0) + dt
            del g, h
            best = {k: min(best.get(k, np.inf), v) for k, v in t.items()}
        out[label] = best
    return out


def profile_ours(pdf: pd.DataFrame, top: int = 25) -> dict[str, Any]:
    """cProfile of one replicate fit on a design that has been used once (warm)."""
    design = ours_designs(pdf)["rep"]()
    ours_fit(design)
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    ours_fit(design)
    pr.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(pr)
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": nc, "tottime": tt, "cumtime": ct})
    rows = pd.DataFrame(rows)
    out = {"wall_s": wall,
           "by_cumtime": rows.nlargest(top, "cumtime").to_dict(orient="records"),
           "by_tottime": rows.nlargest(top, "tottime").to_dict(orient="records")}
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(top)
    out["text"] = buf.getvalue()
    return out


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500_000, help="rows (default 500,000)")
    ap.add_argument("--quick", action="store_true", help="n = 50,000")
    ap.add_argument("--no-r", action="store_true", help="skip R even if Rscript is present")
    ap.add_argument("--no-svy", action="store_true", help="skip svy")
    ap.add_argument("--no-ours", action="store_true", help="skip our engine")
    ap.add_argument("--no-taylor", action="store_true", help="skip the Taylor job in svy and R (ours still runs it)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions after one warm-up (default 3)")
    ap.add_argument("--cold-reps", type=int, default=1, help="fits on fresh designs (default 1)")
    ap.add_argument("--no-blas1", action="store_true", help="skip timing ours with BLAS limited to one thread")
    ap.add_argument("--r-reps", type=int, default=2, help="timed repetitions in R, no warm-up (default 2)")
    ap.add_argument("--profile", action="store_true", help="cProfile ours even when under the target")
    ap.add_argument("--no-profile", action="store_true", help="never profile")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    n = 50_000 if args.quick else args.n

    print(f"bench_models: n={n:,}, {E.N_STRATA} strata x {E.PSU_PER_STRATUM} PSUs, {E.N_REPS} Fay replicates "
          f"(rho={E.RHO}); model {FORMULA} (binomial, logit); best of {args.reps} after 1 warm-up", flush=True)
    t0 = time.perf_counter()
    data = make_data(n, args.seed)
    print(f"  data generated in {time.perf_counter() - t0:.1f}s; y mean {data['yb'].mean():.3f}; replicate-weight "
          f"matrix {data['repw'].nbytes / 2**20:.0f} MiB", flush=True)
    report: dict[str, Any] = {
        "config": {"n": n, "strata": E.N_STRATA, "psu_per_stratum": E.PSU_PER_STRATUM, "n_reps": E.N_REPS,
                   "rho": E.RHO, "formula": FORMULA, "family": "binomial (logit); R quasibinomial",
                   "reps": args.reps, "r_reps": args.r_reps, "seed": args.seed, "y_mean": float(data["yb"].mean()),
                   "target_s": TARGET_S},
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_start": list(os.getloadavg()), "numpy": np.__version__, "pandas": pd.__version__,
                    "blas": blas_info()},
        "tools": {}, "notes": [],
    }
    timings: dict[str, dict] = {}
    results: dict[str, dict[str, pd.DataFrame]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_models_"))
    try:
        # ---- ours
        fp = E.engine_fingerprint()
        if args.no_ours:
            print("  ours skipped (--no-ours)", flush=True)
        report["tools"]["ours"] = {"src_sha256": fp}
        pdf = None if args.no_ours else to_pandas(data)
        try:
            if args.no_ours:
                raise _Skip
            print("  running ours ...", flush=True)
            timings["ours"], results["ours"] = _run_subset(ours_designs(pdf), {"rep": ours_fit, "taylor": ours_fit},
                                                           ours_norm, args.reps, args.cold_reps,
                                                           blas1=not args.no_blas1)
        except _Skip:
            pass
        except Exception as e:
            report["tools"]["ours"]["error"] = traceback.format_exc()
            print(f"  ours FAILED: {type(e).__name__}: {e}", flush=True)
        if E.engine_fingerprint() != fp:
            report["notes"].append("src/survey changed while ours was timed; rerun for clean numbers")
            print("  WARNING: src/survey changed while ours was timed", flush=True)
        slow = timings.get("ours", {}).get("rep", {}).get("best", 0) > TARGET_S
        if pdf is not None and not args.no_profile and (args.profile or slow):
            print("  profiling ours (replicate job) ...", flush=True)
            report["profile_ours_rep"] = profile_ours(pdf)
            report["anatomy_ours_rep"] = anatomy(pdf)
        del pdf
        gc.collect()

        # ---- svy
        if not args.no_svy:
            try:
                import svy

                report["tools"]["svy"] = {"version": svy.__version__,
                                          "call": "Sample(pl_df, Design(wgt='w', rep_wgts=BrrWgts(prefix='repw', "
                                                  "n_reps=80, fay_coef=0.5, padding=2))).glm.fit(y='y', x=['age', 'x1', "
                                                  "'male', Cat('cat', ref='low'), Cat('region', ref='R1')], "
                                                  "family='binomial', method='replication')"}
                try:
                    import svy_rs

                    report["tools"]["svy"]["svy_rs"] = getattr(svy_rs, "__version__", "?")
                except ImportError:
                    pass
                print("  running svy ...", flush=True)
                pldf = to_polars(data)
                sd = svy_designs(pldf)
                sf = {j: svy_fit_fn(j) for j in JOBS}
                if args.no_taylor:
                    sd.pop("taylor")
                timings["svy"], results["svy"] = _run_subset(sd, sf, svy_norm, args.reps, args.cold_reps)
                del pldf
            except Exception as e:
                report["tools"]["svy"] = {"error": traceback.format_exc()}
                print(f"  svy FAILED: {type(e).__name__}: {e}", flush=True)
            gc.collect()

        # ---- R
        if not args.no_r:
            if shutil.which("Rscript") is None:
                report["tools"]["R"] = {"available": False, "info": "Rscript not found"}
                print("  R skipped: Rscript not found", flush=True)
            else:
                jobs = ["rep"] + ([] if args.no_taylor else ["taylor"])
                print(f"  running R svyglm (best of {args.r_reps}; this takes minutes) ...", flush=True)
                try:
                    write_binary(data, tmp / "data")
                    o = run_r(tmp / "data", args.r_reps, tmp, jobs)
                    report["tools"]["R"] = {"info": f"survey {o['version']}", "r_version": o["r_version"],
                                            "load_s": o["load_s"], "wall_s": o["wall_s"],
                                            "call": "svyglm(y ~ age + x1 + male + cat + region, design = rdes, "
                                                    "family = quasibinomial())"}
                    timings["R"] = {**{f"design_{k}": {"best": v} for k, v in o["design"].items()}, **o["jobs"],
                                    **{f"{j}_cold": {**o["jobs"][j], "note": "same as warm"} for j in o["jobs"]}}
                    results["R"] = o["results"]
                except Exception as e:
                    report["tools"]["R"] = {"error": str(e)}
                    print(f"  R FAILED: {e}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- agreement
    agreement: dict[str, dict] = {}
    names = [t for t in ("ours", "svy", "R") if t in results]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for j in JOBS:
                if j in results[a] and j in results[b]:
                    agreement.setdefault(f"{a} vs {b}", {})[j] = compare(results[a][j], results[b][j])
    if "ours" in results and all(j in results["ours"] for j in JOBS):
        agreement["ours rep vs ours taylor"] = {"se_ratio": compare(results["ours"]["rep"],
                                                                    results["ours"]["taylor"])}

    # ---- print
    tools = [t for t in ("ours", "svy", "R") if t in timings]
    ratio_cols = [t for t in ("svy", "R") if t in timings and "ours" in timings]
    rows = [("design: strata/PSU", "design_taylor"), ("design: replicate", "design_rep")]
    rows += [(JOBS[j], j) for j in JOBS] + [(f"{JOBS[j]}, cold", f"{j}_cold") for j in JOBS]
    rows += [(f"{JOBS[j]}, BLAS 1 thread", f"{j}_blas1") for j in JOBS]
    print(f"\nTimings, n = {n:,}: best of {args.reps} after 1 warm-up (R: best of {args.r_reps}, no warm-up); "
          f"'cold' = first fit on a fresh design, best of {args.cold_reps}; 'BLAS 1 thread' = "
          "threadpoolctl limits BLAS to one thread")
    head = f"{'job':<60}" + "".join(f"{t:>10}" for t in tools) + "".join(f"{t + '/ours':>10}" for t in ratio_cols)
    print(head)
    print("-" * len(head))
    for label, key in rows:
        line = f"{label:<60}" + "".join(f"{E.fmt_t(timings[t].get(key, {}).get('best')):>10}" for t in tools)
        line += "".join(f"{E.fmt_r(timings[t].get(key, {}).get('best'), timings['ours'].get(key, {}).get('best')):>10}"
                        for t in ratio_cols)
        print(line)
    best = timings.get("ours", {}).get("rep", {}).get("best")
    if best is not None:
        print(f"(ratio > 1: ours faster) target: replicate job <= {TARGET_S:g} s at n = 500,000: ours {best:.2f} s "
              f"-> {'MET' if best <= TARGET_S else 'NOT MET'}" + ("" if n == 500_000 else " (n differs)"))
    if agreement:
        print("\nAgreement: max relative difference over the 9 coefficients")
        print(f"{'pair':<26}{'job':>8}{'terms':>7}{'estimate':>12}{'SE':>12}")
        for pair, by_job in agreement.items():
            for j, c in by_job.items():
                print(f"{pair:<26}{j:>8}{c['terms_matched']:>7}{c['max_rel_diff_estimate']:>12.2e}"
                      f"{c['max_rel_diff_se']:>12.2e}")
    if names:
        print("\nCoefficients (estimate / SE), replicate job; truth = the generating (conditional) coefficient, "
              "which the population-averaged fit attenuates slightly (PSU random effect)")
        terms = results[names[0]]["rep"]["term"].tolist() if "rep" in results[names[0]] else []
        print(f"{'term':<12}{'truth':>8}" + "".join(f"{t:>26}" for t in names))
        for term in terms:
            truth = TRUE_COEF.get(term, np.nan) + (0.9 if term == "Intercept" else 0.0)
            line = f"{term:<12}{truth:>8.3f}"
            for t in names:
                r = results[t].get("rep")
                row = None if r is None else r[r["term"] == term]
                line += f"{'-' if row is None or row.empty else f'{row.estimate.iloc[0]:.6f} / {row.se.iloc[0]:.6f}':>26}"
            print(line)
    prof = report.get("profile_ours_rep")
    if prof:
        print(f"\ncProfile of ours, replicate job ({prof['wall_s']:.2f} s under the profiler), by own time:")
        for r in prof["by_tottime"][:12]:
            print(f"  {r['tottime']:7.3f} s own  {r['cumtime']:7.3f} s cum  {r['calls']:>6} calls  {r['function']}")

    anat = report.get("anatomy_ours_rep")
    if anat:
        print("\nOne Newton pass over the rows as models._replicate_vcov does it (seconds; default BLAS threads / "
              "BLAS 1 thread):")
        for k in anat["default"]:
            print(f"  {k:<42}{anat['default'][k]:>8.3f}{anat['blas1'][k]:>8.3f}")
        print(f"  {'total':<42}{sum(anat['default'].values()):>8.3f}{sum(anat['blas1'].values()):>8.3f}")

    report["machine"]["loadavg_end"] = list(os.getloadavg())
    print(f"\nload average at start {report['machine']['loadavg_start'][0]:.2f}, at end "
          f"{report['machine']['loadavg_end'][0]:.2f} on {os.cpu_count()} CPUs (other work skews timings)")
    report["timings"] = timings
    report["ratios"] = {f"{t}/ours": {k: timings[t][k]["best"] / timings["ours"][k]["best"]
                                      for k in timings[t] if k in timings["ours"] and timings["ours"][k]["best"] > 0}
                        for t in ratio_cols}
    report["agreement"] = agreement
    report["results"] = {t: {j: d.to_dict(orient="list") for j, d in r.items()} for t, r in results.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    print(f"\nwrote {args.out}")
    return 0


class _Skip(Exception):
    pass


def _run_subset(designs: dict, fits: dict, norm, reps: int, cold_reps: int = 1,
                blas1: bool = False) -> tuple[dict, dict]:
    """Per job whose design is present: design construction (best of reps), the fit (one warm-up,
    best of reps), the first fit on fresh designs (best of cold_reps) and, with ``blas1``, the fit
    again with BLAS limited to one thread (threadpoolctl)."""
    timings: dict[str, Any] = {}
    results: dict[str, pd.DataFrame] = {}
    for job in JOBS:
        if job not in designs:
            continue
        d, timings[f"design_{job}"] = E.bench(designs[job], reps)
        res, timings[job] = E.bench(lambda job=job, d=d: fits[job](d), reps)
        results[job] = norm(res)
        if blas1:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):
                _, timings[f"{job}_blas1"] = E.bench(lambda job=job, d=d: fits[job](d), reps)
        del d
        timings[f"{job}_cold"] = E.bench_cold(designs[job], fits[job], cold_reps)
    return timings, results


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info

        return [{k: i.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
                for i in threadpool_info()]
    except ImportError:  # pragma: no cover
        return []


if __name__ == "__main__":
    sys.exit(main())
