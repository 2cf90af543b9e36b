"""Coverage of design-based GLM coefficients on the synthetic survey (known risk model).

Issue: "On the synthetic survey (known risk model): the design-based logistic regression recovers
the generating coefficients within their CIs at the nominal rate over repeated samples".

One finite population (``survey.synth.make_population``, fixed seed), then ``--draws``
independent samples of it (``draw_sample`` with seeds ``--sample-seed``, +1, ...).  Each sample
goes the way a user's data go (as ``coverage_synth.py``): written as .sav files
(``write_sample``) into a temporary folder, loaded through a copy of ``specs/synthetic.yaml``
(its ``../data/synthetic/`` paths rewritten to the folder) with ``survey.ingest.load``, and
fitted with ``data.design(unit).glm(formula, family=...)`` (Taylor linearization on the
spec's strata and PSUs; person weights for personal crimes, household weights for household
crimes).  ``--direct`` skips the files and builds ``survey.Design`` straight from the sample
frames (counts from ``Population.counts``); it gives the same coefficients and SEs to rounding
(``tests/test_glm_coverage.py`` checks this on one draw) and is about 5x faster per draw.

Models (covariates coded as in ``synth``: ``age10 = (age - 45) / 10``, ``male``,
``social_renter`` and ``private_renter`` (owner the reference), ``deprivation`` = the area score,
``urban``):

    assault   (person)     n__assault      ~ age10 + male + social_renter + private_renter + deprivation + urban
    burglary  (household)  n__burglary     ~ age10 + social_renter + private_renter + deprivation + urban
    family poisson (the count) and binomial (``victim__<type>``, the victim indicator); negbin with
    ``--families poisson,binomial,negbin`` -- but see below.

negbin: ``models._theta_ml`` (undamped Newton on log theta) diverges on these low-rate, very
overdispersed counts and ends at theta ~ 1e8 (a Poisson fit) in every sample tried (MASS::glm.nb
gives theta ~ 0.015 for assault); the census negbin fit on 1.9 million adults then runs for
minutes.  Until that is fixed (benchmarks/README.md, "coverage_glm.py") negbin coverage here
measures a Poisson fit with negbin's variance formula, and is not part of the default run.

Two covariates are not in the sample files and are linked in (as a survey links area-level
data by area code and household-grid items by household id): the area deprivation *score*
(the files carry only its quintile) from ``Population.areas`` by ``psu``, and for household
crimes the age of the household reference person (pid 1; the generating ``age10`` of household
types) from ``Population.persons`` by ``hhid``.  ``prior`` (prior-year victimization) is left
out: it is drawn from the same frailty as the counts, so it is not an exogenous covariate.

Truth.  Design-based CIs target the finite-population (census) parameter: the same GLM fitted to
the whole population (every adult or every household, weight 1).  The superpopulation
coefficients of the generating model (``Population.coefficients``) are reported too, with the
coverage of them; they differ from the census parameter because the fitted model is not the
generating one (prior omitted, gamma frailties, counts top-coded at 30, and a logit of the
victim indicator is not the log-rate model), so their coverage is not expected to be nominal.
Binomial slopes are compared with the log-rate coefficients only for orientation.

Per model and term: census and superpopulation values, mean estimate, bias / SD, mean SE / SD
of the estimates, coverage of the census value (misses below and above), coverage of the
superpopulation value.  Monte Carlo SE of a coverage: sqrt(p (1 - p) / draws).

Usage (from the repository root):

    .venv/bin/python benchmarks/coverage_glm.py                    # 300 draws of 20,000 households; ~8 min
    .venv/bin/python benchmarks/coverage_glm.py --draws 40 --direct  # a quick look

Results are printed and written to ``benchmarks/results/coverage_glm.json`` (git-ignored).
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
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from survey import synth as S  # noqa: E402
from survey.design import Design  # noqa: E402
from survey.ingest import load  # noqa: E402

SPEC = ROOT / "specs" / "synthetic.yaml"
NOMINAL = 0.95
PERSON_X = ["age10", "male", "social_renter", "private_renter", "deprivation", "urban"]
HOUSEHOLD_X = ["age10", "social_renter", "private_renter", "deprivation", "urban"]
CRIMES = {"assault": ("person", PERSON_X), "burglary": ("household", HOUSEHOLD_X)}
FAMILIES = ("poisson", "binomial", "negbin")


def model_list(crimes=("assault", "burglary"), families=("poisson", "binomial")) -> list[dict]:
    out = []
    for crime in crimes:
        unit, xs = CRIMES[crime]
        for fam in families:
            y = f"victim__{crime}" if fam == "binomial" else f"n__{crime}"
            out.append({"name": f"{crime}/{fam}", "crime": crime, "unit": unit, "family": fam, "outcome": y,
                        "terms": ["Intercept"] + xs, "formula": f"{y} ~ " + " + ".join(xs)})
    return out


# ---------------------------------------------------------------------------------------------
# covariates, coded as synth codes them
# ---------------------------------------------------------------------------------------------
def _code(values, labels: dict) -> np.ndarray:
    """Numeric codes of a column holding codes or their value labels (a loaded Categorical)."""
    s = pd.Series(values)
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
        inv = {v: k for k, v in labels.items()}
        out = s.astype(str).map(inv)
    else:
        out = s
    out = pd.to_numeric(out, errors="coerce").to_numpy(dtype=float)
    if np.isnan(out).any():
        raise ValueError(f"uncoded values: {sorted(set(s[np.isnan(out)].astype(str)))[:5]}")
    return out


def add_covariates(df: pd.DataFrame, pop: S.Population, unit: str) -> pd.DataFrame:
    """Add the generating covariates to a frame with hhid, psu, tenure, urban (and age, sex for
    persons): age10 of the person (unit person) or of the household reference person (unit
    household, linked by hhid), male, tenure dummies, the area deprivation score (by psu), urban."""
    out = df.copy()
    hhid = out["hhid"].to_numpy().astype(np.int64)
    if unit == "person":
        age = out["age"].to_numpy(dtype=float)
        out["male"] = (_code(out["sex"], S.SEX) == 1).astype(float)
    else:
        age = _hrp_age(pop)[hhid - 1]
    out["age10"] = (age - 45.0) / 10.0
    ten = _code(out["tenure"], S.TENURE)
    out["social_renter"] = (ten == 2).astype(float)
    out["private_renter"] = (ten == 3).astype(float)
    score = pop.areas.set_index("psu")["deprivation"]
    out["deprivation"] = score.reindex(out["psu"].to_numpy().astype(np.int64)).to_numpy()
    out["urban"] = (_code(out["urban"], S.URBAN) == 1).astype(float)
    return out


def _hrp_age(pop: S.Population) -> np.ndarray:
    """Age of each household's reference person (pid 1), indexed by hhid - 1."""
    p = pop.persons
    first = p["pid"].to_numpy() == 1
    age = np.empty(len(pop.households))
    age[p["hhid"].to_numpy()[first] - 1] = p["age"].to_numpy()[first]
    return age


