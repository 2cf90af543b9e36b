"""Benchmark the estimation engine against svy (PyPI, Rust core) and R's survey package.

Builds one synthetic survey file (fixed seed) and times, side by side:

  A. replicate-weight domain means: mean of y by a 50-level domain, Fay BRR (rho = 0.5, 80 replicates)
  B. Taylor domain means: mean of y by the domain on the stratified (160 strata x 2 PSUs) design
  C. Taylor domain proportions: proportion of a 3-level categorical by the domain

Each job is timed as the best of --reps repetitions after one warm-up call on one design object;
data generation and design construction are excluded (design construction is timed and reported
separately). "Cold" rows time the first call on a freshly built design (best of --reps), which
includes whatever a design computes lazily and caches on its first estimate. The
estimates and SEs of every tool are compared with ours (max relative difference), and also with a
closed-form numpy reference (full-design domain estimation, R's default centring of the replicate
variance around the mean of the replicates).

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_engine.py            # n = 500,000, with R if Rscript exists
    .venv/bin/python benchmarks/bench_engine.py --quick    # n = 50,000
    .venv/bin/python benchmarks/bench_engine.py --no-r     # skip R

Results are also written to benchmarks/results/bench_engine.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "bench_engine.json"

N_STRATA = 160
PSU_PER_STRATUM = 2
N_REPS = 80
RHO = 0.5
N_DOMAINS = 50
CAT_LEVELS = ("low", "mid", "high")
REP_COLS = [f"repw{r:02d}" for r in range(1, N_REPS + 1)]
JOBS = {
    "A": "replicate-weight domain means (Fay rho=0.5, 80 reps)",
    "B": "Taylor domain means (160 strata x 2 PSUs)",
    "C": "Taylor domain proportions (3 levels)",
    # the same numbers on the file as users' files are shaped (see to_pandas_users): replicate
    # columns REPWT1..REPWT80 found by a regex, the domain held as text labels or a categorical
    "At": "A, users' shape: text-labelled domain, regex replicate columns",
    "Bt": "B, users' shape: text-labelled domain",
    "Ct": "C, users' shape: text-labelled domain",
    "Ac": "A, users' shape: categorical domain",
    "Bc": "B, users' shape: categorical domain",
}
USERS_REP_PREFIX = "REPWT"
USERS_REP_REGEX = r"^REPWT\d+$"
# job -> the domain column it uses (the others use the integer-coded `dom`)
JOB_BY = {"At": "region", "Bt": "region", "Ct": "region", "Ac": "region_cat", "Bc": "region_cat"}
N_EXTRA_COLS = 12  # other survey variables in the users' file (the regex must skip them)


def region_labels() -> np.ndarray:
    """The text label of each of the 50 domains (dom 1..50), as a codebook would spell them."""
    names = ("North", "South", "East", "West", "Centre")
    return np.asarray(
        [f"{d:02d} {names[d % 5]} {'Urban' if d % 2 else 'Rural'} district" for d in range(1, N_DOMAINS + 1)],
        dtype=object,
    )


# --------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------


def hadamard_paley(q: int = 79) -> np.ndarray:
    """Hadamard matrix of order q + 1 (Paley construction I, q prime and q = 3 mod 4)."""
    is_square = np.zeros(q, dtype=bool)
    is_square[(np.arange(1, q) ** 2) % q] = True
    chi = np.where(is_square, 1, -1)
    chi[0] = 0
    jacobsthal = chi[(np.arange(q)[None, :] - np.arange(q)[:, None]) % q]
    s = np.zeros((q + 1, q + 1), dtype=np.int64)
    s[0, 1:] = 1
    s[1:, 0] = -1
    s[1:, 1:] = jacobsthal
    h = np.eye(q + 1, dtype=np.int64) + s
    assert np.array_equal(h @ h.T, (q + 1) * np.eye(q + 1, dtype=np.int64))
    return h


def make_data(n: int, seed: int = 20240611) -> dict[str, Any]:
    """The synthetic file as numpy arrays (row order shuffled, PSU ids unique across strata).

    - 160 strata x 2 PSUs, PSU sizes as equal as possible (n / 320 rows each);
    - weights lognormal, times a PSU-level factor;
    - a 50-level domain with Zipf-like shares (the smallest domains are absent from many PSUs,
      so a tool that subsets instead of doing full-design domain estimation would show it);
    - y gamma with domain and PSU effects; cat with 3 levels whose shares vary by domain;
    - 80 Fay replicate weights (rho = 0.5) from a Hadamard matrix of order 80: in replicate r,
      PSU 1 of stratum h is multiplied by 1 + (1 - rho) * H[r, h mod 80] and PSU 2 by
      1 - (1 - rho) * H[r, h mod 80], i.e. 1.5 / 0.5 or 0.5 / 1.5.
    """
    rng = np.random.default_rng(seed)
    n_psu = N_STRATA * PSU_PER_STRATUM
    sizes = np.full(n_psu, n // n_psu)
    sizes[: n % n_psu] += 1
    psu0 = np.repeat(np.arange(n_psu), sizes)  # 0-based PSU index, stratum = psu0 // 2
    perm = rng.permutation(n)
    psu0 = psu0[perm]
    stratum0 = psu0 // PSU_PER_STRATUM
    psu_in_stratum = psu0 % PSU_PER_STRATUM

    psu_effect = np.exp(rng.normal(0.0, 0.25, n_psu))
    psu_wfactor = np.exp(rng.normal(0.0, 0.3, n_psu))
    w = np.exp(rng.normal(np.log(400.0), 0.6, n)) * psu_wfactor[psu0]

    shares = 1.0 / np.arange(1, N_DOMAINS + 1) ** 1.5
    shares /= shares.sum()
    dom = rng.choice(N_DOMAINS, size=n, p=shares) + 1  # 1..50

    dom_scale = np.linspace(8.0, 16.0, N_DOMAINS)
    y = rng.gamma(2.0, dom_scale[dom - 1] * psu_effect[psu0])

    base = np.array([0.0, 0.3, -0.4])
    tilt = np.linspace(-1.0, 1.0, N_DOMAINS)
    logits = (
        base[None, :] + np.outer(tilt[dom - 1], [1.0, 0.0, -1.0]) + 0.3 * np.log(psu_effect[psu0])[:, None]
    )
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)
    cat = (u[:, None] > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1).astype(np.int32)  # 0..2

    had = hadamard_paley(N_REPS - 1)  # rows: replicates, columns: stratum groups
    sign = had[:, stratum0 % N_REPS].T  # (n, R)
    sign = np.where(psu_in_stratum[:, None] == 0, sign, -sign)
    repw = np.asfortranarray(w[:, None] * (1.0 + (1.0 - RHO) * sign))

    return {
        "n": n,
        "stratum": (stratum0 + 1).astype(np.int32),
        "psu": (psu0 + 1).astype(np.int32),
        "w": w,
        "dom": dom.astype(np.int32),
        "y": y,
        "cat": cat,
        "repw": repw,
    }


def to_pandas(data: dict[str, Any]) -> pd.DataFrame:
    cols: dict[str, Any] = {
        "stratum": data["stratum"],
        "psu": data["psu"],
        "w": data["w"],
        "dom": data["dom"],
        "y": data["y"],
        "cat": np.asarray(CAT_LEVELS, dtype=object)[data["cat"]],
    }
    for j, c in enumerate(REP_COLS):
        cols[c] = data["repw"][:, j]
    return pd.DataFrame(cols)


def _extra_columns(data: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    n = data["n"]
    out: dict[str, Any] = {}
    for j in range(N_EXTRA_COLS):
        out[f"q{j + 1:02d}"] = rng.integers(1, 6, n).astype(np.int32) if j % 2 else rng.normal(size=n)
    out["REPWT_NOTE"] = np.zeros(n)  # a column the replicate regex must not match
    return out


def to_pandas_users(data: dict[str, Any]) -> pd.DataFrame:
    """The users' shape: the same survey with the domain as text labels (pandas' string dtype, as
    read from CSV/Parquet) and as a categorical, replicate columns REPWT1..REPWT80 among other
    columns, the full-sample weight `FINALWT`."""
    lab = region_labels()[data["dom"] - 1]
    cols: dict[str, Any] = {
        "stratum": data["stratum"],
        "psu": data["psu"],
        "FINALWT": data["w"],
        "region": pd.array(lab, dtype="str"),
        "region_cat": pd.Categorical(lab, categories=region_labels()),
        "y": data["y"],
        "cat": pd.array(np.asarray(CAT_LEVELS, dtype=object)[data["cat"]], dtype="str"),
        **_extra_columns(data),
    }
    for j in range(N_REPS):
        cols[f"{USERS_REP_PREFIX}{j + 1}"] = data["repw"][:, j]
    return pd.DataFrame(cols)


def to_polars_users(data: dict[str, Any]):
    import polars as pl

    lab = region_labels()[data["dom"] - 1].astype(str)
    cols: dict[str, Any] = {
        "stratum": data["stratum"],
        "psu": data["psu"],
        "FINALWT": data["w"],
        "region": pl.Series(lab, dtype=pl.String),
        "region_cat": pl.Series(lab, dtype=pl.Categorical),
        "y": data["y"],
        "cat": np.asarray(CAT_LEVELS, dtype=object)[data["cat"]].astype(str),
        **_extra_columns(data),
    }
    for j in range(N_REPS):
        cols[f"{USERS_REP_PREFIX}{j + 1}"] = np.ascontiguousarray(data["repw"][:, j])
    return pl.DataFrame(cols)


def to_polars(data: dict[str, Any]):
    import polars as pl

    cols: dict[str, Any] = {
        "stratum": data["stratum"],
        "psu": data["psu"],
        "w": data["w"],
        "dom": data["dom"],
        "y": data["y"],
        "cat": np.asarray(CAT_LEVELS, dtype=object)[data["cat"]].astype(str),
    }
    for j, c in enumerate(REP_COLS):
        cols[c] = np.ascontiguousarray(data["repw"][:, j])
    return pl.DataFrame(cols)


def write_binary(data: dict[str, Any], d: Path) -> None:
    """Raw little-endian arrays (exact values, fast to read with R's readBin / numpy.fromfile)."""
    d.mkdir(parents=True, exist_ok=True)
    for k in ("stratum", "psu", "dom", "cat"):
        np.asarray(data[k], dtype="<i4").tofile(d / f"{k}.bin")
    for k in ("w", "y"):
        np.asarray(data[k], dtype="<f8").tofile(d / f"{k}.bin")
    # column-major, the layout of an R matrix
    np.asarray(data["repw"], dtype="<f8").T.tofile(d / "repw.bin")
    meta = {"n": int(data["n"]), "n_reps": N_REPS, "rho": RHO, "cat_levels": list(CAT_LEVELS)}
    (d / "meta.json").write_text(json.dumps(meta))


def read_binary(d: Path) -> dict[str, Any]:
    meta = json.loads((d / "meta.json").read_text())
    n = meta["n"]
    out: dict[str, Any] = {"n": n}
    for k in ("stratum", "psu", "dom", "cat"):
        out[k] = np.fromfile(d / f"{k}.bin", dtype="<i4")
    for k in ("w", "y"):
        out[k] = np.fromfile(d / f"{k}.bin", dtype="<f8")
    out["repw"] = np.fromfile(d / "repw.bin", dtype="<f8").reshape(meta["n_reps"], n).T
    return out


# --------------------------------------------------------------------------------------------
# closed-form numpy reference (full-design domains; not timed in the table)
# --------------------------------------------------------------------------------------------


def _taylor_domain_ratio_se(data, num: np.ndarray, den: np.ndarray, est: np.ndarray) -> np.ndarray:
    """SE of domain ratios sum(w*num_d)/sum(w*den_d), with-replacement PSUs within strata.

    num, den: (n, D) arrays (domain-zeroed); est: (D,)."""
    w = data["w"]
    wd = den * w[:, None]
    z = (num - den * est[None, :]) * w[:, None] / wd.sum(axis=0)[None, :]
    psu = data["psu"] - 1
    n_psu = N_STRATA * PSU_PER_STRATUM
    zt = np.zeros((n_psu, z.shape[1]))
    np.add.at(zt, psu, z)
    stratum_of_psu = np.arange(n_psu) // PSU_PER_STRATUM
    nh = np.bincount(stratum_of_psu, minlength=N_STRATA).astype(float)
    zbar = np.zeros((N_STRATA, z.shape[1]))
    np.add.at(zbar, stratum_of_psu, zt)
    zbar /= nh[:, None]
    dev2 = (zt - zbar[stratum_of_psu]) ** 2
    v = np.zeros((N_STRATA, z.shape[1]))
    np.add.at(v, stratum_of_psu, dev2)
    return np.sqrt((v * (nh / (nh - 1))[:, None]).sum(axis=0))


def numpy_reference(data: dict[str, Any]) -> dict[str, pd.DataFrame]:
    w, y, dom, cat = data["w"], data["y"], data["dom"] - 1, data["cat"]
    D = N_DOMAINS
    onehot = np.zeros((len(w), D))
    onehot[np.arange(len(w)), dom] = 1.0
    wsum = np.bincount(dom, weights=w, minlength=D)
    mean_y = np.bincount(dom, weights=w * y, minlength=D) / wsum
    doms = np.arange(1, D + 1)
    out: dict[str, pd.DataFrame] = {}

    # A: replicate variance, centred on the mean of the replicate estimates (R's mse = FALSE)
    repw = data["repw"]
    rep_num = onehot.T @ (repw * y[:, None])  # (D, R)
    rep_den = onehot.T @ repw
    rep_est = rep_num / rep_den
    dev = rep_est - rep_est.mean(axis=1, keepdims=True)
    se_a = np.sqrt((dev**2).sum(axis=1) / (N_REPS * (1.0 - RHO) ** 2))
    out["A"] = pd.DataFrame({"dom": doms, "level": "", "estimate": mean_y, "se": se_a})

    # B: Taylor domain means
    se_b = _taylor_domain_ratio_se(data, onehot * y[:, None], onehot, mean_y)
    out["B"] = pd.DataFrame({"dom": doms, "level": "", "estimate": mean_y, "se": se_b})

    # C: Taylor domain proportions
    frames = []
    for k, lev in enumerate(CAT_LEVELS):
        ind = (cat == k).astype(float)
        p = np.bincount(dom, weights=w * ind, minlength=D) / wsum
        se = _taylor_domain_ratio_se(data, onehot * ind[:, None], onehot, p)
        frames.append(pd.DataFrame({"dom": doms, "level": lev, "estimate": p, "se": se}))
    out["C"] = pd.concat(frames, ignore_index=True)
    return out


# --------------------------------------------------------------------------------------------
# timing helpers
# --------------------------------------------------------------------------------------------


def bench(fn: Callable[[], Any], reps: int) -> tuple[Any, dict[str, Any]]:
    """One warm-up call (kept as `first`), then the best of `reps` calls."""
    gc.collect()
    t0 = time.perf_counter()
    res = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return res, {"best": min(times), "median": statistics.median(times), "first": first, "all": times}


def bench_cold(make_design: Callable[[], Any], job: Callable[[Any], Any], reps: int) -> tuple[dict, dict]:
    """First call on a freshly built design, best of `reps`: what a user pays for one table when
    the design object holds lazy caches.  Returns the call alone (construction untimed) and the
    construction plus the call (the whole first table: what a design computes at construction
    and what it computes lazily count alike)."""
    times, whole = [], []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        d = make_design()
        t1 = time.perf_counter()
        job(d)
        t2 = time.perf_counter()
        times.append(t2 - t1)
        whole.append(t2 - t0)
        del d
    return ({"best": min(times), "median": statistics.median(times), "all": times},
            {"best": min(whole), "median": statistics.median(whole), "all": whole})


def first_table_pairs(ours_make, ours_job, svy_make, svy_job, reps: int) -> dict[str, Any]:
    """The first table (construction + first call) of ours and svy timed in alternating pairs,
    max(reps, 7) of them, so that both see the same load; the median of the per-pair ratios
    svy/ours is the figure least moved by load that drifts during a run."""
    o_t, s_t = [], []
    for _ in range(max(reps, 7)):
        for make, job, out in ((ours_make, ours_job, o_t), (svy_make, svy_job, s_t)):
            gc.collect()
            t0 = time.perf_counter()
            d = make()
            job(d)
            out.append(time.perf_counter() - t0)
            del d
    ratios = [b / a for a, b in zip(o_t, s_t)]
    return {"ours": {"best": min(o_t), "median": statistics.median(o_t), "all": o_t},
            "svy": {"best": min(s_t), "median": statistics.median(s_t), "all": s_t},
            "ratio_median_of_pairs": statistics.median(ratios), "ratios": ratios}


def run_python_tool(make_designs, jobs, norm, reps: int) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Design construction, then each job warm (warm-up + best of reps on one design object) and
    cold (first call on a fresh design, best of reps)."""
    mk = make_designs if isinstance(make_designs, dict) else dict(zip(("taylor", "replicate"), make_designs))
    timings: dict[str, Any] = {}
    designs = {}
    for kind in mk:
        designs[kind], timings[f"design_{kind}"] = bench(mk[kind], reps)
    results = {}
    for j, fn in jobs.items():
        d = designs[JOB_DESIGN[j]]
        res, timings[j] = bench(lambda fn=fn, d=d: fn(d), reps)
        results[j] = norm(j, res)
    designs.clear()
    for j, fn in jobs.items():
        timings[f"{j}_cold"], timings[f"{j}_first"] = bench_cold(mk[JOB_DESIGN[j]], fn, reps)
    return timings, results


def vm_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# our engine
# --------------------------------------------------------------------------------------------


def engine_fingerprint() -> str:
    """sha256 (12 hex) over src/survey/*.py, to tie results to an engine version."""
    import hashlib

    h = hashlib.sha256()
    src = HERE.parent / "src" / "survey"
    for f in sorted(src.rglob("*.py")):
        h.update(str(f.relative_to(src)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def ours_available() -> tuple[bool, str]:
    try:
        import survey

        survey.ReplicateDesign  # noqa: B018
        survey.Design  # noqa: B018
        return True, getattr(survey, "__version__", "unknown")
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"


def ours_designs(pdf: pd.DataFrame, users: pd.DataFrame | None = None):
    import survey as sv

    def taylor():
        return sv.Design(pdf, weights="w", strata="stratum", psu="psu")

    def replicate():
        return sv.ReplicateDesign(pdf, weights="w", replicate_weights=REP_COLS, method="Fay", rho=RHO)

    if users is None:
        return taylor, replicate

    def taylor_users():
        return sv.Design(users, weights="FINALWT", strata="stratum", psu="psu")

    def replicate_users():
        return sv.ReplicateDesign(users, weights="FINALWT", replicate_weights=USERS_REP_REGEX, method="Fay",
                                  rho=RHO)

    return {"taylor": taylor, "replicate": replicate, "taylor_users": taylor_users,
            "replicate_users": replicate_users}


JOB_DESIGN = {"A": "replicate", "B": "taylor", "C": "taylor", "At": "replicate_users", "Bt": "taylor_users",
              "Ct": "taylor_users", "Ac": "replicate_users", "Bc": "taylor_users"}


def ours_jobs() -> dict[str, Callable[[Any], Any]]:
    return {
        "A": lambda rdes: rdes.mean("y", by="dom"),
        "B": lambda des: des.mean("y", by="dom"),
        "C": lambda des: des.proportion("cat", by="dom"),
        "At": lambda rdes: rdes.mean("y", by="region"),
        "Bt": lambda des: des.mean("y", by="region"),
        "Ct": lambda des: des.proportion("cat", by="region"),
        "Ac": lambda rdes: rdes.mean("y", by="region_cat"),
        "Bc": lambda des: des.mean("y", by="region_cat"),
    }


def dom_codes(job: str, values) -> np.ndarray:
    """The integer domain (1..50) of each result row, from the job's domain column."""
    if job not in JOB_BY:
        return np.asarray(values).astype(int)
    code = {lab: i + 1 for i, lab in enumerate(region_labels())}
    return np.asarray([code[str(v)] for v in values], dtype=int)


def norm_ours(job: str, res: pd.DataFrame) -> pd.DataFrame:
    level = res["level"].astype(str) if job[0] == "C" else ""
    return pd.DataFrame(
        {
            "dom": dom_codes(job, res[JOB_BY.get(job, "dom")]),
            "level": level if isinstance(level, str) else level.to_numpy(),
            "estimate": res["estimate"].astype(float).to_numpy(),
            "se": res["se"].astype(float).to_numpy(),
        }
    )


def overhead_split(users: pd.DataFrame, reps: int) -> dict[str, Any]:
    """Job At split in two: the replicate product alone (the engine's one read of the weight
    matrix for the numerators: `survey.variance.replicate_totals` on the cached cell index, the
    calling thread taking one share as in the call) and everything else (the per-call overhead:
    reading y, validity, cells, summary columns, the SRS variance, the result frame).

    The product and the whole call are timed alternately (max(reps, 15) pairs, so both see the
    same load), each in wall time, in CPU time of the calling (main) thread (`time.thread_time`:
    the work the caller waits for outside the product threads, plus its own share of the
    product) and in CPU time of all threads (`time.process_time`).  Overhead = whole - product,
    from the best times and from the medians."""
    import survey as sv
    from survey import estimate as E
    from survey.variance import replicate_totals

    rdes = sv.ReplicateDesign(users, weights="FINALWT", replicate_weights=USERS_REP_REGEX, method="Fay", rho=RHO)
    rdes.mean("y", by="region")
    cell, keys, _ = E._cells(rdes, "region")
    idx = E._plan(rdes, cell, len(keys)).replicate_index(1, False)
    y = users["y"].to_numpy()[:, None]

    def product():
        return replicate_totals(idx, y, len(keys), rdes.repw)

    def call():
        return rdes.mean("y", by="region")

    product(), call()  # warm
    clocks = {"wall": time.perf_counter, "main_cpu": time.thread_time, "cpu": time.process_time}
    t: dict[str, dict[str, list[float]]] = {k: {"product": [], "call": []} for k in clocks}
    for _ in range(max(reps, 15)):
        for name, fn in (("product", product), ("call", call)):
            gc.collect()
            start = {k: c() for k, c in clocks.items()}
            fn()
            for k, c in clocks.items():
                t[k][name].append(c() - start[k])
    out: dict[str, Any] = {}
    for k in clocks:
        p, w = t[k]["product"], t[k]["call"]
        pb, wb, pm, wm = min(p), min(w), statistics.median(p), statistics.median(w)
        diff = statistics.median([b - a for a, b in zip(p, w)])  # per pair: the same load for both
        out[k] = {"product_best": pb, "call_best": wb, "overhead_best": wb - pb, "share_best": (wb - pb) / pb,
                  "product_median": pm, "call_median": wm, "overhead_median": wm - pm,
                  "share_median": (wm - pm) / pm, "overhead_pairs": diff, "share_pairs": diff / pm,
                  "product_all": p, "call_all": w}
    wall = out["wall"]
    return {"At_product": {"best": wall["product_best"], "median": wall["product_median"], "all": wall["product_all"]},
            "At_overhead": {"best": wall["overhead_best"], "median": wall["overhead_median"],
                            "share_of_product": wall["share_best"], "share_of_product_median": wall["share_median"],
                            "median_of_pairs": wall["overhead_pairs"], "share_median_of_pairs": wall["share_pairs"]},
            "At_split": out,
            # kept for older readers of the JSON: CPU of all threads, best of the pairs
            "At_cpu": {"product": out["cpu"]["product_best"], "call": out["cpu"]["call_best"],
                       "overhead": out["cpu"]["overhead_best"], "share_of_product": out["cpu"]["share_best"]}}


# --------------------------------------------------------------------------------------------
# svy
# --------------------------------------------------------------------------------------------


def svy_designs(pldf, users=None):
    import svy

    def taylor():
        return svy.Sample(pldf, svy.Design(stratum="stratum", psu="psu", wgt="w"))

    def replicate():
        # Fay's BRR is svy.BrrWgts with fay_coef = rho; the columns are repw01..repw80.
        rw = svy.BrrWgts(prefix="repw", n_reps=N_REPS, fay_coef=RHO)
        return svy.Sample(pldf, svy.Design(wgt="w", rep_wgts=rw))

    if users is None:
        return taylor, replicate

    def taylor_users():
        return svy.Sample(users, svy.Design(stratum="stratum", psu="psu", wgt="FINALWT"))

    def replicate_users():
        rw = svy.BrrWgts(prefix=USERS_REP_PREFIX, n_reps=N_REPS, fay_coef=RHO)
        return svy.Sample(users, svy.Design(wgt="FINALWT", rep_wgts=rw))

    return {"taylor": taylor, "replicate": replicate, "taylor_users": taylor_users,
            "replicate_users": replicate_users}


def svy_jobs() -> dict[str, Callable[[Any], Any]]:
    # `by=` keeps the full design (domain rows zeroed, no row filtering); see README.md.
    return {
        "A": lambda rs: rs.estimation.mean("y", by="dom", method="replication").to_polars(),
        "B": lambda s: s.estimation.mean("y", by="dom", method="taylor").to_polars(),
        "C": lambda s: s.estimation.prop("cat", by="dom", method="taylor").to_polars(),
        "At": lambda rs: rs.estimation.mean("y", by="region", method="replication").to_polars(),
        "Bt": lambda s: s.estimation.mean("y", by="region", method="taylor").to_polars(),
        "Ct": lambda s: s.estimation.prop("cat", by="region", method="taylor").to_polars(),
        "Ac": lambda rs: rs.estimation.mean("y", by="region_cat", method="replication").to_polars(),
        "Bc": lambda s: s.estimation.mean("y", by="region_cat", method="taylor").to_polars(),
    }


def norm_svy(job: str, res) -> pd.DataFrame:
    d = res.to_pandas() if hasattr(res, "to_pandas") else pd.DataFrame(res)
    return pd.DataFrame(
        {
            "dom": dom_codes(job, d[JOB_BY.get(job, "dom")]),
            "level": d["cat"].astype(str).to_numpy() if job[0] == "C" else "",
            "estimate": d["est"].astype(float).to_numpy(),
            "se": d["se"].astype(float).to_numpy(),
        }
    )


# --------------------------------------------------------------------------------------------
# R
# --------------------------------------------------------------------------------------------

R_SCRIPT = r"""
suppressPackageStartupMessages({library(survey); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; reps <- as.integer(args[2]); out <- args[3]
t_load <- proc.time()[["elapsed"]]
meta <- fromJSON(file.path(dir, "meta.json"))
n <- meta$n; R <- meta$n_reps
rd <- function(name, what, size, count) {
  con <- file(file.path(dir, name), "rb"); on.exit(close(con))
  readBin(con, what = what, n = count, size = size, endian = "little")
}
df <- data.frame(
  stratum = rd("stratum.bin", "integer", 4, n),
  psu = rd("psu.bin", "integer", 4, n),
  w = rd("w.bin", "double", 8, n),
  dom = rd("dom.bin", "integer", 4, n),
  y = rd("y.bin", "double", 8, n)
)
df$cat <- factor(rd("cat.bin", "integer", 4, n), levels = 0:2, labels = meta$cat_levels)
repw <- matrix(rd("repw.bin", "double", 8, as.double(n) * R), nrow = n, ncol = R)
load_s <- proc.time()[["elapsed"]] - t_load

bench <- function(f) {
  gc(FALSE)
  first <- system.time(res <- f())[["elapsed"]]
  times <- numeric(0)
  for (i in seq_len(reps)) { gc(FALSE); times <- c(times, system.time(f())[["elapsed"]]) }
  list(res = res, t = list(best = min(times), median = median(times), first = first, all = times))
}

mk_taylor <- function() svydesign(ids = ~psu, strata = ~stratum, weights = ~w, data = df)
mk_rep <- function() svrepdesign(data = df, repweights = repw, weights = ~w, type = "Fay", rho = meta$rho,
                                 combined.weights = TRUE, mse = FALSE)
bt <- bench(mk_taylor); des <- bt$res
br <- bench(mk_rep); rdes <- br$res

long_mean <- function(r) data.frame(dom = as.integer(as.character(r$dom)), level = "",
                                    estimate = unname(coef(r)), se = unname(SE(r)))
long_prop <- function(r) {              # svyby columns: dom, cat<level>..., se.cat<level>...
  do.call(rbind, lapply(meta$cat_levels, function(l)
    data.frame(dom = as.integer(as.character(r$dom)), level = l,
               estimate = r[[paste0("cat", l)]], se = r[[paste0("se.cat", l)]])))
}
jobs <- list(
  A = function() svyby(~y, ~dom, rdes, svymean),
  B = function() svyby(~y, ~dom, des, svymean),
  C = function() svyby(~cat, ~dom, des, svymean)
)
res <- list(); tim <- list()
for (j in names(jobs)) {
  b <- bench(jobs[[j]])
  tim[[j]] <- b$t
  res[[j]] <- if (j == "C") long_prop(b$res) else long_mean(b$res)
}
o <- list(version = as.character(packageVersion("survey")), r_version = R.version.string,
          load_s = load_s, design = list(taylor = bt$t, replicate = br$t), jobs = tim, results = res)
write_json(o, out, digits = NA, auto_unbox = TRUE, dataframe = "columns")
"""


def run_r(data_dir: Path, reps: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "bench_engine.R"
    script.write_text(R_SCRIPT)
    out = workdir / "r_out.json"
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["Rscript", "--vanilla", str(script), str(data_dir), str(reps), str(out)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    o = json.loads(out.read_text())
    o["wall_s"] = wall
    results = {}
    for j, cols in o.pop("results").items():
        d = pd.DataFrame(cols)
        d["dom"] = d["dom"].astype(int)
        d["level"] = d["level"].astype(str)
        results[j] = d
    o["results"] = results
    return o


# --------------------------------------------------------------------------------------------
# memory (subprocess, so one library's allocations do not hide another's)
# --------------------------------------------------------------------------------------------


def memory_child(lib: str, data_dir: Path) -> dict[str, Any]:
    """Peak RSS of job A (replicate domain means) above the RSS just before the call."""
    import tracemalloc

    data = read_binary(data_dir)
    repw_bytes = int(data["repw"].nbytes)
    if lib == "ours":
        frame = to_pandas(data)
        _, make_rep = ours_designs(frame)
        job = ours_jobs()["A"]
    else:
        frame = to_polars(data)
        _, make_rep = svy_designs(frame)
        job = svy_jobs()["A"]
    del data
    gc.collect()
    out: dict[str, Any] = {"lib": lib, "repw_matrix_bytes": repw_bytes}
    ok = reset_peak_rss()
    out["peak_reset_supported"] = ok
    before = vm_status()["VmRSS"]
    rdes = make_rep()
    st = vm_status()
    out["design_peak_extra_bytes"] = st["VmHWM"] - before
    out["design_retained_bytes"] = st["VmRSS"] - before
    for label in ("first_call", "repeat_call"):
        gc.collect()
        reset_peak_rss()
        before = vm_status()["VmRSS"]
        job(rdes)
        st = vm_status()
        out[f"{label}_peak_extra_bytes"] = st["VmHWM"] - before
    gc.collect()
    tracemalloc.start()
    job(rdes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["repeat_call_tracemalloc_peak_bytes"] = peak
    return out


def run_memory(lib: str, data_dir: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--_memory-child", lib, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        # fixed mmap threshold: large freed arrays go back to the OS at once, so the RSS before a
        # call does not include pages glibc keeps from earlier calls
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# comparison and report
# --------------------------------------------------------------------------------------------


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:
    """Max relative difference of estimate and se of a against b, matched on (dom, level)."""
    m = a.merge(b, on=["dom", "level"], how="outer", suffixes=("_a", "_b"), indicator=True)
    both = m[m["_merge"] == "both"]

    def rel(x, y):
        x, y = x.to_numpy(float), y.to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(x - y) / np.maximum(np.abs(y), 1e-300)
        return float(np.nanmax(r)) if len(r) else float("nan")

    return {
        "rows_a": int(len(a)),
        "rows_b": int(len(b)),
        "rows_matched": int(len(both)),
        "max_rel_diff_estimate": rel(both["estimate_a"], both["estimate_b"]),
        "max_rel_diff_se": rel(both["se_a"], both["se_b"]),
        "n_nan_se_a": int(both["se_a"].isna().sum()),
    }


def fmt_t(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}s" if x >= 0.1 else f"{x * 1000:.1f}ms"


def fmt_r(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500_000, help="rows (default 500,000)")
    ap.add_argument("--quick", action="store_true", help="n = 50,000")
    ap.add_argument("--no-r", action="store_true", help="skip R even if Rscript is present")
    ap.add_argument("--no-svy", action="store_true", help="skip svy")
    ap.add_argument("--no-ours", action="store_true", help="skip our engine")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS measurement")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up (default 5)")
    ap.add_argument("--r-reps", type=int, default=None, help="repetitions for R (default: --reps)")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--_memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.data_dir)))
        return 0

    n = 50_000 if args.quick else args.n
    r_reps = args.reps if args.r_reps is None else args.r_reps
    print(
        f"bench_engine: n={n:,}, {N_STRATA} strata x {PSU_PER_STRATUM} PSUs, {N_REPS} Fay replicates "
        f"(rho={RHO}), {N_DOMAINS} domains; best of {args.reps} after 1 warm-up",
        flush=True,
    )

    t0 = time.perf_counter()
    data = make_data(n, args.seed)
    print(
        f"  data generated in {time.perf_counter() - t0:.1f}s; replicate-weight matrix "
        f"{data['repw'].nbytes / 2**20:.0f} MiB",
        flush=True,
    )

    report: dict[str, Any] = {
        "config": {
            "n": n,
            "strata": N_STRATA,
            "psu_per_stratum": PSU_PER_STRATUM,
            "n_reps": N_REPS,
            "rho": RHO,
            "domains": N_DOMAINS,
            "cat_levels": list(CAT_LEVELS),
            "reps": args.reps,
            "r_reps": r_reps,
            "seed": args.seed,
            "repw_matrix_bytes": int(data["repw"].nbytes),
        },
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_start": list(os.getloadavg()),
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "tools": {},
        "notes": [],
    }
    psu_dom = np.zeros((N_STRATA * PSU_PER_STRATUM, N_DOMAINS + 1), dtype=np.int64)
    np.add.at(psu_dom, (data["psu"] - 1, data["dom"]), 1)
    one_psu = ((psu_dom > 0).reshape(N_STRATA, PSU_PER_STRATUM, -1).sum(axis=1) == 1)[:, 1:]
    report["config"]["strata_with_domain_in_one_psu_only"] = {
        "cells": int(one_psu.sum()),
        "domains": int(one_psu.any(axis=0).sum()),
    }
    counts = np.bincount(data["dom"], minlength=N_DOMAINS + 1)[1:]
    report["config"]["domain_rows_min"] = int(counts.min())
    report["config"]["domain_rows_max"] = int(counts.max())

    results: dict[str, dict[str, pd.DataFrame]] = {}
    timings: dict[str, dict[str, dict[str, Any]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    data_dir = tmp / "data"
    try:
        write_binary(data, data_dir)
        results["numpy-ref"] = numpy_reference(data)
        for j in JOB_BY:  # the users' shape jobs estimate the same numbers
            results["numpy-ref"][j] = results["numpy-ref"][j[0]]

        # ---- ours
        ok, info = (False, "skipped (--no-ours)") if args.no_ours else ours_available()
        report["tools"]["ours"] = {"available": ok, "info": info}
        fp_before = engine_fingerprint()
        report["tools"]["ours"]["src_sha256"] = fp_before
        if ok:
            print("  running ours ...", flush=True)
            try:
                pdf, users = to_pandas(data), to_pandas_users(data)
                timings["ours"], results["ours"] = run_python_tool(
                    ours_designs(pdf, users), ours_jobs(), norm_ours, args.reps
                )
                timings["ours"].update(overhead_split(users, args.reps))
                del pdf, users
            except Exception as e:
                report["tools"]["ours"]["error"] = traceback.format_exc()
                print(f"  ours FAILED: {type(e).__name__}: {e}", flush=True)
        else:
            print(f"  ours not available: {info}", flush=True)
        if engine_fingerprint() != fp_before:
            msg = "src/survey changed while our engine was being timed; rerun for clean numbers"
            report["notes"].append(msg)
            print(f"  WARNING: {msg}", flush=True)

        # ---- svy
        if not args.no_svy:
            try:
                import svy

                report["tools"]["svy"] = {"available": True, "info": svy.__version__}
                try:
                    import svy_rs

                    report["tools"]["svy"]["svy_rs"] = getattr(svy_rs, "__version__", "?")
                except ImportError:
                    pass
                print("  running svy ...", flush=True)
                pldf, users_pl = to_polars(data), to_polars_users(data)
                timings["svy"], results["svy"] = run_python_tool(
                    svy_designs(pldf, users_pl), svy_jobs(), norm_svy, args.reps
                )
                if "ours" in timings:
                    print("  first tables of ours and svy in alternating pairs ...", flush=True)
                    try:
                        users = to_pandas_users(data)
                        pairs = {}
                        for j in ("At", "Ac"):
                            pairs[j] = first_table_pairs(
                                ours_designs(users, users)["replicate_users"], ours_jobs()[j],
                                svy_designs(pldf, users_pl)["replicate_users"], svy_jobs()[j], args.reps)
                        report["first_table_pairs"] = pairs
                        del users
                    except Exception as e:
                        report["notes"].append(f"first-table pairs failed: {type(e).__name__}: {e}")
                        print(f"  first-table pairs FAILED: {type(e).__name__}: {e}", flush=True)
                del pldf, users_pl
            except Exception as e:
                report["tools"]["svy"] = {"available": False, "error": traceback.format_exc()}
                print(f"  svy FAILED: {type(e).__name__}: {e}", flush=True)

        # ---- R
        if not args.no_r:
            if shutil.which("Rscript") is None:
                report["tools"]["R"] = {"available": False, "info": "Rscript not found"}
                print("  R skipped: Rscript not found", flush=True)
            else:
                print(f"  running R survey (best of {r_reps}; this can take minutes) ...", flush=True)
                try:
                    o = run_r(data_dir, r_reps, tmp)
                    report["tools"]["R"] = {
                        "available": True,
                        "info": f"survey {o['version']}",
                        "r_version": o["r_version"],
                        "load_s": o["load_s"],
                        "wall_s": o["wall_s"],
                    }
                    timings["R"] = {
                        "design_taylor": o["design"]["taylor"],
                        "design_replicate": o["design"]["replicate"],
                        **o["jobs"],
                        **{f"{j}_cold": {**o["jobs"][j], "note": "same as warm"} for j in o["jobs"]},
                    }
                    results["R"] = o["results"]
                except Exception as e:
                    report["tools"]["R"] = {"available": False, "error": str(e)}
                    print(f"  R FAILED: {e}", flush=True)

        # ---- memory
        if not args.no_memory:
            report["memory"] = {}
            for lib in ("ours", "svy"):
                if lib in results:
                    try:
                        report["memory"][lib] = run_memory(lib, data_dir)
                    except Exception as e:
                        report["memory"][lib] = {"error": str(e)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- agreement
    agreement: dict[str, dict[str, Any]] = {}
    base_name = "ours" if "ours" in results else ("svy" if "svy" in results else None)
    pairs = []
    if base_name:
        pairs += [(base_name, o) for o in ("svy", "R", "numpy-ref") if o in results and o != base_name]
    if base_name == "ours" and "svy" in results:
        pairs += [("svy", o) for o in ("R", "numpy-ref") if o in results]
    if "R" in results:
        pairs += [("R", "numpy-ref")]
    for a, b in pairs:
        for j in JOBS:
            if j in results[a] and j in results[b]:
                agreement.setdefault(f"{a} vs {b}", {})[j] = compare(results[a][j], results[b][j])

    # ---- print
    tools = [t for t in ("ours", "svy", "R") if t in timings]
    rows = [("design: strata/PSU", "design_taylor"), ("design: replicate", "design_replicate"),
            ("design: strata/PSU, users' shape", "design_taylor_users"),
            ("design: replicate, users' shape (regex)", "design_replicate_users")]
    rows += [(f"{j}. {JOBS[j]}", j) for j in JOBS]
    rows += [(f"{j}. cold: first call on a fresh design", f"{j}_cold") for j in JOBS]
    rows += [(f"{j}. first table: design + first call", f"{j}_first") for j in JOBS if j[0] == "A"]
    rows += [("At split: the replicate product alone", "At_product"),
             ("At split: per-call overhead (At call - product, wall)", "At_overhead")]
    print()
    print(
        f"Timings, n = {n:,}: best of {args.reps}{'' if r_reps == args.reps else f' (R: {r_reps})'} "
        "after 1 warm-up on one design object; 'cold' rows: best of the first call on freshly built "
        "designs (construction untimed; R has no lazy caches, its warm times are repeated there)"
    )
    head = f"{'job':<60}" + "".join(f"{t:>10}" for t in tools)
    ratio_cols = [t for t in ("svy", "R") if t in timings and "ours" in timings]
    head += "".join(f"{t + '/ours':>10}" for t in ratio_cols)
    med_tools = [t for t in ("ours", "svy") if t in timings]
    head += " |" + "".join(f"{t + ' med':>10}" for t in med_tools)
    head += "".join(f"{'svy/ours':>10}" for _ in ratio_cols[:1] if "svy" in med_tools and "ours" in med_tools)
    print(head)
    print("-" * len(head))
    for label, key in rows:
        line = f"{label:<60}" + "".join(f"{fmt_t(timings[t].get(key, {}).get('best')):>10}" for t in tools)
        line += "".join(
            f"{fmt_r(timings[t].get(key, {}).get('best'), timings['ours'].get(key, {}).get('best')):>10}"
            for t in ratio_cols
        )
        line += " |" + "".join(f"{fmt_t(timings[t].get(key, {}).get('median')):>10}" for t in med_tools)
        if "svy" in med_tools and "ours" in med_tools and ratio_cols:
            line += f"{fmt_r(timings['svy'].get(key, {}).get('median'), timings['ours'].get(key, {}).get('median')):>10}"
        print(line)
    print("(ratio > 1: ours faster; left of '|': best times, right: medians; all times are in the JSON)")
    sp_ = timings.get("ours", {}).get("At_split")
    if sp_:
        print()
        print("Per-call overhead of the warm At call (goal: under 20% of the replicate product, in wall time);\n"
              "product and whole call timed alternately, "
              f"{len(sp_['wall']['product_all'])} pairs:")
        print(f"{'clock':<56}{'product':>10}{'call':>10}{'overhead':>10}{'share':>8}")
        labels = {"wall": "wall", "main_cpu": "CPU, calling thread (thread_time)",
                  "cpu": "CPU, all threads (process_time)"}
        for k, lab in labels.items():
            v = sp_[k]
            for stat in ("best", "median"):
                print(f"{lab + ', ' + stat:<56}{fmt_t(v['product_' + stat]):>10}{fmt_t(v['call_' + stat]):>10}"
                      f"{fmt_t(v['overhead_' + stat]):>10}{100 * v['share_' + stat]:>7.0f}%")
            print(f"{lab + ', median of the pairs':<56}{'':>10}{'':>10}"
                  f"{fmt_t(v['overhead_pairs']):>10}{100 * v['share_pairs']:>7.0f}%")
        print("(overhead = call - product; 'median of the pairs': the median of each pair's difference, over the\n"
              " median product; the figure least moved by load that drifts between the pairs)")
    pairs = report.get("first_table_pairs")
    if pairs:
        print()
        n_pairs = len(next(iter(pairs.values()))["ratios"])
        print(f"First table (design construction + first call), ours and svy alternately, {n_pairs} pairs:")
        print(f"{'job':<6}{'ours best':>11}{'svy best':>11}{'ours med':>11}{'svy med':>11}"
              f"{'svy/ours, median of the pairs':>31}")
        for j, v in pairs.items():
            print(f"{j:<6}{fmt_t(v['ours']['best']):>11}{fmt_t(v['svy']['best']):>11}{fmt_t(v['ours']['median']):>11}"
                  f"{fmt_t(v['svy']['median']):>11}{v['ratio_median_of_pairs']:>30.2f}x")
    if "ours" in timings and "svy" in timings:
        print()
        print("First table (design construction + first call on it), ours vs svy (rows of the table above):")
        print(f"{'job':<6}{'ours best':>11}{'svy best':>11}{'svy/ours':>10}{'ours med':>11}{'svy med':>11}{'svy/ours':>10}")
        for j in (j for j in JOBS if j[0] == "A"):
            o, v = timings["ours"].get(f"{j}_first"), timings["svy"].get(f"{j}_first")
            if o and v:
                print(f"{j:<6}{fmt_t(o['best']):>11}{fmt_t(v['best']):>11}{fmt_r(v['best'], o['best']):>10}"
                      f"{fmt_t(o['median']):>11}{fmt_t(v['median']):>11}{fmt_r(v['median'], o['median']):>10}")

    if agreement:
        print()
        print("Agreement: max relative difference over all (domain[, level]) cells")
        print(f"{'pair':<22}{'job':>4}{'rows':>8}{'estimate':>12}{'SE':>12}")
        for pair, by_job in agreement.items():
            for j, c in by_job.items():
                rows_s = f"{c['rows_matched']}/{max(c['rows_a'], c['rows_b'])}"
                print(
                    f"{pair:<22}{j:>4}{rows_s:>8}{c['max_rel_diff_estimate']:>12.2e}{c['max_rel_diff_se']:>12.2e}"
                )
    # a few cells side by side (all cells are in the JSON): largest and smallest domain
    shown = [t for t in ("ours", "svy", "R", "numpy-ref") if t in results]
    if shown:
        print()
        print("Sample cells (estimate / SE; every cell is in the JSON)")
        print(f"{'job':<4}{'dom':>4}{'level':>6}" + "".join(f"{t:>30}" for t in shown))
        for j in JOBS:
            for dom_v in (1, N_DOMAINS):
                lev = "mid" if j[0] == "C" else ""
                line = f"{j:<4}{dom_v:>4}{lev:>6}"
                for t in shown:
                    r = results[t].get(j)
                    row = None if r is None else r[(r["dom"] == dom_v) & (r["level"] == lev)]
                    cell = (
                        "-"
                        if row is None or row.empty
                        else f"{row['estimate'].iloc[0]:.10g} / {row['se'].iloc[0]:.6g}"
                    )
                    line += f"{cell:>30}"
                print(line)

    print()
    cells = report["config"]["strata_with_domain_in_one_psu_only"]
    print(
        f"Domain handling (Taylor jobs B, C): in {cells['cells']} (domain, stratum) cells "
        f"({cells['domains']} domains) only one of the two PSUs has domain members, so subsetting "
        "the rows would drop PSUs and change the SEs (or raise lonely-PSU errors)."
    )
    domain_handling = {}
    for tool in ("ours", "svy", "R"):
        if tool not in results or "numpy-ref" not in results:
            continue
        diffs = [
            compare(results[tool][j], results["numpy-ref"][j])["max_rel_diff_se"]
            for j in ("B", "C")
            if j in results[tool]
        ]
        if not diffs:
            continue
        worst = max(diffs)
        verdict = (
            "full-design domains (matches the full-design reference)"
            if worst < 1e-8
            else "DIFFERS from the full-design reference"
        )
        domain_handling[tool] = {"max_rel_diff_se_vs_reference": worst, "verdict": verdict}
        print(f"  {tool:<5} {verdict}; max rel SE diff {worst:.1e}")
    report["domain_handling"] = domain_handling
    report["notes"].append(
        "svy: by= (and where=) zero the non-domain rows and keep every PSU and stratum (full-design "
        "domain estimation, like R's svyby/subset); svy's reported df for a domain counts only the PSUs "
        "holding domain members (SEs unaffected). R: svyby on the designs."
    )
    mem = report.get("memory", {})
    if mem:
        print()
        print(
            "Memory, job A (replicate domain means), separate process; replicate-weight matrix "
            f"= {data['repw'].nbytes / 2**20:.0f} MiB"
        )
        for lib, m in mem.items():
            if "error" in m:
                print(f"  {lib}: error: {m['error'][-300:]}")
                continue
            rb = m["repw_matrix_bytes"]
            print(
                f"  {lib:<5} design build: peak +{m['design_peak_extra_bytes'] / 2**20:.0f} MiB "
                f"({m['design_peak_extra_bytes'] / rb:.2f}x), retained +{m['design_retained_bytes'] / 2**20:.0f} MiB; "
                f"job A peak above RSS: first call +{m['first_call_peak_extra_bytes'] / 2**20:.0f} MiB "
                f"({m['first_call_peak_extra_bytes'] / rb:.2f}x), repeat +{m['repeat_call_peak_extra_bytes'] / 2**20:.0f} MiB "
                f"({m['repeat_call_peak_extra_bytes'] / rb:.2f}x); tracemalloc peak "
                f"{m['repeat_call_tracemalloc_peak_bytes'] / 2**20:.0f} MiB "
                f"({m['repeat_call_tracemalloc_peak_bytes'] / rb:.2f}x)"
            )
        print(
            "  (peak = VmHWM after resetting it via /proc/self/clear_refs, minus VmRSS before the call; "
            "tracemalloc sees Python/numpy allocations only, not Rust/polars ones)"
        )

    # ---- json
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    print(
        f"load average at start {report['machine']['loadavg_start'][0]:.2f}, at end "
        f"{report['machine']['loadavg_end'][0]:.2f} on {os.cpu_count()} CPUs (other work on the machine skews timings)"
    )
    report["timings"] = timings
    report["ratios"] = {
        f"{t}/ours": {
            k: (timings[t][k]["best"] / timings["ours"][k]["best"])
            for k in timings[t]
            if k in timings["ours"] and timings["ours"][k]["best"] > 0
        }
        for t in ratio_cols
    }
    report["agreement"] = agreement
    report["results"] = {
        tool: {j: d.to_dict(orient="list") for j, d in r.items()} for tool, r in results.items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