def census_frames(pop: S.Population) -> dict[str, pd.DataFrame]:
    """Every adult and every household with covariates and outcomes, weight 1."""
    hh = pop.households
    per = pop.persons.merge(hh[["hhid", "psu", "tenure", "urban"]], on="hhid", how="left", validate="many_to_one")
    frames = {"person": add_covariates(per, pop, "person"), "household": add_covariates(hh, pop, "household")}
    for unit, f in frames.items():
        f["one"] = 1.0
        for t in S.CRIME_TYPES:
            if t.unit == unit:
                f[f"n__{t.name}"] = pop.counts[t.name].astype(float)
                f[f"victim__{t.name}"] = (pop.counts[t.name] > 0).astype(float)
    return frames


def census_truth(pop: S.Population, models: list[dict]) -> dict[str, pd.Series]:
    frames = census_frames(pop)
    # rows in random order: models._check_design_matrix judges the rank on the first 20,000 rows
    # only, and the population is stored by area (the first rows are all urban stratum 1), which
    # would raise a false "rank deficient" (reported as a bug; order is irrelevant to the fit)
    rng = np.random.default_rng(0)
    frames = {u: f.iloc[rng.permutation(len(f))].reset_index(drop=True) for u, f in frames.items()}
    out = {}
    for m in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = Design(frames[m["unit"]], weights="one").glm(m["formula"], family=m["family"])
        out[m["name"]] = r.coef
        if m["family"] == "negbin":
            out[m["name"] + "#theta"] = r.theta
    return out


def superpop_truth(pop: S.Population, models: list[dict]) -> dict[str, pd.Series]:
    c = pop.coefficients.set_index("crime_type")
    out = {}
    for m in models:
        row = c.loc[m["crime"]]
        out[m["name"]] = pd.Series({t: float(row["intercept" if t == "Intercept" else t]) for t in m["terms"]})
    return out


# ---------------------------------------------------------------------------------------------
# one draw
# ---------------------------------------------------------------------------------------------
def write_spec(folder: Path) -> Path:
    """specs/synthetic.yaml with its data paths pointing into ``folder``."""
    text = SPEC.read_text()
    if "../data/synthetic/" not in text:  # pragma: no cover - guards a spec rewrite
        raise SystemExit(f"{SPEC}: expected '../data/synthetic/' paths to rewrite")
    p = folder / "synthetic.yaml"
    p.write_text(text.replace("../data/synthetic/", ""))
    return p


def designs_via_spec(pop, sample, folder: Path, spec_path: Path) -> dict:
    """Write the sample, load it through the spec, add the covariates; designs by unit."""
    S.write_sample(sample, folder)
    data = load(spec_path)
    data.respondents = pd.concat(
        [data.respondents, add_covariates(data.respondents, pop, "person")[["male", "social_renter", "private_renter",
                                                                            "deprivation", "urban"]]
         .rename(columns={"urban": "urban01"})], axis=1)
    resp = data.respondents
    resp["age10_person"] = (resp["age"].to_numpy(dtype=float) - 45.0) / 10.0
    resp["age10_hrp"] = (_hrp_age(pop)[resp["hhid"].to_numpy().astype(np.int64) - 1] - 45.0) / 10.0
    return {unit: _Unit(data.design(unit)) for unit in ("person", "household")}


def designs_direct(pop, sample) -> dict:
    """The same designs built from the sample frames (no files): counts from the population."""
    per = sample.persons
    frame = add_covariates(per, pop, "person").rename(columns={"urban": "urban01"})
    frame["urban"] = per["urban"].to_numpy()
    frame["age10_person"] = frame["age10"]
    frame["age10_hrp"] = (_hrp_age(pop)[per["hhid"].to_numpy().astype(np.int64) - 1] - 45.0) / 10.0
    p_first = np.concatenate([[0], np.cumsum(pop.households["nadults"].to_numpy())[:-1]])
    hh_ix = per["hhid"].to_numpy().astype(np.int64) - 1
    p_ix = p_first[hh_ix] + per["pid"].to_numpy().astype(np.int64) - 1
    for t in S.CRIME_TYPES:
        c = pop.counts[t.name][hh_ix if t.unit == "household" else p_ix].astype(float)
        frame[f"n__{t.name}"] = c
        frame[f"victim__{t.name}"] = (c > 0).astype(float)
    out = {}
    for unit, w in (("person", "wt_person"), ("household", "wt_household")):
        out[unit] = _Unit(Design(frame, weights=w, strata="stratum", psu="psu"))
    return out


class _Unit:
    """A design whose ``age10`` is the person's (person) or the reference person's (household)."""

    def __init__(self, design):
        self.design = design

    def glm(self, m: dict):
        formula = m["formula"].replace("urban", "urban01").replace(
            "age10", "age10_person" if m["unit"] == "person" else "age10_hrp")
        return self.design.glm(formula, family=m["family"])


def fit_draw(designs: dict, models: list[dict]) -> dict:
    out = {}
    for m in models:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                r = designs[m["unit"]].glm(m)
            except Exception as e:  # a failed fit is a miss, reported
                out[m["name"]] = {"error": f"{type(e).__name__}: {e}"}
                continue
        t = r.table
        out[m["name"]] = {"estimate": t["estimate"].to_numpy(), "se": t["se"].to_numpy(),
                          "ci_low": t["ci_low"].to_numpy(), "ci_high": t["ci_high"].to_numpy(),
                          "df": float(r.df_residual), "converged": bool(r.converged),
                          "warnings": [str(w.message)[:200] for w in caught],
                          "cases": float((designs[m["unit"]].design.data[m["outcome"]] > 0).sum()),
                          "theta": r.theta}
    return out


# ---------------------------------------------------------------------------------------------
# the repeated sampling
# ---------------------------------------------------------------------------------------------
def simulate(draws: int, households: int, population_households: int, seed: int = 1, sample_seed: int = 2001,
             models: list[dict] | None = None, direct: bool = False, households_per_psu: int = 20,
             progress: bool = True) -> dict:
    models = models or model_list()
    t_start = time.perf_counter()
    pop = S.make_population(seed, population_households)
    t_pop = time.perf_counter() - t_start
    census = census_truth(pop, models)
    superpop = superpop_truth(pop, models)
    t_truth = time.perf_counter() - t_start - t_pop
    if progress:
        print(f"  population {pop.info['households']:,} households, {pop.info['persons']:,} adults in {t_pop:.1f} s; "
              f"census fits in {t_truth:.1f} s", flush=True)
    arrays = {m["name"]: {k: np.full((len(m["terms"]), draws), np.nan) for k in ("estimate", "se", "ci_low", "ci_high")}
              for m in models}
    info = {m["name"]: {"errors": [], "warnings": {}, "not_converged": 0, "cases": [], "df": [], "theta": []}
            for m in models}
    draw_rows = []
    folder = Path(tempfile.mkdtemp(prefix="coverage_glm."))
    try:
        spec_path = write_spec(folder)
        for d in range(draws):
            t0 = time.perf_counter()
            sample = S.draw_sample(pop, households, sample_seed + d, households_per_psu=households_per_psu)
            t1 = time.perf_counter()
            designs = designs_direct(pop, sample) if direct else designs_via_spec(pop, sample, folder, spec_path)
            t2 = time.perf_counter()
            fits = fit_draw(designs, models)
            t3 = time.perf_counter()
            draw_rows.append({"draw": t1 - t0, "load": t2 - t1, "fit": t3 - t2, "respondents": len(sample.persons),
                              "psus": int(sample.info["psus"])})
            for m in models:
                f, inf = fits[m["name"]], info[m["name"]]
                if "error" in f:
                    inf["errors"].append(f["error"])
                    continue
                for k in arrays[m["name"]]:
                    arrays[m["name"]][k][:, d] = f[k]
                inf["not_converged"] += int(not f["converged"])
                inf["cases"].append(f["cases"])
                inf["df"].append(f["df"])
                if f["theta"] is not None:
                    inf["theta"].append(f["theta"])
                for w in f["warnings"]:
                    inf["warnings"][w] = inf["warnings"].get(w, 0) + 1
            if progress and (d + 1) % max(1, draws // 10) == 0:
                el = time.perf_counter() - t_start
                print(f"  draw {d + 1}/{draws}  {el:6.0f} s elapsed, ~{el / (d + 1) * (draws - d - 1):4.0f} s to go",
                      flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"models": models, "census": census, "superpop": superpop, "arrays": arrays, "info": info,
            "timings": pd.DataFrame(draw_rows), "pop_info": pop.info, "seconds": time.perf_counter() - t_start,
            "seconds_population": t_pop, "seconds_census": t_truth, "draws": draws, "direct": direct}


def term_table(sim: dict) -> pd.DataFrame:
    """Per model and term: truths, bias, SE ratio, coverage of the census and superpopulation values."""
    rows = []
    for m in sim["models"]:
        a = sim["arrays"][m["name"]]
        cen = sim["census"][m["name"]].reindex(m["terms"]).to_numpy()
        sup = sim["superpop"][m["name"]].reindex(m["terms"]).to_numpy()
        est, se, lo, hi = a["estimate"], a["se"], a["ci_low"], a["ci_high"]
        ok = np.isfinite(lo) & np.isfinite(hi)
        D = est.shape[1]
        for i, term in enumerate(m["terms"]):
            e = est[i, ok[i]]
            sd = float(np.std(e, ddof=1)) if e.size > 1 else np.nan
            cov = ok[i] & (lo[i] <= cen[i]) & (cen[i] <= hi[i])
            cov_sup = ok[i] & (lo[i] <= sup[i]) & (sup[i] <= hi[i])
            p = float(cov.mean())
            rows.append({
                "model": m["name"], "crime": m["crime"], "family": m["family"], "term": term,
                "census": float(cen[i]), "superpop": float(sup[i]), "mean_estimate": float(np.mean(e)),
                "bias_sd": float((np.mean(e) - cen[i]) / sd), "sd_estimate": sd, "mean_se": float(np.nanmean(se[i])),
                "se_ratio": float(np.nanmean(se[i]) / sd), "coverage": p, "mc_se": float(np.sqrt(p * (1 - p) / D)),
                "below": float(np.mean(ok[i] & (hi[i] < cen[i]))), "above": float(np.mean(ok[i] & (lo[i] > cen[i]))),
                "coverage_superpop": float(cov_sup.mean()), "failed": float(np.mean(~ok[i])), "draws": D,
            })
    return pd.DataFrame(rows)


def model_summary(sim: dict, terms: pd.DataFrame) -> list[dict]:
    out = []
    for m in sim["models"]:
        a = sim["arrays"][m["name"]]
        cen = sim["census"][m["name"]].reindex(m["terms"]).to_numpy()[:, None]
        cov = (a["ci_low"] <= cen) & (cen <= a["ci_high"])
        slopes = cov[1:]
        per_draw = slopes.mean(axis=0)
        inf = sim["info"][m["name"]]
        t = terms[terms["model"] == m["name"]]
        out.append({
            "model": m["name"], "formula": m["formula"], "terms": len(m["terms"]),
            "coverage_all_terms": float(cov.mean()), "coverage_slopes": float(slopes.mean()),
            "mc_se_slopes": float(per_draw.std(ddof=1) / np.sqrt(per_draw.size)) if per_draw.size > 1 else None,
            "min_term_coverage": float(t["coverage"].min()), "max_term_coverage": float(t["coverage"].max()),
            "median_se_ratio": float(t["se_ratio"].median()), "max_abs_bias_sd": float(t["bias_sd"].abs().max()),
            "coverage_superpop_slopes": float(t["coverage_superpop"].iloc[1:].mean()),
            "mean_sample_cases": float(np.mean(inf["cases"])) if inf["cases"] else None,
            "df_residual": float(np.median(inf["df"])) if inf["df"] else None,
            "errors": len(inf["errors"]), "not_converged": inf["not_converged"], "warnings": inf["warnings"],
            "census_theta": sim["census"].get(m["name"] + "#theta"),
            "mean_theta": float(np.mean(inf["theta"])) if inf["theta"] else None,
        })
    return out


def print_report(sim: dict, terms: pd.DataFrame, summary: list[dict]) -> None:
    D = sim["draws"]
    print(f"\nCoverage of 95% CIs over {D} samples (census value = the same GLM on the whole population; "
          f"superpop = generating coefficient)")
    print(f"{'model':<20}{'term':<16}{'census':>9}{'superpop':>9}{'mean est':>9}{'bias/sd':>8}{'se/sd':>7}"
          f"{'cover%':>8}{'±mc':>5}{'hi%':>6}{'lo%':>6}{'sp cov%':>9}")
    for _, r in terms.iterrows():
        print(f"{r['model']:<20}{r['term']:<16}{r['census']:>9.3f}{r['superpop']:>9.3f}{r['mean_estimate']:>9.3f}"
              f"{r['bias_sd']:>8.2f}{r['se_ratio']:>7.2f}{100 * r['coverage']:>8.1f}{100 * r['mc_se']:>5.1f}"
              f"{100 * r['above']:>6.1f}{100 * r['below']:>6.1f}{100 * r['coverage_superpop']:>9.1f}")
    print("  hi%: CI entirely above the census value (estimate too high); lo%: entirely below; "
          "sp cov%: coverage of the superpopulation coefficient")
    print(f"\n{'model':<20}{'slopes cover%':>14}{'±mc':>6}{'all terms%':>11}{'min%':>7}{'med se/sd':>10}"
          f"{'cases':>8}{'df':>6}{'errors':>7}{'warn':>6}")
    for s in summary:
        print(f"{s['model']:<20}{100 * s['coverage_slopes']:>14.1f}{100 * (s['mc_se_slopes'] or 0):>6.1f}"
              f"{100 * s['coverage_all_terms']:>11.1f}{100 * s['min_term_coverage']:>7.1f}"
              f"{s['median_se_ratio']:>10.2f}{s['mean_sample_cases']:>8.0f}{s['df_residual']:>6.0f}"
              f"{s['errors']:>7}{sum(s['warnings'].values()):>6}")
        if s["census_theta"] is not None:
            print(f"{'':<20}negbin theta: census {s['census_theta']:.3f}, mean sample {s['mean_theta']:.3f}")
    print("  cases: mean sample victims; ±mc: Monte Carlo SE of the pooled slope coverage (per-draw means)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=300, help="independent samples (default 300)")
    ap.add_argument("--households", type=int, default=20_000, help="issued households per sample (default 20000)")
    ap.add_argument("--population-households", type=int, default=1_000_000,
                    help="households in the population (default 1,000,000)")
    ap.add_argument("--households-per-psu", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1, help="population seed (default 1)")
    ap.add_argument("--sample-seed", type=int, default=2001, help="seed of the first sample (then +1 each)")
    ap.add_argument("--families", default="poisson,binomial", help="comma list of poisson, binomial, negbin")
    ap.add_argument("--crimes", default="assault,burglary", help="comma list of assault, burglary")
    ap.add_argument("--direct", action="store_true", help="build the designs from the sample frames (no files)")
    ap.add_argument("--out", default=str(HERE / "results" / "coverage_glm.json"))
    args = ap.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    crimes = [c.strip() for c in args.crimes.split(",") if c.strip()]
    bad = [f for f in families if f not in FAMILIES] + [c for c in crimes if c not in CRIMES]
    if bad:
        ap.error(f"unknown family or crime: {', '.join(bad)}")
    models = model_list(crimes, families)

    print(f"GLM coverage on the synthetic survey: {args.draws} draws of {args.households:,} issued households from "
          f"a population of {args.population_households:,} households (seed {args.seed}); "
          f"{'designs from the sample frames (--direct)' if args.direct else 'files loaded through the spec'}",
          flush=True)
    sim = simulate(args.draws, args.households, args.population_households, args.seed, args.sample_seed, models,
                   args.direct, args.households_per_psu)
    terms = term_table(sim)
    summary = model_summary(sim, terms)
    tm = sim["timings"]
    pi = sim["pop_info"]
    print(f"\npopulation: {pi['households']:,} households, {pi['persons']:,} adults, {pi['areas']:,} areas; sample: "
          f"{tm['respondents'].mean():,.0f} respondents (mean), {tm['psus'].iloc[0]} PSUs (PSU sampling fraction "
          f"{tm['psus'].iloc[0] / pi['areas']:.1%}); {sim['seconds']:.0f} s (per draw: draw {tm['draw'].mean():.2f}, "
          f"{'build' if args.direct else 'write + load'} {tm['load'].mean():.2f}, fit {tm['fit'].mean():.2f})")
    print_report(sim, terms, summary)

    result = {
        "config": {**{k: getattr(args, k) for k in ("draws", "households", "population_households",
                                                    "households_per_psu", "seed", "sample_seed", "direct")},
                   "families": families, "crimes": crimes, "nominal": NOMINAL,
                   "path": "sample frames -> survey.Design" if args.direct else
                   "write_sample -> specs/synthetic.yaml copy -> survey.ingest.load -> data.design(unit)",
                   "linked_covariates": "deprivation score by psu from Population.areas; household crimes: age of "
                                        "the household reference person (pid 1) by hhid from Population.persons"},
        "models": [{k: m[k] for k in ("name", "crime", "unit", "family", "formula", "terms")} for m in models],
        "population": pi,
        "sample": {"mean_respondents": float(tm["respondents"].mean()), "psus": int(tm["psus"].iloc[0]),
                   "psu_sampling_fraction": float(tm["psus"].iloc[0] / pi["areas"])},
        "seconds": {"total": sim["seconds"], "population": sim["seconds_population"], "census_fits":
                    sim["seconds_census"], **{f"mean_{c}": float(tm[c].mean()) for c in ("draw", "load", "fit")}},
        "census": {k: (v.to_dict() if isinstance(v, pd.Series) else v) for k, v in sim["census"].items()},
        "superpop": {k: v.to_dict() for k, v in sim["superpop"].items()},
        "summary": summary,
        "terms": json.loads(terms.to_json(orient="records")),
        "errors": {k: v["errors"][:5] for k, v in sim["info"].items() if v["errors"]},
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
